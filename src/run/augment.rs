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
        out
    }
}
