//! Image folders -> in-memory, decoded, resized datasets; splits, batches and augmentation.
//!
//! Layout: `train/<class>/<image>` (and optionally `test/<class>/<image>` with the same
//! class names). Classes are the sub-folders of `train`, sorted by name; `scan.rs` says
//! which files count. Every image is decoded once, converted to `channels` and resized to
//! `height x width` (see `decode.rs`), then split per class into train and validation (see
//! `split.rs`). Files with an image extension that cannot be decoded are never an error: they
//! are listed in [`Dataset::skipped`] with a short reason, and so are image files lying
//! directly in a root folder (they belong to no class). Other files are ignored silently.

mod augment;
mod autoaugment;
mod balance;
pub mod check;
mod color;
mod decode;
mod error;
mod imageset;
pub mod inspect;
mod integrity;
pub mod preview;
mod scan;
mod split;
mod warp;

#[cfg(test)]
mod augment_tests;
#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use crate::run::{Augment, DataSpec, Skipped};
pub use balance::balanced_order;
pub use error::DataError;
pub use imageset::{Batch, HostBatch, ImageSet};
pub use split::epoch_order;

/// Everything `load` produced.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Class names (the train sub-folder names, sorted); labels index into it.
    pub classes: Vec<String>,
    pub train: ImageSet,
    /// Empty when `val_split` is 0.
    pub val: ImageSet,
    pub test: Option<ImageSet>,
    /// Files with an image extension that were not loaded, in path order (train, then test).
    pub skipped: Vec<Skipped>,
}

fn check_spec(spec: &DataSpec) -> Result<(), DataError> {
    let bad = |field, value: String, fix: &str| {
        Err(DataError::InvalidSpec {
            field,
            value,
            fix: fix.to_string(),
        })
    };
    if !(spec.val_split.is_finite() && (0.0..1.0).contains(&spec.val_split)) {
        return bad(
            "val_split",
            spec.val_split.to_string(),
            "must be in [0, 1), e.g. 0.2 to hold out 20% of each class",
        );
    }
    if spec.channels != 1 && spec.channels != 3 {
        return bad(
            "channels",
            spec.channels.to_string(),
            "must be 1 (grey) or 3 (RGB); images are converted to it",
        );
    }
    for (field, v) in [("height", spec.height), ("width", spec.width)] {
        if v == 0 || v > 4096 {
            return bad(
                field,
                v.to_string(),
                "must be between 1 and 4096 pixels, e.g. 28 or 224",
            );
        }
    }
    Ok(())
}

/// Lists, decodes, converts, resizes and splits the images described by `spec`.
/// One image file decoded as training decodes it: converted to `channels` (1 or 3), resized
/// to `height x width`, CHW bytes. The error is the same short reason a skipped file gets.
pub fn load_image(
    path: &std::path::Path,
    channels: usize,
    height: usize,
    width: usize,
) -> Result<Vec<u8>, String> {
    decode::decode_file(
        path,
        decode::Geometry {
            channels,
            height,
            width,
        },
    )
}

/// The image files under `dir` (png/jpg/jpeg, any depth, hidden ones left out), sorted.
pub fn image_files(dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)?
        .collect::<std::io::Result<Vec<_>>>()?
        .into_iter()
        .map(|e| e.path())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            out.extend(image_files(&path)?);
        } else if scan::is_image_name(&path) {
            out.push(path);
        }
    }
    Ok(out)
}

/// The most memory the decoded images of one worker may take before its image sets stream
/// from disk instead (every batch decoded again): `SWEEP_CACHE_BUDGET` (bytes, or with a K,
/// M or G suffix), else half the memory the machine has available when the data is loaded.
pub fn cache_budget() -> u64 {
    if let Some(v) = std::env::var("SWEEP_CACHE_BUDGET")
        .ok()
        .and_then(|v| parse_bytes(&v))
    {
        return v;
    }
    let available = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        let line = m.lines().find(|l| l.starts_with("MemAvailable:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    });
    available.map_or(u64::MAX, |b| b / 2)
}

/// `123`, `64K`, `512M`, `8G` (binary units) as bytes.
fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, unit) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => (&s[..i], s[i..].to_ascii_uppercase()),
        None => (s, String::new()),
    };
    let n: u64 = digits.trim().parse().ok()?;
    let shift = match unit.trim_end_matches(['B', 'I']) {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        _ => return None,
    };
    n.checked_mul(1 << shift)
}

pub fn load(spec: &DataSpec) -> Result<Dataset, DataError> {
    load_within(spec, cache_budget())
}

/// [`load`] with the decoded images of train, validation and test kept in memory when they
/// fit in `budget` bytes; otherwise every file is checked once (integrity and decoding, as
/// for memory) and the image sets stream from the files.
pub fn load_within(spec: &DataSpec, budget: u64) -> Result<Dataset, DataError> {
    check_spec(spec)?;
    let geom = decode::Geometry {
        channels: spec.channels as usize,
        height: spec.height as usize,
        width: spec.width as usize,
    };
    let train = scan::list(&spec.train, "train")?;
    let classes: Vec<String> = train.classes.iter().map(|c| c.name.clone()).collect();
    match classes.len() {
        0 => {
            return Err(DataError::NoClasses {
                path: spec.train.clone(),
                images_here: train.loose.len(),
            })
        }
        1 => {
            return Err(DataError::TooFewClasses {
                path: spec.train.clone(),
                found: classes[0].clone(),
            })
        }
        _ => {}
    }
    let test = match &spec.test {
        None => None,
        Some(dir) => {
            let listing = scan::list(dir, "test")?;
            let names: Vec<&str> = listing.classes.iter().map(|c| c.name.as_str()).collect();
            let missing: Vec<String> = classes
                .iter()
                .filter(|c| !names.contains(&c.as_str()))
                .cloned()
                .collect();
            let extra: Vec<String> = names
                .iter()
                .filter(|n| !classes.iter().any(|c| c == *n))
                .map(|n| n.to_string())
                .collect();
            if !missing.is_empty() || !extra.is_empty() {
                return Err(DataError::ClassMismatch {
                    train: spec.train.clone(),
                    test: dir.clone(),
                    missing_in_test: missing,
                    extra_in_test: extra,
                });
            }
            Some(listing)
        }
    };

    // Decode train and test files in one parallel pass; results come back in path order.
    let mut paths: Vec<PathBuf> = train
        .classes
        .iter()
        .flat_map(|c| c.files.iter().cloned())
        .collect();
    if let Some(t) = &test {
        paths.extend(t.classes.iter().flat_map(|c| c.files.iter().cloned()));
    }
    let bytes = paths.len() as u64 * (geom.channels * geom.height * geom.width) as u64;
    let stream = bytes > budget;
    let mut decoded = match stream {
        // Checked like the others, but only the verdict is kept.
        true => decode::map_files(&paths, decode::default_threads(), |p| {
            decode::guarded(|| decode::decode_file(p, geom)).map(|_| Vec::new())
        }),
        false => decode::decode_all(&paths, geom, decode::default_threads()),
    }
    .into_iter();

    let mut skipped = Vec::new();
    let (c, h, w) = (geom.channels, geom.height, geom.width);
    let empty = || ImageSet {
        normalize: spec.normalize,
        ..ImageSet::empty(c, h, w)
    };
    let (mut train_set, mut val_set) = (empty(), empty());
    let add = |set: &mut ImageSet, (path, px): &(PathBuf, Vec<u8>), label: u32| match stream {
        true => set.push_file(path.clone(), label),
        false => set.push(px, label),
    };
    let classes_ok = collect(&train, &mut decoded, &mut skipped)?;
    for (label, (folder, images)) in train.classes.iter().zip(classes_ok).enumerate() {
        let (tr, va) = split::split_class(&folder.name, images.len(), spec.val_split, spec.seed);
        for i in tr {
            add(&mut train_set, &images[i], label as u32);
        }
        for i in va {
            add(&mut val_set, &images[i], label as u32);
        }
    }
    let test_set = match &test {
        None => None,
        Some(t) => {
            let mut set = empty();
            let per_class = collect(t, &mut decoded, &mut skipped)?;
            for (folder, images) in t.classes.iter().zip(per_class) {
                let label = classes.iter().position(|n| *n == folder.name).unwrap_or(0) as u32;
                images.iter().for_each(|img| add(&mut set, img, label));
            }
            Some(set)
        }
    };
    Ok(Dataset {
        classes,
        train: train_set,
        val: val_set,
        test: test_set,
        skipped,
    })
}

/// Takes one listing's decode results (in order) and sorts them into images per class (each
/// with its file) and skipped files; a class left without images is an error.
#[allow(clippy::type_complexity)]
fn collect(
    listing: &scan::Listing,
    decoded: &mut impl Iterator<Item = Result<Vec<u8>, String>>,
    skipped: &mut Vec<Skipped>,
) -> Result<Vec<Vec<(PathBuf, Vec<u8>)>>, DataError> {
    let first = listing
        .classes
        .first()
        .map(|c| c.path.display().to_string())
        .unwrap_or_default();
    for path in &listing.loose {
        skipped.push(Skipped {
            path: path.clone(),
            reason: format!("not in a class sub-folder: move it into one, e.g. {first}/"),
        });
    }
    let mut out = Vec::with_capacity(listing.classes.len());
    for class in &listing.classes {
        let mut images = Vec::with_capacity(class.files.len());
        let before = skipped.len();
        for path in &class.files {
            match decoded.next() {
                Some(Ok(px)) => images.push((path.clone(), px)),
                Some(Err(reason)) => skipped.push(Skipped {
                    path: path.clone(),
                    reason,
                }),
                None => skipped.push(Skipped {
                    path: path.clone(),
                    reason: "not decoded".into(),
                }),
            }
        }
        if images.is_empty() {
            return Err(DataError::EmptyClass {
                folder: class.path.clone(),
                files: class.files.len(),
                skipped: skipped.len() - before,
            });
        }
        out.push(images);
    }
    Ok(out)
}
