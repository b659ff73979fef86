//! One training epoch's images under class balance: `targets[c]` images of class `c`, as
//! [`crate::run::balance::epoch_counts`] decides, drawn from the training split and shuffled,
//! deterministically from the epoch's rng.
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// Indices into the training split for one epoch, in training order: each class's images
/// as often as `targets` asks (whole passes over the class, then a random part of one more;
/// fewer than the class has: a random subset), all shuffled together.
pub fn balanced_order(labels: &[u32], targets: &[usize], rng: &mut StdRng) -> Vec<usize> {
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); targets.len()];
    for (i, &l) in labels.iter().enumerate() {
        if let Some(c) = by_class.get_mut(l as usize) {
            c.push(i);
        }
    }
    let mut order = Vec::with_capacity(targets.iter().sum());
    for (images, &target) in by_class.iter_mut().zip(targets) {
        if images.is_empty() {
            continue;
        }
        for _ in 0..target / images.len() {
            order.extend_from_slice(images);
        }
        images.shuffle(rng);
        order.extend_from_slice(&images[..target % images.len()]);
    }
    order.shuffle(rng);
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn per_class(order: &[usize], labels: &[u32], k: usize) -> Vec<usize> {
        let mut n = vec![0; k];
        for &i in order {
            n[labels[i] as usize] += 1;
        }
        n
    }

    #[test]
    fn draws_each_class_as_often_as_asked() {
        // Class 0: 10 images, class 1: 3, class 2: none.
        let labels: Vec<u32> = [vec![0; 10], vec![1; 3]].concat();
        let mut rng = StdRng::seed_from_u64(7);
        let order = balanced_order(&labels, &[4, 8, 5], &mut rng);
        assert_eq!(per_class(&order, &labels, 3), [4, 8, 0]);
        // Undersampled: distinct images. Oversampled: every image twice, two of them thrice.
        let mut zeros: Vec<usize> = order.iter().copied().filter(|&i| i < 10).collect();
        zeros.sort();
        zeros.dedup();
        assert_eq!(zeros.len(), 4);
        let times = |i: usize| order.iter().filter(|&&j| j == i).count();
        let mut ones: Vec<usize> = (10..13).map(times).collect();
        ones.sort();
        assert_eq!(ones, [2, 3, 3]);
        // The same rng state gives the same epoch; another gives another.
        let again = balanced_order(&labels, &[4, 8, 5], &mut StdRng::seed_from_u64(7));
        assert_eq!(order, again);
        let other = balanced_order(&labels, &[4, 8, 5], &mut StdRng::seed_from_u64(8));
        assert_ne!(order, other);
    }
}
