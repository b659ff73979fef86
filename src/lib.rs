//! `sweep`: hyperparameter sweeps for image classifiers, every epoch kept in SQLite.
//!
//! The modules follow the data: sweep file ([`sweep`]) -> runs -> [`scheduler`] -> trainer
//! ([`train`], on [`model`]s fed by [`data`]) -> [`store`] -> [`report`].
/// `eprintln!` that never panics: a closed or broken stderr (`sweep run 2>&1 | head -3`, a
/// terminal gone) must never stop training or storing (issue 8). What cannot be shown is lost;
/// what is stored is not.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
pub(crate) use say;

pub mod cli;
pub mod data;
pub mod devices;
pub mod model;
pub mod predict;
pub mod progress;
pub mod report;
pub mod run;
pub mod scheduler;
pub mod search;
pub mod slurm;
pub mod store;
pub mod sweep;
pub mod train;
pub mod worker;
