//! CUDA smoke test: do our models give the CPU's numbers on the GPU, and do they train there?
//!
//!     scripts/build-cuda.sh                       # builds target-cuda/release/examples/cuda_smoke
//!     cuda_smoke [STEPS] [BATCH]                  # defaults: 50 Adam steps, batch 64
//!     cuda_smoke --cpu [STEPS] [BATCH]            # dry run of the same checks, CPU as "GPU"
//!
//! First, op by op (cuDNN on the GPU against the fast CPU kernels, f32 and bf16): dense and
//! depthwise convolution, max-pool and training-mode batch norm, on odd shapes, stride 2,
//! padding: the outputs and the gradients of `sum(y * r)` for a random `r`, as max |diff| over
//! max |CPU value| (f32 convolutions may use TF32 like PyTorch's: < 1e-2; bf16: < 5e-2;
//! pooling and batch norm in f32: < 1e-4), and batch norm's running statistics.
//! Then for resnet18 (base width 16) and cnn (base width 32), 3x32x32 inputs, 10 classes:
//! (a) the same seed on CPU and GPU, one eval-mode forward, max |diff| of the logits (< 1e-3);
//!     then 3 Adam steps on each device from the same start, max |diff| of the losses;
//! (b) STEPS Adam steps (lr 1e-3) on the GPU on one fixed random batch: the mean loss of the
//!     last 5 steps must be below 0.5x the first for resnet18, 0.97x for the cnn (its dropout
//!     0.25/0.25/0.5 makes memorising 256 random labels slow and noisy); img/s.
//! Exits 2 with a clear message when CUDA is unavailable (CPU build, no driver, no GPU),
//! 1 when a check fails.
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::Var;
use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use sweep::model::{ops, Backbone, Model, ModelSpec};
use sweep::train::optim::{Optimizer, OptimizerConfig};
use sweep::train::trainer::cross_entropy;

const SEED: u64 = 42;
const TOL: f32 = 1e-3;
/// Loss agreement after 3 Adam steps: cuDNN may run f32 convolutions in TF32 (PyTorch's
/// default too), whose 10-bit mantissa moves the weights apart by about 1e-3 in 3 steps.
const STEP_TOL: f32 = 5e-3;

fn adam() -> OptimizerConfig {
    OptimizerConfig::Adam {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
    }
}

/// A fixed random batch (uniform images, random labels), made on the host.
fn batch(n: usize, dev: &Device) -> Result<(Tensor, Tensor)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let x: Vec<f32> = (0..n * 3 * 32 * 32).map(|_| rng.random::<f32>()).collect();
    let y: Vec<u32> = (0..n).map(|_| rng.random_range(0..10u32)).collect();
    Ok((
        Tensor::from_vec(x, (n, 3, 32, 32), dev)?,
        Tensor::from_vec(y, n, dev)?,
    ))
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    let a = a.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
    let b = b.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
    Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

/// One Adam step on (x, y); returns the loss before the step.
fn step(model: &Model, opt: &mut Optimizer, x: &Tensor, y: &Tensor) -> Result<f32> {
    let loss = cross_entropy(&model.forward(x, true)?, y, 0.0)?;
    opt.backward_step(&loss)?;
    Ok(loss.to_scalar::<f32>()?)
}

fn check(spec: &ModelSpec, gpu: &Device, steps: usize, bs: usize) -> Result<bool> {
    let name = spec.backbone.name();
    let mut ok = true;

    // (a) eval-mode forward, then 3 training steps, on both devices from the same seed.
    let cpu_model = Model::new(spec, &Device::Cpu, SEED)?;
    let gpu_model = Model::new(spec, gpu, SEED)?;
    let (xc, yc) = batch(bs, &Device::Cpu)?;
    let (xg, yg) = (xc.to_device(gpu)?, yc.to_device(gpu)?);
    let fwd = max_abs_diff(
        &cpu_model.forward(&xc, false)?,
        &gpu_model.forward(&xg, false)?,
    )?;
    println!(
        "{name}: {} params; eval forward max|cpu-gpu| = {fwd:.2e}",
        gpu_model.parameter_count()
    );
    ok &= fwd < TOL;
    let mut oc = Optimizer::new(&adam(), cpu_model.trainable_vars(), 1e-3)?;
    let mut og = Optimizer::new(&adam(), gpu_model.trainable_vars(), 1e-3)?;
    let mut worst = 0f32;
    for _ in 0..3 {
        let (lc, lg) = (
            step(&cpu_model, &mut oc, &xc, &yc)?,
            step(&gpu_model, &mut og, &xg, &yg)?,
        );
        worst = worst.max((lc - lg).abs());
    }
    let after = max_abs_diff(
        &cpu_model.forward(&xc, false)?,
        &gpu_model.forward(&xg, false)?,
    )?;
    println!("{name}: 3 Adam steps on both: max|loss cpu-gpu| = {worst:.2e}, eval logits after = {after:.2e}");
    ok &= worst < STEP_TOL;
    drop((cpu_model, oc));

    // (b) train on the GPU: memorise one fixed batch.
    let model = Model::new(spec, gpu, SEED)?;
    let mut opt = Optimizer::new(&adam(), model.trainable_vars(), 1e-3)?;
    let first = step(&model, &mut opt, &xg, &yg)?; // includes kernel loading: not timed
    let mut curve = vec![first];
    gpu.synchronize()?;
    let t = Instant::now();
    for _ in 1..steps {
        curve.push(step(&model, &mut opt, &xg, &yg)?);
    }
    gpu.synchronize()?;
    let secs = t.elapsed().as_secs_f64();
    let shown: Vec<String> = curve
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 10 == 0 || *i == curve.len() - 1)
        .map(|(i, l)| format!("{}:{l:.3}", i + 1))
        .collect();
    let tail = &curve[curve.len().saturating_sub(5)..];
    let last = tail.iter().sum::<f32>() / tail.len() as f32; // dropout makes single steps noisy
    let ips = (bs * (steps - 1)) as f64 / secs;
    println!("{name}: loss by step {}", shown.join(" "));
    println!(
        "{name}: {:.1} ms/step, {ips:.0} img/s (batch {bs}, train fwd+bwd+Adam, f32)",
        1e3 * secs / (steps - 1) as f64
    );
    let factor = if spec.backbone == Backbone::Cnn {
        0.97
    } else {
        0.5
    };
    if !(last.is_finite() && last < factor * first) {
        println!("{name}: FAIL: loss did not go down (first {first:.3}, mean of last 5 {last:.3})");
        ok = false;
    }
    Ok(ok)
}

/// Max |a - b| over max |a| (a: the CPU reference).
fn rel_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    let scale = a
        .to_dtype(DType::F32)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f32>()?;
    Ok(max_abs_diff(a, b)? / scale.max(1e-12))
}

fn random(shape: &[usize], seed: u64) -> Result<Tensor> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
    Ok(Tensor::from_vec(v, shape, &Device::Cpu)?)
}

/// Output and gradients of `f` on both devices; prints and returns the worst relative diff.
fn compare_op(
    name: &str,
    gpu: &Device,
    dtype: DType,
    inputs: &[Tensor],
    f: &dyn Fn(&[Tensor]) -> candle_core::Result<Tensor>,
) -> Result<f32> {
    let run = |dev: &Device, dt: DType| -> Result<Vec<Tensor>> {
        // The CPU reference computes in f32 on the same (bf16-rounded) values.
        let vars: Vec<Var> = inputs
            .iter()
            .map(|t| Var::from_tensor(&t.to_dtype(dtype)?.to_dtype(dt)?.to_device(dev)?))
            .collect::<candle_core::Result<_>>()?;
        let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let y = f(&ts)?;
        let r = random(y.dims(), 99)?.to_dtype(dt)?.to_device(dev)?;
        let grads = (y.clone() * r)?
            .to_dtype(DType::F32)?
            .sum_all()?
            .backward()?;
        let mut out = vec![y];
        for t in &ts {
            out.push(grads.get(t).context("missing gradient")?.clone());
        }
        Ok(out)
    };
    let cpu = run(&Device::Cpu, DType::F32)?;
    let dev = run(gpu, dtype)?;
    let diffs: Vec<f32> = cpu
        .iter()
        .zip(&dev)
        .map(|(a, b)| rel_diff(a, b))
        .collect::<Result<_>>()?;
    let worst = diffs.iter().cloned().fold(0f32, f32::max);
    let shown: Vec<String> = diffs.iter().map(|d| format!("{d:.1e}")).collect();
    println!(
        "  {name} {dtype:?}: rel diff y, grads = {}",
        shown.join(", ")
    );
    Ok(worst)
}

/// A convolution to check: name, input shape, weight shape, stride, padding.
type ConvCase = (&'static str, [usize; 4], [usize; 4], usize, usize);

fn op_checks(gpu: &Device) -> Result<bool> {
    println!("ops, cuDNN against the CPU kernels:");
    let mut ok = true;
    for dtype in [DType::F32, DType::BF16] {
        let (conv_tol, exact_tol) = if dtype == DType::F32 {
            (1e-2, 1e-4)
        } else {
            (5e-2, 5e-2)
        };
        let convs: [ConvCase; 4] = [
            ("conv 3x3/1 p1", [4, 8, 15, 12], [16, 8, 3, 3], 1, 1),
            (
                "conv 3x3/2 p1 odd/even",
                [4, 8, 15, 12],
                [16, 8, 3, 3],
                2,
                1,
            ),
            ("conv 7x7/2 p3", [2, 3, 33, 30], [8, 3, 7, 7], 2, 3),
            ("conv 1x1/2", [4, 8, 15, 12], [16, 8, 1, 1], 2, 0),
        ];
        for (name, xs, ws, s, p) in convs {
            let d = compare_op(
                name,
                gpu,
                dtype,
                &[random(&xs, 1)?, random(&ws, 2)?],
                &|t| ops::conv2d(&t[0], &t[1], None, s, p),
            )?;
            ok &= d < conv_tol;
        }
        for (name, s) in [("depthwise 3x3/1 p1", 1), ("depthwise 3x3/2 p1", 2)] {
            let inputs = [random(&[4, 16, 15, 12], 3)?, random(&[16, 1, 3, 3], 4)?];
            let d = compare_op(name, gpu, dtype, &inputs, &|t| {
                ops::depthwise_conv2d(&t[0], &t[1], None, s, 1)
            })?;
            ok &= d < conv_tol;
        }
        for (name, k, s, p) in [("max-pool 3/2 p1", 3, 2, 1), ("max-pool 2/2", 2, 2, 0)] {
            let d = compare_op(name, gpu, dtype, &[random(&[4, 8, 15, 12], 5)?], &|t| {
                ops::max_pool2d(&t[0], k, s, p)
            })?;
            ok &= d < exact_tol;
        }
        // Training-mode batch norm (+ ReLU), and the running statistics it leaves.
        let bn_on = |dev: &Device| -> candle_core::Result<(candle_nn::BatchNorm, Tensor, Tensor)> {
            let rm = Var::zeros(16, DType::F32, dev)?.as_tensor().clone();
            let rv = Var::ones(16, DType::F32, dev)?.as_tensor().clone();
            let g = (random(&[16], 6).map_err(candle_core::Error::wrap)? + 1.5)?.to_device(dev)?;
            let b = random(&[16], 7)
                .map_err(candle_core::Error::wrap)?
                .to_device(dev)?;
            let bn = candle_nn::BatchNorm::new(16, rm.clone(), rv.clone(), g, b, 1e-5)?;
            Ok((bn, rm, rv))
        };
        let x = random(&[8, 16, 7, 5], 8)?;
        let (bn_cpu, rm_cpu, rv_cpu) = bn_on(&Device::Cpu)?;
        let (bn_gpu, rm_gpu, rv_gpu) = bn_on(gpu)?;
        let d = compare_op("batch norm + relu (train)", gpu, dtype, &[x], &|t| {
            let bn = if t[0].device().is_cpu() {
                &bn_cpu
            } else {
                &bn_gpu
            };
            ops::batch_norm(&t[0], bn, true, ops::Activation::Relu)
        })?;
        let stats = rel_diff(&rm_cpu, &rm_gpu)?.max(rel_diff(&rv_cpu, &rv_gpu)?);
        println!("  batch norm running statistics: rel diff {stats:.1e}");
        ok &= d < exact_tol.max(if dtype == DType::F32 { 1e-4 } else { 5e-2 }) && stats < 1e-3;
    }
    if !ok {
        println!("ops: FAIL (see the tolerances in the file's docs)");
    }
    Ok(ok)
}

fn main() -> Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let dry_run = args.first().is_some_and(|a| a == "--cpu");
    if dry_run {
        args.remove(0);
    }
    let args: Vec<usize> = args
        .iter()
        .map(|a| {
            a.parse()
                .context("usage: cuda_smoke [--cpu] [STEPS] [BATCH]")
        })
        .collect::<Result<_>>()?;
    let steps = args.first().copied().unwrap_or(50).max(2);
    let bs = args.get(1).copied().unwrap_or(64).max(1);
    let gpu = match if dry_run {
        Ok(Device::Cpu)
    } else {
        sweep::model::kernels::cuda_device(0)
    } {
        Ok(d) => d,
        Err(e) => {
            // candle appends a backtrace to driver errors: the first line says it all.
            eprintln!(
                "CUDA unavailable: {}",
                e.to_string().lines().next().unwrap_or_default()
            );
            eprintln!("  needs a binary built with `--features cuda` (scripts/build-cuda.sh),");
            eprintln!("  the NVIDIA driver (libcuda.so.1) and a visible GPU; see docs/CUDA.md");
            std::process::exit(2);
        }
    };
    println!(
        "device: {}, seed {SEED}, {steps} steps, batch {bs}",
        if dry_run { "cpu (dry run)" } else { "cuda:0" }
    );
    let mut ok = true;
    if !dry_run {
        ok &= op_checks(&gpu)?;
    }
    for (backbone, base_width) in [(Backbone::Resnet18, 16), (Backbone::Cnn, 32)] {
        let spec = ModelSpec {
            backbone,
            channels: 3,
            height: 32,
            width: 32,
            classes: 10,
            base_width,
        };
        ok &= check(&spec, &gpu, steps, bs)
            .with_context(|| format!("{} on CUDA", backbone.name()))?;
    }
    if !ok {
        bail!("CUDA smoke test FAILED (see above)");
    }
    println!("CUDA smoke test passed");
    Ok(())
}
