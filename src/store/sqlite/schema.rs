//! Versioned migrations. Each entry moves the schema one version up; never edit a released one.
use std::path::Path;

use rusqlite::Connection;

use super::{Result, StoreError};

pub(super) const MIGRATIONS: &[&str] = &[
    // 1: sweeps, runs, epochs, per-class metrics, confusion matrices, evaluations, skipped files.
    r#"
    CREATE TABLE sweeps (
        id         INTEGER PRIMARY KEY,
        name       TEXT NOT NULL UNIQUE,
        file       TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE runs (
        id               TEXT PRIMARY KEY,
        sweep_id         INTEGER NOT NULL REFERENCES sweeps(id),
        idx              INTEGER NOT NULL,
        label            TEXT NOT NULL,
        config           TEXT NOT NULL,
        status           TEXT NOT NULL
                         CHECK (status IN ('queued', 'running', 'done', 'failed', 'stopped')),
        error            TEXT,
        device           TEXT,
        attempts         INTEGER NOT NULL DEFAULT 0,
        classes          TEXT,
        parameters       INTEGER,
        train_images     INTEGER,
        val_images       INTEGER,
        test_images      INTEGER,
        stop_reason      TEXT,
        checkpoint       TEXT,
        checkpoint_epoch INTEGER,
        started_at       TEXT,
        finished_at      TEXT,
        heartbeat_at     TEXT,
        owner            TEXT,
        batch_size       INTEGER,
        note             TEXT,
        dispatch_ms      REAL
    );
    CREATE INDEX runs_by_sweep ON runs(sweep_id, idx);
    CREATE TABLE epochs (
        run_id           TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        epoch            INTEGER NOT NULL,
        lr               REAL NOT NULL,
        train_loss       REAL,
        train_acc        REAL,
        val_loss         REAL,
        val_acc          REAL,
        val_macro_f1     REAL,
        val_weighted_f1  REAL,
        seconds          REAL NOT NULL,
        images_per_sec   REAL NOT NULL,
        checkpoint_saved INTEGER NOT NULL,
        PRIMARY KEY (run_id, epoch)
    );
    CREATE TABLE evaluations (
        run_id      TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        split       TEXT NOT NULL,
        epoch       INTEGER NOT NULL,
        loss        REAL,
        accuracy    REAL NOT NULL,
        macro_f1    REAL NOT NULL,
        weighted_f1 REAL NOT NULL,
        PRIMARY KEY (run_id, split, epoch)
    );
    CREATE TABLE class_metrics (
        run_id      TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        split       TEXT NOT NULL,
        epoch       INTEGER NOT NULL,
        class_index INTEGER NOT NULL,
        class_name  TEXT NOT NULL,
        precision   REAL NOT NULL,
        recall      REAL NOT NULL,
        f1          REAL NOT NULL,
        support     INTEGER NOT NULL,
        PRIMARY KEY (run_id, split, epoch, class_index)
    );
    CREATE TABLE confusion (
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        split  TEXT NOT NULL,
        epoch  INTEGER NOT NULL,
        matrix TEXT NOT NULL,
        PRIMARY KEY (run_id, split, epoch)
    );
    CREATE TABLE skipped_files (
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        path   TEXT NOT NULL,
        reason TEXT NOT NULL,
        PRIMARY KEY (run_id, path)
    );
    "#,
    // 2: why a failed run failed (`FailureKind`); NULL for runs stored before it existed.
    r#"
    ALTER TABLE runs ADD COLUMN failure_kind TEXT;
    "#,
    // 3: the status `pruned` (stopped for good by the search strategy). SQLite cannot alter
    // a CHECK constraint, so the table is rebuilt (with foreign keys off: see `migrate`).
    r#"
    CREATE TABLE runs_v3 (
        id               TEXT PRIMARY KEY,
        sweep_id         INTEGER NOT NULL REFERENCES sweeps(id),
        idx              INTEGER NOT NULL,
        label            TEXT NOT NULL,
        config           TEXT NOT NULL,
        status           TEXT NOT NULL
                         CHECK (status IN ('queued', 'running', 'done', 'failed', 'stopped', 'pruned')),
        error            TEXT,
        device           TEXT,
        attempts         INTEGER NOT NULL DEFAULT 0,
        classes          TEXT,
        parameters       INTEGER,
        train_images     INTEGER,
        val_images       INTEGER,
        test_images      INTEGER,
        stop_reason      TEXT,
        checkpoint       TEXT,
        checkpoint_epoch INTEGER,
        started_at       TEXT,
        finished_at      TEXT,
        heartbeat_at     TEXT,
        owner            TEXT,
        batch_size       INTEGER,
        note             TEXT,
        dispatch_ms      REAL,
        failure_kind     TEXT
    );
    INSERT INTO runs_v3 SELECT id, sweep_id, idx, label, config, status, error, device, attempts,
        classes, parameters, train_images, val_images, test_images, stop_reason, checkpoint,
        checkpoint_epoch, started_at, finished_at, heartbeat_at, owner, batch_size, note,
        dispatch_ms, failure_kind FROM runs;
    DROP TABLE runs;
    ALTER TABLE runs_v3 RENAME TO runs;
    CREATE INDEX runs_by_sweep ON runs(sweep_id, idx);
    "#,
    // 4: skipped files keep their path's exact bytes (a name that is not UTF-8, from an
    // archive made on Windows, say); `path` is the readable (lossy) form.
    r#"
    CREATE TABLE skipped_files_v4 (
        run_id   TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        path     TEXT NOT NULL,
        path_raw BLOB NOT NULL,
        reason   TEXT NOT NULL,
        PRIMARY KEY (run_id, path_raw)
    );
    INSERT INTO skipped_files_v4 SELECT run_id, path, CAST(path AS BLOB), reason FROM skipped_files;
    DROP TABLE skipped_files;
    ALTER TABLE skipped_files_v4 RENAME TO skipped_files;
    "#,
    // 5: the database's identity: resume states record it, so a run never resumes from a
    // state that another (or a deleted) database stored the epochs of.
    r#"
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta (key, value) VALUES ('store_id', lower(hex(randomblob(16))));
    "#,
    // 6: runs the sweep file no longer produces (removed from its grid) are marked, not mixed
    // in with the current ones.
    r#"
    ALTER TABLE runs ADD COLUMN retired INTEGER NOT NULL DEFAULT 0;
    "#,
    // 7: what each epoch trained (transfer learning): scratch, frozen or finetune.
    r#"
    ALTER TABLE epochs ADD COLUMN phase TEXT NOT NULL DEFAULT 'scratch';
    "#,
];

/// `PRAGMA application_id` of sweep's databases ("swpe"), so that a file another program made
/// is never taken for one (and never gets sweep's tables added).
pub const APPLICATION_ID: i64 = 0x7377_7065;

/// Whether `conn` is a sweep database, a new empty one, or someone else's: `Err` names the
/// tables that are not sweep's.
pub fn check_owner(conn: &Connection, path: &Path) -> Result<()> {
    let app: i64 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
    if app == APPLICATION_ID {
        return Ok(());
    }
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let ours = tables.is_empty() || (app == 0 && tables.iter().any(|t| t == "sweeps"));
    if ours {
        return Ok(());
    }
    let shown: Vec<&str> = tables.iter().take(5).map(String::as_str).collect();
    Err(StoreError::Open {
        path: path.into(),
        reason: if app != 0 {
            format!("it belongs to another application (application_id {app:#x}); point --db at a new file")
        } else {
            format!(
                "it is another program's database (tables {}); point --db at a new file",
                shown.join(", ")
            )
        },
    })
}

pub const VERSION: i64 = MIGRATIONS.len() as i64;

fn version(conn: &Connection) -> Result<i64> {
    Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
}

pub fn check_version(conn: &Connection, path: &Path) -> Result<i64> {
    let found = version(conn)?;
    if found > VERSION {
        return Err(StoreError::TooNew {
            path: path.into(),
            found,
            known: VERSION,
        });
    }
    Ok(found)
}

/// Bring the schema up to date. The version is read inside a write transaction, so two
/// processes opening a new database at once migrate it once.
pub fn migrate(conn: &Connection, path: &Path) -> Result<()> {
    if check_version(conn, path)? == VERSION {
        return Ok(());
    }
    // A migration that rebuilds a table drops the old one: with foreign keys on, that would
    // delete every row that refers to it. SQLite's recipe: keys off (outside the
    // transaction), rebuild, check, keys on again.
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        let found = check_version(conn, path)?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            conn.execute_batch(sql)?;
            conn.pragma_update(None, "user_version", (i + 1) as i64)?;
        }
        conn.pragma_update(None, "application_id", APPLICATION_ID)?;
        let broken: i64 =
            conn.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })?;
        if broken > 0 {
            return Err(StoreError::NotFound(format!(
                "migrating {} left {broken} rows without their run; nothing was changed",
                path.display()
            )));
        }
        Ok(())
    })();
    conn.execute_batch(if result.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    result
}
