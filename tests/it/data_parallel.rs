//! Data-parallel systems (`--systems N`): the vendor's batch arithmetic, the SwarmX tree's cost
//! as its own category, one system exactly as no flag, and refusals.

use serde_json::Value;
use wafersim::graph::StepConfig;
use wafersim::map::MapOptions;
use wafersim::schedule::{run_step, run_step_on_systems, StepResult};
use wafersim::spec::{load_fabric, load_model, FabricSpec, Phase};

use crate::common::{run_cli, run_json, run_sweep, temp_file};

/// `step` on `systems` systems through the library.
fn step_on(model: &str, fabric: &str, systems: u64) -> (StepResult, FabricSpec) {
    let model = load_model(model).unwrap();
    let fabric = load_fabric(fabric).unwrap();
    let config = StepConfig::for_phase(&model, Phase::Pretrain, 0.0);
    let step =
        run_step_on_systems(&model, &fabric, config, MapOptions::default(), systems).unwrap();
    (step, fabric)
}

/// The tree's cost by hand: ⌈log_fan-out N⌉ levels, each `swarmx_level_latency_ns` at the
/// clock (rounded up to a cycle), paid by every microbatch's weight broadcast and once by the
/// step's last gradient; the built-in fabrics' links and reductions run at the wafer's I/O
/// rate, so the streams themselves are not slowed.
fn tree_cycles_by_hand(fabric: &FabricSpec, systems: u64, microbatches: u64) -> u64 {
    let c = &fabric.cluster;
    assert_eq!(
        c.swarmx_link_bits_per_second,
        fabric.io.wafer_io_bits_per_second
    );
    assert_eq!(
        c.swarmx_reduce_bits_per_second,
        fabric.io.wafer_io_bits_per_second
    );
    let mut levels = 0u32;
    while c.swarmx_fan_out.pow(levels) < systems {
        levels += 1;
    }
    let level_cycles = (c.swarmx_level_latency_ns * fabric.clock.clock_hz).div_ceil(1_000_000_000);
    u64::from(levels) * level_cycles * (microbatches + 1)
}

/// Two systems halve the per-system batch; the compute each runs halves with it; the step falls
/// by at least the compute it no longer runs and no further than half, plus the tree's cycles,
/// which are exactly what the model says; FLOPs stay the whole batch's.
fn check_two_systems_halve_the_batch(model: &str, fabric_name: &str) {
    let (one, fabric) = step_on(model, fabric_name, 1);
    let (two, _) = step_on(model, fabric_name, 2);
    let batch = one.plan.config.batch_sequences;
    assert_eq!((two.systems, two.batch_sequences), (2, batch));
    assert_eq!(two.plan.config.batch_sequences, batch.div_ceil(2));
    let microbatches = two.plan.microbatches();
    assert_eq!(
        microbatches,
        two.plan
            .config
            .batch_sequences
            .div_ceil(two.plan.microbatch_sequences),
        "micro-batches are ceil(per-system / MBS)"
    );
    assert_eq!(
        (two.flops_dense, two.flops_executed, two.flops_optimizer),
        (one.flops_dense, one.flops_executed, one.flops_optimizer),
        "the step's FLOPs are the whole batch's"
    );
    let dp = tree_cycles_by_hand(&fabric, 2, microbatches);
    assert_eq!(two.breakdown.data_parallel, dp, "{model}");
    assert_eq!(two.data_parallel.cycles, dp);
    assert_eq!(one.breakdown.data_parallel, 0);
    assert_eq!(two.breakdown.total(), two.cycles);
    let ops: u64 = two.ops.iter().map(|op| op.cycles).sum();
    assert_eq!(
        ops + dp,
        two.cycles,
        "one system's ops and the tree make the step"
    );
    // Ideal compute is proportional to the FLOPs each system runs: half (SIMD rounding aside).
    let compute = |s: &StepResult| (s.breakdown.dense_compute + s.breakdown.sparse_compute) as f64;
    let ratio = compute(&two) / compute(&one);
    assert!((ratio - 0.5).abs() < 0.01, "{model}: compute ratio {ratio}");
    let (t1, t2) = (one.cycles as f64, (two.cycles - dp) as f64);
    assert!(
        t2 <= t1 - compute(&one) / 2.0,
        "{model}: {t2} on each of two systems, {t1} on one: falls by less than the compute"
    );
    assert!(t2 >= 0.49 * t1, "{model}: {t2} is less than half of {t1}");
}

#[test]
fn two_systems_halve_the_batch_of_gpt_tiny_on_mini() {
    check_two_systems_halve_the_batch("gpt-tiny", "mini");
    // mini: 2 systems under one 4-way node, 5,000 ns = 5,500 cycles at 1.1 GHz, one microbatch
    // of 4 sequences each: 5,500 for the broadcast, 5,500 for the reduction.
    let (two, _) = step_on("gpt-tiny", "mini", 2);
    assert_eq!(two.plan.microbatches(), 1);
    assert_eq!(two.breakdown.data_parallel, 11_000);
}

#[test]
fn two_systems_halve_the_batch_of_mediswift_xl_on_wse2() {
    check_two_systems_halve_the_batch("mediswift-xl", "wse2");
}

#[test]
fn a_batch_the_systems_do_not_divide_runs_ceil_per_system_and_counts_the_whole_batch() {
    // 512 sequences on 3 systems: 171 each (the vendor spreads 171, 171, 170; nothing padded).
    let (one, _) = step_on("mediswift-xl", "wse2", 1);
    let (three, fabric) = step_on("mediswift-xl", "wse2", 3);
    assert_eq!(three.plan.config.batch_sequences, 171);
    assert_eq!(three.flops_executed, one.flops_executed);
    let microbatches = three.plan.microbatches();
    assert_eq!(
        three.breakdown.data_parallel,
        tree_cycles_by_hand(&fabric, 3, microbatches)
    );
    let report = run_json(&["step", "mediswift-xl", "--systems", "3"]);
    assert_eq!(report["batch_sequences"], 512);
    assert_eq!(report["batch_sequences_per_system"], 171);
    assert_eq!(report["tokens"], 512 * 2048);
    let seconds = report["seconds"].as_f64().unwrap();
    let rate = report["samples_per_second"].as_f64().unwrap();
    assert_eq!(rate, 512.0 / seconds);
    assert_eq!(
        report["samples_per_second_per_system"].as_f64().unwrap(),
        rate / 3.0
    );
}

#[test]
fn one_system_is_run_step_exactly() {
    let model = load_model("gpt-tiny").unwrap();
    let fabric = load_fabric("mini").unwrap();
    let config = StepConfig::for_phase(&model, Phase::Pretrain, 0.5);
    let plain = run_step(&model, &fabric, config, MapOptions::default()).unwrap();
    let one = run_step_on_systems(&model, &fabric, config, MapOptions::default(), 1).unwrap();
    assert_eq!(
        serde_json::to_string(&plain).unwrap(),
        serde_json::to_string(&one).unwrap()
    );
}

/// A step report without its host timing.
fn step_json(extra: &[&str]) -> String {
    let mut args = vec!["step", "gpt-tiny", "--fabric", "mini", "--sparsity", "0.5"];
    args.extend_from_slice(extra);
    let mut report: Value = run_json(&args);
    report.as_object_mut().unwrap().remove("host_seconds");
    report.to_string()
}

#[test]
fn systems_1_gives_byte_identical_reports() {
    assert_eq!(step_json(&[]), step_json(&["--systems", "1"]));
    let dir = std::env::temp_dir().join(format!("wafersim-dp-{}", std::process::id()));
    let (plain, flagged) = (dir.join("plain"), dir.join("flagged"));
    for (out, extra) in [(&plain, None), (&flagged, Some("1"))] {
        let mut args = vec!["train", "gpt-tiny", "--fabric", "mini", "--quiet", "--out"];
        args.push(out.to_str().unwrap());
        if let Some(n) = extra {
            args.extend(["--systems", n]);
        }
        let (code, _, err) = run_cli(&args);
        assert_eq!(code, 0, "{err}");
    }
    for file in ["report.json", "phases.csv", "ops.csv", "counters.npz"] {
        let a = std::fs::read(plain.join(file)).unwrap();
        let b = std::fs::read(flagged.join(file)).unwrap();
        assert!(a == b, "{file} differs with --systems 1");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn train_on_two_systems_reports_them_and_their_throughput() {
    let dir = std::env::temp_dir().join(format!("wafersim-dp2-{}", std::process::id()));
    let out = dir.to_str().unwrap();
    let report = run_json(&[
        "train",
        "gpt-tiny",
        "--fabric",
        "mini",
        "--systems",
        "2",
        "--out",
        out,
    ]);
    assert_eq!(report["systems"], 2);
    let pretrain = &report["runs"][0]["phases"][0];
    let rate = pretrain["samples_per_second"].as_f64().unwrap();
    let sequences = pretrain["sequences"].as_f64().unwrap();
    assert_eq!(rate, sequences / pretrain["seconds"].as_f64().unwrap());
    assert_eq!(
        pretrain["samples_per_second_per_system"].as_f64().unwrap(),
        rate / 2.0
    );
    assert!(
        pretrain["breakdown"]["data_parallel_cycles"]
            .as_u64()
            .unwrap()
            > 0
    );
    let csv = std::fs::read_to_string(dir.join("phases.csv")).unwrap();
    assert!(csv
        .lines()
        .next()
        .unwrap()
        .ends_with(",data_parallel_cycles,mask_update_cycles"));
    let (code, table, err) = run_cli(&[
        "train",
        "gpt-tiny",
        "--fabric",
        "mini",
        "--systems",
        "2",
        "--out",
        out,
    ]);
    assert_eq!(code, 0, "{err}");
    let header = "wafersim train: gpt-tiny on 2 x mini data-parallel";
    assert!(table.starts_with(header), "{table}");
    let (code, table, err) = run_cli(&["step", "gpt-tiny", "--fabric", "mini", "--systems", "2"]);
    assert_eq!(code, 0, "{err}");
    let systems = "systems     2 data-parallel, 4 of the 8 sequences each; SwarmX tree of 1 \
                   level: 11,000 cycles";
    assert!(table.contains(systems), "{table}");
    assert!(table.contains("data parallel    11,000"), "{table}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn system_counts_outside_the_cluster_are_refused_naming_the_flag_and_range() {
    for (fabric, bad, max) in [
        ("mini", "0", "192"),
        ("wse2", "193", "192"),
        ("wse3", "2049", "2048"),
    ] {
        let (code, _, err) = run_cli(&["step", "gpt-tiny", "--fabric", fabric, "--systems", bad]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(&format!("--systems {bad}")), "{err}");
        assert!(err.contains(&format!("1 to {max} systems")), "{err}");
        assert!(err.contains("cluster.systems_max"), "{err}");
    }
    // Refused before train writes anything.
    let out = std::env::temp_dir().join(format!("wafersim-dp-refused-{}", std::process::id()));
    let (code, _, err) = run_cli(&[
        "train",
        "gpt-tiny",
        "--fabric",
        "mini",
        "--systems",
        "0",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(!out.exists(), "train --systems 0 made its folder");
    // A microbatch beyond the per-system batch (8 on 3 systems: 3 each).
    let (code, _, err) = run_cli(&[
        "step",
        "gpt-tiny",
        "--fabric",
        "mini",
        "--systems",
        "3",
        "--microbatch",
        "4",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--microbatch 4 is not allowed with --systems 3")
            && err.contains("per-system batch of 3 sequences"),
        "{err}"
    );
    let (code, _, err) = run_cli(&["step", "gpt-tiny", "--systems", "two"]);
    assert_eq!(code, 2);
    assert!(err.contains("--systems"), "{err}");
}

#[test]
fn a_reduction_below_line_rate_costs_stream_time_beyond_the_latency() {
    let model = load_model("gpt-tiny").unwrap();
    let mut fabric = load_fabric("mini").unwrap();
    let config = StepConfig::for_phase(&model, Phase::Pretrain, 0.0);
    let at_line_rate =
        run_step_on_systems(&model, &fabric, config, MapOptions::default(), 2).unwrap();
    fabric.cluster.swarmx_reduce_bits_per_second = fabric.io.wafer_io_bits_per_second / 4;
    let slow = run_step_on_systems(&model, &fabric, config, MapOptions::default(), 2).unwrap();
    assert_eq!(at_line_rate.data_parallel.stream_cycles, 0);
    assert!(slow.data_parallel.stream_cycles > 0);
    assert_eq!(
        slow.breakdown.data_parallel,
        at_line_rate.breakdown.data_parallel + slow.data_parallel.stream_cycles
    );
}

/// The point files' names (their keys) of a sweep folder, sorted.
fn point_keys(out: &std::path::Path) -> Vec<String> {
    let mut keys: Vec<String> = std::fs::read_dir(out.join("points"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    keys.sort();
    keys
}

#[test]
fn systems_is_a_sweep_axis_and_one_system_keeps_its_point_keys() {
    let base = "models = [\"gpt-tiny\"]\nfabrics = [\"mini\"]\nsparsities = [0.5]\n";
    let dir = std::env::temp_dir().join(format!("wafersim-dp-sweep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let plain = temp_file("dp-sweep-plain.toml", base);
    let (code, _, err) = run_sweep(&plain, &dir.join("plain"));
    assert_eq!(code, 0, "{err}");
    let grid = temp_file("dp-sweep-grid.toml", &format!("{base}systems = [1, 2]\n"));
    let out = dir.join("grid");
    let (code, _, err) = run_sweep(&grid, &out);
    assert_eq!(code, 0, "{err}");
    let keys = point_keys(&out);
    assert_eq!(keys.len(), 2);
    assert!(
        keys.contains(&point_keys(&dir.join("plain"))[0]),
        "systems = 1 keeps the key a sweep without `systems` gives"
    );
    let (code, _, err) = run_cli(&["merge", out.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 0, "{err}");
    let csv = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().unwrap().clone();
    let at = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let systems: Vec<&str> = rows.iter().map(|r| &r[at("systems")]).collect();
    assert_eq!(systems, ["1", "2"]);
    let seconds = |r: &csv::StringRecord| r[at("pretrain_seconds")].parse::<f64>().unwrap();
    assert!(seconds(&rows[1]) < seconds(&rows[0]), "{csv}");
    for (bad, says) in [
        ("[0]", "`systems[0]` = 0"),
        ("[1, 193]", "`systems[1]` = 193"),
        ("[2, 2]", "`systems` lists 2 twice"),
    ] {
        let spec = temp_file("dp-sweep-bad.toml", &format!("{base}systems = {bad}\n"));
        let out = dir.join("bad");
        let (code, _, err) = run_sweep(&spec, &out);
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(err.contains(says), "{bad}: {err}");
        assert!(
            !out.join("points").exists(),
            "{bad}: a point ran before the refusal"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

mod cluster_keys {
    use proptest::prelude::*;
    use wafersim::schedule::run_recipe_on_systems;
    use wafersim::spec::{load_fabric, load_model};
    use wafersim::Error;

    use crate::common::temp_file;

    const MINI: &str = include_str!("../../fabric/mini.toml");

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Any value of a `[cluster]` key, on 1 to 300 systems: the recipe runs, or the value
        /// or the system count is refused as bad input with a message; nothing panics.
        #[test]
        fn any_cluster_key_value_runs_or_is_refused(
            key in prop::sample::select(vec![
                "systems_max",
                "swarmx_link_bits_per_second",
                "swarmx_fan_out",
                "swarmx_reduce_bits_per_second",
                "swarmx_level_latency_ns",
            ]),
            value in prop_oneof![0..=9u64, any::<u64>(), (0..64u32).prop_map(|b| 1u64 << b)],
            systems in 1..=300u64,
        ) {
            let text: String = MINI
                .lines()
                .map(|line| match line.split_once(" = ") {
                    Some((k, _)) if k.trim() == key => format!("{key} = {value}"),
                    _ => line.to_string(),
                })
                .collect::<Vec<_>>()
                .join("\n");
            let path = temp_file(&format!("cluster-{key}-{value}-{systems}.toml"), &text);
            let outcome = std::panic::catch_unwind(|| -> wafersim::Result<()> {
                let fabric = load_fabric(path.to_str().unwrap())?;
                let model = load_model("gpt-tiny")?;
                run_recipe_on_systems(&model, &fabric, &[0.5], systems).map(|_| ())
            });
            match outcome {
                Err(_) => prop_assert!(false, "{key} = {value} on {systems} systems panicked"),
                Ok(Ok(())) => {}
                Ok(Err(Error::Input(message))) => prop_assert!(!message.is_empty()),
                Ok(Err(other)) => prop_assert!(false, "{key} = {value}: {other}"),
            }
        }
    }
}
