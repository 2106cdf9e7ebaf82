//! Placing one op of the step graph: its kernel, its tile, its cost and its I/O.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use serde::Serialize;

use crate::cost::{
    attention_products, elementwise_cost, elementwise_op_colors, fmac_ops, gemm_cost,
    gemm_cost_and_column_busy, operand_copy_cost, stream_bytes, stream_cycles, AttentionOp,
    ElementwiseProblem, GemmForm, GemmProblem, GemmTile, KernelCost, TimelineOp, WireWeight,
};
use crate::engine::kernels::attention::tile_grid;
use crate::graph::{elementwise_profile, Dims, Op, OpKind, Pass};
use crate::sparsity::Pattern;
use crate::spec::{FabricSpec, ModelSpec};

/// One op, placed: which tile it runs on, what it costs, what it streams.
#[derive(Debug, Clone, Serialize)]
pub struct OpPlan {
    pub name: String,
    pub kind: OpKind,
    pub pass: Pass,
    pub layer: Option<u64>,
    /// Whether the op multiplies by a sparse weight (its compute counts as sparse compute).
    pub sparse: bool,
    /// How its weight (or weight gradient) travels and is computed: `sparse` (value and index,
    /// one task per non-zero) or `dense` (packed values, zeros included, dense FMAC); `None`
    /// for an op that streams no weight matrix.
    pub weight_format: Option<WeightFormat>,
    /// The same op in the other wire format, while the mapper chooses between them
    /// (`map::wire::choose_formats`); `None` in a finished plan.
    #[serde(skip)]
    pub other_format: Option<Box<OpPlan>>,
    /// Whether the recipe masks the op's weight in sparse runs (true in the dense run too).
    pub sparsifiable: bool,
    /// The GEMM tile; element-wise ops use the whole region.
    pub tile: Option<GemmTile>,
    /// Standard deviation of a PE column's work relative to its mean (random-mask non-zeros).
    pub column_relative_sd: f64,
    /// Each PE column's work relative to the tile's mean (mean 1), from the mask's own per-PE
    /// counts (a mask read from a file); `None`: the heatmaps draw a spread of
    /// `column_relative_sd` instead.
    #[serde(skip)]
    pub column_work: Option<std::sync::Arc<Vec<f64>>>,
    /// Colors (virtual channels) the op's routes use on a PE.
    pub colors: u64,
    pub cost: KernelCost,
    pub io_in_bytes: u64,
    pub io_out_bytes: u64,
    pub io_in_cycles: u64,
    pub io_out_cycles: u64,
    pub flops_dense: u128,
    pub flops_executed: u128,
    /// A forward op run again in backward (activation checkpointing or selective recomputation):
    /// its cycles are the step's `recompute` category, its FLOPs not the model's.
    pub recompute: bool,
    /// Token chunks the op runs in, one after another (1: all of the microbatch's tokens at
    /// once), so that a chunk's working set fits beside the saved activations.
    pub token_chunks: u64,
    /// Vocabulary chunks an op of the LM head or loss runs in, one after another (1: the whole
    /// vocabulary at once; [`op_plan_vocab_chunked`]).
    pub vocab_chunks: u64,
    /// Activation checkpoints among `io_in_bytes` and `io_out_bytes`: streamed back from and out
    /// to the activation servers (the `offload` strategy).
    pub offload_in_bytes: u64,
    pub offload_out_bytes: u64,
}

impl OpPlan {
    /// The op as the step's timeline sees it: busy cycles and its streams.
    pub fn timeline_op(&self) -> TimelineOp {
        TimelineOp {
            cycles: self.cost.cycles,
            io_in_cycles: self.io_in_cycles,
            io_out_cycles: self.io_out_cycles,
        }
    }
}

/// How a weight travels on the wire and is computed on the PEs ([`FabricSpec::packing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightFormat {
    /// Each non-zero with its index, one FMAC task per non-zero: zeros are not sent, not
    /// stored, not computed.
    Sparse,
    /// Every element packed as dense values (a sparse weight's masked zeros included) and one
    /// task per packed group: no index to send or decode, but the zeros are multiplied.
    Dense,
}

impl WeightFormat {
    pub fn name(self) -> &'static str {
        match self {
            WeightFormat::Sparse => "sparse",
            WeightFormat::Dense => "dense",
        }
    }
}

/// Why no tile of an op fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The smallest working set among the tiles within the color budget, in bytes per PE.
    Sram(u64),
    /// Every tile routes more colors than the fabric leaves kernels: the fewest it needs.
    Colors(u64),
    /// Every split leaves a sparse weight's PE more K rows than its index addresses: the fewest.
    Index(u64),
}

/// Places `op` on the fabric's region with at most `working_bytes` of SRAM per PE for its tiles,
/// or says why no tile fits. An op on a sparse weight is placed in both wire formats: the sparse
/// one comes back with the dense one in `other_format` for the mapper to choose by the step's
/// timeline (`wire::choose_formats`); when only one fits, that one alone.
pub fn op_plan(
    fabric: &FabricSpec,
    model: &ModelSpec,
    op: &Op,
    working_bytes: u64,
) -> Result<OpPlan, Refusal> {
    let sparse_weight = op.kind == OpKind::Linear
        && op.pass.on_wafer()
        && op.weight.as_ref().is_some_and(|w| w.sparse);
    let place = |format| op_plan_as(fabric, model, op, working_bytes, format);
    if !sparse_weight {
        return place(WeightFormat::Dense);
    }
    match (place(WeightFormat::Sparse), place(WeightFormat::Dense)) {
        (Ok(mut sparse), Ok(dense)) => {
            sparse.other_format = Some(Box::new(dense));
            Ok(sparse)
        }
        (Ok(only), Err(_)) | (Err(_), Ok(only)) => Ok(only),
        // The sparse format's refusal: the one a sparse weight has always been given.
        (Err(why), Err(_)) => Err(why),
    }
}

/// Places `op` with its weight in `format` (a dense weight has only the dense one).
fn op_plan_as(
    fabric: &FabricSpec,
    model: &ModelSpec,
    op: &Op,
    working_bytes: u64,
    format: WeightFormat,
) -> Result<OpPlan, Refusal> {
    let region_rows = fabric.geometry.region_height_pes;
    let region_cols = fabric.geometry.region_width_pes;
    let value_bytes = model.architecture.weight_bytes;
    let weight = op.weight.as_ref();
    let sparse = weight.is_some_and(|w| w.sparse) && op.kind == OpKind::Linear;
    let sparse_format = sparse && format == WeightFormat::Sparse;
    let wire = weight
        .map(|w| {
            let wire = WireWeight {
                elements: w.elements(),
                nonzeros: w.nonzeros,
                sparse: w.sparse && sparse_format,
                extra: w.extra_params,
                value_bytes,
            };
            stream_bytes(fabric, &wire)
        })
        .unwrap_or(0);
    let (io_in_bytes, io_out_bytes) = match (op.kind, op.pass) {
        (OpKind::Embedding, Pass::Forward) => (op.activation_bytes, 0),
        (OpKind::Embedding, Pass::Wgrad) => (0, op.activation_bytes),
        (OpKind::Linear | OpKind::LmHead, Pass::Forward | Pass::Dgrad) => (wire, 0),
        (OpKind::LayerNorm, Pass::Forward) => (wire, 0),
        (OpKind::Linear | OpKind::LmHead | OpKind::LayerNorm, Pass::Wgrad) => (0, wire),
        _ => (0, 0),
    };
    if op.pass == Pass::Update {
        // The optimizer runs off-wafer on the gradients the wgrad ops streamed out.
        return Ok(placed(
            op,
            sparse,
            None,
            KernelCost::default(),
            (0, 0),
            fabric,
        ));
    }
    let mut column_relative_sd = 0.0;
    let mut column_work = None;
    let (tile, cost) = match gemm_problems(op, sparse_format, model) {
        Some(problems) => {
            // Products of one op run one after the other, each on its fastest tile.
            let mut placed_products = Vec::new();
            let mut column_busy = None;
            for problem in &problems {
                let (tile, mut cost) =
                    best_tile(fabric, problem, region_rows, region_cols, working_bytes)?;
                // The tile is chosen by the expected imbalance; a mask read from a file then
                // prices it with its own per-PE counts.
                if let Some(counts) = mask_counts(model, op, problem, &tile) {
                    let region_pes = region_rows * region_cols;
                    let (gemm, busy) = gemm_cost_and_column_busy(
                        fabric,
                        problem,
                        &tile,
                        region_pes,
                        Some(&counts),
                    );
                    if placed_products.is_empty() {
                        column_busy = Some(busy);
                    }
                    cost = gemm.then(&operand_copy_cost(fabric, problem, &tile, region_pes));
                }
                placed_products.push((tile, cost));
            }
            let (tile, _) = placed_products[0];
            let problem = &problems[0];

            // A mask without non-zeros leaves every column empty: no spread.
            if problem.sparse && problem.nonzeros > 0 {
                let (k_c, n_g) = (problem.k.div_ceil(tile.c_k), problem.n.div_ceil(tile.c_n));
                let per_column = (k_c * n_g) as f64;
                let density = problem.nonzeros as f64 / (problem.k * problem.n) as f64;
                column_relative_sd = match problem.pattern {
                    // A column of a random mask keeps binomial(k_c·n_g, density) weights.
                    Pattern::Random => ((1.0 - density) / (density * per_column)).sqrt(),
                    pattern => {
                        let (sigma, _) = pattern.spread(
                            problem.transposed,
                            (problem.k, problem.n),
                            (k_c, n_g),
                            (tile.c_k, tile.c_n),
                            density,
                        );
                        sigma / (per_column * density)
                    }
                };
            }
            let mut cost = placed_products
                .iter()
                .skip(1)
                .fold(placed_products[0].1, |sum, (_, c)| sum.then(c));
            if sparse && !sparse_format {
                let nonzeros = weight.map_or(0, |w| w.nonzeros);
                cost = zeros_as_overhead(fabric, cost, problem, nonzeros);
            }
            let tile_pes = (tile.rows * tile.columns()) as f64;
            let busy_per_pe = cost.busy_cycles_mean as f64 * (region_rows * region_cols) as f64;
            column_work = column_busy
                .filter(|busy| !busy.is_empty() && busy_per_pe > 0.0)
                .map(|busy| relative_column_work(&busy, busy_per_pe / tile_pes));
            (Some(tile), cost)
        }
        None => {
            let cost = elementwise_cost(fabric, &elementwise_problem(op), region_rows, region_cols);
            if cost.sram_bytes_per_pe > working_bytes {
                return Err(Refusal::Sram(cost.sram_bytes_per_pe));
            }
            (None, cost)
        }
    };
    let mut plan = placed(op, sparse, tile, cost, (io_in_bytes, io_out_bytes), fabric);
    plan.column_relative_sd = column_relative_sd;
    plan.column_work = column_work;
    if matches!(op.kind, OpKind::Linear | OpKind::LmHead) && weight.is_some() {
        plan.weight_format = Some(format);
    }
    if plan.colors > fabric.usable_colors() {
        return Err(Refusal::Colors(plan.colors));
    }
    Ok(plan)
}

/// Each PE column's share of an op's work (mean 1) from its GEMM's per-column busy cycles
/// (`busy`), when a tile PE is busy `per_pe` cycles in all on average: the work beyond the GEMM
/// (its operands' copies) spreads evenly.
fn relative_column_work(busy: &[f64], per_pe: f64) -> std::sync::Arc<Vec<f64>> {
    let gemm = busy.iter().sum::<f64>() / busy.len() as f64;
    let rest = per_pe - gemm;
    let shares = busy.iter().map(|b| ((b + rest) / per_pe).max(0.0));
    std::sync::Arc::new(shares.collect())
}

/// The non-zeros each PE column of `tile` receives per output column, from the mask read from a
/// file for `op`'s layer and weight (`None` without one, or for a problem the weight's mask does
/// not enter: dense formats, attention).
fn mask_counts(
    model: &ModelSpec,
    op: &Op,
    problem: &GemmProblem,
    tile: &GemmTile,
) -> Option<std::sync::Arc<crate::sparsity::PeColumnCounts>> {
    if !problem.sparse || problem.form == GemmForm::Activations {
        return None;
    }
    let kind = op.weight_kind()?;
    let tile = (tile.c_k as usize, tile.c_n as usize);
    if let Some(masks) = &model.recipe.masks {
        return masks.counts(op.layer?, kind, problem.transposed, tile);
    }
    // A random mask drawn from the run's seed: its counts for this weight kind, orientation and
    // tile (the forward and the weight gradient on one tile see the same). One draw for every
    // layer: the plan prices one layer's op for all the layers whose ops are alike, so the
    // layers share it (its mean is each layer's; its spread over seeds is one layer's, wider
    // than independent layers' would be).
    let seed = model.recipe.mask_seed?;
    if problem.pattern != Pattern::Random {
        return None;
    }
    let key = [
        seed,
        kind as u64,
        u64::from(problem.transposed),
        tile.0 as u64,
        tile.1 as u64,
        problem.nonzeros,
    ];
    let mut stream = crate::random::Stream::derived(&key);
    Some(std::sync::Arc::new(crate::sparsity::PeColumnCounts::drawn(
        problem.k as usize,
        problem.n as usize,
        problem.nonzeros,
        tile,
        &mut stream,
    )))
}

/// A sparse weight run dense multiplies its stored zeros too: work the FLOP count does not
/// have. Its compute is what the executed FLOPs (the `nonzeros`) need at full SIMD rate, as in
/// the sparse format, and the zeros' FMACs move to overhead, so the categories still add up.
fn zeros_as_overhead(
    fabric: &FabricSpec,
    cost: KernelCost,
    dense: &GemmProblem,
    nonzeros: u64,
) -> KernelCost {
    let executed = GemmProblem { nonzeros, ..*dense };
    let lanes = fabric.pe.simd_fp16_lanes * fabric.region_pes();
    let compute = fmac_ops(&executed).div_ceil(lanes);
    let zeros = cost.compute_cycles.saturating_sub(compute);
    KernelCost {
        compute_cycles: cost.compute_cycles - zeros,
        overhead_cycles: cost.overhead_cycles + zeros,
        ..cost
    }
}

fn placed(
    op: &Op,
    sparse: bool,
    tile: Option<GemmTile>,
    cost: KernelCost,
    (io_in_bytes, io_out_bytes): (u64, u64),
    fabric: &FabricSpec,
) -> OpPlan {
    OpPlan {
        name: op.name.clone(),
        kind: op.kind,
        pass: op.pass,
        layer: op.layer,
        sparse,
        weight_format: None,
        other_format: None,
        sparsifiable: op.kind == OpKind::Linear
            && op.weight.as_ref().is_some_and(|w| w.sparsifiable),
        tile,
        column_relative_sd: 0.0,
        column_work: None,
        colors: colors_used(fabric, op, tile),
        cost,
        io_in_bytes,
        io_out_bytes,
        io_in_cycles: stream_cycles(fabric, io_in_bytes),
        io_out_cycles: stream_cycles(fabric, io_out_bytes),
        flops_dense: op.flops_dense,
        flops_executed: op.flops_executed,
        recompute: false,
        token_chunks: 1,
        vocab_chunks: 1,
        offload_in_bytes: 0,
        offload_out_bytes: 0,
    }
}

/// Colors an op's kernel routes: a GEMM streams its weights (or indices) on one and, when it
/// reduces, alternates two along the chain (as the engine's kernels do); an element-wise op
/// routes its trigger and, when it normalises over a row, the chain or tree all-reduce its cost
/// model and the engine's kernel both run (`cost::elementwise_op_colors`).
fn colors_used(fabric: &FabricSpec, op: &Op, tile: Option<GemmTile>) -> u64 {
    let attention = matches!(op.kind, OpKind::AttnScores | OpKind::AttnValues);
    match tile {
        Some(t) if attention => tile_colors(GemmForm::Activations, &t),
        Some(t) if op.pass == Pass::Wgrad => tile_colors(GemmForm::AtNonzeros, &t),
        Some(t) => tile_colors(GemmForm::Streamed, &t),
        None => elementwise_op_colors(
            fabric,
            &elementwise_problem(op),
            fabric.geometry.region_height_pes,
            fabric.geometry.region_width_pes,
        ),
    }
}

/// Colors of a GEMM on `tile`: the weight (or index) stream — attention's second operand
/// multicast down and up its PE columns, two — and two alternating ones for the reduction
/// chain when there is one (along the row for K-groups, down the column for wgrad).
fn tile_colors(form: GemmForm, tile: &GemmTile) -> u64 {
    let (stream, chain) = match form {
        GemmForm::AtNonzeros => (1, tile.rows > 1),
        GemmForm::Activations => (2, tile.c_k > 1),
        GemmForm::Streamed => (1, tile.c_k > 1),
    };
    stream + 2 * u64::from(chain)
}

/// The GEMMs an op runs, one after the other: one, or for attention the products of its pass
/// (`cost::attention_products`: a dgrad computes both operands' gradients, of other shapes than
/// the forward product).
fn gemm_problems(op: &Op, sparse: bool, model: &ModelSpec) -> Option<Vec<GemmProblem>> {
    let Dims::Gemm { batch, m, k, n } = op.dims else {
        return None;
    };
    // The dense format multiplies every element, a sparse weight's zeros included.
    let nonzeros = op
        .weight
        .as_ref()
        .map_or(k * n, |w| if sparse { w.nonzeros } else { w.elements() });
    let attention = match op.kind {
        OpKind::AttnScores => Some(AttentionOp::Scores),
        OpKind::AttnValues => Some(AttentionOp::Values),
        _ => None,
    };
    if let Some(kind) = attention {
        // Scores' dims are (S, H, S), A·V's (S, S, H).
        let (seq, head) = match kind {
            AttentionOp::Scores => (m, k),
            AttentionOp::Values => (m, n),
        };
        let dgrad = op.pass == Pass::Dgrad;
        let problems = attention_products(kind, dgrad, seq, head)
            .into_iter()
            .map(|(t, k, n)| GemmProblem {
                form: GemmForm::Activations,
                batch,
                t,
                k,
                n,
                nonzeros: k * n,
                sparse: false,
                // Attention streams an activation, every other GEMM a weight.
                value_bytes: model.architecture.activation_bytes,
                pattern: Pattern::Random,
                transposed: false,
            })
            .collect();
        return Some(problems);
    }
    let form = if op.pass == Pass::Wgrad {
        GemmForm::AtNonzeros
    } else {
        GemmForm::Streamed
    };
    // Wgrad's dims are [k × t]·[t × n]; the kernel sees t rows, a k×n weight.
    let (t, k, n) = if form == GemmForm::AtNonzeros {
        (k, m, n)
    } else {
        (m, k, n)
    };
    Some(vec![GemmProblem {
        form,
        batch,
        t,
        k,
        n,
        nonzeros,
        sparse,
        value_bytes: model.architecture.weight_bytes,
        // The recipe's mask structure (`--mask`), which the sparse weights take.
        pattern: if sparse {
            model.recipe.pattern
        } else {
            Pattern::Random
        },
        // Dgrad streams the weight's transpose.
        transposed: op.pass == Pass::Dgrad,
    }])
}

fn elementwise_problem(op: &Op) -> ElementwiseProblem {
    let (rows, cols) = match op.dims {
        Dims::Elementwise { rows, cols } => (rows, cols),
        Dims::Gemm { batch, m, n, .. } => (batch * m, n),
    };
    // The op's FLOPs split around its row all-reduce as the engine's kernel runs them.
    let (flops_before, flops_after, reduced_values_per_row) =
        match elementwise_profile(op.kind, op.pass) {
            Some(p) => {
                let per_element = p.flops_before_per_element + p.flops_after_per_element;
                let after = op.flops_executed * p.flops_after_per_element / per_element.max(1);
                (op.flops_executed - after, after, p.reduced_values_per_row)
            }
            None => (op.flops_executed, 0, 0),
        };
    ElementwiseProblem {
        rows,
        cols,
        flops_before,
        flops_after,
        bytes: op.activation_bytes,
        reduced_values_per_row,
        algo: None,
    }
}

pub(super) fn scale(cost: KernelCost, repeat: u64) -> KernelCost {
    KernelCost {
        cycles: cost.cycles * repeat,
        compute_cycles: cost.compute_cycles * repeat,
        imbalance_cycles: cost.imbalance_cycles * repeat,
        reduction_cycles: cost.reduction_cycles * repeat,
        overhead_cycles: cost.overhead_cycles * repeat,
        sram_bytes_per_pe: cost.sram_bytes_per_pe,
        busy_cycles_mean: cost.busy_cycles_mean * repeat,
        busy_cycles_max: cost.busy_cycles_max * repeat,
    }
}

/// The fastest tile that fits `working_bytes`, searched over rows used and the K/N split.
/// Candidates are visited in a fixed order and ties keep the first, so the choice is deterministic.
fn best_tile(
    fabric: &FabricSpec,
    p: &GemmProblem,
    region_rows: u64,
    region_cols: u64,
    working_bytes: u64,
) -> Result<(GemmTile, KernelCost), Refusal> {
    let tiles = tiles_timed(fabric, p, region_rows, region_cols);
    let mut best: Option<(GemmTile, KernelCost)> = None;
    let mut smallest_sram = u64::MAX;
    for &(tile, cost) in &tiles.timed {
        if cost.sram_bytes_per_pe > working_bytes {
            smallest_sram = smallest_sram.min(cost.sram_bytes_per_pe);
            continue;
        }
        if best.as_ref().is_none_or(|(_, b)| cost.cycles < b.cycles) {
            best = Some((tile, cost));
        }
    }
    best.ok_or(if smallest_sram < u64::MAX {
        Refusal::Sram(smallest_sram)
    } else if tiles.fewest_colors < u64::MAX {
        Refusal::Colors(tiles.fewest_colors)
    } else {
        Refusal::Index(tiles.fewest_rows)
    })
}

/// Every tile of a problem within the fabric's colors and sparse index, timed, in the order the
/// search tries them; and, for a refusal, the fewest colors and K rows of those left out.
struct TimedTiles {
    timed: Vec<(GemmTile, KernelCost)>,
    fewest_colors: u64,
    fewest_rows: u64,
}

/// The timed tiles of `p` on a `region_rows × region_cols` region, remembered per thread for the
/// last fabric asked about: the mapper times the same problem for many ops (Q, K, V and the
/// attention output share a shape), token chunks and candidate plans, with different SRAM left
/// for it each time ([`best_tile`] picks from the same list). A pure function's memo, so no
/// figure can depend on it.
fn tiles_timed(
    fabric: &FabricSpec,
    p: &GemmProblem,
    region_rows: u64,
    region_cols: u64,
) -> Rc<TimedTiles> {
    /// Problems kept before the memo starts over: a bound on its memory (a few KB each).
    const MEMO_PROBLEMS_MAX: usize = 4096;
    type Memo = Option<(FabricSpec, HashMap<(GemmProblem, u64, u64), Rc<TimedTiles>>)>;
    thread_local! {
        static MEMO: RefCell<Memo> = const { RefCell::new(None) };
    }
    let key = (*p, region_rows, region_cols);
    let known = MEMO.with_borrow(|memo| match memo {
        Some((f, tiles)) if f == fabric => tiles.get(&key).cloned(),
        _ => None,
    });
    if let Some(tiles) = known {
        return tiles;
    }
    let tiles = Rc::new(time_tiles(fabric, p, region_rows, region_cols));
    MEMO.with_borrow_mut(|memo| {
        if memo
            .as_ref()
            .is_none_or(|(f, tiles)| f != fabric || tiles.len() >= MEMO_PROBLEMS_MAX)
        {
            *memo = Some((fabric.clone(), HashMap::new()));
        }
        if let Some((_, known)) = memo {
            known.insert(key, Rc::clone(&tiles));
        }
    });
    tiles
}

fn time_tiles(
    fabric: &FabricSpec,
    p: &GemmProblem,
    region_rows: u64,
    region_cols: u64,
) -> TimedTiles {
    let region_pes = region_rows * region_cols;
    let mut timed = Vec::new();
    let (mut fewest_colors, mut fewest_rows) = (u64::MAX, u64::MAX);
    let rows_total = if p.form == GemmForm::Activations {
        p.t
    } else {
        p.batch * p.t
    };
    for (rows, cols, tiles) in tile_regions(p, region_rows, region_cols) {
        for rows in row_candidates(rows_total, rows) {
            for c_k in split_candidates(cols, p.k) {
                let c_n = (cols / c_k).min(p.n).max(1);
                let tile = GemmTile {
                    rows,
                    c_k,
                    c_n,
                    tiles,
                };
                let k_c = p.k.div_ceil(c_k);
                if p.sparse && k_c > fabric.sparse_index_rows() {
                    fewest_rows = fewest_rows.min(k_c);
                    continue;
                }
                let colors = tile_colors(p.form, &tile);
                if colors > fabric.usable_colors() {
                    fewest_colors = fewest_colors.min(colors);
                    continue;
                }
                // The full-wafer step pays for the operand copies the tile needs.
                let cost = gemm_cost(fabric, p, &tile, region_pes)
                    .then(&operand_copy_cost(fabric, p, &tile, region_pes));
                timed.push((tile, cost));
            }
        }
    }
    TimedTiles {
        timed,
        fewest_colors,
        fewest_rows,
    }
}

/// Rows of a `rows`-row region to use for `rows_total` rows of X: all of them, and fewer, so that
/// each PE's `t_r` rows fill whole passes of its FMAC. A pass is as wide as the SIMD lanes or
/// what SRAM bandwidth feeds per cycle, whichever is narrower (`fmac_cycles`); both are powers
/// of two on real PEs, so the candidates round `t_r` up to every power of two, up to all rows
/// on one PE. They depend on no throughput key of the fabric: a faster PE is offered the tiles a
/// slower one was, so it never maps to a slower plan (a lane count in the rounding made wse2's
/// 16 lanes miss the 8-lane tiles). The whole region first, then fewer and fewer rows.
fn row_candidates(rows_total: u64, rows: u64) -> Vec<u64> {
    let rows_total = rows_total.max(1);
    let t_r = rows_total.div_ceil(rows);
    let mut out = vec![rows.min(rows_total)];
    let widths = (0..u64::BITS).map(|shift| 1u64 << shift);
    for width in widths.take_while(|&w| w <= rows_total) {
        let Some(t_r) = t_r.checked_next_multiple_of(width) else {
            break;
        };
        let used = rows_total.div_ceil(t_r).clamp(1, rows);
        if !out.contains(&used) {
            out.push(used);
        }
    }
    out
}

/// Sub-regions to try, with how many of them the region holds: the whole region for a single
/// product; for attention's many independent products also grids of smaller tiles, one product
/// each (`engine::kernels::attention::tile_grid`, the grid the engine's kernel cuts).
fn tile_regions(p: &GemmProblem, rows: u64, cols: u64) -> Vec<(u64, u64, u64)> {
    if p.form != GemmForm::Activations {
        return vec![(rows, cols, 1)];
    }
    let mut regions = Vec::new();
    let mut groups = 1;
    while groups <= p.batch.max(1) {
        let (down, across) = tile_grid(groups, rows, cols);
        if rows / down >= 1 && cols / across >= 1 {
            regions.push((rows / down, cols / across, down * across));
        }
        groups *= 2;
    }
    regions
}

/// Splits of `cols` columns between K groups (c_k) and N groups: powers of two and the whole row,
/// never more K groups than K.
fn split_candidates(cols: u64, k: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut c = 1;
    while c <= cols && c <= k {
        out.push(c);
        c *= 2;
    }
    if cols <= k && !out.contains(&cols) {
        out.push(cols);
    }
    out
}

/// Places an op run as `chunks` chunks of its `tokens` tokens one after another
/// (`⌈tokens / chunks⌉` each), so that one chunk's working set fits: the op's weight streams in
/// again for every chunk (it is never kept on the wafer), while a weight gradient accumulates on
/// the wafer over the chunks (each PE keeps its share of the weight, `k·n / PEs` accumulators)
/// and streams out once. The op keeps its own FLOPs; its cycles are the chunks'.
pub(super) fn op_plan_chunked(
    fabric: &FabricSpec,
    model: &ModelSpec,
    op: &Op,
    working_bytes: u64,
    (tokens, chunks): (u64, u64),
) -> Result<OpPlan, Refusal> {
    if chunks <= 1 {
        return op_plan(fabric, model, op, working_bytes);
    }
    let accumulators = match (op.pass, &op.weight) {
        (Pass::Wgrad, Some(w)) => {
            w.elements().div_ceil(fabric.region_pes()) * fabric.pe.accumulator_bytes
        }
        _ => 0,
    };
    let chunk = chunk_op(op, tokens, tokens.div_ceil(chunks));
    place_chunks(
        fabric,
        model,
        (op, &chunk),
        working_bytes,
        (Cut::Tokens, chunks, accumulators),
    )
}

/// What an op's chunks cut: its tokens (the weight streams in again per chunk; a weight
/// gradient accumulates on the wafer and streams out once) or the vocabulary (each chunk
/// streams its own slices of the weight and of its gradient).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cut {
    Tokens,
    Vocabulary,
}

/// Places one `chunk` of `op` in `working_bytes` less the `held` bytes a PE keeps over all the
/// chunks, and makes it the whole op's: `chunks` chunks one after another, the op's own FLOPs.
fn place_chunks(
    fabric: &FabricSpec,
    model: &ModelSpec,
    (op, chunk): (&Op, &Op),
    working_bytes: u64,
    (cut, chunks, held): (Cut, u64, u64),
) -> Result<OpPlan, Refusal> {
    let working = working_bytes.checked_sub(held).ok_or(Refusal::Sram(held))?;
    let mut plan = op_plan(fabric, model, chunk, working).map_err(|why| match why {
        Refusal::Sram(bytes) => Refusal::Sram(bytes + held),
        other => other,
    })?;
    let whole = |plan: &mut OpPlan| {
        plan.cost = scale(plan.cost, chunks);
        plan.cost.sram_bytes_per_pe += held;
        plan.io_in_bytes *= chunks;
        plan.io_in_cycles = stream_cycles(fabric, plan.io_in_bytes);
        if cut == Cut::Vocabulary {
            plan.io_out_bytes *= chunks;
            plan.io_out_cycles = stream_cycles(fabric, plan.io_out_bytes);
        }
        plan.flops_dense = op.flops_dense;
        plan.flops_executed = op.flops_executed;
        match cut {
            Cut::Tokens => plan.token_chunks = chunks,
            Cut::Vocabulary => plan.vocab_chunks = chunks,
        }
    };
    whole(&mut plan);
    if let Some(other) = plan.other_format.as_deref_mut() {
        whole(other);
    }
    Ok(plan)
}

/// Places an op of the LM head or the loss run as `chunks` chunks of the `vocab`-entry
/// vocabulary one after another (`⌈vocab / chunks⌉` entries each): each chunk streams its slice
/// of the head's weight in, and its slice of the weight gradient out, once; the loss keeps a
/// running maximum and sum of exponentials per token over the chunks (the online softmax of
/// Milakov and Gimelshein 2018, arXiv:1805.02867), two fp32 accumulators per token held on every
/// PE of the token's row by every op of the head (and by the input gradient its fp32
/// accumulators), so no token's logits are held whole. Backward recomputes each chunk's
/// logits to form its gradient (as Cut Cross-Entropy does, Wijmans et al. 2024,
/// arXiv:2411.09009): the mapper adds that as a recomputed `lm_head.fwd`. The op keeps its own
/// FLOPs; its cycles are the chunks'.
pub(super) fn op_plan_vocab_chunked(
    fabric: &FabricSpec,
    model: &ModelSpec,
    op: &Op,
    working_bytes: u64,
    (tokens, vocab, chunks): (u64, u64, u64),
) -> Result<OpPlan, Refusal> {
    // Held over the chunks by every op of the head: the running maximum and sum per token (the
    // log-sum-exp in backward), on every PE of the token's row; by the input gradient also its
    // fp32 accumulators, which every chunk adds to (tokens × d over the PEs).
    let acc = fabric.pe.accumulator_bytes;
    let running = tokens.div_ceil(fabric.geometry.region_height_pes) * 2 * acc;
    let accumulators = match (op.kind, op.pass) {
        (OpKind::LmHead, Pass::Dgrad) => {
            (tokens * model.architecture.d_model).div_ceil(fabric.region_pes()) * acc
        }
        _ => 0,
    };
    let held = running + accumulators;
    let chunk = vocab_chunk_op(op, vocab, vocab.div_ceil(chunks.max(1)));
    place_chunks(
        fabric,
        model,
        (op, &chunk),
        working_bytes,
        (Cut::Vocabulary, chunks, held),
    )
}

/// `part` entries of the vocabulary of a head op (`vocab` entries): the head's GEMMs with that
/// many logits (forward and weight gradient: N; input gradient: K), the loss over that many
/// columns, the weight's slice; FLOPs and bytes in proportion.
fn vocab_chunk_op(op: &Op, vocab: u64, part: u64) -> Op {
    let vocab = vocab.max(1);
    let share = |x: u128| (x * part as u128).div_ceil(vocab as u128);
    let mut chunk = op.clone();
    chunk.dims = match op.dims {
        Dims::Gemm { batch, m, n, .. } if op.pass == Pass::Dgrad => Dims::Gemm {
            batch,
            m,
            k: part,
            n,
        },
        Dims::Gemm { batch, m, k, .. } => Dims::Gemm {
            batch,
            m,
            k,
            n: part,
        },
        Dims::Elementwise { rows, .. } => Dims::Elementwise { rows, cols: part },
    };
    if let Some(w) = chunk.weight.as_mut() {
        w.cols = part;
        w.nonzeros = w.rows * part;
        chunk.weight_bytes = share(op.weight_bytes as u128) as u64;
    }
    chunk.flops_dense = share(op.flops_dense);
    chunk.flops_executed = share(op.flops_executed);
    chunk.activation_bytes = share(op.activation_bytes as u128) as u64;
    chunk
}

/// Places `op` in the fewest token chunks whose working set fits `working_bytes`: an op whose
/// whole microbatch does not fit runs in chunks rather than capping the step's microbatch.
pub(super) fn op_plan_fitting(
    fabric: &FabricSpec,
    model: &ModelSpec,
    op: &Op,
    working_bytes: u64,
    tokens: u64,
) -> Result<OpPlan, Refusal> {
    fewest_chunks(tokens, |chunks| {
        op_plan_chunked(fabric, model, op, working_bytes, (tokens, chunks))
    })
    .map(|(_, placed)| placed)
}

/// The fewest chunks of `tokens` for which `place` does not run out of SRAM, and its result:
/// doubles the chunks until one fits, then bisects down to the fewest (a chunk's working set
/// shrinks with its tokens). Refuses as `place` does in single tokens, or with any refusal
/// other than SRAM.
pub(super) fn fewest_chunks<T>(
    tokens: u64,
    place: impl Fn(u64) -> Result<T, Refusal>,
) -> Result<(u64, T), Refusal> {
    let tokens = tokens.max(1);
    let (mut fits, mut refused) = (1, 0);
    let mut placed = loop {
        match place(fits) {
            Err(Refusal::Sram(_)) if fits < tokens => {
                refused = fits;
                fits = (2 * fits).min(tokens);
            }
            placed => break placed?,
        }
    };
    while fits - refused > 1 {
        let middle = refused + (fits - refused) / 2;
        if let Ok(p) = place(middle) {
            (fits, placed) = (middle, p);
        } else {
            refused = middle;
        }
    }
    Ok((fits, placed))
}

/// `op` (linear in its tokens) over `part` of its `tokens` tokens: a GEMM's token rows (a
/// weight gradient's inner dimension), attention's whole sequences, an element-wise op's rows.
fn chunk_op(op: &Op, tokens: u64, part: u64) -> Op {
    let tokens = tokens.max(1);
    let share = |x: u128| (x * part as u128).div_ceil(tokens as u128);
    let mut chunk = op.clone();
    chunk.dims = match op.dims {
        Dims::Gemm { batch, m, k, n }
            if matches!(op.kind, OpKind::AttnScores | OpKind::AttnValues) =>
        {
            Dims::Gemm {
                batch: share(batch as u128) as u64,
                m,
                k,
                n,
            }
        }
        Dims::Gemm { batch, m, n, .. } if op.pass == Pass::Wgrad => Dims::Gemm {
            batch,
            m,
            k: part,
            n,
        },
        Dims::Gemm { batch, k, n, .. } => Dims::Gemm {
            batch,
            m: part,
            k,
            n,
        },
        Dims::Elementwise { rows, cols } => Dims::Elementwise {
            rows: share(rows as u128) as u64,
            cols,
        },
    };
    chunk.flops_dense = share(op.flops_dense);
    chunk.flops_executed = share(op.flops_executed);
    chunk.activation_bytes = share(op.activation_bytes as u128) as u64;
    chunk
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fewest_chunks_that_fit_are_found_exactly() {
        // A working set of 1,000 B per token chunk of 1,000 tokens: 7 chunks fit 150 KB.
        let place = |chunks: u64| match 1000u64.div_ceil(chunks) * 1000 {
            bytes if bytes <= 150_000 => Ok(bytes),
            bytes => Err(Refusal::Sram(bytes)),
        };
        assert_eq!(fewest_chunks(1000, place), Ok((7, 143_000)));
        assert_eq!(fewest_chunks(1000, |_| Ok::<_, Refusal>(0)), Ok((1, 0)));
        // Nothing fits even in single tokens: the single-token refusal.
        let never = |chunks: u64| Err::<(), _>(Refusal::Sram(1000 / chunks));
        assert_eq!(fewest_chunks(1000, never), Err(Refusal::Sram(1)));
        // A refusal other than SRAM is not chunked away.
        assert_eq!(
            fewest_chunks(1000, |_| Err::<(), _>(Refusal::Colors(30))),
            Err(Refusal::Colors(30))
        );
    }

    #[test]
    fn a_chunked_op_keeps_its_flops_and_streams_its_weight_per_chunk() {
        let model = crate::spec::load_model("mediswift-xl").unwrap();
        let fabric = crate::spec::load_fabric("wse2").unwrap();
        let config = crate::graph::StepConfig::for_phase(&model, crate::spec::Phase::Pretrain, 0.0);
        let step = crate::graph::StepGraph::build(
            &model,
            crate::graph::StepConfig {
                batch_sequences: 8,
                ..config
            },
        );
        let tokens = step.tokens();
        let working = 40_000;
        for name in ["lm_head.fwd", "lm_head.wgrad", "loss.fwd"] {
            let op = step.op(name).unwrap();
            let one = op_plan_chunked(&fabric, &model, op, working, (tokens, 1)).unwrap();
            let four = op_plan_chunked(&fabric, &model, op, working, (tokens, 4)).unwrap();
            assert_eq!(four.flops_executed, op.flops_executed, "{name}");
            assert_eq!(four.token_chunks, 4);
            // Weights stream once per chunk; a weight gradient accumulates and leaves once.
            assert_eq!(four.io_in_bytes, 4 * one.io_in_bytes, "{name}");
            assert_eq!(four.io_out_bytes, one.io_out_bytes, "{name}");
            assert!(four.cost.sram_bytes_per_pe <= working, "{name}");
        }
        // The loss holds a chunk's logits, in and out: a quarter of them (and the rounding).
        let loss = step.op("loss.fwd").unwrap();
        let sram = |chunks| {
            op_plan_chunked(&fabric, &model, loss, working, (tokens, chunks))
                .unwrap()
                .cost
                .sram_bytes_per_pe
        };
        assert!(4 * sram(4) <= sram(1) + 4 * 2 * fabric.pe.operand_bytes * 57);
        assert!(2 * sram(4) < sram(1));
    }
}
