//! A whole step on the whole wafer: mapping, SRAM budget, timing and its accounting.

use wafersim::graph::StepConfig;
use wafersim::map::MapOptions;
use wafersim::schedule::run_step;
use wafersim::spec::{load_fabric, load_model, Phase};

use crate::common::{run_cli, run_json, temp_file};

fn xl_step(sparsity: f64) -> wafersim::schedule::StepResult {
    let model = load_model("mediswift-xl").unwrap();
    let fabric = load_fabric("wse2").unwrap();
    let config = StepConfig::for_phase(&model, Phase::Pretrain, sparsity);
    run_step(&model, &fabric, config, MapOptions::default()).unwrap()
}

#[test]
fn categories_add_up_to_the_step_exactly() {
    for sparsity in [0.0, 0.5, 0.75] {
        let step = xl_step(sparsity);
        assert_eq!(step.breakdown.total(), step.cycles, "s={sparsity}");
        let ops: u64 = step.ops.iter().map(|op| op.cycles).sum();
        assert_eq!(ops, step.cycles, "per-op rows add up too, s={sparsity}");
        for op in &step.ops {
            assert_eq!(op.breakdown.total(), op.cycles, "{}", op.name);
        }
    }
    for phase in ["finetune", "softprompt"] {
        let report = run_json(&["step", "gpt-tiny", "--fabric", "mini", "--phase", phase]);
        let b = &report["breakdown"];
        let total: u64 = [
            "sparse_compute",
            "dense_compute",
            "reduction",
            "io",
            "imbalance",
            "overhead",
        ]
        .iter()
        .map(|k| b[format!("{k}_cycles")].as_u64().unwrap())
        .sum();
        assert_eq!(total, report["cycles"].as_u64().unwrap(), "{phase}");
    }
}

#[test]
fn a_dense_xl_step_reaches_a_plausible_share_of_peak() {
    let report = run_json(&["step", "mediswift-xl", "--fabric", "wse2"]);
    let fraction = report["peak_fraction"].as_f64().unwrap();
    // Published wafer GEMMs reach 50–70% of peak on-wafer; the weight stream and the fine-grained
    // dataflow hold a whole step below that.
    assert!((0.10..=0.80).contains(&fraction), "{fraction}");
    assert!([
        "compute",
        "io",
        "overhead",
        "reduction",
        "imbalance",
        "recompute",
        "data_parallel"
    ]
    .contains(&report["bound"].as_str().unwrap()));
    let flops = report["flops_executed"].as_f64().unwrap();
    let seconds = report["seconds"].as_f64().unwrap();
    assert!((flops / seconds / 6.56e15 / fraction - 1.0).abs() < 0.01);
    assert!(report["sram_bytes_max"].as_u64().unwrap() <= 49_152);
}

#[test]
fn sparsity_speeds_a_step_up_by_less_than_the_flop_ratio() {
    let dense = xl_step(0.0);
    let sparse = xl_step(0.75);
    let simulated = dense.cycles as f64 / sparse.cycles as f64;
    let theoretical = sparse.flops_dense as f64 / sparse.flops_executed as f64;
    assert!(simulated > 1.2, "sparse is faster: {simulated}");
    assert!(
        simulated < theoretical,
        "but by less than the FLOPs: {simulated} vs {theoretical}"
    );
    // What holds it back: the dense ops and the weight stream do not shrink with sparsity.
    let b = &sparse.breakdown;
    assert!(b.dense_compute + b.io > b.sparse_compute, "{b:?}");
    // At 50% a sparse wavelet (value + index) carries as many bytes as two dense values: the
    // weight stream does not shrink, so the step shrinks by less than its FLOPs (1.37x of 1.67x
    // at microbatches of 52 sequences; 1.02x when 103 microbatches made the stream dominate).
    let half = xl_step(0.5);
    let half_theory = half.flops_dense as f64 / half.flops_executed as f64;
    let half_simulated = dense.cycles as f64 / half.cycles as f64;
    assert!(
        half_simulated < half_theory - 0.1,
        "{half_simulated} vs {half_theory}"
    );
}

#[test]
fn the_same_inputs_give_the_same_plan_and_report() {
    let strip = |mut v: serde_json::Value| {
        v.as_object_mut().unwrap().remove("host_seconds");
        v
    };
    let a = strip(run_json(&["step", "mediswift-med", "--sparsity", "0.75"]));
    let b = strip(run_json(&["step", "mediswift-med", "--sparsity", "0.75"]));
    assert_eq!(a, b);
}

#[test]
fn the_plan_is_the_same_whatever_the_thread_count() {
    // The mapper searches the activation strategies in parallel; the choice, its alternatives
    // and every figure must not depend on how many threads did it.
    let on_threads = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool");
        let mut report = pool.install(|| run_json(&["step", "mediswift-xl", "--sparsity", "0.75"]));
        report.as_object_mut().unwrap().remove("host_seconds");
        report
    };
    let one = on_threads(1);
    assert_eq!(one, on_threads(3));
    assert_eq!(one["alternatives"].as_array().map(Vec::len), Some(4));
}

#[test]
fn a_plan_that_cannot_fit_names_the_pe_the_tensors_and_the_bytes_over() {
    // A wafer of 4 x 4 PEs cannot hold the activations of even one XL sequence, even offloading
    // every checkpoint (the last strategy tried, the one keeping least). (Neither can mini's
    // 16 x 16, so the figures say which wafer was asked: 16 times mini's 360,448 B of
    // activations per PE.)
    let mut text = include_str!("../../fabric/mini.toml").to_string();
    for key in ["region_width_pes", "region_height_pes"] {
        let patched = text.replace(&format!("{key} = 16 "), &format!("{key} = 4 "));
        assert_ne!(patched, text, "mini.toml has no `{key} = 16 `");
        text = patched;
    }
    let path = temp_file("tiny-wafer.toml", &text);
    let (code, out, err) = run_cli(&["step", "mediswift-xl", "--fabric", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty());
    assert!(
        err.contains(
            "mediswift-xl on mini, pretrain step, microbatch 1, activations offload: PE (0, 0) \
             needs 5773312 B for 6144 B code + 5767168 B of activations saved for backward of \
             24 layers (each layer's sub-block inputs offloaded to the activation servers, each \
             sub-block's forward recomputed in backward), 5724160 B over its 49152 B"
        ),
        "{err}"
    );
    let (code, _, err) = run_cli(&["step", "gpt-tiny", "--fabric", "mini", "--microbatch", "9"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--microbatch 9") && err.contains("8 sequences"),
        "{err}"
    );
}

#[test]
fn a_fabric_without_enough_colors_is_refused_naming_the_op() {
    let text = include_str!("../../fabric/mini.toml")
        .replace("colors_reserved = 4 ", "colors_reserved = 22 ");
    let path = temp_file("two-colors.toml", &text);
    let (code, _, err) = run_cli(&["step", "gpt-tiny", "--fabric", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        // LayerNorm's row all-reduce: a chain's 3 colors and its trigger.
        err.contains("op layer0.ln1.fwd routes at least 4 colors, the fabric leaves kernels 2"),
        "{err}"
    );
}

#[test]
fn step_and_kernel_draw_heatmaps_and_traces_on_request() {
    let dir = std::env::temp_dir().join(format!("wafersim-pictures-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (png, trace) = (dir.join("step.png"), dir.join("step.json"));
    let args = [
        "step",
        "gpt-tiny",
        "--fabric",
        "mini",
        "--sparsity",
        "0.75",
        "--quiet",
        "--heatmap",
    ];
    let mut args: Vec<&str> = args.to_vec();
    args.extend([png.to_str().unwrap(), "--trace", trace.to_str().unwrap()]);
    let (code, _, err) = run_cli(&args);
    assert_eq!(code, 0, "{err}");
    let (kpng, ktrace) = (dir.join("kernel.svg"), dir.join("kernel.json"));
    let (code, _, err) = run_cli(&[
        "kernel",
        "gemm",
        "--t",
        "256",
        "--k",
        "64",
        "--n",
        "32",
        "--sparsity",
        "0.5",
        "--region",
        "8x8",
        "--fabric",
        "mini",
        "--quiet",
        "--heatmap",
        kpng.to_str().unwrap(),
        "--trace",
        ktrace.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    // The step's heatmap covers the 16 x 16 fabric at several pixels per PE.
    let decoder = png::Decoder::new(std::fs::File::open(&png).unwrap());
    let info = decoder.read_info().unwrap().info().clone();
    assert!(
        info.width >= 16 * 8 && info.height >= 16 * 8,
        "{} x {}",
        info.width,
        info.height
    );
    let svg = std::fs::read_to_string(&kpng).unwrap();
    assert!(roxmltree::Document::parse(&svg).is_ok() && svg.contains("sparsity 0.5"));
    // The engine's own counters format is a heatmap source too, and a cut file is refused.
    let counters = dir.join("kernel.npz");
    let (code, _, err) = run_cli(&[
        "kernel",
        "reduce",
        "--pes",
        "8",
        "--wavelets",
        "64",
        "--fabric",
        "mini",
        "--quiet",
        "--counters",
        counters.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let redrawn = dir.join("kernel-redrawn.png");
    let (code, _, err) = run_cli(&[
        "plot",
        "heatmap",
        counters.to_str().unwrap(),
        "-o",
        redrawn.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let bytes = std::fs::read(&counters).unwrap();
    std::fs::write(&counters, &bytes[..bytes.len() - 3]).unwrap();
    let (code, _, err) = run_cli(&[
        "plot",
        "heatmap",
        counters.to_str().unwrap(),
        "-o",
        redrawn.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("kernel.npz"), "{err}");
    for path in [&trace, &ktrace] {
        let value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let events = value["traceEvents"].as_array().unwrap();
        assert!(events.iter().any(|e| e["ph"] == "X"), "{}", path.display());
        assert!(events.len() < 5_000, "bounded: {}", events.len());
    }
}

#[test]
fn inspect_shows_the_plan_the_step_uses() {
    let inspect = run_json(&["inspect", "mediswift-xl", "--fabric", "wse2"]);
    let step = run_json(&["step", "mediswift-xl", "--fabric", "wse2"]);
    let plan = &inspect["phases"][0]["plan"];
    assert_eq!(plan["microbatch_sequences"], step["microbatch_sequences"]);
    assert_eq!(plan["sram"]["sram_bytes_max"], step["sram_bytes_max"]);
    // A fabric too small for XL: inspect still answers, without a plan.
    let tiny = run_json(&["inspect", "mediswift-xl", "--fabric", "mini"]);
    assert!(tiny["phases"][0]["plan"].is_null());
}
