//! Integration tests: one binary, one module per stage of the pipeline.

mod common;
mod engine;
mod engine_random;
mod flop_counts;
mod flops;
mod golden;
mod inspect;
mod kernel_fidelity;
mod monotone;
mod outputs;
mod plot;
mod spec_errors;
mod spec_keys;
mod step;
mod sweep;
mod sweep_inputs;
mod train;
mod validate;
