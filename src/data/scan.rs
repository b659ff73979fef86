//! Listing an image folder: class sub-folders (sorted) and the image files inside each one.
//!
//! Rules, in the spirit of Keras' `image_dataset_from_directory`:
//! - classes are the sub-folders of the root, sorted by name (byte order of the UTF-8 name);
//! - image files are those whose extension is `png`, `jpg` or `jpeg` (any case); other files
//!   (`manifest.csv`, `.DS_Store`, `notes.txt`) are ignored silently;
//! - names starting with `.` (hidden files and folders such as `.ipynb_checkpoints` or macOS
//!   `._x.jpg` resource forks) are ignored silently, at every level;
//! - a class folder is searched recursively, files sorted by path;
//! - image files lying directly in the root belong to no class: they are reported back (the
//!   loader lists them in `Dataset::skipped` with a hint to move them) and not loaded.

use std::fs;
use std::path::{Path, PathBuf};

use super::DataError;

/// One class sub-folder and its image files, sorted by path.
#[derive(Clone, Debug)]
pub(crate) struct ClassFolder {
    pub name: String,
    pub path: PathBuf,
    pub files: Vec<PathBuf>,
}

/// A listed root folder.
#[derive(Clone, Debug)]
pub(crate) struct Listing {
    pub classes: Vec<ClassFolder>,
    /// Image files directly in the root: in no class.
    pub loose: Vec<PathBuf>,
}

/// True when the name has an image extension we decode (png/jpg/jpeg, case-insensitive).
pub(crate) fn is_image_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
        .unwrap_or(false)
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .map(|n| n.to_string_lossy().starts_with('.'))
        .unwrap_or(false)
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let io = |source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if !is_hidden(&path) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Image files under `dir`, recursively, sorted by path. Symlinked folders are not followed
/// (no cycles); symlinked files are.
fn image_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DataError> {
    for path in read_dir_sorted(dir)? {
        let meta = fs::symlink_metadata(&path).map_err(|source| DataError::Io {
            path: path.clone(),
            source,
        })?;
        if meta.is_dir() {
            image_files(&path, out)?;
        } else if is_image_name(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// Lists `root` (the `what` folder, "train" or "test", named in errors).
pub(crate) fn list(root: &Path, what: &'static str) -> Result<Listing, DataError> {
    match fs::metadata(root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DataError::FolderMissing {
                what,
                path: root.to_path_buf(),
            })
        }
        Err(source) => {
            return Err(DataError::Io {
                path: root.to_path_buf(),
                source,
            })
        }
        Ok(m) if !m.is_dir() => {
            return Err(DataError::NotAFolder {
                what,
                path: root.to_path_buf(),
            })
        }
        Ok(_) => {}
    }
    let mut classes = Vec::new();
    let mut loose = Vec::new();
    for path in read_dir_sorted(root)? {
        // Class folders may be symlinks (a common way to assemble a dataset): follow them.
        if path.is_dir() {
            let mut files = Vec::new();
            image_files(&path, &mut files)?;
            files.sort();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            classes.push(ClassFolder { name, path, files });
        } else if is_image_name(&path) {
            loose.push(path);
        }
    }
    classes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Listing { classes, loose })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_case_insensitive() {
        for n in ["a.png", "a.PNG", "b.jpg", "c.JpEg", "d/e.jpeg"] {
            assert!(is_image_name(Path::new(n)), "{n}");
        }
        for n in ["manifest.csv", "a.gif", "png", "a.png.txt", ".DS_Store"] {
            assert!(!is_image_name(Path::new(n)), "{n}");
        }
    }

    #[test]
    fn lists_sorted_classes_recursively_ignoring_hidden_and_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in [
            "zebra/b.png",
            "zebra/a.JPG",
            "apple/sub/c.jpeg",
            "apple/a.png",
            "apple/notes.txt",
            "apple/._a.png",
            ".ipynb_checkpoints/x.png",
            "Mango/m.png",
            "loose.png",
            "manifest.csv",
        ] {
            let p = root.join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, b"x").unwrap();
        }
        let l = list(root, "train").unwrap();
        let names: Vec<_> = l.classes.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["Mango", "apple", "zebra"]);
        assert_eq!(
            l.classes[1].files,
            [root.join("apple/a.png"), root.join("apple/sub/c.jpeg")]
        );
        assert_eq!(
            l.classes[2].files,
            [root.join("zebra/a.JPG"), root.join("zebra/b.png")]
        );
        assert_eq!(l.loose, [root.join("loose.png")]);
    }

    #[test]
    fn missing_and_file_roots_are_errors_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let e = list(&missing, "train").unwrap_err().to_string();
        assert!(e.contains("nope") && e.contains("resolved against"), "{e}");
        let file = dir.path().join("f.txt");
        fs::write(&file, b"x").unwrap();
        let e = list(&file, "test").unwrap_err().to_string();
        assert!(e.contains("f.txt") && e.contains("is a file"), "{e}");
    }
}
