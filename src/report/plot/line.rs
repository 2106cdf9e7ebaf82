//! Line charts, such as speedup against sparsity: named series with markers, a legend, and an
//! optional dashed reference curve (e.g. the ideal 1/(1 − s)).

use std::path::Path;

use plotters::coord::ranged1d::Ranged;
use plotters::coord::types::RangedCoordf64;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::output::{self, Format};
use super::{
    drawing_failed, encode_png, register_fonts, tick_decimals, tick_label, AXIS_TITLE_PX, FONT,
    TICK_PX, TITLE_PX,
};
use crate::error::{Error, Result};

/// One named line: its points are joined in the order given and each gets a marker.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The legend entry, e.g. "simulated, pretrain".
    pub name: String,
    /// (x, y) points, e.g. (sparsity, speedup).
    pub points: Vec<(f64, f64)>,
}

impl Series {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.into(),
            points,
        }
    }

    /// The speedup a FLOP count promises, 1/(1 − s), sampled from s = 0 to `sparsity_max` (< 1):
    /// the reference a simulated speedup is read against.
    pub fn ideal_speedup(sparsity_max: f64) -> Series {
        const SAMPLES: usize = 100;
        let s_max = sparsity_max.clamp(0.0, 0.99);
        let points = (0..=SAMPLES)
            .map(|i| {
                let s = s_max * i as f64 / SAMPLES as f64;
                (s, 1.0 / (1.0 - s))
            })
            .collect();
        Series::new("ideal, 1/(1 − s)", points)
    }
}

/// A line chart: title, axis titles (with units), series, and optional reference and ranges.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Drawn dashed and grey, without markers, under the series.
    pub reference: Option<Series>,
    /// The x-axis range; by default the data's, padded so edge markers are not clipped.
    pub x_range: Option<(f64, f64)>,
    /// The y-axis range; by default from 0 (or the lowest value, if negative) to above the highest.
    pub y_range: Option<(f64, f64)>,
}

impl LineChart {
    /// An empty chart with default ranges and no reference curve.
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> Self {
        LineChart {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            series: Vec::new(),
            reference: None,
            x_range: None,
            y_range: None,
        }
    }

    /// Every point finite, at least one series with points, ranges non-empty.
    fn validate(&self) -> Result<()> {
        if self.series.is_empty() {
            return Err(Error::input(format!(
                "line chart \"{}\": no series to draw",
                self.title
            )));
        }
        for series in self.series.iter().chain(&self.reference) {
            if series.points.is_empty() {
                return Err(Error::input(format!(
                    "line chart series \"{}\" has no points",
                    series.name
                )));
            }
            if let Some((x, y)) = series
                .points
                .iter()
                .find(|(x, y)| !(x.is_finite() && y.is_finite()))
            {
                return Err(Error::input(format!(
                    "line chart series \"{}\": point ({x}, {y}) is not finite",
                    series.name
                )));
            }
        }
        for (axis, range) in [("x", self.x_range), ("y", self.y_range)] {
            if let Some((lo, hi)) = range {
                if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                    return Err(Error::input(format!(
                        "line chart {axis} range {lo} to {hi}: need finite lo < hi"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The axis ranges to draw: given, or the data's (reference included) padded by 4 % so that
    /// markers at the extremes stay whole; y starts at 0 unless data goes below it.
    fn ranges(&self) -> ((f64, f64), (f64, f64)) {
        let points = || {
            self.series
                .iter()
                .chain(&self.reference)
                .flat_map(|s| s.points.iter())
        };
        let (x_lo, x_hi) = points().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
            (lo.min(p.0), hi.max(p.0))
        });
        let (y_lo, y_hi) =
            points().fold((0.0f64, f64::MIN), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
        let pad = |lo: f64, hi: f64| 0.04 * (hi - lo).max(1e-9);
        let x = self
            .x_range
            .unwrap_or((x_lo - pad(x_lo, x_hi), x_hi + pad(x_lo, x_hi)));
        let y_floor = if y_lo < 0.0 {
            y_lo - pad(y_lo, y_hi)
        } else {
            0.0
        };
        let y = self
            .y_range
            .unwrap_or((y_floor, y_hi + 2.0 * pad(y_lo, y_hi)));
        (x, y)
    }
}

/// Canvas size in pixels, for PNG and SVG alike.
const CANVAS: (u32, u32) = (960, 640);
/// Colour-blind-safe colours (Okabe & Ito), in the order series get them.
const PALETTE: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
];
/// Line width and marker radius of the series drawn last (earlier ones are larger).
const LINE_PX: f64 = 2.0;
const MARKER_PX: f64 = 5.0;
/// Labelled ticks per axis, at most.
const LABELS_MAX: usize = 10;

/// Draws `chart` to `path`: PNG or SVG, by extension.
///
/// Errors: `Error::Input` for an extension other than png/svg, a folder that does not exist or
/// cannot be written, no series, a series without points, a non-finite point, or an empty range.
pub fn line_chart(chart: &LineChart, path: &Path) -> Result<()> {
    let format = Format::of(path)?;
    chart.validate()?;
    register_fonts();
    let bytes = match format {
        Format::Png => {
            let mut rgb = vec![255u8; CANVAS.0 as usize * CANVAS.1 as usize * 3];
            {
                let root = BitMapBackend::with_buffer(&mut rgb, CANVAS).into_drawing_area();
                draw(&root, chart).map_err(|e| drawing_failed(path, e))?;
            }
            encode_png(&rgb, CANVAS).map_err(|e| drawing_failed(path, e))?
        }
        Format::Svg => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, CANVAS).into_drawing_area();
                draw(&root, chart).map_err(|e| drawing_failed(path, e))?;
            }
            svg.into_bytes()
        }
    };
    output::save(path, &bytes)
}

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    line_chart: &LineChart,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let ((x_lo, x_hi), (y_lo, y_hi)) = line_chart.ranges();
    let mut chart = ChartBuilder::on(root)
        .caption(&line_chart.title, (FONT, TITLE_PX, FontStyle::Bold))
        .margin(20)
        .x_label_area_size(64)
        .y_label_area_size(76)
        .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)?;
    // Labels on one axis share their decimals: those of the points plotters labels.
    let decimals = |lo: f64, hi: f64| {
        let points: Vec<f64> = RangedCoordf64::from(lo..hi).key_points(LABELS_MAX);
        tick_decimals(&points)
    };
    let (x_decimals, y_decimals) = (decimals(x_lo, x_hi), decimals(y_lo, y_hi));
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(225, 225, 225))
        .x_labels(LABELS_MAX)
        .y_labels(LABELS_MAX)
        .x_label_formatter(&|v| tick_label(*v, x_decimals))
        .y_label_formatter(&|v| tick_label(*v, y_decimals))
        .label_style((FONT, TICK_PX))
        .axis_desc_style((FONT, AXIS_TITLE_PX))
        .x_desc(&line_chart.x_label)
        .y_desc(&line_chart.y_label)
        .draw()?;
    if let Some(reference) = &line_chart.reference {
        draw_reference(&mut chart, reference)?;
    }
    for (index, series) in line_chart.series.iter().enumerate() {
        draw_series(&mut chart, series, index, line_chart.series.len())?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .margin(12)
        .label_font((FONT, TICK_PX))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(160, 160, 160))
        .draw()?;
    root.present()
}

fn draw_reference<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    reference: &Series,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let style = RGBColor(110, 110, 110).stroke_width(2);
    let path = DashedPathElement::new(reference.points.clone(), 8, 6, style);
    chart
        .draw_series(std::iter::once(path))?
        .label(&reference.name)
        .legend(move |(x, y)| DashedPathElement::new(vec![(x, y), (x + 24, y)], 8, 6, style));
    Ok(())
}

/// The line and its markers; the marker shape (circle, triangle, square, cross) and the colour
/// both change with `index`, so series stay apart in grey print too. Series that coincide (a
/// whole recipe dominated by pre-training, say) must not hide each other: earlier series are
/// drawn wider, with larger markers, so each later one shows on top of them, inside them.
fn draw_series<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    series: &Series,
    index: usize,
    count: usize,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let color = PALETTE[index % PALETTE.len()];
    // How many series are drawn over this one (capped, so many series stay thin).
    let below = (count - 1 - index).min(3) as f64;
    let line = color.stroke_width((LINE_PX + below).round() as u32);
    let fill = color.filled();
    // Legend entries: a short line from the entry's anchor with the marker at its middle.
    let legend_line =
        move |p: (i32, i32)| EmptyElement::at(p) + PathElement::new(vec![(0, 0), (24, 0)], line);
    let annotation = chart.draw_series(std::iter::once(PathElement::new(
        series.points.clone(),
        line,
    )))?;
    annotation.label(&series.name);
    let points = series.points.iter().copied();
    let r = (MARKER_PX + 1.2 * below).round() as i32;
    match index % 4 {
        0 => {
            annotation.legend(move |p| legend_line(p) + Circle::new((12, 0), r, fill));
            chart.draw_series(points.map(|p| Circle::new(p, r, fill)))?;
        }
        1 => {
            annotation.legend(move |p| legend_line(p) + TriangleMarker::new((12, 0), r + 2, fill));
            chart.draw_series(points.map(|p| TriangleMarker::new(p, r + 2, fill)))?;
        }
        2 => {
            annotation.legend(move |p| {
                legend_line(p) + Rectangle::new([(12 - r, -r), (12 + r, r)], fill)
            });
            chart.draw_series(
                points.map(|p| EmptyElement::at(p) + Rectangle::new([(-r, -r), (r, r)], fill)),
            )?;
        }
        _ => {
            let thick = color.stroke_width(3);
            annotation.legend(move |p| legend_line(p) + Cross::new((12, 0), r + 1, thick));
            chart.draw_series(points.map(|p| Cross::new(p, r + 1, thick)))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ideal_speedup_is_one_over_one_minus_s() {
        let ideal = Series::ideal_speedup(0.9);
        assert_eq!(ideal.points.first(), Some(&(0.0, 1.0)));
        let (s, speedup) = *ideal.points.last().unwrap();
        assert!(
            (s - 0.9).abs() < 1e-12 && (speedup - 10.0).abs() < 1e-9,
            "({s}, {speedup})"
        );
    }

    #[test]
    fn default_ranges_pad_the_data_and_start_y_at_zero() {
        let mut chart = LineChart::new("t", "x", "y");
        chart
            .series
            .push(Series::new("a", vec![(0.0, 1.0), (0.5, 2.0)]));
        let ((x_lo, x_hi), (y_lo, y_hi)) = chart.ranges();
        assert!(
            (x_lo + 0.02).abs() < 1e-12 && (x_hi - 0.52).abs() < 1e-12,
            "{x_lo} {x_hi}"
        );
        assert_eq!(y_lo, 0.0);
        assert!((y_hi - 2.16).abs() < 1e-12, "{y_hi}");
    }

    #[test]
    fn rejects_empty_and_non_finite_input() {
        let mut chart = LineChart::new("speedup", "x", "y");
        assert!(chart
            .validate()
            .unwrap_err()
            .to_string()
            .contains("no series"));
        chart.series.push(Series::new("a", vec![(0.0, f64::NAN)]));
        assert_eq!(chart.validate().unwrap_err().exit_code(), 2);
    }
}
