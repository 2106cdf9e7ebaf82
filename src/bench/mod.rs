//! Regression benchmarks of simulated throughput: a suite of cases (`suite`), every figure
//! each case's report gives (`flatten`) saved as a baseline (`baseline`), and two baselines
//! compared (`compare`, `render`).
//!
//! Architecture Invariant: `bench` simulates nothing itself. The command line runs each case
//! through the same calls as its command (`cli::bench`); here the cases are resolved into those
//! command lines, and figures are read, written and compared. The figures of the simulated
//! machine depend only on the suite, the specs and the timing model; the host's (time, rates,
//! the engine's event count) are kept apart and never fail a comparison.

pub mod baseline;
pub mod compare;
pub mod flatten;
pub mod render;
pub mod suite;

pub use baseline::{is_host_figure, Baseline, CaseFigures, FigureMap, HostCase, HostFigures};
pub use compare::{compare, parse_tolerance, Comparison, DEFAULT_TOLERANCE};
pub use flatten::{flatten, Figure};
pub use render::{render_markdown, render_table};
pub use suite::{Case, CaseCommand, Suite};
