//! `wafersim sweep` and `wafersim merge`.

use std::path::PathBuf;

use super::args::{MergeArgs, SweepArgs};
use super::progress::Progress;
use super::Common;
use crate::error::{Error, Result};
use crate::report::{check_output_folder, draw_sweep_speedup, write_atomic, Table};
use crate::sweep::{
    read_points, resolve_points, run_sweep, sweep_csv, Jobs, Shard, SweepSpec, MAX_JOBS,
};

pub fn sweep(args: &SweepArgs, common: &Common) -> Result<String> {
    let started = std::time::Instant::now();
    refuse_seed(common, &args.spec)?;
    let spec = SweepSpec::load(&args.spec)?;
    let shard = match &args.shard {
        Some(text) => Shard::parse(text)?,
        None => Shard::ALL,
    };
    // run_sweep refuses 0 and more than MAX_JOBS, naming --jobs.
    let jobs = match args.jobs {
        Some(jobs) => Jobs::Given(jobs),
        None => {
            Jobs::UpTo(std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_JOBS)))
        }
    };
    let out = args.out.clone().unwrap_or_else(|| {
        let stem = std::path::Path::new(&args.spec)
            .file_stem()
            .map_or("sweep".into(), |s| s.to_string_lossy().into_owned());
        PathBuf::from("wafersim-out").join(format!("sweep-{stem}"))
    });
    // Refuses a bad WAFERSIM_PROGRESS_SECONDS before the folder is touched.
    let bar = Progress::new(
        common,
        "{bar:40} {pos}/{len} points, {elapsed} elapsed, ETA {eta}",
    )?;
    check_output_folder("--out", &out)?;
    let progress = |done: u64, total: u64| {
        bar.update(done, total, done == total, |seconds| {
            format!(
                "wafersim sweep {}: {done}/{total} points, {seconds:.0} s",
                args.spec
            )
        });
    };
    let (outcome, jobs) = run_sweep(&spec, &args.spec, &out, shard, jobs, &progress)?;
    bar.finish();
    let host_seconds = started.elapsed().as_secs_f64();
    if common.json {
        let value = SweepReport {
            schema_version: crate::report::SCHEMA_VERSION,
            version: crate::VERSION,
            seeds: spec.seeds.clone(),
            spec: args.spec.clone(),
            out: out.display().to_string(),
            shard: format!("{}/{}", shard.index, shard.count),
            jobs: jobs as u64,
            outcome,
            host_seconds,
        };
        return Ok(format!(
            "{}\n",
            serde_json::to_string_pretty(&value).expect("JSON")
        ));
    }
    if common.quiet {
        return Ok(String::new());
    }
    Ok(unvalidated_fabrics(&spec, &args.spec)?
        + &format!(
        "wafersim sweep {}: {} points, {} in shard {}/{}: {} run now, {} reused, {} older files \
         of the same points replaced; {} jobs, {:.2} s\n\
         a point is reused when {}\n\
         points in {}; merge with: wafersim merge {}\n",
        args.spec,
        outcome.points_total,
        outcome.points_in_shard,
        shard.index,
        shard.count,
        outcome.points_run,
        outcome.points_reused,
        outcome.points_replaced,
        jobs,
        host_seconds,
        outcome.reused_when,
        out.join("points").display(),
        out.display()
    ))
}

/// A warning line per fabric of the sweep outside what `validate` covers (each of its points
/// says so too, in `validated` and `unvalidated_keys`): a table check, no `validate` run.
fn unvalidated_fabrics(spec: &SweepSpec, spec_path: &str) -> Result<String> {
    let mut out = String::new();
    let mut seen = std::collections::BTreeSet::new();
    // The fabrics of every model, fabric and overrides value: no mask file need be read again.
    let fabrics_only = SweepSpec {
        masks: Vec::new(),
        sparsities: vec![0.0],
        ..spec.clone()
    };
    for point in resolve_points(&fabrics_only, spec_path)? {
        // A fabric with its overrides is a fabric of its own: each is checked.
        let fabric_overrides: Vec<_> = point
            .point
            .overrides
            .iter()
            .filter(|(key, _)| key.starts_with(crate::sweep::FABRIC_PREFIX))
            .collect();
        if seen.insert(format!("{}{fabric_overrides:?}", point.point.fabric)) {
            let fabric = crate::sweep::load_point_fabric(&point.point, &point.fabric, spec_path)?;
            let keys = crate::validate::unvalidated_keys(&fabric);
            out += &crate::validate::unvalidated_warning(&fabric.name, &keys).unwrap_or_default();
        }
    }
    Ok(out)
}

/// A sweep's seeds are its spec's: `--seed` would be ignored, so it is refused.
fn refuse_seed(common: &Common, spec: &str) -> Result<()> {
    match common.seed {
        Some(seed) => Err(Error::Input(format!(
            "--seed {seed}: a sweep takes its seeds from its spec ({spec}: `seeds = [...]`, \
             default [1]), not from --seed"
        ))),
        None => Ok(()),
    }
}

pub fn merge(args: &MergeArgs, common: &Common) -> Result<String> {
    refuse_seed(common, args.expect.as_deref().unwrap_or("the sweep's spec"))?;
    let spec = args.expect.as_deref().map(SweepSpec::load).transpose()?;
    let expect = spec.as_ref().zip(args.expect.as_deref());
    let points = read_points(&args.dir, expect)?;
    // merge writes into the sweep's folder: sweep.csv and the chart.
    check_output_folder("merge DIR", &args.dir)?;
    let csv = sweep_csv(&points)?;
    let csv_path = args.dir.join("sweep.csv");
    write_atomic(&csv_path, csv.as_bytes())?;
    let chart_path = args.dir.join("speedup-vs-sparsity.png");
    draw_sweep_speedup(&points, &chart_path)?;
    // Points that differ in their seed alone: how far one draw of the masks moves the answer.
    let spreads = crate::sweep::seed_spread(&points);
    let spread_path = args.dir.join("seed-spread.csv");
    if !spreads.is_empty() {
        let csv = crate::sweep::seed_spread_csv(&spreads)?;
        write_atomic(&spread_path, csv.as_bytes())?;
    } else if spread_path.is_file() {
        // An earlier merge's, of points that are no longer there.
        std::fs::remove_file(&spread_path).map_err(|e| {
            Error::Input(format!("{}: cannot remove it: {e}", spread_path.display()))
        })?;
    }
    let seed_spread = spreads.clone();
    if common.json {
        let mut seeds: Vec<u64> = points.iter().map(|p| p.point.seed).collect();
        seeds.sort_unstable();
        seeds.dedup();
        let value = MergeReport {
            schema_version: crate::report::SCHEMA_VERSION,
            version: crate::VERSION,
            seeds,
            points: points.len() as u64,
            sweep_csv: csv_path.display().to_string(),
            seed_spread,
        };
        return Ok(format!(
            "{}\n",
            serde_json::to_string_pretty(&value).expect("JSON")
        ));
    }
    if common.quiet {
        return Ok(String::new());
    }
    let mut t = Table::new([
        "model",
        "fabric",
        "overrides",
        "seed",
        "sparsity",
        "pretrain theory",
        "pretrain simulated",
        "total theory",
        "total simulated",
    ]);
    for p in &points {
        t.row([
            p.point.model.clone(),
            p.point.fabric.clone(),
            p.point
                .overrides
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
            p.point.seed.to_string(),
            p.point.sparsity.to_string(),
            format!("{:.2}x", p.pretrain.theoretical_speedup),
            format!("{:.2}x", p.pretrain.simulated_speedup),
            format!("{:.2}x", p.total.theoretical_speedup),
            format!("{:.2}x", p.total.simulated_speedup),
        ]);
    }
    let mut spread_text = String::new();
    if !spreads.is_empty() {
        let mut t = Table::new([
            "model",
            "fabric",
            "overrides",
            "sparsity",
            "seeds",
            "total simulated",
            "sd",
            "pretrain simulated",
            "sd",
        ]);
        for s in &spreads {
            t.row([
                s.model.clone(),
                s.fabric.clone(),
                s.overrides.clone(),
                s.sparsity.to_string(),
                s.seeds.to_string(),
                format!(
                    "{:.4}x-{:.4}x",
                    s.total_simulated_speedup_min, s.total_simulated_speedup_max
                ),
                format!("{:.4}", s.total_simulated_speedup_sd),
                format!(
                    "{:.4}x-{:.4}x",
                    s.pretrain_simulated_speedup_min, s.pretrain_simulated_speedup_max
                ),
                format!("{:.4}", s.pretrain_simulated_speedup_sd),
            ]);
        }
        spread_text = format!(
            "\nover seeds (a random mask's per-PE counts are drawn from the seed):\n{}wrote {}\n",
            t.render(),
            spread_path.display()
        );
    }
    Ok(format!(
        "{}\nwrote {} ({} points) and {}\n{spread_text}",
        t.render(),
        csv_path.display(),
        points.len(),
        chart_path.display()
    ))
}

/// The `sweep --json` document.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct SweepReport {
    /// The version of the field names and types (`report::SCHEMA_VERSION`).
    pub schema_version: u32,
    pub version: &'static str,
    pub seeds: Vec<u64>,
    /// The spec file as given.
    pub spec: String,
    pub out: String,
    /// `i/n`.
    pub shard: String,
    pub jobs: u64,
    pub outcome: crate::sweep::SweepOutcome,
    pub host_seconds: f64,
}

/// The `merge --json` document.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct MergeReport {
    /// The version of the field names and types (`report::SCHEMA_VERSION`).
    pub schema_version: u32,
    pub version: &'static str,
    pub seeds: Vec<u64>,
    pub points: u64,
    pub sweep_csv: String,
    /// Points that differ in their seed alone, two seeds or more: the spread of their speedups
    /// (also `seed-spread.csv`); empty otherwise.
    pub seed_spread: Vec<crate::sweep::SeedSpread>,
}
