//! The reference path's workarounds for candle 0.11's defects (max-pool and stride-2
//! convolution gradients), against direct loops and finite differences; `check_grads`
//! checks the fast kernels too.
use candle_core::{DType, Device, Tensor, Var};

use super::{check_grads, max_abs_diff, rand_tensor};
use crate::model::ops::{avg_pool_global, conv2d, max_pool2d};

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
    let x =
        Var::from_tensor(&Tensor::ones((1, 1, 2, 2), DType::F64, &Device::Cpu).unwrap()).unwrap();
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
