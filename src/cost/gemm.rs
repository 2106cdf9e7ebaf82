//! GEMM on a region, the reference sparse mapping described in `crate::engine::kernels::gemm`
//! (a reconstruction from public information: weights streamed down PE columns, one FMAC task per
//! non-zero, partial sums reduced along PE rows).
//!
//! `Y[t×n] = X[t×k]·W[k×n]` on `rows × (c_k·c_n)` PEs: PE (r, c) holds `t/rows` rows of X and a
//! `k/c_k` slice of its features; column group j owns `n/c_n` output columns. For each output
//! column the weight's non-zeros of that column's slice arrive down the PE column (sparse: value
//! and index; dense: packed values; `FabricSpec::packing`), and each arrival triggers an FMAC over the
//! local rows. Then the `t/rows` partial sums are reduced along the row over the `c_k` PEs of the
//! group, overlapping the next column's FMACs.

use serde::Serialize;

use super::{expected_binomial_max, KernelCost};
use crate::engine::kernels::gemm::{fmac_cycles, GemmForm as EngineForm, GemmLayout};
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
    /// Bytes of one streamed value (the weight's, or attention's second operand's): how the
    /// stream packs ([`FabricSpec::packing`]).
    pub value_bytes: u64,
}

impl GemmProblem {
    /// The problem and tile of a GEMM laid out for the engine's kernel, with `nonzeros` kept
    /// entries of its streamed weight: what `validate` and `kernel --fidelity model` evaluate.
    pub fn of_layout(layout: &GemmLayout, nonzeros: u64) -> (GemmProblem, GemmTile) {
        let problem = GemmProblem {
            form: if layout.form == EngineForm::Wgrad {
                GemmForm::AtNonzeros
            } else {
                GemmForm::Streamed
            },
            batch: 1,
            t: layout.t as u64,
            k: layout.k_in as u64,
            n: layout.n_out as u64,
            nonzeros,
            sparse: !layout.dense,
            value_bytes: layout.value_bytes,
        };
        let tile = GemmTile {
            rows: layout.rows as u64,
            c_k: layout.ck as u64,
            c_n: layout.cn as u64,
        };
        (problem, tile)
    }
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

/// Cycles of a GEMM on `tile`, split into categories; `region_pes` is what "ideal" is measured
/// against (the fabric's whole user region for full-wafer steps, the tile for kernel runs).
/// Load imbalance enters as the expected maximum of the random mask's per-PE non-zero counts.
pub fn gemm_cost(
    fabric: &FabricSpec,
    p: &GemmProblem,
    tile: &GemmTile,
    region_pes: u64,
) -> KernelCost {
    gemm_cost_with_counts(fabric, p, tile, region_pes, None)
}

/// As [`gemm_cost`], with the exact non-zeros each PE column receives per output column
/// (`counts[c][i]`, as `engine::kernels::gemm::GemmPlan::nonzeros_per_pe_column` gives them)
/// instead of their expected maximum.
pub fn gemm_cost_with_counts(
    fabric: &FabricSpec,
    p: &GemmProblem,
    tile: &GemmTile,
    region_pes: u64,
    counts: Option<&[Vec<u64>]>,
) -> KernelCost {
    let pe = &fabric.pe;
    let router = &fabric.router;
    let a = pe.task_activation_cycles;
    // Attention's independent products run side by side, one per tile, in rounds.
    let tile_pes = tile.rows * tile.columns();
    let (rounds, rows_total) = match p.form {
        GemmForm::Activations => (p.batch.div_ceil((region_pes / tile_pes).max(1)), p.t),
        _ => (1, p.batch * p.t),
    };
    let t_r = rows_total.div_ceil(tile.rows);
    let k_c = p.k.div_ceil(tile.c_k);
    let n_g = p.n.div_ceil(tile.c_n);
    let density = p.nonzeros as f64 / (p.k * p.n) as f64;
    let fmac = fmac_cycles(fabric, t_r);
    let partials = (t_r * pe.partial_sum_bytes).div_ceil(fabric.router.wavelet_bits / 8);
    // The last column's partial sums crossing the chain after the FMACs end.
    let chain_drain = if tile.c_k > 1 {
        (tile.c_k - 1) * (router.hop_latency_cycles + router.ramp_latency_cycles + 1) + partials
    } else {
        0
    };
    let (sram, mean_column, max_column, reduction_core);
    match p.form {
        GemmForm::Streamed | GemmForm::Activations => {
            // Per output column: the weight wavelets of the PE's K slice, then a control wavelet;
            // every PE but the chain's head also adds the partial sums of the previous column.
            // A task per non-zero (sparse) or packed group of values (dense), paced by its
            // wavelets when they outlast it (one per cycle down the column).
            let adds = if tile.c_k > 1 { a + partials } else { 0 };
            let packing = fabric.packing(p.value_bytes);
            let per_nonzero =
                (a + pe.sparse_index_decode_cycles + fmac).max(packing.wavelets_per_nonzero);
            let dense_column =
                (packing.dense_tasks(k_c) * a + k_c * fmac).max(packing.dense_wavelets(k_c));
            let column = |nnz: f64| -> f64 {
                if p.sparse {
                    nnz * per_nonzero as f64 + a as f64
                } else {
                    (dense_column + a) as f64
                }
            };
            let (mean, max) = match counts {
                Some(counts) => {
                    let chain = Chain {
                        adds,
                        partials,
                        latency: router.hop_latency_cycles + router.ramp_latency_cycles,
                        control: a,
                    };
                    paced_by_counts(counts, tile, |nnz| column(nnz as f64), &chain)
                }
                None => {
                    // The busiest PE's total: n_g columns of binomial(k_c, density) wavelets each,
                    // its expected maximum over the tile's columns; the chain adds one column's
                    // reduction at the end.
                    let mean = n_g as f64 * (column(k_c as f64 * density) + adds as f64);
                    let wavelets_max = expected_binomial_max(n_g * k_c, density, tile.columns());
                    let extra = if p.sparse {
                        (wavelets_max - (n_g * k_c) as f64 * density) * per_nonzero as f64
                    } else {
                        0.0
                    };
                    (mean, mean + extra + chain_drain as f64)
                }
            };
            mean_column = mean;
            max_column = max;
            reduction_core = n_g * adds;
            sram = t_r * k_c * pe.operand_bytes + 2 * t_r * pe.accumulator_bytes;
        }
        GemmForm::AtNonzeros => {
            // Per non-zero (its index arrives down the column): a dot product over the local rows,
            // then, on every row but the first, one add of the partial coming from the north. A
            // dense weight's positions follow from the stream's order: no index to decode.
            let add = u64::from(tile.rows > 1);
            let decode = if p.sparse {
                pe.sparse_index_decode_cycles
            } else {
                0
            };
            let per_nonzero = (a + decode + fmac + add) as f64;
            let first_add = (add * a) as f64;
            let nnz_mean = (k_c * n_g) as f64 * density;
            let nnz_max = match counts {
                Some(counts) => counts
                    .iter()
                    .map(|c| c.iter().sum::<u64>())
                    .max()
                    .unwrap_or(0) as f64,
                None => expected_binomial_max(k_c * n_g, density, tile.columns()),
            };
            mean_column = nnz_mean * per_nonzero + first_add;
            max_column = nnz_max * per_nonzero + first_add;
            reduction_core = (nnz_max * add as f64).ceil() as u64;
            sram = t_r * (k_c + n_g) * pe.operand_bytes;
        }
    }
    let fill = router.ramp_latency_cycles + tile.rows * router.hop_latency_cycles;
    let drain = match p.form {
        GemmForm::AtNonzeros => {
            (tile.rows - 1) * (router.hop_latency_cycles + router.ramp_latency_cycles + 1)
        }
        _ => chain_drain,
    };
    // A streamed GEMM's paced body includes its row chain's drain; wgrad's column chain drains
    // after the last dot product.
    let body = max_column.ceil() as u64;
    let tail = if p.form == GemmForm::AtNonzeros {
        drain
    } else {
        0
    };
    let cycles = rounds * (body + fill + tail);

    let fmacs = fmac_ops(p);
    let compute = fmacs.div_ceil(pe.simd_fp16_lanes * region_pes);
    let imbalance = rounds * (max_column - mean_column).max(0.0).round() as u64;
    let reduction = rounds * (reduction_core + drain.min(body));
    // Busy: the tile's PEs, once per independent product.
    let products = if p.form == GemmForm::Activations {
        p.batch
    } else {
        1
    };
    let busy_mean =
        (products as f64 * tile_pes as f64 * mean_column / region_pes.max(1) as f64) as u64;
    let busy_max = rounds * body;
    KernelCost::split(
        cycles,
        compute,
        imbalance,
        reduction,
        sram,
        (busy_mean, busy_max),
    )
}

/// (mean PE's work, slowest N-group's time) from exact per-PE counts. A group's time follows
/// the engine's protocol column by column, for the row with the most tokens: PE g's FMACs of
/// column i start after its control task of column i − 1, and share the core with the adds of
/// column i − 1; the control task waits for the accumulator's second buffer (the previous
/// column's reduction done on that PE); the chain passes each column's partial sums east, one
/// stage per PE.
fn paced_by_counts(
    counts: &[Vec<u64>],
    tile: &GemmTile,
    column: impl Fn(u64) -> f64,
    chain: &Chain,
) -> (f64, f64) {
    let c_k = tile.c_k as usize;
    let own = |c: usize| -> f64 {
        let adds = if !c.is_multiple_of(c_k) {
            chain.adds as f64
        } else {
            0.0
        };
        counts[c].iter().map(|&nnz| column(nnz) + adds).sum()
    };
    let mean = (0..counts.len()).map(own).sum::<f64>() / counts.len().max(1) as f64;
    let slowest = (0..tile.c_n as usize)
        .map(|g_n| chain.group_time(&counts[g_n * c_k..(g_n + 1) * c_k], &column))
        .fold(0.0, f64::max);
    (mean, slowest)
}

/// The reduction chain of a row: what each stage costs.
struct Chain {
    /// Core cycles a non-head PE spends adding one column's partial sums (`a + W_r`).
    adds: u64,
    /// Partial-sum wavelets per column (`W_r`).
    partials: u64,
    /// Cycles from a PE sending a partial sum to the next PE's core having it (`hop + ramp`).
    latency: u64,
    /// The control task (`a`).
    control: u64,
}

impl Chain {
    /// The time until the last PE of the chain holds the group's last output column.
    // Indexed by (K-group, column) over three parallel arrays: clearer than zipped iterators.
    #[allow(clippy::needless_range_loop)]
    fn group_time(&self, members: &[Vec<u64>], column: &impl Fn(u64) -> f64) -> f64 {
        let k = members.len();
        let columns = members[0].len();
        let (mut ctrl_end, mut red_done) = (vec![0.0f64; k], vec![0.0f64; k]);
        for i in 0..columns {
            let mut previous_start = 0.0f64;
            for g in 0..k {
                let adds = if g > 0 { self.adds as f64 } else { 0.0 };
                // FMACs of column i (the control wavelet is part of `column`), sharing the core
                // with the previous column's adds.
                let fmac_end = ctrl_end[g] + column(members[g][i]) - self.control as f64 + adds;
                ctrl_end[g] = fmac_end.max(red_done[g]) + self.control as f64;
                let start = if g == 0 {
                    ctrl_end[g]
                } else {
                    ctrl_end[g].max(previous_start + self.latency as f64 + 1.0)
                };
                red_done[g] = match (k, g) {
                    (1, _) => ctrl_end[g], // a single K-group holds its outputs: no reduction
                    (_, 0) => start + self.partials as f64,
                    _ => start + adds,
                };
                previous_start = start;
            }
        }
        red_done.iter().copied().fold(0.0, f64::max)
    }
}

/// FMACs (multiply-adds) the GEMM executes: rows × non-zeros.
pub fn fmac_ops(p: &GemmProblem) -> u64 {
    p.batch * p.t * p.nonzeros
}
