//! `sweep models`: every backbone a sweep can train, with its size; `sweep models NAME`: one
//! backbone's stages (what `[transfer] unfreeze_from` names), each with its parameters.
use std::process::ExitCode;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::Table;
use serde_json::json;

use crate::model::count::parameter_count;
use crate::model::{Backbone, ModelSpec};
use crate::report::to_json_string;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// One backbone: list its stages (the names `[transfer] unfreeze_from` takes).
    pub name: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Trainable parameters at the reference size: 1000 classes, 224x224 RGB, the default width
/// (as torchvision and Keras count them; batch-norm running statistics excluded).
pub fn reference_params(b: Backbone) -> anyhow::Result<usize> {
    Ok(parameter_count(&reference_spec(b))?)
}

/// The reference size: 1000 classes, 224x224 RGB, the default width.
fn reference_spec(b: Backbone) -> ModelSpec {
    ModelSpec {
        backbone: b,
        channels: 3,
        height: 224,
        width: 224,
        classes: 1000,
        base_width: b.default_width(),
    }
}

/// One backbone's stages at the reference size, in the order the input flows through them.
fn stages(name: &str, format: Format) -> anyhow::Result<ExitCode> {
    let Some(b) = Backbone::parse(name) else {
        let names: Vec<_> = Backbone::ALL.iter().map(|b| b.name()).collect();
        anyhow::bail!(
            "unknown backbone \"{name}\"; choose one of {}",
            names.join(", ")
        );
    };
    let stages = crate::model::count::stages(&reference_spec(b))?;
    let total: usize = stages.iter().map(|s| s.params).sum();
    let mut from_here = total;
    let mut rows = Vec::new();
    for s in &stages {
        rows.push(json!({
            "stage": s.name,
            "params": s.params,
            "head": s.head,
            "trains_from_here": from_here,
        }));
        from_here -= s.params;
    }
    match format {
        Format::Json => println!("{}", to_json_string(&serde_json::Value::from(rows))),
        Format::Table => {
            println!(
                "{} ({} names), 1000 classes at 224x224x3: stages in the order the input flows",
                b.name(),
                b.family()
            );
            let mut t = Table::new();
            t.load_preset(UTF8_FULL_CONDENSED);
            t.set_header(vec!["stage", "params", "trains with unfreeze_from = stage"]);
            for r in &rows {
                let name = r["stage"].as_str().unwrap_or("").to_string();
                let head = r["head"].as_bool().unwrap_or(false);
                t.add_row(vec![
                    if head { format!("{name} (head)") } else { name },
                    r["params"].to_string(),
                    r["trains_from_here"].to_string(),
                ]);
            }
            println!("{t}");
            println!("transfer = \"frozen\" trains only the head; \"finetune\" trains the stages from [transfer] unfreeze_from on (all when unset).");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(name) = &args.name {
        return stages(name, args.format);
    }
    let mut rows = Vec::new();
    for b in Backbone::ALL {
        rows.push(json!({
            "name": b.name(),
            "params": reference_params(b)?,
            "min_input": b.min_size(),
            "default_input": b.default_input(),
            "family": b.family(),
            "default_width": b.default_width(),
            "relative_cost": b.cost(),
        }));
    }
    match args.format {
        Format::Json => println!("{}", to_json_string(&serde_json::Value::from(rows))),
        Format::Table => {
            let mut t = Table::new();
            t.load_preset(UTF8_FULL_CONDENSED);
            t.set_header(vec![
                "backbone",
                "params (1000 classes, 224x224x3)",
                "min input",
                "default input",
                "names",
                "default width",
                "cost / epoch (cnn = 1)",
            ]);
            for r in &rows {
                t.add_row(vec![
                    r["name"].as_str().unwrap_or("").to_string(),
                    r["params"].to_string(),
                    format!("{0}x{0}", r["min_input"]),
                    format!("{0}x{0}", r["default_input"]),
                    r["family"].as_str().unwrap_or("").to_string(),
                    r["default_width"].to_string(),
                    r["relative_cost"].to_string(),
                ]);
            }
            println!("{t}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
