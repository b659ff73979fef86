//! ResNets with torchvision's layout and variable names (`conv1`, `bn1`, `layer1.0.conv1`,
//! `layer1.0.bn1`, `layer2.0.downsample.0`, `layer2.0.downsample.1`, ..., `fc`): stages of
//! width `w, 2w, 4w, 8w`, batch norm, global average pooling and a linear head.
//!
//! * ResNet-18/34 stack `BasicBlock`s: two 3x3 convolutions (`conv1`/`bn1`, `conv2`/`bn2`).
//! * ResNet-50/101/152 stack `Bottleneck`s: 1x1 reduce to the stage width, 3x3, 1x1 expand to
//!   four times the stage width (`conv1`..`conv3`, `bn1`..`bn3`). The stride sits on the 3x3
//!   convolution, as in torchvision (the "v1.5" variant), not on the first 1x1.
//!
//! A block gets a projection shortcut (`downsample.0` 1x1 convolution, `downsample.1` BN)
//! when it changes the resolution or the width, as in torchvision.
//!
//! Stem: when `min(height, width) >= 96` ([`IMAGENET_STEM_MIN_SIZE`]), torchvision's 7x7
//! stride-2 convolution + BN + ReLU + 3x3 stride-2 max-pool with padding 1; for smaller
//! images (MNIST, CIFAR) a CIFAR-style 3x3 stride-1 convolution + BN + ReLU without max-pool,
//! which keeps enough resolution for the four stages. Both stems name their variables
//! `conv1`/`bn1`.
//!
//! Initialisation follows torchvision: kaiming-normal (fan-out, ReLU) convolutions without
//! bias, BN weight 1 / bias 0, PyTorch's default uniform initialisation for `fc`.
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;
use rand::rngs::StdRng;

use super::layers::{linear, Conv, ConvCfg, InitScheme, Linear, Norm};
use super::ops::{add_relu, avg_pool_global, max_pool2d};
use super::{BackboneInfo, ModelSpec, Network};

// The registry's entries. Costs scale from resnet18's 4 by torchvision's multiply-adds per
// 224x224 image: resnet18 1.8G, resnet34 3.6G, resnet50 4.1G, resnet101 7.8G, resnet152
// 11.5G. Any image side works: the CIFAR stem keeps the resolution of small ones.

pub(crate) static RESNET18: BackboneInfo = BackboneInfo {
    name: "resnet18",
    default_width: 64,
    min_size: 1,
    cost: 4.0,
    family: "torchvision",
    stage_of: super::registry::top_level,
    default_input: 224,
    build: |vb, spec| build(vb, spec, Layout::RESNET18),
};

pub(crate) static RESNET34: BackboneInfo = BackboneInfo {
    name: "resnet34",
    default_width: 64,
    min_size: 1,
    cost: 8.0,
    family: "torchvision",
    stage_of: super::registry::top_level,
    default_input: 224,
    build: |vb, spec| build(vb, spec, Layout::RESNET34),
};

pub(crate) static RESNET50: BackboneInfo = BackboneInfo {
    name: "resnet50",
    default_width: 64,
    min_size: 1,
    cost: 9.0,
    family: "torchvision",
    stage_of: super::registry::top_level,
    default_input: 224,
    build: |vb, spec| build(vb, spec, Layout::RESNET50),
};

pub(crate) static RESNET101: BackboneInfo = BackboneInfo {
    name: "resnet101",
    default_width: 64,
    min_size: 1,
    cost: 17.0,
    family: "torchvision",
    stage_of: super::registry::top_level,
    default_input: 224,
    build: |vb, spec| build(vb, spec, Layout::RESNET101),
};

pub(crate) static RESNET152: BackboneInfo = BackboneInfo {
    name: "resnet152",
    default_width: 64,
    min_size: 1,
    cost: 25.0,
    family: "torchvision",
    stage_of: super::registry::top_level,
    default_input: 224,
    build: |vb, spec| build(vb, spec, Layout::RESNET152),
};

fn build(vb: VarBuilder, spec: &ModelSpec, layout: Layout) -> Result<Box<dyn Network>> {
    Ok(Box::new(ResNet::new(vb, layout, spec)?))
}

/// Images with both sides at least this large get torchvision's ImageNet stem.
pub const IMAGENET_STEM_MIN_SIZE: usize = 96;

fn conv_cfg(kernel: usize, stride: usize, padding: usize) -> ConvCfg {
    ConvCfg {
        kernel,
        stride,
        padding,
        bias: false,
        init: InitScheme::TorchvisionConv,
    }
}

/// The residual block a ResNet stacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BlockKind {
    /// Two 3x3 convolutions at the stage width (ResNet-18/34).
    Basic,
    /// 1x1 reduce, strided 3x3, 1x1 expand to four times the stage width (ResNet-50/101/152).
    Bottleneck,
}

impl BlockKind {
    /// Output channels of a block per channel of its stage width (torchvision's `expansion`).
    fn expansion(self) -> usize {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }
}

/// A ResNet's depth: its block kind and the number of blocks in each of the four stages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) kind: BlockKind,
    pub(crate) blocks: [usize; 4],
}

impl Layout {
    pub(crate) const RESNET18: Layout = Layout::new(BlockKind::Basic, [2, 2, 2, 2]);
    pub(crate) const RESNET34: Layout = Layout::new(BlockKind::Basic, [3, 4, 6, 3]);
    pub(crate) const RESNET50: Layout = Layout::new(BlockKind::Bottleneck, [3, 4, 6, 3]);
    pub(crate) const RESNET101: Layout = Layout::new(BlockKind::Bottleneck, [3, 4, 23, 3]);
    pub(crate) const RESNET152: Layout = Layout::new(BlockKind::Bottleneck, [3, 8, 36, 3]);

    const fn new(kind: BlockKind, blocks: [usize; 4]) -> Layout {
        Layout { kind, blocks }
    }
}

/// The projection shortcut (`downsample.0` conv 1x1, `downsample.1` BN), when the block
/// changes the resolution or the width.
fn downsample(
    vb: VarBuilder,
    in_c: usize,
    out_c: usize,
    stride: usize,
) -> Result<Option<(Conv, Norm)>> {
    if stride == 1 && in_c == out_c {
        return Ok(None);
    }
    let vb = vb.pp("downsample");
    let conv = Conv::new(vb.pp("0"), in_c, out_c, conv_cfg(1, stride, 0))?;
    let bn = Norm::new(vb.pp("1"), out_c)?;
    Ok(Some((conv, bn)))
}

/// The block's input, projected by the shortcut if it has one.
fn identity(downsample: &Option<(Conv, Norm)>, x: &Tensor, train: bool) -> Result<Tensor> {
    match downsample {
        Some((conv, bn)) => bn.forward_t(&conv.forward(x)?, train),
        None => Ok(x.clone()),
    }
}

#[derive(Clone, Debug)]
struct BasicBlock {
    conv1: Conv,
    bn1: Norm,
    conv2: Conv,
    bn2: Norm,
    downsample: Option<(Conv, Norm)>,
}

impl BasicBlock {
    fn new(vb: VarBuilder, in_c: usize, planes: usize, stride: usize) -> Result<Self> {
        Ok(BasicBlock {
            conv1: Conv::new(vb.pp("conv1"), in_c, planes, conv_cfg(3, stride, 1))?,
            bn1: Norm::new(vb.pp("bn1"), planes)?,
            conv2: Conv::new(vb.pp("conv2"), planes, planes, conv_cfg(3, 1, 1))?,
            bn2: Norm::new(vb.pp("bn2"), planes)?,
            downsample: downsample(vb, in_c, planes, stride)?,
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let out = self.bn1.forward_relu_t(&self.conv1.forward(x)?, train)?;
        let out = self.bn2.forward_t(&self.conv2.forward(&out)?, train)?;
        add_relu(&out, &identity(&self.downsample, x, train)?)
    }
}

#[derive(Clone, Debug)]
struct Bottleneck {
    conv1: Conv,
    bn1: Norm,
    conv2: Conv,
    bn2: Norm,
    conv3: Conv,
    bn3: Norm,
    downsample: Option<(Conv, Norm)>,
}

impl Bottleneck {
    fn new(vb: VarBuilder, in_c: usize, planes: usize, stride: usize) -> Result<Self> {
        let out_c = planes * BlockKind::Bottleneck.expansion();
        Ok(Bottleneck {
            conv1: Conv::new(vb.pp("conv1"), in_c, planes, conv_cfg(1, 1, 0))?,
            bn1: Norm::new(vb.pp("bn1"), planes)?,
            conv2: Conv::new(vb.pp("conv2"), planes, planes, conv_cfg(3, stride, 1))?,
            bn2: Norm::new(vb.pp("bn2"), planes)?,
            conv3: Conv::new(vb.pp("conv3"), planes, out_c, conv_cfg(1, 1, 0))?,
            bn3: Norm::new(vb.pp("bn3"), out_c)?,
            downsample: downsample(vb, in_c, out_c, stride)?,
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let out = self.bn1.forward_relu_t(&self.conv1.forward(x)?, train)?;
        let out = self.bn2.forward_relu_t(&self.conv2.forward(&out)?, train)?;
        let out = self.bn3.forward_t(&self.conv3.forward(&out)?, train)?;
        add_relu(&out, &identity(&self.downsample, x, train)?)
    }
}

#[derive(Clone, Debug)]
enum Block {
    Basic(BasicBlock),
    Bottleneck(Bottleneck),
}

impl Block {
    /// A block of `kind` reading `in_c` channels at stage width `planes`; it outputs
    /// `planes * kind.expansion()` channels.
    fn new(
        vb: VarBuilder,
        kind: BlockKind,
        in_c: usize,
        planes: usize,
        stride: usize,
    ) -> Result<Self> {
        Ok(match kind {
            BlockKind::Basic => Block::Basic(BasicBlock::new(vb, in_c, planes, stride)?),
            BlockKind::Bottleneck => Block::Bottleneck(Bottleneck::new(vb, in_c, planes, stride)?),
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            Block::Basic(block) => block.forward_t(x, train),
            Block::Bottleneck(block) => block.forward_t(x, train),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct ResNet {
    conv1: Conv,
    bn1: Norm,
    stem_pool: bool,
    layers: Vec<Vec<Block>>,
    fc: Linear,
}

impl ResNet {
    /// A ResNet of `layout` (e.g. [`Layout::RESNET50`]) for `spec`, whose base width is the
    /// stem's (64 in torchvision).
    pub(crate) fn new(vb: VarBuilder, layout: Layout, spec: &ModelSpec) -> Result<Self> {
        let (channels, height, width) = (spec.channels, spec.height, spec.width);
        let (classes, w) = (spec.classes, spec.base_width);
        let imagenet = height.min(width) >= IMAGENET_STEM_MIN_SIZE;
        let stem = if imagenet {
            conv_cfg(7, 2, 3)
        } else {
            conv_cfg(3, 1, 1)
        };
        let conv1 = Conv::new(vb.pp("conv1"), channels, w, stem)?;
        let bn1 = Norm::new(vb.pp("bn1"), w)?;
        let mut layers = Vec::with_capacity(4);
        let mut in_c = w;
        for (stage, &n) in layout.blocks.iter().enumerate() {
            let planes = w << stage;
            let vb_stage = vb.pp(format!("layer{}", stage + 1));
            let mut stage_blocks = Vec::with_capacity(n);
            for i in 0..n {
                let stride = if stage > 0 && i == 0 { 2 } else { 1 };
                let vb_block = vb_stage.pp(i.to_string());
                stage_blocks.push(Block::new(vb_block, layout.kind, in_c, planes, stride)?);
                in_c = planes * layout.kind.expansion();
            }
            layers.push(stage_blocks);
        }
        let fc = linear(vb.pp("fc"), in_c, classes, InitScheme::Torch)?;
        Ok(ResNet {
            conv1,
            bn1,
            stem_pool: imagenet,
            layers,
            fc,
        })
    }
}

impl Network for ResNet {
    fn forward_t(&self, x: &Tensor, train: bool, _dropout_rng: &mut StdRng) -> Result<Tensor> {
        let mut x = self.bn1.forward_relu_t(&self.conv1.forward(x)?, train)?;
        if self.stem_pool {
            x = max_pool2d(&x, 3, 2, 1)?;
        }
        for stage in &self.layers {
            for block in stage {
                x = block.forward_t(&x, train)?;
            }
        }
        self.fc.forward(&avg_pool_global(&x)?)
    }
}
