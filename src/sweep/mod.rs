//! Sweeps: grids of runs that scale out over threads (rayon) and machines (`--shard i/n`), resume
//! after an interruption, and merge into one table.
//!
//! Architecture Invariant: a point's file depends only on the point (never on the thread count,
//! the shard or the order points ran in), and is written atomically; `merge` sorts, so any way of
//! running a sweep gives byte-identical `sweep.csv`.

mod merge;
mod resolve;
mod run;
mod spec;

pub use merge::{read_points, seed_spread, seed_spread_csv, sweep_csv, SeedSpread};
pub(crate) use resolve::entry_path;
pub use resolve::{resolve_points, KeyInputs, ResolvedPoint};
pub use run::{
    load_point_fabric, load_point_model, point_path, run_sweep, Jobs, PointResult, PointStatus,
    Shard, SweepOutcome, MAX_JOBS, POINT_MEMORY_BYTES,
};
pub use spec::{Limits, Point, SweepSpec, FABRIC_PREFIX, OVERRIDE_PREFIXES};
