//! `sweep augment FILE --set NAME`: a PNG grid of real training images (first column) and
//! augmented versions of each (the other columns), drawn as training draws them, to look at
//! before training.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::sweep::Sweep;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The sweep file whose data and augmentation sets to use.
    pub file: PathBuf,
    /// The augmentation set (`[augment.NAME]`) to show.
    #[arg(long, value_name = "NAME")]
    pub set: String,
    /// How many training images (rows): one per class, in class order, then more.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub images: usize,
    /// Augmented versions of each image (columns after the original).
    #[arg(long, default_value_t = 7, value_name = "N")]
    pub versions: usize,
    /// Where to write the PNG (its folder is made); default reports/<sweep>/augment-<set>.png.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Smallest side a cell is shown at: small images are enlarged by a whole factor.
const MIN_CELL: usize = 64;
/// White gap between cells, in pixels.
const GAP: usize = 4;

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let sweep = Sweep::from_file(&args.file)?;
    let Some(augment) = sweep.augments.get(&args.set) else {
        let mut names: Vec<&str> = sweep.augments.keys().map(String::as_str).collect();
        names.sort();
        anyhow::bail!(
            "{} has no augmentation set \"{}\"; its sets: {} (add an [augment.{}] table)",
            args.file.display(),
            crate::report::text::for_terminal(&args.set),
            match names.is_empty() {
                true => "none".to_string(),
                false => names.join(", "),
            },
            crate::report::text::for_terminal(&args.set)
        );
    };
    let data = sweep.resolve_data(&sweep.data);
    let (c, h, w) = (
        data.channels as usize,
        data.height as usize,
        data.width as usize,
    );
    let samples = crate::data::preview::samples(&data.train, args.images.max(1), c, h, w)
        .with_context(|| format!("reading training images from {}", data.train.display()))?;
    anyhow::ensure!(
        !samples.is_empty(),
        "no readable training image in {}",
        data.train.display()
    );
    // The same draws a run with the sweep's seed makes for its first image.
    let mut rng = StdRng::seed_from_u64(sweep.fixed.seed);
    let rows: Vec<Vec<Vec<u8>>> = samples
        .iter()
        .map(|s| {
            let mut row = vec![s.pixels.clone()];
            row.extend((0..args.versions).map(|_| augment.apply(&s.pixels, c, h, w, &mut rng)));
            row
        })
        .collect();
    let png = grid(&rows, c, h, w)?;
    let out = args.out.unwrap_or_else(|| {
        PathBuf::from("reports")
            .join(&sweep.name)
            .join(format!("augment-{}.png", args.set))
    });
    super::report::write_atomically(&out, png)?;
    eprintln!(
        "wrote {}: {} images (rows; classes {}) x the original and {} augmented versions",
        out.display(),
        rows.len(),
        samples
            .iter()
            .map(|s| crate::report::text::for_terminal(&s.class))
            .collect::<Vec<_>>()
            .join(", "),
        args.versions
    );
    Ok(ExitCode::SUCCESS)
}

/// The rows of CHW images as one RGB PNG, each image enlarged by a whole factor to at least
/// [`MIN_CELL`] pixels, with white gaps.
fn grid(rows: &[Vec<Vec<u8>>], c: usize, h: usize, w: usize) -> anyhow::Result<Vec<u8>> {
    let k = MIN_CELL.div_ceil(h.min(w).max(1)).max(1);
    let (ch, cw) = (h * k, w * k);
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width = GAP + cols * (cw + GAP);
    let height = GAP + rows.len() * (ch + GAP);
    let mut img = image::RgbImage::from_pixel(width as u32, height as u32, image::Rgb([255; 3]));
    for (r, row) in rows.iter().enumerate() {
        for (col, px) in row.iter().enumerate() {
            let (x0, y0) = (GAP + col * (cw + GAP), GAP + r * (ch + GAP));
            for y in 0..ch {
                for x in 0..cw {
                    let i = (y / k) * w + x / k;
                    let at = |plane: usize| px[plane.min(c - 1) * h * w + i];
                    let rgb = image::Rgb([at(0), at(1), at(2)]);
                    img.put_pixel((x0 + x) as u32, (y0 + y) as u32, rgb);
                }
            }
        }
    }
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .context("encoding the PNG")?;
    Ok(out)
}
