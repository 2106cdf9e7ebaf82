//! GEMM on a region, DOMAIN.md §2's reference mapping.
//!
//! `Y[t×n] = X[t×k]·W[k×n]` on `rows × (c_k·c_n)` PEs: PE (r, c) holds `t/rows` rows of X and a
//! `k/c_k` slice of its features; column group j owns `n/c_n` output columns. For each output
//! column the weight's non-zeros of that column's slice arrive down the PE column, one wavelet
//! each (sparse: value + index; dense: two values), and each arrival triggers an FMAC over the
//! local rows. Then the `t/rows` partial sums are reduced along the row over the `c_k` PEs of the
//! group, overlapping the next column's FMACs.

use serde::Serialize;

use super::{expected_binomial_max, KernelCost};
use crate::spec::FabricSpec;

/// Which operand streams and what the output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GemmForm {
    /// X resident, W (or Wᵀ for dgrad) streams in: forward and dgrad.
    Streamed,
    /// Both operands resident; only the weight's non-zero positions are computed (wgrad): a dot
    /// product over the local rows per non-zero, then a reduction down the PE column.
    AtNonzeros,
    /// Both operands are activations already on the wafer (attention): the second is multicast
    /// on-fabric, dense.
    Activations,
}

/// The shape of one GEMM and its weight's density.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GemmProblem {
    pub form: GemmForm,
    /// Independent products (attention: sequences × heads); 1 otherwise.
    pub batch: u64,
    pub t: u64,
    pub k: u64,
    pub n: u64,
    /// Non-zeros of the k×n weight (k·n when dense).
    pub nonzeros: u64,
    pub sparse: bool,
}

/// How the region's columns are split between K and N, and how many rows it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct GemmTile {
    pub rows: u64,
    pub c_k: u64,
    pub c_n: u64,
}

impl GemmTile {
    pub fn columns(&self) -> u64 {
        self.c_k * self.c_n
    }
}

/// Bytes of one partial sum on the fabric: fp32, one per wavelet.
const PARTIAL_SUM_BYTES: u64 = 4;

/// Cycles of a GEMM on `tile`, split into categories; `region_pes` is what "ideal" is measured
/// against (the fabric's whole user region for full-wafer steps, the tile for kernel runs).
pub fn gemm_cost(
    fabric: &FabricSpec,
    p: &GemmProblem,
    tile: &GemmTile,
    region_pes: u64,
) -> KernelCost {
    let pe = &fabric.pe;
    let router = &fabric.router;
    let simd = pe.simd_fp16_lanes;
    // Attention's independent products run side by side, one per tile, in rounds.
    let rounds = match p.form {
        GemmForm::Activations => p
            .batch
            .div_ceil((region_pes / (tile.rows * tile.columns())).max(1)),
        _ => 1,
    };
    let rows_total = if p.form == GemmForm::Activations {
        p.t
    } else {
        p.batch * p.t
    };
    let t_r = rows_total.div_ceil(tile.rows);
    let k_c = p.k.div_ceil(tile.c_k);
    let n_g = p.n.div_ceil(tile.c_n);
    let density = p.nonzeros as f64 / (p.k * p.n) as f64;
    let passes = t_r.div_ceil(simd);
    let columns = tile.columns();
    let act = pe.task_activation_cycles;
    let ab = 2u64; // fp16 activations on the fabric

    let (column_cycles_max, column_cycles_mean, reduction_link, sram) = match p.form {
        GemmForm::Streamed | GemmForm::Activations => {
            let (per_wavelet, wavelets_mean, wavelets_max) = if p.sparse {
                let mean = (k_c * n_g) as f64 * density;
                let max = expected_binomial_max(k_c * n_g, density, columns);
                (act + pe.sparse_index_decode_cycles + passes, mean, max)
            } else {
                let w = (n_g * k_c.div_ceil(2)) as f64;
                (act + 2 * passes, w, w)
            };
            let reduction = if tile.c_k > 1 { n_g * t_r } else { 0 };
            let sram = t_r * k_c * ab + 2 * t_r * PARTIAL_SUM_BYTES;
            (
                (wavelets_max * per_wavelet as f64).ceil() as u64,
                (wavelets_mean * per_wavelet as f64).ceil() as u64,
                reduction,
                sram,
            )
        }
        GemmForm::AtNonzeros => {
            // Per non-zero: a dot product over the local rows, then one partial sum down the column.
            let per_nonzero = act + passes;
            let mean = (k_c * n_g) as f64 * density;
            let max = expected_binomial_max(k_c * n_g, density, columns);
            let reduction = if tile.rows > 1 { max.ceil() as u64 } else { 0 };
            let sram = t_r * (k_c + n_g) * ab;
            (
                (max * per_nonzero as f64).ceil() as u64,
                (mean * per_nonzero as f64).ceil() as u64,
                reduction,
                sram,
            )
        }
    };
    // The reduction runs beside the FMACs; the slower of the two paces the kernel. Then the last
    // reduction drains along the chain, and the first wavelet needs to cross the region.
    let fill = router.ramp_latency_cycles + tile.rows * router.hop_latency_cycles;
    let drain = match p.form {
        GemmForm::AtNonzeros => tile.rows * (router.hop_latency_cycles + 1),
        _ => t_r + tile.c_k * (router.hop_latency_cycles + 1),
    };
    let body = column_cycles_max.max(reduction_link);
    let cycles = rounds * (body + fill + drain);

    let fmacs = fmac_ops(p);
    let compute = fmacs.div_ceil(simd * region_pes);
    let imbalance = rounds * column_cycles_max.saturating_sub(column_cycles_mean);
    let reduction = rounds * (reduction_link.saturating_sub(column_cycles_max) + drain);
    // Busy: FMAC tasks on the tile's PEs, once per independent product (the reduction's adds
    // run on another microthread).
    let products = if p.form == GemmForm::Activations {
        p.batch
    } else {
        1
    };
    let tile_pes = tile.rows * columns;
    let busy_mean = (products as u128 * tile_pes as u128 * column_cycles_mean as u128
        / region_pes.max(1) as u128) as u64;
    let busy_max = rounds * column_cycles_max;
    KernelCost::split(
        cycles,
        compute,
        imbalance,
        reduction,
        sram,
        (busy_mean, busy_max),
    )
}

/// FMACs (multiply-adds) the GEMM executes: rows × non-zeros.
pub fn fmac_ops(p: &GemmProblem) -> u64 {
    p.batch * p.t * p.nonzeros
}
