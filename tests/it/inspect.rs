//! `inspect MODEL --fabric F`: a phase the mapper cannot place says why, in the table and in
//! the JSON, whatever the reason (SRAM, colors, index width), instead of one fixed sentence.

use crate::common::{run_cli, run_json, temp_file};

/// A phase that does not map carries the mapper's own refusal, the same words `step` prints.
#[test]
fn a_phase_that_does_not_map_says_why() {
    let text = include_str!("../../fabric/mini.toml")
        .replace("colors_reserved = 4 ", "colors_reserved = 22 ");
    let fabric = temp_file("inspect-two-colors.toml", &text);
    let fabric = fabric.to_str().unwrap();
    let (_, _, step_err) = run_cli(&["step", "gpt-tiny", "--fabric", fabric]);
    let why = step_err.trim().trim_start_matches("wafersim: error: ");
    // LayerNorm's row all-reduce: a chain's 3 colors and its trigger.
    assert!(why.contains("routes at least 4 colors"), "{step_err}");

    let (code, out, err) = run_cli(&["inspect", "gpt-tiny", "--fabric", fabric]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(why), "the table names the reason:\n{out}");
    assert!(!out.contains("does not fit"), "colors are not SRAM:\n{out}");

    let json = run_json(&["inspect", "gpt-tiny", "--fabric", fabric]);
    let pretrain = &json["phases"][0];
    assert!(pretrain["plan"].is_null(), "{pretrain}");
    assert_eq!(pretrain["unmapped_reason"], why, "{pretrain}");
}

/// A phase that maps has a plan and no reason.
#[test]
fn a_phase_that_maps_has_no_reason() {
    let json = run_json(&["inspect", "gpt-tiny", "--fabric", "mini"]);
    for phase in json["phases"].as_array().unwrap() {
        assert!(phase["plan"].is_object(), "{phase}");
        assert!(phase.get("unmapped_reason").is_none(), "{phase}");
    }
}
