//! Runs -> devices. A coordinator owns the queue and the only database connection that
//! writes; one async worker loop per device slot claims a run (atomically, so two
//! `sweep run` processes never train the same cell), trains it in a `sweep worker` process
//! pinned to its device, and streams the worker's events to the writer thread.
//!
//! A worker's panic, NaN, out-of-memory error or crash is that run's failure (an OOM is
//! retried once at half the batch size); the sweep goes on. The first Ctrl-C stops
//! dispatching and lets running epochs finish and save; the second stops at once.
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{oneshot, watch};

use crate::devices::Slot;
use crate::run::{DataSpec, Event, Provenance, RunSpec, Verdict};
use crate::search::Strategy;
use crate::store::Storage;

mod gate;
mod retry;
pub mod signals;
mod slot;
mod writer;
use slot::SlotLoop;
use writer::Writer;

/// What a `sweep run` did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SweepOutcome {
    pub total: usize,
    pub already_done: usize,
    pub done: usize,
    /// Runs the search strategy stopped for good.
    pub pruned: usize,
    /// (run label, error) of each failed run.
    pub failed: Vec<(String, String)>,
    /// Runs another `sweep run` process was training.
    pub held_elsewhere: usize,
    pub interrupted: bool,
    /// The first stopping signal (SIGINT 2, SIGHUP 1, SIGTERM 15): the exit code is 128 + it.
    pub signal: Option<i32>,
}

/// Watches a sweep from the writer thread: every event after it is stored, and notes. The
/// progress display is one; the scheduler depends on this trait, never on a display.
pub trait Observer: Send {
    /// The sweep's runs (done ones included) before any is dispatched.
    fn begin(&mut self, sweep: &str, runs: &[RunSpec], outcome: &SweepOutcome, slots: &[Slot]);
    fn event(&mut self, slot: usize, event: &Event, outcome: &SweepOutcome);
    fn note(&mut self, line: &str);
    /// Runs the search strategy added while the sweep ran.
    fn added(&mut self, _runs: &[RunSpec], _outcome: &SweepOutcome) {}
    fn finish(&mut self, outcome: &SweepOutcome);
}

/// What to train: the runs the search method proposed and the strategy that judges them.
pub struct Plan {
    /// The sweep's name (its runs go to `runs_dir/<name>/`).
    pub name: String,
    /// The sweep file, as recorded in the store.
    pub file: PathBuf,
    /// Relative data folders in run configs resolve against this folder.
    pub base_dir: PathBuf,
    pub runs: Vec<RunSpec>,
    pub strategy: Box<dyn Strategy>,
}

/// A run waiting for a slot: its spec, its data with folders resolved, and the epochs at which
/// the strategy judges it.
#[derive(Clone, Debug)]
pub(crate) struct Queued {
    pub(crate) run: RunSpec,
    pub(crate) data: DataSpec,
    /// Its pretrained weights file, resolved (transfer learning).
    pub(crate) pretrained: Option<std::path::PathBuf>,
    pub(crate) rungs: Vec<usize>,
    /// The database and data its saved states must belong to.
    pub(crate) provenance: Provenance,
}

/// How the coordinator runs a sweep.
pub struct Options {
    pub slots: Vec<Slot>,
    /// Checkpoints go to `runs_dir/<sweep>/<run id>/`.
    pub runs_dir: PathBuf,
    /// The `sweep` executable, started as `sweep worker` for each run.
    pub exe: PathBuf,
    /// A `running` run whose owner sent no heartbeat for this long is taken over.
    pub stale_after: Duration,
    pub heartbeat_every: Duration,
    /// After SIGTERM or SIGHUP, how long running epochs may take to finish and save before
    /// the sweep stops at once.
    pub stop_grace: Duration,
    /// CPU threads per worker; `None` leaves the environment's choice.
    pub threads: Option<usize>,
}

/// 0: dispatch; 1: drain (no new runs, running ones stop after their epoch); 2: stop now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Control {
    Run,
    Drain,
    Kill,
}

pub(crate) enum ToWriter {
    /// A slot is free: the next run, or `None` when the sweep is over. The answer waits while
    /// runs in flight may still make the strategy propose more.
    Next {
        reply: oneshot::Sender<Option<Queued>>,
    },
    Event {
        slot: usize,
        event: Event,
    },
    Claim {
        run: String,
        run_dir: PathBuf,
        reply: oneshot::Sender<Option<(Option<usize>, Option<usize>)>>,
    },
    Retry {
        run: String,
        batch_size: usize,
        note: String,
    },
    /// A run reached one of its rungs (its epoch is stored): the strategy's verdict.
    Verdict {
        run: String,
        epoch: usize,
        reply: oneshot::Sender<Verdict>,
    },
    /// Line the stored epochs up with the saved state again before resuming in place.
    Resume {
        run: String,
        run_dir: PathBuf,
        reply: oneshot::Sender<Option<usize>>,
    },
    /// Another process holds the run.
    HeldElsewhere {
        run: String,
    },
    /// Milliseconds from claiming a run to its worker's `Started`.
    Dispatched {
        run: String,
        ms: f64,
    },
    /// A stopping signal arrived (its number).
    Interrupted(i32),
    Note(String),
}

/// This process's name in the `owner` column: host and pid.
pub fn owner_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    format!(
        "{}:{}",
        if host.is_empty() { "localhost" } else { &host },
        std::process::id()
    )
}

/// Whether the process named by `owner` may still be alive. Only processes on this host
/// can be checked; others are judged by their heartbeats.
pub fn owner_alive(owner: &str) -> bool {
    let mine = owner_name();
    let (host, pid) = owner.rsplit_once(':').unwrap_or((owner, ""));
    let my_host = mine.rsplit_once(':').map(|(h, _)| h).unwrap_or("");
    if host != my_host || !Path::new("/proc/self").exists() {
        return true;
    }
    pid.parse::<u32>()
        .is_ok_and(|p| Path::new(&format!("/proc/{p}")).exists())
}

/// Train every run of the plan that is not done yet, storing each event as it happens.
pub fn run_sweep(
    plan: Plan,
    mut store: Box<dyn Storage>,
    opts: Options,
    display: Box<dyn Observer>,
) -> anyhow::Result<SweepOutcome> {
    let Plan {
        name,
        file,
        base_dir,
        runs,
        strategy,
    } = plan;
    let states = store
        .register(&name, &file, &runs, true)
        .context("cannot record the sweep's runs")?;
    let mut writer = Writer {
        store,
        strategy,
        display,
        outcome: SweepOutcome {
            total: states.len(),
            ..Default::default()
        },
        sweep: name.clone(),
        file,
        base_dir,
        owner: owner_name(),
        stale_secs: opts.stale_after.as_secs_f64(),
        runs: HashMap::new(),
        store_id: String::new(),
        fingerprints: HashMap::new(),
        provenance: HashMap::new(),
        queue: VecDeque::new(),
        in_flight: HashSet::new(),
        waiting: Vec::new(),
    };
    writer.store_id = writer
        .store
        .id()
        .context("cannot read the database's identity")?;
    let specs: Vec<RunSpec> = states.iter().map(|s| s.spec.clone()).collect();
    writer.know(&specs);
    let mut todo: Vec<Queued> = Vec::new();
    for s in &states {
        if s.done {
            writer.outcome.already_done += 1;
        } else {
            todo.push(writer.queued(&s.spec));
        }
    }
    todo.sort_by(|a, b| {
        b.run
            .cost
            .total_cmp(&a.run.cost)
            .then(a.run.index.cmp(&b.run.index))
    });
    writer.queue = todo.into();
    writer
        .display
        .begin(&name, &specs, &writer.outcome, &opts.slots);
    if writer.queue.is_empty() {
        writer.display.finish(&writer.outcome);
        return Ok(writer.outcome);
    }
    let (to_writer, inbox) = mpsc::channel::<ToWriter>();
    let heartbeat_every = opts.heartbeat_every;
    let writer = std::thread::spawn(move || writer.run(inbox, heartbeat_every));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the scheduler's runtime")?;
    let sweep_dir = opts.runs_dir.join(&name);
    let exe = opts.exe.clone();
    runtime.block_on(async {
        let (control_tx, control) = watch::channel(Control::Run);
        // Kept until the end: a dropped sender would wake every `changed()` forever.
        let _control_keep = control_tx.clone();
        let signals = match signals::watch(control_tx, to_writer.clone(), opts.stop_grace) {
            Ok(watching) => Some(tokio::spawn(watching)),
            Err(e) => {
                let _ = to_writer.send(ToWriter::Note(format!(
                    "cannot watch for signals ({e}): Ctrl-C stops at once"
                )));
                None
            }
        };
        let mut loops = Vec::new();
        let gates = gate::Gate::for_slots(&opts.slots);
        for ((i, slot), gate) in opts.slots.iter().enumerate().zip(gates) {
            let ctx = SlotLoop {
                index: i,
                slot: slot.clone(),
                gate,
                to_writer: to_writer.clone(),
                control: control.clone(),
                exe: exe.clone(),
                sweep_dir: sweep_dir.clone(),
                threads: opts.threads,
                process: None,
            };
            loops.push(tokio::spawn(ctx.work()));
        }
        drop(to_writer);
        for l in loops {
            if let Err(e) = l.await {
                crate::say!("a device worker loop stopped: {e}");
            }
        }
        if let Some(s) = signals {
            s.abort();
        }
    });
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("the database writer panicked"))?
}
