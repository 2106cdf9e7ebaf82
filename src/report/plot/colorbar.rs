//! The colour scale: value → colour (viridis, or a blue–white–red diverging scale for
//! differences), and the colour bar that explains it.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::colors::colormaps::{ColorMap, ViridisRGB};
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::heatmap::HeatmapStyle;
use super::{tick_label, AXIS_TITLE_PX, FONT, TICK_PX};

/// Colour of a PE without data (NaN): a neutral grey that viridis never produces.
const NO_DATA_RGB: [u8; 3] = [190, 190, 190];
/// Entries in the lookup table: finer than 8-bit colour steps along viridis.
const LUT_ENTRIES: usize = 1024;

/// How values become colours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Palette {
    /// Viridis: dark to bright, for magnitudes (busy fraction, bytes).
    #[default]
    Viridis,
    /// Blue through white to red, for differences: white is the middle of the range (0 on a
    /// symmetric one), blue below, red above.
    Diverging,
}

/// Blue, white and red ends of the diverging scale (ColorBrewer RdBu's ends and middle).
const DIVERGING: [[f64; 3]; 3] = [
    [33.0, 102.0, 172.0],
    [247.0, 247.0, 247.0],
    [178.0, 24.0, 43.0],
];

/// The palette over `[vmin, vmax]`, precomputed so a full wafer maps in one pass.
pub(super) struct Colormap {
    vmin: f64,
    vmax: f64,
    lut: Vec<[u8; 3]>,
}

impl Colormap {
    #[cfg(test)]
    pub(super) fn new(vmin: f64, vmax: f64) -> Colormap {
        Colormap::with_palette(vmin, vmax, Palette::Viridis)
    }

    pub(super) fn with_palette(vmin: f64, vmax: f64, palette: Palette) -> Colormap {
        debug_assert!(vmin < vmax);
        let lut = (0..LUT_ENTRIES)
            .map(|i| {
                let t = i as f64 / (LUT_ENTRIES - 1) as f64;
                match palette {
                    Palette::Viridis => {
                        let RGBColor(r, g, b) = ViridisRGB.get_color(t as f32);
                        [r, g, b]
                    }
                    Palette::Diverging => {
                        let (from, to, u) = match t < 0.5 {
                            true => (DIVERGING[0], DIVERGING[1], 2.0 * t),
                            false => (DIVERGING[1], DIVERGING[2], 2.0 * t - 1.0),
                        };
                        let mix = |c: usize| (from[c] + (to[c] - from[c]) * u).round() as u8;
                        [mix(0), mix(1), mix(2)]
                    }
                }
            })
            .collect();
        Colormap { vmin, vmax, lut }
    }

    /// The colour of `value`, clamped to the range; NaN is "no data".
    pub(super) fn rgb(&self, value: f64) -> [u8; 3] {
        if value.is_nan() {
            return NO_DATA_RGB;
        }
        let t = ((value - self.vmin) / (self.vmax - self.vmin)).clamp(0.0, 1.0);
        self.lut[(t * (LUT_ENTRIES - 1) as f64).round() as usize]
    }
}

/// Fills `bar` with the scale in `steps` horizontal strips, vmax at the top, and frames it.
pub(super) fn draw_gradient<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    bar: super::heatmap::Rect,
    colormap: &Colormap,
    steps: usize,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let steps = steps.clamp(1, bar.h.max(1) as usize);
    let edge = |i: usize| bar.y + (i as f64 * bar.h as f64 / steps as f64).round() as i32;
    for i in 0..steps {
        let t = 1.0 - (i as f64 + 0.5) / steps as f64;
        let [r, g, b] = colormap.rgb(colormap.vmin + t * (colormap.vmax - colormap.vmin));
        let strip = [(bar.x, edge(i)), (bar.x + bar.w, edge(i + 1))];
        root.draw(&Rectangle::new(strip, RGBColor(r, g, b).filled()))?;
    }
    Ok(())
}

/// Length of the colour bar's tick marks, and the gap between a tick and its label.
const TICK_LEN_PX: i32 = 6;
const TICK_GAP_PX: i32 = 4;
/// Ticks on the colour bar: few enough to stay apart on a short bar.
const TICKS_MAX: usize = 6;

/// The colour bar's ticks with their labels: round values, plus vmin and vmax themselves where
/// they are far enough from a round one to have room (e.g. a capacity such as 49,152 bytes).
pub(super) fn ticks(vmin: f64, vmax: f64, bar_px: i32) -> Vec<(f64, String)> {
    let mut values = super::nice_ticks(vmin, vmax, TICKS_MAX);
    let decimals = super::tick_decimals(&values);
    // Room for one label: 1.5 text heights, in value units.
    let room = (vmax - vmin) * 1.5 * TICK_PX / f64::from(bar_px.max(1));
    let mut ends = Vec::new();
    if values.first().is_none_or(|&first| first - vmin > room) {
        ends.push(vmin);
    }
    if values.last().is_none_or(|&last| vmax - last > room) {
        ends.push(vmax);
    }
    let label = |v: f64, d: usize| (v, tick_label(v, d));
    let mut ticks: Vec<_> = values.drain(..).map(|v| label(v, decimals)).collect();
    for end in ends {
        // An end value keeps the axis' decimals and gets up to two more if it needs them.
        let own = super::tick_decimals(&[end]).clamp(decimals, decimals + 2);
        ticks.push(label(end, own));
    }
    ticks.sort_by(|a, b| a.0.total_cmp(&b.0));
    ticks
}

/// Horizontal room the colour bar's ticks, their labels and its title take right of the bar.
pub(super) fn labels_px(tick_label_px: i32) -> i32 {
    TICK_LEN_PX + TICK_GAP_PX + tick_label_px + 14 + AXIS_TITLE_PX as i32 + 4
}

/// The colour bar's frame, ticks on its right with labels, and its title (with the unit).
pub(super) fn draw_axis<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    bar: super::heatmap::Rect,
    labels_px: i32,
    style: &HeatmapStyle,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    // The frame sits one pixel outside the gradient, like the heatmap's own frame.
    let (right, bottom) = (bar.x + bar.w, bar.y + bar.h);
    root.draw(&Rectangle::new(
        [(bar.x - 1, bar.y - 1), (right, bottom)],
        BLACK.stroke_width(1),
    ))?;
    let span = style.vmax - style.vmin;
    let label_style = (FONT, TICK_PX)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for (value, text) in ticks(style.vmin, style.vmax, bar.h) {
        let y = bottom - 1 - ((value - style.vmin) / span * (bar.h - 1) as f64).round() as i32;
        let tick = vec![(right, y), (right + TICK_LEN_PX, y)];
        root.draw(&PathElement::new(tick, BLACK.stroke_width(1)))?;
        root.draw_text(&text, &label_style, (right + TICK_LEN_PX + TICK_GAP_PX, y))?;
    }
    // Reads bottom to top, like the heatmap's y-axis title, at the far side of the labels.
    let title = (FONT, AXIS_TITLE_PX)
        .into_font()
        .transform(FontTransform::Rotate270)
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Center));
    let x = right + labels_px - AXIS_TITLE_PX as i32 / 2 - 4;
    root.draw_text(&style.value_label, &title, (x, bar.y + bar.h / 2))
}
