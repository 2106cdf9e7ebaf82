//! Per-PE heatmaps: a grid of values, one cell per PE, row 0 at the top like the fabric.
//!
//! PNG is full resolution up to [`PNG_SIDE_PX_MAX`] PEs a side: each PE gets `cell_px ×
//! cell_px` pixels, painted straight into the bitmap (a full wafer is ~750k cells; one drawing
//! element per cell would be far too slow); a larger grid gets one pixel per square block of PEs
//! (their mean), so that any fabric the specs accept can be drawn. SVG aggregates cells into
//! square tiles (mean of the block) so the file stays small.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::colorbar::{self, Colormap, Palette};
use super::output::{self, Format};
use super::{
    drawing_failed, encode_png, measure, register_fonts, AXIS_TITLE_PX, FONT, TICK_PX, TITLE_PX,
};
use crate::error::{Error, Result};

/// Per-PE values, row-major: `values[y * width + x]` is the PE in column `x`, row `y`.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    width: usize,
    height: usize,
    values: Vec<f64>,
}

impl Grid {
    /// A grid of `width × height` values, row-major; `Error::Input` if the count does not match or
    /// a side is 0. NaN marks a PE without data (drawn grey). Any size that fits in memory draws:
    /// a PNG averages blocks of PEs beyond [`PNG_SIDE_PX_MAX`] a side.
    pub fn new(width: usize, height: usize, values: Vec<f64>) -> Result<Grid> {
        if width == 0 || height == 0 {
            return Err(Error::input(format!(
                "heatmap grid {width} × {height}: each side must be at least 1"
            )));
        }
        if width.checked_mul(height) != Some(values.len()) {
            return Err(Error::input(format!(
                "heatmap grid {width} × {height} needs {} values, got {}",
                width as u128 * height as u128,
                values.len()
            )));
        }
        Ok(Grid {
            width,
            height,
            values,
        })
    }

    /// The same from `f32` values (e.g. counters already reduced to fractions).
    pub fn from_f32(width: usize, height: usize, values: &[f32]) -> Result<Grid> {
        Grid::new(
            width,
            height,
            values.iter().map(|&v| f64::from(v)).collect(),
        )
    }

    /// Number of PE columns.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Number of PE rows.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The value of PE (x, y); panics if x ≥ width or y ≥ height, like slice indexing.
    pub fn value(&self, x: usize, y: usize) -> f64 {
        self.values[y * self.width + x]
    }

    /// The smallest value that is not NaN (0 if every value is NaN).
    pub fn min(&self) -> f64 {
        self.fold_numbers(f64::INFINITY, f64::min)
    }

    /// The largest value that is not NaN (0 if every value is NaN).
    pub fn max(&self) -> f64 {
        self.fold_numbers(f64::NEG_INFINITY, f64::max)
    }

    /// `pick` over the values that are not NaN, from `start`; 0 if none is.
    fn fold_numbers(&self, start: f64, pick: fn(f64, f64) -> f64) -> f64 {
        let folded = self
            .values
            .iter()
            .filter(|v| !v.is_nan())
            .fold(start, |m, &v| pick(m, v));
        if folded.is_finite() {
            folded
        } else {
            0.0
        }
    }

    /// This grid less `other`, PE by PE; `Error::Input` if their sizes differ.
    pub fn minus(&self, other: &Grid) -> Result<Grid> {
        if (self.width, self.height) != (other.width, other.height) {
            return Err(Error::input(format!(
                "heatmap grids of {} × {} and {} × {} PEs cannot be subtracted",
                self.width, self.height, other.width, other.height
            )));
        }
        let values = self
            .values
            .iter()
            .zip(&other.values)
            .map(|(a, b)| a - b)
            .collect();
        Grid::new(self.width, self.height, values)
    }

    /// The mean of the non-NaN values in columns `xs` and rows `ys`; NaN if there are none.
    fn block_mean(&self, xs: std::ops::Range<usize>, ys: std::ops::Range<usize>) -> f64 {
        let (mut sum, mut count) = (0.0, 0usize);
        for y in ys {
            for &v in &self.values[y * self.width + xs.start..y * self.width + xs.end] {
                if !v.is_nan() {
                    sum += v;
                    count += 1;
                }
            }
        }
        if count == 0 {
            f64::NAN
        } else {
            sum / count as f64
        }
    }
}

/// What a heatmap says around its cells: title, colour-bar label, and the value range.
#[derive(Debug, Clone, PartialEq)]
pub struct HeatmapStyle {
    /// Above the picture, e.g. "PE utilisation — mediswift-xl on wse2, pretrain, sparsity 0.75".
    pub title: String,
    /// Beside the colour bar, with the unit: "busy fraction", "SRAM bytes".
    pub value_label: String,
    /// The value drawn darkest; lower values are clamped to it.
    pub vmin: f64,
    /// The value drawn brightest; higher values are clamped to it. Pass the same range to several
    /// heatmaps to make them comparable.
    pub vmax: f64,
    /// SVG only: the most tiles along the grid's longer side (cells are averaged into square
    /// tiles of whole PEs).
    pub svg_tiles_max: usize,
    /// Viridis for magnitudes, diverging for differences.
    pub palette: Palette,
    /// Labelled ranges of PE rows (bracketed right of the plot) and columns (above it); an axis
    /// with fewer than two bands is not labelled: one band says nothing the axis does not.
    pub bands: Vec<Band>,
}

/// Which way a [`Band`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Along {
    Rows,
    Columns,
}

/// A range of PE rows or columns, `start..end`, and what it holds, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Band {
    pub along: Along,
    pub start: usize,
    pub end: usize,
    pub label: String,
}

impl HeatmapStyle {
    /// A style with the default SVG tiling (at most 100 tiles along the longer side).
    pub fn new(
        title: impl Into<String>,
        value_label: impl Into<String>,
        vmin: f64,
        vmax: f64,
    ) -> Self {
        HeatmapStyle {
            title: title.into(),
            value_label: value_label.into(),
            vmin,
            vmax,
            svg_tiles_max: 100,
            palette: Palette::Viridis,
            bands: Vec::new(),
        }
    }

    fn validate(&self) -> Result<()> {
        if !(self.vmin.is_finite() && self.vmax.is_finite() && self.vmin < self.vmax) {
            return Err(Error::input(format!(
                "heatmap value range {} to {}: need finite vmin < vmax",
                self.vmin, self.vmax
            )));
        }
        if self.svg_tiles_max == 0 {
            return Err(Error::input("heatmap svg_tiles_max must be at least 1"));
        }
        if let Some(band) = self.bands.iter().find(|b| b.start >= b.end) {
            return Err(Error::input(format!(
                "heatmap band {:?}: an empty range {}..{}",
                band.label, band.start, band.end
            )));
        }
        Ok(())
    }
}

/// Draws `grid` as a heatmap to `path`: PNG (full resolution) or SVG (tiled), by extension.
///
/// Errors: `Error::Input` for an extension other than png/svg, a folder that does not exist or
/// cannot be written, or an empty or inverted value range; the file is written atomically.
pub fn heatmap(grid: &Grid, style: &HeatmapStyle, path: &Path) -> Result<()> {
    let format = Format::of(path)?;
    style.validate()?;
    let side = |along| match along {
        Along::Rows => grid.height,
        Along::Columns => grid.width,
    };
    if let Some(band) = style.bands.iter().find(|b| b.end > side(b.along)) {
        return Err(Error::input(format!(
            "heatmap band {:?} ends at {}, beyond the grid's {} × {} PEs",
            band.label, band.end, grid.width, grid.height
        )));
    }
    register_fonts();
    let bytes = match format {
        Format::Png => render_png(grid, style).map_err(|e| drawing_failed(path, e))?,
        Format::Svg => render_svg(grid, style)
            .map_err(|e| drawing_failed(path, e))?
            .into_bytes(),
    };
    output::save(path, &bytes)
}

/// Pixels between the canvas edge or the plot and the things around it.
const TITLE_BAND_PX: i32 = 56;
const LEFT_MARGIN_PX: i32 = 12;
const BOTTOM_BAND_PX: i32 = 76;
const X_TICK_AREA_PX: i32 = 40;
/// Room beside a y tick label for the tick mark and the gaps plotters leaves around it.
const Y_TICK_MARK_PX: i32 = 22;
const COLORBAR_GAP_PX: i32 = 28;
const COLORBAR_WIDTH_PX: i32 = 22;
const RIGHT_MARGIN_PX: i32 = 20;
/// The longer side of the plot area: PNG aims for at least this (whole pixels per PE), SVG uses it.
const PLOT_SIDE_PX: usize = 800;
/// The most pixels along a side of a PNG's plot area: a PE each up to this many PEs a side (a
/// full wafer is under 1,200); a larger grid is averaged into square blocks of PEs, one pixel
/// each, so the picture stays a few megapixels whatever the fabric.
pub const PNG_SIDE_PX_MAX: usize = 4096;

/// A pixel rectangle on the canvas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Rect {
    pub(super) x: i32,
    pub(super) y: i32,
    pub(super) w: i32,
    pub(super) h: i32,
}

/// Widths of the texts around the plot, measured with the registered font.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TextWidths {
    title_px: i32,
    /// The y-axis tick labels with their tick marks.
    y_ticks_px: i32,
    /// The widest x-axis tick label.
    x_tick_px: i32,
    /// Everything right of the colour bar: ticks, labels, title.
    colorbar_labels_px: i32,
}

/// Where everything goes on the canvas.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Layout {
    canvas: (u32, u32),
    plot: Rect,
    colorbar: Rect,
    text: TextWidths,
    bands: BandLabels,
}

impl Layout {
    /// Places a `plot_w × plot_h` plot, widening the canvas (plot centred) if the title needs it,
    /// with room for the band labels right of the plot and above it.
    fn new(plot_w: i32, plot_h: i32, text: TextWidths, bands: BandLabels) -> Layout {
        let left = LEFT_MARGIN_PX + AXIS_TITLE_PX as i32 + text.y_ticks_px;
        let right = bands.right_px()
            + COLORBAR_GAP_PX
            + COLORBAR_WIDTH_PX
            + text.colorbar_labels_px
            + RIGHT_MARGIN_PX;
        let natural_w = left + plot_w + right;
        let extra = (text.title_px + 2 * RIGHT_MARGIN_PX - natural_w).max(0);
        let plot = Rect {
            x: left + extra / 2,
            y: TITLE_BAND_PX + bands.top_px(),
            w: plot_w,
            h: plot_h,
        };
        let colorbar = Rect {
            x: plot.x + plot.w + bands.right_px() + COLORBAR_GAP_PX,
            y: plot.y,
            w: COLORBAR_WIDTH_PX,
            h: plot.h,
        };
        let canvas_h = plot.y + plot_h + BOTTOM_BAND_PX;
        Layout {
            canvas: ((natural_w + extra) as u32, canvas_h as u32),
            plot,
            colorbar,
            text,
            bands,
        }
    }
}

/// Text size of the band labels, and the height of one of their lines.
const BAND_PX: f64 = 15.0;
const BAND_LINE_PX: i32 = 19;
/// From the plot's edge to a band's bracket, and from the bracket to its label.
const BRACKET_GAP_PX: i32 = 5;
const LEADER_PX: i32 = 18;
/// The widest a row band's label may be before it wraps onto another line.
const ROW_LABEL_WIDTH_PX: i32 = 300;

/// The band labels a heatmap draws: each row band's label in lines of at most
/// [`ROW_LABEL_WIDTH_PX`], each column band's in one line; none for an axis of one band.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct BandLabels {
    rows: Vec<(Band, Vec<String>)>,
    columns: Vec<Band>,
    /// The widest line of the row labels.
    rows_width_px: i32,
}

impl BandLabels {
    fn of(style: &HeatmapStyle) -> BandLabels {
        let along = |axis: Along| -> Vec<Band> {
            let bands: Vec<Band> = style
                .bands
                .iter()
                .filter(|b| b.along == axis)
                .cloned()
                .collect();
            if bands.len() >= 2 {
                bands
            } else {
                Vec::new()
            }
        };
        let rows: Vec<(Band, Vec<String>)> = along(Along::Rows)
            .into_iter()
            .map(|b| {
                let lines = wrap(&b.label, ROW_LABEL_WIDTH_PX);
                (b, lines)
            })
            .collect();
        let rows_width_px = rows
            .iter()
            .flat_map(|(_, lines)| lines)
            .map(|l| measure(l, BAND_PX, FontStyle::Normal))
            .max()
            .unwrap_or(0);
        BandLabels {
            rows,
            columns: along(Along::Columns),
            rows_width_px,
        }
    }

    /// Room right of the plot for the row bands' brackets and labels.
    fn right_px(&self) -> i32 {
        match self.rows.is_empty() {
            true => 0,
            false => BRACKET_GAP_PX + LEADER_PX + self.rows_width_px,
        }
    }

    /// Room above the plot for the column bands' labels, a line each, and their brackets.
    fn top_px(&self) -> i32 {
        match self.columns.is_empty() {
            true => 0,
            false => self.columns.len() as i32 * BAND_LINE_PX + 2 * BRACKET_GAP_PX,
        }
    }
}

/// `text` in lines of at most `width_px` (a word longer than that gets a line of its own).
fn wrap(text: &str, width_px: i32) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split(' ') {
        match lines.last_mut() {
            Some(line)
                if measure(&format!("{line} {word}"), BAND_PX, FontStyle::Normal) <= width_px =>
            {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

/// Tops of labels of `heights`, each as near as it can be to centring on its `centres` (in
/// order, increasing) without overlapping the one before, kept within `lo..hi` where they fit.
fn spread_labels(centres: &[i32], heights: &[i32], lo: i32, hi: i32) -> Vec<i32> {
    let mut tops: Vec<i32> = Vec::with_capacity(centres.len());
    for (i, (&c, &h)) in centres.iter().zip(heights).enumerate() {
        let earliest = if i == 0 {
            lo
        } else {
            tops[i - 1] + heights[i - 1]
        };
        tops.push((c - h / 2).max(earliest));
    }
    // Pushed past the end: move back up, as far as the label above allows.
    let mut limit = hi;
    for i in (0..tops.len()).rev() {
        tops[i] = tops[i].min(limit - heights[i]);
        limit = tops[i];
    }
    let mut floor = lo;
    for (top, h) in tops.iter_mut().zip(heights) {
        *top = (*top).max(floor);
        floor = *top + h;
    }
    tops
}

fn layout_for(grid: &Grid, plot_w: usize, plot_h: usize, style: &HeatmapStyle) -> Layout {
    let widest = |labels: &mut dyn Iterator<Item = String>| {
        labels
            .map(|l| measure(&l, TICK_PX, FontStyle::Normal))
            .max()
            .unwrap_or(0)
    };
    let colorbar_ticks = colorbar::ticks(style.vmin, style.vmax, plot_h as i32);
    let text = TextWidths {
        title_px: measure(&style.title, TITLE_PX, FontStyle::Bold),
        // Row labels are whole numbers below the height, so the widest has its digit count.
        y_ticks_px: widest(&mut std::iter::once("8".repeat(digits(grid.height - 1))))
            + Y_TICK_MARK_PX,
        x_tick_px: widest(&mut std::iter::once("8".repeat(digits(grid.width - 1)))),
        colorbar_labels_px: colorbar::labels_px(widest(
            &mut colorbar_ticks.into_iter().map(|(_, label)| label),
        )),
    };
    Layout::new(plot_w as i32, plot_h as i32, text, BandLabels::of(style))
}

/// How many labels an axis of `pes` PEs drawn `axis_px` long can take without crowding, when a
/// label is `label_px` long along the axis: at most 10, at least 2 (the ends).
fn labels_fitting(pes: usize, axis_px: i32, label_px: i32) -> usize {
    let fitting = axis_px / (2 * label_px.max(1)) + 1;
    (fitting.clamp(2, 10) as usize).min(pes)
}

/// Decimal digits of `n`.
fn digits(n: usize) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// Whole pixels per PE in the PNG: at least one, more for small grids so the plot is readable.
fn cell_px(grid: &Grid) -> usize {
    (PLOT_SIDE_PX / grid.width.max(grid.height)).max(1)
}

/// PEs along each side of a PNG pixel's block: 1 up to [`PNG_SIDE_PX_MAX`] PEs a side, so
/// that the plot stays within that many pixels beyond.
fn pes_per_px(grid: &Grid) -> usize {
    grid.width.max(grid.height).div_ceil(PNG_SIDE_PX_MAX)
}

fn render_png(grid: &Grid, style: &HeatmapStyle) -> Result<Vec<u8>, String> {
    let cell = cell_px(grid);
    let block = pes_per_px(grid);
    let (plot_w, plot_h) = if block > 1 {
        (grid.width.div_ceil(block), grid.height.div_ceil(block))
    } else {
        (grid.width * cell, grid.height * cell)
    };
    let layout = layout_for(grid, plot_w, plot_h, style);
    let (w, h) = layout.canvas;
    let mut rgb = vec![255u8; w as usize * h as usize * 3];
    let colormap = Colormap::with_palette(style.vmin, style.vmax, style.palette);
    if block > 1 {
        paint_blocks(&mut rgb, w as usize, layout.plot, grid, block, &colormap);
    } else {
        paint_cells(&mut rgb, w as usize, layout.plot, grid, cell, &colormap);
    }
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        colorbar::draw_gradient(
            &root,
            layout.colorbar,
            &colormap,
            layout.colorbar.h as usize,
        )
        .map_err(|e| e.to_string())?;
        draw_frame(&root, grid, style, &layout).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    encode_png(&rgb, (w, h)).map_err(|e| e.to_string())
}

/// Paints every PE as a `cell × cell` block of pixels straight into the RGB buffer.
fn paint_cells(
    rgb: &mut [u8],
    stride_px: usize,
    plot: Rect,
    grid: &Grid,
    cell: usize,
    colormap: &Colormap,
) {
    debug_assert_eq!(plot.w as usize, grid.width * cell);
    debug_assert_eq!(plot.h as usize, grid.height * cell);
    let row_bytes = grid.width * cell * 3;
    let mut row = vec![0u8; row_bytes];
    for y in 0..grid.height {
        for (x, &value) in grid.values[y * grid.width..(y + 1) * grid.width]
            .iter()
            .enumerate()
        {
            let color = colormap.rgb(value);
            for px in row[x * cell * 3..(x + 1) * cell * 3].chunks_exact_mut(3) {
                px.copy_from_slice(&color);
            }
        }
        for dy in 0..cell {
            let canvas_y = plot.y as usize + y * cell + dy;
            let start = (canvas_y * stride_px + plot.x as usize) * 3;
            rgb[start..start + row_bytes].copy_from_slice(&row);
        }
    }
}

/// Paints each square block of `block × block` PEs (fewer at the far edges) as one pixel, the
/// mean of its PEs, straight into the RGB buffer.
fn paint_blocks(
    rgb: &mut [u8],
    stride_px: usize,
    plot: Rect,
    grid: &Grid,
    block: usize,
    colormap: &Colormap,
) {
    debug_assert_eq!(plot.w as usize, grid.width.div_ceil(block));
    debug_assert_eq!(plot.h as usize, grid.height.div_ceil(block));
    for (py, y0) in (0..grid.height).step_by(block).enumerate() {
        let ys = y0..(y0 + block).min(grid.height);
        let start = ((plot.y as usize + py) * stride_px + plot.x as usize) * 3;
        let row = &mut rgb[start..start + plot.w as usize * 3];
        for (px, x0) in row.chunks_exact_mut(3).zip((0..grid.width).step_by(block)) {
            let xs = x0..(x0 + block).min(grid.width);
            px.copy_from_slice(&colormap.rgb(grid.block_mean(xs, ys.clone())));
        }
    }
}

fn render_svg(grid: &Grid, style: &HeatmapStyle) -> Result<String, String> {
    let scale = PLOT_SIDE_PX as f64 / grid.width.max(grid.height) as f64;
    let plot_w = ((grid.width as f64 * scale).round() as usize).max(1);
    let plot_h = ((grid.height as f64 * scale).round() as usize).max(1);
    let layout = layout_for(grid, plot_w, plot_h, style);
    let colormap = Colormap::with_palette(style.vmin, style.vmax, style.palette);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, layout.canvas).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        draw_tiles(&root, grid, style.svg_tiles_max, layout.plot, &colormap)
            .map_err(|e| e.to_string())?;
        colorbar::draw_gradient(&root, layout.colorbar, &colormap, 128)
            .map_err(|e| e.to_string())?;
        draw_frame(&root, grid, style, &layout).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// Draws the grid as square tiles of `block × block` PEs (fewer at the far edges), each the mean
/// of its PEs, with edges rounded to whole pixels so neighbouring tiles meet without gaps.
fn draw_tiles<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    grid: &Grid,
    tiles_max: usize,
    plot: Rect,
    colormap: &Colormap,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let block = grid.width.max(grid.height).div_ceil(tiles_max);
    let edge = |pe: usize, pes: usize, start: i32, len: i32| {
        start + (pe as f64 * len as f64 / pes as f64).round() as i32
    };
    for y0 in (0..grid.height).step_by(block) {
        let y1 = (y0 + block).min(grid.height);
        for x0 in (0..grid.width).step_by(block) {
            let x1 = (x0 + block).min(grid.width);
            let [r, g, b] = colormap.rgb(grid.block_mean(x0..x1, y0..y1));
            let top_left = (
                edge(x0, grid.width, plot.x, plot.w),
                edge(y0, grid.height, plot.y, plot.h),
            );
            let bottom_right = (
                edge(x1, grid.width, plot.x, plot.w),
                edge(y1, grid.height, plot.y, plot.h),
            );
            root.draw(&Rectangle::new(
                [top_left, bottom_right],
                RGBColor(r, g, b).filled(),
            ))?;
        }
    }
    Ok(())
}

/// Title, PE-coordinate axes around the plot, and the colour bar's frame, ticks and label.
fn draw_frame<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    grid: &Grid,
    style: &HeatmapStyle,
    layout: &Layout,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let title = (FONT, TITLE_PX, FontStyle::Bold)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Center));
    root.draw_text(
        &style.title,
        &title,
        (layout.canvas.0 as i32 / 2, TITLE_BAND_PX / 2),
    )?;

    let plot = layout.plot;
    // The chart's plotting area is exactly the cells; plotters draws the axes one pixel outside
    // it, and so does the frame, so every PE stays visible.
    let y_area_px = layout.text.y_ticks_px + AXIS_TITLE_PX as i32;
    let x_area_px = X_TICK_AREA_PX + AXIS_TITLE_PX as i32;
    let area = root.clone().shrink(
        (plot.x - y_area_px, plot.y),
        (plot.w + y_area_px, plot.h + x_area_px),
    );
    // Integer PE indices sit at cell centres (PE x spans x − 0.5 .. x + 0.5); y runs downwards.
    let (w, h) = (grid.width as f64, grid.height as f64);
    let mut chart = ChartBuilder::on(&area)
        .x_label_area_size(x_area_px)
        .y_label_area_size(y_area_px)
        .build_cartesian_2d(-0.5..w - 0.5, h - 0.5..-0.5)?;
    let integer = |v: &f64| format!("{v:.0}");
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(labels_fitting(grid.width, plot.w, layout.text.x_tick_px))
        .y_labels(labels_fitting(grid.height, plot.h, 2 * TICK_PX as i32))
        .x_label_formatter(&integer)
        .y_label_formatter(&integer)
        .label_style((FONT, TICK_PX))
        .axis_desc_style((FONT, AXIS_TITLE_PX))
        .x_desc("PE column (x)")
        .y_desc("PE row (y)")
        .draw()?;
    let frame = [(plot.x - 1, plot.y - 1), (plot.x + plot.w, plot.y + plot.h)];
    root.draw(&Rectangle::new(frame, BLACK.stroke_width(1)))?;
    draw_row_bands(root, grid, layout)?;
    draw_column_bands(root, grid, layout)?;
    colorbar::draw_axis(root, layout.colorbar, layout.text.colorbar_labels_px, style)
}

/// The pixel edge of PE `pe` of `pes` along a side of the plot that starts at `start`, `len`
/// pixels long (as the cells are painted).
fn pe_edge(pe: usize, pes: usize, start: i32, len: i32) -> i32 {
    start + (pe as f64 * len as f64 / pes as f64).round() as i32
}

/// Row bands: a bracket along each band right of the plot, a leader to its label, the labels
/// spread so that they do not overlap (a band of one row still gets a readable label).
fn draw_row_bands<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    grid: &Grid,
    layout: &Layout,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let (plot, rows) = (layout.plot, &layout.bands.rows);
    if rows.is_empty() {
        return Ok(());
    }
    let edge = |pe| pe_edge(pe, grid.height, plot.y, plot.h);
    let spans: Vec<(i32, i32)> = rows
        .iter()
        .map(|(b, _)| (edge(b.start), edge(b.end)))
        .collect();
    let centres: Vec<i32> = spans.iter().map(|(a, b)| (a + b) / 2).collect();
    let heights: Vec<i32> = rows
        .iter()
        .map(|(_, l)| l.len() as i32 * BAND_LINE_PX)
        .collect();
    // Labels may run a line past the plot's bottom (beside the x-axis ticks), no further.
    let bottom = plot.y + plot.h + BAND_LINE_PX;
    let tops = spread_labels(&centres, &heights, plot.y, bottom);
    let x = plot.x + plot.w + BRACKET_GAP_PX;
    let font = (FONT, BAND_PX).into_font().color(&BLACK);
    for (i, (_, lines)) in rows.iter().enumerate() {
        let (y0, y1) = (spans[i].0, (spans[i].1 - 1).max(spans[i].0));
        let bracket = [(x - 3, y0), (x, y0), (x, y1), (x - 3, y1)];
        root.draw(&PathElement::new(bracket, BLACK.stroke_width(1)))?;
        let label_mid = tops[i] + BAND_LINE_PX / 2;
        let leader = [(x, centres[i]), (x + LEADER_PX - 4, label_mid)];
        root.draw(&PathElement::new(leader, BLACK.mix(0.6).stroke_width(1)))?;
        for (j, line) in lines.iter().enumerate() {
            let at = (x + LEADER_PX, tops[i] + j as i32 * BAND_LINE_PX + 2);
            root.draw_text(line, &font.pos(Pos::new(HPos::Left, VPos::Top)), at)?;
        }
    }
    Ok(())
}

/// Column bands: a bracket along each band above the plot, and labels in a staircase, the
/// leftmost band's nearest the plot, each ending at its band's centre with a leader down to it
/// (so no leader crosses a label).
fn draw_column_bands<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    grid: &Grid,
    layout: &Layout,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let plot = layout.plot;
    let edge = |pe| pe_edge(pe, grid.width, plot.x, plot.w);
    let y = plot.y - BRACKET_GAP_PX;
    let font = (FONT, BAND_PX).into_font().color(&BLACK);
    for (i, band) in layout.bands.columns.iter().enumerate() {
        let (x0, x1) = (edge(band.start), (edge(band.end) - 1).max(edge(band.start)));
        let bracket = [(x0, y + 3), (x0, y), (x1, y), (x1, y + 3)];
        root.draw(&PathElement::new(bracket, BLACK.stroke_width(1)))?;
        let centre = (x0 + x1) / 2;
        let label_mid = y - BRACKET_GAP_PX - i as i32 * BAND_LINE_PX - BAND_LINE_PX / 2;
        let leader = [(centre, y), (centre, label_mid), (centre - 4, label_mid)];
        root.draw(&PathElement::new(leader, BLACK.mix(0.6).stroke_width(1)))?;
        let width = measure(&band.label, BAND_PX, FontStyle::Normal);
        let right = (centre - 6).max(LEFT_MARGIN_PX + width);
        let at = (right, label_mid);
        root.draw_text(
            &band.label,
            &font.pos(Pos::new(HPos::Right, VPos::Center)),
            at,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes PNG bytes into (width, height, RGB pixels).
    fn decode(bytes: &[u8]) -> (usize, usize, Vec<u8>) {
        let mut reader = png::Decoder::new(bytes).read_info().expect("a PNG header");
        let mut rgb = vec![0; reader.output_buffer_size()];
        let frame = reader.next_frame(&mut rgb).expect("PNG data");
        assert_eq!(frame.color_type, png::ColorType::Rgb);
        rgb.truncate(frame.buffer_size());
        (frame.width as usize, frame.height as usize, rgb)
    }

    fn pixel(rgb: &[u8], width: usize, x: i32, y: i32) -> [u8; 3] {
        let i = (y as usize * width + x as usize) * 3;
        [rgb[i], rgb[i + 1], rgb[i + 2]]
    }

    fn busy_style() -> HeatmapStyle {
        HeatmapStyle::new("PE utilisation", "busy fraction", 0.0, 1.0)
    }

    #[test]
    fn png_shows_every_pe_of_a_wafer_in_its_own_pixel() {
        // Left half 0.2, right half 0.8: two uniform colours, each PE exactly one pixel.
        let (w, h) = (750, 994);
        let values = (0..w * h)
            .map(|i| if i % w < w / 2 { 0.2 } else { 0.8 })
            .collect();
        let grid = Grid::new(w, h, values).unwrap();
        register_fonts();
        let (width, _, rgb) = decode(&render_png(&grid, &busy_style()).unwrap());
        let plot = layout_for(&grid, w, h, &busy_style()).plot;
        assert_eq!((plot.w, plot.h), (750, 994));
        let colormap = Colormap::new(0.0, 1.0);
        let (left, right) = (colormap.rgb(0.2), colormap.rgb(0.8));
        assert_ne!(left, right);
        for y in 0..plot.h {
            for x in 0..plot.w {
                let expected = if x < 375 { left } else { right };
                assert_eq!(
                    pixel(&rgb, width, plot.x + x, plot.y + y),
                    expected,
                    "PE ({x}, {y})"
                );
            }
            // The frame is drawn outside the cells, never over the first or last column.
            assert_eq!(pixel(&rgb, width, plot.x - 1, plot.y + y), [0, 0, 0]);
            assert_eq!(pixel(&rgb, width, plot.x + plot.w, plot.y + y), [0, 0, 0]);
        }
    }

    #[test]
    fn png_blocks_of_a_small_grid_follow_the_data_with_row_zero_on_top() {
        // 4 × 3 PEs, all different; each PE is a 200 × 200 block (800 px / 4 columns).
        let grid = Grid::new(4, 3, (0..12).map(|i| i as f64 / 11.0).collect()).unwrap();
        register_fonts();
        let (width, _, rgb) = decode(&render_png(&grid, &busy_style()).unwrap());
        let plot = layout_for(&grid, 800, 600, &busy_style()).plot;
        let colormap = Colormap::new(0.0, 1.0);
        let mut seen = Vec::new();
        for (y, x) in (0..3).flat_map(|y| (0..4).map(move |x| (y, x))) {
            let expected = colormap.rgb(grid.value(x, y));
            for (dx, dy) in [(0, 0), (199, 0), (0, 199), (199, 199), (100, 100)] {
                let (px, py) = (plot.x + 200 * x as i32 + dx, plot.y + 200 * y as i32 + dy);
                assert_eq!(
                    pixel(&rgb, width, px, py),
                    expected,
                    "PE ({x}, {y}) + ({dx}, {dy})"
                );
            }
            assert!(!seen.contains(&expected), "PE ({x}, {y}) repeats a colour");
            seen.push(expected);
        }
    }

    #[test]
    fn values_outside_the_range_clamp_and_nan_is_grey() {
        let colormap = Colormap::new(0.0, 49_152.0);
        assert_eq!(colormap.rgb(-5.0), colormap.rgb(0.0));
        assert_eq!(colormap.rgb(1e9), colormap.rgb(49_152.0));
        assert_eq!(colormap.rgb(f64::NAN), [190, 190, 190]);
        // viridis: dark purple at the bottom, yellow at the top.
        assert_eq!(colormap.rgb(0.0), [68, 1, 84]);
        assert_eq!(colormap.rgb(49_152.0), [254, 232, 37]);
    }

    #[test]
    fn svg_tiles_are_block_means() {
        // 4 × 4 PEs in 2 × 2 tiles: each tile's colour is the mean of its four PEs.
        let values = vec![
            0.0,
            0.2,
            1.0,
            1.0, //
            0.2,
            0.2,
            1.0,
            1.0, //
            0.5,
            0.5,
            0.4,
            0.4, //
            0.5,
            0.5,
            0.4,
            f64::NAN,
        ];
        let grid = Grid::new(4, 4, values).unwrap();
        let mut style = busy_style();
        style.svg_tiles_max = 2;
        register_fonts();
        let svg = render_svg(&grid, &style).unwrap();
        let plot = layout_for(&grid, 800, 800, &style).plot;
        let document = roxmltree::Document::parse(&svg).expect("the SVG is XML");
        let fill_at = |x: i32, y: i32| {
            let (x, y) = (x.to_string(), y.to_string());
            document
                .descendants()
                .find(|n| {
                    n.has_tag_name("rect")
                        && n.attribute("x") == Some(&x)
                        && n.attribute("y") == Some(&y)
                })
                .and_then(|n| n.attribute("fill"))
                .map(str::to_string)
        };
        let colormap = Colormap::new(0.0, 1.0);
        let hex = |v: f64| {
            let [r, g, b] = colormap.rgb(v);
            format!("#{r:02X}{g:02X}{b:02X}")
        };
        assert_eq!(fill_at(plot.x, plot.y), Some(hex(0.15)));
        assert_eq!(fill_at(plot.x + 400, plot.y), Some(hex(1.0)));
        assert_eq!(fill_at(plot.x, plot.y + 400), Some(hex(0.5)));
        assert_eq!(fill_at(plot.x + 400, plot.y + 400), Some(hex(0.4)));
    }

    #[test]
    fn grid_rejects_a_wrong_count_or_size() {
        assert!(Grid::new(3, 2, vec![0.0; 6]).is_ok());
        let error = Grid::new(3, 2, vec![0.0; 5]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "heatmap grid 3 × 2 needs 6 values, got 5"
        );
        assert_eq!(Grid::new(0, 2, vec![]).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn block_mean_skips_nan() {
        let grid = Grid::new(2, 2, vec![1.0, f64::NAN, 3.0, 5.0]).unwrap();
        assert_eq!(grid.block_mean(0..2, 0..2), 3.0);
        assert!(grid.block_mean(1..2, 0..1).is_nan());
    }

    #[test]
    fn a_full_wafer_gets_one_pixel_per_pe_and_a_small_grid_more() {
        let wafer = Grid::new(750, 994, vec![0.0; 750 * 994]).unwrap();
        assert_eq!(cell_px(&wafer), 1);
        let mini = Grid::new(16, 12, vec![0.0; 16 * 12]).unwrap();
        assert_eq!(cell_px(&mini), 50);
    }

    #[test]
    fn png_of_a_grid_beyond_its_side_max_averages_blocks_of_pes() {
        // 5000 PEs wide (a fabric the specs accept) was refused after train had written four
        // files. Now a pixel is a block of 2 x 2 PEs (the last row of blocks 2 x 1): columns
        // alternate 0.0, 0.0, 1.0, 1.0, so pixel x (PEs 2x and 2x + 1) is 0.0 when x is even.
        let (w, h) = (5000, 41);
        let values = (0..w * h)
            .map(|i| if (i % w) % 4 < 2 { 0.0 } else { 1.0 })
            .collect();
        let grid = Grid::new(w, h, values).unwrap();
        assert_eq!(pes_per_px(&grid), 2);
        register_fonts();
        let (width, _, rgb) = decode(&render_png(&grid, &busy_style()).unwrap());
        let plot = layout_for(&grid, 2500, 21, &busy_style()).plot;
        assert_eq!((plot.w, plot.h), (2500, 21));
        let colormap = Colormap::new(0.0, 1.0);
        for y in [0, 1, 10, 20] {
            for x in [0, 1, 2, 3, 1000, 1001, 2498, 2499] {
                let expected = colormap.rgb(if x % 2 == 0 { 0.0 } else { 1.0 });
                assert_eq!(
                    pixel(&rgb, width, plot.x + x, plot.y + y),
                    expected,
                    "({x}, {y})"
                );
            }
        }
        // 9000 rows: blocks of 3 x 3 PEs, 30 columns into 10 pixels.
        let tall = Grid::new(30, 9000, vec![0.25; 30 * 9000]).unwrap();
        assert_eq!(pes_per_px(&tall), 3);
        let (width, _, rgb) = decode(&render_png(&tall, &busy_style()).unwrap());
        let plot = layout_for(&tall, 10, 3000, &busy_style()).plot;
        assert_eq!((plot.w, plot.h), (10, 3000));
        for (x, y) in [(0, 0), (9, 2999), (5, 1500)] {
            assert_eq!(
                pixel(&rgb, width, plot.x + x, plot.y + y),
                colormap.rgb(0.25)
            );
        }
    }

    #[test]
    fn band_labels_keep_near_their_bands_without_overlapping() {
        // Apart enough: each centred on its band.
        assert_eq!(spread_labels(&[20, 60], &[10, 10], 0, 100), [15, 55]);
        // Crowded: each below the one before.
        assert_eq!(
            spread_labels(&[10, 12, 14], &[10, 10, 10], 0, 100),
            [5, 15, 25]
        );
        // Crowded at the end: pushed back up so the last ends at the limit.
        assert_eq!(spread_labels(&[95, 98], &[10, 10], 0, 100), [80, 90]);
    }

    #[test]
    fn an_axis_of_one_band_is_not_labelled() {
        let band = |along, start, end| Band {
            along,
            start,
            end,
            label: format!("{start}..{end}"),
        };
        let mut style = busy_style();
        style.bands = vec![
            band(Along::Rows, 0, 5),
            band(Along::Rows, 5, 6),
            band(Along::Columns, 0, 4),
        ];
        register_fonts();
        let labels = BandLabels::of(&style);
        assert_eq!(labels.rows.len(), 2);
        assert!(labels.columns.is_empty());
        assert_eq!(labels.top_px(), 0);
        assert!(labels.right_px() > LEADER_PX);
        style.bands.push(band(Along::Rows, 3, 3));
        assert_eq!(style.validate().unwrap_err().exit_code(), 2);
        // A band beyond the grid is refused before anything is drawn or written.
        style.bands = vec![band(Along::Columns, 0, 2), band(Along::Columns, 2, 5)];
        let grid = Grid::new(4, 6, vec![0.5; 24]).unwrap();
        let path = std::env::temp_dir().join(format!("band-{}.svg", std::process::id()));
        let err = heatmap(&grid, &style, &path).unwrap_err();
        assert!(
            err.to_string()
                .contains("ends at 5, beyond the grid's 4 × 6 PEs"),
            "{err}"
        );
        assert!(!path.exists());
    }

    #[test]
    fn inverted_range_is_an_input_error() {
        let style = HeatmapStyle::new("t", "v", 1.0, 1.0);
        assert_eq!(style.validate().unwrap_err().exit_code(), 2);
    }
}
