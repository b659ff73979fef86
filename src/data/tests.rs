//! Tests of `load` on folders written into temp dirs, and on the shipped `data/fashion-mini`.

use std::fs;
use std::path::{Path, PathBuf};

use super::fixtures::*;
use super::*;

fn spec(train: &Path, val_split: f64, seed: u64) -> DataSpec {
    DataSpec {
        train: train.to_path_buf(),
        test: None,
        val_split,
        height: 4,
        width: 4,
        channels: 1,
        seed,
        normalize: Default::default(),
    }
}

#[test]
fn classes_are_sorted_and_labels_follow_them() {
    let dir = tempfile::tempdir().unwrap();
    make_class_tree(dir.path(), &["zebra", "ant", "mole"], 2, 4, 4);
    fs::write(dir.path().join("manifest.csv"), b"path,label\n").unwrap();
    let d = load(&spec(dir.path(), 0.0, 1)).unwrap();
    assert_eq!(d.classes, ["ant", "mole", "zebra"]);
    assert_eq!(d.train.labels, [0, 0, 1, 1, 2, 2]);
    // "ant" was written as class 1, so its pixels are 10 and 11.
    assert_eq!(d.train.image(0).unwrap(), [10; 16]);
    assert_eq!(d.train.image(1).unwrap(), [11; 16]);
    assert!(d.val.is_empty() && d.test.is_none() && d.skipped.is_empty());
}

#[test]
fn converts_and_resizes_mixed_inputs() {
    let dir = tempfile::tempdir().unwrap();
    save_grey(&dir.path().join("a/g.png"), 8, 6, |_, _| 100);
    save_rgb(&dir.path().join("b/c.jpg"), 8, 8, |_, _| [255, 255, 255]);
    save_rgba(&dir.path().join("b/t.PNG"), 2, 2, |_, _| [0, 0, 255, 128]);
    let mut s = spec(dir.path(), 0.0, 0);
    (s.channels, s.height, s.width) = (3, 3, 5);
    let d = load(&s).unwrap();
    assert_eq!(
        (
            d.train.len(),
            d.train.channels,
            d.train.height,
            d.train.width
        ),
        (3, 3, 3, 5)
    );
    assert_eq!(d.train.images.len(), 3 * 3 * 3 * 5);
    assert_eq!(d.train.image(0).unwrap(), [100; 45]);
    assert!(d.train.image(1).unwrap().iter().all(|&v| v >= 250));
    assert_eq!(
        d.train.image(2).unwrap(),
        [[0u8; 15], [0; 15], [255; 15]].concat()
    );
    s.channels = 1;
    let d = load(&s).unwrap();
    assert_eq!(d.train.images.len(), 3 * 15);
}

#[test]
fn undecodable_files_are_skipped_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    make_class_tree(root, &["a", "b"], 3, 4, 4);
    let png = png_bytes(4, 4);
    fs::write(root.join("a/trunc.png"), &png[..png.len() - 20]).unwrap();
    // The JPEG decoder would fill the missing part with grey and report success.
    let jpeg = jpeg_bytes(16, 16);
    fs::write(root.join("a/trunc.jpg"), &jpeg[..jpeg.len() - 10]).unwrap();
    fs::write(root.join("b/text.jpg"), b"this is not a picture").unwrap();
    fs::write(root.join("b/zero.png"), b"").unwrap();
    fs::write(root.join("b/.DS_Store"), b"\0\0").unwrap();
    fs::write(root.join("b/readme.txt"), b"hi").unwrap();
    let d = load(&spec(root, 0.0, 0)).unwrap();
    assert_eq!(d.train.class_counts(2), [3, 3]);
    let got: Vec<(PathBuf, &str)> = d
        .skipped
        .iter()
        .map(|s| (s.path.clone(), s.reason.split(':').next().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            (root.join("a/trunc.jpg"), "truncated JPEG"),
            (root.join("a/trunc.png"), "truncated PNG"),
            (root.join("b/text.jpg"), "not a PNG/JPEG"),
            (root.join("b/zero.png"), "empty file"),
        ],
        "{:#?}",
        d.skipped
    );
}

#[test]
fn loose_root_images_are_skipped_and_bad_folders_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    make_class_tree(root, &["a", "b"], 1, 2, 2);
    save_grey(&root.join("stray.png"), 2, 2, |_, _| 0);
    let d = load(&spec(root, 0.5, 0)).unwrap();
    assert_eq!(d.skipped.len(), 1);
    assert!(
        d.skipped[0].reason.starts_with("not in a class sub-folder"),
        "{:?}",
        d.skipped
    );
    assert_eq!(
        (d.train.len(), d.val.len()),
        (2, 0),
        "one image per class stays in train"
    );

    fs::write(root.join("b/000.png"), b"junk").unwrap();
    let e = load(&spec(root, 0.0, 0)).unwrap_err().to_string();
    assert!(
        e.contains(&root.join("b").display().to_string()) && e.contains("no decodable image"),
        "{e}"
    );

    let one = tempfile::tempdir().unwrap();
    make_class_tree(one.path(), &["only"], 1, 2, 2);
    let e = load(&spec(one.path(), 0.0, 0)).unwrap_err().to_string();
    assert!(e.contains("only one class") && e.contains("only"), "{e}");

    let none = tempfile::tempdir().unwrap();
    let e = load(&spec(none.path(), 0.0, 0)).unwrap_err().to_string();
    assert!(e.contains("no class sub-folders:"), "{e}");
    let e = load(&spec(&root.join("a"), 0.0, 0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("holds 1 image file(s) directly"), "{e}");

    let e = load(&spec(&root.join("missing"), 0.0, 0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing") && e.contains("sweep file"), "{e}");

    let mut s = spec(root, 1.0, 0);
    assert!(load(&s).unwrap_err().to_string().contains("val_split"));
    (s.val_split, s.channels) = (0.0, 2);
    assert!(load(&s).unwrap_err().to_string().contains("channels"));
}

#[test]
fn stratified_split_is_deterministic_per_seed() {
    let dir = tempfile::tempdir().unwrap();
    make_class_tree(dir.path(), &["a", "b", "c"], 10, 2, 2);
    let d1 = load(&spec(dir.path(), 0.3, 42)).unwrap();
    assert_eq!(d1.train.class_counts(3), [7, 7, 7]);
    assert_eq!(d1.val.class_counts(3), [3, 3, 3]);
    let d2 = load(&spec(dir.path(), 0.3, 42)).unwrap();
    assert_eq!((&d1.train, &d1.val), (&d2.train, &d2.val));
    let d3 = load(&spec(dir.path(), 0.3, 43)).unwrap();
    assert_ne!(d1.val, d3.val);
    // Every pixel value identifies one image: the split is a partition of all 30.
    let ids = |s: &ImageSet| {
        (0..s.len())
            .map(|i| s.image(i).unwrap()[0])
            .collect::<Vec<_>>()
    };
    let (tr, va) = (ids(&d1.train), ids(&d1.val));
    assert!(tr.iter().all(|v| !va.contains(v)), "no overlap");
    let mut all: Vec<u8> = tr.into_iter().chain(va).collect();
    all.sort_unstable();
    let want: Vec<u8> = (0..3)
        .flat_map(|c| (0..10).map(move |i| c * 10 + i))
        .collect();
    assert_eq!(all, want);
}

#[test]
fn test_folder_must_have_the_same_classes() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test) = (dir.path().join("train"), dir.path().join("test"));
    make_class_tree(&train, &["cat", "dog", "emu"], 1, 2, 2);
    make_class_tree(&test, &["cat", "dog", "fox"], 1, 2, 2);
    let mut s = spec(&train, 0.0, 0);
    s.test = Some(test.clone());
    let e = load(&s).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("train") && msg.contains(&test.display().to_string()),
        "{msg}"
    );
    assert!(
        msg.contains("missing in test: [emu]") && msg.contains("only in test: [fox]"),
        "{msg}"
    );
    assert!(matches!(e, DataError::ClassMismatch { .. }));

    fs::rename(test.join("fox"), test.join("emu")).unwrap();
    let d = load(&s).unwrap();
    let t = d.test.unwrap();
    assert_eq!(t.labels, [0, 1, 2]);
    assert_eq!(
        t.image(2).unwrap(),
        [20; 16],
        "test 'emu' (written as class 2) gets label 2"
    );
}

#[test]
fn fashion_mini_train_loads_completely() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion-mini");
    let mut s = spec(&root.join("train"), 0.0, 0);
    (s.height, s.width, s.test) = (28, 28, Some(root.join("test")));
    let d = load(&s).unwrap();
    assert_eq!(d.classes.len(), 10);
    assert_eq!(d.classes[0], "0_tshirt_top");
    assert_eq!(d.train.class_counts(10), [200; 10]);
    assert_eq!(d.test.as_ref().unwrap().class_counts(10), [50; 10]);
    assert!(d.skipped.is_empty(), "{:?}", d.skipped);
    assert!(d.train.images.contains(&255) && d.train.images.contains(&0));
}

/// Past the memory budget the sets stream from their files: the same images, labels and
/// skipped files, and batches equal to the in-memory ones (plain, augmented, on several
/// threads); a file gone since the run started is named.
#[test]
fn streamed_sets_give_the_batches_cached_sets_give() {
    use rand::SeedableRng;
    let dir = tempfile::tempdir().unwrap();
    // Gradients (a flat image would hide the augmentation).
    for (c, class) in ["a", "b", "c"].iter().enumerate() {
        fs::create_dir_all(dir.path().join(class)).unwrap();
        for i in 0..5u32 {
            let img = image::GrayImage::from_fn(6, 6, |x, y| {
                image::Luma([(x * 40 + y * 7 + i * 3 + c as u32 * 11) as u8])
            });
            img.save(dir.path().join(class).join(format!("{i}.png")))
                .unwrap();
        }
    }
    fs::write(dir.path().join("b").join("broken.png"), b"not a png").unwrap();
    let mut s = spec(dir.path(), 0.2, 3);
    (s.height, s.width) = (6, 6);
    let cached = load_within(&s, u64::MAX).unwrap();
    let streamed = load_within(&s, 0).unwrap();
    assert!(!cached.train.is_streamed() && streamed.train.is_streamed());
    assert!(streamed.train.images.is_empty(), "nothing decoded is kept");
    assert_eq!(cached.train.labels, streamed.train.labels);
    assert_eq!(cached.val.labels, streamed.val.labels);
    assert_eq!(cached.skipped, streamed.skipped);
    let idx: Vec<usize> = (0..cached.train.len()).rev().collect();
    let aug = Augment {
        hflip: true,
        rotate: 20.0,
        ..Augment::default()
    };
    for threads in [1, 3] {
        let plain = |set: &ImageSet| set.host_batch_on(&idx, None, threads).unwrap();
        assert_eq!(plain(&cached.train), plain(&streamed.train));
        let augmented = |set: &ImageSet| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(9);
            set.host_batch_on(&idx, Some((&aug, &mut rng)), threads)
                .unwrap()
        };
        assert_eq!(augmented(&cached.train), augmented(&streamed.train));
    }
    // A file removed after loading: the batch that needs it says which.
    let gone = streamed.train.files[0].clone();
    fs::remove_file(&gone).unwrap();
    let e = streamed
        .train
        .host_batch(&[0], None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&gone.display().to_string()) && e.contains("restore the file"),
        "{e}"
    );
}

#[test]
fn cache_budgets_read_with_units() {
    assert_eq!(parse_bytes("123"), Some(123));
    assert_eq!(parse_bytes("64K"), Some(64 << 10));
    assert_eq!(parse_bytes("512mb"), Some(512 << 20));
    assert_eq!(parse_bytes("8 GiB"), Some(8 << 30));
    assert_eq!(parse_bytes("lots"), None);
    assert!(cache_budget() > 0);
}
