//! `sweep`: hyperparameter sweeps for image classifiers, every epoch kept in SQLite.
//!
//! The modules follow the data: sweep file ([`sweep`]) -> runs -> [`scheduler`] -> trainer
//! ([`train`], on [`model`]s fed by [`data`]) -> [`store`] -> [`report`].
pub mod cli;
pub mod data;
pub mod devices;
pub mod model;
pub mod progress;
pub mod report;
pub mod run;
pub mod scheduler;
pub mod search;
pub mod store;
pub mod sweep;
pub mod train;
pub mod worker;
