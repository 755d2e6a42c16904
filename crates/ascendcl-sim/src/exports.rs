//! The C symbols of `SEMANTICS.md` §1, with the CANN prototypes and ABI.
//!
//! Every function runs inside a panic boundary (`boundary.rs`): it never unwinds into C, returns
//! `ACL_SUCCESS` (0) or an `aclError`, and on failure sets the text `aclGetRecentErrMsg` returns.
//! Each documents its checks in R15 order; steps a function does not have are skipped.
//!
//! Functions that take a caller pointer to read or write are `unsafe extern "C"`; the ones whose
//! only pointer arguments are handles are safe to call with **any** value, because a handle is a
//! token that is validated and never dereferenced (R10).

#![allow(non_camel_case_types, non_snake_case)]

use std::ffi::{c_char, c_void};
use std::sync::Arc;
use std::time::Duration;

use notify_api::{
    Backend, DeviceId, ExportFlags, ImportFlags, Notify, NotifyFlags, Pid, Result, Stream, err,
};

use crate::boundary::{boundary, last_error_ptr};
use crate::ptr::{ArrayIn, KeyIn, KeyOut, Out};
use crate::{cache, runtime};

/// `aclError`: 0 is `ACL_SUCCESS`, anything else a code of `SEMANTICS.md` §2.
pub type aclError = i32;
/// `aclrtNotify`: an opaque handle (here a token, R10).
pub type aclrtNotify = *mut c_void;
/// `aclrtStream`: an opaque handle (here a token, R10); NULL is the default stream.
pub type aclrtStream = *mut c_void;

/// R10: a NULL handle is `ACL_ERROR_INVALID_PARAM` (100000).
fn handle_not_null(handle: *mut c_void, what: &str) -> Result<()> {
    if handle.is_null() {
        return Err(err!(INVALID_PARAM, "R10: the {what} handle is NULL"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Runtime
// ---------------------------------------------------------------------------------------------

/// `aclError aclInit(const char *configPath);`
///
/// Attaches this process to the simulator (`SimBackend::from_env()`). `configPath` may be NULL;
/// it is never read (sim: any path is accepted).
///
/// Checks: already initialized (100002) → the attach's own errors (107000 for a bad
/// `ASCEND_NOTIFY_SIM_*` value, 507000 for a corrupted registry).
#[unsafe(no_mangle)]
pub extern "C" fn aclInit(configPath: *const c_char) -> aclError {
    let _ = configPath;
    boundary("aclInit", runtime::init)
}

/// `aclError aclFinalize(void);`
///
/// Destroys every handle this process still holds, ends its streams and detaches from the
/// simulator (the last process out removes the namespace). A later `aclInit` starts over; tokens
/// of this session stay invalid forever (107017).
///
/// Checks: not initialized (100001).
#[unsafe(no_mangle)]
pub extern "C" fn aclFinalize() -> aclError {
    boundary("aclFinalize", runtime::finalize)
}

/// `aclError aclrtSetDevice(int32_t deviceId);`
///
/// Checks: not initialized (100001) → device id (107001).
#[unsafe(no_mangle)]
pub extern "C" fn aclrtSetDevice(deviceId: i32) -> aclError {
    boundary("aclrtSetDevice", || {
        runtime::get()?.backend.set_device(DeviceId(deviceId))
    })
}

/// `aclError aclrtResetDevice(int32_t deviceId);` — if `deviceId` is this thread's current
/// device, the thread has none afterwards.
///
/// Checks: not initialized (100001) → device id (107001).
#[unsafe(no_mangle)]
pub extern "C" fn aclrtResetDevice(deviceId: i32) -> aclError {
    boundary("aclrtResetDevice", || {
        runtime::get()?.backend.reset_device(DeviceId(deviceId))
    })
}

/// `aclError aclrtGetDevice(int32_t *deviceId);`
///
/// Checks: not initialized (100001) → NULL (100000) → no context (107002).
///
/// # Safety
/// `deviceId` is NULL or valid for writing one `int32_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtGetDevice(deviceId: *mut i32) -> aclError {
    boundary("aclrtGetDevice", || {
        let rt = runtime::get()?;
        // SAFETY: this function's contract: NULL or valid for one write.
        let out = unsafe { Out::new(deviceId, "deviceId") }?;
        out.write(rt.current_device()?);
        Ok(())
    })
}

/// `aclError aclrtGetDeviceCount(uint32_t *count);`
///
/// Checks: not initialized (100001) → NULL (100000).
///
/// # Safety
/// `count` is NULL or valid for writing one `uint32_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtGetDeviceCount(count: *mut u32) -> aclError {
    boundary("aclrtGetDeviceCount", || {
        let rt = runtime::get()?;
        // SAFETY: this function's contract: NULL or valid for one write.
        let out = unsafe { Out::new(count, "count") }?;
        out.write(rt.backend.device_count()?);
        Ok(())
    })
}

/// `aclError aclrtCreateStream(aclrtStream *stream);` — a stream bound to the current device.
///
/// Checks: not initialized (100001) → NULL (100000) → no context (107002).
///
/// # Safety
/// `stream` is NULL or valid for writing one `aclrtStream`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtCreateStream(stream: *mut aclrtStream) -> aclError {
    boundary("aclrtCreateStream", || {
        let rt = runtime::get()?;
        // SAFETY: this function's contract: NULL or valid for one write.
        let out = unsafe { Out::new(stream, "stream") }?;
        rt.current_device()?;
        let created = rt.backend.create_stream()?;
        out.write(rt.streams.insert(created)?);
        Ok(())
    })
}

/// `aclError aclrtDestroyStream(aclrtStream stream);` — tasks already enqueued still run.
///
/// Checks: not initialized (100001) → NULL (100000: the default stream cannot be destroyed)
/// → invalid handle (107017).
#[unsafe(no_mangle)]
pub extern "C" fn aclrtDestroyStream(stream: aclrtStream) -> aclError {
    boundary("aclrtDestroyStream", || {
        let rt = runtime::get()?;
        handle_not_null(stream, "stream")?;
        let removed = rt.streams.remove(stream)?;
        // The handle is dead for everyone already; no thread's cache keeps the stream after this.
        cache::forget_stream(stream);
        // If another thread is inside a call with this stream (a synchronize), it ends the
        // stream when it returns.
        Arc::into_inner(removed).map_or(Ok(()), Stream::destroy)
    })
}

/// `aclError aclrtSynchronizeStream(aclrtStream stream);` — NULL is the current device's
/// default stream.
///
/// Checks: not initialized (100001) → no context (107002, NULL stream only) → invalid handle
/// (107017) → the first failure of the stream's tasks (e.g. 107019, R2/R3).
#[unsafe(no_mangle)]
pub extern "C" fn aclrtSynchronizeStream(stream: aclrtStream) -> aclError {
    boundary("aclrtSynchronizeStream", || {
        // Our own reference, so that the blocking part runs without the thread's cache locked.
        let stream = cache::with(|hot| hot.stream(stream).cloned())?;
        stream.synchronize()
    })
}

/// `aclError aclrtSynchronizeStreamWithTimeout(aclrtStream stream, int32_t timeout);` —
/// `timeout` in milliseconds, `-1` waits forever.
///
/// Checks: not initialized (100001) → no context (107002, NULL stream only) → invalid handle
/// (107017) → `timeout < -1` (107000) → gave up (507046) or the first task failure.
#[unsafe(no_mangle)]
pub extern "C" fn aclrtSynchronizeStreamWithTimeout(stream: aclrtStream, timeout: i32) -> aclError {
    boundary("aclrtSynchronizeStreamWithTimeout", || {
        let stream = cache::with(|hot| hot.stream(stream).cloned())?;
        let timeout = match timeout {
            -1 => None,
            ms if ms >= 0 => Some(Duration::from_millis(ms as u64)),
            ms => {
                return Err(err!(
                    RT_PARAM_INVALID,
                    "R2: synchronize timeout {ms} ms is invalid (use -1 to wait forever, or >= 0)"
                ));
            }
        };
        stream.synchronize_timeout(timeout)
    })
}

/// `aclError aclrtDeviceCanAccessPeer(int32_t *canAccessPeer, int32_t deviceId,
/// int32_t peerDeviceId);` — writes 1 or 0 (sim: 1 for any two distinct valid devices).
///
/// Checks: not initialized (100001) → NULL (100000) → device ids (107001) → `deviceId ==
/// peerDeviceId` (107000).
///
/// # Safety
/// `canAccessPeer` is NULL or valid for writing one `int32_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtDeviceCanAccessPeer(
    canAccessPeer: *mut i32,
    deviceId: i32,
    peerDeviceId: i32,
) -> aclError {
    boundary("aclrtDeviceCanAccessPeer", || {
        let rt = runtime::get()?;
        // SAFETY: this function's contract: NULL or valid for one write.
        let out = unsafe { Out::new(canAccessPeer, "canAccessPeer") }?;
        let can = rt
            .backend
            .can_access_peer(DeviceId(deviceId), DeviceId(peerDeviceId))?;
        out.write(i32::from(can));
        Ok(())
    })
}

/// `aclError aclrtDeviceEnablePeerAccess(int32_t peerDeviceId, uint32_t flags);` — from the
/// current device to `peerDeviceId`, for this process (R7).
///
/// Checks: not initialized (100001) → no context (107002) → `flags != 0` (107000) → device id
/// (107001) → the current device itself (107000).
#[unsafe(no_mangle)]
pub extern "C" fn aclrtDeviceEnablePeerAccess(peerDeviceId: i32, flags: u32) -> aclError {
    boundary("aclrtDeviceEnablePeerAccess", || {
        let rt = runtime::get()?;
        rt.current_device()?;
        rt.backend.enable_peer_access(DeviceId(peerDeviceId), flags)
    })
}

/// `const char *aclGetRecentErrMsg(void);`
///
/// The reason of the last failing call in the calling thread (it starts with the rule that
/// refused the call, e.g. `"R7: ..."`), or NULL if no call failed in this thread. Successful
/// calls leave it unchanged and reading it does not clear it; the pointer stays valid until
/// the next failure in this thread. Works before `aclInit` too.
#[unsafe(no_mangle)]
pub extern "C" fn aclGetRecentErrMsg() -> *const c_char {
    std::panic::catch_unwind(last_error_ptr).unwrap_or(std::ptr::null())
}

// ---------------------------------------------------------------------------------------------
// Notify
// ---------------------------------------------------------------------------------------------

/// `aclError aclrtCreateNotify(aclrtNotify *notify, uint64_t flag);` — on the current device;
/// this process is the creator (R8).
///
/// Checks: not initialized (100001) → NULL (100000) → no context (107002) → flag bits (107000)
/// → capacity (207009, R11).
///
/// # Safety
/// `notify` is NULL or valid for writing one `aclrtNotify`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtCreateNotify(notify: *mut aclrtNotify, flag: u64) -> aclError {
    boundary("aclrtCreateNotify", || {
        let rt = runtime::get()?;
        // SAFETY: this function's contract: NULL or valid for one write.
        let out = unsafe { Out::new(notify, "notify") }?;
        rt.current_device()?;
        let flags = NotifyFlags::from_raw(flag)?;
        let created = rt.backend.create_notify(flags)?;
        out.write(rt.notifies.insert(created)?);
        Ok(())
    })
}

/// `aclError aclrtDestroyNotify(aclrtNotify notify);` — the handle is dead at once (R8);
/// tasks already enqueued with it still run; the creator's destroy revokes the key.
///
/// Checks: not initialized (100001) → NULL (100000) → invalid handle (107017, also for a
/// second destroy).
#[unsafe(no_mangle)]
pub extern "C" fn aclrtDestroyNotify(notify: aclrtNotify) -> aclError {
    boundary("aclrtDestroyNotify", || {
        let rt = runtime::get()?;
        handle_not_null(notify, "notify")?;
        let removed = rt.notifies.remove(notify)?;
        // The handle is dead for everyone already; this waits for a record or wait in progress
        // with it in another thread, after which no thread's cache keeps it.
        cache::forget_notify(notify);
        // Another thread still inside a (non-cached) call with this handle drops the last `Arc`
        // when it returns, which destroys it then.
        Arc::into_inner(removed).map_or(Ok(()), Notify::destroy)
    })
}

/// `aclError aclrtRecordNotify(aclrtNotify notify, aclrtStream stream);` — enqueues a record
/// (R1, R2); any holder may record (R4).
///
/// Checks: not initialized (100001) → NULL notify (100000) → no context (107002) → invalid
/// handles (107017) → stream of another device (107003).
#[unsafe(no_mangle)]
pub extern "C" fn aclrtRecordNotify(notify: aclrtNotify, stream: aclrtStream) -> aclError {
    boundary("aclrtRecordNotify", || {
        cache::with(|hot| {
            handle_not_null(notify, "notify")?;
            let (notify, stream) = hot.enqueue_args(notify, stream)?;
            // Checks the context (107002) and the stream's device (107003) itself, in that order
            // (`Notify::record`), with the texts of our own checks.
            notify.record(stream)
        })
    })
}

/// `aclError aclrtWaitAndResetNotify(aclrtNotify notify, aclrtStream stream, uint32_t
/// timeout);` — enqueues a wait; `timeout` in seconds, 0 waits forever; an expired wait shows
/// up as 107019 at the next synchronize (R3).
///
/// Checks: not initialized (100001) → NULL notify (100000) → no context (107002) → invalid
/// handles (107017) → stream of another device (107003) → a wait by an importer or on another
/// device than the notify's (107000, R4).
#[unsafe(no_mangle)]
pub extern "C" fn aclrtWaitAndResetNotify(
    notify: aclrtNotify,
    stream: aclrtStream,
    timeout: u32,
) -> aclError {
    boundary("aclrtWaitAndResetNotify", || {
        cache::with(|hot| {
            handle_not_null(notify, "notify")?;
            let (notify, stream) = hot.enqueue_args(notify, stream)?;
            // Context (107002), stream device (107003), then R4 (107000), in that order
            // (`Notify::wait_and_reset`). It only enqueues (R2): it never blocks, and so never
            // holds this thread's cache locked for long.
            notify.wait_and_reset(stream, timeout)
        })
    })
}

/// `aclError aclrtGetNotifyId(aclrtNotify notify, uint32_t *notifyId);`
///
/// Checks: not initialized (100001) → NULL (100000) → invalid handle (107017).
///
/// # Safety
/// `notifyId` is NULL or valid for writing one `uint32_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtGetNotifyId(notify: aclrtNotify, notifyId: *mut u32) -> aclError {
    boundary("aclrtGetNotifyId", || {
        let rt = runtime::get()?;
        handle_not_null(notify, "notify")?;
        // SAFETY: this function's contract: NULL or valid for one write.
        let out = unsafe { Out::new(notifyId, "notifyId") }?;
        let notify = rt.notifies.get(notify)?;
        out.write(notify.id()?.raw());
        Ok(())
    })
}

/// `aclError aclrtNotifyBatchReset(aclrtNotify *notifies, size_t num);` — clears the flags
/// now, from the host; all or nothing (R1).
///
/// Checks: not initialized (100001) → NULL array (100000) → `num == 0` (107000; there are no
/// handles to check then) → a NULL entry (100000) → an invalid entry (107017, and no flag is
/// cleared).
///
/// # Safety
/// `notifies` is NULL or valid for reading `num` consecutive `aclrtNotify`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtNotifyBatchReset(notifies: *mut aclrtNotify, num: usize) -> aclError {
    boundary("aclrtNotifyBatchReset", || {
        let rt = runtime::get()?;
        // SAFETY: this function's contract: NULL or valid for reading `num` handles.
        let array = unsafe { ArrayIn::new(notifies.cast_const(), num, "notifies") }?;
        if num == 0 {
            return Err(err!(RT_PARAM_INVALID, "R1: batch reset of zero notifies"));
        }
        let handles = array.read()?;
        if let Some(i) = handles.iter().position(|h| h.is_null()) {
            return Err(err!(
                INVALID_PARAM,
                "R10: the notify handle notifies[{i}] is NULL"
            ));
        }
        let held = handles
            .iter()
            .enumerate()
            .map(|(i, &h)| {
                rt.notifies.get(h).map_err(|e| {
                    notify_api::Error::new(e.code(), format!("{} (notifies[{i}])", e.reason()))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<_> = held.iter().map(|n| &**n).collect();
        rt.backend.batch_reset(&refs)
    })
}

/// `aclError aclrtNotifyGetExportKey(aclrtNotify notify, char *key, size_t len, uint64_t
/// flags);` — writes a NUL-terminated key of at most 64 printable characters (R5).
///
/// Checks: not initialized (100001) → NULL (100000) → invalid handle (107017) →
/// virtualization (207000) → flag bits (107000) → `len < 65` (107000) → not the creator
/// (207006) → exported before (507000).
///
/// # Safety
/// `key` is NULL or valid for writing `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtNotifyGetExportKey(
    notify: aclrtNotify,
    key: *mut c_char,
    len: usize,
    flags: u64,
) -> aclError {
    boundary("aclrtNotifyGetExportKey", || {
        let rt = runtime::get()?;
        handle_not_null(notify, "notify")?;
        // SAFETY: this function's contract: NULL or valid for writing `len` bytes.
        let out = unsafe { KeyOut::new(key, len, "key") }?;
        let notify = rt.notifies.get(notify)?;
        rt.check_virtual("exporting an IPC notify")?;
        let flags = ExportFlags::from_raw(flags)?;
        out.check_len()?;
        let exported = notify.export(flags)?;
        out.write(&exported)
    })
}

/// `aclError aclrtNotifyImportByKey(aclrtNotify *notify, const char *key, uint64_t flags);`
///
/// Checks: not initialized (100001) → NULL (100000) → no context (107002) → virtualization
/// (207000) → flag bits (107000) → key format (107000: no NUL within 65 bytes, not printable,
/// not a simulator key) → unknown or revoked key (507899) → already held (507000) → not
/// whitelisted (507899) → no peer access (507899).
///
/// # Safety
/// `notify` is NULL or valid for writing one `aclrtNotify`; `key` is NULL or a readable C
/// string (only its first 65 bytes, up to the NUL, are read).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtNotifyImportByKey(
    notify: *mut aclrtNotify,
    key: *const c_char,
    flags: u64,
) -> aclError {
    boundary("aclrtNotifyImportByKey", || {
        let rt = runtime::get()?;
        // SAFETY: this function's contract: NULL or valid for one write.
        let out = unsafe { Out::new(notify, "notify") }?;
        // SAFETY: this function's contract: NULL or a readable C string.
        let key = unsafe { KeyIn::new(key, "key") }?;
        rt.current_device()?;
        rt.check_virtual("importing an IPC notify")?;
        let flags = ImportFlags::from_raw(flags)?;
        let key = key.read()?;
        let imported = rt.backend.import_notify(&key, flags)?;
        out.write(rt.notifies.insert(imported)?);
        Ok(())
    })
}

/// `aclError aclrtNotifySetImportPid(aclrtNotify notify, int32_t *pid, size_t num);` — adds
/// bare tgids to the import whitelist (R6).
///
/// Checks: not initialized (100001) → NULL (100000) → invalid handle (107017) →
/// virtualization (207000) → `num == 0` or a pid `<= 0` (107000) → not the creator, or an export
/// with `DISABLE_PID_VALIDATION` (207006) → not exported yet, or more than 64 pids (107000).
///
/// # Safety
/// `pid` is NULL or valid for reading `num` consecutive `int32_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtNotifySetImportPid(
    notify: aclrtNotify,
    pid: *mut i32,
    num: usize,
) -> aclError {
    boundary("aclrtNotifySetImportPid", || {
        let rt = runtime::get()?;
        handle_not_null(notify, "notify")?;
        // SAFETY: this function's contract: NULL or valid for reading `num` pids.
        let pids = unsafe { ArrayIn::new(pid.cast_const(), num, "pid") }?;
        let notify = rt.notifies.get(notify)?;
        rt.check_virtual("setting an import whitelist")?;
        if num == 0 {
            return Err(err!(
                RT_PARAM_INVALID,
                "R6: the pid list is empty (num == 0)"
            ));
        }
        let pids: Vec<Pid> = pids.read()?.into_iter().map(Pid).collect();
        notify.set_import_pids(&pids)
    })
}

/// `aclError aclrtDeviceGetBareTgid(int32_t *pid);` — this process's bare tgid, the value to
/// whitelist (sim: the OS pid).
///
/// Checks: not initialized (100001) → NULL (100000).
///
/// # Safety
/// `pid` is NULL or valid for writing one `int32_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtDeviceGetBareTgid(pid: *mut i32) -> aclError {
    boundary("aclrtDeviceGetBareTgid", || {
        let rt = runtime::get()?;
        // SAFETY: this function's contract: NULL or valid for one write.
        let out = unsafe { Out::new(pid, "pid") }?;
        out.write(rt.backend.bare_tgid()?.raw());
        Ok(())
    })
}
