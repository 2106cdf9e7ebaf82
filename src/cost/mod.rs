//! Fabric-scale cost models: the cycles of each kernel kind, in closed form, from the same fabric
//! parameters the engine uses. Full-wafer steps use these; `validate` checks them against the
//! engine on shapes both can run.
//!
//! Architecture Invariant: pure functions of a `FabricSpec` and a shape; no I/O, no randomness
//! (load imbalance from a random mask enters as an expected maximum, not a sample). Every cost
//! splits its cycles into categories that add up to its total exactly.

mod collective;
mod elementwise;
mod gemm;
mod io;
mod swarmx;
mod timeline;

pub use collective::{collective_busy_cycles, collective_cycles, CollectiveAlgo, CollectiveKind};
pub use elementwise::{
    elementwise_config, elementwise_cost, elementwise_op_colors, row_allreduce_algo,
    ElementwiseProblem,
};
pub use gemm::{
    attention_layouts_cost, attention_products, fmac_ops, gemm_cost, gemm_cost_and_column_busy,
    gemm_cost_with_counts, operand_copy_cost, AttentionOp, GemmForm, GemmProblem, GemmTile,
};
pub use io::{stream_bytes, stream_cycles, WireWeight};
pub use swarmx::{data_parallel_cost, tree_levels, DataParallelCost, StreamGroup};
pub use timeline::{timeline, TimelineOp, TimelineSpan};

use serde::Serialize;

/// The cycles of one kernel on its region, split into categories that add up to `cycles`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KernelCost {
    pub cycles: u64,
    /// What the executed FLOPs need at full SIMD rate on every PE of the fabric's region.
    pub compute_cycles: u64,
    /// The slowest PE's extra work over the mean PE's.
    pub imbalance_cycles: u64,
    /// On-fabric collective traffic the compute does not hide: partial-sum reductions, and in a
    /// full-wafer step the operand copies a GEMM tile needs ([`operand_copy_cost`]).
    pub reduction_cycles: u64,
    /// Everything else: task activation, index decode, SIMD padding, idle PEs, fill and drain.
    pub overhead_cycles: u64,
    /// SRAM one PE needs while the kernel runs (tiles, accumulators, buffers), code excluded.
    pub sram_bytes_per_pe: u64,
    /// Busy cycles of the mean PE of the region (for utilisation).
    pub busy_cycles_mean: u64,
    /// Busy cycles of the busiest PE.
    pub busy_cycles_max: u64,
}

impl KernelCost {
    /// Builds a cost whose overhead is what the named categories leave of `cycles`, with the
    /// mean and max busy cycles of the region's PEs.
    pub(crate) fn split(
        cycles: u64,
        compute: u64,
        imbalance: u64,
        reduction: u64,
        sram: u64,
        (busy_mean, busy_max): (u64, u64),
    ) -> Self {
        let compute = compute.min(cycles);
        let imbalance = imbalance.min(cycles - compute);
        let reduction = reduction.min(cycles - compute - imbalance);
        KernelCost {
            cycles,
            compute_cycles: compute,
            imbalance_cycles: imbalance,
            reduction_cycles: reduction,
            overhead_cycles: cycles - compute - imbalance - reduction,
            sram_bytes_per_pe: sram,
            busy_cycles_mean: busy_mean.min(cycles),
            busy_cycles_max: busy_max.min(cycles),
        }
    }
}

impl KernelCost {
    /// This kernel, then `next` on the same region: cycles and categories add up, the mean and
    /// busiest PE's busy cycles add (an upper bound for the busiest), SRAM is the larger need.
    pub fn then(&self, next: &KernelCost) -> KernelCost {
        KernelCost {
            cycles: self.cycles + next.cycles,
            compute_cycles: self.compute_cycles + next.compute_cycles,
            imbalance_cycles: self.imbalance_cycles + next.imbalance_cycles,
            reduction_cycles: self.reduction_cycles + next.reduction_cycles,
            overhead_cycles: self.overhead_cycles + next.overhead_cycles,
            sram_bytes_per_pe: self.sram_bytes_per_pe.max(next.sram_bytes_per_pe),
            busy_cycles_mean: self.busy_cycles_mean + next.busy_cycles_mean,
            busy_cycles_max: self.busy_cycles_max + next.busy_cycles_max,
        }
    }
}

/// Expected maximum of `count` draws of a binomial(n, p): mean + σ·√(2 ln count), the Gaussian
/// extreme-value estimate; exact (the mean) for one draw or a deterministic count.
pub fn expected_binomial_max(n: u64, p: f64, count: u64) -> f64 {
    let mean = n as f64 * p;
    if count <= 1 || p <= 0.0 || p >= 1.0 {
        return mean;
    }
    let sigma = (n as f64 * p * (1.0 - p)).sqrt();
    (mean + sigma * (2.0 * (count as f64).ln()).sqrt()).min(n as f64)
}
