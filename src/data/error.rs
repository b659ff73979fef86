//! `DataError`: every way loading an image folder can fail, each message naming the path and the fix.

use std::path::PathBuf;

/// Why a dataset could not be loaded. Undecodable image files are *not* errors: they are
/// listed in [`Dataset::skipped`](super::Dataset::skipped) instead.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A `DataSpec` field is out of range.
    #[error("data.{field} = {value}: {fix}")]
    InvalidSpec {
        field: &'static str,
        value: String,
        fix: String,
    },

    /// The train (or test) folder does not exist.
    #[error(
        "{what} folder {path} does not exist (relative paths are resolved against the folder \
         of the sweep file): fix `data.{what}` or create the folder with one sub-folder per class"
    )]
    FolderMissing { what: &'static str, path: PathBuf },

    /// The path exists but is a file, not a folder.
    #[error(
        "{what} path {path} is a file, not a folder: `data.{what}` must name a folder that \
         holds one sub-folder per class (e.g. {path}/cat/*.png)"
    )]
    NotAFolder { what: &'static str, path: PathBuf },

    /// A folder could not be listed or a file could not be read (permissions, I/O).
    #[error("cannot read {path}: {source} (check that it exists and is readable)")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The folder has no class sub-folders at all (`images_here`: image files lying directly
    /// in it, a sign that it is itself one class folder).
    #[error(
        "{path} has no class sub-folders{}: put the images in one sub-folder per class, \
         e.g. {path}/cat/001.jpg and {path}/dog/001.jpg",
        loose_hint(*images_here)
    )]
    NoClasses { path: PathBuf, images_here: usize },

    /// Only one class sub-folder: nothing to classify.
    #[error(
        "{path} has only one class sub-folder ({found}): a classifier needs at least 2; \
         add a sub-folder per class"
    )]
    TooFewClasses { path: PathBuf, found: String },

    /// A class sub-folder has no decodable PNG/JPEG image.
    #[error(
        "class folder {folder} has no decodable image ({files} image file(s) found, {skipped} \
         skipped as unreadable): add .png/.jpg/.jpeg images to it or remove the folder"
    )]
    EmptyClass {
        folder: PathBuf,
        files: usize,
        skipped: usize,
    },

    /// The test folder's class sub-folders differ from the train folder's.
    #[error(
        "test folder {test} must have the same class sub-folders as train folder {train}: \
         missing in test: [{}]; only in test: [{}]; rename or add/remove sub-folders so the \
         names match exactly",
        missing_in_test.join(", "),
        extra_in_test.join(", ")
    )]
    ClassMismatch {
        train: PathBuf,
        test: PathBuf,
        missing_in_test: Vec<String>,
        extra_in_test: Vec<String>,
    },
}

fn loose_hint(images_here: usize) -> String {
    match images_here {
        0 => String::new(),
        n => format!(
            " (it holds {n} image file(s) directly: is it a class folder? point at its parent)"
        ),
    }
}
