//! The plan of a step: microbatches, and every op placed with its tile and cost.

use serde::Serialize;

use super::memory::Activations;
use super::ops::OpPlan;
use super::search::Alternative;
use crate::cost::TimelineSpan;
use crate::error::{Error, Result};
use crate::graph::{OpKind, Pass, StepConfig};

/// How the LM head and the loss are cut when a microbatch's logits do not fit in SRAM at once.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum HeadChunking {
    /// Chunks of tokens, one after another: each holds its tokens' logits whole, and the
    /// head's weight streams in again for every chunk.
    Tokens,
    /// Chunks of the vocabulary: each streams its slice of the head's weight once, the loss
    /// keeps a running log-sum-exp per token, and backward recomputes each chunk's logits
    /// (`map::ops::op_plan_vocab_chunked`).
    Vocabulary,
}

impl HeadChunking {
    pub fn name(self) -> &'static str {
        match self {
            HeadChunking::Tokens => "tokens",
            HeadChunking::Vocabulary => "vocabulary",
        }
    }
}

/// A plan for one training step on the whole fabric.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub model: String,
    pub fabric: String,
    pub config: StepConfig,
    pub region_rows: u64,
    pub region_cols: u64,
    /// Colors a kernel may route (the fabric's, less those the runtime and I/O keep).
    pub usable_colors: u64,
    /// Where the activations backward reads are kept (and what is recomputed).
    pub activations: Activations,
    /// Sequences per microbatch (the step accumulates gradients over the microbatches).
    pub microbatch_sequences: u64,
    /// Chunks the LM head and loss of the full microbatches run in, one after another, so that
    /// one chunk's logits fit in SRAM (1: all of a microbatch's logits at once), and what they
    /// cut ([`HeadChunking`]); a partial last group says its own (`MicrobatchGroup`).
    pub head_chunks: u64,
    pub head_chunking: HeadChunking,
    /// The best plans the search timed and did not choose, each other strategy's fastest first.
    pub alternatives: Vec<Alternative>,
    /// Full microbatches, then a partial one if the batch does not divide.
    pub groups: Vec<MicrobatchGroup>,
    /// The optimizer's updates, once per step: off-wafer, so they take no wafer time (their
    /// only wafer cost, streaming the gradients out, is the wgrad ops').
    pub optimizer: Vec<OpPlan>,
    pub sram: SramBudget,
}

/// `repeat` microbatches of `sequences` sequences, each running `ops` in order, when `spans`
/// (one per op, from `cost::timeline`) say.
#[derive(Debug, Clone, Serialize)]
pub struct MicrobatchGroup {
    pub sequences: u64,
    pub repeat: u64,
    /// How this group's LM head and loss are cut, and in how many chunks (the plan's
    /// `head_chunking` and `head_chunks` are the first group's).
    pub head_chunking: HeadChunking,
    pub head_chunks: u64,
    pub ops: Vec<OpPlan>,
    pub spans: Vec<TimelineSpan>,
}

impl MicrobatchGroup {
    /// Cycles of one microbatch of the group.
    pub fn cycles(&self) -> u64 {
        self.spans.last().map_or(0, |s| s.end)
    }
}

/// SRAM of the most loaded PE, by use, against its capacity.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SramBudget {
    pub capacity_bytes: u64,
    pub code_bytes: u64,
    /// Activations kept for backward on the most loaded PE (row 0 gets the rounding up).
    pub saved_activation_bytes: u64,
    /// The largest working set of any op on one PE (tiles, accumulators, buffers).
    pub working_bytes_max: u64,
    /// The op with that working set.
    pub working_op: String,
    pub sram_bytes_max: u64,
}

impl Plan {
    pub fn microbatches(&self) -> u64 {
        self.groups.iter().map(|g| g.repeat).sum()
    }

    /// Total cycles of the step: each microbatch group's timeline, repeated.
    pub fn cycles(&self) -> u64 {
        self.groups.iter().map(|g| g.repeat * g.cycles()).sum()
    }

    /// Checks what the mapper promised: the SRAM of the most loaded PE fits, the microbatches
    /// cover the batch, each timed by its timeline, no optimizer update runs on the wafer, every
    /// op has one wire format, is recomputed or streams activations only as its strategy says,
    /// routes no more colors than kernels have, and every GEMM tile lies within the region.
    pub fn verify(&self) -> Result<()> {
        let s = &self.sram;
        let need = s.code_bytes + s.saved_activation_bytes + s.working_bytes_max;
        if need != s.sram_bytes_max || need > s.capacity_bytes {
            return Err(Error::Simulation(format!(
                "{}, microbatch {}: PE (0, 0) needs {} B ({} B code + {} B activations saved for \
                 backward + {} B for {}), {} B over its {} B",
                self.model,
                self.microbatch_sequences,
                need,
                s.code_bytes,
                s.saved_activation_bytes,
                s.working_bytes_max,
                s.working_op,
                need.saturating_sub(s.capacity_bytes),
                s.capacity_bytes
            )));
        }
        let sequences: u64 = self.groups.iter().map(|g| g.sequences * g.repeat).sum();
        if sequences != self.config.batch_sequences {
            return Err(Error::Simulation(format!(
                "{}: microbatches cover {sequences} sequences, the step has {}",
                self.model, self.config.batch_sequences
            )));
        }
        for group in &self.groups {
            let misplaced = group.ops.iter().find(|op| !op.pass.on_wafer());
            if group.spans.len() != group.ops.len() || misplaced.is_some() {
                return Err(Error::Simulation(format!(
                    "{}: a microbatch of {} ops has {} timeline spans{}",
                    self.model,
                    group.ops.len(),
                    group.spans.len(),
                    misplaced.map_or(String::new(), |op| format!(
                        " and runs {} on the wafer",
                        op.name
                    ))
                )));
            }
            for op in &group.ops {
                if op.other_format.is_some() {
                    return Err(Error::Simulation(format!(
                        "{}: op {} was left with two wire formats unchosen",
                        self.model, op.name
                    )));
                }
                self.verify_activations(group, op)?;
                if op.colors > self.usable_colors {
                    return Err(Error::Input(format!(
                        "{}: op {} routes {} colors, the fabric leaves kernels {} \
                         (router.colors - router.colors_reserved)",
                        self.model, op.name, op.colors, self.usable_colors
                    )));
                }
                if let Some(tile) = op.tile {
                    if tile.rows > self.region_rows || tile.columns() > self.region_cols {
                        return Err(Error::Simulation(format!(
                            "{}: op {} uses a {} x {} tile on a {} x {} region",
                            self.model,
                            op.name,
                            tile.rows,
                            tile.columns(),
                            self.region_rows,
                            self.region_cols
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// What the activation strategy promised of an op: only a forward op is recomputed, of a
    /// layer by a strategy that recomputes, or the LM head's of a group cut by vocabulary; only
    /// `offload` streams activations; an op runs in at least one chunk of each kind.
    fn verify_activations(&self, group: &MicrobatchGroup, op: &OpPlan) -> Result<()> {
        let head_rerun = op.kind == OpKind::LmHead
            && op.pass == Pass::Forward
            && group.head_chunking == HeadChunking::Vocabulary;
        let wrong = if op.recompute && op.pass != Pass::Forward {
            Some("is recomputed but is no forward op")
        } else if op.recompute && op.layer.is_none() && !head_rerun {
            Some("is recomputed but is no op of a layer, nor the head cut by vocabulary")
        } else if op.recompute && op.layer.is_some() && self.activations == Activations::Keep {
            Some("is recomputed, which `keep` never does")
        } else if op.offload_in_bytes + op.offload_out_bytes > 0
            && self.activations != Activations::Offload
        {
            Some("streams activations, which only `offload` does")
        } else if op.token_chunks == 0 {
            Some("runs in no token chunk")
        } else if op.vocab_chunks == 0 {
            Some("runs in no vocabulary chunk")
        } else {
            None
        };
        match wrong {
            Some(what) => Err(Error::Simulation(format!(
                "{}: op {} {what} (activations {})",
                self.model,
                op.name,
                self.activations.name()
            ))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::graph::StepConfig;
    use crate::map::{map_step, Activations, HeadChunking, MapOptions};
    use crate::spec::{load_fabric, load_model, Phase};

    #[test]
    fn verify_refuses_recomputation_or_offload_the_strategy_does_not_do() {
        let model = load_model("gpt-tiny").unwrap();
        let fabric = load_fabric("mini").unwrap();
        let config = StepConfig::for_phase(&model, Phase::Pretrain, 0.0);
        let options = MapOptions {
            activations: Some(Activations::Keep),
            ..MapOptions::default()
        };
        let plan = map_step(&model, &fabric, config, options).unwrap();
        plan.verify().unwrap();
        let mut recomputed = plan.clone();
        recomputed.groups[0].ops[1].recompute = true;
        let err = recomputed.verify().unwrap_err().to_string();
        assert!(err.contains("which `keep` never does"), "{err}");
        let mut offloaded = plan.clone();
        offloaded.groups[0].ops[1].offload_out_bytes = 1;
        let err = offloaded.verify().unwrap_err().to_string();
        assert!(err.contains("only `offload` does"), "{err}");
        let mut backward = plan;
        backward.activations = Activations::Checkpoint;
        let last = backward.groups[0].ops.len() - 1;
        backward.groups[0].ops[last].recompute = true;
        let err = backward.verify().unwrap_err().to_string();
        assert!(err.contains("is no forward op"), "{err}");
        // A forward op outside the layers is recomputed only as the head cut by vocabulary.
        let mut head = backward.clone();
        head.groups[0].ops[last].recompute = false;
        let lm_head = head.groups[0]
            .ops
            .iter()
            .position(|op| op.name == "lm_head.fwd")
            .unwrap();
        head.groups[0].ops[lm_head].recompute = true;
        let err = head.verify().unwrap_err().to_string();
        assert!(err.contains("nor the head cut by vocabulary"), "{err}");
        head.groups[0].head_chunking = HeadChunking::Vocabulary;
        head.verify().unwrap();
    }
}
