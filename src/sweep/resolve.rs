//! A sweep's points resolved to what produces their figures: the point (model and fabric as the
//! spec names them, sparsity, seed, systems, overrides), the exact contents of the model and
//! fabric files (and of a point's mask file), and the timing model's version. A point's key is a hash of all of them, so a point is reused
//! only when nothing that could move its figures has changed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use super::spec::{normal, Point, SweepSpec};
use crate::error::{Error, Result};
use crate::masks::MaskSet;
use crate::spec::{
    is_builtin_fabric, is_builtin_model, read_fabric, read_model, sha256_hex, SpecText, BUILTIN,
};

/// A point with the files it reads and its key.
#[derive(Debug, Clone)]
pub struct ResolvedPoint {
    pub point: Point,
    pub model: Arc<SpecText>,
    pub fabric: Arc<SpecText>,
    /// The masks of a point of the `masks` axis, read once per file and model and shared.
    pub masks: Option<Arc<MaskSet>>,
    /// 32 hex digits of SHA-256 over [`KeyInputs`]: the point's file name and what `--shard`
    /// splits on.
    pub key: String,
}

/// Everything a point's key is taken of, serialized as JSON (unambiguous, unlike a joined line).
#[derive(Serialize)]
pub struct KeyInputs<'a> {
    pub point: &'a Point,
    pub model_sha256: &'a str,
    pub fabric_sha256: &'a str,
    pub timing_model_version: u32,
    /// The mask file's SHA-256 (a folder's: of its files' names and SHA-256s); left out
    /// without one, so other points keep their keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub masks_sha256: Option<&'a str>,
}

impl KeyInputs<'_> {
    pub fn key(&self) -> String {
        let json = serde_json::to_string(self).expect("a point serializes");
        sha256_hex(json.as_bytes())[..32].to_string()
    }
}

/// Every point of `spec` (read from `spec_path`) with its files read once each: a built-in name
/// stays a name, a relative path is taken from the spec file's folder.
pub fn resolve_points(spec: &SweepSpec, spec_path: &str) -> Result<Vec<ResolvedPoint>> {
    let folder = Path::new(spec_path).parent().unwrap_or(Path::new(""));
    let mut models = BTreeMap::new();
    for entry in &spec.models {
        let path = entry_path(folder, entry, is_builtin_model);
        models.insert(entry.clone(), Arc::new(read_model(&path)?));
    }
    let mut fabrics = BTreeMap::new();
    for entry in &spec.fabrics {
        let path = entry_path(folder, entry, is_builtin_fabric);
        fabrics.insert(entry.clone(), Arc::new(read_fabric(&path)?));
    }
    // Each mask file read once for each model (its shapes are the model's).
    let mut masks: BTreeMap<(String, String), Arc<MaskSet>> = BTreeMap::new();
    for (i, entry) in spec.masks.iter().enumerate() {
        let path = entry_path(folder, entry, |_| false);
        for name in &spec.models {
            let model = models[name].model()?;
            let named = format!("{spec_path}: key `masks[{i}]` ({path}), model {name}");
            let set = MaskSet::read_for(&model, name, &named, &path)?;
            masks.insert((entry.clone(), name.clone()), Arc::new(set));
        }
    }
    let mut keys = BTreeMap::new();
    let mut points = Vec::new();
    for mut point in spec.points() {
        let model = Arc::clone(&models[&point.model]);
        let fabric = Arc::clone(&fabrics[&point.fabric]);
        let point_masks = point
            .masks
            .as_ref()
            .map(|entry| Arc::clone(&masks[&(entry.clone(), point.model.clone())]));
        if let Some(set) = &point_masks {
            point.sparsity = normal(set.sparsity());
        }
        let key = KeyInputs {
            point: &point,
            model_sha256: &model.provenance.sha256,
            fabric_sha256: &fabric.provenance.sha256,
            timing_model_version: crate::TIMING_MODEL_VERSION,
            masks_sha256: point_masks.as_ref().map(|m| m.sha256.as_str()),
        }
        .key();
        if let Some(other) = keys.insert(key.clone(), point.canonical()) {
            // `SweepSpec::validate` refuses repeated values, so two points are never one.
            return Err(Error::Simulation(format!(
                "{spec_path}: points {other} and {} have one key {key}",
                point.canonical()
            )));
        }
        points.push(ResolvedPoint {
            point,
            model,
            fabric,
            masks: point_masks,
            key,
        });
    }
    Ok(points)
}

/// Where a spec's `models` or `fabrics` entry is read from.
pub(crate) fn entry_path(spec_folder: &Path, entry: &str, builtin: fn(&str) -> bool) -> String {
    if builtin(entry) || Path::new(entry).is_absolute() {
        entry.to_string()
    } else {
        spec_folder.join(entry).to_string_lossy().into_owned()
    }
}

/// What a point's file records as the source of a spec: `builtin`, or the entry as the sweep
/// spec writes it (relative to the spec's folder), so that the file does not depend on the
/// folder the sweep ran from.
pub fn source_of(entry: &str, text: &SpecText) -> String {
    if text.provenance.is_builtin() {
        BUILTIN.to_string()
    } else {
        entry.to_string()
    }
}
