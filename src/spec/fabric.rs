//! The fabric: mesh geometry, clock, PE, router and wafer I/O parameters.

use serde::{Deserialize, Serialize};

use super::validate::Checker;
use crate::error::Result;

/// A wafer: a mesh of PEs, each with SRAM, a SIMD FMAC and a five-port router.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FabricSpec {
    pub name: String,
    pub description: String,
    pub geometry: GeometrySpec,
    pub clock: ClockSpec,
    pub pe: PeSpec,
    pub router: RouterSpec,
    pub io: IoSpec,
    pub cluster: ClusterSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GeometrySpec {
    /// Columns of the largest region a user kernel may use (host I/O takes the rest).
    pub region_width_pes: u64,
    /// Rows of the largest user region.
    pub region_height_pes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClockSpec {
    pub clock_hz: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PeSpec {
    pub sram_bytes: u64,
    pub sram_read_bytes_per_cycle: u64,
    pub sram_write_bytes_per_cycle: u64,
    /// fp16 FMACs per cycle (each 2 FLOPs).
    pub simd_fp16_lanes: u64,
    pub task_activation_cycles: u64,
    /// SRAM kept for code, stack and runtime tables; not available to data.
    pub code_reserve_bytes: u64,
    /// Bytes of one operand element (activations and weights, fp16).
    pub operand_bytes: u64,
    /// Bytes of one accumulator element in SRAM; the FMAC reads and writes it every use.
    pub accumulator_bytes: u64,
    /// Bytes of one partial sum sent in a reduction; a 32-bit wavelet carries 4 / this many.
    pub partial_sum_bytes: u64,
    /// Extra cycles a task spends decoding a sparse wavelet's index before its FMAC.
    pub sparse_index_decode_cycles: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouterSpec {
    pub wavelet_bits: u64,
    /// Bits of a sparse weight's index (its row within a PE's K slice), sent beside its value.
    pub sparse_index_bits: u64,
    pub hop_latency_cycles: u64,
    pub ramp_latency_cycles: u64,
    pub colors: u64,
    /// Colors the runtime and host I/O keep; kernels may use `colors - colors_reserved`.
    pub colors_reserved: u64,
    pub color_buffer_depth_wavelets: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IoSpec {
    pub wafer_io_bits_per_second: u64,
}

/// Several systems trained data-parallel: one weight broadcast from MemoryX to every system and
/// one gradient reduction back, through the SwarmX tree of broadcast-reduce nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// Most systems one data-parallel job may use (the largest cluster the vendor documents).
    pub systems_max: u64,
    /// Rate of the SwarmX link into (and out of) each system, in each direction.
    pub swarmx_link_bits_per_second: u64,
    /// Children one broadcast-reduce node serves: the tree's fan-out.
    pub swarmx_fan_out: u64,
    /// Rate at which one node sums its children's gradient streams (its output).
    pub swarmx_reduce_bits_per_second: u64,
    /// Latency one level of the tree adds to a stream, in nanoseconds.
    pub swarmx_level_latency_ns: u64,
    /// Elements per second at which the weight servers (MemoryX) update a dynamic sparse
    /// training mask (`recipe.dynamic`): each element of a sparse weight scored or
    /// selected once (`schedule::mask_update_cost`). The wafer waits for the update.
    pub memoryx_mask_update_elements_per_second: u64,
}

/// Keys the spec had and no longer has, with why: a file that still sets one is refused with
/// this reason rather than a bare "unknown field" (`spec::parse_toml`).
pub const REMOVED_KEYS: &[(&str, &str)] = &[
    (
        "geometry.fabric_width_pes",
        "only the user region (`region_width_pes`) enters the simulation",
    ),
    (
        "geometry.fabric_height_pes",
        "only the user region (`region_height_pes`) enters the simulation",
    ),
    (
        "pe.sram_banks",
        "the SRAM ports (`sram_read_bytes_per_cycle`, `sram_write_bytes_per_cycle`) bound \
         bandwidth; no bank conflicts are modelled",
    ),
    ("pe.fp32_ops_per_cycle", "no op is charged at an fp32 rate"),
    (
        "pe.microthreads",
        "a core runs one task at a time; its sends leave through the ramp beside it",
    ),
    (
        "io.io_channels_per_edge",
        "the wafer I/O is one aggregate rate (`wafer_io_bits_per_second`)",
    ),
];

/// Upper bounds that keep every derived product (PEs × SRAM, cycles × PEs) inside u64.
const MAX_SIDE_PES: u64 = 65_536;
/// Most PEs a region may have: a full-wafer run holds per-PE counters and heatmaps of every
/// PE in memory (gpt-tiny's `train` on 4096 × 4096 PEs peaks at 1.3 GB); 22× WSE-3's region.
const MAX_REGION_PES: u64 = 1 << 24;

impl FabricSpec {
    /// Checks every value against its allowed range; `origin` names the file in messages.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let c = Checker { origin };
        c.name("name", &self.name)?;
        let g = &self.geometry;
        c.range(
            "geometry.region_width_pes",
            g.region_width_pes,
            1,
            MAX_SIDE_PES,
        )?;
        c.range(
            "geometry.region_height_pes",
            g.region_height_pes,
            1,
            MAX_SIDE_PES,
        )?;
        if self.region_pes() > MAX_REGION_PES {
            return Err(c.fail(
                "geometry.region_width_pes",
                &format!(
                    "{} (x region_height_pes = {} is {} PEs)",
                    g.region_width_pes,
                    g.region_height_pes,
                    self.region_pes()
                ),
                &format!(
                    "a region of at most {MAX_REGION_PES} PEs (e.g. 4096 x 4096): a run keeps \
                     every PE's counters in memory"
                ),
            ));
        }
        c.range(
            "clock.clock_hz",
            self.clock.clock_hz,
            1_000_000,
            100_000_000_000,
        )?;
        let pe = &self.pe;
        c.range("pe.sram_bytes", pe.sram_bytes, 1024, 1 << 30)?;
        c.range(
            "pe.sram_read_bytes_per_cycle",
            pe.sram_read_bytes_per_cycle,
            1,
            4096,
        )?;
        c.range(
            "pe.sram_write_bytes_per_cycle",
            pe.sram_write_bytes_per_cycle,
            1,
            4096,
        )?;
        c.range("pe.simd_fp16_lanes", pe.simd_fp16_lanes, 1, 1024)?;
        c.at_most(
            "pe.task_activation_cycles",
            pe.task_activation_cycles,
            10_000,
            "cycles",
        )?;
        c.at_most(
            "pe.code_reserve_bytes",
            pe.code_reserve_bytes,
            pe.sram_bytes - 1,
            "less than pe.sram_bytes, so some SRAM is left for data",
        )?;
        c.range("pe.operand_bytes", pe.operand_bytes, 1, 8)?;
        c.range("pe.accumulator_bytes", pe.accumulator_bytes, 1, 8)?;
        if ![2, 4].contains(&pe.partial_sum_bytes) {
            return Err(c.fail(
                "pe.partial_sum_bytes",
                &pe.partial_sum_bytes.to_string(),
                "2 or 4 (fp16 or fp32 partial sums, two or one per 32-bit wavelet)",
            ));
        }
        c.at_most(
            "pe.sparse_index_decode_cycles",
            pe.sparse_index_decode_cycles,
            1_000,
            "cycles",
        )?;
        let r = &self.router;
        if r.wavelet_bits != 32 {
            return Err(c.fail(
                "router.wavelet_bits",
                &r.wavelet_bits.to_string(),
                "32 (the engine's links move one 32-bit wavelet per cycle)",
            ));
        }
        c.range(
            "router.sparse_index_bits",
            r.sparse_index_bits,
            1,
            r.wavelet_bits,
        )?;
        c.at_most(
            "router.hop_latency_cycles",
            r.hop_latency_cycles,
            1_000,
            "cycles",
        )?;
        c.at_most(
            "router.ramp_latency_cycles",
            r.ramp_latency_cycles,
            1_000,
            "cycles",
        )?;
        c.range("router.colors", r.colors, 1, 64)?;
        c.at_most(
            "router.colors_reserved",
            r.colors_reserved,
            r.colors - 1,
            "less than router.colors, so kernels keep at least one",
        )?;
        c.range(
            "router.color_buffer_depth_wavelets",
            r.color_buffer_depth_wavelets,
            1,
            1 << 16,
        )?;
        c.range(
            "io.wafer_io_bits_per_second",
            self.io.wafer_io_bits_per_second,
            1,
            1 << 60,
        )?;
        self.cluster.validate(&c)
    }

    /// PEs available to user kernels.
    pub fn region_pes(&self) -> u64 {
        self.geometry.region_width_pes * self.geometry.region_height_pes
    }

    /// Peak dense fp16 FLOP/s over the user region: PEs × lanes × 2 FLOP × clock.
    pub fn peak_fp16_flops_per_second(&self) -> f64 {
        self.region_pes() as f64 * (2 * self.pe.simd_fp16_lanes) as f64 * self.clock.clock_hz as f64
    }

    /// SRAM bytes over the user region.
    pub fn region_sram_bytes(&self) -> u64 {
        self.region_pes() * self.pe.sram_bytes
    }

    /// Colors a kernel may use.
    pub fn usable_colors(&self) -> u64 {
        self.router.colors - self.router.colors_reserved
    }

    /// How values of `value_bytes` bytes travel in this fabric's wavelets: the one place the
    /// wire format is derived (the engine's kernels, the cost models and the wafer I/O use it).
    pub fn packing(&self, value_bytes: u64) -> Packing {
        let wavelet_bits = self.router.wavelet_bits;
        let value_bits = 8 * value_bytes;
        Packing {
            values_per_wavelet: (wavelet_bits / value_bits).max(1),
            wavelets_per_value: value_bits.div_ceil(wavelet_bits),
            wavelets_per_nonzero: (value_bits + self.router.sparse_index_bits)
                .div_ceil(wavelet_bits),
        }
    }

    /// Rows of a PE's K slice a sparse weight's index can address: 2^`sparse_index_bits`.
    pub fn sparse_index_rows(&self) -> u64 {
        1u64 << self.router.sparse_index_bits.min(63)
    }

    /// Wafer I/O in bytes per clock cycle (a float: it is a rate, used only by cost models).
    pub fn io_bytes_per_cycle(&self) -> f64 {
        self.io.wafer_io_bits_per_second as f64 / 8.0 / self.clock.clock_hz as f64
    }
}

/// Most systems a fabric file may allow: far beyond any cluster built, small enough that a tree
/// level count and a step's systems stay trivially inside u64.
const MAX_SYSTEMS: u64 = 1 << 20;

impl ClusterSpec {
    fn validate(&self, c: &Checker) -> Result<()> {
        c.range("cluster.systems_max", self.systems_max, 1, MAX_SYSTEMS)?;
        c.range(
            "cluster.swarmx_link_bits_per_second",
            self.swarmx_link_bits_per_second,
            1,
            1 << 60,
        )?;
        c.range("cluster.swarmx_fan_out", self.swarmx_fan_out, 2, 1024)?;
        c.range(
            "cluster.swarmx_reduce_bits_per_second",
            self.swarmx_reduce_bits_per_second,
            1,
            1 << 60,
        )?;
        c.at_most(
            "cluster.swarmx_level_latency_ns",
            self.swarmx_level_latency_ns,
            1_000_000_000,
            "nanoseconds (one second per tree level)",
        )?;
        c.range(
            "cluster.memoryx_mask_update_elements_per_second",
            self.memoryx_mask_update_elements_per_second,
            1,
            1 << 60,
        )
    }
}

/// The wire format of one value width on one fabric ([`FabricSpec::packing`]). Dense values
/// travel packed (as many whole values as a wavelet holds, or one value over as many wavelets as
/// it needs), a sparse weight's non-zero as its value and its index together, over as many
/// wavelets as they need. A receiving core runs one task per packed group (dense) or non-zero
/// (sparse), when its last wavelet arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Packing {
    /// Dense: whole values one wavelet carries (1 for a value as wide as a wavelet or wider).
    pub values_per_wavelet: u64,
    /// Dense: wavelets one value needs (more than 1 only for a value wider than a wavelet).
    pub wavelets_per_value: u64,
    /// Sparse: wavelets one non-zero (value and index) needs.
    pub wavelets_per_nonzero: u64,
}

impl Packing {
    /// Tasks a receiving core runs for `values` dense values: one per packed group.
    pub fn dense_tasks(&self, values: u64) -> u64 {
        values.div_ceil(self.values_per_wavelet)
    }

    /// Wavelets `values` dense values take.
    pub fn dense_wavelets(&self, values: u64) -> u64 {
        self.dense_tasks(values) * self.wavelets_per_value
    }

    /// Wavelets `nonzeros` sparse non-zeros take, each with its index.
    pub fn sparse_wavelets(&self, nonzeros: u64) -> u64 {
        nonzeros * self.wavelets_per_nonzero
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn packing_follows_the_value_and_index_widths() {
        let fabric = crate::spec::load_fabric("wse2").unwrap();
        let packing = |bytes| {
            let p = fabric.packing(bytes);
            (
                p.values_per_wavelet,
                p.wavelets_per_value,
                p.wavelets_per_nonzero,
            )
        };
        // 32-bit wavelets, 16-bit indices.
        assert_eq!(packing(1), (4, 1, 1));
        assert_eq!(
            packing(2),
            (2, 1, 1),
            "two fp16 values, or one with its index"
        );
        assert_eq!(packing(3), (1, 1, 2), "24 + 16 bits need two wavelets");
        assert_eq!(packing(4), (1, 1, 2));
        assert_eq!(packing(8), (1, 2, 3));
        assert_eq!(fabric.packing(2).dense_wavelets(5), 3);
        assert_eq!(fabric.packing(8).dense_wavelets(5), 10);
    }
}
