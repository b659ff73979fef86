//! Human-readable reports with comfy-table: the runs table and the seeds' classwise table
//! (one column per class; rows f1 / acc / precision / support; wide class lists wrap).
//! Every name from outside (class, sweep, label, config value, error, path) goes through
//! [`TableStyle::text`], so it cannot break a table or pass markup or control characters.
use comfy_table::presets::{ASCII_MARKDOWN, UTF8_FULL_CONDENSED};
use comfy_table::{CellAlignment, Table};

use super::compare::{best_by_class, Comparison, Effect};
use super::text::{for_markdown, for_terminal};
use super::{class_rows, row_normalised, BestRun, RunReport, SweepReport};
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

/// One row per run, best first by the report's metric (with `--sweep all`, each run's sweep).
pub fn runs_table(report: &SweepReport, style: TableStyle) -> String {
    let mut t = new_table(style);
    let scores = report.score_columns();
    let sweep_column = report.several.then_some("sweep");
    let mut header: Vec<&str> = vec!["rank"];
    header.extend(sweep_column);
    header.extend(["#", "run", "label", "status", "epochs", "best"]);
    header.extend(scores.iter().map(|s| s.0));
    header.push("seconds");
    let numbers_from = header.iter().position(|h| *h == "epochs").unwrap_or(0);
    t.set_header(header);
    let text = |s: &str| style.text(s);
    for (rank, r) in report.runs.iter().enumerate() {
        let mut status = match &r.run.error {
            Some(err) if r.run.status == RunStatus::Failed => {
                format!("failed: {}", text(&first_line(err, 60)))
            }
            _ => r.run.status.to_string(),
        };
        if r.run.retired {
            status += " (not in the sweep file)";
        }
        let mut row = vec![(rank + 1).to_string()];
        row.extend(sweep_column.map(|_| text(&r.sweep)));
        row.extend([
            r.run.index.to_string(),
            text(&r.run.id),
            text(&r.run.label),
            status,
            r.epochs.len().to_string(),
            r.best_epoch_text(),
        ]);
        row.extend(scores.iter().map(|(_, value)| num(value(r))));
        row.push(format!(
            "{:.1}",
            r.epochs.iter().fold(0.0, |s, e| s + e.seconds)
        ));
        t.add_row(row);
    }
    right_align_from(&mut t, numbers_from);
    let f1 = match report.metric.on_test() {
        true => "test_f1 is the test folder's macro F1 for the kept weights",
        false => "val_f1 is macro F1 of the best epoch",
    };
    format!(
        "sweep {} - {} runs, best first by {} ({f1})\n{t}\n",
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
    for (split, m) in best.splits() {
        out += &classwise(m, split.title(), style, width);
    }
    if !best.skipped.is_empty() {
        out += &format!(
            "\n{} unreadable file(s) were skipped:\n",
            best.skipped.len()
        );
        out += &skipped_rows(&best.skipped, style);
    }
    out
}

/// The skipped files: indented lines in the terminal; a table in Markdown, where a line that
/// starts with a path could otherwise become a heading or a list item.
fn skipped_rows(skipped: &[crate::run::Skipped], style: TableStyle) -> String {
    let files = skipped
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
pub(super) fn flatten(config: &serde_json::Value) -> Vec<(String, String)> {
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

/// `--compare`: the compared runs, then per split one row per class with F1 and recall (the
/// seeds' "acc") of each run, the best F1 of each row marked, then the averages.
pub fn compare_table(c: &Comparison, style: TableStyle) -> String {
    let text = |s: &str| style.text(s);
    let what = match &c.key {
        Some(key) => format!("the best run of each {} by {}", text(key), c.metric.name()),
        None => "named runs".to_string(),
    };
    let mut out = format!(
        "Sweep {}: {what}
",
        text(&c.sweep.name)
    );
    let mut runs = new_table(style);
    runs.set_header(vec![
        c.key.as_deref().map_or("run".to_string(), text),
        "run".into(),
        "label".into(),
        "best epoch".into(),
        c.metric.name().into(),
    ]);
    for col in &c.columns {
        runs.add_row(vec![
            text(&col.value),
            text(&col.result.run.id),
            text(&col.result.run.label),
            col.result.best_epoch_text(),
            num(col.result.score(c.metric)),
        ]);
    }
    out += &format!(
        "{runs}
"
    );
    if !c.missing.is_empty() {
        let values: Vec<String> = c.missing.iter().map(|v| text(v)).collect();
        out += &format!(
            "not compared (no finished epoch yet): {}
",
            values.join(", ")
        );
    }
    for (split, metrics) in c.splits() {
        out += &format!(
            "{}{}",
            gap(style),
            side_by_side(c, &metrics, split.title(), style)
        );
    }
    out
}

/// One split of a comparison: classes down, (F1, acc) per compared run across.
fn side_by_side(
    c: &Comparison,
    splits: &[&SplitMetrics],
    split: &str,
    style: TableStyle,
) -> String {
    let text = |s: &str| style.text(s);
    let mark = |v: f64, best: bool| match (best, style) {
        (false, _) => format!("{v:.4}"),
        (true, TableStyle::Terminal) => format!("{v:.4}*"),
        (true, TableStyle::Markdown) => format!("**{v:.4}**"),
    };
    let mut t = new_table(style);
    let mut header = vec!["class".to_string(), "support".to_string()];
    for col in &c.columns {
        header.push(format!("{} f1", text(&col.value)));
        header.push(format!("{} acc", text(&col.value)));
    }
    t.set_header(header);
    let Some(first) = splits.first() else {
        return String::new();
    };
    let best = best_by_class(splits);
    for (k, name) in class_rows(first).iter().map(|r| r.name.clone()).enumerate() {
        let supports: Vec<u64> = splits
            .iter()
            .map(|m| m.metrics.classes.get(k).map_or(0, |x| x.support))
            .collect();
        let support = if supports.windows(2).all(|w| w[0] == w[1]) {
            supports[0].to_string()
        } else {
            let s: Vec<String> = supports.iter().map(u64::to_string).collect();
            s.join("/")
        };
        let mut row = vec![text(&name), support];
        for (i, m) in splits.iter().enumerate() {
            let cls = m.metrics.classes.get(k);
            row.push(cls.map_or("-".into(), |x| mark(x.f1, best[k].contains(&i))));
            row.push(cls.map_or("-".into(), |x| format!("{:.4}", x.recall)));
        }
        t.add_row(row);
    }
    let total = |f: &dyn Fn(&SplitMetrics) -> (f64, f64), label: &str| {
        let mut row = vec![label.to_string(), String::new()];
        for m in splits {
            let (a, b) = f(m);
            row.push(format!("{a:.4}"));
            row.push(format!("{b:.4}"));
        }
        row
    };
    t.add_row(total(
        &|m| (m.metrics.macro_f1, m.metrics.macro_recall),
        "macro avg",
    ));
    t.add_row(total(
        &|m| (m.metrics.weighted_f1, m.metrics.weighted_recall),
        "weighted avg",
    ));
    let mut acc = vec![
        "accuracy".to_string(),
        splits[0].metrics.support.to_string(),
    ];
    for m in splits {
        acc.push(String::new());
        acc.push(format!("{:.4}", m.metrics.accuracy));
    }
    t.add_row(acc);
    right_align_from(&mut t, 1);
    let marked = match style {
        TableStyle::Terminal => "*",
        TableStyle::Markdown => "bold",
    };
    format!(
        "{split} ({marked}: the best F1 of the class; acc is the class's recall)
{t}
"
    )
}

/// `--by KEY`: per value, the best, mean and worst of the metric over the other axes.
pub fn effects_table(
    report: &SweepReport,
    key: &str,
    effects: &[Effect],
    style: TableStyle,
) -> String {
    let text = |s: &str| style.text(s);
    let mut t = new_table(style);
    t.set_header(vec![
        text(key),
        "runs".into(),
        "best".into(),
        "mean".into(),
        "worst".into(),
        "best run".into(),
    ]);
    for e in effects {
        let runs = match e.scored == e.runs {
            true => e.runs.to_string(),
            false => format!("{} ({} scored)", e.runs, e.scored),
        };
        t.add_row(vec![
            text(&e.value),
            runs,
            num(e.best),
            num(e.mean),
            num(e.worst),
            e.best_run.as_ref().map_or("-".into(), |(id, label)| {
                format!("{} ({})", text(id), text(label))
            }),
        ]);
    }
    right_align_from(&mut t, 1);
    if let Some(c) = t.column_mut(5) {
        c.set_cell_alignment(CellAlignment::Left);
    }
    let each = match report.metric.on_test() {
        false => "each run at its best epoch",
        true => "each run's kept weights on the test folder",
    };
    format!(
        "Sweep {}: {} of each {} over the other axes ({each})
{t}
",
        text(&report.sweep.name),
        report.metric.name(),
        text(key)
    )
}

/// `--run ID`: the run's config, its epoch history, then the classwise table and confusion
/// matrix (counts and row-normalised) of its best epoch, and of the test folder.
pub fn run_table(r: &RunReport, style: TableStyle, width: usize) -> String {
    let text = |s: &str| style.text(s);
    let run = &r.result.run;
    let mut out = format!(
        "Run {} ({}) of sweep {}: {}\n",
        text(&run.id),
        text(&run.label),
        text(&r.sweep.name),
        run.status
    );
    let mut cfg = new_table(style);
    cfg.set_header(vec!["setting", "value"]);
    for (k, v) in flatten(&run.config) {
        cfg.add_row(vec![text(&k), text(&v)]);
    }
    for (k, v) in [
        ("stop reason", run.stop_reason.as_deref()),
        ("error", run.error.as_deref()),
        ("checkpoint", run.checkpoint.as_deref()),
    ] {
        if let Some(v) = v {
            cfg.add_row(vec![k.into(), text(v)]);
        }
    }
    out += &format!("{cfg}\n{}", gap(style));
    let mut epochs = new_table(style);
    epochs.set_header(vec![
        "epoch",
        "phase",
        "lr",
        "train_loss",
        "train_acc",
        "val_loss",
        "val_acc",
        "val_f1",
        "seconds",
        "",
    ]);
    let best = r.result.best_epoch().map(|e| e.epoch);
    for e in &r.result.epochs {
        let mut marks = Vec::new();
        if Some(e.epoch) == best {
            marks.push(format!("best {}", r.metric.monitor.name()));
        }
        if e.checkpoint_saved {
            marks.push("saved".to_string());
        }
        epochs.add_row(vec![
            e.epoch.to_string(),
            e.phase.name().to_string(),
            format!("{:.3e}", e.lr),
            num(e.train_loss),
            num(e.train_acc),
            num(e.val_loss),
            num(e.val_acc),
            num(e.val_macro_f1),
            format!("{:.2}", e.seconds),
            marks.join(", "),
        ]);
    }
    right_align_from(&mut epochs, 2);
    if let Some(c) = epochs.column_mut(9) {
        c.set_cell_alignment(CellAlignment::Left);
    }
    out += &format!("epochs\n{epochs}\n");
    for (split, m) in r.splits() {
        out += &classwise(m, split.title(), style, width);
        out += &confusion_tables(m, style);
    }
    if !r.skipped.is_empty() {
        out += &format!("\n{} unreadable file(s) were skipped:\n", r.skipped.len());
        out += &skipped_rows(&r.skipped, style);
    }
    out
}

/// The confusion matrix (rows = true class, columns = predicted), in counts and row-normalised.
fn confusion_tables(m: &SplitMetrics, style: TableStyle) -> String {
    let names: Vec<String> = class_rows(m).iter().map(|r| style.text(&r.name)).collect();
    let table = |cells: &dyn Fn(usize, usize) -> String| {
        let mut t = new_table(style);
        let mut header = vec!["true \\ predicted".to_string()];
        header.extend(names.iter().cloned());
        t.set_header(header);
        for (i, name) in names.iter().enumerate() {
            let mut row = vec![name.clone()];
            row.extend((0..names.len()).map(|j| cells(i, j)));
            t.add_row(row);
        }
        right_align_from(&mut t, 1);
        t
    };
    let counts = &m.confusion.matrix;
    let share = row_normalised(counts);
    let get = |i: usize, j: usize| counts.get(i).and_then(|r| r.get(j)).copied().unwrap_or(0);
    let counted = table(&|i, j| get(i, j).to_string());
    let normalised = table(&|i, j| {
        share
            .get(i)
            .and_then(|r| r.get(j))
            .map_or("-".into(), |v| format!("{v:.3}"))
    });
    format!(
        "\nconfusion matrix, counts (rows: true class)\n{counted}\n{}confusion matrix, each row divided by its class's images\n{normalised}\n",
        gap(style)
    )
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
