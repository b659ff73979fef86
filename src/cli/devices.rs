//! `sweep devices`: the GPUs found, and where `sweep run` would train.
use std::process::ExitCode;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::Table;

use crate::devices::{self, Request};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Test seam: pretend to have N GPUs.
    #[arg(long, hide = true, value_name = "N")]
    pub fake_gpus: Option<usize>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let found = match args.fake_gpus {
        Some(n) => devices::fake(n),
        None => devices::discover(),
    };
    if !found.gpus.is_empty() {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED);
        t.set_header(vec!["gpu", "name", "memory MiB", "free MiB", "state"]);
        for g in &found.gpus {
            let free = g
                .free_mib
                .map(|f| f.to_string())
                .unwrap_or_else(|| "?".into());
            t.add_row(vec![
                g.index.to_string(),
                g.name.clone(),
                g.total_mib.to_string(),
                free,
                if g.busy() {
                    "busy".into()
                } else {
                    "free".into()
                },
            ]);
        }
        println!("{t}");
    }
    let (slots, note) = devices::choose(&found, &Request::Auto, devices::RunsPerDevice::Auto)
        .map_err(anyhow::Error::msg)?;
    let names: Vec<String> = slots.iter().map(|s| s.to_string()).collect();
    println!("sweep run trains on: {}", names.join(", "));
    if let Some(note) = note {
        println!("{note}");
    }
    Ok(ExitCode::SUCCESS)
}
