//! The traits a backend implements: devices and contexts, streams, notifies.
//!
//! Each method documents its behaviour rule by rule (`SEMANTICS.md` §3) in a `# Behavior`
//! section; [`crate::conformance`] checks the same sentences against every backend.

use crate::{DeviceId, ExportFlags, ExportKey, ImportFlags, NotifyFlags, NotifyId, Pid, Result};
use std::fmt;
use std::time::Duration;

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
            other => Err(crate::err!(
                RT_PARAM_INVALID,
                "unknown backend {other:?}: expected \"sim\" or \"ascend\""
            )),
        }
    }
}

/// A runtime attached to this process: the entry point of a backend.
///
/// Like the C API, devices are bound **per thread**: [`Backend::set_device`] makes a device
/// current in the calling thread, and creating streams and notifies, importing and enqueueing
/// all happen on the calling thread's current device (R13). Dropping the last handle to a
/// backend detaches the process (`aclFinalize`).
pub trait Backend: Sized + 'static {
    /// A stream of this backend.
    type Stream: Stream<Backend = Self>;
    /// A notify handle of this backend.
    type Notify: Notify<Backend = Self>;

    /// Which implementation this is.
    fn kind(&self) -> BackendKind;

    /// The number of devices (`aclrtGetDeviceCount`).
    ///
    /// # Behavior
    /// - R13: valid device ids are `0..count`.
    ///
    /// # Errors
    /// Only backend failures (a runtime that cannot be queried).
    fn device_count(&self) -> Result<u32>;

    /// Makes `device` current in the calling thread (`aclrtSetDevice`).
    ///
    /// # Behavior
    /// - R13: later calls on this thread use this device; streams created now are bound to it.
    ///
    /// # Errors
    /// `RT_INVALID_DEVICEID` (107001) for an id outside `0..count`.
    fn set_device(&self, device: DeviceId) -> Result<()>;

    /// Releases `device` in the calling thread (`aclrtResetDevice`); if it was current, the
    /// thread has no current device afterwards.
    ///
    /// # Behavior
    /// - R13: a later create or enqueue on this thread fails with 107002 until a device is set.
    ///
    /// # Errors
    /// `RT_INVALID_DEVICEID` (107001) for an id outside `0..count`.
    fn reset_device(&self, device: DeviceId) -> Result<()>;

    /// The calling thread's current device (`aclrtGetDevice`).
    ///
    /// # Behavior
    /// - R13: the device of the last `set_device` on this thread.
    ///
    /// # Errors
    /// `RT_CONTEXT_NULL` (107002) when this thread has no current device.
    fn current_device(&self) -> Result<DeviceId>;

    /// This process's bare tgid, as the driver sees it (`aclrtDeviceGetBareTgid`).
    ///
    /// # Behavior
    /// - R6: this is the value to put on an exporter's whitelist. The simulator returns the OS
    ///   pid (sim).
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

    /// Enables access from the current device to `peer` for this process
    /// (`aclrtDeviceEnablePeerAccess`).
    ///
    /// # Behavior
    /// - R7: per process and per pair (current → peer); enabling twice is a no-op. Imports with
    ///   `ImportFlags::DEFAULT` of a notify on `peer` need it.
    /// - R15: context, then device id, then flags, then the pair.
    ///
    /// # Errors
    /// `RT_CONTEXT_NULL` (107002) with no current device; `RT_INVALID_DEVICEID` (107001) for a
    /// bad `peer`; `RT_PARAM_INVALID` (107000) when `flags != 0` or `peer` is the current device.
    fn enable_peer_access(&self, peer: DeviceId, flags: u32) -> Result<()>;

    /// Creates a stream on the current device (`aclrtCreateStream`).
    ///
    /// # Behavior
    /// - R13: the stream is bound to the current device; enqueueing on it under another device
    ///   fails with 107003.
    /// - R2: its tasks run in order, concurrently with other streams.
    ///
    /// # Errors
    /// `RT_CONTEXT_NULL` (107002) with no current device.
    fn create_stream(&self) -> Result<Self::Stream>;

    /// The current device's default stream: what a NULL `aclrtStream` means in C.
    ///
    /// # Behavior
    /// - R2, R13: one default stream per device and process; dropping this handle does not
    ///   destroy it.
    ///
    /// # Errors
    /// `RT_CONTEXT_NULL` (107002) with no current device.
    fn default_stream(&self) -> Result<Self::Stream>;

    /// Creates a notify on the current device (`aclrtCreateNotify`). The flag starts clear.
    ///
    /// # Behavior
    /// - R1: a binary flag, initially clear.
    /// - R8: the handle holds one reference; this process is the creator.
    /// - R11: at most `capacity` (8192) live notifies per device; a full device is reclaimed
    ///   (R9) before it is reported full.
    /// - R15: context, then flags, then capacity.
    ///
    /// # Errors
    /// `RT_CONTEXT_NULL` (107002) with no current device; `RT_PARAM_INVALID` (107000) is
    /// impossible here (the flags are typed) but the C API reports it for unknown bits;
    /// `RT_NO_NOTIFY_RESOURCE` (207009) when the device is full.
    fn create_notify(&self, flags: NotifyFlags) -> Result<Self::Notify>;

    /// Imports a notify that another process exported (`aclrtNotifyImportByKey`).
    ///
    /// # Behavior
    /// - R7: needs a current context; the result refers to the same flag as the exporter's.
    ///   Refusals, in R15 order: unknown, foreign-namespace or revoked key (507899); a notify this
    ///   process already holds (507000); with an export flag of `0x0`, a caller whose bare tgid is
    ///   not whitelisted at this moment (507899); with `ImportFlags::DEFAULT`, a notify on another
    ///   device without peer access enabled (507899). `ENABLE_PEER_ACCESS` enables it.
    /// - R8: the new handle holds one reference.
    /// - R12: 207000 in a virtualization instance.
    ///
    /// # Errors
    /// `RT_CONTEXT_NULL` (107002), `RT_FEATURE_NOT_SUPPORT` (207000), `RT_PARAM_INVALID` (107000)
    /// for a key not in the backend's format, `RT_DRV_INTERNAL_ERROR` (507899),
    /// `RT_INTERNAL_ERROR` (507000).
    fn import_notify(&self, key: &ExportKey, flags: ImportFlags) -> Result<Self::Notify>;

    /// Clears the flags of `notifies` now, from the host (`aclrtNotifyBatchReset`).
    ///
    /// # Behavior
    /// - R1: any holder may call it; all or nothing.
    ///
    /// # Errors
    /// `RT_PARAM_INVALID` (107000) for an empty slice; `RT_INVALID_HANDLE` (107017) when a handle
    /// is no longer valid, and then no flag is cleared.
    fn batch_reset(&self, notifies: &[&Self::Notify]) -> Result<()>;
}

/// A stream: an in-order queue of record and wait tasks (R2).
///
/// `synchronize_async` makes this trait use `async-trait`: native `async fn` in traits cannot be
/// called through `dyn`, and users who keep streams of either backend behind one type need that.
#[async_trait::async_trait]
pub trait Stream: Sized {
    /// The backend this stream belongs to.
    type Backend: Backend<Stream = Self>;

    /// The device the stream was created on (R13).
    fn device(&self) -> DeviceId;

    /// Blocks until every task enqueued before this call has finished
    /// (`aclrtSynchronizeStream`).
    ///
    /// # Behavior
    /// - R2: reports the first failure among those tasks, then clears it.
    /// - R3: an expired wait shows up here as 107019.
    ///
    /// # Errors
    /// `RT_WAIT_TIMEOUT` (107019) for an expired wait; `RT_INVALID_HANDLE` (107017) for a stream
    /// whose runtime has been finalized.
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

    /// Destroys the stream (`aclrtDestroyStream`) after its tasks finish. Dropping it does the
    /// same and ignores the error; default streams are never destroyed.
    ///
    /// # Behavior
    /// - R2: tasks already enqueued still run to completion.
    ///
    /// # Errors
    /// Only backend failures.
    fn destroy(self) -> Result<()>;
}

/// A handle to a notify held by this process (R8: one reference).
///
/// Dropping the handle destroys it and ignores the error; [`Notify::destroy`] reports it. The
/// Rust API consumes the handle on destroy, so the stale-handle errors of R8/R10 (107017) can
/// only arise through the C API.
pub trait Notify: Sized {
    /// The backend this notify belongs to.
    type Backend: Backend<Notify = Self>;

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
    /// - R5: only the creating process may export, once; the key is at most 64 printable
    ///   characters and never resolves to a later notify in the same slot.
    /// - R6: with `ExportFlags::DEFAULT` no process may import until its pid is whitelisted;
    ///   with `DISABLE_PID_VALIDATION` anyone may, and no whitelist may be set.
    /// - R12: 207000 in a virtualization instance.
    /// - R15: virtualization, then permission, then state.
    ///
    /// # Errors
    /// `RT_FEATURE_NOT_SUPPORT` (207000); `RT_NO_PERMISSION` (207006) outside the creator;
    /// `RT_INTERNAL_ERROR` (507000) the second time.
    fn export(&self, flags: ExportFlags) -> Result<ExportKey>;

    /// Adds `pids` to the import whitelist (`aclrtNotifySetImportPid`).
    ///
    /// # Behavior
    /// - R6: creator only, after export, not on a `DISABLE_PID_VALIDATION` export. Cumulative; a
    ///   pid already present is a no-op; at most 64 distinct pids, and a call that would exceed
    ///   that adds none.
    /// - R12: 207000 in a virtualization instance.
    ///
    /// # Errors
    /// `RT_FEATURE_NOT_SUPPORT` (207000); `RT_PARAM_INVALID` (107000) for an empty list, a list
    /// that would exceed 64 pids, or a call before export; `RT_NO_PERMISSION` (207006) outside
    /// the creator or on a `DISABLE_PID_VALIDATION` export.
    fn set_import_pids(&self, pids: &[Pid]) -> Result<()>;

    /// Enqueues a record on `stream` (`aclrtRecordNotify`): sets the flag when the task runs.
    ///
    /// # Behavior
    /// - R1: records before a wait are not lost; several merge into one.
    /// - R2: asynchronous, in stream order.
    /// - R4: any holder may record.
    /// - R8: the task holds its own reference until it runs.
    /// - R13: the stream must belong to the current device.
    ///
    /// # Errors
    /// `RT_CONTEXT_NULL` (107002); `RT_STREAM_CONTEXT` (107003).
    fn record(&self, stream: &<Self::Backend as Backend>::Stream) -> Result<()>;

    /// Enqueues a wait on `stream` (`aclrtWaitAndResetNotify`): when the task runs it waits for
    /// the flag and clears it in the same atomic step.
    ///
    /// # Behavior
    /// - R1: one wait consumes one set flag.
    /// - R3: `timeout_secs` is in seconds, `0` waits forever; an expired wait fails with 107019
    ///   at the next synchronize, leaves the flag alone, and the stream goes on.
    /// - R4: only the creating process may wait, on a stream of the notify's device.
    /// - R13, R15: context, stream device, then the R4 checks.
    ///
    /// # Errors
    /// `RT_CONTEXT_NULL` (107002); `RT_STREAM_CONTEXT` (107003); `RT_PARAM_INVALID` (107000) for
    /// a wait by an importer or on another device's stream.
    fn wait_and_reset(
        &self,
        stream: &<Self::Backend as Backend>::Stream,
        timeout_secs: u32,
    ) -> Result<()>;

    /// Destroys this handle (`aclrtDestroyNotify`), reporting any error.
    ///
    /// # Behavior
    /// - R8: drops this handle's reference at once; tasks already enqueued still run. When the
    ///   creator destroys, the key is revoked (later imports fail with 507899) but importers keep
    ///   a working notify. The slot is freed when the last reference is gone.
    ///
    /// # Errors
    /// Only backend failures.
    fn destroy(self) -> Result<()>;
}
