//! One training step as a DAG of ops, each with its shapes and exact FLOPs: the theoretical side.
//!
//! Architecture Invariant: `graph` does no I/O and knows nothing about the fabric. Every FLOP
//! count is an integer closed form of the model's sizes (see `flops.rs` for the conventions),
//! so the same spec always gives the same counts.

mod build;
mod flops;
mod op;

pub use build::{StepConfig, StepFlops, StepGraph};
pub use flops::{
    elementwise_profile, ElementwiseProfile, ELEMENTWISE_BACKWARD_FACTOR, GELU_FLOPS_PER_ELEMENT,
    LAYERNORM_FLOPS_PER_ELEMENT, LAYERNORM_WGRAD_FLOPS_PER_ELEMENT,
    LOSS_BACKWARD_FLOPS_PER_ELEMENT, LOSS_FLOPS_PER_ELEMENT, SOFTMAX_FLOPS_PER_ELEMENT,
};
pub use op::{Dims, Op, OpKind, Pass, Weight};

mod params;
pub use params::ParamCounts;

mod phase;
pub use phase::{recipe_flops, recipe_flops_runs, PhaseFlops};
