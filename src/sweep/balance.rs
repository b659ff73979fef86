//! `[balance]`: the range of the `clip` mode and the classes repeated with augmentation
//! (`augment_classes = { coat = 4 }`), for every run of the sweep.
use std::collections::BTreeMap;
use std::path::Path;

use toml::{Table, Value};

use super::parse::{closest_key, key_part, Problems};
use super::values::got;
use crate::data::check::Depth;
use crate::data::DataSpec;
use crate::run::balance::DEFAULT_CLIP;

/// The `[balance]` table as every run takes it.
#[derive(Clone, Debug, PartialEq)]
pub struct BalanceSettings {
    /// `[min, max]` images per class of the `clip` mode.
    pub clip: [usize; 2],
    /// Class folder name -> how many times its images appear in an epoch (>= 2).
    pub augment_classes: BTreeMap<String, usize>,
}

impl Default for BalanceSettings {
    fn default() -> Self {
        BalanceSettings {
            clip: DEFAULT_CLIP,
            augment_classes: BTreeMap::new(),
        }
    }
}

pub(super) fn parse(
    root: &Table,
    data: &DataSpec,
    base: &Path,
    depth: Depth,
    p: &mut Problems,
) -> BalanceSettings {
    let mut out = BalanceSettings::default();
    // A value that is not a table was reported as a misplaced grid key.
    let Some(section) = root.get("balance").and_then(Value::as_table) else {
        return out;
    };
    p.unknown_keys("balance", section, &["clip", "augment_classes"]);
    if let Some(v) = section.get("clip") {
        let pair = v.as_array().and_then(|a| match a.as_slice() {
            [Value::Integer(lo), Value::Integer(hi)] if *lo >= 1 && lo <= hi => {
                Some([*lo as usize, *hi as usize])
            }
            _ => None,
        });
        match pair {
            Some(range) => out.clip = range,
            None => p.add(
                "balance.clip",
                format!(
                    "expected [min, max] images per class, whole numbers with 1 <= min <= max, e.g. clip = [250, 1000]; got {}",
                    got(v)
                ),
            ),
        }
    }
    match section.get("augment_classes") {
        None => {}
        Some(Value::Table(t)) => {
            for (class, v) in t {
                match v {
                    Value::Integer(k) if (2..=100).contains(k) => {
                        out.augment_classes.insert(class.clone(), *k as usize);
                    }
                    other => p.add(
                        format!("balance.augment_classes.{}", key_part(class)),
                        format!(
                            "expected how many times the class's images appear per epoch, a whole number from 2 to 100; got {}",
                            got(other)
                        ),
                    ),
                }
            }
        }
        Some(v) => p.add(
            "balance.augment_classes",
            format!(
                "expected a table of class folder names, e.g. augment_classes = {{ coat = 4 }}; got {}",
                got(v)
            ),
        ),
    }
    if depth == Depth::Contents {
        check_classes(&out, &base.join(&data.train), p);
    }
    out
}

/// Every class named in `augment_classes` must be a class folder of the training data.
fn check_classes(settings: &BalanceSettings, train: &Path, p: &mut Problems) {
    let Ok(entries) = std::fs::read_dir(train) else {
        return; // the data check reports an unreadable folder
    };
    let mut classes: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    classes.sort();
    let names: Vec<&str> = classes.iter().map(String::as_str).collect();
    for class in settings.augment_classes.keys() {
        if names.contains(&class.as_str()) {
            continue;
        }
        let hint = match closest_key(class, &names) {
            Some(near) => format!("did you mean \"{near}\"?"),
            None => format!("its classes: {}", names.join(", ")),
        };
        p.add(
            format!("balance.augment_classes.{}", key_part(class)),
            format!(
                "no class folder of that name in {}; {hint}",
                train.display()
            ),
        );
    }
}
