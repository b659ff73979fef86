//! `sweep report`: the runs of a stored sweep, or `--best` with its classwise table.
use std::process::ExitCode;

use clap::ValueEnum;

use super::StoredSweep;
use crate::report::{
    best_json, best_table, runs_json, runs_table, to_json_string, BestRun, SweepReport, TableStyle,
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
    #[arg(long)]
    pub best: bool,
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
    let out = if args.best {
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
