//! Pictures for the reports, as SVG text (the HTML report embeds them inline) or PNG (for
//! slides), both drawn by plotters from one drawing code: learning curves of several runs
//! overlaid, and a confusion matrix as a heatmap. Every label from outside is shown with its hidden characters
//! escaped ([`super::text::for_terminal`]); plotters escapes XML's own.
use plotters::coord::Shift;
use plotters::prelude::*;

use super::text::for_terminal;
use super::{class_rows, RunResult};
use crate::store::SplitMetrics;

/// One line of a chart: its legend and its (epoch, value) points.
pub struct Curve {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

pub(super) fn err(e: impl std::fmt::Display) -> String {
    format!("drawing a chart: {e}")
}

/// A picture the reports draw, as SVG text ([`svg`]) or as PNG bytes ([`png`]) from the same
/// drawing code. `k` scales every length (the PNG is drawn at twice the SVG's size so it stays
/// sharp on a slide).
pub trait Picture {
    /// Width and height at scale 1, in pixels.
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, k: u32)
        -> Result<(), String>;
}

/// How much larger than the SVG the PNG is drawn.
pub const PNG_SCALE: u32 = 2;

/// The picture as SVG: text stays text, drawn by the viewer's sans-serif font.
pub fn svg(p: &impl Picture) -> Result<String, String> {
    fonts()?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, p.size()).into_drawing_area();
        p.draw(&root, 1)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// The picture as a PNG file's bytes, its text drawn with the bundled DejaVu Sans (no font
/// is looked up on the machine).
pub fn png(p: &impl Picture) -> Result<Vec<u8>, String> {
    fonts()?;
    let (w, h) = p.size();
    let (w, h) = (w * PNG_SCALE, h * PNG_SCALE);
    let mut pixels = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (w, h)).into_drawing_area();
        p.draw(&root, PNG_SCALE)?;
        root.present().map_err(err)?;
    }
    let mut out = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut out),
        &pixels,
        w,
        h,
        image::ExtendedColorType::Rgb8,
    )
    .map_err(err)?;
    Ok(out)
}

/// Registers the bundled font once: plotters measures text with it for both backends (legend
/// boxes, label areas) and draws the PNG's text with it.
fn fonts() -> Result<(), String> {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .is_ok()
    });
    ok.then_some(())
        .ok_or_else(|| "drawing a chart: the bundled font did not load".to_string())
}

/// Lines against the epoch, one per curve (dashed ones are the second half of `curves` when
/// `dashed_from` says where it starts).
pub struct LineChart {
    pub title: String,
    pub y_label: String,
    pub curves: Vec<Curve>,
    pub dashed_from: Option<usize>,
    /// Where the legend goes: the corner the curves usually leave empty (upper right for a
    /// loss, which falls; lower right for an accuracy, which rises).
    pub legend: SeriesLabelPosition,
}

impl Picture for LineChart {
    fn size(&self) -> (u32, u32) {
        (640, 360)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        k: u32,
    ) -> Result<(), String> {
        let curves = &self.curves;
        let points = curves.iter().flat_map(|c| c.points.iter());
        let finite: Vec<(f64, f64)> = points.filter(|p| p.1.is_finite()).copied().collect();
        let x_max = finite.iter().map(|p| p.0).fold(1.0, f64::max);
        let (mut lo, mut hi) = y_range(finite.iter().map(|p| p.1).collect());
        if !lo.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        let pad = ((hi - lo) * 0.05).max(1e-6);
        let font = |size: u32| ("sans-serif", size * k);
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(root)
            .caption(for_terminal(&self.title), font(18))
            .margin(12 * k)
            .x_label_area_size(36 * k)
            .y_label_area_size(56 * k)
            .build_cartesian_2d(1f64..x_max.max(2.0), (lo - pad)..(hi + pad))
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .x_labels((x_max as usize).clamp(2, 10))
            .x_label_formatter(&|x| match x.fract() == 0.0 {
                true => format!("{x:.0}"),
                false => String::new(),
            })
            .y_desc(self.y_label.as_str())
            .label_style(font(12))
            .axis_desc_style(font(14))
            .draw()
            .map_err(err)?;
        let split = self.dashed_from.unwrap_or(curves.len());
        for (i, c) in curves.iter().enumerate() {
            let color = Palette99::pick(i % split.max(1)).to_rgba();
            let style = ShapeStyle::from(color).stroke_width(2 * k);
            let points: Vec<(f64, f64)> = c
                .points
                .iter()
                .filter(|p| p.1.is_finite())
                .copied()
                .collect();
            let series = if i >= split {
                chart.draw_series(DashedLineSeries::new(points, 6 * k, 4 * k, style))
            } else {
                chart.draw_series(LineSeries::new(points, style))
            };
            let x_len = 16 * k as i32;
            series
                .map_err(err)?
                .label(for_terminal(&c.label))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + x_len, y)], style));
        }
        chart
            .configure_series_labels()
            .position(self.legend.clone())
            .legend_area_size(24 * k)
            .label_font(font(12))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        Ok(())
    }
}

/// The y range of a chart: from the lowest value to the highest, unless a few values tower
/// over the rest (a loss that blew up for an epoch or two): then to 1.5 times the 95th
/// percentile, and the lines leave the chart at its top.
fn y_range(mut ys: Vec<f64>) -> (f64, f64) {
    ys.sort_by(f64::total_cmp);
    let (Some(&lo), Some(&hi)) = (ys.first(), ys.last()) else {
        return (f64::NAN, f64::NAN);
    };
    let p95 = ys[(ys.len() - 1) * 95 / 100];
    let span = (p95 - lo).max(1e-9);
    match hi - lo > 4.0 * span {
        true => (lo, lo + 1.5 * span),
        false => (lo, hi),
    }
}

/// Loss and accuracy per epoch of `runs` (solid: validation, dashed: training), as two
/// charts: `[("loss", chart), ("accuracy", chart)]`.
pub fn learning_curves(runs: &[&RunResult]) -> Vec<(&'static str, LineChart)> {
    let curves = |val: fn(&crate::store::EpochRow) -> Option<f64>,
                  train: fn(&crate::store::EpochRow) -> Option<f64>| {
        let mut out: Vec<Curve> = Vec::new();
        for (which, f) in [("val", val), ("train", train)] {
            for r in runs {
                out.push(Curve {
                    label: format!("{} {which}", r.run.label),
                    points: r
                        .epochs
                        .iter()
                        .map(|e| (e.epoch as f64, f(e).unwrap_or(f64::NAN)))
                        .collect(),
                });
            }
        }
        out
    };
    let chart = |title: &str, y_label: &str, curves, legend| LineChart {
        title: title.into(),
        y_label: y_label.into(),
        curves,
        dashed_from: Some(runs.len()),
        legend,
    };
    vec![
        (
            "loss",
            chart(
                "loss per epoch",
                "loss",
                curves(|e| e.val_loss, |e| e.train_loss),
                SeriesLabelPosition::UpperRight,
            ),
        ),
        (
            "accuracy",
            chart(
                "accuracy per epoch",
                "accuracy",
                curves(|e| e.val_acc, |e| e.train_acc),
                SeriesLabelPosition::LowerRight,
            ),
        ),
    ]
}

/// A confusion matrix as a heatmap: rows are the true classes, columns the predicted ones,
/// each cell shaded by its share of the row and labelled with its count.
pub struct ConfusionChart {
    pub title: String,
    /// Class names, hidden characters already escaped.
    names: Vec<String>,
    counts: Vec<Vec<u64>>,
}

/// The confusion matrix of `m` as a heatmap titled `title`.
pub fn confusion(m: &SplitMetrics, title: &str) -> ConfusionChart {
    ConfusionChart {
        title: title.into(),
        names: class_rows(m)
            .iter()
            .map(|r| for_terminal(&r.name))
            .collect(),
        counts: m.confusion.matrix.clone(),
    }
}

impl ConfusionChart {
    fn cell(&self) -> u32 {
        (480 / self.names.len().max(1) as u32).clamp(14, 60)
    }

    fn label_width(&self) -> u32 {
        let longest = self.names.iter().map(|s| s.chars().count()).max();
        12 + 7 * longest.unwrap_or(4) as u32
    }
}

impl Picture for ConfusionChart {
    fn size(&self) -> (u32, u32) {
        let (n, cell, label_w) = (
            self.names.len().max(1) as u32,
            self.cell(),
            self.label_width(),
        );
        (label_w + cell * n + 20, 60 + cell * n + label_w)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        k: u32,
    ) -> Result<(), String> {
        let n = self.names.len().max(1) as i32;
        let shares = super::row_normalised(&self.counts);
        let ki = k as i32;
        let font = ("sans-serif", 12 * k).into_font();
        root.fill(&WHITE).map_err(err)?;
        root.draw(&Text::new(
            for_terminal(&self.title),
            (8 * ki, 8 * ki),
            ("sans-serif", 16 * k).into_font(),
        ))
        .map_err(err)?;
        let top = 40 * ki;
        let left = self.label_width() as i32 * ki;
        let c = self.cell() as i32 * ki;
        for (i, row) in self.counts.iter().enumerate() {
            for (j, &count) in row.iter().enumerate() {
                let share = shares[i][j];
                let shade = (255.0 * (1.0 - share)) as u8;
                let (x, y) = (left + j as i32 * c, top + i as i32 * c);
                let fill = RGBColor(shade, shade, 255);
                root.draw(&Rectangle::new([(x, y), (x + c, y + c)], fill.filled()))
                    .map_err(err)?;
                root.draw(&Rectangle::new(
                    [(x, y), (x + c, y + c)],
                    RGBColor(200, 200, 200).stroke_width(k),
                ))
                .map_err(err)?;
                let ink = if share > 0.5 { WHITE } else { BLACK };
                root.draw(&Text::new(
                    count.to_string(),
                    (x + 3 * ki, y + c / 2 - 6 * ki),
                    font.clone().color(&ink),
                ))
                .map_err(err)?;
            }
        }
        for (i, name) in self.names.iter().enumerate() {
            let y = top + i as i32 * c + c / 2 - 6 * ki;
            root.draw(&Text::new(name.clone(), (4 * ki, y), font.clone()))
                .map_err(err)?;
            let x = left + i as i32 * c + c / 2 - 4 * ki;
            let below = top + n * c + 6 * ki;
            let rotated = font.clone().transform(FontTransform::Rotate90);
            root.draw(&Text::new(name.clone(), (x, below), rotated))
                .map_err(err)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::{Confusion, Metrics};

    #[test]
    fn a_line_chart_draws_every_curve_with_its_legend() {
        let curves = [
            Curve {
                label: "run <a> & \u{1b}[31m".into(),
                points: vec![(1.0, 0.9), (2.0, 0.5), (3.0, f64::NAN), (4.0, 0.3)],
            },
            Curve {
                label: "train".into(),
                points: vec![(1.0, 1.2), (2.0, 0.8)],
            },
        ];
        let chart = |curves, dashed_from| LineChart {
            title: "loss".into(),
            y_label: "loss".into(),
            curves,
            dashed_from,
            legend: SeriesLabelPosition::UpperRight,
        };
        let svg = svg(&chart(curves.into(), Some(1))).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("run &lt;a&gt; &amp; \\u{1b}[31m"), "{svg}");
        assert!(!svg.contains('\u{1b}'));
        assert!(svg.matches("<polyline").count() >= 2, "{svg}");
        assert!(svg.contains(">\nepoch\n<"), "{svg}");
        // No point at all still draws an (empty) chart.
        assert!(super::svg(&chart(vec![], None)).unwrap().contains("<svg"));
    }

    #[test]
    fn a_loss_that_blew_up_does_not_flatten_the_others() {
        let mut ys: Vec<f64> = (0..40).map(|i| 1.0 - i as f64 * 0.01).collect();
        ys.push(240_000.0);
        let (lo, hi) = y_range(ys);
        assert!(lo > 0.5 && hi < 2.0, "{lo}..{hi}");
        assert_eq!(y_range(vec![0.2, 0.9, 0.5]), (0.2, 0.9));
    }

    #[test]
    fn a_confusion_heatmap_labels_cells_with_counts() {
        let mut confusion = Confusion::new(2);
        for (t, p, n) in [(0, 0, 7), (0, 1, 3), (1, 1, 10)] {
            for _ in 0..n {
                confusion.add(t, p);
            }
        }
        let m = SplitMetrics {
            split: "val".into(),
            epoch: 1,
            class_names: vec!["cat".into(), "d<o>g".into()],
            metrics: Metrics::from_confusion(&confusion),
            confusion,
            loss: None,
        };
        let svg = svg(&super::confusion(&m, "validation")).unwrap();
        for text in ["7", "3", "10", "0", "cat", "d&lt;o&gt;g"] {
            let shown = format!(">\n{text}\n</text>");
            assert!(svg.contains(&shown), "{text} in {svg}");
        }
        assert_eq!(
            svg.matches("<rect").count(),
            1 + 2 * 4,
            "background + fill and border per cell"
        );
    }

    /// The PNG is the same picture: decoded, it has the SVG's size times the scale, and the
    /// heatmap's cells have the shades their shares give (a row all on the diagonal: pure
    /// blue there, white beside it), with dark text pixels in the title's corner.
    #[test]
    fn a_png_heatmap_has_the_shades_of_its_cells() {
        let mut confusion = Confusion::new(2);
        for (t, p, n) in [(0, 0, 5), (0, 1, 5), (1, 1, 10)] {
            for _ in 0..n {
                confusion.add(t, p);
            }
        }
        let m = SplitMetrics {
            split: "val".into(),
            epoch: 1,
            class_names: vec!["cat".into(), "dog".into()],
            metrics: Metrics::from_confusion(&confusion),
            confusion,
            loss: None,
        };
        let chart = super::confusion(&m, "validation");
        let bytes = png(&chart).unwrap();
        let img = image::load_from_memory(&bytes).unwrap().to_rgb8();
        let (w, h) = chart.size();
        assert_eq!(img.dimensions(), (w * PNG_SCALE, h * PNG_SCALE));
        let k = PNG_SCALE;
        let (left, top, c) = (chart.label_width() * k, 40 * k, chart.cell() * k);
        // Sample each cell near its lower-right corner, away from its count.
        let at = |i: u32, j: u32| img.get_pixel(left + j * c + c - 4, top + i * c + c - 4).0;
        assert_eq!(at(1, 1), [0, 0, 255], "dog: all on the diagonal");
        assert_eq!(at(1, 0), [255, 255, 255], "no dog was called a cat");
        let half = at(0, 0);
        assert!(half[0].abs_diff(127) <= 1 && half[2] == 255, "{half:?}");
        let title_ink = (8 * k..60 * k)
            .flat_map(|x| (8 * k..24 * k).map(move |y| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0[0] < 100)
            .count();
        assert!(
            title_ink > 50,
            "the title is drawn: {title_ink} dark pixels"
        );
    }

    #[test]
    fn a_png_line_chart_draws_its_lines() {
        let chart = LineChart {
            title: "loss".into(),
            y_label: "loss".into(),
            curves: vec![Curve {
                label: "run".into(),
                points: vec![(1.0, 1.0), (2.0, 0.5), (3.0, 0.2)],
            }],
            dashed_from: None,
            legend: SeriesLabelPosition::UpperRight,
        };
        let img = image::load_from_memory(&png(&chart).unwrap())
            .unwrap()
            .to_rgb8();
        assert_eq!(img.dimensions(), (640 * PNG_SCALE, 360 * PNG_SCALE));
        let first = Palette99::pick(0).to_rgba();
        let line = img
            .pixels()
            .filter(|p| p.0 == [first.0, first.1, first.2])
            .count();
        assert!(line > 500, "the curve's colour covers {line} pixels");
    }
}
