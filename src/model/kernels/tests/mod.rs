//! Tests of the model's ops: the reference path's workarounds for candle's defects
//! ([`reference`]), each fast kernel against the reference path and finite differences
//! ([`fast`]), and whole training runs of both paths ([`training`]).
use candle_core::{DType, Device, Result, Tensor, Var};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::set_fast_path;

mod fast;
mod reference;
mod training;

/// Restores the fast path for this thread when dropped (also on panic).
pub(super) struct FastPath;
impl Drop for FastPath {
    fn drop(&mut self) {
        set_fast_path(true);
    }
}

pub(super) fn rand_tensor(dims: &[usize], seed: u64) -> Tensor {
    let mut rng = StdRng::seed_from_u64(seed);
    let n: usize = dims.iter().product();
    let data: Vec<f64> = (0..n).map(|_| rng.random::<f64>() * 2.0 - 1.0).collect();
    Tensor::from_vec(data, dims, &Device::Cpu).unwrap()
}

pub(super) fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
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
/// differences on every element of every input (f64, CPU), on the fast kernels and on
/// the reference path.
pub(super) fn check_grads(inputs: &[Tensor], f: &dyn Fn(&[Tensor]) -> Result<Tensor>) {
    let _restore = FastPath;
    for fast in [true, false] {
        set_fast_path(fast);
        check_grads_on_path(inputs, f);
    }
}

fn check_grads_on_path(inputs: &[Tensor], f: &dyn Fn(&[Tensor]) -> Result<Tensor>) {
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
                "input {k} element {idx} (fast path {}): numeric {numeric} analytic {}",
                super::fast_path_enabled(),
                analytic[idx]
            );
        }
    }
}

/// Largest `|a - b| / (1 + |b|)` over all elements.
pub(super) fn rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims());
    let a: Vec<f64> = a
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let b: Vec<f64> = b
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
        .fold(0.0, f64::max)
}

/// Output and input gradients of `sum(f(inputs) * probe)` on one path.
pub(super) fn run_path(
    fast: bool,
    inputs: &[Tensor],
    f: &dyn Fn(&[Tensor]) -> Result<Tensor>,
) -> Vec<Tensor> {
    let _restore = FastPath;
    set_fast_path(fast);
    let vars: Vec<Var> = inputs
        .iter()
        .map(|t| Var::from_tensor(t).unwrap())
        .collect();
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let out = f(&ts).unwrap();
    let probe = rand_tensor(out.dims(), 77).to_dtype(out.dtype()).unwrap();
    let grads = (&out * &probe)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let mut all = vec![out.clone()];
    all.extend(
        vars.iter()
            .map(|v| grads.get(v.as_tensor()).expect("gradient missing").clone()),
    );
    all
}

/// Compares output and gradients of the fast path with the reference path in f64 (to 1e-10)
/// and f32 (to `tol32`, relative).
fn compare(name: &str, dims: &[&[usize]], tol32: f64, f: &dyn Fn(&[Tensor]) -> Result<Tensor>) {
    for dtype in [DType::F64, DType::F32] {
        let inputs: Vec<Tensor> = dims
            .iter()
            .enumerate()
            .map(|(i, d)| rand_tensor(d, 31 + i as u64).to_dtype(dtype).unwrap())
            .collect();
        let fast = run_path(true, &inputs, f);
        let reference = run_path(false, &inputs, f);
        let tol = if dtype == DType::F64 { 1e-10 } else { tol32 };
        for (i, (a, b)) in fast.iter().zip(&reference).enumerate() {
            let d = rel_diff(a, b);
            assert!(
                d <= tol,
                "{name} {dtype:?}: tensor {i} (0 = output) differs by {d}"
            );
        }
    }
}
