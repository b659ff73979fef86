//! TOML text -> [`Sweep`], collecting every problem (with its key and a fix) before failing.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::grid::{GRID_KEYS, MAX_RUNS};
use super::search::{self, Method};
use super::values::{got, Hyper, OPTIMIZERS};
use super::{Problem, Sweep, SweepError, TrainSettings};
use crate::data::check::{check_folders, Depth};
use crate::data::{Augment, DataSpec};
use crate::model::Backbone;
use crate::run::OptimizerConfig;
use crate::run::{Checkpointing, EarlyStopping, Keep, Monitor, ReduceLrOnPlateau};
use crate::search::Domain;

const TOP_KEYS: [&str; 11] = [
    "transfer",
    "balance",
    "schedule",
    "name",
    "seed",
    "data",
    "train",
    "grid",
    "search",
    "optimizer",
    "augment",
];
/// Keys a distribution table may draw (numbers); the others take lists only.
const DRAWN_KEYS: [&str; 7] = [
    "width",
    "lr",
    "batch_size",
    "weight_decay",
    "label_smoothing",
    "epochs",
    "seed",
];
const DATA_KEYS: [&str; 6] = [
    "train",
    "test",
    "val_split",
    "image_size",
    "channels",
    "normalize",
];
const TRAIN_SETTINGS: [&str; 7] = [
    "swa",
    "tta",
    "pretrained",
    "early_stopping",
    "reduce_lr_on_plateau",
    "checkpoint",
    "threads",
];
const AUGMENT_KEYS: [&str; 8] = [
    "hflip",
    "vflip",
    "rotate",
    "shift",
    "zoom",
    "shear",
    "brightness",
    "contrast",
];

/// Problems found so far; every check adds to it and goes on.
#[derive(Default)]
pub(super) struct Problems(Vec<Problem>);

impl Problems {
    pub(super) fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }

    /// Report keys of `table` that are not in `allowed`, with the closest allowed one.
    pub(super) fn unknown_keys(&mut self, prefix: &str, table: &Table, allowed: &[&str]) {
        for key in table.keys() {
            if allowed.contains(&key.as_str()) {
                continue;
            }
            let mut msg = format!("unknown key `{}`", key_part(key));
            match closest_key(key, allowed) {
                Some(s) => msg += &format!("; did you mean `{s}`?"),
                None => msg += &format!("; valid keys here: {}", allowed.join(", ")),
            }
            self.add(join(prefix, key), msg);
        }
    }

    /// Whether a problem was found at `key` or inside it (`key.x`, `key[i]`): checks that
    /// build on a value skip it when the value itself was reported, so no false follow-on.
    pub(super) fn has(&self, key: &str) -> bool {
        self.0.iter().any(|p| {
            p.key
                .strip_prefix(key)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        })
    }

    pub(super) fn table<'a>(
        &mut self,
        parent: &'a Table,
        key: &str,
        prefix: &str,
    ) -> Option<&'a Table> {
        match parent.get(key)? {
            Value::Table(t) => Some(t),
            other => {
                self.add(
                    join(prefix, key),
                    format!("expected a table, got {}", other.type_str()),
                );
                None
            }
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    let key = key_part(key);
    if prefix.is_empty() {
        key
    } else {
        format!("{prefix}.{key}")
    }
}

/// A key as TOML writes it in a dotted path: bare when it may be (`lr`, `sgd`), else quoted
/// with escapes (`""`, `"a b"`, `"a.b"`, `"\u001B"`), so a problem's key is never empty,
/// ambiguous, or a control sequence on the terminal.
pub(super) fn key_part(key: &str) -> String {
    let bare = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if !key.is_empty() && key.chars().all(bare) {
        key.to_string()
    } else {
        Value::String(key.to_string()).to_string()
    }
}

/// The allowed key nearest to a misspelt one, if it is near enough to be a likely typo.
pub(super) fn closest_key<'a>(key: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|a| (strsim::jaro_winkler(key, a), *a))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, a)| a)
}

/// `depth` says how far the data folders are checked: that they exist (`Folders`), or also
/// their classes and image files (`Contents`, a directory walk; nothing is decoded).
pub(super) fn parse(text: &str, path: &Path, depth: Depth) -> Result<Sweep, SweepError> {
    let file = path.to_path_buf();
    let root: Table = text
        .parse()
        .map_err(|e: toml::de::Error| SweepError::Toml {
            file: file.clone(),
            message: e.to_string(),
        })?;
    let mut p = Problems::default();
    // `optimizer`, `augment` and `schedule` are grid keys and section tables: only a plain value
    // at the top level is a misplaced grid key.
    let misplaced =
        |k: &String, v: &Value| GRID_KEYS.contains(&k.as_str()) && k != "seed" && !v.is_table();
    for (key, _) in root.iter().filter(|(k, v)| misplaced(k, v)) {
        p.add(
            key.as_str(),
            format!("`{key}` belongs in [train] (one value) or in [grid] (a list)"),
        );
    }
    let rest: Table = root
        .iter()
        .filter(|(k, v)| !misplaced(k, v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    p.unknown_keys("", &rest, &TOP_KEYS);

    let name = sweep_name(&root, path, &mut p);
    let base = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let data = data_spec(&root, &base, depth, &mut p);
    let mut fixed = Hyper::default();
    if let Some(v) = root.get("seed") {
        if let Err(e) = fixed.set("seed", v) {
            p.add("seed", e);
        }
    }
    let empty = Table::new();
    let train = p.table(&root, "train", "").unwrap_or(&empty);
    let settings = train_settings(train, &mut p);
    let threads = match train.get("threads") {
        None => None,
        Some(Value::Integer(n)) if (0..=1024).contains(n) => (*n > 0).then_some(*n as usize),
        Some(v) => {
            p.add(
                "train.threads",
                format!("expected the number of CPU threads per run (0 = all cores), got {v}"),
            );
            None
        }
    };
    let grid = p.table(&root, "grid", "").unwrap_or(&empty);
    if root.contains_key("seed") && grid.contains_key("seed") {
        p.add("seed", "`seed` is set both at the top level and in [grid]; keep one (a list in [grid] to sweep it, one value at the top level to fix it)");
    }
    let (axes, distributions) = grid_axes(train, grid, &mut fixed, &mut p);
    let search = search::parse(&root, &mut p);
    // A random search whose [search] table has a problem is still a random search: its
    // distributions are not "for grid search" too.
    let random_written = matches!(
        root.get("search").and_then(|s| s.get("method")),
        Some(Value::String(m)) if m == "random"
    );
    if search.method == Method::Grid && !random_written && !p.has("search.method") {
        for (key, _) in &distributions {
            p.add(format!("grid.{key}"), "a distribution needs random search: add [search] with method = \"random\" and trials = N, or give a list of values");
        }
    }
    if search.method == Method::Grid {
        let sizes: Vec<usize> = axes.iter().map(|(_, v)| v.len()).collect();
        let total = sizes.iter().try_fold(1usize, |n, s| n.checked_mul(*s));
        if total.is_none_or(|n| n > MAX_RUNS) {
            let product: Vec<String> = sizes.iter().map(usize::to_string).collect();
            p.add("grid", format!("the grid has {} runs ({}), more than {MAX_RUNS}; shorten the lists, or use random search ([search] method = \"random\", trials = N)", total.map_or("too many".to_string(), |n| n.to_string()), product.join(" x ")));
        }
    }
    let epochs_reported = p.has("train.epochs") || p.has("grid.epochs");
    if let Some(asha) = search.asha.as_ref().filter(|_| !epochs_reported) {
        let max_epochs = match axes.iter().find(|(k, _)| *k == "epochs") {
            Some((_, values)) => values
                .iter()
                .filter_map(Value::as_integer)
                .max()
                .unwrap_or(0) as usize,
            None => match distributions.iter().find(|(k, _)| *k == "epochs") {
                Some((_, Domain::IntUniform { hi, .. })) => *hi as usize,
                _ => fixed.epochs,
            },
        };
        if asha.min_epochs >= max_epochs {
            p.add("search.asha.min_epochs", format!("{} is not below the runs' epochs ({max_epochs}): ASHA would never judge a run; lower min_epochs or raise epochs", asha.min_epochs));
        }
    }
    let optimizers = optimizers(&root, &mut p);
    let augments = augments(&root, &mut p);
    let schedules = super::schedule::schedules(&root, &mut p);
    let balance = super::balance::parse(&root, &data, &base, depth, &mut p);

    // Names used by the runs must exist.
    let used = |key: &str| -> Vec<String> {
        match axes.iter().find(|(k, _)| *k == key) {
            Some((_, vals)) => vals
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            None => vec![fixed.show(key)],
        }
    };
    for name in used("augment") {
        if name != "none" && !augments.contains_key(&name) {
            let key = if grid.contains_key("augment") {
                "grid.augment"
            } else {
                "train.augment"
            };
            let defined: Vec<&str> = std::iter::once("none")
                .chain(augments.keys().map(String::as_str))
                .collect();
            p.add(key, format!("augmentation set {} is not defined; add an [augment.{}] table or use one of: {}", Value::String(name.clone()), key_part(&name), defined.join(", ")));
        }
    }

    // Every backbone used must accept the image size (xception needs 71x71, the cnn 10x10).
    let size_known = !p.has("data.image_size");
    for name in used("backbone").into_iter().filter(|_| size_known) {
        let Some(backbone) = Backbone::parse(&name) else {
            continue; // already reported as an unknown backbone
        };
        let min = backbone.min_size();
        let (h, w) = (data.height as usize, data.width as usize);
        if h > 0 && w > 0 && (h < min || w < min) {
            let key = if grid.contains_key("backbone") {
                "grid.backbone"
            } else {
                "train.backbone"
            };
            p.add(key, format!("{name} needs images of at least {min}x{min}, but data.image_size is [{h}, {w}]; raise image_size (images are resized) or pick another backbone"));
        }
    }

    // Every value a gridded (or fixed) key takes: None when it is drawn from a distribution.
    let values = |key: &str| -> Option<Vec<Hyper>> {
        if distributions.iter().any(|(k, _)| *k == key) {
            return None;
        }
        Some(match axes.iter().find(|(k, _)| *k == key) {
            Some((_, vals)) => vals
                .iter()
                .filter_map(|v| {
                    let mut h = fixed.clone();
                    h.set(key, v).ok().map(|_| h)
                })
                .collect(),
            None => vec![fixed.clone()],
        })
    };
    let used = super::transfer::Used {
        backbones: values("backbone")
            .unwrap_or_default()
            .iter()
            .map(|h| h.backbone)
            .collect(),
        widths: values("width")
            .unwrap_or_default()
            .iter()
            .map(|h| h.width)
            .collect(),
        modes: values("transfer")
            .unwrap_or_default()
            .iter()
            .map(|h| h.transfer)
            .collect(),
        epochs: values("epochs")
            .unwrap_or_default()
            .iter()
            .map(|h| h.epochs)
            .collect(),
        transfer_key: if grid.contains_key("transfer") {
            "grid.transfer"
        } else {
            "train.transfer"
        },
    };
    let transfer = super::transfer::parse(&root, train, &used, &data, &base, &mut p);
    let normalize_set = root.get("data").and_then(|d| d.get("normalize")).is_some();

    if !p.0.is_empty() {
        return Err(SweepError::Invalid {
            file,
            problems: p.0,
        });
    }
    Ok(Sweep {
        name,
        file,
        data,
        settings,
        threads,
        fixed,
        axes,
        distributions,
        search,
        fake: None,
        optimizers,
        augments,
        schedules,
        balance,
        transfer,
        normalize_set,
    })
}

fn sweep_name(root: &Table, path: &Path, p: &mut Problems) -> String {
    let name = match root.get("name") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            p.add(
                "name",
                format!("expected a string, got {}", other.type_str()),
            );
            String::new()
        }
        None => path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let ok = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    if root.get("name").is_none_or(Value::is_str)
        && (name.is_empty() || !name.chars().all(ok) || name.starts_with('.'))
    {
        p.add(
            "name",
            format!(
                "{} cannot name a folder under runs/; use letters, digits, '-', '_' and '.'",
                Value::String(name.clone())
            ),
        );
    } else if name.len() > MAX_NAME {
        p.add("name", format!("is {} characters long; a folder name under runs/ takes at most {MAX_NAME}: shorten it", name.len()));
    }
    name
}

/// Longest sweep name: it names a folder (file systems allow 255 bytes), and labels show it.
const MAX_NAME: usize = 100;

fn data_spec(root: &Table, base: &Path, depth: Depth, p: &mut Problems) -> DataSpec {
    let mut spec = DataSpec {
        train: PathBuf::new(),
        test: None,
        val_split: 0.2,
        height: 32,
        width: 32,
        channels: 3,
        seed: 0,
        normalize: Default::default(),
    };
    let Some(data) = p.table(root, "data", "") else {
        p.add("data", "missing [data] table; add one with at least `train = \"path/to/folder\"` and `image_size = [h, w]`");
        return spec;
    };
    p.unknown_keys("data", data, &DATA_KEYS);
    // Folders are checked together below (data::check), once their values are read.
    let folder = |key: &str, p: &mut Problems| -> Option<PathBuf> {
        match data.get(key)? {
            Value::String(s) => Some(PathBuf::from(s)),
            other => {
                p.add(
                    format!("data.{key}"),
                    format!("expected a folder path string, got {}", other.type_str()),
                );
                None
            }
        }
    };
    let train = folder("train", p);
    match &train {
        Some(t) => spec.train = t.clone(),
        None if !data.contains_key("train") => p.add(
            "data.train",
            "missing; set it to an image folder with one sub-folder per class",
        ),
        None => {}
    }
    spec.test = folder("test", p);
    if let Some(v) = data.get("val_split") {
        match v.as_float().or(v.as_integer().map(|i| i as f64)) {
            Some(x) if x > 0.0 && x < 1.0 => spec.val_split = x,
            _ => p.add(
                "data.val_split",
                format!("must be a fraction between 0 and 1 (exclusive), e.g. 0.2; got {v}"),
            ),
        }
    }
    let val_split = (!p.has("data.val_split")).then_some(spec.val_split);
    for problem in check_folders(
        train.as_deref(),
        spec.test.as_deref(),
        base,
        val_split,
        depth,
    ) {
        p.add(problem.key, problem.message);
    }
    match data.get("image_size") {
        None => p.add(
            "data.image_size",
            "missing; set the input size as [height, width], e.g. [28, 28]",
        ),
        Some(v) => {
            let dims: Option<Vec<i64>> = match v {
                Value::Integer(i) => Some(vec![*i, *i]),
                Value::Array(a) if a.len() == 2 => a.iter().map(Value::as_integer).collect(),
                _ => None,
            };
            match dims.as_deref() {
                Some(&[h, w]) if (4..=4096).contains(&h) && (4..=4096).contains(&w) => {
                    spec.height = h as u32;
                    spec.width = w as u32;
                }
                _ => p.add(
                    "data.image_size",
                    format!(
                        "expected [height, width] in pixels, each 4..=4096, e.g. [28, 28]; got {v}"
                    ),
                ),
            }
        }
    }
    if let Some(v) = data.get("channels") {
        match v.as_integer() {
            Some(c @ (1 | 3)) => spec.channels = c as u8,
            _ => p.add(
                "data.channels",
                format!("must be 1 (grey) or 3 (RGB); got {v}"),
            ),
        }
    }
    if let Some(v) = data.get("normalize") {
        match v.as_str().and_then(crate::run::Normalize::parse) {
            Some(n) => spec.normalize = n,
            None => p.add(
                "data.normalize",
                format!("expected \"unit\" (x/255), \"imagenet\" (torchvision's mean and std) or \"inception\" (x/127.5 - 1); got {v}"),
            ),
        }
    }
    spec
}

fn monitor(t: &Table, prefix: &str, default: Monitor, p: &mut Problems) -> Monitor {
    match t.get("monitor") {
        None => default,
        Some(v) => match v.as_str().and_then(Monitor::parse) {
            Some(m) => m,
            None => {
                let names: Vec<_> = Monitor::ALL.iter().map(|m| m.name()).collect();
                p.add(
                    format!("{prefix}.monitor"),
                    format!("unknown monitor {v}; choose one of {}", names.join(", ")),
                );
                default
            }
        },
    }
}

fn count(t: &Table, key: &str, prefix: &str, default: usize, p: &mut Problems) -> usize {
    match t.get(key) {
        None => default,
        Some(Value::Integer(i)) if *i >= 0 => *i as usize,
        Some(v) => {
            p.add(
                format!("{prefix}.{key}"),
                format!("expected a whole number >= 0, got {v}"),
            );
            default
        }
    }
}

fn float(
    t: &Table,
    key: &str,
    prefix: &str,
    default: f64,
    ok: fn(f64) -> bool,
    what: &str,
    p: &mut Problems,
) -> f64 {
    match t.get(key) {
        None => default,
        Some(v) => match v.as_float().or(v.as_integer().map(|i| i as f64)) {
            Some(x) if x.is_finite() && ok(x) => x,
            _ => {
                p.add(
                    format!("{prefix}.{key}"),
                    format!("must be {what}; got {v}"),
                );
                default
            }
        },
    }
}

fn boolean(t: &Table, key: &str, prefix: &str, default: bool, p: &mut Problems) -> bool {
    match t.get(key) {
        None => default,
        Some(Value::Boolean(b)) => *b,
        Some(v) => {
            p.add(
                format!("{prefix}.{key}"),
                format!("expected true or false, got {v}"),
            );
            default
        }
    }
}

/// `[train] swa = { start_epoch = N, lr = X }` (lr optional).
fn swa(train: &Table, p: &mut Problems) -> Option<crate::run::Swa> {
    let v = train.get("swa")?;
    let prefix = "train.swa";
    let Some(t) = v.as_table() else {
        p.add(
            prefix,
            format!(
                "expected a table like {{ start_epoch = 8, lr = 0.01 }}, got {}",
                got(v)
            ),
        );
        return None;
    };
    p.unknown_keys(prefix, t, &["start_epoch", "lr"]);
    if !t.contains_key("start_epoch") {
        p.add(prefix, "needs start_epoch, the first epoch whose weights are averaged, e.g. swa = { start_epoch = 8 }");
        return None;
    }
    let start_epoch = count(t, "start_epoch", prefix, 1, p);
    if start_epoch == 0 {
        p.add(
            format!("{prefix}.start_epoch"),
            "epochs count from 1; write start_epoch = 1 to average every epoch",
        );
    }
    let lr = t.contains_key("lr").then(|| {
        float(
            t,
            "lr",
            prefix,
            0.01,
            |x| x > 0.0 && x <= 10.0,
            "a learning rate in (0, 10]",
            p,
        )
    });
    Some(crate::run::Swa { start_epoch, lr })
}

/// `[train] tta`: "flip", or { crops = 5 | 10 }.
fn tta(train: &Table, p: &mut Problems) -> Option<crate::run::Tta> {
    use crate::run::Tta;
    let v = train.get("tta")?;
    let crops = v
        .as_table()
        .filter(|t| t.len() == 1)
        .and_then(|t| t.get("crops"))
        .and_then(Value::as_integer);
    match (v.as_str(), crops) {
        (Some("flip"), _) => Some(Tta::Flip),
        (_, Some(n @ (5 | 10))) => Some(Tta::Crops { crops: n as usize }),
        _ => {
            p.add(
                "train.tta",
                format!(
                    "expected \"flip\", or {{ crops = 10 }} (or 5) as the seeds' ten-crop; got {}",
                    got(v)
                ),
            );
            None
        }
    }
}

fn train_settings(train: &Table, p: &mut Problems) -> TrainSettings {
    let mut settings = TrainSettings {
        early_stopping: None,
        reduce_lr_on_plateau: None,
        checkpoint: Checkpointing {
            keep: Keep::Best,
            monitor: Monitor::ValLoss,
        },
        tta: None,
        swa: None,
    };
    settings.tta = tta(train, p);
    settings.swa = swa(train, p);
    if let Some(v) = train.get("early_stopping") {
        let prefix = "train.early_stopping";
        match v {
            Value::Boolean(false) => {}
            Value::Table(t) => {
                p.unknown_keys(prefix, t, &["monitor", "patience", "min_delta"]);
                settings.early_stopping = Some(EarlyStopping {
                    monitor: monitor(t, prefix, Monitor::ValLoss, p),
                    patience: count(t, "patience", prefix, 10, p),
                    min_delta: float(t, "min_delta", prefix, 0.0, |x| x >= 0.0, "a number >= 0", p),
                });
            }
            other => p.add(prefix, format!("expected a table like {{ monitor = \"val_loss\", patience = 10 }} or false, got {}", other.type_str())),
        }
    }
    if let Some(v) = train.get("reduce_lr_on_plateau") {
        let prefix = "train.reduce_lr_on_plateau";
        match v {
            Value::Boolean(false) => {}
            Value::Table(t) => {
                p.unknown_keys(prefix, t, &["monitor", "patience", "factor", "min_lr", "min_delta"]);
                settings.reduce_lr_on_plateau = Some(ReduceLrOnPlateau {
                    monitor: monitor(t, prefix, Monitor::ValLoss, p),
                    patience: count(t, "patience", prefix, 5, p),
                    factor: float(t, "factor", prefix, 0.5, |x| x > 0.0 && x < 1.0, "a factor between 0 and 1 (exclusive), e.g. 0.5", p),
                    min_lr: float(t, "min_lr", prefix, 0.0, |x| x >= 0.0, "a number >= 0", p),
                    min_delta: float(t, "min_delta", prefix, 0.0, |x| x >= 0.0, "a number >= 0", p),
                });
            }
            other => p.add(prefix, format!("expected a table like {{ monitor = \"val_loss\", patience = 5, factor = 0.5 }} or false, got {}", other.type_str())),
        }
    }
    if let Some(v) = train.get("checkpoint") {
        let prefix = "train.checkpoint";
        let keep = |s: &str, key: &str, p: &mut Problems| match s {
            "best" => Keep::Best,
            "last" => Keep::Last,
            "none" => Keep::None,
            other => {
                p.add(
                    key,
                    format!("unknown checkpoint choice \"{other}\"; choose best, last or none"),
                );
                Keep::Best
            }
        };
        match v {
            Value::String(s) => settings.checkpoint.keep = keep(s, prefix, p),
            Value::Table(t) => {
                p.unknown_keys(prefix, t, &["keep", "monitor"]);
                if let Some(k) = t.get("keep") {
                    match k.as_str() {
                        Some(s) => settings.checkpoint.keep = keep(s, "train.checkpoint.keep", p),
                        None => p.add("train.checkpoint.keep", "expected \"best\", \"last\" or \"none\""),
                    }
                }
                settings.checkpoint.monitor = monitor(t, prefix, Monitor::ValLoss, p);
            }
            other => p.add(prefix, format!("expected \"best\", \"last\", \"none\" or {{ keep = \"best\", monitor = \"val_loss\" }}, got {}", other.type_str())),
        }
    }
    settings
}

/// The gridded keys: lists (enumerated by a grid, drawn from by random search) and
/// distribution tables (random search only), each in [`GRID_KEYS`] order.
#[allow(clippy::type_complexity)]
fn grid_axes(
    train: &Table,
    grid: &Table,
    fixed: &mut Hyper,
    p: &mut Problems,
) -> (Vec<(&'static str, Vec<Value>)>, Vec<(&'static str, Domain)>) {
    let train_keys: Vec<&str> = GRID_KEYS
        .iter()
        .copied()
        .filter(|k| *k != "seed")
        .chain(TRAIN_SETTINGS)
        .collect();
    for key in train.keys() {
        if key == "seed" {
            p.add(
                "train.seed",
                "`seed` is set at the top level (seed = 42) or as a list in [grid]",
            );
        }
    }
    let not_seed: Table = train
        .iter()
        .filter(|(k, _)| *k != "seed")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    p.unknown_keys("train", &not_seed, &train_keys);
    for (key, v) in train {
        if GRID_KEYS.contains(&key.as_str()) && key != "seed" {
            if grid.contains_key(key) {
                p.add(format!("train.{key}"), format!("`{key}` is set in both [train] and [grid]; keep one (a list in [grid] to sweep it, one value in [train] to fix it)"));
            } else if let Err(e) = fixed.set(key, v) {
                p.add(format!("train.{key}"), e);
            }
        }
    }
    p.unknown_keys("grid", grid, &GRID_KEYS);
    let mut axes = Vec::new();
    let mut distributions = Vec::new();
    for key in GRID_KEYS {
        let Some(v) = grid.get(key) else { continue };
        if let Value::Table(_) = v {
            if let Some(d) = distribution(key, v, fixed, p) {
                distributions.push((key, d));
            }
            continue;
        }
        let Value::Array(values) = v else {
            p.add(
                format!("grid.{key}"),
                format!("expected a list like [{v}]; to fix one value, move it to [train]"),
            );
            continue;
        };
        if values.is_empty() {
            p.add(
                format!("grid.{key}"),
                "empty list: give at least one value, or remove the key",
            );
            continue;
        }
        let mut probe = fixed.clone();
        let mut shown: Vec<String> = Vec::new();
        for (i, value) in values.iter().enumerate() {
            match probe.set(key, value) {
                Err(e) => p.add(format!("grid.{key}[{i}]"), e),
                Ok(()) => {
                    let s = probe.show(key);
                    if shown.contains(&s) {
                        p.add(
                            format!("grid.{key}[{i}]"),
                            format!(
                                "{s} is listed twice; each value makes a run, remove the repeat"
                            ),
                        );
                    }
                    shown.push(s);
                }
            }
        }
        axes.push((key, values.clone()));
    }
    (axes, distributions)
}

/// A `[grid]` distribution table, checked: a known distribution over a numeric key whose
/// both ends are valid values of the key.
fn distribution(key: &str, v: &Value, fixed: &Hyper, p: &mut Problems) -> Option<Domain> {
    let at = format!("grid.{key}");
    if !DRAWN_KEYS.contains(&key) {
        p.add(
            at,
            format!(
                "`{key}` takes a list of values; distributions are for numbers ({})",
                DRAWN_KEYS.join(", ")
            ),
        );
        return None;
    }
    let d = match Domain::parse(v) {
        Ok(d) => d,
        Err(e) => {
            p.add(at, e);
            return None;
        }
    };
    let ends = match &d {
        Domain::Uniform { lo, hi } | Domain::LogUniform { lo, hi } => {
            [Value::Float(*lo), Value::Float(*hi)]
        }
        Domain::IntUniform { lo, hi } => [Value::Integer(*lo), Value::Integer(*hi)],
        Domain::Choice(_) => return Some(d),
    };
    let mut probe = fixed.clone();
    for (end, value) in ["low", "high"].iter().zip(&ends) {
        if let Err(e) = probe.set(key, value) {
            let hint = if matches!(value, Value::Float(_)) && e.contains("whole number") {
                "; use int_uniform for whole numbers"
            } else {
                ""
            };
            p.add(at.clone(), format!("the {end} end {e}{hint}"));
            return None;
        }
    }
    Some(d)
}

fn optimizers(root: &Table, p: &mut Problems) -> BTreeMap<String, OptimizerConfig> {
    let empty = Table::new();
    // A value that is not a table was reported as a misplaced grid key.
    let section = root
        .get("optimizer")
        .and_then(Value::as_table)
        .unwrap_or(&empty);
    p.unknown_keys("optimizer", section, &OPTIMIZERS);
    let sgd = p.table(section, "sgd", "optimizer").unwrap_or(&empty);
    let adam = p.table(section, "adam", "optimizer").unwrap_or(&empty);
    p.unknown_keys("optimizer.sgd", sgd, &["momentum", "nesterov"]);
    p.unknown_keys("optimizer.adam", adam, &["beta1", "beta2", "eps"]);
    let unit = |x: f64| (0.0..1.0).contains(&x);
    let momentum = float(sgd, "momentum", "optimizer.sgd", 0.9, unit, "in [0, 1)", p);
    let nesterov = boolean(sgd, "nesterov", "optimizer.sgd", false, p);
    if nesterov && momentum == 0.0 {
        p.add(
            "optimizer.sgd.nesterov",
            "nesterov needs momentum > 0; set optimizer.sgd.momentum, e.g. 0.9",
        );
    }
    let mut out = BTreeMap::new();
    out.insert(
        "sgd".to_string(),
        OptimizerConfig::Sgd {
            momentum,
            nesterov,
            weight_decay: 0.0,
        },
    );
    out.insert(
        "adam".to_string(),
        OptimizerConfig::Adam {
            beta1: float(adam, "beta1", "optimizer.adam", 0.9, unit, "in [0, 1)", p),
            beta2: float(adam, "beta2", "optimizer.adam", 0.999, unit, "in [0, 1)", p),
            eps: float(
                adam,
                "eps",
                "optimizer.adam",
                1e-8,
                |x| x > 0.0 && x < 1.0,
                "a small positive number, e.g. 1e-8",
                p,
            ),
            weight_decay: 0.0,
        },
    );
    out
}

/// A number read as f32 (`rotate`, `shift`, ...): out-of-range values are
/// [`Augment::validate`]'s to report.
pub(super) fn real(t: &Table, key: &str, prefix: &str, p: &mut Problems) -> f32 {
    match t.get(key) {
        None => 0.0,
        Some(Value::Float(x)) => *x as f32,
        Some(Value::Integer(i)) => *i as f32,
        Some(v) => {
            p.add(
                format!("{prefix}.{key}"),
                format!("expected a number, e.g. {key} = 0.1; got {}", got(v)),
            );
            0.0
        }
    }
}

/// A factor range `[low, high]` (`brightness`, `contrast`).
pub(super) fn factors(t: &Table, key: &str, prefix: &str, p: &mut Problems) -> Option<[f32; 2]> {
    let v = t.get(key)?;
    let number = |v: &Value| v.as_float().or(v.as_integer().map(|i| i as f64));
    match v
        .as_array()
        .map(|a| a.iter().map(number).collect::<Option<Vec<f64>>>())
    {
        Some(Some(pair)) if pair.len() == 2 => Some([pair[0] as f32, pair[1] as f32]),
        _ => {
            p.add(
                format!("{prefix}.{key}"),
                format!(
                    "expected two factors [low, high], e.g. {key} = [0.8, 1.2]; got {}",
                    got(v)
                ),
            );
            None
        }
    }
}

fn augments(root: &Table, p: &mut Problems) -> BTreeMap<String, Augment> {
    let mut out = BTreeMap::new();
    // A value that is not a table was reported as a misplaced grid key.
    let Some(section) = root.get("augment").and_then(Value::as_table) else {
        return out;
    };
    for (name, v) in section {
        let prefix = join("augment", name);
        if name == "none" {
            p.add(
                prefix,
                "\"none\" is built in (no augmentation); name your set differently",
            );
            continue;
        }
        let Value::Table(t) = v else {
            p.add(
                prefix,
                format!(
                    "expected a table like [augment.{}] with hflip = true, rotate = 30, ...",
                    key_part(name)
                ),
            );
            continue;
        };
        let keys: Vec<&str> = AUGMENT_KEYS
            .iter()
            .chain(super::augment::KEYS.iter())
            .copied()
            .collect();
        p.unknown_keys(&prefix, t, &keys);
        let mut a = Augment {
            hflip: boolean(t, "hflip", &prefix, false, p),
            vflip: boolean(t, "vflip", &prefix, false, p),
            rotate: real(t, "rotate", &prefix, p),
            shift: real(t, "shift", &prefix, p),
            zoom: real(t, "zoom", &prefix, p),
            shear: real(t, "shear", &prefix, p),
            brightness: factors(t, "brightness", &prefix, p),
            contrast: factors(t, "contrast", &prefix, p),
            ..Augment::default()
        };
        super::augment::extras(&mut a, t, &prefix, p);
        for (field, problem) in a.validate() {
            p.add(format!("{prefix}.{field}"), problem);
        }
        // Defined even when a setting has a problem (reported above): the runs that use it
        // must not also be told that it does not exist.
        out.insert(name.clone(), a);
    }
    out
}
