//! Sweep file tests: pinned grid order, stable run ids, and every validation error.
use std::path::{Path, PathBuf};

use super::*;

/// A sweep file in a temp folder that has a `train/` class folder beside it.
pub(super) struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    pub(super) fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("train/a")).unwrap();
        std::fs::create_dir_all(dir.path().join("test/a")).unwrap();
        Fixture { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("s.toml")
    }

    pub(super) fn parse(&self, body: &str) -> Result<Sweep, SweepError> {
        Sweep::from_str(&with_data(body), &self.path())
    }

    pub(super) fn problems(&self, body: &str) -> Vec<Problem> {
        self.problems_raw(&with_data(body))
    }

    fn problems_raw(&self, text: &str) -> Vec<Problem> {
        match Sweep::from_str(text, &self.path()) {
            Err(SweepError::Invalid { problems, .. }) => problems,
            other => panic!("expected problems, got {other:?}"),
        }
    }
}

/// `body` (top-level keys first, then tables) followed by a valid [data] table.
fn with_data(body: &str) -> String {
    format!("{body}\n[data]\ntrain = \"train\"\nimage_size = [8, 8]\n")
}

fn has(problems: &[Problem], key: &str, text: &str) -> bool {
    problems
        .iter()
        .any(|p| p.key == key && p.message.contains(text))
}

pub(super) fn assert_problem(problems: &[Problem], key: &str, text: &str) {
    assert!(
        has(problems, key, text),
        "no problem at `{key}` containing {text:?} in {problems:#?}"
    );
}

const GRID: &str = r#"
[grid]
optimizer = ["sgd", "adam"]
lr = [0.01, 0.001]
batch_size = [32, 64]
backbone = ["cnn", "resnet18"]
"#;

#[test]
fn grid_expands_in_pinned_key_order_whatever_the_file_order() {
    let f = Fixture::new();
    let sweep = f.parse(GRID).unwrap();
    let runs = sweep.runs();
    assert_eq!(runs.len(), 16);
    let labels: Vec<&str> = runs.iter().take(5).map(|r| r.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "cnn sgd lr=0.01 bs=32",
            "cnn sgd lr=0.01 bs=64",
            "cnn sgd lr=0.001 bs=32",
            "cnn sgd lr=0.001 bs=64",
            "cnn adam lr=0.01 bs=32",
        ]
    );
    assert_eq!(runs[15].label, "resnet18 adam lr=0.001 bs=64");
    assert_eq!(
        runs.iter().map(|r| r.index).collect::<Vec<_>>(),
        (1..=16).collect::<Vec<_>>()
    );
    // Reordering the keys and the tables changes nothing.
    let reordered = f
        .parse("[grid]\nbackbone = [\"cnn\", \"resnet18\"]\nbatch_size = [32, 64]\nlr = [0.01, 0.001]\noptimizer = [\"sgd\", \"adam\"]\n")
        .unwrap();
    assert_eq!(reordered.runs(), runs);
}

#[test]
fn run_ids_are_stable_distinct_and_follow_the_config() {
    let f = Fixture::new();
    let runs = f.parse(GRID).unwrap().runs();
    let ids: std::collections::BTreeSet<_> = runs.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), 16);
    assert_eq!(f.parse(GRID).unwrap().runs()[3].id, runs[3].id);
    let more_epochs = f
        .parse(&format!("[train]\nepochs = 3\n{GRID}"))
        .unwrap()
        .runs();
    assert_ne!(more_epochs[3].id, runs[3].id);
    // Adding a value to a list keeps the ids of the old cells.
    let wider = f
        .parse(&GRID.replace("[0.01, 0.001]", "[0.01, 0.001, 0.1]"))
        .unwrap()
        .runs();
    assert_eq!(wider.len(), 24);
    for r in &runs {
        assert!(wider.iter().any(|w| w.id == r.id), "{} lost", r.label);
    }
}

#[test]
fn fixed_values_defaults_and_sections_reach_the_runs() {
    let f = Fixture::new();
    let sweep = f
        .parse(
            r#"
name = "demo"
seed = 7
[train]
backbone = "resnet18"
width = 8
lr = 0.05
weight_decay = 0.0001
early_stopping = { monitor = "val_acc", patience = 4 }
reduce_lr_on_plateau = { patience = 2, factor = 0.1 }
checkpoint = { keep = "last", monitor = "val_macro_f1" }
[grid]
optimizer = ["sgd"]
augment = ["none", "flips"]
[optimizer.sgd]
momentum = 0.8
nesterov = true
[augment.flips]
hflip = true
rotate = 10
"#,
        )
        .unwrap();
    assert_eq!(sweep.name, "demo");
    let runs = sweep.runs();
    assert_eq!(runs.len(), 2);
    let c = &runs[1].config;
    assert_eq!(c.backbone.as_str(), crate::model::Backbone::Resnet18.name());
    assert_eq!(
        (c.width, c.lr, c.seed, c.batch_size, c.epochs),
        (8, 0.05, 7, 32, 10)
    );
    assert_eq!(
        c.optimizer_settings,
        crate::run::OptimizerConfig::Sgd {
            momentum: 0.8,
            nesterov: true,
            weight_decay: 0.0001
        }
    );
    assert!(c.augment_settings.hflip && c.augment_settings.rotate == 10.0);
    assert!(runs[0].config.augment_settings.is_identity());
    let es = c.train.early_stopping.as_ref().unwrap();
    assert_eq!((es.monitor, es.patience), (crate::run::Monitor::ValAcc, 4));
    let r = c.train.reduce_lr_on_plateau.as_ref().unwrap();
    assert_eq!(
        (r.patience, r.factor, r.monitor),
        (2, 0.1, crate::run::Monitor::ValLoss)
    );
    assert_eq!(c.train.checkpoint.keep, crate::run::Keep::Last);
    assert_eq!(c.data.seed, 7);
    assert_eq!(c.data.train, Path::new("train"));
    assert_eq!(
        sweep.resolve_data(&c.data).train,
        f.dir.path().join("train")
    );
}

#[test]
fn the_name_defaults_to_the_file_stem() {
    let f = Fixture::new();
    assert_eq!(f.parse("").unwrap().name, "s");
    assert_eq!(f.parse("").unwrap().runs().len(), 1);
}

#[test]
fn every_problem_is_reported_at_once() {
    let f = Fixture::new();
    let p = f.problems("[train]\nbatchsize = 32\nepochs = 0\n[grid]\nlr = [0.1, \"0.01\"]\n");
    assert_eq!(p.len(), 3, "{p:#?}");
    assert_problem(&p, "train.batchsize", "did you mean `batch_size`?");
    assert_problem(&p, "train.epochs", "between 1 and");
    assert_problem(&p, "grid.lr[1]", "expected a number");
    let text = SweepError::Invalid {
        file: f.path(),
        problems: p,
    }
    .to_string();
    assert!(text.contains("s.toml has 3 problems"), "{text}");
}

#[test]
fn toml_syntax_errors_name_the_file() {
    let f = Fixture::new();
    let err = Sweep::from_str("[data\n", &f.path()).unwrap_err();
    assert!(matches!(err, SweepError::Toml { .. }));
    assert!(
        err.to_string().contains("s.toml is not valid TOML"),
        "{err}"
    );
}

#[test]
fn unknown_keys_suggest_the_closest_valid_one() {
    let f = Fixture::new();
    let p = f.problems("nmae = \"x\"\n[train]\nepocs = 3\n[grid]\nbackbones = [\"cnn\"]\n[optimizer.sgd]\nmomentun = 0.9\n");
    assert_problem(&p, "nmae", "did you mean `name`?");
    assert_problem(&p, "train.epocs", "did you mean `epochs`?");
    assert_problem(&p, "grid.backbones", "did you mean `backbone`?");
    assert_problem(&p, "optimizer.sgd.momentun", "did you mean `momentum`?");
    let p = f.problems("[train]\nzzz = 1\n");
    assert_problem(&p, "train.zzz", "valid keys here:");
}

#[test]
fn grid_keys_must_be_lists_of_valid_distinct_values() {
    let f = Fixture::new();
    let p = f.problems(
        "[grid]\nlr = 0.01\nbatch_size = []\nbackbone = [\"cnn\", \"vgg\"]\nseed = [1, 1]\n",
    );
    assert_problem(&p, "grid.lr", "expected a list like [0.01]");
    assert_problem(&p, "grid.batch_size", "empty list");
    assert_problem(&p, "grid.backbone[1]", "unknown backbone \"vgg\"");
    assert_problem(&p, "grid.seed[1]", "listed twice");
}

#[test]
fn a_key_is_either_fixed_or_gridded() {
    let f = Fixture::new();
    let p = f.problems("[train]\nlr = 0.1\nseed = 3\n[grid]\nlr = [0.1, 0.2]\n");
    assert_problem(&p, "train.lr", "both [train] and [grid]");
    assert_problem(&p, "train.seed", "top level");
    let p = f.problems_raw("lr = 0.1\n[data]\ntrain = \"train\"\nimage_size = 8\n");
    assert_problem(&p, "lr", "belongs in [train]");
}

#[test]
fn data_problems_name_the_key_and_the_fix() {
    let f = Fixture::new();
    let p = f.problems_raw("name = \"x\"\n");
    assert_problem(&p, "data", "missing [data] table");
    let p = f.problems_raw("[data]\nimage_size = [8, 8]\n");
    assert_problem(&p, "data.train", "missing");
    let p = f.problems_raw(
        "[data]\ntrain = \"nope\"\ntest = 3\nimage_size = [8]\nchannels = 2\nval_split = 1.5\n",
    );
    assert_problem(&p, "data.train", "folder \"nope\" does not exist");
    assert_problem(&p, "data.test", "expected a folder path");
    assert_problem(&p, "data.image_size", "[height, width]");
    assert_problem(&p, "data.channels", "1 (grey) or 3 (RGB)");
    assert_problem(&p, "data.val_split", "between 0 and 1");
    assert_eq!(p.len(), 5, "{p:#?}");
}

#[test]
fn training_settings_are_checked() {
    let f = Fixture::new();
    let p = f.problems(
        "[train]\nearly_stopping = { monitor = \"val_los\", patience = -1 }\nreduce_lr_on_plateau = { factor = 2.0 }\ncheckpoint = \"sometimes\"\n",
    );
    assert_problem(&p, "train.early_stopping.monitor", "choose one of val_loss");
    assert_problem(&p, "train.early_stopping.patience", "whole number");
    assert_problem(&p, "train.reduce_lr_on_plateau.factor", "between 0 and 1");
    assert_problem(&p, "train.checkpoint", "choose best, last or none");
    let p = f.problems("[train]\nthreads = -2\n");
    assert_problem(&p, "train.threads", "number of CPU threads");
    assert_eq!(f.parse("[train]\nthreads = 1\n").unwrap().threads, Some(1));
    let p = f.problems("[train]\nearly_stopping = 5\n");
    assert_problem(&p, "train.early_stopping", "or false");
    assert!(f
        .parse("[train]\nearly_stopping = false\n")
        .unwrap()
        .settings
        .early_stopping
        .is_none());
}

#[test]
fn optimizer_and_augment_sections_are_checked() {
    let f = Fixture::new();
    let p = f.problems("[optimizer.sgd]\nmomentum = 0.0\nnesterov = true\n[optimizer.rmsprop]\n");
    assert_problem(&p, "optimizer.sgd.nesterov", "needs momentum > 0");
    assert_problem(&p, "optimizer.rmsprop", "unknown key");
    let p = f.problems("[train]\naugment = \"heavy\"\n[augment.light]\nhflip = \"yes\"\nhflipp = true\n[augment.none]\nhflip = true\n");
    assert_problem(&p, "train.augment", "\"heavy\" is not defined");
    assert_problem(&p, "augment.light.hflipp", "did you mean `hflip`?");
    assert_problem(
        &p,
        "augment.light.hflip",
        "expected true or false, got \"yes\"",
    );
    assert_problem(&p, "augment.none", "built in");
}

#[test]
fn a_bad_augment_setting_names_its_key_and_the_set_stays_defined() {
    let f = Fixture::new();
    let p = f.problems("[train]\naugment = \"light\"\n[augment.light]\nhflip = \"yes\"\n");
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_problem(&p, "augment.light.hflip", "expected true or false");
    // Each kind of setting: a number, a flag, a factor range.
    let p = f.problems("[grid]\naugment = [\"a\"]\n[augment.a]\nrotate = \"30\"\nvflip = 1\nbrightness = 1.2\ncontrast = [0.8]\nzoom = nan\nshift = inf\n");
    assert_problem(
        &p,
        "augment.a.rotate",
        "expected a number, e.g. rotate = 0.1; got the string \"30\"",
    );
    assert_problem(&p, "augment.a.vflip", "expected true or false, got 1");
    assert_problem(&p, "augment.a.brightness", "[low, high]");
    assert_problem(&p, "augment.a.contrast", "[low, high]");
    assert_problem(&p, "augment.a.zoom", "must be >= 0");
    assert_problem(&p, "augment.a.shift", "must be >= 0");
    assert_eq!(p.len(), 6, "{p:#?}");
    // Valid sets still reach the runs as before.
    let sweep = f
        .parse("[train]\naugment = \"a\"\n[augment.a]\nhflip = true\nrotate = 30\nbrightness = [0.8, 1.2]\n")
        .unwrap();
    let a = &sweep.runs()[0].config.augment_settings;
    assert!(a.hflip && a.rotate == 30.0 && a.brightness == Some([0.8, 1.2]));
}

#[test]
fn seed_is_fixed_at_the_top_level_or_gridded_never_both() {
    let f = Fixture::new();
    let p = f.problems("seed = 1\n[grid]\nseed = [2, 3]\n");
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_problem(&p, "seed", "both at the top level and in [grid]");
    let p = f.problems("seed = 1\n[search]\nmethod = \"random\"\ntrials = 2\n[grid]\nseed = { int_uniform = [0, 9] }\n");
    assert_problem(&p, "seed", "keep one");
    assert_eq!(f.parse("seed = 1\n").unwrap().runs()[0].config.seed, 1);
    assert_eq!(f.parse("[grid]\nseed = [2, 3]\n").unwrap().runs().len(), 2);
}

#[test]
fn a_problem_reported_once_has_no_false_follow_on() {
    let f = Fixture::new();
    // An invalid image size is not the default 32x32 that xception would reject.
    let p = f.problems_raw(
        "[data]\ntrain = \"train\"\nimage_size = [8]\n[train]\nbackbone = \"xception\"\n",
    );
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_problem(&p, "data.image_size", "[height, width]");
    let p = f.problems_raw("[data]\ntrain = \"train\"\n[train]\nbackbone = \"xception\"\n");
    assert_eq!(p.len(), 1, "{p:#?}");
    // A misspelt or incomplete random search still owns its distributions.
    let p = f.problems(
        "[search]\nmethod = \"randon\"\ntrials = 4\n[grid]\nlr = { log_uniform = [1e-4, 1e-2] }\n",
    );
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_problem(&p, "search.method", "did you mean \"random\"?");
    let p =
        f.problems("[search]\nmethod = \"random\"\n[grid]\nlr = { log_uniform = [1e-4, 1e-2] }\n");
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_problem(&p, "search.trials", "missing");
    // ASHA's rungs are not judged against epochs that were themselves wrong.
    let asha = "[search.asha]\nmin_epochs = 3\n";
    let p = f.problems(&format!("[train]\nepochs = 0\n{asha}"));
    assert_eq!(p.len(), 1, "{p:#?}");
    let p = f.problems(&format!("[grid]\nepochs = [\"ten\"]\n{asha}"));
    assert_eq!(p.len(), 1, "{p:#?}");
    // A section given as a plain value is one problem, not two.
    let p = f.problems("optimizer = \"sgd\"\naugment = \"light\"\n");
    assert_eq!(p.len(), 2, "{p:#?}");
    assert_problem(&p, "optimizer", "belongs in [train]");
    assert_problem(&p, "augment", "belongs in [train]");
}

#[test]
fn settings_are_finite_numbers() {
    let f = Fixture::new();
    let p = f.problems("[train]\nearly_stopping = { min_delta = inf }\nreduce_lr_on_plateau = { min_lr = inf, min_delta = nan }\n");
    assert_problem(&p, "train.early_stopping.min_delta", "a number >= 0");
    assert_problem(&p, "train.reduce_lr_on_plateau.min_lr", "a number >= 0");
    assert_problem(&p, "train.reduce_lr_on_plateau.min_delta", "a number >= 0");
    assert_eq!(p.len(), 3, "{p:#?}");
}

#[test]
fn sweeps_too_big_to_run_or_name_are_refused() {
    let f = Fixture::new();
    let list = |n: usize| {
        (1..=n)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let p = f.problems(&format!(
        "[grid]\nseed = [{}]\nepochs = [{}]\nbatch_size = [{}]\n",
        list(100),
        list(100),
        list(11)
    ));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_problem(
        &p,
        "grid",
        "the grid has 110000 runs (11 x 100 x 100), more than 100000",
    );
    assert_eq!(
        f.parse(&format!(
            "[grid]\nseed = [{}]\nepochs = [{}]\n",
            list(100),
            list(100)
        ))
        .unwrap()
        .runs()
        .len(),
        10_000
    );
    let p =
        f.problems("[search]\nmethod = \"random\"\ntrials = 1000000000000\n[grid]\nlr = [0.1]\n");
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_problem(&p, "search.trials", "more than 100000");
    let p = f.problems(&format!("name = \"{}\"\n", "n".repeat(101)));
    assert_problem(&p, "name", "at most 100");
}

#[test]
fn names_must_make_folder_names() {
    let f = Fixture::new();
    let p = f.problems("name = \"../evil\"\n");
    assert_problem(&p, "name", "cannot name a folder");
}

#[test]
fn every_backbone_used_must_accept_the_image_size() {
    let f = Fixture::new();
    // with_data sets image_size = [8, 8]: xception needs 71x71; resnet18 takes any size.
    let p = f.problems("[grid]\nbackbone = [\"resnet18\", \"xception\"]\n");
    assert_problem(
        &p,
        "grid.backbone",
        "xception needs images of at least 71x71",
    );
    assert_problem(&p, "grid.backbone", "image_size is [8, 8]");
    assert_eq!(p.len(), 1, "{p:#?}");
    let p = f.problems("[train]\nbackbone = \"xception\"\n");
    assert_problem(&p, "train.backbone", "raise image_size");
}

/// A sweep folder with image folders made of empty files (the checks never decode).
fn data_tree(files: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in files {
        let p = dir.path().join(f);
        if f.ends_with('/') {
            std::fs::create_dir_all(p).unwrap();
        } else {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"").unwrap();
        }
    }
    dir
}

fn checked(dir: &Path, data: &str) -> Result<Sweep, SweepError> {
    let text = format!("[data]\n{data}\nimage_size = [8, 8]\n");
    Sweep::from_str_checked(&text, &dir.join("s.toml"))
}

fn checked_problems(dir: &Path, data: &str) -> Vec<Problem> {
    match checked(dir, data) {
        Err(SweepError::Invalid { problems, .. }) => problems,
        other => panic!("expected problems, got {other:?}"),
    }
}

#[test]
fn data_folders_that_are_not_folders_are_refused_by_any_parse() {
    let f = Fixture::new();
    std::fs::write(f.dir.path().join("list.txt"), "a\n").unwrap();
    // "" resolves to the sweep file's own folder, which exists: it was accepted.
    let p = f.problems_raw("[data]\ntrain = \"\"\nimage_size = 8\n");
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_problem(&p, "data.train", "is empty");
    let p = f.problems_raw("[data]\ntrain = \"train\"\ntest = \"\"\nimage_size = 8\n");
    assert_problem(&p, "data.test", "is empty; set it to a folder");
    // A file was reported as a folder that does not exist.
    let p = f.problems_raw("[data]\ntrain = \"list.txt\"\ntest = \"nope\"\nimage_size = 8\n");
    assert_eq!(p.len(), 2, "{p:#?}");
    assert_problem(&p, "data.train", "\"list.txt\" is a file, not a folder");
    assert_problem(&p, "data.test", "folder \"nope\" does not exist");
}

#[test]
fn checked_parsing_lists_the_data_folders_with_the_other_problems() {
    let f = Fixture::new();
    // The fixture's one empty class parses (tests of the file alone), but cannot train.
    assert!(f.parse("").is_ok());
    let p = checked_problems(f.dir.path(), "train = \"train\"\ntest = \"test\"");
    assert_problem(&p, "data.train", "only one class sub-folder (\"a\")");
    assert_problem(&p, "data.train", "class folder \"a\" in \"train\" holds no");
    assert_problem(&p, "data.test", "class folder \"a\" in \"test\" holds no");
    assert_eq!(p.len(), 3, "{p:#?}");

    let good = [
        "d/train/cat/1.png",
        "d/train/cat/2.png",
        "d/train/dog/1.jpg",
        "d/train/dog/2.jpg",
        "d/test/cat/1.png",
        "d/test/dog/1.png",
    ];
    let dir = data_tree(&good);
    let sweep = checked(dir.path(), "train = \"d/train\"\ntest = \"d/test\"").unwrap();
    assert!(sweep.check_data().is_ok());
    // One list: the file's problems and the data's.
    let dir = data_tree(&[
        "d/train/cat/1.png",
        "d/train/cat/2.png",
        "d/train/dog/1.jpg",
        "d/train/emu/",
        "d/test/cat/1.png",
        "d/test/dog/1.png",
        "d/test/fox/1.png",
    ]);
    let text = "nmae = \"x\"\n[data]\ntrain = \"d/train\"\ntest = \"d/test\"\nval_split = 0.5\nimage_size = [8, 8]\n";
    let p = match Sweep::from_str_checked(text, &dir.path().join("s.toml")) {
        Err(SweepError::Invalid { problems, .. }) => problems,
        other => panic!("{other:?}"),
    };
    assert_problem(&p, "nmae", "did you mean `name`?");
    assert_problem(
        &p,
        "data.train",
        "class folder \"emu\" in \"d/train\" holds no .png/.jpg/.jpeg image",
    );
    assert_problem(
        &p,
        "data.test",
        "missing in test: \"emu\"; only in test: \"fox\"",
    );
    assert_problem(
        &p,
        "data.val_split",
        "with val_split = 0.5 every class of \"d/train\" needs at least 2 images",
    );
    assert_problem(&p, "data.val_split", "\"dog\" has 1");
    assert_eq!(p.len(), 4, "{p:#?}");
    // An invalid val_split is one problem, not also a split problem.
    let p = checked_problems(dir.path(), "train = \"d/train\"\nval_split = 2");
    assert!(
        !p.iter()
            .any(|p| p.message.contains("needs at least 2 images")),
        "{p:#?}"
    );
}

#[test]
fn check_data_reports_the_folders_of_a_parsed_sweep_once() {
    let f = Fixture::new();
    let mut sweep = f.parse("").unwrap();
    match sweep.check_data() {
        Err(SweepError::Invalid { file, problems }) => {
            assert_eq!(file, f.path());
            assert_problem(&problems, "data.train", "only one class sub-folder");
        }
        other => panic!("{other:?}"),
    }
    // Fake runs (tests) read no data.
    sweep.fake = Some(crate::run::FakeSpec::default());
    assert!(sweep.check_data().is_ok());
}

#[test]
fn normalize_is_a_data_key_left_out_of_ids_by_default() {
    let f = Fixture::new();
    let text = |n: &str| {
        format!("[data]\ntrain = \"train\"\nimage_size = [8, 8]\n{n}\n[grid]\nlr = [0.1]\n")
    };
    let p = f.problems_raw(&text("normalize = \"zscore\""));
    assert_problem(&p, "data.normalize", "\"imagenet\"");
    let unit = Sweep::from_str(&text(""), &f.path()).unwrap().runs();
    let explicit = Sweep::from_str(&text("normalize = \"unit\""), &f.path())
        .unwrap()
        .runs();
    assert_eq!(
        unit[0].id, explicit[0].id,
        "unit is the default and keeps ids"
    );
    let imagenet = Sweep::from_str(&text("normalize = \"imagenet\""), &f.path())
        .unwrap()
        .runs();
    assert_ne!(unit[0].id, imagenet[0].id);
    assert_eq!(
        imagenet[0].config.data.normalize,
        crate::run::Normalize::Imagenet
    );
}

#[test]
fn transfer_runs_take_their_weights_and_preprocessing_and_scratch_ids_stay() {
    use crate::model::{Backbone, Model, ModelSpec};
    use crate::run::{Normalize, TransferMode};
    let f = Fixture::new();
    let plain = f.parse("[grid]\nlr = [0.1]").unwrap().runs();
    let scratch = f
        .parse("[train]\ntransfer = \"scratch\"\n[grid]\nlr = [0.1]")
        .unwrap()
        .runs();
    assert_eq!(plain[0].id, scratch[0].id, "scratch runs keep their ids");
    let json = serde_json::to_string(&plain[0].config).unwrap();
    assert!(!json.contains("transfer"), "{json}");

    // A resnet18 file without sweep's preprocessing entry: torchvision's, so imagenet.
    let spec = ModelSpec {
        backbone: Backbone::Resnet18,
        channels: 3,
        height: 8,
        width: 8,
        classes: 7,
        base_width: 4,
    };
    let model = Model::new(&spec, &candle_core::Device::Cpu, 1).unwrap();
    model.save(&f.dir.path().join("tv.safetensors")).unwrap();
    let meta = [("normalize".to_string(), "inception".to_string())].into();
    model
        .save_with(&f.dir.path().join("ours.safetensors"), &meta)
        .unwrap();
    let body = |file: &str, extra: &str| {
        format!(
            "[train]\nbackbone = \"resnet18\"\nwidth = 4\nlr = 0.01\npretrained = \"{file}\"\n\
             [grid]\ntransfer = [\"scratch\", \"frozen\", \"two_phase\"]\n{extra}"
        )
    };
    let runs = f.parse(&body("tv.safetensors", "")).unwrap().runs();
    assert!(runs[0].config.transfer.is_none());
    assert_eq!(runs[0].config.data.normalize, Normalize::Unit);
    let frozen = runs[1].config.transfer.as_ref().unwrap();
    assert_eq!(frozen.mode, TransferMode::Frozen);
    assert_eq!(frozen.pretrained, Path::new("tv.safetensors"));
    assert_eq!((frozen.frozen_epochs, frozen.finetune_lr), (0, None));
    assert_eq!(runs[1].config.data.normalize, Normalize::Imagenet);
    assert_eq!(runs[1].label, "frozen");
    // two_phase defaults: half the epochs frozen, then a tenth of the learning rate.
    let two = runs[2].config.transfer.as_ref().unwrap();
    assert_eq!((two.frozen_epochs, two.finetune_lr), (5, Some(0.001)));
    // A sweep checkpoint says how its inputs were prepared.
    let runs = f.parse(&body("ours.safetensors", "")).unwrap().runs();
    assert_eq!(runs[1].config.data.normalize, Normalize::Inception);
    // data.normalize, when set, wins.
    let text = body("tv.safetensors", "")
        + "[data]\ntrain = \"train\"\nimage_size = [8, 8]\nnormalize = \"unit\"\n";
    let runs = Sweep::from_str(&text, &f.path()).unwrap().runs();
    assert_eq!(runs[1].config.data.normalize, Normalize::Unit);

    // Per-backbone weights and stages; a backbone without weights is named.
    let p = f.problems(
        "[train]\npretrained = { resnet18 = \"tv.safetensors\", densenet = \"x\" }\n\
         [transfer]\nunfreeze_from = { resnet18 = \"layer9\" }\n\
         [grid]\nbackbone = [\"resnet18\", \"cnn\"]\nwidth = [4]\ntransfer = [\"finetune\"]\n",
    );
    assert_problem(&p, "train.pretrained.densenet", "is not a backbone");
    assert_problem(&p, "train.pretrained", "has no weights for cnn");
    assert_problem(
        &p,
        "transfer.unfreeze_from.resnet18",
        "did you mean \"layer4\"?",
    );
    let p = f.problems("[train]\ntransfer = \"halfway\"\n");
    assert_problem(&p, "train.transfer", "choose scratch, frozen");
    let p = f.problems(
        "[train]\nepochs = 4\npretrained = \"tv.safetensors\"\nbackbone = \"resnet18\"\nwidth = 4\n\
         transfer = \"two_phase\"\n[transfer]\nfrozen_epochs = 4\nfinetune_lr = 0\n",
    );
    assert_problem(&p, "transfer.frozen_epochs", "leave none to fine-tune");
    assert_problem(&p, "transfer.finetune_lr", "(0, 10]");
}

#[test]
fn schedules_are_a_grid_key_with_settings_tables() {
    let f = Fixture::new();
    let s = f
        .parse(
            "[train]\nepochs = 6\n[grid]\nschedule = [\"constant\", \"cosine\", \"one_cycle\"]\n\
             [schedule.cosine]\nwarmup_epochs = 1\nmin_lr = 1e-5\n",
        )
        .unwrap();
    let runs = s.runs();
    assert_eq!(runs.len(), 3);
    assert_eq!(
        runs[0].config.schedule, None,
        "constant is left out of the config"
    );
    assert_eq!(
        runs[1].config.schedule,
        Some(crate::run::Schedule::Cosine {
            warmup_epochs: 1,
            warmup_start: 0.01,
            min_lr: 1e-5
        })
    );
    assert_eq!(
        runs[2].config.schedule,
        crate::run::Schedule::default_for("one_cycle")
    );
    assert_eq!(runs[1].label, "cosine");
    // A fixed schedule in [train] needs no grid.
    let s = f
        .parse("[train]\nschedule = \"step\"\n[schedule.step]\nstep_size = 3\ngamma = 0.2\n")
        .unwrap();
    assert_eq!(
        s.runs()[0].config.schedule,
        Some(crate::run::Schedule::Step {
            step_size: 3,
            gamma: 0.2
        })
    );
    // A sweep without schedules keeps its run ids (constant is not in the config).
    let plain = f.parse("[train]\nlr = 0.01\n").unwrap();
    let constant = f
        .parse("[train]\nlr = 0.01\nschedule = \"constant\"\n")
        .unwrap();
    assert_eq!(plain.runs()[0].id, constant.runs()[0].id);
}

#[test]
fn schedule_mistakes_name_the_key() {
    let f = Fixture::new();
    let p = f.problems("[grid]\nschedule = [\"cosin\"]\n");
    assert_problem(
        &p,
        "grid.schedule[0]",
        "unknown schedule \"cosin\"; choose one of",
    );
    let p = f.problems(
        "[schedule.cosine]\nwarmup = 2\n[schedule.cyclic]\nbase_lr = 0.2\nmax_lr = 0.1\n\
         [schedule.step]\nstep_size = 2.5\n[schedule.one_cycle]\npct_start = \"0.3\"\n\
         [schedule.linear]\n",
    );
    assert_problem(&p, "schedule.cosine.warmup", "did you mean `warmup_");
    assert_problem(&p, "schedule.cyclic.base_lr", "above max_lr 0.1");
    assert_problem(&p, "schedule.step", "whole number of epochs");
    assert_problem(&p, "schedule.one_cycle.pct_start", "expected a number");
    assert_problem(&p, "schedule.linear", "unknown key");
}

#[test]
fn balance_is_a_grid_key_with_a_settings_table() {
    let f = Fixture::new();
    let s = f
        .parse(
            "[grid]\nbalance = [\"none\", \"clip\", \"class_weights\"]\n\
             [balance]\nclip = [5, 50]\naugment_classes = { a = 3 }\n",
        )
        .unwrap();
    let runs = s.runs();
    use crate::run::Balance;
    assert_eq!(runs[0].config.balance, None);
    assert_eq!(
        runs[1].config.balance,
        Some(Balance::Clip { min: 5, max: 50 })
    );
    assert_eq!(runs[2].config.balance, Some(Balance::ClassWeights));
    assert_eq!(runs[2].label, "balance=class_weights");
    assert_eq!(runs[0].config.augment_classes.get("a"), Some(&3));
    // Without [balance], clip is the seeds' [250, 1000]; `none` keeps the run id.
    let s = f.parse("[train]\nbalance = \"clip\"\n").unwrap();
    assert_eq!(
        s.runs()[0].config.balance,
        Some(Balance::Clip {
            min: 250,
            max: 1000
        })
    );
    let plain = f.parse("").unwrap();
    let none = f.parse("[train]\nbalance = \"none\"\n").unwrap();
    assert_eq!(plain.runs()[0].id, none.runs()[0].id);
}

#[test]
fn balance_mistakes_name_the_key() {
    let f = Fixture::new();
    let p = f.problems("[grid]\nbalance = [\"smote\"]\n");
    assert_problem(&p, "grid.balance[0]", "unknown balance \"smote\"");
    let p = f.problems(
        "[balance]\nclip = [100, 10]\naugment_classes = { a = 1, \"b c\" = \"x\" }\nmode = 1\n",
    );
    assert_problem(&p, "balance.clip", "1 <= min <= max");
    assert_problem(&p, "balance.augment_classes.a", "from 2 to 100");
    assert_problem(&p, "balance.augment_classes.\"b c\"", "got the string");
    assert_problem(&p, "balance.mode", "unknown key");
    // With the data listed (sweep validate), a class that is not a folder is named.
    let text = with_data("[balance]\naugment_classes = { b = 2 }\n");
    let e = Sweep::from_str_checked(&text, &f.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("no class folder of that name"), "{e}");
}

#[test]
fn newer_augment_settings_parse_and_name_their_mistakes() {
    use crate::run::{Crop, Erase, Fill, Preset};
    let f = Fixture::new();
    let s = f
        .parse(
            "[train]\naugment = \"strong\"\n[augment.strong]\nhflip = true\nfill = \"constant\"\n\
             fill_value = 128\nsaturation = [0.5, 1.5]\nhue = 0.05\ncrop = true\nerase = 0.25\n\
             randaugment = { ops = 3 }\n",
        )
        .unwrap();
    let a = &s.runs()[0].config.augment_settings;
    assert_eq!(a.fill, Fill::Constant { value: 128.0 });
    assert_eq!(a.saturation, Some([0.5, 1.5]));
    assert_eq!(a.hue, 0.05);
    assert_eq!(a.crop, Some(Crop::default()));
    assert_eq!(
        a.erase,
        Some(Erase {
            p: 0.25,
            ..Erase::default()
        })
    );
    assert_eq!(
        a.preset,
        Some(Preset::RandAugment {
            ops: 3,
            magnitude: 9
        })
    );
    let s = f
        .parse(
            "[train]\naugment = \"t\"\n[augment.t]\ntrivialaugment = true\n\
             crop = { scale = [0.5, 1.0] }\nfill = \"reflect\"\n",
        )
        .unwrap();
    let a = &s.runs()[0].config.augment_settings;
    assert_eq!(a.preset, Some(Preset::TrivialAugment));
    assert_eq!(a.crop.unwrap().scale, [0.5, 1.0]);
    assert_eq!(a.crop.unwrap().ratio, Crop::default().ratio);
    assert_eq!(a.fill, Fill::Reflect);

    let p = f.problems(
        "[train]\naugment = \"x\"\n[augment.x]\nfill = \"wrap\"\nfill_value = 3\nhue = 0.7\n\
         crop = { scale = [0.5, 2.0], area = 1 }\nerase = \"yes\"\nrandaugment = { ops = 0, magnitude = 40 }\n\
         trivialaugment = true\n",
    );
    assert_problem(
        &p,
        "augment.x.fill",
        "\"nearest\", \"constant\" or \"reflect\"",
    );
    assert_problem(&p, "augment.x.fill_value", "add that, or remove fill_value");
    assert_problem(&p, "augment.x.hue", "<= 0.5");
    assert_problem(&p, "augment.x.crop", "area");
    assert_problem(&p, "augment.x.erase", "expected true or a table");
    assert_problem(&p, "augment.x.trivialaugment", "one preset");
}

#[test]
fn tta_is_a_train_setting() {
    use crate::run::Tta;
    let f = Fixture::new();
    let s = f.parse("[train]\ntta = \"flip\"\n").unwrap();
    assert_eq!(s.runs()[0].config.train.tta, Some(Tta::Flip));
    let s = f.parse("[train]\ntta = { crops = 10 }\n").unwrap();
    assert_eq!(s.runs()[0].config.train.tta, Some(Tta::Crops { crops: 10 }));
    // Unset, the config (and so the run id) is as before.
    let plain = f.parse("").unwrap();
    assert!(!serde_json::to_string(&plain.runs()[0].config)
        .unwrap()
        .contains("tta"));
    for bad in [
        "tta = \"mirror\"",
        "tta = { crops = 7 }",
        "tta = { crops = 10, flip = true }",
    ] {
        let p = f.problems(&format!("[train]\n{bad}\n"));
        assert_problem(&p, "train.tta", "ten-crop");
    }
}

#[test]
fn swa_is_a_train_setting() {
    use crate::run::Swa;
    let f = Fixture::new();
    let s = f
        .parse("[train]\nswa = { start_epoch = 8, lr = 0.01 }\n")
        .unwrap();
    assert_eq!(
        s.runs()[0].config.train.swa,
        Some(Swa {
            start_epoch: 8,
            lr: Some(0.01)
        })
    );
    let s = f.parse("[train]\nswa = { start_epoch = 3 }\n").unwrap();
    assert_eq!(s.runs()[0].config.train.swa.unwrap().lr, None);
    let p = f.problems("[train]\nswa = { lr = 0.01, decay = 1 }\n");
    assert_problem(&p, "train.swa", "needs start_epoch");
    let p = f.problems("[train]\nswa = { start_epoch = 0, lr = -1 }\n");
    assert_problem(&p, "train.swa.start_epoch", "epochs count from 1");
    assert_problem(&p, "train.swa.lr", "a learning rate");
}
