//! The backbone registry: every architecture a sweep can train, each declared beside its code.
//!
//! A backbone's file declares a [`BackboneInfo`] (its name, default width, minimum image side,
//! relative cost and how to build it from a [`ModelSpec`]); `REGISTRY` lists them. Adding a
//! backbone is one new file and one line there: parsing, error messages, validation, the
//! scheduler's cost estimate and the model's forward pass all go through the entry (issue 7).
//!
//! A [`Backbone`] is a small handle on an entry. It is compared, hashed and (de)serialized by
//! its name, so configs stored (and run ids hashed) as `"backbone":"resnet18"` stay the same.
use std::fmt;
use std::hash::{Hash, Hasher};

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use rand::rngs::StdRng;

use super::{alexnet, cnn, efficientnet, mobilenet, resnet, resnet_v2, vgg, xception, ModelSpec};

/// Every backbone, in the order error messages and listings show them.
static REGISTRY: &[&BackboneInfo] = &[
    &cnn::CNN,
    &resnet::RESNET18,
    &resnet::RESNET34,
    &resnet::RESNET50,
    &resnet::RESNET101,
    &resnet::RESNET152,
    &resnet_v2::RESNET50V2,
    &resnet_v2::RESNET101V2,
    &resnet_v2::RESNET152V2,
    &xception::XCEPTION,
    &mobilenet::MOBILENET_V2,
    &efficientnet::EFFICIENTNET_B0,
    &efficientnet::EFFICIENTNET_B1,
    &efficientnet::EFFICIENTNET_B2,
    &alexnet::ALEXNET,
    &vgg::VGG11,
    &vgg::VGG13,
    &vgg::VGG16,
    &vgg::VGG19,
    &vgg::VGG11_BN,
    &vgg::VGG13_BN,
    &vgg::VGG16_BN,
    &vgg::VGG19_BN,
];

/// A network built from a [`ModelSpec`], its variables already in the model's `VarMap`.
pub trait Network: Send + Sync {
    /// Logits (B, classes) for images `x` (B, C, H, W). With `train`, dropout (drawing its
    /// masks from `dropout_rng`) is active and batch norm uses and records batch statistics.
    fn forward_t(&self, x: &Tensor, train: bool, dropout_rng: &mut StdRng) -> Result<Tensor>;
}

/// What a backbone's file declares about it.
#[derive(Debug)]
pub struct BackboneInfo {
    /// The name used in sweep files, stored configs and checkpoints: lowercase, unique.
    pub name: &'static str,
    /// Base width when the sweep does not set one.
    pub default_width: usize,
    /// Smallest image height and width the backbone accepts.
    pub min_size: usize,
    /// Relative cost of one epoch at the default width (cnn = 1), for the scheduler's
    /// longest-first dispatch.
    pub cost: f64,
    /// Whose architecture and tensor names it follows: `torchvision`, `keras` (names derived
    /// from Keras' layer names), `timm legacy_xception`, or `sweep` (the users' baseline).
    pub family: &'static str,
    /// The input side the reference trains at (224 for ImageNet models, 299 for Xception).
    pub default_input: usize,
    /// The stage a variable belongs to, named as the reference library names its modules
    /// (`layer3`, `features.24`, `block12`, `conv4`): what `unfreeze_from` names and `sweep
    /// models NAME` lists. [`top_level`] and [`indexed`] serve most families.
    pub stage_of: fn(&str) -> &str,
    /// Builds the network `spec` describes, taking its variables from `vb` under the
    /// backbone's checkpoint names. `spec` has passed [`ModelSpec::validate`].
    pub build: fn(VarBuilder, &ModelSpec) -> Result<Box<dyn Network>>,
}

/// The stage of a variable that is its first name component: `layer3.1.conv1.weight` is in
/// `layer3` (torchvision's ResNets, timm's legacy_xception, the cnn).
pub(crate) fn top_level(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

/// The stage of a variable that is its first two name components: `features.24.weight` is in
/// `features.24`, `classifier.1.bias` in `classifier.1` (torchvision's VGG, AlexNet,
/// MobileNetV2 and EfficientNet, whose `features` is a numbered sequence).
pub(crate) fn indexed(name: &str) -> &str {
    match name.match_indices('.').nth(1) {
        Some((i, _)) => &name[..i],
        None => name,
    }
}

/// Whether variable `name` is in stage (or block) `stage`: `stage` is `name` itself or a
/// prefix of it that ends where a name component does (`layer3` holds `layer3.0.conv1.weight`
/// but not `layer30.x`; Keras-style `conv5_block2` holds `conv5_block2_1_conv.weight`).
pub fn in_stage(name: &str, stage: &str) -> bool {
    !stage.is_empty()
        && name
            .strip_prefix(stage)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '_']))
}

/// One of the registered architectures; see [`BackboneInfo`] for what it knows.
#[derive(Clone, Copy)]
pub struct Backbone(&'static BackboneInfo);

const COUNT: usize = REGISTRY.len();

// Handles spelled like the enum variants they replaced, so callers keep reading
// `Backbone::Resnet18`. A new backbone does not need one.
#[allow(non_upper_case_globals)]
impl Backbone {
    pub const Cnn: Backbone = Backbone(&cnn::CNN);
    pub const Resnet18: Backbone = Backbone(&resnet::RESNET18);
    pub const Resnet34: Backbone = Backbone(&resnet::RESNET34);
    pub const Resnet50: Backbone = Backbone(&resnet::RESNET50);
    pub const Resnet101: Backbone = Backbone(&resnet::RESNET101);
    pub const Resnet152: Backbone = Backbone(&resnet::RESNET152);
    pub const Xception: Backbone = Backbone(&xception::XCEPTION);
}

impl Backbone {
    /// Every registered backbone, in registry order.
    pub const ALL: [Backbone; COUNT] = {
        let mut all = [Backbone(REGISTRY[0]); COUNT];
        let mut i = 0;
        while i < COUNT {
            all[i] = Backbone(REGISTRY[i]);
            i += 1;
        }
        all
    };

    /// The name used in sweep files and checkpoints: "cnn", "resnet18", ..., "xception".
    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// Inverse of [`Backbone::name`] (ASCII case-insensitive, surrounding spaces ignored).
    pub fn parse(s: &str) -> Option<Backbone> {
        let s = s.trim();
        Backbone::ALL
            .into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(s))
    }

    /// Base width when the sweep does not set one: 32 for the cnn and Xception (the real
    /// Xception's stem), 64 for the ResNets.
    pub fn default_width(self) -> usize {
        self.0.default_width
    }

    /// Smallest image height and width the backbone accepts.
    pub fn min_size(self) -> usize {
        self.0.min_size
    }

    /// Relative cost of one epoch at the default width (cnn = 1).
    pub fn cost(self) -> f64 {
        self.0.cost
    }

    /// Whose architecture and tensor names it follows.
    pub fn family(self) -> &'static str {
        self.0.family
    }

    /// The input side the reference trains at.
    pub fn default_input(self) -> usize {
        self.0.default_input
    }

    /// The stage variable `name` belongs to.
    pub fn stage_of(self, name: &str) -> &str {
        (self.0.stage_of)(name)
    }

    /// The normalisation its reference weights expect: torchvision's ImageNet mean and std,
    /// x/127.5 - 1 for Keras' and timm's Inception-style nets, x/255 for sweep's own.
    pub fn normalize(self) -> crate::run::Normalize {
        use crate::run::Normalize;
        match self.0.family {
            "torchvision" => Normalize::Imagenet,
            "keras" | "timm legacy_xception" => Normalize::Inception,
            _ => Normalize::Unit,
        }
    }

    /// The network `spec` describes (whose backbone is `self`), variables taken from `vb`.
    pub(crate) fn build(self, vb: VarBuilder, spec: &ModelSpec) -> Result<Box<dyn Network>> {
        (self.0.build)(vb, spec)
    }
}

impl PartialEq for Backbone {
    fn eq(&self, other: &Backbone) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Backbone {}

impl Hash for Backbone {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name().hash(state)
    }
}

impl fmt::Debug for Backbone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Backbone").field(&self.name()).finish()
    }
}

impl fmt::Display for Backbone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// As its name, exactly what the enum this replaced wrote: run ids hash these bytes.
impl serde::Serialize for Backbone {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// From its exact name (stored configs are written by [`Backbone`]'s `Serialize`).
impl<'de> serde::Deserialize<'de> for Backbone {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        match Backbone::ALL.into_iter().find(|b| b.name() == s) {
            Some(b) => Ok(b),
            None => {
                let names: Vec<_> = Backbone::ALL.iter().map(|b| b.name()).collect();
                let expected = format!("one of {}", names.join(", "));
                Err(serde::de::Error::invalid_value(
                    serde::de::Unexpected::Str(&s),
                    &expected.as_str(),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use candle_core::{DType, Device};
    use rand::SeedableRng;

    use super::*;
    use crate::model::Model;

    #[test]
    fn names_are_unique_lowercase_and_round_trip() {
        let names: HashSet<_> = Backbone::ALL.iter().map(|b| b.name()).collect();
        assert_eq!(names.len(), REGISTRY.len(), "duplicate backbone names");
        for b in Backbone::ALL {
            assert_eq!(b.name(), b.name().to_lowercase());
            assert_eq!(Backbone::parse(b.name()), Some(b));
            assert_eq!(Backbone::parse(&b.name().to_uppercase()), Some(b));
            let json = serde_json::to_string(&b).unwrap();
            assert_eq!(json, format!("\"{}\"", b.name()));
            assert_eq!(serde_json::from_str::<Backbone>(&json).unwrap(), b);
            assert!(
                b.default_width() > 0 && b.min_size() > 0 && b.cost() > 0.0,
                "{b}"
            );
        }
    }

    #[test]
    fn unknown_names_are_rejected_with_every_name() {
        assert_eq!(Backbone::parse("densenet121"), None);
        let err = serde_json::from_str::<Backbone>("\"densenet121\"").unwrap_err();
        for b in Backbone::ALL {
            assert!(err.to_string().contains(b.name()), "{err}");
        }
        // Stored configs are exact: only `parse` forgives case.
        assert!(serde_json::from_str::<Backbone>("\"ResNet18\"").is_err());
    }

    /// The enum this replaced serialized `Backbone::Resnet18` as `"resnet18"` (run ids).
    #[test]
    fn config_bytes_match_the_old_enum() {
        let json = serde_json::to_string(&[Backbone::Cnn, Backbone::Resnet18]).unwrap();
        assert_eq!(json, r#"["cnn","resnet18"]"#);
    }

    #[test]
    fn every_backbone_builds_a_tiny_model_and_runs_forward() {
        for b in Backbone::ALL {
            let side = b.min_size().max(5);
            let spec = ModelSpec {
                backbone: b,
                channels: 2,
                height: side,
                width: side + 1,
                classes: 3,
                base_width: 1,
            };
            let model = Model::new(&spec, &Device::Cpu, 0).unwrap();
            let x = Tensor::zeros((2, 2, side, side + 1), DType::F32, &Device::Cpu).unwrap();
            for train in [false, true] {
                let y = model.forward(&x, train).unwrap();
                assert_eq!(y.dims(), &[2, 3], "{b} train {train}");
            }
            // The info's build is what the model runs.
            let vb = VarBuilder::zeros(DType::F32, &Device::Cpu);
            let net = b.build(vb, &spec).unwrap();
            let mut rng = StdRng::seed_from_u64(0);
            let y = net.forward_t(&x, false, &mut rng).unwrap();
            assert_eq!(y.dims(), &[2, 3], "{b}");
        }
    }
}
