//! Every fabric key the spec accepts changes what it names, and nothing else.

use wafersim::engine::kernels::gemm::{run_gemm, GemmConfig, GemmForm};
use wafersim::graph::StepConfig;
use wafersim::map::MapOptions;
use wafersim::schedule::run_step;
use wafersim::spec::{load_fabric, load_model, FabricSpec, Phase};

/// `gpt-tiny`'s pre-training step on `fabric` at `sparsity`: its cycles.
fn tiny_step_cycles(fabric: &FabricSpec, sparsity: f64) -> u64 {
    let model = load_model("gpt-tiny").unwrap();
    let config = StepConfig::for_phase(&model, Phase::Pretrain, sparsity);
    run_step(&model, fabric, config, MapOptions::default())
        .unwrap()
        .cycles
}

fn with_decode(decode_cycles: u64) -> FabricSpec {
    let mut fabric = load_fabric("mini").unwrap();
    fabric.pe.sparse_index_decode_cycles = decode_cycles;
    fabric
}

/// A dense weight's values arrive in a known order: no index travels, none is decoded, in the
/// forward, the dgrad or the wgrad. A sparse step pays the decode on every non-zero.
#[test]
fn only_sparse_steps_pay_the_index_decode() {
    let (cheap, dear) = (with_decode(1), with_decode(100));
    assert_eq!(
        tiny_step_cycles(&cheap, 0.0),
        tiny_step_cycles(&dear, 0.0),
        "a dense step decodes no index"
    );
    assert!(tiny_step_cycles(&cheap, 0.75) < tiny_step_cycles(&dear, 0.75));
}

/// The engine's wgrad kernel agrees: a dense wgrad's cycles do not depend on the decode.
#[test]
fn the_engine_decodes_no_index_in_a_dense_wgrad() {
    let cycles = |fabric: &FabricSpec, sparsity: f64| {
        let cfg = GemmConfig {
            t: 64,
            k: 32,
            n: 32,
            sparsity,
            region: (4, 4),
            split: None,
            seed: 1,
            form: GemmForm::Wgrad,
            values: false,
        };
        run_gemm(fabric, &cfg).unwrap().output.cycles
    };
    let (cheap, dear) = (with_decode(1), with_decode(100));
    assert_eq!(cycles(&cheap, 0.0), cycles(&dear, 0.0));
    assert!(cycles(&cheap, 0.5) < cycles(&dear, 0.5));
}
