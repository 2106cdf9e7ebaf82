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
