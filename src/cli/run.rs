//! `sweep run FILE`: validate, expand, claim and train every run not done yet on the chosen
//! devices, storing every epoch; resume what a crash or Ctrl-C left.
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use super::{DbArg, EXIT_RUNS_FAILED};
use crate::devices::{self, Request, RunsPerDevice};
use crate::run::FakeSpec;
use crate::scheduler::{run_sweep, Options, Plan};
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
    if let Some(note) = note {
        crate::say!("{note}");
    }
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
    let opts = Options {
        slots,
        runs_dir,
        exe: std::env::current_exe()
            .context("cannot find the sweep executable to start workers")?,
        stale_after: Duration::from_secs(60),
        stop_grace: Duration::from_secs(args.stop_grace),
        heartbeat_every: Duration::from_secs(5),
        threads: sweep.threads,
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
    crate::say!(
        "See `sweep report --db {}` (or `sweep status`).",
        args.db.db
    );
    Ok(if outcome.interrupted {
        // 128 + the signal, as a shell reports it: 130 for Ctrl-C, 143 for SIGTERM.
        ExitCode::from(128 + outcome.signal.unwrap_or(2) as u8)
    } else if outcome.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_RUNS_FAILED)
    })
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
        .filter(|r| r.heartbeat_age.is_some_and(|age| age < 60.0))
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
