//! The command line: one module per subcommand, each a clap `Args` struct with a thin `run`.
mod augment;
mod data;
mod devices;
mod models;
mod plan;
mod predict;
mod report;
mod run;
mod status;
mod submit;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Hyperparameter sweeps for image classifiers: one TOML file, one command, every epoch kept.
#[derive(Debug, Parser)]
#[command(name = "sweep", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a sweep file: every problem at once, or "ok: N runs".
    Validate(validate::Args),
    /// Show the runs a sweep file expands to, without training.
    Plan(plan::Args),
    /// Draw real training images and augmented versions of them as a PNG grid.
    Augment(augment::Args),
    /// Train every run of a sweep file that is not done yet, storing every epoch.
    Run(run::Args),
    /// Submit a sweep to Slurm: array tasks that each train on their GPUs, sharing one store.
    Submit(submit::Args),
    /// Report a stored sweep: one row per run, or the best run's classwise table.
    Report(report::Args),
    /// Classify images with a trained run's kept checkpoint (exit 2 if some were unreadable).
    Predict(predict::Args),
    /// Show a sweep's runs: state, device, attempts, stored epochs.
    Status(status::Args),
    /// List every backbone with its parameter count and minimum input size.
    Models(models::Args),
    /// Look at image folders before training: `sweep data inspect DIR` (exit 2 on problems).
    Data(data::Args),
    /// List the GPUs found and where `sweep run` would train.
    Devices(devices::Args),
    /// Train one run handed over on stdin (started by `sweep run`; not for direct use).
    #[command(hide = true)]
    Worker,
}

/// The database, shared by the subcommands that use one, and the folder of its runs'
/// checkpoints.
#[derive(Debug, clap::Args)]
pub struct DbArg {
    /// The store holding every sweep: a SQLite file (checkpoints go beside it), or
    /// postgres://user@host/dbname for a cluster (with --runs-dir).
    #[arg(
        long,
        env = "SWEEP_DB",
        default_value = "runs/sweep.db",
        value_name = "FILE|URL"
    )]
    pub db: crate::store::Location,
    /// Where checkpoints and resume states go: default beside a SQLite file; required with
    /// PostgreSQL, on a filesystem every node sees, so a run resumes on any node.
    #[arg(long, env = "SWEEP_RUNS_DIR", value_name = "DIR")]
    pub runs_dir: Option<PathBuf>,
}

impl DbArg {
    /// The runs folder: `--runs-dir`, or the SQLite file's folder.
    pub fn runs_dir(&self) -> anyhow::Result<PathBuf> {
        match (&self.runs_dir, self.db.default_runs_dir()) {
            (Some(dir), _) => Ok(dir.clone()),
            (None, Some(dir)) => Ok(dir),
            (None, None) => anyhow::bail!(
                "--db {} is a PostgreSQL server: give --runs-dir DIR (or SWEEP_RUNS_DIR), a folder every node sees, for checkpoints and resume states",
                self.db
            ),
        }
    }
}

/// A stored sweep to read: the database and the sweep's name.
#[derive(Debug, clap::Args)]
pub struct StoredSweep {
    #[command(flatten)]
    pub db: DbArg,
    /// Which sweep (by name; `sweep report` also takes `all`: every sweep in the database);
    /// default: the one run most recently.
    #[arg(long)]
    pub sweep: Option<String>,
}

/// Exit codes of `sweep run`: 0 all runs done, 1 an error stopped the command, 2 some runs
/// failed (the others are stored), 128 + the signal when stopped by one (130 Ctrl-C, 143
/// SIGTERM, 129 SIGHUP, 138 SIGUSR1; runs resume on the next `sweep run`).
pub const EXIT_RUNS_FAILED: u8 = 2;

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate(a) => validate::run(a),
        Command::Plan(a) => plan::run(a),
        Command::Augment(a) => augment::run(a),
        Command::Run(a) => run::run(a),
        Command::Submit(a) => submit::run(a),
        Command::Report(a) => report::run(a),
        Command::Status(a) => status::run(a),
        Command::Predict(a) => predict::run(a),
        Command::Models(a) => models::run(a),
        Command::Data(a) => data::run(a),
        Command::Devices(a) => devices::run(a),
        Command::Worker => Ok(crate::worker::serve()),
    }
}
