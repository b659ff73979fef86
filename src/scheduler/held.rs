//! Runs another process holds, looked at again by a process that waits for others (Slurm
//! array tasks sharing a store): whether one was finished, may be claimed now (released, its
//! owner gone or silent), or is still being trained. A pure function of the run's stored row.
use super::owner_alive;
use crate::run::RunStatus;
use crate::store::RunRow;

/// What became of a run another process held.
#[derive(Debug, PartialEq)]
pub(super) enum Held {
    /// Done, pruned or failed: nothing to wait for.
    Finished,
    /// It may be claimed now, and why.
    Claimable(String),
}

/// Whether a held run changed, from its stored row: `None` while its owner (not `me`) is alive
/// and beats its heart within `stale_secs`. The claim itself decides again, atomically.
pub(super) fn held_now(row: &RunRow, me: &str, stale_secs: f64) -> Option<Held> {
    match row.status {
        RunStatus::Done | RunStatus::Pruned | RunStatus::Failed => Some(Held::Finished),
        RunStatus::Queued | RunStatus::Stopped => {
            Some(Held::Claimable(format!("released ({})", row.status)))
        }
        RunStatus::Running => match row.owner.as_deref() {
            None => Some(Held::Claimable("running without an owner".into())),
            Some(o) if o == me => None,
            Some(o) if !owner_alive(o) => Some(Held::Claimable(format!("its owner {o} is gone"))),
            Some(o) => match row.heartbeat_age {
                Some(age) if age <= stale_secs => None,
                Some(age) => Some(Held::Claimable(format!(
                    "its owner {o} sent no heartbeat for {age:.0} s"
                ))),
                None => Some(Held::Claimable(format!(
                    "its owner {o} never sent a heartbeat"
                ))),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(status: RunStatus, owner: Option<&str>, age: Option<f64>) -> RunRow {
        RunRow {
            id: "r".into(),
            index: 1,
            label: "lr=0.1".into(),
            config: serde_json::Value::Null,
            status,
            error: None,
            failure: None,
            device: None,
            attempts: 1,
            classes: Vec::new(),
            parameters: None,
            train_images: None,
            val_images: None,
            test_images: None,
            stop_reason: None,
            checkpoint: None,
            checkpoint_epoch: None,
            owner: owner.map(str::to_string),
            batch_size: None,
            note: None,
            heartbeat_age: age,
            retired: false,
        }
    }

    #[test]
    fn held_runs_are_waited_for_until_finished_released_or_abandoned() {
        let me = "here:1";
        // Another node's process, beating its heart: wait.
        let other = "far-away-node:4242:12_3";
        assert_eq!(
            held_now(&row(RunStatus::Running, Some(other), Some(3.0)), me, 10.0),
            None
        );
        // Its heartbeat is stale: take it over.
        let stale = held_now(&row(RunStatus::Running, Some(other), Some(11.0)), me, 10.0);
        assert!(
            matches!(&stale, Some(Held::Claimable(why)) if why.contains("no heartbeat for 11 s")),
            "{stale:?}"
        );
        // Released after SIGUSR1 (stopped, no owner), or queued again.
        for status in [RunStatus::Stopped, RunStatus::Queued] {
            assert!(matches!(
                held_now(&row(status, None, None), me, 10.0),
                Some(Held::Claimable(_))
            ));
        }
        for status in [RunStatus::Done, RunStatus::Pruned, RunStatus::Failed] {
            assert_eq!(
                held_now(&row(status, Some(other), None), me, 10.0),
                Some(Held::Finished)
            );
        }
        // Claimed by this very process meanwhile: nothing to do.
        assert_eq!(
            held_now(&row(RunStatus::Running, Some(me), Some(100.0)), me, 10.0),
            None
        );
    }

    #[test]
    fn a_dead_owner_on_this_host_is_taken_over_at_once() {
        if !std::path::Path::new("/proc/self").exists() {
            return;
        }
        // A pid above Linux's pid_max limit: no such process.
        let dead = format!("{}:{}:7", super::super::host_name(), 4_194_304 + 5);
        let now = held_now(
            &row(RunStatus::Running, Some(&dead), Some(0.5)),
            "x:1",
            60.0,
        );
        assert!(
            matches!(&now, Some(Held::Claimable(why)) if why.contains("is gone")),
            "{now:?}"
        );
    }
}
