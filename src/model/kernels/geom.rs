//! Convolution geometry (shapes, padding ranges, row tiles) and the im2col/col2im copies
//! between an image and the column matrix a GEMM multiplies.
use candle_core::Result;

use super::Float;

/// Bytes of im2col data per tile: a quarter of a typical 1 MiB L2 cache.
const TILE_BYTES: usize = 256 * 1024;

/// Which of the three passes of a convolution op computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Pass {
    /// `(x, weight) -> y`.
    Forward,
    /// `(dy, weight) -> dx` for an input of the given height and width.
    InputGrad(usize, usize),
    /// `(x, dy) -> dweight` for a kernel of the given height and width.
    WeightGrad(usize, usize),
}

/// Shapes of one convolution: input `(b, ci, h, w)`, weight `(co, ci, kh, kw)`, output
/// `(b, co, oh, ow)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geom {
    pub b: usize,
    pub ci: usize,
    pub h: usize,
    pub w: usize,
    pub co: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad: usize,
    pub oh: usize,
    pub ow: usize,
}

impl Geom {
    /// Checks the arguments and derives the output size (floor mode).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        (b, ci, h, w): (usize, usize, usize, usize),
        (co, kh, kw): (usize, usize, usize),
        stride: usize,
        pad: usize,
    ) -> Result<Geom> {
        if stride == 0 || kh == 0 || kw == 0 {
            candle_core::bail!("convolution needs a positive stride and kernel size")
        }
        if h + 2 * pad < kh || w + 2 * pad < kw {
            candle_core::bail!(
                "convolution kernel {kh}x{kw} larger than padded input {}x{}",
                h + 2 * pad,
                w + 2 * pad
            )
        }
        let (oh, ow) = (
            (h + 2 * pad - kh) / stride + 1,
            (w + 2 * pad - kw) / stride + 1,
        );
        Ok(Geom {
            b,
            ci,
            h,
            w,
            co,
            kh,
            kw,
            stride,
            pad,
            oh,
            ow,
        })
    }

    /// Rows of the im2col matrix: `ci * kh * kw`.
    pub(crate) fn k(&self) -> usize {
        self.ci * self.kh * self.kw
    }

    /// Whether the convolution is a plain matrix product (1x1, stride 1, no padding).
    pub(crate) fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.pad == 0
    }

    /// Output rows per im2col tile.
    pub(crate) fn tile_rows<T>(&self) -> usize {
        let row_bytes = self.k() * self.ow * std::mem::size_of::<T>();
        (TILE_BYTES / row_bytes.max(1)).clamp(1, self.oh)
    }

    /// The output columns `o` whose input column `o * stride + j - pad` lies inside `0..len`,
    /// as a range `lo..hi` (empty when none does).
    pub(crate) fn valid(&self, j: usize, len: usize, out: usize) -> (usize, usize) {
        let (s, p) = (self.stride, self.pad);
        let lo = if j >= p { 0 } else { (p - j).div_ceil(s) };
        let hi = if len + p > j {
            ((len + p - 1 - j) / s + 1).min(out)
        } else {
            0
        };
        (lo.min(hi), hi)
    }
}

/// Calls `f(row, oh, lo, hi, src_row, dst)` for every im2col row `row` and output row
/// `oh` of the tile `r0..r1` whose input row `src_row` is inside the image (`None` for
/// padding): `dst` is the tile row's slice `col[row][t * ow..]` of length `ow`, and output
/// columns `lo..hi` read input columns `o * stride + kj - pad`.
#[inline(always)]
fn for_each_tile_row<T>(
    g: &Geom,
    col: &mut [T],
    r0: usize,
    r1: usize,
    mut f: impl FnMut(usize, usize, (usize, usize), Option<usize>, &mut [T]),
) {
    let (h, ow, s, p) = (g.h, g.ow, g.stride, g.pad);
    let ncols = (r1 - r0) * ow;
    for c in 0..g.ci {
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = (c * g.kh + ki) * g.kw + kj;
                let valid = g.valid(kj, g.w, ow);
                let dst = &mut col[row * ncols..(row + 1) * ncols];
                for (t, oh) in (r0..r1).enumerate() {
                    let ih = oh * s + ki;
                    let src = (ih >= p && ih - p < h).then(|| c * h + ih - p);
                    f(kj, oh, valid, src, &mut dst[t * ow..(t + 1) * ow]);
                }
            }
        }
    }
}

/// Fills `col` (`k x ncols`, `ncols = (r1 - r0) * ow`) with the im2col block of output rows
/// `r0..r1` of one image `x` (`ci x h x w`).
pub(crate) fn im2col<T: Float>(g: &Geom, x: &[T], col: &mut [T], r0: usize, r1: usize) {
    if g.stride == 1 && g.ow == g.w {
        return im2col_same(g, x, col, r0, r1);
    }
    let (w, s, p) = (g.w, g.stride, g.pad);
    for_each_tile_row(g, col, r0, r1, |kj, _oh, (lo, hi), src, d| {
        let Some(src) = src else {
            d.fill(T::zero());
            return;
        };
        let src = &x[src * w..(src + 1) * w];
        d[..lo].fill(T::zero());
        d[hi..].fill(T::zero());
        if s == 1 {
            d[lo..hi].copy_from_slice(&src[lo + kj - p..hi + kj - p]);
        } else {
            for (o, v) in d.iter_mut().enumerate().take(hi).skip(lo) {
                *v = src[o * s + kj - p];
            }
        }
    });
}

/// [`im2col`] for stride 1 and output width = input width (3x3 "same" convolutions): the
/// valid output rows of one im2col row read consecutive input rows, so each is one
/// contiguous copy followed by zeroing the columns that fall into the padding.
fn im2col_same<T: Float>(g: &Geom, x: &[T], col: &mut [T], r0: usize, r1: usize) {
    let (h, w, p) = (g.h, g.w, g.pad);
    let n = (r1 - r0) * w;
    for c in 0..g.ci {
        let plane = &x[c * h * w..(c + 1) * h * w];
        for ki in 0..g.kh {
            // Output rows whose input row `oh + ki - p` lies inside the image.
            let oh_lo = p.saturating_sub(ki).clamp(r0, r1);
            let oh_hi = (h + p).saturating_sub(ki).clamp(oh_lo, r1);
            let (a, b) = ((oh_lo - r0) * w, (oh_hi - r0) * w);
            for kj in 0..g.kw {
                let row = (c * g.kh + ki) * g.kw + kj;
                let dst = &mut col[row * n..(row + 1) * n];
                dst[..a].fill(T::zero());
                dst[b..].fill(T::zero());
                if a == b {
                    continue;
                }
                // dst[a + i] reads plane[start + i]; indices outside the plane only occur in
                // padding columns, which are zeroed below.
                let start = ((oh_lo + ki - p) * w + kj) as isize - p as isize;
                let from = start.max(0) as usize;
                let to = (start + (b - a) as isize).min((h * w) as isize) as usize;
                let at = a + (from as isize - start) as usize;
                dst[a..at].fill(T::zero());
                dst[at..at + to - from].copy_from_slice(&plane[from..to]);
                dst[at + to - from..b].fill(T::zero());
                let (lo, hi) = g.valid(kj, w, w);
                if lo > 0 || hi < w {
                    for t in (a..b).step_by(w) {
                        dst[t..t + lo].fill(T::zero());
                        dst[t + hi..t + w].fill(T::zero());
                    }
                }
            }
        }
    }
}

/// The reverse of [`im2col`] (col2im): adds the block `col` of output rows `r0..r1` back
/// into the image `x`.
pub(crate) fn col2im<T: Float>(g: &Geom, col: &mut [T], x: &mut [T], r0: usize, r1: usize) {
    let (w, s, p) = (g.w, g.stride, g.pad);
    for_each_tile_row(g, col, r0, r1, |kj, _oh, (lo, hi), src, d| {
        let Some(src) = src else { return };
        let dst = &mut x[src * w..(src + 1) * w];
        if s == 1 {
            for (a, b) in dst[lo + kj - p..hi + kj - p].iter_mut().zip(&d[lo..hi]) {
                *a += *b;
            }
        } else {
            for (o, v) in d.iter().enumerate().take(hi).skip(lo) {
                dst[o * s + kj - p] += *v;
            }
        }
    });
}

/// Output rows `r0..r1` in tiles of `tile` rows.
pub(crate) fn tiles(oh: usize, tile: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..oh)
        .step_by(tile.max(1))
        .map(move |r0| (r0, (r0 + tile).min(oh)))
}
