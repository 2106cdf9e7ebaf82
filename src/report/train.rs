//! `wafersim train`: the recipe at each sparsity against dense — theory beside simulation.

use std::fmt::Write as _;

use serde::Serialize;

use super::csv_file::csv_text;
use super::json::{ExactCount, SCHEMA_VERSION};
use super::table::{duration, si, thousands, Table};
use crate::error::Result;
use crate::schedule::{
    category_label, faster_than_flops, gap_shares, Breakdown, CurvePoint, DynamicPhase,
    FasterThanFlops, PhaseResult, PhaseTotal, RunResult,
};
use crate::sparsity::Pattern;
use crate::spec::{DynamicSpec, FabricSpec, Levels, ModelSpec, SpecSources};
use crate::validate::{unvalidated_keys, unvalidated_warning, UnvalidatedKey};

/// The report of a recipe run, with the README's stable field names. Host timings are not part of
/// it, so the same inputs give byte-identical files.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TrainReport {
    /// The version of the field names and types (`report::SCHEMA_VERSION`).
    pub schema_version: u32,
    pub version: &'static str,
    pub seed: u64,
    pub model: String,
    pub fabric: String,
    /// Where the model and fabric came from and the SHA-256 of each file.
    #[serde(flatten)]
    pub sources: SpecSources,
    /// Whether every engine-relevant key of the fabric lies where `validate` has held the cost
    /// models to the engine; if not, `unvalidated_keys` lists those outside.
    pub validated: bool,
    pub unvalidated_keys: Vec<UnvalidatedKey>,
    /// The sparse runs' mask structure (`random`, `N:M`, `block:B`, `rows`, `cols`): the
    /// recipe's `pattern`, or `--mask`.
    #[schemars(with = "String")]
    pub mask: Pattern,
    /// How each run's sparsity is shared among the sparse weights (`uniform` or `erk`).
    pub levels: Levels,
    /// Masks read from a file (`--masks`): the one sparse run's; left out without.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub masks_file: Option<super::step::MasksFile>,
    /// Dynamic sparse training of the sparse runs' pre-training (`--dynamic`,
    /// `recipe.dynamic`); left out with static masks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dynamic: Option<DynamicSpec>,
    pub clock_hz: u64,
    /// Systems trained data-parallel (`--systems`); each runs ⌈batch / systems⌉ sequences of
    /// every step, and `peak_flops_per_second` is one system's.
    pub systems: u64,
    pub peak_flops_per_second: f64,
    /// Share of a dense pre-training step's FLOPs on the weights the recipe masks: the part
    /// sparsity can shrink (the rest is Amdahl's serial part).
    pub masked_flops_share: f64,
    /// Share of the dense pre-training step's cycles (I/O wait included) its ops on the masked
    /// weights take: above `masked_flops_share`, they are the dense run's less efficient part,
    /// and removing their work can save more time than FLOPs.
    pub masked_cycles_share: f64,
    pub runs: Vec<TrainRun>,
    /// Where more sparsity stops paying, over the runs in order of sparsity (with at least two
    /// sparse runs; absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diminishing_returns: Option<DiminishingReturns>,
    /// Speedups of pre-training simulated at every 0.1 of sparsity and 0.95 besides the runs' own
    /// (`schedule::speedup_curve`), ordered by sparsity: what `speedup.png` draws.
    pub speedup_curve: Vec<CurvePoint>,
}

/// The least gain of the whole recipe's simulated speedup from one run to the next sparser one
/// that counts as still growing: 5% a step.
pub const RETURNS_GAIN_PER_STEP: f64 = 0.05;

/// Where more sparsity stops paying on this model and fabric.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DiminishingReturns {
    /// The gain a step must reach to count ([`RETURNS_GAIN_PER_STEP`]).
    pub gain_per_step: f64,
    /// The sparsity beyond which every further step of the runs gains less; absent while the
    /// last step still gains as much.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sparsity: Option<f64>,
    /// Each step between consecutive runs: its sparsities and the whole recipe's gain.
    pub steps: Vec<ReturnsStep>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ReturnsStep {
    pub from_sparsity: f64,
    pub to_sparsity: f64,
    /// `simulated speedup at to / at from − 1`.
    pub gain: f64,
}

impl DiminishingReturns {
    /// One paragraph for the table: where the speedup stops growing, and each step's gain.
    fn text(&self) -> String {
        let steps: Vec<String> = self
            .steps
            .iter()
            .map(|s| {
                format!(
                    "{}->{} {:+.1}%",
                    s.from_sparsity,
                    s.to_sparsity,
                    100.0 * s.gain
                )
            })
            .collect();
        let verdict = match self.sparsity {
            Some(s) => format!(
                "beyond s={s} each step of sparsity gains the whole recipe less than {:.0}%",
                100.0 * self.gain_per_step
            ),
            None => format!(
                "the whole recipe still gains {:.0}% or more at the last step",
                100.0 * self.gain_per_step
            ),
        };
        format!(
            "\nMore sparsity: {verdict} (simulated, step by step: {}).\n",
            steps.join(", ")
        )
    }

    /// From `(sparsity, whole-recipe simulated speedup)` of every run, dense included; `None`
    /// with fewer than two sparse runs.
    pub fn of(runs: &[(f64, f64)]) -> Option<Self> {
        let mut sorted = runs.to_vec();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        if sorted.iter().filter(|(s, _)| *s > 0.0).count() < 2 {
            return None;
        }
        let steps: Vec<ReturnsStep> = sorted
            .windows(2)
            .map(|w| ReturnsStep {
                from_sparsity: w[0].0,
                to_sparsity: w[1].0,
                gain: w[1].1 / w[0].1.max(f64::MIN_POSITIVE) - 1.0,
            })
            .collect();
        // The first step after which no step gains enough.
        let flat_from = steps
            .iter()
            .rposition(|s| s.gain >= RETURNS_GAIN_PER_STEP)
            .map_or(0, |i| i + 1);
        let sparsity = steps.get(flat_from).map(|s| s.from_sparsity);
        Some(DiminishingReturns {
            gain_per_step: RETURNS_GAIN_PER_STEP,
            sparsity,
            steps,
        })
    }
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TrainRun {
    /// The run's pre-training sparsity (0 for the dense run); each phase has its own `sparsity`.
    pub run_sparsity: f64,
    pub phases: Vec<TrainPhase>,
    pub total: TrainPhase,
    /// Share of the run's cycles each category takes beyond what the FLOPs promise (sparse runs).
    pub gap: Vec<GapShare>,
    /// The categories that shrank against the dense run by more than the FLOPs did, with both
    /// ratios (sparse runs): what a simulated speedup above the theoretical one comes from.
    pub faster_than_flops: Vec<FasterThanFlops>,
    /// Dynamic sparse training (`--dynamic`, `recipe.dynamic`): its updates' cost and the same
    /// run with static masks beside it (sparse runs; left out with static masks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dynamic: Option<DynamicPhase>,
}

/// One phase of a run (or its total), as report.json, phases.csv and sweep points carry it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainPhase {
    pub phase: String,
    pub sparsity: f64,
    pub tokens: u64,
    /// Sequences trained, over every system; per second of the phase, overall and per system.
    pub sequences: u64,
    pub samples_per_second: f64,
    pub samples_per_second_per_system: f64,
    pub steps: u64,
    /// The wafer's work: forward, dgrad and wgrad (the nearest double; exact beside it).
    pub flops_dense: f64,
    pub flops_dense_exact: ExactCount,
    pub flops_executed: f64,
    pub flops_executed_exact: ExactCount,
    /// The optimizer's update, off-wafer, once per step.
    pub flops_optimizer: f64,
    pub flops_optimizer_exact: ExactCount,
    pub cycles: u64,
    pub seconds: f64,
    pub theoretical_speedup: f64,
    pub simulated_speedup: f64,
    pub pe_utilization_mean: f64,
    pub breakdown: Breakdown,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct GapShare {
    /// A machine key: `compute`, `reduction`, `io`, `imbalance`, `overhead`, `recompute`,
    /// `data_parallel`, `mask_update`.
    pub category: String,
    /// How tables name it (`I/O`, `data parallel`).
    pub label: String,
    pub share: f64,
}

impl TrainReport {
    pub fn new(
        model: &ModelSpec,
        fabric: &FabricSpec,
        sources: SpecSources,
        runs: &[RunResult],
        speedup_curve: Vec<CurvePoint>,
        seed: u64,
    ) -> Self {
        let clock = fabric.clock.clock_hz as f64;
        let dense = runs[0].total.breakdown;
        let step = &runs[0].pretrain_step;
        let masked_flops_share = step.sparsifiable_flops as f64 / step.flops_dense.max(1) as f64;
        let masked_cycles_share = step.sparsifiable_cycles as f64 / step.cycles.max(1) as f64;
        let unvalidated = unvalidated_keys(fabric);
        let systems = runs[0].total.systems;
        let runs: Vec<TrainRun> = runs
            .iter()
            .map(|run| {
                let gap = if run.sparsity > 0.0 {
                    gap_shares(&dense, &run.total.breakdown, run.total.theoretical_speedup)
                        .into_iter()
                        .map(|(category, share)| GapShare {
                            category: category.to_string(),
                            label: category_label(category).to_string(),
                            share,
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                let faster_than_flops = if run.sparsity > 0.0 {
                    faster_than_flops(&dense, &run.total.breakdown, run.total.theoretical_speedup)
                } else {
                    Vec::new()
                };
                TrainRun {
                    run_sparsity: run.sparsity,
                    phases: run
                        .phases
                        .iter()
                        .map(|p| TrainPhase::of_phase(p, clock))
                        .collect(),
                    total: TrainPhase::of_total(&run.total, run.sparsity, clock),
                    gap,
                    faster_than_flops,
                    dynamic: run.phases[0].dynamic.clone(),
                }
            })
            .collect();
        TrainReport {
            schema_version: SCHEMA_VERSION,
            version: crate::VERSION,
            seed,
            model: model.name.clone(),
            fabric: fabric.name.clone(),
            sources,
            validated: unvalidated.is_empty(),
            unvalidated_keys: unvalidated,
            mask: model.recipe.pattern,
            levels: model.recipe.levels,
            masks_file: super::step::MasksFile::of(model),
            dynamic: model.recipe.dynamic,
            clock_hz: fabric.clock.clock_hz,
            systems,
            peak_flops_per_second: fabric.peak_fp16_flops_per_second(),
            masked_flops_share,
            masked_cycles_share,
            diminishing_returns: DiminishingReturns::of(
                &runs
                    .iter()
                    .map(|r| (r.run_sparsity, r.total.simulated_speedup))
                    .collect::<Vec<_>>(),
            ),
            runs,
            speedup_curve,
        }
    }

    pub fn render_table(&self) -> String {
        let on = match self.systems {
            1 => format!(
                "{} ({} fp16 peak)",
                self.fabric,
                si(self.peak_flops_per_second, "FLOP/s")
            ),
            n => format!(
                "{n} x {} data-parallel ({} fp16 peak each; each system runs ceil(batch / {n}) \
                 sequences of a step)",
                self.fabric,
                si(self.peak_flops_per_second, "FLOP/s")
            ),
        };
        let mut out = format!(
            "wafersim train: {} on {on}, dense and sparse pre-training{}, dense fine-tuning, soft prompting\n\n",
            self.model,
            super::step::mask_words(self.mask, self.levels, self.masks_file.as_ref()),
        );
        out += &unvalidated_warning(&self.fabric, &self.unvalidated_keys).unwrap_or_default();
        if let Some(caveat) = self.mask.caveat() {
            let _ = writeln!(out, "note: {caveat}\n");
        }
        let peak = self.peak_flops_per_second * self.systems as f64;
        let mut t = Table::new([
            "run",
            "phase",
            "tokens",
            "steps",
            "FLOPs exec",
            "simulated time",
            "theory",
            "simulated",
            "PE busy",
            "of peak",
        ]);
        for run in &self.runs {
            let label = super::flops::run_label(run.run_sparsity);
            for p in run.phases.iter().chain(std::iter::once(&run.total)) {
                t.row([
                    label.clone(),
                    p.phase.clone(),
                    si(p.tokens as f64, ""),
                    thousands(p.steps as u128),
                    si(p.flops_executed, "FLOP"),
                    duration(p.seconds),
                    format!("{:.2}x", p.theoretical_speedup),
                    format!("{:.2}x", p.simulated_speedup),
                    format!("{:.1}%", 100.0 * p.pe_utilization_mean),
                    format!(
                        "{:.1}%",
                        100.0 * p.flops_executed / (p.seconds * peak).max(1.0)
                    ),
                ]);
            }
        }
        out += &t.render();
        out += "(PE busy: the mean PE's share of the time its core works, task overhead \
                included; of peak: executed FLOPs over the time at the fp16 peak of every system)\n";
        if let Some(returns) = &self.diminishing_returns {
            out += &returns.text();
        }
        if let Some(spec) = &self.dynamic {
            out += &self.dynamic_text(spec);
        }
        out += "\nWhere the gap goes (shares of each sparse run's simulated time beyond what its FLOPs promise):\n";
        for run in self.runs.iter().filter(|r| r.run_sparsity > 0.0) {
            let parts: Vec<String> = run
                .gap
                .iter()
                .filter(|g| g.share.abs() >= 0.0005)
                .map(|g| format!("{} {:.1}%", g.label, 100.0 * g.share))
                .collect();
            let _ = writeln!(
                out,
                "  s={}: {:.2}x on the masked weights -> {:.2}x by FLOPs (Amdahl: {:.0}% of the FLOPs stay dense) \
                 -> {:.2}x simulated. Beyond the FLOPs: {}",
                super::table::shown_sparsity(run.run_sparsity),
                1.0 / (1.0 - run.run_sparsity),
                run.total.theoretical_speedup,
                100.0 * (1.0 - self.masked_flops_share),
                run.total.simulated_speedup,
                parts.join(", ")
            );
            if run.total.simulated_speedup > run.total.theoretical_speedup {
                out += &self.beyond_flops_text(run);
            } else if !run.faster_than_flops.is_empty() {
                // A negative share above: say which category shrank faster than the FLOPs.
                let _ = writeln!(
                    out,
                    "    below zero: shrank faster than the FLOPs: {}",
                    shrank_faster_text(&run.faster_than_flops)
                );
            }
        }
        out
    }

    /// One line per phase of every run, the same numbers as the JSON.
    pub fn phases_csv(&self) -> Result<String> {
        csv_text(self.runs.iter().flat_map(|run| {
            run.phases
                .iter()
                .chain(std::iter::once(&run.total))
                .map(|p| PhaseRow::new(run.run_sparsity, p))
        }))
    }
}

impl TrainReport {
    /// Dynamic sparse training beside static masks, one line per sparse run.
    fn dynamic_text(&self, spec: &DynamicSpec) -> String {
        let mut out = format!(
            "\nDynamic sparse training ({}: masks updated every {} steps until {:.0}% of pre-training, \
             dropping and regrowing {} of each weight's non-zeros at first, less on a cosine), \
             against the same runs with static masks:\n",
            spec.method.label(),
            thousands(spec.update_every as u128),
            100.0 * spec.end_fraction,
            spec.drop_fraction
        );
        let clock = self.clock_hz as f64;
        if self.runs.iter().all(|r| r.dynamic.is_none()) {
            out += "  no sparse run: the schedule changes no mask\n";
        }
        for run in &self.runs {
            let Some(d) = &run.dynamic else { continue };
            let pretrain = &run.phases[0];
            let wafer = d.mask_updates * (d.update_step_cycles.saturating_sub(d.step_cycles));
            let on_wafer = match spec.method {
                crate::spec::DynamicMethod::Rigl => format!(
                    "dense weight gradients {} ({} per update step)",
                    duration(wafer as f64 / clock),
                    duration(d.update_step_cycles.saturating_sub(d.step_cycles) as f64 / clock)
                ),
                crate::spec::DynamicMethod::Set => "nothing on the wafer".to_string(),
            };
            let _ = writeln!(
                out,
                "  s={}: {} updates; pre-training {} static -> {} dynamic ({:+.2}%: {on_wafer}, \
                 mask updates on the weight servers {}); whole recipe {:.2}x -> {:.2}x simulated, \
                 {:.2}x -> {:.2}x by FLOPs",
                super::table::shown_sparsity(run.run_sparsity),
                thousands(d.mask_updates as u128),
                duration(d.static_cycles as f64 / clock),
                duration(pretrain.seconds),
                100.0 * (pretrain.cycles as f64 / d.static_cycles.max(1) as f64 - 1.0),
                duration(d.mask_update_cycles as f64 / clock),
                d.static_total_simulated_speedup,
                run.total.simulated_speedup,
                d.static_total_theoretical_speedup,
                run.total.theoretical_speedup,
            );
        }
        out
    }

    /// Why a run beats its FLOPs: the masked weights' ops are a larger share of the dense step's
    /// time than of its FLOPs, and each category that shrank faster than the FLOPs, with what that
    /// shrinking is on the wafer.
    fn beyond_flops_text(&self, run: &TrainRun) -> String {
        let parts = shrank_faster_text(&run.faster_than_flops);
        format!(
        "    {:.2}x simulated beats {:.2}x by FLOPs: the ops on the masked weights take {:.0}% of a dense pre-training step's time but {:.0}% of its FLOPs, so removing their work removes more time than FLOPs. Shrank faster than the FLOPs: {}\n",
        run.total.simulated_speedup,
        run.total.theoretical_speedup,
        100.0 * self.masked_cycles_share,
        100.0 * self.masked_flops_share,
        parts
    )
    }
}

/// Each category that shrank faster than the FLOPs, with what that shrinking is on the wafer.
fn shrank_faster_text(faster: &[FasterThanFlops]) -> String {
    let parts: Vec<String> = faster
        .iter()
        .map(|f| {
            format!(
                "{} {:.2}x ({})",
                f.label,
                f.category_speedup,
                match f.category {
                    "io" => "a smaller weight stream waits less at the wafer's edge, and the dense run may stream more: every weight again for each microbatch, its checkpoints out and back when it offloads them",
                    "overhead" => "fewer task activations, fill and drain: the dense run's ops on the masked weights pay a task per packed wavelet",
                    "reduction" => "fewer partial sums and operand copies left unhidden",
                    "imbalance" => "less spread between PE columns",
                    _ => "SIMD padding rounds differently",
                }
            )
        })
        .collect();
    parts.join("; ")
}

/// A line of phases.csv.
#[derive(Serialize)]
struct PhaseRow<'a> {
    run_sparsity: f64,
    phase: &'a str,
    sparsity: f64,
    tokens: u64,
    steps: u64,
    flops_dense: f64,
    flops_executed: f64,
    flops_optimizer: f64,
    cycles: u64,
    seconds: f64,
    theoretical_speedup: f64,
    simulated_speedup: f64,
    pe_utilization_mean: f64,
    sparse_compute_cycles: u64,
    dense_compute_cycles: u64,
    reduction_cycles: u64,
    io_cycles: u64,
    imbalance_cycles: u64,
    overhead_cycles: u64,
    recompute_cycles: u64,
    data_parallel_cycles: u64,
    mask_update_cycles: u64,
}

impl<'a> PhaseRow<'a> {
    fn new(run_sparsity: f64, p: &'a TrainPhase) -> Self {
        let b = &p.breakdown;
        PhaseRow {
            run_sparsity,
            phase: &p.phase,
            sparsity: p.sparsity,
            tokens: p.tokens,
            steps: p.steps,
            flops_dense: p.flops_dense,
            flops_executed: p.flops_executed,
            flops_optimizer: p.flops_optimizer,
            cycles: p.cycles,
            seconds: p.seconds,
            theoretical_speedup: p.theoretical_speedup,
            simulated_speedup: p.simulated_speedup,
            pe_utilization_mean: p.pe_utilization_mean,
            sparse_compute_cycles: b.sparse_compute,
            dense_compute_cycles: b.dense_compute,
            reduction_cycles: b.reduction,
            io_cycles: b.io,
            imbalance_cycles: b.imbalance,
            overhead_cycles: b.overhead,
            recompute_cycles: b.recompute,
            data_parallel_cycles: b.data_parallel,
            mask_update_cycles: b.mask_update,
        }
    }
}

/// Every op of each run's pre-training step, summed over its microbatches.
pub fn ops_csv(runs: &[RunResult]) -> Result<String> {
    csv_text(runs.iter().flat_map(|run| {
        run.pretrain_step.ops.iter().map(|op| {
            let b = &op.breakdown;
            let tile = OpTile::of(op);
            OpCsvRow {
                run_sparsity: run.sparsity,
                op: &op.name,
                kind: op.kind,
                op_pass: op.pass,
                sparse: op.sparse,
                weight_format: weight_format_key(op.weight_format),
                tile: tile.label,
                tile_rows: tile.rows,
                tile_split_k: tile.split_k,
                tile_split_n: tile.split_n,
                cycles: op.cycles,
                sparse_compute_cycles: b.sparse_compute,
                dense_compute_cycles: b.dense_compute,
                reduction_cycles: b.reduction,
                io_cycles: b.io,
                imbalance_cycles: b.imbalance,
                overhead_cycles: b.overhead,
                recompute_cycles: b.recompute,
                io_in_bytes: op.io_in_bytes,
                io_out_bytes: op.io_out_bytes,
                flops_dense: op.flops_dense as f64,
                flops_executed: op.flops_executed as f64,
                flops_recompute: op.flops_recompute as f64,
            }
        })
    }))
}

/// `sparse` or `dense` (how the op's weight travels), `none` for an op without a weight matrix.
pub(crate) fn weight_format_key(format: Option<crate::map::WeightFormat>) -> &'static str {
    format.map_or("none", |f| f.name())
}

/// Where an op runs, as ops.csv and `step --json` give it: `tile` names the GEMM tile
/// (`rows x c_k x c_n`), or says why there is none (`elementwise`: element-wise ops and the
/// embedding run over the whole region; `off_wafer`: the optimizer's updates). The numbers are
/// the tile's, and empty (null in JSON) exactly when `tile` is not a GEMM tile.
pub(crate) struct OpTile {
    pub label: String,
    pub rows: Option<u64>,
    pub split_k: Option<u64>,
    pub split_n: Option<u64>,
}

impl OpTile {
    pub(crate) fn of(op: &crate::schedule::OpRow) -> OpTile {
        let label = match (&op.gemm_tile, op.pass.on_wafer()) {
            (Some(_), _) => op.tile.clone(),
            (None, true) => "elementwise".to_string(),
            (None, false) => "off_wafer".to_string(),
        };
        OpTile {
            label,
            rows: op.gemm_tile.map(|t| t.rows),
            split_k: op.gemm_tile.map(|t| t.c_k),
            split_n: op.gemm_tile.map(|t| t.c_n),
        }
    }
}

/// A line of ops.csv.
#[derive(Serialize)]
struct OpCsvRow<'a> {
    run_sparsity: f64,
    op: &'a str,
    kind: crate::graph::OpKind,
    /// `forward`, `dgrad`, `wgrad`, `update` (as `step --json` spells them).
    op_pass: crate::graph::Pass,
    sparse: bool,
    weight_format: &'static str,
    tile: String,
    tile_rows: Option<u64>,
    tile_split_k: Option<u64>,
    tile_split_n: Option<u64>,
    cycles: u64,
    sparse_compute_cycles: u64,
    dense_compute_cycles: u64,
    reduction_cycles: u64,
    io_cycles: u64,
    imbalance_cycles: u64,
    overhead_cycles: u64,
    recompute_cycles: u64,
    io_in_bytes: u64,
    io_out_bytes: u64,
    flops_dense: f64,
    flops_executed: f64,
    flops_recompute: f64,
}

impl TrainPhase {
    /// A phase of a run; `clock` (Hz) converts cycles to seconds.
    pub fn of_phase(p: &PhaseResult, clock: f64) -> TrainPhase {
        let seconds = p.cycles as f64 / clock;
        let samples_per_second = p.sequences as f64 / seconds.max(f64::MIN_POSITIVE);
        TrainPhase {
            phase: p.phase.name().to_string(),
            sparsity: p.sparsity,
            tokens: p.tokens,
            sequences: p.sequences,
            samples_per_second,
            samples_per_second_per_system: samples_per_second / p.systems as f64,
            steps: p.steps,
            flops_dense: p.flops_dense as f64,
            flops_dense_exact: ExactCount(p.flops_dense),
            flops_executed: p.flops_executed as f64,
            flops_executed_exact: ExactCount(p.flops_executed),
            flops_optimizer: p.flops_optimizer as f64,
            flops_optimizer_exact: ExactCount(p.flops_optimizer),
            cycles: p.cycles,
            seconds,
            theoretical_speedup: p.theoretical_speedup,
            simulated_speedup: p.simulated_speedup,
            pe_utilization_mean: p.pe_utilization_mean,
            breakdown: p.breakdown,
        }
    }

    /// The whole recipe of a run at `sparsity`.
    pub fn of_total(t: &PhaseTotal, sparsity: f64, clock: f64) -> TrainPhase {
        let seconds = t.cycles as f64 / clock;
        let samples_per_second = t.sequences as f64 / seconds.max(f64::MIN_POSITIVE);
        TrainPhase {
            phase: "total".to_string(),
            sparsity,
            tokens: t.tokens,
            sequences: t.sequences,
            samples_per_second,
            samples_per_second_per_system: samples_per_second / t.systems as f64,
            steps: t.steps,
            flops_dense: t.flops_dense as f64,
            flops_dense_exact: ExactCount(t.flops_dense),
            flops_executed: t.flops_executed as f64,
            flops_executed_exact: ExactCount(t.flops_executed),
            flops_optimizer: t.flops_optimizer as f64,
            flops_optimizer_exact: ExactCount(t.flops_optimizer),
            cycles: t.cycles,
            seconds,
            theoretical_speedup: t.theoretical_speedup,
            simulated_speedup: t.simulated_speedup,
            pe_utilization_mean: t.pe_utilization_mean,
            breakdown: t.breakdown,
        }
    }
}

/// The figures of a phase that a saved result (`report.json`, a sweep's point file) is checked
/// by, read as floats, so that a value of the wrong kind (a fraction of a cycle) is refused
/// naming its field rather than failing to parse.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct PhaseFigures {
    pub phase: String,
    pub sparsity: f64,
    /// FLOP counts (`u128` in the report; as floats here, as the speedup was computed).
    pub flops_dense: f64,
    pub flops_executed: f64,
    pub cycles: f64,
    pub seconds: f64,
    pub theoretical_speedup: f64,
    pub simulated_speedup: f64,
    pub pe_utilization_mean: f64,
}

/// Relative difference allowed between a saved ratio and the ratio it was computed as: the
/// result stores both exactly, so this only leaves room for another rounding of one division.
const RATIO_RELATIVE_TOLERANCE: f64 = 1e-12;

impl From<&TrainPhase> for PhaseFigures {
    fn from(p: &TrainPhase) -> Self {
        PhaseFigures {
            phase: p.phase.clone(),
            sparsity: p.sparsity,
            flops_dense: p.flops_dense,
            flops_executed: p.flops_executed,
            cycles: p.cycles as f64,
            seconds: p.seconds,
            theoretical_speedup: p.theoretical_speedup,
            simulated_speedup: p.simulated_speedup,
            pe_utilization_mean: p.pe_utilization_mean,
        }
    }
}

impl PhaseFigures {
    /// Whether these are figures a run produces: its counts are counts, its speedups their
    /// ratios (dense over executed FLOPs; `dense_cycles`, the dense run's, over its cycles), its
    /// seconds its cycles at `clock_hz`, its utilisation a fraction. The field and why not, if
    /// not. The one check `plot speedup` and `merge` hold saved results to.
    pub fn check(
        &self,
        dense_cycles: f64,
        clock_hz: f64,
    ) -> std::result::Result<(), (String, String)> {
        let whole = |v: f64| v >= 1.0 && v.fract() == 0.0 && v <= u64::MAX as f64;
        if !whole(self.cycles) {
            return Err((
                "cycles".into(),
                format!("{}: not a whole number of cycles", self.cycles),
            ));
        }
        if !(self.flops_executed >= 1.0 && self.flops_executed <= self.flops_dense) {
            return Err((
                "flops_executed".into(),
                format!(
                    "{} of {} dense: no run executes these",
                    self.flops_executed, self.flops_dense
                ),
            ));
        }
        if !(0.0..=1.0).contains(&self.pe_utilization_mean) {
            return Err((
                "pe_utilization_mean".into(),
                format!("{}: not a fraction of 0 to 1", self.pe_utilization_mean),
            ));
        }
        let expected = [
            (
                "theoretical_speedup",
                self.theoretical_speedup,
                self.flops_dense / self.flops_executed,
                "its FLOPs dense over executed",
            ),
            (
                "simulated_speedup",
                self.simulated_speedup,
                dense_cycles / self.cycles,
                "the dense run's cycles over its cycles",
            ),
            (
                "seconds",
                self.seconds,
                self.cycles / clock_hz,
                "its cycles at the fabric's clock",
            ),
        ];
        for (key, saved, ratio, what) in expected {
            // `saved` is finite (JSON has no NaN or infinity); `ratio` is not at a clock of 0.
            if !ratio.is_finite() || (saved - ratio).abs() > RATIO_RELATIVE_TOLERANCE * ratio {
                return Err((key.into(), format!("{saved} is not {what} ({ratio})")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_diminish_after_the_last_step_that_gains_enough() {
        let flat = DiminishingReturns::of(&[(0.0, 1.0), (0.25, 1.3), (0.5, 1.6), (0.75, 1.65)]);
        assert_eq!(flat.unwrap().sparsity, Some(0.5));
        let growing = DiminishingReturns::of(&[(0.0, 1.0), (0.5, 1.2), (0.75, 1.9)]);
        assert_eq!(growing.unwrap().sparsity, None);
        // Growth that returns later does not count as flat: the last step gains 10%.
        let late = DiminishingReturns::of(&[(0.0, 1.0), (0.3, 1.01), (0.6, 1.02), (0.9, 1.12)]);
        assert_eq!(late.unwrap().sparsity, None);
        assert!(DiminishingReturns::of(&[(0.0, 1.0), (0.5, 1.4)]).is_none());
    }
}
