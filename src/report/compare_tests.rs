//! `--compare` and `--by` on a fixed store: two backbones x two learning rates, three runs
//! finished with confusion matrices worked out by hand, one not started.
//!
//! | run | backbone | lr | val confusion (rows = true cat, dog) | cat F1 | dog F1 | macro F1 |
//! |---|---|---|---|---|---|---|
//! | A | cnn | 0.1 | [[9, 1], [4, 6]] | 0.7826 | 0.7059 | 0.7442 |
//! | B | cnn | 0.01 | [[5, 5], [5, 5]] | 0.5 | 0.5 | 0.5 |
//! | C | resnet18 | 0.1 | [[6, 4], [0, 10]] | 0.75 | 0.8333 | 0.7917 |
//! | D | resnet18 | 0.01 | (no epoch) | | | |
//!
//! (A: cat precision 9/13, recall 9/10; dog precision 6/7, recall 6/10. C: cat precision 1,
//! recall 0.6; dog precision 10/14, recall 1.)
use super::compare::{config_value, effects, Comparison};
use super::*;
use crate::run::{Confusion, EpochRecord, Event, Metrics, RunStart};
use crate::store::{SqliteStore, Storage};
use crate::sweep::Sweep;

fn store() -> (SqliteStore, Vec<String>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("train/a")).unwrap();
    let text = "name = \"cmp\"\n[data]\ntrain = \"train\"\nimage_size = [8, 8]\n\
                [grid]\nbackbone = [\"cnn\", \"resnet18\"]\nlr = [0.1, 0.01]\n";
    let sweep = Sweep::from_str(text, &dir.path().join("cmp.toml")).unwrap();
    let runs = sweep.runs();
    let mut store = SqliteStore::in_memory().unwrap();
    store.register("cmp", &sweep.file, &runs, true).unwrap();
    let matrices = [[[9, 1], [4, 6]], [[5, 5], [5, 5]], [[6, 4], [0, 10]]];
    for (run, m) in runs.iter().zip(matrices) {
        let id = run.id.clone();
        let start = RunStart {
            device: "cpu".into(),
            classes: vec!["cat".into(), "dog".into()],
            parameters: 10,
            train_images: 80,
            val_images: 20,
            test_images: None,
            skipped: vec![],
            batch_size: 8,
            resumed_from: None,
        };
        store
            .apply(&Event::Started {
                run: id.clone(),
                start,
            })
            .unwrap();
        let mut confusion = Confusion::new(2);
        for (t, row) in m.iter().enumerate() {
            for (p, n) in row.iter().enumerate() {
                for _ in 0..*n {
                    confusion.add(t, p);
                }
            }
        }
        let val = Metrics::from_confusion(&confusion);
        let summary = crate::run::EpochSummary {
            epoch: 1,
            phase: Default::default(),
            lr: 0.1,
            train_loss: 0.5,
            train_acc: 0.7,
            val_loss: 0.4,
            val_acc: val.accuracy,
            val_macro_f1: val.macro_f1,
            val_weighted_f1: val.weighted_f1,
        };
        let record = EpochRecord {
            summary,
            seconds: 1.0,
            images_per_sec: 80.0,
            val,
            confusion,
            checkpoint_saved: false,
        };
        store.apply(&Event::Epoch { run: id, record }).unwrap();
    }
    let ids = runs.iter().map(|r| r.id.clone()).collect();
    (store, ids, dir)
}

fn report(store: &SqliteStore) -> SweepReport {
    SweepReport::load(store, Sweeps::Latest, Monitor::ValMacroF1).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 5e-5
}

#[test]
fn config_values_read_as_sweep_files_write_them() {
    let (store, _, _dir) = store();
    let r = report(&store);
    let config = &r.runs[0].run.config;
    assert_eq!(
        config_value(config, "backbone").as_deref(),
        Some("resnet18")
    );
    assert_eq!(config_value(config, "lr").as_deref(), Some("0.1"));
    assert_eq!(config_value(config, "transfer").as_deref(), Some("scratch"));
    assert_eq!(config_value(config, "precision").as_deref(), Some("fp32"));
    assert_eq!(config_value(config, "weight_decay").as_deref(), Some("0"));
    assert_eq!(config_value(config, "data.normalize"), None);
    assert_eq!(config_value(config, "data.channels").as_deref(), Some("3"));
    assert_eq!(config_value(config, "nonsense"), None);
}

#[test]
fn compare_puts_the_best_run_of_each_value_side_by_side() {
    let (store, ids, _dir) = store();
    let c = Comparison::by_key(&store, &report(&store), "backbone").unwrap();
    let values: Vec<&str> = c.columns.iter().map(|c| c.value.as_str()).collect();
    assert_eq!(values, ["cnn", "resnet18"], "in the order the grid expands");
    assert_eq!(c.columns[0].result.run.id, ids[0], "A is cnn's best");
    assert_eq!(c.columns[1].result.run.id, ids[2], "C is resnet18's best");
    let f1: Vec<Vec<f64>> = c
        .columns
        .iter()
        .map(|col| col.val.metrics.classes.iter().map(|k| k.f1).collect())
        .collect();
    assert!(close(f1[0][0], 0.7826) && close(f1[0][1], 0.7059), "{f1:?}");
    assert!(close(f1[1][0], 0.75) && close(f1[1][1], 0.8333), "{f1:?}");

    // cat is best in A (cnn), dog in C (resnet18): marked in every format.
    let table = compare_table(&c, TableStyle::Terminal);
    assert!(
        table.contains("0.7826*") && table.contains("0.8333*"),
        "{table}"
    );
    assert!(
        !table.contains("0.7500*") && !table.contains("0.7059*"),
        "{table}"
    );
    let md = compare_table(&c, TableStyle::Markdown);
    assert!(
        md.contains("**0.7826**") && md.contains("**0.8333**"),
        "{md}"
    );
    let json = compare_json(&c);
    assert_eq!(json["best_by_class"]["val"][0]["best_f1"][0], "cnn");
    assert_eq!(json["best_by_class"]["val"][1]["best_f1"][0], "resnet18");
    assert_eq!(json["columns"][1]["run_id"], ids[2].as_str());
    assert!(json["best_by_class"]["test"].is_null(), "no test folder");

    // Named runs, by prefix, in the order given.
    let c = Comparison::of_runs(&store, &report(&store), &[&ids[2][..6], &ids[1]]).unwrap();
    let got: Vec<&str> = c.columns.iter().map(|c| c.result.run.id.as_str()).collect();
    assert_eq!(got, [ids[2].as_str(), ids[1].as_str()]);
    for (bad, says) in [
        (&ids[3][..], "no finished epoch"),
        ("zzzz", "has an id starting with"),
        ("ab", "has an id starting with"),
    ] {
        let e = Comparison::of_runs(&store, &report(&store), &[bad])
            .unwrap_err()
            .to_string();
        assert!(e.contains(says), "{bad}: {e}");
    }
    let e = Comparison::by_key(&store, &report(&store), "lrr")
        .unwrap_err()
        .to_string();
    assert!(e.contains("backbone, width, transfer"), "{e}");
}

#[test]
fn by_shows_best_mean_and_worst_per_value() {
    let (store, ids, _dir) = store();
    let r = report(&store);
    let lr = effects(&r, "lr").unwrap();
    assert_eq!(lr.len(), 2);
    assert_eq!(
        (lr[0].value.as_str(), lr[0].runs, lr[0].scored),
        ("0.1", 2, 2)
    );
    assert!(close(lr[0].best.unwrap(), 0.7917) && close(lr[0].worst.unwrap(), 0.7442));
    assert!(close(lr[0].mean.unwrap(), (0.79167 + 0.74425) / 2.0));
    assert_eq!(lr[0].best_run.as_ref().unwrap().0, ids[2]);
    // lr 0.01: B scored, D never started.
    assert_eq!(
        (lr[1].value.as_str(), lr[1].runs, lr[1].scored),
        ("0.01", 2, 1)
    );
    assert!(close(lr[1].best.unwrap(), 0.5) && close(lr[1].mean.unwrap(), 0.5));
    let table = effects_table(&r, "lr", &lr, TableStyle::Terminal);
    assert!(table.contains("2 (1 scored)"), "{table}");
    let json = effects_json(&r, "lr", &lr);
    assert_eq!(json["values"][1]["scored"], 1);
    let backbone = effects(&r, "backbone").unwrap();
    assert!(close(backbone[0].mean.unwrap(), (0.74425 + 0.5) / 2.0));
    assert!(effects(&r, "nonsense").is_err());
}

/// The whole Markdown comparison, as a user pastes it into a slide or an issue (the numbers
/// are the table's at the top of this file).
#[test]
fn compare_markdown_snapshot() {
    let (store, ids, _dir) = store();
    let c = Comparison::by_key(&store, &report(&store), "backbone").unwrap();
    let got = compare_table(&c, TableStyle::Markdown);
    let (a, c_) = (&ids[0], &ids[2]);
    let want = format!(
        "\
Sweep cmp: the best run of each backbone by val_macro_f1
| backbone | run          | label           | best epoch | val_macro_f1 |
|----------|--------------|-----------------|------------|--------------|
| cnn      | {a} | cnn lr=0.1      | 1          | 0.7442       |
| resnet18 | {c_} | resnet18 lr=0.1 | 1          | 0.7917       |

validation (bold: the best F1 of the class; acc is the class's recall)
| class        | support |     cnn f1 | cnn acc | resnet18 f1 | resnet18 acc |
|--------------|---------|------------|---------|-------------|--------------|
| cat          |      10 | **0.7826** |  0.9000 |      0.7500 |       0.6000 |
| dog          |      10 |     0.7059 |  0.6000 |  **0.8333** |       1.0000 |
| macro avg    |         |     0.7442 |  0.7500 |      0.7917 |       0.8000 |
| weighted avg |         |     0.7442 |  0.7500 |      0.7917 |       0.8000 |
| accuracy     |      20 |            |  0.7500 |             |       0.8000 |
"
    );
    assert_eq!(got, want, "got:\n{got}");
}

#[test]
fn one_run_in_full_with_its_confusion_matrix() {
    let (store, ids, _dir) = store();
    let r = RunReport::load(&store, &report(&store), &ids[0][..5]).unwrap();
    assert_eq!(r.result.run.id, ids[0]);
    let table = run_table(&r, TableStyle::Terminal, 100);
    assert!(table.contains("best val_macro_f1"), "{table}");
    assert!(table.contains("lr ") || table.contains("│ lr"), "{table}");
    // Run A's confusion [[9, 1], [4, 6]]: counts, and rows divided by 10.
    let rows: Vec<Vec<String>> = table
        .lines()
        .filter(|l| l.starts_with("│ cat "))
        .map(|l| {
            l.trim_matches('│')
                .split('┆')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect();
    let row = |cells: [&str; 3]| cells.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    assert!(rows.contains(&row(["cat", "9", "1"])), "{rows:?}");
    assert!(rows.contains(&row(["cat", "0.900", "0.100"])), "{rows:?}");
    let json = run_json(&r);
    assert_eq!(
        json["val"]["confusion"],
        serde_json::json!([[9, 1], [4, 6]])
    );
    assert_eq!(
        json["val"]["confusion_normalised"],
        serde_json::json!([[0.9, 0.1], [0.4, 0.6]])
    );
    assert_eq!(json["epochs"][0]["phase"], "scratch");
    // D has not started: its report says so, with no classwise table.
    let d = RunReport::load(&store, &report(&store), &ids[3]).unwrap();
    assert!(d.val.is_none());
    assert!(!run_table(&d, TableStyle::Markdown, 100).contains("CLASSWISE"));
    let e = RunReport::load(&store, &report(&store), "abc")
        .unwrap_err()
        .to_string();
    assert!(e.contains("4 or more characters"), "{e}");
}

fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut r = ::csv::Reader::from_reader(text.as_bytes());
    let mut rows = vec![r.headers().unwrap().iter().map(String::from).collect()];
    rows.extend(
        r.records()
            .map(|x| x.unwrap().iter().map(String::from).collect::<Vec<_>>()),
    );
    rows
}

#[test]
fn where_filters_and_csv_rows() {
    let (store, ids, _dir) = store();
    let mut r = report(&store);
    r.keep_where(&[("lr".into(), "0.1".into())]).unwrap();
    let kept: Vec<&str> = r.runs.iter().map(|r| r.run.id.as_str()).collect();
    assert_eq!(
        kept,
        [ids[2].as_str(), ids[0].as_str()],
        "C then A, best first"
    );
    let e = report(&store)
        .keep_where(&[("lr".into(), "0.5".into())])
        .unwrap_err()
        .to_string();
    assert!(e.contains("its values: 0.01, 0.1"), "{e}");
    let e = report(&store)
        .keep_where(&[("nope".into(), "1".into())])
        .unwrap_err()
        .to_string();
    assert!(e.contains("no run has that key"), "{e}");

    // The runs: a header and one row per run, best first.
    let rows = parse_csv(&super::csv::runs_csv(&r));
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1][1], "cmp", "the sweep");
    assert_eq!(rows[1][3], ids[2]);
    assert!(close(rows[1][11].parse().unwrap(), 0.79167), "{rows:?}");
    // The comparison in long format: 2 runs x 2 classes, the numbers of the table above.
    let c = Comparison::by_key(&store, &report(&store), "backbone").unwrap();
    let rows = parse_csv(&super::csv::compare_csv(&c));
    assert_eq!(rows[0][..5], ["split", "key", "value", "run_id", "class"]);
    assert_eq!(rows.len(), 5);
    assert_eq!(
        rows[1][..5],
        ["val", "backbone", "cnn", ids[0].as_str(), "cat"]
    );
    assert!(close(rows[1][7].parse().unwrap(), 0.7826), "{rows:?}");
    assert_eq!(rows[4][2..5], ["resnet18", ids[2].as_str(), "dog"]);
    assert!(close(rows[4][7].parse().unwrap(), 0.8333), "{rows:?}");
    let effects = effects(&report(&store), "lr").unwrap();
    let rows = parse_csv(&super::csv::effects_csv(&report(&store), "lr", &effects));
    assert_eq!(rows[2][..5], ["lr", "0.01", "val_macro_f1", "2", "1"]);
    let run = RunReport::load(&store, &report(&store), &ids[0]).unwrap();
    let rows = parse_csv(&super::csv::run_csv(&run));
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1][..3], [ids[0].as_str(), "1", "scratch"]);
}

#[test]
fn top_keeps_the_best_compared_columns_in_their_order() {
    let (store, ids, _dir) = store();
    let mut c = Comparison::by_key(&store, &report(&store), "backbone").unwrap();
    c.keep_best(1);
    let kept: Vec<&str> = c.columns.iter().map(|c| c.result.run.id.as_str()).collect();
    assert_eq!(
        kept,
        [ids[2].as_str()],
        "resnet18's C (0.7917) beats cnn's A (0.7442)"
    );
    let named = [ids[1].as_str(), ids[2].as_str(), ids[0].as_str()];
    let mut c = Comparison::of_runs(&store, &report(&store), &named).unwrap();
    c.keep_best(2);
    let kept: Vec<&str> = c.columns.iter().map(|c| c.result.run.id.as_str()).collect();
    assert_eq!(
        kept,
        [ids[2].as_str(), ids[0].as_str()],
        "B (0.5) dropped, order kept"
    );
    c.keep_best(5);
    assert_eq!(c.columns.len(), 2);
}

/// Every grid key reads back from a stored config (`sweep plan`'s columns and the reports'
/// --compare/--by/--where use this one reading).
#[test]
fn every_grid_key_reads_from_a_config() {
    let (store, _, _dir) = store();
    let r = report(&store);
    for key in crate::sweep::GRID_KEYS {
        let v = config_value(&r.runs[0].run.config, key);
        assert!(v.is_some_and(|v| !v.is_empty()), "{key}");
    }
}
