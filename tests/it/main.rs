//! Integration tests: one binary, one module per stage of the pipeline.

mod collective_models;
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
mod provenance;
mod spec_errors;
mod spec_keys;
mod spec_names;
mod spec_ranges;
mod step;
mod sweep;
mod sweep_inputs;
mod train;
mod train_outputs;
mod validate;
