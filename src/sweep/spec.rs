//! The sweep spec: a grid of models × fabrics × sparsities × seeds × recipe overrides.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::spec::{check_sparsity, parse_toml};

/// What an override's key may start with: the model's tables, or `fabric.` for the fabric's.
pub const OVERRIDE_PREFIXES: [&str; 3] = ["architecture.", "recipe.", FABRIC_PREFIX];
/// The prefix of an override of the fabric file (the rest is the key in it).
pub const FABRIC_PREFIX: &str = "fabric.";

/// A sweep as its TOML file gives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// Models: built-in names or paths.
    pub models: Vec<String>,
    /// Fabrics: built-in names or paths.
    pub fabrics: Vec<String>,
    /// Pre-training sparsities; 0 is the dense run.
    #[serde(default)]
    pub sparsities: Vec<f64>,
    /// Mask files (a safetensors file or a folder of `.npy` files, as `train --masks` reads;
    /// relative to the spec's folder), each a point of its own at its masks' mean sparsity,
    /// beside the `sparsities`' points. A point's key includes the file's SHA-256.
    #[serde(default)]
    pub masks: Vec<String>,
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// Systems trained data-parallel (`train --systems`), each value a point of its own.
    #[serde(default = "default_systems")]
    pub systems: Vec<u64>,
    /// Dotted model keys, each with the values to sweep, e.g.
    /// `"recipe.pretrain.batch_sequences" = [256, 512]`; a `fabric.` key overrides the fabric's
    /// (`"fabric.io.wafer_io_bits_per_second" = [1.2e12, 2.4e12]`).
    #[serde(default)]
    pub overrides: BTreeMap<String, Vec<toml::Value>>,
    #[serde(default)]
    pub limits: Limits,
}

/// What a sweep may ask for; checked before any point runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default = "default_max_points")]
    pub max_points: u64,
    /// Memory the running points may take together, in bytes.
    #[serde(default = "default_max_memory")]
    pub max_memory_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_points: default_max_points(),
            max_memory_bytes: default_max_memory(),
        }
    }
}

fn default_seeds() -> Vec<u64> {
    vec![1]
}

fn default_systems() -> Vec<u64> {
    vec![1]
}

fn one_system() -> u64 {
    1
}

fn is_one_system(systems: &u64) -> bool {
    *systems == 1
}

fn default_max_points() -> u64 {
    10_000
}

fn default_max_memory() -> u64 {
    8 << 30
}

/// One point of the grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Point {
    pub model: String,
    pub fabric: String,
    pub sparsity: f64,
    pub seed: u64,
    /// Systems trained data-parallel; left out of the point (and its key) when 1, so the points
    /// of a sweep without `systems` keep their keys.
    #[serde(default = "one_system", skip_serializing_if = "is_one_system")]
    pub systems: u64,
    /// Dotted key → value, as TOML text.
    pub overrides: BTreeMap<String, String>,
    /// The mask file as the spec gives it, for a point of the `masks` axis (its `sparsity` is
    /// the masks' mean); left out otherwise, so other points keep their keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masks: Option<String>,
}

impl Point {
    /// Which grid point this is, whatever its inputs' contents: [`Point::canonical`], but a mask
    /// file's point without its sparsity (the file's, which a rewritten file may change). Two
    /// point files of one grid point are one made from older inputs and its replacement.
    pub fn grid_point(&self) -> String {
        match self.masks {
            Some(_) => Point {
                sparsity: f64::NAN,
                ..self.clone()
            }
            .canonical(),
            None => self.canonical(),
        }
    }

    /// The point in one canonical line, for messages: model, fabric, sparsity, seed, overrides.
    pub fn canonical(&self) -> String {
        let overrides: Vec<String> = self
            .overrides
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let systems = match self.systems {
            1 => String::new(),
            n => format!(";systems={n}"),
        };
        let masks = match &self.masks {
            Some(path) => format!(";masks={path}"),
            None => String::new(),
        };
        format!(
            "model={};fabric={};sparsity={};seed={}{systems};overrides={}{masks}",
            self.model,
            self.fabric,
            self.sparsity,
            self.seed,
            overrides.join(",")
        )
    }
}

impl SweepSpec {
    pub fn load(path: &str) -> Result<SweepSpec> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Input(format!("sweep spec '{path}': cannot be read: {e}")))?;
        let spec: SweepSpec = parse_toml(path, &text)?;
        spec.validate(path)?;
        Ok(spec)
    }

    pub fn validate(&self, origin: &str) -> Result<()> {
        let empty = |key: &str| {
            Error::Input(format!(
                "{origin}: key `{key}` is empty: give at least one value"
            ))
        };
        if self.models.is_empty() {
            return Err(empty("models"));
        }
        if self.fabrics.is_empty() {
            return Err(empty("fabrics"));
        }
        if self.sparsities.is_empty() && self.masks.is_empty() {
            return Err(Error::Input(format!(
                "{origin}: keys `sparsities` and `masks` are both empty: give sparsities, mask \
                 files or both"
            )));
        }
        // A mask file fixes every weight's shape and which weights are masked, and replaces the
        // recipe's pattern and levels: none of these can vary beside it.
        let fixed_by_masks = |k: &str| {
            k.starts_with("architecture.")
                || ["recipe.sparse_weights", "recipe.pattern", "recipe.levels"].contains(&k)
        };
        if let Some(key) = self.overrides.keys().find(|k| fixed_by_masks(k)) {
            if !self.masks.is_empty() {
                return Err(Error::Input(format!(
                    "{origin}: override `{key}` with `masks`: a mask file fixes every weight's \
                     shape, which weights are masked and how (its masks replace the recipe's \
                     pattern and levels); sweep that key without masks, or give a mask file per \
                     value in sweeps of their own"
                )));
            }
        }
        if self.seeds.is_empty() {
            return Err(empty("seeds"));
        }
        if self.systems.is_empty() {
            return Err(empty("systems"));
        }
        if let Some(i) = self.systems.iter().position(|&n| n == 0) {
            return Err(Error::Input(format!(
                "{origin}: key `systems[{i}]` = 0 is not allowed: 1 to each fabric's \
                 cluster.systems_max"
            )));
        }
        for (i, &s) in self.sparsities.iter().enumerate() {
            check_sparsity(&format!("{origin}: key `sparsities[{i}]`"), s)?;
        }
        self.refuse_repeats(origin)?;
        for (key, values) in &self.overrides {
            if values.is_empty() {
                return Err(empty(&format!("overrides.\"{key}\"")));
            }
            if !OVERRIDE_PREFIXES.iter().any(|p| key.starts_with(p)) {
                return Err(Error::Input(format!(
                    "{origin}: override `{key}` is not allowed: keys start with `architecture.` \
                     or `recipe.` (the model's) or `fabric.` (the fabric's, e.g. \
                     `fabric.io.wafer_io_bits_per_second`)"
                )));
            }
        }
        let points = self.point_count();
        if points > self.limits.max_points as u128 {
            return Err(Error::Input(format!(
                "{origin}: the grid has {points} points, over `limits.max_points` = {}; raise the limit \
                 or shrink the grid",
                self.limits.max_points
            )));
        }
        Ok(())
    }

    /// Refuses a value listed twice under one key: its two points would be one point, written
    /// twice. Sparsities compare as numbers (0.0 and -0.0 are one), the rest as written.
    fn refuse_repeats(&self, origin: &str) -> Result<()> {
        let sparsities: Vec<String> = self
            .sparsities
            .iter()
            .map(|&s| normal(s).to_string())
            .collect();
        let seeds: Vec<String> = self.seeds.iter().map(u64::to_string).collect();
        let systems: Vec<String> = self.systems.iter().map(u64::to_string).collect();
        let mut lists = vec![
            ("models".to_string(), self.models.clone()),
            ("fabrics".to_string(), self.fabrics.clone()),
            ("sparsities".to_string(), sparsities),
            ("seeds".to_string(), seeds),
            ("systems".to_string(), systems),
            ("masks".to_string(), self.masks.clone()),
        ];
        for (key, values) in &self.overrides {
            let values = values.iter().map(toml::Value::to_string).collect();
            lists.push((format!("overrides.\"{key}\""), values));
        }
        for (key, values) in &lists {
            for (i, value) in values.iter().enumerate() {
                if let Some(j) = values[..i].iter().position(|v| v == value) {
                    return Err(Error::Input(format!(
                        "{origin}: key `{key}` lists {value} twice (at {j} and {i}): each value \
                         makes points of its own, so list each once"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Points in the grid (counted before building them, so a huge grid is refused up front).
    pub fn point_count(&self) -> u128 {
        let overrides: u128 = self.overrides.values().map(|v| v.len() as u128).product();
        self.models.len() as u128
            * self.fabrics.len() as u128
            * (self.sparsities.len() + self.masks.len()) as u128
            * self.seeds.len() as u128
            * self.systems.len() as u128
            * overrides
    }

    /// Every point, in a fixed order.
    pub fn points(&self) -> Vec<Point> {
        let mut assignments: Vec<BTreeMap<String, String>> = vec![BTreeMap::new()];
        for (key, values) in &self.overrides {
            assignments = assignments
                .into_iter()
                .flat_map(|a| {
                    values.iter().map(move |v| {
                        let mut a = a.clone();
                        a.insert(key.clone(), v.to_string());
                        a
                    })
                })
                .collect();
        }
        let mut points = Vec::new();
        for model in &self.models {
            for fabric in &self.fabrics {
                for overrides in &assignments {
                    for &seed in &self.seeds {
                        for &systems in &self.systems {
                            let point = |sparsity: f64, masks: Option<&String>| Point {
                                model: model.clone(),
                                fabric: fabric.clone(),
                                sparsity: normal(sparsity),
                                seed,
                                systems,
                                overrides: overrides.clone(),
                                masks: masks.cloned(),
                            };
                            for &sparsity in &self.sparsities {
                                points.push(point(sparsity, None));
                            }
                            // The masks' sparsity is set when their file is read.
                            for masks in &self.masks {
                                points.push(point(0.0, Some(masks)));
                            }
                        }
                    }
                }
            }
        }
        points
    }
}

/// A sparsity with -0.0 made 0.0, so that a point's key and line do not depend on the sign of a zero.
pub(crate) fn normal(sparsity: f64) -> f64 {
    sparsity + 0.0
}
