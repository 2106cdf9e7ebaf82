//! Element-wise ops (LayerNorm, softmax, GeLU, residual, loss, embedding) over the region, as
//! the engine's element-wise kernel runs them (`engine::kernels::elementwise`, whose module doc
//! gives the timing this follows term by term).
//!
//! Tokens are spread over the PE rows and features over the PE columns, as the activations of a
//! weight-streaming step are. Each PE runs a pass over its block at SIMD rate or SRAM bandwidth,
//! whichever is slower; ops that normalise over a row (LayerNorm, softmax, the loss) then
//! all-reduce their per-token statistics along the PE row — by the same collective, chain or
//! tree, on the same colors as the engine — and run a second pass.

use serde::Serialize;

use super::collective::{collective_cycles, CollectiveAlgo, CollectiveKind};
use super::KernelCost;
use crate::engine::kernels::collective::Algo;
use crate::engine::kernels::elementwise::{elementwise_colors, ElementwiseConfig, STATISTIC_BYTES};
use crate::graph::ElementwiseProfile;
use crate::spec::FabricSpec;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ElementwiseProblem {
    pub rows: u64,
    pub cols: u64,
    /// FLOPs before the row all-reduce (all of them without one) and after it.
    pub flops_before: u128,
    pub flops_after: u128,
    /// Activation bytes read and written; every pass streams them through SRAM once.
    pub bytes: u64,
    /// Values per row (token) all-reduced along the PE row between the passes; 0: none.
    pub reduced_values_per_row: u64,
    /// The all-reduce's algorithm; `None`: the one [`row_allreduce_algo`] picks.
    pub algo: Option<Algo>,
}

impl ElementwiseProblem {
    /// The problem of an engine kernel (what `validate` and `kernel --fidelity model` cost).
    pub fn of_config(cfg: &ElementwiseConfig) -> Self {
        let elements = cfg.rows as u128 * cfg.cols as u128;
        ElementwiseProblem {
            rows: cfg.rows,
            cols: cfg.cols,
            flops_before: cfg.flops_before_per_element as u128 * elements,
            flops_after: cfg.flops_after_per_element as u128 * elements,
            bytes: u64::try_from(cfg.bytes_per_element as u128 * elements).unwrap_or(u64::MAX),
            reduced_values_per_row: cfg.reduced_values_per_row,
            algo: Some(cfg.algo),
        }
    }
}

/// The engine kernel of an op of `profile` over `rows × cols` on a `region`, with activations
/// of `pe.operand_bytes` and the row all-reduce [`row_allreduce_algo`] picks.
pub fn elementwise_config(
    fabric: &FabricSpec,
    profile: &ElementwiseProfile,
    (rows, cols): (u64, u64),
    region: (u32, u32),
) -> ElementwiseConfig {
    let tokens_max = rows.div_ceil(u64::from(region.0).max(1));
    let values = profile.reduced_values_per_row;
    ElementwiseConfig {
        rows,
        cols,
        region,
        flops_before_per_element: profile.flops_before_per_element as u64,
        flops_after_per_element: profile.flops_after_per_element as u64,
        bytes_per_element: profile.tensors as u64 * fabric.pe.operand_bytes,
        reduced_values_per_row: values,
        algo: row_allreduce_algo(fabric, values, u64::from(region.1), values * tokens_max),
        values: false,
    }
}

/// The row all-reduce of `b` values over `p` PEs an element-wise op runs: the faster of chain
/// and tree (by the collectives' model, which `validate` holds to the engine) among those whose
/// colors the fabric leaves kernels; the chain on a tie, or when neither fits (the plan's color
/// check then refuses it). Latencies decide, never a throughput key.
pub fn row_allreduce_algo(fabric: &FabricSpec, values_per_row: u64, p: u64, b: u64) -> Algo {
    if values_per_row == 0 || b == 0 || p <= 1 {
        // Nothing to reduce: no all-reduce runs.
        return Algo::Chain;
    }
    let p32 = u32::try_from(p).unwrap_or(u32::MAX);
    [Algo::Chain, Algo::Tree]
        .into_iter()
        .filter(|&algo| {
            u64::from(elementwise_colors(values_per_row, algo, p32)) <= fabric.usable_colors()
        })
        .min_by_key(|&algo| collective_cycles(fabric, CollectiveKind::Allreduce, algo.into(), p, b))
        .unwrap_or(Algo::Chain)
}

/// Colors an element-wise op of `p` on a region `region_cols` PEs wide routes.
pub fn elementwise_op_colors(
    fabric: &FabricSpec,
    p: &ElementwiseProblem,
    region_rows: u64,
    region_cols: u64,
) -> u64 {
    let b = p.reduced_values_per_row * p.rows.div_ceil(region_rows.max(1));
    let algo = p
        .algo
        .unwrap_or_else(|| row_allreduce_algo(fabric, p.reduced_values_per_row, region_cols, b));
    let cols = u32::try_from(region_cols).unwrap_or(u32::MAX);
    u64::from(elementwise_colors(p.reduced_values_per_row, algo, cols))
}

/// Cycles of an element-wise op on a `region_rows × region_cols` PE region.
pub fn elementwise_cost(
    fabric: &FabricSpec,
    p: &ElementwiseProblem,
    region_rows: u64,
    region_cols: u64,
) -> KernelCost {
    let pe = &fabric.pe;
    let ramp = fabric.router.ramp_latency_cycles;
    let pes = region_rows * region_cols;
    let tokens_max = p.rows.div_ceil(region_rows);
    let elements_max = tokens_max * p.cols.div_ceil(region_cols);
    let two_passes = p.reduced_values_per_row > 0;
    let b = p.reduced_values_per_row * tokens_max;
    let algo = p
        .algo
        .unwrap_or_else(|| row_allreduce_algo(fabric, p.reduced_values_per_row, region_cols, b));
    let reduction = if two_passes && region_cols > 1 {
        collective_cycles(
            fabric,
            CollectiveKind::Allreduce,
            CollectiveAlgo::from(algo),
            region_cols,
            b,
        )
    } else {
        0
    };
    let passes = |e: u64| -> u64 {
        let second = if two_passes {
            ramp + pass_cycles(fabric, p, p.flops_after, e)
        } else {
            0
        };
        pass_cycles(fabric, p, p.flops_before, e) + second
    };
    let cycles = ramp + passes(elements_max) + reduction;
    let ideal =
        (p.flops_before + p.flops_after).div_ceil(pe.simd_fp16_lanes as u128 * pes as u128) as u64;
    let sram = elements_max * p.bytes.div_ceil((p.rows * p.cols).max(1))
        + p.reduced_values_per_row * tokens_max * STATISTIC_BYTES;
    let busy = busy_cycles(
        fabric,
        p,
        (region_rows, region_cols),
        two_passes && region_cols > 1,
    );
    KernelCost::split(cycles, ideal, 0, reduction, sram, busy)
}

/// A pass of `flops` (of the whole op) on a PE of `e` elements: its activation, then SIMD rate
/// or the SRAM read port over the op's bytes, whichever binds.
fn pass_cycles(fabric: &FabricSpec, p: &ElementwiseProblem, flops: u128, e: u64) -> u64 {
    let pe = &fabric.pe;
    let elements = (p.rows as u128 * p.cols as u128).max(1);
    let per_pe = |total: u128| (total * e as u128).div_ceil(elements) as u64;
    let simd = per_pe(flops).div_ceil(pe.simd_fp16_lanes);
    let sram = per_pe(p.bytes as u128).div_ceil(pe.sram_read_bytes_per_cycle);
    pe.task_activation_cycles + simd.max(sram)
}

/// Mean and max busy cycles of the region's PEs: every PE's passes (blocks differ by a row or
/// a column of the tensor at most: four block sizes), and the all-reduce's core work, an
/// activation and one cycle per wavelet for each of the 2·(C − 1) streams a row's chain or tree
/// delivers.
fn busy_cycles(
    fabric: &FabricSpec,
    p: &ElementwiseProblem,
    (region_rows, region_cols): (u64, u64),
    reduces: bool,
) -> (u64, u64) {
    let a = fabric.pe.task_activation_cycles;
    let second = |e: u64| {
        if p.reduced_values_per_row > 0 {
            pass_cycles(fabric, p, p.flops_after, e)
        } else {
            0
        }
    };
    let passes = |e: u64| pass_cycles(fabric, p, p.flops_before, e) + second(e);
    // (slice length, how many slices have it) of rows over PE rows and columns over PE columns.
    let slices = |n: u64, parts: u64| [(n / parts + 1, n % parts), (n / parts, parts - n % parts)];
    let mut total: u128 = 0;
    for (tokens, row_count) in slices(p.rows, region_rows) {
        for (features, col_count) in slices(p.cols, region_cols) {
            let pes = (row_count * col_count) as u128;
            total += pes * passes(tokens * features) as u128;
        }
        if reduces {
            let streams = 2 * (region_cols - 1) as u128;
            total += row_count as u128 * streams * (a + p.reduced_values_per_row * tokens) as u128;
        }
    }
    let pes = (region_rows * region_cols).max(1) as u128;
    let mean = total.div_ceil(pes) as u64;
    let tokens_max = p.rows.div_ceil(region_rows);
    let streams_max = if reduces { 2 } else { 0 };
    let max = passes(tokens_max * p.cols.div_ceil(region_cols))
        + streams_max * (a + p.reduced_values_per_row * tokens_max);
    (mean, max)
}
