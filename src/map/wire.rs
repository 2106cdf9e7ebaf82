//! The wire format of every op on a sparse weight: sparse (each non-zero with its index, one
//! FMAC task per non-zero) or dense (every element packed, zeros included, dense FMAC), whichever
//! makes the microbatch's timeline shorter.
//!
//! What the real wafer does, as far as it is public: Cerebras streams a sparse weight's
//! non-zeros only, each triggering an AXPY on arrival (M. James, "Scaling up and out: training
//! massive models on Cerebras systems using weight streaming", Cerebras blog, 2021, section
//! "Sparse GEMM"; S. Lie, "Cerebras architecture deep dive", Hot Chips 34, 2022), and the
//! runtime takes a masked weight as a dense tensor whose masked entries it skips (Cerebras
//! documentation, "Sparsity", docs.cerebras.net/en/latest/general/sparsity.html: masked weights
//! are set to NaN and not computed). Nothing public describes a structured or block format, an
//! index narrower than half a wavelet, or the sparsity below which the runtime runs a sparse
//! weight dense, so the two formats the fabric spec derives (`FabricSpec::packing`) are the only
//! ones modelled, and the choice is the mapper's, by cost, like its every other choice.
//!
//! Architecture Invariant: the step's time is monotone in every op's cycles and stream times
//! (the timeline is built of sums and maxima), so a format no worse in all three is the right
//! choice whatever the other ops do; only ops where neither dominates are searched, starting
//! from the dense format everywhere. A sparse run therefore never maps slower than the same
//! microbatches run dense.

use super::ops::OpPlan;
use crate::cost::{timeline, TimelineOp};

/// Most passes of the search over the undecided kinds: a pass keeps a flip only when the step
/// gets shorter, so the search ends at the first pass without one, well before this.
const PASSES_MAX: usize = 8;

/// Resolves every op's `other_format`: keeps, per op kind (an op name without its layer: all
/// layers alike; with `per_layer`, as for masks read from a file, each layer's op on its own),
/// the format that gives the shortest microbatch timeline.
pub fn choose_formats(ops: Vec<OpPlan>, per_layer: bool) -> Vec<OpPlan> {
    let (kinds, kind_of) = op_kinds(&ops, per_layer);
    if kinds.is_empty() {
        return ops;
    }
    // Per kind: the dominant format where one is; the rest start dense and are searched.
    let dominant: Vec<Option<bool>> = kinds.iter().map(|&i| dominant(&ops[i])).collect();
    let mut sparse: Vec<bool> = dominant.iter().map(|d| d.unwrap_or(false)).collect();
    let undecided: Vec<usize> = (0..kinds.len())
        .filter(|&k| dominant[k].is_none())
        .collect();
    if !undecided.is_empty() {
        let mut best = step_cycles(&ops, &kind_of, &sparse);
        for _ in 0..PASSES_MAX {
            let mut improved = false;
            for &k in &undecided {
                sparse[k] = !sparse[k];
                let cycles = step_cycles(&ops, &kind_of, &sparse);
                if cycles < best {
                    best = cycles;
                    improved = true;
                } else {
                    sparse[k] = !sparse[k];
                }
            }
            if !improved {
                break;
            }
        }
    }
    ops.into_iter()
        .zip(kind_of)
        .map(|(mut op, kind)| match (op.other_format.take(), kind) {
            (Some(dense), Some(k)) if !sparse[k] => OpPlan {
                // Layers share one placement: the alternative carries the first layer's name. And
                // whether the op is a recomputation is the mapper's mark, set after placing it.
                name: op.name,
                layer: op.layer,
                recompute: op.recompute,
                ..*dense
            },
            _ => op,
        })
        .collect()
}

/// The first op of each kind that has two formats, in order of appearance, and each op's kind.
fn op_kinds(ops: &[OpPlan], per_layer: bool) -> (Vec<usize>, Vec<Option<usize>>) {
    let mut firsts: Vec<usize> = Vec::new();
    let mut known: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut kind_of = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        if op.other_format.is_none() {
            kind_of.push(None);
            continue;
        }
        let name = match per_layer {
            true => op.name.as_str(),
            false => kind_name(op),
        };
        let kind = *known.entry(name).or_insert_with(|| {
            firsts.push(i);
            firsts.len() - 1
        });
        kind_of.push(Some(kind));
    }
    (firsts, kind_of)
}

/// An op's name without its layer: the same op of every layer, placed by one search.
fn kind_name(op: &OpPlan) -> &str {
    op.name
        .split_once('.')
        .filter(|_| op.layer.is_some())
        .map_or(op.name.as_str(), |(_, rest)| rest)
}

/// `Some(true)` when the sparse format is no slower in the op's cycles and both its streams,
/// `Some(false)` when the dense one is, `None` when each wins somewhere.
fn dominant(sparse: &OpPlan) -> Option<bool> {
    let dense = sparse.other_format.as_deref()?;
    let key = |op: &OpPlan| [op.cost.cycles, op.io_in_cycles, op.io_out_cycles];
    let (s, d) = (key(sparse), key(dense));
    if s.iter().zip(&d).all(|(s, d)| s <= d) {
        Some(true)
    } else if d.iter().zip(&s).all(|(d, s)| d <= s) {
        Some(false)
    } else {
        None
    }
}

/// Cycles of the microbatch with each kind in its format (`sparse[k]`).
fn step_cycles(ops: &[OpPlan], kind_of: &[Option<usize>], sparse: &[bool]) -> u64 {
    let line: Vec<TimelineOp> = ops
        .iter()
        .zip(kind_of)
        .map(|(op, kind)| match (&op.other_format, kind) {
            (Some(dense), Some(k)) if !sparse[*k] => dense.timeline_op(),
            _ => op.timeline_op(),
        })
        .collect();
    timeline(&line).last().map_or(0, |s| s.end)
}
