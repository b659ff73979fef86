//! What the epoch loop trains: a [`Learner`] does one epoch, one evaluation, and saves or
//! restores its weights. [`CandleLearner`] is the real one (a model, an optimizer and the
//! data); the fake one in [`super::fake`] lets tests drive the scheduler fast.
use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor, D};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::optim::Optimizer;
use super::trainer::{cross_entropy, weighted_cross_entropy, TrainError};
use crate::data::{balanced_order, epoch_order, Dataset, ImageSet};
use crate::model::{Backbone, Model, ModelSpec};
use crate::run::Confusion;
use crate::run::{Phase, RunConfig, Tta};

/// Where a learner is in its current epoch (for progress bars; never stored).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchProgress {
    pub batch: usize,
    pub batches: usize,
    pub images: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Val,
    Test,
}

pub trait Learner {
    fn parameter_count(&self) -> usize;
    fn lr(&self) -> f64;
    fn set_lr(&mut self, lr: f64);
    /// Batches in one training epoch (the schedules count steps in them).
    fn batches_per_epoch(&self) -> usize;
    /// One pass over the training split; epoch `epoch` always shuffles, augments and drops
    /// out the same way, so a resumed run repeats nothing and skips nothing. Batch `b`
    /// (from 0) trains at learning rate `lr(b)`. Returns (mean loss, accuracy).
    fn train_epoch(
        &mut self,
        epoch: usize,
        lr: &dyn Fn(usize) -> f64,
        progress: &mut dyn FnMut(BatchProgress),
    ) -> Result<(f64, f64), TrainError>;
    /// Mean loss and confusion matrix on a split, in eval mode.
    fn evaluate(&mut self, split: Split) -> Result<(f64, Confusion), TrainError>;
    /// [`Learner::evaluate`] with test-time augmentation: each image's softmax averaged over
    /// `tta`'s views; the loss is that average's negative log-likelihood. A learner without
    /// images (the fake one) evaluates plainly.
    fn evaluate_tta(&mut self, split: Split, tta: &Tta) -> Result<(f64, Confusion), TrainError> {
        let _ = tta;
        self.evaluate(split)
    }
    fn save_weights(&self, path: &Path) -> Result<(), TrainError>;
    fn load_weights(&mut self, path: &Path) -> Result<(), TrainError>;
    fn save_optimizer(&self, path: &Path) -> Result<(), TrainError>;
    fn load_optimizer(&mut self, path: &Path) -> Result<(), TrainError>;
    /// SWA: adds the current weights to the running average, which then holds `count`
    /// epochs' weights. A learner without weights (the fake one) keeps nothing.
    fn swa_update(&mut self, count: usize) -> Result<(), TrainError> {
        let _ = count;
        Ok(())
    }
    /// Writes the running average to `path` (with the resume state), or reads it back.
    fn swa_save(&self, path: &Path) -> Result<(), TrainError> {
        let _ = path;
        Ok(())
    }
    fn swa_load(&mut self, path: &Path) -> Result<(), TrainError> {
        let _ = path;
        Ok(())
    }
    /// Puts the averaged weights in the model and measures their batch-norm statistics
    /// with a pass over the training split (torch's `update_bn`); false when nothing was
    /// averaged.
    fn swa_finish(&mut self) -> Result<bool, TrainError> {
        Ok(false)
    }
    /// Sets the weights a run starts from when no saved state continues it (pretrained
    /// weights, for transfer learning); nothing to do for a learner that starts as built.
    fn start_fresh(&mut self) -> Result<(), TrainError> {
        Ok(())
    }
    /// Trains `phase` from now on, at learning rate `lr`: what is frozen changes and the
    /// optimizer starts afresh over what trains (as Keras' recompile between the two steps of
    /// its transfer-learning recipe). Nothing changes but the rate when `phase` is current.
    fn enter_phase(&mut self, phase: Phase, lr: f64) -> Result<(), TrainError> {
        let _ = phase;
        self.set_lr(lr);
        Ok(())
    }
}

/// The run's class balance over the training split: the images of each class per epoch when
/// they are resampled, and the loss weights of `class_weights`.
#[allow(clippy::type_complexity)]
fn balance(
    config: &RunConfig,
    data: &Dataset,
    device: &Device,
) -> Result<(Option<Vec<usize>>, Option<Tensor>), TrainError> {
    use crate::run::balance::{class_weights, epoch_counts};
    use crate::run::Balance;
    if let Some(class) = config
        .augment_classes
        .keys()
        .find(|c| !data.classes.contains(c))
    {
        return Err(TrainError::Classes(format!(
            "[balance] augment_classes names the class \"{class}\", which the training data does not have (its classes: {})",
            data.classes.join(", ")
        )));
    }
    let counts = data.train.class_counts(data.classes.len());
    let repeat: Vec<usize> = data
        .classes
        .iter()
        .map(|c| config.augment_classes.get(c).copied().unwrap_or(1))
        .collect();
    let weighted = config.balance == Some(Balance::ClassWeights);
    let resampled = (config.balance.is_some() && !weighted) || repeat.iter().any(|&r| r > 1);
    let targets = resampled.then(|| epoch_counts(config.balance.as_ref(), &counts, &repeat));
    let weights = match weighted {
        true => {
            let w: Vec<f32> = class_weights(&counts).iter().map(|&w| w as f32).collect();
            Some(Tensor::new(w, device)?)
        }
        false => None,
    };
    Ok((targets, weights))
}

impl CandleLearner {
    /// The images of an evaluated split.
    fn set(&self, split: Split) -> Result<&ImageSet, TrainError> {
        match split {
            Split::Val => Ok(&self.data.val),
            Split::Test => self.data.test.as_ref().ok_or(TrainError::NoTestData),
        }
    }
}

/// Largest batch used for evaluation; it only bounds memory.
const EVAL_BATCH: usize = 256;

/// The real learner: a candle model and optimizer over decoded images.
pub struct CandleLearner {
    config: RunConfig,
    batch_size: usize,
    data: Arc<Dataset>,
    device: Device,
    model: Model,
    optimizer: Optimizer,
    phase: Phase,
    /// The weights file a fresh start loads (transfer learning).
    pretrained: Option<std::path::PathBuf>,
    /// Images of each class per training epoch, when class balance resamples them.
    targets: Option<Vec<usize>>,
    /// The loss weight of each class (`balance = "class_weights"`).
    class_weights: Option<Tensor>,
    /// SWA's running average of every variable but the running statistics.
    swa: Option<std::collections::HashMap<String, Tensor>>,
}

impl CandleLearner {
    pub fn new(
        config: &RunConfig,
        batch_size: usize,
        data: Arc<Dataset>,
        device: &Device,
    ) -> Result<Self, TrainError> {
        let backbone = Backbone::parse(config.backbone.as_str()).ok_or_else(|| {
            let names: Vec<_> = Backbone::ALL.iter().map(|b| b.name()).collect();
            TrainError::UnknownBackbone(config.backbone.to_string(), names.join(", "))
        })?;
        let spec = ModelSpec {
            backbone,
            channels: data.train.channels,
            height: data.train.height,
            width: data.train.width,
            classes: data.classes.len(),
            base_width: config.width,
        };
        let mut model = Model::new(&spec, device, config.seed)?;
        model.set_precision(config.precision);
        let optimizer = Optimizer::new(
            &config.optimizer_settings,
            model.trainable_vars(),
            config.lr,
        )?;
        let (targets, class_weights) = balance(config, &data, device)?;
        Ok(CandleLearner {
            config: config.clone(),
            batch_size,
            data,
            device: device.clone(),
            model,
            optimizer,
            phase: Phase::Scratch,
            pretrained: None,
            targets,
            class_weights,
            swa: None,
        })
    }

    /// A fresh start loads `path` ([`CandleLearner::load_pretrained`]); a resumed run takes
    /// its saved weights instead, so the file is read only when it is needed.
    pub fn start_from(&mut self, path: &Path) {
        self.pretrained = Some(path.to_path_buf());
    }

    /// Starts from pretrained weights (every variable but the head, see
    /// [`Model::load_pretrained`]); fails with the list of every tensor that does not fit.
    pub fn load_pretrained(&mut self, path: &Path) -> Result<(), TrainError> {
        if !path.is_file() {
            return Err(TrainError::Pretrained(format!(
                "the pretrained weights file {} does not exist",
                path.display()
            )));
        }
        self.model.load_pretrained(path).map_err(|e| {
            TrainError::Pretrained(format!("cannot start from {}: {e}", path.display()))
        })
    }

    /// The model (tests look at what it froze).
    pub fn model(&self) -> &Model {
        &self.model
    }

    fn epoch_seed(&self, epoch: usize) -> u64 {
        self.config
            .seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(epoch as u64)
    }
}

impl Learner for CandleLearner {
    fn parameter_count(&self) -> usize {
        self.model.parameter_count()
    }

    fn lr(&self) -> f64 {
        self.optimizer.lr()
    }

    fn set_lr(&mut self, lr: f64) {
        self.optimizer.set_lr(lr)
    }

    /// A loader thread prepares the batches (augmentation, scaling) ahead of training, in
    /// the epoch's order and from the epoch's RNG, so the results are those of preparing
    /// them inline. Each batch's loss and hit count are read back to the host only after the
    /// next batch has been queued, so a GPU always has the next step's work waiting.
    fn batches_per_epoch(&self) -> usize {
        let images = match &self.targets {
            Some(t) => t.iter().sum(),
            None => self.data.train.len(),
        };
        images.div_ceil(self.batch_size)
    }

    fn train_epoch(
        &mut self,
        epoch: usize,
        lr: &dyn Fn(usize) -> f64,
        progress: &mut dyn FnMut(BatchProgress),
    ) -> Result<(f64, f64), TrainError> {
        let train = &self.data.train;
        if train.is_empty() {
            return Err(TrainError::NoTrainingData);
        }
        let mut rng = StdRng::seed_from_u64(self.epoch_seed(epoch));
        self.model.reseed_dropout(self.epoch_seed(epoch) ^ 0xD0)?;
        let order = match &self.targets {
            Some(targets) => balanced_order(&train.labels, targets, &mut rng),
            None => epoch_order(train.len(), &mut rng),
        };
        let augment = &self.config.augment_settings;
        let augment = (!augment.is_identity()).then_some(augment);
        let batch_size = self.batch_size;
        let batches = order.len().div_ceil(batch_size);
        // On the CPU the trainer has every core; a GPU leaves them to augmentation (the same
        // batches either way: the random draws are made in order first).
        let loader_threads = match self.device.is_cpu() {
            true => 1,
            false => {
                std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
            }
        };
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel(LOADER_AHEAD);
            scope.spawn(move || {
                for (b, chunk) in order.chunks(batch_size).enumerate() {
                    // Batch norm cannot train on a single image; a lone last image waits.
                    if chunk.len() < 2 && b > 0 {
                        continue;
                    }
                    let batch =
                        train.host_batch_on(chunk, augment.map(|a| (a, &mut rng)), loader_threads);
                    if tx.send((b, batch)).is_err() {
                        return; // training stopped early
                    }
                }
            });
            let mut totals = EpochTotals::default();
            let mut pending: Option<PendingBatch> = None;
            for (b, batch) in rx {
                let batch = batch?.to_device(&self.device)?;
                let logits = self.model.forward(&batch.images, true)?;
                let smoothing = self.config.label_smoothing;
                let loss = match &self.class_weights {
                    Some(w) => weighted_cross_entropy(&logits, &batch.labels, w, smoothing)?,
                    None => cross_entropy(&logits, &batch.labels, smoothing)?,
                };
                self.optimizer.set_lr(lr(b));
                self.optimizer.backward_step(&loss)?;
                let images = batch.labels.dim(0)?;
                let queued = PendingBatch {
                    batch: b + 1,
                    images,
                    loss: loss.detach(),
                    correct: correct_count(&logits, &batch.labels)?,
                };
                if let Some(done) = pending.replace(queued) {
                    totals.settle(done, epoch)?;
                }
                totals.launched += images;
                progress(BatchProgress {
                    batch: b + 1,
                    batches,
                    images: totals.launched,
                });
            }
            if let Some(done) = pending {
                totals.settle(done, epoch)?;
            }
            Ok(totals.means())
        })
    }

    fn evaluate(&mut self, split: Split) -> Result<(f64, Confusion), TrainError> {
        let set = self.set(split)?;
        evaluate(&self.model, set, self.data.classes.len(), &self.device)
    }

    fn swa_update(&mut self, count: usize) -> Result<(), TrainError> {
        // Copies: the model's tensors share the variables' storage, which training changes.
        let mut now = std::collections::HashMap::new();
        for (name, t) in self.model.named_tensors()? {
            if !name.ends_with(".running_mean") && !name.ends_with(".running_var") {
                now.insert(name, t.copy()?);
            }
        }
        self.swa = Some(match self.swa.take() {
            // torch's AveragedModel: avg + (w - avg) / count.
            Some(mut avg) if count > 1 => {
                for (name, w) in &now {
                    if let Some(a) = avg.get_mut(name) {
                        *a = (&*a + ((w - &*a)? / count as f64)?)?;
                    }
                }
                avg
            }
            _ => now,
        });
        Ok(())
    }

    fn swa_save(&self, path: &Path) -> Result<(), TrainError> {
        if let Some(avg) = &self.swa {
            candle_core::safetensors::save(avg, path)?;
        }
        Ok(())
    }

    fn swa_load(&mut self, path: &Path) -> Result<(), TrainError> {
        self.swa = Some(candle_core::safetensors::load(path, &self.device)?);
        Ok(())
    }

    fn swa_finish(&mut self) -> Result<bool, TrainError> {
        let Some(avg) = self.swa.take() else {
            return Ok(false);
        };
        self.model.set_named(&avg)?;
        self.model.reset_running_stats()?;
        let train = &self.data.train;
        let indices: Vec<usize> = (0..train.len()).collect();
        let mut k = 0;
        for chunk in indices.chunks(self.batch_size).filter(|c| c.len() > 1) {
            k += 1;
            let batch = train.batch(chunk, None, &self.device)?;
            // The k-th batch weighs 1/k: the running statistics become the plain average over
            // the pass (torch's update_bn, momentum None).
            crate::model::kernels::norm::with_momentum(1.0 / k as f64, || {
                self.model.forward(&batch.images, true).map(|_| ())
            })?;
        }
        Ok(true)
    }

    fn evaluate_tta(&mut self, split: Split, tta: &Tta) -> Result<(f64, Confusion), TrainError> {
        let set = self.set(split)?;
        let views = tta.views(set.height, set.width);
        let mut confusion = Confusion::new(self.data.classes.len());
        let mut loss_sum = 0.0f64;
        let indices: Vec<usize> = (0..set.len()).collect();
        for chunk in indices.chunks(EVAL_BATCH) {
            let mut sum: Option<Tensor> = None;
            let mut labels = None;
            for &view in &views {
                let batch = set.batch_view(chunk, view, &self.device)?;
                let logits = self.model.forward(&batch.images, false)?.detach();
                let p = candle_nn::ops::softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?;
                sum = Some(match sum {
                    Some(s) => (s + p)?,
                    None => p,
                });
                labels = Some(batch.labels);
            }
            let (Some(sum), Some(labels)) = (sum, labels) else {
                continue;
            };
            let mean = (sum / views.len() as f64)?;
            let picked = mean.gather(&labels.unsqueeze(1)?, 1)?.squeeze(1)?;
            let nll = picked.clamp(1e-12f32, 1.0f32)?.log()?.neg()?.sum_all()?;
            loss_sum += nll.to_scalar::<f32>()? as f64;
            let predicted = mean.argmax(D::Minus1)?.to_vec1::<u32>()?;
            for (t, p) in labels.to_vec1::<u32>()?.iter().zip(&predicted) {
                confusion.add(*t as usize, *p as usize);
            }
        }
        Ok((loss_sum / set.len().max(1) as f64, confusion))
    }

    /// The checkpoint says how its inputs were prepared and what its classes are, so that it
    /// can be used as `pretrained` by another sweep, or by `sweep predict --weights`.
    fn save_weights(&self, path: &Path) -> Result<(), TrainError> {
        let meta = [
            ("normalize", self.config.data.normalize.name().to_string()),
            (
                "class_names",
                serde_json::to_string(&self.data.classes).unwrap_or_default(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Ok(write_atomically(path, |tmp| {
            self.model.save_with(tmp, &meta)
        })?)
    }

    fn load_weights(&mut self, path: &Path) -> Result<(), TrainError> {
        Ok(self.model.load(path)?)
    }

    fn save_optimizer(&self, path: &Path) -> Result<(), TrainError> {
        Ok(write_atomically(path, |tmp| {
            self.optimizer.save_state(tmp)
        })?)
    }

    fn load_optimizer(&mut self, path: &Path) -> Result<(), TrainError> {
        Ok(self.optimizer.load_state(path)?)
    }

    fn start_fresh(&mut self) -> Result<(), TrainError> {
        match self.pretrained.clone() {
            Some(path) => self.load_pretrained(&path),
            None => Ok(()),
        }
    }

    fn enter_phase(&mut self, phase: Phase, lr: f64) -> Result<(), TrainError> {
        if phase != self.phase {
            let trainable = match &self.config.transfer {
                Some(t) => t.trainable(phase),
                None => crate::run::Trainable::All,
            };
            self.model.set_trainable(&trainable)?;
            self.optimizer = Optimizer::new(
                &self.config.optimizer_settings,
                self.model.trainable_vars(),
                lr,
            )?;
            self.phase = phase;
        }
        self.optimizer.set_lr(lr);
        Ok(())
    }
}

/// Mean cross-entropy loss and the confusion matrix of `model` on `set`, in eval mode.
pub fn evaluate(
    model: &Model,
    set: &ImageSet,
    classes: usize,
    device: &Device,
) -> Result<(f64, Confusion), TrainError> {
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

/// Batches the loader thread may prepare ahead of the one training.
const LOADER_AHEAD: usize = 2;

/// A trained batch whose loss and hit count are still on the device.
struct PendingBatch {
    batch: usize,
    images: usize,
    loss: Tensor,
    correct: Tensor,
}

/// The running sums of one training epoch.
#[derive(Default)]
struct EpochTotals {
    loss_sum: f64,
    correct: usize,
    seen: usize,
    launched: usize,
}

impl EpochTotals {
    /// Reads a batch's results back; a non-finite loss fails the epoch, naming the batch.
    fn settle(&mut self, done: PendingBatch, epoch: usize) -> Result<(), TrainError> {
        let value = done.loss.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        if !value.is_finite() {
            return Err(TrainError::NonFinite {
                loss: value,
                epoch,
                batch: done.batch,
            });
        }
        self.loss_sum += value as f64 * done.images as f64;
        self.correct += done.correct.to_scalar::<u32>()? as usize;
        self.seen += done.images;
        Ok(())
    }

    /// (mean loss, accuracy).
    fn means(&self) -> (f64, f64) {
        let n = self.seen.max(1) as f64;
        (self.loss_sum / n, self.correct as f64 / n)
    }
}

/// How many rows of `logits` pick their label, as a u32 scalar left on the device.
fn correct_count(logits: &Tensor, labels: &Tensor) -> candle_core::Result<Tensor> {
    logits
        .argmax(D::Minus1)?
        .eq(labels)?
        .to_dtype(DType::U32)?
        .sum_all()
}

/// Write a file so that readers see either the old or the new content, never half of it.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&Path) -> candle_core::Result<()>,
) -> candle_core::Result<()> {
    let tmp = path.with_extension("tmp");
    write(&tmp)?;
    std::fs::rename(&tmp, path).map_err(candle_core::Error::wrap)
}
