//! torchvision's EfficientNet-B0/B1/B2 (Tan & Le 2019), with torchvision's layout and
//! variable names (`torchvision/models/efficientnet.py`).
//!
//! `features` is torchvision's `nn.Sequential`:
//!
//! * `features.0`: the stem, 3x3 stride-2 convolution (`features.0.0`) + BN (`features.0.1`)
//!   + SiLU.
//! * `features.1`..`features.7`: the seven stages of MBConv blocks (`features.S.J`). A block's
//!   `block` sequence holds, each at the next index: the 1x1 expansion convolution + BN + SiLU
//!   (`block.0.0`, `block.0.1`; only when the expand ratio is not 1, i.e. not in stage 1), the
//!   depthwise kxk convolution + BN + SiLU, squeeze-excitation (`fc1`, `fc2`: 1x1 convolutions
//!   with bias; global average pool, fc1, SiLU, fc2, sigmoid, scale) and the 1x1 projection +
//!   BN without activation. So `features.1.0.block.0.0` is stage 1's depthwise convolution,
//!   `features.1.0.block.1.fc1` its squeeze-excitation, `features.2.0.block.1.0` stage 2's.
//!   Blocks keeping the width and resolution add their input after stochastic depth
//!   (torchvision's `StochasticDepth(p, "row")`: in training each image's branch is dropped
//!   with probability `p = 0.2 * block / blocks`, counted over the whole net, else scaled by
//!   `1 / (1 - p)`; the draws come from the model's dropout RNG).
//! * `features.8`: 1x1 convolution to four times the last stage's width + BN + SiLU.
//!
//! Then global average pooling and `classifier`: `0` Dropout (0.2 for B0 and B1, 0.3 for
//! B2), `1` Linear.
//!
//! Stages (expand ratio, kernel, stride, input and output channels, blocks) are B0's
//! (1,3,1,32,16,1), (6,3,2,16,24,2), (6,5,2,24,40,2), (6,3,2,40,80,3), (6,5,1,80,112,3),
//! (6,5,2,112,192,4), (6,3,1,192,320,1); B1 and B2 scale the widths by `width_mult` (1.0,
//! 1.1) and the block counts by `depth_mult` (1.1, 1.2, rounded up), as torchvision's
//! `MBConvConfig`. Squeeze-excitation has `max(1, input_channels / 4)` channels.
//!
//! Widths: base width `w` is torchvision's `width_mult = scaling * w / 32`, as for
//! MobileNetV2: every width `c` becomes `_make_divisible(c * width_mult, 8)` (nearest multiple
//! of 8, at least 8, never 10% below: [`make_divisible`]) and the expanded width
//! `_make_divisible(c_in * ratio, 8)`. So `w = 32` ([`REFERENCE_WIDTH`]) is torchvision's net
//! and every narrower `w` is torchvision's `_efficientnet_conf(arch, width_mult)` (checked
//! against torchvision in `tests/equivalence.rs`); below `w = 8` the nets stop shrinking.
//!
//! Batch norm has PyTorch's defaults (eps 1e-5, momentum 0.1) as torchvision's B0-B2 (only
//! B5-B7 pass eps 1e-3, momentum 0.01). Initialisation follows torchvision: convolutions
//! kaiming-normal fan-out (gain sqrt 2) with zero bias, BN weight 1 / bias 0, the linear
//! layer U(-1/sqrt(classes), 1/sqrt(classes)) with zero bias. Every convolution pads
//! `(k - 1) / 2`, so any image size works (torchvision's `min_size` is 1x1; training, whose
//! batch norms need more than one value per channel, then needs batches of 2 or more).
use candle_core::{Module, Result, Tensor};
use candle_nn::init::{FanInOut, NonLinearity, NormalOrUniform};
use candle_nn::{Init, VarBuilder};
use rand::rngs::StdRng;
use rand::Rng;

use super::layers::{dropout, make_divisible, Conv, ConvCfg, InitScheme, Norm};
use super::ops::{avg_pool_global, depthwise_conv2d, linear, silu, Activation};
use super::{BackboneInfo, ModelSpec, Network};

// The registry's entries. Costs scale from resnet18's 4 (1.8G multiply-adds per 224x224
// image) by the multiply-adds at 224x224 of these nets: b0 0.39G, b1 0.57G, b2 0.66G
// (torchvision's documented 0.4, 0.7, 1.1 GFLOPs are at their crops of 224, 240, 288).

pub(crate) static EFFICIENTNET_B0: BackboneInfo =
    info("efficientnet_b0", 0.9, |vb, s| build(vb, s, Scaling::B0));
pub(crate) static EFFICIENTNET_B1: BackboneInfo =
    info("efficientnet_b1", 1.3, |vb, s| build(vb, s, Scaling::B1));
pub(crate) static EFFICIENTNET_B2: BackboneInfo =
    info("efficientnet_b2", 1.5, |vb, s| build(vb, s, Scaling::B2));

type Build = fn(VarBuilder, &ModelSpec) -> Result<Box<dyn Network>>;

const fn info(name: &'static str, cost: f64, build: Build) -> BackboneInfo {
    BackboneInfo {
        name,
        default_width: REFERENCE_WIDTH,
        min_size: 1,
        cost,
        family: "torchvision",
        stage_of: super::registry::indexed,
        default_input: 224,
        build,
    }
}

fn build(vb: VarBuilder, spec: &ModelSpec, scaling: Scaling) -> Result<Box<dyn Network>> {
    Ok(Box::new(EfficientNet::new(vb, spec, scaling)?))
}

/// The stem width of the real network: widths scale by `w / REFERENCE_WIDTH`.
pub const REFERENCE_WIDTH: usize = 32;

/// Stochastic depth probability of the last block (torchvision's `stochastic_depth_prob`).
const STOCHASTIC_DEPTH: f64 = 0.2;

/// A compound-scaled member of the family: torchvision's `width_mult`, `depth_mult` and
/// classifier dropout.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Scaling {
    pub(crate) width_mult: f64,
    pub(crate) depth_mult: f64,
    pub(crate) dropout: f64,
}

impl Scaling {
    pub(crate) const B0: Scaling = Scaling::new(1.0, 1.0, 0.2);
    pub(crate) const B1: Scaling = Scaling::new(1.0, 1.1, 0.2);
    pub(crate) const B2: Scaling = Scaling::new(1.1, 1.2, 0.3);

    const fn new(width_mult: f64, depth_mult: f64, dropout: f64) -> Scaling {
        Scaling {
            width_mult,
            depth_mult,
            dropout,
        }
    }
}

/// One stage at B0's scale, as torchvision's `MBConvConfig`.
#[derive(Clone, Copy, Debug)]
struct Stage {
    expand_ratio: usize,
    kernel: usize,
    stride: usize,
    in_c: usize,
    out_c: usize,
    blocks: usize,
}

const fn stage(
    expand_ratio: usize,
    kernel: usize,
    stride: usize,
    in_c: usize,
    out_c: usize,
    blocks: usize,
) -> Stage {
    Stage {
        expand_ratio,
        kernel,
        stride,
        in_c,
        out_c,
        blocks,
    }
}

/// torchvision's `inverted_residual_setting` for `efficientnet_b*`.
const STAGES: [Stage; 7] = [
    stage(1, 3, 1, 32, 16, 1),
    stage(6, 3, 2, 16, 24, 2),
    stage(6, 5, 2, 24, 40, 2),
    stage(6, 3, 2, 40, 80, 3),
    stage(6, 5, 1, 80, 112, 3),
    stage(6, 5, 2, 112, 192, 4),
    stage(6, 3, 1, 192, 320, 1),
];

/// Channel widths of the net at base width `w`: torchvision's `adjust_channels` at
/// `width_mult * w / 32`.
#[derive(Clone, Copy, Debug)]
struct Widths {
    mult: f64,
}

/// torchvision rounds every EfficientNet width to a multiple of 8.
const DIVISOR: usize = 8;

impl Widths {
    fn new(scaling: Scaling, w: usize) -> Widths {
        // At w = 32 the factor is exactly 1, so `c * width_mult` is torchvision's product.
        Widths {
            mult: scaling.width_mult * (w as f64 / REFERENCE_WIDTH as f64),
        }
    }

    /// Width `c` of B0 in this net.
    fn scaled(self, c: usize) -> usize {
        make_divisible(c as f64 * self.mult, DIVISOR)
    }

    /// The expanded width of a block reading `in_c` channels.
    fn expanded(self, in_c: usize, ratio: usize) -> usize {
        make_divisible((in_c * ratio) as f64, DIVISOR)
    }
}

/// Every convolution: no bias, kaiming-normal fan-out (torchvision's
/// `kaiming_normal_(mode="fan_out")`, whose default gain is ReLU's sqrt 2).
fn conv_cfg(kernel: usize, stride: usize) -> ConvCfg {
    ConvCfg {
        kernel,
        stride,
        padding: (kernel - 1) / 2,
        bias: false,
        init: InitScheme::VggConv,
    }
}

/// A depthwise kxk convolution without bias (`weight` (channels, 1, k, k), initialised like
/// [`conv_cfg`]'s), padding `(k - 1) / 2`. Its 5x5 kernels also meet maps narrower than the
/// padding (stage 6 of 32x32 images), which the fast kernel handles.
#[derive(Clone, Debug)]
struct Depthwise {
    weight: Tensor,
    stride: usize,
    padding: usize,
}

impl Depthwise {
    fn new(vb: VarBuilder, channels: usize, kernel: usize, stride: usize) -> Result<Self> {
        let init = Init::Kaiming {
            dist: NormalOrUniform::Normal,
            fan: FanInOut::FanOut,
            non_linearity: NonLinearity::ReLU,
        };
        Ok(Depthwise {
            weight: vb.get_with_hints((channels, 1, kernel, kernel), "weight", init)?,
            stride,
            padding: (kernel - 1) / 2,
        })
    }
}

impl Module for Depthwise {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        depthwise_conv2d(x, &self.weight, None, self.stride, self.padding)
    }
}

/// torchvision's `Conv2dNormActivation` with a dense convolution: `.0` convolution, `.1` BN,
/// then SiLU when `act`.
#[derive(Clone, Debug)]
struct ConvBn {
    conv: Conv,
    bn: Norm,
    act: bool,
}

impl ConvBn {
    fn new(vb: VarBuilder, in_c: usize, out_c: usize, cfg: ConvCfg, act: bool) -> Result<Self> {
        Ok(ConvBn {
            conv: Conv::new(vb.pp("0"), in_c, out_c, cfg)?,
            bn: Norm::new(vb.pp("1"), out_c)?,
            act,
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let act = if self.act {
            Activation::Silu
        } else {
            Activation::Identity
        };
        self.bn.forward_act_t(&self.conv.forward(x)?, train, act)
    }
}

/// torchvision's `SqueezeExcitation(channels, squeeze, activation=SiLU)`: `x * sigmoid(fc2(
/// silu(fc1(avg_pool(x)))))`, `fc1` and `fc2` 1x1 convolutions with bias.
#[derive(Clone, Debug)]
struct SqueezeExcitation {
    fc1: Conv,
    fc2: Conv,
}

impl SqueezeExcitation {
    fn new(vb: VarBuilder, channels: usize, squeeze: usize) -> Result<Self> {
        let cfg = ConvCfg {
            bias: true,
            ..conv_cfg(1, 1)
        };
        Ok(SqueezeExcitation {
            fc1: Conv::new(vb.pp("fc1"), channels, squeeze, cfg)?,
            fc2: Conv::new(vb.pp("fc2"), squeeze, channels, cfg)?,
        })
    }
}

impl Module for SqueezeExcitation {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, _h, _w) = x.dims4()?;
        let s = avg_pool_global(x)?.reshape((b, c, 1, 1))?;
        let s = self.fc2.forward(&silu(&self.fc1.forward(&s)?)?)?;
        let s = candle_nn::ops::sigmoid(&s)?.to_dtype(x.dtype())?;
        x.broadcast_mul(&s)
    }
}

/// One block's shape.
#[derive(Clone, Copy, Debug)]
struct BlockCfg {
    in_c: usize,
    expanded: usize,
    out_c: usize,
    kernel: usize,
    stride: usize,
    /// Stochastic depth probability of the residual branch.
    drop_prob: f64,
}

/// torchvision's `MBConv`.
#[derive(Clone, Debug)]
struct MbConv {
    expand: Option<ConvBn>,
    depthwise: Depthwise,
    depthwise_bn: Norm,
    se: SqueezeExcitation,
    project: ConvBn,
    residual: bool,
    drop_prob: f64,
}

impl MbConv {
    fn new(vb: VarBuilder, cfg: BlockCfg) -> Result<Self> {
        let vb = vb.pp("block");
        // Each module takes the next index of torchvision's `block` Sequential.
        let mut index = 0usize;
        let mut next = || {
            index += 1;
            vb.pp((index - 1).to_string())
        };
        let expand = if cfg.expanded != cfg.in_c {
            let cfg1 = conv_cfg(1, 1);
            Some(ConvBn::new(next(), cfg.in_c, cfg.expanded, cfg1, true)?)
        } else {
            None
        };
        let vb_dw = next();
        let depthwise = Depthwise::new(vb_dw.pp("0"), cfg.expanded, cfg.kernel, cfg.stride)?;
        let depthwise_bn = Norm::new(vb_dw.pp("1"), cfg.expanded)?;
        let squeeze = (cfg.in_c / 4).max(1);
        let se = SqueezeExcitation::new(next(), cfg.expanded, squeeze)?;
        let project = ConvBn::new(next(), cfg.expanded, cfg.out_c, conv_cfg(1, 1), false)?;
        Ok(MbConv {
            expand,
            depthwise,
            depthwise_bn,
            se,
            project,
            residual: cfg.stride == 1 && cfg.in_c == cfg.out_c,
            drop_prob: cfg.drop_prob,
        })
    }

    fn forward_t(&self, input: &Tensor, train: bool, rng: &mut StdRng) -> Result<Tensor> {
        let mut x = match &self.expand {
            Some(expand) => expand.forward_t(input, train)?,
            None => input.clone(),
        };
        x = self.depthwise.forward(&x)?;
        x = self
            .depthwise_bn
            .forward_act_t(&x, train, Activation::Silu)?;
        x = self.se.forward(&x)?;
        x = self.project.forward_t(&x, train)?;
        if !self.residual {
            return Ok(x);
        }
        if train {
            x = stochastic_depth(&x, self.drop_prob, rng)?;
        }
        x + input
    }
}

/// torchvision's `stochastic_depth(x, p, "row", training=True)`: each image (row of dim 0)
/// is zeroed with probability `p`, the others scaled by `1 / (1 - p)`. Identity when `p == 0`.
fn stochastic_depth(x: &Tensor, p: f64, rng: &mut StdRng) -> Result<Tensor> {
    if !(0.0..1.0).contains(&p) {
        candle_core::bail!("stochastic depth probability must be in [0, 1), got {p}")
    }
    if p == 0.0 {
        return Ok(x.clone());
    }
    let b = x.dim(0)?;
    let keep = (1.0 / (1.0 - p)) as f32;
    let mask: Vec<f32> = (0..b)
        .map(|_| if rng.random::<f64>() < p { 0.0 } else { keep })
        .collect();
    let mut shape = vec![1; x.rank()];
    shape[0] = b;
    let mask = Tensor::from_vec(mask, shape, x.device())?.to_dtype(x.dtype())?;
    x.broadcast_mul(&mask)
}

#[derive(Clone, Debug)]
pub(crate) struct EfficientNet {
    stem: ConvBn,
    stages: Vec<Vec<MbConv>>,
    head: ConvBn,
    dropout: f64,
    classifier: candle_nn::Linear,
}

impl EfficientNet {
    /// The member `scaling` describes for `spec`'s channels and classes at its base width
    /// ([`REFERENCE_WIDTH`] for torchvision's net).
    pub(crate) fn new(vb: VarBuilder, spec: &ModelSpec, scaling: Scaling) -> Result<Self> {
        let widths = Widths::new(scaling, spec.base_width);
        let features = vb.pp("features");
        let stem_c = widths.scaled(STAGES[0].in_c);
        let stem = ConvBn::new(
            features.pp("0"),
            spec.channels,
            stem_c,
            conv_cfg(3, 2),
            true,
        )?;
        let depth = |s: &Stage| (s.blocks as f64 * scaling.depth_mult).ceil() as usize;
        let total: usize = STAGES.iter().map(depth).sum();
        let mut block_id = 0;
        let mut in_c = stem_c;
        let mut stages = Vec::with_capacity(STAGES.len());
        for (i, s) in STAGES.iter().enumerate() {
            let vb_stage = features.pp((i + 1).to_string());
            let out_c = widths.scaled(s.out_c);
            let mut blocks = Vec::new();
            for j in 0..depth(s) {
                let cfg = BlockCfg {
                    in_c,
                    expanded: widths.expanded(in_c, s.expand_ratio),
                    out_c,
                    kernel: s.kernel,
                    stride: if j == 0 { s.stride } else { 1 },
                    drop_prob: STOCHASTIC_DEPTH * block_id as f64 / total as f64,
                };
                blocks.push(MbConv::new(vb_stage.pp(j.to_string()), cfg)?);
                in_c = out_c;
                block_id += 1;
            }
            stages.push(blocks);
        }
        let last = 4 * in_c;
        let head = ConvBn::new(features.pp("8"), in_c, last, conv_cfg(1, 1), true)?;
        let vb_fc = vb.pp("classifier").pp("1");
        let bound = 1.0 / (spec.classes as f64).sqrt();
        let init = Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let weight = vb_fc.get_with_hints((spec.classes, last), "weight", init)?;
        let bias = vb_fc.get_with_hints(spec.classes, "bias", Init::Const(0.0))?;
        Ok(EfficientNet {
            stem,
            stages,
            head,
            dropout: scaling.dropout,
            classifier: candle_nn::Linear::new(weight, Some(bias)),
        })
    }
}

impl Network for EfficientNet {
    fn forward_t(&self, x: &Tensor, train: bool, dropout_rng: &mut StdRng) -> Result<Tensor> {
        let mut x = self.stem.forward_t(x, train)?;
        for stage in &self.stages {
            for block in stage {
                x = block.forward_t(&x, train, dropout_rng)?;
            }
        }
        x = self.head.forward_t(&x, train)?;
        let mut x = avg_pool_global(&x)?;
        if train {
            x = dropout(&x, self.dropout, dropout_rng)?;
        }
        linear(&x, &self.classifier)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};
    use candle_nn::VarMap;
    use rand::SeedableRng;

    use super::*;
    use crate::model::init::SeededVarMap;
    use crate::model::tests::{images, spec, to_vec};
    use crate::model::{Backbone, Model};
    use crate::train::optim::{Optimizer, OptimizerConfig};

    const NAMES: [&str; 3] = ["efficientnet_b0", "efficientnet_b1", "efficientnet_b2"];

    fn backbone(name: &str) -> Backbone {
        Backbone::parse(name).unwrap()
    }

    /// Every variable (running statistics included) the constructor asks for, in order.
    fn shapes(spec: &ModelSpec) -> Vec<(String, Vec<usize>)> {
        crate::model::count::shapes(spec)
            .unwrap()
            .into_iter()
            .map(|(n, s)| (n, s.dims().to_vec()))
            .collect()
    }

    fn parameter_count(spec: &ModelSpec) -> usize {
        crate::model::count::parameter_count(spec).unwrap()
    }

    /// Reference: torchvision's documented `num_params` of `efficientnet_b0()`,
    /// `efficientnet_b1()`, `efficientnet_b2()` (= `sum(p.numel() for p in m.parameters())`,
    /// BN running statistics excluded): 3 channels, 1000 classes, 224x224, width 32.
    #[test]
    fn parameter_counts_match_torchvision() {
        for (name, expected) in NAMES.into_iter().zip([5_288_548, 7_794_184, 9_109_994]) {
            let s = spec(backbone(name), 3, 224, 224, 1000, REFERENCE_WIDTH);
            assert_eq!(parameter_count(&s), expected, "{name}");
            assert_eq!(backbone(name).default_width(), REFERENCE_WIDTH);
        }
        // The shape count is the model's count.
        let s = spec(backbone("efficientnet_b1"), 2, 20, 17, 7, 8);
        let m = Model::new(&s, &Device::Cpu, 0).unwrap();
        assert_eq!(parameter_count(&s), m.parameter_count());
    }

    /// Names and shapes of torchvision's state dicts (1000 classes), first and last included;
    /// torchvision's also hold a `num_batches_tracked` per BN, which this crate does not keep.
    #[test]
    fn variable_names_follow_torchvision() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a [usize])], &'a [&'a str]);
        let cases: [Case; 3] = [
            (
                "efficientnet_b0",
                &[
                    ("features.0.0.weight", &[32, 3, 3, 3]),
                    ("features.0.1.running_var", &[32]),
                    ("features.1.0.block.0.0.weight", &[32, 1, 3, 3]),
                    ("features.1.0.block.0.1.weight", &[32]),
                    ("features.1.0.block.1.fc1.weight", &[8, 32, 1, 1]),
                    ("features.1.0.block.1.fc1.bias", &[8]),
                    ("features.1.0.block.1.fc2.weight", &[32, 8, 1, 1]),
                    ("features.1.0.block.1.fc2.bias", &[32]),
                    ("features.1.0.block.2.0.weight", &[16, 32, 1, 1]),
                    ("features.1.0.block.2.1.bias", &[16]),
                    ("features.2.0.block.0.0.weight", &[96, 16, 1, 1]),
                    ("features.2.0.block.1.0.weight", &[96, 1, 3, 3]),
                    ("features.2.0.block.2.fc1.weight", &[4, 96, 1, 1]),
                    ("features.2.1.block.2.fc1.weight", &[6, 144, 1, 1]),
                    ("features.2.0.block.3.0.weight", &[24, 96, 1, 1]),
                    ("features.3.0.block.1.0.weight", &[144, 1, 5, 5]),
                    ("features.6.3.block.1.0.weight", &[1152, 1, 5, 5]),
                    ("features.7.0.block.3.0.weight", &[320, 1152, 1, 1]),
                    ("features.8.0.weight", &[1280, 320, 1, 1]),
                    ("features.8.1.running_mean", &[1280]),
                    ("classifier.1.weight", &[1000, 1280]),
                    ("classifier.1.bias", &[1000]),
                ],
                &[
                    "features.2.2.block.0.0.weight",
                    "features.1.0.block.3.0.weight",
                ],
            ),
            (
                "efficientnet_b1",
                &[
                    ("features.1.1.block.0.0.weight", &[16, 1, 3, 3]),
                    ("features.2.2.block.0.0.weight", &[144, 24, 1, 1]),
                    ("features.7.1.block.3.0.weight", &[320, 1920, 1, 1]),
                    ("classifier.1.weight", &[1000, 1280]),
                ],
                &["features.7.2.block.0.0.weight"],
            ),
            (
                "efficientnet_b2",
                &[
                    ("features.0.0.weight", &[32, 3, 3, 3]),
                    ("features.3.2.block.1.0.weight", &[288, 1, 5, 5]),
                    ("features.4.0.block.3.0.weight", &[88, 288, 1, 1]),
                    ("features.7.1.block.3.0.weight", &[352, 2112, 1, 1]),
                    ("features.8.0.weight", &[1408, 352, 1, 1]),
                    ("classifier.1.weight", &[1000, 1408]),
                ],
                &["features.6.5.block.0.0.weight"],
            ),
        ];
        for (name, expected, absent) in cases {
            let all = shapes(&spec(backbone(name), 3, 224, 224, 1000, REFERENCE_WIDTH));
            let first = &all[0];
            assert_eq!(
                (first.0.as_str(), &first.1[..]),
                ("features.0.0.weight", &[32, 3, 3, 3][..])
            );
            assert_eq!(all.last().unwrap().0, "classifier.1.bias", "{name}");
            for (var, shape) in expected {
                let found = all.iter().find(|(n, _)| n == var).map(|(_, s)| &s[..]);
                assert_eq!(found, Some(*shape), "{name} {var}");
            }
            for var in absent {
                assert!(
                    all.iter().all(|(n, _)| n != var),
                    "{name}: unexpected {var}"
                );
            }
            let unique: std::collections::HashSet<_> = all.iter().map(|(n, _)| n).collect();
            assert_eq!(unique.len(), all.len(), "{name}: duplicate names");
            assert!(all.iter().all(|(n, _)| !n.ends_with("conv.bias")));
        }
        // B0: stem (1 conv + 4 BN tensors), 16 blocks of which 15 expand (14 + 15 * 19),
        // head (5), classifier (2); 1 + 2 + 15 * 3 + 1 = 49 batch norms.
        let b0 = shapes(&spec(backbone("efficientnet_b0"), 3, 224, 224, 1000, 32));
        assert_eq!(b0.len(), 5 + 14 + 15 * 19 + 5 + 2);
        let norms = b0
            .iter()
            .filter(|(n, _)| n.ends_with(".running_mean"))
            .count();
        assert_eq!(norms, 49);
    }

    /// Every base width is torchvision's `_efficientnet_conf("efficientnet_b0", width_mult =
    /// w / 32)`: its stage input widths plus the last output width, and the expanded width of
    /// stage 2's first block (`MBConvConfig.adjust_channels(c, 6)`), as torchvision 0.29
    /// prints them.
    #[test]
    fn base_width_scales_the_channels() {
        let stages = |w: usize| -> Vec<usize> {
            let widths = Widths::new(Scaling::B0, w);
            let mut c: Vec<usize> = STAGES.iter().map(|s| widths.scaled(s.in_c)).collect();
            c.push(widths.scaled(STAGES[6].out_c));
            c
        };
        assert_eq!(stages(32), [32, 16, 24, 40, 80, 112, 192, 320]);
        assert_eq!(stages(16), [16, 8, 16, 24, 40, 56, 96, 160]);
        assert_eq!(stages(8), [8, 8, 8, 16, 24, 32, 48, 80]);
        assert_eq!(stages(1), [8, 8, 8, 8, 8, 8, 8, 16]);
        assert_eq!(stages(64), [64, 32, 48, 80, 160, 224, 384, 640]);
        for (w, expanded) in [(16, 48), (8, 48), (1, 48), (64, 192)] {
            let widths = Widths::new(Scaling::B0, w);
            assert_eq!(widths.expanded(widths.scaled(STAGES[1].in_c), 6), expanded);
        }
        // torchvision's `_make_divisible` at B2's width_mult 1.1.
        let b2 = Widths::new(Scaling::B2, 32);
        let got: Vec<usize> = [32, 16, 24, 40, 80, 112, 192, 320]
            .iter()
            .map(|&c| b2.scaled(c))
            .collect();
        assert_eq!(got, [32, 16, 24, 48, 88, 120, 208, 352]);
        assert_eq!(make_divisible(35.2, 8), 32);
        assert_eq!(make_divisible(3.0, 8), 8);
        assert_eq!(make_divisible(19.0, 8), 24, "16 would lose more than 10%");
    }

    #[test]
    fn forward_shapes_at_small_widths_and_odd_inputs() {
        for name in NAMES {
            for (w, c, h, wd) in [(4, 3, 32, 32), (4, 3, 17, 22), (8, 1, 9, 8), (1, 2, 1, 1)] {
                let m = Model::new(&spec(backbone(name), c, h, wd, 5, w), &Device::Cpu, 1).unwrap();
                let x = images(2, c, h, wd, 2);
                for train in [false, true] {
                    let y = m.forward(&x, train).unwrap();
                    assert_eq!(y.dims(), &[2, 5], "{name} w {w} {c}x{h}x{wd} train {train}");
                    assert!(to_vec(&y).iter().all(|v| v.is_finite()), "{name}");
                }
            }
        }
    }

    /// 5x5 depthwise convolutions on maps narrower than their padding match candle's
    /// reference convolution, values and gradients.
    #[test]
    fn depthwise_on_maps_narrower_than_the_padding_matches_the_reference() {
        use crate::model::kernels;
        let varmap = VarMap::new();
        let vb = SeededVarMap::var_builder(&varmap, 1, DType::F32, &Device::Cpu);
        for (h, w, stride) in [(1, 4, 1), (4, 1, 1), (1, 1, 1), (1, 3, 2), (5, 1, 2)] {
            let conv = Depthwise::new(vb.pp(format!("{h}{w}{stride}")), 3, 5, stride).unwrap();
            let x = candle_core::Var::from_tensor(&images(2, 3, h, w, 4)).unwrap();
            let run = |fast: bool| {
                kernels::set_fast_path(fast);
                let y = if fast {
                    conv.forward(x.as_tensor()).unwrap()
                } else {
                    depthwise_conv2d(x.as_tensor(), &conv.weight, None, stride, 2).unwrap()
                };
                let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
                kernels::set_fast_path(true);
                let dx = to_vec(grads.get(x.as_tensor()).unwrap());
                let dw = to_vec(grads.get(&conv.weight).unwrap());
                (y.dims().to_vec(), to_vec(&y), dx, dw)
            };
            let (fast, reference) = (run(true), run(false));
            assert_eq!(fast.0, reference.0, "{h}x{w} stride {stride}");
            for (a, b) in [
                (&fast.1, &reference.1),
                (&fast.2, &reference.2),
                (&fast.3, &reference.3),
            ] {
                assert_eq!(a.len(), b.len());
                for (u, v) in a.iter().zip(b.iter()) {
                    assert!(
                        (u - v).abs() < 1e-4 * (1.0 + v.abs()),
                        "{h}x{w} stride {stride}: {u} vs {v}"
                    );
                }
            }
        }
    }

    /// A residual block with stochastic depth 0.5: in training each image either keeps only
    /// its input (branch dropped) or adds twice the branch; in evaluation the branch is added
    /// unscaled and no random number is drawn.
    #[test]
    fn stochastic_depth_drops_whole_images_only_in_training() {
        let varmap = VarMap::new();
        let vb = SeededVarMap::var_builder(&varmap, 3, DType::F32, &Device::Cpu);
        let cfg = BlockCfg {
            in_c: 4,
            expanded: 8,
            out_c: 4,
            kernel: 3,
            stride: 1,
            drop_prob: 0.5,
        };
        let block = MbConv::new(vb, cfg).unwrap();
        let mut plain = block.clone();
        plain.drop_prob = 0.0;
        let x = images(16, 4, 5, 5, 1);
        let mut rng = StdRng::seed_from_u64(0);
        // With batch statistics the branch does not depend on the draws.
        let branch = (plain.forward_t(&x, true, &mut rng).unwrap() - &x).unwrap();
        let y = block.forward_t(&x, true, &mut rng).unwrap();
        let (mut dropped, mut kept) = (0, 0);
        for i in 0..16 {
            let row = |t: &Tensor| to_vec(&t.get(i).unwrap());
            let (xi, yi, bi) = (row(&x), row(&y), row(&branch));
            if yi == xi {
                dropped += 1;
            } else {
                kept += 1;
                for ((y, x), b) in yi.iter().zip(&xi).zip(&bi) {
                    assert!((y - (x + 2.0 * b)).abs() < 1e-5, "image {i}");
                }
            }
        }
        assert!(dropped > 0 && kept > 0, "dropped {dropped}, kept {kept}");
        // Evaluation: deterministic, unscaled, no draws.
        let mut rng = StdRng::seed_from_u64(7);
        let e1 = to_vec(&block.forward_t(&x, false, &mut rng).unwrap());
        let e2 = to_vec(&block.forward_t(&x, false, &mut rng).unwrap());
        assert_eq!(e1, e2);
        let p = to_vec(&plain.forward_t(&x, false, &mut rng).unwrap());
        assert_eq!(e1, p);
        assert_eq!(
            rng.random::<u64>(),
            StdRng::seed_from_u64(7).random::<u64>()
        );
    }

    /// The whole net without classifier dropout: two evaluations agree, two training passes
    /// differ (stochastic depth only; batch norm uses the batch statistics both times), and
    /// the same draws give the same output.
    #[test]
    fn stochastic_depth_is_on_in_training_and_off_in_evaluation() {
        let s = spec(backbone("efficientnet_b0"), 3, 16, 16, 4, 8);
        let varmap = VarMap::new();
        let vb = SeededVarMap::var_builder(&varmap, 2, DType::F32, &Device::Cpu);
        let no_dropout = Scaling {
            dropout: 0.0,
            ..Scaling::B0
        };
        let net = EfficientNet::new(vb, &s, no_dropout).unwrap();
        let x = images(8, 3, 16, 16, 2);
        let mut rng = StdRng::seed_from_u64(1);
        let e1 = to_vec(&net.forward_t(&x, false, &mut rng).unwrap());
        let e2 = to_vec(&net.forward_t(&x, false, &mut rng).unwrap());
        assert_eq!(e1, e2);
        let t1 = to_vec(&net.forward_t(&x, true, &mut rng).unwrap());
        let t2 = to_vec(&net.forward_t(&x, true, &mut rng).unwrap());
        assert_ne!(t1, t2, "fresh stochastic depth draws each training pass");
        let r1 = to_vec(
            &net.forward_t(&x, true, &mut StdRng::seed_from_u64(5))
                .unwrap(),
        );
        let r2 = to_vec(
            &net.forward_t(&x, true, &mut StdRng::seed_from_u64(5))
                .unwrap(),
        );
        assert_eq!(r1, r2);
        // Through the model (classifier dropout as well): evaluations agree.
        let m = Model::new(&s, &Device::Cpu, 3).unwrap();
        let e1 = to_vec(&m.forward(&x, false).unwrap());
        assert_eq!(e1, to_vec(&m.forward(&x, false).unwrap()));
        assert_ne!(
            to_vec(&m.forward(&x, true).unwrap()),
            to_vec(&m.forward(&x, true).unwrap())
        );
    }

    /// Gradients of the whole net (SiLU, squeeze-excitation, 5x5 depthwise, stochastic
    /// depth, dropout) are right: a step of `eps` down the gradient lowers the loss by
    /// `eps * |g|^2` to first order. The same draws are used each time (reseeded RNG).
    #[test]
    fn the_gradient_predicts_the_loss_change() {
        for (name, width) in [("efficientnet_b0", 8), ("efficientnet_b2", 4)] {
            let s = spec(backbone(name), 3, 16, 17, 3, width);
            let m = Model::new(&s, &Device::Cpu, 6).unwrap();
            let x = images(6, 3, 16, 17, 11);
            let y = Tensor::new(&[0u32, 1, 2, 0, 1, 2], &Device::Cpu).unwrap();
            let loss = |m: &Model| {
                m.reseed_dropout(99).unwrap();
                let logits = m.forward(&x, true).unwrap();
                candle_nn::loss::cross_entropy(&logits, &y).unwrap()
            };
            let l0 = loss(&m);
            let grads = l0.backward().unwrap();
            let l0 = l0.to_scalar::<f32>().unwrap() as f64;
            let vars = m.trainable_vars();
            let mut g_sq = 0.0;
            let mut steps = Vec::new();
            for v in &vars {
                let g = grads.get(v.as_tensor()).unwrap();
                g_sq += g
                    .sqr()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap() as f64;
                steps.push((v, v.as_tensor().copy().unwrap(), g.clone()));
            }
            // |g|^2 is of order 1e7 here (torchvision's initialisation, training-mode batch
            // norm on 6 images), so the step is tiny.
            let eps = 0.02 / g_sq;
            for (v, w, g) in &steps {
                v.set(&(w - (g * eps).unwrap()).unwrap()).unwrap();
            }
            let drop = l0 - loss(&m).to_scalar::<f32>().unwrap() as f64;
            assert!(
                (drop / 0.02 - 1.0).abs() < 0.15,
                "{name}: loss fell by {drop}, not 0.02"
            );
        }
    }

    /// Twelve Adam steps (lr 3e-4) on one fixed batch lower the loss (the same dropout and
    /// stochastic depth draws in every step and measurement): the median of the last five
    /// losses is below half the first. Not monotonically, and not at a fixed step: batch norm
    /// in training over 6 images of 1x1 maps in the last stages jumps, so the path is chaotic
    /// (after 6 steps efficientnet_b1 stood at 0.54x its first loss on the fast kernels and
    /// 0.53x on the reference path, each still above 2 at step 5; with batch norm's sums
    /// grouped 16 lanes wide instead of 8 it went 2.23, ..., 0.16, 0.25, 2.95, 0.45: one
    /// spike at step 11, hence the median rather than each of the last losses); plain SGD needs
    /// steps of about 1e-8: the gradient is huge at torchvision's initialisation (see
    /// `the_gradient_predicts_the_loss_change`), and its classifier initialisation,
    /// U(+-1/sqrt(classes)), gives logits of several units for 3 classes.
    #[test]
    fn training_steps_lower_the_loss() {
        let config = OptimizerConfig::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        };
        for name in NAMES {
            let m = Model::new(&spec(backbone(name), 3, 32, 32, 3, 8), &Device::Cpu, 6).unwrap();
            let x = images(6, 3, 32, 32, 11);
            let y = Tensor::new(&[0u32, 1, 2, 0, 1, 2], &Device::Cpu).unwrap();
            let mut opt = Optimizer::new(&config, m.trainable_vars(), 3e-4).unwrap();
            let loss = |m: &Model| {
                m.reseed_dropout(99).unwrap();
                let logits = m.forward(&x, true).unwrap();
                candle_nn::loss::cross_entropy(&logits, &y).unwrap()
            };
            let mut losses = vec![loss(&m).to_scalar::<f32>().unwrap()];
            for _ in 0..12 {
                opt.backward_step(&loss(&m)).unwrap();
                losses.push(loss(&m).to_scalar::<f32>().unwrap());
            }
            assert!(losses.iter().all(|l| l.is_finite()), "{name}: {losses:?}");
            let mut last = losses[8..].to_vec();
            last.sort_by(f32::total_cmp);
            assert!(last[2] < 0.5 * losses[0], "{name}: losses {losses:?}");
        }
    }
}
