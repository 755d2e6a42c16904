//! The registry's byte layout in shared memory.
//!
//! Everything here is `#[repr(C)]` and made only of atomics, so that any bit pattern another
//! process (or a stray write) leaves behind is a valid value: a corrupted registry is detected by
//! checking values (R14), never by UB. Fields that only change under the registry lock are read
//! and written with `Relaxed` ordering; the lock (a `flock` on the segment) orders them.
//!
//! The segment is sized for its whole configuration up front but is sparse: a page is backed
//! only once something is written to it, so a namespace costs what it uses (§4 "Scale").

use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64};

/// `b"ASCNTFY2"` as a little-endian `u64`: the first bytes of every registry.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"ASCNTFY2");
/// Bumped whenever any struct below changes shape.
pub(crate) const VERSION: u32 = 2;
/// The most processes a namespace can be configured for: a holder code keeps the process
/// slot in 16 bits.
pub(crate) const MAX_PROCS: u32 = 0xfffe;
/// Devices per namespace (the sim's bound; real machines have at most 16).
pub(crate) const MAX_DEVICES: u32 = 64;
/// Slots per device: the slot index must fit the key's 4 hex digits.
pub(crate) const MAX_CAPACITY: u32 = 0xffff;
/// Processes that may hold one notify: the creator and the 15 importers of its whitelist (R6).
pub(crate) const HOLDERS: usize = 1 + notify_api::WHITELIST_IMPORTERS;
/// Importer entries of a whitelist (R6).
pub(crate) const WHITELIST: usize = notify_api::WHITELIST_IMPORTERS;

// `Header::state` 0: the creator is still laying the segment out (it holds the lock meanwhile).
/// `Header::state`: ready to attach.
pub(crate) const STATE_READY: u32 = 1;
/// `Header::state`: the last process detached and unlinked it; attachers must retry.
pub(crate) const STATE_REMOVED: u32 = 2;

/// The segment's first bytes.
#[repr(C, align(64))]
pub(crate) struct Header {
    pub magic: AtomicU64,
    pub version: AtomicU32,
    pub header_size: AtomicU32,
    pub state: AtomicU32,
    pub devices: AtomicU32,
    pub capacity: AtomicU32,
    pub max_procs: AtomicU32,
    pub proc_size: AtomicU32,
    pub notify_size: AtomicU32,
    pub total_size: AtomicU64,
    pub ns_hash: AtomicU64,
    pub procs_offset: AtomicU64,
    pub notifies_offset: AtomicU64,
    /// Bytes of device memory per device (§4, M1).
    pub device_memory: AtomicU64,
    /// The inode of the creator's PID namespace: the namespace's "host" (R16).
    pub pid_ns: AtomicU64,
    /// Counts attaches: every process slot use gets the next value, which makes its
    /// generation and its synthetic bare tgid.
    pub attach_seq: AtomicU64,
    /// Where the next search for a free process slot starts (a hint, clamped on read).
    pub proc_hint: AtomicU32,
    /// One past the highest process slot ever used, so scans skip never-touched pages.
    pub proc_high_water: AtomicU32,
    /// The next process slot the amortised liveness step probes (R9).
    pub sweep_cursor: AtomicU32,
    /// A check of the configuration fields (devices, capacity, processes, device memory): page
    /// rounding lets a one-field scribble keep every offset and size consistent, not this.
    pub config_check: AtomicU32,
    /// Per device: the index to start the next free-slot search at (a hint, clamped on read).
    pub free_hint: [AtomicU32; MAX_DEVICES as usize],
    /// Per device: one past the highest slot ever used, so scans skip never-touched pages.
    pub high_water: [AtomicU32; MAX_DEVICES as usize],
    /// Per device: bytes of device memory allocated, across all processes (M1).
    pub mem_used: [AtomicU64; MAX_DEVICES as usize],
    pub allocs_offset: AtomicU64,
    pub exports_offset: AtomicU64,
    /// Where the next search for a free allocation / export entry starts (hints).
    pub alloc_hint: AtomicU32,
    pub export_hint: AtomicU32,
    /// One past the highest allocation / export entry ever used.
    pub alloc_high_water: AtomicU32,
    pub export_high_water: AtomicU32,
    /// Hazards of §5 seen in this namespace, by kind ([`HAZARD_KINDS`]).
    pub hazards: [AtomicU64; HAZARD_KINDS],
    /// The last hazards seen: `(bare tgid << 32) | kind`, a ring indexed by `hazard_seq`.
    pub hazard_log: [AtomicU64; HAZARD_LOG],
    pub hazard_seq: AtomicU64,
    /// Each process's board of the waits it has queued or running (§4 "Diagnosis").
    pub waits_offset: AtomicU64,
    /// The System V semaphore set that counts attached processes with `SEM_UNDO`, plus one;
    /// 0 when there is none (see `registry::deaths`).
    pub death_sem: AtomicI32,
    /// The attached processes counted on it (`ProcSlot::counted`).
    pub attached: AtomicU32,
    /// `death_sem` mixed with the namespace's hash: a scribbled id never names (and so never
    /// removes) another program's semaphores.
    pub death_tag: AtomicU32,
}

/// Waits one process can show on its board at once; more still work, unlisted.
pub(crate) const WAITS_PER_PROC: u32 = 32;

/// `WaitEntry::state`.
pub(crate) const WAIT_FREE: u32 = 0;
pub(crate) const WAIT_QUEUED: u32 = 1;
pub(crate) const WAIT_RUNNING: u32 = 2;

/// One wait a process has queued or running, for the inspector (`ascend-notify-sim waits`).
/// Written only by its own process, without the registry lock; read racily by the inspector.
#[repr(C, align(16))]
pub(crate) struct WaitEntry {
    pub state: AtomicU32,
    /// The stream's number in its process.
    pub stream: AtomicU32,
    /// The stream's device.
    pub device: AtomicI32,
    pub notify_device: AtomicU32,
    pub notify_index: AtomicU32,
    pub notify_generation: AtomicU32,
    /// The wait's timeout in seconds (0: forever, R3).
    pub timeout_s: AtomicU32,
    pub _reserved: AtomicU32,
    /// When it was queued (`CLOCK_BOOTTIME` ns).
    pub queued_ns: AtomicU64,
    /// When it started running, 0 while queued.
    pub running_ns: AtomicU64,
}

/// Kinds of §5 hazards: an exporter closed its key while importers still held the memory;
/// an exported allocation was freed while it was imported.
pub(crate) const HAZARD_KINDS: usize = 2;
pub(crate) const HAZARD_EXPORTER_CLOSED_FIRST: u32 = 0;
pub(crate) const HAZARD_FREED_WHILE_IMPORTED: u32 = 1;
/// How many recent hazards the header remembers, for the inspector.
pub(crate) const HAZARD_LOG: usize = 32;

/// Allocations a namespace tracks at once (M1), across all processes.
pub(crate) const ALLOC_SLOTS: u32 = 16384;
/// IPC memory exports a namespace tracks at once (M3).
pub(crate) const EXPORT_SLOTS: u32 = 4096;
/// Importers (and whitelist entries) of one IPC memory export (M4, sim).
pub(crate) const MEM_IMPORTERS: usize = 31;

/// `AllocSlot::state`.
pub(crate) const ALLOC_FREE: u32 = 0;
/// Owned by a live process.
pub(crate) const ALLOC_LIVE: u32 = 1;
/// Freed (or its owner died) while imported: it stays for its importers (M6).
pub(crate) const ALLOC_ORPHANED: u32 = 2;

/// One device allocation (M1): its backing object is `ascend-notify.<ns>.mem<index>-<generation>`.
#[repr(C, align(64))]
pub(crate) struct AllocSlot {
    pub state: AtomicU32,
    pub generation: AtomicU32,
    /// The owner's holder code.
    pub owner: AtomicU32,
    pub device: AtomicU32,
    /// Bytes, rounded up to the page size.
    pub size: AtomicU64,
    pub page_size: AtomicU64,
    /// The owner's device address of its first byte (M5: an import is never there).
    pub owner_addr: AtomicU64,
    /// Live imports of any of its exports (M6).
    pub imports: AtomicU32,
    pub _reserved: [AtomicU32; 5],
}

/// `ExportSlot::state`.
pub(crate) const EXPORT_SLOT_FREE: u32 = 0;
pub(crate) const EXPORT_SLOT_LIVE: u32 = 1;
/// Closed by the exporter (or the allocation freed): no new import; existing ones go on.
pub(crate) const EXPORT_SLOT_REVOKED: u32 = 2;

/// One IPC memory export (M3): a page-aligned range of one allocation.
#[repr(C, align(64))]
pub(crate) struct ExportSlot {
    pub state: AtomicU32,
    pub generation: AtomicU32,
    /// The allocation's index and generation.
    pub alloc: AtomicU32,
    pub alloc_generation: AtomicU32,
    pub offset: AtomicU64,
    pub size: AtomicU64,
    pub flags: AtomicU32,
    pub whitelist_len: AtomicU32,
    pub secret: AtomicU64,
    /// The exporter's holder code and bare tgid.
    pub exporter: AtomicU32,
    pub exporter_tgid: AtomicI32,
    pub _reserved: AtomicU64,
    /// Holder codes of the processes that imported it.
    pub importers: [AtomicU32; MEM_IMPORTERS + 1],
    pub whitelist: [WhitelistEntry; MEM_IMPORTERS + 1],
}

/// `ProcSlot::state`.
pub(crate) const PROC_FREE: u32 = 0;
pub(crate) const PROC_LIVE: u32 = 1;

/// One attached process.
#[repr(C, align(64))]
pub(crate) struct ProcSlot {
    pub state: AtomicU32,
    /// Bumped at every use of the slot (low 16 bits go into holder codes).
    pub generation: AtomicU32,
    /// `getpid()` in the process's own PID namespace (for people reading the inspector).
    pub os_pid: AtomicI32,
    /// The pid the driver sees (R16): what whitelists hold.
    pub bare_tgid: AtomicI32,
    /// Random per attach: names the lock file together with the slot index, so a reused slot
    /// never inherits a dead process's file.
    pub nonce: AtomicU64,
    /// When the process started, in nanoseconds of `CLOCK_BOOTTIME` (R7's pid-reuse guard).
    pub start_ns: AtomicU64,
    /// The inode of its PID namespace (R16).
    pub pid_ns: AtomicU64,
    /// 1 when the process counted itself on the death semaphores (`registry::deaths`).
    pub counted: AtomicU32,
    /// Waits queued or running beyond what its wait board lists (`WAITS_PER_PROC`).
    pub waits_unlisted: AtomicU32,
    pub _reserved: [AtomicU64; 2],
}

/// `NotifySlot::state`.
pub(crate) const SLOT_FREE: u32 = 0;
pub(crate) const SLOT_LIVE: u32 = 1;

/// `NotifySlot::export`.
pub(crate) const EXPORT_NONE: u32 = 0;
pub(crate) const EXPORT_LIVE: u32 = 1;
pub(crate) const EXPORT_REVOKED: u32 = 2;

/// One whitelist entry (R6): a bare tgid and when it was set (for R7's pid-reuse guard).
#[repr(C)]
pub(crate) struct WhitelistEntry {
    pub tgid: AtomicI32,
    pub _reserved: AtomicU32,
    /// `CLOCK_BOOTTIME` nanoseconds of the last `aclrtNotifySetImportPid` (or import) for it.
    pub set_ns: AtomicU64,
}

/// One notify. The first cache line is the hot one (record/wait); the rest changes only under
/// the registry lock.
#[repr(C, align(64))]
pub(crate) struct NotifySlot {
    /// R1: the binary flag, and the futex word waiters sleep on.
    pub flag: AtomicU32,
    /// Waiters asleep (or about to sleep) on `flag`: a record wakes only when this is non-zero.
    pub waiters: AtomicU32,
    /// `1 + cpu` of the last recorder, `0` if unknown: a waiter on the same CPU does not spin.
    pub recorder_cpu: AtomicU32,
    pub _align: AtomicU32,
    /// With tracing on (§4 "Diagnosis"): the id of the last record that set the flag, so the
    /// wait it releases can name it (`(tgid << 32) | sequence`, 0 for none).
    pub last_record: AtomicU64,
    /// Keeps the cold fields off the hot line; atomics too, so that every byte of the segment
    /// is an atomic (see the module docs).
    pub _hot_pad: [AtomicU32; 10],
    pub state: AtomicU32,
    pub generation: AtomicU32,
    /// The creator's holder code, `0` once the creator is gone.
    pub creator: AtomicU32,
    /// The creator's bare tgid (R6: its own pid is ignored on the whitelist).
    pub creator_tgid: AtomicI32,
    pub create_flags: AtomicU32,
    pub export: AtomicU32,
    pub export_flags: AtomicU32,
    pub whitelist_len: AtomicU32,
    pub secret: AtomicU64,
    pub _cold_pad: [AtomicU64; 3],
    /// Holder codes of the processes with at least one reference (R8); `0` is an empty entry.
    pub holders: [AtomicU32; HOLDERS],
    pub whitelist: [WhitelistEntry; WHITELIST],
    pub _tail_pad: [AtomicU64; 2],
}

/// A process slot and the generation it had, as 32 bits: `(generation & 0xffff) << 16 |
/// (slot + 1)`. `0` is no process.
pub(crate) fn holder_code(slot: u32, generation: u32) -> u32 {
    ((generation & 0xffff) << 16) | (slot + 1)
}

/// The slot of a holder code, if it is one.
pub(crate) fn holder_slot(code: u32) -> Option<u32> {
    (code & 0xffff).checked_sub(1)
}

/// Offsets and sizes of a registry.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub devices: u32,
    pub capacity: u32,
    pub max_procs: u32,
    pub procs_offset: u64,
    pub notifies_offset: u64,
    pub allocs_offset: u64,
    pub exports_offset: u64,
    pub waits_offset: u64,
    pub total_size: u64,
}

impl Layout {
    pub(crate) fn new(devices: u32, capacity: u32, max_procs: u32) -> Self {
        let header = size_of::<Header>() as u64;
        let procs_offset = header.next_multiple_of(64);
        let procs_bytes = u64::from(max_procs) * size_of::<ProcSlot>() as u64;
        let notifies_offset = (procs_offset + procs_bytes).next_multiple_of(4096);
        let slots = u64::from(devices) * u64::from(capacity);
        let allocs_offset =
            (notifies_offset + slots * size_of::<NotifySlot>() as u64).next_multiple_of(4096);
        let exports_offset = (allocs_offset
            + u64::from(ALLOC_SLOTS) * size_of::<AllocSlot>() as u64)
            .next_multiple_of(4096);
        let waits_offset = (exports_offset
            + u64::from(EXPORT_SLOTS) * size_of::<ExportSlot>() as u64)
            .next_multiple_of(4096);
        let total_size = waits_offset
            + u64::from(max_procs) * u64::from(WAITS_PER_PROC) * size_of::<WaitEntry>() as u64;
        Self {
            devices,
            capacity,
            max_procs,
            procs_offset,
            notifies_offset,
            allocs_offset,
            exports_offset,
            waits_offset,
            total_size,
        }
    }
}

// The layout is part of the on-disk format: a change must bump VERSION.
const _: () = assert!(size_of::<ProcSlot>() == 64);
const _: () = assert!(size_of::<WhitelistEntry>() == 16);
const _: () = assert!(size_of::<NotifySlot>() == 448);
const _: () = assert!(align_of::<NotifySlot>() == 64);
const _: () = assert!(size_of::<Header>().is_multiple_of(64));
const _: () = assert!(size_of::<AllocSlot>() == 64);
const _: () = assert!(size_of::<WaitEntry>() == 48);
const _: () = assert!(size_of::<ExportSlot>() == 64 + 128 + 512);
