//! Trainable classifiers written the candle way, and the ops that work around candle defects.
//!
//! Backbones ([`Backbone`]; each file declares its [`BackboneInfo`] and [`registry`] lists
//! them):
//!
//! * `cnn`: the users' Keras baseline (see [`cnn`]): three 3x3 convolutions, two 2x2
//!   max-pools, dropout 0.25/0.25/0.5 and a `16w` dense layer; base width 32 by default.
//! * `resnet18` / `resnet34`: torchvision's BasicBlock ResNets, and `resnet50` / `resnet101` /
//!   `resnet152`: its Bottleneck ResNets (see [`resnet`]); base width 64 by default.
//!   **Stem:** torchvision's 7x7 stride-2 convolution + BN + ReLU + 3x3 stride-2 max-pool
//!   when `min(height, width) >= 96`; otherwise a CIFAR-style 3x3 stride-1 convolution + BN +
//!   ReLU and no max-pool, so small images (28x28, 32x32) are not reduced to 1x1 before the
//!   last stage.
//! * `xception`: Keras' Xception with the variable names of timm's `legacy_xception` (see
//!   [`xception`]); base width 32 (the stem's channels) by default, images of at least 71x71.
//! * `alexnet` and `vgg11` / `vgg13` / `vgg16` / `vgg19` (and their `_bn` variants):
//!   torchvision's, with its adaptive average pooling before the classifier (see [`alexnet`],
//!   [`vgg`]); base width 64 by default, images of at least 63x63 (AlexNet) or 32x32 (VGG).
//! * `resnet50v2` / `resnet101v2` / `resnet152v2`: Keras' pre-activation ResNets with names
//!   derived from Keras' layer names (see [`resnet_v2`]); base width 64.
//! * `mobilenet_v2` and `efficientnet_b0` / `b1` / `b2`: torchvision's (see [`mobilenet`],
//!   [`efficientnet`]); base width 32 (the stem), scaled through `_make_divisible`.
//!
//! Variables live in a `VarMap` under torchvision-like names (`conv1.weight`, `bn1.running_mean`,
//! `layer1.0.conv1.weight`, ..., `fc.bias`); these names are the checkpoint (safetensors)
//! format. Initial values come from host RNGs seeded by the model seed and each variable's
//! name ([`init`]), so the same seed always gives the same weights on every device.
//! Dropout (cnn, AlexNet, VGG) draws its masks from a seeded RNG owned by the model, and is active only
//! when `forward` is called with `train = true`; batch norm then uses batch statistics and
//! updates its running statistics.
//!
//! Convolutions and max-pooling go through [`ops`], which avoids candle 0.11's wrong or
//! missing gradients for `max_pool2d` and for stride-2 `conv2d` on mixed-parity inputs.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::VarMap;
pub use precision::Precision;
use rand::rngs::StdRng;
use rand::SeedableRng;
pub use registry::{in_stage, Backbone, BackboneInfo, Network};

use crate::run::Trainable;

pub mod alexnet;
pub mod cnn;
pub mod count;
pub mod efficientnet;
pub(crate) mod init;
pub mod kernels;
pub(crate) mod layers;
pub mod mobilenet;
pub mod ops;
pub mod precision;
pub mod registry;
pub mod resnet;
pub mod resnet_v2;
#[cfg(test)]
pub(crate) mod tests;
pub mod vgg;
pub mod weights;
pub mod xception;

/// Everything needed to build a model: architecture, input shape, classes, base width.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    pub backbone: Backbone,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub classes: usize,
    pub base_width: usize,
}

impl ModelSpec {
    /// Checks that the spec describes a buildable model.
    pub fn validate(&self) -> Result<()> {
        if self.channels == 0 || self.classes == 0 || self.base_width == 0 {
            candle_core::bail!(
                "model spec needs positive channels, classes and base width, got {self:?}"
            )
        }
        let min = self.backbone.min_size();
        if self.height < min || self.width < min {
            candle_core::bail!(
                "{} needs images of at least {min}x{min}, got {}x{}",
                self.backbone.name(),
                self.height,
                self.width
            )
        }
        Ok(())
    }
}

/// A trainable classifier: its variables, the network, and the dropout RNG.
pub struct Model {
    spec: ModelSpec,
    device: Device,
    varmap: VarMap,
    net: Box<dyn Network>,
    trainable: Vec<Var>,
    dropout_rng: Mutex<StdRng>,
    precision: Precision,
    seed: u64,
    /// Variables that do not train (transfer learning): see [`Model::set_trainable`].
    frozen: Arc<HashSet<String>>,
}

fn is_running_stat(name: &str) -> bool {
    name.ends_with(".running_mean") || name.ends_with(".running_var")
}

fn lock_err() -> candle_core::Error {
    candle_core::Error::Msg("model lock poisoned".to_string())
}

impl Model {
    /// Builds the model on `device` (f32). Deterministic: the same `seed` gives identical
    /// weights and dropout masks.
    pub fn new(spec: &ModelSpec, device: &Device, seed: u64) -> Result<Model> {
        spec.validate()?;
        let varmap = VarMap::new();
        let vb = init::SeededVarMap::var_builder(&varmap, seed, DType::F32, device);
        let net = spec.backbone.build(vb, spec)?;
        let frozen = Arc::new(HashSet::new());
        let trainable = trainable(&varmap, &frozen)?;
        let dropout_rng = Mutex::new(StdRng::seed_from_u64(init::mix64(
            seed ^ 0x0D50_0D50_0D50_0D50,
        )));
        Ok(Model {
            spec: spec.clone(),
            device: device.clone(),
            varmap,
            net,
            trainable,
            dropout_rng,
            precision: Precision::Fp32,
            seed,
            frozen,
        })
    }

    /// Freezes every variable that `what` does not train, as Keras' `trainable = False`:
    /// frozen variables get no gradient (the network sees them detached, so a frozen base
    /// runs forward only), [`Model::trainable_vars`] leaves them out (no optimizer state),
    /// and a frozen batch norm runs in inference mode (running statistics used, unchanged).
    /// `Trainable::From(stage)` trains the first variable of `stage` in build order and every
    /// later one; the head always trains. Replaces any earlier choice.
    pub fn set_trainable(&mut self, what: &Trainable) -> Result<()> {
        let order = count::shapes(&self.spec)?;
        let head = count::head(&self.spec)?;
        let first = match what {
            Trainable::All => 0,
            Trainable::Head => order.len(),
            Trainable::From(stage) => order
                .iter()
                .position(|(name, _)| in_stage(name, stage))
                .ok_or_else(|| unknown_stage(&self.spec, stage))?,
        };
        let frozen: HashSet<String> = order[..first]
            .iter()
            .map(|(name, _)| name.clone())
            .filter(|name| !head.contains(name))
            .collect();
        self.frozen = Arc::new(frozen);
        let vb = init::SeededVarMap::with_frozen(
            &self.varmap,
            self.seed,
            DType::F32,
            &self.device,
            self.frozen.clone(),
        );
        self.net = self.spec.backbone.build(vb, &self.spec)?;
        self.trainable = trainable(&self.varmap, &self.frozen)?;
        Ok(())
    }

    /// The variables that do not train, running statistics of frozen batch norms included.
    pub fn frozen_names(&self) -> &HashSet<String> {
        &self.frozen
    }

    /// Logits (B, classes) for images `x` (B, C, H, W) matching the spec. With `train`,
    /// dropout is active and batch norm uses (and records) batch statistics.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (_b, c, h, w) = x.dims4()?;
        if (c, h, w) != (self.spec.channels, self.spec.height, self.spec.width) {
            candle_core::bail!(
                "model expects images {}x{}x{} (CxHxW), got {c}x{h}x{w}",
                self.spec.channels,
                self.spec.height,
                self.spec.width
            )
        }
        let x = x.to_dtype(DType::F32)?;
        let _autocast = precision::Autocast::enter(self.precision);
        let mut rng = self.dropout_rng.lock().map_err(|_| lock_err())?;
        let logits = self.net.forward_t(&x, train, &mut rng)?;
        // The loss is always computed in f32 (bf16 autocast's logits are bf16 on CUDA).
        logits.to_dtype(DType::F32)
    }

    /// Trains and evaluates in `precision` from now on (the default is fp32); see
    /// [`precision`]. The variables stay f32 either way.
    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
    }

    /// The precision the forward pass runs in.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Restarts the dropout masks from `seed`: the trainer reseeds every epoch, so a resumed
    /// run draws the same masks as an uninterrupted one.
    pub fn reseed_dropout(&self, seed: u64) -> Result<()> {
        *self.dropout_rng.lock().map_err(|_| lock_err())? =
            StdRng::seed_from_u64(init::mix64(seed ^ 0x0D50_0D50_0D50_0D50));
        Ok(())
    }

    /// The variables an optimizer should update (every variable but the batch-norm running
    /// statistics), sorted by name.
    pub fn trainable_vars(&self) -> Vec<Var> {
        self.trainable.clone()
    }

    /// Number of trainable scalars.
    pub fn parameter_count(&self) -> usize {
        self.trainable.iter().map(|v| v.elem_count()).sum()
    }

    /// The spec the model was built from.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The device holding the variables.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Every variable, running statistics included, by name.
    pub(crate) fn named_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let data = self.varmap.data().lock().map_err(|_| lock_err())?;
        Ok(data
            .iter()
            .map(|(n, v)| (n.clone(), v.as_detached_tensor()))
            .collect())
    }

    /// Sets the variables named in `values` (SWA's averaged weights); other names are left.
    pub(crate) fn set_named(&self, values: &HashMap<String, Tensor>) -> Result<()> {
        let data = self.varmap.data().lock().map_err(|_| lock_err())?;
        for (name, t) in values {
            if let Some(var) = data.get(name) {
                var.set(t)?;
            }
        }
        Ok(())
    }

    /// Batch-norm running statistics back to their start (mean 0, variance 1), before they
    /// are measured anew (SWA's `update_bn`). A frozen layer keeps its own: it runs in
    /// inference mode and would not measure them again.
    pub(crate) fn reset_running_stats(&self) -> Result<()> {
        let data = self.varmap.data().lock().map_err(|_| lock_err())?;
        for (name, var) in data.iter().filter(|(n, _)| is_running_stat(n)) {
            let layer = name.rsplit_once('.').map_or("", |(l, _)| l);
            if self.frozen.contains(&format!("{layer}.weight")) {
                continue;
            }
            let fill = if name.ends_with(".running_var") {
                1.0
            } else {
                0.0
            };
            var.set(&(var.as_tensor().zeros_like()? + fill)?)?;
        }
        Ok(())
    }

    /// Writes every variable (running statistics included) to a safetensors file, with the
    /// spec in its metadata ([`weights::METADATA_PREFIX`]) and `extra` entries beside it.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.save_with(path, &BTreeMap::new())
    }

    /// [`Model::save`] with more metadata (the learner adds the preprocessing and classes).
    pub fn save_with(&self, path: &Path, extra: &BTreeMap<String, String>) -> Result<()> {
        let s = &self.spec;
        let mut meta: HashMap<String, String> = [
            ("backbone", s.backbone.name().to_string()),
            ("width", s.base_width.to_string()),
            ("channels", s.channels.to_string()),
            ("image_size", format!("{}x{}", s.height, s.width)),
            ("classes", s.classes.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (format!("{}{k}", weights::METADATA_PREFIX), v))
        .collect();
        for (k, v) in extra {
            meta.insert(format!("{}{k}", weights::METADATA_PREFIX), v.clone());
        }
        let tensors = self.named_tensors()?;
        let mut named: Vec<(&String, &Tensor)> = tensors.iter().collect();
        named.sort_by(|a, b| a.0.cmp(b.0));
        safetensors::serialize_to_file(named, Some(meta), path)
            .map_err(|e| candle_core::Error::Msg(format!("writing {}: {e}", path.display())))
    }

    /// Starts from pretrained weights (transfer learning): every variable but the head
    /// (see [`count::head`], made anew for this dataset's classes) is read from `path`, a
    /// safetensors file or a PyTorch state dict in the backbone's reference naming. The
    /// file's own head (any size) is ignored; anything else missing, unexpected or of
    /// another shape fails with the full list, before anything changes.
    pub fn load_pretrained(&mut self, path: &Path) -> Result<()> {
        let head = count::head(&self.spec)?;
        let mut loaded = weights::read(path, &self.device)?;
        loaded.retain(|name, _| !head.contains(name));
        let data = self.varmap.data().lock().map_err(|_| lock_err())?;
        let expected: HashMap<String, Tensor> = data
            .iter()
            .filter(|(n, _)| !head.contains(*n))
            .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
            .collect();
        let hint = pretrained_hint(&self.spec);
        for (name, t) in weights::match_names(path, &expected, loaded, &hint)? {
            if let Some(var) = data.get(&name) {
                var.set(&t)?;
            }
        }
        Ok(())
    }

    /// Loads weights for the same spec: a checkpoint written by [`Model::save`], or a
    /// PyTorch state dict (`.pth`/`.pt`) with the reference library's names. Checks every
    /// name and shape first and lists every problem at once; a mismatching file leaves the
    /// model as it was.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let loaded = weights::read(path, &self.device)?;
        let data = self.varmap.data().lock().map_err(|_| lock_err())?;
        let expected: HashMap<String, Tensor> = data
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
            .collect();
        let hint = "check the backbone, width, image channels and number of classes";
        for (name, t) in weights::match_names(path, &expected, loaded, hint)? {
            if let Some(var) = data.get(&name) {
                var.set(&t)?;
            }
        }
        Ok(())
    }
}

/// The variables an optimizer updates: every one but the running statistics and `frozen`,
/// sorted by name.
fn trainable(varmap: &VarMap, frozen: &HashSet<String>) -> Result<Vec<Var>> {
    let data = varmap.data().lock().map_err(|_| lock_err())?;
    let mut named: Vec<(&String, &Var)> = data
        .iter()
        .filter(|(n, _)| !is_running_stat(n) && !frozen.contains(*n))
        .collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    Ok(named.into_iter().map(|(_, v)| v.clone()).collect())
}

/// `unfreeze_from` names no stage of the backbone: the error lists its stages.
fn unknown_stage(spec: &ModelSpec, stage: &str) -> candle_core::Error {
    let stages: Vec<String> = count::stages(spec)
        .map(|s| s.into_iter().map(|s| s.name).collect())
        .unwrap_or_default();
    candle_core::Error::Msg(format!(
        "unfreeze_from = \"{stage}\" names no stage of {}; its stages are {} (`sweep models {}` lists them)",
        spec.backbone.name(),
        stages.join(", "),
        spec.backbone.name()
    ))
}

/// What to check when a pretrained file does not fit.
fn pretrained_hint(spec: &ModelSpec) -> String {
    let mut hint = format!(
        "pretrained weights must be {} at width {} for {}-channel images (the head is made anew, so the number of classes does not matter)",
        spec.backbone.name(),
        spec.base_width,
        spec.channels
    );
    if spec.backbone.family() == "torchvision"
        && spec.backbone.name().starts_with("resnet")
        && spec.height.min(spec.width) < resnet::IMAGENET_STEM_MIN_SIZE
    {
        hint += &format!(
            "; images under {0}x{0} get a 3x3 stem instead of ImageNet's 7x7: use image_size >= {0} with ImageNet weights",
            resnet::IMAGENET_STEM_MIN_SIZE
        );
    }
    hint
}
