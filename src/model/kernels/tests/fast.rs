//! Each fast kernel against the reference path (candle's own ops and the generic code in
//! `ops.rs`) on odd shapes in f64 and f32, plus finite differences of the fused ops.
use candle_core::{DType, Device, Tensor};
use candle_nn::BatchNorm;

use super::{check_grads, compare, rand_tensor, rel_diff, set_fast_path, FastPath};
use crate::model::ops;

#[test]
fn conv2d_matches_reference_on_odd_shapes() {
    // (b, ci, h, w, co, k, stride, padding): stride 2, padding, non-square, odd, 1x1, 7x7/2.
    for (b, ci, h, w, co, k, s, p) in [
        (2, 3, 7, 6, 4, 3, 2, 1),
        (1, 2, 5, 5, 3, 1, 1, 0),
        (2, 4, 5, 6, 3, 1, 2, 0),
        (1, 2, 9, 8, 2, 7, 2, 3),
        (2, 3, 6, 7, 2, 3, 1, 1),
        (1, 2, 8, 5, 2, 3, 3, 0),
        (1, 1, 4, 4, 2, 5, 1, 2),
    ] {
        let name = format!("conv2d {b}x{ci}x{h}x{w} -> {co}, k {k} s {s} p {p}");
        compare(
            &name,
            &[&[b, ci, h, w], &[co, ci, k, k], &[co]],
            1e-5,
            &|t| ops::conv2d(&t[0], &t[1], Some(&t[2]), s, p),
        );
    }
}

#[test]
fn conv2d_matches_reference_across_im2col_tiles() {
    // 64 input channels at width 40: the im2col block is split into several row tiles.
    compare(
        "conv2d tiled",
        &[&[2, 64, 40, 40], &[4, 64, 3, 3]],
        1e-4,
        &|t| ops::conv2d(&t[0], &t[1], None, 1, 1),
    );
}

#[test]
fn depthwise_matches_reference_and_finite_differences() {
    for (b, c, h, w, k, s, p) in [
        (2, 3, 7, 6, 3, 2, 1),
        (1, 4, 5, 5, 3, 1, 1),
        (1, 2, 9, 8, 5, 2, 2),
        (2, 3, 6, 5, 1, 1, 0),
        (1, 2, 8, 7, 3, 3, 0),
        // Maps narrower (and lower) than the padding: EfficientNet's 5x5 on 1x1 and 2x1 maps.
        (2, 3, 1, 1, 5, 1, 2),
        (1, 2, 2, 1, 5, 1, 2),
        (1, 2, 1, 2, 5, 2, 2),
    ] {
        let name = format!("depthwise {b}x{c}x{h}x{w}, k {k} s {s} p {p}");
        compare(&name, &[&[b, c, h, w], &[c, 1, k, k], &[c]], 1e-5, &|t| {
            ops::depthwise_conv2d(&t[0], &t[1], Some(&t[2]), s, p)
        });
    }
    let (x, k) = (rand_tensor(&[2, 2, 5, 6], 1), rand_tensor(&[2, 1, 3, 3], 2));
    check_grads(&[x, k], &|t| {
        ops::depthwise_conv2d(&t[0], &t[1], None, 2, 1)
    });
}

#[test]
fn max_pool_matches_reference() {
    for (b, c, h, w, k, s, p) in [
        (2, 3, 7, 6, 3, 2, 1),
        (1, 2, 8, 8, 2, 2, 0),
        (1, 2, 5, 7, 3, 1, 1),
        (2, 2, 9, 5, 3, 3, 0),
    ] {
        let name = format!("max_pool {b}x{c}x{h}x{w}, k {k} s {s} p {p}");
        // Overlapping windows add gradients in another order: f32 rounding differs slightly.
        compare(&name, &[&[b, c, h, w]], 1e-6, &|t| {
            ops::max_pool2d(&t[0], k, s, p)
        });
    }
}

#[test]
fn relu_and_add_relu_match_reference_and_finite_differences() {
    compare("relu", &[&[2, 3, 5, 7]], 0.0, &|t| ops::relu(&t[0]));
    compare("add_relu", &[&[2, 3, 5, 7], &[2, 3, 5, 7]], 1e-7, &|t| {
        ops::add_relu(&t[0], &t[1])
    });
    let (a, b) = (rand_tensor(&[1, 2, 3, 4], 3), rand_tensor(&[1, 2, 3, 4], 4));
    check_grads(&[a, b], &|t| ops::add_relu(&t[0], &t[1]));
}

/// A candle-nn batch norm with affine parameters `gamma`, `beta` and random running stats.
fn norm(gamma: &Tensor, beta: &Tensor) -> BatchNorm {
    let (c, dtype) = (gamma.dim(0).unwrap(), gamma.dtype());
    let mean = rand_tensor(&[c], 40).to_dtype(dtype).unwrap();
    let var = (rand_tensor(&[c], 41).abs().unwrap() + 0.5)
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    BatchNorm::new(c, mean, var, gamma.clone(), beta.clone(), 1e-5).unwrap()
}

#[test]
fn batch_norm_matches_reference_with_running_stats() {
    for (train, relu) in [(true, false), (true, true), (false, false), (false, true)] {
        let name = format!("batch_norm train {train} relu {relu}");
        let dims: &[&[usize]] = &[&[3, 4, 5, 3], &[4], &[4]];
        compare(&name, dims, 1e-4, &|t| {
            ops::batch_norm(&t[0], &norm(&t[1], &t[2]), train, relu)
        });
    }
    // The running statistics move the same way on both paths.
    let stats = |fast: bool| {
        let _restore = FastPath;
        set_fast_path(fast);
        let bn = norm(&rand_tensor(&[3], 5), &rand_tensor(&[3], 6));
        ops::batch_norm(&rand_tensor(&[4, 3, 2, 5], 7), &bn, true, false).unwrap();
        (
            bn.running_mean().copy().unwrap(),
            bn.running_var().copy().unwrap(),
        )
    };
    let (fast, reference) = (stats(true), stats(false));
    assert!(rel_diff(&fast.0, &reference.0) < 1e-12 && rel_diff(&fast.1, &reference.1) < 1e-12);
}

#[test]
fn batch_norm_finite_differences() {
    let (x, g, b) = (
        rand_tensor(&[3, 2, 2, 3], 8),
        rand_tensor(&[2], 9),
        rand_tensor(&[2], 10),
    );
    check_grads(&[x, g, b], &|t| {
        ops::batch_norm(&t[0], &norm(&t[1], &t[2]), true, true)
    });
}

#[test]
fn unsupported_inputs_take_the_reference_path() {
    // Integer tensors, like tensors on other devices, never reach the kernels.
    let x = Tensor::ones((1, 1, 4, 4), DType::U8, &Device::Cpu).unwrap();
    assert!(!crate::model::kernels::supports(&x));
    let y = rand_tensor(&[1, 1, 4, 4], 14).to_dtype(DType::F32).unwrap();
    assert!(crate::model::kernels::supports(&y));
    let _restore = FastPath;
    set_fast_path(false);
    assert!(!crate::model::kernels::supports(&y));
}
