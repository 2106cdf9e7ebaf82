//! The event queue: a calendar of one bucket per cycle over a fixed horizon, plus a heap for
//! events further away.
//!
//! Ordering contract: events run by cycle; within a cycle, in the order they were pushed (a
//! bucket is a FIFO). Events pushed beyond the horizon wait in a heap keyed by (cycle, push
//! sequence) and join their bucket, in that order, once the horizon reaches them. Nothing
//! depends on hashing or addresses, so a run replays exactly.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// One event: what happens (`kind`), to which object (`target`), with which payload (`data`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Event {
    pub kind: u8,
    /// What the event moves: 0 for a wavelet, a block's length for a block (it fits the
    /// padding: 16 bytes in all).
    pub count: u16,
    pub target: u32,
    pub data: u64,
}

/// Buckets in the calendar: events closer than this many cycles need no heap operation.
const HORIZON_CYCLES: u64 = 256;
const BUCKETS: usize = HORIZON_CYCLES as usize;

#[derive(Debug)]
pub struct EventQueue {
    buckets: Box<[Vec<Event>; BUCKETS]>,
    now_cycle: u64,
    in_buckets: usize,
    far: BinaryHeap<Reverse<(u64, u64, Event)>>,
    far_sequence: u64,
}

impl Default for EventQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl EventQueue {
    pub fn new() -> Self {
        Self {
            buckets: Box::new(std::array::from_fn(|_| Vec::new())),
            now_cycle: 0,
            in_buckets: 0,
            far: BinaryHeap::new(),
            far_sequence: 0,
        }
    }

    /// The cycle being processed.
    pub fn now(&self) -> u64 {
        self.now_cycle
    }

    /// Schedules `event` at `cycle` (never in the past).
    #[inline]
    pub fn push(&mut self, cycle: u64, event: Event) {
        debug_assert!(cycle >= self.now_cycle, "event scheduled in the past");
        if cycle.wrapping_sub(self.now_cycle) < HORIZON_CYCLES {
            self.buckets[cycle as usize % BUCKETS].push(event);
            self.in_buckets = self.in_buckets.wrapping_add(1);
        } else {
            self.far_sequence += 1;
            self.far.push(Reverse((cycle, self.far_sequence, event)));
        }
    }

    /// Takes the events of the current cycle, leaving an empty bucket (events pushed for this
    /// cycle meanwhile go there and are taken by the next call). `spare` is an empty vector
    /// whose capacity is reused.
    #[inline]
    pub fn take_current(&mut self, spare: Vec<Event>) -> Vec<Event> {
        let slot = self.now_cycle as usize % BUCKETS;
        let events = std::mem::replace(&mut self.buckets[slot], spare);
        self.in_buckets -= events.len();
        events
    }

    /// Moves to the next cycle that has events; false when the queue is empty.
    pub fn advance(&mut self) -> bool {
        if self.in_buckets == 0 {
            match self.far.peek() {
                None => return false,
                Some(Reverse((cycle, _, _))) => self.now_cycle = *cycle,
            }
        } else {
            self.now_cycle += 1;
            while self.buckets[self.now_cycle as usize % BUCKETS].is_empty() {
                self.now_cycle += 1;
            }
        }
        self.pull_far();
        true
    }

    fn pull_far(&mut self) {
        while let Some(Reverse((cycle, _, _))) = self.far.peek() {
            if *cycle - self.now_cycle >= HORIZON_CYCLES {
                break;
            }
            let Reverse((cycle, _, event)) = self.far.pop().expect("peeked");
            self.buckets[cycle as usize % BUCKETS].push(event);
            self.in_buckets += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(target: u32) -> Event {
        Event {
            kind: 0,
            count: 0,
            target,
            data: 0,
        }
    }

    #[test]
    fn events_run_by_cycle_then_push_order() {
        let mut q = EventQueue::new();
        q.push(3, ev(1));
        q.push(0, ev(2));
        q.push(3, ev(3));
        q.push(5000, ev(4));
        q.push(2000, ev(5));
        let mut seen = Vec::new();
        let mut spare = Vec::new();
        loop {
            let batch = q.take_current(spare);
            for e in &batch {
                seen.push((q.now(), e.target));
            }
            spare = batch;
            spare.clear();
            if !q.advance() {
                break;
            }
        }
        assert_eq!(seen, vec![(0, 2), (3, 1), (3, 3), (2000, 5), (5000, 4)]);
    }
}
