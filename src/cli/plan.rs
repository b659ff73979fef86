//! `sweep plan FILE`: the expanded runs as a table; nothing is trained.
use std::path::PathBuf;
use std::process::ExitCode;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::Table;

use crate::sweep::{Sweep, GRID_KEYS};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The sweep file (TOML).
    pub file: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let sweep = Sweep::from_file(&args.file)?;
    let runs = sweep.runs();
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    let mut header = vec!["#".to_string(), "run".to_string()];
    header.extend(GRID_KEYS.iter().map(|k| k.to_string()));
    t.set_header(header);
    for r in &runs {
        let c = &r.config;
        let mut row = vec![r.index.to_string(), r.id.clone()];
        row.extend([
            c.backbone.to_string(),
            c.width.to_string(),
            c.precision.name().to_string(),
            c.optimizer.clone(),
            c.lr.to_string(),
            c.batch_size.to_string(),
            sweep_weight_decay(c),
            c.label_smoothing.to_string(),
            c.augment.clone(),
            c.epochs.to_string(),
            c.seed.to_string(),
        ]);
        t.add_row(row);
    }
    let gridded: Vec<&str> = sweep.axes.iter().map(|(k, _)| *k).collect();
    println!(
        "sweep {}: {} runs (grid: {})",
        sweep.name,
        runs.len(),
        if gridded.is_empty() {
            "none".into()
        } else {
            gridded.join(" x ")
        }
    );
    println!("{t}");
    Ok(ExitCode::SUCCESS)
}

fn sweep_weight_decay(c: &crate::run::RunConfig) -> String {
    use crate::run::OptimizerConfig;
    match &c.optimizer_settings {
        OptimizerConfig::Sgd { weight_decay, .. } | OptimizerConfig::Adam { weight_decay, .. } => {
            weight_decay.to_string()
        }
    }
}
