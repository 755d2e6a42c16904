//! R9: reclaiming the processes that died, as an explicit step.
//!
//! A call reclaims what it meets: the dead holders of the slot it frees or imports, the dead
//! process whose table slot it takes. Reclaiming everything is a separate, named step,
//! [`sweep`]: a create that finds its device full, an attach to a namespace whose processes are
//! all dead or whose table is full, the last detach, the inspector when asked, and every call
//! that takes [`step`] after a death: `deaths` tells in one system call whether a process died
//! since the last sweep, so create, import, destroy, attach and the memory calls reclaim the
//! dead at once (R9, M6) at a cost that does not grow with the number of processes. Where that
//! count is not available, [`step`] amortises the rest: at most once per [`STEP_INTERVAL_NS`] a
//! process probes one more table slot, round robin.

use std::sync::atomic::Ordering::Relaxed;

use super::Guard;
use super::layout::*;
use crate::shm;

/// How often one process takes the amortised step.
pub(crate) const STEP_INTERVAL_NS: u64 = 1_000_000;

/// Probes the next process slot of the round robin, at most once per [`STEP_INTERVAL_NS`], and
/// reclaims it if its process died.
pub(crate) fn step(g: &mut Guard<'_>) {
    if super::deaths::someone_died(g.reg) {
        sweep(g);
        return;
    }
    let now = shm::boot_ns();
    if now.saturating_sub(g.local.last_step_ns) < STEP_INTERVAL_NS {
        return;
    }
    g.local.last_step_ns = now;
    let reg = g.reg;
    let hdr = reg.header();
    let used = hdr.proc_high_water.load(Relaxed).min(reg.max_procs());
    if used == 0 {
        return;
    }
    let i = hdr.sweep_cursor.load(Relaxed) % used;
    hdr.sweep_cursor.store((i + 1) % used, Relaxed);
    if reg.proc(i).state.load(Relaxed) == PROC_LIVE && !g.alive(i) {
        reclaim_procs(g, &[i]);
    }
}

/// Reclaims every attached process that died (one probe each, one pass over the slots).
pub(crate) fn sweep(g: &mut Guard<'_>) {
    let reg = g.reg;
    let used = reg
        .header()
        .proc_high_water
        .load(Relaxed)
        .min(reg.max_procs());
    let dead: Vec<u32> = (0..used)
        .filter(|&i| reg.proc(i).state.load(Relaxed) == PROC_LIVE)
        .filter(|&i| !g.alive(i))
        .collect();
    reclaim_procs(g, &dead);
    super::deaths::settle(g);
}

/// Reclaims the dead process in table slot `p`.
pub(crate) fn reclaim_proc(g: &mut Guard<'_>, p: u32) {
    reclaim_procs(g, &[p]);
}

/// Drops every reference the dead processes `dead` held, revokes the keys of the notifies they
/// created, frees what no attached process holds any more, removes their lock files and frees
/// their table slots. Idempotent: a reclaimer that dies half way leaves work the next one
/// finishes.
fn reclaim_procs(g: &mut Guard<'_>, dead: &[u32]) {
    if dead.is_empty() {
        return;
    }
    let reg = g.reg;
    let mut lock_paths = Vec::with_capacity(dead.len());
    let mut codes = Vec::with_capacity(dead.len());
    for &p in dead {
        let slot = reg.proc(p);
        let nonce = slot.nonce.load(Relaxed);
        codes.push(holder_code(p, slot.generation.load(Relaxed)));
        lock_paths.push(shm::proc_lock_path(reg.namespace(), p as usize, nonce));
        g.local.peer_locks.remove(&(p, nonce));
        reg.board_clear(p);
        // From here on their codes count as departed, wherever they are met.
        super::deaths::leave(g, p, false);
        super::procs::free_proc(g, p);
    }
    for device in 0..reg.devices() {
        for index in 0..reg.high_water(device) {
            let s = reg.slot(device, index);
            if s.state.load(Relaxed) != SLOT_LIVE {
                continue;
            }
            if codes.contains(&s.creator.load(Relaxed)) {
                // R9: a dead creator has destroyed its handle: revoke. Only the creator waits
                // (R4), so a waiter count left by its death is stale.
                s.export.store(EXPORT_REVOKED, Relaxed);
                s.creator.store(0, Relaxed);
                s.waiters.store(0, Relaxed);
            }
            let mut held = false;
            for h in &s.holders {
                let code = h.load(Relaxed);
                if code == 0 {
                    continue;
                }
                if codes.contains(&code) || !registered(g, code) {
                    h.store(0, Relaxed);
                } else {
                    held = true;
                }
            }
            if !held {
                g.free_slot(device, index);
            }
        }
    }
    super::memory::reclaim_dead(g, &codes);
    for path in lock_paths {
        let _ = std::fs::remove_file(path);
    }
}

/// Whether an attached process has holder code `code` (without probing its lock: a dead one
/// keeps its references until it is reclaimed itself).
fn registered(g: &Guard<'_>, code: u32) -> bool {
    let reg = g.reg;
    let Some(slot) = holder_slot(code).filter(|&s| s < reg.max_procs()) else {
        return false;
    };
    let p = reg.proc(slot);
    p.state.load(Relaxed) == PROC_LIVE && (p.generation.load(Relaxed) & 0xffff) == code >> 16
}
