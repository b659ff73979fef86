//! A few real images of a folder, decoded as training decodes them, for previews (`sweep
//! augment`): the first readable image of each class, classes in order.
use std::path::{Path, PathBuf};

use super::decode::{decode_file, Geometry};
use super::scan::list;
use super::DataError;

/// One image file decoded as training decodes it (integrity check, decode, colour
/// conversion, resize) into `channels x height x width` CHW bytes, or why it cannot be used.
/// For tools and benchmarks; loading a dataset decodes in parallel (`data::load`).
pub fn decode(
    path: &Path,
    channels: usize,
    height: usize,
    width: usize,
) -> Result<Vec<u8>, String> {
    decode_file(
        path,
        Geometry {
            channels,
            height,
            width,
        },
    )
}

/// One decoded image: its class, its file and its CHW bytes.
pub struct Sample {
    pub class: String,
    pub path: PathBuf,
    pub pixels: Vec<u8>,
}

/// Up to `count` images from `root`, one per class in class order (then a second per class,
/// and so on), decoded at `channels x height x width`; unreadable files are passed over.
pub fn samples(
    root: &Path,
    count: usize,
    channels: usize,
    height: usize,
    width: usize,
) -> Result<Vec<Sample>, DataError> {
    let listing = list(root, "train")?;
    let geom = Geometry {
        channels,
        height,
        width,
    };
    let mut cursors: Vec<std::slice::Iter<'_, PathBuf>> =
        listing.classes.iter().map(|c| c.files.iter()).collect();
    let mut out = Vec::new();
    while out.len() < count {
        let before = out.len();
        for (class, files) in listing.classes.iter().zip(cursors.iter_mut()) {
            if out.len() == count {
                break;
            }
            if let Some((path, pixels)) = files.find_map(|f| Some((f, decode_file(f, geom).ok()?)))
            {
                out.push(Sample {
                    class: class.name.clone(),
                    path: path.clone(),
                    pixels,
                });
            }
        }
        if out.len() == before {
            break; // every class is used up
        }
    }
    Ok(out)
}
