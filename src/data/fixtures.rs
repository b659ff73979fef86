//! Test-only helpers: tiny PNG/JPEG fixtures written with the `image` crate.

use std::path::Path;

use image::{DynamicImage, GrayImage, RgbImage, RgbaImage};

fn save(path: &Path, img: DynamicImage) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    img.save(path).unwrap();
}

/// A grey image, pixel (x, y) = f(x, y); format from the extension (png/jpg/jpeg).
pub fn save_grey(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> u8) {
    save(
        path,
        DynamicImage::ImageLuma8(GrayImage::from_fn(w, h, |x, y| image::Luma([f(x, y)]))),
    );
}

/// An RGB image, pixel (x, y) = f(x, y).
pub fn save_rgb(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) {
    save(
        path,
        DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)))),
    );
}

/// An RGBA image (PNG only), pixel (x, y) = f(x, y).
pub fn save_rgba(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 4]) {
    save(
        path,
        DynamicImage::ImageRgba8(RgbaImage::from_fn(w, h, |x, y| image::Rgba(f(x, y)))),
    );
}

/// The bytes of a valid grey PNG (to truncate in tests).
pub fn png_bytes(w: u32, h: u32) -> Vec<u8> {
    let img = DynamicImage::ImageLuma8(GrayImage::from_fn(w, h, |x, y| {
        image::Luma([(x * 7 + y * 31) as u8])
    }));
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Png).unwrap();
    buf.into_inner()
}

/// Writes `classes` class folders under `root`, each with `n` grey w x h PNGs whose pixels
/// all equal the class index * 10 + the image index.
pub fn make_class_tree(root: &Path, classes: &[&str], n: usize, w: u32, h: u32) {
    for (c, name) in classes.iter().enumerate() {
        for i in 0..n {
            let v = (c * 10 + i) as u8;
            save_grey(
                &root.join(name).join(format!("{i:03}.png")),
                w,
                h,
                move |_, _| v,
            );
        }
    }
}

/// The bytes of a valid baseline RGB JPEG with some texture (so its scan data is not trivial),
/// written by the `image` crate at quality 90.
pub fn jpeg_bytes(w: u32, h: u32) -> Vec<u8> {
    let img = RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 37 + y * 11) as u8,
            (x * y * 3) as u8,
            if (x / 4 + y / 4) % 2 == 0 { 200 } else { 40 },
        ])
    });
    let mut buf = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, 90)
        .encode_image(&img)
        .unwrap();
    buf
}
