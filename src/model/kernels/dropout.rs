//! Dropout as one parallel pass each way. Element `i` is kept or dropped by a counter-based
//! hash of (seed, i), so the mask needs no generator state, no buffer, and no order: the
//! forward pass and its gradient recompute it, any thread count gives the same mask, and the
//! reference path builds the very same mask ([`keep`]). The caller draws the seed from the
//! run's generator, so masks stay a function of the run's seed (and resume exactly).
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, WithDType};

use super::{par_chunks, slice, Float};

/// Elements per parallel work item.
const CHUNK: usize = 32 * 1024;

/// SplitMix64's finaliser: a bijection of 64-bit integers whose outputs pass BigCrush.
#[inline(always)]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Whether element `i` survives dropout with probability `p` under `seed`: a uniform draw
/// in [0, 1) from the top 53 bits of the hash, kept when at least `p` (PyTorch's rule:
/// dropped with probability `p`).
#[inline(always)]
pub(crate) fn keep(seed: u64, i: usize, p: f64) -> bool {
    let bits = mix(seed ^ mix(i as u64 ^ 0x9E37_79B9_7F4A_7C15));
    (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64) >= p
}

/// `x * mask * 1 / (1 - p)`, or the same mask applied to a gradient.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dropout {
    pub p: f64,
    pub seed: u64,
}

impl Dropout {
    fn apply<T: Float>(&self, x: &[T]) -> Result<Vec<T>> {
        // The scale rounded to f32 first, as the reference path's f32 mask holds it.
        let scale = T::from_f64((1.0 / (1.0 - self.p)) as f32 as f64);
        let mut y = vec![T::zero(); x.len()];
        par_chunks(
            &mut y,
            CHUNK,
            0,
            #[inline(always)]
            |item, out, _| {
                let start = item * CHUNK;
                for (k, (d, v)) in out.iter_mut().zip(&x[start..]).enumerate() {
                    if keep(self.seed, start + k, self.p) {
                        *d = *v * scale;
                    }
                }
                Ok(())
            },
        )?;
        Ok(y)
    }
}

impl CustomOp1 for Dropout {
    fn name(&self) -> &'static str {
        "fast-dropout"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        if !(0.0..1.0).contains(&self.p) {
            candle_core::bail!("dropout probability must be in [0, 1), got {}", self.p)
        }
        let out =
            by_dtype!(s, self.name(), T => T::to_cpu_storage_owned(self.apply::<T>(slice(s, l)?)?));
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(dy.contiguous()?.apply_op1_no_bwd(self)?))
    }
}
