//! What the training benches share: deterministic random data and one SGD training step on a
//! random batch, built as `sweep run` trains (`Model`, `train::optim::Optimizer`).
// Each bench binary compiles this module and uses part of it.
#![allow(dead_code)]
use candle_core::{Device, Result, Tensor};
use sweep::model::{Model, ModelSpec};
use sweep::run::Trainable;
use sweep::train::optim::{Optimizer, OptimizerConfig};

/// Values in [-1, 1) from a cheap deterministic generator (enough for timing).
pub fn rand(dims: &[usize], seed: u64) -> Result<Tensor> {
    let n: usize = dims.iter().product();
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let data: Vec<f32> = (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    Tensor::from_vec(data, dims, &Device::Cpu)
}

/// A model for `spec` on the CPU, SGD with momentum 0.9 at lr 0.01, and one random batch of
/// `batch` images with labels cycling through the classes.
pub struct SgdBench {
    model: Model,
    opt: Optimizer,
    x: Tensor,
    labels: Tensor,
}

impl SgdBench {
    pub fn new(spec: &ModelSpec, batch: usize) -> Result<SgdBench> {
        Self::training(spec, batch, &Trainable::All)
    }

    /// [`SgdBench::new`] with only `what` training (transfer learning's frozen base).
    pub fn training(spec: &ModelSpec, batch: usize, what: &Trainable) -> Result<SgdBench> {
        let mut model = Model::new(spec, &Device::Cpu, 1)?;
        model.set_trainable(what)?;
        let sgd = OptimizerConfig::Sgd {
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.0,
        };
        let opt = Optimizer::new(&sgd, model.trainable_vars(), 0.01)?;
        let x = rand(&[batch, spec.channels, spec.height, spec.width], 3)?;
        let labels: Vec<u32> = (0..batch as u32).map(|i| i % spec.classes as u32).collect();
        let labels = Tensor::from_vec(labels, batch, &Device::Cpu)?;
        Ok(SgdBench {
            model,
            opt,
            x,
            labels,
        })
    }

    /// One training step: forward in train mode, cross-entropy, backward, SGD update.
    pub fn step(&mut self) -> Result<()> {
        let logits = self.model.forward(&self.x, true)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &self.labels)?;
        self.opt.backward_step(&loss)
    }
}

/// The value after `flag` on the command line (`--threads 2` gives `Some("2")`).
pub fn arg(flag: &str) -> Option<String> {
    let argv: Vec<String> = std::env::args().collect();
    argv.iter()
        .position(|a| a == flag)
        .and_then(|i| argv.get(i + 1).cloned())
}

/// `--threads` (default 2) and `--seconds` (default `seconds`) of the benches.
pub fn threads_and_seconds(seconds: f64) -> (usize, f64) {
    let threads = arg("--threads").and_then(|v| v.parse().ok()).unwrap_or(2);
    let seconds = arg("--seconds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(seconds);
    (threads, seconds)
}

/// `--simd baseline|avx2|avx512`: caps the instruction set of the kernels' loops on this
/// thread (to measure what each level gives); returns the flag's value to pass on to child
/// processes. The default is the widest the CPU has.
pub fn simd_cap() -> Option<String> {
    let value = arg("--simd")?;
    let level = sweep::model::kernels::Simd::parse(&value)
        .unwrap_or_else(|| panic!("--simd {value}: expected baseline, avx2 or avx512"));
    sweep::model::kernels::set_simd(level);
    Some(value)
}
