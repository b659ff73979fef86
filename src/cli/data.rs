//! `sweep data inspect PATH`: what an image folder holds before anything trains, as tables or
//! JSON, with a bar chart of images per class; exit code 2 when a CI check should fail.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Subcommand;

use crate::data::inspect::{inspect as inspect_folders, Inspection};
use crate::report::bars::BarChart;
use crate::report::plot;

mod render;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: DataCommand,
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Images per class, sizes, colour modes, unreadable files and duplicates of image folders.
    ///
    /// Also grey images in a colour set, and a bar chart of images per class. Exit code 2 when
    /// files are unreadable, in two classes or in both train and test; 1 on an error.
    Inspect(InspectArgs),
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// A folder with one sub-folder per class, or a sweep file (.toml: its [data] train and
    /// test folders).
    pub path: PathBuf,
    /// A test folder to inspect too, and to look for train images in (PATH a folder).
    #[arg(long, value_name = "DIR")]
    pub test: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Where class-counts.png and class-counts.svg go (default: reports/data-NAME/, NAME the
    /// folder's name or the sweep's).
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Exit code when the folders have problems: unreadable files, images in two classes, or
/// images in both train and test.
pub const EXIT_PROBLEMS: u8 = 2;

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        DataCommand::Inspect(a) => inspect(a),
    }
}

/// The folders to inspect and the name their charts' folder takes.
struct Target {
    train: PathBuf,
    test: Option<PathBuf>,
    name: String,
}

fn inspect(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let target = target(&args)?;
    let found = inspect_folders(&target.train, target.test.as_deref())
        .with_context(|| format!("inspecting {}", target.train.display()))?;
    let dir = args
        .out_dir
        .unwrap_or_else(|| Path::new("reports").join(format!("data-{}", target.name)));
    let charts = write_chart(&found, &dir)?;
    match args.format {
        Format::Json => println!("{}", render::json(&found, &charts)),
        Format::Table => print!("{}", render::tables(&found)),
    }
    for path in &charts {
        eprintln!("wrote {}", path.display());
    }
    Ok(match found.problems() {
        0 => ExitCode::SUCCESS,
        _ => ExitCode::from(EXIT_PROBLEMS),
    })
}

/// PATH as folders: a class-folder root (and `--test`), or a sweep file's `[data]` folders.
fn target(args: &InspectArgs) -> anyhow::Result<Target> {
    let path = &args.path;
    let meta = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{} does not exist: give a folder with one sub-folder per class (e.g. data/train \
             holding data/train/cat/*.png) or a sweep file (.toml)",
            path.display()
        ),
        other => other.with_context(|| format!("cannot read {}", path.display()))?,
    };
    if meta.is_dir() {
        if let Some(test) = &args.test {
            if !test.is_dir() {
                bail!(
                    "--test {}: not a folder; give the test folder, with the same class \
                     sub-folders as {}",
                    test.display(),
                    path.display()
                );
            }
        }
        return Ok(Target {
            train: path.clone(),
            test: args.test.clone(),
            name: folder_name(path),
        });
    }
    if path.extension().is_none_or(|e| e != "toml") {
        bail!(
            "{} is a file: give the folder that holds one sub-folder per class, or a sweep \
             file (.toml)",
            path.display()
        );
    }
    if args.test.is_some() {
        bail!("--test goes with a folder: a sweep file names its test folder in [data] test");
    }
    let sweep = crate::sweep::Sweep::from_file(path)?;
    let data = sweep.resolve_data(&sweep.data);
    Ok(Target {
        train: data.train,
        test: data.test,
        name: sweep.name,
    })
}

/// The folder's own name (`.` and `..` resolved), for the charts' folder.
fn folder_name(path: &Path) -> String {
    let full = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    full.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".into())
}

/// Images per class (test beside train) as `class-counts.svg` and `.png` in `dir`.
fn write_chart(found: &Inspection, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut categories: Vec<String> = Vec::new();
    for split in &found.splits {
        for class in &split.classes {
            if !categories.contains(&class.name) {
                categories.push(class.name.clone());
            }
        }
    }
    categories.sort();
    let series = found
        .splits
        .iter()
        .map(|split| {
            let count = |name: &String| {
                let class = split.classes.iter().find(|c| c.name == *name);
                class.map_or(0, |c| c.images as u64)
            };
            (
                split.split.to_string(),
                categories.iter().map(count).collect(),
            )
        })
        .collect();
    let chart = BarChart {
        title: "images per class".into(),
        y_label: "images".into(),
        categories,
        series,
    };
    let svg = plot::svg(&chart).map_err(anyhow::Error::msg)?;
    let png = plot::png(&chart).map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot make the folder {} for the chart", dir.display()))?;
    let mut written = Vec::new();
    for (name, bytes) in [
        ("class-counts.svg", svg.into_bytes()),
        ("class-counts.png", png),
    ] {
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .inspect_err(|_| {
                let _ = std::fs::remove_file(&tmp);
            })
            .with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}
