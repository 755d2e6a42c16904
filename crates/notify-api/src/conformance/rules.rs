//! One check (or several) per rule of `SEMANTICS.md` §3, and the one list of every check
//! ([`for_each_check!`](crate::for_each_check)), those of §5 (`memory.rs`) and §6 (`tasks.rs`)
//! included.
//!
//! Every check gets the devices it needs from the runtime, destroys every notify it made and
//! drops every stream and device. Waits always carry a timeout of 1–5 s (the one exception,
//! [`r3_zero_timeout_waits_forever`], releases its own wait), so a broken backend fails a check
//! instead of hanging it.
//!
//! Where the contract changed an expected value (the revised R5, R6, R7 and R15 of
//! `SEMANTICS.md`), the check says so in a comment that starts with `Contract:`; where an
//! assertion moved to the C ABI (`ascendcl-sim/tests/contexts.rs`) because the typed API makes
//! it impossible by construction, the check says so in a comment that starts with `C ABI:`.

use std::time::{Duration, Instant};

use super::roles::hex_encode;
use super::support::{
    Poller, QUICK, Remote, assert_busy, assert_code_in, assert_key_shape, create,
    creator_destroy_frees_slot, destroy, destroy_all, dev, exported_on_device_0, fake_pids, fill,
    import_line, junk_key, mutations, setpid_line, stream, sync_ok, two_devices, whitelist,
};
use super::{ENV_START_OFFSET, ROLE_IMPORTER, Spawner, assert_code, ok};
use crate::{
    AclError, Backend, BackendKind, DEFAULT_CAPACITY, Device, DeviceId, ExportFlags, ExportKey,
    ImportFlags, Notify, NotifyFlags, Pid, Runtime, Stream, Timeout, WHITELIST_IMPORTERS,
};

/// Calls `$m! { name: Kind [Capability, ...], ... }` with every check of the suite: the one
/// list that [`checks`](super::checks) and every backend's test file are built from, so that a
/// test crate can give each check a `#[test]` of its own and never miss one.
///
/// `Kind` is `Single` (the check is a [`SingleCheck`](super::SingleCheck)) or `Multi` (a
/// [`MultiCheck`](super::MultiCheck)); the capabilities are [`Capability`](super::Capability)
/// variant names. A callback matches
/// `$($name:ident : $kind:ident [$($cap:ident),*]),* $(,)?`; see the module docs of
/// [`conformance`](super) for a whole test file.
#[macro_export]
macro_rules! for_each_check {
    ($m:ident) => {
        $m! {
            r1_record_before_wait_not_lost: Single [],
            r1_records_merge: Single [],
            r1_one_record_releases_one_wait: Single [],
            r1_batch_reset: Single [],
            r1_cross_process_record_wakes_wait: Multi [MultiProcess],
            r1_cross_process_records_merge: Multi [MultiProcess],
            r1_batch_reset_by_importer: Multi [MultiProcess],
            r2_enqueue_is_asynchronous: Single [],
            r2_stream_order: Single [],
            r2_synchronize_reports_failure_once: Single [],
            r2_synchronize_timeout_gives_up_tasks_keep_running: Single [],
            r2_synchronize_async: Single [],
            r2_enqueue_never_fails_when_busy: Single [],
            r2_default_stream: Single [],
            r2_destroyed_stream_finishes_tasks: Single [],
            r3_wait_timeout_reported_at_sync: Single [],
            r3_timeout_leaves_flag_and_stream_goes_on: Single [],
            r3_zero_timeout_waits_forever: Single [],
            r4_wait_on_other_device_stream: Single [],
            r4_importer_cannot_wait: Multi [MultiProcess],
            r5_export_once: Single [],
            r5_key_format: Single [],
            r5_key_never_resolves_to_reused_slot: Single [],
            r5_export_only_by_creator: Multi [MultiProcess],
            r6_whitelist_before_export: Single [],
            r6_whitelist_on_disable_export: Single [],
            r6_whitelist_holds_15_importers: Single [],
            r6_whitelist_cumulative_and_idempotent: Single [],
            r6_whitelist_by_bare_tgid: Multi [MultiProcess],
            r6_whitelist_only_by_creator: Multi [MultiProcess],
            r6_disable_pid_validation_any_process: Multi [MultiProcess],
            r6_set_again_refreshes_entry: Multi [MultiProcess, StartTimeHook],
            r7_import_malformed_key: Single [],
            r7_import_unknown_key: Single [],
            r7_import_own_notify: Single [],
            r7_peer_access_calls: Single [],
            r7_import_not_whitelisted: Multi [MultiProcess],
            r7_whitelist_checked_at_import: Multi [MultiProcess],
            r7_importer_started_after_entry: Multi [MultiProcess, StartTimeHook],
            r7_disable_import_takes_a_whitelist_entry: Multi [MultiProcess],
            r7_peer_access: Multi [MultiProcess],
            r8_creator_destroy_revokes_key: Single [],
            r8_pending_task_keeps_reference: Single [],
            r8_creator_destroy_revokes_key_importers_keep_working: Multi [MultiProcess],
            r8_slot_freed_after_last_reference: Multi [MultiProcess],
            r9_exit_holding_reference_is_released: Multi [MultiProcess],
            r9_killed_holder_is_reclaimed: Multi [MultiProcess, ProcessDeath],
            r9_dead_creator_notify_freed_with_last_importer: Multi [MultiProcess, ProcessDeath],
            r9_death_never_records: Multi [MultiProcess, ProcessDeath],
            r10_notify_ids_unique: Single [],
            r10_importer_sees_creator_id: Multi [MultiProcess],
            r11_capacity: Single [],
            r12_virtualized: Single [Virtualized],
            r13_devices_are_values: Single [],
            r14_failed_calls_change_nothing: Single [],
            r14_peer_bad_input_and_death_harm_nothing: Multi [MultiProcess, ProcessDeath],
            r15_order_of_checks: Single [],
            r15_order_of_checks_across_processes: Multi [MultiProcess],
            r16_bare_tgid: Single [],
            m1_alloc_on_its_device: Single [Memory],
            m1_page_alignment: Single [Memory],
            m1_no_room_left: Single [Memory],
            m1_memory_counted_across_processes: Multi [MultiProcess, Memory],
            m2_sync_copies_complete_unordered: Single [Memory],
            m2_async_copies_are_stream_tasks: Single [Memory],
            m2_count_and_empty_copies: Single [Memory],
            m2_sets: Single [Memory],
            m2_range_inside_one_allocation: Single [Memory],
            m2_other_device_needs_peer_access: Single [Memory],
            m3_export_range_rules: Single [Memory],
            m3_export_overlap: Single [Memory],
            m3_key_format: Single [Memory],
            m3_old_key_never_resolves_to_new_export: Multi [MultiProcess, Memory],
            m3_virtualized_ipc_memory: Multi [MultiProcess, Virtualized, Memory],
            m4_set_import_pids_arguments: Single [Memory],
            m4_whitelist_by_bare_tgid: Multi [MultiProcess, Memory],
            m5_import_malformed_and_own: Single [Memory],
            m5_refusals_in_order: Multi [MultiProcess, Memory],
            m5_importer_started_after_entry: Multi [MultiProcess, StartTimeHook, Memory],
            m5_import_shares_memory_both_ways: Multi [MultiProcess, Memory],
            m5_import_takes_only_stream_device_copies: Multi [MultiProcess, Memory],
            m6_free_waits_for_queued_tasks: Single [Memory],
            m6_freed_addresses_never_reused: Single [Memory],
            m6_importer_close_unmaps: Multi [MultiProcess, Memory],
            m6_exporter_close_revokes_key: Multi [MultiProcess, Memory],
            m6_released_after_free_and_every_close: Multi [MultiProcess, Memory],
            m6_killed_allocator_reclaimed: Multi [MultiProcess, ProcessDeath, Memory],
            m6_attach_reclaims_the_dead: Multi [MultiProcess, ProcessDeath, Memory],
            m6_memory_call_reclaims_the_dead: Multi [MultiProcess, ProcessDeath, Memory],
            m6_killed_importer_reclaimed: Multi [MultiProcess, ProcessDeath, Memory],
            m6_killed_exporter_memory_stays_for_importer:
                Multi [MultiProcess, ProcessDeath, Memory, ServedHazards],
            m6_hazard_free_while_imported_served: Multi [MultiProcess, Memory, ServedHazards],
            m6_hazard_exporter_closes_first_served: Multi [MultiProcess, Memory, ServedHazards],
            m6_strict_hazards_refused: Multi [MultiProcess, Memory, StrictHazards],
            h1_host_fn_runs_in_stream_order: Single [StreamTasks, Memory],
            h1_host_fn_cannot_synchronize_own_stream: Single [StreamTasks],
            h1_host_fn_panic_is_stream_error: Single [StreamTasks],
            e1_event_flags: Single [StreamTasks],
            e1_record_completes_when_reached: Single [StreamTasks],
            e1_stream_wait_event: Single [StreamTasks],
            e1_reset_event: Single [StreamTasks],
            e1_elapsed_time: Single [StreamTasks],
            e1_event_of_another_device: Single [StreamTasks],
            c1_created_context: Single [StreamTasks],
            s1_stream_query: Single [StreamTasks],
            s1_device_synchronize: Single [StreamTasks],
        }
    };
}

/// `Timeout::secs(n)`, short.
const fn secs(n: u64) -> Timeout {
    Timeout::secs(n)
}

// ---------------------------------------------------------------------------------------------
// R1 — State
// ---------------------------------------------------------------------------------------------

/// R1: a record before any wait is not lost: the next wait passes at once.
pub fn r1_record_before_wait_not_lost<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let a = create(&d0, "create");
    let s = stream(&d0, "create_stream");
    ok(s.record(&a), "record");
    sync_ok(&s, "synchronize after the record");
    // Only this process records, so a successful wait proves the earlier record was kept.
    ok(s.wait(&a, secs(5)), "wait after the record");
    let t = Instant::now();
    sync_ok(&s, "the wait passes on the kept record");
    assert!(
        t.elapsed() < QUICK,
        "the wait did not pass at once: {:?}",
        t.elapsed()
    );
    drop(s);
    destroy(a, "destroy");
}

/// R1: a notify is a binary flag: several records before one wait release one wait only, and
/// the wait resets the flag.
pub fn r1_records_merge<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let a = create(&d0, "create");
    let s = stream(&d0, "create_stream");
    for i in 0..3 {
        ok(s.record(&a), &format!("record #{i}"));
    }
    sync_ok(&s, "synchronize after three records");
    ok(s.wait(&a, secs(5)), "first wait");
    sync_ok(&s, "the first wait passes");
    ok(s.wait(&a, secs(1)), "second wait");
    assert_code(
        s.synchronize(),
        AclError::RT_WAIT_TIMEOUT,
        "a second wait after three merged records (the flag is not a counter)",
    );
    drop(s);
    destroy(a, "destroy");
}

/// R1: a wait completes and resets the flag in one atomic step, so one record releases exactly
/// one of two waits pending on the same notify.
pub fn r1_one_record_releases_one_wait<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let a = create(&d0, "create");
    let (s1, s2, s3) = (stream(&d0, "s1"), stream(&d0, "s2"), stream(&d0, "s3"));
    ok(s1.wait(&a, secs(2)), "wait on s1");
    ok(s2.wait(&a, secs(2)), "wait on s2");
    ok(s3.record(&a), "one record");
    sync_ok(&s3, "synchronize the record");
    let r1 = s1.synchronize();
    let r2 = s2.synchronize();
    let codes = [&r1, &r2].map(|r| r.as_ref().err().map(|e| e.code()));
    let passed = codes.iter().filter(|c| c.is_none()).count();
    assert_eq!(
        passed, 1,
        "one record released {passed} waits: {r1:?}, {r2:?}"
    );
    assert!(
        codes.contains(&Some(AclError::RT_WAIT_TIMEOUT)),
        "the other wait must time out: {r1:?}, {r2:?}"
    );
    drop((s1, s2, s3));
    destroy(a, "destroy");
}

/// R1: `batch_reset` clears the listed flags now, from the host; an empty list is 107000.
///
/// The NULL array (100000) and the invalid handle in the array (107017, nothing cleared) cannot
/// be built with the typed API (see the module docs of [`conformance`](super)).
pub fn r1_batch_reset<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let (x, y, z) = (create(&d0, "x"), create(&d0, "y"), create(&d0, "z"));
    let (s1, s2, s3) = (stream(&d0, "s1"), stream(&d0, "s2"), stream(&d0, "s3"));
    assert_code(
        rt.batch_reset(&[]),
        AclError::RT_PARAM_INVALID,
        "batch_reset of an empty list",
    );
    for (n, name) in [(&x, "x"), (&y, "y"), (&z, "z")] {
        ok(s1.record(n), &format!("record {name}"));
    }
    sync_ok(&s1, "synchronize the records");
    ok(rt.batch_reset(&[&x, &y]), "batch_reset x and y");
    // Resetting a clear flag is fine too.
    ok(rt.batch_reset(&[&x]), "batch_reset of a clear flag");
    ok(s1.wait(&x, secs(1)), "wait x");
    ok(s2.wait(&y, secs(1)), "wait y");
    ok(s3.wait(&z, secs(5)), "wait z");
    assert_code(s1.synchronize(), AclError::RT_WAIT_TIMEOUT, "x was reset");
    assert_code(s2.synchronize(), AclError::RT_WAIT_TIMEOUT, "y was reset");
    sync_ok(&s3, "z was not in the list and stays set");
    drop((s1, s2, s3));
    destroy_all(vec![x, y, z], "destroy");
}

/// R1, R2: a record issued by an importer in another process wakes the creator's pending wait.
pub fn r1_cross_process_record_wakes_wait<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    let (a, key, s) = exported_on_device_0(rt, ExportFlags::DISABLE_PID_VALIDATION);
    let mut peer = Remote::on_device(spawner, "importer on device 1", 1);
    peer.ok(&import_line(ImportFlags::ENABLE_PEER_ACCESS, &key));
    ok(s.wait(&a, secs(5)), "creator's wait");
    assert_busy(&s, "the creator's wait before any record");
    peer.ok("record");
    peer.ok("sync");
    sync_ok(&s, "the importer's record released the creator's wait");
    peer.ok("destroy");
    peer.exit();
    drop(s);
    destroy(a, "destroy");
}

/// R1: across processes, a record before the wait is not lost and several records merge.
pub fn r1_cross_process_records_merge<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    let (a, key, s) = exported_on_device_0(rt, ExportFlags::DISABLE_PID_VALIDATION);
    let mut peer = Remote::on_device(spawner, "importer on device 0", 0);
    peer.ok(&import_line(ImportFlags::DEFAULT, &key));
    peer.ok("record");
    peer.ok("record");
    peer.ok("record");
    peer.ok("sync");
    ok(s.wait(&a, secs(5)), "wait after the importer's records");
    sync_ok(&s, "records before the wait are not lost");
    ok(s.wait(&a, secs(1)), "second wait");
    assert_code(
        s.synchronize(),
        AclError::RT_WAIT_TIMEOUT,
        "three records released more than one wait",
    );
    peer.exit();
    drop(s);
    destroy(a, "destroy");
}

/// R1: any holder may `batch_reset`: an importer's reset clears the creator's flag.
pub fn r1_batch_reset_by_importer<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    let (a, key, s) = exported_on_device_0(rt, ExportFlags::DISABLE_PID_VALIDATION);
    let mut peer = Remote::on_device(spawner, "importer", 0);
    peer.ok(&import_line(ImportFlags::DEFAULT, &key));
    peer.ok("record");
    peer.ok("sync");
    peer.ok("reset");
    ok(s.wait(&a, secs(1)), "wait after the importer's reset");
    assert_code(
        s.synchronize(),
        AclError::RT_WAIT_TIMEOUT,
        "the importer's batch_reset cleared the flag",
    );
    peer.ok("record");
    peer.ok("sync");
    ok(s.wait(&a, secs(5)), "wait after a new record");
    sync_ok(&s, "the notify still works after the reset");
    peer.exit();
    drop(s);
    destroy(a, "destroy");
}

// ---------------------------------------------------------------------------------------------
// R2 — Streams
// ---------------------------------------------------------------------------------------------

/// R2: record and wait only enqueue; a wait blocks only its own stream, and other streams run
/// meanwhile.
pub fn r2_enqueue_is_asynchronous<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let (a, other) = (create(&d0, "a"), create(&d0, "other"));
    let (s1, s2) = (stream(&d0, "s1"), stream(&d0, "s2"));
    let t = Instant::now();
    ok(s1.wait(&a, secs(5)), "enqueue a wait");
    assert!(
        t.elapsed() < QUICK,
        "enqueueing a wait blocked for {:?}",
        t.elapsed()
    );
    assert_busy(&s1, "the stream with the pending wait");
    ok(s2.record(&other), "record another notify on s2");
    sync_ok(&s2, "s2 runs while s1 is blocked");
    assert_busy(&s1, "s1 is still blocked after s2 finished");
    ok(s2.record(&a), "record a on s2");
    sync_ok(&s2, "synchronize s2");
    sync_ok(&s1, "the wait on s1 passes");
    drop((s1, s2));
    destroy_all(vec![a, other], "destroy");
}

/// R2: the tasks of one stream run in order: a record queued behind a blocked wait does not
/// run before it.
pub fn r2_stream_order<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let (a, c) = (create(&d0, "a"), create(&d0, "c"));
    let (s1, s2, s3) = (stream(&d0, "s1"), stream(&d0, "s2"), stream(&d0, "s3"));
    ok(s1.wait(&a, secs(5)), "s1: wait a");
    ok(s1.record(&c), "s1: record c, behind the wait");
    ok(s2.wait(&c, secs(1)), "s2: wait c");
    assert_code(
        s2.synchronize(),
        AclError::RT_WAIT_TIMEOUT,
        "c must not be set while the wait before its record is blocked",
    );
    ok(s3.record(&a), "s3: record a");
    sync_ok(&s3, "synchronize s3");
    sync_ok(&s1, "s1 ran its wait, then its record");
    ok(s2.wait(&c, secs(5)), "s2: wait c again");
    sync_ok(&s2, "c is set now");
    drop((s1, s2, s3));
    destroy_all(vec![a, c], "destroy");
}

/// R2, R3: synchronize reports a task's failure, then clears it (a second synchronize is Ok);
/// `synchronize_timeout` reports it the same way.
pub fn r2_synchronize_reports_failure_once<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let a = create(&d0, "create");
    let s = stream(&d0, "create_stream");
    ok(s.wait(&a, secs(1)), "wait");
    assert_code(
        s.synchronize(),
        AclError::RT_WAIT_TIMEOUT,
        "first synchronize",
    );
    sync_ok(&s, "second synchronize: the failure was cleared");
    ok(s.wait(&a, secs(1)), "wait again");
    assert_code(
        s.synchronize_timeout(Some(Duration::from_secs(10))),
        AclError::RT_WAIT_TIMEOUT,
        "synchronize_timeout reports the expired wait",
    );
    ok(
        s.synchronize_timeout(Some(Duration::from_secs(10))),
        "then it is cleared",
    );
    drop(s);
    destroy(a, "destroy");
}

/// R2: `synchronize_timeout` gives up with 507046 and leaves the remaining tasks queued and
/// running; `None` waits for completion.
pub fn r2_synchronize_timeout_gives_up_tasks_keep_running<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let (a, c) = (create(&d0, "a"), create(&d0, "c"));
    let (s1, s2) = (stream(&d0, "s1"), stream(&d0, "s2"));
    ok(
        s1.synchronize_timeout(None),
        "synchronize_timeout(None) on an idle stream",
    );
    ok(
        s1.synchronize_timeout(Some(Duration::from_millis(100))),
        "synchronize_timeout on an idle stream",
    );
    ok(s1.wait(&a, secs(5)), "s1: wait a");
    ok(s1.record(&c), "s1: record c");
    let t = Instant::now();
    assert_code(
        s1.synchronize_timeout(Some(Duration::from_millis(200))),
        AclError::RT_STREAM_SYNC_TIMEOUT,
        "synchronize_timeout with a blocked wait",
    );
    assert!(t.elapsed() < QUICK, "giving up took {:?}", t.elapsed());
    ok(s2.record(&a), "s2: record a");
    sync_ok(&s2, "synchronize s2");
    ok(
        s1.synchronize_timeout(None),
        "s1's remaining tasks kept running",
    );
    ok(s2.wait(&c, secs(5)), "s2: wait c");
    sync_ok(&s2, "the record queued behind the wait ran");
    drop((s1, s2));
    destroy_all(vec![a, c], "destroy");
}

/// R2: `synchronize_async` does not complete before its tasks, completes once they do (waking
/// its task), and reports failures like `synchronize`.
pub fn r2_synchronize_async<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let a = create(&d0, "create");
    let (s1, s2) = (stream(&d0, "s1"), stream(&d0, "s2"));
    let poller = Poller::new();

    ok(s1.wait(&a, secs(5)), "s1: wait");
    {
        let mut fut = s1.synchronize_async();
        let t = Instant::now();
        let first = poller.poll(fut.as_mut());
        assert!(
            first.is_pending(),
            "synchronize_async completed before the wait was released: {first:?}"
        );
        assert!(
            t.elapsed() < QUICK,
            "the first poll blocked for {:?}",
            t.elapsed()
        );
        ok(s2.record(&a), "s2: record");
        match poller.block_on(fut.as_mut(), Duration::from_secs(10)) {
            Some(r) => ok(r, "synchronize_async after the record"),
            None => panic!("synchronize_async did not complete (or never woke its task)"),
        }
    }
    sync_ok(&s2, "synchronize s2");

    ok(s1.wait(&a, secs(1)), "s1: wait that expires");
    {
        let mut fut = s1.synchronize_async();
        match poller.block_on(fut.as_mut(), Duration::from_secs(10)) {
            Some(r) => assert_code(r, AclError::RT_WAIT_TIMEOUT, "synchronize_async error"),
            None => panic!("synchronize_async of an expiring wait did not complete"),
        }
    }
    {
        let mut fut = s1.synchronize_async();
        match poller.block_on(fut.as_mut(), Duration::from_secs(10)) {
            Some(r) => ok(r, "synchronize_async after the failure was reported"),
            None => panic!("synchronize_async of an idle stream did not complete"),
        }
    }
    drop((s1, s2));
    destroy(a, "destroy");
}

/// R2: enqueueing never fails because a stream is busy: thousands of records behind a blocked
/// wait are all accepted (a bounded queue makes the caller wait for room instead).
pub fn r2_enqueue_never_fails_when_busy<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let (a, c) = (create(&d0, "a"), create(&d0, "c"));
    let s = stream(&d0, "create_stream");
    ok(s.wait(&a, secs(2)), "a wait that blocks the stream for 2 s");
    for i in 0..5000 {
        ok(
            s.record(&c),
            &format!("record #{i} behind the blocked wait"),
        );
    }
    assert_code(
        s.synchronize(),
        AclError::RT_WAIT_TIMEOUT,
        "the blocking wait expired",
    );
    ok(s.wait(&c, secs(5)), "wait c");
    sync_ok(&s, "the queued records ran");
    drop(s);
    destroy_all(vec![a, c], "destroy");
}

/// R2, R13: each device has a default stream bound to it; dropping a default-stream handle does
/// not destroy the stream.
pub fn r2_default_stream<B: Backend>(rt: &B::Runtime) {
    let (d0, d1) = two_devices(rt);
    let a = create(&d0, "create");
    let d = ok(d0.default_stream(), "default_stream");
    assert_eq!(d.device().id(), DeviceId(0), "default stream of device 0");
    ok(d.record(&a), "record on the default stream");
    sync_ok(&d, "synchronize the default stream");
    drop(d);
    let d = ok(d0.default_stream(), "default_stream again after a drop");
    ok(d.wait(&a, secs(5)), "wait on the default stream");
    sync_ok(&d, "the default stream still works");
    drop(d);
    let e = ok(d1.default_stream(), "default_stream of device 1");
    assert_eq!(e.device().id(), DeviceId(1), "default stream of device 1");
    sync_ok(&e, "synchronize device 1's default stream");
    drop(e);
    destroy(a, "destroy");
}

/// R2: tasks enqueued on a stream still run when it is destroyed.
pub fn r2_destroyed_stream_finishes_tasks<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let (a, c) = (create(&d0, "a"), create(&d0, "c"));
    let (s1, s2) = (stream(&d0, "s1"), stream(&d0, "s2"));
    ok(s1.wait(&c, secs(3)), "s1: wait c");
    ok(s1.record(&a), "s1: record a");
    ok(s2.record(&c), "s2: record c");
    ok(s1.destroy(), "destroy s1 with tasks pending");
    ok(s2.wait(&a, secs(5)), "s2: wait a");
    sync_ok(&s2, "the record enqueued on the destroyed stream ran");
    drop(s2);
    destroy_all(vec![a, c], "destroy");
}

// ---------------------------------------------------------------------------------------------
// R3 — Timeout
// ---------------------------------------------------------------------------------------------

/// R3: the timeout is in seconds; an expired wait does not fail at enqueue but at the next
/// synchronize, with 107019. (R1: a new notify's flag is clear.)
pub fn r3_wait_timeout_reported_at_sync<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let a = create(&d0, "create");
    let s = stream(&d0, "create_stream");
    let t = Instant::now();
    ok(s.wait(&a, secs(1)), "enqueue a 1 s wait on a new notify");
    assert_code(
        s.synchronize(),
        AclError::RT_WAIT_TIMEOUT,
        "the expired wait",
    );
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "a 1 s wait expired after {took:?} (the timeout is in seconds)"
    );
    assert!(
        took < Duration::from_secs(10),
        "a 1 s wait expired after {took:?}"
    );
    drop(s);
    destroy(a, "destroy");
}

/// R3: an expired wait leaves the flag as it was (clear: it sets nothing) and the stream goes
/// on with its next task; a later record is not lost.
pub fn r3_timeout_leaves_flag_and_stream_goes_on<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let (a, c) = (create(&d0, "a"), create(&d0, "c"));
    let (s1, s2) = (stream(&d0, "s1"), stream(&d0, "s2"));
    ok(s1.wait(&a, secs(1)), "s1: wait a (expires)");
    ok(s1.record(&c), "s1: record c after it");
    assert_code(
        s1.synchronize(),
        AclError::RT_WAIT_TIMEOUT,
        "the expired wait",
    );
    ok(s2.wait(&c, secs(5)), "s2: wait c");
    sync_ok(&s2, "the task after the expired wait ran");
    ok(s1.wait(&a, secs(1)), "s1: wait a again");
    assert_code(
        s1.synchronize(),
        AclError::RT_WAIT_TIMEOUT,
        "the expired wait must not have set the flag",
    );
    ok(s2.record(&a), "record a after the timeouts");
    sync_ok(&s2, "synchronize the record");
    ok(s1.wait(&a, secs(5)), "wait a");
    sync_ok(&s1, "the notify works after timeouts");
    drop((s1, s2));
    destroy_all(vec![a, c], "destroy");
}

/// R3: a wait forever (the C API's timeout 0, [`Timeout::FOREVER`]) is still pending after
/// more than a second, until a record releases it; a zero *duration* is not forever (the C call
/// gets 1 s) and expires.
pub fn r3_zero_timeout_waits_forever<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let a = create(&d0, "create");
    let (s1, s2, s3) = (stream(&d0, "s1"), stream(&d0, "s2"), stream(&d0, "s3"));
    ok(s1.wait(&a, Timeout::FOREVER), "enqueue a wait forever");
    let early = s1.synchronize_timeout(Some(Duration::from_millis(1500)));
    // Release the wait whatever happened, so a failure below cannot hang the caller.
    ok(s2.record(&a), "record");
    sync_ok(&s2, "synchronize the record");
    let done = s1.synchronize_timeout(Some(Duration::from_secs(5)));
    if matches!(&done, Err(e) if e.code() == AclError::RT_STREAM_SYNC_TIMEOUT) {
        // The stream is stuck on a wait that never ends: do not run its destructor.
        std::mem::forget(s1);
        std::mem::forget(a);
        panic!("a record did not release a wait forever");
    }
    assert_code(
        early,
        AclError::RT_STREAM_SYNC_TIMEOUT,
        "a wait forever must still be pending after 1.5 s",
    );
    ok(done, "the record released the wait forever");

    ok(
        s3.wait(&a, Duration::ZERO),
        "enqueue a wait of zero seconds",
    );
    let zero = s3.synchronize_timeout(Some(Duration::from_secs(5)));
    if matches!(&zero, Err(e) if e.code() == AclError::RT_STREAM_SYNC_TIMEOUT) {
        ok(s2.record(&a), "release the stuck wait");
        sync_ok(&s3, "the released wait");
        panic!("a wait of Duration::ZERO waited like a wait forever");
    }
    assert_code(
        zero,
        AclError::RT_WAIT_TIMEOUT,
        "a wait of Duration::ZERO expires",
    );
    drop((s1, s2, s3));
    destroy(a, "destroy");
}

// ---------------------------------------------------------------------------------------------
// R4 — Who may wait
// ---------------------------------------------------------------------------------------------

/// R4: the creator's wait must be on a stream of the notify's device; a stream of another
/// device fails at enqueue with 107000. Any holder may record, on a stream of any device.
pub fn r4_wait_on_other_device_stream<B: Backend>(rt: &B::Runtime) {
    let (d0, d1) = two_devices(rt);
    let a = create(&d0, "create on device 0");
    let s1 = stream(&d1, "stream on device 1");
    assert_code(
        s1.wait(&a, secs(1)),
        AclError::RT_PARAM_INVALID,
        "wait on a stream of device 1 for a notify of device 0",
    );
    sync_ok(&s1, "the refused wait enqueued nothing");
    let s0 = stream(&d0, "stream on device 0");
    ok(s0.record(&a), "record");
    ok(s0.wait(&a, secs(5)), "wait on the notify's own device");
    sync_ok(&s0, "the same wait works on device 0");
    ok(s1.record(&a), "record on a stream of device 1");
    sync_ok(&s1, "synchronize the record on device 1");
    ok(s0.wait(&a, secs(5)), "wait for the record made on device 1");
    sync_ok(&s0, "a record on another device's stream sets the flag");
    drop((s0, s1));
    destroy(a, "destroy");
}

/// R4: only the creator may wait: an importer's wait fails at enqueue with 107000 (on the
/// notify's device and on another one), while its record works.
pub fn r4_importer_cannot_wait<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    let (a, key, s) = exported_on_device_0(rt, ExportFlags::DISABLE_PID_VALIDATION);
    let mut peer = Remote::on_device(spawner, "importer", 0);
    peer.ok(&import_line(ImportFlags::DEFAULT, &key));
    peer.err("wait 1", AclError::RT_PARAM_INVALID);
    peer.ok("record");
    peer.ok("sync");
    ok(s.wait(&a, secs(5)), "creator's wait");
    sync_ok(&s, "the importer's record reached the creator");
    peer.ok("dev 1");
    peer.err("wait 1", AclError::RT_PARAM_INVALID);
    peer.exit();
    drop(s);
    destroy(a, "destroy");
}

// ---------------------------------------------------------------------------------------------
// R5 — Export
// ---------------------------------------------------------------------------------------------

/// R5: a notify is exported once: the second export fails with 507000 whatever its flags, and
/// changes nothing (the first export's mode stays).
pub fn r5_export_once<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let (a, c) = (create(&d0, "a"), create(&d0, "c"));
    ok(a.export(ExportFlags::DEFAULT), "export a");
    assert_code(
        a.export(ExportFlags::DEFAULT),
        AclError::RT_INTERNAL_ERROR,
        "export a again",
    );
    assert_code(
        a.export(ExportFlags::DISABLE_PID_VALIDATION),
        AclError::RT_INTERNAL_ERROR,
        "export a again with DISABLE_PID_VALIDATION",
    );
    ok(c.export(ExportFlags::DISABLE_PID_VALIDATION), "export c");
    assert_code(
        c.export(ExportFlags::DEFAULT),
        AclError::RT_INTERNAL_ERROR,
        "export c again",
    );
    let pid = fake_pids(1_000_000, 1)[0];
    ok(
        a.set_import_pid(pid),
        "a is still a DEFAULT export: it takes a whitelist",
    );
    assert_code(
        c.set_import_pid(pid),
        AclError::RT_NO_PERMISSION,
        "c is still a DISABLE_PID_VALIDATION export",
    );
    destroy_all(vec![a, c], "destroy");
}

/// R5: a key is 1..=64 printable ASCII characters, NUL-terminated in a 65-byte buffer, and
/// different notifies (on any device, with any flags) get different keys.
pub fn r5_key_format<B: Backend>(rt: &B::Runtime) {
    let (d0, d1) = two_devices(rt);
    let (a, c) = (create(&d0, "a"), create(&d0, "c"));
    let d = create(&d1, "d on device 1");
    let keys = [
        ok(a.export(ExportFlags::DEFAULT), "export a"),
        ok(c.export(ExportFlags::DISABLE_PID_VALIDATION), "export c"),
        ok(d.export(ExportFlags::DEFAULT), "export d"),
    ];
    for key in &keys {
        assert_key_shape(key, "export key");
    }
    assert_ne!(keys[0], keys[1], "two notifies got the same key");
    assert_ne!(keys[0], keys[2], "two notifies got the same key");
    assert_ne!(keys[1], keys[2], "two notifies got the same key");
    destroy_all(vec![a, c, d], "destroy");
}

/// R5: a key carries a generation: after its notify is destroyed, a new notify in the same
/// slot (forced by filling the device) gets another key, and the old key does not resolve to
/// it (507899, not 507000 "already held").
pub fn r5_key_never_resolves_to_reused_slot<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let a = create(&d0, "create");
    let old = ok(a.export(ExportFlags::DISABLE_PID_VALIDATION), "export");
    let fillers = fill(&d0, "fill device 0");
    destroy(
        a,
        "destroy the exported notify: its slot is the only free one",
    );
    let reuse = create(&d0, "create into the freed slot");
    let new = ok(
        reuse.export(ExportFlags::DISABLE_PID_VALIDATION),
        "export the new notify",
    );
    assert_key_shape(&new, "key of the new notify");
    assert_ne!(old, new, "a reused slot gave the same key");
    assert_code(
        d0.import_notify(&old, ImportFlags::DEFAULT),
        AclError::RT_DRV_INTERNAL_ERROR,
        "the old key after its slot was reused",
    );
    assert_code(
        d0.import_notify(&new, ImportFlags::DEFAULT),
        AclError::RT_INTERNAL_ERROR,
        "the new key resolves (to a notify this process holds)",
    );
    destroy(reuse, "destroy");
    destroy_all(fillers, "destroy fillers");
}

/// R5: only the creating process may export: an importer's export fails with 507000 (whatever
/// the flags; the runtime refuses to export a notify that already is an IPC notify), while it
/// can still export a notify of its own.
pub fn r5_export_only_by_creator<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    let d0 = dev(rt, 0);
    let a = create(&d0, "create");
    let key = ok(a.export(ExportFlags::DEFAULT), "export");
    let mut peer = Remote::on_device(spawner, "importer", 0);
    let pid = peer.pid();
    ok(a.set_import_pid(pid), "whitelist the importer");
    peer.ok(&import_line(ImportFlags::DEFAULT, &key));
    // Contract: R5 was revised: the export of an imported handle is refused with 507000 (it
    // was 207006, "no permission").
    peer.err("export 0", AclError::RT_INTERNAL_ERROR);
    peer.err("export 2", AclError::RT_INTERNAL_ERROR);
    // The importer can still create and export a notify of its own.
    peer.ok("create");
    let own = peer.export(ExportFlags::DISABLE_PID_VALIDATION);
    assert_key_shape(&own, "the importer's own key");
    peer.exit();
    destroy(a, "destroy");
}

// ---------------------------------------------------------------------------------------------
// R6 — Whitelist
// ---------------------------------------------------------------------------------------------

/// R6: `set_import_pid` before export fails with 107000; after a DEFAULT export it works; a
/// negative pid is 107000 (sim, and the typed API's documented answer).
///
/// C ABI: `num == 0`, and two pids in one call after export (now 107000: one pid per call),
/// are in `ascendcl-sim/tests/contexts.rs`.
pub fn r6_whitelist_before_export<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let a = create(&d0, "create");
    let pids = fake_pids(1_000_000, 2);
    for &p in &pids {
        assert_code(
            a.set_import_pid(p),
            AclError::RT_PARAM_INVALID,
            "set_import_pid before export",
        );
    }
    ok(a.export(ExportFlags::DEFAULT), "export");
    whitelist(&a, &pids, "set_import_pid after export");
    for bad in [-1, i32::MIN] {
        assert_code(
            a.set_import_pid(Pid(bad)),
            AclError::RT_PARAM_INVALID,
            &format!("set_import_pid({bad})"),
        );
    }
    destroy(a, "destroy");
}

/// R6: a whitelist on a notify exported with DISABLE_PID_VALIDATION fails with 207006.
pub fn r6_whitelist_on_disable_export<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let a = create(&d0, "create");
    ok(a.export(ExportFlags::DISABLE_PID_VALIDATION), "export");
    let me = ok(rt.bare_tgid(), "bare_tgid");
    assert_code(
        a.set_import_pid(fake_pids(1_000_000, 1)[0]),
        AclError::RT_NO_PERMISSION,
        "whitelist on a DISABLE_PID_VALIDATION export",
    );
    assert_code(
        a.set_import_pid(me),
        AclError::RT_NO_PERMISSION,
        "own pid on a DISABLE_PID_VALIDATION export",
    );
    destroy(a, "destroy");
}

/// R6: a whitelist has 16 entries, the creator's being the first, so it holds 15 importers; a
/// 16th fails with 507899 and changes nothing. Setting a present pid again, pid 0 and the
/// creator's own bare tgid use no entry, even on a full whitelist; a bad argument (a negative
/// pid) is reported before the full whitelist (R15).
pub fn r6_whitelist_holds_15_importers<B: Backend>(rt: &B::Runtime) {
    assert_eq!(WHITELIST_IMPORTERS, 15);
    let d0 = dev(rt, 0);
    let a = create(&d0, "create");
    ok(a.export(ExportFlags::DEFAULT), "export");
    let me = ok(rt.bare_tgid(), "bare_tgid");
    let p = fake_pids(2_000_000, WHITELIST_IMPORTERS + 2);
    let (fit, over) = p.split_at(WHITELIST_IMPORTERS);
    whitelist(&a, fit, "15 importers");
    // Contract: R6 was revised: the whitelist holds 15 importers (it held 64) and one more is
    // refused with 507899 (it was 107000, for the call that would pass 64 pids).
    assert_code(
        a.set_import_pid(over[0]),
        AclError::RT_DRV_INTERNAL_ERROR,
        "a 16th importer",
    );
    assert_code(
        a.set_import_pid(over[0]),
        AclError::RT_DRV_INTERNAL_ERROR,
        "the refused pid was not added (so it is still a 16th)",
    );
    assert_code(
        a.set_import_pid(over[1]),
        AclError::RT_DRV_INTERNAL_ERROR,
        "another 16th importer",
    );
    whitelist(&a, fit, "pids already present on a full whitelist");
    ok(a.set_import_pid(Pid(0)), "pid 0 on a full whitelist");
    ok(a.set_import_pid(me), "own bare tgid on a full whitelist");
    assert_code(
        a.set_import_pid(Pid(-1)),
        AclError::RT_PARAM_INVALID,
        "a negative pid on a full whitelist (bad argument before the full whitelist)",
    );
    destroy(a, "destroy");
}

/// R6: calls are cumulative; a pid already present refreshes its entry and uses no new one,
/// and pid 0 and the creator's own bare tgid are accepted and ignored: with 0, the own tgid and
/// 2 distinct pids given 5 times, 13 new ones fill the 15 importer entries exactly.
pub fn r6_whitelist_cumulative_and_idempotent<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let a = create(&d0, "create");
    ok(a.export(ExportFlags::DEFAULT), "export");
    let me = ok(rt.bare_tgid(), "bare_tgid");
    let p = fake_pids(3_000_000, WHITELIST_IMPORTERS + 1);
    // Contract: R6 was revised: pid 0 is accepted and ignored (the C table refused it with
    // 107000), and one pid per call (p0, p0, p1 were one call).
    ok(a.set_import_pid(Pid(0)), "pid 0: accepted and ignored");
    ok(a.set_import_pid(me), "own bare tgid: accepted and ignored");
    ok(a.set_import_pid(p[0]), "p0");
    ok(a.set_import_pid(p[1]), "p1");
    ok(a.set_import_pid(p[0]), "p0 again");
    ok(a.set_import_pid(p[0]), "p0 once more");
    ok(a.set_import_pid(p[0]), "p0 a fourth time");
    ok(a.set_import_pid(p[1]), "p1 again");
    whitelist(
        &a,
        &p[2..WHITELIST_IMPORTERS],
        "13 new pids (15 distinct in all)",
    );
    // Cumulative: the first calls still count, so the whitelist is full now.
    assert_code(
        a.set_import_pid(p[WHITELIST_IMPORTERS]),
        AclError::RT_DRV_INTERNAL_ERROR,
        "a 16th distinct pid (earlier calls were kept, duplicates counted once, 0 and the own \
         tgid not at all)",
    );
    whitelist(&a, &p[0..2], "present pids on a full whitelist");
    destroy(a, "destroy");
}

/// R6, R7, R16: the documented flow (the `"importer"` role): the importer sends its bare tgid,
/// the creator whitelists it, and the importer (device 1) imports and records; its record
/// releases the creator's wait. With the simulator (in the host's PID namespace) the bare tgid
/// is the OS pid.
pub fn r6_whitelist_by_bare_tgid<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    let (a, key, s) = exported_on_device_0(rt, ExportFlags::DEFAULT);
    let mut peer = spawner.spawn(ROLE_IMPORTER);
    let line = peer.recv();
    let pid: Pid = match line.trim_end().strip_prefix("pid ") {
        Some(text) => Pid(text
            .parse()
            .unwrap_or_else(|_| panic!("importer: bad pid line {line:?}"))),
        None => panic!("importer: expected `pid <n>`, got {line:?}"),
    };
    if rt.kind() == BackendKind::Sim {
        assert_eq!(pid, peer.pid(), "the simulator's bare tgid is the OS pid");
    }
    ok(a.set_import_pid(pid), "whitelist the importer's bare tgid");
    ok(s.wait(&a, secs(5)), "creator's wait");
    peer.send(&format!("key {}", hex_encode(key.as_str())));
    let line = peer.recv();
    assert_eq!(line.trim_end(), "ok", "importer: import");
    peer.send("go");
    let line = peer.recv();
    assert_eq!(line.trim_end(), "ok", "importer: record and synchronize");
    sync_ok(&s, "the importer's record released the wait");
    peer.send("done");
    let line = peer.recv();
    assert_eq!(line.trim_end(), "ok", "importer: destroy");
    assert_eq!(peer.wait(), 0, "importer exit code");
    drop(s);
    destroy(a, "destroy");
}

/// R6: only the creating process may set the whitelist: 507899 in an importer (the driver
/// answers EINVAL), a bad argument (a negative pid) before that (R15).
///
/// C ABI: the importer's call with three pids at once (now 107000: the count is a bad
/// argument, checked before permission) is in `ascendcl-sim/tests/contexts.rs`.
pub fn r6_whitelist_only_by_creator<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    let d0 = dev(rt, 0);
    let a = create(&d0, "create");
    let key = ok(a.export(ExportFlags::DEFAULT), "export");
    let mut peer = Remote::on_device(spawner, "importer", 0);
    let pid = peer.pid();
    ok(a.set_import_pid(pid), "whitelist the importer");
    peer.ok(&import_line(ImportFlags::DEFAULT, &key));
    // Contract: R6 was revised: a non-creator's set-pid is 507899 (it was 207006).
    peer.err(&setpid_line(pid), AclError::RT_DRV_INTERNAL_ERROR);
    for p in fake_pids(1_000_000, 3) {
        peer.err(&setpid_line(p), AclError::RT_DRV_INTERNAL_ERROR);
    }
    peer.err(&setpid_line(Pid(-1)), AclError::RT_PARAM_INVALID);
    peer.exit();
    destroy(a, "destroy");
}

/// R6, R7: with DISABLE_PID_VALIDATION any process imports without a whitelist.
pub fn r6_disable_pid_validation_any_process<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    let (a, key, s) = exported_on_device_0(rt, ExportFlags::DISABLE_PID_VALIDATION);
    let mut peer = Remote::on_device(spawner, "importer", 0);
    peer.ok(&import_line(ImportFlags::DEFAULT, &key));
    peer.ok("record");
    peer.ok("sync");
    ok(s.wait(&a, secs(5)), "wait");
    sync_ok(&s, "the unlisted importer's record arrived");
    peer.exit();
    drop(s);
    destroy(a, "destroy");
}

/// R6, R7: setting a pid again refreshes its entry's time: an importer that started after its
/// entry was set is refused (507899), and admitted once the creator sets its pid again after
/// it started.
///
/// The peer runs with [`ENV_START_OFFSET`] = 4, so it counts as started 4 s after it really
/// did. The refusal is asserted only when the entry was set less than 2.5 s after the spawn
/// began (otherwise the machine was too slow to tell, and the check says so); the refresh
/// comes 5.5 s after the peer answered its first command, when it has certainly started.
pub fn r6_set_again_refreshes_entry<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    const OFFSET: Duration = Duration::from_secs(4);
    const MARGIN: Duration = Duration::from_millis(1500);
    // Contract: new with the revised R6 and R7: setting a pid again refreshes its entry's time,
    // which R7's pid-reuse guard compares with the importer's start.
    let (a, key, s) = exported_on_device_0(rt, ExportFlags::DEFAULT);
    let line = import_line(ImportFlags::DEFAULT, &key);
    let spawned = Instant::now();
    let mut peer = Remote::spawn_with_env(
        spawner,
        "importer counted as started 4 s late",
        &[(ENV_START_OFFSET, "4")],
    );
    peer.ok("dev 0");
    let pid = peer.pid();
    // The peer started (and attached) before it answered.
    let started_by = Instant::now();
    ok(a.set_import_pid(pid), "whitelist the importer");
    let set_after = spawned.elapsed();
    if set_after + MARGIN < OFFSET {
        peer.err(&line, AclError::RT_DRV_INTERNAL_ERROR);
    } else {
        println!(
            "r6_set_again_refreshes_entry: the entry was set {set_after:?} after the spawn, too \
             late to check that an importer started after it is refused"
        );
    }
    std::thread::sleep((started_by + OFFSET + MARGIN).saturating_duration_since(Instant::now()));
    ok(
        a.set_import_pid(pid),
        "set the same pid again: refreshes its entry's time",
    );
    peer.ok(&line);
    peer.ok("record");
    peer.ok("sync");
    ok(s.wait(&a, secs(5)), "wait");
    sync_ok(&s, "the importer admitted after the refresh recorded");
    peer.exit();
    drop(s);
    destroy(a, "destroy");
}

// ---------------------------------------------------------------------------------------------
// R7 — Import
// ---------------------------------------------------------------------------------------------

/// R7: a key that is not in the backend's format fails with 107000, whatever the import flags.
pub fn r7_import_malformed_key<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    for text in ["not-a-key", " ", &"z".repeat(64)] {
        let key = ExportKey::new(text).expect("valid ExportKey");
        for flags in [ImportFlags::DEFAULT, ImportFlags::ENABLE_PEER_ACCESS] {
            assert_code(
                d0.import_notify(&key, flags),
                AclError::RT_PARAM_INVALID,
                &format!("import of {key:?} with {flags:?}"),
            );
        }
    }
}

/// R7, R8: a well-formed key that is revoked (its creator destroyed the notify) fails with
/// 507899; keys changed in one letter or digit never resolve (107000 or 507899, never success
/// and never 507000 "already held").
pub fn r7_import_unknown_key<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let a = create(&d0, "a");
    let revoked = ok(a.export(ExportFlags::DISABLE_PID_VALIDATION), "export a");
    destroy(a, "destroy a");
    assert_code(
        d0.import_notify(&revoked, ImportFlags::DEFAULT),
        AclError::RT_DRV_INTERNAL_ERROR,
        "import of a revoked key",
    );
    let live = create(&d0, "live");
    let key = ok(
        live.export(ExportFlags::DISABLE_PID_VALIDATION),
        "export live",
    );
    for variant in &mutations(&key) {
        assert_code_in(
            d0.import_notify(variant, ImportFlags::DEFAULT),
            &[AclError::RT_PARAM_INVALID, AclError::RT_DRV_INTERNAL_ERROR],
            &format!("import of {variant:?}, a one-character change of {key:?}"),
        );
    }
    destroy(live, "destroy live");
}

/// R7: a process holds at most one handle per notify: importing a notify it created fails with
/// 507000, whatever the export flags (whitelisted or not).
pub fn r7_import_own_notify<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let (a, c) = (create(&d0, "a"), create(&d0, "c"));
    let ka = ok(a.export(ExportFlags::DISABLE_PID_VALIDATION), "export a");
    let kc = ok(c.export(ExportFlags::DEFAULT), "export c");
    ok(
        c.set_import_pid(ok(rt.bare_tgid(), "bare_tgid")),
        "whitelist self (accepted and ignored)",
    );
    for (key, name) in [(&ka, "a"), (&kc, "c")] {
        for flags in [ImportFlags::DEFAULT, ImportFlags::ENABLE_PEER_ACCESS] {
            assert_code(
                d0.import_notify(key, flags),
                AclError::RT_INTERNAL_ERROR,
                &format!("import own notify {name} with {flags:?}"),
            );
        }
    }
    destroy_all(vec![a, c], "destroy");
}

/// R7: `can_access_peer` and `enable_peer_access` codes: distinct valid devices can be asked
/// about (the simulator answers `true`); the same device is 107000, a bad id 107001; enabling
/// needs a peer other than the device itself (107000) and a valid one (107001), and enabling
/// twice is a no-op.
///
/// C ABI: enabling without a current context (107002) and with `flags == 1` (107000) are in
/// `ascendcl-sim/tests/contexts.rs`.
pub fn r7_peer_access_calls<B: Backend>(rt: &B::Runtime) {
    let count = ok(rt.device_count(), "device_count") as i32;
    let can = ok(
        rt.can_access_peer(DeviceId(0), DeviceId(1)),
        "can_access_peer(0, 1)",
    );
    if rt.kind() == BackendKind::Sim {
        assert!(can, "the simulator answers true for two distinct devices");
    }
    assert_code(
        rt.can_access_peer(DeviceId(0), DeviceId(0)),
        AclError::RT_PARAM_INVALID,
        "can_access_peer(0, 0)",
    );
    for (d, p) in [(0, count), (count, 0), (-1, 0)] {
        assert_code(
            rt.can_access_peer(DeviceId(d), DeviceId(p)),
            AclError::RT_INVALID_DEVICEID,
            &format!("can_access_peer({d}, {p})"),
        );
    }
    let d0 = dev(rt, 0);
    assert_code(
        d0.enable_peer_access(DeviceId(0)),
        AclError::RT_PARAM_INVALID,
        "enable_peer_access to the device itself",
    );
    for bad in [count, -1] {
        assert_code(
            d0.enable_peer_access(DeviceId(bad)),
            AclError::RT_INVALID_DEVICEID,
            &format!("enable_peer_access to device {bad}"),
        );
    }
    ok(d0.enable_peer_access(DeviceId(1)), "enable_peer_access(1)");
    ok(
        d0.enable_peer_access(DeviceId(1)),
        "enable_peer_access(1) again",
    );
}

/// R7: if the export used flag 0x0, a caller not on the whitelist is refused with 507899: with
/// the whitelist empty (as it starts) and with other pids on it.
pub fn r7_import_not_whitelisted<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    let d0 = dev(rt, 0);
    let a = create(&d0, "create");
    let key = ok(a.export(ExportFlags::DEFAULT), "export");
    let mut peer = Remote::on_device(spawner, "unlisted importer", 0);
    let line = import_line(ImportFlags::DEFAULT, &key);
    peer.err(&line, AclError::RT_DRV_INTERNAL_ERROR);
    let me = ok(rt.bare_tgid(), "bare_tgid");
    let mut others = fake_pids(1_000_000, 3);
    others.push(me);
    let child = peer.pid();
    others.retain(|p| *p != child);
    whitelist(&a, &others, "whitelist other pids");
    peer.err(&line, AclError::RT_DRV_INTERNAL_ERROR);
    peer.exit();
    destroy(a, "destroy");
}

/// R7: the whitelist is checked at the moment of import: refused before the importer's pid is
/// added, accepted after (added by a later, cumulative call).
pub fn r7_whitelist_checked_at_import<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    let (a, key, s) = exported_on_device_0(rt, ExportFlags::DEFAULT);
    let mut peer = Remote::on_device(spawner, "importer", 0);
    let line = import_line(ImportFlags::DEFAULT, &key);
    peer.err(&line, AclError::RT_DRV_INTERNAL_ERROR);
    let pid = peer.pid();
    ok(a.set_import_pid(pid), "whitelist the importer after export");
    whitelist(&a, &fake_pids(1_000_000, 2), "a later call adds others");
    peer.ok(&line);
    peer.ok("record");
    peer.ok("sync");
    ok(s.wait(&a, secs(5)), "wait");
    sync_ok(&s, "the importer's record arrived");
    peer.exit();
    drop(s);
    destroy(a, "destroy");
}

/// R7: an importer that started after its whitelist entry was set is refused with 507899 (the
/// driver's guard against a reused pid), however often its pid is set before it started; an
/// importer that started before its entry was set imports.
///
/// The late importer runs with [`ENV_START_OFFSET`] = 3600: it counts as started an hour after
/// it really did, so every entry set during the check predates it.
pub fn r7_importer_started_after_entry<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    let (a, key, s) = exported_on_device_0(rt, ExportFlags::DEFAULT);
    let line = import_line(ImportFlags::DEFAULT, &key);
    // Contract: new with the revised R7: the driver's guard against a reused pid.
    let mut late = Remote::spawn_with_env(
        spawner,
        "importer counted as started an hour late",
        &[(ENV_START_OFFSET, "3600")],
    );
    late.ok("dev 0");
    let pid = late.pid();
    ok(a.set_import_pid(pid), "whitelist the late importer");
    late.err(&line, AclError::RT_DRV_INTERNAL_ERROR);
    ok(
        a.set_import_pid(pid),
        "set its pid again (still before it started)",
    );
    late.err(&line, AclError::RT_DRV_INTERNAL_ERROR);

    let mut on_time = Remote::on_device(spawner, "importer", 0);
    let pid = on_time.pid();
    ok(a.set_import_pid(pid), "whitelist the importer");
    on_time.ok(&line);
    on_time.ok("record");
    on_time.ok("sync");
    ok(s.wait(&a, secs(5)), "wait");
    sync_ok(&s, "the importer that started before its entry recorded");
    late.exit();
    on_time.exit();
    drop(s);
    destroy(a, "destroy");
}

/// R7, R15, R16: with DISABLE_PID_VALIDATION an import adds the importer to the whitelist
/// itself, so at most 15 distinct processes import one notify: the 16th gets 507899. "Already
/// held" (507000) is reported before the full whitelist, for the creator and for an importer; a
/// process already on the whitelist imports again after destroying its handle. The 15 live
/// importers have distinct bare tgids.
pub fn r7_disable_import_takes_a_whitelist_entry<B: Backend>(
    rt: &B::Runtime,
    spawner: &dyn Spawner,
) {
    let (a, key, s) = exported_on_device_0(rt, ExportFlags::DISABLE_PID_VALIDATION);
    let d0 = dev(rt, 0);
    let line = import_line(ImportFlags::DEFAULT, &key);
    let me = ok(rt.bare_tgid(), "bare_tgid");
    let mut pids = vec![me];
    let mut peers: Vec<Remote> = (0..WHITELIST_IMPORTERS)
        .map(|i| {
            let mut peer = Remote::on_device(spawner, &format!("importer #{i}"), 0);
            peer.ok(&line);
            pids.push(peer.pid());
            peer
        })
        .collect();
    let mut distinct = pids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        pids.len(),
        "live processes share a bare tgid: {pids:?}"
    );
    assert_code(
        d0.import_notify(&key, ImportFlags::DEFAULT),
        AclError::RT_INTERNAL_ERROR,
        "the creator imports its own notify (already held before the full whitelist)",
    );
    peers[0].err(&line, AclError::RT_INTERNAL_ERROR);
    // Contract: new with the revised R7: a DISABLE_PID_VALIDATION import takes a whitelist
    // entry, so a 16th process is refused (the old contract let any number import).
    let mut extra = Remote::on_device(spawner, "a 16th importer", 0);
    extra.err(&line, AclError::RT_DRV_INTERNAL_ERROR);
    let last = peers.last_mut().expect("15 importers");
    last.ok("destroy");
    last.ok(&line);
    last.ok("record");
    last.ok("sync");
    ok(s.wait(&a, secs(5)), "wait");
    sync_ok(&s, "the notify works with a full whitelist");
    extra.exit();
    for peer in peers {
        peer.exit();
    }
    drop(s);
    destroy(a, "destroy");
}

/// R7: with import flag 0x0 a notify on another device needs peer access from the importing
/// device to it (507899 without); access is per pair (0 → 1 does not give 1 → 0) and per
/// process; enabling it to the device itself is 107000, twice is a no-op; import flag 0x2
/// enables it by itself. The imported handle belongs to the importing device.
pub fn r7_peer_access<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    let d0 = dev(rt, 0);
    let a = create(&d0, "create on device 0");
    let key = ok(a.export(ExportFlags::DISABLE_PID_VALIDATION), "export");
    let s = stream(&d0, "create_stream");
    let plain = import_line(ImportFlags::DEFAULT, &key);

    let mut first = Remote::on_device(spawner, "first importer", 0);
    first.ok("peer 1");
    first.ok("dev 1");
    first.err(&plain, AclError::RT_DRV_INTERNAL_ERROR);
    first.err("peer 1", AclError::RT_PARAM_INVALID);
    first.ok("peer 0");
    first.ok("peer 0");
    first.ok(&plain);
    assert_eq!(first.ok("ndev"), "1", "the handle imported on device 1");
    first.ok("record");
    first.ok("sync");
    ok(s.wait(&a, secs(5)), "wait for the first importer");
    sync_ok(&s, "record from device 1 after enabling peer access");

    let mut second = Remote::on_device(spawner, "second importer", 1);
    second.err(&plain, AclError::RT_DRV_INTERNAL_ERROR);
    second.ok(&import_line(ImportFlags::ENABLE_PEER_ACCESS, &key));
    second.ok("record");
    second.ok("sync");
    ok(s.wait(&a, secs(5)), "wait for the second importer");
    sync_ok(
        &s,
        "record from device 1 after an ENABLE_PEER_ACCESS import",
    );

    first.exit();
    second.exit();
    drop(s);
    destroy(a, "destroy");
}

// ---------------------------------------------------------------------------------------------
// R8 — Lifetime and reference count
// ---------------------------------------------------------------------------------------------

/// R8: when the creator destroys, the key is revoked: a later import fails with 507899 (for
/// both export modes).
pub fn r8_creator_destroy_revokes_key<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let (a, c) = (create(&d0, "a"), create(&d0, "c"));
    let ka = ok(a.export(ExportFlags::DISABLE_PID_VALIDATION), "export a");
    let kc = ok(c.export(ExportFlags::DEFAULT), "export c");
    ok(
        c.set_import_pid(ok(rt.bare_tgid(), "bare_tgid")),
        "whitelist self",
    );
    destroy_all(vec![a, c], "destroy");
    for key in [&ka, &kc] {
        assert_code(
            d0.import_notify(key, ImportFlags::DEFAULT),
            AclError::RT_DRV_INTERNAL_ERROR,
            &format!("import of {key:?} after its creator destroyed it"),
        );
    }
}

/// R8: each enqueued task holds its own reference: destroying a handle with a record pending
/// does not free the slot (the device stays full) and the record still runs; the slot is freed
/// once it has.
pub fn r8_pending_task_keeps_reference<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let (a, gate) = (create(&d0, "a"), create(&d0, "gate"));
    let (s1, s2) = (stream(&d0, "s1"), stream(&d0, "s2"));
    let fillers = fill(&d0, "fill device 0");
    ok(s1.wait(&gate, secs(5)), "s1: wait for the gate");
    ok(s1.record(&a), "s1: record a, pending behind the gate");
    destroy(a, "destroy a with its record pending");
    assert_code(
        d0.create_notify(NotifyFlags::DEFAULT),
        AclError::RT_NO_NOTIFY_RESOURCE,
        "create while a pending task holds the destroyed notify's slot",
    );
    ok(s2.record(&gate), "open the gate");
    sync_ok(&s2, "synchronize s2");
    sync_ok(
        &s1,
        "the pending record ran on the destroyed handle's notify",
    );
    let again = ok(
        d0.create_notify(NotifyFlags::DEFAULT),
        "create once the last task released the slot",
    );
    drop((s1, s2));
    destroy_all(vec![again, gate], "destroy");
    destroy_all(fillers, "destroy fillers");
}

/// R8, R15: the creator's destroy revokes the key (507899 for anyone, including an importer
/// that already holds it: revoked comes before "already held"), while the importer keeps a
/// working notify: its record and synchronize succeed.
pub fn r8_creator_destroy_revokes_key_importers_keep_working<B: Backend>(
    rt: &B::Runtime,
    spawner: &dyn Spawner,
) {
    let d0 = dev(rt, 0);
    let a = create(&d0, "create");
    let id = ok(a.id(), "id");
    let key = ok(a.export(ExportFlags::DISABLE_PID_VALIDATION), "export");
    let line = import_line(ImportFlags::DEFAULT, &key);
    let mut peer = Remote::on_device(spawner, "importer", 0);
    peer.ok(&line);
    peer.err(&line, AclError::RT_INTERNAL_ERROR);
    destroy(a, "creator destroys");
    assert_code(
        d0.import_notify(&key, ImportFlags::DEFAULT),
        AclError::RT_DRV_INTERNAL_ERROR,
        "import of the revoked key in the former creator",
    );
    peer.err(&line, AclError::RT_DRV_INTERNAL_ERROR);
    peer.ok("record");
    peer.ok("sync");
    let seen = peer.ok("id");
    assert_eq!(
        seen,
        id.raw().to_string(),
        "the importer's id after the creator left"
    );
    peer.ok("reset");
    peer.ok("destroy");
    peer.exit();
}

/// R8: the slot is freed only when the last reference is gone: after the creator's destroy the
/// importer's handle keeps the device full; after the importer's destroy a create succeeds.
pub fn r8_slot_freed_after_last_reference<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    let d0 = dev(rt, 0);
    let a = create(&d0, "create");
    let key = ok(a.export(ExportFlags::DISABLE_PID_VALIDATION), "export");
    let mut peer = Remote::on_device(spawner, "importer", 0);
    peer.ok(&import_line(ImportFlags::DEFAULT, &key));
    let fillers = fill(&d0, "fill device 0");
    destroy(a, "creator destroys");
    assert_code(
        d0.create_notify(NotifyFlags::DEFAULT),
        AclError::RT_NO_NOTIFY_RESOURCE,
        "create while the importer still holds the notify",
    );
    peer.ok("destroy");
    let again = ok(
        d0.create_notify(NotifyFlags::DEFAULT),
        "create after the last holder destroyed",
    );
    peer.exit();
    destroy(again, "destroy");
    destroy_all(fillers, "destroy fillers");
}

// ---------------------------------------------------------------------------------------------
// R9 — Process death
// ---------------------------------------------------------------------------------------------

/// R9: an importer that exits without destroying its handle (it forgets it and returns) loses
/// its reference: the creator's notify keeps working, and once the creator destroys it the slot
/// is free again (a create on the full device succeeds).
pub fn r9_exit_holding_reference_is_released<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    let (a, key, s) = exported_on_device_0(rt, ExportFlags::DISABLE_PID_VALIDATION);
    let d0 = dev(rt, 0);
    let mut peer = Remote::on_device(spawner, "importer that leaves", 0);
    peer.ok(&import_line(ImportFlags::DEFAULT, &key));
    peer.ok("record");
    peer.ok("sync");
    peer.ok("forget");
    peer.exit();
    ok(
        s.wait(&a, secs(5)),
        "wait for the record of the departed importer",
    );
    sync_ok(&s, "a record survives its recorder's exit");
    ok(s.record(&a), "record");
    ok(s.wait(&a, secs(5)), "wait");
    sync_ok(&s, "the notify still works");
    drop(s);
    creator_destroy_frees_slot(
        &d0,
        a,
        "create after the creator destroyed (the departed importer held no reference)",
    );
}

/// R9: an importer that dies abruptly (abort, no cleanup at all) holding a reference is
/// reclaimed without its help: the creator's notify keeps working and, once destroyed, its slot
/// is reusable (a create on the full device reclaims before it reports 207009).
pub fn r9_killed_holder_is_reclaimed<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    let (a, key, s) = exported_on_device_0(rt, ExportFlags::DISABLE_PID_VALIDATION);
    let d0 = dev(rt, 0);
    let mut peer = Remote::on_device(spawner, "importer that dies", 0);
    peer.ok(&import_line(ImportFlags::DEFAULT, &key));
    peer.abort();
    ok(s.record(&a), "record after the importer died");
    ok(s.wait(&a, secs(5)), "wait");
    sync_ok(&s, "the notify works after an importer died");
    drop(s);
    creator_destroy_frees_slot(
        &d0,
        a,
        "create after the creator destroyed (the dead importer's reference was reclaimed)",
    );
}

/// R9, R8: when the creator dies abruptly, an importer's handle keeps working and keeps the slot;
/// the slot is freed when that last live holder destroys it.
pub fn r9_dead_creator_notify_freed_with_last_importer<B: Backend>(
    rt: &B::Runtime,
    spawner: &dyn Spawner,
) {
    let d0 = dev(rt, 0);
    let s = stream(&d0, "create_stream");
    let mut peer = Remote::on_device(spawner, "creator that dies", 0);
    peer.ok("create");
    let key = peer.export(ExportFlags::DISABLE_PID_VALIDATION);
    let imported = ok(
        d0.import_notify(&key, ImportFlags::DEFAULT),
        "import the peer's notify",
    );
    let fillers = fill(&d0, "fill device 0");
    peer.abort();
    ok(s.record(&imported), "record after the creator died");
    sync_ok(&s, "the importer's record works after the creator died");
    assert_code(
        d0.create_notify(NotifyFlags::DEFAULT),
        AclError::RT_NO_NOTIFY_RESOURCE,
        "create while this process still holds the dead creator's notify",
    );
    destroy(imported, "the last live holder destroys");
    let again = ok(
        d0.create_notify(NotifyFlags::DEFAULT),
        "create after the last live holder destroyed",
    );
    drop(s);
    destroy(again, "destroy");
    destroy_all(fillers, "destroy fillers");
}

/// R9: a death never records: a wait whose only other holder dies still runs to its timeout
/// (107019), even when the death is reclaimed meanwhile; the notify works afterwards.
pub fn r9_death_never_records<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    let (a, key, s) = exported_on_device_0(rt, ExportFlags::DISABLE_PID_VALIDATION);
    let d0 = dev(rt, 0);
    let mut peer = Remote::on_device(spawner, "importer that dies", 0);
    peer.ok(&import_line(ImportFlags::DEFAULT, &key));
    ok(s.wait(&a, secs(3)), "wait");
    peer.abort();
    // Any create reclaims the dead process (R9) while the wait is pending.
    let probe = create(&d0, "create (triggers reclamation)");
    destroy(probe, "destroy");
    assert_code(
        s.synchronize(),
        AclError::RT_WAIT_TIMEOUT,
        "the wait whose peer died must time out",
    );
    ok(s.record(&a), "record after reclamation");
    ok(s.wait(&a, secs(5)), "wait");
    sync_ok(&s, "the notify works after its importer was reclaimed");
    drop(s);
    destroy(a, "destroy");
}

// ---------------------------------------------------------------------------------------------
// R10 — Handles
// ---------------------------------------------------------------------------------------------

/// R10: notify ids are unique among the live notifies of a device and stable for a handle.
///
/// Bad handles (NULL, destroyed, foreign → 100000/107017) cannot be built with the typed API.
pub fn r10_notify_ids_unique<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let notifies: Vec<B::Notify> = (0..8)
        .map(|i| create(&d0, &format!("create #{i}")))
        .collect();
    let ids: Vec<_> = notifies.iter().map(|n| ok(n.id(), "id")).collect();
    for (i, id) in ids.iter().enumerate() {
        assert!(!ids[..i].contains(id), "id {id:?} given twice: {ids:?}");
        assert_eq!(ok(notifies[i].id(), "id again"), *id, "id changed");
    }
    ok(notifies[0].export(ExportFlags::DEFAULT), "export");
    assert_eq!(
        ok(notifies[0].id(), "id after export"),
        ids[0],
        "export changed the id"
    );
    destroy_all(notifies, "destroy");
}

/// R10: an importer sees the creator's id.
pub fn r10_importer_sees_creator_id<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    let d0 = dev(rt, 0);
    let other = create(&d0, "another notify, so ids are not trivially 0");
    let a = create(&d0, "create");
    let id = ok(a.id(), "id");
    let key = ok(a.export(ExportFlags::DISABLE_PID_VALIDATION), "export");
    let mut peer = Remote::on_device(spawner, "importer on device 1", 1);
    peer.ok(&import_line(ImportFlags::ENABLE_PEER_ACCESS, &key));
    assert_eq!(peer.ok("id"), id.raw().to_string(), "the importer's id");
    peer.exit();
    destroy_all(vec![a, other], "destroy");
}

// ---------------------------------------------------------------------------------------------
// R11 — Capacity
// ---------------------------------------------------------------------------------------------

/// R11: a device holds at most its capacity (≤ 8192) of live notifies; one more fails with
/// 207009 and changes nothing; a destroy frees a slot for reuse; capacity is per device.
pub fn r11_capacity<B: Backend>(rt: &B::Runtime) {
    let (d0, d1) = two_devices(rt);
    let mut held = fill(&d0, "fill device 0");
    let capacity = held.len();
    assert!(capacity >= 1, "device 0 holds no notify at all");
    assert!(
        capacity <= DEFAULT_CAPACITY as usize,
        "device 0 held {capacity} notifies, more than CANN's {DEFAULT_CAPACITY}"
    );
    assert_code(
        d0.create_notify(NotifyFlags::DEVICE_USE_ONLY),
        AclError::RT_NO_NOTIFY_RESOURCE,
        "create on a full device, again",
    );
    let other = ok(
        d1.create_notify(NotifyFlags::DEFAULT),
        "device 1 is not full when device 0 is",
    );
    destroy(other, "destroy on device 1");
    destroy(held.pop().expect("one notify"), "destroy one");
    held.push(ok(
        d0.create_notify(NotifyFlags::DEFAULT),
        "create into the freed slot",
    ));
    assert_code(
        d0.create_notify(NotifyFlags::DEFAULT),
        AclError::RT_NO_NOTIFY_RESOURCE,
        "full again",
    );
    let s = stream(&d0, "create_stream");
    let last = held.last().expect("one notify");
    ok(s.record(last), "record on the reused slot");
    ok(s.wait(last, secs(5)), "wait on the reused slot");
    sync_ok(&s, "the reused slot works");
    drop(s);
    destroy_all(held, "destroy");
}

// ---------------------------------------------------------------------------------------------
// R12 — Unsupported environments
// ---------------------------------------------------------------------------------------------

/// R12: in a virtualization instance export, import and set-import-pid fail with 207000 (R15:
/// before bad arguments and state), while a local notify still works.
///
/// Needs [`Capability::Virtualized`](super::Capability::Virtualized): a runtime configured as a
/// virtualization instance (the simulator with `virtualized(true)` or
/// `ASCEND_NOTIFY_SIM_VIRTUAL=1`).
///
/// C ABI: "import without a context (107002) before virtualization" and "an empty pid list
/// (`num == 0`) gets 207000" are in `ascendcl-sim/tests/contexts.rs`.
pub fn r12_virtualized<B: Backend>(rt: &B::Runtime) {
    let d0 = dev(rt, 0);
    let a = create(&d0, "create works");
    let s = stream(&d0, "create_stream");
    ok(s.record(&a), "record works");
    ok(s.wait(&a, secs(5)), "wait works");
    sync_ok(&s, "a local notify works");
    for flags in [ExportFlags::DEFAULT, ExportFlags::DISABLE_PID_VALIDATION] {
        assert_code(
            a.export(flags),
            AclError::RT_FEATURE_NOT_SUPPORT,
            &format!("export with {flags:?}"),
        );
    }
    assert_code(
        a.set_import_pid(fake_pids(1_000_000, 1)[0]),
        AclError::RT_FEATURE_NOT_SUPPORT,
        "set_import_pid (virtualization before the not-exported state)",
    );
    assert_code(
        a.set_import_pid(Pid(-1)),
        AclError::RT_FEATURE_NOT_SUPPORT,
        "set_import_pid of a negative pid (virtualization before the bad argument)",
    );
    for flags in [ImportFlags::DEFAULT, ImportFlags::ENABLE_PEER_ACCESS] {
        assert_code(
            d0.import_notify(&junk_key(), flags),
            AclError::RT_FEATURE_NOT_SUPPORT,
            "import (virtualization before the key format)",
        );
    }
    drop(s);
    destroy(a, "destroy");
}

// ---------------------------------------------------------------------------------------------
// R13 — Contexts, as device values
// ---------------------------------------------------------------------------------------------

/// R13, C1: device ids outside `0..count` fail with 107001; a stream and a notify are bound to
/// the device they were made from; a handle keeps its device alive after the device value (or
/// one of two values of the same device) is dropped; and any handle works from any thread
/// without a set-up call (every operation binds its own device).
///
/// C ABI: the per-thread current context (107002 without one, 107003 for a stream of another
/// context, `aclrtSetDevice`/`aclrtResetDevice` of a bad id, `aclrtGetDevice`) is tested in
/// `ascendcl-sim/tests/contexts.rs`.
pub fn r13_devices_are_values<B: Backend>(rt: &B::Runtime) {
    let count = ok(rt.device_count(), "device_count");
    assert!(
        count >= 2,
        "the suite needs 2 devices, the backend has {count}"
    );
    let count = count as i32;
    for bad in [count, count + 7, -1] {
        assert_code(
            rt.device(DeviceId(bad)),
            AclError::RT_INVALID_DEVICEID,
            &format!("device({bad})"),
        );
    }
    let (d0, d1) = two_devices(rt);
    assert_eq!(d0.id(), DeviceId(0), "device 0's id");
    assert_eq!(d1.id(), DeviceId(1), "device 1's id");
    let s0 = stream(&d0, "stream on device 0");
    assert_eq!(s0.device().id(), DeviceId(0), "stream bound to device 0");
    let n0 = create(&d0, "notify on device 0");
    assert_eq!(n0.device().id(), DeviceId(0), "notify made on device 0");
    let s1 = stream(&d1, "stream on device 1");
    assert_eq!(s1.device().id(), DeviceId(1), "stream bound to device 1");
    ok(s0.record(&n0), "record on device 0's stream");
    ok(s0.wait(&n0, secs(5)), "wait on device 0's stream");
    sync_ok(&s0, "device 0's stream works");

    let again = dev(rt, 0);
    assert_eq!(again.id(), DeviceId(0), "a second value of device 0");
    let n0b = create(&again, "a notify from the second value of device 0");
    drop(again);
    ok(s0.record(&n0b), "record after the second value was dropped");
    ok(
        s0.wait(&n0b, secs(5)),
        "wait after the second value was dropped",
    );
    sync_ok(&s0, "a handle keeps its device alive");

    let n1 = create(&dev(rt, 1), "a notify from a temporary value of device 1");
    assert_eq!(n1.device().id(), DeviceId(1), "notify made on device 1");
    ok(s1.record(&n1), "record of the temporary device's notify");
    ok(
        s1.wait(&n1, secs(5)),
        "wait of the temporary device's notify",
    );
    sync_ok(&s1, "the notify outlives its temporary device value");

    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                ok(s0.record(&n0), "record from a new thread");
                ok(s0.wait(&n0, secs(5)), "wait from a new thread");
                sync_ok(&s0, "a new thread uses handles without a set-up call");
                let s = stream(&d1, "create a stream from a new thread");
                assert_eq!(s.device().id(), DeviceId(1), "its device");
            })
            .join()
            .expect("the thread's steps passed");
    });
    drop((s0, s1));
    destroy_all(vec![n0, n0b, n1], "destroy");
}

// ---------------------------------------------------------------------------------------------
// R14 — No harm from others
// ---------------------------------------------------------------------------------------------

/// R14: failing calls change nothing: after a series of refused calls on and around a notify,
/// its flag is still clear, its export mode and id unchanged, and it still works.
///
/// C ABI: "record on device 1's stream while device 0 is current" (107003), the empty pid list
/// (107000) and the 69 pids in one call (107000) are in `ascendcl-sim/tests/contexts.rs`. (A
/// record on another device's stream is allowed in the typed API, R4, and would set the flag.)
pub fn r14_failed_calls_change_nothing<B: Backend>(rt: &B::Runtime) {
    let (d0, d1) = two_devices(rt);
    let a = create(&d0, "create");
    let id = ok(a.id(), "id");
    let key = ok(a.export(ExportFlags::DEFAULT), "export");
    let p = fake_pids(4_000_000, WHITELIST_IMPORTERS + 1);
    ok(a.set_import_pid(p[0]), "whitelist one pid");
    let s1 = stream(&d1, "stream on device 1");
    assert_code(
        s1.wait(&a, secs(1)),
        AclError::RT_PARAM_INVALID,
        "wait on device 1",
    );
    let s = stream(&d0, "create_stream");
    assert_code(
        a.export(ExportFlags::DEFAULT),
        AclError::RT_INTERNAL_ERROR,
        "export twice",
    );
    assert_code(
        a.export(ExportFlags::DISABLE_PID_VALIDATION),
        AclError::RT_INTERNAL_ERROR,
        "export twice with DISABLE",
    );
    assert_code(
        a.set_import_pid(Pid(-1)),
        AclError::RT_PARAM_INVALID,
        "a negative pid",
    );
    assert_code(
        d0.import_notify(&key, ImportFlags::DEFAULT),
        AclError::RT_INTERNAL_ERROR,
        "import own",
    );
    assert_code(
        d0.import_notify(&junk_key(), ImportFlags::DEFAULT),
        AclError::RT_PARAM_INVALID,
        "import junk",
    );
    for variant in mutations(&key) {
        assert_code_in(
            d0.import_notify(&variant, ImportFlags::DEFAULT),
            &[AclError::RT_PARAM_INVALID, AclError::RT_DRV_INTERNAL_ERROR],
            "import of a changed key",
        );
    }
    assert_code(
        rt.batch_reset(&[]),
        AclError::RT_PARAM_INVALID,
        "empty batch_reset",
    );

    ok(s.wait(&a, secs(1)), "wait");
    assert_code(
        s.synchronize(),
        AclError::RT_WAIT_TIMEOUT,
        "no refused call set the flag",
    );
    assert_eq!(ok(a.id(), "id"), id, "the id changed");
    whitelist(
        &a,
        &p[1..WHITELIST_IMPORTERS],
        "still a DEFAULT export with 1 pid: 14 more fit",
    );
    // Contract: R6 was revised: a whitelist overflow is 507899 (it was 107000, with 64 pids).
    assert_code(
        a.set_import_pid(p[WHITELIST_IMPORTERS]),
        AclError::RT_DRV_INTERNAL_ERROR,
        "whitelist overflow",
    );
    ok(s.record(&a), "record");
    ok(s.wait(&a, secs(5)), "wait");
    sync_ok(&s, "the notify still works");
    drop((s, s1));
    destroy(a, "destroy");
}

/// R14: a peer's bad input and its abrupt death neither set, free nor change a notify it was
/// allowed to import: the creator's flag stays clear, its id and export state stay, and it
/// works afterwards.
///
/// C ABI: the peer's empty pid list (107000), and its record and wait on device 0's stream
/// while device 1 is current (107003), are in `ascendcl-sim/tests/contexts.rs`.
pub fn r14_peer_bad_input_and_death_harm_nothing<B: Backend>(
    rt: &B::Runtime,
    spawner: &dyn Spawner,
) {
    let d0 = dev(rt, 0);
    let a = create(&d0, "create");
    let id = ok(a.id(), "id");
    let key = ok(a.export(ExportFlags::DEFAULT), "export");
    let s = stream(&d0, "create_stream");
    let mut peer = Remote::on_device(spawner, "misbehaving importer", 0);
    let pid = peer.pid();
    ok(a.set_import_pid(pid), "whitelist the peer");
    let good = import_line(ImportFlags::DEFAULT, &key);
    peer.err(
        &import_line(ImportFlags::DEFAULT, &junk_key()),
        AclError::RT_PARAM_INVALID,
    );
    for variant in mutations(&key) {
        peer.err_in(
            &import_line(ImportFlags::DEFAULT, &variant),
            &[AclError::RT_PARAM_INVALID, AclError::RT_DRV_INTERNAL_ERROR],
        );
    }
    peer.ok(&good);
    peer.err(&good, AclError::RT_INTERNAL_ERROR);
    // Contract: R5 was revised: exporting an imported handle is 507000 (it was 207006).
    peer.err("export 0", AclError::RT_INTERNAL_ERROR);
    peer.err("export 2", AclError::RT_INTERNAL_ERROR);
    // Contract: R6 was revised: a non-creator's set-pid is 507899 (it was 207006).
    peer.err(&setpid_line(pid), AclError::RT_DRV_INTERNAL_ERROR);
    peer.err(&setpid_line(Pid(-1)), AclError::RT_PARAM_INVALID);
    peer.err("wait 1", AclError::RT_PARAM_INVALID);
    peer.ok("dev 1");
    peer.err("wait 1", AclError::RT_PARAM_INVALID);
    peer.err("wait 1 0", AclError::RT_PARAM_INVALID);
    peer.ok("dev 0");
    peer.ok("destroy");
    peer.ok(&good);
    peer.abort();

    ok(s.wait(&a, secs(1)), "wait after the peer died");
    assert_code(
        s.synchronize(),
        AclError::RT_WAIT_TIMEOUT,
        "nothing the peer did, nor its death, set the flag",
    );
    assert_eq!(ok(a.id(), "id"), id, "the id changed");
    assert_code(
        a.export(ExportFlags::DEFAULT),
        AclError::RT_INTERNAL_ERROR,
        "still exported once",
    );
    whitelist(&a, &fake_pids(1_000_000, 2), "still a DEFAULT export");
    ok(s.record(&a), "record");
    ok(s.wait(&a, secs(5)), "wait");
    sync_ok(&s, "the notify still works");
    drop(s);
    destroy(a, "destroy");
}

// ---------------------------------------------------------------------------------------------
// R15 — Order of checks
// ---------------------------------------------------------------------------------------------

/// R15: when two things are wrong, the earlier check decides: a bad argument (a negative pid)
/// before permission (a DISABLE export); "already held" before "not whitelisted" and "no peer
/// access". (Virtualization before bad arguments and state is in [`r12_virtualized`];
/// "revoked before already held" and the importer's combinations are in
/// [`r15_order_of_checks_across_processes`].)
///
/// C ABI: no context (107002) before a malformed key, a bad device id, bad flags and a full
/// device; a stream of another context (107003) before R4's wait on another device; and an
/// empty pid list (107000) before the DISABLE permission are in
/// `ascendcl-sim/tests/contexts.rs`.
pub fn r15_order_of_checks<B: Backend>(rt: &B::Runtime) {
    let (d0, d1) = two_devices(rt);
    let f = create(&d0, "f on device 0");
    let kf = ok(f.export(ExportFlags::DISABLE_PID_VALIDATION), "export f");
    let n1 = create(&d1, "notify on device 1");
    ok(
        n1.export(ExportFlags::DISABLE_PID_VALIDATION),
        "export n1 with DISABLE",
    );
    // A bad argument (107000) beats the DISABLE permission (207006).
    assert_code(
        n1.set_import_pid(Pid(-1)),
        AclError::RT_PARAM_INVALID,
        "a negative pid on a DISABLE export",
    );

    // Already held (507000) beats not whitelisted (507899).
    let e = create(&d1, "e on device 1");
    let ke = ok(
        e.export(ExportFlags::DEFAULT),
        "export e, whitelist left empty",
    );
    assert_code(
        d1.import_notify(&ke, ImportFlags::DEFAULT),
        AclError::RT_INTERNAL_ERROR,
        "import own notify that is not whitelisted",
    );
    // Already held (507000) beats no peer access (507899): f is on device 0, the import is on
    // device 1.
    assert_code(
        d1.import_notify(&kf, ImportFlags::DEFAULT),
        AclError::RT_INTERNAL_ERROR,
        "import own notify of another device without the peer-access flag",
    );
    destroy_all(vec![f, n1, e], "destroy");
}

/// R15 across processes, in an importer: a bad argument (a negative pid) beats permission; the
/// DISABLE permission (207006) beats "not the creator" (507899); "already held" (507000) is
/// reported for a notify held; and a revoked key (507899) beats "already held" (507000).
///
/// C ABI: the importer's empty pid list (107000 before permission), its wait on a stream of
/// another context (107003 before R4's 107000), and its wait, record and import without a
/// context (107002, before "already held") are in `ascendcl-sim/tests/contexts.rs`.
pub fn r15_order_of_checks_across_processes<B: Backend>(rt: &B::Runtime, spawner: &dyn Spawner) {
    let d0 = dev(rt, 0);
    let a = create(&d0, "create");
    let key = ok(a.export(ExportFlags::DISABLE_PID_VALIDATION), "export");
    let b = create(&d0, "a second notify, exported with DEFAULT");
    let kb = ok(b.export(ExportFlags::DEFAULT), "export b");
    let line = import_line(ImportFlags::DEFAULT, &key);
    let mut peer = Remote::on_device(spawner, "importer", 1);
    peer.ok("dev 0");
    let pid = peer.pid();
    ok(b.set_import_pid(pid), "whitelist the importer on b");
    peer.ok(&import_line(ImportFlags::DEFAULT, &kb));
    peer.err(&setpid_line(Pid(-1)), AclError::RT_PARAM_INVALID);
    peer.err(&setpid_line(pid), AclError::RT_DRV_INTERNAL_ERROR);
    peer.ok("destroy");
    peer.ok(&line);
    peer.err(&setpid_line(Pid(-1)), AclError::RT_PARAM_INVALID);
    // Contract: R15 was revised: on a DISABLE export the permission check answers 207006 before
    // "not the creator" (507899).
    peer.err(&setpid_line(pid), AclError::RT_NO_PERMISSION);
    // Contract: R5 was revised: exporting an imported handle is a state error, 507000 (it was
    // 207006, "permission before exported twice").
    peer.err("export 0", AclError::RT_INTERNAL_ERROR);
    peer.err("wait 1 1", AclError::RT_PARAM_INVALID);
    peer.err(&line, AclError::RT_INTERNAL_ERROR);
    destroy(a, "creator destroys: the key is revoked");
    peer.err(&line, AclError::RT_DRV_INTERNAL_ERROR);
    peer.ok("record");
    peer.ok("sync");
    peer.exit();
    destroy(b, "destroy b");
}

// ---------------------------------------------------------------------------------------------
// R16 — Bare tgid
// ---------------------------------------------------------------------------------------------

/// R16: `bare_tgid` always succeeds and gives one positive value for the process: the same
/// from the runtime and from every device, every time.
pub fn r16_bare_tgid<B: Backend>(rt: &B::Runtime) {
    let me = ok(rt.bare_tgid(), "bare_tgid");
    assert!(me.raw() > 0, "bare tgid {me} is not positive");
    assert_eq!(ok(rt.bare_tgid(), "bare_tgid again"), me, "it changed");
    let (d0, d1) = two_devices(rt);
    assert_eq!(ok(d0.bare_tgid(), "device 0's bare_tgid"), me);
    assert_eq!(ok(d1.bare_tgid(), "device 1's bare_tgid"), me);
}
