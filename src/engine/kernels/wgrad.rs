//! wgrad at a sparse weight's non-zeros: `dW[k, n] = Σ_t X[t, k] · dY[t, n]`, computed only
//! where the mask keeps (k, n); zeros are never streamed or computed.
//!
//! # Mapping
//! The same region, split and slices as the forward GEMM ([`super::gemm`]): PE (r, c) keeps
//! `X[T_r, K_c]` (resident since the forward pass) and `dY[T_r, N_g]` (the incoming gradient
//! of its rows, for its N-group).
//!
//! # Timing structure
//! - **Index stream, per PE column c**: for each output column n of its N-group, one wavelet
//!   per non-zero of `W[K_c, n]` (its 16-bit index), entering at the north edge at most one per
//!   cycle, multicast down the column (color 2, `N → {Ramp, S}`). No control wavelets.
//! - **Per index wavelet, on each PE**: one task of `a + d + F(T_r)` cycles (`T_r` FMACs):
//!   the partial dot product `Σ_{t ∈ T_r} X[t, k] · dY[t, n]`. A dense weight (sparsity 0)
//!   streams every position in order, so its tasks decode nothing: `a + F(T_r)`.
//! - **Reduction down the column, per non-zero (chain over the R rows)**: row 0 sends its
//!   partial south (one wavelet, as soon as its task ends); row r > 0 adds each arriving
//!   partial to its own for the same non-zero (1 cycle, and `a` for the first of the run) and
//!   sends the sum south; row R − 1 holds `dW[k, n]`. Rows alternate colors 0 and 1, and the
//!   south links are shared with the index stream, round-robin.
//!   A partial that arrives before the PE has computed its own waits.

use std::collections::VecDeque;

use super::gemm::{fmac_cycles, GemmPlan, GemmValues};
use crate::engine::program::{EdgeStream, Kernel, Port, Program, TaskIo, Work};
use crate::engine::{run_with, RunLimits, RunOutput, Watch};
use crate::error::Result;
use crate::spec::FabricSpec;

const INDEX: u8 = 2;
pub(super) const COLORS: u8 = 3;

/// Row r sends its partials south on this color.
fn send_color(r: u32) -> u8 {
    (r % 2) as u8
}

/// Runs the wgrad program of `plan`; returns the engine's output and `dW` (`K × N`, with values).
pub(super) fn run_wgrad(
    fabric: &FabricSpec,
    plan: &GemmPlan,
    values: Option<&GemmValues>,
    watch: &mut Watch,
) -> Result<(RunOutput, Vec<f32>)> {
    let program = wgrad_program(plan);
    let mut kernel = WgradKernel::new(fabric, plan, values);
    let output = run_with(fabric, &program, &mut kernel, RunLimits::default(), watch)?;
    Ok((output, kernel.dw))
}

/// `dW = Xᵀ · dY` at the mask's non-zeros (f64 accumulation), row-major `K × N`, zero elsewhere.
pub fn reference_wgrad(plan: &GemmPlan, values: &GemmValues) -> Vec<f32> {
    let mut dw = vec![0.0; plan.k_in * plan.n_out];
    for k in 0..plan.k_in {
        for n in 0..plan.n_out {
            if plan.mask.get(k, n) {
                let acc: f64 = (0..plan.t)
                    .map(|t| {
                        values.x[t * plan.k_in + k] as f64 * values.dy[t * plan.n_out + n] as f64
                    })
                    .sum();
                dw[k * plan.n_out + n] = acc as f32;
            }
        }
    }
    dw
}

fn wgrad_program(plan: &GemmPlan) -> Program {
    let mesh = plan.mesh();
    let mut program = Program::new(mesh, COLORS);
    for c in 0..plan.cols {
        let column: Vec<u32> = (0..plan.rows).map(|r| mesh.pe(r, c)).collect();
        program
            .routes
            .multicast_line(&column, Port::S, INDEX, Port::N);
        program
            .routes
            .chain(&column, Port::S, [send_color(0), send_color(1)]);
    }
    for c in 0..plan.cols {
        let ks = plan.k_slice(c % plan.ck);
        let mut wavelets = Vec::new();
        for n in plan.n_slice(c / plan.ck) {
            for k in ks.clone().filter(|&k| plan.mask.get(k, n)) {
                wavelets.push((k - ks.start) as u64 | ((n as u64) << 32));
            }
        }
        program.edge_streams.push(EdgeStream {
            pe: mesh.pe(0, c),
            color: INDEX,
            port: Port::N,
            wavelets,
        });
    }
    program
}

struct WgradKernel<'p> {
    plan: &'p GemmPlan,
    values: Option<&'p GemmValues>,
    activation: u64,
    decode: u64,
    fmac_cycles_row: Vec<u64>,
    /// Non-zeros whose own partial this PE has computed, and those whose reduction passed.
    computed: Vec<u64>,
    reduced: Vec<u64>,
    /// Own partials (with their index wavelet) waiting for the one from the north (values only).
    own: Vec<VecDeque<(u64, f32)>>,
    /// Per PE column, the non-zeros it is streamed.
    nonzeros: Vec<u64>,
    dw: Vec<f32>,
}

impl<'p> WgradKernel<'p> {
    fn new(fabric: &FabricSpec, plan: &'p GemmPlan, values: Option<&'p GemmValues>) -> Self {
        let pes = plan.mesh().pes();
        Self {
            plan,
            values,
            activation: fabric.pe.task_activation_cycles,
            // A dense weight's positions follow from the stream's order: nothing to decode.
            decode: if plan.dense {
                0
            } else {
                fabric.pe.sparse_index_decode_cycles
            },
            fmac_cycles_row: (0..plan.rows)
                .map(|r| fmac_cycles(fabric, plan.t_slice(r).len() as u64))
                .collect(),
            computed: vec![0; pes],
            reduced: vec![0; pes],
            own: vec![VecDeque::new(); pes],
            nonzeros: {
                let counts = plan.nonzeros_per_pe_column();
                (0..counts.len()).map(|c| counts.total(c)).collect()
            },
            dw: if values.is_some() {
                vec![0.0; plan.k_in * plan.n_out]
            } else {
                Vec::new()
            },
        }
    }

    fn dot(&self, pe: u32, data: u64) -> f32 {
        let Some(v) = self.values else { return 0.0 };
        let (r, c) = (pe / self.plan.cols, pe % self.plan.cols);
        let k = self.plan.k_slice(c % self.plan.ck).start + (data as u32) as usize;
        let n = (data >> 32) as usize;
        self.plan
            .t_slice(r)
            .map(|t| v.x[t * self.plan.k_in + k] * v.dy[t * self.plan.n_out + n])
            .sum()
    }

    fn index(&mut self, pe: u32, data: u64, io: &mut TaskIo) -> Work {
        let r = pe / self.plan.cols;
        let t_r = self.plan.t_slice(r).len() as u64;
        let partial = self.dot(pe, data);
        self.computed[pe as usize] += 1;
        if self.plan.rows == 1 {
            self.store(pe, data, partial);
        } else if r == 0 {
            io.send(send_color(0), partial.to_bits() as u64);
        } else if self.values.is_some() {
            self.own[pe as usize].push_back((data, partial));
        }
        Work {
            overhead_cycles: self.activation + self.decode,
            fmac_cycles: self.fmac_cycles_row[r as usize],
            reduction_cycles: 0,
            fmac_ops: t_r,
        }
    }

    /// A partial sum from the north for this PE's oldest non-zero not yet reduced: the streams
    /// keep the same order on every row, so it pairs with that own partial.
    fn partial(&mut self, pe: u32, data: u64, io: &mut TaskIo) -> Option<Work> {
        let p = pe as usize;
        if self.reduced[p] >= self.computed[p] {
            return None;
        }
        let r = pe / self.plan.cols;
        let first = self.reduced[p] == 0;
        self.reduced[p] += 1;
        let (index, own) = self.own[p].pop_front().unwrap_or((0, 0.0));
        let sum = f32::from_bits(data as u32) + own;
        if r + 1 < self.plan.rows {
            io.send(send_color(r), sum.to_bits() as u64);
        } else {
            self.store(pe, index, sum);
        }
        Some(Work {
            overhead_cycles: if first { self.activation } else { 0 },
            reduction_cycles: 1,
            ..Work::default()
        })
    }

    fn store(&mut self, pe: u32, index: u64, value: f32) {
        if self.values.is_none() {
            return;
        }
        let c = pe % self.plan.cols;
        let k = self.plan.k_slice(c % self.plan.ck).start + (index as u32) as usize;
        let n = (index >> 32) as usize;
        self.dw[k * self.plan.n_out + n] = value;
    }
}

impl Kernel for WgradKernel<'_> {
    fn on_wavelet(
        &mut self,
        pe: u32,
        color: u8,
        data: u64,
        _now: u64,
        io: &mut TaskIo,
    ) -> Option<Work> {
        if color == INDEX {
            Some(self.index(pe, data, io))
        } else {
            self.partial(pe, data, io)
        }
    }

    fn expected(&self) -> Vec<(u32, u8)> {
        let mut missing = Vec::new();
        for pe in 0..self.plan.mesh().pes() as u32 {
            let (r, c) = (pe / self.plan.cols, pe % self.plan.cols);
            let nonzeros = self.nonzeros[c as usize];
            if self.computed[pe as usize] < nonzeros {
                missing.push((pe, INDEX));
            }
            if r > 0 && self.reduced[pe as usize] < nonzeros {
                missing.push((pe, send_color(r - 1)));
            }
        }
        missing
    }
}
