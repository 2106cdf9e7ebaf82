//! Waterfall charts: a starting bar, floating bars that each move the running value up or down,
//! and a closing bar — e.g. from the ideal speedup 1/(1 − s), through what Amdahl's law and
//! each category of wafer time take away, to the simulated speedup. Panels stack vertically
//! under one title, so that every bar keeps a readable label.

use std::path::Path;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::output::{self, Format};
use super::{
    drawing_failed, encode_png, register_fonts, tick_decimals, tick_label, AXIS_TITLE_PX, CANVAS,
    FONT, TICK_PX, TITLE_PX,
};
use crate::error::{Error, Result};

/// One panel: bars from `base` to `start`, then `steps` each added to the running value, then a
/// closing bar from `base` to `end` (what the steps reach, give or take changes too small for a
/// bar of their own).
#[derive(Debug, Clone, PartialEq)]
pub struct Waterfall {
    /// Drawn above the panel.
    pub title: String,
    pub y_label: String,
    /// The value bars stand on (1 for a speedup: no gain).
    pub base: f64,
    pub start: (String, f64),
    /// (label, change): a negative change is a loss, drawn red; a positive one green.
    pub steps: Vec<(String, f64)>,
    pub end: (String, f64),
}

impl Waterfall {
    /// The running value after each step, starting value first.
    fn levels(&self) -> Vec<f64> {
        let mut levels = vec![self.start.1];
        for (_, change) in &self.steps {
            levels.push(levels[levels.len() - 1] + change);
        }
        levels
    }

    fn validate(&self) -> Result<()> {
        let values = std::iter::once(self.base)
            .chain(std::iter::once(self.start.1))
            .chain(self.steps.iter().map(|s| s.1))
            .chain(std::iter::once(self.end.1));
        if let Some(v) = values.into_iter().find(|v| !v.is_finite()) {
            return Err(Error::input(format!(
                "waterfall \"{}\": value {v} is not finite",
                self.title
            )));
        }
        Ok(())
    }
}

const LOSS: RGBColor = RGBColor(213, 94, 0);
const GAIN: RGBColor = RGBColor(0, 158, 115);
const TOTAL: RGBColor = RGBColor(0, 114, 178);

/// Draws the panels of a waterfall figure to `path`: PNG or SVG, by extension.
pub fn waterfall(title: &str, panels: &[Waterfall], path: &Path) -> Result<()> {
    let format = Format::of(path)?;
    if panels.is_empty() {
        return Err(Error::input(format!(
            "waterfall \"{title}\": no panel to draw"
        )));
    }
    for panel in panels {
        panel.validate()?;
    }
    register_fonts();
    render_chart!(path, format, |root| draw(&root, title, panels))
}

type Area<DB> = DrawingArea<DB, plotters::coord::Shift>;

fn draw<DB: DrawingBackend>(
    root: &Area<DB>,
    title: &str,
    panels: &[Waterfall],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let body = root.titled(title, (FONT, TITLE_PX, FontStyle::Bold))?;
    for (area, panel) in body.split_evenly((panels.len(), 1)).iter().zip(panels) {
        draw_panel(area, panel)?;
    }
    root.present()
}

fn draw_panel<DB: DrawingBackend>(
    area: &Area<DB>,
    panel: &Waterfall,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let levels = panel.levels();
    let bars = panel.steps.len() as i32 + 2;
    let top = levels
        .iter()
        .fold(panel.base.max(panel.end.1), |m, v| m.max(*v));
    let bottom = levels
        .iter()
        .fold(panel.base.min(panel.end.1), |m, v| m.min(*v));
    let pad = 0.15 * (top - bottom).max(1e-9);
    let (y_lo, y_hi) = ((bottom - pad / 3.0).max(0.0), top + pad);
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, (FONT, AXIS_TITLE_PX, FontStyle::Bold))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(72)
        // Segments 0..=bars - 1: one per bar.
        .build_cartesian_2d((0..bars - 1).into_segmented(), y_lo..y_hi)?;
    let mut labels: Vec<&str> = vec![panel.start.0.as_str()];
    labels.extend(panel.steps.iter().map(|s| s.0.as_str()));
    labels.push(panel.end.0.as_str());
    let ticks: Vec<f64> = super::nice_ticks(y_lo, y_hi, 5);
    let decimals = tick_decimals(&ticks);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(225, 225, 225))
        .y_labels(5)
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i as usize).unwrap_or(&"").to_string(),
            _ => String::new(),
        })
        .y_label_formatter(&|v| tick_label(*v, decimals))
        .label_style((FONT, TICK_PX))
        .axis_desc_style((FONT, TICK_PX))
        .y_desc(&panel.y_label)
        .draw()?;
    // (bar, from, to, colour, the figure written over it)
    let mut spans = vec![(
        0,
        panel.base,
        levels[0],
        TOTAL,
        format!("{:.2}x", levels[0]),
    )];
    for (i, (_, change)) in panel.steps.iter().enumerate() {
        let color = if *change < 0.0 { LOSS } else { GAIN };
        let text = format!("{change:+.2}");
        spans.push((i as i32 + 1, levels[i], levels[i + 1], color, text));
    }
    let end = panel.end.1;
    spans.push((bars - 1, panel.base, end, TOTAL, format!("{end:.2}x")));
    chart.draw_series(spans.iter().map(|&(bar, from, to, color, _)| {
        let mut rect = Rectangle::new(
            [
                (SegmentValue::Exact(bar), from.min(to)),
                (SegmentValue::Exact(bar + 1), from.max(to)),
            ],
            color.filled(),
        );
        rect.set_margin(0, 0, 14, 14);
        rect
    }))?;
    let label_style = (FONT, TICK_PX)
        .into_font()
        .into_text_style(area)
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    chart.draw_series(spans.iter().map(|(bar, from, to, _, text)| {
        Text::new(
            text.clone(),
            (SegmentValue::CenterOf(*bar), from.max(*to)),
            label_style.clone(),
        )
    }))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_run_from_the_start_through_every_step() {
        let w = Waterfall {
            title: "t".into(),
            y_label: "y".into(),
            base: 1.0,
            start: ("ideal".into(), 4.0),
            steps: vec![("a".into(), -1.5), ("b".into(), -0.25), ("c".into(), 0.05)],
            end: ("end".into(), 2.3),
        };
        assert_eq!(w.levels(), vec![4.0, 2.5, 2.25, 2.3]);
        let mut bad = w.clone();
        bad.steps.push(("nan".into(), f64::NAN));
        assert_eq!(bad.validate().unwrap_err().exit_code(), 2);
    }
}
