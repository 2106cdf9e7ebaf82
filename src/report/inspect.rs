//! `wafersim inspect`: what a model or a fabric is, in numbers.

use serde::Serialize;

use super::table::{si, thousands};
use crate::graph::ParamCounts;
use crate::map::{HeadChunking, PhasePlan};
use crate::spec::{FabricSpec, ModelSpec, Phase};

/// A model: its architecture, parameter counts and the recipe's phases.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ModelInspect {
    /// The version of the field names and types (`report::SCHEMA_VERSION`).
    pub schema_version: u32,
    pub version: &'static str,
    pub seed: u64,
    pub model: String,
    pub description: String,
    pub spec: ModelSpec,
    pub params: ParamCounts,
    pub phases: Vec<PhaseShape>,
}

/// The shape of one phase's steps.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PhaseShape {
    pub phase: Phase,
    pub steps: u64,
    pub tokens: u64,
    pub batch_sequences: u64,
    pub seq_len: u64,
    /// Ops in the phase's step graph.
    pub ops: usize,
    /// The dense step mapped onto the fabric (None when the mapper refused it).
    pub plan: Option<PlanSummary>,
    /// Why the mapper refused the step (the message `step` prints); absent when it mapped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unmapped_reason: Option<String>,
}

/// What the mapper chose for a phase's dense step on the inspected fabric.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PlanSummary {
    pub fabric: String,
    pub microbatch_sequences: u64,
    pub microbatches: u64,
    pub activations: crate::map::Activations,
    pub head_chunks: u64,
    pub head_chunking: HeadChunking,
    pub cycles: u64,
    pub seconds: f64,
    pub alternatives: Vec<super::step::AlternativeReport>,
    pub sram: crate::map::SramBudget,
}

impl ModelInspect {
    /// The model, and each phase's dense step as `map::plan_phases` mapped it onto `fabric`.
    pub fn new(model: &ModelSpec, fabric: &FabricSpec, plans: &[PhasePlan], seed: u64) -> Self {
        let phases = plans
            .iter()
            .map(|p| PhaseShape {
                phase: p.phase,
                steps: model.phase_steps(p.phase),
                tokens: model.phase_sequences(p.phase) * p.config.seq_len,
                batch_sequences: p.config.batch_sequences,
                seq_len: p.config.seq_len,
                ops: p.graph_ops,
                unmapped_reason: p.plan.as_ref().err().cloned(),
                plan: p.plan.as_ref().ok().map(|plan| PlanSummary {
                    fabric: fabric.name.clone(),
                    microbatch_sequences: plan.microbatch_sequences,
                    microbatches: plan.microbatches(),
                    activations: plan.activations,
                    head_chunks: plan.head_chunks,
                    head_chunking: plan.head_chunking,
                    cycles: plan.cycles(),
                    seconds: plan.cycles() as f64 / fabric.clock.clock_hz as f64,
                    alternatives: super::step::AlternativeReport::of(
                        &plan.alternatives,
                        fabric.clock.clock_hz,
                    ),
                    sram: plan.sram.clone(),
                }),
            })
            .collect();
        ModelInspect {
            schema_version: super::SCHEMA_VERSION,
            version: crate::VERSION,
            seed,
            model: model.name.clone(),
            description: model.description.clone(),
            spec: model.clone(),
            params: ParamCounts::of(model),
            phases,
        }
    }

    pub fn render_table(&self) -> String {
        let a = &self.spec.architecture;
        let p = &self.params;
        let r = &self.spec.recipe;
        let count = |n: u64| format!("{:>15}  ({})", thousands(n as u128), si(n as f64, ""));
        let mut out = format!("{}: {}\n\n", self.model, self.description);
        out += &format!(
            "architecture  {} layers, d_model {}, {} heads of {}, d_ff {}, vocabulary {}, max sequence {}, {} embedding\n\n",
            a.layers,
            a.d_model,
            a.heads,
            a.head_dim(),
            a.d_ff,
            thousands(a.vocab_size as u128),
            a.max_seq_len,
            if a.tied_embedding { "tied" } else { "untied" }
        );
        out += "parameters\n";
        out += &format!("  total           {}\n", count(p.total));
        out += &format!("  non-embedding   {}\n", count(p.non_embedding));
        out += &format!("    matrices      {}\n", count(p.layer_matrices));
        out += &format!("    biases        {}\n", count(p.biases));
        out += &format!("    layernorm     {}\n", count(p.layernorm));
        out += &format!("  embedding       {}\n", count(p.embedding));
        if p.lm_head > 0 {
            out += &format!("  lm head         {}\n", count(p.lm_head));
        }
        out += &format!("  sparsifiable    {}\n", count(p.sparsifiable));
        out += &format!("  soft prompt     {}\n\n", count(p.soft_prompt));
        let weights: Vec<&str> = r.sparse_weights.iter().map(|w| w.name()).collect();
        out += &format!(
            "recipe  sparsities {:?}, sparse weights {}\n",
            r.sparsities,
            weights.join(", ")
        );
        for ph in &self.phases {
            out += &format!(
                "  {:<10}  {:>14} tokens  {:>9} steps of {} x {} tokens  ({} ops per step)\n",
                ph.phase.name(),
                thousands(ph.tokens as u128),
                thousands(ph.steps as u128),
                ph.batch_sequences,
                ph.seq_len,
                ph.ops
            );
            match &ph.plan {
                Some(p) => {
                    out += &format!(
                        "              on {}: {}, activations {}{}, {} per step; SRAM of the most \
                         loaded PE {} of {} B ({} code, {} saved activations, {} for {})\n",
                        p.fabric,
                        super::step::microbatch_text(
                            ph.batch_sequences,
                            p.microbatches,
                            p.microbatch_sequences
                        ),
                        p.activations.name(),
                        super::step::head_chunks_text(p.head_chunks, p.head_chunking),
                        super::table::duration(p.seconds),
                        thousands(p.sram.sram_bytes_max as u128),
                        thousands(p.sram.capacity_bytes as u128),
                        thousands(p.sram.code_bytes as u128),
                        thousands(p.sram.saved_activation_bytes as u128),
                        thousands(p.sram.working_bytes_max as u128),
                        p.sram.working_op
                    );
                    for a in &p.alternatives {
                        out += &format!(
                            "                or {} x {} sequences, activations {}: {} ({:+.1}%)\n",
                            a.microbatches,
                            a.microbatch_sequences,
                            a.activations.name(),
                            super::table::duration(a.seconds),
                            100.0 * (a.cycles as f64 / p.cycles.max(1) as f64 - 1.0)
                        );
                    }
                }
                None => {
                    out += &format!(
                        "              not mapped: {}\n",
                        ph.unmapped_reason.as_deref().unwrap_or_default()
                    )
                }
            }
        }
        out
    }
}

/// A fabric: its PEs, peak rate, memory and links.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FabricInspect {
    /// The version of the field names and types (`report::SCHEMA_VERSION`).
    pub schema_version: u32,
    pub version: &'static str,
    pub seed: u64,
    pub fabric: String,
    pub description: String,
    pub spec: FabricSpec,
    /// Whether the fabric lies where `validate` holds the cost models (as `train` reports it).
    pub validated: bool,
    pub unvalidated_keys: Vec<crate::validate::UnvalidatedKey>,
    pub region_pes: u64,
    pub peak_flops_per_second: f64,
    pub sram_bytes_total: u64,
    pub usable_colors: u64,
    pub io_bytes_per_cycle: f64,
}

impl FabricInspect {
    pub fn new(fabric: &FabricSpec, seed: u64) -> Self {
        let unvalidated = crate::validate::unvalidated_keys(fabric);
        FabricInspect {
            schema_version: super::SCHEMA_VERSION,
            version: crate::VERSION,
            seed,
            fabric: fabric.name.clone(),
            description: fabric.description.clone(),
            spec: fabric.clone(),
            validated: unvalidated.is_empty(),
            unvalidated_keys: unvalidated,
            region_pes: fabric.region_pes(),
            peak_flops_per_second: fabric.peak_fp16_flops_per_second(),
            sram_bytes_total: fabric.region_sram_bytes(),
            usable_colors: fabric.usable_colors(),
            io_bytes_per_cycle: fabric.io_bytes_per_cycle(),
        }
    }

    pub fn render_table(&self) -> String {
        let s = &self.spec;
        let g = &s.geometry;
        let mut out = format!("{}: {}\n\n", self.fabric, self.description);
        out += &crate::validate::unvalidated_warning(&self.fabric, &self.unvalidated_keys)
            .map_or(String::new(), |w| w + "\n");
        out += &format!(
            "user region   {} x {} PEs = {} (columns x rows)\n",
            g.region_width_pes,
            g.region_height_pes,
            thousands(self.region_pes as u128)
        );
        out += &format!("clock         {}\n", si(s.clock.clock_hz as f64, "Hz"));
        out += &format!(
            "peak fp16     {}  ({} FMAC lanes x 2 FLOP per PE per cycle)\n",
            si(self.peak_flops_per_second, "FLOP/s"),
            s.pe.simd_fp16_lanes
        );
        out += &format!(
            "SRAM          {} B per PE, {} in the region ({} B per PE kept for code)\n",
            thousands(s.pe.sram_bytes as u128),
            si(self.sram_bytes_total as f64, "B"),
            thousands(s.pe.code_reserve_bytes as u128)
        );
        out += &format!(
            "router        {}-bit wavelets, {} colors ({} usable), hop {} cycle(s), ramp {} cycle(s), {} wavelets per color buffer\n",
            s.router.wavelet_bits,
            s.router.colors,
            self.usable_colors,
            s.router.hop_latency_cycles,
            s.router.ramp_latency_cycles,
            s.router.color_buffer_depth_wavelets
        );
        out += &format!(
            "wafer I/O     {} ({:.1} B per cycle)\n",
            si(s.io.wafer_io_bits_per_second as f64, "b/s"),
            self.io_bytes_per_cycle
        );
        let c = &s.cluster;
        out += &format!(
            "cluster       up to {} systems data-parallel through SwarmX: {}-way nodes, links {}, reduction {}, {} ns per tree level\n",
            thousands(c.systems_max as u128),
            c.swarmx_fan_out,
            si(c.swarmx_link_bits_per_second as f64, "b/s"),
            si(c.swarmx_reduce_bits_per_second as f64, "b/s"),
            thousands(c.swarmx_level_latency_ns as u128)
        );
        out += &format!(
            "MemoryX       dynamic-sparsity mask updates at {} elements/s\n",
            si(c.memoryx_mask_update_elements_per_second as f64, "")
        );
        out
    }
}
