//! Routers: per-color input buffers, static multicast routes, one wavelet per cycle per link
//! direction, round-robin between colors, credit-based back-pressure.
//!
//! A wavelet at the head of a channel's buffer moves when *every* output of its route can take
//! it in the same cycle: each output link is free this cycle (and it is this color's turn on
//! the link), and each downstream buffer (the neighbour's buffer of the same color, or the
//! core queue for the ramp) has a free slot, counting wavelets already in flight to it. It then
//! reaches a neighbour `hop_latency_cycles` later and its core `ramp_latency_cycles` later. A
//! head that finds no space waits, and the pop that frees the space wakes it. Each link serves
//! the colors waiting for it round-robin on its own; when that leaves every color waiting at a
//! router with free links but no turn on all of them, the lowest-numbered goes
//! ([`Engine::breaks_stalemate`]), so a multicast never waits for ever.

use super::event::Event;
use super::program::Port;
use super::sim::{
    at, at_mut, color_bit, length, must_yield, ready_bit, Engine, Slot, BLOCKED, EV_ARRIVE,
    EV_INJECT, EV_TRY, EV_WAKE, LINK_WAITING, MAX_CYCLE, PENDING,
};
use crate::engine::program::Kernel;
use crate::error::Error;

impl<K: Kernel> Engine<'_, K> {
    // The hot path (a wavelet's hop) borrows each channel and each PE's links once and keeps
    // what it read in locals: the arrays live behind `self`, so every write through one would
    // otherwise make the compiler reload and re-check the others.

    /// A wavelet (or a block's first wavelet) lands in channel `ch`'s buffer (its slot was
    /// reserved when it was sent).
    pub(super) fn arrive(&mut self, ch: u32, data: u64, count: u16, now: u64) {
        debug_assert!(
            self.ch[ch as usize].fifo_taken > self.ch[ch as usize].fifo_len,
            "an arrival has its reserved slot"
        );
        if !self.pass_through(ch, data, count, now) {
            self.fifo_push(ch, data, count, now);
        }
    }

    /// The common hop, in one pass: a wavelet (or block) reaching an empty buffer whose every
    /// output link is free, with no other color waiting for it, and whose every destination
    /// has room, moves on in this cycle. Exactly what `fifo_push` → `forward` → `send_head` →
    /// `deliver` do in that case, over state read once into locals (calling `deliver` instead
    /// costs 3.5% more instructions on the reference kernel: keep the two in step). Returns
    /// false, having changed nothing, in any other case, which the general path handles.
    #[inline(always)]
    fn pass_through(&mut self, ch: u32, data: u64, count: u16, now: u64) -> bool {
        let c = ch as usize;
        let (shift, depth) = (self.color_shift, self.depth);
        let p = ch.wrapping_shr(shift) as usize;
        let color = (ch & self.color_mask) as u8;
        let Self {
            ch: chans,
            pe: states,
            rings,
            queue,
            offsets,
            ring_shift,
            cq_offset,
            slot_mask,
            hop_cycles,
            ramp_cycles,
            last_progress_cycle,
            timeline,
            ..
        } = self;
        // SAFETY: `c` is an arrival's channel, `p` its PE and `n` below the channel of a
        // neighbour the route leads to, the slot one of `c`'s core queue (see sim's "Indexing
        // on the event path").
        let chan = unsafe { at(chans, c) };
        let out = chan.route_out;
        if chan.fifo_len != 0 || chan.flags & (PENDING | BLOCKED) != 0 || out == 0 {
            return false;
        }
        let state = unsafe { at(states, p) };
        // A link is free for it: free this cycle and no other color waiting for it.
        let free = |link: u64| link & MAX_CYCLE <= now && link & LINK_WAITING == 0;
        let ramp = out & Port::Ramp.bit() != 0;
        if ramp && (chan.cq_len >= depth || !free(state.links[Port::Ramp as usize])) {
            return false;
        }
        // The neighbour's channel behind each port (recomputed on the way out: cheaper than
        // keeping them).
        let neighbour = |port: u32| {
            ((p as u32)
                .wrapping_add(offsets[(port & 3) as usize])
                .wrapping_shl(shift)
                | color as u32) as usize
        };
        // Each neighbour's link free and buffer with room (the common route has one).
        let mesh = out & !Port::Ramp.bit();
        let mut bits = mesh;
        while bits != 0 {
            let port = bits.trailing_zeros();
            bits &= bits - 1;
            // SAFETY: `Program::check` keeps route bits to the five ports.
            let link = unsafe { *at(&state.links, port as usize) };
            if !free(link) || unsafe { at(chans, neighbour(port)) }.fifo_taken >= depth {
                return false;
            }
        }
        // It moves: the links and the neighbours' buffers (port order), then the core.
        let wavelets = length(count);
        let word = (color as u64) << 48 | now.wrapping_add(wavelets);
        let state = unsafe { at_mut(states, p) };
        if ramp {
            state.links[Port::Ramp as usize] = word;
        }
        let at = now.wrapping_add(*hop_cycles);
        let mut bits = mesh;
        while bits != 0 {
            let port = bits.trailing_zeros();
            bits &= bits - 1;
            // SAFETY: as above.
            *unsafe { at_mut(&mut state.links, port as usize) } = word;
            let n = neighbour(port);
            let down = unsafe { at_mut(chans, n) };
            down.fifo_taken = down.fifo_taken.wrapping_add(1);
            queue.push(
                at,
                Event {
                    kind: EV_ARRIVE,
                    count,
                    target: n as u32,
                    data,
                },
            );
        }
        if timeline.on {
            timeline.record_moves(p as u32, now, out, wavelets);
        }
        let chan = unsafe { at_mut(chans, c) };
        // Its slot, taken when it was sent, is free again.
        chan.fifo_taken = chan.fifo_taken.wrapping_sub(1);
        // At most one wavelet a cycle leaves a buffer: fewer than the run's cycles (< 2^48).
        chan.sent = chan.sent.wrapping_add(wavelets);
        if ramp {
            let index = chan.cq_head.wrapping_add(chan.cq_len) & *slot_mask;
            chan.cq_len = chan.cq_len.wrapping_add(1);
            let arrival = now.wrapping_add(*ramp_cycles);
            let slot = c.wrapping_shl(*ring_shift) | *cq_offset | index as usize;
            *unsafe { at_mut(rings, slot) } = Slot::new(data, count, arrival);
            state.ready |= ready_bit(color);
            *last_progress_cycle = arrival;
            let wake = arrival.max(state.busy_until);
            if wake < state.wake_at {
                state.wake_at = wake;
                queue.push(
                    wake,
                    Event {
                        kind: EV_WAKE,
                        count: 0,
                        target: p as u32,
                        data: 0,
                    },
                );
            }
        }
        if chan.waiting != 0 {
            self.wake_upstream(ch, p as u32, color, now);
        }
        true
    }

    /// Appends to the buffer of `ch` and starts forwarding if the wavelet is the head.
    #[inline]
    pub(super) fn fifo_push(&mut self, ch: u32, data: u64, count: u16, now: u64) {
        let chan = &self.ch[ch as usize];
        if chan.fifo_len == 0 && chan.flags & (PENDING | BLOCKED) == 0 {
            // The head of an empty buffer: it moves on in this cycle or takes its slot.
            return self.forward(ch, Some(Slot::new(data, count, 0)), now);
        }
        self.buffer(ch as usize, Slot::new(data, count, 0));
    }

    /// Puts `slot` at the tail of channel `c`'s buffer.
    #[inline(always)]
    fn buffer(&mut self, c: usize, slot: Slot) {
        let chan = &mut self.ch[c];
        let index = chan.fifo_head.wrapping_add(chan.fifo_len) & self.slot_mask;
        // Bounded by the depth: a slot was free (checked before the send).
        chan.fifo_len = chan.fifo_len.wrapping_add(1);
        let at = self.fifo_slot(c, index);
        self.rings[at] = slot;
    }

    /// Tries to move the head of channel `ch` to every output of its route.
    pub(super) fn try_forward(&mut self, ch: u32, now: u64) {
        self.forward(ch, None, now);
    }

    /// Tries to move the head of channel `ch`'s buffer to every output of its route; with
    /// `incoming`, the buffer is empty and `incoming` is its head, which goes straight through
    /// (cut-through) or, if it cannot move now, takes its slot.
    #[inline(always)]
    fn forward(&mut self, ch: u32, incoming: Option<Slot>, now: u64) {
        let c = ch as usize;
        let pe = ch.wrapping_shr(self.color_shift) as usize;
        let color = (ch & self.color_mask) as u8;
        let depth = self.depth;
        let chan = &mut self.ch[c];
        chan.flags &= !PENDING;
        if chan.fifo_len == 0 && incoming.is_none() {
            return;
        }
        let out = chan.route_out;
        let ramp_full = chan.cq_len >= depth;
        if let Some(slot) = incoming {
            if out == 0 {
                self.buffer(c, slot);
                return self.no_route(pe as u32, color);
            }
        } else if out == 0 {
            return self.no_route(pe as u32, color);
        }
        // Links: free this cycle, and this color's turn.
        let mut retry = now;
        let mut bits = out;
        while bits != 0 {
            let port = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            retry = retry.max(self.link_ready(pe, port, color, now));
        }
        if retry == now + 1 && self.breaks_stalemate(pe, color, out, now) {
            retry = now;
        }
        if retry > now {
            if let Some(slot) = incoming {
                self.buffer(c, slot);
            }
            self.wait_for_links(pe, color, out, retry, now);
            self.ch[c].flags |= PENDING;
            self.schedule(retry, EV_TRY, ch, 0);
            return;
        }
        // Space downstream, in port order (the ramp last); the neighbours' channels are kept
        // for the send.
        let mut next = [0u32; 4];
        let mut hops = 0;
        let mut bits = out & !Port::Ramp.bit();
        while bits != 0 {
            let port = bits.trailing_zeros();
            bits &= bits - 1;
            let n = self.next_channel(pe, port, color);
            let down = &self.ch[n];
            if down.fifo_taken >= depth {
                if let Some(slot) = incoming {
                    self.buffer(c, slot);
                }
                return self.block_head(c, pe, color, out, port, now);
            }
            next[hops % 4] = n as u32;
            // At most four neighbours.
            hops = hops.wrapping_add(1);
        }
        if out & Port::Ramp.bit() != 0 && ramp_full {
            if let Some(slot) = incoming {
                self.buffer(c, slot);
            }
            return self.block_head(c, pe, color, out, Port::Ramp as u32, now);
        }
        self.send_head(ch, pe, color, out, &next[..hops.min(4)], incoming, now);
    }

    /// Whether `color`, which must let another color go first on a link of `out`, goes anyway
    /// because the colors waiting at router `pe` are in a stalemate: every link any of them
    /// needs is free, yet each must yield on one of its links to another (each link serves its
    /// waiting colors round-robin on its own, so turns can point around a circle and no
    /// multicast ever goes). Then the lowest-numbered of them goes. In any other case (one of
    /// them can go, or one waits for a busy link) the turns stand.
    #[cold]
    fn breaks_stalemate(&self, pe: usize, color: u8, out: u8, now: u64) -> bool {
        let mut waiters = self.link_waiters[pe];
        let mut bits = out;
        while bits != 0 {
            let port = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if self.pe[pe].links[port] & MAX_CYCLE > now {
                // It waits for a busy link itself.
                return false;
            }
            waiters[port] |= color_bit(color);
        }
        let mut candidates = waiters.iter().fold(0, |all, &w| all | w);
        let lowest = candidates.trailing_zeros() as u8;
        while candidates != 0 {
            let other = candidates.trailing_zeros() as u8;
            candidates &= candidates - 1;
            let route = self.ch[self.channel(pe as u32, other) as usize].route_out;
            let mut wins = true;
            let mut bits = route;
            while bits != 0 {
                let port = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let link = self.pe[pe].links[port];
                if link & MAX_CYCLE > now {
                    return false;
                }
                wins &= !must_yield(waiters[port], (link >> 48) as u8, other);
            }
            if wins {
                return false;
            }
        }
        lowest == color
    }

    /// The head of channel `c` waits for space in the buffer behind `port`; the pop that frees
    /// it wakes the head.
    fn block_head(&mut self, c: usize, pe: usize, color: u8, out: u8, port: u32, now: u64) {
        self.clear_link_waits(pe, color, out);
        if port != Port::Ramp as u32 {
            let n = self.next_channel(pe, port, color);
            self.ch[n].waiting |= Port::from_index(port).opposite().bit();
        }
        let chan = &mut self.ch[c];
        chan.flags |= BLOCKED;
        chan.blocked_port = port as u8;
        chan.blocked_since = now;
    }

    #[cold]
    fn no_route(&mut self, pe: u32, color: u8) {
        let (r, col) = self.mesh.coords(pe);
        self.error = Some(Error::Simulation(format!(
            "a wavelet of color {color} reached PE ({r}, {col}), which has no route for that color"
        )));
    }

    fn wait_for_links(&mut self, pe: usize, color: u8, out: u8, retry: u64, now: u64) {
        let mut bits = out;
        while bits != 0 {
            self.wait_for_link(pe, bits.trailing_zeros() as usize, color);
            bits &= bits - 1;
        }
        self.core[pe].stall_cycles += retry - now;
    }

    fn clear_link_waits(&mut self, pe: usize, color: u8, out: u8) {
        let mut bits = out;
        while bits != 0 {
            let port = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if self.link_has_waiters(pe, port) {
                self.stop_waiting(pe, port, color);
            }
        }
    }

    /// Sends the head of `ch` on every output of `out` this cycle (to the neighbours' channels
    /// `next`, then down the ramp) and pops it.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn send_head(
        &mut self,
        ch: u32,
        pe: usize,
        color: u8,
        out: u8,
        next: &[u32],
        incoming: Option<Slot>,
        now: u64,
    ) {
        let c = ch as usize;
        let (slot, more) = match incoming {
            Some(slot) => {
                // Straight through: the slot it took is free again.
                let chan = &mut self.ch[c];
                chan.fifo_taken = chan.fifo_taken.wrapping_sub(1);
                (slot, false)
            }
            None => {
                let chan = &mut self.ch[c];
                let head = chan.fifo_head;
                chan.fifo_head = chan.fifo_head.wrapping_add(1) & self.slot_mask;
                chan.fifo_len = chan.fifo_len.wrapping_sub(1);
                chan.fifo_taken = chan.fifo_taken.wrapping_sub(1);
                let more = chan.fifo_len > 0;
                (self.rings[self.fifo_slot(c, head)], more)
            }
        };
        let (data, count) = (slot.data, slot.count());
        // A block holds every link of its route for its length, one wavelet per cycle.
        let wavelets = length(count);
        // Per-port counts and hops follow from the static route at the end of the run.
        self.ch[c].sent += wavelets;
        if self.timeline.on {
            self.timeline.record_moves(pe as u32, now, out, wavelets);
        }
        let mut bits = out;
        while bits != 0 {
            self.take_link(pe, bits.trailing_zeros() as usize, color, now, wavelets);
            bits &= bits - 1;
        }
        let at = now.wrapping_add(self.hop_cycles);
        for &n in next {
            // Program::check made sure the neighbour's route accepts this port.
            let down = &mut self.ch[n as usize];
            down.fifo_taken = down.fifo_taken.wrapping_add(1);
            self.schedule_block(at, EV_ARRIVE, n, data, count);
        }
        if out & Port::Ramp.bit() != 0 {
            let arrival = now.wrapping_add(self.ramp_cycles);
            self.deliver(ch, pe as u32, color, data, count, arrival);
        }
        if self.ch[c].waiting != 0 {
            self.wake_upstream(ch, pe as u32, color, now);
        }
        if more {
            self.ch[c].flags |= PENDING;
            self.schedule(now.wrapping_add(wavelets), EV_TRY, ch, 0);
        }
    }

    /// A slot of `ch`'s buffer was freed: wakes whatever feeds it and waits for space.
    #[inline(never)]
    pub(super) fn wake_upstream(&mut self, ch: u32, pe: u32, color: u8, now: u64) {
        let chan = &mut self.ch[ch as usize];
        let mut bits = std::mem::take(&mut chan.waiting);
        let (core_injector, edge_injector) = (chan.core_injector, chan.edge_injector);
        while bits != 0 {
            let port = bits.trailing_zeros();
            bits &= bits - 1;
            if port == Port::Ramp as u32 {
                self.unblock_injector(core_injector, now);
                continue;
            }
            let Some(up) = self.next_pe(pe, port) else {
                self.unblock_injector(edge_injector, now);
                continue;
            };
            let u = (up.wrapping_shl(self.color_shift) | color as u32) as usize;
            let upstream = &mut self.ch[u];
            debug_assert!(
                upstream.flags & BLOCKED != 0
                    && upstream.blocked_port == Port::from_index(port).opposite() as u8,
                "a waiting input is a head blocked on this buffer"
            );
            upstream.flags = PENDING;
            let since = upstream.blocked_since;
            self.core[up as usize].stall_cycles += now - since;
            self.schedule(now, EV_TRY, u as u32, 0);
        }
    }

    pub(super) fn unblock_injector(&mut self, inj: u32, now: u64) {
        let i = &mut self.injectors[inj as usize];
        if i.blocked {
            i.blocked = false;
            i.pending = true;
            let since = i.blocked_since;
            let pe = i.ch.wrapping_shr(self.color_shift);
            self.core[pe as usize].stall_cycles += now - since;
            self.schedule(now, EV_INJECT, inj, 0);
        }
    }
}
