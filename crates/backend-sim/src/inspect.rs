//! What the inspector reads: a consistent snapshot of a namespace, and reclamation on request.
//!
//! Reading never changes anything: a process that died shows as dead until something reclaims
//! it (a call that meets it, or [`reclaim`] here, which the inspector runs only when asked).

use std::sync::atomic::Ordering::Relaxed;

use notify_api::Result;

use crate::registry::layout::*;
use crate::registry::{Registry, reclaim};

/// A consistent reading of a whole namespace, taken under the registry lock.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Snapshot {
    /// Devices in the namespace.
    pub devices: u32,
    /// Notifies per device.
    pub capacity: u32,
    /// Processes the namespace admits at once.
    pub max_processes: u32,
    /// Device memory per device, in bytes.
    pub device_memory: u64,
    /// Every attached process, alive or dead but not yet reclaimed.
    pub processes: Vec<ProcessInfo>,
    /// Every live notify.
    pub notifies: Vec<NotifyInfo>,
}

/// One attached process.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ProcessInfo {
    /// Its process-table slot.
    pub slot: u32,
    /// Its bare tgid (R16): what whitelists hold.
    pub tgid: i32,
    /// `getpid()` in its own PID namespace.
    pub os_pid: i32,
    /// Whether it still holds its liveness lock (R9).
    pub alive: bool,
}

/// One live notify, as the inspector shows it.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct NotifyInfo {
    /// Its device.
    pub device: u32,
    /// Its id (`aclrtGetNotifyId`).
    pub id: u32,
    /// The creator's bare tgid, or `None` once the creator is gone.
    pub creator: Option<i32>,
    /// Bare tgids of the processes holding a reference.
    pub holders: Vec<i32>,
    /// `"no"`, `"whitelist"`, `"any-pid"`, `"revoked"` or `"corrupt"`.
    pub exported: &'static str,
    /// The import whitelist (bare tgids).
    pub whitelist: Vec<i32>,
    /// Whether the flag is set.
    pub flag: bool,
}

/// Reads namespace `ns` without attaching (so it never counts itself) and without reclaiming;
/// `Ok(None)` if it does not exist.
///
/// # Errors
/// `Error::Config` (107000) for a bad name; `RT_INTERNAL_ERROR` (507000) for a corrupted
/// registry.
pub fn inspect(ns: &str) -> Result<Option<Snapshot>> {
    match Registry::inspect(ns)? {
        Some(reg) => snapshot(&reg).map(Some),
        None => Ok(None),
    }
}

/// Reclaims every dead process of namespace `ns` (R9) and returns how many there were;
/// `Ok(None)` if the namespace does not exist.
///
/// # Errors
/// As [`inspect`].
pub fn reclaim(ns: &str) -> Result<Option<usize>> {
    let Some(reg) = Registry::inspect(ns)? else {
        return Ok(None);
    };
    let mut g = reg.lock()?;
    let before = live_procs(&reg);
    reclaim::sweep(&mut g);
    Ok(Some(before - live_procs(&reg)))
}

fn live_procs(reg: &Registry) -> usize {
    let used = reg
        .header()
        .proc_high_water
        .load(Relaxed)
        .min(reg.max_procs());
    (0..used)
        .filter(|&i| reg.proc(i).state.load(Relaxed) == PROC_LIVE)
        .count()
}

fn snapshot(reg: &Registry) -> Result<Snapshot> {
    let mut g = reg.lock()?;
    let mut snap = Snapshot {
        devices: reg.devices(),
        capacity: reg.capacity(),
        max_processes: reg.max_procs(),
        device_memory: reg.device_memory(),
        ..Snapshot::default()
    };
    let used = reg
        .header()
        .proc_high_water
        .load(Relaxed)
        .min(reg.max_procs());
    for i in 0..used {
        let p = reg.proc(i);
        if p.state.load(Relaxed) != PROC_LIVE {
            continue;
        }
        snap.processes.push(ProcessInfo {
            slot: i,
            tgid: p.bare_tgid.load(Relaxed),
            os_pid: p.os_pid.load(Relaxed),
            alive: g.alive(i),
        });
    }
    let tgid_of = |code: u32| -> Option<i32> {
        let slot = holder_slot(code).filter(|&s| s < reg.max_procs())?;
        let p = reg.proc(slot);
        (p.state.load(Relaxed) == PROC_LIVE && (p.generation.load(Relaxed) & 0xffff) == code >> 16)
            .then(|| p.bare_tgid.load(Relaxed))
    };
    for device in 0..reg.devices() {
        for index in 0..reg.high_water(device) {
            let s = reg.slot(device, index);
            if s.state.load(Relaxed) != SLOT_LIVE {
                continue;
            }
            let wl_len = (s.whitelist_len.load(Relaxed) as usize).min(WHITELIST);
            let creator = s.creator.load(Relaxed);
            snap.notifies.push(NotifyInfo {
                device,
                id: index,
                creator: tgid_of(creator)
                    .or_else(|| (creator != 0).then(|| s.creator_tgid.load(Relaxed))),
                holders: s
                    .holders
                    .iter()
                    .filter_map(|h| tgid_of(h.load(Relaxed)))
                    .collect(),
                exported: match (s.export.load(Relaxed), s.export_flags.load(Relaxed)) {
                    (EXPORT_NONE, _) => "no",
                    (EXPORT_LIVE, 0) => "whitelist",
                    (EXPORT_LIVE, _) => "any-pid",
                    (EXPORT_REVOKED, _) => "revoked",
                    _ => "corrupt",
                },
                whitelist: s.whitelist[..wl_len]
                    .iter()
                    .map(|e| e.tgid.load(Relaxed))
                    .collect(),
                flag: s.flag.load(Relaxed) != 0,
            });
        }
    }
    Ok(snap)
}
