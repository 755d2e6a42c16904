//! Knowing in one system call that an attached process died without detaching (R9 with §4
//! "Scale").
//!
//! Probing every process's lock file to find the dead costs a call per attached process. So
//! the registry keeps a count the kernel corrects: each attached process adds one to a System V
//! semaphore with `SEM_UNDO`, and the kernel takes it back when the process exits, however it
//! exits; the header counts the same attaches in `Header::attached`, which only detaches and
//! reclamation lower. The semaphores holding less than the header means somebody died since
//! the last sweep; then (and only then) a call sweeps. Two semaphores share the count, by slot
//! parity, because one holds at most 32767.
//!
//! The set lives outside `/dev/shm`, so an empty file there names it
//! (`ascend-notify.<ns>.sem<id>`): whatever removes the namespace's files removes the set too,
//! even when the header that also names it is corrupted.
//!
//! The count cannot always be kept: a process in another IPC namespace cannot reach the set,
//! and a process that `exec`s keeps its adjustment in the new program after its lock file
//! closed. When the count and the table disagree even after a sweep, the namespace stops using
//! it (`Header::death_sem` = 0) and reclamation falls back to the amortised probe of
//! `reclaim::step`, which every call also takes.

use std::sync::atomic::Ordering::Relaxed;

use super::layout::*;
use super::{Guard, Registry};
use crate::shm;

/// The namespace's semaphore set, if it still uses one (and its tag vouches for the id).
fn set(reg: &Registry) -> Option<i32> {
    let hdr = reg.header();
    match hdr.death_sem.load(Relaxed) {
        0 => None,
        n if hdr.death_tag.load(Relaxed) == tag(n, reg.hash()) => Some(n - 1),
        _ => None,
    }
}

fn tag(value: i32, ns_hash: u64) -> u32 {
    (value as u32) ^ (ns_hash as u32) ^ ((ns_hash >> 32) as u32) ^ 0x5e4d_0001
}

/// Creates the set for new namespace `ns`, and the file that names it: the values for
/// `Header::death_sem` and `Header::death_tag`.
pub(crate) fn create(ns: &str, ns_hash: u64) -> (i32, u32) {
    let Some(id) = shm::sem_create(2) else {
        return (0, 0);
    };
    if !shm::create_sem_file(ns, id) {
        shm::sem_remove(id);
        return (0, 0);
    }
    (id + 1, tag(id + 1, ns_hash))
}

/// Stops using the set (and removes it): reclamation falls back to the amortised probe.
fn give_up(reg: &Registry) {
    let id = set(reg);
    reg.header().death_sem.store(0, Relaxed);
    if let Some(id) = id {
        shm::remove_sem_file(reg.namespace(), id);
        shm::sem_remove(id);
    }
}

/// Counts process slot `slot` (just registered, under the lock) on the set.
pub(crate) fn join(g: &Guard<'_>, slot: u32) {
    let reg = g.reg;
    let Some(id) = set(reg) else { return };
    if shm::sem_add(id, (slot & 1) as u16, 1) {
        reg.proc(slot).counted.store(1, Relaxed);
        let hdr = reg.header();
        hdr.attached.store(hdr.attached.load(Relaxed) + 1, Relaxed);
    } else {
        give_up(reg);
    }
}

/// Uncounts process slot `slot` as it leaves: this process detaching (`own`, which also
/// returns its adjustment to the kernel) or a dead one being reclaimed.
pub(crate) fn leave(g: &Guard<'_>, slot: u32, own: bool) {
    let reg = g.reg;
    let p = reg.proc(slot);
    if p.counted.swap(0, Relaxed) == 0 {
        return;
    }
    let hdr = reg.header();
    hdr.attached
        .store(hdr.attached.load(Relaxed).saturating_sub(1), Relaxed);
    if own && let Some(id) = set(reg) {
        let _ = shm::sem_add(id, (slot & 1) as u16, -1);
    }
}

/// What the count says about the processes attached besides the caller (which is not counted:
/// before it joins, after it left).
pub(crate) enum Others {
    /// Nobody else is attached.
    None,
    /// Every other one is alive.
    AllAlive,
    /// Some died, and some live.
    SomeDied,
    /// Every other one died.
    AllDead,
    /// The count cannot tell: ask the liveness file.
    Unknown,
}

pub(crate) fn others(reg: &Registry) -> Others {
    let Some(id) = set(reg) else {
        return Others::Unknown;
    };
    let (Some(a), Some(b)) = (shm::sem_value(id, 0), shm::sem_value(id, 1)) else {
        return Others::Unknown;
    };
    let (live, attached) = (a + b, reg.header().attached.load(Relaxed));
    match (live, attached) {
        (0, 0) => Others::None,
        (0, _) => Others::AllDead,
        (l, n) if l == n => Others::AllAlive,
        (l, n) if l < n => Others::SomeDied,
        _ => Others::Unknown,
    }
}

/// Whether the semaphores hold other than the header's count: a counted process exited
/// without detaching since the last look (or the count is off, which a sweep settles).
pub(crate) fn someone_died(reg: &Registry) -> bool {
    let Some(id) = set(reg) else { return false };
    match (shm::sem_value(id, 0), shm::sem_value(id, 1)) {
        (Some(a), Some(b)) => a + b != reg.header().attached.load(Relaxed),
        // Removed under us (a reader removed the namespace, or another process gave up).
        _ => false,
    }
}

/// After a sweep: the count of the processes still counted, checked against the set's.
///
/// Fewer on the set is a process that is exiting: the kernel returns its semaphore adjustment
/// before it closes its files, so for a moment it is dead to the count and alive to its lock
/// file, and a sweep rightly leaves it; the next call sweeps again. More on the set than
/// counted is what the count cannot follow (an `exec`, a process of another IPC namespace):
/// then the namespace gives the set up.
pub(crate) fn settle(g: &Guard<'_>) {
    let reg = g.reg;
    let Some(id) = set(reg) else { return };
    let used = reg
        .header()
        .proc_high_water
        .load(Relaxed)
        .min(reg.max_procs());
    let counted = (0..used)
        .filter(|&i| {
            let p = reg.proc(i);
            p.state.load(Relaxed) == PROC_LIVE && p.counted.load(Relaxed) == 1
        })
        .count() as u32;
    reg.header().attached.store(counted, Relaxed);
    match (shm::sem_value(id, 0), shm::sem_value(id, 1)) {
        (Some(a), Some(b)) if a + b <= counted => {}
        _ => give_up(reg),
    }
}

/// Removes the set of a namespace being removed.
pub(crate) fn remove(reg: &Registry) {
    give_up(reg);
}
