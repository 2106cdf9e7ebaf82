//! Simulated against measured: public training runs of CS-2 and CS-3 systems
//! (`traces/hardware/measured.toml`, embedded in the binary), each simulated as one dense
//! pre-training step of a stand-in GPT of the run's shape, and the vendor's micro-batch sizes
//! against the one the mapper chooses.
//!
//! A throughput case compares samples per second: the step's global batch over the simulated
//! step time, against the log's `GlobalRate`. Data-parallel systems are not simulated yet: a
//! case on N systems runs one system with the per-system batch ⌈B/N⌉ (the vendor's split), as
//! if the systems overlapped perfectly and their weight broadcast and gradient reduction cost
//! nothing; its result says so. `simulate_case` is the one place the system count enters.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::graph::StepConfig;
use crate::map::MapOptions;
use crate::schedule::run_step_on_systems;
use crate::spec::{
    load_fabric, parse_toml, Architecture, Checker, FabricSpec, FinetuneSpec, ModelSpec, Phase,
    PretrainSpec, Recipe, SoftpromptSpec, MAX_BATCH, MAX_LAYERS, MAX_SEQ, MAX_WIDTH,
};

/// The shipped cases, as the binary carries them.
pub const BUILTIN_CASES: &str = include_str!("../../traces/hardware/measured.toml");
/// How messages and reports name the shipped file.
pub const BUILTIN_ORIGIN: &str = "traces/hardware/measured.toml (built-in)";

/// Each throughput case within this relative error of its measured samples per second (the
/// issue's acceptance bound, held by the calibration test).
pub const THROUGHPUT_BOUND: f64 = 0.25;
/// Each vendor micro-batch within this factor of the one the mapper chooses (same origin).
pub const MICROBATCH_FACTOR_BOUND: f64 = 2.0;

/// The file: what every stand-in takes, then the cases.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CasesFile {
    pub stand_in: StandIn,
    pub case: Vec<Case>,
}

/// Storage widths and optimizer of every stand-in model, which no case states.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StandIn {
    pub weight_bytes: u64,
    pub activation_bytes: u64,
    pub optimizer_flops_per_param: u64,
}

/// One measured run, or one vendor micro-batch (no throughput).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    pub system: System,
    pub systems: u64,
    pub release: String,
    pub source: String,
    #[serde(default)]
    pub log_line: Option<String>,
    /// The global batch: sequences per optimizer step, all systems together.
    pub batch_sequences: u64,
    /// The vendor's micro-batch per system, where the config or the log gives it.
    #[serde(default)]
    pub microbatch_sequences: Option<u64>,
    /// Measured throughput of all systems together, as the log gives it.
    #[serde(default)]
    pub samples_per_second: Option<f64>,
    /// Which figure of the log `samples_per_second` is.
    #[serde(default)]
    pub rate: Option<String>,
    pub note: String,
    pub model: CaseModel,
}

/// A case's model shape, inline.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseModel {
    pub layers: u64,
    pub d_model: u64,
    pub heads: u64,
    pub d_ff: u64,
    pub vocab_size: u64,
    pub seq_len: u64,
    pub tied_embedding: bool,
    pub biases: bool,
}

/// The system a case ran on, and the built-in fabric that simulates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum System {
    Cs2,
    Cs3,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::Cs2 => "cs2",
            System::Cs3 => "cs3",
        }
    }

    /// CS-2 carries a WSE-2, CS-3 a WSE-3.
    pub fn fabric(self) -> &'static str {
        match self {
            System::Cs2 => "wse2",
            System::Cs3 => "wse3",
        }
    }
}

/// Reads and checks a cases file: the built-in one (`path` None) or the file at `path`.
/// Returns the file and how reports name it. Every refusal is bad input naming the file, the
/// case and the key.
pub fn load_cases(path: Option<&std::path::Path>) -> Result<(CasesFile, String)> {
    let (text, origin) = match path {
        None => (BUILTIN_CASES.to_string(), BUILTIN_ORIGIN.to_string()),
        Some(path) => {
            let origin = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::input(format!(
                    "--hardware-file {origin}: cannot read it ({e}); give a TOML file of \
                     [[case]] tables like {BUILTIN_ORIGIN}"
                ))
            })?;
            (text, origin)
        }
    };
    let file: CasesFile = parse_toml(&origin, &text).map_err(|e| name_case(e, &text))?;
    check_file(&file, &origin)?;
    Ok((file, origin))
}

/// A parse error names the line and key; add which case that line belongs to, so that a
/// message about `case.model.layers` says whose.
fn name_case(error: Error, text: &str) -> Error {
    let Error::Input(message) = error else {
        return error;
    };
    let line: Option<usize> = message
        .split_once("(line ")
        .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok());
    let Some(line) = line else {
        return Error::Input(message);
    };
    let before: Vec<&str> = text.lines().take(line).collect();
    let Some(start) = before.iter().rposition(|l| l.trim() == "[[case]]") else {
        return Error::Input(message);
    };
    let number = before.iter().filter(|l| l.trim() == "[[case]]").count();
    let name = text
        .lines()
        .skip(start + 1)
        .take_while(|l| l.trim() != "[[case]]")
        .find_map(|l| {
            let (key, value) = l.split_once('=')?;
            (key.trim() == "name").then(|| value.trim().trim_matches('"').to_string())
        })
        .unwrap_or_default();
    Error::Input(format!("{message} (in case {number}, '{name}')"))
}

fn check_file(file: &CasesFile, origin: &str) -> Result<()> {
    let c = Checker { origin };
    c.range("stand_in.weight_bytes", file.stand_in.weight_bytes, 1, 8)?;
    c.range(
        "stand_in.activation_bytes",
        file.stand_in.activation_bytes,
        1,
        8,
    )?;
    c.at_most(
        "stand_in.optimizer_flops_per_param",
        file.stand_in.optimizer_flops_per_param,
        1000,
        "FLOPs",
    )?;
    if file.case.is_empty() {
        return Err(Error::input(format!(
            "{origin}: no [[case]]: the file must hold at least one case"
        )));
    }
    for (i, case) in file.case.iter().enumerate() {
        let place = format!("{origin}: case {} ('{}')", i + 1, case.name);
        check_case(case, &Checker { origin: &place })?;
        if let Some(first) = file.case[..i].iter().position(|c| c.name == case.name) {
            return Err(c.fail(
                "case.name",
                &format!("{:?}", case.name),
                &format!("unique (case {} has it too)", first + 1),
            ));
        }
    }
    Ok(())
}

/// A case's keys in range, named as the file spells them.
fn check_case(case: &Case, c: &Checker) -> Result<()> {
    c.name("name", &case.name)?;
    for (key, text) in [("release", &case.release), ("source", &case.source)] {
        if text.trim().is_empty() {
            return Err(c.fail(key, "\"\"", "a non-empty string"));
        }
    }
    c.range("batch_sequences", case.batch_sequences, 1, MAX_BATCH)?;
    c.range("systems", case.systems, 1, case.batch_sequences)?;
    if let Some(mb) = case.microbatch_sequences {
        let per_system = case.batch_sequences.div_ceil(case.systems);
        c.range("microbatch_sequences", mb, 1, per_system)?;
    }
    match (case.samples_per_second, &case.rate) {
        (Some(rate), _) if !(rate.is_finite() && rate > 0.0) => {
            return Err(c.fail("samples_per_second", &rate.to_string(), "a number > 0"));
        }
        (Some(_), None) => {
            return Err(c.fail(
                "rate",
                "(missing)",
                "given with samples_per_second: which figure of the log it is",
            ));
        }
        (None, _) if case.microbatch_sequences.is_none() => {
            return Err(c.fail(
                "samples_per_second",
                "(missing)",
                "given, or microbatch_sequences given: a case compares at least one",
            ));
        }
        _ => {}
    }
    check_shape(&case.model, c)
}

fn check_shape(m: &CaseModel, c: &Checker) -> Result<()> {
    c.range("model.layers", m.layers, 1, MAX_LAYERS)?;
    c.range("model.d_model", m.d_model, 1, MAX_WIDTH)?;
    c.range("model.heads", m.heads, 1, m.d_model)?;
    if !m.d_model.is_multiple_of(m.heads) {
        return Err(c.fail(
            "model.heads",
            &m.heads.to_string(),
            &format!("a divisor of model.d_model = {}", m.d_model),
        ));
    }
    c.range("model.d_ff", m.d_ff, 1, MAX_WIDTH)?;
    c.range("model.vocab_size", m.vocab_size, 1, MAX_WIDTH)?;
    // Two at least: the stand-in's recipe (never run past pre-training) still needs a soft
    // prompt of one token before a sequence of one.
    c.range("model.seq_len", m.seq_len, 2, MAX_SEQ)
}

/// The stand-in GPT of a case: its shape, dense, with the file's storage widths; its recipe's
/// pre-training step is `batch_sequences` sequences of the case's length. The other phases
/// are never run and mirror pre-training so that the recipe validates.
pub fn stand_in_model(case: &Case, stand_in: &StandIn, batch_sequences: u64) -> ModelSpec {
    let m = &case.model;
    let seq_len = m.seq_len;
    ModelSpec {
        name: case.name.clone(),
        description: format!("stand-in of hardware case {}", case.name),
        architecture: Architecture {
            layers: m.layers,
            d_model: m.d_model,
            heads: m.heads,
            d_ff: m.d_ff,
            vocab_size: m.vocab_size,
            max_seq_len: seq_len,
            tied_embedding: m.tied_embedding,
            biases: m.biases,
            weight_bytes: stand_in.weight_bytes,
            activation_bytes: stand_in.activation_bytes,
        },
        recipe: Recipe {
            sparsities: Vec::new(),
            sparse_weights: Vec::new(),
            pattern: Default::default(),
            levels: Default::default(),
            masks: None,
            mask_seed: None,
            dynamic: None,
            optimizer_flops_per_param: stand_in.optimizer_flops_per_param,
            pretrain: PretrainSpec {
                tokens: batch_sequences * seq_len,
                batch_sequences,
                seq_len,
            },
            finetune: FinetuneSpec {
                examples: batch_sequences,
                epochs: 1,
                batch_sequences,
                seq_len,
            },
            softprompt: SoftpromptSpec {
                examples: batch_sequences,
                epochs: 1,
                batch_sequences,
                seq_len: seq_len - 1,
                prompt_tokens: 1,
            },
        },
    }
}

/// One case simulated: the figures it compares, and why one is missing.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct CaseResult {
    pub name: String,
    pub system: &'static str,
    pub fabric: &'static str,
    pub systems: u64,
    pub release: String,
    pub source: String,
    pub batch_sequences: u64,
    /// The batch each system runs: ⌈batch / systems⌉.
    pub per_system_batch_sequences: u64,
    pub seq_len: u64,
    pub measured_samples_per_second: Option<f64>,
    pub measured_samples_per_second_per_system: Option<f64>,
    /// The global batch over the simulated step time (None if the step does not map).
    pub simulated_samples_per_second: Option<f64>,
    pub simulated_samples_per_second_per_system: Option<f64>,
    /// Simulated ÷ measured samples per second.
    pub ratio: Option<f64>,
    /// (simulated − measured) ÷ measured.
    pub error: Option<f64>,
    pub microbatch_sequences_vendor: Option<u64>,
    pub microbatch_sequences_chosen: Option<u64>,
    /// Chosen ÷ vendor micro-batch.
    pub microbatch_factor: Option<f64>,
    /// The step's cycles with the vendor's micro-batch forced (activations still searched).
    pub step_cycles_at_vendor_microbatch: Option<u64>,
    /// That step's time over the chosen step's, minus 1: how much the search's choice gains
    /// on the vendor's (0 when they are the same size).
    pub vendor_microbatch_slowdown: Option<f64>,
    /// Why the vendor's micro-batch does not map, if it does not.
    pub vendor_microbatch_unmapped_reason: Option<String>,
    pub step_cycles: Option<u64>,
    pub step_seconds: Option<f64>,
    /// The wafer's FLOPs per sequence (forward, dgrad, wgrad; the optimizer runs off-wafer).
    pub flops_per_sample: Option<f64>,
    /// Per-system samples/s × FLOPs per sample ÷ the system's fp16 peak, simulated and measured.
    pub simulated_peak_fraction: Option<f64>,
    pub measured_peak_fraction: Option<f64>,
    /// The simulated step's cycles by category.
    pub breakdown: Option<crate::schedule::Breakdown>,
    /// Why the stand-in's step does not map, if it does not.
    pub unmapped_reason: Option<String>,
}

/// Simulates one case on `fabric` (the case's system's): a dense pre-training step of its
/// stand-in at the per-system batch, default mapping. The one place the system count enters.
pub fn simulate_case(case: &Case, stand_in: &StandIn, fabric: &FabricSpec) -> CaseResult {
    let systems = case.systems;
    let per_system = case.batch_sequences.div_ceil(systems);
    // The step's batch is the whole cluster's; `run_step_on_systems` splits it as the vendor does.
    let model = stand_in_model(case, stand_in, case.batch_sequences);
    let config = StepConfig::for_phase(&model, Phase::Pretrain, 0.0);
    let step = model
        .validate(&format!("hardware case '{}'", case.name))
        .and_then(|()| run_step_on_systems(&model, fabric, config, MapOptions::default(), systems));
    let mut result = unsimulated(case, per_system);
    match step {
        Ok(step) => {
            let seconds = step.cycles as f64 / fabric.clock.clock_hz as f64;
            let simulated = case.batch_sequences as f64 / seconds;
            result.simulated_samples_per_second = Some(simulated);
            result.simulated_samples_per_second_per_system = Some(simulated / systems as f64);
            result.step_cycles = Some(step.cycles);
            result.step_seconds = Some(seconds);
            result.breakdown = Some(step.breakdown);
            compare(&mut result, &step, fabric.peak_fp16_flops_per_second());
            if let Some(vendor) = case.microbatch_sequences {
                let forced = MapOptions {
                    microbatch_sequences: Some(vendor),
                    ..MapOptions::default()
                };
                match run_step_on_systems(&model, fabric, config, forced, systems) {
                    Ok(at_vendor) => {
                        result.step_cycles_at_vendor_microbatch = Some(at_vendor.cycles);
                        result.vendor_microbatch_slowdown =
                            Some(at_vendor.cycles as f64 / step.cycles.max(1) as f64 - 1.0);
                    }
                    Err(e) => result.vendor_microbatch_unmapped_reason = Some(e.to_string()),
                }
            }
        }
        Err(e) => result.unmapped_reason = Some(e.to_string()),
    }
    result
}

/// A case's result before its simulation: what the file says.
fn unsimulated(case: &Case, per_system: u64) -> CaseResult {
    let measured = case.samples_per_second;
    CaseResult {
        name: case.name.clone(),
        system: case.system.name(),
        fabric: case.system.fabric(),
        systems: case.systems,
        release: case.release.clone(),
        source: case.source.clone(),
        batch_sequences: case.batch_sequences,
        per_system_batch_sequences: per_system,
        seq_len: case.model.seq_len,
        measured_samples_per_second: measured,
        measured_samples_per_second_per_system: measured.map(|m| m / case.systems as f64),
        simulated_samples_per_second: None,
        simulated_samples_per_second_per_system: None,
        ratio: None,
        error: None,
        microbatch_sequences_vendor: case.microbatch_sequences,
        microbatch_sequences_chosen: None,
        microbatch_factor: None,
        step_cycles_at_vendor_microbatch: None,
        vendor_microbatch_slowdown: None,
        vendor_microbatch_unmapped_reason: None,
        step_cycles: None,
        step_seconds: None,
        flops_per_sample: None,
        simulated_peak_fraction: None,
        measured_peak_fraction: None,
        breakdown: None,
        unmapped_reason: None,
    }
}

/// Simulated against measured: samples/s, micro-batch, and both as a fraction of one system's
/// fp16 peak (the wafer's FLOPs per sample, forward and backward, without the optimizer's).
fn compare(result: &mut CaseResult, step: &crate::schedule::StepResult, peak_flops: f64) {
    let simulated = result.simulated_samples_per_second.unwrap_or_default();
    let measured = result.measured_samples_per_second;
    result.ratio = measured.map(|m| simulated / m);
    result.error = measured.map(|m| (simulated - m) / m);
    let chosen = step.plan.microbatch_sequences;
    result.microbatch_sequences_chosen = Some(chosen);
    result.microbatch_factor = result
        .microbatch_sequences_vendor
        .map(|vendor| chosen as f64 / vendor as f64);
    // The step's FLOPs are the whole batch's, on every system together.
    let per_sample = step.flops_dense as f64 / result.batch_sequences as f64;
    result.flops_per_sample = Some(per_sample);
    let fraction = |per_system: f64| per_system * per_sample / peak_flops;
    result.simulated_peak_fraction = result.simulated_samples_per_second_per_system.map(fraction);
    result.measured_peak_fraction = result.measured_samples_per_second_per_system.map(fraction);
}

/// Max and mean |error| over the throughput cases; the widest micro-batch factor; how many
/// of each meet the bounds.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct HardwareSummary {
    pub throughput_cases: usize,
    pub throughput_cases_within_bound: usize,
    pub throughput_bound: f64,
    pub max_abs_error: Option<f64>,
    pub mean_abs_error: Option<f64>,
    pub microbatch_cases: usize,
    pub microbatch_cases_within_bound: usize,
    pub microbatch_factor_bound: f64,
    /// The largest of chosen ÷ vendor and vendor ÷ chosen over the cases.
    pub microbatch_factor_max: Option<f64>,
    /// The largest slowdown of a step at the vendor's micro-batch against the chosen one's.
    pub vendor_microbatch_slowdown_max: Option<f64>,
    /// Cases whose vendor micro-batch does not map.
    pub vendor_microbatch_unmapped_cases: usize,
    /// Cases whose stand-in does not map (they count as outside the bounds).
    pub unmapped_cases: usize,
}

/// `validate --hardware`: every case, and the summary.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct HardwareValidation {
    /// The version of the field names and types (`report::SCHEMA_VERSION`).
    pub schema_version: u32,
    pub version: &'static str,
    pub seed: u64,
    /// Where the cases came from: the built-in file or the path given.
    pub cases_file: String,
    pub stand_in: StandIn,
    pub cases: Vec<CaseResult>,
    pub summary: HardwareSummary,
}

/// Simulates every case of `file` on its system's built-in fabric; cases run in parallel,
/// results in the file's order.
pub fn validate_hardware(file: &CasesFile, origin: &str, seed: u64) -> Result<HardwareValidation> {
    use rayon::prelude::*;
    let fabrics = [load_fabric("wse2")?, load_fabric("wse3")?];
    let cases: Vec<CaseResult> = file
        .case
        .par_iter()
        .map(|case| {
            let fabric = match case.system {
                System::Cs2 => &fabrics[0],
                System::Cs3 => &fabrics[1],
            };
            simulate_case(case, &file.stand_in, fabric)
        })
        .collect();
    Ok(HardwareValidation {
        schema_version: crate::report::SCHEMA_VERSION,
        version: crate::VERSION,
        seed,
        cases_file: origin.to_string(),
        stand_in: file.stand_in,
        summary: summarize(&cases),
        cases,
    })
}

fn summarize(cases: &[CaseResult]) -> HardwareSummary {
    let throughput: Vec<&CaseResult> = cases
        .iter()
        .filter(|c| c.measured_samples_per_second.is_some())
        .collect();
    let errors: Vec<f64> = throughput
        .iter()
        .filter_map(|c| c.error.map(f64::abs))
        .collect();
    let microbatch: Vec<&CaseResult> = cases
        .iter()
        .filter(|c| c.microbatch_sequences_vendor.is_some())
        .collect();
    let factors: Vec<f64> = microbatch
        .iter()
        .filter_map(|c| c.microbatch_factor.map(|f| f.max(1.0 / f)))
        .collect();
    HardwareSummary {
        throughput_cases: throughput.len(),
        throughput_cases_within_bound: errors.iter().filter(|&&e| e <= THROUGHPUT_BOUND).count(),
        throughput_bound: THROUGHPUT_BOUND,
        max_abs_error: errors.iter().copied().reduce(f64::max),
        mean_abs_error: (!errors.is_empty())
            .then(|| errors.iter().sum::<f64>() / errors.len() as f64),
        microbatch_cases: microbatch.len(),
        microbatch_cases_within_bound: factors
            .iter()
            .filter(|&&f| f <= MICROBATCH_FACTOR_BOUND)
            .count(),
        microbatch_factor_bound: MICROBATCH_FACTOR_BOUND,
        microbatch_factor_max: factors.iter().copied().reduce(f64::max),
        vendor_microbatch_slowdown_max: microbatch
            .iter()
            .filter_map(|c| c.vendor_microbatch_slowdown)
            .reduce(f64::max),
        vendor_microbatch_unmapped_cases: microbatch
            .iter()
            .filter(|c| c.vendor_microbatch_unmapped_reason.is_some())
            .count(),
        unmapped_cases: cases.iter().filter(|c| c.unmapped_reason.is_some()).count(),
    }
}

impl HardwareValidation {
    pub fn render_table(&self) -> String {
        let mut t = crate::report::Table::new([
            "case",
            "systems",
            "release",
            "batch",
            "seq",
            "measured/s",
            "simulated/s",
            "ratio",
            "error",
            "per system/s",
            "micro-batch vendor",
            "chosen",
            "factor",
            "at vendor's",
        ])
        .left_aligned(3);
        let number = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("-".to_string(), f);
        let count = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        for c in &self.cases {
            t.row([
                c.name.clone(),
                format!("{} x {}", c.systems, c.system),
                c.release.clone(),
                c.batch_sequences.to_string(),
                c.seq_len.to_string(),
                number(c.measured_samples_per_second, &|v| format!("{v:.2}")),
                number(c.simulated_samples_per_second, &|v| format!("{v:.2}")),
                number(c.ratio, &|v| format!("{v:.2}x")),
                number(c.error, &|v| format!("{:+.1}%", 100.0 * v)),
                number(c.simulated_samples_per_second_per_system, &|v| {
                    format!("{v:.2}")
                }),
                count(c.microbatch_sequences_vendor),
                count(c.microbatch_sequences_chosen),
                number(c.microbatch_factor, &|v| format!("{v:.2}x")),
                match (
                    &c.vendor_microbatch_unmapped_reason,
                    c.vendor_microbatch_slowdown,
                ) {
                    (Some(_), _) => "no fit".to_string(),
                    (None, v) => number(v, &|v| format!("{:+.1}%", 100.0 * v)),
                },
            ]);
        }
        format!(
            "wafersim validate --hardware: simulated against measured training runs, cases from \
             {}\n\n{}\n{}{}\n{}",
            self.cases_file,
            t.render(),
            self.render_notes(),
            self.render_summary(),
            self.render_breakdown()
        )
    }

    /// Where each simulated step goes, and simulated and measured throughput as a fraction of
    /// the system's fp16 peak: what a calibration has to move.
    fn render_breakdown(&self) -> String {
        let categories = crate::schedule::Breakdown::default().entries();
        let mut header = vec![
            "case".to_string(),
            "peak simulated".to_string(),
            "peak measured".to_string(),
        ];
        header.extend(categories.iter().map(|(name, _)| name.to_string()));
        let mut t = crate::report::Table::new(header);
        let percent = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}%", 100.0 * v));
        for c in &self.cases {
            let mut row = vec![
                c.name.clone(),
                percent(c.simulated_peak_fraction),
                percent(c.measured_peak_fraction),
            ];
            let total = c.step_cycles.unwrap_or_default().max(1) as f64;
            row.extend(
                categories
                    .iter()
                    .enumerate()
                    .map(|(i, _)| percent(c.breakdown.map(|b| b.entries()[i].1 as f64 / total))),
            );
            t.row(row);
        }
        format!(
            "Each simulated step by category (share of its cycles), and throughput as a fraction of \
             one system's fp16 peak:\n\n{}",
            t.render()
        )
    }

    fn render_notes(&self) -> String {
        let mut out = String::new();
        for c in &self.cases {
            if let Some(reason) = &c.unmapped_reason {
                out += &format!("  {}: does not map: {reason}\n", c.name);
            }
            if let Some(reason) = &c.vendor_microbatch_unmapped_reason {
                out += &format!(
                    "  {}: the vendor's micro-batch does not map: {reason}\n",
                    c.name
                );
            }
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out
    }

    fn render_summary(&self) -> String {
        let s = &self.summary;
        let percent = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}%", 100.0 * v));
        format!(
            "throughput: {} cases, max |error| {}, mean |error| {}; {} within ±{:.0}%\n\
             micro-batch: {} cases, widest factor {}; {} within {:.0}x; the step at the vendor's \
             micro-batch at most {} against the chosen one{}\n\
             (samples/s = global batch ÷ simulated step time of a dense pre-training step; \
             measured = the log's GlobalRate; at vendor's = that step with the vendor's \
             micro-batch forced, against the chosen)\n",
            s.throughput_cases,
            percent(s.max_abs_error),
            percent(s.mean_abs_error),
            s.throughput_cases_within_bound,
            100.0 * s.throughput_bound,
            s.microbatch_cases,
            s.microbatch_factor_max
                .map_or("-".to_string(), |f| format!("{f:.2}x")),
            s.microbatch_cases_within_bound,
            s.microbatch_factor_bound,
            s.vendor_microbatch_slowdown_max
                .map_or("-".to_string(), |v| format!("{:+.1}%", 100.0 * v)),
            match s.vendor_microbatch_unmapped_cases {
                0 => String::new(),
                n => format!(" ({n} do not map)"),
            },
        )
    }
}
