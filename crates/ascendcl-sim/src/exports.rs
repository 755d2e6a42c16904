//! The C symbols of `SEMANTICS.md` §1 and §6's context and stream calls, with the CANN
//! prototypes (checked against `acl-abi`'s manifest at compile time, `abi.rs`).
//!
//! Every function is a translation: it runs inside the panic boundary (`boundary.rs`), checks
//! what only it can see (initialization, then NULL pointers: R15's first two steps), turns
//! tokens into handle lookups and pointers into values, calls `backend_sim::raw`, and writes
//! the results back. Every rule after that is `raw`'s, so the order of checks is its too.
//!
//! Functions that take a caller pointer to read or write are `unsafe extern "C"`; the ones whose
//! only pointer arguments are handles are safe to call with **any** value, because a handle is a
//! token that is validated and never dereferenced (R10).

#![allow(non_snake_case)]

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use acl_abi::types::*;
use backend_sim::raw::{self, Cx};
use notify_api::{Result, err};

use crate::boundary::{boundary, last_error_ptr};
use crate::cache;
use crate::ptr::{ArrayIn, KeyIn, KeyOut, Out};
use crate::runtime::{self, lookup};

/// R10: a NULL handle is `ACL_ERROR_INVALID_PARAM` (100000).
pub(crate) fn handle_not_null(handle: *mut c_void, what: &str) -> Result<()> {
    if handle.is_null() {
        return Err(err!(R10: INVALID_PARAM, "the {what} handle is NULL"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Runtime
// ---------------------------------------------------------------------------------------------

/// `aclError aclInit(const char *configPath);`
///
/// Attaches this process to the simulator (the `ASCEND_NOTIFY_SIM_*` variables choose the
/// namespace, its size and this process's environment). `configPath` may be NULL; it is never
/// read (sim: any path is accepted).
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
#[unsafe(no_mangle)]
pub extern "C" fn aclFinalize() -> aclError {
    boundary("aclFinalize", runtime::finalize)
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

/// `aclError aclrtSetDevice(int32_t deviceId);` (R13, C1).
#[unsafe(no_mangle)]
pub extern "C" fn aclrtSetDevice(deviceId: i32) -> aclError {
    boundary("aclrtSetDevice", || {
        raw::set_device(&runtime::get()?.session, deviceId)
    })
}

/// `aclError aclrtResetDevice(int32_t deviceId);` — if this thread's current context is on
/// `deviceId`, the thread has none afterwards (R13).
#[unsafe(no_mangle)]
pub extern "C" fn aclrtResetDevice(deviceId: i32) -> aclError {
    boundary("aclrtResetDevice", || {
        raw::reset_device(&runtime::get()?.session, deviceId)
    })
}

/// `aclError aclrtGetDevice(int32_t *deviceId);` (R13).
///
/// # Safety
/// `deviceId` is NULL or valid for writing one `int32_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtGetDevice(deviceId: *mut i32) -> aclError {
    boundary("aclrtGetDevice", || {
        let rt = runtime::get()?;
        // SAFETY: this function's contract: NULL or valid for one write.
        let out = unsafe { Out::new(deviceId, "deviceId") }?;
        out.write(raw::get_device(&rt.session)?);
        Ok(())
    })
}

/// `aclError aclrtGetDeviceCount(uint32_t *count);`
///
/// # Safety
/// `count` is NULL or valid for writing one `uint32_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtGetDeviceCount(count: *mut u32) -> aclError {
    boundary("aclrtGetDeviceCount", || {
        let rt = runtime::get()?;
        // SAFETY: this function's contract: NULL or valid for one write.
        let out = unsafe { Out::new(count, "count") }?;
        out.write(raw::device_count(&rt.session)?);
        Ok(())
    })
}

/// `aclError aclrtDeviceCanAccessPeer(int32_t *canAccessPeer, int32_t deviceId, int32_t
/// peerDeviceId);` — writes 1 or 0 (sim: 1 for any two distinct valid devices, R7).
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
        let can = raw::can_access_peer(&rt.session, deviceId, peerDeviceId)?;
        out.write(i32::from(can));
        Ok(())
    })
}

/// `aclError aclrtDeviceEnablePeerAccess(int32_t peerDeviceId, uint32_t flags);` — from the
/// current context's device to `peerDeviceId`, for this process (R7).
#[unsafe(no_mangle)]
pub extern "C" fn aclrtDeviceEnablePeerAccess(peerDeviceId: i32, flags: u32) -> aclError {
    boundary("aclrtDeviceEnablePeerAccess", || {
        raw::enable_peer_access(&runtime::get()?.session, Cx::Current, peerDeviceId, flags)
    })
}

/// `aclError aclrtDeviceGetBareTgid(int32_t *pid);` — this process's bare tgid, the value to
/// whitelist (R16).
///
/// # Safety
/// `pid` is NULL or valid for writing one `int32_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtDeviceGetBareTgid(pid: *mut i32) -> aclError {
    boundary("aclrtDeviceGetBareTgid", || {
        let rt = runtime::get()?;
        // SAFETY: this function's contract: NULL or valid for one write.
        let out = unsafe { Out::new(pid, "pid") }?;
        out.write(raw::bare_tgid(&rt.session)?);
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Contexts (C1)
// ---------------------------------------------------------------------------------------------

/// `aclError aclrtCreateContext(aclrtContext *context, int32_t deviceId);` — a new context on
/// `deviceId`, current in this thread afterwards (C1).
///
/// # Safety
/// `context` is NULL or valid for writing one `aclrtContext`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtCreateContext(context: *mut aclrtContext, deviceId: i32) -> aclError {
    boundary("aclrtCreateContext", || {
        let rt = runtime::get()?;
        // SAFETY: this function's contract: NULL or valid for one write.
        let out = unsafe { Out::new(context, "context") }?;
        let ctx = raw::create_context(&rt.session, deviceId)?;
        out.write(rt.context_token(ctx)?);
        Ok(())
    })
}

/// `aclError aclrtDestroyContext(aclrtContext context);` — a created context, with its streams
/// (C1); the default context of a device cannot be destroyed (107000).
#[unsafe(no_mangle)]
pub extern "C" fn aclrtDestroyContext(context: aclrtContext) -> aclError {
    boundary("aclrtDestroyContext", || {
        let rt = runtime::get()?;
        handle_not_null(context, "context")?;
        let ctx = rt.contexts.get(context);
        raw::destroy_context(&rt.session, lookup(&ctx))?;
        if let Ok(ctx) = rt.contexts.remove(context) {
            rt.forget_context(&ctx);
        }
        Ok(())
    })
}

/// `aclError aclrtSetCurrentContext(aclrtContext context);` (C1).
#[unsafe(no_mangle)]
pub extern "C" fn aclrtSetCurrentContext(context: aclrtContext) -> aclError {
    boundary("aclrtSetCurrentContext", || {
        let rt = runtime::get()?;
        handle_not_null(context, "context")?;
        let ctx = rt.contexts.get(context);
        raw::set_current_context(&rt.session, lookup(&ctx))
    })
}

/// `aclError aclrtGetCurrentContext(aclrtContext *context);` — the same token for the same
/// context every time (C1).
///
/// # Safety
/// `context` is NULL or valid for writing one `aclrtContext`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtGetCurrentContext(context: *mut aclrtContext) -> aclError {
    boundary("aclrtGetCurrentContext", || {
        let rt = runtime::get()?;
        // SAFETY: this function's contract: NULL or valid for one write.
        let out = unsafe { Out::new(context, "context") }?;
        let ctx = raw::get_current_context(&rt.session)?;
        out.write(rt.context_token(ctx)?);
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------

/// `aclError aclrtCreateStream(aclrtStream *stream);` — a stream bound to the current context.
///
/// # Safety
/// `stream` is NULL or valid for writing one `aclrtStream`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtCreateStream(stream: *mut aclrtStream) -> aclError {
    boundary("aclrtCreateStream", || {
        let rt = runtime::get()?;
        // SAFETY: this function's contract: NULL or valid for one write.
        let out = unsafe { Out::new(stream, "stream") }?;
        let created = raw::create_stream(&rt.session, Cx::Current)?;
        out.write(rt.streams.insert(created)?);
        Ok(())
    })
}

/// `aclError aclrtDestroyStream(aclrtStream stream);` — tasks already enqueued still run.
/// NULL is 100000: the default stream cannot be destroyed.
#[unsafe(no_mangle)]
pub extern "C" fn aclrtDestroyStream(stream: aclrtStream) -> aclError {
    boundary("aclrtDestroyStream", || {
        let rt = runtime::get()?;
        handle_not_null(stream, "stream")?;
        let removed = rt.streams.remove(stream)?;
        // The handle is dead for everyone already; no thread's cache keeps the stream after this.
        cache::forget_stream(stream);
        // If another thread is inside a call with this handle, it ends the stream when it
        // returns; a synchronize in progress holds only the stream's core and still sees every
        // task it waits for run.
        Arc::into_inner(removed).map_or(Ok(()), |s| raw::destroy_stream(&rt.session, s))
    })
}

/// `aclError aclrtSynchronizeStream(aclrtStream stream);` — NULL is the current context's
/// default stream (R2).
#[unsafe(no_mangle)]
pub extern "C" fn aclrtSynchronizeStream(stream: aclrtStream) -> aclError {
    boundary("aclrtSynchronizeStream", || sync(stream, None))
}

/// `aclError aclrtSynchronizeStreamWithTimeout(aclrtStream stream, int32_t timeout);` —
/// `timeout` in milliseconds, `-1` waits forever (R2).
#[unsafe(no_mangle)]
pub extern "C" fn aclrtSynchronizeStreamWithTimeout(stream: aclrtStream, timeout: i32) -> aclError {
    boundary("aclrtSynchronizeStreamWithTimeout", || {
        sync(stream, Some(timeout))
    })
}

fn sync(stream: aclrtStream, timeout_ms: Option<i32>) -> Result<()> {
    // The checks run with the thread's cache locked, the blocking part without it.
    cache::with(|hot| {
        let session = &hot.rt.session;
        raw::prepare_synchronize(session, Cx::Current, hot.stream_arg(stream), timeout_ms)
    })?
    .run()
}

// ---------------------------------------------------------------------------------------------
// Notify
// ---------------------------------------------------------------------------------------------

/// `aclError aclrtCreateNotify(aclrtNotify *notify, uint64_t flag);` — on the current context's
/// device; this process is the creator (R8, R11).
///
/// # Safety
/// `notify` is NULL or valid for writing one `aclrtNotify`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtCreateNotify(notify: *mut aclrtNotify, flag: u64) -> aclError {
    boundary("aclrtCreateNotify", || {
        let rt = runtime::get()?;
        // SAFETY: this function's contract: NULL or valid for one write.
        let out = unsafe { Out::new(notify, "notify") }?;
        let created = raw::create_notify(&rt.session, Cx::Current, flag)?;
        out.write(rt.notifies.insert(created)?);
        Ok(())
    })
}

/// `aclError aclrtDestroyNotify(aclrtNotify notify);` — the handle is dead at once (R8);
/// tasks already enqueued with it still run; the creator's destroy revokes the key.
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
        Arc::into_inner(removed).map_or(Ok(()), |n| raw::destroy_notify(&rt.session, n))
    })
}

/// `aclError aclrtRecordNotify(aclrtNotify notify, aclrtStream stream);` — enqueues a record
/// (R1, R2); any holder may record (R4).
#[unsafe(no_mangle)]
pub extern "C" fn aclrtRecordNotify(notify: aclrtNotify, stream: aclrtStream) -> aclError {
    boundary("aclrtRecordNotify", || {
        cache::with(|hot| {
            handle_not_null(notify, "notify")?;
            let session = &hot.rt.session;
            let (notify, stream) = hot.enqueue_args(notify, stream);
            raw::record(session, Cx::Current, notify, stream)
        })
    })
}

/// `aclError aclrtWaitAndResetNotify(aclrtNotify notify, aclrtStream stream, uint32_t
/// timeout);` — enqueues a wait; `timeout` in seconds, 0 waits forever; an expired wait shows
/// up as 107019 at the next synchronize (R3, R4).
#[unsafe(no_mangle)]
pub extern "C" fn aclrtWaitAndResetNotify(
    notify: aclrtNotify,
    stream: aclrtStream,
    timeout: u32,
) -> aclError {
    boundary("aclrtWaitAndResetNotify", || {
        cache::with(|hot| {
            handle_not_null(notify, "notify")?;
            let session = &hot.rt.session;
            let (notify, stream) = hot.enqueue_args(notify, stream);
            // It only enqueues (R2): it never blocks, and so never holds this thread's cache
            // locked for long.
            raw::wait(session, Cx::Current, notify, stream, timeout)
        })
    })
}

/// `aclError aclrtGetNotifyId(aclrtNotify notify, uint32_t *notifyId);` (R10).
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
        out.write(raw::notify_id(
            &rt.session,
            lookup(&rt.notifies.get(notify)),
        )?);
        Ok(())
    })
}

/// `aclError aclrtNotifyBatchReset(aclrtNotify *notifies, size_t num);` — clears the flags
/// now, from the host; all or nothing (R1).
///
/// # Safety
/// `notifies` is NULL or valid for reading `num` consecutive `aclrtNotify`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtNotifyBatchReset(notifies: *mut aclrtNotify, num: usize) -> aclError {
    boundary("aclrtNotifyBatchReset", || {
        let rt = runtime::get()?;
        // SAFETY: this function's contract: NULL or valid for reading `num` handles.
        let array = unsafe { ArrayIn::new(notifies.cast_const(), num, "notifies") }?;
        let handles = array.read()?;
        if let Some(i) = handles.iter().position(|h| h.is_null()) {
            return Err(err!(R10: INVALID_PARAM, "the notify handle notifies[{i}] is NULL"));
        }
        let held: Vec<_> = handles.iter().map(|&h| rt.notifies.get(h)).collect();
        let args: Vec<_> = held.iter().map(lookup).collect();
        raw::batch_reset(&rt.session, &args)
    })
}

/// `aclError aclrtNotifyGetExportKey(aclrtNotify notify, char *key, size_t len, uint64_t
/// flags);` — writes a NUL-terminated key of at most 64 printable characters (R5).
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
        let exported = raw::export(
            &rt.session,
            lookup(&rt.notifies.get(notify)),
            flags,
            out.len(),
        )?;
        out.write(&exported)
    })
}

/// `aclError aclrtNotifyImportByKey(aclrtNotify *notify, const char *key, uint64_t flags);`
/// (R7).
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
        let imported = raw::import(&rt.session, Cx::Current, &key.read(), flags)?;
        out.write(rt.notifies.insert(imported)?);
        Ok(())
    })
}

/// `aclError aclrtNotifySetImportPid(aclrtNotify notify, int32_t *pid, size_t num);` — adds one
/// bare tgid to the import whitelist (R6: the driver takes exactly one per call).
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
        // Only a one-pid call is read: `raw` refuses any other count without its values.
        let first = if num == 1 { pids.read()?[0] } else { 0 };
        raw::set_import_pid(&rt.session, lookup(&rt.notifies.get(notify)), num, first)
    })
}
