//! What an image folder holds, file by file, before anything trains (`sweep data inspect`):
//! images per class, sizes, colour modes, unreadable files, grey images in a colour set, and
//! exact duplicates across classes and across train/test.
//!
//! Files are listed as the loader lists them ([`scan`](super::scan)) and checked and decoded
//! as it decodes them ([`decode`](super::decode)), so an unreadable file gets the reason a run
//! would skip it with. Decoding runs on [`default_threads`](super::decode::default_threads)
//! workers; each file is reduced to a few facts and a SHA-256 of its pixels as soon as it is
//! decoded, so no pixels are kept.
//!
//! Pixels are compared as training reads them with 3 channels: converted to 8-bit RGB (grey
//! replicated, alpha dropped, 16 bits scaled to 8), with the width and height hashed first.
//! A grey PNG and an RGB PNG of the same grey pixels are duplicates; a JPEG saved from a PNG is
//! not (its pixels change).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use image::DynamicImage;
use sha2::{Digest, Sha256};

use super::decode::{self, SkipReason};
use super::scan::{self, Listing};
use super::DataError;

#[cfg(test)]
#[path = "inspect_tests.rs"]
mod tests;

/// Everything `sweep data inspect` found: one entry per split, then what spans them.
#[derive(Clone, Debug)]
pub struct Inspection {
    /// `train`, then `test` when given.
    pub splits: Vec<SplitFacts>,
    /// Groups of files with the same pixels in two or more classes (any split).
    pub label_conflicts: Vec<DuplicateGroup>,
    /// Groups of files with the same pixels in both train and test.
    pub leaks: Vec<DuplicateGroup>,
}

/// The facts of one split (one class-folder root).
#[derive(Clone, Debug)]
pub struct SplitFacts {
    /// `train` or `test`.
    pub split: &'static str,
    pub root: PathBuf,
    /// Class sub-folders, sorted by name.
    pub classes: Vec<ClassCount>,
    /// Image files directly in the root: in no class, not loaded by training.
    pub loose: Vec<PathBuf>,
    /// Every (width, height) found, most common first (then smallest).
    pub sizes: Vec<SizeCount>,
    /// The image with the fewest pixels and the one with the most (first in path order on ties).
    pub smallest: Option<SizedFile>,
    pub largest: Option<SizedFile>,
    /// Readable images per colour mode: the `image` crate's decoded colour type (`L8`, `La8`,
    /// `Rgb8`, `Rgba8`, `L16`, ...), or `palette` for an indexed-colour PNG.
    pub modes: BTreeMap<String, usize>,
    /// Files with an image extension that training would skip, in path order.
    pub unreadable: Vec<Unreadable>,
    /// Readable images whose pixels are not all grey.
    pub colour_images: usize,
    /// Grey images in a colour set (more than half the readable images in colour); both
    /// lists are empty otherwise. Stored grey: a grey colour type.
    pub stored_grey: Vec<PathBuf>,
    /// A colour file (RGB, RGBA, palette) whose every pixel has R = G = B.
    pub grey_pixels: Vec<PathBuf>,
    /// Files whose pixels an earlier file of the same class already has.
    pub duplicates_within_class: usize,
}

/// One class folder: its image files and how many of them decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassCount {
    pub name: String,
    pub files: usize,
    pub images: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizeCount {
    pub width: u32,
    pub height: u32,
    pub count: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SizedFile {
    pub width: u32,
    pub height: u32,
    pub path: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreadable {
    pub path: PathBuf,
    pub class: String,
    /// The skip reason training gives the file.
    pub reason: SkipReason,
}

/// Files with the same pixels, in path order (train first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DuplicateGroup {
    pub files: Vec<Located>,
}

/// A file and where it sits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    pub split: &'static str,
    pub class: String,
    pub path: PathBuf,
}

impl SplitFacts {
    /// Image files in the class folders.
    pub fn files(&self) -> usize {
        self.classes.iter().map(|c| c.files).sum()
    }

    /// Images that decode.
    pub fn images(&self) -> usize {
        self.classes.iter().map(|c| c.images).sum()
    }

    /// The largest class's images over the smallest non-empty class's; `None` without images.
    pub fn imbalance_ratio(&self) -> Option<f64> {
        let counts = self.classes.iter().map(|c| c.images).filter(|&n| n > 0);
        let min = counts.clone().min()?;
        Some(counts.max()? as f64 / min as f64)
    }
}

impl Inspection {
    /// What a CI check should fail on: unreadable files, label conflicts and leaks.
    pub fn problems(&self) -> usize {
        let unreadable: usize = self.splits.iter().map(|s| s.unreadable.len()).sum();
        unreadable + self.label_conflicts.len() + self.leaks.len()
    }
}

/// What one readable file is.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FileFacts {
    width: u32,
    height: u32,
    mode: String,
    stored_grey: bool,
    grey_pixels: bool,
    pixels: [u8; 32],
}

/// Inspects `train` (and `test`), decoding on [`decode::default_threads`] workers.
pub fn inspect(train: &Path, test: Option<&Path>) -> Result<Inspection, DataError> {
    inspect_with(train, test, decode::default_threads())
}

/// [`inspect`] on `threads` workers.
pub fn inspect_with(
    train: &Path,
    test: Option<&Path>,
    threads: usize,
) -> Result<Inspection, DataError> {
    let mut listings = vec![("train", train, listed(train, "train")?)];
    if let Some(test) = test {
        listings.push(("test", test, listed(test, "test")?));
    }
    let paths: Vec<PathBuf> = listings
        .iter()
        .flat_map(|(_, _, l)| l.classes.iter().flat_map(|c| c.files.iter().cloned()))
        .collect();
    let mut facts = decode::map_files(&paths, threads, examine).into_iter();
    let mut splits = Vec::new();
    let mut all = Vec::new();
    for &(split, root, ref listing) in &listings {
        let mut files = Vec::new();
        for class in &listing.classes {
            for path in &class.files {
                let f = facts.next().unwrap_or_else(|| Err("not decoded".into()));
                let at = Located {
                    split,
                    class: class.name.clone(),
                    path: path.clone(),
                };
                files.push((at, f));
            }
        }
        splits.push(split_facts(split, root, listing, &files));
        all.extend(files);
    }
    let (label_conflicts, leaks) = duplicates(&all, &mut splits);
    Ok(Inspection {
        splits,
        label_conflicts,
        leaks,
    })
}

/// The listing of a root that has class sub-folders.
fn listed(root: &Path, what: &'static str) -> Result<Listing, DataError> {
    let listing = scan::list(root, what)?;
    if listing.classes.is_empty() {
        return Err(DataError::NoClasses {
            path: root.to_path_buf(),
            images_here: listing.loose.len(),
        });
    }
    Ok(listing)
}

/// One file's facts, or why training would skip it.
fn examine(path: &Path) -> Result<FileFacts, SkipReason> {
    decode::guarded(|| {
        let bytes = decode::read_file(path)?;
        let image = decode::decode_image(&bytes)?;
        let mode = colour_mode(&bytes, &image);
        drop(bytes);
        Ok(facts(image, mode))
    })
}

/// Size, greyness and pixel hash of a decoded image.
fn facts(image: DynamicImage, mode: String) -> FileFacts {
    let (width, height) = (image.width(), image.height());
    let stored_grey = !image.color().has_color();
    let rgb = image.into_rgb8();
    let grey_pixels = !stored_grey && rgb.pixels().all(|p| p[0] == p[1] && p[1] == p[2]);
    let mut hash = Sha256::new();
    hash.update(width.to_le_bytes());
    hash.update(height.to_le_bytes());
    hash.update(rgb.as_raw());
    FileFacts {
        width,
        height,
        mode,
        stored_grey,
        grey_pixels,
        pixels: hash.finalize().into(),
    }
}

/// The decoded colour type's name; `palette` for a PNG stored with indexed colour (which the
/// decoder expands to RGB or RGBA).
fn colour_mode(bytes: &[u8], image: &DynamicImage) -> String {
    // A PNG: signature, IHDR's length and type, then width, height, bit depth, colour type.
    const INDEXED: u8 = 3;
    let png = bytes.starts_with(b"\x89PNG") && bytes.get(12..16) == Some(b"IHDR");
    if png && bytes.get(25) == Some(&INDEXED) {
        return "palette".into();
    }
    format!("{:?}", image.color())
}

/// The facts of one split from its files' results, in listing order.
fn split_facts(
    split: &'static str,
    root: &Path,
    listing: &Listing,
    files: &[(Located, Result<FileFacts, SkipReason>)],
) -> SplitFacts {
    let mut out = SplitFacts {
        split,
        root: root.to_path_buf(),
        classes: Vec::new(),
        loose: listing.loose.clone(),
        sizes: Vec::new(),
        smallest: None,
        largest: None,
        modes: BTreeMap::new(),
        unreadable: Vec::new(),
        colour_images: 0,
        stored_grey: Vec::new(),
        grey_pixels: Vec::new(),
        duplicates_within_class: 0,
    };
    let mut sizes: HashMap<(u32, u32), usize> = HashMap::new();
    let mut rest = files;
    for class in &listing.classes {
        let (mine, others) = rest.split_at(class.files.len().min(rest.len()));
        rest = others;
        out.classes.push(ClassCount {
            name: class.name.clone(),
            files: class.files.len(),
            images: mine.iter().filter(|(_, f)| f.is_ok()).count(),
        });
    }
    for (at, f) in files {
        let f = match f {
            Ok(f) => f,
            Err(reason) => {
                out.unreadable.push(Unreadable {
                    path: at.path.clone(),
                    class: at.class.clone(),
                    reason: reason.clone(),
                });
                continue;
            }
        };
        *sizes.entry((f.width, f.height)).or_default() += 1;
        *out.modes.entry(f.mode.clone()).or_default() += 1;
        let sized = || SizedFile {
            width: f.width,
            height: f.height,
            path: at.path.clone(),
        };
        let area = |s: &SizedFile| u64::from(s.width) * u64::from(s.height);
        let here = u64::from(f.width) * u64::from(f.height);
        if out.smallest.as_ref().is_none_or(|s| here < area(s)) {
            out.smallest = Some(sized());
        }
        if out.largest.as_ref().is_none_or(|s| here > area(s)) {
            out.largest = Some(sized());
        }
        if f.stored_grey {
            out.stored_grey.push(at.path.clone());
        } else if f.grey_pixels {
            out.grey_pixels.push(at.path.clone());
        } else {
            out.colour_images += 1;
        }
    }
    if out.colour_images * 2 <= out.images() {
        // Not a colour set: grey images are what it is made of.
        out.stored_grey.clear();
        out.grey_pixels.clear();
    }
    out.sizes = sizes
        .into_iter()
        .map(|((width, height), count)| SizeCount {
            width,
            height,
            count,
        })
        .collect();
    out.sizes.sort_by_key(|s| {
        (
            std::cmp::Reverse(s.count),
            u64::from(s.width) * u64::from(s.height),
            s.width,
        )
    });
    out
}

/// Groups the readable files by pixels: the groups spanning classes (label conflicts) and
/// splits (leaks); copies within one class are counted on their split.
fn duplicates(
    files: &[(Located, Result<FileFacts, SkipReason>)],
    splits: &mut [SplitFacts],
) -> (Vec<DuplicateGroup>, Vec<DuplicateGroup>) {
    let mut groups: Vec<Vec<&Located>> = Vec::new();
    let mut by_pixels: HashMap<[u8; 32], usize> = HashMap::new();
    for (at, f) in files {
        let Ok(f) = f else { continue };
        match by_pixels.get(&f.pixels) {
            Some(&g) => groups[g].push(at),
            None => {
                by_pixels.insert(f.pixels, groups.len());
                groups.push(vec![at]);
            }
        }
    }
    let (mut conflicts, mut leaks) = (Vec::new(), Vec::new());
    for group in groups.into_iter().filter(|g| g.len() > 1) {
        let mut places = HashSet::new();
        for at in &group {
            let copy = !places.insert((at.split, at.class.as_str()));
            if let Some(s) = splits.iter_mut().find(|s| s.split == at.split) {
                s.duplicates_within_class += usize::from(copy);
            }
        }
        let spans = |key: fn(&Located) -> &str| group.iter().any(|a| key(a) != key(group[0]));
        let owned = || DuplicateGroup {
            files: group.iter().map(|&a| a.clone()).collect(),
        };
        if spans(|a| a.class.as_str()) {
            conflicts.push(owned());
        }
        if spans(|a| a.split) {
            leaks.push(owned());
        }
    }
    (conflicts, leaks)
}
