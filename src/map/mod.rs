//! Mapping a step onto the fabric in weight-streaming mode: activations resident, weights streamed
//! in per op, weight gradients streamed out, the optimizer off-wafer (its cost is I/O).
//!
//! The mapper chooses the microbatch (gradient accumulation over the recipe's batch) jointly
//! with where the activations backward reads are kept ([`Activations`]: in SRAM, attention
//! recomputed, per-layer checkpoints recomputed in backward, or checkpoints offloaded), the
//! token chunks of the LM head and loss, the wire format of each sparse weight (`wire.rs`), and
//! each GEMM's tile (rows used, split of the columns
//! between K and N) by searching candidates with the cost models and keeping the fastest plan
//! that fits every PE's SRAM.
//!
//! Architecture Invariant: `map` does no I/O and draws no random numbers; its output, a `Plan`,
//! passes `Plan::verify()` or mapping fails with the op, the PE, the tensor and the bytes over.

mod memory;
mod ops;
mod plan;
mod search;
mod wire;

pub use memory::{
    buffer_elements_per_token, checkpoint_bytes_per_token, layer_elements_per_token,
    saved_bytes_per_token, Activations, CHECKPOINTS_PER_LAYER,
};
pub use ops::{op_plan, OpPlan, WeightFormat};
pub use plan::{HeadChunking, MicrobatchGroup, Plan, SramBudget};
pub use search::{map_step, plan_phases, Alternative, MapOptions, PhasePlan, ALTERNATIVES};
