//! One training step on the whole fabric: map it, lay it out in time, account every cycle.

use serde::Serialize;

use crate::error::Result;
use crate::graph::{OpKind, Pass, StepConfig, StepGraph};
use crate::map::{map_step, MapOptions, OpPlan, Plan, WeightFormat};
use crate::spec::{FabricSpec, ModelSpec};

/// Cycles of a step by where they went; the fields add up to the step's cycles.
/// Reports name every field with its unit, `<category>_cycles`, as the CSV columns are named.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Breakdown {
    /// Ideal FMAC time of ops on sparse weights (executed FLOPs at full SIMD rate).
    #[serde(rename = "sparse_compute_cycles")]
    pub sparse_compute: u64,
    /// Ideal time of everything dense: attention, the LM head, element-wise ops, dense weights.
    #[serde(rename = "dense_compute_cycles")]
    pub dense_compute: u64,
    /// On-fabric collective traffic not hidden behind compute: partial-sum and normalisation
    /// reductions, and the copies of a GEMM's resident operands its tile needs
    /// (`cost::operand_copy_cost`).
    #[serde(rename = "reduction_cycles")]
    pub reduction: u64,
    /// Waiting for weights to stream in or gradients to stream out through the wafer's edge.
    #[serde(rename = "io_cycles")]
    pub io: u64,
    /// The busiest PE's extra work over the mean PE's.
    #[serde(rename = "imbalance_cycles")]
    pub imbalance: u64,
    /// Task activation, index decode, SIMD padding, idle PEs, fill and drain, and the FMACs of
    /// a sparse weight's stored zeros where it runs in the dense format (work the FLOP count does
    /// not have).
    #[serde(rename = "overhead_cycles")]
    pub overhead: u64,
    /// Forward work run again in backward (recomputed attention, or layers recomputed from
    /// their checkpoints): all cycles of the recomputed ops but their I/O wait.
    #[serde(rename = "recompute_cycles")]
    pub recompute: u64,
    /// With several systems: what the SwarmX weight broadcast and gradient reduction add
    /// (`cost::data_parallel_cost`); 0 on one system.
    #[serde(rename = "data_parallel_cycles")]
    pub data_parallel: u64,
    /// With dynamic sparse training (`recipe.dynamic`): the weight servers' mask updates the
    /// wafer waits for (`schedule::mask_update_cost`); 0 in a step and with static masks. A
    /// RigL update step's dense weight gradients are in the other categories.
    #[serde(rename = "mask_update_cycles", default)]
    pub mask_update: u64,
}

impl Breakdown {
    pub fn total(&self) -> u64 {
        self.sparse_compute
            + self.dense_compute
            + self.reduction
            + self.io
            + self.imbalance
            + self.overhead
            + self.recompute
            + self.data_parallel
            + self.mask_update
    }

    fn add_op(&mut self, op: &OpPlan, io_wait: u64, times: u64) {
        let c = &op.cost;
        self.io += times * io_wait;
        if op.recompute {
            self.recompute += times * c.cycles;
            return;
        }
        if op.sparse {
            self.sparse_compute += times * c.compute_cycles;
        } else {
            self.dense_compute += times * c.compute_cycles;
        }
        self.reduction += times * c.reduction_cycles;
        self.imbalance += times * c.imbalance_cycles;
        self.overhead += times * c.overhead_cycles;
    }

    /// Every category multiplied by `times` (a step repeated).
    pub fn times(&self, times: u64) -> Breakdown {
        Breakdown {
            sparse_compute: self.sparse_compute * times,
            dense_compute: self.dense_compute * times,
            reduction: self.reduction * times,
            io: self.io * times,
            imbalance: self.imbalance * times,
            overhead: self.overhead * times,
            recompute: self.recompute * times,
            data_parallel: self.data_parallel * times,
            mask_update: self.mask_update * times,
        }
    }

    /// (name, cycles) pairs of a step's categories in a fixed order, for tables: every one but
    /// `mask_update`, which a phase has and a step never does.
    pub fn entries(&self) -> [(&'static str, u64); 8] {
        [
            ("sparse compute", self.sparse_compute),
            ("dense compute", self.dense_compute),
            ("reduction", self.reduction),
            ("I/O", self.io),
            ("imbalance", self.imbalance),
            ("overhead", self.overhead),
            ("recompute", self.recompute),
            ("data parallel", self.data_parallel),
        ]
    }
}

impl std::ops::Add for Breakdown {
    type Output = Breakdown;

    fn add(self, b: Breakdown) -> Breakdown {
        Breakdown {
            sparse_compute: self.sparse_compute + b.sparse_compute,
            dense_compute: self.dense_compute + b.dense_compute,
            reduction: self.reduction + b.reduction,
            io: self.io + b.io,
            imbalance: self.imbalance + b.imbalance,
            overhead: self.overhead + b.overhead,
            recompute: self.recompute + b.recompute,
            data_parallel: self.data_parallel + b.data_parallel,
            mask_update: self.mask_update + b.mask_update,
        }
    }
}

/// One op of the step, summed over its microbatches (an optimizer update: once per step).
#[derive(Debug, Clone, Serialize)]
pub struct OpRow {
    pub name: String,
    pub kind: OpKind,
    pub pass: Pass,
    pub sparse: bool,
    /// How its weight travels and is computed (`sparse` or `dense`); `None` without a weight
    /// matrix.
    pub weight_format: Option<WeightFormat>,
    /// A forward op run again in backward: its FLOPs are `flops_recompute`, not the model's.
    pub recompute: bool,
    /// `rows x c_k x c_n` of the GEMM tile, empty for element-wise ops.
    pub tile: String,
    /// The GEMM tile itself (`None` for element-wise ops and the optimizer's updates).
    pub gemm_tile: Option<crate::cost::GemmTile>,
    /// Token chunks the op runs in, one after another (1: the microbatch's tokens at once).
    pub token_chunks: u64,
    /// Vocabulary chunks an op of the LM head or loss runs in (1: the whole vocabulary).
    pub vocab_chunks: u64,
    pub cycles: u64,
    pub breakdown: Breakdown,
    pub io_in_bytes: u64,
    pub io_out_bytes: u64,
    pub flops_dense: u128,
    pub flops_executed: u128,
    /// Executed FLOPs of a recomputed op (0 for the model's own ops).
    pub flops_recompute: u128,
}

impl OpRow {
    fn of(op: &OpPlan) -> OpRow {
        OpRow {
            name: op.name.clone(),
            kind: op.kind,
            pass: op.pass,
            sparse: op.sparse,
            weight_format: op.weight_format,
            recompute: op.recompute,
            tile: op
                .tile
                .map_or(String::new(), |t| format!("{}x{}x{}", t.rows, t.c_k, t.c_n)),
            gemm_tile: op.tile,
            token_chunks: op.token_chunks,
            vocab_chunks: op.vocab_chunks,
            cycles: 0,
            breakdown: Breakdown::default(),
            io_in_bytes: 0,
            io_out_bytes: 0,
            flops_dense: 0,
            flops_executed: 0,
            flops_recompute: 0,
        }
    }

    /// Adds `times` runs of `op`, which waited `io_wait` cycles on the wafer's I/O each.
    fn add(&mut self, op: &OpPlan, io_wait: u64, times: u64) {
        self.breakdown.add_op(op, io_wait, times);
        self.cycles = self.breakdown.total();
        self.io_in_bytes += times * op.io_in_bytes;
        self.io_out_bytes += times * op.io_out_bytes;
        if op.recompute {
            self.flops_recompute += times as u128 * op.flops_executed;
        } else {
            self.flops_dense += times as u128 * op.flops_dense;
            self.flops_executed += times as u128 * op.flops_executed;
        }
    }
}

/// A step, mapped and timed. Its FLOPs are the step graph's (`StepGraph::flops`): the wafer's
/// work in `flops_dense` and `flops_executed`, the off-wafer optimizer's in `flops_optimizer`.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    pub plan: Plan,
    pub cycles: u64,
    pub breakdown: Breakdown,
    /// The wafer's ops, each summed over the microbatches, then the optimizer's updates.
    pub ops: Vec<OpRow>,
    pub flops_dense: u128,
    pub flops_executed: u128,
    pub flops_optimizer: u128,
    /// Executed FLOPs of the forward ops run again in backward: work on top of the model's
    /// (`flops_dense` and `flops_executed` count the model's only).
    pub flops_recompute: u128,
    /// Mean over the region's PEs of busy cycles ÷ step cycles.
    pub pe_utilization_mean: f64,
    /// The busiest PE's busy cycles ÷ step cycles (an upper bound: per-op maxima summed).
    pub pe_utilization_max: f64,
    /// Ideal compute cycles of the ops on weights the recipe masks (sparse or, at s = 0, dense).
    pub sparsifiable_compute: u64,
    /// Dense-equivalent FLOPs of the wafer's ops on weights the recipe masks.
    pub sparsifiable_flops: u128,
    /// Systems the step ran on, data-parallel (`schedule::run_step_on_systems`); the plan, the
    /// cycles and the ops are one system's, the FLOPs the whole batch's.
    pub systems: u64,
    /// Sequences of the whole step, over every system.
    pub batch_sequences: u64,
    /// What the SwarmX tree added (`breakdown.data_parallel`), by part.
    pub data_parallel: crate::cost::DataParallelCost,
    /// Cycles of the ops on weights the recipe masks, their I/O wait included.
    pub sparsifiable_cycles: u64,
}

/// Maps and times one step.
pub fn run_step(
    model: &ModelSpec,
    fabric: &FabricSpec,
    config: StepConfig,
    options: MapOptions,
) -> Result<StepResult> {
    let plan = map_step(model, fabric, config, options)?;
    let flops = StepGraph::build(model, config).flops();
    let mut breakdown = Breakdown::default();
    let mut rows: Vec<OpRow> = Vec::new();
    let (mut busy_mean, mut busy_max) = (0u128, 0u128);
    let (mut sparsifiable_compute, mut sparsifiable_flops) = (0u64, 0u128);
    let mut sparsifiable_cycles = 0u64;
    let mut flops_recompute = 0u128;
    for group in &plan.groups {
        // Rows by op name, in the order the ops run: groups share their ops but for the head's
        // (a group cut by vocabulary recomputes its logits), which get rows of their own there.
        let mut next = 0;
        for (op, span) in group.ops.iter().zip(&group.spans) {
            breakdown.add_op(op, span.io_wait, group.repeat);
            busy_mean += (group.repeat * op.cost.busy_cycles_mean) as u128;
            busy_max += (group.repeat * op.cost.busy_cycles_max) as u128;
            if op.recompute {
                flops_recompute += group.repeat as u128 * op.flops_executed;
            } else if op.sparsifiable {
                sparsifiable_compute += group.repeat * op.cost.compute_cycles;
                sparsifiable_flops += group.repeat as u128 * op.flops_dense;
                sparsifiable_cycles += group.repeat * (op.cost.cycles + span.io_wait);
            }
            let i = match rows[next..].iter().position(|row| row.name == op.name) {
                Some(at) => next + at,
                None => {
                    rows.insert(next, OpRow::of(op));
                    next
                }
            };
            rows[i].add(op, span.io_wait, group.repeat);
            next = i + 1;
        }
    }
    for op in &plan.optimizer {
        let mut row = OpRow::of(op);
        row.add(op, 0, 1);
        rows.push(row);
    }
    let cycles = plan.cycles();
    debug_assert_eq!(breakdown.total(), cycles, "categories add up to the step");
    let denominator = cycles.max(1) as f64;
    Ok(StepResult {
        plan,
        cycles,
        breakdown,
        ops: rows,
        flops_dense: flops.flops_dense,
        flops_executed: flops.flops_executed,
        flops_optimizer: flops.flops_optimizer,
        flops_recompute,
        pe_utilization_mean: busy_mean as f64 / denominator,
        pe_utilization_max: (busy_max as f64 / denominator).min(1.0),
        sparsifiable_compute,
        sparsifiable_flops,
        systems: 1,
        batch_sequences: config.batch_sequences,
        data_parallel: crate::cost::data_parallel_cost(fabric, 1, &[]),
        sparsifiable_cycles,
    })
}
