//! `sweep run FILE`: validate, expand, claim and train every run not done yet on the chosen
//! devices, storing every epoch; resume what a crash or Ctrl-C left. Under Slurm (a
//! `sweep submit` task) it also waits for the runs other tasks hold, and after SIGUSR1 requeues
//! its job while runs are left.
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use super::{DbArg, EXIT_RUNS_FAILED};
use crate::devices::{self, Request, RunsPerDevice, Slot};
use crate::run::FakeSpec;
use crate::scheduler::signals::Graces;
use crate::scheduler::{run_sweep, Options, Plan, SweepOutcome, DEFAULT_STALE_SECS};
use crate::slurm::SlurmJob;
use crate::store;
use crate::sweep::Sweep;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The sweep file (TOML).
    pub file: PathBuf,
    #[command(flatten)]
    pub db: DbArg,
    /// Where to train: `auto` (every free GPU, else the CPU), `cpu`, or GPU indices like `0,2`.
    #[arg(long, default_value = "auto")]
    pub devices: Request,
    /// Runs trained at once on each device: `auto` (one on the CPU; on a GPU one per 16 GiB
    /// of free memory, at most 4, and no more workers than CPU cores) or a number.
    #[arg(long, default_value = "auto", value_name = "N|auto")]
    pub runs_per_device: RunsPerDevice,
    /// Forget this sweep's stored runs and checkpoints and start over.
    #[arg(long)]
    pub fresh: bool,
    /// After SIGTERM or SIGHUP (Slurm, docker, timeout, a closed terminal): seconds the
    /// running epochs get to finish and save before the sweep stops at once. Keep it below
    /// the sender's own deadline (Slurm's KillWait, 30 s by default; docker's 10 s).
    #[arg(long, default_value_t = 20, value_name = "SECS")]
    pub stop_grace: u64,
    /// After SIGUSR1 (Slurm's warning that the time limit or preemption is near; `sweep
    /// submit` asks for it 120 s ahead): seconds the running epochs get to finish and save;
    /// then their runs are released for another task and the job requeues itself.
    #[arg(long, default_value_t = 90, value_name = "SECS")]
    pub usr1_grace: u64,
    /// A run whose `sweep run` sent no heartbeat for this long is taken over by another
    /// (one on the same host is taken over as soon as its process is gone).
    #[arg(long, default_value_t = DEFAULT_STALE_SECS, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub stale_after: u64,
    /// Once no run is left to claim, wait for the runs other `sweep run` processes hold: take
    /// over any they release or abandon, and end only when every run is finished. On by
    /// itself under Slurm (SLURM_JOB_ID set), so that array tasks finish the sweep together.
    #[arg(long)]
    pub wait_for_others: bool,
    #[command(flatten)]
    pub fakes: Fakes,
}

/// Test seams, hidden from help: fake GPUs and a fake trainer. Fake runs carry their script in
/// their config, so their ids never match a real run's.
#[derive(Debug, clap::Args)]
pub struct Fakes {
    /// Pretend to have N GPUs (needs --fake-trainer).
    #[arg(long, hide = true, value_name = "N")]
    pub fake_gpus: Option<usize>,
    /// Train every run with the fake trainer and this script (JSON, see `run::FakeSpec`).
    #[arg(long, hide = true, value_name = "JSON")]
    pub fake_trainer: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // One list of problems, the file's and the data folders', before any device or database
    // is touched (fake runs read no data).
    let mut sweep = if args.fakes.fake_trainer.is_some() {
        Sweep::from_file(&args.file)?
    } else {
        Sweep::from_file_checked(&args.file)?
    };
    let found = match (args.fakes.fake_gpus, &args.fakes.fake_trainer) {
        (Some(_), None) => {
            anyhow::bail!("--fake-gpus needs --fake-trainer: fake GPUs train only fake runs")
        }
        (Some(n), Some(_)) => devices::fake(n),
        (None, _) => devices::discover(),
    };
    if let Some(json) = &args.fakes.fake_trainer {
        let spec: FakeSpec = serde_json::from_str(json)
            .with_context(|| format!("--fake-trainer is not a fake trainer script: {json}"))?;
        sweep.fake = Some(spec);
    }
    let (slots, note) =
        devices::choose(&found, &args.devices, args.runs_per_device).map_err(anyhow::Error::msg)?;
    let slurm = SlurmJob::from_env();
    say_where(slurm.as_ref(), &slots, note);
    let runs_dir = args.db.runs_dir()?;
    let mut store = store::open(&args.db.db)?;
    if args.fresh {
        refuse_if_live(store.as_ref(), &sweep.name)?;
        let n = store.forget_sweep(&sweep.name)?;
        let dir = runs_dir.join(&sweep.name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot remove {}", dir.display()))?;
        }
        crate::say!("--fresh: forgot {n} stored runs of sweep {}", sweep.name);
    }
    let stale_after = Duration::from_secs(args.stale_after);
    let opts = Options {
        slots,
        runs_dir,
        exe: std::env::current_exe()
            .context("cannot find the sweep executable to start workers")?,
        stale_after,
        graces: Graces {
            stop: Duration::from_secs(args.stop_grace),
            usr1: Duration::from_secs(args.usr1_grace),
        },
        // Several beats per stale period, so one late beat never looks like a death.
        heartbeat_every: (stale_after / 4)
            .clamp(Duration::from_millis(100), Duration::from_secs(5)),
        threads: sweep.threads,
        wait_for_others: args.wait_for_others || slurm.is_some(),
        job: slurm.as_ref().map(|j| j.label.clone()),
    };
    let plan = Plan {
        name: sweep.name.clone(),
        file: sweep.file.clone(),
        base_dir: sweep.base_dir(),
        runs: sweep.runs(),
        strategy: sweep.strategy(),
    };
    let outcome = run_sweep(plan, store, opts, crate::progress::for_stderr())
        .with_context(|| format!("sweep {} stopped", sweep.name))?;
    for (label, error) in &outcome.failed {
        crate::say!("  failed: {label}: {error}");
    }
    requeue_if_asked(slurm.as_ref(), &outcome);
    crate::say!(
        "See `sweep report --db {}` (or `sweep status`).",
        args.db.db
    );
    Ok(if outcome.interrupted {
        // 128 + the signal, as a shell reports it: 130 for Ctrl-C, 143 for SIGTERM, 138 for
        // SIGUSR1.
        ExitCode::from(128 + outcome.signal.unwrap_or(2) as u8)
    } else if outcome.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_RUNS_FAILED)
    })
}

/// Where training happens, when it needs saying: under Slurm always (the job, host and GPUs
/// Slurm gave, in one line a test greps), else only the reason for a CPU fallback.
fn say_where(slurm: Option<&SlurmJob>, slots: &[Slot], note: Option<String>) {
    match (slurm, note) {
        (Some(job), note) => {
            let trains_on = note.unwrap_or_else(|| format!("training on {}", shown(slots)));
            let host = crate::scheduler::host_name();
            crate::say!("{}", job.start_line(&host, &trains_on));
        }
        (None, Some(note)) => crate::say!("{note}"),
        (None, None) => {}
    }
}

/// The devices the slots train on, each once: `cuda:0, cuda:1`.
fn shown(slots: &[Slot]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for s in slots {
        let s = s.to_string();
        if !seen.contains(&s) {
            seen.push(s);
        }
    }
    seen.join(", ")
}

/// After SIGUSR1 under Slurm, while runs are left: `scontrol requeue` this job, so that it
/// starts again (on any node) and resumes them. A failure is said, not fatal: the runs are
/// saved and released either way, and another task or a later `sweep submit` finishes them.
fn requeue_if_asked(slurm: Option<&SlurmJob>, outcome: &SweepOutcome) {
    use crate::scheduler::signals::SIGUSR1;
    if outcome.signal != Some(SIGUSR1) {
        return;
    }
    let Some(job) = slurm else {
        crate::say!("SIGUSR1 outside Slurm (no SLURM_JOB_ID): the runs are saved and released; `sweep run` again resumes them");
        return;
    };
    let left = match outcome.left {
        Some(n) => format!("{n} run{} of the sweep left", if n == 1 { "" } else { "s" }),
        None => "the runs left unknown".into(),
    };
    if !crate::slurm::should_requeue(outcome.signal, outcome.other_signal, outcome.left) {
        crate::say!(
            "slurm: not requeueing job {} ({left}{})",
            job.label,
            if outcome.other_signal {
                "; a SIGTERM followed the warning"
            } else {
                ""
            }
        );
        return;
    }
    // The task by `ARRAY_ID_TASK`: one task's own id is the array's, and requeueing that id
    // would requeue every task of the array.
    match crate::slurm::requeue(&job.label) {
        Ok(()) => crate::say!("slurm: requeued job {} ({left}); it resumes them when it starts again", job.label),
        Err(e) => crate::say!("slurm: cannot requeue job {} ({left}): {e}; the runs are saved and released: other tasks, or `sweep submit` again, finish them", job.label),
    }
}

/// `--fresh` deletes every run's state: refuse while another live `sweep run` trains one of
/// them (its process is alive and its heartbeat fresh).
fn refuse_if_live(store: &dyn crate::store::Reader, name: &str) -> anyhow::Result<()> {
    let Ok(stored) = store.sweep(Some(name)) else {
        return Ok(());
    };
    let live: Vec<String> = store
        .runs(stored.id)?
        .into_iter()
        .filter(|r| r.status == crate::run::RunStatus::Running)
        .filter(|r| {
            r.heartbeat_age
                .is_some_and(|age| age < DEFAULT_STALE_SECS as f64)
        })
        .filter_map(|r| {
            r.owner
                .filter(|o| crate::scheduler::owner_alive(o))
                .map(|o| (r.label, o))
        })
        .map(|(label, owner)| format!("{label} (by {owner})"))
        .collect();
    if live.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "--fresh would delete runs another `sweep run` is training: {}; stop that process first (Ctrl-C or SIGTERM), then run --fresh again",
        live.join(", ")
    )
}
