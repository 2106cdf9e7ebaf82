//! The model (a GPT architecture) and its training recipe (the three MediSwift phases).

use serde::{Deserialize, Serialize};

use super::check_sparsity;
use super::validate::Checker;
use crate::error::{Error, Result};
use crate::sparsity::Pattern;

/// A GPT model and the recipe it is trained with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub name: String,
    pub description: String,
    pub architecture: Architecture,
    pub recipe: Recipe,
}

/// A GPT-3 style decoder: pre-layernorm blocks of attention and a GeLU FFN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Architecture {
    pub layers: u64,
    pub d_model: u64,
    pub heads: u64,
    pub d_ff: u64,
    pub vocab_size: u64,
    /// Length of the learned position embedding, the longest sequence the model takes.
    pub max_seq_len: u64,
    /// The LM head reuses the input embedding (no separate parameters).
    pub tied_embedding: bool,
    pub biases: bool,
    pub weight_bytes: u64,
    pub activation_bytes: u64,
}

/// How far a weight's sparsity under a coarse pattern (whole blocks or lines) may fall from
/// the sparsity asked: a percentage point.
pub const PATTERN_SPARSITY_TOLERANCE: f64 = 0.01;

/// How a recipe's sparsity is shared among its sparse weights.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Levels {
    /// Every sparse weight at the recipe's sparsity.
    #[default]
    Uniform,
    /// Erdős–Rényi (the dense-layer case of RigL's ERK, Evci et al. 2020, arXiv:1911.11134,
    /// and of Mocanu et al. 2018, "Scalable training of artificial neural networks with
    /// adaptive sparse connectivity", Nat. Commun. 9:2383): a `k × n` weight keeps a fraction
    /// `ε·(k + n)/(k·n)` of its entries, `ε` set so the sparse weights keep `(1 − s)` of their
    /// entries in all; a weight that would pass density 1 is dense and `ε` is solved again
    /// for the rest.
    Erk,
}

impl Levels {
    pub fn is_uniform(&self) -> bool {
        *self == Levels::Uniform
    }
}

/// The weights of a transformer layer that a recipe may make sparse.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum WeightKind {
    Q,
    K,
    V,
    AttnOut,
    FfnUp,
    FfnDown,
}

impl WeightKind {
    pub const ALL: [WeightKind; 6] = [
        WeightKind::Q,
        WeightKind::K,
        WeightKind::V,
        WeightKind::AttnOut,
        WeightKind::FfnUp,
        WeightKind::FfnDown,
    ];

    pub fn name(self) -> &'static str {
        match self {
            WeightKind::Q => "q",
            WeightKind::K => "k",
            WeightKind::V => "v",
            WeightKind::AttnOut => "attn_out",
            WeightKind::FfnUp => "ffn_up",
            WeightKind::FfnDown => "ffn_down",
        }
    }

    /// Rows (K, inputs) and columns (N, outputs) of this weight.
    pub fn shape(self, arch: &Architecture) -> (u64, u64) {
        let (d, f) = (arch.d_model, arch.d_ff);
        match self {
            WeightKind::Q | WeightKind::K | WeightKind::V | WeightKind::AttnOut => (d, d),
            WeightKind::FfnUp => (d, f),
            WeightKind::FfnDown => (f, d),
        }
    }
}

/// The training schedule: sparse pre-training, dense fine-tuning, soft prompting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Pre-training sparsities to study, each against the dense run.
    pub sparsities: Vec<f64>,
    pub sparse_weights: Vec<WeightKind>,
    /// The masks' structure (`random`, `N:M`, `block:B`, `rows`, `cols`; see
    /// `sparsity::Pattern`); `random` when the file leaves it out. `--mask` overrides it.
    #[serde(
        default,
        deserialize_with = "deserialize_pattern",
        skip_serializing_if = "Pattern::is_random"
    )]
    #[schemars(with = "Option<String>")]
    pub pattern: Pattern,
    /// How the sparsity is shared among the sparse weights: `uniform` (when the file leaves it
    /// out) or `erk`. `--levels` overrides it.
    #[serde(default, skip_serializing_if = "Levels::is_uniform")]
    pub levels: Levels,
    /// Masks read from a file (`--masks`), one per sparse weight of every layer: they replace
    /// `pattern` and `levels` in sparse runs. Never in a model file.
    #[serde(skip)]
    #[schemars(skip)]
    pub masks: Option<std::sync::Arc<crate::masks::MaskSet>>,
    /// The seed of drawn random masks (`--seed`, a sweep's `seeds`): a sparse GEMM on a random
    /// mask is then priced by per-PE counts drawn from their exact distribution for it
    /// (`PeColumnCounts::drawn`), not by the expected busiest PE. `None` (a library caller's
    /// default, and the mapper's search): the expectation. Never in a model file.
    #[serde(skip)]
    #[schemars(skip)]
    pub mask_seed: Option<u64>,
    /// Dynamic sparse training in pre-training (`[recipe.dynamic]`, `--dynamic`): the masks
    /// change every `update_every` steps. Absent: static masks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic: Option<super::DynamicSpec>,
    pub optimizer_flops_per_param: u64,
    pub pretrain: PretrainSpec,
    pub finetune: FinetuneSpec,
    pub softprompt: SoftpromptSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PretrainSpec {
    pub tokens: u64,
    pub batch_sequences: u64,
    pub seq_len: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FinetuneSpec {
    pub examples: u64,
    pub epochs: u64,
    pub batch_sequences: u64,
    pub seq_len: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SoftpromptSpec {
    pub examples: u64,
    pub epochs: u64,
    pub batch_sequences: u64,
    pub seq_len: u64,
    pub prompt_tokens: u64,
}

/// A phase of the recipe.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Sparse pre-training: the recipe's sparsity on the sparse weights.
    Pretrain,
    /// Dense fine-tuning: every weight trainable again.
    Finetune,
    /// Soft prompting: weights frozen, only the prompt embedding trains.
    Softprompt,
}

impl Phase {
    pub const ALL: [Phase; 3] = [Phase::Pretrain, Phase::Finetune, Phase::Softprompt];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Pretrain => "pretrain",
            Phase::Finetune => "finetune",
            Phase::Softprompt => "softprompt",
        }
    }
}

/// Bounds that keep every FLOP and byte count of a step inside u64 with room to spare.
pub(crate) const MAX_WIDTH: u64 = 1 << 18;
pub(crate) const MAX_LAYERS: u64 = 1024;
pub(crate) const MAX_SEQ: u64 = 1 << 20;
pub(crate) const MAX_BATCH: u64 = 1 << 20;
const MAX_TOKENS: u64 = 1 << 50;

impl ModelSpec {
    /// Checks every value against its allowed range; `origin` names the file in messages.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let c = Checker { origin };
        c.name("name", &self.name)?;
        self.architecture.validate(&c)?;
        self.recipe.validate(&c, &self.architecture)
    }

    /// Tokens of one sequence in a phase (soft prompting prepends the prompt).
    pub fn phase_seq_len(&self, phase: Phase) -> u64 {
        let r = &self.recipe;
        match phase {
            Phase::Pretrain => r.pretrain.seq_len,
            Phase::Finetune => r.finetune.seq_len,
            Phase::Softprompt => r.softprompt.seq_len + r.softprompt.prompt_tokens,
        }
    }

    /// Sequences in one optimizer step of a phase.
    pub fn phase_batch_sequences(&self, phase: Phase) -> u64 {
        let r = &self.recipe;
        match phase {
            Phase::Pretrain => r.pretrain.batch_sequences,
            Phase::Finetune => r.finetune.batch_sequences,
            Phase::Softprompt => r.softprompt.batch_sequences,
        }
    }

    /// Sequences the phase processes in all (pre-training: its token budget in whole sequences).
    pub fn phase_sequences(&self, phase: Phase) -> u64 {
        let r = &self.recipe;
        match phase {
            Phase::Pretrain => r.pretrain.tokens.div_ceil(r.pretrain.seq_len),
            Phase::Finetune => r.finetune.examples * r.finetune.epochs,
            Phase::Softprompt => r.softprompt.examples * r.softprompt.epochs,
        }
    }

    /// Optimizer steps of a phase; the last batch may be partial and still counts as a step.
    pub fn phase_steps(&self, phase: Phase) -> u64 {
        self.phase_sequences(phase)
            .div_ceil(self.phase_batch_sequences(phase))
    }

    /// Refuses the recipe's dynamic sparse training where it cannot run: on a mask pattern whose
    /// structure single-weight regrowth would not keep (masks read from a file replace the
    /// pattern), or with more than `MAX_MASK_UPDATES` updates in pre-training. `origin` names
    /// where the schedule came from (a flag or a key); checked once the command line's flags
    /// and mask files are in the recipe, so that they can still change either.
    pub fn check_dynamic(&self, origin: &str) -> Result<()> {
        let Some(dynamic) = &self.recipe.dynamic else {
            return Ok(());
        };
        if self.recipe.masks.is_none() {
            dynamic.check_pattern(origin, self.recipe.pattern)?;
        }
        let steps = self.phase_steps(Phase::Pretrain);
        let updates = dynamic.updates(steps);
        if updates > super::dynamic::MAX_MASK_UPDATES {
            return Err(Error::input(format!(
                "{origin}: an update every {} steps until {} of pre-training's {steps} steps is \
                 {updates} mask updates, more than the {} a run may price; update less often",
                dynamic.update_every,
                dynamic.end_fraction,
                super::dynamic::MAX_MASK_UPDATES
            )));
        }
        Ok(())
    }

    /// The recipe's dynamic sparse training and how many mask updates it makes in `phase` at
    /// `sparsity`: only sparse pre-training changes its masks (`None` otherwise, and without
    /// `recipe.dynamic`). The count may be 0 (an interval past the phase's stop).
    pub fn mask_updates(&self, phase: Phase, sparsity: f64) -> Option<(super::DynamicSpec, u64)> {
        let dynamic = self.recipe.dynamic?;
        if phase != Phase::Pretrain || sparsity == 0.0 || self.recipe.sparse_weights.is_empty() {
            return None;
        }
        Some((dynamic, dynamic.updates(self.phase_steps(phase))))
    }
}

impl Architecture {
    fn validate(&self, c: &Checker) -> Result<()> {
        c.range("architecture.layers", self.layers, 1, MAX_LAYERS)?;
        c.range("architecture.d_model", self.d_model, 1, MAX_WIDTH)?;
        c.range("architecture.heads", self.heads, 1, self.d_model)?;
        if !self.d_model.is_multiple_of(self.heads) {
            return Err(c.fail(
                "architecture.heads",
                &self.heads.to_string(),
                &format!("a divisor of architecture.d_model = {}", self.d_model),
            ));
        }
        c.range("architecture.d_ff", self.d_ff, 1, MAX_WIDTH)?;
        c.range("architecture.vocab_size", self.vocab_size, 1, MAX_WIDTH)?;
        c.range("architecture.max_seq_len", self.max_seq_len, 1, MAX_SEQ)?;
        c.range("architecture.weight_bytes", self.weight_bytes, 1, 8)?;
        c.range("architecture.activation_bytes", self.activation_bytes, 1, 8)
    }

    /// Size of one attention head.
    pub fn head_dim(&self) -> u64 {
        self.d_model / self.heads
    }
}

fn deserialize_pattern<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Pattern, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(serde::de::Error::custom)
}

impl Recipe {
    /// The sparsity of one sparse weight of `kind` when the recipe's sparse weights are at
    /// `sparsity` in all, by the recipe's `levels`.
    pub fn weight_sparsity(&self, kind: WeightKind, sparsity: f64, arch: &Architecture) -> f64 {
        match self.levels {
            Levels::Uniform => sparsity,
            Levels::Erk => {
                let densities = self.erk_densities(sparsity, arch);
                let density = densities
                    .iter()
                    .find(|(w, _)| *w == kind)
                    .map_or(1.0 - sparsity, |(_, d)| *d);
                (1.0 - density).max(0.0)
            }
        }
    }

    /// Erdős–Rényi densities of the sparse weights (see [`Levels::Erk`]): every weight kind's
    /// share of `1 − sparsity`, the whole layer's kept entries as uniform keeps them.
    pub fn erk_densities(&self, sparsity: f64, arch: &Architecture) -> Vec<(WeightKind, f64)> {
        let shapes: Vec<(WeightKind, f64, f64)> = self
            .sparse_weights
            .iter()
            .map(|&w| {
                let (k, n) = w.shape(arch);
                (w, k as f64, n as f64)
            })
            .collect();
        let target = (1.0 - sparsity) * shapes.iter().map(|(_, k, n)| k * n).sum::<f64>();
        let mut dense: Vec<WeightKind> = Vec::new();
        loop {
            let budget = target
                - shapes
                    .iter()
                    .filter(|(w, ..)| dense.contains(w))
                    .map(|(_, k, n)| k * n)
                    .sum::<f64>();
            let free: f64 = shapes
                .iter()
                .filter(|(w, ..)| !dense.contains(w))
                .map(|(_, k, n)| k + n)
                .sum();
            let epsilon = if free > 0.0 { budget / free } else { 0.0 };
            let full: Vec<WeightKind> = shapes
                .iter()
                .filter(|(w, k, n)| !dense.contains(w) && epsilon * (k + n) / (k * n) > 1.0)
                .map(|(w, ..)| *w)
                .collect();
            if full.is_empty() {
                return shapes
                    .iter()
                    .map(|&(w, k, n)| {
                        let density = if dense.contains(&w) {
                            1.0
                        } else {
                            (epsilon * (k + n) / (k * n)).clamp(0.0, 1.0)
                        };
                        (w, density)
                    })
                    .collect();
            }
            dense.extend(full);
        }
    }

    /// Refuses a mask `pattern` the recipe's sparse weights cannot take at `sparsity`: N:M at
    /// another sparsity than its own, or a group or block that does not tile a weight.
    /// `origin` names where the pattern came from (a flag or a key).
    pub fn check_pattern(
        &self,
        origin: &str,
        pattern: Pattern,
        sparsity: f64,
        arch: &Architecture,
    ) -> Result<()> {
        if sparsity == 0.0 {
            return Ok(());
        }
        self.check_pattern_tiles(origin, pattern, arch)?;
        if let Some(implied) = pattern.implied_sparsity() {
            if self.levels == Levels::Erk {
                return Err(Error::input(format!(
                    "{origin}: {pattern} fixes every weight's sparsity at {implied}, which erk \
                     levels would change per weight; use uniform levels with N:M"
                )));
            }
            if sparsity != implied {
                return Err(Error::input(format!(
                    "{origin}: {pattern} keeps N of every M, sparsity {implied}, not {sparsity}; \
                     run it at {implied}"
                )));
            }
        }
        for &w in &self.sparse_weights {
            let (k, n) = w.shape(arch);
            // A coarse pattern keeps whole blocks or lines: it may not reach the sparsity asked.
            let asked = self.weight_sparsity(w, sparsity, arch);
            let kept = pattern.nonzeros(k, n, asked);
            let realised = 1.0 - kept as f64 / (k * n) as f64;
            if (realised - asked).abs() > PATTERN_SPARSITY_TOLERANCE {
                return Err(Error::input(format!(
                    "{origin}: weight {} ({k} x {n}): {pattern} keeps {kept} of its {} entries, \
                     sparsity {realised:.4} against the {asked} asked (more than {} apart); use \
                     a finer pattern or another sparsity",
                    w.name(),
                    k * n,
                    PATTERN_SPARSITY_TOLERANCE
                )));
            }
        }
        Ok(())
    }

    /// Refuses a `pattern` whose groups or blocks do not tile every sparse weight, whatever the
    /// sparsity.
    pub fn check_pattern_tiles(
        &self,
        origin: &str,
        pattern: Pattern,
        arch: &Architecture,
    ) -> Result<()> {
        for w in &self.sparse_weights {
            let (k, n) = w.shape(arch);
            pattern.check_shape(k, n).map_err(|e| {
                Error::input(format!("{origin}: weight {} ({k} x {n}): {e}", w.name()))
            })?;
        }
        Ok(())
    }

    /// Refuses a sparsity above 0 when the recipe masks no weight: it would skip nothing, run
    /// as the dense run and still be reported as a sparse run. `origin` names where the
    /// sparsity came from (a flag or a key).
    pub fn check_masks_weights(&self, origin: &str, sparsity: f64) -> Result<()> {
        if sparsity != 0.0 && self.sparse_weights.is_empty() {
            return Err(Error::input(format!(
                "{origin}: sparsity {sparsity} masks nothing: the model lists no weight in \
                 `recipe.sparse_weights`; give sparsity 0 (dense), or list the weights to mask \
                 there (q, k, v, attn_out, ffn_up, ffn_down)"
            )));
        }
        Ok(())
    }

    fn validate(&self, c: &Checker, arch: &Architecture) -> Result<()> {
        let pattern_origin = format!("{}: key `recipe.pattern`", c.origin);
        self.check_pattern_tiles(&pattern_origin, self.pattern, arch)?;
        for (i, &s) in self.sparsities.iter().enumerate() {
            let origin = format!("{}: key `recipe.sparsities[{i}]`", c.origin);
            check_sparsity(&origin, s)?;
            self.check_masks_weights(&origin, s)?;
            let pattern_origin = format!("{}: key `recipe.pattern`", c.origin);
            self.check_pattern(&pattern_origin, self.pattern, s, arch)?;
        }
        if let Some(dynamic) = &self.dynamic {
            dynamic.validate(c)?;
        }
        let mut seen = Vec::new();
        for w in &self.sparse_weights {
            if seen.contains(w) {
                return Err(c.fail(
                    "recipe.sparse_weights",
                    w.name(),
                    "a list without repeats of q, k, v, attn_out, ffn_up, ffn_down",
                ));
            }
            seen.push(*w);
        }
        c.at_most(
            "recipe.optimizer_flops_per_param",
            self.optimizer_flops_per_param,
            1000,
            "FLOPs",
        )?;
        let max_seq = arch.max_seq_len;
        c.range(
            "recipe.pretrain.tokens",
            self.pretrain.tokens,
            1,
            MAX_TOKENS,
        )?;
        c.range(
            "recipe.pretrain.batch_sequences",
            self.pretrain.batch_sequences,
            1,
            MAX_BATCH,
        )?;
        c.range("recipe.pretrain.seq_len", self.pretrain.seq_len, 1, max_seq)?;
        c.range(
            "recipe.finetune.examples",
            self.finetune.examples,
            1,
            MAX_TOKENS,
        )?;
        c.range("recipe.finetune.epochs", self.finetune.epochs, 1, 1_000_000)?;
        c.range(
            "recipe.finetune.batch_sequences",
            self.finetune.batch_sequences,
            1,
            MAX_BATCH,
        )?;
        c.range("recipe.finetune.seq_len", self.finetune.seq_len, 1, max_seq)?;
        c.product_at_most(
            "recipe.finetune.examples",
            &[
                ("examples", self.finetune.examples),
                ("epochs", self.finetune.epochs),
                ("seq_len", self.finetune.seq_len),
            ],
            MAX_TOKENS,
            "the phase's tokens",
        )?;
        let sp = &self.softprompt;
        c.range("recipe.softprompt.examples", sp.examples, 1, MAX_TOKENS)?;
        c.range("recipe.softprompt.epochs", sp.epochs, 1, 1_000_000)?;
        c.range(
            "recipe.softprompt.batch_sequences",
            sp.batch_sequences,
            1,
            MAX_BATCH,
        )?;
        c.range(
            "recipe.softprompt.prompt_tokens",
            sp.prompt_tokens,
            1,
            max_seq - 1,
        )?;
        c.range(
            "recipe.softprompt.seq_len",
            sp.seq_len,
            1,
            max_seq.saturating_sub(sp.prompt_tokens),
        )
        .map_err(|_| {
            c.fail(
                "recipe.softprompt.seq_len",
                &sp.seq_len.to_string(),
                &format!(
                    "at least 1 and, with recipe.softprompt.prompt_tokens = {}, at most \
                     architecture.max_seq_len - prompt_tokens = {}",
                    sp.prompt_tokens,
                    max_seq.saturating_sub(sp.prompt_tokens)
                ),
            )
        })?;
        // After seq_len and prompt_tokens are in range, so that the product is of bounded terms.
        c.product_at_most(
            "recipe.softprompt.examples",
            &[
                ("examples", sp.examples),
                ("epochs", sp.epochs),
                ("(seq_len + prompt_tokens)", sp.seq_len + sp.prompt_tokens),
            ],
            MAX_TOKENS,
            "the phase's tokens",
        )
    }
}
