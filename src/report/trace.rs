//! `trace.json`: a Chrome trace-event timeline of one step, which Perfetto and chrome://tracing
//! open. Tracks: the fabric (one op at a time, recomputed forward ops named `.recompute`),
//! weights and offloaded activations streaming in, gradients and offloaded activations out.
//!
//! Bounded in size: the first microbatch op by op (about a thousand events for a GPT step), then
//! one event per further microbatch group; never an event per PE or per cycle.

use serde_json::{json, Value};

use crate::map::OpPlan;
use crate::schedule::StepResult;

const FABRIC: u64 = 1;
const STREAM_IN: u64 = 2;
const STREAM_OUT: u64 = 3;

/// The trace of one step, from the spans its plan was timed with; times in microseconds at the
/// fabric's clock.
pub fn step_trace(step: &StepResult, clock_hz: u64, title: &str) -> Value {
    let us = |cycles: u64| cycles as f64 * 1e6 / clock_hz as f64;
    let mut events = vec![
        json!({"name": "process_name", "ph": "M", "pid": 1, "args": {"name": title}}),
        thread_name(FABRIC, "fabric: ops (tile rows x c_k x c_n)"),
        thread_name(STREAM_IN, "wafer I/O in: weights, offloaded activations"),
        thread_name(
            STREAM_OUT,
            "wafer I/O out: gradients, offloaded activations",
        ),
    ];
    let mut offset = 0u64;
    for (g, group) in step.plan.groups.iter().enumerate() {
        let length = group.cycles();
        if g == 0 {
            for (op, span) in group.ops.iter().zip(&group.spans) {
                events.push(op_event(op, span.start, span.end, &us));
                if op.io_in_cycles > 0 {
                    let (start, end) = span.stream_in;
                    let bytes = (op.io_in_bytes, op.offload_in_bytes);
                    events.push(stream_event(op, STREAM_IN, start, end, bytes, &us));
                }
                if op.io_out_cycles > 0 {
                    let (start, end) = span.stream_out;
                    let bytes = (op.io_out_bytes, op.offload_out_bytes);
                    events.push(stream_event(op, STREAM_OUT, start, end, bytes, &us));
                }
            }
            offset = length;
            if group.repeat > 1 {
                events.push(aggregate(
                    group.repeat - 1,
                    group.sequences,
                    offset,
                    length * (group.repeat - 1),
                    &us,
                ));
                offset += length * (group.repeat - 1);
            }
        } else {
            events.push(aggregate(
                group.repeat,
                group.sequences,
                offset,
                length * group.repeat,
                &us,
            ));
            offset += length * group.repeat;
        }
    }
    json!({"traceEvents": events, "displayTimeUnit": "ns"})
}

fn thread_name(tid: u64, name: &str) -> Value {
    json!({"name": "thread_name", "ph": "M", "pid": 1, "tid": tid, "args": {"name": name}})
}

fn op_event(op: &OpPlan, start: u64, end: u64, us: &dyn Fn(u64) -> f64) -> Value {
    let tile = op.tile.map_or("whole region".to_string(), |t| {
        format!("{}x{}x{}", t.rows, t.c_k, t.c_n)
    });
    json!({
        "name": op.name, "cat": op.kind.name(), "ph": "X", "pid": 1, "tid": FABRIC,
        "ts": us(start), "dur": us(end - start),
        "args": {
            "tile": tile, "cycles": op.cost.cycles, "recompute": op.recompute,
            "token_chunks": op.token_chunks, "compute_cycles": op.cost.compute_cycles,
            "overhead_cycles": op.cost.overhead_cycles, "reduction_cycles": op.cost.reduction_cycles,
            "imbalance_cycles": op.cost.imbalance_cycles, "sparse": op.sparse,
            "weight_format": op.weight_format,
        }
    })
}

fn stream_event(
    op: &OpPlan,
    tid: u64,
    start: u64,
    end: u64,
    (bytes, activation_bytes): (u64, u64),
    us: &dyn Fn(u64) -> f64,
) -> Value {
    // `activation_bytes`: the offloaded checkpoints among the bytes (the rest: weights or
    // gradients).
    json!({
        "name": op.name, "cat": "io", "ph": "X", "pid": 1, "tid": tid,
        "ts": us(start), "dur": us(end - start),
        "args": {"bytes": bytes, "activation_bytes": activation_bytes}
    })
}

fn aggregate(
    count: u64,
    sequences: u64,
    start: u64,
    cycles: u64,
    us: &dyn Fn(u64) -> f64,
) -> Value {
    json!({
        "name": format!("{count} more microbatches of {sequences} sequences"), "cat": "microbatches",
        "ph": "X", "pid": 1, "tid": FABRIC, "ts": us(start), "dur": us(cycles),
        "args": {"cycles": cycles}
    })
}
