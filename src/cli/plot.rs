//! `wafersim plot`: pictures from saved results.

use super::args::{PlotArgs, PlotWhat};
use super::Common;
use crate::error::{Error, Result};
use crate::report::plot::{heatmap, Grid, HeatmapStyle};
use crate::report::{
    draw_gap, draw_heatmap, draw_speedup, run_name, CountersFile, HeatmapKind, HeatmapScale,
};

pub fn plot(args: &PlotArgs, common: &Common) -> Result<String> {
    let (PlotWhat::Heatmap { output, .. }
    | PlotWhat::Speedup { output, .. }
    | PlotWhat::Gap { output, .. }) = &args.what;
    crate::report::plot::check_picture_path("-o", output)?;
    let output = match &args.what {
        PlotWhat::Heatmap {
            input,
            output,
            run,
            kind,
            scale,
        } => {
            // `kernel --counters` writes one engine run's counters (`fmac_cycles` and the rest),
            // `train` its runs' (named in `runs`).
            let head = std::fs::read(input)
                .map_err(|e| Error::Input(format!("{}: cannot be read: {e}", input.display())))?;
            if is_kernel_counters(&head) {
                if let Some(wanted) = run {
                    return Err(Error::Input(format!(
                        "--run {wanted}: {} holds one kernel run's counters; --run picks a run \
                         of train's counters.npz",
                        input.display()
                    )));
                }
                kernel_heatmap(&head, input, *kind, *scale, output)?;
                return finish(output, common);
            }
            let file = CountersFile::from_bytes(&head, input)?;
            let chosen = match run.as_deref() {
                // Utilisation and the difference of the sparsest run (runs are in the order
                // --sparsity gave them, not sorted), SRAM of the dense one.
                None if *kind == HeatmapKind::Sram => file.runs.first(),
                None => file
                    .runs
                    .iter()
                    .max_by(|a, b| a.sparsity.total_cmp(&b.sparsity)),
                Some(wanted) => file.runs.iter().find(|r| {
                    let name = run_name(r.sparsity);
                    wanted == name || wanted.parse::<f64>().is_ok_and(|s| s == r.sparsity)
                }),
            };
            let names: Vec<String> = file.runs.iter().map(|r| run_name(r.sparsity)).collect();
            let chosen = chosen.ok_or_else(|| {
                Error::Input(format!(
                    "--run {}: {} has runs {}",
                    run.as_deref().unwrap_or("(last)"),
                    input.display(),
                    names.join(", ")
                ))
            })?;
            draw_heatmap(&file, chosen, *kind, *scale, output)?;
            output
        }
        PlotWhat::Speedup { input, output } | PlotWhat::Gap { input, output } => {
            let text = std::fs::read_to_string(input)
                .map_err(|e| Error::Input(format!("{}: cannot be read: {e}", input.display())))?;
            let origin = input.display().to_string();
            match &args.what {
                PlotWhat::Gap { .. } => draw_gap(&text, &origin, output)?,
                _ => draw_speedup(&text, &origin, output)?,
            }
            output
        }
    };
    finish(output, common)
}

/// Whether a counters file is a kernel run's: an `.npz` with an `fmac_cycles` array and no
/// `runs` (anything else is read as train's, whose reader says what is wrong with it).
fn is_kernel_counters(bytes: &[u8]) -> bool {
    // Zip entry names are stored in the clear: a cheap look before the full read.
    let has = |name: &[u8]| bytes.windows(name.len()).any(|w| w == name);
    has(b"fmac_cycles.npy") && !has(b"runs.npy")
}

/// A heatmap of one kernel run's engine counters: busy fraction, or SRAM bytes per PE.
fn kernel_heatmap(
    bytes: &[u8],
    input: &std::path::Path,
    kind: HeatmapKind,
    scale: HeatmapScale,
    output: &std::path::Path,
) -> Result<()> {
    let counters = crate::report::read_kernel_counters(bytes)
        .map_err(|e| Error::Input(format!("{}: {e}", input.display())))?;
    let (values, mut style) = match kind {
        HeatmapKind::Utilization => (
            counters.busy_fraction_grid(),
            HeatmapStyle::new(
                "PE utilisation of a kernel run",
                "busy fraction of the kernel",
                0.0,
                1.0,
            ),
        ),
        HeatmapKind::Sram => {
            let values: Vec<f64> = counters.pes.iter().map(|c| c.sram_bytes as f64).collect();
            let max = values.iter().copied().fold(1.0, f64::max);
            (
                values,
                HeatmapStyle::new("SRAM per PE of a kernel run", "SRAM bytes used", 0.0, max),
            )
        }
        HeatmapKind::Difference => {
            return Err(Error::Input(format!(
                "--kind difference: {} holds one kernel run's counters; a difference is a \
                 sparse run's against the dense run of train's counters.npz",
                input.display()
            )))
        }
    };
    let grid = Grid::new(counters.cols as usize, counters.rows as usize, values)?;
    if scale == HeatmapScale::Auto && grid.max() > grid.min() {
        (style.vmin, style.vmax) = (grid.min(), grid.max());
    }
    heatmap(&grid, &style, output)
}

fn finish(output: &std::path::Path, common: &Common) -> Result<String> {
    if common.json {
        let value = PlotReport {
            schema_version: crate::report::SCHEMA_VERSION,
            version: crate::VERSION,
            seed: common.seed(),
            output: output.display().to_string(),
        };
        let text = serde_json::to_string(&value)
            .map_err(|e| Error::Simulation(format!("cannot encode the report as JSON: {e}")))?;
        return Ok(format!("{text}\n"));
    }
    Ok(if common.quiet {
        String::new()
    } else {
        format!("wrote {}\n", output.display())
    })
}

/// The `plot --json` document.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct PlotReport {
    /// The version of the field names and types (`report::SCHEMA_VERSION`).
    pub schema_version: u32,
    pub version: &'static str,
    pub seed: u64,
    /// The picture written.
    pub output: String,
}
