//! Human-readable reports with comfy-table: the runs table and the seeds' classwise table
//! (one column per class; rows f1 / acc / precision / support; wide class lists wrap).
//! Every name from outside (class, sweep, label, config value, error, path) goes through
//! [`TableStyle::text`], so it cannot break a table or pass markup or control characters.
use comfy_table::presets::{ASCII_MARKDOWN, UTF8_FULL_CONDENSED};
use comfy_table::{CellAlignment, Table};

use super::text::{for_markdown, for_terminal};
use super::{class_rows, BestRun, SweepReport};
use crate::run::RunStatus;
use crate::store::SplitMetrics;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableStyle {
    Terminal,
    Markdown,
}

impl TableStyle {
    /// `s` (a name from outside) as this style shows it: see [`super::text`].
    pub fn text(self, s: &str) -> String {
        match self {
            TableStyle::Terminal => for_terminal(s),
            TableStyle::Markdown => for_markdown(s),
        }
    }
}

fn new_table(style: TableStyle) -> Table {
    let mut t = Table::new();
    t.load_preset(match style {
        TableStyle::Terminal => UTF8_FULL_CONDENSED,
        TableStyle::Markdown => ASCII_MARKDOWN,
    });
    t
}

fn num(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.4}")).unwrap_or_else(|| "-".into())
}

fn right_align_from(t: &mut Table, first: usize) {
    for i in first..t.column_count() {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
}

/// One row per run, best first by the report's metric.
pub fn runs_table(report: &SweepReport, style: TableStyle) -> String {
    let mut t = new_table(style);
    t.set_header(vec![
        "rank", "#", "run", "label", "status", "epochs", "best", "val_acc", "val_f1", "val_loss",
        "test_acc", "seconds",
    ]);
    let text = |s: &str| style.text(s);
    for (rank, r) in report.runs.iter().enumerate() {
        let e = r.best_epoch();
        let mut status = match &r.run.error {
            Some(err) if r.run.status == RunStatus::Failed => {
                format!("failed: {}", text(&first_line(err, 60)))
            }
            _ => r.run.status.to_string(),
        };
        if r.run.retired {
            status += " (not in the sweep file)";
        }
        t.add_row(vec![
            (rank + 1).to_string(),
            r.run.index.to_string(),
            text(&r.run.id),
            text(&r.run.label),
            status,
            r.epochs.len().to_string(),
            match e {
                Some(e) if !e.phase.is_scratch() => format!("{} ({})", e.epoch, e.phase.name()),
                Some(e) => e.epoch.to_string(),
                None => "-".into(),
            },
            num(e.and_then(|e| e.val_acc)),
            num(e.and_then(|e| e.val_macro_f1)),
            num(e.and_then(|e| e.val_loss)),
            num(r.test.as_ref().map(|t| t.metrics.accuracy)),
            format!("{:.1}", r.epochs.iter().fold(0.0, |s, e| s + e.seconds)),
        ]);
    }
    right_align_from(&mut t, 5);
    format!(
        "sweep {} - {} runs, best first by {} (val_f1 is macro F1 of the best epoch)\n{t}\n",
        text(&report.sweep.name),
        report.runs.len(),
        report.metric.name()
    )
}

fn first_line(s: &str, max: usize) -> String {
    let line = s.lines().next().unwrap_or("");
    if line.chars().count() > max {
        format!("{}...", line.chars().take(max).collect::<String>())
    } else {
        line.to_string()
    }
}

/// The best run: its config, then the classwise tables of validation (and test, if any).
pub fn best_table(best: &BestRun, style: TableStyle, width: usize) -> String {
    let run = &best.result.run;
    let text = |s: &str| style.text(s);
    let mut out = format!(
        "Best run of sweep {} by {}: {} ({})\n",
        text(&best.sweep.name),
        best.metric.name(),
        text(&run.id),
        text(&run.label)
    );
    let mut cfg = new_table(style);
    cfg.set_header(vec!["setting", "value"]);
    for (k, v) in flatten(&run.config) {
        cfg.add_row(vec![text(&k), text(&v)]);
    }
    let epochs = best.result.epochs.len();
    cfg.add_row(vec![
        "epochs run".into(),
        format!(
            "{epochs} ({})",
            text(run.stop_reason.as_deref().unwrap_or(run.status.as_str()))
        ),
    ]);
    if let Some(line) = best.result.phases_line() {
        cfg.add_row(vec!["phases".into(), line]);
    }
    if let Some(p) = run.parameters {
        cfg.add_row(vec!["parameters".into(), p.to_string()]);
    }
    if let (Some(path), Some(e)) = (&run.checkpoint, run.checkpoint_epoch) {
        cfg.add_row(vec![
            "checkpoint".into(),
            format!("{} (epoch {e})", text(path)),
        ]);
    }
    out += &format!("{cfg}\n");
    out += &classwise(&best.val, "validation", style, width);
    if let Some(test) = &best.result.test {
        out += &classwise(test, "test", style, width);
    }
    if !best.skipped.is_empty() {
        out += &format!(
            "\n{} unreadable file(s) were skipped:\n",
            best.skipped.len()
        );
        out += &skipped_list(best, style);
    }
    out
}

/// The skipped files: indented lines in the terminal; a table in Markdown, where a line that
/// starts with a path could otherwise become a heading or a list item.
fn skipped_list(best: &BestRun, style: TableStyle) -> String {
    let files = best
        .skipped
        .iter()
        .map(|s| (style.text(&s.path.to_string_lossy()), style.text(&s.reason)));
    match style {
        TableStyle::Terminal => files.map(|(p, r)| format!("  {p}: {r}\n")).collect(),
        TableStyle::Markdown => {
            let mut t = new_table(style);
            t.set_header(vec!["file", "reason"]);
            t.add_rows(files.map(|(p, r)| vec![p, r]));
            format!("\n{t}\n")
        }
    }
}

/// The config as `dotted.key = value` rows: nested settings flattened, unset (null) values
/// and the settings of an unused augmentation left out.
fn flatten(config: &serde_json::Value) -> Vec<(String, String)> {
    use serde_json::Value;
    fn walk(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    walk(
                        &if prefix.is_empty() {
                            k.clone()
                        } else {
                            format!("{prefix}.{k}")
                        },
                        v,
                        out,
                    );
                }
            }
            Value::Null => {}
            Value::String(s) => out.push((prefix.to_string(), s.clone())),
            other => out.push((prefix.to_string(), other.to_string())),
        }
    }
    let mut out = Vec::new();
    walk("", config, &mut out);
    if config.get("augment").and_then(Value::as_str) == Some("none") {
        out.retain(|(k, _)| !k.starts_with("augment_settings."));
    }
    out
}

/// The seeds' table: CLASSWISE RESULT then AVG RESULT. Classes are split into chunks so that
/// each table fits in `width` columns, like pandas wraps wide frames.
pub fn classwise(m: &SplitMetrics, split: &str, style: TableStyle, width: usize) -> String {
    let mut rows = class_rows(m);
    for r in &mut rows {
        r.name = style.text(&r.name);
    }
    let mut out = format!(
        "\n*** CLASSWISE RESULT ({split}, epoch {}, {} images) ***\n",
        m.epoch, m.metrics.support
    );
    let col = |name: &str| name.chars().count().max(6) + 3;
    let mut chunks: Vec<Vec<usize>> = vec![Vec::new()];
    let mut used = 13; // the row-name column and borders
    for (k, r) in rows.iter().enumerate() {
        let w = col(&r.name);
        let current = chunks.len() - 1;
        if !chunks[current].is_empty() && used + w > width {
            chunks.push(Vec::new());
            used = 13;
        }
        used += w;
        let current = chunks.len() - 1;
        chunks[current].push(k);
    }
    for chunk in chunks.iter().filter(|c| !c.is_empty()) {
        let mut t = new_table(style);
        let mut header = vec![String::new()];
        header.extend(chunk.iter().map(|&k| rows[k].name.clone()));
        t.set_header(header);
        let line = |label: &str, f: &dyn Fn(usize) -> String| {
            let mut row = vec![label.to_string()];
            row.extend(chunk.iter().map(|&k| f(k)));
            row
        };
        t.add_row(line("f1", &|k| format!("{:.4}", rows[k].f1)));
        t.add_row(line("acc", &|k| format!("{:.4}", rows[k].recall)));
        t.add_row(line("precision", &|k| format!("{:.4}", rows[k].precision)));
        t.add_row(line("support", &|k| rows[k].support.to_string()));
        right_align_from(&mut t, 1);
        out += &format!("{t}\n{}", gap(style));
    }
    let mut avg = new_table(style);
    avg.set_header(vec!["*** AVG RESULT ***", "precision", "recall", "f1"]);
    let mm = &m.metrics;
    avg.add_row(vec![
        "macro avg".into(),
        format!("{:.4}", mm.macro_precision),
        format!("{:.4}", mm.macro_recall),
        format!("{:.4}", mm.macro_f1),
    ]);
    avg.add_row(vec![
        "weighted avg".into(),
        format!("{:.4}", mm.weighted_precision),
        format!("{:.4}", mm.weighted_recall),
        format!("{:.4}", mm.weighted_f1),
    ]);
    avg.add_row(vec![
        "accuracy".into(),
        String::new(),
        String::new(),
        format!("{:.4}", mm.accuracy),
    ]);
    if let Some(loss) = m.loss {
        avg.add_row(vec![
            "loss".into(),
            String::new(),
            String::new(),
            format!("{loss:.4}"),
        ]);
    }
    right_align_from(&mut avg, 1);
    out += &format!("{avg}\n");
    out
}

/// Markdown needs a blank line between tables, or they run together.
fn gap(style: TableStyle) -> &'static str {
    match style {
        TableStyle::Markdown => "\n",
        TableStyle::Terminal => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::{Confusion, Metrics};

    fn split() -> SplitMetrics {
        let confusion = Confusion {
            matrix: vec![vec![3, 1, 0], vec![0, 2, 0], vec![1, 0, 1]],
        };
        SplitMetrics {
            split: "val".into(),
            epoch: 4,
            class_names: vec!["cat".into(), "dog".into(), "ankle_boot".into()],
            metrics: Metrics::from_confusion(&confusion),
            confusion,
            loss: Some(0.25),
        }
    }

    /// Snapshot of the seeds' classwise layout; a width of 40 wraps the three classes.
    #[test]
    fn classwise_table_snapshot() {
        let got = classwise(&split(), "validation", TableStyle::Terminal, 40);
        assert_eq!(got, SNAPSHOT, "\n{got}");
    }

    #[test]
    fn markdown_tables_are_markdown() {
        let got = classwise(&split(), "validation", TableStyle::Markdown, 200);
        assert!(
            got.contains("|           |    cat |    dog | ankle_boot |\n|---"),
            "{got}"
        );
        assert!(got.contains("|          2 |\n\n| *** AVG RESULT"), "{got}");
        assert!(
            got.contains("| f1        | 0.7500 | 0.8000 |     0.6667 |"),
            "{got}"
        );
    }

    const SNAPSHOT: &str = r"
*** CLASSWISE RESULT (validation, epoch 4, 8 images) ***
┌───────────┬────────┬────────┐
│           ┆    cat ┆    dog │
╞═══════════╪════════╪════════╡
│ f1        ┆ 0.7500 ┆ 0.8000 │
│ acc       ┆ 0.7500 ┆ 1.0000 │
│ precision ┆ 0.7500 ┆ 0.6667 │
│ support   ┆      4 ┆      2 │
└───────────┴────────┴────────┘
┌───────────┬────────────┐
│           ┆ ankle_boot │
╞═══════════╪════════════╡
│ f1        ┆     0.6667 │
│ acc       ┆     0.5000 │
│ precision ┆     1.0000 │
│ support   ┆          2 │
└───────────┴────────────┘
┌────────────────────┬───────────┬────────┬────────┐
│ *** AVG RESULT *** ┆ precision ┆ recall ┆     f1 │
╞════════════════════╪═══════════╪════════╪════════╡
│ macro avg          ┆    0.8056 ┆ 0.7500 ┆ 0.7389 │
│ weighted avg       ┆    0.7917 ┆ 0.7500 ┆ 0.7417 │
│ accuracy           ┆           ┆        ┆ 0.7500 │
│ loss               ┆           ┆        ┆ 0.2500 │
└────────────────────┴───────────┴────────┴────────┘
";
}
