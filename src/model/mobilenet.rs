//! MobileNetV2 (Sandler et al. 2018) as torchvision's `mobilenet_v2` builds it, with its
//! module and variable names (`torchvision/models/mobilenetv2.py`): these names are the
//! checkpoint format.
//!
//! * `features.0`: `Conv2dNormActivation`, a 3x3 stride-2 convolution (`features.0.0`) + BN
//!   (`features.0.1`) + ReLU6.
//! * `features.1` .. `features.17`: inverted residual blocks, the stages `(t, c, n, s)` of
//!   [`SETTING`] (expansion, channels, blocks, stride of the first block). A block's `conv`
//!   is torchvision's `nn.Sequential`: with `t != 1` a 1x1 expansion to `t` times the input
//!   channels (`conv.0.0` + BN `conv.0.1` + ReLU6), then a depthwise 3x3 (`conv.1.0` + BN
//!   `conv.1.1` + ReLU6, stride `s` in a stage's first block), then the linear 1x1 projection
//!   `conv.2` and its BN `conv.3`; `features.1` (`t = 1`) has no expansion, so its indices
//!   are one lower (`conv.0.0` is the depthwise convolution, `conv.1` the projection,
//!   `conv.2` its BN). A block with stride 1 and as many output channels as input channels
//!   adds its input.
//! * `features.18`: 1x1 convolution to `last_channel` (1280) + BN + ReLU6.
//! * Global average pooling, then `classifier`: Dropout 0.2 and `classifier.1` Linear.
//!
//! Widths: torchvision's `width_mult` is `w / 32` for base width `w` ([`REFERENCE_WIDTH`], the
//! stem's channels, gives the real network). Every channel count `c` becomes
//! `_make_divisible(c * width_mult, 8)` ([`make_divisible`]) and the last one
//! `_make_divisible(1280 * max(1, width_mult), 8)`: small widths give nets of 8-channel
//! stages (16 for the last stage) with torchvision's 1280-channel head.
//!
//! Initialisation as torchvision: kaiming-normal (fan-out) convolutions without bias, BN
//! weight 1 / bias 0, classifier weights N(0, 0.01) and zero bias. Depthwise convolutions go
//! through [`ops::depthwise_conv2d`](super::ops::depthwise_conv2d); ReLU6 is [`ops::relu6`](super::ops::relu6), fused with the batch norm before it on the CPU.
//!
//! Any image side works: every stride-2 layer is a 3x3 convolution with padding 1, which
//! keeps at least one pixel, and the head pools globally.
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;
use rand::rngs::StdRng;

use super::layers::{
    dropout, linear, make_divisible, Conv, ConvCfg, DepthwiseConv, InitScheme, Linear, Norm,
};
use super::ops::{avg_pool_global, Activation};
use super::{BackboneInfo, ModelSpec, Network};

/// `mobilenet_v2`: 0.3G multiply-adds per 224x224 image (torchvision's model stats) against
/// resnet18's 1.8G at cost 4, scaled like the other backbones' costs.
pub(crate) static MOBILENET_V2: BackboneInfo = BackboneInfo {
    name: "mobilenet_v2",
    default_width: REFERENCE_WIDTH,
    min_size: 1,
    cost: 0.7,
    family: "torchvision",
    stage_of: super::registry::indexed,
    default_input: 224,
    build: |vb, spec| Ok(Box::new(MobileNetV2::new(vb, spec)?)),
};

/// The stem width of the real network (torchvision's `input_channel = 32`): widths scale by
/// `w / REFERENCE_WIDTH`.
pub const REFERENCE_WIDTH: usize = 32;

/// Channels of `features.18` at `width_mult <= 1` (torchvision's `last_channel`).
const LAST_CHANNEL: usize = 1280;

/// torchvision's `round_nearest`: every channel count is a multiple of this.
const ROUND_NEAREST: usize = 8;

/// Dropout probability before `classifier.1`.
const DROPOUT: f64 = 0.2;

/// torchvision's `inverted_residual_setting`: expansion `t`, output channels `c` (at the
/// reference width), number of blocks `n`, stride `s` of the first block.
const SETTING: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

fn conv_cfg(kernel: usize, stride: usize) -> ConvCfg {
    ConvCfg {
        kernel,
        stride,
        padding: (kernel - 1) / 2,
        bias: false,
        init: InitScheme::TorchvisionConv,
    }
}

/// A dense or depthwise convolution.
#[derive(Clone, Debug)]
enum AnyConv {
    Dense(Conv),
    Depthwise(DepthwiseConv),
}

impl Module for AnyConv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            AnyConv::Dense(conv) => conv.forward(x),
            AnyConv::Depthwise(conv) => conv.forward(x),
        }
    }
}

/// torchvision's `Conv2dNormActivation` with ReLU6: convolution `0`, BN `1`, ReLU6 `2`.
#[derive(Clone, Debug)]
struct ConvBnRelu6 {
    conv: AnyConv,
    bn: Norm,
}

impl ConvBnRelu6 {
    fn dense(
        vb: VarBuilder,
        in_c: usize,
        out_c: usize,
        kernel: usize,
        stride: usize,
    ) -> Result<Self> {
        let conv = Conv::new(vb.pp("0"), in_c, out_c, conv_cfg(kernel, stride))?;
        Ok(ConvBnRelu6 {
            conv: AnyConv::Dense(conv),
            bn: Norm::new(vb.pp("1"), out_c)?,
        })
    }

    fn depthwise(vb: VarBuilder, channels: usize, stride: usize) -> Result<Self> {
        let conv = DepthwiseConv::new(vb.pp("0"), channels, conv_cfg(3, stride))?;
        Ok(ConvBnRelu6 {
            conv: AnyConv::Depthwise(conv),
            bn: Norm::new(vb.pp("1"), channels)?,
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.bn
            .forward_act_t(&self.conv.forward(x)?, train, Activation::Relu6)
    }
}

/// torchvision's `InvertedResidual`: optional 1x1 expansion, depthwise 3x3, linear 1x1
/// projection + BN, and the input added when the shapes allow.
#[derive(Clone, Debug)]
struct InvertedResidual {
    expand: Option<ConvBnRelu6>,
    depthwise: ConvBnRelu6,
    project: Conv,
    project_bn: Norm,
    residual: bool,
}

impl InvertedResidual {
    fn new(vb: VarBuilder, in_c: usize, out_c: usize, stride: usize, t: usize) -> Result<Self> {
        let vb = vb.pp("conv");
        let hidden = in_c * t;
        let (expand, at) = if t != 1 {
            (Some(ConvBnRelu6::dense(vb.pp("0"), in_c, hidden, 1, 1)?), 1)
        } else {
            (None, 0)
        };
        Ok(InvertedResidual {
            expand,
            depthwise: ConvBnRelu6::depthwise(vb.pp(at), hidden, stride)?,
            project: Conv::new(vb.pp(at + 1), hidden, out_c, conv_cfg(1, 1))?,
            project_bn: Norm::new(vb.pp(at + 2), out_c)?,
            residual: stride == 1 && in_c == out_c,
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut y = match &self.expand {
            Some(expand) => expand.forward_t(x, train)?,
            None => x.clone(),
        };
        y = self.depthwise.forward_t(&y, train)?;
        y = self
            .project_bn
            .forward_t(&self.project.forward(&y)?, train)?;
        if self.residual {
            x + y
        } else {
            Ok(y)
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct MobileNetV2 {
    stem: ConvBnRelu6,
    blocks: Vec<InvertedResidual>,
    head: ConvBnRelu6,
    classifier: Linear,
}

impl MobileNetV2 {
    /// MobileNetV2 for `spec`'s channels and classes at `width_mult = base_width / 32`.
    pub(crate) fn new(vb: VarBuilder, spec: &ModelSpec) -> Result<Self> {
        let width_mult = spec.base_width as f64 / REFERENCE_WIDTH as f64;
        let c = |reference: usize| make_divisible(reference as f64 * width_mult, ROUND_NEAREST);
        let last = make_divisible(LAST_CHANNEL as f64 * width_mult.max(1.0), ROUND_NEAREST);
        let vb_features = vb.pp("features");
        let mut in_c = c(REFERENCE_WIDTH);
        let stem = ConvBnRelu6::dense(vb_features.pp(0), spec.channels, in_c, 3, 2)?;
        let mut blocks = Vec::new();
        for (t, channels, n, s) in SETTING {
            let out_c = c(channels);
            for i in 0..n {
                let stride = if i == 0 { s } else { 1 };
                let vb = vb_features.pp(blocks.len() + 1);
                blocks.push(InvertedResidual::new(vb, in_c, out_c, stride, t)?);
                in_c = out_c;
            }
        }
        let head = ConvBnRelu6::dense(vb_features.pp(blocks.len() + 1), in_c, last, 1, 1)?;
        let classifier = linear(
            vb.pp("classifier").pp(1),
            last,
            spec.classes,
            InitScheme::VggLinear,
        )?;
        Ok(MobileNetV2 {
            stem,
            blocks,
            head,
            classifier,
        })
    }
}

impl Network for MobileNetV2 {
    fn forward_t(&self, x: &Tensor, train: bool, rng: &mut StdRng) -> Result<Tensor> {
        let mut x = self.stem.forward_t(x, train)?;
        for block in &self.blocks {
            x = block.forward_t(&x, train)?;
        }
        x = avg_pool_global(&self.head.forward_t(&x, train)?)?;
        if train {
            x = dropout(&x, DROPOUT, rng)?;
        }
        self.classifier.forward(&x)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle_core::{DType, Device, Var};
    use candle_nn::VarMap;
    use rand::SeedableRng;

    use super::*;
    use crate::model::init::SeededVarMap;
    use crate::model::ops::relu6;
    use crate::model::tests::{images, spec, to_vec};
    use crate::model::{Backbone, Model};
    use crate::train::optim::{Optimizer, OptimizerConfig};

    fn backbone() -> Backbone {
        Backbone::parse("mobilenet_v2").unwrap()
    }

    fn shapes(m: &Model) -> HashMap<String, Vec<usize>> {
        m.named_tensors()
            .unwrap()
            .into_iter()
            .map(|(n, t)| (n, t.dims().to_vec()))
            .collect()
    }

    /// Reference: `sum(p.numel() for p in torchvision.models.mobilenet_v2().parameters())`
    /// = 3,504,872 (torchvision's documented `num_params`; 3 channels, 1000 classes, 224x224,
    /// width_mult 1.0). BN running statistics are not parameters.
    #[test]
    fn parameter_count_matches_torchvision() {
        let b = backbone();
        assert_eq!(b.default_width(), 32);
        let m = Model::new(&spec(b, 3, 224, 224, 1000, 32), &Device::Cpu, 0).unwrap();
        assert_eq!(m.parameter_count(), 3_504_872);
        // 52 convolutions, 52 BNs (weight and bias), the classifier's weight and bias.
        assert_eq!(m.trainable_vars().len(), 52 + 2 * 52 + 2);
        // torchvision's state dict also has each BN's `num_batches_tracked`, which we do not
        // keep: 52 * 5 + 52 + 2 = 314 entries there, 262 here.
        assert_eq!(m.named_tensors().unwrap().len(), 52 + 4 * 52 + 2);
    }

    /// Names and shapes of torchvision's `mobilenet_v2()` state dict (1000 classes): the
    /// stem, the first block (no expansion), a block with expansion, the last block, the head
    /// and the classifier.
    #[test]
    fn variable_names_follow_torchvision() {
        let m = Model::new(&spec(backbone(), 3, 32, 32, 1000, 32), &Device::Cpu, 0).unwrap();
        let shapes = shapes(&m);
        for (name, shape) in [
            ("features.0.0.weight", &[32, 3, 3, 3][..]),
            ("features.0.1.weight", &[32]),
            ("features.0.1.bias", &[32]),
            ("features.0.1.running_mean", &[32]),
            ("features.0.1.running_var", &[32]),
            ("features.1.conv.0.0.weight", &[32, 1, 3, 3]),
            ("features.1.conv.0.1.running_var", &[32]),
            ("features.1.conv.1.weight", &[16, 32, 1, 1]),
            ("features.1.conv.2.weight", &[16]),
            ("features.1.conv.2.running_mean", &[16]),
            ("features.2.conv.0.0.weight", &[96, 16, 1, 1]),
            ("features.2.conv.0.1.bias", &[96]),
            ("features.2.conv.1.0.weight", &[96, 1, 3, 3]),
            ("features.2.conv.1.1.weight", &[96]),
            ("features.2.conv.2.weight", &[24, 96, 1, 1]),
            ("features.2.conv.3.running_var", &[24]),
            ("features.14.conv.0.0.weight", &[576, 96, 1, 1]),
            ("features.14.conv.2.weight", &[160, 576, 1, 1]),
            ("features.17.conv.0.0.weight", &[960, 160, 1, 1]),
            ("features.17.conv.1.0.weight", &[960, 1, 3, 3]),
            ("features.17.conv.2.weight", &[320, 960, 1, 1]),
            ("features.17.conv.3.bias", &[320]),
            ("features.18.0.weight", &[1280, 320, 1, 1]),
            ("features.18.1.weight", &[1280]),
            ("features.18.1.running_var", &[1280]),
            ("classifier.1.weight", &[1000, 1280]),
            ("classifier.1.bias", &[1000]),
        ] {
            assert_eq!(
                shapes.get(name).map(|s| &s[..]),
                Some(shape),
                "{name}: {:?}",
                shapes.keys()
            );
        }
        assert!(!shapes.contains_key("features.1.conv.3.weight"));
        assert!(!shapes.contains_key("features.19.0.weight"));
        assert!(!shapes.contains_key("features.0.0.bias"));
        assert!(!shapes.contains_key("classifier.0.weight"));
    }

    fn std_dev(v: &[f32]) -> f64 {
        let n = v.len() as f64;
        let mean = v.iter().map(|x| *x as f64).sum::<f64>() / n;
        (v.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt()
    }

    /// torchvision's initialisation: `kaiming_normal_(mode="fan_out")` (std sqrt(2 / fan_out),
    /// fan_out = out_channels * k * k, also for depthwise weights), BN ones and zeros,
    /// classifier N(0, 0.01) with zero bias.
    #[test]
    fn initialisation_follows_torchvision() {
        let m = Model::new(&spec(backbone(), 3, 32, 32, 1000, 32), &Device::Cpu, 3).unwrap();
        let all = m.named_tensors().unwrap();
        let values = |name: &str| to_vec(&all[name]);
        for (name, fan_out) in [
            ("features.18.0.weight", 1280.0),
            ("features.17.conv.1.0.weight", 960.0 * 9.0),
            ("features.14.conv.0.0.weight", 576.0),
        ] {
            let expected = (2.0f64 / fan_out).sqrt();
            let got = std_dev(&values(name));
            assert!(
                (got / expected - 1.0).abs() < 0.05,
                "{name}: {got} vs {expected}"
            );
        }
        let got = std_dev(&values("classifier.1.weight"));
        assert!((got / 0.01 - 1.0).abs() < 0.02, "classifier: {got}");
        assert!(values("classifier.1.bias").iter().all(|v| *v == 0.0));
        assert!(values("features.5.conv.1.1.weight")
            .iter()
            .all(|v| *v == 1.0));
        assert!(values("features.5.conv.1.1.bias").iter().all(|v| *v == 0.0));
    }

    /// Values of torchvision's `_make_divisible(v, 8)`, and the widths they give.
    #[test]
    fn widths_follow_make_divisible() {
        for (v, expected) in [
            (1.0, 8),
            (8.0, 8),
            (10.0, 16), // rounds to 8, which loses more than 10%
            (12.0, 16), // halves round up
            (17.0, 16),
            (19.9, 24), // rounds to 16 < 0.9 * 19.9
            (20.0, 24),
            (35.9, 40), // rounds to 32 < 0.9 * 35.9
            (36.0, 40),
            (1280.0, 1280),
            (1920.0, 1920),
        ] {
            assert_eq!(make_divisible(v, 8), expected, "{v}");
        }
        // Width 1 (width_mult 1/32): 8-channel stages, 16 for the last (320 / 32 = 10), and
        // torchvision's 1280-channel head. Width 48 (width_mult 1.5): a wider head too.
        let m = Model::new(&spec(backbone(), 2, 5, 5, 3, 1), &Device::Cpu, 0).unwrap();
        let s = shapes(&m);
        assert_eq!(s["features.0.0.weight"], [8, 2, 3, 3]);
        assert_eq!(s["features.1.conv.1.weight"], [8, 8, 1, 1]);
        assert_eq!(s["features.2.conv.0.0.weight"], [48, 8, 1, 1]);
        assert_eq!(s["features.17.conv.2.weight"], [16, 48, 1, 1]);
        assert_eq!(s["features.18.0.weight"], [1280, 16, 1, 1]);
        assert_eq!(s["classifier.1.weight"], [3, 1280]);
        let m = Model::new(&spec(backbone(), 3, 5, 5, 3, 48), &Device::Cpu, 0).unwrap();
        let s = shapes(&m);
        assert_eq!(s["features.0.0.weight"], [48, 3, 3, 3]);
        assert_eq!(s["features.2.conv.2.weight"], [40, 144, 1, 1]); // 24 * 1.5 = 36 -> 40
        assert_eq!(s["features.18.0.weight"], [1920, 480, 1, 1]);
    }

    /// Logits of the right shape at a small width for any image side down to 1 (every
    /// stride-2 layer keeps a pixel), in training and evaluation; every variable gets a
    /// gradient.
    #[test]
    fn forward_shapes_at_small_width_and_sizes() {
        for (h, w) in [(1, 1), (2, 3), (7, 6), (32, 33)] {
            let m = Model::new(&spec(backbone(), 3, h, w, 4, 4), &Device::Cpu, 1).unwrap();
            let x = images(2, 3, h, w, 2);
            assert_eq!(m.forward(&x, false).unwrap().dims(), &[2, 4], "{h}x{w}");
            let y = m.forward(&x, true).unwrap();
            assert_eq!(y.dims(), &[2, 4], "{h}x{w}");
            let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
            for v in m.trainable_vars() {
                assert!(grads.get(v.as_tensor()).is_some(), "{h}x{w}");
            }
        }
    }

    /// ReLU6 values and gradients: PyTorch's `hardtanh_backward` passes the gradient only
    /// where `0 < x < 6` (zero at both boundaries), and finite differences agree away from
    /// them.
    #[test]
    fn relu6_values_and_gradient() {
        let xs = [-3.0f32, -1e-3, 0.0, 1e-3, 0.5, 3.0, 5.999, 6.0, 6.001, 9.0];
        let x = Var::from_vec(xs.to_vec(), xs.len(), &Device::Cpu).unwrap();
        let y = relu6(x.as_tensor()).unwrap();
        let expected: Vec<f32> = xs.iter().map(|v| v.clamp(0.0, 6.0)).collect();
        assert_eq!(to_vec(&y), expected);
        // Weights make every position's gradient distinct from the others'.
        let weights: Vec<f32> = (1..=xs.len()).map(|i| i as f32).collect();
        let wt = Tensor::new(&weights[..], &Device::Cpu).unwrap();
        let grads = (y * &wt).unwrap().sum_all().unwrap().backward().unwrap();
        let g = to_vec(grads.get(x.as_tensor()).unwrap());
        for (i, v) in xs.iter().enumerate() {
            let slope = if *v > 0.0 && *v < 6.0 { 1.0 } else { 0.0 };
            assert_eq!(g[i], slope * weights[i], "x = {v}");
        }
        // Finite differences (f64) at points away from 0 and 6.
        let pts = [-2.0f64, -0.25, 0.3, 2.0, 4.5, 5.9, 6.2, 8.0];
        let x = Var::from_vec(pts.to_vec(), pts.len(), &Device::Cpu).unwrap();
        let f = |t: &Tensor| relu6(t).unwrap().sqr().unwrap().sum_all().unwrap();
        let grads = f(x.as_tensor()).backward().unwrap();
        let g: Vec<f64> = grads.get(x.as_tensor()).unwrap().to_vec1().unwrap();
        let eps = 1e-6;
        for i in 0..pts.len() {
            let shifted = |d: f64| {
                let mut p = pts.to_vec();
                p[i] += d;
                let t = Tensor::new(&p[..], &Device::Cpu).unwrap();
                f(&t).to_scalar::<f64>().unwrap()
            };
            let numeric = (shifted(eps) - shifted(-eps)) / (2.0 * eps);
            assert!(
                (g[i] - numeric).abs() < 1e-6,
                "x = {}: {} vs {numeric}",
                pts[i],
                g[i]
            );
        }
        // The generic version (every other device) gives the same values and gradients.
        let x = Var::from_vec(xs.to_vec(), xs.len(), &Device::Cpu).unwrap();
        let fast = relu6(x.as_tensor()).unwrap();
        let generic = crate::model::ops::relu6_generic(x.as_tensor()).unwrap();
        assert_eq!(to_vec(&fast), to_vec(&generic));
        let grad = |y: Tensor| {
            let gs = (y * &wt).unwrap().sum_all().unwrap().backward().unwrap();
            to_vec(gs.get(x.as_tensor()).unwrap())
        };
        assert_eq!(grad(fast), grad(generic));
        // Other dtypes too (bf16 autocast activations).
        let b = Tensor::new(&[-1f32, 3.0, 7.0], &Device::Cpu)
            .unwrap()
            .to_dtype(DType::BF16)
            .unwrap();
        let y = relu6(&b).unwrap().to_dtype(DType::F32).unwrap();
        assert_eq!(to_vec(&y), [0.0, 3.0, 6.0]);
    }

    /// The whole network's backward pass (ReLU6, depthwise and strided convolutions, residual
    /// sums, training-mode batch norm, the head) against central differences, in f64, at
    /// a small width on a 40x41 image batch.
    #[test]
    fn backward_matches_finite_differences() {
        let s = spec(backbone(), 3, 40, 41, 3, 4);
        let varmap = VarMap::new();
        let vb = SeededVarMap::var_builder(&varmap, 3, DType::F64, &Device::Cpu);
        let net = MobileNetV2::new(vb, &s).unwrap();
        let x = images(4, 3, 40, 41, 1).to_dtype(DType::F64).unwrap();
        let y = Tensor::new(&[0u32, 1, 2, 0], &Device::Cpu).unwrap();
        let loss = || {
            let mut rng = StdRng::seed_from_u64(5);
            let logits = net.forward_t(&x, true, &mut rng).unwrap();
            candle_nn::loss::cross_entropy(&logits, &y).unwrap()
        };
        let grads = loss().backward().unwrap();
        let data = varmap.data().lock().unwrap().clone();
        let eps = 1e-7;
        for name in [
            "features.0.0.weight",
            "features.0.1.weight",
            "features.1.conv.0.0.weight",
            "features.3.conv.3.weight",
            "features.5.conv.1.0.weight",
            "features.9.conv.0.0.weight",
            "features.17.conv.2.weight",
            "features.18.1.bias",
            "classifier.1.weight",
        ] {
            let var = &data[name];
            let g: Vec<f64> = to_vec64(grads.get(var.as_tensor()).unwrap());
            let original = to_vec64(var.as_tensor());
            let at = |values: Vec<f64>| {
                var.set(&Tensor::from_vec(values, var.shape(), &Device::Cpu).unwrap())
                    .unwrap();
                loss().to_scalar::<f64>().unwrap()
            };
            for i in [0, original.len() / 3, original.len() - 1] {
                let mut plus = original.clone();
                plus[i] += eps;
                let mut minus = original.clone();
                minus[i] -= eps;
                let numeric = (at(plus) - at(minus)) / (2.0 * eps);
                at(original.clone());
                let tolerance = 1e-6 * g[i].abs().max(1.0);
                assert!(
                    (numeric - g[i]).abs() < tolerance,
                    "{name}[{i}]: backward {} vs numeric {numeric}",
                    g[i]
                );
            }
        }
    }

    fn to_vec64(t: &Tensor) -> Vec<f64> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    /// A few SGD and Adam steps on one fixed batch at a small width lower the loss. Every
    /// step and every measurement draws the same dropout masks, so the loss depends on the
    /// weights alone. (32x33 images: at a few pixels the deep stages' batch norm sees a
    /// handful of values per channel at 1x1, and its huge gradients make steps erratic.)
    #[test]
    fn training_steps_lower_the_loss() {
        let sgd = OptimizerConfig::Sgd {
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        };
        let adam = OptimizerConfig::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        };
        let (h, w) = (32, 33);
        for (name, config, lr) in [("sgd", sgd, 0.01), ("adam", adam, 1e-3)] {
            let m = Model::new(&spec(backbone(), 3, h, w, 3, 8), &Device::Cpu, 6).unwrap();
            let x = images(6, 3, h, w, 11);
            let y = Tensor::new(&[0u32, 1, 2, 0, 1, 2], &Device::Cpu).unwrap();
            let mut opt = Optimizer::new(&config, m.trainable_vars(), lr).unwrap();
            let loss = |m: &Model| {
                m.reseed_dropout(99).unwrap();
                let logits = m.forward(&x, true).unwrap();
                candle_nn::loss::cross_entropy(&logits, &y).unwrap()
            };
            let mut losses = vec![loss(&m).to_scalar::<f32>().unwrap()];
            for _ in 0..5 {
                opt.backward_step(&loss(&m)).unwrap();
                losses.push(loss(&m).to_scalar::<f32>().unwrap());
            }
            assert!(losses.iter().all(|l| l.is_finite()), "{name}: {losses:?}");
            // Not step by step: with batch norm over 6 images at 1x1 the loss surface is
            // rough enough that the GEMM's summation order (AVX2 or AVX-512 kernels) or the
            // dropout mask decides whether one SGD step overshoots a little; none blows up.
            assert!(
                losses.iter().all(|&l| l < 1.1 * losses[0]),
                "{name}: losses {losses:?}"
            );
            assert!(losses[5] < 0.8 * losses[0], "{name}: losses {losses:?}");
        }
    }
}
