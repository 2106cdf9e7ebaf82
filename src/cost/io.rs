//! Weight stream-in and gradient stream-out through the wafer's edge.

use crate::spec::FabricSpec;

/// Bytes a weight takes on the wire: dense as packed fp16 values, sparse as one value plus one
/// 16-bit index per non-zero (the wavelet format of the fabric: a value and its index).
pub fn stream_bytes(
    fabric: &FabricSpec,
    elements: u64,
    nonzeros: u64,
    sparse: bool,
    value_bytes: u64,
) -> u64 {
    let wavelet_bytes = fabric.router.wavelet_bits / 8;
    if sparse {
        nonzeros * wavelet_bytes
    } else {
        elements * value_bytes
    }
}

/// Cycles to move `bytes` through the wafer I/O in one direction, rounded up.
pub fn stream_cycles(fabric: &FabricSpec, bytes: u64) -> u64 {
    // bytes · 8 / (bits/s) seconds × clock_hz cycles/s, in integers.
    let numerator = bytes as u128 * 8 * fabric.clock.clock_hz as u128;
    numerator.div_ceil(fabric.io.wafer_io_bits_per_second as u128) as u64
}
