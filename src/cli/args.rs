//! Raw flags, as clap sees them.

use clap::{Args as ClapArgs, Parser, Subcommand};

use crate::spec::check_sparsity;

/// wafersim: what a FLOP count is worth in wall-clock on a wafer-scale engine.
///
/// Built-in models: mediswift-med, mediswift-large, mediswift-xl, gpt-tiny.
/// Built-in fabrics: wse2, wse3, mini. A path to a TOML file works wherever a name does.
#[derive(Debug, Parser)]
#[command(name = "wafersim", version, about, long_about = None)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, ClapArgs)]
pub struct Common {
    /// Print one JSON document on stdout and nothing else there.
    #[arg(long, global = true)]
    pub json: bool,
    /// Seed for every random choice (masks); the same seed gives the same report [default: 1].
    /// A sweep takes its seeds from its spec's `seeds` instead.
    #[arg(long, global = true)]
    pub seed: Option<u64>,
    /// No tables or progress; errors still go to stderr.
    #[arg(long, global = true)]
    pub quiet: bool,
}

impl Common {
    /// The seed: `--seed`, or 1.
    pub fn seed(&self) -> u64 {
        self.seed.unwrap_or(1)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The main job: the whole recipe (sparse pre-training, dense fine-tuning, soft prompting) at
    /// each sparsity and dense, simulated on the whole fabric; theory beside simulation.
    Train(TrainArgs),
    /// The theoretical side: FLOPs per phase, per token, per step and in total, and the speedup
    /// the FLOP count promises against the dense run.
    Flops(FlopsArgs),
    /// A model's parameter counts and recipe, or a fabric's PEs, peak FLOP/s and SRAM.
    Inspect(InspectArgs),
    /// One training step on the whole fabric: mapped, timed, every cycle accounted for.
    Step(StepArgs),
    /// One kernel on the wavelet-level engine (or, with --fidelity model, its cost model): gemm,
    /// the collectives reduce, allreduce and broadcast, attention, and the element-wise ops
    /// layernorm, softmax, gelu, residual, embedding and loss.
    Kernel(super::kernel::KernelArgs),
    /// A grid of train runs from a TOML spec, in parallel, resumable, shardable across machines.
    Sweep(SweepArgs),
    /// Checks a sweep's folder (every point once, one version) and writes sweep.csv and
    /// speedup-vs-sparsity.png.
    Merge(MergeArgs),
    /// The built-in fidelity checks: cost models against the wavelet-level engine, as a table;
    /// exits 1 if a bound fails. With --hardware: simulated against measured runs of real
    /// systems (a report; the calibration test holds its bounds).
    Validate(ValidateArgs),
    /// Redraws a picture from saved results: a heatmap from counters.npz (train's, or one
    /// kernel run's from `kernel --counters`), the speedup chart or the where-the-gap-goes
    /// waterfall from report.json.
    Plot(PlotArgs),
    /// Regression benchmarks: runs every case of a suite (train, step and kernel invocations,
    /// in parallel) and, with --save NAME, writes every figure each case reports to a baseline
    /// NAME.json (in --out, default the current folder) for `wafersim compare`; --json prints
    /// the baseline.
    Bench(BenchArgs),
    /// Compares two baselines that `wafersim bench --save` wrote: prints each figure that moved
    /// (case, field, old, new, change in percent); exits 1 if a figure moved beyond the
    /// tolerance or a case or figure is in one baseline only, 0 otherwise. Host figures (host
    /// seconds, rates per host second, the engine's event count) are shown, never compared.
    Compare(CompareArgs),
    /// The JSON Schema of each JSON document wafersim writes (report.json, every --json, sweep
    /// points): one by name, all into a folder, or the list.
    Schema(SchemaArgs),
}

#[derive(Debug, ClapArgs)]
pub struct SchemaArgs {
    /// The schema to print (train, step, kernel, flops, inspect-model, inspect-fabric, validate,
    /// validate-hardware, sweep, sweep-point, merge, plot); without it, the list.
    pub name: Option<String>,
    /// Write every schema to this folder as NAME.schema.json (docs/schema/ holds them).
    #[arg(long, value_name = "DIR")]
    pub out: Option<std::path::PathBuf>,
}

#[derive(Debug, ClapArgs)]
pub struct BenchArgs {
    /// The suite: a TOML file of [[case]] tables (see benches/suites/mediswift.toml).
    pub suite: String,
    /// Write the baseline as NAME.json in --out (the current folder by default), atomically;
    /// NAME is letters, digits, '.', '_' and '-'. Without it nothing is written.
    #[arg(long, value_name = "NAME")]
    pub save: Option<String>,
    /// The folder --save writes into (created if missing).
    #[arg(long, requires = "save", value_name = "DIR")]
    pub out: Option<std::path::PathBuf>,
}

#[derive(Debug, ClapArgs)]
pub struct CompareArgs {
    /// The baseline compared against (e.g. the shipped traces/bench/mediswift.json).
    pub base: String,
    /// The new baseline.
    pub new: String,
    /// Largest relative change of a figure that passes, as a percentage: 0.5% passes 1,000 ->
    /// 1,005; 0% means exact.
    #[arg(long, default_value = crate::bench::DEFAULT_TOLERANCE, allow_hyphen_values = true)]
    pub tolerance: String,
    /// Print the comparison as Markdown (for a pull request) instead of a terminal table.
    #[arg(long)]
    pub markdown: bool,
}

#[derive(Debug, ClapArgs)]
pub struct ValidateArgs {
    /// Fabric whose parameters both sides use [default: wse2]. Not with --hardware, whose cases
    /// each name their system.
    #[arg(long)]
    pub fabric: Option<String>,
    /// Instead: simulated against measured training runs of CS-2 and CS-3 systems (samples/s
    /// and micro-batch), from the built-in traces/hardware/measured.toml.
    #[arg(long)]
    pub hardware: bool,
    /// With --hardware: read the cases from this TOML file instead of the built-in one.
    #[arg(long, requires = "hardware", value_name = "PATH")]
    pub hardware_file: Option<std::path::PathBuf>,
}

#[derive(Debug, ClapArgs)]
pub struct PlotArgs {
    #[command(subcommand)]
    pub what: PlotWhat,
}

#[derive(Debug, Subcommand)]
pub enum PlotWhat {
    /// A per-PE heatmap from a counters.npz that `train` wrote, or one kernel run's counters
    /// (`kernel --counters`).
    Heatmap {
        /// The counters.npz file.
        input: std::path::PathBuf,
        /// The picture to write: .png (one pixel or more per PE) or .svg (aggregated tiles).
        #[arg(short, long)]
        output: std::path::PathBuf,
        /// Which run: dense, or its sparsity (e.g. 0.75); default: the sparsest run for
        /// utilisation, the dense run for SRAM (as train draws them).
        #[arg(long)]
        run: Option<String>,
        /// What to draw: utilization (busy fraction), sram (bytes free of each PE's SRAM), or
        /// difference (a sparse run's busy fraction less the dense run's; train's counters only).
        #[arg(long, value_enum, default_value = "utilization")]
        kind: crate::report::HeatmapKind,
        /// The colour scale: fixed (the kind's own, the same for every run, so pictures compare)
        /// or auto (the picture's lowest to highest value, to see small differences in one run).
        #[arg(long, value_enum, default_value = "fixed")]
        scale: crate::report::HeatmapScale,
    },
    /// Theoretical and simulated speedup against sparsity from a report.json that `train` wrote.
    Speedup {
        /// The report.json file.
        input: std::path::PathBuf,
        /// The picture to write (.png or .svg).
        #[arg(short, long)]
        output: std::path::PathBuf,
    },
    /// Where the gap goes: a waterfall per sparse run, from the ideal 1/(1 - s) through Amdahl's
    /// dense ops and each category of wafer time to the simulated speedup, from a report.json
    /// that `train` wrote.
    Gap {
        /// The report.json file.
        input: std::path::PathBuf,
        /// The picture to write (.png or .svg).
        #[arg(short, long)]
        output: std::path::PathBuf,
    },
}

#[derive(Debug, ClapArgs)]
pub struct SweepArgs {
    /// The sweep spec (TOML): models, fabrics, sparsities, seeds, overrides, limits.
    pub spec: String,
    /// Run only shard i of n (1-based), e.g. under Slurm:
    /// --shard $((SLURM_ARRAY_TASK_ID+1))/$SLURM_ARRAY_TASK_COUNT
    #[arg(long)]
    pub shard: Option<String>,
    /// Folder for the points; default wafersim-out/sweep-<spec name>/.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Points run at once (threads); default: the machine's cores, or fewer where the spec's
    /// `limits.max_memory_bytes` holds fewer (refused if it cannot hold the number given).
    #[arg(long)]
    pub jobs: Option<usize>,
}

#[derive(Debug, ClapArgs)]
pub struct MergeArgs {
    /// A sweep's output folder.
    pub dir: std::path::PathBuf,
    /// The spec whose points must all be present, and no others.
    #[arg(long)]
    pub expect: Option<String>,
}

#[derive(Debug, ClapArgs)]
pub struct TrainArgs {
    /// Model: a built-in name or a TOML file.
    #[arg(default_value = "mediswift-xl")]
    pub model: String,
    /// Fabric: a built-in name or a TOML file.
    #[arg(long, default_value = "wse2")]
    pub fabric: String,
    /// Pre-training sparsities, comma-separated, each in [0, 1), or a range FROM:TO:STEP
    /// (0:0.95:0.05, TO included when a whole number of steps reaches it); default: the
    /// recipe's. The dense run always comes first; 0 or a repeat adds no run.
    #[arg(long, value_delimiter = ',', value_parser = parse_sparsity_item, allow_hyphen_values = true)]
    pub sparsity: Option<Vec<SparsityItem>>,
    #[command(flatten)]
    pub masking: RecipeMasks,
    /// Folder for the result files; default wafersim-out/<model>-<fabric>/.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Systems (CS-2 on wse2, CS-3 on wse3) trained data-parallel through SwarmX: each runs
    /// ceil(batch / N) sequences of every step; 1 to the fabric's cluster.systems_max.
    #[arg(long, default_value = "1")]
    pub systems: u64,
}

#[derive(Debug, ClapArgs)]
pub struct StepArgs {
    /// Model: a built-in name or a TOML file.
    #[arg(default_value = "mediswift-xl")]
    pub model: String,
    /// Fabric: a built-in name or a TOML file.
    #[arg(long, default_value = "wse2")]
    pub fabric: String,
    /// Phase of the recipe whose step to run.
    #[arg(long, value_enum, default_value = "pretrain")]
    pub phase: crate::spec::Phase,
    /// Sparsity of the sparse weights, in [0, 1); default 0 (dense), or an N:M mask's own
    /// 1 - N/M. It applies in any phase: for finetune and softprompt, which the recipe runs
    /// dense, it is a what-if.
    #[arg(long, value_parser = parse_sparsity, allow_hyphen_values = true)]
    pub sparsity: Option<f64>,
    /// The masks' structure: random, N:M (e.g. 2:4, along each weight's inputs), block:B,
    /// rows (whole inputs), cols (whole outputs) or skewed[:SIGMA], as `kernel gemm --mask`;
    /// default: the recipe's `pattern` (random if it names none).
    #[arg(long, value_parser = parse_pattern)]
    pub mask: Option<crate::sparsity::Pattern>,
    /// How the sparsity is shared among the sparse weights: uniform or erk (Erdős–Rényi, as
    /// RigL); default: the recipe's `levels` (uniform if it names none).
    #[arg(long, value_enum)]
    pub levels: Option<crate::spec::Levels>,
    /// Masks from a file (.safetensors, or a folder of .npy files; see docs/masks.md): the
    /// step runs them at their mean sparsity, each layer's weights priced by their own per-PE
    /// non-zero counts.
    #[arg(long, conflicts_with_all = ["sparsity", "mask", "levels"])]
    pub masks: Option<String>,
    /// Sequences per microbatch; default: the mapper searches.
    #[arg(long)]
    pub microbatch: Option<u64>,
    /// Where the activations backward reads are kept: keep (all in SRAM), attention (scores
    /// and softmax recomputed), checkpoint (each layer's two sub-block inputs kept, each
    /// sub-block's forward recomputed) or offload (checkpoints on the activation servers);
    /// default: the mapper searches.
    #[arg(long, value_name = "keep|attention|checkpoint|offload", value_parser = parse_activations)]
    pub activations: Option<crate::map::Activations>,
    /// Systems (CS-2 on wse2, CS-3 on wse3) trained data-parallel through SwarmX: each runs
    /// ceil(batch / N) sequences of every step; 1 to the fabric's cluster.systems_max.
    #[arg(long, default_value = "1")]
    pub systems: u64,
    /// Also draw the step's per-PE utilisation heatmap here (.png or .svg).
    #[arg(long)]
    pub heatmap: Option<std::path::PathBuf>,
    /// With --heatmap: draw one op instead of the whole step, each PE's busy fraction of the
    /// cycles that op takes; NAME as the step's `ops[].name` (e.g. layer0.ffn_up.fwd).
    #[arg(long, value_name = "NAME", requires = "heatmap")]
    pub heatmap_op: Option<String>,
    /// Also write the step's timeline here (Chrome trace-event JSON; opens in Perfetto).
    #[arg(long)]
    pub trace: Option<std::path::PathBuf>,
}

#[derive(Debug, ClapArgs)]
pub struct FlopsArgs {
    /// Model: a built-in name or a TOML file.
    #[arg(default_value = "mediswift-xl")]
    pub model: String,
    /// Fabric whose peak converts FLOPs to seconds at peak.
    #[arg(long, default_value = "wse2")]
    pub fabric: String,
    /// Pre-training sparsities, comma-separated, each in [0, 1); default: the recipe's (or an
    /// N:M --mask's own). The dense run always comes first; 0 or a repeat adds no run.
    #[arg(long, value_delimiter = ',', value_parser = parse_sparsity, allow_hyphen_values = true)]
    pub sparsity: Option<Vec<f64>>,
    #[command(flatten)]
    pub masking: RecipeMasks,
}

/// The masks of a command that runs the whole recipe (`train`, `flops`).
#[derive(Debug, ClapArgs)]
pub struct RecipeMasks {
    /// The sparse runs' mask structure: random, N:M (e.g. 2:4, along each weight's inputs;
    /// without --sparsity it runs at its own 1 - N/M), block:B, rows, cols or skewed[:SIGMA],
    /// as `kernel gemm --mask`; default: the recipe's `pattern` (random if it names none).
    #[arg(long, value_parser = parse_pattern)]
    pub mask: Option<crate::sparsity::Pattern>,
    /// How each sparsity is shared among the sparse weights: uniform (every weight at it) or
    /// erk (Erdős–Rényi, as RigL: a k x n weight's density proportional to (k + n)/(k·n), the
    /// same entries kept in all); default: the recipe's `levels` (uniform if it names none).
    #[arg(long, value_enum)]
    pub levels: Option<crate::spec::Levels>,
    /// Masks from a file: a .safetensors file or a folder of .npy files, one 0/1 tensor per
    /// sparse weight of every layer, named as wafersim (layer3.ffn_up, [in, out]), Hugging Face
    /// GPT-2 (transformer.h.3.mlp.c_fc.weight) or the Cerebras Model Zoo names them (see
    /// docs/masks.md). The one sparse run is theirs, at their mean sparsity.
    #[arg(long, conflicts_with_all = ["sparsity", "mask", "levels"])]
    pub masks: Option<String>,
    /// Dynamic sparse training of the sparse runs' pre-training: set (drop the smallest
    /// weights, regrow at random) or rigl (regrow where the dense gradient is largest, so each
    /// update step computes the sparse weights' gradients dense); static turns off the
    /// recipe's [recipe.dynamic]. Default: the recipe's (static if it has none).
    #[arg(long, value_enum)]
    pub dynamic: Option<DynamicChoice>,
    /// Steps between mask updates (ΔT); default: the recipe's, else 100 (RigL, Evci et al.
    /// 2020). An interval past the end gives no update: the static run.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=crate::spec::MAX_UPDATE_EVERY))]
    pub update_every: Option<u64>,
    /// Share of each weight's non-zeros the first update drops and regrows, in (0, 1]; later
    /// updates drop less, on a cosine to 0 at --end. Default: the recipe's, else 0.3 (RigL).
    #[arg(long, value_parser = parse_drop)]
    pub drop: Option<f64>,
    /// Share of pre-training's steps after which the mask stops changing, in (0, 1]; default:
    /// the recipe's, else 0.75 (RigL).
    #[arg(long, value_parser = parse_end)]
    pub end: Option<f64>,
}

/// `--dynamic`: a method, or static masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DynamicChoice {
    Static,
    Set,
    Rigl,
}

#[derive(Debug, ClapArgs)]
pub struct InspectArgs {
    /// A built-in model or fabric name, or a TOML file of either.
    pub target: String,
    /// For a model: the fabric its steps are mapped onto (microbatch, SRAM use); default wse2.
    /// Refused for a fabric, which is inspected on its own.
    #[arg(long)]
    pub fabric: Option<String>,
}

/// One item of `train --sparsity`: a sparsity, or the sparsities of a range FROM:TO:STEP.
#[derive(Debug, Clone, PartialEq)]
pub struct SparsityItem(pub Vec<f64>);

impl TrainArgs {
    /// `--sparsity` as the list of sparsities it names, ranges expanded; `None` without it.
    pub fn sparsities(&self) -> Option<Vec<f64>> {
        self.sparsity
            .as_ref()
            .map(|items| items.iter().flat_map(|i| i.0.iter().copied()).collect())
    }
}

/// The most sparsities a range may expand to: far more than a study needs, few enough that
/// a typo (a step of 0.0001) is refused rather than run for hours.
const RANGE_LEVELS_MAX: usize = 100;

fn parse_sparsity_item(text: &str) -> Result<SparsityItem, String> {
    let parts: Vec<&str> = text.split(':').collect();
    let [from, to, step] = parts[..] else {
        if parts.len() == 1 {
            return parse_sparsity(text).map(|s| SparsityItem(vec![s]));
        }
        return Err(format!(
            "'{text}': a sparsity is a number in [0, 1) or a range FROM:TO:STEP, e.g. 0:0.95:0.05"
        ));
    };
    let (from, to) = (parse_sparsity(from)?, parse_sparsity(to)?);
    let step: f64 = step
        .parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && *s > 0.0)
        .ok_or_else(|| format!("'{text}': the range's STEP '{step}' is not a number above 0"))?;
    if to < from {
        return Err(format!(
            "'{text}': the range ends ({to}) before it starts ({from})"
        ));
    }
    // Whole steps from FROM, to a millionth: 0:0.95:0.05 reaches 0.95 exactly.
    let steps = ((to - from) / step + 1e-9).floor() as usize;
    if steps + 1 > RANGE_LEVELS_MAX {
        return Err(format!(
            "'{text}': {} sparsities, more than the {RANGE_LEVELS_MAX} a range may name",
            steps + 1
        ));
    }
    let levels = (0..=steps)
        .map(|i| ((from + i as f64 * step) * 1e6).round() / 1e6)
        .collect();
    Ok(SparsityItem(levels))
}

fn parse_pattern(text: &str) -> Result<crate::sparsity::Pattern, String> {
    text.parse()
}

fn parse_sparsity(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a number; a sparsity is in [0, 1), e.g. 0.75"))?;
    check_sparsity("--sparsity", value).map_err(|e| e.to_string())
}

fn parse_fraction(flag: &str, text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a number; a fraction is in (0, 1], e.g. 0.3"))?;
    if value.is_finite() && value > 0.0 && value <= 1.0 {
        return Ok(value);
    }
    Err(format!(
        "{flag} {value} is not allowed: it must be a fraction in (0, 1], e.g. 0.3 or 0.75"
    ))
}

fn parse_drop(text: &str) -> Result<f64, String> {
    parse_fraction("--drop", text)
}

fn parse_end(text: &str) -> Result<f64, String> {
    parse_fraction("--end", text)
}

fn parse_activations(text: &str) -> Result<crate::map::Activations, String> {
    text.parse()
}
