//! Tests of `Augment`: identity, flips, seeded determinism, parameter ranges, validation, serde.

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::Augment;

fn img() -> Vec<u8> {
    (0..3 * 6 * 6).map(|v| (v * 7 % 256) as u8).collect()
}

#[test]
fn identity_returns_the_input_exactly() {
    let a = Augment::default();
    assert!(a.is_identity());
    let unit = Augment {
        brightness: Some([1.0, 1.0]),
        contrast: Some([1.0, 1.0]),
        ..a.clone()
    };
    assert!(unit.is_identity());
    let mut rng = StdRng::seed_from_u64(0);
    assert_eq!(a.apply(&img(), 3, 6, 6, &mut rng), img());
    assert_eq!(unit.apply(&img(), 3, 6, 6, &mut rng), img());
    assert!(!Augment { rotate: 1.0, ..a }.is_identity());
}

#[test]
fn hflip_is_exact_mirror_or_nothing() {
    let a = Augment {
        hflip: true,
        ..Augment::default()
    };
    let src = img();
    let mirror: Vec<u8> = src
        .chunks(6)
        .flat_map(|r| r.iter().rev().copied())
        .collect();
    let mut rng = StdRng::seed_from_u64(5);
    let outs: Vec<_> = (0..16).map(|_| a.apply(&src, 3, 6, 6, &mut rng)).collect();
    assert!(outs.iter().all(|o| *o == src || *o == mirror));
    assert!(outs.contains(&src) && outs.contains(&mirror));
}

#[test]
fn seeded_augmentation_is_deterministic() {
    let a = Augment {
        hflip: true,
        rotate: 30.0,
        shift: 0.1,
        zoom: 0.2,
        shear: 10.0,
        brightness: Some([0.8, 1.2]),
        contrast: Some([0.9, 1.1]),
        ..Augment::default()
    };
    assert!(a.validate().is_empty());
    let run = |seed| {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..4)
            .map(|_| a.apply(&img(), 3, 6, 6, &mut rng))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(9), run(9));
    assert_ne!(run(9), run(10));
    assert_ne!(run(9)[0], img());
}

#[test]
fn sampled_parameters_stay_in_range() {
    let a = Augment {
        rotate: 30.0,
        shift: 0.1,
        zoom: 0.2,
        shear: 5.0,
        ..Augment::default()
    };
    let mut rng = StdRng::seed_from_u64(1);
    for _ in 0..200 {
        let p = a.sample(&mut rng, 20, 40);
        assert!(p.angle.abs() <= 30.0 && p.shear.abs() <= 5.0);
        assert!(p.tx.abs() <= 4.0 && p.ty.abs() <= 2.0);
        assert!((0.8..=1.2).contains(&p.sx) && (0.8..=1.2).contains(&p.sy));
        assert!(!p.hflip && !p.vflip);
    }
}

#[test]
fn validate_names_fields_and_fixes() {
    let a = Augment {
        rotate: -30.0,
        shift: 4.0,
        zoom: 1.0,
        shear: f32::NAN,
        brightness: Some([1.2, 0.8]),
        contrast: Some([-1.0, 1.0]),
        ..Augment::default()
    };
    let v = a.validate();
    let fields: Vec<_> = v.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        ["rotate", "shift", "zoom", "shear", "brightness", "contrast"]
    );
    assert!(
        v[1].1.contains("fraction") && v[4].1.contains("swap"),
        "{v:?}"
    );
    // Odd settings never panic when applied anyway.
    let mut rng = StdRng::seed_from_u64(0);
    assert_eq!(a.apply(&img(), 3, 6, 6, &mut rng).len(), img().len());
}

#[test]
fn deserializes_with_defaults_and_rejects_unknown_fields() {
    let a: Augment = toml::from_str("hflip = true\nrotate = 30\nbrightness = [0.8, 1.2]").unwrap();
    assert_eq!(
        a,
        Augment {
            hflip: true,
            rotate: 30.0,
            brightness: Some([0.8, 1.2]),
            ..Augment::default()
        }
    );
    let e = toml::from_str::<Augment>("rotation_range = 30")
        .unwrap_err()
        .to_string();
    assert!(e.contains("rotation_range"), "{e}");
}

/// A 1-channel 4 x 4 image with distinct pixels 0, 10, ..., 150.
fn ramp16() -> Vec<u8> {
    (0..16u8).map(|v| v * 10).collect()
}

#[test]
fn fill_modes_fill_what_a_shift_brings_in() {
    use super::warp::{apply, Params};
    use crate::run::Fill;
    let img: Vec<u8> = [10, 20, 30, 40].repeat(2); // 2 rows x 4
    let shifted = |fill| {
        let mut p = Params::identity();
        p.tx = 2.0;
        p.fill = fill;
        apply(&img, 1, 2, 4, &p)
    };
    assert_eq!(shifted(Fill::Nearest), [10, 10, 10, 20].repeat(2));
    assert_eq!(
        shifted(Fill::Constant { value: 255.0 }),
        [255, 255, 10, 20].repeat(2)
    );
    // dcba|abcd: two columns in from the left are b, a.
    assert_eq!(shifted(Fill::Reflect), [20, 10, 10, 20].repeat(2));
}

#[test]
fn a_full_crop_is_the_identity_and_a_crop_zooms_in() {
    use crate::run::Crop;
    let full = Augment {
        crop: Some(Crop {
            scale: [1.0, 1.0],
            ratio: [1.0, 1.0],
        }),
        ..Augment::default()
    };
    let mut rng = StdRng::seed_from_u64(2);
    assert_eq!(full.apply(&ramp16(), 1, 4, 4, &mut rng), ramp16());
    // A quarter of the area: a 2 x 2 crop blown up to 4 x 4; every pixel comes from it.
    let quarter = Augment {
        crop: Some(Crop {
            scale: [0.25, 0.25],
            ratio: [1.0, 1.0],
        }),
        ..Augment::default()
    };
    for seed in 0..20 {
        let mut rng = StdRng::seed_from_u64(seed);
        let p = quarter.sample(&mut rng, 4, 4);
        let (top, left, h, w) = p.crop.unwrap();
        assert_eq!((h, w), (2, 2));
        assert!(top <= 2 && left <= 2);
        let mut rng = StdRng::seed_from_u64(seed);
        let out = quarter.apply(&ramp16(), 1, 4, 4, &mut rng);
        let (lo, hi) = (ramp16()[top * 4 + left], ramp16()[(top + 1) * 4 + left + 1]);
        assert!(
            out.iter().all(|&v| v >= lo && v <= hi),
            "{out:?} in {lo}..{hi}"
        );
        assert_eq!(out[0], lo, "the corner pixel stays the crop's corner");
    }
}

#[test]
fn erasing_blanks_one_rectangle_or_nothing() {
    use crate::run::Erase;
    let white = vec![200u8; 3 * 8 * 8];
    let always = Augment {
        erase: Some(Erase {
            p: 1.0,
            ..Erase::default()
        }),
        ..Augment::default()
    };
    let mut rng = StdRng::seed_from_u64(4);
    let out = always.apply(&white, 3, 8, 8, &mut rng);
    let zeros = out.iter().filter(|&&v| v == 0).count();
    assert!(
        zeros > 0 && zeros % 3 == 0,
        "a rectangle in every channel: {zeros}"
    );
    assert!(out.iter().all(|&v| v == 0 || v == 200));
    let never = Augment {
        erase: Some(Erase {
            p: 0.0,
            ..Erase::default()
        }),
        ..Augment::default()
    };
    assert!(never.is_identity());
    assert_eq!(never.apply(&white, 3, 8, 8, &mut rng), white);
}

#[test]
fn colour_jitter_stays_in_range_and_leaves_grey_images() {
    let a = Augment {
        saturation: Some([0.0, 2.0]),
        hue: 0.5,
        ..Augment::default()
    };
    assert!(a.validate().is_empty());
    let mut rng = StdRng::seed_from_u64(6);
    for _ in 0..20 {
        let out = a.apply(&img(), 3, 6, 6, &mut rng);
        assert_eq!(out.len(), img().len());
    }
    // One channel: nothing to saturate or turn.
    let grey: Vec<u8> = (0..36).map(|v| v * 7).collect();
    assert_eq!(a.apply(&grey, 1, 6, 6, &mut rng), grey);
    // Saturation 0 on RGB: every pixel grey (equal channels, within rounding).
    let flat = Augment {
        saturation: Some([0.0, 0.0]),
        ..Augment::default()
    };
    let out = flat.apply(&img(), 3, 6, 6, &mut rng);
    for i in 0..36 {
        let (r, g, b) = (out[i], out[36 + i], out[72 + i]);
        assert!(r == g && g == b, "pixel {i}: {r} {g} {b}");
    }
}

#[test]
fn presets_are_seeded_and_change_images() {
    use crate::run::Preset;
    for preset in [
        Preset::RandAugment {
            ops: 2,
            magnitude: 9,
        },
        Preset::TrivialAugment,
    ] {
        let a = Augment {
            preset: Some(preset),
            ..Augment::default()
        };
        assert!(a.validate().is_empty() && !a.is_identity());
        let run = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..8)
                .map(|_| a.apply(&img(), 3, 6, 6, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert!(
            run(1).iter().any(|o| *o != img()),
            "{preset:?} changed nothing"
        );
    }
}

/// The settings added in issue 12 stay out of a stored config when unset, so runs of older
/// sweep files keep their ids; set ones round-trip.
#[test]
fn new_settings_serialize_only_when_set() {
    let plain = serde_json::to_value(Augment {
        hflip: true,
        ..Augment::default()
    })
    .unwrap();
    let keys: Vec<&String> = plain.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "hflip",
            "vflip",
            "rotate",
            "shift",
            "zoom",
            "shear",
            "brightness",
            "contrast"
        ]
    );
    let rich = Augment {
        fill: crate::run::Fill::Constant { value: 7.0 },
        hue: 0.1,
        preset: Some(crate::run::Preset::TrivialAugment),
        erase: Some(crate::run::Erase::default()),
        ..Augment::default()
    };
    let back: Augment = serde_json::from_value(serde_json::to_value(&rich).unwrap()).unwrap();
    assert_eq!(back, rich);
}
