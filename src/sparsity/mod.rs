//! Sparsity: how many weights of a matrix survive a mask.
//!
//! Architecture Invariant: pure arithmetic on counts, no I/O. The graph uses the expected count
//! (`nonzeros_expected`); kernels draw exact masks from a seed (`mask`), and full-wafer steps a
//! random mask's per-PE counts without its entries (`counts`, `PeColumnCounts::drawn`).

mod counts;
mod mask;
mod pattern;

pub use counts::PeColumnCounts;
pub use mask::{nonzeros_per_tile, split_range, Mask};
pub use pattern::{Pattern, PATTERN_FORMS, PATTERN_SIDE_MAX};

/// Non-zeros of a weight of `elements` entries at `sparsity`: the nearest whole number to
/// `(1 − s) · elements`, exactly what a static mask with that density keeps.
pub fn nonzeros_expected(elements: u64, sparsity: f64) -> u64 {
    debug_assert!((0.0..1.0).contains(&sparsity));
    let kept = ((1.0 - sparsity) * elements as f64).round() as u64;
    kept.min(elements)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_nonzeros_round_to_nearest() {
        assert_eq!(nonzeros_expected(4096, 0.75), 1024);
        assert_eq!(nonzeros_expected(10, 0.5), 5);
        assert_eq!(nonzeros_expected(3, 0.5), 2); // 1.5 rounds away from zero
        assert_eq!(nonzeros_expected(7, 0.0), 7);
    }
}
