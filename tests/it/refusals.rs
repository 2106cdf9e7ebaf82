//! Small refusals: a flag that would be ignored, a run name that would read as another
//! sparsity, an error naming a flag the user did not give.

use crate::common::run_cli;

#[test]
fn a_sparsity_named_like_one_is_refused_before_any_file() {
    let out = std::env::temp_dir().join(format!("wafersim-s1-{}", std::process::id()));
    let (code, _, err) = run_cli(&[
        "train",
        "gpt-tiny",
        "--fabric",
        "mini",
        "--sparsity",
        "0.9999999",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--sparsity") && err.contains("s1"), "{err}");
    assert!(!out.exists(), "train wrote before refusing");
}

#[test]
fn inspect_of_a_fabric_refuses_fabric_rather_than_ignore_it() {
    let (code, _, err) = run_cli(&["inspect", "wse2", "--fabric", "wse3"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--fabric"), "{err}");
    // For a model it is what the model is mapped onto.
    let (code, _, err) = run_cli(&["inspect", "gpt-tiny", "--fabric", "mini", "--quiet"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_broadcast_line_beyond_the_fabric_names_pes() {
    for fidelity in ["wavelet", "model"] {
        let (code, _, err) = run_cli(&[
            "kernel",
            "broadcast",
            "--pes",
            "995",
            "--wavelets",
            "4",
            "--fidelity",
            fidelity,
        ]);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains("--pes 995") && !err.contains("--region"),
            "{fidelity}: {err}"
        );
    }
}
