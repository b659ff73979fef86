//! Dense 2D convolution (NCHW x OIHW, square stride and padding) through im2col + GEMM,
//! with its input gradient (GEMM + col2im) and weight gradient (GEMM over im2col tiles).
//!
//! Work is split by image across the kernel pool. Each image is processed in tiles of whole
//! output rows whose im2col block stays in the L2 cache. The weight gradient sums fixed
//! groups of images into partial results that are added in order, so it is bit-identical for
//! every thread count.
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, WithDType};

use super::geom::{col2im, im2col, tiles, Geom, Pass};
use super::mat::{gemm, View};
use super::{par_chunks, slice, Float};

/// Images per partial weight gradient (fixed, so results do not depend on the thread count).
const IMAGES_PER_PARTIAL: usize = 4;

/// Threads for gemm itself: all of them when there is less than one work item per thread.
fn inner_threads(items: usize) -> usize {
    let n = super::threads();
    if items < n {
        n
    } else {
        1
    }
}

/// Forward pass: `y = conv(x, weight)`, `(b, co, oh, ow)` row-major.
pub(crate) fn forward<T: Float>(g: &Geom, x: &[T], weight: &[T]) -> Result<Vec<T>> {
    let (k, hw, ohw) = (g.k(), g.h * g.w, g.oh * g.ow);
    let mut y = vec![T::zero(); g.b * g.co * ohw];
    let tile = g.tile_rows::<T>();
    let scratch = if g.pointwise() { 0 } else { k * tile * g.ow };
    let lhs = View::new(weight, k, 1);
    let par = inner_threads(g.b);
    par_chunks(&mut y, g.co * ohw, scratch, |b, yb, col| {
        let xb = &x[b * g.ci * hw..(b + 1) * g.ci * hw];
        if g.pointwise() {
            return gemm(g.co, ohw, k, yb, ohw, false, lhs, View::new(xb, hw, 1), par);
        }
        for (r0, r1) in tiles(g.oh, tile) {
            let n = (r1 - r0) * g.ow;
            im2col(g, xb, col, r0, r1);
            let rhs = View::new(&col[..k * n], n, 1);
            gemm(g.co, n, k, &mut yb[r0 * g.ow..], ohw, false, lhs, rhs, par)?;
        }
        Ok(())
    })?;
    Ok(y)
}

/// Input gradient: `dx = conv^T(dy, weight)`, `(b, ci, h, w)`: per tile, the columns
/// `weight^T * dy` are added back into the image (col2im).
pub(crate) fn input_grad<T: Float>(g: &Geom, dy: &[T], weight: &[T]) -> Result<Vec<T>> {
    let (k, hw, ohw) = (g.k(), g.h * g.w, g.oh * g.ow);
    let mut dx = vec![T::zero(); g.b * g.ci * hw];
    let tile = g.tile_rows::<T>();
    let scratch = if g.pointwise() { 0 } else { k * tile * g.ow };
    let lhs = View::new(weight, 1, k);
    let par = inner_threads(g.b);
    par_chunks(&mut dx, g.ci * hw, scratch, |b, dxb, col| {
        let dyb = &dy[b * g.co * ohw..(b + 1) * g.co * ohw];
        if g.pointwise() {
            return gemm(
                k,
                hw,
                g.co,
                dxb,
                hw,
                false,
                lhs,
                View::new(dyb, ohw, 1),
                par,
            );
        }
        for (r0, r1) in tiles(g.oh, tile) {
            let n = (r1 - r0) * g.ow;
            let rhs = View::new(&dyb[r0 * g.ow..], ohw, 1);
            gemm(k, n, g.co, &mut col[..k * n], n, false, lhs, rhs, par)?;
            col2im(g, &mut col[..k * n], dxb, r0, r1);
        }
        Ok(())
    })?;
    Ok(dx)
}

/// Weight gradient: `dw = sum_b dy_b * im2col(x_b)^T`, `(co, ci, kh, kw)`.
pub(crate) fn weight_grad<T: Float>(g: &Geom, x: &[T], dy: &[T]) -> Result<Vec<T>> {
    let (k, hw, ohw) = (g.k(), g.h * g.w, g.oh * g.ow);
    let groups = g.b.div_ceil(IMAGES_PER_PARTIAL);
    let mut partials = vec![T::zero(); groups * g.co * k];
    let tile = g.tile_rows::<T>();
    let scratch = if g.pointwise() { 0 } else { k * tile * g.ow };
    let par = inner_threads(groups);
    par_chunks(&mut partials, g.co * k, scratch, |grp, acc, col| {
        let images = grp * IMAGES_PER_PARTIAL..((grp + 1) * IMAGES_PER_PARTIAL).min(g.b);
        for b in images {
            let xb = &x[b * g.ci * hw..(b + 1) * g.ci * hw];
            let dyb = &dy[b * g.co * ohw..(b + 1) * g.co * ohw];
            if g.pointwise() {
                let (lhs, rhs) = (View::new(dyb, ohw, 1), View::new(xb, 1, hw));
                gemm(g.co, k, hw, acc, k, true, lhs, rhs, par)?;
                continue;
            }
            for (r0, r1) in tiles(g.oh, tile) {
                let n = (r1 - r0) * g.ow;
                im2col(g, xb, col, r0, r1);
                let (lhs, rhs) = (
                    View::new(&dyb[r0 * g.ow..], ohw, 1),
                    View::new(&col[..k * n], 1, n),
                );
                gemm(g.co, k, n, acc, k, true, lhs, rhs, par)?;
            }
        }
        Ok(())
    })?;
    let (first, rest) = partials.split_at_mut(g.co * k);
    for part in rest.chunks(g.co * k) {
        for (a, b) in first.iter_mut().zip(part) {
            *a += *b;
        }
    }
    partials.truncate(g.co * k);
    Ok(partials)
}

/// Dense convolution with the given stride and padding; its backward uses the same op type
/// for the two gradients.
pub(crate) struct Conv2d {
    stride: usize,
    pad: usize,
    pass: Pass,
}

impl Conv2d {
    pub(crate) fn new(stride: usize, pad: usize) -> Self {
        Conv2d {
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
            x == (g.b, g.ci, g.h, g.w) && y == (g.b, g.co, g.oh, g.ow)
        };
        match self.pass {
            Pass::Forward => {
                let g = Geom::new(da, (db.0, db.2, db.3), s, p)?;
                if db.1 != g.ci {
                    candle_core::bail!("conv2d: input {:?}, weight {:?}", la.shape(), lb.shape())
                }
                Ok((forward(&g, a, b)?, Shape::from((g.b, g.co, g.oh, g.ow))))
            }
            Pass::InputGrad(h, w) => {
                let g = Geom::new((da.0, db.1, h, w), (db.0, db.2, db.3), s, p)?;
                if !fits(&g, (da.0, db.1, h, w), da) {
                    candle_core::bail!(
                        "conv2d input grad: dy {:?}, weight {:?}",
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
                        "conv2d weight grad: x {:?}, dy {:?}",
                        la.shape(),
                        lb.shape()
                    )
                }
                Ok((weight_grad(&g, a, b)?, Shape::from((g.co, g.ci, kh, kw))))
            }
        }
    }
}

impl CustomOp2 for Conv2d {
    fn name(&self) -> &'static str {
        match self.pass {
            Pass::Forward => "fast-conv2d",
            Pass::InputGrad(..) => "fast-conv2d-input-grad",
            Pass::WeightGrad(..) => "fast-conv2d-weight-grad",
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

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::conv::conv2d(self.pass, (self.stride, self.pad, 1), (s1, l1), (s2, l2))
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
        let (stride, pad) = (self.stride, self.pad);
        let dx = if x.track_op() {
            let op = Conv2d {
                stride,
                pad,
                pass: Pass::InputGrad(h, w),
            };
            Some(dy.apply_op2_no_bwd(k, &op)?)
        } else {
            None
        };
        let op = Conv2d {
            stride,
            pad,
            pass: Pass::WeightGrad(kh, kw),
        };
        Ok((dx, Some(x.apply_op2_no_bwd(&dy, &op)?)))
    }
}
