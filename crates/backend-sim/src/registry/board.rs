//! Each process's board of the waits it has queued or running (§4 "Diagnosis"), for the
//! inspector's `waits`: written by its own process without the registry lock (a handful of
//! relaxed stores per wait, none per record), read racily by the inspector.

use std::sync::atomic::Ordering::{AcqRel, Relaxed, Release};

use super::Registry;
use super::layout::*;
use super::slots::SlotRef;

/// An entry being filled in: the inspector skips it.
const WAIT_WRITING: u32 = 3;

/// `CLOCK_MONOTONIC_COARSE` in nanoseconds: cheap enough for every wait (a few ns from the
/// vDSO), and exact enough for "waited 3 s" (a few ms).
pub(crate) fn coarse_ns() -> u64 {
    crate::clock::monotonic_coarse_ns()
}

/// The board entry of a wait the full board only counts.
pub(crate) const UNLISTED: u32 = u32::MAX;

impl Registry {
    /// Posts a wait queued on stream `stream` (of `device`) for notify `n`. When this process's
    /// board is full the wait is only counted ([`UNLISTED`]): it still works, the inspector
    /// says how many it cannot list.
    pub(crate) fn board_queue(
        &self,
        stream: u32,
        device: i32,
        n: SlotRef,
        timeout_s: u32,
    ) -> Option<u32> {
        let me = self.me()?.slot;
        let Some(i) = (0..WAITS_PER_PROC).find(|&i| {
            self.wait_entry(me, i)
                .state
                .compare_exchange(WAIT_FREE, WAIT_WRITING, AcqRel, Relaxed)
                .is_ok()
        }) else {
            self.proc(me).waits_unlisted.fetch_add(1, Relaxed);
            return Some(UNLISTED);
        };
        let e = self.wait_entry(me, i);
        e.stream.store(stream, Relaxed);
        e.device.store(device, Relaxed);
        e.notify_device.store(n.device, Relaxed);
        e.notify_index.store(n.index, Relaxed);
        e.notify_generation.store(n.generation, Relaxed);
        e.timeout_s.store(timeout_s, Relaxed);
        e.queued_ns.store(coarse_ns(), Relaxed);
        e.running_ns.store(0, Relaxed);
        e.state.store(WAIT_QUEUED, Release);
        Some(i)
    }

    /// The posted wait `i` started running.
    pub(crate) fn board_running(&self, i: u32) {
        if i == UNLISTED {
            return;
        }
        if let Some(me) = self.me() {
            let e = self.wait_entry(me.slot, i);
            e.running_ns.store(coarse_ns(), Relaxed);
            e.state.store(WAIT_RUNNING, Release);
        }
    }

    /// The posted wait `i` ended (or was dropped).
    pub(crate) fn board_done(&self, i: u32) {
        if let Some(me) = self.me()
            && self.is_own()
        {
            if i == UNLISTED {
                let _ = self
                    .proc(me.slot)
                    .waits_unlisted
                    .fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(1)));
            } else {
                self.wait_entry(me.slot, i).state.store(WAIT_FREE, Release);
            }
        }
    }

    /// Clears the board of process slot `p` (it died or left).
    pub(crate) fn board_clear(&self, p: u32) {
        for i in 0..WAITS_PER_PROC {
            self.wait_entry(p, i).state.store(WAIT_FREE, Relaxed);
        }
        self.proc(p).waits_unlisted.store(0, Relaxed);
    }
}
