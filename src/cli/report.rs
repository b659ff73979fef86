//! `sweep report`: the runs of a stored sweep, `--best` with its classwise table, `--compare
//! KEY` (the best run of each value, class by class) or `--by KEY` (what a hyperparameter does).
use std::process::ExitCode;

use clap::ValueEnum;

use super::StoredSweep;
use crate::report::{
    best_json, best_table, compare_json, compare_table, effects_json, effects_table, run_json,
    run_table, runs_json, runs_table, to_json_string, BestRun, Comparison, RunReport, SweepReport,
    TableStyle,
};
use crate::run::Monitor;
use crate::store;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Markdown,
    Json,
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

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub stored: StoredSweep,
    /// Show the best run: its config and classwise table.
    #[arg(long, conflicts_with_all = ["compare", "by"])]
    pub best: bool,
    /// Compare the best run of each value of a grid key (backbone, lr, transfer, ...) class by
    /// class, or named runs: `run:ID,ID,...` (ids or their first 4+ characters).
    #[arg(long, value_name = "KEY", conflicts_with = "by")]
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
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Width the classwise table wraps at (default: $COLUMNS, else 100).
    #[arg(long)]
    pub width: Option<usize>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let store = store::open_read_only(&args.stored.db.db)?;
    let report = SweepReport::load(
        store.as_ref(),
        args.stored.sweep.as_deref(),
        args.metric.into(),
    )?;
    let style = if args.format == Format::Markdown {
        TableStyle::Markdown
    } else {
        TableStyle::Terminal
    };
    let out = if let Some(id) = &args.run {
        let r = RunReport::load(store.as_ref(), report, id)?;
        match args.format {
            Format::Json => to_json_string(&run_json(&r)),
            _ => run_table(&r, style, width(args.width)),
        }
    } else if let Some(what) = &args.compare {
        let c = match what.strip_prefix("run:") {
            Some(ids) => {
                let ids: Vec<&str> = ids
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect();
                Comparison::of_runs(store.as_ref(), report, &ids)?
            }
            None => Comparison::by_key(store.as_ref(), report, what)?,
        };
        match args.format {
            Format::Json => to_json_string(&compare_json(&c)),
            _ => compare_table(&c, style),
        }
    } else if let Some(key) = &args.by {
        let effects = crate::report::compare::effects(&report, key)?;
        match args.format {
            Format::Json => to_json_string(&effects_json(&report, key, &effects)),
            _ => effects_table(&report, key, &effects, style),
        }
    } else if args.best {
        let best = BestRun::load(store.as_ref(), report)?;
        match args.format {
            Format::Json => to_json_string(&best_json(&best)),
            _ => best_table(&best, style, width(args.width)),
        }
    } else {
        match args.format {
            Format::Json => to_json_string(&runs_json(&report)),
            _ => runs_table(&report, style),
        }
    };
    println!("{}", out.trim_end());
    Ok(ExitCode::SUCCESS)
}

fn width(arg: Option<usize>) -> usize {
    arg.or_else(|| std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()))
        .unwrap_or(100)
}
