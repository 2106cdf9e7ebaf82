//! The element-wise kernels (LayerNorm, softmax, GeLU, residual, embedding, loss): exact counts
//! on the engine, their cost model against it, and the refusals of `wafersim kernel`.

use wafersim::cost::{
    collective_cycles, elementwise_config, elementwise_cost, CollectiveAlgo, CollectiveKind,
    ElementwiseProblem,
};
use wafersim::engine::kernels::collective::{run_collective, Algo, Collective, CollectiveConfig};
use wafersim::engine::kernels::elementwise::{run_elementwise, ElementwiseConfig};
use wafersim::graph::{
    elementwise_profile, OpKind, Pass, ELEMENTWISE_BACKWARD_FACTOR, GELU_FLOPS_PER_ELEMENT,
    LAYERNORM_FLOPS_PER_ELEMENT, LOSS_BACKWARD_FLOPS_PER_ELEMENT, LOSS_FLOPS_PER_ELEMENT,
    SOFTMAX_FLOPS_PER_ELEMENT,
};
use wafersim::spec::{load_fabric, FabricSpec};

use crate::common::{run_cli, run_json};

fn config(
    fabric: &FabricSpec,
    kind: OpKind,
    pass: Pass,
    shape: (u64, u64),
    region: (u32, u32),
) -> ElementwiseConfig {
    elementwise_config(
        fabric,
        &elementwise_profile(kind, pass).unwrap(),
        shape,
        region,
    )
}

/// Every (kind, pass) the step runs, its FLOPs per element as the graph counts them, and a shape
/// with uneven slices (rows and columns not multiples of the region).
fn cases() -> Vec<(OpKind, Pass, u128)> {
    let back = ELEMENTWISE_BACKWARD_FACTOR;
    vec![
        (
            OpKind::LayerNorm,
            Pass::Forward,
            LAYERNORM_FLOPS_PER_ELEMENT,
        ),
        (
            OpKind::LayerNorm,
            Pass::Dgrad,
            back * LAYERNORM_FLOPS_PER_ELEMENT,
        ),
        (OpKind::Softmax, Pass::Forward, SOFTMAX_FLOPS_PER_ELEMENT),
        (
            OpKind::Softmax,
            Pass::Dgrad,
            back * SOFTMAX_FLOPS_PER_ELEMENT,
        ),
        (OpKind::Gelu, Pass::Forward, GELU_FLOPS_PER_ELEMENT),
        (OpKind::Gelu, Pass::Dgrad, back * GELU_FLOPS_PER_ELEMENT),
        (OpKind::Residual, Pass::Forward, 1),
        (OpKind::Embedding, Pass::Forward, 1),
        (OpKind::Loss, Pass::Forward, LOSS_FLOPS_PER_ELEMENT),
        (OpKind::Loss, Pass::Dgrad, LOSS_BACKWARD_FLOPS_PER_ELEMENT),
    ]
}

/// Exact counts: the FLOPs executed are the graph's per-element count times the elements; every
/// PE sends itself a trigger per pass; each row's all-reduce sends P·B wavelets (B = values per
/// token × the row's tokens) and delivers 2·(P − 1)·B (up the chain or tree, then back), each
/// one reduction cycle; each stream a core takes and each pass costs one activation.
#[test]
fn engine_counts_are_exact_for_every_kernel() {
    let fabric = load_fabric("wse2").unwrap();
    let a = fabric.pe.task_activation_cycles;
    for region in [(6u32, 5u32), (4, 16), (3, 1)] {
        for (kind, pass, per_element) in cases() {
            let (rows, cols) = (53u64, 211u64);
            let cfg = config(&fabric, kind, pass, (rows, cols), region);
            let run = run_elementwise(&fabric, &cfg).unwrap();
            let what = format!("{kind:?} {pass:?} on {region:?}");
            assert_eq!(
                run.flops_executed(),
                per_element * (rows * cols) as u128,
                "{what}"
            );
            let pes = u64::from(region.0 * region.1);
            let passes = if cfg.reduced_values_per_row > 0 { 2 } else { 1 };
            let p = u64::from(region.1);
            let (mut sent, mut received) = (passes * pes, passes * pes);
            if cfg.reduces() {
                let b = cfg.reduced_values_per_row * rows;
                sent += p * b;
                received += 2 * (p - 1) * b;
            }
            let out = &run.output;
            assert_eq!(out.wavelets_sent, sent, "{what}");
            assert_eq!(out.wavelets_received, received, "{what}");
            let total = out.counters.total();
            assert_eq!(total.fmac_ops, 0, "{what}: no multiply-add of a weight");
            let streams = if cfg.reduces() {
                2 * (p - 1) * u64::from(region.0)
            } else {
                0
            };
            assert_eq!(total.reduction_cycles, received - passes * pes, "{what}");
            assert_eq!(
                total.overhead_cycles,
                a * (passes * pes + streams),
                "{what}"
            );
            assert_eq!(
                total.tasks, received,
                "{what}: a task per delivered wavelet"
            );
        }
    }
}

/// A pass over a PE's block costs its FLOPs at SIMD rate (the SRAM port is faster on WSE-2):
/// the per-PE `fmac_cycles` are exactly that, for the uneven blocks too.
#[test]
fn each_pe_computes_its_own_block() {
    let fabric = load_fabric("wse2").unwrap();
    let cfg = config(&fabric, OpKind::LayerNorm, Pass::Forward, (53, 211), (6, 5));
    let run = run_elementwise(&fabric, &cfg).unwrap();
    let lanes = fabric.pe.simd_fp16_lanes;
    for (i, c) in run.output.counters.pes.iter().enumerate() {
        let (r, col) = (i as u32 / 5, i as u32 % 5);
        let e = cfg.elements_of(r, col);
        let expected = (cfg.flops_before_per_element * e).div_ceil(lanes)
            + (cfg.flops_after_per_element * e).div_ceil(lanes);
        assert_eq!(c.fmac_cycles, expected, "PE ({r}, {col})");
        assert_eq!(run.flops_per_pe[i], 8 * e, "PE ({r}, {col})");
        assert_eq!(c.sram_bytes, cfg.sram_bytes_of(&fabric, r, col));
    }
}

/// Without a reduction the model is the engine's timing exactly; with one, within a few cycles
/// (the all-reduce's own model), and the utilisation too.
#[test]
fn the_cost_model_follows_the_engine() {
    let fabric = load_fabric("wse2").unwrap();
    for region in [(8u32, 8u32), (16, 32), (4, 128), (32, 2)] {
        for (kind, pass, _) in cases() {
            let cfg = config(&fabric, kind, pass, (256, 512), region);
            let run = run_elementwise(&fabric, &cfg).unwrap();
            let (r, c) = (u64::from(region.0), u64::from(region.1));
            let cost = elementwise_cost(&fabric, &ElementwiseProblem::of_config(&cfg), r, c);
            let engine = run.output.cycles;
            let what = format!(
                "{kind:?} {pass:?} on {region:?}: engine {engine} model {}",
                cost.cycles
            );
            if cfg.reduces() {
                // The all-reduce's own model is a few cycles off the engine (its tree and chain
                // follow the engine's cores to within that); the kernel inherits exactly that.
                let b = cfg.reduced_values_per_row * 256 / r;
                let coll =
                    CollectiveConfig::along_row(Collective::Allreduce, cfg.algo, region.1, b, 1);
                let coll_engine = run_collective(&fabric, &coll).unwrap().output.cycles;
                let coll_model =
                    collective_cycles(&fabric, CollectiveKind::Allreduce, cfg.algo.into(), c, b);
                assert_eq!(
                    cost.cycles as i64 - engine as i64,
                    coll_model as i64 - coll_engine as i64,
                    "{what}"
                );
            } else {
                assert_eq!(cost.cycles, engine, "{what}");
            }
            let busy = run.output.counters.total().busy_cycles();
            let engine_util = busy as f64 / (r * c * engine) as f64;
            let model_util = cost.busy_cycles_mean as f64 / cost.cycles as f64;
            assert!(
                (engine_util - model_util).abs() < 0.02,
                "{what}: {engine_util} {model_util}"
            );
        }
    }
}

/// The known disagreement, gone: a full-wafer LayerNorm on WSE-2 (10,240 tokens over 994 rows:
/// 11 per PE, 2 values each, over 750 columns) reduces by the engine's own tree all-reduce
/// (1,651 cycles on the engine), where the old formula said 954 and the plan routed a chain's 3
/// colors; the model now names the tree and routes its colors.
#[test]
fn the_full_wafer_row_reduction_is_the_engines_tree() {
    let fabric = load_fabric("wse2").unwrap();
    let cfg = config(
        &fabric,
        OpKind::LayerNorm,
        Pass::Forward,
        (10_240, 2048),
        (994, 750),
    );
    assert_eq!(cfg.algo, Algo::Tree);
    let engine = run_collective(
        &fabric,
        &CollectiveConfig::along_row(Collective::Allreduce, Algo::Tree, 750, 22, 1),
    )
    .unwrap();
    assert_eq!(engine.output.cycles, 1651);
    let model = collective_cycles(
        &fabric,
        CollectiveKind::Allreduce,
        CollectiveAlgo::Tree,
        750,
        22,
    );
    let cost = elementwise_cost(&fabric, &ElementwiseProblem::of_config(&cfg), 994, 750);
    assert_eq!(cost.reduction_cycles, model);
    assert!(model.abs_diff(1651) * 100 <= 1651, "{model}");
    let chain = collective_cycles(
        &fabric,
        CollectiveKind::Allreduce,
        CollectiveAlgo::Chain,
        750,
        22,
    );
    assert!(
        chain > 4 * model,
        "the chain ({chain}) is the slower choice"
    );
    // Colors: the tree's 10 levels and its way back, and the trigger.
    let report = run_json(&[
        "kernel",
        "layernorm",
        "--rows",
        "10240",
        "--cols",
        "2048",
        "--region",
        "994x750",
        "--fidelity",
        "model",
    ]);
    assert_eq!(report["algo"], "tree");
    assert_eq!(report["cycles"].as_u64().unwrap(), cost.cycles);
}

/// `wafersim kernel NAME` runs each kernel in both fidelities with the same FLOPs.
#[test]
fn the_command_runs_every_kernel_in_both_fidelities() {
    for name in [
        "layernorm",
        "softmax",
        "gelu",
        "residual",
        "embedding",
        "loss",
    ] {
        for pass in ["forward", "backward"] {
            let args = [
                "kernel", name, "--rows", "96", "--cols", "160", "--region", "8x16", "--pass", pass,
            ];
            let engine = run_json(&args);
            let model = run_json(&[&args[..], &["--fidelity", "model"]].concat());
            assert_eq!(engine["kernel"], name);
            assert_eq!(
                engine["flops_executed"], model["flops_executed"],
                "{name} {pass}"
            );
            assert!(crate::common::exact(&engine, "flops_executed") >= 96 * 160);
            assert_eq!(
                engine["sram_bytes_max"], model["sram_bytes_max"],
                "{name} {pass}"
            );
            let (e, m) = (
                engine["cycles"].as_f64().unwrap(),
                model["cycles"].as_f64().unwrap(),
            );
            assert!((e - m).abs() <= 0.02 * e, "{name} {pass}: {e} {m}");
        }
    }
}

/// Bad shapes are refused with exit 2 before any work, in both fidelities, naming the flag.
#[test]
fn bad_shapes_are_refused_naming_the_flag() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["--rows", "4", "--cols", "64", "--region", "8x8"],
            "every PE holds at least one element",
        ),
        (
            &["--rows", "0", "--cols", "64", "--region", "8x8"],
            "--rows 0",
        ),
        (
            &["--rows", "64", "--cols", "64", "--region", "8xq"],
            "--region",
        ),
        (
            &["--rows", "64000", "--cols", "64000", "--region", "8x8"],
            "SRAM",
        ),
        // Sized before anything is derived from it (the all-reduce's vector would overflow).
        (
            &[
                "--rows",
                "18446744073709551615",
                "--cols",
                "2",
                "--region",
                "1x2",
            ],
            "at most 2^48 elements",
        ),
    ];
    for (flags, expected) in cases {
        for fidelity in ["wavelet", "model"] {
            let mut argv = vec!["kernel", "layernorm"];
            argv.extend_from_slice(flags);
            argv.extend_from_slice(&["--fidelity", fidelity]);
            let (code, out, err) = run_cli(&argv);
            assert_eq!(code, 2, "{argv:?}: {err}");
            assert!(out.is_empty());
            assert!(err.contains(expected), "{argv:?}: {err}");
        }
    }
    // A fabric whose colors leave no room for the row all-reduce's tree nor its chain.
    let fabric = crate::common::temp_file(
        "elementwise-colors.toml",
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fabric/mini.toml"))
            .unwrap()
            .replace("colors_reserved = 4", "colors_reserved = 21"),
    );
    for fidelity in ["wavelet", "model"] {
        let (code, _, err) = run_cli(&[
            "kernel",
            "softmax",
            "--rows",
            "64",
            "--cols",
            "64",
            "--region",
            "8x8",
            "--fabric",
            fabric.to_str().unwrap(),
            "--fidelity",
            fidelity,
        ]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("colors"), "{err}");
    }
}

/// A size the flags take: small, near powers of two, or the largest a u64 holds.
fn size() -> impl proptest::strategy::Strategy<Value = u64> {
    use proptest::prelude::*;
    prop_oneof![
        1..=40u64,
        (0..64u32).prop_map(|b| 1u64 << b),
        (1..=64u32).prop_map(|b| u64::MAX >> (64 - b)),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Any element-wise kernel, shape and region: a figure or exit 2 with a message, never a
    /// panic, in both fidelities (the engine only where the region is small enough to be quick).
    #[test]
    fn any_elementwise_shape_runs_or_is_refused(
        name in proptest::sample::select(vec!["layernorm", "softmax", "gelu", "residual", "embedding", "loss"]),
        rows in size(),
        cols in size(),
        region in proptest::sample::select(vec!["1x1", "3x2", "8x8", "994x750", "995x1"]),
        backward in proptest::bool::ANY,
    ) {
        let (rows, cols) = (rows.to_string(), cols.to_string());
        let pass = if backward { "backward" } else { "forward" };
        let mut fidelities = vec!["model"];
        if region.len() == 3 {
            fidelities.push("wavelet");
        }
        for fidelity in fidelities {
            let args = ["kernel", name, "--rows", &rows, "--cols", &cols, "--region", region,
                "--pass", pass, "--fidelity", fidelity];
            let outcome = std::panic::catch_unwind(|| run_cli(&args));
            proptest::prop_assert!(outcome.is_ok(), "{args:?} panicked");
            let (code, _, err) = outcome.unwrap();
            proptest::prop_assert!(code == 0 || (code == 2 && !err.is_empty()), "{args:?}: {code} {err}");
        }
    }
}

/// `--algo` forces the row all-reduce, in both fidelities alike; the full-wafer chain the plan
/// used to route costs the engine's chain (8,275 cycles for 22 values over 750 PEs), five
/// times the tree. A kernel with nothing to reduce, or a ring, is refused.
#[test]
fn algo_forces_the_row_allreduce() {
    let fabric = load_fabric("wse2").unwrap();
    let chain = run_collective(
        &fabric,
        &CollectiveConfig::along_row(Collective::Allreduce, Algo::Chain, 750, 22, 1),
    )
    .unwrap()
    .output
    .cycles;
    assert_eq!(chain, 8275);
    let wafer = [
        "kernel",
        "layernorm",
        "--rows",
        "10240",
        "--cols",
        "2048",
        "--region",
        "994x750",
    ];
    let model = |algo: &str| {
        run_json(&[&wafer[..], &["--fidelity", "model", "--algo", algo]].concat())["cycles"]
            .as_u64()
            .unwrap()
    };
    let model_chain = collective_cycles(
        &fabric,
        CollectiveKind::Allreduce,
        CollectiveAlgo::Chain,
        750,
        22,
    );
    let model_tree = collective_cycles(
        &fabric,
        CollectiveKind::Allreduce,
        CollectiveAlgo::Tree,
        750,
        22,
    );
    assert_eq!(model("chain") - model("tree"), model_chain - model_tree);
    assert!(model_chain.abs_diff(chain) * 100 <= chain, "{model_chain}");
    for algo in ["chain", "tree"] {
        let args = [
            "kernel", "softmax", "--rows", "256", "--cols", "512", "--region", "8x64", "--algo",
            algo,
        ];
        let engine = run_json(&args);
        let modelled = run_json(&[&args[..], &["--fidelity", "model"]].concat());
        assert_eq!(engine["algo"], algo);
        assert_eq!(modelled["algo"], algo);
        let (e, m) = (
            engine["cycles"].as_f64().unwrap(),
            modelled["cycles"].as_f64().unwrap(),
        );
        assert!((e - m).abs() <= 0.01 * e, "{algo}: {e} {m}");
    }
    for (args, expected) in [
        (["gelu", "--algo", "tree"], "all-reduces nothing"),
        (["layernorm", "--algo", "ring"], "chain or tree"),
    ] {
        let argv = [
            &["kernel"][..],
            &args,
            &["--rows", "64", "--cols", "64", "--region", "8x8"],
        ]
        .concat();
        let (code, _, err) = run_cli(&argv);
        assert_eq!(code, 2, "{argv:?}: {err}");
        assert!(err.contains("--algo") && err.contains(expected), "{err}");
    }
}

/// The row all-reduce is wired right: with values carried, every PE of every row ends with the
/// sums over its row's PEs of each statistic, by chain and by tree, rows of uneven token counts.
#[test]
fn every_pe_ends_with_its_rows_statistics() {
    use wafersim::engine::kernels::collective::contribution;
    let fabric = load_fabric("wse2").unwrap();
    for (region, algo) in [
        ((6u32, 5u32), Algo::Chain),
        ((6, 5), Algo::Tree),
        ((4, 16), Algo::Tree),
    ] {
        let mut cfg = config(&fabric, OpKind::Loss, Pass::Forward, (53, 211), region);
        cfg.algo = algo;
        cfg.values = true;
        let run = run_elementwise(&fabric, &cfg).unwrap();
        let statistics = run.statistics.unwrap();
        assert_eq!(statistics.len(), (region.0 * region.1) as usize);
        for (pe, got) in statistics.iter().enumerate() {
            let r = pe as u32 / region.1;
            let b = cfg.reduced_values_per_row * cfg.tokens_of(r);
            let expected: Vec<f32> = (0..b)
                .map(|i| (0..region.1).map(|pos| contribution(pos, i)).sum())
                .collect();
            assert_eq!(got, &expected, "PE {pe} on {region:?} by {algo:?}");
        }
        // Values change no timing.
        cfg.values = false;
        assert_eq!(
            run_elementwise(&fabric, &cfg).unwrap().output.cycles,
            run.output.cycles
        );
    }
}
