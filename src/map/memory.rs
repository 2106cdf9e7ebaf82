//! What a weight-streaming step keeps in SRAM for backward, by activation strategy.
//!
//! Backward reads activations forward produced. Where they live is the mapper's choice
//! ([`Activations`]): all in SRAM, all but attention's scores (recomputed), only each layer's
//! two sub-block inputs (each sub-block's forward recomputed at the start of its backward), or
//! those inputs too off the wafer on the activation servers. Korthikanti et al. 2022 ("Reducing
//! Activation Recomputation in Large Transformer Models") count `34·d + 5·a·S` bytes per token
//! per layer kept without recomputation; the counts here are the step graph's own tensors.

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
    /// Each layer's two sub-block inputs stay in SRAM (checkpoints: the layer's input and its
    /// attention block's output); each sub-block's forward is rerun at the start of its
    /// backward, weights streamed in again, as activation checkpointing reruns a checkpointed
    /// function (Chen et al. 2016, arXiv:1604.06174). The rerun block keeps what its backward
    /// reads ([`buffer_elements_per_token`]) except attention's probabilities, which the
    /// attention backward recomputes from Q and K as memory-efficient attention does (Dao et
    /// al. 2022, arXiv:2205.14135), and GeLU's output, recomputed from the FFN's first output
    /// for the one op that reads it (the second FFN matrix's weight gradient). The last layer's
    /// FFN block is still in the buffer when backward starts and is not rerun.
    Checkpoint,
    /// As `Checkpoint`, but the checkpoints stream out to the activation servers through the
    /// wafer I/O during their layer's forward and back in during the next layer's backward;
    /// SRAM holds two layers' of them (one in flight, one in use).
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
                "each layer's sub-block inputs kept in SRAM, each sub-block's forward recomputed \
                 in backward"
            }
            Activations::Offload => {
                "each layer's sub-block inputs offloaded to the activation servers, each \
                 sub-block's forward recomputed in backward"
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
    let checkpoints = CHECKPOINTS_PER_LAYER * d;
    let head = 2 * d;
    let elements = match activations {
        Activations::Keep => arch.layers * full,
        Activations::Attention => arch.layers * layer_elements_per_token(arch, seq_len, false),
        // Every layer's checkpoints, and one sub-block's activations in the buffer.
        Activations::Checkpoint => arch.layers * checkpoints + buffer_elements_per_token(arch),
        Activations::Offload => 2 * checkpoints + buffer_elements_per_token(arch),
    };
    (elements + head) * arch.activation_bytes
}

/// Checkpoints a layer keeps under [`Activations::Checkpoint`] and [`Activations::Offload`]:
/// its input and its attention block's output (the FFN block's input), d elements a token each.
pub const CHECKPOINTS_PER_LAYER: u64 = 2;

/// Activation elements per token the larger of a layer's two sub-blocks keeps beside its
/// checkpoints while its backward runs, after its forward was rerun from a checkpoint: the
/// attention block's LN1 output, Q, K, V and the A·V output (5·d; its input, LN1's, is the
/// layer's checkpoint; its probabilities are recomputed, not kept), or the FFN block's LN2
/// output and the first FFN output (d + d_ff; LN2's input is the other checkpoint; GeLU's output
/// is recomputed for its reader).
pub fn buffer_elements_per_token(arch: &Architecture) -> u64 {
    let d = arch.d_model;
    (5 * d).max(d + arch.d_ff)
}

/// Bytes per token of one layer's checkpoints (its input and its attention block's output).
pub fn checkpoint_bytes_per_token(arch: &Architecture) -> u64 {
    CHECKPOINTS_PER_LAYER * arch.d_model * arch.activation_bytes
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
    fn checkpoints_keep_two_inputs_a_layer_and_one_sub_block() {
        let xl = load_model("mediswift-xl").unwrap();
        let a = &xl.architecture;
        // The FFN block (d + 4·d) and the attention block (5·d) keep as much at d_ff = 4·d.
        assert_eq!(buffer_elements_per_token(a), 5 * 2048);
        // 24 layers of two d-inputs, one sub-block of 5·d, the head's 2·d: 55·d elements.
        assert_eq!(
            saved_bytes_per_token(a, 2048, Activations::Checkpoint),
            55 * 2048 * 2
        );
        // Offload keeps two layers' checkpoints instead of 24.
        assert_eq!(
            saved_bytes_per_token(a, 2048, Activations::Offload),
            11 * 2048 * 2
        );
        assert_eq!(checkpoint_bytes_per_token(a), 8192);
    }

    #[test]
    fn a_wide_ffn_makes_its_block_the_buffer() {
        let mut xl = load_model("mediswift-xl").unwrap();
        xl.architecture.d_ff = 8 * 2048;
        assert_eq!(buffer_elements_per_token(&xl.architecture), 9 * 2048);
        xl.architecture.d_ff = 2048;
        assert_eq!(buffer_elements_per_token(&xl.architecture), 5 * 2048);
    }
}
