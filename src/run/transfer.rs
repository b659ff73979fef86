//! Transfer learning in the run vocabulary: which weights a run starts from, and what trains
//! in each epoch. The phase of an epoch is a pure function of the run's config.
//!
//! * `scratch` (no [`Transfer`]): random initialisation, everything trains.
//! * `frozen`: the pretrained base is frozen, only the new head trains (feature extraction).
//! * `finetune`: stages from `unfreeze_from` on train (all of them when it is unset); earlier
//!   ones stay frozen.
//! * `two_phase`: `frozen` for `frozen_epochs` at the run's learning rate, then `finetune` at
//!   `finetune_lr`: one run, one epoch history (the seeds' recipe).
//!
//! "Frozen" is Keras' `trainable = False`: no gradient, no optimizer state, batch norm in
//! inference mode.
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The values of the `transfer` grid key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferMode {
    #[default]
    Scratch,
    Frozen,
    Finetune,
    TwoPhase,
}

impl TransferMode {
    pub const ALL: [TransferMode; 4] = [
        TransferMode::Scratch,
        TransferMode::Frozen,
        TransferMode::Finetune,
        TransferMode::TwoPhase,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TransferMode::Scratch => "scratch",
            TransferMode::Frozen => "frozen",
            TransferMode::Finetune => "finetune",
            TransferMode::TwoPhase => "two_phase",
        }
    }

    pub fn parse(s: &str) -> Option<TransferMode> {
        TransferMode::ALL.into_iter().find(|m| m.name() == s)
    }
}

/// What an epoch trains: stored with every epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Every variable trains (random initialisation).
    #[default]
    Scratch,
    /// Only the head trains.
    Frozen,
    /// The stages from `unfreeze_from` on train (every stage when it is unset).
    Finetune,
}

impl Phase {
    pub const ALL: [Phase; 3] = [Phase::Scratch, Phase::Frozen, Phase::Finetune];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Scratch => "scratch",
            Phase::Frozen => "frozen",
            Phase::Finetune => "finetune",
        }
    }

    pub fn parse(s: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.name() == s)
    }

    pub fn is_scratch(&self) -> bool {
        *self == Phase::Scratch
    }
}

/// Which variables train; the model turns it into its frozen set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trainable {
    /// Every variable.
    All,
    /// Only the head (the variables whose shape depends on the number of classes).
    Head,
    /// The first variable (in the backbone's build order) of this stage and every later one,
    /// and the head.
    From(String),
}

/// How a run starts from pretrained weights. Scratch runs have none (their config, and so
/// their id, is what it was before transfer learning existed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transfer {
    /// `frozen`, `finetune` or `two_phase` (never `scratch`).
    pub mode: TransferMode,
    /// The weights file, as the sweep file names it (relative to the sweep file's folder).
    #[serde(with = "crate::run::path")]
    pub pretrained: PathBuf,
    /// The first stage that trains when fine-tuning; `None`: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unfreeze_from: Option<String>,
    /// `two_phase`: epochs trained frozen before fine-tuning (0 otherwise).
    #[serde(default)]
    pub frozen_epochs: usize,
    /// `two_phase`: the learning rate of the fine-tuning phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finetune_lr: Option<f64>,
}

impl Transfer {
    /// The phase of epoch `epoch` (1-based).
    pub fn phase(&self, epoch: usize) -> Phase {
        match self.mode {
            TransferMode::Scratch => Phase::Scratch,
            TransferMode::Frozen => Phase::Frozen,
            TransferMode::Finetune => Phase::Finetune,
            TransferMode::TwoPhase if epoch <= self.frozen_epochs => Phase::Frozen,
            TransferMode::TwoPhase => Phase::Finetune,
        }
    }

    /// What trains in `phase`.
    pub fn trainable(&self, phase: Phase) -> Trainable {
        match (phase, &self.unfreeze_from) {
            (Phase::Scratch, _) | (Phase::Finetune, None) => Trainable::All,
            (Phase::Frozen, _) => Trainable::Head,
            (Phase::Finetune, Some(stage)) => Trainable::From(stage.clone()),
        }
    }

    /// The learning rate a phase starts at: `two_phase` switches to `finetune_lr`; every other
    /// phase starts at the run's `lr`.
    pub fn phase_lr(&self, phase: Phase, run_lr: f64) -> f64 {
        match (self.mode, phase) {
            (TransferMode::TwoPhase, Phase::Finetune) => self.finetune_lr.unwrap_or(run_lr),
            _ => run_lr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_phase() -> Transfer {
        Transfer {
            mode: TransferMode::TwoPhase,
            pretrained: "w.safetensors".into(),
            unfreeze_from: Some("layer3".into()),
            frozen_epochs: 2,
            finetune_lr: Some(1e-4),
        }
    }

    #[test]
    fn two_phase_is_frozen_then_finetunes_at_its_lr() {
        let t = two_phase();
        let phases: Vec<Phase> = (1..=4).map(|e| t.phase(e)).collect();
        assert_eq!(
            phases,
            [
                Phase::Frozen,
                Phase::Frozen,
                Phase::Finetune,
                Phase::Finetune
            ]
        );
        assert_eq!(t.trainable(Phase::Frozen), Trainable::Head);
        assert_eq!(
            t.trainable(Phase::Finetune),
            Trainable::From("layer3".into())
        );
        assert_eq!(t.phase_lr(Phase::Frozen, 0.01), 0.01);
        assert_eq!(t.phase_lr(Phase::Finetune, 0.01), 1e-4);
    }

    #[test]
    fn single_phase_modes() {
        let mut t = two_phase();
        t.mode = TransferMode::Frozen;
        assert!((1..=5).all(|e| t.phase(e) == Phase::Frozen));
        t.mode = TransferMode::Finetune;
        t.unfreeze_from = None;
        assert!((1..=5).all(|e| t.phase(e) == Phase::Finetune));
        assert_eq!(t.trainable(Phase::Finetune), Trainable::All);
        // Only two_phase switches the learning rate.
        assert_eq!(t.phase_lr(Phase::Finetune, 0.01), 0.01);
    }

    #[test]
    fn names_round_trip() {
        for m in TransferMode::ALL {
            assert_eq!(TransferMode::parse(m.name()), Some(m));
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(json, format!("\"{}\"", m.name()));
        }
        for p in Phase::ALL {
            assert_eq!(Phase::parse(p.name()), Some(p));
        }
    }
}
