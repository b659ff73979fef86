//! Direct depthwise 2D convolution (`groups == channels`, one filter per channel, weight
//! `(c, 1, kh, kw)`): forward and input gradient parallel over `(image, channel)` planes,
//! weight gradient parallel over channels (each sums its images in order).
//!
//! Each plane is first zero-padded and split into `stride x stride` phase planes (for
//! stride 1 this is just the padded plane): pixel `(R, C)` of the padded plane goes to phase
//! `(R % s, C % s)` at `(R / s, C / s)`. Output `(oh, o)` of kernel tap `(ki, kj)` then reads
//! phase `(ki % s, kj % s)` at `(oh + ki / s, o + kj / s)`, so with outputs laid out on the
//! phase planes' row length every tap is one contiguous multiply-add over the whole plane
//! (the few columns past each output row are computed and dropped). Short rows (the 7x7
//! and 14x14 maps of the deep layers) no longer cost a loop each.
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, WithDType};

use super::geom::{Geom, Pass};
use super::{par_chunks, par_planes, slice, Float, LANES};

/// The phase planes of one padded input plane.
#[derive(Clone, Copy)]
struct Phases {
    s: usize,
    pad: usize,
    /// Rows and row length of each phase plane.
    hh: usize,
    wh: usize,
}

impl Phases {
    fn new(g: &Geom) -> Phases {
        let s = g.stride;
        Phases {
            s,
            pad: g.pad,
            hh: (g.h + 2 * g.pad).div_ceil(s),
            wh: (g.w + 2 * g.pad).div_ceil(s),
        }
    }

    /// Elements of all phase planes together.
    fn len(&self) -> usize {
        self.s * self.s * self.hh * self.wh
    }

    /// Index of padded pixel `(r, c)`; for a kernel tap `(ki, kj)`, where output `(0, 0)`
    /// reads (output `(oh, o)` reads `oh * wh + o` further on).
    #[inline(always)]
    fn at(&self, r: usize, c: usize) -> usize {
        let (s, plane) = (self.s, self.hh * self.wh);
        ((r % s) * s + c % s) * plane + (r / s) * self.wh + c / s
    }

    /// Writes the padded plane `x` (`h x w`) into `ph` (zeroing the padding).
    #[inline(always)]
    fn split<T: Float>(&self, g: &Geom, x: &[T], ph: &mut [T]) {
        ph.fill(T::zero());
        for (r, row) in x.chunks_exact(g.w).enumerate() {
            self.for_row(g, r, |at, c0| {
                let src = row[c0..].iter().step_by(self.s);
                for (d, v) in ph[at..].iter_mut().zip(src) {
                    *d = *v;
                }
            });
        }
    }

    /// The reverse of [`Phases::split`]: the plane `x` read back from `ph`, padding dropped.
    #[inline(always)]
    fn merge<T: Float>(&self, g: &Geom, ph: &[T], x: &mut [T]) {
        for (r, row) in x.chunks_exact_mut(g.w).enumerate() {
            self.for_row(g, r, |at, c0| {
                for (d, v) in row[c0..].iter_mut().step_by(self.s).zip(&ph[at..]) {
                    *d = *v;
                }
            });
        }
    }

    /// For input row `r` calls `f(at, c0)` once per column phase: the input columns `c0`,
    /// `c0 + s`, ... land on consecutive elements of `ph` from `at`. No division per element,
    /// which the stride-2 layers used to pay.
    #[inline(always)]
    fn for_row(&self, g: &Geom, r: usize, mut f: impl FnMut(usize, usize)) {
        let r = r + self.pad;
        for pc in 0..self.s {
            // The first padded column `>= pad` of phase `pc`, and its input column.
            let first = self.pad + (pc + self.s - self.pad % self.s) % self.s;
            if first - self.pad < g.w {
                f(self.at(r, first), first - self.pad);
            }
        }
    }

    /// Outputs laid out on the phase row length: `(oh - 1) * wh + ow` elements.
    #[inline(always)]
    fn run(&self, g: &Geom) -> usize {
        (g.oh - 1) * self.wh + g.ow
    }
}

/// Scratch elements one plane needs: the phase planes and the outputs on their row length.
fn scratch_len(g: &Geom) -> usize {
    let ph = Phases::new(g);
    ph.len() + ph.run(g)
}

/// One plane of the forward pass: `y (oh x ow) = x (h x w) * k (kh x kw)`.
#[inline(always)]
fn forward_plane<T: Float>(g: &Geom, x: &[T], k: &[T], y: &mut [T], scratch: &mut [T]) {
    let ph = Phases::new(g);
    let (planes, out) = scratch.split_at_mut(ph.len());
    ph.split(g, x, planes);
    let n = ph.run(g);
    let out = &mut out[..n];
    out.fill(T::zero());
    for ki in 0..g.kh {
        for kj in 0..g.kw {
            let (wv, from) = (k[ki * g.kw + kj], ph.at(ki, kj));
            for (d, v) in out.iter_mut().zip(&planes[from..from + n]) {
                *d += wv * *v;
            }
        }
    }
    for (oh, row) in y.chunks_exact_mut(g.ow).enumerate() {
        row.copy_from_slice(&out[oh * ph.wh..][..g.ow]);
    }
}

/// `dy` (`oh x ow`) laid out on the phase row length, zero past each row.
#[inline(always)]
fn spread<T: Float>(g: &Geom, ph: &Phases, dy: &[T], out: &mut [T]) {
    out.fill(T::zero());
    for (oh, row) in dy.chunks_exact(g.ow).enumerate() {
        out[oh * ph.wh..][..g.ow].copy_from_slice(row);
    }
}

/// One plane of the input gradient: `dx (h x w) = dy (oh x ow) *^T k`.
#[inline(always)]
fn input_grad_plane<T: Float>(g: &Geom, dy: &[T], k: &[T], dx: &mut [T], scratch: &mut [T]) {
    let ph = Phases::new(g);
    let (planes, d) = scratch.split_at_mut(ph.len());
    let n = ph.run(g);
    let d = &mut d[..n];
    spread(g, &ph, dy, d);
    planes.fill(T::zero());
    for ki in 0..g.kh {
        for kj in 0..g.kw {
            let (wv, from) = (k[ki * g.kw + kj], ph.at(ki, kj));
            for (p, v) in planes[from..from + n].iter_mut().zip(d.iter()) {
                *p += wv * *v;
            }
        }
    }
    ph.merge(g, planes, dx);
}

/// One plane's contribution to the weight gradient: `acc[tap]` gets `corr(x, dy)` at that
/// tap, spread over [`LANES`] lanes so that the dot products vectorise.
#[inline(always)]
fn weight_grad_plane<T: Float>(
    g: &Geom,
    x: &[T],
    dy: &[T],
    acc: &mut [[T; LANES]],
    scratch: &mut [T],
) {
    let ph = Phases::new(g);
    let (planes, d) = scratch.split_at_mut(ph.len());
    let n = ph.run(g);
    let d = &mut d[..n];
    ph.split(g, x, planes);
    spread(g, &ph, dy, d);
    for ki in 0..g.kh {
        for kj in 0..g.kw {
            let from = ph.at(ki, kj);
            let lanes = &mut acc[ki * g.kw + kj];
            let (mut dc, mut xc) = (
                d.chunks_exact(LANES),
                planes[from..from + n].chunks_exact(LANES),
            );
            for (a, b) in (&mut dc).zip(&mut xc) {
                for l in 0..LANES {
                    lanes[l] += a[l] * b[l];
                }
            }
            for (l, (a, b)) in dc.remainder().iter().zip(xc.remainder()).enumerate() {
                lanes[l] += *a * *b;
            }
        }
    }
}

fn forward<T: Float>(g: &Geom, x: &[T], k: &[T]) -> Result<Vec<T>> {
    let (hw, ohw, kk) = (g.h * g.w, g.oh * g.ow, g.kh * g.kw);
    par_planes(
        g.b * g.co * ohw,
        ohw,
        scratch_len(g),
        #[inline(always)]
        |i, yp, scratch| {
            let c = i % g.co;
            let (x, k) = (&x[i * hw..(i + 1) * hw], &k[c * kk..(c + 1) * kk]);
            forward_plane(g, x, k, yp, scratch);
        },
    )
}

fn input_grad<T: Float>(g: &Geom, dy: &[T], k: &[T]) -> Result<Vec<T>> {
    let (hw, ohw, kk) = (g.h * g.w, g.oh * g.ow, g.kh * g.kw);
    par_planes(
        g.b * g.ci * hw,
        hw,
        scratch_len(g),
        #[inline(always)]
        |i, dxp, scratch| {
            let c = i % g.ci;
            let (dy, k) = (&dy[i * ohw..(i + 1) * ohw], &k[c * kk..(c + 1) * kk]);
            input_grad_plane(g, dy, k, dxp, scratch);
        },
    )
}

fn weight_grad<T: Float>(g: &Geom, x: &[T], dy: &[T]) -> Result<Vec<T>> {
    let (hw, ohw, kk) = (g.h * g.w, g.oh * g.ow, g.kh * g.kw);
    let mut dk = vec![T::zero(); g.co * kk];
    par_chunks(
        &mut dk,
        kk,
        scratch_len(g),
        #[inline(always)]
        |c, dkc, scratch| {
            let mut acc = vec![[T::zero(); LANES]; kk];
            for b in 0..g.b {
                let i = b * g.co + c;
                let (xp, dyp) = (&x[i * hw..(i + 1) * hw], &dy[i * ohw..(i + 1) * ohw]);
                weight_grad_plane(g, xp, dyp, &mut acc, scratch);
            }
            for (d, lanes) in dkc.iter_mut().zip(&acc) {
                *d = lanes.iter().fold(T::zero(), |s, v| s + *v);
            }
            Ok(())
        },
    )?;
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
