//! Winograd F(2x2, 3x3) convolution for 3x3 stride-1 layers (Lavin and Gray, 2016): each
//! 2x2 output tile is computed from a 4x4 input tile in a transformed domain, with 16
//! multiplications per input channel instead of 36, so the GEMMs do 2.25x less work than the
//! im2col path's.
//!
//! Per block of tiles: the input tiles are transformed (`V = B^T d B`, 16 matrices of `ci x
//! tiles`), multiplied by the transformed weights (`U = G g G^T`, 16 matrices of `co x ci`,
//! computed once per call) in 16 GEMMs, and transformed back (`Y = A^T M A`) straight into the
//! output. Blocks are whole images when images are small, else bands of tile rows of one
//! image, sized so that a block's transformed data stays in the cache. The transforms work on
//! a whole block at once: each input (or output-gradient) row is split once into planes of
//! even and odd columns, so that every operand over an image and channel's tiles in the block
//! is one contiguous run (16-tile loops per tile row cost more than their arithmetic; the
//! change made the three passes of 64 -> 64 at 32x32 22% faster). Every output element is
//! computed by the same sequence of operations whatever the thread count.
use candle_core::Result;

use super::geom::Geom;
use super::mat::{gemm, View};
use super::{par_chunks, par_new, Float};

/// Where the transforms pay for themselves: at least 64 input and output channels, 196
/// output positions per image (14x14) and 24,576 input channels x positions. Measured with
/// `benches/conv.rs` against the direct kernel and im2col (`--no-winograd`), 2 threads, batch
/// 32: 64 -> 64 channels at 112x112 takes 99 ms instead of 160, at 32x32 11.5 instead of
/// 12.5, 128 -> 128 at 14x14 8.0 instead of 9.2; but 64 -> 64 at 16x16 3.7 instead of 3.2,
/// 16 -> 16 at 32x32 1.8 instead of 1.0, 512 -> 512 at 4x4 15.8 instead of 12.3.
const MIN_CHANNELS: usize = 64;
const MIN_POSITIONS: usize = 196;
const MIN_WORK: usize = 24_576;

/// Bytes of transformed input and output per block (both live at once): larger blocks give
/// the 16 GEMMs wider matrices; of 0.5 to 4 MiB, 4 MiB measured fastest (at 32x32 and 14x14).
const BLOCK_BYTES: usize = 4096 * 1024;

/// Work items to aim for when whole images are grouped (4: even for 1, 2 or 4 threads).
const MIN_ITEMS: usize = 4;

/// The fewest tiles worth one round of 16 GEMMs.
const MIN_TILES: usize = 64;

/// Whether the Winograd path computes this convolution: 3x3, stride 1, padding at most 2,
/// enough channels and a large enough output.
pub(crate) fn applies(g: &Geom) -> bool {
    super::winograd_enabled()
        && g.kh == 3
        && g.kw == 3
        && g.stride == 1
        && g.pad <= 2
        && g.ci >= MIN_CHANNELS
        && g.co >= MIN_CHANNELS
        && g.oh * g.ow >= MIN_POSITIONS
        && g.ci * g.oh * g.ow >= MIN_WORK
}

/// The transformed weights `U = G g G^T`, `(co, 16, ci)`: row `o * 16 + xi` holds element
/// `(xi / 4, xi % 4)` of the 4x4 transforms of output channel `o`'s filters, so matrix `xi`
/// of the product is the `co x ci` view from `xi * ci` with row stride `16 * ci`.
fn transform_weights<T: Float>(g: &Geom, weight: &[T]) -> Result<Vec<T>> {
    let ci = g.ci;
    let half = T::from_f64(0.5);
    let mut u = vec![T::zero(); 16 * g.co * ci];
    par_chunks(
        &mut u,
        16 * ci,
        0,
        #[inline(always)]
        |o, uo, _| {
            for (c, k) in weight[o * ci * 9..(o + 1) * ci * 9]
                .chunks_exact(9)
                .enumerate()
            {
                // G k: 4x3, rows (k0, (k0 + k1 + k2) / 2, (k0 - k1 + k2) / 2, k2) per column.
                let mut gk = [[T::zero(); 3]; 4];
                for j in 0..3 {
                    let (a, b, c) = (k[j], k[3 + j], k[6 + j]);
                    gk[0][j] = a;
                    gk[1][j] = (a + b + c) * half;
                    gk[2][j] = (a - b + c) * half;
                    gk[3][j] = c;
                }
                for (i, row) in gk.iter().enumerate() {
                    let (a, b, c2) = (row[0], row[1], row[2]);
                    let t = [a, (a + b + c2) * half, (a - b + c2) * half, c2];
                    for (j, v) in t.into_iter().enumerate() {
                        uo[(4 * i + j) * ci + c] = v;
                    }
                }
            }
            Ok(())
        },
    )?;
    Ok(u)
}

/// A block of tiles: images `b0..b1`, tile rows `r0..r1` of each.
#[derive(Clone, Copy)]
struct Tiles {
    b0: usize,
    b1: usize,
    r0: usize,
    r1: usize,
}

/// The geometry of the tiling: `th x tw` tiles of 2x2 outputs per image.
struct Tiling {
    th: usize,
    tw: usize,
}

impl Tiling {
    fn new(g: &Geom) -> Self {
        Tiling {
            th: g.oh.div_ceil(2),
            tw: g.ow.div_ceil(2),
        }
    }

    /// The block shape for about `budget` tiles per block: `(images, tile rows)`, bands of
    /// rows of one image when an image has at least that many tiles, else up to `most`
    /// whole images.
    fn blocking(&self, budget: usize, most: usize) -> (usize, usize) {
        let img_tiles = self.th * self.tw;
        if img_tiles >= budget {
            (1, (budget / self.tw).max(1))
        } else {
            ((budget / img_tiles).clamp(1, most), self.th)
        }
    }

    /// The blocks of images `b0..b1` for the block shape `(images, rows)`.
    fn blocks(
        &self,
        (b0, b1): (usize, usize),
        (images, rows): (usize, usize),
    ) -> impl Iterator<Item = Tiles> + '_ {
        (b0..b1).step_by(images).flat_map(move |b| {
            (0..self.th).step_by(rows).map(move |r0| Tiles {
                b0: b,
                b1: (b + images).min(b1),
                r0,
                r1: (r0 + rows).min(self.th),
            })
        })
    }
}

impl Tiles {
    /// The number of tiles in the block.
    fn count(&self, tl: &Tiling) -> usize {
        (self.b1 - self.b0) * (self.r1 - self.r0) * tl.tw
    }
}

/// Forward pass `y = conv(x, weight)` for a convolution where [`applies`] holds.
pub(crate) fn forward<T: Float>(g: &Geom, x: &[T], weight: &[T]) -> Result<Vec<T>> {
    let (co, ci, ohw) = (g.co, g.ci, g.oh * g.ow);
    let tl = Tiling::new(g);
    let u = transform_weights(g, weight)?;
    // Tiles per block: as many as fit the cache budget, at least MIN_TILES; at least
    // MIN_ITEMS work items where the batch allows, so that the transforms (which run inside
    // an item) keep every thread busy.
    let per_tile = 16 * (ci + co) * std::mem::size_of::<T>();
    let budget = (BLOCK_BYTES / per_tile).max(MIN_TILES);
    let shape = tl.blocking(budget, g.b.div_ceil(MIN_ITEMS).max(1));
    let (images, rows) = shape;
    let max_tiles = images * rows * tl.tw;
    let scratch = 16 * (ci + co) * max_tiles + transform_buf(&tl, rows);
    let par = super::conv::inner_threads(g.b.div_ceil(images));
    par_new(
        g.b * co * ohw,
        images * co * ohw,
        scratch,
        #[inline(always)]
        |item, yi, buf| {
            let (v, rest) = buf.split_at_mut(16 * ci * max_tiles);
            let (m, rows_buf) = rest.split_at_mut(16 * co * max_tiles);
            let b0 = item * images;
            let b1 = b0 + yi.len() / (co * ohw);
            for at in tl.blocks((b0, b1), shape) {
                let nt = at.count(&tl);
                transform_input(g, &tl, x, at, &mut v[..16 * ci * nt], rows_buf);
                for xi in 0..16 {
                    let lhs = View::new(&u[xi * ci..], 16 * ci, 1);
                    let rhs = View::new(&v[xi * ci * nt..(xi + 1) * ci * nt], nt, 1);
                    gemm(
                        co,
                        nt,
                        ci,
                        &mut m[xi * co * nt..(xi + 1) * co * nt],
                        nt,
                        false,
                        lhs,
                        rhs,
                        par,
                    )?;
                }
                transform_output(g, &tl, &m[..16 * co * nt], at, yi, rows_buf);
            }
            Ok(())
        },
    )
}

/// Weight-gradient work items: groups of images whose partial sums are added in order, so
/// the result does not depend on the thread count (8: even for 1, 2, 4 or 8 threads).
const GRAD_ITEMS: usize = 8;

/// Tiles per block of the weight gradient, whose GEMMs sum over the tiles: of 64 to 1024,
/// 128-240 measured fastest (`benches/conv.rs`, 64 -> 64 at 32x32: 14.5 ms, against 21.5 with
/// the forward pass's 512 and 16.0 through im2col).
const GRAD_TILES: usize = 240;

/// Weight gradient `dw = sum over tiles of G^T [(A dY A^T) * (B^T d B)] G` (the adjoint of
/// the forward pass's `Y = A^T [(G g G^T) * (B^T d B)] A`) for a convolution where
/// [`applies`] holds: per block, the input transform of [`forward`] and the output
/// gradient's (`A dY A^T`), then 16 GEMMs summing over the tiles into `16 x co x ci`, and at
/// the end `G^T M G` per filter.
pub(crate) fn weight_grad<T: Float>(g: &Geom, x: &[T], dy: &[T]) -> Result<Vec<T>> {
    let (co, ci) = (g.co, g.ci);
    let tl = Tiling::new(g);
    let item_images = g.b.div_ceil(GRAD_ITEMS).max(1);
    let items = g.b.div_ceil(item_images);
    let shape = tl.blocking(GRAD_TILES, item_images);
    let max_tiles = shape.0 * shape.1 * tl.tw;
    let scratch = 16 * (ci + co) * max_tiles + transform_buf(&tl, shape.1);
    let part = 16 * co * ci;
    let par = super::conv::inner_threads(items);
    let mut partials = vec![T::zero(); items * part];
    par_chunks(
        &mut partials,
        part,
        scratch,
        #[inline(always)]
        |item, acc, buf| {
            let (v, rest) = buf.split_at_mut(16 * ci * max_tiles);
            let (d, rows_buf) = rest.split_at_mut(16 * co * max_tiles);
            let first = item * item_images;
            for at in tl.blocks((first, (first + item_images).min(g.b)), shape) {
                let nt = at.count(&tl);
                transform_input(g, &tl, x, at, &mut v[..16 * ci * nt], rows_buf);
                transform_grad(g, &tl, dy, at, &mut d[..16 * co * nt], rows_buf);
                for xi in 0..16 {
                    let lhs = View::new(&d[xi * co * nt..(xi + 1) * co * nt], nt, 1);
                    let rhs = View::new(&v[xi * ci * nt..(xi + 1) * ci * nt], 1, nt);
                    let out = &mut acc[xi * co * ci..(xi + 1) * co * ci];
                    gemm(co, ci, nt, out, ci, true, lhs, rhs, par)?;
                }
            }
            Ok(())
        },
    )?;
    let m = super::add_in_order(&mut partials, part);
    // G^T M G per filter, G^T = [[1, 1/2, 1/2, 0], [0, 1/2, -1/2, 0], [0, 1/2, 1/2, 1]].
    let half = T::from_f64(0.5);
    let gt = |a: T, b: T, c: T, d: T| [a + (b + c) * half, (b - c) * half, (b + c) * half + d];
    let mut dw = vec![T::zero(); co * ci * 9];
    for (f, out) in dw.chunks_exact_mut(9).enumerate() {
        let mm = |xi: usize| m[xi * co * ci + f];
        // G^T over the rows of M, column by column, then over the columns.
        let cols: [[T; 3]; 4] =
            std::array::from_fn(|j| gt(mm(j), mm(4 + j), mm(8 + j), mm(12 + j)));
        for i in 0..3 {
            let r = gt(cols[0][i], cols[1][i], cols[2][i], cols[3][i]);
            out[3 * i..3 * i + 3].copy_from_slice(&r);
        }
    }
    Ok(dw)
}

/// `A dY A^T` for every tile of the block and output channel of `dy` (`b x co x oh x ow`),
/// `A = [[1, 0], [1, 1], [1, -1], [0, -1]]`, outputs past the edge taken as zero: matrix
/// `xi` of `d` is `co x nt`, tiles numbered as in [`transform_input`].
#[inline(always)]
fn transform_grad<T: Float>(
    g: &Geom,
    tl: &Tiling,
    dy: &[T],
    at: Tiles,
    d: &mut [T],
    buf: &mut [T],
) {
    let (oh, ow, tw) = (g.oh, g.ow, tl.tw);
    let rows = at.r1 - at.r0;
    let nt = at.count(tl);
    let cn = g.co * nt;
    // An image and channel's rows of `dy` split once into four planes of `rows x tw`: even
    // and odd columns of the even and of the odd rows, so that each operand over the block's
    // tiles is one contiguous run.
    let run = rows * tw;
    let planes = &mut buf[..4 * run];
    for b in at.b0..at.b1 {
        for o in 0..g.co {
            let plane = &dy[(b * g.co + o) * oh * ow..][..oh * ow];
            for ty in at.r0..at.r1 {
                let k = (ty - at.r0) * tw;
                for r in 0..2 {
                    let (e, od) = planes[2 * r * run..(2 * r + 2) * run].split_at_mut(run);
                    let (e, od) = (&mut e[k..k + tw], &mut od[k..k + tw]);
                    let row = 2 * ty + r;
                    if row < oh {
                        deinterleave(&plane[row * ow..][..ow], 0, e, od);
                    } else {
                        e.fill(T::zero());
                        od.fill(T::zero());
                    }
                }
            }
            let base = o * nt + (b - at.b0) * run;
            let (d00, d01) = (&planes[..run], &planes[run..2 * run]);
            let (d10, d11) = (&planes[2 * run..3 * run], &planes[3 * run..4 * run]);
            // A dY A^T: the rows combined as [r0, r0 + r1, r0 - r1, -r1], then the (even,
            // odd) columns the same way.
            let mix = |k: usize, u: T, v: T| match k {
                0 => u,
                1 => u + v,
                2 => u - v,
                _ => -v,
            };
            for a in 0..4 {
                for bb in 0..4 {
                    let out = &mut d[(4 * a + bb) * cn + base..][..run];
                    for (t, v) in out.iter_mut().enumerate() {
                        let c0 = mix(a, d00[t], d10[t]);
                        let c1 = mix(a, d01[t], d11[t]);
                        *v = mix(bb, c0, c1);
                    }
                }
            }
        }
    }
}

/// Scratch elements [`transform_input`] needs for blocks of `rows` tile rows.
fn input_buf(tl: &Tiling, rows: usize) -> usize {
    8 * (rows + 1) * tl.tw + 2 * (tl.tw + 1)
}

/// Scratch elements that any of the three transforms needs for blocks of `rows` tile rows:
/// [`transform_input`]'s, [`transform_output`]'s `12 * rows * tw` and [`transform_grad`]'s
/// `4 * rows * tw`.
fn transform_buf(tl: &Tiling, rows: usize) -> usize {
    input_buf(tl, rows).max(12 * rows * tl.tw)
}

/// `V = B^T d B` for every tile of the block and input channel: matrix `xi` of `v` is
/// `ci x nt`, tile `t = (image * rows + row) * tw + column`. `buf` holds [`input_buf`].
///
/// Per image and channel, the block's input rows are split once into eight planes of
/// `(rows + 1) x tw`: even and odd padded rows, each as the even columns from 0 (`e0`) and
/// from 1 (`e1`) and the odd columns from 0 (`o0`) and from 1 (`o1`), so that every
/// operand of the transform over all the block's tiles of that image is one contiguous run
/// of `rows * tw` elements (a tile row's input row `2 ty + i` is plane row `ty + i / 2` of
/// parity `i % 2`), and the loops run over whole blocks instead of 16-tile rows.
#[inline(always)]
fn transform_input<T: Float>(
    g: &Geom,
    tl: &Tiling,
    x: &[T],
    at: Tiles,
    v: &mut [T],
    buf: &mut [T],
) {
    let (h, w, p, tw) = (g.h, g.w, g.pad, tl.tw);
    let rows = at.r1 - at.r0;
    let nt = at.count(tl);
    let cn = g.ci * nt;
    let n = tw + 1;
    let len = (rows + 1) * tw;
    let (planes, eo) = buf[..input_buf(tl, rows)].split_at_mut(8 * len);
    let (e, o) = eo.split_at_mut(n);
    for b in at.b0..at.b1 {
        let t0 = (b - at.b0) * rows * tw;
        for c in 0..g.ci {
            let plane = &x[(b * g.ci + c) * h * w..][..h * w];
            for j in 0..=rows {
                for par in 0..2 {
                    let ih = (2 * (at.r0 + j) + par) as isize - p as isize;
                    if ih < 0 || ih >= h as isize {
                        e.fill(T::zero());
                        o.fill(T::zero());
                    } else {
                        deinterleave(&plane[ih as usize * w..][..w], p, e, o);
                    }
                    let from = |k: usize| (4 * par + k) * len + j * tw;
                    planes[from(0)..from(0) + tw].copy_from_slice(&e[..tw]);
                    planes[from(1)..from(1) + tw].copy_from_slice(&e[1..]);
                    planes[from(2)..from(2) + tw].copy_from_slice(&o[..tw]);
                    planes[from(3)..from(3) + tw].copy_from_slice(&o[1..]);
                }
            }
            let run = rows * tw;
            // Input row `i` of every tile: (e0, e1, o0, o1) over the block's tiles.
            let row = |i: usize| -> Row<'_, T> {
                let from = |k: usize| (4 * (i % 2) + k) * len + (i / 2) * tw;
                let pick = |k: usize| &planes[from(k)..from(k) + run];
                (pick(0), pick(1), pick(2), pick(3))
            };
            let rws = [row(0), row(1), row(2), row(3)];
            let base = c * nt + t0;
            rows_to_v(&rws, v, base, cn, run, 0, |(e0, e1, _, _), tx| {
                e0[tx] - e1[tx]
            });
            rows_to_v(&rws, v, base, cn, run, 1, |(_, e1, o0, _), tx| {
                o0[tx] + e1[tx]
            });
            rows_to_v(&rws, v, base, cn, run, 2, |(_, e1, o0, _), tx| {
                e1[tx] - o0[tx]
            });
            rows_to_v(&rws, v, base, cn, run, 3, |(_, _, o0, o1), tx| {
                o0[tx] - o1[tx]
            });
        }
    }
}

/// One input row of every tile of a block, split for the transform: even columns from 0 and
/// from 1, odd columns from 0 and from 1.
type Row<'a, T> = (&'a [T], &'a [T], &'a [T], &'a [T]);

/// Column `j` of `d B` for the four rows (`pick`), then `B^T` over the rows: writes
/// `V[4a + j]` for the `run` tiles from `base`.
#[inline(always)]
fn rows_to_v<T: Float>(
    rws: &[Row<'_, T>; 4],
    v: &mut [T],
    base: usize,
    cn: usize,
    run: usize,
    j: usize,
    pick: impl Fn(Row<'_, T>, usize) -> T,
) {
    let (v0, rest) = v[base + j * cn..].split_at_mut(4 * cn);
    let (v1, rest) = rest.split_at_mut(4 * cn);
    let (v2, v3) = rest.split_at_mut(4 * cn);
    let (v0, v1, v2, v3) = (
        &mut v0[..run],
        &mut v1[..run],
        &mut v2[..run],
        &mut v3[..run],
    );
    for tx in 0..run {
        let (q0, q1, q2, q3) = (
            pick(rws[0], tx),
            pick(rws[1], tx),
            pick(rws[2], tx),
            pick(rws[3], tx),
        );
        v0[tx] = q0 - q2;
        v1[tx] = q1 + q2;
        v2[tx] = q2 - q1;
        v3[tx] = q1 - q3;
    }
}

/// Splits an input row padded by `p` zeros on the left (and as many as needed on the right)
/// into its even (`e`) and odd (`o`) padded columns.
#[inline(always)]
fn deinterleave<T: Float>(row: &[T], p: usize, e: &mut [T], o: &mut [T]) {
    let w = row.len() as isize;
    let get = |c: isize| {
        if c >= 0 && c < w {
            row[c as usize]
        } else {
            T::zero()
        }
    };
    let n = e.len();
    // Columns k whose two inputs 2k - p and 2k + 1 - p both lie in the row.
    let lo = p.div_ceil(2).min(n);
    let hi = ((row.len() + p).saturating_sub(1) / 2).clamp(lo, n);
    for k in (0..lo).chain(hi..n) {
        let c = (2 * k) as isize - p as isize;
        e[k] = get(c);
        o[k] = get(c + 1);
    }
    let from = 2 * lo - p;
    for (k, pair) in (lo..hi).zip(row[from..].chunks_exact(2)) {
        e[k] = pair[0];
        o[k] = pair[1];
    }
}

/// `Y = A^T M A` for every tile of the block and output channel, written into the
/// block's images of `y` (`yi` holds the item's images, the first being image `at.b0`).
/// `buf` holds `12 * rows * tw` elements.
#[inline(always)]
fn transform_output<T: Float>(
    g: &Geom,
    tl: &Tiling,
    m: &[T],
    at: Tiles,
    yi: &mut [T],
    buf: &mut [T],
) {
    let (oh, ow, tw) = (g.oh, g.ow, tl.tw);
    let rows = at.r1 - at.r0;
    let nt = at.count(tl);
    let cn = g.co * nt;
    // Every operand over one image and channel's tiles in the block is one contiguous run.
    let run = rows * tw;
    let (out, cols) = buf[..12 * run].split_at_mut(4 * run);
    for (bi, yb) in yi.chunks_mut(g.co * oh * ow).enumerate() {
        for o in 0..g.co {
            let plane = &mut yb[o * oh * ow..][..oh * ow];
            let base = o * nt + bi * run;
            let mm = |xi: usize| &m[xi * cn + base..][..run];
            let (y00, rest) = out.split_at_mut(run);
            let (y01, rest) = rest.split_at_mut(run);
            let (y10, y11) = rest.split_at_mut(run);
            // A^T over the rows of M: [m0 + m1 + m2, m1 - m2 - m3] for each column j, then A
            // over the columns. One column at a time, so that every loop reads four slices
            // of equal length and vectorises.
            let (s00, rest) = cols.split_at_mut(run);
            let (s01, rest) = rest.split_at_mut(run);
            let (s02, rest) = rest.split_at_mut(run);
            let (s03, rest) = rest.split_at_mut(run);
            let (s10, rest) = rest.split_at_mut(run);
            let (s11, rest) = rest.split_at_mut(run);
            let (s12, s13) = rest.split_at_mut(run);
            for (j, (s0, s1)) in [
                (&mut *s00, &mut *s10),
                (&mut *s01, &mut *s11),
                (&mut *s02, &mut *s12),
                (&mut *s03, &mut *s13),
            ]
            .into_iter()
            .enumerate()
            {
                let (m0, m1, m2, m3) = (mm(j), mm(4 + j), mm(8 + j), mm(12 + j));
                for t in 0..run {
                    s0[t] = m0[t] + m1[t] + m2[t];
                    s1[t] = m1[t] - m2[t] - m3[t];
                }
            }
            for t in 0..run {
                y00[t] = s00[t] + s01[t] + s02[t];
                y01[t] = s01[t] - s02[t] - s03[t];
                y10[t] = s10[t] + s11[t] + s12[t];
                y11[t] = s11[t] - s12[t] - s13[t];
            }
            for ty in at.r0..at.r1 {
                let k = (ty - at.r0) * tw;
                let r = 2 * ty;
                let (e, od) = (&y00[k..k + tw], &y01[k..k + tw]);
                interleave(e, od, &mut plane[r * ow..(r + 1) * ow]);
                if r + 1 < oh {
                    let (e, od) = (&y10[k..k + tw], &y11[k..k + tw]);
                    interleave(e, od, &mut plane[(r + 1) * ow..(r + 2) * ow]);
                }
            }
        }
    }
}

/// `dst[2k] = even[k]`, `dst[2k + 1] = odd[k]` (the last odd one dropped for an odd length).
#[inline(always)]
fn interleave<T: Float>(even: &[T], odd: &[T], dst: &mut [T]) {
    let half = dst.len() / 2;
    let mut pairs = dst.chunks_exact_mut(2);
    for ((d, &a), &b) in (&mut pairs).zip(even).zip(odd) {
        d[0] = a;
        d[1] = b;
    }
    if let [last] = pairs.into_remainder() {
        *last = even[half];
    }
}
