//! Test-time augmentation (`[train] tta`): the views of each test image whose softmax
//! probabilities are averaged in the final test evaluation of the kept weights, stored apart
//! from the plain test result (split `test_tta`).
use serde::{Deserialize, Serialize};

/// `tta = "flip"` or `tta = { crops = 10 }` (or 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum Tta {
    /// The image and its mirror.
    Flip,
    /// torchvision's `FiveCrop` (corners and centre) or `TenCrop` (and their mirrors), each
    /// crop 7/8 of the side (224 of 256), resized back to the image size.
    Crops { crops: usize },
}

/// One view: the crop (top, left, height, width; `None` for the whole image) and whether it
/// is mirrored.
pub type View = (Option<(usize, usize, usize, usize)>, bool);

/// The side of a crop as a fraction of the image's (torchvision's 224 of 256).
const CROP: f64 = 0.875;

impl Tta {
    pub fn name(&self) -> String {
        match self {
            Tta::Flip => "flip".into(),
            Tta::Crops { crops } => format!("{crops} crops"),
        }
    }

    /// The views of an `h x w` image, in torchvision's order (tl, tr, bl, br, centre, then
    /// the same mirrored).
    pub fn views(&self, h: usize, w: usize) -> Vec<View> {
        match *self {
            Tta::Flip => vec![(None, false), (None, true)],
            Tta::Crops { crops } => {
                let ch = ((h as f64 * CROP).round() as usize).clamp(1, h);
                let cw = ((w as f64 * CROP).round() as usize).clamp(1, w);
                let rects = [
                    (0, 0),
                    (0, w - cw),
                    (h - ch, 0),
                    (h - ch, w - cw),
                    ((h - ch) / 2, (w - cw) / 2),
                ]
                .map(|(t, l)| Some((t, l, ch, cw)));
                let mut out: Vec<View> = rects.iter().map(|&r| (r, false)).collect();
                if crops == 10 {
                    out.extend(rects.iter().map(|&r| (r, true)));
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_follow_torchvision_ten_crop() {
        assert_eq!(Tta::Flip.views(8, 8), [(None, false), (None, true)]);
        let v = Tta::Crops { crops: 10 }.views(32, 32);
        assert_eq!(v.len(), 10);
        // 28 of 32: corners at 0 and 4, centre at 2.
        assert_eq!(v[0], (Some((0, 0, 28, 28)), false));
        assert_eq!(v[3], (Some((4, 4, 28, 28)), false));
        assert_eq!(v[4], (Some((2, 2, 28, 28)), false));
        assert_eq!(v[9], (Some((2, 2, 28, 28)), true));
        assert_eq!(Tta::Crops { crops: 5 }.views(32, 32).len(), 5);
    }
}
