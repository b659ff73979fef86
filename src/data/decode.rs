//! Decoding image files into fixed-size CHW `u8` pixels, in parallel, with per-file failures
//! turned into skip reasons rather than errors.
//!
//! Conversion rules:
//! - to 1 channel: luma of the colour image (the `image` crate's Rec. 709 weights); grey stays grey;
//! - to 3 channels: grey is replicated into R, G and B;
//! - alpha is dropped (not composited), as Keras/PIL `convert("RGB")` does, so transparent
//!   pixels take their stored colour; 16-bit images are scaled to 8 bits;
//! - resize to exactly `height` x `width` with a Triangle (bilinear, antialiased) filter,
//!   stretching if the aspect ratio differs (Keras' default); skipped when already that size.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits};

use super::integrity;

/// Target layout of decoded images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

/// Why one file was skipped: a short human reason.
pub(crate) type SkipReason = String;

/// The outcome for one file.
pub(crate) type Decoded = Result<Vec<u8>, SkipReason>;

/// Decodes one file into CHW bytes of `geom`, or says why it cannot be used.
pub(crate) fn decode_file(path: &Path, geom: Geometry) -> Result<Vec<u8>, SkipReason> {
    decode_bytes(&read_file(path)?, geom)
}

/// The file's bytes, or the skip reason a file that cannot be read gets.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, SkipReason> {
    std::fs::read(path).map_err(|e| format!("cannot read: {e}"))
}

/// The widest or tallest image decoded, in pixels: beyond it a file is skipped as too large.
pub(crate) const MAX_SIDE: u32 = 16_384;
/// The most memory one decoded image may take (before conversion and resizing), in bytes.
pub(crate) const MAX_DECODED_BYTES: u64 = 1 << 30;

/// Decodes PNG/JPEG bytes (format found from the content, not the file name).
///
/// Before decoding, the header's size is checked against [`MAX_SIDE`] and
/// [`MAX_DECODED_BYTES`] (so a decompression bomb costs nothing) and the file's structure is
/// checked for completeness (`integrity.rs`): the decoders fill a truncated JPEG with grey
/// and report success. Reasons start with what is wrong: `empty file`, `not a PNG/JPEG`,
/// `truncated PNG`/`truncated JPEG`, `corrupt PNG`/`corrupt JPEG`, `unsupported PNG`/
/// `unsupported JPEG`, `empty image` (0 pixels wide or high), `too large`.
pub(crate) fn decode_bytes(bytes: &[u8], geom: Geometry) -> Result<Vec<u8>, SkipReason> {
    Ok(to_chw(decode_image(bytes)?, geom))
}

/// The checks and decoding of [`decode_bytes`], without the conversion: the image at its own
/// size and in its decoded colour type (what `sweep data inspect` looks at).
pub(crate) fn decode_image(bytes: &[u8]) -> Result<DynamicImage, SkipReason> {
    if bytes.is_empty() {
        return Err("empty file".into());
    }
    let format = match image::guess_format(bytes) {
        Ok(f @ (ImageFormat::Png | ImageFormat::Jpeg)) => f,
        Ok(other) => {
            return Err(format!(
                "not a PNG/JPEG: content is {other:?}; convert it to PNG or JPEG"
            ))
        }
        Err(_) => {
            if let Some(reason) = integrity::cut_signature(bytes) {
                return Err(reason);
            }
            let head: String = bytes
                .iter()
                .take(8)
                .map(|&b| {
                    if b.is_ascii_graphic() || b == b' ' {
                        b as char
                    } else {
                        '.'
                    }
                })
                .collect();
            return Err(format!(
                "not a PNG/JPEG: unrecognised content starting {head:?}"
            ));
        }
    };
    let survey = if format == ImageFormat::Png {
        integrity::survey_png(bytes)
    } else {
        integrity::survey_jpeg(bytes)
    };
    // The size first: a bomb's header is all there is to it, and "too large" is the fix to make.
    if let (Some((w, h)), Some(need)) = (survey.size, survey.decoded_bytes()) {
        check_size(w, h, need)?;
    }
    if let Some(fault) = survey.fault {
        return Err(fault);
    }
    decode_checked(bytes, format)
}

/// Skips images with no pixels, wider or taller than [`MAX_SIDE`], or needing more than
/// [`MAX_DECODED_BYTES`] once decoded.
fn check_size(w: u32, h: u32, decoded_bytes: u64) -> Result<(), SkipReason> {
    if w == 0 || h == 0 {
        return Err(format!(
            "empty image: its header gives a size of {w}x{h} px"
        ));
    }
    if w > MAX_SIDE || h > MAX_SIDE {
        return Err(format!(
            "too large: {w}x{h} px, more than the {MAX_SIDE} px a side that are decoded; \
             downscale it"
        ));
    }
    if decoded_bytes > MAX_DECODED_BYTES {
        return Err(format!(
            "too large: {w}x{h} px need {:.1} GiB to decode, more than the {} GiB allowed per \
             image; downscale it",
            decoded_bytes as f64 / (1u64 << 30) as f64,
            MAX_DECODED_BYTES >> 30
        ));
    }
    Ok(())
}

/// Decodes a surveyed file under [`MAX_SIDE`] and [`MAX_DECODED_BYTES`], naming the kind of
/// failure.
fn decode_checked(bytes: &[u8], format: ImageFormat) -> Result<DynamicImage, SkipReason> {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    let mut reader = ImageReader::with_format(std::io::Cursor::new(bytes), format);
    reader.limits(limits);
    let name = if format == ImageFormat::Png {
        "PNG"
    } else {
        "JPEG"
    };
    let explain = |e: ImageError| match e {
        ImageError::Limits(e) => format!("too large: {e}; downscale it"),
        ImageError::Unsupported(e) => {
            format!("unsupported {name}: {e}; re-save it as a baseline JPEG or an 8-bit PNG")
        }
        ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            format!("truncated {name}: {e}")
        }
        // The png crate finds a compressed stream that stops short only as a format error.
        ImageError::Decoding(e)
            if e.to_string().contains("InsufficientInput")
                || e.to_string().contains("not have enough data") =>
        {
            format!("truncated {name}: its compressed image data ends before the image does")
        }
        e => format!("corrupt {name}: {e}"),
    };
    let decoder = reader.into_decoder().map_err(explain)?;
    let (w, h) = decoder.dimensions();
    check_size(w, h, decoder.total_bytes())?;
    DynamicImage::from_decoder(decoder).map_err(explain)
}

/// Converts to `geom.channels`, resizes, and lays the pixels out channel-major (CHW).
pub(crate) fn to_chw(img: DynamicImage, geom: Geometry) -> Vec<u8> {
    let (w, h) = (geom.width as u32, geom.height as u32);
    if geom.channels == 1 {
        let mut g = img.into_luma8();
        if g.dimensions() != (w, h) {
            g = image::imageops::resize(&g, w, h, FilterType::Triangle);
        }
        g.into_raw()
    } else {
        let mut rgb = img.into_rgb8();
        if rgb.dimensions() != (w, h) {
            rgb = image::imageops::resize(&rgb, w, h, FilterType::Triangle);
        }
        let hw = geom.height * geom.width;
        let raw = rgb.as_raw();
        let mut out = vec![0u8; 3 * hw];
        for (i, px) in raw.chunks_exact(3).enumerate() {
            out[i] = px[0];
            out[hw + i] = px[1];
            out[2 * hw + i] = px[2];
        }
        out
    }
}

/// `work` on one file, with a panicking codec (a bug on some malformed file) turned into a skip.
pub(crate) fn guarded<T>(
    work: impl FnOnce() -> Result<T, SkipReason> + std::panic::UnwindSafe,
) -> Result<T, SkipReason> {
    std::panic::catch_unwind(work)
        .unwrap_or_else(|_| Err("corrupt: the decoder crashed on this file".into()))
}

/// Decodes all `paths` with up to `threads` workers; results are in the order of `paths`
/// whatever the scheduling, so loading is deterministic.
pub(crate) fn decode_all(paths: &[PathBuf], geom: Geometry, threads: usize) -> Vec<Decoded> {
    map_files(paths, threads, |path| guarded(|| decode_file(path, geom)))
}

/// `work` on every path with up to `threads` workers, results in the order of `paths`. Each
/// worker keeps only `work`'s results, so what a file needs while it is worked on (its bytes,
/// its pixels) is freed before the next one.
pub(crate) fn map_files<T: Send>(
    paths: &[PathBuf],
    threads: usize,
    work: impl Fn(&Path) -> T + Sync,
) -> Vec<T> {
    let threads = threads.clamp(1, paths.len().max(1));
    let next = AtomicUsize::new(0);
    let mut parts: Vec<Vec<(usize, T)>> = Vec::new();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(path) = paths.get(i) else { break };
                        done.push((i, work(path)));
                    }
                    done
                })
            })
            .collect();
        for h in handles {
            // Workers catch decoder panics per file, so a join error cannot really happen;
            // if it does, the files it had done are worked on again below on this thread.
            parts.push(h.join().unwrap_or_default());
        }
    });
    let mut out: Vec<Option<T>> = (0..paths.len()).map(|_| None).collect();
    for (i, r) in parts.into_iter().flatten() {
        out[i] = Some(r);
    }
    out.into_iter()
        .zip(paths)
        .map(|(r, p)| r.unwrap_or_else(|| work(p)))
        .collect()
}

/// Worker threads for decoding: the machine's parallelism, at most 8.
pub(crate) fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::fixtures::*;

    const G1: Geometry = Geometry {
        channels: 1,
        height: 2,
        width: 3,
    };
    const G3: Geometry = Geometry {
        channels: 3,
        height: 2,
        width: 3,
    };

    #[test]
    fn grey_rgb_rgba_convert_to_one_and_three_channels() {
        let dir = tempfile::tempdir().unwrap();
        let grey = dir.path().join("g.png");
        save_grey(&grey, 3, 2, |x, y| (x * 10 + y * 100) as u8);
        assert_eq!(decode_file(&grey, G1).unwrap(), [0, 10, 20, 100, 110, 120]);
        assert_eq!(
            decode_file(&grey, G3).unwrap(),
            [0, 10, 20, 100, 110, 120].repeat(3)
        );

        let rgb = dir.path().join("c.png");
        save_rgb(&rgb, 3, 2, |x, y| [255, (x * 50) as u8, (y * 200) as u8]);
        let chw = decode_file(&rgb, G3).unwrap();
        assert_eq!(
            chw,
            [255, 255, 255, 255, 255, 255, 0, 50, 100, 0, 50, 100, 0, 0, 0, 200, 200, 200]
        );
        // Pure white and pure black stay exact under luma; red is darker than white.
        let white = dir.path().join("w.png");
        save_rgb(&white, 3, 2, |x, _| {
            if x == 0 {
                [255; 3]
            } else if x == 1 {
                [0; 3]
            } else {
                [255, 0, 0]
            }
        });
        let luma = decode_file(&white, G1).unwrap();
        assert_eq!((luma[0], luma[1]), (255, 0));
        assert!(luma[2] > 20 && luma[2] < 100, "{luma:?}");

        // Alpha is dropped: a fully transparent pixel keeps its stored colour.
        let rgba = dir.path().join("a.png");
        save_rgba(&rgba, 3, 2, |x, _| {
            [10 * x as u8, 20, 30, if x == 0 { 0 } else { 255 }]
        });
        let chw = decode_file(&rgba, G3).unwrap();
        assert_eq!(&chw[..6], [0, 10, 20, 0, 10, 20]);
        assert_eq!(&chw[6..12], [20; 6]);
        assert_eq!(decode_file(&rgba, G1).unwrap().len(), 6);
    }

    #[test]
    fn jpeg_decodes_approximately() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.JPEG");
        save_rgb(&p, 8, 8, |_, _| [200, 100, 50]);
        let chw = decode_file(
            &p,
            Geometry {
                channels: 3,
                height: 8,
                width: 8,
            },
        )
        .unwrap();
        for (c, want) in [200i32, 100, 50].into_iter().enumerate() {
            let v = chw[c * 64 + 27] as i32;
            assert!((v - want).abs() <= 4, "channel {c}: {v} vs {want}");
        }
    }

    #[test]
    fn resizes_to_the_requested_size_and_keeps_constant_images_constant() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.png");
        save_grey(&p, 16, 12, |_, _| 77);
        let g = Geometry {
            channels: 1,
            height: 5,
            width: 7,
        };
        assert_eq!(decode_file(&p, g).unwrap(), vec![77; 35]);
        let up = Geometry {
            channels: 3,
            height: 20,
            width: 30,
        };
        assert_eq!(decode_file(&p, up).unwrap(), vec![77; 1800]);
        // A left/right split survives downscaling in the right order.
        save_grey(&p, 8, 8, |x, _| if x < 4 { 0 } else { 255 });
        let half = decode_file(
            &p,
            Geometry {
                channels: 1,
                height: 2,
                width: 2,
            },
        )
        .unwrap();
        assert!(half[0] < 60 && half[1] > 195, "{half:?}");
    }

    #[test]
    fn bad_files_give_short_reasons() {
        assert_eq!(decode_bytes(b"", G1).unwrap_err(), "empty file");
        let e = decode_bytes(b"hello, I am text", G1).unwrap_err();
        assert!(e.starts_with("not a PNG/JPEG"), "{e}");
        let e = decode_bytes(b"GIF89a\x01\x00", G1).unwrap_err();
        assert!(e.starts_with("not a PNG/JPEG") && e.contains("Gif"), "{e}");
        let png = png_bytes(4, 4);
        let e = decode_bytes(&png[..png.len() / 2], G1).unwrap_err();
        assert_eq!(
            e,
            "truncated PNG: the file ends inside its image data (IDAT chunk)"
        );
    }

    #[test]
    fn parallel_decode_keeps_input_order() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<_> = (0..9u8)
            .map(|i| {
                let p = dir.path().join(format!("{i}.png"));
                if i != 4 {
                    save_grey(&p, 3, 2, move |_, _| i * 20);
                } else {
                    std::fs::write(&p, b"").unwrap();
                }
                p
            })
            .collect();
        for threads in [1, 2, 4] {
            let out = decode_all(&paths, G1, threads);
            for (i, r) in out.iter().enumerate() {
                match r {
                    Ok(px) => assert_eq!(px, &vec![i as u8 * 20; 6]),
                    Err(e) => assert_eq!((i, e.as_str()), (4, "empty file")),
                }
            }
        }
        assert!(decode_all(&[], G1, 2).is_empty());
    }
}
