//! The theoretical side of a whole phase: its steps and their FLOPs, exactly.

use serde::Serialize;

use super::{StepConfig, StepFlops, StepGraph};
use crate::spec::{sparsity_levels, DynamicMethod, ModelSpec, Phase};

/// FLOPs of one phase of the recipe at one sparsity. Every count is exact: the last batch of a
/// phase may be partial and is built as a step of its own. `flops_dense` and `flops_executed`
/// are the wafer's work; the optimizer's, off-wafer, is `flops_optimizer` (once per step).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseFlops {
    pub phase: Phase,
    pub sparsity: f64,
    pub tokens: u64,
    pub steps: u64,
    pub tokens_per_step: u64,
    /// FLOPs of one full step.
    pub flops_dense_per_step: u128,
    pub flops_executed_per_step: u128,
    pub flops_optimizer_per_step: u128,
    /// FLOPs of the whole phase.
    pub flops_dense: u128,
    pub flops_executed: u128,
    pub flops_optimizer: u128,
    /// Mask updates of dynamic sparse training (`recipe.dynamic`) in the phase; with RigL each
    /// runs its step with dense weight gradients, counted in `flops_executed`. 0 (left out of
    /// reports) for static masks.
    #[serde(skip_serializing_if = "is_zero")]
    pub mask_updates: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl PhaseFlops {
    pub fn of(model: &ModelSpec, phase: Phase, sparsity: f64) -> Self {
        let config = StepConfig::for_phase(model, phase, sparsity);
        let step = StepGraph::build(model, config).flops();
        let sequences = model.phase_sequences(phase);
        let full_steps = sequences / config.batch_sequences;
        let remainder = sequences % config.batch_sequences;
        let mask_updates = model.mask_updates(phase, sparsity).map_or(0, |(_, n)| n);
        let mut total = step.times(full_steps - mask_updates);
        if mask_updates > 0 {
            total = total + update_step_flops(model, config, step).times(mask_updates);
        }
        if remainder > 0 {
            let last = StepGraph::build(
                model,
                StepConfig {
                    batch_sequences: remainder,
                    ..config
                },
            );
            total = total + last.flops();
        }
        PhaseFlops {
            phase,
            sparsity,
            tokens: sequences * config.seq_len,
            steps: model.phase_steps(phase),
            tokens_per_step: config.tokens(),
            flops_dense_per_step: step.flops_dense,
            flops_executed_per_step: step.flops_executed,
            flops_optimizer_per_step: step.flops_optimizer,
            flops_dense: total.flops_dense,
            flops_executed: total.flops_executed,
            flops_optimizer: total.flops_optimizer,
            mask_updates,
        }
    }

    /// Dense FLOPs per token of a full step (a ratio, for reports).
    pub fn flops_dense_per_token(&self) -> f64 {
        self.flops_dense_per_step as f64 / self.tokens_per_step as f64
    }

    pub fn flops_executed_per_token(&self) -> f64 {
        self.flops_executed_per_step as f64 / self.tokens_per_step as f64
    }

    /// What the FLOP count promises: dense FLOPs ÷ executed FLOPs of the wafer's work.
    pub fn theoretical_speedup(&self) -> f64 {
        self.flops_dense as f64 / self.flops_executed as f64
    }
}

/// FLOPs of a mask-update step of the recipe's dynamic sparse training, `step` being the
/// regular step at `config`: RigL's computes every sparse weight's gradient dense; SET's is the
/// regular step (its regrowth draws positions at random, off the wafer).
pub fn update_step_flops(model: &ModelSpec, config: StepConfig, step: StepFlops) -> StepFlops {
    match model.recipe.dynamic.map(|d| d.method) {
        Some(DynamicMethod::Rigl) => {
            StepGraph::build(model, config.with_dense_weight_gradients()).flops()
        }
        _ => step,
    }
}

/// The recipe's phases at a pre-training sparsity: pre-training sparse, the rest dense.
pub fn recipe_flops(model: &ModelSpec, sparsity: f64) -> Vec<PhaseFlops> {
    Phase::ALL
        .iter()
        .map(|&phase| {
            let s = if phase == Phase::Pretrain {
                sparsity
            } else {
                0.0
            };
            PhaseFlops::of(model, phase, s)
        })
        .collect()
}

/// The recipe's FLOPs for the dense run and each pre-training sparsity (dense first; a 0 in
/// `sparsities` is not repeated): (sparsity, its phases) per run.
pub fn recipe_flops_runs(model: &ModelSpec, sparsities: &[f64]) -> Vec<(f64, Vec<PhaseFlops>)> {
    sparsity_levels(sparsities)
        .into_iter()
        .map(|s| (s, recipe_flops(model, s)))
        .collect()
}
