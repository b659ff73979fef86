//! The epoch loop of one run: train, evaluate, ask the strategies, save, emit events.
//!
//! It acts, it does not decide: early stopping, the learning rate and which weights to keep
//! come from the pure functions in [`crate::run::strategy`]. After each epoch the resume state is
//! committed before the epoch is reported, so a kill at any moment loses at most the epoch
//! in progress.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::{Tensor, D};

use super::learner::{Learner, Split};
use crate::run::resume::Durable;
use crate::run::strategy::current_phase;
use crate::run::Metrics;
use crate::run::RunSpec;
use crate::run::{says_out_of_memory, FailureKind};
use crate::run::{EpochRecord, Evaluation, Event, RunEnd, RunStart};
use crate::run::{EpochSummary, Keep, Verdict};
use crate::run::{Provenance, ResumeState};

/// candle's message without the backtrace it attaches when `RUST_BACKTRACE` is set (a run's
/// stored error is one readable line).
fn without_backtrace(e: &candle_core::Error) -> String {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => without_backtrace(inner),
        e => e.to_string(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{}", without_backtrace(.0))]
    Candle(#[from] candle_core::Error),
    #[error("the loss became {loss} at epoch {epoch}, batch {batch}: lower the learning rate (lr) or the batch size")]
    NonFinite {
        loss: f32,
        epoch: usize,
        batch: usize,
    },
    #[error("cannot write in the run folder {path}: {source}")]
    RunDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the training split is empty: add images or lower data.val_split")]
    NoTrainingData,
    #[error("this run has no test split")]
    NoTestData,
    #[error("{0}")]
    Data(#[from] crate::data::DataError),
    #[error("stopped on request after epoch {0}")]
    Interrupted(usize),
    #[error("pruned after epoch {epoch}: {reason}")]
    Pruned {
        epoch: usize,
        reason: String,
        end: RunEnd,
    },
    #[error("unknown backbone \"{0}\" (this build has {1})")]
    UnknownBackbone(String, String),
    #[error("{0}")]
    Pretrained(String),
    /// A setting names a class the data does not have.
    #[error("{0}")]
    Classes(String),
}

impl TrainError {
    /// What kind of failure this is, for the retry policy and the store.
    pub fn kind(&self) -> FailureKind {
        match self {
            TrainError::Candle(e) if says_out_of_memory(&e.to_string()) => FailureKind::Oom,
            TrainError::Candle(_)
            | TrainError::Interrupted(_)
            | TrainError::Pruned { .. }
            | TrainError::UnknownBackbone(..) => FailureKind::Other,
            TrainError::NonFinite { .. } => FailureKind::NonFinite,
            TrainError::RunDir { .. } => FailureKind::Io,
            TrainError::NoTrainingData
            | TrainError::NoTestData
            | TrainError::Data(_)
            | TrainError::Classes(_)
            | TrainError::Pretrained(_) => FailureKind::Data,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::RunDir {
        path: path.into(),
        source,
    }
}

/// Sends events, holding back the last epoch's until its resume state is on disk, so the
/// store never holds an epoch the run could not resume after.
struct Emitter<'a> {
    emit: &'a mut dyn FnMut(Event),
    pending: Option<(Durable, Event)>,
    run_dir: &'a Path,
}

impl Emitter<'_> {
    /// Sends one final evaluation of run `run` (`split`, the weights of `epoch`).
    fn evaluated(
        &mut self,
        run: &str,
        split: &str,
        epoch: usize,
        (loss, confusion): (f64, crate::run::Confusion),
    ) -> Result<(), TrainError> {
        let evaluation = Evaluation {
            split: split.into(),
            epoch,
            loss,
            metrics: Metrics::from_confusion(&confusion),
            confusion,
        };
        self.send(Event::Evaluated {
            run: run.to_string(),
            evaluation,
        })
    }

    fn flush(&mut self) -> Result<(), TrainError> {
        if let Some((durable, event)) = self.pending.take() {
            durable.wait().map_err(io(self.run_dir))?;
            (self.emit)(event);
        }
        Ok(())
    }

    fn send(&mut self, event: Event) -> Result<(), TrainError> {
        self.flush()?;
        (self.emit)(event);
        Ok(())
    }

    fn after(&mut self, durable: Durable, event: Event) -> Result<(), TrainError> {
        self.flush()?;
        self.pending = Some((durable, event));
        Ok(())
    }
}

/// How a run begins: fresh, or from the state saved under its folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    Fresh,
    /// Resume; the store holds epochs up to `stored_epochs`, and saved epochs after it are
    /// reported again (the process that trained them died before they were stored).
    Resume {
        stored_epochs: usize,
    },
}

/// How the outside steers a run between epochs.
pub struct Steering<'a> {
    /// Checked between epochs: the epoch in progress finishes and is saved first, and the
    /// run resumes from there later.
    pub stop: &'a AtomicBool,
    /// Epochs after which the run waits for the search strategy's verdict (`Rung` event).
    pub rungs: &'a [usize],
    /// Waits for that verdict; `None` when the coordinator is gone (the run stops, resumable).
    pub verdict: &'a mut dyn FnMut(usize) -> Option<Verdict>,
}

impl Steering<'_> {
    /// At a rung: report it and wait for the verdict. The epoch's event is sent first, so the
    /// verdict is taken on stored history.
    fn judge(
        &mut self,
        run: &RunSpec,
        epoch: usize,
        history: &[EpochSummary],
        out: &mut Emitter,
    ) -> Result<Option<String>, TrainError> {
        if !self.rungs.contains(&epoch) {
            return Ok(None);
        }
        out.send(Event::Rung {
            run: run.id.clone(),
            epoch,
        })?;
        match (self.verdict)(epoch) {
            Some(Verdict::Continue) => Ok(None),
            Some(Verdict::Prune(reason)) => Ok(Some(reason)),
            None => Err(TrainError::Interrupted(history.len())),
        }
    }
}

/// Train one run, sending every event to `emit`. Weights go under `run_dir`.
#[allow(clippy::too_many_arguments)]
pub fn train(
    run: &RunSpec,
    learner: &mut dyn Learner,
    start: RunStart,
    has_test: bool,
    run_dir: &Path,
    begin: Start,
    provenance: &Provenance,
    mut steer: Steering,
    emit: &mut dyn FnMut(Event),
) -> Result<RunEnd, TrainError> {
    let cfg = &run.config;
    let mut out = Emitter {
        emit,
        pending: None,
        run_dir,
    };
    std::fs::create_dir_all(ResumeState::dir(run_dir)).map_err(io(run_dir))?;
    let saved = match begin {
        Start::Resume { .. } => ResumeState::load(run_dir).map_err(io(run_dir))?,
        Start::Fresh => {
            ResumeState::clear(run_dir).map_err(io(run_dir))?;
            std::fs::create_dir_all(ResumeState::dir(run_dir)).map_err(io(run_dir))?;
            None
        }
    };
    let batch_size = start.batch_size;
    let mut records: Vec<EpochRecord> = Vec::new();
    let mut stop_reason: Option<String> = None;
    match &saved {
        Some(state) => {
            let dir = ResumeState::dir(run_dir);
            learner.load_weights(&dir.join(&state.weights))?;
            // The state was saved for the epoch after it: its phase's variables, optimizer
            // and learning rate (after a phase switch, the new phase's).
            learner.enter_phase(cfg.phase(state.epoch + 1), state.next_lr)?;
            learner.load_optimizer(&dir.join(&state.optimizer))?;
            learner.set_lr(state.next_lr);
            if cfg.train.swa.is_some_and(|s| s.averaged(state.epoch) > 0) {
                learner.swa_load(&dir.join(ResumeState::swa_file(state.epoch)))?;
            }
            records = state.records.clone();
            stop_reason = state.stop_reason.clone();
        }
        None => {
            learner.start_fresh()?;
            learner.enter_phase(cfg.phase(1), cfg.phase_lr(cfg.phase(1)))?;
        }
    }
    out.send(Event::Started {
        run: run.id.clone(),
        start: RunStart {
            resumed_from: saved.as_ref().map(|s| s.epoch),
            ..start
        },
    })?;
    if let Start::Resume { stored_epochs } = begin {
        for record in records.iter().filter(|r| r.summary.epoch > stored_epochs) {
            out.send(Event::Epoch {
                run: run.id.clone(),
                record: record.clone(),
            })?;
        }
    }

    let checkpoint = run_dir.join(match cfg.train.checkpoint.keep {
        Keep::Last => "last.safetensors",
        _ => "best.safetensors",
    });
    let mut history: Vec<EpochSummary> = records.iter().map(|r| r.summary.clone()).collect();
    let first = history.len() + 1;
    let prune = |reason: String, epoch: usize, history: &[EpochSummary]| {
        let checkpoint_epoch = cfg.train.checkpoint.saved_epoch(history);
        TrainError::Pruned {
            epoch,
            end: RunEnd {
                stop_reason: reason.clone(),
                checkpoint: checkpoint_epoch.map(|_| checkpoint.clone()),
                checkpoint_epoch,
            },
            reason,
        }
    };
    // Resumed right after a rung whose verdict may not have been given: ask again (the
    // verdict depends only on stored history, so it is the one the first ask got).
    if first > 1 && stop_reason.is_none() {
        if let Some(reason) = steer.judge(run, first - 1, &history, &mut out)? {
            return Err(prune(reason, first - 1, &history));
        }
    }
    for epoch in first..=cfg.epochs {
        if stop_reason.is_some() {
            break;
        }
        if steer.stop.load(Ordering::Relaxed) {
            out.flush()?;
            return Err(TrainError::Interrupted(epoch - 1));
        }
        // The rate of every batch: a pure function of the config, the step and the history.
        let per_epoch = learner.batches_per_epoch();
        let lr_at = |b: usize| cfg.lr_at(epoch, b, per_epoch, &history);
        let lr = lr_at(0);
        let started = Instant::now();
        let id = run.id.clone();
        // Images the epoch trained on (class balance may draw more or fewer than the split has).
        let mut trained = 0;
        let mut progress = |p: super::learner::BatchProgress| {
            trained = p.images;
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            let event = Event::Progress {
                run: id.clone(),
                epoch,
                batch: p.batch,
                batches: p.batches,
                images_per_sec: p.images as f64 / secs,
            };
            // A failed fsync surfaces at the epoch's end, where the state is saved again.
            let _ = out.send(event);
        };
        let (train_loss, train_acc) = learner.train_epoch(epoch, &lr_at, &mut progress)?;
        let train_seconds = started.elapsed().as_secs_f64();
        let (val_loss, confusion) = learner.evaluate(Split::Val)?;
        let val = Metrics::from_confusion(&confusion);
        let phase = cfg.phase(epoch);
        history.push(EpochSummary {
            epoch,
            phase,
            lr,
            train_loss,
            train_acc,
            val_loss,
            val_acc: val.accuracy,
            val_macro_f1: val.macro_f1,
            val_weighted_f1: val.weighted_f1,
        });
        let checkpoint_saved = cfg.train.checkpoint.should_save(&history);
        if checkpoint_saved {
            learner.save_weights(&checkpoint)?;
        }
        // Early stopping and LR reduction watch the current phase only; a phase that is
        // followed by another (two_phase's frozen one) always runs its length.
        let in_phase = current_phase(&history);
        let next_phase = cfg.phase(epoch + 1);
        let next_lr = cfg.lr_at(epoch + 1, 0, per_epoch, &history);
        if epoch == cfg.epochs {
            stop_reason = Some(format!("completed {} epochs", cfg.epochs));
        } else if next_phase != phase {
            learner.enter_phase(next_phase, next_lr)?;
        } else if let Some(es) = cfg
            .train
            .early_stopping
            .as_ref()
            .filter(|es| es.should_stop(in_phase))
        {
            stop_reason = Some(format!(
                "early stop at epoch {epoch}: {} did not improve for {} epochs",
                es.monitor.name(),
                es.patience
            ));
        }
        let record = EpochRecord {
            summary: history[history.len() - 1].clone(),
            seconds: started.elapsed().as_secs_f64(),
            images_per_sec: trained as f64 / train_seconds.max(1e-9),
            val,
            confusion,
            checkpoint_saved,
        };
        records.push(record.clone());
        // SWA: this epoch's weights join the average, kept with the resume state of the
        // epoch (a resumed run continues the same average).
        if let Some(n) = cfg.train.swa.map(|s| s.averaged(epoch)).filter(|&n| n > 0) {
            learner.swa_update(n)?;
            let dir = ResumeState::dir(run_dir);
            learner.swa_save(&dir.join(ResumeState::swa_file(epoch)))?;
        }
        let durable = save_state(
            learner,
            run_dir,
            epoch,
            &records,
            next_lr,
            &stop_reason,
            batch_size,
            provenance,
        )?;
        out.after(
            durable,
            Event::Epoch {
                run: run.id.clone(),
                record,
            },
        )?;
        learner.set_lr(next_lr);
        if stop_reason.is_none() {
            if let Some(reason) = steer.judge(run, epoch, &history, &mut out)? {
                return Err(prune(reason, epoch, &history));
            }
        }
    }

    out.flush()?;
    let checkpoint_epoch = cfg.train.checkpoint.saved_epoch(&history);
    if has_test {
        // Evaluate the weights a user takes away: the kept checkpoint, else the last ones.
        let epoch = match (cfg.train.checkpoint.keep, checkpoint_epoch) {
            (Keep::Best, Some(e)) => {
                learner.load_weights(&checkpoint)?;
                e
            }
            _ => history.len(),
        };
        let result = learner.evaluate(Split::Test)?;
        out.evaluated(&run.id, "test", epoch, result)?;
        if let Some(tta) = &cfg.train.tta {
            // The same weights, each image seen through the views and its softmax averaged.
            let result = learner.evaluate_tta(Split::Test, tta)?;
            out.evaluated(&run.id, "test_tta", epoch, result)?;
        }
    }
    if cfg.train.swa.is_some() && learner.swa_finish()? {
        // The averaged weights, their batch norm measured anew, judged beside the kept ones.
        let epoch = history.len();
        let mut splits = vec![(Split::Val, "val_swa")];
        if has_test {
            splits.push((Split::Test, "test_swa"));
        }
        for (split, name) in splits {
            let result = learner.evaluate(split)?;
            out.evaluated(&run.id, name, epoch, result)?;
        }
        learner.save_weights(&run_dir.join("swa.safetensors"))?;
    }
    Ok(RunEnd {
        stop_reason: stop_reason.unwrap_or_else(|| format!("completed {} epochs", cfg.epochs)),
        checkpoint: checkpoint_epoch.map(|_| checkpoint),
        checkpoint_epoch,
    })
}

#[allow(clippy::too_many_arguments)]
fn save_state(
    learner: &dyn Learner,
    run_dir: &Path,
    epoch: usize,
    records: &[EpochRecord],
    next_lr: f64,
    stop_reason: &Option<String>,
    batch_size: usize,
    provenance: &Provenance,
) -> Result<Durable, TrainError> {
    let dir = ResumeState::dir(run_dir);
    let (weights, optimizer) = ResumeState::files_for(epoch);
    learner.save_weights(&dir.join(&weights))?;
    learner.save_optimizer(&dir.join(&optimizer))?;
    let state = ResumeState {
        epoch,
        records: records.to_vec(),
        next_lr,
        stop_reason: stop_reason.clone(),
        batch_size,
        weights,
        optimizer,
        provenance: Some(provenance.clone()),
    };
    state.commit(run_dir).map_err(io(run_dir))
}

/// Cross-entropy with label smoothing `eps` (PyTorch's definition: the target puts 1 - eps on
/// the true class and eps spread evenly over all classes).
pub fn cross_entropy(logits: &Tensor, labels: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    let log_p = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let nll = log_p
        .gather(&labels.unsqueeze(1)?, 1)?
        .squeeze(1)?
        .neg()?
        .mean_all()?;
    if eps == 0.0 {
        return Ok(nll);
    }
    let uniform = log_p.mean(D::Minus1)?.neg()?.mean_all()?;
    (nll * (1.0 - eps))? + (uniform * eps)?
}

/// PyTorch's `CrossEntropyLoss(weight=w, label_smoothing=eps)` with mean reduction: each
/// image's loss weighted by its class's weight, divided by the sum of those weights; the
/// smoothing term weighs every class by its own weight, over the same sum.
pub fn weighted_cross_entropy(
    logits: &Tensor,
    labels: &Tensor,
    weights: &Tensor,
    eps: f64,
) -> candle_core::Result<Tensor> {
    let log_p = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let w_y = weights.gather(labels, 0)?;
    let total = w_y.sum_all()?;
    let picked = log_p.gather(&labels.unsqueeze(1)?, 1)?.squeeze(1)?;
    let nll = (picked * &w_y)?.sum_all()?.neg()?.div(&total)?;
    if eps == 0.0 {
        return Ok(nll);
    }
    let k = logits.dim(D::Minus1)? as f64;
    let smooth = log_p
        .broadcast_mul(&weights.unsqueeze(0)?)?
        .sum_all()?
        .neg()?
        .div(&total)?;
    (nll * (1.0 - eps))? + (smooth * (eps / k))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// `class_weights`' loss against PyTorch 2.15 (float64):
    /// `F.cross_entropy(logits, labels, weight=w, label_smoothing=eps)` with the logits,
    /// labels and weights below gives 1.2049155712092035 (eps 0) and 1.1915341213513975
    /// (eps 0.1).
    #[test]
    fn weighted_cross_entropy_matches_torch() {
        let dev = Device::Cpu;
        let logits = Tensor::new(
            &[
                [1.0f64, -0.5, 0.25],
                [0.1, 0.2, 0.3],
                [-1.0, 2.0, 0.5],
                [0.7, 0.7, -0.2],
            ],
            &dev,
        )
        .unwrap();
        let labels = Tensor::new(&[0u32, 2, 1, 2], &dev).unwrap();
        let w = Tensor::new(&[0.385f64, 0.9625, 3.2083333333333335], &dev).unwrap();
        for (eps, torch) in [(0.0, 1.2049155712092035), (0.1, 1.1915341213513975)] {
            let got = weighted_cross_entropy(&logits, &labels, &w, eps)
                .unwrap()
                .to_scalar::<f64>()
                .unwrap();
            assert!((got - torch).abs() < 1e-12, "eps {eps}: {got} vs {torch}");
        }
        // Equal weights are the plain loss.
        let ones = Tensor::new(&[2.0f64, 2.0, 2.0], &dev).unwrap();
        let plain = cross_entropy(&logits, &labels, 0.1).unwrap();
        let same = weighted_cross_entropy(&logits, &labels, &ones, 0.1).unwrap();
        let d = (plain - same)
            .unwrap()
            .abs()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!(d < 1e-12, "{d}");
    }

    /// A failed run's stored error is candle's message, not the backtrace candle attaches
    /// when RUST_BACKTRACE is set (seen on a GPU machine: 20 lines of `<unknown>` frames).
    #[test]
    fn errors_drop_candle_backtraces() {
        let inner = candle_core::Error::Msg("DriverError(CUDA_ERROR_OUT_OF_MEMORY)".into());
        let e = TrainError::Candle(candle_core::Error::WithBacktrace {
            inner: Box::new(inner),
            backtrace: Box::new(std::backtrace::Backtrace::force_capture()),
        });
        assert_eq!(e.to_string(), "DriverError(CUDA_ERROR_OUT_OF_MEMORY)");
        assert_eq!(e.kind(), FailureKind::Oom);
    }

    #[test]
    fn failure_kinds_of_train_errors() {
        let oom = candle_core::Error::Msg(
            "DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")".into(),
        );
        let cases = [
            (TrainError::Candle(oom), FailureKind::Oom),
            (
                TrainError::Candle(candle_core::Error::Msg("shape mismatch".into())),
                FailureKind::Other,
            ),
            (
                TrainError::NonFinite {
                    loss: f32::NAN,
                    epoch: 2,
                    batch: 1,
                },
                FailureKind::NonFinite,
            ),
            (
                TrainError::RunDir {
                    path: "x".into(),
                    source: std::io::Error::other("full"),
                },
                FailureKind::Io,
            ),
            (TrainError::NoTrainingData, FailureKind::Data),
            (TrainError::NoTestData, FailureKind::Data),
        ];
        for (error, kind) in cases {
            assert_eq!(error.kind(), kind, "{error}");
        }
    }

    #[test]
    fn cross_entropy_matches_hand_computation() {
        // logits [2, 0, 0], true class 0: -log(e^2 / (e^2 + 2)).
        let logits = Tensor::new(&[[2f32, 0., 0.]], &Device::Cpu).unwrap();
        let labels = Tensor::new(&[0u32], &Device::Cpu).unwrap();
        let e2 = 2f64.exp();
        let nll = -(e2 / (e2 + 2.0)).ln();
        let got = cross_entropy(&logits, &labels, 0.0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((got as f64 - nll).abs() < 1e-6);
        // Smoothing 0.1 over 3 classes: 0.9 * nll + 0.1 * mean_k(-log p_k).
        let log_z = (e2 + 2.0).ln();
        let mean = ((log_z - 2.0) + 2.0 * log_z) / 3.0;
        let smoothed = cross_entropy(&logits, &labels, 0.1)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((smoothed as f64 - (0.9 * nll + 0.1 * mean)).abs() < 1e-6);
    }
}
