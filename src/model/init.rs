//! Deterministic variable initialisation: a `VarBuilder` backend that fills a `VarMap`
//! from seeded host RNGs, honouring candle's `Init` hints.
//!
//! candle's own random initialisers use the device RNG, which cannot be seeded on the CPU,
//! so `VarMap`-built models are not reproducible. Here every variable gets its own
//! `StdRng` seeded from the model seed and the variable's full name, so the values do not
//! depend on the order in which layers are built, and the samples are drawn on the host in
//! f64 before being copied to the target device and dtype.
use std::collections::HashSet;
use std::sync::Arc;

use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::init::NormalOrUniform;
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// SplitMix64 finaliser: a well-mixed 64-bit hash step.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Seed of the RNG for variable `name` of a model built with `seed` (FNV-1a over the name,
/// mixed with the seed), stable across platforms and releases.
pub(crate) fn var_seed(seed: u64, name: &str) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    mix64(h ^ mix64(seed))
}

/// Standard normal sample (Box-Muller).
fn normal(rng: &mut StdRng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Samples `shape.elem_count()` values following `init`, as candle's `Init::var` would but
/// from `rng`.
pub(crate) fn sample(shape: &Shape, init: Init, rng: &mut StdRng) -> Vec<f64> {
    let n = shape.elem_count();
    let uniform = |rng: &mut StdRng, lo: f64, up: f64| lo + (up - lo) * rng.random::<f64>();
    match init {
        Init::Const(v) => vec![v; n],
        Init::Uniform { lo, up } => (0..n).map(|_| uniform(rng, lo, up)).collect(),
        Init::Randn { mean, stdev } => (0..n).map(|_| mean + stdev * normal(rng)).collect(),
        Init::Kaiming {
            dist,
            fan,
            non_linearity,
        } => {
            let fan = fan.for_shape(shape).max(1) as f64;
            let std = non_linearity.gain() / fan.sqrt();
            match dist {
                NormalOrUniform::Uniform => {
                    let bound = 3f64.sqrt() * std;
                    (0..n).map(|_| uniform(rng, -bound, bound)).collect()
                }
                NormalOrUniform::Normal => (0..n).map(|_| std * normal(rng)).collect(),
            }
        }
    }
}

/// A `SimpleBackend` creating missing variables in a `VarMap` from seeded host RNGs.
///
/// Variables named in `frozen` are handed out detached (the same storage, but not a
/// variable): the network built from them records no gradient through them, and a batch norm
/// whose scale is detached runs in inference mode ([`super::layers::Norm`]). Running
/// statistics are always handed out as the variables they are (they never train).
pub(crate) struct SeededVarMap {
    varmap: VarMap,
    seed: u64,
    frozen: Arc<HashSet<String>>,
}

impl SeededVarMap {
    /// A `VarBuilder` whose variables land in `varmap`, initialised from `seed`.
    pub(crate) fn var_builder(
        varmap: &VarMap,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> VarBuilder<'static> {
        Self::with_frozen(varmap, seed, dtype, device, Arc::default())
    }

    /// [`SeededVarMap::var_builder`] handing out the variables named in `frozen` detached.
    pub(crate) fn with_frozen(
        varmap: &VarMap,
        seed: u64,
        dtype: DType,
        device: &Device,
        frozen: Arc<HashSet<String>>,
    ) -> VarBuilder<'static> {
        let backend = SeededVarMap {
            varmap: varmap.clone(),
            seed,
            frozen,
        };
        VarBuilder::from_backend(Box::new(backend), dtype, device.clone())
    }
}

fn poisoned() -> candle_core::Error {
    candle_core::Error::Msg("variable map lock poisoned".to_string())
}

impl SimpleBackend for SeededVarMap {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let mut data = self.varmap.data().lock().map_err(|_| poisoned())?;
        if let Some(var) = data.get(name) {
            if var.shape() != &s {
                candle_core::bail!("shape mismatch on {name}: {s:?} <> {:?}", var.shape())
            }
            if self.frozen.contains(name) && !super::is_running_stat(name) {
                return Ok(var.as_detached_tensor());
            }
            return Ok(var.as_tensor().clone());
        }
        let mut rng = StdRng::seed_from_u64(var_seed(self.seed, name));
        let values = sample(&s, h, &mut rng);
        let tensor = Tensor::from_vec(values, s, &Device::Cpu)?
            .to_dtype(dtype)?
            .to_device(dev)?;
        let var = Var::from_tensor(&tensor)?;
        let out = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(out)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> Result<Tensor> {
        candle_core::bail!("`get_unchecked` is not supported by the seeded var map ({name})")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap
            .data()
            .lock()
            .map(|d| d.contains_key(name))
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::init::{FanInOut, NonLinearity};

    #[test]
    fn same_seed_and_name_give_same_values_independent_of_order() {
        let build = |names: &[&str], seed: u64| {
            let vm = VarMap::new();
            let vb = SeededVarMap::var_builder(&vm, seed, DType::F32, &Device::Cpu);
            for n in names {
                vb.get_with_hints(
                    (3, 4),
                    n,
                    Init::Randn {
                        mean: 0.0,
                        stdev: 1.0,
                    },
                )
                .unwrap();
            }
            let data = vm.data().lock().unwrap();
            data.get("a")
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(build(&["a", "b"], 7), build(&["b", "a"], 7));
        assert_ne!(build(&["a"], 7), build(&["a"], 8));
    }

    #[test]
    fn samples_follow_the_hints() {
        let mut rng = StdRng::seed_from_u64(0);
        let shape = Shape::from((64, 32, 3, 3));
        let kaiming = Init::Kaiming {
            dist: NormalOrUniform::Normal,
            fan: FanInOut::FanOut,
            non_linearity: NonLinearity::ReLU,
        };
        let v = sample(&shape, kaiming, &mut rng);
        let var = v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64;
        let expected = 2.0 / (64.0 * 9.0);
        assert!(
            (var / expected - 1.0).abs() < 0.05,
            "variance {var} vs {expected}"
        );
        let u = sample(
            &Shape::from(1000),
            Init::Uniform { lo: -0.5, up: 0.25 },
            &mut rng,
        );
        assert!(u.iter().all(|x| (-0.5..0.25).contains(x)));
        assert_eq!(
            sample(&Shape::from(3), Init::Const(1.0), &mut rng),
            vec![1.0; 3]
        );
    }
}
