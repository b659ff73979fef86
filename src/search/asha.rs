//! Asynchronous successive halving (ASHA; Li et al., "A System for Massively Parallel
//! Hyperparameter Tuning", MLSys 2020), in its stopping form: every run trains towards the
//! maximum number of epochs, and at each rung (`min_epochs * eta^k` epochs) it goes on only if
//! its metric is among the top `1/eta` of the runs that reached that rung before it.
//!
//! The verdict is a pure function of the values stored at the rung, in the order they were
//! stored, so a sweep killed and run again decides exactly as before.
use super::Verdict;
use crate::run::{EpochSummary, Monitor};

/// Which way the metric is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Max,
    Min,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Max => "max",
            Mode::Min => "min",
        }
    }

    /// The mode a monitor improves in: up for accuracies and F1, down for losses.
    pub fn of(monitor: Monitor) -> Mode {
        if monitor.lower_is_better() {
            Mode::Min
        } else {
            Mode::Max
        }
    }
}

/// `[search.asha]` of a sweep file.
#[derive(Clone, Debug, PartialEq)]
pub struct Asha {
    pub metric: Monitor,
    pub mode: Mode,
    /// Epochs of the first rung (r).
    pub min_epochs: usize,
    /// eta: a rung keeps the best 1/eta of the runs that reach it.
    pub reduction_factor: usize,
}

impl Asha {
    /// The rungs below `max_epochs`: r, r*eta, r*eta^2, ... (a run that reaches the maximum
    /// is done, not judged).
    pub fn rungs(&self, max_epochs: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut e = self.min_epochs.max(1);
        while e < max_epochs {
            out.push(e);
            e = e.saturating_mul(self.reduction_factor.max(2));
        }
        out
    }

    fn value(&self, s: &EpochSummary) -> f64 {
        let v = self.metric.value(s);
        match (v.is_nan(), self.mode) {
            (true, Mode::Max) => f64::NEG_INFINITY,
            (true, Mode::Min) => f64::INFINITY,
            (false, _) => v,
        }
    }

    fn better(&self, a: f64, b: f64) -> bool {
        match self.mode {
            Mode::Max => a > b,
            Mode::Min => a < b,
        }
    }

    /// The verdict on the last of `arrivals`: the epoch summaries of every run that reached
    /// `rung`, in the order they were stored. It goes on if fewer than `max(1, n / eta)`
    /// earlier runs were at least as good (ties go to the earlier run).
    pub fn verdict(&self, rung: usize, arrivals: &[EpochSummary]) -> Verdict {
        let Some((me, before)) = arrivals.split_last() else {
            return Verdict::Continue;
        };
        let mine = self.value(me);
        let n = arrivals.len();
        let keep = (n / self.reduction_factor.max(2)).max(1);
        let ahead = before
            .iter()
            .filter(|s| !self.better(mine, self.value(s)))
            .count();
        if ahead < keep {
            return Verdict::Continue;
        }
        Verdict::Prune(format!(
            "pruned by ASHA at epoch {rung}: {} {:.4} ranks {} of the {n} runs that reached this rung; only the best {keep} (1/{}) go on",
            self.metric.name(),
            self.metric.value(me),
            ahead + 1,
            self.reduction_factor
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(acc: f64) -> EpochSummary {
        EpochSummary {
            epoch: 1,
            phase: Default::default(),
            lr: 0.1,
            train_loss: 1.0,
            train_acc: 0.5,
            val_loss: 1.0 - acc,
            val_acc: acc,
            val_macro_f1: acc,
            val_weighted_f1: acc,
        }
    }

    fn asha(metric: Monitor, eta: usize) -> Asha {
        Asha {
            metric,
            mode: Mode::of(metric),
            min_epochs: 1,
            reduction_factor: eta,
        }
    }

    #[test]
    fn rungs_grow_by_eta_below_the_maximum() {
        let mut a = asha(Monitor::ValAcc, 3);
        assert_eq!(a.rungs(9), vec![1, 3]);
        assert_eq!(a.rungs(10), vec![1, 3, 9]);
        assert_eq!(a.rungs(1), Vec::<usize>::new());
        a.min_epochs = 2;
        a.reduction_factor = 2;
        assert_eq!(a.rungs(16), vec![2, 4, 8]);
    }

    #[test]
    fn the_first_arrival_goes_on_and_later_ones_need_the_top_third() {
        let a = asha(Monitor::ValAcc, 3);
        assert_eq!(a.verdict(1, &[at(0.2)]), Verdict::Continue);
        // Two runs: keep max(1, 0) = 1; the second is worse -> pruned, better -> goes on.
        assert!(matches!(
            a.verdict(1, &[at(0.5), at(0.4)]),
            Verdict::Prune(_)
        ));
        assert_eq!(a.verdict(1, &[at(0.5), at(0.6)]), Verdict::Continue);
        // Six runs: keep 2; being second best is enough, third is not.
        let mut six: Vec<_> = [0.1, 0.9, 0.3, 0.4, 0.2].map(at).to_vec();
        six.push(at(0.5));
        assert_eq!(a.verdict(1, &six), Verdict::Continue);
        six.pop();
        six.push(at(0.35));
        match a.verdict(1, &six) {
            Verdict::Prune(why) => {
                assert!(
                    why.contains("ranks 3 of the 6") && why.contains("best 2"),
                    "{why}"
                )
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn losses_are_better_low_and_nan_is_worst() {
        let a = asha(Monitor::ValLoss, 3);
        assert_eq!(a.mode, Mode::Min);
        // val_loss = 1 - acc: acc 0.9 -> loss 0.1 beats loss 0.5.
        assert_eq!(a.verdict(2, &[at(0.5), at(0.9)]), Verdict::Continue);
        assert!(matches!(
            a.verdict(2, &[at(0.9), at(0.5)]),
            Verdict::Prune(_)
        ));
        let mut nan = at(0.5);
        nan.val_loss = f64::NAN;
        assert!(matches!(a.verdict(2, &[at(0.0), nan]), Verdict::Prune(_)));
    }

    #[test]
    fn ties_go_to_the_earlier_run() {
        let a = asha(Monitor::ValAcc, 3);
        assert!(matches!(
            a.verdict(1, &[at(0.5), at(0.5)]),
            Verdict::Prune(_)
        ));
    }
}
