//! Running a sweep's points: in parallel, each written atomically to `points/<key>.json`, those
//! already there from the same inputs reused, so that rerunning resumes and a job array can
//! share one folder.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::resolve::{resolve_points, source_of, KeyInputs, ResolvedPoint};
use super::spec::{Point, SweepSpec, FABRIC_PREFIX};
use crate::error::{Error, Result};
use crate::report::{create_folder, write_atomic};
use crate::report::{PhaseFigures, TrainPhase};
use crate::schedule::run_recipe_on_systems;
use crate::spec::{parse_toml, FabricSpec, ModelSpec, SpecText};

/// A shard `i/n` (1-based): the points whose key (its first 64 bits) modulo n is i − 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    pub const ALL: Shard = Shard { index: 1, count: 1 };

    pub fn parse(text: &str) -> Result<Shard> {
        let bad = || {
            Error::Input(format!(
                "--shard '{text}' is not allowed: give i/n with 1 <= i <= n, e.g. 2/8 \
                 (under Slurm: --shard $((SLURM_ARRAY_TASK_ID+1))/$SLURM_ARRAY_TASK_COUNT)"
            ))
        };
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let (index, count): (u64, u64) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// Whether the point with `key` (hex, from SHA-256) is in this shard.
    pub fn contains(&self, key: &str) -> bool {
        let hash = u64::from_str_radix(&key[..16], 16).expect("a key is hex");
        hash % self.count == self.index - 1
    }
}

/// What a point's file holds: the point, what it was simulated from, and its figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PointResult {
    /// The version of the field names and types (`report::SCHEMA_VERSION`).
    pub schema_version: u32,
    pub version: String,
    pub timing_model_version: u32,
    pub key: String,
    pub point: Point,
    /// `builtin`, or the model file as the sweep spec names it.
    pub model_source: String,
    pub model_sha256: String,
    pub fabric_source: String,
    pub fabric_sha256: String,
    /// The SHA-256 of a point's mask file (see `masks_file.sha256` in `train`'s report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masks_sha256: Option<String>,
    /// Whether the point's fabric lies where `validate` holds the cost models (as `train`'s
    /// report), and the keys outside.
    pub validated: bool,
    pub unvalidated_keys: Vec<crate::validate::UnvalidatedKey>,
    /// The fabric's clock and the dense run's cycles: what `seconds` and `simulated_speedup`
    /// were computed from, so that `merge` can check them.
    pub clock_hz: u64,
    pub dense_pretrain_cycles: u64,
    pub dense_total_cycles: u64,
    pub pretrain: TrainPhase,
    pub total: TrainPhase,
}

impl PointResult {
    /// The key of the inputs this file records: equal to `key` unless the file was edited.
    pub fn recomputed_key(&self) -> String {
        KeyInputs {
            point: &self.point,
            model_sha256: &self.model_sha256,
            fabric_sha256: &self.fabric_sha256,
            timing_model_version: self.timing_model_version,
            masks_sha256: self.masks_sha256.as_deref(),
        }
        .key()
    }

    /// Whether its figures are figures a run produces, by the check `plot speedup` holds a
    /// `report.json` to ([`PhaseFigures::check`]): the field and why not, if not.
    pub fn check_figures(&self) -> std::result::Result<(), (String, String)> {
        let phases = [
            (
                "pretrain",
                &self.pretrain,
                "dense_pretrain_cycles",
                self.dense_pretrain_cycles,
            ),
            (
                "total",
                &self.total,
                "dense_total_cycles",
                self.dense_total_cycles,
            ),
        ];
        for (name, phase, dense_key, dense_cycles) in phases {
            if phase.phase != name || phase.sparsity != self.point.sparsity {
                return Err((
                    format!("{name}.phase"),
                    format!(
                        "{:?} at sparsity {}: must be {name:?} at the point's sparsity {}",
                        phase.phase, phase.sparsity, self.point.sparsity
                    ),
                ));
            }
            let dense_run = self.point.sparsity == 0.0;
            if dense_cycles == 0 || (dense_run && dense_cycles != phase.cycles) {
                return Err((
                    dense_key.into(),
                    format!("{dense_cycles}: not the cycles of the dense run"),
                ));
            }
            PhaseFigures::from(phase)
                .check(dense_cycles as f64, self.clock_hz as f64)
                .map_err(|(key, why)| (format!("{name}.{key}"), why))?;
        }
        Ok(())
    }
}

/// How a sweep went: points run now, points reused from earlier runs, points in other shards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct SweepOutcome {
    pub points_total: u64,
    pub points_in_shard: u64,
    pub points_run: u64,
    pub points_reused: u64,
    /// Files of earlier runs of the same grid point on other inputs, removed once replaced.
    pub points_replaced: u64,
    /// When a point is reused.
    pub reused_when: String,
    /// Every point in a fixed order, with what this run did with it.
    pub points: Vec<PointStatus>,
}

/// One point of a sweep and what the run did with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct PointStatus {
    /// The point's canonical line.
    pub point: String,
    pub key: String,
    /// `run`, `reused` or `other_shard`.
    pub status: &'static str,
    /// Files of this grid point from other inputs that the run removed.
    pub replaced: Vec<String>,
}

/// Bytes one running point takes at most: a one-point sweep of mediswift-xl at sparsity 0.75 on
/// wse2 peaks at 48.6 MB resident (`/usr/bin/time -f %M`), rounded up with room to spare.
pub const POINT_MEMORY_BYTES: u64 = 64 << 20;

/// The most points a sweep runs at once: a thread each, and far more threads than any machine
/// has cores only adds memory and scheduling, never speed.
pub const MAX_JOBS: usize = 1024;

/// How many points a sweep runs at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jobs {
    /// Exactly this many (`--jobs`), refused if `limits.max_memory_bytes` does not hold them.
    Given(usize),
    /// At most this many (the machine's cores), fewer where `limits.max_memory_bytes` holds
    /// fewer (a point on mask files takes far more than one on drawn masks).
    UpTo(usize),
}

/// Runs the shard's points whose file in `out/points/` is missing or made from other inputs,
/// `jobs` at a time; `progress` is called after each point with (done, to do). `origin` is the
/// spec's path: relative model and fabric paths are taken from its folder. Returns how it went
/// and the points it ran at once.
pub fn run_sweep(
    spec: &SweepSpec,
    origin: &str,
    out: &Path,
    shard: Shard,
    jobs: Jobs,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<(SweepOutcome, usize)> {
    if let Jobs::Given(jobs) = jobs {
        check_jobs(spec, origin, jobs, (0, 0))?;
    }
    let points = resolve_points(spec, origin)?;
    let masks = masks_memory(&points);
    let jobs = match jobs {
        Jobs::Given(jobs) => jobs,
        Jobs::UpTo(cores) => {
            let per_point = POINT_MEMORY_BYTES + masks.1;
            let fit = spec.limits.max_memory_bytes.saturating_sub(masks.0) / per_point;
            cores.min(usize::try_from(fit).unwrap_or(usize::MAX)).max(1)
        }
    };
    check_jobs(spec, origin, jobs, masks)?;
    // Load every point's model and fabric up front, so that a bad override fails before any work.
    let mut work = HashMap::new();
    for p in &points {
        work.insert(p.key.clone(), work_estimate(spec, p, origin)?);
    }
    let folder = out.join("points");
    create_folder(&folder)?;
    let earlier = earlier_points(&folder);
    let mut statuses = Vec::new();
    let mut todo = Vec::new();
    for p in &points {
        let replaced: Vec<PathBuf> = earlier
            .get(&p.point.grid_point())
            .into_iter()
            .flatten()
            .filter(|(key, _)| *key != p.key && shard.contains(&p.key))
            .map(|(_, path)| path.clone())
            .collect();
        let status = if !shard.contains(&p.key) {
            "other_shard"
        } else if is_current(&point_path(out, &p.key), &p.key) {
            remove_replaced(&replaced)?;
            "reused"
        } else {
            todo.push((p, work[&p.key], replaced.clone()));
            "run"
        };
        statuses.push(PointStatus {
            point: p.point.canonical(),
            key: p.key.clone(),
            status,
            replaced: replaced.iter().map(|r| file_name(r)).collect(),
        });
    }
    // Largest first, so that the last points to finish are small ones (longest-processing-time
    // first keeps both threads busy to the end); ties by key, for a fixed order.
    todo.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.key.cmp(&b.0.key)));
    run_points(&todo, origin, out, jobs, progress)?;
    let count = |s: &str| statuses.iter().filter(|p| p.status == s).count() as u64;
    let outcome = SweepOutcome {
        points_total: points.len() as u64,
        points_in_shard: points.len() as u64 - count("other_shard"),
        points_run: count("run"),
        points_reused: count("reused"),
        points_replaced: statuses.iter().map(|p| p.replaced.len() as u64).sum(),
        reused_when: format!(
            "points/<key>.json holds a point of wafersim {} with that key: SHA-256 of the point \
             (model and fabric as the spec names them, sparsity, seed, systems, overrides, mask \
             file), the SHA-256 of the model and fabric files' contents (and of a mask file's), \
             and timing model version {}",
            crate::VERSION,
            crate::TIMING_MODEL_VERSION
        ),
        points: statuses,
    };
    Ok((outcome, jobs))
}

/// Memory the points' mask files take: (shared by their points, more per running point). Each
/// file's masks are held once with their transposes (a bit per entry each); a running point's
/// per-PE counts take about 3 bits per entry (mediswift-xl on wse2: 364 MB of counts for
/// 1.2 G entries), its own.
fn masks_memory(points: &[ResolvedPoint]) -> (u64, u64) {
    let mut masks: Vec<&Arc<crate::masks::MaskSet>> =
        points.iter().filter_map(|p| p.masks.as_ref()).collect();
    masks.sort_by_key(|m| Arc::as_ptr(m));
    masks.dedup_by_key(|m| Arc::as_ptr(m));
    let bits = |m: &&Arc<crate::masks::MaskSet>| m.elements().div_ceil(8);
    let shared = masks.iter().map(|m| 2 * bits(m)).sum();
    let per_point = masks.iter().map(|m| 3 * bits(m)).max().unwrap_or(0);
    (shared, per_point)
}

/// Refuses more jobs than [`MAX_JOBS`] or than `limits.max_memory_bytes` holds, with the
/// points' masks beside them (`(shared, per running point)` bytes, [`masks_memory`]).
fn check_jobs(
    spec: &SweepSpec,
    origin: &str,
    jobs: usize,
    (masks_shared, masks_per_point): (u64, u64),
) -> Result<()> {
    if jobs == 0 || jobs > MAX_JOBS {
        return Err(Error::Input(format!(
            "--jobs {jobs} is not allowed: give 1 to {MAX_JOBS} points at once"
        )));
    }
    let per_point = POINT_MEMORY_BYTES + masks_per_point;
    let memory = per_point * jobs as u64 + masks_shared;
    if memory > spec.limits.max_memory_bytes {
        let masks = match masks_shared {
            0 => String::new(),
            bytes => format!(", and {} MiB of masks", bytes >> 20),
        };
        return Err(Error::Input(format!(
            "{origin}: {jobs} jobs need about {} MiB ({} MiB per point{masks}), over \
             `limits.max_memory_bytes` = {} MiB; use fewer --jobs or raise the limit",
            memory >> 20,
            per_point >> 20,
            spec.limits.max_memory_bytes >> 20
        )));
    }
    Ok(())
}

/// A point's work: tokens × non-embedding parameters of a pre-training step, twice for a sparse
/// point (it simulates the dense baseline as well). Loading the model checks its overrides, and
/// that it masks weights if the point's sparsity is above 0.
fn work_estimate(spec: &SweepSpec, p: &ResolvedPoint, origin: &str) -> Result<u64> {
    let model = point_model(p, origin)?;
    let sparsity_origin = match &p.point.masks {
        Some(entry) => {
            let index = spec.masks.iter().position(|m| m == entry);
            format!(
                "{origin}: key `masks[{}]`, model {}",
                index.unwrap_or_default(),
                p.point.model
            )
        }
        None => {
            let index = spec.sparsities.iter().position(|&s| s == p.point.sparsity);
            format!(
                "{origin}: key `sparsities[{}]`, model {}",
                index.unwrap_or_default(),
                p.point.model
            )
        }
    };
    model
        .recipe
        .check_masks_weights(&sparsity_origin, p.point.sparsity)?;
    model.recipe.check_pattern(
        &format!("{sparsity_origin}: its `recipe.pattern`"),
        model.recipe.pattern,
        p.point.sparsity,
        &model.architecture,
    )?;
    model.check_dynamic(&format!("{sparsity_origin}: its `recipe.dynamic`"))?;
    let fabric = load_point_fabric(&p.point, &p.fabric, origin)?;
    if p.point.systems > fabric.cluster.systems_max {
        let index = spec.systems.iter().position(|&n| n == p.point.systems);
        return Err(Error::Input(format!(
            "{origin}: key `systems[{}]` = {} is not allowed on fabric {}: 1 to its \
             cluster.systems_max = {}",
            index.unwrap_or_default(),
            p.point.systems,
            p.point.fabric,
            fabric.cluster.systems_max
        )));
    }
    let step_tokens = model.recipe.pretrain.batch_sequences * model.recipe.pretrain.seq_len;
    let params = crate::graph::ParamCounts::of(&model).non_embedding;
    let runs = if p.point.sparsity > 0.0 { 2 } else { 1 };
    Ok(step_tokens.saturating_mul(params).saturating_mul(runs))
}

/// The point files already in `folder`, by their grid point ([`Point::grid_point`]): (key,
/// path) of each.
/// A file that is not a point is left for `merge` to refuse.
fn earlier_points(folder: &Path) -> BTreeMap<String, Vec<(String, PathBuf)>> {
    let mut by_point: BTreeMap<String, Vec<(String, PathBuf)>> = BTreeMap::new();
    for path in point_files(folder) {
        if let Some(point) = read_point(&path) {
            by_point
                .entry(point.point.grid_point())
                .or_default()
                .push((point.key, path));
        }
    }
    by_point
}

/// The `.json` files of a points folder, sorted (temporaries start with a dot).
pub(super) fn point_files(folder: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = file_name(p);
            !name.starts_with('.') && name.ends_with(".json")
        })
        .collect();
    files.sort();
    files
}

fn read_point(path: &Path) -> Option<PointResult> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Whether `path` holds a point this version made from the inputs `key` names.
fn is_current(path: &Path, key: &str) -> bool {
    read_point(path).is_some_and(|p| {
        p.version == crate::VERSION
            && p.key == key
            && p.recomputed_key() == key
            && p.check_figures().is_ok()
    })
}

fn remove_replaced(replaced: &[PathBuf]) -> Result<()> {
    for path in replaced {
        std::fs::remove_file(path).or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Ok(()),
            _ => Err(Error::Io {
                path: path.display().to_string(),
                source: e,
            }),
        })?;
    }
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

type Todo<'a> = (&'a ResolvedPoint, u64, Vec<PathBuf>);

/// Runs `todo` in order on `jobs` threads, each worker taking the next point until none is left
/// or one failed; each point's file is written, then the files it replaces are removed.
fn run_points(
    todo: &[Todo],
    origin: &str,
    out: &Path,
    jobs: usize,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<()> {
    let total = todo.len() as u64;
    let next = AtomicUsize::new(0);
    let done = AtomicU64::new(0);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .build()
        .map_err(|e| Error::Simulation(format!("cannot start {jobs} threads: {e}")))?;
    let run_one = |(point, _, replaced): &Todo| -> Result<()> {
        let result = run_point(point, origin)?;
        let mut json = serde_json::to_string_pretty(&result)
            .map_err(|e| Error::Simulation(format!("cannot encode point {}: {e}", result.key)))?;
        json.push('\n');
        write_atomic(&point_path(out, &point.key), json.as_bytes())?;
        remove_replaced(replaced)?;
        progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
        Ok(())
    };
    pool.scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|_| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let stop = failure.lock().map_or(true, |f| f.is_some());
                if i >= todo.len() || stop {
                    break;
                }
                if let Err(e) = run_one(&todo[i]) {
                    if let Ok(mut f) = failure.lock() {
                        f.get_or_insert(e);
                    }
                }
            });
        }
    });
    match failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

pub fn point_path(out: &Path, key: &str) -> PathBuf {
    out.join("points").join(format!("{key}.json"))
}

/// The point's model with its `architecture.` and `recipe.` overrides applied, validated;
/// `origin` is the sweep spec. The model is read from the TOML table itself, never from a
/// re-serialised text whose line numbers the user never saw: an override of the wrong kind is
/// named by the spec, its key and value.
pub fn load_point_model(point: &Point, model: &SpecText, origin: &str) -> Result<ModelSpec> {
    let overrides: Vec<(&str, &String)> = point
        .overrides
        .iter()
        .filter(|(key, _)| !key.starts_with(FABRIC_PREFIX))
        .map(|(key, value)| (key.as_str(), value))
        .collect();
    let who = format!("model {}", point.model);
    let Some(spec) = overridden::<ModelSpec>(model, &overrides, &who, origin)? else {
        return model.model();
    };
    spec.validate(&format!("{} with the overrides of {origin}", model.origin))?;
    Ok(spec)
}

/// The point's fabric with its `fabric.` overrides applied (the key without the prefix is the
/// fabric file's), validated as a fabric file is.
pub fn load_point_fabric(point: &Point, fabric: &SpecText, origin: &str) -> Result<FabricSpec> {
    let overrides: Vec<(&str, &String)> = point
        .overrides
        .iter()
        .filter(|(key, _)| key.starts_with(FABRIC_PREFIX))
        .map(|(key, value)| (key.as_str(), value))
        .collect();
    let who = format!("fabric {}", point.fabric);
    let Some(spec) = overridden::<FabricSpec>(fabric, &overrides, &who, origin)? else {
        return fabric.fabric();
    };
    spec.validate(&format!("{} with the overrides of {origin}", fabric.origin))?;
    Ok(spec)
}

/// `text` parsed with `overrides` set in its table, or `None` without overrides. The file's own
/// errors come first, with its own lines; then each override is applied and the result parsed,
/// so that a value of the wrong kind names its own override.
fn overridden<T: serde::de::DeserializeOwned>(
    text: &SpecText,
    overrides: &[(&str, &String)],
    who: &str,
    origin: &str,
) -> Result<Option<T>> {
    if overrides.is_empty() {
        return Ok(None);
    }
    parse_toml::<T>(&text.origin, &text.text)?;
    let mut table: toml::Table = parse_toml(&text.origin, &text.text)?;
    let mut spec = None;
    for (i, (key, value)) in overrides.iter().enumerate() {
        let refused = |why: String| {
            Error::Input(format!(
                "{origin}: override `{key}` = {value} on {who}: {why}"
            ))
        };
        let parsed: toml::Value = parse_toml::<toml::Table>(origin, &format!("v = {value}"))?
            .remove("v")
            .expect("parsed one key");
        // A fabric override's key is the fabric file's after the prefix.
        let in_file = key.strip_prefix(FABRIC_PREFIX).unwrap_or(key);
        set_dotted(&mut table, in_file, parsed).map_err(refused)?;
        match toml::Value::Table(table.clone()).try_into::<T>() {
            Ok(applied) => spec = Some(applied),
            Err(e) => {
                let why = e.message().trim().replace('\n', " ");
                // A table the overrides make (`recipe.dynamic`) lacks its required keys until
                // the override that sets them: only the last override's parse must succeed.
                if i + 1 == overrides.len() || !why.starts_with("missing field") {
                    return Err(refused(why));
                }
            }
        }
    }
    Ok(spec)
}

/// Tables a model file may leave out, whose keys a sweep may still set: the override makes the
/// table, and any of its keys may be set (the spec's parse refuses an unknown one, and a
/// required one left out).
const OPTIONAL_TABLES: [&str; 1] = ["recipe.dynamic"];

fn set_dotted(
    table: &mut toml::Table,
    key: &str,
    value: toml::Value,
) -> std::result::Result<(), String> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let leaf = parts.pop().ok_or("empty key")?;
    let optional = OPTIONAL_TABLES.contains(&parts.join(".").as_str());
    let mut current = table;
    for (i, part) in parts.iter().enumerate() {
        if optional && i + 1 == parts.len() && !current.contains_key(*part) {
            current.insert(part.to_string(), toml::Value::Table(toml::Table::new()));
        }
        current = current
            .get_mut(*part)
            .and_then(toml::Value::as_table_mut)
            .ok_or_else(|| format!("it has no table `{part}`"))?;
    }
    if !optional && !current.contains_key(leaf) {
        return Err(format!("it has no key `{leaf}` there"));
    }
    current.insert(leaf.to_string(), value);
    Ok(())
}

/// The point's model with its overrides, and its masks in the recipe if it has a mask file.
fn point_model(p: &ResolvedPoint, origin: &str) -> Result<ModelSpec> {
    let mut model = load_point_model(&p.point, &p.model, origin)?;
    // Random masks drawn from the point's seed: each sparse GEMM priced by its own counts.
    model.recipe.mask_seed = Some(p.point.seed);
    if let Some(masks) = &p.masks {
        // Shared masks, counts of the point's own (they go when it ends).
        Arc::new(masks.for_run()).install(&mut model);
    }
    Ok(model)
}

fn run_point(p: &ResolvedPoint, origin: &str) -> Result<PointResult> {
    let model = point_model(p, origin)?;
    let fabric = load_point_fabric(&p.point, &p.fabric, origin)?;
    let runs = run_recipe_on_systems(&model, &fabric, &[p.point.sparsity], p.point.systems)?;
    let run = runs.last().expect("the dense run at least");
    let clock = fabric.clock.clock_hz as f64;
    let unvalidated = crate::validate::unvalidated_keys(&fabric);
    Ok(PointResult {
        schema_version: crate::report::SCHEMA_VERSION,
        version: crate::VERSION.to_string(),
        timing_model_version: crate::TIMING_MODEL_VERSION,
        key: p.key.clone(),
        point: p.point.clone(),
        model_source: source_of(&p.point.model, &p.model),
        model_sha256: p.model.provenance.sha256.clone(),
        fabric_source: source_of(&p.point.fabric, &p.fabric),
        fabric_sha256: p.fabric.provenance.sha256.clone(),
        masks_sha256: p.masks.as_ref().map(|m| m.sha256.clone()),
        validated: unvalidated.is_empty(),
        unvalidated_keys: unvalidated,
        clock_hz: fabric.clock.clock_hz,
        dense_pretrain_cycles: runs[0].phases[0].cycles,
        dense_total_cycles: runs[0].total.cycles,
        pretrain: TrainPhase::of_phase(&run.phases[0], clock),
        total: TrainPhase::of_total(&run.total, run.sparsity, clock),
    })
}
