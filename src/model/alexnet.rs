//! torchvision's AlexNet (the "one weird trick" variant torchvision ships), with its layout
//! and variable names.
//!
//! `features`: `0` Conv 11x11 stride 4 padding 2 (64), ReLU, MaxPool 3/2, `3` Conv 5x5
//! padding 2 (192), ReLU, MaxPool 3/2, `6` Conv 3x3 (384), ReLU, `8` Conv 3x3 (256), ReLU,
//! `10` Conv 3x3 (256), ReLU, MaxPool 3/2; then `AdaptiveAvgPool2d((6, 6))` and `classifier`:
//! Dropout 0.5, `1` Linear(256*6*6, 4096), ReLU, Dropout 0.5, `4` Linear(4096, 4096), ReLU,
//! `6` Linear(4096, classes).
//!
//! The base width `w` (64 in torchvision) scales every channel count by `w / 64` and the
//! classifier's hidden size to `64w`. Images need at least 63x63 (the last max-pool must see
//! a 3x3 map). Initialisation is PyTorch's default, as torchvision leaves it.
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;
use rand::rngs::StdRng;

use super::layers::{dropout, linear, Conv, ConvCfg, InitScheme, Linear};
use super::ops::{adaptive_avg_pool2d, max_pool2d, relu};
use super::{BackboneInfo, ModelSpec, Network};

/// Smallest height/width AlexNet accepts: 63 -> 15 (conv) -> 7 -> 3 -> 1 (pools).
pub(crate) const MIN_SIZE: usize = 63;

/// Side of the adaptive average pool's output, the classifier's input grid.
const POOLED: usize = 6;

/// `alexnet`: 0.71G multiply-adds per 224x224 image, cost 2 next to resnet18's 4 at 1.8G
/// (its large classifier weighs more than its multiply-adds say).
pub(crate) static ALEXNET: BackboneInfo = BackboneInfo {
    name: "alexnet",
    default_width: 64,
    min_size: MIN_SIZE,
    cost: 2.0,
    family: "torchvision",
    stage_of: super::registry::indexed,
    default_input: 224,
    build: |vb, spec| Ok(Box::new(AlexNet::new(vb, spec)?)),
};

#[derive(Clone, Debug)]
pub(crate) struct AlexNet {
    convs: [Conv; 5],
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
}

fn conv_cfg(kernel: usize, stride: usize, padding: usize) -> ConvCfg {
    ConvCfg {
        kernel,
        stride,
        padding,
        bias: true,
        init: InitScheme::Torch,
    }
}

impl AlexNet {
    fn new(vb: VarBuilder, spec: &ModelSpec) -> Result<Self> {
        let w = spec.base_width;
        let c = |channels: usize| channels * w / 64;
        let f = vb.pp("features");
        let convs = [
            Conv::new(f.pp(0), spec.channels, c(64), conv_cfg(11, 4, 2))?,
            Conv::new(f.pp(3), c(64), c(192), conv_cfg(5, 1, 2))?,
            Conv::new(f.pp(6), c(192), c(384), conv_cfg(3, 1, 1))?,
            Conv::new(f.pp(8), c(384), c(256), conv_cfg(3, 1, 1))?,
            Conv::new(f.pp(10), c(256), c(256), conv_cfg(3, 1, 1))?,
        ];
        let (hidden, vb_classifier) = (64 * w, vb.pp("classifier"));
        let fc = |i: usize, in_dim, out_dim| {
            linear(vb_classifier.pp(i), in_dim, out_dim, InitScheme::Torch)
        };
        Ok(AlexNet {
            convs,
            fc1: fc(1, c(256) * POOLED * POOLED, hidden)?,
            fc2: fc(4, hidden, hidden)?,
            fc3: fc(6, hidden, spec.classes)?,
        })
    }
}

impl Network for AlexNet {
    fn forward_t(&self, x: &Tensor, train: bool, rng: &mut StdRng) -> Result<Tensor> {
        let [conv0, conv3, conv6, conv8, conv10] = &self.convs;
        let x = max_pool2d(&relu(&conv0.forward(x)?)?, 3, 2, 0)?;
        let x = max_pool2d(&relu(&conv3.forward(&x)?)?, 3, 2, 0)?;
        let x = relu(&conv6.forward(&x)?)?;
        let x = relu(&conv8.forward(&x)?)?;
        let x = max_pool2d(&relu(&conv10.forward(&x)?)?, 3, 2, 0)?;
        let x = adaptive_avg_pool2d(&x, POOLED, POOLED)?.flatten_from(1)?;
        let drop = |x: Tensor, rng: &mut StdRng| match train {
            true => dropout(&x, 0.5, rng),
            false => Ok(x),
        };
        let x = relu(&self.fc1.forward(&drop(x, rng)?)?)?;
        let x = relu(&self.fc2.forward(&drop(x, rng)?)?)?;
        self.fc3.forward(&x)
    }
}
