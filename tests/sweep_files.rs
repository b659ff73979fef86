//! Sweep files as a hostile user writes them: thousands of seeded mutations of the bundled
//! `sweeps/*.toml` never panic or hang, and every rejection names a key; `validate` and `plan`
//! check the data folders (a directory walk) along with the file.
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sweep::sweep::{Sweep, SweepError, MAX_RUNS};

use crate::util::{repo, sweep as run_sweep, text};

/// SplitMix64: a tiny seeded generator, so every mutant can be rebuilt from its number.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Values of every type and edge: what a key's value is swapped for.
const VALUES: &[&str] = &[
    "\"x\"",
    "\"\"",
    "\"none\"",
    "\"random\"",
    "\"cnn\"",
    "\"../../etc\"",
    "\"\u{202e}gnp.\"",
    "\"\u{1F600}\"",
    "0",
    "1",
    "-1",
    "2",
    "42",
    "0.0",
    "0.5",
    "1.0",
    "-0.5",
    "1e-300",
    "1e308",
    "-1e308",
    "9223372036854775807",
    "-9223372036854775808",
    "nan",
    "inf",
    "-inf",
    "true",
    "false",
    "[]",
    "[1]",
    "[0, 0]",
    "[1, \"a\"]",
    "[[1, 2], [3]]",
    "[\"sgd\", \"sgd\"]",
    "[-1, 1e308, nan]",
    "{}",
    "{ a = 1 }",
    "{ log_uniform = [1e-4, 1e-1] }",
    "{ uniform = [1, 0] }",
    "{ int_uniform = [0, 9223372036854775807] }",
    "{ int_uniform = [-5, 5] }",
    "{ monitor = \"val_acc\", patience = -3 }",
    "{ keep = \"best\", monitor = 1 }",
    "1979-05-27T07:32:00Z",
    "07:32:00",
];

/// Lines inserted anywhere: unknown keys, sections, conflicting settings.
const INSERTS: &[&str] = &[
    "zzz = 1",
    "seed = [1, 2]",
    "seed = -4",
    "name = \"\"",
    "\"ключ\" = 1",
    "a.b.c = 1",
    "[weird]",
    "[grid]",
    "[grid.lr]",
    "[train]",
    "[train.early_stopping]",
    "[data]",
    "[[data]]",
    "[search]\nmethod = \"random\"\ntrials = 3",
    "[search]\nmethod = \"grid\"\ntrials = 3",
    "[search.asha]\nmin_epochs = 100",
    "[search.asha]\nmetric = \"val_loss\"\nmode = \"max\"",
    "[augment.x]\nhflip = \"yes\"\nrotate = 1e300",
    "[augment.none]",
    "[optimizer.rmsprop]",
    "[optimizer.sgd]\nnesterov = true\nmomentum = 0",
    "[grid]\nlr = { log_uniform = [1e-4, 1e-1] }",
    "[grid]\nbackbone = [\"xception\", \"vgg11\"]",
    "[grid]\nseed = [1, 2, 3]",
    "[train]\nseed = 3",
    "[train]\nthreads = 100000",
    "[data]\ntrain = \"\"",
    "[data]\ntrain = \"../data/fashion-mini/train/a/1.png\"",
    "[data]\ntest = \"../data\"",
    "[data]\nimage_size = 0",
    "lr = 0.1",
    "augment = \"x\"",
];

/// Pieces of text inserted at a random place: bytes TOML cares about, and odd unicode.
const SPLINTERS: &[&str] = &[
    "\0",
    "\n",
    "\r\n",
    "\t",
    "\"",
    "'",
    "\"\"\"",
    "[",
    "]",
    "{",
    "}",
    "=",
    ",",
    ".",
    "#",
    "\\",
    "\\u0000",
    "-",
    "+",
    "e",
    "_",
    "\u{feff}",
    "\u{200b}",
    "\u{202e}",
    "\u{1F600}",
    "é",
    "\u{7f}",
    "\u{1b}[31m",
    "\u{fffd}",
];

fn char_boundary(text: &str, rng: &mut Rng) -> usize {
    let mut at = rng.below(text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// One mutation of `text`.
fn mutate(text: &str, rng: &mut Rng) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let n = lines.len().max(1);
    let mut lines: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let join = |lines: &[String]| lines.join("\n") + "\n";
    // Lines that set a key (`key = value`), as (index, key, value).
    let settings: Vec<(usize, String, String)> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with(['#', '[']))
        .filter_map(|(i, l)| {
            let (k, v) = l.split_once('=')?;
            let v = v.split(" #").next().unwrap_or(v).trim();
            Some((i, k.trim().to_string(), v.to_string()))
        })
        .collect();
    match rng.below(16) {
        0 if !lines.is_empty() => {
            lines.remove(rng.below(n));
            join(&lines)
        }
        1 if !lines.is_empty() => {
            let i = rng.below(n);
            lines.insert(i, lines[i].clone());
            join(&lines)
        }
        2 if !lines.is_empty() => {
            lines.swap(rng.below(n), rng.below(n));
            join(&lines)
        }
        3..=5 if !settings.is_empty() => {
            // Another value, of any type.
            let (i, k, _) = rng.pick(&settings).clone();
            lines[i] = format!("{k} = {}", rng.pick(VALUES));
            join(&lines)
        }
        6 if !settings.is_empty() => {
            // The same value as a string (a number or a list becomes text).
            let (i, k, v) = rng.pick(&settings).clone();
            lines[i] = format!("{k} = {:?}", v);
            join(&lines)
        }
        7 if !settings.is_empty() => {
            // A list or table becomes its first element / a scalar.
            let (i, k, v) = rng.pick(&settings).clone();
            let first = v
                .trim_start_matches(['[', '{'])
                .split([',', ']', '}'])
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            let first = first
                .split_once('=')
                .map_or(first.clone(), |(_, b)| b.trim().to_string());
            lines[i] = format!("{k} = {}", if first.is_empty() { "1" } else { &first });
            join(&lines)
        }
        8 => {
            // A table header becomes a plain value, or a section another section.
            let headers: Vec<usize> = (0..lines.len())
                .filter(|i| lines[*i].trim_start().starts_with('['))
                .collect();
            if headers.is_empty() {
                return join(&lines);
            }
            let i = *rng.pick(&headers);
            let name = lines[i].trim().trim_matches(['[', ']']).to_string();
            lines[i] = if rng.below(2) == 0 {
                format!("{name} = {}", rng.pick(VALUES))
            } else {
                rng.pick(&[
                    "[train]",
                    "[grid]",
                    "[data]",
                    "[search]",
                    "[optimizer.sgd]",
                    "[augment.a]",
                    "[search.asha]",
                ])
                .to_string()
            };
            join(&lines)
        }
        9 => {
            let i = rng.below(n + 1);
            lines.insert(i.min(lines.len()), rng.pick(INSERTS).to_string());
            join(&lines)
        }
        10 => {
            let at = char_boundary(text, rng);
            text[..at].to_string()
        }
        11 => {
            let mut out = text.to_string();
            for _ in 0..=rng.below(3) {
                let at = char_boundary(&out, rng);
                out.insert_str(at, rng.pick::<&str>(SPLINTERS));
            }
            out
        }
        12 if !settings.is_empty() => {
            // Deep nesting.
            let (i, k, _) = rng.pick(&settings).clone();
            let depth = 1 + rng.below(300);
            lines[i] = if rng.below(2) == 0 {
                format!("{k} = {}1{}", "[".repeat(depth), "]".repeat(depth))
            } else {
                format!("{k} = {}1{}", "{ a = ".repeat(depth), " }".repeat(depth))
            };
            join(&lines)
        }
        13 if !settings.is_empty() => {
            // Huge or negative numbers where numbers are.
            let (i, k, v) = rng.pick(&settings).clone();
            let swap = *rng.pick(&[
                "-",
                "99999999999999999999",
                "1e999",
                "-0",
                "0.0000001",
                "65537",
                "100001",
            ]);
            let digit = v.find(|c: char| c.is_ascii_digit());
            lines[i] = match (swap, digit) {
                ("-", Some(d)) => format!("{k} = {}-{}", &v[..d], &v[d..]),
                (s, Some(d)) => {
                    let end = v[d..]
                        .find(|c: char| !c.is_ascii_digit() && c != '.')
                        .map_or(v.len(), |e| d + e);
                    format!("{k} = {}{s}{}", &v[..d], &v[end..])
                }
                (s, None) => format!("{k} = {s}"),
            };
            join(&lines)
        }
        14 if !settings.is_empty() => {
            // Empty and long strings.
            let (i, k, _) = rng.pick(&settings).clone();
            let len = *rng.pick(&[0, 1, 300, 5000]);
            lines[i] = format!("{k} = \"{}\"", "a".repeat(len));
            join(&lines)
        }
        _ => {
            // A key renamed: a near miss, another section's key, or nothing.
            if settings.is_empty() {
                return join(&lines);
            }
            let (i, k, v) = rng.pick(&settings).clone();
            let other = *rng.pick(&[
                "seed",
                "lr",
                "trials",
                "train",
                "epochs",
                "keep",
                "",
                "\"\"",
                "\"a b\"",
                "hflip",
                "min_epochs",
                "image_size",
            ]);
            let key = match rng.below(3) {
                0 => format!("{k}s"),
                1 => k.chars().skip(1).collect(),
                _ => other.to_string(),
            };
            lines[i] = format!("{key} = {v}");
            join(&lines)
        }
    }
}

/// A temp folder laid out like the repository: `sweeps/` beside a tiny
/// `data/fashion-mini/{train,test}` (empty image files: nothing is decoded when parsing).
fn tiny_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    // Every `"../data/..."` folder a bundled sweep names, with three classes.
    let mut folders = vec![
        "data/fashion-mini/train".to_string(),
        "data/fashion-mini/test".into(),
    ];
    for (_, text) in bundled_sweeps() {
        for part in text.split("\"../").skip(1) {
            let path = part.split('"').next().unwrap_or("");
            if path.starts_with("data/") {
                folders.push(path.to_string());
            }
        }
    }
    for folder in folders {
        for class in ["a", "b", "c"] {
            let d = dir.path().join(&folder).join(class);
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..3 {
                std::fs::write(d.join(format!("{i}.png")), b"").unwrap();
            }
        }
    }
    std::fs::create_dir_all(dir.path().join("sweeps")).unwrap();
    dir
}

fn bundled_sweeps() -> Vec<(PathBuf, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("sweeps"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

/// What is wrong with one parse result, if anything: a problem without a key, an empty
/// message, a syntax error that does not name the file, a sweep that cannot be expanded.
fn judge(result: Result<Sweep, SweepError>, path: &Path) -> Option<String> {
    match result {
        Ok(sweep) => {
            let runs = sweep.runs();
            if runs.is_empty() || runs.len() > MAX_RUNS {
                return Some(format!("accepted, but expands to {} runs", runs.len()));
            }
            let _ = sweep.strategy();
            None
        }
        Err(SweepError::Invalid { problems, file }) => {
            if problems.is_empty() {
                return Some("rejected with an empty problem list".into());
            }
            if file != path {
                return Some(format!("rejection names {file:?}, not {path:?}"));
            }
            problems
                .iter()
                .find(|p| p.key.trim().is_empty() || p.message.trim().is_empty())
                .map(|p| format!("a problem without a key or message: {p:?}"))
        }
        Err(e @ SweepError::Toml { .. }) => {
            let shown = e.to_string();
            (!shown.contains(&path.display().to_string()))
                .then(|| format!("syntax error without the file name: {shown}"))
        }
        Err(e) => Some(format!("unexpected error: {e}")),
    }
}

#[test]
fn thousands_of_mutated_sweep_files_never_panic_or_hang_and_every_rejection_names_a_key() {
    // SWEEP_MUTANTS=100000 searches further (the default runs in about 2 s).
    let mutants: u64 = std::env::var("SWEEP_MUTANTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(4000);
    let root = tiny_repo();
    let files = bundled_sweeps();
    // The originals are valid against the tiny data too.
    // A sweep that starts from the checkpoint of another (transfer learning) is valid once
    // that one has run: here only its missing weights file may be reported.
    let waits_for_pretraining = |r: &Result<Sweep, SweepError>| match r {
        Err(SweepError::Invalid { problems, .. }) => problems
            .iter()
            .all(|p| p.key == "train.pretrained" && p.message.contains("does not exist")),
        _ => false,
    };
    for (p, text) in &files {
        let path = root.path().join("sweeps").join(p.file_name().unwrap());
        let r = Sweep::from_str_checked(text, &path);
        assert!(
            r.is_ok() || waits_for_pretraining(&r),
            "{}: {:?}",
            p.display(),
            r.err()
        );
    }
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {})); // panics are collected below, not printed
    let started = Instant::now();
    let (mut ok, mut invalid, mut syntax) = (0, 0, 0);
    let mut slowest = (Duration::ZERO, 0, String::new());
    let mut faults: Vec<String> = Vec::new();
    for seed in 0..mutants {
        let mut rng = Rng(seed);
        let (file, original) = rng.pick(&files);
        let path = root.path().join("sweeps").join(file.file_name().unwrap());
        let mut text = original.clone();
        for _ in 0..=rng.below(3) {
            text = mutate(&text, &mut rng);
        }
        let t0 = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            // Both depths: the file alone (as `run` parses it), and with the data listed.
            let quick = Sweep::from_str(&text, &path);
            let full = Sweep::from_str_checked(&text, &path);
            let kind = match &full {
                Ok(_) => 0,
                Err(SweepError::Invalid { .. }) => 1,
                Err(_) => 2,
            };
            (judge(quick, &path).or(judge(full, &path)), kind)
        }));
        let took = t0.elapsed();
        if took > slowest.0 {
            slowest = (took, seed, text.clone());
        }
        match outcome {
            Ok((None, kind)) => match kind {
                0 => ok += 1,
                1 => invalid += 1,
                _ => syntax += 1,
            },
            Ok((Some(fault), _)) => faults.push(format!("mutant {seed}: {fault}\n{text}")),
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                faults.push(format!("mutant {seed} panicked: {msg}\n{text}"))
            }
        }
    }
    std::panic::set_hook(hook);
    let elapsed = started.elapsed();
    eprintln!(
        "{mutants} mutants in {elapsed:.2?}: {ok} ok, {invalid} rejected with keyed problems, \
         {syntax} TOML syntax errors; slowest mutant {} took {:.2?}",
        slowest.1, slowest.0
    );
    let headlines: Vec<&str> = faults.iter().filter_map(|f| f.lines().next()).collect();
    assert!(
        faults.is_empty(),
        "{} faults:\n{}\nthe first in full:\n{}",
        faults.len(),
        headlines.join("\n"),
        faults.first().map_or("", String::as_str)
    );
    // The mutations reach every outcome, so the loop tests the validation, not only the TOML parser.
    for (what, n) in [("accepted", ok), ("rejected", invalid), ("syntax", syntax)] {
        assert!(n >= mutants / 20, "only {n} {what} of {mutants}");
    }
    assert!(
        slowest.0 < Duration::from_secs(10),
        "mutant {} took {:?}:\n{}",
        slowest.1,
        slowest.0,
        slowest.2
    );
    assert!(
        elapsed < Duration::from_secs(60) || mutants > 4000,
        "{mutants} mutants took {elapsed:?}"
    );
}

/// A sweep file in a temp folder with image folders (empty files: only names count).
fn sweep_with_data(files: &[&str], data: &str) -> tempfile::TempDir {
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
    let text = format!("[data]\n{data}\nimage_size = [8, 8]\n[grid]\nlr = [0.1, 0.01]\n");
    std::fs::write(dir.path().join("s.toml"), text).unwrap();
    dir
}

#[test]
fn validate_and_plan_refuse_data_that_cannot_train() {
    let dir = sweep_with_data(
        &[
            "train/cat/1.png",
            "train/cat/2.png",
            "train/dog/1.png",
            "train/emu/",
            "test/cat/1.png",
            "test/dog/1.png",
        ],
        "train = \"train\"\ntest = \"test\"",
    );
    for command in ["validate", "plan"] {
        let out = run_sweep(&[command, "s.toml"], dir.path());
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{command}: {stdout}{stderr}");
        assert!(stderr.contains("s.toml has 3 problems"), "{stderr}");
        assert!(
            stderr.contains("data.train: class folder \"emu\" in \"train\" holds no"),
            "{stderr}"
        );
        assert!(
            stderr.contains("data.test: its class sub-folders differ from data.train's: missing in test: \"emu\""),
            "{stderr}"
        );
        assert!(
            stderr.contains("data.val_split: with val_split = 0.2 every class of \"train\" needs at least 2 images"),
            "{stderr}"
        );
    }
    // One class; and the sweep folder itself ("" resolves to it).
    let dir = sweep_with_data(&["train/cat/1.png", "train/cat/2.png"], "train = \"train\"");
    let (_, stderr) = text(&run_sweep(&["validate", "s.toml"], dir.path()));
    assert!(
        stderr.contains("data.train: folder \"train\" has only one class sub-folder (\"cat\")"),
        "{stderr}"
    );
    let dir = sweep_with_data(&["train/cat/1.png"], "train = \"\"");
    let (_, stderr) = text(&run_sweep(&["validate", "s.toml"], dir.path()));
    assert!(stderr.contains("data.train: is empty"), "{stderr}");
    // Good data validates.
    let dir = sweep_with_data(
        &[
            "train/cat/1.png",
            "train/cat/2.png",
            "train/dog/1.png",
            "train/dog/2.png",
        ],
        "train = \"train\"",
    );
    let out = run_sweep(&["validate", "s.toml"], dir.path());
    assert_eq!(
        text(&out).0.trim(),
        "ok: 2 runs in sweep s",
        "{:?}",
        text(&out)
    );
}
