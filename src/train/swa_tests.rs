//! SWA in the real learner on a tiny cnn: the average of known weights, and batch-norm
//! statistics measured anew as the plain average over a pass (torch's `update_bn`).
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Tensor};

use super::learner::{CandleLearner, Learner};
use crate::sweep::Sweep;

fn learner(dir: &Path, backbone: &str) -> CandleLearner {
    crate::train::balance_tests::imbalanced(&dir.join("data"), &[6, 6]);
    let text = format!(
        "[data]\ntrain = \"data\"\nimage_size = 10\nchannels = 1\nval_split = 0.2\n\
         [train]\nbackbone = \"{backbone}\"\nwidth = 4\nepochs = 3\nbatch_size = 4\n\
         swa = {{ start_epoch = 2 }}\n"
    );
    let sweep = Sweep::from_str(&text, &dir.join("s.toml")).unwrap();
    let run = sweep.runs().remove(0);
    let data = crate::data::load(&sweep.resolve_data(&run.config.data)).unwrap();
    CandleLearner::new(&run.config, 4, Arc::new(data), &Device::Cpu).unwrap()
}

/// Every variable but the running statistics set to `v`.
fn set_all(l: &CandleLearner, v: f32) -> Vec<String> {
    let named = l.model().named_tensors().unwrap();
    let values: HashMap<String, Tensor> = named
        .iter()
        .filter(|(n, _)| !n.contains("running_"))
        .map(|(n, t)| (n.clone(), (t.zeros_like().unwrap() + v as f64).unwrap()))
        .collect();
    l.model().set_named(&values).unwrap();
    values.into_keys().collect()
}

#[test]
fn the_average_of_known_weights_replaces_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = learner(dir.path(), "cnn");
    // Three epochs' weights: 1, then 3, then 8: the running average is 4.
    for (count, v) in [(1, 1.0), (2, 3.0), (3, 8.0)] {
        set_all(&l, v);
        l.swa_update(count).unwrap();
    }
    // Saved with the resume state and read back, it is the same average.
    let file = dir.path().join("swa.safetensors");
    l.swa_save(&file).unwrap();
    let mut again = learner(dir.path(), "cnn");
    again.swa_load(&file).unwrap();
    let names = set_all(&again, 0.0);
    assert!(again.swa_finish().unwrap());
    let after = again.model().named_tensors().unwrap();
    for name in &names {
        let values = after[name].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(
            values.iter().all(|&x| (x - 4.0).abs() < 1e-5),
            "{name}: {values:?}"
        );
    }
    // Nothing averaged, nothing to finish.
    let mut none = learner(dir.path(), "cnn");
    assert!(!none.swa_finish().unwrap());
}

#[test]
fn batch_norm_statistics_are_the_plain_average_over_the_pass() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = learner(dir.path(), "resnet18");
    l.swa_update(1).unwrap();
    assert!(l.swa_finish().unwrap());
    let stats = l.model().named_tensors().unwrap();
    let mean = stats["bn1.running_mean"].to_vec1::<f32>().unwrap();
    // The first batch norm sees conv1's output: its running mean is the average of the
    // batch means of the pass (batches of 4 over the 10 training images: 4, 4, 2), which is
    // the mean over all images when the batches are equal; here it is at least no longer the
    // reset value, and recomputing gives the same numbers (no momentum left over).
    assert!(mean.iter().any(|&m| m != 0.0), "{mean:?}");
    let mut l2 = learner(dir.path(), "resnet18");
    l2.swa_update(1).unwrap();
    assert!(l2.swa_finish().unwrap());
    let again = l2.model().named_tensors().unwrap()["bn1.running_mean"]
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(mean, again);
}

/// The momentum override at the kernel: three batches at 1/1, 1/2, 1/3 leave the running
/// mean at the plain average of the batch means (torch's `momentum=None`), and the layer's
/// own momentum (0.1) comes back afterwards.
#[test]
fn one_over_k_momentum_is_the_cumulative_average() {
    use crate::model::kernels::{norm, Activation};
    let dev = Device::Cpu;
    let vm = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&vm, candle_core::DType::F32, &dev);
    let cfg = candle_nn::BatchNormConfig {
        eps: 1e-5,
        remove_mean: true,
        affine: true,
        momentum: 0.1,
    };
    let bn = candle_nn::batch_norm(1, cfg, vb).unwrap();
    // Batches of one channel, 2 x 2 values, with means 2, 6 and 10.
    for (k, mean) in [(1.0, 2.0f32), (2.0, 6.0), (3.0, 10.0)] {
        let x = Tensor::new(
            &[[[[mean - 1.0, mean + 1.0], [mean - 1.0, mean + 1.0]]]],
            &dev,
        )
        .unwrap();
        norm::with_momentum(1.0 / k, || {
            norm::batch_norm(&x, &bn, true, Activation::Identity).unwrap()
        });
    }
    let running = bn.running_mean().to_vec1::<f32>().unwrap();
    assert!((running[0] - 6.0).abs() < 1e-5, "{running:?}");
    assert_eq!(norm::momentum(&bn), 0.1);
}
