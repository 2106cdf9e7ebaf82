//! The pictures of a `train` run, drawn from saved results (`counters.npz`, `report.json`),
//! so that `wafersim plot` redraws exactly what `train` drew.

use std::path::{Path, PathBuf};

use super::counters::{CountersFile, RunCounters};
use super::plot::{
    heatmap, line_figure, waterfall, Along, Band, Figure, Grid, HeatmapStyle, LineChart, Palette,
    Series, Waterfall,
};
use super::train::PhaseFigures;
use crate::error::{Error, Result};
use crate::schedule::{BandAxis, PeBand, PeGrid};

/// What a heatmap shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HeatmapKind {
    /// Busy fraction of each PE over a pre-training step.
    Utilization,
    /// SRAM headroom of each PE: bytes its capacity leaves free (a 0-capacity scale would draw
    /// 45 KB and 47 KB used alike).
    Sram,
    /// A sparse run's busy fraction less the dense run's, PE by PE (blue: less busy than dense).
    Difference,
}

/// How a heatmap's colour scale is chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum HeatmapScale {
    /// The kind's own: busy fraction 0-1, headroom 0 to the largest, a difference symmetric
    /// around 0 out to the largest change; the same for every run, so they compare.
    #[default]
    Fixed,
    /// From the picture's own lowest to highest value: shows small differences within one run.
    Auto,
}

/// Decimals of its sparsity a run's name keeps: names go into file names, which must stay
/// short whatever the sparsity (`1e-300` in full is 302 characters).
const RUN_NAME_DECIMALS: usize = 6;

/// "dense" or "s0.75": how runs are named in file names and on the command line; the sparsity
/// to [`RUN_NAME_DECIMALS`] decimals, trailing zeros dropped.
pub fn run_name(sparsity: f64) -> String {
    match sparsity_label(sparsity).as_str() {
        "0" => "dense".into(),
        label => format!("s{label}"),
    }
}

/// The sparsity to [`RUN_NAME_DECIMALS`] decimals without trailing zeros: "0.75", "0".
fn sparsity_label(sparsity: f64) -> String {
    let fixed = format!("{:.*}", RUN_NAME_DECIMALS, sparsity.abs());
    fixed
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_string()
}

/// Refuses a study whose runs (`levels`, the dense run first) would share a name, hence a
/// heatmap file: two sparsities equal to [`RUN_NAME_DECIMALS`] decimals, or one that rounds to
/// the dense run's 0; and one that rounds to 1, whose name would read as no weights left. `origin` says where the sparsities came from (a flag or a key).
pub fn check_run_names(levels: &[f64], origin: &str) -> Result<()> {
    for (i, &sparsity) in levels.iter().enumerate() {
        let name = run_name(sparsity);
        // 1e-300 in full is 302 characters: a long figure is shown as an exponent.
        let shown = match sparsity.to_string() {
            full if full.len() <= 20 => full,
            _ => format!("{sparsity:e}"),
        };
        if name == "s1" {
            return Err(Error::Input(format!(
                "{origin}: sparsity {shown} would be named s1, which reads as sparsity 1 (no \
                 weights left): runs are named by their sparsity to {RUN_NAME_DECIMALS} decimals \
                 (heatmap files among them); give a sparsity of at most 0.999999"
            )));
        }
        if let Some(&other) = levels[..i].iter().find(|&&o| run_name(o) == name) {
            return Err(Error::Input(format!(
                "{origin}: sparsity {shown} would be named {name} like the run at {other}: runs \
                 are named by their sparsity to {RUN_NAME_DECIMALS} decimals (heatmap files \
                 among them); give sparsities that differ within {RUN_NAME_DECIMALS} decimals and \
                 are 0 or at least 0.000001"
            )));
        }
    }
    Ok(())
}

/// The file name of a run's utilisation heatmap in train's folder.
pub fn utilization_heatmap_name(sparsity: f64, extension: &str) -> String {
    format!("heatmap-utilization-{}.{extension}", run_name(sparsity))
}

/// Draws one run's heatmap to `path` (PNG or SVG by extension). On the fixed scale, utilisation
/// heatmaps of every run share 0–1, so they compare; a difference map is the run's busy fraction
/// less the dense run's (`file.runs[0]`), refused for the dense run itself.
pub fn draw_heatmap(
    file: &CountersFile,
    run: &RunCounters,
    kind: HeatmapKind,
    scale: HeatmapScale,
    path: &Path,
) -> Result<()> {
    let who = format!(
        "{} on {}, pre-training step, {}",
        file.model,
        file.fabric,
        if run.sparsity == 0.0 {
            "dense".to_string()
        } else {
            format!("sparsity {}", super::table::shown_sparsity(run.sparsity))
        }
    );
    let busy = |r: &RunCounters| {
        let cycles = r.step_cycles.max(1) as f64;
        to_grid(&r.busy_cycles, |v| v as f64 / cycles)
    };
    let (grid, mut style) = match kind {
        HeatmapKind::Utilization => (
            busy(run)?,
            HeatmapStyle::new(
                format!("PE utilisation: {who}"),
                "busy fraction of the step",
                0.0,
                1.0,
            ),
        ),
        HeatmapKind::Sram => {
            let capacity = run.sram_capacity_bytes;
            let grid = to_grid(&run.sram_bytes, |v| capacity.saturating_sub(v) as f64)?;
            let label = format!(
                "SRAM bytes free of {} (least free: {})",
                super::table::thousands(capacity as u128),
                super::table::thousands(grid.min().max(0.0) as u128)
            );
            let top = grid.max().max(1.0);
            (
                grid,
                HeatmapStyle::new(format!("SRAM headroom per PE: {who}"), label, 0.0, top),
            )
        }
        HeatmapKind::Difference => {
            let dense = file
                .runs
                .first()
                .filter(|d| d.sparsity == 0.0 && run.sparsity > 0.0);
            let dense = dense.ok_or_else(|| {
                Error::Input(format!(
                    "a difference heatmap is a sparse run's against the dense run: run {} has \
                     none to compare with",
                    run_name(run.sparsity)
                ))
            })?;
            let grid = busy(run)?.minus(&busy(dense)?)?;
            let reach = grid.min().abs().max(grid.max().abs()).max(1e-3);
            let mut style = HeatmapStyle::new(
                format!("PE utilisation, {who}, less the dense run's"),
                "busy fraction, sparse less dense",
                -reach,
                reach,
            );
            style.palette = Palette::Diverging;
            (grid, style)
        }
    };
    // The difference map's bands are the sparse run's: where its tiles end.
    let bands = match kind {
        HeatmapKind::Sram => &run.sram_bands,
        HeatmapKind::Utilization | HeatmapKind::Difference => &run.busy_bands,
    };
    style.bands = plot_bands(bands);
    if scale == HeatmapScale::Auto {
        let (lo, hi) = (grid.min(), grid.max());
        // A flat picture keeps the fixed scale: there is no range to stretch.
        if hi > lo {
            (style.vmin, style.vmax) = (lo, hi);
        }
    }
    heatmap(&grid, &style, path)
}

/// A step's bands of PEs as the heatmap labels them.
pub fn plot_bands(bands: &[PeBand]) -> Vec<Band> {
    bands
        .iter()
        .map(|b| Band {
            along: match b.axis {
                BandAxis::Rows => Along::Rows,
                BandAxis::Columns => Along::Columns,
            },
            start: b.start as usize,
            end: b.end as usize,
            label: b.label.clone(),
        })
        .collect()
}

fn to_grid(grid: &PeGrid, value: impl Fn(u64) -> f64) -> Result<Grid> {
    Grid::new(
        grid.width as usize,
        grid.height as usize,
        grid.values.iter().map(|&v| value(v)).collect(),
    )
}

/// The file name of a sparse run's difference heatmap (its busy fraction less the dense run's).
pub fn difference_heatmap_name(sparsity: f64, extension: &str) -> String {
    format!("heatmap-difference-{}.{extension}", run_name(sparsity))
}

/// Every heatmap of a run folder, PNG and SVG: utilisation per run, the difference from dense per
/// sparse run, and the SRAM headroom of the dense run.
pub fn draw_train_heatmaps(file: &CountersFile, out: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for extension in ["png", "svg"] {
        for run in &file.runs {
            let path = out.join(utilization_heatmap_name(run.sparsity, extension));
            draw_heatmap(
                file,
                run,
                HeatmapKind::Utilization,
                HeatmapScale::Fixed,
                &path,
            )?;
            written.push(path);
            if run.sparsity > 0.0 {
                let path = out.join(difference_heatmap_name(run.sparsity, extension));
                draw_heatmap(
                    file,
                    run,
                    HeatmapKind::Difference,
                    HeatmapScale::Fixed,
                    &path,
                )?;
                written.push(path);
            }
        }
        if let Some(dense) = file.runs.first() {
            let path = out.join(format!("heatmap-sram.{extension}"));
            draw_heatmap(file, dense, HeatmapKind::Sram, HeatmapScale::Fixed, &path)?;
            written.push(path);
        }
    }
    Ok(written)
}

/// What the speedup chart reads of a `report.json` (other fields are ignored).
#[derive(Debug, serde::Deserialize)]
struct SavedReport {
    schema_version: u32,
    version: String,
    model: String,
    fabric: String,
    clock_hz: f64,
    /// The masks' structure; reports before it say nothing (random).
    #[serde(default)]
    mask: Option<String>,
    runs: Vec<SavedRun>,
    speedup_curve: Vec<SavedCurvePoint>,
}

/// A point of `speedup_curve` (`schedule::CurvePoint`).
#[derive(Debug, serde::Deserialize)]
struct SavedCurvePoint {
    sparsity: f64,
    pretrain_theoretical_speedup: f64,
    pretrain_simulated_speedup: f64,
    total_theoretical_speedup: f64,
    total_simulated_speedup: f64,
}

#[derive(Debug, serde::Deserialize)]
struct SavedRun {
    #[serde(rename = "run_sparsity")]
    sparsity: f64,
    phases: Vec<PhaseFigures>,
    total: PhaseFigures,
    gap: Vec<SavedGap>,
}

/// A share of `gap` (`report::train::GapShare`).
#[derive(Debug, serde::Deserialize)]
struct SavedGap {
    /// How tables name the category (`I/O`); its machine key is `category`.
    label: String,
    share: f64,
}

/// Reads a `report.json` for the speedup chart, refusing what no `train` run could have
/// written: another version, no dense run first, a sparsity outside [0, 1) or repeated, a
/// pre-training phase out of place, and figures no run produces ([`PhaseFigures::check`]).
/// Errors name `origin` and the field.
fn read_saved_report(text: &str, origin: &str) -> Result<SavedReport> {
    let report: SavedReport = serde_json::from_str(text)
        .map_err(|e| Error::Input(format!("{origin}: not a train report ({e})")))?;
    let bad = |field: String, why: String| Error::Input(format!("{origin}: {field} {why}"));
    if report.schema_version != super::SCHEMA_VERSION {
        return Err(bad(
            "schema_version".into(),
            format!(
                "{}: this wafersim reads reports of schema version {}; rerun train",
                report.schema_version,
                super::SCHEMA_VERSION
            ),
        ));
    }
    if report.version != crate::VERSION {
        return Err(bad(
            "version".into(),
            format!(
                "{:?}: written by another wafersim than this {}; rerun train",
                report.version,
                crate::VERSION
            ),
        ));
    }
    let dense = report
        .runs
        .first()
        .filter(|r| r.sparsity == 0.0)
        .ok_or_else(|| {
            bad(
                "runs[0].run_sparsity".into(),
                "must be 0: the dense run".into(),
            )
        })?;
    for (i, run) in report.runs.iter().enumerate() {
        let field = |name: &str| format!("runs[{i}].{name}");
        crate::spec::check_sparsity(
            &format!("{origin}: {}", field("run_sparsity")),
            run.sparsity,
        )?;
        if report.runs[..i].iter().any(|r| r.sparsity == run.sparsity) {
            return Err(bad(
                field("run_sparsity"),
                format!("{}: a second run at it", run.sparsity),
            ));
        }
        let pretrain = run
            .phases
            .first()
            .filter(|p| p.phase == "pretrain" && p.sparsity == run.sparsity)
            .ok_or_else(|| {
                bad(
                    field("phases[0]"),
                    "must be the pre-training at the run's sparsity".into(),
                )
            })?;
        let dense_pretrain = &dense.phases[0];
        for (name, phase, dense_phase) in [
            ("phases[0]", pretrain, dense_pretrain),
            ("total", &run.total, &dense.total),
        ] {
            phase
                .check(dense_phase.cycles, report.clock_hz)
                .map_err(|(key, why)| bad(field(&format!("{name}.{key}")), why))?;
        }
    }
    Ok(report)
}

/// Theoretical and simulated speedup against sparsity, pre-training and the whole recipe in two
/// panels on one scale, from the text of a `report.json` (as written by `train`; `origin` names
/// it in errors): the curves are the report's `speedup_curve`, simulated every 0.1 of sparsity,
/// with a marker on each sparsity the recipe ran; the ideal 1/(1 − s) is clipped to the data.
pub fn draw_speedup(text: &str, origin: &str, path: &Path) -> Result<()> {
    let report = read_saved_report(text, origin)?;
    let curve = &report.speedup_curve;
    check_curve(&report, origin)?;
    let run_levels: Vec<f64> = report.runs.iter().map(|r| r.sparsity).collect();
    let panel = |title: &str,
                 theory: fn(&SavedCurvePoint) -> f64,
                 simulated: fn(&SavedCurvePoint) -> f64| {
        let series =
            |name: &str, style: usize, dashed: bool, figure: fn(&SavedCurvePoint) -> f64| {
                let points: Vec<(f64, f64)> =
                    curve.iter().map(|p| (p.sparsity, figure(p))).collect();
                let mut series = Series::new(name, points.clone());
                series.style = Some(style);
                series.dashed = dashed;
                series.marked = Some(
                    points
                        .into_iter()
                        .filter(|p| run_levels.contains(&p.0))
                        .collect(),
                );
                series
            };
        let mut chart = LineChart::new(
            title,
            "pre-training weight sparsity",
            "speedup over the dense run (x)",
        );
        chart.series = vec![
            series("theoretical (FLOP count)", 0, true, theory),
            series("simulated (wafer time)", 1, false, simulated),
        ];
        chart
    };
    let mut panels = vec![
        panel(
            "pre-training",
            |p| p.pretrain_theoretical_speedup,
            |p| p.pretrain_simulated_speedup,
        ),
        panel(
            "whole recipe",
            |p| p.total_theoretical_speedup,
            |p| p.total_simulated_speedup,
        ),
    ];
    // One scale for both panels, set by the data (the ideal curve is clipped to it).
    let y_max = curve
        .iter()
        .flat_map(|p| {
            [
                p.pretrain_theoretical_speedup,
                p.pretrain_simulated_speedup,
                p.total_theoretical_speedup,
                p.total_simulated_speedup,
            ]
        })
        .fold(1.0, f64::max);
    let s_max = curve.last().map_or(0.5, |p| p.sparsity);
    for chart in &mut panels {
        chart.y_range = Some((0.0, 1.08 * y_max));
        chart.x_range = Some((-0.02, s_max + 0.02));
        chart.reference = Some(Series::ideal_speedup(s_max));
    }
    let figure = Figure {
        title: format!(
            "Speedup from sparse pre-training: {} on {}{}",
            report.model,
            report.fabric,
            match report.mask.as_deref() {
                None | Some("random") => String::new(),
                Some(mask) => format!(", {mask} masks"),
            }
        ),
        panels,
    };
    line_figure(&figure, path)
}

/// Where each sparse run's whole-recipe speedup goes, as a waterfall per run: the ideal
/// 1/(1 − s) of its masked weights, what the dense ops leave of it (Amdahl: the FLOP count's
/// speedup θ), then each category of wafer time in the report's `gap` order (largest first),
/// to the simulated speedup σ. Speedups do not add, time does: with the categories' shares
/// `g` of the run's time, the level after the first k is `1 / (1/θ + Σ g / σ)`, which reaches
/// σ when every share is in (they add up to `1 − σ/θ`).
pub fn draw_gap(text: &str, origin: &str, path: &Path) -> Result<()> {
    let report = read_saved_report(text, origin)?;
    // Panels by sparsity, as the speedup chart's axis runs, whatever order --sparsity gave.
    let mut sparse: Vec<&SavedRun> = report.runs.iter().filter(|r| r.sparsity > 0.0).collect();
    sparse.sort_by(|a, b| a.sparsity.total_cmp(&b.sparsity));
    let panels: Vec<Waterfall> = sparse.into_iter().map(gap_waterfall).collect();
    if panels.is_empty() {
        return Err(Error::Input(format!(
            "{origin}: no sparse run: the gap is a sparse run's against the dense one"
        )));
    }
    let title = format!(
        "Where the gap goes: {} on {}, whole recipe",
        report.model, report.fabric
    );
    waterfall(&title, &panels, path)
}

fn gap_waterfall(run: &SavedRun) -> Waterfall {
    let ideal = 1.0 / (1.0 - run.sparsity);
    let (theory, simulated) = (run.total.theoretical_speedup, run.total.simulated_speedup);
    let mut steps = vec![("Amdahl".to_string(), theory - ideal)];
    let (mut level, mut shares) = (theory, 0.0);
    for gap in &run.gap {
        shares += gap.share;
        let next = 1.0 / (1.0 / theory + shares / simulated);
        // A category that moves the speedup by less than a hundredth is not worth a bar.
        if (next - level).abs() >= 0.005 {
            steps.push((gap.label.clone(), next - level));
            level = next;
        }
    }
    // What the small categories left out add up to, if a reader would see it.
    if (simulated - level).abs() >= 0.005 {
        steps.push(("other".to_string(), simulated - level));
    }
    Waterfall {
        title: format!(
            "s = {}: the FLOPs promise {theory:.2}x, the wafer gives {simulated:.2}x",
            super::table::shown_sparsity(run.sparsity)
        ),
        y_label: "speedup over dense (x)".into(),
        base: 1.0,
        start: ("ideal 1/(1-s)".into(), ideal),
        steps,
        end: ("simulated".into(), simulated),
    }
}

/// Refuses a `speedup_curve` no `train` run could have written: out of order, missing a run's
/// sparsity, a figure not finite and positive, a FLOP speedup below 1 or above the ideal
/// 1/(1 − s), or, at a run's sparsity, figures other than the run's.
fn check_curve(report: &SavedReport, origin: &str) -> Result<()> {
    let bad = |field: String, why: String| Error::Input(format!("{origin}: {field} {why}"));
    let curve = &report.speedup_curve;
    for run in &report.runs {
        if !curve.iter().any(|p| p.sparsity == run.sparsity) {
            let why = format!("has no point at sparsity {}, a run's", run.sparsity);
            return Err(bad("speedup_curve".into(), why));
        }
    }
    for (i, p) in curve.iter().enumerate() {
        let field = |name: &str| format!("speedup_curve[{i}].{name}");
        crate::spec::check_sparsity(&format!("{origin}: {}", field("sparsity")), p.sparsity)?;
        if i > 0 && p.sparsity <= curve[i - 1].sparsity {
            return Err(bad(
                field("sparsity"),
                "is not above the point before".into(),
            ));
        }
        let ideal = 1.0 / (1.0 - p.sparsity);
        let run = report.runs.iter().find(|r| r.sparsity == p.sparsity);
        let figures = [
            (
                "pretrain_theoretical_speedup",
                p.pretrain_theoretical_speedup,
                true,
                run.map(|r| r.phases[0].theoretical_speedup),
            ),
            (
                "pretrain_simulated_speedup",
                p.pretrain_simulated_speedup,
                false,
                run.map(|r| r.phases[0].simulated_speedup),
            ),
            (
                "total_theoretical_speedup",
                p.total_theoretical_speedup,
                true,
                run.map(|r| r.total.theoretical_speedup),
            ),
            (
                "total_simulated_speedup",
                p.total_simulated_speedup,
                false,
                run.map(|r| r.total.simulated_speedup),
            ),
        ];
        for (name, value, flops, of_run) in figures {
            let allowed = match flops {
                true => (1.0..=ideal * (1.0 + 1e-9)).contains(&value),
                false => value.is_finite() && value > 0.0,
            };
            if !allowed {
                let why = format!(
                    "{value}: no run gives this (a FLOP speedup lies in [1, 1/(1 - s)], a \
                     simulated one is positive)"
                );
                return Err(bad(field(name), why));
            }
            if let Some(reported) = of_run.filter(|r| *r != value) {
                let why = format!("{value}: the run at this sparsity reports {reported}");
                return Err(bad(field(name), why));
            }
        }
    }
    Ok(())
}

/// An override's value as a legend shows it: a whole number of seven digits or more as an
/// exponent (`1200000000000` is `1.2e12`), anything else as written.
fn short_value(value: &str) -> String {
    match value.parse::<f64>() {
        Ok(v) if v.fract() == 0.0 && v.abs() >= 1e6 => format!("{v:e}"),
        _ => value.to_string(),
    }
}

/// Theoretical and simulated speedup of the whole recipe against sparsity from a merged sweep's
/// points: a panel per fabric on one scale, a colour (and marker) per model and override, theory
/// dashed and simulation solid, points ordered by sparsity, the legend below the panels.
pub fn draw_sweep_speedup(points: &[crate::sweep::PointResult], path: &Path) -> Result<()> {
    use std::collections::{BTreeMap, BTreeSet};
    // One seed: the cost models draw no random numbers, so seeds repeat the same figures.
    let points: Vec<_> = points
        .iter()
        .filter(|p| p.point.seed == points[0].point.seed)
        .collect();
    if points.is_empty() {
        return Err(Error::Input(format!(
            "{}: a sweep without points has nothing to draw",
            path.display()
        )));
    }
    let who = |p: &crate::sweep::PointResult| {
        let mut who = p.point.model.clone();
        for (key, value) in &p.point.overrides {
            let key = key.rsplit('.').next().unwrap_or(key);
            who += &format!(", {key}={}", short_value(value));
        }
        who
    };
    let styles: BTreeSet<String> = points.iter().map(|p| who(p)).collect();
    let fabrics: BTreeSet<&str> = points.iter().map(|p| p.point.fabric.as_str()).collect();
    let mut panels = Vec::new();
    for fabric in &fabrics {
        // (who, theory?) → points: each model's simulation, then its theory; both carry the
        // model's name, so the legend has an entry per model (the simulated look, solid) and the
        // title says which line is which: twice the entries did not fit with overrides.
        let mut lines: BTreeMap<(String, bool), Vec<(f64, f64)>> = BTreeMap::new();
        for p in points.iter().filter(|p| p.point.fabric == *fabric) {
            let (s, total) = (p.point.sparsity, &p.total);
            lines
                .entry((who(p), true))
                .or_default()
                .push((s, total.theoretical_speedup));
            lines
                .entry((who(p), false))
                .or_default()
                .push((s, total.simulated_speedup));
        }
        let mut chart = LineChart::new(
            format!("on {fabric}"),
            "pre-training weight sparsity",
            "whole-recipe speedup over dense (x)",
        );
        chart.series = lines
            .into_iter()
            .map(|((name, theory), mut line)| {
                line.sort_by(|a, b| a.0.total_cmp(&b.0));
                let style = styles.iter().position(|w| *w == name);
                let mut series = Series::new(name, line);
                series.style = style;
                series.dashed = theory;
                series
            })
            .collect();
        panels.push(chart);
    }
    let y_max = points
        .iter()
        .flat_map(|p| [p.total.theoretical_speedup, p.total.simulated_speedup])
        .fold(1.0, f64::max);
    for chart in &mut panels {
        chart.y_range = Some((0.0, 1.08 * y_max));
    }
    let figure = Figure {
        title: "Whole-recipe speedup: FLOP count (dashed) vs simulated wafer (solid)".into(),
        panels,
    };
    line_figure(&figure, path)
}
