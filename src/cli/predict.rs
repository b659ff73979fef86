//! `sweep predict --run ID IMAGES_OR_FOLDERS...`: classify new images with a trained run.
use std::path::PathBuf;
use std::process::ExitCode;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::Table;

use super::DbArg;
use crate::predict::{expand, Predictor};
use crate::report::text::for_terminal;
use crate::report::to_json_string;
use crate::run::Normalize;
use crate::store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run whose kept checkpoint, classes and preprocessing to use (its id, or the first
    /// characters of it, as `sweep status` shows).
    #[arg(
        long,
        value_name = "RUN_ID",
        required_unless_present = "weights",
        conflicts_with = "weights"
    )]
    pub run: Option<String>,
    /// Without --run: a weights file (safetensors, or a PyTorch .pth/.pt state dict with the
    /// reference library's names) for --backbone; classes are the head's size. A checkpoint
    /// sweep wrote names its classes and gives the defaults of the settings below.
    #[arg(long, value_name = "FILE", requires = "backbone")]
    pub weights: Option<PathBuf>,
    /// With --weights: the backbone the file is for (`sweep models` lists them).
    #[arg(long, value_name = "NAME")]
    pub backbone: Option<String>,
    /// With --weights: the input size (images are resized to it); default: the checkpoint's,
    /// else 224.
    #[arg(long, value_name = "N")]
    pub image_size: Option<usize>,
    /// With --weights: image channels, 3 (RGB) or 1 (grey); default: the checkpoint's, else 3.
    #[arg(long, value_name = "C")]
    pub channels: Option<usize>,
    /// With --weights: the backbone's width, if not its default.
    #[arg(long, value_name = "N")]
    pub width: Option<usize>,
    /// With --weights: how pixels become inputs: unit (x/255), imagenet (torchvision's
    /// mean/std) or inception (x/127.5 - 1); default: the checkpoint's, else unit.
    #[arg(long, value_parser = ["unit", "imagenet", "inception"])]
    pub normalize: Option<String>,
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
    let predictor = match (&args.run, &args.weights) {
        (Some(run), _) => {
            let store = store::open_read_only(&args.db.db)?;
            let runs_dir = args.db.runs_dir()?;
            Predictor::from_run(store.as_ref(), run, &runs_dir)?
        }
        (None, Some(weights)) => {
            // A checkpoint sweep wrote says how it was trained (safetensors metadata).
            let meta = crate::model::weights::inspect(weights)
                .map(|h| h.metadata)
                .unwrap_or_default();
            let from_meta = |key: &str| meta.get(key).and_then(|v| v.parse::<usize>().ok());
            let channels = args.channels.or(from_meta("channels")).unwrap_or(3);
            if channels != 1 && channels != 3 {
                anyhow::bail!("--channels must be 1 or 3, got {channels}");
            }
            let (height, width) = match args.image_size {
                Some(n) => (n, n),
                None => meta
                    .get("image_size")
                    .and_then(|s| s.split_once('x'))
                    .and_then(|(h, w)| Some((h.parse().ok()?, w.parse().ok()?)))
                    .unwrap_or((224, 224)),
            };
            let normalize = args
                .normalize
                .as_deref()
                .or(meta.get("normalize").map(String::as_str))
                .and_then(Normalize::parse)
                .unwrap_or_default();
            let mut predictor = Predictor::from_weights(
                args.backbone.as_deref().unwrap_or(""),
                weights,
                (channels, height, width),
                args.width.or(from_meta("width")),
                normalize,
            )?;
            let names: Option<Vec<String>> = meta
                .get("class_names")
                .and_then(|n| serde_json::from_str(n).ok());
            if let Some(names) = names.filter(|n| n.len() == predictor.classes.len()) {
                predictor.classes = names;
            }
            predictor
        }
        (None, None) => anyhow::bail!("give --run RUN_ID, or --backbone NAME --weights FILE"),
    };
    let predictions = predictor.predict(&files, args.batch)?;
    let unreadable = predictions.iter().filter(|p| p.error.is_some()).count();
    match args.format {
        Format::Json => {
            println!("{}", to_json_string(&serde_json::to_value(&predictions)?));
        }
        Format::Table => {
            crate::say!(
                "{}: {} classes, weights {}",
                for_terminal(&predictor.source),
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
