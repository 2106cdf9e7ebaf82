//! The mapper's search: activation strategy × microbatch × tiles, fastest plan that fits.
//!
//! Every strategy is timed at every size of [`microbatch_candidates`] (1 to 8 microbatches, then
//! about a quarter more each time): a larger microbatch streams the weights fewer times, a
//! smaller one may split the batch more evenly, need fewer token chunks or leave the ops more
//! SRAM. The list depends on the batch alone, so a fabric that fits more searches a superset of
//! the plans. Strategies in [`Activations::ALL`] order, sizes largest first; ties keep the first.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use rayon::prelude::*;

use serde::Serialize;

use super::memory::{checkpoint_bytes_per_token, saved_bytes_per_token, Activations};
use super::ops::{
    fewest_chunks, op_plan_chunked, op_plan_fitting, op_plan_vocab_chunked, OpPlan, Refusal,
};
use super::plan::{HeadChunking, MicrobatchGroup, Plan, SramBudget};
use crate::cost::{stream_cycles, timeline};
use crate::error::{Error, Result};
use crate::graph::{Op, OpKind, Pass, StepConfig, StepGraph};
use crate::spec::{FabricSpec, ModelSpec, Phase};

/// Choices a user may pin instead of letting the mapper search.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MapOptions {
    pub microbatch_sequences: Option<u64>,
    pub activations: Option<Activations>,
}

/// Alternatives a plan lists beside its choice.
pub const ALTERNATIVES: usize = 4;

/// A plan the search timed and did not choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Alternative {
    pub activations: Activations,
    pub microbatch_sequences: u64,
    pub microbatches: u64,
    pub cycles: u64,
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
    let strategies = options
        .activations
        .map_or(Activations::ALL.to_vec(), |a| vec![a]);
    // Every (strategy, size) pair is mapped in parallel; each result keeps its place in the
    // order strategy by strategy, size by size, and ties and refusals are settled by that
    // place, so the choice, its alternatives and any refusal are the same whatever the thread
    // count. The same candidates whatever fits, not a window below the largest size that fits:
    // a fabric that fits more then searches a superset of the plans and is never slower (a
    // window moved with the fit, past the fastest size, on a step that is flat in the
    // microbatch). Graphs by microbatch sequences: every strategy maps the same.
    let graphs = GraphCache::default();
    // Masks read from a file or drawn from a seed: candidates are searched with each layer's
    // non-zeros but the expected imbalance; the chosen one is planned again below, priced by
    // the masks' counts.
    let priced = model.recipe.masks.as_ref().filter(|m| m.priced());
    let counted = priced.is_some() || model.recipe.mask_seed.is_some();
    let unpriced_model;
    let search_model = match counted {
        true => {
            let mut m = model.clone();
            m.recipe.masks = priced.map(|masks| std::sync::Arc::new(masks.unpriced()));
            m.recipe.mask_seed = None;
            unpriced_model = m;
            &unpriced_model
        }
        false => model,
    };
    let pairs: Vec<(Activations, u64)> = strategies
        .iter()
        .flat_map(|&a| candidates.iter().map(move |&mb| (a, mb)))
        .collect();
    let searched = pairs
        .par_iter()
        .enumerate()
        .map(|(place, &(activations, mb))| {
            let mut searched = Searched::default();
            match plan_with(search_model, fabric, config, mb, activations, &graphs) {
                Ok(plan) => searched.offer(place, plan),
                // The closest candidate: the smallest (or forced) microbatch.
                Err(e) if mb == 1 || options.microbatch_sequences.is_some() => {
                    searched.closest_failure = Some((place, e))
                }
                Err(_) => {}
            }
            searched
        })
        .reduce(Searched::default, Searched::merge);
    let mut timed = searched.timed;
    timed.sort_unstable_by_key(|&(place, _, _)| place);
    let timed: Vec<(u128, Alternative)> = timed.into_iter().map(|(_, c, a)| (c, a)).collect();
    let best = searched.best.map(|(cycles, _, plan)| (cycles, plan));
    // The last strategy's closest candidate.
    let closest_failure = searched.closest_failure.map(|(_, e)| e);
    match (best, closest_failure) {
        (Some((mut cycles, mut plan)), _) => {
            if counted {
                let (mb, activations) = (plan.microbatch_sequences, plan.activations);
                plan = plan_with(model, fabric, config, mb, activations, &graphs)?;
                cycles = plan_cycles(&plan);
            }
            check_step_cycles(model, fabric, cycles)?;
            plan.alternatives = alternatives(&plan, timed);
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

/// What the search keeps of the plans it tried, each by its place in the search's order: every
/// plan's time, but only the fastest plan itself (a plan holds every op of the step; keeping
/// them all cost more in fresh pages than the search).
#[derive(Default)]
struct Searched {
    /// The fastest plan, the first in order among equals.
    best: Option<(u128, usize, Plan)>,
    timed: Vec<(usize, u128, Alternative)>,
    /// The refusal latest in order.
    closest_failure: Option<(usize, Error)>,
}

impl Searched {
    /// A plan that fits, at `place` in the search's order: timed, and kept if fastest.
    fn offer(&mut self, place: usize, plan: Plan) {
        let cycles = plan_cycles(&plan);
        self.timed.push((place, cycles, alternative(&plan, cycles)));
        self.keep_faster(Some((cycles, place, plan)));
    }

    fn keep_faster(&mut self, other: Option<(u128, usize, Plan)>) {
        let Some((cycles, place, plan)) = other else {
            return;
        };
        if self
            .best
            .as_ref()
            .is_none_or(|&(c, p, _)| (cycles, place) < (c, p))
        {
            self.best = Some((cycles, place, plan));
        }
    }

    /// Two parts of the search as one: the fastest of both, every time, the later refusal.
    fn merge(mut self, other: Searched) -> Searched {
        self.keep_faster(other.best);
        self.timed.extend(other.timed);
        self.closest_failure = match (self.closest_failure, other.closest_failure) {
            (Some(a), Some(b)) => Some(if a.0 > b.0 { a } else { b }),
            (a, b) => a.or(b),
        };
        self
    }
}

fn alternative(plan: &Plan, cycles: u128) -> Alternative {
    Alternative {
        activations: plan.activations,
        microbatch_sequences: plan.microbatch_sequences,
        microbatches: plan.microbatches(),
        cycles: u64::try_from(cycles).unwrap_or(u64::MAX),
    }
}

/// The best [`ALTERNATIVES`] plans timed beside `chosen`: each other strategy's fastest first,
/// then the fastest of the rest; fastest first within each, ties in the order they were timed.
fn alternatives(chosen: &Plan, mut timed: Vec<(u128, Alternative)>) -> Vec<Alternative> {
    timed.sort_by_key(|(cycles, _)| *cycles);
    let is_chosen = |a: &Alternative| {
        a.activations == chosen.activations && a.microbatch_sequences == chosen.microbatch_sequences
    };
    let mut seen = vec![chosen.activations];
    let (mut firsts, mut rest) = (Vec::new(), Vec::new());
    for (_, a) in timed.into_iter().filter(|(_, a)| !is_chosen(a)) {
        if seen.contains(&a.activations) {
            rest.push(a);
        } else {
            seen.push(a.activations);
            firsts.push(a);
        }
    }
    firsts.into_iter().chain(rest).take(ALTERNATIVES).collect()
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

/// Microbatches per step the search tries one by one; past them, each candidate has about a
/// quarter more microbatches than the last.
const MICROBATCHES_EACH: u64 = 8;

/// Distinct microbatch sizes `ceil(batch / m)`, largest first, for m = 1 to
/// [`MICROBATCHES_EACH`] microbatches, then m growing by a quarter (rounded up) to `batch` (one
/// sequence each). The list depends on the batch alone, never on the fabric: a fabric that fits
/// more searches a superset of plans and is never slower. The step is flat within a few per
/// cent over tens of sequences (docs/calibration.md), so the gaps between the larger counts cost
/// little; `--microbatch` runs any size.
fn microbatch_candidates(batch: u64) -> Vec<u64> {
    let mut counts = Vec::new();
    let mut m = 1;
    while m < batch {
        counts.push(m);
        m = if m < MICROBATCHES_EACH {
            m + 1
        } else {
            m + m.div_ceil(4)
        };
    }
    counts.push(batch.max(1));
    let mut sizes: Vec<u64> = counts.iter().map(|&m| batch.div_ceil(m)).collect();
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

/// Step graphs by microbatch sequences, shared by the strategies searched in parallel: each is
/// built once, by whichever search needs it first (another needing it meanwhile waits).
#[derive(Default)]
struct GraphCache {
    graphs: Mutex<BTreeMap<u64, Arc<OnceLock<StepGraph>>>>,
}

impl GraphCache {
    /// The graph of `sequences` sequences a microbatch, built here if no search has yet.
    fn cell(&self, sequences: u64) -> Arc<OnceLock<StepGraph>> {
        // A poisoned lock means another search panicked; the map itself is still whole.
        let mut graphs = self.graphs.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(graphs.entry(sequences).or_default())
    }
}

fn plan_with(
    model: &ModelSpec,
    fabric: &FabricSpec,
    config: StepConfig,
    mb: u64,
    activations: Activations,
    graphs: &GraphCache,
) -> Result<Plan> {
    let rows = fabric.geometry.region_height_pes;
    let cols = fabric.geometry.region_width_pes;
    let capacity = fabric.pe.sram_bytes;
    let code = fabric.pe.code_reserve_bytes;
    // Tokens spread over the PE rows, features over the columns: row 0 gets the rounding up.
    let tokens = mb * config.seq_len;
    let per_token = saved_bytes_per_token(&model.architecture, config.seq_len, activations);
    let saved = tokens.div_ceil(rows) * per_token.div_ceil(cols);
    let overflow = |what: String, need: u64| {
        Error::Input(format!(
            "{} on {}, {} step, microbatch {mb}, activations {}: PE (0, 0) needs {need} B for \
             {what}, {} B over its {capacity} B",
            model.name,
            fabric.name,
            config.phase.name(),
            activations.name(),
            need - capacity
        ))
    };
    if code + saved >= capacity {
        return Err(overflow(
            format!(
                "{code} B code + {saved} B of activations saved for backward of {} layers ({})",
                model.architecture.layers,
                activations.describe()
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
    // The head's cut of the full microbatches (a partial last group says its own).
    let mut head: Option<(HeadChunking, u64)> = None;
    for (sequences, repeat) in groups {
        let cell = graphs.cell(sequences);
        let step = cell.get_or_init(|| {
            StepGraph::build(
                model,
                StepConfig {
                    batch_sequences: sequences,
                    ..config
                },
            )
        });
        let placed = place_ops(model, fabric, step, working, activations)
            .map_err(|(name, why)| refusal(model, fabric, &name, why, &overflow, (code, saved)))?;
        head.get_or_insert(placed.head);
        let mut ops = placed.ops;
        // Offloaded checkpoints share the wafer's I/O with the weights: the wire format of
        // each op is chosen with them on its streams.
        if activations == Activations::Offload {
            offload_checkpoints(model, fabric, step.tokens(), &mut ops);
        }
        let per_layer = model.recipe.masks.as_ref().is_some_and(|m| m.priced());
        let ops = super::wire::choose_formats(ops, per_layer);
        for op in ops.iter().chain(&placed.updates) {
            if op.cost.sram_bytes_per_pe > working_max.0 {
                working_max = (op.cost.sram_bytes_per_pe, op.name.clone());
            }
        }
        // Every microbatch's graph has the step's updates; the optimizer runs them once.
        if optimizer.is_empty() {
            optimizer = placed.updates;
        }
        let spans = timeline(&ops.iter().map(OpPlan::timeline_op).collect::<Vec<_>>());
        planned.push(MicrobatchGroup {
            sequences,
            repeat,
            head_chunking: placed.head.0,
            head_chunks: placed.head.1,
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
        activations,
        microbatch_sequences: full,
        head_chunks: head.map_or(1, |h| h.1),
        head_chunking: head.map_or(HeadChunking::Tokens, |h| h.0),
        alternatives: Vec::new(),
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

/// The error for an op no tile fits: the PE's SRAM (with what else it holds), the colors the
/// fabric leaves kernels, or the rows a sparse index addresses.
fn refusal(
    model: &ModelSpec,
    fabric: &FabricSpec,
    name: &str,
    why: Refusal,
    overflow: &dyn Fn(String, u64) -> Error,
    (code, saved): (u64, u64),
) -> Error {
    match why {
        Refusal::Sram(tile) => overflow(
            format!(
                "{code} B code + {saved} B saved activations + {tile} B for the smallest tile of \
                 op {name}"
            ),
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
    }
}

/// A microbatch's ops placed in the order they run, recomputed forward ops included.
struct Placed {
    /// The wafer's ops.
    ops: Vec<OpPlan>,
    /// The optimizer's updates (off-wafer).
    updates: Vec<OpPlan>,
    /// How the LM head and loss are cut, and in how many chunks (1: all at once).
    head: (HeadChunking, u64),
}

/// Places every op of a microbatch's graph and the forward ops `activations` recomputes; the
/// name of the first op that fits nowhere on error. Identical ops of different layers share one
/// search.
fn place_ops(
    model: &ModelSpec,
    fabric: &FabricSpec,
    step: &StepGraph,
    working: u64,
    activations: Activations,
) -> Result<Placed, (String, Refusal)> {
    // Placements by op name without its layer: every layer's op reuses the first layer's.
    let mut cache: HashMap<String, OpPlan> = HashMap::new();
    // Sized once: recomputed forward ops are fewer than half the graph's (a few hundred KB
    // reallocated per candidate dominated the search's time).
    let mut ops = Vec::with_capacity(step.graph.node_count() * 3 / 2);
    let mut updates = Vec::new();
    // Found at the first op of the head, so that an op before it is refused first.
    let mut head: Option<(HeadChunking, u64)> = None;
    let last_layer = model.architecture.layers.saturating_sub(1);
    // Each layer's forward ops, in the order they run: what a rerun picks from.
    let mut forward: Vec<Vec<&Op>> = vec![Vec::new(); model.architecture.layers as usize];
    for op in step.ops().filter(|op| op.pass == Pass::Forward) {
        if let Some(layer) = op.layer {
            forward[layer as usize].push(op);
        }
    }
    // The sub-block whose forward was last rerun from its checkpoint.
    let mut rerun: Option<(u64, SubBlock)> = None;
    for op in step.ops() {
        if let Some(layer) = op.layer.filter(|_| op.pass != Pass::Forward) {
            let block = SubBlock::of(op);
            if activations.checkpoints() && rerun != Some((layer, block)) {
                // The last layer's FFN block is still in the buffer when backward starts.
                if !(layer == last_layer && block == SubBlock::Ffn) {
                    let rerun = |fwd: &Op| SubBlock::of(fwd) == block;
                    let at = (layer, "recompute");
                    recompute_layer(model, &forward, at, &cache, &mut ops, rerun);
                }
                rerun = Some((layer, block));
            }
            // The rerun block keeps no probabilities: attention's backward recomputes them.
            if activations != Activations::Keep && op.kind == OpKind::AttnValues {
                // A second time when the attention block was rerun from its checkpoint.
                let suffix = match activations.checkpoints() {
                    true => "recompute2",
                    false => "recompute",
                };
                let pick = |fwd: &Op| matches!(fwd.kind, OpKind::AttnScores | OpKind::Softmax);
                recompute_layer(model, &forward, (layer, suffix), &cache, &mut ops, pick);
            }
            // Nor GeLU's output: recomputed for the one op that reads it.
            if activations.checkpoints() && layer_key(op) == "ffn_down.wgrad" {
                // A second time but in the last layer, whose FFN block was not rerun.
                let suffix = match layer == last_layer {
                    true => "recompute",
                    false => "recompute2",
                };
                let pick = |fwd: &Op| fwd.kind == OpKind::Gelu;
                recompute_layer(model, &forward, (layer, suffix), &cache, &mut ops, pick);
            }
        }
        // Layers are identical but for masks read from a file: key on the op's name without
        // its layer, or with it where the layer's own mask prices the op.
        let key = placement_key(model, op);
        if let Some(cached) = cache.get(key) {
            match op.pass.on_wafer() {
                true => ops.push(renamed(cached, op)),
                false => updates.push(renamed(cached, op)),
            }
            continue;
        }
        // Cut by vocabulary, the loss's gradient needs the chunk's logits again.
        if op.kind == OpKind::Loss
            && op.pass != Pass::Forward
            && head.is_some_and(|(chunking, _)| chunking == HeadChunking::Vocabulary)
        {
            let logits = cache
                .get("lm_head.fwd")
                .expect("the head's forward is placed before the loss's gradient");
            let mut again = logits.clone();
            again.name = "lm_head.recompute".into();
            again.recompute = true;
            ops.push(again);
        }
        let placed = match op.kind {
            OpKind::LmHead | OpKind::Loss => {
                let choice = match head {
                    Some(choice) => choice,
                    None => *head.insert(choose_head(model, fabric, step, working)?),
                };
                head_plan(fabric, model, op, working, step, choice)
            }
            _ => op_plan_fitting(fabric, model, op, working, step.tokens()),
        }
        .map_err(|why| (op.name.clone(), why))?;
        cache.insert(key.to_string(), placed.clone());
        match op.pass.on_wafer() {
            true => ops.push(placed),
            false => updates.push(placed),
        }
    }
    Ok(Placed {
        ops,
        updates,
        head: head.unwrap_or((HeadChunking::Tokens, 1)),
    })
}

/// The two sub-blocks of a layer, each checkpointed at its input under
/// [`Activations::Checkpoint`] and [`Activations::Offload`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SubBlock {
    /// LN1, Q, K, V, attention, its output projection and the first residual add.
    Attention,
    /// LN2, the FFN's two matrices with GeLU between, and the second residual add.
    Ffn,
}

impl SubBlock {
    fn of(op: &Op) -> SubBlock {
        const FFN: [&str; 5] = ["ln2.", "ffn_up.", "gelu.", "ffn_down.", "residual2."];
        let key = layer_key(op);
        if FFN.iter().any(|prefix| key.starts_with(prefix)) {
            SubBlock::Ffn
        } else {
            SubBlock::Attention
        }
    }
}

/// An op's name without its layer (`q.fwd` for `layer3.q.fwd`): the key of identical ops.
fn layer_key(op: &Op) -> &str {
    op.name
        .split_once('.')
        .filter(|_| op.layer.is_some())
        .map_or(op.name.as_str(), |(_, rest)| rest)
}

/// What placements are shared by: an op's name without its layer ([`layer_key`]), but the whole
/// name for an op on a sparse weight whose mask was read from a file (each layer's mask has its
/// own non-zeros, and its own per-PE counts price the op).
fn placement_key<'a>(model: &ModelSpec, op: &'a Op) -> &'a str {
    let own_mask = model.recipe.masks.as_ref().is_some_and(|m| m.priced())
        && op.kind == OpKind::Linear
        && op.weight.as_ref().is_some_and(|w| w.sparse);
    if own_mask {
        &op.name
    } else {
        layer_key(op)
    }
}

/// A placed op of another layer, as `op`.
fn renamed(cached: &OpPlan, op: &Op) -> OpPlan {
    let mut placed = cached.clone();
    placed.name = op.name.clone();
    placed.layer = op.layer;
    placed
}

/// Appends `layer`'s forward ops that `pick` selects, run again in backward, as ops named
/// `layerN.NAME.SUFFIX` (`recompute`, or `recompute2` for the scores, softmax and GeLU of a
/// sub-block rerun from its checkpoint, run once more for the gradient that reads them): the
/// forward ops as placed (they ran before with the same tiles, weights streamed in again),
/// flagged so their cycles are the step's `recompute` category.
fn recompute_layer(
    model: &ModelSpec,
    forward: &[Vec<&Op>],
    (layer, suffix): (u64, &str),
    cache: &HashMap<String, OpPlan>,
    ops: &mut Vec<OpPlan>,
    pick: impl Fn(&Op) -> bool,
) {
    let forward = forward[layer as usize].iter().filter(|op| pick(op));
    for op in forward {
        let placed = cache
            .get(placement_key(model, op))
            .expect("a layer's forward ops are placed before its backward");
        let mut again = renamed(placed, op);
        again.name = format!("{}.{suffix}", op.name.trim_end_matches(".fwd"));
        again.recompute = true;
        ops.push(again);
    }
}

/// The fewest chunks of `chunking`'s kind the LM head and loss run in so that every one of
/// their ops fits `working` bytes per PE: the logits (tokens × vocabulary) would otherwise cap
/// the whole step's microbatch. Cut by tokens (each token's logits, loss and gradient are its
/// own; the head's weight, which cannot stay on the wafer, streams again per chunk) or by
/// vocabulary ([`op_plan_vocab_chunked`]). A refusal names the op that does not fit in chunks of
/// one token or one vocabulary entry, or by another limit.
fn fewest_head_chunks(
    model: &ModelSpec,
    fabric: &FabricSpec,
    step: &StepGraph,
    working: u64,
    chunking: HeadChunking,
) -> Result<u64, (String, Refusal)> {
    let most = match chunking {
        HeadChunking::Tokens => step.tokens().max(1),
        HeadChunking::Vocabulary => model.architecture.vocab_size.max(1),
    };
    let head: Vec<&Op> = head_ops(step).collect();
    let place = |chunks| {
        head.iter().try_for_each(|op| {
            head_plan(fabric, model, op, working, step, (chunking, chunks)).map(|_| ())
        })
    };
    match fewest_chunks(most, place) {
        Ok((chunks, ())) => Ok(chunks),
        Err(_) => Err(head
            .iter()
            .find_map(|op| {
                head_plan(fabric, model, op, working, step, (chunking, most))
                    .err()
                    .map(|why| (op.name.clone(), why))
            })
            .unwrap_or_else(|| ("lm_head.fwd".into(), Refusal::Sram(working + 1)))),
    }
}

/// A head op placed as `choice` cuts the head.
fn head_plan(
    fabric: &FabricSpec,
    model: &ModelSpec,
    op: &Op,
    working: u64,
    step: &StepGraph,
    (chunking, chunks): (HeadChunking, u64),
) -> Result<OpPlan, Refusal> {
    match chunking {
        HeadChunking::Tokens => {
            op_plan_chunked(fabric, model, op, working, (step.tokens(), chunks))
        }
        HeadChunking::Vocabulary => op_plan_vocab_chunked(
            fabric,
            model,
            op,
            working,
            (step.tokens(), model.architecture.vocab_size, chunks),
        ),
    }
}

/// How the LM head and loss run: all at once when every op of theirs fits, else the faster of
/// the fewest token chunks and the fewest vocabulary chunks (by their ops' cycles, each op's
/// longest of compute and streams, the recomputed logits of vocabulary chunks included; a tie
/// keeps token chunks).
fn choose_head(
    model: &ModelSpec,
    fabric: &FabricSpec,
    step: &StepGraph,
    working: u64,
) -> Result<(HeadChunking, u64), (String, Refusal)> {
    let by_tokens = fewest_head_chunks(model, fabric, step, working, HeadChunking::Tokens);
    if matches!(by_tokens, Ok(1)) {
        return Ok((HeadChunking::Tokens, 1));
    }
    let by_vocabulary = fewest_head_chunks(model, fabric, step, working, HeadChunking::Vocabulary);
    let head: Vec<&Op> = head_ops(step).collect();
    let cycles = |choice: (HeadChunking, u64)| -> u128 {
        let plans: Vec<OpPlan> = head
            .iter()
            .filter_map(|op| head_plan(fabric, model, op, working, step, choice).ok())
            .collect();
        let recomputed = plans
            .iter()
            .filter(|p| choice.0 == HeadChunking::Vocabulary && p.name == "lm_head.fwd");
        plans.iter().chain(recomputed).map(op_cycles).sum()
    };
    match (by_tokens, by_vocabulary) {
        (Ok(t), Ok(v)) => {
            let (tokens, vocabulary) = ((HeadChunking::Tokens, t), (HeadChunking::Vocabulary, v));
            Ok(match cycles(vocabulary) < cycles(tokens) {
                true => vocabulary,
                false => tokens,
            })
        }
        (Ok(t), Err(_)) => Ok((HeadChunking::Tokens, t)),
        (Err(_), Ok(v)) => Ok((HeadChunking::Vocabulary, v)),
        (Err(e), Err(_)) => Err(e),
    }
}

/// An op's cycles as the head's choice weighs them: the longest of its compute and its streams.
fn op_cycles(op: &OpPlan) -> u128 {
    u128::from(op.cost.cycles.max(op.io_in_cycles).max(op.io_out_cycles))
}

/// The head's ops on the wafer: the LM head's GEMMs and the loss.
fn head_ops(step: &StepGraph) -> impl Iterator<Item = &Op> {
    step.ops()
        .filter(|op| matches!(op.kind, OpKind::LmHead | OpKind::Loss) && op.pass.on_wafer())
}

/// Streams each layer's checkpoints (its input and its attention block's output, `tokens` × 2·d
/// activations) out during the layer's
/// forward and back in during the next layer's backward (recomputation included), spread over
/// those ops in proportion to their FLOPs: the stream paces with the work, and only what the
/// link cannot carry in the layer's time is exposed. The last layer's input stays on the wafer.
fn offload_checkpoints(model: &ModelSpec, fabric: &FabricSpec, tokens: u64, ops: &mut [OpPlan]) {
    let bytes = tokens * checkpoint_bytes_per_token(&model.architecture);
    for layer in 0..model.architecture.layers.saturating_sub(1) {
        let forward =
            |op: &OpPlan| op.layer == Some(layer) && op.pass == Pass::Forward && !op.recompute;
        spread(ops, bytes, forward, |op, share| {
            op.offload_out_bytes += share
        });
        let backward = |op: &OpPlan| {
            op.layer == Some(layer + 1)
                && op.pass.on_wafer()
                && (op.recompute || op.pass != Pass::Forward)
        };
        spread(ops, bytes, backward, |op, share| {
            op.offload_in_bytes += share
        });
    }
    for op in ops
        .iter_mut()
        .filter(|op| op.offload_in_bytes + op.offload_out_bytes > 0)
    {
        let (offload_in, offload_out) = (op.offload_in_bytes, op.offload_out_bytes);
        // The op's other wire format streams the same checkpoints beside its own weights.
        if let Some(other) = op.other_format.as_deref_mut() {
            other.offload_in_bytes = offload_in;
            other.offload_out_bytes = offload_out;
            add_offload(fabric, other);
        }
        add_offload(fabric, op);
    }
}

/// Puts an op's offloaded checkpoint bytes on its streams.
fn add_offload(fabric: &FabricSpec, op: &mut OpPlan) {
    op.io_in_bytes += op.offload_in_bytes;
    op.io_out_bytes += op.offload_out_bytes;
    op.io_in_cycles = stream_cycles(fabric, op.io_in_bytes);
    op.io_out_cycles = stream_cycles(fabric, op.io_out_bytes);
}

/// Splits `bytes` over the ops `pick` selects in proportion to their FLOPs
/// ([`offload_weight`]) (whole bytes, the
/// shares adding up to `bytes` exactly).
/// An op's share of the checkpoints streamed beside it: its FLOPs (at least 1), a property of
/// the model, not of the fabric, so a faster fabric streams the same bytes beside each op and
/// its shorter ops never end later (shares by cycles moved bytes onto the ops a faster PE
/// sped up least, and a faster fabric could map a slower step).
fn offload_weight(op: &OpPlan) -> u128 {
    op.flops_dense.max(1)
}

fn spread(
    ops: &mut [OpPlan],
    bytes: u64,
    pick: impl Fn(&OpPlan) -> bool,
    add: impl Fn(&mut OpPlan, u64),
) {
    let total: u128 = ops.iter().filter(|op| pick(op)).map(offload_weight).sum();
    let (mut before, mut given) = (0u128, 0u64);
    for op in ops.iter_mut().filter(|op| pick(op)) {
        before += offload_weight(op);
        let upto = (bytes as u128 * before).checked_div(total).unwrap_or(0) as u64;
        add(op, upto - given);
        given = upto;
    }
}
