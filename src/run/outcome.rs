//! How a run stands and why it failed: the words the worker, the scheduler, the store and the
//! reports share. Each value is stored and printed as the lowercase string it always was, so
//! existing databases and JSON outputs read the same.
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a run is. The `runs.status` column holds [`RunStatus::as_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Waiting for a device (new, or failed before and registered again).
    Queued,
    /// Claimed by a `sweep run` process (the `owner` column).
    Running,
    Done,
    Failed,
    /// Stopped on request after an epoch; resumes from there.
    Stopped,
    /// Stopped for good by the search strategy (ASHA) at an epoch boundary: not promising
    /// enough to train on. Final, like `done`; the reason is stored with it.
    Pruned,
}

/// Why a run failed, decided where the failure is seen: the worker for its own errors and
/// panics, the coordinator for a worker's death. The retry policy reads only this.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Out of (GPU) memory: worth one try at half the batch size.
    Oom,
    /// The loss became NaN or infinite.
    NonFinite,
    /// The training code panicked.
    Panic,
    /// The worker crashed on a signal of its own (SIGABRT, SIGSEGV, ...).
    Signal,
    /// The data could not be loaded, or a split is empty.
    Data,
    /// The run folder could not be written.
    Io,
    /// The worker was killed from outside (SIGKILL: the OOM killer, a user): its saved
    /// state is intact, so the run may resume.
    WorkerLost,
    /// Anything else: a build without CUDA, a worker that could not start or exited oddly.
    #[default]
    Other,
}

/// What the search strategy says about a run at one of its rungs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Train on.
    Continue,
    /// Stop it for good (status `pruned`), for this reason.
    Prune(String),
}

macro_rules! string_enum {
    ($ty:ident, $what:literal, $($variant:ident => $text:literal),+ $(,)?) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($ty::$variant),)+
                    _ => Err(format!("unknown {} \"{s}\"", $what)),
                }
            }
        }
    };
}

string_enum!(RunStatus, "run status",
    Queued => "queued",
    Running => "running",
    Done => "done",
    Failed => "failed",
    Stopped => "stopped",
    Pruned => "pruned",
);

string_enum!(FailureKind, "failure kind",
    Oom => "oom",
    NonFinite => "non_finite",
    Panic => "panic",
    Signal => "signal",
    Data => "data",
    Io => "io",
    WorkerLost => "worker_lost",
    Other => "other",
);

/// Whether an error text reports running out of memory. candle and the CUDA driver say so
/// only in words (`CUDA_ERROR_OUT_OF_MEMORY`, "out of memory"), so this is the one place
/// that reads a message to classify it; everything after works on [`FailureKind`].
pub fn says_out_of_memory(text: &str) -> bool {
    let t = text.to_lowercase();
    t.contains("out of memory") || t.contains("out_of_memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_and_match_serde() {
        for s in RunStatus::ALL {
            assert_eq!(s.as_str().parse::<RunStatus>(), Ok(*s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for k in FailureKind::ALL {
            assert_eq!(k.as_str().parse::<FailureKind>(), Ok(*k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        assert!("finished".parse::<RunStatus>().is_err());
    }

    #[test]
    fn the_stored_strings_are_the_old_ones() {
        let old = ["queued", "running", "done", "failed", "stopped"];
        let new: Vec<_> = RunStatus::ALL[..5].iter().map(|s| s.as_str()).collect();
        assert_eq!(new, old);
    }

    #[test]
    fn out_of_memory_in_its_spellings() {
        assert!(says_out_of_memory(
            "DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")"
        ));
        assert!(says_out_of_memory("CUDA out of memory"));
        assert!(!says_out_of_memory("the loss became NaN"));
    }
}
