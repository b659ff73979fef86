//! Checking the data folders without decoding an image: what `sweep validate` reports about
//! `[data]`, and what `sweep run` checks once before any run trains.
//!
//! The folders are listed exactly as the loader lists them ([`scan`](super::scan): class
//! sub-folders sorted by name, `png`/`jpg`/`jpeg` files, hidden names ignored), so a directory
//! walk finds every problem that would make [`load`](super::load) fail (or split a class into
//! nothing): a folder that is not named, missing or a file; no class sub-folder or only one; a
//! class with no image file; test classes that are not the train classes; a class too small to
//! give the validation split one image and training one. A file that has an image extension
//! but does not decode still counts here; the loader skips it later and lists it as skipped.
use std::path::{Path, PathBuf};

use super::scan::{self, ClassFolder, Listing};
use super::split::val_count;
use super::DataSpec;

/// One problem with the data folders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataProblem {
    /// The sweep-file key to change: `data.train`, `data.test` or `data.val_split`.
    pub key: &'static str,
    /// What is wrong, naming the folder, and how to fix it.
    pub message: String,
}

/// How far [`check_folders`] looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Depth {
    /// Each folder is named, exists and is a folder (one `stat` each).
    Folders,
    /// Also list them: classes, image files per class, test classes against train, the split.
    Contents,
}

/// The folders of a resolved spec ([`DataSpec::resolve`]), listed (nothing is decoded): every
/// problem that would keep a run from training, each with its key and a fix. Empty: all is well.
pub fn check(spec: &DataSpec) -> Vec<DataProblem> {
    check_folders(
        Some(&spec.train),
        spec.test.as_deref(),
        Path::new(""),
        Some(spec.val_split),
        Depth::Contents,
    )
}

/// The folders as written in a sweep file, resolved against `base` (the sweep file's folder;
/// messages name them as written). `train` is `None` when the file gives none (a problem the
/// caller reports); `val_split` is `None` when it is invalid (ditto), which skips the check
/// that every class can give validation and training an image each.
pub fn check_folders(
    train: Option<&Path>,
    test: Option<&Path>,
    base: &Path,
    val_split: Option<f64>,
    depth: Depth,
) -> Vec<DataProblem> {
    let mut out = Vec::new();
    let train = train.and_then(|t| folder(t, base, Role::Train, &mut out));
    let test = test.and_then(|t| folder(t, base, Role::Test, &mut out));
    if depth == Depth::Folders {
        return out;
    }
    let train = train.and_then(|(written, dir)| {
        let listing = list(&written, &dir, Role::Train, &mut out)?;
        Some((written, listing))
    });
    if let Some((written, listing)) = &train {
        classes(written, listing, Role::Train, &mut out);
        if let Some(v) = val_split.filter(|v| *v > 0.0) {
            split(written, listing, v, &mut out);
        }
    }
    if let Some((written, dir)) = test {
        if let Some(listing) = list(&written, &dir, Role::Test, &mut out) {
            classes(&written, &listing, Role::Test, &mut out);
            if let Some((_, train)) = &train {
                same_classes(train, &listing, &mut out);
            }
        }
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Train,
    Test,
}

impl Role {
    fn key(self) -> &'static str {
        match self {
            Role::Train => "data.train",
            Role::Test => "data.test",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Role::Train => "train",
            Role::Test => "test",
        }
    }
}

fn add(out: &mut Vec<DataProblem>, key: &'static str, message: String) {
    out.push(DataProblem { key, message });
}

/// `written` resolved against `base` if it names an existing folder, else its problem.
fn folder(
    written: &Path,
    base: &Path,
    role: Role,
    out: &mut Vec<DataProblem>,
) -> Option<(PathBuf, PathBuf)> {
    let key = role.key();
    if written.as_os_str().is_empty() {
        let fix = match role {
            Role::Train => "set it to the folder that holds one sub-folder per class, e.g. train = \"data/train\"",
            Role::Test => "set it to a folder with the same class sub-folders as data.train, or remove the key (no test folder)",
        };
        add(out, key, format!("is empty; {fix}"));
        return None;
    }
    let resolved = base.join(written);
    let shown = format!("{written:?}");
    let here = if resolved == written {
        String::new()
    } else {
        format!(
            " (relative paths resolve against the sweep file's folder, here {})",
            resolved.display()
        )
    };
    match std::fs::metadata(&resolved) {
        Ok(m) if m.is_dir() => Some((written.to_path_buf(), resolved)),
        Ok(_) => {
            add(out, key, format!("{shown} is a file, not a folder{here}; data.{} must name a folder that holds one sub-folder per class (cat/001.png, dog/001.png, ...)", role.what()));
            None
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            add(out, key, format!("folder {shown} does not exist{here}; fix the path, or create the folder with one sub-folder per class"));
            None
        }
        Err(e) => {
            add(
                out,
                key,
                format!("cannot read {shown}{here}: {e}; check that it exists and is readable"),
            );
            None
        }
    }
}

fn list(written: &Path, dir: &Path, role: Role, out: &mut Vec<DataProblem>) -> Option<Listing> {
    match scan::list(dir, role.what()) {
        Ok(listing) => Some(listing),
        Err(e) => {
            add(out, role.key(), format!("cannot list {written:?}: {e}"));
            None
        }
    }
}

/// At most 10 names, quoted, then how many more.
fn names<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let all: Vec<&str> = names.into_iter().collect();
    let mut shown: Vec<String> = all.iter().take(10).map(|n| format!("{n:?}")).collect();
    if all.len() > 10 {
        shown.push(format!("and {} more", all.len() - 10));
    }
    shown.join(", ")
}

/// Class sub-folders: at least two (train), each with an image file.
fn classes(written: &Path, listing: &Listing, role: Role, out: &mut Vec<DataProblem>) {
    let shown = format!("{written:?}");
    let key = role.key();
    match listing.classes.len() {
        0 => {
            let loose = match listing.loose.len() {
                0 => String::new(),
                n => format!(" (it holds {n} image file(s) directly: is it a class folder? then point data.{} at its parent)", role.what()),
            };
            let (cat, dog) = (written.join("cat/001.png"), written.join("dog/001.png"));
            add(out, key, format!("folder {shown} has no class sub-folders{loose}; put the images in one sub-folder per class, e.g. {cat:?} and {dog:?}"));
            return;
        }
        1 if role == Role::Train => add(
            out,
            key,
            format!(
                "folder {shown} has only one class sub-folder ({:?}); a classifier needs at least 2: add one sub-folder per class",
                listing.classes[0].name
            ),
        ),
        _ => {}
    }
    let empty: Vec<&ClassFolder> = listing
        .classes
        .iter()
        .filter(|c| c.files.is_empty())
        .collect();
    if !empty.is_empty() {
        let (s, them) = if empty.len() == 1 {
            ("", "it")
        } else {
            ("s", "them")
        };
        add(out, key, format!(
            "class folder{s} {} in {shown} hold{} no .png/.jpg/.jpeg image; add images to {them}, or remove {them}",
            names(empty.iter().map(|c| c.name.as_str())),
            if empty.len() == 1 { "s" } else { "" },
        ));
    }
}

/// Every (non-empty) train class must give the validation split one image and training one.
fn split(written: &Path, listing: &Listing, val_split: f64, out: &mut Vec<DataProblem>) {
    let small: Vec<&ClassFolder> = listing
        .classes
        .iter()
        .filter(|c| {
            let n = c.files.len();
            let val = val_count(n, val_split);
            n > 0 && (val == 0 || val == n)
        })
        .collect();
    if small.is_empty() {
        return;
    }
    let counts: Vec<String> = small
        .iter()
        .take(10)
        .map(|c| format!("{:?} has {}", c.name, c.files.len()))
        .collect();
    let more = match small.len() {
        n if n > 10 => format!(" and {} more", n - 10),
        _ => String::new(),
    };
    add(out, "data.val_split", format!(
        "with val_split = {val_split} every class of {written:?} needs at least 2 images (1 for validation, 1 for training), but {}{more}; add images to {}",
        counts.join(", "),
        if small.len() == 1 { "it" } else { "them" },
    ));
}

/// The test folder's classes must be the train folder's.
fn same_classes(train: &Listing, test: &Listing, out: &mut Vec<DataProblem>) {
    if test.classes.is_empty() {
        return; // reported as "no class sub-folders"
    }
    let has = |l: &Listing, name: &str| l.classes.iter().any(|c| c.name == name);
    let missing: Vec<&str> = train
        .classes
        .iter()
        .map(|c| c.name.as_str())
        .filter(|n| !has(test, n))
        .collect();
    let extra: Vec<&str> = test
        .classes
        .iter()
        .map(|c| c.name.as_str())
        .filter(|n| !has(train, n))
        .collect();
    if missing.is_empty() && extra.is_empty() {
        return;
    }
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing in test: {}", names(missing)));
    }
    if !extra.is_empty() {
        parts.push(format!("only in test: {}", names(extra)));
    }
    add(out, "data.test", format!(
        "its class sub-folders differ from data.train's: {}; rename, add or remove sub-folders so the names match exactly",
        parts.join("; ")
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A temp folder with `files` (relative paths) created empty: only names count here.
    fn tree(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            let p = dir.path().join(f);
            if f.ends_with('/') {
                std::fs::create_dir_all(p).unwrap();
            } else {
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, b"").unwrap();
            }
        }
        dir
    }

    fn spec(dir: &Path, train: &str, test: Option<&str>) -> DataSpec {
        DataSpec {
            train: dir.join(train),
            test: test.map(|t| dir.join(t)),
            val_split: 0.2,
            height: 8,
            width: 8,
            channels: 1,
            seed: 0,
            normalize: Default::default(),
        }
    }

    fn only(problems: &[DataProblem], key: &str, text: &[&str]) {
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert_eq!(problems[0].key, key, "{problems:#?}");
        for t in text {
            assert!(problems[0].message.contains(t), "{t:?} in {problems:#?}");
        }
    }

    const GOOD: [&str; 8] = [
        "train/cat/1.png",
        "train/cat/2.jpg",
        "train/dog/1.PNG",
        "train/dog/sub/2.jpeg",
        "test/cat/1.png",
        "test/dog/1.png",
        "test/dog/notes.txt",
        "train/manifest.csv",
    ];

    #[test]
    fn good_folders_have_no_problem() {
        let d = tree(&GOOD);
        assert_eq!(check(&spec(d.path(), "train", Some("test"))), []);
        assert_eq!(check(&spec(d.path(), "train", None)), []);
    }

    #[test]
    fn folders_that_are_not_named_missing_or_files() {
        let d = tree(&GOOD);
        let p = check_folders(
            Some(Path::new("")),
            None,
            d.path(),
            Some(0.2),
            Depth::Folders,
        );
        only(&p, "data.train", &["is empty"]);
        let p = check_folders(
            Some(Path::new("train")),
            Some(Path::new("")),
            d.path(),
            Some(0.2),
            Depth::Contents,
        );
        only(&p, "data.test", &["is empty", "remove the key"]);
        let p = check(&spec(d.path(), "train/cat/1.png", None));
        only(&p, "data.train", &["1.png\" is a file, not a folder"]);
        let p = check_folders(
            Some(Path::new("nope")),
            Some(Path::new("test/dog/notes.txt")),
            d.path(),
            Some(0.2),
            Depth::Folders,
        );
        assert_eq!(p.len(), 2, "{p:#?}");
        assert_eq!(p[0].key, "data.train");
        assert!(p[0].message.starts_with("folder \"nope\" does not exist (relative paths resolve against the sweep file's folder, here "), "{p:#?}");
        assert_eq!(p[1].key, "data.test");
        assert!(p[1].message.contains("is a file"), "{p:#?}");
    }

    #[test]
    fn no_class_or_one_class() {
        let d = tree(&["flat/1.png", "flat/2.png", "one/cat/1.png", "none/"]);
        let p = check(&spec(d.path(), "flat", None));
        only(
            &p,
            "data.train",
            &["no class sub-folders", "2 image file(s) directly", "parent"],
        );
        let p = check(&spec(d.path(), "none", None));
        only(&p, "data.train", &["no class sub-folders;"]);
        let p = check(&spec(d.path(), "one", None));
        // One image in the only class: too few for the split as well.
        assert_eq!(p.len(), 2, "{p:#?}");
        assert!(p[0].message.contains("only one class sub-folder (\"cat\")"));
        assert_eq!(p[1].key, "data.val_split");
    }

    #[test]
    fn empty_classes_are_named() {
        let d = tree(&[
            "train/cat/1.png",
            "train/cat/2.png",
            "train/dog/notes.txt",
            "train/dog/.hidden.png",
            "train/emu/",
            "test/cat/1.png",
            "test/dog/",
            "test/emu/1.png",
        ]);
        let p = check(&spec(d.path(), "train", Some("test")));
        assert_eq!(p.len(), 2, "{p:#?}");
        assert_eq!(p[0].key, "data.train");
        assert!(
            p[0].message.contains("class folders \"dog\", \"emu\" in")
                && p[0].message.contains("hold no .png/.jpg/.jpeg image"),
            "{p:#?}"
        );
        assert_eq!(p[1].key, "data.test");
        assert!(p[1].message.contains("class folder \"dog\" in"), "{p:#?}");
    }

    #[test]
    fn test_classes_must_be_the_train_classes() {
        let d = tree(&[
            "train/cat/1.png",
            "train/cat/2.png",
            "train/dog/1.png",
            "train/dog/2.png",
            "test/cat/1.png",
            "test/Dog/1.png",
            "test/emu/1.png",
            "flat/1.png",
        ]);
        let p = check(&spec(d.path(), "train", Some("test")));
        only(
            &p,
            "data.test",
            &["missing in test: \"dog\"", "only in test: \"Dog\", \"emu\""],
        );
        let p = check(&spec(d.path(), "train", Some("flat")));
        only(&p, "data.test", &["no class sub-folders"]);
    }

    #[test]
    fn every_class_must_give_validation_and_training_an_image() {
        let d = tree(&[
            "train/cat/1.png",
            "train/cat/2.png",
            "train/dog/1.png",
            "train/emu/1.png",
        ]);
        let mut s = spec(d.path(), "train", None);
        let p = check(&s);
        only(
            &p,
            "data.val_split",
            &[
                "val_split = 0.2",
                "\"dog\" has 1, \"emu\" has 1",
                "at least 2 images",
            ],
        );
        // No split, no need: the check follows the loader's split.
        s.val_split = 0.0;
        assert_eq!(check(&s), []);
    }

    #[test]
    fn long_lists_are_cut() {
        let files: Vec<String> = (0..13).map(|i| format!("train/c{i:02}/")).collect();
        let files: Vec<&str> = files.iter().map(String::as_str).collect();
        let d = tree(&files);
        let p = check(&spec(d.path(), "train", None));
        only(&p, "data.train", &["\"c09\", and 3 more"]);
    }
}
