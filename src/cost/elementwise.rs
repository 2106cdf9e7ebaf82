//! Element-wise ops (LayerNorm, softmax, GeLU, residual, loss, embedding) over the region.
//!
//! Tokens are spread over the PE rows and features over the PE columns, as the activations of a
//! weight-streaming step are. Each PE works on its block at SIMD rate or SRAM bandwidth, whichever
//! is slower; ops that normalise over a row (LayerNorm, softmax, loss) also all-reduce two values
//! per token along the PE row.

use serde::Serialize;

use super::KernelCost;
use crate::spec::FabricSpec;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ElementwiseProblem {
    pub rows: u64,
    pub cols: u64,
    pub flops: u128,
    /// Activation bytes read and written.
    pub bytes: u64,
    /// Whether the op reduces over a row (mean, variance, max, sum of exponentials).
    pub row_reduction: bool,
}

/// Cycles of an element-wise op on a `rows × cols` PE region.
pub fn elementwise_cost(
    fabric: &FabricSpec,
    p: &ElementwiseProblem,
    region_rows: u64,
    region_cols: u64,
) -> KernelCost {
    let pe = &fabric.pe;
    let router = &fabric.router;
    let pes = region_rows * region_cols;
    let t_r = p.rows.div_ceil(region_rows);
    let elements_pe = t_r * p.cols.div_ceil(region_cols);
    let elements = (p.rows * p.cols).max(1) as u128;
    let flops_pe = (p.flops * elements_pe as u128).div_ceil(elements) as u64;
    let bytes_pe = (p.bytes as u128 * elements_pe as u128).div_ceil(elements) as u64;
    let simd_cycles = flops_pe.div_ceil(pe.simd_fp16_lanes);
    let sram_cycles = bytes_pe.div_ceil(pe.sram_read_bytes_per_cycle);
    let work = simd_cycles.max(sram_cycles);
    let reduction = if p.row_reduction && region_cols > 1 {
        // Tree all-reduce of 2 values per local token: up and down log2(C) levels, each level a
        // task activation and a ramp, plus the farthest hop distance, plus the values at link rate.
        let levels = 64 - (region_cols - 1).leading_zeros() as u64;
        2 * (2 * t_r + levels * (router.ramp_latency_cycles + pe.task_activation_cycles))
            + region_cols * router.hop_latency_cycles
    } else {
        0
    };
    let cycles = pe.task_activation_cycles + work + reduction;
    let ideal = (p.flops).div_ceil(pe.simd_fp16_lanes as u128 * pes as u128) as u64;
    // An input and an output block of the PE's elements.
    let sram = 2 * elements_pe * pe.operand_bytes;
    let busy = pe.task_activation_cycles + work;
    KernelCost::split(cycles, ideal, 0, reduction, sram, (busy, busy))
}
