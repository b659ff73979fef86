//! Learning-rate schedules (grid key `schedule`): the rate of every batch as a pure function
//! of the step, with PyTorch's formulas (`torch.optim.lr_scheduler`). A schedule runs over one
//! phase (a whole run, or each of two_phase's two), counting batches from the phase's first;
//! reduce-on-plateau multiplies whatever it gives.
use serde::{Deserialize, Serialize};

/// A schedule and its settings, as `[schedule.NAME]` tables set them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum Schedule {
    /// The rate stays (only reduce-on-plateau changes it).
    Constant,
    /// `StepLR`: times `gamma` every `step_size` epochs.
    Step { step_size: usize, gamma: f64 },
    /// `LinearLR` warmup from `warmup_start` times the rate over `warmup_epochs`, then
    /// `CosineAnnealingLR` towards `min_lr` over the rest of the phase (`SequentialLR`).
    Cosine {
        warmup_epochs: usize,
        warmup_start: f64,
        min_lr: f64,
    },
    /// `CyclicLR`, mode `triangular`: from `base_lr` up to `max_lr` over `step_epochs` epochs
    /// and back, again and again. `max_lr` defaults to the run's `lr`, `base_lr` to a tenth of
    /// it.
    Cyclic {
        base_lr: Option<f64>,
        max_lr: Option<f64>,
        step_epochs: f64,
    },
    /// `OneCycleLR` (cosine annealing, two phases): from `lr / div_factor` up to the run's
    /// `lr` over the first `pct_start` of the steps, then down to
    /// `lr / (div_factor * final_div_factor)`.
    OneCycle {
        pct_start: f64,
        div_factor: f64,
        final_div_factor: f64,
    },
}

/// The names a sweep file may give, as `schedule = "..."` takes them.
pub const SCHEDULES: [&str; 5] = ["constant", "step", "cosine", "cyclic", "one_cycle"];

/// Where a batch is within its phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// Batches before this one in the phase (0 for its first).
    pub step: usize,
    /// Batches per epoch.
    pub per_epoch: usize,
    /// Batches in the whole phase (its epochs times `per_epoch`).
    pub total: usize,
}

impl Schedule {
    pub fn name(&self) -> &'static str {
        match self {
            Schedule::Constant => "constant",
            Schedule::Step { .. } => "step",
            Schedule::Cosine { .. } => "cosine",
            Schedule::Cyclic { .. } => "cyclic",
            Schedule::OneCycle { .. } => "one_cycle",
        }
    }

    /// The settings a schedule has when its table leaves them out (PyTorch's defaults where
    /// it has them; `step_size` 10 and `gamma` 0.1 as in its examples).
    pub fn default_for(name: &str) -> Option<Schedule> {
        Some(match name {
            "constant" => Schedule::Constant,
            "step" => Schedule::Step {
                step_size: 10,
                gamma: 0.1,
            },
            "cosine" => Schedule::Cosine {
                warmup_epochs: 0,
                warmup_start: 0.01,
                min_lr: 0.0,
            },
            "cyclic" => Schedule::Cyclic {
                base_lr: None,
                max_lr: None,
                step_epochs: 2.0,
            },
            "one_cycle" => Schedule::OneCycle {
                pct_start: 0.3,
                div_factor: 25.0,
                final_div_factor: 1e4,
            },
            _ => return None,
        })
    }

    /// The rate of the batch at `at`, for a run whose `lr` is `lr`.
    pub fn lr(&self, lr: f64, at: Step) -> f64 {
        let t = at.step as f64;
        let per_epoch = at.per_epoch.max(1);
        match *self {
            Schedule::Constant => lr,
            Schedule::Step { step_size, gamma } => {
                let epoch = at.step / per_epoch;
                lr * gamma.powi((epoch / step_size.max(1)) as i32)
            }
            Schedule::Cosine {
                warmup_epochs,
                warmup_start,
                min_lr,
            } => {
                let warmup = (warmup_epochs * per_epoch).min(at.total);
                if at.step < warmup {
                    // LinearLR(start_factor = warmup_start, end_factor = 1, total_iters = warmup)
                    lr * (warmup_start + (1.0 - warmup_start) * t / warmup as f64)
                } else {
                    // CosineAnnealingLR(T_max = the phase's batches after warmup,
                    // eta_min = min_lr), as `T_max = epochs * len(loader)` is written.
                    let span = at.total.saturating_sub(warmup).max(1) as f64;
                    let done = (at.step - warmup) as f64;
                    min_lr
                        + (lr - min_lr) * (1.0 + (std::f64::consts::PI * done / span).cos()) / 2.0
                }
            }
            Schedule::Cyclic {
                base_lr,
                max_lr,
                step_epochs,
            } => {
                let max_lr = max_lr.unwrap_or(lr);
                let base_lr = base_lr.unwrap_or(max_lr / 10.0);
                let size = (step_epochs * per_epoch as f64).max(1.0);
                let cycle = (1.0 + t / (2.0 * size)).floor();
                let x = (t / size - 2.0 * cycle + 1.0).abs();
                base_lr + (max_lr - base_lr) * (1.0 - x).max(0.0)
            }
            Schedule::OneCycle {
                pct_start,
                div_factor,
                final_div_factor,
            } => {
                let initial = lr / div_factor;
                let min = initial / final_div_factor;
                let up_end = pct_start * at.total as f64 - 1.0;
                let down_end = at.total as f64 - 1.0;
                let anneal = |start: f64, end: f64, pct: f64| {
                    end + (start - end) / 2.0 * ((std::f64::consts::PI * pct).cos() + 1.0)
                };
                if t <= up_end {
                    anneal(initial, lr, t / up_end.max(f64::MIN_POSITIVE))
                } else {
                    let pct = (t - up_end) / (down_end - up_end).max(f64::MIN_POSITIVE);
                    anneal(lr, min, pct.min(1.0))
                }
            }
        }
    }

    /// What is wrong with the settings, as (setting, problem) pairs for the sweep file's
    /// errors; empty when they are fine.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let positive: Vec<(&'static str, f64)> = match *self {
            Schedule::Constant => vec![],
            Schedule::Step { step_size, gamma } => {
                vec![("step_size", step_size as f64), ("gamma", gamma)]
            }
            Schedule::Cosine { warmup_start, .. } => vec![("warmup_start", warmup_start)],
            Schedule::Cyclic {
                base_lr,
                max_lr,
                step_epochs,
            } => {
                let mut v = vec![("step_epochs", step_epochs)];
                v.extend(base_lr.map(|b| ("base_lr", b)));
                v.extend(max_lr.map(|m| ("max_lr", m)));
                v
            }
            Schedule::OneCycle {
                div_factor,
                final_div_factor,
                ..
            } => vec![
                ("div_factor", div_factor),
                ("final_div_factor", final_div_factor),
            ],
        };
        for (key, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                out.push((key, format!("must be a number above 0, got {v}")));
            }
        }
        match *self {
            Schedule::Cosine { min_lr, .. } if !(min_lr.is_finite() && min_lr >= 0.0) => {
                out.push(("min_lr", format!("must be 0 or above, got {min_lr}")));
            }
            Schedule::Cyclic {
                base_lr: Some(b),
                max_lr: Some(m),
                ..
            } if b > m => out.push((
                "base_lr",
                format!("{b} is above max_lr {m}; the cycle goes from base_lr up to max_lr"),
            )),
            Schedule::OneCycle { pct_start, .. } if !(pct_start > 0.0 && pct_start < 1.0) => {
                out.push((
                    "pct_start",
                    format!("must be between 0 and 1, got {pct_start}"),
                ));
            }
            _ => {}
        }
        out
    }
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
