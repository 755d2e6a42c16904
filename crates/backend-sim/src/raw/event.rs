//! Host functions (H1), events (E1) and the stream and device calls of S1, at the C level of
//! their arguments.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use notify_api::{Result, err};

use super::{
    CURRENT, Context, Current, Cx, Session, StreamArg, StreamHandle, check_context, enqueue_stream,
    need, sync_core, with_cx,
};
use crate::event::EventCore;
use crate::fork;
use crate::stream::{HostFn, Task};

/// `ACL_EVENT_SYNC | ACL_EVENT_CAPTURE_STREAM_PROGRESS | ACL_EVENT_TIME_LINE`.
const EVENT_FLAGS: u32 = 0x1 | 0x2 | 0x8;
/// `ACL_EVENT_IPC`.
const EVENT_IPC: u32 = 0x40;

/// `aclrtLaunchHostFunc` (H1): a task that calls `f` on a runtime thread, with the stream's
/// context current there, when the stream reaches it. `f` is stored with what runs around it in
/// one `HostFn` (in place when small, else in one box).
pub fn launch_host_fn(
    s: &Arc<Session>,
    cx: Cx<'_>,
    stream: StreamArg<'_>,
    f: impl FnOnce() + Send + 'static,
) -> Result<()> {
    s.check()?;
    with_cx(s, cx, |current| {
        let current = need(current)?;
        // The stream's own context (a handle's), else the one whose default stream it is.
        let ctx = match &stream {
            StreamArg::Handle(Ok(h)) => Arc::clone(&h.ctx),
            _ => Arc::clone(current),
        };
        let (_, core) = enqueue_stream(s, current, &stream)?;
        let session = s.id;
        core.enqueue(Task::HostFn(Some(HostFn::new(move || {
            with_context(session, ctx, f);
        }))))
    })
}

/// Runs `f` with `ctx` current in this thread for `s` (H1: the calls a host function makes use
/// its stream's context), restoring what was current before.
fn with_context(session: u64, ctx: Arc<Context>, f: impl FnOnce()) {
    let generation = fork::generation();
    let previous = CURRENT
        .try_with(|c| {
            let mut c = c.borrow_mut();
            let previous = c
                .iter()
                .position(|e| e.session == session && e.generation == generation)
                .map(|i| c.remove(i));
            c.push(Current {
                session,
                generation,
                ctx,
            });
            previous
        })
        .ok()
        .flatten();
    f();
    let _ = CURRENT.try_with(|c| {
        let mut c = c.borrow_mut();
        c.retain(|e| !(e.session == session && e.generation == generation));
        c.extend(previous);
    });
}

/// An event of this process (E1), bound to the context it was created in (C1).
#[derive(Debug)]
pub struct EventHandle {
    session: u64,
    ctx: Arc<Context>,
    core: Arc<EventCore>,
}

impl EventHandle {
    /// The device of the event's context.
    pub fn device(&self) -> i32 {
        self.ctx.device()
    }

    fn check(&self, s: &Session) -> Result<()> {
        if self.session != s.id {
            return Err(super::foreign("event"));
        }
        Ok(())
    }
}

impl Drop for EventHandle {
    fn drop(&mut self) {
        self.core
            .destroyed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.core.wake_all();
    }
}

/// `aclrtCreateEvent` / `aclrtCreateEventWithFlag` (E1): context → IPC (207000) → other bits.
pub fn create_event(s: &Arc<Session>, cx: Cx<'_>, flags: u32) -> Result<EventHandle> {
    s.check()?;
    with_cx(s, cx, |ctx| {
        let ctx = need(ctx)?;
        check_context(s, ctx)?;
        if flags & EVENT_IPC != 0 {
            return Err(err!(
                E1: RT_FEATURE_NOT_SUPPORT,
                "ACL_EVENT_IPC: IPC events are not simulated yet"
            ));
        }
        if flags & !EVENT_FLAGS != 0 {
            return Err(err!(
                E1: RT_PARAM_INVALID,
                "unknown event flag bits {:#x} (allowed: SYNC 0x1, CAPTURE_STREAM_PROGRESS 0x2, \
                 TIME_LINE 0x8)",
                flags & !EVENT_FLAGS
            ));
        }
        Ok(EventHandle {
            session: s.id,
            core: Arc::new(EventCore::new()),
            ctx: Arc::clone(ctx),
        })
    })
}

/// `aclrtDestroyEvent` (E1): waits on it end; tasks already queued still complete it.
pub fn destroy_event(s: &Session, event: EventHandle) -> Result<()> {
    s.check()?;
    event.check(s)?;
    drop(event);
    Ok(())
}

/// R13, C1: an event of another device refuses a stream (107003).
fn same_device(event: &EventHandle, ctx: &Context) -> Result<()> {
    if event.ctx.device() != ctx.device() {
        return Err(err!(
            R13: RT_STREAM_CONTEXT,
            "the event belongs to device {}, the stream to device {}",
            event.ctx.device(),
            ctx.device()
        ));
    }
    if event.ctx.id() != ctx.id() {
        return Err(err!(
            C1: RT_STREAM_CONTEXT,
            "the event belongs to another context of device {} than the stream",
            ctx.device()
        ));
    }
    Ok(())
}

/// The R15 steps every event enqueue shares: context → event → stream → device.
fn event_enqueue<'a>(
    s: &'a Session,
    ctx: Option<&'a Arc<Context>>,
    event: Result<&'a EventHandle>,
    stream: StreamArg<'a>,
) -> Result<(&'a EventHandle, &'a Arc<crate::stream::StreamCore>)> {
    let ctx = need(ctx)?;
    let event = event?;
    event.check(s)?;
    let (ctx, core) = enqueue_stream(s, ctx, &stream)?;
    same_device(event, ctx)?;
    Ok((event, core))
}

/// `aclrtRecordEvent` (E1): a stream task that completes the event and stamps its time.
pub fn record_event(
    s: &Session,
    cx: Cx<'_>,
    event: Result<&EventHandle>,
    stream: StreamArg<'_>,
) -> Result<()> {
    s.check()?;
    with_cx(s, cx, |ctx| {
        let (event, core) = event_enqueue(s, ctx, event, stream)?;
        let seq = event.core.issue();
        core.enqueue(Task::EventRecord(Arc::clone(&event.core), seq))
    })
}

/// `aclrtResetEvent` (E1): a stream task that returns the event to never-recorded.
pub fn reset_event(
    s: &Session,
    cx: Cx<'_>,
    event: Result<&EventHandle>,
    stream: StreamArg<'_>,
) -> Result<()> {
    s.check()?;
    with_cx(s, cx, |ctx| {
        let (event, core) = event_enqueue(s, ctx, event, stream)?;
        core.enqueue(Task::EventReset(Arc::clone(&event.core)))
    })
}

/// `aclrtStreamWaitEvent` (E1): the stream waits for the work recorded on the event *before*
/// this call; an event never recorded does not make it wait.
pub fn stream_wait_event(
    s: &Session,
    cx: Cx<'_>,
    stream: StreamArg<'_>,
    event: Result<&EventHandle>,
) -> Result<()> {
    s.check()?;
    with_cx(s, cx, |ctx| {
        let (event, core) = event_enqueue(s, ctx, event, stream)?;
        match event.core.wait_target() {
            None => Ok(()),
            Some(target) => core.enqueue(Task::EventWait(Arc::clone(&event.core), target)),
        }
    })
}

/// `aclrtSynchronizeEvent` (E1): blocks the host until the work recorded before this call ran.
pub fn synchronize_event(s: &Session, event: Result<&EventHandle>) -> Result<()> {
    s.check()?;
    let event = event?;
    event.check(s)?;
    if let Some(target) = event.core.wait_target() {
        let never = AtomicBool::new(false);
        event.core.wait(target, None, &never);
    }
    Ok(())
}

/// `aclrtQueryEventStatus` (E1): whether it is complete (also for one never recorded: sim).
pub fn query_event(s: &Session, event: Result<&EventHandle>) -> Result<bool> {
    s.check()?;
    let event = event?;
    event.check(s)?;
    Ok(event.core.complete_now())
}

/// `aclrtEventElapsedTime` (E1): milliseconds between two completed events.
pub fn event_elapsed(
    s: &Session,
    start: Result<&EventHandle>,
    end: Result<&EventHandle>,
) -> Result<f32> {
    s.check()?;
    let (start, end) = (start?, end?);
    start.check(s)?;
    end.check(s)?;
    EventCore::elapsed(&start.core, &end.core)
}

/// `aclrtStreamQuery` (S1): whether nothing is queued or running; from any context (C1).
pub fn stream_query(s: &Session, cx: Cx<'_>, stream: StreamArg<'_>) -> Result<bool> {
    s.check()?;
    Ok(sync_core(s, cx, &stream)?.is_complete())
}

/// `aclrtDestroyStreamForce` (S1): a running task finishes (a wait is abandoned), queued
/// tasks are dropped, each releasing what it held (R8).
pub fn destroy_stream_force(s: &Session, stream: StreamHandle) -> Result<()> {
    s.check()?;
    stream.core.force_shutdown();
    drop(stream);
    Ok(())
}

/// `aclrtSynchronizeDevice` (S1): every stream of the current device; their first failure.
pub fn synchronize_device(s: &Session, cx: Cx<'_>) -> Result<()> {
    s.check()?;
    let device = with_cx(s, cx, |ctx| need(ctx).map(|c| c.device()))?;
    let mut first = Ok(());
    for core in s.cores(Some(device)) {
        let r = core.synchronize(None);
        if first.is_ok() {
            first = r;
        }
    }
    first
}

/// `aclrtResetDeviceForce` (S1), the session's part: every stream of `device` is destroyed by
/// force, every allocation and import on it released, and the thread left with no current
/// context. The caller drops the handles it holds for that device (streams, events, contexts,
/// notifies as by destroy).
pub fn reset_device_force(s: &Session, device: i32) -> Result<()> {
    s.check()?;
    s.check_device(device)?;
    for core in s.cores(Some(device)) {
        core.force_shutdown();
    }
    s.release_memory_of(device);
    super::reset_device(s, device)
}

/// `aclrtGetRunMode` (S1): the simulator runs on the host.
pub fn run_mode(s: &Session) -> Result<u32> {
    s.check()?;
    Ok(acl_host())
}

/// `ACL_HOST`.
const fn acl_host() -> u32 {
    1
}
