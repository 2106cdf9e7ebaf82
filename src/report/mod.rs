//! Everything a person or a script reads: tables for the terminal, JSON with stable field names.
//!
//! Architecture Invariant: reports only present; they compute nothing that the pipeline's
//! stages did not already count. Field names follow DESIGN.md (snake_case, unit last).

mod flops;
mod inspect;
mod step;
mod table;

pub use flops::{FlopsReport, FlopsRun, PhaseRow, TotalRow};
pub use inspect::{FabricInspect, ModelInspect};
pub use step::StepReport;
pub use table::{duration, si, thousands, Table};
