//! Dense convolution, pass by pass: milliseconds and GFLOP/s of the forward pass, the input
//! gradient and the weight gradient of the fast CPU kernels at the shapes of the backbones
//! users train (ResNet-18/50 and VGG at 112x112, batch 32, the 3x3 64->64 32x32 layer of the
//! small benchmark, and the 3x3 layers of its ResNet-18 w16 at 32x32 and 64x64). `benches/conv_peer.py` times the same passes in PyTorch (oneDNN);
//! `benches/compare_conv.sh` runs both and prints the table of BENCHMARKS.md.
//!
//! `cargo bench --bench conv -- [--threads N] [--only NAME,NAME] [--seconds S]
//! [--im2col | --no-winograd | --no-direct] [--simd baseline|avx2|avx512]`
//! Every figure is also printed as `RESULT <shape>:<pass> <ms>`.
use std::time::Instant;

use candle_core::{Result, Tensor};
use sweep::model::kernels::{self, ConvPass};

mod common;
use common::rand;

const BATCH: usize = 32;

/// A convolution layer: name, input channels, input size, output channels, kernel, stride,
/// padding. The list is shared with `benches/conv_peer.py` (same names, same order).
pub const SHAPES: [(&str, usize, usize, usize, usize, usize, usize); 22] = [
    ("c3_64_32", 64, 32, 64, 3, 1, 1),
    ("vgg_b1", 64, 112, 64, 3, 1, 1),
    ("vgg_b2", 128, 56, 128, 3, 1, 1),
    ("r18_stem", 3, 112, 64, 7, 2, 3),
    ("r18_l1", 64, 28, 64, 3, 1, 1),
    ("r18_l2_down", 64, 28, 128, 3, 2, 1),
    ("r18_l2", 128, 14, 128, 3, 1, 1),
    ("r18_l3", 256, 7, 256, 3, 1, 1),
    ("r18_l4_down", 256, 7, 512, 3, 2, 1),
    ("r18_l4", 512, 4, 512, 3, 1, 1),
    ("r18_proj4", 256, 7, 512, 1, 2, 0),
    ("r50_expand1", 64, 28, 256, 1, 1, 0),
    ("r50_reduce3", 1024, 7, 256, 1, 1, 0),
    ("r50_l3", 256, 7, 256, 3, 1, 1),
    ("w16_32_l1", 16, 32, 16, 3, 1, 1),
    ("w16_32_l2", 32, 16, 32, 3, 1, 1),
    ("w16_32_l3", 64, 8, 64, 3, 1, 1),
    ("w16_32_l4", 128, 4, 128, 3, 1, 1),
    ("w16_64_l1", 16, 64, 16, 3, 1, 1),
    ("w16_64_l2", 32, 32, 32, 3, 1, 1),
    ("w16_64_l3", 64, 16, 64, 3, 1, 1),
    ("w16_64_l4", 128, 8, 128, 3, 1, 1),
];

/// Median milliseconds of `f` over about `seconds` (at least 3 runs after one warm-up).
fn time_ms(seconds: f64, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let start = Instant::now();
    let mut times = Vec::new();
    while times.len() < 3 || start.elapsed().as_secs_f64() < seconds {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(times[times.len() / 2] * 1e3)
}

fn main() -> Result<()> {
    let (threads, seconds) = common::threads_and_seconds(1.0);
    let only: Option<Vec<String>> =
        common::arg("--only").map(|v| v.split(',').map(str::to_string).collect());
    kernels::set_threads(threads);
    // `--im2col`: every layer through im2col + GEMM (no Winograd, no direct kernel);
    // `--no-winograd`, `--no-direct`: without one of the two.
    let flag = |f: &str| std::env::args().any(|a| a == f);
    kernels::set_winograd(!flag("--im2col") && !flag("--no-winograd"));
    kernels::set_direct(!flag("--im2col") && !flag("--no-direct"));
    common::simd_cap();
    println!("conv passes, batch {BATCH}, {threads} thread(s): ms (GFLOP/s)");
    println!(
        "{:<12} {:>22} {:>10} {:>10} {:>10}",
        "shape", "layer", "forward", "dx", "dw"
    );
    for (name, ci, size, co, k, stride, pad) in SHAPES {
        if only.as_ref().is_some_and(|o| !o.iter().any(|n| n == name)) {
            continue;
        }
        let out = (size + 2 * pad - k) / stride + 1;
        let x = rand(&[BATCH, ci, size, size], 1)?;
        let w = rand(&[co, ci, k, k], 2)?.affine(0.05, 0.0)?;
        let dy = rand(&[BATCH, co, out, out], 3)?;
        let gflop = 2.0 * (BATCH * co * out * out * ci * k * k) as f64 / 1e9;
        let run = |pass: ConvPass, a: &Tensor, b: &Tensor| -> Result<f64> {
            time_ms(seconds, || {
                kernels::conv2d_pass(pass, a, b, stride, pad).map(|_| ())
            })
        };
        let fwd = run(ConvPass::Forward, &x, &w)?;
        let dx = run(ConvPass::InputGrad(size, size), &dy, &w)?;
        let dw = run(ConvPass::WeightGrad(k, k), &x, &dy)?;
        let layer = format!("{ci}->{co} {k}x{k}/{stride} {size}px");
        let cell = |ms: f64| format!("{ms:.2} ({:.0})", gflop / ms * 1e3);
        println!(
            "{name:<12} {layer:>22} {:>10} {:>10} {:>10}",
            cell(fwd),
            cell(dx),
            cell(dw)
        );
        for (pass, ms) in [("fwd", fwd), ("dx", dx), ("dw", dw)] {
            println!("RESULT {name}:{pass} {ms:.3}");
        }
    }
    Ok(())
}
