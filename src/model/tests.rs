//! Tests of the backbones: parameter counts against references, shapes, determinism,
//! checkpoints, and a tiny end-to-end overfit.
use super::*;
use candle_core::Shape;
use rand::Rng;

pub(crate) fn spec(
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

pub(crate) fn images(b: usize, c: usize, h: usize, w: usize, seed: u64) -> Tensor {
    let mut rng = StdRng::seed_from_u64(seed);
    let data: Vec<f32> = (0..b * c * h * w).map(|_| rng.random::<f32>()).collect();
    Tensor::from_vec(data, (b, c, h, w), &Device::Cpu).unwrap()
}

/// `(h, w)` grown equally on both sides until the short one reaches the backbone's minimum
/// (Xception's 71), keeping the parities and the difference between the two.
pub(crate) fn fit_size(backbone: Backbone, h: usize, w: usize) -> (usize, usize) {
    let grow = backbone.min_size().saturating_sub(h.min(w));
    (h + grow, w + grow)
}

/// Name and shape of every variable (running statistics included) the constructor of the
/// network `spec` describes asks for, in the order it asks.
fn shapes_from_constructor(spec: &ModelSpec) -> Vec<(String, Shape)> {
    count::shapes(spec).unwrap()
}

/// Trainable parameters (running statistics excluded) of the network `spec` describes,
/// counted from the shapes its constructor asks for.
fn parameter_count_from_shapes(spec: &ModelSpec) -> usize {
    count::parameter_count(spec).unwrap()
}

pub(crate) fn to_vec(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

pub(crate) fn var_values(model: &Model) -> Vec<(String, Vec<f32>)> {
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
    assert_eq!(Backbone::parse("resnet50"), Some(Backbone::Resnet50));
    assert_eq!(Backbone::parse("Xception"), Some(Backbone::Xception));
    assert_eq!(Backbone::parse("resnet51"), None);
    assert_eq!(Backbone::Cnn.default_width(), 32);
    assert_eq!(Backbone::Resnet18.default_width(), 64);
    assert_eq!(Backbone::Resnet34.default_width(), 64);
    assert_eq!(Backbone::Resnet50.default_width(), 64);
    assert_eq!(Backbone::Resnet101.default_width(), 64);
    assert_eq!(Backbone::Resnet152.default_width(), 64);
    assert_eq!(Backbone::Xception.default_width(), 32);
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

/// Reference: torchvision's documented model stats (`num_params`, = `sum(p.numel() for p in
/// model.parameters())`) for `resnet50()` 25,557,032, `resnet101()` 44,549,160 and
/// `resnet152()` 60,192,808: 3 channels, 1000 classes, 224x224 (7x7 stem), width 64.
/// Counted from the constructors' shapes: sampling 130M weights would take seconds.
#[test]
fn bottleneck_resnet_parameter_counts_match_torchvision() {
    for (backbone, expected) in [
        (Backbone::Resnet50, 25_557_032),
        (Backbone::Resnet101, 44_549_160),
        (Backbone::Resnet152, 60_192_808),
    ] {
        let s = spec(backbone, 3, 224, 224, 1000, backbone.default_width());
        assert_eq!(parameter_count_from_shapes(&s), expected, "{backbone}");
    }
    // The shape count is the model's count.
    let s = spec(Backbone::Resnet50, 2, 32, 30, 7, 4);
    let m = Model::new(&s, &Device::Cpu, 0).unwrap();
    assert_eq!(parameter_count_from_shapes(&s), m.parameter_count());
}

/// Reference: Keras `keras.applications.Xception(weights=None)` (299x299x3, 1000 classes)
/// reports 22,910,480 parameters of which 22,855,952 trainable (the rest are the BN moving
/// means and variances); timm's `legacy_xception` has the same 22,855,952 parameters.
#[test]
fn xception_parameter_count_matches_keras() {
    let s = spec(Backbone::Xception, 3, 299, 299, 1000, 32);
    assert_eq!(parameter_count_from_shapes(&s), 22_855_952);
    let s = spec(Backbone::Xception, 2, 71, 75, 7, 3);
    let m = Model::new(&s, &Device::Cpu, 0).unwrap();
    assert_eq!(parameter_count_from_shapes(&s), m.parameter_count());
}

/// Reference: torchvision's documented model stats (`num_params`, = `sum(p.numel() for p in
/// model.parameters())`, BN running statistics excluded) at 3 channels, 1000 classes,
/// 224x224, width 64: alexnet 61,100,840; vgg11 132,863,336; vgg13 133,047,848; vgg16
/// 138,357,544; vgg19 143,667,240; vgg11_bn 132,868,840; vgg13_bn 133,053,736; vgg16_bn
/// 138,365,992; vgg19_bn 143,678,248. Counted from the constructors' shapes (no 500 MB).
#[test]
fn alexnet_and_vgg_parameter_counts_match_torchvision() {
    for (name, expected) in [
        ("alexnet", 61_100_840),
        ("vgg11", 132_863_336),
        ("vgg13", 133_047_848),
        ("vgg16", 138_357_544),
        ("vgg19", 143_667_240),
        ("vgg11_bn", 132_868_840),
        ("vgg13_bn", 133_053_736),
        ("vgg16_bn", 138_365_992),
        ("vgg19_bn", 143_678_248),
    ] {
        let backbone = Backbone::parse(name).unwrap();
        let s = spec(backbone, 3, 224, 224, 1000, backbone.default_width());
        assert_eq!(parameter_count_from_shapes(&s), expected, "{name}");
    }
    // The shape count is the model's count, also when the adaptive pool is not an identity.
    for name in ["alexnet", "vgg13_bn"] {
        let backbone = Backbone::parse(name).unwrap();
        let s = spec(backbone, 2, 64, 70, 7, 4);
        let m = Model::new(&s, &Device::Cpu, 0).unwrap();
        assert_eq!(
            parameter_count_from_shapes(&s),
            m.parameter_count(),
            "{name}"
        );
    }
}

/// Names and shapes of torchvision's state dicts (`alexnet()`, `vgg16()`, `vgg16_bn()`,
/// `vgg11()` with 1000 classes): the checkpoint format.
#[test]
fn alexnet_and_vgg_variable_names_follow_torchvision() {
    let shapes_of = |name: &str| -> HashMap<String, Vec<usize>> {
        let backbone = Backbone::parse(name).unwrap();
        let s = spec(backbone, 3, 224, 224, 1000, 64);
        shapes_from_constructor(&s)
            .into_iter()
            .map(|(n, shape)| (n, shape.dims().to_vec()))
            .collect()
    };
    // (backbone, some of its variables with their shapes, how many variables it has)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a [usize])], usize);
    let cases: [Case; 4] = [
        (
            "alexnet",
            &[
                ("features.0.weight", &[64, 3, 11, 11]),
                ("features.3.weight", &[192, 64, 5, 5]),
                ("features.6.bias", &[384]),
                ("features.8.weight", &[256, 384, 3, 3]),
                ("features.10.weight", &[256, 256, 3, 3]),
                ("classifier.1.weight", &[4096, 9216]),
                ("classifier.4.weight", &[4096, 4096]),
                ("classifier.6.weight", &[1000, 4096]),
                ("classifier.6.bias", &[1000]),
            ],
            16,
        ),
        (
            "vgg16",
            &[
                ("features.0.weight", &[64, 3, 3, 3]),
                ("features.0.bias", &[64]),
                ("features.2.weight", &[64, 64, 3, 3]),
                ("features.5.weight", &[128, 64, 3, 3]),
                ("features.28.weight", &[512, 512, 3, 3]),
                ("classifier.0.weight", &[4096, 25088]),
                ("classifier.3.weight", &[4096, 4096]),
                ("classifier.6.weight", &[1000, 4096]),
            ],
            32,
        ),
        (
            "vgg16_bn",
            &[
                ("features.0.weight", &[64, 3, 3, 3]),
                ("features.1.weight", &[64]),
                ("features.1.bias", &[64]),
                ("features.1.running_mean", &[64]),
                ("features.1.running_var", &[64]),
                ("features.3.weight", &[64, 64, 3, 3]),
                ("features.7.weight", &[128, 64, 3, 3]),
                ("features.40.weight", &[512, 512, 3, 3]),
                ("features.41.running_var", &[512]),
                ("classifier.6.bias", &[1000]),
            ],
            32 + 13 * 4,
        ),
        (
            "vgg11",
            &[
                ("features.3.weight", &[128, 64, 3, 3]),
                ("features.18.weight", &[512, 512, 3, 3]),
            ],
            22,
        ),
    ];
    for (name, expected, count) in cases {
        let shapes = shapes_of(name);
        for (var, shape) in expected {
            assert_eq!(
                shapes.get(*var).map(|s| &s[..]),
                Some(*shape),
                "{name} {var}"
            );
        }
        assert_eq!(shapes.len(), count, "{name}: {:?}", shapes.keys());
    }
}

/// Width scales every channel count by `w / 64` and the hidden size to `64w`.
#[test]
fn alexnet_and_vgg_widths_scale_channels() {
    let s = spec(Backbone::parse("vgg11_bn").unwrap(), 1, 32, 32, 5, 4);
    let shapes: HashMap<String, Vec<usize>> = shapes_from_constructor(&s)
        .into_iter()
        .map(|(n, shape)| (n, shape.dims().to_vec()))
        .collect();
    assert_eq!(shapes["features.0.weight"], [4, 1, 3, 3]);
    assert_eq!(shapes["features.4.weight"], [8, 4, 3, 3]);
    assert_eq!(shapes["classifier.0.weight"], [256, 32 * 49]);
    assert_eq!(shapes["classifier.6.weight"], [5, 256]);
    let s = spec(Backbone::parse("alexnet").unwrap(), 3, 63, 63, 5, 4);
    let shapes: HashMap<String, Vec<usize>> = shapes_from_constructor(&s)
        .into_iter()
        .map(|(n, shape)| (n, shape.dims().to_vec()))
        .collect();
    assert_eq!(shapes["features.3.weight"], [12, 4, 5, 5]);
    assert_eq!(shapes["classifier.1.weight"], [256, 16 * 36]);
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

/// Variable names and shapes of torchvision's `resnet50(num_classes=5)`, here at width 2:
/// bottleneck convolutions `conv1..conv3`, a projection in every stage's first block (layer1's
/// too, since it widens `w -> 4w`).
#[test]
fn bottleneck_variable_names_follow_torchvision() {
    let m = Model::new(&spec(Backbone::Resnet50, 3, 8, 8, 5, 2), &Device::Cpu, 0).unwrap();
    let all = m.named_tensors().unwrap();
    for (name, shape) in [
        ("conv1.weight", &[2, 3, 3, 3][..]),
        ("layer1.0.conv1.weight", &[2, 2, 1, 1]),
        ("layer1.0.conv2.weight", &[2, 2, 3, 3]),
        ("layer1.0.conv3.weight", &[8, 2, 1, 1]),
        ("layer1.0.bn3.running_mean", &[8]),
        ("layer1.0.downsample.0.weight", &[8, 2, 1, 1]),
        ("layer1.0.downsample.1.weight", &[8]),
        ("layer2.0.conv1.weight", &[4, 8, 1, 1]),
        ("layer2.0.downsample.0.weight", &[16, 8, 1, 1]),
        ("layer4.2.conv3.weight", &[64, 16, 1, 1]),
        ("fc.weight", &[5, 64]),
        ("fc.bias", &[5]),
    ] {
        let t = all.get(name).unwrap_or_else(|| panic!("missing {name}"));
        assert_eq!(t.dims(), shape, "{name}");
    }
    assert!(!all.contains_key("layer1.1.downsample.0.weight"));
    assert!(!all.contains_key("layer4.3.conv1.weight"));
    assert!(!all.contains_key("layer1.0.conv3.bias"));
}

/// Variable names and shapes of timm's `legacy_xception(num_classes=5)`, here at width 1
/// (every width divided by 32, rounded up: 64 -> 2, 128 -> 4, 728 -> 23, 1024 -> 32,
/// 2048 -> 64). `block1` has no leading ReLU, so its `rep` indices are 0 (conv), 1 (BN),
/// 3, 4; the others' are 1, 2, 4, 5 (, 7, 8).
#[test]
fn xception_variable_names_follow_timm() {
    let m = Model::new(&spec(Backbone::Xception, 3, 71, 72, 5, 1), &Device::Cpu, 0).unwrap();
    let all = m.named_tensors().unwrap();
    for (name, shape) in [
        ("conv1.weight", &[1, 3, 3, 3][..]),
        ("bn1.running_mean", &[1]),
        ("conv2.weight", &[2, 1, 3, 3]),
        ("bn2.weight", &[2]),
        ("block1.skip.weight", &[4, 2, 1, 1]),
        ("block1.skipbn.running_mean", &[4]),
        ("block1.rep.0.conv1.weight", &[2, 1, 3, 3]),
        ("block1.rep.0.pointwise.weight", &[4, 2, 1, 1]),
        ("block1.rep.1.weight", &[4]),
        ("block1.rep.3.conv1.weight", &[4, 1, 3, 3]),
        ("block1.rep.4.running_var", &[4]),
        ("block2.rep.1.conv1.weight", &[4, 1, 3, 3]),
        ("block2.rep.2.bias", &[8]),
        ("block3.skip.weight", &[23, 8, 1, 1]),
        ("block4.rep.7.pointwise.weight", &[23, 23, 1, 1]),
        ("block11.rep.8.running_mean", &[23]),
        ("block12.rep.1.pointwise.weight", &[23, 23, 1, 1]),
        ("block12.rep.4.pointwise.weight", &[32, 23, 1, 1]),
        ("block12.skipbn.weight", &[32]),
        ("conv3.conv1.weight", &[32, 1, 3, 3]),
        ("conv3.pointwise.weight", &[48, 32, 1, 1]),
        ("bn3.running_var", &[48]),
        ("conv4.pointwise.weight", &[64, 48, 1, 1]),
        ("bn4.bias", &[64]),
        ("fc.weight", &[5, 64]),
        ("fc.bias", &[5]),
    ] {
        let t = all.get(name).unwrap_or_else(|| panic!("missing {name}"));
        assert_eq!(t.dims(), shape, "{name}");
    }
    for absent in [
        "conv1.bias",
        "block4.skip.weight",
        "block1.rep.2.weight",
        "block2.rep.0.conv1.weight",
        "block12.rep.7.pointwise.weight",
    ] {
        assert!(!all.contains_key(absent), "unexpected {absent}");
    }
    // 2 stem + 4 skip + 2 + 2 + 2 + 8 * 3 + 2 rep + 2 exit batch norms, 4 tensors each.
    let norms = all.keys().filter(|n| n.ends_with(".running_mean")).count();
    assert_eq!(norms, 40);
}

#[test]
fn xception_needs_keras_minimum_size() {
    let err = Model::new(&spec(Backbone::Xception, 3, 70, 80, 5, 1), &Device::Cpu, 0)
        .err()
        .expect("70 pixels are too few");
    assert!(err.to_string().contains("at least 71x71"), "{err}");
    assert!(Model::new(&spec(Backbone::Xception, 3, 80, 70, 5, 1), &Device::Cpu, 0).is_err());
    let m = Model::new(&spec(Backbone::Xception, 1, 71, 71, 5, 1), &Device::Cpu, 0).unwrap();
    let y = m.forward(&images(2, 1, 71, 71, 0), true).unwrap();
    assert_eq!(y.dims(), &[2, 5]);
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
            let (h, w) = fit_size(backbone, h, w);
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
fn bottleneck_resnet_imagenet_stem_and_backward() {
    let m = Model::new(&spec(Backbone::Resnet50, 3, 97, 100, 4, 1), &Device::Cpu, 1).unwrap();
    let all = m.named_tensors().unwrap();
    assert_eq!(all["conv1.weight"].dims(), &[1, 3, 7, 7]);
    assert_eq!(all["fc.weight"].dims(), &[4, 32]);
    let y = m.forward(&images(2, 3, 97, 100, 3), true).unwrap();
    assert_eq!(y.dims(), &[2, 4]);
    let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    for v in m.trainable_vars() {
        assert!(grads.get(v.as_tensor()).is_some());
    }
}

#[test]
fn every_trainable_var_gets_a_gradient() {
    for backbone in Backbone::ALL {
        let (h, w) = fit_size(backbone, 9, 10);
        let m = Model::new(&spec(backbone, 1, h, w, 3, 2), &Device::Cpu, 4).unwrap();
        let y = m.forward(&images(3, 1, h, w, 5), true).unwrap();
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
        let (h, w) = fit_size(backbone, 8, 9);
        let s = spec(backbone, 3, h, w, 4, 2);
        let a = Model::new(&s, &Device::Cpu, 11).unwrap();
        let b = Model::new(&s, &Device::Cpu, 11).unwrap();
        let c = Model::new(&s, &Device::Cpu, 12).unwrap();
        assert_eq!(var_values(&a), var_values(&b));
        assert_ne!(var_values(&a), var_values(&c));
        let x = images(3, 3, h, w, 6);
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
