//! The run vocabulary every stage shares, free of candle: what a run is ([`RunSpec`],
//! [`RunConfig`] and its settings), what happens to it ([`Event`], [`EpochRecord`],
//! [`Metrics`]), how it stands ([`RunStatus`], [`FailureKind`]) and the pure strategies that
//! decide from its epoch history. `sweep` and `search` produce these; `scheduler`, `worker`,
//! `train`, `store`, `report`, `progress` and `cli` consume them.
mod augment;
pub mod balance;
mod data;
pub mod event;
mod fake;
pub mod metrics;
mod optim;
pub mod outcome;
pub mod path;
mod precision;
pub mod resume;
pub mod schedule;
mod spec;
pub mod strategy;
pub mod swa;
mod transfer;
pub mod tta;

pub use augment::{Augment, Crop, Erase, Fill, Preset};
pub use balance::Balance;
pub use data::{DataSpec, Normalize, Skipped};
pub use event::{EpochRecord, Evaluation, Event, RunEnd, RunStart};
pub use fake::FakeSpec;
pub use metrics::{ClassMetrics, Confusion, Metrics};
pub use optim::OptimizerConfig;
pub use outcome::{says_out_of_memory, FailureKind, RunStatus, Verdict};
pub use precision::Precision;
pub use resume::{Provenance, ResumeState};
pub use schedule::{Schedule, SCHEDULES};
pub use spec::{BackboneName, RunConfig, RunSpec, TrainSettings};
pub use strategy::{Checkpointing, EarlyStopping, EpochSummary, Keep, Monitor, ReduceLrOnPlateau};
pub use swa::Swa;
pub use transfer::{Phase, Trainable, Transfer, TransferMode};
pub use tta::Tta;
