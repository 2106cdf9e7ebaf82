//! Per-PE figures of a step at full fabric resolution: busy cycles and SRAM bytes, for heatmaps
//! and `counters.npz`.
//!
//! A GEMM keeps the PEs of its tile busy (rows × c_k·c_n, from the region's top-left corner); a
//! sparse one unevenly: each PE column's work follows its non-zero count — a mask read from a
//! file's own counts, as the cost model priced them; a drawn mask's drawn here from the Gaussian
//! limit of the random mask's binomial with a seeded ChaCha8 stream per op, so the same seed
//! gives the same picture. Element-wise ops and attention spread evenly over the region.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::StepResult;
use crate::cost::GemmTile;
use crate::graph::OpKind;
use crate::map::{saved_bytes_per_token, OpPlan};
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
    busy_grid_of(step, fabric, seed, |_| true, step.cycles)
}

/// One op's busy cycles on every PE over the whole step (all its runs: microbatches, layers of
/// the same name are separate ops), and the cycles it takes in all, or `None` if the step has
/// no op of that name.
pub fn op_busy_grid(
    step: &StepResult,
    fabric: &FabricSpec,
    seed: u64,
    name: &str,
) -> Option<(PeGrid, u64)> {
    let cycles: u64 = step
        .plan
        .groups
        .iter()
        .flat_map(|g| g.ops.iter().map(move |op| (g.repeat, op)))
        .filter(|(_, op)| op.name == name)
        .map(|(repeat, op)| op.cost.cycles * repeat)
        .sum();
    let found = step
        .plan
        .groups
        .iter()
        .flat_map(|g| &g.ops)
        .any(|op| op.name == name);
    found.then(|| {
        (
            busy_grid_of(step, fabric, seed, |op| op.name == name, cycles),
            cycles,
        )
    })
}

/// Busy cycles of every PE over the ops `counted` picks, at most `cycles_max`. A GEMM's tile
/// columns share its work by the mask's own per-PE counts where the plan has them
/// ([`OpPlan::column_work`]), else by a seeded draw of their spread.
fn busy_grid_of(
    step: &StepResult,
    fabric: &FabricSpec,
    seed: u64,
    counted: impl Fn(&OpPlan) -> bool,
    cycles_max: u64,
) -> PeGrid {
    let width = fabric.geometry.region_width_pes;
    let height = fabric.geometry.region_height_pes;
    let region = (width * height) as f64;
    let mut uniform = 0.0f64;
    // Per number of rows used, the busy cycles each column of those rows gets.
    let mut by_rows: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for group in &step.plan.groups {
        for op in group.ops.iter().filter(|op| counted(op)) {
            let total = op.cost.busy_cycles_mean as f64 * region * group.repeat as f64;
            match gemm_tile(op) {
                Some(tile) => {
                    let per_pe = total / (tile.rows * tile.columns()) as f64;
                    let columns = by_rows
                        .entry(tile.rows)
                        .or_insert_with(|| vec![0.0; width as usize]);
                    let used = columns.iter_mut().take(tile.columns() as usize);
                    match &op.column_work {
                        Some(work) => {
                            for (column, share) in used.zip(work.iter()) {
                                *column += per_pe * share;
                            }
                        }
                        None => {
                            let mut stream = Stream::new(seed ^ fnv1a(&op.name));
                            for column in used {
                                let factor = 1.0 + op.column_relative_sd * stream.standard_normal();
                                *column += per_pe * factor.max(0.0);
                            }
                        }
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
                ((uniform + tiles).round() as u64).min(cycles_max);
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
        let row_tokens = share(tokens, height, row);
        for col in 0..width {
            values.push(base + row_tokens * share(per_token, width, col));
        }
    }
    PeGrid {
        width,
        height,
        values,
    }
}

/// Row `index`'s share of `total` spread over `parts` rows (or columns): the first
/// `total % parts` take one more.
fn share(total: u64, parts: u64, index: u64) -> u64 {
    total / parts + u64::from(index < total % parts)
}

/// The op's GEMM tile as the heatmaps place it, from the region's top-left corner; `None` for
/// element-wise ops and attention, which spread evenly over the region.
fn gemm_tile(op: &OpPlan) -> Option<GemmTile> {
    let spread = matches!(op.kind, OpKind::AttnScores | OpKind::AttnValues);
    op.tile.filter(|_| !spread)
}

/// Which way a band of PEs runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BandAxis {
    Rows,
    Columns,
}

impl BandAxis {
    /// "rows" or "columns", as heatmap labels and `counters.npz` spell it.
    pub fn name(self) -> &'static str {
        match self {
            BandAxis::Rows => "rows",
            BandAxis::Columns => "columns",
        }
    }
}

/// A range of PE rows or columns that a step's plan treats alike (`start..end`), and what it
/// holds, in words: what heatmaps label their bands with.
#[derive(Debug, Clone, PartialEq)]
pub struct PeBand {
    pub axis: BandAxis,
    pub start: u64,
    pub end: u64,
    pub label: String,
}

/// The bands of [`busy_grid`]: rows (then columns) cut where a GEMM tile ends, each labelled
/// with the ops whose tiles reach it; beyond every tile, only element-wise ops and attention.
pub fn busy_bands(step: &StepResult, fabric: &FabricSpec) -> Vec<PeBand> {
    busy_bands_of(step, fabric, |_| true)
}

/// [`busy_bands`] of the ops `counted` picks (one op's picture: its own tile's edges).
pub fn busy_bands_of(
    step: &StepResult,
    fabric: &FabricSpec,
    counted: impl Fn(&OpPlan) -> bool,
) -> Vec<PeBand> {
    let tiled: Vec<(String, GemmTile)> = step
        .plan
        .groups
        .iter()
        .flat_map(|g| &g.ops)
        .filter(|op| counted(op))
        .filter_map(|op| Some((short_op_name(&op.name), gemm_tile(op)?)))
        .collect();
    let geometry = &fabric.geometry;
    let mut bands = Vec::new();
    for (axis, len) in [
        (BandAxis::Rows, geometry.region_height_pes),
        (BandAxis::Columns, geometry.region_width_pes),
    ] {
        let extents: Vec<(&str, u64)> = tiled
            .iter()
            .map(|(name, tile)| match axis {
                BandAxis::Rows => (name.as_str(), tile.rows.min(len)),
                BandAxis::Columns => (name.as_str(), tile.columns().min(len)),
            })
            .collect();
        bands.extend(tile_bands(axis, len, &extents));
    }
    bands
}

/// Cuts `0..len` where a tile ends; a band names the tiles reaching it, or those that do not
/// when they are fewer.
fn tile_bands(axis: BandAxis, len: u64, extents: &[(&str, u64)]) -> Vec<PeBand> {
    // Every layer's op of a name has the same tile: one of each (name, extent) says the same
    // (and keeps the naming below from going over every op of the step for every op).
    let mut distinct = extents.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let extents = distinct.as_slice();
    let mut cuts: Vec<u64> = extents.iter().map(|e| e.1).chain([0, len]).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let all: Vec<&str> = extents.iter().map(|e| e.0).collect();
    cuts.windows(2)
        .filter(|w| w[0] < w[1])
        .map(|w| {
            let (reaching, stopped): (Vec<&str>, Vec<&str>) = (
                extents
                    .iter()
                    .filter(|e| e.1 >= w[1])
                    .map(|e| e.0)
                    .collect(),
                extents.iter().filter(|e| e.1 < w[1]).map(|e| e.0).collect(),
            );
            let (reaching, stopped) = (op_names(&reaching, &all), op_names(&stopped, &all));
            let what = if reaching.is_empty() {
                "no GEMM tile: element-wise ops and attention only".to_string()
            } else if stopped.is_empty() {
                "every GEMM tile".to_string()
            } else if stopped.len() <= reaching.len() {
                format!("GEMM tiles but {}", name_list(stopped))
            } else {
                format!("GEMM tiles of {} only", name_list(reaching))
            };
            PeBand {
                axis,
                start: w[0],
                end: w[1],
                label: format!("{}: {what}", range_name(axis, w[0], w[1])),
            }
        })
        .collect()
}

/// "rows 964–992", "row 993": a band's PEs, first to last.
fn range_name(axis: BandAxis, start: u64, end: u64) -> String {
    match end - start {
        1 => format!("{} {start}", axis.name().trim_end_matches('s')),
        _ => format!("{} {start}–{}", axis.name(), end - 1),
    }
}

/// An op's name without its layer (`layer3.q.fwd` → `q.fwd`): a band holds every layer's.
fn short_op_name(name: &str) -> String {
    match name.split_once('.') {
        Some((layer, rest))
            if layer.len() > 5
                && layer.starts_with("layer")
                && layer[5..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            rest.to_string()
        }
        _ => name.to_string(),
    }
}

/// Names `ops` (short names, repeats allowed) in alphabetical order, so that neighbouring bands
/// list alike: a weight alone (`lm_head`) when every op of it in `all` is there, else each op
/// (`ffn_up.wgrad`).
fn op_names(ops: &[&str], all: &[&str]) -> Vec<String> {
    let weight = |name: &str| name.rsplit_once('.').map_or(name, |(w, _)| w).to_string();
    let mut names: Vec<String> = Vec::new();
    for op in ops {
        let w = weight(op);
        let whole = all
            .iter()
            .filter(|a| weight(a) == w)
            .all(|a| ops.contains(a));
        let name = if whole { w } else { op.to_string() };
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names.sort_unstable();
    names
}

/// At most four names, then how many more: a label stays a line or two.
fn name_list(mut names: Vec<String>) -> String {
    const SHOWN_MAX: usize = 4;
    let more = names.len().saturating_sub(SHOWN_MAX);
    names.truncate(SHOWN_MAX);
    let list = names.join(", ");
    match more {
        0 => list,
        _ => format!("{list} and {more} more"),
    }
}

/// The bands of [`sram_grid`]: the rows that keep one token more and the columns that keep a
/// byte more of each token's activations.
pub fn sram_bands(step: &StepResult, model: &ModelSpec, fabric: &FabricSpec) -> Vec<PeBand> {
    let plan = &step.plan;
    let tokens = plan.microbatch_sequences * plan.config.seq_len;
    let per_token =
        saved_bytes_per_token(&model.architecture, plan.config.seq_len, plan.activations);
    let geometry = &fabric.geometry;
    let mut bands = Vec::new();
    for (axis, len, total, unit) in [
        (
            BandAxis::Rows,
            geometry.region_height_pes,
            tokens,
            "tokens' activations",
        ),
        (
            BandAxis::Columns,
            geometry.region_width_pes,
            per_token,
            "B of each token's activations",
        ),
    ] {
        let cut = total % len;
        for (start, end) in [(0, cut), (cut, len)].into_iter().filter(|(a, b)| a < b) {
            let each = share(total, len, start);
            let label = format!("{}: {each} {unit}", range_name(axis, start, end));
            bands.push(PeBand {
                axis,
                start,
                end,
                label,
            });
        }
    }
    bands
}

/// A stable 64-bit hash of a name (FNV-1a), so per-op random streams do not depend on the
/// standard library's hasher.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_cut_where_tiles_end_and_name_what_reaches_them() {
        // Every layer's q and the FFN's wgrad, and the LM head, as a step's plan holds them.
        let extents = [
            ("q.fwd", 993),
            ("q.fwd", 993),
            ("ffn_up.fwd", 993),
            ("ffn_up.wgrad", 964),
            ("lm_head.fwd", 937),
            ("lm_head.dgrad", 937),
        ];
        let labels: Vec<(u64, u64, String)> = tile_bands(BandAxis::Rows, 994, &extents)
            .into_iter()
            .map(|b| (b.start, b.end, b.label))
            .collect();
        assert_eq!(
            labels,
            [
                (0, 937, "rows 0–936: every GEMM tile".to_string()),
                (937, 964, "rows 937–963: GEMM tiles but lm_head".into()),
                (
                    964,
                    993,
                    "rows 964–992: GEMM tiles but ffn_up.wgrad, lm_head".into()
                ),
                (
                    993,
                    994,
                    "row 993: no GEMM tile: element-wise ops and attention only".into()
                ),
            ]
        );
        // Fewer reach than stop: the label names those that reach.
        let few = tile_bands(
            BandAxis::Columns,
            750,
            &[("a.fwd", 10), ("b.fwd", 10), ("c.x", 750)],
        );
        assert_eq!(few[1].label, "columns 10–749: GEMM tiles of c only");
        // Tiles over the whole side: one band.
        assert_eq!(tile_bands(BandAxis::Rows, 16, &[("q.fwd", 16)]).len(), 1);
    }

    #[test]
    fn long_name_lists_are_cut_and_layers_dropped() {
        let names: Vec<String> = (0..6).map(|i| format!("w{i}")).collect();
        assert_eq!(name_list(names), "w0, w1, w2, w3 and 2 more");
        assert_eq!(short_op_name("layer12.ffn_up.wgrad"), "ffn_up.wgrad");
        assert_eq!(short_op_name("lm_head.fwd"), "lm_head.fwd");
        assert_eq!(short_op_name("layer.x"), "layer.x");
    }
}
