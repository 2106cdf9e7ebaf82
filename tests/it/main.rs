//! Integration tests: one binary, one module per stage of the pipeline.

mod common;
mod engine;
mod engine_random;
mod flop_counts;
mod flops;
mod monotone;
mod plot;
mod spec_errors;
mod step;
mod sweep;
mod train;
mod validate;
