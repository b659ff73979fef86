//! The command line: one module per subcommand, each a clap `Args` struct with a thin `run`.
mod plan;
mod report;
mod run;
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
    /// Train every run of a sweep file that is not done yet, storing every epoch.
    Run(run::Args),
    /// Report a stored sweep: one row per run, or the best run's classwise table.
    Report(report::Args),
}

/// The database, shared by the subcommands that use one.
#[derive(Debug, clap::Args)]
pub struct DbArg {
    /// SQLite database holding every sweep; checkpoints go beside it.
    #[arg(long, default_value = "runs/sweep.db", value_name = "FILE")]
    pub db: PathBuf,
}

/// Exit codes: 0 all runs done, 1 an error stopped the command, 2 some runs failed.
pub const EXIT_RUNS_FAILED: u8 = 2;

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate(a) => validate::run(a),
        Command::Plan(a) => plan::run(a),
        Command::Run(a) => run::run(a),
        Command::Report(a) => report::run(a),
    }
}
