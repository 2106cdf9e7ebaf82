//! What a caller may watch of engine runs while they run and after: progress, and a timeline of
//! what the mesh did, in buckets of simulated time. Both are off by default, and neither changes
//! a figure: they read what the engine does, never steer it.
//!
//! A [`Timeline`] counts, per bucket of `2^shift` cycles and per band of PE rows (as many as
//! the mesh has rows, up to [`BANDS_MAX`]), the busy PE-cycles of each kind (FMAC, overhead,
//! reduction), the wavelet hops between routers and the wavelets delivered to cores.
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

    fn counts(&self) -> [u64; KINDS] {
        let mut counts = [0; KINDS];
        counts[FMAC] = self.fmac_cycles;
        counts[OVERHEAD] = self.overhead_cycles;
        counts[REDUCTION] = self.reduction_cycles;
        counts[HOPS] = self.wavelet_hops;
        counts[DELIVERED] = self.wavelets_delivered;
        counts
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

/// Bands of PE rows a timeline keeps apart, at most: as many as the mesh has rows, up to 32.
pub const BANDS_MAX: u32 = 32;

/// Counts of engine runs per bucket of simulated time and band of PE rows (see the module's
/// doc). Runs recorded into one timeline follow each other: each starts where the runs before
/// it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    /// Whether the engine records into it: a run without one tests this flag and no more
    /// (the recording functions are out of line and marked cold).
    pub(super) on: bool,
    /// Buckets are `1 << shift` cycles wide.
    shift: u32,
    /// Where the current run starts on the timeline: the cycles of the runs before it.
    pub(super) base_cycles: u64,
    /// The mesh the runs ran on (rows, columns; 0 before the first) and its bands of rows:
    /// row r is in band `r · bands / rows`.
    mesh: (u32, u32),
    bands: u32,
    /// The band of each PE (PE id = row · columns + column), looked up on every record.
    band_of_pe: Vec<u8>,
    /// Per bucket, per band: bucket b's band k at `b · bands + k`.
    counts: Vec<[u64; KINDS]>,
}

impl Timeline {
    /// An empty timeline that the runs it is given to record into.
    pub fn new() -> Self {
        Timeline {
            on: true,
            shift: SHIFT_MIN,
            bands: 1,
            ..Timeline::default()
        }
    }

    /// Cycles per bucket (a power of two, at least [`BUCKET_CYCLES_MIN`]).
    pub fn bucket_cycles(&self) -> u64 {
        1 << self.shift
    }

    /// The buckets of the whole mesh from cycle 0 of the first run to the last bucket anything
    /// happened in.
    pub fn buckets(&self) -> impl ExactSizeIterator<Item = Bucket> + '_ {
        self.counts.chunks(self.width()).map(|bands| {
            let mut sum = [0u64; KINDS];
            bands.iter().for_each(|counts| add_counts(&mut sum, counts));
            Bucket::of(&sum)
        })
    }

    /// The bands of PE rows, each as its first and last row.
    pub fn bands(&self) -> Vec<(u32, u32)> {
        let (rows, bands) = (self.mesh.0, self.bands);
        (0..bands)
            .map(|k| {
                let first = (0..rows).find(|r| r * bands / rows == k).unwrap_or(0);
                let last = (0..rows).rev().find(|r| r * bands / rows == k).unwrap_or(0);
                (first, last)
            })
            .collect()
    }

    /// The buckets of band `band` alone (as [`Timeline::buckets`]).
    pub fn band_buckets(&self, band: usize) -> impl Iterator<Item = Bucket> + '_ {
        let width = self.width();
        self.counts.iter().skip(band).step_by(width).map(Bucket::of)
    }

    /// Columns of the mesh the runs ran on.
    pub fn mesh_cols(&self) -> u32 {
        self.mesh.1
    }

    /// Cycles of the runs recorded so far, one after the other.
    pub fn cycles(&self) -> u64 {
        self.base_cycles
    }

    /// The sum of all buckets.
    pub fn total(&self) -> Bucket {
        let mut sum = [0u64; KINDS];
        self.counts
            .iter()
            .for_each(|counts| add_counts(&mut sum, counts));
        Bucket::of(&sum)
    }

    /// Entries per bucket (one per band; at least one).
    fn width(&self) -> usize {
        self.bands.max(1) as usize
    }

    /// A run on `mesh` starts. Runs on another mesh than the first (no kernel runs one) fold
    /// the bands into one, which every mesh has.
    pub(super) fn start_run(&mut self, rows: u32, cols: u32) {
        if self.mesh == (0, 0) {
            self.mesh = (rows, cols);
            self.bands = rows.clamp(1, BANDS_MAX);
            let bands = self.bands;
            self.band_of_pe = (0..rows)
                .flat_map(|r| std::iter::repeat_n((r * bands / rows) as u8, cols as usize))
                .collect();
        } else if self.mesh != (rows, cols) && self.bands > 1 {
            let whole: Vec<Bucket> = self.buckets().collect();
            self.counts = whole.iter().map(Bucket::counts).collect();
            self.bands = 1;
            self.band_of_pe.clear();
        }
    }

    /// The entry of `pe`'s band in bucket `bucket`.
    #[inline]
    fn index(&self, bucket: u64, pe: u32) -> usize {
        let band = self.band_of_pe.get(pe as usize).copied().unwrap_or(0);
        bucket as usize * self.width() + band as usize
    }

    /// Adds `weight` per cycle of `kind` at `pe` over `length` cycles from `start` (cycles of
    /// the current run), split at bucket boundaries.
    #[inline]
    pub(super) fn add(&mut self, kind: usize, pe: u32, (start, length): (u64, u64), weight: u64) {
        if length == 0 || weight == 0 {
            return;
        }
        let start = self.base_cycles + start;
        let end = start + length;
        if ((end - 1) >> self.shift) as usize >= self.counts.len() / self.width() {
            self.extend(end - 1);
        }
        let first = start >> self.shift;
        if first == (end - 1) >> self.shift {
            let i = self.index(first, pe);
            self.counts[i][kind] += length * weight;
            return;
        }
        let mut from = start;
        while from < end {
            let bucket = from >> self.shift;
            let to = end.min((bucket + 1) << self.shift);
            let i = self.index(bucket, pe);
            self.counts[i][kind] += (to - from) * weight;
            from = to;
        }
    }

    /// A wavelet (or a block of `wavelets`) leaving router `pe`'s buffer at `now` on every
    /// output of `route_out` (port bits, `Port::bit`): a hop per neighbour, a delivery if the
    /// ramp is one, each taking a cycle per wavelet. (Out of line and cold: only a watched
    /// run records.)
    #[cold]
    #[inline(never)]
    pub(super) fn record_moves(&mut self, pe: u32, now: u64, route_out: u8, wavelets: u64) {
        let neighbours = (route_out & !Port::Ramp.bit()).count_ones() as u64;
        self.add(HOPS, pe, (now, wavelets), neighbours);
        if route_out & Port::Ramp.bit() != 0 {
            self.add(DELIVERED, pe, (now, wavelets), 1);
        }
    }

    /// Makes room up to cycle `last`: wider buckets (pairs merged, band by band) while it
    /// would need more than [`BUCKETS_MAX`], then as many empty buckets as it takes.
    #[cold]
    fn extend(&mut self, last: u64) {
        let width = self.width();
        while (last >> self.shift) as usize >= BUCKETS_MAX {
            let mut merged = Vec::with_capacity(self.counts.len() / 2 + width);
            for pair in self.counts.chunks(2 * width) {
                let (first, second) = pair.split_at(width.min(pair.len()));
                for (k, counts) in first.iter().enumerate() {
                    let mut sum = *counts;
                    if let Some(other) = second.get(k) {
                        add_counts(&mut sum, other);
                    }
                    merged.push(sum);
                }
            }
            self.counts = merged;
            self.shift += 1;
        }
        let needed = ((last >> self.shift) as usize + 1) * width;
        if needed > self.counts.len() {
            self.counts.resize(needed, [0; KINDS]);
        }
    }

    /// The current run ended after `cycles`: the next starts there.
    pub(super) fn end_run(&mut self, cycles: u64) {
        self.base_cycles += cycles;
    }
}

fn add_counts(sum: &mut [u64; KINDS], counts: &[u64; KINDS]) {
    for (s, c) in sum.iter_mut().zip(counts) {
        *s += c;
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
        t.add(FMAC, 0, (10, 30), 1);
        let fmac: Vec<u64> = t.buckets().map(|b| b.fmac_cycles).collect();
        assert_eq!(fmac, vec![6, 16, 8]);
        // A weight counts per cycle: 2 hops a cycle over cycles 0..4.
        t.add(HOPS, 0, (0, 4), 2);
        assert_eq!(t.total().wavelet_hops, 8);
        assert_eq!(t.total().fmac_cycles, 30);
    }

    #[test]
    fn buckets_double_past_the_limit_and_keep_every_count() {
        let mut t = Timeline::new();
        let mut expected = 0u64;
        // Tasks of 7 cycles every 11 cycles over 100,000 cycles.
        for i in 0..100_000 / 11 {
            t.add(REDUCTION, 0, (i * 11, 7), 1);
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
    fn bands_of_rows_keep_their_counts_apart_through_merges() {
        let mut t = Timeline::new();
        // 40 rows of 3 PEs in 32 bands: row r in band r * 32 / 40.
        t.start_run(40, 3);
        let bands = t.bands();
        assert_eq!(bands.len(), 32);
        assert_eq!((bands[0], bands[1], bands[31]), ((0, 1), (2, 2), (39, 39)));
        // PE 3 is row 1 (band 0), PE 117 row 39 (band 31).
        t.add(FMAC, 3, (0, 10), 1);
        t.add(FMAC, 117, (100_000, 10), 1);
        assert!(t.buckets().len() <= BUCKETS_MAX);
        let band = |k: usize| t.band_buckets(k).map(|b| b.fmac_cycles).sum::<u64>();
        assert_eq!((band(0), band(1), band(31)), (10, 0, 10));
        let last = t.band_buckets(31).position(|b| b.fmac_cycles > 0).unwrap();
        assert_eq!(last as u64, 100_000 / t.bucket_cycles());
        // A run on another mesh folds the bands into one and keeps every count.
        t.start_run(8, 8);
        assert_eq!((t.bands().len(), t.total().fmac_cycles), (1, 20));
    }

    #[test]
    fn runs_recorded_into_one_timeline_follow_each_other() {
        let mut watch = Watch {
            timeline: Some(Timeline::new()),
            ..Watch::default()
        };
        let mut first = watch.take_timeline();
        first.add(FMAC, 0, (0, 16), 1);
        watch.end_run(20, first);
        let mut second = watch.take_timeline();
        second.add(FMAC, 0, (0, 16), 1);
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
