//! Is an image file whole? Container checks that run before any pixel is decoded.
//!
//! The decoders are lenient: `zune-jpeg` (behind the `image` crate, which turns its strict mode
//! off) fills whatever a truncated or damaged JPEG lacks with grey and reports success, and the
//! `png` crate stops reading once it has its pixels, so a PNG cut before its end chunk loads. A
//! file in that state is a copy that did not finish, and training on it teaches the model grey
//! blocks, so this module reads the container itself and names what is missing:
//!
//! - PNG: the signature, then every chunk whole, with a correct CRC (as libpng does for critical
//!   chunks and Pillow for all of them), from IHDR to IEND; bytes after IEND are ignored.
//! - JPEG: SOI, every marker segment whole, every scan's entropy-coded data followed by a marker,
//!   and an EOI marker after the last scan (libjpeg warns "Premature end of JPEG file" without one
//!   and Pillow raises "image file is truncated"); bytes after EOI (camera padding, a second
//!   embedded image) are ignored. Every Huffman-coded scan (baseline, extended sequential and
//!   progressive, including progressive refinement scans) is also followed code by code, so a scan
//!   that stops short and is closed with an end marker anyway (what a repair tool or Pillow's
//!   `LOAD_TRUNCATED_IMAGES` writes), a restart interval with a gap, or a code its tables lack is
//!   found too (libjpeg: "Corrupt JPEG data: premature end of data segment", "found marker 0xd9
//!   instead of RST", "bad Huffman code"). Codings the decoder does not have (arithmetic,
//!   lossless, hierarchical, 12-bit) are named as unsupported.
//!
//! Anything this module does not understand is left to the decoder: it only reports faults it is
//! sure of, so that a valid file is not refused here. What it cannot see: a progressive JPEG cut
//! exactly between two scans and closed with EOI is a valid JPEG with fewer refinement passes, and
//! a PNG whose compressed stream stops short inside whole chunks is found by the decoder (see
//! `decode.rs`).

#[cfg(test)]
#[path = "integrity_tests.rs"]
mod tests;

/// What a file's header says about its size, and what is wrong with the file, if anything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Survey {
    /// Width and height from the header (PNG IHDR, JPEG SOF), when the file gets that far.
    pub size: Option<(u32, u32)>,
    /// Bytes per pixel that decoding takes (the `image` crate's output layout, plus a progressive
    /// JPEG's coefficients), for the memory estimate.
    pub bytes_per_pixel: u64,
    /// Why the file is incomplete or damaged: a skip reason.
    pub fault: Option<String>,
}

impl Survey {
    /// Bytes decoding takes, from the header alone.
    pub fn decoded_bytes(&self) -> Option<u64> {
        self.size
            .map(|(w, h)| u64::from(w) * u64::from(h) * self.bytes_per_pixel)
    }
}

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
const JPEG_SOI: [u8; 3] = [0xFF, 0xD8, 0xFF];

/// A reason when `bytes` are the first bytes of a PNG or JPEG signature and nothing more (too
/// short for the format to be recognised).
pub(crate) fn cut_signature(bytes: &[u8]) -> Option<String> {
    if bytes.is_empty() {
        None
    } else if PNG_SIGNATURE.starts_with(bytes) && bytes.len() < PNG_SIGNATURE.len() {
        Some("truncated PNG: the file ends inside its signature".into())
    } else if JPEG_SOI.starts_with(bytes) && bytes.len() < JPEG_SOI.len() {
        Some("truncated JPEG: the file ends inside its signature".into())
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// PNG

/// Surveys a PNG (the caller has seen its signature).
pub(crate) fn survey_png(b: &[u8]) -> Survey {
    let mut s = Survey::default();
    s.fault = png_walk(b, &mut s).err();
    s
}

fn truncated_png(what: &str) -> String {
    format!("truncated PNG: the file ends {what}")
}

fn chunk_name(ty: &[u8]) -> String {
    ty.iter()
        .map(|&c| {
            if c.is_ascii_alphabetic() {
                c as char
            } else {
                '?'
            }
        })
        .collect()
}

fn png_walk(b: &[u8], s: &mut Survey) -> Result<(), String> {
    let mut pos = PNG_SIGNATURE.len();
    let (mut seen_ihdr, mut seen_idat, mut palette) = (false, false, false);
    loop {
        let rest = b.len() - pos;
        if rest == 0 {
            return Err(truncated_png(if !seen_ihdr {
                "after its signature, before its header (IHDR chunk)"
            } else if !seen_idat {
                "before its image data (IDAT chunk)"
            } else {
                "before its end chunk (IEND)"
            }));
        }
        if rest < 8 {
            return Err(truncated_png(if seen_ihdr {
                "inside a chunk header"
            } else {
                "inside its header (IHDR chunk)"
            }));
        }
        let len = u32::from_be_bytes([b[pos], b[pos + 1], b[pos + 2], b[pos + 3]]);
        let ty = &b[pos + 4..pos + 8];
        let name = chunk_name(ty);
        if len > 0x7FFF_FFFF {
            return Err(format!(
                "corrupt PNG: its {name} chunk claims {len} bytes (at most 2^31 - 1 are allowed)"
            ));
        }
        let end = pos + 12 + len as usize;
        if end > b.len() {
            return Err(truncated_png(&match &*name {
                "IHDR" => "inside its header (IHDR chunk)".to_string(),
                "IDAT" => "inside its image data (IDAT chunk)".to_string(),
                _ => format!("inside its {name} chunk"),
            }));
        }
        let stored = u32::from_be_bytes([b[end - 4], b[end - 3], b[end - 2], b[end - 1]]);
        if crc32(&b[pos + 4..end - 4]) != stored {
            return Err(format!(
                "corrupt PNG: its {name} chunk fails its CRC check (the bytes were changed)"
            ));
        }
        let data = &b[pos + 8..end - 4];
        if !seen_ihdr {
            if ty != b"IHDR" || data.len() != 13 {
                return Err(format!(
                    "corrupt PNG: its first chunk is {name} ({} bytes), not a 13-byte IHDR",
                    data.len()
                ));
            }
            seen_ihdr = true;
            let w = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
            let h = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
            let (depth, colour) = (data[8], data[9]);
            s.size = Some((w, h));
            // The `image` crate expands low bit depths and palettes to 8 bits per sample.
            let samples = match colour {
                0 => 1,
                4 => 2,
                2 | 3 => 3,
                _ => 4,
            };
            palette = colour == 3;
            s.bytes_per_pixel = samples * if depth == 16 { 2 } else { 1 };
        }
        match ty {
            b"IDAT" => seen_idat = true,
            b"tRNS" if palette => s.bytes_per_pixel = 4,
            b"IEND" if !seen_idat => {
                return Err("corrupt PNG: it has no image data (no IDAT chunk)".into())
            }
            b"IEND" => return Ok(()),
            _ => {}
        }
        pos = end;
    }
}

/// CRC-32 (ISO 3309, as PNG uses it).
fn crc32(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (n, e) in t.iter_mut().enumerate() {
            let mut c = n as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *e = c;
        }
        t
    });
    !data.iter().fold(!0u32, |c, &x| {
        table[((c ^ u32::from(x)) & 0xFF) as usize] ^ (c >> 8)
    })
}

// ---------------------------------------------------------------------------------------------
// JPEG

/// Surveys a JPEG (the caller has seen its SOI marker).
pub(crate) fn survey_jpeg(b: &[u8]) -> Survey {
    let mut s = Survey::default();
    s.fault = jpeg_walk(b, &mut s).err();
    s
}

const TRUNCATED_JPEG_DATA: &str =
    "truncated JPEG: the file ends before the image data does (no end-of-image marker)";

fn truncated_jpeg_header(segment: Option<&str>) -> String {
    match segment {
        Some(name) => format!("truncated JPEG: the file ends inside its header ({name} segment)"),
        None => "truncated JPEG: the file ends inside its header".into(),
    }
}

fn unsupported_jpeg(what: &str) -> String {
    format!("unsupported JPEG: {what}; re-save it as a baseline JPEG or a PNG")
}

fn segment_name(m: u8) -> String {
    match m {
        0xC4 => "DHT".into(),
        0xCC => "DAC".into(),
        0xC0..=0xCF => format!("SOF{}", m - 0xC0),
        0xDA => "SOS".into(),
        0xDB => "DQT".into(),
        0xDD => "DRI".into(),
        0xE0..=0xEF => format!("APP{}", m - 0xE0),
        0xFE => "COM".into(),
        _ => format!("0x{m:02X}"),
    }
}

/// A frame (SOF) component: id, horizontal and vertical sampling factors.
#[derive(Clone, Copy, Debug)]
struct Component {
    id: u8,
    h: u32,
    v: u32,
}

#[derive(Clone, Debug)]
struct Frame {
    progressive: bool,
    width: u32,
    height: u32,
    components: Vec<Component>,
    hmax: u32,
    vmax: u32,
}

impl Frame {
    /// Block columns and rows of component `c` when it is coded alone (non-interleaved).
    fn blocks(&self, c: &Component) -> (u32, u32) {
        (
            div_ceil(div_ceil(self.width * c.h, self.hmax), 8),
            div_ceil(div_ceil(self.height * c.v, self.vmax), 8),
        )
    }
}

fn div_ceil(a: u32, b: u32) -> u32 {
    a.div_ceil(b.max(1))
}

/// What the walk keeps between segments.
#[derive(Default)]
struct JpegState {
    frame: Option<Frame>,
    /// Huffman tables: [class][id], class 0 = DC, 1 = AC; `None` also when a table was invalid.
    tables: [[Option<Huffman>; 4]; 2],
    restart_interval: u32,
    /// Per frame component, which zig-zag coefficients of each block are non-zero so far
    /// (progressive refinement scans carry a correction bit for exactly those).
    nonzero: Vec<Vec<u64>>,
    /// False once a scan could not be followed (then later refinement scans are not counted).
    following: bool,
}

fn jpeg_walk(b: &[u8], s: &mut Survey) -> Result<(), String> {
    let mut pos = 2;
    let mut st = JpegState {
        following: true,
        ..JpegState::default()
    };
    let mut scans = 0usize;
    loop {
        // The next marker: 0xFF, optional 0xFF fill bytes, then the code. Stray bytes between
        // segments are skipped, as libjpeg and zune-jpeg do.
        let Some(ff) = b[pos..].iter().position(|&x| x == 0xFF) else {
            return Err(if scans == 0 {
                truncated_jpeg_header(None)
            } else {
                TRUNCATED_JPEG_DATA.into()
            });
        };
        pos += ff;
        while pos < b.len() && b[pos] == 0xFF {
            pos += 1;
        }
        if pos == b.len() {
            return Err(if scans == 0 {
                truncated_jpeg_header(None)
            } else {
                TRUNCATED_JPEG_DATA.into()
            });
        }
        let m = b[pos];
        pos += 1;
        match m {
            0xD9 if scans == 0 => {
                return Err(
                    "corrupt JPEG: it has no image data (its end marker comes before any scan)"
                        .into(),
                )
            }
            0xD9 => return Ok(()),
            // Markers without a length (and 0x00, a stuffed byte out of place): nothing to skip.
            0x00 | 0x01 | 0xD0..=0xD8 => continue,
            _ => {}
        }
        let name = segment_name(m);
        let truncated_here = || {
            if scans == 0 {
                truncated_jpeg_header(Some(&name))
            } else {
                TRUNCATED_JPEG_DATA.into()
            }
        };
        if b.len() - pos < 2 {
            return Err(truncated_here());
        }
        let len = usize::from(u16::from_be_bytes([b[pos], b[pos + 1]]));
        if len < 2 {
            return Err(format!(
                "corrupt JPEG: its {name} segment has an impossible length ({len})"
            ));
        }
        if b.len() - pos < len {
            return Err(truncated_here());
        }
        let seg = &b[pos + 2..pos + len];
        pos += len;
        match m {
            0xC4 => parse_dht(seg, &mut st.tables),
            0xCC => return Err(unsupported_jpeg("arithmetic coding (DAC segment)")),
            0xDD if seg.len() >= 2 => {
                st.restart_interval = u32::from(u16::from_be_bytes([seg[0], seg[1]]));
            }
            0xC0..=0xCF if m != 0xC8 => {
                let kind = match m - 0xC0 {
                    0..=2 => None,
                    3 => Some("lossless coding (SOF3)"),
                    5..=7 => Some("hierarchical coding (SOF5-7)"),
                    _ => Some("arithmetic coding (SOF9-15)"),
                };
                if let Some(kind) = kind {
                    return Err(unsupported_jpeg(kind));
                }
                let f = parse_sof(m, seg)
                    .ok_or_else(|| format!("corrupt JPEG: its {name} frame header is malformed"))?;
                if seg[0] != 8 {
                    return Err(unsupported_jpeg(&format!("{}-bit samples", seg[0])));
                }
                s.size = Some((f.width, f.height));
                // Grey stays grey; everything else decodes to 8-bit RGB. A progressive decoder
                // also keeps every coefficient (2 bytes each) until the last scan.
                let n = f.components.len() as u64;
                s.bytes_per_pixel =
                    if n == 1 { 1 } else { 3 } + if f.progressive { 2 * n } else { 0 };
                st.nonzero = vec![Vec::new(); f.components.len()];
                st.frame = Some(f);
            }
            0xDA => {
                let data = entropy_coded(b, pos).ok_or(TRUNCATED_JPEG_DATA)?;
                pos = data.end;
                follow_scan(seg, &data, &mut st)?;
                scans += 1;
            }
            _ => {}
        }
    }
}

fn parse_sof(marker: u8, seg: &[u8]) -> Option<Frame> {
    let n = usize::from(*seg.get(5)?);
    let components: Vec<Component> = seg
        .get(6..6 + 3 * n)?
        .chunks_exact(3)
        .map(|c| Component {
            id: c[0],
            h: u32::from(c[1] >> 4),
            v: u32::from(c[1] & 15),
        })
        .collect();
    Some(Frame {
        progressive: marker == 0xC2,
        height: u32::from(u16::from_be_bytes([seg[1], seg[2]])),
        width: u32::from(u16::from_be_bytes([seg[3], seg[4]])),
        hmax: components.iter().map(|c| c.h).max().unwrap_or(1).max(1),
        vmax: components.iter().map(|c| c.v).max().unwrap_or(1).max(1),
        components,
    })
}

/// Reads the tables of one DHT segment; a malformed table is left unset (so its scans are not
/// followed: the decoder will judge them).
fn parse_dht(mut seg: &[u8], tables: &mut [[Option<Huffman>; 4]; 2]) {
    while seg.len() >= 17 {
        let (class, id) = (usize::from(seg[0] >> 4), usize::from(seg[0] & 15));
        let counts: [u8; 16] = seg[1..17].try_into().unwrap_or([0; 16]);
        let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
        let Some(values) = seg.get(17..17 + total) else {
            return;
        };
        if class < 2 && id < 4 {
            tables[class][id] = Huffman::new(&counts, values);
        }
        seg = &seg[17 + total..];
    }
}

/// How a scan codes each block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Coding {
    /// All 64 coefficients (sequential JPEG).
    Sequential,
    /// Progressive: the DC coefficient's first bits.
    DcFirst,
    /// Progressive: one more bit of the DC coefficient.
    DcRefine,
    /// Progressive: coefficients `ss..=se`, first bits.
    AcFirst { ss: usize, se: usize },
    /// Progressive: one more bit of coefficients `ss..=se`.
    AcRefine { ss: usize, se: usize },
}

/// One component of a scan: its index in the frame and its two tables (absent when the scan
/// does not use them).
struct ScanComponent<'t> {
    index: usize,
    dc: Option<&'t Huffman>,
    ac: Option<&'t Huffman>,
}

/// Follows one scan's blocks through its Huffman codes when the walk knows enough to (a
/// frame, the tables, a coding it knows): the data must hold every block, each restart
/// interval its share, with only codes the tables have.
fn follow_scan(seg: &[u8], data: &EntropyData, st: &mut JpegState) -> Result<(), String> {
    let Some(f) = st.frame.as_ref() else {
        return Ok(());
    };
    let Some((coding, comps)) = parse_sos(seg, f, &st.tables) else {
        // Later refinements of what this scan held cannot be followed either.
        st.following = false;
        return Ok(());
    };
    if !st.following && matches!(coding, Coding::AcRefine { .. }) {
        return Ok(());
    }
    // (blocks per MCU of each scan component, MCUs in the scan)
    let (per_mcu, mcus): (Vec<u32>, u64) = if let [c] = &comps[..] {
        // Non-interleaved: one block per MCU, over the component's own block grid.
        let (bw, bh) = f.blocks(&f.components[c.index]);
        (vec![1], u64::from(bw) * u64::from(bh))
    } else {
        let mx = div_ceil(f.width, 8 * f.hmax);
        let my = div_ceil(f.height, 8 * f.vmax);
        (
            comps
                .iter()
                .map(|c| f.components[c.index].h * f.components[c.index].v)
                .collect(),
            u64::from(mx) * u64::from(my),
        )
    };
    let total = mcus * per_mcu.iter().map(|&n| u64::from(n)).sum::<u64>();
    if let (Coding::AcFirst { .. } | Coding::AcRefine { .. }, [c]) = (coding, &comps[..]) {
        let masks = &mut st.nonzero[c.index];
        if masks.len() as u64 != mcus {
            *masks = vec![0; mcus as usize];
        }
    }
    let restart = u64::from(st.restart_interval);
    let interval = |i: usize| {
        let start = data.intervals[i];
        let end = data
            .intervals
            .get(i + 1)
            .copied()
            .unwrap_or(data.bytes.len());
        &data.bytes[start..end]
    };
    let (mut which, mut done, mut eobrun) = (0usize, 0u64, 0u32);
    let mut bits = Bits::new(interval(0));
    for mcu in 0..mcus {
        if restart > 0 && mcu > 0 && mcu % restart == 0 {
            which += 1;
            if which >= data.intervals.len() {
                return Err(short_scan(done, total));
            }
            bits = Bits::new(interval(which));
            eobrun = 0;
        }
        for (c, &n) in comps.iter().zip(&per_mcu) {
            for _ in 0..n {
                let step = match coding {
                    Coding::Sequential => skip_block(&mut bits, c.dc, c.ac),
                    Coding::DcFirst => skip_dc(&mut bits, c.dc),
                    Coding::DcRefine => bits.skip(1),
                    Coding::AcFirst { ss, se } => {
                        let mask = &mut st.nonzero[c.index][mcu as usize];
                        skip_ac_first(&mut bits, c.ac, ss, se, &mut eobrun, mask)
                    }
                    Coding::AcRefine { ss, se } => {
                        let mask = &mut st.nonzero[c.index][mcu as usize];
                        skip_ac_refine(&mut bits, c.ac, ss, se, &mut eobrun, mask)
                    }
                };
                match step {
                    Ok(()) => done += 1,
                    Err(Stop::OutOfData) if which + 1 < data.intervals.len() => {
                        return Err(format!(
                            "corrupt JPEG: restart interval {} of its image data stops early, \
                             at block {done} of {total}",
                            which + 1
                        ))
                    }
                    Err(Stop::OutOfData) => return Err(short_scan(done, total)),
                    Err(Stop::BadCode) => {
                        return Err(format!(
                            "corrupt JPEG: its image data holds an invalid Huffman code, at \
                             block {done} of {total}"
                        ))
                    }
                }
            }
        }
    }
    Ok(())
}

/// The scan's coding and components, or `None` when the scan is one this module does not follow
/// (an unknown component or table, an impossible band: the decoder will judge it).
fn parse_sos<'t>(
    seg: &[u8],
    f: &Frame,
    tables: &'t [[Option<Huffman>; 4]; 2],
) -> Option<(Coding, Vec<ScanComponent<'t>>)> {
    let n = usize::from(*seg.first()?);
    let comps = seg.get(1..1 + 2 * n)?;
    let band = seg.get(1 + 2 * n..4 + 2 * n)?;
    let (ss, se, ah) = (usize::from(band[0]), usize::from(band[1]), band[2] >> 4);
    let coding = if !f.progressive {
        if (ss, se, ah) != (0, 63, 0) {
            return None;
        }
        Coding::Sequential
    } else if ss == 0 {
        if se != 0 {
            return None;
        }
        if ah == 0 {
            Coding::DcFirst
        } else {
            Coding::DcRefine
        }
    } else {
        if n != 1 || se < ss || se > 63 {
            return None;
        }
        if ah == 0 {
            Coding::AcFirst { ss, se }
        } else {
            Coding::AcRefine { ss, se }
        }
    };
    let uses_dc = matches!(coding, Coding::Sequential | Coding::DcFirst);
    let uses_ac = !matches!(coding, Coding::DcFirst | Coding::DcRefine);
    let table = |class: usize, id: u8, used: bool| -> Option<Option<&'t Huffman>> {
        if !used {
            return Some(None);
        }
        tables[class].get(usize::from(id))?.as_ref().map(Some)
    };
    let mut out = Vec::with_capacity(n);
    for c in comps.chunks_exact(2) {
        out.push(ScanComponent {
            index: f.components.iter().position(|fc| fc.id == c[0])?,
            dc: table(0, c[1] >> 4, uses_dc)?,
            ac: table(1, c[1] & 15, uses_ac)?,
        });
    }
    if out.is_empty() {
        return None;
    }
    Some((coding, out))
}

/// A scan's entropy-coded data with byte stuffing removed, split at its restart markers.
struct EntropyData {
    bytes: Vec<u8>,
    /// Where each restart interval starts in `bytes` (the first is 0).
    intervals: Vec<usize>,
    /// Position in the file of the marker that ends the data.
    end: usize,
}

/// The entropy-coded data starting at `pos`, or `None` when the file ends inside it.
fn entropy_coded(b: &[u8], mut pos: usize) -> Option<EntropyData> {
    let mut bytes = Vec::with_capacity(b.len().saturating_sub(pos));
    let mut intervals = vec![0];
    loop {
        let ff = b.get(pos..)?.iter().position(|&x| x == 0xFF)?;
        bytes.extend_from_slice(&b[pos..pos + ff]);
        let marker_at = pos + ff;
        pos = marker_at + 1;
        while b.get(pos) == Some(&0xFF) {
            pos += 1;
        }
        match *b.get(pos)? {
            0x00 => {
                bytes.push(0xFF);
                pos += 1;
            }
            0xD0..=0xD7 => {
                intervals.push(bytes.len());
                pos += 1;
            }
            _ => {
                return Some(EntropyData {
                    bytes,
                    intervals,
                    end: marker_at,
                })
            }
        }
    }
}

fn short_scan(done: u64, total: u64) -> String {
    format!("truncated JPEG: its image data stops after {done} of {total} blocks")
}

#[derive(Debug)]
enum Stop {
    OutOfData,
    BadCode,
}

fn table(t: Option<&Huffman>) -> Result<&Huffman, Stop> {
    // `parse_sos` gives every coding the tables it uses.
    t.ok_or(Stop::BadCode)
}

/// A DC difference: its size category, then that many bits.
fn skip_dc(bits: &mut Bits, dc: Option<&Huffman>) -> Result<(), Stop> {
    let s = table(dc)?.decode(bits)?;
    bits.skip(u32::from(s & 31))
}

/// A sequential block: a DC difference, then run/size-coded AC coefficients up to EOB.
fn skip_block(bits: &mut Bits, dc: Option<&Huffman>, ac: Option<&Huffman>) -> Result<(), Stop> {
    skip_dc(bits, dc)?;
    let ac = table(ac)?;
    let mut k = 1;
    while k < 64 {
        let rs = ac.decode(bits)?;
        let (r, s) = (rs >> 4, rs & 15);
        if s == 0 {
            if r != 15 {
                break; // end of block
            }
            k += 16;
        } else {
            bits.skip(u32::from(s))?;
            k += usize::from(r) + 1;
        }
    }
    Ok(())
}

/// The length of an end-of-band run: 2^r plus r more bits.
fn eob_run(bits: &mut Bits, r: u8) -> Result<u32, Stop> {
    Ok((1 << r) + bits.get(u32::from(r))?)
}

/// A progressive AC first scan's block (JPEG G.1.2.2), marking the coefficients it makes non-zero.
fn skip_ac_first(
    bits: &mut Bits,
    ac: Option<&Huffman>,
    ss: usize,
    se: usize,
    eobrun: &mut u32,
    mask: &mut u64,
) -> Result<(), Stop> {
    if *eobrun > 0 {
        *eobrun -= 1;
        return Ok(());
    }
    let ac = table(ac)?;
    let mut k = ss;
    while k <= se {
        let rs = ac.decode(bits)?;
        let (r, s) = (rs >> 4, rs & 15);
        if s != 0 {
            k += usize::from(r);
            bits.skip(u32::from(s))?;
            if k < 64 {
                *mask |= 1 << k;
            }
            k += 1;
        } else if r == 15 {
            k += 16;
        } else {
            *eobrun = eob_run(bits, r)? - 1;
            break;
        }
    }
    Ok(())
}

/// A progressive AC refinement scan's block (JPEG G.1.2.3, libjpeg's `decode_mcu_AC_refine`):
/// a correction bit for every coefficient already non-zero in the band, new ones coded as
/// run/size pairs.
fn skip_ac_refine(
    bits: &mut Bits,
    ac: Option<&Huffman>,
    ss: usize,
    se: usize,
    eobrun: &mut u32,
    mask: &mut u64,
) -> Result<(), Stop> {
    let mut k = ss;
    if *eobrun == 0 {
        let ac = table(ac)?;
        while k <= se {
            let rs = ac.decode(bits)?;
            let (mut r, s) = (rs >> 4, rs & 15);
            if s != 0 {
                bits.skip(1)?; // the new coefficient's sign
            } else if r != 15 {
                *eobrun = eob_run(bits, r)?;
                break; // the rest of the band is the EOB run's
            }
            // Skip r zero coefficients, with a correction bit for each non-zero one on the way.
            loop {
                if *mask & (1 << k) != 0 {
                    bits.skip(1)?;
                } else if r == 0 {
                    break;
                } else {
                    r -= 1;
                }
                k += 1;
                if k > se {
                    break;
                }
            }
            if s != 0 && k < 64 {
                *mask |= 1 << k;
            }
            k += 1;
        }
    }
    if *eobrun > 0 {
        for j in k..=se {
            if *mask & (1 << j) != 0 {
                bits.skip(1)?;
            }
        }
        *eobrun -= 1;
    }
    Ok(())
}

/// A bit reader over de-stuffed entropy-coded bytes, most significant bit first.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u64,
    n: u32,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Bits {
            data,
            pos: 0,
            acc: 0,
            n: 0,
        }
    }

    fn fill(&mut self) {
        if let Some(word) = self.data.get(self.pos..self.pos + 8) {
            // Eight bytes at once; only the whole bytes that fit count. The bits of the next
            // byte that spill in are the same bits the next fill ORs in at the same place.
            let word = u64::from_be_bytes(word.try_into().unwrap_or([0; 8]));
            self.acc |= word >> self.n;
            let whole = (64 - self.n) / 8;
            self.pos += whole as usize;
            self.n += 8 * whole;
            return;
        }
        while self.n <= 56 && self.pos < self.data.len() {
            self.acc |= u64::from(self.data[self.pos]) << (56 - self.n);
            self.pos += 1;
            self.n += 8;
        }
    }

    /// The next 16 bits (zeros past the end) and how many of them are real.
    fn peek16(&mut self) -> (u32, u32) {
        if self.n < 16 {
            self.fill();
        }
        ((self.acc >> 48) as u32, self.n.min(16))
    }

    /// Takes `k` bits (at most 32) and returns them.
    fn get(&mut self, k: u32) -> Result<u32, Stop> {
        if k == 0 {
            return Ok(0);
        }
        if self.n < k {
            self.fill();
            if self.n < k {
                return Err(Stop::OutOfData);
            }
        }
        let v = (self.acc >> (64 - k)) as u32;
        self.acc <<= k;
        self.n -= k;
        Ok(v)
    }

    fn skip(&mut self, k: u32) -> Result<(), Stop> {
        self.get(k).map(|_| ())
    }
}

/// Codes up to this many bits long are decoded with one table look-up.
const LOOKUP_BITS: u32 = 9;

/// A canonical Huffman table (JPEG Annex C): for each code length, the largest code and where
/// its symbols start, plus a look-up table for the short codes.
#[derive(Clone, Debug)]
struct Huffman {
    /// Largest code of each length 1..=16 (index = length), -1 when none.
    max_code: [i32; 17],
    /// `values` index of the first code of each length, minus that code.
    offset: [i32; 17],
    values: Vec<u8>,
    /// For each `LOOKUP_BITS`-bit window: `length << 8 | symbol` of the code it starts with, or
    /// 0 when that code is longer.
    short: Vec<u16>,
}

impl Huffman {
    fn new(counts: &[u8; 16], values: &[u8]) -> Option<Huffman> {
        let mut max_code = [-1i32; 17];
        let mut offset = [0i32; 17];
        let (mut code, mut k) = (0i32, 0i32);
        for len in 1..=16 {
            let n = i32::from(counts[len - 1]);
            offset[len] = k - code;
            code += n;
            k += n;
            if n > 0 {
                max_code[len] = code - 1;
            }
            if code > 1 << len {
                return None; // more codes than the length allows
            }
            code <<= 1;
        }
        let mut short = vec![0u16; 1 << LOOKUP_BITS];
        for len in 1..=LOOKUP_BITS as usize {
            for code in (max_code[len] + 1 - i32::from(counts[len - 1])).max(0)..=max_code[len] {
                let Some(&symbol) = values.get((code + offset[len]) as usize) else {
                    continue;
                };
                let first = (code as usize) << (LOOKUP_BITS as usize - len);
                let entry = (len as u16) << 8 | u16::from(symbol);
                short[first..first + (1 << (LOOKUP_BITS as usize - len))].fill(entry);
            }
        }
        Some(Huffman {
            max_code,
            offset,
            values: values.to_vec(),
            short,
        })
    }

    fn decode(&self, bits: &mut Bits) -> Result<u8, Stop> {
        let (window, real) = bits.peek16();
        let entry = self.short[(window >> (16 - LOOKUP_BITS)) as usize];
        if entry != 0 {
            let len = u32::from(entry >> 8);
            if len > real {
                return Err(Stop::OutOfData);
            }
            bits.skip(len)?;
            return Ok(entry as u8);
        }
        if real <= LOOKUP_BITS {
            // No short code starts with the real bits, and there are no more.
            return Err(Stop::OutOfData);
        }
        for len in LOOKUP_BITS + 1..=16 {
            let code = (window >> (16 - len)) as i32;
            if code <= self.max_code[len as usize] {
                if len > real {
                    return Err(Stop::OutOfData);
                }
                bits.skip(len)?;
                let i = (code + self.offset[len as usize]) as usize;
                return self.values.get(i).copied().ok_or(Stop::BadCode);
            }
            if len == real && real < 16 {
                // The real bits are a prefix of no code yet, and there are no more.
                return Err(Stop::OutOfData);
            }
        }
        Err(Stop::BadCode)
    }
}
