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
    /// Every wait queued or running now, in a live process (§4 "Diagnosis"), as far as the
    /// processes' wait boards list them.
    pub waits: Vec<WaitInfo>,
    /// Waits queued or running beyond what the boards list (32 per process).
    pub waits_unlisted: u32,
    /// The hazards of §5 seen in this namespace.
    pub hazards: Hazards,
    /// Every live allocation (M1).
    pub allocations: Vec<AllocInfo>,
    /// Every IPC memory export still tracked (M3), with its importers.
    pub exports: Vec<ExportInfo>,
}

/// A wait queued or running now (§4 "Diagnosis").
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct WaitInfo {
    /// The waiting process's bare tgid.
    pub pid: i32,
    /// The device of the stream it waits on.
    pub device: i32,
    /// The stream's number in its process.
    pub stream: u32,
    /// The notify: its device and id.
    pub notify_device: u32,
    /// The notify's id.
    pub notify_id: u32,
    /// The notify's creator (bare tgid), `None` if the slot no longer holds it.
    pub creator: Option<i32>,
    /// How long ago it was queued.
    pub waited_ms: u64,
    /// Its timeout in seconds; 0 waits forever (R3).
    pub timeout_s: u32,
    /// Whether it is running (waiting on the flag) rather than queued behind other tasks.
    pub running: bool,
    /// Whether a live holder other than the waiter can still record the notify.
    pub releasable: bool,
}

/// The hazards of §5: unsupported usages the simulator served (or refused, strict).
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Hazards {
    /// An exporter closed its key while importers still held the memory.
    pub exporter_closed_first: u64,
    /// Exported memory was freed while it was imported.
    pub freed_while_imported: u64,
    /// The latest ones: (bare tgid of the process, kind).
    pub recent: Vec<(i32, &'static str)>,
}

/// A live allocation (M1).
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct AllocInfo {
    /// Its device.
    pub device: u32,
    /// Bytes (rounded up to its page size).
    pub size: u64,
    /// The owner's bare tgid; `None` once the owner freed it or died (it stays for importers).
    pub owner: Option<i32>,
    /// Live imports of it.
    pub imports: u32,
}

/// An IPC memory export (M3).
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ExportInfo {
    /// The device of the memory.
    pub device: u32,
    /// Where in its allocation, and how many bytes.
    pub offset: u64,
    /// Its length.
    pub size: u64,
    /// The exporter's bare tgid.
    pub exporter: i32,
    /// `"whitelist"` or `"any-pid"`, or `"closed"` once the exporter closed the key.
    pub state: &'static str,
    /// The whitelist (bare tgids).
    pub whitelist: Vec<i32>,
    /// Bare tgids of the processes that imported it.
    pub importers: Vec<i32>,
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
/// `Ok(None)` if the namespace does not exist. When no live process is left, the namespace is
/// removed as its last clean detach would have (§4 "Cleanup"): a namespace whose last process
/// was killed leaves nothing in `/dev/shm` once reclaimed.
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
    let after = live_procs(&reg);
    if after == 0 {
        reg.remove_files(&mut g);
    }
    Ok(Some(before - after))
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
                creator: tgid_of(creator),
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
    let now = crate::registry::board::coarse_ns();
    for proc in &snap.processes {
        if !proc.alive {
            continue;
        }
        snap.waits_unlisted += reg.proc(proc.slot).waits_unlisted.load(Relaxed);
        for i in 0..WAITS_PER_PROC {
            let e = reg.wait_entry(proc.slot, i);
            let state = e.state.load(Relaxed);
            if state != WAIT_QUEUED && state != WAIT_RUNNING {
                continue;
            }
            let (nd, ni, ng) = (
                e.notify_device.load(Relaxed),
                e.notify_index.load(Relaxed),
                e.notify_generation.load(Relaxed),
            );
            let slot = crate::registry::SlotRef {
                device: nd,
                index: ni,
                generation: ng,
            };
            let me = holder_code(proc.slot, reg.proc(proc.slot).generation.load(Relaxed));
            let (creator, others) = match reg.live(slot) {
                Some(s) => (
                    tgid_of(s.creator.load(Relaxed)),
                    s.holders
                        .iter()
                        .map(|h| h.load(Relaxed))
                        .filter(|&h| h != 0 && h != me)
                        .collect::<Vec<u32>>(),
                ),
                None => (None, Vec::new()),
            };
            let releasable = others.into_iter().any(|code| {
                holder_slot(code)
                    .is_some_and(|p| p < reg.max_procs() && tgid_of(code).is_some() && g.alive(p))
            });
            snap.waits.push(WaitInfo {
                pid: proc.tgid,
                device: e.device.load(Relaxed),
                stream: e.stream.load(Relaxed),
                notify_device: nd,
                notify_id: ni,
                creator,
                waited_ms: now.saturating_sub(e.queued_ns.load(Relaxed)) / 1_000_000,
                timeout_s: e.timeout_s.load(Relaxed),
                running: state == WAIT_RUNNING,
                releasable,
            });
        }
    }
    let hdr = reg.header();
    snap.hazards.exporter_closed_first =
        hdr.hazards[HAZARD_EXPORTER_CLOSED_FIRST as usize].load(Relaxed);
    snap.hazards.freed_while_imported =
        hdr.hazards[HAZARD_FREED_WHILE_IMPORTED as usize].load(Relaxed);
    let seq = hdr.hazard_seq.load(Relaxed);
    for k in seq.saturating_sub(HAZARD_LOG as u64)..seq {
        let entry = hdr.hazard_log[(k as usize) % HAZARD_LOG].load(Relaxed);
        let kind = match entry as u32 {
            HAZARD_EXPORTER_CLOSED_FIRST => "exporter-closed-first",
            HAZARD_FREED_WHILE_IMPORTED => "freed-while-imported",
            _ => "unknown",
        };
        snap.hazards.recent.push(((entry >> 32) as i32, kind));
    }
    let allocs = hdr.alloc_high_water.load(Relaxed).min(ALLOC_SLOTS);
    for i in 0..allocs {
        let a = reg.alloc_slot(i);
        let state = a.state.load(Relaxed);
        if state == ALLOC_FREE {
            continue;
        }
        snap.allocations.push(AllocInfo {
            device: a.device.load(Relaxed),
            size: a.size.load(Relaxed),
            owner: (state == ALLOC_LIVE)
                .then(|| tgid_of(a.owner.load(Relaxed)))
                .flatten(),
            imports: a.imports.load(Relaxed),
        });
    }
    let exports = hdr.export_high_water.load(Relaxed).min(EXPORT_SLOTS);
    for i in 0..exports {
        let e = reg.export_slot(i);
        let state = e.state.load(Relaxed);
        if state == EXPORT_SLOT_FREE {
            continue;
        }
        let alloc = e.alloc.load(Relaxed).min(ALLOC_SLOTS - 1);
        let len = (e.whitelist_len.load(Relaxed) as usize).min(MEM_IMPORTERS);
        snap.exports.push(ExportInfo {
            device: reg.alloc_slot(alloc).device.load(Relaxed),
            offset: e.offset.load(Relaxed),
            size: e.size.load(Relaxed),
            exporter: e.exporter_tgid.load(Relaxed),
            state: match (state, e.flags.load(Relaxed) & 1) {
                (EXPORT_SLOT_LIVE, 0) => "whitelist",
                (EXPORT_SLOT_LIVE, _) => "any-pid",
                _ => "closed",
            },
            whitelist: e.whitelist[..len]
                .iter()
                .map(|w| w.tgid.load(Relaxed))
                .collect(),
            importers: e
                .importers
                .iter()
                .filter_map(|h| tgid_of(h.load(Relaxed)))
                .collect(),
        });
    }
    Ok(snap)
}
