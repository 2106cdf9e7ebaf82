//! What a weight-streaming step keeps in SRAM: the activations that backward needs.

use crate::spec::Architecture;

/// Activation elements per token per layer that the backward pass reads, from the step graph's
/// gradient ops: LN1 input and output (2d), Q, K, V (3d), A·V output (d), residual-1 output and
/// LN2 output (2d), FFN up output and GeLU output (2·d_ff), the block input for the residual (d,
/// shared with LN1's input, so not again); plus the softmax output (heads · seq_len) unless
/// attention is recomputed in backward (selective recomputation, Korthikanti et al. 2022).
pub fn saved_elements_per_token_per_layer(
    arch: &Architecture,
    seq_len: u64,
    recompute_attention: bool,
) -> u64 {
    let d = arch.d_model;
    let dense = 2 * d + 3 * d + d + 2 * d + 2 * arch.d_ff;
    if recompute_attention {
        dense
    } else {
        dense + arch.heads * seq_len
    }
}

/// Bytes per token over all layers, plus the final LayerNorm's input and output.
pub fn saved_bytes_per_token(arch: &Architecture, seq_len: u64, recompute_attention: bool) -> u64 {
    let per_layer = saved_elements_per_token_per_layer(arch, seq_len, recompute_attention);
    (arch.layers * per_layer + 2 * arch.d_model) * arch.activation_bytes
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
            saved_elements_per_token_per_layer(a, 2048, false),
            16 * 2048 + 16 * 2048
        );
        assert_eq!(
            saved_bytes_per_token(a, 2048, false),
            (24 * 65_536 + 4096) * 2
        );
        assert_eq!(
            saved_bytes_per_token(a, 2048, true),
            (24 * 32_768 + 4096) * 2
        );
    }
}
