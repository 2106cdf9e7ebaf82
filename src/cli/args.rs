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
    /// Seed for every random choice (masks); the same seed gives the same report.
    #[arg(long, global = true, default_value_t = 1)]
    pub seed: u64,
    /// No tables or progress; errors still go to stderr.
    #[arg(long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The theoretical side: FLOPs per phase, per token, per step and in total, and the speedup
    /// the FLOP count promises against the dense run.
    Flops(FlopsArgs),
    /// A model's parameter counts and recipe, or a fabric's PEs, peak FLOP/s and SRAM.
    Inspect(InspectArgs),
    /// One kernel (gemm, reduce, allreduce, broadcast) on the wavelet-level engine.
    Kernel(super::kernel::KernelArgs),
}

#[derive(Debug, ClapArgs)]
pub struct FlopsArgs {
    /// Model: a built-in name or a TOML file.
    #[arg(default_value = "mediswift-xl")]
    pub model: String,
    /// Fabric whose peak converts FLOPs to seconds at peak.
    #[arg(long, default_value = "wse2")]
    pub fabric: String,
    /// Pre-training sparsities, comma-separated, each in [0, 1); default: the recipe's.
    #[arg(long, value_delimiter = ',', value_parser = parse_sparsity)]
    pub sparsity: Option<Vec<f64>>,
}

#[derive(Debug, ClapArgs)]
pub struct InspectArgs {
    /// A built-in model or fabric name, or a TOML file of either.
    pub target: String,
}

fn parse_sparsity(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a number; a sparsity is in [0, 1), e.g. 0.75"))?;
    check_sparsity("--sparsity", value).map_err(|e| e.to_string())
}
