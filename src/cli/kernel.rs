//! `wafersim kernel`: one kernel on the wavelet-level engine, and its figures.

use std::time::Instant;

use clap::{Args as ClapArgs, Subcommand, ValueEnum};
use serde::Serialize;

use super::Common;
use crate::engine::kernels::collective::{run_collective, Algo, Collective, CollectiveConfig};
use crate::engine::kernels::gemm::{run_gemm, GemmConfig, GemmForm};
use crate::engine::kernels::KernelFigures;
use crate::error::{Error, Result};
use crate::report::{si, thousands, Table};
use crate::spec::{check_sparsity, load_fabric};

#[derive(Debug, ClapArgs)]
pub struct KernelArgs {
    #[command(subcommand)]
    pub kernel: KernelCommand,
    /// Fabric: a built-in name (wse2, wse3, mini) or a TOML file.
    #[arg(long, default_value = "wse2", global = true)]
    pub fabric: String,
    /// Save the per-PE counters to this file (postcard, behind a versioned header).
    #[arg(long, global = true)]
    pub counters: Option<std::path::PathBuf>,
    /// Draw the per-PE busy fraction as a heatmap here (.png or .svg).
    #[arg(long, global = true)]
    pub heatmap: Option<std::path::PathBuf>,
    /// Write a Chrome trace-event timeline here (opens in Perfetto): one track per band of PE
    /// rows, the band's mean busy time by kind.
    #[arg(long, global = true)]
    pub trace: Option<std::path::PathBuf>,
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
    /// Weight sparsity in [0, 1); 0 streams dense (two values per wavelet).
    #[arg(long, default_value_t = 0.0)]
    pub sparsity: f64,
    /// Region ROWSxCOLS of PEs.
    #[arg(long, default_value = "32x32")]
    pub region: String,
    /// Column split C_kxC_n (K-groups x N-groups); default: the fewest K-groups that fit SRAM.
    #[arg(long)]
    pub split: Option<String>,
    /// Which product: forward Y = X·W, dgrad dX = dY·Wᵀ, or wgrad dW = Xᵀ·dY at W's non-zeros.
    #[arg(long, value_enum, default_value_t = FormArg::Forward)]
    pub form: FormArg,
    /// Carry real values through the program (slower; for checking).
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
#[derive(Debug, Serialize)]
pub struct KernelReport {
    pub version: &'static str,
    pub seed: u64,
    pub fabric: String,
    pub kernel: String,
    #[serde(flatten)]
    pub shape: serde_json::Map<String, serde_json::Value>,
    #[serde(flatten)]
    pub figures: KernelFigures,
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
    let fabric = load_fabric(&args.fabric)?;
    let mut shape = serde_json::Map::new();
    let start = Instant::now();
    let (name, output, flops_dense) = match &args.kernel {
        KernelCommand::Gemm(g) => {
            check_sparsity("--sparsity", g.sparsity)?;
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
            let cfg = GemmConfig {
                t: g.t,
                k: g.k,
                n: g.n,
                sparsity: g.sparsity,
                region,
                split,
                seed: common.seed,
                form,
                values: g.values,
            };
            let run = run_gemm(&fabric, &cfg)?;
            for (key, value) in [
                ("t", g.t.into()),
                ("k", g.k.into()),
                ("n", g.n.into()),
                ("sparsity", g.sparsity.into()),
                ("form", serde_json::to_value(form).unwrap_or_default()),
                ("region", format!("{}x{}", region.0, region.1).into()),
                ("split", format!("{}x{}", run.plan.ck, run.plan.cn).into()),
                ("nonzeros", run.plan.mask.nonzeros().into()),
            ] {
                shape.insert(key.into(), value);
            }
            let flops = 2 * (g.t * g.k * g.n) as u128;
            ("gemm", run.output, flops)
        }
        KernelCommand::Reduce(c) | KernelCommand::Allreduce(c) | KernelCommand::Broadcast(c) => {
            let collective = match &args.kernel {
                KernelCommand::Reduce(_) => Collective::Reduce,
                KernelCommand::Allreduce(_) => Collective::Allreduce,
                _ => Collective::Broadcast,
            };
            let cfg = collective_config(collective, c)?;
            let output = run_collective(&fabric, &cfg)?.output;
            shape.insert("pes".into(), (cfg.rows as u64 * cfg.cols as u64).into());
            shape.insert("region".into(), format!("{}x{}", cfg.rows, cfg.cols).into());
            shape.insert("wavelets".into(), cfg.wavelets.into());
            shape.insert(
                "algo".into(),
                serde_json::to_value(cfg.algo).unwrap_or_default(),
            );
            (collective.name(), output, 0)
        }
    };
    let host_seconds = start.elapsed().as_secs_f64();
    if let Some(path) = &args.counters {
        crate::report::write_atomic(path, &output.counters.to_bytes()?)?;
    }
    let summary: Vec<String> = [
        "t", "k", "n", "sparsity", "region", "pes", "wavelets", "algo",
    ]
    .iter()
    .filter_map(|key| {
        shape
            .get(*key)
            .map(|v| format!("{key} {}", v.to_string().trim_matches('"')))
    })
    .collect();
    let title = format!("{name} ({}) on {}", summary.join(", "), fabric.name);
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
    if let Some(path) = &args.trace {
        let trace = kernel_trace(&output.counters, fabric.clock.clock_hz, &title);
        let text = serde_json::to_string(&trace)
            .map_err(|e| Error::Simulation(format!("cannot encode the trace: {e}")))?;
        crate::report::write_atomic(path, text.as_bytes())?;
    }
    Ok(KernelReport {
        version: crate::VERSION,
        seed: common.seed,
        fabric: fabric.name.clone(),
        kernel: name.into(),
        shape,
        figures: KernelFigures::new(&fabric, &output, flops_dense, host_seconds),
    })
}

/// A kernel's timeline, bounded: at most 32 tracks, each a band of PE rows, each showing the
/// band's mean busy cycles by kind (FMAC, overhead, reduction) laid end to end.
fn kernel_trace(
    counters: &crate::engine::MeshCounters,
    clock_hz: u64,
    title: &str,
) -> serde_json::Value {
    let us = |cycles: f64| cycles * 1e6 / clock_hz as f64;
    let rows = counters.rows.max(1) as usize;
    let cols = counters.cols.max(1) as usize;
    let bands = rows.min(32);
    let mut events = vec![
        serde_json::json!({"name": "process_name", "ph": "M", "pid": 1, "args": {"name": title}}),
    ];
    for band in 0..bands {
        let (first, last) = (band * rows / bands, (band + 1) * rows / bands);
        let pes = &counters.pes[first * cols..last * cols];
        let mean = |f: &dyn Fn(&crate::engine::PeCounters) -> u64| {
            pes.iter().map(f).sum::<u64>() as f64 / pes.len().max(1) as f64
        };
        let tid = band as u64 + 1;
        events.push(
            serde_json::json!({"name": "thread_name", "ph": "M", "pid": 1, "tid": tid,
            "args": {"name": format!("PE rows {first}-{}", last - 1)}}),
        );
        let mut at = 0.0;
        for (kind, cycles) in [
            ("fmac", mean(&|c| c.fmac_cycles)),
            ("overhead", mean(&|c| c.overhead_cycles)),
            ("reduction", mean(&|c| c.reduction_cycles)),
        ] {
            if cycles > 0.0 {
                events.push(
                    serde_json::json!({"name": kind, "cat": "busy", "ph": "X", "pid": 1, "tid": tid,
                    "ts": us(at), "dur": us(cycles), "args": {"mean_cycles_per_pe": cycles}}),
                );
                at += cycles;
            }
        }
    }
    serde_json::json!({"traceEvents": events, "displayTimeUnit": "ns"})
}

fn collective_config(collective: Collective, c: &CollectiveArgs) -> Result<CollectiveConfig> {
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
        (None, Some(p)) if c.axis == AxisArg::Column => (p, 1),
        (None, Some(p)) => (1, p),
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

impl KernelReport {
    pub fn render_table(&self) -> String {
        let f = &self.figures;
        let mut table = Table::new(["figure", "value"]);
        let mut row = |k: &str, v: String| table.row([k.to_string(), v]);
        row("kernel", format!("{} on {}", self.kernel, self.fabric));
        for (k, v) in &self.shape {
            row(k, v.to_string().trim_matches('"').to_string());
        }
        row("cycles", thousands(f.cycles as u128));
        row("seconds", format!("{:.3e}", f.seconds));
        row(
            "FLOPs dense / executed",
            format!(
                "{} / {}",
                si(f.flops_dense as f64, "FLOP"),
                si(f.flops_executed as f64, "FLOP")
            ),
        );
        row(
            "wavelets sent / received",
            format!(
                "{} / {}",
                thousands(f.wavelets_sent as u128),
                thousands(f.wavelets_received as u128)
            ),
        );
        row("wavelet hops", thousands(f.wavelet_hops as u128));
        row(
            "PE utilization mean / max",
            format!(
                "{:.1}% / {:.1}%",
                100.0 * f.pe_utilization_mean,
                100.0 * f.pe_utilization_max
            ),
        );
        row("SRAM bytes max", thousands(f.sram_bytes_max as u128));
        row("host seconds", format!("{:.3}", f.host_seconds));
        row("PE-cycles / host s", si(f.pe_cycles_per_host_second, ""));
        row(
            "wavelet hops / host s",
            si(f.wavelet_hops_per_host_second, ""),
        );
        table.render()
    }
}
