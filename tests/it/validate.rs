//! The cost models against the wavelet-level engine: the bounds `wafersim validate` enforces.

use wafersim::spec::load_fabric;
use wafersim::validate::{validate, MAX_ERROR, MAX_MEAN_ERROR, MAX_UTILIZATION_GAP};

use crate::common::{on_two_threads, run_json};

#[test]
fn cost_models_stay_within_the_bounds_of_the_engine() {
    let v = validate(&load_fabric("wse2").unwrap(), 1).unwrap();
    assert!(v.checks.len() >= 30, "{} shapes", v.checks.len());
    for c in &v.checks {
        // 15% per shape: the model replaces every wavelet by closed forms and random-mask
        // imbalance by its expected maximum; the bound is the issue's.
        assert!(
            c.error.abs() <= MAX_ERROR,
            "{} {}: engine {} model {}",
            c.kernel,
            c.shape,
            c.engine_cycles,
            c.model_cycles
        );
        // Utilisation within 10 points: the model's busy share is what step reports show.
        assert!(
            c.utilization_gap.abs() <= MAX_UTILIZATION_GAP,
            "{} {}: engine {:.3} model {:.3}",
            c.kernel,
            c.shape,
            c.engine_utilization_mean,
            c.model_utilization_mean
        );
        // With the engine's exact per-PE counts the GEMM model follows the protocol to within 2%.
        if let Some(exact) = c.model_exact_cycles {
            let error = (exact as f64 - c.engine_cycles as f64).abs() / c.engine_cycles as f64;
            assert!(
                error <= 0.02,
                "{} {}: exact-count model {exact} vs engine {}",
                c.kernel,
                c.shape,
                c.engine_cycles
            );
        }
    }
    assert!(
        v.mean_abs_error <= MAX_MEAN_ERROR,
        "mean {}",
        v.mean_abs_error
    );
    assert!(v.passed);
    // Every kernel kind the engine has is covered, sparse and dense, regions up to 64 x 64.
    for kind in [
        "gemm forward",
        "gemm dgrad",
        "reduce chain",
        "reduce tree",
        "allreduce chain",
        "allreduce tree",
        "allreduce ring",
        "broadcast chain",
        "layernorm fwd",
        "layernorm dgrad",
        "softmax fwd",
        "softmax dgrad",
        "gelu fwd",
        "gelu dgrad",
        "residual fwd",
        "embedding fwd",
        "embedding wgrad",
        "loss fwd",
        "loss dgrad",
    ] {
        assert!(v.checks.iter().any(|c| c.kernel == kind), "{kind}");
    }
    // Element-wise row all-reduces by both algorithms the plan may pick.
    for algo in [" tree", " chain"] {
        assert!(
            v.checks.iter().any(
                |c| c.kernel.starts_with("softmax") && c.shape.ends_with(algo)
                    || c.kernel.starts_with("loss") && c.shape.ends_with(algo)
            ),
            "{algo}"
        );
    }
    // wgrad dense too: full-wafer steps run every unmasked weight's gradient that way.
    assert!(v
        .checks
        .iter()
        .any(|c| c.kernel == "gemm wgrad" && c.shape.contains(" s 0 ")));
    assert!(
        v.checks.iter().any(|c| c.shape.contains("s 0.9"))
            && v.checks.iter().any(|c| c.shape.contains("64x64"))
    );
}

#[test]
fn the_command_prints_the_same_checks_as_json() {
    let report = run_json(&["validate", "--seed", "3"]);
    assert_eq!(report["passed"], true);
    assert_eq!(report["seed"], 3);
    assert_eq!(report["fabric"], "wse2");
    assert!(report["version"].is_string());
    assert!(report["checks"].as_array().unwrap().len() >= 30);
}

/// A fabric too small for validate's shapes is refused with what they need, not with a flag
/// the user never gave.
#[test]
fn a_fabric_too_small_for_the_shapes_is_refused_with_what_they_need() {
    let (code, stdout, err) = crate::common::run_cli(&["validate", "--fabric", "mini"]);
    assert_eq!(code, 2, "{err}");
    assert!(stdout.is_empty());
    assert!(
        err.contains("up to 64x256 PEs") && err.contains("fabric mini's user region is 16x16"),
        "{err}"
    );
    assert!(!err.contains("--region"), "{err}");
}

/// The ranges `train` and `step` call validated are true: `validate` passes at both edges of
/// each key's range, the other keys as on wse2 (the edges of the wse2 values themselves are the
/// test above). Each edge is one `validate` (about a second); two threads share them.
#[test]
fn validate_passes_at_both_edges_of_every_covered_range() {
    use wafersim::validate::COVERED_RANGES;
    let wse2 = load_fabric("wse2").unwrap();
    let mut fabrics = Vec::new();
    for range in COVERED_RANGES {
        assert!(
            (range.low..=range.high).contains(&(range.value)(&wse2)),
            "{}: wse2 lies inside",
            range.key
        );
        for edge in [range.low, range.high] {
            if edge != (range.value)(&wse2) {
                let mut fabric = wse2.clone();
                (range.set)(&mut fabric, edge);
                fabrics.push((range.key, edge, fabric));
            }
        }
    }
    let failures = on_two_threads(&fabrics, |(key, edge, fabric)| {
        let v = validate(fabric, 1).unwrap();
        assert!(v.unvalidated_keys.is_empty(), "{key} = {edge}");
        let cycles = v.max_abs_error <= MAX_ERROR && v.mean_abs_error <= MAX_MEAN_ERROR;
        let mut failures: Vec<String> = (!cycles)
            .then(|| format!("{key} = {edge}: max |error| {:.3}", v.max_abs_error))
            .into_iter()
            .collect();
        failures.extend(
            v.checks
                .iter()
                .filter(|c| c.utilization_gap.abs() > MAX_UTILIZATION_GAP)
                .map(|c| format!("{key} = {edge}: {} {}: utilisation", c.kernel, c.shape)),
        );
        failures
    });
    assert!(failures.is_empty(), "{failures:?}");
}

/// Just outside a range, validate fails: the ranges are not drawn wider than needed here, so a
/// report outside them is flagged for a reason.
#[test]
fn validate_fails_just_beyond_the_latency_ranges() {
    let mut fabric = load_fabric("wse2").unwrap();
    fabric.router.hop_latency_cycles = 10;
    let v = validate(&fabric, 1).unwrap();
    assert!(!v.passed);
    assert_eq!(v.unvalidated_keys[0].key, "router.hop_latency_cycles");
}

/// `validate` holds the collectives' models where they used to drift unseen: a single wavelet,
/// a long row and a row of two PEs, for every (collective, algorithm) pair.
#[test]
fn validate_holds_collectives_at_one_wavelet_long_rows_and_two_pes() {
    let v = validate(&load_fabric("wse2").unwrap(), 1).unwrap();
    let shape = |c: &wafersim::validate::Check| -> (u64, u64) {
        let words: Vec<&str> = c.shape.split_whitespace().collect();
        (words[1].parse().unwrap(), words[3].parse().unwrap())
    };
    for (kind, algo) in crate::common::COLLECTIVES {
        let name = format!("{} {}", kind.name(), format!("{algo:?}").to_lowercase());
        let shapes: Vec<(u64, u64)> = v
            .checks
            .iter()
            .filter(|c| c.kernel == name)
            .map(shape)
            .collect();
        assert!(shapes.iter().any(|&(p, _)| p >= 256), "{name}: a long row");
        // A ring needs a chunk per PE: its smallest vector is a wavelet per PE.
        assert!(
            shapes.iter().any(|&(p, b)| b == 1 || b == p),
            "{name}: one wavelet (per PE)"
        );
        assert!(
            shapes.iter().any(|&(p, _)| p <= 3),
            "{name}: two or three PEs"
        );
    }
}

/// Each key inside its range is not enough: buffers of 2 wavelets with a ramp of 4 cycles
/// (both inside) halve every wavelet-by-wavelet stream's rate, which no model follows, so
/// such a fabric is reported unvalidated, naming the buffer depth and the depth it needs.
#[test]
fn a_buffer_shallower_than_the_credit_loop_is_unvalidated_though_each_key_is_in_range() {
    use wafersim::validate::unvalidated_keys;
    let mut fabric = load_fabric("wse2").unwrap();
    fabric.router.ramp_latency_cycles = 4;
    fabric.router.color_buffer_depth_wavelets = 2;
    let keys = unvalidated_keys(&fabric);
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0].key, "router.color_buffer_depth_wavelets");
    assert_eq!((keys[0].value, keys[0].low, keys[0].high), (2, 4, 64));
    assert!(!validate(&fabric, 1).unwrap().passed);
    fabric.router.color_buffer_depth_wavelets = 4;
    assert!(unvalidated_keys(&fabric).is_empty());
}
