//! Where a run's images are and how they are shaped, and the files that could not be read.
use std::path::{Path, PathBuf};

/// Where the images are and how to shape them.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DataSpec {
    /// Folder with one sub-folder per class.
    pub train: PathBuf,
    /// Optional folder with the same class sub-folders, held out for the final score.
    pub test: Option<PathBuf>,
    /// Fraction of each class moved from train to validation, 0.0 <= x < 1.0.
    pub val_split: f64,
    pub height: u32,
    pub width: u32,
    /// 1 (grey) or 3 (RGB); images are converted to it.
    pub channels: u8,
    /// Seeds the validation split.
    pub seed: u64,
}

/// A file that was not loaded, and why.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

impl DataSpec {
    /// The spec with its folders resolved against `base` (the sweep file's folder).
    pub fn resolve(&self, base: &Path) -> DataSpec {
        DataSpec {
            train: base.join(&self.train),
            test: self.test.as_ref().map(|t| base.join(t)),
            ..self.clone()
        }
    }
}
