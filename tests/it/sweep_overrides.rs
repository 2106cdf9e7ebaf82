//! A sweep override that the model refuses is named by the sweep spec, the override key and the
//! value: never by a line of a file the user never saw (the model re-serialised with overrides).

use crate::common::{run_sweep, temp_file};

/// Runs a gpt-tiny sweep with one override `key = [value]` and returns its stderr (exit 2).
fn refused(name: &str, key: &str, value: &str) -> (String, String) {
    let spec = temp_file(
        name,
        &format!(
            "models = [\"gpt-tiny\"]\nfabrics = [\"mini\"]\nsparsities = [0.5]\n[overrides]\n\
             \"{key}\" = [{value}]\n"
        ),
    );
    let out = std::env::temp_dir().join(format!("wafersim-ovr-{}-{name}", std::process::id()));
    let (code, _, err) = run_sweep(&spec, &out);
    assert_eq!(code, 2, "{key} = {value}: {err}");
    assert!(!out.exists(), "{key} = {value}: wrote before refusing");
    (spec.to_str().unwrap().to_string(), err)
}

#[test]
fn a_refused_override_is_named_by_spec_key_and_value_not_by_a_line() {
    for (key, value) in [
        ("recipe.pretrain", "1"),
        ("recipe.pretrain.batch_sequences", "\"eight\""),
        ("architecture.layers", "-3"),
        ("architecture.tied_embedding", "7"),
    ] {
        let (spec, err) = refused("ovr-type.toml", key, value);
        assert!(
            err.contains(&spec) && err.contains(&format!("`{key}`")) && err.contains(value),
            "{key} = {value}: the spec, key or value is not named: {err}"
        );
        assert!(
            !err.contains("(line "),
            "{key} = {value}: names a line of no file the user has: {err}"
        );
    }
}

#[test]
fn an_override_out_of_range_is_named_by_spec_key_and_value() {
    let (spec, err) = refused("ovr-range.toml", "recipe.pretrain.batch_sequences", "0");
    assert!(
        err.contains(&spec)
            && err.contains("`recipe.pretrain.batch_sequences`")
            && err.contains("= 0"),
        "{err}"
    );
}

#[test]
fn a_fabric_override_is_a_fabric_of_its_own_and_refused_like_a_model_one() {
    // The fabric's own value as an override changes nothing; doubling the wafer I/O moves the
    // figures, and both points are in the sweep's table with their override.
    let mini = wafersim::spec::load_fabric("mini").unwrap();
    let io = mini.io.wafer_io_bits_per_second;
    let spec = temp_file(
        "fabric-io.toml",
        &format!(
            "models = [\"gpt-tiny\"]\nfabrics = [\"mini\"]\nsparsities = [0.5]\n[overrides]\n\
             \"fabric.io.wafer_io_bits_per_second\" = [{io}, {}]\n",
            2 * io
        ),
    );
    let out = std::env::temp_dir().join(format!("wafersim-ovr-{}-fabric", std::process::id()));
    let (code, _, err) = run_sweep(&spec, &out);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = crate::common::run_cli(&["merge", out.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 0, "{err}");
    let csv = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    let own = format!(
        "fabric.io.wafer_io_bits_per_second={}",
        mini.io.wafer_io_bits_per_second
    );
    let seconds = |overrides: &str| -> f64 {
        let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
        let column = header.iter().position(|h| *h == "total_seconds").unwrap();
        let row = csv.lines().find(|l| l.contains(overrides)).unwrap();
        row.split(',').nth(column).unwrap().parse().unwrap()
    };
    let train_out = out.join("train");
    let report = crate::common::run_json(&[
        "train",
        "gpt-tiny",
        "--fabric",
        "mini",
        "--sparsity",
        "0.5",
        "--out",
        train_out.to_str().unwrap(),
    ]);
    let plain = report["runs"][1]["total"]["seconds"].as_f64().unwrap();
    assert_eq!(seconds(&own), plain);
    let doubled = format!("fabric.io.wafer_io_bits_per_second={}", 2 * io);
    assert!(seconds(&doubled) < plain);
    // A key the fabric has not, a value of the wrong kind, one out of range: named, exit 2.
    for (key, value, why) in [
        ("fabric.io.no_such_key", "1", "has no key"),
        (
            "fabric.io.wafer_io_bits_per_second",
            "\"fast\"",
            "invalid type",
        ),
        ("fabric.pe.sram_bytes", "0", "sram_bytes"),
    ] {
        let (spec, err) = refused("ovr-fabric.toml", key, value);
        assert!(
            err.contains(&spec) && err.contains(why),
            "{key} = {value}: {err}"
        );
    }
    let (_, err) = refused("ovr-prefix.toml", "pe.sram_bytes", "1");
    assert!(err.contains("`fabric.`"), "{err}");
}

#[test]
fn every_example_sweep_spec_resolves_and_its_points_load() {
    // The shipped examples are what a newcomer runs first: each must parse, validate and load
    // every point's model and fabric (overrides applied), without running a point.
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut specs = 0;
    for entry in std::fs::read_dir(&folder).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let origin = path.to_str().unwrap();
        let spec = wafersim::sweep::SweepSpec::load(origin).unwrap();
        spec.validate(origin).unwrap();
        let points = wafersim::sweep::resolve_points(&spec, origin).unwrap();
        assert!(!points.is_empty(), "{origin}");
        for p in &points {
            wafersim::sweep::load_point_model(&p.point, &p.model, origin).unwrap();
            wafersim::sweep::load_point_fabric(&p.point, &p.fabric, origin).unwrap();
        }
        specs += 1;
    }
    assert!(specs >= 4, "{specs} example specs");
}
