//! Report speed on a large store: a sweep of 10,000 runs x 50 epochs x 20 classes (issue 11:
//! each report in under a second). The store is built once through the real writer
//! (`Storage::apply`, as `sweep run` stores epochs) and kept under `target/bench-reports/`;
//! then each report is made from it as `sweep report` makes it (open read-only, load, render),
//! three times, and the fastest is printed.
//!
//! `cargo bench --bench reports -- [--runs N] [--epochs E]`
//! Every figure is also printed as `RESULT <report> <ms>`.
use std::path::{Path, PathBuf};
use std::time::Instant;

use sweep::report::compare::effects;
use sweep::report::html::{html_report, Sections};
use sweep::report::{
    best_table, compare_table, effects_table, runs_table, BestRun, Comparison, RunResult,
    SweepReport, TableStyle,
};
use sweep::run::{
    Confusion, EpochRecord, EpochSummary, Evaluation, Event, Metrics, Monitor, RunEnd, RunStart,
};
use sweep::store::{self, SqliteStore, Storage};
use sweep::sweep::Sweep;

mod common;

const CLASSES: usize = 20;

/// A deterministic confusion matrix: mostly right, a run- and epoch-dependent share wrong.
fn confusion(run: usize, epoch: usize, per_class: u64) -> Confusion {
    let mut c = Confusion::new(CLASSES);
    for t in 0..CLASSES {
        let wrong = ((run * 7 + epoch * 3 + t * 5) % 9) as u64;
        c.matrix[t][t] = per_class - wrong;
        c.matrix[t][(t + 1 + run % 3) % CLASSES] += wrong;
    }
    c
}

fn build(path: &Path, runs: usize, epochs: usize) {
    let dir = path.parent().expect("a folder");
    std::fs::create_dir_all(dir.join("train/a")).expect("bench folder");
    // 5 backbones x 20 learning rates x 10 batch sizes x 10 seeds = 10,000 runs.
    let lrs: Vec<String> = (1..=20).map(|i| format!("{}", i as f64 * 1e-3)).collect();
    let text = format!(
        "name = \"big\"\n[data]\ntrain = \"train\"\nimage_size = 80\n[train]\nepochs = {epochs}\n\
         [grid]\nbackbone = [\"cnn\", \"resnet18\", \"resnet34\", \"vgg11\", \"xception\"]\n\
         lr = [{}]\nbatch_size = [8, 16, 24, 32, 40, 48, 56, 64, 72, 80]\n\
         seed = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n",
        lrs.join(", ")
    );
    let file = dir.join("big.toml");
    std::fs::write(&file, &text).expect("sweep file");
    let sweep = Sweep::from_str(&text, &file).expect("a valid sweep");
    let specs: Vec<_> = sweep.runs().into_iter().take(runs).collect();
    let mut db = SqliteStore::open(path).expect("a new store");
    db.register("big", &file, &specs, true).expect("register");
    let started = Instant::now();
    let classes: Vec<String> = (0..CLASSES).map(|k| format!("class_{k:02}")).collect();
    for (r, spec) in specs.iter().enumerate() {
        let run = spec.id.clone();
        let start = RunStart {
            device: "cpu".into(),
            classes: classes.clone(),
            parameters: 1000,
            train_images: 4000,
            val_images: 1000,
            test_images: Some(1000),
            skipped: vec![],
            batch_size: spec.config.batch_size,
            resumed_from: None,
        };
        let apply = |db: &mut SqliteStore, e: Event| db.apply(&e).expect("store an event");
        apply(
            &mut db,
            Event::Started {
                run: run.clone(),
                start,
            },
        );
        for epoch in 1..=epochs {
            let c = confusion(r, epoch, 50);
            let val = Metrics::from_confusion(&c);
            let summary = EpochSummary {
                epoch,
                phase: Default::default(),
                lr: spec.config.lr,
                train_loss: 1.0 / epoch as f64,
                train_acc: val.accuracy,
                val_loss: 1.2 / epoch as f64 + (r % 7) as f64 * 0.01,
                val_acc: val.accuracy,
                val_macro_f1: val.macro_f1,
                val_weighted_f1: val.weighted_f1,
            };
            let record = EpochRecord {
                summary,
                seconds: 1.0,
                images_per_sec: 100.0,
                val,
                confusion: c,
                checkpoint_saved: false,
            };
            apply(
                &mut db,
                Event::Epoch {
                    run: run.clone(),
                    record,
                },
            );
        }
        let c = confusion(r, epochs + 1, 50);
        let evaluation = Evaluation {
            split: "test".into(),
            epoch: epochs,
            loss: 0.5,
            metrics: Metrics::from_confusion(&c),
            confusion: c,
        };
        apply(
            &mut db,
            Event::Evaluated {
                run: run.clone(),
                evaluation,
            },
        );
        let end = RunEnd {
            stop_reason: format!("completed {epochs} epochs"),
            checkpoint: None,
            checkpoint_epoch: None,
        };
        apply(&mut db, Event::Finished { run, end });
        if (r + 1) % 1000 == 0 {
            eprintln!(
                "  {} runs stored ({:.0} s)",
                r + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
}

/// The fastest of three timings of `f`, in milliseconds, and its output's size.
fn time(name: &str, f: &dyn Fn() -> String) {
    let mut best = f64::INFINITY;
    let mut size = 0;
    for _ in 0..3 {
        let t = Instant::now();
        size = f().len();
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
    }
    println!("{name:28} {best:9.1} ms  ({size} bytes)");
    println!("RESULT {name} {best:.1}");
}

fn main() {
    let runs: usize = common::arg("--runs")
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let epochs: usize = common::arg("--epochs")
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/bench-reports")
        .join(format!("{runs}x{epochs}"))
        .join("sweep.db");
    if !path.exists() {
        eprintln!(
            "building {} ({runs} runs x {epochs} epochs x {CLASSES} classes) ...",
            path.display()
        );
        let t = Instant::now();
        build(&path, runs, epochs);
        eprintln!("built in {:.0} s", t.elapsed().as_secs_f64());
    }
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "sweep reports bench: {runs} runs x {epochs} epochs x {CLASSES} classes, store {:.0} MiB",
        size as f64 / (1 << 20) as f64
    );
    let load = || {
        let db =
            store::open_read_only(&store::Location::Sqlite(path.clone())).expect("open the store");
        let report = SweepReport::load(
            db.as_ref(),
            sweep::report::Sweeps::Latest,
            Monitor::ValMacroF1,
        )
        .expect("load");
        (db, report)
    };
    time("runs table", &|| {
        let (_db, report) = load();
        runs_table(&report, TableStyle::Terminal)
    });
    time("--best", &|| {
        let (db, report) = load();
        let best = BestRun::load(db.as_ref(), &report).expect("best");
        best_table(&best, TableStyle::Terminal, 100)
    });
    time("--compare backbone", &|| {
        let (db, report) = load();
        let c = Comparison::by_key(db.as_ref(), &report, "backbone").expect("compare");
        compare_table(&c, TableStyle::Terminal)
    });
    time("--by lr", &|| {
        let (_db, report) = load();
        let e = effects(&report, "lr").expect("by");
        effects_table(&report, "lr", &e, TableStyle::Terminal)
    });
    time("--format html", &|| {
        let (db, report) = load();
        let best = BestRun::load(db.as_ref(), &report).expect("best");
        let c = Comparison::by_key(db.as_ref(), &report, "backbone").expect("compare");
        let curves: Vec<&RunResult> = report.runs.iter().take(5).collect();
        let sections = Sections {
            best: Some(&best),
            comparison: Some(&c),
            effects: None,
            curves,
        };
        html_report(&report, &sections).expect("html")
    });
}
