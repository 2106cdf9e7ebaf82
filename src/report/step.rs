//! `wafersim step`: one training step on the whole fabric.

use serde::Serialize;
use std::fmt::Write as _;

use super::json::{flops_pair, ExactCount, SCHEMA_VERSION};
use super::table::{duration, si, thousands, Table};
use super::train::{weight_format_key, OpTile};
use crate::graph::{OpKind, Pass};
use crate::map::{Activations, Alternative, HeadChunking, WeightFormat};
use crate::schedule::{faster_than_flops, Breakdown, FasterThanFlops, OpRow, StepResult};
use crate::sparsity::Pattern;
use crate::spec::{FabricSpec, Levels, Phase, SpecSources};
use crate::validate::{unvalidated_keys, unvalidated_warning, UnvalidatedKey};

/// The report of one step, with the README's stable field names.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct StepReport {
    /// The version of the field names and types (`report::SCHEMA_VERSION`).
    pub schema_version: u32,
    pub version: &'static str,
    pub seed: u64,
    pub model: String,
    pub fabric: String,
    /// Where the model and fabric came from and the SHA-256 of each file.
    #[serde(flatten)]
    pub sources: SpecSources,
    /// As in `train`'s report: the fabric lies where `validate` holds the cost models.
    pub validated: bool,
    pub unvalidated_keys: Vec<UnvalidatedKey>,
    pub phase: Phase,
    pub sparsity: f64,
    /// The masks' structure (`random`, `N:M`, `block:B`, `rows`, `cols`).
    #[schemars(with = "String")]
    pub mask: Pattern,
    /// How `sparsity` is shared among the sparse weights (`uniform` or `erk`).
    pub levels: Levels,
    /// Masks read from a file (`--masks`), which replace `mask` and `levels`; left out without.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub masks_file: Option<MasksFile>,
    /// Tokens and sequences of the whole step, over every system.
    pub tokens: u64,
    pub batch_sequences: u64,
    pub seq_len: u64,
    /// Systems trained data-parallel, and the sequences each runs (⌈batch / systems⌉); the
    /// microbatches, cycles, utilisation, SRAM and ops are one system's.
    pub systems: u64,
    pub batch_sequences_per_system: u64,
    pub microbatch_sequences: u64,
    pub microbatches: u64,
    /// Where the activations backward reads were kept (`keep`, `attention`, `checkpoint`,
    /// `offload`), chosen with the microbatch unless `--activations` forced it.
    pub activations: Activations,
    /// Chunks the LM head and loss of the full microbatches ran in (1: all at once).
    pub head_chunks: u64,
    /// What the head's chunks cut: `tokens` (the weight streams again per chunk) or
    /// `vocabulary` (a running log-sum-exp per token; logits recomputed in backward).
    pub head_chunking: HeadChunking,
    /// The best plans the mapper timed beside its choice.
    pub alternatives: Vec<AlternativeReport>,
    pub cycles: u64,
    pub seconds: f64,
    /// The wafer's work: forward, dgrad and wgrad (the nearest double; exact beside it).
    pub flops_dense: f64,
    pub flops_dense_exact: ExactCount,
    pub flops_executed: f64,
    pub flops_executed_exact: ExactCount,
    /// The optimizer's update, off-wafer (MemoryX), once per step: not the wafer's work.
    pub flops_optimizer: f64,
    pub flops_optimizer_exact: ExactCount,
    /// FLOPs of forward ops run again in backward: on top of `flops_executed`, not in it.
    pub flops_recompute: f64,
    pub flops_recompute_exact: ExactCount,
    /// The wafer's executed FLOPs ÷ the step's seconds.
    pub flops_per_second: f64,
    /// Achieved FLOP/s ÷ the fabric's dense fp16 peak (of all the systems).
    pub peak_fraction: f64,
    /// Sequences of the step ÷ its seconds, over all systems and per system.
    pub samples_per_second: f64,
    pub samples_per_second_per_system: f64,
    /// The step's largest category of cycles, by its machine key (`compute`, sparse and dense
    /// together, `overhead`, `io`, `reduction`, `imbalance`, `recompute`, `data_parallel`):
    /// what bounds the step. (It was "io" or "compute" by whether I/O took half the step, so a
    /// step of 11% compute and 38% overhead read "compute-bound".)
    pub bound: &'static str,
    pub pe_utilization_mean: f64,
    pub pe_utilization_max: f64,
    pub sram_bytes_max: u64,
    pub sram_bytes_capacity: u64,
    /// The most loaded PE's SRAM by use: code, activations saved for backward, the largest op.
    pub sram: crate::map::SramBudget,
    pub breakdown: Breakdown,
    /// What the SwarmX tree adds (`breakdown.data_parallel_cycles`), by part; zeros on one system.
    pub data_parallel: crate::cost::DataParallelCost,
    /// A sparse step against the same step dense (null for a dense step).
    pub against_dense: Option<AgainstDense>,
    pub ops: Vec<OpReport>,
    pub host_seconds: f64,
    /// The ops as the step counted them, for the table.
    #[serde(skip)]
    pub op_rows: Vec<OpRow>,
}

/// One op of the step, summed over its microbatches (an optimizer update: once per step), with
/// the columns ops.csv has.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct OpReport {
    pub name: String,
    pub kind: OpKind,
    /// `forward`, `dgrad`, `wgrad` or `update` (not `pass`: a Python keyword).
    pub op_pass: Pass,
    pub sparse: bool,
    /// `sparse` (value + index), `dense` (packed, zeros multiplied), `none` (no weight matrix).
    pub weight_format: &'static str,
    pub recompute: bool,
    /// `rows x c_k x c_n` of the GEMM tile, else why there is none: `elementwise` (element-wise
    /// ops and the embedding, over the whole region) or `off_wafer` (the optimizer's updates).
    pub tile: String,
    /// The GEMM tile's rows and column split; null exactly when `tile` is not a GEMM tile.
    pub tile_rows: Option<u64>,
    pub tile_split_k: Option<u64>,
    pub tile_split_n: Option<u64>,
    pub token_chunks: u64,
    pub vocab_chunks: u64,
    pub cycles: u64,
    pub breakdown: Breakdown,
    pub io_in_bytes: u64,
    pub io_out_bytes: u64,
    pub flops_dense: f64,
    pub flops_dense_exact: ExactCount,
    pub flops_executed: f64,
    pub flops_executed_exact: ExactCount,
    /// Executed FLOPs of a recomputed op (0 for the model's own ops).
    pub flops_recompute: f64,
    pub flops_recompute_exact: ExactCount,
}

impl OpReport {
    fn of(op: &OpRow) -> OpReport {
        let tile = OpTile::of(op);
        let (flops_dense, flops_dense_exact) = flops_pair(op.flops_dense);
        let (flops_executed, flops_executed_exact) = flops_pair(op.flops_executed);
        let (flops_recompute, flops_recompute_exact) = flops_pair(op.flops_recompute);
        OpReport {
            name: op.name.clone(),
            kind: op.kind,
            op_pass: op.pass,
            sparse: op.sparse,
            weight_format: weight_format_key(op.weight_format),
            recompute: op.recompute,
            tile: tile.label,
            tile_rows: tile.rows,
            tile_split_k: tile.split_k,
            tile_split_n: tile.split_n,
            token_chunks: op.token_chunks,
            vocab_chunks: op.vocab_chunks,
            cycles: op.cycles,
            breakdown: op.breakdown,
            io_in_bytes: op.io_in_bytes,
            io_out_bytes: op.io_out_bytes,
            flops_dense,
            flops_dense_exact,
            flops_executed,
            flops_executed_exact,
            flops_recompute,
            flops_recompute_exact,
        }
    }
}

/// A sparse step beside the same step run dense: both speedups and, when the simulated one is
/// above the FLOPs', the categories that shrank faster than the FLOPs.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct AgainstDense {
    pub dense_cycles: u64,
    /// Dense FLOPs ÷ executed FLOPs.
    pub theoretical_speedup: f64,
    /// The dense step's cycles ÷ this step's.
    pub simulated_speedup: f64,
    /// Shares of the dense step's cycles and FLOPs that its ops on the masked weights take.
    pub masked_cycles_share: f64,
    pub masked_flops_share: f64,
    pub faster_than_flops: Vec<FasterThanFlops>,
}

impl AgainstDense {
    pub fn new(dense: &StepResult, sparse: &StepResult) -> Self {
        let theoretical = sparse.flops_dense as f64 / sparse.flops_executed.max(1) as f64;
        AgainstDense {
            dense_cycles: dense.cycles,
            theoretical_speedup: theoretical,
            simulated_speedup: dense.cycles as f64 / sparse.cycles.max(1) as f64,
            masked_cycles_share: dense.sparsifiable_cycles as f64 / dense.cycles.max(1) as f64,
            masked_flops_share: dense.sparsifiable_flops as f64 / dense.flops_dense.max(1) as f64,
            faster_than_flops: faster_than_flops(&dense.breakdown, &sparse.breakdown, theoretical),
        }
    }

    /// The `dense` line of the table, and why the step beats its FLOPs when it does.
    fn render(&self) -> String {
        let mut out = format!(
            "dense       {} cycles: {:.2}x simulated, {:.2}x by FLOPs\n",
            thousands(self.dense_cycles as u128),
            self.simulated_speedup,
            self.theoretical_speedup
        );
        if self.simulated_speedup > self.theoretical_speedup {
            let parts: Vec<String> = self
                .faster_than_flops
                .iter()
                .map(|f| format!("{} {:.2}x", f.label, f.category_speedup))
                .collect();
            out += &format!(
                "            beats its FLOPs: the ops on the masked weights take {:.0}% of the dense \
                 step's time but {:.0}% of its FLOPs; shrank faster than the FLOPs: {}\n",
                100.0 * self.masked_cycles_share,
                100.0 * self.masked_flops_share,
                parts.join(", ")
            );
        }
        out
    }
}

impl StepReport {
    pub fn new(
        result: &StepResult,
        fabric: &FabricSpec,
        sources: SpecSources,
        seed: u64,
        host_seconds: f64,
    ) -> Self {
        let plan = &result.plan;
        let seconds = result.cycles as f64 / fabric.clock.clock_hz as f64;
        let flops_per_second = result.flops_executed as f64 / seconds.max(f64::MIN_POSITIVE);
        let samples_per_second = result.batch_sequences as f64 / seconds.max(f64::MIN_POSITIVE);
        let b = &result.breakdown;
        let unvalidated = unvalidated_keys(fabric);
        let (flops_dense, flops_dense_exact) = flops_pair(result.flops_dense);
        let (flops_executed, flops_executed_exact) = flops_pair(result.flops_executed);
        let (flops_optimizer, flops_optimizer_exact) = flops_pair(result.flops_optimizer);
        let (flops_recompute, flops_recompute_exact) = flops_pair(result.flops_recompute);
        StepReport {
            schema_version: SCHEMA_VERSION,
            version: crate::VERSION,
            seed,
            model: plan.model.clone(),
            fabric: plan.fabric.clone(),
            sources,
            validated: unvalidated.is_empty(),
            unvalidated_keys: unvalidated,
            phase: plan.config.phase,
            sparsity: plan.config.sparsity,
            mask: Pattern::Random,
            levels: Levels::Uniform,
            masks_file: None,
            tokens: result.batch_sequences * plan.config.seq_len,
            batch_sequences: result.batch_sequences,
            seq_len: plan.config.seq_len,
            systems: result.systems,
            batch_sequences_per_system: plan.config.batch_sequences,
            microbatch_sequences: plan.microbatch_sequences,
            microbatches: plan.microbatches(),
            activations: plan.activations,
            head_chunks: plan.head_chunks,
            head_chunking: plan.head_chunking,
            alternatives: AlternativeReport::of(&plan.alternatives, fabric.clock.clock_hz),
            cycles: result.cycles,
            seconds,
            flops_dense,
            flops_dense_exact,
            flops_executed,
            flops_executed_exact,
            flops_optimizer,
            flops_optimizer_exact,
            flops_recompute,
            flops_recompute_exact,
            flops_per_second,
            peak_fraction: flops_per_second
                / (result.systems as f64 * fabric.peak_fp16_flops_per_second()),
            samples_per_second,
            samples_per_second_per_system: samples_per_second / result.systems as f64,
            bound: largest_category(b).0,
            pe_utilization_mean: result.pe_utilization_mean,
            pe_utilization_max: result.pe_utilization_max,
            sram_bytes_max: plan.sram.sram_bytes_max,
            sram_bytes_capacity: plan.sram.capacity_bytes,
            sram: plan.sram.clone(),
            breakdown: *b,
            data_parallel: result.data_parallel,
            against_dense: None,
            ops: result.ops.iter().map(OpReport::of).collect(),
            host_seconds,
            op_rows: result.ops.clone(),
        }
    }

    pub fn render_table(&self) -> String {
        let mut out = format!(
            "wafersim step: {} on {}, {} at sparsity {}{}\n\n",
            self.model,
            self.fabric,
            self.phase.name(),
            super::table::shown_sparsity(self.sparsity),
            mask_words(self.mask, self.levels, self.masks_file.as_ref())
        );
        out += &unvalidated_warning(&self.fabric, &self.unvalidated_keys).unwrap_or_default();
        if let Some(caveat) = self.mask.caveat() {
            let _ = writeln!(out, "note: {caveat}\n");
        }
        out += &format!(
            "step        {} tokens ({} x {}), {}{}\n",
            thousands(self.tokens as u128),
            self.batch_sequences,
            self.seq_len,
            microbatch_text(
                self.batch_sequences_per_system,
                self.microbatches,
                self.microbatch_sequences
            ),
            if self.systems > 1 {
                " on each system"
            } else {
                ""
            },
        );
        out += &format!(
            "activations {}: {}{}\n",
            self.activations.name(),
            self.activations.describe(),
            head_chunks_text(self.head_chunks, self.head_chunking)
        );
        out += &format!("systems     {}{}\n", self.systems, systems_text(self));
        out += &wire_text(&self.op_rows);
        out += &format!(
            "time        {} cycles = {}: {:.1} samples/s, {:.1} per system\n",
            thousands(self.cycles as u128),
            duration(self.seconds),
            self.samples_per_second,
            self.samples_per_second_per_system
        );
        out += &format!(
            "FLOPs       {} executed of {} dense on the wafer (the optimizer's {} run off-wafer): {} = {:.1}% of peak; the fabric waits on I/O {:.1}% of the step; its largest category: {} {:.1}%\n",
            si(self.flops_executed, "FLOP"),
            si(self.flops_dense, "FLOP"),
            si(self.flops_optimizer, "FLOP"),
            si(self.flops_per_second, "FLOP/s"),
            100.0 * self.peak_fraction,
            100.0 * self.breakdown.io as f64 / self.cycles.max(1) as f64,
            crate::schedule::category_label(self.bound),
            100.0 * largest_category(&self.breakdown).1 as f64 / self.cycles.max(1) as f64
        );
        if let Some(against) = &self.against_dense {
            out += &against.render();
        }
        out += &format!(
            "PEs         utilisation mean {:.1}%, max {:.1}%\n",
            100.0 * self.pe_utilization_mean,
            100.0 * self.pe_utilization_max,
        );
        out += &format!(
            "SRAM        {} of {} B on the most loaded PE: {} code, {} activations saved for backward, {} for {}\n\n",
            thousands(self.sram_bytes_max as u128),
            thousands(self.sram_bytes_capacity as u128),
            thousands(self.sram.code_bytes as u128),
            thousands(self.sram.saved_activation_bytes as u128),
            thousands(self.sram.working_bytes_max as u128),
            self.sram.working_op
        );
        if self.flops_recompute > 0.0 {
            out += &format!(
                "recompute   {} run again in backward, on top of the model's\n",
                si(self.flops_recompute, "FLOP")
            );
        }
        out += &alternatives_table(&self.alternatives, self.cycles);
        let counted = self.masks_file.is_some() || (self.mask.is_random() && self.sparsity > 0.0);
        if counted && !self.alternatives.is_empty() {
            out += "(the search times every plan with the mask's expected imbalance, then prices \
                    the chosen one by its per-PE counts: the alternatives' times are the \
                    search's)\n";
        }
        out += "\n";
        let mut t = Table::new(["category", "cycles", "share"]);
        for (name, cycles) in self.breakdown.entries() {
            t.row([
                name.to_string(),
                thousands(cycles as u128),
                format!("{:.1}%", 100.0 * cycles as f64 / self.cycles.max(1) as f64),
            ]);
        }
        out += &t.render();
        out += "\nthe ten most expensive ops (summed over microbatches)\n";
        let mut ops: Vec<&OpRow> = self.op_rows.iter().collect();
        ops.sort_by(|a, b| b.cycles.cmp(&a.cycles).then(a.name.cmp(&b.name)));
        out += "(an op's cycles are its I/O wait, compute, overhead, reduction, imbalance and \
                recompute)\n";
        let mut t = Table::new([
            "op",
            "tile",
            "cycles",
            "share",
            "I/O wait",
            "compute",
            "overhead",
            "reduction",
            "imbalance",
            "recompute",
        ]);
        for op in ops.iter().take(10) {
            let tile = match (op.token_chunks, op.vocab_chunks) {
                (1, 1) => op.tile.clone(),
                (1, n) => format!("{} in {n} vocabulary chunks", op.tile)
                    .trim_start()
                    .to_string(),
                (n, _) => format!("{} in {n} chunks", op.tile)
                    .trim_start()
                    .to_string(),
            };
            t.row([
                op.name.clone(),
                tile,
                thousands(op.cycles as u128),
                format!(
                    "{:.1}%",
                    100.0 * op.cycles as f64 / self.cycles.max(1) as f64
                ),
                thousands(op.breakdown.io as u128),
                thousands((op.breakdown.sparse_compute + op.breakdown.dense_compute) as u128),
                thousands(op.breakdown.overhead as u128),
                thousands(op.breakdown.reduction as u128),
                thousands(op.breakdown.imbalance as u128),
                thousands(op.breakdown.recompute as u128),
            ]);
        }
        out += &t.render();
        out
    }
}

/// The step's largest category (compute counts sparse and dense together) and its cycles; the
/// first of equals in `gap_categories` order.
fn largest_category(b: &Breakdown) -> (&'static str, u64) {
    crate::schedule::gap_categories(b)
        .into_iter()
        .fold(
            ("compute", 0),
            |best, c| if c.1 > best.1 { c } else { best },
        )
}

/// What the systems line adds beyond the count: each system's share and the tree's cost.
fn systems_text(r: &StepReport) -> String {
    if r.systems == 1 {
        return String::new();
    }
    let d = &r.data_parallel;
    format!(
        " data-parallel, {} of the {} sequences each; SwarmX tree of {} level{}: {} cycles \
         ({} weight broadcast latency, {} gradient reduction latency, {} slower streams)",
        r.batch_sequences_per_system,
        r.batch_sequences,
        d.tree_levels,
        if d.tree_levels == 1 { "" } else { "s" },
        thousands(d.cycles as u128),
        thousands(d.broadcast_latency_cycles as u128),
        thousands(d.reduce_latency_cycles as u128),
        thousands(d.stream_cycles as u128)
    )
}

/// Which wire format the ops on sparse weights chose, when they did not all choose the sparse
/// one (an op kind, its name without the layer, once); empty for a step without sparse weights.
fn wire_text(ops: &[OpRow]) -> String {
    let mut kinds: Vec<(&str, bool)> = Vec::new();
    for op in ops.iter().filter(|op| op.sparse) {
        let Some(format) = op.weight_format else {
            continue;
        };
        let kind = op.name.split_once('.').map_or(&*op.name, |(_, k)| k);
        if !kinds.iter().any(|(k, _)| *k == kind) {
            kinds.push((kind, format == WeightFormat::Sparse));
        }
    }
    let named = |sparse: bool| -> Vec<&str> {
        kinds
            .iter()
            .filter(|k| k.1 == sparse)
            .map(|k| k.0)
            .collect()
    };
    let (sparse, dense) = (named(true), named(false));
    let all = kinds.len();
    let line = match (sparse.len(), dense.len()) {
        (0, 0) => return String::new(),
        (_, 0) => format!("all {all} op kinds on sparse weights stream value + index"),
        (0, _) => format!(
            "all {all} op kinds on sparse weights stream dense (packed, zeros multiplied): \
             faster than value + index at this sparsity"
        ),
        // Name the fewer of the two.
        (s, d) if s <= d => format!(
            "{s} of {all} op kinds on sparse weights stream value + index ({}), {d} dense \
             (packed, zeros multiplied: faster for them)",
            sparse.join(", ")
        ),
        (s, d) => format!(
            "{s} of {all} op kinds on sparse weights stream value + index, {d} dense (packed, \
             zeros multiplied: faster for them): {}",
            dense.join(", ")
        ),
    };
    format!("wire        {line}\n")
}

/// A plan the mapper timed beside its choice, as reports show it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct AlternativeReport {
    pub activations: Activations,
    pub microbatch_sequences: u64,
    pub microbatches: u64,
    pub cycles: u64,
    pub seconds: f64,
}

impl AlternativeReport {
    pub fn of(alternatives: &[Alternative], clock_hz: u64) -> Vec<AlternativeReport> {
        alternatives
            .iter()
            .map(|a| AlternativeReport {
                activations: a.activations,
                microbatch_sequences: a.microbatch_sequences,
                microbatches: a.microbatches,
                cycles: a.cycles,
                seconds: a.cycles as f64 / clock_hz as f64,
            })
            .collect()
    }
}

/// "; LM head and loss in N token chunks" (or vocabulary chunks) when the head is chunked.
pub(crate) fn head_chunks_text(chunks: u64, chunking: HeadChunking) -> String {
    match (chunks, chunking) {
        (1, _) => String::new(),
        (n, HeadChunking::Tokens) => format!("; LM head and loss in {n} token chunks"),
        (n, HeadChunking::Vocabulary) => format!(
            "; LM head and loss in {n} vocabulary chunks (running log-sum-exp, logits recomputed \
             in backward)"
        ),
    }
}

/// The alternatives against the chosen plan's `cycles`, as a small table (empty when none).
pub(crate) fn alternatives_table(alternatives: &[AlternativeReport], cycles: u64) -> String {
    if alternatives.is_empty() {
        return String::new();
    }
    let mut t = Table::new(["alternative", "microbatches", "cycles", "time", "vs chosen"]);
    for a in alternatives {
        t.row([
            a.activations.name().to_string(),
            format!("{} x {}", a.microbatches, a.microbatch_sequences),
            thousands(a.cycles as u128),
            duration(a.seconds),
            format!(
                "{:+.1}%",
                100.0 * (a.cycles as f64 / cycles.max(1) as f64 - 1.0)
            ),
        ]);
    }
    format!("\nthe best plans not chosen\n{}", t.render())
}

/// How a batch of `batch` sequences splits into `microbatches` of `sequences` (the last one
/// smaller when they do not divide it), e.g. "3 microbatches: 2 of 3 sequences, 1 of 2".
pub(crate) fn microbatch_text(batch: u64, microbatches: u64, sequences: u64) -> String {
    let many = |n: u64, one: &str, more: &str| format!("{n} {}", if n == 1 { one } else { more });
    let full = microbatches.saturating_sub(1);
    let last = batch.saturating_sub(full * sequences);
    if last == sequences {
        format!(
            "{} of {}",
            many(microbatches, "microbatch", "microbatches"),
            many(sequences, "sequence", "sequences")
        )
    } else {
        format!(
            "{}: {full} of {}, 1 of {last}",
            many(microbatches, "microbatch", "microbatches"),
            many(sequences, "sequence", "sequences")
        )
    }
}

/// Masks read from a file, as a report names them.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct MasksFile {
    /// The path as given to `--masks`.
    pub path: String,
    /// SHA-256 of the file (a folder: of its `.npy` files' names and SHA-256s).
    pub sha256: String,
    /// Masked weights (every sparse weight of every layer).
    pub weights: u64,
    /// Their mean sparsity: 1 − kept entries ÷ entries.
    pub sparsity: f64,
}

impl MasksFile {
    pub fn of(model: &crate::spec::ModelSpec) -> Option<MasksFile> {
        model.recipe.masks.as_ref().map(|m| MasksFile {
            path: m.source.clone(),
            sha256: m.sha256.clone(),
            weights: m.len() as u64,
            sparsity: m.sparsity(),
        })
    }
}

/// ", 2:4 masks, erk levels" for a step or run that is not random and uniform, ", masks from
/// PATH (N weights)" for masks read from a file; "" otherwise.
pub(crate) fn mask_words(mask: Pattern, levels: Levels, file: Option<&MasksFile>) -> String {
    if let Some(file) = file {
        return format!(", masks from {} ({} weights)", file.path, file.weights);
    }
    let mut words = String::new();
    if !mask.is_random() {
        words += &format!(", {mask} masks");
    }
    if !levels.is_uniform() {
        words += ", erk levels";
    }
    words
}

#[cfg(test)]
mod microbatch_tests {
    use super::microbatch_text;

    #[test]
    fn an_uneven_last_microbatch_is_named() {
        assert_eq!(microbatch_text(8, 4, 2), "4 microbatches of 2 sequences");
        assert_eq!(
            microbatch_text(8, 3, 3),
            "3 microbatches: 2 of 3 sequences, 1 of 2"
        );
        assert_eq!(microbatch_text(1, 1, 1), "1 microbatch of 1 sequence");
    }
}
