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
