//! The theoretical side: every op's FLOPs against closed forms worked out by hand, parameter
//! counts, and the paper's speedups.

use wafersim::graph::{ParamCounts, Pass, StepConfig, StepGraph};
use wafersim::spec::{load_model, Phase};

use crate::common::run_json;

/// gpt-tiny: 2 layers, d 64, 4 heads (of 16), d_ff 256, vocabulary 512; pre-training steps of
/// 8 sequences × 128 tokens.
const T: u128 = 8 * 128;
const S: u128 = 128;
const D: u128 = 64;
const F: u128 = 256;
const A: u128 = 4;
const V: u128 = 512;

/// Closed form (dense, executed) of each gpt-tiny pre-training op, by its name, at sparsity 0.75:
/// a sparse d×d weight keeps 1024 of 4096 entries, a d×4d (or 4d×d) one 4096 of 16384.
fn closed_form(name: &str) -> (u128, u128) {
    let (nnz_dd, nnz_df) = (1024, 4096);
    let part = |i: usize| name.split('.').nth(i).unwrap_or_default();
    let (what, pass) = if name.starts_with("layer") {
        (part(1), part(2))
    } else {
        (part(0), part(1))
    };
    let same = |x: u128| (x, x);
    let linear = |k: u128, n: u128, nnz: u128| -> (u128, u128) {
        let bias = if pass == "dgrad" { 0 } else { T * n };
        (2 * T * k * n + bias, 2 * T * nnz + bias)
    };
    let update =
        |elements: u128, nnz: u128, extra: u128| (12 * (elements + extra), 12 * (nnz + extra));
    match (what, pass) {
        ("embedding", "fwd") => same(T * D),
        ("embedding", "wgrad") => same(2 * T * D),
        ("embedding", "update") => same(12 * (V * D + 128 * D)),
        ("ln1" | "ln2" | "final_ln", "fwd") => same(8 * T * D),
        ("ln1" | "ln2" | "final_ln", "dgrad") => same(16 * T * D),
        ("ln1" | "ln2" | "final_ln", "wgrad") => same(3 * T * D),
        ("ln1" | "ln2" | "final_ln", "update") => same(12 * 2 * D),
        ("q" | "k" | "v" | "attn_out", "fwd" | "dgrad" | "wgrad") => linear(D, D, nnz_dd),
        ("q" | "k" | "v" | "attn_out", "update") => update(D * D, nnz_dd, D),
        ("ffn_up", "fwd" | "dgrad" | "wgrad") => linear(D, F, nnz_df),
        ("ffn_up", "update") => update(D * F, nnz_df, F),
        ("ffn_down", "fwd" | "dgrad" | "wgrad") => linear(F, D, nnz_df),
        ("ffn_down", "update") => update(F * D, nnz_df, D),
        ("attn_scores" | "attn_values", "fwd") => same(2 * T * S * D),
        ("attn_scores" | "attn_values", "dgrad") => same(4 * T * S * D),
        ("softmax", "fwd") => same(5 * T * A * S),
        ("softmax", "dgrad") => same(10 * T * A * S),
        ("residual1" | "residual2", "fwd" | "dgrad") => same(T * D),
        ("gelu", "fwd") => same(8 * T * F),
        ("gelu", "dgrad") => same(16 * T * F),
        ("lm_head", "fwd" | "dgrad" | "wgrad") => same(2 * T * D * V),
        ("loss", "fwd") => same(5 * T * V),
        ("loss", "dgrad") => same(2 * T * V),
        _ => panic!("no closed form for op {name}"),
    }
}

#[test]
fn every_op_of_gpt_tiny_matches_its_closed_form() {
    let model = load_model("gpt-tiny").unwrap();
    let step = StepGraph::build(&model, StepConfig::for_phase(&model, Phase::Pretrain, 0.75));
    assert_eq!(step.tokens() as u128, T);
    for op in step.ops() {
        let (dense, executed) = closed_form(&op.name);
        assert_eq!(op.flops_dense, dense, "{} dense", op.name);
        assert_eq!(op.flops_executed, executed, "{} executed", op.name);
    }
    // Per layer: 14 forward ops, 14 dgrads, 8 wgrads and 8 updates (2 norms + 6 linears);
    // around them: embedding (fwd, wgrad, update), final norm (4), head (fwd, dgrad, wgrad:
    // tied, so its update is the embedding's) and loss (fwd, dgrad).
    assert_eq!(step.graph.node_count(), 2 * 44 + 3 + 4 + 3 + 2);
    let wgrads = step.ops().filter(|op| op.pass == Pass::Wgrad).count();
    assert_eq!(wgrads, 2 * 8 + 1 + 1 + 1);
}

#[test]
fn soft_prompting_trains_only_the_prompt_and_lengthens_every_sequence() {
    let model = load_model("gpt-tiny").unwrap();
    let config = StepConfig::for_phase(&model, Phase::Softprompt, 0.0);
    assert_eq!(config.seq_len, 64 + 16);
    let step = StepGraph::build(&model, config);
    let trained: Vec<&str> = step
        .ops()
        .filter(|op| matches!(op.pass, Pass::Wgrad | Pass::Update))
        .map(|op| op.name.as_str())
        .collect();
    assert_eq!(trained, ["embedding.wgrad", "embedding.update"]);
    let wgrad = step.op("embedding.wgrad").unwrap();
    // Scatter of the gradient into the 16 prompt rows of 4 sequences.
    assert_eq!(wgrad.flops_executed, 4 * 16 * D);
    assert_eq!(
        step.op("embedding.update").unwrap().flops_executed,
        12 * 16 * D
    );
    // dgrad still runs through every layer, down to the first norm.
    assert!(step.op("layer0.ln1.dgrad").is_some());
    assert!(step.op("layer0.q.wgrad").is_none());
}

#[test]
fn the_graph_is_acyclic_and_backward_waits_for_forward() {
    let model = load_model("gpt-tiny").unwrap();
    let step = StepGraph::build(&model, StepConfig::for_phase(&model, Phase::Pretrain, 0.5));
    let order = petgraph::algo::toposort(&step.graph, None).expect("a DAG");
    assert_eq!(order.len(), step.graph.node_count());
    let loss = step
        .graph
        .node_indices()
        .find(|&n| step.graph[n].name == "loss.fwd")
        .unwrap();
    let first_update = step
        .graph
        .node_indices()
        .find(|&n| step.graph[n].pass == Pass::Update)
        .unwrap();
    assert!(petgraph::algo::has_path_connecting(
        &step.graph,
        loss,
        first_update,
        None
    ));
}

#[test]
fn non_embedding_parameters_are_the_papers() {
    // 12·L·d² + per layer 13·d of biases and norms + the final norm's 2·d.
    for (name, d, rounded) in [
        ("mediswift-med", 1024u64, 302_000_000u64),
        ("mediswift-large", 1536, 680_000_000),
        ("mediswift-xl", 2048, 1_210_000_000),
    ] {
        let p = ParamCounts::of(&load_model(name).unwrap());
        assert_eq!(
            p.non_embedding,
            12 * 24 * d * d + 24 * 13 * d + 2 * d,
            "{name}"
        );
        assert_eq!(p.biases, 24 * 13 * d - 24 * 4 * d, "{name}");
        assert_eq!(p.layernorm, 49 * 2 * d, "{name}");
        assert_eq!(p.sparsifiable, 12 * 24 * d * d, "{name}");
        assert_eq!(p.embedding, 42_384 * d + 2048 * d, "{name}");
        let millions = |x: u64| (x as f64 / 1e6).round();
        let quoted = if name == "mediswift-xl" { 10.0 } else { 1.0 };
        // The paper quotes 302M, 680M and 1.21B: agree to its last digit.
        assert_eq!(
            (millions(p.non_embedding) / quoted).round(),
            (millions(rounded) / quoted).round(),
            "{name}"
        );
    }
}

#[test]
fn xl_pretraining_speedup_follows_the_flop_convention() {
    // docs/domain.md (and README), "FLOP convention": forward ≈ 2·12·L·d²·(1−s) + 4·L·S·d + 2·d·V per token, backward 2× forward.
    let (l, d, s_len, v) = (24.0, 2048.0, 2048.0, 42_384.0);
    let convention =
        |s: f64| 3.0 * (2.0 * 12.0 * l * d * d * (1.0 - s) + 4.0 * l * s_len * d + 2.0 * d * v);
    let report = run_json(&["flops", "mediswift-xl", "--sparsity", "0.5,0.75"]);
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3, "dense + two sparsities");
    for (run, sparsity, paper) in [(&runs[1], 0.5, 1.68), (&runs[2], 0.75, 2.53)] {
        let pretrain = &run["phases"][0];
        assert_eq!(pretrain["phase"], "pretrain");
        let simulated = pretrain["theoretical_speedup"].as_f64().unwrap();
        let expected = convention(0.0) / convention(sparsity);
        assert!(
            (simulated / expected - 1.0).abs() < 0.01,
            "s={sparsity}: {simulated} vs {expected}"
        );
        assert!(
            (simulated / paper - 1.0).abs() < 0.01,
            "s={sparsity}: {simulated} vs {paper}"
        );
    }
    // Dense forward + backward per token against 6·N + 12·L·S·d, N every matmul weight with the head.
    let n = 12.0 * l * d * d + d * v;
    let estimate = 6.0 * n + 12.0 * l * s_len * d;
    let dense = runs[0]["phases"][0]["flops_dense_per_token"]
        .as_f64()
        .unwrap();
    assert!(
        (dense / estimate - 1.0).abs() < 0.02,
        "{dense} vs {estimate}"
    );
}

#[test]
fn phase_totals_are_exact_including_a_partial_last_batch() {
    // gpt-tiny soft prompting: 128 examples × 2 epochs in batches of 4: 64 full steps.
    // Fine-tuning: 512 examples in batches of 8: 64 full steps. Make one partial with a path model.
    let text =
        include_str!("../../models/gpt-tiny.toml").replace("examples = 512", "examples = 515");
    let path = crate::common::temp_file("tiny-partial.toml", &text);
    let report = run_json(&["flops", path.to_str().unwrap(), "--sparsity", "0"]);
    let finetune = &report["runs"][0]["phases"][1];
    assert_eq!(finetune["steps"], 65);
    assert_eq!(finetune["tokens"], 515 * 64);
    let per_step = crate::common::exact(finetune, "flops_dense_per_step");
    let model = wafersim::spec::load_model(path.to_str().unwrap()).unwrap();
    let last = StepGraph::build(
        &model,
        StepConfig {
            batch_sequences: 3,
            ..StepConfig::for_phase(&model, Phase::Finetune, 0.0)
        },
    );
    assert_eq!(
        crate::common::exact(finetune, "flops_dense"),
        64 * per_step + last.flops().flops_dense
    );
}

/// Dense comes first; a repeated sparsity, or 0, adds no run (train and flops alike).
#[test]
fn repeated_sparsities_and_zero_add_no_run() {
    let sparsities = |json: &serde_json::Value| -> Vec<f64> {
        json["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["run_sparsity"].as_f64().unwrap())
            .collect()
    };
    let flops = run_json(&["flops", "gpt-tiny", "--sparsity", "0.5,0.5,0,0.75,0.5"]);
    assert_eq!(sparsities(&flops), [0.0, 0.5, 0.75]);
    let out = std::env::temp_dir().join(format!("wafersim-flops-dups-{}", std::process::id()));
    let train = run_json(&[
        "train",
        "gpt-tiny",
        "--fabric",
        "mini",
        "--sparsity",
        "0.75,0.75",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(sparsities(&train), [0.0, 0.75]);
}
