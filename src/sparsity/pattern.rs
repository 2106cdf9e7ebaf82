//! Sparsity patterns by name: which entries of a weight `W[K × N]` (inputs × outputs, as
//! `kernel gemm --k --n` and the model's GEMMs count them) a mask keeps, their exact non-zero
//! count, and how unevenly a pattern spreads its non-zeros over the slices a GEMM tile gives
//! its PEs.
//!
//! - `random`: every subset of `round((1 − s)·K·N)` entries equally likely (today's mask).
//! - `N:M` (e.g. `2:4`): in every group of M consecutive inputs of an output column, exactly N
//!   kept, positions at random (the 2:4 of NVIDIA's sparse tensor cores, Mishra et al. 2021,
//!   arXiv:2104.08378, along the input dimension as they define it). Sparsity `1 − N/M`; M must
//!   divide K.
//! - `block:B`: the weight cut into B × B blocks, `round((1 − s)·blocks)` of them kept whole, at
//!   random; B must divide K and N.
//! - `rows`: `round((1 − s)·K)` whole rows of `W[K × N]` kept (inputs pruned; the *columns* of a
//!   PyTorch `Linear.weight`, stored `[out, in]`).
//! - `cols`: `round((1 − s)·N)` whole columns kept (output neurons pruned; a `Linear.weight`'s
//!   rows).
//! - `skewed:σ` (`skewed` is `skewed:1`): unstructured, but rows and columns differ in density, a
//!   stand-in for a magnitude-pruned mask (whose surviving weights gather in the rows and
//!   columns of large magnitude). Each row i and column j draws a weight `exp(σ·z)`, z standard
//!   normal (lognormal, a heavy right tail), and exactly `round((1 − s)·K·N)` entries are kept
//!   by weighted sampling without replacement with weight `r_i·c_j` (Efraimidis and Spirakis
//!   2006, "Weighted random sampling with a reservoir", IPL 97(5)). [A] σ = 1 by default: a
//!   row's expected share then spans e^±2 ≈ 0.14x to 7.4x the mean over ±2σ; no public
//!   measurement of per-row densities of pruned GPT masks pins it, so it is a parameter, at
//!   most 1 (the range `validate` covers).

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use super::nonzeros_expected;

/// A mask's structure; see the module docs for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Pattern {
    #[default]
    Random,
    NofM {
        n: u32,
        m: u32,
    },
    Blocks {
        b: u32,
    },
    Rows,
    Cols,
    /// σ of the rows' and columns' lognormal weights, in thousandths (exact and hashable).
    Skewed {
        sigma_milli: u32,
    },
}

/// The largest σ of a skewed mask: the range `validate` holds the cost model to the engine in
/// (at σ = 2 the model is 14% over the engine on a 90% shape, at the edge of the bounds).
pub const SKEW_SIGMA_MAX: f64 = 1.0;

/// The largest group or block side a pattern may name: far beyond any published N:M or block
/// size, and small enough that counts stay exact in `u64`.
pub const PATTERN_SIDE_MAX: u32 = 4096;

/// What `--mask` and the recipe's `pattern` accept, for error messages.
pub const PATTERN_FORMS: &str = "random, N:M (1 <= N < M, e.g. 2:4), block:B (B >= 2, e.g. \
     block:8), rows, cols, or skewed[:SIGMA] (0 < SIGMA <= 1, default 1)";

impl FromStr for Pattern {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let refuse = || format!("{text:?}: a pattern is {PATTERN_FORMS}");
        let side = |s: &str| -> Result<u32, String> {
            s.parse::<u32>()
                .ok()
                .filter(|&v| v <= PATTERN_SIDE_MAX)
                .ok_or_else(|| {
                    format!("{text:?}: {s:?} is not a whole number from 1 to {PATTERN_SIDE_MAX}")
                })
        };
        match text {
            "random" => Ok(Pattern::Random),
            "rows" => Ok(Pattern::Rows),
            "cols" => Ok(Pattern::Cols),
            "skewed" => Ok(Pattern::Skewed { sigma_milli: 1000 }),
            _ => {
                if let Some(sigma) = text.strip_prefix("skewed:") {
                    let milli = sigma
                        .parse::<f64>()
                        .ok()
                        .filter(|s| *s > 0.0 && *s <= SKEW_SIGMA_MAX)
                        .map(|s| (s * 1000.0).round() as u32)
                        .filter(|&m| m > 0)
                        .ok_or_else(|| {
                            format!(
                                "{text:?}: a skewed mask's sigma is a number above 0 and at \
                                 most {SKEW_SIGMA_MAX} (to a thousandth)"
                            )
                        })?;
                    return Ok(Pattern::Skewed { sigma_milli: milli });
                }
                if let Some(b) = text.strip_prefix("block:") {
                    let b = side(b)?;
                    if b < 2 {
                        return Err(format!("{text:?}: a block side is at least 2"));
                    }
                    Ok(Pattern::Blocks { b })
                } else if let Some((n, m)) = text.split_once(':') {
                    if !n.chars().all(|c| c.is_ascii_digit()) {
                        return Err(refuse());
                    }
                    let (n, m) = (side(n)?, side(m)?);
                    if n == 0 || n >= m {
                        return Err(format!("{text:?}: N:M keeps N of every M, so 1 <= N < M"));
                    }
                    Ok(Pattern::NofM { n, m })
                } else {
                    Err(refuse())
                }
            }
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Random => write!(f, "random"),
            Pattern::NofM { n, m } => write!(f, "{n}:{m}"),
            Pattern::Blocks { b } => write!(f, "block:{b}"),
            Pattern::Rows => write!(f, "rows"),
            Pattern::Cols => write!(f, "cols"),
            Pattern::Skewed { sigma_milli } => {
                write!(f, "skewed:{}", f64::from(*sigma_milli) / 1000.0)
            }
        }
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Pattern {
    pub fn is_random(&self) -> bool {
        *self == Pattern::Random
    }

    /// What the cost model is known to miss for this pattern, for the reports' text.
    pub fn caveat(&self) -> Option<&'static str> {
        match self {
            Pattern::Blocks { .. } => Some(
                "block masks: where a tile splits K over several PE columns (the full wafer's \
                 do), a block holds a K-group's count for B output columns and paces the \
                 reduction chain column by column; the cost model prices the busiest PE's \
                 total and runs up to 25% under the engine there (kernel gemm --split 16x1 \
                 --mask block:16), so these figures are optimistic",
            ),
            _ => None,
        }
    }

    /// The sparsity the pattern itself fixes (N:M: `1 − N/M`); the others take any.
    pub fn implied_sparsity(&self) -> Option<f64> {
        match *self {
            Pattern::NofM { n, m } => Some(1.0 - f64::from(n) / f64::from(m)),
            _ => None,
        }
    }

    /// Refuses a weight the pattern cannot tile (`k × n`, inputs × outputs), saying why.
    pub fn check_shape(&self, k: u64, n: u64) -> Result<(), String> {
        match *self {
            Pattern::NofM { m, .. } if !k.is_multiple_of(u64::from(m)) => Err(format!(
                "{self} groups the weight's {k} inputs by M = {m}, which does not divide {k}"
            )),
            Pattern::Blocks { b }
                if !k.is_multiple_of(u64::from(b)) || !n.is_multiple_of(u64::from(b)) =>
            {
                Err(format!(
                    "{self} cuts the weight in {b} x {b} blocks, which do not tile {k} x {n}"
                ))
            }
            _ => Ok(()),
        }
    }

    /// Exactly how many of a `k × n` weight's entries the pattern keeps at `sparsity` (ignored
    /// by N:M, which fixes its own); [`super::Mask::from_pattern`] keeps these.
    pub fn nonzeros(&self, k: u64, n: u64, sparsity: f64) -> u64 {
        match *self {
            Pattern::Random => nonzeros_expected(k * n, sparsity),
            Pattern::NofM { n: kept, m } => k / u64::from(m) * u64::from(kept) * n,
            Pattern::Blocks { b } => {
                let b = u64::from(b);
                nonzeros_expected((k / b) * (n / b), sparsity) * b * b
            }
            Pattern::Rows => nonzeros_expected(k, sparsity) * n,
            Pattern::Cols => nonzeros_expected(n, sparsity) * k,
            Pattern::Skewed { .. } => nonzeros_expected(k * n, sparsity),
        }
    }

    /// The expected largest non-zero count over the `c_k × c_n` slices of a GEMM tile, each
    /// `k_c` rows by `n_g` columns of the streamed `k × n` matrix at `density`; `transposed`
    /// when that matrix is the weight's transpose (dgrad streams `Wᵀ`), so the pattern's input
    /// axis runs along its columns. The Gaussian extreme-value estimate, as
    /// [`crate::cost::expected_binomial_max`] gives for `random`, from each pattern's variance
    /// of a slice's count and the number of slices that vary independently:
    ///
    /// - N:M: a slice holding whole groups has exactly its share; one cutting groups varies
    ///   only in the two cut groups of each line (hypergeometric, at most `N(M−N)/(4(M−1))`
    ///   each when half a group is cut);
    /// - `block:B`: whole blocks vary, so a slice's count is its area over the blocks it
    ///   touches times a binomial over those blocks;
    /// - `rows`, `cols`: whole lines vary, shared by every slice along them (only `c_k`, or
    ///   `c_n`, slices differ).
    pub fn slice_max(
        &self,
        transposed: bool,
        dims: (u64, u64),
        slice: (u64, u64),
        groups: (u64, u64),
        density: f64,
    ) -> f64 {
        let (k_c, n_g) = slice;
        let area = (k_c * n_g) as f64;
        let mean = area * density;
        if *self == Pattern::Random {
            return crate::cost::expected_binomial_max(k_c * n_g, density, groups.0 * groups.1);
        }
        if let Some((lines, binomial)) = self.skew_terms(slice, groups, density) {
            // The busiest slice: the heaviest rows' K-group, the heaviest columns' N-group,
            // and the binomial draw of its entries on top.
            let extreme: f64 = lines
                .iter()
                .map(|&(relative, count)| relative * fpc_max(count))
                .sum();
            let (sigma, count) = binomial;
            return (mean * (1.0 + extreme) + sigma * fpc_max(count)).min(area);
        }
        let (sigma, count) = self.spread(transposed, dims, slice, groups, density);
        if count <= 1 {
            return mean;
        }
        // `count` slices drawn without replacement from the lines or blocks they partition:
        // the finite-population correction of each one's deviation, and Blom's estimate of
        // the largest of `count` normal draws (which `√(2 ln count)` overstates at the few
        // slices whole lines or blocks leave free to vary).
        (mean + sigma * fpc_max(count)).min(area)
    }

    /// The standard deviation of one slice's non-zero count (arguments as
    /// [`Pattern::slice_max`]), and how many slices vary independently.
    pub fn spread(
        &self,
        transposed: bool,
        (k, n): (u64, u64),
        (k_c, n_g): (u64, u64),
        (c_k, c_n): (u64, u64),
        density: f64,
    ) -> (f64, u64) {
        if density <= 0.0 || density >= 1.0 {
            return (0.0, 1);
        }
        let area = (k_c * n_g) as f64;
        let pq = density * (1.0 - density);
        // The weight's input axis (along which N:M groups and `rows` lines run) is the
        // problem's k unless the problem streams the transpose.
        let (input_len, input_dim, input_groups, other_len, other_groups) = if transposed {
            (n_g, n, c_n, k_c, c_k)
        } else {
            (k_c, k, c_k, n_g, c_n)
        };
        match *self {
            Pattern::Random => ((area * pq).sqrt(), c_k * c_n),
            Pattern::NofM { n: kept, m } => {
                let m = u64::from(m);
                if input_dim.is_multiple_of(input_groups * m) {
                    return (0.0, 1);
                }
                let kept = f64::from(kept);
                let m = m as f64;
                let per_cut = kept * (m - kept) / (4.0 * (m - 1.0));
                ((other_len as f64 * 2.0 * per_cut).sqrt(), c_k * c_n)
            }
            Pattern::Blocks { b } => {
                let b = u64::from(b);
                let touched = (k_c.div_ceil(b) * n_g.div_ceil(b)) as f64;
                (area / touched * (touched * pq).sqrt(), c_k * c_n)
            }
            Pattern::Rows => (
                other_len as f64 * (input_len as f64 * pq).sqrt(),
                input_groups,
            ),
            Pattern::Cols => (
                input_len as f64 * (other_len as f64 * pq).sqrt(),
                other_groups,
            ),
            Pattern::Skewed { .. } => {
                let (lines, (binomial, count)) = self
                    .skew_terms((k_c, n_g), (c_k, c_n), density)
                    .unwrap_or_default();
                let mean = area * density;
                let relative: f64 = lines.iter().map(|(r, _)| r * r).sum();
                ((relative * mean * mean + binomial * binomial).sqrt(), count)
            }
        }
    }

    /// A skewed mask's spread of one slice's count, in two parts: the relative deviation of its
    /// rows' and its columns' mean weight (`√((e^σ² − 1) / lines)`, the lognormal's relative
    /// variance over the slice's lines) with how many slices differ in each, and the binomial
    /// deviation of its entries given those (σ, slices). `None` for the other patterns.
    #[allow(clippy::type_complexity)]
    fn skew_terms(
        &self,
        (k_c, n_g): (u64, u64),
        (c_k, c_n): (u64, u64),
        density: f64,
    ) -> Option<([(f64, u64); 2], (f64, u64))> {
        let Pattern::Skewed { sigma_milli } = *self else {
            return None;
        };
        let (line_sd, entry_variance) = skew_moments(sigma_milli, density);
        // Rows and columns skew alike: which axis is the weight's input does not matter.
        let relative = |lines: u64| line_sd / (lines.max(1) as f64).sqrt();
        let binomial = ((k_c * n_g) as f64 * entry_variance).sqrt();
        Some((
            [(relative(k_c), c_k), (relative(n_g), c_n)],
            (binomial, c_k * c_n),
        ))
    }
}

/// Points of the quadrature over a lognormal weight: the standard normal's quantiles at the
/// midpoints of `SKEW_POINTS` equal slices of probability.
const SKEW_POINTS: usize = 64;

/// A skewed mask at `density`, in the large-matrix limit: weighted sampling without
/// replacement keeps an entry of weight `w = r·c` with probability `π(w) = 1 − e^(−λw)` (an
/// Efraimidis–Spirakis key `ln(u)/w` clears the threshold `−λ`), `λ` set so that `π` averages
/// `density`. Returns the relative standard deviation of a row's (or column's) mean `π` over
/// rows, and the mean Bernoulli variance `π(1 − π)` of an entry: the saturation of heavy rows
/// at high density, which a linear `π ∝ w` would overstate. Memoised per (σ, density): a
/// 64 × 64 quadrature and a bisection, about a millisecond.
fn skew_moments(sigma_milli: u32, density: f64) -> (f64, f64) {
    use std::cell::RefCell;
    use std::collections::HashMap;
    thread_local! {
        static MEMO: RefCell<HashMap<(u32, u64), (f64, f64)>> = RefCell::new(HashMap::new());
    }
    let key = (sigma_milli, density.to_bits());
    if let Some(moments) = MEMO.with(|m| m.borrow().get(&key).copied()) {
        return moments;
    }
    let sigma = f64::from(sigma_milli) / 1000.0;
    let weights: Vec<f64> = (0..SKEW_POINTS)
        .map(|i| (sigma * normal_quantile((i as f64 + 0.5) / SKEW_POINTS as f64)).exp())
        .collect();
    let keep = |lambda: f64, r: f64| -> f64 {
        weights
            .iter()
            .map(|c| 1.0 - (-lambda * r * c).exp())
            .sum::<f64>()
            / SKEW_POINTS as f64
    };
    let mean_keep =
        |lambda: f64| weights.iter().map(|&r| keep(lambda, r)).sum::<f64>() / SKEW_POINTS as f64;
    // π rises with λ from 0 to 1: bisect in log space.
    let (mut lo, mut hi) = (1e-12f64, 1e12f64);
    for _ in 0..200 {
        let mid = (lo * hi).sqrt();
        if mean_keep(mid) < density {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let lambda = (lo * hi).sqrt();
    let rows: Vec<f64> = weights.iter().map(|&r| keep(lambda, r)).collect();
    let mean = rows.iter().sum::<f64>() / SKEW_POINTS as f64;
    let row_variance =
        rows.iter().map(|p| (p - mean) * (p - mean)).sum::<f64>() / SKEW_POINTS as f64;
    let entry_variance = weights
        .iter()
        .flat_map(|r| weights.iter().map(move |c| 1.0 - (-lambda * r * c).exp()))
        .map(|p| p * (1.0 - p))
        .sum::<f64>()
        / (SKEW_POINTS * SKEW_POINTS) as f64;
    let moments = (
        row_variance.sqrt() / mean.max(f64::MIN_POSITIVE),
        entry_variance,
    );
    MEMO.with(|m| m.borrow_mut().insert(key, moments));
    moments
}

/// Blom's expected largest of `count` normal draws, each deviation shrunk by the finite-population
/// correction of `count` slices that partition their lines; 0 for one slice.
fn fpc_max(count: u64) -> f64 {
    if count <= 1 {
        return 0.0;
    }
    ((count - 1) as f64 / count as f64).sqrt() * expected_normal_max(count)
}

/// The expected largest of `count` independent standard normal draws, by Blom's formula
/// `Φ⁻¹((count − 0.375) / (count + 0.25))` (Blom 1958): 4.5% over the exact value at 2 draws,
/// within 2% from 4 and within 0.5% from 10 to 10⁵ (checked by numerical integration).
pub fn expected_normal_max(count: u64) -> f64 {
    let c = count as f64;
    normal_quantile((c - 0.375) / (c + 0.25))
}

/// The standard normal quantile `Φ⁻¹(p)` for `p` in (0, 1), by Acklam's rational
/// approximation (relative error below 1.2 × 10⁻⁹).
fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.38357751867269e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    const P_LOW: f64 = 0.02425;
    if p < P_LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - P_LOW {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blom_matches_the_known_expected_maxima_of_normals() {
        // E[max] of n standard normals (Harter 1961; n = 2 is 1/√π).
        for (n, exact, within) in [
            (2, 0.5642, 0.05),
            (4, 1.0294, 0.02),
            (10, 1.5388, 0.006),
            (100, 2.5076, 0.005),
            (1000, 3.2414, 0.005),
        ] {
            let blom = expected_normal_max(n);
            assert!(
                (blom - exact).abs() / exact < within,
                "{n}: {blom} against {exact}"
            );
        }
        assert!((normal_quantile(0.975) - 1.959964).abs() < 1e-6);
        assert!((normal_quantile(0.001) + 3.090232).abs() < 1e-6);
    }

    #[test]
    fn names_parse_and_print_back() {
        for text in [
            "random",
            "2:4",
            "1:4",
            "7:16",
            "block:8",
            "rows",
            "cols",
            "skewed:1",
            "skewed:0.25",
        ] {
            let p: Pattern = text.parse().unwrap();
            assert_eq!(p.to_string(), text);
        }
        for bad in [
            "", "2:2", "0:4", "4:2", "block:1", "block:x", "2:", "blocks:4", "9:99999",
        ] {
            let e = bad.parse::<Pattern>().unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn exact_counts_and_shapes() {
        let two_four = Pattern::NofM { n: 2, m: 4 };
        assert_eq!(two_four.implied_sparsity(), Some(0.5));
        assert_eq!(two_four.nonzeros(8, 3, 0.9), 12);
        assert!(two_four.check_shape(6, 4).unwrap_err().contains("M = 4"));
        let blocks = Pattern::Blocks { b: 4 };
        assert_eq!(blocks.nonzeros(8, 8, 0.75), 16);
        assert!(blocks.check_shape(8, 6).is_err());
        assert_eq!(Pattern::Rows.nonzeros(10, 3, 0.5), 15);
        assert_eq!(Pattern::Cols.nonzeros(10, 3, 0.5), 20);
        assert_eq!(Pattern::Random.nonzeros(10, 3, 0.5), 15);
    }

    #[test]
    fn aligned_n_of_m_slices_are_exact_and_blocks_spread_wider_than_random() {
        let two_four = Pattern::NofM { n: 2, m: 4 };
        // 256 inputs over 4 K-groups: 64 a slice, whole groups: exactly half.
        let max = two_four.slice_max(false, (256, 64), (64, 16), (4, 4), 0.5);
        assert_eq!(max, 512.0);
        // The transpose groups along its columns: 64 outputs over 4 N-groups of 16.
        assert_eq!(
            two_four.slice_max(true, (64, 256), (16, 64), (4, 4), 0.5),
            512.0
        );
        let random = Pattern::Random.slice_max(false, (256, 64), (64, 16), (4, 4), 0.5);
        let blocks = Pattern::Blocks { b: 8 }.slice_max(false, (256, 64), (64, 16), (4, 4), 0.5);
        assert!(random > 512.0 && blocks > random, "{random} {blocks}");
    }
}
