//! A step on several systems trained data-parallel: each system runs its share of the batch, the
//! SwarmX tree broadcasts the weights and sums the gradients (`cost::data_parallel_cost`).
//!
//! The batch arithmetic is the vendor's (Cerebras docs, "Advanced: Understanding and Manually
//! Controlling MBS", training-docs.cerebras.ai/rel-2.5.0/model-zoo/tutorials/microbatching-advanced):
//! a per-system batch of ⌈B/N⌉ sequences, split into ⌈per-system / MBS⌉ microbatches. When N does
//! not divide B nothing is padded: the work is spread "approximately even" (673 sequences on 2
//! systems: 337 and 336), so some systems run ⌊B/N⌋ real sequences and the step waits for
//! those with ⌈B/N⌉. The step's time is therefore a ⌈B/N⌉-sequence step, its FLOPs the model's
//! for the B sequences trained (releases before 2.5 required N to divide B, where both agree).

use super::step::{run_step, StepResult};
use crate::cost::{data_parallel_cost, DataParallelCost, StreamGroup, TimelineOp};
use crate::error::{Error, Result};
use crate::graph::{StepConfig, StepGraph};
use crate::map::{MapOptions, Plan};
use crate::spec::{FabricSpec, ModelSpec};

/// Refuses a system count outside 1 to the fabric's `cluster.systems_max`, naming the flag.
pub fn check_systems(fabric: &FabricSpec, systems: u64) -> Result<()> {
    let max = fabric.cluster.systems_max;
    if (1..=max).contains(&systems) {
        return Ok(());
    }
    Err(Error::Input(format!(
        "--systems {systems} is not allowed: {} clusters hold 1 to {max} systems \
         (cluster.systems_max)",
        fabric.name
    )))
}

/// Sequences each system runs of a batch of `batch` on `systems`: ⌈B/N⌉.
pub fn batch_per_system(batch: u64, systems: u64) -> u64 {
    batch.div_ceil(systems.max(1))
}

/// Maps and times one step of `config` (its batch the whole cluster's) on `systems` systems:
/// one system's plan at the per-system batch, plus the tree's cycles as `data_parallel`; the
/// FLOPs are the whole batch's. On one system, exactly [`run_step`].
pub fn run_step_on_systems(
    model: &ModelSpec,
    fabric: &FabricSpec,
    config: StepConfig,
    options: MapOptions,
    systems: u64,
) -> Result<StepResult> {
    check_systems(fabric, systems)?;
    if systems == 1 {
        return run_step(model, fabric, config, options);
    }
    let per_system = StepConfig {
        batch_sequences: batch_per_system(config.batch_sequences, systems),
        ..config
    };
    // As the vendor's compiler does: a microbatch is at most the per-system batch.
    if let Some(mb) = options.microbatch_sequences {
        if mb == 0 || mb > per_system.batch_sequences {
            return Err(Error::Input(format!(
                "--microbatch {mb} is not allowed with --systems {systems}: must be 1 to the \
                 per-system batch of {} sequences (ceil({} / {systems}))",
                per_system.batch_sequences, config.batch_sequences
            )));
        }
    }
    let mut step = run_step(model, fabric, per_system, options)?;
    let cost = tree_cost(fabric, systems, &step.plan);
    let one_system_cycles = step.cycles;
    let cycles = one_system_cycles.checked_add(cost.cycles).ok_or_else(|| {
        Error::Input(format!(
            "{} on {}: a step on {systems} systems would take more than 2^64 cycles; its \
             cluster.swarmx_* keys make the tree that slow",
            model.name, fabric.name
        ))
    })?;
    // FLOPs are linear in the sequences, so the masked weights' share carries over exactly.
    let flops = StepGraph::build(model, config).flops();
    step.sparsifiable_flops = step.sparsifiable_flops * u128::from(config.batch_sequences)
        / u128::from(per_system.batch_sequences);
    step.flops_dense = flops.flops_dense;
    step.flops_executed = flops.flops_executed;
    step.flops_optimizer = flops.flops_optimizer;
    // The PEs stay idle while the tree adds its cycles.
    let busy_share = one_system_cycles as f64 / cycles.max(1) as f64;
    step.pe_utilization_mean *= busy_share;
    step.pe_utilization_max *= busy_share;
    step.breakdown.data_parallel = cost.cycles;
    step.cycles = cycles;
    step.systems = systems;
    step.batch_sequences = config.batch_sequences;
    step.data_parallel = cost;
    debug_assert_eq!(step.breakdown.total(), step.cycles);
    Ok(step)
}

/// What the SwarmX tree adds to one system's `plan` on `systems` systems.
fn tree_cost(fabric: &FabricSpec, systems: u64, plan: &Plan) -> DataParallelCost {
    let timelines: Vec<(u64, Vec<TimelineOp>)> = plan
        .groups
        .iter()
        .map(|g| {
            let ops = g
                .ops
                .iter()
                .map(|op| TimelineOp {
                    cycles: op.cost.cycles,
                    io_in_cycles: op.io_in_cycles,
                    io_out_cycles: op.io_out_cycles,
                })
                .collect();
            (g.repeat, ops)
        })
        .collect();
    let groups: Vec<StreamGroup> = timelines
        .iter()
        .map(|(repeat, ops)| StreamGroup {
            repeat: *repeat,
            ops,
        })
        .collect();
    data_parallel_cost(fabric, systems, &groups)
}
