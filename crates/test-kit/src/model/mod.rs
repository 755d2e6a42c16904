//! The one executable reference model of `SEMANTICS.md`: notifies (§1–§3) and device and IPC
//! memory (§5, [`memory`]).
//!
//! Plain Rust, no OS call: processes, handles, streams, notifies and keys are *symbols*
//! ([`Proc`], [`Hid`], [`Sid`], [`Nid`], [`PidSym`]), and [`Model::apply`] says, for one
//! [`Op`] (one C call, or one thing that happens to a process), the exact code the contract
//! gives and what changed ([`Expect`]). What a driver needs to turn the symbols into real
//! tokens, keys and pids is `crate::harness`'s business.
//!
//! # What it covers
//! - R1 (binary flag, batch reset), R2 (in-order streams, synchronize reports the first
//!   failure and clears it; the timed synchronize gives up with 507046), R3 (a wait that expires
//!   fails with 107019 at the next synchronize and leaves the flag), R4 (only the creator waits,
//!   on the notify's device; any holder records);
//! - R5 (export: creator only, once; 507000 on an imported handle), R6 (one pid per call, pid 0
//!   and the creator's own pid ignored, 15 importers, 207006 on a DISABLE export, 507899 for a
//!   non-creator, 107000 before export), R7 (import resolution in R15's order; a DISABLE import
//!   takes a whitelist entry; peer access per process and pair; one handle per notify and
//!   process), R8 (references: handles and queued tasks; the creator's destroy revokes),
//!   R9 (death: references lost, keys revoked, no record; the registry may reclaim lazily,
//!   see [`Model::unreclaimed`]), R10 (handles of another process, session or kind: 107017),
//!   R11 (capacity per device, 207009), R13 (the thread's current device; 107001, 107002,
//!   107003), R15 (the order of checks), `aclInit`/`aclFinalize` (100001, 100002), and R16
//!   only as far as "pids are bare tgids": a [`PidSym`] is what the driver's bare tgid is.
//! - M1–M6 ([`memory`]): allocations with their policies' page sizes and the device's memory
//!   counted across processes (207001), frees, `aclrtGetMemInfo`, copies and sets (sync, and
//!   async on a stream where predictable) with the bytes they move, exports, whitelists,
//!   imports and closes in M5's order, the hazards, and release only when freed and every
//!   import closed or their processes died.
//! - Out of scope: R12 (virtualization), R14 (corruption: the `registry_attach` body), R17
//!   (fork), explicit contexts (C1), host memory from `aclrtMallocHost`, strict mode, events
//!   and host functions.
//!
//! # Time and streams
//! The model has no clock. A record on an idle stream runs at once (the simulator runs it
//! inline, and so does a wait whose flag is set); a wait whose flag is clear is *blocked* and
//! stays at the head of its stream until a record of its notify releases it, or until a
//! synchronize waits for it to expire. So that this is exact, [`Model::try_apply`] refuses
//! ([`Unpredictable`]) what it cannot predict:
//! - a task queued behind a blocked wait, or a second blocked wait on the same notify (which
//!   waiter a record releases would be a race);
//! - anything but a full synchronize (or a [`Op::SetDevice`]) while a released wait may still be
//!   finishing on its stream ([`Model::in_flight`]): its flag and reference would be a race;
//! - a synchronize that would wait forever (a blocked wait with timeout 0), or whose timeout is
//!   too close to the wait's to say which expires first; a finalize or stream destroy that would
//!   leave a blocked wait running.
//!
//! A driver keeps the model's one assumption true: between a blocked wait's enqueue and a timed
//! synchronize of its stream, less than half the wait's timeout passes (waits that stay queued
//! across other steps get long timeouts).

use std::collections::{BTreeMap, BTreeSet};

use notify_api::AclError;

use crate::keys;

/// The codes of `SEMANTICS.md` §2 that the model answers.
pub mod code {
    use super::AclError;

    /// `ACL_SUCCESS`.
    pub const OK: i32 = AclError::SUCCESS.raw();
    /// A NULL pointer argument.
    pub const INVALID_PARAM: i32 = AclError::INVALID_PARAM.raw();
    /// Before `aclInit` or after `aclFinalize`.
    pub const UNINITIALIZE: i32 = AclError::UNINITIALIZE.raw();
    /// `aclInit` twice.
    pub const REPEAT_INITIALIZE: i32 = AclError::REPEAT_INITIALIZE.raw();
    /// A bad argument, or a wait refused at enqueue (R4), set-pid before export (R6).
    pub const PARAM_INVALID: i32 = AclError::RT_PARAM_INVALID.raw();
    /// A device id outside `0..count`.
    pub const INVALID_DEVICEID: i32 = AclError::RT_INVALID_DEVICEID.raw();
    /// No current device in the thread.
    pub const CONTEXT_NULL: i32 = AclError::RT_CONTEXT_NULL.raw();
    /// A stream of another device.
    pub const STREAM_CONTEXT: i32 = AclError::RT_STREAM_CONTEXT.raw();
    /// A destroyed, stale or foreign handle.
    pub const INVALID_HANDLE: i32 = AclError::RT_INVALID_HANDLE.raw();
    /// A wait that expired, reported at synchronize.
    pub const WAIT_TIMEOUT: i32 = AclError::RT_WAIT_TIMEOUT.raw();
    /// A whitelist on a DISABLE export.
    pub const NO_PERMISSION: i32 = AclError::RT_NO_PERMISSION.raw();
    /// The device's notify table is full.
    pub const NO_NOTIFY_RESOURCE: i32 = AclError::RT_NO_NOTIFY_RESOURCE.raw();
    /// Export twice or of an imported handle; import of a notify already held.
    pub const INTERNAL: i32 = AclError::RT_INTERNAL_ERROR.raw();
    /// A timed synchronize gave up.
    pub const SYNC_TIMEOUT: i32 = AclError::RT_STREAM_SYNC_TIMEOUT.raw();
    /// What the driver refuses: unknown key, not whitelisted, whitelist full, no peer access,
    /// a non-creator setting pids.
    pub const DRV_REFUSED: i32 = AclError::RT_DRV_INTERNAL_ERROR.raw();
    /// A device has no room for an allocation (M1).
    pub const MEMORY_ALLOCATION: i32 = AclError::RT_MEMORY_ALLOCATION.raw();
}

use code::*;

/// `ACL_NOTIFY_DEVICE_USE_ONLY`, the only create flag besides 0.
pub const CREATE_DEVICE_USE_ONLY: u64 = 0x1;
/// `ACL_RT_NOTIFY_EXPORT_FLAG_DISABLE_PID_VALIDATION`.
pub const EXPORT_DISABLE_PID_VALIDATION: u64 = 0x2;
/// `ACL_RT_NOTIFY_IMPORT_FLAG_ENABLE_PEER_ACCESS`.
pub const IMPORT_ENABLE_PEER_ACCESS: u64 = 0x2;
/// The key buffer's minimum length (R5).
pub const KEY_BUF_MIN: usize = notify_api::EXPORT_KEY_LEN;
/// Importer entries of a whitelist (R6).
pub const WHITELIST_IMPORTERS: usize = notify_api::WHITELIST_IMPORTERS;
/// Processes that may hold one notify: the creator and 15 importers.
pub const MAX_HOLDERS: usize = 1 + WHITELIST_IMPORTERS;
/// A timed synchronize of a stream whose released wait may still be finishing is predictable
/// from this many milliseconds on (the release takes microseconds).
pub const SETTLE_MS: i32 = 1_000;
/// A timed synchronize of a blocked wait of `t` seconds expires the wait (rather than giving
/// up) when its timeout is at least `t * 1000 + EXPIRY_SLACK_MS`.
pub const EXPIRY_SLACK_MS: i64 = 2_000;

/// A modelled process, by index. Its incarnations (a replacement after a death) are told apart
/// by [`PidSym::Proc::incarnation`].
pub type Proc = usize;

/// A notify handle, as the model names it: global across processes, never reused.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hid(pub u32);

/// A stream made by `aclrtCreateStream`, likewise.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sid(pub u32);

/// A notify (one life of a registry slot), likewise; its key is "the key of notify N".
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nid(pub u32);

/// A pid as the model knows it (a bare tgid, R16).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PidSym {
    /// The bare tgid of process `p` in its incarnation `incarnation`.
    Proc {
        /// The process.
        p: Proc,
        /// Which of its lives.
        incarnation: u32,
    },
    /// Any other value. A driver guarantees it is not the bare tgid of any modelled process
    /// (it maps such a value to [`PidSym::Proc`] instead); 0 and negative values are ignored
    /// and refused as R6 says.
    Raw(i32),
}

/// A notify handle argument (`aclrtNotify`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotifyArg {
    /// NULL (100000).
    Null,
    /// A token some process was given: live, destroyed, of an earlier session, or another
    /// process's (107017 unless it is a live handle of the caller's session).
    Handle(Hid),
    /// A stream token passed as a notify (107017).
    Stream(Sid),
    /// Any other value (107017). A driver guarantees it is no token it knows.
    Invalid(u64),
}

/// A stream argument (`aclrtStream`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamArg {
    /// NULL: the current device's default stream.
    Default,
    /// A stream token.
    Stream(Sid),
    /// A notify token passed as a stream (107017).
    Notify(Hid),
    /// Any other value (107017).
    Invalid(u64),
}

/// An array argument: NULL with a count, or the elements (the count is their number).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Array<T> {
    /// NULL with `num` (100000).
    Null {
        /// The count passed with it.
        num: usize,
    },
    /// The elements.
    Items(Vec<T>),
}

/// An output key buffer: NULL or not, and the length passed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Buf {
    /// Whether the pointer is NULL (the length is passed all the same).
    pub null: bool,
    /// `len`.
    pub len: usize,
}

impl Buf {
    /// A valid buffer of the minimum length.
    pub const KEY: Self = Self {
        null: false,
        len: KEY_BUF_MIN,
    };
}

/// The key argument of an import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyArg {
    /// NULL (100000).
    Null,
    /// Exactly the key the export of this notify returned.
    Known(Nid),
    /// That key with a different secret: well formed, unknown (507899).
    Forged(Nid),
    /// These bytes followed by a NUL. A driver guarantees the C string is not a known key;
    /// the model judges its format with [`keys::format_code`].
    Other(Vec<u8>),
}

/// One step: a C call made by process `p` (its one thread), or something that happens to a
/// process. The C calls carry their arguments as C passes them, so the NULL pointers, bad flag
/// bits, lengths and counts of the contract are all expressible.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Op {
    /// A new process starts in place of dead `p` (a new incarnation, not initialized).
    Spawn { p: Proc },
    /// `SIGKILL` (R9: no clean-up by the victim).
    Kill { p: Proc },
    /// A normal exit without `aclFinalize`: the runtime detaches cleanly at exit (§4).
    Exit { p: Proc },
    /// The inspector's explicit reclamation of every dead process (R9), which removes a
    /// namespace it leaves with no live process (§4).
    Reclaim,
    /// `aclInit`.
    Init { p: Proc },
    /// `aclFinalize`.
    Finalize { p: Proc },
    /// `aclrtSetDevice`.
    SetDevice { p: Proc, device: i32 },
    /// `aclrtResetDevice`.
    ResetDevice { p: Proc, device: i32 },
    /// `aclrtGetDevice` (NULL out-pointer or not).
    GetDevice { p: Proc, null: bool },
    /// `aclrtGetDeviceCount`.
    DeviceCount { p: Proc, null: bool },
    /// `aclrtDeviceGetBareTgid`.
    BareTgid { p: Proc, null: bool },
    /// `aclrtDeviceCanAccessPeer`.
    CanAccessPeer {
        p: Proc,
        null: bool,
        device: i32,
        peer: i32,
    },
    /// `aclrtDeviceEnablePeerAccess`.
    EnablePeer { p: Proc, peer: i32, flags: u32 },
    /// `aclrtCreateStream`.
    CreateStream { p: Proc, null: bool },
    /// `aclrtDestroyStream`.
    DestroyStream { p: Proc, stream: StreamArg },
    /// `aclrtSynchronizeStream` (`timeout_ms: None`) or `aclrtSynchronizeStreamWithTimeout`.
    Sync {
        p: Proc,
        stream: StreamArg,
        timeout_ms: Option<i32>,
    },
    /// `aclrtCreateNotify`.
    Create { p: Proc, null: bool, flags: u64 },
    /// `aclrtDestroyNotify`.
    Destroy { p: Proc, notify: NotifyArg },
    /// `aclrtRecordNotify`.
    Record {
        p: Proc,
        notify: NotifyArg,
        stream: StreamArg,
    },
    /// `aclrtWaitAndResetNotify` (`timeout_s` 0 waits forever).
    Wait {
        p: Proc,
        notify: NotifyArg,
        stream: StreamArg,
        timeout_s: u32,
    },
    /// `aclrtGetNotifyId`.
    GetId {
        p: Proc,
        notify: NotifyArg,
        null: bool,
    },
    /// `aclrtNotifyBatchReset`.
    BatchReset { p: Proc, notifies: Array<NotifyArg> },
    /// `aclrtNotifyGetExportKey`.
    Export {
        p: Proc,
        notify: NotifyArg,
        buf: Buf,
        flags: u64,
    },
    /// `aclrtNotifySetImportPid`.
    SetPid {
        p: Proc,
        notify: NotifyArg,
        pids: Array<PidSym>,
    },
    /// `aclrtNotifyImportByKey`.
    Import {
        p: Proc,
        null_out: bool,
        key: KeyArg,
        flags: u64,
    },
    /// `aclrtMalloc` (M1).
    Malloc {
        p: Proc,
        null: bool,
        size: u64,
        policy: u32,
    },
    /// `aclrtFree` (M1, M6).
    Free { p: Proc, ptr: PtrArg },
    /// `aclrtGetMemInfo` (M1).
    MemInfo {
        p: Proc,
        attr: u32,
        null_free: bool,
        null_total: bool,
    },
    /// `aclrtMemcpy` (`stream: None`) or `aclrtMemcpyAsync` (M2).
    Memcpy {
        p: Proc,
        dst: PtrArg,
        dest_max: u64,
        src: PtrArg,
        count: u64,
        kind: u32,
        stream: Option<StreamArg>,
    },
    /// `aclrtMemset` (`stream: None`) or `aclrtMemsetAsync` (M2).
    Memset {
        p: Proc,
        ptr: PtrArg,
        max: u64,
        value: i32,
        count: u64,
        stream: Option<StreamArg>,
    },
    /// `aclrtIpcMemGetExportKey` (M3).
    MemExport {
        p: Proc,
        ptr: PtrArg,
        size: u64,
        buf: Buf,
        flags: u64,
    },
    /// `aclrtIpcMemSetImportPid` (M4).
    MemSetPid {
        p: Proc,
        key: MemKeyArg,
        pids: Array<PidSym>,
    },
    /// `aclrtIpcMemImportByKey` (M5).
    MemImport {
        p: Proc,
        null_out: bool,
        key: MemKeyArg,
        flags: u64,
    },
    /// `aclrtIpcMemClose` (M6).
    MemClose { p: Proc, key: MemKeyArg },
}

impl Op {
    /// The process the step concerns (`None` for [`Op::Reclaim`]).
    pub fn proc(&self) -> Option<Proc> {
        use Op::*;
        match *self {
            Reclaim => None,
            Spawn { p }
            | Kill { p }
            | Exit { p }
            | Init { p }
            | Finalize { p }
            | SetDevice { p, .. }
            | ResetDevice { p, .. }
            | GetDevice { p, .. }
            | DeviceCount { p, .. }
            | BareTgid { p, .. }
            | CanAccessPeer { p, .. }
            | EnablePeer { p, .. }
            | CreateStream { p, .. }
            | DestroyStream { p, .. }
            | Sync { p, .. }
            | Create { p, .. }
            | Destroy { p, .. }
            | Record { p, .. }
            | Wait { p, .. }
            | GetId { p, .. }
            | BatchReset { p, .. }
            | Export { p, .. }
            | SetPid { p, .. }
            | Import { p, .. }
            | Malloc { p, .. }
            | Free { p, .. }
            | MemInfo { p, .. }
            | Memcpy { p, .. }
            | Memset { p, .. }
            | MemExport { p, .. }
            | MemSetPid { p, .. }
            | MemImport { p, .. }
            | MemClose { p, .. } => Some(p),
        }
    }

    /// Whether this is a C call (else a process event: spawn, kill, exit, reclaim).
    pub fn is_call(&self) -> bool {
        !matches!(
            self,
            Op::Spawn { .. } | Op::Kill { .. } | Op::Exit { .. } | Op::Reclaim
        )
    }

    /// A short name of the step's kind, for statistics.
    pub fn kind(&self) -> &'static str {
        use Op::*;
        match self {
            Spawn { .. } => "spawn",
            Kill { .. } => "kill",
            Exit { .. } => "exit",
            Reclaim => "reclaim",
            Init { .. } => "init",
            Finalize { .. } => "finalize",
            SetDevice { .. } => "set-device",
            ResetDevice { .. } => "reset-device",
            GetDevice { .. } => "get-device",
            DeviceCount { .. } => "device-count",
            BareTgid { .. } => "bare-tgid",
            CanAccessPeer { .. } => "can-access-peer",
            EnablePeer { .. } => "enable-peer",
            CreateStream { .. } => "create-stream",
            DestroyStream { .. } => "destroy-stream",
            Sync { .. } => "sync",
            Create { .. } => "create",
            Destroy { .. } => "destroy",
            Record { .. } => "record",
            Wait { .. } => "wait",
            GetId { .. } => "get-id",
            BatchReset { .. } => "batch-reset",
            Export { .. } => "export",
            SetPid { .. } => "set-pid",
            Import { .. } => "import",
            Malloc { .. } => "malloc",
            Free { .. } => "free",
            MemInfo { .. } => "mem-info",
            Memcpy { stream: None, .. } => "memcpy",
            Memcpy { .. } => "memcpy-async",
            Memset { stream: None, .. } => "memset",
            Memset { .. } => "memset-async",
            MemExport { .. } => "mem-export",
            MemSetPid { .. } => "mem-set-pid",
            MemImport { .. } => "mem-import",
            MemClose { .. } => "mem-close",
        }
    }

    /// Whether this is a call of §5 (device and IPC memory).
    pub fn is_memory(&self) -> bool {
        use Op::*;
        matches!(
            self,
            Malloc { .. }
                | Free { .. }
                | MemInfo { .. }
                | Memcpy { .. }
                | Memset { .. }
                | MemExport { .. }
                | MemSetPid { .. }
                | MemImport { .. }
                | MemClose { .. }
        )
    }
}

/// What a successful call hands back, as the model names it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Out {
    /// Nothing to compare.
    #[default]
    None,
    /// A new notify handle (create or import) and the notify it refers to.
    Notify(Hid, Nid),
    /// A new stream.
    Stream(Sid),
    /// The key of this notify (its first export).
    Key(Nid),
    /// `aclrtGetDevice`.
    Device(i32),
    /// `aclrtGetDeviceCount`.
    Count(u32),
    /// `aclrtDeviceGetBareTgid`.
    Pid(PidSym),
    /// `aclrtDeviceCanAccessPeer`.
    CanAccess(bool),
    /// `aclrtGetNotifyId`: the id of this notify.
    Id(Nid),
    /// A new device address range (malloc, import).
    Ptr(Mid),
    /// The key of this export.
    MemKey(Xid),
    /// `aclrtGetMemInfo`.
    MemInfo {
        /// Free bytes of the current device.
        free: u64,
        /// Its total.
        total: u64,
    },
    /// What a copy wrote into its host buffer.
    Bytes(Vec<u8>),
}

/// A change the step made, for traces and statistics.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Effect {
    Created(Nid),
    Imported(Nid),
    Exported(Nid),
    Whitelisted(Nid, PidSym),
    /// The key can no longer be imported (R8, R9).
    Revoked(Nid),
    /// The last reference is gone (R8).
    Freed(Nid),
    FlagSet(Nid),
    FlagCleared(Nid),
    /// A wait that found its flag clear: it stays queued.
    WaitBlocked(Nid),
    /// A record released a blocked wait (of another stream).
    WaitReleased(Nid),
    /// A synchronize waited for a blocked wait to expire (R3).
    WaitExpired(Nid),
    PeerEnabled(i32, i32),
    /// The registry reclaimed every dead process (a sweep).
    Swept,
    Allocated(Mid),
    /// An allocation's bytes went back to its device (M6).
    MemReleased(Mid),
    MemWritten(Mid),
    MemExported(Xid),
    MemWhitelisted(Xid, PidSym),
    MemImported(Xid),
    MemClosed(Xid),
    /// A §5 hazard was served and counted.
    Hazard(&'static str),
}

/// The model's answer for one step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expect {
    /// The exact code.
    pub code: i32,
    /// What a success returns.
    pub out: Out,
    /// What changed.
    pub effects: Vec<Effect>,
    /// Seconds the call spends waiting for waits to expire (a synchronize of a blocked wait).
    pub waits_s: u32,
}

impl Expect {
    fn code(code: i32) -> Self {
        Self {
            code,
            ..Self::default()
        }
    }

    fn ok() -> Self {
        Self::code(OK)
    }

    fn with(mut self, out: Out) -> Self {
        self.out = out;
        self
    }
}

/// Why the model cannot say what a step does (see the module docs). A driver must not run it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unpredictable {
    /// The process is not in the state the step needs (dead, alive, or out of range).
    NoSuchProcess,
    /// A released wait may still be finishing: only a synchronize of its stream is predictable.
    InFlight,
    /// A task would be queued behind a blocked wait.
    QueuedBehindWait,
    /// A second blocked wait on the same notify: which one a record releases is a race.
    SecondWaiter,
    /// A synchronize that would wait for a wait with no timeout.
    Hangs,
    /// A timed synchronize whose timeout is too close to the blocked wait's.
    Timing,
    /// A finalize or stream destroy that would leave a blocked wait running.
    Lingers,
    /// A symbol the model has never made (a shrunk or badly generated step).
    UnknownSymbol,
    /// A pointer the simulator would read or write as host memory, which the model cannot tell
    /// from device memory (another process's, an earlier session's, a wild value), or a host
    /// buffer shorter than the copy.
    WildPointer,
    /// An async copy with a host side that would be accepted: the drivers keep no host buffer
    /// past a call.
    HostAsync,
}

/// One modelled process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    /// Which life of the process this is (bumped by [`Op::Spawn`]).
    pub incarnation: u32,
    /// Whether it runs.
    pub alive: bool,
    /// The current `aclInit` session, if initialized (R15: else 100001).
    pub session: Option<u32>,
    /// Sessions so far, so that a new one gets a new number.
    pub sessions: u32,
    /// R13: the thread's current device.
    pub current: Option<i32>,
    /// R7: (current device, peer device) pairs enabled in this session.
    pub peers: BTreeSet<(i32, i32)>,
    /// The default stream of each device in this session.
    pub defaults: BTreeMap<i32, Queue>,
}

impl Process {
    fn new(incarnation: u32) -> Self {
        Self {
            incarnation,
            alive: true,
            session: None,
            sessions: 0,
            current: None,
            peers: BTreeSet::new(),
            defaults: BTreeMap::new(),
        }
    }

    /// Whether it is attached to the namespace: alive and initialized.
    pub fn attached(&self) -> bool {
        self.alive && self.session.is_some()
    }
}

/// A stream's queue. The model never queues a task behind a blocked wait, so a queue holds at
/// most that one wait (records and waits on an idle stream run at once).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Queue {
    /// The blocked wait at its head: its notify and timeout in seconds.
    pub blocked: Option<(Nid, u32)>,
    /// R2: the first failure since the last synchronize.
    pub first_error: Option<i32>,
    /// A record released its wait, which may still be finishing.
    pub in_flight: bool,
}

/// A notify handle some process was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handle {
    /// Its process.
    pub owner: Proc,
    /// That process's incarnation.
    pub incarnation: u32,
    /// That process's session.
    pub session: u32,
    /// The notify it refers to.
    pub notify: Nid,
    /// Made by create (else by import).
    pub creator: bool,
    /// Not destroyed yet (a finalize or a death destroys it too).
    pub live: bool,
}

/// A stream made by `aclrtCreateStream`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stream {
    /// Its process, incarnation and session.
    pub owner: Proc,
    /// The owner's incarnation.
    pub incarnation: u32,
    /// The owner's session.
    pub session: u32,
    /// R13: the device current at its creation.
    pub device: i32,
    /// Not destroyed yet.
    pub live: bool,
    /// Its tasks.
    pub queue: Queue,
}

/// R5/R8: the export state of a notify.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Export {
    /// Never exported.
    None,
    /// Exported; `disable` = with `DISABLE_PID_VALIDATION`.
    Live {
        /// The export flag.
        disable: bool,
    },
    /// The creator's handle is gone (destroyed, finalized, or the creator died): no import.
    Revoked {
        /// Whether it had been exported with `DISABLE_PID_VALIDATION`.
        disable: bool,
        /// `Some(live flags)` when a death revoked it: until the registry reclaims the dead
        /// creator, the inspector may still show it as exported.
        by_death: Option<Option<bool>>,
    },
}

/// A live notify: it has at least one reference (R8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notify {
    /// Its device.
    pub device: i32,
    /// The creating process (and incarnation).
    pub creator: PidSym,
    /// The creator's session.
    pub creator_session: u32,
    /// R1: the binary flag.
    pub flag: bool,
    /// R5, R8.
    pub export: Export,
    /// R6/R7: importer entries, in the order they were added.
    pub whitelist: Vec<PidSym>,
    /// R8: references per holding process: its live handles plus its queued tasks.
    pub refs: BTreeMap<Proc, u32>,
}

/// A notify freed because its last holders died, which the registry may still show (held by
/// [`Model::unreclaimed`] processes only) until it reclaims them (R9).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ghost {
    /// Its device.
    pub device: i32,
}

/// The size of the modelled world.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Devices of the namespace.
    pub devices: u32,
    /// Notifies per device (R11).
    pub capacity: u32,
    /// Modelled processes.
    pub processes: usize,
    /// Bytes of device memory per device (`ASCEND_NOTIFY_SIM_DEVICE_MEMORY`, M1).
    pub device_memory: u64,
}

/// The reference model: the state of every modelled process, handle, stream and notify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Model {
    cfg: Config,
    procs: Vec<Process>,
    notifies: BTreeMap<Nid, Notify>,
    handles: BTreeMap<Hid, Handle>,
    streams: BTreeMap<Sid, Stream>,
    /// Every notify that was ever exported: its key stays usable as an input.
    keys: BTreeSet<Nid>,
    /// R9: dead processes the registry may not have reclaimed yet, and what it may still show.
    unreclaimed: BTreeSet<PidSym>,
    ghosts: BTreeMap<Nid, Ghost>,
    /// §4: the namespace exists from the first attach until the last clean detach removes it
    /// (deaths and reclamation leave it).
    exists: bool,
    /// §5: device memory, exports, imports.
    mem: memory::MemState,
    next_hid: u32,
    next_sid: u32,
    next_nid: u32,
}

/// Which queue a stream argument names.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum QueueRef {
    /// The default stream of this device, in process `p`'s current session.
    Default(Proc, i32),
    /// A created stream.
    Created(Sid),
}

macro_rules! fail {
    ($code:expr) => {
        return Ok(Expect::code($code))
    };
}

pub mod memory;

pub use memory::{
    Contents, Hazards, MemExport, MemKeyArg, Memory, Mid, Origin, PtrArg, Region, Xid,
};

impl Model {
    /// `cfg.processes` processes, alive and not initialized.
    pub fn new(cfg: Config) -> Self {
        Self {
            cfg,
            procs: (0..cfg.processes).map(|_| Process::new(0)).collect(),
            notifies: BTreeMap::new(),
            handles: BTreeMap::new(),
            streams: BTreeMap::new(),
            keys: BTreeSet::new(),
            unreclaimed: BTreeSet::new(),
            ghosts: BTreeMap::new(),
            exists: false,
            mem: memory::MemState::default(),
            next_hid: 1,
            next_sid: 1,
            next_nid: 1,
        }
    }

    // -----------------------------------------------------------------------------------------
    // Reading the state
    // -----------------------------------------------------------------------------------------

    /// The configuration.
    pub fn config(&self) -> Config {
        self.cfg
    }

    /// Every process.
    pub fn procs(&self) -> &[Process] {
        &self.procs
    }

    /// Process `p`.
    pub fn process(&self, p: Proc) -> &Process {
        &self.procs[p]
    }

    /// The pid of process `p` now.
    pub fn pid(&self, p: Proc) -> PidSym {
        PidSym::Proc {
            p,
            incarnation: self.procs[p].incarnation,
        }
    }

    /// Every live notify.
    pub fn notifies(&self) -> &BTreeMap<Nid, Notify> {
        &self.notifies
    }

    /// Every handle ever made.
    pub fn handles(&self) -> &BTreeMap<Hid, Handle> {
        &self.handles
    }

    /// Every stream ever created.
    pub fn streams(&self) -> &BTreeMap<Sid, Stream> {
        &self.streams
    }

    /// Every notify ever exported.
    pub fn keys(&self) -> &BTreeSet<Nid> {
        &self.keys
    }

    /// Dead processes the registry may not have reclaimed yet (R9: between a death and the
    /// next sweep, the inspector may still show them and what they held).
    pub fn unreclaimed(&self) -> &BTreeSet<PidSym> {
        &self.unreclaimed
    }

    /// Notifies freed by deaths that the registry may still show.
    pub fn ghosts(&self) -> &BTreeMap<Nid, Ghost> {
        &self.ghosts
    }

    /// Whether the namespace exists: from the first attach until the last attached process
    /// detaches cleanly (§4: then it reclaims the dead and removes everything); deaths and
    /// reclamation leave it.
    pub fn namespace_exists(&self) -> bool {
        self.exists
    }

    /// Whether the session that created notify `n` is still attached (the inspector names the
    /// creator then, and not once it is gone).
    pub fn creator_attached(&self, n: Nid) -> bool {
        let Some(nt) = self.notifies.get(&n) else {
            return false;
        };
        let PidSym::Proc { p, incarnation } = nt.creator else {
            return false;
        };
        let pr = &self.procs[p];
        pr.alive && pr.incarnation == incarnation && pr.session == Some(nt.creator_session)
    }

    /// Whether something made by `owner` in its `incarnation`'s `session` belongs to process
    /// `p`'s current session (handles, streams and allocations die with their session, R10).
    pub(crate) fn of_current_session(
        &self,
        p: Proc,
        owner: Proc,
        incarnation: u32,
        session: u32,
    ) -> bool {
        let pr = &self.procs[p];
        owner == p && incarnation == pr.incarnation && Some(session) == pr.session && pr.alive
    }

    /// Whether handle `h` is a live handle of process `p`'s current session.
    pub fn is_live_handle(&self, p: Proc, h: Hid) -> bool {
        self.handles.get(&h).is_some_and(|hd| {
            hd.live && self.of_current_session(p, hd.owner, hd.incarnation, hd.session)
        })
    }

    /// The live handles of process `p`'s current session.
    pub fn live_handles(&self, p: Proc) -> Vec<Hid> {
        self.handles
            .keys()
            .copied()
            .filter(|&h| self.is_live_handle(p, h))
            .collect()
    }

    /// Whether stream `s` is a live stream of process `p`'s current session.
    pub fn is_live_stream(&self, p: Proc, s: Sid) -> bool {
        self.streams.get(&s).is_some_and(|st| {
            st.live && self.of_current_session(p, st.owner, st.incarnation, st.session)
        })
    }

    /// The live streams of process `p`'s current session.
    pub fn live_streams(&self, p: Proc) -> Vec<Sid> {
        self.streams
            .keys()
            .copied()
            .filter(|&s| self.is_live_stream(p, s))
            .collect()
    }

    /// Live notifies on `device`.
    pub fn live_on(&self, device: i32) -> usize {
        self.notifies
            .values()
            .filter(|n| n.device == device)
            .count()
    }

    /// The queue of a stream, if it exists.
    pub fn queue(&self, q: QueueRef) -> Option<&Queue> {
        match q {
            QueueRef::Default(p, d) => self.procs.get(p)?.defaults.get(&d),
            QueueRef::Created(s) => self.streams.get(&s).map(|s| &s.queue),
        }
    }

    fn queue_mut(&mut self, q: QueueRef) -> &mut Queue {
        match q {
            QueueRef::Default(p, d) => self.procs[p].defaults.entry(d).or_default(),
            QueueRef::Created(s) => &mut self.streams.get_mut(&s).expect("a known stream").queue,
        }
    }

    /// Every queue of the attached processes, with its owner.
    fn queues(&self) -> Vec<(Proc, QueueRef)> {
        let mut out = Vec::new();
        for (p, pr) in self.procs.iter().enumerate() {
            if !pr.attached() {
                continue;
            }
            out.extend(pr.defaults.keys().map(|&d| (p, QueueRef::Default(p, d))));
        }
        for (&s, st) in &self.streams {
            if self.procs[st.owner].incarnation == st.incarnation
                && Some(st.session) == self.procs[st.owner].session
                && self.procs[st.owner].alive
            {
                out.push((st.owner, QueueRef::Created(s)));
            }
        }
        out
    }

    /// The blocked waits now: (owner, queue, notify, timeout).
    pub fn blocked_waits(&self) -> Vec<(Proc, QueueRef, Nid, u32)> {
        self.queues()
            .into_iter()
            .filter_map(|(p, q)| {
                let (n, t) = self.queue(q)?.blocked?;
                Some((p, q, n, t))
            })
            .collect()
    }

    /// Whether no released wait may still be finishing ([`Unpredictable::InFlight`]).
    pub fn settled(&self) -> bool {
        self.in_flight().is_empty()
    }

    /// The streams whose released wait may still be finishing.
    pub fn in_flight(&self) -> Vec<(Proc, QueueRef)> {
        self.queues()
            .into_iter()
            .filter(|&(_, q)| self.queue(q).is_some_and(|q| q.in_flight))
            .collect()
    }

    /// The steps that settle the model: a full synchronize of each stream in flight (with a
    /// set-device first where it is a default stream of another device than the current one).
    pub fn settle_ops(&self) -> Vec<Op> {
        let mut ops = Vec::new();
        let mut current: BTreeMap<Proc, Option<i32>> = BTreeMap::new();
        for (p, q) in self.in_flight() {
            let cur = current.entry(p).or_insert(self.procs[p].current);
            match q {
                QueueRef::Created(s) => ops.push(Op::Sync {
                    p,
                    stream: StreamArg::Stream(s),
                    timeout_ms: None,
                }),
                QueueRef::Default(_, d) => {
                    if *cur != Some(d) {
                        ops.push(Op::SetDevice { p, device: d });
                        *cur = Some(d);
                    }
                    ops.push(Op::Sync {
                        p,
                        stream: StreamArg::Default,
                        timeout_ms: None,
                    });
                }
            }
        }
        ops
    }

    // -----------------------------------------------------------------------------------------
    // Applying a step
    // -----------------------------------------------------------------------------------------

    /// Applies `op` and returns what the contract says it does.
    ///
    /// # Panics
    /// If the step is [`Unpredictable`]: drivers check with [`Model::try_apply`] or
    /// [`Model::predict`] first.
    #[track_caller]
    pub fn apply(&mut self, op: &Op) -> Expect {
        self.try_apply(op)
            .unwrap_or_else(|why| panic!("the model cannot predict {op:?}: {why:?}"))
    }

    /// What `op` would do, without applying it.
    pub fn predict(&self, op: &Op) -> Result<Expect, Unpredictable> {
        self.clone().try_apply(op)
    }

    /// Applies `op` if the model can predict it; on `Err` nothing changed.
    pub fn try_apply(&mut self, op: &Op) -> Result<Expect, Unpredictable> {
        let mut next = self.clone();
        let expect = next.step(op)?;
        *self = next;
        Ok(expect)
    }

    fn alive(&self, p: Proc) -> Result<&Process, Unpredictable> {
        self.procs
            .get(p)
            .filter(|pr| pr.alive)
            .ok_or(Unpredictable::NoSuchProcess)
    }

    fn check_device(&self, d: i32) -> bool {
        u32::try_from(d).is_ok_and(|d| d < self.cfg.devices)
    }

    /// R10: the notify a handle argument names, if it is a live handle of `p`'s session.
    fn notify_handle(&self, p: Proc, arg: &NotifyArg) -> Result<Result<Hid, i32>, Unpredictable> {
        match arg {
            NotifyArg::Null => Ok(Err(INVALID_PARAM)),
            NotifyArg::Handle(h) => {
                if !self.handles.contains_key(h) {
                    return Err(Unpredictable::UnknownSymbol);
                }
                Ok(if self.is_live_handle(p, *h) {
                    Ok(*h)
                } else {
                    Err(INVALID_HANDLE)
                })
            }
            NotifyArg::Stream(s) => {
                if !self.streams.contains_key(s) {
                    return Err(Unpredictable::UnknownSymbol);
                }
                Ok(Err(INVALID_HANDLE))
            }
            NotifyArg::Invalid(_) => Ok(Err(INVALID_HANDLE)),
        }
    }

    /// R10, R13: the queue a stream argument names for an enqueue by `p` (current device `cur`).
    fn enqueue_queue(
        &self,
        p: Proc,
        cur: i32,
        arg: &StreamArg,
    ) -> Result<Result<QueueRef, i32>, Unpredictable> {
        Ok(match arg {
            StreamArg::Default => Ok(QueueRef::Default(p, cur)),
            StreamArg::Stream(s) => {
                let Some(st) = self.streams.get(s) else {
                    return Err(Unpredictable::UnknownSymbol);
                };
                if !self.is_live_stream(p, *s) {
                    Err(INVALID_HANDLE)
                } else if st.device != cur {
                    Err(STREAM_CONTEXT)
                } else {
                    Ok(QueueRef::Created(*s))
                }
            }
            StreamArg::Notify(h) => {
                if !self.handles.contains_key(h) {
                    return Err(Unpredictable::UnknownSymbol);
                }
                Err(INVALID_HANDLE)
            }
            StreamArg::Invalid(_) => Err(INVALID_HANDLE),
        })
    }

    /// The stream a destroy or synchronize names (no device check: C1).
    fn stream_handle(&self, p: Proc, arg: &StreamArg) -> Result<Result<Sid, i32>, Unpredictable> {
        Ok(match arg {
            StreamArg::Default => Err(INVALID_PARAM),
            StreamArg::Stream(s) => {
                if !self.streams.contains_key(s) {
                    return Err(Unpredictable::UnknownSymbol);
                }
                if self.is_live_stream(p, *s) {
                    Ok(*s)
                } else {
                    Err(INVALID_HANDLE)
                }
            }
            StreamArg::Notify(h) => {
                if !self.handles.contains_key(h) {
                    return Err(Unpredictable::UnknownSymbol);
                }
                Err(INVALID_HANDLE)
            }
            StreamArg::Invalid(_) => Err(INVALID_HANDLE),
        })
    }

    fn step(&mut self, op: &Op) -> Result<Expect, Unpredictable> {
        // While a released wait may still be finishing, only its synchronize is predictable
        // (and a set-device, which touches no notify).
        if !self.settled() && !matches!(op, Op::Sync { .. } | Op::SetDevice { .. }) {
            return Err(Unpredictable::InFlight);
        }
        if op.is_memory() {
            return self.mem_step(op);
        }
        match op {
            Op::Spawn { p } => {
                let pr = self.procs.get(*p).ok_or(Unpredictable::NoSuchProcess)?;
                if pr.alive {
                    return Err(Unpredictable::NoSuchProcess);
                }
                self.procs[*p] = Process::new(pr.incarnation + 1);
                Ok(Expect::ok())
            }
            Op::Kill { p } => {
                self.alive(*p)?;
                let attached = self.procs[*p].attached();
                let pid = self.pid(*p);
                let mut e = Expect::ok();
                self.end_session(*p, End::Death, &mut e);
                self.procs[*p].alive = false;
                if attached {
                    self.unreclaimed.insert(pid);
                }
                Ok(e)
            }
            Op::Exit { p } => {
                self.alive(*p)?;
                let attached = self.procs[*p].attached();
                let mut e = Expect::ok();
                self.end_session(*p, End::Clean, &mut e);
                self.procs[*p].alive = false;
                if attached {
                    self.after_detach(&mut e);
                }
                Ok(e)
            }
            Op::Reclaim => {
                let mut e = Expect::ok();
                self.sweep(&mut e);
                // §4: a namespace left with no live process goes, as at its last detach.
                self.after_detach(&mut e);
                Ok(e)
            }
            Op::Init { p } => {
                let pr = self.alive(*p)?;
                if pr.session.is_some() {
                    fail!(REPEAT_INITIALIZE);
                }
                let mut e = Expect::ok();
                // §4: an attach to a namespace whose processes are all dead reclaims them.
                if !self.procs.iter().any(Process::attached) {
                    self.sweep(&mut e);
                }
                self.exists = true;
                let pr = &mut self.procs[*p];
                pr.sessions += 1;
                pr.session = Some(pr.sessions);
                pr.current = None;
                pr.peers.clear();
                pr.defaults.clear();
                Ok(e)
            }
            Op::Finalize { p } => {
                let pr = self.alive(*p)?;
                if pr.session.is_none() {
                    fail!(UNINITIALIZE);
                }
                if self.blocked_waits().iter().any(|w| w.0 == *p) {
                    return Err(Unpredictable::Lingers);
                }
                let mut e = Expect::ok();
                self.end_session(*p, End::Clean, &mut e);
                self.after_detach(&mut e);
                Ok(e)
            }
            Op::SetDevice { p, device } => {
                let pr = self.alive(*p)?;
                if pr.session.is_none() {
                    fail!(UNINITIALIZE);
                }
                if !self.check_device(*device) {
                    fail!(INVALID_DEVICEID);
                }
                self.procs[*p].current = Some(*device);
                Ok(Expect::ok())
            }
            Op::ResetDevice { p, device } => {
                let pr = self.alive(*p)?;
                if pr.session.is_none() {
                    fail!(UNINITIALIZE);
                }
                if !self.check_device(*device) {
                    fail!(INVALID_DEVICEID);
                }
                let pr = &mut self.procs[*p];
                if pr.current == Some(*device) {
                    pr.current = None;
                }
                Ok(Expect::ok())
            }
            Op::GetDevice { p, null } => {
                let pr = self.alive(*p)?;
                if pr.session.is_none() {
                    fail!(UNINITIALIZE);
                }
                if *null {
                    fail!(INVALID_PARAM);
                }
                match pr.current {
                    None => fail!(CONTEXT_NULL),
                    Some(d) => Ok(Expect::ok().with(Out::Device(d))),
                }
            }
            Op::DeviceCount { p, null } => {
                let pr = self.alive(*p)?;
                if pr.session.is_none() {
                    fail!(UNINITIALIZE);
                }
                if *null {
                    fail!(INVALID_PARAM);
                }
                Ok(Expect::ok().with(Out::Count(self.cfg.devices)))
            }
            Op::BareTgid { p, null } => {
                let pr = self.alive(*p)?;
                if pr.session.is_none() {
                    fail!(UNINITIALIZE);
                }
                if *null {
                    fail!(INVALID_PARAM);
                }
                Ok(Expect::ok().with(Out::Pid(self.pid(*p))))
            }
            Op::CanAccessPeer {
                p,
                null,
                device,
                peer,
            } => {
                let pr = self.alive(*p)?;
                if pr.session.is_none() {
                    fail!(UNINITIALIZE);
                }
                if *null {
                    fail!(INVALID_PARAM);
                }
                if !self.check_device(*device) || !self.check_device(*peer) {
                    fail!(INVALID_DEVICEID);
                }
                if device == peer {
                    fail!(PARAM_INVALID);
                }
                // sim: any two distinct devices can access each other.
                Ok(Expect::ok().with(Out::CanAccess(true)))
            }
            Op::EnablePeer { p, peer, flags } => {
                let pr = self.alive(*p)?;
                if pr.session.is_none() {
                    fail!(UNINITIALIZE);
                }
                let Some(cur) = pr.current else {
                    fail!(CONTEXT_NULL)
                };
                // R15: flag bits, then the device id, then "to itself" (R7).
                if *flags != 0 {
                    fail!(PARAM_INVALID);
                }
                if !self.check_device(*peer) {
                    fail!(INVALID_DEVICEID);
                }
                if *peer == cur {
                    fail!(PARAM_INVALID);
                }
                self.procs[*p].peers.insert((cur, *peer));
                let mut e = Expect::ok();
                e.effects.push(Effect::PeerEnabled(cur, *peer));
                Ok(e)
            }
            Op::CreateStream { p, null } => {
                let pr = self.alive(*p)?;
                let Some(session) = pr.session else {
                    fail!(UNINITIALIZE)
                };
                if *null {
                    fail!(INVALID_PARAM);
                }
                let Some(cur) = pr.current else {
                    fail!(CONTEXT_NULL)
                };
                let incarnation = pr.incarnation;
                let s = Sid(self.next_sid);
                self.next_sid += 1;
                self.streams.insert(
                    s,
                    Stream {
                        owner: *p,
                        incarnation,
                        session,
                        device: cur,
                        live: true,
                        queue: Queue::default(),
                    },
                );
                Ok(Expect::ok().with(Out::Stream(s)))
            }
            Op::DestroyStream { p, stream } => {
                let pr = self.alive(*p)?;
                if pr.session.is_none() {
                    fail!(UNINITIALIZE);
                }
                let s = match self.stream_handle(*p, stream)? {
                    Ok(s) => s,
                    Err(c) => fail!(c),
                };
                if self.streams[&s].queue.blocked.is_some() {
                    return Err(Unpredictable::Lingers);
                }
                let st = self.streams.get_mut(&s).expect("checked");
                st.live = false;
                st.queue = Queue::default();
                Ok(Expect::ok())
            }
            Op::Sync {
                p,
                stream,
                timeout_ms,
            } => self.sync(*p, stream, *timeout_ms),
            Op::Create { p, null, flags } => {
                let pr = self.alive(*p)?;
                let Some(session) = pr.session else {
                    fail!(UNINITIALIZE)
                };
                if *null {
                    fail!(INVALID_PARAM);
                }
                let Some(cur) = pr.current else {
                    fail!(CONTEXT_NULL)
                };
                if flags & !CREATE_DEVICE_USE_ONLY != 0 {
                    fail!(PARAM_INVALID);
                }
                if self.live_on(cur) >= self.cfg.capacity as usize {
                    // R9/R11: a create that finds its device full reclaims (a sweep) first.
                    let mut e = Expect::code(NO_NOTIFY_RESOURCE);
                    self.sweep(&mut e);
                    return Ok(e);
                }
                let incarnation = pr.incarnation;
                let n = Nid(self.next_nid);
                self.next_nid += 1;
                self.notifies.insert(
                    n,
                    Notify {
                        device: cur,
                        creator: self.pid(*p),
                        creator_session: session,
                        flag: false,
                        export: Export::None,
                        whitelist: Vec::new(),
                        refs: BTreeMap::from([(*p, 1)]),
                    },
                );
                let h = self.new_handle(*p, incarnation, session, n, true);
                let mut e = Expect::ok().with(Out::Notify(h, n));
                e.effects.push(Effect::Created(n));
                Ok(e)
            }
            Op::Destroy { p, notify } => {
                let pr = self.alive(*p)?;
                if pr.session.is_none() {
                    fail!(UNINITIALIZE);
                }
                let h = match self.notify_handle(*p, notify)? {
                    Ok(h) => h,
                    Err(c) => fail!(c),
                };
                let mut e = Expect::ok();
                self.destroy_handle(h, false, &mut e);
                Ok(e)
            }
            Op::Record { p, notify, stream } => {
                let (h, q) = match self.enqueue_checks(*p, notify, stream)? {
                    Ok(v) => v,
                    Err(c) => fail!(c),
                };
                if self.queue(q).is_some_and(|q| q.blocked.is_some()) {
                    return Err(Unpredictable::QueuedBehindWait);
                }
                // R4: any holder records. It runs at once (the stream is idle).
                let n = self.handles[&h].notify;
                let mut e = Expect::ok();
                self.record(n, &mut e);
                Ok(e)
            }
            Op::Wait {
                p,
                notify,
                stream,
                timeout_s,
            } => {
                let (h, q) = match self.enqueue_checks(*p, notify, stream)? {
                    Ok(v) => v,
                    Err(c) => fail!(c),
                };
                let hd = &self.handles[&h];
                let n = hd.notify;
                let cur = self.procs[*p].current.expect("checked");
                // R4: only the creator waits, on the notify's device (107000, at enqueue).
                if !hd.creator || self.notifies[&n].device != cur {
                    fail!(PARAM_INVALID);
                }
                if self.queue(q).is_some_and(|q| q.blocked.is_some()) {
                    return Err(Unpredictable::QueuedBehindWait);
                }
                let mut e = Expect::ok();
                let second = self.blocked_waits().iter().any(|w| w.2 == n);
                let nt = self.notifies.get_mut(&n).expect("held");
                if nt.flag {
                    // R1: completes at once and resets the flag.
                    nt.flag = false;
                    e.effects.push(Effect::FlagCleared(n));
                } else {
                    if second {
                        return Err(Unpredictable::SecondWaiter);
                    }
                    // R8: the queued task holds its own reference.
                    *nt.refs.entry(*p).or_insert(0) += 1;
                    self.queue_mut(q).blocked = Some((n, *timeout_s));
                    e.effects.push(Effect::WaitBlocked(n));
                }
                Ok(e)
            }
            Op::GetId { p, notify, null } => {
                let pr = self.alive(*p)?;
                if pr.session.is_none() {
                    fail!(UNINITIALIZE);
                }
                if matches!(notify, NotifyArg::Null) || *null {
                    fail!(INVALID_PARAM);
                }
                let h = match self.notify_handle(*p, notify)? {
                    Ok(h) => h,
                    Err(c) => fail!(c),
                };
                Ok(Expect::ok().with(Out::Id(self.handles[&h].notify)))
            }
            Op::BatchReset { p, notifies } => {
                let pr = self.alive(*p)?;
                if pr.session.is_none() {
                    fail!(UNINITIALIZE);
                }
                let Array::Items(items) = notifies else {
                    fail!(INVALID_PARAM)
                };
                if items.iter().any(|a| matches!(a, NotifyArg::Null)) {
                    fail!(INVALID_PARAM);
                }
                if items.is_empty() {
                    fail!(PARAM_INVALID);
                }
                let mut hs = Vec::new();
                for a in items {
                    match self.notify_handle(*p, a)? {
                        Ok(h) => hs.push(h),
                        Err(c) => fail!(c),
                    }
                }
                let mut e = Expect::ok();
                for h in hs {
                    let n = self.handles[&h].notify;
                    let nt = self.notifies.get_mut(&n).expect("held");
                    if nt.flag {
                        nt.flag = false;
                        e.effects.push(Effect::FlagCleared(n));
                    }
                }
                Ok(e)
            }
            Op::Export {
                p,
                notify,
                buf,
                flags,
            } => {
                let pr = self.alive(*p)?;
                if pr.session.is_none() {
                    fail!(UNINITIALIZE);
                }
                if matches!(notify, NotifyArg::Null) || buf.null {
                    fail!(INVALID_PARAM);
                }
                let h = match self.notify_handle(*p, notify)? {
                    Ok(h) => h,
                    Err(c) => fail!(c),
                };
                // R15: flag bits, then the length (both 107000), then the state (507000).
                if *flags != 0 && *flags != EXPORT_DISABLE_PID_VALIDATION {
                    fail!(PARAM_INVALID);
                }
                if buf.len < KEY_BUF_MIN {
                    fail!(PARAM_INVALID);
                }
                let hd = &self.handles[&h];
                let n = hd.notify;
                if !hd.creator || self.notifies[&n].export != Export::None {
                    fail!(INTERNAL);
                }
                self.notifies.get_mut(&n).expect("held").export = Export::Live {
                    disable: *flags == EXPORT_DISABLE_PID_VALIDATION,
                };
                self.keys.insert(n);
                let mut e = Expect::ok().with(Out::Key(n));
                e.effects.push(Effect::Exported(n));
                Ok(e)
            }
            Op::SetPid { p, notify, pids } => self.set_pid(*p, notify, pids),
            Op::Import {
                p,
                null_out,
                key,
                flags,
            } => self.import(*p, *null_out, key, *flags),
            other => unreachable!("a memory step: {other:?}"),
        }
    }

    /// R15 for record and wait up to the enqueue: init, NULL, context, handle, stream.
    fn enqueue_checks(
        &self,
        p: Proc,
        notify: &NotifyArg,
        stream: &StreamArg,
    ) -> Result<Result<(Hid, QueueRef), i32>, Unpredictable> {
        let pr = self.alive(p)?;
        if pr.session.is_none() {
            return Ok(Err(UNINITIALIZE));
        }
        if matches!(notify, NotifyArg::Null) {
            return Ok(Err(INVALID_PARAM));
        }
        let Some(cur) = pr.current else {
            return Ok(Err(CONTEXT_NULL));
        };
        let h = match self.notify_handle(p, notify)? {
            Ok(h) => h,
            Err(c) => return Ok(Err(c)),
        };
        let q = match self.enqueue_queue(p, cur, stream)? {
            Ok(q) => q,
            Err(c) => return Ok(Err(c)),
        };
        Ok(Ok((h, q)))
    }

    fn new_handle(
        &mut self,
        p: Proc,
        incarnation: u32,
        session: u32,
        n: Nid,
        creator: bool,
    ) -> Hid {
        let h = Hid(self.next_hid);
        self.next_hid += 1;
        self.handles.insert(
            h,
            Handle {
                owner: p,
                incarnation,
                session,
                notify: n,
                creator,
                live: true,
            },
        );
        h
    }

    /// R1: a record sets the flag; a blocked wait on the notify consumes it at once.
    fn record(&mut self, n: Nid, e: &mut Expect) {
        let waiter = self.blocked_waits().into_iter().find(|w| w.2 == n);
        match waiter {
            Some((owner, q, _, _)) => {
                let queue = self.queue_mut(q);
                queue.blocked = None;
                queue.in_flight = true;
                e.effects.push(Effect::WaitReleased(n));
                self.drop_ref(owner, n, e);
            }
            None => {
                let nt = self.notifies.get_mut(&n).expect("held");
                if !nt.flag {
                    nt.flag = true;
                    e.effects.push(Effect::FlagSet(n));
                }
            }
        }
    }

    fn sync(
        &mut self,
        p: Proc,
        stream: &StreamArg,
        timeout_ms: Option<i32>,
    ) -> Result<Expect, Unpredictable> {
        let pr = self.alive(p)?;
        if pr.session.is_none() {
            fail!(UNINITIALIZE);
        }
        let q = match stream {
            StreamArg::Default => match pr.current {
                None => fail!(CONTEXT_NULL),
                Some(d) => QueueRef::Default(p, d),
            },
            other => match self.stream_handle(p, other)? {
                Ok(s) => QueueRef::Created(s),
                Err(c) => fail!(c),
            },
        };
        if timeout_ms.is_some_and(|ms| ms < -1) {
            fail!(PARAM_INVALID);
        }
        let forever = timeout_ms.is_none_or(|ms| ms == -1);
        let queue = self.queue(q).cloned().unwrap_or_default();
        if !self.settled() && !queue.in_flight {
            return Err(Unpredictable::InFlight);
        }
        if queue.in_flight && !forever && timeout_ms.is_some_and(|ms| ms < SETTLE_MS) {
            return Err(Unpredictable::Timing);
        }
        let mut e = Expect::ok();
        if let Some((n, t)) = queue.blocked {
            if t == 0 {
                if forever {
                    return Err(Unpredictable::Hangs);
                }
                fail!(SYNC_TIMEOUT);
            }
            let ms = i64::from(timeout_ms.unwrap_or(-1));
            let wait_ms = i64::from(t) * 1000;
            if !forever {
                if ms * 2 <= wait_ms {
                    // R2: gives up; the wait stays queued, the first failure stays recorded.
                    fail!(SYNC_TIMEOUT);
                }
                if ms < wait_ms + EXPIRY_SLACK_MS {
                    return Err(Unpredictable::Timing);
                }
            }
            // R3: the wait expires, fails with 107019, leaves the flag; its reference goes.
            let queue = self.queue_mut(q);
            queue.blocked = None;
            queue.first_error.get_or_insert(WAIT_TIMEOUT);
            e.effects.push(Effect::WaitExpired(n));
            e.waits_s = t;
            self.drop_ref(p, n, &mut e);
        }
        let queue = self.queue_mut(q);
        queue.in_flight = false;
        if let Some(c) = queue.first_error.take() {
            e.code = c;
        }
        Ok(e)
    }

    fn set_pid(
        &mut self,
        p: Proc,
        notify: &NotifyArg,
        pids: &Array<PidSym>,
    ) -> Result<Expect, Unpredictable> {
        let pr = self.alive(p)?;
        if pr.session.is_none() {
            fail!(UNINITIALIZE);
        }
        if matches!(notify, NotifyArg::Null) || matches!(pids, Array::Null { .. }) {
            fail!(INVALID_PARAM);
        }
        let h = match self.notify_handle(p, notify)? {
            Ok(h) => h,
            Err(c) => fail!(c),
        };
        let Array::Items(pids) = pids else {
            unreachable!()
        };
        // R6: exactly one pid per call, not negative (bad arguments, 107000).
        let [pid] = pids.as_slice() else {
            fail!(PARAM_INVALID)
        };
        if matches!(pid, PidSym::Raw(x) if *x < 0) {
            fail!(PARAM_INVALID);
        }
        let hd = self.handles[&h].clone();
        let me = self.pid(p);
        let n = self.notifies.get_mut(&hd.notify).expect("held");
        // R15: permission (207006, then 507899 for a non-creator), then the state (107000).
        let disabled = match n.export {
            Export::None => false,
            Export::Live { disable } | Export::Revoked { disable, .. } => disable,
        };
        if disabled {
            fail!(NO_PERMISSION);
        }
        if !hd.creator {
            fail!(DRV_REFUSED);
        }
        if n.export == Export::None {
            fail!(PARAM_INVALID);
        }
        // R6: pid 0 and the creator's own pid are accepted and ignored; a pid already present
        // is refreshed; the 16th importer fails and changes nothing.
        if *pid == PidSym::Raw(0) || *pid == me || n.whitelist.contains(pid) {
            return Ok(Expect::ok());
        }
        if n.whitelist.len() >= WHITELIST_IMPORTERS {
            fail!(DRV_REFUSED);
        }
        n.whitelist.push(*pid);
        let mut e = Expect::ok();
        e.effects.push(Effect::Whitelisted(hd.notify, *pid));
        Ok(e)
    }

    fn import(
        &mut self,
        p: Proc,
        null_out: bool,
        key: &KeyArg,
        flags: u64,
    ) -> Result<Expect, Unpredictable> {
        let pr = self.alive(p)?;
        let Some(session) = pr.session else {
            fail!(UNINITIALIZE)
        };
        if null_out || matches!(key, KeyArg::Null) {
            fail!(INVALID_PARAM);
        }
        let Some(cur) = pr.current else {
            fail!(CONTEXT_NULL)
        };
        if flags != 0 && flags != IMPORT_ENABLE_PEER_ACCESS {
            fail!(PARAM_INVALID);
        }
        let n = match key {
            KeyArg::Null => unreachable!(),
            KeyArg::Other(bytes) => {
                // R7: a malformed key is 107000; a well-formed one that is no key we know is
                // unknown or of another namespace (507899).
                fail!(keys::format_code(bytes).unwrap_or(DRV_REFUSED));
            }
            KeyArg::Forged(n) => {
                if !self.keys.contains(n) {
                    return Err(Unpredictable::UnknownSymbol);
                }
                fail!(DRV_REFUSED);
            }
            KeyArg::Known(n) => {
                if !self.keys.contains(n) {
                    return Err(Unpredictable::UnknownSymbol);
                }
                *n
            }
        };
        // R7, in R15's order: unknown or revoked (507899), already held (507000), not
        // whitelisted (507899), whitelist full (507899), no peer access (507899), holders.
        let me = self.pid(p);
        let Some(nt) = self.notifies.get(&n) else {
            fail!(DRV_REFUSED)
        };
        let Export::Live { disable } = nt.export else {
            fail!(DRV_REFUSED)
        };
        let held = self
            .handles
            .iter()
            .any(|(&h, hd)| hd.notify == n && self.is_live_handle(p, h));
        if held {
            fail!(INTERNAL);
        }
        let listed = nt.whitelist.contains(&me);
        if !disable && !listed {
            fail!(DRV_REFUSED);
        }
        if disable && !listed && nt.whitelist.len() >= WHITELIST_IMPORTERS {
            fail!(DRV_REFUSED);
        }
        let enable = flags == IMPORT_ENABLE_PEER_ACCESS;
        let device = nt.device;
        if !enable && device != cur && !self.procs[p].peers.contains(&(cur, device)) {
            fail!(DRV_REFUSED);
        }
        if !nt.refs.contains_key(&p) && nt.refs.len() >= MAX_HOLDERS {
            fail!(DRV_REFUSED);
        }
        let mut e = Expect::ok();
        let nt = self.notifies.get_mut(&n).expect("live");
        if disable && !listed {
            // R7: with DISABLE_PID_VALIDATION the import whitelists its importer itself.
            nt.whitelist.push(me);
            e.effects.push(Effect::Whitelisted(n, me));
        }
        *nt.refs.entry(p).or_insert(0) += 1;
        if enable && device != cur {
            // R7: flag 0x2 enables peer access (current → notify's device), as
            // aclrtDeviceEnablePeerAccess would.
            if self.procs[p].peers.insert((cur, device)) {
                e.effects.push(Effect::PeerEnabled(cur, device));
            }
        }
        let incarnation = self.procs[p].incarnation;
        let h = self.new_handle(p, incarnation, session, n, false);
        e.effects.push(Effect::Imported(n));
        Ok(e.with(Out::Notify(h, n)))
    }

    /// R8: handle `h` is gone; the creator's destroy revokes the key.
    fn destroy_handle(&mut self, h: Hid, by_death: bool, e: &mut Expect) {
        let hd = self.handles.get_mut(&h).expect("a known handle");
        hd.live = false;
        let (owner, n, creator) = (hd.owner, hd.notify, hd.creator);
        if creator && let Some(nt) = self.notifies.get_mut(&n) {
            let (disable, live) = match nt.export {
                Export::None => (false, None),
                Export::Live { disable } => (disable, Some(disable)),
                Export::Revoked { .. } => unreachable!("the creator's handle is live"),
            };
            nt.export = Export::Revoked {
                disable,
                by_death: by_death.then_some(live),
            };
            e.effects.push(Effect::Revoked(n));
        }
        self.drop_ref(owner, n, e);
    }

    /// R8: one reference of process `p` to `n` is gone; the last one of all frees it.
    fn drop_ref(&mut self, p: Proc, n: Nid, e: &mut Expect) {
        let nt = self
            .notifies
            .get_mut(&n)
            .expect("a referenced notify is live");
        let count = nt.refs.get_mut(&p).expect("p holds a reference");
        *count -= 1;
        if *count == 0 {
            nt.refs.remove(&p);
        }
        if nt.refs.is_empty() {
            self.notifies.remove(&n);
            e.effects.push(Effect::Freed(n));
        }
    }

    /// Ends process `p`'s session: a clean detach (finalize, exit) or a death (R9).
    fn end_session(&mut self, p: Proc, how: End, e: &mut Expect) {
        if self.procs[p].session.is_none() {
            return;
        }
        let death = how == End::Death;
        // Queued tasks go with the process (a death) or are refused before (a finalize: none
        // is blocked; an exit: the process ends them).
        let mut task_refs: Vec<Nid> = Vec::new();
        for (owner, q) in self.queues() {
            if owner == p
                && let Some((n, _)) = self.queue(q).and_then(|q| q.blocked)
            {
                task_refs.push(n);
            }
        }
        self.end_memory(p, death, e);
        let handles: Vec<Hid> = self.live_handles(p);
        let before: BTreeMap<Nid, i32> = self
            .notifies
            .iter()
            .map(|(&n, nt)| (n, nt.device))
            .collect();
        for h in handles {
            self.destroy_handle(h, death, e);
        }
        for n in task_refs {
            self.drop_ref(p, n, e);
        }
        if death {
            // R9: the registry reclaims lazily: until it does, it may still show what the dead
            // process held.
            for (n, device) in before {
                if !self.notifies.contains_key(&n) {
                    self.ghosts.insert(n, Ghost { device });
                }
            }
        }
        for st in self.streams.values_mut() {
            if st.owner == p {
                st.live = false;
                st.queue = Queue::default();
            }
        }
        let pr = &mut self.procs[p];
        pr.session = None;
        pr.current = None;
        pr.peers.clear();
        pr.defaults.clear();
    }

    /// After a clean detach: the last attached process out reclaims the dead and removes the
    /// namespace (§4 "Cleanup").
    fn after_detach(&mut self, e: &mut Expect) {
        if !self.procs.iter().any(Process::attached) {
            self.sweep(e);
            self.exists = false;
            // The namespace goes with its hazard counters (a new one starts at zero).
            self.mem.hazards = Hazards::default();
        }
    }

    /// A sweep: the registry reclaims every dead process (R9).
    fn sweep(&mut self, e: &mut Expect) {
        if !self.unreclaimed.is_empty() || !self.ghosts.is_empty() {
            e.effects.push(Effect::Swept);
        }
        self.unreclaimed.clear();
        self.ghosts.clear();
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum End {
    Clean,
    Death,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> Model {
        let mut m = Model::new(Config {
            devices: 2,
            capacity: 2,
            processes: 3,
            device_memory: 8 << 20,
        });
        for p in 0..3 {
            assert_eq!(m.apply(&Op::Init { p }).code, OK);
            assert_eq!(m.apply(&Op::SetDevice { p, device: 0 }).code, OK);
        }
        m
    }

    fn create(m: &mut Model, p: Proc) -> (Hid, Nid) {
        let e = m.apply(&Op::Create {
            p,
            null: false,
            flags: 0,
        });
        let Out::Notify(h, n) = e.out else {
            panic!("{e:?}")
        };
        (h, n)
    }

    fn export(m: &mut Model, p: Proc, h: Hid, flags: u64) -> i32 {
        m.apply(&Op::Export {
            p,
            notify: NotifyArg::Handle(h),
            buf: Buf::KEY,
            flags,
        })
        .code
    }

    fn import(m: &mut Model, p: Proc, n: Nid, flags: u64) -> Expect {
        m.apply(&Op::Import {
            p,
            null_out: false,
            key: KeyArg::Known(n),
            flags,
        })
    }

    fn set_pid(m: &mut Model, p: Proc, h: Hid, pid: PidSym) -> i32 {
        m.apply(&Op::SetPid {
            p,
            notify: NotifyArg::Handle(h),
            pids: Array::Items(vec![pid]),
        })
        .code
    }

    #[test]
    fn r15_order_of_the_first_checks() {
        let mut m = Model::new(Config {
            devices: 2,
            capacity: 2,
            processes: 1,
            device_memory: 8 << 20,
        });
        let create = |null| Op::Create {
            p: 0,
            null,
            flags: 7,
        };
        assert_eq!(m.apply(&create(true)).code, UNINITIALIZE);
        m.apply(&Op::Init { p: 0 });
        assert_eq!(m.apply(&Op::Init { p: 0 }).code, REPEAT_INITIALIZE);
        assert_eq!(m.apply(&create(true)).code, INVALID_PARAM);
        assert_eq!(m.apply(&create(false)).code, CONTEXT_NULL);
        assert_eq!(
            m.apply(&Op::SetDevice { p: 0, device: 2 }).code,
            INVALID_DEVICEID
        );
        m.apply(&Op::SetDevice { p: 0, device: 1 });
        assert_eq!(m.apply(&create(false)).code, PARAM_INVALID);
    }

    #[test]
    fn r5_r6_export_and_whitelist() {
        let mut m = world();
        let (h, n) = create(&mut m, 0);
        assert_eq!(
            {
                let pid = m.pid(1);
                set_pid(&mut m, 0, h, pid)
            },
            PARAM_INVALID,
            "before export"
        );
        assert_eq!(export(&mut m, 0, h, 0), OK);
        assert_eq!(export(&mut m, 0, h, 0), INTERNAL, "twice");
        // One pid per call; 0 and the creator's own are ignored; 15 importers.
        let two = Op::SetPid {
            p: 0,
            notify: NotifyArg::Handle(h),
            pids: Array::Items(vec![m.pid(1), m.pid(2)]),
        };
        assert_eq!(m.apply(&two).code, PARAM_INVALID);
        assert_eq!(set_pid(&mut m, 0, h, PidSym::Raw(0)), OK);
        assert_eq!(
            {
                let pid = m.pid(0);
                set_pid(&mut m, 0, h, pid)
            },
            OK
        );
        assert_eq!(set_pid(&mut m, 0, h, PidSym::Raw(-1)), PARAM_INVALID);
        assert!(m.notifies()[&n].whitelist.is_empty());
        for k in 0..15 {
            assert_eq!(set_pid(&mut m, 0, h, PidSym::Raw(1000 + k)), OK);
        }
        assert_eq!(
            set_pid(&mut m, 0, h, PidSym::Raw(2000)),
            DRV_REFUSED,
            "the 16th"
        );
        assert_eq!(set_pid(&mut m, 0, h, PidSym::Raw(1000)), OK, "refreshed");
        // An importer exports (507000) and sets pids (507899); DISABLE: 207006 first.
        let (h2, n2) = create(&mut m, 0);
        assert_eq!(export(&mut m, 0, h2, 2), OK);
        let Out::Notify(hi, _) = import(&mut m, 1, n2, 0).out else {
            panic!()
        };
        assert_eq!(export(&mut m, 1, hi, 0), INTERNAL);
        assert_eq!(
            {
                let pid = m.pid(2);
                set_pid(&mut m, 1, hi, pid)
            },
            NO_PERMISSION
        );
        assert_eq!(
            {
                let pid = m.pid(2);
                set_pid(&mut m, 0, h2, pid)
            },
            NO_PERMISSION
        );
        assert_eq!(
            m.notifies()[&n2].whitelist,
            vec![m.pid(1)],
            "R7: DISABLE imports take an entry"
        );
    }

    #[test]
    fn r7_import_resolution_in_order() {
        let mut m = world();
        let (h, n) = create(&mut m, 0);
        export(&mut m, 0, h, 0);
        assert_eq!(import(&mut m, 1, n, 0).code, DRV_REFUSED, "not whitelisted");
        assert_eq!(import(&mut m, 0, n, 0).code, INTERNAL, "already held");
        {
            let pid = m.pid(1);
            set_pid(&mut m, 0, h, pid)
        };
        m.apply(&Op::SetDevice { p: 1, device: 1 });
        assert_eq!(import(&mut m, 1, n, 0).code, DRV_REFUSED, "no peer access");
        assert_eq!(import(&mut m, 1, n, 2).code, OK, "flag 0x2 enables it");
        assert!(m.process(1).peers.contains(&(1, 0)));
        assert_eq!(
            import(&mut m, 1, n, 2).code,
            INTERNAL,
            "one handle per process"
        );
        let bad = Op::Import {
            p: 1,
            null_out: false,
            key: KeyArg::Other(b"nope".to_vec()),
            flags: 0,
        };
        assert_eq!(m.apply(&bad).code, PARAM_INVALID);
        let forged = Op::Import {
            p: 2,
            null_out: false,
            key: KeyArg::Forged(n),
            flags: 0,
        };
        assert_eq!(m.apply(&forged).code, DRV_REFUSED);
    }

    #[test]
    fn r8_revocation_references_and_queued_waits() {
        let mut m = world();
        let (h, n) = create(&mut m, 0);
        export(&mut m, 0, h, 2);
        let Out::Notify(hi, _) = import(&mut m, 1, n, 0).out else {
            panic!()
        };
        let wait = Op::Wait {
            p: 0,
            notify: NotifyArg::Handle(h),
            stream: StreamArg::Default,
            timeout_s: 30,
        };
        let e = m.apply(&wait);
        assert!(e.effects.contains(&Effect::WaitBlocked(n)));
        assert_eq!(m.notifies()[&n].refs[&0], 2, "the handle and the task");
        assert_eq!(
            m.predict(&wait),
            Err(Unpredictable::QueuedBehindWait),
            "nothing queues behind a blocked wait"
        );
        m.apply(&Op::Destroy {
            p: 0,
            notify: NotifyArg::Handle(h),
        });
        assert!(matches!(m.notifies()[&n].export, Export::Revoked { .. }));
        assert_eq!(import(&mut m, 2, n, 0).code, DRV_REFUSED, "revoked");
        let e = m.apply(&Op::Record {
            p: 1,
            notify: NotifyArg::Handle(hi),
            stream: StreamArg::Default,
        });
        assert!(e.effects.contains(&Effect::WaitReleased(n)));
        assert!(!m.settled());
        assert_eq!(
            m.predict(&Op::Create {
                p: 2,
                null: false,
                flags: 0
            }),
            Err(Unpredictable::InFlight)
        );
        for op in m.settle_ops() {
            assert_eq!(m.apply(&op).code, OK);
        }
        assert!(m.settled());
        assert_eq!(
            m.notifies()[&n].refs.keys().copied().collect::<Vec<_>>(),
            vec![1]
        );
        m.apply(&Op::Destroy {
            p: 1,
            notify: NotifyArg::Handle(hi),
        });
        assert!(m.notifies().is_empty(), "the last reference frees it");
        assert_eq!(
            m.apply(&Op::Destroy {
                p: 1,
                notify: NotifyArg::Handle(hi),
            })
            .code,
            INVALID_HANDLE
        );
    }

    #[test]
    fn r2_r3_synchronize_of_a_blocked_wait() {
        let mut m = world();
        let (h, n) = create(&mut m, 0);
        let wait = |t| Op::Wait {
            p: 0,
            notify: NotifyArg::Handle(h),
            stream: StreamArg::Default,
            timeout_s: t,
        };
        let sync = |ms| Op::Sync {
            p: 0,
            stream: StreamArg::Default,
            timeout_ms: ms,
        };
        m.apply(&wait(1));
        assert_eq!(m.apply(&sync(Some(0))).code, SYNC_TIMEOUT);
        assert_eq!(m.predict(&sync(Some(900))), Err(Unpredictable::Timing));
        let e = m.apply(&sync(None));
        assert_eq!((e.code, e.waits_s), (WAIT_TIMEOUT, 1));
        assert!(!m.notifies()[&n].flag, "R3: the flag as it was");
        assert_eq!(m.apply(&sync(None)).code, OK, "reported once");
        m.apply(&wait(0));
        assert_eq!(m.predict(&sync(None)), Err(Unpredictable::Hangs));
        assert_eq!(
            m.predict(&Op::Finalize { p: 0 }),
            Err(Unpredictable::Lingers)
        );
    }

    #[test]
    fn r9_death() {
        let mut m = world();
        let (h, n) = create(&mut m, 0);
        export(&mut m, 0, h, 2);
        import(&mut m, 1, n, 0);
        let (_, n2) = create(&mut m, 1);
        m.apply(&Op::Kill { p: 1 });
        assert!(
            m.notifies().get(&n2).is_none(),
            "freed with its last holder"
        );
        assert!(
            m.ghosts().contains_key(&n2),
            "which the registry may still show"
        );
        assert_eq!(m.notifies()[&n].refs.len(), 1);
        m.apply(&Op::Kill { p: 0 });
        assert!(m.notifies().is_empty());
        assert!(m.namespace_exists(), "deaths leave the namespace");
        assert_eq!(m.unreclaimed().len(), 2);
        m.apply(&Op::Spawn { p: 0 });
        assert_ne!(
            m.pid(0),
            PidSym::Proc {
                p: 0,
                incarnation: 0
            }
        );
        m.apply(&Op::Exit { p: 2 });
        assert!(!m.namespace_exists(), "the last clean detach removes it");
        assert!(m.unreclaimed().is_empty());
    }

    #[test]
    fn r11_capacity_and_finalize() {
        let mut m = world();
        create(&mut m, 0);
        create(&mut m, 1);
        let full = Op::Create {
            p: 2,
            null: false,
            flags: 0,
        };
        assert_eq!(m.apply(&full).code, NO_NOTIFY_RESOURCE);
        m.apply(&Op::Finalize { p: 1 });
        assert_eq!(m.apply(&full).code, OK, "freed slots are reusable");
        let old = Hid(2);
        assert_eq!(
            m.apply(&Op::Destroy {
                p: 1,
                notify: NotifyArg::Handle(old)
            })
            .code,
            UNINITIALIZE
        );
        m.apply(&Op::Init { p: 1 });
        assert_eq!(
            m.apply(&Op::Destroy {
                p: 1,
                notify: NotifyArg::Handle(old)
            })
            .code,
            INVALID_HANDLE,
            "R10: a handle of an earlier session"
        );
    }
}
