//! What a caller may watch of engine runs while they run and after: progress, and a timeline of
//! what the mesh did, in buckets of simulated time. Both are off by default, and neither changes
//! a figure: they read what the engine does, never steer it.
//!
//! A [`Timeline`] counts, per bucket of `2^shift` cycles, the busy PE-cycles of each kind (FMAC,
//! overhead, reduction), the wavelet hops between routers and the wavelets delivered to cores.
//! A task's cycles are laid out as it runs them (activation and decode first, then its FMACs,
//! then its reduction adds), a block's wavelets one per cycle, and a span that crosses a bucket
//! boundary is split at it, so every bucket holds exactly what happened inside it and the
//! buckets add up to the run's counters exactly. The run's length is not known before it ends:
//! the buckets start [`BUCKET_CYCLES_MIN`] wide and double (pairs merged, sums kept) whenever a
//! run would need more than [`BUCKETS_MAX`], so a run of any length has at most that many.

use super::program::Port;

/// Most buckets a timeline keeps: a run ends with between half and all of them (or fewer, if
/// it is shorter than that many minimal buckets).
pub const BUCKETS_MAX: usize = 512;
/// Narrowest bucket, as a power of two: 16 cycles, several nanoseconds at any clock the
/// fabric specs allow, so that bucket boundaries stay apart in a trace's whole nanoseconds.
const SHIFT_MIN: u32 = 4;
pub const BUCKET_CYCLES_MIN: u64 = 1 << SHIFT_MIN;

/// The counts of one bucket, in the order of [`Bucket::KINDS`].
const KINDS: usize = 5;
pub(super) const FMAC: usize = 0;
pub(super) const OVERHEAD: usize = 1;
pub(super) const REDUCTION: usize = 2;
pub(super) const HOPS: usize = 3;
pub(super) const DELIVERED: usize = 4;

/// What the mesh did during one bucket of a timeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bucket {
    /// Busy PE-cycles by kind (a PE busy for the whole bucket counts the bucket's cycles).
    pub fmac_cycles: u64,
    pub overhead_cycles: u64,
    pub reduction_cycles: u64,
    /// Router-to-router link traversals (a link carrying one wavelet for one cycle).
    pub wavelet_hops: u64,
    /// Wavelets handed down a ramp to a core (a multicast wavelet once per destination).
    pub wavelets_delivered: u64,
}

impl Bucket {
    pub fn busy_cycles(&self) -> u64 {
        self.fmac_cycles + self.overhead_cycles + self.reduction_cycles
    }

    fn of(counts: &[u64; KINDS]) -> Self {
        Bucket {
            fmac_cycles: counts[FMAC],
            overhead_cycles: counts[OVERHEAD],
            reduction_cycles: counts[REDUCTION],
            wavelet_hops: counts[HOPS],
            wavelets_delivered: counts[DELIVERED],
        }
    }
}

/// Counts of engine runs per bucket of simulated time (see the module's doc). Runs recorded
/// into one timeline follow each other: each starts where the runs before it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    /// Whether the engine records into it: a run without one tests this flag and no more
    /// (the recording functions are out of line and marked cold).
    pub(super) on: bool,
    /// Buckets are `1 << shift` cycles wide.
    shift: u32,
    /// Where the current run starts on the timeline: the cycles of the runs before it.
    pub(super) base_cycles: u64,
    counts: Vec<[u64; KINDS]>,
}

impl Timeline {
    /// An empty timeline that the runs it is given to record into.
    pub fn new() -> Self {
        Timeline {
            on: true,
            shift: SHIFT_MIN,
            base_cycles: 0,
            counts: Vec::new(),
        }
    }

    /// Cycles per bucket (a power of two, at least [`BUCKET_CYCLES_MIN`]).
    pub fn bucket_cycles(&self) -> u64 {
        1 << self.shift
    }

    /// The buckets from cycle 0 of the first run to the last bucket anything happened in.
    pub fn buckets(&self) -> impl ExactSizeIterator<Item = Bucket> + '_ {
        self.counts.iter().map(Bucket::of)
    }

    /// Cycles of the runs recorded so far, one after the other.
    pub fn cycles(&self) -> u64 {
        self.base_cycles
    }

    /// The sum of all buckets.
    pub fn total(&self) -> Bucket {
        let mut sum = [0u64; KINDS];
        for counts in &self.counts {
            for (s, c) in sum.iter_mut().zip(counts) {
                *s += c;
            }
        }
        Bucket::of(&sum)
    }

    /// Adds `weight` per cycle of `kind` over `length` cycles from `start` (cycles of the
    /// current run), split at bucket boundaries.
    #[inline]
    pub(super) fn add(&mut self, kind: usize, start: u64, length: u64, weight: u64) {
        if length == 0 || weight == 0 {
            return;
        }
        let start = self.base_cycles + start;
        let end = start + length;
        if ((end - 1) >> self.shift) as usize >= self.counts.len() {
            self.extend(end - 1);
        }
        let (first, last) = (start >> self.shift, (end - 1) >> self.shift);
        if first == last {
            self.counts[first as usize][kind] += length * weight;
        } else {
            self.split(kind, start, end, weight);
        }
    }

    /// A wavelet (or a block of `wavelets`) leaving a router buffer at `now` on every output
    /// of `route_out` (port bits, `Port::bit`): a hop per neighbour, a delivery if the ramp is
    /// one, each taking a cycle per wavelet. (Out of line: only a watched run records.)
    #[cold]
    #[inline(never)]
    pub(super) fn record_moves(&mut self, now: u64, route_out: u8, wavelets: u64) {
        let neighbours = (route_out & !Port::Ramp.bit()).count_ones() as u64;
        self.add(HOPS, now, wavelets, neighbours);
        if route_out & Port::Ramp.bit() != 0 {
            self.add(DELIVERED, now, wavelets, 1);
        }
    }

    /// A span crossing bucket boundaries: each bucket takes the cycles inside it.
    #[cold]
    fn split(&mut self, kind: usize, start: u64, end: u64, weight: u64) {
        let mut from = start;
        while from < end {
            let bucket = from >> self.shift;
            let to = end.min((bucket + 1) << self.shift);
            self.counts[bucket as usize][kind] += (to - from) * weight;
            from = to;
        }
    }

    /// Makes room up to cycle `last`: wider buckets (pairs merged) while it would need more
    /// than [`BUCKETS_MAX`], then as many empty buckets as it takes.
    #[cold]
    fn extend(&mut self, last: u64) {
        while (last >> self.shift) as usize >= BUCKETS_MAX {
            let merged = self
                .counts
                .chunks(2)
                .map(|pair| {
                    let mut sum = pair[0];
                    if let Some(second) = pair.get(1) {
                        for (s, c) in sum.iter_mut().zip(second) {
                            *s += c;
                        }
                    }
                    sum
                })
                .collect();
            self.counts = merged;
            self.shift += 1;
        }
        let needed = (last >> self.shift) as usize + 1;
        if needed > self.counts.len() {
            self.counts.resize(needed, [0; KINDS]);
        }
    }

    /// The current run ended after `cycles`: the next starts there.
    pub(super) fn end_run(&mut self, cycles: u64) {
        self.base_cycles += cycles;
    }
}

/// Events between two calls of a run's progress hook: often enough for a line every few
/// milliseconds of host time, rarely enough to cost nothing (one comparison per cycle).
pub const PROGRESS_EVENTS: u64 = 1 << 16;

/// What a kernel's caller watches of its engine runs. `Watch::default()` watches nothing.
#[derive(Default)]
pub struct Watch<'a> {
    /// Called every [`PROGRESS_EVENTS`] events with the simulated cycle reached, counting the
    /// runs watched before this one (a kernel of several runs, one after the other).
    pub progress: Option<&'a mut dyn FnMut(u64)>,
    /// Recorded into when given ([`Timeline::new`]).
    pub timeline: Option<Timeline>,
    /// Cycles of the runs watched so far.
    pub cycles_before: u64,
}

impl Watch<'_> {
    /// The timeline a run records into: this watch's, or one switched off.
    pub(super) fn take_timeline(&mut self) -> Timeline {
        self.timeline.take().unwrap_or_default()
    }

    /// A run of `cycles` ended; the timeline it was given comes back (kept if switched on).
    pub(super) fn end_run(&mut self, cycles: u64, mut timeline: Timeline) {
        self.cycles_before += cycles;
        if timeline.on {
            timeline.end_run(cycles);
            self.timeline = Some(timeline);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_is_split_at_bucket_boundaries() {
        let mut t = Timeline::new();
        // 16-cycle buckets: cycles 10..40 give 6, 16 and 8.
        t.add(FMAC, 10, 30, 1);
        let fmac: Vec<u64> = t.buckets().map(|b| b.fmac_cycles).collect();
        assert_eq!(fmac, vec![6, 16, 8]);
        // A weight counts per cycle: 2 hops a cycle over cycles 0..4.
        t.add(HOPS, 0, 4, 2);
        assert_eq!(t.total().wavelet_hops, 8);
        assert_eq!(t.total().fmac_cycles, 30);
    }

    #[test]
    fn buckets_double_past_the_limit_and_keep_every_count() {
        let mut t = Timeline::new();
        let mut expected = 0u64;
        // Tasks of 7 cycles every 11 cycles over 100,000 cycles.
        for i in 0..100_000 / 11 {
            t.add(REDUCTION, i * 11, 7, 1);
            expected += 7;
        }
        assert_eq!(t.total().reduction_cycles, expected);
        let buckets = t.buckets().len();
        assert!(
            buckets <= BUCKETS_MAX && buckets > BUCKETS_MAX / 2,
            "{buckets}"
        );
        // 100,000 cycles in at most 512 buckets: 256 cycles each (2^8).
        assert_eq!(t.bucket_cycles(), 256);
        // No bucket holds more busy cycles than it has.
        assert!(t.buckets().all(|b| b.reduction_cycles <= 256));
    }

    #[test]
    fn runs_recorded_into_one_timeline_follow_each_other() {
        let mut watch = Watch {
            timeline: Some(Timeline::new()),
            ..Watch::default()
        };
        let mut first = watch.take_timeline();
        first.add(FMAC, 0, 16, 1);
        watch.end_run(20, first);
        let mut second = watch.take_timeline();
        second.add(FMAC, 0, 16, 1);
        watch.end_run(32, second);
        let t = watch.timeline.unwrap();
        // The second run starts at cycle 20: 12 cycles in bucket 1, 4 in bucket 2.
        let fmac: Vec<u64> = t.buckets().map(|b| b.fmac_cycles).collect();
        assert_eq!(fmac, vec![16, 12, 4]);
        assert_eq!((t.cycles(), watch.cycles_before), (52, 52));
        // A watch without a timeline gives runs one switched off, keeps none, counts cycles.
        let mut none = Watch::default();
        let off = none.take_timeline();
        assert!(!off.on);
        none.end_run(5, off);
        assert!(none.timeline.is_none());
        assert_eq!(none.cycles_before, 5);
    }
}
