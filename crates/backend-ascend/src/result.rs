//! `result`: each C call of [`crate::sys`] that this crate uses, as a Rust function returning
//! [`Result`], and the owners that make the handle-taking calls safe.
//!
//! # Codes
//! Every call maps its code with [`check`]: `ACL_SUCCESS` is `Ok`, anything else is
//! [`Error::Acl`] with the code, no rule (the real runtime does not say which rule refused a
//! call, and its text is not parsed for one) and, as the reason, the text `aclGetRecentErrMsg`
//! gives for the failure (`SEMANTICS.md` §2).
//!
//! # Why owners live here
//! A raw `aclrtStream` or `aclrtNotify` is a pointer into the vendor runtime, which dereferences
//! it: passing one that is destroyed, belongs to another loaded library, or outlived
//! `aclResetDevice`/`aclFinalize` is undefined behaviour inside the runtime. So the handle-taking
//! calls here do not take raw handles; they take owners whose construction proves the handle is
//! live, and each `// SAFETY:` comment can say why from this module alone:
//! - [`Session`]: one `aclInit` of one loaded library; `aclFinalize` runs when the last reference
//!   goes (see [`Session::open`] for the reference counting across sessions);
//! - [`Retain`]: one `aclrtSetDevice` of one device, with the context it made current; it holds
//!   its session, and `aclrtResetDevice` runs when the last reference goes;
//! - [`Retain`] also stands for a context made by `aclrtCreateContext` ([`Retain::create_context`]):
//!   it holds the device retain it was made under, and `aclrtDestroyContext` runs when its last
//!   reference goes;
//! - [`Stream`], [`Notify`], [`Event`]: a handle this module created or imported under a
//!   [`Retain`], which they hold. They are not `Clone`, and destroying consumes them, so a handle
//!   is destroyed once and never used afterwards;
//! - [`DeviceMemory`], [`MemImport`], [`MemExport`]: device memory this module allocated or
//!   imported, and a key it exported. Every device address this module hands to the runtime is
//!   first checked against the session's registry of live ranges (see [`memory`](self#memory)).
//!
//! So while a `Stream` or `Notify` exists its device is retained and its runtime initialized,
//! and nothing safe in this module can end either early. The typed API at the crate root adds
//! the trait implementations, one [`Retain`] per live device, and the stream helpers; it has no
//! `unsafe` of its own.
//!
//! # Binding
//! The C API keeps a current context per thread (R13, C1). Every call here that needs one first
//! binds its retain's context to the calling thread ([`Retain::bind`]): a thread-local holds the
//! unique id of the [`Retain`] bound last, and `aclrtSetCurrentContext` runs only when it
//! differs. The id, not the context pointer, is compared, because the runtime may hand out the
//! same pointer again for a new context after a device was reset. Every call of this module that
//! changes the thread's context behind that cache ([`set_device`], [`set_current_context`],
//! [`reset_device`], and a failed bind) clears it, so the next bind calls the runtime again.
//! Foreign code that changes the context of a thread itself (another library calling
//! `aclrtSetDevice`) is not seen; [`Retain::bind_now`] rebinds unconditionally.
//!
//! # Memory
//! A [`DeviceRange`](notify_api::DeviceRange) can be built by anyone (`DeviceRange::new` is
//! public), so a range says nothing by itself. Each [`Session`] keeps the ranges this module
//! allocated or imported (start → length, imported, device) and every call that passes a device
//! address to the runtime first checks that the whole range lies inside one of them, else
//! refuses with `RT_PARAM_INVALID` (107000, M2) before the runtime is called. A use holds its
//! range in the registry for the length of the call (a count, not a lock: nothing is held while
//! the runtime runs), and a release first withdraws the range (no new use passes), waits for the
//! uses in flight, synchronizes every device whose streams were given a task on it, and only
//! then calls `aclrtFree`/`aclrtIpcMemClose` (M6). Host memory given to an asynchronous copy is
//! owned by the stream until the copy has run: a host function enqueued after the copy releases
//! it, and if that host function cannot be enqueued the memory is leaked rather than freed
//! under a pending copy.
//!
//! # Host functions
//! [`launch_host_func`] passes a boxed closure as `args` to one `extern "C"` trampoline, which
//! takes the box back, runs the closure under `catch_unwind` (a panic never unwinds into C; it
//! fails the stream's next synchronize with 507000, H1) and drops it.

use std::cell::Cell;
use std::ffi::{CStr, c_char};
use std::fmt;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use notify_api::{AclError, EXPORT_KEY_LEN, Error, ExportKey, Result, err};

use crate::sys::{
    ACL_ERROR_REPEAT_INITIALIZE, ACL_SUCCESS, AclLib, aclError, aclrtContext, aclrtNotify,
    aclrtStream,
};

mod event;
mod host_fn;
mod memory;

pub use event::{
    Event, create_event, destroy_event, event_elapsed_time, query_event_status, record_event,
    reset_event, stream_wait_event, synchronize_event,
};
pub(crate) use host_fn::{PanicFlag, Panics};
pub use host_fn::{in_host_fn, launch_host_func};
pub(crate) use memory::Ranges;
pub use memory::{
    DeviceMemory, MemExport, MemImport, copy_d2d, copy_d2d_async, copy_d2h, copy_d2h_async,
    copy_h2d, copy_h2d_async, free, get_mem_info, ipc_mem_close_export, ipc_mem_close_import,
    ipc_mem_get_export_key, ipc_mem_import_by_key, ipc_mem_set_import_pid, malloc, memset,
    memset_async,
};

/// Maps the code `call` returned to a `Result`.
///
/// On failure the reason is this thread's `aclGetRecentErrMsg()`, read at once (before any other
/// call can replace it); when that is NULL or empty, a generic text that names `call` and the
/// code.
///
/// Inlined so that a success costs one compare at the call site; reading the message is out of
/// line (every hot call goes through here, `record` among them).
///
/// # Errors
/// [`Error::Acl`] with the code and `rule: None` when `code` is not `ACL_SUCCESS`.
#[inline]
pub fn check(lib: &AclLib, code: aclError, call: &str) -> Result<()> {
    if code == ACL_SUCCESS {
        return Ok(());
    }
    Err(failure(lib, code, call))
}

#[cold]
#[inline(never)]
fn failure(lib: &AclLib, code: aclError, call: &str) -> Error {
    error_for(code, recent_err_msg(lib), call)
}

/// The error for a failed `call`, given the message text the runtime left (if any).
pub(crate) fn error_for(code: aclError, message: Option<String>, call: &str) -> Error {
    let code = AclError::from_raw(code);
    let reason = match message {
        Some(text) if !text.trim().is_empty() => text.trim_end().to_owned(),
        _ => format!("{call} failed with {code}; aclGetRecentErrMsg gave no text"),
    };
    Error::new(code, reason)
}

/// `aclGetRecentErrMsg()`: this thread's last error text, copied, or `None` for NULL.
pub fn recent_err_msg(lib: &AclLib) -> Option<String> {
    // SAFETY: no arguments; the C contract returns NULL or a NUL-terminated string.
    let text: *const c_char = unsafe { (lib.aclGetRecentErrMsg)() };
    if text.is_null() {
        return None;
    }
    // SAFETY: non-NULL, so a NUL-terminated string owned by the runtime and valid until the next
    // ACL call on this thread; it is copied here before any such call.
    let text = unsafe { CStr::from_ptr(text) };
    Some(text.to_string_lossy().into_owned())
}

// ---------------------------------------------------------------------------------------------
// Process-wide calls on plain values.

/// What `aclInit` found.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Init {
    /// This call initialized the runtime; whoever made it should call `aclFinalize`.
    Initialized,
    /// The runtime was already initialized by another part of the process
    /// (`ACL_ERROR_REPEAT_INITIALIZE`, 100002); it is usable, and not ours to finalize.
    AlreadyInitialized,
}

/// `aclInit(NULL)`.
///
/// # Errors
/// [`Error::Acl`] with the runtime's code for any failure but `REPEAT_INITIALIZE` (which is
/// [`Init::AlreadyInitialized`]).
pub fn init(lib: &AclLib) -> Result<Init> {
    // SAFETY: a NULL config path is allowed (SEMANTICS.md §1).
    let code = unsafe { (lib.aclInit)(ptr::null()) };
    if code == ACL_ERROR_REPEAT_INITIALIZE {
        return Ok(Init::AlreadyInitialized);
    }
    check(lib, code, "aclInit").map(|()| Init::Initialized)
}

/// `aclFinalize()`.
///
/// [`Session`] calls it when its last reference goes; this is the C-level call for code that
/// manages `aclInit` itself.
///
/// # Safety
/// Every stream, notify and context handle of this library becomes dangling: none may be used
/// (or destroyed) afterwards, and no [`Session`] of this library may be alive.
///
/// # Errors
/// The runtime's code.
pub unsafe fn finalize(lib: &AclLib) -> Result<()> {
    // SAFETY: no arguments; the caller guarantees no handle outlives this call.
    let code = unsafe { (lib.aclFinalize)() };
    check(lib, code, "aclFinalize")
}

/// `aclrtGetDeviceCount(&count)`.
///
/// # Errors
/// The runtime's code.
pub fn get_device_count(lib: &AclLib) -> Result<u32> {
    let mut count = 0;
    // SAFETY: the out-pointer is a live local.
    let code = unsafe { (lib.aclrtGetDeviceCount)(&mut count) };
    check(lib, code, "aclrtGetDeviceCount").map(|()| count)
}

/// `aclrtDeviceCanAccessPeer(&can, device, peer)`.
///
/// # Errors
/// The runtime's code (107001 for a bad id, 107000 for `device == peer`).
pub fn device_can_access_peer(lib: &AclLib, device: i32, peer: i32) -> Result<bool> {
    let mut can = 0;
    // SAFETY: the out-pointer is a live local; the rest are plain values.
    let code = unsafe { (lib.aclrtDeviceCanAccessPeer)(&mut can, device, peer) };
    check(lib, code, "aclrtDeviceCanAccessPeer").map(|()| can != 0)
}

/// `aclrtDeviceGetBareTgid(&pid)`.
///
/// # Errors
/// The runtime's code.
pub fn device_get_bare_tgid(lib: &AclLib) -> Result<i32> {
    let mut pid = 0;
    // SAFETY: the out-pointer is a live local.
    let code = unsafe { (lib.aclrtDeviceGetBareTgid)(&mut pid) };
    check(lib, code, "aclrtDeviceGetBareTgid").map(|()| pid)
}

/// The C timeout of `aclrtSynchronizeStreamWithTimeout`: `None` is `-1` (forever); a duration is
/// in milliseconds, rounded **up** so that the call never gives up earlier than asked (a nonzero
/// duration below 1 ms is 1 ms), and saturated at `i32::MAX` (about 24.8 days).
pub fn timeout_ms(timeout: Option<Duration>) -> i32 {
    let Some(timeout) = timeout else { return -1 };
    let ms = timeout.as_millis() + u128::from(timeout.subsec_nanos() % 1_000_000 != 0);
    i32::try_from(ms).unwrap_or(i32::MAX)
}

// ---------------------------------------------------------------------------------------------
// The per-thread calls of the C API. They are not part of the typed API, where a device is a
// value that binds itself (crate docs); they stay here, at the C level, for code that mixes this
// crate with its own ACL calls.

thread_local! {
    /// The [`Retain::id`] whose context this thread has current, as far as this crate knows;
    /// `0` for none or unknown. A `Cell<u64>` with a const initializer has no destructor, so it
    /// stays usable while other thread-locals (a handle kept in one) are dropped.
    static BOUND: Cell<u64> = const { Cell::new(0) };
}

/// Forgets which context this thread has current, so the next [`Retain::bind`] calls the runtime.
fn unbind_thread() {
    BOUND.with(|bound| bound.set(0));
}

/// `aclrtSetDevice(device)`: one more retain of `device` for the process, and its default
/// context current in this thread.
///
/// Not in the typed API: there [`notify_api::Runtime::device`] makes the one retain a live
/// device needs and releases it when the device and its handles are gone, and each handle binds
/// its own context. A retain made here must be balanced by [`reset_device`].
///
/// # Errors
/// The runtime's code (107001 for a bad id).
pub fn set_device(lib: &AclLib, device: i32) -> Result<()> {
    // The thread's context changes (or may, on failure) behind the binding cache.
    unbind_thread();
    // SAFETY: plain value argument.
    let code = unsafe { (lib.aclrtSetDevice)(device) };
    check(lib, code, "aclrtSetDevice")
}

/// `aclrtResetDevice(device)`: drops one retain of `device`; the last one releases the device's
/// default context with the streams and notifies made in it.
///
/// Not in the typed API: a device is released there when nothing uses it any more.
///
/// # Safety
/// If this drops the last retain of `device`, no handle or context of that device may be used
/// afterwards; in particular no [`Retain`] of `device` may be alive unless this call balances
/// a [`set_device`] of the caller's own.
///
/// # Errors
/// The runtime's code (107001 for a bad id).
pub unsafe fn reset_device(lib: &AclLib, device: i32) -> Result<()> {
    unbind_thread();
    // SAFETY: plain value argument; the caller guarantees that no handle of a released device is
    // used afterwards.
    let code = unsafe { (lib.aclrtResetDevice)(device) };
    check(lib, code, "aclrtResetDevice")
}

/// `aclrtGetDevice(&id)`: the device of this thread's current context.
///
/// Not in the typed API: there every handle knows its device
/// ([`notify_api::Stream::device`]).
///
/// # Errors
/// The runtime's code (107002 with no current context).
pub fn get_device(lib: &AclLib) -> Result<i32> {
    let mut device = -1;
    // SAFETY: the out-pointer is a live local.
    let code = unsafe { (lib.aclrtGetDevice)(&mut device) };
    check(lib, code, "aclrtGetDevice").map(|()| device)
}

/// `aclrtGetCurrentContext(&context)`: this thread's current context, never NULL.
///
/// # Errors
/// The runtime's code (107002 with no current context); `RT_INTERNAL_ERROR` (507000) for a NULL
/// context reported as success.
pub fn get_current_context(lib: &AclLib) -> Result<aclrtContext> {
    let mut context: aclrtContext = ptr::null_mut();
    // SAFETY: the out-pointer is a live local.
    let code = unsafe { (lib.aclrtGetCurrentContext)(&mut context) };
    check(lib, code, "aclrtGetCurrentContext")?;
    if context.is_null() {
        return Err(err!(
            RT_INTERNAL_ERROR,
            "aclrtGetCurrentContext reported success but returned a NULL context"
        ));
    }
    Ok(context)
}

/// `aclrtSetCurrentContext(context)`: makes `context` current in this thread.
///
/// Not in the typed API: handles bind their own context ([`Retain::bind`]).
///
/// # Safety
/// `context` is a live context of this library (its device retained, not destroyed).
///
/// # Errors
/// The runtime's code.
pub unsafe fn set_current_context(lib: &AclLib, context: aclrtContext) -> Result<()> {
    unbind_thread();
    // SAFETY: the caller guarantees the context is live.
    let code = unsafe { (lib.aclrtSetCurrentContext)(context) };
    check(lib, code, "aclrtSetCurrentContext")
}

// ---------------------------------------------------------------------------------------------
// Owners: the session.

/// One initialization of one loaded library, shared by every runtime, device and handle made
/// from it.
///
/// Dropping the last reference calls `aclFinalize` if this session made the `aclInit` (or took
/// that duty over from an earlier session of the same library, see [`Session::open`]).
pub struct Session {
    lib: AclLib,
    /// Whether `aclFinalize` is ours to call.
    owns_init: AtomicBool,
    /// The device memory this session allocated or imported and has not released (M2).
    ranges: Ranges,
    /// The panic flags of every stream made here, for `aclrtSynchronizeDevice` (H1).
    panics: Panics,
}

/// The live session of each loaded library, keyed by the address of its `aclInit`: the same
/// file loaded twice is the same mapping, hence the same address, whatever path named it.
static SESSIONS: Mutex<Vec<(usize, Weak<Session>)>> = Mutex::new(Vec::new());

fn library_key(lib: &AclLib) -> usize {
    lib.aclInit as usize
}

impl Session {
    /// The session of `lib`'s library: the live one if there is one, else a new one that calls
    /// `aclInit(NULL)`.
    ///
    /// `ACL_ERROR_REPEAT_INITIALIZE` from `aclInit` means another part of the process (C code,
    /// another crate) initialized the runtime: that is fine, and then `aclFinalize` is theirs to
    /// call, not ours. The one other way to get it is a session of ours whose last reference is
    /// being dropped right now; its drop then hands the finalize duty to the new session instead
    /// of finalizing under it.
    ///
    /// # Errors
    /// [`Error::Acl`] with `aclInit`'s code for any failure but `REPEAT_INITIALIZE`.
    pub fn open(lib: AclLib) -> Result<Arc<Self>> {
        let key = library_key(&lib);
        let mut sessions = SESSIONS.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(live) = sessions
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, weak)| weak.upgrade())
        {
            return Ok(live);
        }
        let owns = match init(&lib)? {
            Init::Initialized => true,
            Init::AlreadyInitialized => false,
        };
        let session = Arc::new(Self {
            lib,
            owns_init: AtomicBool::new(owns),
            ranges: Ranges::default(),
            panics: Panics::default(),
        });
        sessions.retain(|(k, _)| *k != key);
        sessions.push((key, Arc::downgrade(&session)));
        Ok(session)
    }

    /// The loaded library.
    pub fn lib(&self) -> &AclLib {
        &self.lib
    }

    /// Whether this session will call `aclFinalize` (it made the `aclInit`, or took the duty
    /// over).
    pub fn owns_init(&self) -> bool {
        self.owns_init.load(Ordering::Acquire)
    }

    /// The live device memory of this session, as `(start, length, imported, device)`, in
    /// address order: what the range checks accept (M2).
    pub fn live_ranges(&self) -> Vec<(u64, usize, bool, i32)> {
        self.ranges.snapshot()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let key = library_key(&self.lib);
        let mut sessions = SESSIONS.lock().unwrap_or_else(PoisonError::into_inner);
        let newer = sessions
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, weak)| weak.upgrade());
        let owns = self.owns_init.load(Ordering::Acquire);
        match newer {
            // A newer session of the same library opened while this one was dying; it found
            // the runtime still initialized, so finalizing is now its duty.
            Some(newer) => {
                if owns {
                    newer.owns_init.store(true, Ordering::Release);
                }
                // Unlock before letting go of `newer`: if its owners dropped it meanwhile, this
                // is its last reference and its own drop takes the lock.
                drop(sessions);
                drop(newer);
            }
            None => {
                sessions.retain(|(k, _)| *k != key);
                if owns {
                    // SAFETY: this is the last reference to the session, and every retain,
                    // stream and notify of this module holds one (through its Retain): no handle
                    // of this library made here is left to use. The lock is held, so no new
                    // session can call aclInit until this finalize is done.
                    let _ = unsafe { finalize(&self.lib) };
                }
            }
        }
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("library", &self.lib.path())
            .field("owns_init", &self.owns_init())
            .finish()
    }
}

/// The error for a handle of another loaded library (another session) used with this one (R10).
#[cold]
fn foreign(what: &str) -> Error {
    err!(
        R10: RT_INVALID_HANDLE,
        "the {what} belongs to another loaded ACL library than the one this call goes to"
    )
}

// ---------------------------------------------------------------------------------------------
// Owners: a device retain and its context.

/// Unique ids of retains, for the binding cache; `0` means none.
static NEXT_RETAIN_ID: AtomicU64 = AtomicU64::new(1);

/// One `aclrtSetDevice` retain of one device, with the context that call made current (the
/// device's default context, C1), or a context made by `aclrtCreateContext` on it
/// ([`Retain::create_context`]), which holds the device retain it was made under. Dropping the
/// last reference calls `aclrtResetDevice` (a device retain) or `aclrtDestroyContext` (a created
/// context).
///
/// Every stream, notify, event and piece of memory of this module holds the retain it was made
/// under, so the device's context outlives them.
pub struct Retain {
    session: Arc<Session>,
    device: i32,
    context: aclrtContext,
    /// Unique in the process, never reused: what the binding cache compares.
    id: u64,
    /// `None` for a device retain; for a created context, the device retain it was made under
    /// (dropped after the context is destroyed: fields drop after `Drop::drop`).
    parent: Option<Arc<Retain>>,
    /// The panic flag of this context's default stream (H1), shared by every handle of it.
    default_panics: Arc<PanicFlag>,
}

// SAFETY: the context is an opaque token of the runtime, not memory this process reads; the
// runtime's calls are thread-safe, and a context may be made current in any thread
// (aclrtSetCurrentContext). The retain is released exactly once, by its drop.
unsafe impl Send for Retain {}
// SAFETY: as for `Send`; `&self` methods only pass the context to thread-safe runtime calls.
unsafe impl Sync for Retain {}

impl Retain {
    /// `aclrtSetDevice(device)`, then `aclrtGetCurrentContext`: retains the device once and keeps
    /// its default context. The calling thread is left bound to it.
    ///
    /// # Errors
    /// The runtime's code (107001 for an id outside `0..count`). If reading the context fails,
    /// the retain is released again.
    pub fn new(session: &Arc<Session>, device: i32) -> Result<Self> {
        let lib = session.lib();
        set_device(lib, device)?;
        let context = match get_current_context(lib) {
            Ok(context) => context,
            Err(e) => {
                // SAFETY: this balances the set_device just above, whose retain nothing else
                // knows of: no handle was made under it.
                let _ = unsafe { reset_device(lib, device) };
                return Err(e);
            }
        };
        let retain = Self::made(session, device, context, None);
        // aclrtSetDevice made this context current here.
        BOUND.with(|bound| bound.set(retain.id));
        Ok(retain)
    }

    fn made(
        session: &Arc<Session>,
        device: i32,
        context: aclrtContext,
        parent: Option<Arc<Retain>>,
    ) -> Self {
        Self {
            session: Arc::clone(session),
            device,
            context,
            id: NEXT_RETAIN_ID.fetch_add(1, Ordering::Relaxed),
            parent,
            default_panics: session.panics.register(device),
        }
    }

    /// `aclrtCreateContext(&context, device)` for `device`'s device (C1): a new context on it,
    /// which holds `device` (so the device stays retained) and is destroyed
    /// (`aclrtDestroyContext`) when its last reference goes. The calling thread is left bound to
    /// it, as `aclrtCreateContext` leaves it current.
    ///
    /// # Errors
    /// The runtime's code; `RT_INTERNAL_ERROR` (507000) for a NULL context reported as success.
    pub fn create_context(device: &Arc<Retain>) -> Result<Self> {
        let lib = device.lib();
        // The thread's context changes (or may, on failure) behind the binding cache.
        unbind_thread();
        let mut context: aclrtContext = ptr::null_mut();
        // SAFETY: the out-pointer is a live local; the device id is a plain value, retained by
        // `device` for as long as the new context lives (it holds `device`).
        let code = unsafe { (lib.aclrtCreateContext)(&mut context, device.device) };
        check(lib, code, "aclrtCreateContext")?;
        if context.is_null() {
            return Err(err!(
                RT_INTERNAL_ERROR,
                "aclrtCreateContext reported success but returned a NULL context"
            ));
        }
        let root = match &device.parent {
            Some(root) => Arc::clone(root),
            None => Arc::clone(device),
        };
        let retain = Self::made(&device.session, device.device, context, Some(root));
        BOUND.with(|bound| bound.set(retain.id));
        Ok(retain)
    }

    /// Whether this is a context made by [`Retain::create_context`] (not a device's default one).
    pub fn is_created_context(&self) -> bool {
        self.parent.is_some()
    }

    /// The session this retain belongs to.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// The loaded library.
    pub fn lib(&self) -> &AclLib {
        self.session.lib()
    }

    /// The device ordinal.
    pub fn device(&self) -> i32 {
        self.device
    }

    /// The raw `aclrtContext` (the device's default context, or the created one). It stays valid
    /// while `self` lives.
    pub fn context(&self) -> aclrtContext {
        self.context
    }

    /// The retain's unique id (never reused in the process).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Makes this retain's context current in the calling thread, calling the runtime only when
    /// the thread-local cache says another one (or none) is current (module docs).
    ///
    /// # Errors
    /// `aclrtSetCurrentContext`'s code.
    #[inline]
    pub fn bind(&self) -> Result<()> {
        if BOUND.with(Cell::get) == self.id {
            return Ok(());
        }
        self.bind_now()
    }

    /// Makes this retain's context current in the calling thread, whatever the cache says: for
    /// a thread whose context foreign code may have changed.
    ///
    /// # Errors
    /// `aclrtSetCurrentContext`'s code; the cache is then cleared.
    pub fn bind_now(&self) -> Result<()> {
        // SAFETY: `self` holds the device's retain (released only by its drop), so the context
        // it made current at creation is live.
        unsafe { set_current_context(self.lib(), self.context) }?;
        BOUND.with(|bound| bound.set(self.id));
        Ok(())
    }
}

impl Drop for Retain {
    fn drop(&mut self) {
        if self.parent.is_some() {
            // This thread may have the context current; it is gone after this.
            if BOUND.with(Cell::get) == self.id {
                unbind_thread();
            }
            // SAFETY: this is the last reference to the created context, and every stream,
            // notify, event and piece of memory of this module made under it holds one: none is
            // left. `parent` (a field, dropped after this) still retains the device.
            let code = unsafe { (self.lib().aclrtDestroyContext)(self.context) };
            let _ = check(self.lib(), code, "aclrtDestroyContext");
            return;
        }
        // SAFETY: this is the last reference to the retain, and every stream and notify of this
        // module holds one (as does every context created under it): none made under it is left.
        // The retain being dropped is this one's own aclrtSetDevice, so other retains of the
        // device (ours or the program's) stay.
        let _ = unsafe { reset_device(self.lib(), self.device) };
    }
}

impl fmt::Debug for Retain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retain")
            .field("device", &self.device)
            .field("context", &self.context)
            .field("id", &self.id)
            .field("created", &self.parent.is_some())
            .finish()
    }
}

/// `aclrtDeviceEnablePeerAccess(peer, flags)` with `retain`'s device current: enables access
/// from that device to `peer` for this process (R7).
///
/// # Errors
/// The runtime's code (107001 for a bad `peer`, 107000 for the device itself or flags not 0).
pub fn device_enable_peer_access(retain: &Retain, peer: i32, flags: u32) -> Result<()> {
    retain.bind()?;
    // SAFETY: plain value arguments.
    let code = unsafe { (retain.lib().aclrtDeviceEnablePeerAccess)(peer, flags) };
    check(retain.lib(), code, "aclrtDeviceEnablePeerAccess")
}

// ---------------------------------------------------------------------------------------------
// Owners: streams.

/// A stream made under a [`Retain`]: an owned `aclrtStream`, or the device's default stream (a
/// NULL `aclrtStream`, never destroyed). Dropping an owned one destroys it and ignores the error;
/// [`destroy_stream`] reports it.
pub struct Stream {
    retain: Arc<Retain>,
    /// NULL for the default stream.
    raw: aclrtStream,
    /// Whether `aclrtDestroyStream` is still ours to call (false for the default stream, and
    /// once destroyed).
    owned: bool,
    /// Set by a host function of this stream that panicked; the next synchronize reports it (H1).
    /// A default stream shares its context's flag.
    panics: Arc<PanicFlag>,
}

// SAFETY: the handle is an opaque token of the runtime, not memory this process reads. The
// runtime lets a stream be used from any thread whose current context is the stream's, and every
// call here binds that context first; its calls are thread-safe. The handle is destroyed exactly
// once (`owned`).
unsafe impl Send for Stream {}
// SAFETY: as for `Send`; `&self` functions only pass the handle to thread-safe runtime calls.
unsafe impl Sync for Stream {}

impl Stream {
    /// The retain this stream was made under.
    pub fn retain(&self) -> &Arc<Retain> {
        &self.retain
    }

    /// The raw `aclrtStream` (NULL for the default stream). It stays valid while `self` lives.
    pub fn as_raw(&self) -> aclrtStream {
        self.raw
    }

    /// Whether this is the device's default stream (a NULL handle).
    pub fn is_default(&self) -> bool {
        self.raw.is_null()
    }

    /// Destroys an owned stream once; the default stream is left alone (it is the runtime's).
    fn destroy_in_place(&mut self) -> Result<()> {
        if !self.owned {
            return Ok(());
        }
        // A failed bind leaves the stream owned, so that the drop tries again.
        self.retain.bind()?;
        self.owned = false;
        // SAFETY: `raw` is a non-NULL stream this module created under `retain` (only owned
        // streams get here), not destroyed yet (`owned` was still set), and `&mut self` excludes
        // every other use; `retain` keeps its device and runtime alive.
        let code = unsafe { (self.retain.lib().aclrtDestroyStream)(self.raw) };
        check(self.retain.lib(), code, "aclrtDestroyStream")
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.destroy_in_place();
    }
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream")
            .field("device", &self.retain.device)
            .field("raw", &self.raw)
            .field("owned", &self.owned)
            .finish_non_exhaustive()
    }
}

/// `aclrtCreateStream(&stream)` with `retain`'s context bound: a new stream of that context.
///
/// # Errors
/// The runtime's code; `RT_INTERNAL_ERROR` (507000) if the runtime reports success but returns
/// NULL, which would otherwise mean the default stream.
pub fn create_stream(retain: &Arc<Retain>) -> Result<Stream> {
    retain.bind()?;
    let mut raw: aclrtStream = ptr::null_mut();
    // SAFETY: the out-pointer is a live local.
    let code = unsafe { (retain.lib().aclrtCreateStream)(&mut raw) };
    check(retain.lib(), code, "aclrtCreateStream")?;
    if raw.is_null() {
        return Err(err!(
            RT_INTERNAL_ERROR,
            "aclrtCreateStream reported success but returned a NULL stream"
        ));
    }
    Ok(Stream {
        retain: Arc::clone(retain),
        raw,
        owned: true,
        panics: retain.session.panics.register(retain.device),
    })
}

/// The default stream of `retain`'s context: a NULL `aclrtStream`, which every call binds to that
/// context, so NULL means this device's default stream. It is never destroyed.
///
/// # Errors
/// `aclrtSetCurrentContext`'s code (the context is bound once here, so that a failure shows).
pub fn default_stream(retain: &Arc<Retain>) -> Result<Stream> {
    retain.bind()?;
    Ok(Stream {
        retain: Arc::clone(retain),
        raw: ptr::null_mut(),
        owned: false,
        panics: Arc::clone(&retain.default_panics),
    })
}

/// `aclrtDestroyStream(stream)` with its context bound. The default stream is not destroyed
/// (the runtime owns it; `Ok(())`).
///
/// # Errors
/// The runtime's code. The stream is gone either way, except when binding its context failed
/// (then its drop tries again).
pub fn destroy_stream(mut stream: Stream) -> Result<()> {
    stream.destroy_in_place()
}

/// `aclrtSynchronizeStream(stream)` with its context bound.
///
/// # Errors
/// The first failure among the tasks it waited for (107019 for an expired wait). When the
/// runtime reports none but a host function of this stream panicked since the last synchronize,
/// `RT_INTERNAL_ERROR` (507000, H1), once.
pub fn synchronize_stream(stream: &Stream) -> Result<()> {
    stream.retain.bind()?;
    // SAFETY: `raw` is NULL (the bound context's default stream) or a stream created under
    // `retain` and not destroyed (destroying needs the `Stream` by value or `&mut`); `retain`
    // keeps its device and runtime alive.
    let code = unsafe { (stream.retain.lib().aclrtSynchronizeStream)(stream.raw) };
    check(stream.retain.lib(), code, "aclrtSynchronizeStream")?;
    stream.panics.report()
}

/// `aclrtSynchronizeStreamWithTimeout(stream, timeout_ms(timeout))` with its context bound.
///
/// # Errors
/// `RT_STREAM_SYNC_TIMEOUT` (507046) on giving up; otherwise as [`synchronize_stream`].
pub fn synchronize_stream_with_timeout(stream: &Stream, timeout: Option<Duration>) -> Result<()> {
    stream.retain.bind()?;
    // SAFETY: as in `synchronize_stream`.
    let code = unsafe {
        (stream.retain.lib().aclrtSynchronizeStreamWithTimeout)(stream.raw, timeout_ms(timeout))
    };
    check(
        stream.retain.lib(),
        code,
        "aclrtSynchronizeStreamWithTimeout",
    )?;
    stream.panics.report()
}

/// `aclrtStreamQuery(stream, &status)` with its context bound: whether nothing is queued or
/// running on it (S1).
///
/// # Errors
/// The runtime's code; `RT_INTERNAL_ERROR` (507000) for a status other than COMPLETE and
/// NOT_READY.
pub fn stream_query(stream: &Stream) -> Result<bool> {
    stream.retain.bind()?;
    let mut status: crate::sys::aclrtStreamStatus = crate::sys::ACL_STREAM_STATUS_RESERVED;
    // SAFETY: as in `synchronize_stream`; the out-pointer is a live local.
    let code = unsafe { (stream.retain.lib().aclrtStreamQuery)(stream.raw, &mut status) };
    check(stream.retain.lib(), code, "aclrtStreamQuery")?;
    match status {
        crate::sys::ACL_STREAM_STATUS_COMPLETE => Ok(true),
        crate::sys::ACL_STREAM_STATUS_NOT_READY => Ok(false),
        other => Err(err!(
            RT_INTERNAL_ERROR,
            "aclrtStreamQuery reported success with the unknown status {other:#x}"
        )),
    }
}

/// `aclrtSynchronizeDevice()` with `retain`'s context bound: waits for every stream of its
/// device in this process, whatever their context (S1).
///
/// # Errors
/// The first failure among the streams' tasks; when the runtime reports none but a host
/// function of a stream of the device made here panicked since that stream was last
/// synchronized, `RT_INTERNAL_ERROR` (507000, H1), once.
pub fn synchronize_device(retain: &Retain) -> Result<()> {
    retain.bind()?;
    // SAFETY: no arguments; `retain` keeps the bound context alive.
    let code = unsafe { (retain.lib().aclrtSynchronizeDevice)() };
    check(retain.lib(), code, "aclrtSynchronizeDevice")?;
    retain.session.panics.report_device(retain.device)
}

// ---------------------------------------------------------------------------------------------
// Owners: notifies.

/// A notify handle created or imported under a [`Retain`], holding one reference (R8). Dropping
/// it destroys it and ignores the error; [`destroy_notify`] reports it.
pub struct Notify {
    retain: Arc<Retain>,
    /// Never NULL while the handle is alive; NULL once destroyed.
    raw: aclrtNotify,
}

// SAFETY: the handle is an opaque token of the runtime, not memory this process reads. The
// runtime lets a notify be used from any thread with a current context, and every call here
// binds one first; its calls are thread-safe. The handle is destroyed exactly once (`raw` is
// NULL afterwards).
unsafe impl Send for Notify {}
// SAFETY: as for `Send`; `&self` functions only pass the handle to thread-safe runtime calls.
unsafe impl Sync for Notify {}

impl Notify {
    /// The retain this handle was created or imported under.
    pub fn retain(&self) -> &Arc<Retain> {
        &self.retain
    }

    /// The raw `aclrtNotify`. It stays valid while `self` lives.
    pub fn as_raw(&self) -> aclrtNotify {
        self.raw
    }

    /// Destroys the handle once; NULL afterwards, so the drop does nothing.
    fn destroy_in_place(&mut self) -> Result<()> {
        if self.raw.is_null() {
            return Ok(());
        }
        // A failed bind leaves the handle in place, so that the drop tries again.
        self.retain.bind()?;
        let raw = std::mem::replace(&mut self.raw, ptr::null_mut());
        // SAFETY: `raw` came from create/import under `retain`, has not been destroyed (it was
        // still stored), and cannot be used again (NULL in `self` now, and `&mut self` excludes
        // other users); `retain` keeps its device and runtime alive.
        let code = unsafe { (self.retain.lib().aclrtDestroyNotify)(raw) };
        check(self.retain.lib(), code, "aclrtDestroyNotify")
    }
}

impl Drop for Notify {
    fn drop(&mut self) {
        let _ = self.destroy_in_place();
    }
}

impl fmt::Debug for Notify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notify")
            .field("device", &self.retain.device)
            .field("raw", &self.raw)
            .finish()
    }
}

fn notify_from(retain: &Arc<Retain>, raw: aclrtNotify, call: &str) -> Result<Notify> {
    if raw.is_null() {
        return Err(err!(
            RT_INTERNAL_ERROR,
            "{call} reported success but returned a NULL notify"
        ));
    }
    Ok(Notify {
        retain: Arc::clone(retain),
        raw,
    })
}

/// `aclrtCreateNotify(&notify, flags)` with `retain`'s context bound.
///
/// # Errors
/// The runtime's code (207009 for a full device); `RT_INTERNAL_ERROR` (507000) for a NULL handle
/// reported as success.
pub fn create_notify(retain: &Arc<Retain>, flags: u64) -> Result<Notify> {
    retain.bind()?;
    let mut raw: aclrtNotify = ptr::null_mut();
    // SAFETY: the out-pointer is a live local.
    let code = unsafe { (retain.lib().aclrtCreateNotify)(&mut raw, flags) };
    check(retain.lib(), code, "aclrtCreateNotify")?;
    notify_from(retain, raw, "aclrtCreateNotify")
}

/// `aclrtNotifyImportByKey(&notify, key, flags)` with `retain`'s context bound.
///
/// # Errors
/// The runtime's code; `RT_INTERNAL_ERROR` (507000) for a NULL handle reported as success.
pub fn notify_import_by_key(retain: &Arc<Retain>, key: &ExportKey, flags: u64) -> Result<Notify> {
    retain.bind()?;
    let buf = key.to_c_buf();
    let mut raw: aclrtNotify = ptr::null_mut();
    // SAFETY: the out-pointer is a live local; `buf` is a live 65-byte NUL-terminated buffer.
    let code = unsafe {
        (retain.lib().aclrtNotifyImportByKey)(&mut raw, buf.as_ptr().cast::<c_char>(), flags)
    };
    check(retain.lib(), code, "aclrtNotifyImportByKey")?;
    notify_from(retain, raw, "aclrtNotifyImportByKey")
}

/// `aclrtDestroyNotify(notify)` with its context bound.
///
/// # Errors
/// The runtime's code. The handle is gone either way, except when binding failed (then its drop
/// tries again).
pub fn destroy_notify(mut notify: Notify) -> Result<()> {
    notify.destroy_in_place()
}

/// `aclrtRecordNotify(notify, stream)` with the stream's context bound.
///
/// # Errors
/// `RT_INVALID_HANDLE` (107017, R10) when the two come from different loaded libraries;
/// otherwise the runtime's code.
#[inline]
pub fn record_notify(notify: &Notify, stream: &Stream) -> Result<()> {
    if !Arc::ptr_eq(&notify.retain.session, &stream.retain.session) {
        return Err(foreign("notify"));
    }
    stream.retain.bind()?;
    // SAFETY: `notify.raw` is live while `notify` is (destroying needs it by value or `&mut`),
    // and `stream.raw` is NULL (the bound context's default stream) or live likewise; both were
    // made by this library (same session, checked above) under retains they hold.
    let code = unsafe { (stream.retain.lib().aclrtRecordNotify)(notify.raw, stream.raw) };
    check(stream.retain.lib(), code, "aclrtRecordNotify")
}

/// `aclrtWaitAndResetNotify(notify, stream, timeout_secs)` with the stream's context bound.
///
/// # Errors
/// As [`record_notify`]; 107000 for a wait by an importer or on another device's stream (R4).
pub fn wait_and_reset_notify(notify: &Notify, stream: &Stream, timeout_secs: u32) -> Result<()> {
    if !Arc::ptr_eq(&notify.retain.session, &stream.retain.session) {
        return Err(foreign("notify"));
    }
    stream.retain.bind()?;
    // SAFETY: as in `record_notify`.
    let code = unsafe {
        (stream.retain.lib().aclrtWaitAndResetNotify)(notify.raw, stream.raw, timeout_secs)
    };
    check(stream.retain.lib(), code, "aclrtWaitAndResetNotify")
}

/// `aclrtGetNotifyId(notify, &id)` with its context bound.
///
/// # Errors
/// The runtime's code.
pub fn get_notify_id(notify: &Notify) -> Result<u32> {
    notify.retain.bind()?;
    let mut id = 0;
    // SAFETY: `notify.raw` is live while `notify` is; the out-pointer is a live local.
    let code = unsafe { (notify.retain.lib().aclrtGetNotifyId)(notify.raw, &mut id) };
    check(notify.retain.lib(), code, "aclrtGetNotifyId").map(|()| id)
}

/// `aclrtNotifyBatchReset(notifies, len)`, with the first notify's context bound.
///
/// An empty slice still reaches the C call, with a non-NULL dangling pointer and `num == 0`, so
/// that the runtime itself reports it (107000, R1).
///
/// # Errors
/// `RT_INVALID_HANDLE` (107017, R10) when a notify comes from another loaded library than
/// `session`'s (then nothing is called); otherwise the runtime's code.
pub fn notify_batch_reset(session: &Arc<Session>, notifies: &[&Notify]) -> Result<()> {
    if let Some(at) = notifies
        .iter()
        .position(|n| !Arc::ptr_eq(&n.retain.session, session))
    {
        return Err(foreign("notify").with_context(format_args!("notifies[{at}]")));
    }
    if let Some(first) = notifies.first() {
        first.retain.bind()?;
    }
    // The C prototype takes a non-const array; give it one we own.
    let mut array: Vec<aclrtNotify> = notifies.iter().map(|n| n.raw).collect();
    // SAFETY: `array` is live for `array.len()` elements (a non-NULL dangling pointer when
    // empty, which C only sees together with `num == 0`); every handle is live while its
    // `Notify` is borrowed, and all belong to `session`'s library (checked above).
    let code = unsafe { (session.lib().aclrtNotifyBatchReset)(array.as_mut_ptr(), array.len()) };
    check(session.lib(), code, "aclrtNotifyBatchReset")
}

/// `aclrtNotifyGetExportKey(notify, buf, 65, flags)` with its context bound, parsed with
/// [`ExportKey::from_c_buf`].
///
/// # Errors
/// The runtime's code; `RT_PARAM_INVALID` (107000) if the runtime wrote something that is not a
/// key (no NUL within 65 bytes, a non-printable byte).
pub fn notify_get_export_key(notify: &Notify, flags: u64) -> Result<ExportKey> {
    notify.retain.bind()?;
    let mut buf = [0u8; EXPORT_KEY_LEN];
    // SAFETY: `notify.raw` is live while `notify` is; `buf` is a live, writable buffer of the
    // length passed.
    let code = unsafe {
        (notify.retain.lib().aclrtNotifyGetExportKey)(
            notify.raw,
            buf.as_mut_ptr().cast::<c_char>(),
            buf.len(),
            flags,
        )
    };
    check(notify.retain.lib(), code, "aclrtNotifyGetExportKey")?;
    ExportKey::from_c_buf(&buf)
}

/// `aclrtNotifySetImportPid(notify, &pid, 1)` with its context bound: one pid per call, as the
/// driver takes it (R6).
///
/// # Errors
/// The runtime's code.
pub fn notify_set_import_pid(notify: &Notify, pid: i32) -> Result<()> {
    notify.retain.bind()?;
    let mut pid = pid;
    // SAFETY: `notify.raw` is live while `notify` is; `&mut pid` is a live array of one element,
    // the `num` passed.
    let code = unsafe { (notify.retain.lib().aclrtNotifySetImportPid)(notify.raw, &mut pid, 1) };
    check(notify.retain.lib(), code, "aclrtNotifySetImportPid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_is_the_runtime_text_or_names_the_call() {
        let e = error_for(
            107_000,
            Some("R5: len 3 < 65\n".into()),
            "aclrtNotifyGetExportKey",
        );
        assert_eq!(e.code(), AclError::RT_PARAM_INVALID);
        assert_eq!(e.reason(), "R5: len 3 < 65");
        // The runtime does not say which rule refused the call, and the text is not parsed.
        assert_eq!(e.rule_of(), None);
        assert!(matches!(&e, Error::Acl(a) if a.rule.is_none()));

        for message in [None, Some(String::new()), Some("  \n".into())] {
            let e = error_for(507_899, message, "aclrtNotifyImportByKey");
            assert_eq!(e.code(), AclError::RT_DRV_INTERNAL_ERROR);
            assert!(e.reason().contains("aclrtNotifyImportByKey"), "{e}");
            assert!(e.reason().contains("507899"), "{e}");
        }

        // A code no table knows is still a value.
        let e = error_for(999_999, None, "aclInit");
        assert_eq!(e.code().raw(), 999_999);
        assert!(e.reason().contains("aclInit"));
    }

    #[test]
    fn timeouts_round_up_and_saturate() {
        assert_eq!(timeout_ms(None), -1);
        assert_eq!(timeout_ms(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_ms(Some(Duration::from_nanos(1))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_micros(1500))), 2);
        assert_eq!(timeout_ms(Some(Duration::from_millis(250))), 250);
        assert_eq!(timeout_ms(Some(Duration::from_secs(3))), 3000);
        assert_eq!(
            timeout_ms(Some(Duration::from_millis(i32::MAX as u64))),
            i32::MAX
        );
        assert_eq!(timeout_ms(Some(Duration::from_secs(u64::MAX))), i32::MAX);
    }
}
