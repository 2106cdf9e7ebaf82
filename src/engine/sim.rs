//! The engine's state (flat arrays indexed by PE or channel) and its event loop.
//!
//! A *channel* is one color at one PE: its router input buffer, its core queue (wavelets
//! delivered down the ramp, waiting for a task) and its route. Channel id = PE << color_shift |
//! color. A router's output *links* (N, E, S, W and the ramp down to the core) live in its PE's
//! state; the ramp up from each core and the link of each edge stream are kept apart.
//!
//! Layout follows what an event touches. A wavelet's hop reads its channel, its PE's state
//! (core scheduling and output links, one 64-byte line) and the next channel's occupancy; a
//! task's start reads the PE's state, the channel, its core queue's ring and the PE's task
//! counters (another line). Each of those structs is one cache line, so on the reference kernel
//! (1024 PEs) an event misses the first-level cache about three times (callgrind), not six.
//!
//! # Indexing on the event path
//! The hop's fast path (`Engine::pass_through`) and a task's start index the state arrays
//! without bounds checks ([`at`], [`at_mut`]): the checks were 9% of the instructions of a run.
//! Every such index is one of
//! - a PE id: an event's target or derived from a channel id, below `mesh.pes()`;
//! - a channel id `pe << color_shift | color` with `color` below the program's colors, below
//!   `ch.len()`: `Program::check` refuses edge streams and initial sends on any other PE or
//!   color, and `Engine::send_outputs` a task's send on any other color; a neighbour's channel
//!   exists because `Program::check` keeps every route inside the mesh;
//! - a ring slot `c << ring_shift | cq_offset | (i & slot_mask)` of such a channel, below
//!   `rings.len()`;
//! - a port of a route's outputs, below the five links of `PeState::links`: `Program::check`
//!   refuses route bits beyond the five ports;
//!
//! and `Engine::new` sizes `ch`, `pe`, `core` and `rings` from exactly those bounds. Debug
//! builds (`cargo test` without `--release`, which CI runs for the engine's tests) assert each
//! index; everything else in the engine indexes with checks.

use std::collections::VecDeque;

use super::counters::{MeshCounters, PeCounters};
use super::event::{Event, EventQueue};
use super::program::{Kernel, Mesh, Port, Program, TaskIo};
use super::timeline::{Timeline, PROGRESS_EVENTS};
use crate::error::{Error, Result};
use crate::spec::FabricSpec;

pub(super) const EV_TRY: u8 = 0;
pub(super) const EV_ARRIVE: u8 = 1;
/// A core's send reaches its router buffer without waiting in its send queue.
pub(super) const EV_ARRIVE_SENT: u8 = 2;
pub(super) const EV_WAKE: u8 = 3;
pub(super) const EV_INJECT: u8 = 4;

/// Channel flag: a TRY event is scheduled.
pub(super) const PENDING: u8 = 1;
/// Channel flag: the head waits for buffer space downstream; the pop downstream wakes it.
pub(super) const BLOCKED: u8 = 2;

pub(super) const NONE: u32 = u32::MAX;

/// One slot of a router buffer or a core queue: the wavelet's data, and `meta` packing a block's
/// length (0 for a single wavelet) in the top 16 bits and, in a core queue, the cycle the
/// wavelet reaches the core in the low 48 (a run stops before [`MAX_CYCLE`]).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Slot {
    pub data: u64,
    pub meta: u64,
}

/// Cycles a run may reach: arrival cycles are kept in 48 bits.
pub(super) const MAX_CYCLE: u64 = (1 << 48) - 1;

impl Slot {
    #[inline(always)]
    pub fn new(data: u64, count: u16, arrival: u64) -> Self {
        Self {
            data,
            meta: (count as u64) << 48 | arrival,
        }
    }

    #[inline(always)]
    pub fn count(&self) -> u16 {
        (self.meta >> 48) as u16
    }

    #[inline(always)]
    pub fn arrival(&self) -> u64 {
        self.meta & MAX_CYCLE
    }
}

/// Refuses a mesh whose engine state (per PE and per channel, with the router buffers' and
/// core queues' rings) would exceed `max_bytes` ([`RunLimits::max_state_bytes`]), saying how
/// much it would take; and channel ids beyond the 32 bits an event carries.
fn check_state_size(pes: usize, channels: usize, slot_shift: u32, max_bytes: u64) -> Result<()> {
    let per_pe = (size_of::<PeState>()
        + size_of::<CoreCounters>()
        + size_of::<PeCounters>()
        + size_of::<Link>()
        + size_of::<[u64; LINKS_PER_PE]>()) as u64;
    let per_channel = (size_of::<Channel>() + (size_of::<Slot>() << (slot_shift + 1))) as u64;
    let bytes = (pes as u64).saturating_mul(per_pe) + (channels as u64).saturating_mul(per_channel);
    if bytes > max_bytes || channels > u32::MAX as usize {
        return Err(Error::Input(format!(
            "{pes} PEs with {channels} channels need {:.1} GiB of engine state, more than the {:.1} \
             GiB a wavelet-level run may take; use a smaller region or --fidelity model",
            bytes as f64 / (1u64 << 30) as f64,
            max_bytes as f64 / (1u64 << 30) as f64
        )));
    }
    Ok(())
}

/// `items[i]` without a bounds check.
///
/// # Safety
/// `i < items.len()`: on the event path, see the module's "Indexing on the event path".
#[inline(always)]
pub(super) unsafe fn at<T>(items: &[T], i: usize) -> &T {
    debug_assert!(i < items.len(), "index {i} of {}", items.len());
    // SAFETY: the caller's contract.
    unsafe { items.get_unchecked(i) }
}

/// `&mut items[i]` without a bounds check.
///
/// # Safety
/// As [`at`].
#[inline(always)]
pub(super) unsafe fn at_mut<T>(items: &mut [T], i: usize) -> &mut T {
    debug_assert!(i < items.len(), "index {i} of {}", items.len());
    // SAFETY: the caller's contract.
    unsafe { items.get_unchecked_mut(i) }
}

/// The bit of `color` in a set of colors (colors are below 64: `Engine::new` refuses more).
#[inline(always)]
pub(super) fn color_bit(color: u8) -> u64 {
    1u64.wrapping_shl(color as u32)
}

/// Wavelets in a slot, an event or a send whose block length is `count` (0: a single wavelet).
#[inline]
pub(super) fn length(count: u16) -> u64 {
    count.max(1) as u64
}
/// Output links of a router: N, E, S, W and the ramp down (`Port as usize`).
pub(super) const LINKS_PER_PE: usize = 5;

/// A source of wavelets into one channel: a core's sends on one color (out of SRAM, so not
/// bounded) or an edge stream. One wavelet per cycle at most, over its link.
#[derive(Debug)]
pub(super) struct Injector<'p> {
    pub ch: u32,
    pub link: u32,
    pub color: u8,
    /// PE whose core sends (its link is that PE's ramp up, `Engine::ramp_up`), or `NONE` for an
    /// edge stream (its link is `Engine::edge_links[link]`).
    pub core_pe: u32,
    /// The port it enters its router by (the ramp, or the edge it comes from).
    pub port: Port,
    /// The input bit it waits under in its channel's `waiting` set when its buffer is full:
    /// the ramp for a core's sends; for an edge stream, the first input of the route that
    /// leads out of the mesh (where a pop has always looked for it).
    pub waits_as: u8,
    pub queue: SendQueue<'p>,
    pub pending: bool,
    pub blocked: bool,
    /// A block left last: the drain is due when its last wavelet has.
    pub drain_due: bool,
    pub blocked_since: u64,
    /// Wavelets it put into its router (counted into its PE's `wavelets_in` at the end).
    pub sent: u64,
}

/// What a send queue holds: a core's sends, or an edge stream read in place from the program
/// (its wavelets are all ready at cycle 0).
#[derive(Debug, Default)]
pub(super) struct SendQueue<'p> {
    /// (cycle ready, data, 0 for a wavelet or a block's length)
    sends: VecDeque<(u64, u64, u16)>,
    stream: &'p [u64],
    /// The first wavelet of `stream` not sent yet.
    next: usize,
}

impl<'p> SendQueue<'p> {
    pub fn stream(stream: &'p [u64]) -> Self {
        Self {
            stream,
            ..Self::default()
        }
    }

    #[inline]
    pub fn front(&self) -> Option<(u64, u64, u16)> {
        match self.stream.get(self.next) {
            Some(&data) => Some((0, data, 0)),
            None => self.sends.front().copied(),
        }
    }

    #[inline]
    pub fn pop_front(&mut self) {
        if self.next < self.stream.len() {
            self.next += 1;
        } else {
            self.sends.pop_front();
        }
    }

    pub fn push_back(&mut self, send: (u64, u64, u16)) {
        self.sends.push_back(send);
    }

    pub fn is_empty(&self) -> bool {
        self.next == self.stream.len() && self.sends.is_empty()
    }

    /// Wavelets not sent yet (a block counts its length).
    pub fn wavelets(&self) -> u64 {
        let sends: u64 = self.sends.iter().map(|&(_, _, count)| length(count)).sum();
        (self.stream.len() - self.next) as u64 + sends
    }
}

/// One color at one PE: its route, router buffer and core queue (rings in `Engine::rings`). One
/// cache line each.
#[derive(Debug, Clone, Copy)]
#[repr(align(64))]
pub(super) struct Channel {
    pub fifo_head: u32,
    pub fifo_len: u32,
    /// Slots taken: wavelets in the buffer and those in flight to it (what a sender checks).
    pub fifo_taken: u32,
    pub cq_head: u32,
    pub cq_len: u32,
    pub core_injector: u32,
    pub edge_injector: u32,
    pub route_in: u8,
    pub route_out: u8,
    pub flags: u8,
    /// Wavelets that left this buffer (each on every output of the route).
    pub sent: u64,
    /// The output whose full buffer a BLOCKED head waits for.
    pub blocked_port: u8,
    /// Inputs (bit = `Port as u8`) whose sender waits for space in this buffer: the neighbour's
    /// head, the core's send queue (the ramp) or an edge stream. A pop wakes them.
    pub waiting: u8,
    pub blocked_since: u64,
}

impl Default for Channel {
    fn default() -> Self {
        Self {
            fifo_head: 0,
            fifo_len: 0,
            fifo_taken: 0,
            cq_head: 0,
            cq_len: 0,
            core_injector: NONE,
            edge_injector: NONE,
            route_in: 0,
            route_out: 0,
            flags: 0,
            sent: 0,
            blocked_port: 0,
            waiting: 0,
            blocked_since: 0,
        }
    }
}

/// A core's scheduling state and its router's output links: one cache line, what a wavelet's
/// hop and a task's start both read.
#[derive(Debug, Clone, Copy, Default)]
#[repr(align(64))]
pub(super) struct PeState {
    /// Colors with wavelets in their core queue (a kernel has at most 32 colors).
    pub ready: u32,
    /// Colors whose head the kernel refused until the PE's state changes.
    pub deferred: u32,
    pub busy_until: u64,
    /// Earliest pending WAKE (`u64::MAX`: none).
    pub wake_at: u64,
    /// The output links N, E, S, W and the ramp down (`Port as usize`), each packed in a word:
    /// the cycle it is free from in the low 48 bits, the color it served last in bits 48..56,
    /// and in bit 63 whether colors wait for it (their set is in `Engine::link_waiters`).
    pub links: [u64; LINKS_PER_PE],
}

/// The counters a task's start and a stall update: one cache line per PE, folded into
/// [`PeCounters`] when the run ends.
#[derive(Debug, Clone, Copy, Default)]
#[repr(align(64))]
pub(super) struct CoreCounters {
    pub fmac_cycles: u64,
    pub overhead_cycles: u64,
    pub reduction_cycles: u64,
    pub fmac_ops: u64,
    pub tasks: u64,
    pub stall_cycles: u64,
    /// Wavelets the core sent straight into its router (not through a send queue).
    pub ramp_in: u64,
}

/// A link word's "colors wait for it" bit.
pub(super) const LINK_WAITING: u64 = 1 << 63;

/// The bit of `color` in a core's set of colors (`PeState::ready`, `deferred`).
#[inline(always)]
pub(super) fn ready_bit(color: u8) -> u32 {
    1u32.wrapping_shl(color as u32)
}

/// Whether `color` must let another color of `waiters` go first on a link that served `last`
/// last: a link serves the waiting colors round-robin, starting after the one it served last.
#[inline(always)]
pub(super) fn must_yield(waiters: u64, last: u8, color: u8) -> bool {
    let others = waiters & !color_bit(color);
    if others == 0 {
        return false;
    }
    let candidates = others | color_bit(color);
    let after = (last as u32 + 1) % 64;
    let rotated = candidates.rotate_right(after);
    let winner = (rotated.trailing_zeros() + after) % 64;
    winner != color as u32
}

/// One direction of one link (a ramp up or an edge stream's way in): free from cycle `free`,
/// colors waiting for it, the last served.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Link {
    pub free: u64,
    pub waiters: u64,
    pub last: u8,
    /// For a PE's ramp up: sends waiting in the PE's core send queues, of any color. While
    /// there are some, a new send must queue too rather than book the link ahead of them.
    pub queued: u32,
}

impl Link {
    #[inline(always)]
    pub fn must_yield(&self, color: u8) -> bool {
        must_yield(self.waiters, self.last, color)
    }

    /// Gives the link to `color` for `wavelets` cycles from `now`.
    #[inline(always)]
    pub fn take(&mut self, color: u8, now: u64, wavelets: u64) {
        self.free = now.wrapping_add(wavelets);
        self.last = color;
        self.waiters &= !color_bit(color);
    }
}

/// Limits that turn a runaway program into an error instead of a hang.
#[derive(Debug, Clone, Copy)]
pub struct RunLimits {
    /// Cycles without any task starting, running or ending, or wavelet reaching a core, before
    /// the run is declared stuck (a livelock). A safety net: route loops, the one way wavelets
    /// could move without end, are refused by `Program::check`, and multicast colors whose
    /// link turns point around a circle are let go (`Engine::breaks_stalemate`); no program the
    /// random-program test builds reaches it.
    pub progress_timeout_cycles: u64,
    /// Most bytes of state (per PE, per channel and their buffers) a run may allocate.
    pub max_state_bytes: u64,
}

impl Default for RunLimits {
    fn default() -> Self {
        Self {
            progress_timeout_cycles: 1 << 20,
            max_state_bytes: 16 << 30,
        }
    }
}

/// What a run produced, beyond the kernel's own state.
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub cycles: u64,
    pub counters: MeshCounters,
    /// Wavelets injected by cores and edge streams (each counted once at its source).
    pub wavelets_sent: u64,
    /// Wavelets delivered to cores (a multicast wavelet counts once per destination).
    pub wavelets_received: u64,
    /// Router-to-router link traversals.
    pub wavelet_hops: u64,
    pub events: u64,
}

pub struct Engine<'k, K: Kernel> {
    pub(super) kernel: &'k mut K,
    pub(super) mesh: Mesh,
    /// Channel id = PE << color_shift | color (colors padded to a power of two: no division).
    pub(super) color_shift: u32,
    pub(super) color_mask: u32,
    /// The program's colors: a task's send on another is refused (`Engine::send_outputs`).
    pub(super) colors: u8,
    pub(super) depth: u32,
    /// Buffers are rings of `slot_mask + 1` slots (a power of two ≥ depth), indexed without
    /// division; a channel's two rings start at slot `c << ring_shift`, its core queue
    /// `cq_offset` slots later.
    pub(super) ring_shift: u32,
    pub(super) cq_offset: usize,
    pub(super) slot_mask: u32,
    pub(super) hop_cycles: u64,
    pub(super) ramp_cycles: u64,
    pub(super) limits: RunLimits,
    /// Channel state (one color at one PE), indexed by channel id.
    pub(super) ch: Vec<Channel>,
    /// The two rings of every channel, `1 << slot_shift` slots each: the router buffer, then
    /// the core queue.
    pub(super) rings: Vec<Slot>,
    pub(super) pe: Vec<PeState>,
    /// Per PE, the counters of its links (the rest are in `core`).
    pub(super) counters: Vec<PeCounters>,
    pub(super) core: Vec<CoreCounters>,
    /// The colors waiting for each output link of each router (see `PeState::links`).
    pub(super) link_waiters: Vec<[u64; LINKS_PER_PE]>,
    /// PE id offset of the neighbour through N, E, S, W.
    pub(super) offsets: [u32; 4],
    /// The ramp up from each core to its router.
    pub(super) ramp_up: Vec<Link>,
    /// The link of each edge stream into its PE.
    pub(super) edge_links: Vec<Link>,
    pub(super) injectors: Vec<Injector<'k>>,
    pub(super) queue: EventQueue,
    pub(super) io: TaskIo,
    pub(super) error: Option<Error>,
    pub(super) last_progress_cycle: u64,
    pub(super) wavelets_sent: u64,
    pub(super) wavelets_received: u64,
    pub(super) wavelet_hops: u64,
    /// What the run records per bucket of time (switched off unless a caller asked; then the
    /// event path tests one flag per task and per move, and calls nothing).
    pub(super) timeline: Timeline,
    /// The caller's progress hook, with the cycles of the runs before this one.
    progress: Option<&'k mut dyn FnMut(u64)>,
    progress_base_cycles: u64,
    /// Events after which the hook is called next (`u64::MAX` without one).
    progress_next_events: u64,
}

/// Channel ids per PE (`colors` padded to a power of two) and ring slots per buffer (the
/// fabric's buffer depth padded likewise), as exponents: how `Engine::new` lays out its state.
fn state_shifts(fabric: &FabricSpec, colors: u8) -> (u32, u32) {
    let color_shift = (colors as usize).next_power_of_two().trailing_zeros();
    let depth = fabric.router.color_buffer_depth_wavelets as u32;
    (color_shift, depth.next_power_of_two().trailing_zeros())
}

/// Refuses a `mesh` with `colors` whose engine state would pass `limits.max_state_bytes`,
/// before anything is allocated for it (a kernel calls this before building its program,
/// which allocates per PE too).
pub(super) fn check_mesh_state(
    fabric: &FabricSpec,
    mesh: Mesh,
    colors: u8,
    limits: RunLimits,
) -> Result<()> {
    let (color_shift, slot_shift) = state_shifts(fabric, colors);
    let pes = mesh.pes();
    let channels = pes.saturating_mul(1 << color_shift);
    check_state_size(pes, channels, slot_shift, limits.max_state_bytes)
}

impl<'k, K: Kernel> Engine<'k, K> {
    /// Builds the engine for `program` on `fabric`; refuses programs that break the fabric's
    /// limits (colors) or leave the mesh.
    pub fn new(
        fabric: &FabricSpec,
        program: &'k Program,
        kernel: &'k mut K,
        limits: RunLimits,
    ) -> Result<Self> {
        program.check(fabric.usable_colors())?;
        let mesh = program.mesh;
        let pes = mesh.pes();
        let colors = program.routes.colors as usize;
        if colors > 32 {
            return Err(Error::Input(format!(
                "a kernel may use at most 32 colors, not {colors}"
            )));
        }
        check_mesh_state(fabric, mesh, colors as u8, limits)?;
        let (color_shift, slot_shift) = state_shifts(fabric, colors as u8);
        let stride = 1usize << color_shift;
        let channels = pes * stride;
        let depth = fabric.router.color_buffer_depth_wavelets as u32;
        let mut ch = vec![Channel::default(); channels];
        for i in 0..pes * colors {
            let c = &mut ch[(i / colors) << color_shift | (i % colors)];
            c.route_in = program.routes.inputs[i];
            c.route_out = program.routes.outputs[i];
        }
        let mut engine = Self {
            kernel,
            mesh,
            color_shift,
            color_mask: (stride - 1) as u32,
            colors: program.routes.colors,
            depth,
            ring_shift: slot_shift + 1,
            cq_offset: 1 << slot_shift,
            slot_mask: (1u32 << slot_shift) - 1,
            hop_cycles: fabric.router.hop_latency_cycles,
            ramp_cycles: fabric.router.ramp_latency_cycles,
            limits,
            ch,
            rings: vec![Slot::default(); (channels * 2) << slot_shift],
            pe: vec![
                PeState {
                    wake_at: u64::MAX,
                    ..PeState::default()
                };
                pes
            ],
            counters: vec![PeCounters::default(); pes],
            core: vec![CoreCounters::default(); pes],
            link_waiters: vec![[0; LINKS_PER_PE]; pes],
            offsets: [mesh.cols.wrapping_neg(), 1, mesh.cols, u32::MAX],
            ramp_up: vec![Link::default(); pes],
            edge_links: vec![Link::default(); program.edge_streams.len()],
            injectors: Vec::new(),
            queue: EventQueue::new(),
            io: TaskIo::default(),
            error: None,
            last_progress_cycle: 0,
            wavelets_sent: 0,
            wavelets_received: 0,
            wavelet_hops: 0,
            timeline: Timeline::default(),
            progress: None,
            progress_base_cycles: 0,
            progress_next_events: u64::MAX,
        };
        for (i, stream) in program.edge_streams.iter().enumerate() {
            let ch = engine.channel(stream.pe, stream.color);
            if engine.ch[ch as usize].route_in & stream.port.bit() == 0 {
                let (r, c) = mesh.coords(stream.pe);
                return Err(Error::Simulation(format!(
                    "edge stream of color {} enters PE ({r}, {c}) through {:?}, which its route does not accept",
                    stream.color, stream.port
                )));
            }
            if engine.ch[ch as usize].edge_injector != NONE {
                let (r, c) = mesh.coords(stream.pe);
                return Err(Error::Simulation(format!(
                    "two edge streams feed color {} at PE ({r}, {c}); its buffer takes one",
                    stream.color
                )));
            }
            let inj = engine.new_injector(ch, i as u32, stream.color, NONE, stream.port);
            engine.ch[ch as usize].edge_injector = inj;
            let off_mesh = [Port::N, Port::E, Port::S, Port::W]
                .into_iter()
                .filter(|&p| mesh.neighbor(stream.pe, p).is_none())
                .fold(0, |bits, p| bits | p.bit());
            let first = engine.ch[ch as usize].route_in & off_mesh;
            engine.injectors[inj as usize].waits_as = first & first.wrapping_neg();
            let queue = &mut engine.injectors[inj as usize];
            queue.queue = SendQueue::stream(&stream.wavelets);
            if !stream.wavelets.is_empty() {
                queue.pending = true;
                engine.schedule(0, EV_INJECT, inj, 0);
            }
        }
        for (pe, color, wavelets) in &program.initial_sends {
            for &w in wavelets {
                engine.core_send(*pe, *color, 0, w, 0);
            }
        }
        for &(pe, color, tag, mut wavelets) in &program.initial_blocks {
            while wavelets > 0 {
                let count = wavelets.min(u16::MAX as u64) as u16;
                engine.core_send(pe, color, 0, tag, count);
                wavelets -= count as u64;
            }
        }
        match engine.error.take() {
            Some(error) => Err(error),
            None => Ok(engine),
        }
    }

    // Index arithmetic on the event path wraps instead of checking for overflow: every index
    // is bounded by the mesh (PE ids < 2^32, channel ids < 2^37, ring slots < 2^17 per channel)
    // and is bounds-checked where it is used, so a check on the sum only repeats that one. So
    // do the send path's cycle sums of a hop, the ramp or a block's length: `run` stops before
    // MAX_CYCLE - 2^20, so they stay inside the 48 bits a slot or a link word keeps. Counters
    // keep their checks.

    /// The neighbour of `pe` through port index `port` (N, E, S, W), or `None` at the edge.
    pub(super) fn next_pe(&self, pe: u32, port: u32) -> Option<u32> {
        self.mesh.neighbor(pe, Port::from_index(port))
    }

    /// The channel of `color` at the neighbour of `pe` through `port` (N, E, S, W), where a
    /// route leads: `Program::check` keeps routes inside the mesh.
    #[inline(always)]
    pub(super) fn next_channel(&self, pe: usize, port: u32, color: u8) -> usize {
        let next = (pe as u32).wrapping_add(self.offsets[(port & 3) as usize]);
        (next.wrapping_shl(self.color_shift) | color as u32) as usize
    }

    /// When `color` may take output `port` of router `pe`: `now` if the link is free and it is
    /// this color's turn, else the cycle to try again.
    #[inline(always)]
    pub(super) fn link_ready(&self, pe: usize, port: usize, color: u8, now: u64) -> u64 {
        let link = self.pe[pe].links[port];
        let free = link & MAX_CYCLE;
        if free > now {
            free
        } else if link & LINK_WAITING != 0
            && must_yield(self.link_waiters[pe][port], (link >> 48) as u8, color)
        {
            now + 1
        } else {
            now
        }
    }

    /// Gives output `port` of router `pe` to `color` for `wavelets` cycles from `now`.
    #[inline(always)]
    pub(super) fn take_link(&mut self, pe: usize, port: usize, color: u8, now: u64, wavelets: u64) {
        let link = &mut self.pe[pe].links[port];
        // A run stops well before MAX_CYCLE minus a block's length (see `run`).
        *link = (*link & LINK_WAITING) | (color as u64) << 48 | now.wrapping_add(wavelets);
        if *link & LINK_WAITING != 0 {
            self.stop_waiting(pe, port, color);
        }
    }

    /// `color` waits for output `port` of router `pe`.
    pub(super) fn wait_for_link(&mut self, pe: usize, port: usize, color: u8) {
        self.link_waiters[pe][port] |= color_bit(color);
        self.pe[pe].links[port] |= LINK_WAITING;
    }

    /// `color` no longer waits for output `port` of router `pe`.
    pub(super) fn stop_waiting(&mut self, pe: usize, port: usize, color: u8) {
        let waiters = &mut self.link_waiters[pe][port];
        *waiters &= !color_bit(color);
        if *waiters == 0 {
            self.pe[pe].links[port] &= !LINK_WAITING;
        }
    }

    /// Whether colors wait for output `port` of router `pe`.
    #[inline(always)]
    pub(super) fn link_has_waiters(&self, pe: usize, port: usize) -> bool {
        self.pe[pe].links[port] & LINK_WAITING != 0
    }

    /// The link a send queue enters its router by.
    #[inline]
    pub(super) fn injector_link(&mut self, core_pe: u32, link: u32) -> &mut Link {
        if core_pe == NONE {
            &mut self.edge_links[link as usize]
        } else {
            &mut self.ramp_up[core_pe as usize]
        }
    }

    /// Slot `index` of channel `c`'s router buffer.
    #[inline(always)]
    pub(super) fn fifo_slot(&self, c: usize, index: u32) -> usize {
        c.wrapping_shl(self.ring_shift) | index as usize
    }

    /// Slot `index` of channel `c`'s core queue.
    #[inline(always)]
    pub(super) fn cq_slot(&self, c: usize, index: u32) -> usize {
        c.wrapping_shl(self.ring_shift) | self.cq_offset | index as usize
    }

    #[inline]
    pub(super) fn channel(&self, pe: u32, color: u8) -> u32 {
        pe.wrapping_shl(self.color_shift) | color as u32
    }

    #[inline]
    pub(super) fn schedule(&mut self, cycle: u64, kind: u8, target: u32, data: u64) {
        self.schedule_block(cycle, kind, target, data, 0);
    }

    /// Schedules an event that moves a block of `count` wavelets (0: a single wavelet).
    #[inline]
    pub(super) fn schedule_block(
        &mut self,
        cycle: u64,
        kind: u8,
        target: u32,
        data: u64,
        count: u16,
    ) {
        self.queue.push(
            cycle,
            Event {
                kind,
                count,
                target,
                data,
            },
        );
    }

    /// Records into `timeline` and calls `progress` (with `base_cycles` added to the cycle
    /// reached) every [`PROGRESS_EVENTS`] events while the run runs.
    pub fn watch(
        &mut self,
        timeline: Timeline,
        progress: Option<&'k mut dyn FnMut(u64)>,
        base_cycles: u64,
    ) {
        self.timeline = timeline;
        if self.timeline.on {
            self.timeline.start_run(self.mesh.rows, self.mesh.cols);
        }
        if progress.is_some() {
            self.progress_next_events = PROGRESS_EVENTS;
        }
        self.progress = progress;
        self.progress_base_cycles = base_cycles;
    }

    /// Calls the progress hook: `events` have run, up to cycle `now`.
    #[cold]
    fn report_progress(&mut self, now: u64, events: u64) {
        self.progress_next_events = events + PROGRESS_EVENTS;
        if let Some(progress) = &mut self.progress {
            progress(self.progress_base_cycles + now);
        }
    }

    /// Runs to completion: every source drained, every wavelet consumed, the kernel expecting
    /// nothing more. A program that stops short is reported with its stuck PEs and colors.
    /// Returns the timeline it was given to record into, with this run recorded.
    pub fn run(mut self) -> Result<(RunOutput, Timeline)> {
        let mut spare = Vec::new();
        let mut events = 0u64;
        loop {
            let batch = self.queue.take_current(spare);
            if batch.is_empty() {
                spare = batch;
                if !self.queue.advance() {
                    break;
                }
                let now = self.queue.now();
                if now > MAX_CYCLE - (1 << 20) {
                    // Arrival cycles (now + ramp latency, at most 1000) and link free cycles
                    // (now + a block's length, at most 2^16) must fit in 48 bits.
                    return Err(self.stuck_error(&format!(
                        "the run reached cycle {now}, beyond the engine's limit of 2^48 cycles"
                    )));
                }
                if now.saturating_sub(self.last_progress_cycle)
                    > self.limits.progress_timeout_cycles
                {
                    // A task still running (or just ended) is progress too.
                    let busy = self.pe.iter().map(|p| p.busy_until).max().unwrap_or(0);
                    self.last_progress_cycle = self.last_progress_cycle.max(busy);
                    if now.saturating_sub(self.last_progress_cycle)
                        > self.limits.progress_timeout_cycles
                    {
                        return Err(self.stuck_error(&format!(
                            "no task started and no wavelet reached a core for {} cycles (cycle \
                             {now}): wavelets keep retrying links and buffers without moving (a \
                             livelock)",
                            self.limits.progress_timeout_cycles
                        )));
                    }
                }
                continue;
            }
            events += batch.len() as u64;
            let now = self.queue.now();
            for ev in &batch {
                self.handle(*ev, now);
            }
            if let Some(e) = self.error.take() {
                return Err(e);
            }
            spare = batch;
            spare.clear();
            if events >= self.progress_next_events {
                self.report_progress(now, events);
            }
        }
        if !self.is_quiescent() || !self.kernel.expected().is_empty() {
            return Err(self.stuck_error("deadlock: no event left to run"));
        }
        let cycles = self
            .pe
            .iter()
            .map(|p| p.busy_until)
            .max()
            .unwrap_or(0)
            .max(self.queue.now());
        self.count_link_inputs();
        for (counters, core) in self.counters.iter_mut().zip(&self.core) {
            counters.fmac_cycles = core.fmac_cycles;
            counters.overhead_cycles = core.overhead_cycles;
            counters.reduction_cycles = core.reduction_cycles;
            counters.fmac_ops = core.fmac_ops;
            counters.tasks = core.tasks;
            counters.stall_cycles = core.stall_cycles;
            counters.wavelets_in[Port::Ramp as usize] += core.ramp_in;
        }
        for inj in &self.injectors {
            let pe = inj.ch.wrapping_shr(self.color_shift) as usize;
            self.counters[pe].wavelets_in[inj.port as usize] += inj.sent;
        }
        let output = RunOutput {
            cycles,
            counters: MeshCounters {
                rows: self.mesh.rows,
                cols: self.mesh.cols,
                cycles,
                pes: self.counters,
            },
            wavelets_sent: self.wavelets_sent,
            wavelets_received: self.wavelets_received,
            wavelet_hops: self.wavelet_hops,
            events,
        };
        Ok((output, self.timeline))
    }

    #[inline]
    fn handle(&mut self, ev: Event, now: u64) {
        match ev.kind {
            EV_TRY => self.try_forward(ev.target, now),
            EV_ARRIVE => self.arrive(ev.target, ev.data, ev.count, now),
            EV_ARRIVE_SENT => self.arrive_sent(ev.target, ev.data, ev.count, now),
            EV_WAKE => self.wake(ev.target, now),
            _ => self.inject(ev.target, now),
        }
    }

    /// Per-port counts from the channels' send counts and their static routes: what each PE
    /// sent through each port, hence what its neighbours received, the hops and the deliveries.
    fn count_link_inputs(&mut self) {
        for (c, channel) in self.ch.iter().enumerate() {
            let pe = c.wrapping_shr(self.color_shift);
            for port in Port::ALL {
                if channel.route_out & port.bit() != 0 {
                    self.counters[pe].wavelets_out[port as usize] += channel.sent;
                    if port == Port::Ramp {
                        self.wavelets_received += channel.sent;
                    } else {
                        self.wavelet_hops += channel.sent;
                    }
                }
            }
        }
        for pe in 0..self.counters.len() as u32 {
            for port in [Port::N, Port::E, Port::S, Port::W] {
                if let Some(next) = self.next_pe(pe, port as u32) {
                    let sent = self.counters[pe as usize].wavelets_out[port as usize];
                    self.counters[next as usize].wavelets_in[port.opposite() as usize] += sent;
                }
            }
        }
    }

    fn is_quiescent(&self) -> bool {
        self.ch.iter().all(|c| c.fifo_len == 0 && c.cq_len == 0)
            && self.injectors.iter().all(|i| i.queue.is_empty())
    }

    /// An error naming what is stuck: wavelets in router buffers, core queues and send queues,
    /// and the (PE, color) pairs the kernel still expects wavelets on.
    fn stuck_error(&self, what: &str) -> Error {
        const SHOWN: usize = 12;
        let mut stuck: Vec<String> = Vec::new();
        let mut count = 0usize;
        let mut note = |text: String| {
            if stuck.len() < SHOWN {
                stuck.push(text);
            }
            count += 1;
        };
        for ch in 0..self.ch.len() as u32 {
            let (r, c) = self.mesh.coords(ch >> self.color_shift);
            let color = ch & self.color_mask;
            let channel = self.ch[ch as usize];
            // Wavelets, a block counting its length.
            let wavelets = |head: u32, len: u32, slot: &dyn Fn(u32) -> usize| -> u64 {
                (0..len)
                    .map(|i| length(self.rings[slot((head + i) & self.slot_mask)].count()))
                    .sum()
            };
            if channel.fifo_len > 0 {
                note(format!(
                    "PE ({r}, {c}) color {color}: {} wavelets in the router buffer",
                    wavelets(channel.fifo_head, channel.fifo_len, &|i| self
                        .fifo_slot(ch as usize, i))
                ));
            }
            if channel.cq_len > 0 {
                note(format!(
                    "PE ({r}, {c}) color {color}: {} wavelets waiting for a task",
                    wavelets(channel.cq_head, channel.cq_len, &|i| self
                        .cq_slot(ch as usize, i))
                ));
            }
        }
        for inj in &self.injectors {
            if !inj.queue.is_empty() {
                let (r, c) = self.mesh.coords(inj.ch >> self.color_shift);
                let source = if inj.core_pe == NONE {
                    "edge stream"
                } else {
                    "core sends"
                };
                let wavelets = inj.queue.wavelets();
                note(format!(
                    "PE ({r}, {c}) color {}: {wavelets} wavelets of its {source} not sent",
                    inj.color
                ));
            }
        }
        for (pe, color) in self.kernel.expected() {
            let (r, c) = self.mesh.coords(pe);
            note(format!(
                "PE ({r}, {c}) color {color}: still expects wavelets"
            ));
        }
        let more = if count > SHOWN {
            format!("; and {} more", count - SHOWN)
        } else {
            String::new()
        };
        Error::Simulation(format!("{what}; stuck: {}{more}", stuck.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mesh_whose_state_would_not_fit_is_refused_with_its_size() {
        let limit = RunLimits::default().max_state_bytes;
        // A full WSE-2 region with 4 colors and buffers of 4 fits easily.
        assert!(check_state_size(745_500, 745_500 * 4, 2, limit).is_ok());
        // 2^26 PEs with 4 colors would take tens of GiB.
        let err = check_state_size(1 << 26, 1 << 28, 2, limit).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("GiB of engine state"), "{err}");
    }
}
