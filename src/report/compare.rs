//! Reports that make the choice: the best run of each value of a grid key side by side, class
//! by class (`--compare KEY`, or `--compare run:ID,ID,...`), and what a hyperparameter does
//! over the other axes (`--by KEY`). Built from a [`SweepReport`] and the store alone.
use serde_json::Value;

use super::{Ranking, ReportError, RunResult, Split, SweepReport};
use crate::store::{Reader, SplitMetrics, SweepRow};

/// The value of grid key (or dotted config path) `key` in a stored run config, as sweep files
/// and labels write it: `resnet18`, `0.001`, `frozen`. Keys a config leaves out at their
/// default read as that default (`transfer` scratch, `precision` fp32, `schedule` constant,
/// `balance` none).
pub fn config_value(config: &Value, key: &str) -> Option<String> {
    let shown = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_f64() => n.as_f64().map(|f| format!("{f}")),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    match key {
        "transfer" => Some(
            config
                .pointer("/transfer/mode")
                .and_then(Value::as_str)
                .unwrap_or("scratch")
                .to_string(),
        ),
        "balance" => Some(
            config
                .pointer("/balance/mode")
                .and_then(Value::as_str)
                .unwrap_or("none")
                .to_string(),
        ),
        "schedule" => Some(
            config
                .pointer("/schedule/name")
                .and_then(Value::as_str)
                .unwrap_or("constant")
                .to_string(),
        ),
        "precision" => Some(
            config
                .get("precision")
                .and_then(Value::as_str)
                .unwrap_or("fp32")
                .to_string(),
        ),
        "weight_decay" => config
            .pointer("/optimizer_settings/weight_decay")
            .and_then(shown),
        _ => config
            .pointer(&format!("/{}", key.replace('.', "/")))
            .and_then(shown),
    }
}

/// One compared run: the value it stands for, its result (with the test folder's metrics,
/// if any) and the validation metrics of its best epoch.
#[derive(Clone, Debug)]
pub struct Column {
    /// The key's value (or the run id, for named runs).
    pub value: String,
    pub result: RunResult,
    /// Validation metrics of its best epoch.
    pub val: SplitMetrics,
}

impl Column {
    /// The test folder's metrics of its kept weights, if the sweep has a test folder.
    pub fn test(&self) -> Option<&SplitMetrics> {
        self.result.test.as_ref()
    }
}

/// The runs compared side by side.
#[derive(Clone, Debug)]
pub struct Comparison {
    pub sweep: SweepRow,
    pub metric: Ranking,
    /// The key compared; `None` for named runs.
    pub key: Option<String>,
    pub columns: Vec<Column>,
    /// Values of the key whose runs have no finished epoch (not compared).
    pub missing: Vec<String>,
}

impl Comparison {
    /// The best run (by the report's metric) of each value of `key`, values in the order the
    /// sweep file expands them. Retired runs only stand in for a value no current run has.
    pub fn by_key(
        store: &dyn Reader,
        report: &SweepReport,
        key: &str,
    ) -> Result<Comparison, ReportError> {
        let values = key_values(report, report.runs.iter(), key)?;
        let mut columns = Vec::new();
        let mut missing = Vec::new();
        for value in values {
            // Runs are best first: the first scored run of this value is its best.
            let best = report.runs.iter().find(|r| {
                r.score(report.metric).is_some()
                    && config_value(&r.run.config, key).as_deref() == Some(value.as_str())
            });
            match best {
                Some(r) => columns.push(column(store, value, r.clone())?),
                None => missing.push(value),
            }
        }
        if columns.is_empty() {
            return Err(ReportError::NoEpochs(report.sweep.name.clone()));
        }
        Ok(Comparison {
            sweep: report.sweep.clone(),
            metric: report.metric,
            key: Some(key.to_string()),
            columns,
            missing,
        })
    }

    /// Named runs (ids or unique prefixes of at least 4 characters), in the order given.
    pub fn of_runs(
        store: &dyn Reader,
        report: &SweepReport,
        ids: &[&str],
    ) -> Result<Comparison, ReportError> {
        let mut columns = Vec::new();
        for id in ids {
            let r = super::find_run(report, id)?;
            if r.best_epoch().is_none() {
                return Err(ReportError::Usage(format!(
                    "run {} has no finished epoch to compare",
                    r.run.id
                )));
            }
            columns.push(column(store, r.run.id.clone(), r.clone())?);
        }
        Ok(Comparison {
            sweep: report.sweep.clone(),
            metric: report.metric,
            key: None,
            columns,
            missing: Vec::new(),
        })
    }

    /// Keeps the `n` best columns by the metric (`--top N`), in their order.
    pub fn keep_best(&mut self, n: usize) {
        let metric = self.metric;
        let mut order: Vec<usize> = (0..self.columns.len()).collect();
        // Stable: among equal scores the earlier column stays; unscored columns go last.
        let score = |i: usize| self.columns[i].result.score(metric);
        order.sort_by(|&a, &b| metric.order(score(a), score(b)));
        order.truncate(n);
        let mut i = 0;
        self.columns.retain(|_| {
            i += 1;
            order.contains(&(i - 1))
        });
    }

    /// Whether every compared run has test-folder metrics.
    pub fn has_test(&self) -> bool {
        self.columns.iter().all(|c| c.test().is_some())
    }

    /// The splits shown side by side (`--split`), each with one metrics per column: validation,
    /// then the test folder when every compared run has it.
    pub fn splits(&self) -> Vec<(Split, Vec<&SplitMetrics>)> {
        let mut out = Vec::new();
        if self.metric.shows(Split::Val) {
            out.push((Split::Val, self.columns.iter().map(|c| &c.val).collect()));
        }
        if self.metric.shows(Split::Test) && self.has_test() {
            let test = self.columns.iter().filter_map(|c| c.test()).collect();
            out.push((Split::Test, test));
        }
        out
    }
}

fn column(store: &dyn Reader, value: String, result: RunResult) -> Result<Column, ReportError> {
    let epoch = result
        .best_epoch()
        .map(|e| e.epoch)
        .ok_or_else(|| ReportError::NoEpochs(result.run.label.clone()))?;
    let val = store
        .split_metrics(&result.run.id, "val", epoch)?
        .ok_or_else(|| ReportError::NoEpochs(result.run.label.clone()))?;
    Ok(Column { value, result, val })
}

/// The values `key` takes in `runs`, in the order the sweep file expands them (by the lowest
/// run index that has each); an error naming the keys there are when no run has the key.
fn key_values<'a>(
    report: &SweepReport,
    runs: impl Iterator<Item = &'a RunResult>,
    key: &str,
) -> Result<Vec<String>, ReportError> {
    let mut values: Vec<(usize, String)> = Vec::new();
    for r in runs {
        let Some(v) = config_value(&r.run.config, key) else {
            continue;
        };
        match values.iter_mut().find(|(_, x)| *x == v) {
            Some(entry) => entry.0 = entry.0.min(r.run.index),
            None => values.push((r.run.index, v)),
        }
    }
    if values.is_empty() {
        return Err(ReportError::Usage(format!(
            "no run of sweep \"{}\" has a value for \"{}\"; {}",
            super::text::for_terminal(&report.sweep.name),
            super::text::for_terminal(key),
            known_keys()
        )));
    }
    values.sort();
    Ok(values.into_iter().map(|(_, v)| v).collect())
}

/// What a report's KEY may be, for the errors that name an unknown one.
pub(super) fn known_keys() -> String {
    format!(
        "use a grid key ({}) or a config path such as data.normalize",
        crate::sweep::GRID_KEYS.join(", ")
    )
}

/// For each class (in the first column's class order) the indexes of the columns with the
/// highest F1, ties included.
pub fn best_by_class(splits: &[&SplitMetrics]) -> Vec<Vec<usize>> {
    let classes = splits.first().map_or(0, |m| m.metrics.classes.len());
    (0..classes)
        .map(|k| {
            let f1: Vec<f64> = splits
                .iter()
                .map(|m| m.metrics.classes.get(k).map_or(f64::NAN, |c| c.f1))
                .collect();
            let top = f1.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (0..f1.len()).filter(|&i| f1[i] == top).collect()
        })
        .collect()
}

/// What one value of a key does over the other axes: the metric of its runs (each at its
/// best epoch).
#[derive(Clone, Debug, PartialEq)]
pub struct Effect {
    pub value: String,
    /// Runs with this value (finished epochs or not).
    pub runs: usize,
    /// Those with a score.
    pub scored: usize,
    pub best: Option<f64>,
    pub mean: Option<f64>,
    pub worst: Option<f64>,
    /// The id and label of the best run.
    pub best_run: Option<(String, String)>,
}

/// The marginal effect of `key`: per value, in the order the sweep expands them, the best,
/// mean and worst of the report's metric over the runs with that value. Retired runs are
/// left out.
pub fn effects(report: &SweepReport, key: &str) -> Result<Vec<Effect>, ReportError> {
    let metric = report.metric;
    let current = report.runs.iter().filter(|r| !r.run.retired);
    Ok(key_values(report, current, key)?
        .into_iter()
        .map(|value| {
            let runs: Vec<&RunResult> = report
                .runs
                .iter()
                .filter(|r| {
                    !r.run.retired
                        && config_value(&r.run.config, key).as_deref() == Some(value.as_str())
                })
                .collect();
            // Best first, as the report ranks them.
            let scores: Vec<(f64, &RunResult)> = runs
                .iter()
                .filter_map(|r| r.score(metric).map(|s| (s, *r)))
                .collect();
            let n = scores.len();
            let mean = (n > 0).then(|| scores.iter().map(|(s, _)| s).sum::<f64>() / n as f64);
            Effect {
                value,
                runs: runs.len(),
                scored: n,
                best: scores.first().map(|(s, _)| *s),
                mean,
                worst: scores.last().map(|(s, _)| *s),
                best_run: scores
                    .first()
                    .map(|(_, r)| (r.run.id.clone(), r.run.label.clone())),
            }
        })
        .collect())
}
