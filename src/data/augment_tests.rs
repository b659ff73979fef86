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
