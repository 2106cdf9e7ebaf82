//! `kernel --fidelity model` refuses what the engine refuses: the same flags on the same fabric
//! either give figures at both fidelities or exit 2 at both, naming the same limit.

use crate::common::{run_cli, temp_file};

/// mini with only `usable` colors left to kernels (router.colors − router.colors_reserved).
fn fabric_with_colors(usable: u64) -> String {
    let text = include_str!("../../fabric/mini.toml").replace(
        "colors_reserved = 4 ",
        &format!("colors_reserved = {} ", 24 - usable),
    );
    let path = temp_file(&format!("mini-{usable}-colors.toml"), &text);
    path.to_str().unwrap().to_string()
}

/// Runs `kernel --fabric FABRIC FLAGS` at both fidelities: each exits `expected`, and a
/// refusal's message contains every one of `needles`.
fn assert_both(fabric: &str, flags: &str, expected: u8, needles: &[&str]) {
    for fidelity in ["wavelet", "model"] {
        let mut argv = vec![
            "kernel",
            "--fabric",
            fabric,
            "--fidelity",
            fidelity,
            "--quiet",
        ];
        argv.extend(flags.split_whitespace());
        let (code, _, err) = run_cli(&argv);
        assert_eq!(code, expected, "{fidelity}, {fabric}, {flags}: {err}");
        if expected == 2 {
            assert!(
                needles.iter().all(|n| err.contains(n)),
                "{fidelity}, {flags}: {err}"
            );
        }
    }
}

#[test]
fn both_fidelities_hold_a_kernel_to_the_colors_the_fabric_leaves() {
    // (colors left to kernels, the kernel's flags, exit code at both fidelities)
    let cases = [
        // A GEMM routes its weights and two alternating partial-sum colors, in every form.
        (1, "gemm --t 16 --k 16 --n 16 --region 4x4", 2),
        (1, "gemm --t 16 --k 16 --n 16 --region 4x4 --form wgrad", 2),
        (3, "gemm --t 16 --k 16 --n 16 --region 4x4 --form dgrad", 0),
        // Chain and ring: two alternating colors and one back (or round).
        (1, "allreduce --pes 4 --wavelets 4 --algo ring", 2),
        (1, "reduce --pes 4 --wavelets 4 --algo chain", 2),
        // A broadcast is one multicast.
        (1, "broadcast --pes 4 --wavelets 4", 0),
        // A tree routes a color per level and one for the way back: 5 over 16 PEs, 4 over 8.
        (4, "allreduce --pes 16 --wavelets 4 --algo tree", 2),
        (4, "allreduce --pes 8 --wavelets 4 --algo tree", 0),
    ];
    for (usable, flags, expected) in cases {
        let needles = ["colors", "router.colors_reserved"];
        assert_both(&fabric_with_colors(usable), flags, expected, &needles);
    }
}

#[test]
fn both_fidelities_refuse_a_line_longer_than_the_fabrics_region() {
    // mini's user region is 16 x 16 PEs.
    for flags in [
        "broadcast --pes 17 --wavelets 4",
        "reduce --pes 17 --wavelets 4",
        "allreduce --pes 17 --wavelets 17 --algo ring",
    ] {
        assert_both("mini", flags, 2, &["17", "16"]);
    }
    assert_both("mini", "broadcast --pes 16 --wavelets 4", 0, &[]);
}
