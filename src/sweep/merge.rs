//! `wafersim merge`: checks a sweep folder and writes `sweep.csv`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::resolve::resolve_points;
use super::run::{point_files, PointResult};
use super::spec::SweepSpec;
use crate::error::{Error, Result};
use crate::report::csv_text;

/// Reads every point of `out/points/`, refusing a corrupt file, a point made by another version
/// or timing model, a file whose name is not its point's key, two files of one grid point (made
/// from different inputs), and (with `expect`: the spec and its path) a point missing or not
/// made from the spec's current inputs.
pub fn read_points(out: &Path, expect: Option<(&SweepSpec, &str)>) -> Result<Vec<PointResult>> {
    let folder = out.join("points");
    std::fs::read_dir(&folder).map_err(|e| {
        Error::Input(format!(
            "{}: cannot be read: {e} (is it a sweep's --out folder?)",
            folder.display()
        ))
    })?;
    let mut points: BTreeMap<String, PointResult> = BTreeMap::new();
    let mut by_point: BTreeMap<String, String> = BTreeMap::new();
    for path in point_files(&folder) {
        let point = read_point_file(&path)?;
        if let Some(other) = by_point.insert(point.point.grid_point(), point.key.clone()) {
            return Err(Error::Input(format!(
                "{}: point {} is also in {other}.json, made from other model, fabric or mask file \
                 contents or another timing model; merge with --expect SPEC after rerunning the sweep, which \
                 replaces the older one",
                path.display(),
                point.point.canonical()
            )));
        }
        points.insert(point.key.clone(), point);
    }
    if let Some((spec, origin)) = expect {
        check_expected(out, &points, spec, origin)?;
    }
    if points.is_empty() {
        // Before anything is written: sweep.csv and the chart of no points say nothing.
        return Err(Error::Input(format!(
            "{}: holds no points; run `wafersim sweep SPEC --out {}` first",
            folder.display(),
            out.display()
        )));
    }
    let mut sorted: Vec<PointResult> = points.into_values().collect();
    sorted.sort_by(|a, b| {
        let key = |p: &PointResult| {
            (
                p.point.model.clone(),
                p.point.fabric.clone(),
                p.point.overrides.clone(),
                p.point.seed,
                p.point.systems,
                p.point.masks.clone(),
            )
        };
        key(a)
            .cmp(&key(b))
            .then(a.point.sparsity.total_cmp(&b.point.sparsity))
    });
    Ok(sorted)
}

/// One point file, checked: whole, this version and timing model, stored under its key, with
/// figures a run produces.
fn read_point_file(path: &Path) -> Result<PointResult> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Input(format!("{}: cannot be read: {e}", path.display())))?;
    check_point_schema(&text, path)?;
    let point: PointResult = serde_json::from_str(&text)
        .map_err(|e| Error::Input(format!("{}: not a point file: {e}", path.display())))?;
    if point.version != crate::VERSION || point.timing_model_version != crate::TIMING_MODEL_VERSION
    {
        return Err(Error::Input(format!(
            "{}: made by wafersim {} (timing model {}), this is {} (timing model {}); rerun the \
             sweep with one version",
            path.display(),
            point.version,
            point.timing_model_version,
            crate::VERSION,
            crate::TIMING_MODEL_VERSION
        )));
    }
    let key = point.recomputed_key();
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    if point.key != key || name != format!("{key}.json") {
        return Err(Error::Input(format!(
            "{}: holds point {} (key {key}): a point is stored once, under its key",
            path.display(),
            point.point.canonical()
        )));
    }
    point.check_figures().map_err(|(field, why)| {
        Error::Input(format!(
            "{}: `{field}` {why}: no run writes this; rerun the sweep, which replaces it",
            path.display()
        ))
    })?;
    Ok(point)
}

/// Refuses a point file of other field names (an earlier wafersim's: `schema_version` below
/// this one, or none) with what to do, before its fields are read.
fn check_point_schema(text: &str, path: &Path) -> Result<()> {
    #[derive(serde::Deserialize)]
    struct Versioned {
        schema_version: Option<u32>,
    }
    // Not JSON at all: the full read says so.
    let Ok(Versioned {
        schema_version: version,
    }) = serde_json::from_str::<Versioned>(text)
    else {
        return Ok(());
    };
    if version == Some(crate::report::SCHEMA_VERSION) {
        return Ok(());
    }
    Err(Error::Input(format!(
        "{}: schema_version {}: point files of schema version {} are read; rerun the sweep, \
         which replaces it",
        path.display(),
        version.map_or("missing (an earlier wafersim)".to_string(), |v| v
            .to_string()),
        crate::report::SCHEMA_VERSION
    )))
}

/// Refuses a folder that does not hold exactly the points of `spec` made from its current files.
fn check_expected(
    out: &Path,
    points: &BTreeMap<String, PointResult>,
    spec: &SweepSpec,
    origin: &str,
) -> Result<()> {
    let expected: BTreeMap<String, String> = resolve_points(spec, origin)?
        .into_iter()
        .map(|p| (p.key, p.point.canonical()))
        .collect();
    let missing: Vec<&String> = expected
        .iter()
        .filter(|(k, _)| !points.contains_key(*k))
        .map(|(_, c)| c)
        .collect();
    if !missing.is_empty() {
        return Err(Error::Input(format!(
            "{}: {} of the {} points of {origin} are missing or were made from other model, \
             fabric or mask file contents, e.g. {}; rerun the sweep",
            out.display(),
            missing.len(),
            expected.len(),
            missing[0]
        )));
    }
    if let Some(extra) = points.keys().find(|k| !expected.contains_key(*k)) {
        return Err(Error::Input(format!(
            "{}: point {} is not in {origin}",
            out.display(),
            points[extra].point.canonical()
        )));
    }
    Ok(())
}

/// One line per point, in the order given (`read_points` sorts by model, fabric, overrides,
/// seed, systems, mask file and sparsity).
pub fn sweep_csv(points: &[PointResult]) -> Result<String> {
    csv_text(points.iter().map(|p| SweepRow {
        model: &p.point.model,
        fabric: &p.point.fabric,
        sparsity: p.point.sparsity,
        seed: p.point.seed,
        overrides: overrides_text(&p.point.overrides),
        pretrain_theoretical_speedup: p.pretrain.theoretical_speedup,
        pretrain_simulated_speedup: p.pretrain.simulated_speedup,
        pretrain_seconds: p.pretrain.seconds,
        total_theoretical_speedup: p.total.theoretical_speedup,
        total_simulated_speedup: p.total.simulated_speedup,
        total_seconds: p.total.seconds,
        pretrain_flops_executed: p.pretrain.flops_executed,
        pretrain_pe_utilization_mean: p.pretrain.pe_utilization_mean,
        pretrain_io_cycles: p.pretrain.breakdown.io,
        pretrain_overhead_cycles: p.pretrain.breakdown.overhead,
        systems: p.point.systems,
        masks: p.point.masks.as_deref().unwrap_or("none"),
    }))
}

/// The spread over seeds of points that differ in their seed alone: how much one draw of the
/// random masks moves the answer (`merge` writes it to `seed-spread.csv` with two seeds or more).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct SeedSpread {
    pub model: String,
    pub fabric: String,
    pub sparsity: f64,
    pub systems: u64,
    /// `key=value` pairs joined by `;`, or `none`, as in sweep.csv.
    pub overrides: String,
    /// The mask file, or `none`.
    pub masks: String,
    pub seeds: u64,
    /// The whole recipe's simulated speedup over the seeds: least, most, mean and (population)
    /// standard deviation; and the same for pre-training alone.
    pub total_simulated_speedup_min: f64,
    pub total_simulated_speedup_max: f64,
    pub total_simulated_speedup_mean: f64,
    pub total_simulated_speedup_sd: f64,
    pub pretrain_simulated_speedup_min: f64,
    pub pretrain_simulated_speedup_max: f64,
    pub pretrain_simulated_speedup_mean: f64,
    pub pretrain_simulated_speedup_sd: f64,
}

/// Every group of points that differ in their seed alone and have two seeds or more, in the
/// order of `points`' first member of each.
pub fn seed_spread(points: &[PointResult]) -> Vec<SeedSpread> {
    let mut groups: Vec<(String, Vec<&PointResult>)> = Vec::new();
    for p in points {
        let key = super::spec::Point {
            seed: 0,
            ..p.point.clone()
        }
        .grid_point();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(p),
            None => groups.push((key, vec![p])),
        }
    }
    groups
        .into_iter()
        .filter(|(_, members)| members.len() >= 2)
        .map(|(_, members)| {
            let first = &members[0].point;
            let (total_min, total_max, total_mean, total_sd) =
                spread(members.iter().map(|p| p.total.simulated_speedup));
            let (pre_min, pre_max, pre_mean, pre_sd) =
                spread(members.iter().map(|p| p.pretrain.simulated_speedup));
            SeedSpread {
                model: first.model.clone(),
                fabric: first.fabric.clone(),
                sparsity: first.sparsity,
                systems: first.systems,
                overrides: overrides_text(&first.overrides),
                masks: first.masks.clone().unwrap_or_else(|| "none".to_string()),
                seeds: members.len() as u64,
                total_simulated_speedup_min: total_min,
                total_simulated_speedup_max: total_max,
                total_simulated_speedup_mean: total_mean,
                total_simulated_speedup_sd: total_sd,
                pretrain_simulated_speedup_min: pre_min,
                pretrain_simulated_speedup_max: pre_max,
                pretrain_simulated_speedup_mean: pre_mean,
                pretrain_simulated_speedup_sd: pre_sd,
            }
        })
        .collect()
}

/// (least, most, mean, population standard deviation) of `values`.
fn spread(values: impl Iterator<Item = f64> + Clone) -> (f64, f64, f64, f64) {
    let n = values.clone().count().max(1) as f64;
    let mean = values.clone().sum::<f64>() / n;
    let var = values.clone().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let min = values.clone().fold(f64::INFINITY, f64::min);
    let max = values.fold(f64::NEG_INFINITY, f64::max);
    (min, max, mean, var.sqrt())
}

/// `seed-spread.csv`: one line per [`SeedSpread`].
pub fn seed_spread_csv(spreads: &[SeedSpread]) -> Result<String> {
    csv_text(spreads.iter())
}

/// `key=value` pairs joined by `;`, or `none` (an empty cell would load as NaN in pandas).
fn overrides_text<K: std::fmt::Display, V: std::fmt::Display>(
    overrides: impl IntoIterator<Item = (K, V)>,
) -> String {
    let pairs: Vec<String> = overrides
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    match pairs.is_empty() {
        true => "none".to_string(),
        false => pairs.join(";"),
    }
}

/// A line of sweep.csv.
#[derive(Serialize)]
struct SweepRow<'a> {
    model: &'a str,
    fabric: &'a str,
    sparsity: f64,
    seed: u64,
    /// `key=value` pairs joined by `;`, or `none`.
    overrides: String,
    pretrain_theoretical_speedup: f64,
    pretrain_simulated_speedup: f64,
    pretrain_seconds: f64,
    total_theoretical_speedup: f64,
    total_simulated_speedup: f64,
    total_seconds: f64,
    pretrain_flops_executed: f64,
    pretrain_pe_utilization_mean: f64,
    pretrain_io_cycles: u64,
    pretrain_overhead_cycles: u64,
    /// Last but one, so the columns before it keep their places.
    systems: u64,
    /// The point's mask file as the spec gives it, or `none` (drawn masks).
    masks: &'a str,
}
