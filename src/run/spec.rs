//! One run, as the sweep file's expansion (or a search strategy) produces it: its id, its
//! label and everything it needs to train. Stored as the run's config and hashed into its id.
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{
    Augment, Checkpointing, DataSpec, EarlyStopping, FakeSpec, OptimizerConfig, Phase, Precision,
    ReduceLrOnPlateau, Transfer,
};

/// Training settings that are the same for every run of a sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    pub early_stopping: Option<EarlyStopping>,
    pub reduce_lr_on_plateau: Option<ReduceLrOnPlateau>,
    pub checkpoint: Checkpointing,
    /// Test-time augmentation of the final test evaluation (issue 12); left out of the id
    /// when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tta: Option<super::Tta>,
    /// Stochastic weight averaging (issue 12); left out of the id when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swa: Option<super::Swa>,
}

/// Everything one run needs, and nothing else: it is stored as the run's config and hashed
/// into its id, so a changed setting is a different run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub backbone: BackboneName,
    pub width: usize,
    pub optimizer: String,
    pub optimizer_settings: OptimizerConfig,
    pub lr: f64,
    pub batch_size: usize,
    pub label_smoothing: f64,
    pub augment: String,
    pub augment_settings: Augment,
    pub epochs: usize,
    pub seed: u64,
    /// fp32 (left out of the run id's hash, so runs from before this key keep their ids)
    /// or bf16 autocast.
    #[serde(default, skip_serializing_if = "Precision::is_fp32")]
    pub precision: Precision,
    pub train: TrainSettings,
    pub data: DataSpec,
    /// Pretrained weights and what trains when (issue 10); `None` for scratch runs, and left
    /// out of the run id's hash then, so runs from before this key keep their ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<Transfer>,
    /// The learning-rate schedule of each phase (issue 12); `None` is constant, left out of
    /// the run id's hash so runs from before this key keep their ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<super::Schedule>,
    /// Class balance of the training epochs (issue 12); `None` is `none`, left out of the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance: Option<super::Balance>,
    /// Classes whose training images each epoch repeats this many times, each copy
    /// augmented (`[balance] augment_classes`); left out of the id when empty.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub augment_classes: std::collections::BTreeMap<String, usize>,
    /// Tests only: train with the fake trainer and this script (`sweep run --fake-trainer`).
    /// Left out when absent, so real runs keep their ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fake: Option<FakeSpec>,
}

impl RunConfig {
    /// The phase epoch `epoch` (1-based) trains in.
    pub fn phase(&self, epoch: usize) -> Phase {
        self.transfer
            .as_ref()
            .map_or(Phase::Scratch, |t| t.phase(epoch))
    }

    /// The first epoch of the phase epoch `epoch` trains in, and how many epochs that phase
    /// has (a schedule runs over one phase).
    pub fn phase_span(&self, epoch: usize) -> (usize, usize) {
        let phase = self.phase(epoch);
        let first = (1..=epoch)
            .rev()
            .take_while(|&e| self.phase(e) == phase)
            .last()
            .unwrap_or(epoch);
        let last = (epoch..=self.epochs.max(epoch))
            .take_while(|&e| self.phase(e) == phase)
            .last()
            .unwrap_or(epoch);
        (first, last - first + 1)
    }

    /// The learning rate of batch `batch` (from 0, of `per_epoch`) of epoch `epoch`, after
    /// `history` (the epochs before it): the phase's starting rate, cut by reduce-on-plateau
    /// for what this phase's epochs so far earned, shaped by the schedule over the phase.
    pub fn lr_at(
        &self,
        epoch: usize,
        batch: usize,
        per_epoch: usize,
        history: &[super::EpochSummary],
    ) -> f64 {
        if let Some(lr) = self
            .train
            .swa
            .filter(|s| epoch >= s.start_epoch)
            .and_then(|s| s.lr)
        {
            return lr;
        }
        let phase = self.phase(epoch);
        let start = self.phase_lr(phase);
        let in_phase = match history.last() {
            Some(last) if last.phase == phase => super::strategy::current_phase(history),
            _ => &[],
        };
        let level = self
            .train
            .reduce_lr_on_plateau
            .as_ref()
            .map_or(start, |r| r.level(start, in_phase));
        let Some(schedule) = &self.schedule else {
            return level;
        };
        let (first, epochs) = self.phase_span(epoch);
        let at = super::schedule::Step {
            step: (epoch - first) * per_epoch + batch,
            per_epoch,
            total: epochs * per_epoch,
        };
        schedule.lr(self.lr, at) * level / self.lr
    }

    /// The learning rate `phase` starts at.
    pub fn phase_lr(&self, phase: Phase) -> f64 {
        self.transfer
            .as_ref()
            .map_or(self.lr, |t| t.phase_lr(phase, self.lr))
    }
}

/// One cell of the grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    /// 1-based position in expansion order.
    pub index: usize,
    /// Stable id: a hash of the config, so re-running a sweep finds its finished runs.
    pub id: String,
    /// Short human label made of the gridded values, e.g. `cnn adam lr=0.001 bs=32`.
    pub label: String,
    pub config: RunConfig,
    /// Estimated relative cost of training it, for the scheduler's longest-first dispatch
    /// (which keeps the makespan short). Not part of the config or the id.
    #[serde(default)]
    pub cost: f64,
}

impl RunSpec {
    /// The id of the run of sweep `sweep` with `config`: 12 hex digits of SHA-256 over the
    /// sweep name and the config's canonical JSON. Re-running a sweep finds its runs by it,
    /// and a strategy that proposes runs names them with it.
    pub fn id_for(sweep: &str, config: &RunConfig) -> String {
        use sha2::{Digest, Sha256};
        let json = serde_json::to_string(config).unwrap_or_default();
        let digest = Sha256::digest(format!("{sweep}\n{json}").as_bytes());
        digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
    }
}

/// The name of a registered backbone ("cnn", "resnet18", ...), as sweep files, stored configs
/// and checkpoints spell it. The sweep parser checks it against `model`'s registry; the run
/// vocabulary only carries it, so nothing downstream of the sweep compiles against the models.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BackboneName(String);

impl BackboneName {
    pub fn new(name: impl Into<String>) -> BackboneName {
        BackboneName(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BackboneName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<&str> for BackboneName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}
