//! Element-wise kernels (LayerNorm, softmax, GeLU, residual add, embedding, loss) over a
//! `T × F` tensor on a region of R × C PEs, laid out as a weight-streaming step keeps its
//! activations: tokens over the PE rows, features over the PE columns. PE (r, c) holds the
//! block of row slice r and column slice c ([`split_range`]: as even as possible).
//!
//! The engine knows no op by name: a kernel is FLOPs per element before and after an
//! optional row all-reduce of `v` values per token (the caller's profile, e.g.
//! `graph::elementwise_profile`), and the bytes per element its tensors take in SRAM.
//!
//! # Timing structure (what a cost model must reproduce)
//! Symbols: `a` = `pe.task_activation_cycles`, `ramp` = `router.ramp_latency_cycles`, `E` =
//! the PE's elements, `P(f)` = the cycles of a pass of `f` FLOPs per element =
//! `max(ceil(f·E / simd_fp16_lanes), ceil(bytes·E / sram_read_bytes_per_cycle))` (every pass
//! streams the block's tensors through SRAM once).
//! - **Start**: every PE sends itself a trigger wavelet at cycle 0 (a color routed from its
//!   ramp back to its ramp: the previous op's end activating this one); it reaches the core
//!   after `ramp` cycles and runs the first pass, `a + P(before)`.
//! - **Without a reduction** (GeLU, residual, embedding, the loss gradient) that is all:
//!   `ramp + a + P(before)` cycles.
//! - **With one** (LayerNorm, softmax, the loss), the first pass ends by sending the PE's
//!   `v · T_r` statistics into a row all-reduce over the C PEs of its row: the engine's own
//!   collective ([`super::collective`], chain or tree as the caller chooses), one per PE row,
//!   on the same routes and with the same per-wavelet costs, started by the first pass's end
//!   instead of cycle 0. A PE's core takes reduction wavelets only once its own first pass
//!   has run. When a PE has received every wavelet the all-reduce sends it (it then holds the
//!   row's statistics), it triggers its second pass the same way as the first (`ramp`, then
//!   `a + P(after)`). So the kernel takes `ramp + a + P(before) + allreduce(C, v·T_r) + ramp +
//!   a + P(after)` cycles, the all-reduce of the slowest row from the slowest first pass.
//!   With one PE column there is nothing to reduce: the second pass follows the first.
//!
//! Counters: the passes are `fmac_cycles` (SIMD work; `fmac_ops` stays 0: no multiply-add of
//! a weight), activations `overhead_cycles`, the all-reduce `reduction_cycles`; the FLOPs
//! executed are counted per PE by the kernel ([`ElementwiseRun::flops_per_pe`]).

use super::collective::CollectiveKernel;
use super::collective::{build, collective_colors, Algo, Collective, CollectiveConfig};
use crate::engine::program::{Kernel, Mesh, Port, Program, TaskIo, Work};
use crate::engine::{check_mesh, check_region, run_with, RunLimits, RunOutput, Watch};
use crate::error::{Error, Result};
use crate::sparsity::split_range;
use crate::spec::FabricSpec;

/// Bytes of one reduced statistic: the collectives carry one fp32 value per wavelet.
pub const STATISTIC_BYTES: u64 = 4;
/// Most elements (T·F) a kernel may have: every per-PE count derived from it stays in u64.
const MAX_ELEMENTS: u128 = 1 << 48;

/// An element-wise kernel as its caller resolves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElementwiseConfig {
    /// Rows of the tensor (tokens), over the region's PE rows.
    pub rows: u64,
    /// Columns (features), over the PE columns.
    pub cols: u64,
    /// Region rows × columns of PEs.
    pub region: (u32, u32),
    pub flops_before_per_element: u64,
    pub flops_after_per_element: u64,
    /// SRAM bytes per element of all the tensors the op reads and writes.
    pub bytes_per_element: u64,
    /// Values per token all-reduced along the PE row between the passes; 0: one pass only.
    pub reduced_values_per_row: u64,
    /// The row all-reduce's algorithm: chain or tree.
    pub algo: Algo,
    /// Carry values through the all-reduce (each PE's statistics a fixed pattern of small
    /// exact numbers, `collective::contribution` of its column) and keep what every PE ends
    /// with, to check the wiring; timing only otherwise.
    pub values: bool,
}

impl ElementwiseConfig {
    /// Elements of row slice `r` (tokens of PE row r times features of PE column c).
    pub fn elements_of(&self, r: u32, c: u32) -> u64 {
        self.tokens_of(r) * self.features_of(c)
    }

    pub fn tokens_of(&self, r: u32) -> u64 {
        split_range(self.rows as usize, self.region.0 as usize, r as usize).len() as u64
    }

    pub fn features_of(&self, c: u32) -> u64 {
        split_range(self.cols as usize, self.region.1 as usize, c as usize).len() as u64
    }

    /// Whether the PE rows run an all-reduce (statistics to combine over more than one PE).
    pub fn reduces(&self) -> bool {
        self.reduced_values_per_row > 0 && self.region.1 > 1
    }

    /// SRAM a PE of row r, column c needs: its block of every tensor, its statistics, code.
    pub fn sram_bytes_of(&self, fabric: &FabricSpec, r: u32, c: u32) -> u64 {
        self.sram_bytes(fabric, self.tokens_of(r), self.features_of(c))
    }

    /// SRAM of the most loaded PE (the first slices are the longer ones).
    pub fn sram_bytes_max(&self, fabric: &FabricSpec) -> u64 {
        let tokens = self.rows.div_ceil(u64::from(self.region.0).max(1));
        let features = self.cols.div_ceil(u64::from(self.region.1).max(1));
        self.sram_bytes(fabric, tokens, features)
    }

    fn sram_bytes(&self, fabric: &FabricSpec, tokens: u64, features: u64) -> u64 {
        tokens * features * self.bytes_per_element
            + self.reduced_values_per_row * tokens * STATISTIC_BYTES
            + fabric.pe.code_reserve_bytes
    }
}

/// Colors an element-wise kernel routes: its trigger, and its row all-reduce's.
pub fn elementwise_colors(reduced_values_per_row: u64, algo: Algo, region_cols: u32) -> u8 {
    let reduction = if reduced_values_per_row > 0 && region_cols > 1 {
        collective_colors(Collective::Allreduce, algo, region_cols)
    } else {
        0
    };
    reduction + 1
}

/// Refuses a tensor of `rows × cols` the kernel cannot lay on `region`: a region beyond the
/// fabric's, a PE without elements, more than 2^48 elements. Callers check it before they size
/// anything from the shape (the row all-reduce's vector).
pub fn check_shape(
    fabric: &FabricSpec,
    (rows, cols): (u64, u64),
    region: (u32, u32),
) -> Result<()> {
    let (pe_rows, pe_cols) = region;
    check_region(fabric, pe_rows as u64, pe_cols as u64)?;
    if rows < pe_rows as u64 || cols < pe_cols as u64 {
        return Err(Error::Input(format!(
            "--rows {rows} --cols {cols} on --region {pe_rows}x{pe_cols}: every PE holds at least \
             one element, so give at least as many rows as PE rows and columns as PE columns"
        )));
    }
    if rows as u128 * cols as u128 > MAX_ELEMENTS {
        return Err(Error::Input(format!(
            "--rows {rows} --cols {cols}: at most 2^48 elements"
        )));
    }
    Ok(())
}

/// Refuses what the kernel cannot run (the shape's refusals, a ring all-reduce, more colors than the fabric leaves kernels, a block beyond a PE's SRAM);
/// gives the largest SRAM a PE needs. Both fidelities check with this.
pub fn check_elementwise(fabric: &FabricSpec, cfg: &ElementwiseConfig) -> Result<u64> {
    check_shape(fabric, (cfg.rows, cfg.cols), cfg.region)?;
    let (rows, cols) = cfg.region;
    if cfg.algo == Algo::Ring {
        return Err(Error::Input(
            "--algo ring: an element-wise row all-reduce runs chain or tree".into(),
        ));
    }
    super::check_colors(
        fabric,
        elementwise_colors(cfg.reduced_values_per_row, cfg.algo, cols),
    )?;
    let sram = cfg.sram_bytes_max(fabric);
    if sram > fabric.pe.sram_bytes {
        return Err(Error::Input(format!(
            "--rows {} --cols {} on --region {rows}x{cols}: the most loaded PE needs {sram} B of \
             SRAM (its block, its statistics and the code reserve), over the {} B of a PE",
            cfg.rows, cfg.cols, fabric.pe.sram_bytes
        )));
    }
    Ok(sram)
}

/// A finished element-wise kernel.
pub struct ElementwiseRun {
    pub output: RunOutput,
    /// FLOPs each PE executed, row-major.
    pub flops_per_pe: Vec<u64>,
    /// With `values`: the statistics each PE holds after the all-reduce, row-major.
    pub statistics: Option<Vec<Vec<f32>>>,
}

impl ElementwiseRun {
    pub fn flops_executed(&self) -> u128 {
        self.flops_per_pe.iter().map(|&f| f as u128).sum()
    }
}

pub fn run_elementwise(fabric: &FabricSpec, cfg: &ElementwiseConfig) -> Result<ElementwiseRun> {
    run_elementwise_with(fabric, cfg, &mut Watch::default())
}

/// [`run_elementwise`], its engine run watched by `watch`.
pub fn run_elementwise_with(
    fabric: &FabricSpec,
    cfg: &ElementwiseConfig,
    watch: &mut Watch,
) -> Result<ElementwiseRun> {
    check_elementwise(fabric, cfg)?;
    let mesh = Mesh {
        rows: cfg.region.0,
        cols: cfg.region.1,
    };
    let colors = elementwise_colors(cfg.reduced_values_per_row, cfg.algo, mesh.cols);
    check_mesh(fabric, mesh, colors, RunLimits::default())?;
    let (program, mut kernel) = build_program(fabric, cfg, mesh, colors);
    let mut output = run_with(fabric, &program, &mut kernel, RunLimits::default(), watch)?;
    for (pe, counters) in output.counters.pes.iter_mut().enumerate() {
        let (r, c) = mesh.coords(pe as u32);
        counters.sram_bytes = cfg.sram_bytes_of(fabric, r, c);
    }
    let statistics = (cfg.values && cfg.reduces())
        .then(|| kernel.rows.into_iter().flat_map(|row| row.result).collect());
    Ok(ElementwiseRun {
        output,
        flops_per_pe: kernel.flops,
        statistics,
    })
}

/// Where a PE is in the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for its trigger.
    Start,
    /// First pass done; all-reducing (or waiting for its second trigger).
    Reducing,
    Done,
}

struct ElementwiseKernel {
    cols: u32,
    trigger: u8,
    two_passes: bool,
    stage: Vec<Stage>,
    /// Each pass's work and FLOPs, per PE.
    passes: Vec<[(Work, u64); 2]>,
    /// What the first pass sends into the all-reduce, per PE: (color, wavelets).
    first_sends: Vec<Vec<(u8, Vec<u64>)>>,
    /// Reduction wavelets received, and how many the all-reduce sends each PE.
    received: Vec<u64>,
    receives: Vec<u64>,
    /// One all-reduce per PE row.
    rows: Vec<CollectiveKernel>,
    flops: Vec<u64>,
}

fn pass(
    fabric: &FabricSpec,
    flops_per_element: u64,
    bytes_per_element: u64,
    e: u64,
) -> (Work, u64) {
    let pe = &fabric.pe;
    let flops = flops_per_element * e;
    let cycles = flops
        .div_ceil(pe.simd_fp16_lanes)
        .max((bytes_per_element * e).div_ceil(pe.sram_read_bytes_per_cycle));
    let work = Work {
        overhead_cycles: pe.task_activation_cycles,
        fmac_cycles: cycles,
        ..Work::default()
    };
    (work, flops)
}

fn build_program(
    fabric: &FabricSpec,
    cfg: &ElementwiseConfig,
    mesh: Mesh,
    colors: u8,
) -> (Program, ElementwiseKernel) {
    let trigger = colors - 1;
    let pes = mesh.pes();
    let mut program = Program::new(mesh, colors);
    let mut kernel = ElementwiseKernel {
        cols: mesh.cols,
        trigger,
        two_passes: cfg.reduced_values_per_row > 0,
        stage: vec![Stage::Start; pes],
        passes: Vec::with_capacity(pes),
        first_sends: vec![Vec::new(); pes],
        received: vec![0; pes],
        receives: vec![0; pes],
        rows: Vec::new(),
        flops: vec![0; pes],
    };
    for pe in 0..pes as u32 {
        let (r, c) = mesh.coords(pe);
        let e = cfg.elements_of(r, c);
        let bytes = cfg.bytes_per_element;
        kernel.passes.push([
            pass(fabric, cfg.flops_before_per_element, bytes, e),
            pass(fabric, cfg.flops_after_per_element, bytes, e),
        ]);
        program
            .routes
            .set(pe, trigger, Port::Ramp.bit(), Port::Ramp.bit());
        program.initial_sends.push((pe, trigger, vec![0]));
    }
    if cfg.reduces() {
        for r in 0..mesh.rows {
            let b = cfg.reduced_values_per_row * cfg.tokens_of(r);
            let row = row_allreduce(fabric, cfg, &mut program, &mut kernel, r, b);
            kernel.rows.push(row);
        }
    }
    (program, kernel)
}

/// Lays the all-reduce of PE row `r` (`b` values per PE) into `program` and `kernel`: the
/// collective's routes on that row, its initial sends as the first pass's sends, and how many
/// wavelets each PE receives (b on every color the route delivers to its core from a link).
fn row_allreduce(
    fabric: &FabricSpec,
    cfg: &ElementwiseConfig,
    program: &mut Program,
    kernel: &mut ElementwiseKernel,
    r: u32,
    b: u64,
) -> CollectiveKernel {
    let line = Mesh {
        rows: 1,
        cols: cfg.region.1,
    };
    let coll = CollectiveConfig {
        values: cfg.values,
        ..CollectiveConfig::along_row(Collective::Allreduce, cfg.algo, line.cols, b, 0)
    };
    let (row, mut inner) = build(line, &coll);
    inner.activation = fabric.pe.task_activation_cycles;
    debug_assert!(row.initial_blocks.is_empty() && row.edge_streams.is_empty());
    let row_colors = row.routes.colors as usize;
    for pos in 0..line.cols {
        let pe = r * line.cols + pos;
        for color in 0..row_colors {
            let ch = pos as usize * row_colors + color;
            let (input, out) = (row.routes.inputs[ch], row.routes.outputs[ch]);
            if input | out != 0 {
                program.routes.set(pe, color as u8, input, out);
            }
            if out & Port::Ramp.bit() != 0 && input & Port::Ramp.bit() == 0 {
                kernel.receives[pe as usize] += b;
            }
        }
    }
    for (pos, color, wavelets) in row.initial_sends {
        kernel.first_sends[(r * line.cols + pos) as usize].push((color, wavelets));
    }
    inner
}

impl ElementwiseKernel {
    fn trigger(&mut self, pe: u32, io: &mut TaskIo) -> Work {
        let i = pe as usize;
        let (work, flops) = match self.stage[i] {
            Stage::Start => {
                self.stage[i] = if self.two_passes {
                    Stage::Reducing
                } else {
                    Stage::Done
                };
                if self.two_passes && self.rows.is_empty() {
                    // Nothing to reduce: the second pass follows at once.
                    io.send(self.trigger, 0);
                }
                for (color, wavelets) in std::mem::take(&mut self.first_sends[i]) {
                    wavelets.into_iter().for_each(|w| io.send(color, w));
                }
                self.passes[i][0]
            }
            _ => {
                self.stage[i] = Stage::Done;
                self.passes[i][1]
            }
        };
        self.flops[i] += flops;
        work
    }
}

impl Kernel for ElementwiseKernel {
    fn on_wavelet(
        &mut self,
        pe: u32,
        color: u8,
        data: u64,
        now: u64,
        io: &mut TaskIo,
    ) -> Option<Work> {
        if color == self.trigger {
            return Some(self.trigger(pe, io));
        }
        let i = pe as usize;
        if self.stage[i] == Stage::Start {
            // The PE's own statistics are not computed yet.
            return None;
        }
        let (r, pos) = (pe / self.cols, pe % self.cols);
        let work = self.rows[r as usize].on_wavelet(pos, color, data, now, io)?;
        self.received[i] += 1;
        if self.received[i] == self.receives[i] {
            // The row's statistics are complete here: the second pass.
            io.send(self.trigger, 0);
        }
        Some(work)
    }

    fn expected(&self) -> Vec<(u32, u8)> {
        let mut missing: Vec<(u32, u8)> = (0..self.stage.len() as u32)
            .filter(|&pe| self.stage[pe as usize] != Stage::Done)
            .map(|pe| (pe, self.trigger))
            .collect();
        for (r, row) in self.rows.iter().enumerate() {
            let first = r as u32 * self.cols;
            missing.extend(row.expected().into_iter().map(|(pos, c)| (first + pos, c)));
        }
        missing
    }
}
