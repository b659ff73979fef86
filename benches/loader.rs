//! The loader against the trainer (issue 12): images decoded (integrity check, decode,
//! resize) and augmented per second on ONE core, for PNG and JPEG at 32x32 and 224x224,
//! beside resnet18's training images per second at those sizes on `--threads` cores (default
//! 2). The loader keeps up when its per-core rate times the cores left to it covers training.
//!
//! The images are the bundled Fashion-MNIST subset, tinted to RGB (a per-image colour ramp,
//! so JPEG has chroma to code) and resized to each size, written once under
//! `target/bench-loader/` as PNG and as JPEG (quality 90).
//!
//! `cargo bench --bench loader -- [--threads N] [--seconds S]`; figures also as
//! `RESULT <what> <size> <img/s>`.
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::rngs::StdRng;
use rand::SeedableRng;
use sweep::data::preview::decode;
use sweep::model::{kernels, Backbone, ModelSpec};
use sweep::run::{Augment, Crop, Erase, Preset};

mod common;

const IMAGES: usize = 64;

/// `IMAGES` RGB images of `size` in `dir`, as PNG and JPEG; returns (png paths, jpeg paths).
fn images(dir: &Path, size: u32) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion-mini/train");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&src)
        .expect("bundled images")
        .flatten()
        .filter(|e| e.path().is_dir())
        .flat_map(|class| std::fs::read_dir(class.path()).expect("class").flatten())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    files.sort();
    std::fs::create_dir_all(dir).expect("bench folder");
    let (mut png, mut jpeg) = (Vec::new(), Vec::new());
    for (i, f) in files
        .iter()
        .step_by(files.len() / IMAGES)
        .take(IMAGES)
        .enumerate()
    {
        let (p, j) = (dir.join(format!("{i}.png")), dir.join(format!("{i}.jpg")));
        if !p.exists() || !j.exists() {
            let grey = image::open(f).expect("bundled image").to_luma8();
            let grey =
                image::imageops::resize(&grey, size, size, image::imageops::FilterType::Triangle);
            let rgb = image::RgbImage::from_fn(size, size, |x, y| {
                let v = grey.get_pixel(x, y).0[0] as u32;
                let (a, b) = (x * 255 / size, y * 255 / size);
                image::Rgb([
                    v as u8,
                    ((v * (255 - a)) / 255) as u8,
                    ((v * b) / 255) as u8,
                ])
            });
            rgb.save(&p).expect("write png");
            let mut out = std::fs::File::create(&j).expect("create jpeg");
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
                .encode_image(&rgb)
                .expect("write jpeg");
        }
        png.push(p);
        jpeg.push(j);
    }
    (png, jpeg)
}

/// Images per second of `work` over `files` on this thread, repeated for `seconds`.
fn rate(files: &[PathBuf], seconds: f64, mut work: impl FnMut(&Path)) -> f64 {
    work(&files[0]);
    let t = Instant::now();
    let mut n = 0;
    while n < files.len() || t.elapsed().as_secs_f64() < seconds {
        work(&files[n % files.len()]);
        n += 1;
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// resnet18's training images per second at `size` (batch 32, SGD), as `sweep run` trains.
fn train_rate(size: usize, seconds: f64) -> f64 {
    let spec = ModelSpec {
        backbone: Backbone::Resnet18,
        channels: 3,
        height: size,
        width: size,
        classes: 10,
        base_width: Backbone::Resnet18.default_width(),
    };
    let mut bench = common::SgdBench::new(&spec, 32).expect("model");
    bench.step().expect("step");
    let t = Instant::now();
    let mut steps = 0;
    while steps < 2 || t.elapsed().as_secs_f64() < seconds {
        bench.step().expect("step");
        steps += 1;
    }
    (steps * 32) as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    let (threads, seconds) = common::threads_and_seconds(3.0);
    kernels::set_threads(threads);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "sweep loader bench: decode + augment on 1 core; resnet18 training on {threads} thread(s); load average {}",
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    let keras = Augment {
        hflip: true,
        rotate: 15.0,
        shift: 0.1,
        zoom: 0.1,
        ..Augment::default()
    };
    let torchvision = Augment {
        hflip: true,
        crop: Some(Crop::default()),
        erase: Some(Erase::default()),
        preset: Some(Preset::TrivialAugment),
        ..Augment::default()
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-loader");
    for size in [32usize, 224] {
        let (png, jpeg) = images(&root.join(size.to_string()), size as u32);
        let mut rng = StdRng::seed_from_u64(1);
        let line = |what: &str, img_s: f64| {
            println!("{what:34} {size:>4}x{size:<4} {img_s:>10.1} img/s");
            println!("RESULT {} {size} {img_s:.1}", what.replace(' ', "_"));
        };
        for (format, files) in [("png", &png), ("jpeg", &jpeg)] {
            let decoded = rate(files, seconds, |f| {
                decode(f, 3, size, size).expect("decodes");
            });
            line(&format!("decode {format}"), decoded);
            for (name, set) in [("keras set", &keras), ("torchvision set", &torchvision)] {
                let both = rate(files, seconds, |f| {
                    let px = decode(f, 3, size, size).expect("decodes");
                    std::hint::black_box(set.apply(&px, 3, size, size, &mut rng));
                });
                line(&format!("decode {format} + {name}"), both);
            }
        }
        let train = train_rate(size, seconds.max(5.0));
        line(&format!("resnet18 training ({threads} threads)"), train);
    }
}
