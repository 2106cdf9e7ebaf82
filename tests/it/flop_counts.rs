//! One count of a step's FLOPs everywhere: `step`, `train`, `flops` and `ops.csv` agree exactly,
//! the wafer's work (forward, dgrad, wgrad) apart from the optimizer's update, which runs
//! off-wafer once per step however many microbatches the step accumulates.

use serde::Deserialize;
use wafersim::graph::{ParamCounts, StepConfig};
use wafersim::map::MapOptions;
use wafersim::schedule::run_step;
use wafersim::spec::{load_fabric, load_model, Phase};

use crate::common::run_cli;

/// A command's JSON read into `T`: whole-recipe FLOPs pass u64, so they are read as `u128`
/// straight from the text (a `serde_json::Value` would round them to f64).
fn run_typed<T: for<'a> Deserialize<'a>>(args: &[&str]) -> T {
    let mut argv = args.to_vec();
    argv.push("--json");
    let (code, out, err) = run_cli(&argv);
    assert_eq!(code, 0, "wafersim {args:?} failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// A FLOP count's exact integer, which reports keep as a decimal string beside the number.
fn from_exact<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u128, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(serde::de::Error::custom)
}

/// The wafer's work and the optimizer's, as every report names them (their exact integers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
struct Counts {
    #[serde(rename = "flops_dense_exact", deserialize_with = "from_exact")]
    flops_dense: u128,
    #[serde(rename = "flops_executed_exact", deserialize_with = "from_exact")]
    flops_executed: u128,
    #[serde(rename = "flops_optimizer_exact", deserialize_with = "from_exact")]
    flops_optimizer: u128,
}

#[derive(Deserialize)]
struct StepJson {
    #[serde(rename = "flops_dense_exact", deserialize_with = "from_exact")]
    flops_dense: u128,
    #[serde(rename = "flops_executed_exact", deserialize_with = "from_exact")]
    flops_executed: u128,
    #[serde(rename = "flops_optimizer_exact", deserialize_with = "from_exact")]
    flops_optimizer: u128,
    seconds: f64,
    peak_fraction: f64,
}

impl StepJson {
    fn counts(&self) -> Counts {
        Counts {
            flops_dense: self.flops_dense,
            flops_executed: self.flops_executed,
            flops_optimizer: self.flops_optimizer,
        }
    }
}

#[derive(Deserialize)]
struct Runs<P> {
    runs: Vec<Run<P>>,
}

#[derive(Deserialize)]
struct Run<P> {
    phases: Vec<P>,
}

/// A phase of `flops`: per step and in total.
#[derive(Deserialize)]
struct FlopsPhase {
    phase: String,
    #[serde(rename = "flops_dense_per_step_exact", deserialize_with = "from_exact")]
    flops_dense_per_step: u128,
    #[serde(
        rename = "flops_executed_per_step_exact",
        deserialize_with = "from_exact"
    )]
    flops_executed_per_step: u128,
    #[serde(
        rename = "flops_optimizer_per_step_exact",
        deserialize_with = "from_exact"
    )]
    flops_optimizer_per_step: u128,
    #[serde(rename = "flops_dense_exact", deserialize_with = "from_exact")]
    flops_dense: u128,
    #[serde(rename = "flops_executed_exact", deserialize_with = "from_exact")]
    flops_executed: u128,
    #[serde(rename = "flops_optimizer_exact", deserialize_with = "from_exact")]
    flops_optimizer: u128,
}

/// The pre-training step at `sparsity`: step's counts, then flops' per-step and per-phase
/// counts, then train's per-phase counts, which must be the full steps plus the partial last.
fn check_pretraining(model_name: &str, fabric_name: &str, sparsity: &str) {
    let what = format!("{model_name} on {fabric_name} at {sparsity}");
    let step: StepJson = run_typed(&[
        "step",
        model_name,
        "--fabric",
        fabric_name,
        "--sparsity",
        sparsity,
    ]);
    let flops: Runs<FlopsPhase> = run_typed(&["flops", model_name, "--sparsity", sparsity]);
    let phase = &flops.runs.last().unwrap().phases[0];
    assert_eq!(phase.phase, "pretrain");
    let per_step = Counts {
        flops_dense: phase.flops_dense_per_step,
        flops_executed: phase.flops_executed_per_step,
        flops_optimizer: phase.flops_optimizer_per_step,
    };
    assert_eq!(step.counts(), per_step, "{what}: step against flops");

    let out = std::env::temp_dir().join(format!(
        "wafersim-flop-counts-{}-{model_name}-{sparsity}",
        std::process::id()
    ));
    let train: Runs<Counts> = run_typed(&[
        "train",
        model_name,
        "--fabric",
        fabric_name,
        "--sparsity",
        sparsity,
        "--out",
        out.to_str().unwrap(),
    ]);
    let trained = train.runs.last().unwrap().phases[0];
    let whole = Counts {
        flops_dense: phase.flops_dense,
        flops_executed: phase.flops_executed,
        flops_optimizer: phase.flops_optimizer,
    };
    assert_eq!(trained, whole, "{what}: train against flops");
    // The phase is its full steps and a partial last one, each counted as `step` counts it.
    let model = load_model(model_name).unwrap();
    let fabric = load_fabric(fabric_name).unwrap();
    let s: f64 = sparsity.parse().unwrap();
    let config = StepConfig::for_phase(&model, Phase::Pretrain, s);
    let sequences = model.phase_sequences(Phase::Pretrain);
    let full = (sequences / config.batch_sequences) as u128;
    let mut expected = Counts {
        flops_dense: full * step.flops_dense,
        flops_executed: full * step.flops_executed,
        flops_optimizer: full * step.flops_optimizer,
    };
    if !sequences.is_multiple_of(config.batch_sequences) {
        let last_config = StepConfig {
            batch_sequences: sequences % config.batch_sequences,
            ..config
        };
        let last = run_step(&model, &fabric, last_config, MapOptions::default()).unwrap();
        expected.flops_dense += last.flops_dense;
        expected.flops_executed += last.flops_executed;
        expected.flops_optimizer += last.flops_optimizer;
    }
    assert_eq!(trained, expected, "{what}: train against step");
    check_ops_csv(&out.join("ops.csv"), s, step.counts(), &what);
}

/// ops.csv: the wafer's ops of the run at `sparsity` sum to the wafer's FLOPs, each update
/// appears once and the updates sum to the optimizer's.
fn check_ops_csv(path: &std::path::Path, sparsity: f64, step: Counts, what: &str) {
    let csv = std::fs::read_to_string(path).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (pass, op) = (column("op_pass"), column("op"));
    let (dense, executed) = (column("flops_dense"), column("flops_executed"));
    let mut sums = Counts {
        flops_dense: 0,
        flops_executed: 0,
        flops_optimizer: 0,
    };
    let mut updates: Vec<String> = Vec::new();
    for line in csv.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        if cells[0].parse::<f64>().unwrap() != sparsity {
            continue;
        }
        let executed = whole_flops(cells[executed]);
        if cells[pass] == "update" {
            updates.push(cells[op].to_string());
            sums.flops_optimizer += executed;
        } else {
            sums.flops_dense += whole_flops(cells[dense]);
            sums.flops_executed += executed;
        }
    }
    assert_eq!(sums, step, "{what}: ops.csv against step");
    let count = updates.len();
    updates.sort();
    updates.dedup();
    assert!(
        count > 0 && updates.len() == count,
        "{what}: {count} updates"
    );
}

#[test]
fn step_train_flops_and_ops_csv_count_a_step_alike() {
    check_pretraining("gpt-tiny", "mini", "0");
    check_pretraining("gpt-tiny", "mini", "0.75");
    // 103 microbatches of 5 sequences: the optimizer was counted in each before.
    check_pretraining("mediswift-xl", "wse2", "0");
    check_pretraining("mediswift-xl", "wse2", "0.75");
}

#[test]
fn the_optimizer_updates_every_parameter_once_per_step_off_the_wafer() {
    for (model_name, fabric_name) in [("gpt-tiny", "mini"), ("mediswift-xl", "wse2")] {
        let model = load_model(model_name).unwrap();
        let step: StepJson = run_typed(&["step", model_name, "--fabric", fabric_name]);
        let per_param = model.recipe.optimizer_flops_per_param as u128;
        let params = ParamCounts::of(&model).total as u128;
        assert_eq!(
            step.flops_optimizer,
            per_param * params,
            "{model_name}: once per step"
        );
        // The wafer's fraction of peak counts the wafer's FLOPs only (1e-12: the same float
        // expression evaluated in another order).
        let peak = load_fabric(fabric_name)
            .unwrap()
            .peak_fp16_flops_per_second();
        let achieved = step.flops_executed as f64 / step.seconds / peak;
        assert!(
            (achieved / step.peak_fraction - 1.0).abs() < 1e-12,
            "{model_name}"
        );
    }
}

/// The optimizer's updates take no place in the wafer's timeline. When they did, a zero-length
/// update sat between V's wgrad and K's dgrad and counted as the op whose weights the SRAM holds
/// ahead, so K's weights started streaming only when V's wgrad ended (mediswift-xl: K's and Q's
/// dgrad waited 24 µs each on I/O, 2% of the step).
#[test]
fn the_next_ops_weights_stream_in_during_a_wgrad() {
    let model = load_model("mediswift-xl").unwrap();
    let fabric = load_fabric("wse2").unwrap();
    let config = StepConfig::for_phase(&model, Phase::Pretrain, 0.0);
    let step = run_step(&model, &fabric, config, MapOptions::default()).unwrap();
    let group = &step.plan.groups[0];
    assert!(group.ops.iter().all(|op| op.pass.on_wafer()));
    let span = |name: &str| {
        let i = group.ops.iter().position(|op| op.name == name).unwrap();
        (i, group.spans[i])
    };
    let (v_index, v_wgrad) = span("layer23.v.wgrad");
    let (k_index, k_dgrad) = span("layer23.k.dgrad");
    assert_eq!(k_index, v_index + 1, "K's dgrad follows V's wgrad");
    assert!(
        k_dgrad.stream_in.0 < v_wgrad.end,
        "K's weights stream in during V's wgrad: {k_dgrad:?} after {v_wgrad:?}"
    );
    // Each trained tensor's update is planned once per step, off the wafer.
    let updates: Vec<&str> = step
        .plan
        .optimizer
        .iter()
        .map(|op| op.name.as_str())
        .collect();
    assert_eq!(updates.len(), 24 * 8 + 2, "{updates:?}");
    assert!(step.plan.optimizer.iter().all(|op| op.cost.cycles == 0));
}

/// An op's FLOPs as ops.csv writes them (a float, as every CSV FLOP column): exact while below
/// 2^53, which one op of one step is.
fn whole_flops(cell: &str) -> u128 {
    let flops: f64 = cell.parse().unwrap();
    assert!(
        flops.fract() == 0.0 && flops < 2f64.powi(53),
        "{cell}: not an exact count"
    );
    flops as u128
}
