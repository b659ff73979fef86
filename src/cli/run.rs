//! `sweep run FILE`: validate, expand, train every run not done yet, store every epoch.
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context;

use super::{DbArg, EXIT_RUNS_FAILED};
use crate::scheduler::run_sweep;
use crate::store::Store;
use crate::sweep::Sweep;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The sweep file (TOML).
    pub file: PathBuf,
    #[command(flatten)]
    pub db: DbArg,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let sweep = Sweep::from_file(&args.file)?;
    let store = Store::open(&args.db.db)?;
    let runs_dir = args.db.db.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let stop = Arc::new(AtomicBool::new(false));
    let devices = vec![candle_core::Device::Cpu];
    let outcome = run_sweep(&sweep, store, &runs_dir, devices, stop).with_context(|| format!("sweep {} stopped", sweep.name))?;
    let trained = outcome.done + outcome.failed.len();
    eprintln!(
        "sweep {}: {} runs, {} trained now, {} failed, {} done before. See `sweep report --db {}`.",
        sweep.name,
        outcome.total,
        trained,
        outcome.failed.len(),
        outcome.already_done,
        args.db.db.display()
    );
    for (label, error) in &outcome.failed {
        eprintln!("  failed: {label}: {error}");
    }
    Ok(if outcome.failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_RUNS_FAILED) })
}
