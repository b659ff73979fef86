//! The epoch loop of one run: train, evaluate, ask the strategies, emit events.
//!
//! It acts, it does not decide: early stopping, the learning rate and which weights to keep
//! come from the pure functions in [`super::strategy`].
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::{DType, Device, Tensor, D};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::event::{EpochRecord, Evaluation, Event, RunEnd, RunStart};
use super::metrics::{Confusion, Metrics};
use super::optim::Optimizer;
use super::strategy::{EpochSummary, Keep};
use crate::data::{epoch_order, Dataset, ImageSet};
use crate::model::{Model, ModelSpec};
use crate::sweep::RunSpec;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{0}")]
    Candle(#[from] candle_core::Error),
    #[error("the loss became {loss} at epoch {epoch}, batch {batch}: lower the learning rate (lr) or the batch size")]
    NonFinite { loss: f32, epoch: usize, batch: usize },
    #[error("cannot create the run folder {path}: {source}")]
    RunDir { path: PathBuf, source: std::io::Error },
    #[error("the training split is empty: add images or lower data.val_split")]
    NoTrainingData,
    #[error("stopped on request")]
    Interrupted,
}

/// Largest batch used for evaluation; it only bounds memory.
const EVAL_BATCH: usize = 256;

/// Train one run on `data`, sending every event to `emit`. Weights go under `run_dir`.
pub fn train(
    run: &RunSpec,
    data: &Dataset,
    device: &Device,
    run_dir: &Path,
    stop: &AtomicBool,
    emit: &mut dyn FnMut(Event),
) -> Result<RunEnd, TrainError> {
    let cfg = &run.config;
    if data.train.is_empty() {
        return Err(TrainError::NoTrainingData);
    }
    std::fs::create_dir_all(run_dir).map_err(|source| TrainError::RunDir { path: run_dir.into(), source })?;
    let spec = ModelSpec {
        backbone: cfg.backbone,
        channels: data.train.channels,
        height: data.train.height,
        width: data.train.width,
        classes: data.classes.len(),
        base_width: cfg.width,
    };
    let mut model = Model::new(&spec, device, cfg.seed)?;
    let mut optimizer = Optimizer::new(&cfg.optimizer_settings, model.trainable_vars(), cfg.lr)?;
    emit(Event::Started {
        run: run.id.clone(),
        start: RunStart {
            device: device_name(device),
            classes: data.classes.clone(),
            parameters: model.parameter_count(),
            train_images: data.train.len(),
            val_images: data.val.len(),
            test_images: data.test.as_ref().map(ImageSet::len),
            skipped: data.skipped.clone(),
        },
    });

    let checkpoint = run_dir.join(match cfg.train.checkpoint.keep {
        Keep::Last => "last.safetensors",
        _ => "best.safetensors",
    });
    let mut rng = StdRng::seed_from_u64(cfg.seed.wrapping_add(0x5eed));
    let mut history: Vec<EpochSummary> = Vec::new();
    let mut stop_reason = format!("completed {} epochs", cfg.epochs);
    for epoch in 1..=cfg.epochs {
        if stop.load(Ordering::Relaxed) {
            return Err(TrainError::Interrupted);
        }
        let lr = optimizer.lr();
        let started = Instant::now();
        let (train_loss, train_acc) = train_epoch(&model, &mut optimizer, data, run, epoch, &mut rng, device)?;
        let train_seconds = started.elapsed().as_secs_f64();
        let (val_loss, confusion) = evaluate(&model, &data.val, data.classes.len(), device)?;
        let val = Metrics::from_confusion(&confusion);
        history.push(EpochSummary {
            epoch,
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
            model.save(&checkpoint)?;
        }
        emit(Event::Epoch {
            run: run.id.clone(),
            record: EpochRecord {
                summary: history[history.len() - 1].clone(),
                seconds: started.elapsed().as_secs_f64(),
                images_per_sec: data.train.len() as f64 / train_seconds.max(1e-9),
                val,
                confusion,
                checkpoint_saved,
            },
        });
        if let Some(next) = cfg.train.reduce_lr_on_plateau.as_ref().and_then(|r| r.next_lr(&history)) {
            optimizer.set_lr(next);
        }
        if let Some(es) = &cfg.train.early_stopping {
            if epoch < cfg.epochs && es.should_stop(&history) {
                stop_reason = format!(
                    "early stop at epoch {epoch}: {} did not improve for {} epochs",
                    es.monitor.name(),
                    es.patience
                );
                break;
            }
        }
    }

    let checkpoint_epoch = cfg.train.checkpoint.saved_epoch(&history);
    if let Some(test) = &data.test {
        // Evaluate the weights a user would take away: the kept checkpoint, else the last ones.
        let epoch = match (cfg.train.checkpoint.keep, checkpoint_epoch) {
            (Keep::Best, Some(e)) => {
                model.load(&checkpoint)?;
                e
            }
            _ => history.len(),
        };
        let (loss, confusion) = evaluate(&model, test, data.classes.len(), device)?;
        let metrics = Metrics::from_confusion(&confusion);
        let evaluation = Evaluation { split: "test".into(), epoch, loss, metrics, confusion };
        emit(Event::Evaluated { run: run.id.clone(), evaluation });
    }
    Ok(RunEnd {
        stop_reason,
        checkpoint: checkpoint_epoch.map(|_| checkpoint),
        checkpoint_epoch,
    })
}

fn device_name(device: &Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(_) => "cuda".into(),
        Device::Metal(_) => "metal".into(),
    }
}

/// One pass over the shuffled training split. Returns (mean loss, accuracy).
fn train_epoch(
    model: &Model,
    optimizer: &mut Optimizer,
    data: &Dataset,
    run: &RunSpec,
    epoch: usize,
    rng: &mut StdRng,
    device: &Device,
) -> Result<(f64, f64), TrainError> {
    let cfg = &run.config;
    let order = epoch_order(data.train.len(), rng);
    let augment = (!cfg.augment_settings.is_identity()).then_some(&cfg.augment_settings);
    let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
    for (b, chunk) in order.chunks(cfg.batch_size).enumerate() {
        // Batch norm cannot train on a single image; a lone last image waits for next epoch.
        if chunk.len() < 2 && seen > 0 {
            continue;
        }
        let batch = match augment {
            Some(a) => data.train.batch(chunk, Some((a, &mut *rng)), device)?,
            None => data.train.batch(chunk, None, device)?,
        };
        let logits = model.forward(&batch.images, true)?;
        let loss = cross_entropy(&logits, &batch.labels, cfg.label_smoothing)?;
        let value = loss.to_scalar::<f32>()?;
        if !value.is_finite() {
            return Err(TrainError::NonFinite { loss: value, epoch, batch: b + 1 });
        }
        optimizer.backward_step(&loss)?;
        loss_sum += value as f64 * chunk.len() as f64;
        correct += count_correct(&logits, &batch.labels)?;
        seen += chunk.len();
    }
    Ok((loss_sum / seen.max(1) as f64, correct as f64 / seen.max(1) as f64))
}

/// Mean cross-entropy loss and the confusion matrix of `model` on `set`, in eval mode.
pub fn evaluate(model: &Model, set: &ImageSet, classes: usize, device: &Device) -> Result<(f64, Confusion), TrainError> {
    let mut confusion = Confusion::new(classes);
    let mut loss_sum = 0.0f64;
    let indices: Vec<usize> = (0..set.len()).collect();
    for chunk in indices.chunks(EVAL_BATCH) {
        let batch = set.batch(chunk, None, device)?;
        let logits = model.forward(&batch.images, false)?.detach();
        let loss = cross_entropy(&logits, &batch.labels, 0.0)?.to_scalar::<f32>()?;
        loss_sum += loss as f64 * chunk.len() as f64;
        let predicted = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
        let truth = batch.labels.to_vec1::<u32>()?;
        for (t, p) in truth.iter().zip(&predicted) {
            confusion.add(*t as usize, *p as usize);
        }
    }
    Ok((loss_sum / set.len().max(1) as f64, confusion))
}

fn count_correct(logits: &Tensor, labels: &Tensor) -> candle_core::Result<usize> {
    let predicted = logits.argmax(D::Minus1)?;
    predicted.eq(labels)?.to_dtype(DType::U32)?.sum_all()?.to_scalar::<u32>().map(|c| c as usize)
}

/// Cross-entropy with label smoothing `eps` (PyTorch's definition: the target puts 1 - eps on
/// the true class and eps spread evenly over all classes).
pub fn cross_entropy(logits: &Tensor, labels: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    let log_p = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let nll = log_p.gather(&labels.unsqueeze(1)?, 1)?.squeeze(1)?.neg()?.mean_all()?;
    if eps == 0.0 {
        return Ok(nll);
    }
    let uniform = log_p.mean(D::Minus1)?.neg()?.mean_all()?;
    (nll * (1.0 - eps))? + (uniform * eps)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_entropy_matches_hand_computation() {
        // logits [2, 0, 0], true class 0: -log(e^2 / (e^2 + 2)).
        let logits = Tensor::new(&[[2f32, 0., 0.]], &Device::Cpu).unwrap();
        let labels = Tensor::new(&[0u32], &Device::Cpu).unwrap();
        let e2 = 2f64.exp();
        let nll = -(e2 / (e2 + 2.0)).ln();
        let got = cross_entropy(&logits, &labels, 0.0).unwrap().to_scalar::<f32>().unwrap();
        assert!((got as f64 - nll).abs() < 1e-6);
        // Smoothing 0.1 over 3 classes: 0.9 * nll + 0.1 * mean_k(-log p_k).
        let log_z = (e2 + 2.0).ln();
        let mean = ((log_z - 2.0) + 2.0 * log_z) / 3.0;
        let smoothed = cross_entropy(&logits, &labels, 0.1).unwrap().to_scalar::<f32>().unwrap();
        assert!((smoothed as f64 - (0.9 * nll + 0.1 * mean)).abs() < 1e-6);
    }
}
