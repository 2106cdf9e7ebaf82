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

use super::event::Event;
use super::sim::{
    at, at_mut, color_bit, length, ready_bit, Engine, Injector, SendQueue, Slot, BLOCKED,
    EV_ARRIVE_SENT, EV_INJECT, EV_TRY, EV_WAKE, NONE, PENDING,
};
use super::timeline::{FMAC, OVERHEAD, REDUCTION};
use crate::engine::program::{Kernel, Port, Work};

impl<K: Kernel> Engine<'_, K> {
    /// The router sends a wavelet (or a block of `count`) of channel `ch` down the ramp; it
    /// reaches the core at `arrival` (its queue slot is taken now). `Engine::pass_through` does
    /// the same inline: keep the two in step.
    #[inline(always)]
    pub(super) fn deliver(
        &mut self,
        ch: u32,
        pe: u32,
        color: u8,
        data: u64,
        count: u16,
        arrival: u64,
    ) {
        let c = ch as usize;
        let chan = &mut self.ch[c];
        let index = chan.cq_head.wrapping_add(chan.cq_len) & self.slot_mask;
        // Bounded by the depth: the router checked for space.
        chan.cq_len = chan.cq_len.wrapping_add(1);
        let slot = self.cq_slot(c, index);
        self.rings[slot] = Slot::new(data, count, arrival);
        let state = &mut self.pe[pe as usize];
        state.ready |= ready_bit(color);
        self.last_progress_cycle = arrival;
        let at = arrival.max(state.busy_until);
        if at < state.wake_at {
            state.wake_at = at;
            self.schedule(at, EV_WAKE, pe, 0);
        }
    }

    /// Makes sure the core of `pe` looks for work at `cycle` or earlier.
    #[inline(always)]
    pub(super) fn request_wake(&mut self, pe: u32, cycle: u64) {
        if cycle < self.pe[pe as usize].wake_at {
            self.pe[pe as usize].wake_at = cycle;
            self.schedule(cycle, EV_WAKE, pe, 0);
        }
    }

    /// The core of `pe` may have work: a task ended, a wavelet arrived or a send queue drained.
    pub(super) fn wake(&mut self, pe: u32, now: u64) {
        // SAFETY: a WAKE's target is a PE id (see sim's "Indexing on the event path").
        let state = unsafe { at_mut(&mut self.pe, pe as usize) };
        if state.wake_at == now {
            state.wake_at = u64::MAX;
        }
        if state.busy_until > now {
            let at = state.busy_until;
            self.request_wake(pe, at);
            return;
        }
        state.deferred = 0;
        self.start_task(pe, now);
    }

    /// The lowest-numbered eligible color whose head has reached the core, with that head,
    /// or the cycle the first eligible head will.
    #[inline]
    fn next_ready_color(&self, pe: u32, now: u64) -> Result<(u8, Slot), u64> {
        // SAFETY: `pe` is a PE id, `c` one of its channels and the slot one of its core queue's
        // (see sim's "Indexing on the event path"); so below.
        let state = unsafe { at(&self.pe, pe as usize) };
        let mut eligible = state.ready & !state.deferred;
        let mut first_arrival = u64::MAX;
        while eligible != 0 {
            let color = eligible.trailing_zeros();
            eligible &= eligible - 1;
            let c = (pe.wrapping_shl(self.color_shift) | color) as usize;
            let head = unsafe { *at(&self.rings, self.cq_slot(c, at(&self.ch, c).cq_head)) };
            let arrival = head.arrival();
            if arrival <= now {
                return Ok((color as u8, head));
            }
            first_arrival = first_arrival.min(arrival);
        }
        Err(first_arrival)
    }

    /// Starts the next task the core of `pe` can run at `now`, if any.
    fn start_task(&mut self, pe: u32, now: u64) {
        let p = pe as usize;
        loop {
            let (color, head) = match self.next_ready_color(pe, now) {
                Ok(ready) => ready,
                Err(u64::MAX) => return,
                Err(arrival) => return self.request_wake(pe, arrival),
            };
            let ch = pe.wrapping_shl(self.color_shift) | color as u32;
            let c = ch as usize;
            let (data, count) = (head.data, head.count());
            self.io.sends.clear();
            let work = if count == 0 {
                self.kernel.on_wavelet(pe, color, data, now, &mut self.io)
            } else {
                self.kernel
                    .on_block(pe, color, data, count, now, &mut self.io)
            };
            let Some(work) = work else {
                // SAFETY: `p` is a PE id (see sim's "Indexing on the event path"); so below.
                unsafe { at_mut(&mut self.pe, p) }.deferred |= ready_bit(color);
                continue;
            };
            if count > 0 && work.total_cycles() < count as u64 {
                return self.short_block_task(pe, color, count);
            }
            // The task starts: over state read once into locals (the arrays live behind
            // `self`; a store through one would otherwise make every later access reload).
            let end = now + work.total_cycles();
            if self.timeline.on {
                self.record_task(pe, now, &work);
            }
            let Self {
                ch: chans,
                pe: states,
                core,
                queue,
                slot_mask,
                last_progress_cycle,
                ..
            } = self;
            // SAFETY: `c` is a channel of PE `p` (see sim's "Indexing on the event path"); so
            // below.
            let chan = unsafe { at_mut(chans, c) };
            chan.cq_head = chan.cq_head.wrapping_add(1) & *slot_mask;
            chan.cq_len = chan.cq_len.wrapping_sub(1);
            let emptied = chan.cq_len == 0;
            // The router's head may be waiting for this queue's space.
            let unblock = chan.flags & BLOCKED != 0 && chan.blocked_port == Port::Ramp as u8;
            let blocked_since = chan.blocked_since;
            if unblock {
                chan.flags = PENDING;
            }
            let counters = unsafe { at_mut(core, p) };
            // A core's tasks do not overlap, so each busy-cycle sum stays below the cycle its
            // last task ends (`end`, computed with a check); the task count below the events.
            // The FMAC count is the kernel's figure: checked.
            counters.fmac_cycles = counters.fmac_cycles.wrapping_add(work.fmac_cycles);
            counters.overhead_cycles = counters.overhead_cycles.wrapping_add(work.overhead_cycles);
            counters.reduction_cycles = counters
                .reduction_cycles
                .wrapping_add(work.reduction_cycles);
            counters.fmac_ops += work.fmac_ops;
            counters.tasks = counters.tasks.wrapping_add(1);
            if unblock {
                counters.stall_cycles += now - blocked_since;
                queue.push(
                    now,
                    Event {
                        kind: EV_TRY,
                        count: 0,
                        target: ch,
                        data: 0,
                    },
                );
            }
            *last_progress_cycle = now;
            let state = unsafe { at_mut(states, p) };
            if emptied {
                state.ready &= !ready_bit(color);
            }
            state.busy_until = end;
            if !self.io.sends.is_empty() {
                self.send_outputs(pe, now, end);
            }
            let state = unsafe { at_mut(&mut self.pe, p) };
            if end == now {
                state.deferred = 0;
                continue;
            }
            if state.ready != 0 && end < state.wake_at {
                state.wake_at = end;
                self.schedule(end, EV_WAKE, pe, 0);
            }
            return;
        }
    }

    /// A task's busy cycles on the timeline, as the core runs them: activation and decode,
    /// then its FMACs, then its reduction adds. (Out of line and cold: only a watched run
    /// records, and the event path of the others should not make room for it.)
    #[cold]
    #[inline(never)]
    fn record_task(&mut self, pe: u32, now: u64, work: &Work) {
        let fmac_from = now + work.overhead_cycles;
        let reduction_from = fmac_from + work.fmac_cycles;
        let t = &mut self.timeline;
        t.add(OVERHEAD, pe, (now, work.overhead_cycles), 1);
        t.add(FMAC, pe, (fmac_from, work.fmac_cycles), 1);
        t.add(REDUCTION, pe, (reduction_from, work.reduction_cycles), 1);
    }

    /// The sends of a task that started at `now` and ends at `end`, into the core's send path.
    /// (Out of line: most tasks send nothing, and the task start is the hot path.)
    #[inline(never)]
    fn send_outputs(&mut self, pe: u32, now: u64, end: u64) {
        if let Some(send) = self.io.sends.iter().find(|s| s.color >= self.colors) {
            return self.send_beyond_colors(pe, send.color);
        }
        if self.io.sends.len() > 1 && self.io.sends.iter().any(|s| s.after_start.is_some()) {
            self.order_sends(now, end);
        }
        for i in 0..self.io.sends.len() {
            let send = self.io.sends[i];
            let ready = send.after_start.map_or(end, |d| now + d);
            self.core_send(pe, send.color, ready, send.data, send.count);
        }
    }

    /// Puts a task's sends in the order they become ready, so that each books the ramp up in
    /// turn and none holds it for a send ready later (a block may start before the task ends).
    /// A color's sends keep their order: one is ready no earlier than the send before it on its
    /// color. Only for tasks whose sends have different ready cycles.
    #[cold]
    fn order_sends(&mut self, now: u64, end: u64) {
        let mut color_ready = [0u64; 64];
        let sends = &mut self.io.sends;
        for send in sends.iter_mut() {
            let own = send.after_start.map_or(end, |d| now + d);
            let ready = own.max(color_ready[send.color as usize]);
            color_ready[send.color as usize] = ready;
            // Kept as cycles after the start, the form `core_send`'s caller reads.
            send.after_start = Some(ready - now);
        }
        sends.sort_by_key(|send| send.after_start);
    }

    /// A core sent on a color whose route at its PE takes nothing from the ramp.
    #[cold]
    fn send_without_route(&mut self, pe: u32, color: u8) {
        let (r, col) = self.mesh.coords(pe);
        self.error = Some(crate::error::Error::Simulation(format!(
            "the core of PE ({r}, {col}) sends on color {color}, whose route there takes nothing \
             from the ramp"
        )));
    }

    /// A task sent on a color the program does not have: its channel id would name another
    /// PE's channel, or none.
    #[cold]
    fn send_beyond_colors(&mut self, pe: u32, color: u8) {
        let (r, col) = self.mesh.coords(pe);
        self.error = Some(crate::error::Error::Simulation(format!(
            "the kernel's task at PE ({r}, {col}) sends on color {color}; the program has colors \
             0 to {}",
            self.colors as i64 - 1
        )));
    }

    /// A block streams in one wavelet per cycle: its task cannot be shorter.
    #[cold]
    fn short_block_task(&mut self, pe: u32, color: u8, count: u16) {
        let (r, col) = self.mesh.coords(pe);
        self.error = Some(crate::error::Error::Simulation(format!(
            "the kernel's task for a block of {count} wavelets of color {color} at PE ({r}, {col}) \
             lasts fewer cycles than the block"
        )));
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
            queue: SendQueue::default(),
            pending: false,
            blocked: false,
            drain_due: false,
            blocked_since: 0,
            sent: 0,
            waits_as: Port::Ramp.bit(),
        });
        (self.injectors.len() - 1) as u32
    }

    /// A send by the core of `pe` on `color`, ready at `ready_cycle`: straight to the router if
    /// nothing is queued before it and its link and buffer allow, else into the send queue.
    pub(super) fn core_send(
        &mut self,
        pe: u32,
        color: u8,
        ready_cycle: u64,
        data: u64,
        count: u16,
    ) {
        let ch = self.channel(pe, color);
        let c = ch as usize;
        if self.ch[c].route_in & Port::Ramp.bit() == 0 {
            return self.send_without_route(pe, color);
        }
        let mut inj = self.ch[c].core_injector;
        let queue_idle = inj == NONE || {
            let i = &self.injectors[inj as usize];
            i.queue.is_empty() && !i.pending && !i.blocked
        };
        // A block goes through the send queue, which tells the kernel when its last wavelet left.
        let link = &mut self.ramp_up[pe as usize];
        if count == 0
            && queue_idle
            && link.free <= ready_cycle
            && link.waiters == 0
            && link.queued == 0
            && self.ch[c].fifo_taken < self.depth
        {
            link.free = ready_cycle + 1;
            link.last = color;
            self.ch[c].fifo_taken += 1;
            self.wavelets_sent += 1;
            self.core[pe as usize].ramp_in += 1;
            let at = ready_cycle.max(self.queue.now());
            self.schedule(at, EV_ARRIVE_SENT, ch, data);
            return;
        }
        if inj == NONE {
            inj = self.new_injector(ch, pe, color, pe, Port::Ramp);
            self.ch[c].core_injector = inj;
        }
        self.push_send(inj, ready_cycle, data, count);
    }

    /// A send that went straight to the router lands in its buffer; if nothing else is queued
    /// for its color, the PE's send buffer for that color is free.
    pub(super) fn arrive_sent(&mut self, ch: u32, data: u64, count: u16, now: u64) {
        let inj = self.ch[ch as usize].core_injector;
        if inj == NONE || self.injectors[inj as usize].queue.is_empty() {
            let pe = ch.wrapping_shr(self.color_shift);
            self.sends_drained(pe, (ch & self.color_mask) as u8, now);
        }
        self.fifo_push(ch, data, count, now);
    }

    fn sends_drained(&mut self, pe: u32, color: u8, now: u64) {
        let p = pe as usize;
        self.kernel.on_sends_drained(pe, color);
        if self.pe[p].deferred != 0 {
            self.pe[p].deferred = 0;
            let at = self.pe[p].busy_until.max(now);
            self.request_wake(pe, at);
        }
    }

    pub(super) fn push_send(&mut self, inj: u32, ready_cycle: u64, data: u64, count: u16) {
        let core_pe = self.injectors[inj as usize].core_pe;
        self.ramp_up[core_pe as usize].queued += 1;
        let i = &mut self.injectors[inj as usize];
        i.queue.push_back((ready_cycle, data, count));
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
            (i.ch, i.link, i.color, i.core_pe)
        };
        let Some((ready, data, count)) = self.injectors[inj as usize].queue.front() else {
            // A block's last wavelet has left: the send buffer is free now.
            if std::mem::take(&mut self.injectors[inj as usize].drain_due) {
                self.sends_drained(core_pe, color, now);
            }
            return;
        };
        let retry = if ready > now {
            ready
        } else if self.injector_link(core_pe, link).free > now {
            self.injector_link(core_pe, link).free
        } else if self.injector_link(core_pe, link).must_yield(color) {
            now + 1
        } else {
            now
        };
        if retry > now {
            if ready <= now {
                self.injector_link(core_pe, link).waiters |= color_bit(color);
            }
            self.injectors[inj as usize].pending = true;
            self.schedule(retry, EV_INJECT, inj, 0);
            return;
        }
        let c = ch as usize;
        if self.ch[c].fifo_taken >= self.depth {
            self.injector_link(core_pe, link).waiters &= !color_bit(color);
            let i = &mut self.injectors[inj as usize];
            i.blocked = true;
            i.blocked_since = now;
            let waits_as = i.waits_as;
            self.ch[c].waiting |= waits_as;
            return;
        }
        let wavelets = length(count);
        self.injector_link(core_pe, link).take(color, now, wavelets);
        self.wavelets_sent += wavelets;
        self.injectors[inj as usize].sent += wavelets;
        let next = {
            let i = &mut self.injectors[inj as usize];
            i.queue.pop_front();
            i.queue.front().map(|(r, _, _)| r)
        };
        if core_pe != NONE {
            self.ramp_up[core_pe as usize].queued -= 1;
        }
        match next {
            Some(r) => {
                self.injectors[inj as usize].pending = true;
                self.schedule(r.max(now + wavelets), EV_INJECT, inj, 0);
            }
            None if core_pe != NONE && count > 0 => {
                // Drained once the block's last wavelet has left.
                let i = &mut self.injectors[inj as usize];
                i.pending = true;
                i.drain_due = true;
                self.schedule(now + wavelets, EV_INJECT, inj, 0);
            }
            None if core_pe != NONE => {
                self.injectors[inj as usize].drain_due = false;
                self.sends_drained(core_pe, color, now)
            }
            None => {}
        }
        // The slot it takes (`fifo_push` frees it if the wavelet goes straight through).
        self.ch[c].fifo_taken += 1;
        self.fifo_push(ch, data, count, now);
    }
}
