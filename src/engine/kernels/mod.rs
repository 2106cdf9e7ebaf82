//! Kernels: programs of PE tasks and routes, and the report of a kernel run.

pub mod collective;
pub mod gemm;
pub mod wgrad;

use serde::Serialize;

use super::RunOutput;
use crate::spec::FabricSpec;

/// Busy cycles summed over PEs, by kind.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Breakdown {
    pub fmac_cycles: u64,
    pub overhead_cycles: u64,
    pub reduction_cycles: u64,
    pub idle_wait_cycles: u64,
    pub stall_cycles: u64,
}

/// The figures of one kernel run, as `wafersim kernel --json` prints them (DESIGN.md names).
#[derive(Debug, Clone, Serialize)]
pub struct KernelFigures {
    pub cycles: u64,
    pub seconds: f64,
    pub flops_dense: u128,
    pub flops_executed: u128,
    pub fmac_ops: u64,
    pub wavelets_sent: u64,
    pub wavelets_received: u64,
    pub wavelet_hops: u64,
    pub pe_utilization_mean: f64,
    pub pe_utilization_max: f64,
    pub sram_bytes_max: u64,
    pub events: u64,
    pub host_seconds: f64,
    pub pe_cycles_per_host_second: f64,
    pub wavelet_hops_per_host_second: f64,
    pub breakdown: Breakdown,
}

impl KernelFigures {
    /// Figures of `output`; `flops_dense` is what the kernel would cost without zero skipping.
    pub fn new(
        fabric: &FabricSpec,
        output: &RunOutput,
        flops_dense: u128,
        host_seconds: f64,
    ) -> Self {
        let counters = &output.counters;
        let total = counters.total();
        let pes = counters.pes.len().max(1) as u64;
        let cycles = output.cycles.max(1);
        let busy_max = counters
            .pes
            .iter()
            .map(|c| c.busy_cycles())
            .max()
            .unwrap_or(0);
        let idle: u64 = counters.idle_wait_cycles().sum();
        let host = host_seconds.max(1e-9);
        Self {
            cycles: output.cycles,
            seconds: output.cycles as f64 / fabric.clock.clock_hz as f64,
            flops_dense,
            flops_executed: 2 * total.fmac_ops as u128,
            fmac_ops: total.fmac_ops,
            wavelets_sent: output.wavelets_sent,
            wavelets_received: output.wavelets_received,
            wavelet_hops: output.wavelet_hops,
            pe_utilization_mean: total.busy_cycles() as f64 / (pes * cycles) as f64,
            pe_utilization_max: busy_max as f64 / cycles as f64,
            sram_bytes_max: total.sram_bytes,
            events: output.events,
            host_seconds,
            pe_cycles_per_host_second: (output.cycles as f64 * pes as f64) / host,
            wavelet_hops_per_host_second: output.wavelet_hops as f64 / host,
            breakdown: Breakdown {
                fmac_cycles: total.fmac_cycles,
                overhead_cycles: total.overhead_cycles,
                reduction_cycles: total.reduction_cycles,
                idle_wait_cycles: idle,
                stall_cycles: total.stall_cycles,
            },
        }
    }
}
