//! Everything a person or a script reads: tables for the terminal, JSON with stable field names,
//! and pictures (`plot`: heatmaps and line charts, PNG or SVG).
//!
//! Architecture Invariant: reports only present; they compute nothing that the pipeline's
//! stages did not already count. Field names follow the README's rule (snake_case, unit last).

mod counters;
mod csv_file;
mod files;
mod flops;
mod inspect;
mod json;
pub mod npz;
mod pictures;
pub mod plot;
mod step;
mod table;
mod trace;
mod train;

pub use counters::{kernel_counters_npz, read_kernel_counters, CountersFile, RunCounters};
pub use csv_file::csv_text;
pub use files::{
    check_distinct_outputs, check_output_file, check_output_folder, create_folder, lock_folder,
    missing_folders, remove_empty_folders, remove_in_flight_temporaries, remove_stale_temporaries,
    write_atomic, Outputs,
};
pub use flops::{FlopsReport, FlopsRun, PhaseRow, TotalRow};
pub use inspect::{FabricInspect, ModelInspect};
pub use json::{flops_pair, serialize_as_f64, ExactCount, SCHEMA_VERSION};
pub use pictures::{
    check_run_names, difference_heatmap_name, draw_gap, draw_heatmap, draw_speedup,
    draw_sweep_speedup, draw_train_heatmaps, plot_bands, run_name, utilization_heatmap_name,
    HeatmapKind, HeatmapScale,
};
pub use step::{AgainstDense, MasksFile, StepReport};
pub use table::{duration, shown_sparsity, si, thousands, Table};
pub use trace::{kernel_trace, step_trace};
pub use train::{ops_csv, GapShare, PhaseFigures, TrainPhase, TrainReport, TrainRun};
