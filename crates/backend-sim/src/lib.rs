//! The shared-memory simulator of Ascend IPC Notify.
//!
//! It reproduces the contract of `SEMANTICS.md` (R1–R15) across real OS processes that share
//! nothing but one POSIX shared-memory segment per namespace, so multi-process NPU
//! synchronisation can be tested on any Linux machine. The pieces:
//!
//! - `layout` and `shm`: the registry's bytes and the OS calls that map them;
//! - `registry`: every change to notifies and processes, under one cross-process lock, with
//!   reference counting and reclamation of dead processes (R8, R9);
//! - `wake`: the flag protocol, an atomic flag plus a shared futex (R1, §4 "Waking");
//! - `stream`: in-order executors per stream (R2, R3);
//! - this module: [`SimBackend`], [`SimStream`], [`SimNotify`], the per-thread current device
//!   (R13) and the argument checks in the order of R15.
//!
//! Configuration comes from [`SimBuilder`], else the `ASCEND_NOTIFY_SIM_*` variables.

mod layout;
mod registry;
mod shm;
mod stream;
mod wake;

#[cfg(feature = "testing")]
pub mod testing;

#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod fuzzing;

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use notify_api::{
    Backend, BackendKind, DeviceId, Error, ExportFlags, ExportKey, ImportFlags, NotifyFlags,
    NotifyId, Pid, Result, err,
};

use registry::{Config, Registry, SimKey, SlotRef};
use stream::StreamCore;

pub use registry::{NotifyInfo, Snapshot, check_namespace};

/// `ASCEND_NOTIFY_SIM_NAMESPACE`: the namespace when the builder names none.
pub const ENV_NAMESPACE: &str = "ASCEND_NOTIFY_SIM_NAMESPACE";
/// `ASCEND_NOTIFY_SIM_DEVICES`: devices of a namespace this process creates (default 8).
pub const ENV_DEVICES: &str = "ASCEND_NOTIFY_SIM_DEVICES";
/// `ASCEND_NOTIFY_SIM_CAPACITY`: notifies per device of a namespace this process creates
/// (default 8192).
pub const ENV_CAPACITY: &str = "ASCEND_NOTIFY_SIM_CAPACITY";
/// `ASCEND_NOTIFY_SIM_VIRTUAL=1`: this process runs in a virtualization instance (R12).
pub const ENV_VIRTUAL: &str = "ASCEND_NOTIFY_SIM_VIRTUAL";

/// Default devices per namespace.
pub const DEFAULT_DEVICES: u32 = 8;

/// The namespace used when neither the builder nor the environment names one: per user, so two
/// users of one machine never share a registry.
pub fn default_namespace() -> String {
    format!("user-{}", rustix::process::getuid().as_raw())
}

/// Configuration for [`SimBackend`]. Unset fields come from the environment, then defaults.
///
/// `devices` and `capacity` matter only to the process that creates the namespace: they are
/// stored in the registry header, and later processes use the header's values.
#[derive(Clone, Debug, Default)]
pub struct SimBuilder {
    namespace: Option<String>,
    devices: Option<u32>,
    capacity: Option<u32>,
    virtualized: Option<bool>,
}

fn env_u32(name: &str) -> Result<Option<u32>> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| err!(RT_PARAM_INVALID, "{name}={v:?} is not a number")),
        Err(_) => Ok(None),
    }
}

impl SimBuilder {
    /// The registry namespace (1–64 characters of `[A-Za-z0-9._-]`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Devices, if this process creates the namespace (1..=64).
    pub fn devices(mut self, devices: u32) -> Self {
        self.devices = Some(devices);
        self
    }

    /// Notifies per device, if this process creates the namespace (1..=65535; R11).
    pub fn capacity(mut self, capacity: u32) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// Whether this process runs in a virtualization instance (R12).
    pub fn virtualized(mut self, virtualized: bool) -> Self {
        self.virtualized = Some(virtualized);
        self
    }

    /// Attaches this process to the namespace, creating it if needed.
    ///
    /// # Errors
    /// `RT_PARAM_INVALID` (107000) for a bad namespace name or configuration value;
    /// `RT_INTERNAL_ERROR` (507000) for a registry with a wrong magic, version or layout (the
    /// message says how to remove it) or an OS failure.
    pub fn build(self) -> Result<SimBackend> {
        let namespace = match self.namespace {
            Some(ns) => ns,
            None => std::env::var(ENV_NAMESPACE).unwrap_or_else(|_| default_namespace()),
        };
        let devices = match self.devices {
            Some(d) => d,
            None => env_u32(ENV_DEVICES)?.unwrap_or(DEFAULT_DEVICES),
        };
        let capacity = match self.capacity {
            Some(c) => c,
            None => env_u32(ENV_CAPACITY)?.unwrap_or(notify_api::DEFAULT_CAPACITY),
        };
        let virtualized = self
            .virtualized
            .unwrap_or_else(|| std::env::var(ENV_VIRTUAL).is_ok_and(|v| v.trim() == "1"));
        let reg = Arc::new(Registry::attach(&Config {
            namespace,
            devices,
            capacity,
        })?);
        registry::detach_at_exit(&reg);
        Ok(SimBackend {
            shared: Arc::new(Shared {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                reg,
                virtualized,
                default_streams: Mutex::default(),
                peers: Mutex::default(),
            }),
        })
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// R13: the current device of this thread, per runtime instance.
    /// A short list, not a map: a thread rarely uses more than one runtime, and this lookup is
    /// on every enqueue (hashing it showed up as half the cost of a record).
    static CURRENT: RefCell<Vec<(u64, i32)>> = const { RefCell::new(Vec::new()) };
}

/// What every handle of one runtime instance shares.
#[derive(Debug)]
struct Shared {
    id: u64,
    reg: Arc<Registry>,
    virtualized: bool,
    default_streams: Mutex<HashMap<i32, Arc<StreamCore>>>,
    /// R7: (current device, peer device) pairs this process enabled.
    peers: Mutex<HashSet<(i32, i32)>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        for core in self
            .default_streams
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
        {
            core.shutdown();
        }
        // `try_with`: this may run while the thread's locals are being torn down.
        let _ = CURRENT.try_with(|c| c.borrow_mut().retain(|(id, _)| *id != self.id));
    }
}

// The errors of the enqueue checks, out of line: those checks are inlined into every record
// and wait.

/// R13: the error of an enqueue or query with no current device.
#[cold]
fn no_context() -> Error {
    err!(
        RT_CONTEXT_NULL,
        "R13: no current device in this thread; call set_device first"
    )
}

/// R10: a notify used with a stream (or a notify) of another runtime instance.
#[cold]
fn foreign_notify() -> Error {
    err!(
        RT_INVALID_HANDLE,
        "R10: the notify belongs to another runtime instance"
    )
}

/// R13: an enqueue on a stream of another device than the current one.
#[cold]
fn wrong_device(stream: &SimStream, current: i32) -> Error {
    err!(
        RT_STREAM_CONTEXT,
        "R13: the stream belongs to device {}, the current device is {current}",
        stream.core.device
    )
}

impl Shared {
    /// R13: the calling thread's current device, or 107002.
    #[inline]
    fn current(&self) -> Result<i32> {
        CURRENT
            .with(|c| {
                c.borrow()
                    .iter()
                    .find(|(id, _)| *id == self.id)
                    .map(|&(_, device)| device)
            })
            .ok_or_else(no_context)
    }

    fn check_device(&self, device: DeviceId) -> Result<u32> {
        let count = self.reg.devices();
        u32::try_from(device.0)
            .ok()
            .filter(|&d| d < count)
            .ok_or_else(|| {
                err!(
                    RT_INVALID_DEVICEID,
                    "R13: device {device} is outside 0..{count}"
                )
            })
    }

    fn check_virtual(&self, what: &str) -> Result<()> {
        if self.virtualized {
            return Err(err!(
                RT_FEATURE_NOT_SUPPORT,
                "R12: {what} is not supported in a virtualization instance"
            ));
        }
        Ok(())
    }

    fn peer_enabled(&self, from: i32, to: i32) -> bool {
        from == to
            || self
                .peers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(&(from, to))
    }

    fn enable_peer(&self, from: i32, to: i32) {
        self.peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((from, to));
    }
}

/// A process's attachment to a simulator namespace: the simulator's [`Backend`].
///
/// Cheap to clone; the process detaches when the last clone and the last handle made from it
/// are dropped, and the last process to detach removes the namespace.
#[derive(Clone, Debug)]
pub struct SimBackend {
    shared: Arc<Shared>,
}

impl SimBackend {
    /// A builder; see [`SimBuilder`].
    pub fn builder() -> SimBuilder {
        SimBuilder::default()
    }

    /// Attaches with the configuration from the environment.
    ///
    /// # Errors
    /// As [`SimBuilder::build`].
    pub fn from_env() -> Result<Self> {
        Self::builder().build()
    }

    /// The namespace this runtime is attached to.
    pub fn namespace(&self) -> &str {
        self.shared.reg.namespace()
    }

    /// Notifies per device in this namespace (R11).
    pub fn capacity(&self) -> u32 {
        self.shared.reg.capacity()
    }

    /// Whether this process is configured as a virtualization instance (R12).
    pub fn is_virtualized(&self) -> bool {
        self.shared.virtualized
    }
}

/// Removes a namespace: its segment and every lock file. Processes still attached keep their
/// mapping but no longer share it with newcomers. `Ok(false)` if it did not exist.
///
/// # Errors
/// `RT_PARAM_INVALID` (107000) for a bad name; `RT_INTERNAL_ERROR` for an OS failure.
pub fn remove_namespace(namespace: &str) -> Result<bool> {
    check_namespace(namespace)?;
    let existed = shm::unlink_segment(namespace)?;
    let files = shm::remove_lock_files(namespace);
    Ok(existed || files > 0)
}

/// Reads a namespace for the inspector: reclaims dead processes (R9), then reports every live
/// process and notify. Never creates the namespace and never attaches (so it does not count
/// itself); `Ok(None)` if the namespace does not exist.
///
/// # Errors
/// `RT_PARAM_INVALID` (107000) for a bad name; `RT_INTERNAL_ERROR` (507000) for a corrupted
/// registry.
pub fn inspect(namespace: &str) -> Result<Option<Snapshot>> {
    match Registry::inspect(namespace)? {
        Some(reg) => reg.snapshot().map(Some),
        None => Ok(None),
    }
}

/// Whether a namespace's segment exists.
pub fn namespace_exists(namespace: &str) -> bool {
    std::path::Path::new(shm::SHM_DIR)
        .join(shm::segment_name(namespace))
        .exists()
}

/// One reference this process holds on a notify (R8). The user's handle owns one, and every
/// task enqueued with it clones the `Arc`, so a slot is never freed under a pending task.
#[derive(Debug)]
pub(crate) struct NotifyRef {
    reg: Arc<Registry>,
    slot: SlotRef,
    /// The reference was already dropped together with the handle.
    released: std::sync::atomic::AtomicBool,
}

impl NotifyRef {
    #[inline]
    pub(crate) fn slot(&self) -> &layout::NotifySlot {
        self.reg.slot(self.slot.device, self.slot.index)
    }

    pub(crate) fn slot_ref(&self) -> SlotRef {
        self.slot
    }
}

impl Drop for NotifyRef {
    fn drop(&mut self) {
        if !*self.released.get_mut() {
            self.reg.release(self.slot);
        }
    }
}

/// A handle to a notify held by this process.
#[derive(Debug)]
pub struct SimNotify {
    shared: Arc<Shared>,
    inner: Arc<NotifyRef>,
    creator: bool,
    alive: bool,
}

impl SimNotify {
    /// The device the notify lives on.
    pub fn device(&self) -> DeviceId {
        DeviceId(self.inner.slot.device as i32)
    }

    /// Whether this process created the notify.
    pub fn is_creator(&self) -> bool {
        self.creator
    }

    #[inline]
    fn same_runtime(&self, shared: &Shared) -> Result<()> {
        if self.shared.id != shared.id {
            return Err(foreign_notify());
        }
        Ok(())
    }

    /// R13/R15 checks shared by record and wait: context, then the stream's device.
    ///
    /// Inlined into record and wait (also across crates, into ascendcl-sim's exports), with the
    /// errors out of line: this runs on every enqueue.
    #[inline]
    fn enqueue_checks(&self, stream: &SimStream) -> Result<i32> {
        let current = self.shared.current()?;
        self.same_runtime(&stream.shared)?;
        if stream.core.device != current {
            return Err(wrong_device(stream, current));
        }
        Ok(current)
    }

    fn release_handle(&mut self) {
        if std::mem::replace(&mut self.alive, false) {
            // With no task holding a clone, drop the reference in the same critical section
            // instead of taking the registry lock twice.
            let last = Arc::strong_count(&self.inner) == 1;
            self.shared
                .reg
                .handle_destroyed(self.inner.slot, self.creator, last);
            if last {
                self.inner.released.store(true, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for SimNotify {
    fn drop(&mut self) {
        self.release_handle();
    }
}

/// A stream of the simulator: an in-order executor (R2).
#[derive(Debug)]
pub struct SimStream {
    shared: Arc<Shared>,
    core: Arc<StreamCore>,
    owned: bool,
}

impl Drop for SimStream {
    fn drop(&mut self) {
        if self.owned {
            self.core.shutdown();
        }
    }
}

impl SimBackend {
    /// The user's handle to a notify this process just took a reference on (R8).
    fn handle(&self, slot: SlotRef, creator: bool) -> SimNotify {
        SimNotify {
            shared: Arc::clone(&self.shared),
            inner: Arc::new(NotifyRef {
                reg: Arc::clone(&self.shared.reg),
                slot,
                released: Default::default(),
            }),
            creator,
            alive: true,
        }
    }
}

impl Backend for SimBackend {
    type Stream = SimStream;
    type Notify = SimNotify;

    fn kind(&self) -> BackendKind {
        BackendKind::Sim
    }

    fn device_count(&self) -> Result<u32> {
        Ok(self.shared.reg.devices())
    }

    fn set_device(&self, device: DeviceId) -> Result<()> {
        self.shared.check_device(device)?;
        let id = self.shared.id;
        CURRENT.with(|c| {
            let mut c = c.borrow_mut();
            match c.iter_mut().find(|(i, _)| *i == id) {
                Some(entry) => entry.1 = device.0,
                None => c.push((id, device.0)),
            }
        });
        Ok(())
    }

    fn reset_device(&self, device: DeviceId) -> Result<()> {
        self.shared.check_device(device)?;
        CURRENT.with(|c| {
            c.borrow_mut()
                .retain(|&(id, current)| !(id == self.shared.id && current == device.0));
        });
        Ok(())
    }

    fn current_device(&self) -> Result<DeviceId> {
        self.shared.current().map(DeviceId)
    }

    fn bare_tgid(&self) -> Result<Pid> {
        Ok(Pid(self.shared.reg.pid()))
    }

    fn can_access_peer(&self, device: DeviceId, peer: DeviceId) -> Result<bool> {
        self.shared.check_device(device)?;
        self.shared.check_device(peer)?;
        if device == peer {
            return Err(err!(
                RT_PARAM_INVALID,
                "R7: a device cannot be its own peer ({device})"
            ));
        }
        Ok(true)
    }

    fn enable_peer_access(&self, peer: DeviceId, flags: u32) -> Result<()> {
        let current = self.shared.current()?;
        if flags != 0 {
            return Err(err!(
                RT_PARAM_INVALID,
                "R7: peer access flags must be 0, not {flags:#x}"
            ));
        }
        self.shared.check_device(peer)?;
        if peer.0 == current {
            return Err(err!(
                RT_PARAM_INVALID,
                "R7: device {current} cannot enable peer access to itself"
            ));
        }
        self.shared.enable_peer(current, peer.0);
        Ok(())
    }

    fn create_stream(&self) -> Result<SimStream> {
        let device = self.shared.current()?;
        Ok(SimStream {
            shared: Arc::clone(&self.shared),
            core: StreamCore::new(device),
            owned: true,
        })
    }

    fn default_stream(&self) -> Result<SimStream> {
        let device = self.shared.current()?;
        let core = Arc::clone(
            self.shared
                .default_streams
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(device)
                .or_insert_with(|| StreamCore::new(device)),
        );
        Ok(SimStream {
            shared: Arc::clone(&self.shared),
            core,
            owned: false,
        })
    }

    fn create_notify(&self, flags: NotifyFlags) -> Result<SimNotify> {
        let device = self.shared.current()?;
        let slot = self.shared.reg.create(device as u32, flags)?;
        Ok(self.handle(slot, true))
    }

    fn import_notify(&self, key: &ExportKey, flags: ImportFlags) -> Result<SimNotify> {
        let current = self.shared.current()?;
        self.shared.check_virtual("importing an IPC notify")?;
        let key = SimKey::decode(key)?;
        let enable = flags.contains(ImportFlags::ENABLE_PEER_ACCESS);
        let peer_ok = |device: u32| enable || self.shared.peer_enabled(current, device as i32);
        let slot = self.shared.reg.import(&key, peer_ok)?;
        if enable && slot.device as i32 != current {
            self.shared.enable_peer(current, slot.device as i32);
        }
        Ok(self.handle(slot, false))
    }

    fn batch_reset(&self, notifies: &[&SimNotify]) -> Result<()> {
        if notifies.is_empty() {
            return Err(err!(RT_PARAM_INVALID, "R1: batch reset of zero notifies"));
        }
        for n in notifies {
            n.same_runtime(&self.shared)?;
        }
        for n in notifies {
            wake::reset(n.inner.slot());
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl notify_api::Stream for SimStream {
    type Backend = SimBackend;

    fn device(&self) -> DeviceId {
        DeviceId(self.core.device)
    }

    fn synchronize(&self) -> Result<()> {
        self.core.synchronize(None)
    }

    fn synchronize_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        self.core.synchronize(timeout.map(|t| Instant::now() + t))
    }

    async fn synchronize_async(&self) -> Result<()> {
        self.core.synchronize_async().await
    }

    fn destroy(self) -> Result<()> {
        drop(self);
        Ok(())
    }
}

impl notify_api::Notify for SimNotify {
    type Backend = SimBackend;

    fn id(&self) -> Result<NotifyId> {
        Ok(NotifyId(self.inner.slot.index))
    }

    fn export(&self, flags: ExportFlags) -> Result<ExportKey> {
        self.shared.check_virtual("exporting an IPC notify")?;
        if !self.creator {
            return Err(err!(
                RT_NO_PERMISSION,
                "R5: only the creating process may export this notify"
            ));
        }
        self.shared.reg.export(self.inner.slot, flags)
    }

    fn set_import_pids(&self, pids: &[Pid]) -> Result<()> {
        self.shared.check_virtual("setting an import whitelist")?;
        if pids.is_empty() {
            return Err(err!(RT_PARAM_INVALID, "R6: the pid list is empty"));
        }
        if let Some(bad) = pids.iter().find(|p| p.0 <= 0) {
            return Err(err!(RT_PARAM_INVALID, "R6: {bad} is not a process id"));
        }
        if !self.creator {
            return Err(err!(
                RT_NO_PERMISSION,
                "R6: only the creating process may set the whitelist"
            ));
        }
        self.shared.reg.set_import_pids(self.inner.slot, pids)
    }

    #[inline]
    fn record(&self, stream: &SimStream) -> Result<()> {
        self.enqueue_checks(stream)?;
        stream.core.record(&self.inner);
        Ok(())
    }

    fn wait_and_reset(&self, stream: &SimStream, timeout_secs: u32) -> Result<()> {
        let current = self.enqueue_checks(stream)?;
        if !self.creator {
            return Err(err!(
                RT_PARAM_INVALID,
                "R4: only the creating process may wait on this notify"
            ));
        }
        let device = self.inner.slot.device as i32;
        if device != current {
            return Err(err!(
                RT_PARAM_INVALID,
                "R4: the notify lives on device {device}; a wait on device {current} is rejected"
            ));
        }
        stream.core.wait(&self.inner, timeout_secs);
        Ok(())
    }

    fn destroy(mut self) -> Result<()> {
        self.release_handle();
        Ok(())
    }
}
