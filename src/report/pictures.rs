//! The pictures of a `train` run, drawn from saved results (`counters.postcard`, `report.json`),
//! so that `wafersim plot` redraws exactly what `train` drew.

use std::path::{Path, PathBuf};

use super::counters::{CountersFile, RunCounters};
use super::plot::{heatmap, line_chart, Grid, HeatmapStyle, LineChart, Series};
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
/// the dense run's 0. `origin` says where the sparsities came from (a flag or a key).
pub fn check_run_names(levels: &[f64], origin: &str) -> Result<()> {
    for (i, &sparsity) in levels.iter().enumerate() {
        let name = run_name(sparsity);
        if let Some(&other) = levels[..i].iter().find(|&&o| run_name(o) == name) {
            return Err(Error::Input(format!(
                "{origin}: sparsity {sparsity} would be named {name} like the run at {other}: runs \
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

/// Theoretical and simulated speedup against sparsity, for pre-training and the whole recipe,
/// from a `report.json` (as written by `train`).
pub fn draw_speedup(report: &serde_json::Value, origin: &str, path: &Path) -> Result<()> {
    let bad = |what: &str| Error::Input(format!("{origin}: not a train report ({what})"));
    let runs = report["runs"].as_array().ok_or_else(|| bad("no `runs`"))?;
    let mut series: Vec<(String, Vec<(f64, f64)>)> = [
        "theoretical, pre-training",
        "simulated, pre-training",
        "theoretical, whole recipe",
        "simulated, whole recipe",
    ]
    .iter()
    .map(|n| (n.to_string(), Vec::new()))
    .collect();
    for run in runs {
        let s = run["sparsity"]
            .as_f64()
            .ok_or_else(|| bad("a run without `sparsity`"))?;
        let figure =
            |phase: &serde_json::Value, key: &str| phase[key].as_f64().ok_or_else(|| bad(key));
        let pretrain = &run["phases"][0];
        series[0]
            .1
            .push((s, figure(pretrain, "theoretical_speedup")?));
        series[1]
            .1
            .push((s, figure(pretrain, "simulated_speedup")?));
        series[2]
            .1
            .push((s, figure(&run["total"], "theoretical_speedup")?));
        series[3]
            .1
            .push((s, figure(&run["total"], "simulated_speedup")?));
    }
    let model = report["model"].as_str().unwrap_or("?");
    let fabric = report["fabric"].as_str().unwrap_or("?");
    let mut chart = LineChart::new(
        format!("Speedup from sparse pre-training: {model} on {fabric}"),
        "pre-training weight sparsity",
        "speedup over the dense run (x)",
    );
    chart.series = series
        .into_iter()
        .map(|(name, points)| Series::new(name, points))
        .collect();
    let s_max = runs
        .iter()
        .filter_map(|r| r["sparsity"].as_f64())
        .fold(0.0, f64::max);
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
