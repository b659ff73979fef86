//! Reports as CSV for spreadsheets and pandas: one header row, then one row per run, class,
//! value or epoch. Text from outside (labels, class names, values) that a spreadsheet would
//! take for a formula (`=`, `+`, `-`, `@`, tab, carriage return first) gets a leading `'`,
//! OWASP's advice against CSV injection; numbers are written as they are.
use super::compare::{Comparison, Effect};
use super::{class_rows, BestRun, RunReport, SweepReport};
use crate::store::SplitMetrics;

/// A cell of text from outside, safe to open in a spreadsheet.
fn text(s: &str) -> String {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{s}"),
        _ => s.to_string(),
    }
}

fn num(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// Writes `rows` under `header`, quoting as RFC 4180 does.
fn write(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    let result = (|| -> Result<Vec<u8>, Box<dyn std::error::Error>> {
        w.write_record(header)?;
        for row in rows {
            w.write_record(&row)?;
        }
        Ok(w.into_inner()?)
    })();
    // Writing to memory cannot fail.
    String::from_utf8_lossy(&result.unwrap_or_default()).into_owned()
}

/// The runs, best first: one row each.
pub fn runs_csv(report: &SweepReport) -> String {
    let header = [
        "rank",
        "sweep",
        "index",
        "run_id",
        "label",
        "status",
        "retired",
        "epochs",
        "best_epoch",
        "best_epoch_phase",
        "metric",
        "metric_value",
        "val_loss",
        "val_acc",
        "val_macro_f1",
        "test_acc",
        "test_macro_f1",
        "test_loss",
        "seconds",
    ];
    let rows = report.runs.iter().enumerate().map(|(rank, r)| {
        let e = r.best_epoch();
        vec![
            (rank + 1).to_string(),
            text(&r.sweep),
            r.run.index.to_string(),
            r.run.id.clone(),
            text(&r.run.label),
            r.run.status.to_string(),
            r.run.retired.to_string(),
            r.epochs.len().to_string(),
            e.map(|e| e.epoch.to_string()).unwrap_or_default(),
            e.map(|e| e.phase.name().to_string()).unwrap_or_default(),
            report.metric.name().to_string(),
            num(r.score(report.metric)),
            num(e.and_then(|e| e.val_loss)),
            num(e.and_then(|e| e.val_acc)),
            num(e.and_then(|e| e.val_macro_f1)),
            num(r.test.as_ref().map(|t| t.metrics.accuracy)),
            num(r.test.as_ref().map(|t| t.metrics.macro_f1)),
            num(r.test.as_ref().and_then(|t| t.loss)),
            r.epochs.iter().map(|e| e.seconds).sum::<f64>().to_string(),
        ]
    });
    write(&header, rows)
}

/// The columns [`class_lines`] writes after its prefix.
const CLASS_COLUMNS: [&str; 5] = ["class", "precision", "recall", "f1", "support"];

/// `prefix` column names followed by [`CLASS_COLUMNS`].
fn class_header<'a>(prefix: &[&'a str]) -> Vec<&'a str> {
    prefix.iter().copied().chain(CLASS_COLUMNS).collect()
}

/// Classwise rows of one split, `prefix` cells first.
fn class_lines(prefix: &[String], m: &SplitMetrics) -> Vec<Vec<String>> {
    class_rows(m)
        .into_iter()
        .map(|c| {
            let mut row = prefix.to_vec();
            row.extend([
                text(&c.name),
                c.precision.to_string(),
                c.recall.to_string(),
                c.f1.to_string(),
                c.support.to_string(),
            ]);
            row
        })
        .collect()
}

/// `--best`: the classwise table of the best epoch (and the test folder), one row per class.
pub fn best_csv(best: &BestRun) -> String {
    let id = best.result.run.id.clone();
    let mut rows = Vec::new();
    for (split, m) in best.splits() {
        rows.extend(class_lines(&[id.clone(), split.name().into()], m));
    }
    write(&class_header(&["run_id", "split"]), rows)
}

/// `--compare`: long format, one row per (split, compared run, class).
pub fn compare_csv(c: &Comparison) -> String {
    let key = c.key.clone().unwrap_or_else(|| "run".into());
    let mut rows = Vec::new();
    for (split, metrics) in c.splits() {
        for (col, m) in c.columns.iter().zip(metrics) {
            let prefix = [
                split.name().to_string(),
                key.clone(),
                text(&col.value),
                col.result.run.id.clone(),
            ];
            rows.extend(class_lines(&prefix, m));
        }
    }
    write(&class_header(&["split", "key", "value", "run_id"]), rows)
}

/// `--by KEY`: one row per value.
pub fn effects_csv(report: &SweepReport, key: &str, effects: &[Effect]) -> String {
    let rows = effects.iter().map(|e| {
        vec![
            text(key),
            text(&e.value),
            report.metric.name().to_string(),
            e.runs.to_string(),
            e.scored.to_string(),
            num(e.best),
            num(e.mean),
            num(e.worst),
            e.best_run
                .as_ref()
                .map(|(id, _)| id.clone())
                .unwrap_or_default(),
        ]
    });
    write(
        &[
            "key", "value", "metric", "runs", "scored", "best", "mean", "worst", "best_run",
        ],
        rows,
    )
}

/// `--run ID`: its epoch history, one row per epoch.
pub fn run_csv(r: &RunReport) -> String {
    let rows = r.result.epochs.iter().map(|e| {
        vec![
            r.result.run.id.clone(),
            e.epoch.to_string(),
            e.phase.name().to_string(),
            e.lr.to_string(),
            num(e.train_loss),
            num(e.train_acc),
            num(e.val_loss),
            num(e.val_acc),
            num(e.val_macro_f1),
            num(e.val_weighted_f1),
            e.seconds.to_string(),
            e.images_per_sec.to_string(),
            e.checkpoint_saved.to_string(),
        ]
    });
    write(
        &[
            "run_id",
            "epoch",
            "phase",
            "lr",
            "train_loss",
            "train_acc",
            "val_loss",
            "val_acc",
            "val_macro_f1",
            "val_weighted_f1",
            "seconds",
            "images_per_sec",
            "checkpoint_saved",
        ],
        rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_and_formulas_defused() {
        let out = write(
            &["a", "b"],
            [
                vec![text("=HYPERLINK(\"x\")"), text("plain, with comma")],
                vec![text("line\nbreak"), text("@SUM(1)")],
            ],
        );
        let mut r = ::csv::Reader::from_reader(out.as_bytes());
        let rows: Vec<Vec<String>> = r
            .records()
            .map(|x| x.unwrap().iter().map(String::from).collect())
            .collect();
        assert_eq!(
            rows,
            [
                ["'=HYPERLINK(\"x\")", "plain, with comma"],
                ["line\nbreak", "'@SUM(1)"]
            ]
        );
    }
}
