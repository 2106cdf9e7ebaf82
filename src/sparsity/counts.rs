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
    /// over `c_k` K-groups and `c_n` N-groups as [`Self::column`] deals them, each count from its
    /// exact distribution, without drawing the entries. Each entry is first kept with
    /// probability `nonzeros / (k · lines)` on its own, so a cell of `s` entries keeps a
    /// binomial(s, p) count; then as many kept entries as there are too many are dropped, or as
    /// many zeros as there are too few are kept, each chosen uniformly among all the entries'
    /// (a cell with the probability of its share). The first mask is exchangeable and the
    /// correction treats every entry alike, so the result is exchangeable with exactly
    /// `nonzeros` kept: uniform among all such masks, as [`super::Mask::random`] draws one.
    pub fn drawn(
        k: usize,
        lines: usize,
        nonzeros: u64,
        (c_k, c_n): (usize, usize),
        stream: &mut crate::random::Stream,
    ) -> Self {
        let entries = (k * lines) as u64;
        assert!(nonzeros <= entries, "{nonzeros} kept of {k} x {lines}");
        let sizes: Vec<u32> = (0..c_k)
            .map(|g| split_range(k, c_k, g).len() as u32)
            .collect();
        let mut table = vec![0u32; c_k * lines];
        if nonzeros == entries {
            for (g, row) in table.chunks_mut(lines.max(1)).enumerate() {
                row.fill(sizes[g]);
            }
        }
        if nonzeros == 0 || nonzeros == entries {
            return Self::new(c_k, c_n, lines, table);
        }
        let density = nonzeros as f64 / entries as f64;
        // A K-slice's cells are all of its size: at most two sizes in all.
        let mut samplers: Vec<(u32, Binomial)> = Vec::new();
        let mut kept = 0u64;
        for (g, row) in table.chunks_mut(lines).enumerate() {
            let size = sizes[g];
            let at = match samplers.iter().position(|(s, _)| *s == size) {
                Some(at) => at,
                None => {
                    samplers.push((size, Binomial::new(size, density)));
                    samplers.len() - 1
                }
            };
            let binomial = &samplers[at].1;
            for cell in row.iter_mut() {
                *cell = binomial.draw(stream.unit());
                kept += u64::from(*cell);
            }
        }
        // Too many kept: drop uniformly chosen kept entries; too few: keep uniformly chosen zeros.
        let drop = kept > nonzeros;
        let changes = kept.abs_diff(nonzeros);
        let share = |j: usize, n: u32| match drop {
            true => u64::from(n),
            false => u64::from(sizes[j / lines] - n),
        };
        let mut chosen = Fenwick::new(table.iter().enumerate().map(|(j, &n)| share(j, n)));
        let mut left = match drop {
            true => kept,
            false => entries - kept,
        };
        for _ in 0..changes {
            let j = chosen.find(stream.below(left));
            match drop {
                true => table[j] -= 1,
                false => table[j] += 1,
            }
            chosen.take_one(j);
            left -= 1;
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

/// Draws of a binomial(n, p) by inverting its cumulative distribution with a guide table (Chen
/// and Asau, "On generating random variates from an empirical distribution", AIIE Trans. 6,
/// 1974): `guide[i]` is the first value whose cumulative probability passes `i / n+1`, so a
/// draw of `u` starts at `guide[⌊u·(n+1)⌋]` and steps up at most a few values.
struct Binomial {
    cdf: Vec<f64>,
    guide: Vec<u32>,
}

impl Binomial {
    /// The probabilities built from the mode outwards by the ratio of neighbours,
    /// `P(x+1)/P(x) = (n−x)/(x+1) · p/(1−p)`, the mode's from log-factorials.
    fn new(n: u32, p: f64) -> Self {
        let ln_factorial = crate::random::ln_factorial;
        let nf = f64::from(n);
        let mode = (((nf + 1.0) * p).floor() as u32).min(n);
        let (mf, odds) = (f64::from(mode), p / (1.0 - p));
        let ln_mode = ln_factorial(u64::from(n))
            - ln_factorial(u64::from(mode))
            - ln_factorial(u64::from(n - mode))
            + mf * p.ln()
            + (nf - mf) * (1.0 - p).ln();
        let mut pmf = vec![0.0; n as usize + 1];
        pmf[mode as usize] = ln_mode.exp();
        for x in mode..n {
            let xf = f64::from(x);
            pmf[x as usize + 1] = pmf[x as usize] * (nf - xf) / (xf + 1.0) * odds;
        }
        for x in (1..=mode).rev() {
            let xf = f64::from(x);
            pmf[x as usize - 1] = pmf[x as usize] * xf / ((nf - xf + 1.0) * odds);
        }
        let mut sum = 0.0;
        let cdf: Vec<f64> = pmf
            .iter()
            .map(|q| {
                sum += q;
                sum
            })
            .collect();
        let buckets = cdf.len();
        let mut guide = Vec::with_capacity(buckets);
        let mut x = 0;
        for i in 0..buckets {
            let level = i as f64 / buckets as f64;
            while x + 1 < buckets && cdf[x] <= level {
                x += 1;
            }
            guide.push(x as u32);
        }
        Self { cdf, guide }
    }

    /// The value `u` in [0, 1) falls on: the first whose cumulative probability passes it (the
    /// last if rounding left the total a hair below 1).
    fn draw(&self, u: f64) -> u32 {
        let last = self.cdf.len() - 1;
        let mut x = self.guide[((u * self.cdf.len() as f64) as usize).min(last)] as usize;
        while x < last && self.cdf[x] <= u {
            x += 1;
        }
        x as u32
    }
}

/// A Fenwick tree of weights (Fenwick, "A new data structure for cumulative frequency tables",
/// Softw. Pract. Exper. 24, 1994): the cell a uniform draw below the total falls in, and one
/// taken from a cell's weight, each in `log n` steps.
struct Fenwick {
    tree: Vec<u64>,
}

impl Fenwick {
    fn new(weights: impl Iterator<Item = u64>) -> Self {
        let mut tree: Vec<u64> = std::iter::once(0).chain(weights).collect();
        for i in 1..tree.len() {
            let parent = i + (i & i.wrapping_neg());
            if parent < tree.len() {
                tree[parent] += tree[i];
            }
        }
        Self { tree }
    }

    /// The cell whose weight's range holds `r` (0 ≤ r < the total): the first whose running
    /// total passes `r`.
    fn find(&self, mut r: u64) -> usize {
        let n = self.tree.len() - 1;
        let mut at = 0;
        let mut step = n.next_power_of_two();
        while step > 0 {
            let next = at + step;
            if next <= n && self.tree[next] <= r {
                at = next;
                r -= self.tree[next];
            }
            step /= 2;
        }
        at
    }

    /// Takes one from cell `j`'s weight.
    fn take_one(&mut self, j: usize) {
        let mut i = j + 1;
        while i < self.tree.len() {
            self.tree[i] -= 1;
            i += i & i.wrapping_neg();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::Stream;
    use crate::sparsity::Mask;

    /// The binomial's probabilities are the exact ones, and its guide finds every value as a
    /// binary search of the cumulative distribution would.
    #[test]
    fn binomial_draws_invert_the_exact_distribution() {
        use crate::random::ln_factorial as f;
        for (n, p) in [
            (1u32, 0.5),
            (10, 0.3),
            (128, 0.25),
            (4096, 0.75),
            (7, 0.999),
        ] {
            let b = Binomial::new(n, p);
            let mut previous = 0.0;
            for (x, &c) in b.cdf.iter().enumerate() {
                let x64 = x as u64;
                let exact = (f(u64::from(n)) - f(x64) - f(u64::from(n) - x64)
                    + x as f64 * p.ln()
                    + (f64::from(n) - x as f64) * (1.0 - p).ln())
                .exp();
                assert!((c - previous - exact).abs() <= 1e-12, "({n}, {p}) at {x}");
                previous = c;
            }
            assert!((previous - 1.0).abs() < 1e-9);
            for i in 0..=1000 {
                let u = f64::from(i) / 1000.0 * 0.999_999;
                let searched = b.cdf.partition_point(|&c| c <= u).min(b.cdf.len() - 1);
                assert_eq!(b.draw(u) as usize, searched, "({n}, {p}) at u = {u}");
            }
        }
    }

    #[test]
    fn fenwick_finds_the_cell_of_each_draw_and_takes_from_it() {
        let weights = [3u64, 0, 5, 1, 0, 2];
        let mut tree = Fenwick::new(weights.iter().copied());
        let cells: Vec<usize> = (0..11).map(|r| tree.find(r)).collect();
        assert_eq!(cells, [0, 0, 0, 2, 2, 2, 2, 2, 3, 5, 5]);
        tree.take_one(2);
        let cells: Vec<usize> = (0..10).map(|r| tree.find(r)).collect();
        assert_eq!(cells, [0, 0, 0, 2, 2, 2, 2, 3, 5, 5]);
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
        // One cell of a 24-entry K-slice: mean 24 · 0.3 = 7.2.
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
