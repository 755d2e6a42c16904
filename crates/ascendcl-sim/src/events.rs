//! The C symbols of `SEMANTICS.md` §6 beyond contexts: host functions, events, and the stream
//! and device calls of S1.

#![allow(non_snake_case)]

use std::ffi::c_void;
use std::sync::Arc;

use acl_abi::types::*;
use backend_sim::raw::{self, Cx, StreamArg};
use notify_api::{Result, err};

use crate::boundary::boundary;
use crate::cache;
use crate::exports::handle_not_null;
use crate::ptr::Out;
use crate::runtime::{self, lookup};

/// The caller's `args` pointer, handed back to its host function on a runtime thread. It is
/// never dereferenced here.
struct Args(usize);

/// `aclError aclrtLaunchHostFunc(aclrtStream stream, aclrtHostFunc fn, void *args);` — `fn(args)`
/// runs on a runtime thread when the stream reaches it, with the stream's context current (H1).
///
/// # Safety
/// `fn` is NULL or a function that may be called with `args` from another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtLaunchHostFunc(
    stream: aclrtStream,
    r#fn: aclrtHostFunc,
    args: *mut c_void,
) -> aclError {
    boundary("aclrtLaunchHostFunc", || {
        let rt = runtime::get()?;
        let Some(f) = r#fn else {
            return Err(err!(H1: INVALID_PARAM, "the host function `fn` is NULL"));
        };
        let args = Args(args.expose_provenance());
        let call = move || {
            let args = &args;
            // SAFETY: this function's contract: `fn` may be called with `args` on another
            // thread; the pointer is the caller's, passed through untouched.
            unsafe { f(std::ptr::with_exposed_provenance_mut(args.0)) }
        };
        let looked_up = (!stream.is_null()).then(|| rt.streams.get(stream));
        let arg = match &looked_up {
            None => StreamArg::Default,
            Some(h) => StreamArg::Handle(lookup(h)),
        };
        raw::launch_host_fn(&rt.session, Cx::Current, arg, call)
    })
}

/// `aclError aclrtCreateEvent(aclrtEvent *event);` (E1)
///
/// # Safety
/// `event` is NULL or valid for writing one `aclrtEvent`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtCreateEvent(event: *mut aclrtEvent) -> aclError {
    // SAFETY: the same contract.
    unsafe { create_event("aclrtCreateEvent", event, acl_abi::consts::ACL_EVENT_SYNC) }
}

/// `aclError aclrtCreateEventWithFlag(aclrtEvent *event, uint32_t flag);` — SYNC,
/// CAPTURE_STREAM_PROGRESS and TIME_LINE combine; IPC is 207000 (E1).
///
/// # Safety
/// `event` is NULL or valid for writing one `aclrtEvent`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtCreateEventWithFlag(event: *mut aclrtEvent, flag: u32) -> aclError {
    // SAFETY: the same contract.
    unsafe { create_event("aclrtCreateEventWithFlag", event, flag) }
}

/// # Safety
/// `event` is NULL or valid for writing one `aclrtEvent`.
unsafe fn create_event(name: &'static str, event: *mut aclrtEvent, flag: u32) -> aclError {
    boundary(name, || {
        let rt = runtime::get()?;
        // SAFETY: the caller's contract: NULL or valid for one write.
        let out = unsafe { Out::new(event, "event") }?;
        let created = raw::create_event(&rt.session, Cx::Current, flag)?;
        out.write(rt.events.insert(created)?);
        Ok(())
    })
}

/// `aclError aclrtDestroyEvent(aclrtEvent event);` (E1)
#[unsafe(no_mangle)]
pub extern "C" fn aclrtDestroyEvent(event: aclrtEvent) -> aclError {
    boundary("aclrtDestroyEvent", || {
        let rt = runtime::get()?;
        handle_not_null(event, "event")?;
        let removed = rt.events.remove(event)?;
        Arc::into_inner(removed).map_or(Ok(()), |e| raw::destroy_event(&rt.session, e))
    })
}

/// Runs an event enqueue with its lookups: the event, then the stream.
fn with_event(
    event: aclrtEvent,
    stream: aclrtStream,
    call: impl FnOnce(
        &backend_sim::raw::Session,
        Result<&raw::EventHandle>,
        StreamArg<'_>,
    ) -> Result<()>,
) -> Result<()> {
    let rt = runtime::get()?;
    handle_not_null(event, "event")?;
    let looked_up = rt.events.get(event);
    cache::with(|hot| {
        let stream = hot.stream_arg(stream);
        call(&rt.session, lookup(&looked_up), stream)
    })
}

/// `aclError aclrtRecordEvent(aclrtEvent event, aclrtStream stream);` (E1)
#[unsafe(no_mangle)]
pub extern "C" fn aclrtRecordEvent(event: aclrtEvent, stream: aclrtStream) -> aclError {
    boundary("aclrtRecordEvent", || {
        with_event(event, stream, |s, e, st| {
            raw::record_event(s, Cx::Current, e, st)
        })
    })
}

/// `aclError aclrtResetEvent(aclrtEvent event, aclrtStream stream);` (E1)
#[unsafe(no_mangle)]
pub extern "C" fn aclrtResetEvent(event: aclrtEvent, stream: aclrtStream) -> aclError {
    boundary("aclrtResetEvent", || {
        with_event(event, stream, |s, e, st| {
            raw::reset_event(s, Cx::Current, e, st)
        })
    })
}

/// `aclError aclrtStreamWaitEvent(aclrtStream stream, aclrtEvent event);` (E1)
#[unsafe(no_mangle)]
pub extern "C" fn aclrtStreamWaitEvent(stream: aclrtStream, event: aclrtEvent) -> aclError {
    boundary("aclrtStreamWaitEvent", || {
        with_event(event, stream, |s, e, st| {
            raw::stream_wait_event(s, Cx::Current, st, e)
        })
    })
}

/// `aclError aclrtSynchronizeEvent(aclrtEvent event);` (E1)
#[unsafe(no_mangle)]
pub extern "C" fn aclrtSynchronizeEvent(event: aclrtEvent) -> aclError {
    boundary("aclrtSynchronizeEvent", || {
        let rt = runtime::get()?;
        handle_not_null(event, "event")?;
        raw::synchronize_event(&rt.session, lookup(&rt.events.get(event)))
    })
}

/// `aclError aclrtQueryEventStatus(aclrtEvent event, aclrtEventRecordedStatus *status);` (E1)
///
/// # Safety
/// `status` is NULL or valid for writing one `aclrtEventRecordedStatus`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtQueryEventStatus(
    event: aclrtEvent,
    status: *mut aclrtEventRecordedStatus,
) -> aclError {
    boundary("aclrtQueryEventStatus", || {
        let rt = runtime::get()?;
        handle_not_null(event, "event")?;
        // SAFETY: this function's contract: NULL or valid for one write.
        let out = unsafe { Out::new(status, "status") }?;
        let complete = raw::query_event(&rt.session, lookup(&rt.events.get(event)))?;
        out.write(if complete {
            acl_abi::consts::ACL_EVENT_RECORDED_STATUS_COMPLETE
        } else {
            acl_abi::consts::ACL_EVENT_RECORDED_STATUS_NOT_READY
        });
        Ok(())
    })
}

/// `aclError aclrtEventElapsedTime(float *ms, aclrtEvent startEvent, aclrtEvent endEvent);`
/// (E1)
///
/// # Safety
/// `ms` is NULL or valid for writing one `float`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtEventElapsedTime(
    ms: *mut f32,
    startEvent: aclrtEvent,
    endEvent: aclrtEvent,
) -> aclError {
    boundary("aclrtEventElapsedTime", || {
        let rt = runtime::get()?;
        // SAFETY: this function's contract: NULL or valid for one write.
        let out = unsafe { Out::new(ms, "ms") }?;
        handle_not_null(startEvent, "startEvent")?;
        handle_not_null(endEvent, "endEvent")?;
        let (a, b) = (rt.events.get(startEvent), rt.events.get(endEvent));
        out.write(raw::event_elapsed(&rt.session, lookup(&a), lookup(&b))?);
        Ok(())
    })
}

/// `aclError aclrtStreamQuery(aclrtStream stream, aclrtStreamStatus *status);` (S1)
///
/// # Safety
/// `status` is NULL or valid for writing one `aclrtStreamStatus`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtStreamQuery(
    stream: aclrtStream,
    status: *mut aclrtStreamStatus,
) -> aclError {
    boundary("aclrtStreamQuery", || {
        let rt = runtime::get()?;
        // SAFETY: this function's contract: NULL or valid for one write.
        let out = unsafe { Out::new(status, "status") }?;
        let looked_up = (!stream.is_null()).then(|| rt.streams.get(stream));
        let arg = match &looked_up {
            None => StreamArg::Default,
            Some(h) => StreamArg::Handle(lookup(h)),
        };
        let complete = raw::stream_query(&rt.session, Cx::Current, arg)?;
        out.write(if complete {
            acl_abi::consts::ACL_STREAM_STATUS_COMPLETE
        } else {
            acl_abi::consts::ACL_STREAM_STATUS_NOT_READY
        });
        Ok(())
    })
}

/// `aclError aclrtDestroyStreamForce(aclrtStream stream);` — at once: a running task finishes
/// (a wait is abandoned), queued tasks are dropped (S1).
#[unsafe(no_mangle)]
pub extern "C" fn aclrtDestroyStreamForce(stream: aclrtStream) -> aclError {
    boundary("aclrtDestroyStreamForce", || {
        let rt = runtime::get()?;
        handle_not_null(stream, "stream")?;
        let removed = rt.streams.remove(stream)?;
        cache::forget_stream(stream);
        removed.force_shutdown();
        Arc::into_inner(removed).map_or(Ok(()), |s| raw::destroy_stream_force(&rt.session, s))
    })
}

/// `aclError aclrtResetDeviceForce(int32_t deviceId);` — releases everything this process
/// holds on the device (streams, events, contexts, memory and imports; notifies as by destroy)
/// and leaves the thread with no current context (S1).
#[unsafe(no_mangle)]
pub extern "C" fn aclrtResetDeviceForce(deviceId: i32) -> aclError {
    boundary("aclrtResetDeviceForce", || {
        let rt = runtime::get()?;
        raw::check_device(&rt.session, deviceId)?;
        for (token, stream) in rt.streams.remove_where(|s| s.device() == deviceId) {
            cache::forget_stream(token);
            stream.force_shutdown();
        }
        for (token, _) in rt.notifies.remove_where(|n| n.device() == deviceId) {
            cache::forget_notify(token);
        }
        drop(rt.events.remove_where(|e| e.device() == deviceId));
        for (_, ctx) in rt
            .contexts
            .remove_where(|c| c.device() == deviceId && !c.is_default())
        {
            rt.forget_context(&ctx);
            let _ = raw::destroy_context(&rt.session, Ok(&ctx));
        }
        raw::reset_device_force(&rt.session, deviceId)
    })
}

/// `aclError aclrtSynchronizeDevice(void);` — every stream of the current device, and their
/// first failure (S1).
#[unsafe(no_mangle)]
pub extern "C" fn aclrtSynchronizeDevice() -> aclError {
    boundary("aclrtSynchronizeDevice", || {
        let rt = runtime::get()?;
        raw::synchronize_device(&rt.session, Cx::Current)
    })
}

/// `aclError aclrtGetRunMode(aclrtRunMode *runMode);` — `ACL_HOST` (S1).
///
/// # Safety
/// `runMode` is NULL or valid for writing one `aclrtRunMode`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtGetRunMode(runMode: *mut aclrtRunMode) -> aclError {
    boundary("aclrtGetRunMode", || {
        let rt = runtime::get()?;
        // SAFETY: this function's contract: NULL or valid for one write.
        let out = unsafe { Out::new(runMode, "runMode") }?;
        out.write(raw::run_mode(&rt.session)?);
        Ok(())
    })
}
