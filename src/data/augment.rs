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
