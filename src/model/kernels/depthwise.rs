//! Direct depthwise 2D convolution (`groups == channels`, one filter per channel, weight
//! `(c, 1, kh, kw)`): forward and input gradient parallel over `(image, channel)` planes,
//! weight gradient parallel over channels (each sums its images in order).
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, WithDType};

use super::geom::{Geom, Pass};
use super::{par_chunks, slice, Float};

/// Calls `f(oh, ih, kj, lo..hi, tap)` for every output row `oh`, kernel tap `(ki, kj)` (index
/// `tap`) and the input row `ih` it reads, skipping taps that fall into the padding; output
/// columns `lo..hi` read input columns `o * stride + kj - pad`.
#[inline(always)]
fn for_each_tap(g: &Geom, mut f: impl FnMut(usize, usize, usize, (usize, usize), usize)) {
    for oh in 0..g.oh {
        for ki in 0..g.kh {
            let ih = oh * g.stride + ki;
            if ih < g.pad || ih - g.pad >= g.h {
                continue;
            }
            for kj in 0..g.kw {
                // A tap that only ever reads padding (a map narrower than the padding) has no
                // columns; skipping it also keeps `lo + kj - pad` from underflowing.
                let (lo, hi) = g.valid(kj, g.w, g.ow);
                if lo < hi {
                    f(oh, ih - g.pad, kj, (lo, hi), ki * g.kw + kj);
                }
            }
        }
    }
}

/// One plane of the forward pass: `y (oh x ow) = x (h x w) * k (kh x kw)`.
fn forward_plane<T: Float>(g: &Geom, x: &[T], k: &[T], y: &mut [T]) {
    let (w, ow, s, p) = (g.w, g.ow, g.stride, g.pad);
    for_each_tap(g, |oh, ih, kj, (lo, hi), tap| {
        let (wv, src) = (k[tap], &x[ih * w..(ih + 1) * w]);
        let dst = &mut y[oh * ow + lo..oh * ow + hi];
        if s == 1 {
            for (d, v) in dst.iter_mut().zip(&src[lo + kj - p..hi + kj - p]) {
                *d += wv * *v;
            }
        } else {
            for (i, d) in dst.iter_mut().enumerate() {
                *d += wv * src[(lo + i) * s + kj - p];
            }
        }
    });
}

/// One plane of the input gradient: `dx (h x w) += dy (oh x ow) *^T k`.
fn input_grad_plane<T: Float>(g: &Geom, dy: &[T], k: &[T], dx: &mut [T]) {
    let (w, ow, s, p) = (g.w, g.ow, g.stride, g.pad);
    for_each_tap(g, |oh, ih, kj, (lo, hi), tap| {
        let (wv, src) = (k[tap], &dy[oh * ow + lo..oh * ow + hi]);
        let dst = &mut dx[ih * w..(ih + 1) * w];
        if s == 1 {
            for (d, v) in dst[lo + kj - p..hi + kj - p].iter_mut().zip(src) {
                *d += wv * *v;
            }
        } else {
            for (i, v) in src.iter().enumerate() {
                dst[(lo + i) * s + kj - p] += wv * *v;
            }
        }
    });
}

/// One plane's contribution to the weight gradient: `acc[tap]` gets `corr(x, dy)` at that
/// tap, spread over 8 lanes so that the dot products vectorise.
fn weight_grad_plane<T: Float>(g: &Geom, x: &[T], dy: &[T], acc: &mut [[T; 8]]) {
    let (w, ow, s, p) = (g.w, g.ow, g.stride, g.pad);
    for_each_tap(g, |oh, ih, kj, (lo, hi), tap| {
        let (src, d) = (&x[ih * w..(ih + 1) * w], &dy[oh * ow + lo..oh * ow + hi]);
        let lanes = &mut acc[tap];
        if s == 1 {
            let (mut dc, mut sc) = (
                d.chunks_exact(8),
                src[lo + kj - p..hi + kj - p].chunks_exact(8),
            );
            for (a, b) in (&mut dc).zip(&mut sc) {
                for l in 0..8 {
                    lanes[l] += a[l] * b[l];
                }
            }
            for (l, (a, b)) in dc.remainder().iter().zip(sc.remainder()).enumerate() {
                lanes[l] += *a * *b;
            }
        } else {
            for (i, a) in d.iter().enumerate() {
                lanes[i % 8] += *a * src[(lo + i) * s + kj - p];
            }
        }
    });
}

fn forward<T: Float>(g: &Geom, x: &[T], k: &[T]) -> Result<Vec<T>> {
    let (hw, ohw, kk) = (g.h * g.w, g.oh * g.ow, g.kh * g.kw);
    let mut y = vec![T::zero(); g.b * g.co * ohw];
    par_chunks(&mut y, ohw, 0, |i, yp, _| {
        let c = i % g.co;
        forward_plane(g, &x[i * hw..(i + 1) * hw], &k[c * kk..(c + 1) * kk], yp);
        Ok(())
    })?;
    Ok(y)
}

fn input_grad<T: Float>(g: &Geom, dy: &[T], k: &[T]) -> Result<Vec<T>> {
    let (hw, ohw, kk) = (g.h * g.w, g.oh * g.ow, g.kh * g.kw);
    let mut dx = vec![T::zero(); g.b * g.ci * hw];
    par_chunks(&mut dx, hw, 0, |i, dxp, _| {
        let c = i % g.ci;
        input_grad_plane(
            g,
            &dy[i * ohw..(i + 1) * ohw],
            &k[c * kk..(c + 1) * kk],
            dxp,
        );
        Ok(())
    })?;
    Ok(dx)
}

fn weight_grad<T: Float>(g: &Geom, x: &[T], dy: &[T]) -> Result<Vec<T>> {
    let (hw, ohw, kk) = (g.h * g.w, g.oh * g.ow, g.kh * g.kw);
    let mut dk = vec![T::zero(); g.co * kk];
    par_chunks(&mut dk, kk, 0, |c, dkc, _| {
        let mut acc = vec![[T::zero(); 8]; kk];
        for b in 0..g.b {
            let i = b * g.co + c;
            let (xp, dyp) = (&x[i * hw..(i + 1) * hw], &dy[i * ohw..(i + 1) * ohw]);
            weight_grad_plane(g, xp, dyp, &mut acc);
        }
        for (d, lanes) in dkc.iter_mut().zip(&acc) {
            *d = lanes.iter().fold(T::zero(), |s, v| s + *v);
        }
        Ok(())
    })?;
    Ok(dk)
}

/// Depthwise convolution with the given stride and padding; its backward uses the same op
/// type for the two gradients.
pub(crate) struct Depthwise {
    pub stride: usize,
    pub pad: usize,
    pass: Pass,
}

impl Depthwise {
    pub(crate) fn new(stride: usize, pad: usize) -> Self {
        Depthwise {
            stride,
            pad,
            pass: Pass::Forward,
        }
    }

    fn run<T: Float>(&self, a: &[T], la: &Layout, b: &[T], lb: &Layout) -> Result<(Vec<T>, Shape)> {
        let (s, p) = (self.stride, self.pad);
        let da = la.shape().dims4()?;
        let db = lb.shape().dims4()?;
        let fits = |g: &Geom, x: (usize, usize, usize, usize), y: (usize, usize, usize, usize)| {
            x == (g.b, g.ci, g.h, g.w) && y == (g.b, g.co, g.oh, g.ow) && g.ci == g.co
        };
        match self.pass {
            Pass::Forward => {
                let g = Geom::new(da, (db.0, db.2, db.3), s, p)?;
                if db.0 != g.ci || db.1 != 1 {
                    candle_core::bail!(
                        "depthwise conv: input {:?}, weight {:?}",
                        la.shape(),
                        lb.shape()
                    )
                }
                Ok((forward(&g, a, b)?, Shape::from((g.b, g.co, g.oh, g.ow))))
            }
            Pass::InputGrad(h, w) => {
                let g = Geom::new((da.0, da.1, h, w), (db.0, db.2, db.3), s, p)?;
                if db.1 != 1 || !fits(&g, (da.0, da.1, h, w), da) {
                    candle_core::bail!(
                        "depthwise input grad: dy {:?}, weight {:?}",
                        la.shape(),
                        lb.shape()
                    )
                }
                Ok((input_grad(&g, a, b)?, Shape::from((g.b, g.ci, h, w))))
            }
            Pass::WeightGrad(kh, kw) => {
                let g = Geom::new(da, (db.1, kh, kw), s, p)?;
                if !fits(&g, da, db) {
                    candle_core::bail!(
                        "depthwise weight grad: x {:?}, dy {:?}",
                        la.shape(),
                        lb.shape()
                    )
                }
                Ok((weight_grad(&g, a, b)?, Shape::from((g.co, 1, kh, kw))))
            }
        }
    }
}

impl CustomOp2 for Depthwise {
    fn name(&self) -> &'static str {
        match self.pass {
            Pass::Forward => "fast-depthwise-conv2d",
            Pass::InputGrad(..) => "fast-depthwise-conv2d-input-grad",
            Pass::WeightGrad(..) => "fast-depthwise-conv2d-weight-grad",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        Ok(by_dtype!(s1, self.name(), T => {
            let (v, shape) = self.run::<T>(slice(s1, l1)?, l1, slice(s2, l2)?, l2)?;
            (T::to_cpu_storage_owned(v), shape)
        }))
    }

    /// cuDNN with one group per channel; the channels are dimension 1 of the first input
    /// in all three passes (x, dy, x).
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let groups = l1.shape().dims4()?.1;
        let geometry = (self.stride, self.pad, groups);
        super::cuda::conv::conv2d(self.pass, geometry, (s1, l1), (s2, l2))
    }

    fn bwd(
        &self,
        x: &Tensor,
        k: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let (_, _, h, w) = x.dims4()?;
        let (_, _, kh, kw) = k.dims4()?;
        let (s, p) = (self.stride, self.pad);
        let dx = if x.track_op() {
            let op = Depthwise {
                stride: s,
                pad: p,
                pass: Pass::InputGrad(h, w),
            };
            Some(dy.apply_op2_no_bwd(k, &op)?)
        } else {
            None
        };
        let op = Depthwise {
            stride: s,
            pad: p,
            pass: Pass::WeightGrad(kh, kw),
        };
        Ok((dx, Some(x.apply_op2_no_bwd(&dy, &op)?)))
    }
}
