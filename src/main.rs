//! `sweep` binary: parse the command line, run the subcommand, print any error once.
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = sweep::cli::Cli::parse();
    match sweep::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
