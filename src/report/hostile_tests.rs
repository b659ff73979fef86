//! Reports of a sweep whose names carry markup and control characters: class names (folder
//! names), the sweep name, a run label, a config value, an error message, a stop reason, a
//! checkpoint path and a skipped file. Markdown tables keep one cell per value and no markup
//! or HTML gets through; terminal output holds no control or bidi character; every number
//! stays under its class.
use super::text::{for_markdown, for_terminal, is_hidden};
use super::*;
use crate::run::{Confusion, EpochRecord, Event, FailureKind, Metrics, RunEnd, RunStart, Skipped};
use crate::store::{SqliteStore, Storage};
use crate::sweep::Sweep;

const CLASSES: [&str; 6] = [
    "a|b",
    "x\ny",
    "`code`",
    "<script>alert(1)</script>",
    "\u{1b}[31mred",
    "\u{202e}evil",
];
const SWEEP: &str = "sw|eep `n` \u{1b}]0;title\u{7}\u{2067}";
const LABEL: &str = "lr=0.1 | **bold** \u{202e}cba\u{1b}[0m";
const ERROR: &str = "\u{1b}[2Jdisk | `full` <b>x</b>\nsecond line";
const STOP: &str = "early stop | <i>patience</i>\r\n\u{1b}[0m\u{200b}";
const CHECKPOINT: &str = "ck|pt/\u{202e}a.safetensors";
const SKIPPED_PATH: &str = "x/|bad\u{1b}[1m.png";
const SKIPPED_REASON: &str = "<img src=x onerror=alert(1)> | bad\nline";
const TRAIN_DIR: &str = "tr|ain_`x`<u>";

/// A store with two runs of sweep [`SWEEP`]: the first finished on [`CLASSES`], the second
/// failed with [`ERROR`].
fn store() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(TRAIN_DIR).join("a")).unwrap();
    let text = format!(
        "name = \"t\"\n[data]\ntrain = \"{TRAIN_DIR}\"\nimage_size = [8, 8]\n[grid]\nlr = [0.1, 0.01]\n"
    );
    let sweep = Sweep::from_str(&text, &dir.path().join("t.toml")).unwrap();
    let mut runs = sweep.runs();
    runs[0].label = LABEL.into();
    let mut store = SqliteStore::in_memory().unwrap();
    store.register(SWEEP, &sweep.file, &runs, true).unwrap();
    let (id, failed) = (runs[0].id.clone(), runs[1].id.clone());
    store
        .apply(&Event::Started {
            run: id.clone(),
            start: RunStart {
                device: "cpu".into(),
                classes: CLASSES.iter().map(|c| c.to_string()).collect(),
                parameters: 10,
                train_images: 60,
                val_images: 30,
                test_images: None,
                skipped: vec![Skipped {
                    path: SKIPPED_PATH.into(),
                    reason: SKIPPED_REASON.into(),
                }],
                batch_size: 8,
                resumed_from: None,
            },
        })
        .unwrap();
    // Class k: k + 1 right, one taken for class k + 1, so every class has its own numbers.
    let mut confusion = Confusion::new(CLASSES.len());
    for k in 0..CLASSES.len() {
        for _ in 0..=k {
            confusion.add(k, k);
        }
        confusion.add(k, (k + 1) % CLASSES.len());
    }
    let val = Metrics::from_confusion(&confusion);
    let summary = crate::run::EpochSummary {
        epoch: 1,
        phase: Default::default(),
        lr: 0.1,
        train_loss: 0.5,
        train_acc: 0.7,
        val_loss: 0.4,
        val_acc: val.accuracy,
        val_macro_f1: val.macro_f1,
        val_weighted_f1: val.weighted_f1,
    };
    let record = EpochRecord {
        summary,
        seconds: 1.5,
        images_per_sec: 100.0,
        val,
        confusion,
        checkpoint_saved: true,
    };
    store
        .apply(&Event::Epoch {
            run: id.clone(),
            record,
        })
        .unwrap();
    let end = RunEnd {
        stop_reason: STOP.into(),
        checkpoint: Some(CHECKPOINT.into()),
        checkpoint_epoch: Some(1),
    };
    store.apply(&Event::Finished { run: id, end }).unwrap();
    store
        .apply(&Event::Failed {
            run: failed,
            error: ERROR.into(),
            kind: FailureKind::Other,
        })
        .unwrap();
    (store, dir)
}

fn reports() -> (SweepReport, BestRun) {
    let (store, _dir) = store();
    let load = || SweepReport::load(&store, Sweeps::Latest, Monitor::ValMacroF1).unwrap();
    let best = BestRun::load(&store, &load()).unwrap();
    (load(), best)
}

/// The `|` of `line` that are not backslash-escaped.
fn unescaped_pipes(line: &str) -> usize {
    md_cells(line).len().saturating_sub(1)
}

/// `line` split at its unescaped `|`, each piece trimmed.
fn md_cells(line: &str) -> Vec<String> {
    let (mut cells, mut cell) = (Vec::new(), String::new());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                cell.push(c);
                cell.extend(chars.next());
            }
            '|' => cells.push(std::mem::take(&mut cell).trim().to_string()),
            _ => cell.push(c),
        }
    }
    cells.push(cell.trim().to_string());
    cells
}

/// A terminal table row split into its cells (comfy-table's UTF-8 borders).
fn term_cells(line: &str) -> Vec<String> {
    line.trim_matches('│')
        .split('┆')
        .map(|c| c.trim().to_string())
        .collect()
}

/// Markdown structure: no HTML but our `<br>`, no unescaped backtick, no hidden character,
/// and each table's rows have as many cell borders as its header.
fn assert_inert_markdown(out: &str) {
    assert!(!out.contains("<script"), "{out}");
    let no_br = out.replace("<br>", "");
    assert!(!no_br.contains('<') && !no_br.contains('>'), "{out}");
    assert!(
        !out.chars().any(|c| c != '\n' && is_hidden(c)),
        "hidden character in\n{out:?}"
    );
    let mut escaped = false;
    for c in out.chars() {
        assert!(escaped || c != '`', "unescaped backtick in\n{out}");
        escaped = !escaped && c == '\\';
    }
    let mut header: Option<usize> = None;
    for line in out.lines() {
        if !line.starts_with('|') {
            header = None;
            continue;
        }
        let n = unescaped_pipes(line);
        let want = *header.get_or_insert(n);
        assert_eq!(
            n, want,
            "row {line:?} has {n} cell borders, its header {want}\n{out}"
        );
    }
}

fn assert_inert_terminal(out: &str) {
    assert!(!out.as_bytes().contains(&0x1b), "ESC in\n{out:?}");
    assert!(
        !out.chars().any(|c| c != '\n' && is_hidden(c)),
        "hidden character in\n{out:?}"
    );
}

/// The numbers of the best run's classwise validation table, by class name as shown.
fn expected(best: &BestRun) -> Vec<(String, [String; 4])> {
    class_rows(&best.val)
        .iter()
        .map(|r| {
            let nums = [
                format!("{:.4}", r.f1),
                format!("{:.4}", r.recall),
                format!("{:.4}", r.precision),
                r.support.to_string(),
            ];
            (r.name.clone(), nums)
        })
        .collect()
}

/// The classwise table as cells: the header line (the one after the title) and its four rows.
fn classwise_cells(out: &str, cells: fn(&str) -> Vec<String>) -> Vec<Vec<String>> {
    let lines: Vec<&str> = out.lines().collect();
    let title = lines
        .iter()
        .position(|l| l.contains("CLASSWISE RESULT (validation"))
        .unwrap_or_else(|| panic!("no classwise table in\n{out}"));
    lines[title + 1..]
        .iter()
        .filter(|l| l.contains('┆') || (l.starts_with('|') && !l.starts_with("|--")))
        .take(5)
        .map(|l| cells(l))
        .collect()
}

fn assert_numbers_under_classes(out: &str, best: &BestRun, markdown: bool) {
    let table = if markdown {
        classwise_cells(out, md_cells)
    } else {
        classwise_cells(out, term_cells)
    };
    let distinct: std::collections::HashSet<_> =
        expected(best).into_iter().map(|e| e.1[0].clone()).collect();
    assert_eq!(distinct.len(), CLASSES.len(), "every class has its own f1");
    for (name, nums) in expected(best) {
        let shown = if markdown {
            for_markdown(&name)
        } else {
            for_terminal(&name)
        };
        let col = table[0]
            .iter()
            .position(|h| *h == shown)
            .unwrap_or_else(|| panic!("no column {shown:?} in {:?}\n{out}", table[0]));
        for (row, (label, want)) in table[1..]
            .iter()
            .zip(["f1", "acc", "precision", "support"].iter().zip(&nums))
        {
            let at = |i: usize| row.get(i).map(String::as_str).unwrap_or("");
            assert_eq!(at(usize::from(markdown)), *label, "{row:?}\n{out}");
            assert_eq!(at(col), want, "{label} of {name:?}\n{out}");
        }
    }
}

#[test]
fn markdown_best_report_keeps_hostile_names_in_their_cells() {
    let (_, best) = reports();
    let out = best_table(&best, TableStyle::Markdown, 10_000);
    assert_inert_markdown(&out);
    assert_numbers_under_classes(&out, &best, true);
    for raw in [SKIPPED_PATH, SKIPPED_REASON, CHECKPOINT, TRAIN_DIR] {
        let shown = for_markdown(raw);
        assert!(out.contains(&shown), "{shown} missing in\n{out}");
    }
    assert!(out.contains(&for_markdown(STOP)), "{out}");
}

#[test]
fn terminal_best_report_has_no_control_characters() {
    let (_, best) = reports();
    let out = best_table(&best, TableStyle::Terminal, 10_000);
    assert_inert_terminal(&out);
    assert_numbers_under_classes(&out, &best, false);
    for raw in [SKIPPED_PATH, SKIPPED_REASON, CHECKPOINT, STOP, LABEL, SWEEP] {
        let shown = for_terminal(raw);
        assert!(out.contains(&shown), "{shown} missing in\n{out}");
    }
    // Wrapped at a narrow width, the names still sit above their numbers.
    let narrow = best_table(&best, TableStyle::Terminal, 40);
    assert_inert_terminal(&narrow);
}

#[test]
fn runs_tables_keep_labels_and_errors_in_their_cells() {
    let (report, _) = reports();
    let md = runs_table(&report, TableStyle::Markdown);
    assert_inert_markdown(&md);
    let term = runs_table(&report, TableStyle::Terminal);
    assert_inert_terminal(&term);
    for (out, cells, esc) in [
        (
            &md,
            md_cells as fn(&str) -> Vec<String>,
            for_markdown as fn(&str) -> String,
        ),
        (&term, term_cells, for_terminal),
    ] {
        assert!(out.contains(&esc(SWEEP)), "{out}");
        let rows: Vec<Vec<String>> = out
            .lines()
            .filter(|l| l.contains('┆') || (l.starts_with('|') && !l.starts_with("|--")))
            .map(cells)
            .collect();
        let header = &rows[0];
        let at = |row: &Vec<String>, name: &str| {
            let i = header.iter().position(|h| h == name).unwrap();
            row[i].clone()
        };
        let done = rows.iter().find(|r| at(r, "status") == "done").unwrap();
        assert_eq!(at(done, "label"), esc(LABEL), "{out}");
        assert_eq!(at(done, "epochs"), "1", "{out}");
        assert_eq!(at(done, "val_loss"), "0.4000", "{out}");
        let failed = rows
            .iter()
            .find(|r| at(r, "status").starts_with("failed"))
            .unwrap();
        assert_eq!(
            at(failed, "status"),
            format!("failed: {}", esc("\u{1b}[2Jdisk | `full` <b>x</b>")),
            "{out}"
        );
        assert_eq!(at(failed, "val_loss"), "-", "{out}");
    }
}

#[test]
fn errors_name_the_sweep_without_control_characters() {
    let mut store = SqliteStore::in_memory().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("train/a")).unwrap();
    let text = "name = \"t\"\n[data]\ntrain = \"train\"\nimage_size = [8, 8]\n[grid]\nlr = [0.1]\n";
    let sweep = Sweep::from_str(text, &dir.path().join("t.toml")).unwrap();
    store
        .register(SWEEP, &sweep.file, &sweep.runs(), true)
        .unwrap();
    let report = SweepReport::load(&store, Sweeps::Latest, Monitor::ValMacroF1).unwrap();
    let err = BestRun::load(&store, &report).unwrap_err().to_string();
    assert_inert_terminal(&err);
    assert!(err.contains(&for_terminal(SWEEP)), "{err}");
}

/// `--compare` and `--by` keep hostile class names, sweep names and labels inert too.
#[test]
fn comparisons_keep_hostile_names_inert() {
    let (store, _dir) = store();
    let load = || SweepReport::load(&store, Sweeps::Latest, Monitor::ValMacroF1).unwrap();
    let c = Comparison::by_key(&store, &load(), "lr").unwrap();
    assert_eq!(c.columns.len(), 1, "the failed run's lr has no epoch");
    assert_eq!(c.missing, ["0.01"]);
    let md = compare_table(&c, TableStyle::Markdown);
    assert_inert_markdown(&md);
    assert!(md.contains(&for_markdown(CLASSES[3])), "{md}");
    assert_inert_terminal(&compare_table(&c, TableStyle::Terminal));
    let effects = super::compare::effects(&load(), "lr").unwrap();
    let report = load();
    assert_inert_markdown(&effects_table(
        &report,
        "lr",
        &effects,
        TableStyle::Markdown,
    ));
    assert_inert_terminal(&effects_table(
        &report,
        "lr",
        &effects,
        TableStyle::Terminal,
    ));
    let json = to_json_string(&compare_json(&c));
    assert!(
        !json.contains('\u{1b}') && !json.contains('\u{202e}'),
        "{json}"
    );
}

/// `--run ID` keeps them inert as well: config, stop reason, checkpoint, skipped files,
/// classwise and confusion tables.
#[test]
fn one_run_report_keeps_hostile_names_inert() {
    let (store, _dir) = store();
    let load = || SweepReport::load(&store, Sweeps::Latest, Monitor::ValMacroF1).unwrap();
    let id = load().runs[0].run.id.clone();
    let r = RunReport::load(&store, &load(), &id).unwrap();
    let md = run_table(&r, TableStyle::Markdown, 80);
    assert_inert_markdown(&md);
    assert!(md.contains(&for_markdown(SKIPPED_REASON)), "{md}");
    assert_inert_terminal(&run_table(&r, TableStyle::Terminal, 80));
}

/// The HTML report holds every hostile name as text: no tag, script, entity or control
/// character gets through, and nothing is fetched from the network.
#[test]
fn html_report_escapes_every_name() {
    let (store, _dir) = store();
    let load = || SweepReport::load(&store, Sweeps::Latest, Monitor::ValMacroF1).unwrap();
    let report = load();
    let best = BestRun::load(&store, &load()).unwrap();
    let c = Comparison::by_key(&store, &load(), "lr").unwrap();
    let effects = super::compare::effects(&report, "lr").unwrap();
    let curves: Vec<&RunResult> = report.runs.iter().take(1).collect();
    let sections = super::html::Sections {
        best: Some(&best),
        comparison: Some(&c),
        effects: Some(("lr", &effects)),
        curves,
    };
    let page = super::html::html_report(&report, &sections).unwrap();
    assert!(!page.contains("<script"), "a name became a tag");
    assert!(!page.contains("<img") && !page.contains("<b>") && !page.contains("<i>"));
    // The only address is SVG's namespace, which is a name, never fetched.
    let addresses = page.matches("http").count();
    assert_eq!(
        addresses,
        page.matches("http://www.w3.org/2000/svg").count()
    );
    assert!(
        !page.contains(" src=\"") && !page.contains(" href=\""),
        "nothing is loaded"
    );
    assert!(
        !page.chars().any(|c| c != '\n' && is_hidden(c)),
        "hidden character"
    );
    for name in CLASSES {
        let shown = super::html::escape(name);
        assert!(page.contains(&shown), "{name:?} as {shown:?}");
    }
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.contains(&super::html::escape(SKIPPED_REASON)));
    assert!(page.contains(&super::html::escape(ERROR.lines().next().unwrap())));
    assert!(
        page.matches("<svg").count() >= 3,
        "confusion matrix and two curves"
    );
}
