//! A model that masks no weight (`recipe.sparse_weights = []`) has nothing a sparsity could
//! skip: a non-zero sparsity would run as dense and report a speedup on no masked weights.

use crate::common::{run_cli, temp_file};

/// gpt-tiny with no sparse weight and the recipe sparsities `sparsities`.
fn unmasked_model(name: &str, sparsities: &str) -> String {
    let text = include_str!("../../models/gpt-tiny.toml")
        .replace(
            "sparse_weights = [\"q\", \"k\", \"v\", \"attn_out\", \"ffn_up\", \"ffn_down\"]",
            "sparse_weights = []",
        )
        .replace(
            "sparsities = [0.5, 0.75]",
            &format!("sparsities = {sparsities}"),
        );
    assert!(text.contains("sparse_weights = []"));
    temp_file(name, &text).to_str().unwrap().to_string()
}

fn assert_refused(args: &[&str], names: &[&str]) {
    let (code, _, err) = run_cli(args);
    assert_eq!(code, 2, "{args:?} was not refused: {err}");
    for name in names {
        assert!(err.contains(name), "{args:?}: {name} not named in: {err}");
    }
}

#[test]
fn a_model_without_sparse_weights_refuses_recipe_sparsities() {
    let model = unmasked_model("unmasked-recipe.toml", "[0.5, 0.75]");
    let out = std::env::temp_dir().join(format!("wafersim-unmasked-{}", std::process::id()));
    for args in [
        vec![
            "train",
            &model,
            "--fabric",
            "mini",
            "--out",
            out.to_str().unwrap(),
        ],
        vec!["flops", &model],
        vec!["inspect", &model],
    ] {
        assert_refused(&args, &["recipe.sparsities", "recipe.sparse_weights"]);
    }
    assert!(!out.exists(), "train wrote before refusing");
}

#[test]
fn a_model_without_sparse_weights_refuses_a_sparsity_flag_or_sweep_point() {
    let model = unmasked_model("unmasked-dense.toml", "[0.0]");
    let out = std::env::temp_dir().join(format!("wafersim-unmasked-flag-{}", std::process::id()));
    let out = out.to_str().unwrap();
    for args in [
        vec![
            "train",
            &model,
            "--fabric",
            "mini",
            "--sparsity",
            "0.5",
            "--out",
            out,
        ],
        vec!["step", &model, "--fabric", "mini", "--sparsity", "0.5"],
        vec!["flops", &model, "--sparsity", "0.5"],
    ] {
        assert_refused(&args, &["--sparsity", "recipe.sparse_weights"]);
    }
    let spec = temp_file(
        "unmasked-sweep.toml",
        &format!("models = [{model:?}]\nfabrics = [\"mini\"]\nsparsities = [0.0, 0.5]\n"),
    );
    assert_refused(
        &["sweep", spec.to_str().unwrap(), "--out", out, "--quiet"],
        &["sparsities[1]", "recipe.sparse_weights"],
    );
    assert!(!std::path::Path::new(out).exists(), "wrote before refusing");
    // Dense stays allowed: the model is a dense model.
    let (code, _, err) = run_cli(&["step", &model, "--fabric", "mini", "--quiet"]);
    assert_eq!(code, 0, "{err}");
}
