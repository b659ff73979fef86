//! Store tests on an in-memory database: registering runs, applying events, re-running.
use super::{schema, SqliteStore as Store};
use crate::store::*;

use crate::run::EpochSummary;
use crate::run::{Confusion, Metrics};
use crate::run::{EpochRecord, Evaluation, Event, RunEnd, RunStart};
use crate::run::{FailureKind, RunStatus};
use crate::sweep::Sweep;

fn sweep(dir: &std::path::Path) -> Sweep {
    std::fs::create_dir_all(dir.join("train/a")).unwrap();
    let text =
        "name = \"t\"\n[data]\ntrain = \"train\"\nimage_size = [8, 8]\n[grid]\nlr = [0.1, 0.01]\n";
    Sweep::from_str(text, &dir.join("t.toml")).unwrap()
}

fn started(run: &str) -> Event {
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

fn epoch(run: &str, epoch: usize, val_loss: f64) -> Event {
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

fn count(store: &Store, sql: &str) -> i64 {
    store.conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn events_become_rows_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = sweep(dir.path());
    let runs = s.runs();
    let mut store = Store::in_memory().unwrap();
    let states = store.register(&s.name, &s.file, &runs, true).unwrap();
    assert!(states.iter().all(|st| !st.done));
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
    let end = RunEnd {
        stop_reason: "completed 2 epochs".into(),
        checkpoint: Some("c.safetensors".into()),
        checkpoint_epoch: Some(1),
    };
    store
        .apply(&Event::Finished {
            run: id.clone(),
            end,
        })
        .unwrap();
    store
        .apply(&Event::Failed {
            run: runs[1].id.clone(),
            error: "boom".into(),
            kind: FailureKind::Other,
        })
        .unwrap();

    let sw = store.sweep(None).unwrap();
    assert_eq!(sw.name, "t");
    let rows = store.runs(sw.id).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (
            rows[0].status.as_str(),
            rows[0].attempts,
            rows[0].checkpoint_epoch
        ),
        ("done", 1, Some(1))
    );
    assert_eq!(rows[0].classes, ["cat", "dog"]);
    assert_eq!(rows[0].config["lr"], 0.1);
    assert_eq!(
        (rows[1].status.as_str(), rows[1].error.as_deref()),
        ("failed", Some("boom"))
    );
    let epochs = store.epochs(id).unwrap();
    assert_eq!(epochs.iter().map(|e| e.epoch).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(epochs[1].val_loss, None, "NaN is stored as NULL");
    let val = store.split_metrics(id, "val", 1).unwrap().unwrap();
    assert_eq!(val.class_names, ["cat", "dog"]);
    assert_eq!(val.confusion.matrix, vec![vec![1, 1], vec![0, 2]]);
    assert_eq!(val.metrics.classes[0].recall, 0.5);
    assert_eq!(val.loss, Some(0.9));
    let test = store.split_metrics(id, "test", 1).unwrap().unwrap();
    assert_eq!((test.metrics.support, test.loss), (1, Some(0.3)));
    assert_eq!(store.skipped_files(id).unwrap()[0].reason, "empty file");
    assert!(store.split_metrics(id, "val", 9).unwrap().is_none());
}

#[test]
fn registering_again_keeps_done_runs_and_claims_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let s = sweep(dir.path());
    let runs = s.runs();
    let mut store = Store::in_memory().unwrap();
    store.register(&s.name, &s.file, &runs, true).unwrap();
    let (done, failed) = (&runs[0].id, &runs[1].id);
    for id in [done, failed] {
        store.apply(&started(id)).unwrap();
        store.apply(&epoch(id, 1, 0.9)).unwrap();
    }
    let end = RunEnd {
        stop_reason: "ok".into(),
        checkpoint: None,
        checkpoint_epoch: None,
    };
    store
        .apply(&Event::Finished {
            run: done.clone(),
            end,
        })
        .unwrap();
    store
        .apply(&Event::Failed {
            run: failed.clone(),
            error: "boom".into(),
            kind: FailureKind::Other,
        })
        .unwrap();

    let states = store.register(&s.name, &s.file, &runs, true).unwrap();
    assert_eq!(
        states.iter().map(|st| st.done).collect::<Vec<_>>(),
        [true, false]
    );
    assert_eq!(count(&store, "SELECT COUNT(*) FROM runs"), 2);
    assert_eq!(
        count(
            &store,
            &format!("SELECT COUNT(*) FROM epochs WHERE run_id = '{done}'")
        ),
        1
    );
    // A failed run is queued again and keeps its epochs, to resume from its saved state.
    assert_eq!(
        count(
            &store,
            &format!("SELECT COUNT(*) FROM epochs WHERE run_id = '{failed}'")
        ),
        1
    );
    let rows = store.runs(store.sweep(Some("t")).unwrap().id).unwrap();
    assert_eq!(rows[1].status, RunStatus::Queued);
    // Without a saved state, a claimed run starts over: its old epochs go.
    let alive = |_: &str| true;
    let claim = store.claim(failed, "me:1", 60.0, &alive).unwrap().unwrap();
    assert_eq!(claim.stored_epochs, 1);
    assert!(
        store
            .claim(failed, "other:2", 60.0, &alive)
            .unwrap()
            .is_none(),
        "held by me"
    );
    assert!(
        store
            .claim(failed, "other:2", 60.0, &|_: &str| false)
            .unwrap()
            .is_some(),
        "my process died"
    );
    assert_eq!(store.prepare_resume(failed, None).unwrap(), None);
    assert_eq!(
        count(
            &store,
            &format!("SELECT COUNT(*) FROM epochs WHERE run_id = '{failed}'")
        ),
        0
    );
    assert!(
        store.claim(done, "me:1", 60.0, &alive).unwrap().is_none(),
        "done runs are never claimed"
    );
}

#[test]
fn a_database_file_migrates_once_and_reopens_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/sweep.db");
    drop(Store::open(&path).unwrap());
    let store = Store::open(&path).unwrap();
    assert_eq!(count(&store, "PRAGMA user_version"), schema::VERSION);
    let mode: String = store
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop(store);
    let ro = Store::open_read_only(&path).unwrap();
    assert!(ro.conn.execute("DELETE FROM sweeps", []).is_err());
    assert!(matches!(
        Store::open_read_only(&dir.path().join("no.db")),
        Err(StoreError::Missing(_))
    ));
    assert!(matches!(ro.sweep(None), Err(StoreError::NotFound(_))));
}

#[test]
fn a_newer_schema_is_refused_not_touched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sweep.db");
    drop(Store::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    assert!(matches!(
        Store::open(&path),
        Err(StoreError::TooNew { found: 99, .. })
    ));
}

#[test]
fn failure_kinds_are_stored_and_cleared_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = sweep(dir.path());
    let runs = s.runs();
    let mut store = Store::in_memory().unwrap();
    store.register(&s.name, &s.file, &runs, true).unwrap();
    let id = runs[0].id.clone();
    store
        .apply(&Event::Failed {
            run: id.clone(),
            error: "the loss became NaN".into(),
            kind: FailureKind::NonFinite,
        })
        .unwrap();
    let sweep_id = store.sweep(None).unwrap().id;
    let rows = store.runs(sweep_id).unwrap();
    assert_eq!(rows[0].failure, Some(FailureKind::NonFinite));
    assert_eq!(rows[1].failure, None);
    let stored: String = store
        .conn
        .query_row("SELECT failure_kind FROM runs WHERE id = ?1", [&id], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(stored, "non_finite");
    store.apply(&started(&id)).unwrap();
    assert_eq!(store.runs(sweep_id).unwrap()[0].failure, None);
}

/// A database written before failure kinds (schema 1) reads as before, read-only or migrated.
#[test]
fn schema_1_databases_stay_readable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(schema::MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute_batch(
            "INSERT INTO sweeps (id, name, file, created_at, updated_at) VALUES (1, 'old', 'old.toml', 'x', 'x');
             INSERT INTO runs (id, sweep_id, idx, label, config, status, error)
             VALUES ('r1', 1, 0, 'lr=0.1', '{}', 'failed', 'boom');",
        )
        .unwrap();
    }
    let read = Store::open_read_only(&path).unwrap();
    let rows = read.runs(1).unwrap();
    assert_eq!(
        (rows[0].status, rows[0].error.as_deref(), rows[0].failure),
        (RunStatus::Failed, Some("boom"), None)
    );
    drop(read);
    let migrated = Store::open(&path).unwrap();
    let rows = migrated.runs(1).unwrap();
    assert_eq!((rows[0].status, rows[0].failure), (RunStatus::Failed, None));
}

/// Schema 3 rebuilds the runs table to allow `pruned`: the epochs, metrics and confusion
/// matrices that refer to the runs survive it (with foreign keys on, dropping the old table
/// would have deleted them), and a run can then be pruned.
#[test]
fn schema_2_databases_migrate_to_pruned_keeping_every_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(schema::MIGRATIONS[0]).unwrap();
        conn.execute_batch(schema::MIGRATIONS[1]).unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
        conn.execute_batch(
            "INSERT INTO sweeps (id, name, file, created_at, updated_at) VALUES (1, 'old', 'old.toml', 'x', 'x');
             INSERT INTO runs (id, sweep_id, idx, label, config, status) VALUES ('r1', 1, 1, 'lr=0.1', '{}', 'done');
             INSERT INTO epochs (run_id, epoch, lr, val_acc, seconds, images_per_sec, checkpoint_saved)
             VALUES ('r1', 1, 0.1, 0.5, 1.0, 10.0, 0), ('r1', 2, 0.1, 0.6, 1.0, 10.0, 1);
             INSERT INTO confusion (run_id, split, epoch, matrix) VALUES ('r1', 'val', 2, '[[1]]');",
        )
        .unwrap();
    }
    let mut store = Store::open(&path).unwrap();
    assert_eq!(count(&store, "PRAGMA user_version"), schema::VERSION);
    assert_eq!(count(&store, "SELECT count(*) FROM epochs"), 2);
    assert_eq!(count(&store, "SELECT count(*) FROM confusion"), 1);
    assert_eq!(count(&store, "PRAGMA foreign_keys"), 1);
    assert_eq!(store.epochs("r1").unwrap().len(), 2);
    store
        .apply(&Event::Pruned {
            run: "r1".into(),
            epoch: 2,
            end: RunEnd {
                stop_reason: "pruned by ASHA at epoch 2".into(),
                checkpoint: None,
                checkpoint_epoch: None,
            },
        })
        .unwrap();
    let rows = store.runs(1).unwrap();
    assert_eq!(rows[0].status, RunStatus::Pruned);
    assert_eq!(
        rows[0].stop_reason.as_deref(),
        Some("pruned by ASHA at epoch 2")
    );
    // The arrivals at epoch 2, as a strategy reads them.
    let arrivals = store.epoch_arrivals("old", 2).unwrap();
    assert_eq!(arrivals.len(), 1);
    assert_eq!((arrivals[0].0.as_str(), arrivals[0].1.val_acc), ("r1", 0.6));
    assert!(
        arrivals[0].1.val_loss.is_nan(),
        "a missing value reads as NaN"
    );
}
