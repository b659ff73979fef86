//! Random search: draws the trials' values from the axes' domains, reproducibly forever.
//!
//! Each value is drawn from its own generator, `ChaCha8Rng::seed_from_u64(mix(seed, t, key))`,
//! so trial `t`'s value of `key` depends on nothing else: adding trials keeps the earlier ones,
//! and changing or reordering one axis leaves the other axes' draws alone. Every step is
//! pinned: [`mix`] is written out here (std's `DefaultHasher` may change between Rust
//! versions), ChaCha's output stream and `seed_from_u64` are value-stable by rand's policy, and
//! raw `u64`s are turned into numbers here rather than by `rand`'s distributions (which may
//! change between `rand` versions). The one thing left to the platform is `f64::ln`/`exp` for
//! `log_uniform`, which may differ in the last bit between math libraries; values are rounded
//! to 4 significant digits, so that changes a drawn value only if it lands within a bit of a
//! rounding boundary.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::space::Domain;

/// `trials` assignments of the axes, trial t's values a pure function of (seed, t, key): adding
/// trials keeps the earlier ones, and changing one axis's domain leaves other axes' draws alone.
///
/// Each assignment keeps the axes' order. Floats are rounded to 4 significant digits and stay
/// within the domain's bounds; `int_uniform` values are integers.
///
/// # Panics
/// If a domain cannot be sampled (an empty `Choice`, `lo > hi`): [`Domain::parse`] never
/// builds one.
pub fn sample(
    axes: &[(String, Domain)],
    seed: u64,
    trials: usize,
) -> Vec<Vec<(String, toml::Value)>> {
    (0..trials)
        .map(|t| {
            axes.iter()
                .map(|(key, domain)| {
                    let mut rng = ChaCha8Rng::seed_from_u64(mix(seed, t as u64, key));
                    (key.clone(), draw(domain, &mut rng))
                })
                .collect()
        })
        .collect()
}

/// One value of `domain`.
fn draw(domain: &Domain, rng: &mut impl RngCore) -> toml::Value {
    match domain {
        Domain::Choice(values) => {
            assert!(!values.is_empty(), "cannot sample an empty list");
            let i = int_in(rng, 0, values.len() as i64 - 1);
            values[i as usize].clone()
        }
        Domain::Uniform { lo, hi } => {
            let u = unit(rng);
            let span = hi - lo;
            let x = if span.is_finite() {
                lo + u * span
            } else {
                // Bounds near ±f64::MAX: the span overflows, interpolate instead.
                lo * (1.0 - u) + hi * u
            };
            float(x, *lo, *hi)
        }
        Domain::LogUniform { lo, hi } => {
            let (a, b) = (lo.ln(), hi.ln());
            float((a + unit(rng) * (b - a)).exp(), *lo, *hi)
        }
        Domain::IntUniform { lo, hi } => toml::Value::Integer(int_in(rng, *lo, *hi)),
    }
}

/// A float value: `x` rounded to 4 significant digits, then clamped back into `[lo, hi]`.
fn float(x: f64, lo: f64, hi: f64) -> toml::Value {
    toml::Value::Float(round_significant(x).clamp(lo, hi))
}

/// `x` rounded to 4 significant digits, as the nearest f64 to the 4-digit decimal (so it
/// prints as `0.0003467`, not `0.00034670000000000003`).
fn round_significant(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    // Rust formats floats exactly (correct rounding), and parses to the nearest f64.
    format!("{x:.3e}")
        .parse()
        .expect("a formatted float parses")
}

/// A float in [0, 1) from the top 53 bits of one draw.
fn unit(rng: &mut impl RngCore) -> f64 {
    (rng.next_u64() >> 11) as f64 * 2f64.powi(-53)
}

/// A uniform integer in `[lo, hi]`, both inclusive: Lemire's multiply-and-reject on u64, so
/// without modulo bias.
fn int_in(rng: &mut impl RngCore, lo: i64, hi: i64) -> i64 {
    assert!(lo <= hi, "empty integer range [{lo}, {hi}]");
    // The number of values, as u64; it wraps to 0 only for the whole i64 range.
    let n = (hi.wrapping_sub(lo) as u64).wrapping_add(1);
    if n == 0 {
        return rng.next_u64() as i64;
    }
    let mut m = u128::from(rng.next_u64()) * u128::from(n);
    if (m as u64) < n {
        // Values of the low word below 2^64 mod n would over-represent some outcomes.
        let threshold = n.wrapping_neg() % n;
        while (m as u64) < threshold {
            m = u128::from(rng.next_u64()) * u128::from(n);
        }
    }
    lo.wrapping_add((m >> 64) as i64)
}

/// The seed of the generator for trial `t`'s value of `key`: FNV-1a 64 over the little-endian
/// bytes of `seed` and `t` and the UTF-8 bytes of `key`, then splitmix64's finalizer to spread
/// the bits. Fixed forever: changing it changes every random sweep.
fn mix(seed: u64, t: u64, key: &str) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let bytes = seed
        .to_le_bytes()
        .into_iter()
        .chain(t.to_le_bytes())
        .chain(key.bytes());
    let mut h = FNV_OFFSET;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axis(key: &str, domain: Domain) -> (String, Domain) {
        (key.to_string(), domain)
    }

    fn floats(values: &[f64]) -> Domain {
        Domain::Choice(values.iter().map(|&x| toml::Value::Float(x)).collect())
    }

    fn axes() -> Vec<(String, Domain)> {
        vec![
            axis("lr", Domain::LogUniform { lo: 1e-4, hi: 1e-1 }),
            axis("batch_size", Domain::IntUniform { lo: 16, hi: 256 }),
            axis(
                "optimizer",
                Domain::Choice(vec!["adam".into(), "sgd".into(), "adamw".into()]),
            ),
            axis("label_smoothing", Domain::Uniform { lo: 0.0, hi: 0.2 }),
        ]
    }

    /// The values of `key` over the trials.
    fn column(trials: &[Vec<(String, toml::Value)>], key: &str) -> Vec<toml::Value> {
        trials
            .iter()
            .map(|t| t.iter().find(|(k, _)| k == key).unwrap().1.clone())
            .collect()
    }

    fn as_f64(values: &[toml::Value]) -> Vec<f64> {
        values.iter().map(|v| v.as_float().unwrap()).collect()
    }

    #[test]
    fn same_seed_same_trials() {
        let a = sample(&axes(), 42, 25);
        assert_eq!(a.len(), 25);
        assert_eq!(a, sample(&axes(), 42, 25));
    }

    #[test]
    fn different_seed_different_trials() {
        let a = sample(&axes(), 42, 25);
        let b = sample(&axes(), 43, 25);
        for key in ["lr", "batch_size", "label_smoothing"] {
            assert_ne!(column(&a, key), column(&b, key), "{key}");
        }
    }

    #[test]
    fn output_keeps_axis_order_and_types() {
        for trial in sample(&axes(), 1, 10) {
            let keys: Vec<&str> = trial.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(keys, ["lr", "batch_size", "optimizer", "label_smoothing"]);
            assert!(trial[0].1.is_float());
            assert!(trial[1].1.is_integer());
            assert!(trial[2].1.is_str());
            assert!(trial[3].1.is_float());
        }
    }

    #[test]
    fn more_trials_keep_the_earlier_ones() {
        let twenty = sample(&axes(), 7, 20);
        let thirty = sample(&axes(), 7, 30);
        assert_eq!(thirty.len(), 30);
        assert_eq!(twenty[..], thirty[..20]);
    }

    #[test]
    fn changing_one_axis_leaves_the_others_alone() {
        let before = sample(&axes(), 7, 30);
        let mut changed = axes();
        changed[0].1 = Domain::LogUniform { lo: 1e-5, hi: 1.0 };
        changed[2].1 = Domain::Choice(vec!["sgd".into()]);
        let after = sample(&changed, 7, 30);
        assert_ne!(column(&before, "lr"), column(&after, "lr"));
        for key in ["batch_size", "label_smoothing"] {
            assert_eq!(column(&before, key), column(&after, key), "{key}");
        }
        // Removing an axis or reordering the rest changes nothing either.
        let mut fewer = axes();
        fewer.remove(0);
        fewer.reverse();
        let after = sample(&fewer, 7, 30);
        for key in ["batch_size", "optimizer", "label_smoothing"] {
            assert_eq!(column(&before, key), column(&after, key), "{key}");
        }
    }

    #[test]
    fn axes_with_the_same_domain_draw_independently() {
        let d = Domain::Uniform { lo: 0.0, hi: 1.0 };
        let trials = sample(&[axis("a", d.clone()), axis("b", d)], 3, 20);
        assert_ne!(column(&trials, "a"), column(&trials, "b"));
    }

    /// Pins the whole pipeline (mix, ChaCha8, the conversions, the rounding): if this changes,
    /// every random sweep's trials change, which must never happen silently. The values were
    /// also reproduced by an independent Python transcription (mix, rand_core's PCG32 seed
    /// expansion, ChaCha8 from the RFC 7539 block function, the conversions above).
    #[test]
    fn draws_are_pinned() {
        let trials = sample(&axes(), 2024, 3);
        let shown: Vec<String> = trials
            .iter()
            .map(|t| {
                t.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        assert_eq!(shown, PINNED);
    }

    const PINNED: [&str; 3] = [
        r#"lr=0.06384 batch_size=56 optimizer="adamw" label_smoothing=0.02814"#,
        r#"lr=0.01468 batch_size=85 optimizer="sgd" label_smoothing=0.06415"#,
        r#"lr=0.004744 batch_size=35 optimizer="sgd" label_smoothing=0.05337"#,
    ];

    #[test]
    fn mix_is_pinned() {
        assert_eq!(mix(0, 0, ""), MIX_PINNED[0]);
        assert_eq!(mix(42, 7, "lr"), MIX_PINNED[1]);
        assert_ne!(mix(42, 7, "lr"), mix(42, 7, "lR"));
        assert_ne!(mix(42, 7, "lr"), mix(42, 8, "lr"));
        assert_ne!(mix(42, 7, "lr"), mix(43, 7, "lr"));
    }

    /// Computed independently of this code (a Python transcription of the definition).
    const MIX_PINNED: [u64; 2] = [0x6875_2350_ae1d_483f, 0xfe58_b375_4162_8ad0];

    #[test]
    fn floats_have_four_significant_digits() {
        let d = [
            axis("lr", Domain::LogUniform { lo: 1e-4, hi: 1e-1 }),
            axis("wd", Domain::Uniform { lo: 0.0, hi: 0.2 }),
        ];
        for trial in sample(&d, 11, 200) {
            for (key, v) in trial {
                let x = v.as_float().unwrap();
                assert_eq!(x, format!("{x:.3e}").parse::<f64>().unwrap(), "{key}={x}");
                // Printed as a short decimal, e.g. 0.0003467.
                let digits = x.to_string().trim_start_matches(['0', '.']).len();
                assert!(digits <= 5, "{key}={x}");
            }
        }
        assert_eq!(round_significant(0.000346712345), 0.0003467);
        assert_eq!(round_significant(123456.0), 123500.0);
        assert_eq!(round_significant(-0.0999951), -0.1);
    }

    #[test]
    fn rounding_stays_within_the_bounds() {
        // Every draw from [0.12345, 0.12346] rounds to 0.1234 or 0.1235, both outside the
        // range; the clamp brings each back inside.
        let d = [axis(
            "x",
            Domain::Uniform {
                lo: 0.12345,
                hi: 0.12346,
            },
        )];
        let xs = as_f64(&column(&sample(&d, 5, 200), "x"));
        assert!(xs.iter().all(|x| (0.12345..=0.12346).contains(x)), "{xs:?}");
        let d = [axis(
            "x",
            Domain::LogUniform {
                lo: 0.099991,
                hi: 0.099999,
            },
        )];
        let xs = as_f64(&column(&sample(&d, 5, 200), "x"));
        assert!(
            xs.iter().all(|x| (0.099991..=0.099999).contains(x)),
            "{xs:?}"
        );
    }

    /// Which decade of [1e-4, 1e-1] `x` lies in: 0, 1 or 2.
    fn decade(x: f64) -> usize {
        if x < 1e-3 {
            0
        } else if x < 1e-2 {
            1
        } else {
            2
        }
    }

    #[test]
    fn log_uniform_spreads_over_the_decades() {
        let d = [axis("lr", Domain::LogUniform { lo: 1e-4, hi: 1e-1 })];
        // A property check of the draw, deterministic with this fixed seed: 20 trials land in
        // every decade (for a random seed that fails with probability about 3 * (2/3)^20).
        let xs = as_f64(&column(&sample(&d, 1, 20), "lr"));
        assert!(xs.iter().all(|x| (1e-4..=1e-1).contains(x)), "{xs:?}");
        let mut counts = [0; 3];
        for &x in &xs {
            counts[decade(x)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 0), "{counts:?} {xs:?}");

        // Over many trials each decade holds about a third.
        let xs = as_f64(&column(&sample(&d, 1, 2000), "lr"));
        assert!(xs.iter().all(|x| (1e-4..=1e-1).contains(x)));
        let mut counts = [0; 3];
        for &x in &xs {
            counts[decade(x)] += 1;
        }
        for c in counts {
            assert!((500..=840).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn uniform_stays_in_range_and_fills_it() {
        let d = [axis("x", Domain::Uniform { lo: -1.0, hi: 3.0 })];
        let xs = as_f64(&column(&sample(&d, 9, 1000), "x"));
        assert!(xs.iter().all(|x| (-1.0..=3.0).contains(x)));
        // Each quarter of the range gets about 250.
        let mut counts = [0; 4];
        for &x in &xs {
            counts[((x + 1.0) as usize).min(3)] += 1;
        }
        assert!(counts.iter().all(|c| (200..=300).contains(c)), "{counts:?}");
    }

    #[test]
    fn int_uniform_hits_both_ends_and_stays_inside() {
        let d = [axis("epochs", Domain::IntUniform { lo: 3, hi: 8 })];
        let xs: Vec<i64> = column(&sample(&d, 4, 600), "epochs")
            .iter()
            .map(|v| v.as_integer().unwrap())
            .collect();
        assert!(xs.iter().all(|x| (3..=8).contains(x)));
        for end in [3, 8] {
            assert!(xs.contains(&end), "{end} never drawn");
        }
        // A one-value range always gives that value; the whole i64 range works.
        let d = [
            axis("one", Domain::IntUniform { lo: -5, hi: -5 }),
            axis(
                "all",
                Domain::IntUniform {
                    lo: i64::MIN,
                    hi: i64::MAX,
                },
            ),
        ];
        let trials = sample(&d, 4, 50);
        assert!(column(&trials, "one")
            .iter()
            .all(|v| v.as_integer() == Some(-5)));
        let all = column(&trials, "all");
        assert!(all.iter().any(|v| v.as_integer().unwrap() < 0));
        assert!(all.iter().any(|v| v.as_integer().unwrap() > 0));
    }

    #[test]
    fn choice_draws_each_value_evenly() {
        let d = [axis("lr", floats(&[0.1, 0.01, 0.001]))];
        let xs = as_f64(&column(&sample(&d, 6, 300), "lr"));
        for value in [0.1, 0.01, 0.001] {
            let n = xs.iter().filter(|&&x| x == value).count();
            assert!((80..=120).contains(&n), "{value} drawn {n} times of 300");
        }
        // Choice values are returned as given, not rounded.
        let d = [axis("lr", floats(&[0.000123456789]))];
        assert_eq!(
            column(&sample(&d, 6, 1), "lr"),
            [toml::Value::Float(0.000123456789)]
        );
    }

    #[test]
    fn zero_trials_is_empty() {
        assert!(sample(&axes(), 1, 0).is_empty());
        assert_eq!(sample(&[], 1, 3), vec![Vec::new(); 3]);
    }
}
