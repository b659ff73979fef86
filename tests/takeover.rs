//! Several `sweep run` processes on one store, as Slurm array tasks are: with
//! `--wait-for-others` a process that has nothing left to claim waits for the runs the others
//! hold, takes over those whose owner died (at once on this host, after `--stale-after` from
//! another host), and ends when every run is finished. Fake trainer, fake GPUs, SQLite.
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::scheduling::{assert_complete, fake_args, starts, status, write_sweep};
use crate::util::sweep;

/// `sweep status --format json`, or nothing while there is no database yet.
fn runs_now(dir: &Path) -> Vec<Value> {
    let out = sweep(&["status", "--format", "json"], dir);
    serde_json::from_slice::<Value>(&out.stdout)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

/// Polls the runs until `ready` holds (at most a minute, however slow the machine).
pub(crate) fn wait_for(dir: &Path, what: &str, ready: impl Fn(&[Value]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let runs = runs_now(dir);
        if ready(&runs) {
            return;
        }
        assert!(Instant::now() < deadline, "{what} never happened: {runs:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs held by a live owner whose name contains `owner`.
fn running_by(runs: &[Value], owner: &str) -> usize {
    runs.iter()
        .filter(|r| r["status"] == "running")
        .filter(|r| r["owner"].as_str().is_some_and(|o| o.contains(owner)))
        .count()
}

/// `sweep run` in its own process group (so that kill -9 of the group takes its workers
/// too), started with `prefix` (a namespace wrapper) if any, stale after 3 s (heartbeats
/// every 0.75 s: a loaded machine's late beat is not taken for a death).
fn start_fake(dir: &Path, prefix: &[&str], gpus: usize, spec: &str, extra: &[&str]) -> Child {
    let exe = env!("CARGO_BIN_EXE_sweep");
    let mut cmd = match prefix.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.args(["run", "fake.toml", "--stale-after", "3"])
        .args(extra)
        .current_dir(dir)
        .env_remove("SLURM_JOB_ID")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    fake_args(&mut cmd, gpus, spec);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.spawn().unwrap()
}

/// How to run sweep with another host name here (a UTS namespace, as root or in a user
/// namespace), or why not.
fn other_host() -> Result<Vec<&'static str>, String> {
    let script = "hostname sweep-test-elsewhere && exec \"$0\" \"$@\"";
    let mut why = String::new();
    for extra in [&[][..], &["--map-root-user"][..]] {
        let mut args = vec!["unshare", "--uts"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["sh", "-c", script]);
        let probe = Command::new(args[0])
            .args(&args[1..])
            .arg("hostname")
            .output();
        match probe {
            Err(e) => return Err(format!("unshare is missing: {e}")),
            Ok(out) if String::from_utf8_lossy(&out.stdout).trim() == "sweep-test-elsewhere" => {
                return Ok(args)
            }
            Ok(out) => why = String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
    Err(format!("cannot set a host name here: {}", why.trim()))
}

/// A trains two runs and is killed -9 (with its workers) mid-epoch; B, which took the other
/// two and waits for others, finishes A's from their saved epochs. `prefix` runs A as
/// another host; `reason` is what B says when it takes them over.
fn takeover(prefix: &[&str], reason: &str) {
    let dir = tempfile::tempdir().unwrap();
    write_sweep(dir.path(), &["0.1", "0.2", "0.3", "0.4"], 1, 4);
    let log = dir.path().join("starts.log");
    let spec = serde_json::json!({"epoch_ms": 400, "log": log}).to_string();
    let a = start_fake(dir.path(), prefix, 2, &spec, &[]);
    wait_for(
        dir.path(),
        "A training two runs with an epoch stored",
        |runs| {
            running_by(runs, ":") == 2
                && runs
                    .iter()
                    .any(|r| !r["epochs"].as_array().unwrap().is_empty())
        },
    );
    let a_owner = runs_now(dir.path())
        .iter()
        .find_map(|r| r["owner"].as_str().map(str::to_string))
        .unwrap();
    let b = start_fake(dir.path(), &[], 2, &spec, &["--wait-for-others"]);
    wait_for(dir.path(), "B training the two runs left", |runs| {
        runs.iter().filter(|r| r["status"] == "running").count() == 4
    });
    // SAFETY: kill(2) on the process group A leads; no memory is involved.
    unsafe { libc::kill(-(a.id() as i32), libc::SIGKILL) };
    let _ = a.wait_with_output();
    let killed_at = Instant::now();
    let out = b.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("its owner {a_owner} {reason}")),
        "{stderr}"
    );
    assert!(stderr.contains("taking it over"), "{stderr}");
    let runs = status(dir.path());
    assert_eq!(runs.len(), 4);
    assert_complete(&runs, 4);
    // Nothing trained twice: only the two epochs A was in when killed started again.
    let starts = starts(&log);
    assert_eq!(starts.len(), 4 * 4, "{starts:?}");
    let repeats: usize = starts.values().map(|&n| n - 1).sum();
    assert!(repeats <= 2, "{repeats} epochs repeated: {starts:?}");
    assert!(
        starts.values().all(|&n| n <= 2),
        "an epoch ran three times: {starts:?}"
    );
    if reason.contains("heartbeat") {
        // Another host's runs wait for the stale time (3 s after A's last heartbeat, at most
        // 0.75 s before the kill) before B takes them.
        assert!(killed_at.elapsed() >= Duration::from_secs(2), "{stderr}");
    }
}

#[test]
fn a_waiting_process_takes_over_the_runs_of_a_killed_one_on_this_host_at_once() {
    takeover(&[], "is gone");
}

#[test]
fn a_waiting_process_takes_over_another_hosts_runs_once_their_heartbeat_is_stale() {
    let prefix = match other_host() {
        Ok(p) => p,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    takeover(&prefix, "sent no heartbeat for");
}

/// B has nothing to claim and waits; A finishes its runs; B ends, having trained nothing.
#[test]
fn a_waiting_process_ends_when_the_others_finish_what_they_hold() {
    let dir = tempfile::tempdir().unwrap();
    write_sweep(dir.path(), &["0.1", "0.2"], 1, 3);
    let log = dir.path().join("starts.log");
    let spec = serde_json::json!({"epoch_ms": 300, "log": log}).to_string();
    let a = start_fake(dir.path(), &[], 2, &spec, &[]);
    wait_for(dir.path(), "A training both runs", |runs| {
        running_by(runs, ":") == 2
    });
    let b = start_fake(dir.path(), &[], 1, &spec, &["--wait-for-others"]);
    let mut said = Vec::new();
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        said.push(stderr);
    }
    assert!(
        said[1].contains("0 trained now") && said[1].contains("2 finished by another `sweep run`"),
        "{}",
        said[1]
    );
    assert_complete(&status(dir.path()), 3);
    assert!(starts(&log).values().all(|&n| n == 1));
}

/// Without `--wait-for-others` (and outside Slurm) a process ends once its own queue is empty,
/// saying how many runs another process holds, as before.
#[test]
fn without_waiting_a_process_leaves_the_held_runs_to_their_owner() {
    let dir = tempfile::tempdir().unwrap();
    write_sweep(dir.path(), &["0.1", "0.2"], 1, 3);
    let spec = r#"{"epoch_ms": 400}"#;
    let a = start_fake(dir.path(), &[], 2, spec, &[]);
    wait_for(dir.path(), "A training both runs", |runs| {
        running_by(runs, ":") == 2
    });
    let out = start_fake(dir.path(), &[], 1, spec, &[])
        .wait_with_output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("2 being trained by another `sweep run`"),
        "{stderr}"
    );
    assert!(running_by(&runs_now(dir.path()), ":") == 2);
    let out = a.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_complete(&status(dir.path()), 3);
}
