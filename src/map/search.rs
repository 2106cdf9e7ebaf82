//! The mapper's search: microbatch × recomputation × tiles, fastest plan that fits.

use std::collections::BTreeMap;

use super::memory::saved_bytes_per_token;
use super::ops::{op_plan, OpPlan, Refusal};
use super::plan::{MicrobatchGroup, Plan, SramBudget};
use crate::cost::timeline;
use crate::error::{Error, Result};
use crate::graph::{OpKind, Pass, StepConfig, StepGraph};
use crate::spec::{FabricSpec, ModelSpec, Phase};

/// Choices a user may pin instead of letting the mapper search.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MapOptions {
    pub microbatch_sequences: Option<u64>,
    pub recompute_attention: Option<bool>,
}

/// Maps one step of `config` onto `fabric`; the fastest plan that fits, or an error naming what
/// overflows on the closest candidate.
pub fn map_step(
    model: &ModelSpec,
    fabric: &FabricSpec,
    config: StepConfig,
    options: MapOptions,
) -> Result<Plan> {
    let batch = config.batch_sequences;
    let candidates: Vec<u64> = match options.microbatch_sequences {
        Some(mb) if mb == 0 || mb > batch => {
            return Err(Error::Input(format!(
            "--microbatch {mb} is not allowed: must be 1 to the step's batch of {batch} sequences"
        )))
        }
        Some(mb) => vec![mb],
        None => microbatch_candidates(batch),
    };
    let recompute: Vec<bool> = match options.recompute_attention {
        Some(r) => vec![r],
        None => vec![false, true],
    };
    let mut best: Option<(u128, Plan)> = None;
    let mut closest_failure: Option<Error> = None;
    // Microbatch graphs by sequences: both recomputation choices map the same graphs.
    let mut graphs: BTreeMap<u64, StepGraph> = BTreeMap::new();
    for &r in &recompute {
        for &mb in &candidates {
            match plan_with(model, fabric, config, mb, r, &mut graphs) {
                Ok(plan) => {
                    let cycles = plan_cycles(&plan);
                    if best.as_ref().is_none_or(|(c, _)| cycles < *c) {
                        best = Some((cycles, plan));
                    }
                }
                Err(e) => {
                    if mb == 1 || options.microbatch_sequences.is_some() {
                        closest_failure.get_or_insert(e);
                    }
                }
            }
        }
    }
    match (best, closest_failure) {
        (Some((cycles, plan)), _) => {
            check_step_cycles(model, fabric, cycles)?;
            plan.verify()?;
            Ok(plan)
        }
        (None, Some(e)) => Err(e),
        (None, None) => Err(Error::Simulation(format!(
            "{}: no plan fits the fabric",
            model.name
        ))),
    }
}

/// A phase's dense step as the mapper sees it.
#[derive(Debug, Clone)]
pub struct PhasePlan {
    pub phase: Phase,
    pub config: StepConfig,
    /// Ops in the step graph, the optimizer's updates included.
    pub graph_ops: usize,
    /// The plan, or why the mapper refused the step (SRAM, colors, index width: the message
    /// `step` prints), so a report never guesses the reason.
    pub plan: Result<Plan, String>,
}

/// Every phase's dense step of the recipe, mapped onto `fabric` with the default options.
pub fn plan_phases(model: &ModelSpec, fabric: &FabricSpec) -> Vec<PhasePlan> {
    Phase::ALL
        .iter()
        .map(|&phase| {
            let config = StepConfig::for_phase(model, phase, 0.0);
            PhasePlan {
                phase,
                config,
                graph_ops: StepGraph::build(model, config).graph.node_count(),
                plan: map_step(model, fabric, config, MapOptions::default())
                    .map_err(|e| e.to_string()),
            }
        })
        .collect()
}

/// Distinct microbatch sizes `ceil(batch / m)` for m = 1..=batch, largest first: each gives a
/// different number of microbatches per step.
fn microbatch_candidates(batch: u64) -> Vec<u64> {
    let mut sizes: Vec<u64> = (1..=batch).map(|m| batch.div_ceil(m)).collect();
    sizes.dedup();
    sizes
}

/// Most cycles one step may take: what u64 holds. Every sum over a step's ops and microbatches
/// is at most the step's cycles, so it stays inside too (a phase's steps multiplied out are
/// `schedule::run_phase`'s check).
pub const MAX_STEP_CYCLES: u128 = u64::MAX as u128;

/// Total cycles of a plan: each microbatch group's timeline, repeated (u128: a candidate may
/// pass u64; the mapper refuses it).
fn plan_cycles(plan: &Plan) -> u128 {
    plan.groups
        .iter()
        .map(|g| u128::from(g.repeat) * u128::from(g.cycles()))
        .sum()
}

/// Refuses a step longer than [`MAX_STEP_CYCLES`], naming the rate that makes it so.
fn check_step_cycles(model: &ModelSpec, fabric: &FabricSpec, cycles: u128) -> Result<()> {
    if cycles <= MAX_STEP_CYCLES {
        return Ok(());
    }
    Err(Error::Input(format!(
        "{} on {}: one step would take more than 2^64 cycles (the most a step may count); its \
         weights stream through io.wafer_io_bits_per_second = {} at clock.clock_hz = {}, {:.3e} B \
         per cycle: raise the I/O rate, or use a smaller model",
        model.name,
        fabric.name,
        fabric.io.wafer_io_bits_per_second,
        fabric.clock.clock_hz,
        fabric.io_bytes_per_cycle()
    )))
}

fn plan_with(
    model: &ModelSpec,
    fabric: &FabricSpec,
    config: StepConfig,
    mb: u64,
    recompute: bool,
    graphs: &mut BTreeMap<u64, StepGraph>,
) -> Result<Plan> {
    let rows = fabric.geometry.region_height_pes;
    let cols = fabric.geometry.region_width_pes;
    let capacity = fabric.pe.sram_bytes;
    let code = fabric.pe.code_reserve_bytes;
    // Tokens spread over the PE rows, features over the columns: row 0 gets the rounding up.
    let tokens = mb * config.seq_len;
    let per_token = saved_bytes_per_token(&model.architecture, config.seq_len, recompute);
    let saved = tokens.div_ceil(rows) * per_token.div_ceil(cols);
    let overflow = |what: String, need: u64| {
        Error::Input(format!(
            "{} on {}, {} step, microbatch {mb}: PE (0, 0) needs {need} B for {what}, {} B over \
             its {capacity} B",
            model.name,
            fabric.name,
            config.phase.name(),
            need - capacity
        ))
    };
    if code + saved >= capacity {
        return Err(overflow(
            format!(
                "{code} B code + {saved} B of activations saved for backward of {} layers",
                model.architecture.layers
            ),
            code + saved,
        ));
    }
    let working = capacity - code - saved;
    let full = mb.min(config.batch_sequences);
    let mut groups = vec![(full, config.batch_sequences / full)];
    if !config.batch_sequences.is_multiple_of(full) {
        groups.push((config.batch_sequences % full, 1));
    }
    let mut planned = Vec::new();
    let mut optimizer = Vec::new();
    let mut working_max = (0u64, String::new());
    for (sequences, repeat) in groups {
        let step = graphs.entry(sequences).or_insert_with(|| {
            StepGraph::build(
                model,
                StepConfig {
                    batch_sequences: sequences,
                    ..config
                },
            )
        });
        let ops = place_ops(model, fabric, step, working, recompute).map_err(|(name, why)| match why {
            Refusal::Sram(tile) => overflow(
                format!("{code} B code + {saved} B saved activations + {tile} B for the smallest tile of op {name}"),
                code + saved + tile,
            ),
            Refusal::Colors(colors) => Error::Input(format!(
                "{}: op {name} routes at least {colors} colors, the fabric leaves kernels {} \
                 (router.colors - router.colors_reserved)",
                model.name,
                fabric.usable_colors()
            )),
            Refusal::Index(rows) => Error::Input(format!(
                "{}: op {name}'s sparse weight leaves a PE at least {rows} rows of its K slice, more \
                 than the {} a {}-bit index addresses (router.sparse_index_bits)",
                model.name,
                fabric.sparse_index_rows(),
                fabric.router.sparse_index_bits
            )),
        })?;
        // Every microbatch's graph has the step's updates; the optimizer runs them once.
        let (ops, updates): (Vec<OpPlan>, Vec<OpPlan>) =
            ops.into_iter().partition(|op| op.pass.on_wafer());
        if optimizer.is_empty() {
            optimizer = updates;
        }
        let ops = super::wire::choose_formats(ops);
        for op in &ops {
            if op.cost.sram_bytes_per_pe > working_max.0 {
                working_max = (op.cost.sram_bytes_per_pe, op.name.clone());
            }
        }
        let spans = timeline(&ops.iter().map(OpPlan::timeline_op).collect::<Vec<_>>());
        planned.push(MicrobatchGroup {
            sequences,
            repeat,
            ops,
            spans,
        });
    }
    Ok(Plan {
        model: model.name.clone(),
        fabric: fabric.name.clone(),
        config,
        region_rows: rows,
        region_cols: cols,
        usable_colors: fabric.usable_colors(),
        recompute_attention: recompute,
        microbatch_sequences: full,
        groups: planned,
        optimizer,
        sram: SramBudget {
            capacity_bytes: capacity,
            code_bytes: code,
            saved_activation_bytes: saved,
            working_bytes_max: working_max.0,
            working_op: working_max.1,
            sram_bytes_max: code + saved + working_max.0,
        },
    })
}

/// Places every op of a microbatch's graph; the name of the first op that fits nowhere on error.
/// Identical ops of different layers share one search.
fn place_ops(
    model: &ModelSpec,
    fabric: &FabricSpec,
    step: &StepGraph,
    working: u64,
    recompute: bool,
) -> Result<Vec<OpPlan>, (String, Refusal)> {
    let mut cache: Vec<(String, OpPlan)> = Vec::new();
    let mut ops = Vec::with_capacity(step.graph.node_count());
    for op in step.ops() {
        // Layers are identical: key on the op's name without its layer.
        let key = op
            .name
            .split_once('.')
            .filter(|_| op.layer.is_some())
            .map_or(op.name.as_str(), |(_, rest)| rest);
        if let Some((_, cached)) = cache.iter().find(|(k, _)| k == key) {
            let mut placed = cached.clone();
            placed.name = op.name.clone();
            placed.layer = op.layer;
            ops.push(placed);
            continue;
        }
        let extra = if recompute && op.kind == OpKind::Softmax && op.pass == Pass::Dgrad {
            recompute_cost(model, fabric, step, op.layer, working)
        } else {
            None
        };
        let placed = op_plan(fabric, model, op, working, extra.as_ref())
            .map_err(|why| (op.name.clone(), why))?;
        cache.push((key.to_string(), placed.clone()));
        ops.push(placed);
    }
    Ok(ops)
}

/// The forward scores and softmax that backward recomputes when attention is not kept.
fn recompute_cost(
    model: &ModelSpec,
    fabric: &FabricSpec,
    step: &StepGraph,
    layer: Option<u64>,
    working: u64,
) -> Option<OpPlan> {
    let layer = layer?;
    let mut total: Option<OpPlan> = None;
    for name in ["attn_scores.fwd", "softmax.fwd"] {
        let op = step.op(&format!("layer{layer}.{name}"))?;
        let placed = op_plan(fabric, model, op, working, None).ok()?;
        total = Some(match total {
            None => placed,
            Some(mut t) => {
                t.cost.cycles += placed.cost.cycles;
                t.cost.busy_cycles_mean += placed.cost.busy_cycles_mean;
                t.cost.busy_cycles_max += placed.cost.busy_cycles_max;
                t
            }
        });
    }
    total
}
