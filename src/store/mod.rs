//! The SQLite store: sweeps, runs, every epoch, per-class metrics and confusion matrices.
//!
//! WAL journal, versioned migrations (`PRAGMA user_version`), one transaction per logical
//! save. One writer owns a [`Store`] during a sweep; reports open it read-only.
mod codec;
mod read;
mod schema;
mod write;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

pub use read::{EpochRow, RunRow, SplitMetrics, SweepRow};
pub use write::{Claim, RunState};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("no database at {0}: run `sweep run FILE` first, or point --db at an existing one")]
    Missing(PathBuf),
    #[error("database {path} was written by a newer sweep (schema version {found}, this build knows {known}); upgrade sweep")]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("corrupt JSON in the database: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    NotFound(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

pub struct Store {
    conn: Connection,
    /// The schema version of the file: a read-only store may hold an older one.
    schema: i64,
}

impl Store {
    /// Open (creating if needed) a database for writing, and bring its schema up to date.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: path.into(),
                source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
            })?;
        }
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.into(),
            source,
        })?;
        Self::configure(&conn)?;
        schema::migrate(&conn, path)?;
        Ok(Store {
            conn,
            schema: schema::VERSION,
        })
    }

    /// Open an existing database for reading only.
    pub fn open_read_only(path: &Path) -> Result<Store> {
        if !path.exists() {
            return Err(StoreError::Missing(path.into()));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|source| StoreError::Open {
            path: path.into(),
            source,
        })?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        let schema = schema::check_version(&conn, path)?;
        Ok(Store { conn, schema })
    }

    /// An in-memory database, for tests.
    pub fn in_memory() -> Result<Store> {
        let conn = Connection::open_in_memory()?;
        Self::configure(&conn)?;
        schema::migrate(&conn, Path::new(":memory:"))?;
        Ok(Store {
            conn,
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
