//! The recipes reach the real trainer: a tiny cnn trains with `step` and `one_cycle`
//! schedules (the rates stored per epoch, each epoch's first batch, are the schedule's), and
//! with test-time augmentation (its test result stored beside the plain one).
use crate::util::{copy_classes, sweep, text};

const SWEEP: &str = r#"
name = "sched"
[data]
train = "data/train"
val_split = 0.25
image_size = [10, 10]
channels = 1
[train]
backbone = "cnn"
width = 4
epochs = 3
batch_size = 8
lr = 0.02
[grid]
schedule = ["step", "one_cycle"]
[schedule.step]
step_size = 1
gamma = 0.5
"#;

#[test]
fn stored_rates_follow_the_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // 2 classes x 12 images: 18 train (3 batches of 8, 8, 2) and 6 validation.
    copy_classes("train", &root.join("data/train"), 2, 12);
    std::fs::write(root.join("s.toml"), SWEEP).unwrap();
    let out = sweep(&["run", "s.toml"], root);
    assert!(out.status.success(), "{}", text(&out).1);
    let json = sweep(&["report", "--format", "json"], root);
    let runs: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let runs = runs["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for run in runs {
        assert_eq!(run["status"], "done", "{run}");
        let id = run["run_id"].as_str().unwrap();
        let out = sweep(&["report", "--run", id, "--format", "json"], root);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let rates: Vec<f64> = report["epochs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["lr"].as_f64().unwrap())
            .collect();
        let want: Vec<f64> = match run["label"].as_str().unwrap() {
            "step" => vec![0.02, 0.01, 0.005],
            // OneCycleLR over 9 steps: batches 0, 3 and 6 (pct_start 0.3: the peak at 1.7).
            "one_cycle" => {
                let (lr, initial, min) = (0.02, 0.02 / 25.0, 0.02 / 25.0 / 1e4);
                let up_end = 0.3 * 9.0 - 1.0;
                let cos = |a: f64, b: f64, pct: f64| {
                    b + (a - b) / 2.0 * ((std::f64::consts::PI * pct).cos() + 1.0)
                };
                vec![
                    initial,
                    cos(lr, min, (3.0 - up_end) / (8.0 - up_end)),
                    cos(lr, min, (6.0 - up_end) / (8.0 - up_end)),
                ]
            }
            other => panic!("unexpected run {other}"),
        };
        assert_eq!(rates.len(), 3, "{report}");
        for (got, want) in rates.iter().zip(&want) {
            assert!((got - want).abs() < 1e-12, "{rates:?} vs {want:?}");
        }
    }
}

#[test]
fn test_time_augmentation_is_stored_beside_the_plain_test() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    copy_classes("train", &root.join("data/train"), 2, 12);
    copy_classes("test", &root.join("data/test"), 2, 5);
    let file = "name = \"tta\"\n[data]\ntrain = \"data/train\"\ntest = \"data/test\"\n\
                val_split = 0.25\nimage_size = [16, 16]\nchannels = 1\n\
                [train]\nbackbone = \"cnn\"\nwidth = 4\nepochs = 2\nbatch_size = 8\n\
                tta = { crops = 10 }\n";
    std::fs::write(root.join("t.toml"), file).unwrap();
    let out = sweep(&["run", "t.toml"], root);
    assert!(out.status.success(), "{}", text(&out).1);
    let out = sweep(&["report", "--best", "--format", "json"], root);
    let best: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (plain, tta) = (&best["test"], &best["test_tta"]);
    assert_eq!(plain["support"], 10);
    assert_eq!(tta["support"], 10, "{best}");
    assert_eq!(tta["epoch"], plain["epoch"], "the same kept weights");
    let acc = tta["accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc));
    assert!(tta["loss"].as_f64().unwrap().is_finite());
    let table = sweep(&["report", "--best"], root);
    assert!(text(&table).0.contains("test, with test-time augmentation"));
}

#[test]
fn swa_averages_the_last_epochs_and_is_judged_beside_the_kept_weights() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    copy_classes("train", &root.join("data/train"), 2, 12);
    copy_classes("test", &root.join("data/test"), 2, 5);
    let file = "name = \"swa\"\n[data]\ntrain = \"data/train\"\ntest = \"data/test\"\n\
                val_split = 0.25\nimage_size = [16, 16]\nchannels = 1\n\
                [train]\nbackbone = \"resnet18\"\nwidth = 4\nepochs = 3\nbatch_size = 8\n\
                lr = 0.01\nswa = { start_epoch = 2, lr = 0.005 }\n";
    std::fs::write(root.join("s.toml"), file).unwrap();
    let out = sweep(&["run", "s.toml"], root);
    assert!(out.status.success(), "{}", text(&out).1);
    let out = sweep(&["report", "--best", "--format", "json"], root);
    let best: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(best["val_swa"]["support"], 6, "{best}");
    assert_eq!(best["test_swa"]["support"], 10);
    assert_eq!(
        best["val_swa"]["epoch"], 3,
        "the average after the last epoch"
    );
    let id = best["run_id"].as_str().unwrap();
    assert!(root.join(format!("runs/swa/{id}/swa.safetensors")).exists());
    // From start_epoch on, the SWA rate.
    let out = sweep(&["report", "--run", id, "--format", "json"], root);
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rates: Vec<f64> = run["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["lr"].as_f64().unwrap())
        .collect();
    assert_eq!(rates, [0.01, 0.005, 0.005]);
    let table = sweep(&["report", "--run", id], root);
    assert!(text(&table).0.contains("validation, SWA average"));
}
