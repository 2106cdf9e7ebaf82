//! Seeded random streams whose every output is fixed by this file and the ChaCha8 cipher.
//!
//! A simulated figure that depends on a random draw (a mask's non-zeros, a heatmap column's
//! spread, a kernel's check values) must not move when a dependency is upgraded. `rand`'s
//! `seed_from_u64`, `gen_range` and `gen::<f64>` are algorithms of a crate version (rand 0.9
//! changed how integers in a range are drawn), so none is used: the seed is expanded into a
//! ChaCha8 key by SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
//! generators", OOPSLA 2014), the raw ChaCha8 keystream (Bernstein, "ChaCha, a variant of
//! Salsa20", 2008; `rand_chacha` promises its output is value-stable) gives 64-bit words, and
//! the draws below turn those into integers and floats by rules written here. `tests` pins the
//! first outputs, so a change of any of these shows as a failing test, not as moved figures.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A ChaCha8 stream from a 64-bit seed.
#[derive(Debug, Clone)]
pub struct Stream {
    chacha: ChaCha8Rng,
}

impl Stream {
    pub fn new(seed: u64) -> Self {
        let mut state = seed;
        let mut key = [0u8; 32];
        for word in key.chunks_exact_mut(8) {
            word.copy_from_slice(&splitmix64(&mut state).to_le_bytes());
        }
        Self {
            chacha: ChaCha8Rng::from_seed(key),
        }
    }

    /// A stream for a draw named by several numbers (a run's seed, a layer, a weight, ...):
    /// the numbers folded into one seed by SplitMix64, each step mixing the next number in, so
    /// that neighbouring keys give unrelated streams.
    pub fn derived(key: &[u64]) -> Self {
        let mut state = 0u64;
        let mut seed = 0u64;
        for &part in key {
            state ^= part;
            seed = splitmix64(&mut state);
        }
        Self::new(seed)
    }

    /// The next 64 bits of the keystream.
    pub fn next_u64(&mut self) -> u64 {
        self.chacha.next_u64()
    }

    /// Uniform in `0..n` (`n > 0`), exactly: Lemire's multiply-and-reject ("Fast random integer
    /// generation in an interval", ACM TOMACS 2019), drawing again on the `2^64 mod n` low values
    /// that would bias it.
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0, "a draw below 0");
        let mut product = u128::from(self.next_u64()) * u128::from(n);
        if (product as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (product as u64) < threshold {
                product = u128::from(self.next_u64()) * u128::from(n);
            }
        }
        (product >> 64) as u64
    }

    /// Uniform in [0, 1): the top 53 bits of a word, scaled, so every value is a multiple of 2⁻⁵³.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [-1, 1).
    pub fn symmetric_unit(&mut self) -> f64 {
        2.0 * self.unit() - 1.0
    }

    /// How many of `draws` items taken at random without replacement from `population` items,
    /// `successes` of them marked, are marked: the hypergeometric distribution, exactly (up to
    /// the double rounding of its probabilities). By inversion of one [`Stream::unit`]: the
    /// support is walked from the mode outwards, one step up then one down, each probability
    /// the last one's times the ratio of neighbours, `P(x+1)/P(x) = (K−x)(n−x) / ((x+1)(N−K−n+x+1))`
    /// (Kachitvichyanukul and Schmeiser, "Computer generation of hypergeometric random
    /// variates", J. Stat. Comput. Simul. 22, 1985: algorithm HIN, here from the mode), so a draw
    /// takes about as many steps as its standard deviation. The mode's probability comes from
    /// log-factorials ([`ln_factorial`]).
    pub fn hypergeometric(&mut self, population: u64, successes: u64, draws: u64) -> u64 {
        assert!(
            successes <= population && draws <= population,
            "{draws} draws of {successes} marked among {population}"
        );
        // Fewer draws than not and fewer marked than not: the walk is then shortest.
        if draws > population - draws {
            return successes - self.hypergeometric(population, successes, population - draws);
        }
        if successes > population - successes {
            return draws - self.hypergeometric(population, population - successes, draws);
        }
        let (big_n, k, n) = (population as f64, successes as f64, draws as f64);
        let low = (draws + successes).saturating_sub(population);
        let high = draws.min(successes);
        if low == high {
            return low;
        }
        let mode = (((n + 1.0) * (k + 1.0) / (big_n + 2.0)).floor() as u64).clamp(low, high);
        let ln_p = ln_choose(successes, mode) + ln_choose(population - successes, draws - mode)
            - ln_choose(population, draws);
        let p_mode = ln_p.exp();
        let mut u = self.unit() - p_mode;
        if u < 0.0 {
            return mode;
        }
        let others = big_n - k - n;
        let (mut up, mut p_up) = (mode, p_mode);
        let (mut down, mut p_down) = (mode, p_mode);
        while up < high || down > low {
            if up < high {
                let x = up as f64;
                p_up *= (k - x) * (n - x) / ((x + 1.0) * (others + x + 1.0));
                up += 1;
                u -= p_up;
                if u < 0.0 {
                    return up;
                }
            }
            if down > low {
                let x = down as f64;
                p_down *= x * (others + x) / ((k - x + 1.0) * (n - x + 1.0));
                down -= 1;
                u -= p_down;
                if u < 0.0 {
                    return down;
                }
            }
        }
        // What the rounding of the probabilities left over: the likeliest value.
        mode
    }

    /// A standard normal draw (Box–Muller, two draws of [`Stream::unit`]).
    pub fn standard_normal(&mut self) -> f64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// `ln(n!)`: summed exactly below 4096 (a table of 32 KiB, made once), Stirling's series beyond
/// (its error is below 1e-16 relative there).
pub fn ln_factorial(n: u64) -> f64 {
    const TABLE: usize = 4096;
    static SMALL: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
    let small = SMALL.get_or_init(|| {
        let mut table = vec![0.0; TABLE];
        for i in 1..TABLE {
            table[i] = table[i - 1] + (i as f64).ln();
        }
        table
    });
    if let Some(&known) = small.get(n as usize) {
        return known;
    }
    let x = n as f64;
    let inv = 1.0 / x;
    let inv2 = inv * inv;
    // ln n! = (n + 1/2) ln n − n + ln(2π)/2 + 1/(12n) − 1/(360n³) + 1/(1260n⁵) − …
    (x + 0.5) * x.ln() - x
        + 0.5 * std::f64::consts::TAU.ln()
        + inv * (1.0 / 12.0 - inv2 * (1.0 / 360.0 - inv2 * (1.0 / 1260.0)))
}

/// `ln C(n, k)`.
fn ln_choose(n: u64, k: u64) -> f64 {
    ln_factorial(n) - ln_factorial(k) - ln_factorial(n - k)
}

/// One step of SplitMix64: advances `state` and returns its mixed output.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known answers: if a dependency upgrade or an edit changes any stream, this fails first.
    #[test]
    fn the_streams_are_pinned() {
        let mut state = 0;
        // SplitMix64 from 0: the reference implementation's first outputs (Vigna, splitmix64.c).
        assert_eq!(splitmix64(&mut state), 0xe220_a839_7b1d_cdaf);
        assert_eq!(splitmix64(&mut state), 0x6e78_9e6a_a1b9_65f4);
        let mut s = Stream::new(1);
        let words: Vec<u64> = (0..3).map(|_| s.next_u64()).collect();
        assert_eq!(words, PINNED_WORDS);
        let mut s = Stream::new(1);
        let below: Vec<u64> = (0..6).map(|_| s.below(1000)).collect();
        assert_eq!(below, PINNED_BELOW_1000);
        let mut s = Stream::new(7);
        assert_eq!(s.unit().to_bits(), PINNED_UNIT_SEED_7);
    }

    const PINNED_WORDS: [u64; 3] = [
        17254111457321727320,
        9958508360252413363,
        882713562349892078,
    ];
    const PINNED_BELOW_1000: [u64; 6] = [935, 539, 47, 858, 447, 103];
    const PINNED_UNIT_SEED_7: u64 = 4600886296990458004;

    #[test]
    fn below_stays_in_range_and_hits_every_value() {
        let mut s = Stream::new(3);
        let mut seen = [0u32; 7];
        for _ in 0..7000 {
            seen[s.below(7) as usize] += 1;
        }
        assert!(seen.iter().all(|&c| (800..1200).contains(&c)), "{seen:?}");
        assert_eq!(s.below(1), 0);
        let big = u64::MAX - 1;
        assert!((0..100).all(|_| s.below(big) < big));
    }

    /// Exact probabilities of a hypergeometric, by products of binomial coefficients.
    fn hypergeometric_pmf(population: u64, successes: u64, draws: u64) -> Vec<f64> {
        (0..=draws)
            .map(|x| {
                if x > successes || draws - x > population - successes {
                    return 0.0;
                }
                (ln_choose(successes, x) + ln_choose(population - successes, draws - x)
                    - ln_choose(population, draws))
                .exp()
            })
            .collect()
    }

    #[test]
    fn ln_factorial_is_the_sum_of_logs() {
        for n in [0u64, 1, 2, 10, 255, 4095, 4096, 4097, 100_000, 10_000_000] {
            let exact: f64 = (1..=n).map(|i| (i as f64).ln()).sum();
            assert!(
                (ln_factorial(n) - exact).abs() <= 1e-9 * exact.max(1.0),
                "{n}: {} against {exact}",
                ln_factorial(n)
            );
        }
    }

    /// Every value's frequency over many draws within 4.5 standard errors of its exact
    /// probability, on shapes that take each branch (more draws than not, more marked than not,
    /// a support of one value, the table and Stirling's log-factorials).
    #[test]
    fn hypergeometric_draws_follow_the_exact_distribution() {
        let cases = [
            (20u64, 7u64, 5u64),
            (20, 15, 12),
            (50, 50, 10),
            (50, 0, 10),
            (50, 10, 50),
            (300, 120, 40),
            (100_000, 25_000, 128),
            (1_000_000, 750_000, 600_000),
        ];
        let mut s = Stream::new(11);
        for (population, successes, draws) in cases {
            let pmf = hypergeometric_pmf(population, successes, draws);
            let trials = 40_000usize;
            let mut seen = vec![0usize; draws as usize + 1];
            for _ in 0..trials {
                let x = s.hypergeometric(population, successes, draws);
                assert!(x <= draws.min(successes));
                seen[x as usize] += 1;
            }
            for (x, (&p, &count)) in pmf.iter().zip(&seen).enumerate() {
                let expected = p * trials as f64;
                let sd = (trials as f64 * p * (1.0 - p)).sqrt().max(1.0);
                assert!(
                    (count as f64 - expected).abs() <= 4.5 * sd,
                    "({population}, {successes}, {draws}) at {x}: {count} against {expected:.1}"
                );
            }
        }
    }

    #[test]
    fn hypergeometric_draws_are_pinned() {
        let mut s = Stream::new(1);
        let drawn: Vec<u64> = (0..6).map(|_| s.hypergeometric(1000, 250, 128)).collect();
        assert_eq!(drawn, PINNED_HYPERGEOMETRIC);
    }

    const PINNED_HYPERGEOMETRIC: [u64; 6] = [24, 29, 32, 39, 35, 33];

    #[test]
    fn unit_lies_in_the_half_open_interval() {
        let mut s = Stream::new(5);
        for _ in 0..10_000 {
            let u = s.unit();
            assert!((0.0..1.0).contains(&u));
            let v = s.symmetric_unit();
            assert!((-1.0..1.0).contains(&v));
        }
    }
}
