//! Reduce, all-reduce and broadcast of B wavelets over P PEs of a row, as the engine's
//! collective kernels run them (`engine::kernels::collective`): each received wavelet costs the
//! core one cycle (an add or a store), the first of each incoming stream also a task activation
//! `a`; a stage of a chain costs `hop + ramp + a + 1` for its first wavelet and is pipelined at one
//! wavelet per cycle after it.

use serde::Serialize;

use crate::engine::kernels::collective::{Algo, Collective};
use crate::spec::FabricSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CollectiveKind {
    Reduce,
    Allreduce,
    Broadcast,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CollectiveAlgo {
    Chain,
    Tree,
    Ring,
}

impl From<Collective> for CollectiveKind {
    fn from(kind: Collective) -> Self {
        match kind {
            Collective::Reduce => CollectiveKind::Reduce,
            Collective::Allreduce => CollectiveKind::Allreduce,
            Collective::Broadcast => CollectiveKind::Broadcast,
        }
    }
}

impl From<Algo> for CollectiveAlgo {
    fn from(algo: Algo) -> Self {
        match algo {
            Algo::Chain => CollectiveAlgo::Chain,
            Algo::Tree => CollectiveAlgo::Tree,
            Algo::Ring => CollectiveAlgo::Ring,
        }
    }
}

/// Cycles of a collective of `b` wavelets per PE over `p` PEs in a row.
pub fn collective_cycles(
    fabric: &FabricSpec,
    kind: CollectiveKind,
    algo: CollectiveAlgo,
    p: u64,
    b: u64,
) -> u64 {
    if p <= 1 {
        // One PE already holds the result: nothing moves.
        return 0;
    }
    let hop = fabric.router.hop_latency_cycles;
    let ramp = fabric.router.ramp_latency_cycles;
    let a = fabric.pe.task_activation_cycles;
    let stage = hop + ramp + a + 1;
    let levels = 64 - (p.max(1) - 1).leading_zeros() as u64; // ceil(log2 p)
    let p1 = p.saturating_sub(1);
    match (kind, algo) {
        // The stream enters the first PE's router as it leaves the core, then pipelines.
        (CollectiveKind::Reduce, CollectiveAlgo::Chain) => (b + p1 * stage).saturating_sub(1),
        // The root adds every level's stream: core-bound, one activation per level.
        (CollectiveKind::Reduce, _) => levels * (b + a) + hop + ramp,
        // Every PE but the last adds B and stores B; the sums come back west one hop per PE.
        (CollectiveKind::Allreduce, CollectiveAlgo::Chain) => {
            (2 * b + p1 * (stage + hop)).saturating_sub(a + ramp)
        }
        // The tree reduce, then the sums multicast east from the root to the last PE.
        (CollectiveKind::Allreduce, CollectiveAlgo::Tree) => {
            levels * (b + a) + hop + ramp + p1 * hop + ramp + 1
        }
        // Reduce-scatter and all-gather: 2(P − 1) chunk steps round the ring. Latency-bound for
        // small chunks (every step a stage, the wrap-around crossing P − 1 hops back); core-bound
        // for large ones (each PE adds or stores 2(P − 1) chunks), plus one pass of the pipeline.
        (CollectiveKind::Allreduce, CollectiveAlgo::Ring) => {
            let chunk = b.div_ceil(p.max(1));
            let latency = 2 * p1 * stage + 2 * p1 * hop;
            let core = 2 * p1 * chunk + p1 * (stage + 2 * hop + 1);
            latency.max(core)
        }
        // One multicast along the row, stored at one wavelet per cycle.
        (CollectiveKind::Broadcast, _) => b + p1 * hop + ramp + a,
    }
}
