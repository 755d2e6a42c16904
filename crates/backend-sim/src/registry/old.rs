//! The registry: one shared-memory segment per namespace, and every operation that changes it.
//!
//! All changes to slots and the process table happen under the registry lock, an exclusive
//! `flock` on the segment taken after a process-local mutex (an `flock` belongs to the open file
//! description, which all threads of a process share). A process killed while holding it
//! releases it with its file descriptors. Only the flag protocol (`wake`) runs without it.
//!
//! Everything read from shared memory is checked before it is used as an index or a length
//! (R14); a header that fails the checks refuses the attach with 507000.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use notify_api::{AclError, Error, ExportFlags, ExportKey, NotifyFlags, Pid, Result, err};
use rustix::fs::FlockOperation;

use crate::layout::*;
use crate::shm::{self, Mapping};

/// What a process asks for when it attaches.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub namespace: String,
    pub devices: u32,
    pub capacity: u32,
}

/// Checks a namespace name: 1–64 characters of `[A-Za-z0-9._-]` (SEMANTICS.md §4).
pub fn check_namespace(ns: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if ns.is_empty() || ns.len() > 64 || !ns.chars().all(ok_char) {
        return Err(err!(
            RT_PARAM_INVALID,
            "namespace {ns:?} is invalid: use 1-64 characters of [A-Za-z0-9._-]"
        ));
    }
    Ok(())
}

/// FNV-1a of the namespace name: the key's namespace tag (R5a).
pub(crate) fn ns_hash(ns: &str) -> u64 {
    ns.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn corrupted(ns: &str, what: &str) -> Error {
    Error::new(
        AclError::RT_INTERNAL_ERROR,
        format!(
            "R14: the registry of namespace {ns:?} is corrupted ({what}); remove it with \
             `ascend-notify-sim remove --namespace {ns}` once no process uses it"
        ),
    )
}

/// Where a notify lives: device, slot index, and the generation the slot had when we took it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct SlotRef {
    pub device: u32,
    pub index: u32,
    pub generation: u32,
}

/// The decoded form of a simulator key (R5): `ans1-<ns hash>-<device><slot>-<generation>-<secret>`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct SimKey {
    pub ns_hash: u64,
    pub slot: SlotRef,
    pub secret: u64,
}

const KEY_PREFIX: &str = "ans1-";

impl SimKey {
    pub(crate) fn encode(&self) -> ExportKey {
        let s = self.slot;
        let text = format!(
            "{KEY_PREFIX}{:016x}-{:02x}{:04x}-{:08x}-{:016x}",
            self.ns_hash, s.device, s.index, s.generation, self.secret
        );
        ExportKey::new(text).expect("a sim key is 54 printable characters")
    }

    /// R7: a key not in this format is 107000.
    pub(crate) fn decode(key: &ExportKey) -> Result<Self> {
        let bad = || {
            err!(
                RT_PARAM_INVALID,
                "R7: {:?} is not a simulator notify key",
                key.as_str()
            )
        };
        let rest = key.as_str().strip_prefix(KEY_PREFIX).ok_or_else(bad)?;
        let parts: Vec<&str> = rest.split('-').collect();
        let lens = [16, 6, 8, 16];
        if parts.len() != 4
            || parts.iter().zip(lens).any(|(p, n)| {
                p.len() != n
                    || !p
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            })
        {
            return Err(bad());
        }
        let hex = |s: &str| u64::from_str_radix(s, 16).map_err(|_| bad());
        Ok(Self {
            ns_hash: hex(parts[0])?,
            slot: SlotRef {
                device: hex(&parts[1][..2])? as u32,
                index: hex(&parts[1][2..])? as u32,
                generation: hex(parts[2])? as u32,
            },
            secret: hex(parts[3])?,
        })
    }
}

/// This process's entry in the process table.
#[derive(Debug)]
struct Me {
    slot: usize,
    pid: i32,
    lock_path: String,
    /// Held (and `flock`ed) for as long as we are attached: the kernel drops it at our death.
    _lock_fd: OwnedFd,
}

/// This process's own references, per slot (R8): one entry per notify held, counting the
/// `NotifyRef`s alive here (a handle, and a destroyed handle's pending tasks).
#[derive(Debug, Default)]
pub(crate) struct Local {
    refs: HashMap<(u32, u32), LocalRef>,
    /// Open descriptors of other processes' lock files, by (proc slot, nonce): a liveness probe
    /// is then one `flock` call instead of open + flock + close.
    peer_locks: HashMap<(usize, u64), OwnedFd>,
    detached: bool,
}

#[derive(Debug)]
struct LocalRef {
    generation: u32,
    count: u32,
    handle_live: bool,
}

/// A process's view of one namespace's registry.
#[derive(Debug)]
pub(crate) struct Registry {
    ns: String,
    hash: u64,
    fd: OwnedFd,
    map: Mapping,
    layout: Layout,
    me: Option<Me>,
    local: Mutex<Local>,
}

/// The registry lock: the process-local mutex, then the `flock`.
pub(crate) struct Guard<'a> {
    reg: &'a Registry,
    pub local: MutexGuard<'a, Local>,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let _ = shm::flock(&self.reg.fd, FlockOperation::Unlock);
    }
}

/// A consistent reading of a whole namespace, taken under the registry lock after reclaiming
/// dead processes (R9).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Snapshot {
    /// Devices in the namespace.
    pub devices: u32,
    /// Notifies per device.
    pub capacity: u32,
    /// Pids of the live attached processes.
    pub processes: Vec<i32>,
    /// Every live notify.
    pub notifies: Vec<NotifyInfo>,
}

/// One live notify, as the inspector shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NotifyInfo {
    /// Its device.
    pub device: u32,
    /// Its id (`aclrtGetNotifyId`).
    pub id: u32,
    /// The creator's pid, or `None` once the creator is gone.
    pub creator: Option<i32>,
    /// Pids of the processes holding a reference.
    pub holders: Vec<i32>,
    /// `"no"`, `"whitelist"`, `"any-pid"` or `"revoked"`.
    pub exported: &'static str,
    /// The import whitelist.
    pub whitelist: Vec<i32>,
    /// Whether the flag is set.
    pub flag: bool,
}

const ATTACH_RETRY: Duration = Duration::from_millis(2);
const ATTACH_PATIENCE: Duration = Duration::from_secs(3);

impl Registry {
    /// Attaches this process to `cfg.namespace`, creating the namespace if it does not exist.
    pub(crate) fn attach(cfg: &Config) -> Result<Self> {
        check_namespace(&cfg.namespace)?;
        if cfg.devices == 0 || cfg.devices > MAX_DEVICES {
            return Err(err!(
                RT_PARAM_INVALID,
                "devices must be 1..={MAX_DEVICES}, not {}",
                cfg.devices
            ));
        }
        if cfg.capacity == 0 || cfg.capacity > MAX_CAPACITY {
            return Err(err!(
                RT_PARAM_INVALID,
                "capacity must be 1..={MAX_CAPACITY}, not {}",
                cfg.capacity
            ));
        }
        let mut reg = Self::open(&cfg.namespace, Some(cfg))?.expect("open with a config creates");
        reg.register()?;
        Ok(reg)
    }

    /// Opens an existing namespace without attaching (the inspector), or `None` if it does not
    /// exist. Never creates one.
    pub(crate) fn inspect(ns: &str) -> Result<Option<Self>> {
        check_namespace(ns)?;
        Self::open(ns, None)
    }

    fn open(ns: &str, create: Option<&Config>) -> Result<Option<Self>> {
        let started = Instant::now();
        loop {
            let Some((fd, created)) = shm::open_segment(ns, create.is_some())? else {
                return Ok(None);
            };
            shm::flock(&fd, FlockOperation::LockExclusive)
                .map_err(|e| shm::os_error("locking the registry", e))?;
            let unlock = |fd: &OwnedFd| {
                let _ = shm::flock(fd, FlockOperation::Unlock);
            };
            if created {
                let cfg = create.expect("created only with a config");
                let layout = Layout::new(cfg.devices, cfg.capacity);
                if let Err(e) = rustix::fs::ftruncate(&fd, layout.total_size) {
                    unlock(&fd);
                    let _ = shm::unlink_segment(ns);
                    return Err(shm::os_error("sizing the registry", e));
                }
                let map = match Mapping::new(&fd, layout.total_size) {
                    Ok(map) => map,
                    Err(e) => {
                        unlock(&fd);
                        let _ = shm::unlink_segment(ns);
                        return Err(e);
                    }
                };
                init_header(&map, &layout, ns_hash(ns));
                let reg = Self::unattached(ns, fd, map, layout);
                unlock(&reg.fd);
                return Ok(Some(reg));
            }
            let (size, links) = shm::segment_stat(&fd)?;
            if size == 0 {
                // Its creator has not sized it yet, or died before it could.
                unlock(&fd);
                if started.elapsed() > ATTACH_PATIENCE {
                    if create.is_none() || shm::any_live_lock_file(ns) {
                        return Err(corrupted(ns, "the segment was never initialised"));
                    }
                    // Its creator died before sizing it, and no live process uses the
                    // namespace: nothing can be lost by starting afresh.
                    let _ = shm::unlink_segment(ns);
                }
                std::thread::sleep(ATTACH_RETRY);
                continue;
            }
            let map = Mapping::new(&fd, size).map_err(|e| corrupted(ns, e.reason()))?;
            let header = map.header();
            let state = header.state.load(Relaxed);
            if state == STATE_REMOVED {
                unlock(&fd);
                if links == 0 {
                    // The last process detached and unlinked it while we were opening it.
                    continue;
                }
                // `detach` marks and unlinks under the lock we hold, so a linked segment marked
                // removed was scribbled on, or its last process died in between.
                return Err(corrupted(ns, "it is marked removed but still exists"));
            }
            if header.magic.load(Relaxed) == 0
                && state == 0
                && create.is_some()
                && never_attached(&map)
            {
                // Its creator died between sizing and writing the header (it holds the lock
                // meanwhile, and we hold it now). Nobody can have attached: start afresh.
                unlock(&fd);
                let _ = shm::unlink_segment(ns);
                continue;
            }
            let layout = match validate_header(&map, ns, size) {
                Ok(layout) => layout,
                Err(e) => {
                    unlock(&fd);
                    return Err(e);
                }
            };
            let reg = Self::unattached(ns, fd, map, layout);
            unlock(&reg.fd);
            return Ok(Some(reg));
        }
    }

    /// A validated mapping, not yet registered as a process (the inspector stays so).
    fn unattached(ns: &str, fd: OwnedFd, map: Mapping, layout: Layout) -> Self {
        Self {
            ns: ns.to_owned(),
            hash: ns_hash(ns),
            fd,
            map,
            layout,
            me: None,
            local: Mutex::default(),
        }
    }

    /// Claims a process slot and this process's liveness lock.
    fn register(&mut self) -> Result<()> {
        let pid = rustix::process::getpid().as_raw_nonzero().get();
        let me = {
            let mut g = self.lock()?;
            g.reclaim_dead();
            let slot = (0..MAX_PROCS)
                .find(|&i| self.proc(i).state.load(Relaxed) != PROC_LIVE)
                .ok_or_else(|| {
                    err!(
                        RT_INTERNAL_ERROR,
                        "namespace {:?} already has {MAX_PROCS} processes attached",
                        self.ns
                    )
                })?;
            let nonce = random_u64()?;
            let lock_path = shm::proc_lock_path(&self.ns, slot, nonce);
            let lock_fd = shm::create_proc_lock(&lock_path)?;
            let p = self.proc(slot);
            p.pid.store(pid, Relaxed);
            p.nonce.store(nonce, Relaxed);
            p.state.store(PROC_LIVE, Relaxed);
            drop(g);
            Me {
                slot,
                pid,
                lock_path,
                _lock_fd: lock_fd,
            }
        };
        self.me = Some(me);
        Ok(())
    }

    pub(crate) fn namespace(&self) -> &str {
        &self.ns
    }

    pub(crate) fn devices(&self) -> u32 {
        self.layout.devices
    }

    pub(crate) fn capacity(&self) -> u32 {
        self.layout.capacity
    }

    pub(crate) fn pid(&self) -> i32 {
        self.me.as_ref().map_or(0, |m| m.pid)
    }

    fn me_slot(&self) -> usize {
        self.me.as_ref().map_or(usize::MAX, |m| m.slot)
    }

    fn proc(&self, i: usize) -> &ProcSlot {
        self.map
            .proc_slot(self.layout.procs_offset, i)
            .expect("validated layout holds MAX_PROCS proc slots")
    }

    /// The slot of `device`/`index`; both must be in range (callers check, R14).
    pub(crate) fn slot(&self, device: u32, index: u32) -> &NotifySlot {
        let flat = u64::from(device) * u64::from(self.layout.capacity) + u64::from(index);
        self.map
            .notify_slot(self.layout.notifies_offset, flat)
            .expect("validated layout holds every slot")
    }

    /// Takes the registry lock.
    pub(crate) fn lock(&self) -> Result<Guard<'_>> {
        let local = self.local.lock().unwrap_or_else(PoisonError::into_inner);
        if local.detached {
            return Err(err!(
                RT_INVALID_HANDLE,
                "R10: the runtime of namespace {:?} was finalized",
                self.ns
            ));
        }
        shm::flock(&self.fd, FlockOperation::LockExclusive)
            .map_err(|e| shm::os_error("locking the registry", e))?;
        Ok(Guard { reg: self, local })
    }

    /// R11: creates a notify on `device`, reclaiming dead processes first.
    pub(crate) fn create(&self, device: u32, flags: NotifyFlags) -> Result<SlotRef> {
        let mut g = self.lock()?;
        g.reclaim_dead();
        let cap = self.layout.capacity;
        let hdr = self.map.header();
        let hint = hdr.free_hint[device as usize].load(Relaxed) % cap;
        let index = (0..cap)
            .map(|i| (hint + i) % cap)
            .find(|&i| self.slot(device, i).state.load(Relaxed) != SLOT_LIVE)
            .ok_or_else(|| {
                err!(
                    RT_NO_NOTIFY_RESOURCE,
                    "R11: device {device} already holds {cap} live notifies"
                )
            })?;
        let me = self.me_slot();
        let s = self.slot(device, index);
        s.flag.store(0, Relaxed);
        s.waiters.store(0, Relaxed);
        s.recorder_cpu.store(0, Relaxed);
        s.creator_proc.store(me as u32, Relaxed);
        s.creator_pid.store(self.pid(), Relaxed);
        s.create_flags.store(flags.bits() as u32, Relaxed);
        s.export.store(EXPORT_NONE, Relaxed);
        s.export_flags.store(0, Relaxed);
        s.whitelist_len.store(0, Relaxed);
        s.secret.store(0, Relaxed);
        for (w, word) in s.holders.iter().enumerate() {
            word.store(if me / 64 == w { 1 << (me % 64) } else { 0 }, Relaxed);
        }
        s.state.store(SLOT_LIVE, Relaxed);
        hdr.free_hint[device as usize].store((index + 1) % cap, Relaxed);
        let hw = &hdr.high_water[device as usize];
        if hw.load(Relaxed).min(cap) <= index {
            hw.store(index + 1, Relaxed);
        }
        let slot = SlotRef {
            device,
            index,
            generation: s.generation.load(Relaxed),
        };
        g.local.refs.insert(
            (device, index),
            LocalRef {
                generation: slot.generation,
                count: 1,
                handle_live: true,
            },
        );
        Ok(slot)
    }

    /// The live slot `r` names, or `None` if it was freed or reused (or scribbled over).
    fn live(&self, r: SlotRef) -> Option<&NotifySlot> {
        let s = self.slot(r.device, r.index);
        (s.state.load(Relaxed) == SLOT_LIVE && s.generation.load(Relaxed) == r.generation)
            .then_some(s)
    }

    fn live_or_corrupt(&self, r: SlotRef) -> Result<&NotifySlot> {
        self.live(r)
            .ok_or_else(|| corrupted(&self.ns, "a slot this process holds was freed under it"))
    }

    /// R5: exports `r` (the caller checked it is the creator's handle).
    pub(crate) fn export(&self, r: SlotRef, flags: ExportFlags) -> Result<ExportKey> {
        let _g = self.lock()?;
        let s = self.live_or_corrupt(r)?;
        if s.creator_proc.load(Relaxed) as usize != self.me_slot() {
            return Err(err!(
                RT_NO_PERMISSION,
                "R5: only the creating process may export notify {}",
                r.index
            ));
        }
        if s.export.load(Relaxed) != EXPORT_NONE {
            return Err(err!(
                RT_INTERNAL_ERROR,
                "R5: notify {} on device {} was already exported",
                r.index,
                r.device
            ));
        }
        let secret = random_u64()?;
        s.secret.store(secret, Relaxed);
        s.export_flags.store(flags.bits() as u32, Relaxed);
        s.export.store(EXPORT_LIVE, Relaxed);
        Ok(SimKey {
            ns_hash: self.hash,
            slot: r,
            secret,
        }
        .encode())
    }

    /// R6: adds `pids` to the whitelist of `r`.
    pub(crate) fn set_import_pids(&self, r: SlotRef, pids: &[Pid]) -> Result<()> {
        let _g = self.lock()?;
        let s = self.live_or_corrupt(r)?;
        if s.creator_proc.load(Relaxed) as usize != self.me_slot() {
            return Err(err!(
                RT_NO_PERMISSION,
                "R6: only the creating process may set the whitelist"
            ));
        }
        let export = s.export.load(Relaxed);
        if export == EXPORT_LIVE
            && s.export_flags.load(Relaxed) & ExportFlags::DISABLE_PID_VALIDATION.bits() as u32 != 0
        {
            return Err(err!(
                RT_NO_PERMISSION,
                "R6: notify {} was exported with DISABLE_PID_VALIDATION; it has no whitelist",
                r.index
            ));
        }
        if export != EXPORT_LIVE {
            return Err(err!(
                RT_PARAM_INVALID,
                "R6: notify {} must be exported before its whitelist is set",
                r.index
            ));
        }
        let len = s.whitelist_len.load(Relaxed) as usize;
        if len > WHITELIST_MAX {
            return Err(corrupted(&self.ns, "whitelist length out of range"));
        }
        let current: Vec<i32> = s.whitelist[..len].iter().map(|p| p.load(Relaxed)).collect();
        let mut added: Vec<i32> = Vec::new();
        for pid in pids {
            if !current.contains(&pid.0) && !added.contains(&pid.0) {
                added.push(pid.0);
            }
        }
        if len + added.len() > WHITELIST_MAX {
            return Err(err!(
                RT_PARAM_INVALID,
                "R6: the whitelist holds {len} pids; adding {} more would exceed {WHITELIST_MAX}",
                added.len()
            ));
        }
        for (i, pid) in added.iter().enumerate() {
            s.whitelist[len + i].store(*pid, Relaxed);
        }
        s.whitelist_len.store((len + added.len()) as u32, Relaxed);
        Ok(())
    }

    /// R7: resolves `key` and takes a reference for this process. `peer_ok` says whether this
    /// process may use a notify on the given device without the import enabling peer access.
    pub(crate) fn import(
        &self,
        key: &SimKey,
        peer_ok: impl FnOnce(u32) -> bool,
    ) -> Result<SlotRef> {
        let mut g = self.lock()?;
        g.reclaim_dead();
        let unknown = || {
            err!(
                RT_DRV_INTERNAL_ERROR,
                "R7: the key is unknown or was revoked"
            )
        };
        if key.ns_hash != self.hash {
            return Err(err!(
                RT_DRV_INTERNAL_ERROR,
                "R7: the key belongs to another namespace than {:?}",
                self.ns
            ));
        }
        let r = key.slot;
        if r.device >= self.layout.devices || r.index >= self.layout.capacity {
            return Err(unknown());
        }
        let s = self.live(r).ok_or_else(unknown)?;
        if s.export.load(Relaxed) != EXPORT_LIVE || s.secret.load(Relaxed) != key.secret {
            return Err(unknown());
        }
        let mine = g
            .local
            .refs
            .get(&(r.device, r.index))
            .filter(|l| l.generation == r.generation);
        if mine.is_some_and(|l| l.handle_live) {
            return Err(err!(
                RT_INTERNAL_ERROR,
                "R7: this process already holds notify {} of device {}",
                r.index,
                r.device
            ));
        }
        if s.export_flags.load(Relaxed) & ExportFlags::DISABLE_PID_VALIDATION.bits() as u32 == 0 {
            let len = s.whitelist_len.load(Relaxed) as usize;
            if len > WHITELIST_MAX {
                return Err(corrupted(&self.ns, "whitelist length out of range"));
            }
            let pid = self.pid();
            if !s.whitelist[..len].iter().any(|p| p.load(Relaxed) == pid) {
                return Err(err!(
                    RT_DRV_INTERNAL_ERROR,
                    "R7: pid {pid} is not on the whitelist of this notify"
                ));
            }
        }
        if !peer_ok(r.device) {
            return Err(err!(
                RT_DRV_INTERNAL_ERROR,
                "R7: peer access to device {} is not enabled (enable it, or import with ENABLE_PEER_ACCESS)",
                r.device
            ));
        }
        let me = self.me_slot();
        s.holders[me / 64].fetch_or(1 << (me % 64), Relaxed);
        match g.local.refs.get_mut(&(r.device, r.index)) {
            Some(l) if l.generation == r.generation => {
                l.count += 1;
                l.handle_live = true;
            }
            _ => {
                g.local.refs.insert(
                    (r.device, r.index),
                    LocalRef {
                        generation: r.generation,
                        count: 1,
                        handle_live: true,
                    },
                );
            }
        }
        Ok(r)
    }

    /// R8: the user's handle to `r` is gone; if we created it, its key is revoked.
    pub(crate) fn handle_destroyed(&self, r: SlotRef, creator: bool, last_ref: bool) {
        let Ok(mut g) = self.lock() else { return };
        if creator && let Some(s) = self.live(r) {
            s.export.store(EXPORT_REVOKED, Relaxed);
        }
        if last_ref {
            // No task holds the notify: drop the reference in the same critical section.
            g.release_locked(r);
            return;
        }
        // R9: a destroy reclaims dead processes (release_locked does it on the path above).
        g.reclaim_dead();
        if let Some(l) = g
            .local
            .refs
            .get_mut(&(r.device, r.index))
            .filter(|l| l.generation == r.generation)
        {
            l.handle_live = false;
        }
    }

    /// R8: one of this process's `NotifyRef`s to `r` is gone; the last one drops our holder bit,
    /// and the last holder frees the slot.
    pub(crate) fn release(&self, r: SlotRef) {
        let Ok(mut g) = self.lock() else { return };
        g.release_locked(r);
    }

    /// Removes this process from the registry; the last process out removes the namespace.
    pub(crate) fn detach(&self) {
        let Ok(mut g) = self.lock() else { return };
        g.reclaim_dead();
        if let Some(me) = &self.me {
            g.reclaim_proc(me.slot);
            let _ = std::fs::remove_file(&me.lock_path);
        }
        g.local.detached = true;
        let others = (0..MAX_PROCS).any(|i| self.proc(i).state.load(Relaxed) == PROC_LIVE);
        if !others {
            self.map.header().state.store(STATE_REMOVED, Relaxed);
            let _ = shm::unlink_segment(&self.ns);
            shm::remove_lock_files(&self.ns);
        }
    }

    /// Reclaims dead processes and reads the whole registry (the inspector).
    pub(crate) fn snapshot(&self) -> Result<Snapshot> {
        let mut g = self.lock()?;
        g.reclaim_dead();
        let mut snap = Snapshot {
            devices: self.layout.devices,
            capacity: self.layout.capacity,
            ..Snapshot::default()
        };
        let pid_of = |i: usize| self.proc(i).pid.load(Relaxed);
        snap.processes = (0..MAX_PROCS)
            .filter(|&i| self.proc(i).state.load(Relaxed) == PROC_LIVE)
            .map(pid_of)
            .collect();
        for device in 0..self.layout.devices {
            for index in 0..self.high_water(device) {
                let s = self.slot(device, index);
                if s.state.load(Relaxed) != SLOT_LIVE {
                    continue;
                }
                let holders = (0..MAX_PROCS)
                    .filter(|&i| s.holders[i / 64].load(Relaxed) & (1 << (i % 64)) != 0)
                    .map(pid_of)
                    .collect();
                let creator = s.creator_proc.load(Relaxed) as usize;
                let wl_len = (s.whitelist_len.load(Relaxed) as usize).min(WHITELIST_MAX);
                snap.notifies.push(NotifyInfo {
                    device,
                    id: index,
                    creator: (creator < MAX_PROCS).then(|| s.creator_pid.load(Relaxed)),
                    holders,
                    exported: match (s.export.load(Relaxed), s.export_flags.load(Relaxed)) {
                        (EXPORT_NONE, _) => "no",
                        (EXPORT_LIVE, 0) => "whitelist",
                        (EXPORT_LIVE, _) => "any-pid",
                        (EXPORT_REVOKED, _) => "revoked",
                        _ => "corrupt",
                    },
                    whitelist: s.whitelist[..wl_len]
                        .iter()
                        .map(|p| p.load(Relaxed))
                        .collect(),
                    flag: s.flag.load(Relaxed) != 0,
                });
            }
        }
        Ok(snap)
    }

    /// One bit per live process slot.
    fn live_mask(&self) -> [u64; MAX_PROCS / 64] {
        let mut mask = [0u64; MAX_PROCS / 64];
        for i in 0..MAX_PROCS {
            if self.proc(i).state.load(Relaxed) == PROC_LIVE {
                mask[i / 64] |= 1 << (i % 64);
            }
        }
        mask
    }

    fn high_water(&self, device: u32) -> u32 {
        self.map.header().high_water[device as usize]
            .load(Relaxed)
            .min(self.layout.capacity)
    }
}

impl Guard<'_> {
    /// `Registry::release` with the lock held; reclaims dead processes first (R9).
    pub(crate) fn release_locked(&mut self, r: SlotRef) {
        self.reclaim_dead();
        let key = (r.device, r.index);
        let Some(l) = self
            .local
            .refs
            .get_mut(&key)
            .filter(|l| l.generation == r.generation)
        else {
            return;
        };
        l.count = l.count.saturating_sub(1);
        if l.count > 0 {
            return;
        }
        self.local.refs.remove(&key);
        if let Some(s) = self.reg.live(r) {
            self.drop_holder(r.device, r.index, s, self.reg.me_slot());
        }
    }

    /// R9: reclaims every attached process whose liveness lock the kernel has released.
    pub(crate) fn reclaim_dead(&mut self) {
        let reg = self.reg;
        for i in 0..MAX_PROCS {
            if i == reg.me_slot() {
                continue;
            }
            let p = reg.proc(i);
            if p.state.load(Relaxed) != PROC_LIVE {
                continue;
            }
            let nonce = p.nonce.load(Relaxed);
            let path = shm::proc_lock_path(&reg.ns, i, nonce);
            if !shm::proc_alive(&mut self.local.peer_locks, (i, nonce), &path) {
                self.reclaim_proc(i);
                let _ = std::fs::remove_file(&path);
                self.local.peer_locks.remove(&(i, nonce));
            }
        }
        // Forget descriptors of processes others reclaimed (or that detached).
        if !self.local.peer_locks.is_empty() {
            self.local.peer_locks.retain(|&(i, nonce), _| {
                let p = reg.proc(i);
                p.state.load(Relaxed) == PROC_LIVE && p.nonce.load(Relaxed) == nonce
            });
        }
    }

    /// Drops every reference proc slot `i` holds, then frees its entry. Idempotent, so a
    /// reclaimer that dies half way leaves work the next one finishes.
    fn reclaim_proc(&self, i: usize) {
        let reg = self.reg;
        // Holders that count: live processes other than `i`. Bits of free process slots (a
        // scribble, or a holder killed half way through `drop_holder`) keep nothing alive (R14).
        let mut live = reg.live_mask();
        live[i / 64] &= !(1 << (i % 64));
        for device in 0..reg.layout.devices {
            for index in 0..reg.high_water(device) {
                let s = reg.slot(device, index);
                if s.state.load(Relaxed) != SLOT_LIVE {
                    continue;
                }
                if s.creator_proc.load(Relaxed) as usize == i {
                    // R9: a dead creator has destroyed its handle: revoke, and forget it, so a
                    // process that reuses slot `i` is not taken for the creator. Only the
                    // creator waits (R4), so a waiter count left by its death is stale.
                    s.export.store(EXPORT_REVOKED, Relaxed);
                    s.creator_proc.store(u32::MAX, Relaxed);
                    s.waiters.store(0, Relaxed);
                }
                s.holders[i / 64].fetch_and(!(1 << (i % 64)), Relaxed);
                self.free_if_unheld(device, index, s, &live);
            }
        }
        reg.proc(i).state.store(PROC_FREE, Relaxed);
    }

    fn drop_holder(&self, device: u32, index: u32, s: &NotifySlot, proc: usize) {
        s.holders[proc / 64].fetch_and(!(1 << (proc % 64)), Relaxed);
        self.free_if_unheld(device, index, s, &self.reg.live_mask());
    }

    /// R8: frees the slot once no live process holds it.
    fn free_if_unheld(
        &self,
        device: u32,
        index: u32,
        s: &NotifySlot,
        live: &[u64; MAX_PROCS / 64],
    ) {
        if s.holders
            .iter()
            .zip(live)
            .all(|(w, l)| w.load(Relaxed) & l == 0)
        {
            s.state.store(SLOT_FREE, Relaxed);
            for w in &s.holders {
                w.store(0, Relaxed);
            }
            s.generation
                .store(s.generation.load(Relaxed).wrapping_add(1), Relaxed);
            s.export.store(EXPORT_NONE, Relaxed);
            s.whitelist_len.store(0, Relaxed);
            s.secret.store(0, Relaxed);
            s.flag.store(0, Relaxed);
            s.waiters.store(0, Relaxed);
            let hint = &self.reg.map.header().free_hint[device as usize];
            if hint.load(Relaxed) > index {
                hint.store(index, Relaxed);
            }
        }
    }
}

/// Whether no process ever registered in this segment (all process slots zero).
fn never_attached(map: &Mapping) -> bool {
    let procs_offset = Layout::new(1, 1).procs_offset;
    (0..MAX_PROCS).all(|i| {
        map.proc_slot(procs_offset, i)
            .is_some_and(|p| p.state.load(Relaxed) == 0 && p.nonce.load(Relaxed) == 0)
    })
}

fn init_header(map: &Mapping, layout: &Layout, hash: u64) {
    let h = map.header();
    h.version.store(VERSION, Relaxed);
    h.header_size.store(size_of::<Header>() as u32, Relaxed);
    h.devices.store(layout.devices, Relaxed);
    h.capacity.store(layout.capacity, Relaxed);
    h.max_procs.store(MAX_PROCS as u32, Relaxed);
    h.proc_size.store(size_of::<ProcSlot>() as u32, Relaxed);
    h.notify_size.store(size_of::<NotifySlot>() as u32, Relaxed);
    h.total_size.store(layout.total_size, Relaxed);
    h.ns_hash.store(hash, Relaxed);
    h.procs_offset.store(layout.procs_offset, Relaxed);
    h.notifies_offset.store(layout.notifies_offset, Relaxed);
    h.magic.store(MAGIC, Relaxed);
    h.state.store(STATE_READY, Relaxed);
}

/// R14: a header is trusted only if every field matches what its devices and capacity imply.
fn validate_header(map: &Mapping, ns: &str, size: u64) -> Result<Layout> {
    let h = map.header();
    if h.magic.load(Relaxed) != MAGIC {
        return Err(corrupted(ns, "wrong magic: not an ascend-notify registry"));
    }
    let version = h.version.load(Relaxed);
    if version != VERSION {
        return Err(corrupted(
            ns,
            &format!("layout version {version}, this build reads {VERSION}"),
        ));
    }
    if h.state.load(Relaxed) != STATE_READY {
        return Err(corrupted(ns, "its creator died before initialising it"));
    }
    let devices = h.devices.load(Relaxed);
    let capacity = h.capacity.load(Relaxed);
    if devices == 0 || devices > MAX_DEVICES || capacity == 0 || capacity > MAX_CAPACITY {
        return Err(corrupted(
            ns,
            &format!("{devices} devices x {capacity} slots is out of range"),
        ));
    }
    let layout = Layout::new(devices, capacity);
    let fields_ok = h.header_size.load(Relaxed) as usize == size_of::<Header>()
        && h.max_procs.load(Relaxed) as usize == MAX_PROCS
        && h.proc_size.load(Relaxed) as usize == size_of::<ProcSlot>()
        && h.notify_size.load(Relaxed) as usize == size_of::<NotifySlot>()
        && h.procs_offset.load(Relaxed) == layout.procs_offset
        && h.notifies_offset.load(Relaxed) == layout.notifies_offset
        && h.total_size.load(Relaxed) == layout.total_size
        && h.ns_hash.load(Relaxed) == ns_hash(ns);
    if !fields_ok {
        return Err(corrupted(
            ns,
            "header sizes or offsets do not match its devices and capacity",
        ));
    }
    if size < layout.total_size || (map.len() as u64) < layout.total_size {
        return Err(corrupted(
            ns,
            &format!(
                "segment has {size} bytes, its header needs {}",
                layout.total_size
            ),
        ));
    }
    Ok(layout)
}

/// Registries this process is attached to, detached by [`detach_all_at_exit`].
static ATTACHED: Mutex<Vec<std::sync::Weak<Registry>>> = Mutex::new(Vec::new());

/// §4: a process also detaches cleanly at normal exit, even if it never dropped its runtime
/// (a `static`, `std::process::exit`, a C program that skips `aclFinalize`).
pub(crate) fn detach_at_exit(reg: &std::sync::Arc<Registry>) {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        // SAFETY: `atexit` stores a plain function pointer; the handler is `extern "C"`, never
        // unwinds (it catches panics), and only touches data that lives for the whole program.
        unsafe {
            libc::atexit(detach_all_at_exit);
        }
    });
    let mut list = ATTACHED.lock().unwrap_or_else(PoisonError::into_inner);
    list.retain(|w| w.strong_count() > 0);
    list.push(std::sync::Arc::downgrade(reg));
}

extern "C" fn detach_all_at_exit() {
    let _ = std::panic::catch_unwind(|| {
        let list = std::mem::take(&mut *ATTACHED.lock().unwrap_or_else(PoisonError::into_inner));
        for reg in list.iter().filter_map(std::sync::Weak::upgrade) {
            reg.detach();
        }
    });
}

impl Drop for Registry {
    fn drop(&mut self) {
        // The inspector opens without attaching: it has nothing to detach.
        if self.me.is_some() {
            self.detach();
        }
    }
}

pub(crate) fn random_u64() -> Result<u64> {
    getrandom::u64().map_err(|e| err!(RT_INTERNAL_ERROR, "no OS randomness: {e}"))
}
