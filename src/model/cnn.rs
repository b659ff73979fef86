//! The users' Keras baseline CNN, with base width `w` (32 in the original):
//!
//! ```text
//! Conv2D(w, 3x3, same) + ReLU, MaxPool 2x2, Dropout 0.25,
//! Conv2D(2w, 3x3, same) + ReLU, Conv2D(2w, 3x3, same) + ReLU, MaxPool 2x2, Dropout 0.25,
//! Flatten, Dense(16w) + ReLU, Dropout 0.5, Dense(classes)
//! ```
//!
//! Pooling floors odd sizes (Keras "valid"), so any input of at least 4x4 works. Weights use
//! Keras' defaults (Glorot-uniform kernels, zero biases). Flatten is in NCHW (C, H, W) order
//! rather than Keras' NHWC order; the parameter count is the same. Variable names: `conv1`,
//! `conv2`, `conv3`, `fc1`, `fc2`.
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;
use rand::rngs::StdRng;

use super::layers::{dropout, linear, Conv, ConvCfg, InitScheme, Linear};
use super::ops::{max_pool2d, relu};
use super::{BackboneInfo, ModelSpec, Network};

/// Smallest height/width the CNN accepts (two 2x2 poolings must leave at least 1x1).
pub(crate) const MIN_SIZE: usize = 4;

/// `cnn`: the unit of the scheduler's cost estimates.
pub(crate) static CNN: BackboneInfo = BackboneInfo {
    name: "cnn",
    default_width: 32,
    min_size: MIN_SIZE,
    cost: 1.0,
    family: "sweep",
    stage_of: super::registry::top_level,
    default_input: 28,
    build: |vb, spec| Ok(Box::new(Cnn::new(vb, spec)?)),
};

#[derive(Clone, Debug)]
pub(crate) struct Cnn {
    conv1: Conv,
    conv2: Conv,
    conv3: Conv,
    fc1: Linear,
    fc2: Linear,
}

impl Cnn {
    /// The CNN `spec` describes (its base width is the first convolution's).
    pub(crate) fn new(vb: VarBuilder, spec: &ModelSpec) -> Result<Self> {
        let (channels, height, width) = (spec.channels, spec.height, spec.width);
        let (classes, w) = (spec.classes, spec.base_width);
        if height < MIN_SIZE || width < MIN_SIZE {
            candle_core::bail!(
                "cnn needs inputs of at least {MIN_SIZE}x{MIN_SIZE}, got {height}x{width}"
            )
        }
        let same = ConvCfg {
            kernel: 3,
            stride: 1,
            padding: 1,
            bias: true,
            init: InitScheme::Keras,
        };
        let conv1 = Conv::new(vb.pp("conv1"), channels, w, same)?;
        let conv2 = Conv::new(vb.pp("conv2"), w, 2 * w, same)?;
        let conv3 = Conv::new(vb.pp("conv3"), 2 * w, 2 * w, same)?;
        let flat = 2 * w * (height / 2 / 2) * (width / 2 / 2);
        let fc1 = linear(vb.pp("fc1"), flat, 16 * w, InitScheme::Keras)?;
        let fc2 = linear(vb.pp("fc2"), 16 * w, classes, InitScheme::Keras)?;
        Ok(Cnn {
            conv1,
            conv2,
            conv3,
            fc1,
            fc2,
        })
    }
}

impl Network for Cnn {
    /// Logits for `x` (B, C, H, W); `rng` drives dropout and is only used when training.
    fn forward_t(&self, x: &Tensor, train: bool, rng: &mut StdRng) -> Result<Tensor> {
        let drop = |x: Tensor, p: f64, rng: &mut StdRng| -> Result<Tensor> {
            if train {
                dropout(&x, p, rng)
            } else {
                Ok(x)
            }
        };
        let x = relu(&self.conv1.forward(x)?)?;
        let x = drop(max_pool2d(&x, 2, 2, 0)?, 0.25, rng)?;
        let x = relu(&self.conv2.forward(&x)?)?;
        let x = relu(&self.conv3.forward(&x)?)?;
        let x = drop(max_pool2d(&x, 2, 2, 0)?, 0.25, rng)?;
        let x = x.flatten_from(1)?;
        let x = drop(relu(&self.fc1.forward(&x)?)?, 0.5, rng)?;
        self.fc2.forward(&x)
    }
}
