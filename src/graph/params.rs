//! Parameter counts of a model, split the way the paper and the recipe talk about them.

use serde::Serialize;

use crate::spec::{ModelSpec, WeightKind};

/// Parameters of a model by kind. Biases and LayerNorm γ/β are counted exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ParamCounts {
    /// Everything trained in pre-training: non-embedding + embedding (+ untied head).
    pub total: u64,
    /// Transformer layers and the final LayerNorm: matrices, biases, γ and β.
    pub non_embedding: u64,
    /// Token embedding and learned positions (the LM head shares the token table when tied).
    pub embedding: u64,
    /// A separate LM head weight; 0 when tied.
    pub lm_head: u64,
    /// Matrix weights of the transformer layers (12·L·d² for GPT-3 shapes).
    pub layer_matrices: u64,
    /// Elements of the weights the recipe makes sparse.
    pub sparsifiable: u64,
    pub biases: u64,
    pub layernorm: u64,
    /// Soft-prompt embedding, trained only in the soft-prompting phase (not in `total`).
    pub soft_prompt: u64,
}

impl ParamCounts {
    pub fn of(model: &ModelSpec) -> Self {
        let a = &model.architecture;
        let (d, l) = (a.d_model, a.layers);
        let matrix = |w: WeightKind| {
            let (k, n) = w.shape(a);
            k * n
        };
        let per_layer_matrices: u64 = WeightKind::ALL.iter().map(|&w| matrix(w)).sum();
        let sparsifiable_per_layer: u64 =
            model.recipe.sparse_weights.iter().map(|&w| matrix(w)).sum();
        let per_layer_biases = if a.biases {
            WeightKind::ALL.iter().map(|&w| w.shape(a).1).sum()
        } else {
            0
        };
        // Two LayerNorms per layer plus the final one, each with γ and β of width d.
        let layernorm = (2 * l + 1) * 2 * d;
        let layer_matrices = l * per_layer_matrices;
        let biases = l * per_layer_biases;
        let non_embedding = layer_matrices + biases + layernorm;
        let embedding = a.vocab_size * d + a.max_seq_len * d;
        let lm_head = if a.tied_embedding {
            0
        } else {
            d * a.vocab_size
        };
        ParamCounts {
            total: non_embedding + embedding + lm_head,
            non_embedding,
            embedding,
            lm_head,
            layer_matrices,
            sparsifiable: l * sparsifiable_per_layer,
            biases,
            layernorm,
            soft_prompt: model.recipe.softprompt.prompt_tokens * d,
        }
    }
}
