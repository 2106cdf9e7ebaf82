//! Golden snapshots of every simulated figure the engine and `validate` report: the kernels'
//! JSON and their per-PE counters, and `validate --json`. Not pinned: the simulator's own speed
//! (host seconds and the rates derived from it) and its internal event count, which work on the
//! engine may change without changing a simulated figure. Re-bless with `WAFERSIM_BLESS=1
//! cargo test --release --test it golden` and explain the diff in the commit.

use serde_json::Value;
use wafersim::engine::counters::MeshCounters;

use crate::common::{assert_golden, run_cli, temp_file};

/// Fields that measure the host, not the simulated wafer.
const HOST_FIELDS: [&str; 4] = [
    "host_seconds",
    "pe_cycles_per_host_second",
    "wavelet_hops_per_host_second",
    "events",
];

/// The JSON document with every host-side field removed, one top-level field a line and one
/// line per element of a top-level list (a check, an op), so a diff names what moved.
pub(crate) fn simulated_only(mut doc: Value) -> String {
    strip_host_fields(&mut doc);
    let Value::Object(fields) = doc else {
        panic!("a report is a JSON object")
    };
    let mut text = String::new();
    for (key, value) in fields {
        match value {
            Value::Array(items) => {
                text += &format!("{key}: [\n");
                for item in items {
                    text += &format!("  {item}\n");
                }
                text += "]\n";
            }
            other => text += &format!("{key}: {other}\n"),
        }
    }
    text
}

fn strip_host_fields(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for field in HOST_FIELDS {
                map.remove(field);
            }
            map.values_mut().for_each(strip_host_fields);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_host_fields),
        _ => {}
    }
}

/// One line per PE: every counter it keeps, so a change on any PE shows where it happened.
fn counters_table(counters: &MeshCounters) -> String {
    let mut text = format!(
        "rows {} cols {} cycles {}\nrow col fmac_cycles overhead_cycles reduction_cycles fmac_ops \
         tasks wavelets_in[N E S W ramp] wavelets_out[N E S W ramp] stall_cycles sram_bytes\n",
        counters.rows, counters.cols, counters.cycles
    );
    for (i, c) in counters.pes.iter().enumerate() {
        let (row, col) = (i / counters.cols as usize, i % counters.cols as usize);
        text += &format!(
            "{row} {col} {} {} {} {} {} {:?} {:?} {} {}\n",
            c.fmac_cycles,
            c.overhead_cycles,
            c.reduction_cycles,
            c.fmac_ops,
            c.tasks,
            c.wavelets_in,
            c.wavelets_out,
            c.stall_cycles,
            c.sram_bytes
        );
    }
    text
}

/// Runs `wafersim kernel ARGS --json --counters FILE` and pins both its report and its counters
/// as `kernel-NAME.json` and `kernel-NAME.counters.txt`.
pub(crate) fn check_kernel(name: &str, args: &[&str]) {
    let counters_path = temp_file(&format!("golden-{name}.counters"), "");
    let mut argv = vec!["kernel"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["--json", "--counters", counters_path.to_str().unwrap()]);
    let (code, out, err) = run_cli(&argv);
    assert_eq!(code, 0, "wafersim {argv:?}: {err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let counters =
        wafersim::report::read_kernel_counters(&std::fs::read(&counters_path).unwrap()).unwrap();
    assert_golden(&format!("kernel-{name}.txt"), &simulated_only(report));
    assert_golden(
        &format!("kernel-{name}.counters.txt"),
        &counters_table(&counters),
    );
}

const GEMM: [&str; 8] = ["gemm", "--t", "256", "--k", "256", "--n", "128", "--region"];

#[test]
fn kernel_gemm_dense_forward() {
    check_kernel("gemm-dense-forward", &[&GEMM[..], &["8x8"]].concat());
}

#[test]
fn kernel_gemm_sparse_forward_with_a_k_split() {
    let args = [&GEMM[..], &["8x8", "--sparsity", "0.75", "--split", "2x4"]].concat();
    check_kernel("gemm-s0.75-forward-split2x4", &args);
}

#[test]
fn kernel_gemm_sparse_dgrad() {
    let args = [&GEMM[..], &["8x8", "--sparsity", "0.5", "--form", "dgrad"]].concat();
    check_kernel("gemm-s0.5-dgrad", &args);
}

#[test]
fn kernel_gemm_sparse_wgrad() {
    let args = [&GEMM[..], &["8x8", "--sparsity", "0.9", "--form", "wgrad"]].concat();
    check_kernel("gemm-s0.9-wgrad", &args);
}

#[test]
fn kernel_collectives() {
    for algo in ["chain", "tree", "ring"] {
        let args = [
            "allreduce",
            "--pes",
            "16",
            "--wavelets",
            "64",
            "--algo",
            algo,
        ];
        check_kernel(&format!("allreduce-{algo}"), &args);
    }
    check_kernel(
        "reduce-tree-column",
        &[
            "reduce",
            "--pes",
            "12",
            "--wavelets",
            "40",
            "--algo",
            "tree",
            "--axis",
            "column",
        ],
    );
    check_kernel(
        "broadcast-region",
        &["broadcast", "--region", "6x9", "--wavelets", "24"],
    );
}

#[test]
fn validate_json() {
    let (code, out, err) = run_cli(&["validate", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_golden(
        "validate-wse2.txt",
        &simulated_only(serde_json::from_str(&out).unwrap()),
    );
}

/// The main job as the README runs it: `train` on its embedded defaults (mediswift-xl on wse2,
/// dense and the recipe's sparsities), every figure of its report.
#[test]
fn train_on_its_embedded_defaults() {
    let out = std::env::temp_dir().join(format!("wafersim-golden-train-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let (code, _, err) = run_cli(&["train", "--quiet", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let report = std::fs::read_to_string(out.join("report.json")).unwrap();
    assert_golden(
        "train-mediswift-xl-wse2.txt",
        &simulated_only(serde_json::from_str(&report).unwrap()),
    );
    std::fs::remove_dir_all(&out).unwrap();
}

/// One full-wafer step of sparse pre-training, every op's figures; and a step of each phase on
/// the small fabric.
#[test]
fn steps() {
    let cases = [
        ("mediswift-xl", "wse2", "pretrain", "0.75"),
        ("gpt-tiny", "mini", "pretrain", "0.5"),
        ("gpt-tiny", "mini", "finetune", "0"),
        ("gpt-tiny", "mini", "softprompt", "0"),
    ];
    for (model, fabric, phase, sparsity) in cases {
        let (code, out, err) = run_cli(&[
            "step",
            model,
            "--fabric",
            fabric,
            "--phase",
            phase,
            "--sparsity",
            sparsity,
            "--json",
        ]);
        assert_eq!(code, 0, "{err}");
        assert_golden(
            &format!("step-{model}-{fabric}-{phase}-s{sparsity}.txt"),
            &simulated_only(serde_json::from_str(&out).unwrap()),
        );
    }
}

/// Every element-wise kernel on 8 × 8 PEs with uneven slices: a row all-reduce by tree
/// (LayerNorm, the loss), by chain (softmax's gradient on two columns), or none.
#[test]
fn kernel_elementwise() {
    let shape = ["--rows", "60", "--cols", "100", "--region", "8x8"];
    for (name, pass) in [
        ("layernorm", "forward"),
        ("layernorm", "backward"),
        ("softmax", "forward"),
        ("gelu", "forward"),
        ("residual", "forward"),
        ("embedding", "forward"),
        ("loss", "forward"),
    ] {
        let args = [&[name][..], &shape, &["--pass", pass]].concat();
        check_kernel(&format!("{name}-{pass}"), &args);
    }
    let args = [
        "softmax", "--rows", "60", "--cols", "100", "--region", "6x2", "--pass", "backward",
    ];
    check_kernel("softmax-backward-chain", &args);
}
