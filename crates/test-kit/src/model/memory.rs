//! The model's device memory and IPC memory (`SEMANTICS.md` §5, M1–M6), part of the one
//! [`Model`]: allocations per process, the bytes behind them, per-device accounting, exports
//! with their whitelists and importers, imports, and the §5 hazards.
//!
//! # Symbols
//! A device address range a process was given (an allocation or an import) is a [`Mid`]; a
//! pointer argument names a byte of one ([`PtrArg::Dev`]: the address the process was given plus
//! an offset), a host buffer made for the call ([`PtrArg::Host`]), NULL, or any other value
//! ([`PtrArg::Wild`]). An export is an [`Xid`]; its key is "the key of export X"
//! ([`MemKeyArg`]). What the real addresses and keys are is `crate::harness`'s business.
//!
//! # What the model can tell about a pointer
//! The simulator tells device pointers from host pointers by address (M2): a pointer into a
//! range of the caller's current session (live, freed or closed: M6 never reuses it) is device
//! memory; a host buffer is host memory; anything else (another process's range, one of an
//! earlier session, a wild value) may be either, as far as the model knows. Where the kind of a
//! copy wants device memory, such a pointer is refused (107000) whichever it is; where host
//! memory is wanted, or the kind is `DEFAULT`, the simulator would read or write through it as
//! host memory: [`Unpredictable::WildPointer`], and no driver runs it.
//!
//! # Time
//! `aclrtMemcpy`/`aclrtMemset` complete before they return (M2). An async copy or set that is
//! accepted is a stream task: the model applies it at once and marks its stream in flight, so
//! that only a synchronize of that stream is predictable next ([`Model::settle_ops`]); one that
//! would queue behind a blocked wait is [`Unpredictable::QueuedBehindWait`]. Accepted async
//! copies with a host side are [`Unpredictable::HostAsync`]: the drivers keep no host buffer past
//! a call.
//!
//! # Contract gaps filled from the simulator (`(sim)` in the code)
//! - fresh device memory reads as zeros;
//! - a copy or set may use the bytes between the size asked for and the page-rounded size;
//! - `count == 0` succeeds before the kind is looked at;
//! - policy modifier bits 0x100, 0x1000, 0x100000 are accepted and ignored;
//! - `aclrtGetMemInfo` refuses an `attr` outside `0..18` with 107000;
//! - `aclrtIpcMemSetImportPid`: a negative pid is 107000; a non-exporter gets 507899 before a
//!   DISABLE export's 207006 (M4 gives no order); the whitelist holds 31 pids;
//! - `aclrtIpcMemImportByKey` of a DISABLE export does not add the importer to the whitelist;
//!   at most 32 processes import one export;
//! - `aclrtFree` and `aclrtIpcMemClose` need no current device;
//! - a clean detach or a death releases the process's memory and closes its exports and
//!   imports without counting a hazard (only an explicit free or close counts one).
//!
//! Strict mode (`ASCEND_NOTIFY_SIM_STRICT=1`) is not modelled: the drivers run without it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::*;

/// `ACL_RT_IPC_MEM_EXPORT_FLAG_DISABLE_PID_VALIDATION` (0x1 for memory, 0x2 for notifies).
pub const MEM_EXPORT_DISABLE_PID_VALIDATION: u64 = 0x1;
/// `ACL_RT_IPC_MEM_IMPORT_FLAG_ENABLE_PEER_ACCESS`.
pub const MEM_IMPORT_ENABLE_PEER_ACCESS: u64 = 0x1;
/// The policy modifier bits the simulator accepts and ignores (sim).
pub const POLICY_MODIFIERS: u32 = 0x0100 | 0x1000 | 0x10_0000;
/// `aclrtMemAttr` values (sim: the same answer for each; others are 107000).
pub const MEM_ATTRS: u32 = 18;
/// Pids one `aclrtIpcMemSetImportPid` call takes (M4: 1..=31).
pub const MEM_PIDS_PER_CALL: usize = 31;
/// Pids a memory whitelist holds (sim).
pub const MEM_WHITELIST: usize = 31;
/// Processes that may import one export at once (sim).
pub const MEM_IMPORTERS: usize = 32;
/// The largest host buffer a driver makes for one call.
pub const HOST_MAX: u64 = 1 << 20;
/// How far past the end of a range of the caller's session an offset still surely names a
/// device address (the simulator reserves terabytes of them).
pub const DEVICE_SLACK: u64 = 1 << 30;

/// 4 KiB, 2 MiB and 1 GiB pages (M1).
pub const PAGE_4K: u64 = 4 << 10;
/// A huge page.
pub const PAGE_2M: u64 = 2 << 20;
/// A 1 GiB page.
pub const PAGE_1G: u64 = 1 << 30;

/// M1: the page size of an allocation of `size` bytes under `policy`, `None` for an unknown
/// policy.
pub fn page_size(policy: u32, size: u64) -> Option<u64> {
    if policy & !(0x7 | POLICY_MODIFIERS) != 0 {
        return None;
    }
    Some(match policy & 0x7 {
        // HUGE_FIRST (and _P2P): 2 MiB pages from 2 MiB up, 4 KiB below.
        0 | 3 if size >= PAGE_2M => PAGE_2M,
        0 | 3 => PAGE_4K,
        1 | 4 => PAGE_2M,
        2 | 5 => PAGE_4K,
        _ => PAGE_1G,
    })
}

/// The bytes of a host buffer made from `seed` (what [`PtrArg::Host`] holds as a source).
pub fn host_bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ ((i >> 8) as u8) ^ seed)
        .collect()
}

/// A device address range of one process (an allocation or an import), as the model names it:
/// global, never reused.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mid(pub u32);

/// An IPC memory export, likewise; its key is "the key of export X".
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Xid(pub u32);

/// A pointer argument of a memory call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PtrArg {
    /// NULL (100000).
    Null,
    /// The address range `m` started at, plus `off` (any process's range, live or not). A
    /// driver guarantees that an offset at or past the range's end names no byte of another
    /// range it knows (it names that one instead).
    Dev(Mid, u64),
    /// A host buffer of `len` bytes made for the call, holding [`host_bytes`]`(seed, len)`.
    Host {
        /// What it holds as a source.
        seed: u8,
        /// Its length.
        len: u64,
    },
    /// Any other value. A driver guarantees it is inside no range it knows, and not NULL.
    Wild(u64),
}

/// The key argument of an IPC memory call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemKeyArg {
    /// NULL (100000).
    Null,
    /// Exactly the key export `x` returned.
    Known(Xid),
    /// That key with another secret: well formed, unknown (507899).
    Forged(Xid),
    /// The key of notify `n` (M3: never resolves as a memory key, 107000).
    Notify(Nid),
    /// These bytes followed by a NUL; a driver guarantees they are no key it knows. The model
    /// judges their format with [`keys::mem_format_code`].
    Other(Vec<u8>),
}

/// Where a range's bytes come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// An allocation of its process: the range names the memory [`Model::memories`] keeps
    /// under the same [`Mid`].
    Alloc,
    /// An import of export `export`: bytes `offset..offset + len` of allocation `alloc`.
    Import {
        /// The export it was imported by.
        export: Xid,
        /// The allocation behind it.
        alloc: Mid,
        /// Where in the allocation it starts.
        offset: u64,
    },
}

/// A device address range some process was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    /// Its process, incarnation and session.
    pub owner: Proc,
    /// The owner's incarnation.
    pub incarnation: u32,
    /// The owner's session.
    pub session: u32,
    /// Its device.
    pub device: i32,
    /// Its length: the page-rounded size of an allocation (sim), an export's size.
    pub len: u64,
    /// The allocation's page size.
    pub page: u64,
    /// Not freed, closed or released by the end of its session.
    pub live: bool,
    /// An allocation or an import.
    pub origin: Origin,
}

/// The bytes of an allocation, in 4 KiB chunks; an absent chunk is zeros (sim: fresh memory
/// reads as zeros).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contents {
    chunks: BTreeMap<u64, Arc<Vec<u8>>>,
}

const CHUNK: u64 = 4096;

impl Contents {
    /// Bytes `off..off + len`.
    pub fn read(&self, off: u64, len: u64) -> Vec<u8> {
        let mut out = vec![0u8; len as usize];
        let mut pos = off;
        while pos < off + len {
            let (c, within) = (pos / CHUNK, pos % CHUNK);
            let n = (CHUNK - within).min(off + len - pos);
            if let Some(chunk) = self.chunks.get(&c) {
                let dst = (pos - off) as usize;
                out[dst..dst + n as usize]
                    .copy_from_slice(&chunk[within as usize..(within + n) as usize]);
            }
            pos += n;
        }
        out
    }

    /// Writes `data` at `off`.
    pub fn write(&mut self, off: u64, data: &[u8]) {
        let mut pos = off;
        let end = off + data.len() as u64;
        while pos < end {
            let (c, within) = (pos / CHUNK, pos % CHUNK);
            let n = (CHUNK - within).min(end - pos);
            let chunk = self
                .chunks
                .entry(c)
                .or_insert_with(|| Arc::new(vec![0; CHUNK as usize]));
            let src = (pos - off) as usize;
            Arc::make_mut(chunk)[within as usize..(within + n) as usize]
                .copy_from_slice(&data[src..src + n as usize]);
            pos += n;
        }
    }
}

/// An allocation whose bytes are still held: by its owner, or, once the owner freed it or is
/// gone, by imports (M6: released when freed and every import closed, or their processes died).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Memory {
    /// Its device.
    pub device: i32,
    /// Bytes it takes of the device (page-rounded).
    pub len: u64,
    /// Its page size.
    pub page: u64,
    /// The allocating process.
    pub owner: PidSym,
    /// The owner freed it (or its session ended).
    pub freed: bool,
    /// Live imports of it.
    pub imports: u32,
    /// Its bytes.
    pub bytes: Contents,
}

/// An IPC memory export, tracked until it is closed (by its exporter, a free, or the end of
/// the exporter's session) and no import of it is left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemExport {
    /// The exporting process.
    pub exporter: Proc,
    /// Its pid then.
    pub exporter_pid: PidSym,
    /// Its session.
    pub session: u32,
    /// The allocation exported.
    pub alloc: Mid,
    /// Where in it.
    pub offset: u64,
    /// How many bytes.
    pub size: u64,
    /// Exported with `DISABLE_PID_VALIDATION`.
    pub disable: bool,
    /// M4: importer pids, in the order they were added.
    pub whitelist: Vec<PidSym>,
    /// Not closed: imports may still resolve it.
    pub open: bool,
    /// `Some(was open)` when its exporter's death closed it: until the registry reclaims the
    /// dead exporter, the inspector may still show it open.
    pub closed_by_death: Option<bool>,
    /// Live imports of it.
    pub imports: BTreeSet<Mid>,
}

/// The §5 hazards counted so far in the namespace.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Hazards {
    /// An exporter closed its key while importers held the memory.
    pub exporter_closed_first: u64,
    /// Exported memory was freed while it was imported.
    pub freed_while_imported: u64,
}

/// The memory part of the model's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemState {
    pub(super) regions: BTreeMap<Mid, Region>,
    pub(super) memories: BTreeMap<Mid, Memory>,
    pub(super) exports: BTreeMap<Xid, MemExport>,
    /// Every export ever made: its key stays usable as an input.
    pub(super) keys: BTreeSet<Xid>,
    pub(super) hazards: Hazards,
    pub(super) next_mid: u32,
    pub(super) next_xid: u32,
}

/// What a pointer is, as far as the model knows, for a call of process `p`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Side {
    /// A host buffer of this many bytes.
    Host(u64),
    /// A device address of a range of `p`'s session (live or not), at this offset.
    Dev(Mid, u64),
    /// Device or host: the model cannot tell.
    Unknown,
}

impl Side {
    fn device(&self) -> Option<bool> {
        match self {
            Side::Host(_) => Some(false),
            Side::Dev(..) => Some(true),
            Side::Unknown => None,
        }
    }
}

/// A resolved device range: the range, and where its bytes are (allocation, offset).
#[derive(Copy, Clone, Debug)]
struct Place {
    region: Mid,
    alloc: Mid,
    off: u64,
}

impl Model {
    // -----------------------------------------------------------------------------------------
    // Reading the memory state
    // -----------------------------------------------------------------------------------------

    /// Every device address range ever handed out.
    pub fn regions(&self) -> &BTreeMap<Mid, Region> {
        &self.mem.regions
    }

    /// Every allocation whose bytes are still held (M6).
    pub fn memories(&self) -> &BTreeMap<Mid, Memory> {
        &self.mem.memories
    }

    /// Every export still tracked.
    pub fn mem_exports(&self) -> &BTreeMap<Xid, MemExport> {
        &self.mem.exports
    }

    /// Every export ever made.
    pub fn mem_keys(&self) -> &BTreeSet<Xid> {
        &self.mem.keys
    }

    /// The §5 hazards counted in the namespace.
    pub fn hazards(&self) -> Hazards {
        self.mem.hazards
    }

    /// Bytes of `device` taken by allocations (M1: across every process).
    pub fn mem_used(&self, device: i32) -> u64 {
        self.mem
            .memories
            .values()
            .filter(|m| m.device == device)
            .map(|m| m.len)
            .sum()
    }

    /// Whether range `m` belongs to process `p`'s current session (live or not).
    pub fn is_session_region(&self, p: Proc, m: Mid) -> bool {
        self.mem
            .regions
            .get(&m)
            .is_some_and(|r| self.of_current_session(p, r.owner, r.incarnation, r.session))
    }

    /// The live ranges of process `p`'s current session.
    pub fn live_regions(&self, p: Proc) -> Vec<Mid> {
        self.mem
            .regions
            .iter()
            .filter(|&(&m, r)| r.live && self.is_session_region(p, m))
            .map(|(&m, _)| m)
            .collect()
    }

    /// The bytes behind range `m` now (an allocation's, or the imported part of one), if they
    /// are still held.
    pub fn region_bytes(&self, m: Mid) -> Option<Vec<u8>> {
        let r = self.mem.regions.get(&m)?;
        let (alloc, off) = match r.origin {
            Origin::Alloc => (m, 0),
            Origin::Import { alloc, offset, .. } => (alloc, offset),
        };
        Some(self.mem.memories.get(&alloc)?.bytes.read(off, r.len))
    }

    /// The import ranges of process `p`'s session made with the key of export `x`, live.
    fn import_of(&self, p: Proc, x: Xid) -> Option<Mid> {
        self.mem
            .regions
            .iter()
            .find(|&(&m, r)| {
                r.live
                    && self.is_session_region(p, m)
                    && matches!(r.origin, Origin::Import { export, .. } if export == x)
            })
            .map(|(&m, _)| m)
    }

    fn new_region(&mut self, p: Proc, device: i32, len: u64, page: u64, origin: Origin) -> Mid {
        let pr = &self.procs[p];
        let m = Mid(self.mem.next_mid + 1);
        self.mem.next_mid += 1;
        self.mem.regions.insert(
            m,
            Region {
                owner: p,
                incarnation: pr.incarnation,
                session: pr.session.expect("attached"),
                device,
                len,
                page,
                live: true,
                origin,
            },
        );
        m
    }

    // -----------------------------------------------------------------------------------------
    // Arguments
    // -----------------------------------------------------------------------------------------

    fn side(&self, p: Proc, arg: &PtrArg) -> Result<Side, Unpredictable> {
        Ok(match arg {
            PtrArg::Null => unreachable!("NULL is refused first"),
            PtrArg::Host { len, .. } => Side::Host(*len),
            PtrArg::Wild(_) => Side::Unknown,
            PtrArg::Dev(m, off) => {
                let r = self
                    .mem
                    .regions
                    .get(m)
                    .ok_or(Unpredictable::UnknownSymbol)?;
                if self.is_session_region(p, *m) && *off <= r.len.saturating_add(DEVICE_SLACK) {
                    Side::Dev(*m, *off)
                } else {
                    Side::Unknown
                }
            }
        })
    }

    /// M2: `count` bytes at a device side, inside one live range of `p`'s session.
    fn resolve(&self, side: &Side, count: u64) -> Option<Place> {
        let Side::Dev(m, off) = side else {
            return None;
        };
        let r = &self.mem.regions[m];
        if !r.live || off.checked_add(count).is_none_or(|end| end > r.len) {
            return None;
        }
        let (alloc, base) = match r.origin {
            Origin::Alloc => (*m, 0),
            Origin::Import { alloc, offset, .. } => (alloc, offset),
        };
        Some(Place {
            region: *m,
            alloc,
            off: base + off,
        })
    }

    /// M2/M5: imported memory only through device-to-device tasks on a stream; memory of
    /// another device only with peer access from the current one (sim: 107000).
    fn place_ok(&self, p: Proc, cur: i32, place: &Place, d2d_on_stream: bool) -> bool {
        let r = &self.mem.regions[&place.region];
        let import = matches!(r.origin, Origin::Import { .. });
        if import && !d2d_on_stream {
            return false;
        }
        r.device == cur || self.procs[p].peers.contains(&(cur, r.device))
    }

    fn mem_key(&self, key: &MemKeyArg) -> Result<Result<Xid, i32>, Unpredictable> {
        Ok(match key {
            MemKeyArg::Null => Err(INVALID_PARAM),
            MemKeyArg::Known(x) => {
                if !self.mem.keys.contains(x) {
                    return Err(Unpredictable::UnknownSymbol);
                }
                Ok(*x)
            }
            MemKeyArg::Forged(x) => {
                if !self.mem.keys.contains(x) {
                    return Err(Unpredictable::UnknownSymbol);
                }
                Err(DRV_REFUSED)
            }
            MemKeyArg::Notify(n) => {
                if !self.keys.contains(n) {
                    return Err(Unpredictable::UnknownSymbol);
                }
                Err(PARAM_INVALID)
            }
            // A well-formed key that is none we know: another namespace, a wrong secret (507899).
            MemKeyArg::Other(bytes) => Err(keys::mem_format_code(bytes).unwrap_or(DRV_REFUSED)),
        })
    }

    /// M4–M6: the open export a key names, else 507899 (unknown, closed, freed, or its exporter
    /// died: R9).
    fn open_export(&self, x: Xid) -> Option<&MemExport> {
        self.mem.exports.get(&x).filter(|e| e.open)
    }

    // -----------------------------------------------------------------------------------------
    // The calls
    // -----------------------------------------------------------------------------------------

    /// The memory steps of [`Model::step`].
    pub(super) fn mem_step(&mut self, op: &Op) -> Result<Expect, Unpredictable> {
        match op {
            Op::Malloc {
                p,
                null,
                size,
                policy,
            } => self.malloc(*p, *null, *size, *policy),
            Op::Free { p, ptr } => self.free(*p, ptr),
            Op::MemInfo {
                p,
                attr,
                null_free,
                null_total,
            } => {
                let pr = self.alive(*p)?;
                if pr.session.is_none() {
                    fail!(UNINITIALIZE);
                }
                if *null_free || *null_total {
                    fail!(INVALID_PARAM);
                }
                let Some(cur) = pr.current else {
                    fail!(CONTEXT_NULL)
                };
                if *attr >= MEM_ATTRS {
                    fail!(PARAM_INVALID);
                }
                let total = self.cfg.device_memory;
                let free = total - self.mem_used(cur);
                // M6: a memory call reclaims the dead (whose memory this would still count).
                let mut e = Expect::ok().with(Out::MemInfo { free, total });
                self.sweep(&mut e);
                Ok(e)
            }
            Op::Memcpy {
                p,
                dst,
                dest_max,
                src,
                count,
                kind,
                stream,
            } => self.memcpy(*p, dst, *dest_max, src, *count, *kind, stream.as_ref()),
            Op::Memset {
                p,
                ptr,
                max,
                value,
                count,
                stream,
            } => self.memset(*p, ptr, *max, *value, *count, stream.as_ref()),
            Op::MemExport {
                p,
                ptr,
                size,
                buf,
                flags,
            } => self.mem_export(*p, ptr, *size, *buf, *flags),
            Op::MemSetPid { p, key, pids } => self.mem_set_pid(*p, key, pids),
            Op::MemImport {
                p,
                null_out,
                key,
                flags,
            } => self.mem_import(*p, *null_out, key, *flags),
            Op::MemClose { p, key } => self.mem_close(*p, key),
            other => unreachable!("not a memory step: {other:?}"),
        }
    }

    /// M1: init → NULL → context → size, policy → room (after reclaiming the dead).
    fn malloc(
        &mut self,
        p: Proc,
        null: bool,
        size: u64,
        policy: u32,
    ) -> Result<Expect, Unpredictable> {
        let pr = self.alive(p)?;
        if pr.session.is_none() {
            fail!(UNINITIALIZE);
        }
        if null {
            fail!(INVALID_PARAM);
        }
        let Some(cur) = pr.current else {
            fail!(CONTEXT_NULL)
        };
        if size == 0 {
            fail!(PARAM_INVALID);
        }
        let Some(page) = page_size(policy, size) else {
            fail!(PARAM_INVALID)
        };
        let mut e = Expect::ok();
        self.sweep(&mut e);
        let room = self.cfg.device_memory - self.mem_used(cur);
        let len = size.checked_next_multiple_of(page);
        let Some(len) = len.filter(|&len| len <= room) else {
            e.code = MEMORY_ALLOCATION;
            return Ok(e);
        };
        let m = self.new_region(p, cur, len, page, Origin::Alloc);
        self.mem.memories.insert(
            m,
            Memory {
                device: cur,
                len,
                page,
                owner: self.pid(p),
                freed: false,
                imports: 0,
                bytes: Contents::default(),
            },
        );
        e.effects.push(Effect::Allocated(m));
        Ok(e.with(Out::Ptr(m)))
    }

    /// M1/M6: init → NULL → the start of a live allocation of this process (107000; an import
    /// too) → waits for this process's tasks → frees.
    fn free(&mut self, p: Proc, ptr: &PtrArg) -> Result<Expect, Unpredictable> {
        let pr = self.alive(p)?;
        if pr.session.is_none() {
            fail!(UNINITIALIZE);
        }
        if matches!(ptr, PtrArg::Null) {
            fail!(INVALID_PARAM);
        }
        let m = match self.side(p, ptr)? {
            Side::Dev(m, 0)
                if self.mem.regions[&m].live && self.mem.regions[&m].origin == Origin::Alloc =>
            {
                m
            }
            _ => fail!(PARAM_INVALID),
        };
        self.no_blocked_wait(p)?;
        let mut e = Expect::ok();
        self.sweep(&mut e);
        self.release_alloc(m, true, &mut e);
        Ok(e)
    }

    /// M6: `aclrtFree` and `aclrtIpcMemClose` first wait for every task of this process; the
    /// model cannot say when a blocked wait would end.
    fn no_blocked_wait(&self, p: Proc) -> Result<(), Unpredictable> {
        if self.blocked_waits().iter().any(|w| w.0 == p) {
            return Err(Unpredictable::Lingers);
        }
        Ok(())
    }

    /// The owner is done with allocation range `m` (a free, or the end of its session): its
    /// exports close, its bytes stay for its imports (a hazard when `explicit`, M6).
    fn release_alloc(&mut self, m: Mid, explicit: bool, e: &mut Expect) {
        self.mem.regions.get_mut(&m).expect("a range").live = false;
        let mem = self.mem.memories.get_mut(&m).expect("a held allocation");
        mem.freed = true;
        if explicit && mem.imports > 0 {
            self.mem.hazards.freed_while_imported += 1;
            e.effects.push(Effect::Hazard("freed-while-imported"));
        }
        let exports: Vec<Xid> = self
            .mem
            .exports
            .iter()
            .filter(|(_, x)| x.alloc == m)
            .map(|(&x, _)| x)
            .collect();
        for x in exports {
            self.mem.exports.get_mut(&x).expect("tracked").open = false;
            self.drop_export_if_done(x);
        }
        self.release_if_done(m, e);
    }

    fn drop_export_if_done(&mut self, x: Xid) {
        let ex = &self.mem.exports[&x];
        if !ex.open && ex.imports.is_empty() {
            self.mem.exports.remove(&x);
        }
    }

    fn release_if_done(&mut self, alloc: Mid, e: &mut Expect) {
        let mem = &self.mem.memories[&alloc];
        if mem.freed && mem.imports == 0 {
            self.mem.memories.remove(&alloc);
            e.effects.push(Effect::MemReleased(alloc));
        }
    }

    /// An importer is done with import range `m` (a close, or the end of its session).
    fn close_import(&mut self, m: Mid, e: &mut Expect) {
        let r = self.mem.regions.get_mut(&m).expect("a range");
        r.live = false;
        let Origin::Import { export, alloc, .. } = r.origin else {
            unreachable!("an import")
        };
        if let Some(ex) = self.mem.exports.get_mut(&export) {
            ex.imports.remove(&m);
            self.drop_export_if_done(export);
        }
        let mem = self
            .mem
            .memories
            .get_mut(&alloc)
            .expect("held by the import");
        mem.imports -= 1;
        self.release_if_done(alloc, e);
    }

    #[allow(clippy::too_many_arguments)]
    fn memcpy(
        &mut self,
        p: Proc,
        dst: &PtrArg,
        dest_max: u64,
        src: &PtrArg,
        count: u64,
        kind: u32,
        stream: Option<&StreamArg>,
    ) -> Result<Expect, Unpredictable> {
        let pr = self.alive(p)?;
        if pr.session.is_none() {
            fail!(UNINITIALIZE);
        }
        if matches!(dst, PtrArg::Null) || matches!(src, PtrArg::Null) {
            fail!(INVALID_PARAM);
        }
        let Some(cur) = pr.current else {
            fail!(CONTEXT_NULL)
        };
        let q = match stream {
            None => None,
            Some(s) => match self.enqueue_queue(p, cur, s)? {
                Ok(q) => Some(q),
                Err(c) => fail!(c),
            },
        };
        if count > dest_max {
            fail!(PARAM_INVALID);
        }
        if count == 0 {
            // M2; (sim) before the kind is looked at.
            return Ok(Expect::ok());
        }
        if kind > 7 {
            fail!(PARAM_INVALID);
        }
        let (ds, ss) = (self.side(p, dst)?, self.side(p, src)?);
        // M2: HOST_TO_BUF_TO_DEVICE acts as HOST_TO_DEVICE, INNER_/INTER_ as DEVICE_TO_DEVICE;
        // DEFAULT infers the kind.
        let want = match kind {
            0 => Some((false, false)),
            1 | 5 => Some((true, false)),
            2 => Some((false, true)),
            3 | 6 | 7 => Some((true, true)),
            _ => None,
        };
        let (dd, sd) = match want {
            Some((wd, ws)) => {
                let contradicts = |s: &Side, want: bool| s.device().is_some_and(|d| d != want);
                if contradicts(&ds, wd) || contradicts(&ss, ws) {
                    fail!(PARAM_INVALID);
                }
                // Where host memory is wanted, a pointer of unknown kind would be written or
                // read as host memory; where device memory is wanted it is refused either way
                // (as the wrong kind, or as a range outside this process's memory).
                if (ds == Side::Unknown && !wd) || (ss == Side::Unknown && !ws) {
                    return Err(Unpredictable::WildPointer);
                }
                if ds == Side::Unknown || ss == Side::Unknown {
                    fail!(PARAM_INVALID);
                }
                (wd, ws)
            }
            None => match (ds.device(), ss.device()) {
                (Some(a), Some(b)) => (a, b),
                _ => return Err(Unpredictable::WildPointer),
            },
        };
        let on_stream = q.is_some();
        let mut places = [None, None];
        for (i, (side, dev)) in [(&ds, dd), (&ss, sd)].into_iter().enumerate() {
            if dev {
                match self.resolve(side, count) {
                    Some(pl) => places[i] = Some(pl),
                    None => fail!(PARAM_INVALID),
                }
            }
        }
        for pl in places.iter().flatten() {
            if !self.place_ok(p, cur, pl, dd && sd && on_stream) {
                fail!(PARAM_INVALID);
            }
        }
        for side in [&ds, &ss] {
            if let Side::Host(len) = side
                && count > *len
            {
                // A harness bug: the host buffer is shorter than the copy.
                return Err(Unpredictable::WildPointer);
            }
        }
        if let Some(q) = q {
            if self.queue(q).is_some_and(|q| q.blocked.is_some()) {
                return Err(Unpredictable::QueuedBehindWait);
            }
            if !dd || !sd {
                return Err(Unpredictable::HostAsync);
            }
        }
        let data = match (&places[1], src) {
            (Some(pl), _) => self.mem.memories[&pl.alloc].bytes.read(pl.off, count),
            (None, PtrArg::Host { seed, .. }) => host_bytes(*seed, count as usize),
            (None, _) => unreachable!("a host source is a host buffer"),
        };
        let mut e = Expect::ok();
        match &places[0] {
            Some(pl) => {
                let mem = self.mem.memories.get_mut(&pl.alloc).expect("held");
                mem.bytes.write(pl.off, &data);
                e.effects.push(Effect::MemWritten(pl.alloc));
            }
            None => e.out = Out::Bytes(data),
        }
        if let Some(q) = q {
            self.queue_mut(q).in_flight = true;
        }
        Ok(e)
    }

    fn memset(
        &mut self,
        p: Proc,
        ptr: &PtrArg,
        max: u64,
        value: i32,
        count: u64,
        stream: Option<&StreamArg>,
    ) -> Result<Expect, Unpredictable> {
        let pr = self.alive(p)?;
        if pr.session.is_none() {
            fail!(UNINITIALIZE);
        }
        if matches!(ptr, PtrArg::Null) {
            fail!(INVALID_PARAM);
        }
        let Some(cur) = pr.current else {
            fail!(CONTEXT_NULL)
        };
        let q = match stream {
            None => None,
            Some(s) => match self.enqueue_queue(p, cur, s)? {
                Ok(q) => Some(q),
                Err(c) => fail!(c),
            },
        };
        if count > max {
            fail!(PARAM_INVALID);
        }
        if count == 0 {
            return Ok(Expect::ok());
        }
        // M2: host memory, or an address outside this process's memory: 107000 (a set never
        // writes through a host pointer).
        let side = self.side(p, ptr)?;
        let Some(pl) = self.resolve(&side, count) else {
            fail!(PARAM_INVALID)
        };
        if !self.place_ok(p, cur, &pl, q.is_some()) {
            fail!(PARAM_INVALID);
        }
        if let Some(q) = q {
            if self.queue(q).is_some_and(|q| q.blocked.is_some()) {
                return Err(Unpredictable::QueuedBehindWait);
            }
            self.queue_mut(q).in_flight = true;
        }
        // M2: `value` converted to a byte, as C memset does.
        let data = vec![value as u8; count as usize];
        let mem = self.mem.memories.get_mut(&pl.alloc).expect("held");
        mem.bytes.write(pl.off, &data);
        let mut e = Expect::ok();
        e.effects.push(Effect::MemWritten(pl.alloc));
        Ok(e)
    }

    /// M3: init → NULL devPtr, key → context → size, len, flags → the range (one live
    /// allocation of this process, page-aligned) → overlap with an open export (507899).
    fn mem_export(
        &mut self,
        p: Proc,
        ptr: &PtrArg,
        size: u64,
        buf: Buf,
        flags: u64,
    ) -> Result<Expect, Unpredictable> {
        let pr = self.alive(p)?;
        let Some(session) = pr.session else {
            fail!(UNINITIALIZE)
        };
        if matches!(ptr, PtrArg::Null) || buf.null {
            fail!(INVALID_PARAM);
        }
        if pr.current.is_none() {
            fail!(CONTEXT_NULL);
        }
        if size == 0 || buf.len < KEY_BUF_MIN || flags & !MEM_EXPORT_DISABLE_PID_VALIDATION != 0 {
            fail!(PARAM_INVALID);
        }
        let side = self.side(p, ptr)?;
        let Some(pl) = self.resolve(&side, size) else {
            fail!(PARAM_INVALID)
        };
        if self.mem.regions[&pl.region].origin != Origin::Alloc {
            fail!(PARAM_INVALID);
        }
        let page = self.mem.regions[&pl.region].page;
        if !pl.off.is_multiple_of(page) || !size.is_multiple_of(page) {
            fail!(PARAM_INVALID);
        }
        let overlaps = self.mem.exports.values().any(|x| {
            x.open && x.alloc == pl.alloc && pl.off < x.offset + x.size && x.offset < pl.off + size
        });
        let mut e = Expect::ok();
        self.sweep(&mut e);
        if overlaps {
            e.code = DRV_REFUSED;
            return Ok(e);
        }
        let x = Xid(self.mem.next_xid + 1);
        self.mem.next_xid += 1;
        self.mem.exports.insert(
            x,
            MemExport {
                exporter: p,
                exporter_pid: self.pid(p),
                session,
                alloc: pl.alloc,
                offset: pl.off,
                size,
                disable: flags == MEM_EXPORT_DISABLE_PID_VALIDATION,
                whitelist: Vec::new(),
                open: true,
                closed_by_death: None,
                imports: BTreeSet::new(),
            },
        );
        self.mem.keys.insert(x);
        e.effects.push(Effect::MemExported(x));
        Ok(e.with(Out::MemKey(x)))
    }

    /// M4: init → NULL key, pid → num → pid values (sim) → key format → resolution (507899) →
    /// exporter (507899) → DISABLE (207006) → every pid ignored (507899) → room (sim).
    fn mem_set_pid(
        &mut self,
        p: Proc,
        key: &MemKeyArg,
        pids: &Array<PidSym>,
    ) -> Result<Expect, Unpredictable> {
        let pr = self.alive(p)?;
        let Some(session) = pr.session else {
            fail!(UNINITIALIZE)
        };
        if matches!(key, MemKeyArg::Null) || matches!(pids, Array::Null { .. }) {
            fail!(INVALID_PARAM);
        }
        let Array::Items(pids) = pids else {
            unreachable!()
        };
        if pids.is_empty() || pids.len() > MEM_PIDS_PER_CALL {
            fail!(PARAM_INVALID);
        }
        if pids.iter().any(|p| matches!(p, PidSym::Raw(x) if *x < 0)) {
            fail!(PARAM_INVALID);
        }
        let x = match self.mem_key(key)? {
            Ok(x) => x,
            Err(c) => fail!(c),
        };
        let mut e = Expect::ok();
        self.sweep(&mut e);
        let me = self.pid(p);
        let Some(ex) = self.open_export(x) else {
            e.code = DRV_REFUSED;
            return Ok(e);
        };
        if ex.exporter != p || ex.session != session || ex.exporter_pid != me {
            e.code = DRV_REFUSED;
            return Ok(e);
        }
        if ex.disable {
            e.code = NO_PERMISSION;
            return Ok(e);
        }
        let mut add: Vec<PidSym> = Vec::new();
        let mut wanted = 0;
        for pid in pids {
            if *pid == PidSym::Raw(0) || *pid == me {
                continue;
            }
            wanted += 1;
            if !ex.whitelist.contains(pid) && !add.contains(pid) {
                add.push(*pid);
            }
        }
        if wanted == 0 || ex.whitelist.len() + add.len() > MEM_WHITELIST {
            e.code = DRV_REFUSED;
            return Ok(e);
        }
        let ex = self.mem.exports.get_mut(&x).expect("open");
        ex.whitelist.extend(add.iter().copied());
        for pid in add {
            e.effects.push(Effect::MemWhitelisted(x, pid));
        }
        Ok(e)
    }

    /// M5: init → NULL → context → flags → key format → then each 507899, in order: unknown or
    /// closed; exported or already imported by this process; not whitelisted; no peer access;
    /// (sim) no importer entry left.
    fn mem_import(
        &mut self,
        p: Proc,
        null_out: bool,
        key: &MemKeyArg,
        flags: u64,
    ) -> Result<Expect, Unpredictable> {
        let pr = self.alive(p)?;
        let Some(session) = pr.session else {
            fail!(UNINITIALIZE)
        };
        if null_out || matches!(key, MemKeyArg::Null) {
            fail!(INVALID_PARAM);
        }
        let Some(cur) = pr.current else {
            fail!(CONTEXT_NULL)
        };
        if flags & !MEM_IMPORT_ENABLE_PEER_ACCESS != 0 {
            fail!(PARAM_INVALID);
        }
        let x = match self.mem_key(key)? {
            Ok(x) => x,
            Err(c) => fail!(c),
        };
        let mut e = Expect::ok();
        self.sweep(&mut e);
        let me = self.pid(p);
        let Some(ex) = self.open_export(x) else {
            e.code = DRV_REFUSED;
            return Ok(e);
        };
        let own = ex.exporter == p && ex.session == session && ex.exporter_pid == me;
        if own || self.import_of(p, x).is_some() {
            e.code = DRV_REFUSED;
            return Ok(e);
        }
        if !ex.disable && !ex.whitelist.contains(&me) {
            e.code = DRV_REFUSED;
            return Ok(e);
        }
        let enable = flags & MEM_IMPORT_ENABLE_PEER_ACCESS != 0;
        let mem = &self.mem.memories[&ex.alloc];
        let device = mem.device;
        if !enable && device != cur && !self.procs[p].peers.contains(&(cur, device)) {
            e.code = DRV_REFUSED;
            return Ok(e);
        }
        if ex.imports.len() >= MEM_IMPORTERS {
            e.code = DRV_REFUSED;
            return Ok(e);
        }
        let (alloc, offset, size, page) = (ex.alloc, ex.offset, ex.size, mem.page);
        let m = self.new_region(
            p,
            device,
            size,
            page,
            Origin::Import {
                export: x,
                alloc,
                offset,
            },
        );
        self.mem
            .exports
            .get_mut(&x)
            .expect("open")
            .imports
            .insert(m);
        self.mem.memories.get_mut(&alloc).expect("held").imports += 1;
        if enable && device != cur && self.procs[p].peers.insert((cur, device)) {
            // M5 with ENABLE_PEER_ACCESS: as R7's flag, the import enables the pair.
            e.effects.push(Effect::PeerEnabled(cur, device));
        }
        e.effects.push(Effect::MemImported(x));
        Ok(e.with(Out::Ptr(m)))
    }

    /// M6: init → NULL → key format → waits for this process's tasks → an import of this
    /// process made with the key: unmapped; else resolution (507899) → exporter (507899) →
    /// closed (a hazard while imported).
    fn mem_close(&mut self, p: Proc, key: &MemKeyArg) -> Result<Expect, Unpredictable> {
        let pr = self.alive(p)?;
        let Some(session) = pr.session else {
            fail!(UNINITIALIZE)
        };
        if matches!(key, MemKeyArg::Null) {
            fail!(INVALID_PARAM);
        }
        let x = match self.mem_key(key)? {
            Ok(x) => x,
            // A forged or foreign key is well formed: the wait happens, then it resolves to
            // nothing (507899).
            Err(DRV_REFUSED) => {
                self.no_blocked_wait(p)?;
                let mut e = Expect::code(DRV_REFUSED);
                self.sweep(&mut e);
                return Ok(e);
            }
            Err(c) => fail!(c),
        };
        self.no_blocked_wait(p)?;
        let mut e = Expect::ok();
        if let Some(m) = self.import_of(p, x) {
            self.sweep(&mut e);
            self.close_import(m, &mut e);
            e.effects.push(Effect::MemClosed(x));
            return Ok(e);
        }
        self.sweep(&mut e);
        let me = self.pid(p);
        let Some(ex) = self.open_export(x) else {
            e.code = DRV_REFUSED;
            return Ok(e);
        };
        if ex.exporter != p || ex.session != session || ex.exporter_pid != me {
            e.code = DRV_REFUSED;
            return Ok(e);
        }
        if !ex.imports.is_empty() {
            self.mem.hazards.exporter_closed_first += 1;
            e.effects.push(Effect::Hazard("exporter-closed-first"));
        }
        self.mem.exports.get_mut(&x).expect("open").open = false;
        self.drop_export_if_done(x);
        e.effects.push(Effect::MemClosed(x));
        Ok(e)
    }

    /// R9/M6 and §4: the end of process `p`'s session releases its memory: its imports close,
    /// its allocations are freed (their bytes stay for other processes' imports), its exports
    /// close; no hazard is counted (sim).
    pub(super) fn end_memory(&mut self, p: Proc, death: bool, e: &mut Expect) {
        let mine = self.live_regions(p);
        for &m in &mine {
            if matches!(self.mem.regions[&m].origin, Origin::Import { .. }) {
                self.close_import(m, e);
            }
        }
        if death {
            for ex in self.mem.exports.values_mut() {
                if ex.exporter == p
                    && ex.closed_by_death.is_none()
                    && self.procs[p].session == Some(ex.session)
                {
                    ex.closed_by_death = Some(ex.open);
                }
            }
        }
        for &m in &mine {
            if self.mem.regions[&m].origin == Origin::Alloc {
                self.release_alloc(m, false, e);
            }
        }
        // Exports of this session whose allocation lives on (none: they close with it), and
        // exports the process made of memory it no longer owns, close too.
        let session = self.procs[p].session;
        let xs: Vec<Xid> = self
            .mem
            .exports
            .iter()
            .filter(|(_, ex)| ex.exporter == p && Some(ex.session) == session && ex.open)
            .map(|(&x, _)| x)
            .collect();
        for x in xs {
            self.mem.exports.get_mut(&x).expect("tracked").open = false;
            self.drop_export_if_done(x);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn world() -> Model {
        let mut m = Model::new(Config {
            devices: 2,
            capacity: 4,
            processes: 3,
            device_memory: 8 * MIB,
        });
        for p in 0..3 {
            assert_eq!(m.apply(&Op::Init { p }).code, OK);
            assert_eq!(m.apply(&Op::SetDevice { p, device: 0 }).code, OK);
        }
        m
    }

    fn malloc(m: &mut Model, p: Proc, size: u64, policy: u32) -> Expect {
        m.apply(&Op::Malloc {
            p,
            null: false,
            size,
            policy,
        })
    }

    fn alloc(m: &mut Model, p: Proc, size: u64) -> Mid {
        let e = malloc(m, p, size, 2);
        let Out::Ptr(r) = e.out else { panic!("{e:?}") };
        r
    }

    fn h2d(p: Proc, dst: Mid, off: u64, seed: u8, n: u64) -> Op {
        Op::Memcpy {
            p,
            dst: PtrArg::Dev(dst, off),
            dest_max: n,
            src: PtrArg::Host { seed, len: n },
            count: n,
            kind: 1,
            stream: None,
        }
    }

    fn d2h(p: Proc, src: Mid, off: u64, n: u64, kind: u32) -> Op {
        Op::Memcpy {
            p,
            dst: PtrArg::Host { seed: 0, len: n },
            dest_max: n,
            src: PtrArg::Dev(src, off),
            count: n,
            kind,
            stream: None,
        }
    }

    fn export(m: &mut Model, p: Proc, r: Mid, size: u64, flags: u64) -> Expect {
        m.apply(&Op::MemExport {
            p,
            ptr: PtrArg::Dev(r, 0),
            size,
            buf: Buf::KEY,
            flags,
        })
    }

    fn import(m: &mut Model, p: Proc, x: Xid, flags: u64) -> Expect {
        m.apply(&Op::MemImport {
            p,
            null_out: false,
            key: MemKeyArg::Known(x),
            flags,
        })
    }

    fn key_of(e: &Expect) -> Xid {
        let Out::MemKey(x) = e.out else {
            panic!("{e:?}")
        };
        x
    }

    #[test]
    fn m1_pages_room_and_order() {
        let mut m = world();
        assert_eq!(
            m.apply(&Op::Malloc {
                p: 0,
                null: true,
                size: 0,
                policy: 99
            })
            .code,
            INVALID_PARAM
        );
        assert_eq!(malloc(&mut m, 0, 0, 2).code, PARAM_INVALID);
        assert_eq!(
            malloc(&mut m, 0, 1, 8).code,
            PARAM_INVALID,
            "unknown policy"
        );
        let r = alloc(&mut m, 0, 1);
        assert_eq!((m.regions()[&r].len, m.regions()[&r].page), (4096, 4096));
        let e = malloc(&mut m, 1, 1, 1);
        let Out::Ptr(h) = e.out else { panic!() };
        assert_eq!(m.regions()[&h].page, PAGE_2M, "HUGE_ONLY");
        let e = malloc(&mut m, 1, 2 * MIB, 0);
        let Out::Ptr(h2) = e.out else { panic!() };
        assert_eq!(m.regions()[&h2].page, PAGE_2M, "HUGE_FIRST from 2 MiB");
        let r2 = alloc(&mut m, 2, 4097);
        assert_eq!(m.regions()[&r2].len, 8192);
        assert_eq!(
            malloc(&mut m, 0, 1, 6).code,
            MEMORY_ALLOCATION,
            "a 1 GiB page"
        );
        assert_eq!(malloc(&mut m, 0, u64::MAX, 2).code, MEMORY_ALLOCATION);
        assert_eq!(m.mem_used(0), 4 * MIB + 3 * 4096);
        let e = m.apply(&Op::MemInfo {
            p: 2,
            attr: 1,
            null_free: false,
            null_total: false,
        });
        assert_eq!(
            e.out,
            Out::MemInfo {
                free: 4 * MIB - 3 * 4096,
                total: 8 * MIB
            }
        );
        assert_eq!(malloc(&mut m, 2, 4 * MIB, 2).code, MEMORY_ALLOCATION);
        let free = |ptr| Op::Free { p: 1, ptr };
        assert_eq!(m.apply(&free(PtrArg::Dev(h, 1))).code, PARAM_INVALID);
        assert_eq!(
            m.apply(&free(PtrArg::Dev(r, 0))).code,
            PARAM_INVALID,
            "another process's"
        );
        assert_eq!(m.apply(&free(PtrArg::Dev(h, 0))).code, OK);
        assert_eq!(
            m.apply(&free(PtrArg::Dev(h, 0))).code,
            PARAM_INVALID,
            "twice"
        );
        assert_eq!(malloc(&mut m, 2, 2 * MIB, 2).code, OK);
        m.apply(&Op::SetDevice { p: 2, device: 1 });
        assert_eq!(m.mem_used(1), 0, "counted per device");
    }

    #[test]
    fn m2_copies_and_sets() {
        let mut m = world();
        let r = alloc(&mut m, 0, 8192);
        assert_eq!(m.apply(&h2d(0, r, 100, 7, 300)).code, OK);
        let e = m.apply(&d2h(0, r, 100, 300, 4));
        assert_eq!(e.out, Out::Bytes(host_bytes(7, 300)), "DEFAULT infers D2H");
        let e = m.apply(&d2h(0, r, 0, 4, 2));
        assert_eq!(e.out, Out::Bytes(vec![0; 4]), "(sim) fresh memory is zeros");
        assert_eq!(m.apply(&d2h(0, r, 8000, 300, 2)).code, PARAM_INVALID);
        assert_eq!(
            m.apply(&d2h(0, r, 0, 4, 1)).code,
            PARAM_INVALID,
            "the kind contradicts"
        );
        assert_eq!(m.apply(&d2h(0, r, 0, 4, 8)).code, PARAM_INVALID);
        let mut big = d2h(0, r, 0, 4, 2);
        if let Op::Memcpy { dest_max, .. } = &mut big {
            *dest_max = 3;
        }
        assert_eq!(m.apply(&big).code, PARAM_INVALID, "count > destMax");
        let set = Op::Memset {
            p: 0,
            ptr: PtrArg::Dev(r, 1),
            max: 2,
            value: 0x1ff,
            count: 2,
            stream: None,
        };
        assert_eq!(m.apply(&set).code, OK);
        let e = m.apply(&d2h(0, r, 0, 4, 2));
        assert_eq!(
            e.out,
            Out::Bytes(vec![0, 0xff, 0xff, 0]),
            "a byte, as memset"
        );
        // Another process's address: refused where device memory is wanted, unpredictable where
        // the simulator would take it for host memory.
        let r1 = alloc(&mut m, 1, 4096);
        assert_eq!(m.apply(&h2d(0, r1, 0, 1, 4)).code, PARAM_INVALID);
        assert_eq!(
            m.predict(&d2h(0, r, 0, 4, 1)).map(|e| e.code),
            Ok(PARAM_INVALID)
        );
        let wild = Op::Memcpy {
            p: 0,
            dst: PtrArg::Wild(0x1234_5000),
            dest_max: 4,
            src: PtrArg::Dev(r, 0),
            count: 4,
            kind: 2,
            stream: None,
        };
        assert_eq!(m.predict(&wild), Err(Unpredictable::WildPointer));
        // Peer access (sim: 107000).
        m.apply(&Op::SetDevice { p: 0, device: 1 });
        assert_eq!(m.apply(&d2h(0, r, 0, 4, 2)).code, PARAM_INVALID);
        m.apply(&Op::EnablePeer {
            p: 0,
            peer: 0,
            flags: 0,
        });
        assert_eq!(m.apply(&d2h(0, r, 0, 4, 2)).code, OK);
        // An async set is a stream task: in flight until its synchronize.
        let set = Op::Memset {
            p: 0,
            ptr: PtrArg::Dev(r, 0),
            max: 4,
            value: 9,
            count: 4,
            stream: Some(StreamArg::Default),
        };
        assert_eq!(m.apply(&set).code, OK);
        assert!(!m.settled());
        for op in m.settle_ops() {
            assert_eq!(m.apply(&op).code, OK);
        }
        assert_eq!(m.region_bytes(r).unwrap()[..4], [9; 4]);
    }

    #[test]
    fn m3_m4_m5_export_whitelist_import() {
        let mut m = world();
        let r = alloc(&mut m, 0, 3 * 4096);
        let bad = |m: &mut Model, ptr, size, flags| {
            m.apply(&Op::MemExport {
                p: 0,
                ptr,
                size,
                buf: Buf::KEY,
                flags,
            })
            .code
        };
        assert_eq!(bad(&mut m, PtrArg::Dev(r, 0), 0, 0), PARAM_INVALID);
        assert_eq!(bad(&mut m, PtrArg::Dev(r, 0), 4096, 2), PARAM_INVALID);
        assert_eq!(bad(&mut m, PtrArg::Dev(r, 1), 4096, 0), PARAM_INVALID);
        assert_eq!(bad(&mut m, PtrArg::Dev(r, 0), 100, 0), PARAM_INVALID);
        assert_eq!(bad(&mut m, PtrArg::Dev(r, 0), 4 * 4096, 0), PARAM_INVALID);
        let x = key_of(&export(&mut m, 0, r, 2 * 4096, 0));
        assert_eq!(
            bad(&mut m, PtrArg::Dev(r, 4096), 4096, 0),
            DRV_REFUSED,
            "overlaps"
        );
        let x2 = key_of(&m.apply(&Op::MemExport {
            p: 0,
            ptr: PtrArg::Dev(r, 2 * 4096),
            size: 4096,
            buf: Buf::KEY,
            flags: 1,
        }));
        // M4.
        let set_pid = |m: &mut Model, p, key, pids: Vec<PidSym>| {
            m.apply(&Op::MemSetPid {
                p,
                key,
                pids: Array::Items(pids),
            })
            .code
        };
        let p1 = m.pid(1);
        assert_eq!(
            set_pid(&mut m, 0, MemKeyArg::Known(x), vec![]),
            PARAM_INVALID
        );
        assert_eq!(
            set_pid(&mut m, 1, MemKeyArg::Known(x), vec![p1]),
            DRV_REFUSED
        );
        assert_eq!(
            set_pid(&mut m, 0, MemKeyArg::Known(x2), vec![p1]),
            NO_PERMISSION
        );
        let me = m.pid(0);
        assert_eq!(
            set_pid(&mut m, 0, MemKeyArg::Known(x), vec![PidSym::Raw(0), me]),
            DRV_REFUSED,
            "every pid ignored"
        );
        assert_eq!(
            set_pid(&mut m, 0, MemKeyArg::Forged(x), vec![p1]),
            DRV_REFUSED
        );
        // M5, in order.
        assert_eq!(import(&mut m, 1, x, 2).code, PARAM_INVALID, "flags");
        assert_eq!(import(&mut m, 0, x, 0).code, DRV_REFUSED, "its own");
        assert_eq!(import(&mut m, 1, x, 0).code, DRV_REFUSED, "not whitelisted");
        assert_eq!(set_pid(&mut m, 0, MemKeyArg::Known(x), vec![p1, p1]), OK);
        m.apply(&Op::SetDevice { p: 1, device: 1 });
        assert_eq!(import(&mut m, 1, x, 0).code, DRV_REFUSED, "no peer access");
        let e = import(&mut m, 1, x, 1);
        let Out::Ptr(i) = e.out else { panic!("{e:?}") };
        assert!(m.process(1).peers.contains(&(1, 0)));
        assert_eq!(
            import(&mut m, 1, x, 1).code,
            DRV_REFUSED,
            "already imported"
        );
        assert_eq!(import(&mut m, 2, x2, 0).code, OK, "DISABLE");
        assert!(m.mem_exports()[&x2].whitelist.is_empty(), "(sim)");
        // What one side writes through the runtime, the other reads: the importer only through
        // device-to-device copies on a stream.
        m.apply(&h2d(0, r, 4096, 42, 64));
        assert_eq!(m.apply(&d2h(1, i, 4096, 64, 2)).code, PARAM_INVALID, "M5");
        let own = alloc(&mut m, 1, 4096);
        let d2d = Op::Memcpy {
            p: 1,
            dst: PtrArg::Dev(own, 0),
            dest_max: 4096,
            src: PtrArg::Dev(i, 4096),
            count: 64,
            kind: 3,
            stream: Some(StreamArg::Default),
        };
        let mut sync = d2d.clone();
        if let Op::Memcpy { stream, .. } = &mut sync {
            *stream = None;
        }
        assert_eq!(m.apply(&sync).code, PARAM_INVALID, "not synchronous");
        assert_eq!(m.apply(&d2d).code, OK);
        for op in m.settle_ops() {
            m.apply(&op);
        }
        let e = m.apply(&d2h(1, own, 0, 64, 4));
        assert_eq!(e.out, Out::Bytes(host_bytes(42, 64)));
    }

    #[test]
    fn m6_lifetime_and_hazards() {
        let mut m = world();
        let r = alloc(&mut m, 0, 4096);
        let x = key_of(&export(&mut m, 0, r, 4096, 1));
        let Out::Ptr(i1) = import(&mut m, 1, x, 0).out else {
            panic!()
        };
        import(&mut m, 2, x, 0);
        let close = |p, x| Op::MemClose {
            p,
            key: MemKeyArg::Known(x),
        };
        assert_eq!(m.apply(&close(0, x)).code, OK);
        assert_eq!(m.hazards().exporter_closed_first, 1);
        assert_eq!(import(&mut m, 1, x, 0).code, DRV_REFUSED, "closed");
        assert_eq!(m.apply(&close(0, x)).code, DRV_REFUSED, "twice");
        assert_eq!(
            m.apply(&Op::Free {
                p: 0,
                ptr: PtrArg::Dev(r, 0)
            })
            .code,
            OK
        );
        assert_eq!(m.hazards().freed_while_imported, 1);
        assert!(m.memories().contains_key(&r), "kept for the importers");
        assert_eq!(
            m.apply(&Op::Free {
                p: 1,
                ptr: PtrArg::Dev(i1, 0)
            })
            .code,
            PARAM_INVALID,
            "an imported address"
        );
        assert_eq!(m.apply(&close(1, x)).code, OK);
        assert_eq!(
            m.apply(&Op::Memset {
                p: 1,
                ptr: PtrArg::Dev(i1, 0),
                max: 1,
                value: 0,
                count: 1,
                stream: Some(StreamArg::Default)
            })
            .code,
            PARAM_INVALID,
            "a closed address stays invalid"
        );
        assert!(m.memories().contains_key(&r));
        m.apply(&Op::Kill { p: 2 });
        assert!(m.memories().is_empty(), "released with the last import");
        assert!(m.mem_exports().is_empty());
        // A death releases what the process held; an exit likewise.
        let r = alloc(&mut m, 1, 4096);
        key_of(&export(&mut m, 1, r, 4096, 0));
        m.apply(&Op::Exit { p: 1 });
        assert!(m.memories().is_empty() && m.mem_exports().is_empty());
        assert_eq!(m.hazards().freed_while_imported, 1, "no hazard at a detach");
    }
}
