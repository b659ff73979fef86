//! The per-run hyperparameters that may be fixed or gridded, and how one TOML value sets each.
use crate::model::{Backbone, Precision};
use crate::run::TransferMode;

/// Values of every grid key for one run (or the fixed values of a sweep).
#[derive(Clone, Debug, PartialEq)]
pub struct Hyper {
    pub backbone: Backbone,
    /// Base channel width; `None` means the backbone's default.
    pub width: Option<usize>,
    pub optimizer: String,
    pub lr: f64,
    pub batch_size: usize,
    pub weight_decay: f64,
    pub label_smoothing: f64,
    pub augment: String,
    pub epochs: usize,
    pub seed: u64,
    pub precision: Precision,
    pub transfer: TransferMode,
    /// The learning-rate schedule's name (`constant`, `cosine`, ...).
    pub schedule: String,
    /// The class balance mode's name (`none`, `oversample`, ...).
    pub balance: String,
}

impl Default for Hyper {
    fn default() -> Self {
        Hyper {
            backbone: Backbone::Cnn,
            width: None,
            optimizer: "adam".into(),
            lr: 0.001,
            batch_size: 32,
            weight_decay: 0.0,
            label_smoothing: 0.0,
            augment: "none".into(),
            epochs: 10,
            seed: 42,
            precision: Precision::Fp32,
            transfer: TransferMode::Scratch,
            schedule: "constant".into(),
            balance: "none".into(),
        }
    }
}

pub const OPTIMIZERS: [&str; 2] = ["sgd", "adam"];

fn number(v: &toml::Value) -> Option<f64> {
    match v {
        toml::Value::Float(f) => Some(*f),
        toml::Value::Integer(i) => Some(*i as f64),
        _ => None,
    }
}

/// A value as an error message shows it: strings quoted, others with their type.
pub(super) fn got(v: &toml::Value) -> String {
    match v {
        // TOML's own quoting: control characters are escaped, never printed.
        toml::Value::String(_) => format!("the string {v}"),
        other => format!("{} `{other}`", other.type_str()),
    }
}

fn positive_int(v: &toml::Value, max: i64) -> Result<usize, String> {
    match v {
        toml::Value::Integer(i) if *i >= 1 && *i <= max => Ok(*i as usize),
        toml::Value::Integer(i) => Err(format!("must be between 1 and {max}, got {i}")),
        other => Err(format!("expected a whole number, got {}", got(other))),
    }
}

fn float_in(v: &toml::Value, lo: f64, hi: f64, what: &str) -> Result<f64, String> {
    match number(v) {
        Some(x) if x.is_finite() && x >= lo && x <= hi => Ok(x),
        Some(x) => Err(format!("must be {what}, got {x}")),
        None => Err(format!("expected a number, got {}", got(v))),
    }
}

fn string(v: &toml::Value) -> Result<&str, String> {
    v.as_str()
        .ok_or_else(|| format!("expected a string, got {}", got(v)))
}

impl Hyper {
    /// Set one grid key from a TOML value, checking its type and range. The error says what
    /// is wrong and how to fix it; the caller adds the key.
    pub fn set(&mut self, key: &str, v: &toml::Value) -> Result<(), String> {
        match key {
            "backbone" => {
                let s = string(v)?;
                self.backbone = Backbone::parse(s).ok_or_else(|| {
                    let names: Vec<_> = Backbone::ALL.iter().map(|b| b.name()).collect();
                    format!(
                        "unknown backbone \"{s}\"; choose one of {}",
                        names.join(", ")
                    )
                })?;
            }
            "width" => self.width = Some(positive_int(v, 1024)?),
            "optimizer" => {
                let s = string(v)?;
                if !OPTIMIZERS.contains(&s) {
                    return Err(format!(
                        "unknown optimizer \"{s}\"; choose one of sgd, adam"
                    ));
                }
                self.optimizer = s.to_string();
            }
            "lr" => self.lr = float_in(v, f64::MIN_POSITIVE, 10.0, "a learning rate in (0, 10]")?,
            "batch_size" => self.batch_size = positive_int(v, 65_536)?,
            "weight_decay" => self.weight_decay = float_in(v, 0.0, 1.0, "in [0, 1]")?,
            "label_smoothing" => {
                self.label_smoothing = float_in(v, 0.0, 0.999, "in [0, 1)")?;
            }
            "augment" => self.augment = string(v)?.to_string(),
            "epochs" => self.epochs = positive_int(v, 100_000)?,
            "seed" => match v {
                toml::Value::Integer(i) if *i >= 0 => self.seed = *i as u64,
                other => return Err(format!("expected a whole number >= 0, got {}", got(other))),
            },
            "precision" => {
                let s = string(v)?;
                self.precision = Precision::parse(s).ok_or_else(|| {
                    format!("unknown precision \"{s}\"; choose fp32 or bf16 (bf16 autocast)")
                })?;
            }
            "transfer" => {
                let s = string(v)?;
                self.transfer = TransferMode::parse(s).ok_or_else(|| {
                    format!("unknown transfer \"{s}\"; choose scratch, frozen (only the new head trains), finetune (stages from [transfer] unfreeze_from train) or two_phase (frozen, then finetune)")
                })?;
            }
            "schedule" => {
                let s = string(v)?;
                if !crate::run::SCHEDULES.contains(&s) {
                    return Err(format!(
                        "unknown schedule \"{s}\"; choose one of {} (settings in a [schedule.NAME] table)",
                        crate::run::SCHEDULES.join(", ")
                    ));
                }
                self.schedule = s.to_string();
            }
            "balance" => {
                let s = string(v)?;
                crate::run::Balance::parse(s, crate::run::balance::DEFAULT_CLIP)?;
                self.balance = s.to_string();
            }
            other => return Err(format!("`{other}` is not a grid key")),
        }
        Ok(())
    }

    /// The value of a grid key as shown in plans and labels.
    pub fn show(&self, key: &str) -> String {
        match key {
            "backbone" => self.backbone.name().to_string(),
            "width" => self.width_for_show(),
            "optimizer" => self.optimizer.clone(),
            "lr" => format!("{}", self.lr),
            "batch_size" => self.batch_size.to_string(),
            "weight_decay" => format!("{}", self.weight_decay),
            "label_smoothing" => format!("{}", self.label_smoothing),
            "augment" => self.augment.clone(),
            "epochs" => self.epochs.to_string(),
            "seed" => self.seed.to_string(),
            "precision" => self.precision.name().to_string(),
            "transfer" => self.transfer.name().to_string(),
            "schedule" => self.schedule.clone(),
            "balance" => self.balance.clone(),
            _ => String::new(),
        }
    }

    fn width_for_show(&self) -> String {
        self.width
            .unwrap_or_else(|| self.backbone.default_width())
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_checks_types_and_ranges() {
        let mut h = Hyper::default();
        assert!(h.set("lr", &toml::Value::Float(0.01)).is_ok());
        assert_eq!(h.lr, 0.01);
        assert!(h.set("lr", &toml::Value::Integer(1)).is_ok());
        let e = h.set("lr", &toml::Value::String("0.1".into())).unwrap_err();
        assert!(
            e.contains("expected a number") && e.contains("\"0.1\""),
            "{e}"
        );
        assert!(h
            .set("lr", &toml::Value::Float(0.0))
            .unwrap_err()
            .contains("(0, 10]"));
        assert!(h.set("batch_size", &toml::Value::Integer(0)).is_err());
        assert!(h
            .set("batch_size", &toml::Value::Float(32.0))
            .unwrap_err()
            .contains("whole"));
        let e = h
            .set("backbone", &toml::Value::String("densenet121".into()))
            .unwrap_err();
        assert!(e.contains("resnet18") && e.contains("xception"), "{e}");
        assert!(h
            .set("optimizer", &toml::Value::String("rmsprop".into()))
            .is_err());
        assert!(h.set("seed", &toml::Value::Integer(-1)).is_err());
        assert!(h.set("label_smoothing", &toml::Value::Float(1.0)).is_err());
        assert!(h
            .set("precision", &toml::Value::String("BF16".into()))
            .is_ok());
        assert_eq!(h.precision, Precision::Bf16);
        let e = h
            .set("precision", &toml::Value::String("fp16".into()))
            .unwrap_err();
        assert!(e.contains("fp32 or bf16"), "{e}");
    }
}
