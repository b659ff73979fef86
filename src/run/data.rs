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
    /// How pixels become inputs; `unit` (x / 255) is left out of the run id's hash, so runs
    /// from before this key keep their ids.
    #[serde(default, skip_serializing_if = "Normalize::is_unit")]
    pub normalize: Normalize,
}

/// How pixel bytes become network inputs, per channel `(x / 255 - mean) / std`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalize {
    /// x / 255, in [0, 1] (Keras' `rescale=1/255`; the default).
    #[default]
    Unit,
    /// torchvision's ImageNet mean and std per RGB channel (grey images: their averages).
    Imagenet,
    /// x / 127.5 - 1, in [-1, 1] (Keras' Xception and ResNetV2, timm's legacy_xception).
    Inception,
}

impl Normalize {
    pub const ALL: [Normalize; 3] = [Normalize::Unit, Normalize::Imagenet, Normalize::Inception];

    pub fn name(self) -> &'static str {
        match self {
            Normalize::Unit => "unit",
            Normalize::Imagenet => "imagenet",
            Normalize::Inception => "inception",
        }
    }

    pub fn parse(s: &str) -> Option<Normalize> {
        Normalize::ALL.into_iter().find(|n| n.name() == s)
    }

    pub fn is_unit(&self) -> bool {
        *self == Normalize::Unit
    }

    /// `(mean, std)` of channel `c` of `channels` (in units of x / 255).
    pub fn mean_std(self, c: usize, channels: usize) -> (f32, f32) {
        const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
        const STD: [f32; 3] = [0.229, 0.224, 0.225];
        match self {
            Normalize::Unit => (0.0, 1.0),
            Normalize::Inception => (0.5, 0.5),
            Normalize::Imagenet if channels == 3 => (MEAN[c % 3], STD[c % 3]),
            Normalize::Imagenet => (0.449, 0.226),
        }
    }

    /// Appends one CHW image of `channels` channels to `out` as network inputs.
    pub fn extend(self, image: &[u8], channels: usize, out: &mut Vec<f32>) {
        if self.is_unit() {
            // Exactly what training always did.
            out.extend(image.iter().map(|&v| v as f32 / 255.0));
            return;
        }
        let plane = image.len() / channels.max(1);
        for (c, chunk) in image.chunks(plane.max(1)).enumerate() {
            let (mean, std) = self.mean_std(c, channels);
            out.extend(chunk.iter().map(|&v| (v as f32 / 255.0 - mean) / std));
        }
    }
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

#[cfg(test)]
mod tests {
    use super::Normalize;

    /// torchvision's `Normalize(mean, std)` after `ToTensor()` (x / 255), by hand.
    #[test]
    fn presets_map_bytes_as_their_libraries_do() {
        let image = [0u8, 255, 128, 0, 255, 64];
        let mut out = Vec::new();
        Normalize::Imagenet.extend(&image, 3, &mut out);
        let want = [
            (0.0 - 0.485) / 0.229,
            (1.0 - 0.485) / 0.229,
            (128.0 / 255.0 - 0.456) / 0.224,
            (0.0 - 0.456) / 0.224,
            (1.0 - 0.406) / 0.225,
            (64.0 / 255.0 - 0.406) / 0.225,
        ];
        for (a, b) in out.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{out:?}");
        }
        out.clear();
        Normalize::Inception.extend(&[0, 255, 51], 1, &mut out);
        let want = [-1.0, 1.0, 51.0 / 127.5 - 1.0];
        assert!(
            out.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-5),
            "{out:?}"
        );
        out.clear();
        Normalize::Unit.extend(&[0, 255, 51], 1, &mut out);
        assert_eq!(out, [0.0, 1.0, 0.2]);
        // The default is left out of stored configs (run ids unchanged).
        assert!(Normalize::default().is_unit());
        assert_eq!(Normalize::parse("imagenet"), Some(Normalize::Imagenet));
        assert_eq!(Normalize::parse("ImageNet"), None);
    }
}
