//! Dense 2D convolution (NCHW x OIHW, square stride and padding) through im2col + GEMM,
//! with its input gradient (GEMM + col2im) and weight gradient (GEMM over im2col tiles).
//!
//! The forward pass and the input gradient split the batch across the kernel pool: a large
//! image is processed in tiles of whole output rows whose im2col block stays in the L2 cache,
//! small ones (the deep layers) several to one GEMM. The weight gradient splits by input
//! channels (and, when they are few, by fixed groups of images whose partial results are
//! added in order), so it is bit-identical for every thread count.
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, WithDType};

use super::geom::{col2im, im2col, tiles, Block, Geom, Pass};
use super::mat::{gemm, View};
use super::{direct, par_chunks, par_new, slice, winograd, Float};

/// Weight-gradient work items to aim for: the gradient is split by input channels and,
/// when there are fewer channel chunks than this, by groups of images whose partial results
/// are added in order (the split depends on the shapes only, never on the thread count).
const MIN_ITEMS: usize = 8;

/// Columns of the weight gradient per channel chunk.
const CHUNK_COLS: usize = 128;

/// Weight gradients of at most this many elements are split by images only.
const SMALL_GRADIENT: usize = 1 << 16;

/// Threads for gemm itself: all of them when there is less than one work item per thread.
pub(crate) fn inner_threads(items: usize) -> usize {
    let n = super::threads();
    if items < n {
        n
    } else {
        1
    }
}

/// Forward pass: `y = conv(x, weight)`, `(b, co, oh, ow)` row-major.
pub(crate) fn forward<T: Float>(g: &Geom, x: &[T], weight: &[T]) -> Result<Vec<T>> {
    if winograd::applies(g) {
        return winograd::forward(g, x, weight);
    }
    if direct::applies(g) {
        if let (Some(x), Some(w)) = (super::as_f32(x), super::as_f32(weight)) {
            return Ok(super::from_f32(direct::forward(g, x, w)?));
        }
    }
    let (k, hw, ohw) = (g.k(), g.h * g.w, g.oh * g.ow);
    let len = g.b * g.co * ohw;
    let lhs = View::new(weight, k, 1);
    let per = g.images_per_gemm();
    if per > 1 {
        // Several whole images per GEMM: their im2col columns side by side, the product into
        // scratch, then each image's rows copied out.
        let n_max = per * ohw;
        let par = inner_threads(g.b.div_ceil(per));
        return par_new(
            len,
            per * g.co * ohw,
            (k + g.co) * n_max,
            #[inline(always)]
            |item, yi, buf| {
                let images = yi.len() / (g.co * ohw);
                let n = images * ohw;
                let (col, out) = buf.split_at_mut(k * n_max);
                let b0 = item * per;
                im2col_images(g, x, b0..b0 + images, (0, g.ci), col);
                let rhs = View::new(&col[..k * n], n, 1);
                gemm(g.co, n, k, &mut out[..g.co * n], n, false, lhs, rhs, par)?;
                scatter(&out[..g.co * n], yi, g.co, ohw);
                Ok(())
            },
        );
    }
    let tile = g.tile_rows::<T>(k);
    let scratch = if g.pointwise() { 0 } else { k * tile * g.ow };
    let par = inner_threads(g.b);
    par_new(
        len,
        g.co * ohw,
        scratch,
        #[inline(always)]
        |b, yb, col| {
            let xb = &x[b * g.ci * hw..(b + 1) * g.ci * hw];
            if g.pointwise() {
                return gemm(g.co, ohw, k, yb, ohw, false, lhs, View::new(xb, hw, 1), par);
            }
            for (r0, r1) in tiles(g.oh, tile) {
                let n = (r1 - r0) * g.ow;
                im2col(g, xb, col, Block::rows(g, r0, r1));
                let rhs = View::new(&col[..k * n], n, 1);
                gemm(g.co, n, k, &mut yb[r0 * g.ow..], ohw, false, lhs, rhs, par)?;
            }
            Ok(())
        },
    )
}

/// The im2col columns of the whole images `images` of `x`, for input channels `c0..c1`, side
/// by side in `col`: image `b0 + i` fills columns `i * oh * ow..`, rows `images.len() * oh *
/// ow` apart.
fn im2col_images<T: Float>(
    g: &Geom,
    x: &[T],
    images: std::ops::Range<usize>,
    (c0, c1): (usize, usize),
    col: &mut [T],
) {
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    let ld = images.len() * ohw;
    for (i, b) in images.enumerate() {
        let at = Block {
            c0,
            c1,
            r0: 0,
            r1: g.oh,
            ld,
        };
        im2col(
            g,
            &x[b * g.ci * hw..(b + 1) * g.ci * hw],
            &mut col[i * ohw..],
            at,
        );
    }
}

/// Copies a `rows x (images * len)` matrix (images side by side) into `images` consecutive
/// `rows x len` images.
fn scatter<T: Float>(src: &[T], dst: &mut [T], rows: usize, len: usize) {
    let n = dst.len() / len / rows * len;
    for (i, image) in dst.chunks_mut(rows * len).enumerate() {
        for (r, row) in image.chunks_mut(len).enumerate() {
            row.copy_from_slice(&src[r * n + i * len..][..len]);
        }
    }
}

/// The reverse of [`scatter`]: consecutive `rows x len` images side by side in `dst`.
fn gather<T: Float>(src: &[T], dst: &mut [T], rows: usize, len: usize) {
    let n = src.len() / len / rows * len;
    for (i, image) in src.chunks(rows * len).enumerate() {
        for (r, row) in image.chunks(len).enumerate() {
            dst[r * n + i * len..][..len].copy_from_slice(row);
        }
    }
}

/// Input gradient: `dx = conv^T(dy, weight)`, `(b, ci, h, w)`: per tile, the columns
/// `weight^T * dy` are added back into the image (col2im).
pub(crate) fn input_grad<T: Float>(g: &Geom, dy: &[T], weight: &[T]) -> Result<Vec<T>> {
    if let Some((g2, flipped)) = as_forward(g, weight)? {
        return forward(&g2, dy, &flipped);
    }
    let (k, hw, ohw) = (g.k(), g.h * g.w, g.oh * g.ow);
    let mut dx = vec![T::zero(); g.b * g.ci * hw];
    let lhs = View::new(weight, 1, k);
    let per = g.images_per_gemm();
    if per > 1 {
        let n_max = per * ohw;
        let par = inner_threads(g.b.div_ceil(per));
        par_chunks(
            &mut dx,
            per * g.ci * hw,
            (k + g.co) * n_max,
            #[inline(always)]
            |item, dxi, buf| {
                let images = dxi.len() / (g.ci * hw);
                let n = images * ohw;
                let (col, dys) = buf.split_at_mut(k * n_max);
                let b0 = item * per;
                gather(
                    &dy[b0 * g.co * ohw..(b0 + images) * g.co * ohw],
                    dys,
                    g.co,
                    ohw,
                );
                let rhs = View::new(&dys[..g.co * n], n, 1);
                gemm(k, n, g.co, &mut col[..k * n], n, false, lhs, rhs, par)?;
                for (i, dxb) in dxi.chunks_mut(g.ci * hw).enumerate() {
                    let at = Block {
                        ld: n,
                        ..Block::rows(g, 0, g.oh)
                    };
                    col2im(g, &mut col[i * ohw..], dxb, at);
                }
                Ok(())
            },
        )?;
        return Ok(dx);
    }
    let tile = g.tile_rows::<T>(k);
    let scratch = if g.pointwise() { 0 } else { k * tile * g.ow };
    let par = inner_threads(g.b);
    par_chunks(
        &mut dx,
        g.ci * hw,
        scratch,
        #[inline(always)]
        |b, dxb, col| {
            let dyb = &dy[b * g.co * ohw..(b + 1) * g.co * ohw];
            if g.pointwise() {
                let rhs = View::new(dyb, ohw, 1);
                return gemm(k, hw, g.co, dxb, hw, false, lhs, rhs, par);
            }
            for (r0, r1) in tiles(g.oh, tile) {
                let n = (r1 - r0) * g.ow;
                let rhs = View::new(&dyb[r0 * g.ow..], ohw, 1);
                gemm(k, n, g.co, &mut col[..k * n], n, false, lhs, rhs, par)?;
                col2im(g, &mut col[..k * n], dxb, Block::rows(g, r0, r1));
            }
            Ok(())
        },
    )?;
    Ok(dx)
}

/// The input gradient of a stride-1 convolution as a forward convolution: `dy` padded by
/// `k - 1 - pad` and convolved with the kernel flipped in space and with its two channel
/// axes swapped. It then runs at the forward pass's speed: its GEMM sums over `co * kh * kw`
/// instead of `co`, and nothing is added back through col2im. `None` for other shapes.
fn as_forward<T: Float>(g: &Geom, weight: &[T]) -> Result<Option<(Geom, Vec<T>)>> {
    if g.stride != 1 || g.kh != g.kw || g.pad >= g.kh || g.pointwise() {
        return Ok(None);
    }
    let g2 = Geom::new(
        (g.b, g.co, g.oh, g.ow),
        (g.ci, g.kh, g.kw),
        1,
        g.kh - 1 - g.pad,
    )?;
    if (g2.oh, g2.ow) != (g.h, g.w) {
        return Ok(None);
    }
    let kk = g.kh * g.kw;
    let mut flipped = vec![T::zero(); weight.len()];
    for o in 0..g.co {
        for i in 0..g.ci {
            let src = &weight[(o * g.ci + i) * kk..][..kk];
            let dst = &mut flipped[(i * g.co + o) * kk..][..kk];
            for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
                *d = *s;
            }
        }
    }
    Ok(Some((g2, flipped)))
}

/// The input channels `c0..c1` of weight-gradient chunk `i` of `chunks` (sizes differ by at
/// most one).
fn chunk_channels(ci: usize, chunks: usize, i: usize) -> (usize, usize) {
    let (base, rem) = (ci / chunks, ci % chunks);
    let c0 = i * base + i.min(rem);
    (c0, c0 + base + usize::from(i < rem))
}

/// Weight gradient: `dw = sum_b dy_b * im2col(x_b)^T`, `(co, ci, kh, kw)`.
///
/// Work items are chunks of input channels (each owns the gradient columns of its channels
/// and builds only their im2col rows) times groups of images; the groups' partial results
/// are added in a fixed order, so the result is the same for every thread count.
pub(crate) fn weight_grad<T: Float>(g: &Geom, x: &[T], dy: &[T]) -> Result<Vec<T>> {
    if winograd::applies(g) {
        return winograd::weight_grad(g, x, dy);
    }
    let (k, hw, ohw, kk) = (g.k(), g.h * g.w, g.oh * g.ow, g.kh * g.kw);
    let per = g.images_per_gemm();
    let spans = g.b.div_ceil(per);
    // Several images per GEMM need each span's dy as one `co x n` matrix.
    let dys = if per > 1 {
        let mut dys = vec![T::zero(); dy.len()];
        par_chunks(
            &mut dys,
            per * g.co * ohw,
            0,
            #[inline(always)]
            |s, out, _| {
                gather(&dy[s * per * g.co * ohw..][..out.len()], out, g.co, ohw);
                Ok(())
            },
        )?;
        dys
    } else {
        Vec::new()
    };
    // Item counts that are multiples of 4 keep 2 or 4 threads evenly busy. A small gradient
    // is not split by channels: each chunk would read (and pack) all of `dy` again, which
    // costs more than adding up a few small partial results.
    let chunks = if g.co * k <= SMALL_GRADIENT {
        1
    } else {
        k.div_ceil(CHUNK_COLS).next_multiple_of(4).min(g.ci)
    };
    let chunk_c = g.ci.div_ceil(chunks);
    let mut groups = MIN_ITEMS.div_ceil(chunks);
    while (chunks * groups) % 4 != 0 {
        groups += 1;
    }
    let spans_per_group = spans.div_ceil(groups.min(spans));
    let groups = spans.div_ceil(spans_per_group);
    let part = g.co * chunk_c * kk;
    let tile = g.tile_rows::<T>(chunk_c * kk);
    let n_max = if per > 1 { per * ohw } else { tile * g.ow };
    let par = inner_threads(chunks * groups);
    let mut partials = vec![T::zero(); groups * chunks * part];
    par_chunks(
        &mut partials,
        part,
        chunk_c * kk * n_max,
        #[inline(always)]
        |item, acc, col| {
            let (grp, chunk) = (item / chunks, item % chunks);
            let (c0, c1) = chunk_channels(g.ci, chunks, chunk);
            let kc = (c1 - c0) * kk;
            let acc = &mut acc[..g.co * kc];
            let spans = grp * spans_per_group..((grp + 1) * spans_per_group).min(spans);
            for s in spans {
                let images = s * per..((s + 1) * per).min(g.b);
                if per > 1 {
                    let n = images.len() * ohw;
                    im2col_images(g, x, images.clone(), (c0, c1), col);
                    let lhs = View::new(&dys[images.start * g.co * ohw..], n, 1);
                    let rhs = View::new(&col[..kc * n], 1, n);
                    gemm(g.co, kc, n, acc, kc, true, lhs, rhs, par)?;
                    continue;
                }
                let b = images.start;
                let xb = &x[b * g.ci * hw..(b + 1) * g.ci * hw];
                let dyb = &dy[b * g.co * ohw..(b + 1) * g.co * ohw];
                if g.pointwise() {
                    let (lhs, rhs) = (View::new(dyb, ohw, 1), View::new(&xb[c0 * hw..], 1, hw));
                    gemm(g.co, kc, hw, acc, kc, true, lhs, rhs, par)?;
                    continue;
                }
                for (r0, r1) in tiles(g.oh, tile) {
                    let n = (r1 - r0) * g.ow;
                    im2col(
                        g,
                        xb,
                        col,
                        Block {
                            c0,
                            c1,
                            r0,
                            r1,
                            ld: n,
                        },
                    );
                    let lhs = View::new(&dyb[r0 * g.ow..], ohw, 1);
                    let rhs = View::new(&col[..kc * n], 1, n);
                    gemm(g.co, kc, n, acc, kc, true, lhs, rhs, par)?;
                }
            }
            Ok(())
        },
    )?;
    // Add the groups in order, then lay the channel chunks out as `(co, ci * kk)`.
    let first = super::add_in_order(&mut partials, chunks * part);
    let mut dw = vec![T::zero(); g.co * k];
    for (chunk, p) in first.chunks(part).enumerate() {
        let (c0, c1) = chunk_channels(g.ci, chunks, chunk);
        let kc = (c1 - c0) * kk;
        for (o, row) in p[..g.co * kc].chunks(kc).enumerate() {
            dw[o * k + c0 * kk..][..kc].copy_from_slice(row);
        }
    }
    Ok(dw)
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
        Conv2d::pass(stride, pad, Pass::Forward)
    }

    /// The op that computes `pass` (forward: `(x, weight)`; input gradient: `(dy, weight)`;
    /// weight gradient: `(x, dy)`).
    pub(crate) fn pass(stride: usize, pad: usize, pass: Pass) -> Self {
        Conv2d { stride, pad, pass }
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
