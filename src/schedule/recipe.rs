//! The recipe: pre-training at each sparsity and dense, then dense fine-tuning and soft prompting,
//! each phase one simulated step per distinct step shape, multiplied out.

use serde::Serialize;

use super::dynamic::{mask_update_cost, DynamicPhase, MaskUpdateCost};
use super::step::{Breakdown, StepResult};
use super::systems::{check_systems, run_step_on_systems};
use crate::cost::stream_cycles;
use crate::error::{Error, Result};
use crate::graph::{PhaseFlops, StepConfig};
use crate::map::MapOptions;
use crate::spec::{sparsity_levels, DynamicMethod, FabricSpec, ModelSpec, Phase};

/// One phase of one run.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseResult {
    pub phase: Phase,
    pub sparsity: f64,
    pub tokens: u64,
    /// Sequences trained in the phase, over every system.
    pub sequences: u64,
    pub steps: u64,
    /// Systems trained data-parallel; each runs ⌈batch / systems⌉ sequences of a step.
    pub systems: u64,
    pub microbatch_sequences: u64,
    /// The wafer's work, as `graph::PhaseFlops` counts it.
    pub flops_dense: u128,
    pub flops_executed: u128,
    /// The optimizer's, off-wafer, once per step.
    pub flops_optimizer: u128,
    pub cycles: u64,
    /// Dense FLOPs ÷ executed FLOPs.
    pub theoretical_speedup: f64,
    /// The dense run's cycles for this phase ÷ this run's.
    pub simulated_speedup: f64,
    pub pe_utilization_mean: f64,
    pub breakdown: Breakdown,
    /// Dynamic sparse training's account of the phase beside static masks (`recipe.dynamic`,
    /// sparse pre-training only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dynamic: Option<DynamicPhase>,
}

/// A run of the whole recipe at one pre-training sparsity (0 for the dense baseline).
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub sparsity: f64,
    pub phases: Vec<PhaseResult>,
    pub total: PhaseTotal,
    /// The full pre-training step, kept for pictures and per-op tables.
    #[serde(skip)]
    pub pretrain_step: StepResult,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhaseTotal {
    pub tokens: u64,
    pub sequences: u64,
    pub systems: u64,
    pub steps: u64,
    pub flops_dense: u128,
    pub flops_executed: u128,
    pub flops_optimizer: u128,
    pub cycles: u64,
    pub theoretical_speedup: f64,
    pub simulated_speedup: f64,
    pub pe_utilization_mean: f64,
    pub breakdown: Breakdown,
}

/// Runs the recipe at the dense baseline and at each sparsity (dense first; 0s are not repeated).
pub fn run_recipe(
    model: &ModelSpec,
    fabric: &FabricSpec,
    sparsities: &[f64],
) -> Result<Vec<RunResult>> {
    run_recipe_on_systems(model, fabric, sparsities, 1)
}

/// [`run_recipe`] on `systems` systems trained data-parallel (`run_step_on_systems`): every
/// phase's steps keep their batch, each system running its share.
pub fn run_recipe_on_systems(
    model: &ModelSpec,
    fabric: &FabricSpec,
    sparsities: &[f64],
    systems: u64,
) -> Result<Vec<RunResult>> {
    check_systems(fabric, systems)?;
    let levels = sparsity_levels(sparsities);
    let phase = |phase, sparsity| run_phase(model, fabric, phase, sparsity, systems);
    // Fine-tuning and soft prompting are dense in every run: simulate them once.
    let finetune = phase(Phase::Finetune, 0.0)?;
    let softprompt = phase(Phase::Softprompt, 0.0)?;
    let mut runs: Vec<RunResult> = Vec::with_capacity(levels.len());
    for sparsity in levels {
        let (pretrain, step) = phase(Phase::Pretrain, sparsity)?;
        let phases = vec![pretrain, finetune.0.clone(), softprompt.0.clone()];
        check_run_cycles(model, fabric, &phases)?;
        runs.push(RunResult {
            sparsity,
            total: total_of(&phases),
            phases,
            pretrain_step: step,
        });
    }
    // Speedups against the dense run, phase by phase and in total.
    let dense_cycles: Vec<u64> = runs[0].phases.iter().map(|p| p.cycles).collect();
    let dense_total = runs[0].total.cycles;
    for run in &mut runs {
        for (phase, dense) in run.phases.iter_mut().zip(&dense_cycles) {
            phase.simulated_speedup = *dense as f64 / phase.cycles.max(1) as f64;
        }
        run.total.simulated_speedup = dense_total as f64 / run.total.cycles.max(1) as f64;
        let total = run.total.clone();
        let pretrain = &mut run.phases[0];
        if let Some(d) = &mut pretrain.dynamic {
            d.static_simulated_speedup = dense_cycles[0] as f64 / d.static_cycles.max(1) as f64;
            d.static_total_cycles = total.cycles - pretrain.cycles + d.static_cycles;
            let static_executed =
                total.flops_executed - pretrain.flops_executed + d.static_flops_executed;
            d.static_total_theoretical_speedup =
                total.flops_dense as f64 / static_executed.max(1) as f64;
            d.static_total_simulated_speedup =
                dense_total as f64 / d.static_total_cycles.max(1) as f64;
        }
    }
    Ok(runs)
}

/// One point of a run's speedup curve: pre-training at `sparsity` against the dense run, alone
/// and with the dense fine-tuning and soft prompting every run shares.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, schemars::JsonSchema)]
pub struct CurvePoint {
    pub sparsity: f64,
    pub pretrain_theoretical_speedup: f64,
    pub pretrain_simulated_speedup: f64,
    pub total_theoretical_speedup: f64,
    pub total_simulated_speedup: f64,
}

/// Sparsities a speedup curve samples besides the runs' own: every 0.1, and 0.95 where the
/// curve turns up most, so that the curve between the recipe's few levels is simulated, not
/// drawn as a straight line. (Every 0.05 would double `train`'s time for little a reader sees.)
pub const CURVE_SPARSITIES: [f64; 10] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95];

/// The speedup curve of `runs` (dense first, as [`run_recipe_on_systems`] returns them): the
/// dense run, each run, and pre-training simulated at every [`CURVE_SPARSITIES`] level no run
/// has (fine-tuning and soft prompting are the dense run's: every run shares them). Ordered by
/// sparsity; the samples run in parallel, each independent of the others.
pub fn speedup_curve(
    model: &ModelSpec,
    fabric: &FabricSpec,
    runs: &[RunResult],
    systems: u64,
) -> Result<Vec<CurvePoint>> {
    use rayon::prelude::*;
    let Some(dense) = runs.first().filter(|r| r.sparsity == 0.0) else {
        return Err(Error::Simulation(format!(
            "{}: a speedup curve needs the dense run first",
            model.name
        )));
    };
    let point = |pretrain: &PhaseResult| {
        let shared = &dense.phases[1..];
        let total = |f: fn(&PhaseResult) -> u128| f(pretrain) + shared.iter().map(f).sum::<u128>();
        let cycles = pretrain.cycles + shared.iter().map(|p| p.cycles).sum::<u64>();
        CurvePoint {
            sparsity: pretrain.sparsity,
            pretrain_theoretical_speedup: pretrain.theoretical_speedup,
            pretrain_simulated_speedup: dense.phases[0].cycles as f64
                / pretrain.cycles.max(1) as f64,
            total_theoretical_speedup: total(|p| p.flops_dense) as f64
                / total(|p| p.flops_executed).max(1) as f64,
            total_simulated_speedup: dense.total.cycles as f64 / cycles.max(1) as f64,
        }
    };
    // An N:M mask has one sparsity, its own: the curve is then its runs alone.
    let fixed = model.recipe.pattern.implied_sparsity().is_some();
    let samples: Vec<f64> = CURVE_SPARSITIES
        .into_iter()
        .filter(|s| !fixed && runs.iter().all(|r| r.sparsity != *s))
        .collect();
    // Masks read from a file have one sparsity: the curve's other points are random masks, their
    // counts drawn from the run's seed as the runs' are.
    let drawn;
    let curve_model = match model.recipe.masks {
        Some(_) => {
            drawn = ModelSpec {
                recipe: crate::spec::Recipe {
                    masks: None,
                    ..model.recipe.clone()
                },
                ..model.clone()
            };
            &drawn
        }
        None => model,
    };
    let sampled: Vec<PhaseResult> = samples
        .par_iter()
        .map(|&s| run_phase(curve_model, fabric, Phase::Pretrain, s, systems).map(|(p, _)| p))
        .collect::<Result<_>>()?;
    let mut curve: Vec<CurvePoint> = runs
        .iter()
        .map(|r| &r.phases[0])
        .chain(&sampled)
        .map(point)
        .collect();
    curve.sort_by(|a, b| a.sparsity.total_cmp(&b.sparsity));
    Ok(curve)
}

/// One phase: full steps × the step's cycles, the partial last step if any, and the program load
/// at the phase's start; with dynamic sparse training (`recipe.dynamic`), its update steps and
/// the weight servers' mask updates, beside the same phase with static masks
/// (`PhaseResult::dynamic`). Returns the phase and its full step.
fn run_phase(
    model: &ModelSpec,
    fabric: &FabricSpec,
    phase: Phase,
    sparsity: f64,
    systems: u64,
) -> Result<(PhaseResult, StepResult)> {
    let flops = PhaseFlops::of(model, phase, sparsity);
    let config = StepConfig::for_phase(model, phase, sparsity);
    let step_on =
        |config| run_step_on_systems(model, fabric, config, MapOptions::default(), systems);
    let step = step_on(config)?;
    let sequences = model.phase_sequences(phase);
    let full_steps = sequences / config.batch_sequences;
    let remainder = sequences % config.batch_sequences;
    let last = match remainder {
        0 => None,
        _ => Some(step_on(StepConfig {
            batch_sequences: remainder,
            ..config
        })?),
    };
    // Mask updates come after full steps only (`DynamicSpec::update_steps`); RigL's update step
    // computes the sparse weights' gradients dense, SET's is the regular step.
    let dynamic = model.mask_updates(phase, sparsity);
    let updates = dynamic.map_or(0, |(_, n)| n);
    let update_step = match dynamic {
        Some((d, n)) if n > 0 && d.method == DynamicMethod::Rigl => {
            Some(step_on(config.with_dense_weight_gradients())?)
        }
        _ => None,
    };
    let update = update_step.as_ref().unwrap_or(&step);
    let host = match dynamic {
        Some((d, _)) => mask_update_cost(model, fabric, config, d, flops.steps)?,
        None => MaskUpdateCost::default(),
    };
    // Every phase starts by loading its program (code and routes) into every PE through the
    // wafer's I/O: a fixed cost a FLOP count never sees.
    let load = program_load_cycles(fabric);
    let last_cycles = last.as_ref().map_or(0, |l| l.cycles);
    let regular_steps = full_steps - updates;
    check_phase_cycles(
        model,
        fabric,
        phase,
        (regular_steps, step.cycles),
        (updates, update.cycles, host.cycles),
        last_cycles,
        load,
    )?;
    let mut fixed = Breakdown {
        overhead: load,
        ..Breakdown::default()
    };
    let mut busy = 0.0;
    if let Some(last) = &last {
        fixed = fixed + last.breakdown;
        busy += last.pe_utilization_mean * last.cycles as f64;
    }
    let mut breakdown =
        step.breakdown.times(regular_steps) + update.breakdown.times(updates) + fixed;
    breakdown.mask_update = host.cycles;
    let cycles = breakdown.total();
    busy += step.pe_utilization_mean * (regular_steps * step.cycles) as f64
        + update.pe_utilization_mean * (updates * update.cycles) as f64;
    let dynamic = dynamic.map(|(d, _)| {
        // The same phase with static masks: every full step a regular one, no server work.
        let static_cycles = (step.breakdown.times(full_steps) + fixed).total();
        let extra_flops = updates as u128 * (update.flops_executed - step.flops_executed);
        let static_flops_executed = flops.flops_executed - extra_flops;
        DynamicPhase {
            method: d.method,
            update_every: d.update_every,
            drop_fraction: d.drop_fraction,
            end_fraction: d.end_fraction,
            mask_updates: updates,
            weights_moved: host.weights_moved,
            step_cycles: step.cycles,
            update_step_cycles: update.cycles,
            mask_update_elements: host.elements,
            mask_update_cycles: host.cycles,
            static_cycles,
            static_flops_executed,
            static_theoretical_speedup: flops.flops_dense as f64
                / static_flops_executed.max(1) as f64,
            // Against the dense run, once `run_recipe` has it.
            static_simulated_speedup: 1.0,
            static_total_cycles: 0,
            static_total_theoretical_speedup: 1.0,
            static_total_simulated_speedup: 1.0,
        }
    });
    let result = PhaseResult {
        phase,
        sparsity,
        tokens: flops.tokens,
        sequences,
        steps: flops.steps,
        systems,
        microbatch_sequences: step.plan.microbatch_sequences,
        flops_dense: flops.flops_dense,
        flops_executed: flops.flops_executed,
        flops_optimizer: flops.flops_optimizer,
        cycles,
        theoretical_speedup: flops.theoretical_speedup(),
        simulated_speedup: 1.0,
        pe_utilization_mean: busy / cycles.max(1) as f64,
        breakdown,
        dynamic,
    };
    Ok((result, step))
}

/// Most cycles a phase, and a run's phases together, may count: what u64 holds.
const MAX_RUN_CYCLES: u128 = u64::MAX as u128;

/// Refuses a phase whose cycles would pass [`MAX_RUN_CYCLES`], before they are multiplied out:
/// `regular` steps of some cycles, `updates` mask-update steps of some cycles and the servers'
/// cycles for them, the partial last step and the program load.
fn check_phase_cycles(
    model: &ModelSpec,
    fabric: &FabricSpec,
    phase: Phase,
    (regular, step_cycles): (u64, u64),
    (updates, update_cycles, server_cycles): (u64, u64, u64),
    last_cycles: u64,
    load_cycles: u64,
) -> Result<()> {
    let cycles = regular as u128 * step_cycles as u128
        + updates as u128 * update_cycles as u128
        + server_cycles as u128
        + last_cycles as u128
        + load_cycles as u128;
    if cycles <= MAX_RUN_CYCLES {
        return Ok(());
    }
    let dynamic = match updates {
        0 => String::new(),
        _ => format!(
            ", {updates} mask-update steps of {update_cycles} and {server_cycles} cycles of the \
             weight servers' mask updates (cluster.memoryx_mask_update_elements_per_second = {})",
            fabric.cluster.memoryx_mask_update_elements_per_second
        ),
    };
    Err(Error::Input(format!(
        "{} on {}: the {} phase would take {cycles} cycles ({regular} steps of {step_cycles}{dynamic} \
         and a program load of {load_cycles}), more than the 2^64 a run may count; its \
         recipe keys ask for that many steps, or its fabric's io.wafer_io_bits_per_second = {} \
         streams that slowly",
        model.name,
        fabric.name,
        phase.name(),
        fabric.io.wafer_io_bits_per_second
    )))
}

/// Refuses a run whose phases, each within u64, add up beyond it.
fn check_run_cycles(model: &ModelSpec, fabric: &FabricSpec, phases: &[PhaseResult]) -> Result<()> {
    let cycles: u128 = phases.iter().map(|p| p.cycles as u128).sum();
    if cycles <= MAX_RUN_CYCLES {
        return Ok(());
    }
    Err(Error::Input(format!(
        "{} on {}: the recipe's phases would take {cycles} cycles together, more than the 2^64 a \
         run may count; its recipe keys (tokens, examples, epochs) ask for that many steps",
        model.name, fabric.name
    )))
}

/// Cycles to stream each PE's code reserve into the region through the wafer's I/O.
pub fn program_load_cycles(fabric: &FabricSpec) -> u64 {
    stream_cycles(fabric, fabric.pe.code_reserve_bytes * fabric.region_pes())
}

fn total_of(phases: &[PhaseResult]) -> PhaseTotal {
    let breakdown = phases
        .iter()
        .fold(Breakdown::default(), |acc, p| acc + p.breakdown);
    let cycles = breakdown.total();
    let flops_dense = phases.iter().map(|p| p.flops_dense).sum::<u128>();
    let flops_executed = phases.iter().map(|p| p.flops_executed).sum::<u128>();
    let busy: f64 = phases
        .iter()
        .map(|p| p.pe_utilization_mean * p.cycles as f64)
        .sum();
    PhaseTotal {
        tokens: phases.iter().map(|p| p.tokens).sum(),
        sequences: phases.iter().map(|p| p.sequences).sum(),
        systems: phases.first().map_or(1, |p| p.systems),
        steps: phases.iter().map(|p| p.steps).sum(),
        flops_dense,
        flops_executed,
        flops_optimizer: phases.iter().map(|p| p.flops_optimizer).sum(),
        cycles,
        theoretical_speedup: flops_dense as f64 / flops_executed as f64,
        simulated_speedup: 1.0,
        pe_utilization_mean: busy / cycles.max(1) as f64,
        breakdown,
    }
}

/// Where a sparse run's time goes beyond what its FLOPs promise, by category, as a share of the
/// run's cycles. The promise is the dense run's time shrunk by θ, the theoretical speedup:
/// category c contributes `run_c − dense_c / θ`, so the shares add up to `1 − (dense / θ) / run`.
/// Compute (sparse and dense together) keeps its promise up to the SIMD rounding, since ideal
/// compute cycles are proportional to FLOPs; the rest is what the FLOP count cannot see.
/// A negative share is a category that did better than promised. Largest first.
pub fn gap_shares(
    dense: &Breakdown,
    run: &Breakdown,
    theoretical: f64,
) -> Vec<(&'static str, f64)> {
    let total = run.total().max(1) as f64;
    let mut shares: Vec<(&'static str, f64)> = gap_categories(run)
        .iter()
        .zip(gap_categories(dense))
        .map(|((name, r), (_, d))| (*name, (*r as f64 - d as f64 / theoretical) / total))
        .collect();
    // Ties in the order of their labels, as the tables have always listed them.
    shares.sort_by(|a, b| {
        b.1.total_cmp(&a.1)
            .then(category_label(a.0).cmp(category_label(b.0)))
    });
    shares
}

/// The categories the gap is told in: compute (sparse and dense together), then the rest; by
/// their machine keys (`category_label` names them for tables).
pub fn gap_categories(b: &Breakdown) -> [(&'static str, u64); 8] {
    [
        ("compute", b.sparse_compute + b.dense_compute),
        ("reduction", b.reduction),
        ("io", b.io),
        ("imbalance", b.imbalance),
        ("overhead", b.overhead),
        ("recompute", b.recompute),
        ("data_parallel", b.data_parallel),
        ("mask_update", b.mask_update),
    ]
}

/// How tables name a gap category (`key` as `gap_shares` and `faster_than_flops` give it).
pub fn category_label(key: &str) -> &'static str {
    match key {
        "compute" => "compute",
        "reduction" => "reduction",
        "io" => "I/O",
        "imbalance" => "imbalance",
        "overhead" => "overhead",
        "recompute" => "recompute",
        "mask_update" => "mask update",
        _ => "data parallel",
    }
}

/// A category of a sparse run that shrank against the dense run by more than the FLOPs did.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct FasterThanFlops {
    /// A machine key: `compute`, `reduction`, `io`, `imbalance`, `overhead`, `recompute`,
    /// `data_parallel`, `mask_update`.
    pub category: &'static str,
    /// How tables name it (`I/O`, `data parallel`).
    pub label: &'static str,
    pub dense_cycles: u64,
    pub cycles: u64,
    /// The dense run's cycles of the category ÷ this run's (at least 1 cycle).
    pub category_speedup: f64,
    /// Dense FLOPs ÷ executed FLOPs: what every category would shrink by if time followed FLOPs.
    pub theoretical_speedup: f64,
}

/// The categories whose cycles shrank by more than `theoretical` (the FLOP speedup), the one
/// that beat the promise by the most cycles first. A run can beat its FLOPs only through these:
/// its simulated speedup is above `theoretical` only if some category is here.
pub fn faster_than_flops(
    dense: &Breakdown,
    run: &Breakdown,
    theoretical: f64,
) -> Vec<FasterThanFlops> {
    let mut out: Vec<(f64, FasterThanFlops)> = gap_categories(run)
        .iter()
        .zip(gap_categories(dense))
        .filter(|((_, r), (_, d))| *d as f64 > theoretical * *r as f64)
        .map(|(&(category, r), (_, d))| {
            let beyond = d as f64 / theoretical - r as f64;
            let shrink = FasterThanFlops {
                category,
                label: category_label(category),
                dense_cycles: d,
                cycles: r,
                category_speedup: d as f64 / r.max(1) as f64,
                theoretical_speedup: theoretical,
            };
            (beyond, shrink)
        })
        .collect();
    out.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then(category_label(a.1.category).cmp(category_label(b.1.category)))
    });
    out.into_iter().map(|(_, shrink)| shrink).collect()
}
