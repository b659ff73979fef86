//! Classification metrics from a confusion matrix: per-class precision, recall, F1, support
//! and their macro / weighted averages, computed the way scikit-learn's
//! `classification_report` does (a 0/0 ratio counts as 0, sklearn's `zero_division=0`).
use serde::{Deserialize, Serialize};

/// Counts of (true class, predicted class); rows are true classes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    pub matrix: Vec<Vec<u64>>,
}

impl Confusion {
    pub fn new(classes: usize) -> Self {
        Confusion {
            matrix: vec![vec![0; classes]; classes],
        }
    }

    pub fn classes(&self) -> usize {
        self.matrix.len()
    }

    pub fn add(&mut self, truth: usize, predicted: usize) {
        self.matrix[truth][predicted] += 1;
    }

    pub fn total(&self) -> u64 {
        self.matrix.iter().flatten().sum()
    }

    pub fn correct(&self) -> u64 {
        (0..self.classes()).map(|i| self.matrix[i][i]).sum()
    }
}

/// One class's row of the classwise table. `recall` is the users' "classwise accuracy".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
}

/// Everything a report needs about one evaluation of one split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub classes: Vec<ClassMetrics>,
    pub accuracy: f64,
    pub macro_precision: f64,
    pub macro_recall: f64,
    pub macro_f1: f64,
    pub weighted_precision: f64,
    pub weighted_recall: f64,
    pub weighted_f1: f64,
    pub support: u64,
}

fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

impl Metrics {
    pub fn from_confusion(c: &Confusion) -> Metrics {
        let n = c.classes();
        let classes: Vec<ClassMetrics> = (0..n)
            .map(|k| {
                let tp = c.matrix[k][k] as f64;
                let support: u64 = c.matrix[k].iter().sum();
                let predicted: u64 = (0..n).map(|t| c.matrix[t][k]).sum();
                let precision = ratio(tp, predicted as f64);
                let recall = ratio(tp, support as f64);
                let f1 = ratio(2.0 * precision * recall, precision + recall);
                ClassMetrics {
                    precision,
                    recall,
                    f1,
                    support,
                }
            })
            .collect();
        let total = c.total();
        let mean = |f: fn(&ClassMetrics) -> f64| ratio(classes.iter().map(f).sum(), n as f64);
        let weighted = |f: fn(&ClassMetrics) -> f64| {
            ratio(
                classes.iter().map(|m| f(m) * m.support as f64).sum(),
                total as f64,
            )
        };
        Metrics {
            accuracy: ratio(c.correct() as f64, total as f64),
            macro_precision: mean(|m| m.precision),
            macro_recall: mean(|m| m.recall),
            macro_f1: mean(|m| m.f1),
            weighted_precision: weighted(|m| m.precision),
            weighted_recall: weighted(|m| m.recall),
            weighted_f1: weighted(|m| m.f1),
            support: total,
            classes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn confusion(truth: &[usize], pred: &[usize], classes: usize) -> Confusion {
        let mut c = Confusion::new(classes);
        for (&t, &p) in truth.iter().zip(pred) {
            c.add(t, p);
        }
        c
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    /// Reference values from scikit-learn 1.9.1 (PyPI, 2026-11-22):
    /// ```python
    /// from sklearn.metrics import precision_recall_fscore_support, accuracy_score
    /// y_true = [0,0,0,0,1,1,1,2,2,2,2,2,3,3]
    /// y_pred = [0,0,1,2,1,1,0,2,2,2,1,0,1,0]
    /// for avg in (None, "macro", "weighted"):
    ///     print(precision_recall_fscore_support(y_true, y_pred, average=avg, zero_division=0))
    /// print(accuracy_score(y_true, y_pred))
    /// ```
    /// Class 3 is never predicted (precision 0/0 -> 0) and has no correct prediction.
    #[test]
    fn matches_scikit_learn_classification_report() {
        let t = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3];
        let p = [0, 0, 1, 2, 1, 1, 0, 2, 2, 2, 1, 0, 1, 0];
        let m = Metrics::from_confusion(&confusion(&t, &p, 4));
        let sk_precision = [SK_P0, SK_P1, SK_P2, SK_P3];
        let sk_recall = [SK_R0, SK_R1, SK_R2, SK_R3];
        let sk_f1 = [SK_F0, SK_F1, SK_F2, SK_F3];
        let support = [4, 3, 5, 2];
        for k in 0..4 {
            close(m.classes[k].precision, sk_precision[k]);
            close(m.classes[k].recall, sk_recall[k]);
            close(m.classes[k].f1, sk_f1[k]);
            assert_eq!(m.classes[k].support, support[k]);
        }
        close(m.accuracy, SK_ACCURACY);
        close(m.macro_precision, SK_MACRO_P);
        close(m.macro_recall, SK_MACRO_R);
        close(m.macro_f1, SK_MACRO_F1);
        close(m.weighted_precision, SK_WEIGHTED_P);
        close(m.weighted_recall, SK_WEIGHTED_R);
        close(m.weighted_f1, SK_WEIGHTED_F1);
        assert_eq!(m.support, 14);
    }

    #[test]
    fn perfect_predictions_give_ones() {
        let t = [0, 1, 2, 2];
        let m = Metrics::from_confusion(&confusion(&t, &t, 3));
        assert_eq!(m.accuracy, 1.0);
        assert_eq!(m.macro_f1, 1.0);
        assert_eq!(m.weighted_f1, 1.0);
    }

    #[test]
    fn empty_confusion_is_all_zero_not_nan() {
        let m = Metrics::from_confusion(&Confusion::new(3));
        assert_eq!(m.accuracy, 0.0);
        assert!(m.classes.iter().all(|c| c.f1 == 0.0 && c.precision == 0.0));
    }

    // Printed by the script above (scikit-learn 1.9.1).
    const SK_P0: f64 = 0.4;
    const SK_R0: f64 = 0.5;
    const SK_F0: f64 = 0.4444444444444444;
    const SK_P1: f64 = 0.4;
    const SK_R1: f64 = 0.6666666666666666;
    const SK_F1: f64 = 0.5;
    const SK_P2: f64 = 0.75;
    const SK_R2: f64 = 0.6;
    const SK_F2: f64 = 0.6666666666666666;
    const SK_P3: f64 = 0.0;
    const SK_R3: f64 = 0.0;
    const SK_F3: f64 = 0.0;
    const SK_MACRO_P: f64 = 0.3875;
    const SK_MACRO_R: f64 = 0.44166666666666665;
    const SK_MACRO_F1: f64 = 0.4027777777777778;
    const SK_WEIGHTED_P: f64 = 0.4678571428571429;
    const SK_WEIGHTED_R: f64 = 0.5;
    const SK_WEIGHTED_F1: f64 = 0.4722222222222222;
    const SK_ACCURACY: f64 = 0.5;
}
