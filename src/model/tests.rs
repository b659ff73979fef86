//! Tests of the backbones: parameter counts against references, shapes, determinism,
//! checkpoints, and a tiny end-to-end overfit.
use super::*;
use crate::train::optim::{Optimizer, OptimizerConfig};
use candle_core::{IndexOp, D};
use rand::Rng;

fn spec(
    backbone: Backbone,
    channels: usize,
    h: usize,
    w: usize,
    classes: usize,
    bw: usize,
) -> ModelSpec {
    ModelSpec {
        backbone,
        channels,
        height: h,
        width: w,
        classes,
        base_width: bw,
    }
}

fn images(b: usize, c: usize, h: usize, w: usize, seed: u64) -> Tensor {
    let mut rng = StdRng::seed_from_u64(seed);
    let data: Vec<f32> = (0..b * c * h * w).map(|_| rng.random::<f32>()).collect();
    Tensor::from_vec(data, (b, c, h, w), &Device::Cpu).unwrap()
}

fn to_vec(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn var_values(model: &Model) -> Vec<(String, Vec<f32>)> {
    let mut all: Vec<(String, Vec<f32>)> = model
        .named_tensors()
        .unwrap()
        .into_iter()
        .map(|(n, t)| (n, to_vec(&t)))
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

#[test]
fn backbone_names_round_trip() {
    for b in Backbone::ALL {
        assert_eq!(Backbone::parse(b.name()), Some(b));
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(json, format!("\"{}\"", b.name()));
        assert_eq!(serde_json::from_str::<Backbone>(&json).unwrap(), b);
    }
    assert_eq!(Backbone::parse(" ResNet18 "), Some(Backbone::Resnet18));
    assert_eq!(Backbone::parse("resnet50"), None);
    assert_eq!(Backbone::Cnn.default_width(), 32);
    assert_eq!(Backbone::Resnet18.default_width(), 64);
    assert_eq!(Backbone::Resnet34.default_width(), 64);
}

#[test]
fn model_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Model>();
}

/// Reference: `sum(p.numel() for p in torchvision.models.resnet18().parameters())`
/// = 11,689,512 and for `resnet34()` = 21,797,672 (torchvision's documented model stats, 3
/// channels, 1000 classes, 224x224 so the 7x7 stem is used).
#[test]
fn resnet_parameter_counts_match_torchvision() {
    let r18 = Model::new(
        &spec(Backbone::Resnet18, 3, 224, 224, 1000, 64),
        &Device::Cpu,
        0,
    )
    .unwrap();
    assert_eq!(r18.parameter_count(), 11_689_512);
    let r34 = Model::new(
        &spec(Backbone::Resnet34, 3, 224, 224, 1000, 64),
        &Device::Cpu,
        0,
    )
    .unwrap();
    assert_eq!(r34.parameter_count(), 21_797_672);
}

/// Keras `model.summary()` of the baseline on 28x28x1, 10 classes, w = 32:
/// conv 3x3x1x32 + 32 = 320; conv 3x3x32x64 + 64 = 18,496; conv 3x3x64x64 + 64 = 36,928;
/// 28 -> 14 -> 7 after the pools, flatten 7*7*64 = 3,136; dense 3,136*512 + 512 = 1,606,144;
/// dense 512*10 + 10 = 5,130. Total 1,667,018.
#[test]
fn cnn_parameter_count_matches_keras() {
    let m = Model::new(&spec(Backbone::Cnn, 1, 28, 28, 10, 32), &Device::Cpu, 0).unwrap();
    assert_eq!(
        m.parameter_count(),
        320 + 18_496 + 36_928 + 1_606_144 + 5_130
    );
    assert_eq!(m.parameter_count(), 1_667_018);
}

#[test]
fn variable_names_follow_torchvision() {
    let m = Model::new(&spec(Backbone::Resnet18, 3, 8, 8, 5, 2), &Device::Cpu, 0).unwrap();
    let names: Vec<String> = var_values(&m).into_iter().map(|(n, _)| n).collect();
    for expected in [
        "conv1.weight",
        "bn1.weight",
        "bn1.running_mean",
        "layer1.0.conv1.weight",
        "layer1.1.bn2.running_var",
        "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.bias",
        "layer4.1.conv2.weight",
        "fc.weight",
        "fc.bias",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "missing {expected} in {names:?}"
        );
    }
    assert!(!names.iter().any(|n| n.starts_with("layer1.0.downsample")));
    assert!(!names.iter().any(|n| n == "conv1.bias"));
}

#[test]
fn running_stats_are_not_trainable() {
    let m = Model::new(&spec(Backbone::Resnet18, 1, 8, 8, 3, 2), &Device::Cpu, 0).unwrap();
    let all = m.named_tensors().unwrap();
    let running = all.keys().filter(|n| is_running_stat(n)).count();
    assert_eq!(running, 2 * 20, "20 batch norms in resnet18");
    assert_eq!(m.trainable_vars().len(), all.len() - running);
    let data = m.varmap.data().lock().unwrap();
    for (name, var) in data.iter() {
        let listed = m
            .trainable_vars()
            .iter()
            .any(|v| v.as_tensor().id() == var.as_tensor().id());
        assert_eq!(listed, !is_running_stat(name), "{name}");
    }
}

#[test]
fn forward_shapes_for_odd_and_non_square_inputs() {
    for backbone in Backbone::ALL {
        for (c, h, w) in [(1, 27, 31), (3, 5, 4)] {
            let m = Model::new(&spec(backbone, c, h, w, 7, 2), &Device::Cpu, 1).unwrap();
            let x = images(2, c, h, w, 2);
            for train in [false, true] {
                let y = m.forward(&x, train).unwrap();
                assert_eq!(y.dims(), &[2, 7], "{backbone} {c}x{h}x{w} train {train}");
                assert!(to_vec(&y).iter().all(|v| v.is_finite()));
            }
        }
    }
}

#[test]
fn resnet_imagenet_stem_on_large_non_square_inputs() {
    let m = Model::new(&spec(Backbone::Resnet18, 3, 97, 100, 4, 2), &Device::Cpu, 1).unwrap();
    let conv1 = m.named_tensors().unwrap()["conv1.weight"].dims().to_vec();
    assert_eq!(conv1, vec![2, 3, 7, 7]);
    let small = Model::new(&spec(Backbone::Resnet18, 3, 95, 100, 4, 2), &Device::Cpu, 1).unwrap();
    assert_eq!(
        small.named_tensors().unwrap()["conv1.weight"].dims(),
        &[2, 3, 3, 3]
    );
    // A full backward pass through stride-2 convolutions on odd/even sizes and the stem pool.
    let x = images(2, 3, 97, 100, 3);
    let y = m.forward(&x, true).unwrap();
    assert_eq!(y.dims(), &[2, 4]);
    let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    for v in m.trainable_vars() {
        assert!(grads.get(v.as_tensor()).is_some());
    }
}

#[test]
fn every_trainable_var_gets_a_gradient() {
    for backbone in Backbone::ALL {
        let m = Model::new(&spec(backbone, 1, 9, 10, 3, 2), &Device::Cpu, 4).unwrap();
        let y = m.forward(&images(3, 1, 9, 10, 5), true).unwrap();
        let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        for v in m.trainable_vars() {
            assert!(
                grads.get(v.as_tensor()).is_some(),
                "{backbone}: a variable got no gradient"
            );
        }
    }
}

#[test]
fn wrong_inputs_and_specs_are_errors() {
    let m = Model::new(&spec(Backbone::Cnn, 1, 8, 8, 3, 2), &Device::Cpu, 0).unwrap();
    assert!(m.forward(&images(1, 3, 8, 8, 0), false).is_err());
    assert!(m.forward(&images(1, 1, 9, 8, 0), false).is_err());
    assert!(Model::new(&spec(Backbone::Cnn, 1, 3, 8, 3, 2), &Device::Cpu, 0).is_err());
    assert!(Model::new(&spec(Backbone::Resnet18, 1, 8, 8, 0, 2), &Device::Cpu, 0).is_err());
    assert!(Model::new(&spec(Backbone::Resnet18, 1, 8, 8, 3, 0), &Device::Cpu, 0).is_err());
    // Batch norm cannot train on one value per channel (batch 1, 1x1 after the last stage).
    let r = Model::new(&spec(Backbone::Resnet18, 1, 1, 1, 3, 2), &Device::Cpu, 0).unwrap();
    assert!(r.forward(&images(1, 1, 1, 1, 0), true).is_err());
    assert!(r.forward(&images(1, 1, 1, 1, 0), false).is_ok());
}

#[test]
fn same_seed_same_model_different_seed_different() {
    for backbone in Backbone::ALL {
        let s = spec(backbone, 3, 8, 9, 4, 2);
        let a = Model::new(&s, &Device::Cpu, 11).unwrap();
        let b = Model::new(&s, &Device::Cpu, 11).unwrap();
        let c = Model::new(&s, &Device::Cpu, 12).unwrap();
        assert_eq!(var_values(&a), var_values(&b));
        assert_ne!(var_values(&a), var_values(&c));
        let x = images(3, 3, 8, 9, 6);
        for train in [false, true] {
            let ya = to_vec(&a.forward(&x, train).unwrap());
            let yb = to_vec(&b.forward(&x, train).unwrap());
            let yc = to_vec(&c.forward(&x, train).unwrap());
            assert_eq!(ya, yb, "{backbone} train {train}");
            assert_ne!(ya, yc, "{backbone} train {train}");
        }
    }
}

#[test]
fn dropout_only_in_training() {
    let m = Model::new(&spec(Backbone::Cnn, 1, 8, 8, 3, 4), &Device::Cpu, 3).unwrap();
    let x = images(4, 1, 8, 8, 7);
    let e1 = to_vec(&m.forward(&x, false).unwrap());
    let e2 = to_vec(&m.forward(&x, false).unwrap());
    assert_eq!(e1, e2);
    let t1 = to_vec(&m.forward(&x, true).unwrap());
    let t2 = to_vec(&m.forward(&x, true).unwrap());
    assert_ne!(t1, t2, "fresh dropout masks each training forward");
    assert_ne!(t1, e1);
}

#[test]
fn batch_norm_running_stats_update_only_in_training() {
    let m = Model::new(&spec(Backbone::Resnet18, 1, 6, 6, 3, 2), &Device::Cpu, 3).unwrap();
    let stats = |m: &Model| to_vec(&m.named_tensors().unwrap()["bn1.running_mean"]);
    let before = stats(&m);
    assert!(before.iter().all(|v| *v == 0.0));
    m.forward(&images(2, 1, 6, 6, 8), false).unwrap();
    assert_eq!(stats(&m), before);
    m.forward(&images(2, 1, 6, 6, 8), true).unwrap();
    assert_ne!(stats(&m), before);
}

fn train_steps(m: &Model, opt: &mut Optimizer, x: &Tensor, y: &Tensor, steps: usize) {
    for _ in 0..steps {
        let logits = m.forward(x, true).unwrap();
        let loss = candle_nn::loss::cross_entropy(&logits, y).unwrap();
        opt.backward_step(&loss).unwrap();
    }
}

fn adam() -> OptimizerConfig {
    OptimizerConfig::Adam {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
    }
}

#[test]
fn checkpoint_round_trip() {
    let s = spec(Backbone::Resnet18, 1, 7, 6, 3, 2);
    let a = Model::new(&s, &Device::Cpu, 21).unwrap();
    let x = images(4, 1, 7, 6, 9);
    let y = Tensor::new(&[0u32, 1, 2, 1], &Device::Cpu).unwrap();
    let mut opt = Optimizer::new(&adam(), a.trainable_vars(), 1e-2).unwrap();
    train_steps(&a, &mut opt, &x, &y, 2);
    let running = to_vec(&a.named_tensors().unwrap()["layer1.0.bn1.running_var"]);
    assert!(
        running.iter().any(|v| *v != 1.0),
        "running stats should have moved"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    a.save(&path).unwrap();
    let mut b = Model::new(&s, &Device::Cpu, 22).unwrap();
    assert_ne!(var_values(&a), var_values(&b));
    b.load(&path).unwrap();
    assert_eq!(var_values(&a), var_values(&b));
    assert_eq!(
        to_vec(&a.forward(&x, false).unwrap()),
        to_vec(&b.forward(&x, false).unwrap())
    );

    // A checkpoint of another architecture is rejected and leaves the model untouched.
    let mut cnn = Model::new(&spec(Backbone::Cnn, 1, 7, 6, 3, 2), &Device::Cpu, 0).unwrap();
    let before = var_values(&cnn);
    assert!(cnn.load(&path).is_err());
    assert_eq!(var_values(&cnn), before);
    let mut wider = Model::new(&spec(Backbone::Resnet18, 1, 7, 6, 3, 4), &Device::Cpu, 0).unwrap();
    assert!(wider.load(&path).is_err());
}

#[test]
fn cnn_overfits_sixteen_images() {
    let (n, classes) = (16, 4);
    let m = Model::new(&spec(Backbone::Cnn, 1, 8, 8, classes, 8), &Device::Cpu, 5).unwrap();
    let x = images(n, 1, 8, 8, 10);
    let labels: Vec<u32> = (0..n as u32).map(|i| i % classes as u32).collect();
    let y = Tensor::new(labels.as_slice(), &Device::Cpu).unwrap();
    let mut opt = Optimizer::new(&adam(), m.trainable_vars(), 3e-3).unwrap();
    let mut accuracy = 0.0;
    for _round in 0..30 {
        train_steps(&m, &mut opt, &x, &y, 10);
        let pred = m.forward(&x, false).unwrap().argmax(D::Minus1).unwrap();
        let correct = pred
            .eq(&y)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .sum_all()
            .unwrap();
        accuracy = correct.to_scalar::<f32>().unwrap() / n as f32;
        if accuracy == 1.0 {
            break;
        }
    }
    assert_eq!(accuracy, 1.0, "cnn failed to memorise 16 images");
    // The logits really are per-image: not all rows equal.
    let logits = m.forward(&x, false).unwrap();
    assert_ne!(to_vec(&logits.i(0).unwrap()), to_vec(&logits.i(1).unwrap()));
}
