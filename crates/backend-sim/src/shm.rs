//! The OS side of the registry: the POSIX shared-memory segment, its mapping, and the lock files.
//!
//! This uses `rustix` directly rather than the `shared_memory` crate, which falls short here in
//! three ways: it does not expose the segment's file descriptor (we `flock` it as the registry
//! lock and `fstat` it to check the size), its owner unlinks the segment on drop (the segment's
//! life must follow our reference protocol, R8, not the first process's), and it cannot tell a
//! half-initialised segment from a ready one. All `unsafe` of the crate that touches memory lives
//! in [`Mapping`].

use std::ffi::c_void;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;

use notify_api::{AclError, Error, Result};
use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags};

use crate::registry::layout::{AllocSlot, ExportSlot, Header, NotifySlot, ProcSlot, WaitEntry};

/// The structs of the registry's layout: `#[repr(C)]`, made only of atomics, so that any bytes
/// are a valid value of them and concurrent writes by other processes are not UB. Only those
/// may be read from a [`Mapping`].
pub(crate) trait Shared {}
impl Shared for Header {}
impl Shared for ProcSlot {}
impl Shared for NotifySlot {}
impl Shared for AllocSlot {}
impl Shared for ExportSlot {}
impl Shared for WaitEntry {}

/// Where `shm_open` keeps segments on Linux; lock files live beside them (R9).
pub(crate) const SHM_DIR: &str = "/dev/shm";

/// The segment name of a namespace (without the leading `/`).
pub(crate) fn segment_name(ns: &str) -> String {
    format!("ascend-notify.{ns}")
}

/// The liveness lock file of proc slot `slot` attached with `nonce`.
pub(crate) fn proc_lock_path(ns: &str, slot: usize, nonce: u64) -> String {
    format!("{SHM_DIR}/{}.proc{slot}-{nonce:016x}", segment_name(ns))
}

/// The prefix every file of a namespace starts with, for cleanup.
pub(crate) fn file_prefix(ns: &str) -> String {
    format!("{}.", segment_name(ns))
}

pub(crate) fn os_error(what: &str, e: Errno) -> Error {
    Error::os(what, std::io::Error::from_raw_os_error(e.raw_os_error()))
}

/// Opens the segment; with `create`, creates it exclusively if it does not exist.
/// Returns the fd and whether this call created it.
pub(crate) fn open_segment(ns: &str, create: bool) -> Result<Option<(OwnedFd, bool)>> {
    let name = format!("/{}", segment_name(ns));
    let mode = Mode::RUSR | Mode::WUSR;
    loop {
        match rustix::shm::open(name.as_str(), rustix::shm::OFlags::RDWR, mode) {
            Ok(fd) => return Ok(Some((fd, false))),
            Err(Errno::NOENT) if create => {}
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(os_error(&format!("opening shared memory {name}"), e)),
        }
        let flags =
            rustix::shm::OFlags::RDWR | rustix::shm::OFlags::CREATE | rustix::shm::OFlags::EXCL;
        match rustix::shm::open(name.as_str(), flags, mode) {
            Ok(fd) => {
                // The umask may have narrowed the mode; it can never widen it, but make 0600 exact.
                rustix::fs::fchmod(&fd, mode).map_err(|e| os_error("fchmod", e))?;
                return Ok(Some((fd, true)));
            }
            // Another process created it between our two calls: open theirs.
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(os_error(&format!("creating shared memory {name}"), e)),
        }
    }
}

/// Creates a memory object (`name` without the leading `/`), exclusively, sized `len`.
pub(crate) fn create_object(name: &str, len: u64) -> Result<OwnedFd> {
    let flags = rustix::shm::OFlags::RDWR | rustix::shm::OFlags::CREATE | rustix::shm::OFlags::EXCL;
    let fd = rustix::shm::open(format!("/{name}").as_str(), flags, Mode::RUSR | Mode::WUSR)
        .map_err(|e| os_error(&format!("creating shared memory {name}"), e))?;
    if let Err(e) = rustix::fs::ftruncate(&fd, len) {
        let _ = unlink_object(name);
        return Err(os_error(&format!("sizing shared memory {name}"), e));
    }
    Ok(fd)
}

/// Opens an existing memory object; `None` if it is gone.
pub(crate) fn open_object(name: &str) -> Option<OwnedFd> {
    rustix::shm::open(
        format!("/{name}").as_str(),
        rustix::shm::OFlags::RDWR,
        Mode::empty(),
    )
    .ok()
}

/// Unlinks a memory object; `false` if it did not exist.
pub(crate) fn unlink_object(name: &str) -> bool {
    rustix::shm::unlink(format!("/{name}").as_str()).is_ok()
}

/// Unlinks the segment; `false` if it did not exist.
pub(crate) fn unlink_segment(ns: &str) -> Result<bool> {
    match rustix::shm::unlink(format!("/{}", segment_name(ns)).as_str()) {
        Ok(()) => Ok(true),
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(os_error("unlinking shared memory", e)),
    }
}

/// The names of every file of a namespace in [`SHM_DIR`]: the segment itself and every file
/// named `ascend-notify.<ns>.*` (R9: lock files; memory objects).
pub(crate) fn namespace_files(ns: &str) -> Vec<String> {
    let segment = segment_name(ns);
    let prefix = file_prefix(ns);
    let Ok(dir) = std::fs::read_dir(SHM_DIR) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| *n == segment || n.starts_with(&prefix))
        .collect()
}

/// Removes every file of a namespace but its segment (after the segment is gone, or to clean
/// up); returns how many it removed.
pub(crate) fn remove_namespace_files(ns: &str) -> usize {
    let segment = segment_name(ns);
    let sem_prefix = format!("{}sem", file_prefix(ns));
    namespace_files(ns)
        .into_iter()
        .filter(|n| *n != segment)
        .inspect(|n| {
            // The file that names the namespace's death-count semaphores (registry::deaths).
            if let Some(id) = n.strip_prefix(&sem_prefix).and_then(|id| id.parse().ok()) {
                sem_remove(id);
            }
        })
        .filter(|n| std::fs::remove_file(format!("{SHM_DIR}/{n}")).is_ok())
        .count()
}

/// The file that names namespace `ns`'s semaphore set `id`.
fn sem_file(ns: &str, id: i32) -> String {
    format!("{SHM_DIR}/{}sem{id}", file_prefix(ns))
}

/// Creates the file that names semaphore set `id` of namespace `ns`.
pub(crate) fn create_sem_file(ns: &str, id: i32) -> bool {
    let flags = OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC;
    rustix::fs::open(sem_file(ns, id).as_str(), flags, Mode::RUSR | Mode::WUSR).is_ok()
}

pub(crate) fn remove_sem_file(ns: &str, id: i32) {
    let _ = std::fs::remove_file(sem_file(ns, id));
}

/// Takes an exclusive `flock`, retrying on `EINTR`.
pub(crate) fn flock(fd: impl AsFd, op: FlockOperation) -> rustix::io::Result<()> {
    loop {
        match rustix::fs::flock(fd.as_fd(), op) {
            Err(Errno::INTR) => continue,
            other => return other,
        }
    }
}

/// Creates this process's liveness lock file and locks it for the process's lifetime (R9).
pub(crate) fn create_proc_lock(path: &str) -> Result<OwnedFd> {
    let fd = open_lock_file(path)?;
    flock(&fd, FlockOperation::NonBlockingLockExclusive)
        .map_err(|e| os_error(&format!("locking {path} (another process holds it)"), e))?;
    Ok(fd)
}

/// Shards of the namespace's liveness file.
pub(crate) const ALIVE_SHARDS: u32 = 64;

/// Shard `shard` of the namespace's liveness file: every attached process holds a shared
/// `flock` on the shard of its process slot (`slot % ALIVE_SHARDS`) for its lifetime, so
/// whether any process of the namespace is alive is known without trusting the segment (R9,
/// R14). Sharded because the kernel walks every lock of a file to take or drop one: with one
/// file, an attach and a detach among 1,000 processes walked 1,000 locks each.
pub(crate) fn alive_path(ns: &str, shard: u32) -> String {
    format!("{SHM_DIR}/{}.alive{shard}", segment_name(ns))
}

/// Opens (creating if needed) a file of the namespace for locking.
pub(crate) fn open_lock_file(path: &str) -> Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC,
        Mode::RUSR | Mode::WUSR,
    )
    .map_err(|e| os_error(&format!("opening {path}"), e))
}

/// Whether the process that locked `fd`'s file is still alive: the kernel drops an `flock`
/// when its holder dies, so a lock we can take means a dead holder.
pub(crate) fn holder_alive(fd: &OwnedFd) -> bool {
    match flock(fd, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {
            let _ = flock(fd, FlockOperation::Unlock);
            false
        }
        Err(Errno::WOULDBLOCK) => true,
        // Anything else: we cannot prove it dead, and reclaiming a live process would harm it.
        Err(_) => true,
    }
}

/// Opens another process's lock file to probe it; `None` if it does not exist (its holder died
/// before creating it, or a reclaimer removed it part way: dead too).
pub(crate) fn open_peer_lock(path: &str) -> Option<OwnedFd> {
    rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()
}

/// `CLOCK_BOOTTIME` in nanoseconds: the clock process start times count in (R7).
pub(crate) fn boot_ns() -> u64 {
    crate::clock::boottime_ns()
}

/// When this process started, in `CLOCK_BOOTTIME` nanoseconds (field 22 of `/proc/self/stat`,
/// in clock ticks since boot); `None` if `/proc` cannot tell.
pub(crate) fn process_start_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let ticks: u64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    // SAFETY: `sysconf` reads a constant of the C library and touches no memory of ours.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|&h| h > 0)?;
    Some(ticks.saturating_mul(1_000_000_000) / hz)
}

/// The inode of this process's PID namespace (`/proc/self/ns/pid`), `0` if unknown (R16).
pub(crate) fn pid_namespace() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid").map_or(0, |m| m.ino())
}

/// The size of the segment behind `fd`, and its link count (0 once unlinked).
pub(crate) fn segment_stat(fd: &OwnedFd) -> Result<(u64, u64)> {
    rustix::fs::fstat(fd)
        // `nlink_t` is u64 on x86_64 but u32 elsewhere.
        .map(|st| {
            #[allow(clippy::useless_conversion)]
            let links = u64::from(st.st_nlink);
            (st.st_size as u64, links)
        })
        .map_err(|e| os_error("fstat on the registry", e))
}

/// A shared, read-write mapping of a whole registry segment.
///
/// Invariant: `ptr` is the start of a live `MAP_SHARED` mapping of `len` bytes, page-aligned,
/// unmapped only in `Drop`. The registry's structs are all atomics (see `layout`), so any byte
/// pattern is a valid value of them and concurrent writes by other processes are not UB.
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory accessed only through atomics; it has no thread
// affinity, and `Mapping` hands out only shared references to atomic structs.
unsafe impl Send for Mapping {}
// SAFETY: as above: every access goes through atomics, so sharing `&Mapping` is sound.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `fd`.
    pub(crate) fn new(fd: &OwnedFd, len: u64) -> Result<Self> {
        let len = usize::try_from(len)
            .map_err(|_| Error::new(AclError::RT_INTERNAL_ERROR, "registry too large"))?;
        if len < size_of::<Header>() {
            return Err(Error::new(
                AclError::RT_INTERNAL_ERROR,
                "registry smaller than its header",
            ));
        }
        // SAFETY: a fresh mapping at an address the kernel picks, of a file we hold open; no
        // existing Rust memory is affected.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                0,
            )
        }
        .map_err(|e| os_error("mapping the registry", e))?;
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| Error::new(AclError::RT_INTERNAL_ERROR, "mmap gave NULL"))?;
        Ok(Self { ptr, len })
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// A `T` at byte `offset`, if it lies wholly inside the mapping and is aligned.
    fn at<T: Shared>(&self, offset: u64) -> Option<&T> {
        let offset = usize::try_from(offset).ok()?;
        let end = offset.checked_add(size_of::<T>())?;
        if end > self.len || offset % align_of::<T>() != 0 {
            return None;
        }
        // SAFETY: in bounds and aligned (checked above; the base is page-aligned); `T: Shared` is
        // one of the all-atomic layout structs, valid for any bytes and safe to share; the
        // reference lives no longer than `&self`, and the mapping outlives `self`.
        Some(unsafe { &*self.ptr.as_ptr().add(offset).cast::<T>() })
    }

    pub(crate) fn header(&self) -> &Header {
        self.at(0).expect("Mapping::new checked the header fits")
    }

    pub(crate) fn proc_slot(&self, procs_offset: u64, index: usize) -> Option<&ProcSlot> {
        self.at(procs_offset.checked_add((index as u64).checked_mul(size_of::<ProcSlot>() as u64)?)?)
    }

    /// Entry `index` of a table of `T`s that starts at byte `base`.
    pub(crate) fn entry<T: Shared>(&self, base: u64, index: u64) -> Option<&T> {
        self.at(base.checked_add(index.checked_mul(size_of::<T>() as u64)?)?)
    }

    pub(crate) fn notify_slot(&self, notifies_offset: u64, flat_index: u64) -> Option<&NotifySlot> {
        self.at(
            notifies_offset.checked_add(flat_index.checked_mul(size_of::<NotifySlot>() as u64)?)?
        )
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `new` with this pointer and length, and no reference
        // into it outlives `self` (they borrow from it).
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast::<c_void>(), self.len) };
    }
}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapping").field("len", &self.len).finish()
    }
}

/// A range of address space with no access rights (`PROT_NONE`, never backed): device addresses
/// live in it, so a host load or store through one faults (M1).
pub(crate) struct Reservation {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the reservation is never read or written through; it is an address range only.
unsafe impl Send for Reservation {}
// SAFETY: as above.
unsafe impl Sync for Reservation {}

impl Reservation {
    pub(crate) fn new(len: u64) -> Result<Self> {
        let len = usize::try_from(len)
            .map_err(|_| Error::new(AclError::RT_INTERNAL_ERROR, "reservation too large"))?;
        // SAFETY: a fresh anonymous mapping at an address the kernel picks; no existing memory
        // is affected, and nothing is ever read or written through it.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::empty(),
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )
        }
        .map_err(|e| os_error("reserving device addresses", e))?;
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| Error::new(AclError::RT_INTERNAL_ERROR, "mmap gave NULL"))?;
        Ok(Self { ptr, len })
    }

    pub(crate) fn base(&self) -> u64 {
        self.ptr.as_ptr().addr() as u64
    }

    pub(crate) fn len(&self) -> u64 {
        self.len as u64
    }

    pub(crate) fn contains(&self, addr: u64) -> bool {
        addr >= self.base() && addr - self.base() < self.len()
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // SAFETY: made by `new` with this pointer and length; nothing refers into it.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast::<c_void>(), self.len) };
    }
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("base", &format_args!("{:#x}", self.base()))
            .field("len", &self.len)
            .finish()
    }
}

/// A shared read-write mapping of bytes `offset..offset + len` of a memory object: the host
/// side of device memory, which only the runtime's copies and sets touch.
pub(crate) struct ObjectMap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: plain shared memory; every access is a copy or set of the runtime, which the streams
// order as the device would (R2), and races between processes are the program's, as on the NPU.
unsafe impl Send for ObjectMap {}
// SAFETY: as above.
unsafe impl Sync for ObjectMap {}

impl ObjectMap {
    pub(crate) fn new(fd: &OwnedFd, offset: u64, len: u64) -> Result<Self> {
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l > 0)
            .ok_or_else(|| Error::new(AclError::RT_INTERNAL_ERROR, "bad object mapping length"))?;
        // SAFETY: a fresh mapping at an address the kernel picks, of an object we hold open, at
        // a page-aligned offset (allocations and exports are page-aligned, M1/M3).
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                offset,
            )
        }
        .map_err(|e| os_error("mapping device memory", e))?;
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| Error::new(AclError::RT_INTERNAL_ERROR, "mmap gave NULL"))?;
        Ok(Self { ptr, len })
    }

    /// The address of byte `offset` (`offset <= len`; callers check ranges first).
    pub(crate) fn at(&self, offset: usize) -> *mut u8 {
        self.ptr.as_ptr().wrapping_add(offset.min(self.len))
    }
}

impl Drop for ObjectMap {
    fn drop(&mut self) {
        // SAFETY: made by `new` with this pointer and length; the last `Arc<Region>` (and with
        // it every pointer a pending copy could use) is gone.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast::<c_void>(), self.len) };
    }
}

impl std::fmt::Debug for ObjectMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectMap").field("len", &self.len).finish()
    }
}

/// Host memory of `aclrtMallocHost`: an anonymous, page-aligned read-write mapping.
pub(crate) struct HostMap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: ordinary memory handed to the caller; this type only keeps it for the free.
unsafe impl Send for HostMap {}
// SAFETY: as above.
unsafe impl Sync for HostMap {}

impl HostMap {
    pub(crate) fn new(len: usize) -> Result<Self> {
        // SAFETY: a fresh anonymous mapping at an address the kernel picks.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len.max(1),
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        }
        .map_err(|e| {
            if e == Errno::NOMEM {
                notify_api::err!(M1: RT_MEMORY_ALLOCATION, "no host memory for {len} bytes")
            } else {
                os_error("allocating host memory", e)
            }
        })?;
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| Error::new(AclError::RT_INTERNAL_ERROR, "mmap gave NULL"))?;
        Ok(Self {
            ptr,
            len: len.max(1),
        })
    }

    pub(crate) fn addr(&self) -> usize {
        self.ptr.as_ptr().addr()
    }
}

impl Drop for HostMap {
    fn drop(&mut self) {
        // SAFETY: made by `new` with this pointer and length; the caller freed it
        // (`aclrtFreeHost`) or the session ended.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast::<c_void>(), self.len) };
    }
}

impl std::fmt::Debug for HostMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostMap").field("len", &self.len).finish()
    }
}

/// A new private System V semaphore set of `n` semaphores, all 0, mode 0600; `None` where
/// System V IPC is not available.
pub(crate) fn sem_create(n: i32) -> Option<i32> {
    // SAFETY: `semget` takes plain integers and touches no memory of ours.
    let id = unsafe { libc::semget(libc::IPC_PRIVATE, n, libc::IPC_CREAT | 0o600) };
    (id >= 0).then_some(id)
}

/// Adds `delta` to semaphore `num` of set `id`, undone by the kernel when this process exits
/// (`SEM_UNDO`), never blocking; `false` if the set is gone or not ours.
pub(crate) fn sem_add(id: i32, num: u16, delta: i16) -> bool {
    let mut op = libc::sembuf {
        sem_num: num,
        sem_op: delta,
        sem_flg: (libc::SEM_UNDO | libc::IPC_NOWAIT) as i16,
    };
    loop {
        // SAFETY: `op` is one valid `sembuf` for the duration of the call.
        let rc = unsafe { libc::semop(id, &mut op, 1) };
        if rc == 0 {
            return true;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return false;
        }
    }
}

/// The value of semaphore `num` of set `id`; `None` if the set is gone or not ours.
pub(crate) fn sem_value(id: i32, num: i32) -> Option<u32> {
    // SAFETY: `GETVAL` takes no fourth argument and touches no memory of ours.
    let v = unsafe { libc::semctl(id, num, libc::GETVAL) };
    u32::try_from(v).ok()
}

/// Removes semaphore set `id` (a no-op if it is gone).
pub(crate) fn sem_remove(id: i32) {
    // SAFETY: `IPC_RMID` takes no fourth argument and touches no memory of ours.
    let _ = unsafe { libc::semctl(id, 0, libc::IPC_RMID) };
}
