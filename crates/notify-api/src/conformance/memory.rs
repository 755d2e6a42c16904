//! One check (or several) per observable sentence of `SEMANTICS.md` §5: device memory (M1),
//! copies and sets (M2), IPC memory export (M3), whitelist (M4), import (M5), close and
//! lifetime (M6).
//!
//! Every check needs [`Capability::Memory`](super::Capability::Memory) and the device memory
//! the module docs of [`conformance`](super) describe. Each one frees every buffer, closes every
//! export and import it made (in the order the contract supports: importers close before the
//! exporter, except in the hazard checks), and checks byte contents through the runtime only
//! (M1: device memory is not host memory). Imported memory is read and written the only way M5
//! allows: device-to-device copies and sets on a stream, through a staging buffer.
//!
//! Sentences that only the C ABI can express are listed in the module docs of
//! [`conformance`](super) ("What the typed API cannot express"); a check that covers part of a
//! sentence says what it leaves out in a comment that starts with `C ABI:`.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::support::{
    GIB1, Gate, KIB4, MIB2, QUICK, Remote, SHORT, alloc, assert_key_shape, create, destroy, dev,
    exported, free_bytes, get, get_via_stream, junk_key, kept_range, key_len, mem_import_line,
    mem_info, mutations, pattern, put, put_via_stream, stream, sync_ok,
};
use super::{ENV_BARE_TGID_REMAP, ENV_START_OFFSET, ENV_STRICT, Spawner, assert_code, ok};
use crate::{
    AclError, Backend, Buffer, Device, DeviceId, DeviceRange, ExportFlags, ImportFlags,
    MallocPolicy, MemExport, MemExportFlags, MemImport, MemImportFlags, Notify, Pid, Runtime,
    Stream,
};

const MIB: usize = 1 << 20;

/// `DISABLE_PID_VALIDATION`, short.
const ANYONE: MemExportFlags = MemExportFlags::DISABLE_PID_VALIDATION;

/// A remote peer on `n` started with [`ENV_BARE_TGID_REMAP`], so that on the simulator its bare
/// tgid differs from its OS pid (R16).
#[track_caller]
fn remapped_peer(spawner: &dyn Spawner, label: &str, n: i32) -> Remote {
    let mut peer = Remote::spawn_with_env(spawner, label, &[ENV_BARE_TGID_REMAP]);
    peer.ok(&format!("dev {n}"));
    peer
}

/// Asserts that `result` was refused with 207001 and changed nothing (`d`'s free bytes).
#[track_caller]
fn assert_no_room<D: Device, T>(d: &D, result: crate::Result<T>, before: u64, what: &str) {
    assert_code(result, AclError::RT_MEMORY_ALLOCATION, what);
    assert_eq!(
        free_bytes(d, "mem_info"),
        before,
        "{what}: a refused allocation changed the free bytes"
    );
}

// ---------------------------------------------------------------------------------------------
// M1 — Device memory
// ---------------------------------------------------------------------------------------------

/// M1: `aclrtMalloc` allocates on the device it is called for: a buffer made from device 1's
/// value lies on device 1 and takes from device 1's free bytes only; `aclrtGetMemInfo` reports
/// that device's free and total bytes (`free <= total`, the total fixed), and the bytes come back
/// when the buffer is freed. `size == 0` → 107000 under every policy, taking nothing.
///
/// C ABI: 107002 without a current device, NULL `devPtr` (100000), an unknown policy (107000),
/// `aclrtMallocHost`/`aclrtFreeHost`, and the `attr` argument of `aclrtGetMemInfo`.
pub fn m1_alloc_on_its_device<B: Backend>(rt: &B::Runtime) {
    let (d0, d1) = (dev(rt, 0), dev(rt, 1));
    let (i0, i1) = (mem_info(&d0, "mem_info 0"), mem_info(&d1, "mem_info 1"));
    for (i, n) in [(i0, 0), (i1, 1)] {
        assert!(
            i.free <= i.total,
            "device {n}: free {} > total {}",
            i.free,
            i.total
        );
        assert!(i.total > 0, "device {n}: no memory");
    }
    for policy in POLICIES {
        assert_code(
            d1.alloc(0, policy),
            AclError::RT_PARAM_INVALID,
            &format!("alloc(0) with {policy:?}"),
        );
    }
    assert_eq!(free_bytes(&d1, "mem_info"), i1.free, "alloc(0) took memory");
    let size = 3 * MIB;
    let b = alloc(&d1, size, MallocPolicy::NormalOnly, "alloc on device 1");
    assert_eq!(b.len(), size, "the buffer's length is the size asked for");
    assert!(!b.is_empty());
    assert_eq!(b.device().id(), DeviceId(1), "the buffer's device");
    assert_eq!(b.as_range().device(), DeviceId(1), "the range's device");
    assert_eq!(b.as_range().len(), size, "the range's length");
    assert!(
        !b.as_range().is_imported(),
        "an allocation is not an import"
    );
    let after = mem_info(&d1, "mem_info 1 after the alloc");
    assert_eq!(after.total, i1.total, "the total changed");
    assert!(
        i1.free - after.free >= size as u64,
        "device 1's free bytes went from {} to {} for an allocation of {size}",
        i1.free,
        after.free
    );
    assert_eq!(
        free_bytes(&d0, "mem_info 0"),
        i0.free,
        "an allocation on device 1 took device 0's memory"
    );
    ok(b.free(), "free");
    assert_eq!(
        free_bytes(&d1, "mem_info after free"),
        i1.free,
        "the bytes came back"
    );
}

/// Every policy, in CANN order.
const POLICIES: [MallocPolicy; 8] = [
    MallocPolicy::HugeFirst,
    MallocPolicy::HugeOnly,
    MallocPolicy::NormalOnly,
    MallocPolicy::HugeFirstP2p,
    MallocPolicy::HugeOnlyP2p,
    MallocPolicy::NormalOnlyP2p,
    MallocPolicy::Huge1gOnly,
    MallocPolicy::Huge1gOnlyP2p,
];

/// M1: each allocation starts on a page boundary of its page size: 4 KiB for `NORMAL_ONLY`,
/// 2 MiB for `HUGE_ONLY` and for `HUGE_FIRST` from 2 MiB up (4 KiB below), 1 GiB for
/// `HUGE1G_ONLY`; the `_P2P` variants likewise. The allocations are held together, odd sizes
/// among them, so that no address is aligned only because the one before happened to end on a
/// boundary. A 1 GiB page needs 1 GiB free: with less, the allocation must fail with 207001.
pub fn m1_page_alignment<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let cases: [(MallocPolicy, usize, usize); 14] = [
        (MallocPolicy::NormalOnly, 1, KIB4),
        (MallocPolicy::HugeOnly, 1, MIB2),
        (MallocPolicy::NormalOnly, 5000, KIB4),
        (MallocPolicy::HugeFirst, 1, KIB4),
        (MallocPolicy::HugeOnly, 5000, MIB2),
        (MallocPolicy::HugeFirst, MIB2 - 1, KIB4),
        (MallocPolicy::NormalOnlyP2p, 3 * MIB, KIB4),
        (MallocPolicy::HugeFirst, MIB2, MIB2),
        (MallocPolicy::HugeFirstP2p, 3, KIB4),
        (MallocPolicy::HugeFirst, 3 * MIB, MIB2),
        (MallocPolicy::HugeOnlyP2p, 7, MIB2),
        (MallocPolicy::HugeFirstP2p, 5 * MIB, MIB2),
        (MallocPolicy::NormalOnly, 4097, KIB4),
        (MallocPolicy::HugeOnly, MIB2 + 1, MIB2),
    ];
    let mut held = Vec::new();
    for (policy, size, page) in cases {
        let b = alloc(&d0, size, policy, &format!("alloc({size}, {policy:?})"));
        let addr = b.as_range().addr();
        assert_eq!(
            addr % page as u64,
            0,
            "alloc({size}, {policy:?}) at {addr:#x} is not on a {page}-byte page boundary"
        );
        held.push(b);
    }
    for b in held {
        ok(b.free(), "free");
    }
    for policy in [MallocPolicy::Huge1gOnly, MallocPolicy::Huge1gOnlyP2p] {
        let before = free_bytes(&d0, "mem_info");
        let what = format!("alloc(1, {policy:?})");
        if before < GIB1 as u64 {
            assert_no_room(
                &d0,
                d0.alloc(1, policy),
                before,
                &format!("{what} with {before} bytes free"),
            );
            continue;
        }
        let b = alloc(&d0, 1, policy, &what);
        let addr = b.as_range().addr();
        assert_eq!(
            addr % GIB1 as u64,
            0,
            "{what} at {addr:#x} is not on a 1 GiB boundary"
        );
        ok(b.free(), "free");
    }
}

/// M1: an allocation that finds no room left on the device fails with 207001 and changes
/// nothing; filling the device ends with 207001, memory freed is allocated again, and once
/// everything is freed the free bytes are what they were.
pub fn m1_no_room_left<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let start = mem_info(&d0, "mem_info");
    let free = usize::try_from(start.free).unwrap_or(usize::MAX);
    assert_no_room(
        &d0,
        d0.alloc(free.saturating_add(1), MallocPolicy::NormalOnly),
        start.free,
        "one byte more than is free",
    );
    let chunk = ((start.total / 8) as usize / MIB2).max(1) * MIB2;
    let mut held = Vec::new();
    loop {
        let before = free_bytes(&d0, "mem_info");
        match d0.alloc(chunk, MallocPolicy::HugeFirst) {
            Ok(b) => held.push(b),
            Err(e) if e.code() == AclError::RT_MEMORY_ALLOCATION => {
                assert_eq!(
                    free_bytes(&d0, "mem_info"),
                    before,
                    "the refusal changed the free bytes"
                );
                assert!(
                    before < chunk as u64,
                    "{chunk} bytes were refused with {before} bytes free"
                );
                break;
            }
            Err(e) => panic!("alloc #{} of {chunk} bytes: {e}", held.len() + 1),
        }
        assert!(
            held.len() <= 64,
            "64 allocations of total/8 bytes never ran out of room"
        );
    }
    assert!(
        !held.is_empty(),
        "not even one eighth of the device could be allocated"
    );
    let last = held.pop().expect("one");
    ok(last.free(), "free one chunk");
    held.push(alloc(
        &d0,
        chunk,
        MallocPolicy::HugeFirst,
        "the freed chunk is allocated again",
    ));
    for b in held {
        ok(b.free(), "free");
    }
    assert_eq!(
        free_bytes(&d0, "mem_info at the end"),
        start.free,
        "the free bytes came back"
    );
}

/// M1: the device's memory is counted across all processes: a peer's allocation takes from the
/// free bytes this process sees (and both see the same), a peer that holds nearly everything
/// leaves this process 207001, and what the peer frees, or holds when it exits (M6), comes back.
pub fn m1_memory_counted_across_processes<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    let d0 = dev(rt, 0);
    let f0 = free_bytes(&d0, "mem_info");
    let mut peer = Remote::on_device(spawner, "allocating peer", 0);
    let (b, _) = peer.alloc(8 * MIB, MallocPolicy::NormalOnly);
    let f1 = free_bytes(&d0, "mem_info after the peer's alloc");
    assert!(
        f0 - f1 >= 8 * MIB as u64,
        "a peer's allocation of 8 MiB took {} bytes of this process's view",
        f0 - f1
    );
    assert_eq!(
        peer.mem_info().free,
        f1,
        "the peer and this process see different free bytes"
    );
    peer.ok(&format!("free {b}"));
    assert_eq!(
        free_bytes(&d0, "mem_info after the peer's free"),
        f0,
        "the peer's free"
    );

    // Leave between 2 and 4 MiB free.
    let most = (f0 as usize / MIB2 - 1) * MIB2;
    peer.alloc(most, MallocPolicy::HugeFirst);
    let left = free_bytes(&d0, "mem_info");
    assert!(left < 4 * MIB as u64, "{left} bytes left");
    assert_no_room(
        &d0,
        d0.alloc(4 * MIB, MallocPolicy::NormalOnly),
        left,
        "4 MiB while a peer holds the rest of the device",
    );
    let small = alloc(&d0, MIB, MallocPolicy::NormalOnly, "1 MiB of what is left");
    ok(small.free(), "free");
    peer.exit();
    let b = alloc(
        &d0,
        4 * MIB,
        MallocPolicy::NormalOnly,
        "4 MiB after the peer exited",
    );
    ok(b.free(), "free");
    assert_eq!(
        free_bytes(&d0, "mem_info at the end"),
        f0,
        "the exited peer's memory came back"
    );
}

// ---------------------------------------------------------------------------------------------
// M2 — Copies and sets
// ---------------------------------------------------------------------------------------------

/// M2: `aclrtMemcpy` and `aclrtMemset` complete before they return and are not ordered with
/// tasks queued on streams: with a set queued behind a blocked wait, a synchronous copy to the
/// same bytes returns at once and its bytes are read back at once; the queued set overwrites
/// them later, when its stream reaches it.
pub fn m2_sync_copies_complete_unordered<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let b = alloc(&d0, 2 * KIB4, MallocPolicy::NormalOnly, "alloc");
    let (head, tail) = (
        ok(b.as_range().slice(..KIB4), "slice"),
        ok(b.as_range().slice(KIB4..), "slice"),
    );
    let s = stream(&d0, "create_stream");
    let gate = Gate::new(&d0);
    gate.hold(&s);
    ok(s.memset(head, 0xAA), "queue a set behind the wait");
    let p = pattern(KIB4, 1);
    let t = Instant::now();
    put(
        &d0,
        head,
        &p,
        "a synchronous copy while a set of the same bytes is queued",
    );
    assert_eq!(
        get(&d0, head, "read back"),
        p,
        "the synchronous copy did not complete at once"
    );
    ok(d0.memset(tail, 0x55), "a synchronous set");
    assert_eq!(
        get(&d0, tail, "read back"),
        vec![0x55; KIB4],
        "the synchronous set"
    );
    assert!(
        t.elapsed() < QUICK,
        "synchronous calls waited for a blocked stream: {:?}",
        t.elapsed()
    );
    gate.open();
    sync_ok(&s, "the queued set runs");
    assert_eq!(
        get(&d0, head, "read back"),
        vec![0xAA; KIB4],
        "the queued set ran after the copy"
    );
    assert_eq!(
        get(&d0, tail, "read back"),
        vec![0x55; KIB4],
        "the queued set touched other bytes"
    );
    gate.finish();
    drop(s);
    ok(b.free(), "free");
}

/// M2, R2: the `Async` copies and sets are stream tasks: behind a blocked wait nothing of them
/// runs; once released they run in order (a host-to-device copy, a device-to-device copy of its
/// bytes, a set over part of them, a device-to-host copy).
pub fn m2_async_copies_are_stream_tasks<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let a = alloc(&d0, KIB4, MallocPolicy::NormalOnly, "alloc a");
    let c = alloc(&d0, KIB4, MallocPolicy::NormalOnly, "alloc c");
    put(&d0, a.as_range(), &[0; KIB4], "zero a");
    put(&d0, c.as_range(), &[0; KIB4], "zero c");
    let s = stream(&d0, "create_stream");
    let gate = Gate::new(&d0);
    gate.hold(&s);
    let p = pattern(KIB4, 2);
    ok(
        s.copy_from_host(a.as_range(), p.clone()),
        "queue host-to-device",
    );
    ok(s.copy(c.as_range(), a.as_range()), "queue device-to-device");
    ok(
        s.memset(ok(a.as_range().slice(..16), "slice"), 0x77),
        "queue a set",
    );
    let download = ok(s.copy_to_host(c.as_range()), "queue device-to-host");
    std::thread::sleep(SHORT);
    assert!(
        download.try_take().is_none(),
        "a device-to-host copy ran behind a blocked wait"
    );
    assert_eq!(
        get(&d0, a.as_range(), "read a"),
        vec![0; KIB4],
        "a copy ran behind a blocked wait"
    );
    gate.open();
    sync_ok(&s, "the queued copies run");
    assert_eq!(
        ok(download.wait(), "download"),
        p,
        "the device-to-host copy, in order"
    );
    assert_eq!(
        get(&d0, c.as_range(), "read c"),
        p,
        "the device-to-device copy"
    );
    let mut expect = p.clone();
    expect[..16].fill(0x77);
    assert_eq!(
        get(&d0, a.as_range(), "read a"),
        expect,
        "the set, after the copy"
    );
    gate.finish();
    drop(s);
    ok(a.free(), "free");
    ok(c.free(), "free");
}

/// M2: `count > destMax` → 107000 for every copy, synchronous and async (at enqueue: the stream
/// reports nothing later), writing nothing; `count == 0` succeeds and does nothing.
///
/// C ABI: NULL pointers (100000) and a `kind` that contradicts the pointers (107000): the typed
/// API knows the kind of each copy from its argument types.
pub fn m2_count_and_empty_copies<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let big = alloc(&d0, 2 * KIB4, MallocPolicy::NormalOnly, "alloc");
    let small = alloc(&d0, KIB4, MallocPolicy::NormalOnly, "alloc");
    let (pb, ps) = (pattern(2 * KIB4, 3), pattern(KIB4, 4));
    put(&d0, big.as_range(), &pb, "fill big");
    put(&d0, small.as_range(), &ps, "fill small");
    let s = stream(&d0, "create_stream");
    let code = AclError::RT_PARAM_INVALID;
    assert_code(
        d0.copy(small.as_range(), big.as_range()),
        code,
        "copy 8 KiB into 4 KiB",
    );
    assert_code(
        d0.copy_from_host(small.as_range(), &pb),
        code,
        "copy_from_host 8 KiB into 4 KiB",
    );
    let mut host = vec![0u8; 100];
    assert_code(
        d0.copy_to_host(&mut host, small.as_range()),
        code,
        "copy_to_host 4 KiB into 100 bytes",
    );
    assert_eq!(host, vec![0u8; 100], "a refused copy wrote the host buffer");
    assert_code(
        s.copy(small.as_range(), big.as_range()),
        code,
        "async copy 8 KiB into 4 KiB",
    );
    assert_code(
        s.copy_from_host(small.as_range(), pb.clone()),
        code,
        "async copy_from_host 8 KiB into 4 KiB",
    );
    sync_ok(&s, "a refused async copy is not reported later");
    assert_eq!(
        get(&d0, small.as_range(), "read"),
        ps,
        "a refused copy wrote device memory"
    );

    let empty = ok(big.as_range().slice(KIB4..KIB4), "an empty slice");
    assert!(empty.is_empty());
    let empty_small = ok(small.as_range().slice(..0), "an empty slice");
    ok(d0.copy(empty, empty_small), "copy of 0 bytes");
    ok(
        d0.copy_from_host(big.as_range(), &[]),
        "copy_from_host of 0 bytes",
    );
    ok(
        d0.copy_to_host(&mut [], big.as_range().slice(..0).expect("slice")),
        "copy_to_host of 0 bytes",
    );
    ok(d0.memset(empty, 0xEE), "memset of 0 bytes");
    ok(s.copy(empty_small, empty), "async copy of 0 bytes");
    ok(
        s.copy_from_host(small.as_range(), Vec::new()),
        "async copy_from_host of 0 bytes",
    );
    ok(s.memset(empty, 0xEE), "async memset of 0 bytes");
    let download = ok(s.copy_to_host(empty), "async copy_to_host of 0 bytes");
    sync_ok(&s, "copies of 0 bytes");
    assert_eq!(
        ok(download.wait(), "download"),
        Vec::<u8>::new(),
        "a download of 0 bytes"
    );
    assert_eq!(
        get(&d0, big.as_range(), "read"),
        pb,
        "a copy of 0 bytes changed something"
    );
    assert_eq!(
        get(&d0, small.as_range(), "read"),
        ps,
        "a copy of 0 bytes changed something"
    );
    drop(s);
    ok(big.free(), "free");
    ok(small.free(), "free");
}

/// M2: a set writes its byte into each of its bytes and nowhere else, synchronous and async.
///
/// C ABI: `value` is an `int32_t` converted to a byte as C `memset` does (the typed API takes a
/// `u8`).
pub fn m2_sets<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let b = alloc(&d0, 3 * KIB4, MallocPolicy::NormalOnly, "alloc");
    let mut expect = vec![0u8; 3 * KIB4];
    put(&d0, b.as_range(), &expect, "zero");
    ok(
        d0.memset(ok(b.as_range().slice(100..200), "slice"), 0xFE),
        "memset",
    );
    expect[100..200].fill(0xFE);
    assert_eq!(
        get(&d0, b.as_range(), "read"),
        expect,
        "the synchronous set"
    );
    let s = stream(&d0, "create_stream");
    ok(
        s.memset(ok(b.as_range().slice(4000..4200), "slice"), 0x01),
        "async memset across a page boundary",
    );
    sync_ok(&s, "synchronize");
    expect[4000..4200].fill(0x01);
    assert_eq!(get(&d0, b.as_range(), "read"), expect, "the async set");
    drop(s);
    ok(b.free(), "free");
}

/// M2: a device range that is not inside one live allocation of this process → 107000, for
/// synchronous and async copies and sets (async: at enqueue, and the stream reports nothing
/// later); nothing is written. The ranges are kept addresses (see `kept_range`): one byte past
/// a page-sized allocation (into its neighbour, if it has one), and one of a freed allocation.
pub fn m2_range_inside_one_allocation<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let a = alloc(&d0, KIB4, MallocPolicy::NormalOnly, "alloc a");
    let c = alloc(&d0, KIB4, MallocPolicy::NormalOnly, "alloc c");
    let src = alloc(&d0, 2 * KIB4, MallocPolicy::NormalOnly, "alloc a source");
    let gone = alloc(&d0, KIB4, MallocPolicy::NormalOnly, "alloc");
    let gone_addr = gone.as_range().addr();
    ok(gone.free(), "free");
    put(&d0, a.as_range(), &[0; KIB4], "zero a");
    put(&d0, c.as_range(), &[0; KIB4], "zero c");
    let s = stream(&d0, "create_stream");
    let code = AclError::RT_PARAM_INVALID;
    let ranges = [
        (
            "one byte past an allocation",
            kept_range(a.as_range().addr(), KIB4 + 1, DeviceId(0), false),
        ),
        (
            "a freed allocation",
            kept_range(gone_addr, KIB4, DeviceId(0), false),
        ),
    ];
    for (what, r) in ranges {
        let n = r.len();
        assert_code(
            d0.copy_from_host(r, &vec![1; n]),
            code,
            &format!("copy_from_host to {what}"),
        );
        assert_code(
            d0.copy_to_host(&mut vec![0; n], r),
            code,
            &format!("copy_to_host from {what}"),
        );
        assert_code(d0.memset(r, 1), code, &format!("memset of {what}"));
        let valid = ok(src.as_range().slice(..n), "slice");
        assert_code(d0.copy(r, valid), code, &format!("copy to {what}"));
        assert_code(d0.copy(valid, r), code, &format!("copy from {what}"));
        assert_code(s.memset(r, 1), code, &format!("async memset of {what}"));
        assert_code(
            s.copy_from_host(r, vec![1; n]),
            code,
            &format!("async copy_from_host to {what}"),
        );
        assert_code(
            s.copy_to_host(r),
            code,
            &format!("async copy_to_host from {what}"),
        );
        assert_code(s.copy(r, valid), code, &format!("async copy to {what}"));
        assert_code(s.copy(valid, r), code, &format!("async copy from {what}"));
    }
    sync_ok(&s, "refused async calls are not reported later");
    assert_eq!(
        get(&d0, a.as_range(), "read a"),
        vec![0; KIB4],
        "a refused call wrote a"
    );
    assert_eq!(
        get(&d0, c.as_range(), "read c"),
        vec![0; KIB4],
        "a refused call wrote c"
    );
    drop(s);
    ok(a.free(), "free");
    ok(c.free(), "free");
    ok(src.free(), "free");
}

/// M2, R7: a copy or set that touches memory of a device other than the calling one needs peer
/// access from the calling device to that one, or 107000 (sim) — synchronous and async, nothing
/// written; after `enable_peer_access` they work; access is per pair (enabling 0 → 1 does not
/// enable 1 → 0).
pub fn m2_other_device_needs_peer_access<B: Backend>(rt: &B::Runtime) {
    let (d0, d1) = (dev(rt, 0), dev(rt, 1));
    let a0 = alloc(&d0, KIB4, MallocPolicy::NormalOnly, "alloc on device 0");
    let a1 = alloc(&d1, KIB4, MallocPolicy::NormalOnly, "alloc on device 1");
    let p = pattern(KIB4, 5);
    put(
        &d0,
        a0.as_range(),
        &[0; KIB4],
        "device 0 writes its own memory",
    );
    put(&d1, a1.as_range(), &p, "device 1 writes its own memory");
    let s0 = stream(&d0, "stream on device 0");
    let code = AclError::RT_PARAM_INVALID;
    assert_code(
        d0.copy(a0.as_range(), a1.as_range()),
        code,
        "device 0 copies from device 1",
    );
    assert_code(
        d0.copy_from_host(a1.as_range(), &[9; KIB4]),
        code,
        "device 0 writes device 1",
    );
    assert_code(
        d0.copy_to_host(&mut [0; KIB4], a1.as_range()),
        code,
        "device 0 reads device 1",
    );
    assert_code(d0.memset(a1.as_range(), 9), code, "device 0 sets device 1");
    assert_code(
        s0.copy(a0.as_range(), a1.as_range()),
        code,
        "async, device 0 from device 1",
    );
    assert_code(
        s0.memset(a1.as_range(), 9),
        code,
        "async set of device 1 on device 0",
    );
    sync_ok(&s0, "refused async calls are not reported later");
    assert_eq!(
        get(&d1, a1.as_range(), "read"),
        p,
        "a refused call wrote device 1"
    );
    assert_eq!(
        get(&d0, a0.as_range(), "read"),
        vec![0; KIB4],
        "a refused call wrote device 0"
    );

    ok(
        d0.enable_peer_access(DeviceId(1)),
        "enable peer access 0 -> 1",
    );
    ok(
        d0.copy(a0.as_range(), a1.as_range()),
        "device 0 copies from device 1 with peer access",
    );
    assert_eq!(get(&d0, a0.as_range(), "read"), p, "the cross-device copy");
    ok(
        s0.memset(a1.as_range(), 3),
        "async set of device 1 with peer access",
    );
    sync_ok(&s0, "synchronize");
    assert_eq!(
        get(&d0, a1.as_range(), "read with peer access"),
        vec![3; KIB4],
        "the set"
    );
    assert_code(
        d1.copy(a1.as_range(), a0.as_range()),
        code,
        "device 1 copies from device 0 (1 -> 0 not enabled)",
    );
    drop(s0);
    ok(a0.free(), "free");
    ok(a1.free(), "free");
}

// ---------------------------------------------------------------------------------------------
// M3 — Export
// ---------------------------------------------------------------------------------------------

/// M3: an export needs a range inside one live allocation of this process whose start and size
/// are multiples of that allocation's page size: `size == 0`, a start or size off the page
/// (4 KiB for `NORMAL_ONLY`, 2 MiB for `HUGE_ONLY`, so 4 KiB steps are refused there), the whole
/// of a buffer whose length is not a page multiple, a range past the allocation and one of a
/// freed allocation → 107000; whole pages are exported, with either flag.
///
/// C ABI: 107002 without a current device, NULL `devPtr`/`key` (100000), `len < 65` and flags
/// outside {0x0, 0x1} (107000).
pub fn m3_export_range_rules<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let code = AclError::RT_PARAM_INVALID;
    let n = alloc(
        &d0,
        4 * KIB4,
        MallocPolicy::NormalOnly,
        "alloc 4 pages of 4 KiB",
    );
    let r = n.as_range();
    for (what, range) in [
        ("0 bytes", ok(r.slice(..0), "slice")),
        ("a start off the page", ok(r.slice(1..KIB4 + 1), "slice")),
        ("a size off the page", ok(r.slice(..100), "slice")),
        (
            "a page and a bit",
            ok(r.slice(KIB4..2 * KIB4 + 100), "slice"),
        ),
        (
            "past the allocation",
            kept_range(r.addr(), 5 * KIB4, DeviceId(0), false),
        ),
    ] {
        for flags in [MemExportFlags::DEFAULT, ANYONE] {
            assert_code(
                n.export(range, flags),
                code,
                &format!("export of {what} with {flags:?}"),
            );
        }
    }
    let odd = alloc(&d0, 5000, MallocPolicy::NormalOnly, "alloc 5000 bytes");
    assert_code(
        odd.export(odd.as_range(), ANYONE),
        code,
        "export of a whole 5000-byte buffer",
    );
    let whole = ok(odd.as_range().slice(..KIB4), "slice");
    let e = exported(odd.export(whole, ANYONE), "export of its first page");
    ok(e.close(), "close");
    let gone = alloc(&d0, KIB4, MallocPolicy::NormalOnly, "alloc");
    let gone_addr = gone.as_range().addr();
    ok(gone.free(), "free");
    assert_code(
        n.export(kept_range(gone_addr, KIB4, DeviceId(0), false), ANYONE),
        code,
        "export of a freed allocation",
    );

    let h = alloc(
        &d0,
        2 * MIB2,
        MallocPolicy::HugeOnly,
        "alloc 2 pages of 2 MiB",
    );
    let hr = h.as_range();
    assert_code(
        h.export(ok(hr.slice(..KIB4), "slice"), ANYONE),
        code,
        "4 KiB of a 2 MiB page",
    );
    assert_code(
        h.export(ok(hr.slice(KIB4..MIB2 + KIB4), "slice"), ANYONE),
        code,
        "2 MiB at a 4 KiB offset",
    );
    let e1 = exported(
        h.export(ok(hr.slice(MIB2..), "slice"), MemExportFlags::DEFAULT),
        "the second 2 MiB page",
    );
    let e2 = ok(
        n.export(ok(r.slice(KIB4..3 * KIB4), "slice"), ANYONE),
        "two 4 KiB pages at a page offset",
    );
    ok(e1.close(), "close");
    ok(e2.close(), "close");
    for b in [n, odd, h] {
        ok(b.free(), "free");
    }
}

/// M3: a range that overlaps one of the allocation's ranges still exported → 507899, whatever
/// the flags (an adjacent range is no overlap); after a close the range may be exported again,
/// under a new key.
pub fn m3_export_overlap<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let b = alloc(&d0, 4 * KIB4, MallocPolicy::NormalOnly, "alloc");
    let r = b.as_range();
    let first = exported(
        b.export(ok(r.slice(..2 * KIB4), "slice"), ANYONE),
        "export pages 0-1",
    );
    let code = AclError::RT_DRV_INTERNAL_ERROR;
    for (what, range) in [
        ("the same pages", ok(r.slice(..2 * KIB4), "slice")),
        ("page 1 and 2", ok(r.slice(KIB4..3 * KIB4), "slice")),
        ("page 0", ok(r.slice(..KIB4), "slice")),
        ("the whole buffer", r),
    ] {
        for flags in [MemExportFlags::DEFAULT, ANYONE] {
            assert_code(
                b.export(range, flags),
                code,
                &format!("export of {what} with {flags:?}"),
            );
        }
    }
    let adjacent = exported(
        b.export(
            ok(r.slice(2 * KIB4..3 * KIB4), "slice"),
            MemExportFlags::DEFAULT,
        ),
        "export the adjacent page 2",
    );
    let old = first.key().clone();
    ok(first.close(), "close pages 0-1");
    let again = exported(
        b.export(ok(r.slice(KIB4..2 * KIB4), "slice"), ANYONE),
        "export page 1 after the close",
    );
    assert_ne!(
        again.key(),
        &old,
        "the range exported again got the old key"
    );
    assert_ne!(again.key(), adjacent.key(), "two exports share a key");
    ok(again.close(), "close");
    ok(adjacent.close(), "close");
    ok(b.free(), "free");
}

/// M3, R5: a memory key is a NUL-terminated printable key of at most 64 characters, every export
/// gets its own, and memory keys are told apart from notify keys: a memory key imported as a
/// notify, or a notify key imported as memory, → 107000. A key in no backend format → 107000
/// (M5: a malformed key).
pub fn m3_key_format<B: Backend>(rt: &B::Runtime) {
    let (d0, d1) = (dev(rt, 0), dev(rt, 1));
    let b0 = alloc(&d0, 2 * KIB4, MallocPolicy::NormalOnly, "alloc");
    let b1 = alloc(&d1, KIB4, MallocPolicy::NormalOnly, "alloc on device 1");
    let exports = [
        exported(
            b0.export(
                ok(b0.as_range().slice(..KIB4), "slice"),
                MemExportFlags::DEFAULT,
            ),
            "export",
        ),
        exported(
            b0.export(ok(b0.as_range().slice(KIB4..), "slice"), ANYONE),
            "export",
        ),
        exported(b1.export(b1.as_range(), ANYONE), "export on device 1"),
    ];
    for (i, e) in exports.iter().enumerate() {
        assert_key_shape(e.key(), &format!("memory key #{i}"));
        for other in &exports[..i] {
            assert_ne!(e.key(), other.key(), "two exports share a key");
        }
    }
    let code = AclError::RT_PARAM_INVALID;
    for e in &exports {
        for flags in [ImportFlags::DEFAULT, ImportFlags::ENABLE_PEER_ACCESS] {
            assert_code(
                d0.import_notify(e.key(), flags),
                code,
                "a memory key imported as a notify",
            );
        }
    }
    let n = create(&d0, "create");
    let nkey = ok(
        n.export(ExportFlags::DISABLE_PID_VALIDATION),
        "export the notify",
    );
    for flags in [MemImportFlags::DEFAULT, MemImportFlags::ENABLE_PEER_ACCESS] {
        assert_code(
            d0.import_memory(&nkey, key_len(&nkey), flags),
            code,
            "a notify key imported as memory",
        );
        assert_code(
            d1.import_memory(&junk_key(), key_len(&junk_key()), flags),
            code,
            "a malformed key imported as memory",
        );
    }
    destroy(n, "destroy");
    for e in exports {
        ok(e.close(), "close");
    }
    ok(b0.free(), "free");
    ok(b1.free(), "free");
}

/// M3, R5 (c): after a close the same range is exported again under a new key; the old key does
/// not resolve to the new export (507899 in a peer that imported it before), the new one does,
/// and maps the same bytes.
pub fn m3_old_key_never_resolves_to_new_export<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    let d0 = dev(rt, 0);
    let b = alloc(&d0, KIB4, MallocPolicy::NormalOnly, "alloc");
    let p = pattern(KIB4, 6);
    put(&d0, b.as_range(), &p, "fill");
    let first = exported(b.export(b.as_range(), ANYONE), "export");
    let old = first.key().clone();
    let mut peer = Remote::on_device(spawner, "importer", 0);
    let (i, _, _) = peer.mem_import(MemImportFlags::DEFAULT, &old);
    peer.ok(&format!("impclose {i}"));
    ok(first.close(), "close");
    let second = exported(
        b.export(b.as_range(), ANYONE),
        "export the same range again",
    );
    assert_ne!(second.key(), &old, "the same key for a new export");
    peer.err(
        &mem_import_line(MemImportFlags::DEFAULT, &old),
        AclError::RT_DRV_INTERNAL_ERROR,
    );
    let (i, _, _) = peer.mem_import(MemImportFlags::DEFAULT, second.key());
    assert_eq!(
        peer.read(&format!("i{i}"), 0, KIB4),
        p,
        "the new key maps the same bytes"
    );
    peer.ok(&format!("impclose {i}"));
    peer.exit();
    ok(second.close(), "close");
    ok(b.free(), "free");
}

/// M3, M5, R12: in a virtualization instance IPC memory is refused with 207000: an export (both
/// flags) and an import of a plain peer's key (both flags); allocations and copies still work.
///
/// The peer must be a plain process: this check's runtime is the virtualization instance.
pub fn m3_virtualized_ipc_memory<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    let d0 = dev(rt, 0);
    let b = alloc(&d0, KIB4, MallocPolicy::NormalOnly, "alloc works");
    let p = pattern(KIB4, 7);
    put(&d0, b.as_range(), &p, "copies work");
    assert_eq!(get(&d0, b.as_range(), "read"), p, "copies work");
    let code = AclError::RT_FEATURE_NOT_SUPPORT;
    for flags in [MemExportFlags::DEFAULT, ANYONE] {
        assert_code(
            b.export(b.as_range(), flags),
            code,
            &format!("export with {flags:?}"),
        );
    }
    let mut peer = Remote::on_device(spawner, "plain exporter", 0);
    let (pb, _) = peer.alloc(KIB4, MallocPolicy::NormalOnly);
    let (pe, key) = peer.mem_export(pb, 0, KIB4, ANYONE);
    for flags in [MemImportFlags::DEFAULT, MemImportFlags::ENABLE_PEER_ACCESS] {
        assert_code(
            d0.import_memory(&key, key_len(&key), flags),
            code,
            &format!("import with {flags:?}"),
        );
    }
    peer.ok(&format!("memclose {pe}"));
    peer.ok(&format!("free {pb}"));
    peer.exit();
    ok(b.free(), "free");
}

// ---------------------------------------------------------------------------------------------
// M4 — Whitelist
// ---------------------------------------------------------------------------------------------

/// M4: the arguments of `aclrtIpcMemSetImportPid`: 0 pids or more than 31 → 107000; pid 0 and
/// the exporter's own bare tgid are ignored, and a call in which every pid was ignored → 507899;
/// an export with `DISABLE_PID_VALIDATION` takes no whitelist (207006); 31 pids are one call.
///
/// C ABI: the call outside the exporting process (507899: the typed export exists only there),
/// NULL `key`/`pid` (100000), a malformed, unknown or closed key (107000, 507899: the typed
/// export's key is its own and closing consumes it).
pub fn m4_set_import_pids_arguments<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let me = ok(rt.bare_tgid(), "bare_tgid");
    let b = alloc(&d0, 2 * KIB4, MallocPolicy::NormalOnly, "alloc");
    let e = exported(
        b.export(
            ok(b.as_range().slice(..KIB4), "slice"),
            MemExportFlags::DEFAULT,
        ),
        "export",
    );
    assert_code(e.set_import_pids(&[]), AclError::RT_PARAM_INVALID, "0 pids");
    let many: Vec<Pid> = (0..32).map(|i| Pid(1_000_000 + i)).collect();
    assert_code(
        e.set_import_pids(&many),
        AclError::RT_PARAM_INVALID,
        "32 pids",
    );
    for (what, pids) in [
        ("pid 0", vec![Pid(0)]),
        ("the exporter's own pid", vec![me]),
        ("pid 0 and the exporter's own", vec![Pid(0), me, Pid(0)]),
    ] {
        assert_code(
            e.set_import_pids(&pids),
            AclError::RT_DRV_INTERNAL_ERROR,
            &format!("a call of only {what}"),
        );
    }
    ok(
        e.set_import_pids(&[Pid(0), Pid(2_000_000), me]),
        "ignored pids beside one that counts",
    );
    let other = exported(
        b.export(
            ok(b.as_range().slice(KIB4..), "slice"),
            MemExportFlags::DEFAULT,
        ),
        "export",
    );
    ok(other.set_import_pids(&many[..31]), "31 pids in one call");
    ok(other.close(), "close");
    let open = exported(
        b.export(ok(b.as_range().slice(KIB4..), "slice"), ANYONE),
        "export for anyone",
    );
    assert_code(
        open.set_import_pids(&[Pid(2_000_001)]),
        AclError::RT_NO_PERMISSION,
        "a whitelist on a DISABLE_PID_VALIDATION export",
    );
    ok(e.close(), "close");
    ok(open.close(), "close");
    ok(b.free(), "free");
}

/// M4, M5, R16: with `DEFAULT` the whitelist starts empty (a peer's import → 507899); the
/// exporter whitelists the peer's bare tgid (asked with `pid`; the peer runs with
/// `ASCEND_NOTIFY_SIM_BARE_TGID=remap`, so on the simulator its OS pid is not its bare tgid, and
/// whitelisting the OS pid admits nothing); calls are cumulative (a second peer added later,
/// the first still admitted); with `DISABLE_PID_VALIDATION` any process imports.
pub fn m4_whitelist_by_bare_tgid<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    let d0 = dev(rt, 0);
    let b = alloc(&d0, 2 * KIB4, MallocPolicy::NormalOnly, "alloc");
    let p = pattern(2 * KIB4, 8);
    put(&d0, b.as_range(), &p, "fill");
    let e = exported(
        b.export(
            ok(b.as_range().slice(..KIB4), "slice"),
            MemExportFlags::DEFAULT,
        ),
        "export",
    );
    let line = mem_import_line(MemImportFlags::DEFAULT, e.key());
    let refused = AclError::RT_DRV_INTERNAL_ERROR;
    let mut first = remapped_peer(spawner, "first importer", 0);
    first.err(&line, refused);
    let pid = first.pid();
    if pid != first.os_pid() {
        ok(e.set_import_pids(&[first.os_pid()]), "whitelist the OS pid");
        first.err(&line, refused);
    }
    ok(e.set_import_pids(&[pid]), "whitelist the bare tgid");
    let (i, _, _) = first.mem_import(MemImportFlags::DEFAULT, e.key());
    assert_eq!(
        first.read(&format!("i{i}"), 0, KIB4),
        p[..KIB4],
        "the first importer reads"
    );
    let mut second = remapped_peer(spawner, "second importer", 0);
    second.err(&line, refused);
    ok(
        e.set_import_pids(&[second.pid()]),
        "whitelist the second importer",
    );
    second.mem_import(MemImportFlags::DEFAULT, e.key());
    first.ok(&format!("impclose {i}"));
    first.ok(&line);

    let open = exported(
        b.export(ok(b.as_range().slice(KIB4..), "slice"), ANYONE),
        "export for anyone",
    );
    let mut third = remapped_peer(spawner, "importer never whitelisted", 0);
    let (i, _, _) = third.mem_import(MemImportFlags::DEFAULT, open.key());
    assert_eq!(
        third.read(&format!("i{i}"), 0, KIB4),
        p[KIB4..],
        "any process imports"
    );
    for peer in [first, second, third] {
        peer.exit();
    }
    ok(e.close(), "close");
    ok(open.close(), "close");
    ok(b.free(), "free");
}

// ---------------------------------------------------------------------------------------------
// M5 — Import
// ---------------------------------------------------------------------------------------------

/// M5: a malformed key → 107000; the key this process exported → 507899, with either flag and
/// on either device.
///
/// C ABI: 107002 without a current device, NULL (100000), flags outside {0x0, 0x1} (107000).
pub fn m5_import_malformed_and_own<B: Backend>(rt: &B::Runtime) {
    let (d0, d1) = (dev(rt, 0), dev(rt, 1));
    let b = alloc(&d0, KIB4, MallocPolicy::NormalOnly, "alloc");
    let e = exported(b.export(b.as_range(), ANYONE), "export");
    for flags in [MemImportFlags::DEFAULT, MemImportFlags::ENABLE_PEER_ACCESS] {
        for d in [&d0, &d1] {
            assert_code(
                d.import_memory(&junk_key(), key_len(&junk_key()), flags),
                AclError::RT_PARAM_INVALID,
                "a malformed key",
            );
            assert_code(
                d.import_memory(e.key(), key_len(e.key()), flags),
                AclError::RT_DRV_INTERNAL_ERROR,
                "the key this process exported",
            );
        }
    }
    ok(e.close(), "close");
    ok(b.free(), "free");
}

/// M5: the refusals of an import, in order: a malformed key (107000) before everything; then,
/// each 507899, an unknown or closed key, the caller not whitelisted, another device without
/// peer access and without `ENABLE_PEER_ACCESS`, and a key the caller already imported. The
/// importer runs on device 1 and the memory lies on device 0, so each step still has every
/// later fault: removing one fault at a time, each import fails until the last succeeds
/// (`ENABLE_PEER_ACCESS`), and what is mapped are the exported bytes. After that import peer
/// access is enabled, so a re-import with `DEFAULT` works; another peer that enabled peer access
/// itself imports with `DEFAULT`.
///
/// The codes cannot tell the 507899 steps apart; what this check shows of their order is that
/// no step is skipped and that a malformed key wins over all of them.
pub fn m5_refusals_in_order<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    let d0 = dev(rt, 0);
    let b = alloc(&d0, 2 * KIB4, MallocPolicy::NormalOnly, "alloc");
    let p = pattern(2 * KIB4, 9);
    put(&d0, b.as_range(), &p, "fill");
    let e = exported(
        b.export(
            ok(b.as_range().slice(..KIB4), "slice"),
            MemExportFlags::DEFAULT,
        ),
        "export",
    );
    let closed = exported(
        b.export(
            ok(b.as_range().slice(KIB4..), "slice"),
            MemExportFlags::DEFAULT,
        ),
        "export",
    );
    let closed_key = closed.key().clone();
    ok(closed.close(), "close");
    let mut peer = remapped_peer(spawner, "importer on device 1", 1);
    let refused = AclError::RT_DRV_INTERNAL_ERROR;
    let default = MemImportFlags::DEFAULT;
    peer.err(
        &mem_import_line(default, &junk_key()),
        AclError::RT_PARAM_INVALID,
    );
    peer.err(&mem_import_line(default, &closed_key), refused);
    for m in mutations(e.key()) {
        match peer.try_call(&mem_import_line(default, &m)) {
            Ok(_) => panic!("a mutated key {m:?} was imported"),
            Err((code, _)) => assert!(
                [AclError::RT_PARAM_INVALID, refused].contains(&code),
                "a mutated key: {code:?}"
            ),
        }
    }
    let line = mem_import_line(default, e.key());
    peer.err(&line, refused);
    let pid = peer.pid();
    ok(e.set_import_pids(&[pid]), "whitelist the importer");
    peer.err(&line, refused);
    let (i, _, len) = peer.mem_import(MemImportFlags::ENABLE_PEER_ACCESS, e.key());
    assert_eq!(len, KIB4, "the import's length");
    assert_eq!(
        peer.read(&format!("i{i}"), 0, KIB4),
        p[..KIB4],
        "the importer on device 1 reads"
    );
    for flags in [default, MemImportFlags::ENABLE_PEER_ACCESS] {
        peer.err(&mem_import_line(flags, e.key()), refused);
    }
    peer.ok(&format!("impclose {i}"));
    let (i, _, _) = peer.mem_import(default, e.key());
    peer.ok(&format!("impclose {i}"));

    let mut other = remapped_peer(spawner, "importer with peer access", 1);
    other.ok("peer 0");
    ok(e.set_import_pids(&[other.pid()]), "whitelist");
    let (i, _, _) = other.mem_import(default, e.key());
    assert_eq!(
        other.read(&format!("i{i}"), 0, KIB4),
        p[..KIB4],
        "with peer access enabled"
    );
    peer.exit();
    other.exit();
    ok(e.close(), "close");
    ok(b.free(), "free");
}

/// M5, R7: an importer whitelisted before it started (the driver's guard against a reused pid)
/// → 507899, even when its pid is set again; one that started before its entry imports.
pub fn m5_importer_started_after_entry<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    let d0 = dev(rt, 0);
    let b = alloc(&d0, KIB4, MallocPolicy::NormalOnly, "alloc");
    let e = exported(b.export(b.as_range(), MemExportFlags::DEFAULT), "export");
    let line = mem_import_line(MemImportFlags::DEFAULT, e.key());
    let mut late = Remote::spawn_with_env(
        spawner,
        "importer counted as started an hour late",
        &[(ENV_START_OFFSET, "3600")],
    );
    late.ok("dev 0");
    let pid = late.pid();
    ok(e.set_import_pids(&[pid]), "whitelist the late importer");
    late.err(&line, AclError::RT_DRV_INTERNAL_ERROR);
    ok(e.set_import_pids(&[pid]), "set its pid again");
    late.err(&line, AclError::RT_DRV_INTERNAL_ERROR);
    let mut on_time = Remote::on_device(spawner, "importer", 0);
    ok(
        e.set_import_pids(&[on_time.pid()]),
        "whitelist the importer",
    );
    on_time.ok(&line);
    late.exit();
    on_time.exit();
    ok(e.close(), "close");
    ok(b.free(), "free");
}

/// M5: an import maps the same memory at a device address of the importer that is never the
/// exporter's address for it (neither the range's nor the allocation's), with the exported
/// range's length; what one side writes through the runtime the other reads, both ways (the
/// peer exporting and this process importing, then the other way round), including an export
/// at an offset of its allocation.
pub fn m5_import_shares_memory_both_ways<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    let d0 = dev(rt, 0);
    let s = stream(&d0, "create_stream");
    let mut peer = Remote::on_device(spawner, "peer", 0);

    // This process exports bytes 4096..12288 of a 4-page buffer; the peer imports them.
    let b = alloc(&d0, 4 * KIB4, MallocPolicy::NormalOnly, "alloc");
    let base = b.as_range().addr();
    let p1 = pattern(4 * KIB4, 10);
    put(&d0, b.as_range(), &p1, "fill");
    let window = ok(b.as_range().slice(KIB4..3 * KIB4), "slice");
    let e = exported(b.export(window, ANYONE), "export at an offset");
    let (i, addr, len) = peer.mem_import(MemImportFlags::DEFAULT, e.key());
    assert_eq!(len, 2 * KIB4, "the import's length is the exported range's");
    assert_ne!(
        addr,
        window.addr(),
        "the import is at the exporter's address of the range"
    );
    assert_ne!(
        addr, base,
        "the import is at the exporter's address of the allocation"
    );
    let imp = format!("i{i}");
    assert_eq!(
        peer.read(&imp, 0, 2 * KIB4),
        p1[KIB4..3 * KIB4],
        "the importer reads the exporter's bytes"
    );
    let p2 = pattern(64, 11);
    peer.write(&imp, 100, &p2);
    assert_eq!(
        get(&d0, ok(window.slice(100..164), "slice"), "read"),
        p2,
        "the exporter reads the importer's copy"
    );
    peer.ok(&format!("fill {imp} 1000 50 204"));
    assert_eq!(
        get(&d0, ok(window.slice(1000..1050), "slice"), "read"),
        vec![204; 50],
        "the exporter reads the importer's set"
    );
    let p3 = pattern(16, 12);
    put(&d0, window, &p3, "the exporter writes again");
    assert_eq!(
        peer.read(&imp, 0, 16),
        p3,
        "the importer reads the exporter's new bytes"
    );
    assert_eq!(
        get(&d0, ok(b.as_range().slice(..KIB4), "slice"), "read"),
        p1[..KIB4],
        "bytes outside the export"
    );
    peer.ok(&format!("impclose {i}"));
    ok(e.close(), "close");

    // The peer exports; this process imports.
    let (pb, paddr) = peer.alloc(2 * KIB4, MallocPolicy::NormalOnly);
    let p4 = pattern(2 * KIB4, 13);
    peer.write(&format!("b{pb}"), 0, &p4);
    let (pe, key) = peer.mem_export(pb, 0, 2 * KIB4, ANYONE);
    let imported = ok(
        d0.import_memory(&key, key_len(&key), MemImportFlags::DEFAULT),
        "import the peer's memory",
    );
    let r = imported.as_range();
    assert_ne!(r.addr(), paddr, "the import is at the exporter's address");
    assert_eq!(imported.len(), 2 * KIB4, "the import's length");
    assert!(!imported.is_empty());
    assert!(r.is_imported(), "an import's range says so");
    assert_eq!(r.device(), DeviceId(0), "the memory's device");
    assert_eq!(imported.device().id(), DeviceId(0), "the import's device");
    assert_eq!(
        get_via_stream(&s, r, "read the import"),
        p4,
        "this process reads the peer's bytes"
    );
    ok(s.memset(ok(r.slice(..10), "slice"), 0x11), "set the import");
    sync_ok(&s, "synchronize");
    assert_eq!(
        peer.read(&format!("b{pb}"), 0, 10),
        vec![0x11; 10],
        "the peer reads this process's set"
    );
    let p5 = pattern(32, 14);
    put_via_stream(
        &s,
        ok(r.slice(20..52), "slice"),
        &p5,
        "copy into the import",
    );
    assert_eq!(
        peer.read(&format!("b{pb}"), 20, 32),
        p5,
        "the peer reads this process's copy"
    );
    let p6 = pattern(8, 15);
    peer.write(&format!("b{pb}"), 50, &p6);
    assert_eq!(
        get_via_stream(&s, ok(r.slice(50..58), "slice"), "read"),
        p6,
        "this process reads the peer's new bytes"
    );
    ok(imported.close(), "close the import");
    peer.ok(&format!("memclose {pe}"));
    peer.ok(&format!("free {pb}"));
    peer.exit();
    drop(s);
    ok(b.free(), "free");
}

/// M5: imported memory takes only device-to-device copies and sets enqueued on a stream:
/// synchronous copies and sets, and host copies on a stream, → 107000 (async: at enqueue, and
/// the stream reports nothing later), writing nothing; an import is no allocation of this
/// process, so exporting it is refused too (M3: 107000). Stream copies both ways and a stream
/// set work.
pub fn m5_import_takes_only_stream_device_copies<B: Backend>(
    rt: &B::Runtime,
    spawner: &dyn Spawner,
) {
    let d0 = dev(rt, 0);
    let s = stream(&d0, "create_stream");
    let mut peer = Remote::on_device(spawner, "exporter", 0);
    let (pb, _) = peer.alloc(KIB4, MallocPolicy::NormalOnly);
    let p = pattern(KIB4, 16);
    peer.write(&format!("b{pb}"), 0, &p);
    let (pe, key) = peer.mem_export(pb, 0, KIB4, ANYONE);
    let imported = ok(
        d0.import_memory(&key, key_len(&key), MemImportFlags::DEFAULT),
        "import",
    );
    let r = imported.as_range();
    let local = alloc(&d0, KIB4, MallocPolicy::NormalOnly, "alloc");
    put(&d0, local.as_range(), &[0; KIB4], "zero");
    let code = AclError::RT_PARAM_INVALID;
    assert_code(
        d0.copy_from_host(r, &[1; KIB4]),
        code,
        "synchronous host-to-device into an import",
    );
    assert_code(
        d0.copy_to_host(&mut [0; KIB4], r),
        code,
        "synchronous device-to-host from an import",
    );
    assert_code(
        d0.copy(r, local.as_range()),
        code,
        "synchronous device-to-device into an import",
    );
    assert_code(
        d0.copy(local.as_range(), r),
        code,
        "synchronous device-to-device from an import",
    );
    assert_code(d0.memset(r, 1), code, "synchronous set of an import");
    assert_code(
        s.copy_from_host(r, vec![1; KIB4]),
        code,
        "async host-to-device into an import",
    );
    assert_code(
        s.copy_to_host(r),
        code,
        "async device-to-host from an import",
    );
    assert_code(
        local.export(r, ANYONE),
        code,
        "an export of imported memory",
    );
    let past = kept_range(r.addr(), KIB4 + 1, DeviceId(0), true);
    assert_code(
        s.memset(past, 1),
        code,
        "a set one byte past the import (M2)",
    );
    sync_ok(&s, "refused async calls are not reported later");
    assert_eq!(
        peer.read(&format!("b{pb}"), 0, KIB4),
        p,
        "a refused call wrote the memory"
    );
    assert_eq!(
        get(&d0, local.as_range(), "read"),
        vec![0; KIB4],
        "a refused call wrote the local buffer"
    );
    ok(s.copy(local.as_range(), r), "stream copy from the import");
    sync_ok(&s, "synchronize");
    assert_eq!(
        get(&d0, local.as_range(), "read"),
        p,
        "the stream copy from the import"
    );
    ok(s.memset(r, 0x21), "stream set of the import");
    ok(
        s.copy(
            ok(r.slice(..8), "slice"),
            ok(local.as_range().slice(8..16), "slice"),
        ),
        "stream copy into the import",
    );
    sync_ok(&s, "synchronize");
    let mut expect = vec![0x21; KIB4];
    expect[..8].copy_from_slice(&p[8..16]);
    assert_eq!(
        peer.read(&format!("b{pb}"), 0, KIB4),
        expect,
        "the stream set and copy"
    );
    ok(imported.close(), "close");
    peer.ok(&format!("memclose {pe}"));
    peer.ok(&format!("free {pb}"));
    peer.exit();
    drop(s);
    ok(local.free(), "free");
}

// ---------------------------------------------------------------------------------------------
// M6 — Close and lifetime
// ---------------------------------------------------------------------------------------------

/// Runs `f` on a thread and returns its result, asserting that it is still running after
/// [`SHORT`] and done within [`QUICK`] of `release`.
#[track_caller]
fn blocks_until<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> crate::Result<T> + Send + 'static,
    release: impl FnOnce(),
) -> T {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    assert!(
        matches!(rx.recv_timeout(SHORT), Err(mpsc::RecvTimeoutError::Timeout)),
        "{what} returned while a task this process queued was still blocked"
    );
    release();
    let result = rx
        .recv_timeout(QUICK + Duration::from_secs(5))
        .unwrap_or_else(|_| panic!("{what} did not return after the queued tasks ran"));
    worker.join().expect("the worker thread");
    ok(result, what)
}

/// M6: `aclrtFree` first waits for every task this process has queued, so that no queued copy
/// outlives the memory: with a set and a device-to-host copy of the buffer queued behind a
/// blocked wait, `free` returns only once they ran (the download holds the set's bytes).
pub fn m6_free_waits_for_queued_tasks<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let b = alloc(&d0, KIB4, MallocPolicy::NormalOnly, "alloc");
    let s = stream(&d0, "create_stream");
    let gate = Gate::new(&d0);
    gate.hold(&s);
    ok(s.memset(b.as_range(), 0x5A), "queue a set");
    let download = ok(s.copy_to_host(b.as_range()), "queue a device-to-host copy");
    blocks_until("free", move || b.free(), || gate.open());
    assert_eq!(
        ok(download.wait(), "download"),
        vec![0x5A; KIB4],
        "the queued tasks ran before the free"
    );
    sync_ok(&s, "synchronize");
    gate.finish();
}

/// M6: a process never reuses a device address range while it lives: allocations made one
/// after another's free never overlap a freed range, and a freed address stays invalid (copies
/// and sets → 107000; async at enqueue, reporting nothing later).
pub fn m6_freed_addresses_never_reused<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let s = stream(&d0, "create_stream");
    let mut freed: Vec<(u64, u64)> = Vec::new();
    for i in 0..8 {
        let policy = if i % 2 == 0 {
            MallocPolicy::NormalOnly
        } else {
            MallocPolicy::HugeOnly
        };
        let b = alloc(&d0, 2 * KIB4, policy, "alloc");
        let (start, end) = (b.as_range().addr(), b.as_range().addr() + 2 * KIB4 as u64);
        for &(s0, e0) in &freed {
            assert!(
                end <= s0 || e0 <= start,
                "allocation {start:#x}..{end:#x} reuses freed {s0:#x}..{e0:#x}"
            );
        }
        ok(b.free(), "free");
        freed.push((start, end));
    }
    let code = AclError::RT_PARAM_INVALID;
    for &(start, _) in &freed {
        let r = kept_range(start, 2 * KIB4, DeviceId(0), false);
        assert_code(
            d0.copy_from_host(r, &[0; 2 * KIB4]),
            code,
            "copy_from_host to a freed address",
        );
        assert_code(
            d0.copy_to_host(&mut [0; 2 * KIB4], r),
            code,
            "copy_to_host from a freed address",
        );
        assert_code(d0.memset(r, 0), code, "memset of a freed address");
        assert_code(s.memset(r, 0), code, "async memset of a freed address");
    }
    sync_ok(&s, "refused async calls are not reported later");
}

/// M6: `aclrtIpcMemClose` in an importer first waits for every task it queued (a set of the
/// import behind a blocked wait runs, and the exporter reads it), then unmaps the import: later
/// calls with its address → 107000 (async at enqueue, nothing written). Its key stays the
/// exporter's: the importer imports it again.
pub fn m6_importer_close_unmaps<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    let d0 = dev(rt, 0);
    let s = stream(&d0, "create_stream");
    let mut peer = Remote::on_device(spawner, "exporter", 0);
    let (pb, _) = peer.alloc(2 * KIB4, MallocPolicy::NormalOnly);
    let p = pattern(2 * KIB4, 17);
    peer.write(&format!("b{pb}"), 0, &p);
    let (pe, key) = peer.mem_export(pb, 0, 2 * KIB4, ANYONE);
    let imported = ok(
        d0.import_memory(&key, key_len(&key), MemImportFlags::DEFAULT),
        "import",
    );
    let (addr, len) = (imported.as_range().addr(), imported.len());
    let gate = Gate::new(&d0);
    gate.hold(&s);
    ok(
        s.memset(ok(imported.as_range().slice(..8), "slice"), 0x42),
        "queue a set of the import",
    );
    blocks_until(
        "close of the import",
        move || imported.close(),
        || gate.open(),
    );
    sync_ok(&s, "synchronize");
    let mut expect = p.clone();
    expect[..8].fill(0x42);
    assert_eq!(
        peer.read(&format!("b{pb}"), 0, 2 * KIB4),
        expect,
        "the queued set ran before the close"
    );

    let stale = kept_range(addr, len, DeviceId(0), true);
    let local = alloc(&d0, len, MallocPolicy::NormalOnly, "alloc");
    let code = AclError::RT_PARAM_INVALID;
    assert_code(s.memset(stale, 0), code, "a set of a closed import");
    assert_code(
        s.copy(stale, local.as_range()),
        code,
        "a copy into a closed import",
    );
    assert_code(
        s.copy(local.as_range(), stale),
        code,
        "a copy from a closed import",
    );
    sync_ok(&s, "refused async calls are not reported later");
    assert_eq!(
        peer.read(&format!("b{pb}"), 0, 2 * KIB4),
        expect,
        "a refused call wrote the memory"
    );
    let again = ok(
        d0.import_memory(&key, key_len(&key), MemImportFlags::DEFAULT),
        "import the same key again",
    );
    assert_eq!(
        get_via_stream(&s, again.as_range(), "read"),
        expect,
        "the new import"
    );
    ok(again.close(), "close");
    peer.ok(&format!("memclose {pe}"));
    peer.ok(&format!("free {pb}"));
    peer.exit();
    gate.finish();
    drop(s);
    ok(local.free(), "free");
}

/// M6: `aclrtIpcMemClose` in the exporter first waits for every task this process queued, then
/// revokes the key: later imports → 507899, for the peer that imported (and closed) before and
/// for a new one; the memory stays the exporter's.
pub fn m6_exporter_close_revokes_key<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    let d0 = dev(rt, 0);
    let b = alloc(&d0, KIB4, MallocPolicy::NormalOnly, "alloc");
    let p = pattern(KIB4, 18);
    put(&d0, b.as_range(), &p, "fill");
    let e = exported(b.export(b.as_range(), ANYONE), "export");
    let key = e.key().clone();
    let mut first = Remote::on_device(spawner, "importer", 0);
    let (i, _, _) = first.mem_import(MemImportFlags::DEFAULT, &key);
    first.ok(&format!("impclose {i}"));
    let s = stream(&d0, "create_stream");
    let gate = Gate::new(&d0);
    gate.hold(&s);
    ok(
        s.memset(ok(b.as_range().slice(..4), "slice"), 0x99),
        "queue a set",
    );
    blocks_until("the exporter's close", move || e.close(), || gate.open());
    sync_ok(&s, "synchronize");
    let line = mem_import_line(MemImportFlags::DEFAULT, &key);
    first.err(&line, AclError::RT_DRV_INTERNAL_ERROR);
    let mut second = Remote::on_device(spawner, "new importer", 0);
    second.err(&line, AclError::RT_DRV_INTERNAL_ERROR);
    let mut expect = p;
    expect[..4].fill(0x99);
    assert_eq!(
        get(&d0, b.as_range(), "read"),
        expect,
        "the exporter's memory after the close"
    );
    first.exit();
    second.exit();
    gate.finish();
    drop(s);
    ok(b.free(), "free");
}

/// M6: memory is released when its allocation has been freed and every import of it closed (in
/// the supported order: importers first): the free bytes stay down while any of it is held and
/// come back with the free.
pub fn m6_released_after_free_and_every_close<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    let d0 = dev(rt, 0);
    let f0 = free_bytes(&d0, "mem_info");
    let b = alloc(&d0, 8 * MIB, MallocPolicy::NormalOnly, "alloc 8 MiB");
    let f1 = free_bytes(&d0, "mem_info");
    assert!(
        f0 - f1 >= 8 * MIB as u64,
        "an allocation of 8 MiB took {} bytes",
        f0 - f1
    );
    let e = exported(b.export(b.as_range(), ANYONE), "export");
    let mut a = Remote::on_device(spawner, "importer a", 0);
    let mut c = Remote::on_device(spawner, "importer c", 0);
    let (ia, _, _) = a.mem_import(MemImportFlags::DEFAULT, e.key());
    let (ic, _, _) = c.mem_import(MemImportFlags::DEFAULT, e.key());
    assert_eq!(
        free_bytes(&d0, "mem_info"),
        f1,
        "imports took memory of their own"
    );
    a.ok(&format!("impclose {ia}"));
    assert_eq!(
        free_bytes(&d0, "mem_info"),
        f1,
        "released with an import open"
    );
    c.ok(&format!("impclose {ic}"));
    ok(e.close(), "close");
    assert_eq!(free_bytes(&d0, "mem_info"), f1, "released before the free");
    ok(b.free(), "free");
    assert_eq!(
        free_bytes(&d0, "mem_info"),
        f0,
        "not released after the free and every close"
    );
    a.exit();
    c.exit();
}

/// M6, R9: a killed process's memory is reclaimed: a peer that holds nearly all of the device
/// (and exported part of it) dies; an allocation that needs its room then succeeds, and once
/// that is freed the free bytes are what they were.
pub fn m6_killed_allocator_reclaimed<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    let d0 = dev(rt, 0);
    let f0 = free_bytes(&d0, "mem_info");
    let mut peer = Remote::on_device(spawner, "allocator that dies", 0);
    let most = (f0 as usize / MIB2 - 1) * MIB2;
    let (pb, _) = peer.alloc(most, MallocPolicy::HugeFirst);
    peer.mem_export(pb, 0, MIB2, ANYONE);
    let left = free_bytes(&d0, "mem_info");
    assert_no_room(
        &d0,
        d0.alloc(4 * MIB, MallocPolicy::NormalOnly),
        left,
        "4 MiB while the peer lives",
    );
    peer.abort();
    let b = alloc(
        &d0,
        4 * MIB,
        MallocPolicy::NormalOnly,
        "4 MiB after the peer died",
    );
    ok(b.free(), "free");
    assert_eq!(
        free_bytes(&d0, "mem_info"),
        f0,
        "the dead peer's memory came back"
    );
}

/// M6, R9: "an attach ... reclaims the dead": a peer that holds 8 MiB dies; once another peer
/// has attached, the free bytes this process reads are what they were.
pub fn m6_attach_reclaims_the_dead<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    let d0 = dev(rt, 0);
    let f0 = free_bytes(&d0, "mem_info");
    let mut peer = Remote::on_device(spawner, "allocator that dies", 0);
    peer.alloc(8 * MIB, MallocPolicy::NormalOnly);
    assert!(free_bytes(&d0, "mem_info") < f0, "the peer's allocation");
    peer.abort();
    let newcomer = Remote::on_device(spawner, "peer that attaches after the death", 0);
    assert_eq!(
        free_bytes(&d0, "mem_info after an attach"),
        f0,
        "an attach after the death did not reclaim the dead peer's memory"
    );
    newcomer.exit();
}

/// M6, R9: "every memory call of another process ... reclaims the dead": a peer that holds
/// 8 MiB dies; once another peer (attached before the death) has allocated and freed 4 KiB, the
/// free bytes this process reads are what they were.
pub fn m6_memory_call_reclaims_the_dead<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    let d0 = dev(rt, 0);
    let f0 = free_bytes(&d0, "mem_info");
    let mut witness = Remote::on_device(spawner, "peer attached before the death", 0);
    let mut peer = Remote::on_device(spawner, "allocator that dies", 0);
    peer.alloc(8 * MIB, MallocPolicy::NormalOnly);
    assert!(free_bytes(&d0, "mem_info") < f0, "the peer's allocation");
    peer.abort();
    let (b, _) = witness.alloc(KIB4, MallocPolicy::NormalOnly);
    witness.ok(&format!("free {b}"));
    assert_eq!(
        free_bytes(&d0, "mem_info after another process's memory calls"),
        f0,
        "an allocation and a free by another process after the death did not reclaim the dead \
         peer's memory"
    );
    witness.exit();
}

/// M6, R9: an importer that dies holding its import loses it: the exporter closes and frees
/// (no hazard: the importer is gone) and the free bytes come back.
pub fn m6_killed_importer_reclaimed<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    let d0 = dev(rt, 0);
    let f0 = free_bytes(&d0, "mem_info");
    let b = alloc(&d0, 8 * MIB, MallocPolicy::NormalOnly, "alloc 8 MiB");
    let e = exported(b.export(b.as_range(), ANYONE), "export");
    let mut peer = Remote::on_device(spawner, "importer that dies", 0);
    peer.mem_import(MemImportFlags::DEFAULT, e.key());
    peer.abort();
    ok(e.close(), "close after the importer died");
    ok(b.free(), "free after the importer died");
    assert_eq!(
        free_bytes(&d0, "mem_info"),
        f0,
        "the dead importer kept the memory"
    );
}

/// M6, R9 (hazard served): an exporter that dies while imported leaves the memory valid for the
/// importer (read and written); it is released when the importer closes.
pub fn m6_killed_exporter_memory_stays_for_importer<B: Backend>(
    rt: &B::Runtime,
    spawner: &dyn Spawner,
) {
    let d0 = dev(rt, 0);
    let s = stream(&d0, "create_stream");
    let f0 = free_bytes(&d0, "mem_info");
    let mut peer = Remote::on_device(spawner, "exporter that dies", 0);
    let (pb, _) = peer.alloc(8 * MIB, MallocPolicy::NormalOnly);
    let p = pattern(KIB4, 19);
    peer.write(&format!("b{pb}"), 0, &p);
    let (_, key) = peer.mem_export(pb, 0, 8 * MIB, ANYONE);
    let imported = ok(
        d0.import_memory(&key, key_len(&key), MemImportFlags::DEFAULT),
        "import",
    );
    peer.abort();
    let head = ok(imported.as_range().slice(..KIB4), "slice");
    assert_eq!(
        get_via_stream(&s, head, "read after the exporter died"),
        p,
        "the import after the exporter died"
    );
    let q = pattern(KIB4, 20);
    put_via_stream(&s, head, &q, "write after the exporter died");
    assert_eq!(
        get_via_stream(&s, head, "read"),
        q,
        "the import takes writes"
    );
    assert!(free_bytes(&d0, "mem_info") < f0, "released while imported");
    ok(imported.close(), "close");
    assert_eq!(
        free_bytes(&d0, "mem_info"),
        f0,
        "not released after the last import closed"
    );
    drop(s);
}

/// M6 (hazard served): freeing exported memory while another process imports it is served:
/// the free succeeds, the memory stays valid for the importer (it reads what the exporter
/// wrote, and its own writes), and is released only when the import closes.
pub fn m6_hazard_free_while_imported_served<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    let d0 = dev(rt, 0);
    let f0 = free_bytes(&d0, "mem_info");
    let b = alloc(&d0, 2 * MIB, MallocPolicy::NormalOnly, "alloc 2 MiB");
    let p = pattern(KIB4, 21);
    put(&d0, ok(b.as_range().slice(..KIB4), "slice"), &p, "fill");
    let e = exported(b.export(b.as_range(), ANYONE), "export");
    let mut peer = Remote::on_device(spawner, "importer", 0);
    let (i, _, _) = peer.mem_import(MemImportFlags::DEFAULT, e.key());
    let imp = format!("i{i}");
    ok(b.free(), "free while imported (a hazard, served)");
    assert!(
        free_bytes(&d0, "mem_info") <= f0 - 2 * MIB as u64,
        "released while imported"
    );
    assert_eq!(
        peer.read(&imp, 0, KIB4),
        p,
        "the importer reads after the free"
    );
    let q = pattern(KIB4, 22);
    peer.write(&imp, KIB4, &q);
    assert_eq!(
        peer.read(&imp, KIB4, KIB4),
        q,
        "the importer writes after the free"
    );
    peer.ok(&format!("impclose {i}"));
    assert_eq!(
        free_bytes(&d0, "mem_info"),
        f0,
        "not released after the last import closed"
    );
    drop(e); // its key died with the allocation: the close's answer is not this check's business
    peer.exit();
}

/// M6 (hazard served): the exporter closing before its importers is served: the close
/// succeeds and revokes the key (a new import → 507899), and the existing import keeps working:
/// what one side writes, the other still reads.
pub fn m6_hazard_exporter_closes_first_served<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    let d0 = dev(rt, 0);
    let f0 = free_bytes(&d0, "mem_info");
    let b = alloc(&d0, KIB4, MallocPolicy::NormalOnly, "alloc");
    let p = pattern(KIB4, 23);
    put(&d0, b.as_range(), &p, "fill");
    let e = exported(b.export(b.as_range(), ANYONE), "export");
    let key = e.key().clone();
    let mut peer = Remote::on_device(spawner, "importer", 0);
    let (i, _, _) = peer.mem_import(MemImportFlags::DEFAULT, &key);
    let imp = format!("i{i}");
    ok(e.close(), "the exporter closes first (a hazard, served)");
    assert_eq!(
        peer.read(&imp, 0, KIB4),
        p,
        "the import after the exporter's close"
    );
    let q = pattern(64, 24);
    peer.write(&imp, 0, &q);
    assert_eq!(
        get(&d0, ok(b.as_range().slice(..64), "slice"), "read"),
        q,
        "the exporter reads the importer's write"
    );
    put(
        &d0,
        ok(b.as_range().slice(64..128), "slice"),
        &q,
        "the exporter writes",
    );
    assert_eq!(
        peer.read(&imp, 64, 64),
        q,
        "the importer reads the exporter's write"
    );
    let mut other = Remote::on_device(spawner, "new importer", 0);
    other.err(
        &mem_import_line(MemImportFlags::DEFAULT, &key),
        AclError::RT_DRV_INTERNAL_ERROR,
    );
    peer.ok(&format!("impclose {i}"));
    ok(b.free(), "free");
    assert_eq!(free_bytes(&d0, "mem_info"), f0, "released");
    peer.exit();
    other.exit();
}

/// The first 64 bytes of `i`.
fn head<I: MemImport>(i: &I) -> DeviceRange<'_> {
    i.as_range()
        .slice(..64)
        .expect("an import of at least 64 bytes")
}

/// M6 (strict): under `ASCEND_NOTIFY_SIM_STRICT=1` an exporter's close while imported and its
/// free while imported fail with 507899 and change nothing: the import keeps working, the key
/// still resolves (the importer closes and imports again), the exporter's bytes stay at its
/// address; the memory is released once the importer has closed and the exporter exited.
///
/// The typed `close` and `free` consume their handle even when they fail, so the exporter
/// reaches its memory afterwards through its kept address (`readat`).
pub fn m6_strict_hazards_refused<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    let d0 = dev(rt, 0);
    let s = stream(&d0, "create_stream");
    let f0 = free_bytes(&d0, "mem_info");
    let mut x = Remote::spawn_with_env(spawner, "strict exporter", &[(ENV_STRICT, "1")]);
    x.ok("dev 0");
    let (xb, xaddr) = x.alloc(MIB, MallocPolicy::NormalOnly);
    let p = pattern(64, 25);
    x.write(&format!("b{xb}"), 0, &p);
    let (xe, key) = x.mem_export(xb, 0, MIB, ANYONE);
    let imported = ok(
        d0.import_memory(&key, key_len(&key), MemImportFlags::DEFAULT),
        "import",
    );
    x.err(&format!("memclose {xe}"), AclError::RT_DRV_INTERNAL_ERROR);
    assert_eq!(
        get_via_stream(&s, head(&imported), "read"),
        p,
        "the import after a refused close"
    );
    ok(imported.close(), "close the import");
    let imported = ok(
        d0.import_memory(&key, key_len(&key), MemImportFlags::DEFAULT),
        "the key still resolves after a refused close",
    );
    x.err(&format!("free {xb}"), AclError::RT_DRV_INTERNAL_ERROR);
    let q = pattern(64, 26);
    put_via_stream(&s, head(&imported), &q, "write after a refused free");
    assert_eq!(
        x.ok(&format!("readat {xaddr} 64")),
        super::roles::hex_of_bytes(&q),
        "the exporter's memory after a refused free"
    );
    assert!(
        free_bytes(&d0, "mem_info") <= f0 - MIB as u64,
        "a refused free released the memory"
    );
    ok(imported.close(), "close the import");
    x.exit();
    assert_eq!(
        free_bytes(&d0, "mem_info"),
        f0,
        "the exited exporter's memory came back"
    );
    drop(s);
}
