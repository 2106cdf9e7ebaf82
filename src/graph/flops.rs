//! FLOP conventions for the ops that are not matrix products.
//!
//! A matrix product `[m×k]·[k×n]` costs `2·m·k·n` FLOPs (one multiply, one add per term); with a
//! sparse weight only its non-zeros are multiplied, `2·m·nnz`. Attention scores and A·V are
//! counted in full: a causal mask would halve them, but the wafer computes the whole square, and
//! the usual estimate `6·N + 12·L·S·d` counts it whole too. Bias adds cost one FLOP per output.
//! The element-wise ops below are a small share of a step (< 1% for MediSwift); their constants
//! follow the usual textbook counts and are fixed here so that every count is exact.

use super::{OpKind, Pass};

/// LayerNorm forward per element: mean (1), variance (3), normalise (2), scale and shift (2).
pub const LAYERNORM_FLOPS_PER_ELEMENT: u128 = 8;
/// LayerNorm weight gradient per element: dγ = Σ dy·x̂ (2), dβ = Σ dy (1).
pub const LAYERNORM_WGRAD_FLOPS_PER_ELEMENT: u128 = 3;
/// Softmax forward per element: scale (1), max (1), subtract and exponentiate (2), sum (1).
/// The divide is folded into the exponent's scale.
pub const SOFTMAX_FLOPS_PER_ELEMENT: u128 = 5;
/// GeLU (tanh form) forward per element: cube, scale, add, tanh, add, multiply, halve, ~8.
pub const GELU_FLOPS_PER_ELEMENT: u128 = 8;
/// Softmax cross-entropy forward per vocabulary logit: as softmax.
pub const LOSS_FLOPS_PER_ELEMENT: u128 = 5;
/// Softmax cross-entropy backward per logit: (p − y) / T.
pub const LOSS_BACKWARD_FLOPS_PER_ELEMENT: u128 = 2;
/// An element-wise op's input gradient (LayerNorm, softmax, GeLU) costs this many times its forward.
pub const ELEMENTWISE_BACKWARD_FACTOR: u128 = 2;

/// How an element-wise op's FLOPs fall around the row all-reduce it needs, if any, and how many
/// tensors of its shape it reads and writes: what the engine's element-wise kernel and its cost
/// model run (`engine::kernels::elementwise`, `cost::elementwise`). Tokens lie over PE rows and
/// features over PE columns, so a statistic over a token's features is a row all-reduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElementwiseProfile {
    /// FLOPs per element before the all-reduce (all of them when there is none).
    pub flops_before_per_element: u128,
    /// FLOPs per element after it, once the reduced statistics are back.
    pub flops_after_per_element: u128,
    /// Values per row (token) all-reduced along the PE row; 0: the op needs no reduction.
    pub reduced_values_per_row: u64,
    /// Tensors of the op's shape read and written (as `StepGraph` counts its bytes).
    pub tensors: u128,
}

/// The profile of an element-wise op (`None` for a matrix product or an optimizer update).
/// Each splits the per-element count above, so before + after is the graph's count:
/// - LayerNorm forward: Σx and Σx² in one pass (3: add; square and add), one all-reduce of
///   both (2 values per token), then centre, scale by 1/σ, γ and β (5).
/// - LayerNorm dgrad: g = dy·γ, x̂, Σg, Σg·x̂ (6), one all-reduce of the two sums, then
///   dx = (g − mean g − x̂·mean(g·x̂))/σ and the rest of the count (10).
/// - Softmax and the loss forward: the online form (Milakov and Gimelshein, "Online normalizer
///   calculation for softmax", arXiv 1805.02867): each PE keeps its slice's running max and
///   the sum of exponentials relative to it (4: max, subtract and exponentiate, add), one
///   all-reduce combines (max, sum) pairs (2 values per row; the loss adds the target's logit,
///   which one PE holds: 3), then one multiply per element by the row's factor e^(m−M)/S (1).
/// - Softmax dgrad: Σ dy·y (2), one all-reduce of 1 value per row, then the rest (8).
/// - The loss dgrad ((p − y)/T) reads the probabilities the forward kept: no reduction.
/// - GeLU, residual adds and the embedding (its learned position add, its gradient's
///   scatter-add): no reduction. LayerNorm's weight gradient sums over tokens (down the PE
///   columns) and the embedding's over its rows: they are not row all-reduces (no profile
///   reduction; their sums leave the wafer with the gradient stream).
pub fn elementwise_profile(kind: OpKind, pass: Pass) -> Option<ElementwiseProfile> {
    let split = |before: u128, total: u128, values: u64, tensors: u128| ElementwiseProfile {
        flops_before_per_element: before,
        flops_after_per_element: total - before,
        reduced_values_per_row: values,
        tensors,
    };
    let local = |total: u128, tensors: u128| split(total, total, 0, tensors);
    let back = ELEMENTWISE_BACKWARD_FACTOR;
    Some(match (kind, pass) {
        (_, Pass::Update) => return None,
        (OpKind::LayerNorm, Pass::Forward) => split(3, LAYERNORM_FLOPS_PER_ELEMENT, 2, 2),
        (OpKind::LayerNorm, Pass::Dgrad) => split(6, back * LAYERNORM_FLOPS_PER_ELEMENT, 2, 3),
        (OpKind::LayerNorm, Pass::Wgrad) => local(LAYERNORM_WGRAD_FLOPS_PER_ELEMENT, 2),
        (OpKind::Softmax, Pass::Forward) => split(4, SOFTMAX_FLOPS_PER_ELEMENT, 2, 2),
        (OpKind::Softmax, _) => split(2, back * SOFTMAX_FLOPS_PER_ELEMENT, 1, 3),
        (OpKind::Loss, Pass::Forward) => split(4, LOSS_FLOPS_PER_ELEMENT, 3, 1),
        (OpKind::Loss, _) => local(LOSS_BACKWARD_FLOPS_PER_ELEMENT, 2),
        (OpKind::Gelu, Pass::Forward) => local(GELU_FLOPS_PER_ELEMENT, 2),
        (OpKind::Gelu, _) => local(back * GELU_FLOPS_PER_ELEMENT, 3),
        (OpKind::Residual, _) => local(1, 3),
        // Forward: the learned position added to each gathered row; wgrad: the gradient
        // scatter-added into the token and the position table.
        (OpKind::Embedding, Pass::Wgrad) => local(2, 1),
        (OpKind::Embedding, _) => local(1, 1),
        (OpKind::Linear | OpKind::LmHead | OpKind::AttnScores | OpKind::AttnValues, _) => {
            return None
        }
    })
}
