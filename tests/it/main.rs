//! Integration tests: one binary, one module per stage of the pipeline.

mod common;
mod engine;
mod engine_random;
mod flops;
mod plot;
mod provenance;
mod spec_errors;
mod spec_names;
mod step;
mod sweep;
mod sweep_inputs;
mod train;
mod train_outputs;
mod validate;
