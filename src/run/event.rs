//! What the trainer tells the world: one event per happening, consumed by the store's writer
//! and the progress display. The trainer itself never prints and never writes SQL.
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::metrics::{Confusion, Metrics};
use super::strategy::EpochSummary;
use crate::run::FailureKind;
use crate::run::Skipped;

/// One finished epoch, with everything the store keeps about it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub summary: EpochSummary,
    pub seconds: f64,
    pub images_per_sec: f64,
    pub val: Metrics,
    pub confusion: Confusion,
    pub checkpoint_saved: bool,
}

/// A final evaluation of the kept weights on a held-out split (the test folder).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub split: String,
    pub epoch: usize,
    pub loss: f64,
    pub metrics: Metrics,
    pub confusion: Confusion,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunStart {
    pub device: String,
    pub classes: Vec<String>,
    pub parameters: usize,
    pub train_images: usize,
    pub val_images: usize,
    pub test_images: Option<usize>,
    pub skipped: Vec<Skipped>,
    /// The batch size trained with (half the configured one after an out-of-memory retry).
    pub batch_size: usize,
    /// The epoch the run continues after, when it resumes.
    pub resumed_from: Option<usize>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunEnd {
    pub stop_reason: String,
    #[serde(with = "crate::run::path::option", default)]
    pub checkpoint: Option<PathBuf>,
    pub checkpoint_epoch: Option<usize>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Event {
    Started {
        run: String,
        start: RunStart,
    },
    Epoch {
        run: String,
        record: EpochRecord,
    },
    Evaluated {
        run: String,
        evaluation: Evaluation,
    },
    /// Where the current epoch is; shown, never stored.
    Progress {
        run: String,
        epoch: usize,
        batch: usize,
        batches: usize,
        images_per_sec: f64,
    },
    Finished {
        run: String,
        end: RunEnd,
    },
    Failed {
        run: String,
        error: String,
        /// Decided where the failure was seen; absent in lines from older workers.
        #[serde(default)]
        kind: FailureKind,
    },
    /// Stopped on request after `epoch`; the run resumes from there.
    Stopped {
        run: String,
        epoch: usize,
    },
    /// `epoch` (stored just before) is one of the run's rungs: the worker waits for the
    /// search strategy's verdict before training on. Never stored.
    Rung {
        run: String,
        epoch: usize,
    },
    /// Stopped for good by the search strategy after `epoch`; `end.stop_reason` says why.
    Pruned {
        run: String,
        epoch: usize,
        end: RunEnd,
    },
}

impl Event {
    pub fn run(&self) -> &str {
        match self {
            Event::Started { run, .. }
            | Event::Epoch { run, .. }
            | Event::Evaluated { run, .. }
            | Event::Progress { run, .. }
            | Event::Finished { run, .. }
            | Event::Failed { run, .. }
            | Event::Stopped { run, .. }
            | Event::Rung { run, .. }
            | Event::Pruned { run, .. } => run,
        }
    }
}
