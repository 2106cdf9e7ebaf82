//! Kernels: programs of PE tasks and routes, and the report of a kernel run.

pub mod attention;
pub mod collective;
pub mod elementwise;
pub mod gemm;
pub mod wgrad;

use serde::Serialize;

use super::RunOutput;
use crate::error::{Error, Result};
use crate::spec::FabricSpec;

/// Refuses a kernel that routes more colors than `fabric` leaves kernels. Both fidelities call
/// it while resolving the kernel, before any work, so `kernel --fidelity model` refuses what
/// the engine (`Program::check`) would.
pub fn check_colors(fabric: &FabricSpec, colors: u8) -> Result<()> {
    let usable = fabric.usable_colors();
    if u64::from(colors) > usable {
        return Err(Error::Input(format!(
            "the kernel routes {colors} colors but fabric {} leaves kernels {usable} \
             (router.colors - router.colors_reserved)",
            fabric.name
        )));
    }
    Ok(())
}

/// Busy cycles summed over PEs, by kind.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Breakdown {
    pub fmac_cycles: u64,
    pub overhead_cycles: u64,
    pub reduction_cycles: u64,
    pub idle_wait_cycles: u64,
    pub stall_cycles: u64,
}

/// The cost model's categories for a kernel (`kernel --fidelity model`); they add up to its
/// cycles exactly (see `cost::KernelCost`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct ModelBreakdown {
    pub compute_cycles: u64,
    pub imbalance_cycles: u64,
    pub reduction_cycles: u64,
    pub overhead_cycles: u64,
}

/// The figures of one kernel run, as `wafersim kernel --json` prints them (the README's stable field names).
/// A run on the wavelet-level engine fills every field; a cost-model run (`--fidelity model`)
/// leaves out what only the engine counts (wavelets, hops, events, the per-PE breakdown, the
/// simulator's speed), and for collectives the utilisation's maximum (their model estimates the
/// busy cycles of all PEs together, `cost::collective_busy_cycles`, not the busiest PE's).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct KernelFigures {
    pub cycles: u64,
    pub seconds: f64,
    /// FLOP counts, written as the nearest doubles (reports put the exact integers beside them).
    #[serde(serialize_with = "crate::report::serialize_as_f64")]
    #[schemars(with = "f64")]
    pub flops_dense: u128,
    #[serde(serialize_with = "crate::report::serialize_as_f64")]
    #[schemars(with = "f64")]
    pub flops_executed: u128,
    pub fmac_ops: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wavelets_sent: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wavelets_received: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wavelet_hops: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pe_utilization_mean: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pe_utilization_max: Option<f64>,
    pub sram_bytes_max: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<u64>,
    pub host_seconds: f64,
    /// The simulator's own speed (engine runs only: a closed form's rate says nothing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pe_cycles_per_host_second: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wavelet_hops_per_host_second: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<Breakdown>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_breakdown: Option<ModelBreakdown>,
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
            wavelets_sent: Some(output.wavelets_sent),
            wavelets_received: Some(output.wavelets_received),
            wavelet_hops: Some(output.wavelet_hops),
            pe_utilization_mean: Some(total.busy_cycles() as f64 / (pes * cycles) as f64),
            pe_utilization_max: Some(busy_max as f64 / cycles as f64),
            sram_bytes_max: total.sram_bytes,
            events: Some(output.events),
            host_seconds,
            pe_cycles_per_host_second: Some((output.cycles as f64 * pes as f64) / host),
            wavelet_hops_per_host_second: Some(output.wavelet_hops as f64 / host),
            breakdown: Some(Breakdown {
                fmac_cycles: total.fmac_cycles,
                overhead_cycles: total.overhead_cycles,
                reduction_cycles: total.reduction_cycles,
                idle_wait_cycles: idle,
                stall_cycles: total.stall_cycles,
            }),
            model_breakdown: None,
        }
    }

    /// Figures of a GEMM's cost on `pes` PEs (`kernel --fidelity model`).
    pub fn from_gemm_cost(
        fabric: &FabricSpec,
        cost: &crate::cost::KernelCost,
        (flops_dense, fmac_ops): (u128, u64),
        host_seconds: f64,
    ) -> Self {
        let cycles = cost.cycles.max(1) as f64;
        Self {
            flops_executed: 2 * fmac_ops as u128,
            fmac_ops,
            pe_utilization_mean: Some(cost.busy_cycles_mean as f64 / cycles),
            pe_utilization_max: Some(cost.busy_cycles_max as f64 / cycles),
            model_breakdown: Some(ModelBreakdown {
                compute_cycles: cost.compute_cycles,
                imbalance_cycles: cost.imbalance_cycles,
                reduction_cycles: cost.reduction_cycles,
                overhead_cycles: cost.overhead_cycles,
            }),
            ..Self::from_cycles(fabric, cost.cycles, flops_dense, host_seconds)
        }
    }

    /// Figures of a kernel of which the model gives only the cycles (a collective).
    pub fn from_cycles(
        fabric: &FabricSpec,
        cycles: u64,
        flops_dense: u128,
        host_seconds: f64,
    ) -> Self {
        Self {
            cycles,
            seconds: cycles as f64 / fabric.clock.clock_hz as f64,
            flops_dense,
            flops_executed: 0,
            fmac_ops: 0,
            wavelets_sent: None,
            wavelets_received: None,
            wavelet_hops: None,
            pe_utilization_mean: None,
            pe_utilization_max: None,
            sram_bytes_max: 0,
            events: None,
            host_seconds,
            pe_cycles_per_host_second: None,
            wavelet_hops_per_host_second: None,
            breakdown: None,
            model_breakdown: None,
        }
    }
}
