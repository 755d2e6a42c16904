//! This process's device memory (M1, M2, M5, M6): device addresses, the mappings behind them,
//! and the copies and sets between them and host memory.
//!
//! **Device memory is not host memory.** Device addresses come from one large reservation made
//! with no access rights (`PROT_NONE`), so a host load or store through one faults, as on the
//! NPU. The bytes live in a `/dev/shm` object per allocation (sparse: a page is backed once it
//! is written), mapped read-write at another address that only the runtime's copies and sets
//! use. Addresses are handed out upward and never reused while the process lives (M6), and an
//! import is never at the exporter's address for the same memory (M5), so a program that passes
//! raw device pointers between processes fails here as on the NPU.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::OwnedFd;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use notify_api::{Result, err};

use crate::registry::memory::{AllocRef, ExportRef};
use crate::shm::{self, ObjectMap, Reservation};

/// The size of the device address reservation: address space only, never backed.
const RESERVATION: u64 = 8 << 40;

/// `aclrtMemMallocPolicy` values (M1): 0..=7, optionally with the official modifier bits, which
/// the simulator accepts and ignores.
pub(crate) const POLICY_MODIFIERS: u32 = 0x0100 | 0x1000 | 0x10_0000;

const KIB4: u64 = 4 << 10;
const MIB2: u64 = 2 << 20;
const GIB1: u64 = 1 << 30;

/// M1: the page size of an allocation of `size` bytes under `policy`, or `None` for an unknown
/// policy.
pub(crate) fn page_size(policy: u32, size: u64) -> Option<u64> {
    if policy & !(0x7 | POLICY_MODIFIERS) != 0 {
        return None;
    }
    Some(match policy & 0x7 {
        // HUGE_FIRST (and _P2P): 2 MiB pages from 2 MiB up, 4 KiB below.
        0 | 3 => {
            if size >= MIB2 {
                MIB2
            } else {
                KIB4
            }
        }
        // HUGE_ONLY (and _P2P).
        1 | 4 => MIB2,
        // NORMAL_ONLY (and _P2P).
        2 | 5 => KIB4,
        // HUGE1G_ONLY (and _P2P).
        _ => GIB1,
    })
}

/// Where a region's bytes come from.
#[derive(Debug)]
pub(crate) enum Origin {
    /// An allocation of this process.
    Own(AllocRef),
    /// An import of another process's export (M5), under the key it was imported with.
    Import {
        export: ExportRef,
        alloc: AllocRef,
        key: String,
    },
}

/// What [`Space::map`] maps, and where.
pub(crate) struct Mapping<'a> {
    /// The memory object's name in `/dev/shm`.
    pub object: &'a str,
    pub offset: u64,
    pub len: u64,
    pub device: i32,
    pub page_size: u64,
    pub origin: Origin,
    /// An address the mapping must not start at (M5: never the exporter's).
    pub avoid: Option<u64>,
    /// The object, already open by the caller that created it (no second open).
    pub fd: Option<&'a OwnedFd>,
    /// Told the address before the region is visible to other threads of this process.
    pub placed: Option<&'a dyn Fn(u64)>,
}

/// A range of device addresses of this process and the mapping behind it.
#[derive(Debug)]
pub(crate) struct Region {
    pub addr: u64,
    pub len: u64,
    pub device: i32,
    pub page_size: u64,
    pub origin: Origin,
    map: ObjectMap,
    /// Freed or closed: later calls with its addresses are refused.
    pub gone: AtomicBool,
}

impl Region {
    pub(crate) fn is_import(&self) -> bool {
        matches!(self.origin, Origin::Import { .. })
    }

    /// The host-side address of byte `offset` (`offset + len <= self.len`: the caller checked).
    pub(crate) fn shadow(&self, offset: u64) -> *mut u8 {
        self.map.at(offset as usize)
    }
}

/// A pointer argument of a copy or set, resolved.
#[derive(Clone, Debug)]
pub(crate) enum Place {
    /// Host memory (the caller's, valid for the call or, for an async copy, until it runs).
    Host(usize),
    /// Device memory: a region and an offset in it.
    Device(Arc<Region>, u64),
}

impl Place {
    pub(crate) fn ptr(&self) -> *mut u8 {
        match self {
            Place::Host(p) => std::ptr::without_provenance_mut(*p),
            Place::Device(r, off) => r.shadow(*off),
        }
    }

    pub(crate) fn region(&self) -> Option<&Arc<Region>> {
        match self {
            Place::Host(_) => None,
            Place::Device(r, _) => Some(r),
        }
    }
}

/// This process's device address space, per session.
#[derive(Debug, Default)]
pub(crate) struct Space {
    inner: RwLock<Inner>,
    host: Mutex<HashMap<usize, shm::HostMap>>,
}

#[derive(Debug, Default)]
struct Inner {
    regions: BTreeMap<u64, Arc<Region>>,
}

/// This process's device addresses: one reservation for the life of the process and one
/// cursor, shared by all its sessions, so that no address is handed out twice while the process
/// lives (M6), across an `aclFinalize` and the next `aclInit` too. (A forked child gets its own,
/// R17.)
struct Addresses {
    reservation: OnceLock<Reservation>,
    /// The next unused device address.
    next: Mutex<u64>,
}

static ADDRESSES: crate::fork::PerProcess<Addresses> = crate::fork::PerProcess::new(|| Addresses {
    reservation: OnceLock::new(),
    next: Mutex::new(0),
});

fn reservation() -> Result<&'static Reservation> {
    let a = ADDRESSES.get();
    if let Some(r) = a.reservation.get() {
        return Ok(r);
    }
    let r = Reservation::new(RESERVATION)?;
    Ok(a.reservation.get_or_init(|| r))
}

impl Space {
    /// Whether `addr` is a device address of this process (used or not): the copies' way of
    /// telling device pointers from host pointers (M2).
    pub(crate) fn is_device(&self, addr: usize) -> bool {
        ADDRESSES
            .get()
            .reservation
            .get()
            .is_some_and(|r| r.contains(addr as u64))
    }

    /// Takes `len` device addresses aligned to `page`, never used before, and never `avoid`.
    fn take(&self, len: u64, page: u64, avoid: Option<u64>) -> Result<u64> {
        let r = reservation()?;
        let mut next = ADDRESSES
            .get()
            .next
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut start = r.base().max(*next).next_multiple_of(page);
        if avoid == Some(start) {
            start += page;
        }
        let end = start
            .checked_add(len)
            .filter(|&end| end <= r.base() + r.len())
            .ok_or_else(|| {
                err!(
                    M1: RT_MEMORY_ALLOCATION,
                    "this process has used up its {RESERVATION} bytes of device addresses"
                )
            })?;
        *next = end;
        Ok(start)
    }

    /// Maps `m.object` (its bytes `offset..offset + len`) at fresh device addresses.
    pub(crate) fn map(&self, m: Mapping<'_>) -> Result<Arc<Region>> {
        let Mapping {
            object,
            offset,
            len,
            device,
            page_size,
            origin,
            avoid,
            fd,
            placed,
        } = m;
        let opened;
        let fd = match fd {
            Some(fd) => fd,
            None => {
                opened = shm::open_object(object).ok_or_else(
                    || err!(M5: RT_DRV_INTERNAL_ERROR, "the memory behind {object} is gone"),
                )?;
                &opened
            }
        };
        let map = ObjectMap::new(fd, offset, len)?;
        let addr = self.take(len, page_size, avoid)?;
        if let Some(placed) = placed {
            placed(addr);
        }
        let region = Arc::new(Region {
            addr,
            len,
            device,
            page_size,
            origin,
            map,
            gone: AtomicBool::new(false),
        });
        self.inner
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .regions
            .insert(addr, Arc::clone(&region));
        Ok(region)
    }

    /// The region that starts exactly at `addr`.
    pub(crate) fn region_at(&self, addr: u64) -> Option<Arc<Region>> {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .regions
            .get(&addr)
            .cloned()
    }

    /// The region of the import made with `key`.
    pub(crate) fn import_of(&self, key: &str) -> Option<Arc<Region>> {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .regions
            .values()
            .find(|r| matches!(&r.origin, Origin::Import { key: k, .. } if k == key))
            .cloned()
    }

    /// Whether this process imported export `e` (and has not closed it).
    pub(crate) fn imports(&self, e: ExportRef) -> bool {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .regions
            .values()
            .any(|r| matches!(&r.origin, Origin::Import { export, .. } if *export == e))
    }

    /// Forgets a region: its addresses stay taken, and every later use of them is refused.
    pub(crate) fn remove(&self, addr: u64) -> Option<Arc<Region>> {
        let r = self
            .inner
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .regions
            .remove(&addr)?;
        r.gone.store(true, SeqCst);
        Some(r)
    }

    /// Forgets every region of `device` and returns them (S1 `aclrtResetDeviceForce`).
    pub(crate) fn drain_device(&self, device: i32) -> Vec<Arc<Region>> {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let addrs: Vec<u64> = inner
            .regions
            .values()
            .filter(|r| r.device == device)
            .map(|r| r.addr)
            .collect();
        addrs
            .into_iter()
            .filter_map(|a| inner.regions.remove(&a))
            .inspect(|r| r.gone.store(true, SeqCst))
            .collect()
    }

    /// M2: the region holding device bytes `addr..addr + len`, and the offset of `addr` in it;
    /// 107000 when they are not inside one live allocation or import of this process.
    pub(crate) fn resolve(&self, addr: usize, len: usize) -> Result<(Arc<Region>, u64)> {
        let addr = addr as u64;
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let found = inner
            .regions
            .range(..=addr)
            .next_back()
            .map(|(_, r)| Arc::clone(r))
            .filter(|r| {
                addr.checked_add(len as u64)
                    .is_some_and(|end| end <= r.addr + r.len)
            });
        found.map(|r| {
            let off = addr - r.addr;
            (r, off)
        })
        .ok_or_else(|| {
            err!(
                M2: RT_PARAM_INVALID,
                "device bytes {addr:#x}..+{len} are not inside one live allocation or import of \
                 this process"
            )
        })
    }

    /// `aclrtMallocHost` (M1): ordinary, page-aligned host memory.
    pub(crate) fn malloc_host(&self, size: usize) -> Result<usize> {
        let map = shm::HostMap::new(size)?;
        let addr = map.addr();
        self.host
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(addr, map);
        Ok(addr)
    }

    /// `aclrtFreeHost` (M1): 107000 for a pointer `aclrtMallocHost` did not return (sim).
    pub(crate) fn free_host(&self, addr: usize) -> Result<()> {
        self.host
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&addr)
            .map(drop)
            .ok_or_else(|| {
                err!(
                    M1: RT_PARAM_INVALID,
                    "{addr:#x} is not host memory that aclrtMallocHost returned (or it was freed)"
                )
            })
    }
}

/// Copies `len` bytes (M2). The places were resolved and bounds-checked by the caller.
///
/// # Safety
/// Host places are valid for `len` bytes (written for `dst`, read for `src`) now.
pub(crate) unsafe fn copy(dst: &Place, src: &Place, len: usize) {
    if len == 0 {
        return;
    }
    // SAFETY: device places point into live mappings of at least `offset + len` bytes (checked
    // by `Space::resolve`, kept alive by the `Arc<Region>` in the place); host places are this
    // function's contract. `copy` allows overlap, as CANN's copies do.
    unsafe { std::ptr::copy(src.ptr(), dst.ptr(), len) }
}

/// Sets `len` bytes to `value` (M2).
pub(crate) fn set(dst: &Place, value: u8, len: usize) {
    if len == 0 {
        return;
    }
    // SAFETY: as for `copy`: a device place lies in a live mapping of at least `len` bytes past
    // its offset.
    unsafe { std::ptr::write_bytes(dst.ptr(), value, len) }
}
