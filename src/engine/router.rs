//! Routers: per-color input buffers, static multicast routes, one wavelet per cycle per link
//! direction, round-robin between colors, credit-based back-pressure.
//!
//! A wavelet at the head of a channel's buffer moves when *every* output of its route can take
//! it in the same cycle: each output link is free this cycle (and it is this color's turn on
//! the link), and each downstream buffer (the neighbour's buffer of the same color, or the
//! core queue for the ramp) has a free slot, counting wavelets already in flight to it. It then
//! reaches a neighbour `hop_latency_cycles` later and its core `ramp_latency_cycles` later. A
//! head that finds no space waits, and the pop that frees the space wakes it.

use super::program::Port;
use super::sim::{
    length, Engine, BLOCKED, EV_ARRIVE, EV_INJECT, EV_TRY, LINKS_PER_PE, NONE, PENDING,
};
use crate::engine::program::Kernel;
use crate::error::Error;

impl<K: Kernel> Engine<'_, K> {
    /// A wavelet (or a block's first wavelet) lands in channel `ch`'s buffer (its slot was
    /// reserved when it was sent).
    pub(super) fn arrive(&mut self, ch: u32, data: u64, count: u16, now: u64) {
        let c = ch as usize;
        self.ch[c].fifo_reserved -= 1;
        self.fifo_push(ch, data, count, now);
    }

    /// Appends to the buffer of `ch` and starts forwarding if the wavelet is the head.
    #[inline]
    pub(super) fn fifo_push(&mut self, ch: u32, data: u64, count: u16, now: u64) {
        let c = ch as usize;
        let slot =
            (self.ch[c].fifo_head.wrapping_add(self.ch[c].fifo_len) & self.slot_mask) as usize;
        let base = self.slot_base(c);
        self.slots[base.wrapping_add(slot)] = data;
        let counts = self.count_base(c);
        self.counts[counts.wrapping_add(slot)] = count;
        self.ch[c].fifo_len += 1;
        if self.ch[c].fifo_len == 1 && self.ch[c].flags & (PENDING | BLOCKED) == 0 {
            self.try_forward(ch, now);
        }
    }

    /// Whether `color` must let another color waiting on `link` go first: the link serves the
    /// waiting colors round-robin, starting after the one it served last.
    #[inline]
    pub(super) fn must_yield(&self, link: usize, color: u8) -> bool {
        let others = self.links[link].waiters & !(1u64 << color);
        if others == 0 {
            return false;
        }
        let candidates = others | (1u64 << color);
        let after = (self.links[link].last as u32 + 1) % 64;
        let rotated = candidates.rotate_right(after);
        let winner = (rotated.trailing_zeros() + after) % 64;
        winner != color as u32
    }

    /// Tries to move the head of channel `ch` to every output of its route.
    pub(super) fn try_forward(&mut self, ch: u32, now: u64) {
        let c = ch as usize;
        self.ch[c].flags &= !PENDING;
        if self.ch[c].fifo_len == 0 {
            return;
        }
        let pe = ch >> self.color_shift;
        let color = (ch & self.color_mask) as u8;
        let out = self.ch[c].route_out;
        if out == 0 {
            let (r, col) = self.mesh.coords(pe);
            self.error = Some(Error::Simulation(format!(
                "a wavelet of color {color} reached PE ({r}, {col}), which has no route for that color"
            )));
            return;
        }
        // Links: free this cycle, and this color's turn.
        let mut retry = now;
        let mut bits = out;
        while bits != 0 {
            let port = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let link = (pe as usize).wrapping_mul(LINKS_PER_PE).wrapping_add(port);
            if self.links[link].free > now {
                retry = retry.max(self.links[link].free);
            } else if self.must_yield(link, color) {
                retry = retry.max(now + 1);
            }
        }
        if retry > now {
            self.wait_for_links(pe, color, out, retry, now);
            self.ch[c].flags |= PENDING;
            self.schedule(retry, EV_TRY, ch, 0);
            return;
        }
        // Space downstream.
        let mut bits = out;
        while bits != 0 {
            let port = bits.trailing_zeros();
            bits &= bits - 1;
            let full = if port == Port::Ramp as u32 {
                self.ch[c].cq_len >= self.depth
            } else {
                let next = self.next_pe(pe, port).expect("routes stay in the mesh");
                let n = ((next << self.color_shift) | color as u32) as usize;
                self.ch[n].fifo_len + self.ch[n].fifo_reserved >= self.depth
            };
            if full {
                self.clear_link_waits(pe, color, out);
                self.ch[c].flags |= BLOCKED;
                self.ch[c].blocked_port = port as u8;
                self.ch[c].blocked_since = now;
                return;
            }
        }
        self.send_head(ch, pe, color, out, now);
    }

    fn wait_for_links(&mut self, pe: u32, color: u8, out: u8, retry: u64, now: u64) {
        let mut bits = out;
        while bits != 0 {
            let port = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            self.links[pe as usize * LINKS_PER_PE + port].waiters |= 1u64 << color;
        }
        self.counters[pe as usize].stall_cycles += retry - now;
    }

    fn clear_link_waits(&mut self, pe: u32, color: u8, out: u8) {
        let mut bits = out;
        while bits != 0 {
            let port = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            self.links[pe as usize * LINKS_PER_PE + port].waiters &= !(1u64 << color);
        }
    }

    /// Sends the head of `ch` on every output of `out` this cycle and pops it.
    fn send_head(&mut self, ch: u32, pe: u32, color: u8, out: u8, now: u64) {
        let c = ch as usize;
        let head = self.ch[c].fifo_head as usize;
        let data = self.slots[self.slot_base(c).wrapping_add(head)];
        // A block holds every link of its route for its length, one wavelet per cycle.
        let count = self.counts[self.count_base(c).wrapping_add(head)];
        let wavelets = length(count);
        let mut bits = out;
        while bits != 0 {
            let port = bits.trailing_zeros();
            bits &= bits - 1;
            let link = (pe as usize)
                .wrapping_mul(LINKS_PER_PE)
                .wrapping_add(port as usize);
            self.links[link].free = now.wrapping_add(wavelets);
            self.links[link].last = color;
            self.links[link].waiters &= !(1u64 << color);
            if port == Port::Ramp as u32 {
                self.deliver(
                    ch,
                    pe,
                    color,
                    data,
                    count,
                    now.wrapping_add(self.ramp_cycles),
                );
            } else {
                // Program::check made sure the neighbour's route accepts this port.
                let next = self.next_pe(pe, port).expect("routes stay in the mesh");
                let n = (next << self.color_shift) | color as u32;
                self.ch[n as usize].fifo_reserved += 1;
                self.schedule_block(now.wrapping_add(self.hop_cycles), EV_ARRIVE, n, data, count);
            }
        }
        // Per-port counts and hops follow from the static route at the end of the run.
        self.ch[c].sent += wavelets;
        self.ch[c].fifo_head = self.ch[c].fifo_head.wrapping_add(1) & self.slot_mask;
        self.ch[c].fifo_len -= 1;
        self.wake_upstream(ch, pe, color, now);
        if self.ch[c].fifo_len > 0 {
            self.ch[c].flags |= PENDING;
            self.schedule(now.wrapping_add(wavelets), EV_TRY, ch, 0);
        }
    }

    /// A slot of `ch`'s buffer was freed: wakes whatever feeds it and waits for space.
    pub(super) fn wake_upstream(&mut self, ch: u32, pe: u32, color: u8, now: u64) {
        let mut bits = self.ch[ch as usize].route_in;
        while bits != 0 {
            let port = bits.trailing_zeros();
            bits &= bits - 1;
            if port == Port::Ramp as u32 {
                let inj = self.ch[ch as usize].core_injector;
                if inj != NONE {
                    self.unblock_injector(inj, now);
                }
                continue;
            }
            match self.next_pe(pe, port) {
                Some(up) => {
                    let u = ((up << self.color_shift) | color as u32) as usize;
                    // Only a head waiting for this very buffer (not another output's).
                    let toward_us = Port::from_index(port).opposite() as u8;
                    if self.ch[u].flags & BLOCKED != 0 && self.ch[u].blocked_port == toward_us {
                        self.ch[u].flags = PENDING;
                        self.counters[up as usize].stall_cycles += now - self.ch[u].blocked_since;
                        self.schedule(now, EV_TRY, u as u32, 0);
                    }
                }
                None => {
                    let inj = self.ch[ch as usize].edge_injector;
                    if inj != NONE {
                        self.unblock_injector(inj, now);
                    }
                }
            }
        }
    }

    pub(super) fn unblock_injector(&mut self, inj: u32, now: u64) {
        let i = &mut self.injectors[inj as usize];
        if i.blocked {
            i.blocked = false;
            i.pending = true;
            let since = i.blocked_since;
            let pe = i.ch >> self.color_shift;
            self.counters[pe as usize].stall_cycles += now - since;
            self.schedule(now, EV_INJECT, inj, 0);
        }
    }
}
