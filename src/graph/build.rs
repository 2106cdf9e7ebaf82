//! Builds the step graph: the forward ops of a GPT, then the backward pass derived from them.

use petgraph::graph::{DiGraph, NodeIndex};
use serde::Serialize;

use super::flops::*;
use super::op::{Dims, Op, OpKind, Pass, Weight};
use crate::spec::{ModelSpec, Phase, WeightKind};

/// What one step trains: the phase, the sparsity of the recipe's sparse weights, and the batch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StepConfig {
    pub phase: Phase,
    /// Sparsity of the recipe's sparse weights; 0 for a dense step.
    pub sparsity: f64,
    /// Sequences in the step.
    pub batch_sequences: u64,
    /// Tokens per sequence, including a soft prompt.
    pub seq_len: u64,
    /// A RigL mask-update step (`recipe.dynamic`): every sparse weight's gradient is computed
    /// dense, as RigL regrows where it is largest; forward, dgrad and the optimizer stay sparse.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dense_weight_gradients: bool,
}

impl StepConfig {
    /// The recipe's step for `phase`; `sparsity` applies to the sparse weights whatever the phase
    /// (the schedule passes 0 for the dense phases).
    pub fn for_phase(model: &ModelSpec, phase: Phase, sparsity: f64) -> Self {
        StepConfig {
            phase,
            sparsity,
            batch_sequences: model.phase_batch_sequences(phase),
            seq_len: model.phase_seq_len(phase),
            dense_weight_gradients: false,
        }
    }

    /// The same step as a RigL mask-update step (`dense_weight_gradients`).
    pub fn with_dense_weight_gradients(self) -> Self {
        StepConfig {
            dense_weight_gradients: true,
            ..self
        }
    }

    pub fn tokens(&self) -> u64 {
        self.batch_sequences * self.seq_len
    }
}

/// FLOPs of one step, the wafer's apart from the optimizer's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StepFlops {
    /// Forward, dgrad and wgrad, as if every weight were dense: the wafer's work.
    pub flops_dense: u128,
    /// Forward, dgrad and wgrad as executed: a sparse weight's zeros are skipped.
    pub flops_executed: u128,
    /// The optimizer update, off-wafer, once per step (a sparse weight's non-zeros only).
    pub flops_optimizer: u128,
}

impl StepFlops {
    /// Every count multiplied by `times` (a step repeated).
    pub fn times(&self, times: u64) -> StepFlops {
        let times = times as u128;
        StepFlops {
            flops_dense: self.flops_dense * times,
            flops_executed: self.flops_executed * times,
            flops_optimizer: self.flops_optimizer * times,
        }
    }
}

impl std::ops::Add for StepFlops {
    type Output = StepFlops;

    fn add(self, b: StepFlops) -> StepFlops {
        StepFlops {
            flops_dense: self.flops_dense + b.flops_dense,
            flops_executed: self.flops_executed + b.flops_executed,
            flops_optimizer: self.flops_optimizer + b.flops_optimizer,
        }
    }
}

/// One training step as a DAG: nodes are ops, an edge means "needs the result of".
/// Nodes are added in a topological order, so `ops()` lists them in an order that can run.
#[derive(Debug, Clone)]
pub struct StepGraph {
    pub config: StepConfig,
    pub graph: DiGraph<Op, ()>,
}

impl StepGraph {
    pub fn build(model: &ModelSpec, config: StepConfig) -> Self {
        let mut b = Builder::new(model, config);
        b.forward();
        b.backward();
        StepGraph {
            config,
            graph: b.graph,
        }
    }

    /// Ops in a topological (runnable) order.
    pub fn ops(&self) -> impl Iterator<Item = &Op> {
        self.graph.node_weights()
    }

    pub fn tokens(&self) -> u64 {
        self.config.tokens()
    }

    /// The step's FLOPs: the wafer's work and the optimizer's, apart. Every report of a step's
    /// FLOPs (`flops`, `train`, `step`, `ops.csv`) takes them from here.
    pub fn flops(&self) -> StepFlops {
        let mut flops = StepFlops::default();
        for op in self.ops() {
            if op.pass.on_wafer() {
                flops.flops_dense += op.flops_dense;
                flops.flops_executed += op.flops_executed;
            } else {
                flops.flops_optimizer += op.flops_executed;
            }
        }
        flops
    }

    pub fn op(&self, name: &str) -> Option<&Op> {
        self.ops().find(|op| op.name == name)
    }
}

/// A forward op and the forward ops whose outputs it reads.
struct ForwardNode {
    node: NodeIndex,
    inputs: Vec<NodeIndex>,
}

struct Builder<'a> {
    model: &'a ModelSpec,
    cfg: StepConfig,
    graph: DiGraph<Op, ()>,
    forward: Vec<ForwardNode>,
    /// The LM head's weight gradient when the embedding is tied: the embedding update waits for it.
    tied_head_wgrad: Option<NodeIndex>,
}

/// Sizes used by every closed form, widened so that no product can overflow.
struct Sizes {
    t: u128,
    s: u128,
    d: u128,
    f: u128,
    a: u128,
    v: u128,
    ab: u64,
    wb: u64,
}

impl<'a> Builder<'a> {
    fn new(model: &'a ModelSpec, cfg: StepConfig) -> Self {
        // Sized once (a layer adds fewer than 64 ops and 128 edges, the embedding and head
        // fewer than 64 and 128 more): the mapper builds a graph per candidate microbatch, and
        // growing one op at a time dominated the search's time.
        let layers = model.architecture.layers as usize + 1;
        Builder {
            model,
            cfg,
            graph: DiGraph::with_capacity(64 * layers, 128 * layers),
            forward: Vec::new(),
            tied_head_wgrad: None,
        }
    }

    fn sizes(&self) -> Sizes {
        let a = &self.model.architecture;
        Sizes {
            t: self.cfg.tokens() as u128,
            s: self.cfg.seq_len as u128,
            d: a.d_model as u128,
            f: a.d_ff as u128,
            a: a.heads as u128,
            v: a.vocab_size as u128,
            ab: a.activation_bytes,
            wb: a.weight_bytes,
        }
    }

    /// Weights train in pre-training and fine-tuning; soft prompting freezes them.
    fn weights_train(&self) -> bool {
        self.cfg.phase != Phase::Softprompt
    }

    fn add(&mut self, op: Op, deps: &[NodeIndex]) -> NodeIndex {
        let node = self.graph.add_node(op);
        for &dep in deps {
            self.graph.add_edge(dep, node, ());
        }
        node
    }

    fn add_forward(&mut self, op: Op, inputs: &[NodeIndex]) -> NodeIndex {
        let node = self.add(op, inputs);
        self.forward.push(ForwardNode {
            node,
            inputs: inputs.to_vec(),
        });
        node
    }

    fn forward(&mut self) {
        let mut x = self.add_forward(self.embedding_op(), &[]);
        for layer in 0..self.model.architecture.layers {
            x = self.forward_layer(layer, x);
        }
        let ln = self.add_forward(self.layernorm_op(None, "final_ln"), &[x]);
        let head = self.add_forward(self.lm_head_op(), &[ln]);
        self.add_forward(self.loss_op(), &[head]);
    }

    fn forward_layer(&mut self, layer: u64, x: NodeIndex) -> NodeIndex {
        let l = Some(layer);
        let ln1 = self.add_forward(self.layernorm_op(l, "ln1"), &[x]);
        let q = self.add_forward(self.linear_op(layer, WeightKind::Q, Pass::Forward), &[ln1]);
        let k = self.add_forward(self.linear_op(layer, WeightKind::K, Pass::Forward), &[ln1]);
        let v = self.add_forward(self.linear_op(layer, WeightKind::V, Pass::Forward), &[ln1]);
        let scores = self.add_forward(
            self.attention_op(layer, OpKind::AttnScores, Pass::Forward),
            &[q, k],
        );
        let softmax = self.add_forward(self.softmax_op(layer, Pass::Forward), &[scores]);
        let av = self.add_forward(
            self.attention_op(layer, OpKind::AttnValues, Pass::Forward),
            &[softmax, v],
        );
        let out = self.add_forward(
            self.linear_op(layer, WeightKind::AttnOut, Pass::Forward),
            &[av],
        );
        let res1 = self.add_forward(
            self.residual_op(layer, "residual1", Pass::Forward),
            &[x, out],
        );
        let ln2 = self.add_forward(self.layernorm_op(l, "ln2"), &[res1]);
        let up = self.add_forward(
            self.linear_op(layer, WeightKind::FfnUp, Pass::Forward),
            &[ln2],
        );
        let gelu = self.add_forward(self.gelu_op(layer, Pass::Forward), &[up]);
        let down = self.add_forward(
            self.linear_op(layer, WeightKind::FfnDown, Pass::Forward),
            &[gelu],
        );
        self.add_forward(
            self.residual_op(layer, "residual2", Pass::Forward),
            &[res1, down],
        )
    }

    /// Walks the forward ops backwards: each gets a dgrad (but the embedding, whose input is token
    /// ids), and each trainable weight a wgrad and an update. A gradient op waits for the dgrads
    /// of the forward op's consumers, which produce the gradient at its output.
    fn backward(&mut self) {
        let count = self.forward.len();
        let mut dgrad_of: Vec<Option<NodeIndex>> = vec![None; count];
        for i in (0..count).rev() {
            let fwd = self.forward[i].node;
            let mut deps: Vec<NodeIndex> = (i + 1..count)
                .filter(|&j| self.forward[j].inputs.contains(&fwd))
                .filter_map(|j| dgrad_of[j])
                .collect();
            deps.push(fwd);
            let op = self.graph[fwd].clone();
            if op.kind != OpKind::Embedding {
                dgrad_of[i] = Some(self.add(self.backward_op(&op, Pass::Dgrad), &deps));
            }
            self.add_weight_gradient(&op, &deps);
        }
    }

    fn add_weight_gradient(&mut self, op: &Op, deps: &[NodeIndex]) {
        let trains = match op.kind {
            OpKind::Embedding => true, // the prompt trains in soft prompting
            OpKind::Linear | OpKind::LayerNorm | OpKind::LmHead => self.weights_train(),
            _ => false,
        };
        if !trains {
            return;
        }
        let wgrad = self.add(self.backward_op(op, Pass::Wgrad), deps);
        let tied_head = op.kind == OpKind::LmHead && self.model.architecture.tied_embedding;
        if tied_head {
            self.tied_head_wgrad = Some(wgrad);
            return;
        }
        let mut update_deps = vec![wgrad];
        if op.kind == OpKind::Embedding {
            update_deps.extend(self.tied_head_wgrad);
        }
        let update = self.update_op(op);
        self.add(update, &update_deps);
    }

    // ---- forward ops -------------------------------------------------------------------------

    fn embedding_op(&self) -> Op {
        let z = self.sizes();
        let a = &self.model.architecture;
        let weight = if self.weights_train() {
            Weight {
                name: "embedding".into(),
                rows: a.vocab_size,
                cols: a.d_model,
                nonzeros: a.vocab_size * a.d_model,
                sparse: false,
                sparsifiable: false,
                extra_params: a.max_seq_len * a.d_model,
            }
        } else {
            let p = self.model.recipe.softprompt.prompt_tokens;
            Weight {
                name: "soft_prompt".into(),
                rows: p,
                cols: a.d_model,
                nonzeros: p * a.d_model,
                sparse: false,
                sparsifiable: false,
                extra_params: 0,
            }
        };
        // Gathering rows costs nothing; adding the learned position costs one FLOP per element.
        let flops = z.t * z.d;
        elementwise_op(
            "embedding".into(),
            None,
            OpKind::Embedding,
            Pass::Forward,
            z.t,
            z.d,
            flops,
            1,
            z.ab,
        )
        .with_weight(weight, z.wb)
    }

    fn layernorm_op(&self, layer: Option<u64>, which: &str) -> Op {
        let z = self.sizes();
        let flops = LAYERNORM_FLOPS_PER_ELEMENT * z.t * z.d;
        let name = prefixed(layer, which);
        let d = self.model.architecture.d_model;
        let weight = Weight {
            name: name.clone(),
            rows: 1,
            cols: d,
            nonzeros: d,
            sparse: false,
            sparsifiable: false,
            extra_params: d,
        };
        elementwise_op(
            name,
            layer,
            OpKind::LayerNorm,
            Pass::Forward,
            z.t,
            z.d,
            flops,
            2,
            z.ab,
        )
        .with_weight(weight, z.wb)
    }

    fn linear_op(&self, layer: u64, kind: WeightKind, pass: Pass) -> Op {
        let z = self.sizes();
        let arch = &self.model.architecture;
        let (k, n) = kind.shape(arch);
        let dense_gradient = pass == Pass::Wgrad && self.cfg.dense_weight_gradients;
        let sparse = self.cfg.sparsity > 0.0
            && self.model.recipe.sparse_weights.contains(&kind)
            && !dense_gradient;
        let recipe = &self.model.recipe;
        // A mask from a file keeps what it keeps (`MaskSet::read` checked every layer has one).
        let from_file = recipe.masks.as_ref().and_then(|m| m.get(layer, kind));
        let nonzeros = if let (true, Some(mask)) = (sparse, from_file) {
            mask.nonzeros()
        } else if sparse {
            let sparsity = recipe.weight_sparsity(kind, self.cfg.sparsity, arch);
            recipe.pattern.nonzeros(k, n, sparsity)
        } else {
            k * n
        };
        let bias = if arch.biases { n } else { 0 };
        let weight = Weight {
            name: format!("layer{layer}.{}", kind.name()),
            rows: k,
            cols: n,
            nonzeros,
            sparse,
            sparsifiable: self.model.recipe.sparse_weights.contains(&kind),
            extra_params: bias,
        };
        let (k, n, nnz, bias) = (k as u128, n as u128, nonzeros as u128, bias as u128);
        // Forward and wgrad add (or sum) the bias once per output; dgrad does not touch it.
        let bias_flops = if pass == Pass::Dgrad { 0 } else { z.t * bias };
        let (dims, activations) = match pass {
            Pass::Forward => (gemm(1, z.t, k, n), z.t * (k + n)),
            Pass::Dgrad => (gemm(1, z.t, n, k), z.t * (n + k)),
            _ => (gemm(1, k, z.t, n), z.t * (k + n)),
        };
        Op {
            name: format!("layer{layer}.{}.{}", kind.name(), pass.name()),
            layer: Some(layer),
            kind: OpKind::Linear,
            pass,
            dims,
            weight: None,
            flops_dense: 2 * z.t * k * n + bias_flops,
            flops_executed: 2 * z.t * nnz + bias_flops,
            weight_bytes: 0,
            activation_bytes: bytes(activations, z.ab),
        }
        .with_weight(weight, z.wb)
    }

    /// Q·Kᵀ or A·V for every sequence and head, counted in full (no causal halving).
    fn attention_op(&self, layer: u64, kind: OpKind, pass: Pass) -> Op {
        let z = self.sizes();
        let arch = &self.model.architecture;
        let (b, s, h) = (
            self.cfg.batch_sequences as u128,
            z.s,
            arch.head_dim() as u128,
        );
        let scores = z.t * z.a * z.s; // elements of the attention matrices
        let factor = if pass == Pass::Forward { 1 } else { 2 }; // dgrad feeds both operands
        let flops = factor * 2 * z.t * z.s * z.d;
        let dims = match kind {
            OpKind::AttnScores => gemm(b * z.a, s, h, s),
            _ => gemm(b * z.a, s, s, h),
        };
        let activations = match (kind, pass) {
            (OpKind::AttnScores, Pass::Forward) => 2 * z.t * z.d + scores,
            (OpKind::AttnScores, _) => scores + 4 * z.t * z.d,
            (_, Pass::Forward) => scores + 2 * z.t * z.d,
            _ => 2 * scores + 3 * z.t * z.d,
        };
        Op {
            name: format!("layer{layer}.{}.{}", kind.name(), pass.name()),
            layer: Some(layer),
            kind,
            pass,
            dims,
            weight: None,
            flops_dense: flops,
            flops_executed: flops,
            weight_bytes: 0,
            activation_bytes: bytes(activations, z.ab),
        }
    }

    fn softmax_op(&self, layer: u64, pass: Pass) -> Op {
        let z = self.sizes();
        self.activation_op(
            layer,
            OpKind::Softmax,
            pass,
            (z.t * z.a, z.s),
            SOFTMAX_FLOPS_PER_ELEMENT,
        )
    }

    /// A layer's element-wise activation (softmax, GeLU) over `rows × cols`: `per_element` FLOPs
    /// forward, `ELEMENTWISE_BACKWARD_FACTOR` times that backward; reads and writes two tensors
    /// forward (input, output), three backward (output, its gradient, the input's gradient).
    fn activation_op(
        &self,
        layer: u64,
        kind: OpKind,
        pass: Pass,
        (rows, cols): (u128, u128),
        per_element: u128,
    ) -> Op {
        let flops = backward_factor(pass) * per_element * rows * cols;
        let tensors = if pass == Pass::Forward { 2 } else { 3 };
        let name = prefixed(Some(layer), kind.name());
        elementwise_op(
            name,
            Some(layer),
            kind,
            pass,
            rows,
            cols,
            flops,
            tensors,
            self.sizes().ab,
        )
    }

    fn residual_op(&self, layer: u64, which: &str, pass: Pass) -> Op {
        let z = self.sizes();
        elementwise_op(
            prefixed(Some(layer), which),
            Some(layer),
            OpKind::Residual,
            pass,
            z.t,
            z.d,
            z.t * z.d,
            3,
            z.ab,
        )
    }

    fn gelu_op(&self, layer: u64, pass: Pass) -> Op {
        let z = self.sizes();
        self.activation_op(
            layer,
            OpKind::Gelu,
            pass,
            (z.t, z.f),
            GELU_FLOPS_PER_ELEMENT,
        )
    }

    fn lm_head_op(&self) -> Op {
        let z = self.sizes();
        let a = &self.model.architecture;
        let weight = Weight {
            name: if a.tied_embedding {
                "embedding".into()
            } else {
                "lm_head".into()
            },
            rows: a.d_model,
            cols: a.vocab_size,
            nonzeros: a.d_model * a.vocab_size,
            sparse: false,
            sparsifiable: false,
            extra_params: 0,
        };
        let flops = 2 * z.t * z.d * z.v;
        Op {
            name: "lm_head.fwd".into(),
            layer: None,
            kind: OpKind::LmHead,
            pass: Pass::Forward,
            dims: gemm(1, z.t, z.d, z.v),
            weight: None,
            flops_dense: flops,
            flops_executed: flops,
            weight_bytes: 0,
            activation_bytes: bytes(z.t * (z.d + z.v), z.ab),
        }
        .with_weight(weight, z.wb)
    }

    fn loss_op(&self) -> Op {
        let z = self.sizes();
        let flops = LOSS_FLOPS_PER_ELEMENT * z.t * z.v;
        elementwise_op(
            "loss".into(),
            None,
            OpKind::Loss,
            Pass::Forward,
            z.t,
            z.v,
            flops,
            1,
            z.ab,
        )
    }

    // ---- backward ops ------------------------------------------------------------------------

    /// The dgrad or wgrad of a forward op.
    fn backward_op(&self, fwd: &Op, pass: Pass) -> Op {
        let z = self.sizes();
        let layer = fwd.layer;
        let base = fwd.name.trim_end_matches(".fwd");
        match (fwd.kind, pass) {
            (OpKind::Linear, _) => {
                let kind = linear_kind(fwd);
                self.linear_op(layer.expect("linear ops belong to a layer"), kind, pass)
            }
            (OpKind::AttnScores | OpKind::AttnValues, _) => self.attention_op(
                layer.expect("attention ops belong to a layer"),
                fwd.kind,
                pass,
            ),
            (OpKind::Softmax, _) => {
                self.softmax_op(layer.expect("softmax belongs to a layer"), pass)
            }
            (OpKind::Gelu, _) => self.gelu_op(layer.expect("gelu belongs to a layer"), pass),
            (OpKind::Residual, _) => {
                let mut op = fwd.clone();
                op.pass = pass;
                op.name = format!("{base}.{}", pass.name());
                op
            }
            (OpKind::LayerNorm, Pass::Dgrad) => {
                let flops = ELEMENTWISE_BACKWARD_FACTOR * LAYERNORM_FLOPS_PER_ELEMENT * z.t * z.d;
                elementwise_op(
                    format!("{base}.dgrad"),
                    layer,
                    OpKind::LayerNorm,
                    pass,
                    z.t,
                    z.d,
                    flops,
                    3,
                    z.ab,
                )
            }
            (OpKind::LayerNorm, _) => {
                let flops = LAYERNORM_WGRAD_FLOPS_PER_ELEMENT * z.t * z.d;
                let weight = fwd.weight.clone().expect("layernorm has γ and β");
                elementwise_op(
                    format!("{base}.wgrad"),
                    layer,
                    OpKind::LayerNorm,
                    pass,
                    z.t,
                    z.d,
                    flops,
                    2,
                    z.ab,
                )
                .with_weight(weight, z.wb)
            }
            (OpKind::LmHead, _) => {
                let mut op = fwd.clone();
                op.pass = pass;
                op.name = format!("lm_head.{}", pass.name());
                op.dims = match pass {
                    Pass::Dgrad => gemm(1, z.t, z.v, z.d),
                    _ => gemm(1, z.d, z.t, z.v),
                };
                op
            }
            (OpKind::Loss, _) => {
                let flops = LOSS_BACKWARD_FLOPS_PER_ELEMENT * z.t * z.v;
                elementwise_op(
                    "loss.dgrad".into(),
                    None,
                    OpKind::Loss,
                    pass,
                    z.t,
                    z.v,
                    flops,
                    2,
                    z.ab,
                )
            }
            (OpKind::Embedding, _) => {
                // Scatter-add of the output gradient into the rows used: token table and positions
                // when the weights train, only the prompt rows in soft prompting.
                let weight = fwd.weight.clone().expect("embedding has a table");
                let (rows, tables) = if self.weights_train() {
                    (z.t, 2)
                } else {
                    let p = self.model.recipe.softprompt.prompt_tokens as u128;
                    (self.cfg.batch_sequences as u128 * p, 1)
                };
                let flops = tables * rows * z.d;
                elementwise_op(
                    "embedding.wgrad".into(),
                    None,
                    OpKind::Embedding,
                    pass,
                    rows,
                    z.d,
                    flops,
                    1,
                    z.ab,
                )
                .with_weight(weight, z.wb)
            }
        }
    }

    /// The optimizer step of a weight: a fixed FLOP count per trained parameter, non-zeros only.
    fn update_op(&self, fwd: &Op) -> Op {
        let z = self.sizes();
        let weight = fwd.weight.clone().expect("only weighted ops are updated");
        let base = fwd.name.trim_end_matches(".fwd");
        let per_param = self.model.recipe.optimizer_flops_per_param as u128;
        let dense = (weight.elements() + weight.extra_params) as u128;
        let executed = (weight.nonzeros + weight.extra_params) as u128;
        Op {
            name: format!("{base}.update"),
            layer: fwd.layer,
            kind: fwd.kind,
            pass: Pass::Update,
            dims: Dims::Elementwise {
                rows: 1,
                cols: weight.nonzeros + weight.extra_params,
            },
            weight: None,
            flops_dense: per_param * dense,
            flops_executed: per_param * executed,
            weight_bytes: 0,
            activation_bytes: 0,
        }
        .with_weight(weight, z.wb)
    }
}

impl Op {
    /// Attaches the weight the op reads or writes, and the bytes of its dense layout.
    fn with_weight(mut self, weight: Weight, weight_bytes: u64) -> Op {
        self.weight_bytes = (weight.elements() + weight.extra_params) * weight_bytes;
        self.weight = Some(weight);
        self
    }
}

fn linear_kind(op: &Op) -> WeightKind {
    op.weight_kind()
        .expect("linear weights are named layerN.<kind>")
}

fn backward_factor(pass: Pass) -> u128 {
    if pass == Pass::Forward {
        1
    } else {
        ELEMENTWISE_BACKWARD_FACTOR
    }
}

fn prefixed(layer: Option<u64>, which: &str) -> String {
    match layer {
        Some(l) => format!("layer{l}.{which}"),
        None => which.to_string(),
    }
}

fn gemm(batch: u128, m: u128, k: u128, n: u128) -> Dims {
    Dims::Gemm {
        batch: narrow(batch),
        m: narrow(m),
        k: narrow(k),
        n: narrow(n),
    }
}

/// Shapes are bounded by spec validation; saturate rather than wrap if a bound is ever missed.
fn narrow(x: u128) -> u64 {
    u64::try_from(x).unwrap_or(u64::MAX)
}

fn bytes(elements: u128, bytes_per_element: u64) -> u64 {
    narrow(elements * bytes_per_element as u128)
}

/// An element-wise op over `rows × cols` that reads and writes `tensors` such tensors.
#[allow(clippy::too_many_arguments)]
fn elementwise_op(
    name: String,
    layer: Option<u64>,
    kind: OpKind,
    pass: Pass,
    rows: u128,
    cols: u128,
    flops: u128,
    tensors: u128,
    activation_bytes: u64,
) -> Op {
    let suffix = pass.name();
    let name = if name.ends_with(suffix) {
        name
    } else {
        format!("{name}.{suffix}")
    };
    Op {
        name,
        layer,
        kind,
        pass,
        dims: Dims::Elementwise {
            rows: narrow(rows),
            cols: narrow(cols),
        },
        weight: None,
        flops_dense: flops,
        flops_executed: flops,
        weight_bytes: 0,
        activation_bytes: bytes(tensors * rows * cols, activation_bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{load_model, Phase};

    #[test]
    fn the_graph_is_sized_once_for_every_built_in_model_and_phase() {
        for name in [
            "gpt-tiny",
            "mediswift-med",
            "mediswift-large",
            "mediswift-xl",
        ] {
            let model = load_model(name).unwrap();
            let slots = model.architecture.layers as usize + 1;
            for phase in [Phase::Pretrain, Phase::Finetune, Phase::Softprompt] {
                let step = StepGraph::build(&model, StepConfig::for_phase(&model, phase, 0.5));
                assert!(step.graph.node_count() <= 64 * slots, "{name} {phase:?}");
                assert!(step.graph.edge_count() <= 128 * slots, "{name} {phase:?}");
            }
        }
    }
}
