//! Bad input: every kind of mistake gets exit code 2 and one message naming the file, the key or
//! the flag; no input makes wafersim panic.

use proptest::prelude::*;

use crate::common::{run_cli, temp_file};

const TINY: &str = include_str!("../../models/gpt-tiny.toml");
const MINI: &str = include_str!("../../fabric/mini.toml");

/// Runs `flops` (for a model) or `inspect` (for a fabric) on an edited copy of a built-in file
/// and returns the error message, asserting exit code 2 and a single line naming the file.
pub fn error_for(kind: &str, edit: impl Fn(&str) -> String) -> String {
    let (original, file) = if kind == "model" {
        (TINY, "bad-model.toml")
    } else {
        (MINI, "bad-fabric.toml")
    };
    let edited = edit(original);
    assert_ne!(edited, original, "the edit must change the file");
    let path = temp_file(&format!("{}-{file}", edited.len()), &edited);
    let path = path.to_str().unwrap();
    let args: Vec<&str> = if kind == "model" {
        vec!["flops", path]
    } else {
        vec!["inspect", path]
    };
    let (code, out, err) = run_cli(&args);
    assert_eq!(code, 2, "expected exit 2, got {code}; stderr: {err}");
    assert!(out.is_empty(), "nothing on stdout on error: {out}");
    assert_eq!(err.trim_end().lines().count(), 1, "one message: {err}");
    assert!(err.contains(path), "the message names the file: {err}");
    err
}

#[test]
fn unknown_key_is_named() {
    let err = error_for("model", |t| {
        t.replace("d_ff = 256", "d_ff = 256\nd_fff = 3")
    });
    assert!(
        err.contains("d_fff") && err.contains("unknown field"),
        "{err}"
    );
}

#[test]
fn missing_key_is_named() {
    let err = error_for("fabric", |t| t.replace("clock_hz = 1_100_000_000", ""));
    assert!(err.contains("missing field `clock_hz`"), "{err}");
}

#[test]
fn negative_and_zero_sizes_are_refused() {
    let err = error_for("model", |t| t.replace("layers = 2 ", "layers = -2 "));
    assert!(
        err.contains("key `architecture.layers`") && err.contains("-2"),
        "{err}"
    );
    let err = error_for("model", |t| t.replace("d_model = 64 ", "d_model = 0 "));
    assert!(
        err.contains("architecture.d_model") && err.contains("= 0"),
        "{err}"
    );
    let err = error_for("fabric", |t| {
        t.replace("sram_bytes = 49_152", "sram_bytes = 0")
    });
    assert!(err.contains("pe.sram_bytes"), "{err}");
}

#[test]
fn heads_must_divide_d_model() {
    let err = error_for("model", |t| t.replace("heads = 4 ", "heads = 5 "));
    assert!(
        err.contains("architecture.heads") && err.contains("divisor of architecture.d_model = 64"),
        "{err}"
    );
}

#[test]
fn sparsity_outside_zero_to_one_is_refused_in_files_and_flags() {
    let err = error_for("model", |t| {
        t.replace("sparsities = [0.5, 0.75]", "sparsities = [0.5, 1.0]")
    });
    assert!(
        err.contains("recipe.sparsities[1]") && err.contains("[0, 1)"),
        "{err}"
    );
    for bad in ["1", "1.5", "-0.1", "abc", "nan"] {
        let (code, out, err) = run_cli(&["flops", "gpt-tiny", "--sparsity", bad]);
        assert_eq!(code, 2, "--sparsity {bad}");
        assert!(out.is_empty());
        assert!(
            err.contains("--sparsity") && err.contains("[0, 1)"),
            "{bad}: {err}"
        );
    }
}

/// A whole-wafer run keeps every PE's counters: a region past 2^24 PEs is refused up front,
/// naming both keys, instead of aborting on allocation.
#[test]
fn a_region_of_more_than_two_to_the_24_pes_is_refused() {
    let err = error_for("fabric", |t| {
        t.replace("region_width_pes = 16 ", "region_width_pes = 65536 ")
            .replace("region_height_pes = 16 ", "region_height_pes = 65536 ")
    });
    assert!(
        err.contains("geometry.region_width_pes")
            && err.contains("region_height_pes = 65536 is 4294967296 PEs")
            && err.contains("at most 16777216 PEs"),
        "{err}"
    );
}

#[test]
fn region_beyond_the_largest_side_is_refused() {
    let err = error_for("fabric", |t| {
        t.replace("region_width_pes = 16 ", "region_width_pes = 65537 ")
    });
    assert!(
        err.contains("geometry.region_width_pes") && err.contains("1 to 65536"),
        "{err}"
    );
}

#[test]
fn missing_files_and_unknown_names_are_named() {
    let (code, _, err) = run_cli(&["flops", "no/such/model.toml"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no/such/model.toml") && err.contains("cannot be read"),
        "{err}"
    );
    let (code, _, err) = run_cli(&["flops", "mediswift-xxl"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown model 'mediswift-xxl'") && err.contains("mediswift-xl"),
        "{err}"
    );
    let (code, _, err) = run_cli(&["flops", "gpt-tiny", "--fabric", "wse9"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown fabric 'wse9'") && err.contains("wse2, wse3, mini"),
        "{err}"
    );
    let (code, _, err) = run_cli(&["inspect", "cs9"]);
    assert_eq!(code, 2);
    assert!(err.contains("inspect 'cs9'"), "{err}");
}

#[test]
fn a_valid_edit_still_works() {
    let path = temp_file(
        "tiny-wide.toml",
        &TINY.replace("d_model = 64 ", "d_model = 128 "),
    );
    let (code, out, err) = run_cli(&["inspect", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("d_model 128"), "{out}");
}

/// One random edit of a TOML text: drop a line, replace a value, rename a key, or cut the text.
fn mutate(text: &str, choice: usize, pick: usize, value: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let i = pick % lines.len();
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    match choice % 4 {
        0 => {
            out.remove(i);
        }
        1 => {
            if let Some((key, _)) = lines[i].split_once('=') {
                out[i] = format!("{key}= {value}");
            }
        }
        2 => {
            if let Some((key, rest)) = lines[i].split_once('=') {
                out[i] = format!("{}x ={rest}", key.trim_end());
            }
        }
        _ => {
            let cut = pick % text.len();
            return text.chars().take(cut).collect();
        }
    }
    out.join("\n")
}

fn value_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| format!("{v:?}")),
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("18446744073709551615".to_string()),
        Just("\"text\"".to_string()),
        Just("[1, 2]".to_string()),
        Just("true".to_string()),
        "[a-z0-9_.\\-\\[\\]\"]{0,12}",
    ]
}

fn never_panics(args: &[&str]) -> u8 {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let outcome = std::panic::catch_unwind(|| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run_cli(&refs)
    });
    let (code, _, err) = outcome.unwrap_or_else(|_| panic!("wafersim panicked on {args:?}"));
    assert!(code == 0 || code == 2, "exit {code} on {args:?}: {err}");
    if code == 2 {
        assert!(
            !err.trim().is_empty(),
            "exit 2 without a message on {args:?}"
        );
    }
    code
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mutated_model_files_never_panic(choice in 0usize..4, pick in 0usize..10_000, value in value_strategy()) {
        let path = temp_file(&format!("prop-model-{choice}-{pick}.toml"), &mutate(TINY, choice, pick, &value));
        never_panics(&["flops", path.to_str().unwrap()]);
        never_panics(&["inspect", path.to_str().unwrap(), "--json"]);
    }

    #[test]
    fn mutated_fabric_files_never_panic(choice in 0usize..4, pick in 0usize..10_000, value in value_strategy()) {
        let path = temp_file(&format!("prop-fabric-{choice}-{pick}.toml"), &mutate(MINI, choice, pick, &value));
        never_panics(&["inspect", path.to_str().unwrap()]);
        never_panics(&["flops", "gpt-tiny", "--fabric", path.to_str().unwrap(), "--json"]);
    }

    #[test]
    fn random_flag_values_never_panic(value in value_strategy(), seed in any::<i64>(), which in 0usize..4) {
        let seed = seed.to_string();
        let args: Vec<&str> = match which {
            0 => vec!["flops", "gpt-tiny", "--sparsity", &value],
            1 => vec!["flops", "gpt-tiny", "--seed", &seed],
            2 => vec!["flops", &value],
            _ => vec!["inspect", &value],
        };
        never_panics(&args);
    }
}

/// A value for a numeric flag: small valid ones, the edges, and garbage.
fn numeric_flag() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..48).prop_map(|v| v.to_string()),
        Just("-1".to_string()),
        Just("0".to_string()),
        Just("1e3".to_string()),
        Just("18446744073709551616".to_string()),
        Just("999999999999".to_string()),
        Just("".to_string()),
        Just("x".to_string()),
        (0u64..16, 0u64..16).prop_map(|(a, b)| format!("{a}x{b}")),
        Just("0.75".to_string()),
        Just("nan".to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    /// Every numeric flag of every command, fed edge values and garbage: exit 0 or 2 with a
    /// message, never a panic. Sizes stay small enough that a valid draw runs in milliseconds
    /// (huge values are refused up front by the SRAM and region checks).
    #[test]
    fn every_numeric_flag_takes_any_value_without_panicking(
        which in 0usize..9, a in numeric_flag(), b in numeric_flag(), c in numeric_flag()
    ) {
        let out = std::env::temp_dir().join(format!("wafersim-prop-flags-{}", std::process::id()));
        let out = out.to_str().unwrap().to_string();
        let args: Vec<&str> = match which {
            0 => vec!["step", "gpt-tiny", "--fabric", "mini", "--microbatch", &a, "--sparsity", &b],
            1 => vec!["train", "gpt-tiny", "--fabric", "mini", "--sparsity", &a, "--out", &out, "--seed", &b],
            2 => vec!["kernel", "gemm", "--t", &a, "--k", &b, "--n", &c, "--fabric", "mini", "--region", "4x4"],
            3 => vec!["kernel", "gemm", "--t", "64", "--k", "32", "--n", "32", "--fabric", "mini", "--region", &a, "--split", &b],
            4 => vec!["kernel", "gemm", "--t", "64", "--k", "32", "--n", "32", "--fabric", "mini", "--region", "4x4", "--sparsity", &a, "--seed", &b],
            5 => vec!["kernel", "reduce", "--pes", &a, "--wavelets", &b, "--fabric", "mini"],
            6 => vec!["kernel", "allreduce", "--pes", &a, "--wavelets", &b, "--algo", "ring", "--fabric", "mini"],
            7 => vec!["kernel", "broadcast", "--region", &a, "--wavelets", &b, "--fabric", "mini"],
            _ => vec!["flops", "gpt-tiny", "--sparsity", &a, "--seed", &b],
        };
        never_panics(&args);
    }
}
