//! Training the models end to end with this crate's optimizers: every backbone family learns,
//! checkpoints round-trip with their optimizer state, bf16 follows the fp32 loss curve. (They
//! live here, not in `model`, because they use the trainer's pieces.)

use candle_core::{DType, Device, IndexOp, Tensor, D};
use rand::Rng;

use super::optim::{Optimizer, OptimizerConfig};
use super::trainer::cross_entropy;
use crate::model::tests::{images, spec, to_vec, var_values};
use crate::model::{Backbone, Model, ModelSpec, Precision};

fn train_steps(m: &Model, opt: &mut Optimizer, x: &Tensor, y: &Tensor, steps: usize) {
    for _ in 0..steps {
        let logits = m.forward(x, true).unwrap();
        let loss = candle_nn::loss::cross_entropy(&logits, y).unwrap();
        opt.backward_step(&loss).unwrap();
    }
}

/// Cross-entropy of `m` on `(x, y)` with batch statistics, as training sees it.
fn train_loss(m: &Model, x: &Tensor, y: &Tensor) -> f32 {
    let logits = m.forward(x, true).unwrap();
    let loss = candle_nn::loss::cross_entropy(&logits, y).unwrap();
    loss.to_scalar::<f32>().unwrap()
}

/// A few SGD steps on one fixed batch lower the loss: the new backbones' gradients point
/// downhill. The bottleneck ResNets need a tiny step: at initialisation every training-mode
/// batch norm scales the gradient up a little (Yang et al., "A Mean Field Theory of Batch
/// Normalization", ICLR 2019), so their early layers get huge gradients, the stem most of
/// all, and larger steps overshoot. torchvision does the same: on 6 random 96x96 images
/// `sum(p.grad.square().sum())` is ~0.7e3 for `resnet18(num_classes=3)` and ~4.8e5 for
/// `resnet50(num_classes=3)` (ours: 0.6e3 and 4.5e5; 1e4 for this tiny ResNet-50).
#[test]
fn new_backbones_reduce_the_loss_with_sgd() {
    let sgd = |momentum| OptimizerConfig::Sgd {
        momentum,
        nesterov: false,
        weight_decay: 0.0,
    };
    for (backbone, h, w, width, config, lr) in [
        (Backbone::Resnet50, 16, 15, 4, sgd(0.0), 1e-5),
        (Backbone::Xception, 71, 72, 2, sgd(0.9), 0.02),
    ] {
        let m = Model::new(&spec(backbone, 3, h, w, 3, width), &Device::Cpu, 6).unwrap();
        let x = images(6, 3, h, w, 11);
        let y = Tensor::new(&[0u32, 1, 2, 0, 1, 2], &Device::Cpu).unwrap();
        let mut opt = Optimizer::new(&config, m.trainable_vars(), lr).unwrap();
        let mut losses = vec![train_loss(&m, &x, &y)];
        for _ in 0..5 {
            train_steps(&m, &mut opt, &x, &y, 1);
            losses.push(train_loss(&m, &x, &y));
        }
        assert!(
            losses.windows(2).all(|l| l[1] < l[0]),
            "{backbone}: losses {losses:?}"
        );
        assert!(losses[5] < 0.9 * losses[0], "{backbone}: losses {losses:?}");
    }
}

/// AlexNet and VGG at width 4 and their minimum sizes (and above): forward, backward, and a
/// few SGD steps lower the loss on a fixed batch. Every step and every measurement draws the
/// same dropout masks (the RNG is reseeded), so the loss is a function of the weights alone.
#[test]
fn alexnet_and_vgg_reduce_the_loss_with_sgd() {
    let config = OptimizerConfig::Sgd {
        momentum: 0.9,
        nesterov: false,
        weight_decay: 0.0,
    };
    for (name, h, w, lr) in [
        ("alexnet", 63, 64, 0.2),
        ("vgg11", 32, 33, 0.2),
        ("vgg16_bn", 32, 32, 0.02),
    ] {
        let backbone = Backbone::parse(name).unwrap();
        let m = Model::new(&spec(backbone, 3, h, w, 3, 4), &Device::Cpu, 6).unwrap();
        let x = images(6, 3, h, w, 11);
        let y = Tensor::new(&[0u32, 1, 2, 0, 1, 2], &Device::Cpu).unwrap();
        let mut opt = Optimizer::new(&config, m.trainable_vars(), lr).unwrap();
        let fixed_loss = |m: &Model| {
            m.reseed_dropout(99).unwrap();
            train_loss(m, &x, &y)
        };
        let mut losses = vec![fixed_loss(&m)];
        for _ in 0..6 {
            m.reseed_dropout(99).unwrap();
            train_steps(&m, &mut opt, &x, &y, 1);
            losses.push(fixed_loss(&m));
        }
        assert!(losses.iter().all(|l| l.is_finite()), "{name}: {losses:?}");
        assert!(
            losses.windows(2).all(|l| l[1] < l[0]),
            "{name}: losses {losses:?}"
        );
        assert!(losses[6] < 0.9 * losses[0], "{name}: losses {losses:?}");
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

/// Five Adam steps of a small CNN and ResNet from the same seed: bf16 changes the numbers
/// (the rounding is applied) but trains along the same curve, and the weights stay f32.
#[test]
fn bf16_training_follows_the_fp32_loss_curve() {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let x: Vec<f32> = (0..8 * 16 * 16).map(|_| rng.random::<f32>()).collect();
    let x = Tensor::from_vec(x, (8, 1, 16, 16), &Device::Cpu).unwrap();
    let y = Tensor::new(&[0u32, 1, 2, 0, 1, 2, 0, 1], &Device::Cpu).unwrap();
    let adam = OptimizerConfig::Adam {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
    };
    for (backbone, width) in [(Backbone::Cnn, 4), (Backbone::Resnet18, 4)] {
        let spec = ModelSpec {
            backbone,
            channels: 1,
            height: 16,
            width: 16,
            classes: 3,
            base_width: width,
        };
        let curve = |p: Precision| -> Vec<f32> {
            let mut m = Model::new(&spec, &Device::Cpu, 7).unwrap();
            m.set_precision(p);
            let mut opt = Optimizer::new(&adam, m.trainable_vars(), 1e-3).unwrap();
            (0..5)
                .map(|_| {
                    // The cnn has no batch norm: leave its dropout off, so the curve is smooth.
                    let logits = m.forward(&x, backbone != Backbone::Cnn).unwrap();
                    assert_eq!(logits.dtype(), DType::F32);
                    let loss = cross_entropy(&logits, &y, 0.0).unwrap();
                    opt.backward_step(&loss).unwrap();
                    loss.to_scalar::<f32>().unwrap()
                })
                .inspect(|_| assert!(m.trainable_vars().iter().all(|v| v.dtype() == DType::F32)))
                .collect()
        };
        let (a, b) = (curve(Precision::Fp32), curve(Precision::Bf16));
        assert!(
            a.iter().zip(&b).any(|(a, b)| a != b),
            "{backbone}: bf16 changed nothing: {a:?}"
        );
        for (a, b) in a.iter().zip(&b) {
            assert!(
                (a - b).abs() <= 0.05 * a.abs(),
                "{backbone}: fp32 {a}, bf16 {b}"
            );
        }
        assert!(b[4] < b[0], "{backbone}: bf16 did not learn: {b:?}");
    }
}
