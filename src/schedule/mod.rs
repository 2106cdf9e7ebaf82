//! Running steps and, later, the recipe's phases: timing from the plan's costs and timeline, and
//! the accounting of every cycle to a category.
//!
//! Architecture Invariant: the categories of a step add up to its cycles exactly; the schedule
//! does no I/O and is deterministic.

mod dynamic;
mod grid;
mod recipe;
mod step;
mod systems;

pub use dynamic::{mask_update_cost, DynamicPhase, MaskUpdateCost};
pub use grid::{
    busy_bands, busy_bands_of, busy_grid, check_grid_memory, op_busy_grid, sram_bands, sram_grid,
    BandAxis, PeBand, PeGrid, GRID_BYTES_MAX,
};
pub use recipe::{
    category_label, faster_than_flops, gap_categories, gap_shares, program_load_cycles, run_recipe,
    run_recipe_on_systems, speedup_curve, CurvePoint, FasterThanFlops, PhaseResult, PhaseTotal,
    RunResult, CURVE_SPARSITIES,
};
pub use step::{run_step, Breakdown, OpRow, StepResult};
pub use systems::{batch_per_system, check_systems, run_step_on_systems};
