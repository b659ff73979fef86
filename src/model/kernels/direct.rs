//! Direct convolution in f32 on AVX-512 (any kernel size, stride and padding): an implicit
//! GEMM of output pixels by output channels, with no im2col matrix and no packing of the
//! input. The microkernel keeps a block of pixels x 32 (or 16) output channels in registers
//! and, for every input channel and kernel tap, broadcasts each pixel's input value and
//! multiplies it into a vector of output channels' weights (packed once per call).
//!
//! Each work item pads its images once (`ci x (h + 2p) x (w + 2p)`), so every tap of every
//! pixel is one load at `pixel base + tap offset`; the small images of a network's deep
//! layers waste nothing, unlike GEMM-based paths whose matrices get thin there. Every output
//! element is summed in the same order whatever the thread count.
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use candle_core::Result;

use super::geom::Geom;
use super::{par_chunks, par_new};

/// Output pixels of a work item to aim for (whole images are grouped up to it).
const ITEM_PIXELS: usize = 256;

/// Weights of a panel chunk (floats): 256 KiB, a quarter of the L2 cache.
const PANEL_CHUNK: usize = 64 * 1024;

/// The most pixels of a microkernel block (of the `pixels::<NP, _>` instances below): `sums`
/// has that many rows to spare, room for any short last block to be computed whole.
const MAX_NP: usize = 12;

/// Work items to aim for (4: even for 1, 2 or 4 threads).
const MIN_ITEMS: usize = 4;

/// The most taps (`ci * kh * kw`) for which the direct kernel beats im2col + GEMM, and the
/// fewest output channels. Measured with `benches/conv.rs` (`--no-direct`), 2 threads, batch
/// 32: the ResNet-18 stem (7x7/2, 147 taps) 13.2 ms instead of 14.6, 64 -> 128 3x3/2 at 28x28
/// (576) 4.8 instead of 6.0, 128 -> 128 at 4x4 (1152) 0.87 instead of 1.03; but 256 -> 512
/// 3x3/2 at 7x7 (2304) 8.3 instead of 6.4, and 16 -> 16 at 32x32 1.6 instead of 1.0.
const MAX_TAPS: usize = 1152;
const MIN_CHANNELS: usize = 32;

/// Whether the direct kernel computes this convolution's forward pass (in f32): the CPU has
/// it ([`available`]) and the shape is one it is faster for.
pub(crate) fn applies(g: &Geom) -> bool {
    super::direct_enabled()
        && available()
        && !g.pointwise()
        && g.k() <= MAX_TAPS
        && g.co >= MIN_CHANNELS
}

/// Whether the direct kernel can run here: an x86-64 CPU with AVX-512 (and
/// [`super::set_simd`] not capping the calling thread below it).
pub(crate) fn available() -> bool {
    cfg!(target_arch = "x86_64") && super::Simd::current() == super::Simd::Avx512
}

/// The packed weights: `co` padded to blocks of `ob` output channels, each block `k x ob`
/// (`k = ci * kh * kw` in the weight's own order), zeros past `co`.
fn pack_weights(g: &Geom, weight: &[f32], ob: usize) -> Result<Vec<f32>> {
    let k = g.k();
    let blocks = g.co.div_ceil(ob);
    let mut wp = vec![0f32; blocks * k * ob];
    par_chunks(&mut wp, k * ob, 0, |b, panel, _| {
        for j in 0..ob.min(g.co - b * ob) {
            let src = &weight[(b * ob + j) * k..][..k];
            for (t, &v) in src.iter().enumerate() {
                panel[t * ob + j] = v;
            }
        }
        Ok(())
    })?;
    Ok(wp)
}

/// Forward pass `y = conv(x, weight)` in f32; call only where [`available`].
pub(crate) fn forward(g: &Geom, x: &[f32], weight: &[f32]) -> Result<Vec<f32>> {
    let (hp, wp_) = (g.h + 2 * g.pad, g.w + 2 * g.pad);
    let plane = hp * wp_;
    let (k, ohw) = (g.k(), g.oh * g.ow);
    // Blocks of 64 output channels with 4 pixels, of 32 with 8, or of 16 with 12 (few
    // channels): 16 or 12 accumulators, which leaves registers for the broadcasts the
    // compiler hoists.
    let ob = if g.co <= 16 {
        16
    } else if g.co.is_multiple_of(64) {
        64
    } else {
        32
    };
    let packed = pack_weights(g, weight, ob)?;
    // The input offset of every tap, relative to a pixel's base.
    let mut offsets = Vec::with_capacity(k);
    for c in 0..g.ci {
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                offsets.push((c * plane + ki * wp_ + kj) as u32);
            }
        }
    }
    if g.b * g.ci * plane >= u32::MAX as usize {
        candle_core::bail!(
            "direct conv: padded input of {} elements",
            g.b * g.ci * plane
        )
    }
    let most = g.b.div_ceil(MIN_ITEMS).max(1);
    let images = ITEM_PIXELS.div_ceil(ohw).clamp(1, most);
    par_new(
        g.b * g.co * ohw,
        images * g.co * ohw,
        images * g.ci * plane + (images * ohw + MAX_NP) * ob,
        |item, yi, buf| {
            let (xp, sums) = buf.split_at_mut(images * g.ci * plane);
            let n = yi.len() / (g.co * ohw);
            let b0 = item * images;
            pad_images(g, &x[b0 * g.ci * g.h * g.w..][..n * g.ci * g.h * g.w], xp);
            let xp = &xp[..n * g.ci * plane];
            let bases: Vec<u32> = (0..n)
                .flat_map(|i| {
                    (0..g.oh).flat_map(move |r| {
                        (0..g.ow).map(move |c| {
                            (i * g.ci * plane + r * g.stride * wp_ + c * g.stride) as u32
                        })
                    })
                })
                .collect();
            for (blk, panel) in packed.chunks_exact(k * ob).enumerate() {
                let o0 = blk * ob;
                #[cfg(target_arch = "x86_64")]
                // SAFETY: callers run this only where `available()` (AVX-512); every base plus
                // every offset lies inside `xp` (see `pixels`), the panel holds `k * ob`
                // weights, and `sums` has `MAX_NP` rows to spare.
                unsafe {
                    if ob == 64 {
                        pixels::<4, 4>(xp, &bases, &offsets, panel, sums);
                    } else if ob == 16 {
                        pixels::<12, 1>(xp, &bases, &offsets, panel, sums);
                    } else {
                        pixels::<8, 2>(xp, &bases, &offsets, panel, sums);
                    }
                }
                #[cfg(not(target_arch = "x86_64"))]
                {
                    let _ = (xp, panel);
                    candle_core::bail!("direct conv: not available on this CPU")
                }
                // `sums` holds `ob` channels per pixel: write each channel's plane in order
                // (storing pixel by pixel would touch `ob` planes, often 4 KiB apart, which
                // share the L1 cache's sets).
                for j in 0..ob.min(g.co - o0) {
                    for (i, plane) in yi.chunks_exact_mut(g.co * ohw).enumerate() {
                        let row = &mut plane[(o0 + j) * ohw..][..ohw];
                        for (pix, v) in row.iter_mut().enumerate() {
                            *v = sums[(i * ohw + pix) * ob + j];
                        }
                    }
                }
            }
            Ok(())
        },
    )
}

/// Copies `n` images `ci x h x w` into `xp` with `pad` zeros around each plane.
fn pad_images(g: &Geom, x: &[f32], xp: &mut [f32]) {
    let (hp, wp) = (g.h + 2 * g.pad, g.w + 2 * g.pad);
    for (src, dst) in x.chunks_exact(g.h * g.w).zip(xp.chunks_exact_mut(hp * wp)) {
        dst[..g.pad * wp].fill(0.0);
        dst[(g.pad + g.h) * wp..].fill(0.0);
        for (r, row) in src.chunks_exact(g.w).enumerate() {
            let d = &mut dst[(g.pad + r) * wp..][..wp];
            d[..g.pad].fill(0.0);
            d[g.pad..g.pad + g.w].copy_from_slice(row);
            d[g.pad + g.w..].fill(0.0);
        }
    }
}

/// Runs the microkernel over all pixels `bases` in blocks of `NP`, leaving the `16 * NV`
/// output channels of pixel `p` in `sums[p * 16 * NV..]`. The taps are taken in chunks
/// whose slice of the panel stays in the L2 cache while every pixel block uses it; the
/// partial sums wait in `sums`. A short last block computes its last pixel again into the
/// rows past the end, so `sums` has rows for `bases.len()` rounded up to `NP`.
///
/// # Safety
/// The CPU must have AVX-512F; `bases[p] + offsets[t]` must be inside `xp` for every pixel and
/// tap, `panel` must hold `offsets.len() * 16 * NV` weights, and `sums` the rows above.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pixels<const NP: usize, const NV: usize>(
    xp: &[f32],
    bases: &[u32],
    offsets: &[u32],
    panel: &[f32],
    sums: &mut [f32],
) {
    let ob = 16 * NV;
    let max_off = offsets.iter().copied().max().unwrap_or(0) as usize;
    let max_base = bases.iter().copied().max().unwrap_or(0) as usize;
    assert!(
        max_base + max_off < xp.len()
            && panel.len() >= offsets.len() * ob
            && sums.len() >= bases.len().next_multiple_of(NP) * ob
    );
    let chunk = PANEL_CHUNK / ob;
    for (ci, offs) in offsets.chunks(chunk).enumerate() {
        let w = panel.as_ptr().add(ci * chunk * ob);
        for (p0, block) in bases.chunks(NP).enumerate().map(|(i, b)| (i * NP, b)) {
            let mut ptrs = [xp.as_ptr(); NP];
            for (i, ptr) in ptrs.iter_mut().enumerate() {
                *ptr = xp.as_ptr().add(block[i.min(block.len() - 1)] as usize);
            }
            tile::<NP, NV>(&ptrs, offs, w, sums.as_mut_ptr().add(p0 * ob), ci > 0);
        }
    }
}

/// `out[i][..16 * NV] (+)= sum_t x(ptrs[i] + offsets[t]) * panel[t][..]`, adding to what
/// `out` holds when `accumulate`; `out` rows are `16 * NV` apart.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline(never)]
unsafe fn tile<const NP: usize, const NV: usize>(
    ptrs: &[*const f32; NP],
    offsets: &[u32],
    panel: *const f32,
    out: *mut f32,
    accumulate: bool,
) {
    let mut acc = [[_mm512_setzero_ps(); NV]; NP];
    if accumulate {
        for (i, row) in acc.iter_mut().enumerate() {
            for (v, a) in row.iter_mut().enumerate() {
                *a = _mm512_loadu_ps(out.add((i * NV + v) * 16));
            }
        }
    }
    let mut w = panel;
    for &off in offsets {
        let off = off as usize;
        let mut wv = [_mm512_setzero_ps(); NV];
        for (v, wv) in wv.iter_mut().enumerate() {
            *wv = _mm512_loadu_ps(w.add(16 * v));
        }
        for i in 0..NP {
            let xv = _mm512_set1_ps(*ptrs[i].add(off));
            for v in 0..NV {
                acc[i][v] = _mm512_fmadd_ps(xv, wv[v], acc[i][v]);
            }
        }
        w = w.add(16 * NV);
    }
    for (i, row) in acc.iter().enumerate() {
        for (v, a) in row.iter().enumerate() {
            _mm512_storeu_ps(out.add((i * NV + v) * 16), *a);
        }
    }
}
