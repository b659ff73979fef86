//! Strategies decide, loops act: early stopping, LR reduction on plateau and checkpoint choice
//! are pure functions of the epoch history, tested without files or devices.
use serde::{Deserialize, Serialize};

use super::Phase;

/// The numbers of one finished epoch that strategies look at.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochSummary {
    pub epoch: usize,
    /// What trained (scratch, frozen, finetune); scratch is left out of saved states.
    #[serde(default, skip_serializing_if = "Phase::is_scratch")]
    pub phase: Phase,
    pub lr: f64,
    pub train_loss: f64,
    pub train_acc: f64,
    pub val_loss: f64,
    pub val_acc: f64,
    pub val_macro_f1: f64,
    pub val_weighted_f1: f64,
}

/// The epochs of the phase the last epoch of `history` trained in. Each phase of a
/// `two_phase` run is its own fit, as in Keras' two-step recipe: early stopping and LR
/// reduction watch only the current phase's epochs (checkpoint choice watches them all).
pub fn current_phase(history: &[EpochSummary]) -> &[EpochSummary] {
    let Some(last) = history.last() else {
        return history;
    };
    let start = history
        .iter()
        .rposition(|e| e.phase != last.phase)
        .map_or(0, |i| i + 1);
    &history[start..]
}

/// A quantity to watch, and which way is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Monitor {
    ValLoss,
    ValAcc,
    ValMacroF1,
    ValWeightedF1,
    TrainLoss,
    TrainAcc,
}

impl Monitor {
    pub const ALL: [Monitor; 6] = [
        Monitor::ValLoss,
        Monitor::ValAcc,
        Monitor::ValMacroF1,
        Monitor::ValWeightedF1,
        Monitor::TrainLoss,
        Monitor::TrainAcc,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Monitor::ValLoss => "val_loss",
            Monitor::ValAcc => "val_acc",
            Monitor::ValMacroF1 => "val_macro_f1",
            Monitor::ValWeightedF1 => "val_weighted_f1",
            Monitor::TrainLoss => "train_loss",
            Monitor::TrainAcc => "train_acc",
        }
    }

    pub fn parse(s: &str) -> Option<Monitor> {
        Monitor::ALL.into_iter().find(|m| m.name() == s)
    }

    pub fn lower_is_better(self) -> bool {
        matches!(self, Monitor::ValLoss | Monitor::TrainLoss)
    }

    pub fn value(self, e: &EpochSummary) -> f64 {
        match self {
            Monitor::ValLoss => e.val_loss,
            Monitor::ValAcc => e.val_acc,
            Monitor::ValMacroF1 => e.val_macro_f1,
            Monitor::ValWeightedF1 => e.val_weighted_f1,
            Monitor::TrainLoss => e.train_loss,
            Monitor::TrainAcc => e.train_acc,
        }
    }

    /// Whether `candidate` beats `best` by more than `min_delta`. NaN never improves.
    pub fn improves(self, candidate: f64, best: f64, min_delta: f64) -> bool {
        if candidate.is_nan() {
            return false;
        }
        if best.is_nan() {
            return true;
        }
        if self.lower_is_better() {
            candidate < best - min_delta
        } else {
            candidate > best + min_delta
        }
    }

    /// Index of the best epoch in `history` (the earliest one on ties), if any.
    pub fn best_index(self, history: &[EpochSummary], min_delta: f64) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, e) in history.iter().enumerate() {
            let v = self.value(e);
            match best {
                None if !v.is_nan() => best = Some(i),
                Some(b) if self.improves(v, self.value(&history[b]), min_delta) => best = Some(i),
                _ => {}
            }
        }
        best
    }
}

/// Stop when `monitor` has not improved for `patience` epochs (Keras' EarlyStopping).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    pub monitor: Monitor,
    pub patience: usize,
    pub min_delta: f64,
}

impl EarlyStopping {
    pub fn should_stop(&self, history: &[EpochSummary]) -> bool {
        let Some(last) = history.len().checked_sub(1) else {
            return false;
        };
        match self.monitor.best_index(history, self.min_delta) {
            Some(best) => last - best >= self.patience,
            // Every value so far is NaN: nothing will improve.
            None => history.len() >= self.patience,
        }
    }
}

/// Multiply the learning rate by `factor` after `patience` epochs without improvement, then
/// wait another `patience` epochs before the next cut (Keras' ReduceLROnPlateau).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReduceLrOnPlateau {
    pub monitor: Monitor,
    pub patience: usize,
    pub factor: f64,
    pub min_lr: f64,
    pub min_delta: f64,
}

impl ReduceLrOnPlateau {
    /// The rate after the cuts `history` (epochs of one phase) has earned, from `start`: the
    /// rule replayed epoch by epoch, so it depends on the monitored values alone (a schedule
    /// may move the rate every batch; the stored rates do not say where the cuts were).
    pub fn level(&self, start: f64, history: &[EpochSummary]) -> f64 {
        let mut lr = start;
        let mut last_cut: Option<usize> = None;
        for last in 0..history.len() {
            let best = self.monitor.best_index(&history[..=last], self.min_delta);
            let since = match (best, last_cut) {
                (Some(b), Some(c)) => last - b.max(c),
                (Some(b), None) => last - b,
                (None, Some(c)) => last - c,
                (None, None) => last + 1,
            };
            if since >= self.patience && lr > self.min_lr {
                lr = (lr * self.factor).max(self.min_lr);
                last_cut = Some(last);
            }
        }
        lr
    }
}

/// Which weights to keep on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Keep {
    Best,
    Last,
    None,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpointing {
    pub keep: Keep,
    pub monitor: Monitor,
}

impl Checkpointing {
    /// Whether the epoch that just ended (the last of `history`) should be saved.
    pub fn should_save(&self, history: &[EpochSummary]) -> bool {
        let Some(last) = history.len().checked_sub(1) else {
            return false;
        };
        match self.keep {
            Keep::None => false,
            Keep::Last => true,
            Keep::Best => self.monitor.best_index(history, 0.0) == Some(last),
        }
    }

    /// The epoch (1-based) whose weights are on disk after `history`, if any.
    pub fn saved_epoch(&self, history: &[EpochSummary]) -> Option<usize> {
        match self.keep {
            Keep::None => None,
            Keep::Last => history.last().map(|e| e.epoch),
            Keep::Best => self
                .monitor
                .best_index(history, 0.0)
                .map(|i| history[i].epoch),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(val_loss: &[f64], lrs: &[f64]) -> Vec<EpochSummary> {
        val_loss
            .iter()
            .zip(lrs)
            .enumerate()
            .map(|(i, (&l, &lr))| EpochSummary {
                phase: Default::default(),
                epoch: i + 1,
                lr,
                train_loss: l,
                train_acc: 0.5,
                val_loss: l,
                val_acc: 1.0 - l,
                val_macro_f1: 1.0 - l,
                val_weighted_f1: 1.0 - l,
            })
            .collect()
    }

    #[test]
    fn early_stopping_waits_patience_epochs_after_the_best() {
        let es = EarlyStopping {
            monitor: Monitor::ValLoss,
            patience: 2,
            min_delta: 0.0,
        };
        let lr = [0.1; 6];
        assert!(!es.should_stop(&history(&[], &[])));
        assert!(!es.should_stop(&history(&[0.5, 0.4], &lr)));
        assert!(!es.should_stop(&history(&[0.5, 0.4, 0.45], &lr)));
        assert!(es.should_stop(&history(&[0.5, 0.4, 0.45, 0.41], &lr)));
        // An equal value is not an improvement.
        assert!(es.should_stop(&history(&[0.4, 0.4, 0.4], &lr)));
    }

    #[test]
    fn early_stopping_on_accuracy_looks_for_higher() {
        let es = EarlyStopping {
            monitor: Monitor::ValAcc,
            patience: 1,
            min_delta: 0.0,
        };
        // val_acc = 1 - loss: 0.5, 0.6, 0.55 -> stop after the drop.
        assert!(!es.should_stop(&history(&[0.5, 0.4], &[0.1; 2])));
        assert!(es.should_stop(&history(&[0.5, 0.4, 0.45], &[0.1; 3])));
    }

    #[test]
    fn min_delta_requires_a_real_improvement() {
        let es = EarlyStopping {
            monitor: Monitor::ValLoss,
            patience: 2,
            min_delta: 0.05,
        };
        assert!(es.should_stop(&history(&[0.5, 0.48, 0.47], &[0.1; 3])));
    }

    #[test]
    fn nan_history_stops_after_patience() {
        let es = EarlyStopping {
            monitor: Monitor::ValLoss,
            patience: 2,
            min_delta: 0.0,
        };
        assert!(!es.should_stop(&history(&[f64::NAN], &[0.1])));
        assert!(es.should_stop(&history(&[f64::NAN, f64::NAN], &[0.1; 2])));
        // NaN after a good epoch counts as no improvement.
        assert!(es.should_stop(&history(&[0.3, f64::NAN, f64::NAN], &[0.1; 3])));
    }

    #[test]
    fn reduce_lr_cuts_after_patience_then_waits_again() {
        let r = ReduceLrOnPlateau {
            monitor: Monitor::ValLoss,
            patience: 2,
            factor: 0.5,
            min_lr: 0.0,
            min_delta: 0.0,
        };
        // Best at epoch 1; epochs 2 and 3 do not improve -> cut after epoch 3.
        assert_eq!(r.level(0.1, &history(&[0.5, 0.6], &[0.1, 0.1])), 0.1);
        assert_eq!(r.level(0.1, &history(&[0.5, 0.6, 0.6], &[0.1; 3])), 0.05);
        // Epoch 4 ran at 0.05 without improvement: wait is 1 since the cut.
        assert_eq!(
            r.level(0.1, &history(&[0.5, 0.6, 0.6, 0.7], &[0.1; 4])),
            0.05
        );
        let h = history(&[0.5, 0.6, 0.6, 0.7, 0.7], &[0.1; 5]);
        assert_eq!(r.level(0.1, &h), 0.025);
        // An improvement resets the wait.
        let h = history(&[0.5, 0.6, 0.6, 0.4, 0.45], &[0.1; 5]);
        assert_eq!(r.level(0.1, &h), 0.05);
        // The stored rates do not matter (a schedule moves them every epoch).
        let h = history(&[0.5, 0.6, 0.6, 0.7, 0.7], &[0.3, 0.02, 0.07, 0.5, 0.01]);
        assert_eq!(r.level(0.1, &h), 0.025);
    }

    #[test]
    fn reduce_lr_respects_min_lr() {
        let r = ReduceLrOnPlateau {
            monitor: Monitor::ValLoss,
            patience: 1,
            factor: 0.1,
            min_lr: 0.004,
            min_delta: 0.0,
        };
        assert_eq!(r.level(0.01, &history(&[0.5, 0.6], &[0.01; 2])), 0.004);
        assert_eq!(r.level(0.01, &history(&[0.5, 0.6, 0.7], &[0.01; 3])), 0.004);
    }

    #[test]
    fn checkpoint_best_saves_only_improvements() {
        let c = Checkpointing {
            keep: Keep::Best,
            monitor: Monitor::ValLoss,
        };
        let lr = [0.1; 4];
        assert!(c.should_save(&history(&[0.5], &lr)));
        assert!(c.should_save(&history(&[0.5, 0.4], &lr)));
        assert!(!c.should_save(&history(&[0.5, 0.4, 0.45], &lr)));
        assert_eq!(c.saved_epoch(&history(&[0.5, 0.4, 0.45], &lr)), Some(2));
    }

    #[test]
    fn checkpoint_last_and_none() {
        let h = history(&[0.5, 0.6], &[0.1; 2]);
        let last = Checkpointing {
            keep: Keep::Last,
            monitor: Monitor::ValLoss,
        };
        let none = Checkpointing {
            keep: Keep::None,
            monitor: Monitor::ValLoss,
        };
        assert!(last.should_save(&h));
        assert_eq!(last.saved_epoch(&h), Some(2));
        assert!(!none.should_save(&h));
        assert_eq!(none.saved_epoch(&h), None);
    }
}
