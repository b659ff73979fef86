//! Pictures for the reports, as SVG text (plotters' SVG backend, so no font file is needed and
//! the HTML report embeds them inline): learning curves of several runs overlaid, and a
//! confusion matrix as a heatmap. Every label from outside is shown with its hidden characters
//! escaped ([`super::text::for_terminal`]); plotters escapes XML's own.
use plotters::prelude::*;

use super::text::for_terminal;
use super::{class_rows, RunResult};
use crate::store::SplitMetrics;

/// One line of a chart: its legend and its (epoch, value) points.
pub struct Curve {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

fn err(e: impl std::fmt::Display) -> String {
    format!("drawing a chart: {e}")
}

/// A chart of `y_label` against the epoch, one line per curve (dashed ones are the second
/// half of `curves` when `dashed_from` says where it starts).
pub fn line_chart(
    title: &str,
    y_label: &str,
    curves: &[Curve],
    dashed_from: Option<usize>,
) -> Result<String, String> {
    let points = curves.iter().flat_map(|c| c.points.iter());
    let finite: Vec<(f64, f64)> = points.filter(|p| p.1.is_finite()).copied().collect();
    let x_max = finite.iter().map(|p| p.0).fold(1.0, f64::max);
    let (mut lo, mut hi) = y_range(finite.iter().map(|p| p.1).collect());
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-6);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(for_terminal(title), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(1f64..x_max.max(2.0), (lo - pad)..(hi + pad))
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(y_label)
            .draw()
            .map_err(err)?;
        let split = dashed_from.unwrap_or(curves.len());
        for (i, c) in curves.iter().enumerate() {
            let color = Palette99::pick(i % split.max(1)).to_rgba();
            let style = ShapeStyle::from(color).stroke_width(2);
            let points: Vec<(f64, f64)> = c
                .points
                .iter()
                .filter(|p| p.1.is_finite())
                .copied()
                .collect();
            let series = if i >= split {
                chart.draw_series(DashedLineSeries::new(points, 6, 4, style))
            } else {
                chart.draw_series(LineSeries::new(points, style))
            };
            series
                .map_err(err)?
                .label(for_terminal(&c.label))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
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

/// Loss and accuracy per epoch of `runs` (solid: validation, dashed: training), as two SVG
/// charts: `[("loss", svg), ("accuracy", svg)]`.
pub fn learning_curves(runs: &[&RunResult]) -> Result<Vec<(&'static str, String)>, String> {
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
    let loss = curves(|e| e.val_loss, |e| e.train_loss);
    let acc = curves(|e| e.val_acc, |e| e.train_acc);
    Ok(vec![
        (
            "loss",
            line_chart("loss per epoch", "loss", &loss, Some(runs.len()))?,
        ),
        (
            "accuracy",
            line_chart("accuracy per epoch", "accuracy", &acc, Some(runs.len()))?,
        ),
    ])
}

/// The confusion matrix of `m` as a heatmap: rows are the true classes, columns the
/// predicted ones, each cell shaded by its share of the row and labelled with its count.
pub fn confusion_svg(m: &SplitMetrics, title: &str) -> Result<String, String> {
    let names: Vec<String> = class_rows(m)
        .iter()
        .map(|r| for_terminal(&r.name))
        .collect();
    let n = names.len().max(1);
    let counts = &m.confusion.matrix;
    let shares = super::row_normalised(counts);
    let cell = (480 / n as u32).clamp(14, 60);
    let label_w = 12 + 7 * names.iter().map(|s| s.chars().count()).max().unwrap_or(4) as u32;
    let size = (
        label_w + cell * n as u32 + 20,
        60 + cell * n as u32 + label_w,
    );
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let font = ("sans-serif", 12).into_font();
        root.draw(&Text::new(
            for_terminal(title),
            (8, 8),
            ("sans-serif", 16).into_font(),
        ))
        .map_err(err)?;
        let top = 40i32;
        let left = label_w as i32;
        let c = cell as i32;
        for (i, row) in counts.iter().enumerate() {
            for (j, &count) in row.iter().enumerate() {
                let share = shares[i][j];
                let shade = (255.0 * (1.0 - share)) as u8;
                let (x, y) = (left + j as i32 * c, top + i as i32 * c);
                let fill = RGBColor(shade, shade, 255);
                root.draw(&Rectangle::new([(x, y), (x + c, y + c)], fill.filled()))
                    .map_err(err)?;
                root.draw(&Rectangle::new(
                    [(x, y), (x + c, y + c)],
                    RGBColor(200, 200, 200).stroke_width(1),
                ))
                .map_err(err)?;
                let ink = if share > 0.5 { WHITE } else { BLACK };
                root.draw(&Text::new(
                    count.to_string(),
                    (x + 3, y + c / 2 - 6),
                    font.clone().color(&ink),
                ))
                .map_err(err)?;
            }
        }
        for (k, name) in names.iter().enumerate() {
            let y = top + k as i32 * c + c / 2 - 6;
            root.draw(&Text::new(name.clone(), (4, y), font.clone()))
                .map_err(err)?;
            let x = left + k as i32 * c + c / 2 - 4;
            let below = top + n as i32 * c + 6;
            let rotated = font.clone().transform(FontTransform::Rotate90);
            root.draw(&Text::new(name.clone(), (x, below), rotated))
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
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
        let svg = line_chart("loss", "loss", &curves, Some(1)).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("run &lt;a&gt; &amp; \\u{1b}[31m"), "{svg}");
        assert!(!svg.contains('\u{1b}'));
        assert!(svg.matches("<polyline").count() >= 2, "{svg}");
        assert!(svg.contains(">\nepoch\n<"), "{svg}");
        // No point at all still draws an (empty) chart.
        assert!(line_chart("x", "y", &[], None).unwrap().contains("<svg"));
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
        let svg = confusion_svg(&m, "validation").unwrap();
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
}
