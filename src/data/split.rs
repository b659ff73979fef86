//! Deterministic stratified train/validation split and per-epoch shuffling.
//!
//! Each class is split on its own: its images (sorted by path) are shuffled with an
//! `StdRng` seeded from the sweep seed mixed with a hash of the class *name*, and the first
//! `round(count * val_split)` go to validation. Seeding by name keeps a class's split
//! unchanged when other classes gain or lose images. When `val_split > 0` and a class has
//! at least 2 images, validation gets at least 1 and train keeps at least 1; a class with a
//! single image stays entirely in train.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// Number of a class's `count` images that go to validation.
pub(crate) fn val_count(count: usize, val_split: f64) -> usize {
    if val_split <= 0.0 || count < 2 {
        return 0;
    }
    let n = (count as f64 * val_split).round() as usize;
    n.clamp(1, count - 1)
}

/// FNV-1a, 64 bit: a stable hash of a class name (std's hasher may change between releases).
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Splits the indices `0..count` of one class into (train, val), each sorted ascending.
pub(crate) fn split_class(
    class: &str,
    count: usize,
    val_split: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..count).collect();
    let mut rng = StdRng::seed_from_u64(seed ^ fnv1a(class));
    order.shuffle(&mut rng);
    let n_val = val_count(count, val_split);
    let mut val = order[..n_val].to_vec();
    let mut train = order[n_val..].to_vec();
    val.sort_unstable();
    train.sort_unstable();
    (train, val)
}

/// Shuffled order of `0..n` for one epoch, deterministic from the rng.
pub fn epoch_order(n: usize, rng: &mut StdRng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn val_counts_round_and_keep_both_sides_non_empty() {
        assert_eq!(val_count(100, 0.0), 0);
        assert_eq!(val_count(100, 0.2), 20);
        assert_eq!(val_count(10, 0.25), 3); // 2.5 rounds half away from zero
        assert_eq!(val_count(5, 0.01), 1); // at least one
        assert_eq!(val_count(2, 0.9), 1); // train keeps one
        assert_eq!(val_count(1, 0.5), 0); // a single image stays in train
        assert_eq!(val_count(0, 0.5), 0);
    }

    #[test]
    fn class_split_is_deterministic_disjoint_and_complete() {
        let (t1, v1) = split_class("cat", 50, 0.2, 7);
        let (t2, v2) = split_class("cat", 50, 0.2, 7);
        assert_eq!((&t1, &v1), (&t2, &v2));
        assert_eq!((t1.len(), v1.len()), (40, 10));
        let mut all: Vec<_> = t1.iter().chain(&v1).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..50).collect::<Vec<_>>());
        let (_, v3) = split_class("cat", 50, 0.2, 8);
        assert_ne!(v1, v3, "another seed gives another split");
        let (_, v4) = split_class("dog", 50, 0.2, 7);
        assert_ne!(v1, v4, "classes are shuffled independently");
    }

    #[test]
    fn epoch_order_is_a_seeded_permutation() {
        let a = epoch_order(20, &mut StdRng::seed_from_u64(1));
        let b = epoch_order(20, &mut StdRng::seed_from_u64(1));
        let c = epoch_order(20, &mut StdRng::seed_from_u64(2));
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut s = a.clone();
        s.sort_unstable();
        assert_eq!(s, (0..20).collect::<Vec<_>>());
        assert!(epoch_order(0, &mut StdRng::seed_from_u64(1)).is_empty());
    }
}
