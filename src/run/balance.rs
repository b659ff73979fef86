//! Class balance (grid key `balance`, and `[balance]` settings): how many images of each class
//! one training epoch sees, and the loss weights of `class_weights`. Pure functions of the
//! class counts; drawing the images is `data::balance`'s job. Validation and test are never
//! resampled.
use serde::{Deserialize, Serialize};

/// A balance mode other than `none`, as a run config stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Balance {
    /// Every class drawn up to the largest class's count.
    Oversample,
    /// Every class drawn down to the smallest class's count.
    Undersample,
    /// Classes below `min` drawn up to it, above `max` down to it (the seeds' "every class
    /// between 250 and 1000 images").
    Clip { min: usize, max: usize },
    /// Images as they are; the loss weighs each class by its inverse frequency.
    ClassWeights,
}

/// The names `balance = "..."` takes.
pub const BALANCES: [&str; 5] = ["none", "oversample", "undersample", "clip", "class_weights"];

/// The seeds' clip range, when `[balance] clip` does not give one.
pub const DEFAULT_CLIP: [usize; 2] = [250, 1000];

impl Balance {
    pub fn name(&self) -> &'static str {
        match self {
            Balance::Oversample => "oversample",
            Balance::Undersample => "undersample",
            Balance::Clip { .. } => "clip",
            Balance::ClassWeights => "class_weights",
        }
    }

    /// The mode called `name` (`none` is `Ok(None)`), with `clip`'s range.
    pub fn parse(name: &str, clip: [usize; 2]) -> Result<Option<Balance>, String> {
        Ok(Some(match name {
            "none" => return Ok(None),
            "oversample" => Balance::Oversample,
            "undersample" => Balance::Undersample,
            "clip" => Balance::Clip {
                min: clip[0],
                max: clip[1],
            },
            "class_weights" => Balance::ClassWeights,
            other => {
                return Err(format!(
                    "unknown balance \"{other}\"; choose one of {}",
                    BALANCES.join(", ")
                ))
            }
        }))
    }
}

/// Images of each class in one training epoch: `counts` (the training split's, per class)
/// balanced by `balance`, then each class `c` repeated `repeat[c]` times (`augment_classes`;
/// 1 for the others). A class without images stays at 0.
pub fn epoch_counts(balance: Option<&Balance>, counts: &[usize], repeat: &[usize]) -> Vec<usize> {
    let present = counts.iter().copied().filter(|&n| n > 0);
    let (lo, hi) = (
        present.clone().min().unwrap_or(0),
        present.max().unwrap_or(0),
    );
    counts
        .iter()
        .enumerate()
        .map(|(c, &n)| {
            let balanced = match balance {
                _ if n == 0 => 0,
                None | Some(Balance::ClassWeights) => n,
                Some(Balance::Oversample) => hi,
                Some(Balance::Undersample) => lo,
                Some(Balance::Clip { min, max }) => n.clamp(*min, *max),
            };
            balanced * repeat.get(c).copied().unwrap_or(1)
        })
        .collect()
}

/// `class_weights`' loss weight of each class: `total / (classes * count)`, scikit-learn's
/// `compute_class_weight("balanced")` (a class without images weighs 0: it never appears).
pub fn class_weights(counts: &[usize]) -> Vec<f64> {
    let total: usize = counts.iter().sum();
    let k = counts.iter().filter(|&&n| n > 0).count().max(1);
    counts
        .iter()
        .map(|&n| match n {
            0 => 0.0,
            n => total as f64 / (k as f64 * n as f64),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 50:1 tail, as in the seeds' data.
    const COUNTS: [usize; 4] = [1000, 400, 120, 20];

    #[test]
    fn each_mode_gives_the_counts_it_promises() {
        assert_eq!(epoch_counts(None, &COUNTS, &[]), COUNTS);
        let over = epoch_counts(Some(&Balance::Oversample), &COUNTS, &[]);
        assert_eq!(over, [1000; 4]);
        let under = epoch_counts(Some(&Balance::Undersample), &COUNTS, &[]);
        assert_eq!(under, [20; 4]);
        let clip = Balance::Clip { min: 250, max: 600 };
        assert_eq!(
            epoch_counts(Some(&clip), &COUNTS, &[]),
            [600, 400, 250, 250]
        );
        let weights = epoch_counts(Some(&Balance::ClassWeights), &COUNTS, &[]);
        assert_eq!(weights, COUNTS, "class_weights resamples nothing");
        // augment_classes multiplies after balancing; an empty class stays empty.
        let counts = [1000, 0, 120, 20];
        assert_eq!(
            epoch_counts(Some(&Balance::Undersample), &counts, &[1, 3, 1, 4]),
            [20, 0, 20, 80]
        );
        assert_eq!(
            epoch_counts(None, &counts, &[1, 1, 2, 1]),
            [1000, 0, 240, 20]
        );
    }

    #[test]
    fn class_weights_are_sklearn_balanced() {
        // sklearn.utils.class_weight.compute_class_weight("balanced", classes=[0, 1, 2, 3],
        // y=[0]*1000 + [1]*400 + [2]*120 + [3]*20) = [0.385, 0.9625, 3.2083..., 19.25]
        let w = class_weights(&COUNTS);
        let want = [0.385, 0.9625, 3.208_333_333_333_333_5, 19.25];
        for (g, w) in w.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{g} vs {w}");
        }
        assert_eq!(class_weights(&[5, 0, 5]), [1.0, 0.0, 1.0]);
    }

    #[test]
    fn names_parse_back() {
        for name in BALANCES {
            let b = Balance::parse(name, DEFAULT_CLIP).unwrap();
            assert_eq!(b.as_ref().map_or("none", Balance::name), name);
        }
        let e = Balance::parse("smote", DEFAULT_CLIP).unwrap_err();
        assert!(e.contains("unknown balance \"smote\""), "{e}");
    }
}
