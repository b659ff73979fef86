//! Differentiable ops that work around gradient defects of candle 0.11 (see each function).
//!
//! Everything here is built from generic tensor ops (narrow, reshape, cat, maximum, conv2d,
//! mean) so it runs unchanged on every candle device.
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
use candle_core::{DType, Result, Tensor};

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
/// the gradient (the shares sum to one), a valid subgradient like PyTorch's first-index rule.
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
    if stride == 0 {
        candle_core::bail!("conv2d: stride must be positive")
    }
    let (_b, _c, h, w) = x.dims4()?;
    let (out_c, _in_c, kh, kw) = weight.dims4()?;
    if h + 2 * padding < kh || w + 2 * padding < kw {
        candle_core::bail!(
            "conv2d: kernel {kh}x{kw} larger than padded input {}x{}",
            h + 2 * padding,
            w + 2 * padding
        )
    }
    let r_h = (h + 2 * padding - kh) % stride;
    let r_w = (w + 2 * padding - kw) % stride;
    let r = r_h.max(r_w);
    let x = x
        .pad_with_zeros(2, 0, r - r_h)?
        .pad_with_zeros(3, 0, r - r_w)?;
    let y = x.conv2d(weight, padding, stride, 1, 1)?;
    match bias {
        None => Ok(y),
        Some(bias) => y.broadcast_add(&bias.reshape((1, out_c, 1, 1))?),
    }
}

/// Global average pooling: mean over H and W of an NCHW tensor, giving (B, C).
pub fn avg_pool_global(x: &Tensor) -> Result<Tensor> {
    let (_b, _c, _h, _w) = x.dims4()?;
    x.mean((2, 3))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn rand_tensor(dims: &[usize], seed: u64) -> Tensor {
        let mut rng = StdRng::seed_from_u64(seed);
        let n: usize = dims.iter().product();
        let data: Vec<f64> = (0..n).map(|_| rng.random::<f64>() * 2.0 - 1.0).collect();
        Tensor::from_vec(data, dims, &Device::Cpu).unwrap()
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
        assert_eq!(a.dims(), b.dims());
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    }

    /// Checks the analytic gradients of `loss = sum(f(inputs) * probe)` against central
    /// differences on every element of every input (f64, CPU).
    fn check_grads(inputs: &[Tensor], f: &dyn Fn(&[Tensor]) -> Result<Tensor>) {
        let vars: Vec<Var> = inputs
            .iter()
            .map(|t| Var::from_tensor(t).unwrap())
            .collect();
        let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let out = f(&tensors).unwrap();
        let probe = rand_tensor(out.dims(), 99);
        let loss = |ts: &[Tensor]| -> f64 {
            (f(ts).unwrap() * &probe)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
        };
        let grads = (&out * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let eps = 1e-6;
        for (k, var) in vars.iter().enumerate() {
            let analytic: Vec<f64> = grads
                .get(var.as_tensor())
                .expect("gradient missing")
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let base: Vec<f64> = inputs[k].flatten_all().unwrap().to_vec1().unwrap();
            let dims = inputs[k].dims().to_vec();
            for idx in 0..base.len() {
                let eval = |delta: f64| {
                    let mut data = base.clone();
                    data[idx] += delta;
                    let mut ts: Vec<Tensor> = inputs.to_vec();
                    ts[k] = Tensor::from_vec(data, dims.as_slice(), &Device::Cpu).unwrap();
                    loss(&ts)
                };
                let numeric = (eval(eps) - eval(-eps)) / (2.0 * eps);
                let err = (numeric - analytic[idx]).abs();
                assert!(
                    err <= 1e-6 * (1.0 + numeric.abs()),
                    "input {k} element {idx}: numeric {numeric} analytic {}",
                    analytic[idx]
                );
            }
        }
    }

    #[test]
    fn max_pool_matches_candle_forward_when_kernel_equals_stride() {
        for (h, w, k) in [(4, 6, 2), (5, 7, 2), (6, 9, 3), (7, 5, 3)] {
            let x = rand_tensor(&[2, 3, h, w], 1);
            let ours = max_pool2d(&x, k, k, 0).unwrap();
            let theirs = x.max_pool2d(k).unwrap();
            assert_eq!(ours.dims(), &[2, 3, h / k, w / k]);
            assert_eq!(max_abs_diff(&ours, &theirs), 0.0);
        }
    }

    #[test]
    #[allow(clippy::needless_range_loop)]
    fn max_pool_forward_with_padding_matches_direct_loop() {
        let (h, w, k, s, p) = (7, 6, 3, 2, 1);
        let x = rand_tensor(&[1, 2, h, w], 2);
        let ours = max_pool2d(&x, k, s, p).unwrap();
        let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
        assert_eq!(ours.dims(), &[1, 2, oh, ow]);
        let xv: Vec<Vec<Vec<f64>>> = x.squeeze(0).unwrap().to_vec3().unwrap();
        let ov: Vec<Vec<Vec<f64>>> = ours.squeeze(0).unwrap().to_vec3().unwrap();
        for c in 0..2 {
            for r in 0..oh {
                for q in 0..ow {
                    let mut m = f64::NEG_INFINITY;
                    for i in 0..k {
                        for j in 0..k {
                            let (y, z) = (
                                (r * s + i) as isize - p as isize,
                                (q * s + j) as isize - p as isize,
                            );
                            if y >= 0 && z >= 0 && (y as usize) < h && (z as usize) < w {
                                m = m.max(xv[c][y as usize][z as usize]);
                            }
                        }
                    }
                    assert_eq!(ov[c][r][q], m, "channel {c} at ({r},{q})");
                }
            }
        }
    }

    #[test]
    fn max_pool_grad_kernel_equals_stride_even_and_odd() {
        for (h, w) in [(4, 4), (5, 7)] {
            let x = rand_tensor(&[2, 2, h, w], 3);
            check_grads(&[x], &|ts| max_pool2d(&ts[0], 2, 2, 0));
        }
        let x = rand_tensor(&[1, 2, 7, 6], 4);
        check_grads(&[x], &|ts| max_pool2d(&ts[0], 3, 3, 0));
    }

    #[test]
    fn max_pool_grad_resnet_stem_and_non_square() {
        for (h, w) in [(8, 8), (7, 10), (9, 5)] {
            let x = rand_tensor(&[1, 2, h, w], 5);
            check_grads(&[x], &|ts| max_pool2d(&ts[0], 3, 2, 1));
        }
    }

    #[test]
    fn max_pool_ties_share_gradient() {
        let x = Var::from_tensor(&Tensor::ones((1, 1, 2, 2), DType::F64, &Device::Cpu).unwrap())
            .unwrap();
        let y = max_pool2d(x.as_tensor(), 2, 2, 0).unwrap();
        let g = y.sum_all().unwrap().backward().unwrap();
        let total = g
            .get(x.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!((total - 1.0).abs() < 1e-12, "tied gradient mass {total}");
    }

    /// Documents candle 0.11's defect: the gradient of its own `max_pool2d` is `1/(k*k)` of the
    /// true one. If this test fails, candle fixed it and `max_pool2d` here could delegate.
    #[test]
    fn candle_max_pool_gradient_is_off_by_k_squared() {
        let x = Var::from_tensor(&rand_tensor(&[1, 1, 4, 4], 6)).unwrap();
        let ours = max_pool2d(x.as_tensor(), 2, 2, 0)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let theirs = x
            .as_tensor()
            .max_pool2d(2)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let ours = ours.get(x.as_tensor()).unwrap();
        let theirs = theirs.get(x.as_tensor()).unwrap();
        // The true gradient has one 1 per window; candle's has 1/4 there.
        assert_eq!(ours.sum_all().unwrap().to_scalar::<f64>().unwrap(), 4.0);
        assert!(max_abs_diff(&(theirs * 4.0).unwrap(), ours) < 1e-12);
        // And kernel != stride has no backward at all.
        let y = x.as_tensor().max_pool2d_with_stride(3, 2).unwrap();
        assert!(y.sum_all().unwrap().backward().is_err());
    }

    /// Documents candle 0.11's Conv2D backward defect (out_padding taken from the height only).
    #[test]
    fn candle_conv2d_backward_fails_on_mixed_parity() {
        let x = Var::from_tensor(&rand_tensor(&[1, 2, 5, 6], 7)).unwrap();
        let k = Var::from_tensor(&rand_tensor(&[3, 2, 3, 3], 8)).unwrap();
        let y = x.as_tensor().conv2d(k.as_tensor(), 1, 2, 1, 1).unwrap();
        assert!(y.sum_all().unwrap().backward().is_err());
        let y = conv2d(x.as_tensor(), k.as_tensor(), None, 2, 1).unwrap();
        assert!(y.sum_all().unwrap().backward().is_ok());
    }

    #[test]
    fn conv2d_forward_matches_candle() {
        for (h, w, s, p) in [
            (5, 6, 2, 1),
            (6, 5, 2, 1),
            (7, 7, 2, 1),
            (5, 6, 1, 1),
            (9, 8, 2, 3),
            (6, 7, 3, 0),
        ] {
            let x = rand_tensor(&[2, 2, h, w], 9);
            let k = rand_tensor(&[3, 2, 3, 3], 10);
            let bias = rand_tensor(&[3], 11);
            let ours = conv2d(&x, &k, Some(&bias), s, p).unwrap();
            let theirs = x
                .conv2d(&k, p, s, 1, 1)
                .unwrap()
                .broadcast_add(&bias.reshape((1, 3, 1, 1)).unwrap())
                .unwrap();
            assert_eq!(ours.dims(), theirs.dims());
            assert!(
                max_abs_diff(&ours, &theirs) < 1e-12,
                "h {h} w {w} s {s} p {p}"
            );
        }
    }

    #[test]
    fn conv2d_grad_stride2_mixed_parity() {
        for (h, w) in [(5, 6), (6, 5), (5, 5)] {
            let x = rand_tensor(&[2, 2, h, w], 12);
            let k = rand_tensor(&[3, 2, 3, 3], 13);
            let bias = rand_tensor(&[3], 14);
            check_grads(&[x, k, bias], &|ts| {
                conv2d(&ts[0], &ts[1], Some(&ts[2]), 2, 1)
            });
        }
    }

    #[test]
    fn conv2d_grad_stride1_and_1x1_stride2() {
        let x = rand_tensor(&[1, 2, 5, 4], 15);
        let k = rand_tensor(&[2, 2, 3, 3], 16);
        check_grads(&[x, k], &|ts| conv2d(&ts[0], &ts[1], None, 1, 1));
        // The ResNet downsample shortcut: 1x1, stride 2, no padding.
        let x = rand_tensor(&[1, 2, 5, 6], 17);
        let k = rand_tensor(&[3, 2, 1, 1], 18);
        check_grads(&[x, k], &|ts| conv2d(&ts[0], &ts[1], None, 2, 0));
    }

    #[test]
    fn conv2d_grad_resnet_stem_7x7_stride2() {
        let x = rand_tensor(&[1, 1, 9, 8], 19);
        let k = rand_tensor(&[2, 1, 7, 7], 20);
        check_grads(&[x, k], &|ts| conv2d(&ts[0], &ts[1], None, 2, 3));
    }

    #[test]
    fn avg_pool_global_grad() {
        let x = rand_tensor(&[2, 3, 3, 4], 21);
        let y = avg_pool_global(&x).unwrap();
        assert_eq!(y.dims(), &[2, 3]);
        check_grads(&[x], &|ts| avg_pool_global(&ts[0]));
    }

    #[test]
    fn invalid_arguments_are_errors() {
        let x = rand_tensor(&[1, 1, 4, 4], 22);
        assert!(max_pool2d(&x, 0, 1, 0).is_err());
        assert!(max_pool2d(&x, 2, 0, 0).is_err());
        assert!(max_pool2d(&x, 3, 2, 2).is_err());
        assert!(max_pool2d(&x, 5, 1, 0).is_err());
        let k = rand_tensor(&[1, 1, 3, 3], 23);
        assert!(conv2d(&x, &k, None, 0, 1).is_err());
        let small = rand_tensor(&[1, 1, 2, 2], 24);
        assert!(conv2d(&small, &k, None, 1, 0).is_err());
    }
}
