//! `validate`, `plan` and error reporting on the bundled sweep files and broken ones.
use crate::util::{repo, sweep, text};

#[test]
fn bundled_sweep_files_validate() {
    let out = sweep(&["validate", "sweeps/quickstart.toml"], &repo());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.trim(), "ok: 2 runs in sweep quickstart");
    let out = sweep(&["validate", "sweeps/lr_batch.toml"], &repo());
    assert_eq!(text(&out).0.trim(), "ok: 16 runs in sweep lr_batch");
}

#[test]
fn plan_lists_the_expanded_runs_in_order() {
    let out = sweep(&["plan", "sweeps/lr_batch.toml"], &repo());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout
            .starts_with("sweep lr_batch: 16 runs (grid: backbone x optimizer x lr x batch_size)"),
        "{stdout}"
    );
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("│ ")).collect();
    // Header plus 16 runs.
    assert_eq!(rows.len(), 17, "{stdout}");
    assert!(
        rows[1].contains("cnn") && rows[1].contains("sgd") && rows[1].contains("0.01"),
        "{}",
        rows[1]
    );
    assert!(
        rows[16].contains("resnet18") && rows[16].contains("adam") && rows[16].contains("0.001"),
        "{}",
        rows[16]
    );
}

#[test]
fn a_broken_sweep_file_lists_every_problem_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.toml");
    std::fs::write(&file, "[data]\ntrain = \"missing\"\nimage_size = [28, 28]\n[train]\nlearning_rat = 0.1\n[grid]\nbackbone = [\"densenet121\"]\n").unwrap();
    let out = sweep(&["validate", file.to_str().unwrap()], dir.path());
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("broken.toml has 3 problems"), "{stderr}");
    assert!(
        stderr.contains("data.train: folder \"missing\" does not exist"),
        "{stderr}"
    );
    assert!(
        stderr.contains("train.learning_rat: unknown key"),
        "{stderr}"
    );
    assert!(
        stderr.contains("grid.backbone[0]: unknown backbone \"densenet121\""),
        "{stderr}"
    );
    // `run` refuses the same file before creating any database.
    let out = sweep(
        &["run", file.to_str().unwrap(), "--db", "db/sweep.db"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(!dir.path().join("db").exists());
}

#[test]
fn report_without_a_database_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = sweep(&["report", "--db", "none.db"], dir.path());
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("no database at none.db: run `sweep run FILE` first"),
        "{stderr}"
    );
}

/// `sweep models --format json`: an array with every backbone's name, parameter count at the
/// reference size and minimum input. The counts are torchvision's (`sum(p.numel() for p in
/// torchvision.models.resnet18().parameters())` = 11,689,512; vgg16 138,357,544) and Keras'
/// (Xception's trainable weights, 22,855,952).
#[test]
fn models_lists_every_backbone_with_its_reference_size() {
    let dir = tempfile::tempdir().unwrap();
    let out = sweep(&["models", "--format", "json"], dir.path());
    assert!(out.status.success(), "{}", text(&out).1);
    let models: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let get = |name: &str| {
        models
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing"))
            .clone()
    };
    assert_eq!(get("resnet18")["params"], 11_689_512);
    assert_eq!(get("vgg16")["params"], 138_357_544);
    assert_eq!(get("xception")["params"], 22_855_952);
    assert_eq!(get("xception")["min_input"], 71);
    assert_eq!(get("xception")["default_input"], 299);
    assert_eq!(get("xception")["family"], "timm legacy_xception");
    assert_eq!(get("resnet50v2")["family"], "keras");
    assert_eq!(get("efficientnet_b0")["family"], "torchvision");
    assert!(models.len() >= 16);
    for m in &models {
        assert!(
            m["params"].as_u64().unwrap() > 0 && m["min_input"].as_u64().unwrap() > 0,
            "{m}"
        );
    }
}

/// `sweep augment`: the grid has one row per image and the original plus each version per
/// row, at 64 pixels or more a cell; an unknown set names the ones there are.
#[test]
fn augment_draws_a_grid_of_real_images() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    crate::util::copy_classes("train", &root.join("train"), 3, 2);
    let file = "name = \"aug\"\n[data]\ntrain = \"train\"\nimage_size = [28, 28]\nchannels = 1\n\
                [augment.light]\nhflip = true\nrotate = 10\nerase = 0.5\n";
    std::fs::write(root.join("a.toml"), file).unwrap();
    let out = crate::util::sweep(
        &[
            "augment",
            "a.toml",
            "--set",
            "light",
            "--images",
            "4",
            "--versions",
            "3",
        ],
        root,
    );
    let (_, err) = crate::util::text(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("wrote reports/aug/augment-light.png"), "{err}");
    let png = image::open(root.join("reports/aug/augment-light.png")).unwrap();
    // 28 px enlarged 3x to 84; 4 px gaps: 4 + 4 x (84 + 4) wide, 4 + 4 x (84 + 4) high.
    assert_eq!((png.width(), png.height()), (4 + 4 * 88, 4 + 4 * 88));
    let out = crate::util::sweep(&["augment", "a.toml", "--set", "heavy"], root);
    let (_, err) = crate::util::text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("no augmentation set \"heavy\"; its sets: light"),
        "{err}"
    );
}

/// A malformed command line exits 1 (exit 2 means runs failed or problems were found), with
/// the usage on stderr; `--help` exits 0.
#[test]
fn a_malformed_command_line_exits_1() {
    let out = sweep(&["data", "inspect", ".", "--bogus"], &repo());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("unexpected argument '--bogus'"));
    let out = sweep(&["report", "--help"], &repo());
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out).0.contains("--split"));
}
