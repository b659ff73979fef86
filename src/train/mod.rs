//! Training: optimizers, metrics, strategies and the epoch loop that emits events.
pub mod event;
pub mod fake;
pub mod learner;
pub mod metrics;
pub mod optim;
pub mod resume;
pub mod strategy;
pub mod trainer;

pub use event::{EpochRecord, Evaluation, Event, RunEnd, RunStart};
pub use learner::{CandleLearner, Learner};
pub use trainer::{train, Start, TrainError};
