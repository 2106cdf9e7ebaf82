//! Cores: a queue per color fed by the ramp, one task at a time, and send queues.
//!
//! A wavelet sent down the ramp takes a slot of its color's core queue at once (depth
//! `color_buffer_depth_wavelets`; a full queue back-pressures the router) and reaches the core
//! `ramp_latency_cycles` later. When the core is free it takes, among the queue heads that
//! have reached it, the lowest-numbered color whose kernel accepts the wavelet, runs that task
//! for `Work::total_cycles()` and is busy meanwhile; wavelets wait in their queues (that is
//! where back-pressure comes from). Activation overhead is the kernel's to charge, per task,
//! through `Work::overhead_cycles`. A task's sends leave through the ramp when it ends, one
//! wavelet per cycle (the ramp up is one link shared by the PE's colors), without occupying
//! the core: they read SRAM, like an asynchronous fabric-output operation. A send whose
//! color's send queue is empty, whose link is free at that cycle and whose router buffer has
//! room goes straight to the router; the others wait in the send queue.

use std::collections::VecDeque;

use super::sim::{
    Engine, Injector, BLOCKED, EV_ARRIVE_SENT, EV_INJECT, EV_TRY, EV_WAKE, LINKS_PER_PE, NONE,
    PENDING, RAMP_UP,
};
use crate::engine::program::{Kernel, Port};

impl<K: Kernel> Engine<'_, K> {
    /// The router sends a wavelet of channel `ch` down the ramp; it reaches the core at
    /// `arrival` (its queue slot is taken now).
    #[inline]
    pub(super) fn deliver(&mut self, ch: u32, pe: u32, color: u8, data: u64, arrival: u64) {
        let c = ch as usize;
        let p = pe as usize;
        let slot =
            (c << self.slot_shift) | ((self.cq_head[c] + self.cq_len[c]) & self.slot_mask) as usize;
        self.core_queue[slot] = data;
        self.cq_time[slot] = arrival;
        self.cq_len[c] += 1;
        self.ready[p] |= 1u64 << color;
        self.wavelets_received += 1;
        self.last_progress_cycle = arrival;
        let at = arrival.max(self.busy_until[p]);
        self.request_wake(pe, at);
    }

    /// Makes sure the core of `pe` looks for work at `cycle` or earlier.
    #[inline]
    pub(super) fn request_wake(&mut self, pe: u32, cycle: u64) {
        if cycle < self.wake_at[pe as usize] {
            self.wake_at[pe as usize] = cycle;
            self.schedule(cycle, EV_WAKE, pe, 0);
        }
    }

    /// The core of `pe` may have work: a task ended, a wavelet arrived or a send queue drained.
    pub(super) fn wake(&mut self, pe: u32, now: u64) {
        let p = pe as usize;
        if self.wake_at[p] == now {
            self.wake_at[p] = u64::MAX;
        }
        if self.busy_until[p] > now {
            let at = self.busy_until[p];
            self.request_wake(pe, at);
            return;
        }
        self.deferred[p] = 0;
        self.start_task(pe, now);
    }

    /// The head of the lowest-numbered eligible color whose wavelet has reached the core, or
    /// the cycle the first eligible head will.
    #[inline]
    fn next_ready_color(&self, pe: u32, now: u64) -> Result<u8, u64> {
        let mut eligible = self.ready[pe as usize] & !self.deferred[pe as usize];
        let mut first_arrival = u64::MAX;
        while eligible != 0 {
            let color = eligible.trailing_zeros();
            eligible &= eligible - 1;
            let c = ((pe << self.color_shift) | color) as usize;
            let arrival = self.cq_time[(c << self.slot_shift) | self.cq_head[c] as usize];
            if arrival <= now {
                return Ok(color as u8);
            }
            first_arrival = first_arrival.min(arrival);
        }
        Err(first_arrival)
    }

    /// Starts the next task the core of `pe` can run at `now`, if any.
    #[inline(never)]
    fn start_task(&mut self, pe: u32, now: u64) {
        let p = pe as usize;
        loop {
            let color = match self.next_ready_color(pe, now) {
                Ok(color) => color,
                Err(u64::MAX) => return,
                Err(arrival) => return self.request_wake(pe, arrival),
            };
            let ch = (pe << self.color_shift) | color as u32;
            let c = ch as usize;
            let data = self.core_queue[(c << self.slot_shift) | self.cq_head[c] as usize];
            self.io.sends.clear();
            let Some(work) = self.kernel.on_wavelet(pe, color, data, now, &mut self.io) else {
                self.deferred[p] |= 1u64 << color;
                continue;
            };
            self.cq_head[c] = (self.cq_head[c] + 1) & self.slot_mask;
            self.cq_len[c] -= 1;
            if self.cq_len[c] == 0 {
                self.ready[p] &= !(1u64 << color);
            }
            if self.flags[c] & BLOCKED != 0 {
                // The router's head may be waiting for this queue's space.
                self.flags[c] = PENDING;
                self.counters[p].stall_cycles += now - self.blocked_since[c];
                self.schedule(now, EV_TRY, ch, 0);
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
                self.request_wake(pe, end);
            }
            return;
        }
    }

    pub(super) fn new_injector(
        &mut self,
        ch: u32,
        link: u32,
        color: u8,
        core_pe: u32,
        port: Port,
    ) -> u32 {
        self.injectors.push(Injector {
            ch,
            link,
            color,
            core_pe,
            port,
            queue: VecDeque::new(),
            pending: false,
            blocked: false,
            blocked_since: 0,
        });
        (self.injectors.len() - 1) as u32
    }

    /// A send by the core of `pe` on `color`, ready at `ready_cycle`: straight to the router if
    /// nothing is queued before it and its link and buffer allow, else into the send queue.
    pub(super) fn core_send(&mut self, pe: u32, color: u8, ready_cycle: u64, data: u64) {
        let ch = self.channel(pe, color);
        let c = ch as usize;
        let mut inj = self.core_injector[c];
        let link = pe as usize * LINKS_PER_PE + RAMP_UP;
        let queue_idle = inj == NONE || {
            let i = &self.injectors[inj as usize];
            i.queue.is_empty() && !i.pending && !i.blocked
        };
        if queue_idle
            && self.link_free[link] <= ready_cycle
            && self.link_waiters[link] == 0
            && self.fifo_len[c] + self.fifo_reserved[c] < self.depth
        {
            self.link_free[link] = ready_cycle + 1;
            self.link_last[link] = color;
            self.fifo_reserved[c] += 1;
            self.wavelets_sent += 1;
            self.counters[pe as usize].wavelets_in[Port::Ramp as usize] += 1;
            let at = ready_cycle.max(self.queue.now());
            self.schedule(at, EV_ARRIVE_SENT, ch, data);
            return;
        }
        if inj == NONE {
            inj = self.new_injector(ch, link as u32, color, pe, Port::Ramp);
            self.core_injector[c] = inj;
        }
        self.push_send(inj, ready_cycle, data);
    }

    /// A send that went straight to the router lands in its buffer; if nothing else is queued
    /// for its color, the PE's send buffer for that color is free.
    pub(super) fn arrive_sent(&mut self, ch: u32, data: u64, now: u64) {
        self.fifo_reserved[ch as usize] -= 1;
        let inj = self.core_injector[ch as usize];
        if inj == NONE || self.injectors[inj as usize].queue.is_empty() {
            let pe = ch >> self.color_shift;
            self.sends_drained(pe, (ch & self.color_mask) as u8, now);
        }
        self.fifo_push(ch, data, now);
    }

    fn sends_drained(&mut self, pe: u32, color: u8, now: u64) {
        let p = pe as usize;
        self.kernel.on_sends_drained(pe, color);
        if self.deferred[p] != 0 {
            self.deferred[p] = 0;
            let at = self.busy_until[p].max(now);
            self.request_wake(pe, at);
        }
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
    #[inline(never)]
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
        let port = self.injectors[inj as usize].port;
        self.counters[(ch >> self.color_shift) as usize].wavelets_in[port as usize] += 1;
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
            None if core_pe != NONE => self.sends_drained(core_pe, color, now),
            None => {}
        }
        self.fifo_push(ch, data, now);
    }
}
