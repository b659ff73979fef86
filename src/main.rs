//! `sweep` binary: parse the command line, run the subcommand, print any error once.
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // A malformed command line is an error like any other (exit 1, usage on stderr), so that
    // exit 2 keeps its one meaning: some runs failed, or problems were found (`run`,
    // `predict`, `data inspect`). `--help` and `--version` print to stdout and exit 0.
    let cli = match sweep::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.use_stderr() {
                true => ExitCode::FAILURE,
                false => ExitCode::SUCCESS,
            };
        }
    };
    // Commands that only print end quietly when their reader goes away (`sweep plan F | head
    // -1`), as `ls` and `cat` do. `run` and `worker` keep SIGPIPE ignored: they must go on
    // training and storing whatever happens to their output.
    #[cfg(unix)]
    if !matches!(
        cli.command,
        sweep::cli::Command::Run(_) | sweep::cli::Command::Worker
    ) {
        // SAFETY: restoring a signal's default action, before any thread is started.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match sweep::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
