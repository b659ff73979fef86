//! Colour operations on CHW `f32` RGB images (0-255), as torchvision defines them: the
//! grey of a pixel (`rgb_to_grayscale`), saturation (a blend with that grey) and a hue shift
//! (through HSV). Grey images have no colour to change: callers skip them.

/// The ITU-R 601 grey of each pixel of an RGB image with `n` pixels per plane.
pub(crate) fn grey(px: &[f32], n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| 0.299 * px[i] + 0.587 * px[n + i] + 0.114 * px[2 * n + i])
        .collect()
}

/// `adjust_saturation`: `factor * image + (1 - factor) * grey`, clamped to 0-255.
pub(crate) fn saturate(px: &mut [f32], n: usize, factor: f32) {
    let g = grey(px, n);
    for plane in px.chunks_exact_mut(n) {
        for (v, g) in plane.iter_mut().zip(&g) {
            *v = (factor * *v + (1.0 - factor) * g).clamp(0.0, 255.0);
        }
    }
}

/// `adjust_hue`: each pixel's hue turned by `shift` of the colour circle (-0.5..0.5),
/// saturation and value kept.
pub(crate) fn shift_hue(px: &mut [f32], n: usize, shift: f32) {
    for i in 0..n {
        let (r, g, b) = (px[i] / 255.0, px[n + i] / 255.0, px[2 * n + i] / 255.0);
        let max = r.max(g).max(b);
        let min = r.min(g).min(b);
        let chroma = max - min;
        if chroma <= 0.0 {
            continue; // grey: no hue to turn
        }
        let h = if max == r {
            ((g - b) / chroma).rem_euclid(6.0)
        } else if max == g {
            (b - r) / chroma + 2.0
        } else {
            (r - g) / chroma + 4.0
        } / 6.0;
        let h = (h + shift).rem_euclid(1.0) * 6.0;
        let x = chroma * (1.0 - ((h % 2.0) - 1.0).abs());
        let (r1, g1, b1) = match h as u32 {
            0 => (chroma, x, 0.0),
            1 => (x, chroma, 0.0),
            2 => (0.0, chroma, x),
            3 => (0.0, x, chroma),
            4 => (x, 0.0, chroma),
            _ => (chroma, 0.0, x),
        };
        let m = max - chroma;
        px[i] = (r1 + m) * 255.0;
        px[n + i] = (g1 + m) * 255.0;
        px[2 * n + i] = (b1 + m) * 255.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One pixel per plane: pure red, then a dull orange.
    fn rgb(pixels: &[[f32; 3]]) -> Vec<f32> {
        let n = pixels.len();
        let mut out = vec![0.0; 3 * n];
        for (i, p) in pixels.iter().enumerate() {
            for k in 0..3 {
                out[k * n + i] = p[k];
            }
        }
        out
    }

    #[test]
    fn saturation_zero_is_grey_one_keeps() {
        let img = rgb(&[[255.0, 0.0, 0.0], [200.0, 100.0, 50.0]]);
        let mut grey_img = img.clone();
        saturate(&mut grey_img, 2, 0.0);
        // 0.299 * 255 = 76.245; 0.299*200 + 0.587*100 + 0.114*50 = 124.2
        for (k, want) in [(0, 76.245), (1, 124.2)] {
            for c in 0..3 {
                assert!((grey_img[c * 2 + k] - want).abs() < 1e-3, "{grey_img:?}");
            }
        }
        let mut same = img.clone();
        saturate(&mut same, 2, 1.0);
        assert_eq!(same, img);
        let mut vivid = img.clone();
        saturate(&mut vivid, 2, 2.0);
        assert!(vivid.iter().all(|v| (0.0..=255.0).contains(v)), "clamped");
    }

    #[test]
    fn hue_turns_primaries_and_keeps_grey() {
        // A third of the circle: red -> green -> blue -> red.
        let mut px = rgb(&[[255.0, 0.0, 0.0], [0.0, 255.0, 0.0], [90.0, 90.0, 90.0]]);
        shift_hue(&mut px, 3, 1.0 / 3.0);
        let want = rgb(&[[0.0, 255.0, 0.0], [0.0, 0.0, 255.0], [90.0, 90.0, 90.0]]);
        for (a, b) in px.iter().zip(&want) {
            assert!((a - b).abs() < 1e-3, "{px:?}");
        }
        // A full turn (or none) gives the image back.
        let img = rgb(&[[200.0, 100.0, 50.0]]);
        let mut turned = img.clone();
        shift_hue(&mut turned, 1, 0.5);
        shift_hue(&mut turned, 1, 0.5);
        for (a, b) in turned.iter().zip(&img) {
            assert!((a - b).abs() < 1e-3, "{turned:?}");
        }
    }
}
