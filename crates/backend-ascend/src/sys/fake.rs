//! A fake ACL runtime behind a real function table, for tests of the layers above `sys` while no
//! `libascendcl.so` can be loaded.
//!
//! It models what those layers depend on, with CANN's shape: `aclInit` once (100002 the second
//! time), a retain count per device (`aclrtSetDevice`/`aclrtResetDevice`), a current context per
//! thread (107002 without one), streams bound to the device current at their creation (107003
//! when used under another), handles that die when destroyed (107017), and an error text per
//! thread. It records every call the tests ask about. Streams can be made to block in
//! `aclrtSynchronizeStream` until a test opens a gate, to hold a helper thread in a known place.
//!
//! For the calls of §5 and §6 it keeps device memory (allocations with bytes, imports that alias
//! them), a queue per stream (copies, sets, host functions, event records and resets) that runs
//! only when the stream or its device is synchronized, on the synchronizing thread, events with
//! a fake clock, and created contexts. Host pointers of copies are read and written when the
//! copy *runs*, so a test sees whether the bytes of an asynchronous copy were still alive then.
//!
//! The state is process-global (the fakes are `extern "C"` functions, which capture nothing), so
//! tests that use it hold [`serial`] for their whole run.

#![allow(non_snake_case)]

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ffi::{CStr, CString, c_char, c_void};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::*;

/// Devices the fake has.
pub(crate) const DEVICES: u32 = 2;

/// What `aclrtDeviceGetBareTgid` answers.
pub(crate) const BARE_TGID: i32 = 4242;

/// The context pointer value of device `d` (its default context).
const CONTEXT_BASE: usize = 0xC0_0000;

/// Where created contexts are numbered from.
const CREATED_CONTEXT_BASE: usize = 0xD0_0000;

/// Where allocations start, and how far apart (each on a 1 MiB boundary).
const ALLOC_BASE: usize = 0x7f00_0000_0000;
const ALLOC_STRIDE: usize = 0x10_0000;

/// Where imports are mapped.
const IMPORT_BASE: usize = 0x7e00_0000_0000;

/// What `aclrtGetMemInfo` says a device has.
pub(crate) const DEVICE_MEMORY: usize = 1 << 30;

/// One stream the fake made.
#[derive(Debug, Clone)]
pub(crate) struct FakeStream {
    pub(crate) device: i32,
    /// The context current at its creation.
    pub(crate) ctx: usize,
    pub(crate) alive: bool,
}

/// One `aclrtMemcpy` or `aclrtMemcpyAsync` the fake accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemcpyCall {
    pub(crate) dst: usize,
    pub(crate) dest_max: usize,
    pub(crate) src: usize,
    pub(crate) count: usize,
    pub(crate) kind: u32,
    /// `None` for the synchronous call; the queue key for the async one.
    pub(crate) stream: Option<usize>,
    pub(crate) device: i32,
}

/// One `aclrtMemset` or `aclrtMemsetAsync` the fake accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemsetCall {
    pub(crate) dst: usize,
    pub(crate) max: usize,
    pub(crate) value: i32,
    pub(crate) count: usize,
    pub(crate) stream: Option<usize>,
    pub(crate) device: i32,
}

/// One allocation.
#[derive(Debug, Clone)]
pub(crate) struct FakeAlloc {
    pub(crate) device: i32,
    pub(crate) data: Vec<u8>,
    pub(crate) alive: bool,
}

/// One import: an alias of (part of) an allocation.
#[derive(Debug, Clone)]
pub(crate) struct FakeImport {
    /// The allocation it aliases, and where in it the import starts.
    pub(crate) base: usize,
    pub(crate) offset: usize,
    pub(crate) len: usize,
    pub(crate) key: String,
    pub(crate) alive: bool,
}

/// One event.
#[derive(Debug, Clone)]
pub(crate) struct FakeEvent {
    pub(crate) ctx: usize,
    pub(crate) flags: u32,
    pub(crate) alive: bool,
    /// Records enqueued and not run yet.
    pub(crate) pending: u32,
    /// The fake clock when the last record ran; `None` for never recorded (or reset).
    pub(crate) stamp: Option<f32>,
}

/// A task on a fake stream's queue.
#[derive(Debug)]
enum Task {
    Copy {
        dst: usize,
        src: usize,
        count: usize,
        kind: u32,
    },
    Set {
        dst: usize,
        value: u8,
        count: usize,
    },
    HostFn {
        f: unsafe extern "C" fn(*mut c_void),
        args: usize,
    },
    RecordEvent(usize),
    ResetEvent(usize),
}

impl Task {
    /// Whether the task touches device memory in `start..start + len`.
    fn touches(&self, start: usize, len: usize) -> bool {
        let inside = |p: usize| (start..start + len.max(1)).contains(&p);
        match *self {
            Task::Copy { dst, src, .. } => inside(dst) || inside(src),
            Task::Set { dst, .. } => inside(dst),
            _ => false,
        }
    }
}

/// One notify handle the fake made.
#[derive(Debug, Clone)]
pub(crate) struct FakeNotify {
    pub(crate) device: i32,
    pub(crate) alive: bool,
}

/// Everything the fake knows and recorded.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) initialized: bool,
    pub(crate) init_calls: u32,
    pub(crate) finalize_calls: u32,
    /// `aclrtSetDevice` minus `aclrtResetDevice`, per device.
    pub(crate) retains: HashMap<i32, u32>,
    pub(crate) set_device_calls: u32,
    pub(crate) reset_device_calls: u32,
    pub(crate) set_context_calls: u32,
    next_handle: usize,
    pub(crate) streams: HashMap<usize, FakeStream>,
    pub(crate) notifies: HashMap<usize, FakeNotify>,
    /// `(stream, code returned)` for every `aclrtDestroyStream`.
    pub(crate) stream_destroys: Vec<(usize, aclError)>,
    /// `(notify, stream, current device)` for every successful record.
    pub(crate) records: Vec<(usize, usize, i32)>,
    /// `(notify, stream, timeout)` for every successful wait.
    pub(crate) waits: Vec<(usize, usize, u32)>,
    /// `(stream, current device, timeout ms or None)` for every synchronize that started.
    pub(crate) syncs: Vec<(usize, i32, Option<i32>)>,
    /// `(notify, pids)` for every `aclrtNotifySetImportPid`.
    pub(crate) import_pids: Vec<(usize, Vec<i32>)>,
    /// The arrays of every `aclrtNotifyBatchReset`.
    pub(crate) batch_resets: Vec<Vec<usize>>,
    /// `(current device, peer, flags)` for every `aclrtDeviceEnablePeerAccess`.
    pub(crate) peer_enables: Vec<(i32, i32, u32)>,
    /// What `aclInit` fails with, if set.
    pub(crate) init_fails_with: Option<aclError>,
    /// What `aclrtDestroyStream` fails with, if set (the stream is destroyed anyway).
    pub(crate) destroy_stream_fails_with: Option<aclError>,
    /// The name of every §5/§6 call the fake accepted, in order.
    pub(crate) calls: Vec<&'static str>,
    pub(crate) allocs: BTreeMap<usize, FakeAlloc>,
    next_alloc: usize,
    pub(crate) imports: BTreeMap<usize, FakeImport>,
    next_import: usize,
    /// `(size, policy, device)` for every `aclrtMalloc`.
    pub(crate) mallocs: Vec<(usize, u32, i32)>,
    /// `(address, queued tasks that touch it)` for every `aclrtFree`.
    pub(crate) frees: Vec<(usize, usize)>,
    pub(crate) memcpys: Vec<MemcpyCall>,
    pub(crate) memsets: Vec<MemsetCall>,
    /// `(attr, device)` for every `aclrtGetMemInfo`.
    pub(crate) mem_infos: Vec<(u32, i32)>,
    /// `(address, size, len, flags)` for every `aclrtIpcMemGetExportKey`.
    pub(crate) mem_exports: Vec<(usize, usize, usize, u64)>,
    /// `(key, pids)` for every `aclrtIpcMemSetImportPid`.
    pub(crate) mem_import_pids: Vec<(String, Vec<i32>)>,
    /// `(key, flags)` for every `aclrtIpcMemImportByKey`.
    pub(crate) mem_imports: Vec<(String, u64)>,
    /// `(key, queued tasks that touch the import)` for every `aclrtIpcMemClose`.
    pub(crate) mem_closes: Vec<(String, usize)>,
    /// The queue of each stream: an owned stream's handle, or a context's value for its default
    /// stream.
    queues: HashMap<usize, VecDeque<Task>>,
    /// `(queue, args)` of every `aclrtLaunchHostFunc` accepted.
    pub(crate) launches: Vec<(usize, usize)>,
    /// Whether the context current when each host function returned was its stream's.
    pub(crate) host_fn_left_context: Vec<bool>,
    /// The device of every `aclrtSynchronizeDevice` that ran.
    pub(crate) device_syncs: Vec<i32>,
    /// `aclrtSynchronizeDevice` or `aclrtSynchronizeStream` calls refused inside a host function.
    pub(crate) refused_syncs: u32,
    pub(crate) events: HashMap<usize, FakeEvent>,
    /// `(stream, event)` for every `aclrtStreamWaitEvent`.
    pub(crate) event_waits: Vec<(usize, usize)>,
    clock: f32,
    /// Created contexts: `(device, alive)`.
    pub(crate) contexts: HashMap<usize, (i32, bool)>,
    next_context: usize,
    /// What `aclrtLaunchHostFunc` fails with, if set.
    pub(crate) launch_fails_with: Option<aclError>,
    /// What `aclrtMemcpyAsync` fails with, if set.
    pub(crate) memcpy_async_fails_with: Option<aclError>,
    /// While set, `aclrtSynchronizeStream` blocks until it is cleared.
    pub(crate) gate_closed: bool,
    /// How many synchronize calls wait at the gate now.
    pub(crate) at_gate: u32,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);
static CHANGED: Condvar = Condvar::new();
static SERIAL: Mutex<()> = Mutex::new(());

thread_local! {
    /// This thread's current context: `CONTEXT_BASE + device`, or 0 for none.
    static CURRENT: Cell<usize> = const { Cell::new(0) };
    /// This thread's last error text.
    static MESSAGE: RefCell<Option<CString>> = const { RefCell::new(None) };
    /// The queue whose host function this thread runs now, or 0.
    static RUNNING: Cell<usize> = const { Cell::new(0) };
}

/// Holds the fake for one test, with its state reset; later tests wait for it.
pub(crate) fn serial() -> MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    *lock() = Some(State::default());
    guard
}

fn lock() -> MutexGuard<'static, Option<State>> {
    STATE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads or changes the state (and wakes whoever waits on a change).
pub(crate) fn with<T>(f: impl FnOnce(&mut State) -> T) -> T {
    let mut state = lock();
    let out = f(state.get_or_insert_with(State::default));
    CHANGED.notify_all();
    out
}

/// Waits until `done` holds for the state, for at most 10 s.
pub(crate) fn wait_until(what: &str, done: impl Fn(&State) -> bool) {
    let state = lock();
    let (state, timeout) = CHANGED
        .wait_timeout_while(state, Duration::from_secs(10), |s| {
            !s.as_ref().is_some_and(&done)
        })
        .unwrap_or_else(PoisonError::into_inner);
    drop(state);
    assert!(!timeout.timed_out(), "timed out waiting until {what}");
}

/// The device whose context this thread has current in the fake, if any.
pub(crate) fn current_device() -> Option<i32> {
    let ctx = CURRENT.with(Cell::get);
    with(|s| device_of(s, ctx))
}

/// The device of context `ctx`, if it is a live one: a default context of a retained device, or
/// a created context not destroyed.
fn device_of(state: &State, ctx: usize) -> Option<i32> {
    if (CONTEXT_BASE..CONTEXT_BASE + DEVICES as usize).contains(&ctx) {
        let device = (ctx - CONTEXT_BASE) as i32;
        return (state.retains.get(&device).copied().unwrap_or(0) > 0).then_some(device);
    }
    match state.contexts.get(&ctx) {
        Some(&(device, true)) => Some(device),
        _ => None,
    }
}

/// A function table whose calls go to this fake.
pub(crate) fn lib() -> AclLib {
    let mut lib = AclLib::unfaked("fake-libascendcl.so");
    lib.aclInit = aclInit;
    lib.aclFinalize = aclFinalize;
    lib.aclrtSetDevice = aclrtSetDevice;
    lib.aclrtResetDevice = aclrtResetDevice;
    lib.aclrtGetDevice = aclrtGetDevice;
    lib.aclrtGetDeviceCount = aclrtGetDeviceCount;
    lib.aclrtGetCurrentContext = aclrtGetCurrentContext;
    lib.aclrtSetCurrentContext = aclrtSetCurrentContext;
    lib.aclrtCreateStream = aclrtCreateStream;
    lib.aclrtDestroyStream = aclrtDestroyStream;
    lib.aclrtSynchronizeStream = aclrtSynchronizeStream;
    lib.aclrtSynchronizeStreamWithTimeout = aclrtSynchronizeStreamWithTimeout;
    lib.aclrtCreateNotify = aclrtCreateNotify;
    lib.aclrtDestroyNotify = aclrtDestroyNotify;
    lib.aclrtRecordNotify = aclrtRecordNotify;
    lib.aclrtWaitAndResetNotify = aclrtWaitAndResetNotify;
    lib.aclrtGetNotifyId = aclrtGetNotifyId;
    lib.aclrtNotifyBatchReset = aclrtNotifyBatchReset;
    lib.aclrtNotifyGetExportKey = aclrtNotifyGetExportKey;
    lib.aclrtNotifyImportByKey = aclrtNotifyImportByKey;
    lib.aclrtNotifySetImportPid = aclrtNotifySetImportPid;
    lib.aclrtDeviceGetBareTgid = aclrtDeviceGetBareTgid;
    lib.aclrtDeviceCanAccessPeer = aclrtDeviceCanAccessPeer;
    lib.aclrtDeviceEnablePeerAccess = aclrtDeviceEnablePeerAccess;
    lib.aclGetRecentErrMsg = aclGetRecentErrMsg;
    lib.aclrtMalloc = aclrtMalloc;
    lib.aclrtFree = aclrtFree;
    lib.aclrtMemcpy = aclrtMemcpy;
    lib.aclrtMemcpyAsync = aclrtMemcpyAsync;
    lib.aclrtMemset = aclrtMemset;
    lib.aclrtMemsetAsync = aclrtMemsetAsync;
    lib.aclrtGetMemInfo = aclrtGetMemInfo;
    lib.aclrtIpcMemGetExportKey = aclrtIpcMemGetExportKey;
    lib.aclrtIpcMemSetImportPid = aclrtIpcMemSetImportPid;
    lib.aclrtIpcMemImportByKey = aclrtIpcMemImportByKey;
    lib.aclrtIpcMemClose = aclrtIpcMemClose;
    lib.aclrtLaunchHostFunc = aclrtLaunchHostFunc;
    lib.aclrtCreateEventWithFlag = aclrtCreateEventWithFlag;
    lib.aclrtDestroyEvent = aclrtDestroyEvent;
    lib.aclrtRecordEvent = aclrtRecordEvent;
    lib.aclrtResetEvent = aclrtResetEvent;
    lib.aclrtStreamWaitEvent = aclrtStreamWaitEvent;
    lib.aclrtSynchronizeEvent = aclrtSynchronizeEvent;
    lib.aclrtQueryEventStatus = aclrtQueryEventStatus;
    lib.aclrtEventElapsedTime = aclrtEventElapsedTime;
    lib.aclrtCreateContext = aclrtCreateContext;
    lib.aclrtDestroyContext = aclrtDestroyContext;
    lib.aclrtStreamQuery = aclrtStreamQuery;
    lib.aclrtSynchronizeDevice = aclrtSynchronizeDevice;
    lib
}

/// Fails a call with `code`, leaving `message` as this thread's error text.
fn fail(code: aclError, message: &str) -> aclError {
    let text = CString::new(format!("fake: {message}")).unwrap_or_default();
    MESSAGE.with(|m| *m.borrow_mut() = Some(text));
    code
}

/// The checks every call after `aclInit` makes: initialized, and (if `context`) a current one.
fn enter(state: &State, context: bool) -> std::result::Result<i32, aclError> {
    if !state.initialized {
        return Err(fail(ACL_ERROR_UNINITIALIZE, "not initialized"));
    }
    match device_of(state, CURRENT.with(Cell::get)) {
        Some(device) => Ok(device),
        None if context => Err(fail(ACL_ERROR_RT_CONTEXT_NULL, "no current context")),
        None => Ok(-1),
    }
}

macro_rules! enter {
    ($state:ident, $context:expr) => {
        match enter($state, $context) {
            Ok(device) => device,
            Err(code) => return code,
        }
    };
}

fn call(f: impl FnOnce(&mut State) -> aclError) -> aclError {
    with(f)
}

fn new_handle(state: &mut State) -> usize {
    state.next_handle += 1;
    0x5000_0000 + state.next_handle * 0x10
}

fn live_stream(
    state: &State,
    stream: aclrtStream,
    device: i32,
) -> std::result::Result<usize, aclError> {
    let key = stream as usize;
    if key == 0 {
        return Ok(0); // the current context's default stream
    }
    match state.streams.get(&key) {
        Some(s) if s.alive && s.device == device && s.ctx == CURRENT.with(Cell::get) => Ok(key),
        Some(s) if s.alive => Err(fail(
            ACL_ERROR_RT_STREAM_CONTEXT,
            &format!(
                "stream of device {} (context {:#x}) used under device {device}",
                s.device, s.ctx
            ),
        )),
        _ => Err(fail(ACL_ERROR_RT_INVALID_HANDLE, "no such stream")),
    }
}

fn live_notify(state: &State, notify: aclrtNotify) -> std::result::Result<usize, aclError> {
    match state.notifies.get(&(notify as usize)) {
        Some(n) if n.alive => Ok(notify as usize),
        _ => Err(fail(ACL_ERROR_RT_INVALID_HANDLE, "no such notify")),
    }
}

extern "C" fn aclInit(_config: *const c_char) -> aclError {
    call(|s| {
        s.init_calls += 1;
        if let Some(code) = s.init_fails_with {
            return fail(code, "aclInit failed (as the test asked)");
        }
        if s.initialized {
            return fail(ACL_ERROR_REPEAT_INITIALIZE, "initialized twice");
        }
        s.initialized = true;
        ACL_SUCCESS
    })
}

extern "C" fn aclFinalize() -> aclError {
    call(|s| {
        enter!(s, false);
        s.finalize_calls += 1;
        s.initialized = false;
        ACL_SUCCESS
    })
}

extern "C" fn aclrtSetDevice(device: i32) -> aclError {
    call(|s| {
        enter!(s, false);
        if !(0..DEVICES as i32).contains(&device) {
            return fail(ACL_ERROR_RT_INVALID_DEVICEID, &format!("device {device}"));
        }
        s.set_device_calls += 1;
        *s.retains.entry(device).or_default() += 1;
        CURRENT.with(|c| c.set(CONTEXT_BASE + device as usize));
        ACL_SUCCESS
    })
}

extern "C" fn aclrtResetDevice(device: i32) -> aclError {
    call(|s| {
        enter!(s, false);
        match s.retains.get_mut(&device) {
            Some(count) if *count > 0 => *count -= 1,
            _ => return fail(ACL_ERROR_RT_INVALID_DEVICEID, "device not set"),
        }
        s.reset_device_calls += 1;
        ACL_SUCCESS
    })
}

extern "C" fn aclrtGetDevice(device: *mut i32) -> aclError {
    call(|s| {
        let current = enter!(s, true);
        // SAFETY: the caller passes a live out-pointer (result.rs: a local).
        unsafe { device.write(current) };
        ACL_SUCCESS
    })
}

extern "C" fn aclrtGetDeviceCount(count: *mut u32) -> aclError {
    call(|s| {
        enter!(s, false);
        // SAFETY: the caller passes a live out-pointer (result.rs: a local).
        unsafe { count.write(DEVICES) };
        ACL_SUCCESS
    })
}

extern "C" fn aclrtGetCurrentContext(context: *mut aclrtContext) -> aclError {
    call(|s| {
        enter!(s, true);
        // SAFETY: the caller passes a live out-pointer (result.rs: a local).
        unsafe { context.write(CURRENT.with(Cell::get) as aclrtContext) };
        ACL_SUCCESS
    })
}

extern "C" fn aclrtSetCurrentContext(context: aclrtContext) -> aclError {
    call(|s| {
        enter!(s, false);
        if device_of(s, context as usize).is_none() {
            return fail(ACL_ERROR_RT_INVALID_HANDLE, "no such context");
        }
        s.set_context_calls += 1;
        CURRENT.with(|c| c.set(context as usize));
        ACL_SUCCESS
    })
}

extern "C" fn aclrtCreateStream(stream: *mut aclrtStream) -> aclError {
    call(|s| {
        let device = enter!(s, true);
        let key = new_handle(s);
        s.streams.insert(
            key,
            FakeStream {
                device,
                ctx: CURRENT.with(Cell::get),
                alive: true,
            },
        );
        // SAFETY: the caller passes a live out-pointer (result.rs: a local).
        unsafe { stream.write(key as aclrtStream) };
        ACL_SUCCESS
    })
}

extern "C" fn aclrtDestroyStream(stream: aclrtStream) -> aclError {
    // As the runtime does, the stream's tasks finish first.
    let queue = with(|s| {
        let device = device_of(s, CURRENT.with(Cell::get)).unwrap_or(-1);
        live_stream(s, stream, device).ok()
    });
    if let Some(key) = queue.filter(|&k| k != 0) {
        run_queue(key);
    }
    call(|s| {
        let device = enter!(s, true);
        let key = match live_stream(s, stream, device) {
            Ok(0) => return fail(ACL_ERROR_INVALID_PARAM, "NULL stream"),
            Ok(key) => key,
            Err(code) => return code,
        };
        if let Some(entry) = s.streams.get_mut(&key) {
            entry.alive = false;
        }
        let code = match s.destroy_stream_fails_with {
            Some(code) => fail(code, "destroy failed (as the test asked)"),
            None => ACL_SUCCESS,
        };
        s.stream_destroys.push((key, code));
        code
    })
}

fn synchronize(stream: aclrtStream, timeout: Option<i32>) -> aclError {
    let mut guard = lock();
    let Some(s) = guard.as_mut() else {
        return fail(ACL_ERROR_UNINITIALIZE, "no state");
    };
    let device = enter!(s, true);
    let key = match live_stream(s, stream, device) {
        Ok(key) => key,
        Err(code) => return code,
    };
    let queue = queue_key(key);
    if RUNNING.with(Cell::get) == queue {
        s.refused_syncs += 1;
        return fail(
            ACL_ERROR_RT_PARAM_INVALID,
            "H1: a host function synchronized its stream",
        );
    }
    s.syncs.push((key, device, timeout));
    s.at_gate += 1;
    CHANGED.notify_all();
    let mut guard = CHANGED
        .wait_while(guard, |s| s.as_ref().is_some_and(|s| s.gate_closed))
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(s) = guard.as_mut() {
        s.at_gate -= 1;
    }
    CHANGED.notify_all();
    drop(guard);
    run_queue(queue);
    ACL_SUCCESS
}

extern "C" fn aclrtSynchronizeStream(stream: aclrtStream) -> aclError {
    synchronize(stream, None)
}

extern "C" fn aclrtSynchronizeStreamWithTimeout(stream: aclrtStream, timeout: i32) -> aclError {
    synchronize(stream, Some(timeout))
}

extern "C" fn aclrtCreateNotify(notify: *mut aclrtNotify, _flag: u64) -> aclError {
    call(|s| {
        let device = enter!(s, true);
        let key = new_handle(s);
        s.notifies.insert(
            key,
            FakeNotify {
                device,
                alive: true,
            },
        );
        // SAFETY: the caller passes a live out-pointer (result.rs: a local).
        unsafe { notify.write(key as aclrtNotify) };
        ACL_SUCCESS
    })
}

extern "C" fn aclrtDestroyNotify(notify: aclrtNotify) -> aclError {
    call(|s| {
        enter!(s, true);
        let key = match live_notify(s, notify) {
            Ok(key) => key,
            Err(code) => return code,
        };
        if let Some(entry) = s.notifies.get_mut(&key) {
            entry.alive = false;
        }
        ACL_SUCCESS
    })
}

extern "C" fn aclrtRecordNotify(notify: aclrtNotify, stream: aclrtStream) -> aclError {
    call(|s| {
        let device = enter!(s, true);
        let notify = match live_notify(s, notify) {
            Ok(key) => key,
            Err(code) => return code,
        };
        let stream = match live_stream(s, stream, device) {
            Ok(key) => key,
            Err(code) => return code,
        };
        s.records.push((notify, stream, device));
        ACL_SUCCESS
    })
}

extern "C" fn aclrtWaitAndResetNotify(
    notify: aclrtNotify,
    stream: aclrtStream,
    timeout: u32,
) -> aclError {
    call(|s| {
        let device = enter!(s, true);
        let key = match live_notify(s, notify) {
            Ok(key) => key,
            Err(code) => return code,
        };
        let stream = match live_stream(s, stream, device) {
            Ok(key) => key,
            Err(code) => return code,
        };
        // R4: a wait on a stream of another device than the notify's.
        if s.notifies.get(&key).is_some_and(|n| n.device != device) {
            return fail(ACL_ERROR_RT_PARAM_INVALID, "wait on another device");
        }
        s.waits.push((key, stream, timeout));
        ACL_SUCCESS
    })
}

extern "C" fn aclrtGetNotifyId(notify: aclrtNotify, id: *mut u32) -> aclError {
    call(|s| {
        enter!(s, true);
        let key = match live_notify(s, notify) {
            Ok(key) => key,
            Err(code) => return code,
        };
        // SAFETY: the caller passes a live out-pointer (result.rs: a local).
        unsafe { id.write((key >> 4) as u32) };
        ACL_SUCCESS
    })
}

extern "C" fn aclrtNotifyBatchReset(notifies: *mut aclrtNotify, num: usize) -> aclError {
    call(|s| {
        enter!(s, false);
        if notifies.is_null() {
            return fail(ACL_ERROR_INVALID_PARAM, "NULL array");
        }
        if num == 0 {
            return fail(ACL_ERROR_RT_PARAM_INVALID, "num == 0");
        }
        // SAFETY: non-NULL, and the caller passes an array of `num` handles (result.rs: a Vec
        // of that length).
        let array = unsafe { std::slice::from_raw_parts(notifies, num) };
        let mut keys = Vec::new();
        for &notify in array {
            match live_notify(s, notify) {
                Ok(key) => keys.push(key),
                Err(code) => return code,
            }
        }
        s.batch_resets.push(keys);
        ACL_SUCCESS
    })
}

extern "C" fn aclrtNotifyGetExportKey(
    notify: aclrtNotify,
    key: *mut c_char,
    len: usize,
    _flags: u64,
) -> aclError {
    call(|s| {
        enter!(s, true);
        let handle = match live_notify(s, notify) {
            Ok(key) => key,
            Err(code) => return code,
        };
        let text = format!("fake-{handle:x}\0");
        if len < text.len() {
            return fail(ACL_ERROR_RT_PARAM_INVALID, "len");
        }
        // SAFETY: the caller passes a writable buffer of `len` bytes (result.rs: 65), and the
        // text with its NUL fits (checked above).
        unsafe { std::ptr::copy_nonoverlapping(text.as_ptr().cast(), key, text.len()) };
        ACL_SUCCESS
    })
}

extern "C" fn aclrtNotifyImportByKey(
    notify: *mut aclrtNotify,
    key: *const c_char,
    _flags: u64,
) -> aclError {
    call(|s| {
        let device = enter!(s, true);
        // SAFETY: the caller passes a NUL-terminated string (result.rs: a 65-byte key buffer).
        let text = unsafe { std::ffi::CStr::from_ptr(key) }.to_string_lossy();
        let Some(source) = text
            .strip_prefix("fake-")
            .and_then(|hex| usize::from_str_radix(hex, 16).ok())
        else {
            return fail(ACL_ERROR_RT_PARAM_INVALID, "malformed key");
        };
        if !s.notifies.contains_key(&source) {
            return fail(ACL_ERROR_RT_DRV_INTERNAL_ERROR, "unknown key");
        }
        let handle = new_handle(s);
        s.notifies.insert(
            handle,
            FakeNotify {
                device,
                alive: true,
            },
        );
        // SAFETY: the caller passes a live out-pointer (result.rs: a local).
        unsafe { notify.write(handle as aclrtNotify) };
        ACL_SUCCESS
    })
}

extern "C" fn aclrtNotifySetImportPid(notify: aclrtNotify, pid: *mut i32, num: usize) -> aclError {
    call(|s| {
        enter!(s, true);
        let key = match live_notify(s, notify) {
            Ok(key) => key,
            Err(code) => return code,
        };
        if pid.is_null() {
            return fail(ACL_ERROR_INVALID_PARAM, "NULL pid");
        }
        // SAFETY: non-NULL, and the caller passes `num` pids (result.rs: one local).
        let pids = unsafe { std::slice::from_raw_parts(pid, num) }.to_vec();
        s.import_pids.push((key, pids));
        ACL_SUCCESS
    })
}

extern "C" fn aclrtDeviceGetBareTgid(pid: *mut i32) -> aclError {
    call(|s| {
        enter!(s, false);
        // SAFETY: the caller passes a live out-pointer (result.rs: a local).
        unsafe { pid.write(BARE_TGID) };
        ACL_SUCCESS
    })
}

extern "C" fn aclrtDeviceCanAccessPeer(can: *mut i32, device: i32, peer: i32) -> aclError {
    call(|s| {
        enter!(s, false);
        if device == peer {
            return fail(ACL_ERROR_RT_PARAM_INVALID, "device == peer");
        }
        // SAFETY: the caller passes a live out-pointer (result.rs: a local).
        unsafe { can.write(1) };
        ACL_SUCCESS
    })
}

extern "C" fn aclrtDeviceEnablePeerAccess(peer: i32, flags: u32) -> aclError {
    call(|s| {
        let device = enter!(s, true);
        if peer == device {
            return fail(
                ACL_ERROR_RT_PARAM_INVALID,
                "peer access to the device itself",
            );
        }
        s.peer_enables.push((device, peer, flags));
        ACL_SUCCESS
    })
}

extern "C" fn aclGetRecentErrMsg() -> *const c_char {
    // The pointer stays valid until this thread's next failing call replaces the text, which is
    // the C contract.
    MESSAGE.with(|m| m.borrow().as_ref().map_or(std::ptr::null(), |t| t.as_ptr()))
}

// ---------------------------------------------------------------------------------------------
// §5 and §6: queues, memory, host functions, events, contexts.

/// The queue of stream `key` (0: the current context's default stream).
fn queue_key(key: usize) -> usize {
    if key == 0 {
        CURRENT.with(Cell::get)
    } else {
        key
    }
}

/// The context and device of queue `queue`.
fn queue_context(state: &State, queue: usize) -> (usize, i32) {
    match state.streams.get(&queue) {
        Some(stream) => (stream.ctx, stream.device),
        None => (queue, device_of(state, queue).unwrap_or(-1)),
    }
}

/// How many queued tasks touch device memory in `start..start + len`.
fn pending_on(state: &State, start: usize, len: usize) -> usize {
    state
        .queues
        .values()
        .flatten()
        .filter(|t| t.touches(start, len))
        .count()
}

/// Runs the tasks of `queue` in order on this thread, without the lock while a host function
/// runs (it calls back into the fake).
fn run_queue(queue: usize) {
    loop {
        let Some(task) = with(|s| s.queues.get_mut(&queue).and_then(VecDeque::pop_front)) else {
            return;
        };
        match task {
            Task::HostFn { f, args } => {
                let ctx = with(|s| queue_context(s, queue).0);
                let previous = CURRENT.with(|c| c.replace(ctx));
                let outer = RUNNING.with(|r| r.replace(queue));
                // SAFETY: `f` and `args` are what `aclrtLaunchHostFunc` was given: the caller's
                // contract is that `f(args)` may be called once, on any thread.
                unsafe { f(args as *mut c_void) };
                RUNNING.with(|r| r.set(outer));
                let left = CURRENT.with(|c| c.replace(previous));
                with(|s| s.host_fn_left_context.push(left == ctx));
            }
            other => with(|s| run_task(s, other)),
        }
    }
}

/// Runs the queues of every stream of `device`.
fn run_device(device: i32) {
    let queues: Vec<usize> = with(|s| {
        s.queues
            .keys()
            .copied()
            .filter(|&q| queue_context(s, q).1 == device)
            .collect()
    });
    for queue in queues {
        run_queue(queue);
    }
}

/// The device bytes at `addr..addr + len`, if they lie inside one live allocation or import.
fn device_bytes(state: &mut State, addr: usize, len: usize) -> Option<&mut [u8]> {
    let (base, offset) = resolve(state, addr, len)?;
    let data = &mut state.allocs.get_mut(&base)?.data;
    data.get_mut(offset..offset + len)
}

fn resolve(state: &State, addr: usize, len: usize) -> Option<(usize, usize)> {
    let end = addr.checked_add(len)?;
    if let Some((&start, alloc)) = state.allocs.range(..=addr).next_back()
        && alloc.alive
        && end <= start + alloc.data.len()
    {
        return Some((start, addr - start));
    }
    let (&start, import) = state.imports.range(..=addr).next_back()?;
    if !import.alive || end > start + import.len {
        return None;
    }
    Some((import.base, import.offset + (addr - start)))
}

fn run_task(state: &mut State, task: Task) {
    match task {
        Task::Copy {
            dst,
            src,
            count,
            kind,
        } => {
            // A copy that cannot run is a fake failure the tests see as a panic in the test.
            copy(state, dst, src, count, kind).expect("a queued copy ran against dead memory");
        }
        Task::Set { dst, value, count } => {
            let bytes = device_bytes(state, dst, count).expect("a queued set on dead memory");
            bytes.fill(value);
        }
        Task::RecordEvent(event) => {
            state.clock += 2.5;
            let now = state.clock;
            if let Some(e) = state.events.get_mut(&event) {
                e.pending = e.pending.saturating_sub(1);
                e.stamp = Some(now);
            }
        }
        Task::ResetEvent(event) => {
            if let Some(e) = state.events.get_mut(&event) {
                e.stamp = None;
            }
        }
        Task::HostFn { .. } => unreachable!("run by run_queue"),
    }
}

/// Copies `count` bytes as `kind` says; host pointers are read and written here.
fn copy(state: &mut State, dst: usize, src: usize, count: usize, kind: u32) -> Option<()> {
    match kind {
        ACL_MEMCPY_HOST_TO_DEVICE => {
            // SAFETY: the caller's contract for a host source: valid for `count` bytes until the
            // copy has run (the tests check that the backend keeps it so).
            let from = unsafe { std::slice::from_raw_parts(src as *const u8, count) };
            device_bytes(state, dst, count)?.copy_from_slice(from);
        }
        ACL_MEMCPY_DEVICE_TO_HOST => {
            let from = device_bytes(state, src, count)?.to_vec();
            // SAFETY: the caller's contract for a host destination: valid for writing `count`
            // bytes until the copy has run.
            unsafe { std::ptr::copy_nonoverlapping(from.as_ptr(), dst as *mut u8, count) };
        }
        ACL_MEMCPY_DEVICE_TO_DEVICE => {
            let from = device_bytes(state, src, count)?.to_vec();
            device_bytes(state, dst, count)?.copy_from_slice(&from);
        }
        _ => return None,
    }
    Some(())
}

/// The checks of a copy at enqueue (or before a synchronous one): the device side(s) must be
/// live memory, `count <= destMax`.
fn check_copy(
    state: &State,
    dst: usize,
    dest_max: usize,
    src: usize,
    count: usize,
    kind: u32,
) -> std::result::Result<(), aclError> {
    if dst == 0 || src == 0 {
        return Err(fail(ACL_ERROR_INVALID_PARAM, "NULL pointer"));
    }
    if count > dest_max {
        return Err(fail(ACL_ERROR_RT_PARAM_INVALID, "count > destMax"));
    }
    let (dev_dst, dev_src) = match kind {
        ACL_MEMCPY_HOST_TO_DEVICE => (true, false),
        ACL_MEMCPY_DEVICE_TO_HOST => (false, true),
        ACL_MEMCPY_DEVICE_TO_DEVICE => (true, true),
        _ => return Err(fail(ACL_ERROR_RT_PARAM_INVALID, "unknown kind")),
    };
    if (dev_dst && resolve(state, dst, dest_max).is_none())
        || (dev_src && resolve(state, src, count).is_none())
    {
        return Err(fail(
            ACL_ERROR_RT_PARAM_INVALID,
            "M2: not live device memory",
        ));
    }
    Ok(())
}

extern "C" fn aclrtMalloc(ptr: *mut *mut c_void, size: usize, policy: u32) -> aclError {
    call(|s| {
        let device = enter!(s, true);
        if size == 0 || policy > 7 {
            return fail(ACL_ERROR_RT_PARAM_INVALID, "size 0 or unknown policy");
        }
        s.calls.push("aclrtMalloc");
        let addr = ALLOC_BASE + s.next_alloc * ALLOC_STRIDE;
        s.next_alloc += size.div_ceil(ALLOC_STRIDE).max(1);
        s.allocs.insert(
            addr,
            FakeAlloc {
                device,
                data: vec![0; size],
                alive: true,
            },
        );
        s.mallocs.push((size, policy, device));
        // SAFETY: the caller passes a live out-pointer (result.rs: a local).
        unsafe { ptr.write(std::ptr::with_exposed_provenance_mut(addr)) };
        ACL_SUCCESS
    })
}

extern "C" fn aclrtFree(ptr: *mut c_void) -> aclError {
    call(|s| {
        enter!(s, true);
        let addr = ptr.addr();
        let Some(alloc) = s.allocs.get(&addr).filter(|a| a.alive) else {
            return fail(ACL_ERROR_RT_PARAM_INVALID, "M1: not a live allocation");
        };
        let len = alloc.data.len();
        s.calls.push("aclrtFree");
        let pending = pending_on(s, addr, len);
        s.frees.push((addr, pending));
        if let Some(alloc) = s.allocs.get_mut(&addr) {
            alloc.alive = false;
        }
        ACL_SUCCESS
    })
}

extern "C" fn aclrtMemcpy(
    dst: *mut c_void,
    dest_max: usize,
    src: *const c_void,
    count: usize,
    kind: u32,
) -> aclError {
    call(|s| {
        let device = enter!(s, true);
        let (dst, src) = (dst.addr(), src.addr());
        if let Err(code) = check_copy(s, dst, dest_max, src, count, kind) {
            return code;
        }
        s.calls.push("aclrtMemcpy");
        s.memcpys.push(MemcpyCall {
            dst,
            dest_max,
            src,
            count,
            kind,
            stream: None,
            device,
        });
        match copy(s, dst, src, count, kind) {
            Some(()) => ACL_SUCCESS,
            None => fail(ACL_ERROR_RT_PARAM_INVALID, "copy failed"),
        }
    })
}

extern "C" fn aclrtMemcpyAsync(
    dst: *mut c_void,
    dest_max: usize,
    src: *const c_void,
    count: usize,
    kind: u32,
    stream: aclrtStream,
) -> aclError {
    call(|s| {
        let device = enter!(s, true);
        let key = match live_stream(s, stream, device) {
            Ok(key) => queue_key(key),
            Err(code) => return code,
        };
        if let Some(code) = s.memcpy_async_fails_with {
            return fail(code, "aclrtMemcpyAsync failed (as the test asked)");
        }
        let (dst, src) = (dst.addr(), src.addr());
        if let Err(code) = check_copy(s, dst, dest_max, src, count, kind) {
            return code;
        }
        s.calls.push("aclrtMemcpyAsync");
        s.memcpys.push(MemcpyCall {
            dst,
            dest_max,
            src,
            count,
            kind,
            stream: Some(key),
            device,
        });
        s.queues.entry(key).or_default().push_back(Task::Copy {
            dst,
            src,
            count,
            kind,
        });
        ACL_SUCCESS
    })
}

fn set(
    dst: *mut c_void,
    max: usize,
    value: i32,
    count: usize,
    stream: Option<aclrtStream>,
) -> aclError {
    call(|s| {
        let device = enter!(s, true);
        let key = match stream.map(|st| live_stream(s, st, device)) {
            None => None,
            Some(Ok(key)) => Some(queue_key(key)),
            Some(Err(code)) => return code,
        };
        let dst = dst.addr();
        if count > max {
            return fail(ACL_ERROR_RT_PARAM_INVALID, "count > maxCount");
        }
        if resolve(s, dst, max).is_none() {
            return fail(ACL_ERROR_RT_PARAM_INVALID, "M2: not live device memory");
        }
        s.calls.push(if key.is_some() {
            "aclrtMemsetAsync"
        } else {
            "aclrtMemset"
        });
        s.memsets.push(MemsetCall {
            dst,
            max,
            value,
            count,
            stream: key,
            device,
        });
        // M2: the value converted to a byte, as C memset does.
        let byte = value as u8;
        match key {
            Some(key) => s.queues.entry(key).or_default().push_back(Task::Set {
                dst,
                value: byte,
                count,
            }),
            None => match device_bytes(s, dst, count) {
                Some(bytes) => bytes.fill(byte),
                None => return fail(ACL_ERROR_RT_PARAM_INVALID, "set failed"),
            },
        }
        ACL_SUCCESS
    })
}

extern "C" fn aclrtMemset(dst: *mut c_void, max: usize, value: i32, count: usize) -> aclError {
    set(dst, max, value, count, None)
}

extern "C" fn aclrtMemsetAsync(
    dst: *mut c_void,
    max: usize,
    value: i32,
    count: usize,
    stream: aclrtStream,
) -> aclError {
    set(dst, max, value, count, Some(stream))
}

extern "C" fn aclrtGetMemInfo(attr: u32, free: *mut usize, total: *mut usize) -> aclError {
    call(|s| {
        let device = enter!(s, true);
        s.mem_infos.push((attr, device));
        let used: usize = s
            .allocs
            .values()
            .filter(|a| a.alive && a.device == device)
            .map(|a| a.data.len())
            .sum();
        // SAFETY: the caller passes live out-pointers (result.rs: locals).
        unsafe {
            free.write(DEVICE_MEMORY - used);
            total.write(DEVICE_MEMORY);
        }
        ACL_SUCCESS
    })
}

/// A key's text, read from the caller's C string.
fn key_text(key: *const c_char) -> String {
    // SAFETY: the caller passes a NUL-terminated string (result.rs: a 65-byte key buffer).
    unsafe { CStr::from_ptr(key) }
        .to_string_lossy()
        .into_owned()
}

extern "C" fn aclrtIpcMemGetExportKey(
    ptr: *mut c_void,
    size: usize,
    key: *mut c_char,
    len: usize,
    flags: u64,
) -> aclError {
    call(|s| {
        enter!(s, true);
        let addr = ptr.addr();
        if resolve(s, addr, size).is_none() || s.imports.contains_key(&addr) {
            return fail(
                ACL_ERROR_RT_PARAM_INVALID,
                "M3: not live memory of this process",
            );
        }
        let text = format!("fakemem-{addr:x}-{size:x}\0");
        if len < text.len() {
            return fail(ACL_ERROR_RT_PARAM_INVALID, "len");
        }
        s.calls.push("aclrtIpcMemGetExportKey");
        s.mem_exports.push((addr, size, len, flags));
        // SAFETY: the caller passes a writable buffer of `len` bytes (result.rs: 65), and the
        // text with its NUL fits (checked above).
        unsafe { std::ptr::copy_nonoverlapping(text.as_ptr().cast(), key, text.len()) };
        ACL_SUCCESS
    })
}

extern "C" fn aclrtIpcMemSetImportPid(key: *const c_char, pid: *mut i32, num: usize) -> aclError {
    call(|s| {
        enter!(s, false);
        if key.is_null() || pid.is_null() {
            return fail(ACL_ERROR_INVALID_PARAM, "NULL");
        }
        if num == 0 || num > 31 {
            return fail(ACL_ERROR_RT_PARAM_INVALID, "M4: num");
        }
        // SAFETY: non-NULL, and the caller passes `num` pids (result.rs: a Vec of that length).
        let pids = unsafe { std::slice::from_raw_parts(pid, num) }.to_vec();
        s.calls.push("aclrtIpcMemSetImportPid");
        s.mem_import_pids.push((key_text(key), pids));
        ACL_SUCCESS
    })
}

extern "C" fn aclrtIpcMemImportByKey(
    ptr: *mut *mut c_void,
    key: *const c_char,
    flags: u64,
) -> aclError {
    call(|s| {
        enter!(s, true);
        let text = key_text(key);
        let parsed = text.strip_prefix("fakemem-").and_then(|rest| {
            let (addr, size) = rest.split_once('-')?;
            Some((
                usize::from_str_radix(addr, 16).ok()?,
                usize::from_str_radix(size, 16).ok()?,
            ))
        });
        let Some((addr, size)) = parsed else {
            return fail(ACL_ERROR_RT_PARAM_INVALID, "malformed key");
        };
        let Some((base, offset)) = resolve(s, addr, size) else {
            return fail(ACL_ERROR_RT_DRV_INTERNAL_ERROR, "unknown key");
        };
        s.calls.push("aclrtIpcMemImportByKey");
        let mapped = IMPORT_BASE + s.next_import * ALLOC_STRIDE;
        s.next_import += size.div_ceil(ALLOC_STRIDE).max(1);
        // An alias of the exported bytes, at an address of its own (M5).
        s.imports.insert(
            mapped,
            FakeImport {
                base,
                offset,
                len: size,
                key: text.clone(),
                alive: true,
            },
        );
        s.mem_imports.push((text, flags));
        // SAFETY: the caller passes a live out-pointer (result.rs: a local).
        unsafe { ptr.write(std::ptr::with_exposed_provenance_mut(mapped)) };
        ACL_SUCCESS
    })
}

extern "C" fn aclrtIpcMemClose(key: *const c_char) -> aclError {
    call(|s| {
        enter!(s, false);
        let text = key_text(key);
        s.calls.push("aclrtIpcMemClose");
        let import = s
            .imports
            .iter()
            .find(|(_, i)| i.alive && i.key == text)
            .map(|(&at, i)| (at, i.len));
        let pending = match import {
            Some((at, len)) => {
                let pending = pending_on(s, at, len);
                if let Some(i) = s.imports.get_mut(&at) {
                    i.alive = false;
                }
                pending
            }
            None => 0,
        };
        s.mem_closes.push((text, pending));
        ACL_SUCCESS
    })
}

extern "C" fn aclrtLaunchHostFunc(
    stream: aclrtStream,
    f: aclrtHostFunc,
    args: *mut c_void,
) -> aclError {
    call(|s| {
        let device = enter!(s, true);
        let key = match live_stream(s, stream, device) {
            Ok(key) => queue_key(key),
            Err(code) => return code,
        };
        let Some(f) = f else {
            return fail(ACL_ERROR_INVALID_PARAM, "NULL fn");
        };
        if let Some(code) = s.launch_fails_with {
            return fail(code, "aclrtLaunchHostFunc failed (as the test asked)");
        }
        s.calls.push("aclrtLaunchHostFunc");
        s.launches.push((key, args.addr()));
        s.queues.entry(key).or_default().push_back(Task::HostFn {
            f,
            args: args.expose_provenance(),
        });
        ACL_SUCCESS
    })
}

fn live_event(state: &State, event: aclrtEvent) -> std::result::Result<usize, aclError> {
    match state.events.get(&(event as usize)) {
        Some(e) if e.alive => Ok(event as usize),
        _ => Err(fail(ACL_ERROR_RT_INVALID_HANDLE, "no such event")),
    }
}

macro_rules! live {
    ($e:expr) => {
        match $e {
            Ok(key) => key,
            Err(code) => return code,
        }
    };
}

extern "C" fn aclrtCreateEventWithFlag(event: *mut aclrtEvent, flags: u32) -> aclError {
    call(|s| {
        enter!(s, true);
        if flags & !0xB != 0 {
            return fail(ACL_ERROR_RT_PARAM_INVALID, "E1: flags");
        }
        s.calls.push("aclrtCreateEventWithFlag");
        let key = new_handle(s);
        s.events.insert(
            key,
            FakeEvent {
                ctx: CURRENT.with(Cell::get),
                flags,
                alive: true,
                pending: 0,
                stamp: None,
            },
        );
        // SAFETY: the caller passes a live out-pointer (result.rs: a local).
        unsafe { event.write(key as aclrtEvent) };
        ACL_SUCCESS
    })
}

extern "C" fn aclrtDestroyEvent(event: aclrtEvent) -> aclError {
    call(|s| {
        enter!(s, true);
        let key = live!(live_event(s, event));
        s.calls.push("aclrtDestroyEvent");
        if let Some(e) = s.events.get_mut(&key) {
            e.alive = false;
        }
        ACL_SUCCESS
    })
}

fn event_task(event: aclrtEvent, stream: aclrtStream, record: bool) -> aclError {
    call(|s| {
        let device = enter!(s, true);
        let key = live!(live_event(s, event));
        let queue = queue_key(live!(live_stream(s, stream, device)));
        if s.events[&key].ctx != CURRENT.with(Cell::get) {
            return fail(
                ACL_ERROR_RT_STREAM_CONTEXT,
                "C1: an event of another context",
            );
        }
        let task = if record {
            s.calls.push("aclrtRecordEvent");
            if let Some(e) = s.events.get_mut(&key) {
                e.pending += 1;
            }
            Task::RecordEvent(key)
        } else {
            s.calls.push("aclrtResetEvent");
            Task::ResetEvent(key)
        };
        s.queues.entry(queue).or_default().push_back(task);
        ACL_SUCCESS
    })
}

extern "C" fn aclrtRecordEvent(event: aclrtEvent, stream: aclrtStream) -> aclError {
    event_task(event, stream, true)
}

extern "C" fn aclrtResetEvent(event: aclrtEvent, stream: aclrtStream) -> aclError {
    event_task(event, stream, false)
}

extern "C" fn aclrtStreamWaitEvent(stream: aclrtStream, event: aclrtEvent) -> aclError {
    call(|s| {
        let device = enter!(s, true);
        let key = live!(live_event(s, event));
        let queue = queue_key(live!(live_stream(s, stream, device)));
        s.calls.push("aclrtStreamWaitEvent");
        s.event_waits.push((queue, key));
        ACL_SUCCESS
    })
}

extern "C" fn aclrtSynchronizeEvent(event: aclrtEvent) -> aclError {
    let device = with(|s| {
        let device = enter(s, true)?;
        live_event(s, event)?;
        s.calls.push("aclrtSynchronizeEvent");
        Ok(device)
    });
    match device {
        Ok(device) => {
            run_device(device);
            ACL_SUCCESS
        }
        Err(code) => code,
    }
}

extern "C" fn aclrtQueryEventStatus(event: aclrtEvent, status: *mut u32) -> aclError {
    call(|s| {
        enter!(s, true);
        let key = live!(live_event(s, event));
        let complete = s.events[&key].pending == 0;
        // SAFETY: the caller passes a live out-pointer (result.rs: a local).
        unsafe {
            status.write(if complete {
                ACL_EVENT_RECORDED_STATUS_COMPLETE
            } else {
                ACL_EVENT_RECORDED_STATUS_NOT_READY
            })
        };
        ACL_SUCCESS
    })
}

extern "C" fn aclrtEventElapsedTime(ms: *mut f32, start: aclrtEvent, end: aclrtEvent) -> aclError {
    call(|s| {
        enter!(s, true);
        let start = live!(live_event(s, start));
        let end = live!(live_event(s, end));
        let stamp = |key: usize| {
            let e = &s.events[&key];
            e.stamp.filter(|_| e.pending == 0)
        };
        let (Some(a), Some(b)) = (stamp(start), stamp(end)) else {
            return fail(ACL_ERROR_RT_PARAM_INVALID, "E1: not complete");
        };
        // SAFETY: the caller passes a live out-pointer (result.rs: a local).
        unsafe { ms.write(b - a) };
        ACL_SUCCESS
    })
}

extern "C" fn aclrtCreateContext(context: *mut aclrtContext, device: i32) -> aclError {
    call(|s| {
        enter!(s, false);
        if !(0..DEVICES as i32).contains(&device) {
            return fail(ACL_ERROR_RT_INVALID_DEVICEID, &format!("device {device}"));
        }
        s.calls.push("aclrtCreateContext");
        s.next_context += 1;
        let ctx = CREATED_CONTEXT_BASE + s.next_context * 0x10;
        s.contexts.insert(ctx, (device, true));
        CURRENT.with(|c| c.set(ctx));
        // SAFETY: the caller passes a live out-pointer (result.rs: a local).
        unsafe { context.write(ctx as aclrtContext) };
        ACL_SUCCESS
    })
}

extern "C" fn aclrtDestroyContext(context: aclrtContext) -> aclError {
    call(|s| {
        enter!(s, false);
        match s.contexts.get_mut(&(context as usize)) {
            Some(entry) if entry.1 => entry.1 = false,
            _ => return fail(ACL_ERROR_RT_PARAM_INVALID, "C1: not a created context"),
        }
        s.calls.push("aclrtDestroyContext");
        ACL_SUCCESS
    })
}

extern "C" fn aclrtStreamQuery(stream: aclrtStream, status: *mut u32) -> aclError {
    call(|s| {
        let device = enter!(s, true);
        let queue = queue_key(live!(live_stream(s, stream, device)));
        let idle = s.queues.get(&queue).is_none_or(VecDeque::is_empty);
        // SAFETY: the caller passes a live out-pointer (result.rs: a local).
        unsafe {
            status.write(if idle {
                ACL_STREAM_STATUS_COMPLETE
            } else {
                ACL_STREAM_STATUS_NOT_READY
            })
        };
        ACL_SUCCESS
    })
}

extern "C" fn aclrtSynchronizeDevice() -> aclError {
    let device = with(|s| {
        let device = enter(s, true)?;
        if RUNNING.with(Cell::get) != 0 {
            s.refused_syncs += 1;
            return Err(fail(
                ACL_ERROR_RT_PARAM_INVALID,
                "H1: a host function synchronized its device",
            ));
        }
        s.calls.push("aclrtSynchronizeDevice");
        s.device_syncs.push(device);
        Ok(device)
    });
    match device {
        Ok(device) => {
            run_device(device);
            ACL_SUCCESS
        }
        Err(code) => code,
    }
}
