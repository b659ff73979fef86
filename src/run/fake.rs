//! The script of the fake trainer (tests and benchmarks only): what it does, and to which runs.
//! It travels in the run's config, so it is hashed into the run id (a fake run can never be
//! stored under a real run's id) and reaches the worker with the job.
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What the fake learner does; run-selecting lists match substrings of run labels.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FakeSpec {
    /// Milliseconds one epoch takes.
    pub epoch_ms: u64,
    pub classes: usize,
    /// Runs that panic in epoch 2.
    pub panic: Vec<String>,
    /// Runs whose loss becomes NaN in epoch 2.
    pub nan: Vec<String>,
    /// Runs that abort the whole process (like a segfault) in epoch 2.
    pub abort: Vec<String>,
    /// Runs that fail with a CUDA out-of-memory error at their configured batch size (and
    /// fit at half of it).
    pub oom: Vec<String>,
    /// Runs that fail with a CUDA out-of-memory error unless they train alone on their
    /// device (a GPU shared with other runs).
    pub oom_shared: Vec<String>,
    /// Appends `run_id epoch` to this file when an epoch starts.
    #[serde(with = "crate::run::path::option", default)]
    pub log: Option<PathBuf>,
}
