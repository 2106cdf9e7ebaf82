//! Dynamic sparse training (`recipe.dynamic`): what each mask update costs the wafer and the
//! weight servers, and the pre-training phase it gives beside the same phase with static masks.
//!
//! An update after step `t` drops a share `f(t)` of every sparse weight's non-zeros, those of
//! smallest magnitude, and regrows as many (`spec::DynamicSpec`). Where the time goes:
//! - **On the wafer** (RigL only): the update step computes every sparse weight's gradient dense,
//!   as RigL regrows where the dense gradient is largest; those wgrad ops run dense and stream
//!   their gradients out dense (`StepConfig::dense_weight_gradients`). Forward, dgrad and the
//!   optimizer stay sparse. SET's update step is the regular step.
//! - **On the weight servers** (MemoryX), between the update step and the next: each weight's
//!   kept values are scored by magnitude and the smallest `f·nnz` selected (every non-zero
//!   once), then the regrown positions chosen: SET draws `f·nnz` of the zeros at random (one
//!   element each), RigL selects the largest dense-gradient magnitudes among all the zeros (every
//!   zero once). The wafer waits for it, at `cluster.memoryx_mask_update_elements_per_second`
//!   ([`mask_update_cost`]).
//! - **New indices**: nothing more. Weights stream in from the servers every step, each
//!   non-zero with its index (`map::wire`); a moved mask changes which indices travel, not how
//!   many.
//!
//! The steps between updates are priced with the starting masks: SET and RigL keep each weight's
//! non-zeros, but where the regrown ones land follows the gradients, which wafersim does not
//! train. A drawn random mask stays a random mask by this account; a mask read from a file keeps
//! its per-PE counts.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::graph::{OpKind, Pass, StepConfig, StepGraph};
use crate::spec::{DynamicMethod, DynamicSpec, FabricSpec, ModelSpec, MAX_MASK_UPDATES};

/// What the weight servers do over a phase's mask updates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaskUpdateCost {
    pub updates: u64,
    /// Non-zeros dropped, and as many regrown, over every update and sparse weight.
    pub weights_moved: u64,
    /// Elements scored or drawn over every update.
    pub elements: u64,
    /// Cycles the wafer waits for them: each update's elements at the servers' rate, rounded
    /// up to a whole cycle.
    pub cycles: u64,
}

/// The weight servers' work over the mask updates of a phase of `steps` steps whose step is
/// `config`: per update and sparse weight, `nnz` magnitudes to select the dropped from, then
/// the regrowth's candidates (SET: as many zeros as dropped; RigL: every zero). A weight with
/// no zero (a layer ERK leaves dense) has nothing to regrow into and is not updated. Refused
/// where a total passes what a run may count (2^64), naming the fabric key that makes it so.
pub fn mask_update_cost(
    model: &ModelSpec,
    fabric: &FabricSpec,
    config: StepConfig,
    dynamic: DynamicSpec,
    steps: u64,
) -> Result<MaskUpdateCost> {
    // Weights of one shape and count update alike: (elements, non-zeros) -> how many.
    let mut weights: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    for w in StepGraph::build(model, config)
        .ops()
        .filter(|op| op.kind == OpKind::Linear && op.pass == Pass::Forward)
        .filter_map(|op| op.weight.as_ref())
        .filter(|w| w.sparse && w.nonzeros < w.elements())
    {
        *weights.entry((w.elements(), w.nonzeros)).or_default() += 1;
    }
    if dynamic.updates(steps) > MAX_MASK_UPDATES {
        return Err(Error::Input(format!(
            "{}: {} mask updates in pre-training, more than the {MAX_MASK_UPDATES} a run may \
             price; update less often",
            model.name,
            dynamic.updates(steps)
        )));
    }
    let rate = fabric.cluster.memoryx_mask_update_elements_per_second as u128;
    let clock = fabric.clock.clock_hz as u128;
    let (mut moved_all, mut elements_all, mut cycles_all) = (0u128, 0u128, 0u128);
    let mut updates = 0;
    for t in dynamic.update_steps(steps) {
        let fraction = dynamic.drop_fraction_at(t, steps);
        let mut elements = 0u128;
        for (&(all, nnz), &count) in &weights {
            let zeros = all - nnz;
            // As many regrown as dropped: no more than the zeros there are to regrow into.
            let moved = ((fraction * nnz as f64).round() as u64).min(zeros);
            moved_all += moved as u128 * count as u128;
            let scored = nnz
                + match dynamic.method {
                    DynamicMethod::Set => moved,
                    DynamicMethod::Rigl => zeros,
                };
            elements += scored as u128 * count as u128;
        }
        updates += 1;
        elements_all += elements;
        cycles_all += (elements * clock).div_ceil(rate);
    }
    let fits = |n: u128| u64::try_from(n).ok();
    match (fits(moved_all), fits(elements_all), fits(cycles_all)) {
        (Some(weights_moved), Some(elements), Some(cycles)) => Ok(MaskUpdateCost {
            updates,
            weights_moved,
            elements,
            cycles,
        }),
        _ => Err(Error::Input(format!(
            "{} on {}: the weight servers' {updates} mask updates would take {cycles_all} \
             cycles ({elements_all} elements), more than the 2^64 a run may count; the fabric's \
             cluster.memoryx_mask_update_elements_per_second = {} updates that slowly, or \
             --update-every is that short",
            model.name, fabric.name, fabric.cluster.memoryx_mask_update_elements_per_second
        ))),
    }
}

/// What dynamic sparse training did to a run's pre-training, beside the same phase with static
/// masks: the report's side-by-side (`TrainRun.dynamic`).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct DynamicPhase {
    /// `set` or `rigl`.
    pub method: DynamicMethod,
    pub update_every: u64,
    pub drop_fraction: f64,
    pub end_fraction: f64,
    /// Mask updates in the phase: after every `update_every` steps below `end_fraction` of them.
    pub mask_updates: u64,
    /// Non-zeros dropped, and as many regrown, over every update and sparse weight.
    pub weights_moved: u64,
    /// One full step's cycles, as a regular step and as an update step (RigL's computes the
    /// sparse weights' gradients dense; SET's is the regular step).
    pub step_cycles: u64,
    pub update_step_cycles: u64,
    /// Elements the weight servers scored or drew over every update, and the cycles the wafer
    /// waited for them (the phase's `mask_update_cycles`).
    pub mask_update_elements: u64,
    pub mask_update_cycles: u64,
    /// The same pre-training with static masks: its cycles, executed FLOPs (the theoretical
    /// speedup's; a RigL run's FLOPs count its update steps' dense weight gradients), speedups.
    pub static_cycles: u64,
    #[serde(skip)]
    pub static_flops_executed: u128,
    pub static_theoretical_speedup: f64,
    pub static_simulated_speedup: f64,
    /// The whole recipe with static pre-training masks: its cycles and speedups.
    pub static_total_cycles: u64,
    pub static_total_theoretical_speedup: f64,
    pub static_total_simulated_speedup: f64,
}
