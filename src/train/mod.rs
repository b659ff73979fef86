//! Training: optimizers, metrics, strategies and the epoch loop that emits events.
pub mod event;
pub mod metrics;
pub mod optim;
pub mod strategy;
pub mod trainer;

pub use event::{EpochRecord, Evaluation, Event, RunEnd, RunStart};
pub use trainer::{train, TrainError};
