//! Machine-readable reports: one JSON object for `--best`, a list for the runs table.
//!
//! serde_json keeps the structure safe whatever the names hold (it escapes quotes,
//! backslashes and U+0000..U+001F) but writes DEL, C1 controls (U+009B starts an ANSI
//! sequence on some terminals) and bidi or zero-width characters as they are;
//! [`to_json_string`] writes those as `\uXXXX` too, so printed JSON is inert on a terminal
//! and still parses to the same values.
use serde_json::{json, Value};

use super::compare::{best_by_class, Comparison, Effect};
use super::text::is_hidden;
use super::{class_rows, row_normalised, BestRun, RunReport, Split, SweepReport};
use crate::store::SplitMetrics;

/// `value` as pretty JSON with every character [`is_hidden`] finds written as a `\uXXXX`
/// escape (a surrogate pair above U+FFFF). Such characters only occur inside strings, where
/// the escape means the same character. For `sweep report --format json` on a terminal.
pub fn to_json_string(value: &Value) -> String {
    let raw = serde_json::to_string_pretty(value).expect("a JSON value always serialises");
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        // Newlines here are the layout's: serde_json escapes those in strings.
        if c != '\n' && is_hidden(c) {
            for unit in c.encode_utf16(&mut [0; 2]) {
                out += &format!("\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn split_json(m: &SplitMetrics) -> Value {
    json!({
        "split": m.split,
        "epoch": m.epoch,
        "loss": m.loss,
        "accuracy": m.metrics.accuracy,
        "macro_precision": m.metrics.macro_precision,
        "macro_recall": m.metrics.macro_recall,
        "macro_f1": m.metrics.macro_f1,
        "weighted_precision": m.metrics.weighted_precision,
        "weighted_recall": m.metrics.weighted_recall,
        "weighted_f1": m.metrics.weighted_f1,
        "support": m.metrics.support,
        "classes": class_rows(m),
        "confusion": m.confusion.matrix,
    })
}

/// One of a run's extra evaluations as `show` writes it, or null.
fn extra_json(
    extra: &[(Split, SplitMetrics)],
    which: Split,
    show: impl Fn(&SplitMetrics) -> Value,
) -> Value {
    extra
        .iter()
        .find(|(s, _)| *s == which)
        .map_or(Value::Null, |(_, m)| show(m))
}

/// `sweep report --best --format json`: the validation result of the best epoch at the top
/// level, the test-folder result (if any) under "test".
pub fn best_json(best: &BestRun) -> Value {
    let run = &best.result.run;
    let mut out = json!({
        "sweep": best.sweep.name,
        "run_id": run.id,
        "label": run.label,
        "status": run.status,
        "retired": run.retired,
        "config": run.config,
        "metric": best.metric.name(),
        "metric_value": best.result.score(best.metric),
    });
    let extra = split_json(&best.val);
    let phase = best
        .result
        .epochs
        .iter()
        .find(|e| e.epoch == best.val.epoch)
        .map(|e| e.phase.name());
    let phases: Vec<Value> = best
        .result
        .phases()
        .iter()
        .map(
            |(p, first, last)| json!({"phase": p.name(), "first_epoch": first, "last_epoch": last}),
        )
        .collect();
    let more = json!({
        "phase": phase,
        "phases": phases,
        "epochs_run": best.result.epochs.len(),
        "parameters": run.parameters,
        "stop_reason": run.stop_reason,
        "checkpoint": run.checkpoint,
        "checkpoint_epoch": run.checkpoint_epoch,
        "test": best.result.test.as_ref().map(split_json),
        "test_tta": extra_json(&best.extra, Split::TestTta, split_json),
        "val_swa": extra_json(&best.extra, Split::ValSwa, split_json),
        "test_swa": extra_json(&best.extra, Split::TestSwa, split_json),
        "skipped_files": best.skipped,
    });
    for part in [extra, more] {
        if let (Value::Object(o), Value::Object(e)) = (&mut out, part) {
            o.extend(e);
        }
    }
    out
}

/// `sweep report --format json`: one object per run, best first.
pub fn runs_json(report: &SweepReport) -> Value {
    let runs: Vec<Value> = report
        .runs
        .iter()
        .enumerate()
        .map(|(rank, r)| {
            let e = r.best_epoch();
            json!({
                "rank": rank + 1,
                "sweep": r.sweep,
                "run_id": r.run.id,
                "index": r.run.index,
                "label": r.run.label,
                "status": r.run.status,
                "retired": r.run.retired,
                "error": r.run.error,
                "failure_kind": r.run.failure,
                "config": r.run.config,
                "epochs_run": r.epochs.len(),
                "best_epoch": e.map(|e| e.epoch),
                "best_epoch_phase": e.map(|e| e.phase.name()),
                "metric_value": r.score(report.metric),
                "val_loss": e.and_then(|e| e.val_loss),
                "val_acc": e.and_then(|e| e.val_acc),
                "val_macro_f1": e.and_then(|e| e.val_macro_f1),
                "test_acc": r.test.as_ref().map(|t| t.metrics.accuracy),
                "test_macro_f1": r.test.as_ref().map(|t| t.metrics.macro_f1),
                "test_loss": r.test.as_ref().and_then(|t| t.loss),
                "seconds": r.epochs.iter().fold(0.0, |s, e| s + e.seconds),
            })
        })
        .collect();
    json!({ "sweep": report.sweep.name, "metric": report.metric.name(), "runs": runs })
}

/// `--compare --format json`: the compared runs, each with its validation (and test) result,
/// and per split the value(s) with the best F1 of each class.
pub fn compare_json(c: &Comparison) -> Value {
    let columns: Vec<Value> = c
        .columns
        .iter()
        .map(|col| {
            let e = col.result.best_epoch();
            json!({
                "value": col.value,
                "run_id": col.result.run.id,
                "label": col.result.run.label,
                "config": col.result.run.config,
                "epoch": e.map(|e| e.epoch),
                "phase": e.map(|e| e.phase.name()),
                "metric_value": col.result.score(c.metric),
                "val": split_json(&col.val),
                "test": col.test().map(split_json),
            })
        })
        .collect();
    let best = |splits: Vec<&SplitMetrics>| -> Value {
        let Some(first) = splits.first() else {
            return Value::Null;
        };
        let names = class_rows(first);
        best_by_class(&splits)
            .into_iter()
            .zip(names)
            .map(|(cols, row)| {
                let values: Vec<&str> = cols.iter().map(|&i| c.columns[i].value.as_str()).collect();
                json!({ "class": row.name, "best_f1": values })
            })
            .collect()
    };
    let val = best(c.columns.iter().map(|col| &col.val).collect());
    let test = match c.has_test() {
        true => best(c.columns.iter().filter_map(|col| col.test()).collect()),
        false => Value::Null,
    };
    json!({
        "sweep": c.sweep.name,
        "metric": c.metric.name(),
        "key": c.key,
        "columns": columns,
        "not_compared": c.missing,
        "best_by_class": { "val": val, "test": test },
    })
}

/// `--run ID --format json`: the run, its epoch history, and the classwise results (with the
/// confusion matrix in counts and row-normalised) of its best epoch and the test folder.
pub fn run_json(r: &RunReport) -> Value {
    let run = &r.result.run;
    let epochs: Vec<Value> = r
        .result
        .epochs
        .iter()
        .map(|e| {
            json!({
                "epoch": e.epoch,
                "phase": e.phase.name(),
                "lr": e.lr,
                "train_loss": e.train_loss,
                "train_acc": e.train_acc,
                "val_loss": e.val_loss,
                "val_acc": e.val_acc,
                "val_macro_f1": e.val_macro_f1,
                "val_weighted_f1": e.val_weighted_f1,
                "seconds": e.seconds,
                "images_per_sec": e.images_per_sec,
                "checkpoint_saved": e.checkpoint_saved,
            })
        })
        .collect();
    let split = |m: &SplitMetrics| {
        let mut v = split_json(m);
        if let Value::Object(o) = &mut v {
            o.insert(
                "confusion_normalised".into(),
                json!(row_normalised(&m.confusion.matrix)),
            );
        }
        v
    };
    json!({
        "sweep": r.sweep.name,
        "run_id": run.id,
        "label": run.label,
        "status": run.status,
        "error": run.error,
        "stop_reason": run.stop_reason,
        "config": run.config,
        "metric": r.metric.name(),
        "best_epoch": r.result.best_epoch().map(|e| e.epoch),
        "metric_value": r.result.score(r.metric),
        "checkpoint": run.checkpoint,
        "epochs": epochs,
        "val": r.val.as_ref().map(split),
        "test": r.result.test.as_ref().map(split),
        "test_tta": extra_json(&r.extra, Split::TestTta, split),
        "val_swa": extra_json(&r.extra, Split::ValSwa, split),
        "test_swa": extra_json(&r.extra, Split::TestSwa, split),
        "skipped_files": r.skipped,
    })
}

/// `--by KEY --format json`.
pub fn effects_json(report: &SweepReport, key: &str, effects: &[Effect]) -> Value {
    let rows: Vec<Value> = effects
        .iter()
        .map(|e| {
            json!({
                "value": e.value,
                "runs": e.runs,
                "scored": e.scored,
                "best": e.best,
                "mean": e.mean,
                "worst": e.worst,
                "best_run": e.best_run.as_ref().map(|(id, _)| id),
                "best_label": e.best_run.as_ref().map(|(_, label)| label),
            })
        })
        .collect();
    json!({ "sweep": report.sweep.name, "metric": report.metric.name(), "key": key, "values": rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_json_is_inert_and_means_the_same() {
        let name = "a\u{1b}[31m\u{7f}\u{9b}2J\u{202e}x\u{200b}\u{e0041}\n\"|<b>";
        let value = json!({ "label": name, "classes": [{ "name": name }] });
        let plain = serde_json::to_string_pretty(&value).unwrap();
        assert!(
            plain.contains('\u{9b}') && plain.contains('\u{202e}'),
            "{plain:?}"
        );
        let out = to_json_string(&value);
        assert!(!out.chars().any(|c| c != '\n' && is_hidden(c)), "{out:?}");
        assert!(
            out.contains("\\u009b") && out.contains("\\udb40\\udc41"),
            "{out}"
        );
        assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), value);
    }
}
