//! Reports, made from the database alone: one row per run (best first), or the best run's
//! config and classwise table, as terminal tables, Markdown or JSON. Names from outside pass
//! through [`text`] on their way into tables and Markdown.
pub mod bars;
pub mod compare;
#[cfg(test)]
mod compare_tests;
pub mod csv;
#[cfg(test)]
mod hostile_tests;
pub mod html;
mod json;
pub mod plot;
mod table;
pub mod text;

use serde::Serialize;

use crate::run::{EpochSummary, Monitor};
use crate::store::{EpochRow, Reader, RunRow, SplitMetrics, SweepRow};

pub use compare::{Comparison, Effect};
pub use json::{best_json, compare_json, effects_json, run_json, runs_json, to_json_string};
pub use table::{best_table, compare_table, effects_table, run_table, runs_table, TableStyle};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The sweep's name, shown with its control characters escaped (it comes from a file).
    #[error("no run of sweep \"{}\" has a finished epoch yet: wait for `sweep run` or check `sweep report` for failures", text::for_terminal(.0))]
    NoEpochs(String),
    /// A report asked for something the sweep does not have (a key, a run id).
    #[error("{0}")]
    Usage(String),
}

/// The two splits a report shows: the validation folder (every epoch) and the test folder
/// (the kept weights, once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Val,
    Test,
    /// The test folder with test-time augmentation (`[train] tta`), shown with the test's.
    TestTta,
    /// Validation and test of the SWA average (`[train] swa`).
    ValSwa,
    TestSwa,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Val => "val",
            Split::Test => "test",
            Split::TestTta => "test_tta",
            Split::ValSwa => "val_swa",
            Split::TestSwa => "test_swa",
        }
    }

    /// The folder the evaluation is of: validation or test (TTA and SWA evaluations are of
    /// one of those).
    pub fn folder(self) -> Split {
        match self {
            Split::Val | Split::ValSwa => Split::Val,
            Split::Test | Split::TestTta | Split::TestSwa => Split::Test,
        }
    }

    /// The split as section titles name it.
    pub fn title(self) -> &'static str {
        match self {
            Split::Val => "validation",
            Split::Test => "test",
            Split::TestTta => "test, with test-time augmentation",
            Split::ValSwa => "validation, SWA average",
            Split::TestSwa => "test, SWA average",
        }
    }
}

/// How a report ranks runs and which splits it shows (`--metric`, `--split`). Each run's best
/// epoch is always chosen by `monitor` on validation (the test folder is evaluated once, on
/// the kept weights); `--split test` then ranks runs by the test folder's value of the same
/// metric and shows only the test folder's tables, `--split val` only validation's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ranking {
    pub monitor: Monitor,
    /// `None`: rank on validation, show both splits.
    pub split: Option<Split>,
}

impl From<Monitor> for Ranking {
    fn from(monitor: Monitor) -> Ranking {
        Ranking {
            monitor,
            split: None,
        }
    }
}

impl Ranking {
    /// `monitor` read on `split`; the test folder has no training metrics.
    pub fn new(monitor: Monitor, split: Option<Split>) -> Result<Ranking, ReportError> {
        let ranking = Ranking { monitor, split };
        if split == Some(Split::Test) && matches!(monitor, Monitor::TrainLoss | Monitor::TrainAcc) {
            return Err(ReportError::Usage(format!(
                "--split test ranks by the test folder's value of the metric, and --metric {} has none there: use val_macro_f1, val_acc, val_weighted_f1 or val_loss",
                monitor.name()
            )));
        }
        Ok(ranking)
    }

    /// The split runs are ranked on.
    pub fn split(self) -> Split {
        self.split.unwrap_or(Split::Val)
    }

    /// The metric as the reports name it: `val_macro_f1`, or `test_macro_f1` with `--split test`.
    pub fn name(self) -> &'static str {
        match (self.on_test(), self.monitor) {
            (true, Monitor::ValMacroF1) => "test_macro_f1",
            (true, Monitor::ValAcc) => "test_acc",
            (true, Monitor::ValWeightedF1) => "test_weighted_f1",
            (true, Monitor::ValLoss) => "test_loss",
            (_, m) => m.name(),
        }
    }

    pub fn lower_is_better(self) -> bool {
        self.monitor.lower_is_better()
    }

    /// Better scores first; runs without one last.
    pub fn order(self, a: Option<f64>, b: Option<f64>) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        match (a, b) {
            (Some(x), Some(y)) if self.lower_is_better() => x.total_cmp(&y),
            (Some(x), Some(y)) => y.total_cmp(&x),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        }
    }

    /// Whether runs are ranked on the test folder (`--split test`).
    pub fn on_test(self) -> bool {
        self.split().folder() == Split::Test
    }

    /// Whether the reports show `split`'s tables.
    pub fn shows(self, split: Split) -> bool {
        self.split.is_none_or(|s| s.folder() == split.folder())
    }
}

/// One run and its best epoch by the report's metric.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// The name of the sweep it belongs to.
    pub sweep: String,
    pub run: RunRow,
    pub epochs: Vec<EpochRow>,
    /// Index into `epochs` of the best epoch by the metric.
    pub best: Option<usize>,
    pub test: Option<SplitMetrics>,
}

impl RunResult {
    pub fn best_epoch(&self) -> Option<&EpochRow> {
        self.best.map(|i| &self.epochs[i])
    }

    /// The best epoch as tables show it: `7`, or `7 (finetune)` when transfer learning
    /// trained it; `-` before the first epoch.
    pub fn best_epoch_text(&self) -> String {
        match self.best_epoch() {
            Some(e) if !e.phase.is_scratch() => format!("{} ({})", e.epoch, e.phase.name()),
            Some(e) => e.epoch.to_string(),
            None => "-".into(),
        }
    }

    /// The phases the run trained in (transfer learning), each with its first and last
    /// epoch; empty for a run that only trained from scratch.
    pub fn phases(&self) -> Vec<(crate::run::Phase, usize, usize)> {
        let mut spans: Vec<(crate::run::Phase, usize, usize)> = Vec::new();
        for e in &self.epochs {
            match spans.last_mut() {
                Some(last) if last.0 == e.phase => last.2 = e.epoch,
                _ => spans.push((e.phase, e.epoch, e.epoch)),
            }
        }
        if spans.iter().all(|s| s.0.is_scratch()) {
            spans.clear();
        }
        spans
    }

    /// The phases as one line: `frozen 1-2, finetune 3-6`.
    pub fn phases_line(&self) -> Option<String> {
        let spans = self.phases();
        (!spans.is_empty()).then(|| {
            spans
                .iter()
                .map(|(p, a, b)| match a == b {
                    true => format!("{} {a}", p.name()),
                    false => format!("{} {a}-{b}", p.name()),
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
    }

    /// The ranking's metric at the best epoch (on validation), or on the test folder's
    /// evaluation of the kept weights with `--split test`; `None` where there is none.
    pub fn score(&self, metric: impl Into<Ranking>) -> Option<f64> {
        let metric = metric.into();
        let best = self.best_epoch()?;
        let value = match metric.on_test() {
            false => Some(metric.monitor.value(&summary(best))),
            true => {
                let t = self.test.as_ref()?;
                match metric.monitor {
                    Monitor::ValMacroF1 => Some(t.metrics.macro_f1),
                    Monitor::ValAcc => Some(t.metrics.accuracy),
                    Monitor::ValWeightedF1 => Some(t.metrics.weighted_f1),
                    Monitor::ValLoss => t.loss,
                    Monitor::TrainLoss | Monitor::TrainAcc => None,
                }
            }
        };
        value.filter(|v| !v.is_nan())
    }
}

/// The stored epoch as the strategies see it (a missing value is NaN).
pub fn summary(e: &EpochRow) -> EpochSummary {
    let nan = f64::NAN;
    EpochSummary {
        epoch: e.epoch,
        phase: e.phase,
        lr: e.lr,
        train_loss: e.train_loss.unwrap_or(nan),
        train_acc: e.train_acc.unwrap_or(nan),
        val_loss: e.val_loss.unwrap_or(nan),
        val_acc: e.val_acc.unwrap_or(nan),
        val_macro_f1: e.val_macro_f1.unwrap_or(nan),
        val_weighted_f1: e.val_weighted_f1.unwrap_or(nan),
    }
}

/// Which sweeps a report covers (`--sweep`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sweeps<'a> {
    /// The one run most recently.
    Latest,
    Named(&'a str),
    /// Every sweep in the store (`--sweep all`): runs from several sweeps ranked together.
    All,
}

impl<'a> Sweeps<'a> {
    /// `--sweep NAME|all`.
    pub fn from_arg(arg: Option<&'a str>) -> Sweeps<'a> {
        match arg {
            None => Sweeps::Latest,
            Some("all") => Sweeps::All,
            Some(name) => Sweeps::Named(name),
        }
    }
}

/// The name a report over every sweep goes by (headers, `reports/all/`).
pub const ALL_SWEEPS: &str = "all";

/// All runs of a sweep (or of every sweep), best first by `metric`; runs without a usable
/// epoch come last.
#[derive(Clone, Debug)]
pub struct SweepReport {
    /// The sweep; for `--sweep all`, one named [`ALL_SWEEPS`] standing for them all.
    pub sweep: SweepRow,
    /// Whether the runs come from several sweeps (`--sweep all`): tables then name each run's.
    pub several: bool,
    pub metric: Ranking,
    pub runs: Vec<RunResult>,
}

impl SweepReport {
    pub fn load(
        store: &dyn Reader,
        sweeps: Sweeps,
        metric: impl Into<Ranking>,
    ) -> Result<SweepReport, ReportError> {
        let metric = metric.into();
        let (sweep, several, mut runs) = match sweeps {
            Sweeps::All => {
                let all = store.sweeps()?;
                let mut runs = Vec::new();
                for s in &all {
                    runs.extend(Self::runs_of(store, s, metric)?);
                }
                let sweep = SweepRow {
                    id: -1,
                    name: ALL_SWEEPS.into(),
                    file: all
                        .iter()
                        .map(|s| s.file.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    updated_at: all
                        .iter()
                        .map(|s| s.updated_at.clone())
                        .max()
                        .unwrap_or_default(),
                };
                (sweep, all.len() > 1, runs)
            }
            Sweeps::Latest | Sweeps::Named(_) => {
                let name = match sweeps {
                    Sweeps::Named(n) => Some(n),
                    _ => None,
                };
                let sweep = store.sweep(name)?;
                let runs = Self::runs_of(store, &sweep, metric)?;
                (sweep, false, runs)
            }
        };
        // Runs removed from the sweep file go last: the best run is one the file still makes.
        // Stable: equal scores stay in load order (sweep by sweep, in grid order).
        runs.sort_by(|a, b| {
            a.run
                .retired
                .cmp(&b.run.retired)
                .then(metric.order(a.score(metric), b.score(metric)))
        });
        if metric.on_test()
            && runs.iter().any(|r| r.best_epoch().is_some())
            && runs.iter().all(|r| r.test.is_none())
        {
            return Err(ReportError::Usage(format!(
                "--split test: no run of sweep \"{}\" has a test result (the sweep file needs data.test, and a run stores it when it finishes); leave --split out to rank on validation",
                text::for_terminal(&sweep.name)
            )));
        }
        Ok(SweepReport {
            sweep,
            several,
            metric,
            runs,
        })
    }

    /// The runs of one sweep with their epochs and test results, in the store's order.
    fn runs_of(
        store: &dyn Reader,
        sweep: &SweepRow,
        metric: Ranking,
    ) -> Result<Vec<RunResult>, ReportError> {
        let mut runs = Vec::new();
        let mut all_epochs = store.sweep_epochs(sweep.id)?;
        let mut tests = store.sweep_evaluations(sweep.id, "test")?;
        for run in store.runs(sweep.id)? {
            let epochs = all_epochs.remove(&run.id).unwrap_or_default();
            let summaries: Vec<EpochSummary> = epochs.iter().map(summary).collect();
            let best = metric.monitor.best_index(&summaries, 0.0);
            let test = tests.remove(&run.id).map(|e| SplitMetrics {
                split: "test".into(),
                epoch: e.epoch,
                class_names: run.classes.clone(),
                metrics: crate::run::Metrics::from_confusion(&e.confusion),
                confusion: e.confusion,
                loss: e.loss,
            });
            runs.push(RunResult {
                sweep: sweep.name.clone(),
                run,
                epochs,
                best,
                test,
            });
        }
        Ok(runs)
    }
}

impl SweepReport {
    /// Keeps the runs whose config has every `key = value` of `filters` (`--where`). A key no
    /// run has, or a value no run takes, is an error that lists what there is.
    pub fn keep_where(&mut self, filters: &[(String, String)]) -> Result<(), ReportError> {
        for (key, value) in filters {
            let mut values: Vec<String> = self
                .runs
                .iter()
                .filter_map(|r| compare::config_value(&r.run.config, key))
                .collect();
            values.sort();
            values.dedup();
            if values.is_empty() {
                return Err(ReportError::Usage(format!(
                    "--where {}: no run has that key; {}",
                    text::for_terminal(key),
                    compare::known_keys()
                )));
            }
            if !values.contains(value) {
                let shown: Vec<String> = values.iter().map(|v| text::for_terminal(v)).collect();
                return Err(ReportError::Usage(format!(
                    "--where {}={}: no run has that value; its values: {}",
                    text::for_terminal(key),
                    text::for_terminal(value),
                    shown.join(", ")
                )));
            }
            self.runs
                .retain(|r| compare::config_value(&r.run.config, key).as_deref() == Some(value));
        }
        Ok(())
    }
}

/// A metric column of the runs table: its header and its value for a run.
pub type ScoreColumn = (&'static str, fn(&RunResult) -> Option<f64>);

impl SweepReport {
    /// The metric columns of the runs tables (terminal, Markdown, HTML) for `--split`: the best
    /// epoch's validation accuracy, macro F1 and loss, and the test folder's accuracy; with
    /// `--split test` the test folder's accuracy, macro F1 and loss.
    pub fn score_columns(&self) -> Vec<ScoreColumn> {
        let val: [ScoreColumn; 3] = [
            ("val_acc", |r| r.best_epoch().and_then(|e| e.val_acc)),
            ("val_f1", |r| r.best_epoch().and_then(|e| e.val_macro_f1)),
            ("val_loss", |r| r.best_epoch().and_then(|e| e.val_loss)),
        ];
        let test: [ScoreColumn; 3] = [
            ("test_acc", |r| r.test.as_ref().map(|t| t.metrics.accuracy)),
            ("test_f1", |r| r.test.as_ref().map(|t| t.metrics.macro_f1)),
            ("test_loss", |r| r.test.as_ref().and_then(|t| t.loss)),
        ];
        match self.metric.split {
            None => val.into_iter().chain([test[0]]).collect(),
            Some(_) if self.metric.on_test() => test.to_vec(),
            Some(_) => val.to_vec(),
        }
    }
}

/// The best run with the classwise results of its best epoch.
#[derive(Clone, Debug)]
pub struct BestRun {
    pub sweep: SweepRow,
    pub metric: Ranking,
    pub result: RunResult,
    pub val: SplitMetrics,
    /// The evaluations beyond validation and test the run has: with test-time augmentation,
    /// of the SWA average ([`EXTRA_SPLITS`]).
    pub extra: Vec<(Split, SplitMetrics)>,
    pub skipped: Vec<crate::run::Skipped>,
}

impl BestRun {
    pub fn load(store: &dyn Reader, report: &SweepReport) -> Result<BestRun, ReportError> {
        let name = report.sweep.name.clone();
        let result = report
            .runs
            .iter()
            .find(|r| r.score(report.metric).is_some())
            .cloned()
            .ok_or(ReportError::NoEpochs(name.clone()))?;
        let epoch = result
            .best_epoch()
            .map(|e| e.epoch)
            .ok_or(ReportError::NoEpochs(name.clone()))?;
        let val = store
            .split_metrics(&result.run.id, "val", epoch)?
            .ok_or(ReportError::NoEpochs(name))?;
        let skipped = store.skipped_files(&result.run.id)?;
        let extra = extra_splits(store, &result.run.id)?;
        Ok(BestRun {
            sweep: own_sweep(store, report, &result)?,
            metric: report.metric,
            result,
            val,
            extra,
            skipped,
        })
    }
}

/// One run in full (`--run ID`): its result, the classwise metrics of its best epoch (and of
/// the test folder) and its skipped files.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub sweep: SweepRow,
    pub metric: Ranking,
    pub result: RunResult,
    /// Validation metrics of the best epoch; `None` before its first epoch.
    pub val: Option<SplitMetrics>,
    /// The evaluations beyond validation and test the run has: with test-time augmentation,
    /// of the SWA average ([`EXTRA_SPLITS`]).
    pub extra: Vec<(Split, SplitMetrics)>,
    pub skipped: Vec<crate::run::Skipped>,
}

impl RunReport {
    /// The run of `report` whose id is `id` or starts with it (4+ characters).
    pub fn load(
        store: &dyn Reader,
        report: &SweepReport,
        id: &str,
    ) -> Result<RunReport, ReportError> {
        let result = find_run(report, id)?.clone();
        let val = match result.best_epoch() {
            Some(e) => store.split_metrics(&result.run.id, "val", e.epoch)?,
            None => None,
        };
        let skipped = store.skipped_files(&result.run.id)?;
        let extra = extra_splits(store, &result.run.id)?;
        Ok(RunReport {
            sweep: own_sweep(store, report, &result)?,
            metric: report.metric,
            result,
            val,
            extra,
            skipped,
        })
    }
}

impl BestRun {
    /// The classwise results shown (`--split`): validation's, then the test folder's.
    pub fn splits(&self) -> Vec<(Split, &SplitMetrics)> {
        shown(self.metric, Some(&self.val), &self.result, &self.extra)
    }
}

impl RunReport {
    /// The classwise results shown (`--split`): validation's, then the test folder's.
    pub fn splits(&self) -> Vec<(Split, &SplitMetrics)> {
        shown(self.metric, self.val.as_ref(), &self.result, &self.extra)
    }
}

/// The splits of one run a report shows (`--split`): validation, test, then the extra
/// evaluations, each when the run has it.
fn shown<'a>(
    metric: Ranking,
    val: Option<&'a SplitMetrics>,
    result: &'a RunResult,
    extra: &'a [(Split, SplitMetrics)],
) -> Vec<(Split, &'a SplitMetrics)> {
    [(Split::Val, val), (Split::Test, result.test.as_ref())]
        .into_iter()
        .filter_map(|(split, m)| Some((split, m?)))
        .chain(extra.iter().map(|(split, m)| (*split, m)))
        .filter(|(split, _)| metric.shows(*split))
        .collect()
}

/// The evaluations a run may have beyond validation and test, in the order shown.
pub const EXTRA_SPLITS: [Split; 3] = [Split::TestTta, Split::ValSwa, Split::TestSwa];

/// The run's stored evaluations of [`EXTRA_SPLITS`].
fn extra_splits(
    store: &dyn Reader,
    run_id: &str,
) -> Result<Vec<(Split, SplitMetrics)>, ReportError> {
    let mut out = Vec::new();
    for split in EXTRA_SPLITS {
        if let Some((epoch, _)) = store.evaluation(run_id, split.name())? {
            if let Some(m) = store.split_metrics(run_id, split.name(), epoch)? {
                out.push((split, m));
            }
        }
    }
    Ok(out)
}

/// The sweep a run belongs to: the report's, or with `--sweep all` the run's own.
fn own_sweep(
    store: &dyn Reader,
    report: &SweepReport,
    result: &RunResult,
) -> Result<SweepRow, ReportError> {
    match report.several {
        true => Ok(store.sweep(Some(&result.sweep))?),
        false => Ok(report.sweep.clone()),
    }
}

/// The run of `report` whose id is `id` or starts with it (at least 4 characters, as `sweep
/// predict` takes them).
pub fn find_run<'a>(report: &'a SweepReport, id: &str) -> Result<&'a RunResult, ReportError> {
    let found: Vec<&RunResult> = report
        .runs
        .iter()
        .filter(|r| id.len() >= 4 && r.run.id.starts_with(id))
        .collect();
    let name = text::for_terminal(&report.sweep.name);
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(ReportError::Usage(format!(
            "no run of sweep \"{name}\" has an id starting with \"{}\" (give 4 or more characters; `sweep status` lists the ids)",
            text::for_terminal(id)
        ))),
        _ => Err(ReportError::Usage(format!(
            "\"{}\" starts {} run ids of sweep \"{name}\"; give more characters",
            text::for_terminal(id),
            found.len()
        ))),
    }
}

/// A confusion matrix divided row by row by its row's total (rows = true class): each row is
/// where that class's images went, summing to 1 (a class without images stays 0).
pub fn row_normalised(matrix: &[Vec<u64>]) -> Vec<Vec<f64>> {
    matrix
        .iter()
        .map(|row| {
            let total: u64 = row.iter().sum();
            row.iter()
                .map(|&n| {
                    if total == 0 {
                        0.0
                    } else {
                        n as f64 / total as f64
                    }
                })
                .collect()
        })
        .collect()
}

/// A classwise result as the JSON and table renderers share it.
#[derive(Clone, Debug, Serialize)]
pub struct ClassRow {
    pub name: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
}

pub fn class_rows(m: &SplitMetrics) -> Vec<ClassRow> {
    m.metrics
        .classes
        .iter()
        .enumerate()
        .map(|(k, c)| ClassRow {
            name: m
                .class_names
                .get(k)
                .cloned()
                .unwrap_or_else(|| k.to_string()),
            precision: c.precision,
            recall: c.recall,
            f1: c.f1,
            support: c.support,
        })
        .collect()
}
