//! Training speed and peak memory of the backbones users compare, at real widths and input
//! sizes: batch 32, 3 channels, 10 classes, SGD momentum 0.9, random data, train mode (batch
//! norm on batch statistics, dropout on), as `sweep run` trains. Each backbone runs in its own
//! child process, so its peak resident memory (`VmHWM`) is its own.
//! `benches/backbones_peer.py` is the same in PyTorch (torchvision, timm's legacy_xception);
//! `benches/compare_backbones.sh` runs both and prints the table of BENCHMARKS.md.
//!
//! `cargo bench --bench backbones -- [--threads N] [--seconds S] [--only resnet18@112,...]
//! [--transfer scratch,frozen,finetune:layer4] [--im2col] [--simd baseline|avx2|avx512]`
//! Every figure is also printed as `RESULT <backbone>@<size>[/<mode>] <img/s> <peak MiB>`.
//! `--transfer` times transfer learning's modes beside each other: `frozen` trains only the
//! head (the base runs forward only, batch norm in inference mode), `finetune:STAGE` the
//! stages from STAGE on. `--simd` caps the instruction set of the kernels' loops (default:
//! the widest the CPU has).
use std::process::Command;
use std::time::Instant;

use candle_core::Result;
use sweep::model::{kernels, Backbone, ModelSpec};
use sweep::run::Trainable;

mod common;
use common::SgdBench;

const BATCH: usize = 32;
const CLASSES: usize = 10;

/// The list: backbone and input size.
const CASES: [(&str, usize); 6] = [
    ("resnet18", 112),
    ("resnet50", 112),
    ("vgg16", 112),
    ("xception", 150),
    ("efficientnet_b0", 112),
    ("mobilenet_v2", 112),
];

/// Images per second of SGD steps on `name` at `size`: one warm-up step, then steps until
/// `seconds` have passed (at least 3).
fn train(name: &str, size: usize, mode: &str, seconds: f64) -> Result<(f64, usize)> {
    let backbone = Backbone::parse(name).expect("known backbone");
    let spec = ModelSpec {
        backbone,
        channels: 3,
        height: size,
        width: size,
        classes: CLASSES,
        base_width: backbone.default_width(),
    };
    let what = match mode {
        "scratch" => Trainable::All,
        "frozen" => Trainable::Head,
        m => Trainable::From(
            m.strip_prefix("finetune:")
                .expect("scratch, frozen or finetune:STAGE")
                .to_string(),
        ),
    };
    let mut bench = SgdBench::training(&spec, BATCH, &what)?;
    let mut step = || bench.step();
    step()?;
    let t = Instant::now();
    let mut steps = 0;
    while steps < 3 || t.elapsed().as_secs_f64() < seconds {
        step()?;
        steps += 1;
    }
    Ok(((steps * BATCH) as f64 / t.elapsed().as_secs_f64(), steps))
}

/// Peak resident memory of this process, MiB (Linux `VmHWM`).
fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn main() -> Result<()> {
    let (threads, seconds) = common::threads_and_seconds(20.0);
    kernels::set_threads(threads);
    // `--im2col`: every convolution through im2col + GEMM, without Winograd and the direct
    // kernel (to measure what they give).
    let im2col = std::env::args().any(|a| a == "--im2col");
    kernels::set_winograd(!im2col);
    kernels::set_direct(!im2col);
    let simd = common::simd_cap();
    if let Some(case) = common::arg("--child") {
        let (name, size) = case.split_once('@').expect("NAME@SIZE[/MODE]");
        let (size, mode) = size.split_once('/').unwrap_or((size, "scratch"));
        let (img_s, steps) = train(name, size.parse().expect("size"), mode, seconds)?;
        println!("RESULT {case} {img_s:.3} {:.0} {steps}", peak_mib());
        return Ok(());
    }
    let only: Option<Vec<String>> =
        common::arg("--only").map(|v| v.split(',').map(String::from).collect());
    println!(
        "sweep backbones bench: batch {BATCH}, {CLASSES} classes, SGD momentum 0.9, {} thread(s), \
         >= {seconds} s per backbone",
        kernels::threads()
    );
    let modes: Vec<String> = common::arg("--transfer")
        .map(|v| v.split(',').map(String::from).collect())
        .unwrap_or_else(|| vec!["scratch".into()]);
    let exe = std::env::current_exe().expect("own path");
    let cases = CASES.iter().flat_map(|(name, size)| {
        modes
            .iter()
            .map(move |mode| (format!("{name}@{size}"), mode))
    });
    for (plain, mode) in cases {
        if only.as_ref().is_some_and(|o| !o.contains(&plain)) {
            continue;
        }
        let case = match mode.as_str() {
            "scratch" => plain,
            m => format!("{plain}/{m}"),
        };
        let out = Command::new(&exe)
            .args(["--child", &case, "--threads", &threads.to_string()])
            .args(["--seconds", &seconds.to_string()])
            .args(im2col.then_some("--im2col"))
            .args(simd.iter().flat_map(|v| ["--simd", v]))
            .env("RAYON_NUM_THREADS", threads.to_string())
            .env("CANDLE_NUM_THREADS", threads.to_string())
            .output()
            .expect("run the bench child");
        let text = String::from_utf8_lossy(&out.stdout);
        match text.lines().find(|l| l.starts_with("RESULT")) {
            Some(line) => {
                let f: Vec<&str> = line.split_whitespace().collect();
                println!(
                    "{case:22} {:>8} img/s  peak {:>6} MiB  ({} steps)",
                    f[2], f[3], f[4]
                );
                println!("{line}");
            }
            None => println!(
                "{case:22} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        }
    }
    Ok(())
}
