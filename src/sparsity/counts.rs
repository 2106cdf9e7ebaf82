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
    pub(super) fn new(c_k: usize, c_n: usize, lines: usize, table: Vec<u32>) -> Self {
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
