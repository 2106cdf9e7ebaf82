//! The non-zeros each PE column of a GEMM receives: what the engine's kernels run and the cost
//! models price, taken from a mask ([`super::Mask::pe_column_counts`]).

use super::split_range;

/// The non-zeros each PE column of a GEMM receives per output column, when the streamed
/// `K × N` weight is split over `c_k` K-groups and `c_n` N-groups (as [`split_range`] deals
/// them): PE column `c = g_n · c_k + g_k` receives, for each output column of N-slice `g_n`, the
/// kept entries of K-slice `g_k` in it.
///
/// Stored once per (K-group, output column), 32 bits each (a count is at most a K-slice's
/// length): a PE column's counts are a slice of that table, not a copy. At full scale a GEMM has
/// up to a few million of them, and copies per PE column used to dominate a step's time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeColumnCounts {
    c_k: usize,
    c_n: usize,
    /// Output columns of the whole weight (`N`).
    lines: usize,
    /// `table[g_k · lines + i]`: kept entries of K-slice `g_k` in output column `i`.
    table: Vec<u32>,
}

impl PeColumnCounts {
    /// Counts from a table of `c_k` rows of `lines` output columns each.
    pub(crate) fn new(c_k: usize, c_n: usize, lines: usize, table: Vec<u32>) -> Self {
        assert_eq!(
            table.len(),
            c_k * lines,
            "one count per K-group and output column"
        );
        assert!(
            c_k >= 1 && (1..=lines.max(1)).contains(&c_n),
            "{c_k} x {c_n} over {lines}"
        );
        Self {
            c_k,
            c_n,
            lines,
            table,
        }
    }

    /// The counts of a mask drawn uniformly among those that keep `nonzeros` of the `k × lines`
    /// entries of a streamed weight (`k` its reduced dimension, `lines` its output lines), split
    /// over `c_k` K-groups and `c_n` N-groups as [`Self::column`] deals them; each count from its
    /// exact distribution given the others', without drawing the entries. The table is split in
    /// halves recursively, the kept entries of a half drawn as a hypergeometric (how many of the
    /// whole's kept fall among the half's entries), down to single counts: every table a
    /// uniformly random mask can have comes out with that mask's probability.
    pub fn drawn(
        k: usize,
        lines: usize,
        nonzeros: u64,
        (c_k, c_n): (usize, usize),
        stream: &mut crate::random::Stream,
    ) -> Self {
        assert!(
            nonzeros <= (k * lines) as u64,
            "{nonzeros} kept of {k} x {lines}"
        );
        let cells = c_k * lines;
        // Entries before cell `j`: whole K-slices of `lines` cells, then `j mod lines` cells of
        // the slice `j` is in.
        let starts: Vec<usize> = (0..=c_k).map(|g| g * k / c_k).collect();
        let before = |j: usize| -> u64 {
            if j >= cells {
                return (k * lines) as u64;
            }
            let (g, rest) = (j / lines, j % lines);
            (starts[g] * lines + rest * (starts[g + 1] - starts[g])) as u64
        };
        let mut table = vec![0u32; cells];
        // Depth first, left half first: the order the draws come in is fixed. Each range
        // carries the entries before its ends.
        let mut pending = vec![(0usize, cells, 0u64, before(cells), nonzeros)];
        while let Some((from, to, at_from, at_to, kept)) = pending.pop() {
            if to - from == 1 {
                table[from] = kept as u32;
                continue;
            }
            if kept == 0 {
                continue;
            }
            let whole = at_to - at_from;
            if kept == whole {
                for (j, count) in table.iter_mut().enumerate().take(to).skip(from) {
                    *count = (before(j + 1) - before(j)) as u32;
                }
                continue;
            }
            let mid = from + (to - from) / 2;
            let at_mid = before(mid);
            let left = small_hypergeometric(stream, whole, kept, at_mid - at_from)
                .unwrap_or_else(|| stream.hypergeometric(whole, kept, at_mid - at_from));
            pending.push((mid, to, at_mid, at_to, kept - left));
            pending.push((from, mid, at_from, at_mid, left));
        }
        Self::new(c_k, c_n, lines, table)
    }

    /// PE columns: `c_k · c_n`.
    pub fn len(&self) -> usize {
        self.c_k * self.c_n
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// K-groups of a row.
    pub fn c_k(&self) -> usize {
        self.c_k
    }

    /// The counts PE column `c` receives, one per output column of its N-slice.
    pub fn column(&self, c: usize) -> &[u32] {
        let (g_n, g_k) = (c / self.c_k, c % self.c_k);
        let outputs = split_range(self.lines, self.c_n, g_n);
        let row = g_k * self.lines;
        &self.table[row + outputs.start..row + outputs.end]
    }

    /// Every PE column's counts, in column order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u32]> + '_ {
        (0..self.len()).map(|c| self.column(c))
    }

    /// The non-zeros PE column `c` receives in all.
    pub fn total(&self, c: usize) -> u64 {
        self.column(c).iter().map(|&n| u64::from(n)).sum()
    }

    /// The non-zeros of the whole weight.
    pub fn sum(&self) -> u64 {
        self.table.iter().map(|&n| u64::from(n)).sum()
    }
}

/// Populations up to this many entries draw from a remembered cumulative distribution.
const SMALL_POPULATION: u64 = 1024;
/// Distributions a thread remembers before it forgets them all (each at most 4 KiB).
const SMALL_REMEMBERED: usize = 2048;

/// A key's hash for [`SMALL_CDFS`]: its three numbers packed in one word and multiplied out
/// (the keys are small and few; SipHash took a quarter of a draw).
#[derive(Default)]
struct PackedKey(u64);

impl std::hash::Hasher for PackedKey {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(21) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type SmallCdfs = std::collections::HashMap<
    (u64, u64, u64),
    Box<[f64]>,
    std::hash::BuildHasherDefault<PackedKey>,
>;

thread_local! {
    /// Cumulative hypergeometric distributions of small populations by (population, marked,
    /// draws): the bottom levels of [`PeColumnCounts::drawn`]'s halving meet the same few
    /// hundred again and again. Only speed depends on it, never a draw.
    static SMALL_CDFS: std::cell::RefCell<SmallCdfs> = std::cell::RefCell::new(SmallCdfs::default());
}

/// A hypergeometric draw by inverting its remembered cumulative distribution (one
/// [`crate::random::Stream::unit`] and a binary search), for populations up to
/// [`SMALL_POPULATION`]; `None` beyond. The probabilities are built from the mode outwards by
/// the ratios of neighbours, as [`crate::random::Stream::hypergeometric`] walks them.
fn small_hypergeometric(
    stream: &mut crate::random::Stream,
    population: u64,
    marked: u64,
    draws: u64,
) -> Option<u64> {
    if population > SMALL_POPULATION {
        return None;
    }
    let low = (draws + marked).saturating_sub(population);
    let u = stream.unit();
    SMALL_CDFS.with(|cdfs| {
        let mut cdfs = cdfs.borrow_mut();
        if cdfs.len() >= SMALL_REMEMBERED {
            cdfs.clear();
        }
        let cdf = cdfs
            .entry((population, marked, draws))
            .or_insert_with(|| hypergeometric_cdf(population, marked, draws));
        // The first value whose cumulative probability passes u; the last if rounding left
        // the total a hair below 1.
        let at = cdf.partition_point(|&c| c <= u).min(cdf.len() - 1);
        Some(low + at as u64)
    })
}

/// `P(X ≤ x)` for `x` from the support's low end to its high end.
fn hypergeometric_cdf(population: u64, marked: u64, draws: u64) -> Box<[f64]> {
    let low = (draws + marked).saturating_sub(population);
    let high = draws.min(marked);
    let (n_all, k, n) = (population as f64, marked as f64, draws as f64);
    let others = n_all - k - n;
    let mode = (((n + 1.0) * (k + 1.0) / (n_all + 2.0)).floor() as u64).clamp(low, high);
    let mut pmf = vec![0.0; (high - low + 1) as usize];
    let ln_p = crate::random::ln_factorial(marked)
        - crate::random::ln_factorial(mode)
        - crate::random::ln_factorial(marked - mode)
        + crate::random::ln_factorial(population - marked)
        - crate::random::ln_factorial(draws - mode)
        - crate::random::ln_factorial(population - marked - (draws - mode))
        - (crate::random::ln_factorial(population)
            - crate::random::ln_factorial(draws)
            - crate::random::ln_factorial(population - draws));
    let at = |x: u64| (x - low) as usize;
    pmf[at(mode)] = ln_p.exp();
    for x in mode..high {
        let xf = x as f64;
        pmf[at(x + 1)] = pmf[at(x)] * (k - xf) * (n - xf) / ((xf + 1.0) * (others + xf + 1.0));
    }
    for x in (low + 1..=mode).rev() {
        let xf = x as f64;
        pmf[at(x - 1)] = pmf[at(x)] * xf * (others + xf) / ((k - xf + 1.0) * (n - xf + 1.0));
    }
    let mut sum = 0.0;
    pmf.iter()
        .map(|p| {
            sum += p;
            sum
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::Stream;
    use crate::sparsity::Mask;

    /// The remembered distributions are the exact ones: each probability against binomial
    /// coefficients, summing to 1.
    #[test]
    fn small_population_distributions_are_exact() {
        let ln_choose = |n: u64, k: u64| {
            use crate::random::ln_factorial as f;
            f(n) - f(k) - f(n - k)
        };
        for (population, marked, draws) in [(10, 3, 4), (256, 64, 128), (1024, 900, 512), (7, 7, 3)]
        {
            let cdf = hypergeometric_cdf(population, marked, draws);
            let low = (draws + marked).saturating_sub(population);
            let mut previous = 0.0;
            for (i, &c) in cdf.iter().enumerate() {
                let x = low + i as u64;
                let exact = (ln_choose(marked, x) + ln_choose(population - marked, draws - x)
                    - ln_choose(population, draws))
                .exp();
                assert!(
                    (c - previous - exact).abs() <= 1e-12,
                    "({population}, {marked}, {draws}) at {x}"
                );
                previous = c;
            }
            assert!((previous - 1.0).abs() < 1e-9);
        }
    }

    #[test]
    fn drawn_counts_keep_exactly_the_nonzeros_and_replay_from_their_seed() {
        for (k, lines, tile) in [
            (64, 48, (4, 3)),
            (70, 45, (3, 7)),
            (5, 9, (5, 9)),
            (1, 1, (1, 1)),
        ] {
            for kept in [0, 1, (k * lines / 4) as u64, (k * lines) as u64] {
                let counts = PeColumnCounts::drawn(k, lines, kept, tile, &mut Stream::new(3));
                assert_eq!(counts.sum(), kept, "{k} x {lines}");
                assert_eq!(counts.len(), tile.0 * tile.1);
                // No cell holds more than its K-slice has.
                for c in 0..counts.len() {
                    let slice = split_range(k, tile.0, c % tile.0).len() as u32;
                    assert!(counts.column(c).iter().all(|&n| n <= slice));
                }
                let again = PeColumnCounts::drawn(k, lines, kept, tile, &mut Stream::new(3));
                assert_eq!(counts, again);
            }
        }
        let one = PeColumnCounts::drawn(64, 48, 768, (4, 3), &mut Stream::new(3));
        let other = PeColumnCounts::drawn(64, 48, 768, (4, 3), &mut Stream::new(4));
        assert_ne!(one, other);
    }

    /// Counts drawn without entries and counts of masks drawn entry by entry
    /// (`Mask::random`) have the same distribution: over 400 seeds each, the busiest PE
    /// column's mean and spread, and one cell's mean and variance, agree within their
    /// standard errors (4.5 of them).
    #[test]
    fn drawn_counts_are_distributed_as_a_random_masks() {
        let (k, n, tile, sparsity) = (96, 40, (4, 5), 0.7);
        let kept = crate::sparsity::nonzeros_expected((k * n) as u64, sparsity);
        let seeds = 400u64;
        let stats = |draw: &dyn Fn(u64) -> PeColumnCounts| {
            let (mut max, mut max2, mut cell, mut cell2) = (0.0, 0.0, 0.0, 0.0);
            for seed in 0..seeds {
                let counts = draw(seed);
                let m = (0..counts.len()).map(|c| counts.total(c)).max().unwrap() as f64;
                let x = f64::from(counts.column(7)[2]);
                (max, max2, cell, cell2) = (max + m, max2 + m * m, cell + x, cell2 + x * x);
            }
            let s = seeds as f64;
            let (max, cell) = (max / s, cell / s);
            (max, max2 / s - max * max, cell, cell2 / s - cell * cell)
        };
        let drawn = stats(&|seed| PeColumnCounts::drawn(k, n, kept, tile, &mut Stream::new(seed)));
        let masked = stats(&|seed| {
            Mask::random(k, n, sparsity, 1000 + seed).pe_column_counts(false, tile.0, tile.1)
        });
        let close =
            |a: f64, b: f64, var: f64| (a - b).abs() <= 4.5 * (2.0 * var / seeds as f64).sqrt();
        assert!(
            close(drawn.0, masked.0, masked.1.max(drawn.1)),
            "{drawn:?} {masked:?}"
        );
        assert!(
            close(drawn.2, masked.2, masked.3.max(drawn.3)),
            "{drawn:?} {masked:?}"
        );
        // One cell of a 24-entry K-slice: hypergeometric, mean 24 · 0.3 = 7.2.
        assert!((drawn.2 - 7.2).abs() < 0.3, "{drawn:?}");
        // The variances within 30% of each other (400 draws each).
        assert!(
            (drawn.1 / masked.1 - 1.0).abs() < 0.3,
            "{drawn:?} {masked:?}"
        );
        assert!(
            (drawn.3 / masked.3 - 1.0).abs() < 0.3,
            "{drawn:?} {masked:?}"
        );
    }
}
