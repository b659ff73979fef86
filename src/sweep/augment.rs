//! The `[augment.NAME]` settings beyond Keras' (issue 12): fill mode, saturation, hue,
//! random resized crop, random erasing and the RandAugment / TrivialAugment presets.
use toml::{Table, Value};

use super::parse::{factors, real, Problems};
use super::values::got;
use crate::run::{Augment, Erase, Fill, Preset};

/// The keys this module reads.
pub(super) const KEYS: [&str; 8] = [
    "fill",
    "fill_value",
    "saturation",
    "hue",
    "crop",
    "erase",
    "randaugment",
    "trivialaugment",
];

/// Sets `a`'s newer fields from the table `t` of `[augment.NAME]` (`prefix`).
pub(super) fn extras(a: &mut Augment, t: &Table, prefix: &str, p: &mut Problems) {
    a.fill = match t.get("fill").map(|v| (v, v.as_str())) {
        None | Some((_, Some("nearest"))) => Fill::Nearest,
        Some((_, Some("reflect"))) => Fill::Reflect,
        Some((_, Some("constant"))) => Fill::Constant {
            value: match t.get("fill_value") {
                None => 0.0,
                Some(_) => real(t, "fill_value", prefix, p),
            },
        },
        Some((v, _)) => {
            p.add(
                format!("{prefix}.fill"),
                format!(
                    "expected \"nearest\", \"constant\" or \"reflect\"; got {}",
                    got(v)
                ),
            );
            Fill::Nearest
        }
    };
    if t.contains_key("fill_value") && !matches!(a.fill, Fill::Constant { .. }) {
        p.add(
            format!("{prefix}.fill_value"),
            "fill_value is the value of fill = \"constant\"; add that, or remove fill_value",
        );
    }
    a.saturation = factors(t, "saturation", prefix, p);
    a.hue = real(t, "hue", prefix, p);
    a.crop = table_or_true(
        t,
        "crop",
        prefix,
        p,
        "crop = { scale = [0.08, 1.0], ratio = [0.75, 1.333] }",
    );
    a.erase = match t.get("erase") {
        Some(Value::Float(x)) => Some(Erase {
            p: *x as f32,
            ..Erase::default()
        }),
        Some(Value::Integer(i)) => Some(Erase {
            p: *i as f32,
            ..Erase::default()
        }),
        _ => table_or_true(
            t,
            "erase",
            prefix,
            p,
            "erase = 0.5, or erase = { p = 0.5, scale = [0.02, 0.33], ratio = [0.3, 3.3] }",
        ),
    };
    #[derive(serde::Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Rand {
        ops: usize,
        magnitude: usize,
    }
    impl Default for Rand {
        /// torchvision's defaults.
        fn default() -> Self {
            Rand {
                ops: 2,
                magnitude: 9,
            }
        }
    }
    let rand: Option<Rand> = table_or_true(
        t,
        "randaugment",
        prefix,
        p,
        "randaugment = true, or randaugment = { ops = 2, magnitude = 9 }",
    );
    let trivial = match t.get("trivialaugment") {
        None | Some(Value::Boolean(false)) => false,
        Some(Value::Boolean(true)) => true,
        Some(v) => {
            p.add(
                format!("{prefix}.trivialaugment"),
                format!("expected true or false; got {}", got(v)),
            );
            false
        }
    };
    a.preset = match (rand, trivial) {
        (Some(_), true) => {
            p.add(
                format!("{prefix}.trivialaugment"),
                "a set takes one preset: randaugment or trivialaugment",
            );
            None
        }
        (Some(r), false) => Some(Preset::RandAugment {
            ops: r.ops,
            magnitude: r.magnitude,
        }),
        (None, true) => Some(Preset::TrivialAugment),
        (None, false) => None,
    };
}

/// A setting given as `true` (its defaults), `false` (off) or a table of its fields.
fn table_or_true<T: Default + serde::de::DeserializeOwned>(
    t: &Table,
    key: &str,
    prefix: &str,
    p: &mut Problems,
    example: &str,
) -> Option<T> {
    match t.get(key)? {
        Value::Boolean(true) => Some(T::default()),
        Value::Boolean(false) => None,
        Value::Table(fields) => match Value::Table(fields.clone()).try_into::<T>() {
            Ok(v) => Some(v),
            Err(e) => {
                let why = e.to_string();
                p.add(
                    format!("{prefix}.{key}"),
                    format!("{}; write e.g. {example}", why.trim()),
                );
                None
            }
        },
        v => {
            p.add(
                format!("{prefix}.{key}"),
                format!(
                    "expected true or a table; got {}; write e.g. {example}",
                    got(v)
                ),
            );
            None
        }
    }
}
