//! The fabric values `validate` has held the cost models to. Per engine-relevant key, the range
//! over which every shape passes with the other keys at WSE-2's values; the integration tests
//! run `validate` at both edges of each range, so the table stays true. A full-wafer report
//! (`train`, `step`, sweep points) on a fabric outside it says so, without running `validate`.
//!
//! Beyond these edges the models drift from the engine: `hop_latency_cycles = 5` (19%),
//! `ramp_latency_cycles = 6` (33%), `color_buffer_depth_wavelets = 1` (50%), all on the
//! all-reduce of 1,000 wavelets over two PEs, whose stream the credit loop of a hop or the ramp
//! then slows below a wavelet per cycle. (`task_activation_cycles = 30` passes, at 9.5%; the
//! range stops at 20, the edge the tests run.) The clock and the wafer I/O are not here: the engine
//! counts cycles and has no wafer I/O, so `validate` says nothing about them. The element-wise
//! kernels read no key beyond these; `router.colors` and `router.colors_reserved` only choose
//! their row all-reduce (chain or tree, `cost::row_allreduce_algo`), and validate holds both.

use serde::{Deserialize, Serialize};

use crate::spec::FabricSpec;

/// One key's validated range.
pub struct CoveredRange {
    /// The key as fabric files spell it.
    pub key: &'static str,
    pub low: u64,
    pub high: u64,
    pub value: fn(&FabricSpec) -> u64,
    pub set: fn(&mut FabricSpec, u64),
}

/// Every fabric key the engine and the cost models both read, with what `validate` covers.
pub const COVERED_RANGES: &[CoveredRange] = &[
    CoveredRange {
        key: "pe.sram_read_bytes_per_cycle",
        // At 2 B per cycle (fp32 accumulators) the reduction-bound sparse GEMM of 8x16 PEs
        // (split 16x1) leaves the utilisation bound: 10.4 points, its cycles 13% short of the
        // expected-maximum imbalance.
        low: 3,
        high: 64,
        value: |f| f.pe.sram_read_bytes_per_cycle,
        set: |f, v| f.pe.sram_read_bytes_per_cycle = v,
    },
    CoveredRange {
        key: "pe.sram_write_bytes_per_cycle",
        // At 1 B per cycle the same GEMM leaves the utilisation bound (10.7 points).
        low: 2,
        high: 64,
        value: |f| f.pe.sram_write_bytes_per_cycle,
        set: |f, v| f.pe.sram_write_bytes_per_cycle = v,
    },
    CoveredRange {
        key: "pe.simd_fp16_lanes",
        low: 1,
        high: 64,
        value: |f| f.pe.simd_fp16_lanes,
        set: |f, v| f.pe.simd_fp16_lanes = v,
    },
    CoveredRange {
        key: "pe.task_activation_cycles",
        low: 0,
        high: 20,
        value: |f| f.pe.task_activation_cycles,
        set: |f, v| f.pe.task_activation_cycles = v,
    },
    CoveredRange {
        key: "pe.operand_bytes",
        low: 1,
        high: 8,
        value: |f| f.pe.operand_bytes,
        set: |f, v| f.pe.operand_bytes = v,
    },
    CoveredRange {
        key: "pe.accumulator_bytes",
        low: 1,
        high: 8,
        value: |f| f.pe.accumulator_bytes,
        set: |f, v| f.pe.accumulator_bytes = v,
    },
    CoveredRange {
        key: "pe.partial_sum_bytes",
        low: 2,
        high: 4,
        value: |f| f.pe.partial_sum_bytes,
        set: |f, v| f.pe.partial_sum_bytes = v,
    },
    CoveredRange {
        key: "pe.sparse_index_decode_cycles",
        low: 0,
        high: 100,
        value: |f| f.pe.sparse_index_decode_cycles,
        set: |f, v| f.pe.sparse_index_decode_cycles = v,
    },
    CoveredRange {
        key: "router.sparse_index_bits",
        low: 16,
        high: 32,
        value: |f| f.router.sparse_index_bits,
        set: |f, v| f.router.sparse_index_bits = v,
    },
    CoveredRange {
        key: "router.hop_latency_cycles",
        low: 0,
        high: 4,
        value: |f| f.router.hop_latency_cycles,
        set: |f, v| f.router.hop_latency_cycles = v,
    },
    CoveredRange {
        key: "router.ramp_latency_cycles",
        low: 0,
        high: 4,
        value: |f| f.router.ramp_latency_cycles,
        set: |f, v| f.router.ramp_latency_cycles = v,
    },
    CoveredRange {
        key: "router.color_buffer_depth_wavelets",
        low: 2,
        high: 64,
        value: |f| f.router.color_buffer_depth_wavelets,
        set: |f, v| f.router.color_buffer_depth_wavelets = v,
    },
];

/// A range as reports list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct KeyRange {
    pub key: &'static str,
    pub low: u64,
    pub high: u64,
}

/// A fabric key outside what `validate` has covered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnvalidatedKey {
    pub key: String,
    pub value: u64,
    pub low: u64,
    pub high: u64,
}

/// The ranges, for reports.
pub fn covered_ranges() -> Vec<KeyRange> {
    COVERED_RANGES
        .iter()
        .map(|r| KeyRange {
            key: r.key,
            low: r.low,
            high: r.high,
        })
        .collect()
}

/// The keys of `fabric` outside the covered ranges (none: its full-wafer figures stand on a
/// validated cost model).
pub fn unvalidated_keys(fabric: &FabricSpec) -> Vec<UnvalidatedKey> {
    let mut keys: Vec<UnvalidatedKey> = COVERED_RANGES
        .iter()
        .filter_map(|r| {
            let value = (r.value)(fabric);
            (!(r.low..=r.high).contains(&value)).then(|| UnvalidatedKey {
                key: r.key.to_string(),
                value,
                low: r.low,
                high: r.high,
            })
        })
        .collect();
    keys.extend(buffer_below_credit_loop(fabric));
    keys
}

/// The ranges hold one key at a time; one pair of keys also acts jointly. A stream moves one
/// wavelet per cycle only while a buffer holds as many wavelets as the credit loop of a hop or
/// of the ramp lasts cycles; below that the engine's streams slow down in proportion (ramp 4
/// with buffers of 2 wavelets: every wavelet-by-wavelet collective twice as long) and the
/// models, which stream at a wavelet per cycle, do not follow. So a buffer shallower than
/// the longer of the two latencies is outside what `validate` covers, when the latencies
/// themselves are inside (outside, they are listed already).
fn buffer_below_credit_loop(fabric: &FabricSpec) -> Option<UnvalidatedKey> {
    let inside = |key: &str| -> Option<&CoveredRange> {
        let range = COVERED_RANGES.iter().find(|r| r.key == key)?;
        (range.low..=range.high)
            .contains(&(range.value)(fabric))
            .then_some(range)
    };
    let depth = inside("router.color_buffer_depth_wavelets")?;
    let hop = inside("router.hop_latency_cycles")?;
    let ramp = inside("router.ramp_latency_cycles")?;
    let needed = (hop.value)(fabric).max((ramp.value)(fabric));
    let value = (depth.value)(fabric);
    (value < needed).then(|| UnvalidatedKey {
        key: depth.key.to_string(),
        value,
        low: needed,
        high: depth.high,
    })
}

/// The terminal's warning for a report on `fabric`, or `None` inside the covered ranges.
pub fn unvalidated_warning(fabric: &str, keys: &[UnvalidatedKey]) -> Option<String> {
    if keys.is_empty() {
        return None;
    }
    let list: Vec<String> = keys
        .iter()
        .map(|k| {
            format!(
                "{} = {} (validated {} to {})",
                k.key, k.value, k.low, k.high
            )
        })
        .collect();
    Some(format!(
        "warning: fabric {fabric} lies outside what `wafersim validate` has held the cost models \
         to: {}; these figures are not validated against the engine\n",
        list.join(", ")
    ))
}
