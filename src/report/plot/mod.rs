//! Pictures: per-PE heatmaps and speedup line charts, as PNG or SVG by file extension.
//!
//! Architecture Invariant: `plot` only draws what it is given. It knows nothing about the
//! simulator; callers pass the values, the title, the labels and the value range, so several
//! pictures can share one colour scale.
//!
//! Text is drawn with DejaVu Sans embedded in the binary (the `dejavu` crate) through plotters'
//! `ab_glyph` renderer, so pictures render the same on a machine without fontconfig or freetype.
//! Every picture is rendered in memory, then written atomically (`report::write_atomic`).

/// Draws a chart with `$draw` on the root area of a PNG or SVG canvas of `CANVAS` pixels (by
/// `$format`), and writes it atomically to `$path`; a drawing error names the picture.
macro_rules! render_chart {
    ($path:expr, $format:expr, |$root:ident| $draw:expr) => {{
        let path: &std::path::Path = $path;
        let bytes = match $format {
            Format::Png => {
                let mut rgb = vec![255u8; CANVAS.0 as usize * CANVAS.1 as usize * 3];
                {
                    let $root = BitMapBackend::with_buffer(&mut rgb, CANVAS).into_drawing_area();
                    $draw.map_err(|e| drawing_failed(path, e))?;
                }
                encode_png(&rgb, CANVAS).map_err(|e| drawing_failed(path, e))?
            }
            Format::Svg => {
                let mut svg = String::new();
                {
                    let $root = SVGBackend::with_string(&mut svg, CANVAS).into_drawing_area();
                    $draw.map_err(|e| drawing_failed(path, e))?;
                }
                svg.into_bytes()
            }
        };
        output::save(path, &bytes)
    }};
}

mod colorbar;
mod heatmap;
mod line;
mod output;
mod waterfall;

pub use colorbar::Palette;
pub use heatmap::{heatmap, Along, Band, Grid, HeatmapStyle};
pub use line::{line_chart, line_figure, Figure, LineChart, Series};
pub use waterfall::{waterfall, Waterfall};

use std::path::Path;
use std::sync::Once;

use plotters::style::FontStyle;

use crate::error::Error;

/// The font family every text element asks for; DejaVu Sans is registered under this name.
const FONT: &str = "sans-serif";
/// Canvas size in pixels of every chart (line charts, waterfalls), PNG and SVG alike.
const CANVAS: (u32, u32) = (960, 640);
/// Text sizes in pixels: the title, the axis titles, the tick labels.
const TITLE_PX: f64 = 24.0;
const AXIS_TITLE_PX: f64 = 20.0;
const TICK_PX: f64 = 17.0;

/// Registers the embedded DejaVu Sans with plotters, once per process.
fn register_fonts() {
    static FONTS: Once = Once::new();
    FONTS.call_once(|| {
        let normal =
            plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let bold = plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
        // The embedded fonts are fixed at build time; if one ever failed to parse, drawing text
        // would fail with a font error, which `drawing_failed` reports.
        debug_assert!(
            normal.is_ok() && bold.is_ok(),
            "embedded DejaVu Sans parses"
        );
    });
}

/// The width of `text` at `size_px`, with the registered font (no canvas needed).
fn measure(text: &str, size_px: f64, weight: FontStyle) -> i32 {
    use plotters::style::IntoFont;
    let font = (FONT, size_px, weight).into_font();
    font.box_size(text).map(|(w, _)| w as i32).unwrap_or(0)
}

/// Refuses, before any work, a picture path `flag` names that could not be drawn: an extension
/// other than png or svg, or a file that cannot be written there (`report::check_output_file`).
pub fn check_picture_path(flag: &str, path: &Path) -> crate::Result<()> {
    output::Format::of(path).map_err(|e| Error::Input(format!("{flag} {e}")))?;
    crate::report::check_output_file(flag, path)
}

/// A drawing error from plotters (memory backends, so in practice only a font problem), reported
/// against the picture being drawn.
fn drawing_failed(path: &Path, error: impl std::fmt::Display) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(format!("drawing the picture failed: {error}")),
    }
}

/// Encodes a tightly packed 8-bit RGB buffer as PNG (fast compression: a full-wafer heatmap
/// compresses well anyway, and encoding time dominates rendering).
fn encode_png(rgb: &[u8], (width, height): (u32, u32)) -> Result<Vec<u8>, png::EncodingError> {
    debug_assert_eq!(rgb.len(), width as usize * height as usize * 3);
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    encoder
        .write_header()
        .and_then(|mut writer| writer.write_image_data(rgb))?;
    Ok(bytes)
}

/// At most `count_max` round values (1, 2, 2.5 or 5 × 10^k apart) from `lo` to `hi`.
fn nice_ticks(lo: f64, hi: f64, count_max: usize) -> Vec<f64> {
    debug_assert!(lo < hi && count_max >= 2);
    let raw_step = (hi - lo) / (count_max - 1) as f64;
    let magnitude = 10f64.powf(raw_step.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|&s| s >= raw_step * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude);
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    // index × multiple ÷ 10^k rounds once, so 0.3 does not come out as 0.30000000000000004.
    let multiple = step / magnitude;
    let value = |i: i64| match magnitude < 1.0 {
        true => i as f64 * multiple / (1.0 / magnitude).round(),
        false => i as f64 * multiple * magnitude,
    };
    (first..=last).map(value).collect()
}

/// The fewest decimals (at most 4) that write every one of `values` exactly, so that labels on
/// one axis share their decimals: 0.0, 0.5, 1.0 rather than 0, 0.5, 1.
fn tick_decimals(values: &[f64]) -> usize {
    const DECIMALS_MAX: usize = 4;
    (0..DECIMALS_MAX)
        .find(|&decimals| {
            let scale = 10f64.powi(decimals as i32);
            values
                .iter()
                .all(|v| ((v * scale).round() / scale - v).abs() <= 1e-9 * v.abs().max(1.0))
        })
        .unwrap_or(DECIMALS_MAX)
}

/// A tick label with `decimals` decimals; whole numbers from 10,000 up get thousands separators.
fn tick_label(value: f64, decimals: usize) -> String {
    if decimals == 0 && value.abs() >= 10_000.0 {
        let digits = super::thousands(value.abs().round() as u128);
        return if value < 0.0 {
            format!("-{digits}")
        } else {
            digits
        };
    }
    let text = format!("{value:.decimals$}");
    // "-0.0" would read as a different value than "0.0".
    match text
        .trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        true => text.trim_start_matches('-').to_string(),
        false => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ticks_are_round_and_inside() {
        assert_eq!(nice_ticks(0.0, 1.0, 6), vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        let bytes = vec![0.0, 10_000.0, 20_000.0, 30_000.0, 40_000.0];
        assert_eq!(nice_ticks(0.0, 49_152.0, 6), bytes);
        assert_eq!(nice_ticks(0.25, 0.75, 6), vec![0.3, 0.4, 0.5, 0.6, 0.7]);
        assert_eq!(nice_ticks(-5.0, 5.0, 6), vec![-4.0, -2.0, 0.0, 2.0, 4.0]);
    }

    #[test]
    fn tick_labels_share_decimals_and_separate_thousands() {
        assert_eq!(tick_decimals(&[0.0, 0.5, 1.0]), 1);
        assert_eq!(tick_decimals(&[0.0, 0.25, 0.5]), 2);
        assert_eq!(tick_decimals(&[0.0, 10_000.0, 49_152.0]), 0);
        assert_eq!(tick_decimals(&[1.0 / 3.0]), 4);
        assert_eq!(tick_label(49_152.0, 0), "49,152");
        assert_eq!(tick_label(-20_000.0, 0), "-20,000");
        assert_eq!(tick_label(0.4, 1), "0.4");
        assert_eq!(tick_label(-0.0001, 1), "0.0");
        assert_eq!(tick_label(300.0, 0), "300");
    }
}
