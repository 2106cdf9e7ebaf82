//! Integration tests: one binary, one module per stage of the pipeline.

mod common;
mod engine;
mod engine_random;
mod flops;
mod plot;
mod spec_errors;
mod spec_keys;
mod spec_ranges;
mod step;
mod sweep;
mod train;
mod validate;
