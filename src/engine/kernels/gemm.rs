//! GEMM `Y[T×N] = X[T×K] · W[K×N]` with X resident and the weights streamed, dense or sparse
//! (zero skipping; docs/domain.md, "How zeros are skipped"), on a region of R × C PEs. Also its
//! backward forms: dgrad (`dX = dY · Wᵀ`, the same program on the transposed mask) and wgrad at a
//! sparse weight's non-zeros (see [`super::wgrad`]).
//!
//! # Mapping
//! The region's columns are split `C = C_k · C_n`. PE (r, c) belongs to N-group
//! `g_n = c / C_k` and K-group `g_k = c mod C_k`; it keeps `X[T_r, K_c]` resident, where
//! `T_r` is row r's slice of T and `K_c` group `g_k`'s slice of K (slices as even as possible,
//! [`split_range`]). N-group `g_n` computes the output columns `N_g` of its slice of N, one
//! after the other.
//!
//! Default split: the smallest `C_k` dividing C (with `C_k ≤ K`, `C / C_k ≤ N`) whose tile fits
//! in SRAM. Fewer K-groups mean fewer partial sums to reduce; the FMAC work per PE does not
//! depend on the split.
//!
//! # Timing structure (what a cost model must reproduce)
//! Symbols: `a` = `pe.task_activation_cycles`, `d` = `pe.sparse_index_decode_cycles`,
//! `F(L)` = FMAC cycles over a local vector of L elements =
//! `max(ceil(L / simd_fp16_lanes), ceil(L·(operand_bytes + accumulator_bytes) / sram_read_bytes_per_cycle),
//! ceil(L·accumulator_bytes / sram_write_bytes_per_cycle))`, `W_r = ceil(T_r · partial_sum_bytes / 4)`
//! partial-sum wavelets per output column per PE row.
//!
//! - **Weight stream, per PE column c**: for each output column n of its N-group, in order:
//!   the wavelets of `W[K_c, n]` in increasing k, then one control wavelet, packed as
//!   `FabricSpec::packing` of `pe.operand_bytes` says. Sparse: per non-zero its value and
//!   index, in `wavelets_per_nonzero` wavelets (one on WSE-2: 16 + 16 bits); zeros are never
//!   sent. Dense: `values_per_wavelet` values per group of `wavelets_per_value` wavelets
//!   (WSE-2: two fp16 in one, `ceil(K_c / 2)` groups). A group's leading wavelets are
//!   continuations the core takes without a task; its last starts the task. The stream enters at the north edge of
//!   column c at most one wavelet per cycle and is multicast down the column (route
//!   `N → {Ramp, S}`), so every PE of the column receives the same stream.
//! - **Per weight wavelet, on each PE**: one task; sparse costs `a + d + F(T_r)` cycles
//!   (`T_r` FMACs), dense `a + v·F(T_r)` for the v values of its group (`v·T_r` FMACs).
//! - **Per control wavelet (end of output column n)**: a task of `a` cycles that moves the
//!   accumulator to the second buffer (double buffering) and starts the reduction. It waits
//!   (the PE goes on with other work, its weight stream backs up) until the second buffer is
//!   free: on the chain head until its previous partial sums have all left, elsewhere until the
//!   previous column's partial sums have all been added.
//! - **Reduction, per output column, along the row over the C_k PEs of the N-group (chain,
//!   west to east)**: the head (`g_k = 0`) sends its `W_r` partial-sum wavelets east as one
//!   *block* (`TaskIo::send_block`: one wavelet per cycle through its ramp, not occupying its
//!   core). Each next PE takes the block in one task streaming it in (a fabric DSD
//!   operation): `a` for the activation, then one add per wavelet (`W_r` cycles); the sums
//!   stream on east as a block from the first add on (ready `a + 1` cycles after the task
//!   starts), so the chain pipelines at one wavelet per cycle; the last PE
//!   (`g_k = C_k − 1`) holds `Y[T_r, n]` and hands it to the region's output (its cost is not
//!   modelled here). Chain colors alternate (PE j sends on color j mod 2), so each east link
//!   carries one color. With `C_k = 1` there is no reduction. Per wavelet this is what the
//!   cores did when each partial-sum wavelet was a task of its own (the first costing `a`);
//!   as blocks, a column's reduction costs the engine a few events per hop instead of a few
//!   per wavelet (the reference kernel's cycles are the same either way: 351 682).
//! - **Priorities**: a core serves partial sums (colors 0, 1) before weights (color 2), so the
//!   reduction of column n overlaps the FMACs of column n + 1.
//!
//! So per PE, busy cycles = Σ_n [nnz(K_c, n)·(a + d + F(T_r)) + a] + (non-head) N_g·(a + W_r);
//! PEs of one column see the same weights; PEs of one row are coupled by the chain, so the
//! slowest K-group of a column n (largest nnz) sets the pace, with a slack of one column
//! from the double buffer. Fill: R·hop + ramp for the first weights, drain: the last
//! column's chain, ≈ (C_k − 1)·(hop + ramp + 1) + W_r cycles.
//!
//! [`GemmPlan::predicted_work`] evaluates these sums per PE; the engine's counters equal it
//! exactly (tested). Kernel cycles over the slowest PE's work, measured on WSE-2 32 × 32 with
//! T = 4096, K = N = 1024 (default split 8 × 4): 1.005 at s = 0.75, 1.008 at 0.5, 1.000 dense;
//! on a reduction-bound 16 × 16 shape (T = 1024, K = N = 256, split 16 × 1, s = 0.9): 1.09.

use serde::Serialize;

use crate::engine::program::{EdgeStream, Kernel, Mesh, Port, Program, TaskIo, Work};
use crate::engine::{check_mesh, check_region, run_with, RunLimits, RunOutput, Watch};
use crate::error::{Error, Result};
use crate::random::Stream;
use crate::sparsity::{split_range, Mask, Pattern, PeColumnCounts};
use crate::spec::{FabricSpec, Packing};

const RED_A: u8 = 0;
const RED_B: u8 = 1;
const WGT: u8 = 2;
/// Colors of the forward and dgrad programs (the wgrad program routes `wgrad::COLORS`).
pub(super) const COLORS: u8 = 3;
/// The control wavelet: no weight (an index or value pair) has this bit pattern.
pub const CONTROL: u64 = u64::MAX;
/// A wavelet of a value or non-zero that needs more than one: the core takes it without a
/// task of its own (the last wavelet of the group starts the task); no weight has this pattern.
const CONTINUATION: u64 = u64::MAX - 1;
const NONE: u32 = u32::MAX;
/// Most multiply-adds (T·K·N) a GEMM may have, wavelet-level or modelled: 2^60, so that every
/// count derived from it stays inside u64.
const MAX_MULTIPLY_ADDS: u128 = 1 << 60;
/// Largest matrix (elements) a wavelet-level run takes: its mask and stream live in memory.
const MAX_WEIGHT_ELEMENTS: u64 = 1 << 30;

/// Which product the kernel computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GemmForm {
    /// `Y = X · W`.
    Forward,
    /// `dX = dY · Wᵀ`: the forward program with the weight's mask transposed.
    Dgrad,
    /// `dW = Xᵀ · dY` at the weight's non-zeros only.
    Wgrad,
}

/// A GEMM as the command line gives it.
#[derive(Debug, Clone)]
pub struct GemmConfig {
    pub t: usize,
    pub k: usize,
    pub n: usize,
    pub sparsity: f64,
    /// The mask's structure (`random` unless `--mask` names another); N:M fixes the sparsity.
    pub pattern: Pattern,
    /// Region rows × columns.
    pub region: (u32, u32),
    /// (C_k, C_n); `None` for the default rule.
    pub split: Option<(u32, u32)>,
    pub seed: u64,
    pub form: GemmForm,
    /// Carry real values through the program (and keep Y) instead of timing only.
    pub values: bool,
}

/// A GEMM resolved onto the region, before any mask is drawn: the product computed as
/// `T × K_in` times `K_in × N_out`, the split of the columns and the SRAM it needs. What the
/// cost model needs (`kernel --fidelity model`), at any size the fabric holds.
#[derive(Debug, Clone)]
pub struct GemmLayout {
    pub t: usize,
    pub k_in: usize,
    pub n_out: usize,
    pub rows: u32,
    pub cols: u32,
    pub ck: u32,
    pub cn: u32,
    /// Packed values, no index (sparsity 0); else each non-zero's value and index.
    pub dense: bool,
    /// Bytes of a streamed weight value (the fabric's `pe.operand_bytes`) and how the stream
    /// packs them.
    pub value_bytes: u64,
    pub packing: Packing,
    pub sram_bytes_max: u64,
    pub form: GemmForm,
    /// The streamed weight's mask structure.
    pub pattern: Pattern,
}

/// A GEMM planned for the wavelet-level engine: its layout (reachable through `Deref`, so
/// `plan.ck` is `plan.layout.ck`) and the streamed weight's mask.
#[derive(Debug, Clone)]
pub struct GemmPlan {
    pub layout: GemmLayout,
    /// Kept entries of the streamed `K_in × N_out` weight.
    pub mask: Mask,
}

impl std::ops::Deref for GemmPlan {
    type Target = GemmLayout;

    fn deref(&self) -> &GemmLayout {
        &self.layout
    }
}

impl GemmPlan {
    /// Resolves `cfg` on `fabric` ([`GemmLayout::new`]) and draws the streamed weight's mask;
    /// refuses matrices too large to stream wavelet by wavelet.
    pub fn new(fabric: &FabricSpec, cfg: &GemmConfig) -> Result<Self> {
        let layout = GemmLayout::new(fabric, cfg)?;
        // A column's partial sums travel as one block of at most u16::MAX wavelets.
        let t_r_max = cfg.t.div_ceil(layout.rows as usize) as u64;
        let psum_wavelets = t_r_max.div_ceil(partial_sums_per_wavelet(fabric) as u64);
        if layout.form != GemmForm::Wgrad && psum_wavelets > u16::MAX as u64 {
            return Err(Error::Input(format!(
                "--t {} on {} rows: {t_r_max} tokens per PE row make {psum_wavelets} partial-sum \
                 wavelets per column, more than the {} of one block; use more rows",
                cfg.t,
                layout.rows,
                u16::MAX
            )));
        }
        let elements = (cfg.k as u128) * (cfg.n as u128);
        if elements > MAX_WEIGHT_ELEMENTS as u128
            || cfg.t as u128 * cfg.k.max(cfg.n) as u128 > MAX_WEIGHT_ELEMENTS as u128
        {
            return Err(Error::Input(format!(
                "--t {} --k {} --n {}: more than {MAX_WEIGHT_ELEMENTS} elements in one matrix is beyond the \
                 wavelet-level engine (every weight is a wavelet); split the GEMM or use --fidelity model",
                cfg.t, cfg.k, cfg.n
            )));
        }
        let forward_mask = if layout.dense {
            Mask::dense(cfg.k, cfg.n)
        } else {
            Mask::from_pattern(cfg.k, cfg.n, cfg.pattern, cfg.sparsity, cfg.seed)
        };
        let mask = match cfg.form {
            GemmForm::Dgrad => forward_mask.transposed(),
            _ => forward_mask,
        };
        Ok(Self { layout, mask })
    }
}

impl GemmLayout {
    /// Resolves `cfg` on `fabric`: the split (the default rule or `--split`), the SRAM check.
    pub fn new(fabric: &FabricSpec, cfg: &GemmConfig) -> Result<Self> {
        let (rows, cols) = cfg.region;
        check_region(fabric, rows as u64, cols as u64)?;
        super::check_colors(fabric, program_colors(cfg.form))?;
        for (flag, v) in [("--t", cfg.t), ("--k", cfg.k), ("--n", cfg.n)] {
            if v == 0 {
                return Err(Error::Input(format!(
                    "{flag} 0: a GEMM dimension is at least 1"
                )));
            }
        }
        // Counts of multiply-adds, bytes and cycles are u64 (FLOPs u128): keep every product
        // of the three dimensions well inside.
        // (Two u64 factors fit u128; the third may not: checked.)
        let product = (cfg.t as u128 * cfg.k as u128).checked_mul(cfg.n as u128);
        if product.is_none_or(|p| p > MAX_MULTIPLY_ADDS) {
            let count = product.map_or("more than 2^128".to_string(), |p| p.to_string());
            return Err(Error::Input(format!(
                "--t {} --k {} --n {}: {count} multiply-adds, more than the {MAX_MULTIPLY_ADDS} one \
                 kernel may have; split the GEMM",
                cfg.t, cfg.k, cfg.n
            )));
        }
        if let Some(implied) = cfg.pattern.implied_sparsity() {
            if cfg.sparsity != implied {
                return Err(Error::Input(format!(
                    "--sparsity {} with --mask {}: the mask fixes sparsity {implied}",
                    cfg.sparsity, cfg.pattern
                )));
            }
        }
        if cfg.sparsity > 0.0 {
            let (k, n) = (cfg.k as u64, cfg.n as u64);
            cfg.pattern
                .check_shape(k, n)
                .map_err(|e| Error::Input(format!("--mask {e} (--k {}, --n {})", cfg.k, cfg.n)))?;
            let realised = 1.0 - cfg.pattern.nonzeros(k, n, cfg.sparsity) as f64 / (k * n) as f64;
            if (realised - cfg.sparsity).abs() > crate::spec::PATTERN_SPARSITY_TOLERANCE {
                return Err(Error::Input(format!(
                    "--mask {} on {k} x {n}: it keeps whole blocks or lines, sparsity \
                     {realised:.4} against the --sparsity {} asked; use a finer pattern",
                    cfg.pattern, cfg.sparsity
                )));
            }
        }
        let (k_in, n_out) = match cfg.form {
            GemmForm::Dgrad => (cfg.n, cfg.k),
            _ => (cfg.k, cfg.n),
        };
        if cfg.t < rows as usize {
            return Err(Error::Input(format!(
                "--t {} is smaller than the region's {rows} rows: every PE row needs a token",
                cfg.t
            )));
        }
        let t_r_max = cfg.t.div_ceil(rows as usize) as u64;
        let sram_for = |ck: u32| {
            let n_g = n_out.div_ceil((cols / ck.max(1)).max(1) as usize) as u64;
            gemm_sram_bytes(
                fabric,
                cfg.form,
                t_r_max,
                k_in.div_ceil(ck as usize) as u64,
                n_g,
            )
        };
        let (ck, cn) = match cfg.split {
            Some((ck, cn)) => {
                if ck.checked_mul(cn) != Some(cols) {
                    return Err(Error::Input(format!(
                        "--split {ck}x{cn}: C_k x C_n must equal the region's {cols} columns"
                    )));
                }
                (ck, cn)
            }
            None => {
                let valid: Vec<u32> = (1..=cols)
                    .filter(|ck| {
                        cols % ck == 0 && *ck as usize <= k_in && (cols / ck) as usize <= n_out
                    })
                    .collect();
                let Some(&smallest) = valid.iter().min_by_key(|&&ck| sram_for(ck).total()) else {
                    return Err(Error::Input(format!(
                        "no split of {cols} columns into C_k <= {k_in} K-groups and C_n <= {n_out} N-groups"
                    )));
                };
                let ck = valid
                    .iter()
                    .copied()
                    .find(|&ck| sram_for(ck).total() <= fabric.pe.sram_bytes)
                    .unwrap_or(smallest);
                (ck, cols / ck)
            }
        };
        if ck as usize > k_in || cn as usize > n_out {
            return Err(Error::Input(format!(
                "--split {ck}x{cn}: C_k must be at most K_in = {k_in} and C_n at most N_out = {n_out}"
            )));
        }
        let k_c_max = k_in.div_ceil(ck as usize) as u64;
        if cfg.sparsity != 0.0 && k_c_max > fabric.sparse_index_rows() {
            return Err(Error::Input(format!(
                "split {ck}x{cn}: a PE's K slice of {k_c_max} rows is more than the {} a {}-bit \
                 index addresses (router.sparse_index_bits); use more K-groups",
                fabric.sparse_index_rows(),
                fabric.router.sparse_index_bits
            )));
        }
        let sram = sram_for(ck);
        if sram.total() > fabric.pe.sram_bytes {
            let second = if cfg.form == GemmForm::Wgrad {
                format!(
                    "dY tile {t_r_max}x{} = {} B",
                    n_out.div_ceil(cn as usize),
                    sram.dy_tile
                )
            } else {
                format!("accumulators {} B", sram.accumulators)
            };
            return Err(Error::Input(format!(
                "the GEMM tile does not fit in SRAM: PE (0, 0) needs X tile {t_r_max}x{} = {} B + {second} \
                 + code reserve {} B = {} B, {} B over the {} B of a PE; use more rows, another C_k (--split) or a smaller T",
                k_in.div_ceil(ck as usize),
                sram.x_tile,
                sram.code_reserve,
                sram.total(),
                sram.total() - fabric.pe.sram_bytes,
                fabric.pe.sram_bytes
            )));
        }
        Ok(Self {
            t: cfg.t,
            k_in,
            n_out,
            rows,
            cols,
            ck,
            cn,
            dense: cfg.sparsity == 0.0,
            value_bytes: fabric.pe.operand_bytes,
            packing: fabric.packing(fabric.pe.operand_bytes),
            sram_bytes_max: sram.total(),
            form: cfg.form,
            pattern: cfg.pattern,
        })
    }

    pub fn mesh(&self) -> Mesh {
        Mesh {
            rows: self.rows,
            cols: self.cols,
        }
    }

    pub(super) fn k_slice(&self, g_k: u32) -> std::ops::Range<usize> {
        split_range(self.k_in, self.ck as usize, g_k as usize)
    }

    pub(super) fn n_slice(&self, g_n: u32) -> std::ops::Range<usize> {
        split_range(self.n_out, self.cn as usize, g_n as usize)
    }

    pub(super) fn t_slice(&self, r: u32) -> std::ops::Range<usize> {
        split_range(self.t, self.rows as usize, r as usize)
    }

    /// SRAM bytes PE (r, c) needs.
    pub fn sram_bytes_of(&self, fabric: &FabricSpec, r: u32, c: u32) -> u64 {
        let t_r = self.t_slice(r).len() as u64;
        let k_c = self.k_slice(c % self.ck).len() as u64;
        let n_g = self.n_slice(c / self.ck).len() as u64;
        gemm_sram_bytes(fabric, self.form, t_r, k_c, n_g).total()
    }
}

impl GemmPlan {
    /// Non-zeros each PE column receives for each of its output columns: `column(c)[i]` is
    /// `nnz(W[K_slice(c mod C_k), N_slice(c / C_k)[i]])`. Every PE of column c receives these.
    pub fn nonzeros_per_pe_column(&self) -> PeColumnCounts {
        // The plan's mask is already the streamed matrix (dgrad's is transposed).
        self.mask
            .pe_column_counts(false, self.ck as usize, self.cn as usize)
    }
}

impl GemmPlan {
    /// The work every PE does, row-major, straight from the timing structure in the module
    /// docs (forward and dgrad): what the engine's counters show, exactly. The slowest PE's
    /// total is a lower bound on the kernel's cycles, and on shapes where the weight stream is
    /// not starved the cycles stay within a few percent of it (fill and drain).
    pub fn predicted_work(&self, fabric: &FabricSpec) -> Vec<Work> {
        debug_assert!(self.form != GemmForm::Wgrad, "wgrad has its own structure");
        let a = fabric.pe.task_activation_cycles;
        let d = fabric.pe.sparse_index_decode_cycles;
        let per_wavelet = partial_sums_per_wavelet(fabric) as u64;
        let nonzeros = self.nonzeros_per_pe_column();
        let mut work = Vec::with_capacity(self.mesh().pes());
        for r in 0..self.rows {
            let t_r = self.t_slice(r).len() as u64;
            let f = fmac_cycles(fabric, t_r);
            for c in 0..self.cols {
                let j = c % self.ck;
                let k_c = self.k_slice(j).len() as u64;
                let columns = nonzeros.column(c as usize).len() as u64;
                let nnz = nonzeros.total(c as usize);
                let (values, tasks, decode) = if self.dense {
                    (columns * k_c, columns * self.packing.dense_tasks(k_c), 0)
                } else {
                    (nnz, nnz, d)
                };
                let reducing = if j > 0 { columns } else { 0 };
                work.push(Work {
                    overhead_cycles: tasks * (a + decode) + columns * a + reducing * a,
                    fmac_cycles: values * f,
                    reduction_cycles: reducing * t_r.div_ceil(per_wavelet),
                    fmac_ops: values * t_r,
                });
            }
        }
        work
    }
}

/// SRAM a GEMM PE needs, by tensor.
#[derive(Debug, Clone, Copy)]
pub struct GemmSram {
    pub x_tile: u64,
    pub accumulators: u64,
    pub dy_tile: u64,
    pub code_reserve: u64,
}

impl GemmSram {
    pub fn total(&self) -> u64 {
        self.x_tile + self.accumulators + self.dy_tile + self.code_reserve
    }
}

/// Forward and dgrad: X tile `T_r × K_c` + two accumulators of `T_r` + the code reserve.
/// wgrad: X tile `T_r × K_c` + dY tile `T_r × N_g` + the code reserve.
pub fn gemm_sram_bytes(
    fabric: &FabricSpec,
    form: GemmForm,
    t_r: u64,
    k_c: u64,
    n_g: u64,
) -> GemmSram {
    let pe = &fabric.pe;
    let wgrad = form == GemmForm::Wgrad;
    GemmSram {
        x_tile: t_r * k_c * pe.operand_bytes,
        accumulators: if wgrad {
            0
        } else {
            2 * t_r * pe.accumulator_bytes
        },
        dy_tile: if wgrad {
            t_r * n_g * pe.operand_bytes
        } else {
            0
        },
        code_reserve: pe.code_reserve_bytes,
    }
}

/// FMAC cycles over a local vector of `len` elements: SIMD width or SRAM ports, whichever binds.
pub fn fmac_cycles(fabric: &FabricSpec, len: u64) -> u64 {
    let pe = &fabric.pe;
    let simd = len.div_ceil(pe.simd_fp16_lanes);
    let read =
        (len * (pe.operand_bytes + pe.accumulator_bytes)).div_ceil(pe.sram_read_bytes_per_cycle);
    let write = (len * pe.accumulator_bytes).div_ceil(pe.sram_write_bytes_per_cycle);
    simd.max(read).max(write)
}

/// Partial sums one wavelet carries.
pub fn partial_sums_per_wavelet(fabric: &FabricSpec) -> usize {
    (fabric.router.wavelet_bits / 8 / fabric.pe.partial_sum_bytes) as usize
}

/// The values a small GEMM carries: X (`T × K_in`) and the masked weight (`K_in × N_out`),
/// uniform in [-1, 1] from the seed (`Stream::symmetric_unit` rounded to f32).
#[derive(Debug, Clone)]
pub struct GemmValues {
    pub x: Vec<f32>,
    pub w: Vec<f32>,
    /// wgrad only: the incoming gradient `dY` (`T × N_out`); empty otherwise.
    pub dy: Vec<f32>,
}

impl GemmValues {
    pub fn draw(plan: &GemmPlan, seed: u64) -> Self {
        let mut stream = Stream::new(seed ^ 0x005e_ed0f_9e33);
        let x = (0..plan.t * plan.k_in)
            .map(|_| stream.symmetric_unit() as f32)
            .collect();
        let mut w = vec![0.0; plan.k_in * plan.n_out];
        for k in 0..plan.k_in {
            for n in 0..plan.n_out {
                if plan.mask.get(k, n) {
                    w[k * plan.n_out + n] = stream.symmetric_unit() as f32;
                }
            }
        }
        let dy = if plan.form == GemmForm::Wgrad {
            (0..plan.t * plan.n_out)
                .map(|_| stream.symmetric_unit() as f32)
                .collect()
        } else {
            Vec::new()
        };
        Self { x, w, dy }
    }

    /// The direct product `X · W` (f64 accumulation), row-major `T × N_out`.
    pub fn reference_product(&self, plan: &GemmPlan) -> Vec<f32> {
        let mut y = vec![0.0; plan.t * plan.n_out];
        for t in 0..plan.t {
            for n in 0..plan.n_out {
                let mut acc = 0.0f64;
                for k in 0..plan.k_in {
                    acc += self.x[t * plan.k_in + k] as f64 * self.w[k * plan.n_out + n] as f64;
                }
                y[t * plan.n_out + n] = acc as f32;
            }
        }
        y
    }
}

fn pack(lo: u32, hi: u32) -> u64 {
    lo as u64 | (hi as u64) << 32
}

fn unpack(data: u64) -> (u32, u32) {
    (data as u32, (data >> 32) as u32)
}

/// Colors the program of `form` routes: what both fidelities hold against the fabric.
fn program_colors(form: GemmForm) -> u8 {
    match form {
        GemmForm::Wgrad => super::wgrad::COLORS,
        _ => COLORS,
    }
}

/// Builds the routes and weight streams of `plan`.
pub fn gemm_program(plan: &GemmPlan, values: Option<&GemmValues>) -> Program {
    let mesh = plan.mesh();
    let mut program = Program::new(mesh, COLORS);
    for c in 0..plan.cols {
        let column: Vec<u32> = (0..plan.rows).map(|r| mesh.pe(r, c)).collect();
        program
            .routes
            .multicast_line(&column, Port::S, WGT, Port::N);
    }
    for r in 0..plan.rows {
        for g_n in 0..plan.cn {
            let group: Vec<u32> = (0..plan.ck)
                .map(|j| mesh.pe(r, g_n * plan.ck + j))
                .collect();
            program.routes.chain(&group, Port::E, [RED_A, RED_B]);
        }
    }
    for c in 0..plan.cols {
        let (g_n, g_k) = (c / plan.ck, c % plan.ck);
        let ks = plan.k_slice(g_k);
        let mut wavelets = Vec::new();
        for n in plan.n_slice(g_n) {
            let weight = |k: usize| values.map_or(0.0, |v| v.w[k * plan.n_out + n]).to_bits();
            let packing = plan.packing;
            // A group's leading wavelets are continuations; its last carries what the task needs.
            let mut group = |last: u64, size: u64| {
                wavelets.extend((1..size).map(|_| CONTINUATION));
                wavelets.push(last);
            };
            if plan.dense {
                // A dense group names its first position; the core reads the values it packs
                // (as many as `values_per_wavelet`, more than a 64-bit payload holds as f32s).
                let step = packing.values_per_wavelet as usize;
                for k in ks.clone().step_by(step) {
                    group((k - ks.start) as u64, packing.wavelets_per_value);
                }
            } else {
                for k in ks.clone().filter(|&k| plan.mask.get(k, n)) {
                    group(
                        pack((k - ks.start) as u32, weight(k)),
                        packing.wavelets_per_nonzero,
                    );
                }
            }
            wavelets.push(CONTROL);
        }
        program.edge_streams.push(EdgeStream {
            pe: mesh.pe(0, c),
            color: WGT,
            port: Port::N,
            wavelets,
        });
    }
    program
}

/// Chain position j sends its partial sums on this color (alternating, so a PE never sends and
/// receives on the same color); colors 0 and 1 in every kernel that chains partial sums.
pub(super) fn send_color(j: u32) -> u8 {
    if j.is_multiple_of(2) {
        RED_A
    } else {
        RED_B
    }
}

/// Task costs, from the fabric.
#[derive(Debug, Clone, Copy)]
struct Costs {
    activation: u64,
    decode: u64,
}

/// A PE's place in the plan.
#[derive(Debug, Clone, Copy)]
struct Tile {
    row: u32,
    /// Position in the K-groups' chain.
    j: u32,
    t_r: u32,
    k0: u32,
    k_c: u32,
    fmac_cycles: u64,
    psum_wavelets: u16,
}

/// Per-PE state of the running GEMM (flat arrays indexed by PE id).
pub struct GemmKernel<'p> {
    plan: &'p GemmPlan,
    values: Option<&'p GemmValues>,
    /// Sparse and timing only: a weight's task is `sparse_work` of its row, nothing else.
    sparse_timing: bool,
    costs: Costs,
    /// FMAC cycles for each row's `T_r`.
    /// Per PE, what its tasks need of the plan (no division on the task path).
    tiles: Vec<Tile>,
    /// Per PE its row, and per row what a sparse weight's task costs: a weight's task reads
    /// these two small tables instead of the PE's tile (they stay in the host's cache).
    row_of: Vec<u16>,
    sparse_work: Vec<Work>,
    /// Output columns whose control wavelet this PE has processed.
    columns_done: Vec<u32>,
    /// Output column (index within the group) whose partials are in the second buffer.
    held: Vec<u32>,
    /// Partial sums sent to each PE and not yet taken, oldest first (with values only: a
    /// block carries no values through the engine).
    in_flight: Vec<std::collections::VecDeque<Vec<f32>>>,
    /// Columns whose reduction passed through this PE.
    reduced: Vec<u32>,
    /// The chain head is still sending its second buffer.
    sending: Vec<bool>,
    acc: Vec<Vec<f32>>,
    acc_held: Vec<Vec<f32>>,
    /// The product, row-major `T × N_out` (when values are carried).
    pub y: Vec<f32>,
}

impl<'p> GemmKernel<'p> {
    pub fn new(fabric: &FabricSpec, plan: &'p GemmPlan, values: Option<&'p GemmValues>) -> Self {
        let pes = plan.mesh().pes();
        let acc = |r: u32| {
            if values.is_some() {
                vec![0.0; plan.t_slice(r).len()]
            } else {
                Vec::new()
            }
        };
        Self {
            plan,
            values,
            sparse_timing: !plan.dense && values.is_none(),
            costs: Costs {
                activation: fabric.pe.task_activation_cycles,
                decode: fabric.pe.sparse_index_decode_cycles,
            },
            tiles: (0..pes as u32)
                .map(|pe| {
                    let (row, c) = (pe / plan.cols, pe % plan.cols);
                    let t_r = plan.t_slice(row).len() as u32;
                    let ks = plan.k_slice(c % plan.ck);
                    Tile {
                        row,
                        j: c % plan.ck,
                        t_r,
                        k0: ks.start as u32,
                        k_c: ks.len() as u32,
                        fmac_cycles: fmac_cycles(fabric, t_r as u64),
                        // GemmLayout::new refuses a T_r whose partial sums overflow a block.
                        psum_wavelets: (t_r as usize).div_ceil(partial_sums_per_wavelet(fabric))
                            as u16,
                    }
                })
                .collect(),
            row_of: (0..pes as u32).map(|pe| (pe / plan.cols) as u16).collect(),
            sparse_work: (0..plan.rows)
                .map(|r| {
                    let t_r = plan.t_slice(r).len() as u64;
                    Work {
                        overhead_cycles: fabric.pe.task_activation_cycles
                            + fabric.pe.sparse_index_decode_cycles,
                        fmac_cycles: fmac_cycles(fabric, t_r),
                        reduction_cycles: 0,
                        fmac_ops: t_r,
                    }
                })
                .collect(),
            columns_done: vec![0; pes],
            held: vec![NONE; pes],
            in_flight: vec![std::collections::VecDeque::new(); pes],
            reduced: vec![0; pes],
            sending: vec![false; pes],
            acc: (0..pes as u32).map(|pe| acc(pe / plan.cols)).collect(),
            acc_held: (0..pes as u32).map(|pe| acc(pe / plan.cols)).collect(),
            y: if values.is_some() {
                vec![0.0; plan.t * plan.n_out]
            } else {
                Vec::new()
            },
        }
    }

    #[inline]
    fn weight(&mut self, pe: u32, data: u64) -> Work {
        if self.sparse_timing {
            return self.sparse_work[self.row_of[pe as usize] as usize];
        }
        let tile = self.tiles[pe as usize];
        let (r, t_r, fmac, k0) = (
            tile.row,
            tile.t_r as u64,
            tile.fmac_cycles,
            tile.k0 as usize,
        );
        if self.plan.dense {
            // The group's first position; it packs up to `values_per_wavelet` values.
            let first = data as u32;
            let count = ((tile.k_c - first) as u64).min(self.plan.packing.values_per_wavelet);
            if let Some(v) = self.values {
                let n = self.column(pe);
                for k in k0 + first as usize..k0 + first as usize + count as usize {
                    self.fmac(v, pe, r, k, v.w[k * self.plan.n_out + n]);
                }
            }
            Work {
                overhead_cycles: self.costs.activation,
                fmac_cycles: count * fmac,
                reduction_cycles: 0,
                fmac_ops: count * t_r,
            }
        } else {
            if let Some(v) = self.values {
                let (k, w) = unpack(data);
                self.fmac(v, pe, r, k0 + k as usize, f32::from_bits(w));
            }
            Work {
                overhead_cycles: self.costs.activation + self.costs.decode,
                fmac_cycles: fmac,
                reduction_cycles: 0,
                fmac_ops: t_r,
            }
        }
    }

    /// The output column PE `pe` is accumulating.
    fn column(&self, pe: u32) -> usize {
        let g_n = pe % self.plan.cols / self.plan.ck;
        self.plan.n_slice(g_n).start + self.columns_done[pe as usize] as usize
    }

    fn fmac(&mut self, v: &GemmValues, pe: u32, r: u32, k: usize, w: f32) {
        let k_in = self.plan.k_in;
        let acc = &mut self.acc[pe as usize];
        for (i, t) in self.plan.t_slice(r).enumerate() {
            acc[i] += w * v.x[t * k_in + k];
        }
    }

    fn control(&mut self, pe: u32, io: &mut TaskIo) -> Option<Work> {
        let p = pe as usize;
        let Tile {
            j, psum_wavelets, ..
        } = self.tiles[p];
        let column = self.columns_done[p];
        if self.plan.ck > 1 && (self.sending[p] || self.held[p] != NONE) {
            return None;
        }
        self.columns_done[p] += 1;
        std::mem::swap(&mut self.acc[p], &mut self.acc_held[p]);
        self.acc[p].iter_mut().for_each(|a| *a = 0.0);
        if self.plan.ck == 1 {
            self.store(pe, column);
        } else if j == 0 {
            self.sending[p] = true;
            if self.values.is_some() {
                let partials = self.acc_held[p].clone();
                self.in_flight[p + 1].push_back(partials);
            }
            io.send_block(send_color(0), 0, psum_wavelets, None);
        } else {
            self.held[p] = column;
        }
        Some(Work {
            overhead_cycles: self.costs.activation,
            ..Work::default()
        })
    }

    /// Writes the finished column held in the second buffer into Y.
    fn store(&mut self, pe: u32, column: u32) {
        if self.values.is_none() {
            return;
        }
        let (r, c) = (pe / self.plan.cols, pe % self.plan.cols);
        let n = self.plan.n_slice(c / self.plan.ck).start + column as usize;
        for (i, t) in self.plan.t_slice(r).enumerate() {
            self.y[t * self.plan.n_out + n] = self.acc_held[pe as usize][i];
        }
    }

    /// A column's partial sums arrive as one block from the west: add them to the held
    /// column as they stream in (one wavelet per cycle), and stream the sums on east as they
    /// come (the first after the activation and one add), or store the column at the end.
    #[inline(never)]
    fn partial_sums(&mut self, pe: u32, io: &mut TaskIo) -> Option<Work> {
        let p = pe as usize;
        if self.held[p] == NONE {
            return None;
        }
        let Tile {
            j, psum_wavelets, ..
        } = self.tiles[p];
        if self.values.is_some() {
            let incoming = self.in_flight[p].pop_front().unwrap_or_default();
            for (held, x) in self.acc_held[p].iter_mut().zip(incoming) {
                *held += x;
            }
        }
        if j + 1 < self.plan.ck {
            if self.values.is_some() {
                let sums = self.acc_held[p].clone();
                self.in_flight[p + 1].push_back(sums);
            }
            io.send_block(
                send_color(j),
                0,
                psum_wavelets,
                Some(self.costs.activation + 1),
            );
        } else {
            self.store(pe, self.held[p]);
        }
        self.held[p] = NONE;
        self.reduced[p] += 1;
        Some(Work {
            overhead_cycles: self.costs.activation,
            reduction_cycles: psum_wavelets as u64,
            ..Work::default()
        })
    }
}

impl Kernel for GemmKernel<'_> {
    #[inline]
    fn on_wavelet(
        &mut self,
        pe: u32,
        color: u8,
        data: u64,
        _now: u64,
        io: &mut TaskIo,
    ) -> Option<Work> {
        match (color, data) {
            (WGT, CONTROL) => self.control(pe, io),
            // The router delivered it; the group's last wavelet starts the task.
            (WGT, CONTINUATION) => Some(Work::default()),
            (WGT, _) => Some(self.weight(pe, data)),
            // Partial sums come as blocks only.
            _ => None,
        }
    }

    #[inline]
    fn on_block(
        &mut self,
        pe: u32,
        color: u8,
        _data: u64,
        _count: u16,
        _now: u64,
        io: &mut TaskIo,
    ) -> Option<Work> {
        // Offered at every task end until the PE has closed its own column: refuse cheaply.
        if color == WGT || self.held[pe as usize] == NONE {
            return None;
        }
        self.partial_sums(pe, io)
    }

    fn on_sends_drained(&mut self, pe: u32, _color: u8) {
        self.sending[pe as usize] = false;
    }

    fn expected(&self) -> Vec<(u32, u8)> {
        let mut missing = Vec::new();
        for pe in 0..self.plan.mesh().pes() as u32 {
            let c = pe % self.plan.cols;
            let columns = self.plan.n_slice(c / self.plan.ck).len() as u32;
            if self.columns_done[pe as usize] < columns {
                missing.push((pe, WGT));
            }
            let j = c % self.plan.ck;
            if j > 0 && self.reduced[pe as usize] < columns {
                missing.push((pe, send_color(j - 1)));
            }
        }
        missing
    }
}

/// A finished GEMM run: the plan, the engine's output and, with values, the product.
pub struct GemmRun {
    pub plan: GemmPlan,
    pub output: RunOutput,
    pub y: Option<Vec<f32>>,
    pub values: Option<GemmValues>,
}

/// How far a run's product is from the direct product of the same values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ValuesCheck {
    /// Elements compared: `T × N_out` (`K × N` for wgrad, zeros of the mask included).
    pub elements: u64,
    /// Largest |engine − direct| over the elements; NaN (JSON null) if any element is NaN.
    pub max_abs_error: f64,
    /// Largest |direct| element, for scale.
    pub max_abs_value: f64,
    /// Largest ratio of an element's error to its f32 rounding bound `γ(n+2) Σ|a_i b_i|`, with
    /// `γ(m) = m u / (1 − m u)` (n terms, u = 2⁻²⁴: products, additions in any order and the
    /// final rounding), over
    /// the elements with a bound; one without (no terms) must be exactly 0.
    pub max_error_to_bound: f64,
    /// Every element within its bound: the program computed the product.
    pub within_f32_rounding: bool,
}

impl GemmRun {
    /// With values, the product's distance from the direct product (f64, with each element's
    /// rounding bound); `None` for a timing-only run.
    pub fn check_values(&self) -> Option<ValuesCheck> {
        let (values, y) = (self.values.as_ref()?, self.y.as_ref()?);
        let plan = &self.plan;
        // Element e is Σ a_i b_i over its n terms: X·W over K (forward and dgrad, whose plan
        // holds the transposed operands), Xᵀ·dY over T at a kept weight (wgrad; elsewhere none).
        // Returns (Σ a_i b_i, Σ |a_i b_i|, n).
        let element = |e: usize| -> (f64, f64, usize) {
            let (i, n) = (e / plan.n_out, e % plan.n_out);
            // (a, its first index and stride; b, the same; terms)
            let (a, a0, da, b, b0, db, terms) = if plan.form == GemmForm::Wgrad {
                if !plan.mask.get(i, n) {
                    return (0.0, 0.0, 0);
                }
                (&values.x, i, plan.k_in, &values.dy, n, plan.n_out, plan.t)
            } else {
                let row = i * plan.k_in;
                (&values.x, row, 1, &values.w, n, plan.n_out, plan.k_in)
            };
            let (mut sum, mut magnitude) = (0.0f64, 0.0f64);
            for j in 0..terms {
                let product = f64::from(a[a0 + j * da]) * f64::from(b[b0 + j * db]);
                sum += product;
                magnitude += product.abs();
            }
            (sum, magnitude, terms)
        };
        let u = f64::from(f32::EPSILON) / 2.0;
        let mut check = ValuesCheck {
            elements: y.len() as u64,
            max_abs_error: 0.0,
            max_abs_value: 0.0,
            max_error_to_bound: 0.0,
            within_f32_rounding: true,
        };
        let mut nan = false;
        for (e, &got) in y.iter().enumerate() {
            let (direct, magnitude, terms) = element(e);
            // γ_{n+2} = (n+2)u / (1 - (n+2)u): n products and n - 1 additions in any order,
            // and the final rounding.
            let nu = (terms + 2) as f64 * u;
            let bound = nu / (1.0 - nu) * magnitude;
            let error = (f64::from(got) - direct).abs();
            // A NaN product is an error beyond any bound, and is reported as NaN.
            if error.is_nan() {
                nan = true;
                continue;
            }
            check.max_abs_error = check.max_abs_error.max(error);
            check.max_abs_value = check.max_abs_value.max(direct.abs());
            if error > bound {
                check.within_f32_rounding = false;
            }
            if bound > 0.0 {
                check.max_error_to_bound = check.max_error_to_bound.max(error / bound);
            }
        }
        if nan {
            check.max_abs_error = f64::NAN;
            check.within_f32_rounding = false;
        }
        Some(check)
    }
}

/// Plans and runs a GEMM in any form; with values, `y` is the product (`dW` for wgrad).
pub fn run_gemm(fabric: &FabricSpec, cfg: &GemmConfig) -> Result<GemmRun> {
    run_gemm_with(fabric, cfg, &mut Watch::default())
}

/// [`run_gemm`], its engine run watched by `watch`.
pub fn run_gemm_with(fabric: &FabricSpec, cfg: &GemmConfig, watch: &mut Watch) -> Result<GemmRun> {
    run_gemm_plan(fabric, GemmPlan::new(fabric, cfg)?, cfg, watch)
}

/// Runs `plan` (laid out from `cfg`, its mask drawn or read from a file) wavelet by wavelet.
pub fn run_gemm_plan(
    fabric: &FabricSpec,
    plan: GemmPlan,
    cfg: &GemmConfig,
    watch: &mut Watch,
) -> Result<GemmRun> {
    let mesh = Mesh {
        rows: plan.rows,
        cols: plan.cols,
    };
    check_mesh(fabric, mesh, COLORS, RunLimits::default())?;
    let values = cfg.values.then(|| GemmValues::draw(&plan, cfg.seed));
    let (mut output, product) = if cfg.form == GemmForm::Wgrad {
        super::wgrad::run_wgrad(fabric, &plan, values.as_ref(), watch)?
    } else {
        let program = gemm_program(&plan, values.as_ref());
        let mut kernel = GemmKernel::new(fabric, &plan, values.as_ref());
        let output = run_with(fabric, &program, &mut kernel, RunLimits::default(), watch)?;
        (output, kernel.y)
    };
    for (pe, counters) in output.counters.pes.iter_mut().enumerate() {
        let (r, c) = (pe as u32 / plan.cols, pe as u32 % plan.cols);
        counters.sram_bytes = plan.sram_bytes_of(fabric, r, c);
    }
    let y = values.as_ref().map(|_| product);
    Ok(GemmRun {
        plan,
        output,
        y,
        values,
    })
}
