//! Max pooling (square kernel, stride, padding; floor mode) forward and backward, parallel
//! over `(image, channel)` planes. Padded positions never win. The forward pass records the
//! index of each maximum, so the backward is a scatter; in a tie the first maximum in
//! row-major window order takes the whole gradient, like PyTorch.
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, WithDType};

use super::geom::Geom;
use std::sync::{Arc, Mutex};

use super::{par_chunks, par_chunks2, slice, Float};

fn geom(l: &Layout, kernel: usize, stride: usize, pad: usize) -> Result<Geom> {
    let (b, c, h, w) = l.shape().dims4()?;
    Geom::new((b, c, h, w), (c, kernel, kernel), stride, pad)
}

/// One plane of the forward pass: `y` gets each window's maximum and `arg` the plane index
/// of its first occurrence. Each window starts from its first valid element (so a window of
/// NaN or -inf values still has an index) and later taps replace it only when strictly
/// greater, without branches.
#[inline(always)]
fn forward_plane<T: Float>(g: &Geom, x: &[T], y: &mut [T], arg: &mut [u32]) {
    let (w, ow, s, p) = (g.w, g.ow, g.stride, g.pad);
    for oh in 0..g.oh {
        // Input rows of this output row's windows: `oh * s - p ..`, clipped to the image.
        let r_lo = (oh * s).max(p) - p;
        let r_hi = (oh * s + g.kh).min(g.h + p) - p;
        let (dst, idx) = (
            &mut y[oh * ow..(oh + 1) * ow],
            &mut arg[oh * ow..(oh + 1) * ow],
        );
        for (o, (d, a)) in dst.iter_mut().zip(idx.iter_mut()).enumerate() {
            let c_lo = (o * s).max(p) - p;
            let c_hi = (o * s + g.kw).min(w + p) - p;
            let mut best_at = r_lo * w + c_lo;
            let mut best = x[best_at];
            for r in r_lo..r_hi {
                let row = &x[r * w + c_lo..r * w + c_hi];
                for (j, v) in row.iter().enumerate() {
                    let better = *v > best;
                    best = if better { *v } else { best };
                    best_at = if better { r * w + c_lo + j } else { best_at };
                }
            }
            *d = best;
            *a = best_at as u32;
        }
    }
}

/// [`forward_plane`] for the common 2x2 window with stride 2 and no padding (the users' CNN,
/// VGG, AlexNet's successors): four loads and three compares per output, in the same order
/// and with the same first-maximum rule.
#[inline(always)]
fn forward_plane_2x2<T: Float>(g: &Geom, x: &[T], y: &mut [T], arg: &mut [u32]) {
    let (w, ow) = (g.w, g.ow);
    for oh in 0..g.oh {
        let top = 2 * oh * w;
        let (upper, lower) = (&x[top..top + 2 * ow], &x[top + w..top + w + 2 * ow]);
        let dst = &mut y[oh * ow..(oh + 1) * ow];
        let idx = &mut arg[oh * ow..(oh + 1) * ow];
        for (o, (d, a)) in dst.iter_mut().zip(idx.iter_mut()).enumerate() {
            let c = 2 * o;
            let mut best = upper[c];
            let mut at = top + c;
            for (v, i) in [
                (upper[c + 1], top + c + 1),
                (lower[c], top + w + c),
                (lower[c + 1], top + w + c + 1),
            ] {
                let better = v > best;
                best = if better { v } else { best };
                at = if better { i } else { at };
            }
            *d = best;
            *a = at as u32;
        }
    }
}

fn checked(kernel: usize, stride: usize, pad: usize) -> Result<()> {
    if kernel == 0 || stride == 0 || pad > kernel / 2 {
        candle_core::bail!("max_pool2d: bad kernel {kernel}, stride {stride}, padding {pad}")
    }
    Ok(())
}

/// Max pooling `x (b, c, h, w) -> (b, c, oh, ow)`. With `keep_argmax` (needed for a
/// backward pass) the forward pass records where each maximum came from, and the backward
/// scatters `dy` there ([`MaxPoolScatter`]).
pub(crate) struct MaxPool2d {
    pub kernel: usize,
    pub stride: usize,
    pub pad: usize,
    pub keep_argmax: bool,
    pub argmax: Mutex<Option<Arc<Vec<u32>>>>,
}

impl MaxPool2d {
    fn run<T: Float>(&self, x: &[T], l: &Layout) -> Result<(Vec<T>, Shape)> {
        checked(self.kernel, self.stride, self.pad)?;
        let g = geom(l, self.kernel, self.stride, self.pad)?;
        let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
        if hw > u32::MAX as usize {
            candle_core::bail!("max_pool2d: planes of {hw} elements are too large")
        }
        let mut y = vec![T::zero(); g.b * g.ci * ohw];
        let mut arg = vec![0u32; g.b * g.ci * ohw];
        let two_by_two = (g.kh, g.kw, g.stride, g.pad) == (2, 2, 2, 0);
        // Several small planes to a work item: about 4K outputs each.
        let planes = (4096 / ohw.max(1)).max(1);
        par_chunks2(
            &mut y,
            planes * ohw,
            &mut arg,
            planes * ohw,
            #[inline(always)]
            |i, yp, ap| {
                let first = i * planes;
                let planes = yp.chunks_mut(ohw).zip(ap.chunks_mut(ohw)).enumerate();
                for (k, (yp, ap)) in planes {
                    let xp = &x[(first + k) * hw..(first + k + 1) * hw];
                    if two_by_two {
                        forward_plane_2x2(&g, xp, yp, ap);
                    } else {
                        forward_plane(&g, xp, yp, ap);
                    }
                }
                Ok(())
            },
        )?;
        if self.keep_argmax {
            if let Ok(mut slot) = self.argmax.lock() {
                *slot = Some(Arc::new(arg));
            }
        }
        Ok((y, Shape::from((g.b, g.ci, g.oh, g.ow))))
    }
}

impl CustomOp1 for MaxPool2d {
    fn name(&self) -> &'static str {
        "fast-max-pool2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        Ok(by_dtype!(s, self.name(), T => {
            let (v, shape) = self.run::<T>(slice(s, l)?, l)?;
            (T::to_cpu_storage_owned(v), shape)
        }))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        checked(self.kernel, self.stride, self.pad)?;
        super::cuda::pool::max_pool2d((self.kernel, self.stride, self.pad), s, l)
    }

    fn bwd(&self, x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let dy = dy.contiguous()?;
        #[cfg(feature = "cuda")]
        if x.device().is_cuda() {
            let op = super::cuda::pool::MaxPoolGrad {
                kernel: self.kernel,
                stride: self.stride,
                pad: self.pad,
            };
            return Ok(Some(x.contiguous()?.apply_op3_no_bwd(
                &y.contiguous()?,
                &dy,
                &op,
            )?));
        }
        let _ = y;
        let Some(argmax) = self.argmax.lock().ok().and_then(|slot| slot.clone()) else {
            candle_core::bail!("max_pool2d backward without recorded maxima (keep_argmax off)")
        };
        let (_, _, h, w) = x.dims4()?;
        Ok(Some(dy.apply_op1_no_bwd(&MaxPoolScatter {
            argmax,
            h,
            w,
        })?))
    }
}

/// The input gradient of [`MaxPool2d`] from its recorded maxima: `dy -> dx` for planes of
/// `h x w`, adding each `dy` element at its maximum's index.
struct MaxPoolScatter {
    argmax: Arc<Vec<u32>>,
    h: usize,
    w: usize,
}

impl MaxPoolScatter {
    fn run<T: Float>(&self, dy: &[T], l: &Layout) -> Result<(Vec<T>, Shape)> {
        let (b, c, oh, ow) = l.shape().dims4()?;
        let (hw, ohw) = (self.h * self.w, oh * ow);
        if self.argmax.len() != dy.len() {
            candle_core::bail!(
                "max_pool2d grad: {} maxima for dy {:?}",
                self.argmax.len(),
                l.shape()
            )
        }
        let mut dx = vec![T::zero(); b * c * hw];
        par_chunks(
            &mut dx,
            hw,
            0,
            #[inline(always)]
            |i, dxp, _| {
                let (dyp, arg) = (
                    &dy[i * ohw..(i + 1) * ohw],
                    &self.argmax[i * ohw..(i + 1) * ohw],
                );
                for (g, a) in dyp.iter().zip(arg) {
                    match dxp.get_mut(*a as usize) {
                        Some(d) => *d += *g,
                        None => {
                            candle_core::bail!("max_pool2d grad: index {a} outside a plane of {hw}")
                        }
                    }
                }
                Ok(())
            },
        )?;
        Ok((dx, Shape::from((b, c, self.h, self.w))))
    }
}

impl CustomOp1 for MaxPoolScatter {
    fn name(&self) -> &'static str {
        "fast-max-pool2d-scatter"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        Ok(by_dtype!(s, self.name(), T => {
            let (v, shape) = self.run::<T>(slice(s, l)?, l)?;
            (T::to_cpu_storage_owned(v), shape)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 2x2 path picks the same value and the same (first) index as the general one, ties
    /// and NaN included.
    #[test]
    fn the_2x2_path_equals_the_general_one_with_ties_and_nan() {
        let (h, w) = (7, 9);
        let g = Geom::new((1, 1, h, w), (1, 2, 2), 2, 0).unwrap();
        let mut x: Vec<f32> = (0..h * w).map(|i| ((i * 7919) % 5) as f32).collect();
        x[10] = f32::NAN;
        x[20] = f32::NEG_INFINITY;
        let n = g.oh * g.ow;
        let (mut y1, mut a1) = (vec![0f32; n], vec![0u32; n]);
        let (mut y2, mut a2) = (vec![0f32; n], vec![0u32; n]);
        forward_plane(&g, &x, &mut y1, &mut a1);
        forward_plane_2x2(&g, &x, &mut y2, &mut a2);
        assert_eq!(a1, a2);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&y1), bits(&y2));
    }
}
