//! Sweep files: TOML text -> validated [`Sweep`] -> expanded [`RunSpec`]s.
//!
//! Parsing validates everything before any device is touched and reports every problem at
//! once, each naming its TOML key and how to fix it.
mod augment;
mod balance;
mod grid;
mod parse;
mod schedule;
mod search;
mod transfer;
mod values;

#[cfg(test)]
mod search_tests;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use crate::data::check::Depth;
use crate::run::{Augment, DataSpec, OptimizerConfig, RunSpec, TrainSettings};

pub use grid::{GRID_KEYS, MAX_RUNS};
pub use search::{Method, Search};
pub use transfer::{PerBackbone, TransferSettings};
pub use values::Hyper;

/// One problem found in a sweep file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("cannot read sweep file {file}: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file} is not valid TOML: {message}")]
    Toml { file: PathBuf, message: String },
    #[error("{file} has {} problem{}:\n{}", problems.len(), if problems.len() == 1 { "" } else { "s" }, list(problems))]
    Invalid {
        file: PathBuf,
        problems: Vec<Problem>,
    },
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {}: {}", p.key, p.message))
        .collect::<Vec<_>>()
        .join("\n")
}

fn read(path: &Path) -> Result<String, SweepError> {
    std::fs::read_to_string(path).map_err(|source| SweepError::Read {
        file: path.to_path_buf(),
        source,
    })
}

/// A validated sweep: what stays fixed, and the axes of the grid.
#[derive(Clone, Debug)]
pub struct Sweep {
    pub name: String,
    pub file: PathBuf,
    /// The data section with paths as written (relative to the sweep file's folder).
    pub data: DataSpec,
    pub settings: TrainSettings,
    /// CPU threads per run (`[train] threads`); `None`: all cores (or RAYON_NUM_THREADS).
    pub threads: Option<usize>,
    /// Values of the grid keys that are fixed (not in `[grid]`).
    pub fixed: Hyper,
    /// Gridded keys in expansion order, each with its values in file order.
    pub axes: Vec<(&'static str, Vec<toml::Value>)>,
    /// Keys drawn from a distribution (random search only), in expansion order.
    pub distributions: Vec<(&'static str, crate::search::Domain)>,
    /// How runs are chosen and judged (`[search]`).
    pub search: Search,
    /// Tests only: every run trains with the fake trainer (set by `sweep run --fake-trainer`,
    /// never by a sweep file). It is part of each run's config, so of its id.
    pub fake: Option<crate::run::FakeSpec>,
    pub optimizers: std::collections::BTreeMap<String, OptimizerConfig>,
    pub augments: std::collections::BTreeMap<String, Augment>,
    /// Every learning-rate schedule with the file's settings (`[schedule.NAME]`).
    pub schedules: std::collections::BTreeMap<String, crate::run::Schedule>,
    /// `[balance]`: the clip range and the classes repeated with augmentation.
    pub balance: balance::BalanceSettings,
    /// `[train] pretrained` and `[transfer]` (transfer learning).
    pub transfer: TransferSettings,
    /// Whether the file sets `data.normalize` (else runs from pretrained weights take the
    /// weights' own preprocessing).
    pub normalize_set: bool,
}

impl Sweep {
    /// Parses and validates a sweep file. The data folders must exist (and be folders); their
    /// contents are not listed: see [`Sweep::from_file_checked`] and [`Sweep::check_data`].
    pub fn from_file(path: &Path) -> Result<Sweep, SweepError> {
        parse::parse(&read(path)?, path, Depth::Folders)
    }

    /// [`Sweep::from_file`], and the data folders listed (a directory walk, nothing decoded:
    /// [`crate::data::check`]); their problems come in the same list as the file's. What
    /// `sweep validate` and `sweep plan` use.
    pub fn from_file_checked(path: &Path) -> Result<Sweep, SweepError> {
        parse::parse(&read(path)?, path, Depth::Contents)
    }

    /// [`Sweep::from_file`] on text; `path` names the file (and its folder resolves paths).
    pub fn from_str(text: &str, path: &Path) -> Result<Sweep, SweepError> {
        parse::parse(text, path, Depth::Folders)
    }

    /// [`Sweep::from_file_checked`] on text.
    pub fn from_str_checked(text: &str, path: &Path) -> Result<Sweep, SweepError> {
        parse::parse(text, path, Depth::Contents)
    }

    /// Lists the data folders of a parsed sweep (no image is decoded) and reports what would
    /// keep its runs from training: no or one class, an empty class, test classes that are not
    /// the train classes, a class too small for the validation split, ... `sweep run` calls it
    /// once before training. A sweep of fake runs (`fake`, tests only) reads no data: Ok.
    pub fn check_data(&self) -> Result<(), SweepError> {
        if self.fake.is_some() {
            return Ok(());
        }
        let problems: Vec<Problem> = crate::data::check::check_folders(
            Some(&self.data.train),
            self.data.test.as_deref(),
            &self.base_dir(),
            Some(self.data.val_split),
            Depth::Contents,
        )
        .into_iter()
        .map(|p| Problem {
            key: p.key.to_string(),
            message: p.message,
        })
        .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SweepError::Invalid {
                file: self.file.clone(),
                problems,
            })
        }
    }

    /// The folder relative paths in the sweep file resolve against.
    pub fn base_dir(&self) -> PathBuf {
        match self.file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// The data spec with its folders resolved against the sweep file's folder.
    pub fn resolve_data(&self, data: &DataSpec) -> DataSpec {
        data.resolve(&self.base_dir())
    }

    /// The runs the search method proposes: the grid in the pinned order of [`GRID_KEYS`]
    /// (first key outermost), or the random draws in trial order.
    pub fn runs(&self) -> Vec<RunSpec> {
        match self.search.method {
            Method::Grid => grid::expand(self),
            Method::Random { trials, seed } => grid::sample(self, trials, seed),
        }
    }

    /// The strategy that judges the runs as they train: ASHA, or none.
    pub fn strategy(&self) -> Box<dyn crate::search::Strategy> {
        match &self.search.asha {
            Some(asha) => Box::new(asha.clone()),
            None => Box::new(crate::search::Exhaustive),
        }
    }
}
