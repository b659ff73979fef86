//! The store test suite against a PostgreSQL server, when one is given: `SWEEP_TEST_PG` is
//! the URL of a database the tests may create schemas in (scripts/cluster.sh starts one).
//! Each scenario gets a schema of its own, dropped afterwards. Without the variable the tests
//! say they were skipped.
use super::PgStore;
use crate::store::conformance;
use crate::store::{Reader, Storage, StoreError};

fn server() -> Option<String> {
    match std::env::var("SWEEP_TEST_PG") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped: set SWEEP_TEST_PG=postgres://... (scripts/cluster.sh) to run the PostgreSQL store tests");
            None
        }
    }
}

/// A schema of its own for one test (`drop_schema` removes it).
fn schema() -> String {
    format!("sweep_test_{:016x}", rand::random::<u64>())
}

fn drop_schema(url: &str, name: &str) {
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
        .unwrap();
}

#[test]
fn the_store_suite_passes_on_postgres() {
    let Some(url) = server() else { return };
    let fresh = || {
        let name = schema();
        let (u, n) = (url.clone(), name.clone());
        let open: Box<dyn Fn() -> Box<dyn Storage> + Sync> = Box::new(move || {
            Box::new(PgStore::open_in(&u, &n, false).unwrap()) as Box<dyn Storage>
        });
        let (u, n) = (url.clone(), name);
        let cleanup: Box<dyn FnOnce()> = Box::new(move || drop_schema(&u, &n));
        (open, cleanup)
    };
    conformance::suite(&fresh);
}

/// Two processes opening a new server at once migrate it once; a report on a server with no
/// sweep says so; a newer schema is refused.
#[test]
fn migrations_run_once_and_versions_are_checked() {
    let Some(url) = server() else { return };
    let name = schema();
    assert!(matches!(
        PgStore::open_in(&url, &name, true),
        Err(StoreError::NotFound(m)) if m.contains("no sweeps yet")
    ));
    let ids: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| PgStore::open_in(&url, &name, false).unwrap().id().unwrap()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    let ro = PgStore::open_in(&url, &name, true).unwrap();
    assert!(matches!(ro.sweep(None), Err(StoreError::NotFound(_))));
    drop(ro);
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    c.batch_execute(&format!(
        "UPDATE {name}.meta SET value = '99' WHERE key = 'schema_version'"
    ))
    .unwrap();
    assert!(matches!(
        PgStore::open_in(&url, &name, false),
        Err(StoreError::TooNew { found: 99, .. })
    ));
    drop_schema(&url, &name);
}

/// The server drops the writer's connection (a restart, a failover, a network blip): the next
/// write reconnects and goes through, and repeating a write changes nothing.
#[test]
fn a_dropped_connection_is_reconnected_and_writes_are_idempotent() {
    let Some(url) = server() else { return };
    let name = schema();
    let dir = tempfile::tempdir().unwrap();
    let s = conformance::sweep(dir.path(), 2);
    let runs = s.runs();
    let mut store = PgStore::open_in(&url, &name, false).unwrap();
    store.register(&s.name, &s.file, &runs, true).unwrap();
    let id = &runs[0].id;
    store.apply(&conformance::started(id)).unwrap();
    let pid: i32 = store
        .client
        .borrow_mut()
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    admin
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .unwrap();
    store.apply(&conformance::epoch(id, 1, 0.5)).unwrap();
    // The same events again (what a retry after an unconfirmed commit does).
    store.apply(&conformance::epoch(id, 1, 0.5)).unwrap();
    let again = store.register(&s.name, &s.file, &runs, true).unwrap();
    assert_eq!(again.len(), 2);
    let rows = store.runs(store.sweep(None).unwrap().id).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].attempts, 1);
    assert_eq!(store.epochs(id).unwrap().len(), 1);
    let val = store.split_metrics(id, "val", 1).unwrap().unwrap();
    assert_eq!(val.class_names, ["cat", "dog"]);
    drop_schema(&url, &name);
}
