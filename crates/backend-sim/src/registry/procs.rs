//! The process table: attach and detach, bare tgids (R16), and liveness (R9).
//!
//! Liveness comes from locks the kernel drops at death, never from probing pids:
//! - each process holds an exclusive `flock` on a lock file of its own, so a probe of one
//!   process is one non-blocking `flock` on it ([`Guard::alive`]);
//! - each process also holds a *shared* `flock` on the namespace's one liveness file, so "is any
//!   other process alive?" is one non-blocking exclusive `flock` on that file, whatever the
//!   number of processes: that is how the last process out, and an attach to a namespace whose
//!   processes are all dead, know to clean up (§4 "Cleanup").
//!
//! A call probes only the processes it concerns (§4 "Scale").

use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering::Relaxed;

use notify_api::{Result, err};
use rustix::fs::FlockOperation;

use super::deaths::Others;
use super::layout::{PROC_FREE, PROC_LIVE, STATE_READY, holder_code, holder_slot};
use super::{Guard, Me, reclaim};
use crate::fork;
use crate::shm;

/// `ASCEND_NOTIFY_SIM_BARE_TGID`: how this process's bare tgid is chosen (R16).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum BareTgidMode {
    /// `getpid()` in the namespace's host PID namespace, a synthetic value in any other.
    #[default]
    Auto,
    /// A synthetic value that is not `getpid()`, even in the host PID namespace: the VM and
    /// container case, so a program that whitelists `getpid()` fails in CI as on such a machine.
    Remap,
}

/// Synthetic bare tgids start here: above any pid the kernel hands out (`pid_max` is at most
/// 2^22), so they never equal a process's `getpid()` nor a host process's bare tgid.
const SYNTHETIC_BASE: i32 = 1 << 22;

/// How many peers' lock descriptors a process keeps open for probes.
const PEER_LOCK_CACHE: usize = 64;

/// Claims a process slot, this process's lock file and its shared lock on the liveness file.
/// `Ok(None)` when the namespace was removed between its open and now: open it again.
pub(crate) fn register(
    reg: &super::Registry,
    mode: BareTgidMode,
    start_offset_s: i64,
) -> Result<Option<Me>> {
    let os_pid = rustix::process::getpid().as_raw_nonzero().get();
    let my_ns = shm::pid_namespace();
    let start = shm::process_start_ns().unwrap_or_else(shm::boot_ns);
    let start_ns = start.saturating_add_signed(start_offset_s.saturating_mul(1_000_000_000));
    let mut g = reg.lock()?;
    if reg.header().state.load(Relaxed) != STATE_READY {
        // The last process removed the namespace between our open and this lock.
        return Ok(None);
    }
    // R9, §4: an attach reclaims the dead, and first of all when every attached process is
    // dead. The death count tells in one call; the liveness files only when it cannot.
    match super::deaths::others(reg) {
        Others::None | Others::AllAlive => reclaim::step(&mut g),
        Others::SomeDied | Others::AllDead => reclaim::sweep(&mut g),
        Others::Unknown if !super::segment::any_process_alive(reg.namespace()) => {
            reclaim::sweep(&mut g);
        }
        Others::Unknown => reclaim::step(&mut g),
    }
    let slot = match free_slot(&mut g) {
        Some(slot) => slot,
        None => {
            reclaim::sweep(&mut g);
            free_slot(&mut g).ok_or_else(|| {
                err!(
                    Sim: RT_INTERNAL_ERROR,
                    "namespace {:?} already has {} processes attached (its process table is \
                     full: ASCEND_NOTIFY_SIM_PROCESSES is fixed by the process that creates the \
                     namespace)",
                    reg.namespace(),
                    reg.max_procs()
                )
            })?
        }
    };
    let nonce = crate::random_u64()?;
    let lock_path = shm::proc_lock_path(reg.namespace(), slot as usize, nonce);
    let lock_fd = shm::create_proc_lock(&lock_path)?;
    // Opened under the lock: the last process out unlinks these files under it too, so we never
    // lock a file that was already unlinked.
    let alive_fd =
        shm::open_lock_file(&shm::alive_path(reg.namespace(), slot % shm::ALIVE_SHARDS))?;
    shm::flock(&alive_fd, FlockOperation::LockShared)
        .map_err(|e| shm::os_error("locking the liveness file", e))?;
    let hdr = reg.header();
    let seq = hdr.attach_seq.fetch_add(1, Relaxed);
    let p = reg.proc(slot);
    let generation = p.generation.load(Relaxed).wrapping_add(1);
    let host = my_ns == hdr.pid_ns.load(Relaxed);
    let tgid = if host && mode == BareTgidMode::Auto {
        os_pid
    } else {
        // Unique among live processes: one range of 1024 values per process slot.
        SYNTHETIC_BASE + (slot as i32) * 1024 + (seq % 1024) as i32
    };
    p.generation.store(generation, Relaxed);
    p.os_pid.store(os_pid, Relaxed);
    p.bare_tgid.store(tgid, Relaxed);
    p.nonce.store(nonce, Relaxed);
    p.start_ns.store(start_ns, Relaxed);
    p.pid_ns.store(my_ns, Relaxed);
    reg.board_clear(slot);
    p.state.store(PROC_LIVE, Relaxed);
    hdr.proc_hint.store(slot + 1, Relaxed);
    if hdr.proc_high_water.load(Relaxed) <= slot {
        hdr.proc_high_water.store(slot + 1, Relaxed);
    }
    super::deaths::join(&g, slot);
    drop(g);
    let inherit = [
        fork::inherit_guard(lock_fd.as_raw_fd()),
        fork::inherit_guard(alive_fd.as_raw_fd()),
    ];
    Ok(Some(Me {
        slot,
        code: holder_code(slot, generation),
        tgid,
        start_ns,
        lock_path,
        _lock_fd: lock_fd,
        alive_fd,
        _inherit: inherit,
    }))
}

/// A process slot no live process uses, starting at the hint; `None` when the table is full
/// of processes that look alive (a dead one is found by the caller's sweep).
fn free_slot(g: &mut Guard<'_>) -> Option<u32> {
    let reg = g.reg;
    let max = reg.max_procs();
    let hint = reg.header().proc_hint.load(Relaxed) % max;
    // No attach ever took a slot at or above the high-water mark: whatever it says (a stray
    // write, R14), it is free, and the sweeps that probe below the mark never need to see it.
    let high_water = reg.header().proc_high_water.load(Relaxed).min(max);
    (0..max)
        .map(|i| (hint + i) % max)
        .find(|&i| i >= high_water || reg.proc(i).state.load(Relaxed) != PROC_LIVE)
}

/// Takes this process out of the table, dropping everything it still holds. Returns whether
/// it was the last live process of the namespace (then the caller removes the namespace).
pub(crate) fn unregister(g: &mut Guard<'_>) -> bool {
    let reg = g.reg;
    let Some(me) = reg.me() else { return false };
    super::slots::release_all(g);
    let _ = std::fs::remove_file(&me.lock_path);
    reg.board_clear(me.slot);
    super::deaths::leave(g, me.slot, true);
    free_proc(g, me.slot);
    super::memory::reclaim_dead(g, &[me.code]);
    // Under the registry lock (detaches are serialised by it, so two last processes cannot
    // both see the other): the death count, or else the liveness files once ours is let go,
    // say whether anybody else is alive.
    match super::deaths::others(reg) {
        Others::None | Others::AllDead => true,
        Others::AllAlive | Others::SomeDied => false,
        Others::Unknown => {
            let _ = shm::flock(&me.alive_fd, FlockOperation::Unlock);
            !super::segment::any_process_alive(reg.namespace())
        }
    }
}

/// Marks process slot `i` free for the next attach.
pub(crate) fn free_proc(g: &Guard<'_>, i: u32) {
    let reg = g.reg;
    reg.proc(i).state.store(PROC_FREE, Relaxed);
    let hint = &reg.header().proc_hint;
    if hint.load(Relaxed) > i {
        hint.store(i, Relaxed);
    }
}

/// What a holder code stands for now.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Holder {
    /// A process of this code is attached and alive (or is this process).
    Alive,
    /// Its process slot is attached with this generation, but the process is dead: reclaim it.
    Dead(u32),
    /// No attached process has this code any more (reclaimed, detached, or a scribble).
    Gone,
}

impl Guard<'_> {
    /// R9: what `code` stands for, probing its process's lock if needed.
    pub(crate) fn holder(&mut self, code: u32) -> Holder {
        let reg = self.reg;
        if code == 0 {
            return Holder::Gone;
        }
        if code == reg.my_code() {
            return Holder::Alive;
        }
        let Some(slot) = holder_slot(code).filter(|&s| s < reg.max_procs()) else {
            return Holder::Gone;
        };
        let p = reg.proc(slot);
        if p.state.load(Relaxed) != PROC_LIVE || (p.generation.load(Relaxed) & 0xffff) != code >> 16
        {
            return Holder::Gone;
        }
        if self.alive(slot) {
            Holder::Alive
        } else {
            Holder::Dead(slot)
        }
    }

    /// Whether the process in (live) slot `i` holds its lock file.
    pub(crate) fn alive(&mut self, i: u32) -> bool {
        let reg = self.reg;
        if reg.me().is_some_and(|m| m.slot == i) {
            return true;
        }
        let nonce = reg.proc(i).nonce.load(Relaxed);
        let key = (i, nonce);
        if !self.local.peer_locks.contains_key(&key) {
            let path = shm::proc_lock_path(reg.namespace(), i as usize, nonce);
            let Some(fd) = shm::open_peer_lock(&path) else {
                return false;
            };
            if self.local.peer_locks.len() >= PEER_LOCK_CACHE {
                self.local.peer_locks.clear();
            }
            self.local.peer_locks.insert(key, fd);
        }
        let alive = shm::holder_alive(&self.local.peer_locks[&key]);
        if !alive {
            self.local.peer_locks.remove(&key);
        }
        alive
    }
}
