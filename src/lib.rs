//! # wafersim
//!
//! A cycle-approximate simulator of a Cerebras-style wafer-scale engine: a 2-D mesh of processing
//! elements (PEs), each with its own SRAM and router. It maps the layers of a GPT model onto the
//! fabric, skips zero weights the dataflow way, and reports simulated wall-clock against what the
//! FLOP count promised.
//!
//! The pipeline, one typed value per stage (ARCHITECTURE.md has the code map):
//!
//! ```text
//! fabric/*.toml ─┐
//! models/*.toml ─┴─► spec ──────► graph ─────► map ──────► cost ─────────► schedule ────► report
//!                    FabricSpec   StepGraph    Plan        KernelCost,     StepResult,    tables, JSON, CSV,
//!                    ModelSpec    (op DAG,     (tiles,     TimelineSpan    RunResult      heatmaps, trace,
//!                    (+ Recipe)   exact FLOPs) SRAM, I/O)                                 counters
//!                                                          engine (wavelet level) ◄── validate checks cost against it
//! ```
//!
//! ```
//! use wafersim::{graph::{StepConfig, StepGraph}, spec::{load_model, Phase}};
//! let model = load_model("gpt-tiny").unwrap();
//! let step = StepGraph::build(&model, StepConfig::for_phase(&model, Phase::Pretrain, 0.75));
//! let flops = step.flops();
//! assert!(flops.flops_executed < flops.flops_dense);
//! ```
//!
//! ## Determinism
//! `graph`, `sparsity`, `engine`, `cost`, `map`, `schedule` and `validate` are pure: no file
//! I/O, no clocks, no global state. `spec` reads the files it is given, `report` and `sweep`
//! write results, `bench` reads suites and reads and writes baselines, `cli` does both. Counts are integers (FLOPs in `u128`, so a whole recipe's
//! total never overflows); floats appear only in ratios computed for reports. The same inputs
//! and seed give byte-identical result files, whatever the thread count (host timings are kept
//! out of them). Random choices (masks, per-column draws for heatmaps) use `random::Stream`,
//! ChaCha8 streams seeded from `--seed` whose draws are defined in this crate, so no dependency
//! upgrade moves a figure; the full-wafer cost models draw none.

pub mod api;
pub mod bench;
pub mod cli;
pub mod engine;
pub mod error;
pub mod graph;
pub mod masks;
pub mod random;
pub mod report;
pub mod sparsity;
pub mod spec;

pub use error::{Error, Result};

/// The version every report carries.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The version of the timing model: what the simulated figures of a given model, fabric and
/// seed are. Sweep points are keyed by it (with the model and fabric contents), so a point
/// simulated by another timing model is never reused. **Bump it in every commit that moves a
/// simulated figure on purpose** — whenever a re-blessed golden file under `traces/golden/`
/// shows a cycle count, time, speedup or other simulated figure changed — and never otherwise
/// (a faster simulator, or a report field added or renamed, leaves it as it is).
pub const TIMING_MODEL_VERSION: u32 = 10;
pub mod cost;
pub mod map;
pub mod schedule;
pub mod sweep;
pub mod validate;
