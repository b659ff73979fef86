//! Stochastic weight averaging (`[train] swa = { start_epoch = N, lr = ... }`): from
//! `start_epoch` on, each epoch's weights join a running average (torch's `AveragedModel`);
//! after training the average gets batch-norm statistics from a pass over the training data
//! (`update_bn`) and is evaluated and stored beside the best checkpoint's result.
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Swa {
    /// The first epoch whose weights are averaged (1-based).
    pub start_epoch: usize,
    /// The constant learning rate from `start_epoch` on (torch's `SWALR` without annealing);
    /// `None` keeps the run's schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
}

impl Swa {
    /// How many epochs' weights the average holds after `epoch` (0 before `start_epoch`).
    pub fn averaged(&self, epoch: usize) -> usize {
        (epoch + 1).saturating_sub(self.start_epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_averaged_epochs() {
        let s = Swa {
            start_epoch: 3,
            lr: None,
        };
        assert_eq!(
            (1..=5).map(|e| s.averaged(e)).collect::<Vec<_>>(),
            [0, 0, 1, 2, 3]
        );
    }
}
