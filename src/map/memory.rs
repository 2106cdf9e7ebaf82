//! What a weight-streaming step keeps in SRAM for backward, by activation strategy.
//!
//! Backward reads activations forward produced. Where they live is the mapper's choice
//! ([`Activations`]): all in SRAM, all but attention's scores (recomputed), only each layer's
//! input (the layer's forward recomputed at the start of its backward), or those inputs too off
//! the wafer on the activation servers. Korthikanti et al. 2022 ("Reducing Activation
//! Recomputation in Large Transformer Models") count `34·d + 5·a·S` bytes per token per layer
//! kept without recomputation; the counts here are the step graph's own tensors.

use serde::Serialize;

use crate::spec::Architecture;

/// Where the activations backward reads are kept: the strategies the mapper searches.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Activations {
    /// Every activation backward reads stays in SRAM.
    Keep,
    /// Selective recomputation: attention's scores and softmax are recomputed in backward, the
    /// rest stays in SRAM.
    Attention,
    /// Each layer's input stays in SRAM (a checkpoint); the layer's forward is recomputed at the
    /// start of its backward, weights streamed in again. The recomputed layer keeps all of its
    /// activations (attention included): recomputing attention a second time would buy one
    /// layer's scores of SRAM for twice the attention work. The last layer is not recomputed:
    /// its forward activations are still in the one-layer buffer when backward starts.
    Checkpoint,
    /// As `Checkpoint`, but the checkpoints stream out to the activation servers through the
    /// wafer I/O during their layer's forward and back in during the next layer's backward;
    /// SRAM holds two of them (one in flight, one in use).
    Offload,
}

impl Activations {
    /// Every strategy, in the order the search tries them (ties keep the first).
    pub const ALL: [Activations; 4] = [
        Activations::Keep,
        Activations::Attention,
        Activations::Checkpoint,
        Activations::Offload,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Activations::Keep => "keep",
            Activations::Attention => "attention",
            Activations::Checkpoint => "checkpoint",
            Activations::Offload => "offload",
        }
    }

    /// Whether backward recomputes each layer's forward from a checkpoint.
    pub fn checkpoints(self) -> bool {
        matches!(self, Activations::Checkpoint | Activations::Offload)
    }

    /// What the plan and reports say the strategy does.
    pub fn describe(self) -> &'static str {
        match self {
            Activations::Keep => "every activation backward reads kept in SRAM",
            Activations::Attention => "attention scores and softmax recomputed in backward",
            Activations::Checkpoint => {
                "each layer's input kept in SRAM, its forward recomputed in backward"
            }
            Activations::Offload => {
                "each layer's input offloaded to the activation servers, its forward recomputed \
                 in backward"
            }
        }
    }
}

impl std::str::FromStr for Activations {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Activations::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                format!("'{s}' is not a strategy: keep, attention, checkpoint or offload")
            })
    }
}

/// Activation elements per token of one layer that its backward reads, from the step graph's
/// gradient ops: LN1 input and output (2d), Q, K, V (3d), A·V output (d), residual-1 output and
/// LN2 output (2d), FFN up output and GeLU output (2·d_ff), the block input for the residual (d,
/// shared with LN1's input, so not again); plus the softmax output (heads · seq_len) when
/// attention is kept.
pub fn layer_elements_per_token(arch: &Architecture, seq_len: u64, keep_attention: bool) -> u64 {
    let d = arch.d_model;
    let dense = 2 * d + 3 * d + d + 2 * d + 2 * arch.d_ff;
    if keep_attention {
        dense + arch.heads * seq_len
    } else {
        dense
    }
}

/// Bytes per token a strategy keeps in SRAM at the peak of the step (the start of backward),
/// the final LayerNorm's input and output (the head's) included.
pub fn saved_bytes_per_token(arch: &Architecture, seq_len: u64, activations: Activations) -> u64 {
    let d = arch.d_model;
    let full = layer_elements_per_token(arch, seq_len, true);
    let head = 2 * d;
    let elements = match activations {
        Activations::Keep => arch.layers * full,
        Activations::Attention => arch.layers * layer_elements_per_token(arch, seq_len, false),
        // Every layer's checkpoint, and the last layer's activations in the one-layer buffer.
        Activations::Checkpoint => arch.layers * d + full,
        Activations::Offload => 2 * d + full,
    };
    (elements + head) * arch.activation_bytes
}

/// Bytes per token of one layer's checkpoint (its input).
pub fn checkpoint_bytes_per_token(arch: &Architecture) -> u64 {
    arch.d_model * arch.activation_bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::load_model;

    #[test]
    fn xl_keeps_about_three_megabytes_per_token_without_recomputation() {
        let xl = load_model("mediswift-xl").unwrap();
        let a = &xl.architecture;
        // 16·d + a·S elements per layer: 32,768 + 32,768.
        assert_eq!(
            layer_elements_per_token(a, 2048, true),
            16 * 2048 + 16 * 2048
        );
        assert_eq!(
            saved_bytes_per_token(a, 2048, Activations::Keep),
            (24 * 65_536 + 4096) * 2
        );
        assert_eq!(
            saved_bytes_per_token(a, 2048, Activations::Attention),
            (24 * 32_768 + 4096) * 2
        );
    }

    #[test]
    fn checkpoints_keep_a_layer_input_each_and_one_full_layer() {
        let xl = load_model("mediswift-xl").unwrap();
        let a = &xl.architecture;
        // 24 inputs of d, one layer of 32·d, the head's 2·d: 58·d elements, 2 B each.
        assert_eq!(
            saved_bytes_per_token(a, 2048, Activations::Checkpoint),
            58 * 2048 * 2
        );
        // Offload keeps two checkpoints instead of 24.
        assert_eq!(
            saved_bytes_per_token(a, 2048, Activations::Offload),
            36 * 2048 * 2
        );
        assert_eq!(checkpoint_bytes_per_token(a), 4096);
    }
}
