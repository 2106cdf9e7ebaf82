//! The collectives' cost models (`kernel --fidelity model`) against the wavelet-level engine,
//! beyond the shapes `validate` runs: P from 2 to 750, B from 1 to 1000, on WSE-2 and at both
//! edges of the covered ranges of the keys a collective's timing reads.

use wafersim::cost::collective_cycles;
use wafersim::engine::kernels::collective::{run_collective, Algo, Collective, CollectiveConfig};
use wafersim::spec::{load_fabric, FabricSpec};

use crate::common::{on_two_threads, COLLECTIVES};

/// The relative error each algorithm's model is held to, and why.
fn tolerance(kind: Collective, algo: Algo) -> f64 {
    match (kind, algo) {
        // One block down the chain or one multicast: the model is the engine's timing.
        (Collective::Reduce, Algo::Chain) | (Collective::Broadcast, _) => 0.0,
        // Chunks of equal sizes but for a wavelet; what the model leaves out is the few cycles
        // where the latency-bound and core-bound regimes meet.
        (_, Algo::Ring) => 0.03,
        // The model takes each child's stream (tree) or the returning sums (chain) in one piece
        // at a core that the engine interleaves wavelet by wavelet between colors; that moves
        // the end by up to an activation or a few hops, which on the shortest collectives
        // (a few dozen cycles, zero latencies) is up to 15%: validate's bound per shape.
        _ => 0.15,
    }
}

/// WSE-2, and WSE-2 with one key at an edge of `validate`'s covered range.
fn fabrics() -> Vec<(String, FabricSpec)> {
    let wse2 = load_fabric("wse2").unwrap();
    let mut fabrics = vec![("wse2".to_string(), wse2.clone())];
    for range in wafersim::validate::COVERED_RANGES {
        if !range.key.contains("latency")
            && !range.key.contains("activation")
            && !range.key.contains("buffer_depth")
        {
            continue;
        }
        for edge in [range.low, range.high] {
            let mut fabric = wse2.clone();
            (range.set)(&mut fabric, edge);
            fabrics.push((format!("{} = {edge}", range.key), fabric));
        }
    }
    fabrics
}

fn cases(full: bool) -> Vec<(Collective, Algo, u32, u64)> {
    let (pes, wavelets): (&[u32], &[u64]) = if full {
        (
            &[2, 3, 4, 5, 8, 9, 16, 33, 64, 750],
            &[1, 2, 3, 8, 64, 257, 1000],
        )
    } else {
        (&[2, 3, 5, 16, 33, 64], &[1, 3, 64, 257])
    };
    let mut cases = Vec::new();
    for &(kind, algo) in &COLLECTIVES {
        for &p in pes {
            for &b in wavelets {
                // A ring needs a chunk per PE.
                if algo != Algo::Ring || b >= p as u64 {
                    cases.push((kind, algo, p, b));
                }
            }
        }
    }
    cases
}

/// The cases on `fabric` whose model misses the engine by more than its tolerance.
fn misses(name: &str, fabric: &FabricSpec, full: bool) -> Vec<String> {
    let mut misses = Vec::new();
    for (kind, algo, p, b) in cases(full) {
        let cfg = CollectiveConfig::along_row(kind, algo, p, b, 1);
        let engine = run_collective(fabric, &cfg).unwrap().output.cycles;
        let model = collective_cycles(fabric, kind.into(), algo.into(), p as u64, b);
        let error = (model as f64 - engine as f64) / engine as f64;
        if error.abs() > tolerance(kind, algo) {
            misses.push(format!(
                "{name}: {} {algo:?} P {p} B {b}: engine {engine} model {model} ({:+.1}%)",
                kind.name(),
                100.0 * error
            ));
        }
    }
    misses
}

#[test]
fn collective_models_follow_the_engine_across_pes_wavelets_and_fabrics() {
    let fabrics = fabrics();
    let misses = on_two_threads(&fabrics, |(name, fabric)| {
        misses(name, fabric, name == "wse2")
    });
    assert!(misses.is_empty(), "{}", misses.join("\n"));
}
