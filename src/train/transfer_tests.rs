//! Transfer learning in the model: a frozen base changes nowhere (batch-norm statistics
//! included) and gets no gradient, fine-tuning from a stage leaves the earlier stages as they
//! were, and pretrained weights load everywhere but the head.
use std::collections::HashMap;

use candle_core::{Device, Tensor};

use super::optim::{Optimizer, OptimizerConfig};
use crate::model::tests::{images, spec, var_values};
use crate::model::{count, Backbone, Model, ModelSpec};
use crate::run::Trainable;

const ADAM: OptimizerConfig = OptimizerConfig::Adam {
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weight_decay: 0.0,
};

/// `steps` Adam steps on one batch in training mode; returns the losses before each step.
fn train(m: &Model, x: &Tensor, y: &Tensor, steps: usize) -> Vec<f32> {
    let mut opt = Optimizer::new(&ADAM, m.trainable_vars(), 0.01).unwrap();
    (0..steps)
        .map(|_| {
            let logits = m.forward(x, true).unwrap();
            let loss = candle_nn::loss::cross_entropy(&logits, y).unwrap();
            opt.backward_step(&loss).unwrap();
            loss.to_scalar::<f32>().unwrap()
        })
        .collect()
}

/// The names of the variables whose values differ between two snapshots.
fn changed(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)]) -> Vec<String> {
    let b: HashMap<&String, &Vec<f32>> = b.iter().map(|(n, v)| (n, v)).collect();
    a.iter()
        .filter(|(n, v)| b[n] != v)
        .map(|(n, _)| n.clone())
        .collect()
}

fn labels(n: usize, classes: u32) -> Tensor {
    let y: Vec<u32> = (0..n as u32).map(|i| i % classes).collect();
    Tensor::new(y.as_slice(), &Device::Cpu).unwrap()
}

/// One small spec per family that has batch norm in its base (where "frozen" must also mean
/// inference mode), plus the cnn and VGG (dropout, no batch norm).
fn small_specs() -> Vec<ModelSpec> {
    vec![
        spec(Backbone::Resnet18, 3, 12, 12, 3, 4),
        spec(Backbone::parse("resnet50v2").unwrap(), 3, 12, 12, 3, 4),
        spec(Backbone::Xception, 3, 71, 71, 3, 2),
        spec(Backbone::parse("mobilenet_v2").unwrap(), 3, 16, 16, 3, 8),
        spec(Backbone::parse("efficientnet_b0").unwrap(), 3, 16, 16, 3, 8),
        spec(Backbone::parse("vgg11_bn").unwrap(), 3, 32, 32, 3, 4),
        spec(Backbone::Cnn, 1, 12, 12, 3, 4),
    ]
}

#[test]
fn a_frozen_base_changes_nowhere_but_the_head() {
    for s in small_specs() {
        let mut m = Model::new(&s, &Device::Cpu, 3).unwrap();
        m.set_trainable(&Trainable::Head).unwrap();
        let head = count::head(&s).unwrap();
        let trainable: usize = m.trainable_vars().iter().map(|v| v.elem_count()).sum();
        let head_params: usize = count::shapes(&s)
            .unwrap()
            .iter()
            .filter(|(n, _)| head.contains(n))
            .map(|(_, sh)| sh.elem_count())
            .sum();
        assert_eq!(
            trainable, head_params,
            "{}: only the head trains",
            s.backbone
        );
        let before = var_values(&m);
        let x = images(6, s.channels, s.height, s.width, 1);
        let losses = train(&m, &x, &labels(6, 3), 6);
        let after = var_values(&m);
        let mut moved = changed(&before, &after);
        moved.sort();
        let mut want: Vec<String> = head.iter().cloned().collect();
        want.sort();
        assert_eq!(moved, want, "{}: only the head changed", s.backbone);
        assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    }
}

#[test]
fn a_frozen_base_records_no_gradient() {
    let s = spec(Backbone::Resnet18, 3, 12, 12, 3, 4);
    let mut m = Model::new(&s, &Device::Cpu, 3).unwrap();
    let all = m.trainable_vars();
    m.set_trainable(&Trainable::Head).unwrap();
    let x = images(4, 3, 12, 12, 2);
    let loss =
        candle_nn::loss::cross_entropy(&m.forward(&x, true).unwrap(), &labels(4, 3)).unwrap();
    let grads = loss.backward().unwrap();
    let with_grad: Vec<usize> = all
        .iter()
        .filter(|v| grads.get(v.as_tensor()).is_some())
        .map(|v| v.elem_count())
        .collect();
    // fc.weight (3 x 32) and fc.bias (3): nothing of the base.
    assert_eq!(with_grad.iter().sum::<usize>(), 3 * 32 + 3, "{with_grad:?}");
    // Unfrozen again, everything trains.
    m.set_trainable(&Trainable::All).unwrap();
    assert_eq!(m.trainable_vars().len(), all.len());
    assert!(m.frozen_names().is_empty());
}

#[test]
fn finetuning_from_a_stage_leaves_the_earlier_ones_unchanged() {
    for (s, stage, first_trained) in [
        (
            spec(Backbone::Resnet18, 3, 12, 12, 3, 4),
            "layer3",
            "layer3",
        ),
        (
            spec(Backbone::parse("vgg11_bn").unwrap(), 3, 32, 32, 3, 4),
            "features.15",
            "features.15",
        ),
        (
            spec(Backbone::parse("resnet50v2").unwrap(), 3, 12, 12, 3, 4),
            "conv4",
            "conv4",
        ),
        (
            spec(Backbone::Xception, 3, 71, 71, 3, 2),
            "block12",
            "block12",
        ),
    ] {
        let mut m = Model::new(&s, &Device::Cpu, 4).unwrap();
        m.set_trainable(&Trainable::From(stage.into())).unwrap();
        let before = var_values(&m);
        let x = images(6, s.channels, s.height, s.width, 3);
        train(&m, &x, &labels(6, 3), 3);
        let after = var_values(&m);
        let moved = changed(&before, &after);
        let order: Vec<String> = count::shapes(&s)
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let split = order
            .iter()
            .position(|n| s.backbone.stage_of(n) == first_trained)
            .unwrap();
        let head = count::head(&s).unwrap();
        for name in &order[..split] {
            assert!(
                !moved.contains(name) || head.contains(name),
                "{}: {name} is before {stage} and changed",
                s.backbone
            );
        }
        // Every weight from the stage on trains (a running statistic may stay where it is
        // only if its batch norm saw the same batch; here every one moves).
        for name in &order[split..] {
            assert!(
                moved.contains(name),
                "{}: {name} is from {stage} on and did not change",
                s.backbone
            );
        }
    }
}

#[test]
fn pretrained_weights_load_everywhere_but_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pretrained.safetensors");
    // "Pretrained" on 5 classes, then used for 3.
    let source = Model::new(&spec(Backbone::Resnet18, 3, 12, 12, 5, 4), &Device::Cpu, 9).unwrap();
    source.save(&file).unwrap();
    let s = spec(Backbone::Resnet18, 3, 12, 12, 3, 4);
    let mut m = Model::new(&s, &Device::Cpu, 10).unwrap();
    let fresh = var_values(&m);
    m.load_pretrained(&file).unwrap();
    let loaded = var_values(&m);
    let src: HashMap<String, Vec<f32>> = var_values(&source).into_iter().collect();
    let head = count::head(&s).unwrap();
    assert_eq!(
        head.iter().cloned().collect::<Vec<_>>(),
        ["fc.bias", "fc.weight"]
    );
    for ((name, v), (_, f)) in loaded.iter().zip(&fresh) {
        if head.contains(name) {
            assert_eq!(v, f, "{name}: the head is made anew");
        } else {
            assert_eq!(v, &src[name], "{name}: from the file");
        }
    }
    // Another width: every mis-shaped tensor is named; the model is left as it was.
    let narrow = Model::new(&spec(Backbone::Resnet18, 3, 12, 12, 3, 2), &Device::Cpu, 9).unwrap();
    let other = dir.path().join("narrow.safetensors");
    narrow.save(&other).unwrap();
    let e = m.load_pretrained(&other).unwrap_err().to_string();
    assert!(
        e.contains("of another shape: bn1.bias is [2] in the file, the model has [4]"),
        "{e}"
    );
    assert!(
        e.contains("resnet18 at width 4 for 3-channel images"),
        "{e}"
    );
    assert!(!e.contains("fc.weight"), "the head is not compared: {e}");
    assert_eq!(var_values(&m), loaded);
    // Another backbone: its names are missing and unexpected.
    let cnn = Model::new(&spec(Backbone::Cnn, 3, 12, 12, 3, 4), &Device::Cpu, 9).unwrap();
    let other = dir.path().join("cnn.safetensors");
    cnn.save(&other).unwrap();
    let e = m.load_pretrained(&other).unwrap_err().to_string();
    assert!(
        e.contains("missing: bn1.bias") && e.contains("unexpected: conv1.bias"),
        "{e}"
    );
}

#[test]
fn an_unknown_stage_lists_the_stages() {
    let s = spec(Backbone::Resnet18, 3, 12, 12, 3, 4);
    let mut m = Model::new(&s, &Device::Cpu, 4).unwrap();
    let e = m
        .set_trainable(&Trainable::From("layer9".into()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("conv1, bn1, layer1, layer2, layer3, layer4, fc"),
        "{e}"
    );
    // A block inside a stage is a place to start too.
    m.set_trainable(&Trainable::From("layer4.1".into()))
        .unwrap();
    assert!(m.frozen_names().contains("layer4.0.conv1.weight"));
    assert!(!m.frozen_names().contains("layer4.1.conv1.weight"));
}

mod resume {
    //! A two_phase run stopped after an epoch of either phase, then continued by a new learner
    //! (as a new worker process would), repeats the uninterrupted run exactly: same epochs,
    //! phases, losses and final weights.
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use candle_core::Device;

    use crate::run::{EpochRecord, Event, Phase, Provenance, RunSpec, RunStart};
    use crate::sweep::Sweep;
    use crate::train::{train, CandleLearner, Learner, Start, Steering, TrainError};

    struct Setup {
        run: RunSpec,
        data: Arc<crate::data::Dataset>,
        pretrained: std::path::PathBuf,
    }

    fn setup(dir: &Path) -> Setup {
        // 12 images of each of the first 3 bundled classes.
        crate::train::balance_tests::imbalanced(&dir.join("data"), &[12, 12, 12]);
        // "Pretrained": a resnet18 of another seed and class count, saved as sweep saves.
        let pretrained = dir.join("pre.safetensors");
        let s = crate::model::tests::spec(crate::model::Backbone::Resnet18, 1, 16, 16, 5, 4);
        crate::model::Model::new(&s, &Device::Cpu, 77)
            .unwrap()
            .save(&pretrained)
            .unwrap();
        let toml = r#"
            [data]
            train = "data"
            image_size = 16
            channels = 1
            val_split = 0.25
            [train]
            backbone = "resnet18"
            width = 4
            epochs = 4
            batch_size = 8
            optimizer = "adam"
            lr = 0.01
            transfer = "two_phase"
            pretrained = "pre.safetensors"
            checkpoint = "last"
            [transfer]
            unfreeze_from = "layer3"
            frozen_epochs = 2
            finetune_lr = 0.002
        "#;
        let sweep = Sweep::from_str(toml, &dir.join("s.toml")).unwrap();
        let run = sweep.runs().remove(0);
        let data = Arc::new(crate::data::load(&sweep.resolve_data(&run.config.data)).unwrap());
        Setup {
            run,
            data,
            pretrained,
        }
    }

    fn learner(s: &Setup) -> CandleLearner {
        let mut l = CandleLearner::new(&s.run.config, 8, s.data.clone(), &Device::Cpu).unwrap();
        // As the worker does: a fresh start reads the file, a resumed one its saved state.
        l.start_from(&s.pretrained);
        l
    }

    /// Trains (or resumes) `s.run` in `run_dir`, stopping after epoch `stop_after` if given;
    /// returns the epochs it reported and how it ended.
    fn go(
        s: &Setup,
        run_dir: &Path,
        begin: Start,
        stop_after: Option<usize>,
    ) -> (Vec<EpochRecord>, Result<(), TrainError>) {
        let mut l = learner(s);
        let start = RunStart {
            device: "cpu".into(),
            classes: s.data.classes.clone(),
            parameters: l.parameter_count(),
            train_images: s.data.train.len(),
            val_images: s.data.val.len(),
            test_images: None,
            skipped: vec![],
            batch_size: 8,
            resumed_from: None,
        };
        let stop = AtomicBool::new(false);
        let mut verdict = |_| None;
        let steer = Steering {
            stop: &stop,
            rungs: &[],
            verdict: &mut verdict,
        };
        let mut records = Vec::new();
        // Asked to stop while epoch `stop_after` trains: it finishes and saves that epoch.
        let mut emit = |e: Event| match e {
            Event::Progress { epoch, .. } if Some(epoch) == stop_after => {
                stop.store(true, Ordering::Relaxed)
            }
            Event::Epoch { record, .. } => records.push(record),
            _ => {}
        };
        let end = train(
            &s.run,
            &mut l,
            start,
            false,
            run_dir,
            begin,
            &Provenance::default(),
            steer,
            &mut emit,
        );
        (records, end.map(|_| ()))
    }

    /// Everything an epoch's row holds but its wall-clock time.
    fn numbers(r: &EpochRecord) -> String {
        format!("{:?} {:?} {:?}", r.summary, r.val, r.confusion)
    }

    #[test]
    fn two_phase_resumes_exactly_in_either_phase() {
        let dir = tempfile::tempdir().unwrap();
        let s = setup(dir.path());
        let whole = dir.path().join("whole");
        let (all, end) = go(&s, &whole, Start::Fresh, None);
        end.unwrap();
        let phases: Vec<Phase> = all.iter().map(|r| r.summary.phase).collect();
        assert_eq!(
            phases,
            [
                Phase::Frozen,
                Phase::Frozen,
                Phase::Finetune,
                Phase::Finetune
            ]
        );
        let lrs: Vec<f64> = all.iter().map(|r| r.summary.lr).collect();
        assert_eq!(lrs, [0.01, 0.01, 0.002, 0.002]);
        let want: Vec<String> = all.iter().map(numbers).collect();
        let weights = |dir: &Path| -> Vec<(String, Vec<f32>)> {
            let t =
                candle_core::safetensors::load(dir.join("last.safetensors"), &Device::Cpu).unwrap();
            let mut v: Vec<(String, Vec<f32>)> = t
                .into_iter()
                .map(|(n, t)| (n, crate::model::tests::to_vec(&t)))
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        let final_weights = weights(&whole);
        // Stopped after epoch 1 (frozen phase), after epoch 2 (the switch: its state is the
        // fine-tuning phase's) and after epoch 3 (fine-tuning).
        for k in [1, 2, 3] {
            let run_dir = dir.path().join(format!("stopped-{k}"));
            let (first, end) = go(&s, &run_dir, Start::Fresh, Some(k));
            assert!(
                matches!(end, Err(TrainError::Interrupted(e)) if e == k),
                "{k}: {end:?}"
            );
            let (rest, end) = go(&s, &run_dir, Start::Resume { stored_epochs: k }, None);
            end.unwrap();
            let got: Vec<String> = first.iter().chain(&rest).map(numbers).collect();
            assert_eq!(got, want, "stopped after epoch {k}");
            assert!(
                weights(&run_dir) == final_weights,
                "stopped after epoch {k}: the final weights differ"
            );
        }
    }
}
