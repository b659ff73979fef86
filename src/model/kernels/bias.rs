//! A bias added along dimension 1 (`y[b, c, ...] = x[b, c, ...] + bias[c]`: convolutions and
//! dense layers) in one parallel pass, and its gradient `dbias[c] = sum over b and ... of
//! dy` in one pass per channel. candle's `broadcast_add` backward reduces the broadcast
//! dimensions with its generic strided reduction, single-threaded: in the quickstart's CNN that
//! was 15% of the training step.
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, WithDType};

use super::{par_chunks, par_new, slice, Float};

/// Channels per parallel work item of the gradient.
const GRAD_CHANNELS: usize = 8;

/// (batch, channels, elements per channel and image) of a `(B, C, ...)` layout.
fn dims(l: &Layout, op: &str) -> Result<(usize, usize, usize)> {
    let d = l.shape().dims();
    if d.len() < 2 {
        candle_core::bail!("{op}: needs (batch, channels, ...), got {:?}", l.shape())
    }
    Ok((d[0], d[1], d[2..].iter().product()))
}

/// `x + bias[c]` over `x` laid out as (B, `c`, `inner`), whole images per work item (several
/// when they are small).
fn add<T: Float>(x: &[T], bias: &[T], c: usize, inner: usize) -> Result<Vec<T>> {
    if inner == 0 || c == 0 {
        return Ok(vec![T::zero(); x.len()]);
    }
    let image = c * inner;
    let per_item = image * (16 * 1024 / image).max(1);
    par_new(
        x.len(),
        per_item,
        0,
        #[inline(always)]
        |i, yi, _| {
            let first_plane = i * per_item / inner;
            let planes = yi.chunks_mut(inner).zip(x[i * per_item..].chunks(inner));
            for (k, (d, s)) in planes.enumerate() {
                let b = bias[(first_plane + k) % c];
                for (d, s) in d.iter_mut().zip(s) {
                    *d = *s + b;
                }
            }
            Ok(())
        },
    )
}

/// The sum over images and positions of each channel of `dy` (`b`, `c`, `inner`): image by
/// image in order, whatever the thread count.
fn grad<T: Float>(dy: &[T], b: usize, c: usize, inner: usize) -> Result<Vec<T>> {
    let mut g = vec![T::zero(); c];
    par_chunks(
        &mut g,
        GRAD_CHANNELS,
        0,
        #[inline(always)]
        |i, gi, _| {
            for (k, g) in gi.iter_mut().enumerate() {
                let ch = i * GRAD_CHANNELS + k;
                let mut total = T::zero();
                for img in 0..b {
                    let start = (img * c + ch) * inner;
                    let mut part = T::zero();
                    for v in &dy[start..start + inner] {
                        part += *v;
                    }
                    total += part;
                }
                *g = total;
            }
            Ok(())
        },
    )?;
    Ok(g)
}

/// `x + bias` with `bias` (C,) along dimension 1 of `x` (B, C, ...).
pub(crate) struct BiasAdd;

impl CustomOp2 for BiasAdd {
    fn name(&self) -> &'static str {
        "fast-bias-add"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_b, c, inner) = dims(l1, self.name())?;
        if l2.shape().dims() != [c] {
            candle_core::bail!("{}: bias {:?} for {c} channels", self.name(), l2.shape())
        }
        let out = by_dtype!(s1, self.name(), T => {
            T::to_cpu_storage_owned(add(slice::<T>(s1, l1)?, slice::<T>(s2, l2)?, c, inner)?)
        });
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _bias: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let dbias = dy.apply_op1_no_bwd(&BiasGrad)?;
        Ok((Some(dy), Some(dbias)))
    }
}

/// `dbias[c] = sum over b and the rest of dy[b, c, ...]`: each channel summed image by image
/// in order, so the result does not depend on the thread count.
pub(crate) struct BiasGrad;

impl CustomOp1 for BiasGrad {
    fn name(&self) -> &'static str {
        "fast-bias-grad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, inner) = dims(l, self.name())?;
        let out = by_dtype!(s, self.name(), T => {
            T::to_cpu_storage_owned(grad(slice::<T>(s, l)?, b, c, inner)?)
        });
        Ok((out, Shape::from(c)))
    }
}
