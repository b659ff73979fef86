//! Pixel operations behind `Augment`: random resized crop, affine warp with bilinear sampling
//! (nearest, constant or reflected fill), flips, brightness, contrast, saturation and hue, the
//! preset's operations and random erasing, on CHW images in `f32` with one final rounding.
use super::autoaugment::{self, Op};
use super::color;
use crate::run::Fill;

/// A rectangle of the image: top row, left column, height, width (pixels).
pub(crate) type Rect = (usize, usize, usize, usize);

/// Concrete parameters for one image (drawn by `Augment::sample`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Params {
    /// Rotation in degrees, counter-clockwise as seen on screen.
    pub angle: f32,
    /// Shift in pixels (+x right, +y down).
    pub tx: f32,
    pub ty: f32,
    /// Content scale per axis (>1 enlarges).
    pub sx: f32,
    pub sy: f32,
    /// Horizontal shear angle in degrees.
    pub shear: f32,
    pub hflip: bool,
    pub vflip: bool,
    pub brightness: f32,
    pub contrast: f32,
    /// Vertical shear angle in degrees (the presets' ShearY).
    pub shear_y: f32,
    pub fill: Fill,
    /// The random resized crop, resized back to the whole image first.
    pub crop: Option<Rect>,
    pub saturation: f32,
    /// Hue shift, a fraction of the colour circle.
    pub hue: f32,
    /// The preset's operations with their magnitudes, in order.
    pub ops: Vec<(Op, f32)>,
    /// The rectangle random erasing sets to 0, last.
    pub erase: Option<Rect>,
}

impl Params {
    pub fn identity() -> Self {
        Params {
            angle: 0.0,
            tx: 0.0,
            ty: 0.0,
            sx: 1.0,
            sy: 1.0,
            shear: 0.0,
            hflip: false,
            vflip: false,
            brightness: 1.0,
            contrast: 1.0,
            shear_y: 0.0,
            fill: Fill::Nearest,
            crop: None,
            saturation: 1.0,
            hue: 0.0,
            ops: Vec::new(),
            erase: None,
        }
    }

    fn has_warp(&self) -> bool {
        self.angle != 0.0
            || self.tx != 0.0
            || self.ty != 0.0
            || self.sx != 1.0
            || self.sy != 1.0
            || self.shear != 0.0
            || self.shear_y != 0.0
    }
}

/// The inverse of the forward content map `A = R(angle) * ShearX * ShearY * Scale` (y axis
/// down), as row-major `[a, b, c, d]`, or `None` when degenerate.
fn inverse_matrix(p: &Params) -> Option<[f32; 4]> {
    let (s, c) = p.angle.to_radians().sin_cos();
    let k = p.shear.to_radians().tan();
    let ky = p.shear_y.to_radians().tan();
    let mul = |[a, b, c, d]: [f32; 4], [e, f, g, h]: [f32; 4]| {
        [a * e + b * g, a * f + b * h, c * e + d * g, c * f + d * h]
    };
    // R = [[c, s], [-s, c]] (counter-clockwise on screen), ShX = [[1, k], [0, 1]],
    // ShY = [[1, 0], [ky, 1]], S = diag(sx, sy).
    let m = mul(
        mul([c, s, -s, c], [1.0, k, 0.0, 1.0]),
        mul([1.0, 0.0, ky, 1.0], [p.sx, 0.0, 0.0, p.sy]),
    );
    let [a, b, cc, d] = m;
    let det = a * d - b * cc;
    if !det.is_finite() || det.abs() < 1e-6 {
        return None;
    }
    Some([d / det, -b / det, -cc / det, a / det])
}

/// A coordinate mirrored into `[0, n - 1]` about the pixel edges (`dcba|abcd|dcba`, scipy's
/// and Keras' `reflect`).
fn reflect(x: f32, n: usize) -> f32 {
    let period = 2.0 * n as f32;
    let mut t = (x + 0.5).rem_euclid(period);
    if t >= n as f32 {
        t = period - t;
    }
    (t - 0.5).clamp(0.0, (n - 1) as f32)
}

/// Bilinear sample of one plane at (x, y): outside the image, the nearest edge pixel, a
/// constant, or the mirrored image, as `fill` says.
fn sample(plane: &[f32], h: usize, w: usize, x: f32, y: f32, fill: Fill) -> f32 {
    let (x, y) = match fill {
        Fill::Reflect => (reflect(x, w), reflect(y, h)),
        Fill::Nearest => (x.clamp(0.0, (w - 1) as f32), y.clamp(0.0, (h - 1) as f32)),
        // Neighbours outside the image are the value (scipy's `constant`, order 1).
        Fill::Constant { .. } => (x.clamp(-1.0, w as f32), y.clamp(-1.0, h as f32)),
    };
    let (xf, yf) = (x.floor(), y.floor());
    let (fx, fy) = (x - xf, y - yf);
    let at = |xi: f32, yi: f32| -> f32 {
        if xi < 0.0 || yi < 0.0 || xi > (w - 1) as f32 || yi > (h - 1) as f32 {
            match fill {
                Fill::Constant { value } => value,
                // Clamped above: only the far neighbour of an edge pixel, weighted 0.
                _ => {
                    plane[(yi.clamp(0.0, (h - 1) as f32) as usize) * w
                        + xi.clamp(0.0, (w - 1) as f32) as usize]
                }
            }
        } else {
            plane[yi as usize * w + xi as usize]
        }
    };
    let top = at(xf, yf) * (1.0 - fx) + at(xf + 1.0, yf) * fx;
    let bottom = at(xf, yf + 1.0) * (1.0 - fx) + at(xf + 1.0, yf + 1.0) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// The crop `r` of each plane, resized bilinearly back to `h x w` (pixel centres aligned, as
/// torchvision's `resize` without antialiasing).
fn resized_crop(src: &[f32], c: usize, h: usize, w: usize, r: Rect) -> Vec<f32> {
    let (top, left, ch, cw) = r;
    let mut out = vec![0f32; src.len()];
    let (sy, sx) = (ch as f32 / h as f32, cw as f32 / w as f32);
    for k in 0..c {
        let plane = &src[k * h * w..(k + 1) * h * w];
        for y in 0..h {
            let yy = top as f32 + ((y as f32 + 0.5) * sy - 0.5).clamp(0.0, (ch - 1) as f32);
            for x in 0..w {
                let xx = left as f32 + ((x as f32 + 0.5) * sx - 0.5).clamp(0.0, (cw - 1) as f32);
                out[k * h * w + y * w + x] = sample(plane, h, w, xx, yy, Fill::Nearest);
            }
        }
    }
    out
}

pub(crate) fn warp(src: &[f32], c: usize, h: usize, w: usize, p: &Params) -> Vec<f32> {
    let Some([ia, ib, ic, id]) = inverse_matrix(p) else {
        return src.to_vec();
    };
    let (cx, cy) = ((w as f32 - 1.0) / 2.0, (h as f32 - 1.0) / 2.0);
    let mut out = vec![0f32; src.len()];
    for ch in 0..c {
        let plane = &src[ch * h * w..(ch + 1) * h * w];
        for y in 0..h {
            for x in 0..w {
                let dx = x as f32 - cx - p.tx;
                let dy = y as f32 - cy - p.ty;
                let sx = ia * dx + ib * dy + cx;
                let sy = ic * dx + id * dy + cy;
                // NaN coordinates (absurd settings) fall back to the centre pixel.
                let (sx, sy) = if sx.is_nan() || sy.is_nan() {
                    (cx, cy)
                } else {
                    (sx, sy)
                };
                out[ch * h * w + y * w + x] = sample(plane, h, w, sx, sy, p.fill);
            }
        }
    }
    out
}

/// Applies `p` to a CHW image; `image.len()` must be `c * h * w`.
pub(crate) fn apply(image: &[u8], c: usize, h: usize, w: usize, p: &Params) -> Vec<u8> {
    if h == 0 || w == 0 || image.len() != c * h * w {
        return image.to_vec();
    }
    let mut px: Vec<f32> = image.iter().map(|&v| v as f32).collect();
    if let Some(r) = p.crop {
        px = resized_crop(&px, c, h, w, r);
    }
    if p.has_warp() {
        px = warp(&px, c, h, w, p);
    }
    if p.hflip {
        px.chunks_exact_mut(w).for_each(|row| row.reverse());
    }
    if p.vflip {
        for plane in px.chunks_exact_mut(h * w) {
            for y in 0..h / 2 {
                let (top, bottom) = plane.split_at_mut((h - 1 - y) * w);
                top[y * w..(y + 1) * w].swap_with_slice(&mut bottom[..w]);
            }
        }
    }
    if p.brightness != 1.0 {
        px.iter_mut().for_each(|v| *v *= p.brightness);
    }
    if p.contrast != 1.0 {
        for plane in px.chunks_exact_mut(h * w) {
            let mean = plane.iter().sum::<f32>() / plane.len() as f32;
            plane
                .iter_mut()
                .for_each(|v| *v = (*v - mean) * p.contrast + mean);
        }
    }
    if p.saturation != 1.0 && c == 3 {
        color::saturate(&mut px, h * w, p.saturation);
    }
    if p.hue != 0.0 && c == 3 {
        color::shift_hue(&mut px, h * w, p.hue);
    }
    for &(op, magnitude) in &p.ops {
        autoaugment::apply(op, magnitude, &mut px, c, h, w, p.fill);
    }
    if let Some((top, left, eh, ew)) = p.erase {
        for plane in px.chunks_exact_mut(h * w) {
            for row in plane.chunks_exact_mut(w).skip(top).take(eh) {
                row[left..left + ew].iter_mut().for_each(|v| *v = 0.0);
            }
        }
    }
    // `as u8` saturates (and maps NaN to 0), so no value can wrap.
    px.into_iter()
        .map(|v| v.round().clamp(0.0, 255.0) as u8)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 5x5 single-channel image with distinct pixels 0..25 (times 10).
    fn ramp() -> Vec<u8> {
        (0..25u8).map(|v| v * 10).collect()
    }

    fn with(f: impl FnOnce(&mut Params)) -> Params {
        let mut p = Params::identity();
        f(&mut p);
        p
    }

    #[test]
    fn identity_params_return_the_input() {
        let img: Vec<u8> = (0..=255).collect::<Vec<u8>>().repeat(3);
        assert_eq!(apply(&img, 3, 16, 16, &Params::identity()), img);
    }

    #[test]
    fn rotate_90_matches_a_hand_rotated_image() {
        let img = ramp();
        // Counter-clockwise on screen: out(x, y) = in(col = 4 - y, row = x), like numpy's rot90.
        let hand: Vec<u8> = (0..5)
            .flat_map(|y| (0..5).map(move |x| (x * 5 + 4 - y) as u8 * 10))
            .collect();
        let out = apply(&img, 1, 5, 5, &with(|p| p.angle = 90.0));
        for (a, b) in out.iter().zip(&hand) {
            assert!(a.abs_diff(*b) <= 1, "{out:?} vs {hand:?}");
        }
        let back = apply(&out, 1, 5, 5, &with(|p| p.angle = -90.0));
        assert_eq!(back, img);
    }

    #[test]
    fn shift_fills_with_the_nearest_edge_pixel() {
        let img: Vec<u8> = [10, 20, 30, 40].repeat(2);
        let right = apply(&img, 1, 2, 4, &with(|p| p.tx = 1.0));
        assert_eq!(right, [10, 10, 20, 30].repeat(2));
        let half = apply(&img, 1, 2, 4, &with(|p| p.tx = -0.5));
        assert_eq!(
            half,
            [15, 25, 35, 40].repeat(2),
            "bilinear between neighbours"
        );
    }

    #[test]
    fn zoom_and_shear_keep_the_centre_and_constant_images() {
        let img = ramp();
        for p in [
            with(|p| (p.sx, p.sy) = (1.5, 0.7)),
            with(|p| p.shear = 20.0),
        ] {
            let out = apply(&img, 1, 5, 5, &p);
            assert_eq!(out[12], img[12], "{p:?}");
            assert_eq!(apply(&[99; 50], 2, 5, 5, &p), [99; 50]);
        }
        let zoomed = apply(&img, 1, 5, 5, &with(|p| (p.sx, p.sy) = (2.0, 2.0)));
        assert_eq!(zoomed[11], 115, "x=1 samples x=1.5 when enlarged 2x");
    }

    #[test]
    fn flips_and_photometric() {
        let img = [1u8, 2, 3, 4, 5, 6]; // 1 channel, 2 rows x 3
        assert_eq!(
            apply(&img, 1, 2, 3, &with(|p| p.hflip = true)),
            [3, 2, 1, 6, 5, 4]
        );
        assert_eq!(
            apply(&img, 1, 2, 3, &with(|p| p.vflip = true)),
            [4, 5, 6, 1, 2, 3]
        );
        let two = [1u8, 2, 3, 4, 5, 6, 7, 8, 9];
        assert_eq!(
            apply(&two, 1, 3, 3, &with(|p| p.vflip = true)),
            [7, 8, 9, 4, 5, 6, 1, 2, 3]
        );
        let bright = apply(&[100, 200, 0, 50], 1, 2, 2, &with(|p| p.brightness = 1.5));
        assert_eq!(bright, [150, 255, 0, 75], "clamped at 255");
        let flat = apply(
            &[0, 100, 200, 40, 40, 40],
            2,
            1,
            3,
            &with(|p| p.contrast = 0.0),
        );
        assert_eq!(
            flat,
            [100, 100, 100, 40, 40, 40],
            "each channel goes to its own mean"
        );
        assert_eq!(
            apply(&[1, 2], 1, 2, 2, &with(|p| p.hflip = true)),
            [1, 2],
            "bad length unchanged"
        );
    }
}
