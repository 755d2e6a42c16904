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
//! The state is process-global (the fakes are `extern "C"` functions, which capture nothing), so
//! tests that use it hold [`serial`] for their whole run.

#![allow(non_snake_case)]

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::{CString, c_char};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::*;

/// Devices the fake has.
pub(crate) const DEVICES: u32 = 2;

/// What `aclrtDeviceGetBareTgid` answers.
pub(crate) const BARE_TGID: i32 = 4242;

/// The context pointer value of device `d` (its default context).
const CONTEXT_BASE: usize = 0xC0_0000;

/// One stream the fake made.
#[derive(Debug, Clone)]
pub(crate) struct FakeStream {
    pub(crate) device: i32,
    pub(crate) alive: bool,
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
    match CURRENT.with(Cell::get) {
        0 => None,
        ctx => Some((ctx - CONTEXT_BASE) as i32),
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
    match current_device() {
        Some(device) if state.retains.get(&device).copied().unwrap_or(0) > 0 => Ok(device),
        _ if context => Err(fail(ACL_ERROR_RT_CONTEXT_NULL, "no current context")),
        _ => Ok(-1),
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
        Some(s) if s.alive && s.device == device => Ok(key),
        Some(s) if s.alive => Err(fail(
            ACL_ERROR_RT_STREAM_CONTEXT,
            &format!("stream of device {} used under device {device}", s.device),
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
        let device = enter!(s, true);
        // SAFETY: the caller passes a live out-pointer (result.rs: a local).
        unsafe { context.write((CONTEXT_BASE + device as usize) as aclrtContext) };
        ACL_SUCCESS
    })
}

extern "C" fn aclrtSetCurrentContext(context: aclrtContext) -> aclError {
    call(|s| {
        enter!(s, false);
        let device = (context as usize).wrapping_sub(CONTEXT_BASE) as i32;
        if s.retains.get(&device).copied().unwrap_or(0) == 0 {
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
                alive: true,
            },
        );
        // SAFETY: the caller passes a live out-pointer (result.rs: a local).
        unsafe { stream.write(key as aclrtStream) };
        ACL_SUCCESS
    })
}

extern "C" fn aclrtDestroyStream(stream: aclrtStream) -> aclError {
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
