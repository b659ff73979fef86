//! Grid expansion: the cartesian product of the `[grid]` lists, in a pinned order.
//!
//! Runs are nested loops over the gridded keys in the order of [`GRID_KEYS`] (the first key is
//! the outermost loop), each key's values in the order written. The order does not depend on
//! how keys are ordered in the file, so run numbers are stable.
use super::{Hyper, Sweep};
use crate::run::{BackboneName, RunConfig, RunSpec};
use crate::search::{random, Domain};

/// Keys that may be fixed (in `[train]`, or `seed` at the top level) or gridded (in `[grid]`),
/// in expansion order.
pub const GRID_KEYS: [&str; 14] = [
    "backbone",
    "width",
    "transfer",
    "precision",
    "optimizer",
    "lr",
    "schedule",
    "batch_size",
    "weight_decay",
    "label_smoothing",
    "augment",
    "balance",
    "epochs",
    "seed",
];

/// Most runs a sweep may have (a grid's product, or random search's trials): more would not
/// train in anyone's lifetime, and expanding them would hang `validate` and `plan`.
pub const MAX_RUNS: usize = 100_000;

/// Short label parts: gridded keys are shown as `key=value` except the self-explaining ones.
fn label_part(key: &str, value: &str) -> String {
    match key {
        "backbone" | "optimizer" | "transfer" | "schedule" => value.to_string(),
        "batch_size" => format!("bs={value}"),
        "augment" => format!("aug={value}"),
        _ => format!("{key}={value}"),
    }
}

pub(super) fn expand(sweep: &Sweep) -> Vec<RunSpec> {
    let total: usize = sweep.axes.iter().map(|(_, v)| v.len()).product();
    (0..total)
        .map(|n| {
            // Mixed-radix digits of n, last axis fastest.
            let mut rest = n;
            let mut picks = vec![0; sweep.axes.len()];
            for (i, (_, values)) in sweep.axes.iter().enumerate().rev() {
                picks[i] = rest % values.len();
                rest /= values.len();
            }
            let values = sweep
                .axes
                .iter()
                .zip(&picks)
                .map(|((key, values), &pick)| (*key, &values[pick]));
            run_spec(sweep, n + 1, values)
        })
        .collect()
}

/// Random search: `trials` draws from the `[grid]` lists and distributions, in the order of
/// [`GRID_KEYS`]. A draw that repeats an earlier run is left out (its id would be the same).
pub(super) fn sample(sweep: &Sweep, trials: usize, seed: u64) -> Vec<RunSpec> {
    let mut space: Vec<(String, Domain)> = sweep
        .axes
        .iter()
        .map(|(k, v)| (k.to_string(), Domain::Choice(v.clone())))
        .chain(
            sweep
                .distributions
                .iter()
                .map(|(k, d)| (k.to_string(), d.clone())),
        )
        .collect();
    space.sort_by_key(|(k, _)| GRID_KEYS.iter().position(|g| g == k));
    let mut seen = std::collections::HashSet::new();
    random::sample(&space, seed, trials)
        .into_iter()
        .enumerate()
        .map(|(t, draw)| {
            let values = draw.iter().filter_map(|(k, v)| {
                let key = GRID_KEYS.iter().find(|g| **g == k.as_str())?;
                Some((*key, v))
            });
            run_spec(sweep, t + 1, values)
        })
        .filter(|r| seen.insert(r.id.clone()))
        .collect()
}

/// The run made of the sweep's fixed values and `values` of gridded keys.
fn run_spec<'a>(
    sweep: &Sweep,
    index: usize,
    values: impl Iterator<Item = (&'static str, &'a toml::Value)>,
) -> RunSpec {
    let mut hyper = sweep.fixed.clone();
    let mut label = Vec::new();
    for (key, value) in values {
        // Values were checked when the sweep was parsed (drawn ones lie between checked ends).
        let _ = hyper.set(key, value);
        label.push(label_part(key, &hyper.show(key)));
    }
    let config = run_config(sweep, &hyper);
    RunSpec {
        cost: cost(&hyper, &config),
        index,
        id: RunSpec::id_for(&sweep.name, &config),
        label: if label.is_empty() {
            "single run".into()
        } else {
            label.join(" ")
        },
        config,
    }
}

fn run_config(sweep: &Sweep, h: &Hyper) -> RunConfig {
    use crate::run::OptimizerConfig;
    let mut optimizer_settings = sweep.optimizers[&h.optimizer].clone();
    match &mut optimizer_settings {
        OptimizerConfig::Sgd { weight_decay, .. } | OptimizerConfig::Adam { weight_decay, .. } => {
            *weight_decay = h.weight_decay
        }
    }
    let transfer = sweep
        .transfer
        .for_run(h.transfer, h.backbone, h.epochs, h.lr);
    // Weights come with their preprocessing, unless the sweep sets `normalize`.
    let normalize = match (&transfer, sweep.normalize_set) {
        (Some(_), false) => sweep
            .transfer
            .normalize
            .get(h.backbone.name())
            .copied()
            .unwrap_or_else(|| h.backbone.normalize()),
        _ => sweep.data.normalize,
    };
    RunConfig {
        backbone: BackboneName::new(h.backbone.name()),
        width: h.width.unwrap_or_else(|| h.backbone.default_width()),
        optimizer: h.optimizer.clone(),
        optimizer_settings,
        lr: h.lr,
        batch_size: h.batch_size,
        label_smoothing: h.label_smoothing,
        augment: h.augment.clone(),
        augment_settings: sweep.augments.get(&h.augment).cloned().unwrap_or_default(),
        epochs: h.epochs,
        seed: h.seed,
        precision: h.precision,
        train: sweep.settings.clone(),
        data: crate::data::DataSpec {
            seed: h.seed,
            normalize,
            ..sweep.data.clone()
        },
        fake: sweep.fake.clone(),
        transfer,
        schedule: (h.schedule != "constant")
            .then(|| sweep.schedules.get(&h.schedule).cloned())
            .flatten(),
        balance: crate::run::Balance::parse(&h.balance, sweep.balance.clip)
            .ok()
            .flatten(),
        augment_classes: sweep.balance.augment_classes.clone(),
    }
}

/// Estimated relative cost: epochs times the backbone's declared cost per epoch, scaled by
/// the square of the width relative to its default (convolutions cost width-in times
/// width-out).
fn cost(h: &Hyper, c: &RunConfig) -> f64 {
    let width = c.width as f64 / h.backbone.default_width() as f64;
    c.epochs as f64 * h.backbone.cost() * width.powi(2)
}
