//! `sweep report`: the runs of a stored sweep, `--best` with its classwise table, `--compare
//! KEY` (the best run of each value, class by class) or `--by KEY` (what a hyperparameter does).
use std::io::IsTerminal;
use std::process::ExitCode;

use clap::ValueEnum;

use super::StoredSweep;
use crate::report::csv;
use crate::report::{
    best_json, best_table, compare_json, compare_table, effects_json, effects_table, run_json,
    run_table, runs_json, runs_table, to_json_string, BestRun, Comparison, Ranking, RunReport,
    Split, SweepReport, Sweeps, TableStyle,
};
use crate::run::Monitor;
use crate::store;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Markdown,
    Json,
    Csv,
    /// One self-contained page: the runs, the best run (classwise table, confusion matrix),
    /// the comparison (--compare, else by backbone when there are several), --by, and
    /// learning curves.
    Html,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Metric {
    ValMacroF1,
    ValAcc,
    ValWeightedF1,
    ValLoss,
    TrainLoss,
    TrainAcc,
}

impl From<Metric> for Monitor {
    fn from(m: Metric) -> Monitor {
        match m {
            Metric::ValMacroF1 => Monitor::ValMacroF1,
            Metric::ValAcc => Monitor::ValAcc,
            Metric::ValWeightedF1 => Monitor::ValWeightedF1,
            Metric::ValLoss => Monitor::ValLoss,
            Metric::TrainLoss => Monitor::TrainLoss,
            Metric::TrainAcc => Monitor::TrainAcc,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SplitArg {
    Val,
    Test,
}

impl From<SplitArg> for Split {
    fn from(s: SplitArg) -> Split {
        match s {
            SplitArg::Val => Split::Val,
            SplitArg::Test => Split::Test,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub stored: StoredSweep,
    /// Show the best run: its config and classwise table.
    #[arg(long, conflicts_with_all = ["compare", "by"])]
    pub best: bool,
    /// Compare the best run of each value of a grid key (backbone, lr, transfer, ...) class by
    /// class, or named runs: `run:ID,ID,...` (ids or their first 4+ characters). With --by
    /// only in --format html, which holds both.
    #[arg(long, value_name = "KEY")]
    pub compare: Option<String>,
    /// What a grid key does: the best, mean and worst of the metric per value, over the
    /// other axes.
    #[arg(long, value_name = "KEY", conflicts_with = "run")]
    pub by: Option<String>,
    /// One run in full: its config, epoch history (phase, lr, losses, accuracy, macro F1,
    /// seconds), classwise table and confusion matrix (counts and row-normalised). Its id or
    /// first 4+ characters.
    #[arg(long, value_name = "ID", conflicts_with_all = ["best", "compare"])]
    pub run: Option<String>,
    /// The metric that ranks runs and picks each run's best epoch.
    #[arg(long, value_enum, default_value = "val_macro_f1")]
    pub metric: Metric,
    /// Rank and show one split: `val`, or `test` (runs ranked by the test folder's value of
    /// --metric for their kept weights, and only test tables shown). Each run's best epoch is
    /// still chosen on validation. Default: rank on validation, show both.
    #[arg(long, value_enum)]
    pub split: Option<SplitArg>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Width the classwise table wraps at (default: $COLUMNS, else 100).
    #[arg(long)]
    pub width: Option<usize>,
    /// Only the runs whose config has KEY=VALUE (a grid key, or a config path such as
    /// data.normalize); repeat to narrow further.
    #[arg(long = "where", value_name = "KEY=VALUE", value_parser = key_value)]
    pub filters: Vec<(String, String)>,
    /// Only the N best: runs in the runs table (and the HTML page's), compared values or
    /// runs with --compare (the N best of them, kept in their order).
    #[arg(long, value_name = "N", conflicts_with_all = ["best", "by", "run"])]
    pub top: Option<usize>,
    /// Write the report to FILE (its folder is made) instead of printing it.
    #[arg(long, value_name = "FILE")]
    pub out: Option<std::path::PathBuf>,
    /// Also draw the pictures as SVG and PNG files in reports/<sweep>/: the learning curves
    /// (loss, accuracy) of the 5 best runs, or of --run, and the confusion matrices of the
    /// best run, or of --run.
    #[arg(long)]
    pub plots: bool,
}

/// `--plots`: each picture as SVG and PNG under `reports/<sweep>/`; returns their paths.
fn plots(
    store: &dyn store::Reader,
    report: &SweepReport,
    run: Option<&str>,
) -> anyhow::Result<Vec<std::path::PathBuf>> {
    use crate::report::plot;
    let (runs, best) = match run {
        Some(id) => {
            let r = RunReport::load(store, report, id)?;
            let val = r.val.clone();
            (vec![r.result.clone()], val.map(|v| (r.result, v)))
        }
        None => {
            let best = BestRun::load(store, report).ok().map(|b| (b.result, b.val));
            (curve_runs(report), best)
        }
    };
    let dir = std::path::Path::new("reports").join(report.sweep.name.as_str());
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    let mut write = |name: String, chart: &dyn Fn() -> Result<(String, Vec<u8>), String>| {
        let (svg, png) = chart().map_err(anyhow::Error::msg)?;
        for (path, bytes) in [
            (dir.join(format!("{name}.svg")), svg.into_bytes()),
            (dir.join(format!("{name}.png")), png),
        ] {
            write_atomically(&path, &bytes)?;
            files.push(path);
        }
        anyhow::Ok(())
    };
    fn both(p: &impl plot::Picture) -> Result<(String, Vec<u8>), String> {
        Ok((plot::svg(p)?, plot::png(p)?))
    }
    let refs: Vec<&crate::report::RunResult> = runs.iter().collect();
    if !refs.is_empty() {
        for (name, chart) in plot::learning_curves(&refs) {
            write(name.to_string(), &|| both(&chart))?;
        }
    }
    if let Some((result, val)) = best {
        let id = &result.run.id;
        let title = format!("{id} validation, epoch {}", val.epoch);
        write(format!("confusion-{id}-val"), &|| {
            both(&plot::confusion(&val, &title))
        })?;
        if let Some(test) = &result.test {
            let title = format!("{id} test");
            write(format!("confusion-{id}-test"), &|| {
                both(&plot::confusion(test, &title))
            })?;
        }
    }
    Ok(files)
}

/// How many of the best runs the learning curves overlay.
const CURVES: usize = 5;

/// The runs whose learning curves are drawn: the best ones that stored an epoch.
fn curve_runs(report: &SweepReport) -> Vec<crate::report::RunResult> {
    report
        .runs
        .iter()
        .filter(|r| r.best_epoch().is_some())
        .take(CURVES)
        .cloned()
        .collect()
}

/// `--format html`: the page, with the sections the other flags ask for.
fn html(store: &dyn store::Reader, mut report: SweepReport, args: &Args) -> anyhow::Result<String> {
    use crate::report::html::{html_report, Sections};
    let comparison = match (&args.compare, args.run.is_some()) {
        (Some(what), _) => Some(comparison(store, &report, what, args.top)?),
        // Several backbones: the users' question, answered by default.
        (None, false) => {
            let mut backbones: Vec<String> = report
                .runs
                .iter()
                .filter_map(|r| crate::report::compare::config_value(&r.run.config, "backbone"))
                .collect();
            backbones.sort();
            backbones.dedup();
            (backbones.len() > 1)
                .then(|| Comparison::by_key(store, &report, "backbone"))
                .transpose()?
        }
        (None, true) => None,
    };
    let effects = match &args.by {
        Some(key) => Some(crate::report::compare::effects(&report, key)?),
        None => None,
    };
    let (best, curves): (Option<BestRun>, Vec<crate::report::RunResult>) = match &args.run {
        Some(id) => {
            let r = RunReport::load(store, &report, id)?;
            let curves = vec![r.result.clone()];
            let extra = r.extra;
            let best = r.val.map(|val| BestRun {
                extra,
                sweep: r.sweep,
                metric: r.metric,
                result: r.result,
                val,
                skipped: r.skipped,
            });
            report
                .runs
                .retain(|x| curves.iter().any(|c| c.run.id == x.run.id));
            (best, curves)
        }
        None => (BestRun::load(store, &report).ok(), curve_runs(&report)),
    };
    if let Some(n) = args.top {
        report.runs.truncate(n);
    }
    let sections = Sections {
        best: best.as_ref(),
        comparison: comparison.as_ref(),
        effects: effects
            .as_deref()
            .zip(args.by.as_deref())
            .map(|(e, k)| (k, e)),
        curves: curves.iter().collect(),
    };
    html_report(&report, &sections).map_err(anyhow::Error::msg)
}

/// `--compare WHAT`: named runs (`run:ID,ID,...`) or the best run of each value of a key;
/// with `--top N` only the N best columns.
fn comparison(
    store: &dyn store::Reader,
    report: &SweepReport,
    what: &str,
    top: Option<usize>,
) -> anyhow::Result<Comparison> {
    let mut c = comparison_of(store, report, what)?;
    if let Some(n) = top {
        c.keep_best(n);
    }
    Ok(c)
}

fn comparison_of(
    store: &dyn store::Reader,
    report: &SweepReport,
    what: &str,
) -> anyhow::Result<Comparison> {
    Ok(match what.strip_prefix("run:") {
        Some(ids) => {
            let ids: Vec<&str> = ids
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            Comparison::of_runs(store, report, &ids)?
        }
        None => Comparison::by_key(store, report, what)?,
    })
}

fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!(
            "expected KEY=VALUE, e.g. optimizer=sgd; got \"{s}\""
        )),
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.compare.is_some() && args.by.is_some() && args.format != Format::Html {
        anyhow::bail!(
            "--compare and --by are one report each; give one, or add --format html for a page with both"
        );
    }
    let store = store::open_read_only(&args.stored.db.db)?;
    let ranking = Ranking::new(args.metric.into(), args.split.map(Split::from))?;
    let sweeps = Sweeps::from_arg(args.stored.sweep.as_deref());
    if sweeps == Sweeps::All && store.sweeps()?.iter().any(|s| s.name == "all") {
        eprintln!("note: --sweep all reports every sweep, the one named \"all\" among them");
    }
    let mut report = SweepReport::load(store.as_ref(), sweeps, ranking)?;
    report.keep_where(&args.filters)?;
    if args.plots {
        for path in plots(store.as_ref(), &report, args.run.as_deref())? {
            eprintln!("wrote {}", path.display());
        }
    }
    let style = if args.format == Format::Markdown {
        TableStyle::Markdown
    } else {
        TableStyle::Terminal
    };
    let out = if args.format == Format::Html {
        html(store.as_ref(), report, &args)?
    } else if let Some(id) = &args.run {
        let r = RunReport::load(store.as_ref(), &report, id)?;
        match args.format {
            Format::Json => to_json_string(&run_json(&r)),
            Format::Csv => csv::run_csv(&r),
            _ => run_table(&r, style, width(args.width)),
        }
    } else if let Some(what) = &args.compare {
        let c = comparison(store.as_ref(), &report, what, args.top)?;
        match args.format {
            Format::Json => to_json_string(&compare_json(&c)),
            Format::Csv => csv::compare_csv(&c),
            _ => compare_table(&c, style),
        }
    } else if let Some(key) = &args.by {
        let effects = crate::report::compare::effects(&report, key)?;
        match args.format {
            Format::Json => to_json_string(&effects_json(&report, key, &effects)),
            Format::Csv => csv::effects_csv(&report, key, &effects),
            _ => effects_table(&report, key, &effects, style),
        }
    } else if args.best {
        let best = BestRun::load(store.as_ref(), &report)?;
        match args.format {
            Format::Json => to_json_string(&best_json(&best)),
            Format::Csv => csv::best_csv(&best),
            _ => best_table(&best, style, width(args.width)),
        }
    } else {
        if let Some(n) = args.top {
            report.runs.truncate(n);
        }
        match args.format {
            Format::Json => to_json_string(&runs_json(&report)),
            Format::Csv => csv::runs_csv(&report),
            _ => runs_table(&report, style),
        }
    };
    let out = format!("{}\n", out.trim_end());
    match &args.out {
        Some(path) => {
            write_atomically(path, &out)?;
            eprintln!("wrote {}", path.display());
        }
        // CSV holds names exactly as they are; on a terminal their hidden characters (escape
        // sequences, bidi overrides) are shown as escapes, as every other format does.
        None if args.format == Format::Csv && std::io::stdout().is_terminal() => {
            for line in out.lines() {
                println!("{}", crate::report::text::for_terminal(line));
            }
        }
        None => print!("{out}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn width(arg: Option<usize>) -> usize {
    arg.or_else(|| std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()))
        .unwrap_or(100)
}

/// Writes `text` (or a picture's bytes) to `path` through a temporary file beside it, so a reader never sees half a
/// report and a failed write leaves the old one; the folder is made first.
pub(super) fn write_atomically(
    path: &std::path::Path,
    text: impl AsRef<[u8]>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot make the folder {} for --out", dir.display()))?;
    }
    let tmp = path.with_extension("tmp-sweep-report");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .with_context(|| format!("cannot write the report to {}", path.display()))
}
