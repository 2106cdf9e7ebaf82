//! The built-in fidelity checks: the fabric-scale cost models against the wavelet-level engine,
//! on shapes both can run. Full-wafer steps trust the cost models because these pass.
//!
//! Architecture Invariant: a check compares two independent computations of the same kernel —
//! the engine simulates every wavelet, the cost model evaluates closed forms — built from the
//! same `FabricSpec`, and nothing else.

mod coverage;
pub mod hardware;

pub use coverage::{
    covered_ranges, unvalidated_keys, unvalidated_warning, CoveredRange, KeyRange, UnvalidatedKey,
    COVERED_RANGES,
};

use serde::Serialize;

use crate::cost::{
    attention_layouts_cost, attention_products, collective_busy_cycles, collective_cycles,
    elementwise_config, elementwise_cost, gemm_cost, gemm_cost_with_counts, AttentionOp,
    ElementwiseProblem, GemmProblem, KernelCost,
};
use crate::engine::kernels::attention::run_attention_shapes;
use crate::engine::kernels::collective::{run_collective, Algo, Collective, CollectiveConfig};
use crate::engine::kernels::elementwise::run_elementwise;
use crate::engine::kernels::gemm::{run_gemm, GemmConfig, GemmForm, GemmPlan};
use crate::engine::RunOutput;
use crate::error::{Error, Result};
use crate::graph::{elementwise_profile, OpKind, Pass};
use crate::sparsity::Pattern;
use crate::spec::FabricSpec;

/// Every shape within this relative error of the engine.
pub const MAX_ERROR: f64 = 0.15;
/// And the mean absolute relative error at most this.
pub const MAX_MEAN_ERROR: f64 = 0.05;
/// Every shape's mean PE utilisation (busy cycles over PEs × cycles) within this many
/// percentage points (as a fraction) of the engine's: the share of the step's PE-time the model
/// calls busy is what the step's utilisation figures report.
pub const MAX_UTILIZATION_GAP: f64 = 0.10;

/// One shape run both ways.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Check {
    pub kernel: String,
    pub shape: String,
    pub engine_cycles: u64,
    /// The closed-form model full-wafer steps use, here with load imbalance as an expected
    /// maximum (a step on a random mask prices its per-PE counts drawn from the seed).
    pub model_cycles: u64,
    /// (model − engine) ÷ engine.
    pub error: f64,
    /// The same model fed the exact per-PE non-zero counts of the engine's mask (GEMMs only):
    /// the part of the error that the expected-maximum approximation does not explain.
    pub model_exact_cycles: Option<u64>,
    /// Mean PE utilisation on the engine: busy cycles of all PEs over PEs × cycles.
    pub engine_utilization_mean: f64,
    /// The same from the cost model's busy cycles.
    pub model_utilization_mean: f64,
    /// model − engine, in fractions (0.01 = one percentage point).
    pub utilization_gap: f64,
}

impl Validation {
    pub fn render_table(&self, fabric: &str) -> String {
        let mut t = crate::report::Table::new([
            "kernel",
            "shape",
            "engine cycles",
            "model cycles",
            "error",
            "exact-count model",
            "engine util",
            "model util",
            "util gap",
        ])
        .left_aligned(2);
        for c in &self.checks {
            t.row([
                c.kernel.clone(),
                c.shape.clone(),
                crate::report::thousands(c.engine_cycles as u128),
                crate::report::thousands(c.model_cycles as u128),
                format!("{:+.1}%", 100.0 * c.error),
                c.model_exact_cycles
                    .map_or(String::new(), |m| crate::report::thousands(m as u128)),
                format!("{:.1}%", 100.0 * c.engine_utilization_mean),
                format!("{:.1}%", 100.0 * c.model_utilization_mean),
                format!("{:+.1} pp", 100.0 * c.utilization_gap),
            ]);
        }
        format!(
            "wafersim validate: cost models against the wavelet-level engine on {fabric}\n\n{}\n             {} shapes: max |error| {:.1}% (bound {:.0}%), mean |error| {:.2}% (bound {:.0}%), max |util gap| {:.1} pp (bound {:.0} pp): {}\n",
            t.render(),
            self.checks.len(),
            100.0 * self.max_abs_error,
            100.0 * MAX_ERROR,
            100.0 * self.mean_abs_error,
            100.0 * MAX_MEAN_ERROR,
            100.0 * self.max_utilization_gap,
            100.0 * MAX_UTILIZATION_GAP,
            if self.passed { "passed" } else { "FAILED" }
        ) + &self.render_ranges()
    }

    /// The covered ranges, each with this fabric's value; `train`, `step` and sweeps flag a
    /// fabric outside them.
    fn render_ranges(&self) -> String {
        let mut out = String::from(
            "
Covered ranges (the tests pass validate at both edges of each, the other keys as \
             on wse2;
a full-wafer report on a fabric outside them says it is not validated):\n",
        );
        for r in &self.covered_ranges {
            let outside = self.unvalidated_keys.iter().find(|k| k.key == r.key);
            let mark = outside.map_or(String::new(), |k| format!("   outside: {}", k.value));
            out += &format!("  {:<36} {} to {}{mark}\n", r.key, r.low, r.high);
        }
        out
    }
}

/// All checks, and whether they meet the bounds.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Validation {
    /// The version of the field names and types (`report::SCHEMA_VERSION`).
    pub schema_version: u32,
    pub version: &'static str,
    /// The engine's masks are drawn from this seed.
    pub seed: u64,
    pub fabric: String,
    pub checks: Vec<Check>,
    pub max_abs_error: f64,
    pub mean_abs_error: f64,
    /// The largest |model − engine| mean PE utilisation over the checks.
    pub max_utilization_gap: f64,
    pub passed: bool,
    /// Per engine-relevant fabric key, the range the checks pass over (the tests hold both
    /// edges); `train`, `step` and sweep points flag a fabric outside it.
    pub covered_ranges: Vec<KeyRange>,
    /// This fabric's keys outside those ranges.
    pub unvalidated_keys: Vec<UnvalidatedKey>,
}

enum Shape {
    Gemm {
        form: GemmForm,
        t: usize,
        k: usize,
        n: usize,
        s: f64,
        /// The mask's structure (`random` for most shapes).
        pattern: Pattern,
        region: (u32, u32),
        split: Option<(u32, u32)>,
    },
    Collective {
        kind: Collective,
        algo: Algo,
        p: u32,
        b: u64,
    },
    /// Attention's scores and A·V (or their gradients) for `products` (sequence, head) pairs.
    Attention {
        seq: u64,
        head: u64,
        products: u64,
        dgrad: bool,
        region: (u32, u32),
    },
    Elementwise {
        kind: OpKind,
        pass: Pass,
        rows: u64,
        cols: u64,
        region: (u32, u32),
    },
}

fn shapes() -> Vec<Shape> {
    use GemmForm::{Dgrad, Forward, Wgrad};
    let gemm = |form, t, k, n, s, region, split| Shape::Gemm {
        form,
        t,
        k,
        n,
        s,
        pattern: Pattern::Random,
        region,
        split,
    };
    // A structured mask (`kernel gemm --mask`): N:M, blocks, whole rows or columns.
    let masked = |form, t, k, n, s, pattern: &str, region, split| Shape::Gemm {
        form,
        t,
        k,
        n,
        s,
        pattern: pattern.parse().expect("a built-in pattern parses"),
        region,
        split,
    };
    let coll = |kind, algo, p, b| Shape::Collective { kind, algo, p, b };
    let attn = |seq, head, products, dgrad, region| Shape::Attention {
        seq,
        head,
        products,
        dgrad,
        region,
    };
    let ew = |kind, pass, rows, cols, region| Shape::Elementwise {
        kind,
        pass,
        rows,
        cols,
        region,
    };
    vec![
        // Compute-bound: many K per PE.
        gemm(Forward, 256, 512, 128, 0.0, (8, 8), None),
        gemm(Forward, 256, 512, 128, 0.5, (8, 8), None),
        gemm(Forward, 256, 512, 128, 0.75, (8, 8), None),
        gemm(Forward, 256, 512, 128, 0.9, (8, 8), None),
        gemm(Forward, 512, 256, 256, 0.25, (16, 16), None),
        gemm(Forward, 512, 256, 256, 0.75, (16, 16), None),
        gemm(Forward, 1024, 256, 128, 0.0, (32, 32), None),
        gemm(Forward, 1024, 256, 128, 0.75, (32, 32), None),
        gemm(Forward, 256, 256, 128, 0.5, (64, 64), None),
        gemm(Forward, 256, 128, 256, 0.0, (64, 64), None),
        // Reduction-bound: few K per PE, long chains.
        gemm(Forward, 512, 64, 64, 0.0, (8, 16), Some((16, 1))),
        gemm(Forward, 512, 64, 64, 0.75, (8, 16), Some((16, 1))),
        gemm(Forward, 512, 128, 64, 0.5, (16, 16), Some((16, 1))),
        gemm(Forward, 256, 256, 256, 0.9, (16, 16), Some((8, 2))),
        gemm(Forward, 256, 256, 256, 0.5, (16, 16), Some((2, 8))),
        // Backward: dX = dY·Wᵀ on the transposed mask.
        gemm(Dgrad, 256, 512, 128, 0.0, (8, 8), None),
        gemm(Dgrad, 256, 512, 128, 0.75, (8, 8), None),
        gemm(Dgrad, 512, 256, 256, 0.5, (16, 16), None),
        gemm(Dgrad, 1024, 128, 256, 0.9, (32, 32), None),
        // Weight gradient at the non-zeros only, reduced down the PE columns; dense without an
        // index decode.
        gemm(Wgrad, 256, 256, 128, 0.0, (8, 8), None),
        gemm(Wgrad, 256, 256, 128, 0.5, (8, 8), None),
        gemm(Wgrad, 256, 256, 128, 0.75, (8, 8), None),
        gemm(Wgrad, 512, 256, 256, 0.9, (16, 16), None),
        gemm(Wgrad, 1024, 128, 128, 0.75, (32, 32), None),
        // Structured masks: N:M with slices holding whole groups (exact counts) and cutting
        // them (K 96 in K-groups of 6), blocks, whole rows and columns, skewed; every form.
        masked(Forward, 256, 512, 128, 0.5, "2:4", (8, 8), None),
        masked(Forward, 512, 96, 64, 0.5, "2:4", (8, 16), Some((16, 1))),
        masked(Forward, 512, 256, 256, 0.75, "1:4", (16, 16), None),
        masked(Dgrad, 256, 512, 128, 0.5, "2:4", (8, 8), None),
        masked(Wgrad, 256, 256, 128, 0.5, "2:4", (8, 8), None),
        masked(Forward, 256, 512, 128, 0.75, "block:8", (8, 8), None),
        masked(Forward, 512, 256, 256, 0.5, "block:16", (16, 16), None),
        masked(Dgrad, 512, 256, 256, 0.75, "block:8", (16, 16), None),
        masked(Wgrad, 256, 256, 128, 0.75, "block:8", (8, 8), None),
        masked(Forward, 256, 512, 128, 0.75, "rows", (8, 8), None),
        masked(Dgrad, 1024, 1024, 256, 0.5, "rows", (32, 32), None),
        masked(Forward, 256, 256, 256, 0.5, "cols", (16, 16), Some((8, 2))),
        masked(Wgrad, 256, 256, 128, 0.75, "cols", (8, 8), None),
        // Skewed: rows and columns of lognormal density, kept by weighted sampling.
        masked(Forward, 512, 256, 256, 0.75, "skewed", (16, 16), None),
        masked(Dgrad, 512, 256, 256, 0.5, "skewed", (16, 16), None),
        masked(Wgrad, 512, 256, 256, 0.9, "skewed", (16, 16), None),
        masked(Forward, 1024, 1024, 256, 0.75, "skewed", (32, 32), None),
        masked(
            Forward,
            256,
            256,
            256,
            0.5,
            "skewed:0.5",
            (16, 16),
            Some((8, 2)),
        ),
        // Collectives along a row.
        coll(Collective::Reduce, Algo::Chain, 16, 256),
        coll(Collective::Reduce, Algo::Chain, 64, 64),
        coll(Collective::Reduce, Algo::Tree, 16, 256),
        coll(Collective::Reduce, Algo::Tree, 64, 64),
        coll(Collective::Allreduce, Algo::Chain, 16, 256),
        coll(Collective::Allreduce, Algo::Chain, 64, 64),
        coll(Collective::Allreduce, Algo::Tree, 16, 256),
        coll(Collective::Allreduce, Algo::Tree, 32, 1024),
        coll(Collective::Allreduce, Algo::Ring, 16, 1024),
        coll(Collective::Allreduce, Algo::Ring, 8, 256),
        coll(Collective::Allreduce, Algo::Ring, 64, 64),
        coll(Collective::Broadcast, Algo::Chain, 16, 256),
        coll(Collective::Broadcast, Algo::Chain, 64, 1024),
        // Latency-bound: one wavelet over a long row (the tree's hops on its critical path).
        coll(Collective::Reduce, Algo::Chain, 256, 1),
        coll(Collective::Reduce, Algo::Tree, 256, 1),
        coll(Collective::Allreduce, Algo::Tree, 256, 1),
        coll(Collective::Allreduce, Algo::Chain, 256, 1),
        coll(Collective::Allreduce, Algo::Ring, 256, 256),
        coll(Collective::Broadcast, Algo::Chain, 256, 1),
        // Two or three PEs: no PE both adds and stores, or a tree of one level.
        coll(Collective::Reduce, Algo::Chain, 2, 1),
        coll(Collective::Allreduce, Algo::Chain, 2, 1),
        coll(Collective::Allreduce, Algo::Chain, 2, 1000),
        coll(Collective::Reduce, Algo::Tree, 3, 8),
        coll(Collective::Allreduce, Algo::Tree, 3, 8),
        coll(Collective::Broadcast, Algo::Chain, 2, 1),
        coll(Collective::Allreduce, Algo::Ring, 2, 64),
        // Attention: the second operand multicast from the PE rows holding it; several tiles,
        // rounds of products (5 on 4 tiles), a K split with its chain (1024 on 16 x 16).
        attn(128, 32, 4, false, (16, 16)),
        attn(256, 64, 8, false, (32, 32)),
        attn(1024, 64, 1, false, (16, 16)),
        attn(128, 64, 1, true, (16, 16)),
        attn(256, 32, 5, true, (8, 8)),
        // Element-wise ops, tokens over PE rows and features over PE columns: a row
        // all-reduce (tree where it is faster, chain on a narrow region), or none.
        ew(OpKind::LayerNorm, Pass::Forward, 256, 1024, (16, 16)),
        ew(OpKind::LayerNorm, Pass::Forward, 100, 300, (8, 4)),
        ew(OpKind::LayerNorm, Pass::Dgrad, 512, 512, (32, 64)),
        ew(OpKind::Softmax, Pass::Forward, 1024, 512, (16, 32)),
        ew(OpKind::Softmax, Pass::Forward, 64, 2048, (8, 256)),
        ew(OpKind::Softmax, Pass::Dgrad, 1024, 512, (16, 32)),
        ew(OpKind::Gelu, Pass::Forward, 256, 1024, (16, 16)),
        ew(OpKind::Gelu, Pass::Dgrad, 300, 1000, (32, 32)),
        ew(OpKind::Residual, Pass::Forward, 100, 77, (8, 8)),
        ew(OpKind::Embedding, Pass::Forward, 512, 256, (16, 16)),
        ew(OpKind::Embedding, Pass::Wgrad, 512, 256, (16, 16)),
        ew(OpKind::Loss, Pass::Forward, 64, 4096, (8, 128)),
        ew(OpKind::Loss, Pass::Forward, 256, 1024, (64, 2)),
        ew(OpKind::Loss, Pass::Dgrad, 64, 4096, (8, 128)),
    ]
}

/// Refuses a fabric too small for the shapes, naming what they need (a shape's own refusal
/// would name flags the user never gave).
fn fits(fabric: &FabricSpec, shapes: &[Shape]) -> Result<()> {
    let (rows, cols) = shapes
        .iter()
        .map(|shape| match *shape {
            Shape::Gemm { region, .. } => region,
            Shape::Collective { p, .. } => (1, p),
            Shape::Attention { region, .. } => region,
            Shape::Elementwise { region, .. } => region,
        })
        .fold((0, 0), |(r, c), (sr, sc)| (r.max(sr), c.max(sc)));
    let (height, width) = (
        fabric.geometry.region_height_pes,
        fabric.geometry.region_width_pes,
    );
    if u64::from(rows) > height || u64::from(cols) > width {
        return Err(Error::input(format!(
            "validate runs kernels on up to {rows}x{cols} PEs (rows x columns); fabric {}'s user \
             region is {height}x{width}: validate a larger fabric (e.g. --fabric wse2)",
            fabric.name
        )));
    }
    Ok(())
}

/// Runs every shape on the engine and the cost model, on `fabric`; masks from `seed`.
pub fn validate(fabric: &FabricSpec, seed: u64) -> Result<Validation> {
    let shapes = shapes();
    fits(fabric, &shapes)?;
    let mut checks = Vec::new();
    for shape in shapes {
        checks.push(match shape {
            Shape::Gemm { .. } => gemm_check(fabric, &shape, seed)?,
            Shape::Attention {
                seq,
                head,
                products,
                dgrad,
                region,
            } => attention_check(fabric, (seq, head, products, dgrad), region)?,
            Shape::Collective { kind, algo, p, b } => {
                let cfg = CollectiveConfig::along_row(kind, algo, p, b, seed);
                let run = run_collective(fabric, &cfg)?;
                let (kind, algo_model) = (kind.into(), algo.into());
                let model = collective_cycles(fabric, kind, algo_model, p as u64, b);
                let busy = collective_busy_cycles(fabric, kind, algo_model, p as u64, b);
                check(
                    format!("{} {}", cfg.collective.name(), algo_name(algo)),
                    format!("pes {p} wavelets {b}"),
                    &run.output,
                    (model, busy as f64 / (p as u64 * model.max(1)) as f64),
                )
            }
            Shape::Elementwise { .. } => elementwise_check(fabric, &shape)?,
        });
    }
    let errors: Vec<f64> = checks.iter().map(|c| c.error.abs()).collect();
    let max_abs_error = errors.iter().copied().fold(0.0, f64::max);
    let mean_abs_error = errors.iter().sum::<f64>() / errors.len().max(1) as f64;
    let max_utilization_gap = checks
        .iter()
        .map(|c| c.utilization_gap.abs())
        .fold(0.0, f64::max);
    Ok(Validation {
        schema_version: crate::report::SCHEMA_VERSION,
        version: crate::VERSION,
        seed,
        fabric: fabric.name.clone(),
        passed: max_abs_error <= MAX_ERROR
            && mean_abs_error <= MAX_MEAN_ERROR
            && max_utilization_gap <= MAX_UTILIZATION_GAP,
        checks,
        max_abs_error,
        mean_abs_error,
        max_utilization_gap,
        covered_ranges: covered_ranges(),
        unvalidated_keys: unvalidated_keys(fabric),
    })
}

fn gemm_check(fabric: &FabricSpec, shape: &Shape, seed: u64) -> Result<Check> {
    let Shape::Gemm {
        form,
        t,
        k,
        n,
        s,
        pattern,
        region,
        split,
    } = *shape
    else {
        return Err(Error::Simulation("gemm_check takes a GEMM shape".into()));
    };
    let cfg = GemmConfig {
        t,
        k,
        n,
        sparsity: s,
        pattern,
        region,
        split,
        seed,
        form,
        values: false,
    };
    let run = run_gemm(fabric, &cfg)?;
    let (model, exact) = gemm_models(fabric, &run.plan);
    let (ck, cn) = (run.plan.ck, run.plan.cn);
    let form = match form {
        GemmForm::Forward => "forward",
        GemmForm::Dgrad => "dgrad",
        GemmForm::Wgrad => "wgrad",
    };
    let mut c = check(
        format!("gemm {form}"),
        format!(
            "t {t} k {k} n {n} s {s}{} region {}x{} split {ck}x{cn}",
            match pattern {
                Pattern::Random => String::new(),
                p => format!(" mask {p}"),
            },
            region.0,
            region.1
        ),
        &run.output,
        (
            model.cycles,
            model.busy_cycles_mean as f64 / model.cycles.max(1) as f64,
        ),
    );
    c.model_exact_cycles = Some(exact);
    Ok(c)
}

/// An element-wise op of the step (its `graph::elementwise_profile`) on the engine and through
/// `cost::elementwise_cost`, with the row all-reduce both take from `cost::row_allreduce_algo`.
fn elementwise_check(fabric: &FabricSpec, shape: &Shape) -> Result<Check> {
    let Shape::Elementwise {
        kind,
        pass,
        rows,
        cols,
        region,
    } = *shape
    else {
        return Err(Error::Simulation(
            "elementwise_check takes an element-wise shape".into(),
        ));
    };
    // Named as `wafersim kernel` names them.
    let name = kind.name();
    let profile = elementwise_profile(kind, pass)
        .ok_or_else(|| Error::Simulation(format!("{name} has no element-wise profile")))?;
    let cfg = elementwise_config(fabric, &profile, (rows, cols), region);
    let run = run_elementwise(fabric, &cfg)?;
    let (r, c) = (u64::from(region.0), u64::from(region.1));
    let cost = elementwise_cost(fabric, &ElementwiseProblem::of_config(&cfg), r, c);
    let algo = if cfg.reduces() {
        format!(" {}", algo_name(cfg.algo))
    } else {
        String::new()
    };
    Ok(check(
        format!("{name} {}", pass.name()),
        format!(
            "rows {rows} cols {cols} region {}x{}{algo}",
            region.0, region.1
        ),
        &run.output,
        (
            cost.cycles,
            cost.busy_cycles_mean as f64 / cost.cycles.max(1) as f64,
        ),
    ))
}

/// The cost model of a planned engine GEMM: closed form, and with the plan's exact per-PE
/// non-zero counts.
fn gemm_models(fabric: &FabricSpec, plan: &GemmPlan) -> (KernelCost, u64) {
    let (problem, tile) = GemmProblem::of_layout(plan, plan.mask.nonzeros());
    let pes = tile.rows * tile.columns();
    let counts = plan.nonzeros_per_pe_column();
    (
        gemm_cost(fabric, &problem, &tile, pes),
        gemm_cost_with_counts(fabric, &problem, &tile, pes, Some(&counts)).cycles,
    )
}

/// Attention's products of a pass on the engine and through the cost model.
fn attention_check(
    fabric: &FabricSpec,
    (seq, head, products, dgrad): (u64, u64, u64, bool),
    region: (u32, u32),
) -> Result<Check> {
    let shapes: Vec<(usize, usize, usize)> = [AttentionOp::Scores, AttentionOp::Values]
        .into_iter()
        .flat_map(|op| attention_products(op, dgrad, seq, head))
        .map(|(t, k, n)| (t as usize, k as usize, n as usize))
        .collect();
    let (layouts, output) = run_attention_shapes(fabric, &shapes, products, region)?;
    let (model, _) = attention_layouts_cost(fabric, &layouts, region);
    let splits: Vec<String> = layouts
        .iter()
        .map(|l| format!("{}x{}", l.ck, l.cn))
        .collect();
    let utilization = model.busy_cycles_mean as f64 / model.cycles.max(1) as f64;
    Ok(check(
        format!("attention {}", if dgrad { "dgrad" } else { "fwd" }),
        format!(
            "seq {seq} head_dim {head} products {products} region {}x{} tiles {}x{} split {}",
            region.0,
            region.1,
            layouts[0].down,
            layouts[0].across,
            splits.join(",")
        ),
        &output,
        (model.cycles, utilization),
    ))
}

/// A check of the engine's `output` against the model's cycles and mean PE utilisation.
fn check(
    kernel: String,
    shape: String,
    output: &RunOutput,
    (model_cycles, model_utilization_mean): (u64, f64),
) -> Check {
    let engine_cycles = output.cycles;
    let pes = output.counters.pes.len().max(1) as u64;
    let busy = output.counters.total().busy_cycles();
    let engine_utilization_mean = busy as f64 / (pes * engine_cycles.max(1)) as f64;
    Check {
        kernel,
        shape,
        engine_cycles,
        model_cycles,
        error: (model_cycles as f64 - engine_cycles as f64) / engine_cycles.max(1) as f64,
        model_exact_cycles: None,
        engine_utilization_mean,
        model_utilization_mean,
        utilization_gap: model_utilization_mean - engine_utilization_mean,
    }
}

fn algo_name(algo: Algo) -> &'static str {
    match algo {
        Algo::Chain => "chain",
        Algo::Tree => "tree",
        Algo::Ring => "ring",
    }
}
