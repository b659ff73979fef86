//! The parallel passes of batch norm besides the output: per-channel batch statistics, the
//! backward's per-channel sums, and the input gradient. Sums are accumulated in 16 lanes of
//! the data type over blocks of 256 elements, and across blocks in f64.
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, WithDType};

use super::{par_chunks, par_planes, slice, Act, Activation, Float, LANES};

/// `(b, c, inner)` of a tensor with at least two dimensions.
pub(super) fn split(shape: &Shape) -> Result<(usize, usize, usize)> {
    let dims = shape.dims();
    if dims.len() < 2 {
        candle_core::bail!("batch norm needs at least two dimensions, got {shape:?}")
    }
    Ok((dims[0], dims[1], dims[2..].iter().product()))
}

/// Sums of the pairs `f(a[i], b[i])` over two slices of one length: blocks of [`BLOCK`]
/// elements are summed in [`LANES`] lanes of `T` (so the loop vectorises, 16 wide with
/// AVX-512; a block's last few elements go into the first lanes), and the block sums in f64.
/// A block is a whole 7x7 or 14x14 plane, which used to be summed element by element.
#[inline(always)]
fn lane_sums<T: Float>(a: &[T], b: &[T], f: impl Fn(T, T) -> (T, T)) -> (f64, f64) {
    let (mut sa, mut sb) = (0f64, 0f64);
    for (block_a, block_b) in a.chunks(BLOCK).zip(b.chunks(BLOCK)) {
        let (mut la, mut lb) = ([T::zero(); LANES], [T::zero(); LANES]);
        let (ca, cb) = (block_a.chunks_exact(LANES), block_b.chunks_exact(LANES));
        let (rest_a, rest_b) = (ca.remainder(), cb.remainder());
        for (ca, cb) in ca.zip(cb) {
            for l in 0..LANES {
                let (u, v) = f(ca[l], cb[l]);
                la[l] += u;
                lb[l] += v;
            }
        }
        for (l, (x, y)) in rest_a.iter().zip(rest_b).enumerate() {
            let (u, v) = f(*x, *y);
            la[l] += u;
            lb[l] += v;
        }
        sa += la.iter().map(|v| v.to_f64()).sum::<f64>();
        sb += lb.iter().map(|v| v.to_f64()).sum::<f64>();
    }
    (sa, sb)
}

/// Elements [`lane_sums`] adds in `T` (16 to a lane) before adding them into f64.
const BLOCK: usize = 256;

/// Per-channel sums over `(b, c, inner)` data `a` and `b` (same shape): `out[ch] = (sum f0,
/// sum f1)` over every element of the channel, `f(ch)` giving the function of an element
/// pair `(a, b)`; returns `(c, 2)` values.
fn channel_sums<T: Float, F: Fn(T, T) -> (T, T)>(
    (nb, c, inner): (usize, usize, usize),
    a: &[T],
    b: &[T],
    f: impl Fn(usize) -> F + Send + Sync,
) -> Result<Vec<f64>> {
    let mut out = vec![0f64; c * 2];
    par_chunks(
        &mut out,
        2,
        0,
        #[inline(always)]
        |ch, o, _| {
            let g = f(ch);
            for bi in 0..nb {
                let r = (bi * c + ch) * inner..(bi * c + ch + 1) * inner;
                let (u, v) = lane_sums(&a[r.clone()], &b[r], &g);
                o[0] += u;
                o[1] += v;
            }
            Ok(())
        },
    )?;
    Ok(out)
}

/// A new `(b, c, inner)` tensor's data, computed by `f(plane, channel, part)` for each
/// `(image, channel)` plane in parallel (several small planes to a work item); `f` writes
/// every element of its plane.
#[inline(always)]
pub(super) fn per_plane<T: Float>(
    (b, c, inner): (usize, usize, usize),
    f: impl Fn(usize, usize, &mut [T]) + Send + Sync,
) -> Result<Vec<T>> {
    par_planes(
        b * c * inner,
        inner,
        0,
        #[inline(always)]
        |plane, part, _| f(plane, plane % c, part),
    )
}

/// `x -> (c, 2)` f64: each channel's mean and biased variance.
pub(super) struct ChannelStats;

impl CustomOp1 for ChannelStats {
    fn name(&self) -> &'static str {
        "fast-batch-norm-stats"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let dims = split(l.shape())?;
        let (b, c, inner) = dims;
        let n = (b * inner).max(1) as f64;
        // Sums of `x - k` and `(x - k)^2` with `k` the channel's first value, which keeps the
        // variance accurate when the mean is large.
        let mut shift = vec![0f64; c];
        let mut sums = by_dtype!(s, self.name(), T => {
            let x = slice::<T>(s, l)?;
            for (ch, k) in shift.iter_mut().enumerate() {
                *k = x.get(ch * inner).map_or(0.0, |v| v.to_f64());
            }
            let shift = &shift;
            channel_sums(dims, x, x, |ch| {
                let k = T::from_f64(shift[ch]);
                move |v: T, _: T| {
                    let v = v - k;
                    (v, v * v)
                }
            })?
        });
        for (pair, k) in sums.chunks_mut(2).zip(&shift) {
            let mean = pair[0] / n;
            pair[1] = (pair[1] / n - mean * mean).max(0.0);
            pair[0] = mean + k;
        }
        Ok((CpuStorage::F64(sums), Shape::from((c, 2))))
    }
}

/// `(x, dy) -> (c, 2)` f64: per channel `sum g` and `sum g * (x - mean)`, `g` being `dy`
/// passed back through the fused activation at the pre-activation `o = x * scale + shift`
/// (recomputed exactly as the forward computed it).
pub(super) struct GradSums {
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    pub shift: Vec<f64>,
    pub act: Activation,
}

impl CustomOp2 for GradSums {
    fn name(&self) -> &'static str {
        "fast-batch-norm-grad-sums"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = split(l1.shape())?;
        let sums = by_dtype!(s1, self.name(), T => {
            let (x, dy) = (slice::<T>(s1, l1)?, slice::<T>(s2, l2)?);
            let mean: Vec<T> = self.mean.iter().map(|m| T::from_f64(*m)).collect();
            let scale: Vec<T> = self.scale.iter().map(|m| T::from_f64(*m)).collect();
            let shift: Vec<T> = self.shift.iter().map(|m| T::from_f64(*m)).collect();
            with_act!(self.act, A => channel_sums(dims, x, dy, |ch| {
                let (scale, shift, mean) = (scale[ch], shift[ch], mean[ch]);
                move |x: T, dy: T| {
                    let g = A::grad(x * scale + shift, dy);
                    (g, g * (x - mean))
                }
            }))?
        });
        Ok((CpuStorage::F64(sums), Shape::from((dims.1, 2))))
    }
}

/// `(x, dy) -> dx = a g + bx x + c0` per channel, `g` as in [`GradSums`].
pub(super) struct GradInput {
    pub a: Vec<f64>,
    pub bx: Vec<f64>,
    pub c0: Vec<f64>,
    pub scale: Vec<f64>,
    pub shift: Vec<f64>,
    pub act: Activation,
}

impl CustomOp2 for GradInput {
    fn name(&self) -> &'static str {
        "fast-batch-norm-grad-input"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = split(l1.shape())?;
        let inner = dims.2;
        let out = by_dtype!(s1, self.name(), T => {
            let (x, dy) = (slice::<T>(s1, l1)?, slice::<T>(s2, l2)?);
            let dx = with_act!(self.act, A => per_plane(dims, #[inline(always)] |plane, ch, part| {
                let (a, bx, c0) = (T::from_f64(self.a[ch]), T::from_f64(self.bx[ch]), T::from_f64(self.c0[ch]));
                let (scale, shift) = (T::from_f64(self.scale[ch]), T::from_f64(self.shift[ch]));
                let r = plane * inner..(plane + 1) * inner;
                for ((d, xv), gv) in part.iter_mut().zip(&x[r.clone()]).zip(&dy[r]) {
                    *d = a * A::grad(*xv * scale + shift, *gv) + bx * *xv + c0;
                }
            }))?;
            T::to_cpu_storage_owned(dx)
        });
        Ok((out, l1.shape().clone()))
    }
}
