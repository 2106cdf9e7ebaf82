//! Cores: a queue per color fed by the ramp, one task at a time, and send queues.
//!
//! A wavelet delivered down the ramp waits in its color's core queue (depth
//! `color_buffer_depth_wavelets`; a full queue back-pressures the router). When the core is
//! free it takes the head of the lowest-numbered color whose kernel accepts it, runs that
//! task for `Work::total_cycles()` and is busy meanwhile; wavelets wait in their queues (that
//! is where back-pressure comes from). Activation overhead is the kernel's to charge, per
//! task, through `Work::overhead_cycles`. A task's sends join its PE's send queue for their
//! color, ready when the task ends; each send queue feeds the router through the ramp at one
//! wavelet per cycle (the ramp up is one link shared round-robin by the colors), without
//! occupying the core: it reads SRAM, like an asynchronous fabric-output operation.

use std::collections::VecDeque;

use super::sim::{Engine, Injector, BLOCKED, EV_INJECT, EV_WAKE, LINKS_PER_PE, NONE, RAMP_UP};
use crate::engine::program::{Kernel, Port};

impl<K: Kernel> Engine<'_, K> {
    /// A wavelet reaches the core queue of channel `ch`.
    pub(super) fn deliver(&mut self, ch: u32, data: u64, now: u64) {
        let c = ch as usize;
        let pe = (ch >> self.color_shift) as usize;
        let depth = self.depth as usize;
        self.cq_reserved[c] -= 1;
        let slot = (self.cq_head[c] as usize + self.cq_len[c] as usize) % depth;
        self.core_queue[c * depth + slot] = data;
        self.cq_len[c] += 1;
        self.ready[pe] |= 1u64 << (ch & self.color_mask);
        self.wavelets_received += 1;
        self.last_progress_cycle = now;
        if self.wake_pending[pe] {
            return;
        }
        if self.busy_until[pe] <= now {
            self.start_task(pe as u32, now);
        } else {
            self.wake_pending[pe] = true;
            let at = self.busy_until[pe];
            self.schedule(at, EV_WAKE, pe as u32, 0);
        }
    }

    /// The core of `pe` finished its task (or a send queue drained): offer it work again.
    pub(super) fn wake(&mut self, pe: u32, now: u64) {
        self.wake_pending[pe as usize] = false;
        self.deferred[pe as usize] = 0;
        self.start_task(pe, now);
    }

    /// Starts the next task the core of `pe` can run at `now`, if any.
    fn start_task(&mut self, pe: u32, now: u64) {
        let p = pe as usize;
        let depth = self.depth as usize;
        loop {
            let eligible = self.ready[p] & !self.deferred[p];
            if eligible == 0 {
                return;
            }
            let color = eligible.trailing_zeros() as u8;
            let ch = (pe << self.color_shift) | color as u32;
            let c = ch as usize;
            let data = self.core_queue[c * depth + self.cq_head[c] as usize];
            self.io.sends.clear();
            let Some(work) = self.kernel.on_wavelet(pe, color, data, now, &mut self.io) else {
                self.deferred[p] |= 1u64 << color;
                continue;
            };
            self.cq_head[c] = ((self.cq_head[c] as usize + 1) % depth) as u32;
            self.cq_len[c] -= 1;
            if self.cq_len[c] == 0 {
                self.ready[p] &= !(1u64 << color);
            }
            if self.flags[c] & BLOCKED != 0 {
                // The router's head may be waiting for this queue's space.
                self.flags[c] = super::sim::PENDING;
                self.counters[p].stall_cycles += now - self.blocked_since[c];
                self.schedule(now, super::sim::EV_TRY, ch, 0);
            }
            let counters = &mut self.counters[p];
            counters.fmac_cycles += work.fmac_cycles;
            counters.overhead_cycles += work.overhead_cycles;
            counters.reduction_cycles += work.reduction_cycles;
            counters.fmac_ops += work.fmac_ops;
            counters.tasks += 1;
            self.last_progress_cycle = now;
            let end = now + work.total_cycles();
            self.busy_until[p] = end;
            for i in 0..self.io.sends.len() {
                let (send_color, send_data) = self.io.sends[i];
                self.core_send(pe, send_color, end, send_data);
            }
            if end == now {
                self.deferred[p] = 0;
                continue;
            }
            if self.ready[p] != 0 {
                self.wake_pending[p] = true;
                self.schedule(end, EV_WAKE, pe, 0);
            }
            return;
        }
    }

    pub(super) fn new_injector(&mut self, ch: u32, link: u32, color: u8, core_pe: u32) -> u32 {
        self.injectors.push(Injector {
            ch,
            link,
            color,
            core_pe,
            queue: VecDeque::new(),
            pending: false,
            blocked: false,
            blocked_since: 0,
        });
        (self.injectors.len() - 1) as u32
    }

    /// Queues a send by the core of `pe` on `color`, ready at `ready_cycle`.
    pub(super) fn core_send(&mut self, pe: u32, color: u8, ready_cycle: u64, data: u64) {
        let ch = self.channel(pe, color);
        let mut inj = self.core_injector[ch as usize];
        if inj == NONE {
            let link = (pe as usize * LINKS_PER_PE + RAMP_UP) as u32;
            inj = self.new_injector(ch, link, color, pe);
            self.core_injector[ch as usize] = inj;
        }
        self.push_send(inj, ready_cycle, data);
    }

    pub(super) fn push_send(&mut self, inj: u32, ready_cycle: u64, data: u64) {
        let i = &mut self.injectors[inj as usize];
        i.queue.push_back((ready_cycle, data));
        if !i.pending && !i.blocked {
            i.pending = true;
            self.schedule(ready_cycle.max(self.queue.now()), EV_INJECT, inj, 0);
        }
    }

    /// A send queue tries to put its head into its router buffer, over its link.
    pub(super) fn inject(&mut self, inj: u32, now: u64) {
        let (ch, link, color, core_pe) = {
            let i = &mut self.injectors[inj as usize];
            i.pending = false;
            (i.ch, i.link as usize, i.color, i.core_pe)
        };
        let Some(&(ready, data)) = self.injectors[inj as usize].queue.front() else {
            return;
        };
        let retry = if ready > now {
            ready
        } else if self.link_free[link] > now {
            self.link_free[link]
        } else if self.must_yield(link, color) {
            now + 1
        } else {
            now
        };
        if retry > now {
            if ready <= now {
                self.link_waiters[link] |= 1u64 << color;
            }
            self.injectors[inj as usize].pending = true;
            self.schedule(retry, EV_INJECT, inj, 0);
            return;
        }
        let c = ch as usize;
        if self.fifo_len[c] + self.fifo_reserved[c] >= self.depth {
            self.link_waiters[link] &= !(1u64 << color);
            let i = &mut self.injectors[inj as usize];
            i.blocked = true;
            i.blocked_since = now;
            return;
        }
        self.link_free[link] = now + 1;
        self.link_last[link] = color;
        self.link_waiters[link] &= !(1u64 << color);
        self.wavelets_sent += 1;
        if core_pe != NONE {
            self.counters[core_pe as usize].wavelets_in[Port::Ramp as usize] += 1;
        }
        let next = {
            let i = &mut self.injectors[inj as usize];
            i.queue.pop_front();
            i.queue.front().map(|&(r, _)| r)
        };
        match next {
            Some(r) => {
                self.injectors[inj as usize].pending = true;
                self.schedule(r.max(now + 1), EV_INJECT, inj, 0);
            }
            None if core_pe != NONE => {
                // A drained send queue frees its SRAM buffer: tasks deferred on it may run.
                let p = core_pe as usize;
                self.kernel.on_sends_drained(core_pe, color);
                self.deferred[p] = 0;
                if !self.wake_pending[p] && self.ready[p] != 0 {
                    self.wake_pending[p] = true;
                    let at = self.busy_until[p].max(now);
                    self.schedule(at, EV_WAKE, core_pe, 0);
                }
            }
            None => {}
        }
        self.fifo_push(ch, data, now);
    }
}
