//! Helpers: run the binary, build tiny image folders from the bundled example data.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn sweep(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sweep"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run sweep")
}

pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Copy the first `per_class` images of the first `classes` classes of a bundled split.
pub fn copy_classes(split: &str, dest: &Path, classes: usize, per_class: usize) -> Vec<String> {
    let src = repo().join("data/fashion-mini").join(split);
    let mut names: Vec<String> = std::fs::read_dir(&src)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.truncate(classes);
    for class in &names {
        let mut files: Vec<PathBuf> = std::fs::read_dir(src.join(class))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .collect();
        files.sort();
        std::fs::create_dir_all(dest.join(class)).unwrap();
        for f in files.iter().take(per_class) {
            std::fs::copy(f, dest.join(class).join(f.file_name().unwrap())).unwrap();
        }
    }
    names
}
