//! Per-PE figures of a step at full fabric resolution: busy cycles and SRAM bytes, for heatmaps
//! and `counters.npz`.
//!
//! A GEMM keeps the PEs of its tile busy (rows × c_k·c_n, from the region's top-left corner); a
//! sparse one unevenly: each PE column's work follows its non-zero count, drawn here from the
//! Gaussian limit of the random mask's binomial with a seeded ChaCha8 stream per op, so the same
//! seed gives the same picture. Element-wise ops and attention spread evenly over the region.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::StepResult;
use crate::graph::OpKind;
use crate::map::saved_bytes_per_token;
use crate::random::Stream;
use crate::spec::{FabricSpec, ModelSpec};

/// A value per PE of the fabric's user region, row-major (`height` rows of `width` columns).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeGrid {
    pub width: u64,
    pub height: u64,
    pub values: Vec<u64>,
}

impl PeGrid {
    pub fn value(&self, row: u64, col: u64) -> u64 {
        self.values[(row * self.width + col) as usize]
    }

    pub fn max(&self) -> u64 {
        self.values.iter().copied().max().unwrap_or(0)
    }

    pub fn mean(&self) -> f64 {
        self.values.iter().map(|&v| v as f64).sum::<f64>() / self.values.len().max(1) as f64
    }
}

/// Bytes per PE of one run's per-PE figures kept and written: busy cycles and SRAM bytes as
/// `u64` (16), the same in `counters.npz` (16, built in memory), one grid copied while it is
/// written (8 of one run's 16: at most one copy for all runs), and the heatmap's `f64` (8).
const GRID_BYTES_PER_PE: u64 = 44;

/// The most bytes the per-PE figures of a command's runs may take: far above a full wafer's
/// (745,500 PEs, 3 runs: 98 MB), far below what would abort the process on allocation.
pub const GRID_BYTES_MAX: u64 = 4 << 30;

/// Refuses, before any work, a fabric whose per-PE figures for `runs` runs would take more than
/// [`GRID_BYTES_MAX`]; the error names the fabric (`origin`) and its region keys.
pub fn check_grid_memory(fabric: &FabricSpec, origin: &str, runs: u64) -> crate::Result<()> {
    let g = &fabric.geometry;
    let bytes = (g.region_width_pes as u128 * g.region_height_pes as u128)
        * (runs as u128 * GRID_BYTES_PER_PE as u128);
    if bytes <= GRID_BYTES_MAX as u128 {
        return Ok(());
    }
    let pes_max = GRID_BYTES_MAX / (runs.max(1) * GRID_BYTES_PER_PE);
    Err(crate::Error::Input(format!(
        "{origin}: geometry.region_width_pes x geometry.region_height_pes = {} x {} PEs: the \
         per-PE figures of {runs} run(s) would take {:.1} GiB, more than the {} GiB allowed; \
         give a region of at most {pes_max} PEs",
        g.region_width_pes,
        g.region_height_pes,
        bytes as f64 / (1u64 << 30) as f64,
        GRID_BYTES_MAX >> 30
    )))
}

/// Busy cycles of every PE over the whole step (all microbatches), at most the step's cycles.
pub fn busy_grid(step: &StepResult, fabric: &FabricSpec, seed: u64) -> PeGrid {
    let width = fabric.geometry.region_width_pes;
    let height = fabric.geometry.region_height_pes;
    let region = (width * height) as f64;
    let mut uniform = 0.0f64;
    // Per number of rows used, the busy cycles each column of those rows gets.
    let mut by_rows: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for group in &step.plan.groups {
        for op in &group.ops {
            let total = op.cost.busy_cycles_mean as f64 * region * group.repeat as f64;
            let spread = matches!(op.kind, OpKind::AttnScores | OpKind::AttnValues);
            match op.tile.filter(|_| !spread) {
                Some(tile) => {
                    let per_pe = total / (tile.rows * tile.columns()) as f64;
                    let columns = by_rows
                        .entry(tile.rows)
                        .or_insert_with(|| vec![0.0; width as usize]);
                    let mut stream = Stream::new(seed ^ fnv1a(&op.name));
                    for column in columns.iter_mut().take(tile.columns() as usize) {
                        let factor = 1.0 + op.column_relative_sd * standard_normal(&mut stream);
                        *column += per_pe * factor.max(0.0);
                    }
                }
                None => uniform += total / region,
            }
        }
    }
    let mut values = vec![0u64; (width * height) as usize];
    for row in 0..height {
        for col in 0..width {
            let tiles: f64 = by_rows.range(row + 1..).map(|(_, c)| c[col as usize]).sum();
            // A sampled column's spread can exceed what the step's cycles allow for; no PE is
            // busy longer than the step.
            values[(row * width + col) as usize] =
                ((uniform + tiles).round() as u64).min(step.cycles);
        }
    }
    PeGrid {
        width,
        height,
        values,
    }
}

/// SRAM bytes of every PE at the step's peak: code, the activations it keeps for backward (rows
/// and columns that get the rounding up keep a token or a byte more), and the largest op's tile.
pub fn sram_grid(step: &StepResult, model: &ModelSpec, fabric: &FabricSpec) -> PeGrid {
    let width = fabric.geometry.region_width_pes;
    let height = fabric.geometry.region_height_pes;
    let plan = &step.plan;
    let tokens = plan.microbatch_sequences * plan.config.seq_len;
    let per_token =
        saved_bytes_per_token(&model.architecture, plan.config.seq_len, plan.activations);
    let base = plan.sram.code_bytes + plan.sram.working_bytes_max;
    let mut values = Vec::with_capacity((width * height) as usize);
    for row in 0..height {
        let row_tokens = tokens / height + u64::from(row < tokens % height);
        for col in 0..width {
            let col_bytes = per_token / width + u64::from(col < per_token % width);
            values.push(base + row_tokens * col_bytes);
        }
    }
    PeGrid {
        width,
        height,
        values,
    }
}

/// A stable 64-bit hash of a name (FNV-1a), so per-op random streams do not depend on the
/// standard library's hasher.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// One draw of N(0, 1) by Box–Muller.
fn standard_normal(stream: &mut Stream) -> f64 {
    let u1 = stream.unit().max(f64::MIN_POSITIVE);
    let u2 = stream.unit();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}
