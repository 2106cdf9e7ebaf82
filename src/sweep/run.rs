//! Running a sweep's points: in parallel, each written atomically to `points/<hash>.json`, those
//! already there skipped, so that rerunning resumes and a job array can share one folder.

use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::spec::{Point, SweepSpec};
use crate::error::{Error, Result};
use crate::report::TrainPhase;
use crate::report::{create_folder, write_atomic};
use crate::schedule::run_recipe;
use crate::spec::{load_fabric, model_text, parse_toml, ModelSpec};

/// A shard `i/n` (1-based): the points whose hash modulo n is i − 1.
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

    pub fn contains(&self, point: &Point) -> bool {
        let hash = u64::from_str_radix(&point.hash(), 16).expect("hash is hex");
        mix(hash) % self.count == self.index - 1
    }
}

/// SplitMix64's finaliser: spreads FNV-1a's low bits, so that small grids split evenly over
/// shards (the modulo only sees the low bits).
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// What a point's file holds: the point and its figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointResult {
    pub version: String,
    pub hash: String,
    pub point: Point,
    /// Whether the point's fabric lies where `validate` holds the cost models (as `train`'s
    /// report), and the keys outside.
    pub validated: bool,
    pub unvalidated_keys: Vec<crate::validate::UnvalidatedKey>,
    pub pretrain: TrainPhase,
    pub total: TrainPhase,
}

/// How a sweep went: points run now, points already there, points in other shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SweepOutcome {
    pub points_total: u64,
    pub points_in_shard: u64,
    pub points_run: u64,
    pub points_skipped: u64,
}

/// Bytes one running point takes at most: a one-point sweep of mediswift-xl at sparsity 0.75 on
/// wse2 peaks at 48.6 MB resident (`/usr/bin/time -f %M`), rounded up with room to spare.
pub const POINT_MEMORY_BYTES: u64 = 64 << 20;

/// Runs the shard's points not yet in `out/points/`, `jobs` at a time; `progress` is called
/// after each point with (done, to do).
pub fn run_sweep(
    spec: &SweepSpec,
    origin: &str,
    out: &Path,
    shard: Shard,
    jobs: usize,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<SweepOutcome> {
    let memory = POINT_MEMORY_BYTES * jobs as u64;
    if memory > spec.limits.max_memory_bytes {
        return Err(Error::Input(format!(
            "{origin}: {jobs} jobs need about {} MiB ({} MiB per point), over `limits.max_memory_bytes` = {} MiB; \
             use fewer --jobs or raise the limit",
            memory >> 20,
            POINT_MEMORY_BYTES >> 20,
            spec.limits.max_memory_bytes >> 20
        )));
    }
    let points = spec.points();
    // Load every model and fabric once up front, so that a bad override fails before any work;
    // keep a work estimate per point: tokens × non-embedding parameters of a pre-training step,
    // twice for a sparse point (it simulates the dense baseline as well).
    let mut work = std::collections::HashMap::new();
    for point in &points {
        let model = load_point_model(point, origin)?;
        load_fabric(&point.fabric)?;
        let step_tokens = model.recipe.pretrain.batch_sequences * model.recipe.pretrain.seq_len;
        let params = crate::graph::ParamCounts::of(&model).non_embedding;
        let runs = if point.sparsity > 0.0 { 2 } else { 1 };
        work.insert(
            point.hash(),
            step_tokens.saturating_mul(params).saturating_mul(runs),
        );
    }
    let folder = out.join("points");
    create_folder(&folder)?;
    let mine: Vec<&Point> = points.iter().filter(|p| shard.contains(p)).collect();
    let mut todo: Vec<(&Point, u64)> = mine
        .iter()
        .copied()
        .filter(|p| !point_path(out, p).exists())
        .map(|p| (p, work[&p.hash()]))
        .collect();
    // Largest first, so that the last points to finish are small ones (longest-processing-time
    // first keeps both threads busy to the end); ties by hash, for a fixed order.
    todo.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.hash().cmp(&b.0.hash())));
    let total = todo.len() as u64;
    let next = AtomicUsize::new(0);
    let done = AtomicU64::new(0);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.max(1))
        .build()
        .map_err(|e| Error::Simulation(format!("cannot start {jobs} threads: {e}")))?;
    let run_one = |point: &Point| -> Result<()> {
        let result = run_point(point, origin)?;
        let mut json = serde_json::to_string_pretty(&result)
            .map_err(|e| Error::Simulation(format!("cannot encode point {}: {e}", result.hash)))?;
        json.push('\n');
        write_atomic(&point_path(out, point), json.as_bytes())?;
        progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
        Ok(())
    };
    // Each worker takes the next point off the sorted list until none is left or one failed.
    pool.scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|_| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let stop = failure.lock().map_or(true, |f| f.is_some());
                if i >= todo.len() || stop {
                    break;
                }
                if let Err(e) = run_one(todo[i].0) {
                    if let Ok(mut f) = failure.lock() {
                        f.get_or_insert(e);
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(SweepOutcome {
        points_total: points.len() as u64,
        points_in_shard: mine.len() as u64,
        points_run: total,
        points_skipped: mine.len() as u64 - total,
    })
}

pub fn point_path(out: &Path, point: &Point) -> PathBuf {
    out.join("points").join(format!("{}.json", point.hash()))
}

/// The point's model with its overrides applied, validated.
pub fn load_point_model(point: &Point, origin: &str) -> Result<ModelSpec> {
    let (model_origin, text) = model_text(&point.model)?;
    if point.overrides.is_empty() {
        let model: ModelSpec = parse_toml(&model_origin, &text)?;
        model.validate(&model_origin)?;
        return Ok(model);
    }
    let mut table: toml::Table = parse_toml(&model_origin, &text)?;
    for (key, value) in &point.overrides {
        let value: toml::Value = parse_toml::<toml::Table>(origin, &format!("v = {value}"))?
            .remove("v")
            .expect("parsed one key");
        set_dotted(&mut table, key, value).map_err(|why| {
            Error::Input(format!(
                "{origin}: override `{key}` on model {}: {why}",
                point.model
            ))
        })?;
    }
    let described = format!("{model_origin} with the overrides of {origin}");
    let model: ModelSpec = parse_toml(
        &described,
        &toml::to_string(&table).expect("a TOML table serializes"),
    )?;
    model.validate(&described)?;
    Ok(model)
}

fn set_dotted(
    table: &mut toml::Table,
    key: &str,
    value: toml::Value,
) -> std::result::Result<(), String> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let leaf = parts.pop().ok_or("empty key")?;
    let mut current = table;
    for part in parts {
        current = current
            .get_mut(part)
            .and_then(toml::Value::as_table_mut)
            .ok_or_else(|| format!("the model has no table `{part}`"))?;
    }
    if !current.contains_key(leaf) {
        return Err(format!("the model has no key `{leaf}` there"));
    }
    current.insert(leaf.to_string(), value);
    Ok(())
}

fn run_point(point: &Point, origin: &str) -> Result<PointResult> {
    let model = load_point_model(point, origin)?;
    let fabric = load_fabric(&point.fabric)?;
    let runs = run_recipe(&model, &fabric, &[point.sparsity])?;
    let run = runs.last().expect("the dense run at least");
    let clock = fabric.clock.clock_hz as f64;
    let unvalidated = crate::validate::unvalidated_keys(&fabric);
    Ok(PointResult {
        version: crate::VERSION.to_string(),
        hash: point.hash(),
        point: point.clone(),
        validated: unvalidated.is_empty(),
        unvalidated_keys: unvalidated,
        pretrain: TrainPhase::of_phase(&run.phases[0], clock),
        total: TrainPhase::of_total(&run.total, run.sparsity, clock),
    })
}
