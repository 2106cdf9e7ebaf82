//! `wafersim train`: the recipe at each sparsity against dense — theory beside simulation.

use std::fmt::Write as _;

use serde::Serialize;

use super::table::{duration, si, thousands, Table};
use crate::schedule::{gap_shares, Breakdown, PhaseResult, PhaseTotal, RunResult};
use crate::spec::{FabricSpec, ModelSpec};
use crate::validate::{unvalidated_keys, unvalidated_warning, UnvalidatedKey};

/// The report of a recipe run, with the field names of DESIGN.md. Host timings are not part of
/// it, so the same inputs give byte-identical files.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub version: &'static str,
    pub seed: u64,
    pub model: String,
    pub fabric: String,
    /// Whether every engine-relevant key of the fabric lies where `validate` has held the cost
    /// models to the engine; if not, `unvalidated_keys` lists those outside.
    pub validated: bool,
    pub unvalidated_keys: Vec<UnvalidatedKey>,
    pub clock_hz: u64,
    pub peak_flops_per_second: f64,
    /// Share of a dense pre-training step's FLOPs on the weights the recipe masks: the part
    /// sparsity can shrink (the rest is Amdahl's serial part).
    pub masked_flops_share: f64,
    pub runs: Vec<TrainRun>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainRun {
    pub sparsity: f64,
    pub phases: Vec<TrainPhase>,
    pub total: TrainPhase,
    /// Share of the run's cycles each category takes beyond what the FLOPs promise (sparse runs).
    pub gap: Vec<GapShare>,
}

/// One phase of a run (or its total), as report.json, phases.csv and sweep points carry it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainPhase {
    pub phase: String,
    pub sparsity: f64,
    pub tokens: u64,
    pub steps: u64,
    pub flops_dense: u128,
    pub flops_executed: u128,
    pub cycles: u64,
    pub seconds: f64,
    pub theoretical_speedup: f64,
    pub simulated_speedup: f64,
    pub pe_utilization_mean: f64,
    pub breakdown: Breakdown,
}

#[derive(Debug, Clone, Serialize)]
pub struct GapShare {
    pub category: String,
    pub share: f64,
}

impl TrainReport {
    pub fn new(model: &ModelSpec, fabric: &FabricSpec, runs: &[RunResult], seed: u64) -> Self {
        let clock = fabric.clock.clock_hz as f64;
        let dense = runs[0].total.breakdown;
        let step = &runs[0].pretrain_step;
        let masked_flops_share = step.sparsifiable_flops as f64 / step.flops_dense.max(1) as f64;
        let unvalidated = unvalidated_keys(fabric);
        let runs = runs
            .iter()
            .map(|run| {
                let gap = if run.sparsity > 0.0 {
                    gap_shares(&dense, &run.total.breakdown, run.total.theoretical_speedup)
                        .into_iter()
                        .map(|(category, share)| GapShare {
                            category: category.to_string(),
                            share,
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                TrainRun {
                    sparsity: run.sparsity,
                    phases: run
                        .phases
                        .iter()
                        .map(|p| TrainPhase::of_phase(p, clock))
                        .collect(),
                    total: TrainPhase::of_total(&run.total, run.sparsity, clock),
                    gap,
                }
            })
            .collect();
        TrainReport {
            version: crate::VERSION,
            seed,
            model: model.name.clone(),
            fabric: fabric.name.clone(),
            validated: unvalidated.is_empty(),
            unvalidated_keys: unvalidated,
            clock_hz: fabric.clock.clock_hz,
            peak_flops_per_second: fabric.peak_fp16_flops_per_second(),
            masked_flops_share,
            runs,
        }
    }

    pub fn render_table(&self) -> String {
        let mut out = format!(
            "wafersim train: {} on {} ({} fp16 peak), dense and sparse pre-training, dense fine-tuning, soft prompting\n\n",
            self.model,
            self.fabric,
            si(self.peak_flops_per_second, "FLOP/s")
        );
        out += &unvalidated_warning(&self.fabric, &self.unvalidated_keys).unwrap_or_default();
        let mut t = Table::new([
            "run",
            "phase",
            "tokens",
            "steps",
            "FLOPs exec",
            "simulated time",
            "theory",
            "simulated",
            "PE util",
        ]);
        for run in &self.runs {
            let label = super::flops::run_label(run.sparsity);
            for p in run.phases.iter().chain(std::iter::once(&run.total)) {
                t.row([
                    label.clone(),
                    p.phase.clone(),
                    si(p.tokens as f64, ""),
                    thousands(p.steps as u128),
                    si(p.flops_executed as f64, "FLOP"),
                    duration(p.seconds),
                    format!("{:.2}x", p.theoretical_speedup),
                    format!("{:.2}x", p.simulated_speedup),
                    format!("{:.1}%", 100.0 * p.pe_utilization_mean),
                ]);
            }
        }
        out += &t.render();
        out += "\nWhere the gap goes (shares of each sparse run's simulated time beyond what its FLOPs promise):\n";
        for run in self.runs.iter().filter(|r| r.sparsity > 0.0) {
            let parts: Vec<String> = run
                .gap
                .iter()
                .filter(|g| g.share.abs() >= 0.0005)
                .map(|g| format!("{} {:.1}%", g.category, 100.0 * g.share))
                .collect();
            let _ = writeln!(
                out,
                "  s={}: {:.2}x on the masked weights -> {:.2}x by FLOPs (Amdahl: {:.0}% of the FLOPs stay dense) \
                 -> {:.2}x simulated. Beyond the FLOPs: {}",
                run.sparsity,
                1.0 / (1.0 - run.sparsity),
                run.total.theoretical_speedup,
                100.0 * (1.0 - self.masked_flops_share),
                run.total.simulated_speedup,
                parts.join(", ")
            );
        }
        out
    }

    /// One line per phase of every run, the same numbers as the JSON.
    pub fn phases_csv(&self) -> String {
        let mut out = String::from(
            "run_sparsity,phase,sparsity,tokens,steps,flops_dense,flops_executed,cycles,seconds,\
             theoretical_speedup,simulated_speedup,pe_utilization_mean,sparse_compute_cycles,\
             dense_compute_cycles,reduction_cycles,io_cycles,imbalance_cycles,overhead_cycles\n",
        );
        for run in &self.runs {
            for p in run.phases.iter().chain(std::iter::once(&run.total)) {
                let b = &p.breakdown;
                let _ = writeln!(
                    out,
                    "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                    run.sparsity,
                    p.phase,
                    p.sparsity,
                    p.tokens,
                    p.steps,
                    p.flops_dense,
                    p.flops_executed,
                    p.cycles,
                    p.seconds,
                    p.theoretical_speedup,
                    p.simulated_speedup,
                    p.pe_utilization_mean,
                    b.sparse_compute,
                    b.dense_compute,
                    b.reduction,
                    b.io,
                    b.imbalance,
                    b.overhead
                );
            }
        }
        out
    }
}

/// Every op of each run's pre-training step, summed over its microbatches.
pub fn ops_csv(runs: &[RunResult]) -> String {
    let mut out = String::from(
        "run_sparsity,op,kind,pass,sparse,tile,cycles,sparse_compute_cycles,dense_compute_cycles,\
         reduction_cycles,io_cycles,imbalance_cycles,overhead_cycles,io_in_bytes,io_out_bytes,\
         flops_dense,flops_executed\n",
    );
    for run in runs {
        for op in &run.pretrain_step.ops {
            let b = &op.breakdown;
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                run.sparsity,
                op.name,
                op.kind.name(),
                op.pass.name(),
                op.sparse,
                op.tile,
                op.cycles,
                b.sparse_compute,
                b.dense_compute,
                b.reduction,
                b.io,
                b.imbalance,
                b.overhead,
                op.io_in_bytes,
                op.io_out_bytes,
                op.flops_dense,
                op.flops_executed
            );
        }
    }
    out
}

impl TrainPhase {
    /// A phase of a run; `clock` (Hz) converts cycles to seconds.
    pub fn of_phase(p: &PhaseResult, clock: f64) -> TrainPhase {
        TrainPhase {
            phase: p.phase.name().to_string(),
            sparsity: p.sparsity,
            tokens: p.tokens,
            steps: p.steps,
            flops_dense: p.flops_dense,
            flops_executed: p.flops_executed,
            cycles: p.cycles,
            seconds: p.cycles as f64 / clock,
            theoretical_speedup: p.theoretical_speedup,
            simulated_speedup: p.simulated_speedup,
            pe_utilization_mean: p.pe_utilization_mean,
            breakdown: p.breakdown,
        }
    }

    /// The whole recipe of a run at `sparsity`.
    pub fn of_total(t: &PhaseTotal, sparsity: f64, clock: f64) -> TrainPhase {
        TrainPhase {
            phase: "total".to_string(),
            sparsity,
            tokens: t.tokens,
            steps: t.steps,
            flops_dense: t.flops_dense,
            flops_executed: t.flops_executed,
            cycles: t.cycles,
            seconds: t.cycles as f64 / clock,
            theoretical_speedup: t.theoretical_speedup,
            simulated_speedup: t.simulated_speedup,
            pe_utilization_mean: t.pe_utilization_mean,
            breakdown: t.breakdown,
        }
    }
}
