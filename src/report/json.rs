//! Machine-readable reports: one JSON object for `--best`, a list for the runs table.
use serde_json::{json, Value};

use super::{class_rows, BestRun, SweepReport};
use crate::store::SplitMetrics;

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

/// `sweep report --best --format json`: the validation result of the best epoch at the top
/// level, the test-folder result (if any) under "test".
pub fn best_json(best: &BestRun) -> Value {
    let run = &best.result.run;
    let mut out = json!({
        "sweep": best.sweep.name,
        "run_id": run.id,
        "label": run.label,
        "status": run.status,
        "config": run.config,
        "metric": best.metric.name(),
        "metric_value": best.result.score(best.metric),
    });
    let extra = split_json(&best.val);
    let more = json!({
        "epochs_run": best.result.epochs.len(),
        "parameters": run.parameters,
        "stop_reason": run.stop_reason,
        "checkpoint": run.checkpoint,
        "checkpoint_epoch": run.checkpoint_epoch,
        "test": best.result.test.as_ref().map(split_json),
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
                "run_id": r.run.id,
                "index": r.run.index,
                "label": r.run.label,
                "status": r.run.status,
                "error": r.run.error,
                "failure_kind": r.run.failure,
                "config": r.run.config,
                "epochs_run": r.epochs.len(),
                "best_epoch": e.map(|e| e.epoch),
                "metric_value": r.score(report.metric),
                "val_loss": e.and_then(|e| e.val_loss),
                "val_acc": e.and_then(|e| e.val_acc),
                "val_macro_f1": e.and_then(|e| e.val_macro_f1),
                "test_acc": r.test.as_ref().map(|t| t.metrics.accuracy),
                "test_macro_f1": r.test.as_ref().map(|t| t.metrics.macro_f1),
                "seconds": r.epochs.iter().map(|e| e.seconds).sum::<f64>(),
            })
        })
        .collect();
    json!({ "sweep": report.sweep.name, "metric": report.metric.name(), "runs": runs })
}
