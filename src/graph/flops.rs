//! FLOP conventions for the ops that are not matrix products.
//!
//! A matrix product `[m×k]·[k×n]` costs `2·m·k·n` FLOPs (one multiply, one add per term); with a
//! sparse weight only its non-zeros are multiplied, `2·m·nnz`. Attention scores and A·V are
//! counted in full: a causal mask would halve them, but the wafer computes the whole square, and
//! the usual estimate `6·N + 12·L·S·d` counts it whole too. Bias adds cost one FLOP per output.
//! The element-wise ops below are a small share of a step (< 1% for MediSwift); their constants
//! follow the usual textbook counts and are fixed here so that every count is exact.

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
