//! Layer-output equivalence with the reference libraries: sweep's backbones, loaded with
//! weights PyTorch wrote, give torchvision's / timm's eval-mode logits.
//!
//! The fixtures come from `scripts/equivalence.py` (run by `scripts/equivalence.sh`), which
//! builds each reference model with PyTorch's random initialisation, randomises its batch-norm
//! parameters and running statistics, and records its logits on a random batch. No weights or
//! data are downloaded. `tests/fixtures/equivalence/` holds the small set (reference
//! architectures at small widths, float16 values) that every test run checks; the full set
//! (every backbone with a PyTorch twin, at its real width) is written by
//! `scripts/equivalence.sh full` and checked by the ignored test below when
//! `SWEEP_EQUIVALENCE_DIR` names its folder.
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use sweep::model::{Backbone, Model, ModelSpec};

use crate::util::repo;

/// Largest |ours - reference| over the batch's logits, relative to the largest |reference|.
const TOLERANCE: f32 = 1e-4;

/// Checks every case of the manifest in `dir`; returns one line per case.
fn check_all(dir: &Path) -> Vec<String> {
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("manifest.json")).expect("manifest.json"),
    )
    .expect("manifest.json is JSON");
    let cases = manifest["cases"].as_array().expect("cases");
    assert!(!cases.is_empty());
    let mut failures = Vec::new();
    let mut lines = Vec::new();
    for case in cases {
        let (line, ok) = check(dir, case);
        if !ok {
            failures.push(line.clone());
        }
        lines.push(line);
    }
    eprintln!(
        "{} ({} torch {}, torchvision {}, timm {})",
        lines.join("\n"),
        dir.display(),
        manifest["torch"],
        manifest["torchvision"],
        manifest["timm"]
    );
    assert!(
        failures.is_empty(),
        "not equivalent:\n{}",
        failures.join("\n")
    );
    lines
}

fn check(dir: &Path, case: &serde_json::Value) -> (String, bool) {
    let name = case["case"].as_str().unwrap();
    let n = |k: &str| case[k].as_u64().unwrap_or_else(|| panic!("{name}: {k}")) as usize;
    let backbone = Backbone::parse(case["backbone"].as_str().unwrap()).expect("known backbone");
    let spec = ModelSpec {
        backbone,
        channels: n("channels"),
        height: n("size"),
        width: n("size"),
        classes: n("classes"),
        base_width: n("width"),
    };
    let mut model = Model::new(&spec, &Device::Cpu, 0).unwrap();
    assert_eq!(
        model.parameter_count(),
        n("parameters"),
        "{name}: parameter count against {}",
        case["reference"]
    );
    let weights = dir.join(case["weights"].as_str().unwrap());
    model
        .load(&weights)
        .unwrap_or_else(|e| panic!("{name}: loading {}: {e}", weights.display()));
    let io =
        candle_core::safetensors::load(dir.join(format!("{name}.io.safetensors")), &Device::Cpu)
            .unwrap();
    let input = io["input"].to_dtype(DType::F32).unwrap();
    let want = io["logits"].to_dtype(DType::F32).unwrap();
    let got = model.forward(&input, false).unwrap();
    assert_eq!(got.dims(), want.dims(), "{name}");
    let (err, scale) = (max_abs(&(&got - &want).unwrap()), max_abs(&want));
    let rel = err / scale.max(f32::MIN_POSITIVE);
    let ok = rel <= TOLERANCE;
    let line = format!(
        "{name:20} {:28} max |diff| {err:.2e}, max |logit| {scale:.2e}, relative {rel:.2e} {}",
        backbone.name(),
        if ok { "ok" } else { "FAIL" }
    );
    (line, ok)
}

fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// The committed small set: ResNet-18/50 (the ResNet-18 case as a real `torch.save` .pth),
/// VGG-11-BN, VGG-13, AlexNet, legacy_xception, MobileNetV2 and EfficientNet-B0.
#[test]
fn small_reference_nets_give_the_reference_logits() {
    let dir = repo().join("tests/fixtures/equivalence");
    let lines = check_all(&dir);
    for family in [
        "resnet18",
        "resnet50",
        "vgg11_bn",
        "vgg13",
        "alexnet",
        "xception",
        "mobilenet_v2",
        "efficientnet_b0",
    ] {
        assert!(
            lines.iter().any(|l| l.contains(&format!(" {family} "))),
            "no fixture for {family}"
        );
    }
}

/// Every backbone with a PyTorch twin at its real width (`scripts/equivalence.sh full`).
#[test]
#[ignore = "needs the full fixtures: scripts/equivalence.sh full, then SWEEP_EQUIVALENCE_DIR"]
fn full_size_reference_nets_give_the_reference_logits() {
    let dir: PathBuf = std::env::var_os("SWEEP_EQUIVALENCE_DIR")
        .expect("set SWEEP_EQUIVALENCE_DIR to the folder scripts/equivalence.sh full wrote")
        .into();
    check_all(&dir);
}
