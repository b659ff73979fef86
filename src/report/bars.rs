//! A bar chart of counts per category (images per class for `sweep data inspect`), one bar
//! per series side by side in each category, as a [`Picture`] for [`svg`](super::plot::svg) and
//! [`png`](super::plot::png). Category and series names are shown with hidden characters
//! escaped ([`for_terminal`]).
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::plot::{err, Picture};
use super::text::for_terminal;

/// Bars of counts: one group per category, one bar per series in each group.
pub struct BarChart {
    pub title: String,
    pub y_label: String,
    /// Names along the x axis, in order.
    pub categories: Vec<String>,
    /// Each series' name (its legend; no legend for a single series) and its count per category.
    pub series: Vec<(String, Vec<u64>)>,
}

/// Widest chart drawn, in pixels at scale 1: many classes get thinner bars, not a wider file.
const MAX_WIDTH: u32 = 2400;

impl BarChart {
    /// Height of the area under the axis that holds the names, written downwards.
    fn names_height(&self) -> u32 {
        let longest = self
            .categories
            .iter()
            .map(|c| for_terminal(c).chars().count());
        (16 + 7 * longest.max().unwrap_or(4) as u32).min(240)
    }

    /// Counts drawn above the bars while they are wide enough to hold them.
    fn labelled(&self) -> bool {
        self.categories.len() * self.series.len().max(1) <= 40
    }
}

impl Picture for BarChart {
    fn size(&self) -> (u32, u32) {
        let bars = (self.categories.len() * self.series.len().max(1)) as u32;
        let groups = self.categories.len() as u32;
        (
            (100 + 22 * bars + 12 * groups).clamp(480, MAX_WIDTH),
            320 + self.names_height(),
        )
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        k: u32,
    ) -> Result<(), String> {
        let n = self.categories.len().max(1) as f64;
        let top = self.series.iter().flat_map(|(_, v)| v.iter()).max();
        // Room above the bars for their counts, and for the legend when there is one.
        let room = if self.series.len() > 1 { 1.3 } else { 1.12 };
        let y_max = (*top.unwrap_or(&0) as f64 * room).max(1.0);
        let font = |size: u32| ("sans-serif", size * k);
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(root)
            .caption(for_terminal(&self.title), font(18))
            .margin(12 * k)
            .x_label_area_size(self.names_height() * k)
            .y_label_area_size(56 * k)
            .build_cartesian_2d(0f64..n, 0f64..y_max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc(self.y_label.as_str())
            .y_label_formatter(&|y| match y.fract() == 0.0 {
                true => format!("{y:.0}"),
                false => String::new(),
            })
            .label_style(font(12))
            .axis_desc_style(font(14))
            .draw()
            .map_err(err)?;
        let width = 0.8 / self.series.len().max(1) as f64;
        for (s, (name, counts)) in self.series.iter().enumerate() {
            let colour = Palette99::pick(s).to_rgba().filled();
            let x0 = |i: usize| i as f64 + 0.1 + s as f64 * width;
            let bars = counts
                .iter()
                .enumerate()
                .map(|(i, &c)| Rectangle::new([(x0(i), 0.0), (x0(i) + width, c as f64)], colour));
            let drawn = chart.draw_series(bars).map_err(err)?;
            if self.series.len() > 1 {
                let side = 10 * k as i32;
                drawn.label(for_terminal(name)).legend(move |(x, y)| {
                    Rectangle::new([(x, y - side / 2), (x + side, y + side / 2)], colour)
                });
            }
            if self.labelled() {
                let labels = counts.iter().enumerate().map(|(i, &c)| {
                    let at = (x0(i) + width / 2.0, c as f64);
                    let style = TextStyle::from(font(11).into_font());
                    Text::new(
                        c.to_string(),
                        at,
                        style.pos(Pos::new(HPos::Center, VPos::Bottom)),
                    )
                });
                chart.draw_series(labels).map_err(err)?;
            }
        }
        if self.series.len() > 1 {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .label_font(font(12))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(err)?;
        }
        let ki = k as i32;
        let names = font(12).into_font().transform(FontTransform::Rotate90);
        for (i, name) in self.categories.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
            root.draw(&Text::new(
                for_terminal(name),
                (x - 4 * ki, y + 6 * ki),
                names.clone(),
            ))
            .map_err(err)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::plot::{png, svg, PNG_SCALE};
    use super::*;

    fn chart(series: Vec<(String, Vec<u64>)>) -> BarChart {
        BarChart {
            title: "images per class".into(),
            y_label: "images".into(),
            categories: vec!["cat".into(), "d<o>g\u{1b}".into(), "eel".into()],
            series,
        }
    }

    #[test]
    fn an_svg_bar_chart_names_every_class_and_count() {
        let svg = svg(&chart(vec![("train".into(), vec![120, 7, 0])])).unwrap();
        for text in [
            "cat",
            "d&lt;o&gt;g\\u{1b}",
            "eel",
            "120",
            "7",
            "images per class",
        ] {
            assert!(
                svg.contains(&format!(">\n{text}\n</text>")),
                "{text} in {svg}"
            );
        }
        assert!(!svg.contains('\u{1b}'));
        // Background, plot area, then one bar per class.
        assert!(svg.matches("<rect").count() >= 3, "{svg}");
        let two = svg_two();
        assert!(
            two.contains(">\ntrain\n</text>") && two.contains(">\ntest\n</text>"),
            "{two}"
        );
    }

    fn svg_two() -> String {
        svg(&chart(vec![
            ("train".into(), vec![10, 20, 30]),
            ("test".into(), vec![1, 2, 3]),
        ]))
        .unwrap()
    }

    #[test]
    fn a_png_bar_chart_draws_its_bars() {
        let c = chart(vec![("train".into(), vec![50, 20, 35])]);
        let img = image::load_from_memory(&png(&c).unwrap())
            .unwrap()
            .to_rgb8();
        let (w, h) = c.size();
        assert_eq!(img.dimensions(), (w * PNG_SCALE, h * PNG_SCALE));
        let bar = Palette99::pick(0).to_rgba();
        let filled = img
            .pixels()
            .filter(|p| p.0 == [bar.0, bar.1, bar.2])
            .count();
        assert!(filled > 5_000, "the bars' colour covers {filled} pixels");
    }
}
