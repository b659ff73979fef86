//! The HTML report: one self-contained file to share (inline CSS and SVG; no script, no font,
//! no image from the network): the runs, the best run's classwise result and confusion
//! matrix, a comparison class by class, what a hyperparameter does, and learning curves.
//! Every string from outside (sweep, labels, class names, config values, errors) is escaped
//! for HTML after its hidden characters are made visible.
use super::compare::{best_by_class, Comparison, Effect};
use super::table::flatten;
use super::text::for_terminal;
use super::{class_rows, plot, BestRun, RunResult, SweepReport};
use crate::store::SplitMetrics;

/// `s` from outside as HTML text: hidden characters escaped visibly, then `& < > " '`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in for_terminal(s).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;\
color:#222;padding:0 1em}h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:\
1px solid #ddd}table{border-collapse:collapse;margin:.6em 0;font-size:.9em}th,td{border:1px \
solid #ccc;padding:.25em .6em}th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:\
tabular-nums}strong{color:#0a5}figure{display:inline-block;margin:.5em}.note{color:#666}";

/// What goes into the page besides the runs table.
#[derive(Default)]
pub struct Sections<'a> {
    pub best: Option<&'a BestRun>,
    pub comparison: Option<&'a Comparison>,
    pub effects: Option<(&'a str, &'a [Effect])>,
    /// The runs whose learning curves are drawn (best first).
    pub curves: Vec<&'a RunResult>,
}

fn num(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.4}")).unwrap_or_else(|| "-".into())
}

/// A table: `header` cells and `rows` of already escaped (or our own) HTML cells; numbers
/// (a cell whose first word is one, such as `0.8931` or `30 (finetune)`) are right-aligned.
fn table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut out = String::from("<table><thead><tr>");
    for h in header {
        out += &format!("<th>{h}</th>");
    }
    out += "</tr></thead><tbody>";
    for row in rows {
        out += "<tr>";
        for cell in row {
            let numeric = cell
                .trim_start_matches("<strong>")
                .trim_end_matches("</strong>")
                .split_whitespace()
                .next()
                .is_some_and(|w| w.parse::<f64>().is_ok());
            out += &match numeric {
                true => format!("<td class=\"n\">{cell}</td>"),
                false => format!("<td>{cell}</td>"),
            };
        }
        out += "</tr>";
    }
    out + "</tbody></table>\n"
}

fn runs_section(report: &SweepReport) -> String {
    let scores = report.score_columns();
    let sweep_column = report.several.then_some("sweep");
    let mut header: Vec<String> = vec!["rank".into()];
    header.extend(sweep_column.map(String::from));
    header.extend(["#", "run", "label", "status", "epochs", "best"].map(String::from));
    header.extend(scores.iter().map(|s| s.0.to_string()));
    let rows: Vec<Vec<String>> = report
        .runs
        .iter()
        .enumerate()
        .map(|(rank, r)| {
            let mut status = escape(r.run.status.as_str());
            if let Some(err) = &r.run.error {
                status += &format!(": {}", escape(err.lines().next().unwrap_or("")));
            }
            let mut row = vec![(rank + 1).to_string()];
            row.extend(sweep_column.map(|_| escape(&r.sweep)));
            row.extend([
                r.run.index.to_string(),
                escape(&r.run.id),
                escape(&r.run.label),
                status,
                r.epochs.len().to_string(),
                r.best_epoch_text(),
            ]);
            row.extend(scores.iter().map(|(_, value)| num(value(r))));
            row
        })
        .collect();
    format!(
        "<h2>Runs, best first by {}</h2>\n{}",
        report.metric.name(),
        table(&header, &rows)
    )
}

fn classwise(m: &SplitMetrics, split: &str) -> String {
    let header: Vec<String> = ["class", "f1", "acc (recall)", "precision", "support"]
        .map(String::from)
        .to_vec();
    let mut rows: Vec<Vec<String>> = class_rows(m)
        .iter()
        .map(|c| {
            vec![
                escape(&c.name),
                format!("{:.4}", c.f1),
                format!("{:.4}", c.recall),
                format!("{:.4}", c.precision),
                c.support.to_string(),
            ]
        })
        .collect();
    let mm = &m.metrics;
    rows.push(vec![
        "macro avg".into(),
        format!("{:.4}", mm.macro_f1),
        format!("{:.4}", mm.macro_recall),
        format!("{:.4}", mm.macro_precision),
        mm.support.to_string(),
    ]);
    rows.push(vec![
        "weighted avg".into(),
        format!("{:.4}", mm.weighted_f1),
        format!("{:.4}", mm.weighted_recall),
        format!("{:.4}", mm.weighted_precision),
        mm.support.to_string(),
    ]);
    rows.push(vec![
        "accuracy".into(),
        String::new(),
        format!("{:.4}", mm.accuracy),
        String::new(),
        mm.support.to_string(),
    ]);
    format!(
        "<h3>{split}, epoch {}</h3>\n{}",
        m.epoch,
        table(&header, &rows)
    )
}

fn best_section(best: &BestRun) -> Result<String, String> {
    let run = &best.result.run;
    let mut out = format!(
        "<h2>Best run: {} ({})</h2>\n",
        escape(&run.id),
        escape(&run.label)
    );
    let config: Vec<Vec<String>> = flatten(&run.config)
        .into_iter()
        .map(|(k, v)| vec![escape(&k), escape(&v)])
        .collect();
    out += &table(&["setting".into(), "value".into()], &config);
    for (split, m) in best.splits() {
        out += &classwise(m, split.title());
        let title = format!("{} confusion matrix (rows: true class)", split.title());
        out += &format!(
            "<figure>{}</figure>\n",
            plot::svg(&plot::confusion(m, &title))?
        );
    }
    if !best.skipped.is_empty() {
        let rows: Vec<Vec<String>> = best
            .skipped
            .iter()
            .map(|s| vec![escape(&s.path.to_string_lossy()), escape(&s.reason)])
            .collect();
        out += "<h3>Skipped files</h3>\n";
        out += &table(&["file".into(), "reason".into()], &rows);
    }
    Ok(out)
}

fn side_by_side(c: &Comparison, splits: &[&SplitMetrics], split: &str) -> String {
    let Some(first) = splits.first() else {
        return String::new();
    };
    let mut header = vec!["class".to_string(), "support".to_string()];
    for col in &c.columns {
        header.push(format!("{} f1", escape(&col.value)));
        header.push(format!("{} acc", escape(&col.value)));
    }
    let best = best_by_class(splits);
    let mut rows = Vec::new();
    for (k, row) in class_rows(first).iter().enumerate() {
        let mut cells = vec![escape(&row.name), row.support.to_string()];
        for (i, m) in splits.iter().enumerate() {
            let cls = m.metrics.classes.get(k);
            let f1 = cls.map_or("-".into(), |x| format!("{:.4}", x.f1));
            cells.push(match best[k].contains(&i) {
                true => format!("<strong>{f1}</strong>"),
                false => f1,
            });
            cells.push(cls.map_or("-".into(), |x| format!("{:.4}", x.recall)));
        }
        rows.push(cells);
    }
    let mut avg = vec!["macro avg".to_string(), String::new()];
    let mut acc = vec!["accuracy".to_string(), first.metrics.support.to_string()];
    for m in splits {
        avg.push(format!("{:.4}", m.metrics.macro_f1));
        avg.push(format!("{:.4}", m.metrics.macro_recall));
        acc.push(String::new());
        acc.push(format!("{:.4}", m.metrics.accuracy));
    }
    rows.push(avg);
    rows.push(acc);
    format!(
        "<h3>{split} (bold: the best F1 of the class)</h3>\n{}",
        table(&header, &rows)
    )
}

fn comparison_section(c: &Comparison) -> String {
    let title = match &c.key {
        Some(key) => format!(
            "The best run of each {} by {}",
            escape(key),
            c.metric.name()
        ),
        None => "Named runs side by side".into(),
    };
    let mut out = format!("<h2>{title}</h2>\n");
    let rows: Vec<Vec<String>> = c
        .columns
        .iter()
        .map(|col| {
            vec![
                escape(&col.value),
                escape(&col.result.run.id),
                escape(&col.result.run.label),
                num(col.result.score(c.metric)),
            ]
        })
        .collect();
    out += &table(
        &[
            "value".into(),
            "run".into(),
            "label".into(),
            c.metric.name().into(),
        ],
        &rows,
    );
    for (split, metrics) in c.splits() {
        out += &side_by_side(c, &metrics, split.title());
    }
    out
}

fn effects_section(report: &SweepReport, key: &str, effects: &[Effect]) -> String {
    let rows: Vec<Vec<String>> = effects
        .iter()
        .map(|e| {
            vec![
                escape(&e.value),
                format!("{} ({} scored)", e.runs, e.scored),
                num(e.best),
                num(e.mean),
                num(e.worst),
            ]
        })
        .collect();
    format!(
        "<h2>{} of each {} over the other axes</h2>\n{}",
        report.metric.name(),
        escape(key),
        table(
            &["value", "runs", "best", "mean", "worst"].map(String::from),
            &rows
        )
    )
}

/// The whole page.
pub fn html_report(report: &SweepReport, s: &Sections) -> Result<String, String> {
    let name = escape(&report.sweep.name);
    let at = match report.metric.on_test() {
        false => "at each run's best epoch",
        true => "of each run's kept weights on the test folder",
    };
    let mut body = format!(
        "<h1>Sweep {name}</h1>\n<p class=\"note\">{} runs, ranked by {} {at}. \
         Made by sweep from its database.</p>\n",
        report.runs.len(),
        report.metric.name()
    );
    if let Some(c) = s.comparison {
        body += &comparison_section(c);
    }
    if let Some((key, effects)) = s.effects {
        body += &effects_section(report, key, effects);
    }
    body += &runs_section(report);
    if let Some(best) = s.best {
        body += &best_section(best)?;
    }
    if !s.curves.is_empty() {
        body += "<h2>Learning curves (solid: validation, dashed: training)</h2>\n";
        for (_, chart) in plot::learning_curves(&s.curves) {
            body += &format!("<figure>{}</figure>\n", plot::svg(&chart)?);
        }
    }
    Ok(format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>sweep {name}</title><style>{STYLE}</style></head>\n<body>\n{body}</body></html>\n"
    ))
}
