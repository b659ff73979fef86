//! One device's gate: the runs of its slots train side by side, except one that must train
//! alone (a retry after out-of-memory on a shared GPU), which waits for the others' current
//! runs to end and holds the next ones back until it is done.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

use crate::devices::Slot;

/// Shared by every slot of one device.
#[derive(Debug)]
pub(super) struct Gate {
    lock: Arc<RwLock<()>>,
    /// Runs waiting to train alone: the others then give back their idle workers' memory.
    waiting_alone: AtomicUsize,
    /// How many slots the device has; with one, every run is alone.
    slots: usize,
}

/// Held while a run trains.
#[derive(Debug)]
pub(super) enum Pass {
    Beside(#[allow(dead_code)] OwnedRwLockReadGuard<()>),
    Alone(#[allow(dead_code)] OwnedRwLockWriteGuard<()>),
}

impl Gate {
    /// One gate per distinct device of `slots`, in the order of `slots`.
    pub(super) fn for_slots(slots: &[Slot]) -> Vec<Arc<Gate>> {
        let mut gates: Vec<(Slot, Arc<Gate>)> = Vec::new();
        for slot in slots {
            if !gates.iter().any(|(s, _)| s == slot) {
                let count = slots.iter().filter(|s| *s == slot).count();
                let gate = Gate {
                    lock: Arc::new(RwLock::new(())),
                    waiting_alone: AtomicUsize::new(0),
                    slots: count,
                };
                gates.push((slot.clone(), Arc::new(gate)));
            }
        }
        slots
            .iter()
            .map(|slot| {
                let (_, gate) = gates.iter().find(|(s, _)| s == slot).expect("listed");
                gate.clone()
            })
            .collect()
    }

    /// Whether runs on this device share it.
    pub(super) fn shared(&self) -> bool {
        self.slots > 1
    }

    /// Whether a run waits to train alone (other slots should free their idle memory).
    pub(super) fn someone_waits_alone(&self) -> bool {
        self.waiting_alone.load(Ordering::SeqCst) > 0
    }

    /// Waits until this run may train: beside the others, or `alone`.
    pub(super) async fn enter(&self, alone: bool) -> Pass {
        if !alone {
            return Pass::Beside(self.lock.clone().read_owned().await);
        }
        self.waiting_alone.fetch_add(1, Ordering::SeqCst);
        let guard = self.lock.clone().write_owned().await;
        self.waiting_alone.fetch_sub(1, Ordering::SeqCst);
        Pass::Alone(guard)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn one_gate_per_device() {
        let slots = [Slot::Gpu(0), Slot::Gpu(1), Slot::Gpu(0), Slot::Cpu];
        let gates = Gate::for_slots(&slots);
        assert!(Arc::ptr_eq(&gates[0], &gates[2]));
        assert!(!Arc::ptr_eq(&gates[0], &gates[1]));
        assert!(gates[0].shared());
        assert!(!gates[1].shared() && !gates[3].shared());
    }

    /// A run that must be alone waits for the one beside it, and the next one waits for it.
    #[tokio::test]
    async fn alone_waits_for_the_others_and_holds_the_next_back() {
        let gate = Gate::for_slots(&[Slot::Gpu(0), Slot::Gpu(0)])[0].clone();
        let beside = gate.enter(false).await;
        let g = gate.clone();
        let alone = tokio::spawn(async move { g.enter(true).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!alone.is_finished(), "entered while another run trains");
        assert!(gate.someone_waits_alone());
        let g = gate.clone();
        let next = tokio::spawn(async move { g.enter(false).await });
        drop(beside);
        let alone = alone.await.unwrap();
        assert!(matches!(alone, Pass::Alone(_)));
        assert!(!gate.someone_waits_alone());
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!next.is_finished(), "a run started beside the one alone");
        drop(alone);
        assert!(matches!(next.await.unwrap(), Pass::Beside(_)));
    }
}
