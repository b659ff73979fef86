//! An [`Inspection`] as terminal tables (names from folders escaped) or as one JSON object.
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::Table;
use serde_json::{json, Value};

use crate::data::inspect::{DuplicateGroup, Inspection, SizedFile, SplitFacts};
use crate::report::text::for_terminal;
use crate::report::to_json_string;

/// How many sizes the report lists, most common first.
const SIZES: usize = 5;
/// How many files a table lists before "... and N more".
const LISTED: usize = 20;

fn path_text(p: &Path) -> String {
    p.display().to_string()
}

/// The JSON object (fields in README.md, "Inspecting the data").
pub fn json(found: &Inspection, charts: &[PathBuf]) -> String {
    let paths = |ps: &[PathBuf]| ps.iter().map(|p| path_text(p)).collect::<Vec<_>>();
    let sized = |s: &Option<SizedFile>| {
        s.as_ref()
            .map(|s| json!({"width": s.width, "height": s.height, "path": path_text(&s.path)}))
    };
    let splits: Vec<Value> = found
        .splits
        .iter()
        .map(|s| {
            json!({
                "split": s.split,
                "path": path_text(&s.root),
                "files": s.files(),
                "images": s.images(),
                "classes": s.classes.iter().map(|c| json!({
                    "name": c.name, "files": c.files, "images": c.images,
                })).collect::<Vec<_>>(),
                "imbalance_ratio": s.imbalance_ratio(),
                "sizes": {
                    "most_common": s.sizes.iter().take(SIZES).map(|z| json!({
                        "width": z.width, "height": z.height, "count": z.count,
                    })).collect::<Vec<_>>(),
                    "distinct": s.sizes.len(),
                    "smallest": sized(&s.smallest),
                    "largest": sized(&s.largest),
                },
                "colour_modes": s.modes,
                "colour_images": s.colour_images,
                "grey_in_colour_set": {
                    "stored_grey": paths(&s.stored_grey),
                    "colour_file_grey_pixels": paths(&s.grey_pixels),
                },
                "unreadable": s.unreadable.iter().map(|u| json!({
                    "path": path_text(&u.path), "class": u.class, "reason": u.reason,
                })).collect::<Vec<_>>(),
                "loose_files": paths(&s.loose),
                "duplicates_within_class": s.duplicates_within_class,
            })
        })
        .collect();
    let groups = |gs: &[DuplicateGroup]| {
        let files = |g: &DuplicateGroup| {
            let f = g
                .files
                .iter()
                .map(|f| json!({"split": f.split, "class": f.class, "path": path_text(&f.path)}));
            f.collect::<Vec<_>>()
        };
        gs.iter().map(files).collect::<Vec<_>>()
    };
    to_json_string(&json!({
        "splits": splits,
        "label_conflicts": groups(&found.label_conflicts),
        "leaks": groups(&found.leaks),
        "problems": found.problems(),
        "charts": paths(charts),
    }))
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(header.to_vec());
    t
}

/// Every split's tables, then the duplicates across classes and splits, then a verdict.
pub fn tables(found: &Inspection) -> String {
    let mut out = String::new();
    for split in &found.splits {
        split_tables(split, &mut out);
    }
    for (title, groups) in [
        (
            "label conflicts (the same pixels in different classes)",
            &found.label_conflicts,
        ),
        ("leaks (the same pixels in train and test)", &found.leaks),
    ] {
        if groups.is_empty() {
            continue;
        }
        let _ = writeln!(out, "{title}: {} group(s)", groups.len());
        let mut t = table(&["group", "split", "class", "path"]);
        for (i, g) in groups.iter().enumerate().take(LISTED) {
            for f in g.files.iter().take(LISTED) {
                let path = for_terminal(&path_text(&f.path));
                t.add_row(vec![
                    (i + 1).to_string(),
                    f.split.into(),
                    for_terminal(&f.class),
                    path,
                ]);
            }
            if g.files.len() > LISTED {
                let rest = format!("... and {} more", g.files.len() - LISTED);
                t.add_row(vec![
                    (i + 1).to_string(),
                    String::new(),
                    String::new(),
                    rest,
                ]);
            }
        }
        let _ = writeln!(out, "{t}{}", more(groups.len()));
    }
    let _ = writeln!(out, "{}", verdict(found));
    out
}

/// "... and N more" past [`LISTED`] entries.
fn more(n: usize) -> String {
    match n.saturating_sub(LISTED) {
        0 => String::new(),
        rest => format!("\n... and {rest} more (--format json lists all)"),
    }
}

fn split_tables(s: &SplitFacts, out: &mut String) {
    let _ = writeln!(
        out,
        "{}: {} ({} classes, {} images in {} files)",
        s.split,
        for_terminal(&path_text(&s.root)),
        s.classes.len(),
        s.images(),
        s.files()
    );
    let mut t = table(&["class", "images", "files"]);
    for c in &s.classes {
        t.add_row(vec![
            for_terminal(&c.name),
            c.images.to_string(),
            c.files.to_string(),
        ]);
    }
    let _ = writeln!(out, "{t}");
    if let Some(r) = s.imbalance_ratio() {
        let _ = writeln!(
            out,
            "imbalance ratio: {r:.2} (largest class / smallest non-empty class)"
        );
    }
    let sizes: Vec<String> = (s.sizes.iter().take(SIZES))
        .map(|z| format!("{}x{} ({})", z.width, z.height, z.count))
        .collect();
    match s.sizes.len() {
        0 => {}
        1 => {
            let _ = writeln!(out, "sizes: {}, all the same", sizes.join(""));
        }
        n => {
            let _ = writeln!(out, "sizes: {} of {n} distinct", sizes.join(", "));
            for (what, f) in [("smallest", &s.smallest), ("largest", &s.largest)] {
                sized_file(what, f, out);
            }
        }
    }
    let modes: Vec<String> = s.modes.iter().map(|(m, n)| format!("{m} {n}")).collect();
    let _ = writeln!(out, "colour modes: {}", modes.join(", "));
    let _ = writeln!(out, "copies within a class: {}", s.duplicates_within_class);
    if !s.unreadable.is_empty() {
        let _ = writeln!(out, "unreadable files: {}", s.unreadable.len());
        let mut t = table(&["path", "reason"]);
        for u in s.unreadable.iter().take(LISTED) {
            t.add_row(vec![
                for_terminal(&path_text(&u.path)),
                for_terminal(&u.reason),
            ]);
        }
        let _ = writeln!(out, "{t}{}", more(s.unreadable.len()));
    }
    for (what, files) in [
        ("grey images in a colour set, stored grey", &s.stored_grey),
        (
            "grey images in a colour set, colour file with grey pixels",
            &s.grey_pixels,
        ),
        (
            "image files outside the class folders (not loaded)",
            &s.loose,
        ),
    ] {
        list(what, files, out);
    }
    out.push('\n');
}

fn sized_file(what: &str, f: &Option<SizedFile>, out: &mut String) {
    if let Some(f) = f {
        let path = for_terminal(&path_text(&f.path));
        let _ = writeln!(out, "{what}: {}x{} {path}", f.width, f.height);
    }
}

fn list(what: &str, files: &[PathBuf], out: &mut String) {
    if files.is_empty() {
        return;
    }
    let _ = writeln!(out, "{what}: {}", files.len());
    for f in files.iter().take(LISTED) {
        let _ = writeln!(out, "  {}", for_terminal(&path_text(f)));
    }
    let rest = more(files.len());
    if !rest.is_empty() {
        let _ = writeln!(out, "{}", rest.trim_start());
    }
}

/// The last line: what makes the exit code 2, or that nothing does.
fn verdict(found: &Inspection) -> String {
    let unreadable: usize = found.splits.iter().map(|s| s.unreadable.len()).sum();
    if found.problems() == 0 {
        let leaks = match found.splits.len() {
            1 => "",
            _ => ", no image in both train and test",
        };
        return format!("ok: no unreadable file, no image in two classes{leaks}");
    }
    format!(
        "problems: {unreadable} unreadable file(s), {} label conflict(s), {} leak(s)",
        found.label_conflicts.len(),
        found.leaks.len()
    )
}
