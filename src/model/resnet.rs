//! ResNet-18/34 with torchvision's `BasicBlock` layout and variable names (`conv1`, `bn1`,
//! `layer1.0.conv1`, `layer1.0.bn1`, `layer2.0.downsample.0`, `layer2.0.downsample.1`, ...,
//! `fc`), widths `w, 2w, 4w, 8w`, batch norm, global average pooling and a linear head.
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
use candle_nn::{Linear, VarBuilder};

use super::layers::{linear, Conv, ConvCfg, InitScheme, Norm};
use super::ops::{add_relu, avg_pool_global, max_pool2d};

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

#[derive(Clone, Debug)]
struct BasicBlock {
    conv1: Conv,
    bn1: Norm,
    conv2: Conv,
    bn2: Norm,
    downsample: Option<(Conv, Norm)>,
}

impl BasicBlock {
    fn new(vb: VarBuilder, in_c: usize, out_c: usize, stride: usize) -> Result<Self> {
        let conv1 = Conv::new(vb.pp("conv1"), in_c, out_c, conv_cfg(3, stride, 1))?;
        let bn1 = Norm::new(vb.pp("bn1"), out_c)?;
        let conv2 = Conv::new(vb.pp("conv2"), out_c, out_c, conv_cfg(3, 1, 1))?;
        let bn2 = Norm::new(vb.pp("bn2"), out_c)?;
        let downsample = if stride != 1 || in_c != out_c {
            let vb = vb.pp("downsample");
            let conv = Conv::new(vb.pp("0"), in_c, out_c, conv_cfg(1, stride, 0))?;
            let bn = Norm::new(vb.pp("1"), out_c)?;
            Some((conv, bn))
        } else {
            None
        };
        Ok(BasicBlock {
            conv1,
            bn1,
            conv2,
            bn2,
            downsample,
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let out = self.bn1.forward_relu_t(&self.conv1.forward(x)?, train)?;
        let out = self.bn2.forward_t(&self.conv2.forward(&out)?, train)?;
        let identity = match &self.downsample {
            Some((conv, bn)) => bn.forward_t(&conv.forward(x)?, train)?,
            None => x.clone(),
        };
        add_relu(&out, &identity)
    }
}

#[derive(Clone, Debug)]
pub(crate) struct ResNet {
    conv1: Conv,
    bn1: Norm,
    stem_pool: bool,
    layers: Vec<Vec<BasicBlock>>,
    fc: Linear,
}

impl ResNet {
    /// `blocks` per stage: `[2, 2, 2, 2]` for ResNet-18, `[3, 4, 6, 3]` for ResNet-34.
    pub(crate) fn new(
        vb: VarBuilder,
        blocks: [usize; 4],
        channels: usize,
        height: usize,
        width: usize,
        classes: usize,
        w: usize,
    ) -> Result<Self> {
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
        for (stage, &n) in blocks.iter().enumerate() {
            let out_c = w << stage;
            let vb_stage = vb.pp(format!("layer{}", stage + 1));
            let mut stage_blocks = Vec::with_capacity(n);
            for i in 0..n {
                let stride = if stage > 0 && i == 0 { 2 } else { 1 };
                stage_blocks.push(BasicBlock::new(
                    vb_stage.pp(i.to_string()),
                    in_c,
                    out_c,
                    stride,
                )?);
                in_c = out_c;
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

    pub(crate) fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
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
