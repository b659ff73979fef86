//! CUDA smoke test: do our models give the CPU's numbers on the GPU, and do they train there?
//!
//!     scripts/build-cuda.sh                       # builds target-cuda/release/examples/cuda_smoke
//!     cuda_smoke [STEPS] [BATCH]                  # defaults: 50 Adam steps, batch 64
//!     cuda_smoke --cpu [STEPS] [BATCH]            # dry run of the same checks, CPU as "GPU"
//!
//! For resnet18 (base width 16) and cnn (base width 32), 3x32x32 inputs, 10 classes:
//! (a) the same seed on CPU and GPU, one eval-mode forward, max |diff| of the logits (< 1e-3);
//!     then 3 Adam steps on each device from the same start, max |diff| of the losses;
//! (b) STEPS Adam steps (lr 1e-3) on the GPU on one fixed random batch: the mean loss of the
//!     last 5 steps must be below 0.9x the first (the cnn's dropout makes it slow and noisy); img/s.
//! Exits 2 with a clear message when CUDA is unavailable (CPU build, no driver, no GPU),
//! 1 when a check fails.
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use sweep::model::{Backbone, Model, ModelSpec};
use sweep::train::optim::{Optimizer, OptimizerConfig};
use sweep::train::trainer::cross_entropy;

const SEED: u64 = 42;
const TOL: f32 = 1e-3;

fn adam() -> OptimizerConfig {
    OptimizerConfig::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }
}

/// A fixed random batch (uniform images, random labels), made on the host.
fn batch(n: usize, dev: &Device) -> Result<(Tensor, Tensor)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let x: Vec<f32> = (0..n * 3 * 32 * 32).map(|_| rng.random::<f32>()).collect();
    let y: Vec<u32> = (0..n).map(|_| rng.random_range(0..10u32)).collect();
    Ok((Tensor::from_vec(x, (n, 3, 32, 32), dev)?, Tensor::from_vec(y, n, dev)?))
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
    let fwd = max_abs_diff(&cpu_model.forward(&xc, false)?, &gpu_model.forward(&xg, false)?)?;
    println!("{name}: {} params; eval forward max|cpu-gpu| = {fwd:.2e}", gpu_model.parameter_count());
    ok &= fwd < TOL;
    let mut oc = Optimizer::new(&adam(), cpu_model.trainable_vars(), 1e-3)?;
    let mut og = Optimizer::new(&adam(), gpu_model.trainable_vars(), 1e-3)?;
    let mut worst = 0f32;
    for _ in 0..3 {
        let (lc, lg) = (step(&cpu_model, &mut oc, &xc, &yc)?, step(&gpu_model, &mut og, &xg, &yg)?);
        worst = worst.max((lc - lg).abs());
    }
    let after = max_abs_diff(&cpu_model.forward(&xc, false)?, &gpu_model.forward(&xg, false)?)?;
    println!("{name}: 3 Adam steps on both: max|loss cpu-gpu| = {worst:.2e}, eval logits after = {after:.2e}");
    ok &= worst < TOL;
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
    println!("{name}: {:.1} ms/step, {ips:.0} img/s (batch {bs}, train fwd+bwd+Adam, f32)", 1e3 * secs / (steps - 1) as f64);
    if !(last.is_finite() && last < 0.9 * first) {
        println!("{name}: FAIL: loss did not go down (first {first:.3}, mean of last 5 {last:.3})");
        ok = false;
    }
    Ok(ok)
}

fn main() -> Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let dry_run = args.first().is_some_and(|a| a == "--cpu");
    if dry_run {
        args.remove(0);
    }
    let args: Vec<usize> = args.iter().map(|a| a.parse().context("usage: cuda_smoke [--cpu] [STEPS] [BATCH]")).collect::<Result<_>>()?;
    let steps = args.first().copied().unwrap_or(50).max(2);
    let bs = args.get(1).copied().unwrap_or(64).max(1);
    let gpu = match if dry_run { Ok(Device::Cpu) } else { Device::new_cuda(0) } {
        Ok(d) => d,
        Err(e) => {
            // candle appends a backtrace to driver errors: the first line says it all.
            eprintln!("CUDA unavailable: {}", e.to_string().lines().next().unwrap_or_default());
            eprintln!("  needs a binary built with `--features cuda` (scripts/build-cuda.sh),");
            eprintln!("  the NVIDIA driver (libcuda.so.1) and a visible GPU; see docs/CUDA.md");
            std::process::exit(2);
        }
    };
    println!("device: {}, seed {SEED}, {steps} steps, batch {bs}", if dry_run { "cpu (dry run)" } else { "cuda:0" });
    let mut ok = true;
    for (backbone, base_width) in [(Backbone::Resnet18, 16), (Backbone::Cnn, 32)] {
        let spec = ModelSpec { backbone, channels: 3, height: 32, width: 32, classes: 10, base_width };
        ok &= check(&spec, &gpu, steps, bs).with_context(|| format!("{} on CUDA", backbone.name()))?;
    }
    if !ok {
        bail!("CUDA smoke test FAILED (see above)");
    }
    println!("CUDA smoke test passed");
    Ok(())
}
