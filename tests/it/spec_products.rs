//! A limit on a product of keys (a phase's tokens: examples x epochs x seq_len) names the key
//! with its own value and shows the product apart, in full, never saturated.

use crate::common::{run_cli, temp_file};

/// gpt-tiny with `[recipe.PHASE]`'s `examples` and `epochs` replaced; stderr of `inspect` on it.
fn refused(name: &str, phase: &str, examples: &str, epochs: &str) -> String {
    let base = include_str!("../../models/gpt-tiny.toml");
    let (before, after) = base.split_once(&format!("[recipe.{phase}]")).unwrap();
    let after = after
        .replacen(
            after.lines().find(|l| l.starts_with("examples")).unwrap(),
            &format!("examples = {examples}"),
            1,
        )
        .replacen(
            after.lines().find(|l| l.starts_with("epochs")).unwrap(),
            &format!("epochs = {epochs}"),
            1,
        );
    let text = format!("{before}[recipe.{phase}]{after}");
    let path = temp_file(name, &text);
    let (code, _, err) = run_cli(&["inspect", path.to_str().unwrap()]);
    assert_eq!(
        code, 2,
        "{phase}: examples {examples} x epochs {epochs}: {err}"
    );
    err
}

#[test]
fn a_token_limit_names_the_keys_value_and_the_product_apart() {
    // 3e13 examples x 1 epoch x 64 tokens (gpt-tiny's finetune seq_len) = 1.92e15 > 2^50.
    let err = refused(
        "tokens-finetune.toml",
        "finetune",
        "30_000_000_000_000",
        "1",
    );
    assert!(
        err.contains("`recipe.finetune.examples` = 30000000000000")
            && err.contains("1920000000000000")
            && !err.contains("= 1920000000000000 is"),
        "{err}"
    );
    // 1e12 x 1e6 x 64 = 6.4e19 tokens: past u64, shown in full, not as u64::MAX.
    let err = refused(
        "tokens-epochs.toml",
        "finetune",
        "1_000_000_000_000",
        "1_000_000",
    );
    assert!(
        err.contains("`recipe.finetune.examples` = 1000000000000")
            && err.contains("1000000")
            && err.contains("64000000000000000000")
            && !err.contains("18446744073709551615"),
        "{err}"
    );
    // Soft prompting counts seq_len + prompt_tokens per example: 64 + 16 = 80.
    let err = refused(
        "tokens-softprompt.toml",
        "softprompt",
        "1_000_000_000_000",
        "1_000_000",
    );
    assert!(
        err.contains("`recipe.softprompt.examples` = 1000000000000")
            && err.contains("80000000000000000000")
            && !err.contains("18446744073709551615"),
        "{err}"
    );
}
