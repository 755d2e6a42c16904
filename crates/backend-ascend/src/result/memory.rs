//! Device memory and IPC memory (`SEMANTICS.md` §5): the owners, the copies and sets, and the
//! registry of live ranges that every device address is checked against before the runtime sees
//! it (module docs of [`crate::result`], "Memory").

use std::collections::BTreeMap;
use std::ffi::{c_char, c_void};
use std::fmt;
use std::mem::ManuallyDrop;
use std::ptr::{self, NonNull};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak, mpsc};

use notify_api::{AclError, DeviceId, DeviceRange, EXPORT_KEY_LEN, Error, ExportKey, Result, err};

use super::host_fn::{in_host_fn, launch_host_func};
use super::{Retain, Stream, check};
use crate::sys::{
    ACL_HBM_MEM, ACL_MEMCPY_DEVICE_TO_DEVICE, ACL_MEMCPY_DEVICE_TO_HOST, ACL_MEMCPY_HOST_TO_DEVICE,
};

// ---------------------------------------------------------------------------------------------
// The registry.

/// The device memory of one session that the runtime may be given: every allocation and import
/// this module made and has not released, by start address (M2).
#[derive(Debug, Default)]
pub(crate) struct Ranges {
    map: Mutex<BTreeMap<u64, Region>>,
    /// Signalled when the last use of a region being released ends.
    released: Condvar,
}

#[derive(Debug)]
struct Region {
    len: usize,
    imported: bool,
    /// The device whose context allocated or imported it.
    device: i32,
    /// Calls that passed the check and are in the runtime with an address of it now.
    users: usize,
    /// Its owner is releasing it: no new use passes.
    closing: bool,
    /// One retain of each other device whose streams were given a task on it (a copy across
    /// devices, R7's peer access): those devices are synchronized too before it is released.
    touched: Vec<(i32, Weak<Retain>)>,
}

/// Which memory a use accepts.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Access {
    /// Only memory this process allocated: synchronous copies and sets, host copies on a
    /// stream, exports (M5: imported memory takes none of these).
    Own,
    /// Allocations and imports: device-to-device copies and sets on a stream.
    OwnOrImported,
}

/// One use of a region, for the length of one call: while it lives, the region is not released.
#[must_use]
struct InUse<'a> {
    ranges: &'a Ranges,
    start: u64,
}

impl Drop for InUse<'_> {
    fn drop(&mut self) {
        let mut map = self.ranges.lock();
        if let Some(region) = map.get_mut(&self.start) {
            region.users = region.users.saturating_sub(1);
            if region.users == 0 && region.closing {
                self.ranges.released.notify_all();
            }
        }
    }
}

impl Ranges {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Region>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records memory the runtime just handed out.
    ///
    /// # Errors
    /// `RT_INTERNAL_ERROR` (507000) when it overlaps memory already recorded, or wraps around
    /// the address space: the runtime handed out an address it had already handed out.
    fn insert(&self, start: u64, len: usize, imported: bool, device: i32) -> Result<()> {
        let mut map = self.lock();
        let end = start.checked_add(len as u64).ok_or_else(|| {
            err!(
                RT_INTERNAL_ERROR,
                "the runtime returned {start:#x}..+{len}, which wraps around the address space"
            )
        })?;
        let before = map
            .range(..=start)
            .next_back()
            .is_some_and(|(&s, r)| s + r.len as u64 > start || s == start);
        let after = map.range(start..end).next().is_some();
        if before || after {
            return Err(err!(
                RT_INTERNAL_ERROR,
                "the runtime returned {start:#x}..+{len}, which overlaps live memory of this \
                 process"
            ));
        }
        map.insert(
            start,
            Region {
                len,
                imported,
                device,
                users: 0,
                closing: false,
                touched: Vec::new(),
            },
        );
        Ok(())
    }

    /// Checks that `range` lies inside one live region that `access` accepts, and holds that
    /// region for the returned use. `stream` is the retain of the stream a task is enqueued on:
    /// its device is synchronized before the region is released.
    ///
    /// # Errors
    /// `RT_PARAM_INVALID` (107000): M2 for a range outside every live region (never allocated
    /// here, freed, being freed, another session's, or past an end), M5 for imported memory
    /// where `access` is `Own`.
    fn enter(
        &self,
        range: &DeviceRange<'_>,
        access: Access,
        stream: Option<&Arc<Retain>>,
    ) -> Result<InUse<'_>> {
        let (addr, len) = (range.addr(), range.len());
        let mut map = self.lock();
        let found = addr.checked_add(len as u64).and_then(|end| {
            map.range_mut(..=addr)
                .next_back()
                .filter(|(start, region)| end <= **start + region.len as u64 && !region.closing)
        });
        let Some((&start, region)) = found else {
            return Err(outside(range));
        };
        if region.imported && access == Access::Own {
            return Err(err!(
                M5: RT_PARAM_INVALID,
                "{range:?} is imported memory, which takes only device-to-device copies and sets \
                 enqueued on a stream"
            ));
        }
        if let Some(retain) = stream
            && retain.device() != region.device
        {
            let device = retain.device();
            match region.touched.iter_mut().find(|(d, _)| *d == device) {
                Some(entry) if entry.1.strong_count() > 0 => {}
                Some(entry) => entry.1 = Arc::downgrade(retain),
                None => region.touched.push((device, Arc::downgrade(retain))),
            }
        }
        region.users += 1;
        Ok(InUse {
            ranges: self,
            start,
        })
    }

    /// Withdraws the region at `start` (no new use passes), waits for the uses in flight, and
    /// removes it. Returns the other devices whose streams were given tasks on it.
    fn withdraw(&self, start: u64) -> Vec<(i32, Weak<Retain>)> {
        let mut map = self.lock();
        match map.get_mut(&start) {
            Some(region) => region.closing = true,
            None => return Vec::new(),
        }
        let mut map = self
            .released
            .wait_while(map, |map| map.get(&start).is_some_and(|r| r.users > 0))
            .unwrap_or_else(PoisonError::into_inner);
        map.remove(&start).map(|r| r.touched).unwrap_or_default()
    }

    /// `(start, length, imported, device)` of every live region, in address order.
    pub(crate) fn snapshot(&self) -> Vec<(u64, usize, bool, i32)> {
        self.lock()
            .iter()
            .filter(|(_, r)| !r.closing)
            .map(|(&start, r)| (start, r.len, r.imported, r.device))
            .collect()
    }
}

#[cold]
fn outside(range: &DeviceRange<'_>) -> Error {
    err!(
        M2: RT_PARAM_INVALID,
        "{range:?} is not inside a live allocation or import of this runtime (freed, another \
         runtime's, past its end, or not made by this backend)"
    )
}

#[cold]
fn too_long(count: usize, dest_max: usize) -> Error {
    err!(
        M2: RT_PARAM_INVALID,
        "count {count} is larger than destMax {dest_max}"
    )
}

/// A device address as the C prototypes take it. The address came from the runtime through an
/// out-pointer (its provenance exposed when it was stored), and this process never dereferences
/// it: device memory is not host memory (M1).
fn dev_ptr(addr: u64) -> *mut c_void {
    ptr::with_exposed_provenance_mut(addr as usize)
}

/// Stores a pointer the runtime returned as an address, exposing its provenance for
/// [`dev_ptr`].
fn dev_addr(ptr: *mut c_void) -> u64 {
    ptr.expose_provenance() as u64
}

// ---------------------------------------------------------------------------------------------
// Releasing memory (M6).

/// Withdraws the region at `start`, waits until no task this process queued can still touch it,
/// then runs `finish` (`aclrtFree` or `aclrtIpcMemClose`) with `retain` bound.
///
/// The wait is `aclrtSynchronizeDevice` on the region's device and on every other device whose
/// streams were given a task on it. From a host function (which must not wait for its own
/// stream, H1), or when the runtime refuses to synchronize here (107000), the wait and `finish`
/// move to a helper thread and this returns `Ok(())` at once. If no wait is possible (a context
/// cannot be bound, no thread can be started), `finish` is never run: the memory is leaked
/// rather than released under a pending task.
///
/// A synchronize reports (and so takes) the first failure of a stream's tasks, as
/// `aclrtSynchronizeDevice` does; that failure is not this release's and is not reported.
fn release(
    retain: &Arc<Retain>,
    start: u64,
    finish: impl FnOnce(&Retain) -> Result<()> + Send + 'static,
) -> Result<()> {
    let touched = retain.session.ranges.withdraw(start);
    let mut drains = vec![Arc::clone(retain)];
    drains.extend(touched.into_iter().filter_map(|(_, weak)| weak.upgrade()));
    if !in_host_fn() {
        match drain(&drains) {
            Drained::All => return finish(retain),
            Drained::Impossible(e) => return Err(leaked(e)),
            Drained::Refused => {}
        }
    }
    let owner = Arc::clone(retain);
    let spawned = std::thread::Builder::new()
        .name("ascend-notify-release".into())
        .spawn(move || match drain(&drains) {
            Drained::All => {
                let _ = finish(&owner);
            }
            // Leaked: `finish` is dropped without running.
            Drained::Refused | Drained::Impossible(_) => {}
        });
    match spawned {
        Ok(_) => Ok(()),
        Err(e) => Err(leaked(err!(
            RT_INTERNAL_ERROR,
            "no thread could be started to release the memory after its tasks: {e}"
        ))),
    }
}

enum Drained {
    /// Every device was synchronized (a task failure it reported still means it waited).
    All,
    /// The runtime refused to wait here (107000: a host function of one of the streams).
    Refused,
    /// A context could not be bound: nothing can wait.
    Impossible(Error),
}

/// `aclrtSynchronizeDevice` on each retain's device, once per device. Unlike
/// [`super::synchronize_device`], the panic flags of host functions are left for the program's
/// own synchronize.
fn drain(retains: &[Arc<Retain>]) -> Drained {
    let mut done: Vec<i32> = Vec::new();
    for retain in retains {
        if done.contains(&retain.device()) {
            continue;
        }
        if let Err(e) = retain.bind() {
            return Drained::Impossible(e);
        }
        // SAFETY: no arguments; `retain` keeps the bound context alive.
        let code = unsafe { (retain.lib().aclrtSynchronizeDevice)() };
        if AclError::from_raw(code) == AclError::RT_PARAM_INVALID {
            return Drained::Refused;
        }
        done.push(retain.device());
    }
    Drained::All
}

#[cold]
fn leaked(e: Error) -> Error {
    e.with_context("M6: the memory is left allocated, since no wait for its tasks was possible")
}

// ---------------------------------------------------------------------------------------------
// Owners: device memory.

/// Device memory allocated by `aclrtMalloc` under a [`Retain`], recorded in its session's
/// registry. Dropping it frees it (after its tasks, M6) and ignores the error; [`free`] reports
/// it.
pub struct DeviceMemory {
    retain: Arc<Retain>,
    addr: u64,
    len: usize,
    /// Whether the release is still ours to make.
    live: bool,
}

impl DeviceMemory {
    /// The retain (context) it was allocated under.
    pub fn retain(&self) -> &Arc<Retain> {
        &self.retain
    }

    /// The device address of its first byte.
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// Its length in bytes, as asked for.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it is empty (only if the runtime allocated 0 bytes, which it refuses).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The whole allocation as a range.
    pub fn range(&self) -> DeviceRange<'_> {
        DeviceRange::new(self.addr, self.len, DeviceId(self.retain.device()), false)
    }

    fn release_in_place(&mut self) -> Result<()> {
        if !std::mem::replace(&mut self.live, false) {
            return Ok(());
        }
        let (addr, len) = (self.addr, self.len);
        release(&self.retain, addr, move |retain| {
            retain.bind()?;
            // SAFETY: `addr` is an allocation `aclrtMalloc` returned in this session, freed once
            // (`live` was still set). `release` withdrew it from the registry (no new call can
            // pass an address of it), waited for the calls in flight, and synchronized every
            // device whose streams were given a task on it: no queued task of ours touches it.
            let code = unsafe { (retain.lib().aclrtFree)(dev_ptr(addr)) };
            let freed = check(retain.lib(), code, "aclrtFree");
            if freed.is_err() {
                // Refused (M6, strict): the memory is still allocated, and still reachable
                // through its address; the refusal changes nothing here either.
                let _ = retain
                    .session
                    .ranges
                    .insert(addr, len, false, retain.device());
            }
            freed
        })
    }
}

impl Drop for DeviceMemory {
    fn drop(&mut self) {
        let _ = self.release_in_place();
    }
}

impl fmt::Debug for DeviceMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceMemory")
            .field("device", &self.retain.device())
            .field("addr", &format_args!("{:#x}", self.addr))
            .field("len", &self.len)
            .finish()
    }
}

/// `aclrtMalloc(&ptr, size, policy)` with `retain`'s context bound, recorded in the session's
/// registry.
///
/// # Errors
/// The runtime's code (107000 for `size == 0` or an unknown policy, 207001 when the device is
/// full); `RT_INTERNAL_ERROR` (507000) for a NULL pointer reported as success or one that
/// overlaps live memory (then it is left allocated: it may be the live memory itself).
pub fn malloc(retain: &Arc<Retain>, size: usize, policy: u32) -> Result<DeviceMemory> {
    retain.bind()?;
    let mut ptr: *mut c_void = ptr::null_mut();
    // SAFETY: the out-pointer is a live local; the rest are plain values.
    let code = unsafe { (retain.lib().aclrtMalloc)(&mut ptr, size, policy) };
    check(retain.lib(), code, "aclrtMalloc")?;
    if ptr.is_null() {
        return Err(err!(
            RT_INTERNAL_ERROR,
            "aclrtMalloc reported success but returned NULL"
        ));
    }
    let addr = dev_addr(ptr);
    retain
        .session
        .ranges
        .insert(addr, size, false, retain.device())?;
    Ok(DeviceMemory {
        retain: Arc::clone(retain),
        addr,
        len: size,
        live: true,
    })
}

/// Frees `memory` (`aclrtFree`) after every task this process queued on it ran (M6; see
/// [`DeviceMemory`]).
///
/// # Errors
/// `aclrtFree`'s code (507899 for exported memory in the simulator's strict mode; the memory is
/// then left allocated). From a host function the free happens later on a helper thread, and
/// its result is not reported.
pub fn free(mut memory: DeviceMemory) -> Result<()> {
    memory.release_in_place()
}

/// `aclrtGetMemInfo(ACL_HBM_MEM, &free, &total)` with `retain`'s context bound: the device's
/// free and total bytes.
///
/// # Errors
/// The runtime's code.
pub fn get_mem_info(retain: &Retain) -> Result<(u64, u64)> {
    retain.bind()?;
    let (mut free, mut total) = (0usize, 0usize);
    // SAFETY: both out-pointers are live locals.
    let code = unsafe { (retain.lib().aclrtGetMemInfo)(ACL_HBM_MEM, &mut free, &mut total) };
    check(retain.lib(), code, "aclrtGetMemInfo")?;
    Ok((free as u64, total as u64))
}

// ---------------------------------------------------------------------------------------------
// Synchronous copies and sets (M2: complete before they return).

/// `aclrtMemcpy(dst, dst.len(), src, src.len(), HOST_TO_DEVICE)` with `retain`'s context bound.
///
/// # Errors
/// `RT_PARAM_INVALID` (107000) before the runtime is called when `dst` is not inside live memory
/// this process allocated (M2, M5) or is shorter than `src`; otherwise the runtime's code.
pub fn copy_h2d(retain: &Retain, dst: DeviceRange<'_>, src: &[u8]) -> Result<()> {
    let _dst = retain.session.ranges.enter(&dst, Access::Own, None)?;
    if src.len() > dst.len() {
        return Err(too_long(src.len(), dst.len()));
    }
    retain.bind()?;
    // SAFETY: `dst` lies inside a live allocation of this session for `dst.len()` bytes
    // (checked, and held in the registry until this call returns); `src` is a live slice of
    // `src.len() <= dst.len()` bytes, borrowed for the whole call, which completes before it
    // returns (M2).
    let code = unsafe {
        (retain.lib().aclrtMemcpy)(
            dev_ptr(dst.addr()),
            dst.len(),
            src.as_ptr().cast(),
            src.len(),
            ACL_MEMCPY_HOST_TO_DEVICE,
        )
    };
    check(retain.lib(), code, "aclrtMemcpy")
}

/// `aclrtMemcpy(dst, dst.len(), src, src.len(), DEVICE_TO_HOST)` with `retain`'s context bound.
///
/// # Errors
/// `RT_PARAM_INVALID` (107000) before the runtime is called when `src` is not inside live memory
/// this process allocated (M2, M5) or `dst` is shorter than `src`; otherwise the runtime's code.
pub fn copy_d2h(retain: &Retain, dst: &mut [u8], src: DeviceRange<'_>) -> Result<()> {
    let _src = retain.session.ranges.enter(&src, Access::Own, None)?;
    if src.len() > dst.len() {
        return Err(too_long(src.len(), dst.len()));
    }
    retain.bind()?;
    // SAFETY: `dst` is a live, exclusively borrowed slice of `dst.len() >= src.len()` bytes for
    // the whole call, which completes before it returns (M2) and writes at most `src.len()`
    // bytes; `src` lies inside a live allocation of this session (checked, held until return).
    let code = unsafe {
        (retain.lib().aclrtMemcpy)(
            dst.as_mut_ptr().cast(),
            dst.len(),
            dev_ptr(src.addr()).cast_const(),
            src.len(),
            ACL_MEMCPY_DEVICE_TO_HOST,
        )
    };
    check(retain.lib(), code, "aclrtMemcpy")
}

/// `aclrtMemcpy(dst, dst.len(), src, src.len(), DEVICE_TO_DEVICE)` with `retain`'s context
/// bound.
///
/// # Errors
/// `RT_PARAM_INVALID` (107000) before the runtime is called when either range is not inside live
/// memory this process allocated (M2, M5) or `dst` is shorter than `src`; otherwise the
/// runtime's code (107000 for another device without peer access).
pub fn copy_d2d(retain: &Retain, dst: DeviceRange<'_>, src: DeviceRange<'_>) -> Result<()> {
    let ranges = &retain.session.ranges;
    let _dst = ranges.enter(&dst, Access::Own, None)?;
    let _src = ranges.enter(&src, Access::Own, None)?;
    if src.len() > dst.len() {
        return Err(too_long(src.len(), dst.len()));
    }
    retain.bind()?;
    // SAFETY: both ranges lie inside live allocations of this session for their lengths
    // (checked, held until return), and at most `src.len() <= dst.len()` bytes are copied; no
    // host memory is involved.
    let code = unsafe {
        (retain.lib().aclrtMemcpy)(
            dev_ptr(dst.addr()),
            dst.len(),
            dev_ptr(src.addr()).cast_const(),
            src.len(),
            ACL_MEMCPY_DEVICE_TO_DEVICE,
        )
    };
    check(retain.lib(), code, "aclrtMemcpy")
}

/// `aclrtMemset(dst, dst.len(), value, dst.len())` with `retain`'s context bound.
///
/// # Errors
/// `RT_PARAM_INVALID` (107000) before the runtime is called when `dst` is not inside live memory
/// this process allocated (M2, M5); otherwise the runtime's code.
pub fn memset(retain: &Retain, dst: DeviceRange<'_>, value: u8) -> Result<()> {
    let _dst = retain.session.ranges.enter(&dst, Access::Own, None)?;
    retain.bind()?;
    // SAFETY: `dst` lies inside a live allocation of this session for `dst.len()` bytes
    // (checked, held until return), and exactly that many are set.
    let code = unsafe {
        (retain.lib().aclrtMemset)(dev_ptr(dst.addr()), dst.len(), i32::from(value), dst.len())
    };
    check(retain.lib(), code, "aclrtMemset")
}

// ---------------------------------------------------------------------------------------------
// Stream copies and sets (M2: stream tasks).

/// `aclrtMemcpyAsync(dst, dst.len(), src, src.len(), kind, stream)` for two device ranges, with
/// the stream's context bound.
///
/// # Errors
/// `RT_PARAM_INVALID` (107000) before the runtime is called when either range is not inside live
/// memory of this process (allocated or imported, M2) or `dst` is shorter than `src`; otherwise
/// the runtime's code.
pub fn copy_d2d_async(stream: &Stream, dst: DeviceRange<'_>, src: DeviceRange<'_>) -> Result<()> {
    let retain = &stream.retain;
    let ranges = &retain.session.ranges;
    let _dst = ranges.enter(&dst, Access::OwnOrImported, Some(retain))?;
    let _src = ranges.enter(&src, Access::OwnOrImported, Some(retain))?;
    if src.len() > dst.len() {
        return Err(too_long(src.len(), dst.len()));
    }
    retain.bind()?;
    // SAFETY: both ranges lie inside live memory of this session (checked, held until the task
    // is enqueued); the registry now names the stream's device, so releasing either range first
    // synchronizes it and the queued task cannot outlive the memory (M6). `stream.raw` is NULL
    // (the bound context's default stream) or a live stream made under `retain`.
    let code = unsafe {
        (retain.lib().aclrtMemcpyAsync)(
            dev_ptr(dst.addr()),
            dst.len(),
            dev_ptr(src.addr()).cast_const(),
            src.len(),
            ACL_MEMCPY_DEVICE_TO_DEVICE,
            stream.raw,
        )
    };
    check(retain.lib(), code, "aclrtMemcpyAsync")
}

/// `aclrtMemsetAsync(dst, dst.len(), value, dst.len(), stream)` with the stream's context bound.
///
/// # Errors
/// `RT_PARAM_INVALID` (107000) before the runtime is called when `dst` is not inside live memory
/// of this process (allocated or imported, M2); otherwise the runtime's code.
pub fn memset_async(stream: &Stream, dst: DeviceRange<'_>, value: u8) -> Result<()> {
    let retain = &stream.retain;
    let _dst = retain
        .session
        .ranges
        .enter(&dst, Access::OwnOrImported, Some(retain))?;
    retain.bind()?;
    // SAFETY: as in `copy_d2d_async`, for one range of `dst.len()` bytes, all of which are set.
    let code = unsafe {
        (retain.lib().aclrtMemsetAsync)(
            dev_ptr(dst.addr()),
            dst.len(),
            i32::from(value),
            dst.len(),
            stream.raw,
        )
    };
    check(retain.lib(), code, "aclrtMemsetAsync")
}

/// Host bytes a queued copy reads: a `T` moved to the heap and never moved or touched again
/// until [`Kept::release`]. It has no destructor, so dropping a `Kept` without releasing it
/// leaks the bytes; only the task that runs after the copy releases them.
struct Kept<T> {
    ptr: NonNull<T>,
}

// SAFETY: a `Kept<T>` owns its `T` (a `Box` turned into a pointer), so it may go to another
// thread when `T` may; nothing is shared with the thread that made it.
unsafe impl<T: Send> Send for Kept<T> {}

impl<T: AsRef<[u8]>> Kept<T> {
    fn new(value: T) -> Self {
        let raw = Box::into_raw(Box::new(value));
        // SAFETY: `Box::into_raw` never returns NULL.
        let ptr = unsafe { NonNull::new_unchecked(raw) };
        Self { ptr }
    }

    /// The bytes' address and length, from one call of `as_ref`. They stay valid (the `T` does
    /// not move and is not dropped) until `release`.
    fn bytes(&self) -> (*const u8, usize) {
        // SAFETY: `ptr` came from `Box::into_raw` and is released only by `release`, which
        // consumes `self`; a shared reference to the `T` for this call aliases nothing mutable.
        let bytes: &[u8] = unsafe { self.ptr.as_ref() }.as_ref();
        (bytes.as_ptr(), bytes.len())
    }

    /// Drops the `T`.
    ///
    /// # Safety
    /// No task still reads the bytes: the copy was never enqueued, or it has run.
    unsafe fn release(self) {
        // SAFETY: `ptr` came from `Box::into_raw`; `self` is consumed, so this runs once.
        drop(unsafe { Box::from_raw(self.ptr.as_ptr()) });
    }
}

/// `aclrtMemcpyAsync(dst, dst.len(), src, len, HOST_TO_DEVICE, stream)` with the stream's context
/// bound, then a host function that drops `src`: the stream owns the bytes until the copy ran.
///
/// If the copy cannot be enqueued, `src` is dropped at once. If the copy was enqueued but the
/// host function cannot be, `src` is leaked (never freed under the pending copy) and the error
/// returned; the copy still runs.
///
/// # Errors
/// `RT_PARAM_INVALID` (107000) before the runtime is called when `dst` is not inside live memory
/// this process allocated (M2, M5) or is shorter than `src`; otherwise the runtime's code.
pub fn copy_h2d_async<T>(stream: &Stream, dst: DeviceRange<'_>, src: T) -> Result<()>
where
    T: AsRef<[u8]> + Send + 'static,
{
    let retain = &stream.retain;
    let in_use = retain
        .session
        .ranges
        .enter(&dst, Access::Own, Some(retain))?;
    retain.bind()?;
    let kept = Kept::new(src);
    let (bytes, len) = kept.bytes();
    // On the failure paths the range is let go before `src` is dropped: `src` may own the last
    // reference to memory whose release waits for the uses in flight.
    if len > dst.len() {
        drop(in_use);
        // SAFETY: nothing was enqueued.
        unsafe { kept.release() };
        return Err(too_long(len, dst.len()));
    }
    // SAFETY: `dst` lies inside a live allocation of this session (checked, held until the task
    // is enqueued; the registry names the stream's device, so a release synchronizes it first,
    // M6). `bytes` is valid for `len` bytes until `kept` is released, which only the host
    // function below does, after the copy (stream order, R2), or the failure branch right after
    // this call, when nothing was enqueued. `stream.raw` is NULL (the bound context's default
    // stream) or a live stream made under `retain`.
    let code = unsafe {
        (retain.lib().aclrtMemcpyAsync)(
            dev_ptr(dst.addr()),
            dst.len(),
            bytes.cast(),
            len,
            ACL_MEMCPY_HOST_TO_DEVICE,
            stream.raw,
        )
    };
    if let Err(e) = check(retain.lib(), code, "aclrtMemcpyAsync") {
        drop(in_use);
        // SAFETY: the enqueue failed, so no task reads the bytes (M2: a refused async copy
        // enqueues nothing).
        unsafe { kept.release() };
        return Err(e);
    }
    // If this launch fails, the closure is dropped without running and `kept` (no destructor)
    // leaks the bytes, which the pending copy may still read.
    let launched = launch_host_func(
        stream,
        Box::new(move || {
            // SAFETY: this host function runs after the copy enqueued before it on the same
            // stream has finished (R2: in order, the next task starts after the previous one).
            unsafe { kept.release() }
        }),
    );
    drop(in_use);
    launched
}

/// `aclrtMemcpyAsync(buf, len, src, len, DEVICE_TO_HOST, stream)` into a new `Vec` of
/// `src.len()` bytes, with the stream's context bound, then a host function that sends the `Vec`
/// through the returned channel (`sync_channel(1)`): the stream owns the buffer until the copy
/// ran.
///
/// If the copy cannot be enqueued, the buffer is dropped at once. If the copy was enqueued but the
/// host function cannot be, the buffer is leaked (never freed under the pending copy) and the
/// error returned.
///
/// # Errors
/// `RT_PARAM_INVALID` (107000) before the runtime is called when `src` is not inside live memory
/// this process allocated (M2, M5); otherwise the runtime's code.
pub fn copy_d2h_async(stream: &Stream, src: DeviceRange<'_>) -> Result<mpsc::Receiver<Vec<u8>>> {
    let retain = &stream.retain;
    let _src = retain
        .session
        .ranges
        .enter(&src, Access::Own, Some(retain))?;
    retain.bind()?;
    let len = src.len();
    // `ManuallyDrop`: only the host function below gives the buffer back to ownership.
    let mut buf = ManuallyDrop::new(vec![0u8; len]);
    let dst = buf.as_mut_ptr();
    // SAFETY: `dst` is valid for writing `len` bytes until the buffer is dropped, which only the
    // host function below does, after the copy (R2), or the failure branch right after this
    // call, when nothing was enqueued; moving the `Vec` does not move its heap buffer. `src` and
    // `stream.raw` as in `copy_h2d_async`.
    let code = unsafe {
        (retain.lib().aclrtMemcpyAsync)(
            dst.cast(),
            len,
            dev_ptr(src.addr()).cast_const(),
            len,
            ACL_MEMCPY_DEVICE_TO_HOST,
            stream.raw,
        )
    };
    if let Err(e) = check(retain.lib(), code, "aclrtMemcpyAsync") {
        // Nothing was enqueued (M2), so nothing writes into it.
        drop(ManuallyDrop::into_inner(buf));
        return Err(e);
    }
    let (tx, rx) = mpsc::sync_channel(1);
    // If this launch fails, the closure is dropped without running, and with it the sender (the
    // receiver sees a disconnect) but not the buffer, which the pending copy may still write.
    launch_host_func(
        stream,
        Box::new(move || {
            // This host function runs after the copy has finished (R2): the bytes are ours.
            let bytes = ManuallyDrop::into_inner(buf);
            let _ = tx.send(bytes);
        }),
    )?;
    Ok(rx)
}

// ---------------------------------------------------------------------------------------------
// IPC memory (M3–M6).

/// A key `aclrtIpcMemGetExportKey` wrote for a range of this process's memory. Dropping it
/// closes the key (`aclrtIpcMemClose` in the exporter: later imports fail, existing ones keep
/// working, M6) and ignores the error; [`ipc_mem_close_export`] reports it.
pub struct MemExport {
    retain: Arc<Retain>,
    key: ExportKey,
    closed: bool,
}

impl MemExport {
    /// The key to give importers.
    pub fn key(&self) -> &ExportKey {
        &self.key
    }

    /// The retain (context) it was exported under.
    pub fn retain(&self) -> &Arc<Retain> {
        &self.retain
    }

    fn close_in_place(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.closed, true) {
            return Ok(());
        }
        close_key(&self.retain, &self.key)
    }
}

impl Drop for MemExport {
    fn drop(&mut self) {
        let _ = self.close_in_place();
    }
}

impl fmt::Debug for MemExport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemExport")
            .field("device", &self.retain.device())
            .field("key", &self.key)
            .finish()
    }
}

/// `aclrtIpcMemClose(key)` with `retain`'s context bound.
fn close_key(retain: &Retain, key: &ExportKey) -> Result<()> {
    retain.bind()?;
    let buf = key.to_c_buf();
    // SAFETY: `buf` is a live NUL-terminated buffer of 65 bytes.
    let code = unsafe { (retain.lib().aclrtIpcMemClose)(buf.as_ptr().cast::<c_char>()) };
    check(retain.lib(), code, "aclrtIpcMemClose")
}

/// `aclrtIpcMemGetExportKey(range, range.len(), buf, 65, flags)` with `retain`'s context bound.
///
/// # Errors
/// `RT_PARAM_INVALID` (107000) before the runtime is called when `range` is not inside live
/// memory this process allocated (M2, M5: an import cannot be exported); otherwise the runtime's
/// code (107000 for a range not on page boundaries, 507899 for an overlap with a live export,
/// 207000 in a virtualization instance).
pub fn ipc_mem_get_export_key(
    retain: &Arc<Retain>,
    range: DeviceRange<'_>,
    flags: u64,
) -> Result<MemExport> {
    let _range = retain.session.ranges.enter(&range, Access::Own, None)?;
    retain.bind()?;
    let mut buf = [0u8; EXPORT_KEY_LEN];
    // SAFETY: `range` lies inside a live allocation of this session (checked, held until
    // return); `buf` is a live, writable buffer of the length passed.
    let code = unsafe {
        (retain.lib().aclrtIpcMemGetExportKey)(
            dev_ptr(range.addr()),
            range.len(),
            buf.as_mut_ptr().cast::<c_char>(),
            buf.len(),
            flags,
        )
    };
    check(retain.lib(), code, "aclrtIpcMemGetExportKey")?;
    let key = ExportKey::from_c_buf(&buf)?;
    Ok(MemExport {
        retain: Arc::clone(retain),
        key,
        closed: false,
    })
}

/// `aclrtIpcMemSetImportPid(key, pids, pids.len())` with the export's context bound. An empty
/// slice still reaches the runtime (a non-NULL dangling pointer with `num == 0`), which refuses
/// it (107000, M4).
///
/// # Errors
/// The runtime's code.
pub fn ipc_mem_set_import_pid(export: &MemExport, pids: &[i32]) -> Result<()> {
    export.retain.bind()?;
    let buf = export.key.to_c_buf();
    // The C prototype takes a non-const array; give it one we own.
    let mut pids = pids.to_vec();
    // SAFETY: `buf` is a live NUL-terminated key buffer; `pids` is live for `pids.len()`
    // elements (a non-NULL dangling pointer when empty, which C sees only with `num == 0`).
    let code = unsafe {
        (export.retain.lib().aclrtIpcMemSetImportPid)(
            buf.as_ptr().cast::<c_char>(),
            pids.as_mut_ptr(),
            pids.len(),
        )
    };
    check(export.retain.lib(), code, "aclrtIpcMemSetImportPid")
}

/// Closes an export's key (`aclrtIpcMemClose` in the exporter, M6).
///
/// # Errors
/// The runtime's code (507899 in the simulator's strict mode while imports are open).
pub fn ipc_mem_close_export(mut export: MemExport) -> Result<()> {
    export.close_in_place()
}

/// Another process's memory, mapped by `aclrtIpcMemImportByKey` under a [`Retain`] and recorded
/// in its session's registry. Dropping it closes it (after its tasks, M6) and ignores the
/// error; [`ipc_mem_close_import`] reports it.
pub struct MemImport {
    retain: Arc<Retain>,
    key: ExportKey,
    addr: u64,
    len: usize,
    live: bool,
}

impl MemImport {
    /// The retain (context) it was imported under.
    pub fn retain(&self) -> &Arc<Retain> {
        &self.retain
    }

    /// The key it was imported with.
    pub fn key(&self) -> &ExportKey {
        &self.key
    }

    /// The device address of its first byte in this process.
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// Its length in bytes, as the importer declared it.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The whole import as a range (on the device it was imported under).
    pub fn range(&self) -> DeviceRange<'_> {
        DeviceRange::new(self.addr, self.len, DeviceId(self.retain.device()), true)
    }

    fn release_in_place(&mut self) -> Result<()> {
        if !std::mem::replace(&mut self.live, false) {
            return Ok(());
        }
        let key = self.key.clone();
        release(&self.retain, self.addr, move |retain| {
            close_key(retain, &key)
        })
    }
}

impl Drop for MemImport {
    fn drop(&mut self) {
        let _ = self.release_in_place();
    }
}

impl fmt::Debug for MemImport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemImport")
            .field("device", &self.retain.device())
            .field("key", &self.key)
            .field("addr", &format_args!("{:#x}", self.addr))
            .field("len", &self.len)
            .finish()
    }
}

/// `aclrtIpcMemImportByKey(&ptr, key, flags)` with `retain`'s context bound, recorded in the
/// session's registry as `len` bytes of imported memory.
///
/// The C call does not say how long the imported memory is; the exporter must tell the
/// importer, and `len` is what the range checks then accept (a longer one than the export lets
/// copies reach the runtime that fail on the device; host memory is never touched through it).
///
/// # Errors
/// The runtime's code (107000 for a malformed key; 507899 for an unknown or closed key, one this
/// process exported or imported, a caller not whitelisted, another device without peer access;
/// 207000 in a virtualization instance); `RT_INTERNAL_ERROR` (507000) for a NULL address reported
/// as success or one that overlaps live memory (then the import is closed again).
pub fn ipc_mem_import_by_key(
    retain: &Arc<Retain>,
    key: &ExportKey,
    flags: u64,
    len: usize,
) -> Result<MemImport> {
    retain.bind()?;
    let buf = key.to_c_buf();
    let mut ptr: *mut c_void = ptr::null_mut();
    // SAFETY: the out-pointer is a live local; `buf` is a live NUL-terminated key buffer.
    let code = unsafe {
        (retain.lib().aclrtIpcMemImportByKey)(&mut ptr, buf.as_ptr().cast::<c_char>(), flags)
    };
    check(retain.lib(), code, "aclrtIpcMemImportByKey")?;
    if ptr.is_null() {
        return Err(err!(
            RT_INTERNAL_ERROR,
            "aclrtIpcMemImportByKey reported success but returned NULL"
        ));
    }
    let addr = dev_addr(ptr);
    if let Err(e) = retain
        .session
        .ranges
        .insert(addr, len, true, retain.device())
    {
        // Nothing used the mapping yet: unmap it again.
        let _ = close_key(retain, key);
        return Err(e);
    }
    Ok(MemImport {
        retain: Arc::clone(retain),
        key: key.clone(),
        addr,
        len,
        live: true,
    })
}

/// Closes an import (`aclrtIpcMemClose` in the importer) after every task this process queued
/// on it ran (M6; see [`MemImport`]).
///
/// # Errors
/// The runtime's code. From a host function the close happens later on a helper thread, and its
/// result is not reported.
pub fn ipc_mem_close_import(mut import: MemImport) -> Result<()> {
    import.release_in_place()
}
