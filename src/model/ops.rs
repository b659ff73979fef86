//! The model's differentiable ops. On the CPU (f32/f64) each dispatches to the fast custom
//! ops of [`super::kernels`]; everywhere else (CUDA, other dtypes, or with
//! [`kernels::set_fast_path`]`(false)`) it runs the generic reference implementation kept
//! here, which also works around gradient defects of candle 0.11 (see each function).
//!
//! The reference implementations are built from generic tensor ops (narrow, reshape, cat,
//! maximum, conv2d, mean) so they run unchanged on every candle device.
//!
//! Defects confirmed in `candle-core-0.11.1/src/backprop.rs`:
//!
//! * `Op::MaxPool2D` backward multiplies the upsampled gradient by
//!   `avg_pool2d(mask)`, i.e. by `1/(k*k)` for a unique maximum, so the gradient
//!   is `k*k` times too small; it also bails ("backward not supported for maxpool2d if
//!   ksize != stride") whenever `kernel != stride`, and candle has no max-pool padding.
//!   [`max_pool2d`] avoids `Op::MaxPool2D` entirely.
//! * `Op::Conv2D` backward computes a single `out_padding` for the transposed convolution
//!   from the *height* only (`arg.dim(2) - out_size`) and uses it for the width too. When
//!   `(H + 2p - k) % s != (W + 2p - k) % s` (e.g. stride 2 with H odd and W even) the
//!   input gradient gets the wrong width and backward fails with a shape mismatch.
//!   [`conv2d`] zero-pads the input so both remainders agree, which provably leaves the
//!   output unchanged (see its docs).
pub use super::kernels::Activation;
use candle_core::{DType, Result, Tensor};
use candle_nn::{BatchNorm, Linear};

use super::{kernels, precision};

/// Most negative finite value of a float dtype, used as the padding of [`max_pool2d`].
fn lowest(dtype: DType) -> Result<f64> {
    Ok(match dtype {
        DType::F16 => -65504.0,
        DType::BF16 => -3.389_531_389_251_535_5e38,
        DType::F32 => f32::MIN as f64,
        DType::F64 => f64::MIN,
        other => candle_core::bail!("max_pool2d needs a float tensor, got {other:?}"),
    })
}

/// Pads `x` along `dim` with `left`/`right` slices filled with `value`.
fn pad_const(x: &Tensor, dim: usize, left: usize, right: usize, value: f64) -> Result<Tensor> {
    if left == 0 && right == 0 {
        return Ok(x.clone());
    }
    let mut parts = Vec::with_capacity(3);
    let filler = |n: usize| -> Result<Tensor> {
        let mut dims = x.dims().to_vec();
        dims[dim] = n;
        Tensor::zeros(dims, x.dtype(), x.device())?.affine(0.0, value)
    };
    if left > 0 {
        parts.push(filler(left)?);
    }
    parts.push(x.clone());
    if right > 0 {
        parts.push(filler(right)?);
    }
    Tensor::cat(&parts, dim)
}

/// Brings dimension `dim` (of length `len`, already padded) to exactly `target` by cropping
/// trailing entries or padding with `value`.
fn fit_len(x: &Tensor, dim: usize, len: usize, target: usize, value: f64) -> Result<Tensor> {
    if len >= target {
        x.narrow(dim, 0, target)
    } else {
        pad_const(x, dim, 0, target - len, value)
    }
}

/// Output length of a pooling/convolution window sweep in floor mode (PyTorch's default).
fn out_len(len: usize, kernel: usize, stride: usize, padding: usize) -> Result<usize> {
    let padded = len + 2 * padding;
    if padded < kernel {
        candle_core::bail!(
            "window {kernel} larger than padded input {padded} (size {len}, padding {padding})"
        )
    }
    Ok((padded - kernel) / stride + 1)
}

/// 2D max pooling over an NCHW tensor with a square `kernel`, `stride` and `padding` on
/// every side (padded positions never win, like PyTorch's implicit -inf padding), floor
/// mode like PyTorch's `nn.MaxPool2d`.
///
/// Built from padding, a free reshape and strided views combined with the elementwise
/// `maximum`, whose gradients are correct, instead of candle's `max_pool2d` (its backward is
/// scaled by `1/(k*k)` and unsupported for `kernel != stride`). Ties inside a window share
/// the gradient (the shares sum to one), a valid subgradient like PyTorch's first-index rule;
/// the fast CPU kernel uses PyTorch's rule (the first maximum takes it all).
///
/// Errors if `kernel` or `stride` is zero, if `padding > kernel / 2` (PyTorch's rule), if the
/// input is not 4D or not a float tensor, or if a window does not fit the padded input.
pub fn max_pool2d(x: &Tensor, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
    if kernel == 0 || stride == 0 {
        candle_core::bail!("max_pool2d: kernel ({kernel}) and stride ({stride}) must be positive")
    }
    if padding > kernel / 2 {
        candle_core::bail!("max_pool2d: padding {padding} must be at most half the kernel {kernel}")
    }
    let (b, c, h, w) = x.dims4()?;
    let low = lowest(x.dtype())?;
    if kernels::supports(x) || kernels::gpu_supports(x) {
        out_len(h, kernel, stride, padding)?;
        out_len(w, kernel, stride, padding)?;
        let op = kernels::pool::MaxPool2d {
            kernel,
            stride,
            pad: padding,
            keep_argmax: x.track_op(),
            argmax: Default::default(),
        };
        return x.contiguous()?.apply_op1(op);
    }
    let (oh, ow) = (
        out_len(h, kernel, stride, padding)?,
        out_len(w, kernel, stride, padding)?,
    );
    // Window offset `i` of output row `r` reads padded row `r*stride + i`
    // = (i / stride + r) * stride + i % stride. With the padded length brought to
    // `stride * groups`, a reshape splits each dim into (group, phase) and every shifted,
    // strided view is a pair of narrows: no index tensors, no copies.
    let groups = (kernel - 1) / stride + oh.max(1);
    let groups_w = (kernel - 1) / stride + ow.max(1);
    let xp = pad_const(x, 2, padding, 0, low)?;
    let xp = fit_len(&xp, 2, h + padding, stride * groups, low)?;
    let xp = pad_const(&xp, 3, padding, 0, low)?;
    let xp = fit_len(&xp, 3, w + padding, stride * groups_w, low)?;
    let xp = xp
        .contiguous()?
        .reshape((b, c, groups, stride, groups_w, stride))?;
    let mut out: Option<Tensor> = None;
    for i in 0..kernel {
        let rows = xp.narrow(2, i / stride, oh)?.narrow(3, i % stride, 1)?;
        for j in 0..kernel {
            let view = rows.narrow(4, j / stride, ow)?.narrow(5, j % stride, 1)?;
            out = Some(match out {
                None => view,
                Some(acc) => acc.maximum(&view)?,
            });
        }
    }
    match out {
        Some(out) => out.reshape((b, c, oh, ow)),
        None => candle_core::bail!("max_pool2d: empty kernel"),
    }
}

/// 2D convolution (NCHW input, OIHW weight, optional bias of shape (O,)), square stride and
/// padding, whose backward works for every input shape.
///
/// The fast CPU kernel (im2col + GEMM) handles every shape natively. For the reference path:
/// candle's `Conv2D` backward derives the transposed convolution's `out_padding` from the
/// height and reuses it for the width, so it fails when the height and width remainders
/// `r_h = (H + 2p - kh) % s` and `r_w = (W + 2p - kw) % s` differ. This wrapper appends
/// `r - r_dim` zero rows (columns) to the dimension with the smaller remainder, where
/// `r = max(r_h, r_w)`. That gives the identical output:
///
/// * the output size is unchanged: `floor((H + e + 2p - kh) / s) = floor((H + 2p - kh) / s)`
///   because `r_h + e = r < s`;
/// * the values are unchanged: padding is zeros, so appending `e` zero rows is the same as
///   padding `(p, p + e)` instead of `(p, p)`: every position the original padded input had
///   keeps its value, the new positions lie after the last one, and the windows, which sit
///   at the same places, only read positions `<= (oh - 1) s + kh - 1 < H + 2p`.
///
/// Afterwards both remainders equal `r`, which is exactly the `out_padding` candle computes,
/// so its backward is correct (verified by the finite-difference tests below).
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    let (x, weight) = &precision::operands(x, weight)?;
    let y = if fast(x, weight) {
        check_conv(x, weight, stride, padding)?;
        let op = kernels::conv::Conv2d::new(stride, padding);
        x.contiguous()?.apply_op2(&weight.contiguous()?, op)?
    } else {
        conv2d_reference(x, weight, stride, padding, 1)?
    };
    precision::result(add_bias(y, bias)?)
}

/// Depthwise 2D convolution: every channel of `x` (B, C, H, W) convolved with its own
/// filter, `weight` of shape (C, 1, kh, kw) as in PyTorch's `groups = C`; optional `bias`
/// (C,). Square stride and padding; backward works for every input shape.
pub fn depthwise_conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    let (_b, c, _h, _w) = x.dims4()?;
    let (wc, one, _kh, _kw) = weight.dims4()?;
    if wc != c || one != 1 {
        candle_core::bail!(
            "depthwise_conv2d: weight {:?} does not fit {c} channels (expected ({c}, 1, k, k))",
            weight.shape()
        )
    }
    let (x, weight) = &precision::operands(x, weight)?;
    let y = if fast(x, weight) {
        check_conv(x, weight, stride, padding)?;
        let op = kernels::depthwise::Depthwise::new(stride, padding);
        x.contiguous()?.apply_op2(&weight.contiguous()?, op)?
    } else {
        conv2d_reference(x, weight, stride, padding, c)?
    };
    precision::result(add_bias(y, bias)?)
}

/// Whether `x` and `weight` can take the fast CPU kernels, or cuDNN, together.
fn fast(x: &Tensor, weight: &Tensor) -> bool {
    let cpu = kernels::supports(x) && weight.device().is_cpu();
    let gpu = kernels::gpu_supports(x) && weight.device().same_device(x.device());
    (cpu || gpu) && weight.dtype() == x.dtype()
}

fn check_conv(x: &Tensor, weight: &Tensor, stride: usize, padding: usize) -> Result<()> {
    if stride == 0 {
        candle_core::bail!("conv2d: stride must be positive")
    }
    let (_b, _c, h, w) = x.dims4()?;
    let (_o, _i, kh, kw) = weight.dims4()?;
    if h + 2 * padding < kh || w + 2 * padding < kw {
        candle_core::bail!(
            "conv2d: kernel {kh}x{kw} larger than padded input {}x{}",
            h + 2 * padding,
            w + 2 * padding
        )
    }
    Ok(())
}

fn add_bias(y: Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    match bias {
        None => Ok(y),
        Some(bias) => {
            let bias = bias.to_dtype(y.dtype())?;
            if kernels::supports(&y) {
                return y
                    .contiguous()?
                    .apply_op2(&bias.contiguous()?, kernels::bias::BiasAdd);
            }
            let c = y.dim(1)?;
            y.broadcast_add(&bias.reshape((1, c, 1, 1))?)
        }
    }
}

/// The reference convolution: candle's `conv2d` (with `groups`) behind the padding fix.
fn conv2d_reference(
    x: &Tensor,
    weight: &Tensor,
    stride: usize,
    padding: usize,
    groups: usize,
) -> Result<Tensor> {
    check_conv(x, weight, stride, padding)?;
    let (_b, _c, h, w) = x.dims4()?;
    let (_o, _i, kh, kw) = weight.dims4()?;
    let r_h = (h + 2 * padding - kh) % stride;
    let r_w = (w + 2 * padding - kw) % stride;
    let r = r_h.max(r_w);
    let x = x
        .pad_with_zeros(2, 0, r - r_h)?
        .pad_with_zeros(3, 0, r - r_w)?;
    x.conv2d(weight, padding, stride, 1, groups)
}

/// `max(x, 0)`. The fast CPU kernel's gradient is 0 at exactly 0 (PyTorch's), candle's 1.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    if kernels::supports(x) || kernels::gpu_supports(x) {
        x.contiguous()?.apply_op1(kernels::eltwise::Eltwise::Relu)
    } else {
        x.relu()
    }
}

/// `max(a + b, 0)`: the join of a residual block, fused into one op on the CPU.
pub fn add_relu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let cpu = kernels::supports(a) && b.device().is_cpu();
    let gpu = kernels::gpu_supports(a) && b.device().same_device(a.device());
    if (cpu || gpu) && a.dtype() == b.dtype() {
        if a.shape() != b.shape() {
            candle_core::bail!(
                "add_relu: shapes {:?} and {:?} differ",
                a.shape(),
                b.shape()
            )
        }
        let op = kernels::eltwise::Eltwise::AddRelu;
        a.contiguous()?.apply_op2(&b.contiguous()?, op)
    } else {
        (a + b)?.relu()
    }
}

/// Batch norm of `x` (B, C, ...) with `bn`, then `act`. With `train`, uses the batch
/// statistics and updates `bn`'s running statistics (as candle-nn's `forward_train`);
/// otherwise the running statistics. On the CPU one fused op (statistics, normalisation and
/// activation in two parallel passes, backward in two more); elsewhere candle-nn's
/// `BatchNorm` (cuDNN's on a GPU) and the activation on its own.
pub fn batch_norm(x: &Tensor, bn: &BatchNorm, train: bool, act: Activation) -> Result<Tensor> {
    if kernels::supports(x) && bn.weight_and_bias().is_some() {
        return kernels::norm::batch_norm(x, bn, train, act);
    }
    #[cfg(feature = "cuda")]
    if kernels::gpu_supports(x) && bn.weight_and_bias().is_some() {
        return kernels::cuda::norm::batch_norm(x, bn, train, act);
    }
    if train {
        return activate(&candle_core::ModuleT::forward_t(bn, x, true)?, act);
    }
    // Inference with the running statistics detached: candle's own eval path reads them as
    // variables, so a frozen base (transfer learning) would record a graph back through them.
    let mut shape = vec![1; x.rank()];
    shape[1] = x.dim(1)?;
    let dtype = x.dtype();
    let stat = |t: &Tensor| t.detach().to_dtype(dtype)?.reshape(shape.as_slice());
    let mean = stat(bn.running_mean())?;
    let std = (stat(bn.running_var())? + bn.eps())?.sqrt()?;
    let mut y = x.broadcast_sub(&mean)?.broadcast_div(&std)?;
    if let Some((w, b)) = bn.weight_and_bias() {
        let (w, b) = (
            w.to_dtype(dtype)?.reshape(shape.as_slice())?,
            b.to_dtype(dtype)?.reshape(shape.as_slice())?,
        );
        y = y.broadcast_mul(&w)?.broadcast_add(&b)?;
    }
    activate(&y, act)
}

/// `act` on its own (not fused with a batch norm).
pub fn activate(x: &Tensor, act: Activation) -> Result<Tensor> {
    match act {
        Activation::Identity => Ok(x.clone()),
        Activation::Relu => relu(x),
        Activation::Relu6 => relu6(x),
        Activation::Silu => silu(x),
    }
}

/// `x * sigmoid(x)`: on the CPU (f32/f64) one parallel kernel each way, elsewhere candle's.
pub fn silu(x: &Tensor) -> Result<Tensor> {
    if kernels::supports(x) {
        return x.contiguous()?.apply_op1(kernels::eltwise::Eltwise::Silu);
    }
    x.silu()
}

/// `min(6, max(0, x))` (PyTorch's `nn.ReLU6`), with PyTorch's gradient: 1 where
/// `0 < x < 6`, 0 elsewhere, the boundaries included. (candle's `clamp` gives 0.5 at them.)
/// On the CPU (f32/f64) one fast kernel each way; elsewhere [`relu6_generic`].
pub fn relu6(x: &Tensor) -> Result<Tensor> {
    if kernels::supports(x) {
        return x.contiguous()?.apply_op1(kernels::eltwise::Eltwise::Relu6);
    }
    relu6_generic(x)
}

/// ReLU6 built from comparisons (which carry no gradient) and `where_cond`, which passes the
/// gradient to the branch it selects, so it runs on every device and dtype.
pub fn relu6_generic(x: &Tensor) -> Result<Tensor> {
    let inside = x.gt(0.0)?.mul(&x.lt(6.0)?)?;
    let outside = (x.ge(6.0)?.to_dtype(x.dtype())? * 6.0)?;
    inside.where_cond(x, &outside)
}

/// Global average pooling: mean over H and W of an NCHW tensor, giving (B, C); bf16 and f16
/// activations are summed in f32.
pub fn avg_pool_global(x: &Tensor) -> Result<Tensor> {
    let (_b, _c, _h, _w) = x.dims4()?;
    match x.dtype() {
        DType::BF16 | DType::F16 => x.to_dtype(DType::F32)?.mean((2, 3)),
        _ => x.mean((2, 3)),
    }
}

/// The fully connected layer `x W^T + b` of a (B, in) input, under the active precision
/// (bf16 operands and result in bf16 autocast; the bias is added in the result's dtype).
pub fn linear(x: &Tensor, layer: &Linear) -> Result<Tensor> {
    let (x, w) = precision::operands(x, layer.weight())?;
    let y = if kernels::supports(&x) && x.rank() == 2 && w.dtype() == x.dtype() {
        x.contiguous()?
            .apply_op2(&w.contiguous()?, kernels::dense::Dense::Forward)?
    } else {
        x.matmul(&w.t()?)?
    };
    let y = match layer.bias() {
        Some(b) if kernels::supports(&y) && y.rank() == 2 => y.apply_op2(
            &b.to_dtype(y.dtype())?.contiguous()?,
            kernels::bias::BiasAdd,
        )?,
        Some(b) => y.broadcast_add(&b.to_dtype(y.dtype())?)?,
        None => y,
    };
    precision::result(y)
}

/// PyTorch's `nn.AdaptiveAvgPool2d((out_h, out_w))` of an NCHW tensor: output cell `(i, j)`
/// averages input rows `floor(i*H/out_h) .. ceil((i+1)*H/out_h)` and the columns given by
/// the same rule. Works for any input size, smaller than the output too (cells then repeat
/// input values).
///
/// Windows are rectangles with uniform weights, so the mean separates into a mean over the
/// rows and then one over the columns; each is built from narrow + mean + cat, whose
/// gradients candle gets right on every device. A dimension already of the output size is
/// passed through (VGG and AlexNet at 224x224).
pub fn adaptive_avg_pool2d(x: &Tensor, out_h: usize, out_w: usize) -> Result<Tensor> {
    let (_b, _c, h, w) = x.dims4()?;
    if out_h == 0 || out_w == 0 || h == 0 || w == 0 {
        candle_core::bail!("adaptive_avg_pool2d: cannot pool {h}x{w} to {out_h}x{out_w}")
    }
    adaptive_mean_along(&adaptive_mean_along(x, 2, out_h)?, 3, out_w)
}

/// Dimension `dim` of `x` averaged into `out` adaptive windows.
fn adaptive_mean_along(x: &Tensor, dim: usize, out: usize) -> Result<Tensor> {
    let len = x.dim(dim)?;
    if len == out {
        return Ok(x.clone());
    }
    let windows = (0..out)
        .map(|i| {
            let start = i * len / out;
            let end = ((i + 1) * len).div_ceil(out);
            x.narrow(dim, start, end - start)?.mean_keepdim(dim)
        })
        .collect::<Result<Vec<_>>>()?;
    Tensor::cat(&windows, dim)
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    /// The generic inference path (dtypes the CPU kernels do not take, here bf16) gives
    /// candle's own eval-mode result, and records no gradient for the running statistics.
    #[test]
    fn generic_inference_batch_norm_detaches_the_running_statistics() {
        let dev = Device::Cpu;
        let var = |v: &[f32]| Var::new(v, &dev).unwrap();
        let (mean, var_, w, b) = (
            var(&[0.5, -1.0]),
            var(&[2.0, 0.25]),
            var(&[1.5, 0.5]),
            var(&[0.1, -0.2]),
        );
        let bn = BatchNorm::new(
            2,
            mean.as_tensor().clone(),
            var_.as_tensor().clone(),
            w.as_tensor().clone(),
            b.as_tensor().clone(),
            1e-5,
        )
        .unwrap();
        let x = Tensor::arange(0f32, 16., &dev)
            .unwrap()
            .reshape((2, 2, 2, 2))
            .unwrap()
            .to_dtype(DType::BF16)
            .unwrap();
        let ours = batch_norm(&x, &bn, false, Activation::Identity).unwrap();
        // By hand: x = 0..16 in NCHW (2, 2, 2, 2), channel c = (i / 4) % 2.
        let (m, v, g, bb) = ([0.5, -1.0], [2.0, 0.25], [1.5, 0.5], [0.1, -0.2]);
        let want: Vec<f32> = (0..16)
            .map(|i| {
                let c = (i / 4) % 2;
                (i as f32 - m[c]) / (v[c] + 1e-5f32).sqrt() * g[c] + bb[c]
            })
            .collect();
        let got = values(&ours.to_dtype(DType::F32).unwrap());
        for (a, b) in got.iter().zip(&want) {
            assert!(
                (a - b).abs() <= 0.01 * b.abs().max(1.0),
                "{got:?} vs {want:?}"
            );
        }
        let grads = ours
            .to_dtype(DType::F32)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(grads.get(mean.as_tensor()).is_none());
        assert!(grads.get(var_.as_tensor()).is_none());
        assert!(grads.get(w.as_tensor()).is_some(), "the scale still trains");
    }

    /// 5x7 -> 3x3: row windows 0..2, 1..4, 3..5 (row means 0.5, 2, 3.5); column windows
    /// 0..3, 2..5, 4..7 (column means 1, 3, 5). With `x[r][c] = 10r + c` a window's mean is
    /// 10 * its row mean + its column mean. PyTorch agrees:
    /// `F.adaptive_avg_pool2d(torch.arange(5)[:, None] * 10. + torch.arange(7.), 3)`.
    #[test]
    fn adaptive_avg_pool_follows_pytorch_windows() {
        let data: Vec<f32> = (0..5)
            .flat_map(|r| (0..7).map(move |c| (10 * r + c) as f32))
            .collect();
        let x = Var::from_vec(data, (1, 1, 5, 7), &Device::Cpu).unwrap();
        let y = adaptive_avg_pool2d(x.as_tensor(), 3, 3).unwrap();
        assert_eq!(y.dims(), &[1, 1, 3, 3]);
        let expected = [6.0, 8.0, 10.0, 21.0, 23.0, 25.0, 36.0, 38.0, 40.0];
        for (a, e) in values(&y).iter().zip(expected) {
            assert!((a - e).abs() < 1e-5, "{:?}", values(&y));
        }
        // d sum(y) / d x[r][c] = (sum of 1/|rows| over windows holding r) * (same for c):
        // rows 1/2, 1/2+1/3, 1/3, 1/3+1/2, 1/2; columns 1/3, 1/3, 2/3, 1/3, 2/3, 1/3, 1/3.
        let grads = y.sum_all().unwrap().backward().unwrap();
        let g = values(grads.get(&x).unwrap());
        let rows = [0.5, 5.0 / 6.0, 1.0 / 3.0, 5.0 / 6.0, 0.5];
        let cols = [1.0, 1.0, 2.0, 1.0, 2.0, 1.0, 1.0].map(|c: f64| c / 3.0);
        for r in 0..5 {
            for c in 0..7 {
                let e = (rows[r] * cols[c]) as f32;
                assert!((g[r * 7 + c] - e).abs() < 1e-6, "({r}, {c}): {g:?}");
            }
        }
        assert!((g.iter().sum::<f32>() - 9.0).abs() < 1e-5);
    }

    #[test]
    fn adaptive_avg_pool_repeats_small_inputs_and_passes_equal_sizes() {
        let x = Tensor::new(&[1f32, 2., 3., 4.], &Device::Cpu)
            .unwrap()
            .reshape((1, 1, 1, 4))
            .unwrap();
        let y = adaptive_avg_pool2d(&x, 2, 2).unwrap();
        assert_eq!(values(&y), [1.5, 3.5, 1.5, 3.5]);
        let one = Tensor::ones((2, 3, 1, 1), DType::F32, &Device::Cpu).unwrap();
        let y = adaptive_avg_pool2d(&one, 7, 7).unwrap();
        assert_eq!(y.dims(), &[2, 3, 7, 7]);
        assert!(values(&y).iter().all(|v| *v == 1.0));
        let x = Tensor::ones((1, 2, 6, 6), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(adaptive_avg_pool2d(&x, 6, 6).unwrap().dims(), &[1, 2, 6, 6]);
        assert!(adaptive_avg_pool2d(&x, 0, 6).is_err());
    }
}
