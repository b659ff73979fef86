//! `Augment`: Keras-style random image augmentation, configured in the sweep file.
//!
//! Mapping from Keras' `ImageDataGenerator`:
//! `rotation_range=30` -> `rotate = 30`; `width_shift_range`/`height_shift_range=0.1` ->
//! `shift = 0.1` (one value for both axes, a fraction of the size); `zoom_range=0.2` ->
//! `zoom = 0.2`; `shear_range=10` -> `shear = 10` (degrees); `brightness_range=[0.8, 1.2]` ->
//! `brightness = [0.8, 1.2]`; `horizontal_flip=True` -> `hflip = true`. `fill_mode` is always
//! `"nearest"` and `rescale=1/255` is always applied by [`ImageSet::batch`](super::ImageSet::batch).
//! `vflip` is off by default: flipping upside down changes the meaning of many images.
//!
//! Per image, in this order: one affine warp about the image centre (rotation, shift, zoom,
//! shear; bilinear sampling, borders filled with the nearest edge pixel), then the flips
//! (each with probability 1/2), then brightness (multiply by a factor) and contrast (scale
//! each channel's distance to its mean). All arithmetic is in `f32` with one rounding back to
//! `u8` at the end. Deterministic given the rng; the identity config returns the input exactly.

use rand::rngs::StdRng;
use rand::Rng;

use super::warp::{self, Params};
pub use crate::run::Augment;

/// Uniform in `[lo, hi]` without panicking on odd bounds (a reversed range just works).
fn uniform(rng: &mut StdRng, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * rng.random::<f32>()
}

/// torchvision's `RandomResizedCrop.get_params`: up to 10 tries at an area of `scale` and a
/// log-uniform aspect ratio in `ratio` that fits, else the central crop of the clamped ratio.
fn crop_rect(scale: [f32; 2], ratio: [f32; 2], rng: &mut StdRng, h: usize, w: usize) -> warp::Rect {
    let area = (h * w) as f32;
    let (lr0, lr1) = (ratio[0].ln(), ratio[1].ln());
    for _ in 0..10 {
        let target = area * uniform(rng, scale[0], scale[1]);
        let aspect = uniform(rng, lr0, lr1).exp();
        let cw = (target * aspect).sqrt().round() as usize;
        let ch = (target / aspect).sqrt().round() as usize;
        if 0 < cw && cw <= w && 0 < ch && ch <= h {
            let top = rng.random_range(0..=h - ch);
            let left = rng.random_range(0..=w - cw);
            return (top, left, ch, cw);
        }
    }
    let in_ratio = w as f32 / h as f32;
    let (ch, cw) = if in_ratio < ratio[0] {
        (((w as f32 / ratio[0]).round() as usize).clamp(1, h), w)
    } else if in_ratio > ratio[1] {
        (h, ((h as f32 * ratio[1]).round() as usize).clamp(1, w))
    } else {
        (h, w)
    };
    ((h - ch) / 2, (w - cw) / 2, ch, cw)
}

/// torchvision's `RandomErasing.get_params`: up to 10 tries at an area of `scale` and a
/// log-uniform aspect ratio in `ratio` strictly inside the image; `None` when none fits.
fn erase_rect(
    scale: [f32; 2],
    ratio: [f32; 2],
    rng: &mut StdRng,
    h: usize,
    w: usize,
) -> Option<warp::Rect> {
    let area = (h * w) as f32;
    let (lr0, lr1) = (ratio[0].ln(), ratio[1].ln());
    for _ in 0..10 {
        let target = area * uniform(rng, scale[0], scale[1]);
        let aspect = uniform(rng, lr0, lr1).exp();
        let eh = (target * aspect).sqrt().round() as usize;
        let ew = (target / aspect).sqrt().round() as usize;
        if eh < h && ew < w && eh > 0 && ew > 0 {
            let top = rng.random_range(0..=h - eh);
            let left = rng.random_range(0..=w - ew);
            return Some((top, left, eh, ew));
        }
    }
    None
}

impl Augment {
    /// Draws the random parameters for one image. Only enabled settings consume randomness.
    pub(crate) fn sample(&self, rng: &mut StdRng, height: usize, width: usize) -> Params {
        let mut p = Params::identity();
        if self.rotate != 0.0 {
            p.angle = uniform(rng, -self.rotate, self.rotate);
        }
        if self.shift != 0.0 {
            p.tx = uniform(rng, -self.shift, self.shift) * width as f32;
            p.ty = uniform(rng, -self.shift, self.shift) * height as f32;
        }
        if self.zoom != 0.0 {
            p.sx = uniform(rng, 1.0 - self.zoom, 1.0 + self.zoom);
            p.sy = uniform(rng, 1.0 - self.zoom, 1.0 + self.zoom);
        }
        if self.shear != 0.0 {
            p.shear = uniform(rng, -self.shear, self.shear);
        }
        if self.hflip {
            p.hflip = rng.random_bool(0.5);
        }
        if self.vflip {
            p.vflip = rng.random_bool(0.5);
        }
        if let Some([lo, hi]) = self.brightness {
            p.brightness = uniform(rng, lo, hi);
        }
        if let Some([lo, hi]) = self.contrast {
            p.contrast = uniform(rng, lo, hi);
        }
        p.fill = self.fill;
        if let Some(crop) = &self.crop {
            p.crop = Some(crop_rect(crop.scale, crop.ratio, rng, height, width));
        }
        if let Some([lo, hi]) = self.saturation {
            p.saturation = uniform(rng, lo, hi);
        }
        if self.hue != 0.0 {
            p.hue = uniform(rng, -self.hue, self.hue);
        }
        if let Some(preset) = self.preset {
            p.ops = super::autoaugment::sample(preset, rng, height, width);
        }
        if let Some(e) = self.erase.filter(|e| e.p > 0.0) {
            if rng.random::<f32>() < e.p {
                p.erase = erase_rect(e.scale, e.ratio, rng, height, width);
            }
        }
        p
    }

    /// Augments one CHW `u8` image (`channels * height * width` bytes) with fresh random
    /// parameters from `rng`. A buffer of the wrong length is returned unchanged.
    pub fn apply(
        &self,
        image: &[u8],
        channels: usize,
        height: usize,
        width: usize,
        rng: &mut StdRng,
    ) -> Vec<u8> {
        if self.is_identity() || image.len() != channels * height * width {
            return image.to_vec();
        }
        let p = self.sample(rng, height, width);
        warp::apply(image, channels, height, width, &p)
    }
}
