//! The store test suite every backend passes: each scenario takes a way to open the same
//! store (a new connection each call) and checks behaviour through the `Storage` and
//! `Reader` interfaces alone. SQLite runs it always; PostgreSQL when a test server is given
//! (`SWEEP_TEST_PG`).
use std::collections::HashMap;
use std::sync::{Arc, Barrier};

use super::*;
use crate::run::{
    Confusion, EpochRecord, EpochSummary, Evaluation, Event, FailureKind, Metrics, RunEnd,
    RunStart, RunStatus,
};
use crate::sweep::Sweep;

/// Opens a new connection to the store under test.
pub type Open<'a> = &'a (dyn Fn() -> Box<dyn Storage> + Sync);
/// A new, empty store: how to connect to it, and how to remove it afterwards.
pub type Fresh = (Box<dyn Fn() -> Box<dyn Storage> + Sync>, Box<dyn FnOnce()>);
type Scenario = (&'static str, fn(Open));

/// A sweep file in `dir` whose grid has `n` learning rates (so `n` runs).
pub fn sweep(dir: &std::path::Path, n: usize) -> Sweep {
    std::fs::create_dir_all(dir.join("train/a")).unwrap();
    let lrs: Vec<String> = (1..=n).map(|k| format!("{}", k as f64 / 1000.0)).collect();
    let text = format!(
        "name = \"t\"\n[data]\ntrain = \"train\"\nimage_size = [8, 8]\n[grid]\nlr = [{}]\n",
        lrs.join(", ")
    );
    std::fs::write(dir.join("t.toml"), &text).unwrap();
    Sweep::from_str(&text, &dir.join("t.toml")).unwrap()
}

pub fn started(run: &str) -> Event {
    Event::Started {
        run: run.into(),
        start: RunStart {
            device: "cpu".into(),
            classes: vec!["cat".into(), "dog".into()],
            parameters: 10,
            train_images: 8,
            val_images: 4,
            test_images: None,
            skipped: vec![crate::run::Skipped {
                path: "x/bad.png".into(),
                reason: "empty file".into(),
            }],
            batch_size: 8,
            resumed_from: None,
        },
    }
}

pub fn epoch(run: &str, epoch: usize, val_loss: f64) -> Event {
    let mut confusion = Confusion::new(2);
    confusion.add(0, 0);
    confusion.add(0, 1);
    confusion.add(1, 1);
    confusion.add(1, 1);
    let val = Metrics::from_confusion(&confusion);
    Event::Epoch {
        run: run.into(),
        record: EpochRecord {
            summary: EpochSummary {
                epoch,
                phase: Default::default(),
                lr: 0.1,
                train_loss: 0.5,
                train_acc: 0.7,
                val_loss,
                val_acc: val.accuracy,
                val_macro_f1: val.macro_f1,
                val_weighted_f1: val.weighted_f1,
            },
            seconds: 1.5,
            images_per_sec: 100.0,
            val,
            confusion,
            checkpoint_saved: true,
        },
    }
}

fn finished(run: &str, checkpoint_epoch: Option<usize>) -> Event {
    Event::Finished {
        run: run.into(),
        end: RunEnd {
            stop_reason: "completed 2 epochs".into(),
            checkpoint: checkpoint_epoch.map(|_| "c.safetensors".into()),
            checkpoint_epoch,
        },
    }
}

fn failed(run: &str, kind: FailureKind) -> Event {
    Event::Failed {
        run: run.into(),
        error: "boom".into(),
        kind,
    }
}

/// Every scenario, in order, each on a store of its own.
pub fn suite(fresh: &dyn Fn() -> Fresh) {
    let scenarios: [Scenario; 6] = [
        (
            "events_become_rows_and_read_back",
            events_become_rows_and_read_back,
        ),
        (
            "registering_again",
            registering_again_keeps_done_runs_and_claims_the_rest,
        ),
        (
            "failure_kinds",
            failure_kinds_are_stored_and_cleared_on_restart,
        ),
        ("retired_runs", runs_the_file_no_longer_makes_are_retired),
        (
            "forget_and_reset",
            forgetting_a_sweep_and_retrying_clear_its_results,
        ),
        (
            "claim_contention",
            eight_workers_claim_each_of_1000_runs_once,
        ),
    ];
    for (name, scenario) in scenarios {
        let (open, cleanup) = fresh();
        eprintln!("store scenario {name}");
        scenario(open.as_ref());
        cleanup();
    }
}

pub fn events_become_rows_and_read_back(open: Open) {
    let dir = tempfile::tempdir().unwrap();
    let s = sweep(dir.path(), 2);
    let runs = s.runs();
    let mut store = open();
    let states = store.register(&s.name, &s.file, &runs, true).unwrap();
    assert!(states.iter().all(|st| !st.done));
    assert_eq!(store.id().unwrap(), open().id().unwrap(), "one identity");
    let id = &runs[0].id;
    store.apply(&started(id)).unwrap();
    store.apply(&epoch(id, 1, 0.9)).unwrap();
    store.apply(&epoch(id, 2, f64::NAN)).unwrap();
    let mut confusion = Confusion::new(2);
    confusion.add(1, 1);
    let evaluation = Evaluation {
        split: "test".into(),
        epoch: 1,
        loss: 0.3,
        metrics: Metrics::from_confusion(&confusion),
        confusion,
    };
    store
        .apply(&Event::Evaluated {
            run: id.clone(),
            evaluation,
        })
        .unwrap();
    store.apply(&finished(id, Some(1))).unwrap();
    store
        .apply(&failed(&runs[1].id, FailureKind::Other))
        .unwrap();

    // Another connection (a report) reads what the writer stored.
    let store = open();
    let sw = store.sweep(None).unwrap();
    assert_eq!(sw.name, "t");
    assert!(sw.updated_at.ends_with('Z'), "{}", sw.updated_at);
    assert_eq!(store.sweep(Some("t")).unwrap(), sw);
    assert!(matches!(
        store.sweep(Some("nope")),
        Err(StoreError::NotFound(_))
    ));
    let rows = store.runs(sw.id).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].status, rows[0].attempts, rows[0].checkpoint_epoch),
        (RunStatus::Done, 1, Some(1))
    );
    assert_eq!(rows[0].checkpoint.as_deref(), Some("c.safetensors"));
    assert_eq!(rows[0].classes, ["cat", "dog"]);
    assert_eq!(rows[0].config["lr"], 0.001);
    assert_eq!(rows[0].owner, None);
    assert_eq!(rows[0].device.as_deref(), Some("cpu"));
    assert_eq!(
        (rows[1].status, rows[1].error.as_deref()),
        (RunStatus::Failed, Some("boom"))
    );
    let epochs = store.epochs(id).unwrap();
    assert_eq!(epochs.iter().map(|e| e.epoch).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(epochs[1].val_loss, None, "NaN is stored as NULL");
    assert_eq!(epochs[0].val_loss, Some(0.9));
    assert!(epochs[0].checkpoint_saved);
    let all = store.sweep_epochs(sw.id).unwrap();
    assert_eq!(all[id.as_str()], epochs);
    assert!(!all.contains_key(runs[1].id.as_str()));
    let val = store.split_metrics(id, "val", 1).unwrap().unwrap();
    assert_eq!(val.class_names, ["cat", "dog"]);
    assert_eq!(val.confusion.matrix, vec![vec![1, 1], vec![0, 2]]);
    assert_eq!(val.metrics.classes[0].recall, 0.5);
    assert_eq!(val.loss, Some(0.9));
    let test = store.split_metrics(id, "test", 1).unwrap().unwrap();
    assert_eq!((test.metrics.support, test.loss), (1, Some(0.3)));
    assert_eq!(store.evaluation(id, "test").unwrap(), Some((1, Some(0.3))));
    let evaluated = store.sweep_evaluations(sw.id, "test").unwrap();
    assert_eq!(evaluated[id.as_str()].epoch, 1);
    assert_eq!(
        evaluated[id.as_str()].confusion.matrix,
        vec![vec![0, 0], vec![0, 1]]
    );
    assert_eq!(store.skipped_files(id).unwrap()[0].reason, "empty file");
    assert!(store.split_metrics(id, "val", 9).unwrap().is_none());
    let arrivals = store.epoch_arrivals("t", 2).unwrap();
    assert_eq!(arrivals.len(), 1);
    assert!(
        arrivals[0].1.val_loss.is_nan(),
        "a missing value reads as NaN"
    );
}

pub fn registering_again_keeps_done_runs_and_claims_the_rest(open: Open) {
    let dir = tempfile::tempdir().unwrap();
    let s = sweep(dir.path(), 2);
    let runs = s.runs();
    let mut store = open();
    store.register(&s.name, &s.file, &runs, true).unwrap();
    let (done, failed_run) = (&runs[0].id, &runs[1].id);
    for id in [done, failed_run] {
        store.apply(&started(id)).unwrap();
        store.apply(&epoch(id, 1, 0.9)).unwrap();
    }
    store.apply(&finished(done, None)).unwrap();
    store
        .apply(&failed(failed_run, FailureKind::Other))
        .unwrap();

    let states = store.register(&s.name, &s.file, &runs, true).unwrap();
    assert_eq!(
        states.iter().map(|st| st.done).collect::<Vec<_>>(),
        [true, false]
    );
    let sweep_id = store.sweep(Some("t")).unwrap().id;
    assert_eq!(store.runs(sweep_id).unwrap().len(), 2);
    assert_eq!(store.epochs(done).unwrap().len(), 1);
    // A failed run is queued again and keeps its epochs, to resume from its saved state.
    assert_eq!(store.epochs(failed_run).unwrap().len(), 1);
    assert_eq!(store.runs(sweep_id).unwrap()[1].status, RunStatus::Queued);
    // Without a saved state, a claimed run starts over: its old epochs go.
    let alive = |_: &str| true;
    let claim = store
        .claim(failed_run, "me:1", 60.0, &alive)
        .unwrap()
        .unwrap();
    assert_eq!(claim.stored_epochs, 1);
    let row = store.runs(sweep_id).unwrap().remove(1);
    assert_eq!(
        (row.status, row.owner.as_deref()),
        (RunStatus::Running, Some("me:1"))
    );
    assert!(
        row.heartbeat_age.is_some_and(|a| (0.0..5.0).contains(&a)),
        "{row:?}"
    );
    let mut other = open();
    assert!(
        other
            .claim(failed_run, "other:2", 60.0, &alive)
            .unwrap()
            .is_none(),
        "held by me"
    );
    assert!(
        store
            .claim(failed_run, "me:1", 60.0, &alive)
            .unwrap()
            .is_none(),
        "never claimed twice by its holder"
    );
    // A stale heartbeat frees it even when its owner cannot be checked (another host).
    assert!(
        other
            .claim(failed_run, "other:2", -1.0, &alive)
            .unwrap()
            .is_some(),
        "heartbeat stale"
    );
    assert!(
        store
            .claim(failed_run, "me:1", 60.0, &|o: &str| o != "other:2")
            .unwrap()
            .is_some(),
        "its process died"
    );
    store.heartbeat("me:1").unwrap();
    assert_eq!(store.prepare_resume(failed_run, None).unwrap(), None);
    assert_eq!(store.epochs(failed_run).unwrap().len(), 0);
    assert!(
        store.claim(done, "me:1", 60.0, &alive).unwrap().is_none(),
        "done runs are never claimed"
    );
    assert!(store
        .claim("no-such-run", "me:1", 60.0, &alive)
        .unwrap()
        .is_none());
    // A stopped run (released on a signal) is claimed at once by anyone.
    store
        .apply(&Event::Stopped {
            run: failed_run.clone(),
            epoch: 0,
        })
        .unwrap();
    let row = store.runs(sweep_id).unwrap().remove(1);
    assert_eq!((row.status, row.owner), (RunStatus::Stopped, None));
    assert!(other
        .claim(failed_run, "other:2", 60.0, &alive)
        .unwrap()
        .is_some());
    // A sweep of the same name from another file that exists is refused.
    let elsewhere = dir.path().join("other.toml");
    std::fs::write(&elsewhere, "").unwrap();
    assert!(matches!(
        store.register(&s.name, &elsewhere, &runs, true),
        Err(StoreError::NameClash { .. })
    ));
}

pub fn failure_kinds_are_stored_and_cleared_on_restart(open: Open) {
    let dir = tempfile::tempdir().unwrap();
    let s = sweep(dir.path(), 2);
    let runs = s.runs();
    let mut store = open();
    store.register(&s.name, &s.file, &runs, true).unwrap();
    let id = runs[0].id.clone();
    store.apply(&failed(&id, FailureKind::NonFinite)).unwrap();
    let sweep_id = store.sweep(None).unwrap().id;
    let rows = store.runs(sweep_id).unwrap();
    assert_eq!(rows[0].failure, Some(FailureKind::NonFinite));
    assert_eq!(rows[1].failure, None);
    store.apply(&started(&id)).unwrap();
    let row = store.runs(sweep_id).unwrap().remove(0);
    assert_eq!((row.failure, row.error), (None, None));
    // After an out-of-memory failure the run starts over at the smaller batch.
    store.apply(&epoch(&id, 1, 0.5)).unwrap();
    store
        .retry_with_batch(&id, 4, "out of memory: batch 8 -> 4")
        .unwrap();
    store.record_dispatch(&id, 12.5).unwrap();
    let row = store.runs(sweep_id).unwrap().remove(0);
    assert_eq!(row.batch_size, Some(4));
    assert_eq!(row.note.as_deref(), Some("out of memory: batch 8 -> 4"));
    assert!(store.epochs(&id).unwrap().is_empty());
    let claim = store
        .claim(&id, "me:1", 60.0, &|_: &str| false)
        .unwrap()
        .unwrap();
    assert_eq!(claim.batch_size, Some(4));
}

pub fn runs_the_file_no_longer_makes_are_retired(open: Open) {
    let dir = tempfile::tempdir().unwrap();
    let s = sweep(dir.path(), 3);
    let runs = s.runs();
    let mut store = open();
    store.register(&s.name, &s.file, &runs, true).unwrap();
    let sweep_id = store.sweep(None).unwrap().id;
    store.register(&s.name, &s.file, &runs[..2], true).unwrap();
    let retired: Vec<bool> = store
        .runs(sweep_id)
        .unwrap()
        .iter()
        .map(|r| r.retired)
        .collect();
    assert_eq!(retired, [false, false, true]);
    // A strategy adding runs registers only those: nothing else is retired.
    store.register(&s.name, &s.file, &runs[2..], false).unwrap();
    let retired: Vec<bool> = store
        .runs(sweep_id)
        .unwrap()
        .iter()
        .map(|r| r.retired)
        .collect();
    assert_eq!(retired, [false, false, false]);
    // Registering twice changes nothing.
    let again = store.register(&s.name, &s.file, &runs, true).unwrap();
    assert_eq!(again.len(), 3);
    assert_eq!(store.runs(sweep_id).unwrap().len(), 3);
}

pub fn forgetting_a_sweep_and_retrying_clear_its_results(open: Open) {
    let dir = tempfile::tempdir().unwrap();
    let s = sweep(dir.path(), 2);
    let runs = s.runs();
    let mut store = open();
    store.register(&s.name, &s.file, &runs, true).unwrap();
    for run in &runs {
        store.apply(&started(&run.id)).unwrap();
        store.apply(&epoch(&run.id, 1, 0.4)).unwrap();
    }
    // Pruned runs are kept as done when registered again.
    store
        .apply(&Event::Pruned {
            run: runs[1].id.clone(),
            epoch: 1,
            end: RunEnd {
                stop_reason: "pruned by ASHA at epoch 1".into(),
                checkpoint: None,
                checkpoint_epoch: None,
            },
        })
        .unwrap();
    let states = store.register(&s.name, &s.file, &runs, true).unwrap();
    assert_eq!(
        states.iter().map(|s| s.done).collect::<Vec<_>>(),
        [false, true]
    );
    assert_eq!(store.forget_sweep("t").unwrap(), 2);
    assert!(store.epochs(&runs[0].id).unwrap().is_empty());
    let sweep_id = store.sweep(Some("t")).unwrap().id;
    assert!(store.runs(sweep_id).unwrap().is_empty());
    assert_eq!(store.forget_sweep("t").unwrap(), 0);
    let states = store.register(&s.name, &s.file, &runs, true).unwrap();
    assert!(states.iter().all(|s| !s.done));
}

/// Claim contention: 8 workers, each with its own connection, try to claim every one of
/// 1,000 runs (in different orders); each run is claimed exactly once.
pub fn eight_workers_claim_each_of_1000_runs_once(open: Open) {
    let dir = tempfile::tempdir().unwrap();
    let s = sweep(dir.path(), 1000);
    let runs = s.runs();
    open().register(&s.name, &s.file, &runs, true).unwrap();
    let ids: Arc<Vec<String>> = Arc::new(runs.iter().map(|r| r.id.clone()).collect());
    let (claimed, _) = contend(open, &ids, 8);
    let mut times: HashMap<&str, usize> = HashMap::new();
    for (_, run) in &claimed {
        *times.entry(run.as_str()).or_default() += 1;
    }
    assert_eq!(times.len(), 1000, "every run claimed");
    assert!(times.values().all(|&n| n == 1), "no run claimed twice");
    let store = open();
    let rows = store.runs(store.sweep(None).unwrap().id).unwrap();
    for row in rows {
        let (w, _) = claimed.iter().find(|(_, r)| *r == row.id).unwrap();
        assert_eq!(row.owner, Some(format!("host:{w}")));
    }
}

/// `workers` threads, each with its own connection, try to claim every run, each starting
/// at its own offset. Returns (worker, run) for each claim and the seconds it took.
pub fn contend(open: Open, ids: &Arc<Vec<String>>, workers: usize) -> (Vec<(usize, String)>, f64) {
    let barrier = Arc::new(Barrier::new(workers));
    let t0 = std::time::Instant::now();
    let claimed = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let ids = Arc::clone(ids);
                let barrier = Arc::clone(&barrier);
                let mut store = open();
                scope.spawn(move || {
                    barrier.wait();
                    let owner = format!("host:{w}");
                    let n = ids.len();
                    let mut mine = Vec::new();
                    for k in 0..n {
                        let id = &ids[(k + w * n / workers) % n];
                        if store
                            .claim(id, &owner, 60.0, &|_: &str| true)
                            .unwrap()
                            .is_some()
                        {
                            mine.push((w, id.clone()));
                        }
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    (claimed, t0.elapsed().as_secs_f64())
}
