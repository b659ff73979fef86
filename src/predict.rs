//! Using a trained run: a stored run's kept checkpoint, classes and preprocessing -> the class
//! of new images (`sweep predict`). Reads the store, never writes it.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use candle_core::{DType, Device, Tensor, D};

use crate::model::{count, Backbone, Model, ModelSpec};
use crate::run::{Normalize, RunConfig, RunStatus};
use crate::store::{Reader, RunRow, SweepRow};

/// One image's prediction, or why it has none.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Prediction {
    #[serde(with = "crate::run::path")]
    pub path: PathBuf,
    /// `None` when the image could not be read (`error` says why).
    pub class: Option<String>,
    pub class_index: Option<usize>,
    pub probabilities: Vec<f32>,
    pub logits: Vec<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A model in eval mode, with what it needs to read an image as its training did.
pub struct Predictor {
    model: Model,
    pub classes: Vec<String>,
    channels: usize,
    height: usize,
    width: usize,
    normalize: Normalize,
    /// The weights file used.
    pub weights: PathBuf,
    /// What the weights are: a run's id and label, or the backbone.
    pub source: String,
}

/// The stored run whose id is `id` or starts with it (at least 4 characters, unique).
pub fn find_run(store: &dyn Reader, id: &str) -> anyhow::Result<(SweepRow, RunRow)> {
    if id.len() < 4 {
        bail!("run id \"{id}\" is too short: give at least 4 characters (see `sweep status`)");
    }
    let mut found = Vec::new();
    for sweep in store.sweeps()? {
        for run in store.runs(sweep.id)? {
            if run.id.starts_with(id) {
                found.push((sweep.clone(), run));
            }
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => bail!(
            "no run {id} in {}; `sweep status` lists the runs",
            store.location()
        ),
        n => bail!("{n} runs start with {id}: give more of the id"),
    }
}

impl Predictor {
    /// The run's kept checkpoint (`best`/`last.safetensors`), else its last saved weights
    /// (a run kept no checkpoint, or is still training). `runs_dir` is where its folders are
    /// (the database's folder).
    pub fn from_run(store: &dyn Reader, id: &str, runs_dir: &Path) -> anyhow::Result<Predictor> {
        let (sweep, run) = find_run(store, id)?;
        if run.classes.is_empty() {
            bail!(
                "run {} ({}) has not started training yet: it has no classes and no weights",
                run.id,
                run.label
            );
        }
        let config: RunConfig = serde_json::from_value(run.config.clone())
            .with_context(|| format!("run {} has a config this build cannot read", run.id))?;
        let dir = runs_dir.join(&sweep.name).join(&run.id);
        let weights = weights_file(&run, &dir).with_context(|| {
            format!(
                "run {} ({}, {}) has no weights to predict with",
                run.id, run.label, run.status
            )
        })?;
        let backbone = Backbone::parse(config.backbone.as_str()).with_context(|| {
            format!(
                "run {} uses backbone {}, which this build does not have",
                run.id, config.backbone
            )
        })?;
        let spec = ModelSpec {
            backbone,
            channels: config.data.channels as usize,
            height: config.data.height as usize,
            width: config.data.width as usize,
            classes: run.classes.len(),
            base_width: config.width,
        };
        let mut model = Model::new(&spec, &Device::Cpu, config.seed)?;
        model.set_precision(config.precision);
        model
            .load(&weights)
            .with_context(|| format!("cannot load the weights of run {}", run.id))?;
        Ok(Predictor {
            model,
            classes: run.classes.clone(),
            channels: spec.channels,
            height: spec.height,
            width: spec.width,
            normalize: config.data.normalize,
            weights,
            source: format!("run {} ({})", run.id, run.label),
        })
    }

    /// Any weights file for `backbone` (safetensors, or a PyTorch state dict with the
    /// reference library's names). The number of classes is read from the file's head (the
    /// tensors whose shape depends on it); classes are named by index.
    pub fn from_weights(
        backbone: &str,
        weights: &Path,
        image: (usize, usize, usize),
        base_width: Option<usize>,
        normalize: Normalize,
    ) -> anyhow::Result<Predictor> {
        let backbone = Backbone::parse(backbone).with_context(|| {
            let names: Vec<_> = Backbone::ALL.iter().map(|b| b.name()).collect();
            format!(
                "unknown backbone \"{backbone}\"; choose one of {}",
                names.join(", ")
            )
        })?;
        let (channels, height, width) = image;
        let mut spec = ModelSpec {
            backbone,
            channels,
            height,
            width,
            classes: 1,
            base_width: base_width.unwrap_or(backbone.default_width()),
        };
        spec.validate()?;
        let one = count::shapes(&spec)?;
        let two = count::shapes(&ModelSpec {
            classes: 2,
            ..spec.clone()
        })?;
        let loaded = crate::model::weights::read(weights, &Device::Cpu)
            .with_context(|| format!("cannot read {}", weights.display()))?;
        let mut classes = None;
        for ((name, a), (_, b)) in one.iter().zip(&two) {
            let Some(axis) = (0..a.rank()).find(|&i| a.dims()[i] != b.dims()[i]) else {
                continue;
            };
            if let Some(t) = loaded.get(name) {
                classes = t.dims().get(axis).copied();
                break;
            }
        }
        let classes = classes.with_context(|| {
            format!(
                "{} has none of {backbone}'s classifier tensors: is it {backbone}'s?",
                weights.display()
            )
        })?;
        spec.classes = classes;
        let mut model = Model::new(&spec, &Device::Cpu, 0)?;
        model
            .load(weights)
            .with_context(|| format!("cannot load {}", weights.display()))?;
        Ok(Predictor {
            model,
            classes: (0..classes).map(|k| k.to_string()).collect(),
            channels,
            height,
            width,
            normalize,
            weights: weights.to_path_buf(),
            source: format!("{backbone} weights"),
        })
    }

    /// Predictions for `files`, in order, `batch` images at a time. An unreadable image gets
    /// its reason and the others go on.
    pub fn predict(&self, files: &[PathBuf], batch: usize) -> anyhow::Result<Vec<Prediction>> {
        let (c, h, w) = (self.channels, self.height, self.width);
        let mut out: Vec<Prediction> = Vec::with_capacity(files.len());
        for chunk in files.chunks(batch.max(1)) {
            let mut pixels: Vec<f32> = Vec::new();
            let mut ok = Vec::new();
            let first = out.len();
            for path in chunk {
                match crate::data::load_image(path, c, h, w) {
                    Ok(bytes) => {
                        // As training turned them into inputs (`[data] normalize`).
                        self.normalize.extend(&bytes, c, &mut pixels);
                        ok.push(out.len());
                        out.push(empty(path, None));
                    }
                    Err(reason) => out.push(empty(path, Some(reason))),
                }
            }
            if ok.is_empty() {
                continue;
            }
            let x = Tensor::from_vec(pixels, (ok.len(), c, h, w), &Device::Cpu)?;
            let logits = self.model.forward(&x, false)?.to_dtype(DType::F32)?;
            let probs = candle_nn::ops::softmax(&logits, D::Minus1)?;
            let (logits, probs) = (logits.to_vec2::<f32>()?, probs.to_vec2::<f32>()?);
            for ((i, l), p) in ok.into_iter().zip(logits).zip(probs) {
                let best = argmax(&p);
                let pred = &mut out[i];
                pred.class = Some(self.classes[best].clone());
                pred.class_index = Some(best);
                pred.logits = l;
                pred.probabilities = p;
            }
            debug_assert!(out.len() == first + chunk.len());
        }
        Ok(out)
    }
}

fn empty(path: &Path, error: Option<String>) -> Prediction {
    Prediction {
        path: path.to_path_buf(),
        class: None,
        class_index: None,
        probabilities: Vec::new(),
        logits: Vec::new(),
        error,
    }
}

/// The first index of the largest value (NaN never wins).
fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] || v[best].is_nan() {
            best = i;
        }
    }
    best
}

/// The weights to use: the kept checkpoint, else the last saved epoch's weights.
fn weights_file(run: &RunRow, dir: &Path) -> anyhow::Result<PathBuf> {
    if let Some(stored) = &run.checkpoint {
        let stored = PathBuf::from(stored);
        // Stored relative to where `sweep run` ran; the run folder is beside the database.
        for candidate in [
            stored.clone(),
            dir.join(stored.file_name().unwrap_or_default()),
        ] {
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    if let Ok(Some(state)) = crate::run::ResumeState::load(dir) {
        let last = crate::run::ResumeState::dir(dir).join(&state.weights);
        if last.is_file() {
            return Ok(last);
        }
    }
    match run.status {
        RunStatus::Failed => bail!("it failed before saving any weights"),
        _ => bail!(
            "neither a checkpoint nor saved weights are in {}",
            dir.display()
        ),
    }
}

/// Image files from the arguments: files as given, folders expanded (sorted, recursive).
pub fn expand(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let found = crate::data::image_files(input)
                .with_context(|| format!("cannot list {}", input.display()))?;
            if found.is_empty() {
                bail!("{} holds no .png/.jpg/.jpeg image", input.display());
            }
            files.extend(found);
        } else if input.exists() {
            files.push(input.clone());
        } else {
            bail!("{} does not exist", input.display());
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    #[test]
    fn argmax_takes_the_first_largest_and_skips_nan() {
        assert_eq!(super::argmax(&[0.1, 0.7, 0.7, 0.2]), 1);
        assert_eq!(super::argmax(&[f32::NAN, 0.3, 0.5]), 2);
    }
}
