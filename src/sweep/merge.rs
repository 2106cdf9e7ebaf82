//! `wafersim merge`: checks a sweep folder and writes `sweep.csv`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use super::run::PointResult;
use super::spec::SweepSpec;
use crate::error::{Error, Result};

/// Reads every point of `out/points/`, refusing a corrupt file, a point made by another version,
/// a file whose name is not its point's hash, and (with `expect`) a missing or foreign point.
pub fn read_points(out: &Path, expect: Option<(&SweepSpec, &str)>) -> Result<Vec<PointResult>> {
    let folder = out.join("points");
    let entries = std::fs::read_dir(&folder).map_err(|e| {
        Error::Input(format!(
            "{}: cannot be read: {e} (is it a sweep's --out folder?)",
            folder.display()
        ))
    })?;
    let mut points: BTreeMap<String, PointResult> = BTreeMap::new();
    for entry in entries {
        let path = entry
            .map_err(|e| Error::Input(format!("{}: {e}", folder.display())))?
            .path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with('.') || !name.ends_with(".json") {
            continue; // temporaries of a killed run, and anything else that is not a point
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::Input(format!("{}: cannot be read: {e}", path.display())))?;
        let point: PointResult = serde_json::from_str(&text)
            .map_err(|e| Error::Input(format!("{}: not a point file: {e}", path.display())))?;
        if point.version != crate::VERSION {
            return Err(Error::Input(format!(
                "{}: made by wafersim {}, this is {}; rerun the sweep with one version",
                path.display(),
                point.version,
                crate::VERSION
            )));
        }
        let hash = point.point.hash();
        if point.hash != hash || name != format!("{hash}.json") {
            return Err(Error::Input(format!(
                "{}: holds point {} (hash {hash}): a point is stored once, under its hash",
                path.display(),
                point.point.canonical()
            )));
        }
        points.insert(hash, point);
    }
    if let Some((spec, origin)) = expect {
        let expected: BTreeMap<String, String> = spec
            .points()
            .iter()
            .map(|p| (p.hash(), p.canonical()))
            .collect();
        let missing: Vec<&String> = expected
            .iter()
            .filter(|(h, _)| !points.contains_key(*h))
            .map(|(_, c)| c)
            .collect();
        if !missing.is_empty() {
            return Err(Error::Input(format!(
                "{}: {} of the {} points of {origin} are missing, e.g. {}",
                out.display(),
                missing.len(),
                expected.len(),
                missing[0]
            )));
        }
        if let Some(extra) = points.keys().find(|h| !expected.contains_key(*h)) {
            return Err(Error::Input(format!(
                "{}: point {} is not in {origin}",
                out.display(),
                points[extra].point.canonical()
            )));
        }
    }
    let mut sorted: Vec<PointResult> = points.into_values().collect();
    sorted.sort_by(|a, b| {
        let key = |p: &PointResult| {
            (
                p.point.model.clone(),
                p.point.fabric.clone(),
                p.point.overrides.clone(),
                p.point.seed,
            )
        };
        key(a)
            .cmp(&key(b))
            .then(a.point.sparsity.total_cmp(&b.point.sparsity))
    });
    Ok(sorted)
}

/// One line per point, sorted by model, fabric, overrides, seed and sparsity.
pub fn sweep_csv(points: &[PointResult]) -> String {
    let mut out = String::from(
        "model,fabric,sparsity,seed,overrides,pretrain_theoretical_speedup,pretrain_simulated_speedup,\
         pretrain_seconds,total_theoretical_speedup,total_simulated_speedup,total_seconds,\
         pretrain_flops_executed,pretrain_pe_utilization_mean,pretrain_io_cycles,pretrain_overhead_cycles\n",
    );
    for p in points {
        let overrides: Vec<String> = p
            .point
            .overrides
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(
            out,
            "{},{},{},{},\"{}\",{},{},{},{},{},{},{},{},{},{}",
            p.point.model,
            p.point.fabric,
            p.point.sparsity,
            p.point.seed,
            overrides.join(";").replace('"', "\"\""),
            p.pretrain.theoretical_speedup,
            p.pretrain.simulated_speedup,
            p.pretrain.seconds,
            p.total.theoretical_speedup,
            p.total.simulated_speedup,
            p.total.seconds,
            p.pretrain.flops_executed,
            p.pretrain.pe_utilization_mean,
            p.pretrain.breakdown.io,
            p.pretrain.breakdown.overhead
        );
    }
    out
}
