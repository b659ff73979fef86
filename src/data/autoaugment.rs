//! torchvision's automatic augmentation policies on CHW `f32` images (0-255):
//! `RandAugment(num_ops, magnitude, num_magnitude_bins=31)` and `TrivialAugmentWide()`, with
//! their 14 operations and the magnitude tables of `_augmentation_space`. Geometric operations
//! warp about the image centre with the set's fill (torchvision: about the corner for shears,
//! fill 0, nearest interpolation); the others follow torchvision's functional definitions.
use rand::rngs::StdRng;
use rand::Rng;

use super::color;
use super::warp::{self, Params};
use crate::run::{Fill, Preset};

/// The operations, in torchvision's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Identity,
    ShearX,
    ShearY,
    TranslateX,
    TranslateY,
    Rotate,
    Brightness,
    Color,
    Contrast,
    Sharpness,
    Posterize,
    Solarize,
    AutoContrast,
    Equalize,
}

const OPS: [Op; 14] = [
    Op::Identity,
    Op::ShearX,
    Op::ShearY,
    Op::TranslateX,
    Op::TranslateY,
    Op::Rotate,
    Op::Brightness,
    Op::Color,
    Op::Contrast,
    Op::Sharpness,
    Op::Posterize,
    Op::Solarize,
    Op::AutoContrast,
    Op::Equalize,
];

/// Magnitude bins (torchvision's `num_magnitude_bins`).
const BINS: usize = 31;

/// `torch.linspace(lo, hi, BINS)[bin]`.
fn linspace(lo: f32, hi: f32, bin: usize) -> f32 {
    lo + (hi - lo) * bin as f32 / (BINS - 1) as f32
}

/// The magnitude of `op` at `bin`, and whether its sign is random (`_augmentation_space` of
/// RandAugment, or of TrivialAugmentWide when `wide`).
pub(crate) fn magnitude(op: Op, bin: usize, wide: bool, h: usize, w: usize) -> (f32, bool) {
    let (shear, rotate, jitter) = match wide {
        true => (0.99, 135.0, 0.99),
        false => (0.3, 30.0, 0.9),
    };
    match op {
        Op::Identity | Op::AutoContrast | Op::Equalize => (0.0, false),
        Op::ShearX | Op::ShearY => (linspace(0.0, shear, bin), true),
        Op::TranslateX => match wide {
            true => (linspace(0.0, 32.0, bin), true),
            false => (linspace(0.0, 150.0 / 331.0 * w as f32, bin), true),
        },
        Op::TranslateY => match wide {
            true => (linspace(0.0, 32.0, bin), true),
            false => (linspace(0.0, 150.0 / 331.0 * h as f32, bin), true),
        },
        Op::Rotate => (linspace(0.0, rotate, bin), true),
        Op::Brightness | Op::Color | Op::Contrast | Op::Sharpness => {
            (linspace(0.0, jitter, bin), true)
        }
        // 8 - round(arange(bins) / ((bins - 1) / 4)), or / 6 for the wide space.
        Op::Posterize => {
            let div = if wide { 6.0 } else { 4.0 };
            (
                8.0 - (bin as f32 / ((BINS - 1) as f32 / div)).round(),
                false,
            )
        }
        Op::Solarize => (linspace(255.0, 0.0, bin), false),
    }
}

/// The operations (with signed magnitudes) `preset` draws for one image.
pub(crate) fn sample(preset: Preset, rng: &mut StdRng, h: usize, w: usize) -> Vec<(Op, f32)> {
    let (ops, wide, fixed) = match preset {
        Preset::RandAugment { ops, magnitude } => (ops, false, Some(magnitude)),
        Preset::TrivialAugment => (1, true, None),
    };
    (0..ops)
        .map(|_| {
            let op = OPS[rng.random_range(0..OPS.len())];
            let bin = fixed.unwrap_or_else(|| rng.random_range(0..BINS));
            let (mut m, signed) = magnitude(op, bin.min(BINS - 1), wide, h, w);
            if signed && rng.random_bool(0.5) {
                m = -m;
            }
            (op, m)
        })
        .collect()
}

/// The mean grey of an image (one value for all channels, as `adjust_contrast` takes it).
fn mean_grey(px: &[f32], c: usize, n: usize) -> f32 {
    match c {
        3 => color::grey(px, n).iter().sum::<f32>() / n as f32,
        _ => px[..n].iter().sum::<f32>() / n as f32,
    }
}

/// Applies one operation at magnitude `m` in place.
pub(crate) fn apply(op: Op, m: f32, px: &mut Vec<f32>, c: usize, h: usize, w: usize, fill: Fill) {
    let n = h * w;
    let warp_with = |px: &mut Vec<f32>, set: &dyn Fn(&mut Params)| {
        let mut p = Params::identity();
        p.fill = fill;
        set(&mut p);
        *px = warp::warp(px, c, h, w, &p);
    };
    let blend = |px: &mut [f32], other: &dyn Fn(usize) -> f32, ratio: f32| {
        for (i, v) in px.iter_mut().enumerate() {
            *v = (ratio * *v + (1.0 - ratio) * other(i)).clamp(0.0, 255.0);
        }
    };
    match op {
        Op::Identity => {}
        // torchvision: shear = degrees(atan(m)).
        Op::ShearX => warp_with(px, &|p| p.shear = m.atan().to_degrees()),
        Op::ShearY => warp_with(px, &|p| p.shear_y = m.atan().to_degrees()),
        Op::TranslateX => warp_with(px, &|p| p.tx = m.trunc()),
        Op::TranslateY => warp_with(px, &|p| p.ty = m.trunc()),
        Op::Rotate => warp_with(px, &|p| p.angle = m),
        Op::Brightness => blend(px, &|_| 0.0, 1.0 + m),
        Op::Color if c == 3 => color::saturate(px, n, 1.0 + m),
        Op::Color => {}
        Op::Contrast => {
            let mean = mean_grey(px, c, n);
            blend(px, &|_| mean, 1.0 + m);
        }
        Op::Sharpness => {
            let soft = smoothed(px, c, h, w);
            blend(px, &|i| soft[i], 1.0 + m);
        }
        Op::Posterize => {
            let mask = 0xffu32 << (8 - (m as u32).min(8));
            px.iter_mut()
                .for_each(|v| *v = ((v.round().clamp(0.0, 255.0) as u32) & mask) as f32);
        }
        Op::Solarize => px.iter_mut().for_each(|v| {
            if *v >= m {
                *v = 255.0 - *v;
            }
        }),
        Op::AutoContrast => {
            for plane in px.chunks_exact_mut(n) {
                let lo = plane.iter().copied().fold(f32::INFINITY, f32::min);
                let hi = plane.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                if hi > lo {
                    let scale = 255.0 / (hi - lo);
                    plane.iter_mut().for_each(|v| *v = (*v - lo) * scale);
                }
            }
        }
        Op::Equalize => px.chunks_exact_mut(n).for_each(equalize),
    }
}

/// The image blurred by torchvision's sharpness kernel `[[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13`
/// on inner pixels; the border keeps its pixels.
fn smoothed(px: &[f32], c: usize, h: usize, w: usize) -> Vec<f32> {
    let mut out = px.to_vec();
    if h < 3 || w < 3 {
        return out;
    }
    for k in 0..c {
        let plane = &px[k * h * w..(k + 1) * h * w];
        for y in 1..h - 1 {
            for x in 1..w - 1 {
                let mut sum = 4.0 * plane[y * w + x];
                for dy in 0..3 {
                    for dx in 0..3 {
                        sum += plane[(y + dy - 1) * w + x + dx - 1];
                    }
                }
                out[k * h * w + y * w + x] = (sum / 13.0).round();
            }
        }
    }
    out
}

/// PIL's / torchvision's `equalize` of one plane: a lookup table from the cumulative
/// histogram, with the step that leaves out the last occupied level.
fn equalize(plane: &mut [f32]) {
    let mut hist = [0usize; 256];
    for v in plane.iter() {
        hist[v.round().clamp(0.0, 255.0) as usize] += 1;
    }
    let last = hist.iter().rposition(|&n| n > 0).map_or(0, |i| hist[i]);
    let step = (plane.len() - last) / 255;
    if step == 0 {
        return;
    }
    let mut lut = [0f32; 256];
    let mut cum = 0;
    for (level, &n) in hist.iter().enumerate() {
        lut[level] = (((cum + step / 2) / step).min(255)) as f32;
        cum += n;
    }
    for v in plane.iter_mut() {
        *v = lut[v.round().clamp(0.0, 255.0) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn magnitude_tables_are_torchvisions() {
        // RandAugment at bin 9 (its default) on a 224 x 224 image.
        let at = |op| magnitude(op, 9, false, 224, 224).0;
        assert!((at(Op::ShearX) - 0.09).abs() < 1e-6);
        assert!((at(Op::TranslateX) - 150.0 / 331.0 * 224.0 * 0.3).abs() < 1e-3);
        assert!((at(Op::Rotate) - 9.0).abs() < 1e-5);
        assert!((at(Op::Brightness) - 0.27).abs() < 1e-6);
        assert_eq!(at(Op::Posterize), 7.0, "8 - round(9 / 7.5)");
        assert!((at(Op::Solarize) - 178.5).abs() < 1e-4);
        // TrivialAugmentWide's last bin.
        let wide = |op| magnitude(op, 30, true, 32, 32).0;
        assert_eq!(wide(Op::Rotate), 135.0);
        assert_eq!(wide(Op::TranslateY), 32.0);
        assert_eq!(wide(Op::Posterize), 2.0);
        assert_eq!(wide(Op::Solarize), 0.0);
    }

    #[test]
    fn pixel_operations_on_known_images() {
        let fill = Fill::Nearest;
        // Posterize to 2 bits keeps the top two bits.
        let mut px = vec![0.0, 63.0, 64.0, 200.0];
        apply(Op::Posterize, 2.0, &mut px, 1, 2, 2, fill);
        assert_eq!(px, [0.0, 0.0, 64.0, 192.0]);
        // Solarize inverts at and above the threshold.
        let mut px = vec![10.0, 128.0, 200.0, 255.0];
        apply(Op::Solarize, 128.0, &mut px, 1, 2, 2, fill);
        assert_eq!(px, [10.0, 127.0, 55.0, 0.0]);
        // Autocontrast stretches each channel to 0-255.
        let mut px = vec![50.0, 100.0, 150.0, 100.0];
        apply(Op::AutoContrast, 0.0, &mut px, 1, 2, 2, fill);
        assert_eq!(px, [0.0, 127.5, 255.0, 127.5]);
        // Equalize: 4 x 128 pixels at levels 10, 20, 30, 40. The last occupied level is left
        // out of the step: (512 - 128) // 255 = 1, so each level maps to the count below it,
        // clamped: 0, 128, 255, 255 (torchvision's `_equalize_single_image`).
        let mut px: Vec<f32> = [10.0, 20.0, 30.0, 40.0]
            .iter()
            .flat_map(|&v| [v; 128])
            .collect();
        apply(Op::Equalize, 0.0, &mut px, 1, 16, 32, fill);
        assert_eq!(
            [px[0], px[128], px[256], px[384]],
            [0.0, 128.0, 255.0, 255.0]
        );
        // Too few pixels for a step: unchanged.
        let mut small = vec![10.0, 20.0, 30.0, 40.0];
        apply(Op::Equalize, 0.0, &mut small, 1, 2, 2, fill);
        assert_eq!(small, [10.0, 20.0, 30.0, 40.0]);
        // Brightness -0.5 halves; contrast -1 gives the mean grey everywhere.
        let mut px = vec![100.0, 200.0];
        apply(Op::Brightness, -0.5, &mut px, 1, 1, 2, fill);
        assert_eq!(px, [50.0, 100.0]);
        let mut px = vec![100.0, 200.0];
        apply(Op::Contrast, -1.0, &mut px, 1, 1, 2, fill);
        assert_eq!(px, [150.0, 150.0]);
        // Sharpness 0 is the smoothed image: a lone bright centre pixel spreads.
        let mut px = vec![0.0; 9];
        px[4] = 130.0;
        apply(Op::Sharpness, -1.0, &mut px, 1, 3, 3, fill);
        assert_eq!(px[4], 50.0, "130 * 5 / 13");
        assert_eq!(px[0], 0.0, "the border keeps its pixels");
    }

    #[test]
    fn sampling_draws_the_asked_number_of_ops() {
        let mut rng = StdRng::seed_from_u64(3);
        let ops = sample(
            Preset::RandAugment {
                ops: 3,
                magnitude: 9,
            },
            &mut rng,
            8,
            8,
        );
        assert_eq!(ops.len(), 3);
        let ops = sample(Preset::TrivialAugment, &mut rng, 8, 8);
        assert_eq!(ops.len(), 1);
        // Over many draws every operation comes up.
        let seen: std::collections::HashSet<_> = (0..500)
            .flat_map(|_| sample(Preset::TrivialAugment, &mut rng, 8, 8))
            .map(|(op, _)| op as usize)
            .collect();
        assert_eq!(seen.len(), 14);
    }
}
