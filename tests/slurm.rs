//! End to end on a real Slurm cluster and PostgreSQL server (scripts/cluster.sh: one node, 4
//! fake GPUs): `sweep submit --array 4 --gpus-per-task 1` trains a small real sweep into a
//! database of its own; one task gets SIGUSR1 (`scancel --signal=USR1 --batch`: it saves,
//! releases its run and requeues itself), another's `sweep run` SIGKILL (its run is taken
//! over). Every run
//! ends done with epochs 1..N, no epoch is trained twice, and each task saw one GPU of its
//! own. Runs only when SWEEP_TEST_SLURM and SWEEP_TEST_PG are set; says it was skipped
//! otherwise.
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{copy_classes, sweep, text};

const EPOCHS: usize = 4;

/// 8 runs of a width-16 cnn on 4 classes x 200 Fashion-MNIST images at 28x28: about 0.8 s of
/// one core per epoch, so that the signals land while runs train.
const SWEEP: &str = r#"
name = "slurm_e2e"
[data]
train = "data/train"
val_split = 0.25
image_size = [28, 28]
channels = 1
[train]
backbone = "cnn"
width = 16
batch_size = 16
epochs = 4
threads = 1
[grid]
lr = [0.02, 0.01, 0.005, 0.002]
seed = [1, 2]
"#;

/// The PostgreSQL URL, when a cluster is there to test on.
fn cluster() -> Option<String> {
    let pg = std::env::var("SWEEP_TEST_PG")
        .ok()
        .filter(|s| !s.is_empty());
    let slurm = std::env::var("SWEEP_TEST_SLURM")
        .ok()
        .filter(|s| !s.is_empty());
    match (pg, slurm) {
        (Some(pg), Some(_)) => Some(pg),
        _ => {
            eprintln!("skipped: set SWEEP_TEST_SLURM and SWEEP_TEST_PG (bash scripts/cluster.sh start DIR; source DIR/env.sh) to run the Slurm end-to-end test");
            None
        }
    }
}

/// A database of its own on the test server, and the job submitted into it: both gone when
/// the test ends, passed or not.
struct Scratch {
    admin: String,
    name: String,
    url: String,
    job: Option<String>,
}

impl Scratch {
    fn new(admin: &str) -> Scratch {
        let name = format!("sweep_e2e_{:016x}", rand::random::<u64>());
        let mut client = postgres::Client::connect(admin, postgres::NoTls).unwrap();
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        // The admin URL with its database replaced: postgres://user@host:port/NAME.
        let base = admin.split('?').next().unwrap();
        let (server, _) = base.rsplit_once('/').unwrap();
        Scratch {
            admin: admin.to_string(),
            url: format!("{server}/{name}"),
            name,
            job: None,
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(job) = &self.job {
            let _ = Command::new("scancel").arg(job).status();
        }
        if let Ok(mut c) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// `sweep status --format json` on the store, or nothing while it holds no sweep yet.
fn runs_now(dir: &Path, url: &str) -> Vec<Value> {
    let out = sweep(&["status", "--db", url, "--format", "json"], dir);
    serde_json::from_slice::<Value>(&out.stdout)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

/// A run task `task` trains with an epoch stored and more to go.
fn mid_run(runs: &[Value], task: &str) -> Option<Value> {
    runs.iter()
        .find(|r| {
            let stored = r["epochs"].as_array().map_or(0, |e| e.len());
            r["status"] == "running" && r["slurm_job"] == task && (1..EPOCHS).contains(&stored)
        })
        .cloned()
}

fn wait_until<T>(what: &str, limit: Duration, mut ready: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = ready() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} never happened");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn scancel(args: &[&str]) {
    let out = Command::new("scancel").args(args).output().unwrap();
    assert!(out.status.success(), "scancel {args:?}: {:?}", text(&out));
}

/// Whether Slurm still knows job `job` as pending or running (a requeued task included).
fn queued(job: &str) -> bool {
    let out = Command::new("squeue")
        .args(["-h", "-j", job, "-o", "%i %T"])
        .output()
        .unwrap();
    !String::from_utf8_lossy(&out.stdout).trim().is_empty()
}

/// One task's output: the GPUs of each start line, and the (run id, epoch) it trained.
#[derive(Debug, Default)]
struct TaskLog {
    gpus: Vec<String>,
    epochs: Vec<(String, usize)>,
    text: String,
}

/// Reads a task's output (`--open-mode=append`: a requeued task's follows its first). A task
/// trains one run at a time (one CPU slot), so an epoch line belongs to the run started last.
fn task_log(path: &Path) -> TaskLog {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut log = TaskLog::default();
    let mut run: Option<String> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("slurm: job ") {
            let gpus = rest.split(", GPUs ").nth(1).unwrap_or("");
            log.gpus
                .push(gpus.split(" (").next().unwrap_or("").to_string());
        } else if let Some((head, _)) = line.split_once(") started on ") {
            run = head.rsplit_once(" (").map(|(_, id)| id.to_string());
        } else if let Some(rest) = line.trim_start().strip_prefix("epoch ") {
            let epoch: usize = rest.split('/').next().unwrap().parse().unwrap();
            let id = run.clone().unwrap_or_else(|| panic!("{path:?}: {line}"));
            log.epochs.push((id, epoch));
        }
    }
    log.text = text;
    log
}

#[test]
fn a_slurm_array_trains_a_sweep_into_postgres_through_usr1_and_sigkill() {
    let Some(admin) = cluster() else { return };
    let mut scratch = Scratch::new(&admin);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    copy_classes("train", &root.join("data/train"), 4, 200);
    std::fs::write(root.join("e2e.toml"), SWEEP).unwrap();
    let runs_dir = root.join("runs");
    let out = sweep(
        &[
            "submit",
            "e2e.toml",
            "--db",
            &scratch.url,
            "--runs-dir",
            runs_dir.to_str().unwrap(),
            "--array",
            "4",
            "--gpus-per-task",
            "1",
            "--cpus-per-task",
            "1",
            "--time",
            "0:10:00",
        ],
        root,
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let job = stdout.trim().to_string();
    assert!(job.chars().all(|c| c.is_ascii_digit()), "{stdout}");
    scratch.job = Some(job.clone());
    let task = |i: usize| format!("{job}_{i}");

    // Task 1 gets Slurm's warning while it trains: it finishes the epoch, saves, releases
    // the run and requeues itself.
    let warned = wait_until("task 1 training", Duration::from_secs(120), || {
        mid_run(&runs_now(root, &scratch.url), &task(1))
    });
    scancel(&["--signal=USR1", "--batch", &task(1)]);
    // Task 2's sweep is killed outright (kill -9 of the pid in its owner name; `scancel
    // --signal=KILL` would cancel the job, which sends SIGTERM first) while it trains: its
    // workers die with it, and its run is taken over.
    let killed = wait_until("task 2 training", Duration::from_secs(120), || {
        mid_run(&runs_now(root, &scratch.url), &task(2))
    });
    let owner = killed["owner"].as_str().unwrap();
    let pid: i32 = owner.split(':').nth(1).unwrap().parse().unwrap();
    // SAFETY: kill(2) on the pid of task 2's `sweep run`, on this (the only) node.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0, "{owner}");

    wait_until("the array to end", Duration::from_secs(300), || {
        (!queued(&job)).then_some(())
    });
    let runs = runs_now(root, &scratch.url);
    assert_eq!(runs.len(), 8, "{runs:?}");
    let want: Vec<Value> = (1..=EPOCHS).map(|e| Value::from(e as u64)).collect();
    for r in &runs {
        assert_eq!(r["status"], "done", "{r}");
        assert_eq!(r["epochs"].as_array().unwrap(), &want, "{r}");
    }

    let logs: Vec<TaskLog> = (0..4)
        .map(|i| task_log(&runs_dir.join(format!("slurm_e2e/slurm-{job}_{i}.out"))))
        .collect();
    let all =
        |f: &dyn Fn(&TaskLog) -> String| logs.iter().map(f).collect::<Vec<_>>().join("\n-----\n");
    // Each task saw one GPU, and the four tasks (running at once) four different ones.
    let first: Vec<&String> = logs.iter().filter_map(|l| l.gpus.first()).collect();
    assert_eq!(first.len(), 4, "{}", all(&|l| l.text.clone()));
    for l in &logs {
        for g in &l.gpus {
            assert!(
                !g.is_empty() && g != "none" && !g.contains(','),
                "not one GPU: {g:?}"
            );
        }
    }
    let mut distinct = first.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "GPUs shared: {first:?}");
    // Every epoch of every run trained exactly once, across all tasks: a run started over
    // would train epoch 1 again; the warned and the killed runs resumed.
    let mut trained: BTreeMap<(String, usize), usize> = BTreeMap::new();
    for l in &logs {
        for e in &l.epochs {
            *trained.entry(e.clone()).or_insert(0) += 1;
        }
    }
    assert_eq!(trained.len(), 8 * EPOCHS, "{trained:?}");
    assert!(
        trained.values().all(|&n| n == 1),
        "an epoch trained twice: {trained:?}"
    );
    for (what, run) in [("warned", &warned), ("killed", &killed)] {
        let id = run["run_id"].as_str().unwrap();
        let resumed = logs.iter().any(|l| {
            l.text.lines().any(|line| {
                line.contains(&format!("({id}) started on"))
                    && line.contains("resuming after epoch")
            })
        });
        assert!(
            resumed,
            "the {what} run {id} did not resume: {}",
            all(&|l| l.text.clone())
        );
    }
    // The killed task said nothing more: it was killed, not stopped.
    assert!(
        !logs[2].text.contains("stopped after epoch"),
        "{}",
        logs[2].text
    );
    // The warned task released its run and requeued itself, and started again.
    let warned_log = &logs[1].text;
    assert!(
        warned_log.contains(&format!("slurm: requeued job {}", task(1))),
        "{warned_log}"
    );
    assert_eq!(logs[1].gpus.len(), 2, "not started again: {warned_log}");
}
