//! One check (or several) per observable sentence of `SEMANTICS.md` §6: host functions (H1),
//! events (E1), contexts (C1), stream and device calls (S1).
//!
//! Every check needs [`Capability::StreamTasks`](super::Capability::StreamTasks) (and
//! [`Capability::Memory`](super::Capability::Memory) where a host function works through
//! copies, as H1 says a kernel stand-in does). Streams are kept busy with a [`Gate`] (a notify
//! wait), so that "not yet" is observed without racing a timer; host functions that must wait
//! wait on a channel with a timeout, so that a broken backend fails a check instead of hanging
//! it.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use super::support::{
    EventOf, Gate, KIB4, QUICK, SHORT, alloc, assert_busy, create, destroy, dev, kept_range, put,
    stream, sync_ok,
};
use super::{assert_code, ok};
use crate::{
    AclError, Backend, Buffer, Device, DeviceId, Event, EventFlags, MallocPolicy, Stream, Timeout,
};

/// A one-shot flag a host function raises.
#[derive(Clone, Default)]
struct Flag(Arc<Mutex<bool>>);

impl Flag {
    fn raise(&self) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
    }

    fn is_up(&self) -> bool {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Enqueues a host function on `s` that raises a new flag, and returns the flag.
#[track_caller]
fn marker<S: Stream>(s: &S, what: &str) -> Flag {
    let flag = Flag::default();
    let raised = flag.clone();
    ok(s.launch_host_fn(move || raised.raise()), what);
    flag
}

/// An event with `flags` on `d`.
#[track_caller]
fn event<D: Device>(d: &D, flags: EventFlags, what: &str) -> EventOf<D> {
    ok(d.create_event(flags), what)
}

// ---------------------------------------------------------------------------------------------
// H1 — Host functions
// ---------------------------------------------------------------------------------------------

/// H1: `aclrtLaunchHostFunc` enqueues a task that calls `fn` on a runtime thread (not the
/// caller's) when it reaches the head of its stream: behind a blocked wait it does not run; it
/// sees the effect of the tasks before it (a set), and the stream's next task starts only after
/// it returns (a second host function, and a copy that reads what the first one wrote). Calls
/// made from inside work with the stream's device: synchronous copies, and an async copy on
/// another stream that it synchronizes (only its own stream is off limits).
///
/// C ABI: NULL `fn` (100000), and that a host function's C calls find its stream's context
/// current (the typed API binds each handle's own device).
pub fn h1_host_fn_runs_in_stream_order<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let b = alloc(&d0, KIB4, MallocPolicy::NormalOnly, "alloc");
    put(&d0, b.as_range(), &[0; KIB4], "zero");
    let addr_range = b.as_range();
    let s = stream(&d0, "create_stream");
    let gate = Gate::new(&d0);
    gate.hold(&s);
    ok(s.memset(addr_range, 7), "a set before the host function");
    let log = Arc::new(Mutex::new(Vec::<&'static str>::new()));
    let (tx, rx) = mpsc::channel::<(ThreadId, Vec<u8>, crate::Result<()>, crate::Result<()>)>();
    {
        let (d, log) = (d0.clone(), log.clone());
        let other = stream(&d0, "another stream, for the host function");
        // The closure is `'static` and a range borrows its buffer, so the host function
        // rebuilds the range from its address; the buffer is freed only after the stream ran.
        let (addr, len) = (addr_range.addr(), addr_range.len());
        ok(
            s.launch_host_fn(move || {
                let range = kept_range(addr, len, DeviceId(0), false);
                let mut seen = vec![0u8; len];
                let read = d.copy_to_host(&mut seen, range);
                std::thread::sleep(Duration::from_millis(100));
                log.lock().expect("log").push("first");
                let wrote = read.and_then(|()| d.copy_from_host(range, &[9; KIB4]));
                let other_ok = other
                    .memset(range.slice(..1).expect("slice"), 9)
                    .and_then(|()| other.synchronize());
                let _ = tx.send((std::thread::current().id(), seen, wrote, other_ok));
            }),
            "launch the first host function",
        );
    }
    {
        let log = log.clone();
        ok(
            s.launch_host_fn(move || log.lock().expect("log").push("second")),
            "launch the second host function",
        );
    }
    let download = ok(
        s.copy_to_host(addr_range),
        "a copy after the host functions",
    );
    std::thread::sleep(SHORT);
    assert!(
        log.lock().expect("log").is_empty(),
        "a host function ran behind a blocked wait"
    );
    gate.open();
    sync_ok(&s, "synchronize");
    let (thread, seen, wrote, other_ok) = rx.recv_timeout(QUICK).expect("the host function ran");
    assert_ne!(
        thread,
        std::thread::current().id(),
        "the host function ran on the caller's thread"
    );
    assert_eq!(
        seen,
        vec![7; KIB4],
        "the host function ran before the set before it finished"
    );
    ok(wrote, "copies from inside a host function");
    ok(other_ok, "a host function synchronizes another stream");
    assert_eq!(
        *log.lock().expect("log"),
        ["first", "second"],
        "host functions out of order"
    );
    assert_eq!(
        ok(download.wait(), "download"),
        vec![9; KIB4],
        "the next task started before the host function returned"
    );
    gate.finish();
    drop(s);
    ok(b.free(), "free");
}

/// H1: a host function must not synchronize its own stream: such a call returns 107000 instead
/// of deadlocking (also with a timeout, and `Device::synchronize` of its device, which includes
/// its stream), and the stream goes on: its next synchronize reports nothing for it, and later
/// tasks run. The stream reaches the host function through an `Arc` it captured.
pub fn h1_host_fn_cannot_synchronize_own_stream<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let s = Arc::new(stream(&d0, "create_stream"));
    let (tx, rx) = mpsc::channel();
    {
        let (own, d) = (Arc::clone(&s), d0.clone());
        ok(
            s.launch_host_fn(move || {
                let results = (
                    own.synchronize(),
                    own.synchronize_timeout(Some(Duration::from_secs(1))),
                    d.synchronize(),
                );
                let _ = tx.send(results);
            }),
            "launch",
        );
    }
    let Ok((plain, timed, device)) = rx.recv_timeout(QUICK + Duration::from_secs(2)) else {
        // The stream is stuck in its own host function: leak it rather than hang in its drop.
        std::mem::forget(s);
        panic!("a host function synchronizing its own stream deadlocked");
    };
    let code = AclError::RT_PARAM_INVALID;
    assert_code(
        plain,
        code,
        "synchronize of its own stream from a host function",
    );
    assert_code(
        timed,
        code,
        "synchronize_timeout of its own stream from a host function",
    );
    assert_code(
        device,
        code,
        "synchronize of its device from a host function",
    );
    sync_ok(&*s, "the stream's next synchronize reports nothing for it");
    let flag = marker(&*s, "a later task");
    sync_ok(&*s, "synchronize");
    assert!(flag.is_up(), "the stream did not go on");
}

/// H1 (Rust API): a host function that panics fails its stream's next synchronize
/// (507000, `Stream::launch_host_fn`); the stream goes on with its next task, and the failure is
/// reported once (R2).
pub fn h1_host_fn_panic_is_stream_error<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let s = stream(&d0, "create_stream");
    ok(
        s.launch_host_fn(|| panic!("conformance: this host function panics on purpose (H1)")),
        "launch a host function that panics",
    );
    let flag = marker(&s, "a later task");
    assert_code(
        s.synchronize(),
        AclError::RT_INTERNAL_ERROR,
        "synchronize after a panic",
    );
    assert!(flag.is_up(), "the stream did not go on after the panic");
    sync_ok(&s, "the failure is reported once");
}

// ---------------------------------------------------------------------------------------------
// E1 — Events
// ---------------------------------------------------------------------------------------------

/// E1: the flags of `aclrtCreateEventWithFlag` are any combination of SYNC,
/// CAPTURE_STREAM_PROGRESS and TIME_LINE; events of every combination record and complete, and
/// the time between any two of them is given whatever their flags.
///
/// C ABI: other bits (107000) and `ACL_EVENT_IPC` (207000): `EventFlags` holds only the three.
pub fn e1_event_flags<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let s = stream(&d0, "create_stream");
    let all = [
        EventFlags::SYNC,
        EventFlags::CAPTURE_STREAM_PROGRESS,
        EventFlags::TIME_LINE,
    ];
    let mut events = Vec::new();
    for bits in 0..8u8 {
        let mut flags = EventFlags::DEFAULT;
        for (i, f) in all.iter().enumerate() {
            if bits & (1 << i) != 0 {
                flags |= *f;
            }
        }
        let e = event(&d0, flags, &format!("create_event({flags:?})"));
        ok(
            s.record_event(&e),
            &format!("record an event with {flags:?}"),
        );
        events.push(e);
    }
    sync_ok(&s, "synchronize");
    for pair in events.windows(2) {
        assert!(
            ok(pair[1].is_complete(), "query"),
            "a recorded event is not complete"
        );
        let ms = ok(
            pair[1].elapsed_ms(&pair[0]),
            "elapsed between events of different flags",
        );
        assert!(
            ms.is_finite() && ms >= 0.0,
            "elapsed {ms} ms between events in stream order"
        );
    }
    for e in events {
        ok(e.destroy(), "destroy");
    }
}

/// E1: `aclrtRecordEvent` is a stream task that completes the event when the stream reaches it:
/// behind a blocked wait the event is NOT_READY and `aclrtSynchronizeEvent` blocks the host; once
/// the stream runs the record, both answer. An event never recorded is COMPLETE (sim, as CUDA)
/// and does not block.
pub fn e1_record_completes_when_reached<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let e = Arc::new(event(&d0, EventFlags::DEFAULT, "create_event"));
    assert!(
        ok(e.is_complete(), "query"),
        "an event never recorded is NOT_READY"
    );
    let t = Instant::now();
    ok(e.synchronize(), "synchronize an event never recorded");
    assert!(t.elapsed() < QUICK, "an event never recorded blocked");
    let s = stream(&d0, "create_stream");
    let gate = Gate::new(&d0);
    gate.hold(&s);
    ok(s.record_event(&e), "record behind a blocked wait");
    assert!(
        !ok(e.is_complete(), "query"),
        "complete before the stream reached the record"
    );
    let (tx, rx) = mpsc::channel();
    let waiter = {
        let e = Arc::clone(&e);
        std::thread::spawn(move || {
            let _ = tx.send(e.synchronize());
        })
    };
    assert!(
        matches!(rx.recv_timeout(SHORT), Err(mpsc::RecvTimeoutError::Timeout)),
        "synchronize returned before the stream reached the record"
    );
    gate.open();
    let r = rx
        .recv_timeout(QUICK + Duration::from_secs(5))
        .expect("the event synchronize returns");
    ok(r, "synchronize of a recorded event");
    waiter.join().expect("waiter thread");
    assert!(
        ok(e.is_complete(), "query"),
        "not complete after the record ran"
    );
    sync_ok(&s, "synchronize");
    gate.finish();
}

/// E1: `aclrtStreamWaitEvent` makes a stream wait until the work recorded on the event *before*
/// that call completes: the waiting stream is held while the recording stream is blocked, goes
/// on once the record ran, and is not held by a record issued after the call (the recording
/// stream blocked again behind it). An event never recorded does not make it wait.
pub fn e1_stream_wait_event<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let (a, b) = (
        stream(&d0, "recording stream"),
        stream(&d0, "waiting stream"),
    );
    let e = event(&d0, EventFlags::DEFAULT, "create_event");
    let (first, second) = (Gate::new(&d0), Gate::new(&d0));
    first.hold(&a);
    ok(a.record_event(&e), "record behind a blocked wait");
    ok(b.wait_event(&e), "the other stream waits for it");
    let flag = marker(&b, "a task after the wait");
    assert_busy(&b, "the waiting stream while the record has not run");
    assert!(!flag.is_up(), "a task ran past an event wait");
    second.hold(&a);
    ok(a.record_event(&e), "a record issued after the wait");
    first.open();
    let t = Instant::now();
    sync_ok(&b, "the waiting stream goes on once the earlier record ran");
    assert!(t.elapsed() < QUICK, "the wait waited for the later record");
    assert!(flag.is_up(), "the task after the wait");
    second.open();
    sync_ok(&a, "synchronize");

    let never = event(&d0, EventFlags::DEFAULT, "an event never recorded");
    let blocker = Gate::new(&d0);
    blocker.hold(&a);
    ok(b.wait_event(&never), "wait for an event never recorded");
    let flag = marker(&b, "a task after it");
    let t = Instant::now();
    sync_ok(&b, "a wait for an event never recorded does not wait");
    assert!(
        t.elapsed() < QUICK && flag.is_up(),
        "a wait for an event never recorded waited"
    );
    blocker.open();
    sync_ok(&a, "synchronize");
    for g in [first, second, blocker] {
        g.finish();
    }
    ok(e.destroy(), "destroy");
    ok(never.destroy(), "destroy");
}

/// E1: `aclrtResetEvent` is a stream task that returns the event to never-recorded: queued
/// behind a blocked wait it has not run (the event still has its time), once run the event is
/// COMPLETE as one never recorded, has no time (107000 either way round), and does not make a
/// stream wait.
pub fn e1_reset_event<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let s = stream(&d0, "create_stream");
    let (start, end) = (
        event(&d0, EventFlags::DEFAULT, "start"),
        event(&d0, EventFlags::DEFAULT, "end"),
    );
    ok(s.record_event(&start), "record start");
    ok(s.record_event(&end), "record end");
    sync_ok(&s, "synchronize");
    ok(
        end.elapsed_ms(&start),
        "elapsed between two completed events",
    );
    let gate = Gate::new(&d0);
    gate.hold(&s);
    ok(s.reset_event(&end), "queue a reset behind a blocked wait");
    ok(end.elapsed_ms(&start), "elapsed before the reset ran");
    gate.open();
    sync_ok(&s, "the reset runs");
    assert!(ok(end.is_complete(), "query"), "a reset event is NOT_READY");
    assert_code(
        end.elapsed_ms(&start),
        AclError::RT_PARAM_INVALID,
        "elapsed to a reset event",
    );
    assert_code(
        start.elapsed_ms(&end),
        AclError::RT_PARAM_INVALID,
        "elapsed from a reset event",
    );
    let other = stream(&d0, "another stream");
    let blocker = Gate::new(&d0);
    blocker.hold(&s);
    ok(other.wait_event(&end), "wait for the reset event");
    let t = Instant::now();
    sync_ok(&other, "a reset event does not make a stream wait");
    assert!(t.elapsed() < QUICK, "a reset event made a stream wait");
    blocker.open();
    sync_ok(&s, "synchronize");
    gate.finish();
    blocker.finish();
    ok(start.destroy(), "destroy");
    ok(end.destroy(), "destroy");
}

/// E1: `aclrtEventElapsedTime` gives the milliseconds between two completed events: at least a
/// sleep a host function made between their records; 107000 while either is not complete (its
/// record queued behind a blocked wait) or was never recorded.
pub fn e1_elapsed_time<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let s = stream(&d0, "create_stream");
    let start = event(&d0, EventFlags::DEFAULT, "start");
    let end = event(&d0, EventFlags::TIME_LINE, "end");
    ok(s.record_event(&start), "record start");
    ok(
        s.launch_host_fn(|| std::thread::sleep(Duration::from_millis(200))),
        "a host function that sleeps 200 ms",
    );
    ok(s.record_event(&end), "record end");
    sync_ok(&s, "synchronize");
    let ms = ok(end.elapsed_ms(&start), "elapsed");
    assert!(
        (190.0..10_000.0).contains(&ms),
        "{ms} ms between records 200 ms apart"
    );

    let never = event(&d0, EventFlags::DEFAULT, "never recorded");
    let code = AclError::RT_PARAM_INVALID;
    assert_code(
        never.elapsed_ms(&start),
        code,
        "elapsed to an event never recorded",
    );
    assert_code(
        start.elapsed_ms(&never),
        code,
        "elapsed from an event never recorded",
    );
    let late = event(&d0, EventFlags::DEFAULT, "late");
    let gate = Gate::new(&d0);
    gate.hold(&s);
    ok(s.record_event(&late), "record behind a blocked wait");
    assert_code(
        late.elapsed_ms(&start),
        code,
        "elapsed to an incomplete event",
    );
    assert_code(
        start.elapsed_ms(&late),
        code,
        "elapsed from an incomplete event",
    );
    gate.open();
    sync_ok(&s, "synchronize");
    ok(late.elapsed_ms(&start), "elapsed once it completed");
    gate.finish();
    for e in [start, end, never, late] {
        ok(e.destroy(), "destroy");
    }
}

/// E1, R13: an event of another device used on a stream (record, wait, reset) → 107003 at
/// enqueue; the stream reports nothing later and the event is untouched.
pub fn e1_event_of_another_device<B: Backend>(rt: &B::Runtime) {
    let (d0, d1) = (dev(rt, 0), dev(rt, 1));
    let s0 = stream(&d0, "stream on device 0");
    let e1 = event(&d1, EventFlags::DEFAULT, "an event on device 1");
    assert_eq!(e1.device().id(), DeviceId(1), "the event's device");
    let code = AclError::RT_STREAM_CONTEXT;
    assert_code(
        s0.record_event(&e1),
        code,
        "record of another device's event",
    );
    assert_code(s0.wait_event(&e1), code, "wait for another device's event");
    assert_code(s0.reset_event(&e1), code, "reset of another device's event");
    sync_ok(&s0, "refused enqueues are not reported later");
    assert_code(
        e1.elapsed_ms(&e1),
        AclError::RT_PARAM_INVALID,
        "the event is still never recorded",
    );
    let s1 = stream(&d1, "stream on device 1");
    ok(s1.record_event(&e1), "record on its own device");
    sync_ok(&s1, "synchronize");
    ok(e1.destroy(), "destroy");
}

// ---------------------------------------------------------------------------------------------
// C1 — Contexts
// ---------------------------------------------------------------------------------------------

/// C1: `aclrtCreateContext` gives another context on the device, as a device value of its own:
/// its streams, notifies and events work, and its streams are independent of the default
/// context's (a stream of the new context held at a wait does not hold one of the default
/// context, nor the other way round).
///
/// C ABI: `aclrtSetCurrentContext`/`aclrtGetCurrentContext`, enqueueing under another context
/// than the handle's (107003), `aclrtDestroyContext` of the default context (107000) and of a
/// created one with its streams and events: the typed API binds each handle's own context and
/// destroys a created context when its last handle goes.
pub fn c1_created_context<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let c = ok(d0.create_context(), "create_context");
    assert_eq!(c.id(), d0.id(), "a created context is on its device");
    let (sc, s0) = (
        stream(&c, "stream of the created context"),
        stream(&d0, "stream of the default context"),
    );
    let n = create(&c, "a notify from the created context");
    ok(sc.record(&n), "record");
    ok(sc.wait(&n, Timeout::secs(5)), "wait");
    sync_ok(&sc, "a notify of the created context on its stream");
    let e = event(&c, EventFlags::DEFAULT, "an event of the created context");
    ok(sc.record_event(&e), "record the event");
    sync_ok(&sc, "synchronize");
    assert!(
        ok(e.is_complete(), "query"),
        "the event of the created context"
    );

    let gate = Gate::new(&c);
    gate.hold(&sc);
    let flag = marker(&s0, "a task on the default context's stream");
    sync_ok(
        &s0,
        "the default context's stream runs while the created one's is held",
    );
    assert!(flag.is_up());
    assert_busy(&sc, "the created context's stream is still held");
    gate.open();
    sync_ok(&sc, "synchronize");
    let other = Gate::new(&d0);
    other.hold(&s0);
    let flag = marker(&sc, "a task on the created context's stream");
    sync_ok(
        &sc,
        "the created context's stream runs while the default one's is held",
    );
    assert!(flag.is_up());
    other.open();
    sync_ok(&s0, "synchronize");
    gate.finish();
    other.finish();
    ok(e.destroy(), "destroy");
    destroy(n, "destroy");
    drop((sc, s0, c));
    let again = stream(&d0, "the default context after the created one is gone");
    sync_ok(&again, "synchronize");
}

// ---------------------------------------------------------------------------------------------
// S1 — Stream and device calls
// ---------------------------------------------------------------------------------------------

/// S1: `aclrtStreamQuery` answers COMPLETE when nothing is queued or running: a new stream, a
/// stream whose tasks all ran; NOT_READY while a wait is blocked (with a task queued behind it)
/// and while a host function runs.
///
/// C ABI: `aclrtDestroyStreamForce`, `aclrtResetDeviceForce`, `aclrtGetRunMode`.
pub fn s1_stream_query<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let s = stream(&d0, "create_stream");
    assert!(ok(s.is_complete(), "query"), "a new stream is NOT_READY");
    let gate = Gate::new(&d0);
    gate.hold(&s);
    let flag = marker(&s, "a task behind the wait");
    assert!(
        !ok(s.is_complete(), "query"),
        "COMPLETE with a wait blocked"
    );
    gate.open();
    sync_ok(&s, "synchronize");
    assert!(flag.is_up());
    assert!(
        ok(s.is_complete(), "query"),
        "NOT_READY after every task ran"
    );
    let (tx, rx) = mpsc::channel::<()>();
    let (started_tx, started) = mpsc::channel::<()>();
    ok(
        s.launch_host_fn(move || {
            let _ = started_tx.send(());
            let _ = rx.recv_timeout(Duration::from_secs(5));
        }),
        "a host function that waits",
    );
    started
        .recv_timeout(QUICK)
        .expect("the host function started");
    assert!(
        !ok(s.is_complete(), "query"),
        "COMPLETE while a host function runs"
    );
    tx.send(()).expect("release the host function");
    sync_ok(&s, "synchronize");
    assert!(
        ok(s.is_complete(), "query"),
        "NOT_READY after the host function returned"
    );
    gate.finish();
}

/// S1, C1: `aclrtSynchronizeDevice` waits for every stream of the device, whatever its context
/// (a host function still sleeping on a stream of a created context has finished when it
/// returns), and reports their first failure (an expired wait: 107019); with every stream idle
/// it succeeds. The created context's value waits for the default context's streams too.
pub fn s1_device_synchronize<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let c = ok(d0.create_context(), "create_context");
    let (s0, sc) = (
        stream(&d0, "stream of the default context"),
        stream(&c, "stream of a created context"),
    );
    let n = create(&d0, "a notify nobody records");
    ok(s0.wait(&n, Timeout::secs(1)), "a wait that expires");
    ok(
        sc.launch_host_fn(|| std::thread::sleep(Duration::from_millis(300))),
        "a host function that sleeps",
    );
    let flag = marker(&sc, "a task after it");
    assert_code(
        d0.synchronize(),
        AclError::RT_WAIT_TIMEOUT,
        "device synchronize reports the expired wait",
    );
    assert!(
        flag.is_up(),
        "device synchronize returned before a stream of a created context finished"
    );
    ok(
        d0.synchronize(),
        "device synchronize with every stream idle",
    );
    let gate = Gate::new(&d0);
    gate.hold(&s0);
    let flag = marker(&s0, "a task of the default context");
    let t = Instant::now();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(SHORT);
            gate.open();
        });
        ok(
            c.synchronize(),
            "device synchronize from the created context's value",
        );
    });
    assert!(
        t.elapsed() >= SHORT / 2 && flag.is_up(),
        "it did not wait for the default context's stream"
    );
    sync_ok(&s0, "synchronize");
    gate.finish();
    destroy(n, "destroy");
}
