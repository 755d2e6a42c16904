//! Tests of `result` and the typed API over the fake runtime of `sys::fake`: retains, binding,
//! lifetimes and the C arguments each verb passes.
//!
//! Each test holds `fake::serial()` for its whole run (the fake's state is process-global) and
//! drops every handle before it ends.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Duration;

use notify_api::prelude::*;
use notify_api::{
    AclError, AclFailure, DeviceId, Error, ExportFlags, ImportFlags, NotifyFlags, Pid, Timeout,
};

use crate::sys::{self, fake};
use crate::{AscendRuntime, AscendStream};

fn runtime() -> AscendRuntime {
    AscendRuntime::from_library(fake::lib()).expect("the fake initializes")
}

fn stream_key(stream: &AscendStream) -> usize {
    stream.as_raw() as usize
}

/// Runs a future to completion on this thread.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        thread::park();
    }
}

#[test]
fn a_device_is_one_retain_while_it_or_a_handle_lives() {
    let _serial = fake::serial();
    let rt = runtime();
    let d0 = rt.device(DeviceId(0)).unwrap();
    let again = rt.device(DeviceId(0)).unwrap();
    assert!(d0.same(&again), "a live device is returned again");
    assert_eq!(fake::with(|s| (s.set_device_calls, s.retains[&0])), (1, 1));

    let stream = d0.create_stream().unwrap();
    let notify = d0.create_notify(NotifyFlags::DEFAULT).unwrap();
    drop((d0, again));
    // The handles keep the device: no reset yet, and asking again gives the same value.
    assert_eq!(fake::with(|s| s.reset_device_calls), 0);
    assert!(stream.device().same(notify.device()));
    assert!(rt.device(DeviceId(0)).unwrap().same(stream.device()));
    assert_eq!(fake::with(|s| s.set_device_calls), 1);

    drop(stream);
    assert_eq!(fake::with(|s| s.reset_device_calls), 0);
    drop(notify);
    assert_eq!(
        fake::with(|s| (s.reset_device_calls, s.retains[&0])),
        (1, 0)
    );

    // A new value after the last one went: a new retain.
    let d0 = rt.device(DeviceId(0)).unwrap();
    assert_eq!(fake::with(|s| (s.set_device_calls, s.retains[&0])), (2, 1));
    assert_eq!(d0.id(), DeviceId(0));
    drop(d0);
    assert_eq!(fake::with(|s| s.retains[&0]), 0);
}

#[test]
fn a_bad_device_id_is_the_runtimes_error() {
    let _serial = fake::serial();
    let rt = runtime();
    let e = rt.device(DeviceId(7)).unwrap_err();
    assert_eq!(e.code(), AclError::RT_INVALID_DEVICEID);
    assert!(matches!(&e, Error::Acl(a) if a.rule.is_none()), "{e:?}");
    assert_eq!(e.reason(), "fake: device 7");
    assert_eq!(fake::with(|s| s.retains.values().sum::<u32>()), 0);
    assert_eq!(rt.device_count().unwrap(), fake::DEVICES);
}

#[test]
fn handles_work_from_any_thread_without_set_up() {
    let _serial = fake::serial();
    let rt = runtime();
    let d0 = rt.device(DeviceId(0)).unwrap();
    let stream = d0.create_stream().unwrap();
    let notify = d0.create_notify(NotifyFlags::DEFAULT).unwrap();
    let key = stream_key(&stream);
    thread::spawn(move || {
        assert_eq!(
            fake::current_device(),
            None,
            "a fresh thread has no context"
        );
        stream.record(&notify).unwrap();
        stream.wait(&notify, Timeout::FOREVER).unwrap();
        stream.synchronize().unwrap();
        assert_eq!(fake::current_device(), Some(0));
        notify.destroy().unwrap();
        stream.destroy().unwrap();
    })
    .join()
    .unwrap();
    let (records, destroys) = fake::with(|s| (s.records.clone(), s.stream_destroys.clone()));
    assert_eq!(records.len(), 1);
    assert_eq!((records[0].1, records[0].2), (key, 0));
    assert_eq!(destroys, [(key, 0)]);
}

#[test]
fn binding_calls_the_runtime_only_when_the_context_differs() {
    let _serial = fake::serial();
    let rt = runtime();
    let contexts = || fake::with(|s| s.set_context_calls);
    let d0 = rt.device(DeviceId(0)).unwrap(); // aclrtSetDevice binds this thread
    let s0 = d0.create_stream().unwrap();
    let n0 = d0.create_notify(NotifyFlags::DEFAULT).unwrap();
    for _ in 0..3 {
        s0.record(&n0).unwrap();
    }
    assert_eq!(contexts(), 0);

    let d1 = rt.device(DeviceId(1)).unwrap(); // binds device 1 here
    let s1 = d1.create_stream().unwrap();
    assert_eq!(contexts(), 0);
    s0.record(&n0).unwrap(); // back to device 0
    s0.record(&n0).unwrap();
    assert_eq!(contexts(), 1);
    s1.record(&n0).unwrap(); // any holder may record on a stream of any device (R4)
    assert_eq!(contexts(), 2);
    let devices: Vec<i32> = fake::with(|s| s.records.iter().map(|r| r.2).collect());
    assert_eq!(devices, [0, 0, 0, 0, 0, 1]);
}

#[test]
fn a_thread_bound_to_a_released_device_binds_the_new_one() {
    let _serial = fake::serial();
    let rt = runtime();
    let (to_worker, work) = std::sync::mpsc::channel::<crate::AscendDevice>();
    let (to_main, done) = std::sync::mpsc::channel::<u32>();
    let worker = thread::spawn(move || {
        // Each device value it gets, it uses once and reports how many context switches that
        // cost.
        for device in work {
            let before = fake::with(|s| s.set_context_calls);
            device.create_stream().unwrap();
            let switches = fake::with(|s| s.set_context_calls) - before;
            // Let go of the device before reporting, so that the main thread's drop is the last.
            drop(device);
            to_main.send(switches).unwrap();
        }
    });
    let d0 = rt.device(DeviceId(0)).unwrap();
    to_worker.send(d0.clone()).unwrap();
    assert_eq!(done.recv().unwrap(), 1, "first use on the worker binds");
    to_worker.send(d0.clone()).unwrap();
    assert_eq!(done.recv().unwrap(), 0, "the worker is still bound");
    drop(d0);
    assert_eq!(fake::with(|s| s.retains[&0]), 0, "device 0 was released");

    // Same id, and in the fake the same context pointer: still a new device value.
    let d0 = rt.device(DeviceId(0)).unwrap();
    to_worker.send(d0.clone()).unwrap();
    assert_eq!(
        done.recv().unwrap(),
        1,
        "the worker rebinds to the new value"
    );
    drop(to_worker);
    worker.join().unwrap();
    drop(d0);
}

#[test]
fn the_default_stream_is_null_bound_and_never_destroyed() {
    let _serial = fake::serial();
    let rt = runtime();
    let d1 = rt.device(DeviceId(1)).unwrap();
    let _d0 = rt.device(DeviceId(0)).unwrap(); // this thread is now bound to device 0
    let stream = d1.default_stream().unwrap();
    assert!(stream.is_default());
    assert!(stream.as_raw().is_null());
    let notify = d1.create_notify(NotifyFlags::DEFAULT).unwrap();
    thread::spawn(move || {
        stream.record(&notify).unwrap();
        stream.synchronize().unwrap();
        stream.destroy().unwrap();
    })
    .join()
    .unwrap();
    let default = d1.default_stream().unwrap();
    default
        .record(&d1.create_notify(NotifyFlags::DEFAULT).unwrap())
        .unwrap();
    drop(default);
    fake::with(|s| {
        // NULL went to the runtime with device 1 current, every time.
        assert!(
            s.records.iter().all(|r| r.1 == 0 && r.2 == 1),
            "{:?}",
            s.records
        );
        assert_eq!(s.syncs, [(0, 1, None)]);
        assert!(s.stream_destroys.is_empty());
    });
}

#[test]
fn stream_verbs_pass_the_c_arguments() {
    let _serial = fake::serial();
    let rt = runtime();
    let d0 = rt.device(DeviceId(0)).unwrap();
    let stream = d0.create_stream().unwrap();
    let notify = d0.create_notify(NotifyFlags::DEVICE_USE_ONLY).unwrap();
    stream.wait(&notify, Timeout::secs(3)).unwrap();
    stream.wait(&notify, Timeout::FOREVER).unwrap();
    stream.wait(&notify, Duration::from_millis(1500)).unwrap();
    stream.wait(&notify, None).unwrap();
    stream
        .synchronize_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    stream.synchronize_timeout(None).unwrap();
    let waits: Vec<u32> = fake::with(|s| s.waits.iter().map(|w| w.2).collect());
    assert_eq!(waits, [3, 0, 2, 0]);
    let syncs: Vec<Option<i32>> = fake::with(|s| s.syncs.iter().map(|s| s.2).collect());
    assert_eq!(syncs, [Some(250), Some(-1)]);
}

#[test]
fn notify_calls_pass_the_c_arguments() {
    let _serial = fake::serial();
    let rt = runtime();
    let d0 = rt.device(DeviceId(0)).unwrap();
    let d1 = rt.device(DeviceId(1)).unwrap();
    let notify = d0.create_notify(NotifyFlags::DEFAULT).unwrap();
    let key = notify.export(ExportFlags::DEFAULT).unwrap();
    assert!(key.as_str().starts_with("fake-"), "{key:?}");
    notify.set_import_pid(Pid(77)).unwrap();
    let raw = notify.as_raw() as usize;
    assert_eq!(fake::with(|s| s.import_pids.clone()), [(raw, vec![77])]);

    let imported = d1.import_notify(&key, ImportFlags::DEFAULT).unwrap();
    assert_eq!(imported.device().id(), DeviceId(1));
    assert!(imported.device().same(&d1));
    assert_eq!(
        fake::with(|s| s.notifies[&(imported.as_raw() as usize)].device),
        1
    );
    assert_ne!(imported.id().unwrap(), notify.id().unwrap());

    rt.batch_reset(&[&notify, &imported]).unwrap();
    let empty = rt.batch_reset(&[]).unwrap_err();
    assert_eq!(
        empty.code(),
        AclError::RT_PARAM_INVALID,
        "the runtime says so (R1)"
    );
    assert_eq!(
        fake::with(|s| s.batch_resets.clone()),
        [vec![raw, imported.as_raw() as usize]]
    );

    thread::spawn({
        let d1 = d1.clone();
        move || d1.enable_peer_access(DeviceId(0)).unwrap()
    })
    .join()
    .unwrap();
    assert_eq!(fake::with(|s| s.peer_enables.clone()), [(1, 0, 0)]);
    assert_eq!(rt.bare_tgid().unwrap(), Pid(fake::BARE_TGID));
    assert_eq!(d1.bare_tgid().unwrap(), Pid(fake::BARE_TGID));
    assert!(rt.can_access_peer(DeviceId(0), DeviceId(1)).unwrap());

    imported.destroy().unwrap();
    notify.destroy().unwrap();
    assert!(fake::with(|s| s.notifies.values().all(|n| !n.alive)));
}

#[test]
fn refusals_carry_the_code_and_the_runtime_text_without_a_rule() {
    let _serial = fake::serial();
    let rt = runtime();
    let d0 = rt.device(DeviceId(0)).unwrap();
    let d1 = rt.device(DeviceId(1)).unwrap();
    let notify = d0.create_notify(NotifyFlags::DEFAULT).unwrap();
    let other = d1.create_stream().unwrap();
    match other.wait(&notify, Timeout::secs(1)) {
        Err(Error::Acl(a)) => {
            let AclFailure { code, rule, reason } = *a;
            assert_eq!(code, AclError::RT_PARAM_INVALID);
            assert_eq!(rule, None);
            assert_eq!(reason, "fake: wait on another device");
        }
        other => panic!("expected the runtime's refusal, got {other:?}"),
    }
}

#[test]
fn handles_of_another_library_are_refused_before_the_runtime_sees_them() {
    let _serial = fake::serial();
    let rt = runtime();
    let d0 = rt.device(DeviceId(0)).unwrap();
    let stream = d0.create_stream().unwrap();
    // A second library: sessions are told apart by the address of `aclInit`, so this table
    // differs in that function only. It finds the runtime initialized, so it never finalizes
    // the first one's.
    extern "C" fn other_init(config: *const std::ffi::c_char) -> sys::aclError {
        let _ = config;
        sys::ACL_ERROR_REPEAT_INITIALIZE
    }
    let mut lib = fake::lib();
    lib.aclInit = other_init;
    let other = AscendRuntime::from_library(lib).unwrap();
    assert!(!Arc::ptr_eq(other.session(), rt.session()));
    let foreign = other
        .device(DeviceId(0))
        .unwrap()
        .create_notify(NotifyFlags::DEFAULT)
        .unwrap();
    let e = stream.record(&foreign).unwrap_err();
    assert_eq!(e.code(), AclError::RT_INVALID_HANDLE);
    assert_eq!(e.rule_of(), Some(notify_api::Rule::R10));
    assert!(rt.batch_reset(&[&foreign]).is_err());
    assert!(fake::with(
        |s| s.records.is_empty() && s.batch_resets.is_empty()
    ));
}

#[test]
fn the_runtime_finalizes_when_its_last_handle_goes() {
    let _serial = fake::serial();
    let rt = runtime();
    let stream = rt.device(DeviceId(0)).unwrap().create_stream().unwrap();
    let again = runtime(); // joins the live session: one aclInit
    drop((rt, again));
    assert_eq!(fake::with(|s| (s.init_calls, s.finalize_calls)), (1, 0));
    drop(stream);
    fake::with(|s| {
        assert_eq!(s.finalize_calls, 1);
        assert_eq!(s.retains[&0], 0);
        assert_eq!(s.stream_destroys.len(), 1);
    });
}

#[test]
fn an_initialization_made_elsewhere_is_joined_not_finalized() {
    let _serial = fake::serial();
    fake::with(|s| s.initialized = true);
    let rt = runtime();
    assert!(!rt.lib().path().as_os_str().is_empty());
    drop(rt.device(DeviceId(0)).unwrap());
    drop(rt);
    assert_eq!(fake::with(|s| s.finalize_calls), 0);
}

#[test]
fn a_failing_acl_init_is_an_acl_error_with_its_code() {
    let _serial = fake::serial();
    fake::with(|s| s.init_fails_with = Some(sys::ACL_ERROR_RT_INTERNAL_ERROR));
    match AscendRuntime::from_library(fake::lib()) {
        Err(Error::Acl(a)) => {
            let AclFailure { code, rule, reason } = *a;
            assert_eq!(code, AclError::RT_INTERNAL_ERROR);
            assert_eq!(rule, None);
            assert!(reason.contains("aclInit failed"), "{reason}");
        }
        other => panic!("expected Error::Acl, got {other:?}"),
    }
}

#[test]
fn synchronize_async_binds_the_device_on_its_helper() {
    let _serial = fake::serial();
    let rt = runtime();
    let d1 = rt.device(DeviceId(1)).unwrap();
    let stream = d1.create_stream().unwrap();
    let _d0 = rt.device(DeviceId(0)).unwrap(); // this thread is bound to device 0 now
    block_on(stream.synchronize_async()).unwrap();
    assert_eq!(
        fake::with(|s| s.syncs.clone()),
        [(stream_key(&stream), 1, None)]
    );
    assert_eq!(
        fake::current_device(),
        Some(0),
        "this thread was not rebound"
    );
    assert_eq!(
        fake::with(|s| s.set_device_calls),
        2,
        "no aclrtSetDevice on the helper"
    );
}

#[test]
fn dropping_a_stream_destroys_it_from_any_thread() {
    let _serial = fake::serial();
    let rt = runtime();
    let stream = rt.device(DeviceId(1)).unwrap().create_stream().unwrap();
    let key = stream_key(&stream);
    thread::spawn(move || drop(stream)).join().unwrap();
    assert_eq!(fake::with(|s| s.stream_destroys.clone()), [(key, 0)]);
    assert_eq!(fake::with(|s| s.retains[&1]), 0);
}

#[test]
fn destroy_reports_the_runtimes_error() {
    let _serial = fake::serial();
    let rt = runtime();
    let stream = rt.device(DeviceId(0)).unwrap().create_stream().unwrap();
    fake::with(|s| s.destroy_stream_fails_with = Some(sys::ACL_ERROR_RT_INTERNAL_ERROR));
    let e = stream.destroy().unwrap_err();
    assert_eq!(e.code(), AclError::RT_INTERNAL_ERROR);
    // Destroyed once: the drop after the failed destroy does not call again.
    assert_eq!(fake::with(|s| s.stream_destroys.len()), 1);
}

/// Polls `stream.synchronize_async()` once, so that its helper thread starts, and drops the
/// future: the helper goes on, stuck at the fake's closed gate.
fn abandon_synchronize_async(stream: &AscendStream) {
    fake::with(|s| s.gate_closed = true);
    {
        let mut future = std::pin::pin!(stream.synchronize_async());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(future.as_mut().poll(&mut cx).is_pending());
    }
    fake::wait_until("the helper waits at the gate", |s| s.at_gate == 1);
}

/// Opens the gate after a while, from another thread (so that a `destroy` that waits for the
/// helper can return).
fn open_gate_later() -> thread::JoinHandle<()> {
    thread::spawn(|| {
        thread::sleep(Duration::from_millis(100));
        fake::with(|s| s.gate_closed = false);
    })
}

/// The defect "`AscendStream::destroy` can return `Ok` without destroying": with a
/// `synchronize_async` helper still using the stream (its future dropped before it completed),
/// `destroy` used to find the stream shared and return `Ok(())` at once, leaving the destroy to
/// the helper's drop, later, with its error thrown away.
#[test]
fn destroy_with_an_abandoned_synchronize_async_destroys_before_returning() {
    let _serial = fake::serial();
    let rt = runtime();
    let stream = rt.device(DeviceId(0)).unwrap().create_stream().unwrap();
    let key = stream_key(&stream);
    abandon_synchronize_async(&stream);
    let opener = open_gate_later();

    let result = stream.destroy();
    let destroyed_on_return = fake::with(|s| s.stream_destroys.clone());

    // Leave nothing running for the next test, whatever happened.
    opener.join().unwrap();
    fake::wait_until("the helper is done", |s| {
        s.at_gate == 0 && !s.stream_destroys.is_empty()
    });
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(
        destroyed_on_return,
        [(key, 0)],
        "destroy returned {result:?} without destroying the stream"
    );
}

#[test]
fn destroy_with_an_abandoned_synchronize_async_reports_the_runtimes_error() {
    let _serial = fake::serial();
    let rt = runtime();
    let stream = rt.device(DeviceId(0)).unwrap().create_stream().unwrap();
    abandon_synchronize_async(&stream);
    fake::with(|s| s.destroy_stream_fails_with = Some(sys::ACL_ERROR_RT_INTERNAL_ERROR));
    let opener = open_gate_later();

    let result = stream.destroy();

    opener.join().unwrap();
    fake::wait_until("the helper is done", |s| {
        s.at_gate == 0 && !s.stream_destroys.is_empty()
    });
    match result {
        Err(e) => assert_eq!(e.code(), AclError::RT_INTERNAL_ERROR),
        Ok(()) => panic!("destroy returned Ok although aclrtDestroyStream failed"),
    }
}
