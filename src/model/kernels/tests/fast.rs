//! Each fast kernel against the reference path (candle's own ops and the generic code in
//! `ops.rs`) on odd shapes in f64 and f32, plus finite differences of the fused ops.
use candle_core::{DType, Device, Tensor};
use candle_nn::BatchNorm;

use super::{check_grads, compare, rand_tensor, rel_diff, run_path, set_fast_path, FastPath};
use crate::model::ops::{self, Activation};

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
        // Stride 1 without padding, and a 5x5 with less than "same" padding: their input
        // gradients run as forward convolutions with padding k - 1 - p.
        (2, 3, 6, 5, 4, 3, 1, 0),
        (2, 2, 7, 9, 3, 5, 1, 1),
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
fn conv2d_matches_reference_with_several_images_per_gemm() {
    // Small outputs (6x6 = 36 positions) put several images into one GEMM and 5 images leave
    // a short last span; the same for a 1x1 convolution and a strided one.
    // A gradient of more than 2^16 elements (128 x 64 x 3 x 3) is split by input channels.
    for (ci, co, k, s, p) in [
        (40, 6, 3, 1, 1),
        (40, 6, 1, 1, 0),
        (20, 6, 3, 2, 1),
        (64, 128, 3, 1, 1),
    ] {
        compare(
            &format!("conv2d 5x{ci}x6x6 -> {co}, k {k} s {s} p {p}"),
            &[&[5, ci, 6, 6], &[co, ci, k, k]],
            1e-4,
            &|t| ops::conv2d(&t[0], &t[1], None, s, p),
        );
    }
}

#[test]
fn winograd_conv2d_matches_reference() {
    // 3x3 stride-1 layers with 128 channels and at least 196 output positions take the
    // Winograd path (forward, and the input gradient as a forward convolution): odd output
    // sizes (a last tile half outside), padding 0, 1 and 2, images grouped per block (14x14)
    // and one image split into bands of tile rows (48x40).
    for (b, ci, h, w, co, p) in [
        (3, 128, 15, 17, 128, 1),
        (2, 128, 16, 16, 136, 0),
        (2, 128, 14, 15, 128, 2),
        (5, 128, 14, 14, 128, 1),
        (1, 128, 48, 40, 128, 1),
    ] {
        compare(
            &format!("winograd conv2d {b}x{ci}x{h}x{w} -> {co}, p {p}"),
            &[&[b, ci, h, w], &[co, ci, 3, 3]],
            1e-4,
            &|t| ops::conv2d(&t[0], &t[1], None, 1, p),
        );
    }
}

#[test]
fn winograd_and_im2col_agree() {
    // The same layer through both paths of the fast kernels, in f32: Winograd's transforms
    // change the rounding (so the two differ at all: the layer did take the Winograd path),
    // not the result.
    let x = rand_tensor(&[2, 64, 14, 14], 5)
        .to_dtype(DType::F32)
        .unwrap();
    let k = rand_tensor(&[64, 64, 3, 3], 6)
        .to_dtype(DType::F32)
        .unwrap();
    let winograd = ops::conv2d(&x, &k, None, 1, 1).unwrap();
    super::super::set_winograd(false);
    super::super::set_direct(false);
    let im2col = ops::conv2d(&x, &k, None, 1, 1);
    super::super::set_winograd(true);
    super::super::set_direct(true);
    let d = rel_diff(&winograd, &im2col.unwrap());
    assert!(d > 0.0 && d < 5e-5, "Winograd and im2col differ by {d}");
}

#[test]
fn direct_conv2d_matches_reference() {
    // f32 layers with at least 32 output channels and at most 1152 taps take the direct
    // kernel on a CPU with AVX-512 (forward, and stride-1 input gradients as forward
    // convolutions); f64 stays on im2col. Output channels in full and partial blocks of 32
    // and 64, pixel counts that leave short pixel blocks, strides 1 to 3, a strided 1x1, a
    // 7x7/2 stem, and 128 x 9 taps (two panel chunks of 1024 taps at 64 channels).
    for (b, ci, h, w, co, k, s, p) in [
        (3, 5, 9, 7, 40, 3, 1, 1),
        (2, 3, 17, 15, 64, 7, 2, 3),
        (5, 8, 6, 6, 33, 3, 2, 1),
        (2, 6, 11, 10, 32, 1, 2, 0),
        (2, 4, 10, 9, 48, 5, 3, 2),
        (3, 128, 5, 4, 64, 3, 1, 1),
        (1, 16, 7, 7, 96, 3, 1, 0),
    ] {
        compare(
            &format!("direct conv2d {b}x{ci}x{h}x{w} -> {co}, k {k} s {s} p {p}"),
            &[&[b, ci, h, w], &[co, ci, k, k]],
            1e-4,
            &|t| ops::conv2d(&t[0], &t[1], None, s, p),
        );
    }
}

#[test]
fn direct_kernel_agrees_with_im2col() {
    // The direct kernel called by itself (so it certainly ran) against the im2col path, on a
    // strided layer with a partial block of output channels and a short pixel block.
    use super::super::geom::Geom;
    use super::super::{conv, direct};
    if !direct::available() {
        eprintln!("skipped: this CPU has no AVX-512, so the direct kernel never runs here");
        return;
    }
    let g = Geom::new((3, 24, 9, 9), (40, 3, 3), 2, 1).unwrap();
    let x: Vec<f32> = rand_tensor(&[3 * 24 * 81], 7)
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1()
        .unwrap();
    let k: Vec<f32> = rand_tensor(&[40 * 24 * 9], 8)
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1()
        .unwrap();
    let ours = direct::forward(&g, &x, &k).unwrap();
    super::super::set_direct(false);
    let im2col = conv::forward(&g, &x, &k);
    super::super::set_direct(true);
    let im2col = im2col.unwrap();
    assert_eq!(ours.len(), im2col.len());
    let worst = ours
        .iter()
        .zip(&im2col)
        .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
        .fold(0f32, f32::max);
    assert!(worst < 1e-5, "direct and im2col differ by {worst}");
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
        // Padding not a multiple of the stride; many small planes to a work item (the last
        // item short).
        (1, 2, 10, 9, 5, 3, 2),
        (3, 40, 4, 5, 3, 2, 1),
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
        // The 2x2 / stride 2 path, odd sizes floored, many planes to a work item.
        (2, 3, 7, 9, 2, 2, 0),
        (3, 40, 4, 6, 2, 2, 0),
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

/// ReLU6 (against the generic where_cond version) and SiLU (against candle's), values and
/// gradients, on values spread over [-8, 8] so that ReLU6 clamps at both ends.
#[test]
fn relu6_and_silu_match_reference_and_finite_differences() {
    compare("relu6", &[&[2, 3, 5, 7]], 0.0, &|t| {
        ops::relu6(&(&t[0] * 8.0)?)
    });
    compare("silu", &[&[2, 3, 5, 7]], 1e-6, &|t| {
        ops::silu(&(&t[0] * 8.0)?)
    });
    let x = rand_tensor(&[2, 3, 4, 5], 21);
    check_grads(std::slice::from_ref(&x), &|t| ops::relu6(&(&t[0] * 8.0)?));
    check_grads(&[x], &|t| ops::silu(&(&t[0] * 8.0)?));
}

#[test]
fn batch_norm_matches_reference_with_running_stats() {
    for train in [true, false] {
        for act in [
            Activation::Identity,
            Activation::Relu,
            Activation::Relu6,
            Activation::Silu,
        ] {
            // Planes of 15 elements (less than one 16-lane chunk), and of 323 (a block of 256
            // for the sums, then 4 chunks of 16 and 3 more), many planes to a work item.
            for x in [&[3usize, 4, 5, 3][..], &[2, 9, 17, 19]] {
                let name = format!("batch_norm train {train} {act:?} {x:?}");
                let dims: &[&[usize]] = &[x, &x[1..2], &x[1..2]];
                // gamma * 8: outputs beyond ReLU6's 6 as well as below 0.
                compare(&name, dims, 1e-4, &|t| {
                    let gamma = (&t[1] * 8.0)?;
                    ops::batch_norm(&t[0], &norm(&gamma, &t[2]), train, act)
                });
            }
        }
    }
    // The running statistics move the same way on both paths.
    let stats = |fast: bool| {
        let _restore = FastPath;
        set_fast_path(fast);
        let bn = norm(&rand_tensor(&[3], 5), &rand_tensor(&[3], 6));
        ops::batch_norm(
            &rand_tensor(&[4, 3, 2, 5], 7),
            &bn,
            true,
            Activation::Identity,
        )
        .unwrap();
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
    for act in [Activation::Relu, Activation::Relu6, Activation::Silu] {
        check_grads(&[x.clone(), g.clone(), b.clone()], &|t| {
            let gamma = (&t[1] * 8.0)?;
            ops::batch_norm(&t[0], &norm(&gamma, &t[2]), true, act)
        });
    }
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

/// The vectorisable f32 exp is within 2 ulp (relative 2.4e-7) of libm's on [-87, 88] and
/// saturates outside.
#[test]
fn fast_exp_matches_libm() {
    let exp = crate::model::kernels::exp_f32;
    let (mut worst, mut at) = (0f64, 0f32);
    for i in 0..175_000 {
        let x = -87.0 + i as f32 * 0.001;
        let (got, want) = (exp(x) as f64, (x as f64).exp());
        if (got - want).abs() / want > worst {
            (worst, at) = ((got - want).abs() / want, x);
        }
    }
    assert!(worst < 2.4e-7, "worst relative error {worst:e} at {at}");
    assert_eq!(exp(0.0), 1.0);
    assert!(exp(-200.0) > 0.0 && exp(-200.0) < 1e-37);
    assert!(exp(200.0).is_finite() && exp(200.0) > 1e38);
}

/// The bias of dense layers and convolutions (one parallel pass each way) against candle's
/// `broadcast_add`, outputs and gradients, on shapes whose work items split unevenly (many
/// small images per item, a channel count not a multiple of the gradient's channel chunks).
#[test]
fn bias_add_matches_reference() {
    for (x, w) in [
        (&[3usize, 11][..], &[5usize, 11][..]),
        (&[33, 700], &[13, 700]),
    ] {
        compare("linear", &[x, w, &[w[0]]], 1e-5, &|t| {
            let layer = candle_nn::Linear::new(t[1].clone(), Some(t[2].clone()));
            ops::linear(&t[0], &layer)
        });
    }
    for (b, ci, h, w, co) in [(5, 2, 3, 3, 9), (2, 3, 17, 13, 19), (1, 1, 1, 1, 1)] {
        compare(
            &format!("conv2d 1x1 + bias {b}x{ci}x{h}x{w} -> {co}"),
            &[&[b, ci, h, w], &[co, ci, 1, 1], &[co]],
            1e-5,
            &|t| ops::conv2d(&t[0], &t[1], Some(&t[2]), 1, 0),
        );
    }
}

/// Dropout's parallel pass keeps exactly the elements the reference path's mask keeps, and its
/// gradient applies the same mask.
#[test]
fn dropout_matches_reference() {
    use rand::SeedableRng;
    for p in [0.25, 0.5] {
        compare(&format!("dropout {p}"), &[&[3, 5, 70, 70]], 0.0, &|t| {
            crate::model::layers::dropout(&t[0], p, &mut rand::rngs::StdRng::seed_from_u64(5))
        });
    }
}

/// Every instruction-set level the kernels' loops are compiled for (`kernels::simd`) gives the
/// same values and gradients bit for bit, through a small net that takes every kernel:
/// Winograd and im2col convolutions, batch norm fused with SiLU / ReLU6 / ReLU, stride-2
/// depthwise, max pooling, the residual join, SiLU, dropout, global pooling and a linear
/// head. (The direct kernel, AVX-512 only, is off: it sums in another order than im2col.)
/// On a CPU without AVX-512 (or AVX2) the levels it lacks are skipped, with a message.
#[test]
fn simd_levels_agree_bit_for_bit() {
    use crate::model::kernels::{set_direct, set_simd, Simd};
    struct Restore;
    impl Drop for Restore {
        fn drop(&mut self) {
            set_simd(Simd::Avx512);
            set_direct(true);
        }
    }
    let _restore = Restore;
    set_direct(false);
    let f32 = |dims: &[usize], seed| rand_tensor(dims, seed).to_dtype(DType::F32).unwrap();
    let inputs = [
        f32(&[2, 3, 16, 16], 60),
        f32(&[64, 3, 3, 3], 61),
        f32(&[64, 64, 3, 3], 62),
        f32(&[64, 1, 5, 5], 63),
        f32(&[64], 64),
        f32(&[64], 65),
        f32(&[10, 64], 66),
    ];
    let net = |t: &[Tensor]| -> candle_core::Result<Tensor> {
        use rand::SeedableRng;
        let bn = |seed: u32| -> candle_core::Result<BatchNorm> {
            Ok(norm(&(&t[4] * f64::from(seed))?, &t[5]))
        };
        let x = ops::conv2d(&t[0], &t[1], None, 1, 1)?;
        let x = ops::batch_norm(&x, &bn(2)?, true, Activation::Silu)?;
        // 64 -> 64 channels, 3x3, 16x16: Winograd's shape.
        let y = ops::conv2d(&x, &t[2], None, 1, 1)?;
        let y = ops::batch_norm(&y, &bn(3)?, true, Activation::Relu6)?;
        let y = ops::add_relu(&x, &y)?;
        let y = ops::depthwise_conv2d(&y, &t[3], Some(&t[5]), 2, 2)?;
        let y = ops::batch_norm(&y, &bn(4)?, true, Activation::Relu)?;
        let y = ops::silu(&ops::max_pool2d(&y, 3, 2, 1)?)?;
        let y = crate::model::layers::dropout(&y, 0.25, &mut rand::rngs::StdRng::seed_from_u64(7))?;
        let y = ops::avg_pool_global(&y)?;
        ops::linear(&y, &candle_nn::Linear::new(t[6].clone(), None))
    };
    // The output and every input's gradient, as f32 values.
    let run = |level: Simd| -> Vec<Vec<f32>> {
        set_simd(level);
        run_path(true, &inputs, &net)
            .iter()
            .map(|t| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
            .collect()
    };
    let baseline = run(Simd::Baseline);
    for level in [Simd::Avx2, Simd::Avx512] {
        if level > Simd::detected() {
            eprintln!("simd_levels_agree_bit_for_bit: this CPU lacks {level:?}, not compared");
            continue;
        }
        let got = run(level);
        for (i, (a, b)) in baseline.iter().zip(&got).enumerate() {
            let differ = a
                .iter()
                .zip(b)
                .filter(|(x, y)| x.to_bits() != y.to_bits())
                .count();
            assert_eq!(
                differ,
                0,
                "{level:?}: {differ} of {} values of output {i} differ",
                a.len()
            );
        }
    }
}
