//! Dynamic sparse training (`--dynamic`, `[recipe.dynamic]`): a phase is its regular steps, its
//! update steps and the weight servers' mask updates, each worked out by hand on gpt-tiny; an
//! interval past the phase is the static run; RigL's FLOPs count its dense weight gradients.

use wafersim::graph::{PhaseFlops, StepConfig};
use wafersim::map::MapOptions;
use wafersim::schedule::{program_load_cycles, run_recipe, run_step, RunResult};
use wafersim::spec::{load_fabric, load_model, DynamicMethod, DynamicSpec, ModelSpec, Phase};

use crate::common::{assert_golden, run_cli, run_sweep, temp_file};
use crate::train::{fresh_folder, run_train_tiny};

/// gpt-tiny: 2 layers of d 64, d_ff 256, every linear weight sparse; pre-training 1,024 steps of
/// 8 × 128 tokens.
const LAYERS: u64 = 2;
const D: u64 = 64;
const F: u64 = 256;
const T: u128 = 8 * 128;
const STEPS: u64 = 1024;

fn tiny(method: DynamicMethod, update_every: u64) -> ModelSpec {
    let mut model = load_model("gpt-tiny").unwrap();
    model.recipe.dynamic = Some(DynamicSpec {
        update_every,
        ..DynamicSpec::with_defaults(method)
    });
    model
}

fn pretrain(runs: &[RunResult], sparsity: f64) -> &wafersim::schedule::PhaseResult {
    &runs.iter().find(|r| r.sparsity == sparsity).unwrap().phases[0]
}

/// (elements, non-zeros) of each sparse weight of gpt-tiny at sparsity 0.75 (random masks keep
/// ⌊(1 − s)·k·n⌉ entries): q, k, v, attn_out are d × d, ffn_up d × 4d, ffn_down 4d × d.
fn sparse_weights() -> Vec<(u64, u64)> {
    let mut weights = Vec::new();
    for _ in 0..LAYERS {
        for _ in 0..4 {
            weights.push((D * D, D * D / 4));
        }
        weights.push((D * F, D * F / 4));
        weights.push((F * D, F * D / 4));
    }
    weights
}

/// An update interval past the stop makes no update: every figure is the static run's, and the
/// run says so beside them.
#[test]
fn an_interval_past_the_phase_is_the_static_run() {
    let fabric = load_fabric("mini").unwrap();
    let plain = load_model("gpt-tiny").unwrap();
    let statics = run_recipe(&plain, &fabric, &[0.75]).unwrap();
    for method in [DynamicMethod::Set, DynamicMethod::Rigl] {
        let model = tiny(method, STEPS);
        let runs = run_recipe(&model, &fabric, &[0.75]).unwrap();
        for (run, plain) in runs.iter().zip(&statics) {
            assert_eq!(run.total.cycles, plain.total.cycles, "{method:?}");
            assert_eq!(run.total.breakdown, plain.total.breakdown, "{method:?}");
            assert_eq!(run.total.flops_executed, plain.total.flops_executed);
            for (p, q) in run.phases.iter().zip(&plain.phases) {
                assert_eq!(p.cycles, q.cycles);
                assert_eq!(p.flops_executed, q.flops_executed);
                assert_eq!(p.simulated_speedup, q.simulated_speedup);
            }
        }
        let d = pretrain(&runs, 0.75).dynamic.as_ref().unwrap();
        assert_eq!(d.mask_updates, 0);
        assert_eq!(d.static_cycles, pretrain(&runs, 0.75).cycles);
        assert_eq!(
            d.static_total_simulated_speedup,
            runs[1].total.simulated_speedup
        );
        // The dense run never changes a mask.
        assert!(runs[0].phases[0].dynamic.is_none());
    }
}

/// Pre-training = regular steps + update steps + the servers' mask updates + the program load,
/// each from its own step and the schedule's closed forms: ΔT = 100, α = 0.3, T_end = 768 of
/// 1,024 steps: updates after steps 100, …, 700.
#[test]
fn a_phase_is_its_steps_its_update_steps_and_the_servers_time() {
    let fabric = load_fabric("mini").unwrap();
    let rate = fabric.cluster.memoryx_mask_update_elements_per_second as u128;
    let clock = fabric.clock.clock_hz as u128;
    let updates = [100u64, 200, 300, 400, 500, 600, 700];
    for method in [DynamicMethod::Set, DynamicMethod::Rigl] {
        let model = tiny(method, 100);
        let runs = run_recipe(&model, &fabric, &[0.75]).unwrap();
        let phase = pretrain(&runs, 0.75);
        let d = phase.dynamic.as_ref().unwrap();
        assert_eq!(d.mask_updates, 7);
        let config = StepConfig::for_phase(&model, Phase::Pretrain, 0.75);
        let step = run_step(&model, &fabric, config, MapOptions::default()).unwrap();
        let update = match method {
            DynamicMethod::Rigl => run_step(
                &model,
                &fabric,
                config.with_dense_weight_gradients(),
                MapOptions::default(),
            )
            .unwrap(),
            DynamicMethod::Set => step.clone(),
        };
        // The servers: per update, every kept weight scored; then SET draws as many zeros as
        // it dropped, RigL scores every zero.
        let (mut elements, mut cycles, mut moved) = (0u64, 0u64, 0u64);
        for t in updates {
            let fraction = 0.15 * (1.0 + (std::f64::consts::PI * t as f64 / 768.0).cos());
            let mut this = 0;
            for (all, nnz) in sparse_weights() {
                let dropped = (fraction * nnz as f64).round() as u64;
                moved += dropped;
                this += nnz
                    + match method {
                        DynamicMethod::Set => dropped,
                        DynamicMethod::Rigl => all - nnz,
                    };
            }
            elements += this;
            cycles += (this as u128 * clock).div_ceil(rate) as u64;
        }
        assert_eq!(d.mask_update_elements, elements, "{method:?}");
        assert_eq!(d.mask_update_cycles, cycles, "{method:?}");
        assert_eq!(d.weights_moved, moved, "{method:?}");
        assert_eq!(phase.breakdown.mask_update, cycles);
        let load = program_load_cycles(&fabric);
        assert_eq!(
            phase.cycles,
            (STEPS - 7) * step.cycles + 7 * update.cycles + cycles + load,
            "{method:?}"
        );
        assert_eq!(d.static_cycles, STEPS * step.cycles + load);
        assert_eq!(
            (d.step_cycles, d.update_step_cycles),
            (step.cycles, update.cycles)
        );
        match method {
            // Dense weight gradients: more work than the sparse ones.
            DynamicMethod::Rigl => assert!(update.cycles > step.cycles),
            DynamicMethod::Set => assert_eq!(update.cycles, step.cycles),
        }
        assert!(phase.cycles > d.static_cycles);
        assert!(d.static_simulated_speedup > phase.simulated_speedup);
    }
}

/// RigL's update steps compute each sparse weight's gradient dense: 2·T·(k·n − nnz) FLOPs more
/// per weight and update, bias unchanged. SET's FLOPs are the static run's.
#[test]
fn rigl_counts_its_dense_weight_gradients_and_set_nothing() {
    let plain = load_model("gpt-tiny").unwrap();
    let statics = PhaseFlops::of(&plain, Phase::Pretrain, 0.75);
    let set = PhaseFlops::of(&tiny(DynamicMethod::Set, 100), Phase::Pretrain, 0.75);
    assert_eq!(set.flops_executed, statics.flops_executed);
    assert_eq!(set.mask_updates, 7);
    let rigl = PhaseFlops::of(&tiny(DynamicMethod::Rigl, 100), Phase::Pretrain, 0.75);
    let per_update: u128 = sparse_weights()
        .iter()
        .map(|&(all, nnz)| 2 * T * (all - nnz) as u128)
        .sum();
    assert_eq!(rigl.flops_executed, statics.flops_executed + 7 * per_update);
    assert_eq!(rigl.flops_dense, statics.flops_dense);
    // The dense and fine-tuning phases never change.
    let finetune = PhaseFlops::of(&tiny(DynamicMethod::Rigl, 100), Phase::Finetune, 0.0);
    assert_eq!(finetune.mask_updates, 0);
    assert_eq!(
        finetune.flops_executed,
        PhaseFlops::of(&plain, Phase::Finetune, 0.0).flops_executed
    );
}

/// `train --dynamic rigl`: the flags reach the report, the table puts static and dynamic side
/// by side, and every figure of the report is pinned.
#[test]
fn train_dynamic_reports_static_beside_dynamic() {
    let out = fresh_folder("dynamic");
    let (code, table, err) = run_train_tiny(
        &out,
        &["--dynamic", "rigl", "--update-every", "10", "--drop", "0.5"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(table.contains("Dynamic sparse training (RigL: masks updated every 10 steps"));
    assert!(table.contains("76 updates"), "{table}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["dynamic"]["method"], "rigl");
    assert_eq!(report["dynamic"]["update_every"], 10);
    assert_eq!(report["dynamic"]["drop_fraction"], 0.5);
    assert_eq!(report["dynamic"]["end_fraction"], 0.75);
    assert!(
        report["runs"][0].get("dynamic").is_none(),
        "the dense run is static"
    );
    let d = &report["runs"][2]["dynamic"];
    assert_eq!(d["mask_updates"], 76);
    let cycles = report["runs"][2]["phases"][0]["cycles"].as_u64().unwrap();
    assert!(d["static_cycles"].as_u64().unwrap() < cycles);
    let csv = std::fs::read_to_string(out.join("phases.csv")).unwrap();
    assert!(csv.lines().next().unwrap().ends_with(",mask_update_cycles"));
    assert_golden(
        "train-gpt-tiny-mini-rigl.txt",
        &crate::golden::simulated_only(report),
    );
    std::fs::remove_dir_all(&out).unwrap();
}

/// Bad schedule flags exit 2, naming the flag and what is allowed, before any file.
#[test]
fn bad_schedules_are_refused_before_any_file() {
    let cases: [(&[&str], &str); 6] = [
        (&["--update-every", "0"], "--update-every"),
        (&["--dynamic", "rigl", "--drop", "0"], "(0, 1]"),
        (&["--dynamic", "set", "--end", "1.5"], "(0, 1]"),
        (
            &["--drop", "0.3"],
            "--drop sets dynamic sparse training's schedule",
        ),
        (
            &["--dynamic", "static", "--end", "0.5"],
            "--dynamic static turns off",
        ),
        (
            &["--dynamic", "rigl", "--mask", "2:4"],
            "regrows single weights",
        ),
    ];
    for (flags, says) in cases {
        let out = fresh_folder("dynamic-refused");
        std::fs::remove_dir_all(&out).unwrap();
        let (code, _, err) = run_train_tiny(&out, flags);
        assert_eq!(code, 2, "{flags:?}: {err}");
        assert!(err.contains(says), "{flags:?}: {err}");
        assert!(!out.exists(), "{flags:?} wrote files");
    }
    // A model file's [recipe.dynamic] is checked as its other keys are.
    let text = std::fs::read_to_string("models/gpt-tiny.toml").unwrap();
    for (table, says) in [
        (
            "method = \"rigl\"\nupdate_every = 0",
            "recipe.dynamic.update_every",
        ),
        (
            "method = \"set\"\ndrop_fraction = 2.0",
            "recipe.dynamic.drop_fraction",
        ),
        ("method = \"greedy\"", "unknown variant"),
        ("update_every = 10", "missing field `method`"),
    ] {
        let file = crate::common::temp_file(
            "dynamic-model.toml",
            &format!("{text}\n[recipe.dynamic]\n{table}\n"),
        );
        let (code, _, err) = run_cli(&["flops", file.to_str().unwrap(), "--fabric", "mini"]);
        assert_eq!(code, 2, "{table}: {err}");
        assert!(err.contains(says), "{table}: {err}");
    }
}

/// What the review found: a fabric whose servers update that slowly, or a schedule of that many
/// updates, is refused (exit 2, naming the key or flag) rather than overflowing or running for
/// minutes; a model file's structured pattern with [recipe.dynamic] is refused unless a flag
/// resolves it (`--dynamic static`, `--mask`, `--masks`), and a sweep may make the table with
/// its keys in any order.
#[test]
fn schedules_no_run_can_price_are_refused_and_flags_resolve_a_files_conflict() {
    let out = fresh_folder("dynamic-review");
    let fabric = std::fs::read_to_string("fabric/mini.toml")
        .unwrap()
        .replace(
            "memoryx_mask_update_elements_per_second = 200_000_000",
            "memoryx_mask_update_elements_per_second = 1",
        );
    let slow = temp_file("dynamic-slow-fabric.toml", &fabric);
    let model = std::fs::read_to_string("models/gpt-tiny.toml").unwrap();
    let long = temp_file(
        "dynamic-long-model.toml",
        &model
            .replace("tokens = 1_048_576", "tokens = 1_048_576_000")
            .replace(
                "batch_sequences = 8          # [A] 8 x 128",
                "batch_sequences = 1 # 128",
            ),
    );
    let out_flag = out.join("run");
    let out_str = out_flag.to_str().unwrap();
    let (slow_str, long_str) = (slow.to_str().unwrap(), long.to_str().unwrap());
    let refused: [(&[&str], &str); 2] = [
        (
            &[
                "train",
                long_str,
                "--fabric",
                slow_str,
                "--dynamic",
                "rigl",
                "--update-every",
                "10",
            ],
            "cluster.memoryx_mask_update_elements_per_second = 1",
        ),
        (
            &[
                "train",
                long_str,
                "--fabric",
                "mini",
                "--dynamic",
                "set",
                "--update-every",
                "1",
            ],
            "more than the 1000000 a run may price",
        ),
    ];
    for (args, says) in refused {
        let mut args = args.to_vec();
        args.extend(["--out", out_str]);
        let (code, _, err) = run_cli(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!out_flag.exists());
    }
    // block:4 in the file beside [recipe.dynamic]: refused as it is, resolved by a flag.
    let blocks = temp_file(
        "dynamic-block-model.toml",
        &format!(
            "{}\n[recipe.dynamic]\nmethod = \"rigl\"\n",
            model.replace(
                "sparse_weights = [",
                "pattern = \"block:4\"\nsparse_weights = ["
            )
        ),
    );
    let masks = out.join("masks.safetensors");
    crate::mask_files::write_tiny_random_masks(&masks);
    let blocks_str = blocks.to_str().unwrap();
    let base = [
        "train", blocks_str, "--fabric", "mini", "--quiet", "--out", out_str,
    ];
    let (code, _, err) = run_cli(&base);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("key `recipe.dynamic`") && err.contains("--dynamic static"),
        "{err}"
    );
    for flags in [
        vec!["--dynamic", "static"],
        vec!["--mask", "random"],
        vec!["--masks", masks.to_str().unwrap()],
    ] {
        let mut args = base.to_vec();
        args.extend(&flags);
        let (code, _, err) = run_cli(&args);
        assert_eq!(code, 0, "{flags:?}: {err}");
    }
    // A sweep's overrides make the table; `drop_fraction` sorts before `method`.
    let spec = temp_file(
        "dynamic-sweep.toml",
        "models = [\"gpt-tiny\"]\nfabrics = [\"mini\"]\nsparsities = [0.75]\n[overrides]\n\
         \"recipe.dynamic.method\" = [\"set\", \"rigl\"]\n\
         \"recipe.dynamic.drop_fraction\" = [0.1, 0.5]\n\
         \"recipe.dynamic.update_every\" = [10]\n",
    );
    let (code, _, err) = run_sweep(&spec, &out.join("sweep"));
    assert_eq!(code, 0, "{err}");
    let points = std::fs::read_dir(out.join("sweep").join("points"))
        .unwrap()
        .count();
    assert_eq!(points, 4);
    std::fs::remove_dir_all(&out).unwrap();
}
