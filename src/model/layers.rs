//! Building blocks shared by the backbones: dense and depthwise convolution and batch norm
//! (through [`super::ops`], so the fast CPU kernels are used), linear layers with explicit
//! initialisers, and seeded dropout.
use candle_core::{Module, Result, Tensor};
use candle_nn::init::{FanInOut, NonLinearity, NormalOrUniform};
use candle_nn::{BatchNorm, BatchNormConfig, Init, VarBuilder};
use rand::rngs::StdRng;
use rand::Rng;

use super::ops::{self, Activation};

/// How a layer's weights are initialised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InitScheme {
    /// Keras defaults: Glorot-uniform weights, zero biases.
    Keras,
    /// PyTorch defaults: weights U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming-uniform with
    /// a = sqrt(5)), biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    Torch,
    /// torchvision ResNet convolutions: kaiming-normal, fan-out, ReLU gain.
    TorchvisionConv,
    /// torchvision VGG convolutions: kaiming-normal, fan-out, ReLU gain; zero biases.
    VggConv,
    /// torchvision VGG linear layers: N(0, 0.01) weights, zero biases.
    VggLinear,
}

impl InitScheme {
    fn weight(self, fan_in: usize, fan_out: usize) -> Init {
        match self {
            InitScheme::Keras => {
                let limit = (6.0 / (fan_in + fan_out).max(1) as f64).sqrt();
                Init::Uniform {
                    lo: -limit,
                    up: limit,
                }
            }
            InitScheme::Torch => {
                let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
                Init::Uniform {
                    lo: -bound,
                    up: bound,
                }
            }
            InitScheme::TorchvisionConv | InitScheme::VggConv => Init::Kaiming {
                dist: NormalOrUniform::Normal,
                fan: FanInOut::FanOut,
                non_linearity: NonLinearity::ReLU,
            },
            InitScheme::VggLinear => Init::Randn {
                mean: 0.0,
                stdev: 0.01,
            },
        }
    }

    fn bias(self, fan_in: usize) -> Init {
        match self {
            InitScheme::Keras | InitScheme::VggConv | InitScheme::VggLinear => Init::Const(0.0),
            InitScheme::Torch | InitScheme::TorchvisionConv => {
                let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
                Init::Uniform {
                    lo: -bound,
                    up: bound,
                }
            }
        }
    }
}

/// A square-kernel 2D convolution whose backward works for every input shape.
#[derive(Clone, Debug)]
pub(crate) struct Conv {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: usize,
    padding: usize,
}

/// Configuration of a [`Conv`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvCfg {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub bias: bool,
    pub init: InitScheme,
}

impl Conv {
    /// Variables `weight` (out, in, k, k) and, with `cfg.bias`, `bias` (out,) under `vb`.
    pub(crate) fn new(vb: VarBuilder, in_c: usize, out_c: usize, cfg: ConvCfg) -> Result<Self> {
        let k = cfg.kernel;
        let (fan_in, fan_out) = (in_c * k * k, out_c * k * k);
        let weight = vb.get_with_hints(
            (out_c, in_c, k, k),
            "weight",
            cfg.init.weight(fan_in, fan_out),
        )?;
        let bias = if cfg.bias {
            Some(vb.get_with_hints(out_c, "bias", cfg.init.bias(fan_in))?)
        } else {
            None
        };
        Ok(Conv {
            weight,
            bias,
            stride: cfg.stride,
            padding: cfg.padding,
        })
    }
}

impl Module for Conv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::conv2d(
            x,
            &self.weight,
            self.bias.as_ref(),
            self.stride,
            self.padding,
        )
    }
}

/// A depthwise (PyTorch `groups = channels`) square-kernel convolution.
#[derive(Clone, Debug)]
pub(crate) struct DepthwiseConv {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: usize,
    padding: usize,
}

impl DepthwiseConv {
    /// Variables `weight` (channels, 1, k, k) and, with `cfg.bias`, `bias` (channels,) under
    /// `vb`. Fans as PyTorch computes them for that weight: in `k*k`, out `channels*k*k`.
    pub(crate) fn new(vb: VarBuilder, channels: usize, cfg: ConvCfg) -> Result<Self> {
        let k = cfg.kernel;
        let (fan_in, fan_out) = (k * k, channels * k * k);
        let weight = vb.get_with_hints(
            (channels, 1, k, k),
            "weight",
            cfg.init.weight(fan_in, fan_out),
        )?;
        let bias = if cfg.bias {
            Some(vb.get_with_hints(channels, "bias", cfg.init.bias(fan_in))?)
        } else {
            None
        };
        Ok(DepthwiseConv {
            weight,
            bias,
            stride: cfg.stride,
            padding: cfg.padding,
        })
    }
}

impl Module for DepthwiseConv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::depthwise_conv2d(
            x,
            &self.weight,
            self.bias.as_ref(),
            self.stride,
            self.padding,
        )
    }
}

/// A fully connected layer, run through [`ops::linear`] so that bf16 autocast applies.
#[derive(Clone, Debug)]
pub(crate) struct Linear(candle_nn::Linear);

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::linear(x, &self.0)
    }
}

/// A fully connected layer `weight` (out, in) + `bias` (out,) under `vb`.
pub(crate) fn linear(
    vb: VarBuilder,
    in_dim: usize,
    out_dim: usize,
    init: InitScheme,
) -> Result<Linear> {
    let weight = vb.get_with_hints((out_dim, in_dim), "weight", init.weight(in_dim, out_dim))?;
    let bias = vb.get_with_hints(out_dim, "bias", init.bias(in_dim))?;
    Ok(Linear(candle_nn::Linear::new(weight, Some(bias))))
}

/// Batch norm with PyTorch's defaults (eps 1e-5, momentum 0.1, affine): `weight` 1, `bias` 0,
/// `running_mean` 0, `running_var` 1. A frozen one (its scale handed out detached, see
/// [`is_frozen`]) always runs in inference mode.
#[derive(Clone, Debug)]
pub(crate) struct Norm {
    bn: BatchNorm,
    frozen: bool,
}

/// Whether a batch norm is frozen: Keras' `trainable = False`, which also puts the layer in
/// inference mode (running statistics used and left unchanged). A frozen layer's variables
/// are handed out detached by the model's var builder ([`super::init::SeededVarMap`]).
pub(crate) fn is_frozen(bn: &BatchNorm) -> bool {
    bn.weight_and_bias().is_some_and(|(w, _)| !w.is_variable())
}

impl Norm {
    pub(crate) fn new(vb: VarBuilder, channels: usize) -> Result<Self> {
        let cfg = BatchNormConfig {
            eps: 1e-5,
            remove_mean: true,
            affine: true,
            momentum: 0.1,
        };
        let bn = candle_nn::batch_norm(channels, cfg, vb)?;
        Ok(Norm {
            frozen: is_frozen(&bn),
            bn,
        })
    }

    /// Batch statistics (and a running-stat update) when `train`, running stats otherwise.
    pub(crate) fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_act_t(x, train, Activation::Identity)
    }

    /// [`Norm::forward_t`] followed by a ReLU, fused into one op on the CPU.
    pub(crate) fn forward_relu_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_act_t(x, train, Activation::Relu)
    }

    /// [`Norm::forward_t`] followed by `act`, fused into one op on the CPU.
    pub(crate) fn forward_act_t(&self, x: &Tensor, train: bool, act: Activation) -> Result<Tensor> {
        let train = train && !self.frozen;
        if train {
            self.check_train(x)?;
        }
        ops::batch_norm(x, &self.bn, train, act)
    }

    /// Like PyTorch, training needs more than one value per channel (candle would otherwise
    /// divide by zero in the unbiased running variance).
    fn check_train(&self, x: &Tensor) -> Result<()> {
        let dims = x.dims();
        let per_channel = dims
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 1)
            .map(|(_, d)| *d)
            .product::<usize>();
        if per_channel < 2 {
            candle_core::bail!(
                "batch norm in training needs more than one value per channel, input {:?}",
                x.shape()
            )
        }
        Ok(())
    }
}

/// Inverted dropout with a host-side seeded RNG: zeroes each element with probability `p`
/// and scales the rest by `1 / (1 - p)`. Identity when `p == 0`.
pub(crate) fn dropout(x: &Tensor, p: f64, rng: &mut StdRng) -> Result<Tensor> {
    if !(0.0..1.0).contains(&p) {
        candle_core::bail!("dropout probability must be in [0, 1), got {p}")
    }
    if p == 0.0 {
        return Ok(x.clone());
    }
    // One draw from the run's generator per call; the mask is a hash of (seed, element).
    let seed: u64 = rng.random();
    if super::kernels::supports(x) {
        return x
            .contiguous()?
            .apply_op1(super::kernels::dropout::Dropout { p, seed });
    }
    let scale = (1.0 / (1.0 - p)) as f32;
    let mask: Vec<f32> = (0..x.elem_count())
        .map(|i| {
            if super::kernels::dropout::keep(seed, i, p) {
                scale
            } else {
                0.0
            }
        })
        .collect();
    let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
    x * mask
}

/// torchvision's `_make_divisible(v, divisor)`: `v` rounded to the nearest multiple of
/// `divisor` (halves up), at least `divisor`, and bumped by `divisor` if rounding lost more
/// than 10%.
pub(crate) fn make_divisible(v: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    // Python's `int(v + divisor / 2) // divisor * divisor`; `v` is positive, so `as` floors.
    let rounded = ((v + d / 2.0) as usize / divisor * divisor).max(divisor);
    if (rounded as f64) < 0.9 * v {
        rounded + divisor
    } else {
        rounded
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use rand::SeedableRng;

    #[test]
    fn dropout_keeps_expectation_and_is_seeded() {
        let x = Tensor::ones((100, 100), DType::F32, &Device::Cpu).unwrap();
        let a = dropout(&x, 0.25, &mut StdRng::seed_from_u64(1)).unwrap();
        let b = dropout(&x, 0.25, &mut StdRng::seed_from_u64(1)).unwrap();
        let va: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
        let vb: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(va, vb);
        let zeros = va.iter().filter(|v| **v == 0.0).count() as f64 / va.len() as f64;
        assert!((zeros - 0.25).abs() < 0.03, "dropped fraction {zeros}");
        let mean = va.iter().map(|v| *v as f64).sum::<f64>() / va.len() as f64;
        assert!((mean - 1.0).abs() < 0.05, "mean {mean}");
        assert!(dropout(&x, 1.0, &mut StdRng::seed_from_u64(1)).is_err());
    }
}
