//! Unstructured random masks drawn from a seed, and the non-zero counts of their tiles.

use super::nonzeros_expected;
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
}
