//! `sweep predict --run ID IMAGES_OR_FOLDERS...`: classify new images with a trained run.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::Table;

use super::DbArg;
use crate::predict::{expand, Predictor};
use crate::report::text::for_terminal;
use crate::report::to_json_string;
use crate::store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run whose kept checkpoint, classes and preprocessing to use (its id, or the first
    /// characters of it, as `sweep status` shows).
    #[arg(long, value_name = "RUN_ID")]
    pub run: String,
    #[command(flatten)]
    pub db: DbArg,
    /// Image files, and folders (all png/jpg/jpeg images in them, recursively).
    #[arg(required = true, value_name = "IMAGES_OR_FOLDERS")]
    pub inputs: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Images per forward pass (bounds memory).
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let files = expand(&args.inputs)?;
    let store = store::open_read_only(&args.db.db)?;
    let runs_dir = args
        .db
        .db
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let predictor = Predictor::from_run(store.as_ref(), &args.run, runs_dir)?;
    let predictions = predictor.predict(&files, args.batch)?;
    let unreadable = predictions.iter().filter(|p| p.error.is_some()).count();
    match args.format {
        Format::Json => {
            println!("{}", to_json_string(&serde_json::to_value(&predictions)?));
        }
        Format::Table => {
            crate::say!(
                "run {} ({}): {} classes, weights {}",
                predictor.run.id,
                for_terminal(&predictor.run.label),
                predictor.classes.len(),
                predictor.weights.display()
            );
            let mut t = Table::new();
            t.load_preset(UTF8_FULL_CONDENSED);
            t.set_header(vec!["image", "class", "probability", "runner-up"]);
            for p in &predictions {
                let shown = for_terminal(&p.path.to_string_lossy());
                match (&p.class, &p.error) {
                    (Some(class), _) => {
                        let mut order: Vec<usize> = (0..p.probabilities.len()).collect();
                        order.sort_by(|&a, &b| p.probabilities[b].total_cmp(&p.probabilities[a]));
                        let second = order
                            .get(1)
                            .map(|&k| {
                                format!(
                                    "{} {:.3}",
                                    for_terminal(&predictor.classes[k]),
                                    p.probabilities[k]
                                )
                            })
                            .unwrap_or_default();
                        let best = p.class_index.unwrap_or(0);
                        t.add_row(vec![
                            shown,
                            for_terminal(class),
                            format!("{:.3}", p.probabilities[best]),
                            second,
                        ])
                    }
                    (None, error) => t.add_row(vec![
                        shown,
                        format!(
                            "unreadable: {}",
                            for_terminal(error.as_deref().unwrap_or(""))
                        ),
                        String::new(),
                        String::new(),
                    ]),
                };
            }
            println!("{t}");
        }
    }
    Ok(if unreadable == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
