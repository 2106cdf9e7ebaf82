//! Attention's products on the engine: `batch` independent (sequence, head) products
//! `Y[T×N] = X[T×K] · M[K×N]` (scores `Q·Kᵀ`, `A·V`, and their gradients), each on its own
//! sub-tile of the region, where *both* operands are activations already on the wafer.
//!
//! # Mapping
//! The region is cut into a grid of `down × across` tiles of `R × C` PEs ([`tile_grid`]); tile
//! q runs products q, q + tiles, q + 2·tiles, … one after the other. Inside a tile the GEMM
//! kernel's layout holds ([`super::gemm`]): the columns split `C = C_k · C_n`, PE (r, c) keeps
//! `X[T_r, K_c]` resident (tokens over PE rows), N-group `g_n` computes the output columns
//! `N_g`, partial sums chain east over the `C_k` PEs of the group.
//!
//! # Delivery of the second operand (what a weight GEMM does not have)
//! A weight enters at the region's edge; attention's second operand is already on the wafer,
//! spread over the tile's PE rows: output column n's slice `M[K_c, n]` is kept by PE row
//! `owner(n)`, the rows holding the output columns in order (`split_range` of N over the rows).
//! For the scores, n is a key: that is K's layout, tokens over rows. For `A·V` and the
//! gradient products whose output columns are features, the `S × H` operand is assumed kept
//! features over rows (its producer writes it transposed). Likewise `dK = dSᵀ·Q` and
//! `dV = Aᵀ·dO` keep the transposed square resident, keys over rows: no transpose is modelled.
//! The holder multicasts each slice to every row of its PE column as one *block* of
//! `ceil(K_c / values_per_wavelet)` wavelets, on two colors: `DOWN` (routes `{N, ramp} →
//! {S, ramp}`) and `UP` (`{S, ramp} → {N, ramp}`). A route multicasts what it accepts to the
//! same ports whatever the input, so the holder's own block comes back to its core on both
//! colors: it computes on the `DOWN` copy and drops the `UP` copy (reading it off its queue,
//! one cycle per wavelet). The rows take
//! turns, in the order of the output columns: a row sends its run of consecutive slices when
//! its core has taken the slice before them (so every PE of a column sees the same order,
//! which the reduction chain needs). A change of holder costs a bubble of about
//! `2·hop + ramp` cycles: the new holder's slice leaves only after the old holder's last one
//! reached it.
//!
//! # Timing structure (what the cost model reproduces)
//! - **Per slice (output column n), on each PE**: one task that streams the block in (a fabric
//!   DSD operation): `a + K_c·F(T_r)` cycles (`K_c·T_r` FMACs), and closes the column as the
//!   GEMM's control task does: it waits while the second accumulator is busy, then moves the
//!   accumulator there and starts the reduction (the chain's head sends its partial sums).
//! - **Reduction**: the GEMM's chain, unchanged: a non-head PE adds a column's `W_r` partial-sum
//!   wavelets in one task of `a + W_r` cycles and streams them on.
//! - **Causal masking**: the kernel computes the whole `S × S` square and skips nothing (the
//!   softmax's mask overwrites the upper triangle), so its FMACs are `batch·T·K·N`, as the
//!   step graph counts attention; skipping the masked half would leave the first PE rows
//!   nearly idle and the last ones fully busy.
//!
//! So per PE, busy cycles = Σ over its slices `a + K_c·F(T_r)` + (non-head) `a + W_r` per
//! slice; the slowest N-group paces a tile: its slices × that work, plus a bubble per change
//! of holder, plus fill (`ramp + (R − 1)·hop`) and the last column's chain drain.

use crate::engine::kernels::gemm::{
    fmac_cycles, gemm_sram_bytes, partial_sums_per_wavelet, send_color, GemmForm,
};
use crate::engine::program::{Kernel, Mesh, Port, Program, TaskIo, Work};
use crate::engine::{check_mesh, check_region, run_with, RunLimits, RunOutput, Watch};
use crate::error::{Error, Result};
use crate::sparsity::split_range;
use crate::spec::FabricSpec;

// The reduction chain's colors, as the GEMM's (`gemm::send_color`).
const RED_A: u8 = 0;
const RED_B: u8 = 1;
const DOWN: u8 = 3;
const UP: u8 = 2;
/// Colors of the attention program: two for the reduction chain, two for the delivery.
pub const COLORS: u8 = 4;
const NONE: u32 = u32::MAX;

/// `groups` tiles cut from a `rows × cols` region as square as its aspect allows: `(down,
/// across)`, at least `groups` tiles in all (the grid the cost model and the mapper use too).
pub fn tile_grid(groups: u64, rows: u64, cols: u64) -> (u64, u64) {
    let groups = groups.max(1);
    let across = ((groups as f64 * cols as f64 / rows.max(1) as f64)
        .sqrt()
        .round() as u64)
        .clamp(1, groups);
    (groups.div_ceil(across), across)
}

/// PE row of a `rows`-row tile that keeps output column `n` of `n_out` (the inverse of
/// [`split_range`]: row r keeps `[r·N/R, (r+1)·N/R)`).
pub fn owner_row(n: u64, n_out: u64, rows: u64) -> u64 {
    ((n + 1) * rows - 1) / n_out.max(1)
}

/// Attention's products laid out on a region: the tile grid, the split inside a tile, SRAM.
#[derive(Debug, Clone)]
pub struct AttentionLayout {
    /// One product: `t × k` times `k × n`.
    pub t: usize,
    pub k: usize,
    pub n: usize,
    pub products: u64,
    pub region: (u32, u32),
    /// Tiles down and across, and one tile's rows and columns.
    pub down: u32,
    pub across: u32,
    /// Rows between tiles' first rows, and the rows a tile uses (at most one per token).
    pub stride_rows: u32,
    pub tile_rows: u32,
    pub tile_cols: u32,
    pub ck: u32,
    pub cn: u32,
    /// Wavelets of one slice's block.
    pub block_wavelets: u64,
    pub sram_bytes_max: u64,
}

impl AttentionLayout {
    /// Lays `products` products of `(t, k, n)` on `region`: the most tiles (a power of two, at
    /// most `products`) whose tiles have a row per token at most and a split that fits SRAM.
    pub fn new(
        fabric: &FabricSpec,
        (t, k, n): (usize, usize, usize),
        products: u64,
        region: (u32, u32),
    ) -> Result<Self> {
        check_region(fabric, region.0 as u64, region.1 as u64)?;
        super::check_colors(fabric, COLORS)?;
        if t == 0 || k == 0 || n == 0 || products == 0 {
            return Err(Error::Input(
                "--seq, --head-dim and --products: each is at least 1".into(),
            ));
        }
        let mut groups = 1u64 << (63 - products.leading_zeros());
        let mut last_error = None;
        while groups >= 1 {
            match Self::with_groups(fabric, (t, k, n), products, region, groups) {
                Ok(layout) => return Ok(layout),
                Err(e) => last_error = Some(e),
            }
            groups /= 2;
        }
        Err(last_error.unwrap_or_else(|| Error::Input("no tile fits".into())))
    }

    fn with_groups(
        fabric: &FabricSpec,
        (t, k, n): (usize, usize, usize),
        products: u64,
        region: (u32, u32),
        groups: u64,
    ) -> Result<Self> {
        let (down, across) = tile_grid(groups, region.0 as u64, region.1 as u64);
        let (stride_rows, tile_cols) = (region.0 as u64 / down, region.1 as u64 / across);
        if stride_rows == 0 || tile_cols == 0 {
            return Err(Error::Input(format!(
                "--region {}x{}: too small for {groups} tiles",
                region.0, region.1
            )));
        }
        // A tile uses at most one row per token.
        let tile_rows = stride_rows.min(t as u64) as u32;
        if products.div_ceil(down * across) * n as u64 > u32::MAX as u64 {
            return Err(Error::Input(format!(
                "--products {products}: {} slices per PE column, more than the engine counts",
                products.div_ceil(down * across) * n as u64
            )));
        }
        let tile_cols = tile_cols as u32;
        let t_r = t.div_ceil(tile_rows as usize) as u64;
        let psum_wavelets = t_r.div_ceil(partial_sums_per_wavelet(fabric) as u64);
        let packing = fabric.packing(fabric.pe.operand_bytes);
        let sram_for = |ck: u32| {
            let k_c = k.div_ceil(ck as usize) as u64;
            let owned = n.div_ceil(tile_rows as usize) as u64;
            gemm_sram_bytes(fabric, GemmForm::Forward, t_r, k_c, 0).total()
                + owned * k_c * fabric.pe.operand_bytes
        };
        let ck = (1..=tile_cols)
            .filter(|ck| {
                tile_cols.is_multiple_of(*ck) && *ck as usize <= k && (tile_cols / ck) as usize <= n
            })
            .find(|&ck| sram_for(ck) <= fabric.pe.sram_bytes)
            .ok_or_else(|| {
                Error::Input(format!(
                    "attention {t}x{k}x{n} on {tile_rows}x{tile_cols}-PE tiles: no split of the \
                     columns fits the {} B of a PE's SRAM (X tile, accumulators, the operand's \
                     own slices); use a larger --region or fewer --products",
                    fabric.pe.sram_bytes
                ))
            })?;
        let block_wavelets = packing.dense_wavelets(k.div_ceil(ck as usize) as u64);
        if psum_wavelets > u16::MAX as u64 || block_wavelets > u16::MAX as u64 {
            return Err(Error::Input(format!(
                "attention {t}x{k}x{n}: a block of {} wavelets is more than the {} of one block; \
                 use a larger --region",
                psum_wavelets.max(block_wavelets),
                u16::MAX
            )));
        }
        Ok(Self {
            t,
            k,
            n,
            products,
            region,
            down: down as u32,
            across: across as u32,
            stride_rows: stride_rows as u32,
            tile_rows,
            tile_cols,
            ck,
            cn: tile_cols / ck,
            block_wavelets,
            sram_bytes_max: sram_for(ck),
        })
    }

    pub fn tiles(&self) -> u64 {
        self.down as u64 * self.across as u64
    }

    /// Products tile `q` runs.
    fn products_of(&self, q: u64) -> u64 {
        self.products.saturating_sub(q).div_ceil(self.tiles())
    }

    /// (tile, local row, local column) of a PE of the region, `None` outside every tile.
    fn place(&self, row: u32, col: u32) -> Option<(u64, u32, u32)> {
        let (ty, tx) = (row / self.stride_rows, col / self.tile_cols);
        if ty >= self.down || tx >= self.across || row % self.stride_rows >= self.tile_rows {
            return None;
        }
        let q = ty as u64 * self.across as u64 + tx as u64;
        Some((q, row % self.stride_rows, col % self.tile_cols))
    }

    fn n_slice(&self, g_n: u32) -> std::ops::Range<usize> {
        split_range(self.n, self.cn as usize, g_n as usize)
    }

    fn t_slice(&self, r: u32) -> std::ops::Range<usize> {
        split_range(self.t, self.tile_rows as usize, r as usize)
    }

    /// The PE row holding slice `i` of N-group `g_n`'s stream (products one after another).
    fn source(&self, g_n: u32, i: u64) -> u32 {
        let ns = self.n_slice(g_n);
        let n = ns.start as u64 + i % ns.len() as u64;
        owner_row(n, self.n as u64, self.tile_rows as u64) as u32
    }
}

/// A PE's place in the layout, resolved once.
#[derive(Debug, Clone, Copy)]
struct Tile {
    row: u32,
    j: u32,
    g_n: u32,
    /// Slices the PE takes (its tile's products × its N-group's columns).
    slices: u32,
    psum_wavelets: u16,
    work: Work,
}

/// Per-PE state of the running attention products (flat arrays by PE id).
pub struct AttentionKernel<'l> {
    layout: &'l AttentionLayout,
    activation: u64,
    tiles: Vec<Option<Tile>>,
    columns_done: Vec<u32>,
    held: Vec<u32>,
    reduced: Vec<u32>,
    sending: Vec<bool>,
}

impl<'l> AttentionKernel<'l> {
    pub fn new(fabric: &FabricSpec, layout: &'l AttentionLayout) -> Self {
        let a = fabric.pe.task_activation_cycles;
        let pes = layout.region.0 as usize * layout.region.1 as usize;
        let tiles = (0..pes as u32)
            .map(|pe| {
                let (row, col) = (pe / layout.region.1, pe % layout.region.1);
                let (q, r, c) = layout.place(row, col)?;
                let products = layout.products_of(q);
                if products == 0 {
                    return None;
                }
                let (j, g_n) = (c % layout.ck, c / layout.ck);
                let t_r = layout.t_slice(r).len() as u64;
                let k_c = split_range(layout.k, layout.ck as usize, j as usize).len() as u64;
                Some(Tile {
                    row: r,
                    j,
                    g_n,
                    slices: (products * layout.n_slice(g_n).len() as u64) as u32,
                    psum_wavelets: t_r.div_ceil(partial_sums_per_wavelet(fabric) as u64) as u16,
                    work: Work {
                        overhead_cycles: a,
                        fmac_cycles: k_c * fmac_cycles(fabric, t_r),
                        reduction_cycles: 0,
                        fmac_ops: k_c * t_r,
                    },
                })
            })
            .collect();
        Self {
            layout,
            activation: a,
            tiles,
            columns_done: vec![0; pes],
            held: vec![NONE; pes],
            reduced: vec![0; pes],
            sending: vec![false; pes],
        }
    }

    /// Queues the run of consecutive slices from `first` that row `tile.row` holds, on both
    /// delivery colors (`UP` only when a row lies above).
    fn send_run(&self, tile: &Tile, first: u64, io: &mut TaskIo) {
        let count = self.layout.block_wavelets as u16;
        let mut i = first;
        while i < tile.slices as u64 && self.layout.source(tile.g_n, i) == tile.row {
            io.send_block(DOWN, i, count, None);
            if tile.row > 0 {
                io.send_block(UP, i, count, None);
            }
            i += 1;
        }
    }

    /// Slice `i` arrives: stream it through the FMACs and close its output column.
    fn slice(&mut self, pe: u32, color: u8, i: u64, io: &mut TaskIo) -> Option<Work> {
        let p = pe as usize;
        let tile = self.tiles[p]?;
        let source = self.layout.source(tile.g_n, i);
        if color == UP && source == tile.row {
            // The holder's own block, back through its ramp: it computes on the DOWN copy and
            // reads this one off its queue, a wavelet per cycle, to drop it.
            return Some(Work {
                overhead_cycles: self.layout.block_wavelets,
                ..Work::default()
            });
        }
        if self.layout.ck > 1 && (self.sending[p] || self.held[p] != NONE) {
            return None;
        }
        self.columns_done[p] += 1;
        if self.layout.ck > 1 {
            if tile.j == 0 {
                self.sending[p] = true;
                io.send_block(send_color(0), 0, tile.psum_wavelets, None);
            } else {
                self.held[p] = i as u32;
            }
        }
        let next = i + 1;
        if next < tile.slices as u64
            && source != tile.row
            && self.layout.source(tile.g_n, next) == tile.row
        {
            self.send_run(&tile, next, io);
        }
        Some(tile.work)
    }

    /// A column's partial sums arrive from the west as one block: the GEMM chain's add.
    fn partial_sums(&mut self, pe: u32, io: &mut TaskIo) -> Option<Work> {
        let p = pe as usize;
        let tile = self.tiles[p]?;
        if self.held[p] == NONE {
            return None;
        }
        if tile.j + 1 < self.layout.ck {
            io.send_block(
                send_color(tile.j),
                0,
                tile.psum_wavelets,
                Some(self.activation + 1),
            );
        }
        self.held[p] = NONE;
        self.reduced[p] += 1;
        Some(Work {
            overhead_cycles: self.activation,
            reduction_cycles: tile.psum_wavelets as u64,
            ..Work::default()
        })
    }
}

impl Kernel for AttentionKernel<'_> {
    fn on_wavelet(&mut self, _: u32, _: u8, _: u64, _: u64, _: &mut TaskIo) -> Option<Work> {
        // Every send of this program is a block.
        None
    }

    fn on_block(
        &mut self,
        pe: u32,
        color: u8,
        data: u64,
        _count: u16,
        _now: u64,
        io: &mut TaskIo,
    ) -> Option<Work> {
        match color {
            DOWN | UP => self.slice(pe, color, data, io),
            _ => self.partial_sums(pe, io),
        }
    }

    fn on_sends_drained(&mut self, pe: u32, color: u8) {
        if color == RED_A || color == RED_B {
            self.sending[pe as usize] = false;
        }
    }

    fn expected(&self) -> Vec<(u32, u8)> {
        let mut missing = Vec::new();
        for (pe, tile) in self.tiles.iter().enumerate() {
            let Some(tile) = tile else { continue };
            if self.columns_done[pe] < tile.slices {
                missing.push((pe as u32, DOWN));
            }
            if tile.j > 0 && self.reduced[pe] < tile.slices {
                missing.push((pe as u32, send_color(tile.j - 1)));
            }
        }
        missing
    }
}

/// The routes of every tile and the first holder's slices of every PE column.
pub fn attention_program(layout: &AttentionLayout) -> Program {
    let mesh = Mesh {
        rows: layout.region.0,
        cols: layout.region.1,
    };
    let mut program = Program::new(mesh, COLORS);
    let rows = layout.tile_rows;
    for q in 0..layout.tiles() {
        if layout.products_of(q) == 0 {
            continue;
        }
        let (y0, x0) = (
            (q / layout.across as u64) as u32 * layout.stride_rows,
            (q % layout.across as u64) as u32 * layout.tile_cols,
        );
        for c in 0..layout.tile_cols {
            for r in 0..rows {
                let pe = mesh.pe(y0 + r, x0 + c);
                let above = if r > 0 { Port::N.bit() } else { 0 };
                let below = if r + 1 < rows { Port::S.bit() } else { 0 };
                let ramp = Port::Ramp.bit();
                program.routes.set(pe, DOWN, ramp | above, ramp | below);
                if rows > 1 {
                    let from_core = if r > 0 { ramp } else { 0 };
                    program.routes.set(pe, UP, below | from_core, ramp | above);
                }
            }
            let first_source = layout.source(c / layout.ck, 0);
            let products = layout.products_of(q);
            let slices = products * layout.n_slice(c / layout.ck).len() as u64;
            let mut i = 0;
            while i < slices && layout.source(c / layout.ck, i) == first_source {
                let pe = mesh.pe(y0 + first_source, x0 + c);
                program
                    .initial_blocks
                    .push((pe, DOWN, i, layout.block_wavelets));
                if first_source > 0 {
                    program
                        .initial_blocks
                        .push((pe, UP, i, layout.block_wavelets));
                }
                i += 1;
            }
        }
        for r in 0..rows {
            for g_n in 0..layout.cn {
                let group: Vec<u32> = (0..layout.ck)
                    .map(|j| mesh.pe(y0 + r, x0 + g_n * layout.ck + j))
                    .collect();
                program.routes.chain(&group, Port::E, [RED_A, RED_B]);
            }
        }
    }
    program
}

/// Runs `products` attention products of `(t, k, n)` on `region`.
pub fn run_attention(
    fabric: &FabricSpec,
    shape: (usize, usize, usize),
    products: u64,
    region: (u32, u32),
) -> Result<(AttentionLayout, RunOutput)> {
    run_attention_with(fabric, shape, products, region, &mut Watch::default())
}

/// [`run_attention`], its engine run watched by `watch`.
pub fn run_attention_with(
    fabric: &FabricSpec,
    shape: (usize, usize, usize),
    products: u64,
    region: (u32, u32),
    watch: &mut Watch,
) -> Result<(AttentionLayout, RunOutput)> {
    let layout = AttentionLayout::new(fabric, shape, products, region)?;
    let mesh = Mesh {
        rows: region.0,
        cols: region.1,
    };
    check_mesh(fabric, mesh, COLORS, RunLimits::default())?;
    let program = attention_program(&layout);
    let mut kernel = AttentionKernel::new(fabric, &layout);
    let mut output = run_with(fabric, &program, &mut kernel, RunLimits::default(), watch)?;
    for (pe, counters) in output.counters.pes.iter_mut().enumerate() {
        let (row, col) = (pe as u32 / region.1, pe as u32 % region.1);
        if kernel.tiles[pe].is_some() && layout.place(row, col).is_some() {
            counters.sram_bytes = layout.sram_bytes_max;
        }
    }
    Ok((layout, output))
}

/// Runs `products` of each shape in `shapes` one after the other on `region` (the fabric runs
/// one product shape at a time): cycles, counts and per-PE counters add up; SRAM is the
/// largest any shape needs. Returns each shape's layout with the combined output.
pub fn run_attention_shapes(
    fabric: &FabricSpec,
    shapes: &[(usize, usize, usize)],
    products: u64,
    region: (u32, u32),
) -> Result<(Vec<AttentionLayout>, RunOutput)> {
    run_attention_shapes_with(fabric, shapes, products, region, &mut Watch::default())
}

/// [`run_attention_shapes`], its engine runs watched by `watch`, one after the other.
pub fn run_attention_shapes_with(
    fabric: &FabricSpec,
    shapes: &[(usize, usize, usize)],
    products: u64,
    region: (u32, u32),
    watch: &mut Watch,
) -> Result<(Vec<AttentionLayout>, RunOutput)> {
    // Resolve every shape before running any, so a refusal comes before the work.
    for &shape in shapes {
        AttentionLayout::new(fabric, shape, products, region)?;
    }
    let mut layouts = Vec::new();
    let mut total: Option<RunOutput> = None;
    for &shape in shapes {
        let (layout, output) = run_attention_with(fabric, shape, products, region, watch)?;
        layouts.push(layout);
        total = Some(match total {
            None => output,
            Some(sum) => then(sum, output),
        });
    }
    let output = total.ok_or_else(|| Error::Input("an attention op has no product".into()))?;
    Ok((layouts, output))
}

/// Two runs on the same mesh, one after the other.
fn then(mut a: RunOutput, b: RunOutput) -> RunOutput {
    a.cycles += b.cycles;
    a.wavelets_sent += b.wavelets_sent;
    a.wavelets_received += b.wavelets_received;
    a.wavelet_hops += b.wavelet_hops;
    a.events += b.events;
    a.counters.cycles += b.counters.cycles;
    for (x, y) in a.counters.pes.iter_mut().zip(&b.counters.pes) {
        x.add(y);
    }
    a
}
