//! Training-speed benchmark: ResNet-18 (base width 16, 3 channels, 10 classes, batch 32,
//! SGD momentum 0.9) at 32x32 and 64x64 on the fast CPU kernels (1 thread, in a child
//! process, and N threads) and on candle's reference path, then per-op forward+backward
//! timings on both paths. Run it with `RAYON_NUM_THREADS=N`: candle sizes its CPU pool, which
//! the kernels share, from it.
//!
//! `cargo bench --bench train_speed -- [--threads N] [--steps N] [--sizes 32,64]
//! [--no-reference | --reference-only] [--no-ops] [--im2col] [--simd baseline|avx2|avx512]`
//! Every figure is also printed as a machine-readable line `RESULT <key> <value>` (img/s or
//! ms), which `benches/compare.sh` joins with `benches/pytorch_peer.py`'s output.
use std::time::Instant;

use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::BatchNorm;
use sweep::model::{kernels, ops, Backbone, ModelSpec};

mod common;
use common::{rand, SgdBench};

const BATCH: usize = 32;

struct Args {
    threads: usize,
    steps: usize,
    reference: bool,
    sizes: Vec<usize>,
    ops: bool,
    child: bool,
    fast: bool,
}

fn args() -> Args {
    let mut a = Args {
        threads: candle_core::utils::get_num_threads(),
        steps: 10,
        reference: true,
        sizes: vec![32, 64],
        ops: true,
        child: false,
        fast: true,
    };
    let argv: Vec<String> = std::env::args().collect();
    for (i, arg) in argv.iter().enumerate() {
        let next = argv.get(i + 1).and_then(|v| v.parse().ok());
        match arg.as_str() {
            "--threads" => a.threads = next.unwrap_or(a.threads),
            "--steps" => a.steps = next.unwrap_or(a.steps),
            "--no-reference" => a.reference = false,
            "--no-ops" => a.ops = false,
            "--child" => a.child = true,
            "--reference-only" => a.fast = false,
            "--sizes" => {
                let list = argv
                    .get(i + 1)
                    .map(|v| v.split(',').filter_map(|n| n.parse().ok()).collect());
                a.sizes = list.unwrap_or(a.sizes.clone());
            }
            _ => {}
        }
    }
    a
}

/// Images per second of `steps` SGD steps (after two warm-up steps).
fn train_speed(size: usize, steps: usize) -> Result<f64> {
    let spec = ModelSpec {
        backbone: Backbone::Resnet18,
        channels: 3,
        height: size,
        width: size,
        classes: 10,
        base_width: 16,
    };
    let mut bench = SgdBench::new(&spec, BATCH)?;
    let mut step = || bench.step();
    step()?;
    step()?;
    let t = Instant::now();
    for _ in 0..steps {
        step()?;
    }
    Ok((steps * BATCH) as f64 / t.elapsed().as_secs_f64())
}

/// Median milliseconds of `f` (forward + backward), repeated for about two seconds.
fn time_ms(mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let t = Instant::now();
    f()?;
    let first = t.elapsed().as_secs_f64();
    let reps = ((2.0 / first) as usize).clamp(if first < 1.0 { 3 } else { 0 }, 30);
    let mut times = vec![first];
    if reps > 0 {
        times.clear();
        for _ in 0..reps {
            let t = Instant::now();
            f()?;
            times.push(t.elapsed().as_secs_f64());
        }
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(times[times.len() / 2] * 1e3)
}

/// Forward + backward (gradient of ones) of `op` on fresh variables of the given shapes.
fn fwd_bwd(shapes: &[&[usize]], op: &dyn Fn(&[Tensor]) -> Result<Tensor>) -> Result<f64> {
    let vars: Vec<Var> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| Var::from_tensor(&rand(s, 10 + i as u64)?))
        .collect::<Result<_>>()?;
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    time_ms(|| {
        let y = op(&ts)?;
        y.backward().map(|_| ())
    })
}

type OpFn = Box<dyn Fn(&[Tensor]) -> Result<Tensor>>;

fn ops_table() -> Vec<(&'static str, &'static str, Vec<Vec<usize>>, OpFn)> {
    let bn = |t: &[Tensor]| -> Result<Tensor> {
        let c = t[1].dim(0)?;
        let (mean, var) = (
            Tensor::zeros(c, DType::F32, &Device::Cpu)?,
            Tensor::ones(c, DType::F32, &Device::Cpu)?,
        );
        let bn = BatchNorm::new(c, mean, var, t[1].clone(), t[2].clone(), 1e-5)?;
        ops::batch_norm(&t[0], &bn, true, ops::Activation::Identity)
    };
    vec![
        (
            "conv3x3",
            "conv 3x3 64->64, 32x32",
            vec![vec![BATCH, 64, 32, 32], vec![64, 64, 3, 3]],
            Box::new(|t: &[Tensor]| ops::conv2d(&t[0], &t[1], None, 1, 1)),
        ),
        (
            "conv1x1",
            "conv 1x1 64->128 stride 2, 32x32",
            vec![vec![BATCH, 64, 32, 32], vec![128, 64, 1, 1]],
            Box::new(|t: &[Tensor]| ops::conv2d(&t[0], &t[1], None, 2, 0)),
        ),
        (
            "depthwise",
            "depthwise 3x3, 728 ch, 19x19",
            vec![vec![BATCH, 728, 19, 19], vec![728, 1, 3, 3]],
            Box::new(|t: &[Tensor]| ops::depthwise_conv2d(&t[0], &t[1], None, 1, 1)),
        ),
        (
            "maxpool",
            "max-pool 3x3/2 pad 1, 64 ch, 56x56",
            vec![vec![BATCH, 64, 56, 56]],
            Box::new(|t: &[Tensor]| ops::max_pool2d(&t[0], 3, 2, 1)),
        ),
        (
            "batchnorm",
            "batch norm (train), 64 ch, 32x32",
            vec![vec![BATCH, 64, 32, 32], vec![64], vec![64]],
            Box::new(bn),
        ),
    ]
}

/// Images per second of the fast path at 32x32/64x64 with `threads` threads, measured in a
/// child process whose candle thread pool has exactly that size.
fn train_speed_in_child(size: usize, steps: usize, threads: usize) -> Result<f64> {
    let exe = std::env::current_exe()?;
    let out = std::process::Command::new(exe)
        .args([
            "--child",
            "--sizes",
            &size.to_string(),
            "--steps",
            &steps.to_string(),
        ])
        .args(im2col().then_some("--im2col"))
        .args(common::arg("--simd").iter().flat_map(|v| ["--simd", v]))
        .env("RAYON_NUM_THREADS", threads.to_string())
        .env("CANDLE_NUM_THREADS", threads.to_string())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let key = format!("RESULT train_{size}_fast_t{threads} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key).and_then(|v| v.trim().parse().ok()))
        .ok_or_else(|| candle_core::Error::Msg(format!("child run failed: {text}")))
}

/// `--im2col`: every convolution through im2col + GEMM (no Winograd, no direct kernel), to
/// measure what the two give.
fn im2col() -> bool {
    std::env::args().any(|a| a == "--im2col")
}

fn main() -> Result<()> {
    let a = args();
    kernels::set_threads(a.threads);
    kernels::set_winograd(!im2col());
    kernels::set_direct(!im2col());
    common::simd_cap();
    let threads = kernels::threads();
    if a.child {
        for &size in &a.sizes {
            let v = train_speed(size, a.steps)?;
            println!("RESULT train_{size}_fast_t{threads} {v:.2}");
        }
        return Ok(());
    }
    println!(
        "sweep train_speed: batch {BATCH}, ResNet-18 base width 16, 10 classes, SGD momentum 0.9"
    );
    println!(
        "threads: {threads} (candle's CPU pool: {}, RAYON_NUM_THREADS={})",
        candle_core::utils::barrier_pool().n_workers() + 1,
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "unset".into())
    );
    if threads != a.threads {
        println!(
            "note: --threads {} capped at candle's pool size; set RAYON_NUM_THREADS",
            a.threads
        );
    }
    println!("\n## Training (img/s)");
    for &size in &a.sizes {
        let steps = if size == 32 {
            a.steps
        } else {
            a.steps.div_ceil(2)
        };
        if a.fast && threads > 1 {
            let v = train_speed_in_child(size, steps, 1)?;
            println!("{size}x{size} fast path, 1 thread:    {v:8.1} img/s");
            println!("RESULT train_{size}_fast_t1 {v:.2}");
        }
        if a.fast {
            let v = train_speed(size, steps)?;
            println!("{size}x{size} fast path, {threads} thread(s): {v:8.1} img/s");
            println!("RESULT train_{size}_fast_t{threads} {v:.2}");
            println!("RESULT train_{size}_fast {v:.2}");
        }
        if a.reference {
            kernels::set_fast_path(false);
            let v = train_speed(size, if size == 32 { 3 } else { 2 })?;
            kernels::set_fast_path(true);
            println!("{size}x{size} reference (candle ops), {threads} thread(s): {v:8.1} img/s");
            println!("RESULT train_{size}_reference {v:.2}");
        }
    }
    if !a.ops {
        return Ok(());
    }
    println!("\n## Ops, forward + backward, batch {BATCH}, {threads} thread(s) (ms, median)");
    for (key, label, shapes, op) in ops_table() {
        let shapes: Vec<&[usize]> = shapes.iter().map(|s| s.as_slice()).collect();
        println!("{label}");
        let fast = if a.fast {
            Some(fwd_bwd(&shapes, &op)?)
        } else {
            None
        };
        if let Some(fast) = fast {
            println!("    fast      {fast:9.2} ms");
            println!("RESULT op_{key}_fast {fast:.3}");
        }
        if a.reference {
            kernels::set_fast_path(false);
            let reference = fwd_bwd(&shapes, &op)?;
            kernels::set_fast_path(true);
            let ratio = fast.map(|f| format!("  (fast is {:.1}x faster)", reference / f));
            println!(
                "    reference {reference:9.2} ms{}",
                ratio.unwrap_or_default()
            );
            println!("RESULT op_{key}_reference {reference:.3}");
        }
    }
    Ok(())
}
