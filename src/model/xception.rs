//! Xception (Chollet 2017) as Keras' `Xception` application builds it, with the module and
//! variable names of its PyTorch twin, timm's `legacy_xception` (`timm/models/xception.py`,
//! whose weights were ported from Keras): these names are the checkpoint format.
//!
//! * Stem: `conv1` 3x3 stride 2 without padding + `bn1` + ReLU, `conv2` 3x3 without padding
//!   + `bn2` + ReLU.
//! * `block1`..`block12`: each a `rep` sequence of ReLU, separable convolution (depthwise 3x3
//!   `rep.N.conv1`, then pointwise 1x1 `rep.N.pointwise`) and BN, numbered like timm's
//!   `nn.Sequential` (ReLU, conv, BN at `3i`, `3i + 1`, `3i + 2`; `block1` starts without the
//!   ReLU, so its indices are one lower: `block1.rep.0` is its first convolution). Blocks 1-3
//!   and 12 end in a 3x3 stride-2 max-pool with padding 1 and have a 1x1 stride-2 projection
//!   shortcut (`skip` + `skipbn`); blocks 4-11 (the middle flow) add their input unchanged.
//!   The sum is not followed by a ReLU: the next block starts with one.
//! * Exit: separable `conv3` + `bn3` + ReLU, separable `conv4` + `bn4` + ReLU, global average
//!   pooling, `fc`.
//!
//! Widths: the real network has a 32-channel stem and blocks of 64..2048 channels. With base
//! width `w` every width `c` becomes `ceil(c * w / 32)`, so `w = 32` ([`REFERENCE_WIDTH`]) is
//! the real network and tests can use tiny ones.
//!
//! Initialisation and batch norm follow timm (kaiming-normal fan-out convolutions, PyTorch's
//! BN defaults and linear initialisation), not Keras (Glorot-uniform, BN eps 1e-3).
//! Keras needs inputs of at least [`MIN_SIZE`] pixels a side.
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;
use rand::rngs::StdRng;

use super::layers::{linear, Conv, ConvCfg, DepthwiseConv, InitScheme, Linear, Norm};
use super::ops::{avg_pool_global, max_pool2d, relu};
use super::{BackboneInfo, ModelSpec, Network};

/// Smallest image side Keras' `Xception` accepts.
pub const MIN_SIZE: usize = 71;

/// `xception`: 8.4G multiply-adds at 299x299, about 4.7G at 224x224, so its cost scales
/// from resnet18's (1.8G, cost 4) like the ResNets' in [`super::resnet`].
pub(crate) static XCEPTION: BackboneInfo = BackboneInfo {
    name: "xception",
    default_width: REFERENCE_WIDTH,
    min_size: MIN_SIZE,
    cost: 10.0,
    family: "timm legacy_xception",
    stage_of: super::registry::top_level,
    default_input: 299,
    build: |vb, spec| Ok(Box::new(Xception::new(vb, spec)?)),
};

/// The stem width of the real network: widths scale by `w / REFERENCE_WIDTH`.
pub const REFERENCE_WIDTH: usize = 32;

/// The twelve blocks at the reference width: input and output channels, number of separable
/// convolutions, stride.
const BLOCKS: [(usize, usize, usize, usize); 12] = [
    (64, 128, 2, 2),
    (128, 256, 2, 2),
    (256, 728, 2, 2),
    (728, 728, 3, 1),
    (728, 728, 3, 1),
    (728, 728, 3, 1),
    (728, 728, 3, 1),
    (728, 728, 3, 1),
    (728, 728, 3, 1),
    (728, 728, 3, 1),
    (728, 728, 3, 1),
    (728, 1024, 2, 2),
];

/// Width `channels` of the real network scaled to base width `w`.
fn scaled(channels: usize, w: usize) -> usize {
    (channels * w).div_ceil(REFERENCE_WIDTH)
}

fn conv_cfg(kernel: usize, stride: usize, padding: usize) -> ConvCfg {
    ConvCfg {
        kernel,
        stride,
        padding,
        bias: false,
        init: InitScheme::TorchvisionConv,
    }
}

/// A depthwise 3x3 convolution (`conv1`) followed by a pointwise 1x1 one (`pointwise`).
#[derive(Clone, Debug)]
struct SeparableConv {
    conv1: DepthwiseConv,
    pointwise: Conv,
}

impl SeparableConv {
    fn new(vb: VarBuilder, in_c: usize, out_c: usize) -> Result<Self> {
        Ok(SeparableConv {
            conv1: DepthwiseConv::new(vb.pp("conv1"), in_c, conv_cfg(3, 1, 1))?,
            pointwise: Conv::new(vb.pp("pointwise"), in_c, out_c, conv_cfg(1, 1, 0))?,
        })
    }
}

impl Module for SeparableConv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.pointwise.forward(&self.conv1.forward(x)?)
    }
}

/// The shape of one block, as timm's `Block` arguments.
#[derive(Clone, Copy, Debug)]
struct BlockCfg {
    in_c: usize,
    out_c: usize,
    reps: usize,
    stride: usize,
    /// False for `block1`, which follows the stem's ReLU.
    start_with_relu: bool,
    /// False for `block12`, which widens in its last convolution instead of its first.
    grow_first: bool,
}

#[derive(Clone, Debug)]
struct Block {
    start_with_relu: bool,
    rep: Vec<(SeparableConv, Norm)>,
    stride: usize,
    skip: Option<(Conv, Norm)>,
}

impl Block {
    fn new(vb: VarBuilder, cfg: BlockCfg) -> Result<Self> {
        let BlockCfg { in_c, out_c, .. } = cfg;
        let skip = if in_c != out_c || cfg.stride != 1 {
            let conv = Conv::new(vb.pp("skip"), in_c, out_c, conv_cfg(1, cfg.stride, 0))?;
            Some((conv, Norm::new(vb.pp("skipbn"), out_c)?))
        } else {
            None
        };
        // Index of rep i's convolution in timm's Sequential (ReLU, conv, BN per rep).
        let first = usize::from(cfg.start_with_relu);
        let vb_rep = vb.pp("rep");
        let mut rep = Vec::with_capacity(cfg.reps);
        for i in 0..cfg.reps {
            let (inc, outc) = match (cfg.grow_first, i) {
                (true, 0) => (in_c, out_c),
                (true, _) => (out_c, out_c),
                (false, i) if i + 1 < cfg.reps => (in_c, in_c),
                (false, _) => (in_c, out_c),
            };
            let at = 3 * i + first;
            let conv = SeparableConv::new(vb_rep.pp(at.to_string()), inc, outc)?;
            let bn = Norm::new(vb_rep.pp((at + 1).to_string()), outc)?;
            rep.push((conv, bn));
        }
        Ok(Block {
            start_with_relu: cfg.start_with_relu,
            rep,
            stride: cfg.stride,
            skip,
        })
    }

    fn forward_t(&self, input: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = if self.start_with_relu {
            relu(input)?
        } else {
            input.clone()
        };
        for (i, (conv, bn)) in self.rep.iter().enumerate() {
            let y = conv.forward(&x)?;
            // The ReLU opening the next rep is fused into this batch norm.
            x = if i + 1 < self.rep.len() {
                bn.forward_relu_t(&y, train)?
            } else {
                bn.forward_t(&y, train)?
            };
        }
        if self.stride != 1 {
            x = max_pool2d(&x, 3, self.stride, 1)?;
        }
        let skip = match &self.skip {
            Some((conv, bn)) => bn.forward_t(&conv.forward(input)?, train)?,
            None => input.clone(),
        };
        x + skip
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Xception {
    conv1: Conv,
    bn1: Norm,
    conv2: Conv,
    bn2: Norm,
    blocks: Vec<Block>,
    conv3: SeparableConv,
    bn3: Norm,
    conv4: SeparableConv,
    bn4: Norm,
    fc: Linear,
}

impl Xception {
    /// Xception for `spec`'s channels and classes at its base width ([`REFERENCE_WIDTH`] for
    /// the real network). Any image of at least [`MIN_SIZE`] a side fits: the head pools
    /// globally.
    pub(crate) fn new(vb: VarBuilder, spec: &ModelSpec) -> Result<Self> {
        let (channels, classes, w) = (spec.channels, spec.classes, spec.base_width);
        let c = |reference: usize| scaled(reference, w);
        // Built in the order the input flows through them: transfer learning freezes the
        // variables built before the stage it unfreezes from.
        let conv1 = Conv::new(vb.pp("conv1"), channels, c(32), conv_cfg(3, 2, 0))?;
        let bn1 = Norm::new(vb.pp("bn1"), c(32))?;
        let conv2 = Conv::new(vb.pp("conv2"), c(32), c(64), conv_cfg(3, 1, 0))?;
        let bn2 = Norm::new(vb.pp("bn2"), c(64))?;
        let mut blocks = Vec::with_capacity(BLOCKS.len());
        for (i, &(in_c, out_c, reps, stride)) in BLOCKS.iter().enumerate() {
            let cfg = BlockCfg {
                in_c: c(in_c),
                out_c: c(out_c),
                reps,
                stride,
                start_with_relu: i > 0,
                grow_first: i + 1 < BLOCKS.len(),
            };
            blocks.push(Block::new(vb.pp(format!("block{}", i + 1)), cfg)?);
        }
        Ok(Xception {
            conv1,
            bn1,
            conv2,
            bn2,
            blocks,
            conv3: SeparableConv::new(vb.pp("conv3"), c(1024), c(1536))?,
            bn3: Norm::new(vb.pp("bn3"), c(1536))?,
            conv4: SeparableConv::new(vb.pp("conv4"), c(1536), c(2048))?,
            bn4: Norm::new(vb.pp("bn4"), c(2048))?,
            fc: linear(vb.pp("fc"), c(2048), classes, InitScheme::Torch)?,
        })
    }
}

impl Network for Xception {
    fn forward_t(&self, x: &Tensor, train: bool, _dropout_rng: &mut StdRng) -> Result<Tensor> {
        let mut x = self.bn1.forward_relu_t(&self.conv1.forward(x)?, train)?;
        x = self.bn2.forward_relu_t(&self.conv2.forward(&x)?, train)?;
        for block in &self.blocks {
            x = block.forward_t(&x, train)?;
        }
        x = self.bn3.forward_relu_t(&self.conv3.forward(&x)?, train)?;
        x = self.bn4.forward_relu_t(&self.conv4.forward(&x)?, train)?;
        self.fc.forward(&avg_pool_global(&x)?)
    }
}
