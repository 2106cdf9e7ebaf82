//! `wafersim step`: one training step on the whole fabric.

use serde::Serialize;

use super::table::{duration, si, thousands, Table};
use crate::map::{Activations, Alternative};
use crate::schedule::{Breakdown, OpRow, StepResult};
use crate::spec::{FabricSpec, Phase, SpecSources};
use crate::validate::{unvalidated_keys, unvalidated_warning, UnvalidatedKey};

/// The report of one step, with the README's stable field names.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
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
    pub tokens: u64,
    pub batch_sequences: u64,
    pub seq_len: u64,
    pub microbatch_sequences: u64,
    pub microbatches: u64,
    /// Where the activations backward reads were kept (`keep`, `attention`, `checkpoint`,
    /// `offload`), chosen with the microbatch unless `--activations` forced it.
    pub activations: Activations,
    /// Token chunks the LM head and loss ran in (1: all of a microbatch's tokens at once).
    pub head_chunks: u64,
    /// The best plans the mapper timed beside its choice.
    pub alternatives: Vec<AlternativeReport>,
    pub cycles: u64,
    pub seconds: f64,
    /// The wafer's work: forward, dgrad and wgrad.
    pub flops_dense: u128,
    pub flops_executed: u128,
    /// The optimizer's update, off-wafer (MemoryX), once per step: not the wafer's work.
    pub flops_optimizer: u128,
    /// FLOPs of forward ops run again in backward: on top of `flops_executed`, not in it.
    pub flops_recompute: u128,
    /// The wafer's executed FLOPs ÷ the step's seconds.
    pub flops_per_second: f64,
    /// Achieved FLOP/s ÷ the fabric's dense fp16 peak.
    pub peak_fraction: f64,
    /// "io" when the fabric waits on its edge for at least half the step, else "compute".
    pub bound: &'static str,
    pub pe_utilization_mean: f64,
    pub pe_utilization_max: f64,
    pub sram_bytes_max: u64,
    pub sram_bytes_capacity: u64,
    /// The most loaded PE's SRAM by use: code, activations saved for backward, the largest op.
    pub sram: crate::map::SramBudget,
    pub breakdown: Breakdown,
    pub ops: Vec<OpRow>,
    pub host_seconds: f64,
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
        let b = &result.breakdown;
        let unvalidated = unvalidated_keys(fabric);
        StepReport {
            version: crate::VERSION,
            seed,
            model: plan.model.clone(),
            fabric: plan.fabric.clone(),
            sources,
            validated: unvalidated.is_empty(),
            unvalidated_keys: unvalidated,
            phase: plan.config.phase,
            sparsity: plan.config.sparsity,
            tokens: plan.config.tokens(),
            batch_sequences: plan.config.batch_sequences,
            seq_len: plan.config.seq_len,
            microbatch_sequences: plan.microbatch_sequences,
            microbatches: plan.microbatches(),
            activations: plan.activations,
            head_chunks: plan.head_chunks,
            alternatives: AlternativeReport::of(&plan.alternatives, fabric.clock.clock_hz),
            cycles: result.cycles,
            seconds,
            flops_dense: result.flops_dense,
            flops_executed: result.flops_executed,
            flops_optimizer: result.flops_optimizer,
            flops_recompute: result.flops_recompute,
            flops_per_second,
            peak_fraction: flops_per_second / fabric.peak_fp16_flops_per_second(),
            bound: if 2 * b.io >= result.cycles {
                "io"
            } else {
                "compute"
            },
            pe_utilization_mean: result.pe_utilization_mean,
            pe_utilization_max: result.pe_utilization_max,
            sram_bytes_max: plan.sram.sram_bytes_max,
            sram_bytes_capacity: plan.sram.capacity_bytes,
            sram: plan.sram.clone(),
            breakdown: *b,
            ops: result.ops.clone(),
            host_seconds,
        }
    }

    pub fn render_table(&self) -> String {
        let mut out = format!(
            "wafersim step: {} on {}, {} at sparsity {}\n\n",
            self.model,
            self.fabric,
            self.phase.name(),
            self.sparsity
        );
        out += &unvalidated_warning(&self.fabric, &self.unvalidated_keys).unwrap_or_default();
        out += &format!(
            "step        {} tokens ({} x {}), {}\n",
            thousands(self.tokens as u128),
            self.batch_sequences,
            self.seq_len,
            microbatch_text(
                self.batch_sequences,
                self.microbatches,
                self.microbatch_sequences
            ),
        );
        out += &format!(
            "activations {}: {}{}\n",
            self.activations.name(),
            self.activations.describe(),
            head_chunks_text(self.head_chunks)
        );
        out += &format!(
            "time        {} cycles = {}\n",
            thousands(self.cycles as u128),
            duration(self.seconds)
        );
        out += &format!(
            "FLOPs       {} executed of {} dense on the wafer (the optimizer's {} run off-wafer): {} = {:.1}% of peak; the fabric waits on I/O {:.1}% of the step ({}-bound)\n",
            si(self.flops_executed as f64, "FLOP"),
            si(self.flops_dense as f64, "FLOP"),
            si(self.flops_optimizer as f64, "FLOP"),
            si(self.flops_per_second, "FLOP/s"),
            100.0 * self.peak_fraction,
            100.0 * self.breakdown.io as f64 / self.cycles.max(1) as f64,
            if self.bound == "io" { "I/O" } else { "compute" }
        );
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
        if self.flops_recompute > 0 {
            out += &format!(
                "recompute   {} run again in backward, on top of the model's\n",
                si(self.flops_recompute as f64, "FLOP")
            );
        }
        out += &alternatives_table(&self.alternatives, self.cycles);
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
        let mut ops: Vec<&OpRow> = self.ops.iter().collect();
        ops.sort_by(|a, b| b.cycles.cmp(&a.cycles).then(a.name.cmp(&b.name)));
        let mut t = Table::new([
            "op", "tile", "cycles", "share", "I/O wait", "compute", "overhead",
        ]);
        for op in ops.iter().take(10) {
            let tile = match op.token_chunks {
                1 => op.tile.clone(),
                n => format!("{} in {n} chunks", op.tile)
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
            ]);
        }
        out += &t.render();
        out
    }
}

/// A plan the mapper timed beside its choice, as reports show it.
#[derive(Debug, Clone, Serialize)]
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

/// ", LM head and loss in N token chunks" when the head is chunked.
pub(crate) fn head_chunks_text(chunks: u64) -> String {
    match chunks {
        1 => String::new(),
        n => format!("; LM head and loss in {n} token chunks"),
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
