//! The SQLite backend of [`Storage`](super::Storage): one file per project.
//!
//! WAL journal, versioned migrations (`PRAGMA user_version`), one transaction per logical
//! save. One writer owns a [`SqliteStore`] during a sweep; reports open it read-only.
mod codec;
mod read;
pub(super) mod schema;
mod write;

#[cfg(test)]
mod tests;

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::{Result, StoreError};

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Backend(e.to_string())
    }
}

fn cannot_open(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Open {
        path: path.into(),
        reason: e.to_string(),
    }
}

pub struct SqliteStore {
    conn: Connection,
    /// The file, for messages.
    path: std::path::PathBuf,
    /// The schema version of the file: a read-only store may hold an older one.
    schema: i64,
}

impl SqliteStore {
    /// Open (creating if needed) a database for writing, and bring its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Some(file) = dir.ancestors().find(|a| a.is_file()) {
                return Err(cannot_open(
                    path,
                    format!("{} is a file, not a folder", file.display()),
                ));
            }
            std::fs::create_dir_all(dir).map_err(|e| cannot_open(path, e))?;
        }
        Self::check_file(path)?;
        let conn = Connection::open(path).map_err(|e| cannot_open(path, e))?;
        schema::check_owner(&conn, path).map_err(|e| Self::at(path, e))?;
        Self::configure(&conn).map_err(|e| Self::at(path, e))?;
        schema::migrate(&conn, path).map_err(|e| Self::at(path, e))?;
        Ok(SqliteStore {
            conn,
            path: path.into(),
            schema: schema::VERSION,
        })
    }

    /// A folder where the database should be gets a message that says so.
    fn check_file(path: &Path) -> Result<()> {
        if path.is_dir() {
            return Err(cannot_open(
                path,
                "it is a folder; point --db at a file, such as runs/sweep.db",
            ));
        }
        Ok(())
    }

    /// A database error while opening, with the file named once.
    fn at(path: &Path, e: StoreError) -> StoreError {
        match e {
            StoreError::Backend(reason) => StoreError::Open {
                path: path.into(),
                reason,
            },
            other => other,
        }
    }

    /// Open an existing database for reading only.
    pub fn open_read_only(path: &Path) -> Result<SqliteStore> {
        if !path.exists() {
            return Err(StoreError::Missing(path.into()));
        }
        Self::check_file(path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| cannot_open(path, e))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(|e| cannot_open(path, e))?;
        // Reports read every epoch of every run: read the file through a memory map and
        // keep 64 MiB of pages, instead of a pread and a copy per page per query
        // (benches/reports.rs: 10,000 runs x 50 epochs).
        conn.execute_batch("PRAGMA mmap_size = 1073741824; PRAGMA cache_size = -65536;")
            .map_err(|e| cannot_open(path, e))?;
        schema::check_owner(&conn, path).map_err(|e| Self::at(path, e))?;
        let schema = schema::check_version(&conn, path).map_err(|e| Self::at(path, e))?;
        // One read transaction for the connection's life (a report, a status, a prediction:
        // short-lived commands): every query sees the same snapshot, and the file is locked
        // and its WAL index read once, not once per query. `sweep run` goes on writing.
        conn.execute_batch("BEGIN DEFERRED")
            .map_err(|e| cannot_open(path, e))?;
        if schema == 0 {
            return Err(StoreError::NotFound(format!(
                "{} holds no sweeps yet (an empty database): run `sweep run FILE --db {}` first",
                path.display(),
                path.display()
            )));
        }
        Ok(SqliteStore {
            conn,
            path: path.into(),
            schema,
        })
    }

    /// An in-memory database, for tests.
    pub fn in_memory() -> Result<SqliteStore> {
        let conn = Connection::open_in_memory()?;
        Self::configure(&conn)?;
        schema::migrate(&conn, Path::new(":memory:"))?;
        Ok(SqliteStore {
            conn,
            path: ":memory:".into(),
            schema: schema::VERSION,
        })
    }

    fn configure(conn: &Connection) -> Result<()> {
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        // Switching to WAL needs a moment alone with the file and does not wait on the busy
        // handler: two `sweep run`s creating a database together retry here.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let mode: rusqlite::Result<String> =
                conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0));
            match mode {
                Ok(_) => break,
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(e.into()),
            }
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(())
    }
}
