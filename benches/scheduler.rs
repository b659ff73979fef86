//! Scheduler benchmark: 200 fake runs of varied length (1..10 epochs of 50 ms) on 4 fake
//! GPUs, through the real coordinator, worker processes and SQLite store. Prints the
//! dispatch overhead per run and the makespan against an ideal longest-first schedule of
//! the same run lengths with zero overhead.
//!
//!     cargo bench --bench scheduler
use std::process::Command;
use std::time::Instant;

const DEVICES: usize = 4;
const EPOCH_MS: u64 = 50;

/// Makespan of longest-processing-time-first on `devices` identical machines.
fn lpt(mut jobs: Vec<f64>, devices: usize) -> f64 {
    jobs.sort_by(|a, b| b.total_cmp(a));
    let mut load = vec![0.0f64; devices];
    for j in jobs {
        let (i, _) = load
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .unwrap_or((0, &0.0));
        load[i] += j;
    }
    load.into_iter().fold(0.0, f64::max)
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("train/a")).expect("data folder");
    let epochs: Vec<String> = (1..=10).map(|e| e.to_string()).collect();
    let seeds: Vec<String> = (1..=20).map(|s| s.to_string()).collect();
    let sweep = format!(
        "name = \"bench\"\n[data]\ntrain = \"train\"\nimage_size = [8, 8]\n[grid]\nepochs = [{}]\nseed = [{}]\n",
        epochs.join(", "),
        seeds.join(", ")
    );
    std::fs::write(dir.path().join("bench.toml"), sweep).expect("sweep file");
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_sweep"))
        .args(["run", "bench.toml", "--fake-gpus", &DEVICES.to_string()])
        .args(["--fake-trainer", &format!("{{\"epoch_ms\": {EPOCH_MS}}}")])
        .current_dir(dir.path())
        .output()
        .expect("run sweep");
    let makespan = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let db = rusqlite::Connection::open(dir.path().join("runs/sweep.db")).expect("database");
    let mut stmt = db
        .prepare("SELECT json_extract(config, '$.epochs'), dispatch_ms FROM runs")
        .expect("query");
    let rows: Vec<(f64, f64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .map(|r| r.expect("row"))
        .collect();
    let ideal: Vec<f64> = rows
        .iter()
        .map(|r| r.0 * EPOCH_MS as f64 / 1000.0)
        .collect();
    let work: f64 = ideal.iter().sum();
    let best = lpt(ideal, DEVICES);
    let mut dispatch: Vec<f64> = rows.iter().map(|r| r.1).collect();
    dispatch.sort_by(f64::total_cmp);
    let n = dispatch.len();
    let mean = dispatch.iter().sum::<f64>() / n as f64;
    // Everything beyond training and dispatch: saving the resume state and storing each
    // epoch, process starts and the sweep's own start and end.
    let per_epoch = ((makespan - best) * DEVICES as f64 - mean / 1000.0 * n as f64)
        / rows.iter().map(|r| r.0).sum::<f64>();
    println!("scheduler: {n} fake runs on {DEVICES} fake GPUs, {EPOCH_MS} ms epochs, {work:.1} s of training");
    println!("  makespan             {makespan:>8.2} s   (whole `sweep run`, start to exit)");
    println!("  ideal longest-first  {best:>8.2} s   (same run lengths, zero overhead)");
    println!(
        "  ratio                {:>8.3}     (target <= 1.05)",
        makespan / best
    );
    println!("  dispatch per run     {mean:>8.2} ms  mean, median {:.2} ms, p95 {:.2} ms (claim -> worker started; target < 5 ms)", dispatch[n / 2], dispatch[n * 95 / 100]);
    println!(
        "  other cost per epoch {:>8.2} ms  (resume state + stored epoch; from the makespan gap)",
        per_epoch * 1000.0
    );
}
