//! Tests of device memory, IPC memory, host functions, events and contexts over the fake runtime
//! of `sys::fake`: the C arguments each call passes, the range checks that refuse foreign ranges
//! before the runtime is called, the keep-alive of asynchronous copies, and the order of a
//! release (synchronize, then free).
//!
//! Each test holds `fake::serial()` for its whole run and drops every handle before it ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use notify_api::prelude::*;
use notify_api::{
    AclError, DeviceId, DeviceRange, Error, EventFlags, MallocPolicy, MemExportFlags,
    MemImportFlags, Pid, Rule,
};

use crate::sys::{self, fake};
use crate::{AscendDevice, AscendRuntime, AscendStream};

fn runtime() -> AscendRuntime {
    AscendRuntime::from_library(fake::lib()).expect("the fake initializes")
}

fn stream_key(stream: &AscendStream) -> usize {
    stream.as_raw() as usize
}

/// Host bytes that say when they are dropped.
struct Tracked {
    bytes: Vec<u8>,
    dropped: Arc<AtomicBool>,
}

impl Tracked {
    fn new(bytes: Vec<u8>) -> (Self, Arc<AtomicBool>) {
        let dropped = Arc::new(AtomicBool::new(false));
        let tracked = Self {
            bytes,
            dropped: Arc::clone(&dropped),
        };
        (tracked, dropped)
    }
}

impl AsRef<[u8]> for Tracked {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

/// The refusal of a range check: 107000 with the given rule, from this backend (not the fake).
#[track_caller]
fn refused<T: std::fmt::Debug>(result: notify_api::Result<T>, rule: Rule) {
    match result {
        Err(e @ Error::Acl(_)) => {
            assert_eq!(e.code(), AclError::RT_PARAM_INVALID, "{e}");
            assert_eq!(e.rule_of(), Some(rule), "{e}");
            assert!(!e.reason().starts_with("fake:"), "the fake answered: {e}");
        }
        other => panic!("expected a refusal by {rule}, got {other:?}"),
    }
}

fn device_bytes(device: &AscendDevice, range: DeviceRange<'_>) -> Vec<u8> {
    let mut out = vec![0u8; range.len()];
    device.copy_to_host(&mut out, range).unwrap();
    out
}

/// Waits until `done`, for at most 10 s.
fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn alloc_passes_size_and_policy_and_a_drop_synchronizes_before_it_frees() {
    let _serial = fake::serial();
    let rt = runtime();
    let d0 = rt.device(DeviceId(0)).unwrap();
    let buf = d0.alloc(100, MallocPolicy::NormalOnly).unwrap();
    assert_eq!(buf.len(), 100);
    assert!(!buf.is_empty());
    assert!(buf.device().same(&d0));
    let range = buf.as_range();
    assert_eq!(
        (range.addr(), range.len(), range.device()),
        (buf.addr(), 100, DeviceId(0))
    );
    assert!(!range.is_imported());
    assert_eq!(fake::with(|s| s.mallocs.clone()), [(100, 2, 0)]);
    assert_eq!(rt.session().live_ranges(), [(buf.addr(), 100, false, 0)]);

    // A set queued on a stream, not run yet: the drop must wait for it before freeing.
    let stream = d0.create_stream().unwrap();
    stream.memset(buf.as_range(), 7).unwrap();
    let addr = buf.addr() as usize;
    drop(buf);
    fake::with(|s| {
        let at = |name| s.calls.iter().position(|c| *c == name).unwrap();
        assert!(
            at("aclrtSynchronizeDevice") < at("aclrtFree"),
            "{:?}",
            s.calls
        );
        assert_eq!(s.device_syncs, [0]);
        assert_eq!(
            s.frees,
            [(addr, 0)],
            "no queued task touched it at the free"
        );
    });
    assert!(rt.session().live_ranges().is_empty());

    // `free` reports; the runtime's refusal of a 0-byte allocation is its own.
    d0.alloc(4096, MallocPolicy::HugeOnly)
        .unwrap()
        .free()
        .unwrap();
    assert_eq!(fake::with(|s| s.mallocs[1]), (4096, 1, 0));
    let e = d0.alloc(0, MallocPolicy::default()).unwrap_err();
    assert_eq!(e.code(), AclError::RT_PARAM_INVALID);
    assert_eq!(e.rule_of(), None);
    assert!(rt.session().live_ranges().is_empty());
}

#[test]
fn a_release_synchronizes_every_device_whose_streams_touched_the_memory() {
    let _serial = fake::serial();
    let rt = runtime();
    let d0 = rt.device(DeviceId(0)).unwrap();
    let d1 = rt.device(DeviceId(1)).unwrap();
    let buf = d0.alloc(64, MallocPolicy::NormalOnly).unwrap();
    let other = d0.alloc(64, MallocPolicy::NormalOnly).unwrap();
    // A copy across devices (R7's peer access), queued on a stream of device 1.
    let s1 = d1.create_stream().unwrap();
    s1.copy(other.as_range(), buf.as_range()).unwrap();
    drop(buf);
    fake::with(|s| {
        assert_eq!(s.device_syncs, [0, 1]);
        assert_eq!(s.frees.len(), 1);
        assert_eq!(s.frees[0].1, 0, "the copy on device 1 ran before the free");
    });
    // `other` was the copy's destination: device 1 touched it too.
    drop(other);
    assert_eq!(fake::with(|s| s.device_syncs.clone()), [0, 1, 0, 1]);
    // Memory no stream of another device touched synchronizes its own device only.
    drop(d0.alloc(8, MallocPolicy::NormalOnly).unwrap());
    assert_eq!(fake::with(|s| s.device_syncs.clone()), [0, 1, 0, 1, 0]);
}

#[test]
fn synchronous_copies_and_sets_pass_kinds_and_counts_and_move_bytes() {
    let _serial = fake::serial();
    let rt = runtime();
    let d0 = rt.device(DeviceId(0)).unwrap();
    let buf = d0.alloc(64, MallocPolicy::HugeFirst).unwrap();
    let other = d0.alloc(64, MallocPolicy::NormalOnly).unwrap();
    let src = [1u8, 2, 3, 4];
    d0.copy_from_host(buf.as_range(), &src).unwrap();
    let mut out = [0u8; 8];
    d0.copy_to_host(&mut out, buf.as_range().slice(..4).unwrap())
        .unwrap();
    assert_eq!(out, [1, 2, 3, 4, 0, 0, 0, 0]);
    d0.copy(
        other.as_range().slice(8..).unwrap(),
        buf.as_range().slice(..4).unwrap(),
    )
    .unwrap();
    d0.memset(buf.as_range().slice(4..8).unwrap(), 0xAB)
        .unwrap();
    let (a, b) = (buf.addr() as usize, other.addr() as usize);
    fake::with(|s| {
        let calls: Vec<_> = s
            .memcpys
            .iter()
            .map(|c| {
                (
                    c.dst, c.dest_max, c.src, c.count, c.kind, c.stream, c.device,
                )
            })
            .collect();
        assert_eq!(
            calls,
            [
                (a, 64, src.as_ptr() as usize, 4, 1, None, 0),
                (out.as_ptr() as usize, 8, a, 4, 2, None, 0),
                (b + 8, 56, a, 4, 3, None, 0),
            ]
        );
        let sets: Vec<_> = s
            .memsets
            .iter()
            .map(|c| (c.dst, c.max, c.value, c.count, c.stream))
            .collect();
        assert_eq!(sets, [(a + 4, 4, 0xAB, 4, None)]);
    });
    assert_eq!(
        device_bytes(&d0, buf.as_range().slice(..9).unwrap()),
        [1, 2, 3, 4, 0xAB, 0xAB, 0xAB, 0xAB, 0]
    );
    assert_eq!(
        device_bytes(&d0, other.as_range().slice(7..13).unwrap()),
        [0, 1, 2, 3, 4, 0]
    );
}

#[test]
fn foreign_ranges_are_refused_before_the_runtime_is_called() {
    let _serial = fake::serial();
    let rt = runtime();
    let d0 = rt.device(DeviceId(0)).unwrap();
    let stream = d0.create_stream().unwrap();
    let buf = d0.alloc(32, MallocPolicy::NormalOnly).unwrap();
    let (addr, dev) = (buf.addr(), DeviceId(0));
    let forged = [
        DeviceRange::new(0x1234_0000, 16, dev, false), // never handed out
        DeviceRange::new(addr, 33, dev, false),        // one byte past the end
        DeviceRange::new(addr - 1, 2, dev, false),     // one byte before the start
        DeviceRange::new(addr + 8, usize::MAX, dev, false), // wraps around
        DeviceRange::new(addr, 16, dev, true),         // "imported", says who built it
    ];
    for range in forged.into_iter().take(4) {
        refused(d0.copy_from_host(range, &[0; 1]), Rule::M2);
        refused(d0.copy_to_host(&mut [0; 64], range), Rule::M2);
        refused(d0.memset(range, 0), Rule::M2);
        refused(d0.copy(buf.as_range(), range), Rule::M2);
        refused(d0.copy(range, buf.as_range()), Rule::M2);
        refused(stream.copy(range, buf.as_range()), Rule::M2);
        refused(stream.memset(range, 1), Rule::M2);
        refused(stream.copy_to_host(range), Rule::M2);
        let (bytes, dropped) = Tracked::new(vec![1; 4]);
        refused(stream.copy_from_host(range, bytes), Rule::M2);
        assert!(dropped.load(Ordering::SeqCst), "refused bytes are dropped");
        refused(buf.export(range, MemExportFlags::DEFAULT), Rule::M3);
    }
    // What the registry says wins over the range's own claims: this one is plain memory.
    d0.memset(forged[4], 0).unwrap();
    fake::with(|s| s.memsets.clear());

    // Too long for the destination.
    let small = d0.alloc(4, MallocPolicy::NormalOnly).unwrap();
    refused(d0.copy_from_host(small.as_range(), &[0; 5]), Rule::M2);
    refused(d0.copy_to_host(&mut [0; 3], small.as_range()), Rule::M2);
    refused(d0.copy(small.as_range(), buf.as_range()), Rule::M2);
    refused(stream.copy(small.as_range(), buf.as_range()), Rule::M2);
    refused(
        stream.copy_from_host(small.as_range(), vec![0; 5]),
        Rule::M2,
    );

    // A freed buffer's addresses.
    let stale = DeviceRange::new(addr, 32, dev, false);
    buf.free().unwrap();
    refused(d0.memset(stale, 0), Rule::M2);
    refused(stream.copy_to_host(stale), Rule::M2);

    // Another loaded library's memory (the fake accepts the address; only the registry of
    // this runtime's session refuses it).
    extern "C" fn other_init(config: *const std::ffi::c_char) -> sys::aclError {
        let _ = config;
        sys::ACL_ERROR_REPEAT_INITIALIZE
    }
    let mut lib = fake::lib();
    lib.aclInit = other_init;
    let other = AscendRuntime::from_library(lib).unwrap();
    let theirs = other
        .device(DeviceId(0))
        .unwrap()
        .alloc(32, MallocPolicy::NormalOnly)
        .unwrap();
    refused(d0.memset(theirs.as_range(), 0), Rule::M2);
    refused(stream.copy(small.as_range(), theirs.as_range()), Rule::M2);

    fake::with(|s| {
        assert!(s.memcpys.is_empty(), "{:?}", s.memcpys);
        assert!(s.memsets.is_empty(), "{:?}", s.memsets);
        assert!(s.launches.is_empty());
        assert!(s.mem_exports.is_empty());
    });
}

#[test]
fn an_async_host_to_device_copy_keeps_its_bytes_until_it_ran() {
    let _serial = fake::serial();
    let rt = runtime();
    let d0 = rt.device(DeviceId(0)).unwrap();
    let buf = d0.alloc(16, MallocPolicy::NormalOnly).unwrap();
    let stream = d0.create_stream().unwrap();
    let (bytes, dropped) = Tracked::new(vec![9, 8, 7]);
    let src = bytes.bytes.as_ptr() as usize;
    stream
        .copy_from_host(buf.as_range().slice(2..).unwrap(), bytes)
        .unwrap();
    assert!(!dropped.load(Ordering::SeqCst), "the stream owns the bytes");
    let key = stream_key(&stream);
    fake::with(|s| {
        let c = &s.memcpys[0];
        assert_eq!(
            (c.dst, c.dest_max, c.src, c.count, c.kind, c.stream),
            (buf.addr() as usize + 2, 14, src, 3, 1, Some(key))
        );
        assert_eq!(s.launches.len(), 1);
        assert_eq!(s.launches[0].0, key);
        assert_eq!(
            s.calls,
            ["aclrtMalloc", "aclrtMemcpyAsync", "aclrtLaunchHostFunc"]
        );
    });
    // The fake reads the host bytes when the copy runs, then the host function drops them.
    stream.synchronize().unwrap();
    assert!(dropped.load(Ordering::SeqCst));
    assert_eq!(
        device_bytes(&d0, buf.as_range().slice(..5).unwrap()),
        [0, 0, 9, 8, 7]
    );

    // Inline bytes (an array, moved to the heap by the backend) work the same.
    stream
        .copy_from_host(buf.as_range().slice(12..).unwrap(), [1u8, 2, 3, 4])
        .unwrap();
    stream.synchronize().unwrap();
    assert_eq!(
        device_bytes(&d0, buf.as_range().slice(12..).unwrap()),
        [1, 2, 3, 4]
    );
}

#[test]
fn an_async_device_to_host_copy_delivers_after_it_ran() {
    let _serial = fake::serial();
    let rt = runtime();
    let d0 = rt.device(DeviceId(0)).unwrap();
    let buf = d0.alloc(16, MallocPolicy::NormalOnly).unwrap();
    let stream = d0.default_stream().unwrap();
    d0.copy_from_host(buf.as_range(), b"hello").unwrap();
    let download = stream
        .copy_to_host(buf.as_range().slice(..5).unwrap())
        .unwrap();
    assert!(
        download.try_take().is_none(),
        "not before the stream ran it"
    );
    fake::with(|s| {
        let c = s.memcpys.last().unwrap();
        assert_eq!(
            (c.dest_max, c.src, c.count, c.kind),
            (5, buf.addr() as usize, 5, 2)
        );
        // The default stream's queue is its context's.
        assert_eq!(c.stream, Some(d0.context() as usize));
    });
    stream.synchronize().unwrap();
    assert_eq!(download.wait().unwrap(), b"hello");

    // An empty range is a copy of nothing.
    let empty = stream
        .copy_to_host(buf.as_range().slice(3..3).unwrap())
        .unwrap();
    stream.synchronize().unwrap();
    assert_eq!(empty.wait().unwrap(), b"");
}

#[test]
fn when_the_keep_alive_cannot_be_enqueued_the_bytes_leak_instead_of_being_freed() {
    let _serial = fake::serial();
    let rt = runtime();
    let d0 = rt.device(DeviceId(0)).unwrap();
    let buf = d0.alloc(8, MallocPolicy::NormalOnly).unwrap();
    let stream = d0.create_stream().unwrap();

    fake::with(|s| s.launch_fails_with = Some(sys::ACL_ERROR_RT_INTERNAL_ERROR));
    let (bytes, dropped) = Tracked::new(vec![5; 4]);
    let e = stream
        .copy_from_host(buf.as_range().slice(..4).unwrap(), bytes)
        .unwrap_err();
    assert_eq!(e.code(), AclError::RT_INTERNAL_ERROR);
    assert!(
        !dropped.load(Ordering::SeqCst),
        "the queued copy still reads them: leaked, not freed"
    );
    let e = stream
        .copy_to_host(buf.as_range().slice(4..).unwrap())
        .unwrap_err();
    assert_eq!(e.code(), AclError::RT_INTERNAL_ERROR);
    fake::with(|s| s.launch_fails_with = None);
    // Both copies are queued and run: one reads the leaked bytes, the other writes into the
    // leaked buffer.
    stream.synchronize().unwrap();
    assert!(!dropped.load(Ordering::SeqCst));
    assert_eq!(
        device_bytes(&d0, buf.as_range().slice(..4).unwrap()),
        [5; 4]
    );

    // A copy that cannot be enqueued gives its bytes back at once.
    fake::with(|s| s.memcpy_async_fails_with = Some(sys::ACL_ERROR_RT_PARAM_INVALID));
    let (bytes, dropped) = Tracked::new(vec![6; 4]);
    let e = stream.copy_from_host(buf.as_range(), bytes).unwrap_err();
    assert_eq!(e.code(), AclError::RT_PARAM_INVALID);
    assert!(dropped.load(Ordering::SeqCst));
    assert!(stream.copy_to_host(buf.as_range()).is_err());
    assert_eq!(fake::with(|s| s.launches.len()), 0);
}

#[test]
fn host_functions_run_in_order_and_a_panic_fails_the_next_synchronize() {
    let _serial = fake::serial();
    let rt = runtime();
    let d0 = rt.device(DeviceId(0)).unwrap();
    let stream = d0.create_stream().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    for i in 0..3 {
        let log = Arc::clone(&log);
        stream
            .launch_host_fn(move || log.lock().unwrap().push(i))
            .unwrap();
    }
    assert!(log.lock().unwrap().is_empty());
    stream.synchronize().unwrap();
    assert_eq!(*log.lock().unwrap(), [0, 1, 2]);

    stream
        .launch_host_fn(|| panic!("a kernel stand-in failed (expected by the test)"))
        .unwrap();
    let e = stream.synchronize().unwrap_err();
    assert_eq!(e.code(), AclError::RT_INTERNAL_ERROR);
    assert_eq!(e.rule_of(), Some(Rule::H1));
    stream.synchronize().unwrap(); // reported once

    // The device's synchronize reports it too, and takes it.
    stream
        .launch_host_fn(|| panic!("again (expected by the test)"))
        .unwrap();
    assert_eq!(
        d0.synchronize().unwrap_err().code(),
        AclError::RT_INTERNAL_ERROR
    );
    stream.synchronize().unwrap();
    d0.synchronize().unwrap();

    // A launch the runtime refuses drops the closure without running it.
    fake::with(|s| s.launch_fails_with = Some(sys::ACL_ERROR_RT_INTERNAL_ERROR));
    let ran = Arc::new(AtomicBool::new(false));
    let (owned, dropped) = Tracked::new(Vec::new());
    let flag = Arc::clone(&ran);
    let e = stream
        .launch_host_fn(move || {
            flag.store(true, Ordering::SeqCst);
            drop(owned);
        })
        .unwrap_err();
    assert_eq!(e.code(), AclError::RT_INTERNAL_ERROR);
    assert!(dropped.load(Ordering::SeqCst) && !ran.load(Ordering::SeqCst));
}

#[test]
fn a_host_function_binds_its_own_calls_and_leaves_its_streams_context() {
    let _serial = fake::serial();
    let rt = runtime();
    let d0 = rt.device(DeviceId(0)).unwrap();
    let d1 = rt.device(DeviceId(1)).unwrap();
    let s0 = d0.create_stream().unwrap();
    let buf = Arc::new(d1.alloc(8, MallocPolicy::NormalOnly).unwrap());
    let (device, memory) = (d1.clone(), Arc::clone(&buf));
    s0.launch_host_fn(move || device.memset(memory.as_range(), 3).unwrap())
        .unwrap();
    let d0c = d0.clone();
    s0.launch_host_fn(move || d0c.mem_info().map(drop).unwrap())
        .unwrap();
    s0.synchronize().unwrap();
    fake::with(|s| {
        assert_eq!(s.memsets[0].device, 1, "the host function bound device 1");
        assert_eq!(s.mem_infos, [(sys::ACL_HBM_MEM, 0)]);
        assert_eq!(s.host_fn_left_context, [true, true]);
    });
    assert_eq!(device_bytes(&d1, buf.as_range()), [3; 8]);
}

#[test]
fn memory_dropped_in_a_host_function_is_freed_later_by_a_helper() {
    let _serial = fake::serial();
    let rt = runtime();
    let d0 = rt.device(DeviceId(0)).unwrap();
    let stream = d0.create_stream().unwrap();
    let buf = d0.alloc(8, MallocPolicy::NormalOnly).unwrap();
    let addr = buf.addr() as usize;
    let retains = Arc::strong_count(d0.retain());
    stream.memset(buf.as_range(), 1).unwrap();
    stream.launch_host_fn(move || drop(buf)).unwrap();
    stream.synchronize().unwrap();
    fake::wait_until("the helper freed it", |s| {
        s.frees.iter().any(|f| f.0 == addr)
    });
    // Let the helper let go of its retains, so that none outlives this test.
    eventually("the helper is done", || {
        Arc::strong_count(d0.retain()) == retains - 1
    });
    fake::with(|s| {
        assert_eq!(
            s.refused_syncs, 0,
            "no synchronize from inside the host function"
        );
        assert_eq!(s.frees, [(addr, 0)]);
    });
    assert!(rt.session().live_ranges().is_empty());
}

#[test]
fn events_pass_flags_and_report_completion_and_elapsed_time() {
    let _serial = fake::serial();
    let rt = runtime();
    let d0 = rt.device(DeviceId(0)).unwrap();
    let stream = d0.create_stream().unwrap();
    let e1 = d0.create_event(EventFlags::TIME_LINE).unwrap();
    let e2 = d0
        .create_event(EventFlags::SYNC | EventFlags::CAPTURE_STREAM_PROGRESS)
        .unwrap();
    fake::with(|s| {
        assert_eq!(s.events[&(e1.as_raw() as usize)].flags, 0x8);
        assert_eq!(s.events[&(e2.as_raw() as usize)].flags, 0x3);
    });
    assert!(e1.is_complete().unwrap(), "never recorded: complete");
    assert_eq!(
        e2.elapsed_ms(&e1).unwrap_err().code(),
        AclError::RT_PARAM_INVALID
    );
    stream.record_event(&e1).unwrap();
    assert!(!e1.is_complete().unwrap());
    stream.launch_host_fn(|| {}).unwrap();
    stream.record_event(&e2).unwrap();
    stream.wait_event(&e1).unwrap();
    assert_eq!(
        fake::with(|s| s.event_waits.clone()),
        [(stream_key(&stream), e1.as_raw() as usize)]
    );
    e2.synchronize().unwrap();
    assert!(e1.is_complete().unwrap() && e2.is_complete().unwrap());
    assert_eq!(e2.elapsed_ms(&e1).unwrap(), 2.5);

    stream.reset_event(&e1).unwrap();
    stream.synchronize().unwrap();
    assert_eq!(
        e2.elapsed_ms(&e1).unwrap_err().code(),
        AclError::RT_PARAM_INVALID,
        "reset: never recorded"
    );

    // An event of another context on this stream: the runtime's refusal (C1, R13).
    let context = d0.create_context().unwrap();
    let theirs = context.create_event(EventFlags::DEFAULT).unwrap();
    assert_eq!(
        stream.record_event(&theirs).unwrap_err().code(),
        AclError::RT_STREAM_CONTEXT
    );

    let raw = e1.as_raw() as usize;
    e1.destroy().unwrap();
    assert!(!fake::with(|s| s.events[&raw].alive));
}

#[test]
fn a_created_context_binds_its_own_and_is_destroyed_after_its_last_handle() {
    let _serial = fake::serial();
    let rt = runtime();
    let d0 = rt.device(DeviceId(0)).unwrap();
    let context = d0.create_context().unwrap();
    assert!(context.is_created_context() && !d0.is_created_context());
    assert!(!context.same(&d0));
    assert_ne!(context.context(), d0.context());
    assert_eq!(context.id(), DeviceId(0));
    assert!(rt.device(DeviceId(0)).unwrap().same(&d0), "not the default");
    let raw = context.context() as usize;
    assert_eq!(fake::with(|s| s.contexts[&raw]), (0, true));

    let stream = context.create_stream().unwrap();
    let key = stream_key(&stream);
    assert_eq!(fake::with(|s| s.streams[&key].ctx), raw);
    let copy = context.clone();
    drop((context, d0));
    // The stream and the clone keep the context; the context keeps the device retained.
    assert_eq!(
        fake::with(|s| (s.contexts[&raw].1, s.retains[&0])),
        (true, 1)
    );

    // Any thread: the stream binds the created context itself (the fake checks it).
    let stream = thread::spawn(move || {
        stream.synchronize().unwrap();
        stream
    })
    .join()
    .unwrap();
    drop(copy);
    assert!(fake::with(|s| s.contexts[&raw].1));
    drop(stream);
    fake::with(|s| {
        assert!(!s.contexts[&raw].1, "destroyed with its last handle");
        assert_eq!(s.retains[&0], 0, "and then the device released");
        assert_eq!(s.stream_destroys.len(), 1);
    });
}

#[test]
fn stream_query_and_memory_info() {
    let _serial = fake::serial();
    let rt = runtime();
    let d0 = rt.device(DeviceId(0)).unwrap();
    let stream = d0.create_stream().unwrap();
    assert!(stream.is_complete().unwrap());
    let buf = d0.alloc(4096, MallocPolicy::NormalOnly).unwrap();
    stream.memset(buf.as_range(), 1).unwrap();
    assert!(!stream.is_complete().unwrap());
    stream.synchronize().unwrap();
    assert!(stream.is_complete().unwrap());
    let info = d0.mem_info().unwrap();
    assert_eq!(info.total, fake::DEVICE_MEMORY as u64);
    assert_eq!(info.free, (fake::DEVICE_MEMORY - 4096) as u64);
    assert_eq!(fake::with(|s| s.mem_infos.clone()), [(sys::ACL_HBM_MEM, 0)]);
    let syncs = fake::with(|s| s.memsets[0].clone());
    assert_eq!(syncs.stream, Some(stream_key(&stream)));
}

#[test]
fn ipc_memory_exports_imports_and_closes_on_drop() {
    let _serial = fake::serial();
    let rt = runtime();
    let d0 = rt.device(DeviceId(0)).unwrap();
    let d1 = rt.device(DeviceId(1)).unwrap();
    let buf = d0.alloc(8192, MallocPolicy::NormalOnly).unwrap();
    d0.copy_from_host(buf.as_range(), &[0x11; 8192]).unwrap();
    let half = buf.as_range().slice(4096..).unwrap();
    let export = buf
        .export(half, MemExportFlags::DISABLE_PID_VALIDATION)
        .unwrap();
    let key = export.key().clone();
    assert!(key.as_str().starts_with("fakemem-"), "{key:?}");
    assert_eq!(
        fake::with(|s| s.mem_exports.clone()),
        [(buf.addr() as usize + 4096, 4096, 65, 1)]
    );
    export.set_import_pids(&[Pid(5), Pid(6)]).unwrap();
    assert_eq!(
        fake::with(|s| s.mem_import_pids.clone()),
        [(key.as_str().to_owned(), vec![5, 6])]
    );
    let e = export.set_import_pids(&[]).unwrap_err();
    assert_eq!(
        (e.code(), e.rule_of()),
        (AclError::RT_PARAM_INVALID, None),
        "the runtime's refusal (M4)"
    );
    // A range outside this buffer.
    let other = d0.alloc(4096, MallocPolicy::NormalOnly).unwrap();
    refused(
        buf.export(other.as_range(), MemExportFlags::DEFAULT),
        Rule::M3,
    );

    // An import of no bytes is refused before the runtime.
    refused(d1.import_memory(&key, 0, MemImportFlags::DEFAULT), Rule::M5);
    assert!(fake::with(|s| s.mem_imports.is_empty()));
    let import = d1
        .import_memory(&key, 4096, MemImportFlags::ENABLE_PEER_ACCESS)
        .unwrap();
    assert_eq!(
        fake::with(|s| s.mem_imports.clone()),
        [(key.as_str().to_owned(), 1)]
    );
    assert_eq!(import.len(), 4096);
    assert!(import.device().same(&d1));
    let range = import.as_range();
    assert!(range.is_imported());
    assert_ne!(
        range.addr(),
        buf.addr() + 4096,
        "mapped at an address of its own"
    );

    // M5: only device-to-device copies and sets on a stream.
    refused(d1.memset(range, 0), Rule::M5);
    refused(d1.copy_from_host(range, &[0; 4]), Rule::M5);
    refused(d1.copy_to_host(&mut [0; 4096], range), Rule::M5);
    let local = d1.alloc(4096, MallocPolicy::NormalOnly).unwrap();
    refused(d1.copy(local.as_range(), range), Rule::M5);
    let s1 = d1.create_stream().unwrap();
    refused(s1.copy_to_host(range), Rule::M5);
    refused(s1.copy_from_host(range, vec![0; 4]), Rule::M5);
    refused(
        s1.memset(DeviceRange::new(import.addr(), 4097, DeviceId(1), true), 0),
        Rule::M2,
    );
    s1.memset(range.slice(..16).unwrap(), 0x22).unwrap();
    s1.copy(local.as_range(), range).unwrap();

    // Dropping the import synchronizes device 1 (running both tasks) before it closes.
    drop(import);
    fake::with(|s| {
        let at = |name| s.calls.iter().rposition(|c| *c == name).unwrap();
        assert!(at("aclrtSynchronizeDevice") < at("aclrtIpcMemClose"));
        assert_eq!(s.device_syncs, [1]);
        assert_eq!(s.mem_closes, [(key.as_str().to_owned(), 0)]);
    });
    assert_eq!(
        device_bytes(&d0, buf.as_range().slice(4096..4113).unwrap()),
        [[0x22; 16].as_slice(), &[0x11]].concat()
    );
    assert_eq!(
        device_bytes(&d1, local.as_range().slice(..17).unwrap()),
        [[0x22; 16].as_slice(), &[0x11]].concat()
    );

    drop(export);
    assert_eq!(
        fake::with(|s| s.mem_closes.len()),
        2,
        "the export closed its key"
    );
    assert_eq!(rt.session().live_ranges().len(), 3, "buf, other and local");
}
