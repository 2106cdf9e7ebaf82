//! `wafersim flops`: the theoretical side of the recipe, per phase and in total.

use serde::Serialize;

use super::json::{flops_pair, ExactCount, SCHEMA_VERSION};
use super::table::{duration, si, thousands, Table};
use crate::graph::PhaseFlops;
use crate::spec::{FabricSpec, ModelSpec, Phase};

/// FLOPs of the whole recipe for the dense run and each pre-training sparsity.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FlopsReport {
    /// The version of the field names and types (`report::SCHEMA_VERSION`).
    pub schema_version: u32,
    pub version: &'static str,
    pub seed: u64,
    pub model: String,
    pub fabric: String,
    /// The fabric's dense fp16 peak, used only for `seconds_at_peak`.
    pub peak_flops_per_second: f64,
    /// The masks' structure (`random`, `N:M`, `block:B`, `rows`, `cols`, `skewed:SIGMA`).
    #[schemars(with = "String")]
    pub mask: crate::sparsity::Pattern,
    /// How each run's sparsity is shared among the sparse weights (`uniform` or `erk`).
    pub levels: crate::spec::Levels,
    /// Masks read from a file (`--masks`): the one sparse run's; left out without.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub masks_file: Option<super::step::MasksFile>,
    /// Dynamic sparse training of the sparse runs' pre-training (`--dynamic`); left out with
    /// static masks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dynamic: Option<crate::spec::DynamicSpec>,
    pub runs: Vec<FlopsRun>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FlopsRun {
    /// The run's pre-training sparsity; each phase has its own `sparsity`.
    pub run_sparsity: f64,
    pub phases: Vec<PhaseRow>,
    pub total: TotalRow,
}

/// FLOP counts are the nearest doubles, each with its exact integer beside it (`*_exact`).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PhaseRow {
    pub phase: Phase,
    pub sparsity: f64,
    pub tokens: u64,
    pub steps: u64,
    pub tokens_per_step: u64,
    pub flops_dense_per_token: f64,
    pub flops_executed_per_token: f64,
    pub flops_dense_per_step: f64,
    pub flops_dense_per_step_exact: ExactCount,
    pub flops_executed_per_step: f64,
    pub flops_executed_per_step_exact: ExactCount,
    pub flops_optimizer_per_step: f64,
    pub flops_optimizer_per_step_exact: ExactCount,
    pub flops_dense: f64,
    pub flops_dense_exact: ExactCount,
    pub flops_executed: f64,
    pub flops_executed_exact: ExactCount,
    pub flops_optimizer: f64,
    pub flops_optimizer_exact: ExactCount,
    pub theoretical_speedup: f64,
    /// Executed FLOPs at the fabric's peak: the lower bound on wall-clock that FLOPs imply.
    pub seconds_at_peak: f64,
    /// Mask updates of dynamic sparse training (`--dynamic`) in the phase: a RigL update
    /// step's dense weight gradients are in `flops_executed` (the per-step counts are a regular
    /// step's). Left out with static masks.
    #[serde(skip_serializing_if = "is_zero")]
    pub mask_updates: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TotalRow {
    pub tokens: u64,
    pub steps: u64,
    pub flops_dense: f64,
    pub flops_dense_exact: ExactCount,
    pub flops_executed: f64,
    pub flops_executed_exact: ExactCount,
    pub flops_optimizer: f64,
    pub flops_optimizer_exact: ExactCount,
    pub theoretical_speedup: f64,
    pub seconds_at_peak: f64,
}

impl FlopsReport {
    /// The runs `graph::recipe_flops_runs` counted: (sparsity, its phases) each.
    pub fn new(
        model: &ModelSpec,
        fabric: &FabricSpec,
        runs: &[(f64, Vec<PhaseFlops>)],
        seed: u64,
    ) -> Self {
        let peak = fabric.peak_fp16_flops_per_second();
        let runs = runs
            .iter()
            .map(|(s, phases)| FlopsRun::new(phases, *s, peak))
            .collect();
        FlopsReport {
            schema_version: SCHEMA_VERSION,
            version: crate::VERSION,
            seed,
            model: model.name.clone(),
            fabric: fabric.name.clone(),
            peak_flops_per_second: peak,
            mask: model.recipe.pattern,
            levels: model.recipe.levels,
            masks_file: super::step::MasksFile::of(model),
            dynamic: model.recipe.dynamic,
            runs,
        }
    }

    pub fn render_table(&self) -> String {
        let mut out = format!(
            "wafersim flops: {}{} (theoretical side; seconds at the {} fp16 peak of {})\n\n",
            self.model,
            super::step::mask_words(self.mask, self.levels, self.masks_file.as_ref()),
            si(self.peak_flops_per_second, "FLOP/s"),
            self.fabric
        );
        let mut t = Table::new([
            "run",
            "phase",
            "tokens",
            "steps",
            "FLOP/token dense",
            "FLOP/token exec",
            "FLOP exec",
            "FLOP optimizer",
            "theory speedup",
            "time at peak",
        ]);
        for run in &self.runs {
            let label = run_label(run.run_sparsity);
            for p in &run.phases {
                t.row([
                    label.clone(),
                    p.phase.name().to_string(),
                    thousands(p.tokens as u128),
                    thousands(p.steps as u128),
                    si(p.flops_dense_per_token, "FLOP"),
                    si(p.flops_executed_per_token, "FLOP"),
                    si(p.flops_executed, "FLOP"),
                    si(p.flops_optimizer, "FLOP"),
                    format!("{:.3}x", p.theoretical_speedup),
                    duration(p.seconds_at_peak),
                ]);
            }
            let total = &run.total;
            t.row([
                label,
                "total".to_string(),
                thousands(total.tokens as u128),
                thousands(total.steps as u128),
                String::new(),
                String::new(),
                si(total.flops_executed, "FLOP"),
                si(total.flops_optimizer, "FLOP"),
                format!("{:.3}x", total.theoretical_speedup),
                duration(total.seconds_at_peak),
            ]);
        }
        out.push_str(&t.render());
        out.push_str(
            "\nPre-training runs at the sparsity; fine-tuning and soft prompting are dense. Attention \
             scores and A·V are counted in full (no causal halving). FLOPs are the wafer's (forward, \
             dgrad, wgrad); the optimizer's update runs off-wafer, once per step.\n",
        );
        if let Some(d) = &self.dynamic {
            let updates = self
                .runs
                .iter()
                .flat_map(|r| &r.phases)
                .map(|p| p.mask_updates)
                .max()
                .unwrap_or(0);
            let rigl = match d.method {
                crate::spec::DynamicMethod::Rigl => {
                    ", each update step computing the sparse weights' gradients dense (in FLOP \
                     exec; FLOP/token exec is a regular step's)"
                }
                crate::spec::DynamicMethod::Set => "",
            };
            out += &format!(
                "Sparse pre-training's masks change ({}): {} updates, every {} steps until {:.0}% \
                 of its steps{rigl}.\n",
                d.method.label(),
                thousands(updates as u128),
                thousands(d.update_every as u128),
                100.0 * d.end_fraction
            );
        }
        out
    }
}

impl FlopsRun {
    fn new(phases: &[PhaseFlops], sparsity: f64, peak: f64) -> Self {
        let rows: Vec<PhaseRow> = phases.iter().map(|p| PhaseRow::new(p, peak)).collect();
        let flops_dense = phases.iter().map(|p| p.flops_dense).sum::<u128>();
        let flops_executed = phases.iter().map(|p| p.flops_executed).sum::<u128>();
        let flops_optimizer = phases.iter().map(|p| p.flops_optimizer).sum::<u128>();
        let total = TotalRow {
            tokens: phases.iter().map(|p| p.tokens).sum(),
            steps: phases.iter().map(|p| p.steps).sum(),
            flops_dense: flops_dense as f64,
            flops_dense_exact: ExactCount(flops_dense),
            flops_executed: flops_executed as f64,
            flops_executed_exact: ExactCount(flops_executed),
            flops_optimizer: flops_optimizer as f64,
            flops_optimizer_exact: ExactCount(flops_optimizer),
            theoretical_speedup: flops_dense as f64 / flops_executed as f64,
            seconds_at_peak: flops_executed as f64 / peak,
        };
        FlopsRun {
            run_sparsity: sparsity,
            phases: rows,
            total,
        }
    }
}

impl PhaseRow {
    fn new(p: &PhaseFlops, peak: f64) -> Self {
        PhaseRow {
            phase: p.phase,
            sparsity: p.sparsity,
            tokens: p.tokens,
            steps: p.steps,
            tokens_per_step: p.tokens_per_step,
            flops_dense_per_token: p.flops_dense_per_token(),
            flops_executed_per_token: p.flops_executed_per_token(),
            flops_dense_per_step: flops_pair(p.flops_dense_per_step).0,
            flops_dense_per_step_exact: ExactCount(p.flops_dense_per_step),
            flops_executed_per_step: flops_pair(p.flops_executed_per_step).0,
            flops_executed_per_step_exact: ExactCount(p.flops_executed_per_step),
            flops_optimizer_per_step: flops_pair(p.flops_optimizer_per_step).0,
            flops_optimizer_per_step_exact: ExactCount(p.flops_optimizer_per_step),
            flops_dense: flops_pair(p.flops_dense).0,
            flops_dense_exact: ExactCount(p.flops_dense),
            flops_executed: flops_pair(p.flops_executed).0,
            flops_executed_exact: ExactCount(p.flops_executed),
            flops_optimizer: flops_pair(p.flops_optimizer).0,
            flops_optimizer_exact: ExactCount(p.flops_optimizer),
            theoretical_speedup: p.theoretical_speedup(),
            seconds_at_peak: p.flops_executed as f64 / peak,
            mask_updates: p.mask_updates,
        }
    }
}

/// "dense" or "s=0.75": how a run is named in tables.
pub(crate) fn run_label(sparsity: f64) -> String {
    if sparsity == 0.0 {
        "dense".to_string()
    } else {
        format!("s={}", super::table::shown_sparsity(sparsity))
    }
}
