//! Training: optimizers and the epoch loop that emits events, on the run vocabulary of
//! [`crate::run`].
pub mod fake;
mod fused;
pub mod learner;
pub mod optim;
pub mod trainer;

#[cfg(test)]
pub(crate) mod balance_tests;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod swa_tests;
#[cfg(test)]
mod transfer_tests;

pub use learner::{CandleLearner, Learner};
pub use trainer::{train, Start, Steering, TrainError};
