//! The registry's byte layout in shared memory.
//!
//! Everything here is `#[repr(C)]` and made only of atomics, so that any bit pattern another
//! process (or a stray write) leaves behind is a valid value: a corrupted registry is detected by
//! checking values (R14), never by UB. Fields that only change under the registry lock are read
//! and written with `Relaxed` ordering; the lock (a `flock` on the segment) orders them.

use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64};

/// `b"ASCNTFY1"` as a little-endian `u64`: the first bytes of every registry.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"ASCNTFY1");
/// Bumped whenever any struct below changes shape.
pub(crate) const VERSION: u32 = 1;
/// Attached processes per namespace: one bit each in a notify's holder mask.
pub(crate) const MAX_PROCS: usize = 128;
/// Devices per namespace (the sim's bound; real machines have at most 16).
pub(crate) const MAX_DEVICES: u32 = 64;
/// Slots per device: the slot index must fit the key's 4 hex digits.
pub(crate) const MAX_CAPACITY: u32 = 0xffff;
/// R6: the whitelist bound.
pub(crate) const WHITELIST_MAX: usize = notify_api::WHITELIST_MAX;

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
    /// Per device: the index to start the next free-slot search at (a hint, clamped on read).
    pub free_hint: [AtomicU32; MAX_DEVICES as usize],
    /// Per device: one past the highest slot ever used, so scans skip never-touched pages.
    pub high_water: [AtomicU32; MAX_DEVICES as usize],
}

/// `ProcSlot::state`.
pub(crate) const PROC_FREE: u32 = 0;
pub(crate) const PROC_LIVE: u32 = 1;

/// One attached process.
#[repr(C, align(64))]
pub(crate) struct ProcSlot {
    pub state: AtomicU32,
    pub pid: AtomicI32,
    /// Random per attach: names the lock file together with the slot index, so a reused slot
    /// never inherits a dead process's file.
    pub nonce: AtomicU64,
}

/// `NotifySlot::state`.
pub(crate) const SLOT_FREE: u32 = 0;
pub(crate) const SLOT_LIVE: u32 = 1;

/// `NotifySlot::export`.
pub(crate) const EXPORT_NONE: u32 = 0;
pub(crate) const EXPORT_LIVE: u32 = 1;
pub(crate) const EXPORT_REVOKED: u32 = 2;

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
    pub _hot_pad: [u32; 13],
    pub state: AtomicU32,
    pub generation: AtomicU32,
    pub creator_proc: AtomicU32,
    pub creator_pid: AtomicI32,
    pub create_flags: AtomicU32,
    pub export: AtomicU32,
    pub export_flags: AtomicU32,
    pub whitelist_len: AtomicU32,
    pub secret: AtomicU64,
    /// One bit per proc slot that holds at least one reference (R8).
    pub holders: [AtomicU64; MAX_PROCS / 64],
    pub whitelist: [AtomicI32; WHITELIST_MAX],
}

/// Offsets and sizes of a registry with `devices` × `capacity` slots.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub devices: u32,
    pub capacity: u32,
    pub procs_offset: u64,
    pub notifies_offset: u64,
    pub total_size: u64,
}

impl Layout {
    pub(crate) fn new(devices: u32, capacity: u32) -> Self {
        let header = size_of::<Header>() as u64;
        let procs_offset = header.next_multiple_of(64);
        let notifies_offset =
            (procs_offset + (MAX_PROCS * size_of::<ProcSlot>()) as u64).next_multiple_of(4096);
        let slots = u64::from(devices) * u64::from(capacity);
        let total_size = notifies_offset + slots * size_of::<NotifySlot>() as u64;
        Self {
            devices,
            capacity,
            procs_offset,
            notifies_offset,
            total_size,
        }
    }
}

// The layout is part of the on-disk format: a change must bump VERSION.
const _: () = assert!(size_of::<ProcSlot>() == 64);
const _: () = assert!(size_of::<NotifySlot>() == 64 + 64 + 64 * 4);
const _: () = assert!(align_of::<NotifySlot>() == 64);
