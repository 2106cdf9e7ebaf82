//! `wafersim train`: the main job.

use std::path::PathBuf;

use super::args::TrainArgs;
use super::Common;
use crate::error::{Error, Result};
use crate::report::{create_folder, ops_csv, write_atomic, TrainReport};
use crate::schedule::run_recipe;
use crate::spec::{load_fabric, load_model};

/// Runs the recipe, writes the result files into the output folder, and returns what goes to
/// stdout: the table, or the report as JSON (with `host_seconds`).
pub fn train(args: &TrainArgs, common: &Common) -> Result<String> {
    let started = std::time::Instant::now();
    let model = load_model(&args.model)?;
    let fabric = load_fabric(&args.fabric)?;
    let sparsities = args
        .sparsity
        .clone()
        .unwrap_or_else(|| model.recipe.sparsities.clone());
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("wafersim-out").join(format!("{}-{}", model.name, fabric.name))
    });
    let runs = run_recipe(&model, &fabric, &sparsities)?;
    let report = TrainReport::new(&model, &fabric, &runs, common.seed);

    create_folder(&out)?;
    let json = to_json(&report)?;
    write_atomic(&out.join("report.json"), json.as_bytes())?;
    write_atomic(&out.join("phases.csv"), report.phases_csv().as_bytes())?;
    write_atomic(&out.join("ops.csv"), ops_csv(&runs).as_bytes())?;

    let host_seconds = started.elapsed().as_secs_f64();
    if common.json {
        let mut value = serde_json::to_value(&report).map_err(json_error)?;
        value["host_seconds"] = serde_json::json!(host_seconds);
        value["out"] = serde_json::json!(out.display().to_string());
        let mut text = serde_json::to_string_pretty(&value).map_err(json_error)?;
        text.push('\n');
        Ok(text)
    } else if common.quiet {
        Ok(String::new())
    } else {
        Ok(format!(
            "{}\nwrote {} (report.json, phases.csv, ops.csv) in {:.2} s\n",
            report.render_table(),
            out.display(),
            host_seconds
        ))
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
