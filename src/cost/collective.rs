//! Reduce, all-reduce and broadcast of B wavelets over P PEs of a row, as the engine's
//! collective kernels run them (`engine::kernels::collective`). Every term is one of the
//! engine's mechanisms: a hop per PE crossed, the ramp down to the core, a task activation on the
//! first wavelet of each incoming stream, one core cycle per wavelet added or stored, and
//! streams pipelined behind their first wavelet at one wavelet per cycle. The chain reduce and
//! the broadcast are exact; the tree follows each PE's serial core per child stream, the chain
//! all-reduce and the ring take the larger of their latency-bound and core-bound ends.

use std::cell::RefCell;
use std::collections::HashMap;

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
///
/// Each form follows the engine's kernel step by step (`engine::kernels::collective`); the
/// integration test `collective_models` holds them to the engine over P from 2 to 750, B from
/// 1 to 1000 and fabrics at the edges of `validate`'s covered ranges.
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
    let t = Timing::of(fabric);
    match (kind, algo) {
        // The vector streams down the chain as one block: each stage delays its first sum by
        // a stage; the rest follow at one wavelet per cycle.
        (CollectiveKind::Reduce, CollectiveAlgo::Chain) => {
            ((p - 1) * t.stage() + b).saturating_sub(1)
        }
        (CollectiveKind::Reduce, _) => tree_root(&t, p, b).last,
        (CollectiveKind::Allreduce, CollectiveAlgo::Chain) => chain_allreduce_cycles(&t, p, b),
        (CollectiveKind::Allreduce, CollectiveAlgo::Tree) => {
            let root = tree_root(&t, p, b);
            t.stream_tail(root, p - 1, b)
        }
        (CollectiveKind::Allreduce, CollectiveAlgo::Ring) => ring_allreduce_cycles(&t, p, b),
        // One multicast block along the row: the far end's ramp, one activation, B stores.
        (CollectiveKind::Broadcast, _) => (p - 1) * t.hop + t.ramp + t.activation + b,
    }
}

/// Busy cycles of all `p` PEs' cores together in a collective of `b` wavelets per PE, as the
/// engine counts them: every stream a core takes costs an activation and one cycle per wavelet.
/// A reduce or a broadcast delivers P − 1 streams of B, a chain or tree all-reduce 2·(P − 1)
/// (up, then back); a ring delivers each PE 2·(P − 1) chunks, 2·(P − 1)·B wavelets in all.
pub fn collective_busy_cycles(
    fabric: &FabricSpec,
    kind: CollectiveKind,
    algo: CollectiveAlgo,
    p: u64,
    b: u64,
) -> u64 {
    if p <= 1 {
        return 0;
    }
    let a = fabric.pe.task_activation_cycles;
    match (kind, algo) {
        (CollectiveKind::Allreduce, CollectiveAlgo::Ring) => 2 * (p - 1) * (p * a + b),
        (CollectiveKind::Allreduce, _) => 2 * (p - 1) * (a + b),
        _ => (p - 1) * (a + b),
    }
}

/// The fabric latencies a collective's timing is made of.
struct Timing {
    hop: u64,
    ramp: u64,
    activation: u64,
}

/// When a PE sends its first and its last wavelet (cycles from the start).
#[derive(Clone, Copy)]
struct Sends {
    first: u64,
    last: u64,
}

impl Timing {
    fn of(fabric: &FabricSpec) -> Timing {
        Timing {
            hop: fabric.router.hop_latency_cycles,
            ramp: fabric.router.ramp_latency_cycles,
            activation: fabric.pe.task_activation_cycles,
        }
    }

    /// One step to the neighbour: the hop, the ramp down, the task's activation and one add.
    fn stage(&self) -> u64 {
        self.hop + self.ramp + self.activation + 1
    }

    /// From a send to the core `distance` PEs away.
    fn arrival(&self, distance: u64) -> u64 {
        distance * self.hop + self.ramp
    }

    /// When a PE `distance` PEs from the sender has stored a stream of `b` wavelets sent over
    /// `sends`: its first wavelet pays the activation, the rest one cycle each, none before
    /// it arrives.
    fn stream_tail(&self, sends: Sends, distance: u64, b: u64) -> u64 {
        let arrival = self.arrival(distance);
        (sends.first + arrival + self.activation + b).max(sends.last + arrival + 1)
    }
}

/// Chain all-reduce: the reduce down the chain, then PE P − 1's sums multicast back west.
/// Every PE on the way back costs a stage and a hop. Latency-bound, PE 0 stores the returning
/// stream behind its first wavelet's way there and back; with P ≥ 3, a middle PE's core adds
/// the forward stream first (lower color) and stores the returning one (the multicast waits
/// for the slowest of its cores), 2B wavelets, less the hops and the add its first sum
/// overlaps.
fn chain_allreduce_cycles(t: &Timing, p: u64, b: u64) -> u64 {
    let way = (p - 1) * (t.stage() + t.hop);
    let latency = way + t.ramp + t.activation + b;
    if p < 3 {
        return latency;
    }
    latency.max((way + 2 * b).saturating_sub(2 * (t.hop + 1)))
}

/// The tree's root sends, [`tree_sends`]`[0]`, remembered per thread: the mapper prices the same
/// row all-reduce for many ops and candidate plans (2,453 calls, 211 distinct, in one
/// `step mediswift-xl`), and each walk is O(P log P). A pure function's memo: figures cannot
/// differ, whatever the thread.
fn tree_root(t: &Timing, p: u64, b: u64) -> Sends {
    /// Entries kept before the memo starts over: a bound on its memory (about 40 B each).
    const MEMO_ENTRIES_MAX: usize = 1 << 16;
    thread_local! {
        static ROOTS: RefCell<HashMap<[u64; 5], Sends>> = RefCell::new(HashMap::new());
    }
    let key = [t.hop, t.ramp, t.activation, p, b];
    if let Some(root) = ROOTS.with_borrow(|m| m.get(&key).copied()) {
        return root;
    }
    let root = tree_sends(t, p, b)[0];
    ROOTS.with_borrow_mut(|m| {
        if m.len() >= MEMO_ENTRIES_MAX {
            m.clear();
        }
        m.insert(key, root);
    });
    root
}

/// Tree reduce: when each PE sends its sums to its parent (the root: when it holds them).
/// A parent's core takes its children's streams one after the other, in the order their
/// first wavelets reach it: each costs an activation and B adds, and cannot end before its
/// last wavelet arrived. Sums go up from the first element of the last stream on.
fn tree_sends(t: &Timing, p: u64, b: u64) -> Vec<Sends> {
    let levels = u64::from(64 - (p - 1).leading_zeros());
    let mut sends = vec![
        Sends {
            first: 0,
            last: b - 1,
        };
        p as usize
    ];
    for i in (0..p).rev() {
        let top = if i == 0 {
            levels
        } else {
            u64::from(i.trailing_zeros())
        };
        // At most 64 children (one per level of a u64's tree): on the stack.
        let mut buffer = [(0u64, 0u64, Sends { first: 0, last: 0 }); 64];
        let mut count = 0;
        for l in 0..top.min(levels) {
            let d = 1u64 << l;
            if i + d < p {
                let child = sends[(i + d) as usize];
                buffer[count] = (child.first + t.arrival(d), l, child);
                count += 1;
            }
        }
        if count == 0 {
            continue;
        }
        let children = &mut buffer[..count];
        children.sort_unstable_by_key(|&(first, level, _)| (first, level));
        let (mut free, mut first) = (0, 0);
        for &mut (arrival, level, child) in children {
            let start = free.max(arrival);
            first = start + t.activation + 1;
            free = (start + t.activation + b).max(child.last + t.arrival(1 << level) + 1);
        }
        sends[i as usize] = Sends { first, last: free };
    }
    sends
}

/// Ring all-reduce: 2(P − 1) chunk steps. Latency-bound (chunks of a wavelet or a few), every
/// step is a stage and the wrap-around from PE P − 1 to PE 0 crosses P − 2 more hops twice;
/// core-bound, each PE adds or stores its 2(P − 1) chunks (an activation each, B·2(P − 1)/P
/// wavelets in all) behind one crossing of the wrap-around.
fn ring_allreduce_cycles(t: &Timing, p: u64, b: u64) -> u64 {
    let steps = 2 * (p - 1);
    let latency = steps * t.stage() + 2 * (p - 2) * t.hop + b.div_ceil(p) - 1;
    let core = t.arrival(p - 1) + steps * t.activation + (steps * b).div_ceil(p);
    latency.max(core)
}
