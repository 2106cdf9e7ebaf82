//! Unstructured random masks drawn from a seed, and the non-zero counts of their tiles.

use super::{nonzeros_expected, Pattern, PeColumnCounts};
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

    /// A `rows × cols` mask whose row `r` is what `fill(r, words)` writes into `words`
    /// (`cols.div_ceil(64)` zeroed words: entry `c` at bit `c % 64` of word `c / 64`; bits
    /// beyond `cols` are ignored), or the first error `fill` returns. Sixty-four entries at a
    /// time: how a mask file's rows are packed.
    pub fn from_rows<E>(
        rows: usize,
        cols: usize,
        mut fill: impl FnMut(usize, &mut [u64]) -> Result<(), E>,
    ) -> Result<Self, E> {
        let mut mask = Self::empty(rows, cols);
        let mut row = vec![0u64; cols.div_ceil(64)];
        for r in 0..rows {
            row.fill(0);
            fill(r, &mut row)?;
            for (w, &bits) in row.iter().enumerate() {
                let span = (cols - w * 64).min(64);
                let bits = if span < 64 {
                    bits & ((1 << span) - 1)
                } else {
                    bits
                };
                mask.or_bits(r * cols + w * 64, bits, span);
                mask.nonzeros += u64::from(bits.count_ones());
            }
        }
        Ok(mask)
    }

    /// ORs `bits` (its `span` ≤ 64 low bits, the rest 0) into bit positions `at..at + span`.
    fn or_bits(&mut self, at: usize, bits: u64, span: usize) {
        debug_assert!(span <= 64 && (span == 64 || bits >> span == 0));
        if bits == 0 {
            return;
        }
        let (word, shift) = (at / 64, at % 64);
        self.bits[word] |= bits << shift;
        if shift > 0 && shift + span > 64 {
            self.bits[word + 1] |= bits >> (64 - shift);
        }
    }

    /// Bit positions `at..at + span` (`span` ≤ 64) as the low bits of a word.
    fn bits_at(&self, at: usize, span: usize) -> u64 {
        let (word, shift) = (at / 64, at % 64);
        let mut bits = self.bits[word] >> shift;
        if shift > 0 && shift + span > 64 {
            bits |= self.bits[word + 1] << (64 - shift);
        }
        if span < 64 {
            bits &= (1 << span) - 1;
        }
        bits
    }

    /// The non-zeros each PE column of a GEMM receives per output column when this `K × N`
    /// weight streams split over `c_k` K-groups and `c_n` N-groups (see [`PeColumnCounts`]).
    /// `transposed`: the stream is the weight's transpose (dgrad, `Wᵀ` is `N × K`: K-groups
    /// split the weight's columns, output columns are its rows). The engine's kernels and the
    /// cost models both take their counts from here.
    pub fn pe_column_counts(&self, transposed: bool, c_k: usize, c_n: usize) -> PeColumnCounts {
        if !transposed {
            // Output lines are the weight's columns: as rows of its transpose, each K-slice of
            // a line is a run of bits, counted a word at a time.
            return self.transposed().pe_column_counts(true, c_k, c_n);
        }
        // Output line = a row of the weight; K-slices cut across its columns.
        let (k_in, n_out) = (self.cols, self.rows);
        let (c_k, c_n) = (c_k.clamp(1, k_in.max(1)), c_n.clamp(1, n_out.max(1)));
        // table[g_k · n_out + output line]: kept entries of K-slice g_k in that output line.
        let mut table = Vec::with_capacity(c_k * n_out);
        for g_k in 0..c_k {
            let cols = split_range(self.cols, c_k, g_k);
            table.extend((0..n_out).map(|r| {
                let start = r * self.cols;
                // At most a K-slice's length: model widths are below 2¹⁸ (`spec::model::MAX_WIDTH`).
                self.count_bits(start + cols.start..start + cols.end) as u32
            }));
        }
        PeColumnCounts::new(c_k, c_n, n_out, table)
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

    /// The mask of the transposed weight, 64 × 64 entries at a time.
    pub fn transposed(&self) -> Self {
        let mut t = Self::empty(self.cols, self.rows);
        let mut block = [0u64; 64];
        for r0 in (0..self.rows).step_by(64) {
            let height = (self.rows - r0).min(64);
            for c0 in (0..self.cols).step_by(64) {
                let width = (self.cols - c0).min(64);
                for (i, word) in block.iter_mut().enumerate() {
                    *word = if i < height {
                        self.bits_at((r0 + i) * self.cols + c0, width)
                    } else {
                        0
                    };
                }
                transpose_64(&mut block);
                for (j, &word) in block.iter().take(width).enumerate() {
                    t.or_bits((c0 + j) * self.rows + r0, word, height);
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

/// Transposes a 64 × 64 bit matrix in place (`block[i]` bit `j` is entry `(i, j)`): six rounds
/// swapping ever smaller off-diagonal blocks (Warren, *Hacker's Delight*, 2nd ed., §7–3).
fn transpose_64(block: &mut [u64; 64]) {
    let mut half = 32;
    let mut low: u64 = 0x0000_0000_ffff_ffff;
    while half != 0 {
        let mut k = 0;
        while k < 64 {
            // Entry (k, c + half) swaps with (k + half, c), for every c with bit `half` clear.
            let t = ((block[k] >> half) ^ block[k + half]) & low;
            block[k] ^= t << half;
            block[k + half] ^= t;
            k = (k + half + 1) & !half;
        }
        half >>= 1;
        low ^= low << half;
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
    fn transposing_by_blocks_is_transposing_entry_by_entry() {
        for (rows, cols) in [(1, 1), (64, 64), (70, 45), (3, 200), (129, 65), (200, 7)] {
            let m = Mask::random(rows, cols, 0.6, (rows * cols) as u64);
            let t = m.transposed();
            assert_eq!(
                (t.rows(), t.cols(), t.nonzeros()),
                (cols, rows, m.nonzeros())
            );
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(m.get(r, c), t.get(c, r), "{rows}x{cols} at ({r}, {c})");
                }
            }
            assert_eq!(t.transposed(), m);
        }
    }

    #[test]
    fn a_mask_built_by_rows_is_the_mask_built_entry_by_entry() {
        for (rows, cols) in [(1, 1), (5, 64), (70, 45), (3, 200), (9, 129)] {
            let m = Mask::random(rows, cols, 0.3, cols as u64);
            let built = Mask::from_rows(rows, cols, |r, words| {
                for c in 0..cols {
                    words[c / 64] |= u64::from(m.get(r, c)) << (c % 64);
                }
                // Bits beyond the row are ignored.
                if cols % 64 != 0 {
                    *words.last_mut().unwrap() |= 1 << 63;
                }
                Ok::<(), ()>(())
            })
            .unwrap();
            assert_eq!(built, m, "{rows}x{cols}");
        }
        let refused = Mask::from_rows(4, 10, |r, _| if r == 2 { Err(r) } else { Ok(()) });
        assert_eq!(refused, Err(2));
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
                    let expected: Vec<u32> = split_range(w.cols(), c_n, g_n)
                        .map(|n| w.count_in_column(split_range(w.rows(), c_k, g_k), n) as u32)
                        .collect();
                    assert_eq!(
                        column, &expected,
                        "transposed {transposed}, {c_k}x{c_n}, {c}"
                    );
                }
                let total: u64 = (0..counts.len()).map(|c| counts.total(c)).sum();
                assert_eq!(total, m.nonzeros());
                assert_eq!(counts.sum(), m.nonzeros());
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
