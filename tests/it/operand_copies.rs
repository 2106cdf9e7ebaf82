//! The copies of a GEMM's resident operands that a full-wafer tile needs beyond the one the step
//! leaves (`cost::operand_copy_cost`): a multicast block along each row, priced as the engine's
//! broadcast, added by the mapper to every GEMM tile it times, and absent from the kernel-level
//! cost that `validate` holds to the engine (whose kernels start with the copies in place).

use wafersim::cost::{
    collective_cycles, gemm_cost, operand_copy_cost, CollectiveAlgo, CollectiveKind, GemmForm,
    GemmProblem, GemmTile,
};
use wafersim::graph::StepConfig;
use wafersim::map::MapOptions;
use wafersim::schedule::run_step;
use wafersim::sparsity::Pattern;
use wafersim::spec::{load_fabric, load_model, Phase};

fn problem(form: GemmForm) -> GemmProblem {
    GemmProblem {
        form,
        batch: 1,
        t: 10_240,
        k: 768,
        n: 3072,
        nonzeros: 768 * 3072,
        sparse: false,
        value_bytes: 2,
        pattern: Pattern::Random,
        transposed: false,
    }
}

fn tile(c_k: u64, c_n: u64) -> GemmTile {
    GemmTile {
        rows: 40,
        c_k,
        c_n,
        tiles: 1,
    }
}

/// 256 tokens a row: a streamed GEMM with one N-group copies nothing; with several, the row's
/// 256 · 768 fp16 values (98,304 wavelets of two) go to every group as one broadcast along the
/// row's 64 columns; a weight gradient also copies dY (256 · 3072 values) into its K-groups.
#[test]
fn copies_are_the_rows_operands_broadcast_along_the_row() {
    let fabric = load_fabric("wse2").unwrap();
    let broadcast = |wavelets| {
        collective_cycles(
            &fabric,
            CollectiveKind::Broadcast,
            CollectiveAlgo::Chain,
            64,
            wavelets,
        )
    };
    let streamed = problem(GemmForm::Streamed);
    assert_eq!(
        operand_copy_cost(&fabric, &streamed, &tile(64, 1), 2560).cycles,
        0
    );
    let copy = operand_copy_cost(&fabric, &streamed, &tile(8, 8), 2560);
    assert_eq!(copy.cycles, broadcast(256 * 768 / 2));
    assert_eq!(
        copy.reduction_cycles, copy.cycles,
        "on-fabric traffic: reduction"
    );
    assert_eq!(copy.compute_cycles + copy.overhead_cycles, 0);
    let wgrad = problem(GemmForm::AtNonzeros);
    let both = operand_copy_cost(&fabric, &wgrad, &tile(8, 8), 2560);
    assert_eq!(both.cycles, broadcast(256 * (768 + 3072) / 2));
    let x_only = operand_copy_cost(&fabric, &wgrad, &tile(1, 64), 2560);
    assert_eq!(x_only.cycles, broadcast(256 * 768 / 2));
    let attention = problem(GemmForm::Activations);
    assert_eq!(
        operand_copy_cost(&fabric, &attention, &tile(8, 8), 2560).cycles,
        0
    );
}

/// The kernel-level cost (what `validate` compares with the engine) has no copy in it, and a
/// full-wafer step's GEMMs do: every streamed GEMM the mapper placed on more than one N-group
/// pays its copy: with one K-group its kernel reduces nothing, so all its reduction is the copy.
#[test]
fn the_mapper_pays_for_the_copies_its_tiles_need() {
    let fabric = load_fabric("wse2").unwrap();
    let streamed = problem(GemmForm::Streamed);
    let kernel = gemm_cost(&fabric, &streamed, &tile(8, 8), 2560);
    let copy = operand_copy_cost(&fabric, &streamed, &tile(8, 8), 2560);
    let paid = kernel.then(&copy);
    assert_eq!(paid.cycles, kernel.cycles + copy.cycles);
    assert_eq!(paid.reduction_cycles, kernel.reduction_cycles + copy.cycles);

    let model = load_model("gpt-tiny").unwrap();
    let fabric = load_fabric("mini").unwrap();
    let config = StepConfig::for_phase(&model, Phase::Pretrain, 0.0);
    let step = run_step(&model, &fabric, config, MapOptions::default()).unwrap();
    let copied: Vec<_> = step
        .ops
        .iter()
        .filter(|op| !op.name.ends_with(".wgrad"))
        .filter(|op| {
            op.gemm_tile
                .is_some_and(|t| t.c_k == 1 && t.c_n > 1 && t.tiles == 1)
        })
        .collect();
    // A streamed GEMM with one K-group reduces nothing in its kernel: its reduction is the copy.
    assert!(
        !copied.is_empty(),
        "some streamed GEMM has one K-group and several N-groups"
    );
    for op in copied {
        assert!(op.breakdown.reduction > 0, "{}", op.name);
    }
}
