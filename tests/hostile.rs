//! Faults a hostile user meets (issue 8), through the real binary: odd file names, signals,
//! closed pipes, stale state, clashing sweeps, a live owner, foreign databases.
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{copy_classes, sweep, text};

/// A one-run cnn sweep named `name` on 2 classes x 8 tiny images in `dir/data`.
fn tiny(dir: &Path, name: &str, epochs: usize) {
    copy_classes("train", &dir.join("data"), 2, 8);
    let toml = format!(
        "name = \"{name}\"\n[data]\ntrain = \"data\"\nval_split = 0.25\nimage_size = [12, 12]\nchannels = 1\n[train]\nbackbone = \"cnn\"\nwidth = 2\nbatch_size = 4\nepochs = {epochs}\n"
    );
    std::fs::write(dir.join(format!("{name}.toml")), toml).unwrap();
}

fn status(dir: &Path) -> Vec<Value> {
    let out = sweep(&["status", "--format", "json"], dir);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    serde_json::from_str::<Value>(&stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Case 1: an unreadable image whose name is not UTF-8 used to make the worker exit 4 and fail
/// every run. It is skipped with its reason; the runs train; the name is stored exactly.
#[cfg(unix)]
#[test]
fn a_file_name_that_is_not_utf8_is_skipped_not_fatal() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    tiny(dir.path(), "odd", 1);
    let class = std::fs::read_dir(dir.path().join("data"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9 \xff.png");
    std::fs::write(class.join(name), b"not a png").unwrap();
    let out = sweep(&["run", "odd.toml"], dir.path());
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("skipped 1 unreadable file(s)"), "{stderr}");
    let runs = status(dir.path());
    assert_eq!(runs[0]["status"], "done", "{runs:?}");
    // The store keeps the exact bytes.
    let db = rusqlite::Connection::open(dir.path().join("runs/sweep.db")).unwrap();
    let raw: Vec<u8> = db
        .query_row("SELECT path_raw FROM skipped_files", [], |r| r.get(0))
        .unwrap();
    assert!(raw.ends_with(b"caf\xe9 \xff.png"), "{raw:?}");
}

/// A fake-trainer sweep of `runs` runs of `epochs` epochs in `dir`, started in its own process
/// group (as a batch system starts a job).
fn start_fake(dir: &Path, runs: usize, epochs: usize, epoch_ms: u64, extra: &[&str]) -> Child {
    std::fs::create_dir_all(dir.join("train/a")).unwrap();
    let lrs: Vec<String> = (1..=runs).map(|i| format!("0.{i}")).collect();
    let toml = format!(
        "name = \"fake\"\n[data]\ntrain = \"train\"\nimage_size = [8, 8]\n[train]\nepochs = {epochs}\n[grid]\nlr = [{}]\n",
        lrs.join(", ")
    );
    std::fs::write(dir.join("fake.toml"), toml).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sweep"));
    cmd.args(["run", "fake.toml", "--fake-gpus", "2", "--fake-trainer"])
        .arg(format!("{{\"epoch_ms\": {epoch_ms}}}"))
        .args(extra)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.spawn().unwrap()
}

/// Wait until some epoch is stored.
fn wait_for_an_epoch(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        let out = sweep(&["status", "--format", "json"], dir);
        if let Ok(v) = serde_json::from_slice::<Value>(&out.stdout) {
            if v.as_array().is_some_and(|a| {
                a.iter()
                    .any(|r| r["epochs"].as_array().is_some_and(|e| !e.is_empty()))
            }) {
                return;
            }
        }
    }
    panic!("no epoch was stored within 60 s");
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) only sends a signal.
    unsafe { libc::kill(pid, sig) };
}

/// Case 3: SIGTERM (timeout, systemd, docker) and SIGHUP behave like the first Ctrl-C: epochs
/// finish and save, runs are `stopped`, the exit code is 128 + the signal, and a re-run
/// resumes. Sent to the whole process group (as Slurm does), the workers stop cleanly too.
#[test]
fn sigterm_and_sighup_stop_cleanly_and_resume() {
    for (sig, code, group) in [
        (libc::SIGTERM, 143, false),
        (libc::SIGTERM, 143, true),
        (libc::SIGHUP, 129, false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let child = start_fake(dir.path(), 2, 4, 300, &[]);
        wait_for_an_epoch(dir.path());
        let pid = child.id() as i32;
        signal(if group { -pid } else { pid }, sig);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "signal {sig}: {stderr}");
        for r in status(dir.path()) {
            assert!(
                r["status"] == "stopped" || r["status"] == "done",
                "signal {sig} group {group}: {r}"
            );
        }
        let out = sweep(
            &[
                "run",
                "fake.toml",
                "--fake-gpus",
                "2",
                "--fake-trainer",
                r#"{"epoch_ms": 300}"#,
            ],
            dir.path(),
        );
        assert!(out.status.success(), "{}", text(&out).1);
        let want: Vec<Value> = (1..=4).map(Value::from).collect();
        for r in status(dir.path()) {
            assert_eq!(r["status"], "done", "{r}");
            assert_eq!(
                r["epochs"].as_array().unwrap(),
                &want,
                "no gap, no repeat: {r}"
            );
        }
    }
}

/// SIGTERM's drain is bounded: Slurm sends SIGKILL after KillWait. With an epoch far longer
/// than the grace, the sweep stops on its own after `--stop-grace` seconds, the run `stopped`.
#[test]
fn sigterm_drain_is_bounded_by_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let child = start_fake(dir.path(), 1, 2, 60_000, &["--stop-grace", "1"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    // Running and started by its worker (its Started event counts the attempt): a SIGTERM
    // that comes while the worker is still starting stops the run before its epoch begins,
    // with nothing to drain (seen under load).
    while !status_if_any(dir.path())
        .iter()
        .any(|r| r["status"] == "running" && r["attempts"].as_u64() >= Some(1))
    {
        assert!(Instant::now() < deadline, "the run never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = Instant::now();
    signal(child.id() as i32, libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(stderr.contains("did not finish within 1 s"), "{stderr}");
    assert_eq!(status(dir.path())[0]["status"], "stopped");
}

/// The runs, or none while the database does not exist yet.
fn status_if_any(dir: &Path) -> Vec<Value> {
    let out = sweep(&["status", "--format", "json"], dir);
    serde_json::from_slice::<Value>(&out.stdout)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

/// Case 4: a closed pipe. Printing commands end quietly (no panic, no backtrace); `sweep run`
/// whose output reader has gone trains and stores every run anyway.
#[test]
fn a_closed_pipe_never_stops_training_and_printing_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = start_fake(dir.path(), 4, 3, 20, &[]);
    assert!(child.wait().unwrap().success());
    let exe = env!("CARGO_BIN_EXE_sweep");
    let pipe = |cmd: &str| {
        Command::new("sh")
            .args(["-c", cmd])
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    for cmd in [
        format!("'{exe}' plan fake.toml | head -c 10"),
        format!("'{exe}' report | head -c 10"),
        format!("'{exe}' status | head -c 10"),
    ] {
        let out = pipe(&format!("{cmd}; exit 0"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{cmd}: {stderr}"
        );
    }
    // A fresh sweep whose stderr reader reads one line and leaves.
    let out = pipe(&format!(
        "'{exe}' run fake.toml --fresh --fake-gpus 2 --fake-trainer '{{\"epoch_ms\": 20}}' 2>&1 | head -1"
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want: Vec<Value> = (1..=3).map(Value::from).collect();
    let runs = status(dir.path());
    assert_eq!(runs.len(), 4);
    for r in runs {
        assert_eq!(r["status"], "done", "{r}");
        assert_eq!(r["epochs"].as_array().unwrap(), &want, "{r}");
    }
}

/// Case 5: a saved state belongs to its database and its data. Deleting the database (or
/// changing the images) and running again starts the run over, and says so, instead of
/// "resuming" from epochs no database holds or data that is gone.
#[test]
fn stale_resume_state_is_not_adopted() {
    let dir = tempfile::tempdir().unwrap();
    tiny(dir.path(), "stale", 2);
    let out = sweep(&["run", "stale.toml"], dir.path());
    assert!(out.status.success(), "{}", text(&out).1);
    std::fs::remove_file(dir.path().join("runs/sweep.db")).unwrap();
    let out = sweep(&["run", "stale.toml"], dir.path());
    let stderr = text(&out).1;
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("another (or a deleted) database; starting it over"),
        "{stderr}"
    );
    assert!(!stderr.contains("resuming"), "{stderr}");
    let runs = status(dir.path());
    assert_eq!(runs[0]["epochs"], serde_json::json!([1, 2]), "{runs:?}");

    // The same database; the run stopped after an epoch; images added; run again.
    let dir = tempfile::tempdir().unwrap();
    let child = start_fake(dir.path(), 1, 3, 300, &[]);
    wait_for_an_epoch(dir.path());
    signal(child.id() as i32, libc::SIGINT);
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(130));
    assert_eq!(status(dir.path())[0]["status"], "stopped");
    std::fs::write(dir.path().join("train/a/new.png"), b"one more image").unwrap();
    let out = sweep(
        &[
            "run",
            "fake.toml",
            "--fake-gpus",
            "2",
            "--fake-trainer",
            r#"{"epoch_ms": 300}"#,
        ],
        dir.path(),
    );
    let stderr = text(&out).1;
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("its images changed since its state was saved; starting it over"),
        "{stderr}"
    );
    assert_eq!(
        status(dir.path())[0]["epochs"],
        serde_json::json!([1, 2, 3])
    );
}

/// Runs `sweep run` of a fake sweep file with `args` in `dir`.
fn run_fake(dir: &Path, file: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec![
        "run",
        file,
        "--fake-gpus",
        "1",
        "--fake-trainer",
        r#"{"epoch_ms": 10}"#,
    ];
    all.extend_from_slice(args);
    sweep(&all, dir)
}

fn write_fake(path: &Path, lrs: &str) {
    std::fs::create_dir_all(path.parent().unwrap().join("train/a")).unwrap();
    std::fs::write(
        path,
        format!("[data]\ntrain = \"train\"\nimage_size = [8, 8]\n[train]\nepochs = 1\n[grid]\nlr = [{lrs}]\n"),
    )
    .unwrap();
}

/// Case 6: two `exp.toml` without `name` in different folders share a database: the second
/// is refused with a fix, not merged into the first. Runs removed from the grid are marked.
#[test]
fn sweeps_from_different_files_never_merge_and_removed_runs_are_marked() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    let db = db.to_str().unwrap();
    write_fake(&dir.path().join("a/exp.toml"), "0.1, 0.2");
    write_fake(&dir.path().join("b/exp.toml"), "0.3");
    let out = run_fake(&dir.path().join("a"), "exp.toml", &["--db", db]);
    assert!(out.status.success(), "{}", text(&out).1);
    let out = run_fake(&dir.path().join("b"), "exp.toml", &["--db", db]);
    let stderr = text(&out).1;
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("give one of them its own `name = \"...\"`"),
        "{stderr}"
    );
    // Nothing of b was stored.
    let runs = sweep(&["status", "--db", db, "--format", "json"], dir.path());
    let runs: Vec<Value> = serde_json::from_slice(&runs.stdout).unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");

    // lr=0.2 leaves the grid: kept, and marked in status and reports.
    write_fake(&dir.path().join("a/exp.toml"), "0.1");
    let out = run_fake(&dir.path().join("a"), "exp.toml", &["--db", db]);
    assert!(out.status.success(), "{}", text(&out).1);
    let out = sweep(&["status", "--db", db], dir.path());
    assert!(
        text(&out).0.contains("(not in the sweep file)"),
        "{}",
        text(&out).0
    );
    let out = sweep(&["report", "--db", db, "--format", "json"], dir.path());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let retired: Vec<bool> = report["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["retired"].as_bool().unwrap())
        .collect();
    assert_eq!(retired, [false, true], "retired runs rank last: {report}");
}

/// Case 7: `--fresh` refuses while another live `sweep run` trains a run of the sweep.
#[test]
fn fresh_refuses_while_another_sweep_run_trains() {
    let dir = tempfile::tempdir().unwrap();
    let child = start_fake(dir.path(), 1, 2, 3000, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !status_if_any(dir.path())
        .iter()
        .any(|r| r["status"] == "running")
    {
        assert!(Instant::now() < deadline, "the run never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = sweep(
        &[
            "run",
            "fake.toml",
            "--fresh",
            "--fake-gpus",
            "2",
            "--fake-trainer",
            r#"{"epoch_ms": 3000}"#,
        ],
        dir.path(),
    );
    let stderr = text(&out).1;
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--fresh would delete runs another `sweep run` is training"),
        "{stderr}"
    );
    assert!(
        dir.path().join("runs/fake").exists(),
        "the live run's folder was kept"
    );
    signal(child.id() as i32, libc::SIGKILL);
    let _ = child.wait_with_output();
}

/// Case 10: the database. Another program's file is refused and left untouched; a folder, or
/// a path under a file, gets one message naming it; after a crash, `status` does not call a
/// run whose owner is dead `running`.
#[test]
fn database_faults_get_one_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    write_fake(&dir.path().join("x.toml"), "0.1");
    let foreign = dir.path().join("app.db");
    {
        let c = rusqlite::Connection::open(&foreign).unwrap();
        c.execute_batch("CREATE TABLE users (name TEXT); INSERT INTO users VALUES ('ann');")
            .unwrap();
    }
    let out = run_fake(dir.path(), "x.toml", &["--db", foreign.to_str().unwrap()]);
    let stderr = text(&out).1;
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("another program's database (tables users)"),
        "{stderr}"
    );
    let c = rusqlite::Connection::open(&foreign).unwrap();
    let tables: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        tables, 1,
        "sweep's tables were added to another program's file"
    );

    std::fs::create_dir(dir.path().join("folder.db")).unwrap();
    std::fs::write(dir.path().join("plain"), "x").unwrap();
    for (db, says) in [
        ("folder.db", "it is a folder"),
        ("plain/sweep.db", "is a file, not a folder"),
    ] {
        for cmd in [
            vec!["status", "--db", db],
            vec!["run", "x.toml", "--db", db, "--fake-trainer", "{}"],
        ] {
            let out = sweep(&cmd, dir.path());
            let stderr = text(&out).1;
            assert_eq!(out.status.code(), Some(1), "{cmd:?}: {stderr}");
            assert!(
                stderr.contains(db) || stderr.contains("no database at"),
                "{cmd:?}: {stderr}"
            );
            let errors = stderr.lines().filter(|l| l.starts_with("error")).count();
            assert_eq!(errors, 1, "{cmd:?}: one message: {stderr}");
            if cmd[0] == "run" {
                assert!(stderr.contains(says), "{cmd:?}: {stderr}");
            }
        }
    }

    // An empty file: nothing to report yet, said so; `sweep run` makes it a database.
    std::fs::write(dir.path().join("empty.db"), b"").unwrap();
    let out = sweep(&["status", "--db", "empty.db"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("holds no sweeps yet"),
        "{}",
        text(&out).1
    );
    let out = run_fake(dir.path(), "x.toml", &["--db", "empty.db"]);
    assert!(out.status.success(), "{}", text(&out).1);

    // kill -9 of a sweep mid-run: its run is shown as abandoned, not running.
    let dir = tempfile::tempdir().unwrap();
    let child = start_fake(dir.path(), 1, 2, 3000, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !status_if_any(dir.path())
        .iter()
        .any(|r| r["status"] == "running")
    {
        assert!(Instant::now() < deadline, "the run never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(-(child.id() as i32), libc::SIGKILL);
    let _ = child.wait_with_output();
    let out = sweep(&["status"], dir.path());
    assert!(text(&out).0.contains("abandoned"), "{}", text(&out).0);
    assert_eq!(status(dir.path())[0]["owner_alive"], false);
}

/// Case 10, a full disk: writes beyond a file-size limit fail (as on a full disk). The sweep
/// stops with one message naming the database, nothing stored is lost, and a run again (with
/// room) finishes every run.
#[test]
fn a_full_disk_stops_the_sweep_with_the_database_named_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("train/a")).unwrap();
    std::fs::write(
        dir.path().join("x.toml"),
        "[data]\ntrain = \"train\"\nimage_size = [8, 8]\n[train]\nepochs = 30\n[grid]\nlr = [0.1, 0.2, 0.3]\n",
    )
    .unwrap();
    let spec = r#"{"epoch_ms": 1, "classes": 10}"#;
    let exe = env!("CARGO_BIN_EXE_sweep");
    // SIGXFSZ ignored: a write past the limit fails with EFBIG instead of killing.
    let out = Command::new("sh")
        .args([
            "-c",
            &format!(
                "trap '' XFSZ; ulimit -f 300; exec '{exe}' run x.toml --fake-trainer '{spec}'"
            ),
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("runs/sweep.db"), "{stderr}");
    // The database still reads (what was committed before the disk filled is intact).
    assert_eq!(status(dir.path()).len(), 3);
    let out = sweep(&["run", "x.toml", "--fake-trainer", spec], dir.path());
    assert!(out.status.success(), "{}", text(&out).1);
    for r in status(dir.path()) {
        assert_eq!(r["status"], "done", "{r}");
        assert_eq!(r["epochs"].as_array().unwrap().len(), 30, "{r}");
    }
}

/// Case 8, at `sweep run`: data that cannot train is refused before any device or database is
/// touched, with the key and the fix (here: a single class folder).
#[test]
fn sweep_run_refuses_data_that_cannot_train_before_touching_anything() {
    let dir = tempfile::tempdir().unwrap();
    tiny(dir.path(), "one", 1);
    let classes: Vec<_> = std::fs::read_dir(dir.path().join("data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    std::fs::remove_dir_all(&classes[1]).unwrap();
    let out = sweep(&["run", "one.toml"], dir.path());
    let stderr = text(&out).1;
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("data.train") && stderr.contains("only one class sub-folder"),
        "{stderr}"
    );
    assert!(!dir.path().join("runs").exists(), "nothing was created");
}
