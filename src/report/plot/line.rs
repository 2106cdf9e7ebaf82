//! Line charts, such as speedup against sparsity: named series with markers, a legend, and an
//! optional dashed reference curve (e.g. the ideal 1/(1 − s)).

use std::path::Path;

use plotters::coord::ranged1d::Ranged;
use plotters::coord::types::RangedCoordf64;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::output::{self, Format};
use super::{
    drawing_failed, encode_png, measure, register_fonts, tick_decimals, tick_label, AXIS_TITLE_PX,
    CANVAS, FONT, TICK_PX, TITLE_PX,
};
use crate::error::{Error, Result};

/// One named line: its points are joined in the order given. Its colour and marker shape come
/// from `style` (the same index, the same look, in every panel of a figure), `dashed` draws the
/// line dashed, and markers go on `marked` points (by default every point: a dense curve marks
/// only the points that were run).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The legend entry, e.g. "simulated, pretrain".
    pub name: String,
    /// (x, y) points, e.g. (sparsity, speedup).
    pub points: Vec<(f64, f64)>,
    /// Colour (Okabe & Ito palette) and marker shape; `None`: the series' position in its chart.
    pub style: Option<usize>,
    pub dashed: bool,
    /// Points drawn with a marker; `None`: every point.
    pub marked: Option<Vec<(f64, f64)>>,
}

impl Series {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.into(),
            points,
            style: None,
            dashed: false,
            marked: None,
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

    fn marked_points(&self) -> &[(f64, f64)] {
        self.marked.as_deref().unwrap_or(&self.points)
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

    /// The axis ranges to draw: given, or the data's padded by 4 % so that markers at the
    /// extremes stay whole; y starts at 0 unless data goes below it. The reference counts for x
    /// only: a curve like 1/(1 − s) would otherwise set the scale and squash the data (it is
    /// clipped to the range instead).
    fn ranges(&self) -> ((f64, f64), (f64, f64)) {
        let series = || self.series.iter().flat_map(|s| s.points.iter());
        let (x_lo, x_hi) = series()
            .chain(self.reference.iter().flat_map(|s| s.points.iter()))
            .fold((f64::MAX, f64::MIN), |(lo, hi), p| {
                (lo.min(p.0), hi.max(p.0))
            });
        let (y_lo, y_hi) =
            series().fold((0.0f64, f64::MIN), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
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

/// Panels side by side under one title, with one legend for all of them below: series of the
/// same name look the same in every panel (give them the same `style`).
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub title: String,
    /// Each panel's `title` is drawn above it; its axes are its own.
    pub panels: Vec<LineChart>,
}

/// Colour-blind-safe colours (Okabe & Ito), in the order series get them.
const PALETTE: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
];
const REFERENCE_COLOR: RGBColor = RGBColor(110, 110, 110);
/// Line width and marker radius.
const LINE_PX: u32 = 3;
const MARKER_PX: i32 = 6;
/// Labelled ticks per axis, at most.
const LABELS_MAX: usize = 10;
/// Height of one legend row, and the most entries a row holds.
const LEGEND_ROW_PX: u32 = 28;
const LEGEND_COLUMNS: usize = 3;

/// Draws `chart` to `path`, its legend below the plot: PNG or SVG, by extension.
///
/// Errors: `Error::Input` for an extension other than png/svg, a folder that does not exist or
/// cannot be written, no series, a series without points, a non-finite point, or an empty range.
pub fn line_chart(chart: &LineChart, path: &Path) -> Result<()> {
    let mut panel = chart.clone();
    let title = std::mem::take(&mut panel.title);
    line_figure(
        &Figure {
            title,
            panels: vec![panel],
        },
        path,
    )
}

/// Draws `figure` to `path`: PNG or SVG, by extension. Errors as [`line_chart`]'s, for any panel.
pub fn line_figure(figure: &Figure, path: &Path) -> Result<()> {
    let format = Format::of(path)?;
    if figure.panels.is_empty() {
        return Err(Error::input(format!(
            "line chart \"{}\": no panel to draw",
            figure.title
        )));
    }
    for panel in &figure.panels {
        panel.validate()?;
    }
    register_fonts();
    render_chart!(path, format, |root| draw_figure(&root, figure))
}

type Area<DB> = DrawingArea<DB, plotters::coord::Shift>;
type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The legend's entries: every series by name, first look wins, then the reference curves.
fn legend_entries(figure: &Figure) -> Vec<Legend> {
    let mut entries: Vec<Legend> = Vec::new();
    for panel in &figure.panels {
        for (index, series) in panel.series.iter().enumerate() {
            if !entries.iter().any(|e| e.name == series.name) {
                entries.push(Legend {
                    name: series.name.clone(),
                    look: Look::of(series, index),
                });
            }
        }
    }
    for reference in figure.panels.iter().filter_map(|p| p.reference.as_ref()) {
        if !entries.iter().any(|e| e.name == reference.name) {
            entries.push(Legend {
                name: reference.name.clone(),
                look: Look::reference(),
            });
        }
    }
    entries
}

fn draw_figure<DB: DrawingBackend>(
    root: &Area<DB>,
    figure: &Figure,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let body = root.titled(&figure.title, (FONT, TITLE_PX, FontStyle::Bold))?;
    let entries = legend_entries(figure);
    let (width, height) = body.dim_in_pixel();
    let columns = legend_columns(&entries, width);
    let rows = entries.len().div_ceil(columns) as u32;
    let (plots, legend) = body.split_vertically(height.saturating_sub(rows * LEGEND_ROW_PX + 16));
    let panels = plots.split_evenly((1, figure.panels.len()));
    for (area, panel) in panels.iter().zip(&figure.panels) {
        draw_panel(area, panel)?;
    }
    draw_legend(&legend, &entries, columns)?;
    root.present()
}

/// Left of a legend entry's name: the margin and the line sample with its marker.
const LEGEND_SAMPLE_PX: i32 = 48;

/// As many legend columns as the longest name leaves room for side by side in `width_px` (at
/// most [`LEGEND_COLUMNS`]): long names (a sweep's overrides) get fewer columns, never overlap.
fn legend_columns(entries: &[Legend], width_px: u32) -> usize {
    let widest = entries
        .iter()
        .map(|e| measure(&e.name, TICK_PX, FontStyle::Normal))
        .max()
        .unwrap_or(0);
    let entry_px = 24 + LEGEND_SAMPLE_PX + widest + 16;
    (width_px as i32 / entry_px).clamp(1, LEGEND_COLUMNS as i32) as usize
}

fn draw_panel<DB: DrawingBackend>(
    area: &Area<DB>,
    panel: &LineChart,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let ((x_lo, x_hi), (y_lo, y_hi)) = panel.ranges();
    let mut builder = ChartBuilder::on(area);
    if !panel.title.is_empty() {
        builder.caption(&panel.title, (FONT, AXIS_TITLE_PX, FontStyle::Bold));
    }
    let mut chart = builder
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(72)
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
        .x_desc(&panel.x_label)
        .y_desc(&panel.y_label)
        .draw()?;
    if let Some(reference) = &panel.reference {
        // Clipped to the y range: the data sets the scale, the reference is read against it.
        let points: Vec<(f64, f64)> = reference
            .points
            .iter()
            .copied()
            .filter(|&(_, y)| (y_lo..=y_hi).contains(&y))
            .collect();
        Look::reference().draw_line(&mut chart, points)?;
    }
    for (index, series) in panel.series.iter().enumerate() {
        let look = Look::of(series, index);
        look.draw_line(&mut chart, series.points.clone())?;
        look.draw_markers(&mut chart, series.marked_points())?;
    }
    Ok(())
}

/// The legend below the panels: rows of a line sample, its marker and the series' name.
fn draw_legend<DB: DrawingBackend>(
    area: &Area<DB>,
    entries: &[Legend],
    columns: usize,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let (width, _) = area.dim_in_pixel();
    let column_px = (width / columns as u32) as i32;
    for (i, entry) in entries.iter().enumerate() {
        let x = 24 + column_px * (i % columns) as i32;
        let y = 8 + LEGEND_ROW_PX as i32 * (i / columns) as i32 + LEGEND_ROW_PX as i32 / 2;
        entry.look.draw_sample(area, (x, y))?;
        area.draw(&Text::new(
            entry.name.clone(),
            (x + LEGEND_SAMPLE_PX, y - 9),
            (FONT, TICK_PX).into_font(),
        ))?;
    }
    Ok(())
}

struct Legend {
    name: String,
    look: Look,
}

/// How a series looks: colour, dashes, marker shape (none for a reference curve).
#[derive(Clone, Copy)]
struct Look {
    color: RGBColor,
    dashed: bool,
    /// Marker shape: 0 circle, 1 triangle, 2 square, 3 cross; `None`: no markers.
    marker: Option<usize>,
}

impl Look {
    fn of(series: &Series, index: usize) -> Look {
        let style = series.style.unwrap_or(index);
        Look {
            color: PALETTE[style % PALETTE.len()],
            dashed: series.dashed,
            marker: Some(style % 4),
        }
    }

    fn reference() -> Look {
        Look {
            color: REFERENCE_COLOR,
            dashed: true,
            marker: None,
        }
    }

    fn width(&self) -> u32 {
        if self.marker.is_none() {
            2
        } else {
            LINE_PX
        }
    }

    fn draw_line<'a, DB: DrawingBackend + 'a>(
        &self,
        chart: &mut Chart<'a, DB>,
        points: Vec<(f64, f64)>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let style = self.color.stroke_width(self.width());
        if self.dashed {
            chart.draw_series(std::iter::once(DashedPathElement::new(points, 9, 6, style)))?;
        } else {
            chart.draw_series(std::iter::once(PathElement::new(points, style)))?;
        }
        Ok(())
    }

    fn draw_markers<'a, DB: DrawingBackend + 'a>(
        &self,
        chart: &mut Chart<'a, DB>,
        points: &[(f64, f64)],
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let (fill, r) = (self.color.filled(), MARKER_PX);
        let at = || points.iter().map(|&p| EmptyElement::at(p));
        match self.marker {
            None => {}
            Some(0) => {
                chart.draw_series(at().map(|e| e + Circle::new((0, 0), r, fill)))?;
            }
            Some(1) => {
                chart.draw_series(at().map(|e| e + TriangleMarker::new((0, 0), r + 2, fill)))?;
            }
            Some(2) => {
                chart.draw_series(at().map(|e| e + Rectangle::new([(-r, -r), (r, r)], fill)))?;
            }
            Some(_) => {
                let thick = self.color.stroke_width(3);
                chart.draw_series(at().map(|e| e + Cross::new((0, 0), r + 1, thick)))?;
            }
        }
        Ok(())
    }

    /// The legend's sample: a short line from `(x, y)` with the marker at its middle.
    fn draw_sample<DB: DrawingBackend>(
        &self,
        area: &Area<DB>,
        (x, y): (i32, i32),
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let style = self.color.stroke_width(self.width());
        let line = vec![(x, y), (x + 36, y)];
        if self.dashed {
            area.draw(&DashedPathElement::new(line, 9, 6, style))?;
        } else {
            area.draw(&PathElement::new(line, style))?;
        }
        let (fill, r, at) = (
            self.color.filled(),
            MARKER_PX,
            EmptyElement::at((x + 18, y)),
        );
        match self.marker {
            None => {}
            Some(0) => area.draw(&(at + Circle::new((0, 0), r, fill)))?,
            Some(1) => area.draw(&(at + TriangleMarker::new((0, 0), r + 2, fill)))?,
            Some(2) => area.draw(&(at + Rectangle::new([(-r, -r), (r, r)], fill)))?,
            Some(_) => area.draw(&(at + Cross::new((0, 0), r + 1, self.color.stroke_width(3))))?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_legend_names_take_fewer_columns() {
        register_fonts();
        let entry = |name: &str| Legend {
            name: name.to_string(),
            look: Look::reference(),
        };
        let short = [entry("theoretical"), entry("simulated")];
        assert_eq!(legend_columns(&short, 960), LEGEND_COLUMNS);
        let long = [entry(
            &"mediswift-large, wafer_io_bits_per_second=1.2e12 ".repeat(2),
        )];
        assert_eq!(legend_columns(&long, 960), 1);
        let middle = [entry("mediswift-large, wafer_io_bits_per_second=1.2e12")];
        assert_eq!(legend_columns(&middle, 960), 2);
    }

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
