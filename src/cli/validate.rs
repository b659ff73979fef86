//! `sweep validate FILE`: every problem in the file and its data folders (listed, not decoded) at
//! once, or "ok: N runs".
use std::path::PathBuf;
use std::process::ExitCode;

use crate::sweep::Sweep;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The sweep file (TOML).
    pub file: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let sweep = Sweep::from_file_checked(&args.file)?;
    let n = sweep.runs().len();
    println!(
        "ok: {n} run{} in sweep {}",
        if n == 1 { "" } else { "s" },
        sweep.name
    );
    Ok(ExitCode::SUCCESS)
}
