//! The timeline of a step: the fabric runs one op at a time; weights stream in and gradients
//! stream out through the wafer's edge beside it.
//!
//! Rules, in order of ops:
//! - op i's weights start streaming once the link is free and op i−1 has started (the SRAM holds
//!   the weights of one op ahead);
//! - op i computes once op i−1 is done and its first weights have arrived; it cannot finish before
//!   its last weight has arrived and its gradient has streamed out.
//!
//! An op's elapsed time is `end[i] − end[i−1]`; what it does not spend busy (its own cycles) it
//! spent waiting on I/O, so busy categories plus I/O add up to the step exactly.

use serde::Serialize;

/// One op as the timeline sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TimelineOp {
    pub cycles: u64,
    pub io_in_cycles: u64,
    pub io_out_cycles: u64,
}

/// When each op ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TimelineSpan {
    pub start: u64,
    pub end: u64,
    /// Cycles of the span spent waiting for the wafer's I/O (`end − start_prev_end − cycles`).
    pub io_wait: u64,
    /// When the op's weights streamed in (empty when it streams none).
    pub stream_in: (u64, u64),
    /// When the op's gradients streamed out (empty when it streams none).
    pub stream_out: (u64, u64),
}

/// Lays `ops` out in time starting at cycle 0; returns one span per op.
pub fn timeline(ops: &[TimelineOp]) -> Vec<TimelineSpan> {
    let mut spans = Vec::with_capacity(ops.len());
    let (mut in_free, mut out_free) = (0u64, 0u64);
    let (mut prev_start, mut prev_end) = (0u64, 0u64);
    for op in ops {
        // Saturating: a span that passes u64 ends at u64::MAX, a step the mapper refuses
        // (`map::MAX_STEP_CYCLES`) before any figure of it is reported.
        let in_start = in_free.max(prev_start);
        let in_end = in_start.saturating_add(op.io_in_cycles);
        in_free = in_end;
        let start = prev_end.max(if op.io_in_cycles > 0 {
            in_start.saturating_add(1)
        } else {
            0
        });
        let out_start = out_free.max(start);
        let out_end = out_start.saturating_add(op.io_out_cycles);
        out_free = out_end;
        let end = start.saturating_add(op.cycles).max(in_end).max(out_end);
        spans.push(TimelineSpan {
            start,
            end,
            io_wait: end.saturating_sub(prev_end).saturating_sub(op.cycles),
            stream_in: (in_start, in_end),
            stream_out: (out_start, out_end),
        });
        prev_start = start;
        prev_end = end;
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(cycles: u64, io_in_cycles: u64, io_out_cycles: u64) -> TimelineOp {
        TimelineOp {
            cycles,
            io_in_cycles,
            io_out_cycles,
        }
    }

    #[test]
    fn compute_bound_ops_hide_their_streams() {
        let spans = timeline(&[op(100, 50, 0), op(100, 50, 0)]);
        // Op 0 waits one cycle for its first weight; op 1's weights stream while op 0 computes.
        assert_eq!(
            (spans[0].start, spans[0].end, spans[0].io_wait),
            (1, 101, 1)
        );
        assert_eq!(spans[0].stream_in, (0, 50));
        assert_eq!(
            (spans[1].start, spans[1].end, spans[1].io_wait),
            (101, 201, 0)
        );
        assert_eq!(spans[1].stream_in, (50, 100));
    }

    #[test]
    fn io_bound_ops_wait_for_their_last_weight() {
        let spans = timeline(&[op(10, 100, 0), op(10, 100, 0), op(5, 0, 40)]);
        assert_eq!(spans[0].end, 100);
        // Op 1 streams once the link frees at cycle 100, so its last weight lands at 200.
        assert_eq!(spans[1].end, 200);
        assert_eq!(spans[1].io_wait, 90);
        assert_eq!(spans[2].end, 240);
        assert_eq!(spans[2].stream_out, (200, 240));
        let busy: u64 = [10, 10, 5].iter().sum();
        let waits: u64 = spans.iter().map(|s| s.io_wait).sum();
        assert_eq!(busy + waits, spans[2].end, "categories add up to the total");
    }
}
