//! The theoretical side of a whole phase: its steps and their FLOPs, exactly.

use serde::Serialize;

use super::{StepConfig, StepGraph};
use crate::spec::{ModelSpec, Phase};

/// FLOPs of one phase of the recipe at one sparsity. Every count is exact: the last batch of a
/// phase may be partial and is built as a step of its own.
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
    /// FLOPs of the whole phase.
    pub flops_dense: u128,
    pub flops_executed: u128,
}

impl PhaseFlops {
    pub fn of(model: &ModelSpec, phase: Phase, sparsity: f64) -> Self {
        let config = StepConfig::for_phase(model, phase, sparsity);
        let step = StepGraph::build(model, config);
        let sequences = model.phase_sequences(phase);
        let full_steps = sequences / config.batch_sequences;
        let remainder = sequences % config.batch_sequences;
        let (mut dense, mut executed) = (
            full_steps as u128 * step.flops_dense(),
            full_steps as u128 * step.flops_executed(),
        );
        if remainder > 0 {
            let last = StepGraph::build(
                model,
                StepConfig {
                    batch_sequences: remainder,
                    ..config
                },
            );
            dense += last.flops_dense();
            executed += last.flops_executed();
        }
        PhaseFlops {
            phase,
            sparsity,
            tokens: sequences * config.seq_len,
            steps: model.phase_steps(phase),
            tokens_per_step: config.tokens(),
            flops_dense_per_step: step.flops_dense(),
            flops_executed_per_step: step.flops_executed(),
            flops_dense: dense,
            flops_executed: executed,
        }
    }

    /// Dense FLOPs per token of a full step (a ratio, for reports).
    pub fn flops_dense_per_token(&self) -> f64 {
        self.flops_dense_per_step as f64 / self.tokens_per_step as f64
    }

    pub fn flops_executed_per_token(&self) -> f64 {
        self.flops_executed_per_step as f64 / self.tokens_per_step as f64
    }

    /// What the FLOP count promises: dense FLOPs ÷ executed FLOPs.
    pub fn theoretical_speedup(&self) -> f64 {
        self.flops_dense as f64 / self.flops_executed as f64
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
