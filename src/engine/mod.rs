//! The engine: a wavelet-level, cycle-approximate, event-driven simulator of the PE mesh.
//!
//! Architecture Invariant: the engine knows nothing about models. It runs a [`Program`]
//! (routes and the wavelets that start it) with a [`Kernel`] (what each arriving wavelet makes
//! a core do) on a [`FabricSpec`]; every hardware number comes from the spec.
//!
//! # What is modelled
//! - **Routers** (`router`): per (PE, color) a static route (accepted input ports → multicast
//!   output ports), a buffer of `router.color_buffer_depth_wavelets`, one 32-bit wavelet per
//!   cycle per link direction, shared round-robin by the colors waiting for it, credit-based
//!   back-pressure, `router.hop_latency_cycles` per hop and `router.ramp_latency_cycles` from
//!   router to core. A core's send enters its own router buffer in the cycle it leaves the
//!   core, so a wavelet crossing `h` hops reaches the destination core after
//!   `h · hop + ramp` cycles.
//! - **Blocks**: a task may send `count` wavelets as one block (a fabric DSD stream): one
//!   wavelet per cycle, holding every link it crosses for `count` cycles and one slot of each
//!   buffer it waits in; the receiving core takes it in one task ([`Kernel::on_block`]) lasting
//!   at least `count` cycles. Kernels whose receivers consume at one wavelet per cycle (a
//!   reduction's adds) use blocks; their cycles are those of the wavelet-by-wavelet program.
//! - **Cores** (`pe`): a queue per color fed by the ramp, one task at a time, tasks triggered
//!   by wavelet arrival; the kernel says what each task costs ([`Work`]) from the spec's SIMD
//!   width, SRAM bandwidth, activation and decode costs.
//! - **Counters** ([`counters`]): per PE, busy cycles by kind, FMACs, wavelets per port, stalls,
//!   SRAM bytes; integers (`kernel --counters` saves them as numpy arrays, `.npz`).
//!
//! # Event ordering and determinism
//! Events run cycle by cycle; within a cycle in the order they were scheduled ([`event`]). Every
//! choice is made by a fixed rule: a core serves the lowest-numbered color with a runnable wavelet;
//! a link serves, among the colors waiting for it, the first after the one it served last; if the
//! colors waiting at a router all find their links free but each owes its turn on one of them to
//! another (turns pointing around a circle, possible only with multicast), the lowest-numbered
//! goes. A core's sends take its ramp into the router in the order they become ready (a task's
//! block may be ready before the task ends), each color's in the order sent. There is no hashing, no pointer order and no clock: the same program, kernel and seed give
//! identical counters, cycle for cycle.
//!
//! # Termination
//! A run ends when no event is left. If wavelets are then still buffered or queued, or the
//! kernel still expects some, the run is a deadlock and returns [`Error::Simulation`] naming
//! the stuck PEs and colors. A route that loops (a wavelet entering it would circle forever)
//! is refused before the run; anything else that moves without progress is stopped by
//! [`RunLimits::progress_timeout_cycles`]. Nothing hangs.
//!
//! # Cost
//! About one event per wavelet (or block) move through a router buffer, one per task, one per
//! send that waits in a send queue (a wavelet reaching a core needs no event of its own: the
//! core queue keeps its arrival cycle). A *block* (`TaskIo::send_block`) moves as one unit: a
//! GEMM's partial sums of one output column (64 wavelets on the reference kernel) cost a few
//! events per hop instead of a few per wavelet. The head of an empty buffer that can move on
//! at once goes straight through (no slot written and read back). State lives in flat arrays
//! of one-cache-line structs laid out by what an event touches (see `sim`); the calendar queue
//! allocates nothing once warm; edge streams are read in place from the program.
//!
//! Measured on the reference kernel (`kernel gemm --t 4096 --k 1024 --n 1024 --sparsity 0.75
//! --region 32x32`, one core of a shared 2-core machine, release build): 351 682 cycles × 1024
//! PEs, 23 M wavelet-hops, 19 M events (8.6 M hops of weights and blocks, 8.9 M task starts).
//! Criterion medians 0.437 s and 0.439 s in two windows, 0.381 s and 0.374 s in a later one:
//! 5.3–6.2 × 10⁷ wavelet-hops and 8.2–9.6 × 10⁸ PE-cycles per host second. This machine's speed drifts by up to 2× within an hour, so
//! comparisons are made side by side (alternating runs): against the engine of the previous
//! release, median 0.412 s against 0.481 s. The stable measure is callgrind's: 4.13 G
//! instructions on the reference kernel, 216 per event (a hop, with its delivery to the core,
//! about 200; a task's start, with the kernel's part, about 180), down from 5.22 G. Sampling
//! (perf) puts about 40% of a run on four loads: a core queue's head, the neighbour's buffer, a
//! channel and a PE's state (1024 PEs' state does not stay in the first-level cache); fetching
//! those lines a few events ahead, measured twice, did not make runs faster.
//!
//! Release builds keep overflow checks for counters a kernel's figures feed (FMACs); sums the
//! engine bounds (a buffer's sends, a core's busy cycles, below the run's cycles) and index
//! arithmetic wrap (see `sim`). The hop's fast path and a task's start index the state arrays
//! without bounds checks, from invariants `Program::check` and `Engine::new` establish, asserted
//! in debug builds (`sim`, "Indexing on the event path"; 9% of the instructions); everything
//! else indexes with checks. A full-wafer (994 × 750) broadcast of 16 wavelets (one block)
//! runs in 1.5 M events, ≈ 0.45 GB and 0.35 s (criterion median).
//!
//! Watching a run ([`run_with`], [`timeline`]) changes no figure. Without a timeline the event
//! path tests one flag per task and per move (2.1% more instructions on the reference kernel
//! at t = 1024, no change in time beyond the machine's noise: median 1.007 of the engine
//! before, paired); a const-generic engine without the test was slower, the inliner leaving
//! the kernels' handlers out of line once there were two engines to inline them into. With a
//! timeline (and its bands of rows) a run takes about 1.5 times as long.
//!
//! Deciding moves ahead does not help: an experiment that decided every uncontended move ahead
//! (links keeping a bitmap of taken cycles, buffers the cycle each slot frees, consequences
//! followed through a work list: branch `engine-runahead`) reproduced the reference kernel's cycles
//! with 10× fewer events and was no faster, the bookkeeping per wavelet being the cost; and a link
//! several colors use (the ramp into a core) must be arbitrated cycle by cycle, or one color takes
//! several cycles in a row and round-robin breaks. Users who need speed over wavelet detail have
//! `kernel --fidelity model`, the cost model this engine validates.
//!
//! # Adding a kernel
//! Write a struct implementing [`Kernel`] (state per PE, flat arrays) and a function building
//! its [`Program`]: set the routes of each color on each PE, give the edge streams and initial
//! sends, then call [`run`]. See `kernels::collective` for the smallest examples.

pub mod counters;
pub mod event;
pub mod kernels;
mod pe;
pub mod program;
mod router;
mod sim;
pub mod timeline;

pub use counters::{MeshCounters, PeCounters};
pub use program::{ports, EdgeStream, Kernel, Mesh, Port, Program, Routes, TaskIo, Work};
pub use sim::{RunLimits, RunOutput};
pub use timeline::{Bucket, Timeline, Watch};

use crate::error::{Error, Result};
use crate::spec::FabricSpec;

/// Runs `program` with `kernel` on `fabric` to completion.
pub fn run<K: Kernel>(
    fabric: &FabricSpec,
    program: &Program,
    kernel: &mut K,
    limits: RunLimits,
) -> Result<RunOutput> {
    run_with(fabric, program, kernel, limits, &mut Watch::default())
}

/// [`run`], watched: `watch`'s progress hook is called while it runs and its timeline (if it
/// has one) records it, after the runs it watched before.
pub fn run_with<K: Kernel>(
    fabric: &FabricSpec,
    program: &Program,
    kernel: &mut K,
    limits: RunLimits,
    watch: &mut Watch,
) -> Result<RunOutput> {
    check_region(fabric, program.mesh.rows as u64, program.mesh.cols as u64)?;
    let mut engine = sim::Engine::new(fabric, program, kernel, limits)?;
    let timeline = watch.take_timeline();
    let progress = watch
        .progress
        .as_deref_mut()
        .map(|p| p as &mut dyn FnMut(u64));
    engine.watch(timeline, progress, watch.cycles_before);
    let (output, timeline) = engine.run()?;
    watch.end_run(output.cycles, timeline);
    Ok(output)
}

/// Refuses, before a kernel builds its program, a `mesh` the fabric's user region does not
/// hold or whose engine state with `colors` would pass `limits`: building a program allocates
/// per PE, so the same checks in [`run`] would come after an allocation that can abort.
pub fn check_mesh(fabric: &FabricSpec, mesh: Mesh, colors: u8, limits: RunLimits) -> Result<()> {
    check_region(fabric, mesh.rows as u64, mesh.cols as u64)?;
    sim::check_mesh_state(fabric, mesh, colors, limits)
}

/// Refuses a region (rows × columns) larger than the fabric's user region, saying by how much.
pub fn check_region(fabric: &FabricSpec, rows: u64, cols: u64) -> Result<()> {
    let g = &fabric.geometry;
    if rows == 0 || cols == 0 {
        return Err(Error::Input(format!(
            "--region {rows}x{cols}: a region has at least one PE"
        )));
    }
    if rows > g.region_height_pes || cols > g.region_width_pes {
        return Err(Error::Input(format!(
            "--region {rows}x{cols} (rows x columns) does not fit fabric {}'s user region of {}x{}: \
             {} rows and {} columns too many",
            fabric.name,
            g.region_height_pes,
            g.region_width_pes,
            rows.saturating_sub(g.region_height_pes),
            cols.saturating_sub(g.region_width_pes)
        )));
    }
    Ok(())
}
