//! `wafersim kernel`: one kernel on the wavelet-level engine, and its figures.

use std::time::Instant;

use clap::{Args as ClapArgs, Subcommand, ValueEnum};
use serde::Serialize;

use super::progress::Progress;
use super::Common;
use crate::cost::{
    attention_layouts_cost, attention_products, collective_busy_cycles, collective_cycles,
    elementwise_config, elementwise_cost, fmac_ops, gemm_cost, AttentionOp, ElementwiseProblem,
    GemmProblem,
};
use crate::engine::kernels::attention::{run_attention_shapes_with, AttentionLayout};
use crate::engine::kernels::collective::{
    check_collective, run_collective_with, Algo, Collective, CollectiveConfig,
};
use crate::engine::kernels::elementwise::{
    check_elementwise, check_shape, run_elementwise_with, ElementwiseConfig,
};
use crate::engine::kernels::gemm::{run_gemm_with, GemmConfig, GemmForm, GemmLayout, ValuesCheck};
use crate::engine::kernels::KernelFigures;
use crate::engine::{RunOutput, Timeline, Watch};
use crate::error::{Error, Result};
use crate::graph::{elementwise_profile, OpKind, Pass};
use crate::report::ExactCount;
use crate::report::{kernel_trace, si, thousands, Table};
use crate::sparsity::Pattern;
use crate::spec::{check_sparsity, load_fabric, FabricSpec};

#[derive(Debug, ClapArgs)]
pub struct KernelArgs {
    #[command(subcommand)]
    pub kernel: KernelCommand,
    /// Fabric: a built-in name (wse2, wse3, mini) or a TOML file.
    #[arg(long, default_value = "wse2", global = true)]
    pub fabric: String,
    /// Save the per-PE counters to this file (.npz: one numpy array per counter, of the mesh's shape).
    #[arg(long, global = true)]
    pub counters: Option<std::path::PathBuf>,
    /// Draw the per-PE busy fraction as a heatmap here (.png or .svg).
    #[arg(long, global = true)]
    pub heatmap: Option<std::path::PathBuf>,
    /// Write a Chrome trace-event timeline here (opens in Perfetto, ui.perfetto.dev): over the
    /// run's simulated time, in at most 512 buckets, counter tracks of the PEs busy by kind and
    /// of the wavelets moved per cycle, and a track of phases (compute, reduction, ...).
    #[arg(long, global = true)]
    pub trace: Option<std::path::PathBuf>,
    /// How the kernel is computed: wavelet by wavelet on the engine, or by the closed-form cost
    /// model that full-wafer steps use (instant at any size the fabric holds; no per-PE counters).
    #[arg(long, value_enum, default_value_t = Fidelity::Wavelet, global = true)]
    pub fidelity: Fidelity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Fidelity {
    Wavelet,
    Model,
}

#[derive(Debug, Subcommand)]
pub enum KernelCommand {
    /// Y[T×N] = X[T×K]·W[K×N] with X resident and W streamed (sparse: zeros never sent).
    Gemm(GemmArgs),
    /// Reduce B wavelets over P PEs of a row to one PE.
    Reduce(CollectiveArgs),
    /// All-reduce B wavelets over P PEs of a row.
    Allreduce(CollectiveArgs),
    /// Broadcast B wavelets from one PE to P PEs of a row, or to a whole region.
    Broadcast(CollectiveArgs),
    /// Attention's scores Q·Kᵀ and A·V (or their gradients) for B independent (sequence, head)
    /// products, each on a tile of the region, the second operand multicast from the PE rows
    /// that hold it.
    Attention(AttentionArgs),
    /// LayerNorm over the features of each row: a pass, a row all-reduce of Σx and Σx², a pass.
    Layernorm(ElementwiseArgs),
    /// Softmax over each row (online max and sum of exponentials, one row all-reduce).
    Softmax(ElementwiseArgs),
    /// GeLU, element by element.
    Gelu(ElementwiseArgs),
    /// Residual add, element by element.
    Residual(ElementwiseArgs),
    /// Embedding: the learned position added to the gathered rows (backward: the gradient
    /// scatter-added into the token and position tables).
    Embedding(ElementwiseArgs),
    /// Softmax cross-entropy over each row of logits (max, sum and the target's logit
    /// all-reduced along the row); backward: (p − y)/T from the kept probabilities.
    Loss(ElementwiseArgs),
}

#[derive(Debug, ClapArgs)]
pub struct ElementwiseArgs {
    /// Rows of the tensor (tokens; for softmax, tokens × heads), over the region's PE rows.
    #[arg(long)]
    pub rows: u64,
    /// Columns (features; for softmax, keys; for the loss, the vocabulary), over its PE columns.
    #[arg(long)]
    pub cols: u64,
    /// Region ROWSxCOLS of PEs.
    #[arg(long, default_value = "32x32")]
    pub region: String,
    /// Which pass: forward, or backward (the input gradient; for the embedding, its table's
    /// gradient).
    #[arg(long, value_enum, default_value_t = PassArg::Forward)]
    pub pass: PassArg,
    /// The row all-reduce of LayerNorm, softmax and the loss: chain or tree (default: the
    /// faster whose colors the fabric leaves, as full-wafer steps choose).
    #[arg(long, value_enum)]
    pub algo: Option<AlgoArg>,
}

#[derive(Debug, ClapArgs)]
pub struct AttentionArgs {
    /// Tokens per sequence S.
    #[arg(long)]
    pub seq: usize,
    /// Features per head H.
    #[arg(long = "head-dim")]
    pub head_dim: usize,
    /// Independent (sequence, head) products B.
    #[arg(long)]
    pub products: u64,
    /// Forward (Q·Kᵀ, A·V) or dgrad (both operands' gradients of each).
    #[arg(long, value_enum, default_value_t = AttentionPassArg::Fwd)]
    pub pass: AttentionPassArg,
    /// Only the scores or only A·V; default both, one after the other.
    #[arg(long, value_enum)]
    pub op: Option<AttentionOpArg>,
    /// Region ROWSxCOLS of PEs, cut into one tile per product (as many as fit).
    #[arg(long, default_value = "32x32")]
    pub region: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PassArg {
    Forward,
    Backward,
}

/// The pass of `kernel attention`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AttentionPassArg {
    Fwd,
    Dgrad,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AttentionOpArg {
    Scores,
    Values,
}

#[derive(Debug, ClapArgs)]
pub struct GemmArgs {
    /// Rows of X and Y: tokens, split over the region's PE rows.
    #[arg(long)]
    pub t: usize,
    /// Inner dimension: columns of X, rows of W.
    #[arg(long)]
    pub k: usize,
    /// Columns of W and Y.
    #[arg(long)]
    pub n: usize,
    /// Weight sparsity in [0, 1); 0 streams dense (two values per wavelet). Default 0, or an
    /// N:M mask's own 1 - N/M.
    #[arg(long)]
    pub sparsity: Option<f64>,
    /// The mask's structure: random (every subset of the kept count alike), N:M (N kept in
    /// every M consecutive inputs of an output column, e.g. 2:4; M divides --k), block:B (whole
    /// B x B blocks kept; B divides --k and --n), rows (whole inputs, rows of W), cols (whole
    /// outputs, columns of W) or skewed[:SIGMA] (rows and columns of lognormal density, SIGMA
    /// 1 by default). Drawn from --seed; the cost model prices each one's spread.
    #[arg(long, default_value = "random")]
    pub mask: String,
    /// Region ROWSxCOLS of PEs.
    #[arg(long, default_value = "32x32")]
    pub region: String,
    /// Column split C_kxC_n (K-groups x N-groups); default: the fewest K-groups that fit SRAM.
    #[arg(long)]
    pub split: Option<String>,
    /// Which product: forward Y = X·W, dgrad dX = dY·Wᵀ, or wgrad dW = Xᵀ·dY at W's non-zeros.
    #[arg(long, value_enum, default_value_t = FormArg::Forward)]
    pub form: FormArg,
    /// Carry real values (seeded, in (-1, 1)) through the program and compare the product with
    /// the direct product: the report gives the largest error and its ratio to the f32 rounding
    /// bound; beyond the bound the command exits 1 (slower; for checking the program).
    #[arg(long)]
    pub values: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormArg {
    Forward,
    Dgrad,
    Wgrad,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AlgoArg {
    Chain,
    Tree,
    Ring,
}

#[derive(Debug, ClapArgs)]
pub struct CollectiveArgs {
    /// PEs along the row.
    #[arg(long)]
    pub pes: Option<u32>,
    /// Wavelets per PE (the vector length).
    #[arg(long)]
    pub wavelets: u64,
    #[arg(long, value_enum, default_value_t = AlgoArg::Chain)]
    pub algo: AlgoArg,
    /// For broadcast: a whole ROWSxCOLS region instead of --pes along a row.
    #[arg(long)]
    pub region: Option<String>,
    /// Run along a row (west to east) or a column (north to south).
    #[arg(long, value_enum, default_value_t = AxisArg::Row)]
    pub axis: AxisArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AxisArg {
    Row,
    Column,
}

/// The `kernel --json` document.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct KernelReport {
    /// The version of the field names and types (`report::SCHEMA_VERSION`).
    pub schema_version: u32,
    pub version: &'static str,
    pub seed: u64,
    pub fabric: String,
    pub kernel: String,
    pub fidelity: Fidelity,
    #[serde(flatten)]
    pub shape: serde_json::Map<String, serde_json::Value>,
    #[serde(flatten)]
    pub figures: KernelFigures,
    /// `flops_dense` and `flops_executed` as exact integers (decimal strings).
    pub flops_dense_exact: ExactCount,
    pub flops_executed_exact: ExactCount,
    /// `gemm --values`: the product against the direct product.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<ValuesCheck>,
}

/// Parses `ROWSxCOLS` for `flag`.
pub fn parse_grid(flag: &str, text: &str) -> Result<(u32, u32)> {
    let bad = || {
        Error::Input(format!(
            "{flag} '{text}': expected ROWSxCOLS with positive integers, e.g. 32x32"
        ))
    };
    let (a, b) = text.split_once(['x', 'X']).ok_or_else(bad)?;
    let a: u32 = a.trim().parse().map_err(|_| bad())?;
    let b: u32 = b.trim().parse().map_err(|_| bad())?;
    if a == 0 || b == 0 {
        return Err(bad());
    }
    Ok((a, b))
}

pub fn execute(args: &KernelArgs, common: &Common) -> Result<KernelReport> {
    execute_watched(args, common, false)
}

/// `kernel` as the command line runs it: [`execute`], with the engine's progress on stderr
/// (a bar on a terminal, else a line at most every 30 s and one at the end; none with
/// `--quiet`). Benchmarks run kernels through [`execute`], several at a time, without it.
pub fn execute_with_progress(args: &KernelArgs, common: &Common) -> Result<KernelReport> {
    execute_watched(args, common, true)
}

fn execute_watched(args: &KernelArgs, common: &Common, progress: bool) -> Result<KernelReport> {
    let fabric = load_fabric(&args.fabric)?;
    if args.fidelity == Fidelity::Model {
        return execute_model(args, common, &fabric);
    }
    super::check_outputs(
        &[("--heatmap", &args.heatmap)],
        &[("--counters", &args.counters), ("--trace", &args.trace)],
    )?;
    let progress = match progress {
        true => KernelProgress::new(args, common, &fabric)?,
        false => None,
    };
    let mut tick = |cycles: u64| {
        if let Some(p) = &progress {
            p.tick(cycles);
        }
    };
    let mut watch = Watch {
        timeline: args.trace.as_ref().map(|_| Timeline::new()),
        ..Watch::default()
    };
    if progress.is_some() {
        watch.progress = Some(&mut tick);
    }
    let mut shape = serde_json::Map::new();
    let run = run_engine(args, common, &fabric, &mut watch, &mut shape)?;
    let timeline = watch.timeline.take();
    if let Some(p) = &progress {
        p.done(run.output.cycles);
    }
    let title = format!(
        "{} ({}) on {}",
        run.name,
        shape_summary(&shape),
        fabric.name
    );
    write_outputs(args, &fabric, &run.output, timeline.as_ref(), &title)?;
    let figures = KernelFigures {
        // An element-wise kernel's FLOPs are not multiply-adds: the kernel counts them.
        flops_executed: run
            .flops_counted
            .unwrap_or(2 * run.output.counters.total().fmac_ops as u128),
        ..KernelFigures::new(&fabric, &run.output, run.flops_dense, run.host_seconds)
    };
    let kernel = (run.name, Fidelity::Wavelet);
    Ok(KernelReport::new(
        common, &fabric, kernel, shape, figures, run.values,
    ))
}

/// A kernel run on the engine, with what its report needs beside the engine's output.
struct EngineRun {
    name: &'static str,
    output: RunOutput,
    flops_dense: u128,
    /// FLOPs the kernel counted itself (element-wise kernels), else 2 × FMACs.
    flops_counted: Option<u128>,
    /// The engine's time (not the direct product of `--values`).
    host_seconds: f64,
    values: Option<ValuesCheck>,
}

/// Runs the kernel the flags ask for on the engine, watched by `watch`; fills in `shape`.
fn run_engine(
    args: &KernelArgs,
    common: &Common,
    fabric: &FabricSpec,
    watch: &mut Watch,
    shape: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<EngineRun> {
    let start = Instant::now();
    let run = |name, output, flops_dense| EngineRun {
        name,
        output,
        flops_dense,
        flops_counted: None,
        host_seconds: start.elapsed().as_secs_f64(),
        values: None,
    };
    Ok(match &args.kernel {
        KernelCommand::Gemm(g) => {
            let cfg = gemm_config(g, common.seed())?;
            let gemm = run_gemm_with(fabric, &cfg, watch)?;
            let host_seconds = start.elapsed().as_secs_f64();
            let nonzeros = gemm.plan.mask.nonzeros();
            gemm_shape(shape, &cfg, (gemm.plan.ck, gemm.plan.cn), nonzeros);
            let values = gemm.check_values();
            EngineRun {
                host_seconds,
                values,
                ..run("gemm", gemm.output, gemm_flops(g))
            }
        }
        KernelCommand::Attention(a) => {
            let (shapes, region) = attention_config(a)?;
            let (layouts, output) =
                run_attention_shapes_with(fabric, &shapes, a.products, region, watch)?;
            attention_shape(shape, a, &layouts);
            run("attention", output, attention_flops(a, &shapes))
        }
        KernelCommand::Reduce(c) | KernelCommand::Allreduce(c) | KernelCommand::Broadcast(c) => {
            let collective = collective_of(&args.kernel);
            let cfg = collective_config(collective, c, fabric)?;
            let output = run_collective_with(fabric, &cfg, watch)?.output;
            collective_shape(shape, &cfg);
            run(collective.name(), output, 0)
        }
        _ => {
            let (name, cfg) = elementwise_of(&args.kernel, fabric)?;
            let elementwise = run_elementwise_with(fabric, &cfg, watch)?;
            elementwise_shape(shape, &args.kernel, &cfg);
            let flops = elementwise.flops_executed();
            EngineRun {
                flops_counted: Some(flops),
                ..run(name, elementwise.output, flops)
            }
        }
    })
}

/// The shape's fields as `name value` pairs for a title, in a fixed order.
fn shape_summary(shape: &serde_json::Map<String, serde_json::Value>) -> String {
    let keys = [
        "t",
        "k",
        "n",
        "sparsity",
        "seq",
        "head_dim",
        "products",
        "kernel_pass",
        "region",
        "pes",
        "wavelets",
        "algo",
        "rows",
        "cols",
    ];
    let fields: Vec<String> = keys
        .iter()
        .filter_map(|key| {
            shape.get(*key).filter(|v| !v.is_null()).map(|v| {
                let name = key.trim_start_matches("kernel_");
                format!("{name} {}", v.to_string().trim_matches('"'))
            })
        })
        .collect();
    fields.join(", ")
}

/// `--counters`, `--heatmap` and `--trace` of a run, each written atomically.
fn write_outputs(
    args: &KernelArgs,
    fabric: &FabricSpec,
    output: &RunOutput,
    timeline: Option<&Timeline>,
    title: &str,
) -> Result<()> {
    if let Some(path) = &args.counters {
        crate::report::write_atomic(path, &crate::report::kernel_counters_npz(&output.counters)?)?;
    }
    if let Some(path) = &args.heatmap {
        let counters = &output.counters;
        let grid = crate::report::plot::Grid::new(
            counters.cols as usize,
            counters.rows as usize,
            counters.busy_fraction_grid(),
        )?;
        let style = crate::report::plot::HeatmapStyle::new(
            format!("PE utilisation: {title}"),
            "busy fraction of the kernel",
            0.0,
            1.0,
        );
        crate::report::plot::heatmap(&grid, &style, path)?;
    }
    if let (Some(path), Some(timeline)) = (&args.trace, timeline) {
        let run = (output.cycles, output.counters.pes.len() as u64);
        let trace = kernel_trace(timeline, run, fabric.clock.clock_hz, title);
        let text = serde_json::to_string(&trace)
            .map_err(|e| Error::Simulation(format!("cannot encode the trace: {e}")))?;
        crate::report::write_atomic(path, text.as_bytes())?;
    }
    Ok(())
}

/// The progress of a kernel on the engine: simulated cycles against the cost model's cycles
/// for the same flags (`--fidelity model`), which `validate` holds within 15% of the engine's
/// on the shapes it checks; without a model (a region broadcast), cycles alone.
struct KernelProgress {
    progress: Progress,
    name: &'static str,
    estimate_cycles: Option<u64>,
}

impl KernelProgress {
    /// `None` under `--quiet`.
    fn new(args: &KernelArgs, common: &Common, fabric: &FabricSpec) -> Result<Option<Self>> {
        let estimate_cycles = model_report(args, common, fabric)
            .ok()
            .map(|r| r.figures.cycles.max(1));
        let template = match estimate_cycles {
            // One line of a terminal 80 columns wide.
            Some(_) => "{bar:30} cycle {human_pos} of ~{human_len}, {elapsed}, ETA {eta}",
            None => "{spinner} cycle {human_pos}, {elapsed}",
        };
        let progress = Progress::new(common, template)?;
        let name = kernel_name(&args.kernel);
        Ok(progress.shown().then_some(KernelProgress {
            progress,
            name,
            estimate_cycles,
        }))
    }

    /// The engine reached `cycles`.
    fn tick(&self, cycles: u64) {
        // A run longer than the model said: the bar stays full rather than pass its end.
        let total = self.estimate_cycles.unwrap_or(cycles).max(cycles);
        self.progress.update(cycles, total, false, |seconds| {
            let of = self.estimate_cycles.map_or(String::new(), |estimate| {
                format!(
                    " of about {} ({:.0}%)",
                    thousands(estimate as u128),
                    100.0 * cycles as f64 / estimate as f64
                )
            });
            format!(
                "wafersim kernel {}: cycle {}{of}, {seconds:.0} s",
                self.name,
                thousands(cycles as u128)
            )
        });
    }

    /// The run ended after `cycles`.
    fn done(&self, cycles: u64) {
        self.progress
            .update(cycles, cycles.max(1), true, |seconds| {
                format!(
                    "wafersim kernel {}: done, {} cycles, {seconds:.1} s",
                    self.name,
                    thousands(cycles as u128)
                )
            });
        self.progress.finish();
    }
}

/// The subcommand's name, as typed.
fn kernel_name(kernel: &KernelCommand) -> &'static str {
    match kernel {
        KernelCommand::Gemm(_) => "gemm",
        KernelCommand::Reduce(_) => "reduce",
        KernelCommand::Allreduce(_) => "allreduce",
        KernelCommand::Broadcast(_) => "broadcast",
        KernelCommand::Attention(_) => "attention",
        KernelCommand::Layernorm(_) => "layernorm",
        KernelCommand::Softmax(_) => "softmax",
        KernelCommand::Gelu(_) => "gelu",
        KernelCommand::Residual(_) => "residual",
        KernelCommand::Embedding(_) => "embedding",
        KernelCommand::Loss(_) => "loss",
    }
}

/// `--fidelity model`: the cost model full-wafer steps use, for the same kernel and flags, its
/// imbalance the expected one (a step draws a random mask's per-PE counts from the seed).
fn execute_model(args: &KernelArgs, common: &Common, fabric: &FabricSpec) -> Result<KernelReport> {
    for (flag, given) in [
        ("--counters", args.counters.is_some()),
        ("--heatmap", args.heatmap.is_some()),
        ("--trace", args.trace.is_some()),
    ] {
        if given {
            return Err(Error::Input(format!(
                "{flag} needs --fidelity wavelet: the cost model has no per-PE counters"
            )));
        }
    }
    if matches!(&args.kernel, KernelCommand::Gemm(g) if g.values) {
        return Err(Error::Input(
            "--values needs --fidelity wavelet: the cost model carries no values".into(),
        ));
    }
    model_report(args, common, fabric)
}

/// The cost model's report for the kernel the flags ask for (`--fidelity model`'s, whatever
/// `--fidelity` says).
fn model_report(args: &KernelArgs, common: &Common, fabric: &FabricSpec) -> Result<KernelReport> {
    let mut shape = serde_json::Map::new();
    let start = Instant::now();
    let (name, figures) = match &args.kernel {
        KernelCommand::Gemm(g) => {
            let cfg = gemm_config(g, common.seed())?;
            let layout = GemmLayout::new(fabric, &cfg)?;
            let elements = layout.k_in as u64 * layout.n_out as u64;
            let nonzeros = if layout.dense {
                elements
            } else {
                cfg.pattern
                    .nonzeros(cfg.k as u64, cfg.n as u64, cfg.sparsity)
            };
            let (problem, tile) = GemmProblem::of_layout(&layout, nonzeros);
            let pes = tile.rows * tile.columns();
            let cost = gemm_cost(fabric, &problem, &tile, pes);
            gemm_shape(&mut shape, &cfg, (layout.ck, layout.cn), problem.nonzeros);
            let host_seconds = start.elapsed().as_secs_f64();
            let mut figures = KernelFigures::from_gemm_cost(
                fabric,
                &cost,
                (gemm_flops(g), fmac_ops(&problem)),
                host_seconds,
            );
            figures.sram_bytes_max = layout.sram_bytes_max;
            ("gemm", figures)
        }
        KernelCommand::Attention(a) => {
            let (shapes, region) = attention_config(a)?;
            let layouts = shapes
                .iter()
                .map(|&s| AttentionLayout::new(fabric, s, a.products, region))
                .collect::<Result<Vec<_>>>()?;
            let (cost, fmacs) = attention_layouts_cost(fabric, &layouts, region);
            attention_shape(&mut shape, a, &layouts);
            let host_seconds = start.elapsed().as_secs_f64();
            let mut figures = KernelFigures::from_gemm_cost(
                fabric,
                &cost,
                (attention_flops(a, &shapes), fmacs),
                host_seconds,
            );
            figures.sram_bytes_max = layouts.iter().map(|l| l.sram_bytes_max).max().unwrap_or(0);
            ("attention", figures)
        }
        KernelCommand::Reduce(c) | KernelCommand::Allreduce(c) | KernelCommand::Broadcast(c) => {
            let collective = collective_of(&args.kernel);
            let cfg = collective_config(collective, c, fabric)?;
            if cfg.rows > 1 && cfg.cols > 1 {
                return Err(Error::Input(
                    "--region with --fidelity model: the cost model covers collectives along one row or \
                     column (--pes P); a region broadcast runs on the wavelet-level engine only"
                        .into(),
                ));
            }
            let sram_bytes = check_collective(fabric, &cfg)?;
            let pes = cfg.rows as u64 * cfg.cols as u64;
            let cycles = collective_cycles(
                fabric,
                collective.into(),
                cfg.algo.into(),
                pes,
                cfg.wavelets,
            );
            collective_shape(&mut shape, &cfg);
            let host_seconds = start.elapsed().as_secs_f64();
            let mut figures = KernelFigures::from_cycles(fabric, cycles, 0, host_seconds);
            figures.sram_bytes_max = sram_bytes;
            figures.pe_utilization_mean = Some(
                collective_busy_cycles(
                    fabric,
                    collective.into(),
                    cfg.algo.into(),
                    pes,
                    cfg.wavelets,
                ) as f64
                    / (pes * cycles.max(1)) as f64,
            );
            (collective.name(), figures)
        }
        _ => elementwise_model(&args.kernel, fabric, &mut shape, start)?,
    };
    let kernel = (name, Fidelity::Model);
    Ok(KernelReport::new(
        common, fabric, kernel, shape, figures, None,
    ))
}

fn gemm_config(g: &GemmArgs, seed: u64) -> Result<GemmConfig> {
    let pattern: Pattern = g
        .mask
        .parse()
        .map_err(|e| Error::Input(format!("--mask {e}")))?;
    let sparsity = match (g.sparsity, pattern.implied_sparsity()) {
        (None, implied) => implied.unwrap_or(0.0),
        (Some(s), Some(implied)) if s != implied => {
            return Err(Error::Input(format!(
                "--sparsity {s} with --mask {pattern}: an N:M mask keeps N of every M, sparsity {implied}; give that or leave --sparsity out"
            )));
        }
        (Some(s), _) => s,
    };
    check_sparsity("--sparsity", sparsity)?;
    let region = parse_grid("--region", &g.region)?;
    let split = g
        .split
        .as_deref()
        .map(|s| parse_grid("--split", s))
        .transpose()?;
    let form = match g.form {
        FormArg::Forward => GemmForm::Forward,
        FormArg::Dgrad => GemmForm::Dgrad,
        FormArg::Wgrad => GemmForm::Wgrad,
    };
    Ok(GemmConfig {
        t: g.t,
        k: g.k,
        n: g.n,
        sparsity,
        pattern,
        region,
        split,
        seed,
        form,
        values: g.values,
    })
}

/// FLOPs of the GEMM without zero skipping.
fn gemm_flops(g: &GemmArgs) -> u128 {
    2 * g.t as u128 * g.k as u128 * g.n as u128
}

fn gemm_shape(
    shape: &mut serde_json::Map<String, serde_json::Value>,
    cfg: &GemmConfig,
    (ck, cn): (u32, u32),
    nonzeros: u64,
) {
    for (key, value) in [
        ("t", cfg.t.into()),
        ("k", cfg.k.into()),
        ("n", cfg.n.into()),
        ("sparsity", cfg.sparsity.into()),
        ("mask", cfg.pattern.to_string().into()),
        ("form", serde_json::to_value(cfg.form).unwrap_or_default()),
        (
            "region",
            format!("{}x{}", cfg.region.0, cfg.region.1).into(),
        ),
        ("split", format!("{ck}x{cn}").into()),
        ("nonzeros", nonzeros.into()),
    ] {
        shape.insert(key.into(), value);
    }
}

/// One product `(t, k, n)`: `t × k` times `k × n`.
type ProductShape = (usize, usize, usize);

/// The product shapes the flags ask for, one after the other, and the region.
fn attention_config(a: &AttentionArgs) -> Result<(Vec<ProductShape>, (u32, u32))> {
    let region = parse_grid("--region", &a.region)?;
    for (flag, v) in [
        ("--seq", a.seq as u64),
        ("--head-dim", a.head_dim as u64),
        ("--products", a.products),
    ] {
        if v == 0 {
            return Err(Error::Input(format!("{flag} 0: give at least 1")));
        }
    }
    // Keep every count (multiply-adds of all products) well inside u64.
    let multiply_adds = (a.seq as u128)
        .saturating_mul(a.seq as u128)
        .saturating_mul(a.head_dim as u128)
        .saturating_mul(a.products as u128);
    if multiply_adds > 1 << 50 {
        return Err(Error::Input(format!(
            "--seq {} --head-dim {} --products {}: {multiply_adds} multiply-adds per product \
             shape, more than the 2^50 one attention kernel may have",
            a.seq, a.head_dim, a.products
        )));
    }
    let ops = match a.op {
        Some(AttentionOpArg::Scores) => vec![AttentionOp::Scores],
        Some(AttentionOpArg::Values) => vec![AttentionOp::Values],
        None => vec![AttentionOp::Scores, AttentionOp::Values],
    };
    let dgrad = a.pass == AttentionPassArg::Dgrad;
    let shapes = ops
        .into_iter()
        .flat_map(|op| attention_products(op, dgrad, a.seq as u64, a.head_dim as u64))
        .map(|(t, k, n)| (t as usize, k as usize, n as usize))
        .collect();
    Ok((shapes, region))
}

/// FLOPs of every product (attention skips nothing: the whole square, as the graph counts).
fn attention_flops(a: &AttentionArgs, shapes: &[(usize, usize, usize)]) -> u128 {
    shapes
        .iter()
        .map(|&(t, k, n)| 2 * a.products as u128 * t as u128 * k as u128 * n as u128)
        .sum()
}

fn attention_shape(
    shape: &mut serde_json::Map<String, serde_json::Value>,
    a: &AttentionArgs,
    layouts: &[AttentionLayout],
) {
    let each = |f: &dyn Fn(&AttentionLayout) -> String| {
        layouts.iter().map(f).collect::<Vec<_>>().join(", ")
    };
    let pass = match a.pass {
        AttentionPassArg::Fwd => "fwd",
        AttentionPassArg::Dgrad => "dgrad",
    };
    let op = match a.op {
        Some(AttentionOpArg::Scores) => "scores",
        Some(AttentionOpArg::Values) => "values",
        None => "scores, values",
    };
    for (key, value) in [
        ("seq", a.seq.into()),
        ("head_dim", a.head_dim.into()),
        ("products", a.products.into()),
        ("op", op.into()),
        ("kernel_pass", pass.into()),
        ("region", a.region.replace('X', "x").into()),
        (
            "gemms",
            each(&|l| format!("{}x{}x{}", l.t, l.k, l.n)).into(),
        ),
        (
            "tiles",
            each(&|l| format!("{}x{}", l.down, l.across)).into(),
        ),
        (
            "tile",
            each(&|l| format!("{}x{}", l.tile_rows, l.tile_cols)).into(),
        ),
        ("split", each(&|l| format!("{}x{}", l.ck, l.cn)).into()),
    ] {
        shape.insert(key.into(), value);
    }
}

/// An element-wise kernel's cost model (`kernel NAME --fidelity model`): its name and figures.
fn elementwise_model(
    kernel: &KernelCommand,
    fabric: &FabricSpec,
    shape: &mut serde_json::Map<String, serde_json::Value>,
    start: Instant,
) -> Result<(&'static str, KernelFigures)> {
    let (name, cfg) = elementwise_of(kernel, fabric)?;
    let sram_bytes = check_elementwise(fabric, &cfg)?;
    let problem = ElementwiseProblem::of_config(&cfg);
    let (rows, cols) = (u64::from(cfg.region.0), u64::from(cfg.region.1));
    let cost = elementwise_cost(fabric, &problem, rows, cols);
    elementwise_shape(shape, kernel, &cfg);
    let flops = problem.flops_before + problem.flops_after;
    let host_seconds = start.elapsed().as_secs_f64();
    let figures = KernelFigures {
        flops_executed: flops,
        sram_bytes_max: sram_bytes,
        ..KernelFigures::from_gemm_cost(fabric, &cost, (flops, 0), host_seconds)
    };
    Ok((name, figures))
}

/// The element-wise kernel the flags ask for: its name and its engine configuration (the
/// op's profile from `graph::elementwise_profile`, activations of `pe.operand_bytes`).
fn elementwise_of(
    kernel: &KernelCommand,
    fabric: &FabricSpec,
) -> Result<(&'static str, ElementwiseConfig)> {
    let (name, kind, e) = match kernel {
        KernelCommand::Layernorm(e) => ("layernorm", OpKind::LayerNorm, e),
        KernelCommand::Softmax(e) => ("softmax", OpKind::Softmax, e),
        KernelCommand::Gelu(e) => ("gelu", OpKind::Gelu, e),
        KernelCommand::Residual(e) => ("residual", OpKind::Residual, e),
        KernelCommand::Embedding(e) => ("embedding", OpKind::Embedding, e),
        KernelCommand::Loss(e) => ("loss", OpKind::Loss, e),
        _ => {
            return Err(Error::Simulation(
                "an element-wise kernel was asked of a GEMM or a collective".into(),
            ))
        }
    };
    let pass = match (e.pass, kind) {
        (PassArg::Forward, _) => Pass::Forward,
        (PassArg::Backward, OpKind::Embedding) => Pass::Wgrad,
        (PassArg::Backward, _) => Pass::Dgrad,
    };
    let profile = elementwise_profile(kind, pass)
        .ok_or_else(|| Error::Simulation(format!("{name} has no element-wise profile")))?;
    if e.rows == 0 || e.cols == 0 {
        return Err(Error::Input(format!(
            "--rows {} --cols {}: give at least one of each",
            e.rows, e.cols
        )));
    }
    let region = parse_grid("--region", &e.region)?;
    check_shape(fabric, (e.rows, e.cols), region)?;
    let mut cfg = elementwise_config(fabric, &profile, (e.rows, e.cols), region);
    if let Some(algo) = e.algo {
        if !cfg.reduces() {
            return Err(Error::Input(format!(
                "--algo: {name} --pass {} on --region {}x{} all-reduces nothing along its rows",
                if e.pass == PassArg::Forward {
                    "forward"
                } else {
                    "backward"
                },
                region.0,
                region.1
            )));
        }
        cfg.algo = match algo {
            AlgoArg::Chain => Algo::Chain,
            AlgoArg::Tree => Algo::Tree,
            AlgoArg::Ring => Algo::Ring,
        };
    }
    check_elementwise(fabric, &cfg)?;
    Ok((name, cfg))
}

fn elementwise_shape(
    shape: &mut serde_json::Map<String, serde_json::Value>,
    kernel: &KernelCommand,
    cfg: &ElementwiseConfig,
) {
    let pass = match kernel {
        KernelCommand::Layernorm(e)
        | KernelCommand::Softmax(e)
        | KernelCommand::Gelu(e)
        | KernelCommand::Residual(e)
        | KernelCommand::Embedding(e)
        | KernelCommand::Loss(e) => e.pass,
        _ => PassArg::Forward,
    };
    let pass = match pass {
        PassArg::Forward => "forward",
        PassArg::Backward => "backward",
    };
    let algo = if cfg.reduces() {
        serde_json::to_value(cfg.algo).unwrap_or_default()
    } else {
        serde_json::Value::Null
    };
    for (key, value) in [
        ("rows", cfg.rows.into()),
        ("cols", cfg.cols.into()),
        ("kernel_pass", pass.into()),
        (
            "region",
            format!("{}x{}", cfg.region.0, cfg.region.1).into(),
        ),
        ("reduced_values_per_row", cfg.reduced_values_per_row.into()),
        ("algo", algo),
    ] {
        shape.insert(key.into(), value);
    }
}

fn collective_of(kernel: &KernelCommand) -> Collective {
    match kernel {
        KernelCommand::Reduce(_) => Collective::Reduce,
        KernelCommand::Allreduce(_) => Collective::Allreduce,
        _ => Collective::Broadcast,
    }
}

fn collective_shape(
    shape: &mut serde_json::Map<String, serde_json::Value>,
    cfg: &CollectiveConfig,
) {
    shape.insert("pes".into(), (cfg.rows as u64 * cfg.cols as u64).into());
    shape.insert("region".into(), format!("{}x{}", cfg.rows, cfg.cols).into());
    shape.insert("wavelets".into(), cfg.wavelets.into());
    shape.insert(
        "algo".into(),
        serde_json::to_value(cfg.algo).unwrap_or_default(),
    );
}

/// The collective the flags ask for; a line (`--pes`) longer than the fabric's user region
/// is refused naming `--pes`, before the region it makes is checked as a region.
fn collective_config(
    collective: Collective,
    c: &CollectiveArgs,
    fabric: &FabricSpec,
) -> Result<CollectiveConfig> {
    let (rows, cols) = match (&c.region, c.pes) {
        (Some(_), Some(_)) => {
            return Err(Error::Input(
                "give --pes P (a row) or --region RxC, not both".into(),
            ));
        }
        (Some(region), None) => {
            if collective != Collective::Broadcast {
                return Err(Error::Input(format!(
                    "--region: {} runs along a row; give --pes P",
                    collective.name()
                )));
            }
            parse_grid("--region", region)?
        }
        (None, Some(0)) | (None, None) => {
            return Err(Error::Input(
                "--pes P: give the number of PEs, at least 1".into(),
            ));
        }
        (None, Some(p)) if c.axis == AxisArg::Column => {
            check_line(fabric, "column", p, fabric.geometry.region_height_pes)?;
            (p, 1)
        }
        (None, Some(p)) => {
            check_line(fabric, "row", p, fabric.geometry.region_width_pes)?;
            (1, p)
        }
    };
    if c.wavelets == 0 {
        return Err(Error::Input(
            "--wavelets 0: a collective moves at least one wavelet".into(),
        ));
    }
    let algo = match c.algo {
        AlgoArg::Chain => Algo::Chain,
        AlgoArg::Tree => Algo::Tree,
        AlgoArg::Ring => Algo::Ring,
    };
    Ok(CollectiveConfig {
        collective,
        rows,
        cols,
        wavelets: c.wavelets,
        algo,
        values: false,
        seed: 0,
    })
}

/// Refuses `--pes` beyond a row or column (`along`) of `limit` PEs of the fabric's user region.
fn check_line(fabric: &FabricSpec, along: &str, pes: u32, limit: u64) -> Result<()> {
    match u64::from(pes).checked_sub(limit) {
        Some(over) if over > 0 => Err(Error::Input(format!(
            "--pes {pes}: a {along} of fabric {}'s user region has {limit} PEs, {over} too many",
            fabric.name
        ))),
        _ => Ok(()),
    }
}

impl KernelReport {
    /// The document of `kernel` (its name and fidelity) run on `fabric`.
    fn new(
        common: &Common,
        fabric: &FabricSpec,
        kernel: (&str, Fidelity),
        shape: serde_json::Map<String, serde_json::Value>,
        figures: KernelFigures,
        values: Option<ValuesCheck>,
    ) -> KernelReport {
        KernelReport {
            schema_version: crate::report::SCHEMA_VERSION,
            version: crate::VERSION,
            seed: common.seed(),
            fabric: fabric.name.clone(),
            kernel: kernel.0.into(),
            fidelity: kernel.1,
            shape,
            flops_dense_exact: ExactCount(figures.flops_dense),
            flops_executed_exact: ExactCount(figures.flops_executed),
            figures,
            values,
        }
    }

    pub fn render_table(&self) -> String {
        let f = &self.figures;
        let mut table = Table::new(["figure", "value"]);
        let mut row = |k: &str, v: String| table.row([k.to_string(), v]);
        let how = match self.fidelity {
            Fidelity::Wavelet => "wavelet-level engine",
            Fidelity::Model => "cost model",
        };
        row(
            "kernel",
            format!("{} on {} ({how})", self.kernel, self.fabric),
        );
        // A shape field without a value (no row all-reduce: no `algo`) gets no row.
        for (k, v) in self.shape.iter().filter(|(_, v)| !v.is_null()) {
            row(k, v.to_string().trim_matches('"').to_string());
        }
        row("cycles", thousands(f.cycles as u128));
        row("seconds", format!("{:.3e}", f.seconds));
        if f.flops_dense > 0 || f.flops_executed > 0 {
            // A collective moves data and computes no FLOPs worth a row.
            row(
                "FLOPs dense / executed",
                format!(
                    "{} / {}",
                    si(f.flops_dense as f64, "FLOP"),
                    si(f.flops_executed as f64, "FLOP")
                ),
            );
        }
        if let (Some(sent), Some(received)) = (f.wavelets_sent, f.wavelets_received) {
            row(
                "wavelets sent / received",
                format!(
                    "{} / {}",
                    thousands(sent as u128),
                    thousands(received as u128)
                ),
            );
        }
        if let Some(hops) = f.wavelet_hops {
            row("wavelet hops", thousands(hops as u128));
        }
        if let (Some(mean), Some(max)) = (f.pe_utilization_mean, f.pe_utilization_max) {
            row(
                "PE utilization mean / max",
                format!("{:.1}% / {:.1}%", 100.0 * mean, 100.0 * max),
            );
        }
        if let Some(m) = &f.model_breakdown {
            let share = |c: u64| 100.0 * c as f64 / f.cycles.max(1) as f64;
            row(
                "compute / imbalance",
                format!(
                    "{:.1}% / {:.1}%",
                    share(m.compute_cycles),
                    share(m.imbalance_cycles)
                ),
            );
            row(
                "reduction / overhead",
                format!(
                    "{:.1}% / {:.1}%",
                    share(m.reduction_cycles),
                    share(m.overhead_cycles)
                ),
            );
        }
        row("SRAM bytes max", thousands(f.sram_bytes_max as u128));
        if let Some(v) = &self.values {
            row(
                "values: max |engine − direct|",
                format!(
                    "{:.2e} of values up to {:.2} ({} elements)",
                    v.max_abs_error,
                    v.max_abs_value,
                    thousands(v.elements as u128)
                ),
            );
            row(
                "values: error / f32 rounding bound",
                format!(
                    "{:.3} max: {}",
                    v.max_error_to_bound,
                    if v.within_f32_rounding {
                        "the product is right"
                    } else {
                        "WRONG, beyond rounding"
                    }
                ),
            );
        }
        row("host seconds", format!("{:.3}", f.host_seconds));
        if let Some(rate) = f.pe_cycles_per_host_second {
            row("PE-cycles / host s", si(rate, ""));
        }
        if let Some(rate) = f.wavelet_hops_per_host_second {
            row("wavelet hops / host s", si(rate, ""));
        }
        table.render()
    }
}
