//! Integration tests: the real `sweep` binary on copies of the bundled Fashion-MNIST images.
mod util;

mod cli;
mod data_inspect;
mod end_to_end;
mod equivalence;
mod hostile;
mod html;
mod predict;
mod recipes;
mod report_snapshots;
mod scheduling;
mod slurm;
mod slurm_signals;
mod submit;
mod sweep_files;
mod takeover;
mod transfer;
