//! The engine: values, conservation, physics, deadlocks, errors, determinism.

use wafersim::engine::kernels::gemm::{run_gemm, GemmConfig, GemmForm, GemmRun};
use wafersim::spec::{load_fabric, FabricSpec};

fn mini() -> FabricSpec {
    load_fabric("mini").unwrap()
}

fn gemm(
    t: usize,
    k: usize,
    n: usize,
    sparsity: f64,
    region: (u32, u32),
    split: Option<(u32, u32)>,
) -> GemmConfig {
    GemmConfig {
        t,
        k,
        n,
        sparsity,
        region,
        split,
        seed: 3,
        form: GemmForm::Forward,
        values: true,
    }
}

/// Largest |engine − direct| over Y; f32 accumulation in a different order than the f64
/// reference, over at most K terms of magnitude < 1, stays far below 1e-4.
fn max_error(run: &GemmRun) -> f32 {
    let reference = run.values.as_ref().unwrap().reference_product(&run.plan);
    let y = run.y.as_ref().unwrap();
    y.iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

#[test]
fn gemm_values_equal_the_direct_product_dense_and_sparse_every_split() {
    let fabric = mini();
    for sparsity in [0.0, 0.5, 0.75] {
        for split in [(1, 4), (2, 2), (4, 1)] {
            let run = run_gemm(&fabric, &gemm(12, 16, 8, sparsity, (3, 4), Some(split))).unwrap();
            let err = max_error(&run);
            assert!(
                err < 1e-4,
                "sparsity {sparsity} split {split:?}: max error {err}"
            );
            assert!(run.y.as_ref().unwrap().iter().any(|&v| v != 0.0));
        }
    }
}

#[test]
fn kernel_command_prints_the_design_fields() {
    let json = crate::common::run_json(&[
        "kernel",
        "--fabric",
        "mini",
        "gemm",
        "--t",
        "64",
        "--k",
        "64",
        "--n",
        "16",
        "--sparsity",
        "0.5",
        "--region",
        "4x4",
    ]);
    for field in [
        "version",
        "seed",
        "fabric",
        "kernel",
        "t",
        "k",
        "n",
        "sparsity",
        "region",
        "split",
        "cycles",
        "seconds",
        "flops_dense",
        "flops_executed",
        "fmac_ops",
        "wavelets_sent",
        "wavelets_received",
        "wavelet_hops",
        "pe_utilization_mean",
        "pe_utilization_max",
        "sram_bytes_max",
        "host_seconds",
        "pe_cycles_per_host_second",
        "wavelet_hops_per_host_second",
        "breakdown",
    ] {
        assert!(json.get(field).is_some(), "missing {field}");
    }
    assert_eq!(json["flops_dense"], 2 * 64 * 64 * 16);
    assert_eq!(
        json["flops_executed"],
        2 * 512 * 64,
        "512 of 1024 weights kept, each an FMAC over all T = 64 tokens"
    );
}

#[test]
fn bad_kernel_flags_exit_2_naming_the_flag() {
    for (args, needle) in [
        (
            vec![
                "kernel", "gemm", "--t", "64", "--k", "64", "--n", "64", "--region", "995x10",
            ],
            "1 rows and 0 columns too many",
        ),
        (
            vec![
                "kernel", "gemm", "--t", "64", "--k", "64", "--n", "64", "--region", "4by4",
            ],
            "--region",
        ),
        (
            vec![
                "kernel", "gemm", "--t", "64", "--k", "64", "--n", "64", "--region", "4x4",
                "--split", "3x2",
            ],
            "--split",
        ),
        (
            vec![
                "kernel",
                "gemm",
                "--t",
                "64",
                "--k",
                "64",
                "--n",
                "64",
                "--sparsity",
                "1.5",
            ],
            "--sparsity",
        ),
        (
            vec![
                "kernel",
                "reduce",
                "--pes",
                "8",
                "--wavelets",
                "4",
                "--algo",
                "ring",
            ],
            "ring",
        ),
        (
            vec!["kernel", "allreduce", "--pes", "8", "--wavelets", "0"],
            "--wavelets",
        ),
    ] {
        let (code, _, err) = crate::common::run_cli(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn a_tile_that_does_not_fit_names_the_pe_tensors_and_bytes_over() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fabric/mini.toml"))
        .unwrap()
        .replace("sram_bytes = 49_152", "sram_bytes = 8_192")
        .replace("code_reserve_bytes = 6_144", "code_reserve_bytes = 1_024");
    let path = crate::common::temp_file("small-sram.toml", &text);
    let fabric = path.to_str().unwrap();
    // T_r = 64, K_c = 64 (one K-group forced): X tile 8192 B + accumulators 256 B + 1024 B.
    let (code, _, err) = crate::common::run_cli(&[
        "kernel", "--fabric", fabric, "gemm", "--t", "256", "--k", "64", "--n", "8", "--region",
        "4x1",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("X tile 64x64 = 8192 B"), "{err}");
    assert!(err.contains("9472 B, 1280 B over"), "{err}");
}
