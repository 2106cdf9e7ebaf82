//! Unstructured random masks drawn from a seed, and the non-zero counts of their tiles.

use super::{nonzeros_expected, Pattern};
use crate::random::Stream;

/// Which entries of a `rows × cols` weight are kept (non-zero), row-major, one bit each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask {
    rows: usize,
    cols: usize,
    bits: Vec<u64>,
    nonzeros: u64,
}

impl Mask {
    /// Every entry kept.
    pub fn dense(rows: usize, cols: usize) -> Self {
        let mut mask = Self::empty(rows, cols);
        for i in 0..rows * cols {
            mask.bits[i / 64] |= 1 << (i % 64);
        }
        mask.nonzeros = (rows * cols) as u64;
        mask
    }

    fn empty(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            bits: vec![0; (rows * cols).div_ceil(64)],
            nonzeros: 0,
        }
    }

    /// Exactly `nonzeros_expected(rows · cols, sparsity)` entries kept, each subset of that size
    /// equally likely (selection sampling, one draw of `crate::random::Stream` per entry in
    /// row-major order), so the same seed gives the same mask on every platform and with every
    /// version of the dependencies.
    pub fn random(rows: usize, cols: usize, sparsity: f64, seed: u64) -> Self {
        let elements = (rows * cols) as u64;
        let keep = nonzeros_expected(elements, sparsity);
        let mut stream = Stream::new(seed);
        let mut mask = Self::empty(rows, cols);
        let mut needed = keep;
        for i in 0..elements {
            if needed == 0 {
                break;
            }
            if stream.below(elements - i) < needed {
                mask.bits[(i / 64) as usize] |= 1 << (i % 64);
                needed -= 1;
            }
        }
        mask.nonzeros = keep;
        mask
    }

    /// A `rows × cols` weight (inputs × outputs) masked by `pattern` at `sparsity` (N:M takes
    /// its own), keeping exactly [`Pattern::nonzeros`] entries; `random` is [`Mask::random`].
    /// Every choice is selection sampling on one `crate::random::Stream` from `seed`: N:M draws
    /// output column by column, group by group; blocks in row-major block order; `rows` and
    /// `cols` line by line. The caller checks the shape first ([`Pattern::check_shape`]).
    pub fn from_pattern(
        rows: usize,
        cols: usize,
        pattern: Pattern,
        sparsity: f64,
        seed: u64,
    ) -> Self {
        let mut stream = Stream::new(seed);
        let mut mask = Self::empty(rows, cols);
        match pattern {
            Pattern::Random => return Self::random(rows, cols, sparsity, seed),
            Pattern::NofM { n, m } => {
                let (n, m) = (n as usize, m as usize);
                for c in 0..cols {
                    for group in 0..rows / m {
                        for (j, keep) in choose(&mut stream, m, n).into_iter().enumerate() {
                            if keep {
                                mask.set(group * m + j, c);
                            }
                        }
                    }
                }
            }
            Pattern::Blocks { b } => {
                let b = b as usize;
                let (down, across) = (rows / b, cols / b);
                let keep = nonzeros_expected((down * across) as u64, sparsity) as usize;
                for (i, kept) in choose(&mut stream, down * across, keep)
                    .into_iter()
                    .enumerate()
                {
                    if kept {
                        let (r0, c0) = (i / across * b, i % across * b);
                        for r in r0..r0 + b {
                            for c in c0..c0 + b {
                                mask.set(r, c);
                            }
                        }
                    }
                }
            }
            Pattern::Rows => {
                let keep = nonzeros_expected(rows as u64, sparsity) as usize;
                for (r, kept) in choose(&mut stream, rows, keep).into_iter().enumerate() {
                    if kept {
                        (0..cols).for_each(|c| mask.set(r, c));
                    }
                }
            }
            Pattern::Skewed { sigma_milli } => {
                let sigma = f64::from(sigma_milli) / 1000.0;
                let mut weights = |n: usize| -> Vec<f64> {
                    (0..n)
                        .map(|_| (sigma * stream.standard_normal()).exp())
                        .collect()
                };
                let (row_w, col_w) = (weights(rows), weights(cols));
                let keep = nonzeros_expected((rows * cols) as u64, sparsity) as usize;
                // Efraimidis–Spirakis: each entry's key ln(u) / w, the `keep` largest kept
                // (ties, which a 53-bit u makes all but impossible, by position).
                let mut keys: Vec<(f64, usize)> = (0..rows * cols)
                    .map(|i| {
                        let u = stream.unit().max(f64::MIN_POSITIVE);
                        (u.ln() / (row_w[i / cols] * col_w[i % cols]), i)
                    })
                    .collect();
                if keep > 0 && keep < keys.len() {
                    keys.select_nth_unstable_by(keep - 1, |a, b| {
                        b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
                    });
                }
                for &(_, i) in keys.iter().take(keep) {
                    mask.set(i / cols, i % cols);
                }
            }
            Pattern::Cols => {
                let keep = nonzeros_expected(cols as u64, sparsity) as usize;
                for (c, kept) in choose(&mut stream, cols, keep).into_iter().enumerate() {
                    if kept {
                        (0..rows).for_each(|r| mask.set(r, c));
                    }
                }
            }
        }
        mask
    }

    /// A `rows × cols` mask whose entry `(r, c)` is `kept(r, c)`, filled row by row: how a mask
    /// read from a file is laid out whatever the tensor's order.
    pub fn from_fn(rows: usize, cols: usize, mut kept: impl FnMut(usize, usize) -> bool) -> Self {
        let mut mask = Self::empty(rows, cols);
        let mut nonzeros = 0;
        for r in 0..rows {
            for c in 0..cols {
                if kept(r, c) {
                    let i = r * cols + c;
                    mask.bits[i / 64] |= 1 << (i % 64);
                    nonzeros += 1;
                }
            }
        }
        mask.nonzeros = nonzeros;
        mask
    }

    /// The non-zeros each PE column of a GEMM receives per output column when this `K × N`
    /// weight streams split over `c_k` K-groups and `c_n` N-groups (as [`split_range`] deals
    /// them): `counts[g_n · c_k + g_k][i]` is the kept entries of K-slice `g_k` in the `i`-th
    /// output column of N-slice `g_n`. `transposed`: the stream is the weight's transpose (dgrad,
    /// `Wᵀ` is `N × K`: K-groups split the weight's columns, output columns are its rows). The
    /// engine's kernels and the cost models both take their counts from here.
    pub fn pe_column_counts(&self, transposed: bool, c_k: usize, c_n: usize) -> Vec<Vec<u64>> {
        let (k_in, n_out) = match transposed {
            false => (self.rows, self.cols),
            true => (self.cols, self.rows),
        };
        let (c_k, c_n) = (c_k.clamp(1, k_in.max(1)), c_n.clamp(1, n_out.max(1)));
        // table[g_k][output line]: kept entries of K-slice g_k in that output line.
        let mut table = vec![vec![0u64; n_out]; c_k];
        if transposed {
            // Output line = a row of the weight; K-slices cut across its columns.
            for (g_k, line) in table.iter_mut().enumerate() {
                let cols = split_range(self.cols, c_k, g_k);
                for (r, count) in line.iter_mut().enumerate() {
                    let start = r * self.cols;
                    *count = self.count_bits(start + cols.start..start + cols.end);
                }
            }
        } else {
            // K-slice = a run of the weight's rows; output line = a column.
            for (g_k, line) in table.iter_mut().enumerate() {
                for r in split_range(self.rows, c_k, g_k) {
                    self.for_each_kept_in(r * self.cols..(r + 1) * self.cols, |i| {
                        line[i - r * self.cols] += 1;
                    });
                }
            }
        }
        (0..c_n * c_k)
            .map(|c| {
                let (g_n, g_k) = (c / c_k, c % c_k);
                table[g_k][split_range(n_out, c_n, g_n)].to_vec()
            })
            .collect()
    }

    /// Kept entries among bit positions `range` (row-major).
    fn count_bits(&self, range: std::ops::Range<usize>) -> u64 {
        let mut count = 0;
        let mut i = range.start;
        while i < range.end {
            let (word, bit) = (i / 64, i % 64);
            let span = (64 - bit).min(range.end - i);
            let bits = self.bits[word] >> bit;
            let bits = if span == 64 {
                bits
            } else {
                bits & ((1 << span) - 1)
            };
            count += u64::from(bits.count_ones());
            i += span;
        }
        count
    }

    /// Calls `f` with every kept bit position in `range` (row-major), in order.
    fn for_each_kept_in(&self, range: std::ops::Range<usize>, mut f: impl FnMut(usize)) {
        let mut i = range.start;
        while i < range.end {
            let (word, bit) = (i / 64, i % 64);
            let span = (64 - bit).min(range.end - i);
            let mut bits = self.bits[word] >> bit;
            if span < 64 {
                bits &= (1 << span) - 1;
            }
            while bits != 0 {
                f(i + bits.trailing_zeros() as usize);
                bits &= bits - 1;
            }
            i += span;
        }
    }

    fn set(&mut self, row: usize, col: usize) {
        let i = row * self.cols + col;
        if self.bits[i / 64] >> (i % 64) & 1 == 0 {
            self.bits[i / 64] |= 1 << (i % 64);
            self.nonzeros += 1;
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn nonzeros(&self) -> u64 {
        self.nonzeros
    }

    #[inline]
    pub fn get(&self, row: usize, col: usize) -> bool {
        let i = row * self.cols + col;
        self.bits[i / 64] >> (i % 64) & 1 == 1
    }

    /// The mask of the transposed weight.
    pub fn transposed(&self) -> Self {
        let mut t = Self::empty(self.cols, self.rows);
        for r in 0..self.rows {
            for c in 0..self.cols {
                if self.get(r, c) {
                    let i = c * self.rows + r;
                    t.bits[i / 64] |= 1 << (i % 64);
                }
            }
        }
        t.nonzeros = self.nonzeros;
        t
    }

    /// Non-zeros in rows `rows` of column `col`.
    pub fn count_in_column(&self, rows: std::ops::Range<usize>, col: usize) -> u64 {
        rows.filter(|&r| self.get(r, col)).count() as u64
    }
}

/// Which `keep` of `items` to keep, every subset equally likely: selection sampling, one draw
/// of `stream` per item until none is needed.
fn choose(stream: &mut Stream, items: usize, keep: usize) -> Vec<bool> {
    let mut needed = keep as u64;
    (0..items as u64)
        .map(|i| {
            let kept = needed > 0 && stream.below(items as u64 - i) < needed;
            needed -= u64::from(kept);
            kept
        })
        .collect()
}

/// `n` split into `parts` contiguous slices as even as possible: slice `i` is
/// `[i·n/parts, (i+1)·n/parts)`.
pub fn split_range(n: usize, parts: usize, i: usize) -> std::ops::Range<usize> {
    (i * n / parts)..((i + 1) * n / parts)
}

/// Non-zeros of each tile when the mask's rows are split into `row_parts` slices and its
/// columns into `col_parts` (as [`split_range`]): row-major `row_parts × col_parts`.
pub fn nonzeros_per_tile(mask: &Mask, row_parts: usize, col_parts: usize) -> Vec<u64> {
    let mut counts = vec![0; row_parts * col_parts];
    for i in 0..row_parts {
        for j in 0..col_parts {
            counts[i * col_parts + j] = split_range(mask.cols(), col_parts, j)
                .map(|c| mask.count_in_column(split_range(mask.rows(), row_parts, i), c))
                .sum();
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_mask_keeps_the_exact_count_and_replays_from_its_seed() {
        let m = Mask::random(64, 48, 0.75, 7);
        assert_eq!(m.nonzeros(), 768);
        let counted: u64 = (0..48).map(|c| m.count_in_column(0..64, c)).sum();
        assert_eq!(counted, 768);
        assert_eq!(m, Mask::random(64, 48, 0.75, 7));
        assert_ne!(m, Mask::random(64, 48, 0.75, 8));
        assert_eq!(nonzeros_per_tile(&m, 4, 3).iter().sum::<u64>(), 768);
        let t = m.transposed();
        assert!((0..64).all(|r| (0..48).all(|c| m.get(r, c) == t.get(c, r))));
    }

    #[test]
    fn pe_column_counts_are_the_per_element_counts_of_each_slice() {
        let m = Mask::from_pattern(70, 45, "skewed:1".parse().unwrap(), 0.6, 5);
        for transposed in [false, true] {
            let w = if transposed {
                m.transposed()
            } else {
                m.clone()
            };
            for (c_k, c_n) in [(1, 1), (3, 4), (7, 5), (2, 45), (1, 9)] {
                let counts = m.pe_column_counts(transposed, c_k, c_n);
                assert_eq!(counts.len(), c_k * c_n);
                for (c, column) in counts.iter().enumerate() {
                    let (g_n, g_k) = (c / c_k, c % c_k);
                    let expected: Vec<u64> = split_range(w.cols(), c_n, g_n)
                        .map(|n| w.count_in_column(split_range(w.rows(), c_k, g_k), n))
                        .collect();
                    assert_eq!(
                        column, &expected,
                        "transposed {transposed}, {c_k}x{c_n}, {c}"
                    );
                }
                let total: u64 = counts.iter().flatten().sum();
                assert_eq!(total, m.nonzeros());
            }
        }
        let built = Mask::from_fn(70, 45, |r, c| m.get(r, c));
        assert_eq!(built, m);
    }

    #[test]
    fn every_pattern_keeps_its_exact_count_in_its_structure() {
        let (k, n, s) = (32, 24, 0.75);
        for text in [
            "random", "2:4", "1:8", "block:4", "block:8", "rows", "cols", "skewed:1",
        ] {
            let p: Pattern = text.parse().unwrap();
            p.check_shape(k as u64, n as u64).unwrap();
            let m = Mask::from_pattern(k, n, p, s, 3);
            let counted: u64 = (0..n).map(|c| m.count_in_column(0..k, c)).sum();
            assert_eq!(m.nonzeros(), p.nonzeros(k as u64, n as u64, s), "{text}");
            assert_eq!(counted, m.nonzeros(), "{text}");
            assert_eq!(m, Mask::from_pattern(k, n, p, s, 3), "{text}: replays");
            assert_ne!(m, Mask::from_pattern(k, n, p, s, 4), "{text}: seeded");
        }
        let nm = Mask::from_pattern(k, n, Pattern::NofM { n: 2, m: 4 }, s, 1);
        assert!((0..n).all(|c| (0..k / 4).all(|g| nm.count_in_column(4 * g..4 * g + 4, c) == 2)));
        let rows = Mask::from_pattern(k, n, Pattern::Rows, s, 1);
        assert!((0..k).all(|r| {
            let kept = (0..n).filter(|&c| rows.get(r, c)).count();
            kept == 0 || kept == n
        }));
        let cols = Mask::from_pattern(k, n, Pattern::Cols, s, 1);
        assert!((0..n).all(|c| {
            let kept = cols.count_in_column(0..k, c);
            kept == 0 || kept == k as u64
        }));
        let blocks = Mask::from_pattern(k, n, Pattern::Blocks { b: 8 }, s, 1);
        for (br, bc) in (0..k / 8).flat_map(|br| (0..n / 8).map(move |bc| (br, bc))) {
            let kept: u64 = (bc * 8..bc * 8 + 8)
                .map(|c| blocks.count_in_column(br * 8..br * 8 + 8, c))
                .sum();
            assert!(kept == 0 || kept == 64, "block ({br}, {bc}) keeps {kept}");
        }
    }
}
