//! What to do after a run's attempt failed: a pure function of the failure's kind and what was
//! already tried, so that the whole policy reads as one table and is tested without workers.
//!
//! | kind          | condition                                   | decision         |
//! |---------------|---------------------------------------------|------------------|
//! | `oom`         | its GPU was shared with other runs          | `RetryAlone`     |
//! | `oom`         | alone: batch size > 1 and not yet halved    | `RetryHalfBatch` |
//! | `worker_lost` | not yet resumed                             | `Resume`         |
//! | anything else | or the retry above was already used         | `Fail`           |
//!
//! Out of memory beside other runs says little about the run itself: first it trains again,
//! from its last saved epoch and at the same batch size, with the GPU to itself (the other
//! slots of that GPU wait); only then is the batch halved (still alone).
use crate::run::FailureKind;

/// What the slot does next with a failed run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Train on from the last saved epoch, at the same batch size, alone on the device.
    RetryAlone,
    /// Train again from scratch at half the batch size (the results so far are cleared).
    RetryHalfBatch,
    /// Start a new worker that resumes from the last saved epoch.
    Resume,
    /// Record the failure; the sweep goes on.
    Fail,
}

/// What a run already went through in this claim.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attempts {
    /// It trains at half its configured batch size already (this time or in an earlier one).
    pub halved: bool,
    /// It was resumed after a lost worker.
    pub resumed: bool,
    /// It trains with its device to itself (always so on a device with one slot).
    pub alone: bool,
}

/// The one retry policy: after out-of-memory train alone on the device, then at half the
/// batch once; resume once after a worker was killed from outside; fail otherwise.
pub fn next_step(kind: FailureKind, attempts: Attempts, batch_size: usize) -> Decision {
    match kind {
        FailureKind::Oom if !attempts.alone => Decision::RetryAlone,
        FailureKind::Oom if batch_size > 1 && !attempts.halved => Decision::RetryHalfBatch,
        FailureKind::WorkerLost if !attempts.resumed => Decision::Resume,
        FailureKind::Oom
        | FailureKind::WorkerLost
        | FailureKind::NonFinite
        | FailureKind::Panic
        | FailureKind::Signal
        | FailureKind::Data
        | FailureKind::Io
        | FailureKind::Other => Decision::Fail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRESH: Attempts = Attempts {
        halved: false,
        resumed: false,
        alone: true,
    };
    const BOTH: Attempts = Attempts {
        halved: true,
        resumed: true,
        alone: true,
    };

    /// On a shared GPU: alone first (at any batch size, even 1), then half the batch, then
    /// fail.
    #[test]
    fn out_of_memory_beside_other_runs_retries_alone_first() {
        let shared = Attempts {
            alone: false,
            ..FRESH
        };
        for batch in [1, 32] {
            assert_eq!(
                next_step(FailureKind::Oom, shared, batch),
                Decision::RetryAlone
            );
        }
        assert_eq!(
            next_step(FailureKind::Oom, FRESH, 32),
            Decision::RetryHalfBatch
        );
        assert_eq!(next_step(FailureKind::Oom, BOTH, 16), Decision::Fail);
        // Sharing matters only for out-of-memory.
        assert_eq!(
            next_step(FailureKind::WorkerLost, shared, 32),
            Decision::Resume
        );
        assert_eq!(next_step(FailureKind::Panic, shared, 32), Decision::Fail);
    }

    #[test]
    fn out_of_memory_halves_the_batch_once() {
        assert_eq!(
            next_step(FailureKind::Oom, FRESH, 32),
            Decision::RetryHalfBatch
        );
        assert_eq!(
            next_step(FailureKind::Oom, FRESH, 2),
            Decision::RetryHalfBatch
        );
        let resumed = Attempts {
            resumed: true,
            ..FRESH
        };
        assert_eq!(
            next_step(FailureKind::Oom, resumed, 32),
            Decision::RetryHalfBatch
        );
        let halved = Attempts {
            halved: true,
            ..FRESH
        };
        assert_eq!(next_step(FailureKind::Oom, halved, 16), Decision::Fail);
    }

    #[test]
    fn out_of_memory_at_batch_one_fails() {
        assert_eq!(next_step(FailureKind::Oom, FRESH, 1), Decision::Fail);
    }

    #[test]
    fn a_lost_worker_resumes_once() {
        assert_eq!(
            next_step(FailureKind::WorkerLost, FRESH, 32),
            Decision::Resume
        );
        let halved = Attempts {
            halved: true,
            ..FRESH
        };
        assert_eq!(
            next_step(FailureKind::WorkerLost, halved, 16),
            Decision::Resume
        );
        let resumed = Attempts {
            resumed: true,
            ..FRESH
        };
        assert_eq!(
            next_step(FailureKind::WorkerLost, resumed, 32),
            Decision::Fail
        );
    }

    #[test]
    fn every_other_kind_fails_at_once() {
        for kind in FailureKind::ALL {
            if matches!(kind, FailureKind::Oom | FailureKind::WorkerLost) {
                continue;
            }
            for attempts in [FRESH, BOTH] {
                for batch in [1, 32] {
                    assert_eq!(next_step(*kind, attempts, batch), Decision::Fail, "{kind}");
                }
            }
        }
    }

    #[test]
    fn nothing_is_retried_twice() {
        for kind in FailureKind::ALL {
            assert_eq!(next_step(*kind, BOTH, 32), Decision::Fail, "{kind}");
        }
    }
}
