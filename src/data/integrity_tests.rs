//! Incomplete, damaged, empty and oversized image files, on real bytes: PNGs of the bundled
//! `data/fashion-mini`, JPEGs written by the `image` crate, and two JPEGs written by libjpeg-turbo
//! 2.1.5's `cjpeg` (`testdata/progressive.jpg`: `-progressive`, `testdata/restart.jpg`:
//! `-restart 1B`, both 48x32 RGB at quality 90, 4:2:0), cut and patched here.

use std::path::Path;

use super::*;
use crate::data::decode::{decode_bytes, decode_file, Geometry};
use crate::data::fixtures::jpeg_bytes;

const G: Geometry = Geometry {
    channels: 3,
    height: 8,
    width: 8,
};

const PROGRESSIVE: &[u8] = include_bytes!("testdata/progressive.jpg");
const RESTART: &[u8] = include_bytes!("testdata/restart.jpg");

fn skipped(bytes: &[u8]) -> String {
    decode_bytes(bytes, G).expect_err("the file should be skipped")
}

fn loads(bytes: &[u8]) {
    if let Err(e) = decode_bytes(bytes, G) {
        panic!("the intact file should load: {e}");
    }
}

fn fashion_png() -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/fashion-mini/train/0_tshirt_top/00000.png");
    std::fs::read(p).unwrap()
}

/// The PNG's chunks: (type, offset of the chunk's length field, data length).
fn png_chunks(b: &[u8]) -> Vec<([u8; 4], usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 8;
    while pos < b.len() {
        let len = u32::from_be_bytes(b[pos..pos + 4].try_into().unwrap()) as usize;
        out.push((b[pos + 4..pos + 8].try_into().unwrap(), pos, len));
        pos += 12 + len;
    }
    out
}

fn png_chunk(b: &[u8], ty: &[u8; 4]) -> (usize, usize) {
    png_chunks(b)
        .into_iter()
        .find(|(t, ..)| t == ty)
        .map(|(_, at, len)| (at, len))
        .unwrap()
}

/// A chunk with its length and CRC.
fn chunk(ty: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut typed = ty.to_vec();
    typed.extend_from_slice(data);
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&typed);
    out.extend_from_slice(&crc32(&typed).to_be_bytes());
    out
}

/// `png` with its IHDR replaced (width, height, bit depth, colour type), CRC recomputed.
fn png_with_header(png: &[u8], w: u32, h: u32, depth: u8, colour: u8) -> Vec<u8> {
    let (at, len) = png_chunk(png, b"IHDR");
    let mut data = png[at + 8..at + 8 + len].to_vec();
    data[..4].copy_from_slice(&w.to_be_bytes());
    data[4..8].copy_from_slice(&h.to_be_bytes());
    (data[8], data[9]) = (depth, colour);
    [&png[..at], &chunk(b"IHDR", &data), &png[at + 12 + len..]].concat()
}

/// Offsets of the JPEG's marker segments up to its first SOS: (marker code, offset of 0xFF).
fn jpeg_segments(b: &[u8]) -> Vec<(u8, usize)> {
    let mut out = Vec::new();
    let mut pos = 2;
    loop {
        assert_eq!(b[pos], 0xFF);
        out.push((b[pos + 1], pos));
        if b[pos + 1] == 0xDA {
            return out;
        }
        pos += 2 + usize::from(u16::from_be_bytes([b[pos + 2], b[pos + 3]]));
    }
}

fn jpeg_segment(b: &[u8], code: u8) -> usize {
    jpeg_segments(b)
        .into_iter()
        .find(|&(m, _)| m == code)
        .unwrap()
        .1
}

/// Where the first scan's entropy-coded data starts.
fn scan_data_start(b: &[u8]) -> usize {
    let sos = jpeg_segment(b, 0xDA);
    sos + 2 + usize::from(u16::from_be_bytes([b[sos + 2], b[sos + 3]]))
}

fn with_eoi(b: &[u8]) -> Vec<u8> {
    [b, &[0xFF, 0xD9]].concat()
}

const CUT_JPEG_DATA: &str =
    "truncated JPEG: the file ends before the image data does (no end-of-image marker)";

#[test]
fn truncated_jpegs_are_skipped_wherever_they_are_cut() {
    let j = jpeg_bytes(40, 24);
    assert_eq!(&j[j.len() - 2..], [0xFF, 0xD9]);
    loads(&j);
    let dqt = jpeg_segment(&j, 0xDB);
    let data = scan_data_start(&j);
    // In the scan data, right after its start, half-way, and one or two bytes short of the end:
    // the decoder fills all of these with grey and reports success.
    for cut in [
        data,
        data + 1,
        (data + j.len()) / 2,
        j.len() - 2,
        j.len() - 1,
    ] {
        assert_eq!(
            skipped(&j[..cut]),
            CUT_JPEG_DATA,
            "cut at {cut} of {}",
            j.len()
        );
    }
    assert_eq!(
        skipped(&j[..2]),
        "truncated JPEG: the file ends inside its signature"
    );
    assert_eq!(
        skipped(&j[..dqt + 10]),
        "truncated JPEG: the file ends inside its header (DQT segment)"
    );
    assert_eq!(
        skipped(&j[..data - 3]),
        "truncated JPEG: the file ends inside its header (SOS segment)"
    );
    // Cut, then closed with an end marker (what repair tools and Pillow's LOAD_TRUNCATED_IMAGES
    // write): the blocks are counted. 40x24 px in 3 channels (4:4:4) is 3 x 5x3 blocks.
    for cut in [data + 1, (data + j.len()) / 2, j.len() - 6] {
        let e = skipped(&with_eoi(&j[..cut]));
        assert!(
            e.starts_with("truncated JPEG: its image data stops after ")
                && e.ends_with(" of 45 blocks"),
            "cut at {cut}: {e}"
        );
    }
    // Bytes after the end marker (camera padding, a second image) are not the image's.
    loads(&[&j[..], &[0; 64]].concat());
}

#[test]
fn progressive_and_restart_jpegs_from_libjpeg_are_checked_scan_by_scan() {
    loads(PROGRESSIVE);
    loads(RESTART);
    loads(&[RESTART, b"trailing junk"].concat());

    // Progressive: cut inside the scan data, with and without an end marker after the cut.
    // The scans' data: 1070..1264 is the last one (luma AC refinement, 6x4 blocks), 319..382
    // the first luma AC scan, 427..456 a chroma AC scan (3x2 blocks).
    assert_eq!(skipped(&PROGRESSIVE[..1200]), CUT_JPEG_DATA);
    assert_eq!(
        skipped(&PROGRESSIVE[..PROGRESSIVE.len() - 2]),
        CUT_JPEG_DATA
    );
    let e = skipped(&with_eoi(&PROGRESSIVE[..1150]));
    assert!(
        e.starts_with("truncated JPEG: its image data stops after ")
            && e.ends_with(" of 24 blocks"),
        "{e}"
    );
    let e = skipped(&with_eoi(&PROGRESSIVE[..350]));
    assert!(
        e.starts_with("truncated JPEG: its image data stops after ")
            && e.ends_with(" of 24 blocks"),
        "{e}"
    );
    let e = skipped(&with_eoi(&PROGRESSIVE[..440]));
    assert!(
        e.starts_with("truncated JPEG: its image data stops after ") && e.ends_with(" of 6 blocks"),
        "{e}"
    );

    // Restart markers every MCU (3x2 MCUs of 6 blocks): a cut, and a gap inside one interval.
    let data = scan_data_start(RESTART);
    let rst: Vec<usize> = (data..RESTART.len() - 1)
        .filter(|&i| RESTART[i] == 0xFF && (0xD0..=0xD7).contains(&RESTART[i + 1]))
        .collect();
    assert_eq!(rst.len(), 5, "{rst:?}");
    assert_eq!(skipped(&RESTART[..rst[2] + 1]), CUT_JPEG_DATA);
    assert_eq!(
        skipped(&with_eoi(&RESTART[..rst[2]])),
        "truncated JPEG: its image data stops after 18 of 36 blocks"
    );
    let cut = (rst[0] + rst[1]) / 2;
    let gap = [&RESTART[..cut], &RESTART[rst[1]..]].concat();
    let e = skipped(&gap);
    assert!(
        e.starts_with("corrupt JPEG: restart interval 2 of its image data stops early, at block ")
            && e.ends_with(" of 36"),
        "{e}"
    );
}

#[test]
fn damaged_jpeg_data_and_unsupported_codings_are_named() {
    let j = jpeg_bytes(40, 24);
    // Sixteen 1 bits form no Huffman code: the decoder would stop there and fill with grey.
    let mid = (scan_data_start(&j) + j.len()) / 2;
    let ones = [
        &j[..mid],
        &[0xFF, 0x00, 0xFF, 0x00, 0xFF, 0x00],
        &j[mid + 6..],
    ]
    .concat();
    let e = skipped(&ones);
    assert!(
        e.starts_with("corrupt JPEG: its image data holds an invalid Huffman code, at block "),
        "{e}"
    );

    let sof = jpeg_segment(&j, 0xC0);
    let mut arithmetic = j.clone();
    arithmetic[sof + 1] = 0xC9;
    assert_eq!(
        skipped(&arithmetic),
        "unsupported JPEG: arithmetic coding (SOF9-15); re-save it as a baseline JPEG or a PNG"
    );
    let mut twelve_bit = j.clone();
    twelve_bit[sof + 4] = 12;
    assert_eq!(
        skipped(&twelve_bit),
        "unsupported JPEG: 12-bit samples; re-save it as a baseline JPEG or a PNG"
    );
}

#[test]
fn truncated_and_damaged_pngs_are_skipped_with_what_is_missing() {
    let p = fashion_png();
    loads(&p);
    let (idat, idat_len) = png_chunk(&p, b"IDAT");
    let (iend, _) = png_chunk(&p, b"IEND");
    let cases: [(&[u8], &str); 8] = [
        (&p[..5], "truncated PNG: the file ends inside its signature"),
        (
            &p[..8],
            "truncated PNG: the file ends after its signature, before its header (IHDR chunk)",
        ),
        (
            &p[..20],
            "truncated PNG: the file ends inside its header (IHDR chunk)",
        ),
        (
            &p[..idat],
            "truncated PNG: the file ends before its image data (IDAT chunk)",
        ),
        (
            &p[..idat + 8 + idat_len / 2],
            "truncated PNG: the file ends inside its image data (IDAT chunk)",
        ),
        // The pixels are all there, but the file was cut: these load without the check.
        (
            &p[..iend],
            "truncated PNG: the file ends before its end chunk (IEND)",
        ),
        (
            &p[..iend + 4],
            "truncated PNG: the file ends inside a chunk header",
        ),
        (
            &p[..p.len() - 1],
            "truncated PNG: the file ends inside its IEND chunk",
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(skipped(bytes), want, "cut at {}", bytes.len());
    }

    let mut flipped = p.clone();
    flipped[idat + 8 + idat_len / 2] ^= 0x10;
    assert_eq!(
        skipped(&flipped),
        "corrupt PNG: its IDAT chunk fails its CRC check (the bytes were changed)"
    );
    let mut flipped = p.clone();
    *flipped.last_mut().unwrap() ^= 1;
    assert_eq!(
        skipped(&flipped),
        "corrupt PNG: its IEND chunk fails its CRC check (the bytes were changed)"
    );

    // Complete chunks with valid CRCs around a cut compressed stream (a writer that stopped
    // half-way but closed the file properly): the decoder itself finds the data short.
    let zlib = &p[idat + 8..idat + 8 + idat_len];
    let short = [
        &p[..idat],
        &chunk(b"IDAT", &zlib[..zlib.len() / 2]),
        &p[iend..],
    ]
    .concat();
    let e = skipped(&short);
    assert!(e.starts_with("truncated PNG: "), "{e}");
    // The same data split over two IDAT chunks, the second one lost.
    let split = [
        &p[..idat],
        &chunk(b"IDAT", &zlib[..zlib.len() / 2]),
        &chunk(b"IDAT", &zlib[zlib.len() / 2..]),
        &p[iend..],
    ]
    .concat();
    loads(&split);
    let lost = [
        &p[..idat],
        &chunk(b"IDAT", &zlib[..zlib.len() / 2]),
        &p[iend..],
    ]
    .concat();
    assert!(skipped(&lost).starts_with("truncated PNG: "));

    // Trailing bytes after IEND are ignored.
    loads(&[&p[..], b"junk after the end"].concat());
}

#[test]
fn empty_and_oversized_headers_say_so_without_decoding() {
    let p = fashion_png();
    assert_eq!(
        skipped(&png_with_header(&p, 0, 28, 8, 0)),
        "empty image: its header gives a size of 0x28 px"
    );
    // Decompression bombs: a real file's header patched to claim a huge size. Skipped from the
    // header alone, so nothing near their size is ever allocated.
    assert_eq!(
        skipped(&png_with_header(&p, 100_000, 100_000, 8, 0)),
        "too large: 100000x100000 px, more than the 16384 px a side that are decoded; \
         downscale it"
    );
    assert_eq!(
        skipped(&png_with_header(&p, 16_000, 16_000, 16, 6)),
        "too large: 16000x16000 px need 1.9 GiB to decode, more than the 1 GiB allowed per \
         image; downscale it"
    );
    // Within both limits, the header is believed and the cut data found.
    assert!(skipped(&png_with_header(&p, 4000, 3000, 8, 2)).starts_with("truncated PNG: "));

    let j = jpeg_bytes(40, 24);
    let sof = jpeg_segment(&j, 0xC0);
    let with_size = |w: u16, h: u16| {
        let mut b = j.clone();
        b[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
        b[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
        b
    };
    assert_eq!(
        skipped(&with_size(0, 24)),
        "empty image: its header gives a size of 0x24 px"
    );
    assert_eq!(
        skipped(&with_size(40, 0)),
        "empty image: its header gives a size of 40x0 px"
    );
    assert_eq!(
        skipped(&with_size(65_535, 30_000)),
        "too large: 65535x30000 px, more than the 16384 px a side that are decoded; \
         downscale it"
    );
    // 16384 x 16384 RGB (768 MiB) is within both limits; its data is then found short.
    let e = skipped(&with_size(16_384, 16_384));
    assert!(
        e.starts_with("truncated JPEG: its image data stops after "),
        "{e}"
    );
}

#[test]
fn the_content_decides_the_format_not_the_extension() {
    // A guard: files named for the other format load (the decoder is chosen by content).
    let dir = tempfile::tempdir().unwrap();
    let (png_as_jpg, jpg_as_png) = (dir.path().join("a.jpg"), dir.path().join("b.png"));
    std::fs::write(&png_as_jpg, fashion_png()).unwrap();
    std::fs::write(&jpg_as_png, jpeg_bytes(16, 16)).unwrap();
    assert_eq!(decode_file(&png_as_jpg, G).unwrap().len(), 3 * 64);
    assert_eq!(decode_file(&jpg_as_png, G).unwrap().len(), 3 * 64);
}
