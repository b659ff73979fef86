//! torchvision's VGG-11/13/16/19 (configurations A, B, D, E of Simonyan & Zisserman), with and
//! without batch norm, with torchvision's layout and variable names.
//!
//! `features` is torchvision's `nn.Sequential`: each 3x3 convolution (padding 1) is followed
//! by a ReLU, or by a BN and a ReLU in the `_bn` variants, and each `M` of the configuration
//! is a 2x2 max-pool; every module takes one index, so the variables are `features.0.weight`,
//! `features.0.bias` (`features.1.running_mean` etc. for the BN of the `_bn` nets). Then
//! `AdaptiveAvgPool2d((7, 7))` and `classifier`: `0` Linear(512*7*7, 4096), ReLU, Dropout 0.5,
//! `3` Linear(4096, 4096), ReLU, Dropout 0.5, `6` Linear(4096, classes).
//!
//! The base width `w` (64 in torchvision) scales every channel count by `w / 64` and the
//! classifier's hidden size to `64w`. Five 2x2 pools need images of at least 32x32.
//! Initialisation follows torchvision: kaiming-normal (fan-out, ReLU) convolutions with zero
//! bias, BN weight 1 / bias 0, linear weights N(0, 0.01) with zero bias.
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;
use rand::rngs::StdRng;

use super::layers::{dropout, linear, Conv, ConvCfg, InitScheme, Linear, Norm};
use super::ops::{adaptive_avg_pool2d, max_pool2d, relu};
use super::{BackboneInfo, ModelSpec, Network};

/// Smallest height/width VGG accepts: five 2x2 max-pools must leave at least 1x1.
pub(crate) const MIN_SIZE: usize = 32;

/// Side of the adaptive average pool's output, the classifier's input grid.
const POOLED: usize = 7;

// The registry's entries. Costs scale from resnet18's 4 at 1.8G multiply-adds per 224x224
// image by torchvision's: vgg11 7.6G, vgg13 11.3G, vgg16 15.5G, vgg19 19.6G (BN adds little).

pub(crate) static VGG11: BackboneInfo =
    info("vgg11", 17.0, |vb, s| build(vb, s, VGG11_CONVS, false));
pub(crate) static VGG13: BackboneInfo =
    info("vgg13", 25.0, |vb, s| build(vb, s, VGG13_CONVS, false));
pub(crate) static VGG16: BackboneInfo =
    info("vgg16", 34.0, |vb, s| build(vb, s, VGG16_CONVS, false));
pub(crate) static VGG19: BackboneInfo =
    info("vgg19", 44.0, |vb, s| build(vb, s, VGG19_CONVS, false));
pub(crate) static VGG11_BN: BackboneInfo =
    info("vgg11_bn", 17.0, |vb, s| build(vb, s, VGG11_CONVS, true));
pub(crate) static VGG13_BN: BackboneInfo =
    info("vgg13_bn", 25.0, |vb, s| build(vb, s, VGG13_CONVS, true));
pub(crate) static VGG16_BN: BackboneInfo =
    info("vgg16_bn", 34.0, |vb, s| build(vb, s, VGG16_CONVS, true));
pub(crate) static VGG19_BN: BackboneInfo =
    info("vgg19_bn", 44.0, |vb, s| build(vb, s, VGG19_CONVS, true));

type Build = fn(VarBuilder, &ModelSpec) -> Result<Box<dyn Network>>;

const fn info(name: &'static str, cost: f64, build: Build) -> BackboneInfo {
    BackboneInfo {
        name,
        default_width: 64,
        min_size: MIN_SIZE,
        cost,
        family: "torchvision",
        stage_of: super::registry::indexed,
        default_input: 224,
        build,
    }
}

fn build(vb: VarBuilder, spec: &ModelSpec, convs: Stages, bn: bool) -> Result<Box<dyn Network>> {
    Ok(Box::new(Vgg::new(vb, spec, convs, bn)?))
}

/// Channels of the five stages at width 64; each stage ends with a 2x2 max-pool.
const STAGE_CHANNELS: [usize; 5] = [64, 128, 256, 512, 512];

/// Number of 3x3 convolutions in each stage: torchvision's `cfgs` "A", "B", "D", "E" with
/// the channels factored out (e.g. "A" = 64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M).
type Stages = [usize; 5];
const VGG11_CONVS: Stages = [1, 1, 2, 2, 2];
const VGG13_CONVS: Stages = [2, 2, 2, 2, 2];
const VGG16_CONVS: Stages = [2, 2, 3, 3, 3];
const VGG19_CONVS: Stages = [2, 2, 4, 4, 4];

/// A layer of `features`.
#[derive(Clone, Debug)]
enum Layer {
    /// Convolution, its BN in the `_bn` nets, then ReLU.
    Conv(Conv, Option<Norm>),
    Pool,
}

#[derive(Clone, Debug)]
pub(crate) struct Vgg {
    features: Vec<Layer>,
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
}

impl Vgg {
    /// The VGG with `convs` convolutions per stage (with batch norm when `bn`) for `spec`.
    fn new(vb: VarBuilder, spec: &ModelSpec, convs: Stages, bn: bool) -> Result<Self> {
        let w = spec.base_width;
        let conv_cfg = ConvCfg {
            kernel: 3,
            stride: 1,
            padding: 1,
            bias: true,
            init: InitScheme::VggConv,
        };
        let vb_features = vb.pp("features");
        let mut features = Vec::new();
        let (mut index, mut in_c) = (0, spec.channels);
        for (&n, &channels) in convs.iter().zip(&STAGE_CHANNELS) {
            let out_c = channels * w / 64;
            for _ in 0..n {
                let conv = Conv::new(vb_features.pp(index), in_c, out_c, conv_cfg)?;
                let norm = match bn {
                    true => Some(Norm::new(vb_features.pp(index + 1), out_c)?),
                    false => None,
                };
                features.push(Layer::Conv(conv, norm));
                // torchvision numbers every module: conv, (BN,) ReLU.
                index += if bn { 3 } else { 2 };
                in_c = out_c;
            }
            features.push(Layer::Pool);
            index += 1;
        }
        let (hidden, vb_classifier) = (64 * w, vb.pp("classifier"));
        let flat = in_c * POOLED * POOLED;
        let fc = |i: usize, in_dim, out_dim| {
            linear(vb_classifier.pp(i), in_dim, out_dim, InitScheme::VggLinear)
        };
        Ok(Vgg {
            features,
            fc1: fc(0, flat, hidden)?,
            fc2: fc(3, hidden, hidden)?,
            fc3: fc(6, hidden, spec.classes)?,
        })
    }
}

impl Network for Vgg {
    fn forward_t(&self, x: &Tensor, train: bool, rng: &mut StdRng) -> Result<Tensor> {
        let mut x = x.clone();
        for layer in &self.features {
            x = match layer {
                Layer::Conv(conv, None) => relu(&conv.forward(&x)?)?,
                Layer::Conv(conv, Some(norm)) => norm.forward_relu_t(&conv.forward(&x)?, train)?,
                Layer::Pool => max_pool2d(&x, 2, 2, 0)?,
            };
        }
        let x = adaptive_avg_pool2d(&x, POOLED, POOLED)?.flatten_from(1)?;
        let drop = |x: Tensor, rng: &mut StdRng| match train {
            true => dropout(&x, 0.5, rng),
            false => Ok(x),
        };
        let x = drop(relu(&self.fc1.forward(&x)?)?, rng)?;
        let x = drop(relu(&self.fc2.forward(&x)?)?, rng)?;
        self.fc3.forward(&x)
    }
}
