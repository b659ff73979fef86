//! Transfer learning through the real binary: `validate` checks the weights file from its
//! header, a sweep pretrains for another, `frozen` leaves the pretrained base exactly as it
//! was (batch-norm statistics included), `finetune` leaves the stages before `unfreeze_from`
//! as they were, `two_phase` stores both phases, and the reports show them.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde_json::Value;

use crate::util::{copy_classes, sweep, text};

const PRETRAIN: &str = r#"
name = "pre"
seed = 3
[data]
train = "pre"
image_size = 16
channels = 1
val_split = 0.25
[train]
backbone = "resnet18"
width = 4
epochs = 1
batch_size = 8
checkpoint = "last"
"#;

/// The transfer sweep: the pretraining's classes are 3, these 2 (a new head).
fn transfer_sweep(pretrained: &str, extra: &str) -> String {
    format!(
        r#"
name = "tl"
seed = 5
[data]
train = "target"
image_size = 16
channels = 1
val_split = 0.25
[train]
backbone = "resnet18"
width = 4
epochs = 3
batch_size = 8
lr = 0.01
checkpoint = "last"
pretrained = "{pretrained}"
[transfer]
unfreeze_from = "layer3"
frozen_epochs = 1
finetune_lr = 0.001
{extra}
"#
    )
}

fn tensors(path: &Path) -> HashMap<String, Vec<f32>> {
    candle_core::safetensors::load(path, &Device::Cpu)
        .unwrap()
        .into_iter()
        .map(|(n, t): (String, Tensor)| (n, t.flatten_all().unwrap().to_vec1().unwrap()))
        .collect()
}

fn json(args: &[&str], dir: &Path) -> Value {
    let out = sweep(args, dir);
    assert!(out.status.success(), "{args:?}: {}", text(&out).1);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Pretrains the tiny ResNet-18 and returns its checkpoint (relative to `dir`).
fn pretrain(dir: &Path) -> PathBuf {
    copy_classes("train", &dir.join("pre"), 3, 12);
    std::fs::write(dir.join("pre.toml"), PRETRAIN).unwrap();
    let out = sweep(&["run", "pre.toml"], dir);
    assert!(out.status.success(), "{}", text(&out).1);
    let best = json(
        &["report", "--sweep", "pre", "--best", "--format", "json"],
        dir,
    );
    let checkpoint = PathBuf::from(best["checkpoint"].as_str().unwrap());
    let checkpoint = checkpoint
        .strip_prefix(dir.canonicalize().unwrap())
        .map(Path::to_path_buf)
        .unwrap_or(checkpoint);
    assert!(dir.join(&checkpoint).is_file(), "{checkpoint:?}");
    checkpoint
}

#[test]
fn a_sweep_pretrains_for_another_that_freezes_and_finetunes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let pretrained = pretrain(root);
    copy_classes("train", &root.join("target"), 2, 12);
    let file = transfer_sweep(
        pretrained.to_str().unwrap(),
        "[grid]\ntransfer = [\"frozen\", \"finetune\", \"two_phase\"]",
    );
    std::fs::write(root.join("tl.toml"), file).unwrap();
    let out = sweep(&["validate", "tl.toml"], root);
    assert!(out.status.success(), "{}", text(&out).1);
    let out = sweep(&["run", "tl.toml"], root);
    assert!(out.status.success(), "{}", text(&out).1);

    let source = tensors(&root.join(&pretrained));
    let report = json(&["report", "--sweep", "tl", "--format", "json"], root);
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    let by_label = |l: &str| runs.iter().find(|r| r["label"] == l).unwrap().clone();
    let checkpoint = |r: &Value| {
        let id = r["run_id"].as_str().unwrap();
        tensors(&root.join("runs/tl").join(id).join("last.safetensors"))
    };

    // frozen: everything but the head (fc, 2 classes now) is the pretrained file's, running
    // statistics included.
    let frozen = checkpoint(&by_label("frozen"));
    for (name, values) in &frozen {
        match name.starts_with("fc.") {
            true => assert_ne!(source[name].len(), values.len(), "{name}: a new head"),
            false => assert_eq!(&source[name], values, "frozen run changed {name}"),
        }
    }
    // finetune from layer3: conv1, bn1, layer1, layer2 as pretrained; layer3 on trained.
    let finetune = checkpoint(&by_label("finetune"));
    for (name, values) in &finetune {
        let early = ["conv1.", "bn1.", "layer1.", "layer2."]
            .iter()
            .any(|p| name.starts_with(p));
        if early {
            assert_eq!(&source[name], values, "finetune changed {name}");
        } else if name.starts_with("layer3.") && name.ends_with("weight") {
            assert_ne!(&source[name], values, "finetune left {name} as it was");
        }
    }
    // The checkpoint says how to use it again (a chain: pretrain, then transfer).
    let meta = sweep::model::weights::inspect(
        &root
            .join("runs/tl")
            .join(by_label("frozen")["run_id"].as_str().unwrap())
            .join("last.safetensors"),
    )
    .unwrap()
    .metadata;
    assert_eq!(meta["backbone"], "resnet18");
    assert_eq!(
        meta["normalize"], "unit",
        "the pretrained file's own preset"
    );
    assert_eq!(meta["classes"], "2");

    // two_phase: one frozen epoch at lr, then fine-tuning at finetune_lr, stored per epoch.
    let two = by_label("two_phase");
    let best = json(
        &[
            "report",
            "--sweep",
            "tl",
            "--best",
            "--format",
            "json",
            "--metric",
            "train_loss",
        ],
        root,
    );
    assert!(best["phases"].is_array(), "{best}");
    let db = rusqlite::Connection::open(root.join("runs/sweep.db")).unwrap();
    let mut stmt = db
        .prepare("SELECT phase, lr FROM epochs WHERE run_id = ?1 ORDER BY epoch")
        .unwrap();
    let rows: Vec<(String, f64)> = stmt
        .query_map([two["run_id"].as_str().unwrap()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows,
        [
            ("frozen".to_string(), 0.01),
            ("finetune".to_string(), 0.001),
            ("finetune".to_string(), 0.001)
        ]
    );
    let out = sweep(
        &["report", "--sweep", "tl", "--best", "--metric", "val_loss"],
        root,
    );
    let shown = text(&out).0;
    assert!(shown.contains("phases"), "{shown}");
    // The three modes side by side, and what each does over the rest.
    let c = json(
        &[
            "report",
            "--sweep",
            "tl",
            "--compare",
            "transfer",
            "--format",
            "json",
        ],
        root,
    );
    let values: Vec<&str> = c["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["frozen", "finetune", "two_phase"]);
    let by = json(
        &[
            "report", "--sweep", "tl", "--by", "transfer", "--format", "json",
        ],
        root,
    );
    assert_eq!(by["values"].as_array().unwrap().len(), 3);
    let plan = text(&sweep(&["plan", "tl.toml"], root)).0;
    assert!(
        plan.contains("two_phase (1 frozen, then lr 0.001) from layer3"),
        "{plan}"
    );
}

#[test]
fn validate_checks_the_weights_file_and_the_stage() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let pretrained = pretrain(root);
    copy_classes("train", &root.join("target"), 2, 4);
    let p = pretrained.to_str().unwrap();
    let cases: [(String, &[&str]); 6] = [
        // No weights for a transfer run.
        (
            transfer_sweep(p, "[grid]\ntransfer = [\"frozen\"]")
                .replace(&format!("pretrained = \"{p}\"\n"), ""),
            &["grid.transfer", "set [train] pretrained"],
        ),
        (
            transfer_sweep("missing.safetensors", "[grid]\ntransfer = [\"frozen\"]"),
            &["train.pretrained", "missing.safetensors does not exist"],
        ),
        (
            transfer_sweep(p, "[grid]\ntransfer = [\"finetune\"]")
                .replace("width = 4", "width = 8"),
            &[
                "train.pretrained",
                "of another shape",
                "resnet18 at width 8",
            ],
        ),
        (
            transfer_sweep(p, "[grid]\ntransfer = [\"finetune\"]")
                .replace("\"layer3\"", "\"layer5\""),
            &[
                "transfer.unfreeze_from",
                "conv1, bn1, layer1, layer2, layer3, layer4, fc",
            ],
        ),
        (
            transfer_sweep(p, "[grid]\ntransfer = [\"scratch\"]"),
            &["train.pretrained", "would be ignored"],
        ),
        (
            transfer_sweep("tl.toml", "[grid]\ntransfer = [\"frozen\"]"),
            &["train.pretrained", "not a readable weights file"],
        ),
    ];
    for (i, (file, says)) in cases.iter().enumerate() {
        std::fs::write(root.join("tl.toml"), file).unwrap();
        let out = sweep(&["validate", "tl.toml"], root);
        let stderr = text(&out).1;
        assert!(!out.status.success(), "case {i}: accepted");
        for s in *says {
            assert!(stderr.contains(s), "case {i}: no {s:?} in {stderr}");
        }
    }
}

/// The epochs stored for the only run of sweep "tl": everything but wall-clock time.
fn stored(root: &Path) -> Vec<String> {
    let db = rusqlite::Connection::open(root.join("runs/sweep.db")).unwrap();
    // A database still being created has no tables yet: nothing stored.
    let Ok(mut stmt) = db.prepare(
        "SELECT epoch, phase, lr, train_loss, train_acc, val_loss, val_acc, val_macro_f1
             FROM epochs WHERE run_id IN
               (SELECT r.id FROM runs r JOIN sweeps s ON s.id = r.sweep_id WHERE s.name = 'tl')
             ORDER BY epoch",
    ) else {
        return Vec::new();
    };
    stmt.query_map([], |r| {
        Ok(format!(
            "{} {} {} {:?} {:?} {:?} {:?} {:?}",
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, f64>(2)?,
            r.get::<_, Option<f64>>(3)?,
            r.get::<_, Option<f64>>(4)?,
            r.get::<_, Option<f64>>(5)?,
            r.get::<_, Option<f64>>(6)?,
            r.get::<_, Option<f64>>(7)?
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// A two_phase run killed with SIGKILL (the whole process group: coordinator and worker) in
/// its frozen phase and again in its fine-tuning phase, then run to the end, stores exactly
/// the epochs of an uninterrupted run.
#[test]
fn two_phase_killed_in_either_phase_repeats_the_uninterrupted_run() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let make = |root: &Path, pretrained: &Path| {
        copy_classes("train", &root.join("target"), 3, 40);
        let file = transfer_sweep(pretrained.to_str().unwrap(), "")
            .replace("epochs = 3", "epochs = 4")
            .replace("frozen_epochs = 1", "frozen_epochs = 2")
            .replace("image_size = 16", "image_size = 28")
            .replace("[train]\n", "[train]\ntransfer = \"two_phase\"\n");
        std::fs::write(root.join("tl.toml"), file).unwrap();
    };
    let whole = tempfile::tempdir().unwrap();
    let pretrained = pretrain(whole.path()).canonicalize_in(whole.path());
    make(whole.path(), &pretrained);
    let out = sweep(&["run", "tl.toml"], whole.path());
    assert!(out.status.success(), "{}", text(&out).1);
    let want = stored(whole.path());
    assert_eq!(want.len(), 4);

    let killed = tempfile::tempdir().unwrap();
    make(killed.path(), &pretrained);
    // Killed once some epoch of each phase is stored: during epoch 2 (frozen) or later, then
    // during epoch 4 (fine-tuning) or at its end.
    for stored_at_least in [1, 3] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sweep"));
        cmd.args(["run", "tl.toml"])
            .current_dir(killed.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while killed
            .path()
            .join("runs/sweep.db")
            .exists()
            .then(|| stored(killed.path()).len())
            < Some(stored_at_least)
        {
            assert!(
                Instant::now() < deadline,
                "no epoch {stored_at_least} stored"
            );
            if child.try_wait().unwrap().is_some() {
                break; // finished before the kill: resuming is then trivially exact
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // SAFETY: kill(2) only sends a signal.
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
        let _ = child.wait();
        // The kill landed in the phase it was meant for: during epoch 2 (frozen) the first
        // time, during epoch 4 (fine-tuning) the second.
        let n = stored(killed.path()).len();
        assert_eq!(n, stored_at_least, "killed after {n} stored epochs");
    }
    let out = sweep(&["run", "tl.toml"], killed.path());
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(stored(killed.path()), want);
}

trait InDir {
    fn canonicalize_in(self, dir: &Path) -> PathBuf;
}

impl InDir for PathBuf {
    /// The absolute path of a path relative to `dir`.
    fn canonicalize_in(self, dir: &Path) -> PathBuf {
        dir.join(self).canonicalize().unwrap()
    }
}

/// A real PyTorch state dict (`torch.save(torchvision resnet18 state_dict)`, the committed
/// equivalence fixture at width 8, 5 classes) as the frozen base of a 2-class sweep: the
/// checkpoint keeps every tensor of the file but the head, and the preprocessing follows
/// torchvision's weights (imagenet).
#[test]
fn a_pytorch_state_dict_is_a_frozen_base() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let pth = crate::util::repo().join("tests/fixtures/equivalence/resnet18_w8.pth");
    copy_classes("train", &root.join("target"), 2, 8);
    let file = transfer_sweep(pth.to_str().unwrap(), "")
        .replace(
            "image_size = 16\nchannels = 1",
            "image_size = 96\nchannels = 3",
        )
        .replace("width = 4", "width = 8")
        .replace("epochs = 3", "epochs = 1")
        .replace("[train]\n", "[train]\ntransfer = \"frozen\"\n");
    std::fs::write(root.join("tl.toml"), file).unwrap();
    let out = sweep(&["run", "tl.toml"], root);
    assert!(out.status.success(), "{}", text(&out).1);
    let best = json(
        &["report", "--sweep", "tl", "--best", "--format", "json"],
        root,
    );
    assert_eq!(best["config"]["data"]["normalize"], "imagenet");
    assert_eq!(best["phase"], "frozen");
    let source = sweep::model::weights::read(&pth, &Device::Cpu).unwrap();
    let id = best["run_id"].as_str().unwrap();
    let kept = tensors(&root.join("runs/tl").join(id).join("last.safetensors"));
    let mut compared = 0;
    for (name, t) in &source {
        if name.ends_with("num_batches_tracked") || name.starts_with("fc.") {
            continue;
        }
        let want: Vec<f32> = t
            .to_dtype(candle_core::DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(kept[name], want, "{name}");
        compared += 1;
    }
    assert_eq!(
        compared + 2,
        kept.len(),
        "every tensor but fc.weight and fc.bias"
    );
}

/// `--out` writes the report whole, making its folder; `--where` narrows any report.
#[test]
fn reports_go_to_files_and_narrow_with_where() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    pretrain(root);
    let out = sweep(
        &[
            "report",
            "--sweep",
            "pre",
            "--format",
            "csv",
            "--out",
            "reports/pre/runs.csv",
        ],
        root,
    );
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(out.stdout.is_empty());
    assert!(text(&out).1.contains("wrote reports/pre/runs.csv"));
    let csv = std::fs::read_to_string(root.join("reports/pre/runs.csv")).unwrap();
    assert!(csv.starts_with("rank,sweep,index,run_id,label"), "{csv}");
    assert_eq!(csv.lines().count(), 2);
    let out = sweep(&["report", "--sweep", "pre", "--where", "lr=0.5"], root);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("its values: 0.001"),
        "{}",
        text(&out).1
    );
}
