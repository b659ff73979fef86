//! The scheduler with fake GPUs and the fake trainer (hidden flags `--fake-gpus`,
//! `--fake-trainer`):
//! failures are recorded and the sweep goes on, kills at random moments lose nothing and
//! repeat nothing, two coordinators never train the same run, Ctrl-C stops cleanly.
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{sweep, text};

/// A sweep of `lrs.len() * seeds` fake runs of `epochs` epochs in `dir`.
pub(crate) fn write_sweep(dir: &Path, lrs: &[&str], seeds: usize, epochs: usize) {
    std::fs::create_dir_all(dir.join("train/a")).unwrap();
    let seeds: Vec<String> = (1..=seeds).map(|s| s.to_string()).collect();
    let text = format!(
        "name = \"fake\"\n[data]\ntrain = \"train\"\nimage_size = [8, 8]\n[train]\nepochs = {epochs}\nbatch_size = 32\n[grid]\nlr = [{}]\nseed = [{}]\n",
        lrs.join(", "),
        seeds.join(", ")
    );
    std::fs::write(dir.join("fake.toml"), text).unwrap();
}

/// The hidden test flags of `sweep run`: `gpus` fake GPUs and the fake trainer's script.
pub(crate) fn fake_args(cmd: &mut Command, gpus: usize, spec: &str) {
    cmd.args(["--fake-gpus", &gpus.to_string(), "--fake-trainer", spec]);
}

fn start(dir: &Path, gpus: usize, spec: &str, extra: &[&str]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sweep"));
    cmd.args(["run", "fake.toml"])
        .args(extra)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    fake_args(&mut cmd, gpus, spec);
    cmd.spawn().unwrap()
}

fn run_to_end(dir: &Path, gpus: usize, spec: &str, extra: &[&str]) -> (i32, String) {
    let out = start(dir, gpus, spec, extra).wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub(crate) fn status(dir: &Path) -> Vec<Value> {
    let out = sweep(&["status", "--format", "json"], dir);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    serde_json::from_str::<Value>(&stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn by_label(runs: &[Value]) -> BTreeMap<String, Value> {
    // Labels read `lr=0.1 seed=1`: key on the learning rate.
    runs.iter()
        .map(|r| {
            (
                r["label"]
                    .as_str()
                    .unwrap()
                    .split(' ')
                    .next()
                    .unwrap()
                    .to_string(),
                r.clone(),
            )
        })
        .collect()
}

/// Epochs of every run must be exactly 1..=n.
pub(crate) fn assert_complete(runs: &[Value], n: usize) {
    let want: Vec<Value> = (1..=n).map(|e| Value::from(e as u64)).collect();
    for r in runs {
        assert_eq!(r["status"], "done", "{r}");
        assert_eq!(r["epochs"].as_array().unwrap(), &want, "{r}");
    }
}

/// How many times each run started each epoch, from the fake trainer's log.
pub(crate) fn starts(log: &Path) -> BTreeMap<(String, usize), usize> {
    let mut out = BTreeMap::new();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        let (id, epoch) = line.split_once(' ').unwrap();
        *out.entry((id.to_string(), epoch.parse().unwrap()))
            .or_insert(0) += 1;
    }
    out
}

#[test]
fn failing_runs_are_recorded_and_the_others_complete() {
    let dir = tempfile::tempdir().unwrap();
    write_sweep(dir.path(), &["0.1", "0.2", "0.3", "0.4", "0.5"], 1, 3);
    let spec = r#"{"epoch_ms": 10, "panic": ["lr=0.2"], "nan": ["lr=0.3"], "abort": ["lr=0.4"], "oom": ["lr=0.5"]}"#;
    let (code, stderr) = run_to_end(dir.path(), 2, spec, &[]);
    assert_eq!(code, 2, "some runs failed: {stderr}");
    let runs = by_label(&status(dir.path()));
    assert_eq!(runs["lr=0.1"]["status"], "done");
    assert_eq!(runs["lr=0.2"]["status"], "failed");
    assert!(
        runs["lr=0.2"]["error"]
            .as_str()
            .unwrap()
            .contains("panicked at src/train/fake.rs"),
        "{}",
        runs["lr=0.2"]
    );
    assert!(
        runs["lr=0.2"]["error"]
            .as_str()
            .unwrap()
            .ends_with(": fake trainer panics as asked"),
        "{}",
        runs["lr=0.2"]
    );
    assert!(
        runs["lr=0.3"]["error"]
            .as_str()
            .unwrap()
            .contains("the loss became NaN at epoch 2"),
        "{}",
        runs["lr=0.3"]
    );
    assert!(
        runs["lr=0.4"]["error"]
            .as_str()
            .unwrap()
            .contains("signal 6 (SIGABRT)"),
        "{}",
        runs["lr=0.4"]
    );
    // Out of memory: retried once at half the batch size, recorded, and done.
    assert_eq!(runs["lr=0.5"]["status"], "done", "{}", runs["lr=0.5"]);
    assert_eq!(runs["lr=0.5"]["batch_size"], 16);
    assert!(runs["lr=0.5"]["note"]
        .as_str()
        .unwrap()
        .contains("out of memory at batch size 32; retrying once at 16"));
    // Failed runs kept their stored epoch 1.
    assert_eq!(runs["lr=0.2"]["epochs"], serde_json::json!([1]));
    for r in runs.values() {
        assert!(r["device"].as_str().unwrap().starts_with("cuda:"), "{r}");
    }
}

/// Out of memory on a GPU shared with other runs: the run trains again at the same batch
/// size with the GPU to itself (the others' current runs end first, the next ones wait), and
/// only the failed attempt is repeated.
#[test]
fn out_of_memory_beside_other_runs_retries_alone_at_the_same_batch_size() {
    let dir = tempfile::tempdir().unwrap();
    write_sweep(dir.path(), &["0.1", "0.2", "0.3", "0.4", "0.5"], 1, 3);
    let log = dir.path().join("epochs.log");
    let spec = serde_json::json!({"epoch_ms": 60, "oom_shared": ["lr=0.2"], "log": log});
    let (code, stderr) = run_to_end(
        dir.path(),
        1,
        &spec.to_string(),
        &["--runs-per-device", "3"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("beside other runs; retrying it alone on that device"),
        "{stderr}"
    );
    let runs = by_label(&status(dir.path()));
    let oom = &runs["lr=0.2"];
    assert_eq!(oom["status"], "done", "{oom}");
    assert_eq!(oom["batch_size"], 32, "the batch was not halved: {oom}");
    let id = oom["run_id"].as_str().unwrap();
    // Epoch starts in order: the first attempt failed in epoch 1; from the retry's epoch 1 to
    // its epoch 3, nothing else started on the GPU.
    let lines: Vec<(String, usize)> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| {
            let (run, epoch) = l.split_once(' ').unwrap();
            (run.to_string(), epoch.parse().unwrap())
        })
        .collect();
    let mine: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].0 == id).collect();
    let epochs: Vec<usize> = mine.iter().map(|&i| lines[i].1).collect();
    assert_eq!(epochs, [1, 1, 2, 3], "{lines:?}");
    assert_eq!(
        mine[3] - mine[1],
        2,
        "another run trained beside it: {lines:?}"
    );
    assert_complete(&status(dir.path()), 3);
}

/// Each failure carries the kind decided where it was seen, in `sweep status --format json`.
#[test]
fn failures_are_stored_with_their_kind() {
    let dir = tempfile::tempdir().unwrap();
    write_sweep(dir.path(), &["0.1", "0.2", "0.3", "0.4"], 1, 2);
    let spec = r#"{"epoch_ms": 10, "panic": ["lr=0.2"], "nan": ["lr=0.3"], "abort": ["lr=0.4"]}"#;
    let (code, stderr) = run_to_end(dir.path(), 2, spec, &[]);
    assert_eq!(code, 2, "some runs failed: {stderr}");
    let runs = by_label(&status(dir.path()));
    let kinds: Vec<Value> = runs.values().map(|r| r["failure_kind"].clone()).collect();
    let want = serde_json::json!([null, "panic", "non_finite", "signal"]);
    assert_eq!(Value::from(kinds), want, "{runs:?}");
}

#[test]
fn devices_lists_fake_gpus_and_devices_flag_pins_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sweep"))
        .args(["devices", "--fake-gpus", "3"])
        .output()
        .unwrap();
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains("Fake GPU 2")
            && stdout.contains("sweep run trains on: cuda:0, cuda:1, cuda:2"),
        "{stdout}"
    );
    write_sweep(dir.path(), &["0.1", "0.2"], 2, 2);
    let (code, stderr) = run_to_end(dir.path(), 3, r#"{"epoch_ms": 5}"#, &["--devices", "2"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(status(dir.path()).iter().all(|r| r["device"] == "cuda:2"));
    let (code, stderr) = run_to_end(dir.path(), 3, r#"{"epoch_ms": 5}"#, &["--devices", "7"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("GPU 7 does not exist"), "{stderr}");
}

#[test]
fn eight_concurrent_workers_write_without_locking() {
    let dir = tempfile::tempdir().unwrap();
    write_sweep(dir.path(), &["0.1", "0.2", "0.3", "0.4"], 4, 3);
    let (code, stderr) = run_to_end(
        dir.path(),
        4,
        r#"{"epoch_ms": 20}"#,
        &["--runs-per-device", "2"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("locked"), "{stderr}");
    let runs = status(dir.path());
    assert_eq!(runs.len(), 16);
    assert_complete(&runs, 3);
}

#[test]
fn two_coordinators_never_train_the_same_run() {
    let dir = tempfile::tempdir().unwrap();
    write_sweep(dir.path(), &["0.1", "0.2", "0.3"], 4, 3);
    let log = dir.path().join("starts.log");
    let spec = format!(r#"{{"epoch_ms": 30, "log": "{}"}}"#, log.display());
    let a = start(dir.path(), 2, &spec, &[]);
    let b = start(dir.path(), 2, &spec, &[]);
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert!(!stderr.contains("locked"), "{stderr}");
    }
    let runs = status(dir.path());
    assert_eq!(runs.len(), 12);
    assert_complete(&runs, 3);
    let starts = starts(&log);
    assert_eq!(starts.len(), 12 * 3);
    assert!(
        starts.values().all(|&n| n == 1),
        "an epoch ran twice: {starts:?}"
    );
    assert!(runs.iter().all(|r| r["attempts"] == 1), "{runs:?}");
}

/// Kill -9 the coordinator, or one of its workers, at a random moment; run again until done.
fn kill_and_resume(seed: u64, kill_worker: bool) {
    let dir = tempfile::tempdir().unwrap();
    write_sweep(dir.path(), &["0.1", "0.2", "0.3"], 2, 5);
    let log = dir.path().join("starts.log");
    let spec = format!(r#"{{"epoch_ms": 40, "log": "{}"}}"#, log.display());
    // A small deterministic generator: the seed picks the kill times.
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut kills = 0;
    for _ in 0..3 {
        let mut child = start(dir.path(), 2, &spec, &[]);
        std::thread::sleep(Duration::from_millis(150 + next() % 500));
        let target = if kill_worker {
            workers_of(child.id()).into_iter().next()
        } else {
            Some(child.id())
        };
        if let Some(pid) = target {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            kills += 1;
        }
        let _ = child.wait();
    }
    let (code, stderr) = run_to_end(dir.path(), 2, &spec, &[]);
    assert_eq!(code, 0, "seed {seed}: {stderr}");
    let runs = status(dir.path());
    assert_eq!(runs.len(), 6);
    assert_complete(&runs, 5);
    // Each kill can repeat at most the one epoch it interrupted in each busy run.
    let starts = starts(&log);
    let repeats: usize = starts.values().map(|&n| n - 1).sum();
    assert!(
        repeats <= kills * 2,
        "seed {seed}: {repeats} repeated epochs after {kills} kills: {starts:?}"
    );
    for r in &runs {
        let id = r["run_id"].as_str().unwrap();
        let n = (1..=5)
            .filter(|e| starts.contains_key(&(id.to_string(), *e)))
            .count();
        assert_eq!(n, 5, "seed {seed}: run {id} did not start every epoch");
    }
}

/// Child processes of `pid` (Linux /proc).
fn workers_of(pid: u32) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            // Fields after the command name: state, ppid, ...
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|s| s.parse::<u32>().ok());
            if ppid == Some(pid) {
                found.push(p);
            }
        }
        if !found.is_empty() || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn kill_9_of_the_coordinator_loses_and_repeats_nothing() {
    for seed in 1..=3 {
        kill_and_resume(seed, false);
    }
}

#[test]
fn kill_9_of_a_worker_loses_and_repeats_nothing() {
    for seed in 11..=13 {
        kill_and_resume(seed, true);
    }
}

#[test]
fn ctrl_c_lets_epochs_finish_then_resumes() {
    let dir = tempfile::tempdir().unwrap();
    write_sweep(dir.path(), &["0.1", "0.2"], 1, 4);
    let spec = r#"{"epoch_ms": 200}"#;
    let child = start(dir.path(), 2, spec, &[]);
    // Interrupt once training is under way (an epoch stored), however slow the machine.
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let db = dir.path().join("runs/sweep.db");
        let stored = db.exists()
            && sweep(&["status", "--format", "json"], dir.path())
                .status
                .success()
            && status(dir.path())
                .iter()
                .any(|r| !r["epochs"].as_array().unwrap().is_empty());
        if stored {
            break;
        }
    }
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let runs = status(dir.path());
    for r in &runs {
        assert_eq!(r["status"], "stopped", "{r}");
        assert!(
            !r["epochs"].as_array().unwrap().is_empty(),
            "the running epoch finished and was saved: {r}"
        );
    }
    let (code, stderr) = run_to_end(dir.path(), 2, spec, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("resuming after epoch"), "{stderr}");
    assert_complete(&status(dir.path()), 4);
}

/// The `unshare` arguments that start a program as PID 1 of a new PID namespace here: as
/// root, or inside a user namespace otherwise. Why not, where neither works.
fn pid_namespace() -> Result<Vec<&'static str>, String> {
    let mut why = String::new();
    for extra in [&[][..], &["--map-root-user"][..]] {
        let mut args = vec!["--pid", "--fork", "--mount-proc"];
        args.extend_from_slice(extra);
        let probe = Command::new("unshare")
            .args(&args)
            .args(["sh", "-c", "echo $$"])
            .output();
        match probe {
            Err(e) => return Err(format!("unshare is missing: {e}")),
            Ok(out) if out.status.success() && text(&out).0.trim() == "1" => return Ok(args),
            Ok(out) => why = text(&out).1,
        }
    }
    Err(format!("unshare is not permitted here: {}", why.trim()))
}

/// `sweep run` as PID 1, as in `docker run image sweep run ...`: its workers' parent pid is 1,
/// which the workers once took for "the coordinator died", failing every run (issue 7).
#[test]
fn a_coordinator_that_is_pid_1_completes_its_runs() {
    let unshare = match pid_namespace() {
        Ok(args) => args,
        Err(why) => {
            eprintln!("skipped: cannot run sweep as PID 1: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    write_sweep(dir.path(), &["0.1", "0.2", "0.3"], 1, 2);
    let mut cmd = Command::new("unshare");
    cmd.args(&unshare)
        .args([env!("CARGO_BIN_EXE_sweep"), "run", "fake.toml"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    fake_args(&mut cmd, 2, r#"{"epoch_ms": 10}"#);
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let runs = status(dir.path());
    assert_eq!(runs.len(), 3);
    assert_complete(&runs, 2);
}

/// 27 fake runs for ASHA (eta 3, rungs at epochs 1 and 3, 9 epochs at most). The fake
/// trainer's val_loss is `1/(epoch+1) + 0.05 + lr + (seed % 7) * 0.01`, so with one seed a
/// run's quality is its learning rate, known in advance: lr=0.001 is the best run. The lrs
/// are listed shuffled, so quality does not follow the run order.
fn write_asha_sweep(dir: &Path) {
    std::fs::create_dir_all(dir.join("train/a")).unwrap();
    let mut lrs: Vec<u32> = (1..=27).collect();
    // A fixed shuffle: multiply by a unit mod 28 (coprime), keeping 1..=27 a permutation.
    lrs.sort_by_key(|k| (k * 11) % 28);
    let lrs: Vec<String> = lrs
        .iter()
        .map(|k| format!("{:.3}", *k as f64 / 1000.0))
        .collect();
    let text = format!(
        "name = \"asha\"\nseed = 1\n[data]\ntrain = \"train\"\nimage_size = [8, 8]\n[train]\nepochs = 9\nbatch_size = 32\n[grid]\nlr = [{}]\n[search.asha]\nmetric = \"val_loss\"\nmin_epochs = 1\nreduction_factor = 3\n",
        lrs.join(", ")
    );
    std::fs::write(dir.join("fake.toml"), text).unwrap();
}

/// (label -> (status, stored epochs)) of every run.
fn outcomes(dir: &Path) -> BTreeMap<String, (String, usize)> {
    status(dir)
        .iter()
        .map(|r| {
            (
                r["label"].as_str().unwrap().to_string(),
                (
                    r["status"].as_str().unwrap().to_string(),
                    r["epochs"].as_array().unwrap().len(),
                ),
            )
        })
        .collect()
}

fn stored_epochs(dir: &Path) -> usize {
    let out = crate::util::sweep(&["status", "--format", "json"], dir);
    let Ok(runs) = serde_json::from_slice::<Value>(&out.stdout) else {
        return 0;
    };
    runs.as_array()
        .map(|a| {
            a.iter()
                .map(|r| r["epochs"].as_array().map_or(0, |e| e.len()))
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn asha_prunes_two_thirds_keeps_the_best_and_decides_the_same_after_kill_9() {
    let spec = r#"{"epoch_ms": 20}"#;
    let once = tempfile::tempdir().unwrap();
    write_asha_sweep(once.path());
    let (code, stderr) = run_to_end(once.path(), 0, spec, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("pruned by the search"), "{stderr}");
    let first = outcomes(once.path());
    assert_eq!(first.len(), 27);
    let pruned: Vec<_> = first.iter().filter(|(_, (s, _))| s == "pruned").collect();
    assert!(
        pruned.len() >= 18,
        "only {} of 27 pruned: {first:?}",
        pruned.len()
    );
    // Pruned at a rung, after exactly 1 or 3 epochs; the rest trained all 9.
    for (label, (status, epochs)) in &first {
        match status.as_str() {
            "pruned" => assert!(*epochs == 1 || *epochs == 3, "{label}: {epochs}"),
            "done" => assert_eq!(*epochs, 9, "{label}"),
            other => panic!("{label}: {other}"),
        }
    }
    assert_eq!(
        first["lr=0.001"],
        ("done".to_string(), 9),
        "the best run was pruned"
    );
    // The reason is stored and shown.
    let runs = status(once.path());
    let reason = runs
        .iter()
        .find(|r| r["status"] == "pruned")
        .and_then(|r| r["stop_reason"].as_str())
        .unwrap()
        .to_string();
    assert!(
        reason.contains("ASHA") && reason.contains("val_loss"),
        "{reason}"
    );

    // The same sweep, its coordinator's whole process group killed -9 three times at
    // different depths (each re-run resumes what the last one left), then run to the end.
    let killed = tempfile::tempdir().unwrap();
    write_asha_sweep(killed.path());
    for at_least in [10, 35, 70] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sweep"));
        cmd.args(["run", "fake.toml"])
            .current_dir(killed.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        fake_args(&mut cmd, 0, spec);
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while stored_epochs(killed.path()) < at_least && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: kill(2) on the process group the child leads; no memory is involved.
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
        let _ = child.wait();
        let midway = outcomes(killed.path());
        assert!(
            midway.values().any(|(s, _)| s != "done" && s != "pruned"),
            "the kill after {at_least} epochs did not land midway: {midway:?}"
        );
    }
    let (code, stderr) = run_to_end(killed.path(), 0, spec, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        outcomes(killed.path()),
        first,
        "a killed and resumed sweep decided otherwise"
    );
}

/// A strategy that grows the queue: each time a run ends it proposes the same run at half the
/// learning rate, until the sweep holds `total` runs.
struct Halving {
    sweep: String,
    total: usize,
    known: usize,
}

impl sweep::search::Strategy for Halving {
    fn rungs(&self, _run: &sweep::run::RunSpec) -> Vec<usize> {
        Vec::new()
    }

    fn verdict(
        &self,
        _: &sweep::run::RunSpec,
        _: usize,
        _: &mut dyn sweep::search::History,
    ) -> anyhow::Result<sweep::run::Verdict> {
        Ok(sweep::run::Verdict::Continue)
    }

    fn propose(
        &mut self,
        ended: &sweep::run::RunSpec,
        _: &mut dyn sweep::search::History,
    ) -> anyhow::Result<Vec<sweep::run::RunSpec>> {
        if self.known >= self.total {
            return Ok(Vec::new());
        }
        self.known += 1;
        let mut config = ended.config.clone();
        config.lr /= 2.0;
        Ok(vec![sweep::run::RunSpec {
            index: self.known,
            id: sweep::run::RunSpec::id_for(&self.sweep, &config),
            label: format!("lr={}", config.lr),
            cost: ended.cost,
            config,
        }])
    }
}

/// Sees nothing: the test reads the store.
struct Quiet;

impl sweep::scheduler::Observer for Quiet {
    fn begin(
        &mut self,
        _: &str,
        _: &[sweep::run::RunSpec],
        _: &sweep::scheduler::SweepOutcome,
        _: &[sweep::devices::Slot],
    ) {
    }
    fn event(&mut self, _: usize, _: &sweep::run::Event, _: &sweep::scheduler::SweepOutcome) {}
    fn note(&mut self, _: &str) {}
    fn finish(&mut self, _: &sweep::scheduler::SweepOutcome) {}
}

#[test]
fn the_queue_grows_with_the_runs_a_strategy_proposes() {
    use sweep::scheduler::{run_sweep, Options, Plan};
    let dir = tempfile::tempdir().unwrap();
    write_sweep(dir.path(), &["0.08"], 1, 2);
    let file = dir.path().join("fake.toml");
    let mut s = sweep::sweep::Sweep::from_file(&file).unwrap();
    s.fake = Some(sweep::run::FakeSpec {
        epoch_ms: 10,
        ..Default::default()
    });
    let db = dir.path().join("runs/sweep.db");
    let go = |total: usize| {
        let plan = Plan {
            name: s.name.clone(),
            file: file.clone(),
            base_dir: s.base_dir(),
            runs: s.runs(),
            strategy: Box::new(Halving {
                sweep: s.name.clone(),
                total,
                known: 1,
            }),
        };
        let opts = Options {
            // Two slots for a sweep of one run: the second waits for proposals, not quits.
            slots: vec![sweep::devices::Slot::Cpu, sweep::devices::Slot::Cpu],
            runs_dir: dir.path().join("runs"),
            exe: env!("CARGO_BIN_EXE_sweep").into(),
            stale_after: Duration::from_secs(60),
            graces: sweep::scheduler::signals::Graces {
                stop: Duration::from_secs(20),
                usr1: Duration::from_secs(90),
            },
            heartbeat_every: Duration::from_millis(200),
            threads: Some(1),
            wait_for_others: false,
            job: None,
        };
        let store = sweep::store::open(&sweep::store::Location::Sqlite(db.clone())).unwrap();
        run_sweep(plan, store, opts, Box::new(Quiet)).unwrap()
    };
    let outcome = go(4);
    assert_eq!((outcome.total, outcome.done), (4, 4), "{outcome:?}");
    let runs = by_label(&status(dir.path()));
    let lrs: Vec<&String> = runs.keys().collect();
    assert_eq!(
        lrs,
        ["lr=0.01", "lr=0.02", "lr=0.04", "lr=0.08"],
        "{runs:?}"
    );
    assert_complete(&runs.values().cloned().collect::<Vec<_>>(), 2);
    // Run again: the first run is done, so nothing ends and nothing new is proposed.
    let again = go(4);
    assert_eq!((again.total, again.already_done, again.done), (1, 1, 0));
}
