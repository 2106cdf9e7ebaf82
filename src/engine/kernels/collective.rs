//! Reduce, all-reduce and broadcast of B wavelets (one fp32 value each) along a row or a column
//! of P PEs (described below for a row; a column runs north to south the same way, same
//! cycles), and broadcast over a whole region: the fabric's building blocks and its
//! micro-benchmarks.
//!
//! Costs per received wavelet: 1 core cycle (an fp32 add, or a store), plus
//! `pe.task_activation_cycles` on the first wavelet of each incoming stream (one task per
//! stream, as an asynchronous fabric-input operation). Sends leave through the ramp at one
//! wavelet per cycle.
//!
//! - **chain** reduce: PE 0 sends its vector east; PE j adds its own and forwards (color
//!   j mod 2); PE P − 1 holds the sum. The vector moves as one block (each PE streams it
//!   through its adds: the same cycles as wavelet by wavelet). All-reduce adds a multicast back
//!   west from PE P − 1, started element by element as sums complete; it stays wavelet by
//!   wavelet (its two streams share each PE's ramp cycle by cycle).
//! - **tree** reduce: binary tree to PE 0; at level l, PE i with i mod 2^(l+1) = 2^l sends to
//!   PE i − 2^l (color l, passing through the PEs between), element by element as soon as all
//!   its children have delivered that element. All-reduce multicasts the sum east from PE 0.
//! - **ring** all-reduce: reduce-scatter then all-gather over a logical ring (east on colors
//!   0/1, the wrap-around from PE P − 1 back to PE 0 west on color 2), B split into P chunks;
//!   each received wavelet is added (or stored) and forwarded at once.
//! - **broadcast**: one multicast from PE (0, 0): along row 0 east, and from each PE of row 0
//!   down its column; the vector travels as one block (a stream every core stores as it
//!   comes: same cycles as wavelet by wavelet, a few events per PE instead of a few per
//!   wavelet).
//!
//! Closed forms (tested): a chain reduce takes `(P − 1)·(hop + ramp + a + 1) + B − 1` cycles
//! (each step: a hop, the ramp, the activation and one add; the rest streams behind at one
//! wavelet per cycle); a broadcast along a row `(P − 1)·hop + ramp + a + B`. A tree reduce is
//! bound by the root's core, which adds each child's B wavelets in turn (⌈log₂ P⌉·B cycles and
//! more): it only wins for short vectors.

use serde::Serialize;

use crate::engine::program::{Kernel, Mesh, Port, Program, TaskIo, Work};
use crate::engine::{check_mesh, run_with, RunLimits, RunOutput, Watch};
use crate::error::{Error, Result};
use crate::sparsity::split_range;
use crate::spec::FabricSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Collective {
    Reduce,
    Allreduce,
    Broadcast,
}

impl Collective {
    pub fn name(self) -> &'static str {
        match self {
            Collective::Reduce => "reduce",
            Collective::Allreduce => "allreduce",
            Collective::Broadcast => "broadcast",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Algo {
    Chain,
    Tree,
    Ring,
}

#[derive(Debug, Clone)]
pub struct CollectiveConfig {
    pub collective: Collective,
    /// Region; reduce and all-reduce run along one row (`rows = 1`).
    pub rows: u32,
    pub cols: u32,
    /// Wavelets (values) per PE.
    pub wavelets: u64,
    pub algo: Algo,
    /// Carry values (each PE's vector is a fixed pattern of small exact numbers).
    pub values: bool,
    pub seed: u64,
}

impl CollectiveConfig {
    /// `collective` by `algo` along one row of `pes` PEs, `wavelets` per PE, timing only (no
    /// values): the shape `validate` and the cost models describe.
    pub fn along_row(
        collective: Collective,
        algo: Algo,
        pes: u32,
        wavelets: u64,
        seed: u64,
    ) -> Self {
        Self {
            collective,
            rows: 1,
            cols: pes,
            wavelets,
            algo,
            values: false,
            seed,
        }
    }
}

/// A finished collective: the engine's output and, with values, each PE's resulting vector.
pub struct CollectiveRun {
    pub output: RunOutput,
    /// Per PE: the reduced vector (root or every PE), or what it received (broadcast).
    pub results: Vec<Vec<f32>>,
}

/// The value PE `pe` contributes at element `i`: a multiple of 1/8 below 2, so sums of up to
/// 2^20 of them are exact in f32.
pub fn contribution(pe: u32, i: u64) -> f32 {
    ((pe as u64 * 31 + i * 7) % 17) as f32 / 8.0
}

const TREE_MAX_LEVELS: u32 = 32;

/// A reduce or all-reduce runs along a line of PEs, PE id = position on it: a row (one row,
/// toward the east) or a column (one column, toward the south). Its length and direction.
fn line(mesh: Mesh) -> (u32, Port) {
    if mesh.rows == 1 {
        (mesh.cols, Port::E)
    } else {
        (mesh.rows, Port::S)
    }
}

fn levels(p: u32) -> u32 {
    32 - (p.max(1) - 1).leading_zeros()
}

/// Refuses what a collective cannot be (an algorithm it does not have, a line or region larger
/// than the fabric's, more colors than the fabric leaves kernels, a vector that does not fit a
/// PE's SRAM); gives the SRAM bytes each PE needs.
/// The engine and the cost model (`kernel --fidelity model`) both check with this.
pub fn check_collective(fabric: &FabricSpec, cfg: &CollectiveConfig) -> Result<u64> {
    let p = line(Mesh {
        rows: cfg.rows,
        cols: cfg.cols,
    })
    .0;
    match (cfg.collective, cfg.algo) {
        (Collective::Reduce, Algo::Ring) => {
            return Err(Error::Input(
                "--algo ring: ring is an all-reduce algorithm; reduce takes chain or tree".into(),
            ))
        }
        (Collective::Broadcast, Algo::Tree | Algo::Ring) => {
            return Err(Error::Input(
                "--algo: broadcast is one multicast (the router copies each wavelet); use chain".into(),
            ))
        }
        (Collective::Allreduce, Algo::Ring) if cfg.wavelets < p as u64 => {
            return Err(Error::Input(format!(
                "--wavelets {}: ring all-reduce splits the vector into one chunk per PE, so it needs at least --pes {p}",
                cfg.wavelets
            )))
        }
        _ => {}
    }
    if cfg.collective != Collective::Broadcast && cfg.rows != 1 && cfg.cols != 1 {
        return Err(Error::Input(
            "reduce and all-reduce run along one row or one column: give --pes P".into(),
        ));
    }
    if cfg.collective == Collective::Broadcast {
        // A row (--pes) or a region (--region): the engine's own check, so both fidelities
        // refuse a broadcast beyond the fabric with the same words.
        crate::engine::check_region(fabric, cfg.rows as u64, cfg.cols as u64)?;
    }
    super::check_colors(fabric, program_colors(cfg))?;
    let g = &fabric.geometry;
    for (along, count, limit) in [
        ("row", cfg.cols, g.region_width_pes),
        ("column", cfg.rows, g.region_height_pes),
    ] {
        if cfg.collective != Collective::Broadcast && count as u64 > limit {
            return Err(Error::Input(format!(
                "--pes {count}: a {along} of fabric {}'s user region has {limit} PEs, {} too many",
                fabric.name,
                count as u64 - limit
            )));
        }
    }
    // Every PE keeps its vector of B values, a wavelet each (the received one, for a broadcast).
    let wavelet_bytes = fabric.router.wavelet_bits / 8;
    let vector_bytes = cfg.wavelets as u128 * wavelet_bytes as u128;
    let sram_bytes = cfg
        .wavelets
        .saturating_mul(wavelet_bytes)
        .saturating_add(fabric.pe.code_reserve_bytes);
    if sram_bytes > fabric.pe.sram_bytes {
        return Err(Error::Input(format!(
            "--wavelets {}: a vector of {} B plus the code reserve of {} B is {} B over the {} B of a PE",
            cfg.wavelets,
            vector_bytes,
            fabric.pe.code_reserve_bytes,
            vector_bytes + fabric.pe.code_reserve_bytes as u128 - fabric.pe.sram_bytes as u128,
            fabric.pe.sram_bytes
        )));
    }
    Ok(sram_bytes)
}

pub fn run_collective(fabric: &FabricSpec, cfg: &CollectiveConfig) -> Result<CollectiveRun> {
    run_collective_with(fabric, cfg, &mut Watch::default())
}

/// [`run_collective`], its engine run watched by `watch`.
pub fn run_collective_with(
    fabric: &FabricSpec,
    cfg: &CollectiveConfig,
    watch: &mut Watch,
) -> Result<CollectiveRun> {
    let sram_bytes = check_collective(fabric, cfg)?;
    let mesh = Mesh {
        rows: cfg.rows,
        cols: cfg.cols,
    };
    check_mesh(fabric, mesh, program_colors(cfg), RunLimits::default())?;
    let (program, mut kernel) = build(mesh, cfg);
    kernel.activation = fabric.pe.task_activation_cycles;
    let mut output = run_with(fabric, &program, &mut kernel, RunLimits::default(), watch)?;
    output
        .counters
        .pes
        .iter_mut()
        .for_each(|c| c.sram_bytes = sram_bytes);
    let results = if cfg.algo == Algo::Ring {
        kernel.acc
    } else {
        kernel.result
    };
    Ok(CollectiveRun { output, results })
}

/// Per-PE state; one struct serves every collective, the `cfg` says which handlers run.
/// The element-wise kernels run one per PE row for their row all-reduce (`super::elementwise`).
pub(super) struct CollectiveKernel {
    cfg: CollectiveConfig,
    mesh: Mesh,
    pub(super) activation: u64,
    /// Own vector plus what was added in (values only).
    acc: Vec<Vec<f32>>,
    pub(super) result: Vec<Vec<f32>>,
    /// Wavelets received per PE per incoming stream (tree: per level; others: [reduce, bcast]).
    received: Vec<Vec<u64>>,
    /// Tree: elements each PE has sent up.
    sent: Vec<u64>,
    /// Ring: (step, offset in the step's chunk) of the wavelet each PE receives next.
    ring_at: Vec<(u64, u64)>,
}

pub(super) fn build(mesh: Mesh, cfg: &CollectiveConfig) -> (Program, CollectiveKernel) {
    let p = line(mesh).0;
    let b = cfg.wavelets;
    let streams = match cfg.algo {
        Algo::Tree => levels(p) as usize + 1,
        _ => 2,
    };
    let pes = mesh.pes();
    let own = |pe: u32| -> Vec<f32> {
        if cfg.values {
            (0..b).map(|i| contribution(pe, i)).collect()
        } else {
            Vec::new()
        }
    };
    let kernel = CollectiveKernel {
        cfg: cfg.clone(),
        mesh,
        activation: 0,
        acc: (0..pes as u32).map(own).collect(),
        result: vec![Vec::new(); pes],
        received: vec![vec![0; streams]; pes],
        sent: vec![0; pes],
        ring_at: vec![(0, 0); pes],
    };
    let values = |pe: u32| -> Vec<u64> {
        (0..b)
            .map(|i| {
                if cfg.values {
                    contribution(pe, i).to_bits() as u64
                } else {
                    0
                }
            })
            .collect()
    };
    let colors = program_colors(cfg);
    let program = match (cfg.collective, cfg.algo) {
        (Collective::Broadcast, _) => broadcast_program(mesh, b, colors),
        (_, Algo::Chain) => chain_program(mesh, cfg.collective, values(0), colors),
        (_, Algo::Tree) => tree_program(mesh, cfg.collective, &values, colors),
        (_, Algo::Ring) => ring_program(mesh, b, &values, colors),
    };
    (program, kernel)
}

/// Colors the program of `cfg` routes (see each builder): what both fidelities hold against
/// the fabric ([`check_collective`]).
fn program_colors(cfg: &CollectiveConfig) -> u8 {
    let p = line(Mesh {
        rows: cfg.rows,
        cols: cfg.cols,
    })
    .0;
    collective_colors(cfg.collective, cfg.algo, p)
}

/// Colors a `collective` by `algo` over a line of `p` PEs routes.
pub fn collective_colors(collective: Collective, algo: Algo, p: u32) -> u8 {
    match (collective, algo) {
        // One multicast.
        (Collective::Broadcast, _) => 1,
        // A color per level, and one for the sums' way back (reserved for a reduce too).
        (_, Algo::Tree) => levels(p) as u8 + 1,
        // Two alternating along the line and one back (chain) or round (ring).
        (_, Algo::Chain | Algo::Ring) => 3,
    }
}

fn broadcast_program(mesh: Mesh, wavelets: u64, colors: u8) -> Program {
    let mut program = Program::new(mesh, colors);
    for r in 0..mesh.rows {
        for c in 0..mesh.cols {
            let pe = mesh.pe(r, c);
            let mut out = if pe == 0 { 0 } else { Port::Ramp.bit() };
            let input = if r > 0 {
                Port::N
            } else if c > 0 {
                Port::W
            } else {
                Port::Ramp
            };
            if r + 1 < mesh.rows {
                out |= Port::S.bit();
            }
            if r == 0 && c + 1 < mesh.cols {
                out |= Port::E.bit();
            }
            if out != 0 {
                program.routes.set(pe, 0, input.bit(), out);
            }
        }
    }
    if mesh.pes() > 1 {
        program.initial_blocks.push((0, 0, 0, wavelets));
    }
    program
}

/// Chain colors: PE j sends partial sums on color j mod 2; all-reduce broadcasts back on 2.
fn chain_program(mesh: Mesh, collective: Collective, first: Vec<u64>, colors: u8) -> Program {
    let (p, fwd) = line(mesh);
    let mut program = Program::new(mesh, colors);
    let row: Vec<u32> = (0..p).collect();
    program.routes.chain(&row, fwd, [0, 1]);
    if collective == Collective::Allreduce && p > 1 {
        let back: Vec<u32> = (0..p).rev().collect();
        program
            .routes
            .multicast_line(&back, fwd.opposite(), 2, Port::Ramp);
    }
    if p > 1 && collective == Collective::Reduce {
        // A reduce's vector streams down the chain as one block.
        program.initial_blocks.push((0, 0, 0, first.len() as u64));
    } else if p > 1 {
        // An all-reduce's sums come back element by element, sharing each PE's ramp with the
        // reduce stream wavelet by wavelet: kept as wavelets, so its cycles stay those of the
        // closed form (a block would take the ramp in one piece, 0.6% sooner).
        program.initial_sends.push((0, 0, first));
    }
    program
}

/// The tree level at which PE i sends to its parent: the lowest set bit of i.
fn tree_send_level(i: u32) -> u32 {
    i.trailing_zeros()
}

fn tree_children(i: u32, p: u32) -> impl Iterator<Item = u32> {
    let limit = if i == 0 {
        TREE_MAX_LEVELS
    } else {
        tree_send_level(i)
    };
    (0..limit.min(levels(p))).filter(move |l| i + (1 << l) < p)
}

fn tree_program(
    mesh: Mesh,
    collective: Collective,
    values: &dyn Fn(u32) -> Vec<u64>,
    colors: u8,
) -> Program {
    let (p, fwd) = line(mesh);
    let bcast = colors - 1;
    let mut program = Program::new(mesh, colors);
    for i in 1..p {
        let l = tree_send_level(i);
        let parent = i - (1 << l);
        program
            .routes
            .set(i, l as u8, Port::Ramp.bit(), fwd.opposite().bit());
        for mid in parent + 1..i {
            program
                .routes
                .set(mid, l as u8, fwd.bit(), fwd.opposite().bit());
        }
        program
            .routes
            .set(parent, l as u8, fwd.bit(), Port::Ramp.bit());
        if tree_children(i, p).next().is_none() {
            program.initial_sends.push((i, l as u8, values(i)));
        }
    }
    if collective == Collective::Allreduce && p > 1 {
        let row: Vec<u32> = (0..p).collect();
        program.routes.multicast_line(&row, fwd, bcast, Port::Ramp);
    }
    program
}

/// Ring colors: PE j sends to j + 1 on color j mod 2; PE P − 1 wraps to PE 0 west on color 2.
fn ring_program(mesh: Mesh, b: u64, values: &dyn Fn(u32) -> Vec<u64>, colors: u8) -> Program {
    let (p, fwd) = line(mesh);
    let mut program = Program::new(mesh, colors);
    if p == 1 {
        return program;
    }
    for j in 0..p {
        if j + 1 < p {
            program
                .routes
                .set(j, (j % 2) as u8, Port::Ramp.bit(), fwd.bit());
            program
                .routes
                .set(j + 1, (j % 2) as u8, fwd.opposite().bit(), Port::Ramp.bit());
        }
        let (input, out) = if j + 1 == p {
            (Port::Ramp.bit(), fwd.opposite().bit())
        } else if j == 0 {
            (fwd.bit(), Port::Ramp.bit())
        } else {
            (fwd.bit(), fwd.opposite().bit())
        };
        program.routes.set(j, 2, input, out);
        let chunk = split_range(b as usize, p as usize, j as usize);
        let own = values(j)[chunk].to_vec();
        program.initial_sends.push((j, ring_send_color(j, p), own));
    }
    program
}

fn ring_send_color(j: u32, p: u32) -> u8 {
    if j + 1 == p {
        2
    } else {
        (j % 2) as u8
    }
}

impl CollectiveKernel {
    fn work(&self, first: bool) -> Work {
        Work {
            overhead_cycles: if first { self.activation } else { 0 },
            reduction_cycles: 1,
            ..Work::default()
        }
    }

    fn add(&mut self, pe: u32, i: u64, data: u64) -> f32 {
        if !self.cfg.values {
            return 0.0;
        }
        let acc = &mut self.acc[pe as usize][i as usize];
        *acc += f32::from_bits(data as u32);
        *acc
    }

    fn store(&mut self, pe: u32, data: u64) {
        if self.cfg.values {
            self.result[pe as usize].push(f32::from_bits(data as u32));
        }
    }

    fn chain(&mut self, pe: u32, color: u8, data: u64, io: &mut TaskIo) -> Work {
        let p = line(self.mesh).0;
        let stream = if color == 2 { 1 } else { 0 };
        let i = self.received[pe as usize][stream];
        self.received[pe as usize][stream] += 1;
        if stream == 1 {
            self.store(pe, data);
            return self.work(i == 0);
        }
        let sum = self.add(pe, i, data);
        if pe + 1 < p {
            io.send((pe % 2) as u8, sum.to_bits() as u64);
        } else {
            if self.cfg.values {
                self.result[pe as usize].push(sum);
            }
            if self.cfg.collective == Collective::Allreduce {
                io.send(2, sum.to_bits() as u64);
            }
        }
        self.work(i == 0)
    }

    /// A chain reduce stage on a block of `count` elements: add the predecessor's partial sums
    /// (final for these elements: it added them before sending) as they stream in and stream
    /// the sums on from the first add; the last PE keeps them.
    fn chain_block(&mut self, pe: u32, count: u16, io: &mut TaskIo) -> Work {
        let p = line(self.mesh).0;
        let from = self.received[pe as usize][0] as usize;
        self.received[pe as usize][0] += count as u64;
        let elements = from..from + count as usize;
        if self.cfg.values {
            for i in elements.clone() {
                self.acc[pe as usize][i] += self.acc[pe as usize - 1][i];
            }
        }
        if pe + 1 < p {
            // The first sum is ready after the activation (charged on the first piece only)
            // and one add.
            let first = if from == 0 { self.activation } else { 0 };
            io.send_block((pe % 2) as u8, 0, count, Some(first + 1));
        } else if self.cfg.values {
            let sums = self.acc[pe as usize][elements].to_vec();
            self.result[pe as usize].extend(sums);
        }
        Work {
            reduction_cycles: count as u64,
            ..self.work(from == 0)
        }
    }

    fn tree(&mut self, pe: u32, color: u8, data: u64, io: &mut TaskIo) -> Work {
        let p = line(self.mesh).0;
        let level = color as usize;
        let i = self.received[pe as usize][level];
        self.received[pe as usize][level] += 1;
        if color as u32 == levels(p) {
            self.store(pe, data);
            return self.work(i == 0);
        }
        self.add(pe, i, data);
        let ready = tree_children(pe, p)
            .map(|l| self.received[pe as usize][l as usize])
            .min()
            .unwrap_or(self.cfg.wavelets);
        while self.sent[pe as usize] < ready {
            let k = self.sent[pe as usize];
            self.sent[pe as usize] += 1;
            let sum = if self.cfg.values {
                self.acc[pe as usize][k as usize]
            } else {
                0.0
            };
            if pe > 0 {
                io.send(tree_send_level(pe) as u8, sum.to_bits() as u64);
            } else {
                if self.cfg.values {
                    self.result[0].push(sum);
                }
                if self.cfg.collective == Collective::Allreduce {
                    io.send(levels(p) as u8, sum.to_bits() as u64);
                }
            }
        }
        self.work(i == 0)
    }

    /// Ring: the n-th received wavelet of PE i belongs to reduce-scatter step s < P − 1 (chunk
    /// (i − 1 − s) mod P) or all-gather step s (chunk (i − s) mod P), at an offset in the chunk.
    fn ring(&mut self, pe: u32, data: u64, io: &mut TaskIo) -> Work {
        let p = line(self.mesh).0 as u64;
        let b = self.cfg.wavelets as usize;
        self.received[pe as usize][0] += 1;
        // Where the previous wavelet was, one further on (each wavelet is the next of its PE's
        // sequence, so the position advances instead of being searched from step 0).
        let (mut step, mut offset) = self.ring_at[pe as usize];
        let chunk_of = |step: u64| -> u64 {
            if step < p - 1 {
                (pe as u64 + 2 * p - 1 - step) % p
            } else {
                (pe as u64 + 2 * p - (step - (p - 1))) % p
            }
        };
        loop {
            let len = split_range(b, p as usize, chunk_of(step) as usize).len() as u64;
            if offset < len {
                break;
            }
            offset -= len;
            step += 1;
        }
        self.ring_at[pe as usize] = (step, offset + 1);
        let chunk = split_range(b, p as usize, chunk_of(step) as usize);
        let element = chunk.start as u64 + offset;
        let color = ring_send_color(pe, p as u32);
        if step < p - 1 {
            let sum = self.add(pe, element, data);
            io.send(color, sum.to_bits() as u64);
        } else {
            if self.cfg.values {
                self.acc[pe as usize][element as usize] = f32::from_bits(data as u32);
            }
            if step < 2 * (p - 1) - 1 {
                io.send(color, data);
            }
        }
        self.work(offset == 0)
    }
}

impl Kernel for CollectiveKernel {
    fn on_wavelet(
        &mut self,
        pe: u32,
        color: u8,
        data: u64,
        _now: u64,
        io: &mut TaskIo,
    ) -> Option<Work> {
        Some(match (self.cfg.collective, self.cfg.algo) {
            (Collective::Broadcast, _) => {
                let first = self.received[pe as usize][0] == 0;
                self.received[pe as usize][0] += 1;
                self.store(pe, data);
                self.work(first)
            }
            (_, Algo::Chain) => self.chain(pe, color, data, io),
            (_, Algo::Tree) => self.tree(pe, color, data, io),
            (_, Algo::Ring) => self.ring(pe, data, io),
        })
    }

    /// A chain's vector or a broadcast's (or a piece of it) streams in as one block.
    fn on_block(
        &mut self,
        pe: u32,
        _color: u8,
        _data: u64,
        count: u16,
        _now: u64,
        io: &mut TaskIo,
    ) -> Option<Work> {
        if self.cfg.collective == Collective::Reduce {
            return Some(self.chain_block(pe, count, io));
        }
        let from = self.received[pe as usize][0];
        self.received[pe as usize][0] += count as u64;
        if self.cfg.values {
            self.result[pe as usize]
                .extend((from..from + count as u64).map(|i| contribution(0, i)));
        }
        Some(Work {
            reduction_cycles: count as u64,
            ..self.work(from == 0)
        })
    }

    fn expected(&self) -> Vec<(u32, u8)> {
        let p = line(self.mesh).0;
        let b = self.cfg.wavelets;
        let mut missing = Vec::new();
        for pe in 0..self.mesh.pes() as u32 {
            let got = &self.received[pe as usize];
            match (self.cfg.collective, self.cfg.algo) {
                (Collective::Broadcast, _) => {
                    if pe > 0 && got[0] < b {
                        missing.push((pe, 0));
                    }
                }
                (c, Algo::Chain) => {
                    if pe > 0 && got[0] < b {
                        missing.push((pe, ((pe - 1) % 2) as u8));
                    }
                    if c == Collective::Allreduce && pe + 1 < p && got[1] < b {
                        missing.push((pe, 2));
                    }
                }
                (c, Algo::Tree) => {
                    for l in tree_children(pe, p) {
                        if got[l as usize] < b {
                            missing.push((pe, l as u8));
                        }
                    }
                    if c == Collective::Allreduce && pe > 0 && got[levels(p) as usize] < b {
                        missing.push((pe, levels(p) as u8));
                    }
                }
                (_, Algo::Ring) => {
                    let own = split_range(b as usize, p as usize, pe as usize).len() as u64;
                    if p > 1
                        && got[0]
                            < 2 * b
                                - own
                                - split_range(b as usize, p as usize, ((pe + 1) % p) as usize).len()
                                    as u64
                    {
                        missing.push((pe, if pe == 0 { 2 } else { ((pe - 1) % 2) as u8 }));
                    }
                }
            }
        }
        missing
    }
}
