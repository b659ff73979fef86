//! Where a run's images are and how they are shaped, and the files that could not be read.
use std::path::{Path, PathBuf};

/// Where the images are and how to shape them.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DataSpec {
    /// Folder with one sub-folder per class.
    #[serde(with = "crate::run::path")]
    pub train: PathBuf,
    /// Optional folder with the same class sub-folders, held out for the final score.
    #[serde(with = "crate::run::path::option", default)]
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
    #[serde(with = "crate::run::path")]
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

impl DataSpec {
    /// A digest of every file under the train and test folders (path, size, modification
    /// time), sorted: it changes when images are added, removed or replaced. A directory walk,
    /// no decoding. Unreadable entries count by their error, so the digest is still stable.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut entries: Vec<(Vec<u8>, u64, u128)> = Vec::new();
        for root in std::iter::once(&self.train).chain(self.test.as_ref()) {
            walk(root, &mut entries);
        }
        entries.sort();
        let mut h = Sha256::new();
        for (path, len, mtime) in &entries {
            h.update((path.len() as u64).to_le_bytes());
            h.update(path);
            h.update(len.to_le_bytes());
            h.update(mtime.to_le_bytes());
        }
        h.finalize()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

fn walk(dir: &Path, out: &mut Vec<(Vec<u8>, u64, u128)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        out.push((super::path::raw(dir), u64::MAX, 0));
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.metadata() {
            Ok(m) if m.is_dir() => walk(&path, out),
            Ok(m) => {
                let mtime = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                out.push((super::path::raw(&path), m.len(), mtime));
            }
            Err(_) => out.push((super::path::raw(&path), u64::MAX, 0)),
        }
    }
}
