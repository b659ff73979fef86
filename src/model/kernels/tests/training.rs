//! Whole-model checks: a fixed-seed training run gives the same losses on the fast kernels
//! as on the reference path, and results do not depend on the thread count.
use candle_core::{DType, Device, Tensor};

use super::{rand_tensor, rel_diff, run_path, set_fast_path, FastPath};
use crate::model::{ops, Backbone, Model, ModelSpec};

#[test]
fn results_do_not_depend_on_the_thread_count() {
    // A strided conv of small images (several per GEMM), a conv with row tiles, one with
    // several image groups, and one whose weight gradient is split by input channels.
    for (x, k, s, p) in [
        ([9, 3, 6, 5], [4, 3, 3, 3], 2, 1),
        ([3, 40, 24, 24], [8, 40, 3, 3], 1, 1),
        ([9, 8, 4, 4], [4, 8, 3, 3], 1, 1),
        ([3, 64, 5, 5], [128, 64, 3, 3], 1, 1),
    ] {
        let x = rand_tensor(&x, 11).to_dtype(DType::F32).unwrap();
        let k = rand_tensor(&k, 12).to_dtype(DType::F32).unwrap();
        let f = |t: &[Tensor]| ops::conv2d(&t[0], &t[1], None, s, p);
        crate::model::kernels::set_threads(1);
        let one = run_path(true, &[x.clone(), k.clone()], &f);
        crate::model::kernels::set_threads(2);
        let two = run_path(true, &[x, k], &f);
        crate::model::kernels::set_threads(0);
        for (a, b) in one.iter().zip(&two) {
            assert_eq!(rel_diff(a, b), 0.0);
        }
    }
}

/// Losses of `steps` SGD steps (momentum 0.9) of a fixed-seed model on fixed random data.
fn losses(fast: bool, spec: &ModelSpec, steps: usize) -> Vec<f32> {
    let _restore = FastPath;
    set_fast_path(fast);
    let model = Model::new(spec, &Device::Cpu, 7).unwrap();
    let (b, lr) = (6, 0.05);
    let x = rand_tensor(&[b, spec.channels, spec.height, spec.width], 13)
        .to_dtype(DType::F32)
        .unwrap();
    let labels = Tensor::from_vec(
        (0..b as u32).map(|i| i % 3).collect::<Vec<u32>>(),
        b,
        &Device::Cpu,
    )
    .unwrap();
    let vars = model.trainable_vars();
    let mut bufs: Vec<Option<Tensor>> = vec![None; vars.len()];
    let mut out = Vec::new();
    for _ in 0..steps {
        let loss =
            candle_nn::loss::cross_entropy(&model.forward(&x, true).unwrap(), &labels).unwrap();
        out.push(loss.to_scalar::<f32>().unwrap());
        let grads = loss.backward().unwrap();
        for (var, buf) in vars.iter().zip(bufs.iter_mut()) {
            let g = grads.get(var.as_tensor()).unwrap().clone();
            let m = match buf.take() {
                None => g,
                Some(m) => ((m * 0.9).unwrap() + g).unwrap(),
            };
            var.set(&(var.as_tensor() - (&m * lr).unwrap()).unwrap())
                .unwrap();
            *buf = Some(m);
        }
    }
    let eval = model
        .forward(&x, false)
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    out.push(eval);
    out
}

#[test]
fn training_loss_curve_matches_reference_path() {
    let spec = |backbone, channels, size, base_width| ModelSpec {
        backbone,
        channels,
        height: size,
        width: size,
        classes: 3,
        base_width,
    };
    for spec in [
        spec(Backbone::Resnet18, 3, 10, 4),
        spec(Backbone::Cnn, 1, 9, 2),
    ] {
        let (fast, reference) = (losses(true, &spec, 4), losses(false, &spec, 4));
        for (i, (a, b)) in fast.iter().zip(&reference).enumerate() {
            let rel = (a - b).abs() / b.abs().max(1e-3);
            assert!(
                rel < 1e-4,
                "{:?} step {i}: fast {a} reference {b}",
                spec.backbone
            );
        }
    }
}
