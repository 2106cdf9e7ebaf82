//! Every fabric key the spec accepts changes what it names, and nothing else.

use wafersim::engine::kernels::gemm::{run_gemm, GemmConfig, GemmForm};
use wafersim::graph::StepConfig;
use wafersim::map::MapOptions;
use wafersim::schedule::run_step;
use wafersim::spec::{load_fabric, load_model, FabricSpec, Phase};

use crate::common::{run_json, temp_file};

/// `gpt-tiny`'s pre-training step on `fabric` at `sparsity`: its cycles.
fn tiny_step_cycles(fabric: &FabricSpec, sparsity: f64) -> u64 {
    let model = load_model("gpt-tiny").unwrap();
    let config = StepConfig::for_phase(&model, Phase::Pretrain, sparsity);
    run_step(&model, fabric, config, MapOptions::default())
        .unwrap()
        .cycles
}

fn with_decode(decode_cycles: u64) -> FabricSpec {
    let mut fabric = load_fabric("mini").unwrap();
    fabric.pe.sparse_index_decode_cycles = decode_cycles;
    fabric
}

/// A dense weight's values arrive in a known order: no index travels, none is decoded, in the
/// forward, the dgrad or the wgrad. A sparse step pays the decode on every non-zero.
#[test]
fn only_sparse_steps_pay_the_index_decode() {
    let (cheap, dear) = (with_decode(1), with_decode(100));
    assert_eq!(
        tiny_step_cycles(&cheap, 0.0),
        tiny_step_cycles(&dear, 0.0),
        "a dense step decodes no index"
    );
    assert!(tiny_step_cycles(&cheap, 0.75) < tiny_step_cycles(&dear, 0.75));
}

/// The engine's wgrad kernel agrees: a dense wgrad's cycles do not depend on the decode.
#[test]
fn the_engine_decodes_no_index_in_a_dense_wgrad() {
    let cycles = |fabric: &FabricSpec, sparsity: f64| {
        let cfg = GemmConfig {
            pattern: wafersim::sparsity::Pattern::Random,
            t: 64,
            k: 32,
            n: 32,
            sparsity,
            region: (4, 4),
            split: None,
            seed: 1,
            form: GemmForm::Wgrad,
            values: false,
        };
        run_gemm(fabric, &cfg).unwrap().output.cycles
    };
    let (cheap, dear) = (with_decode(1), with_decode(100));
    assert_eq!(cycles(&cheap, 0.0), cycles(&dear, 0.0));
    assert!(cycles(&cheap, 0.5) < cycles(&dear, 0.5));
}

/// mediswift-xl's pre-training step on wse2 with `weight_bytes`: cycles at each sparsity.
fn xl_cycles_with_weight_bytes(weight_bytes: u64, sparsities: &[f64]) -> Vec<u64> {
    let fabric = load_fabric("wse2").unwrap();
    let mut model = load_model("mediswift-xl").unwrap();
    model.architecture.weight_bytes = weight_bytes;
    sparsities
        .iter()
        .map(|&s| {
            let config = StepConfig::for_phase(&model, Phase::Pretrain, s);
            run_step(&model, &fabric, config, MapOptions::default())
                .unwrap()
                .cycles
        })
        .collect()
}

/// The weight stream packs what the value width allows: a 3-byte weight takes a whole 32-bit
/// wavelet dense and two with its 16-bit index sparse, exactly as a 4-byte one; so at 50%
/// sparsity the stream no more shrinks than with fp16 (it made 1.42x of 1.02x when dense was
/// charged 3 bytes and sparse one wavelet).
#[test]
fn the_weight_stream_packs_as_the_value_width_allows() {
    let sparsities = [0.0, 0.5, 0.75];
    let three = xl_cycles_with_weight_bytes(3, &sparsities);
    assert_eq!(three, xl_cycles_with_weight_bytes(4, &sparsities));
    let two = xl_cycles_with_weight_bytes(2, &sparsities);
    let speedup = |c: &[u64]| c[0] as f64 / c[1] as f64;
    // Its dense stream is twice fp16's, so the step waits on I/O more and gains no more.
    assert!(
        speedup(&three) < speedup(&two) + 0.05,
        "s=0.5: {} with 3-byte weights, {} with 2",
        speedup(&three),
        speedup(&two)
    );
    // One-byte weights pack four to a dense wavelet but still one per non-zero with its index:
    // at 50% sparsity the sparse stream is twice the dense one, so an op keeps the dense format
    // unless computing only the non-zeros gains more than its longer stream costs: the step is
    // never slower than dense (it was when every weight streamed sparse); at 75% the streams are
    // equal and the sparse format computes less.
    let one = xl_cycles_with_weight_bytes(1, &sparsities);
    assert!(one[1] <= one[0] && one[2] < one[0], "{one:?}");
}

/// The engine's GEMM packs its stream from the fabric's `pe.operand_bytes` as the cost model
/// does: for every width the two agree within validate's bound, and the values it carries give
/// the product (a dense 1-byte group packs four values, an 8-byte value takes two wavelets, an
/// 8-byte non-zero three).
#[test]
fn engine_and_cost_model_pack_every_operand_width_alike() {
    // (operand bytes, sparsity) -> (task activations and decodes, wavelets sent) of the engine.
    let mut engine_streams = std::collections::BTreeMap::new();
    for bytes in [1, 2, 3, 4, 8] {
        let text = include_str!("../../fabric/mini.toml")
            .replace("operand_bytes = 2 ", &format!("operand_bytes = {bytes} "));
        let path = temp_file(&format!("operand-{bytes}.toml"), &text);
        for sparsity in ["0", "0.5"] {
            let args = [
                "kernel",
                "gemm",
                "--fabric",
                path.to_str().unwrap(),
                "--t",
                "256",
                "--k",
                "128",
                "--n",
                "64",
                "--sparsity",
                sparsity,
                "--region",
                "8x8",
            ];
            let engine = run_json(&args);
            let model = run_json(&[&args[..], &["--fidelity", "model"]].concat());
            let (e, m) = (
                engine["cycles"].as_f64().unwrap(),
                model["cycles"].as_f64().unwrap(),
            );
            // validate's per-shape bound: the model is closed forms of the engine's protocol.
            assert!(
                (m - e).abs() / e <= wafersim::validate::MAX_ERROR,
                "{bytes} B, s {sparsity}: engine {e}, model {m}"
            );
            engine_streams.insert(
                (bytes, sparsity),
                (
                    engine["breakdown"]["overhead_cycles"].as_u64().unwrap(),
                    engine["wavelets_sent"].as_u64().unwrap(),
                ),
            );
            let values = run_json(&[&args[..], &["--values"]].concat());
            assert_eq!(
                values["values"]["within_f32_rounding"], true,
                "{bytes} B, s {sparsity}"
            );
        }
    }
    // Dense: four 1-byte values per task, two fp16, one 8-byte value over two wavelets.
    assert!(engine_streams[&(1, "0")].0 < engine_streams[&(2, "0")].0);
    assert!(engine_streams[&(8, "0")].1 > engine_streams[&(4, "0")].1);
    // Sparse: a non-zero of 8 + 2 bytes takes three wavelets, of 2 + 2 bytes one.
    assert!(engine_streams[&(8, "0.5")].1 > engine_streams[&(2, "0.5")].1);
}

/// A sparse weight's index addresses a row of its PE's K slice: `router.sparse_index_bits`
/// bounds the slice, so the mapper splits K finer for a sparse step (a dense one sends no
/// index), and the engine refuses a split whose slices it cannot address.
#[test]
fn the_index_width_bounds_a_sparse_weights_k_slice() {
    let mut narrow = load_fabric("mini").unwrap();
    narrow.router.sparse_index_bits = 4;
    let mini = load_fabric("mini").unwrap();
    assert_eq!(tiny_step_cycles(&narrow, 0.0), tiny_step_cycles(&mini, 0.0));
    assert_ne!(
        tiny_step_cycles(&narrow, 0.75),
        tiny_step_cycles(&mini, 0.75)
    );
    let text = include_str!("../../fabric/mini.toml")
        .replace("sparse_index_bits = 16 ", "sparse_index_bits = 4 ");
    let path = temp_file("index-4.toml", &text);
    let (code, out, err) = crate::common::run_cli(&[
        "kernel",
        "gemm",
        "--fabric",
        path.to_str().unwrap(),
        "--t",
        "64",
        "--k",
        "128",
        "--n",
        "64",
        "--sparsity",
        "0.5",
        "--region",
        "4x4",
        "--split",
        "2x2",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty());
    assert!(
        err.contains("64 rows") && err.contains("router.sparse_index_bits"),
        "{err}"
    );
}

/// The keys that changed nothing are gone; a file that still sets one is told why.
#[test]
fn a_removed_key_is_refused_with_the_reason() {
    let text = include_str!("../../fabric/mini.toml").replace("[pe]\n", "[pe]\nmicrothreads = 8\n");
    let path = temp_file("microthreads.toml", &text);
    let (code, out, err) = crate::common::run_cli(&["inspect", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty());
    assert!(
        err.contains("microthreads.toml")
            && err.contains("`pe.microthreads` is no longer a key")
            && err.contains("one task at a time")
            && err.contains("delete the line"),
        "{err}"
    );
}

fn mini_with(key_line: &str, value: u64) -> std::path::PathBuf {
    let (key, _) = key_line.split_once(" = ").unwrap();
    let text =
        include_str!("../../fabric/mini.toml").replace(key_line, &format!("{key} = {value} "));
    temp_file(&format!("{key}-{value}.toml"), &text)
}

/// A fabric outside what `validate` covers passes no longer as validated: `train` and `step` say
/// so in the JSON and on the terminal; inside, they say it is validated.
#[test]
fn reports_on_a_fabric_outside_the_covered_ranges_say_so() {
    let far = mini_with("hop_latency_cycles = 1 ", 10);
    let far = far.to_str().unwrap();
    let step = run_json(&["step", "gpt-tiny", "--fabric", far]);
    assert_eq!(step["validated"], false);
    assert_eq!(
        step["unvalidated_keys"][0]["key"],
        "router.hop_latency_cycles"
    );
    assert_eq!(step["unvalidated_keys"][0]["value"], 10);
    let (code, table, err) = crate::common::run_cli(&["step", "gpt-tiny", "--fabric", far]);
    assert_eq!(code, 0, "{err}");
    assert!(
        table.contains("warning: fabric mini lies outside")
            && table.contains("router.hop_latency_cycles = 10 (validated 0 to 4)"),
        "{table}"
    );
    let inspect = run_json(&["inspect", far]);
    assert_eq!(inspect["validated"], false);
    assert_eq!(
        inspect["unvalidated_keys"][0]["key"],
        "router.hop_latency_cycles"
    );
    assert_eq!(run_json(&["inspect", "wse2"])["validated"], true);
    let inside = run_json(&["step", "gpt-tiny", "--fabric", "mini"]);
    assert_eq!(inside["validated"], true);
    assert_eq!(inside["unvalidated_keys"].as_array().unwrap().len(), 0);
    let shallow = mini_with("color_buffer_depth_wavelets = 4 ", 1);
    let dir = std::env::temp_dir().join(format!("wafersim-unvalidated-{}", std::process::id()));
    let args = [
        "train",
        "gpt-tiny",
        "--fabric",
        shallow.to_str().unwrap(),
        "--sparsity",
        "0.5",
        "--out",
        dir.to_str().unwrap(),
    ];
    let train = run_json(&args);
    assert_eq!(train["validated"], false);
    assert_eq!(
        train["unvalidated_keys"][0]["key"],
        "router.color_buffer_depth_wavelets"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fabric sweep flags its points on an unvalidated fabric without running `validate`: the
/// terminal says so once per fabric, each point's file says so.
#[test]
fn sweep_points_on_a_fabric_outside_the_covered_ranges_say_so() {
    let far = mini_with("ramp_latency_cycles = 2 ", 8);
    let spec = temp_file(
        "unvalidated-sweep.toml",
        &format!(
            "models = [\"gpt-tiny\"]\nfabrics = [\"mini\", {:?}]\nsparsities = [0.5]\n",
            far.to_str().unwrap()
        ),
    );
    let out =
        std::env::temp_dir().join(format!("wafersim-unvalidated-sweep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let (code, table, err) = crate::common::run_cli(&[
        "sweep",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--jobs",
        "1",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        table.matches("warning: fabric mini lies outside").count(),
        1,
        "{table}"
    );
    assert!(table.contains("router.ramp_latency_cycles = 8 (validated 0 to 4)"));
    let mut flags = Vec::new();
    for entry in std::fs::read_dir(out.join("points")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let point: serde_json::Value = serde_json::from_str(&text).unwrap();
        flags.push((
            point["validated"].as_bool().unwrap(),
            point["unvalidated_keys"].as_array().unwrap().len(),
        ));
    }
    flags.sort();
    assert_eq!(flags, [(false, 1), (true, 0)]);
    let _ = std::fs::remove_dir_all(&out);
}
