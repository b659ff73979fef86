//! Training speed of one backbone on one device: img/s of full SGD steps (forward, backward,
//! momentum update) on a fixed random batch, and where a step's time goes. The same
//! measurement as `benches/gpu_peer.py` makes for PyTorch; `scripts/gpu-bench.sh` runs both.
//!
//!     gpu_bench MODEL SIZE BATCH [--precision fp32|bf16] [--steps N] [--reference] [--cpu]
//!
//! * the batch is made once on the device, so no data loading is timed (PyTorch's side does
//!   the same); 1000 classes, 3 channels, SIZE x SIZE, the backbone's default width;
//! * SGD lr 0.01 momentum 0.9, as the peer; 5 warm-up steps (cuDNN heuristics, allocator),
//!   then N timed steps (default 20) between two device synchronisations;
//! * then 5 steps timed phase by phase (a synchronisation after the forward pass, the
//!   backward pass and the update) to say where the time goes;
//! * `--reference` turns off our cuDNN/CPU kernels (candle's own ops), `--cpu` runs on the CPU.
//!
//! Prints one `RESULT` line of `key=value` pairs for scripts.
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use sweep::model::{kernels, Backbone, Model, ModelSpec, Precision};
use sweep::train::optim::{Optimizer, OptimizerConfig};
use sweep::train::trainer::cross_entropy;

struct Args {
    backbone: Backbone,
    size: usize,
    batch: usize,
    precision: Precision,
    steps: usize,
    reference: bool,
    cpu: bool,
}

fn parse() -> Result<Args> {
    const USAGE: &str =
        "usage: gpu_bench MODEL SIZE BATCH [--precision fp32|bf16] [--steps N] [--reference] [--cpu]";
    let mut pos = Vec::new();
    let mut a = Args {
        backbone: Backbone::Resnet18,
        size: 0,
        batch: 0,
        precision: Precision::Fp32,
        steps: 20,
        reference: false,
        cpu: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--precision" => {
                let p = it.next().context(USAGE)?;
                a.precision =
                    Precision::parse(&p).with_context(|| format!("precision {p}: {USAGE}"))?;
            }
            "--steps" => a.steps = it.next().context(USAGE)?.parse().context(USAGE)?,
            "--reference" => a.reference = true,
            "--cpu" => a.cpu = true,
            _ => pos.push(arg),
        }
    }
    let [model, size, batch] = pos.as_slice() else {
        bail!(USAGE)
    };
    a.backbone = Backbone::parse(model).with_context(|| format!("unknown backbone {model}"))?;
    a.size = size.parse().context(USAGE)?;
    a.batch = batch.parse().context(USAGE)?;
    Ok(a)
}

fn main() -> Result<()> {
    let a = parse()?;
    let dev = if a.cpu {
        Device::Cpu
    } else {
        sweep::model::kernels::cuda_device(0).context("CUDA device 0")?
    };
    kernels::set_fast_path(!a.reference);
    let spec = ModelSpec {
        backbone: a.backbone,
        channels: 3,
        height: a.size,
        width: a.size,
        classes: 1000,
        base_width: a.backbone.default_width(),
    };
    let mut model = Model::new(&spec, &dev, 0)?;
    model.set_precision(a.precision);
    let sgd = OptimizerConfig::Sgd {
        momentum: 0.9,
        nesterov: false,
        weight_decay: 0.0,
    };
    let mut opt = Optimizer::new(&sgd, model.trainable_vars(), 0.01)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let n = a.batch * 3 * a.size * a.size;
    let x: Vec<f32> = (0..n).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
    let y: Vec<u32> = (0..a.batch).map(|_| rng.random_range(0..1000u32)).collect();
    let x = Tensor::from_vec(x, (a.batch, 3, a.size, a.size), &dev)?;
    let y = Tensor::from_vec(y, a.batch, &dev)?;

    let step = |opt: &mut Optimizer| -> Result<f32> {
        let loss = cross_entropy(&model.forward(&x, true)?, &y, 0.0)?;
        opt.backward_step(&loss)?;
        Ok(loss.to_dtype(candle_core::DType::F32)?.to_scalar::<f32>()?)
    };
    let first = step(&mut opt)?;
    for _ in 0..4 {
        step(&mut opt)?;
    }
    dev.synchronize()?;
    let t = Instant::now();
    let mut last = first;
    for _ in 0..a.steps {
        // No host read inside the loop: the loss stays on the device until the end.
        let loss = cross_entropy(&model.forward(&x, true)?, &y, 0.0)?;
        opt.backward_step(&loss)?;
        if a.steps == 1 {
            last = loss.to_scalar::<f32>()?;
        }
    }
    dev.synchronize()?;
    let secs = t.elapsed().as_secs_f64();
    let ms_step = 1e3 * secs / a.steps as f64;
    let ips = (a.batch * a.steps) as f64 / secs;

    // Where the time goes: the same steps with a synchronisation between phases.
    let (mut fwd, mut bwd, mut upd) = (0.0, 0.0, 0.0);
    let phases = 5;
    for _ in 0..phases {
        let t0 = Instant::now();
        let loss = cross_entropy(&model.forward(&x, true)?, &y, 0.0)?;
        dev.synchronize()?;
        let t1 = Instant::now();
        let grads = loss.backward()?;
        dev.synchronize()?;
        let t2 = Instant::now();
        opt.step(&grads)?;
        dev.synchronize()?;
        let t3 = Instant::now();
        fwd += (t1 - t0).as_secs_f64();
        bwd += (t2 - t1).as_secs_f64();
        upd += (t3 - t2).as_secs_f64();
        last = loss.to_scalar::<f32>()?;
    }
    let ms = |s: f64| 1e3 * s / phases as f64;
    println!(
        "{} {}x{} batch {} {}{}: {:.1} ms/step, {:.0} img/s; forward {:.1} ms, backward {:.1} ms, update {:.1} ms; {} params; loss {:.3} -> {:.3}",
        a.backbone.name(),
        a.size,
        a.size,
        a.batch,
        a.precision.name(),
        if a.reference { " (candle's ops)" } else { "" },
        ms_step,
        ips,
        ms(fwd),
        ms(bwd),
        ms(upd),
        model.parameter_count(),
        first,
        last
    );
    println!(
        "RESULT side=sweep model={} size={} batch={} precision={} reference={} img_s={ips:.1} ms_step={ms_step:.2} fwd_ms={:.2} bwd_ms={:.2} upd_ms={:.2}",
        a.backbone.name(),
        a.size,
        a.batch,
        a.precision.name(),
        a.reference,
        ms(fwd),
        ms(bwd),
        ms(upd)
    );
    if let Some(mib) = used_mib() {
        println!(
            "device memory in use: {mib} MiB (the run's peak, as the allocator's pool keeps it)"
        );
    }
    if !last.is_finite() {
        bail!("loss is not finite ({last})");
    }
    Ok(())
}

/// Device memory in use on the current device, MiB (CUDA build only).
#[cfg(feature = "cuda")]
fn used_mib() -> Option<u64> {
    let (free, total) = candle_core::cuda_backend::cudarc::driver::result::mem_get_info().ok()?;
    Some(((total - free) >> 20) as u64)
}

#[cfg(not(feature = "cuda"))]
fn used_mib() -> Option<u64> {
    None
}
