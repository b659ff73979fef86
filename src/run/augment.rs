//! Augmentation settings as a sweep file gives them (`[augment.NAME]`): what a run config
//! stores and hashes. Applying them to images is `data::augment`'s job.

/// Random augmentation settings; all zero/false/None (the default) means no augmentation.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Augment {
    /// Flip left-right with probability 1/2.
    pub hflip: bool,
    /// Flip upside down with probability 1/2 (off by default: it changes meaning).
    pub vflip: bool,
    /// Max rotation in degrees; the angle is uniform in `[-rotate, rotate]`.
    pub rotate: f32,
    /// Max shift as a fraction of width (x) and height (y), drawn per axis in `[-shift, shift]`.
    pub shift: f32,
    /// Zoom: the scale of each axis is drawn independently (as in Keras) from
    /// `[1 - zoom, 1 + zoom]`; above 1 enlarges the content.
    pub zoom: f32,
    /// Max shear angle in degrees (horizontal shear), uniform in `[-shear, shear]`.
    pub shear: f32,
    /// Multiplicative brightness factor range, e.g. `[0.8, 1.2]`.
    pub brightness: Option<[f32; 2]>,
    /// Contrast factor range, e.g. `[0.8, 1.2]`: 1 keeps, 0 gives a flat image of the mean.
    pub contrast: Option<[f32; 2]>,
    // The settings below (issue 12) are left out of a config when unset, so the runs of
    // sweeps written before them keep their ids.
    /// How warps fill what comes from outside the image (Keras' `fill_mode`).
    #[serde(skip_serializing_if = "Fill::is_nearest")]
    pub fill: Fill,
    /// Saturation factor range (torchvision's `ColorJitter(saturation=...)` as factors):
    /// 0 is grey, 1 keeps. RGB only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saturation: Option<[f32; 2]>,
    /// Max hue shift as a fraction of the colour circle, uniform in `[-hue, hue]` (<= 0.5;
    /// torchvision's `ColorJitter(hue=...)`). RGB only.
    #[serde(skip_serializing_if = "is_zero")]
    pub hue: f32,
    /// Random resized crop (torchvision's `RandomResizedCrop`), resized back to the image size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crop: Option<Crop>,
    /// Random erasing (torchvision's `RandomErasing`, value 0), after everything else.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub erase: Option<Erase>,
    /// An automatic policy applied after the settings above: RandAugment or TrivialAugment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preset: Option<Preset>,
}

fn is_zero(v: &f32) -> bool {
    *v == 0.0
}

/// How a warp fills pixels that come from outside the image.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum Fill {
    /// The nearest edge pixel (Keras' default).
    #[default]
    Nearest,
    /// One value (0-255) in every channel.
    Constant { value: f32 },
    /// The image mirrored at its edges (`dcba|abcd|dcba`).
    Reflect,
}

impl Fill {
    pub fn is_nearest(&self) -> bool {
        *self == Fill::Nearest
    }
}

/// `RandomResizedCrop`: a crop of `scale` of the area with aspect ratio in `ratio`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Crop {
    pub scale: [f32; 2],
    pub ratio: [f32; 2],
}

impl Default for Crop {
    /// torchvision's defaults.
    fn default() -> Self {
        Crop {
            scale: [0.08, 1.0],
            ratio: [3.0 / 4.0, 4.0 / 3.0],
        }
    }
}

/// `RandomErasing`: with probability `p`, a rectangle of `scale` of the area and aspect
/// ratio in `ratio` set to 0.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Erase {
    pub p: f32,
    pub scale: [f32; 2],
    pub ratio: [f32; 2],
}

impl Default for Erase {
    /// torchvision's defaults.
    fn default() -> Self {
        Erase {
            p: 0.5,
            scale: [0.02, 0.33],
            ratio: [0.3, 3.3],
        }
    }
}

/// torchvision's automatic augmentation policies (`transforms.RandAugment`,
/// `transforms.TrivialAugmentWide`), with their 14 operations and magnitude bins.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "name")]
pub enum Preset {
    /// `ops` operations per image, each at magnitude bin `magnitude` of 31 (0-30).
    RandAugment { ops: usize, magnitude: usize },
    /// One operation per image at a random magnitude bin.
    TrivialAugment,
}

fn is_unit(range: Option<[f32; 2]>) -> bool {
    range.is_none_or(|[a, b]| a == 1.0 && b == 1.0)
}

fn check_max(
    field: &str,
    v: f32,
    max: f32,
    closed: bool,
    hint: &str,
    out: &mut Vec<(String, String)>,
) {
    let ok = v.is_finite() && v >= 0.0 && if closed { v <= max } else { v < max };
    if !ok {
        let bound = if closed {
            format!("<= {max}")
        } else {
            format!("< {max}")
        };
        out.push((
            field.to_string(),
            format!("{field} = {v}: must be >= 0 and {bound}; {hint}"),
        ));
    }
}

fn check_range(field: &str, r: Option<[f32; 2]>, out: &mut Vec<(String, String)>) {
    let Some([lo, hi]) = r else { return };
    let problem = if !(lo.is_finite() && hi.is_finite()) {
        "both bounds must be finite numbers"
    } else if lo < 0.0 {
        "factors must be >= 0 (1 keeps the image unchanged)"
    } else if lo > hi {
        "the lower bound is above the upper bound: swap them"
    } else if hi == 0.0 {
        "[0, 0] turns every image into a constant"
    } else {
        return;
    };
    out.push((
        field.to_string(),
        format!("{field} = [{lo}, {hi}]: {problem}; write e.g. {field} = [0.8, 1.2]"),
    ));
}

impl Augment {
    /// True when applying it can never change an image.
    pub fn is_identity(&self) -> bool {
        !self.hflip
            && !self.vflip
            && self.rotate == 0.0
            && self.shift == 0.0
            && self.zoom == 0.0
            && self.shear == 0.0
            && is_unit(self.brightness)
            && is_unit(self.contrast)
            && is_unit(self.saturation)
            && self.hue == 0.0
            && self.crop.is_none()
            && self.erase.is_none_or(|e| e.p == 0.0)
            && self.preset.is_none()
    }

    /// Problems with the settings as (field, problem and fix); empty when all is well.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        check_max(
            "rotate",
            self.rotate,
            180.0,
            true,
            "it is the max angle in degrees, e.g. rotate = 30",
            &mut out,
        );
        check_max(
            "shift",
            self.shift,
            1.0,
            false,
            "it is a fraction of the image size, e.g. shift = 0.1 for 10% (not pixels)",
            &mut out,
        );
        check_max(
            "zoom",
            self.zoom,
            1.0,
            false,
            "scales are drawn from [1 - zoom, 1 + zoom], e.g. zoom = 0.2",
            &mut out,
        );
        check_max(
            "shear",
            self.shear,
            80.0,
            true,
            "it is the max shear angle in degrees, e.g. shear = 10",
            &mut out,
        );
        check_range("brightness", self.brightness, &mut out);
        check_range("contrast", self.contrast, &mut out);
        check_range("saturation", self.saturation, &mut out);
        check_max(
            "hue",
            self.hue,
            0.5,
            true,
            "it is the max shift as a fraction of the colour circle, e.g. hue = 0.05",
            &mut out,
        );
        if let Fill::Constant { value } = self.fill {
            if !(0.0..=255.0).contains(&value) {
                out.push((
                    "fill_value".into(),
                    format!("fill_value = {value}: must be a pixel value from 0 to 255"),
                ));
            }
        }
        let interval = |field: &str, [lo, hi]: [f32; 2], max: f32, out: &mut Vec<_>| {
            if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && lo <= hi && hi <= max) {
                out.push((
                    field.to_string(),
                    format!("{field} = [{lo}, {hi}]: needs 0 < low <= high <= {max}"),
                ));
            }
        };
        if let Some(c) = &self.crop {
            interval("crop.scale", c.scale, 1.0, &mut out);
            interval("crop.ratio", c.ratio, 100.0, &mut out);
        }
        if let Some(e) = &self.erase {
            if !(0.0..=1.0).contains(&e.p) {
                out.push((
                    "erase.p".into(),
                    format!("erase.p = {}: a probability, from 0 to 1", e.p),
                ));
            }
            interval("erase.scale", e.scale, 1.0, &mut out);
            interval("erase.ratio", e.ratio, 100.0, &mut out);
        }
        if let Some(Preset::RandAugment { ops, magnitude }) = self.preset {
            if !(1..=10).contains(&ops) {
                out.push((
                    "randaugment.ops".into(),
                    format!(
                        "ops = {ops}: operations per image, from 1 to 10 (torchvision's default 2)"
                    ),
                ));
            }
            if magnitude > 30 {
                out.push((
                    "randaugment.magnitude".into(),
                    format!(
                        "magnitude = {magnitude}: a bin from 0 to 30 (torchvision's default 9)"
                    ),
                ));
            }
        }
        out
    }
}
