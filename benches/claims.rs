//! Claim contention: 8 workers, each with its own connection, race to claim every one of
//! 1,000 runs (each starting at its own offset), against SQLite (a file) and PostgreSQL
//! (when `SWEEP_TEST_PG` names a server; scripts/cluster.sh starts one). Checks each run is
//! claimed exactly once and prints claims/s (successful) and attempts/s for each backend.
//!
//!     cargo bench --bench claims
use std::collections::HashMap;
use std::sync::{Arc, Barrier};
use std::time::Instant;

use sweep::store::{Location, PgStore, Storage};
use sweep::sweep::Sweep;

const WORKERS: usize = 8;
const RUNS: usize = 1000;

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Race `WORKERS` threads over every run; (claims per run, seconds).
fn race(
    open: &(dyn Fn() -> Box<dyn Storage> + Sync),
    ids: &Arc<Vec<String>>,
) -> (HashMap<String, usize>, f64) {
    let barrier = Arc::new(Barrier::new(WORKERS + 1));
    let claims = std::thread::scope(|s| {
        let handles: Vec<_> = (0..WORKERS)
            .map(|w| {
                let (ids, barrier) = (Arc::clone(ids), Arc::clone(&barrier));
                let mut store = open();
                s.spawn(move || {
                    barrier.wait();
                    let owner = format!("bench:{w}");
                    let mut mine = Vec::new();
                    for k in 0..RUNS {
                        let id = &ids[(k + w * RUNS / WORKERS) % RUNS];
                        let claim = store.claim(id, &owner, 60.0, &|_: &str| true);
                        if claim.expect("a claim").is_some() {
                            mine.push(id.clone());
                        }
                    }
                    mine
                })
            })
            .collect();
        barrier.wait();
        let t0 = Instant::now();
        let all: Vec<String> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        (all, t0.elapsed().as_secs_f64())
    });
    let mut times = HashMap::new();
    for id in claims.0 {
        *times.entry(id).or_insert(0) += 1;
    }
    (times, claims.1)
}

fn bench(name: &str, open: &(dyn Fn() -> Box<dyn Storage> + Sync), sweep: &Sweep) {
    let runs = sweep.runs();
    open()
        .register(&sweep.name, &sweep.file, &runs, true)
        .expect("register the runs");
    let ids = Arc::new(runs.iter().map(|r| r.id.clone()).collect::<Vec<_>>());
    let (times, secs) = race(open, &ids);
    assert_eq!(times.len(), RUNS, "{name}: every run claimed");
    assert!(
        times.values().all(|&n| n == 1),
        "{name}: a run claimed twice"
    );
    println!(
        "{name:<10} {RUNS} runs, {WORKERS} workers: {:>7.0} claims/s, {:>7.0} attempts/s ({:.3} s)",
        RUNS as f64 / secs,
        (RUNS * WORKERS) as f64 / secs,
        secs
    );
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("train/a")).expect("data folder");
    let lrs: Vec<String> = (1..=RUNS).map(|k| format!("{}", k as f64 / 1e5)).collect();
    let text = format!(
        "name = \"claims\"\n[data]\ntrain = \"train\"\nimage_size = [8, 8]\n[grid]\nlr = [{}]\n",
        lrs.join(", ")
    );
    let file = dir.path().join("claims.toml");
    std::fs::write(&file, &text).expect("sweep file");
    let sweep = Sweep::from_str(&text, &file).expect("a sweep");
    println!("load average before: {}", load());
    let db = Location::Sqlite(dir.path().join("claims.db"));
    bench(
        "sqlite",
        &|| sweep::store::open(&db).expect("open SQLite"),
        &sweep,
    );
    match std::env::var("SWEEP_TEST_PG") {
        Ok(url) if !url.is_empty() => {
            let schema = format!("sweep_bench_{}", std::process::id());
            bench(
                "postgres",
                &|| {
                    Box::new(PgStore::open_in(&url, &schema, false).expect("open PostgreSQL"))
                        as Box<dyn Storage>
                },
                &sweep,
            );
            let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
            c.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                .expect("drop the schema");
        }
        _ => println!(
            "postgres   skipped: set SWEEP_TEST_PG=postgres://... (scripts/cluster.sh start DIR)"
        ),
    }
    println!("load average after: {}", load());
}
