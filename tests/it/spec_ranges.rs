//! Every numeric spec key through its accepted range, edges included: a value the validation
//! accepts runs (or is refused as bad input); nothing panics.

use std::panic::{catch_unwind, AssertUnwindSafe};

use proptest::prelude::*;
use wafersim::schedule::run_recipe;
use wafersim::spec::{load_fabric, load_model};
use wafersim::Error;

use crate::common::{run_cli, temp_file};

const FABRIC_KEYS: &[&str] = &[
    "region_width_pes",
    "region_height_pes",
    "clock_hz",
    "sram_bytes",
    "sram_read_bytes_per_cycle",
    "sram_write_bytes_per_cycle",
    "simd_fp16_lanes",
    "task_activation_cycles",
    "code_reserve_bytes",
    "operand_bytes",
    "accumulator_bytes",
    "partial_sum_bytes",
    "sparse_index_decode_cycles",
    "wavelet_bits",
    "sparse_index_bits",
    "hop_latency_cycles",
    "ramp_latency_cycles",
    "colors",
    "colors_reserved",
    "color_buffer_depth_wavelets",
    "wafer_io_bits_per_second",
    "systems_max",
    "swarmx_link_bits_per_second",
    "swarmx_fan_out",
    "swarmx_reduce_bits_per_second",
    "swarmx_level_latency_ns",
    "memoryx_mask_update_elements_per_second",
];

const MODEL_KEYS: &[&str] = &[
    "layers",
    "d_model",
    "heads",
    "d_ff",
    "vocab_size",
    "max_seq_len",
    "weight_bytes",
    "activation_bytes",
    "optimizer_flops_per_param",
    "tokens",
    "batch_sequences",
    "seq_len",
    "examples",
    "epochs",
    "prompt_tokens",
];

/// Values at and around the edges the specs use, and anywhere in u64.
fn value() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..=9u64,
        (0..64u32).prop_map(|b| 1u64 << b),
        (1..=64u32).prop_map(|b| u64::MAX >> (64 - b)),
        prop::sample::select(vec![
            1_000,
            1_001,
            10_000,
            10_001,
            65_536,
            65_537,
            1_000_000,
            100_000_000_000,
            100_000_000_001,
        ]),
        any::<u64>(),
    ]
}

/// `text` with every line setting `key` set to `value` instead.
fn with_key(text: &str, key: &str, value: u64) -> String {
    text.lines()
        .map(|line| match line.split_once(" = ") {
            Some((k, _)) if k.trim() == key => format!("{key} = {value}"),
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Loads both specs and runs the whole recipe: Ok, or a bad-input error with a message.
fn run_or_refuse(fabric_text: &str, model_text: &str, case: &str) -> Result<(), String> {
    let fabric_path = temp_file(&format!("range-fabric-{case}.toml"), fabric_text);
    let model_path = temp_file(&format!("range-model-{case}.toml"), model_text);
    let outcome = catch_unwind(AssertUnwindSafe(|| -> wafersim::Result<()> {
        let fabric = load_fabric(fabric_path.to_str().unwrap())?;
        let model = load_model(model_path.to_str().unwrap())?;
        run_recipe(&model, &fabric, &[0.5]).map(|_| ())
    }));
    match outcome {
        Err(_) => Err(format!("{case}: panicked")),
        Ok(Ok(())) => Ok(()),
        Ok(Err(Error::Input(message))) if !message.is_empty() => Ok(()),
        Ok(Err(other)) => Err(format!("{case}: not a bad-input error: {other}")),
    }
}

const MINI: &str = include_str!("../../fabric/mini.toml");
const WSE2: &str = include_str!("../../fabric/wse2.toml");
const TINY: &str = include_str!("../../models/gpt-tiny.toml");

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn every_fabric_key_runs_or_is_refused(
        key in prop::sample::select(FABRIC_KEYS),
        v in value(),
        base in prop::sample::select(vec![MINI, WSE2]),
    ) {
        let case = format!("{key}={v}");
        let outcome = run_or_refuse(&with_key(base, key, v), TINY, &case);
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    }

    #[test]
    fn every_model_key_runs_or_is_refused(key in prop::sample::select(MODEL_KEYS), v in value()) {
        let case = format!("{key}={v}");
        let outcome = run_or_refuse(MINI, &with_key(TINY, key, v), &case);
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    }

    /// `kernel gemm --fidelity model` at any size the flags take: a figure or exit 2.
    #[test]
    fn any_gemm_shape_is_modelled_or_refused(t in value(), k in value(), n in value()) {
        let (t, k, n) = (t.to_string(), k.to_string(), n.to_string());
        let args = ["kernel", "gemm", "--t", &t, "--k", &k, "--n", &n, "--region", "994x750",
            "--fidelity", "model"];
        let outcome = catch_unwind(|| run_cli(&args));
        prop_assert!(outcome.is_ok(), "{args:?} panicked");
        let (code, _, err) = outcome.unwrap();
        prop_assert!(code == 0 || (code == 2 && !err.is_empty()), "{args:?}: {code} {err}");
    }
}

/// The audit's commands: each once, both fidelities, and the wafer I/O rates that overflowed.
#[test]
fn the_audits_overflows_are_refused_not_panics() {
    for fidelity in ["wavelet", "model"] {
        let (code, _, err) = run_cli(&[
            "kernel",
            "gemm",
            "--t",
            "18446744073709551615",
            "--k",
            "18446744073709551615",
            "--n",
            "2",
            "--fidelity",
            fidelity,
        ]);
        assert_eq!(code, 2, "{fidelity}: {err}");
        assert!(
            err.contains("--t") && err.contains("split the GEMM"),
            "{err}"
        );
    }
    for rate in [1u64, 1_000, 1_000_000] {
        let text = include_str!("../../fabric/wse2.toml");
        let fabric = temp_file(
            &format!("io-{rate}.toml"),
            &with_key(text, "wafer_io_bits_per_second", rate),
        );
        for args in [
            vec!["step", "mediswift-xl", "--fabric", fabric.to_str().unwrap()],
            vec![
                "flops",
                "mediswift-xl",
                "--fabric",
                fabric.to_str().unwrap(),
            ],
        ] {
            let (code, _, err) = run_cli(&args);
            assert!(code == 0 || code == 2, "{args:?}: {code} {err}");
            if code == 2 {
                assert!(err.contains("io.wafer_io_bits_per_second"), "{err}");
            }
        }
        let outcome = run_or_refuse(
            &with_key(MINI, "wafer_io_bits_per_second", rate),
            TINY,
            &format!("io-{rate}"),
        );
        assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    }
}

/// A recipe as long as the model keys allow runs if its cycles fit u64 and is refused, naming
/// the recipe, if they do not: mediswift-xl with 2^50 pre-training tokens takes 3.5e18 cycles
/// (6.7e18 before the mapper checkpointed activations; it ran before the checks came, and must
/// still); at one sequence per step more than 2^64, which overflowed multiplying steps by cycles.
#[test]
fn the_longest_recipes_run_or_are_refused_by_their_cycles() {
    let text = include_str!("../../models/mediswift-xl.toml");
    let longest = with_key(text, "tokens", 1 << 50);
    let path = temp_file("xl-longest.toml", &longest);
    let fabric = load_fabric("wse2").unwrap();
    let model = load_model(path.to_str().unwrap()).unwrap();
    let runs = run_recipe(&model, &fabric, &[0.5]).unwrap();
    assert!(runs[0].total.cycles > 3_000_000_000_000_000_000);
    let one_per_step = with_key(&longest, "batch_sequences", 1);
    let path = temp_file("xl-one-per-step.toml", &one_per_step);
    let model = load_model(path.to_str().unwrap()).unwrap();
    match run_recipe(&model, &fabric, &[0.5]) {
        Err(Error::Input(message)) => assert!(
            message.contains("pretrain phase") && message.contains("2^64"),
            "{message}"
        ),
        other => panic!("{:?}", other.map(|r| r.len())),
    }
}
