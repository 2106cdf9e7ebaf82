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

use super::{collective_cycles, CollectiveAlgo, CollectiveKind, KernelCost};
pub use crate::engine::kernels::attention::AttentionLayout;
use crate::engine::kernels::gemm::{fmac_cycles, GemmForm as EngineForm, GemmLayout};
use rayon::prelude::*;

use crate::sparsity::{Pattern, PeColumnCounts};
use crate::spec::FabricSpec;

/// Which operand streams and what the output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
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
    /// The weight's mask structure, which sets how unevenly its non-zeros fall on the PEs.
    pub pattern: Pattern,
    /// The `k × n` matrix is the weight's transpose (dgrad streams `Wᵀ`): the pattern's input
    /// axis runs along `n`.
    pub transposed: bool,
}

impl GemmProblem {
    /// The expected non-zeros of the busiest PE's `k_c × n_g` slice of the streamed weight
    /// ([`Pattern::slice_max`]).
    fn slice_max(&self, k_c: u64, n_g: u64, tile: &GemmTile, density: f64) -> f64 {
        self.pattern.slice_max(
            self.transposed,
            (self.k, self.n),
            (k_c, n_g),
            (tile.c_k, tile.c_n),
            density,
        )
    }

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
            pattern: layout.pattern,
            transposed: layout.form == EngineForm::Dgrad,
        };
        let tile = GemmTile {
            rows: layout.rows as u64,
            c_k: layout.ck as u64,
            c_n: layout.cn as u64,
            tiles: 1,
        };
        (problem, tile)
    }

    /// The problem and tile of `layout.products` attention products laid out for the engine's
    /// kernel: what `validate` and `kernel attention --fidelity model` evaluate.
    pub fn of_attention(layout: &AttentionLayout, value_bytes: u64) -> (GemmProblem, GemmTile) {
        let problem = GemmProblem {
            form: GemmForm::Activations,
            batch: layout.products,
            t: layout.t as u64,
            k: layout.k as u64,
            n: layout.n as u64,
            nonzeros: layout.k as u64 * layout.n as u64,
            sparse: false,
            value_bytes,
            pattern: Pattern::Random,
            transposed: false,
        };
        let tile = GemmTile {
            rows: layout.tile_rows as u64,
            c_k: layout.ck as u64,
            c_n: layout.cn as u64,
            tiles: layout.tiles(),
        };
        (problem, tile)
    }
}

/// The cost model of attention products laid out for the engine's kernel on `region`, one
/// shape after the other, and their FMACs: what `validate` and `kernel attention --fidelity
/// model` evaluate.
pub fn attention_layouts_cost(
    fabric: &FabricSpec,
    layouts: &[AttentionLayout],
    region: (u32, u32),
) -> (KernelCost, u64) {
    let region_pes = region.0 as u64 * region.1 as u64;
    let mut total = KernelCost::default();
    let mut fmacs = 0;
    for layout in layouts {
        let (problem, tile) = GemmProblem::of_attention(layout, fabric.pe.operand_bytes);
        total = total.then(&gemm_cost(fabric, &problem, &tile, region_pes));
        fmacs += fmac_ops(&problem);
    }
    (total, fmacs)
}

/// Which attention product: the scores `Q·Kᵀ` or `A·V`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttentionOp {
    Scores,
    Values,
}

/// The products `(t, k, n)` one (sequence, head) of an attention op runs, for a sequence of
/// `seq` tokens and heads of `head` features. Forward: scores `Q·Kᵀ` is `S×H · H×S`, `A·V`
/// is `S×S · S×H`. Backward (dgrad) computes both operands' gradients: the scores' are
/// `dQ = dS·K` and `dK = dSᵀ·Q` (both `S×S · S×H`), `A·V`'s are `dA = dO·Vᵀ` (`S×H · H×S`) and
/// `dV = Aᵀ·dO` (`S×S · S×H`). Every product has `S·S·H` multiply-adds.
pub fn attention_products(
    op: AttentionOp,
    dgrad: bool,
    seq: u64,
    head: u64,
) -> Vec<(u64, u64, u64)> {
    let scores_shaped = (seq, head, seq);
    let values_shaped = (seq, seq, head);
    match (op, dgrad) {
        (AttentionOp::Scores, false) => vec![scores_shaped],
        (AttentionOp::Values, false) => vec![values_shaped],
        (AttentionOp::Scores, true) => vec![values_shaped, values_shaped],
        (AttentionOp::Values, true) => vec![scores_shaped, values_shaped],
    }
}

/// How the region's columns are split between K and N, and how many rows it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct GemmTile {
    pub rows: u64,
    pub c_k: u64,
    pub c_n: u64,
    /// Tiles side by side on the region, one independent product each (attention); 1 otherwise.
    pub tiles: u64,
}

impl GemmTile {
    pub fn columns(&self) -> u64 {
        self.c_k * self.c_n
    }
}

/// Cycles of a GEMM on `tile`, split into categories; `region_pes` is what "ideal" is measured
/// against (the fabric's whole user region for full-wafer steps, the tile for kernel runs).
/// Load imbalance enters as the expected maximum of the mask's per-PE non-zero counts
/// ([`Pattern::slice_max`]).
pub fn gemm_cost(
    fabric: &FabricSpec,
    p: &GemmProblem,
    tile: &GemmTile,
    region_pes: u64,
) -> KernelCost {
    gemm_cost_with_counts(fabric, p, tile, region_pes, None)
}

/// Rows of a tile by their token count: `[(t_r, rows), (t_r, rows)]`, the longer slices first
/// (as `split_range` deals `rows_total` tokens: `rows_total mod rows` rows get one more).
fn row_classes(rows_total: u64, rows: u64) -> [(u64, u64); 2] {
    let rows = rows.max(1);
    let (short, long_rows) = (rows_total / rows, rows_total % rows);
    if long_rows == 0 {
        [(short, rows), (short, 0)]
    } else {
        [(short + 1, long_rows), (short, rows - long_rows)]
    }
}

/// One row class's figures: its mean PE's work and the slowest PE's time (both over the
/// whole kernel, one product), the reduction the compute does not hide, and SRAM.
struct RowWork {
    /// The mean PE's work as the imbalance category measures it (every PE of the row with the
    /// largest K and N slices).
    mean: f64,
    /// The mean PE's busy cycles, exactly: slices of K and N as the kernel deals them (Σ N_g
    /// is N), the chain's adds on its non-head PEs only.
    busy: f64,
    max: f64,
    reduction_core: u64,
    sram: u64,
    /// Each PE column's busy cycles, from exact counts (empty without them).
    columns: Vec<f64>,
}

/// As [`gemm_cost`], with the exact non-zeros each PE column receives per output column
/// (as `engine::kernels::gemm::GemmPlan::nonzeros_per_pe_column` gives them)
/// instead of their expected maximum.
pub fn gemm_cost_with_counts(
    fabric: &FabricSpec,
    p: &GemmProblem,
    tile: &GemmTile,
    region_pes: u64,
    counts: Option<&PeColumnCounts>,
) -> KernelCost {
    gemm_cost_and_column_busy(fabric, p, tile, region_pes, counts).0
}

/// [`gemm_cost_with_counts`], and each PE column's busy cycles on the rows with the most tokens
/// from the exact counts (empty without them, and for attention's products): how a mask spreads
/// the op's work over its tile's columns, which the utilisation heatmaps draw.
pub fn gemm_cost_and_column_busy(
    fabric: &FabricSpec,
    p: &GemmProblem,
    tile: &GemmTile,
    region_pes: u64,
    counts: Option<&PeColumnCounts>,
) -> (KernelCost, Vec<f64>) {
    if p.form == GemmForm::Activations {
        return (attention_cost(fabric, p, tile, region_pes), Vec::new());
    }
    let router = &fabric.router;
    let classes = row_classes(p.batch * p.t, tile.rows);
    // The rows with the most tokens pace the kernel; every row counts in the mean PE's work
    // (rows of one token fewer may need a FMAC pass fewer per value: 4 tokens take one
    // 4-lane pass, 5 take two).
    let busiest = row_work(fabric, p, tile, classes[0].0, counts, true);
    let mean_all = classes
        .iter()
        .filter(|(_, rows)| *rows > 0)
        .map(|&(t_r, rows)| {
            let work = if t_r == classes[0].0 {
                busiest.busy
            } else {
                row_work(fabric, p, tile, t_r, counts, false).busy
            };
            work * rows as f64
        })
        .sum::<f64>()
        / tile.rows.max(1) as f64;
    let t_r = classes[0].0;
    let partials = (t_r * fabric.pe.partial_sum_bytes).div_ceil(router.wavelet_bits / 8);
    let fill = router.ramp_latency_cycles + tile.rows * router.hop_latency_cycles;
    let drain = match p.form {
        GemmForm::AtNonzeros => {
            (tile.rows - 1) * (router.hop_latency_cycles + router.ramp_latency_cycles + 1)
        }
        _ => chain_drain(fabric, tile, partials),
    };
    // A streamed GEMM's paced body includes its row chain's drain; wgrad's column chain drains
    // after the last dot product.
    let body = busiest.max.ceil() as u64;
    let tail = if p.form == GemmForm::AtNonzeros {
        drain
    } else {
        0
    };
    let cycles = body + fill + tail;
    let compute = fmac_ops(p).div_ceil(fabric.pe.simd_fp16_lanes * region_pes);
    // Imbalance is the random mask's: the busiest rows' slowest PE over their mean PE.
    let imbalance = (busiest.max - busiest.mean).max(0.0).round() as u64;
    let reduction = busiest.reduction_core + drain.min(body);
    let tile_pes = tile.rows * tile.columns();
    let busy_mean = (tile_pes as f64 * mean_all / region_pes.max(1) as f64) as u64;
    let cost = KernelCost::split(
        cycles,
        compute,
        imbalance,
        reduction,
        busiest.sram,
        (busy_mean, body),
    );
    (cost, busiest.columns)
}

/// The last column's partial sums crossing a row's chain after the FMACs end.
fn chain_drain(fabric: &FabricSpec, tile: &GemmTile, partials: u64) -> u64 {
    let router = &fabric.router;
    if tile.c_k > 1 {
        (tile.c_k - 1) * (router.hop_latency_cycles + router.ramp_latency_cycles + 1) + partials
    } else {
        0
    }
}

/// The work of a PE row with `t_r` tokens, forward and dgrad (streamed) or wgrad. `pace`: its
/// slowest PE's time is wanted too (from exact counts that walks every column's chain: only
/// the busiest rows pace the kernel).
fn row_work(
    fabric: &FabricSpec,
    p: &GemmProblem,
    tile: &GemmTile,
    t_r: u64,
    counts: Option<&PeColumnCounts>,
    pace: bool,
) -> RowWork {
    let pe = &fabric.pe;
    let router = &fabric.router;
    let a = pe.task_activation_cycles;
    let k_c = p.k.div_ceil(tile.c_k);
    let n_g = p.n.div_ceil(tile.c_n);
    let density = p.nonzeros as f64 / (p.k * p.n) as f64;
    let fmac = fmac_cycles(fabric, t_r);
    let partials = (t_r * pe.partial_sum_bytes).div_ceil(router.wavelet_bits / 8);
    if p.form == GemmForm::AtNonzeros {
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
        let busy = p.nonzeros as f64 / tile.columns() as f64 * per_nonzero + first_add;
        let nnz_max = match counts {
            Some(counts) => (0..counts.len())
                .map(|c| counts.total(c))
                .max()
                .unwrap_or(0) as f64,
            None => p.slice_max(k_c, n_g, tile, density),
        };
        return RowWork {
            mean: nnz_mean * per_nonzero + first_add,
            busy: match counts {
                Some(counts) => {
                    let nnz = counts.sum();
                    nnz as f64 / counts.len().max(1) as f64 * per_nonzero + first_add
                }
                None => busy,
            },
            max: nnz_max * per_nonzero + first_add,
            reduction_core: (nnz_max * add as f64).ceil() as u64,
            sram: t_r * (k_c + n_g) * pe.operand_bytes,
            columns: counts.map_or_else(Vec::new, |counts| {
                (0..counts.len())
                    .map(|c| counts.total(c) as f64 * per_nonzero + first_add)
                    .collect()
            }),
        };
    }
    // Per output column: the weight wavelets of the PE's K slice, then a control wavelet;
    // every PE but the chain's head also adds the partial sums of the previous column.
    // A task per non-zero (sparse) or packed group of values (dense), paced by its
    // wavelets when they outlast it (one per cycle down the column).
    let adds = if tile.c_k > 1 { a + partials } else { 0 };
    let packing = fabric.packing(p.value_bytes);
    let per_nonzero = (a + pe.sparse_index_decode_cycles + fmac).max(packing.wavelets_per_nonzero);
    let dense_column = (packing.dense_tasks(k_c) * a + k_c * fmac).max(packing.dense_wavelets(k_c));
    let column = |nnz: f64| -> f64 {
        if p.sparse {
            nnz * per_nonzero as f64 + a as f64
        } else {
            (dense_column + a) as f64
        }
    };
    let (mean, max, columns) = match counts {
        Some(counts) => {
            let chain = Chain {
                adds,
                partials,
                latency: router.hop_latency_cycles + router.ramp_latency_cycles,
                control: a,
            };
            paced_by_counts(counts, |nnz| column(nnz as f64), &chain, pace)
        }
        None => {
            // The busiest PE's total: n_g columns of binomial(k_c, density) wavelets each,
            // its expected maximum over the tile's columns; the chain adds one column's
            // reduction at the end.
            let mean = n_g as f64 * (column(k_c as f64 * density) + adds as f64);
            let wavelets_max = p.slice_max(k_c, n_g, tile, density);
            let extra = if p.sparse {
                (wavelets_max - (n_g * k_c) as f64 * density) * per_nonzero as f64
            } else {
                0.0
            };
            let drain = chain_drain(fabric, tile, partials);
            (mean, mean + extra + drain as f64, Vec::new())
        }
    };
    // Per output column, each PE's core: a task per non-zero (activation, decode, FMAC) or
    // per packed group of dense values, the control task, and on a chain's non-head PE the adds.
    let busy = match counts {
        Some(_) => mean,
        None => {
            let per_column: f64 = row_classes(p.k, tile.c_k)
                .iter()
                .map(|&(k_c, groups)| {
                    let values = if p.sparse {
                        k_c as f64 * density * (a + pe.sparse_index_decode_cycles + fmac) as f64
                    } else {
                        (packing.dense_tasks(k_c) * a + k_c * fmac) as f64
                    };
                    groups as f64 * (values + a as f64)
                })
                .sum::<f64>()
                + ((tile.c_k - 1) * adds) as f64;
            p.n as f64 / tile.columns() as f64 * per_column
        }
    };
    RowWork {
        mean,
        busy,
        max,
        reduction_core: n_g * adds,
        sram: t_r * k_c * pe.operand_bytes + 2 * t_r * pe.accumulator_bytes,
        columns,
    }
}

/// Attention's products on their tiles, as `engine::kernels::attention` runs them: products in
/// rounds over `tile.tiles` tiles; in a tile, every output column's slice of the second
/// operand is multicast by the PE row holding it, the rows taking turns, and streamed through
/// each PE's FMACs in one task; the GEMM's reduction chain along the rows.
fn attention_cost(
    fabric: &FabricSpec,
    p: &GemmProblem,
    tile: &GemmTile,
    region_pes: u64,
) -> KernelCost {
    let pe = &fabric.pe;
    let router = &fabric.router;
    let a = pe.task_activation_cycles;
    let rounds = p.batch.div_ceil(tile.tiles.max(1));
    let classes = row_classes(p.t, tile.rows);
    let t_r = classes[0].0;
    let k_c = p.k.div_ceil(tile.c_k);
    let partials_of = |t_r: u64| (t_r * pe.partial_sum_bytes).div_ceil(router.wavelet_bits / 8);
    let adds_of = |t_r: u64| {
        if tile.c_k > 1 {
            a + partials_of(t_r)
        } else {
            0
        }
    };
    let block = fabric.packing(p.value_bytes).dense_wavelets(k_c);
    // The busiest PE (a chain member of the longest rows) per slice; a holder pushes each
    // block out twice (down and up) through its ramp.
    let slice = (a + k_c * fmac_cycles(fabric, t_r) + adds_of(t_r)).max(2 * block);
    let bubble = 2 * router.hop_latency_cycles + router.ramp_latency_cycles;
    // A holder below the first row reads its own block's UP copy off its queue to drop it: it
    // falls behind the others by its own slices' drops (rows lag each on its own, so the
    // kernel waits for the row holding the most), and catches up in no later run.
    let row0_columns = p.n / tile.rows.max(1);
    let drop = if tile.rows > 1 { block } else { 0 };
    // The slowest N-group, in closed form (the mapper evaluates this for every candidate
    // tile): the most slices, and the most holders such a run of output columns can span (it
    // crosses at most ceil((N_g − 1)·R / N) row boundaries); a row holds at most ceil(N / R).
    let n_g = p.n.div_ceil(tile.c_n);
    let holders = n_g.min(((n_g - 1) * tile.rows).div_ceil(p.n) + 1);
    let changes = if holders > 1 { rounds * holders - 1 } else { 0 };
    let held_most = n_g.min(p.n.div_ceil(tile.rows));
    let paced = rounds * (n_g * slice + held_most * drop) + changes * bubble;
    let fill = router.ramp_latency_cycles + (tile.rows - 1) * router.hop_latency_cycles;
    let drain = chain_drain(fabric, tile, partials_of(t_r));
    let cycles = paced + fill + drain;
    // Every PE's work summed over a tile (exact: Σ over K-groups of K_c is K, over N-groups
    // of N_g is N), for every product.
    let tile_work: u64 = classes
        .iter()
        .map(|&(t_r, rows)| {
            let per_column =
                tile.c_k * a + p.k * fmac_cycles(fabric, t_r) + (tile.c_k - 1) * adds_of(t_r);
            rows * p.n * per_column
        })
        .sum::<u64>()
        + tile.c_k * (p.n - row0_columns) * drop;
    let busy_mean = (p.batch as u128 * tile_work as u128 / region_pes.max(1) as u128) as u64;
    let slices_max = rounds * p.n.div_ceil(tile.c_n);
    let busy_max = slices_max * (a + k_c * fmac_cycles(fabric, t_r) + adds_of(t_r));
    let compute = fmac_ops(p).div_ceil(pe.simd_fp16_lanes * region_pes);
    let reduction = slices_max * adds_of(t_r) + drain;
    let owned = p.n.div_ceil(tile.rows);
    let sram = t_r * k_c * pe.operand_bytes
        + 2 * t_r * pe.accumulator_bytes
        + owned * k_c * pe.operand_bytes;
    KernelCost::split(cycles, compute, 0, reduction, sram, (busy_mean, busy_max))
}

/// (mean PE's work, slowest N-group's time) from exact per-PE counts. A group's time follows
/// the engine's protocol column by column, for the row with the most tokens: PE g's FMACs of
/// column i start after its control task of column i − 1, and share the core with the adds of
/// column i − 1; the control task waits for the accumulator's second buffer (the previous
/// column's reduction done on that PE); the chain passes each column's partial sums east, one
/// stage per PE.
fn paced_by_counts(
    counts: &PeColumnCounts,
    column: impl Fn(u64) -> f64 + Sync,
    chain: &Chain,
    pace: bool,
) -> (f64, f64, Vec<f64>) {
    let c_k = counts.c_k();
    let own = |c: usize| -> f64 {
        let adds = if !c.is_multiple_of(c_k) {
            chain.adds as f64
        } else {
            0.0
        };
        counts
            .column(c)
            .iter()
            .map(|&nnz| column(u64::from(nnz)) + adds)
            .sum()
    };
    let columns: Vec<f64> = (0..counts.len()).map(own).collect();
    let mean = columns.iter().sum::<f64>() / counts.len().max(1) as f64;
    if !pace {
        return (mean, mean, columns);
    }
    // The N-groups share nothing: their chains in parallel (a maximum is the same in any order).
    let slowest = (0..counts.len() / c_k)
        .into_par_iter()
        .map(|g_n| {
            let members: Vec<&[u32]> = (0..c_k).map(|g_k| counts.column(g_n * c_k + g_k)).collect();
            chain.group_time(&members, &column)
        })
        .reduce(|| 0.0, f64::max);
    (mean, slowest, columns)
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
    ///
    /// Column `i` on K-group `g` waits for column `i − 1` on `g` (its core) and for column `i`
    /// on `g − 1` (the partial sums it adds): a wavefront. It is walked [`WAVEFRONT_LANES`]
    /// K-groups at a time, group `g + j` one column behind group `g + j − 1`, so that their
    /// chains of dependent additions and maxima overlap in the processor, each group reading its
    /// counts in memory order; the previous block's start times are kept per column. Every
    /// value is the same expression of the same inputs as walking column by column: only the
    /// order differs. (A full-wafer chain is hundreds of groups over thousands of columns.)
    fn group_time(&self, members: &[&[u32]], column: &impl Fn(u64) -> f64) -> f64 {
        let k = members.len();
        let columns = members.first().map_or(0, |m| m.len());
        // starts[i]: when column i's partial sums left the last group walked.
        let mut starts = vec![0.0f64; columns];
        let mut last = 0.0f64;
        for first in (0..k).step_by(WAVEFRONT_LANES) {
            let lanes = (k - first).min(WAVEFRONT_LANES);
            // Per lane: (control task's end, reduction done) of its last column.
            let mut state = [(0.0f64, 0.0f64); WAVEFRONT_LANES];
            for step in 0..columns + lanes - 1 {
                // Lane j is at column step − j; it reads the start lane j − 1 left there on the
                // previous step, before lane j − 1 moves on (lanes in order).
                let lo = (step + 1).saturating_sub(columns);
                for (j, lane) in state
                    .iter_mut()
                    .enumerate()
                    .take(lanes.min(step + 1))
                    .skip(lo)
                {
                    let i = step - j;
                    let g = first + j;
                    starts[i] = self.cell(k, g, column(u64::from(members[g][i])), starts[i], lane);
                }
            }
            for &(_, red_done) in &state[..lanes] {
                last = last.max(red_done);
            }
        }
        last
    }

    /// One column on K-group `g` of `k`, whose FMACs take `fmacs` cycles (the control wavelet
    /// included), after the previous group started its partial sums at `previous_start`; the
    /// group's (control end, reduction done) move on. Returns this group's start.
    #[inline(always)]
    fn cell(
        &self,
        k: usize,
        g: usize,
        fmacs: f64,
        previous_start: f64,
        state: &mut (f64, f64),
    ) -> f64 {
        let (control, latency) = (self.control as f64, self.latency as f64);
        let adds = if g > 0 { self.adds as f64 } else { 0.0 };
        let (ctrl_end, red_done) = state;
        // The FMACs share the core with the previous column's adds.
        let fmac_end = *ctrl_end + fmacs - control + adds;
        *ctrl_end = fmac_end.max(*red_done) + control;
        let start = if g == 0 {
            *ctrl_end
        } else {
            ctrl_end.max(previous_start + latency + 1.0)
        };
        *red_done = match (k, g) {
            (1, _) => *ctrl_end, // a single K-group holds its outputs: no reduction
            (_, 0) => start + self.partials as f64,
            _ => start + adds,
        };
        start
    }
}

/// K-groups of a reduction chain priced side by side ([`Chain::group_time`]).
const WAVEFRONT_LANES: usize = 4;

/// The copies of its resident operands that a tile needs beyond the one the step leaves, as a
/// multicast along each PE row before the kernel starts; the engine's GEMM kernels start with
/// them in place (`engine::kernels::gemm`), so this is what a full-wafer step adds to
/// [`gemm_cost`], in the `reduction` category (on-fabric collective traffic).
///
/// The op that produced an activation left one copy of each row's `T_r` tokens, spread along the
/// row. A streamed GEMM (forward, dgrad) keeps `X[T_r, K_c]` on every PE of each of its `C_n`
/// N-groups, so with `C_n > 1` the row's `T_r · K` values must reach every group; a weight
/// gradient at its non-zeros keeps `X[T_r, K_c]` and `dY[T_r, N_g]`, copied to the `C_n`
/// N-groups and the `C_k` K-groups respectively. The copies of a row stream over the row's links
/// as one multicast block of `B` wavelets (its holders' slices interleaved, one wavelet per cycle
/// on a link): the engine's broadcast along `C` PEs, `(C − 1)·hop + ramp + a + B` cycles
/// (`collective_cycles`, held to the engine's broadcast kernel by the `collective_models` test).
/// Attention's products multicast their second operand inside the kernel: no copy.
pub fn operand_copy_cost(
    fabric: &FabricSpec,
    p: &GemmProblem,
    tile: &GemmTile,
    region_pes: u64,
) -> KernelCost {
    let t_r = (p.batch * p.t).div_ceil(tile.rows.max(1));
    let copied_values = match p.form {
        GemmForm::Activations => 0,
        GemmForm::Streamed => u64::from(tile.c_n > 1) * t_r * p.k,
        GemmForm::AtNonzeros => {
            u64::from(tile.c_n > 1) * t_r * p.k + u64::from(tile.c_k > 1) * t_r * p.n
        }
    };
    if copied_values == 0 {
        return KernelCost::default();
    }
    let wavelet_bytes = fabric.router.wavelet_bits / 8;
    let wavelets = (copied_values * fabric.pe.operand_bytes).div_ceil(wavelet_bytes);
    let columns = tile.columns();
    let cycles = collective_cycles(
        fabric,
        CollectiveKind::Broadcast,
        CollectiveAlgo::Chain,
        columns,
        wavelets,
    );
    // Each receiving core stores its own slice, one task and a cycle per wavelet: X[T_r, K_c]
    // on every PE outside the first N-group, dY[T_r, N_g] (weight gradient) on every PE outside
    // the first K-group.
    let stored = |values: u64| {
        fabric.pe.task_activation_cycles
            + (values * fabric.pe.operand_bytes).div_ceil(wavelet_bytes)
    };
    let x_receivers = tile.rows * tile.c_k * (tile.c_n - 1);
    let x_stored = stored(t_r * p.k.div_ceil(tile.c_k));
    let (dy_receivers, dy_stored) = if p.form == GemmForm::AtNonzeros && tile.c_k > 1 {
        let n_g = p.n.div_ceil(tile.c_n);
        (tile.rows * tile.c_n * (tile.c_k - 1), stored(t_r * n_g))
    } else {
        (0, 0)
    };
    let busy_total =
        x_receivers as u128 * x_stored as u128 + dy_receivers as u128 * dy_stored as u128;
    let busy_mean = (busy_total / region_pes.max(1) as u128) as u64;
    let busy_max = u64::from(x_receivers > 0) * x_stored + dy_stored;
    KernelCost::split(cycles, 0, 0, cycles, 0, (busy_mean, busy_max))
}

/// FMACs (multiply-adds) the GEMM executes: rows × non-zeros.
pub fn fmac_ops(p: &GemmProblem) -> u64 {
    p.batch * p.t * p.nonzeros
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chain walked column by column, every K-group in turn: the recurrence as written.
    fn group_time_by_columns(
        chain: &Chain,
        members: &[&[u32]],
        column: impl Fn(u64) -> f64,
    ) -> f64 {
        let k = members.len();
        let mut state = vec![(0.0, 0.0); k];
        #[allow(clippy::needless_range_loop)] // (column, group) over a table of slices
        for i in 0..members[0].len() {
            let mut previous_start = 0.0;
            for g in 0..k {
                let fmacs = column(u64::from(members[g][i]));
                previous_start = chain.cell(k, g, fmacs, previous_start, &mut state[g]);
            }
        }
        state.iter().map(|s| s.1).fold(0.0, f64::max)
    }

    #[test]
    fn the_wavefront_walk_is_the_column_by_column_walk_bit_for_bit() {
        let chain = Chain {
            adds: 7,
            partials: 5,
            latency: 3,
            control: 2,
        };
        let mut stream = crate::random::Stream::new(11);
        for k in [1, 2, 3, 4, 5, 8, 9, 13] {
            for columns in [0, 1, 2, 5, 40] {
                let table: Vec<Vec<u32>> = (0..k)
                    .map(|_| (0..columns).map(|_| stream.below(30) as u32).collect())
                    .collect();
                let members: Vec<&[u32]> = table.iter().map(Vec::as_slice).collect();
                let column = |nnz: u64| nnz as f64 * 3.5 + 2.0;
                let walked = chain.group_time(&members, &column);
                let reference = group_time_by_columns(&chain, &members, column);
                assert_eq!(
                    walked.to_bits(),
                    reference.to_bits(),
                    "{k} groups, {columns} columns"
                );
            }
        }
    }
}
