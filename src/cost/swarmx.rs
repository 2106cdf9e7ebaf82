//! Data-parallel training on several systems: what the SwarmX tree between MemoryX and the
//! systems adds to a step.
//!
//! Each system runs the step at its share of the batch (the vendor's arithmetic: a per-system
//! batch of ⌈B/N⌉ sequences, in ⌈per-system / MBS⌉ microbatches). MemoryX streams each op's
//! weights once into the tree, which copies them to every system; each system's weight gradients
//! flow back up the tree, summed at every node, so MemoryX receives one stream per op. The
//! tree's nodes have `swarmx_fan_out` children, so N systems need ⌈log_fan-out N⌉ levels.
//! (Cerebras, SwarmX glossary, cerebras.net/glossary/swarmx, from the Weight Streaming white
//! paper: 1:4 broadcast-reduce nodes, reductions at line rate, latency growing with log N.)
//!
//! What limits it:
//! - **Broadcast**: a copy costs a node no bandwidth, so a weight stream already at the wafer's
//!   I/O rate crosses the tree at that rate and arrives later by the tree's latency, once per
//!   microbatch (the step's timeline restarts its stream with every microbatch,
//!   `cost::timeline`). Only links slower than the wafer's I/O slow the stream itself.
//! - **Reduction**: a node must sum its children's gradients as they arrive; at line rate (the
//!   vendor's claim) the gradient stream leaves each wafer as fast as it would alone, and the
//!   last gradient reaches MemoryX later by the tree's latency, once per step (the optimizer
//!   waits for it). A node summing slower than the wafer streams out holds every wafer's
//!   gradient stream back to its rate.
//!
//! Slower streams are re-timed with the step's own timeline rules, so what they cost is exactly
//! what they add to the timeline, no more (compute hides a slower stream as it hides a normal
//! one). One system has no tree and costs nothing.

use serde::Serialize;

use super::timeline::{timeline, TimelineOp};
use crate::spec::FabricSpec;

/// What data parallelism adds to one step of one system, in cycles; `cycles` is their sum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct DataParallelCost {
    pub systems: u64,
    /// Levels of broadcast-reduce nodes between MemoryX and the systems (0 for one system).
    pub tree_levels: u64,
    /// The tree's latency, paid by each microbatch's weight stream.
    pub broadcast_latency_cycles: u64,
    /// The tree's latency, paid once by the step's last gradient on its way to MemoryX.
    pub reduce_latency_cycles: u64,
    /// What streams through links or reductions slower than the wafer's I/O add to the step's
    /// timelines, summed over its microbatches.
    pub stream_cycles: u64,
    pub cycles: u64,
}

/// One microbatch group of a step as the tree sees it: `repeat` microbatches running `ops`.
#[derive(Debug, Clone, Copy)]
pub struct StreamGroup<'a> {
    pub repeat: u64,
    pub ops: &'a [TimelineOp],
}

/// Levels of a tree of `fan_out`-way nodes that reaches `systems` leaves: the least L with
/// `fan_out^L ≥ systems` (0 for one system).
pub fn tree_levels(fan_out: u64, systems: u64) -> u64 {
    let (mut levels, mut reach) = (0u64, 1u128);
    while reach < u128::from(systems) {
        reach *= u128::from(fan_out.max(2));
        levels += 1;
    }
    levels
}

/// Cycles of `ns` nanoseconds at the fabric's clock, rounded up.
fn ns_to_cycles(fabric: &FabricSpec, ns: u64) -> u64 {
    let cycles = (u128::from(ns) * u128::from(fabric.clock.clock_hz)).div_ceil(1_000_000_000);
    u64::try_from(cycles).unwrap_or(u64::MAX)
}

/// `cycles` of the wafer's I/O rate stretched to a link of `rate` bits/s, when it is slower.
fn stretched(cycles: u64, wafer_rate: u64, rate: u64) -> u64 {
    if rate >= wafer_rate {
        return cycles;
    }
    let stretched = (u128::from(cycles) * u128::from(wafer_rate)).div_ceil(u128::from(rate));
    u64::try_from(stretched).unwrap_or(u64::MAX)
}

/// What the tree adds to a step whose microbatch groups are `groups`, on `systems` systems.
pub fn data_parallel_cost(
    fabric: &FabricSpec,
    systems: u64,
    groups: &[StreamGroup],
) -> DataParallelCost {
    if systems <= 1 {
        return DataParallelCost {
            systems: 1,
            ..DataParallelCost::default()
        };
    }
    let cluster = &fabric.cluster;
    let levels = tree_levels(cluster.swarmx_fan_out, systems);
    let latency = ns_to_cycles(fabric, cluster.swarmx_level_latency_ns).saturating_mul(levels);
    let wafer = fabric.io.wafer_io_bits_per_second;
    let link = cluster.swarmx_link_bits_per_second;
    let reduce = link.min(cluster.swarmx_reduce_bits_per_second);
    let (mut microbatches, mut stream) = (0u64, 0u64);
    for group in groups {
        let through_tree: Vec<TimelineOp> = group
            .ops
            .iter()
            .map(|op| TimelineOp {
                cycles: op.cycles,
                io_in_cycles: stretched(op.io_in_cycles, wafer, link),
                io_out_cycles: stretched(op.io_out_cycles, wafer, reduce),
            })
            .collect();
        let end = |ops: &[TimelineOp]| timeline(ops).last().map_or(0, |s| s.end);
        let extra = end(&through_tree).saturating_sub(end(group.ops));
        stream = stream.saturating_add(extra.saturating_mul(group.repeat));
        microbatches = microbatches.saturating_add(group.repeat);
    }
    let broadcast = latency.saturating_mul(microbatches);
    DataParallelCost {
        systems,
        tree_levels: levels,
        broadcast_latency_cycles: broadcast,
        reduce_latency_cycles: latency,
        stream_cycles: stream,
        cycles: broadcast.saturating_add(latency).saturating_add(stream),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ops from (cycles, weight stream-in cycles, gradient stream-out cycles).
    fn timeline_ops(list: &[(u64, u64, u64)]) -> Vec<TimelineOp> {
        list.iter()
            .map(|&(cycles, io_in_cycles, io_out_cycles)| TimelineOp {
                cycles,
                io_in_cycles,
                io_out_cycles,
            })
            .collect()
    }

    #[test]
    fn a_tree_of_four_way_nodes_grows_a_level_per_factor_four() {
        let levels: Vec<u64> = [1, 2, 4, 5, 16, 17, 192, 2048]
            .iter()
            .map(|&n| tree_levels(4, n))
            .collect();
        assert_eq!(levels, [0, 1, 1, 2, 2, 3, 4, 6]);
        assert_eq!(tree_levels(2, 2048), 11);
    }

    #[test]
    fn one_system_costs_nothing() {
        let fabric = crate::spec::load_fabric("wse2").unwrap();
        let ops = timeline_ops(&[(100, 50, 50)]);
        let groups = [StreamGroup {
            repeat: 3,
            ops: &ops,
        }];
        assert_eq!(data_parallel_cost(&fabric, 1, &groups).cycles, 0);
    }

    #[test]
    fn at_line_rate_the_tree_adds_its_latency_only() {
        // wse2: 5,000 ns per level at 1.1 GHz = 5,500 cycles; 5 systems need 2 levels.
        let fabric = crate::spec::load_fabric("wse2").unwrap();
        let ops = timeline_ops(&[(10, 100, 0), (10, 0, 100)]);
        let groups = [StreamGroup {
            repeat: 3,
            ops: &ops,
        }];
        let cost = data_parallel_cost(&fabric, 5, &groups);
        assert_eq!(cost.tree_levels, 2);
        assert_eq!(cost.broadcast_latency_cycles, 3 * 11_000);
        assert_eq!(cost.reduce_latency_cycles, 11_000);
        assert_eq!(cost.stream_cycles, 0);
        assert_eq!(cost.cycles, 4 * 11_000);
    }

    #[test]
    fn a_reduction_below_line_rate_holds_the_gradient_stream_back() {
        let mut fabric = crate::spec::load_fabric("wse2").unwrap();
        fabric.cluster.swarmx_level_latency_ns = 0;
        fabric.cluster.swarmx_reduce_bits_per_second = 600_000_000_000;
        // An I/O-bound op streaming 100 cycles of gradients out: at half the rate, 200.
        let ops = timeline_ops(&[(10, 0, 100)]);
        let groups = [StreamGroup {
            repeat: 2,
            ops: &ops,
        }];
        let cost = data_parallel_cost(&fabric, 2, &groups);
        assert_eq!(cost.stream_cycles, 2 * 100);
        // A compute-bound op hides the slower stream as it hid the normal one.
        let ops = timeline_ops(&[(1_000, 0, 100)]);
        let groups = [StreamGroup {
            repeat: 2,
            ops: &ops,
        }];
        assert_eq!(data_parallel_cost(&fabric, 2, &groups).stream_cycles, 0);
    }
}
