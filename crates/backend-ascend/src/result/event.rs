//! Events (`SEMANTICS.md` E1): the owner and one function per C call.

use std::fmt;
use std::ptr;
use std::sync::Arc;

use notify_api::{Result, err};

use super::{Retain, Stream, check, foreign};
use crate::sys::{ACL_EVENT_RECORDED_STATUS_COMPLETE, aclrtEvent, aclrtEventRecordedStatus};

/// An event created under a [`Retain`] (its context, E1). Dropping it destroys it and ignores the
/// error; [`destroy_event`] reports it.
pub struct Event {
    retain: Arc<Retain>,
    /// Never NULL while the event is alive; NULL once destroyed.
    raw: aclrtEvent,
}

// SAFETY: the handle is an opaque token of the runtime, not memory this process reads; the
// runtime's event calls are thread-safe, and every call here binds the event's context first.
// The handle is destroyed exactly once (`raw` is NULL afterwards).
unsafe impl Send for Event {}
// SAFETY: as for `Send`; `&self` functions only pass the handle to thread-safe runtime calls.
unsafe impl Sync for Event {}

impl Event {
    /// The retain (context) it was created under.
    pub fn retain(&self) -> &Arc<Retain> {
        &self.retain
    }

    /// The raw `aclrtEvent`. It stays valid while `self` lives.
    pub fn as_raw(&self) -> aclrtEvent {
        self.raw
    }

    fn destroy_in_place(&mut self) -> Result<()> {
        if self.raw.is_null() {
            return Ok(());
        }
        // A failed bind leaves the event in place, so that the drop tries again.
        self.retain.bind()?;
        let raw = std::mem::replace(&mut self.raw, ptr::null_mut());
        // SAFETY: `raw` came from `aclrtCreateEventWithFlag` under `retain`, has not been
        // destroyed (it was still stored) and cannot be used again (NULL in `self` now, and
        // `&mut self` excludes other users); `retain` keeps its context alive.
        let code = unsafe { (self.retain.lib().aclrtDestroyEvent)(raw) };
        check(self.retain.lib(), code, "aclrtDestroyEvent")
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        let _ = self.destroy_in_place();
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("device", &self.retain.device())
            .field("raw", &self.raw)
            .finish()
    }
}

/// `aclrtCreateEventWithFlag(&event, flags)` with `retain`'s context bound.
///
/// # Errors
/// The runtime's code (107000 for unknown flag bits, 207000 for `ACL_EVENT_IPC`);
/// `RT_INTERNAL_ERROR` (507000) for a NULL event reported as success.
pub fn create_event(retain: &Arc<Retain>, flags: u32) -> Result<Event> {
    retain.bind()?;
    let mut raw: aclrtEvent = ptr::null_mut();
    // SAFETY: the out-pointer is a live local.
    let code = unsafe { (retain.lib().aclrtCreateEventWithFlag)(&mut raw, flags) };
    check(retain.lib(), code, "aclrtCreateEventWithFlag")?;
    if raw.is_null() {
        return Err(err!(
            RT_INTERNAL_ERROR,
            "aclrtCreateEventWithFlag reported success but returned a NULL event"
        ));
    }
    Ok(Event {
        retain: Arc::clone(retain),
        raw,
    })
}

/// `aclrtDestroyEvent(event)` with its context bound.
///
/// # Errors
/// The runtime's code. The event is gone either way, except when binding failed (then its drop
/// tries again).
pub fn destroy_event(mut event: Event) -> Result<()> {
    event.destroy_in_place()
}

fn same_library(event: &Event, stream: &Stream) -> Result<()> {
    if !Arc::ptr_eq(&event.retain.session, &stream.retain.session) {
        return Err(foreign("event"));
    }
    Ok(())
}

/// `aclrtRecordEvent(event, stream)` with the stream's context bound.
///
/// # Errors
/// `RT_INVALID_HANDLE` (107017, R10) for an event of another loaded library; otherwise the
/// runtime's code (107003 for an event of another context).
pub fn record_event(event: &Event, stream: &Stream) -> Result<()> {
    same_library(event, stream)?;
    stream.retain.bind()?;
    // SAFETY: `event.raw` is live while `event` is (destroying needs it by value or `&mut`);
    // `stream.raw` is NULL (the bound context's default stream) or live likewise; both were
    // made by this library (checked above) under retains they hold.
    let code = unsafe { (stream.retain.lib().aclrtRecordEvent)(event.raw, stream.raw) };
    check(stream.retain.lib(), code, "aclrtRecordEvent")
}

/// `aclrtResetEvent(event, stream)` with the stream's context bound.
///
/// # Errors
/// As [`record_event`].
pub fn reset_event(event: &Event, stream: &Stream) -> Result<()> {
    same_library(event, stream)?;
    stream.retain.bind()?;
    // SAFETY: as in `record_event`.
    let code = unsafe { (stream.retain.lib().aclrtResetEvent)(event.raw, stream.raw) };
    check(stream.retain.lib(), code, "aclrtResetEvent")
}

/// `aclrtStreamWaitEvent(stream, event)` with the stream's context bound.
///
/// # Errors
/// As [`record_event`].
pub fn stream_wait_event(stream: &Stream, event: &Event) -> Result<()> {
    same_library(event, stream)?;
    stream.retain.bind()?;
    // SAFETY: as in `record_event`.
    let code = unsafe { (stream.retain.lib().aclrtStreamWaitEvent)(stream.raw, event.raw) };
    check(stream.retain.lib(), code, "aclrtStreamWaitEvent")
}

/// `aclrtSynchronizeEvent(event)` with its context bound.
///
/// # Errors
/// The runtime's code.
pub fn synchronize_event(event: &Event) -> Result<()> {
    event.retain.bind()?;
    // SAFETY: `event.raw` is live while `event` is.
    let code = unsafe { (event.retain.lib().aclrtSynchronizeEvent)(event.raw) };
    check(event.retain.lib(), code, "aclrtSynchronizeEvent")
}

/// `aclrtQueryEventStatus(event, &status)` with its context bound: whether it is COMPLETE.
///
/// # Errors
/// The runtime's code.
pub fn query_event_status(event: &Event) -> Result<bool> {
    event.retain.bind()?;
    let mut status: aclrtEventRecordedStatus = 0;
    // SAFETY: `event.raw` is live while `event` is; the out-pointer is a live local.
    let code = unsafe { (event.retain.lib().aclrtQueryEventStatus)(event.raw, &mut status) };
    check(event.retain.lib(), code, "aclrtQueryEventStatus")?;
    Ok(status == ACL_EVENT_RECORDED_STATUS_COMPLETE)
}

/// `aclrtEventElapsedTime(&ms, start, end)` with `end`'s context bound.
///
/// # Errors
/// `RT_INVALID_HANDLE` (107017, R10) when the two come from different loaded libraries; otherwise
/// the runtime's code (107000 when either is not complete or was never recorded).
pub fn event_elapsed_time(start: &Event, end: &Event) -> Result<f32> {
    if !Arc::ptr_eq(&start.retain.session, &end.retain.session) {
        return Err(foreign("event"));
    }
    end.retain.bind()?;
    let mut ms = 0.0f32;
    // SAFETY: both handles are live while borrowed, and of this library (checked above); the
    // out-pointer is a live local.
    let code = unsafe { (end.retain.lib().aclrtEventElapsedTime)(&mut ms, start.raw, end.raw) };
    check(end.retain.lib(), code, "aclrtEventElapsedTime")?;
    Ok(ms)
}
