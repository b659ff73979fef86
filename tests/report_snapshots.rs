//! Every report in every format, through the real binary, on a fixed database the test builds
//! from events (no training, so every number is known): snapshots under tests/snapshots/.
//! A changed report fails here with a diff; `cargo insta review` (or INSTA_UPDATE=always)
//! accepts it after a look.
//!
//! The store: sweep `snap` (backbone cnn|resnet18 x lr 0.1|0.01, a test folder) and sweep
//! `other` (one run), classes `t-shirt`, `bag <&>` (escaping) and `ankle_boot`.
//! - cnn/0.1: 3 epochs, test result (and with test-time augmentation), one skipped file,
//!   stopped early.
//! - cnn/0.01: 2 epochs, test result.
//! - resnet18/0.1: 3 epochs (frozen 1, finetune 2-3: transfer phases), test result.
//! - resnet18/0.01: 1 epoch, then failed.
use std::path::Path;

use sweep::run::{
    Confusion, EpochRecord, EpochSummary, Evaluation, Event, Metrics, Phase, RunEnd, RunStart,
    Skipped,
};
use sweep::store::{SqliteStore, Storage};
use sweep::sweep::Sweep;

use crate::util::{sweep as run_sweep, text};

const CLASSES: [&str; 3] = ["t-shirt", "bag <&>", "ankle_boot"];

/// A confusion matrix whose diagonal grows with `skill`: class `t` has `10 + t` images, of
/// which `min(skill + t, total)` are right; the rest are called `t-shirt` (class 0), whose
/// own misses are called `ankle_boot`, so precision and recall differ.
fn confusion(skill: u64) -> Confusion {
    let mut c = Confusion::new(3);
    for t in 0..3 {
        let total = 10 + t as u64;
        let right = (skill + t as u64).min(total);
        for _ in 0..right {
            c.add(t, t);
        }
        for _ in right..total {
            c.add(t, if t == 0 { 2 } else { 0 });
        }
    }
    c
}

fn start(skipped: Vec<Skipped>) -> RunStart {
    RunStart {
        device: "cpu".into(),
        classes: CLASSES.map(String::from).to_vec(),
        parameters: 1234,
        train_images: 90,
        val_images: 33,
        test_images: Some(33),
        skipped,
        batch_size: 16,
        resumed_from: None,
    }
}

fn epoch(epoch: usize, phase: Phase, skill: u64) -> EpochRecord {
    let confusion = confusion(skill);
    let val = Metrics::from_confusion(&confusion);
    EpochRecord {
        summary: EpochSummary {
            epoch,
            phase,
            lr: 0.1 / epoch as f64,
            train_loss: 2.0 / (epoch as f64 + skill as f64 / 4.0),
            train_acc: 0.3 + 0.05 * skill as f64,
            val_loss: 2.5 / (epoch as f64 + skill as f64 / 5.0),
            val_acc: val.accuracy,
            val_macro_f1: val.macro_f1,
            val_weighted_f1: val.weighted_f1,
        },
        seconds: 2.5 * epoch as f64,
        images_per_sec: 36.0,
        val,
        confusion,
        checkpoint_saved: epoch % 2 == 1,
    }
}

fn test_result(epoch: usize, skill: u64) -> Evaluation {
    split_result("test", epoch, skill)
}

fn split_result(split: &str, epoch: usize, skill: u64) -> Evaluation {
    let confusion = confusion(skill);
    Evaluation {
        split: split.into(),
        epoch,
        loss: 1.0 / skill as f64,
        metrics: Metrics::from_confusion(&confusion),
        confusion,
    }
}

fn finish(store: &mut SqliteStore, id: &str, reason: &str, epoch: usize) {
    let end = RunEnd {
        stop_reason: reason.into(),
        checkpoint: Some(format!("runs/snap/{id}/best.safetensors").into()),
        checkpoint_epoch: Some(epoch),
    };
    let run = id.to_string();
    store.apply(&Event::Finished { run, end }).unwrap();
}

/// The database, written to `dir/snap.db`. Paths in the sweep files are relative to the
/// crate root, so the stored configs (and with them the run ids) are the same everywhere.
fn build(dir: &Path) {
    let mut store = SqliteStore::open(&dir.join("snap.db")).unwrap();
    let other = "name = \"other\"\n[data]\ntrain = \"data/fashion-mini/train\"\n\
                 image_size = [8, 8]\n[grid]\nlr = [0.05]\n";
    let other = Sweep::from_str(other, Path::new("other.toml")).unwrap();
    let runs = other.runs();
    store.register("other", &other.file, &runs, true).unwrap();
    let id = runs[0].id.clone();
    let run = id.clone();
    store
        .apply(&Event::Started {
            run,
            start: start(vec![]),
        })
        .unwrap();
    let record = epoch(1, Phase::default(), 6);
    store.apply(&Event::Epoch { run: id, record }).unwrap();

    let snap = "name = \"snap\"\n[data]\ntrain = \"data/fashion-mini/train\"\n\
                test = \"data/fashion-mini/test\"\nimage_size = [8, 8]\n\
                [grid]\nbackbone = [\"cnn\", \"resnet18\"]\nlr = [0.1, 0.01]\n";
    let snap = Sweep::from_str(snap, Path::new("snap.toml")).unwrap();
    let runs = snap.runs();
    store.register("snap", &snap.file, &runs, true).unwrap();
    let ids: Vec<String> = runs.iter().map(|r| r.id.clone()).collect();
    let started = |store: &mut SqliteStore, k: usize, skipped| {
        let run = ids[k].clone();
        let start = start(skipped);
        store.apply(&Event::Started { run, start }).unwrap();
    };
    let epochs = |store: &mut SqliteStore, k: usize, list: &[(usize, Phase, u64)]| {
        for &(e, phase, skill) in list {
            let run = ids[k].clone();
            let record = epoch(e, phase, skill);
            store.apply(&Event::Epoch { run, record }).unwrap();
        }
    };
    let tested = |store: &mut SqliteStore, k: usize, e: usize, skill: u64| {
        let run = ids[k].clone();
        let evaluation = test_result(e, skill);
        store.apply(&Event::Evaluated { run, evaluation }).unwrap();
    };
    let scratch = Phase::default();
    // Runs expand backbone-major: 0 cnn/0.1, 1 cnn/0.01, 2 resnet18/0.1, 3 resnet18/0.01.
    let skipped = vec![Skipped {
        path: "data/fashion-mini/train/t-shirt/broken.png".into(),
        reason: "not a PNG: bad signature".into(),
    }];
    started(&mut store, 0, skipped);
    epochs(
        &mut store,
        0,
        &[(1, scratch, 5), (2, scratch, 8), (3, scratch, 7)],
    );
    tested(&mut store, 0, 2, 7);
    // With test-time augmentation (`[train] tta`), one better.
    let run = ids[0].clone();
    let evaluation = split_result("test_tta", 2, 8);
    store.apply(&Event::Evaluated { run, evaluation }).unwrap();
    finish(&mut store, &ids[0], "early stopping (patience 1)", 2);

    started(&mut store, 1, vec![]);
    epochs(&mut store, 1, &[(1, scratch, 4), (2, scratch, 6)]);
    tested(&mut store, 1, 2, 6);
    finish(&mut store, &ids[1], "epochs done", 2);

    started(&mut store, 2, vec![]);
    let (frozen, finetune) = (Phase::Frozen, Phase::Finetune);
    epochs(
        &mut store,
        2,
        &[(1, frozen, 6), (2, finetune, 7), (3, finetune, 9)],
    );
    tested(&mut store, 2, 3, 8);
    finish(&mut store, &ids[2], "epochs done", 3);

    started(&mut store, 3, vec![]);
    epochs(&mut store, 3, &[(1, scratch, 3)]);
    let run = ids[3].clone();
    let error = "out of memory: batch 16 of 3x8x8 images needs 2.1 GiB".to_string();
    let kind = Default::default();
    store.apply(&Event::Failed { run, error, kind }).unwrap();
}

/// Each inline SVG chart of an HTML report as one line naming its title and counting its
/// lines and texts: the charts' drawing is tested in `report::plot` and by Chromium
/// (tests/html.rs); here the page around them is.
fn summarize_charts(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(start) = rest.find("<svg") {
        out += &rest[..start];
        let end = rest[start..]
            .find("</svg>")
            .map_or(rest.len(), |e| start + e + 6);
        let svg = &rest[start..end];
        let first_text = svg
            .split("<text")
            .nth(1)
            .and_then(|t| t.split('>').nth(1))
            .map(|t| t.split('<').next().unwrap_or("").trim())
            .unwrap_or("");
        out += &format!(
            "[chart \"{first_text}\": {} lines, {} texts]",
            svg.matches("<polyline").count() + svg.matches("<path").count(),
            svg.matches("<text").count()
        );
        rest = &rest[end..];
    }
    out + rest
}

/// `sweep report ARGS --db snap.db`, its stdout (the command must succeed).
fn report(dir: &Path, args: &[&str]) -> String {
    let db = dir.join("snap.db");
    let mut all = vec!["report", "--db", db.to_str().unwrap()];
    all.extend(args);
    let out = run_sweep(&all, dir);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "sweep {all:?}: {stderr}");
    summarize_charts(&stdout)
}

/// The id of run `k` (from 1, in grid order) of sweep `snap`, as `--run` and `--compare run:` take it.
fn run_id(dir: &Path, k: usize) -> String {
    let json = report(dir, &["--sweep", "snap", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let runs = v["runs"].as_array().unwrap();
    let run = runs.iter().find(|r| r["index"] == k).unwrap();
    run["run_id"].as_str().unwrap().to_string()
}

#[test]
fn every_report_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let best_cnn = run_id(dir.path(), 1);
    let reports: [(&str, Vec<&str>); 5] = [
        ("runs", vec![]),
        ("best", vec!["--best"]),
        ("compare_backbone", vec!["--compare", "backbone"]),
        ("by_lr", vec!["--by", "lr"]),
        ("run", vec!["--run", &best_cnn]),
    ];
    for (name, args) in &reports {
        for format in ["table", "markdown", "csv", "json", "html"] {
            let mut all = vec!["--sweep", "snap", "--format", format, "--width", "100"];
            all.extend(args.iter().copied());
            let out = report(dir.path(), &all);
            insta::assert_snapshot!(format!("{name}.{format}"), out);
        }
    }
}

#[test]
fn split_sweep_all_and_html_with_compare_and_by() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let cases: [(&str, &[&str]); 7] = [
        ("split_test_runs", &["--sweep", "snap", "--split", "test"]),
        (
            "split_test_best",
            &["--sweep", "snap", "--split", "test", "--best"],
        ),
        (
            "split_val_compare",
            &["--sweep", "snap", "--split", "val", "--compare", "backbone"],
        ),
        (
            "split_test_by",
            &["--sweep", "snap", "--split", "test", "--by", "backbone"],
        ),
        ("all_runs", &["--sweep", "all"]),
        ("all_by_lr", &["--sweep", "all", "--by", "lr"]),
        (
            "html_compare_and_by",
            &[
                "--sweep",
                "snap",
                "--format",
                "html",
                "--compare",
                "lr",
                "--by",
                "backbone",
                "--where",
                "backbone=cnn",
            ],
        ),
    ];
    for (name, args) in cases {
        insta::assert_snapshot!(name, report(dir.path(), args));
    }
}

/// What the new flags refuse, and how they say it.
#[test]
fn split_and_compare_by_refusals() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let db = dir.path().join("snap.db");
    let db = db.to_str().unwrap();
    let fails = |args: &[&str]| {
        let mut all = vec!["report", "--db", db];
        all.extend(args);
        let out = run_sweep(&all, dir.path());
        assert!(!out.status.success(), "{args:?} should fail");
        text(&out).1
    };
    let e = fails(&["--sweep", "snap", "--compare", "lr", "--by", "backbone"]);
    assert!(e.contains("add --format html"), "{e}");
    let e = fails(&[
        "--sweep",
        "snap",
        "--split",
        "test",
        "--metric",
        "train_loss",
    ]);
    assert!(e.contains("--metric train_loss has none there"), "{e}");
    // Sweep `other` has no test folder.
    let e = fails(&["--sweep", "other", "--split", "test"]);
    assert!(
        e.contains("no run of sweep \"other\" has a test result"),
        "{e}"
    );
}
