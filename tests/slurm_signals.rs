//! `sweep run` under Slurm's signals, with the fake trainer and a Slurm environment made by
//! hand (SLURM_JOB_ID and friends; `scontrol` a script on PATH that logs its arguments):
//! SIGUSR1 lets the epoch in progress finish and save, releases the runs (`stopped`, no owner)
//! and requeues the job; after the USR1 grace it stops at once; SIGTERM after the warning
//! means no requeue; a missing `scontrol` is said, not fatal.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::scheduling::{assert_complete, fake_args, starts, status, write_sweep};
use crate::takeover::wait_for;
use crate::util::{sweep, text};

/// A folder for PATH holding a fake `scontrol` that appends its arguments to `log`.
fn fake_scontrol(dir: &Path, log: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("scontrol");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$@\" >> '{}'\n", log.display()),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).unwrap();
    bin
}

/// `sweep run` as array task 2 of job 4240 (its own id 4242) with GPU 3, PATH only `path`.
fn start_task(dir: &Path, path: &Path, spec: &str, extra: &[&str]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sweep"));
    cmd.args(["run", "fake.toml"])
        .args(extra)
        .current_dir(dir)
        .env("SLURM_JOB_ID", "4242")
        .env("SLURM_ARRAY_JOB_ID", "4240")
        .env("SLURM_ARRAY_TASK_ID", "2")
        .env("SLURM_JOB_GPUS", "3")
        .env("PATH", path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    fake_args(&mut cmd, 2, spec);
    cmd.spawn().unwrap()
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    unsafe { libc::kill(child.id() as i32, sig) };
}

/// Both runs training, with an epoch stored, and (`mid`) some way into the next epoch.
fn wait_training(dir: &Path, mid: Duration) {
    wait_for(dir, "both runs training with an epoch stored", |runs| {
        runs.len() == 2
            && runs.iter().all(|r| r["status"] == "running")
            && runs
                .iter()
                .any(|r| !r["epochs"].as_array().unwrap().is_empty())
    });
    std::thread::sleep(mid);
}

#[test]
fn sigusr1_saves_the_epoch_in_progress_releases_the_runs_and_requeues_the_job() {
    let dir = tempfile::tempdir().unwrap();
    write_sweep(dir.path(), &["0.1", "0.2"], 1, 5);
    let log = dir.path().join("starts.log");
    let scontrol_log = dir.path().join("scontrol.log");
    let bin = fake_scontrol(dir.path(), &scontrol_log);
    let spec = serde_json::json!({"epoch_ms": 800, "log": log}).to_string();
    let child = start_task(dir.path(), &bin, &spec, &[]);
    wait_training(dir.path(), Duration::from_millis(300));
    // `sweep status` names the host and Slurm job of each running run.
    let runs = status(dir.path());
    let host = runs[0]["host"].as_str().unwrap().to_string();
    for r in &runs {
        assert_eq!(r["slurm_job"], "4240_2", "{r}");
        assert_eq!(r["host"], host.as_str(), "{r}");
    }
    let table = text(&sweep(&["status"], dir.path())).0;
    assert_eq!(
        table.matches(&format!(" on {host} (job 4240_2)")).count(),
        2,
        "{table}"
    );
    signal(&child, libc::SIGUSR1);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(128 + 10), "{stderr}");
    assert!(
        stderr.contains("slurm: job 4240_2 on ") && stderr.contains(", GPUs 3 (SLURM_JOB_GPUS=3)"),
        "{stderr}"
    );
    assert!(stderr.contains("SIGUSR1: no new runs"), "{stderr}");
    assert!(
        stderr.contains("slurm: requeued job 4240_2 (2 runs of the sweep left)"),
        "{stderr}"
    );
    // The task by array and task id (4242 is its own job id, but one task of each array
    // carries the array's id, which would requeue the whole array).
    assert_eq!(
        std::fs::read_to_string(&scontrol_log).unwrap(),
        "requeue 4240_2\n"
    );
    // Released at once for another task, each with every epoch it started stored: the one
    // in progress finished and saved.
    let runs = status(dir.path());
    let started = starts(&log);
    for r in &runs {
        assert_eq!(r["status"], "stopped", "{r}");
        assert!(r["owner"].is_null() && r["slurm_job"].is_null(), "{r}");
        let id = r["run_id"].as_str().unwrap();
        let last_started = started
            .keys()
            .filter(|(run, _)| run == id)
            .map(|(_, e)| *e)
            .max()
            .unwrap();
        let stored = r["epochs"].as_array().unwrap();
        assert_eq!(stored.len(), last_started, "{r} {started:?}");
    }
    // The requeued task (here: the next `sweep run`) resumes; no epoch trains twice.
    let out = Command::new(env!("CARGO_BIN_EXE_sweep"))
        .args(["run", "fake.toml"])
        .args(["--fake-gpus", "2", "--fake-trainer", &spec])
        .current_dir(dir.path())
        .env_remove("SLURM_JOB_ID")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_complete(&status(dir.path()), 5);
    assert!(starts(&log).values().all(|&n| n == 1), "{:?}", starts(&log));
}

#[test]
fn after_the_usr1_grace_the_sweep_stops_at_once_and_a_missing_scontrol_is_said() {
    let dir = tempfile::tempdir().unwrap();
    write_sweep(dir.path(), &["0.1", "0.2"], 1, 3);
    let empty = dir.path().join("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    let spec = r#"{"epoch_ms": 8000}"#;
    let child = start_task(dir.path(), &empty, spec, &["--usr1-grace", "1"]);
    wait_for(dir.path(), "both runs training", |runs| {
        runs.len() == 2 && runs.iter().all(|r| r["status"] == "running")
    });
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    signal(&child, libc::SIGUSR1);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        sent.elapsed() < Duration::from_secs(6),
        "waited for the epoch: {stderr}"
    );
    assert_eq!(out.status.code(), Some(128 + 10), "{stderr}");
    assert!(
        stderr.contains("the epochs did not finish within 1 s: stopping now"),
        "{stderr}"
    );
    assert!(
        stderr.contains("slurm: cannot requeue job 4240_2") && stderr.contains("`scontrol`"),
        "{stderr}"
    );
    for r in status(dir.path()) {
        assert_eq!(r["status"], "stopped", "{r}");
        assert!(r["owner"].is_null(), "{r}");
    }
}

#[test]
fn sigterm_after_the_warning_stops_within_the_stop_grace_and_does_not_requeue() {
    let dir = tempfile::tempdir().unwrap();
    write_sweep(dir.path(), &["0.1", "0.2"], 1, 3);
    let scontrol_log = dir.path().join("scontrol.log");
    let bin = fake_scontrol(dir.path(), &scontrol_log);
    let spec = r#"{"epoch_ms": 8000}"#;
    let child = start_task(
        dir.path(),
        &bin,
        spec,
        &["--usr1-grace", "60", "--stop-grace", "1"],
    );
    wait_for(dir.path(), "both runs training", |runs| {
        runs.len() == 2 && runs.iter().all(|r| r["status"] == "running")
    });
    signal(&child, libc::SIGUSR1);
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    signal(&child, libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(sent.elapsed() < Duration::from_secs(6), "{stderr}");
    assert_eq!(out.status.code(), Some(128 + 10), "{stderr}");
    assert!(
        stderr.contains("SIGTERM: the running epochs get at most 1 s more"),
        "{stderr}"
    );
    assert!(
        stderr.contains("slurm: not requeueing job 4240_2"),
        "{stderr}"
    );
    assert!(!scontrol_log.exists(), "scontrol was called");
}
