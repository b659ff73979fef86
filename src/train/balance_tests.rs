//! Class balance in the real learner, on a 20:5:2 split of the bundled images (cnn, 10x10):
//! how many images an epoch trains on per mode, that every image the epoch draws is real, and
//! what a wrong class name in `augment_classes` says.
use std::path::Path;
use std::sync::Arc;

use candle_core::Device;

use super::learner::{BatchProgress, CandleLearner, Learner};
use crate::sweep::Sweep;

/// Copies `counts[k]` images of the k-th bundled class (sorted) into `dest/<class>/`.
pub(crate) fn imbalanced(dest: &Path, counts: &[usize]) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion-mini/train");
    let mut classes: Vec<_> = std::fs::read_dir(&src)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    classes.sort();
    for (class, &n) in classes.iter().zip(counts) {
        let mut files: Vec<_> = std::fs::read_dir(class)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        let to = dest.join(class.file_name().unwrap());
        std::fs::create_dir_all(&to).unwrap();
        for f in files.iter().take(n) {
            std::fs::copy(f, to.join(f.file_name().unwrap())).unwrap();
        }
    }
}

/// One learner per `balance` value of a sweep over the 20:5:2 folder, with `extra` appended
/// to the sweep file. The stratified validation split takes 4, 1 and 1 images: the training
/// split is 16:4:1.
fn learners(dir: &Path, extra: &str) -> Vec<(String, Result<CandleLearner, String>)> {
    let text = format!(
        "[data]\ntrain = \"data\"\nimage_size = 10\nchannels = 1\nval_split = 0.2\n\
         [train]\nbackbone = \"cnn\"\nwidth = 4\nepochs = 1\nbatch_size = 4\n\
         [grid]\nbalance = [\"none\", \"oversample\", \"undersample\", \"clip\", \"class_weights\"]\n{extra}"
    );
    let sweep = Sweep::from_str(&text, &dir.join("s.toml")).unwrap();
    sweep
        .runs()
        .into_iter()
        .map(|run| {
            let data = crate::data::load(&sweep.resolve_data(&run.config.data)).unwrap();
            let l = CandleLearner::new(&run.config, 4, Arc::new(data), &Device::Cpu)
                .map_err(|e| e.to_string());
            (run.label, l)
        })
        .collect()
}

#[test]
fn each_mode_trains_on_the_images_it_promises() {
    let dir = tempfile::tempdir().unwrap();
    imbalanced(&dir.path().join("data"), &[20, 5, 2]);
    let extra = "[balance]\nclip = [4, 10]\n";
    // Images per epoch: none 21, oversample 3 x 16, undersample 3 x 1, clip 10 + 4 + 4,
    // class_weights 21 (weights only). Batches of 4.
    let want = [
        ("balance=none", 21),
        ("balance=oversample", 48),
        ("balance=undersample", 3),
        ("balance=clip", 18),
        ("balance=class_weights", 21),
    ];
    for ((label, learner), (name, images)) in learners(dir.path(), extra).into_iter().zip(want) {
        assert_eq!(label, name);
        let mut l = learner.unwrap();
        assert_eq!(l.batches_per_epoch(), usize::div_ceil(images, 4), "{label}");
        let mut seen = 0;
        let (loss, _) = l
            .train_epoch(1, &|_| 0.001, &mut |p: BatchProgress| seen = p.images)
            .unwrap();
        // A lone last image waits for the next epoch (batch norm cannot train on one).
        let trained = if images % 4 == 1 { images - 1 } else { images };
        assert_eq!(seen, trained, "{label}: images trained in the epoch");
        assert!(loss.is_finite(), "{label}: {loss}");
    }
}

#[test]
fn augment_classes_repeat_a_class_and_a_wrong_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    imbalanced(&dir.path().join("data"), &[20, 5, 2]);
    let classes: Vec<String> = {
        let mut c: Vec<String> = std::fs::read_dir(dir.path().join("data"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        c.sort();
        c
    };
    let extra = format!(
        "[balance]\naugment_classes = {{ \"{}\" = 3 }}\n",
        classes[2]
    );
    let all = learners(dir.path(), &extra);
    // none: 16 + 4 + 3 x 1; undersample: 1 + 1 + 3 x 1.
    assert_eq!(
        all[0].1.as_ref().unwrap().batches_per_epoch(),
        23usize.div_ceil(4)
    );
    assert_eq!(
        all[2].1.as_ref().unwrap().batches_per_epoch(),
        5usize.div_ceil(4)
    );
    let extra = "[balance]\naugment_classes = { coat = 3 }\n";
    let (_, refused) = learners(dir.path(), extra).remove(0);
    let e = refused.err().unwrap();
    assert!(
        e.contains("names the class \"coat\", which the training data does not have"),
        "{e}"
    );
    assert!(e.contains(&classes[0]), "{e}");
}
