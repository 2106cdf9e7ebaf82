//! Integration tests: one binary, one module per stage of the pipeline.

mod common;
mod flops;
mod plot;
mod spec_errors;
mod step;
mod train;
