//! The traits every backend implements: a marker type per backend ([`Backend`]) that names its
//! handle types, and one trait per handle: [`Runtime`], [`Device`], [`Stream`], [`Notify`].
//!
//! Each method documents its behaviour rule by rule (`SEMANTICS.md`, see [`crate::spec`]) in a
//! `# Behavior` section; [`crate::conformance`] checks the same sentences against every backend.
//!
//! # The device is a value
//! The C API keeps a *current device* per thread (R13): every call works on whatever device the
//! calling thread last set. The Rust API does not: a [`Device`] is a value made by
//! [`Runtime::device`], every stream and notify is made from one and keeps it alive, and every
//! operation binds its device to the calling thread itself (a thread-local compare, and a call
//! into the runtime only when the thread's current context differs). So any handle works from
//! any thread with no set-up call, and nothing safe can release a device under a live handle:
//! the device is released (`aclrtResetDevice`) only when its last clone and every handle made
//! from it are gone. The per-thread calls (`aclrtSetDevice`, `aclrtResetDevice`,
//! `aclrtGetDevice`) stay in the C layer, which keeps R13 exactly.
//!
//! As a consequence the context errors of R13 (107002 no context, 107003 a stream of another
//! context) cannot happen through these traits; the C ABI still reports them.

use std::fmt;
use std::time::Duration;

use crate::{
    DeviceId, DeviceRange, Download, EventFlags, ExportFlags, ExportKey, ImportFlags, MallocPolicy,
    MemExportFlags, MemImportFlags, MemInfo, NotifyFlags, NotifyId, Pid, Result, Timeout,
};

/// Which implementation a runtime runs on.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// The shared-memory simulator (`backend-sim`): any Linux machine, no NPU.
    Sim,
    /// The vendor runtime, `libascendcl.so`, loaded at run time (`backend-ascend`).
    Ascend,
}

impl BackendKind {
    /// `"sim"` or `"ascend"`, the values `ASCEND_NOTIFY_BACKEND` takes.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sim => "sim",
            Self::Ascend => "ascend",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for BackendKind {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "sim" => Ok(Self::Sim),
            "ascend" => Ok(Self::Ascend),
            other => Err(crate::Error::config(
                crate::AclError::RT_PARAM_INVALID,
                format!("unknown backend {other:?}: expected \"sim\" or \"ascend\""),
            )),
        }
    }
}

/// A backend, as a marker type: names the handle types of one implementation.
///
/// The wgpu-hal `Api` pattern: generic code is written once over `B: Backend` and reaches every
/// handle type through it (`B::Device`, `B::Notify`), each of which already is `Clone` (the
/// runtime and the device) or `Send + Sync + 'static` (every handle), so no extra bounds are
/// needed to clone a device or move a handle to a thread. Handles of two backends are two types:
/// recording a simulator notify on a stream of the real runtime does not compile.
///
/// ```
/// use notify_api::prelude::*;
/// use notify_api::{Backend, DeviceId, NotifyFlags, Result, Timeout};
///
/// fn round_trip<B: Backend>(rt: &B::Runtime) -> Result<()> {
///     let device = rt.device(DeviceId(0))?;
///     let notify = device.create_notify(NotifyFlags::DEFAULT)?;
///     let stream = device.create_stream()?;
///     let recorder = std::thread::spawn({
///         let device = device.clone();
///         move || -> Result<()> {
///             let other = device.create_stream()?;
///             other.record(&notify)?; // any handle works from any thread
///             other.synchronize()?;
///             Ok(notify.destroy()?)
///         }
///     });
///     recorder.join().expect("recorder thread")?;
///     stream.synchronize()
/// }
/// ```
pub trait Backend: Copy + Send + Sync + fmt::Debug + 'static {
    /// A process's attachment to this backend.
    type Runtime: Runtime<Backend = Self>;
    /// A device (a context on it) of this backend.
    type Device: Device<Backend = Self>;
    /// A stream of this backend.
    type Stream: Stream<Backend = Self>;
    /// A notify handle of this backend.
    type Notify: Notify<Backend = Self>;
    /// Device memory this process allocated.
    type Buffer: Buffer<Backend = Self>;
    /// An IPC export of a range of a buffer.
    type MemExport: MemExport<Backend = Self>;
    /// Another process's memory, imported.
    type MemImport: MemImport<Backend = Self>;
    /// An event.
    type Event: Event<Backend = Self>;
}

/// A process attached to a backend (`aclInit`): the entry point, cheap to clone.
///
/// The process detaches (`aclFinalize`) when the last clone and every handle made from it are
/// dropped.
pub trait Runtime: Clone + Send + Sync + fmt::Debug + 'static {
    /// The backend this runtime belongs to.
    type Backend: Backend<Runtime = Self>;

    /// Which implementation this is.
    fn kind(&self) -> BackendKind;

    /// The number of devices (`aclrtGetDeviceCount`).
    ///
    /// # Behavior
    /// - R13: valid device ids are `0..count`.
    ///
    /// # Errors
    /// Only backend failures.
    fn device_count(&self) -> Result<u32>;

    /// The device `id`: its default context, retained until the returned value, its clones and
    /// every handle made from them are gone (`aclrtSetDevice` once, `aclrtResetDevice` at the
    /// end).
    ///
    /// # Behavior
    /// - R13: ids outside `0..count` are refused.
    /// - C1: the value stands for the device's default context.
    ///
    /// # Errors
    /// `RT_INVALID_DEVICEID` (107001) for an id outside `0..count`.
    fn device(&self, id: DeviceId) -> Result<<Self::Backend as Backend>::Device>;

    /// This process's bare tgid, as the driver sees it (`aclrtDeviceGetBareTgid`).
    ///
    /// # Behavior
    /// - R16: the pid in the host's PID namespace; in a container (or with
    ///   `ASCEND_NOTIFY_SIM_BARE_TGID=remap`) it is not `getpid()`. This is the value to give
    ///   an exporter for its whitelist, never `std::process::id()`.
    ///
    /// # Errors
    /// Only backend failures.
    fn bare_tgid(&self) -> Result<Pid>;

    /// Whether `device` can access `peer` (`aclrtDeviceCanAccessPeer`).
    ///
    /// # Behavior
    /// - R7: the simulator answers `true` for any two distinct valid devices (sim).
    ///
    /// # Errors
    /// `RT_INVALID_DEVICEID` (107001) for an id outside `0..count`; `RT_PARAM_INVALID` (107000)
    /// when `device == peer`.
    fn can_access_peer(&self, device: DeviceId, peer: DeviceId) -> Result<bool>;

    /// Clears the flags of `notifies` now, from the host (`aclrtNotifyBatchReset`).
    ///
    /// # Behavior
    /// - R1: any holder may call it; all or nothing.
    ///
    /// # Errors
    /// `RT_PARAM_INVALID` (107000) for an empty slice; `RT_INVALID_HANDLE` (107017) when a handle
    /// is no longer valid, and then no flag is cleared.
    fn batch_reset(&self, notifies: &[&<Self::Backend as Backend>::Notify]) -> Result<()>;
}

/// A device, as a value: one context on it, retained for as long as this value, its clones and
/// the handles made from it live. Cheap to clone.
pub trait Device: Clone + Send + Sync + fmt::Debug + 'static {
    /// The backend this device belongs to.
    type Backend: Backend<Device = Self>;

    /// The device's ordinal.
    fn id(&self) -> DeviceId;

    /// The runtime this device belongs to.
    fn runtime(&self) -> &<Self::Backend as Backend>::Runtime;

    /// This process's bare tgid (`aclrtDeviceGetBareTgid`); the same as
    /// [`Runtime::bare_tgid`].
    ///
    /// # Behavior
    /// - R16: see [`Runtime::bare_tgid`].
    ///
    /// # Errors
    /// Only backend failures.
    fn bare_tgid(&self) -> Result<Pid>;

    /// Creates a stream on this device (`aclrtCreateStream`).
    ///
    /// # Behavior
    /// - R13, C1: the stream is bound to this device's context; it keeps the device alive.
    /// - R2: its tasks run in order, concurrently with other streams.
    ///
    /// # Errors
    /// Only backend failures.
    fn create_stream(&self) -> Result<<Self::Backend as Backend>::Stream>;

    /// This device's default stream: what a NULL `aclrtStream` means in C.
    ///
    /// # Behavior
    /// - R2, R13: one default stream per device context and process; dropping this handle does
    ///   not destroy it.
    ///
    /// # Errors
    /// Only backend failures.
    fn default_stream(&self) -> Result<<Self::Backend as Backend>::Stream>;

    /// Creates a notify on this device (`aclrtCreateNotify`). The flag starts clear.
    ///
    /// # Behavior
    /// - R1: a binary flag, initially clear.
    /// - R8: the handle holds one reference; this process is the creator.
    /// - R11: at most `capacity` (8192) live notifies per device; a full device is reclaimed
    ///   (R9) before it is reported full.
    ///
    /// # Errors
    /// `RT_NO_NOTIFY_RESOURCE` (207009) when the device is full.
    fn create_notify(&self, flags: NotifyFlags) -> Result<<Self::Backend as Backend>::Notify>;

    /// Imports a notify that another process exported (`aclrtNotifyImportByKey`), with this
    /// device current.
    ///
    /// # Behavior
    /// - R7: the result refers to the same flag as the exporter's. Refusals, in R15 order: a key
    ///   not in the backend's format (107000); unknown, foreign-namespace or revoked key
    ///   (507899); a notify this process already holds (507000); with an export flag of `0x0`,
    ///   a caller whose bare tgid is not whitelisted at this moment, or that started after its
    ///   entry was set (507899); a whitelist that already holds 15 other processes (507899);
    ///   with `ImportFlags::DEFAULT`, a notify on another device without peer access enabled
    ///   (507899). `ENABLE_PEER_ACCESS` enables it.
    /// - R8: the new handle holds one reference.
    /// - R12: 207000 in a virtualization instance.
    ///
    /// # Errors
    /// `RT_FEATURE_NOT_SUPPORT` (207000), `RT_PARAM_INVALID` (107000), `RT_DRV_INTERNAL_ERROR`
    /// (507899), `RT_INTERNAL_ERROR` (507000).
    fn import_notify(
        &self,
        key: &ExportKey,
        flags: ImportFlags,
    ) -> Result<<Self::Backend as Backend>::Notify>;

    /// Enables access from this device to `peer` for this process
    /// (`aclrtDeviceEnablePeerAccess` with `flags` 0).
    ///
    /// # Behavior
    /// - R7: per process and per pair (this device → peer); enabling twice is a no-op. Imports
    ///   with `ImportFlags::DEFAULT` of a notify on `peer` need it.
    ///
    /// # Errors
    /// `RT_INVALID_DEVICEID` (107001) for a bad `peer`; `RT_PARAM_INVALID` (107000) when `peer`
    /// is this device.
    fn enable_peer_access(&self, peer: DeviceId) -> Result<()>;

    /// Creates another context on this device (`aclrtCreateContext`), as a device value of its
    /// own: streams and events made from it are bound to it (C1).
    ///
    /// # Behavior
    /// - C1: the new context is destroyed when the value, its clones and every handle made from
    ///   them are gone; the default context is never destroyed.
    ///
    /// # Errors
    /// Only backend failures.
    fn create_context(&self) -> Result<Self>;

    /// Waits for every stream of this device (`aclrtSynchronizeDevice`) and reports their first
    /// failure.
    ///
    /// # Behavior
    /// - S1: every stream of the device in this process, whatever its context.
    /// - H1: from a host function of one of them it fails with 107000 instead of waiting for
    ///   itself.
    ///
    /// # Errors
    /// The first failure among the streams' tasks (e.g. 107019).
    fn synchronize(&self) -> Result<()>;

    /// Allocates `size` bytes of device memory (`aclrtMalloc`).
    ///
    /// # Behavior
    /// - M1: starts on a page boundary of the policy's page size; the device's memory is
    ///   counted across every process (on the simulator: `ASCEND_NOTIFY_SIM_DEVICE_MEMORY` per
    ///   device). The memory is not host memory: only copies and sets reach it.
    /// - M6: dropping the buffer frees it, after this process's queued tasks ran.
    ///
    /// # Errors
    /// `RT_PARAM_INVALID` (107000) for `size == 0`; `RT_MEMORY_ALLOCATION` (207001) when the
    /// device has no room.
    fn alloc(
        &self,
        size: usize,
        policy: MallocPolicy,
    ) -> Result<<Self::Backend as Backend>::Buffer>;

    /// This device's free and total memory (`aclrtGetMemInfo`).
    ///
    /// # Behavior
    /// - M1: on the simulator, the same for every memory attribute.
    ///
    /// # Errors
    /// Only backend failures.
    fn mem_info(&self) -> Result<MemInfo>;

    /// Imports `len` bytes of another process's exported memory (`aclrtIpcMemImportByKey`).
    ///
    /// The C call maps the memory and returns only its address, as CUDA's IPC does: the
    /// exporter sends the length with the key, as CANN programs do, and `len` is what the
    /// import's range then covers.
    ///
    /// # Behavior
    /// - M5: refusals, in order: a malformed key (107000); then 507899 for an unknown or closed
    ///   key, a key this process exported or already imported, a caller not whitelisted (or
    ///   whitelisted before it started), another device without peer access and without
    ///   `ENABLE_PEER_ACCESS`. The memory is mapped at an address of this process that is never
    ///   the exporter's; what one side writes through the runtime, the other reads. Imported
    ///   memory takes only device-to-device copies and sets enqueued on a stream.
    /// - M6: dropping the import closes it (`aclrtIpcMemClose`).
    /// - R12: 207000 in a virtualization instance.
    ///
    /// - `len == 0` → 107000. The simulator knows the exported length and refuses a longer
    ///   `len` (107000, M5); the NPU backend cannot check it, and a longer one makes copies past
    ///   the export fail on the device (or reach other device memory of this process).
    ///
    /// # Errors
    /// `RT_PARAM_INVALID` (107000), `RT_DRV_INTERNAL_ERROR` (507899),
    /// `RT_FEATURE_NOT_SUPPORT` (207000).
    fn import_memory(
        &self,
        key: &ExportKey,
        len: usize,
        flags: MemImportFlags,
    ) -> Result<<Self::Backend as Backend>::MemImport>;

    /// Creates an event on this device's context (`aclrtCreateEventWithFlag`).
    ///
    /// # Behavior
    /// - E1: flags combine SYNC, CAPTURE_STREAM_PROGRESS and TIME_LINE; events are of one
    ///   process. Dropping the event destroys it.
    ///
    /// # Errors
    /// Only backend failures.
    fn create_event(&self, flags: EventFlags) -> Result<<Self::Backend as Backend>::Event>;

    /// Copies `src` from the host to device memory now (`aclrtMemcpy`, host to device).
    ///
    /// # Behavior
    /// - M2: completes before it returns and is not ordered with stream tasks; `dst` must lie in
    ///   one allocation of this process (not an import, M5) and hold `src.len()` bytes.
    ///
    /// # Errors
    /// `RT_PARAM_INVALID` (107000) when `dst` is shorter than `src`, imported, or of another
    /// device without peer access.
    fn copy_from_host(&self, dst: DeviceRange<'_>, src: &[u8]) -> Result<()>;

    /// Copies device memory to the host now (`aclrtMemcpy`, device to host).
    ///
    /// # Behavior
    /// - M2: as [`Device::copy_from_host`], the other way; `dst` receives `src.len()` bytes.
    ///
    /// # Errors
    /// As [`Device::copy_from_host`].
    fn copy_to_host(&self, dst: &mut [u8], src: DeviceRange<'_>) -> Result<()>;

    /// Copies device memory to device memory now (`aclrtMemcpy`, device to device).
    ///
    /// # Behavior
    /// - M2: `dst` receives `src.len()` bytes; neither may be imported (M5: imports take only
    ///   stream copies).
    ///
    /// # Errors
    /// As [`Device::copy_from_host`].
    fn copy(&self, dst: DeviceRange<'_>, src: DeviceRange<'_>) -> Result<()>;

    /// Sets every byte of `dst` to `value` now (`aclrtMemset`).
    ///
    /// # Behavior
    /// - M2: completes before it returns; not on imported memory (M5).
    ///
    /// # Errors
    /// As [`Device::copy_from_host`].
    fn memset(&self, dst: DeviceRange<'_>, value: u8) -> Result<()>;
}

/// Device memory this process allocated (`aclrtMalloc`, M1). Dropping it frees it (M6).
pub trait Buffer: Send + Sync + fmt::Debug + 'static {
    /// The backend this buffer belongs to.
    type Backend: Backend<Buffer = Self>;

    /// The device it was allocated on; the buffer keeps it alive.
    fn device(&self) -> &<Self::Backend as Backend>::Device;

    /// Its length in bytes (as asked for; the allocation is rounded up to its page size).
    fn len(&self) -> usize;

    /// Whether it is empty (never: an allocation has at least one byte).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole buffer as a range for copies and sets.
    fn as_range(&self) -> DeviceRange<'_>;

    /// Exports `range` of this buffer to other processes (`aclrtIpcMemGetExportKey`).
    ///
    /// # Behavior
    /// - M3: `range` must start and end on the allocation's page size; a range that overlaps
    ///   one still exported is refused (507899); after a close it may be exported again under
    ///   a new key. The key is at most 64 printable characters and never resolves as a notify
    ///   key.
    /// - M4: with `MemExportFlags::DEFAULT` importers must be whitelisted first.
    /// - M6: dropping the export closes the key (existing imports keep working).
    /// - R12: 207000 in a virtualization instance.
    ///
    /// # Errors
    /// `RT_PARAM_INVALID` (107000) for a range not page-aligned; `RT_DRV_INTERNAL_ERROR`
    /// (507899) for an overlap; `RT_FEATURE_NOT_SUPPORT` (207000).
    fn export(
        &self,
        range: DeviceRange<'_>,
        flags: MemExportFlags,
    ) -> Result<<Self::Backend as Backend>::MemExport>;

    /// Frees the buffer (`aclrtFree`), reporting any error.
    ///
    /// # Behavior
    /// - M6: first waits for every task this process queued. Freeing memory that another
    ///   process still imports is unsupported: the simulator serves it (the memory stays valid
    ///   for the importers) and counts a hazard, or with `ASCEND_NOTIFY_SIM_STRICT=1` refuses
    ///   (507899) and changes nothing.
    ///
    /// # Errors
    /// `RT_DRV_INTERNAL_ERROR` (507899) in strict mode, as above.
    fn free(self) -> Result<()>
    where
        Self: Sized;
}

/// An IPC export of a range of a buffer: the key, and the exporter's handle on it (M3, M4).
/// Dropping it closes the key (M6).
pub trait MemExport: Send + Sync + fmt::Debug + 'static {
    /// The backend this export belongs to.
    type Backend: Backend<MemExport = Self>;

    /// The key to give importers.
    fn key(&self) -> &ExportKey;

    /// The exported range's length: importers need it with the key
    /// ([`Device::import_memory`]).
    fn len(&self) -> usize;

    /// Whether the exported range is empty (never: an export has at least one page, M3).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds importers to the whitelist (`aclrtIpcMemSetImportPid`).
    ///
    /// # Behavior
    /// - M4: 1 to 31 pids per call, cumulative; bare tgids (R16); pid 0 and the exporter's own
    ///   are ignored, and a call in which every pid was ignored fails (507899); not on an export
    ///   with `DISABLE_PID_VALIDATION` (207006).
    ///
    /// # Errors
    /// `RT_PARAM_INVALID` (107000) for 0 or more than 31 pids; `RT_NO_PERMISSION` (207006);
    /// `RT_DRV_INTERNAL_ERROR` (507899).
    fn set_import_pids(&self, pids: &[Pid]) -> Result<()>;

    /// Closes the key (`aclrtIpcMemClose` in the exporter), reporting any error.
    ///
    /// # Behavior
    /// - M6: later imports fail (507899); existing imports keep working. Closing before the
    ///   importers have closed is unsupported: served and counted as a hazard, or refused in
    ///   strict mode (507899, nothing changes).
    ///
    /// # Errors
    /// `RT_DRV_INTERNAL_ERROR` (507899) in strict mode.
    fn close(self) -> Result<()>
    where
        Self: Sized;
}

/// Another process's memory, imported (`aclrtIpcMemImportByKey`, M5). Dropping it closes the
/// import (M6).
pub trait MemImport: Send + Sync + fmt::Debug + 'static {
    /// The backend this import belongs to.
    type Backend: Backend<MemImport = Self>;

    /// The device that was current when it was imported; the import keeps it alive.
    fn device(&self) -> &<Self::Backend as Backend>::Device;

    /// Its length in bytes (the exported range's).
    fn len(&self) -> usize;

    /// Whether it is empty (never).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The imported memory as a range, for device-to-device copies and sets on a stream (M5).
    fn as_range(&self) -> DeviceRange<'_>;

    /// Closes the import (`aclrtIpcMemClose` in the importer), reporting any error.
    ///
    /// # Behavior
    /// - M6: first waits for every task this process queued; its addresses stay invalid after.
    ///
    /// # Errors
    /// Only backend failures.
    fn close(self) -> Result<()>
    where
        Self: Sized;
}

/// An event of this process (E1). Dropping it destroys it.
pub trait Event: Send + Sync + fmt::Debug + 'static {
    /// The backend this event belongs to.
    type Backend: Backend<Event = Self>;

    /// The device (context) it belongs to.
    fn device(&self) -> &<Self::Backend as Backend>::Device;

    /// Blocks until the work recorded on it before this call has run
    /// (`aclrtSynchronizeEvent`).
    ///
    /// # Behavior
    /// - E1: an event never recorded does not block.
    ///
    /// # Errors
    /// Only backend failures.
    fn synchronize(&self) -> Result<()>;

    /// Whether every record issued on it has run (`aclrtQueryEventStatus`).
    ///
    /// # Behavior
    /// - E1: also `true` for an event never recorded (as CUDA answers; sim).
    ///
    /// # Errors
    /// Only backend failures.
    fn is_complete(&self) -> Result<bool>;

    /// Milliseconds from `start` to this event (`aclrtEventElapsedTime`).
    ///
    /// # Behavior
    /// - E1: both must be complete and recorded, whatever their flags.
    ///
    /// # Errors
    /// `RT_PARAM_INVALID` (107000) when either is not complete or was never recorded.
    fn elapsed_ms(&self, start: &Self) -> Result<f32>
    where
        Self: Sized;

    /// Destroys the event (`aclrtDestroyEvent`), reporting any error.
    ///
    /// # Errors
    /// Only backend failures.
    fn destroy(self) -> Result<()>
    where
        Self: Sized;
}

/// A stream: an in-order queue of tasks on one device (R2). Every enqueue is a method here, in
/// the way cudarc's streams read: `stream.record(&notify)`, `stream.wait(&notify, timeout)`.
///
/// Dropping a stream destroys it (`aclrtDestroyStream`) after its tasks finish and ignores the
/// error; [`Stream::destroy`] reports it. A default stream is never destroyed.
#[async_trait::async_trait]
pub trait Stream: Send + Sync + fmt::Debug + 'static {
    /// The backend this stream belongs to.
    type Backend: Backend<Stream = Self>;

    /// The device (context) the stream was created on (R13).
    fn device(&self) -> &<Self::Backend as Backend>::Device;

    /// Enqueues a record of `notify` (`aclrtRecordNotify`): sets its flag when the task runs.
    ///
    /// # Behavior
    /// - R1: records before a wait are not lost; several merge into one.
    /// - R2: asynchronous, in stream order.
    /// - R4: any holder may record, on a stream of any device.
    /// - R8: the task holds its own reference until it runs.
    ///
    /// # Errors
    /// `RT_INVALID_HANDLE` (107017) for a handle of another runtime instance.
    fn record(&self, notify: &<Self::Backend as Backend>::Notify) -> Result<()>;

    /// Enqueues a wait on `notify` (`aclrtWaitAndResetNotify`): when the task runs it waits for
    /// the flag and clears it in the same atomic step.
    ///
    /// # Behavior
    /// - R1: one wait consumes one set flag.
    /// - R3: an expired wait fails with 107019 at the next synchronize, leaves the flag alone,
    ///   and the stream goes on. [`Timeout::FOREVER`] waits forever; a duration becomes whole
    ///   seconds, rounded up, in the C call.
    /// - R4: only the creating process may wait, on a stream of the notify's device.
    ///
    /// # Errors
    /// `RT_PARAM_INVALID` (107000) for a wait by an importer or on another device's stream.
    fn wait(
        &self,
        notify: &<Self::Backend as Backend>::Notify,
        timeout: impl Into<Timeout>,
    ) -> Result<()>
    where
        Self: Sized;

    /// Blocks until every task enqueued before this call has finished
    /// (`aclrtSynchronizeStream`).
    ///
    /// # Behavior
    /// - R2: reports the first failure among those tasks, then clears it.
    /// - R3: an expired wait shows up here as 107019.
    ///
    /// # Errors
    /// `RT_WAIT_TIMEOUT` (107019) for an expired wait.
    fn synchronize(&self) -> Result<()>;

    /// Like [`Stream::synchronize`], but gives up after `timeout` (`None` waits forever;
    /// `aclrtSynchronizeStreamWithTimeout`, whose C form takes milliseconds, `-1` = forever).
    ///
    /// # Behavior
    /// - R2: on giving up the remaining tasks stay queued and keep running.
    ///
    /// # Errors
    /// `RT_STREAM_SYNC_TIMEOUT` (507046) when it gives up; otherwise as `synchronize`.
    fn synchronize_timeout(&self, timeout: Option<Duration>) -> Result<()>;

    /// [`Stream::synchronize`] without blocking a thread of the caller's executor.
    ///
    /// # Behavior
    /// - R2: the same completion and error reporting as `synchronize`.
    ///
    /// # Errors
    /// As `synchronize`.
    async fn synchronize_async(&self) -> Result<()>;

    /// Whether nothing is queued or running on the stream (`aclrtStreamQuery`).
    ///
    /// # Behavior
    /// - S1: `true` when every task enqueued so far has finished.
    ///
    /// # Errors
    /// Only backend failures.
    fn is_complete(&self) -> Result<bool>;

    /// Enqueues a device-to-device copy (`aclrtMemcpyAsync`).
    ///
    /// # Behavior
    /// - M2: a stream task; `dst` receives `src.len()` bytes. Wrong arguments fail here, and
    ///   the stream reports nothing later. A range of another device than the stream's needs
    ///   peer access from the stream's device.
    /// - M5: the only copy imported memory takes.
    ///
    /// # Errors
    /// `RT_PARAM_INVALID` (107000) when `dst` is shorter than `src` or peer access is missing.
    fn copy(&self, dst: DeviceRange<'_>, src: DeviceRange<'_>) -> Result<()>;

    /// Enqueues a host-to-device copy of `src`, which the stream keeps until the copy ran
    /// (`aclrtMemcpyAsync`, host to device).
    ///
    /// # Behavior
    /// - M2: as [`Stream::copy`]; `dst` must not be imported (M5).
    ///
    /// # Errors
    /// As [`Stream::copy`].
    fn copy_from_host(
        &self,
        dst: DeviceRange<'_>,
        src: impl AsRef<[u8]> + Send + 'static,
    ) -> Result<()>
    where
        Self: Sized;

    /// Enqueues a device-to-host copy of `src`; the bytes come out of the [`Download`] once the
    /// stream has run it (`aclrtMemcpyAsync`, device to host).
    ///
    /// # Behavior
    /// - M2: as [`Stream::copy`]; `src` must not be imported (M5).
    ///
    /// # Errors
    /// As [`Stream::copy`].
    fn copy_to_host(&self, src: DeviceRange<'_>) -> Result<Download>;

    /// Enqueues a set of every byte of `dst` to `value` (`aclrtMemsetAsync`).
    ///
    /// # Behavior
    /// - M2: a stream task; imported memory takes it (M5).
    ///
    /// # Errors
    /// As [`Stream::copy`].
    fn memset(&self, dst: DeviceRange<'_>, value: u8) -> Result<()>;

    /// Enqueues a host function (`aclrtLaunchHostFunc`): `f` runs on a runtime thread when the
    /// stream reaches it, and the stream's next task starts after it returns.
    ///
    /// # Behavior
    /// - H1: how a program stands in for its device kernels on the simulator. `f` must not
    ///   synchronize its own stream: such a call fails with 107000 instead of deadlocking. A
    ///   panic in `f` fails the stream's next synchronize (507000).
    ///
    /// # Errors
    /// Only backend failures.
    fn launch_host_fn(&self, f: impl FnOnce() + Send + 'static) -> Result<()>
    where
        Self: Sized;

    /// Enqueues a record of `event` (`aclrtRecordEvent`): it completes, stamped with the time,
    /// when the stream reaches it.
    ///
    /// # Behavior
    /// - E1: an event of another device is refused (107003, R13).
    ///
    /// # Errors
    /// `RT_STREAM_CONTEXT` (107003).
    fn record_event(&self, event: &<Self::Backend as Backend>::Event) -> Result<()>;

    /// Makes the stream wait for the work recorded on `event` before this call
    /// (`aclrtStreamWaitEvent`).
    ///
    /// # Behavior
    /// - E1: an event never recorded does not make it wait.
    ///
    /// # Errors
    /// `RT_STREAM_CONTEXT` (107003) for an event of another device.
    fn wait_event(&self, event: &<Self::Backend as Backend>::Event) -> Result<()>;

    /// Enqueues a reset of `event` to never-recorded (`aclrtResetEvent`).
    ///
    /// # Errors
    /// `RT_STREAM_CONTEXT` (107003) for an event of another device.
    fn reset_event(&self, event: &<Self::Backend as Backend>::Event) -> Result<()>;

    /// Destroys the stream (`aclrtDestroyStream`) after its tasks finish.
    ///
    /// # Behavior
    /// - R2: tasks already enqueued still run to completion.
    ///
    /// # Errors
    /// Only backend failures.
    fn destroy(self) -> Result<()>
    where
        Self: Sized;
}

/// A handle to a notify held by this process (R8: one reference).
///
/// Dropping the handle destroys it and ignores the error; [`Notify::destroy`] reports it. The
/// Rust API consumes the handle on destroy, so the stale-handle errors of R8/R10 (107017) can
/// only arise through the C API.
pub trait Notify: Send + Sync + fmt::Debug + 'static {
    /// The backend this notify belongs to.
    type Backend: Backend<Notify = Self>;

    /// The device this handle was made from: the one it was created on, or the one that was
    /// current when it was imported. The handle keeps it alive.
    fn device(&self) -> &<Self::Backend as Backend>::Device;

    /// The notify's id (`aclrtGetNotifyId`).
    ///
    /// # Behavior
    /// - R10: unique among the live notifies of its device; importers see the creator's id.
    ///
    /// # Errors
    /// Only backend failures.
    fn id(&self) -> Result<NotifyId>;

    /// Exports the notify so other processes can import it (`aclrtNotifyGetExportKey`).
    ///
    /// # Behavior
    /// - R5: only on a notify this process created, once; the key is at most 64 printable
    ///   characters and never resolves to a later notify in the same slot.
    /// - R6: with `ExportFlags::DEFAULT` no process may import until its bare tgid is
    ///   whitelisted; with `DISABLE_PID_VALIDATION` any process may, and no whitelist may be
    ///   set.
    /// - R12: 207000 in a virtualization instance.
    ///
    /// # Errors
    /// `RT_FEATURE_NOT_SUPPORT` (207000); `RT_INTERNAL_ERROR` (507000) the second time and on an
    /// imported handle.
    fn export(&self, flags: ExportFlags) -> Result<ExportKey>;

    /// Adds one process to the import whitelist (`aclrtNotifySetImportPid` with one pid).
    ///
    /// The driver takes exactly one pid per call (R6), and so does this method: whitelist
    /// several importers with one call each.
    ///
    /// # Behavior
    /// - R6: creator only, after export, not on a `DISABLE_PID_VALIDATION` export. Cumulative;
    ///   setting a pid again refreshes its entry's time (R7's pid-reuse guard). Pid 0 and the
    ///   creator's own bare tgid are accepted and ignored. The whitelist holds 15 importers;
    ///   the 16th fails and changes nothing. Pids are bare tgids (R16).
    /// - R12: 207000 in a virtualization instance.
    ///
    /// # Errors
    /// `RT_FEATURE_NOT_SUPPORT` (207000); `RT_PARAM_INVALID` (107000) for a negative pid or a
    /// call before export; `RT_NO_PERMISSION` (207006) on a `DISABLE_PID_VALIDATION` export;
    /// `RT_DRV_INTERNAL_ERROR` (507899) outside the creator or on a full whitelist.
    fn set_import_pid(&self, pid: Pid) -> Result<()>;

    /// Destroys this handle (`aclrtDestroyNotify`), reporting any error.
    ///
    /// # Behavior
    /// - R8: drops this handle's reference at once; tasks already enqueued still run. When the
    ///   creator destroys, the key is revoked (later imports fail with 507899) but importers keep
    ///   a working notify. The slot is freed when the last reference is gone.
    ///
    /// # Errors
    /// Only backend failures.
    fn destroy(self) -> Result<()>
    where
        Self: Sized;
}
