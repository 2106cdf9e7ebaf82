//! `wafersim train`: the main job.

use std::path::PathBuf;

use super::args::TrainArgs;
use super::Common;
use crate::api::Specs;
use crate::error::{Error, Result};
use crate::report::{
    check_output_folder, check_run_names, create_folder, difference_heatmap_name, draw_gap,
    draw_speedup, draw_train_heatmaps, lock_folder, missing_folders, ops_csv, remove_empty_folders,
    remove_stale_temporaries, step_trace, utilization_heatmap_name, write_atomic, CountersFile,
    Outputs, RunCounters, TrainReport,
};
use crate::schedule::{
    busy_bands, busy_grid, check_grid_memory, check_systems, run_recipe_on_systems, speedup_curve,
    sram_bands, sram_grid, RunResult,
};
use crate::spec::{sparsity_levels, FabricSpec, ModelSpec, SpecSources, SpecText};

/// Runs the recipe, writes the result files into the output folder, and returns what goes to
/// stdout: the table, or the report as JSON (with `host_seconds`).
pub fn train(args: &TrainArgs, common: &Common) -> Result<String> {
    let started = std::time::Instant::now();
    let inputs = TrainInputs::read(args, &Specs::default())?;
    let (trained, out) = train_into(args, inputs, common.seed())?;
    let host_seconds = started.elapsed().as_secs_f64();
    if common.json {
        // The report as written to report.json, plus the run's host time and folder (schema
        // `train`), spliced as text so that the report's part is report.json byte for byte.
        let body = trained
            .report_json
            .trim_end()
            .strip_suffix('}')
            .expect("a JSON object")
            .trim_end();
        let out_text = serde_json::to_string(&out.display().to_string()).map_err(json_error)?;
        Ok(format!(
            "{body},\n  \"host_seconds\": {host_seconds},\n  \"out\": {out_text}\n}}\n"
        ))
    } else if common.quiet {
        Ok(String::new())
    } else {
        Ok(format!(
            "{}\nwrote {} (model.toml, fabric.toml, report.json, phases.csv, ops.csv, counters.npz, trace.json, heatmaps, speedup and gap pictures) in {:.2} s\n",
            trained.report.render_table(),
            out.display(),
            host_seconds
        ))
    }
}

/// Runs the recipe and writes its files into `args.out` (default
/// `wafersim-out/<model>-<fabric>/`), the folder refused before the simulation if it cannot be
/// used; returns the run and the folder.
pub(crate) fn train_into(
    args: &TrainArgs,
    inputs: TrainInputs,
    seed: u64,
) -> Result<(Trained, PathBuf)> {
    // A file's folder carries its hash, so a copy of a built-in keeping its name never writes
    // into the built-in's folder.
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("wafersim-out").join(format!(
            "{}-{}",
            inputs.model_text.folder_name(&inputs.model.name),
            inputs.fabric_text.folder_name(&inputs.fabric.name)
        ))
    });
    // The folder first: one that cannot be used is refused before the simulation runs.
    check_output_folder("--out", &out)?;
    let created = missing_folders(&out);
    create_folder(&out)?;
    let _lock = lock_folder(&out)?;
    remove_stale_temporaries(&out)?;
    // A run refused by the simulation (a plan that does not fit) leaves no folder it made.
    let trained = Trained::simulate(inputs, args.systems, seed)
        .inspect_err(|_| remove_empty_folders(&created))?;
    trained.write(&out)?;
    Ok((trained, out))
}

/// A `train` run simulated and its report built: what the command writes into its folder, and
/// what the library's callers (`crate::api`) read without writing a file.
pub struct Trained {
    pub report: TrainReport,
    /// report.json, byte for byte.
    pub report_json: String,
    inputs: TrainInputs,
    runs: Vec<RunResult>,
    seed: u64,
}

impl Trained {
    /// Runs the recipe at each sparsity of `inputs` on `systems` systems, and the speedup curve.
    pub(crate) fn simulate(mut inputs: TrainInputs, systems: u64, seed: u64) -> Result<Trained> {
        // Random masks drawn from the seed: each sparse GEMM priced by its own per-PE counts.
        inputs.model.recipe.mask_seed = Some(seed);
        let (model, fabric) = (&inputs.model, &inputs.fabric);
        let runs = run_recipe_on_systems(model, fabric, &inputs.sparsities, systems)?;
        let sources = SpecSources::of(&inputs.model_text, &inputs.fabric_text);
        let curve = speedup_curve(model, fabric, &runs, systems)?;
        let report = TrainReport::new(model, fabric, sources, &runs, curve, seed);
        let report_json = to_json(&report)?;
        Ok(Trained {
            report,
            report_json,
            inputs,
            runs,
            seed,
        })
    }

    /// Where the model and fabric came from, as the report records it.
    pub fn sources(&self) -> SpecSources {
        SpecSources::of(&self.inputs.model_text, &self.inputs.fabric_text)
    }

    /// phases.csv: one row per phase of every run.
    pub fn phases_csv(&self) -> Result<String> {
        self.report.phases_csv()
    }

    /// ops.csv: every op of each run's pre-training step.
    pub fn ops_csv(&self) -> Result<String> {
        ops_csv(&self.runs)
    }

    /// counters.npz's bytes: per-PE busy cycles and SRAM bytes of each run's pre-training step.
    pub fn counters_npz(&self) -> Result<Vec<u8>> {
        self.counters().npz_bytes()
    }

    /// Every file of the folder `out`, written atomically; the manifest records them.
    fn write(&self, out: &std::path::Path) -> Result<()> {
        let (model, fabric, runs) = (&self.inputs.model, &self.inputs.fabric, &self.runs);
        let planned = output_names(runs);
        let outputs = Outputs::begin(out, &planned, is_train_output)?;
        // The specs as read, byte for byte: the folder alone reproduces the run.
        write_atomic(
            &out.join("model.toml"),
            self.inputs.model_text.text.as_bytes(),
        )?;
        write_atomic(
            &out.join("fabric.toml"),
            self.inputs.fabric_text.text.as_bytes(),
        )?;
        let json = &self.report_json;
        write_atomic(&out.join("report.json"), json.as_bytes())?;
        write_atomic(&out.join("phases.csv"), self.phases_csv()?.as_bytes())?;
        write_atomic(&out.join("ops.csv"), self.ops_csv()?.as_bytes())?;
        let counters = self.counters();
        counters.write(&out.join("counters.npz"))?;
        draw_train_heatmaps(&counters, out)?;
        for extension in ["png", "svg"] {
            let picture = |name: &str| out.join(format!("{name}.{extension}"));
            draw_speedup(json, "report.json", &picture("speedup"))?;
            if runs.len() > 1 {
                draw_gap(json, "report.json", &picture("gap"))?;
            }
        }
        let traced = runs.last().expect("the dense run at least");
        let title = format!(
            "{} on {}: one pre-training step at sparsity {}",
            model.name,
            fabric.name,
            crate::report::shown_sparsity(traced.sparsity)
        );
        let trace = step_trace(&traced.pretrain_step, fabric.clock.clock_hz, &title);
        let trace = serde_json::to_string(&trace).map_err(json_error)?;
        write_atomic(&out.join("trace.json"), trace.as_bytes())?;
        outputs.finish(&planned)
    }

    /// Per-PE busy cycles and SRAM bytes of each run's pre-training step.
    fn counters(&self) -> CountersFile {
        counters(
            &self.inputs.model,
            &self.inputs.fabric,
            &self.runs,
            self.seed,
        )
    }
}

/// What `train` runs, read and checked before any work or file.
pub(crate) struct TrainInputs {
    model_text: SpecText,
    fabric_text: SpecText,
    model: ModelSpec,
    fabric: FabricSpec,
    sparsities: Vec<f64>,
}

impl TrainInputs {
    /// The model and fabric `args` name (or `specs` gives as text), read and checked with the
    /// sparsities and system count.
    pub(crate) fn read(args: &TrainArgs, specs: &Specs) -> Result<TrainInputs> {
        let (model_text, fabric_text) = specs.read(&args.model, &args.fabric)?;
        let (mut model, fabric) = (model_text.model()?, fabric_text.fabric()?);
        let sparsities = checked_sparsities(args, &mut model, &fabric)?;
        check_systems(&fabric, args.systems)?;
        Ok(TrainInputs {
            model_text,
            fabric_text,
            model,
            fabric,
            sparsities,
        })
    }
}

/// The report `train` writes to report.json, computed as `train` computes it but writing no
/// file (for `bench`), and where its specs came from.
pub(super) fn train_report(args: &TrainArgs, seed: u64) -> Result<(String, SpecSources)> {
    let inputs = TrainInputs::read(args, &Specs::default())?;
    let trained = Trained::simulate(inputs, args.systems, seed)?;
    let sources = trained.sources();
    Ok((trained.report_json, sources))
}

/// The sparsities to run (`--sparsity`; else an N:M `--mask`'s own; else the recipe's), with
/// `--mask` put in the recipe; refused before any file if the pattern cannot take a sparsity
/// or a weight, or the runs' names would collide or their per-PE figures would not fit in
/// memory on `fabric`.
fn checked_sparsities(
    args: &TrainArgs,
    model: &mut ModelSpec,
    fabric: &FabricSpec,
) -> Result<Vec<f64>> {
    let (sparsities, origin) =
        super::recipe_sparsities(model, &args.model, args.sparsities(), &args.masking)?;
    let levels = sparsity_levels(&sparsities);
    check_run_names(&levels, &origin)?;
    check_grid_memory(fabric, &args.fabric, levels.len() as u64)?;
    Ok(sparsities)
}

/// The files train writes into its folder besides the heatmaps of each run.
const TRAIN_FILES: [&str; 11] = [
    "model.toml",
    "fabric.toml",
    "report.json",
    "phases.csv",
    "ops.csv",
    "counters.npz",
    "trace.json",
    "heatmap-sram.png",
    "heatmap-sram.svg",
    "speedup.png",
    "speedup.svg",
];

/// Every file train writes for `runs`: what its manifest records, so that a rerun with fewer
/// sparsities removes the heatmaps of the runs it no longer has, and no other file.
fn output_names(runs: &[RunResult]) -> Vec<String> {
    let mut names: Vec<String> = TRAIN_FILES.iter().map(|n| n.to_string()).collect();
    // The gap is a sparse run's against the dense one: drawn when there is one.
    if runs.len() > 1 {
        names.extend(["gap.png".to_string(), "gap.svg".to_string()]);
    }
    for run in runs {
        for extension in ["png", "svg"] {
            names.push(utilization_heatmap_name(run.sparsity, extension));
            if run.sparsity > 0.0 {
                names.push(difference_heatmap_name(run.sparsity, extension));
            }
        }
    }
    names
}

/// Whether train could have written a file of this name: the manifest's entries are removed
/// only if so.
fn is_train_output(name: &str) -> bool {
    let heatmap = (name.starts_with("heatmap-utilization-")
        || name.starts_with("heatmap-difference-"))
        && (name.ends_with(".png") || name.ends_with(".svg"));
    heatmap || TRAIN_FILES.contains(&name) || name == "gap.png" || name == "gap.svg"
}

/// Per-PE busy cycles and SRAM bytes of each run's pre-training step.
fn counters(model: &ModelSpec, fabric: &FabricSpec, runs: &[RunResult], seed: u64) -> CountersFile {
    CountersFile {
        wafersim_version: crate::VERSION.to_string(),
        model: model.name.clone(),
        fabric: fabric.name.clone(),
        seed,
        runs: runs
            .iter()
            .map(|run| RunCounters {
                sparsity: run.sparsity,
                step_cycles: run.pretrain_step.cycles,
                sram_capacity_bytes: fabric.pe.sram_bytes,
                busy_cycles: busy_grid(&run.pretrain_step, fabric, seed),
                sram_bytes: sram_grid(&run.pretrain_step, model, fabric),
                busy_bands: busy_bands(&run.pretrain_step, fabric),
                sram_bands: sram_bands(&run.pretrain_step, model, fabric),
            })
            .collect(),
    }
}

fn to_json(report: &TrainReport) -> Result<String> {
    let mut text = serde_json::to_string_pretty(report).map_err(json_error)?;
    text.push('\n');
    Ok(text)
}

fn json_error(e: serde_json::Error) -> Error {
    Error::Simulation(format!("cannot encode the report as JSON: {e}"))
}
