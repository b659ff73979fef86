//! The PostgreSQL backend of [`Storage`](super::Storage): one server shared by every node of
//! a cluster, where SQLite over a network filesystem is unsafe.
//!
//! The same tables and behaviour as SQLite, in a schema of their own (`sweep`), so a database
//! shared with other programs is never touched outside it. Migrations run under an advisory
//! lock; claims lock the run's row with `FOR UPDATE SKIP LOCKED`; heartbeats and their ages
//! use the server's clock, so hosts whose clocks disagree still agree on staleness. Every
//! write is idempotent (upserts, tokens), so after a dropped connection the store reconnects
//! and runs the same transaction again. JSON is kept as text, so key order survives.
//!
//! The client is the synchronous `postgres` crate, which runs its own small runtime: it is
//! used only on the writer thread (and by short-lived report commands), never inside a tokio
//! task.
mod pass;
mod read;
mod schema;
mod write;

#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::time::{Duration, Instant};

use postgres::error::SqlState;
use postgres::{Client, NoTls};

use super::{Result, StoreError};

/// The PostgreSQL schema sweep's tables live in.
pub const SCHEMA: &str = "sweep";

/// How long a dropped connection is retried before the error stops the sweep
/// (`SWEEP_PG_RETRY_SECS`).
const RETRY_SECS: u64 = 120;

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> StoreError {
        StoreError::Pg(e)
    }
}

/// The server's own words when it sent some (message, detail, hint), else the client's error
/// and its cause.
pub(super) fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{}: {}", db.severity(), db.message());
        if let Some(d) = db.detail() {
            s.push_str(&format!(" ({d})"));
        }
        if let Some(h) = db.hint() {
            s.push_str(&format!("; hint: {h}"));
        }
        return s;
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// Whether an error is worth running the transaction again for: the connection broke, the
/// server is restarting, or the transaction lost a serialisation race.
fn transient(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => {
            code.code().starts_with("08")
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::T_R_SERIALIZATION_FAILURE,
                    SqlState::T_R_DEADLOCK_DETECTED,
                ]
                .contains(code)
        }
        // No SQLSTATE: an I/O error on the socket.
        None => std::error::Error::source(e)
            .is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some()),
    }
}

pub struct PgStore {
    client: RefCell<Client>,
    config: postgres::Config,
    /// The URL with any password hidden, for messages.
    shown: String,
    /// The PostgreSQL schema of the tables.
    schema: String,
    /// Report commands read one snapshot and never write.
    read_only: bool,
    retry_for: Duration,
}

impl PgStore {
    /// Connect to the server at `url`, creating sweep's schema or bringing it up to date.
    pub fn open(url: &str) -> Result<PgStore> {
        Self::open_in(url, SCHEMA, false)
    }

    /// Connect for reading only: every query of the connection sees one snapshot.
    pub fn open_read_only(url: &str) -> Result<PgStore> {
        Self::open_in(url, SCHEMA, true)
    }

    /// `open` with the tables in another PostgreSQL schema (tests and benchmarks give each
    /// store its own).
    pub fn open_in(url: &str, schema: &str, read_only: bool) -> Result<PgStore> {
        let shown = super::location::redact(url);
        let cannot = |reason: String| StoreError::Open {
            path: shown.clone().into(),
            reason,
        };
        let mut config: postgres::Config = url.parse().map_err(|e: postgres::Error| {
            cannot(format!("not a PostgreSQL URL: {}", describe(&e)))
        })?;
        pass::complete(&mut config, &|k| {
            std::env::var(k).ok().filter(|v| !v.is_empty())
        });
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("sweep");
        }
        let client = connect(&config, schema, read_only).map_err(|e| cannot(describe(&e)))?;
        let retry_for = std::env::var("SWEEP_PG_RETRY_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(RETRY_SECS);
        let store = PgStore {
            client: RefCell::new(client),
            config,
            shown,
            schema: schema.to_string(),
            read_only,
            retry_for: Duration::from_secs(retry_for),
        };
        if read_only {
            let found = schema::version(&mut *store.client.borrow_mut(), schema)
                .map_err(|e| Self::at(&store.shown, e))?;
            match found {
                None => {
                    return Err(StoreError::NotFound(format!(
                        "{} holds no sweeps yet (no `{schema}` schema): run `sweep run FILE --db {}` first",
                        store.shown, store.shown
                    )))
                }
                Some(v) if v > schema::VERSION => {
                    return Err(StoreError::TooNew {
                        path: store.shown.clone().into(),
                        found: v,
                        known: schema::VERSION,
                    })
                }
                Some(_) => {}
            }
        } else {
            schema::migrate(&mut store.client.borrow_mut(), schema, &store.shown)
                .map_err(|e| Self::at(&store.shown, e))?;
        }
        Ok(store)
    }

    /// A database error while opening, with the server named once.
    fn at(shown: &str, e: StoreError) -> StoreError {
        match e {
            StoreError::Backend(reason) => StoreError::Open {
                path: shown.into(),
                reason,
            },
            other => other,
        }
    }

    /// Run `f` on the connection; after a dropped connection, reconnect and run it again
    /// (with the attempt number), for up to `retry_for`. Every write `f` makes must be
    /// idempotent.
    fn with<T>(
        &self,
        mut f: impl FnMut(&mut Client, u32) -> std::result::Result<T, StoreError>,
    ) -> Result<T> {
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            let result = f(&mut self.client.borrow_mut(), attempt);
            let error = match result {
                Ok(v) => return Ok(v),
                Err(StoreError::Pg(e)) if transient(&e) => e,
                Err(StoreError::Pg(e)) => return Err(StoreError::Backend(describe(&e))),
                Err(other) => return Err(other),
            };
            if started.elapsed() >= self.retry_for {
                return Err(StoreError::Backend(format!(
                    "lost the connection to {} and could not get it back within {} s: {}",
                    self.shown,
                    self.retry_for.as_secs(),
                    describe(&error)
                )));
            }
            if attempt == 0 {
                crate::say!(
                    "lost the connection to {} ({}): reconnecting",
                    self.shown,
                    describe(&error)
                );
            }
            attempt += 1;
            std::thread::sleep(Duration::from_millis((250 * attempt as u64).min(5_000)));
            if let Ok(client) = connect(&self.config, &self.schema, self.read_only) {
                *self.client.borrow_mut() = client;
            }
        }
    }
}

/// One connection with its search path set to the schema (and, for reports, one read-only
/// snapshot transaction for its life).
fn connect(
    config: &postgres::Config,
    schema: &str,
    read_only: bool,
) -> std::result::Result<Client, postgres::Error> {
    let mut client = config.connect(NoTls)?;
    let mut setup = format!(
        "SET search_path TO {}; SET TIME ZONE 'UTC';",
        schema::ident(schema)
    );
    if read_only {
        setup.push_str(" BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;");
    }
    client.batch_execute(&setup)?;
    Ok(client)
}
