//! Convolution geometry (shapes, padding ranges, row tiles) and the im2col/col2im copies
//! between an image and the column matrix a GEMM multiplies.
use candle_core::Result;

use super::Float;

/// Bytes of im2col data per tile: a quarter of a typical 1 MiB L2 cache.
const TILE_BYTES: usize = 256 * 1024;

/// The fewest output columns worth one GEMM call (see [`Geom::images_per_gemm`]).
const MIN_COLS: usize = 128;

/// Which of the three passes of a convolution op computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pass {
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

    /// Output rows per im2col tile of one image, for a block of `rows` im2col rows.
    pub(crate) fn tile_rows<T>(&self, rows: usize) -> usize {
        let row_bytes = rows * self.ow * std::mem::size_of::<T>();
        (TILE_BYTES / row_bytes.max(1)).clamp(1, self.oh)
    }

    /// Images one GEMM covers: 1 when an image has at least [`MIN_COLS`] output positions,
    /// else enough whole images to reach that many (rounded up to a power of two) (the deep layers of a network, 7x7 or
    /// 4x4, would otherwise multiply matrices of 49 or 16 columns).
    pub(crate) fn images_per_gemm(&self) -> usize {
        // A power of two, so that a batch of 32 or 64 splits into an even number of GEMMs
        // (49 positions: 4 images, not 3 and a remainder that leaves a thread idle).
        let ohw = (self.oh * self.ow).max(1);
        MIN_COLS
            .div_ceil(ohw)
            .next_power_of_two()
            .clamp(1, self.b.max(1))
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

/// Where an im2col block lies in its column matrix: the im2col rows of channels `c0..c1`
/// (row `((c - c0) * kh + ki) * kw + kj`), `ld` elements apart, for the output rows `r0..r1`
/// of one image (`(r1 - r0) * ow` columns from the start of each row, `ld` at least that).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Block {
    pub c0: usize,
    pub c1: usize,
    pub r0: usize,
    pub r1: usize,
    pub ld: usize,
}

impl Block {
    /// All channels, output rows `r0..r1`, rows packed (`ld` = the block's width).
    pub(crate) fn rows(g: &Geom, r0: usize, r1: usize) -> Block {
        Block {
            c0: 0,
            c1: g.ci,
            r0,
            r1,
            ld: (r1 - r0) * g.ow,
        }
    }
}

/// Calls `f(kj, oh, (lo, hi), src_row, dst)` for every im2col row of the block and output
/// row `oh` of it, with the input row `src_row` (`None` for padding): `dst` is that output
/// row's `ow` columns in the im2col row, and output columns `lo..hi` read input columns
/// `o * stride + kj - pad`.
#[inline(always)]
fn for_each_tile_row<T>(
    g: &Geom,
    col: &mut [T],
    at: Block,
    mut f: impl FnMut(usize, usize, (usize, usize), Option<usize>, &mut [T]),
) {
    let (h, ow, s, p) = (g.h, g.ow, g.stride, g.pad);
    for c in at.c0..at.c1 {
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = ((c - at.c0) * g.kh + ki) * g.kw + kj;
                let valid = g.valid(kj, g.w, ow);
                let dst = &mut col[row * at.ld..];
                for (t, oh) in (at.r0..at.r1).enumerate() {
                    let ih = oh * s + ki;
                    let src = (ih >= p && ih - p < h).then(|| c * h + ih - p);
                    f(kj, oh, valid, src, &mut dst[t * ow..(t + 1) * ow]);
                }
            }
        }
    }
}

/// Fills the block `at` of `col` with the im2col columns of one image `x` (`ci x h x w`).
#[inline(always)]
pub(crate) fn im2col<T: Float>(g: &Geom, x: &[T], col: &mut [T], at: Block) {
    if g.stride == 1 && g.ow == g.w {
        return im2col_same(g, x, col, at);
    }
    let (w, s, p) = (g.w, g.stride, g.pad);
    for_each_tile_row(g, col, at, |kj, _oh, (lo, hi), src, d| {
        let Some(src) = src else {
            d.fill(T::zero());
            return;
        };
        let src = &x[src * w..(src + 1) * w];
        d[..lo].fill(T::zero());
        d[hi..].fill(T::zero());
        if lo == hi {
            return;
        }
        let from = lo * s + kj - p;
        if s == 1 {
            d[lo..hi].copy_from_slice(&src[from..from + hi - lo]);
        } else {
            // Chunks of `s` rather than `step_by`, which does not vectorise.
            for (v, x) in d[lo..hi].iter_mut().zip(src[from..].chunks(s)) {
                *v = x[0];
            }
        }
    });
}

/// [`im2col`] for stride 1 and output width = input width (3x3 "same" convolutions): the
/// valid output rows of one im2col row read consecutive input rows, so each is one
/// contiguous copy followed by zeroing the columns that fall into the padding.
#[inline(always)]
fn im2col_same<T: Float>(g: &Geom, x: &[T], col: &mut [T], at: Block) {
    let (h, w, p) = (g.h, g.w, g.pad);
    let (r0, r1) = (at.r0, at.r1);
    let n = (r1 - r0) * w;
    for c in at.c0..at.c1 {
        let plane = &x[c * h * w..(c + 1) * h * w];
        for ki in 0..g.kh {
            // Output rows whose input row `oh + ki - p` lies inside the image.
            let oh_lo = p.saturating_sub(ki).clamp(r0, r1);
            let oh_hi = (h + p).saturating_sub(ki).clamp(oh_lo, r1);
            let (a, b) = ((oh_lo - r0) * w, (oh_hi - r0) * w);
            for kj in 0..g.kw {
                let row = ((c - at.c0) * g.kh + ki) * g.kw + kj;
                let dst = &mut col[row * at.ld..row * at.ld + n];
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

/// The reverse of [`im2col`] (col2im): adds the block `at` of `col` back into the image `x`.
#[inline(always)]
pub(crate) fn col2im<T: Float>(g: &Geom, col: &mut [T], x: &mut [T], at: Block) {
    let (w, s, p) = (g.w, g.stride, g.pad);
    for_each_tile_row(g, col, at, |kj, _oh, (lo, hi), src, d| {
        let Some(src) = src else { return };
        if lo == hi {
            return;
        }
        let dst = &mut x[src * w + lo * s + kj - p..(src + 1) * w];
        if s == 1 {
            for (a, b) in dst.iter_mut().zip(&d[lo..hi]) {
                *a += *b;
            }
        } else {
            for (a, b) in dst.chunks_mut(s).zip(&d[lo..hi]) {
                a[0] += *b;
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
