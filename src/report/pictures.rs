//! The pictures of a `train` run, drawn from saved results (`counters.npz`, `report.json`),
//! so that `wafersim plot` redraws exactly what `train` drew.

use std::path::{Path, PathBuf};

use super::counters::{CountersFile, RunCounters};
use super::plot::{heatmap, line_chart, Grid, HeatmapStyle, LineChart, Series};
use super::train::PhaseFigures;
use crate::error::{Error, Result};
use crate::schedule::PeGrid;

/// What a heatmap shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HeatmapKind {
    /// Busy fraction of each PE over a pre-training step.
    Utilization,
    /// SRAM bytes of each PE against its capacity.
    Sram,
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

/// Draws one run's heatmap to `path` (PNG or SVG by extension). Utilisation heatmaps of every run
/// share the 0–1 scale, SRAM heatmaps the 0–capacity scale, so they compare.
pub fn draw_heatmap(
    file: &CountersFile,
    run: &RunCounters,
    kind: HeatmapKind,
    path: &Path,
) -> Result<()> {
    let who = format!(
        "{} on {}, pre-training step, {}",
        file.model,
        file.fabric,
        if run.sparsity == 0.0 {
            "dense".to_string()
        } else {
            format!("sparsity {}", run.sparsity)
        }
    );
    let (grid, style) = match kind {
        HeatmapKind::Utilization => {
            let cycles = run.step_cycles.max(1) as f64;
            (
                to_grid(&run.busy_cycles, |v| v as f64 / cycles)?,
                HeatmapStyle::new(
                    format!("PE utilisation: {who}"),
                    "busy fraction of the step",
                    0.0,
                    1.0,
                ),
            )
        }
        HeatmapKind::Sram => (
            to_grid(&run.sram_bytes, |v| v as f64)?,
            HeatmapStyle::new(
                format!("SRAM per PE: {who}"),
                format!(
                    "SRAM bytes used (capacity {} B)",
                    super::table::thousands(run.sram_capacity_bytes as u128)
                ),
                0.0,
                run.sram_capacity_bytes as f64,
            ),
        ),
    };
    heatmap(&grid, &style, path)
}

fn to_grid(grid: &PeGrid, value: impl Fn(u64) -> f64) -> Result<Grid> {
    Grid::new(
        grid.width as usize,
        grid.height as usize,
        grid.values.iter().map(|&v| value(v)).collect(),
    )
}

/// Every heatmap of a run folder: utilisation (PNG and SVG) per run, SRAM (PNG) of the dense run.
pub fn draw_train_heatmaps(file: &CountersFile, out: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for run in &file.runs {
        for extension in ["png", "svg"] {
            let path = out.join(utilization_heatmap_name(run.sparsity, extension));
            draw_heatmap(file, run, HeatmapKind::Utilization, &path)?;
            written.push(path);
        }
    }
    if let Some(dense) = file.runs.first() {
        let path = out.join("heatmap-sram.png");
        draw_heatmap(file, dense, HeatmapKind::Sram, &path)?;
        written.push(path);
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
    runs: Vec<SavedRun>,
}

#[derive(Debug, serde::Deserialize)]
struct SavedRun {
    #[serde(rename = "run_sparsity")]
    sparsity: f64,
    phases: Vec<PhaseFigures>,
    total: PhaseFigures,
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

/// Theoretical and simulated speedup against sparsity, for pre-training and the whole recipe,
/// from the text of a `report.json` (as written by `train`; `origin` names it in errors).
pub fn draw_speedup(text: &str, origin: &str, path: &Path) -> Result<()> {
    let report = read_saved_report(text, origin)?;
    let names = [
        "theoretical, pre-training",
        "simulated, pre-training",
        "theoretical, whole recipe",
        "simulated, whole recipe",
    ];
    let mut series: Vec<Vec<(f64, f64)>> = vec![Vec::new(); names.len()];
    for run in &report.runs {
        let (pretrain, total) = (&run.phases[0], &run.total);
        let figures = [
            pretrain.theoretical_speedup,
            pretrain.simulated_speedup,
            total.theoretical_speedup,
            total.simulated_speedup,
        ];
        for (points, figure) in series.iter_mut().zip(figures) {
            points.push((run.sparsity, figure));
        }
    }
    let mut chart = LineChart::new(
        format!(
            "Speedup from sparse pre-training: {} on {}",
            report.model, report.fabric
        ),
        "pre-training weight sparsity",
        "speedup over the dense run (x)",
    );
    chart.series = names
        .iter()
        .zip(series)
        .map(|(name, points)| Series::new(*name, points))
        .collect();
    let s_max = report.runs.iter().map(|r| r.sparsity).fold(0.0, f64::max);
    chart.reference = Some(Series::ideal_speedup(s_max.max(0.5)));
    line_chart(&chart, path)
}

/// Theoretical and simulated speedup of the whole recipe against sparsity, one pair of lines per
/// model (and fabric and override, when a sweep has several), from a merged sweep's points.
pub fn draw_sweep_speedup(points: &[crate::sweep::PointResult], path: &Path) -> Result<()> {
    use std::collections::BTreeMap;
    let fabrics: std::collections::BTreeSet<&str> =
        points.iter().map(|p| p.point.fabric.as_str()).collect();
    let mut lines: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    // One seed: the cost models draw no random numbers, so seeds repeat the same figures.
    for p in points
        .iter()
        .filter(|p| p.point.seed == points[0].point.seed)
    {
        let mut who = p.point.model.clone();
        if fabrics.len() > 1 {
            who += &format!(" on {}", p.point.fabric);
        }
        for (key, value) in &p.point.overrides {
            who += &format!(", {}={value}", key.rsplit('.').next().unwrap_or(key));
        }
        lines
            .entry(format!("{who}, theoretical"))
            .or_default()
            .push((p.point.sparsity, p.total.theoretical_speedup));
        lines
            .entry(format!("{who}, simulated"))
            .or_default()
            .push((p.point.sparsity, p.total.simulated_speedup));
    }
    if lines.is_empty() {
        return Err(Error::Input(format!(
            "{}: a sweep without points has nothing to draw",
            path.display()
        )));
    }
    let mut chart = LineChart::new(
        "Whole-recipe speedup: FLOP count vs simulated wafer",
        "pre-training weight sparsity",
        "speedup over the dense run (x)",
    );
    chart.series = lines
        .into_iter()
        .map(|(name, mut points)| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series::new(name, points)
        })
        .collect();
    line_chart(&chart, path)
}
