//! `sweep plan FILE`: the expanded runs as a table; nothing is trained. The file and its data
//! folders are checked as `sweep validate` checks them.
use std::path::PathBuf;
use std::process::ExitCode;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::Table;

use crate::report::compare::config_value;
use crate::search::Domain;
use crate::sweep::{Method, Sweep, GRID_KEYS};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The sweep file (TOML).
    pub file: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let sweep = Sweep::from_file_checked(&args.file)?;
    let runs = sweep.runs();
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    let mut header = vec!["#".to_string(), "run".to_string()];
    header.extend(GRID_KEYS.iter().map(|k| k.to_string()));
    t.set_header(header);
    for r in &runs {
        let c = &r.config;
        let config = serde_json::to_value(c)?;
        let mut row = vec![r.index.to_string(), r.id.clone()];
        // Each grid key's value as reports read it from a stored config (one reading for
        // both); transfer with its settings.
        row.extend(GRID_KEYS.iter().map(|&key| match key {
            "transfer" => transfer(c),
            key => config_value(&config, key).unwrap_or_default(),
        }));
        t.add_row(row);
    }
    println!(
        "sweep {}: {} runs ({})",
        sweep.name,
        runs.len(),
        method(&sweep)
    );
    if let Some(asha) = &sweep.search.asha {
        let max = runs.iter().map(|r| r.config.epochs).max().unwrap_or(0);
        let rungs: Vec<String> = asha.rungs(max).iter().map(|e| e.to_string()).collect();
        println!(
            "ASHA on {} ({}): at epochs {} a run goes on only if it is in the best 1/{} of the runs that got there before it; the others are pruned",
            asha.metric.name(),
            asha.mode.name(),
            rungs.join(", "),
            asha.reduction_factor
        );
    }
    println!("{t}");
    Ok(ExitCode::SUCCESS)
}

/// The search method in words: the grid's axes, or what random search draws from.
fn method(sweep: &Sweep) -> String {
    match sweep.search.method {
        Method::Grid => {
            let gridded: Vec<&str> = sweep.axes.iter().map(|(k, _)| *k).collect();
            if gridded.is_empty() {
                "grid: none".into()
            } else {
                format!("grid: {}", gridded.join(" x "))
            }
        }
        Method::Random { trials, seed } => {
            let mut space: Vec<(usize, String)> = sweep
                .axes
                .iter()
                .map(|(k, v)| (k, Domain::Choice(v.clone())))
                .chain(sweep.distributions.iter().map(|(k, d)| (k, d.clone())))
                .map(|(k, d)| {
                    let at = GRID_KEYS.iter().position(|g| g == k).unwrap_or(0);
                    (at, format!("{k} ~ {}", d.describe()))
                })
                .collect();
            space.sort();
            let space: Vec<String> = space.into_iter().map(|(_, s)| s).collect();
            format!(
                "random search, {trials} trials from seed {seed}: {}",
                space.join(", ")
            )
        }
    }
}

/// The `transfer` column: the mode, where fine-tuning starts, and two_phase's schedule.
fn transfer(c: &crate::run::RunConfig) -> String {
    let Some(t) = &c.transfer else {
        return "scratch".into();
    };
    let mut out = t.mode.name().to_string();
    if t.mode == crate::run::TransferMode::TwoPhase {
        out += &format!(
            " ({} frozen, then lr {})",
            t.frozen_epochs,
            t.finetune_lr.unwrap_or(c.lr)
        );
    }
    if let Some(stage) = &t.unfreeze_from {
        out += &format!(" from {stage}");
    }
    out
}
