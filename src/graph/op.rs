//! An op of the step graph: what it computes, on what shapes, at what cost.

use serde::Serialize;

/// Which pass of the training step an op belongs to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Pass {
    Forward,
    /// Gradient with respect to the op's activation inputs (the "delta" pass).
    Dgrad,
    /// Gradient with respect to the op's weight (for a sparse weight, only at its non-zeros).
    Wgrad,
    /// Optimizer step on the weight (non-zeros only for a sparse weight).
    Update,
}

impl Pass {
    pub fn name(self) -> &'static str {
        match self {
            Pass::Forward => "fwd",
            Pass::Dgrad => "dgrad",
            Pass::Wgrad => "wgrad",
            Pass::Update => "update",
        }
    }

    /// Whether the wafer runs the pass. The optimizer update runs off-wafer (in MemoryX,
    /// Cerebras' weight-streaming appliance: docs/domain.md, "Weight streaming"), once per step
    /// on the gradients accumulated over the microbatches, so its FLOPs are neither the wafer's
    /// work nor part of its fraction of peak.
    pub fn on_wafer(self) -> bool {
        self != Pass::Update
    }
}

/// What an op computes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// Token (and soft-prompt) embedding lookup plus learned positions.
    Embedding,
    /// `layernorm`, as `kernel layernorm` and ops.csv have always spelled it.
    #[serde(rename = "layernorm")]
    LayerNorm,
    /// Activation × weight (+ bias): Q, K, V, attention output, FFN up and down.
    Linear,
    /// Q·Kᵀ per head: activation × activation.
    AttnScores,
    Softmax,
    /// A·V per head: activation × activation.
    AttnValues,
    Residual,
    Gelu,
    /// Final activations × embeddingᵀ (tied) or a separate head weight.
    LmHead,
    /// Softmax cross-entropy over the vocabulary.
    Loss,
}

impl Op {
    /// The transformer weight a linear op multiplies by (`layer3.ffn_up` → `ffn_up`).
    pub fn weight_kind(&self) -> Option<crate::spec::WeightKind> {
        let name = &self.weight.as_ref()?.name;
        let suffix = name.rsplit('.').next().unwrap_or_default();
        crate::spec::WeightKind::ALL
            .into_iter()
            .find(|w| w.name() == suffix)
    }
}

impl OpKind {
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Embedding => "embedding",
            OpKind::LayerNorm => "layernorm",
            OpKind::Linear => "linear",
            OpKind::AttnScores => "attn_scores",
            OpKind::Softmax => "softmax",
            OpKind::AttnValues => "attn_values",
            OpKind::Residual => "residual",
            OpKind::Gelu => "gelu",
            OpKind::LmHead => "lm_head",
            OpKind::Loss => "loss",
        }
    }

    /// Matrix products (the ops a GEMM kernel runs); the rest are element-wise or lookups.
    pub fn is_matmul(self) -> bool {
        matches!(
            self,
            OpKind::Linear | OpKind::AttnScores | OpKind::AttnValues | OpKind::LmHead
        )
    }
}

/// The shape an op works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Dims {
    /// `batch` independent products `[m×k]·[k×n]`.
    Gemm { batch: u64, m: u64, k: u64, n: u64 },
    /// `rows × cols` elements.
    Elementwise { rows: u64, cols: u64 },
}

/// A trainable tensor an op reads or updates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Weight {
    /// e.g. `layer3.ffn_up`, `embedding`.
    pub name: String,
    pub rows: u64,
    pub cols: u64,
    /// Non-zeros kept by the mask (= rows · cols when dense).
    pub nonzeros: u64,
    pub sparse: bool,
    /// Whether the recipe masks this weight in sparse runs (true even at sparsity 0).
    pub sparsifiable: bool,
    /// Bias, LayerNorm γ and β that travel with this weight (always dense).
    pub extra_params: u64,
}

impl Weight {
    pub fn elements(&self) -> u64 {
        self.rows * self.cols
    }
}

/// One node of the step graph.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Op {
    /// Unique within the step, e.g. `layer3.ffn_up.wgrad`.
    pub name: String,
    pub layer: Option<u64>,
    pub kind: OpKind,
    pub pass: Pass,
    pub dims: Dims,
    pub weight: Option<Weight>,
    /// FLOPs as if every weight were dense.
    pub flops_dense: u128,
    /// FLOPs actually executed: only a sparse weight's non-zeros are multiplied.
    pub flops_executed: u128,
    /// Bytes of the weight (and its bias) the op reads or writes, dense fp16 layout.
    pub weight_bytes: u64,
    /// Bytes of activations and activation gradients the op reads and writes.
    pub activation_bytes: u64,
}
