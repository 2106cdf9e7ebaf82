//! `trace.json`: a Chrome trace-event timeline of one step, which Perfetto and chrome://tracing
//! open. Tracks: the fabric (one op at a time, recomputed forward ops named `.recompute`),
//! weights and offloaded activations streaming in, gradients and offloaded activations out.
//! `kernel --trace` writes one of a kernel's engine runs from its [`Timeline`]
//! ([`kernel_trace`]): counter tracks of what the mesh did per bucket of simulated time, and
//! a track of phases.
//!
//! Times are whole nanoseconds: every boundary is its cycle count converted once and rounded
//! (`ns`), and a slice's duration is its end's nanosecond less its start's, so slices that meet
//! in cycles meet exactly in the trace (Perfetto's JSON importer drops a slice that overlaps the
//! one before it on its track). `ts` and `dur` are microseconds, as the format wants, written
//! with at most three decimals.
//!
//! Bounded in size: the first microbatch op by op (about a thousand events for a GPT step); each
//! further microbatch, up to [`MICROBATCHES_DETAILED`], as one slice holding a slice per layer
//! and pass, so that zooming into any part of the step shows its structure; any microbatches
//! beyond in one slice. Never an event per PE or per cycle.

use serde_json::{json, Value};

use crate::engine::{Bucket, Timeline};
use crate::graph::Pass;
use crate::map::{MicrobatchGroup, OpPlan};
use crate::schedule::StepResult;

const FABRIC: u64 = 1;
const STREAM_IN: u64 = 2;
const STREAM_OUT: u64 = 3;
/// Microbatches after the first drawn with their layers; the rest are one slice.
pub const MICROBATCHES_DETAILED: u64 = 64;

/// Whole nanoseconds at `clock_hz` of a cycle count, rounded to nearest.
struct Clock(u64);

impl Clock {
    fn ns(&self, cycles: u64) -> u64 {
        let ns = (u128::from(cycles) * 1_000_000_000 + u128::from(self.0 / 2)) / u128::from(self.0);
        u64::try_from(ns).unwrap_or(u64::MAX)
    }

    /// `ts` and `dur` of a slice from `start` to `end` cycles, in microseconds of whole ns.
    fn span(&self, start: u64, end: u64) -> (Value, Value) {
        let (from, to) = (self.ns(start), self.ns(end));
        (micros(from), micros(to.saturating_sub(from)))
    }
}

/// Nanoseconds as microseconds, at most three decimals (`1234567` → `1234.567`).
fn micros(ns: u64) -> Value {
    json!(ns as f64 / 1000.0)
}

/// The trace of one step, from the spans its plan was timed with.
pub fn step_trace(step: &StepResult, clock_hz: u64, title: &str) -> Value {
    let clock = Clock(clock_hz.max(1));
    let mut events = vec![
        json!({"name": "process_name", "ph": "M", "pid": 1, "args": {"name": title}}),
        thread_name(FABRIC, "fabric: ops (tile rows x c_k x c_n)"),
        thread_name(STREAM_IN, "wafer I/O in: weights, offloaded activations"),
        thread_name(
            STREAM_OUT,
            "wafer I/O out: gradients, offloaded activations",
        ),
    ];
    let total: u64 = step.plan.groups.iter().map(|g| g.repeat).sum();
    let (mut offset, mut index) = (0u64, 0u64);
    for (g, group) in step.plan.groups.iter().enumerate() {
        let length = group.cycles();
        for k in 0..group.repeat {
            index += 1;
            if g == 0 && k == 0 {
                first_microbatch(group, &clock, &mut events);
            } else if index <= MICROBATCHES_DETAILED + 1 {
                let name = format!(
                    "microbatch {index} of {total} ({} sequences)",
                    group.sequences
                );
                microbatch(group, offset, &name, &clock, &mut events);
            } else {
                let rest = total - index + 1;
                let cycles = length * (group.repeat - k)
                    + step.plan.groups[g + 1..]
                        .iter()
                        .map(|g| g.cycles() * g.repeat)
                        .sum::<u64>();
                let name = format!("microbatches {index} to {total} ({rest} more)");
                events.push(slice(
                    &name,
                    "microbatches",
                    offset,
                    offset + cycles,
                    &clock,
                ));
                return trace(events);
            }
            offset += length;
        }
    }
    trace(events)
}

fn trace(events: Vec<Value>) -> Value {
    json!({"traceEvents": events, "displayTimeUnit": "ns"})
}

/// The first microbatch op by op, with the streams of each op's weights and gradients.
fn first_microbatch(group: &MicrobatchGroup, clock: &Clock, events: &mut Vec<Value>) {
    for (op, span) in group.ops.iter().zip(&group.spans) {
        events.push(op_event(op, span.start, span.end, clock));
        if op.io_in_cycles > 0 {
            let (start, end) = span.stream_in;
            let bytes = (op.io_in_bytes, op.offload_in_bytes);
            events.push(stream_event(op, STREAM_IN, (start, end), bytes, clock));
        }
        if op.io_out_cycles > 0 {
            let (start, end) = span.stream_out;
            let bytes = (op.io_out_bytes, op.offload_out_bytes);
            events.push(stream_event(op, STREAM_OUT, (start, end), bytes, clock));
        }
    }
}

/// A further microbatch starting at `offset`: one slice, and inside it one per run of
/// consecutive ops of the same layer and pass (forward, or backward with its recomputation).
fn microbatch(
    group: &MicrobatchGroup,
    offset: u64,
    name: &str,
    clock: &Clock,
    events: &mut Vec<Value>,
) {
    let length = group.cycles();
    events.push(slice(name, "microbatch", offset, offset + length, clock));
    let part = |op: &OpPlan| {
        let pass = match op.pass {
            Pass::Forward if !op.recompute => "forward",
            _ => "backward",
        };
        match op.layer {
            Some(layer) => format!("layer {layer} {pass}"),
            None => format!("{} {pass}", op.name.split('.').next().unwrap_or(&op.name)),
        }
    };
    let mut current: Option<(String, u64, u64)> = None;
    for (op, span) in group.ops.iter().zip(&group.spans) {
        let name = part(op);
        match &mut current {
            Some((open, _, end)) if *open == name => *end = span.end,
            _ => {
                if let Some((open, start, end)) = current.take() {
                    events.push(slice(&open, "layer", offset + start, offset + end, clock));
                }
                current = Some((name, span.start, span.end));
            }
        }
    }
    if let Some((open, start, end)) = current {
        events.push(slice(&open, "layer", offset + start, offset + end, clock));
    }
}

fn thread_name(tid: u64, name: &str) -> Value {
    json!({"name": "thread_name", "ph": "M", "pid": 1, "tid": tid, "args": {"name": name}})
}

fn slice(name: &str, category: &str, start: u64, end: u64, clock: &Clock) -> Value {
    let (ts, dur) = clock.span(start, end);
    json!({
        "name": name, "cat": category, "ph": "X", "pid": 1, "tid": FABRIC, "ts": ts, "dur": dur,
        "args": {"cycles": end - start}
    })
}

fn op_event(op: &OpPlan, start: u64, end: u64, clock: &Clock) -> Value {
    let tile = op.tile.map_or("whole region".to_string(), |t| {
        format!("{}x{}x{}", t.rows, t.c_k, t.c_n)
    });
    let (ts, dur) = clock.span(start, end);
    json!({
        "name": op.name, "cat": op.kind.name(), "ph": "X", "pid": 1, "tid": FABRIC,
        "ts": ts, "dur": dur,
        "args": {
            "tile": tile, "cycles": op.cost.cycles, "recompute": op.recompute,
            "token_chunks": op.token_chunks, "vocab_chunks": op.vocab_chunks, "compute_cycles": op.cost.compute_cycles,
            "overhead_cycles": op.cost.overhead_cycles, "reduction_cycles": op.cost.reduction_cycles,
            "imbalance_cycles": op.cost.imbalance_cycles, "sparse": op.sparse,
            "weight_format": op.weight_format,
        }
    })
}

fn stream_event(
    op: &OpPlan,
    tid: u64,
    (start, end): (u64, u64),
    (bytes, activation_bytes): (u64, u64),
    clock: &Clock,
) -> Value {
    // `activation_bytes`: the offloaded checkpoints among the bytes (the rest: weights or
    // gradients).
    let (ts, dur) = clock.span(start, end);
    json!({
        "name": op.name, "cat": "io", "ph": "X", "pid": 1, "tid": tid, "ts": ts, "dur": dur,
        "args": {"bytes": bytes, "activation_bytes": activation_bytes}
    })
}

/// A kernel's timeline as a trace: per bucket of the [`Timeline`], counter events ("C", one
/// track per series in Perfetto) of the PEs busy by kind (busy PE-cycles over the bucket's
/// cycles) and the wavelets moved per cycle (hops between routers, deliveries to cores); and
/// tracks of phases, for the whole mesh and for each band of PE rows, consecutive buckets with
/// the same [`phase`] as one slice, whose `args` hold their exact counts (busy PE-cycles by
/// kind, hops, deliveries), so the slices of a track add up to the run's counters (the bands'
/// tracks together too). `cycles` is the run's length (the last bucket ends there), `pes` its mesh's.
pub fn kernel_trace(
    timeline: &Timeline,
    (cycles, pes): (u64, u64),
    clock_hz: u64,
    title: &str,
) -> Value {
    let clock = Clock(clock_hz.max(1));
    let width = timeline.bucket_cycles();
    let mut events = vec![
        json!({"name": "process_name", "ph": "M", "pid": 1, "args": {"name": title}}),
        thread_name(
            FABRIC,
            &format!(
                "phases, whole mesh: the kind of work most PE-cycles went to, per {width} cycles"
            ),
        ),
    ];
    let cycles = cycles.max(1);
    let buckets = run_buckets(timeline.buckets().collect(), cycles, width);
    for (i, bucket) in buckets.iter().enumerate() {
        let (start, end) = (i as u64 * width, ((i as u64 + 1) * width).min(cycles));
        events.extend(kernel_counters(bucket, start, end, &clock));
    }
    // The counters drop to zero where the run ends.
    let end = kernel_counters(&Bucket::default(), cycles, cycles + 1, &clock);
    events.extend(end);
    let track = PhaseTrack {
        width,
        cycles,
        clock: &clock,
    };
    track.write(FABRIC, &buckets, pes, &mut events);
    let bands = timeline.bands();
    if bands.len() > 1 {
        for (k, &(first, last)) in bands.iter().enumerate() {
            let tid = FABRIC + 1 + k as u64;
            events.push(thread_name(tid, &format!("PE rows {first}-{last}: phases")));
            let band = run_buckets(timeline.band_buckets(k).collect(), cycles, width);
            let band_pes = u64::from(last - first + 1) * u64::from(timeline.mesh_cols());
            track.write(tid, &band, band_pes, &mut events);
        }
    }
    trace(events)
}

/// How phase slices are cut: buckets `width` cycles wide over a run of `cycles`.
struct PhaseTrack<'c> {
    width: u64,
    cycles: u64,
    clock: &'c Clock,
}

impl PhaseTrack<'_> {
    /// The slices of track `tid`: consecutive `buckets` of `pes` PEs with the same [`phase`]
    /// as one slice, with their summed counts.
    fn write(&self, tid: u64, buckets: &[Bucket], pes: u64, events: &mut Vec<Value>) {
        let mut phase: Option<(&str, u64, Bucket)> = None;
        for (i, bucket) in buckets.iter().enumerate() {
            let start = i as u64 * self.width;
            let end = (start + self.width).min(self.cycles);
            let name = self::phase(bucket, pes, end - start);
            match &mut phase {
                Some((open, _, sum)) if *open == name => add_bucket(sum, bucket),
                _ => {
                    if let Some((open, from, sum)) = phase.take() {
                        events.push(phase_slice(tid, open, (from, start), &sum, self.clock));
                    }
                    phase = Some((name, start, *bucket));
                }
            }
        }
        if let Some((open, from, sum)) = phase {
            events.push(phase_slice(
                tid,
                open,
                (from, self.cycles),
                &sum,
                self.clock,
            ));
        }
    }
}

/// The timeline's buckets from cycle 0 to `cycles`: idle ones where nothing was recorded, and
/// anything recorded past `cycles` (nothing the engine does; a guard) in the last, so the
/// buckets keep every count.
fn run_buckets(mut buckets: Vec<Bucket>, cycles: u64, width: u64) -> Vec<Bucket> {
    let count = cycles.div_ceil(width) as usize;
    buckets.resize(buckets.len().max(count), Bucket::default());
    let beyond: Vec<Bucket> = buckets.split_off(count);
    debug_assert!(
        beyond.iter().all(|b| *b == Bucket::default()),
        "counts past the run's end"
    );
    if let Some(last) = buckets.last_mut() {
        beyond.iter().for_each(|b| add_bucket(last, b));
    }
    buckets
}

/// What a bucket of a kernel's run on `pes` PEs, `cycles` long, mostly was: the kind of work
/// most of its busy PE-cycles went to (`compute`: FMACs; `reduction`: adds of partial sums;
/// `task overhead`: activation and index decode), with `, most PEs idle` when fewer than half
/// its PE-cycles were busy (a pipeline filling or draining); `wavelets moving` when no core was
/// busy but wavelets moved; else `idle`.
pub fn phase(bucket: &Bucket, pes: u64, cycles: u64) -> &'static str {
    let kind = busiest_kind(bucket);
    if kind == "idle" || 2 * bucket.busy_cycles() >= pes * cycles {
        return kind;
    }
    match kind {
        "compute" => "compute, most PEs idle",
        "reduction" => "reduction, most PEs idle",
        _ => "task overhead, most PEs idle",
    }
}

fn busiest_kind(bucket: &Bucket) -> &'static str {
    let kinds = [
        ("compute", bucket.fmac_cycles),
        ("reduction", bucket.reduction_cycles),
        ("task overhead", bucket.overhead_cycles),
    ];
    // The first of equals wins (compute before reduction before overhead).
    let (name, most) =
        kinds.into_iter().fold(
            ("idle", 0),
            |best, kind| if kind.1 > best.1 { kind } else { best },
        );
    if most > 0 {
        name
    } else if bucket.wavelet_hops > 0 || bucket.wavelets_delivered > 0 {
        "wavelets moving"
    } else {
        "idle"
    }
}

fn add_bucket(sum: &mut Bucket, b: &Bucket) {
    sum.fmac_cycles += b.fmac_cycles;
    sum.overhead_cycles += b.overhead_cycles;
    sum.reduction_cycles += b.reduction_cycles;
    sum.wavelet_hops += b.wavelet_hops;
    sum.wavelets_delivered += b.wavelets_delivered;
}

/// The counter events of one bucket from cycle `start` to `end`: its counts per cycle.
fn kernel_counters(bucket: &Bucket, start: u64, end: u64, clock: &Clock) -> [Value; 2] {
    let ts = micros(clock.ns(start));
    let per_cycle = |count: u64| count as f64 / (end - start).max(1) as f64;
    [
        json!({"name": "PEs busy", "ph": "C", "pid": 1, "ts": ts, "args": {
            "compute": per_cycle(bucket.fmac_cycles),
            "reduction": per_cycle(bucket.reduction_cycles),
            "task overhead": per_cycle(bucket.overhead_cycles),
        }}),
        json!({"name": "wavelets per cycle", "ph": "C", "pid": 1, "ts": ts, "args": {
            "router hops": per_cycle(bucket.wavelet_hops),
            "delivered to cores": per_cycle(bucket.wavelets_delivered),
        }}),
    ]
}

fn phase_slice(
    tid: u64,
    name: &str,
    (start, end): (u64, u64),
    sum: &Bucket,
    clock: &Clock,
) -> Value {
    let (ts, dur) = clock.span(start, end);
    json!({
        "name": name, "cat": "phase", "ph": "X", "pid": 1, "tid": tid, "ts": ts, "dur": dur,
        "args": {
            "cycles": end - start,
            "fmac_pe_cycles": sum.fmac_cycles,
            "reduction_pe_cycles": sum.reduction_cycles,
            "overhead_pe_cycles": sum.overhead_cycles,
            "wavelet_hops": sum.wavelet_hops,
            "wavelets_delivered": sum.wavelets_delivered,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_are_whole_nanoseconds_converted_once() {
        let clock = Clock(1_100_000_000);
        // 11 cycles at 1.1 GHz: 10 ns; 5 cycles: 4.545 ns, rounded to 5.
        assert_eq!(clock.ns(11), 10);
        assert_eq!(clock.ns(5), 5);
        // Slices that meet in cycles meet in the trace: [0, 5) and [5, 11) share 5 ns.
        let (a_ts, a_dur) = clock.span(0, 5);
        let (b_ts, _) = clock.span(5, 11);
        assert_eq!(
            a_ts.as_f64().unwrap() + a_dur.as_f64().unwrap(),
            b_ts.as_f64().unwrap()
        );
        assert_eq!(micros(1_234_567).to_string(), "1234.567");
    }
}
