//! Keras' pre-activation ResNets (He et al., "Identity Mappings in Deep Residual Networks",
//! 2016) exactly as `keras.applications.ResNet50V2` / `ResNet101V2` / `ResNet152V2` build
//! them (`keras/src/applications/resnet.py`, `resnet_v2.py`): `resnet50v2`, `resnet101v2`,
//! `resnet152v2`, stages of 3/4/6/3, 3/4/23/3 and 3/8/36/3 blocks.
//!
//! * Stem: `conv1_conv`, a 7x7 stride-2 convolution with bias after a zero padding of 3; then
//!   a zero padding of 1 and a 3x3 stride-2 max-pool (`pool1`). No batch norm or ReLU in the
//!   stem (the blocks pre-activate), so the padded zeros can win the pool where the
//!   convolution's outputs are negative, as in Keras.
//! * Stages `conv2`..`conv5` of `block2` units (`conv{S}_block{B}`, counted from 1) with
//!   filters `f` = 64, 128, 256, 512 and outputs `4f`: `preact_bn` + ReLU of the input, then
//!   `1_conv` 1x1 (no bias) + `1_bn` + ReLU, `2_conv` 3x3 with stride `s` after a zero padding
//!   of 1 (no bias) + `2_bn` + ReLU, `3_conv` 1x1 to `4f` (with bias), added to the shortcut.
//!   The shortcut of a stage's first block is `0_conv`, a 1x1 convolution with bias and
//!   stride `s` reading the *pre-activated* input; the other blocks add their raw input,
//!   through a 1x1 max-pool of stride `s` (a subsampling) when `s = 2`.
//! * The stride sits on the **last** block of a stage (Keras' `stack_residual_blocks_v2`):
//!   2 for `conv2`..`conv4`, 1 for `conv5`. A 224x224 image gives 112 (conv1), 56 (pool1),
//!   28 (conv2), 14 (conv3), 7 (conv4) and 7 (conv5) pixels a side.
//! * Head: `post_bn` + ReLU, global average pooling, `predictions` (the logits: Keras' softmax
//!   is left to the loss).
//!
//! Variable names are the Keras layer names with PyTorch-style suffixes, so the running
//! statistics are recognised as such; the checkpoint format is:
//!
//! | Keras weight (`layer/variable`) | here |
//! |---|---|
//! | `conv1_conv/kernel` (7, 7, C, 64), `bias` | `conv1_conv.weight` (64, C, 7, 7), `.bias` |
//! | `P_preact_bn/gamma`, `beta` | `P_preact_bn.weight`, `.bias` |
//! | `P_preact_bn/moving_mean`, `moving_variance` | `P_preact_bn.running_mean`, `.running_var` |
//! | `P_0_conv/kernel`, `bias` (shortcut, first blocks) | `P_0_conv.weight`, `.bias` |
//! | `P_1_conv/kernel`; `P_1_bn/*` | `P_1_conv.weight`; `P_1_bn.*` |
//! | `P_2_conv/kernel`; `P_2_bn/*` | `P_2_conv.weight`; `P_2_bn.*` |
//! | `P_3_conv/kernel`, `bias` | `P_3_conv.weight`, `.bias` |
//! | `post_bn/*` | `post_bn.*` |
//! | `predictions/kernel` (2048, classes), `bias` | `predictions.weight` (classes, 2048), `.bias` |
//!
//! where `P` is a block's prefix, e.g. `conv2_block1` (so `conv2_block1_preact_bn.weight`,
//! `conv2_block1_0_conv.bias`, `conv5_block3_3_conv.weight`).
//!
//! Convolution kernels are stored OIHW (Keras: HWIO) and the dense kernel (out, in) (Keras:
//! (in, out)); batch norm `gamma`/`beta`/`moving_mean`/`moving_variance` become
//! `weight`/`bias`/`running_mean`/`running_var`.
//!
//! Widths: base width `w` (64 by default, the real network) is the stem's width and the first
//! stage's filters; the stages have `w, 2w, 4w, 8w` filters and `4w, 8w, 16w, 32w` outputs.
//!
//! Initialisation and batch norm follow Keras: Glorot-uniform kernels (fans `k*k*in`,
//! `k*k*out`), zero biases, batch norm gamma 1, beta 0, moving mean 0, moving variance 1,
//! epsilon 1.001e-5 ([`BN_EPSILON`]) and momentum 0.99 (candle's momentum
//! [`BN_MOMENTUM`] = 0.01: the running statistics move 1% of the way per training step). One
//! difference: the running variance is updated with the unbiased batch variance (PyTorch's
//! and candle's rule), Keras uses the biased one.
//!
//! Checked once against Keras 3.15.1 (jax backend): `ResNet50V2(weights=None, classes=5,
//! input_shape=(40, 44, 3), classifier_activation=None)` given this module's weights (random
//! batch norm parameters and statistics, transposed as above) returns the same logits on
//! inputs in [-2, 2], to 1e-6 with `training=False` and 4e-5 with batch statistics.
//!
//! Image size: every stage keeps at least one pixel for any image (each padded stride-2 step
//! maps `n` to `ceil(n / 2)`), so any size is accepted. Keras' own input check asks for at
//! least 32x32; nothing in the network needs it.
use candle_core::{Module, Result, Tensor};
use candle_nn::{BatchNorm, BatchNormConfig, VarBuilder};
use rand::rngs::StdRng;

use super::layers::{linear, Conv, ConvCfg, InitScheme, Linear};
use super::ops::{self, avg_pool_global, max_pool2d};
use super::{BackboneInfo, ModelSpec, Network};

// The registry's entries. Costs scale from resnet18's 4 (1.8G multiply-adds per 224x224
// image) like the ResNets' in `resnet.rs`: ResNet50V2 ~4.1G, ResNet101V2 ~7.8G, ResNet152V2
// ~11.5G multiply-adds, the same as their v1 twins.

pub(crate) static RESNET50V2: BackboneInfo = BackboneInfo {
    name: "resnet50v2",
    default_width: REFERENCE_WIDTH,
    min_size: 1,
    cost: 9.0,
    family: "keras",
    stage_of: keras_stage,
    default_input: 224,
    build: |vb, spec| build(vb, spec, BLOCKS_50),
};

pub(crate) static RESNET101V2: BackboneInfo = BackboneInfo {
    name: "resnet101v2",
    default_width: REFERENCE_WIDTH,
    min_size: 1,
    cost: 17.0,
    family: "keras",
    stage_of: keras_stage,
    default_input: 224,
    build: |vb, spec| build(vb, spec, BLOCKS_101),
};

pub(crate) static RESNET152V2: BackboneInfo = BackboneInfo {
    name: "resnet152v2",
    default_width: REFERENCE_WIDTH,
    min_size: 1,
    cost: 25.0,
    family: "keras",
    stage_of: keras_stage,
    default_input: 224,
    build: |vb, spec| build(vb, spec, BLOCKS_152),
};

/// Keras' stages: the layer-name prefix before the block (`conv4_block6_2_conv.weight` is in
/// `conv4`, `conv1_conv.bias` in `conv1`); `post_bn` and `predictions` are stages of their own.
/// A block (`conv5_block2`) can also be named where a stage is asked for.
pub(crate) fn keras_stage(name: &str) -> &str {
    let layer = name.split('.').next().unwrap_or(name);
    match layer.split_once('_') {
        Some((stage, _)) if stage.starts_with("conv") => stage,
        _ => layer,
    }
}

fn build(vb: VarBuilder, spec: &ModelSpec, blocks: [usize; 4]) -> Result<Box<dyn Network>> {
    Ok(Box::new(ResNetV2::new(vb, spec, blocks)?))
}

/// The base width of the real networks: the stem's channels and the first stage's filters.
pub const REFERENCE_WIDTH: usize = 64;

/// Keras' `BatchNormalization(epsilon=1.001e-5)` of every ResNet.
pub const BN_EPSILON: f64 = 1.001e-5;

/// Keras' default batch norm momentum 0.99 in candle's (PyTorch's) convention, the weight of
/// the batch statistics in the running ones.
pub const BN_MOMENTUM: f64 = 0.01;

/// Blocks per stage (`conv2`..`conv5`).
const BLOCKS_50: [usize; 4] = [3, 4, 6, 3];
const BLOCKS_101: [usize; 4] = [3, 4, 23, 3];
const BLOCKS_152: [usize; 4] = [3, 8, 36, 3];

/// A Keras `Conv2D` (Glorot-uniform kernel, zero bias) with symmetric zero padding.
fn conv(
    vb: VarBuilder,
    in_c: usize,
    out_c: usize,
    kernel: usize,
    stride: usize,
    bias: bool,
) -> Result<Conv> {
    let cfg = ConvCfg {
        kernel,
        stride,
        padding: kernel / 2,
        bias,
        init: InitScheme::Keras,
    };
    Conv::new(vb, in_c, out_c, cfg)
}

/// Keras' `BatchNormalization(epsilon=1.001e-5)`: gamma 1, beta 0, moving mean 0, moving
/// variance 1, momentum 0.99 ([`BN_MOMENTUM`]).
#[derive(Clone, Debug)]
struct KerasNorm {
    bn: BatchNorm,
    /// Frozen (transfer learning): inference mode always, as Keras' `trainable = False`.
    frozen: bool,
}

impl KerasNorm {
    fn new(vb: VarBuilder, channels: usize) -> Result<Self> {
        let cfg = BatchNormConfig {
            eps: BN_EPSILON,
            remove_mean: true,
            affine: true,
            momentum: BN_MOMENTUM,
        };
        let bn = candle_nn::batch_norm(channels, cfg, vb)?;
        Ok(KerasNorm {
            frozen: super::layers::is_frozen(&bn),
            bn,
        })
    }

    /// Batch norm then ReLU: batch statistics (and a running-stat update) when `train`,
    /// running statistics otherwise.
    fn forward_relu_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let train = train && !self.frozen;
        if train {
            // Like PyTorch, training needs more than one value per channel (the unbiased
            // running variance would divide by zero).
            let (b, _c, h, w) = x.dims4()?;
            if b * h * w < 2 {
                candle_core::bail!(
                    "batch norm in training needs more than one value per channel, input {:?}",
                    x.shape()
                )
            }
        }
        ops::batch_norm(x, &self.bn, train, ops::Activation::Relu)
    }
}

/// What a block adds its residual branch to.
#[derive(Clone, Debug)]
enum Shortcut {
    /// `0_conv`: 1x1 convolution with bias and the block's stride, of the pre-activation.
    Conv(Conv),
    /// The raw input, subsampled by a 1x1 max-pool when the stride is not 1.
    Input { stride: usize },
}

/// Keras' `residual_block_v2`.
#[derive(Clone, Debug)]
struct Block {
    preact_bn: KerasNorm,
    shortcut: Shortcut,
    conv1: Conv,
    bn1: KerasNorm,
    conv2: Conv,
    bn2: KerasNorm,
    conv3: Conv,
}

impl Block {
    /// Block reading `in_c` channels with `filters` bottleneck filters (output `4 * filters`).
    fn new(
        vb: VarBuilder,
        name: &str,
        in_c: usize,
        filters: usize,
        stride: usize,
        conv_shortcut: bool,
    ) -> Result<Self> {
        let out_c = 4 * filters;
        let at = |layer: &str| vb.pp(format!("{name}_{layer}"));
        let shortcut = if conv_shortcut {
            Shortcut::Conv(conv(at("0_conv"), in_c, out_c, 1, stride, true)?)
        } else {
            Shortcut::Input { stride }
        };
        Ok(Block {
            preact_bn: KerasNorm::new(at("preact_bn"), in_c)?,
            shortcut,
            conv1: conv(at("1_conv"), in_c, filters, 1, 1, false)?,
            bn1: KerasNorm::new(at("1_bn"), filters)?,
            conv2: conv(at("2_conv"), filters, filters, 3, stride, false)?,
            bn2: KerasNorm::new(at("2_bn"), filters)?,
            conv3: conv(at("3_conv"), filters, out_c, 1, 1, true)?,
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let preact = self.preact_bn.forward_relu_t(x, train)?;
        let shortcut = match &self.shortcut {
            Shortcut::Conv(conv) => conv.forward(&preact)?,
            Shortcut::Input { stride: 1 } => x.clone(),
            Shortcut::Input { stride } => max_pool2d(x, 1, *stride, 0)?,
        };
        let y = self
            .bn1
            .forward_relu_t(&self.conv1.forward(&preact)?, train)?;
        let y = self.bn2.forward_relu_t(&self.conv2.forward(&y)?, train)?;
        let y = self.conv3.forward(&y)?;
        shortcut + y
    }
}

/// Keras' `pool1`: zero padding of 1 (zeros, not minus infinity), then a 3x3 stride-2
/// max-pool without padding.
fn pool1(x: &Tensor) -> Result<Tensor> {
    let x = x.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?;
    max_pool2d(&x, 3, 2, 0)
}

#[derive(Clone, Debug)]
pub(crate) struct ResNetV2 {
    conv1: Conv,
    stages: Vec<Vec<Block>>,
    post_bn: KerasNorm,
    predictions: Linear,
}

impl ResNetV2 {
    /// The ResNetV2 with `blocks` per stage for `spec`, whose base width is the stem's
    /// ([`REFERENCE_WIDTH`] for Keras' networks).
    pub(crate) fn new(vb: VarBuilder, spec: &ModelSpec, blocks: [usize; 4]) -> Result<Self> {
        let w = spec.base_width;
        let conv1 = conv(vb.pp("conv1_conv"), spec.channels, w, 7, 2, true)?;
        let mut stages = Vec::with_capacity(blocks.len());
        let mut in_c = w;
        for (s, &n) in blocks.iter().enumerate() {
            let filters = w << s;
            // Keras: stride1 = 2 on the last block of conv2..conv4, 1 in conv5.
            let last_stride = if s + 1 < blocks.len() { 2 } else { 1 };
            let mut stage = Vec::with_capacity(n);
            for b in 0..n {
                let name = format!("conv{}_block{}", s + 2, b + 1);
                let stride = if b + 1 == n { last_stride } else { 1 };
                stage.push(Block::new(
                    vb.clone(),
                    &name,
                    in_c,
                    filters,
                    stride,
                    b == 0,
                )?);
                in_c = 4 * filters;
            }
            stages.push(stage);
        }
        let post_bn = KerasNorm::new(vb.pp("post_bn"), in_c)?;
        let predictions = linear(vb.pp("predictions"), in_c, spec.classes, InitScheme::Keras)?;
        Ok(ResNetV2 {
            conv1,
            stages,
            post_bn,
            predictions,
        })
    }

    /// The activations `post_relu` (B, 32w, H/32, W/32 rounded up) that the head pools.
    fn features(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = pool1(&self.conv1.forward(x)?)?;
        for stage in &self.stages {
            for block in stage {
                x = block.forward_t(&x, train)?;
            }
        }
        self.post_bn.forward_relu_t(&x, train)
    }
}

impl Network for ResNetV2 {
    fn forward_t(&self, x: &Tensor, train: bool, _dropout_rng: &mut StdRng) -> Result<Tensor> {
        let x = self.features(x, train)?;
        self.predictions.forward(&avg_pool_global(&x)?)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle_core::{DType, Device, Var};
    use candle_nn::VarMap;

    use super::*;
    use crate::model::kernels;
    use crate::model::tests::{images, spec, to_vec};
    use crate::model::{Backbone, Model};
    use crate::train::optim::{Optimizer, OptimizerConfig};

    fn backbone(name: &str) -> Backbone {
        Backbone::parse(name).unwrap_or_else(|| panic!("{name} is not registered"))
    }

    /// Every variable (running statistics included) the constructor asks for, by name.
    fn var_shapes(spec: &ModelSpec) -> HashMap<String, Vec<usize>> {
        let recorded = crate::model::count::shapes(spec).unwrap();
        let map: HashMap<_, _> = recorded
            .iter()
            .map(|(n, s)| (n.clone(), s.dims().to_vec()))
            .collect();
        assert_eq!(map.len(), recorded.len(), "a variable was asked for twice");
        map
    }

    use crate::model::is_running_stat;

    /// Keras' trainable parameters (BN gamma and beta included, moving statistics not).
    fn trainable_count(shapes: &HashMap<String, Vec<usize>>) -> usize {
        shapes
            .iter()
            .filter(|(n, _)| !is_running_stat(n))
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }

    /// References, 224x224x3, 1000 classes, default width: `ResNet50V2(weights=None)` has
    /// 25,568,360 trainable weights (issue 9, Keras' `model.summary()`). The 101 and 152
    /// counts are derived from the architecture: stem 7*7*3*64 + 64; per block with input
    /// `c` and filters `f`: preact BN 2c, 1x1 c*f + BN 2f, 3x3 9f^2 + BN 2f, 1x1 4f^2 + 4f,
    /// plus c*4f + 4f for a stage's first block (`0_conv`); post BN 2*2048; dense
    /// 2048*1000 + 1000. That formula gives 25,568,360 for the 50 as well, and Keras 3.15.1
    /// (jax backend, `weights=None`; `sum` of `np.prod(w.shape)` over
    /// `model.trainable_weights`) reports the same three numbers, and 272, 544 and 816
    /// weights in `model.weights`.
    #[test]
    fn parameter_counts_match_keras() {
        for (name, expected, variables) in [
            ("resnet50v2", 25_568_360, 272),
            ("resnet101v2", 44_577_896, 544),
            ("resnet152v2", 60_236_904, 816),
        ] {
            let b = backbone(name);
            assert_eq!(b.default_width(), 64);
            let s = spec(b, 3, 224, 224, 1000, b.default_width());
            let shapes = var_shapes(&s);
            assert_eq!(trainable_count(&shapes), expected, "{name}");
            // Keras' `len(model.weights)`: the same tensors, one name each.
            assert_eq!(shapes.len(), variables, "{name}");
        }
        // The recorded count is the model's count.
        let s = spec(backbone("resnet50v2"), 2, 32, 30, 7, 4);
        let m = Model::new(&s, &Device::Cpu, 0).unwrap();
        assert_eq!(trainable_count(&var_shapes(&s)), m.parameter_count());
    }

    /// Names and shapes of the first and last layers of `ResNet50V2(weights=None)` (in our
    /// layout, see the module docs), and where the convolution shortcuts and biases are.
    #[test]
    fn variable_names_follow_keras_layers() {
        let shapes = var_shapes(&spec(backbone("resnet50v2"), 3, 224, 224, 1000, 64));
        for (name, shape) in [
            ("conv1_conv.weight", &[64, 3, 7, 7][..]),
            ("conv1_conv.bias", &[64]),
            ("conv2_block1_preact_bn.weight", &[64]),
            ("conv2_block1_preact_bn.bias", &[64]),
            ("conv2_block1_preact_bn.running_mean", &[64]),
            ("conv2_block1_preact_bn.running_var", &[64]),
            ("conv2_block1_0_conv.weight", &[256, 64, 1, 1]),
            ("conv2_block1_0_conv.bias", &[256]),
            ("conv2_block1_1_conv.weight", &[64, 64, 1, 1]),
            ("conv2_block1_1_bn.running_var", &[64]),
            ("conv2_block1_2_conv.weight", &[64, 64, 3, 3]),
            ("conv2_block1_2_bn.weight", &[64]),
            ("conv2_block1_3_conv.weight", &[256, 64, 1, 1]),
            ("conv2_block1_3_conv.bias", &[256]),
            ("conv2_block2_preact_bn.weight", &[256]),
            ("conv3_block1_0_conv.weight", &[512, 256, 1, 1]),
            ("conv3_block1_1_conv.weight", &[128, 256, 1, 1]),
            ("conv4_block6_2_conv.weight", &[256, 256, 3, 3]),
            ("conv5_block1_preact_bn.weight", &[1024]),
            ("conv5_block1_0_conv.weight", &[2048, 1024, 1, 1]),
            ("conv5_block3_3_conv.weight", &[2048, 512, 1, 1]),
            ("conv5_block3_3_conv.bias", &[2048]),
            ("post_bn.weight", &[2048]),
            ("post_bn.bias", &[2048]),
            ("post_bn.running_mean", &[2048]),
            ("post_bn.running_var", &[2048]),
            ("predictions.weight", &[1000, 2048]),
            ("predictions.bias", &[1000]),
        ] {
            assert_eq!(shapes.get(name).map(|s| &s[..]), Some(shape), "{name}");
        }
        for absent in [
            "conv1_bn.weight",
            "conv2_block2_0_conv.weight",
            "conv2_block3_0_conv.weight",
            "conv2_block1_1_conv.bias",
            "conv2_block1_2_conv.bias",
            "conv2_block4_preact_bn.weight",
            "conv5_block4_1_conv.weight",
            "fc.weight",
        ] {
            assert!(!shapes.contains_key(absent), "unexpected {absent}");
        }
        // 16 blocks: 3 BNs each, plus post_bn, with 4 tensors each.
        let norms = shapes
            .keys()
            .filter(|n| n.ends_with(".running_mean"))
            .count();
        assert_eq!(norms, 16 * 3 + 1);
        // The deeper ones differ only in the number of blocks.
        let deep = var_shapes(&spec(backbone("resnet152v2"), 3, 224, 224, 10, 64));
        assert_eq!(deep["conv3_block8_3_conv.weight"], [512, 128, 1, 1]);
        assert_eq!(deep["conv4_block36_2_conv.weight"], [256, 256, 3, 3]);
        assert!(!deep.contains_key("conv3_block9_1_conv.weight"));
        assert_eq!(deep["predictions.weight"], [10, 2048]);
    }

    /// Width `w` scales the stem to `w` and the stages to `w..8w` filters, `4w..32w` outputs.
    #[test]
    fn base_width_scales_every_channel_count() {
        let shapes = var_shapes(&spec(backbone("resnet101v2"), 1, 32, 32, 5, 4));
        assert_eq!(shapes["conv1_conv.weight"], [4, 1, 7, 7]);
        assert_eq!(shapes["conv2_block1_0_conv.weight"], [16, 4, 1, 1]);
        assert_eq!(shapes["conv3_block1_1_conv.weight"], [8, 16, 1, 1]);
        assert_eq!(shapes["conv4_block23_2_conv.weight"], [16, 16, 3, 3]);
        assert_eq!(shapes["conv5_block3_3_conv.weight"], [128, 32, 1, 1]);
        assert_eq!(shapes["predictions.weight"], [5, 128]);
    }

    /// Keras' stage sizes: 224 -> 7x7 features (the stride is on the last block of conv2 to
    /// conv4), odd sizes round up, and any image keeps at least one pixel.
    #[test]
    fn forward_shapes_follow_keras() {
        for (name, c, h, w, fh, fw) in [
            ("resnet50v2", 3, 224, 224, 7, 7),
            ("resnet50v2", 1, 33, 40, 2, 2),
            ("resnet101v2", 2, 65, 31, 3, 1),
            ("resnet152v2", 3, 1, 2, 1, 1),
        ] {
            let b = backbone(name);
            let s = spec(b, c, h, w, 7, 1);
            let m = Model::new(&s, &Device::Cpu, 1).unwrap();
            let x = images(2, c, h, w, 2);
            for train in [false, true] {
                let y = m.forward(&x, train).unwrap();
                assert_eq!(y.dims(), &[2, 7], "{name} {h}x{w} train {train}");
                assert!(to_vec(&y).iter().all(|v| v.is_finite()));
            }
            let vb = VarBuilder::zeros(DType::F32, &Device::Cpu);
            let blocks = match name {
                "resnet50v2" => BLOCKS_50,
                "resnet101v2" => BLOCKS_101,
                _ => BLOCKS_152,
            };
            let net = ResNetV2::new(vb, &s, blocks).unwrap();
            let f = net.features(&x, false).unwrap();
            assert_eq!(f.dims(), &[2, 32, fh, fw], "{name} {h}x{w}");
        }
    }

    /// `pool1` pads with zeros, as Keras' `ZeroPadding2D`: on a negative input the border
    /// windows take the padding's 0.
    #[test]
    fn stem_pool_pads_with_zeros() {
        let x = (Tensor::ones((1, 1, 4, 5), DType::F32, &Device::Cpu).unwrap() * -1.0).unwrap();
        let y = pool1(&x).unwrap();
        assert_eq!(y.dims(), &[1, 1, 2, 3]);
        // Output row 0 and columns 0 and 2 reach into the padding; (1, 1) reads input rows
        // 1..=3 and columns 1..=3 only.
        assert_eq!(to_vec(&y), [0.0, 0.0, 0.0, 0.0, -1.0, 0.0]);
    }

    /// The identity shortcut of a strided block, a 1x1 max-pool of stride 2, is Keras'
    /// subsampling `x[::2, ::2]` and passes the gradient to exactly those pixels, on both
    /// the fast CPU kernels and the reference ops.
    #[test]
    fn strided_identity_shortcut_subsamples() {
        for fast in [true, false] {
            kernels::set_fast_path(fast);
            for (h, w) in [(5, 4), (4, 7), (1, 1)] {
                let x = Var::from_tensor(&images(2, 3, h, w, 9)).unwrap();
                let y = max_pool2d(x.as_tensor(), 1, 2, 0).unwrap();
                let (oh, ow) = (h.div_ceil(2), w.div_ceil(2));
                assert_eq!(y.dims(), &[2, 3, oh, ow]);
                let xv = to_vec(x.as_tensor());
                let yv = to_vec(&y);
                let weights = images(2, 3, oh, ow, 10);
                let grads = (&y * &weights)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                let g = to_vec(grads.get(x.as_tensor()).unwrap());
                let wv = to_vec(&weights);
                for n in 0..6 {
                    for i in 0..h {
                        for j in 0..w {
                            let at = (n * h + i) * w + j;
                            let picked = i % 2 == 0 && j % 2 == 0;
                            let out = (n * oh + i / 2) * ow + j / 2;
                            if picked {
                                assert_eq!(yv[out], xv[at]);
                                assert_eq!(g[at], wv[out], "fast {fast} {h}x{w}");
                            } else {
                                assert_eq!(g[at], 0.0, "fast {fast} {h}x{w}");
                            }
                        }
                    }
                }
            }
        }
        kernels::set_fast_path(true);
    }

    /// Keras' initialisers: Glorot-uniform kernels within `sqrt(6 / (fan_in + fan_out))`,
    /// zero biases, batch norm 1/0 with running statistics 0/1.
    #[test]
    fn initialisation_follows_keras() {
        let m = Model::new(
            &spec(backbone("resnet50v2"), 3, 32, 32, 10, 8),
            &Device::Cpu,
            3,
        )
        .unwrap();
        let all = m.named_tensors().unwrap();
        let check_glorot = |name: &str, fan_in: usize, fan_out: usize| {
            let v = to_vec(&all[name]);
            let limit = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
            assert!(v.iter().all(|x| x.abs() <= limit), "{name}");
            let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
            assert!(max > 0.9 * limit, "{name}: max {max} of limit {limit}");
        };
        check_glorot("conv1_conv.weight", 49 * 3, 49 * 8);
        check_glorot("conv3_block2_2_conv.weight", 9 * 16, 9 * 16);
        check_glorot("conv2_block1_0_conv.weight", 8, 32);
        check_glorot("predictions.weight", 256, 10);
        for (name, tensor) in &all {
            let v = to_vec(tensor);
            let expected = if name.ends_with(".running_var") {
                Some(1.0)
            } else if name.ends_with(".bias") || name.ends_with(".running_mean") {
                Some(0.0)
            } else if name.contains("_bn.") && name.ends_with(".weight") {
                Some(1.0)
            } else {
                None
            };
            if let Some(e) = expected {
                assert!(v.iter().all(|x| *x == e), "{name} should be {e}");
            }
        }
    }

    /// Keras' batch norm: epsilon 1.001e-5, and the running mean moves 1% of the way to the
    /// batch mean per training step (momentum 0.99).
    #[test]
    fn batch_norm_is_keras_s() {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let bn = KerasNorm::new(vb, 2).unwrap();
        let x = Tensor::new(&[[[[1f32, 3.0]], [[2.0, -4.0]]]], &Device::Cpu).unwrap();
        let y = bn.forward_relu_t(&x, false).unwrap();
        let scale = 1.0 / (1.0 + BN_EPSILON).sqrt();
        let expected = [scale, 3.0 * scale, 2.0 * scale, 0.0];
        for (a, b) in to_vec(&y).iter().zip(expected) {
            assert!((*a as f64 - b).abs() < 1e-6, "{a} vs {b}");
        }
        bn.forward_relu_t(&x, true).unwrap();
        let data = varmap.data().lock().unwrap();
        let mean = to_vec(data["running_mean"].as_tensor());
        assert!((mean[0] - 0.02).abs() < 1e-7 && (mean[1] + 0.01).abs() < 1e-7);
    }

    /// A few SGD steps on one fixed batch lower the training loss of a small ResNet50V2. The
    /// step is tiny: no batch norm follows the stem convolution, whose output only reaches
    /// the rest through the first block's pre-activation batch norm, so its loss is invariant
    /// to the kernel's scale and its gradient grows as the (Glorot-small) kernel's inverse:
    /// here the stem holds 90% of the squared gradient norm of ~4e4 (torchvision's ResNet-50
    /// at the same width: 2e3). Steps of 1e-4 and more overshoot.
    #[test]
    fn sgd_steps_lower_the_loss() {
        let s = spec(backbone("resnet50v2"), 3, 32, 33, 3, 4);
        let m = Model::new(&s, &Device::Cpu, 6).unwrap();
        let x = images(6, 3, 32, 33, 11);
        let y = Tensor::new(&[0u32, 1, 2, 0, 1, 2], &Device::Cpu).unwrap();
        let loss = |m: &Model| {
            let logits = m.forward(&x, true).unwrap();
            candle_nn::loss::cross_entropy(&logits, &y).unwrap()
        };
        let config = OptimizerConfig::Sgd {
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.0,
        };
        let mut opt = Optimizer::new(&config, m.trainable_vars(), 3e-6).unwrap();
        let mut losses = vec![loss(&m).to_scalar::<f32>().unwrap()];
        for _ in 0..6 {
            opt.backward_step(&loss(&m)).unwrap();
            losses.push(loss(&m).to_scalar::<f32>().unwrap());
        }
        assert!(losses.windows(2).all(|l| l[1] < l[0]), "losses {losses:?}");
        assert!(losses[6] < 0.8 * losses[0], "losses {losses:?}");
    }
}
