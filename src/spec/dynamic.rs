//! Dynamic sparse training: the pre-training mask changes every `update_every` steps, a fraction
//! of each sparse weight's non-zeros dropped and as many regrown (`[recipe.dynamic]`, `train
//! --dynamic`).
//!
//! The schedule is RigL's (Evci et al. 2020, "Rigging the Lottery: Making All Tickets Winners",
//! ICML, arXiv:1911.11134, section 3 and appendix): an update after step `t` when `t` is a
//! multiple of ΔT and `t < T_end`, dropping `α/2 · (1 + cos(π t / T_end))` of the non-zeros
//! (cosine annealing), with ΔT = 100, α = 0.3 and `T_end` = 75% of the steps. Cerebras ships the
//! same schedule for SET and RigL on GPT-3 125M (Cerebras/modelzoo, Release 2.10.0, commit
//! f1fd1e0, `src/cerebras/modelzoo/models/nlp/gpt3/configs/sparsity/pretraining/`
//! `params_gpt3_125m_rigl75.yaml` and `params_gpt3_125m_set75.yaml`: `update: freq: 100, stop:
//! 3584` of 4,778 steps, `drop_fraction: type: cosine, init: 0.3, half_period: 3584`).

use serde::{Deserialize, Serialize};

use super::validate::Checker;
use crate::error::{Error, Result};
use crate::sparsity::Pattern;

/// How the dropped non-zeros are regrown.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum DynamicMethod {
    /// Sparse Evolutionary Training (Mocanu et al. 2018, Nat. Commun. 9:2383): drop the
    /// smallest-magnitude weights, regrow as many at random positions. No dense gradient.
    Set,
    /// RigL (Evci et al. 2020): drop the smallest-magnitude weights, regrow where the dense
    /// gradient is largest, so an update step computes every sparse weight's gradient dense.
    Rigl,
}

impl DynamicMethod {
    pub fn name(self) -> &'static str {
        match self {
            DynamicMethod::Set => "set",
            DynamicMethod::Rigl => "rigl",
        }
    }

    /// How a table names it.
    pub fn label(self) -> &'static str {
        match self {
            DynamicMethod::Set => "SET",
            DynamicMethod::Rigl => "RigL",
        }
    }
}

/// RigL's update interval ΔT, in steps (Evci et al. 2020; Cerebras' `update: freq: 100`).
pub const DEFAULT_UPDATE_EVERY: u64 = 100;
/// RigL's initial drop fraction α (Evci et al. 2020; Cerebras' `drop_fraction: init: 0.3`).
pub const DEFAULT_DROP_FRACTION: f64 = 0.3;
/// RigL's `T_end` as a fraction of the steps (Evci et al. 2020: 75%; Cerebras' `stop: 3584` of
/// 4,778 steps).
pub const DEFAULT_END_FRACTION: f64 = 0.75;

/// `[recipe.dynamic]`: the pre-training masks change during training. Absent: static masks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DynamicSpec {
    pub method: DynamicMethod,
    /// ΔT: steps between mask updates.
    #[serde(default = "default_update_every")]
    pub update_every: u64,
    /// α: the share of a weight's non-zeros the first update drops (and regrows); later updates
    /// drop less, on a cosine down to 0 at `end_fraction` of the steps.
    #[serde(default = "default_drop_fraction")]
    pub drop_fraction: f64,
    /// `T_end` as a share of the phase's steps: no update at or after it.
    #[serde(default = "default_end_fraction")]
    pub end_fraction: f64,
}

fn default_update_every() -> u64 {
    DEFAULT_UPDATE_EVERY
}

fn default_drop_fraction() -> f64 {
    DEFAULT_DROP_FRACTION
}

fn default_end_fraction() -> f64 {
    DEFAULT_END_FRACTION
}

/// The most mask updates a phase may make: each is priced update by update, and a run of more
/// (an interval of a few steps over hundreds of millions) would take minutes to price for a
/// schedule no one trains.
pub const MAX_MASK_UPDATES: u64 = 1_000_000;

/// The longest update interval a recipe may give: far beyond any phase's steps (an interval
/// longer than the phase gives no update: the static run).
pub const MAX_UPDATE_EVERY: u64 = 1 << 50;

impl DynamicSpec {
    /// `method` with RigL's defaults for the rest.
    pub fn with_defaults(method: DynamicMethod) -> Self {
        DynamicSpec {
            method,
            update_every: DEFAULT_UPDATE_EVERY,
            drop_fraction: DEFAULT_DROP_FRACTION,
            end_fraction: DEFAULT_END_FRACTION,
        }
    }

    /// `T_end` of a phase of `steps` steps: `⌈end_fraction · steps⌉` (Cerebras' 3584 for 75% of
    /// 4,778). A product within a billionth of a whole number is that number: 0.55 × 100 is
    /// 55.000000000000007 in binary, and its stop is 55, not 56.
    pub fn stop_step(&self, steps: u64) -> u64 {
        let product = self.end_fraction * steps as f64;
        let whole = product.round();
        if (product - whole).abs() <= 1e-9 * whole.max(1.0) {
            whole as u64
        } else {
            product.ceil() as u64
        }
    }

    /// The steps after which the mask is updated: every multiple of `update_every` below
    /// [`Self::stop_step`]. Never the phase's last step, so never its partial last batch.
    pub fn update_steps(&self, steps: u64) -> impl Iterator<Item = u64> {
        let every = self.update_every;
        let count = self.updates(steps);
        (1..=count).map(move |i| i * every)
    }

    /// How many updates a phase of `steps` steps makes: 0 when `update_every` is past the stop.
    pub fn updates(&self, steps: u64) -> u64 {
        self.stop_step(steps).saturating_sub(1) / self.update_every
    }

    /// The share of each weight's non-zeros the update after step `t` drops (and regrows):
    /// `α/2 · (1 + cos(π t / T_end))`.
    pub fn drop_fraction_at(&self, t: u64, steps: u64) -> f64 {
        let stop = self.stop_step(steps).max(1) as f64;
        0.5 * self.drop_fraction * (1.0 + (std::f64::consts::PI * t as f64 / stop).cos())
    }

    /// Checks the values; `c` names the file, and the keys are `recipe.dynamic.*`.
    pub fn validate(&self, c: &Checker) -> Result<()> {
        c.range(
            "recipe.dynamic.update_every",
            self.update_every,
            1,
            MAX_UPDATE_EVERY,
        )?;
        check_fraction(
            c.origin,
            "key `recipe.dynamic.drop_fraction`",
            self.drop_fraction,
        )?;
        check_fraction(
            c.origin,
            "key `recipe.dynamic.end_fraction`",
            self.end_fraction,
        )
    }

    /// Refuses a mask pattern whose structure single-weight regrowth would not keep: SET and RigL
    /// as published drop and regrow single weights (N:M, block, rows and cols masks would need
    /// their structured variants, which wafersim does not model). `origin` names where the
    /// pattern or the schedule came from.
    pub fn check_pattern(&self, origin: &str, pattern: Pattern) -> Result<()> {
        match pattern {
            Pattern::Random | Pattern::Skewed { .. } => Ok(()),
            _ => Err(Error::input(format!(
                "{origin}: dynamic sparse training ({}) regrows single weights, which a {pattern} \
                 mask cannot keep; use it with random or skewed masks (--mask, or masks from a \
                 file), or train {pattern} with static masks (--dynamic static)",
                self.method.label()
            ))),
        }
    }
}

/// Refuses a fraction outside (0, 1]; `key` names the key or flag.
pub fn check_fraction(origin: &str, key: &str, value: f64) -> Result<()> {
    if value.is_finite() && value > 0.0 && value <= 1.0 {
        return Ok(());
    }
    Err(Error::input(format!(
        "{origin}: {key} = {value} is not allowed: must be a fraction in (0, 1], e.g. 0.3 or 0.75"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cerebras' GPT-3 125M RigL config: 4,778 steps, `freq: 100`, `stop: 3584`: updates after
    /// steps 100, 200, …, 3500.
    #[test]
    fn the_vendor_schedule() {
        let rigl = DynamicSpec::with_defaults(DynamicMethod::Rigl);
        assert_eq!(rigl.stop_step(4778), 3584);
        assert_eq!(rigl.updates(4778), 35);
        let steps: Vec<u64> = rigl.update_steps(4778).collect();
        assert_eq!(steps.first(), Some(&100));
        assert_eq!(steps.last(), Some(&3500));
        // Cosine from α at t = 0 to 0 at T_end.
        assert_eq!(rigl.drop_fraction_at(0, 4778), 0.3);
        assert!((rigl.drop_fraction_at(1792, 4778) - 0.15).abs() < 1e-12);
        assert!(rigl.drop_fraction_at(3584, 4778).abs() < 1e-12);
    }

    #[test]
    fn a_stop_on_a_whole_step_is_that_step() {
        let set = DynamicSpec {
            update_every: 55,
            end_fraction: 0.55,
            ..DynamicSpec::with_defaults(DynamicMethod::Set)
        };
        assert_eq!(set.stop_step(100), 55);
        assert_eq!(set.updates(100), 0);
        assert_eq!(
            DynamicSpec {
                end_fraction: 0.555,
                ..set
            }
            .stop_step(100),
            56
        );
    }

    #[test]
    fn an_interval_past_the_stop_never_updates() {
        let set = DynamicSpec {
            update_every: 1000,
            ..DynamicSpec::with_defaults(DynamicMethod::Set)
        };
        assert_eq!(set.updates(1000), 0);
        assert_eq!(set.update_steps(1000).count(), 0);
        // The stop itself is never an update step: 750 of 1000, every 750.
        let at_stop = DynamicSpec {
            update_every: 750,
            ..set
        };
        assert_eq!(at_stop.updates(1000), 0);
        assert_eq!(
            DynamicSpec {
                update_every: 1,
                ..set
            }
            .updates(1000),
            749
        );
    }
}
