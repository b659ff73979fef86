//! `inspect` on tiny images written into a temporary folder: counts, sizes, colour modes,
//! unreadable files, grey images in a colour set, and duplicates by pixels, not bytes.

use std::path::Path;

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ImageEncoder, RgbImage};

use super::*;
use crate::data::decode::{decode_file, Geometry};
use crate::data::fixtures::{png_bytes, save_grey, save_rgb};

/// A 4x4 RGB image whose pixels depend on `seed`, in colour.
fn colour(seed: u8) -> impl Fn(u32, u32) -> [u8; 3] {
    move |x, y| [seed, (x * 40) as u8, ((y * 60) as u8).wrapping_add(seed)]
}

fn paths(files: &[PathBuf], root: &Path) -> Vec<String> {
    files
        .iter()
        .map(|p| p.strip_prefix(root).unwrap().display().to_string())
        .collect()
}

fn located(group: &DuplicateGroup, root: &Path) -> Vec<(String, String, String)> {
    group
        .files
        .iter()
        .map(|l| {
            let rel = l.path.strip_prefix(root).unwrap().display().to_string();
            (l.split.to_string(), l.class.clone(), rel)
        })
        .collect()
}

#[test]
fn counts_per_class_and_the_imbalance_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (class, n, seed) in [("cat", 6, 0), ("dog", 2, 80), ("eel", 3, 160)] {
        for i in 0..n {
            save_rgb(
                &root.join(format!("{class}/{i}.png")),
                4,
                4,
                colour(seed + i * 9),
            );
        }
    }
    std::fs::create_dir_all(root.join("fox")).unwrap(); // an empty class
    save_rgb(&root.join("loose.png"), 4, 4, colour(1));
    let found = inspect_with(root, None, 2).unwrap();
    let train = &found.splits[0];
    let counts: Vec<_> = train
        .classes
        .iter()
        .map(|c| (c.name.as_str(), c.images))
        .collect();
    assert_eq!(counts, [("cat", 6), ("dog", 2), ("eel", 3), ("fox", 0)]);
    assert_eq!((train.images(), train.files()), (11, 11));
    assert_eq!(
        train.imbalance_ratio(),
        Some(3.0),
        "6 / 2, the empty class left out"
    );
    assert_eq!(paths(&train.loose, root), ["loose.png"]);
    assert_eq!(found.problems(), 0);
}

#[test]
fn a_truncated_png_is_unreadable_with_the_reason_training_gives() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    save_grey(&root.join("a/ok.png"), 4, 4, |x, y| (x + y) as u8);
    save_grey(&root.join("b/ok.png"), 4, 4, |x, _| x as u8);
    let png = png_bytes(4, 4);
    let cut = root.join("b/cut.png");
    std::fs::write(&cut, &png[..png.len() - 20]).unwrap();
    let found = inspect_with(root, None, 2).unwrap();
    let train = &found.splits[0];
    let geom = Geometry {
        channels: 3,
        height: 4,
        width: 4,
    };
    let reason = decode_file(&cut, geom).unwrap_err();
    assert!(reason.starts_with("truncated PNG"), "{reason}");
    assert_eq!(
        train.unreadable,
        [Unreadable {
            path: cut,
            class: "b".into(),
            reason,
        }]
    );
    assert_eq!((train.classes[1].files, train.classes[1].images), (2, 1));
    assert_eq!(found.problems(), 1);
}

#[test]
fn grey_images_in_a_colour_set_are_named_by_kind() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for i in 0..4 {
        save_rgb(&root.join(format!("a/{i}.png")), 4, 4, colour(i * 7));
    }
    save_grey(&root.join("a/stored.png"), 4, 4, |x, y| (x * 9 + y) as u8);
    save_rgb(&root.join("b/flat.png"), 4, 4, |x, y| {
        [(x * 30 + y) as u8; 3]
    });
    let train = &inspect_with(root, None, 2).unwrap().splits[0];
    assert_eq!(paths(&train.stored_grey, root), ["a/stored.png"]);
    assert_eq!(paths(&train.grey_pixels, root), ["b/flat.png"]);
    assert_eq!(train.colour_images, 4);
    let modes: Vec<_> = train.modes.iter().map(|(m, n)| (m.as_str(), *n)).collect();
    assert_eq!(modes, [("L8", 1), ("Rgb8", 5)]);

    // Mostly grey: not a colour set, nothing to point out.
    for i in 0..6 {
        save_grey(&root.join(format!("b/g{i}.png")), 4, 4, move |x, _| {
            x as u8 + i
        });
    }
    let train = &inspect_with(root, None, 2).unwrap().splits[0];
    assert!(train.stored_grey.is_empty() && train.grey_pixels.is_empty());
    assert_eq!(train.modes["L8"], 7);
}

#[test]
fn sizes_most_common_first_with_the_smallest_and_largest() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for i in 0..3 {
        save_rgb(&root.join(format!("a/{i}.png")), 4, 4, colour(i));
    }
    save_rgb(&root.join("b/wide.png"), 8, 2, colour(0));
    save_rgb(&root.join("b/big.png"), 8, 8, colour(0));
    save_rgb(&root.join("b/small.jpg"), 3, 2, colour(0));
    let train = &inspect_with(root, None, 2).unwrap().splits[0];
    let sizes: Vec<_> = train
        .sizes
        .iter()
        .map(|s| (s.width, s.height, s.count))
        .collect();
    assert_eq!(sizes, [(4, 4, 3), (3, 2, 1), (8, 2, 1), (8, 8, 1)]);
    let smallest = train.smallest.as_ref().unwrap();
    assert_eq!((smallest.width, smallest.height), (3, 2));
    assert!(smallest.path.ends_with("b/small.jpg"));
    let largest = train.largest.as_ref().unwrap();
    assert_eq!((largest.width, largest.height), (8, 8));
}

/// The same pixels PNG-encoded another way: other bytes.
fn save_png_other_encoding(path: &Path, img: &RgbImage) {
    let mut bytes = Vec::new();
    PngEncoder::new_with_quality(&mut bytes, CompressionType::Best, FilterType::Paeth)
        .write_image(img.as_raw(), 4, 4, image::ExtendedColorType::Rgb8)
        .unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn duplicates_by_pixels_across_classes_and_across_train_and_test() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test) = (dir.path().join("train"), dir.path().join("test"));
    let same = colour(77);
    save_rgb(&train.join("cat/a.png"), 4, 4, &same);
    save_png_other_encoding(
        &train.join("dog/copy.png"),
        &RgbImage::from_fn(4, 4, |x, y| image::Rgb(same(x, y))),
    );
    let (a, b) = (train.join("cat/a.png"), train.join("dog/copy.png"));
    assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    // Copies within one class are only counted.
    save_rgb(&train.join("cat/b.png"), 4, 4, colour(5));
    save_rgb(&train.join("cat/b2.png"), 4, 4, colour(5));
    save_rgb(&train.join("dog/c.png"), 4, 4, colour(9));
    // The test folder holds dog/c.png's pixels (a leak, same class), and a new image.
    save_rgb(&test.join("dog/leak.png"), 4, 4, colour(9));
    save_rgb(&test.join("cat/new.png"), 4, 4, colour(200));

    let found = inspect_with(&train, Some(&test), 2).unwrap();
    let root = dir.path();
    let conflicts: Vec<_> = found
        .label_conflicts
        .iter()
        .map(|g| located(g, root))
        .collect();
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        conflicts,
        [[
            s("train", "cat", "train/cat/a.png"),
            s("train", "dog", "train/dog/copy.png")
        ]]
    );
    let leaks: Vec<_> = found.leaks.iter().map(|g| located(g, root)).collect();
    assert_eq!(
        leaks,
        [[
            s("train", "dog", "train/dog/c.png"),
            s("test", "dog", "test/dog/leak.png")
        ]]
    );
    assert_eq!(found.splits[0].duplicates_within_class, 1);
    assert_eq!(found.splits[1].duplicates_within_class, 0);
    assert_eq!(found.problems(), 2);
}

#[test]
fn a_grey_png_and_an_rgb_png_of_the_same_grey_pixels_are_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    save_grey(&root.join("a/grey.png"), 4, 4, |x, y| (x * 50 + y) as u8);
    save_rgb(&root.join("b/rgb.png"), 4, 4, |x, y| {
        [(x * 50 + y) as u8; 3]
    });
    // Same pixels, other size: not a duplicate.
    save_grey(&root.join("b/tall.png"), 2, 8, |x, y| {
        ((x + 2 * (y % 2)) * 50 + y / 2) as u8
    });
    let found = inspect_with(root, None, 2).unwrap();
    assert_eq!(found.label_conflicts.len(), 1);
    assert_eq!(found.label_conflicts[0].files.len(), 2);
}

/// CRC-32 as PNG uses it, bit by bit.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                0xEDB8_8320 ^ (crc >> 1)
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn chunk(ty: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let typed = [&ty[..], data].concat();
    let len = (data.len() as u32).to_be_bytes();
    [&len[..], &typed, &crc32(&typed).to_be_bytes()].concat()
}

/// An 8-bit grey PNG turned into an indexed one: colour type 3 and a 256-colour palette, the
/// grey values becoming palette indices.
fn palette_png() -> Vec<u8> {
    let grey = png_bytes(4, 4);
    let ihdr_end = 8 + 12 + 13;
    let mut ihdr = grey[16..ihdr_end - 4].to_vec();
    ihdr[9] = 3;
    let palette: Vec<u8> = (0..=255u8).flat_map(|i| [i, 255 - i, 40]).collect();
    [
        &grey[..8],
        &chunk(b"IHDR", &ihdr),
        &chunk(b"PLTE", &palette),
        &grey[ihdr_end..],
    ]
    .concat()
}

#[test]
fn an_indexed_png_is_counted_as_palette() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("a")).unwrap();
    std::fs::write(root.join("a/p.png"), palette_png()).unwrap();
    let train = &inspect_with(root, None, 1).unwrap().splits[0];
    assert!(train.unreadable.is_empty(), "{:?}", train.unreadable);
    assert_eq!(train.modes.get("palette"), Some(&1));
    assert_eq!(train.colour_images, 1);
}

#[test]
fn a_folder_without_class_sub_folders_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    save_grey(&dir.path().join("x.png"), 4, 4, |_, _| 1);
    let e = inspect_with(dir.path(), None, 1).unwrap_err().to_string();
    assert!(e.contains("no class sub-folders"), "{e}");
}
