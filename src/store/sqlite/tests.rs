//! SQLite's own store tests: the shared suite on a file, then its file, migrations and
//! schema versions.
use super::{schema, SqliteStore as Store};
use crate::store::conformance::sweep as sweep_of;
use crate::store::*;

use crate::run::{Event, RunEnd};
use crate::run::{FailureKind, RunStatus};
use crate::sweep::Sweep;

fn sweep(dir: &std::path::Path) -> Sweep {
    sweep_of(dir, 2)
}

fn count(store: &Store, sql: &str) -> i64 {
    store.conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// The backend-independent store suite (`store::conformance`) on a database file: several
/// connections, as several `sweep run` processes and reports make.
#[test]
fn the_store_suite_passes_on_sqlite() {
    let fresh = || {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sweep.db");
        let open: Box<dyn Fn() -> Box<dyn Storage> + Sync> =
            Box::new(move || Box::new(Store::open(&path).unwrap()) as Box<dyn Storage>);
        let cleanup: Box<dyn FnOnce()> = Box::new(move || drop(dir));
        (open, cleanup)
    };
    crate::store::conformance::suite(&fresh);
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

/// Failure kinds are stored as the lowercase names they print as.
#[test]
fn failure_kinds_are_stored_by_name() {
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
    let stored: String = store
        .conn
        .query_row("SELECT failure_kind FROM runs WHERE id = ?1", [&id], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(stored, "non_finite");
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
