//! The command line: parses flags, resolves them into specs, runs a stage, prints a report.
//!
//! Architecture Invariant: `cli` holds no simulation logic. It turns raw flags into resolved
//! specs before any work starts, so every bad input is refused up front with exit code 2.

mod args;
pub(crate) mod bench;
pub(crate) mod kernel;
mod plot;
mod progress;
mod schema;
mod sweep;
pub(crate) mod train;

use std::ffi::OsString;
use std::io::Write;

use clap::Parser;

pub use args::{Args, Command, Common};
pub use schema::{schema_names, schema_text};
pub use train::Trained;

use crate::api::Specs;
use crate::error::{Error, Result};
use crate::graph::StepConfig;
use crate::map::MapOptions;
use crate::report::{AgainstDense, FabricInspect, FlopsReport, ModelInspect, StepReport};
use crate::schedule::{check_systems, run_step_on_systems};
use crate::spec::{
    builtin_fabrics, builtin_models, load_fabric, load_model, parse_toml, SpecSources,
};

/// Runs the command line `args` (program name first) and returns the process exit code:
/// 0 ok, 2 bad input, 1 anything else. Output goes to `stdout`, messages to `stderr`.
pub fn run(
    args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> u8 {
    let args = match Args::try_parse_from(args) {
        Ok(args) => args,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let text = e.render().to_string();
            let sink: &mut dyn Write = if e.use_stderr() { stderr } else { stdout };
            let _ = write!(sink, "{text}");
            return code;
        }
    };
    match execute(&args, stdout) {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(stderr, "wafersim: error: {e}");
            e.exit_code()
        }
    }
}

fn execute(args: &Args, stdout: &mut dyn Write) -> Result<()> {
    let common = &args.common;
    let text = match &args.command {
        Command::Train(train) => train::train(train, common)?,
        Command::Sweep(args) => sweep::sweep(args, common)?,
        Command::Merge(args) => sweep::merge(args, common)?,
        Command::Plot(args) => plot::plot(args, common)?,
        Command::Bench(args) => bench::bench(args, common)?,
        Command::Compare(args) => {
            let (text, comparison) = bench::compare(args, common)?;
            if !comparison.passed {
                write_stdout(stdout, &text)?;
                return Err(Error::Simulation(format!(
                    "compare: {} figure(s) moved beyond the tolerance of {}%, {} case(s) or \
                     figure(s) in one baseline only",
                    comparison.figures_beyond_tolerance,
                    comparison.tolerance_percent,
                    comparison.missing.len()
                )));
            }
            text
        }
        Command::Schema(args) => schema::schema(args, common)?,
        Command::Validate(args) => {
            let (text, failed) = validate_command(args, common)?;
            if let Some(failed) = failed {
                write_stdout(stdout, &text)?;
                return Err(failed);
            }
            text
        }
        Command::Flops(flops) => {
            let report = flops_report(flops, common, &Specs::default())?;
            render(common, &report, || report.render_table())?
        }
        Command::Step(step) => {
            let report = step_report(step, common, &Specs::default())?;
            render(common, &report, || report.render_table())?
        }
        Command::Inspect(inspect) => match resolve_inspect_target(&inspect.target)? {
            Target::Model(model) => {
                let fabric = load_fabric(inspect.fabric.as_deref().unwrap_or("wse2"))?;
                let plans = crate::map::plan_phases(&model, &fabric);
                let report = ModelInspect::new(&model, &fabric, &plans, common.seed());
                render(common, &report, || report.render_table())?
            }
            Target::Fabric(fabric) => {
                if let Some(other) = &inspect.fabric {
                    return Err(Error::Input(format!(
                        "--fabric {other}: {} is a fabric, inspected on its own; --fabric is \
                         the fabric a model is mapped onto (inspect MODEL --fabric FABRIC)",
                        inspect.target
                    )));
                }
                let report = FabricInspect::new(&fabric, common.seed());
                render(common, &report, || report.render_table())?
            }
        },
        Command::Kernel(kernel_args) => {
            let report = kernel::execute_with_progress(kernel_args, common)?;
            let text = render(common, &report, || report.render_table())?;
            if let Some(check) = report.values.filter(|v| !v.within_f32_rounding) {
                write_stdout(stdout, &text)?;
                return Err(Error::Simulation(format!(
                    "kernel --values: the engine's product differs from the direct product by up to {:.3e}, {:.1} times the f32 rounding bound",
                    check.max_abs_error, check.max_error_to_bound
                )));
            }
            text
        }
    };
    write_stdout(stdout, &text)
}

/// `validate` and `validate --hardware`: the rendered report, and the error the command exits
/// with after printing it when the cost models miss the engine beyond the bounds.
pub(crate) fn validate_command(
    args: &args::ValidateArgs,
    common: &Common,
) -> Result<(String, Option<Error>)> {
    if args.hardware {
        if let Some(fabric) = &args.fabric {
            return Err(Error::Input(format!(
                "--fabric {fabric}: validate --hardware simulates each case on its own \
                 system's fabric (cs2: wse2, cs3: wse3); drop --fabric"
            )));
        }
        let (cases, origin) = crate::validate::hardware::load_cases(args.hardware_file.as_deref())?;
        let report = crate::validate::hardware::validate_hardware(&cases, &origin, common.seed())?;
        return Ok((render(common, &report, || report.render_table())?, None));
    }
    let fabric = load_fabric(args.fabric.as_deref().unwrap_or("wse2"))?;
    let validation = crate::validate::validate(&fabric, common.seed())?;
    let text = render(common, &validation, || {
        validation.render_table(&fabric.name)
    })?;
    let failed = (!validation.passed).then(|| {
        Error::Simulation(format!(
            "validate: the cost models miss the engine beyond the bounds (max {:.1}%, mean {:.2}%, \
             utilisation up to {:.1} percentage points)",
            100.0 * validation.max_abs_error,
            100.0 * validation.mean_abs_error,
            100.0 * validation.max_utilization_gap
        ))
    });
    Ok((text, failed))
}

/// `flops`: the theoretical side of each run, for the model and fabric `flops` names (or `specs`
/// gives as text).
pub(crate) fn flops_report(
    flops: &args::FlopsArgs,
    common: &Common,
    specs: &Specs,
) -> Result<FlopsReport> {
    let (model_text, fabric_text) = specs.read(&flops.model, &flops.fabric)?;
    let (mut model, fabric) = (model_text.model()?, fabric_text.fabric()?);
    let (sparsities, _) = recipe_sparsities(
        &mut model,
        &flops.model,
        flops.sparsity.clone(),
        &flops.masking,
    )?;
    let runs = crate::graph::recipe_flops_runs(&model, &sparsities);
    Ok(FlopsReport::new(&model, &fabric, &runs, common.seed()))
}

/// `step`: one training step (and, when sparse, the same step dense), its pictures if asked,
/// and its report; the model and fabric as `step` names them, or as `specs` gives them.
pub(crate) fn step_report(
    step: &args::StepArgs,
    common: &Common,
    specs: &Specs,
) -> Result<StepReport> {
    let started = std::time::Instant::now();
    let (model_text, fabric_text) = specs.read(&step.model, &step.fabric)?;
    let (mut model, fabric) = (model_text.model()?, fabric_text.fabric()?);
    let sparsity = match &step.masks {
        Some(path) => read_masks(&mut model, &step.model, path)?,
        None => apply_mask(
            &mut model,
            &step.model,
            (step.mask, step.levels),
            step.sparsity,
        )?,
    };
    check_systems(&fabric, step.systems)?;
    check_outputs(&[("--heatmap", &step.heatmap)], &[("--trace", &step.trace)])?;
    if step.heatmap.is_some() {
        crate::schedule::check_grid_memory(&fabric, &step.fabric, 1)?;
    }
    // Random masks drawn from the seed: each sparse GEMM priced by its own per-PE counts.
    model.recipe.mask_seed = Some(common.seed());
    let config = StepConfig::for_phase(&model, step.phase, sparsity);
    let options = MapOptions {
        microbatch_sequences: step.microbatch,
        activations: step.activations,
    };
    let result = run_step_on_systems(&model, &fabric, config, options, step.systems)?;
    // A sparse step is told against the same step dense.
    let dense = match sparsity > 0.0 {
        true => Some(run_step_on_systems(
            &model,
            &fabric,
            StepConfig {
                sparsity: 0.0,
                ..config
            },
            options,
            step.systems,
        )?),
        false => None,
    };
    step_pictures(step, &result, &model, &fabric, common.seed())?;
    let host_seconds = started.elapsed().as_secs_f64();
    let sources = SpecSources::of(&model_text, &fabric_text);
    let mut report = StepReport::new(&result, &fabric, sources, common.seed(), host_seconds);
    report.mask = model.recipe.pattern;
    report.levels = model.recipe.levels;
    report.masks_file = crate::report::MasksFile::of(&model);
    report.against_dense = dense.map(|d| AgainstDense::new(&d, &result));
    Ok(report)
}

/// Refuses, before any work, output files that could not be written: `pictures` (by extension,
/// PNG or SVG) and `files`, each given by its flag, and two flags naming one file.
fn check_outputs(
    pictures: &[(&str, &Option<std::path::PathBuf>)],
    files: &[(&str, &Option<std::path::PathBuf>)],
) -> Result<()> {
    let mut given = Vec::new();
    for (i, &(flag, path)) in pictures.iter().chain(files).enumerate() {
        let Some(path) = path else { continue };
        if i < pictures.len() {
            crate::report::plot::check_picture_path(flag, path)?;
        } else {
            crate::report::check_output_file(flag, path)?;
        }
        given.push((flag, path.as_path()));
    }
    crate::report::check_distinct_outputs(&given)
}

/// Writes a command's output; a failed write (a closed pipe) is an I/O error on `<stdout>`.
fn write_stdout(stdout: &mut dyn Write, text: &str) -> Result<()> {
    stdout
        .write_all(text.as_bytes())
        .map_err(|source| Error::Io {
            path: "<stdout>".into(),
            source,
        })
}

/// JSON (one document, newline-terminated) with `--json`, else the table; `--quiet` keeps JSON
/// but silences tables.
pub(crate) fn render<T: serde::Serialize>(
    common: &Common,
    report: &T,
    table: impl FnOnce() -> String,
) -> Result<String> {
    if common.json {
        let mut text = serde_json::to_string_pretty(report)
            .map_err(|e| Error::Simulation(format!("cannot encode the report as JSON: {e}")))?;
        text.push('\n');
        Ok(text)
    } else if common.quiet {
        Ok(String::new())
    } else {
        Ok(table())
    }
}

/// `--masks PATH` read for `model` and put in its recipe; the sparsity the step or sparse run
/// has: the masks' mean. Refused, naming the file and tensor, as `MaskSet::read` says; and where
/// the recipe masks no weight or the masks keep every weight.
pub(crate) fn read_masks(
    model: &mut crate::spec::ModelSpec,
    model_name: &str,
    path: &str,
) -> Result<f64> {
    let masks =
        crate::masks::MaskSet::read_for(model, model_name, &format!("--masks {path}"), path)?;
    let sparsity = masks.sparsity();
    std::sync::Arc::new(masks).install(model);
    Ok(sparsity)
}

/// The pre-training sparsities of a command that runs the whole recipe (`train`, `flops`):
/// `--masks`' mean; else `--sparsity` (`given`); else an N:M `--mask`'s own; else the recipe's.
/// `--mask`, `--levels` or `--masks` go into the recipe, and each sparsity is checked against
/// its pattern and sparse weights. Returns the sparsities and where they came from, for errors.
pub(crate) fn recipe_sparsities(
    model: &mut crate::spec::ModelSpec,
    model_name: &str,
    given: Option<Vec<f64>>,
    masking: &args::RecipeMasks,
) -> Result<(Vec<f64>, String)> {
    let (mask, levels, masks) = (masking.mask, masking.levels, masking.masks.as_deref());
    let pattern_origin = take_mask_flags(model, model_name, mask, levels);
    let dynamic_origin = take_dynamic_flags(model, model_name, masking)?;
    let pattern = model.recipe.pattern;
    let (sparsities, origin) = match (given, mask.and(pattern.implied_sparsity())) {
        _ if masks.is_some() => {
            let path = masks.unwrap_or_default();
            let sparsity = read_masks(model, model_name, path)?;
            (vec![sparsity], format!("--masks {path}"))
        }
        (Some(given), _) => (given, "--sparsity".to_string()),
        (None, Some(implied)) => (vec![implied], format!("--mask {pattern}")),
        (None, None) => (
            model.recipe.sparsities.clone(),
            format!("{model_name}: recipe.sparsities"),
        ),
    };
    model.check_dynamic(&dynamic_origin)?;
    let pattern = model.recipe.pattern;
    for &s in &sparsities {
        model.recipe.check_masks_weights(&origin, s)?;
        model
            .recipe
            .check_pattern(&pattern_origin, pattern, s, &model.architecture)?;
    }
    Ok((sparsities, origin))
}

/// `--dynamic`, `--update-every`, `--drop` and `--end` put in the recipe's `dynamic`; refused,
/// naming the flag, where a schedule flag has no method to apply to. Returns where the
/// schedule came from, for `ModelSpec::check_dynamic` once the masks are in the recipe.
pub(crate) fn take_dynamic_flags(
    model: &mut crate::spec::ModelSpec,
    model_name: &str,
    masking: &args::RecipeMasks,
) -> Result<String> {
    use crate::spec::{DynamicMethod, DynamicSpec};
    let recipe = &mut model.recipe;
    let origin = match masking.dynamic {
        Some(args::DynamicChoice::Static) => {
            recipe.dynamic = None;
            "--dynamic static".to_string()
        }
        Some(choice) => {
            let method = match choice {
                args::DynamicChoice::Set => DynamicMethod::Set,
                _ => DynamicMethod::Rigl,
            };
            // The recipe's interval and fractions stay unless a flag replaces them.
            let schedule = recipe.dynamic.unwrap_or(DynamicSpec::with_defaults(method));
            recipe.dynamic = Some(DynamicSpec { method, ..schedule });
            format!("--dynamic {}", method.name())
        }
        None => format!("{model_name}: key `recipe.dynamic`"),
    };
    let flags = [
        ("--update-every", masking.update_every.is_some()),
        ("--drop", masking.drop.is_some()),
        ("--end", masking.end.is_some()),
    ];
    let Some(dynamic) = &mut recipe.dynamic else {
        if let Some((flag, _)) = flags.iter().find(|(_, given)| *given) {
            return Err(Error::input(format!(
                "{flag} sets dynamic sparse training's schedule, which {origin}: give --dynamic set or --dynamic rigl (or a [recipe.dynamic] in the model file)",
                origin = match masking.dynamic {
                    Some(_) => "--dynamic static turns off".to_string(),
                    None => format!("{model_name} does not have"),
                }
            )));
        }
        return Ok(origin);
    };
    dynamic.update_every = masking.update_every.unwrap_or(dynamic.update_every);
    dynamic.drop_fraction = masking.drop.unwrap_or(dynamic.drop_fraction);
    dynamic.end_fraction = masking.end.unwrap_or(dynamic.end_fraction);
    Ok(origin)
}

/// `--mask` and `--levels` put in the recipe; returns where its pattern came from, for errors
/// (the flag, or the model file's key).
pub(crate) fn take_mask_flags(
    model: &mut crate::spec::ModelSpec,
    model_name: &str,
    mask: Option<crate::sparsity::Pattern>,
    levels: Option<crate::spec::Levels>,
) -> String {
    if let Some(pattern) = mask {
        model.recipe.pattern = pattern;
    }
    if let Some(levels) = levels {
        model.recipe.levels = levels;
    }
    let pattern = model.recipe.pattern;
    match mask {
        Some(_) => format!("--mask {pattern}"),
        None => format!("{model_name}: key `recipe.pattern` ({pattern})"),
    }
}

/// The mask structure and sparsity a step runs: `--mask` replaces the recipe's `pattern`, and
/// `--sparsity` defaults to an N:M mask's own (else 0); refused, naming the flag or the key,
/// where the recipe masks nothing or the pattern cannot take the sparsity or the weights.
pub(crate) fn apply_mask(
    model: &mut crate::spec::ModelSpec,
    model_name: &str,
    (mask, levels): (
        Option<crate::sparsity::Pattern>,
        Option<crate::spec::Levels>,
    ),
    sparsity: Option<f64>,
) -> Result<f64> {
    let origin = take_mask_flags(model, model_name, mask, levels);
    let pattern = model.recipe.pattern;
    // Dense unless asked: an N:M `--mask` asks for its own sparsity, another needs --sparsity.
    let sparsity = match (sparsity, mask) {
        (Some(s), _) => s,
        (None, Some(p)) => p.implied_sparsity().ok_or_else(|| {
            Error::Input(format!(
                "--mask {p} needs --sparsity: only an N:M mask fixes its own"
            ))
        })?,
        (None, None) => 0.0,
    };
    if mask.is_some() && sparsity == 0.0 {
        return Err(Error::Input(format!(
            "--mask {pattern} with --sparsity 0: a dense step masks nothing; leave --mask out"
        )));
    }
    model.recipe.check_masks_weights("--sparsity", sparsity)?;
    model
        .recipe
        .check_pattern(&origin, pattern, sparsity, &model.architecture)?;
    Ok(sparsity)
}

/// `step --heatmap` and `--trace`: the step's per-PE utilisation and its timeline.
fn step_pictures(
    args: &args::StepArgs,
    result: &crate::schedule::StepResult,
    model: &crate::spec::ModelSpec,
    fabric: &crate::spec::FabricSpec,
    seed: u64,
) -> Result<()> {
    let title = format!(
        "{} on {}: one {} step at sparsity {}",
        model.name,
        fabric.name,
        args.phase.name(),
        crate::report::shown_sparsity(result.plan.config.sparsity)
    );
    if let Some(path) = &args.heatmap {
        let (grid, cycles, what, scale) = match &args.heatmap_op {
            None => (
                crate::schedule::busy_grid(result, fabric, seed),
                result.cycles,
                String::new(),
                "busy fraction of the step",
            ),
            Some(name) => {
                let Some((grid, cycles)) =
                    crate::schedule::op_busy_grid(result, fabric, seed, name)
                else {
                    let names: Vec<&str> = result.plan.groups[0]
                        .ops
                        .iter()
                        .filter(|op| op.tile.is_some())
                        .take(4)
                        .map(|op| op.name.as_str())
                        .collect();
                    return Err(Error::Input(format!(
                        "--heatmap-op {name}: this step has no op of that name; ops are named \
                         as `step --json` lists them in `ops[].name`, e.g. {}",
                        names.join(", ")
                    )));
                };
                (
                    grid,
                    cycles,
                    format!(" {name},"),
                    "busy fraction of the op's cycles",
                )
            }
        };
        let cycles = cycles.max(1) as f64;
        let values = grid.values.iter().map(|&v| v as f64 / cycles).collect();
        let grid =
            crate::report::plot::Grid::new(grid.width as usize, grid.height as usize, values)?;
        let mut style = crate::report::plot::HeatmapStyle::new(
            format!("PE utilisation:{what} {title}"),
            scale,
            0.0,
            1.0,
        );
        let bands = match &args.heatmap_op {
            Some(name) => crate::schedule::busy_bands_of(result, fabric, |op| &op.name == name),
            None => crate::schedule::busy_bands(result, fabric),
        };
        style.bands = crate::report::plot_bands(&bands);
        crate::report::plot::heatmap(&grid, &style, path)?;
    }
    if let Some(path) = &args.trace {
        let trace = crate::report::step_trace(result, fabric.clock.clock_hz, &title);
        let text = serde_json::to_string(&trace)
            .map_err(|e| Error::Simulation(format!("cannot encode the trace: {e}")))?;
        crate::report::write_atomic(path, text.as_bytes())?;
    }
    Ok(())
}

enum Target {
    Model(crate::spec::ModelSpec),
    Fabric(crate::spec::FabricSpec),
}

/// `inspect` takes a model or a fabric: a built-in name of either, or a TOML file whose top-level
/// tables say which it is (`[architecture]` for a model, `[geometry]` for a fabric).
fn resolve_inspect_target(target: &str) -> Result<Target> {
    if builtin_models().iter().any(|(name, _)| *name == target) {
        return load_model(target).map(Target::Model);
    }
    if builtin_fabrics().iter().any(|(name, _)| *name == target) {
        return load_fabric(target).map(Target::Fabric);
    }
    let text = std::fs::read_to_string(target).map_err(|e| {
        let models: Vec<&str> = builtin_models().iter().map(|(n, _)| *n).collect();
        let fabrics: Vec<&str> = builtin_fabrics().iter().map(|(n, _)| *n).collect();
        Error::Input(format!(
            "inspect '{target}': not a built-in model ({}) or fabric ({}), and not a readable file: {e}",
            models.join(", "),
            fabrics.join(", ")
        ))
    })?;
    let table: toml::Table = parse_toml(target, &text)?;
    if table.contains_key("architecture") {
        load_model(target).map(Target::Model)
    } else if table.contains_key("geometry") {
        load_fabric(target).map(Target::Fabric)
    } else {
        Err(Error::Input(format!(
            "{target}: neither a model (no [architecture] table) nor a fabric (no [geometry] table)"
        )))
    }
}
