//! The registry: one shared-memory segment per namespace, and every change to it.
//!
//! By concern:
//! - [`segment`]: create, open, validate and remove the segment; the RAII registry lock;
//! - [`procs`]: the process table: attach, detach, bare tgids (R16), liveness (R9);
//! - [`slots`]: notify slots: allocation (R11), references and their release (R8);
//! - [`policy`]: what R5–R7 allow: export, whitelist, import;
//! - [`reclaim`]: reclaiming dead processes (R9), as an explicit step.
//!
//! All changes happen under the registry lock, an exclusive `flock` on the segment taken after a
//! process-local mutex. A process killed while holding it releases it with its file descriptors.
//! Only the flag protocol (`wake`) runs without it.
//!
//! Everything read from shared memory is checked before it is used as an index or a length
//! (R14); a header that fails the checks refuses the attach with 507000.

pub(crate) mod board;
pub(crate) mod deaths;
pub(crate) mod layout;
pub(crate) mod memory;
pub(crate) mod policy;
pub(crate) mod procs;
pub(crate) mod reclaim;
pub(crate) mod segment;
pub(crate) mod slots;

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Mutex, MutexGuard, PoisonError};

use notify_api::{Result, err};

use crate::fork;
use crate::shm::{self, Mapping};
use layout::{Layout, NotifySlot, ProcSlot};
use segment::FlockGuard;

pub use procs::BareTgidMode;
pub use segment::check_namespace;
pub(crate) use segment::{Config, corrupted, ns_hash};
pub(crate) use slots::{NotifyRef, SlotRef};

/// This process's entry in the process table.
#[derive(Debug)]
pub(crate) struct Me {
    pub slot: u32,
    /// Its holder code: slot and generation (`layout::holder_code`).
    pub code: u32,
    pub tgid: i32,
    pub start_ns: u64,
    pub lock_path: String,
    /// Held (and `flock`ed) for as long as we are attached: the kernel drops it at our death.
    pub _lock_fd: OwnedFd,
    /// Holds a shared `flock` on the namespace's liveness file while we are attached.
    pub alive_fd: OwnedFd,
    pub _inherit: [fork::InheritGuard; 2],
}

/// This process's own view of what it holds, and caches of its probes.
#[derive(Debug, Default)]
pub(crate) struct Local {
    /// One entry per notify held, counting the `NotifyRef`s alive here (a handle, and a
    /// destroyed handle's pending tasks) (R8).
    pub refs: HashMap<(u32, u32), LocalRef>,
    /// Open descriptors of other processes' lock files, by (process slot, nonce), so that a
    /// liveness probe is one `flock` call. Bounded (see `procs`).
    pub peer_locks: HashMap<(u32, u64), OwnedFd>,
    /// When this process last took the amortised liveness step (R9), in `boot_ns`.
    pub last_step_ns: u64,
    pub detached: bool,
}

#[derive(Debug)]
pub(crate) struct LocalRef {
    pub generation: u32,
    pub count: u32,
    pub handle_live: bool,
}

/// A process's view of one namespace's registry.
#[derive(Debug)]
pub(crate) struct Registry {
    ns: String,
    hash: u64,
    /// The segment and its mapping; `None` only while a forked child leaks them (R17).
    os: Option<Os>,
    layout: Layout,
    me: Option<Me>,
    local: Mutex<Local>,
    /// The fork generation this registry was opened in (R17).
    generation: u64,
    _inherit: fork::InheritGuard,
}

/// What a registry holds of the OS.
#[derive(Debug)]
struct Os {
    /// The segment: its `flock` is the registry lock.
    fd: OwnedFd,
    map: Mapping,
}

/// The registry lock: the process-local mutex, then the `flock`.
pub(crate) struct Guard<'a> {
    pub reg: &'a Registry,
    pub local: MutexGuard<'a, Local>,
    _flock: FlockGuard<'a>,
}

impl Registry {
    /// Attaches this process to `cfg.namespace`, creating the namespace if it does not exist.
    pub(crate) fn attach(
        cfg: &Config,
        tgid_mode: BareTgidMode,
        start_offset_s: i64,
    ) -> Result<Self> {
        check_namespace(&cfg.namespace)?;
        cfg.check()?;
        loop {
            let opened =
                segment::open(&cfg.namespace, Some(cfg))?.expect("open with a config creates");
            let mut reg = Self::from_opened(&cfg.namespace, opened);
            if let Some(me) = procs::register(&reg, tgid_mode, start_offset_s)? {
                reg.me = Some(me);
                return Ok(reg);
            }
        }
    }

    /// Opens an existing namespace without attaching (the inspector), or `None` if it does not
    /// exist. Never creates one and never counts itself.
    pub(crate) fn inspect(ns: &str) -> Result<Option<Self>> {
        check_namespace(ns)?;
        Ok(segment::open(ns, None)?.map(|opened| Self::from_opened(ns, opened)))
    }

    fn from_opened(ns: &str, opened: segment::Opened) -> Self {
        let inherit = fork::inherit_guard(opened.fd.as_raw_fd());
        Self {
            ns: ns.to_owned(),
            hash: ns_hash(ns),
            os: Some(Os {
                fd: opened.fd,
                map: opened.map,
            }),
            layout: opened.layout,
            me: None,
            local: Mutex::default(),
            generation: fork::generation(),
            _inherit: inherit,
        }
    }

    pub(crate) fn namespace(&self) -> &str {
        &self.ns
    }

    pub(crate) fn hash(&self) -> u64 {
        self.hash
    }

    pub(crate) fn devices(&self) -> u32 {
        self.layout.devices
    }

    pub(crate) fn capacity(&self) -> u32 {
        self.layout.capacity
    }

    pub(crate) fn max_procs(&self) -> u32 {
        self.layout.max_procs
    }

    pub(crate) fn device_memory(&self) -> u64 {
        self.header().device_memory.load(Relaxed)
    }

    #[inline]
    fn map(&self) -> &Mapping {
        &self
            .os
            .as_ref()
            .expect("only a dropped registry has no mapping")
            .map
    }

    /// This process's entry; `None` for the inspector.
    pub(crate) fn me(&self) -> Option<&Me> {
        self.me.as_ref()
    }

    /// This process's bare tgid (R16), `0` for the inspector.
    pub(crate) fn tgid(&self) -> i32 {
        self.me.as_ref().map_or(0, |m| m.tgid)
    }

    /// This process's holder code, `0` for the inspector.
    pub(crate) fn my_code(&self) -> u32 {
        self.me.as_ref().map_or(0, |m| m.code)
    }

    /// Whether this registry was opened by this very process (not inherited through a fork).
    #[inline]
    pub(crate) fn is_own(&self) -> bool {
        self.generation == fork::generation()
    }

    pub(crate) fn header(&self) -> &layout::Header {
        self.map().header()
    }

    /// Process slot `i`; callers keep `i < max_procs` (R14).
    pub(crate) fn proc(&self, i: u32) -> &ProcSlot {
        self.map()
            .proc_slot(self.layout.procs_offset, i as usize)
            .expect("validated layout holds every process slot")
    }

    /// The slot of `device`/`index`; both must be in range (callers check, R14).
    #[inline]
    pub(crate) fn slot(&self, device: u32, index: u32) -> &NotifySlot {
        let flat = u64::from(device) * u64::from(self.layout.capacity) + u64::from(index);
        self.map()
            .notify_slot(self.layout.notifies_offset, flat)
            .expect("validated layout holds every slot")
    }

    /// Allocation entry `i` (`i < ALLOC_SLOTS`, R14).
    pub(crate) fn alloc_slot(&self, i: u32) -> &layout::AllocSlot {
        self.map()
            .entry(self.layout.allocs_offset, u64::from(i))
            .expect("validated layout holds every allocation entry")
    }

    /// Export entry `i` (`i < EXPORT_SLOTS`, R14).
    pub(crate) fn export_slot(&self, i: u32) -> &layout::ExportSlot {
        self.map()
            .entry(self.layout.exports_offset, u64::from(i))
            .expect("validated layout holds every export entry")
    }

    /// Entry `i` of process slot `proc`'s wait board (both in range: callers check, R14).
    pub(crate) fn wait_entry(&self, proc: u32, i: u32) -> &layout::WaitEntry {
        let flat = u64::from(proc) * u64::from(layout::WAITS_PER_PROC) + u64::from(i);
        self.map()
            .entry(self.layout.waits_offset, flat)
            .expect("validated layout holds every wait entry")
    }

    /// Takes the registry lock.
    pub(crate) fn lock(&self) -> Result<Guard<'_>> {
        let local = self.local.lock().unwrap_or_else(PoisonError::into_inner);
        if local.detached {
            return Err(err!(
                R10: RT_INVALID_HANDLE,
                "the runtime of namespace {:?} was finalized",
                self.ns
            ));
        }
        let os = self
            .os
            .as_ref()
            .expect("only a dropped registry has no segment");
        let flock = FlockGuard::lock(&os.fd)?;
        Ok(Guard {
            reg: self,
            local,
            _flock: flock,
        })
    }

    /// Removes this process from the registry; the last live process out reclaims the dead
    /// and removes the namespace (§4 "Cleanup").
    pub(crate) fn detach(&self) {
        if !self.is_own() {
            return;
        }
        crate::trace::flush();
        let Ok(mut g) = self.lock() else { return };
        g.local.detached = true;
        let last = procs::unregister(&mut g);
        if last {
            reclaim::sweep(&mut g);
            self.remove_files(&mut g);
        }
    }

    /// Marks the namespace removed (an attach that opened it before sees that, under the lock,
    /// and makes a new one) and removes every file of it. For the last live process only: the
    /// caller holds the lock and has reclaimed every dead one.
    pub(crate) fn remove_files(&self, _g: &mut Guard<'_>) {
        deaths::remove(self);
        self.header().state.store(layout::STATE_REMOVED, Relaxed);
        let _ = shm::unlink_segment(&self.ns);
        shm::remove_namespace_files(&self.ns);
    }
}

impl Config {
    pub(crate) fn check(&self) -> Result<()> {
        use layout::{MAX_CAPACITY, MAX_DEVICES, MAX_PROCS};
        let bad = |what: &str, max: u64, v: u64| {
            notify_api::Error::config(
                notify_api::AclError::RT_PARAM_INVALID,
                format!("{what} must be 1..={max}, not {v}"),
            )
        };
        if self.devices == 0 || self.devices > MAX_DEVICES {
            return Err(bad(
                "ASCEND_NOTIFY_SIM_DEVICES (devices)",
                MAX_DEVICES.into(),
                self.devices.into(),
            ));
        }
        if self.capacity == 0 || self.capacity > MAX_CAPACITY {
            return Err(bad(
                "ASCEND_NOTIFY_SIM_CAPACITY (notifies per device)",
                MAX_CAPACITY.into(),
                self.capacity.into(),
            ));
        }
        if self.processes == 0 || self.processes > MAX_PROCS {
            return Err(bad(
                "ASCEND_NOTIFY_SIM_PROCESSES (processes)",
                MAX_PROCS.into(),
                self.processes.into(),
            ));
        }
        Ok(())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if !self.is_own() {
            // R17: inherited through a fork. The parent owns all of it, and the child handler
            // already closed our copies of the descriptors: closing them again could close
            // another file that reused the numbers.
            std::mem::forget(self.me.take());
            std::mem::forget(self.os.take());
            return;
        }
        if self.me.is_some() {
            self.detach();
        }
    }
}
