//! Runs -> devices. A coordinator owns the queue and the only database connection that
//! writes; one async worker loop per device slot claims a run (atomically, so two
//! `sweep run` processes never train the same cell), trains it in a `sweep worker` process
//! pinned to its device, and streams the worker's events to the writer thread.
//!
//! A worker's panic, NaN, out-of-memory error or crash is that run's failure (an OOM is
//! retried once at half the batch size); the sweep goes on. The first Ctrl-C stops
//! dispatching and lets running epochs finish and save; the second stops at once.
//!
//! Several processes may share one store (Slurm array tasks on one PostgreSQL server): each
//! claims runs until none is left, and with `wait_for_others` also waits for the runs the
//! others hold, taking over any they release or abandon, until every run is finished.
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{oneshot, watch};

use crate::devices::Slot;
use crate::run::{DataSpec, Event, Provenance, RunSpec, Verdict};
use crate::search::Strategy;
use crate::store::Storage;

mod gate;
mod held;
mod owner;
mod retry;
pub mod signals;
mod slot;
mod writer;
pub use owner::{host_name, owner_alive, Owner, DEFAULT_STALE_SECS};
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
    /// Runs another `sweep run` process was training (at the end: still training).
    pub held_elsewhere: usize,
    /// Runs this process waited for that another one finished (done, pruned or failed).
    pub finished_elsewhere: usize,
    pub interrupted: bool,
    /// The first stopping signal (SIGINT 2, SIGHUP 1, SIGUSR1 10, SIGTERM 15): the exit code
    /// is 128 + it.
    pub signal: Option<i32>,
    /// A signal other than SIGUSR1 came after the first one (Slurm's SIGTERM after its
    /// SIGUSR1 warning: the job is cancelled or out of time, not to be requeued).
    pub other_signal: bool,
    /// Runs of the sweep not finished (neither done, pruned nor failed) when it ended, by any
    /// process; `None` when the store could not say.
    pub left: Option<usize>,
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
    /// How long running epochs may take to finish and save after a stopping signal before
    /// the sweep stops at once.
    pub graces: signals::Graces,
    /// CPU threads per worker; `None` leaves the environment's choice.
    pub threads: Option<usize>,
    /// Once no run is left to claim, wait for the runs other processes hold (checking every
    /// `heartbeat_every`), take over any they release or abandon, and end only when every run
    /// is finished (Slurm array tasks sharing a store).
    pub wait_for_others: bool,
    /// The Slurm job this process runs in (`12_3`), named in the runs it holds.
    pub job: Option<String>,
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
        owner: Owner::this_process(opts.job.as_deref()).to_string(),
        stale_secs: opts.stale_after.as_secs_f64(),
        wait_for_others: opts.wait_for_others,
        held: HashSet::new(),
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
        writer.outcome.left = Some(0);
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
        let signals = match signals::watch(control_tx, to_writer.clone(), opts.graces) {
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
