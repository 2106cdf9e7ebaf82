//! Weight stream-in and gradient stream-out through the wafer's edge.

use crate::spec::FabricSpec;

/// Bytes a weight takes on the wire, in whole wavelets ([`FabricSpec::packing`]): dense as
/// packed values, sparse as each non-zero's value and index; `extra` dense values (biases,
/// gains) travel beside it.
pub fn stream_bytes(fabric: &FabricSpec, weight: &WireWeight) -> u64 {
    let packing = fabric.packing(weight.value_bytes);
    let wavelets = if weight.sparse {
        packing.sparse_wavelets(weight.nonzeros) + packing.dense_wavelets(weight.extra)
    } else {
        packing.dense_wavelets(weight.elements + weight.extra)
    };
    wavelets * (fabric.router.wavelet_bits / 8)
}

/// A weight as the wire sees it.
#[derive(Debug, Clone, Copy)]
pub struct WireWeight {
    /// Elements of its matrix and non-zeros kept of them.
    pub elements: u64,
    pub nonzeros: u64,
    pub sparse: bool,
    /// Dense values beside the matrix (biases, gains, positions).
    pub extra: u64,
    pub value_bytes: u64,
}

/// Cycles to move `bytes` through the wafer I/O in one direction, rounded up; `u64::MAX` when
/// they pass it (the mapper refuses a step that long, `map::MAX_STEP_CYCLES`).
pub fn stream_cycles(fabric: &FabricSpec, bytes: u64) -> u64 {
    // bytes · 8 / (bits/s) seconds × clock_hz cycles/s, in integers.
    let numerator = bytes as u128 * 8 * fabric.clock.clock_hz as u128;
    let cycles = numerator.div_ceil(fabric.io.wafer_io_bits_per_second as u128);
    u64::try_from(cycles).unwrap_or(u64::MAX)
}
