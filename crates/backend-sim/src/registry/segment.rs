//! The segment's life: create or open it, validate its header, lay it out, remove it.
//!
//! Only this module interprets the header; everything past [`open`] trusts the [`Layout`] it
//! returns, because every field of it was checked against what the devices, capacity and
//! process count imply (R14).

use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use notify_api::{Error, Result};
use rustix::fs::FlockOperation;

use super::layout::*;
use crate::shm::{self, Mapping};

/// What a process asks for when it creates a namespace.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub namespace: String,
    pub devices: u32,
    pub capacity: u32,
    pub processes: u32,
    pub device_memory: u64,
}

/// Checks a namespace name: 1–64 characters of `[A-Za-z0-9._-]` (§4).
pub fn check_namespace(ns: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if ns.is_empty() || ns.len() > 64 || !ns.chars().all(ok_char) {
        return Err(Error::config(
            notify_api::AclError::RT_PARAM_INVALID,
            format!("namespace {ns:?} is invalid: use 1-64 characters of [A-Za-z0-9._-]"),
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

/// The header's [`Header::config_check`] for a configuration.
fn config_check(devices: u32, capacity: u32, max_procs: u32, device_memory: u64) -> u32 {
    let h = [
        u64::from(devices),
        u64::from(capacity),
        u64::from(max_procs),
        device_memory,
    ]
    .iter()
    .flat_map(|v| v.to_le_bytes())
    .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (h ^ (h >> 32)) as u32
}

/// R14: the error for a registry that fails a check.
pub(crate) fn corrupted(ns: &str, what: &str) -> Error {
    notify_api::err!(
        R14: RT_INTERNAL_ERROR,
        "the registry of namespace {ns:?} is corrupted ({what}); remove it with \
         `ascend-notify-sim remove --namespace {ns}` once no process uses it"
    )
}

/// The registry lock held across a critical section: an exclusive `flock` on the segment,
/// released on drop. (An `flock` belongs to the open file description, which all threads of a
/// process share, so callers take a process-local mutex first.)
#[derive(Debug)]
pub(crate) struct FlockGuard<'a> {
    fd: &'a OwnedFd,
}

impl<'a> FlockGuard<'a> {
    pub(crate) fn lock(fd: &'a OwnedFd) -> Result<Self> {
        shm::flock(fd, FlockOperation::LockExclusive)
            .map_err(|e| shm::os_error("locking the registry", e))?;
        Ok(Self { fd })
    }
}

impl Drop for FlockGuard<'_> {
    fn drop(&mut self) {
        let _ = shm::flock(self.fd, FlockOperation::Unlock);
    }
}

/// An opened, validated segment.
pub(crate) struct Opened {
    pub fd: OwnedFd,
    pub map: Mapping,
    pub layout: Layout,
}

const ATTACH_RETRY: Duration = Duration::from_millis(2);
const ATTACH_PATIENCE: Duration = Duration::from_secs(3);

/// Opens the namespace's segment; with `create`, creates and lays it out if it does not exist.
/// `Ok(None)` when it does not exist and `create` is `None`.
pub(crate) fn open(ns: &str, create: Option<&Config>) -> Result<Option<Opened>> {
    let started = Instant::now();
    loop {
        let Some((fd, created)) = shm::open_segment(ns, create.is_some())? else {
            return Ok(None);
        };
        let guard = FlockGuard::lock(&fd)?;
        if created {
            let cfg = create.expect("created only with a config");
            let layout = Layout::new(cfg.devices, cfg.capacity, cfg.processes);
            let map = rustix::fs::ftruncate(&fd, layout.total_size)
                .map_err(|e| shm::os_error("sizing the registry", e))
                .and_then(|()| Mapping::new(&fd, layout.total_size));
            let map = match map {
                Ok(map) => map,
                Err(e) => {
                    drop(guard);
                    let _ = shm::unlink_segment(ns);
                    return Err(e);
                }
            };
            init_header(&map, &layout, ns, cfg);
            drop(guard);
            return Ok(Some(Opened { fd, map, layout }));
        }
        let (size, links) = shm::segment_stat(&fd)?;
        if size == 0 {
            // Its creator has not sized it yet, or died before it could.
            drop(guard);
            if started.elapsed() > ATTACH_PATIENCE {
                if create.is_none() || any_process_alive(ns) {
                    return Err(corrupted(ns, "the segment was never initialised"));
                }
                // Its creator died before sizing it, and no live process uses the
                // namespace: nothing can be lost by starting afresh.
                let _ = shm::unlink_segment(ns);
            }
            std::thread::sleep(ATTACH_RETRY);
            continue;
        }
        let map = Mapping::new(&fd, size).map_err(|e| corrupted(ns, &e.reason()))?;
        let header = map.header();
        let state = header.state.load(Relaxed);
        if state == STATE_REMOVED {
            drop(guard);
            if links == 0 {
                // The last process detached and unlinked it while we were opening it.
                continue;
            }
            // The last detach marks and unlinks under the lock we hold, so a linked segment
            // marked removed was scribbled on, or its last process died in between.
            return Err(corrupted(ns, "it is marked removed but still exists"));
        }
        if header.magic.load(Relaxed) == 0
            && state == 0
            && create.is_some()
            && !any_process_alive(ns)
        {
            // Its creator died between sizing and writing the header (it holds the lock
            // meanwhile, and we hold it now), and nobody lives in it: start afresh.
            drop(guard);
            let _ = shm::unlink_segment(ns);
            continue;
        }
        let layout = validate_header(&map, ns, size)?;
        drop(guard);
        return Ok(Some(Opened { fd, map, layout }));
    }
}

/// Whether any process still holds its shared lock on the namespace's liveness file: then the
/// segment, however damaged, is in use and must not be replaced.
pub(crate) fn any_process_alive(ns: &str) -> bool {
    (0..shm::ALIVE_SHARDS).any(|shard| {
        shm::open_peer_lock(&shm::alive_path(ns, shard)).is_some_and(|fd| shm::holder_alive(&fd))
    })
}

fn init_header(map: &Mapping, layout: &Layout, ns: &str, cfg: &Config) {
    let h = map.header();
    h.version.store(VERSION, Relaxed);
    h.header_size.store(size_of::<Header>() as u32, Relaxed);
    h.devices.store(layout.devices, Relaxed);
    h.capacity.store(layout.capacity, Relaxed);
    h.max_procs.store(layout.max_procs, Relaxed);
    h.proc_size.store(size_of::<ProcSlot>() as u32, Relaxed);
    h.notify_size.store(size_of::<NotifySlot>() as u32, Relaxed);
    h.total_size.store(layout.total_size, Relaxed);
    h.ns_hash.store(ns_hash(ns), Relaxed);
    h.procs_offset.store(layout.procs_offset, Relaxed);
    h.notifies_offset.store(layout.notifies_offset, Relaxed);
    h.allocs_offset.store(layout.allocs_offset, Relaxed);
    h.exports_offset.store(layout.exports_offset, Relaxed);
    h.waits_offset.store(layout.waits_offset, Relaxed);
    h.device_memory.store(cfg.device_memory, Relaxed);
    h.config_check.store(
        config_check(cfg.devices, cfg.capacity, cfg.processes, cfg.device_memory),
        Relaxed,
    );
    h.pid_ns.store(shm::pid_namespace(), Relaxed);
    let (death_sem, death_tag) = super::deaths::create(ns, ns_hash(ns));
    h.death_sem.store(death_sem, Relaxed);
    h.death_tag.store(death_tag, Relaxed);
    h.magic.store(MAGIC, Relaxed);
    h.state.store(STATE_READY, Relaxed);
}

/// R14: a header is trusted only if every field matches what its configuration implies.
fn validate_header(map: &Mapping, ns: &str, size: u64) -> Result<Layout> {
    let h = map.header();
    if h.magic.load(Relaxed) != MAGIC {
        return Err(corrupted(
            ns,
            "wrong magic: not an ascend-notify registry of this version",
        ));
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
    let max_procs = h.max_procs.load(Relaxed);
    if devices == 0
        || devices > MAX_DEVICES
        || capacity == 0
        || capacity > MAX_CAPACITY
        || max_procs == 0
        || max_procs > MAX_PROCS
    {
        return Err(corrupted(
            ns,
            &format!(
                "{devices} devices x {capacity} slots x {max_procs} processes is out of range"
            ),
        ));
    }
    let layout = Layout::new(devices, capacity, max_procs);
    let fields_ok = h.header_size.load(Relaxed) as usize == size_of::<Header>()
        && h.proc_size.load(Relaxed) as usize == size_of::<ProcSlot>()
        && h.notify_size.load(Relaxed) as usize == size_of::<NotifySlot>()
        && h.procs_offset.load(Relaxed) == layout.procs_offset
        && h.notifies_offset.load(Relaxed) == layout.notifies_offset
        && h.allocs_offset.load(Relaxed) == layout.allocs_offset
        && h.exports_offset.load(Relaxed) == layout.exports_offset
        && h.waits_offset.load(Relaxed) == layout.waits_offset
        && h.total_size.load(Relaxed) == layout.total_size
        && h.ns_hash.load(Relaxed) == ns_hash(ns)
        && h.config_check.load(Relaxed)
            == config_check(devices, capacity, max_procs, h.device_memory.load(Relaxed));
    if !fields_ok {
        return Err(corrupted(
            ns,
            "header sizes or offsets do not match its configuration",
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
