//! The transfer-learning keys of a sweep file: `[train] pretrained` (one weights file, or one
//! per backbone) and the `[transfer]` settings of the `transfer` grid key, checked against the
//! backbones that use them and the files' headers (names and shapes; no tensor is loaded).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::parse::{closest_key, Problems};
use super::values::got;
use crate::model::count;
use crate::model::weights;
use crate::model::{in_stage, Backbone, ModelSpec};
use crate::run::{Normalize, Transfer, TransferMode};

const TRANSFER_KEYS: [&str; 3] = ["unfreeze_from", "frozen_epochs", "finetune_lr"];

/// A setting given once for every backbone, or per backbone (`{ resnet50 = "...", ... }`).
#[derive(Clone, Debug, Default, PartialEq)]
pub enum PerBackbone<T> {
    #[default]
    Unset,
    All(T),
    Each(BTreeMap<String, T>),
}

impl<T> PerBackbone<T> {
    pub fn get(&self, backbone: &str) -> Option<&T> {
        match self {
            PerBackbone::Unset => None,
            PerBackbone::All(v) => Some(v),
            PerBackbone::Each(map) => map.get(backbone),
        }
    }

    fn is_set(&self) -> bool {
        !matches!(self, PerBackbone::Unset)
    }

    /// The TOML key that sets `backbone`'s value: `prefix`, or `prefix.backbone` per backbone.
    fn key(&self, prefix: &str, backbone: &str) -> String {
        match self {
            PerBackbone::Each(_) => format!("{prefix}.{backbone}"),
            _ => prefix.to_string(),
        }
    }
}

/// The sweep's transfer-learning settings, checked.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TransferSettings {
    /// Weights files as written (relative to the sweep file's folder).
    pub pretrained: PerBackbone<PathBuf>,
    pub unfreeze_from: PerBackbone<String>,
    pub frozen_epochs: Option<usize>,
    pub finetune_lr: Option<f64>,
    /// The normalisation each backbone's pretrained weights expect: the file's own (a sweep
    /// checkpoint records it), else the backbone's reference preset.
    pub normalize: BTreeMap<String, Normalize>,
}

impl TransferSettings {
    /// The transfer of a run with these values, `None` for scratch.
    pub fn for_run(
        &self,
        mode: TransferMode,
        backbone: Backbone,
        epochs: usize,
        lr: f64,
    ) -> Option<Transfer> {
        if mode == TransferMode::Scratch {
            return None;
        }
        let two_phase = mode == TransferMode::TwoPhase;
        Some(Transfer {
            mode,
            pretrained: self.pretrained.get(backbone.name()).cloned()?,
            unfreeze_from: match mode {
                TransferMode::Finetune | TransferMode::TwoPhase => {
                    self.unfreeze_from.get(backbone.name()).cloned()
                }
                _ => None,
            },
            frozen_epochs: match two_phase {
                true => self.frozen_epochs.unwrap_or((epochs / 2).max(1)),
                false => 0,
            },
            finetune_lr: two_phase.then(|| self.finetune_lr.unwrap_or(lr / 10.0)),
        })
    }
}

/// What the runs of the sweep use, for the checks: every backbone with the widths it trains
/// at (`None`: its default; an empty list when the width is drawn), the transfer modes and
/// the epoch counts.
pub(super) struct Used {
    pub backbones: Vec<Backbone>,
    pub widths: Vec<Option<usize>>,
    pub modes: Vec<TransferMode>,
    pub epochs: Vec<usize>,
    /// Where `transfer` is written (`train.transfer` or `grid.transfer`).
    pub transfer_key: &'static str,
}

/// Reads and checks `[train] pretrained` and `[transfer]`. `data` gives the image shape the
/// weights must fit; `base` is the sweep file's folder.
pub(super) fn parse(
    root: &Table,
    train: &Table,
    used: &Used,
    data: &crate::run::DataSpec,
    base: &Path,
    p: &mut Problems,
) -> TransferSettings {
    let mut out = TransferSettings {
        pretrained: per_backbone(train.get("pretrained"), "train.pretrained", p, |v| {
            v.as_str()
                .map(PathBuf::from)
                .ok_or_else(|| format!("expected a weights file path, got {}", got(v)))
        }),
        ..TransferSettings::default()
    };
    let empty = Table::new();
    let section = p.table(root, "transfer", "").unwrap_or(&empty);
    p.unknown_keys("transfer", section, &TRANSFER_KEYS);
    out.unfreeze_from = per_backbone(
        section.get("unfreeze_from"),
        "transfer.unfreeze_from",
        p,
        |v| {
            v.as_str()
                .map(String::from)
                .ok_or_else(|| format!("expected a stage name like \"layer3\", got {}", got(v)))
        },
    );
    if let Some(v) = section.get("frozen_epochs") {
        match v.as_integer() {
            Some(n) if n >= 1 => out.frozen_epochs = Some(n as usize),
            _ => p.add(
                "transfer.frozen_epochs",
                format!("expected a whole number of epochs >= 1, got {}", got(v)),
            ),
        }
    }
    if let Some(v) = section.get("finetune_lr") {
        match v.as_float().or(v.as_integer().map(|i| i as f64)) {
            Some(x) if x > 0.0 && x <= 10.0 => out.finetune_lr = Some(x),
            _ => p.add(
                "transfer.finetune_lr",
                format!("must be a learning rate in (0, 10], got {}", got(v)),
            ),
        }
    }
    let transferring = used.modes.iter().any(|m| *m != TransferMode::Scratch);
    let two_phase = used.modes.contains(&TransferMode::TwoPhase);
    if let Some(n) = out.frozen_epochs.filter(|_| two_phase) {
        if let Some(e) = used.epochs.iter().find(|e| **e <= n) {
            p.add("transfer.frozen_epochs", format!("{n} frozen epochs leave none to fine-tune in a run of {e} epochs; lower frozen_epochs or raise epochs"));
        }
    }
    if two_phase && out.frozen_epochs.is_none() && used.epochs.contains(&1) {
        p.add(
            used.transfer_key,
            "two_phase needs at least 2 epochs (frozen, then fine-tuned); raise epochs",
        );
    }
    if !transferring {
        if out.pretrained.is_set() {
            p.add("train.pretrained", "every run trains from scratch, so these weights would be ignored; add transfer = \"frozen\", \"finetune\" or \"two_phase\" to [train] (or a list of them to [grid]), or remove pretrained");
        }
        return out;
    }
    if !out.pretrained.is_set() {
        p.add(used.transfer_key, "frozen, finetune and two_phase start from pretrained weights: set [train] pretrained = \"path/to/weights.safetensors\" (or a .pth state dict), or one per backbone: pretrained = { resnet50 = \"...\" }");
        return out;
    }
    let shape_known = !p.has("data.image_size") && !p.has("data.channels");
    for &backbone in &used.backbones {
        let name = backbone.name();
        let key = out.pretrained.key("train.pretrained", name);
        let Some(file) = out.pretrained.get(name) else {
            p.add(
                "train.pretrained",
                format!("has no weights for {name}, which a transfer run trains; add {name} = \"path/to/weights\""),
            );
            continue;
        };
        let path = base.join(file);
        let header = match read_header(&path) {
            Ok(h) => h,
            Err(e) => {
                p.add(key, e);
                continue;
            }
        };
        let normalize = header
            .metadata
            .get("normalize")
            .and_then(|n| Normalize::parse(n))
            .unwrap_or_else(|| backbone.normalize());
        out.normalize.insert(name.to_string(), normalize);
        if !shape_known {
            continue;
        }
        for width in &used.widths {
            let spec = ModelSpec {
                backbone,
                channels: data.channels as usize,
                height: data.height as usize,
                width: data.width as usize,
                classes: 2,
                base_width: width.unwrap_or(backbone.default_width()),
            };
            if spec.validate().is_err() {
                continue; // the image size is reported for the backbone already
            }
            if let Err(e) = fits(&path, &header, &spec) {
                p.add(key.clone(), e);
                break;
            }
            if let Some(stage) = out.unfreeze_from.get(name) {
                if let Some(e) = stage_problem(&spec, stage) {
                    p.add(out.unfreeze_from.key("transfer.unfreeze_from", name), e);
                    break;
                }
            }
        }
    }
    out
}

/// A setting's value, once or per backbone.
fn per_backbone<T>(
    v: Option<&Value>,
    key: &str,
    p: &mut Problems,
    one: impl Fn(&Value) -> Result<T, String>,
) -> PerBackbone<T> {
    match v {
        None => PerBackbone::Unset,
        Some(Value::Table(t)) => {
            let mut map = BTreeMap::new();
            for (name, v) in t {
                if Backbone::parse(name).is_none() {
                    p.add(
                        format!("{key}.{name}"),
                        "is not a backbone; keys are backbone names",
                    );
                    continue;
                }
                match one(v) {
                    Ok(x) => {
                        map.insert(name.clone(), x);
                    }
                    Err(e) => p.add(format!("{key}.{name}"), e),
                }
            }
            PerBackbone::Each(map)
        }
        Some(v) => match one(v) {
            Ok(x) => PerBackbone::All(x),
            Err(e) => {
                p.add(key, e);
                PerBackbone::Unset
            }
        },
    }
}

/// The file's header, or why it cannot be used.
fn read_header(path: &Path) -> Result<weights::Header, String> {
    if !path.is_file() {
        return Err(format!(
            "{} does not exist (paths resolve against the sweep file's folder)",
            path.display()
        ));
    }
    weights::inspect(path).map_err(|e| {
        format!("{} is not a readable weights file (.safetensors, or a PyTorch .pth/.pt state dict): {e}", path.display())
    })
}

/// Whether the file's tensors fit `spec` (every variable but the head).
fn fits(path: &Path, header: &weights::Header, spec: &ModelSpec) -> Result<(), String> {
    let expected: Vec<(String, Vec<usize>)> = count::shapes(spec)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|(n, s)| (n, s.dims().to_vec()))
        .collect();
    let head = count::head(spec).map_err(|e| e.to_string())?;
    let hint = format!(
        "the weights must be {} at width {} for {}-channel images",
        spec.backbone.name(),
        spec.base_width,
        spec.channels
    );
    weights::check_shapes(path, header, &expected, &head, &hint).map_err(|e| e.to_string())
}

/// Why `stage` names no stage of the backbone, if it does not.
fn stage_problem(spec: &ModelSpec, stage: &str) -> Option<String> {
    let shapes = count::shapes(spec).ok()?;
    if shapes.iter().any(|(n, _)| in_stage(n, stage)) {
        return None;
    }
    let stages: Vec<String> = count::stages(spec)
        .ok()?
        .into_iter()
        .map(|s| s.name)
        .collect();
    let refs: Vec<&str> = stages.iter().map(String::as_str).collect();
    let mut msg = format!(
        "\"{stage}\" is not a stage of {}; its stages are {} (`sweep models {}` lists them)",
        spec.backbone.name(),
        stages.join(", "),
        spec.backbone.name()
    );
    if let Some(s) = closest_key(stage, &refs) {
        msg += &format!("; did you mean \"{s}\"?");
    }
    Some(msg)
}
