//! `sweep predict`: a trained run classifies new images exactly as its stored evaluation did.
use std::path::Path;

use serde_json::Value;

use crate::util::{copy_classes, sweep, text};

const SWEEP: &str = r#"
name = "pred"
seed = 5
[data]
train = "data/train"
test = "data/test"
val_split = 0.25
image_size = [14, 14]
channels = 1
normalize = "imagenet"
[train]
backbone = "cnn"
width = 4
batch_size = 8
epochs = 3
lr = 0.003
checkpoint = "best"
"#;

fn trained(dir: &Path) -> (Vec<String>, String) {
    let classes = copy_classes("train", &dir.join("data/train"), 3, 12);
    copy_classes("test", &dir.join("data/test"), 3, 4);
    std::fs::write(dir.join("pred.toml"), SWEEP).unwrap();
    let out = sweep(&["run", "pred.toml"], dir);
    assert!(out.status.success(), "{}", text(&out).1);
    let out = sweep(&["status", "--format", "json"], dir);
    let runs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    (classes, runs[0]["run_id"].as_str().unwrap().to_string())
}

#[test]
fn predictions_on_the_test_folder_reproduce_the_stored_test_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let (classes, id) = trained(dir.path());
    // A short id prefix is enough; the folder is expanded recursively, in sorted order.
    let out = sweep(
        &[
            "predict",
            "--run",
            &id[..6],
            "data/test",
            "--format",
            "json",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out).1);
    let preds: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(preds.len(), 12);
    let mut right = 0;
    for p in &preds {
        let path = p["path"].as_str().unwrap();
        let truth = Path::new(path)
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap();
        let probs: Vec<f64> = p["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(probs.len(), 3);
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-4, "{p}");
        let k = p["class_index"].as_u64().unwrap() as usize;
        assert_eq!(p["class"], classes[k].as_str());
        assert!(probs.iter().all(|&q| q <= probs[k]), "{p}");
        assert_eq!(p["logits"].as_array().unwrap().len(), 3);
        right += usize::from(classes[k] == truth);
    }
    // The stored test evaluation used the same kept weights on the same images.
    let out = sweep(&["report", "--best", "--format", "json"], dir.path());
    let best: Value = serde_json::from_slice(&out.stdout).unwrap();
    let stored = best["test"]["accuracy"].as_f64().unwrap();
    assert!(
        (right as f64 / 12.0 - stored).abs() < 1e-9,
        "predict {right}/12, stored {stored}"
    );
}

#[test]
fn unreadable_images_and_unknown_runs_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (_, id) = trained(dir.path());
    std::fs::write(dir.path().join("broken.png"), b"not a png").unwrap();
    let good = std::fs::read_dir(dir.path().join("data/test"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let good = std::fs::read_dir(good)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let out = sweep(
        &[
            "predict",
            "--run",
            &id,
            good.to_str().unwrap(),
            "broken.png",
            "--format",
            "json",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out).1);
    let preds: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(preds[0]["class"].is_string());
    assert!(
        preds[1]["class"].is_null() && preds[1]["error"].as_str().unwrap().contains("not a PNG"),
        "{}",
        preds[1]
    );
    let out = sweep(&["predict", "--run", "ffffffff", "broken.png"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("no run ffffffff"), "{}", text(&out).1);
    // The table names the class of the readable image.
    let out = sweep(
        &["predict", "--run", &id, good.to_str().unwrap()],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(text(&out).0.contains("runner-up"), "{}", text(&out).0);
}

/// `--backbone NAME --weights FILE`: any weights file, the number of classes read from its
/// head. The run's own checkpoint gives the same classes (by index) as `--run`.
#[test]
fn a_weights_file_predicts_as_its_run_does() {
    let dir = tempfile::tempdir().unwrap();
    let (_, id) = trained(dir.path());
    let ckpt = dir.path().join(format!("runs/pred/{id}/best.safetensors"));
    assert!(ckpt.is_file());
    let by_run = sweep(
        &["predict", "--run", &id, "data/test", "--format", "json"],
        dir.path(),
    );
    let by_file = sweep(
        &[
            "predict",
            "--backbone",
            "cnn",
            "--weights",
            ckpt.to_str().unwrap(),
            "--image-size",
            "14",
            "--channels",
            "1",
            "--width",
            "4",
            "--normalize",
            "imagenet",
            "data/test",
            "--format",
            "json",
        ],
        dir.path(),
    );
    assert!(by_file.status.success(), "{}", text(&by_file).1);
    // A checkpoint sweep wrote carries its size, channels, width, preprocessing and class
    // names: --backbone and --weights are enough.
    let by_metadata = sweep(
        &[
            "predict",
            "--backbone",
            "cnn",
            "--weights",
            ckpt.to_str().unwrap(),
            "data/test",
            "--format",
            "json",
        ],
        dir.path(),
    );
    assert!(by_metadata.status.success(), "{}", text(&by_metadata).1);
    let a: Vec<Value> = serde_json::from_slice(&by_run.stdout).unwrap();
    for out in [&by_file, &by_metadata] {
        let b: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x["class_index"], y["class_index"]);
            assert_eq!(x["class"], y["class"]);
            assert_eq!(x["logits"], y["logits"]);
        }
    }
    // The wrong width: every mismatch is named, once.
    let out = sweep(
        &[
            "predict",
            "--backbone",
            "cnn",
            "--weights",
            ckpt.to_str().unwrap(),
            "--image-size",
            "14",
            "--channels",
            "1",
            "--width",
            "8",
            "data/test",
        ],
        dir.path(),
    );
    let stderr = text(&out).1;
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("of another shape") && stderr.contains("in the file, the model has"),
        "{stderr}"
    );
}
