//! One check (or several) per rule of `SEMANTICS.md` §3.
//!
//! Every check sets the devices it needs itself, destroys every notify and stream it made, and
//! ends with [`Backend::reset_device`] on those devices, so that the calling thread has no
//! current device afterwards. Waits always carry a timeout of 1–5 s (the one exception,
//! [`r3_zero_timeout_waits_forever`], releases its own wait), so a broken backend fails a check
//! instead of hanging it.
//!
//! # What the Rust API cannot express
//! Some clauses of the contract concern C arguments that the typed API makes impossible: NULL
//! pointers (100000), unknown flag bits, `len < 65` for the key buffer, handles that are
//! destroyed, stale or foreign (107017, R8/R10, because `destroy` consumes the handle), and
//! `aclInit`/`aclFinalize` (100001/100002). Flag bits and key buffers are checked by
//! [`crate::ExportFlags::from_raw`] and friends and [`ExportKey::write_c_buf`], whose unit tests
//! live beside them; the rest belongs to the C-level tests of `ascendcl-sim`. A key "from another
//! namespace" (R7) needs a second namespace and is left to the simulator's own tests.
//!
//! # Not in the default lists
//! - [`r12_virtualized`]: needs a backend built in virtualization mode (R12).
//!
//! Everything else is in [`single_checks`] or [`multi_checks`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use super::roles::{ROLE_IMPORTER, ROLE_REMOTE, hex_decode, hex_encode};
use super::{MultiCheck, Peer, SingleCheck, Spawner, assert_code, ok, on_device};
use crate::{
    AclError, Backend, BackendKind, DEFAULT_CAPACITY, DeviceId, ExportFlags, ExportKey,
    ImportFlags, Notify, NotifyFlags, Pid, Result, Stream, WHITELIST_MAX,
};

/// Build the `Vec<(name, fn)>` of [`single_checks`] and [`multi_checks`] from the lists below,
/// so that a name can never drift from its function.
macro_rules! single_vec {
    ($($name:ident),* $(,)?) => {
        vec![$((stringify!($name), $name::<B> as SingleCheck<B>)),*]
    };
}
macro_rules! multi_vec {
    ($($name:ident),* $(,)?) => {
        vec![$((stringify!($name), $name::<B> as MultiCheck<B>)),*]
    };
}

/// Calls `$m! { r1_record_before_wait_not_lost, ... }` with the name of every single-process
/// check: the one list that [`single_checks`] and every backend's test file are built from,
/// so that a test crate can give each check a `#[test]` of its own and never miss one.
#[macro_export]
macro_rules! for_each_single_check {
    ($m:ident) => {
        $m! {
            r1_record_before_wait_not_lost,
            r1_records_merge,
            r1_one_record_releases_one_wait,
            r1_batch_reset,
            r2_enqueue_is_asynchronous,
            r2_stream_order,
            r2_synchronize_reports_failure_once,
            r2_synchronize_timeout_gives_up_tasks_keep_running,
            r2_synchronize_async,
            r2_enqueue_never_fails_when_busy,
            r2_default_stream,
            r2_destroyed_stream_finishes_tasks,
            r3_wait_timeout_reported_at_sync,
            r3_timeout_leaves_flag_and_stream_goes_on,
            r3_zero_timeout_waits_forever,
            r4_wait_on_other_device_stream,
            r5_export_once,
            r5_key_format,
            r5_key_never_resolves_to_reused_slot,
            r6_whitelist_before_export,
            r6_whitelist_on_disable_export,
            r6_whitelist_cap_64_all_or_nothing,
            r6_whitelist_cumulative_and_idempotent,
            r7_import_malformed_key,
            r7_import_unknown_key,
            r7_import_own_notify,
            r7_peer_access_calls,
            r8_creator_destroy_revokes_key,
            r8_pending_task_keeps_reference,
            r10_notify_ids_unique,
            r11_capacity,
            r13_contexts,
            r14_failed_calls_change_nothing,
            r15_order_of_checks,
        }
    };
}

/// Like [`for_each_single_check!`], for the checks that need a second process.
#[macro_export]
macro_rules! for_each_multi_check {
    ($m:ident) => {
        $m! {
            r1_cross_process_record_wakes_wait,
            r1_cross_process_records_merge,
            r1_batch_reset_by_importer,
            r4_importer_cannot_wait,
            r5_export_only_by_creator,
            r6_whitelist_by_bare_tgid,
            r6_whitelist_only_by_creator,
            r6_disable_pid_validation_any_process,
            r7_import_not_whitelisted,
            r7_whitelist_checked_at_import,
            r7_peer_access,
            r8_creator_destroy_revokes_key_importers_keep_working,
            r8_slot_freed_after_last_reference,
            r9_exit_holding_reference_is_released,
            r9_killed_holder_is_reclaimed,
            r9_dead_creator_notify_freed_with_last_importer,
            r9_death_never_records,
            r10_importer_sees_creator_id,
            r14_peer_bad_input_and_death_harm_nothing,
            r15_order_of_checks_across_processes,
        }
    };
}

/// Every single-process check, with its name (`"r1_records_merge"`, ...).
///
/// Excluded: [`r12_virtualized`], which needs a backend in virtualization mode.
pub fn single_checks<B: Backend>() -> Vec<(&'static str, SingleCheck<B>)> {
    crate::for_each_single_check!(single_vec)
}

/// Every check that needs a second process, with its name.
pub fn multi_checks<B: Backend>() -> Vec<(&'static str, MultiCheck<B>)> {
    crate::for_each_multi_check!(multi_vec)
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The most creates a capacity probe makes before it gives up (above CANN's 8192).
const FILL_LIMIT: usize = 9000;
/// How long "still running" probes wait before they conclude a stream is busy.
const SHORT: Duration = Duration::from_millis(300);
/// An upper bound for anything that should be quick (an enqueue, a first poll).
const QUICK: Duration = Duration::from_secs(2);

fn create<B: Backend>(b: &B, what: &str) -> B::Notify {
    ok(b.create_notify(NotifyFlags::DEFAULT), what)
}

fn stream<B: Backend>(b: &B, what: &str) -> B::Stream {
    ok(b.create_stream(), what)
}

#[track_caller]
fn destroy<N: Notify>(notify: N, what: &str) {
    ok(notify.destroy(), what);
}

#[track_caller]
fn destroy_all<N: Notify>(notifies: Vec<N>, what: &str) {
    for n in notifies {
        ok(n.destroy(), what);
    }
}

#[track_caller]
fn sync_ok<S: Stream>(s: &S, what: &str) {
    ok(s.synchronize(), what);
}

/// Asserts that `s` still has unfinished work: `synchronize_timeout` gives up with 507046.
#[track_caller]
fn assert_busy<S: Stream>(s: &S, what: &str) {
    assert_code(
        s.synchronize_timeout(Some(SHORT)),
        AclError::RT_STREAM_SYNC_TIMEOUT,
        what,
    );
}

/// Asserts that `result` failed with one of `codes`.
#[track_caller]
fn assert_code_in<T>(result: Result<T>, codes: &[AclError], what: &str) {
    match result {
        Ok(_) => panic!("{what}: expected one of {codes:?}, got success"),
        Err(e) => {
            assert!(
                codes.contains(&e.code()),
                "{what}: expected one of {codes:?}, got {:?}: {}",
                e.code(),
                e.reason()
            );
            assert!(!e.reason().is_empty(), "{what}: empty reason text");
        }
    }
}

/// Creates notifies on the current device until it reports 207009 and returns them.
#[track_caller]
fn fill<B: Backend>(b: &B, what: &str) -> Vec<B::Notify> {
    let mut held = Vec::new();
    loop {
        match b.create_notify(NotifyFlags::DEFAULT) {
            Ok(n) => held.push(n),
            Err(e) if e.code() == AclError::RT_NO_NOTIFY_RESOURCE => return held,
            Err(e) => panic!("{what}: create #{} failed with {e}", held.len() + 1),
        }
        assert!(
            held.len() < FILL_LIMIT,
            "{what}: {FILL_LIMIT} creates on one device never reported 207009"
        );
    }
}

/// R8/R11: fills device 0, lets the creator destroy `a`, and checks that a create on the full
/// device then succeeds (no other holder kept the slot); cleans up and ends the check.
fn creator_destroy_frees_slot<B: Backend>(b: &B, a: B::Notify, what: &str) {
    let fillers = fill(b, "fill device 0");
    destroy(a, "creator destroys");
    let again = ok(b.create_notify(NotifyFlags::DEFAULT), what);
    destroy(again, "destroy");
    destroy_all(fillers, "destroy fillers");
    finish(b, &[0]);
}

/// Resets `devices` and checks that the thread has no current device any more.
#[track_caller]
fn finish<B: Backend>(b: &B, devices: &[i32]) {
    for &d in devices {
        ok(b.reset_device(DeviceId(d)), "reset_device at the end");
    }
    assert_code(
        b.current_device(),
        AclError::RT_CONTEXT_NULL,
        "current_device after resetting every device used",
    );
}

/// A valid `ExportKey` that no backend produces.
fn junk_key() -> ExportKey {
    ExportKey::new("not-a-key").expect("\"not-a-key\" is a valid ExportKey")
}

/// Distinct, positive pids that no test process has (whitelists do not check existence).
fn fake_pids(from: i32, count: usize) -> Vec<Pid> {
    (0..count).map(|i| Pid(from + i as i32)).collect()
}

/// Copies of `key` with one letter or digit changed each (to another of the same class).
fn mutations(key: &ExportKey) -> Vec<ExportKey> {
    let text = key.as_str().as_bytes();
    (0..text.len())
        .filter_map(|i| {
            let c = text[i];
            let m = match c {
                b'0'..=b'9' => b'0' + (c - b'0' + 1) % 10,
                b'a'..=b'z' => b'a' + (c - b'a' + 1) % 26,
                b'A'..=b'Z' => b'A' + (c - b'A' + 1) % 26,
                _ => return None,
            };
            let mut bytes = text.to_vec();
            bytes[i] = m;
            ExportKey::new(String::from_utf8(bytes).ok()?).ok()
        })
        .collect()
}

/// Checks the R5 key shape directly (beyond what `ExportKey` guarantees by construction).
#[track_caller]
fn assert_key_shape(key: &ExportKey, what: &str) {
    let text = key.as_str();
    assert!(
        (1..=crate::EXPORT_KEY_MAX_CHARS).contains(&text.len()),
        "{what}: key {key:?} has {} characters",
        text.len()
    );
    assert!(
        text.bytes().all(|c| (0x20..=0x7e).contains(&c)),
        "{what}: key {key:?} is not printable ASCII"
    );
    let buf = key.to_c_buf();
    assert_eq!(buf[text.len()], 0, "{what}: key not NUL-terminated");
    assert_eq!(
        ExportKey::from_c_buf(&buf).as_ref(),
        Ok(key),
        "{what}: C round trip"
    );
}

/// A waker that unparks the polling thread and remembers that it was called.
struct ThreadWake {
    thread: std::thread::Thread,
    woken: AtomicBool,
}

impl Wake for ThreadWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// A minimal executor for one future on the current thread (std only: `Wake` + park).
struct Poller {
    wake: Arc<ThreadWake>,
    waker: Waker,
}

impl Poller {
    fn new() -> Self {
        let wake = Arc::new(ThreadWake {
            thread: std::thread::current(),
            woken: AtomicBool::new(false),
        });
        let waker = Waker::from(wake.clone());
        Self { wake, waker }
    }

    fn poll<F: Future + ?Sized>(&self, fut: Pin<&mut F>) -> Poll<F::Output> {
        fut.poll(&mut Context::from_waker(&self.waker))
    }

    /// Polls `fut` until it is ready, re-polling only when it wakes the task. `None` when it
    /// is not ready within `limit` (including a future that never wakes its task).
    fn block_on<F: Future + ?Sized>(
        &self,
        mut fut: Pin<&mut F>,
        limit: Duration,
    ) -> Option<F::Output> {
        let deadline = Instant::now() + limit;
        loop {
            if let Poll::Ready(v) = self.poll(fut.as_mut()) {
                return Some(v);
            }
            while !self.wake.woken.swap(false, Ordering::SeqCst) {
                let now = Instant::now();
                if now >= deadline {
                    return None;
                }
                std::thread::park_timeout(deadline - now);
            }
        }
    }
}

/// The parent's side of a `"remote"` child (see `roles.rs` for the commands).
struct Remote {
    peer: Option<Box<dyn Peer>>,
    label: &'static str,
}

/// A failed remote command: the code and the reason the child reported.
type RemoteErr = (AclError, String);

impl Remote {
    fn spawn(spawner: &dyn Spawner, label: &'static str) -> Self {
        Self {
            peer: Some(spawner.spawn(ROLE_REMOTE)),
            label,
        }
    }

    fn peer(&mut self) -> &mut dyn Peer {
        self.peer.as_deref_mut().expect("peer already waited for")
    }

    fn call(&mut self, line: &str) -> std::result::Result<String, RemoteErr> {
        self.peer().send(line);
        let reply = self.peer().recv();
        let reply = reply.trim_end_matches(['\n', '\r']);
        if reply == "ok" {
            return Ok(String::new());
        }
        if let Some(value) = reply.strip_prefix("ok ") {
            return Ok(value.to_owned());
        }
        if let Some(rest) = reply.strip_prefix("err ") {
            let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
            if let Ok(code) = code.parse::<i32>() {
                return Err((AclError::from_raw(code), reason.to_owned()));
            }
        }
        panic!("{}: `{line}`: unexpected answer {reply:?}", self.label)
    }

    /// Runs `line` and expects success; returns the value of `ok <value>`.
    #[track_caller]
    fn ok(&mut self, line: &str) -> String {
        match self.call(line) {
            Ok(v) => v,
            Err((code, reason)) => {
                panic!(
                    "{}: `{line}`: unexpected error {code}: {reason}",
                    self.label
                )
            }
        }
    }

    /// Runs `line` and expects it to fail with `code` and a non-empty reason.
    #[track_caller]
    fn err(&mut self, line: &str, code: AclError) {
        match self.call(line) {
            Ok(_) => panic!("{}: `{line}`: expected {code}, got success", self.label),
            Err((got, reason)) => {
                assert_eq!(
                    got, code,
                    "{}: `{line}`: wrong code, reason: {reason}",
                    self.label
                );
                assert!(
                    !reason.is_empty(),
                    "{}: `{line}`: empty reason text",
                    self.label
                );
            }
        }
    }

    /// Runs `line` and expects it to fail with one of `codes`.
    #[track_caller]
    fn err_in(&mut self, line: &str, codes: &[AclError]) {
        match self.call(line) {
            Ok(_) => panic!(
                "{}: `{line}`: expected one of {codes:?}, got success",
                self.label
            ),
            Err((got, reason)) => assert!(
                codes.contains(&got),
                "{}: `{line}`: expected one of {codes:?}, got {got:?}: {reason}",
                self.label
            ),
        }
    }

    /// The child's bare tgid (`pid` command).
    #[track_caller]
    fn pid(&mut self) -> Pid {
        let text = self.ok("pid");
        Pid(text
            .parse()
            .unwrap_or_else(|_| panic!("{}: bad pid {text:?}", self.label)))
    }

    /// Ends the child cleanly (`exit`) and asserts it exited with code 0.
    #[track_caller]
    fn exit(mut self) {
        self.ok("exit");
        let code = self.peer.take().expect("peer").wait();
        assert_eq!(code, 0, "{}: the child exited with {code}", self.label);
    }

    /// Makes the child abort while holding its references and asserts that it died.
    #[track_caller]
    fn abort(mut self) {
        self.ok("abort");
        let code = self.peer.take().expect("peer").wait();
        assert_ne!(code, 0, "{}: an aborted child exited with 0", self.label);
    }
}

fn import_line(flags: ImportFlags, key: &ExportKey) -> String {
    format!("import {} {}", flags.bits(), hex_encode(key.as_str()))
}

fn setpids_line(pids: &[Pid]) -> String {
    let mut line = "setpids".to_owned();
    for p in pids {
        line.push(' ');
        line.push_str(&p.raw().to_string());
    }
    line
}

// ---------------------------------------------------------------------------------------------
// R1 — State
// ---------------------------------------------------------------------------------------------

/// R1: a record before any wait is not lost: the next wait passes at once.
pub fn r1_record_before_wait_not_lost<B: Backend>(b: &B) {
    on_device(b, 0);
    let a = create(b, "create");
    let s = stream(b, "create_stream");
    ok(a.record(&s), "record");
    sync_ok(&s, "synchronize after the record");
    // Only this process records, so a successful wait proves the earlier record was kept.
    ok(a.wait_and_reset(&s, 5), "wait after the record");
    let t = Instant::now();
    sync_ok(&s, "the wait passes on the kept record");
    assert!(
        t.elapsed() < QUICK,
        "the wait did not pass at once: {:?}",
        t.elapsed()
    );
    drop(s);
    destroy(a, "destroy");
    finish(b, &[0]);
}

/// R1: a notify is a binary flag: several records before one wait release one wait only, and
/// the wait resets the flag.
pub fn r1_records_merge<B: Backend>(b: &B) {
    on_device(b, 0);
    let a = create(b, "create");
    let s = stream(b, "create_stream");
    for i in 0..3 {
        ok(a.record(&s), &format!("record #{i}"));
    }
    sync_ok(&s, "synchronize after three records");
    ok(a.wait_and_reset(&s, 5), "first wait");
    sync_ok(&s, "the first wait passes");
    ok(a.wait_and_reset(&s, 1), "second wait");
    assert_code(
        s.synchronize(),
        AclError::RT_WAIT_TIMEOUT,
        "a second wait after three merged records (the flag is not a counter)",
    );
    drop(s);
    destroy(a, "destroy");
    finish(b, &[0]);
}

/// R1: a wait completes and resets the flag in one atomic step, so one record releases exactly
/// one of two waits pending on the same notify.
pub fn r1_one_record_releases_one_wait<B: Backend>(b: &B) {
    on_device(b, 0);
    let a = create(b, "create");
    let (s1, s2, s3) = (stream(b, "s1"), stream(b, "s2"), stream(b, "s3"));
    ok(a.wait_and_reset(&s1, 2), "wait on s1");
    ok(a.wait_and_reset(&s2, 2), "wait on s2");
    ok(a.record(&s3), "one record");
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
    finish(b, &[0]);
}

/// R1: `batch_reset` clears the listed flags now, from the host; an empty list is 107000.
///
/// The NULL array (100000) and the invalid handle in the array (107017, nothing cleared) cannot
/// be built with the Rust API (see the module docs).
pub fn r1_batch_reset<B: Backend>(b: &B) {
    on_device(b, 0);
    let (x, y, z) = (create(b, "x"), create(b, "y"), create(b, "z"));
    let (s1, s2, s3) = (stream(b, "s1"), stream(b, "s2"), stream(b, "s3"));
    assert_code(
        b.batch_reset(&[]),
        AclError::RT_PARAM_INVALID,
        "batch_reset of an empty list",
    );
    for (n, name) in [(&x, "x"), (&y, "y"), (&z, "z")] {
        ok(n.record(&s1), &format!("record {name}"));
    }
    sync_ok(&s1, "synchronize the records");
    ok(b.batch_reset(&[&x, &y]), "batch_reset x and y");
    // Resetting a clear flag is fine too.
    ok(b.batch_reset(&[&x]), "batch_reset of a clear flag");
    ok(x.wait_and_reset(&s1, 1), "wait x");
    ok(y.wait_and_reset(&s2, 1), "wait y");
    ok(z.wait_and_reset(&s3, 5), "wait z");
    assert_code(s1.synchronize(), AclError::RT_WAIT_TIMEOUT, "x was reset");
    assert_code(s2.synchronize(), AclError::RT_WAIT_TIMEOUT, "y was reset");
    sync_ok(&s3, "z was not in the list and stays set");
    drop((s1, s2, s3));
    destroy_all(vec![x, y, z], "destroy");
    finish(b, &[0]);
}

/// R1, R2: a record issued by an importer in another process wakes the creator's pending wait.
pub fn r1_cross_process_record_wakes_wait<B: Backend>(b: &B, spawner: &dyn Spawner) {
    on_device(b, 0);
    let a = create(b, "create");
    let key = ok(a.export(ExportFlags::DISABLE_PID_VALIDATION), "export");
    let s = stream(b, "create_stream");
    let mut peer = Remote::spawn(spawner, "importer on device 1");
    peer.ok("dev 1");
    peer.ok(&import_line(ImportFlags::ENABLE_PEER_ACCESS, &key));
    ok(a.wait_and_reset(&s, 5), "creator's wait");
    assert_busy(&s, "the creator's wait before any record");
    peer.ok("record");
    peer.ok("sync");
    sync_ok(&s, "the importer's record released the creator's wait");
    peer.ok("destroy");
    peer.exit();
    drop(s);
    destroy(a, "destroy");
    finish(b, &[0]);
}

/// R1: across processes, a record before the wait is not lost and several records merge.
pub fn r1_cross_process_records_merge<B: Backend>(b: &B, spawner: &dyn Spawner) {
    on_device(b, 0);
    let a = create(b, "create");
    let key = ok(a.export(ExportFlags::DISABLE_PID_VALIDATION), "export");
    let s = stream(b, "create_stream");
    let mut peer = Remote::spawn(spawner, "importer on device 0");
    peer.ok("dev 0");
    peer.ok(&import_line(ImportFlags::DEFAULT, &key));
    peer.ok("record");
    peer.ok("record");
    peer.ok("record");
    peer.ok("sync");
    ok(a.wait_and_reset(&s, 5), "wait after the importer's records");
    sync_ok(&s, "records before the wait are not lost");
    ok(a.wait_and_reset(&s, 1), "second wait");
    assert_code(
        s.synchronize(),
        AclError::RT_WAIT_TIMEOUT,
        "three records released more than one wait",
    );
    peer.exit();
    drop(s);
    destroy(a, "destroy");
    finish(b, &[0]);
}

/// R1: any holder may `batch_reset`: an importer's reset clears the creator's flag.
pub fn r1_batch_reset_by_importer<B: Backend>(b: &B, spawner: &dyn Spawner) {
    on_device(b, 0);
    let a = create(b, "create");
    let key = ok(a.export(ExportFlags::DISABLE_PID_VALIDATION), "export");
    let s = stream(b, "create_stream");
    let mut peer = Remote::spawn(spawner, "importer");
    peer.ok("dev 0");
    peer.ok(&import_line(ImportFlags::DEFAULT, &key));
    peer.ok("record");
    peer.ok("sync");
    peer.ok("reset");
    ok(a.wait_and_reset(&s, 1), "wait after the importer's reset");
    assert_code(
        s.synchronize(),
        AclError::RT_WAIT_TIMEOUT,
        "the importer's batch_reset cleared the flag",
    );
    peer.ok("record");
    peer.ok("sync");
    ok(a.wait_and_reset(&s, 5), "wait after a new record");
    sync_ok(&s, "the notify still works after the reset");
    peer.exit();
    drop(s);
    destroy(a, "destroy");
    finish(b, &[0]);
}

// ---------------------------------------------------------------------------------------------
// R2 — Streams
// ---------------------------------------------------------------------------------------------

/// R2: record and wait only enqueue; a wait blocks only its own stream, and other streams run
/// meanwhile.
pub fn r2_enqueue_is_asynchronous<B: Backend>(b: &B) {
    on_device(b, 0);
    let (a, other) = (create(b, "a"), create(b, "other"));
    let (s1, s2) = (stream(b, "s1"), stream(b, "s2"));
    let t = Instant::now();
    ok(a.wait_and_reset(&s1, 5), "enqueue a wait");
    assert!(
        t.elapsed() < QUICK,
        "enqueueing a wait blocked for {:?}",
        t.elapsed()
    );
    assert_busy(&s1, "the stream with the pending wait");
    ok(other.record(&s2), "record another notify on s2");
    sync_ok(&s2, "s2 runs while s1 is blocked");
    assert_busy(&s1, "s1 is still blocked after s2 finished");
    ok(a.record(&s2), "record a on s2");
    sync_ok(&s2, "synchronize s2");
    sync_ok(&s1, "the wait on s1 passes");
    drop((s1, s2));
    destroy_all(vec![a, other], "destroy");
    finish(b, &[0]);
}

/// R2: the tasks of one stream run in order: a record queued behind a blocked wait does not
/// run before it.
pub fn r2_stream_order<B: Backend>(b: &B) {
    on_device(b, 0);
    let (a, c) = (create(b, "a"), create(b, "c"));
    let (s1, s2, s3) = (stream(b, "s1"), stream(b, "s2"), stream(b, "s3"));
    ok(a.wait_and_reset(&s1, 5), "s1: wait a");
    ok(c.record(&s1), "s1: record c, behind the wait");
    ok(c.wait_and_reset(&s2, 1), "s2: wait c");
    assert_code(
        s2.synchronize(),
        AclError::RT_WAIT_TIMEOUT,
        "c must not be set while the wait before its record is blocked",
    );
    ok(a.record(&s3), "s3: record a");
    sync_ok(&s3, "synchronize s3");
    sync_ok(&s1, "s1 ran its wait, then its record");
    ok(c.wait_and_reset(&s2, 5), "s2: wait c again");
    sync_ok(&s2, "c is set now");
    drop((s1, s2, s3));
    destroy_all(vec![a, c], "destroy");
    finish(b, &[0]);
}

/// R2, R3: synchronize reports a task's failure, then clears it (a second synchronize is Ok);
/// `synchronize_timeout` reports it the same way.
pub fn r2_synchronize_reports_failure_once<B: Backend>(b: &B) {
    on_device(b, 0);
    let a = create(b, "create");
    let s = stream(b, "create_stream");
    ok(a.wait_and_reset(&s, 1), "wait");
    assert_code(
        s.synchronize(),
        AclError::RT_WAIT_TIMEOUT,
        "first synchronize",
    );
    sync_ok(&s, "second synchronize: the failure was cleared");
    ok(a.wait_and_reset(&s, 1), "wait again");
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
    finish(b, &[0]);
}

/// R2: `synchronize_timeout` gives up with 507046 and leaves the remaining tasks queued and
/// running; `None` waits for completion.
pub fn r2_synchronize_timeout_gives_up_tasks_keep_running<B: Backend>(b: &B) {
    on_device(b, 0);
    let (a, c) = (create(b, "a"), create(b, "c"));
    let (s1, s2) = (stream(b, "s1"), stream(b, "s2"));
    ok(
        s1.synchronize_timeout(None),
        "synchronize_timeout(None) on an idle stream",
    );
    ok(
        s1.synchronize_timeout(Some(Duration::from_millis(100))),
        "synchronize_timeout on an idle stream",
    );
    ok(a.wait_and_reset(&s1, 5), "s1: wait a");
    ok(c.record(&s1), "s1: record c");
    let t = Instant::now();
    assert_code(
        s1.synchronize_timeout(Some(Duration::from_millis(200))),
        AclError::RT_STREAM_SYNC_TIMEOUT,
        "synchronize_timeout with a blocked wait",
    );
    assert!(t.elapsed() < QUICK, "giving up took {:?}", t.elapsed());
    ok(a.record(&s2), "s2: record a");
    sync_ok(&s2, "synchronize s2");
    ok(
        s1.synchronize_timeout(None),
        "s1's remaining tasks kept running",
    );
    ok(c.wait_and_reset(&s2, 5), "s2: wait c");
    sync_ok(&s2, "the record queued behind the wait ran");
    drop((s1, s2));
    destroy_all(vec![a, c], "destroy");
    finish(b, &[0]);
}

/// R2: `synchronize_async` does not complete before its tasks, completes once they do (waking
/// its task), and reports failures like `synchronize`.
pub fn r2_synchronize_async<B: Backend>(b: &B) {
    on_device(b, 0);
    let a = create(b, "create");
    let (s1, s2) = (stream(b, "s1"), stream(b, "s2"));
    let poller = Poller::new();

    ok(a.wait_and_reset(&s1, 5), "s1: wait");
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
        ok(a.record(&s2), "s2: record");
        match poller.block_on(fut.as_mut(), Duration::from_secs(10)) {
            Some(r) => ok(r, "synchronize_async after the record"),
            None => panic!("synchronize_async did not complete (or never woke its task)"),
        }
    }
    sync_ok(&s2, "synchronize s2");

    ok(a.wait_and_reset(&s1, 1), "s1: wait that expires");
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
    finish(b, &[0]);
}

/// R2: enqueueing never fails because a stream is busy: thousands of records behind a blocked
/// wait are all accepted (a bounded queue makes the caller wait for room instead).
pub fn r2_enqueue_never_fails_when_busy<B: Backend>(b: &B) {
    on_device(b, 0);
    let (a, c) = (create(b, "a"), create(b, "c"));
    let s = stream(b, "create_stream");
    ok(
        a.wait_and_reset(&s, 2),
        "a wait that blocks the stream for 2 s",
    );
    for i in 0..5000 {
        ok(
            c.record(&s),
            &format!("record #{i} behind the blocked wait"),
        );
    }
    assert_code(
        s.synchronize(),
        AclError::RT_WAIT_TIMEOUT,
        "the blocking wait expired",
    );
    ok(c.wait_and_reset(&s, 5), "wait c");
    sync_ok(&s, "the queued records ran");
    drop(s);
    destroy_all(vec![a, c], "destroy");
    finish(b, &[0]);
}

/// R2, R13: each device has a default stream bound to it; dropping a default-stream handle does
/// not destroy the stream.
pub fn r2_default_stream<B: Backend>(b: &B) {
    on_device(b, 0);
    let a = create(b, "create");
    let d = ok(b.default_stream(), "default_stream");
    assert_eq!(d.device(), DeviceId(0), "default stream of device 0");
    ok(a.record(&d), "record on the default stream");
    sync_ok(&d, "synchronize the default stream");
    drop(d);
    let d = ok(b.default_stream(), "default_stream again after a drop");
    ok(a.wait_and_reset(&d, 5), "wait on the default stream");
    sync_ok(&d, "the default stream still works");
    drop(d);
    on_device(b, 1);
    let d1 = ok(b.default_stream(), "default_stream of device 1");
    assert_eq!(d1.device(), DeviceId(1), "default stream of device 1");
    sync_ok(&d1, "synchronize device 1's default stream");
    drop(d1);
    destroy(a, "destroy");
    finish(b, &[0, 1]);
}

/// R2: tasks enqueued on a stream still run when it is destroyed.
pub fn r2_destroyed_stream_finishes_tasks<B: Backend>(b: &B) {
    on_device(b, 0);
    let (a, c) = (create(b, "a"), create(b, "c"));
    let (s1, s2) = (stream(b, "s1"), stream(b, "s2"));
    ok(c.wait_and_reset(&s1, 3), "s1: wait c");
    ok(a.record(&s1), "s1: record a");
    ok(c.record(&s2), "s2: record c");
    ok(s1.destroy(), "destroy s1 with tasks pending");
    ok(a.wait_and_reset(&s2, 5), "s2: wait a");
    sync_ok(&s2, "the record enqueued on the destroyed stream ran");
    drop(s2);
    destroy_all(vec![a, c], "destroy");
    finish(b, &[0]);
}

// ---------------------------------------------------------------------------------------------
// R3 — Timeout
// ---------------------------------------------------------------------------------------------

/// R3: the timeout is in seconds; an expired wait does not fail at enqueue but at the next
/// synchronize, with 107019. (R1: a new notify's flag is clear.)
pub fn r3_wait_timeout_reported_at_sync<B: Backend>(b: &B) {
    on_device(b, 0);
    let a = create(b, "create");
    let s = stream(b, "create_stream");
    let t = Instant::now();
    ok(
        a.wait_and_reset(&s, 1),
        "enqueue a 1 s wait on a new notify",
    );
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
    finish(b, &[0]);
}

/// R3: an expired wait leaves the flag as it was (clear: it sets nothing) and the stream goes
/// on with its next task; a later record is not lost.
pub fn r3_timeout_leaves_flag_and_stream_goes_on<B: Backend>(b: &B) {
    on_device(b, 0);
    let (a, c) = (create(b, "a"), create(b, "c"));
    let (s1, s2) = (stream(b, "s1"), stream(b, "s2"));
    ok(a.wait_and_reset(&s1, 1), "s1: wait a (expires)");
    ok(c.record(&s1), "s1: record c after it");
    assert_code(
        s1.synchronize(),
        AclError::RT_WAIT_TIMEOUT,
        "the expired wait",
    );
    ok(c.wait_and_reset(&s2, 5), "s2: wait c");
    sync_ok(&s2, "the task after the expired wait ran");
    ok(a.wait_and_reset(&s1, 1), "s1: wait a again");
    assert_code(
        s1.synchronize(),
        AclError::RT_WAIT_TIMEOUT,
        "the expired wait must not have set the flag",
    );
    ok(a.record(&s2), "record a after the timeouts");
    sync_ok(&s2, "synchronize the record");
    ok(a.wait_and_reset(&s1, 5), "wait a");
    sync_ok(&s1, "the notify works after timeouts");
    drop((s1, s2));
    destroy_all(vec![a, c], "destroy");
    finish(b, &[0]);
}

/// R3: a timeout of 0 waits forever (it is still pending after more than a second) until a
/// record releases it.
pub fn r3_zero_timeout_waits_forever<B: Backend>(b: &B) {
    on_device(b, 0);
    let a = create(b, "create");
    let (s1, s2) = (stream(b, "s1"), stream(b, "s2"));
    ok(a.wait_and_reset(&s1, 0), "enqueue a wait with timeout 0");
    let early = s1.synchronize_timeout(Some(Duration::from_millis(1500)));
    // Release the wait whatever happened, so a failure below cannot hang the caller.
    ok(a.record(&s2), "record");
    sync_ok(&s2, "synchronize the record");
    let done = s1.synchronize_timeout(Some(Duration::from_secs(5)));
    if matches!(&done, Err(e) if e.code() == AclError::RT_STREAM_SYNC_TIMEOUT) {
        // The stream is stuck on a wait that never ends: do not run its destructor.
        std::mem::forget(s1);
        std::mem::forget(a);
        panic!("a record did not release a wait with timeout 0");
    }
    assert_code(
        early,
        AclError::RT_STREAM_SYNC_TIMEOUT,
        "a wait with timeout 0 must still be pending after 1.5 s",
    );
    ok(done, "the record released the wait with timeout 0");
    drop((s1, s2));
    destroy(a, "destroy");
    finish(b, &[0]);
}

// ---------------------------------------------------------------------------------------------
// R4 — Who may wait
// ---------------------------------------------------------------------------------------------

/// R4: the creator's wait must be on a stream of the notify's device; a stream of another
/// device (current there) fails at enqueue with 107000.
pub fn r4_wait_on_other_device_stream<B: Backend>(b: &B) {
    on_device(b, 0);
    let a = create(b, "create on device 0");
    on_device(b, 1);
    let s1 = stream(b, "stream on device 1");
    assert_code(
        a.wait_and_reset(&s1, 1),
        AclError::RT_PARAM_INVALID,
        "wait on a stream of device 1 for a notify of device 0",
    );
    sync_ok(&s1, "the refused wait enqueued nothing");
    on_device(b, 0);
    let s0 = stream(b, "stream on device 0");
    ok(a.record(&s0), "record");
    ok(a.wait_and_reset(&s0, 5), "wait on the notify's own device");
    sync_ok(&s0, "the same wait works on device 0");
    drop((s0, s1));
    destroy(a, "destroy");
    finish(b, &[0, 1]);
}

/// R4: only the creator may wait: an importer's wait fails at enqueue with 107000 (on the
/// notify's device and on another one), while its record works.
pub fn r4_importer_cannot_wait<B: Backend>(b: &B, spawner: &dyn Spawner) {
    on_device(b, 0);
    let a = create(b, "create");
    let key = ok(a.export(ExportFlags::DISABLE_PID_VALIDATION), "export");
    let s = stream(b, "create_stream");
    let mut peer = Remote::spawn(spawner, "importer");
    peer.ok("dev 0");
    peer.ok(&import_line(ImportFlags::DEFAULT, &key));
    peer.err("wait 1", AclError::RT_PARAM_INVALID);
    peer.ok("record");
    peer.ok("sync");
    ok(a.wait_and_reset(&s, 5), "creator's wait");
    sync_ok(&s, "the importer's record reached the creator");
    peer.ok("dev 1");
    peer.err("wait 1", AclError::RT_PARAM_INVALID);
    peer.exit();
    drop(s);
    destroy(a, "destroy");
    finish(b, &[0]);
}

// ---------------------------------------------------------------------------------------------
// R5 — Export
// ---------------------------------------------------------------------------------------------

/// R5: a notify is exported once: the second export fails with 507000 whatever its flags, and
/// changes nothing (the first export's mode stays).
pub fn r5_export_once<B: Backend>(b: &B) {
    on_device(b, 0);
    let (a, c) = (create(b, "a"), create(b, "c"));
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
    let pid = ok(b.bare_tgid(), "bare_tgid");
    ok(
        a.set_import_pids(&[pid]),
        "a is still a DEFAULT export: it takes a whitelist",
    );
    assert_code(
        c.set_import_pids(&[pid]),
        AclError::RT_NO_PERMISSION,
        "c is still a DISABLE_PID_VALIDATION export",
    );
    destroy_all(vec![a, c], "destroy");
    finish(b, &[0]);
}

/// R5: a key is 1..=64 printable ASCII characters, NUL-terminated in a 65-byte buffer, and
/// different notifies (on any device, with any flags) get different keys.
pub fn r5_key_format<B: Backend>(b: &B) {
    on_device(b, 0);
    let (a, c) = (create(b, "a"), create(b, "c"));
    on_device(b, 1);
    let d = create(b, "d on device 1");
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
    finish(b, &[0, 1]);
}

/// R5: a key carries a generation: after its notify is destroyed, a new notify in the same
/// slot (forced by filling the device) gets another key, and the old key does not resolve to
/// it (507899, not 507000 "already held").
pub fn r5_key_never_resolves_to_reused_slot<B: Backend>(b: &B) {
    on_device(b, 0);
    let a = create(b, "create");
    let old = ok(a.export(ExportFlags::DISABLE_PID_VALIDATION), "export");
    let fillers = fill(b, "fill device 0");
    destroy(
        a,
        "destroy the exported notify: its slot is the only free one",
    );
    let reuse = create(b, "create into the freed slot");
    let new = ok(
        reuse.export(ExportFlags::DISABLE_PID_VALIDATION),
        "export the new notify",
    );
    assert_key_shape(&new, "key of the new notify");
    assert_ne!(old, new, "a reused slot gave the same key");
    assert_code(
        b.import_notify(&old, ImportFlags::DEFAULT),
        AclError::RT_DRV_INTERNAL_ERROR,
        "the old key after its slot was reused",
    );
    assert_code(
        b.import_notify(&new, ImportFlags::DEFAULT),
        AclError::RT_INTERNAL_ERROR,
        "the new key resolves (to a notify this process holds)",
    );
    destroy(reuse, "destroy");
    destroy_all(fillers, "destroy fillers");
    finish(b, &[0]);
}

/// R5: only the creating process may export (207006 in an importer, whatever the flags; R15:
/// permission before the "exported twice" state).
pub fn r5_export_only_by_creator<B: Backend>(b: &B, spawner: &dyn Spawner) {
    on_device(b, 0);
    let a = create(b, "create");
    let key = ok(a.export(ExportFlags::DEFAULT), "export");
    let mut peer = Remote::spawn(spawner, "importer");
    peer.ok("dev 0");
    let pid = peer.pid();
    ok(a.set_import_pids(&[pid]), "whitelist the importer");
    peer.ok(&import_line(ImportFlags::DEFAULT, &key));
    peer.err("export 0", AclError::RT_NO_PERMISSION);
    peer.err("export 2", AclError::RT_NO_PERMISSION);
    // The importer can still create and export a notify of its own.
    peer.ok("create");
    let own = peer.ok("export 2");
    assert!(
        hex_decode(&own).is_some(),
        "the child's key {own:?} is not hex"
    );
    peer.exit();
    destroy(a, "destroy");
    finish(b, &[0]);
}

// ---------------------------------------------------------------------------------------------
// R6 — Whitelist
// ---------------------------------------------------------------------------------------------

/// R6: `set_import_pids` before export fails with 107000; after a DEFAULT export it works, and
/// an empty list is 107000.
pub fn r6_whitelist_before_export<B: Backend>(b: &B) {
    on_device(b, 0);
    let a = create(b, "create");
    let pids = fake_pids(1_000_000, 2);
    assert_code(
        a.set_import_pids(&pids),
        AclError::RT_PARAM_INVALID,
        "set_import_pids before export",
    );
    ok(a.export(ExportFlags::DEFAULT), "export");
    ok(a.set_import_pids(&pids), "set_import_pids after export");
    assert_code(
        a.set_import_pids(&[]),
        AclError::RT_PARAM_INVALID,
        "set_import_pids with an empty list",
    );
    destroy(a, "destroy");
    finish(b, &[0]);
}

/// R6: a whitelist on a notify exported with DISABLE_PID_VALIDATION fails with 207006.
pub fn r6_whitelist_on_disable_export<B: Backend>(b: &B) {
    on_device(b, 0);
    let a = create(b, "create");
    ok(a.export(ExportFlags::DISABLE_PID_VALIDATION), "export");
    let me = ok(b.bare_tgid(), "bare_tgid");
    assert_code(
        a.set_import_pids(&fake_pids(1_000_000, 1)),
        AclError::RT_NO_PERMISSION,
        "whitelist on a DISABLE_PID_VALIDATION export",
    );
    assert_code(
        a.set_import_pids(&[me]),
        AclError::RT_NO_PERMISSION,
        "own pid on a DISABLE_PID_VALIDATION export",
    );
    destroy(a, "destroy");
    finish(b, &[0]);
}

/// R6: a whitelist holds 64 distinct pids; a call that would push it past 64 fails with 107000
/// and adds none of its pids.
pub fn r6_whitelist_cap_64_all_or_nothing<B: Backend>(b: &B) {
    assert_eq!(WHITELIST_MAX, 64);
    on_device(b, 0);
    let a = create(b, "create");
    ok(a.export(ExportFlags::DEFAULT), "export");
    let p = fake_pids(2_000_000, 70);
    assert_code(
        a.set_import_pids(&p[..65]),
        AclError::RT_PARAM_INVALID,
        "65 distinct pids in one call",
    );
    ok(a.set_import_pids(&p[..60]), "60 pids");
    assert_code(
        a.set_import_pids(&p[60..65]),
        AclError::RT_PARAM_INVALID,
        "5 more pids (65 in all)",
    );
    // If the failed call had added any of p[60..65], 4 more would not fit.
    ok(a.set_import_pids(&p[65..69]), "4 other pids (64 in all)");
    assert_code(
        a.set_import_pids(&p[60..61]),
        AclError::RT_PARAM_INVALID,
        "a pid of the failed call was not added (so adding it now is a 65th)",
    );
    assert_code(
        a.set_import_pids(&p[69..70]),
        AclError::RT_PARAM_INVALID,
        "a 65th pid",
    );
    ok(
        a.set_import_pids(&p[..60]),
        "pids already present on a full whitelist",
    );
    ok(a.set_import_pids(&p[65..69]), "pids already present, again");
    destroy(a, "destroy");
    finish(b, &[0]);
}

/// R6: calls are cumulative and a pid already present (in the list or in the same call) is a
/// no-op: 2 distinct pids given 5 times, plus 62 new ones, fill the 64 exactly.
pub fn r6_whitelist_cumulative_and_idempotent<B: Backend>(b: &B) {
    on_device(b, 0);
    let a = create(b, "create");
    ok(a.export(ExportFlags::DEFAULT), "export");
    let p = fake_pids(3_000_000, 65);
    ok(a.set_import_pids(&p[0..1]), "p0");
    ok(a.set_import_pids(&p[1..2]), "p1");
    ok(a.set_import_pids(&p[0..1]), "p0 again");
    ok(
        a.set_import_pids(&[p[0], p[0], p[1]]),
        "p0, p0, p1 in one call",
    );
    ok(
        a.set_import_pids(&p[2..64]),
        "62 new pids (64 distinct in all)",
    );
    // Cumulative: the first calls still count, so the whitelist is full now.
    assert_code(
        a.set_import_pids(&p[64..65]),
        AclError::RT_PARAM_INVALID,
        "a 65th distinct pid (earlier calls were kept, duplicates counted once)",
    );
    ok(
        a.set_import_pids(&p[0..2]),
        "present pids on a full whitelist",
    );
    destroy(a, "destroy");
    finish(b, &[0]);
}

/// R6, R7: the documented flow (the `"importer"` role): the importer sends its bare tgid, the
/// creator whitelists it, and the importer (device 1) imports and records; its record releases
/// the creator's wait. With the simulator the bare tgid is the OS pid.
pub fn r6_whitelist_by_bare_tgid<B: Backend>(b: &B, spawner: &dyn Spawner) {
    on_device(b, 0);
    let a = create(b, "create");
    let key = ok(a.export(ExportFlags::DEFAULT), "export");
    let s = stream(b, "create_stream");
    let mut peer = spawner.spawn(ROLE_IMPORTER);
    let line = peer.recv();
    let pid: Pid = match line.trim_end().strip_prefix("pid ") {
        Some(text) => Pid(text
            .parse()
            .unwrap_or_else(|_| panic!("importer: bad pid line {line:?}"))),
        None => panic!("importer: expected `pid <n>`, got {line:?}"),
    };
    if b.kind() == BackendKind::Sim {
        assert_eq!(pid, peer.pid(), "the simulator's bare tgid is the OS pid");
    }
    ok(
        a.set_import_pids(&[pid]),
        "whitelist the importer's bare tgid",
    );
    ok(a.wait_and_reset(&s, 5), "creator's wait");
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
    finish(b, &[0]);
}

/// R6: only the creating process may set the whitelist: 207006 in an importer.
pub fn r6_whitelist_only_by_creator<B: Backend>(b: &B, spawner: &dyn Spawner) {
    on_device(b, 0);
    let a = create(b, "create");
    let key = ok(a.export(ExportFlags::DEFAULT), "export");
    let mut peer = Remote::spawn(spawner, "importer");
    peer.ok("dev 0");
    let pid = peer.pid();
    ok(a.set_import_pids(&[pid]), "whitelist the importer");
    peer.ok(&import_line(ImportFlags::DEFAULT, &key));
    peer.err(&setpids_line(&[pid]), AclError::RT_NO_PERMISSION);
    peer.err(
        &setpids_line(&fake_pids(1_000_000, 3)),
        AclError::RT_NO_PERMISSION,
    );
    peer.exit();
    destroy(a, "destroy");
    finish(b, &[0]);
}

/// R6, R7: with DISABLE_PID_VALIDATION any process imports without a whitelist.
pub fn r6_disable_pid_validation_any_process<B: Backend>(b: &B, spawner: &dyn Spawner) {
    on_device(b, 0);
    let a = create(b, "create");
    let key = ok(a.export(ExportFlags::DISABLE_PID_VALIDATION), "export");
    let s = stream(b, "create_stream");
    let mut peer = Remote::spawn(spawner, "importer");
    peer.ok("dev 0");
    peer.ok(&import_line(ImportFlags::DEFAULT, &key));
    peer.ok("record");
    peer.ok("sync");
    ok(a.wait_and_reset(&s, 5), "wait");
    sync_ok(&s, "the unlisted importer's record arrived");
    peer.exit();
    drop(s);
    destroy(a, "destroy");
    finish(b, &[0]);
}

// ---------------------------------------------------------------------------------------------
// R7 — Import
// ---------------------------------------------------------------------------------------------

/// R7: a key that is not in the backend's format fails with 107000, whatever the import flags.
pub fn r7_import_malformed_key<B: Backend>(b: &B) {
    on_device(b, 0);
    for text in ["not-a-key", " ", &"z".repeat(64)] {
        let key = ExportKey::new(text).expect("valid ExportKey");
        for flags in [ImportFlags::DEFAULT, ImportFlags::ENABLE_PEER_ACCESS] {
            assert_code(
                b.import_notify(&key, flags),
                AclError::RT_PARAM_INVALID,
                &format!("import of {key:?} with {flags:?}"),
            );
        }
    }
    finish(b, &[0]);
}

/// R7, R8: a well-formed key that is revoked (its creator destroyed the notify) fails with
/// 507899; keys changed in one letter or digit never resolve (107000 or 507899, never success
/// and never 507000 "already held").
pub fn r7_import_unknown_key<B: Backend>(b: &B) {
    on_device(b, 0);
    let a = create(b, "a");
    let revoked = ok(a.export(ExportFlags::DISABLE_PID_VALIDATION), "export a");
    destroy(a, "destroy a");
    assert_code(
        b.import_notify(&revoked, ImportFlags::DEFAULT),
        AclError::RT_DRV_INTERNAL_ERROR,
        "import of a revoked key",
    );
    let live = create(b, "live");
    let key = ok(
        live.export(ExportFlags::DISABLE_PID_VALIDATION),
        "export live",
    );
    let variants = mutations(&key);
    for variant in &variants {
        assert_code_in(
            b.import_notify(variant, ImportFlags::DEFAULT),
            &[AclError::RT_PARAM_INVALID, AclError::RT_DRV_INTERNAL_ERROR],
            &format!("import of {variant:?}, a one-character change of {key:?}"),
        );
    }
    destroy(live, "destroy live");
    finish(b, &[0]);
}

/// R7: a process holds at most one handle per notify: importing a notify it created fails with
/// 507000, whatever the export flags (whitelisted or not).
pub fn r7_import_own_notify<B: Backend>(b: &B) {
    on_device(b, 0);
    let (a, c) = (create(b, "a"), create(b, "c"));
    let ka = ok(a.export(ExportFlags::DISABLE_PID_VALIDATION), "export a");
    let kc = ok(c.export(ExportFlags::DEFAULT), "export c");
    ok(
        c.set_import_pids(&[ok(b.bare_tgid(), "bare_tgid")]),
        "whitelist self",
    );
    for (key, name) in [(&ka, "a"), (&kc, "c")] {
        for flags in [ImportFlags::DEFAULT, ImportFlags::ENABLE_PEER_ACCESS] {
            assert_code(
                b.import_notify(key, flags),
                AclError::RT_INTERNAL_ERROR,
                &format!("import own notify {name} with {flags:?}"),
            );
        }
    }
    destroy_all(vec![a, c], "destroy");
    finish(b, &[0]);
}

/// R7: `can_access_peer` and `enable_peer_access` codes: distinct valid devices can be asked
/// about (the simulator answers `true`); the same device is 107000, a bad id 107001; enabling
/// needs a context (107002), `flags == 0` and a peer other than the current device (107000),
/// and enabling twice is a no-op.
pub fn r7_peer_access_calls<B: Backend>(b: &B) {
    let count = ok(b.device_count(), "device_count") as i32;
    let can = ok(
        b.can_access_peer(DeviceId(0), DeviceId(1)),
        "can_access_peer(0, 1)",
    );
    if b.kind() == BackendKind::Sim {
        assert!(can, "the simulator answers true for two distinct devices");
    }
    assert_code(
        b.can_access_peer(DeviceId(0), DeviceId(0)),
        AclError::RT_PARAM_INVALID,
        "can_access_peer(0, 0)",
    );
    for (d, p) in [(0, count), (count, 0), (-1, 0)] {
        assert_code(
            b.can_access_peer(DeviceId(d), DeviceId(p)),
            AclError::RT_INVALID_DEVICEID,
            &format!("can_access_peer({d}, {p})"),
        );
    }
    assert_code(
        b.enable_peer_access(DeviceId(1), 0),
        AclError::RT_CONTEXT_NULL,
        "enable_peer_access without a current device",
    );
    on_device(b, 0);
    assert_code(
        b.enable_peer_access(DeviceId(0), 0),
        AclError::RT_PARAM_INVALID,
        "enable_peer_access to the current device",
    );
    assert_code(
        b.enable_peer_access(DeviceId(1), 1),
        AclError::RT_PARAM_INVALID,
        "enable_peer_access with flags 1",
    );
    assert_code(
        b.enable_peer_access(DeviceId(count), 0),
        AclError::RT_INVALID_DEVICEID,
        "enable_peer_access to a bad device",
    );
    ok(
        b.enable_peer_access(DeviceId(1), 0),
        "enable_peer_access(1)",
    );
    ok(
        b.enable_peer_access(DeviceId(1), 0),
        "enable_peer_access(1) again",
    );
    finish(b, &[0]);
}

/// R7: if the export used flag 0x0, a caller not on the whitelist is refused with 507899: with
/// the whitelist empty (as it starts) and with other pids on it.
pub fn r7_import_not_whitelisted<B: Backend>(b: &B, spawner: &dyn Spawner) {
    on_device(b, 0);
    let a = create(b, "create");
    let key = ok(a.export(ExportFlags::DEFAULT), "export");
    let mut peer = Remote::spawn(spawner, "unlisted importer");
    peer.ok("dev 0");
    let line = import_line(ImportFlags::DEFAULT, &key);
    peer.err(&line, AclError::RT_DRV_INTERNAL_ERROR);
    let me = ok(b.bare_tgid(), "bare_tgid");
    let mut others = fake_pids(1_000_000, 3);
    others.push(me);
    let child = peer.pid();
    others.retain(|p| *p != child);
    ok(a.set_import_pids(&others), "whitelist other pids");
    peer.err(&line, AclError::RT_DRV_INTERNAL_ERROR);
    peer.exit();
    destroy(a, "destroy");
    finish(b, &[0]);
}

/// R7: the whitelist is checked at the moment of import: refused before the importer's pid is
/// added, accepted after (added by a later, cumulative call).
pub fn r7_whitelist_checked_at_import<B: Backend>(b: &B, spawner: &dyn Spawner) {
    on_device(b, 0);
    let a = create(b, "create");
    let key = ok(a.export(ExportFlags::DEFAULT), "export");
    let s = stream(b, "create_stream");
    let mut peer = Remote::spawn(spawner, "importer");
    peer.ok("dev 0");
    let line = import_line(ImportFlags::DEFAULT, &key);
    peer.err(&line, AclError::RT_DRV_INTERNAL_ERROR);
    let pid = peer.pid();
    ok(
        a.set_import_pids(&[pid]),
        "whitelist the importer after export",
    );
    ok(
        a.set_import_pids(&fake_pids(1_000_000, 2)),
        "a later call adds others",
    );
    peer.ok(&line);
    peer.ok("record");
    peer.ok("sync");
    ok(a.wait_and_reset(&s, 5), "wait");
    sync_ok(&s, "the importer's record arrived");
    peer.exit();
    drop(s);
    destroy(a, "destroy");
    finish(b, &[0]);
}

/// R7: with import flag 0x0 a notify on another device needs peer access from the current
/// device to it (507899 without); access is per pair (0 → 1 does not give 1 → 0) and per
/// process; enabling it to the current device is 107000, twice is a no-op; import flag 0x2
/// enables it by itself.
pub fn r7_peer_access<B: Backend>(b: &B, spawner: &dyn Spawner) {
    on_device(b, 0);
    let a = create(b, "create on device 0");
    let key = ok(a.export(ExportFlags::DISABLE_PID_VALIDATION), "export");
    let s = stream(b, "create_stream");
    let plain = import_line(ImportFlags::DEFAULT, &key);

    let mut first = Remote::spawn(spawner, "first importer");
    first.ok("dev 0");
    first.ok("peer 1");
    first.ok("dev 1");
    first.err(&plain, AclError::RT_DRV_INTERNAL_ERROR);
    first.err("peer 1", AclError::RT_PARAM_INVALID);
    first.ok("peer 0");
    first.ok("peer 0");
    first.ok(&plain);
    first.ok("record");
    first.ok("sync");
    ok(a.wait_and_reset(&s, 5), "wait for the first importer");
    sync_ok(&s, "record from device 1 after enabling peer access");

    let mut second = Remote::spawn(spawner, "second importer");
    second.ok("dev 1");
    second.err(&plain, AclError::RT_DRV_INTERNAL_ERROR);
    second.ok(&import_line(ImportFlags::ENABLE_PEER_ACCESS, &key));
    second.ok("record");
    second.ok("sync");
    ok(a.wait_and_reset(&s, 5), "wait for the second importer");
    sync_ok(
        &s,
        "record from device 1 after an ENABLE_PEER_ACCESS import",
    );

    first.exit();
    second.exit();
    drop(s);
    destroy(a, "destroy");
    finish(b, &[0]);
}

// ---------------------------------------------------------------------------------------------
// R8 — Lifetime and reference count
// ---------------------------------------------------------------------------------------------

/// R8: when the creator destroys, the key is revoked: a later import fails with 507899 (for
/// both export modes).
pub fn r8_creator_destroy_revokes_key<B: Backend>(b: &B) {
    on_device(b, 0);
    let (a, c) = (create(b, "a"), create(b, "c"));
    let ka = ok(a.export(ExportFlags::DISABLE_PID_VALIDATION), "export a");
    let kc = ok(c.export(ExportFlags::DEFAULT), "export c");
    ok(
        c.set_import_pids(&[ok(b.bare_tgid(), "bare_tgid")]),
        "whitelist self",
    );
    destroy_all(vec![a, c], "destroy");
    for key in [&ka, &kc] {
        assert_code(
            b.import_notify(key, ImportFlags::DEFAULT),
            AclError::RT_DRV_INTERNAL_ERROR,
            &format!("import of {key:?} after its creator destroyed it"),
        );
    }
    finish(b, &[0]);
}

/// R8: each enqueued task holds its own reference: destroying a handle with a record pending
/// does not free the slot (the device stays full) and the record still runs; the slot is freed
/// once it has.
pub fn r8_pending_task_keeps_reference<B: Backend>(b: &B) {
    on_device(b, 0);
    let (a, gate) = (create(b, "a"), create(b, "gate"));
    let (s1, s2) = (stream(b, "s1"), stream(b, "s2"));
    let fillers = fill(b, "fill device 0");
    ok(gate.wait_and_reset(&s1, 5), "s1: wait for the gate");
    ok(a.record(&s1), "s1: record a, pending behind the gate");
    destroy(a, "destroy a with its record pending");
    assert_code(
        b.create_notify(NotifyFlags::DEFAULT),
        AclError::RT_NO_NOTIFY_RESOURCE,
        "create while a pending task holds the destroyed notify's slot",
    );
    ok(gate.record(&s2), "open the gate");
    sync_ok(&s2, "synchronize s2");
    sync_ok(
        &s1,
        "the pending record ran on the destroyed handle's notify",
    );
    let again = ok(
        b.create_notify(NotifyFlags::DEFAULT),
        "create once the last task released the slot",
    );
    drop((s1, s2));
    destroy_all(vec![again, gate], "destroy");
    destroy_all(fillers, "destroy fillers");
    finish(b, &[0]);
}

/// R8, R15: the creator's destroy revokes the key (507899 for anyone, including an importer
/// that already holds it: revoked comes before "already held"), while the importer keeps a
/// working notify: its record and synchronize succeed.
pub fn r8_creator_destroy_revokes_key_importers_keep_working<B: Backend>(
    b: &B,
    spawner: &dyn Spawner,
) {
    on_device(b, 0);
    let a = create(b, "create");
    let id = ok(a.id(), "id");
    let key = ok(a.export(ExportFlags::DISABLE_PID_VALIDATION), "export");
    let line = import_line(ImportFlags::DEFAULT, &key);
    let mut peer = Remote::spawn(spawner, "importer");
    peer.ok("dev 0");
    peer.ok(&line);
    peer.err(&line, AclError::RT_INTERNAL_ERROR);
    destroy(a, "creator destroys");
    assert_code(
        b.import_notify(&key, ImportFlags::DEFAULT),
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
    finish(b, &[0]);
}

/// R8: the slot is freed only when the last reference is gone: after the creator's destroy the
/// importer's handle keeps the device full; after the importer's destroy a create succeeds.
pub fn r8_slot_freed_after_last_reference<B: Backend>(b: &B, spawner: &dyn Spawner) {
    on_device(b, 0);
    let a = create(b, "create");
    let key = ok(a.export(ExportFlags::DISABLE_PID_VALIDATION), "export");
    let mut peer = Remote::spawn(spawner, "importer");
    peer.ok("dev 0");
    peer.ok(&import_line(ImportFlags::DEFAULT, &key));
    let fillers = fill(b, "fill device 0");
    destroy(a, "creator destroys");
    assert_code(
        b.create_notify(NotifyFlags::DEFAULT),
        AclError::RT_NO_NOTIFY_RESOURCE,
        "create while the importer still holds the notify",
    );
    peer.ok("destroy");
    let again = ok(
        b.create_notify(NotifyFlags::DEFAULT),
        "create after the last holder destroyed",
    );
    peer.exit();
    destroy(again, "destroy");
    destroy_all(fillers, "destroy fillers");
    finish(b, &[0]);
}

// ---------------------------------------------------------------------------------------------
// R9 — Process death
// ---------------------------------------------------------------------------------------------

/// R9: an importer that exits without destroying its handle (it forgets it and returns) loses
/// its reference: the creator's notify keeps working, and once the creator destroys it the slot
/// is free again (a create on the full device succeeds).
pub fn r9_exit_holding_reference_is_released<B: Backend>(b: &B, spawner: &dyn Spawner) {
    on_device(b, 0);
    let a = create(b, "create");
    let key = ok(a.export(ExportFlags::DISABLE_PID_VALIDATION), "export");
    let s = stream(b, "create_stream");
    let mut peer = Remote::spawn(spawner, "importer that leaves");
    peer.ok("dev 0");
    peer.ok(&import_line(ImportFlags::DEFAULT, &key));
    peer.ok("record");
    peer.ok("sync");
    peer.ok("forget");
    peer.exit();
    ok(
        a.wait_and_reset(&s, 5),
        "wait for the record of the departed importer",
    );
    sync_ok(&s, "a record survives its recorder's exit");
    ok(a.record(&s), "record");
    ok(a.wait_and_reset(&s, 5), "wait");
    sync_ok(&s, "the notify still works");
    drop(s);
    creator_destroy_frees_slot(
        b,
        a,
        "create after the creator destroyed (the departed importer held no reference)",
    );
}

/// R9: an importer that dies abruptly (abort, no cleanup at all) holding a reference is
/// reclaimed without its help: the creator's notify keeps working and, once destroyed, its slot
/// is reusable (a create on the full device reclaims before it reports 207009).
pub fn r9_killed_holder_is_reclaimed<B: Backend>(b: &B, spawner: &dyn Spawner) {
    on_device(b, 0);
    let a = create(b, "create");
    let key = ok(a.export(ExportFlags::DISABLE_PID_VALIDATION), "export");
    let s = stream(b, "create_stream");
    let mut peer = Remote::spawn(spawner, "importer that dies");
    peer.ok("dev 0");
    peer.ok(&import_line(ImportFlags::DEFAULT, &key));
    peer.abort();
    ok(a.record(&s), "record after the importer died");
    ok(a.wait_and_reset(&s, 5), "wait");
    sync_ok(&s, "the notify works after an importer died");
    drop(s);
    creator_destroy_frees_slot(
        b,
        a,
        "create after the creator destroyed (the dead importer's reference was reclaimed)",
    );
}

/// R9, R8: when the creator dies abruptly, an importer's handle keeps working and keeps the slot;
/// the slot is freed when that last live holder destroys it.
pub fn r9_dead_creator_notify_freed_with_last_importer<B: Backend>(b: &B, spawner: &dyn Spawner) {
    on_device(b, 0);
    let s = stream(b, "create_stream");
    let mut peer = Remote::spawn(spawner, "creator that dies");
    peer.ok("dev 0");
    peer.ok("create");
    let hex = peer.ok("export 2");
    let key = ExportKey::new(
        hex_decode(&hex).unwrap_or_else(|| panic!("the child's key {hex:?} is not hex")),
    )
    .unwrap_or_else(|e| panic!("the child's key is invalid: {e}"));
    let imported = ok(
        b.import_notify(&key, ImportFlags::DEFAULT),
        "import the child's notify",
    );
    let fillers = fill(b, "fill device 0");
    peer.abort();
    ok(imported.record(&s), "record after the creator died");
    sync_ok(&s, "the importer's record works after the creator died");
    assert_code(
        b.create_notify(NotifyFlags::DEFAULT),
        AclError::RT_NO_NOTIFY_RESOURCE,
        "create while this process still holds the dead creator's notify",
    );
    destroy(imported, "the last live holder destroys");
    let again = ok(
        b.create_notify(NotifyFlags::DEFAULT),
        "create after the last live holder destroyed",
    );
    drop(s);
    destroy(again, "destroy");
    destroy_all(fillers, "destroy fillers");
    finish(b, &[0]);
}

/// R9: a death never records: a wait whose only other holder dies still runs to its timeout
/// (107019), even when the death is reclaimed meanwhile; the notify works afterwards.
pub fn r9_death_never_records<B: Backend>(b: &B, spawner: &dyn Spawner) {
    on_device(b, 0);
    let a = create(b, "create");
    let key = ok(a.export(ExportFlags::DISABLE_PID_VALIDATION), "export");
    let s = stream(b, "create_stream");
    let mut peer = Remote::spawn(spawner, "importer that dies");
    peer.ok("dev 0");
    peer.ok(&import_line(ImportFlags::DEFAULT, &key));
    ok(a.wait_and_reset(&s, 3), "wait");
    peer.abort();
    // Any create reclaims the dead process (R9) while the wait is pending.
    let probe = create(b, "create (triggers reclamation)");
    destroy(probe, "destroy");
    assert_code(
        s.synchronize(),
        AclError::RT_WAIT_TIMEOUT,
        "the wait whose peer died must time out",
    );
    ok(a.record(&s), "record after reclamation");
    ok(a.wait_and_reset(&s, 5), "wait");
    sync_ok(&s, "the notify works after its importer was reclaimed");
    drop(s);
    destroy(a, "destroy");
    finish(b, &[0]);
}

// ---------------------------------------------------------------------------------------------
// R10 — Handles
// ---------------------------------------------------------------------------------------------

/// R10: notify ids are unique among the live notifies of a device and stable for a handle.
///
/// Bad handles (NULL, destroyed, foreign → 100000/107017) cannot be built with the Rust API.
pub fn r10_notify_ids_unique<B: Backend>(b: &B) {
    on_device(b, 0);
    let notifies: Vec<B::Notify> = (0..8).map(|i| create(b, &format!("create #{i}"))).collect();
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
    finish(b, &[0]);
}

/// R10: an importer sees the creator's id.
pub fn r10_importer_sees_creator_id<B: Backend>(b: &B, spawner: &dyn Spawner) {
    on_device(b, 0);
    let other = create(b, "another notify, so ids are not trivially 0");
    let a = create(b, "create");
    let id = ok(a.id(), "id");
    let key = ok(a.export(ExportFlags::DISABLE_PID_VALIDATION), "export");
    let mut peer = Remote::spawn(spawner, "importer on device 1");
    peer.ok("dev 1");
    peer.ok(&import_line(ImportFlags::ENABLE_PEER_ACCESS, &key));
    assert_eq!(peer.ok("id"), id.raw().to_string(), "the importer's id");
    peer.exit();
    destroy_all(vec![a, other], "destroy");
    finish(b, &[0]);
}

// ---------------------------------------------------------------------------------------------
// R11 — Capacity
// ---------------------------------------------------------------------------------------------

/// R11: a device holds at most its capacity (≤ 8192) of live notifies; one more fails with
/// 207009 and changes nothing; a destroy frees a slot for reuse; capacity is per device.
pub fn r11_capacity<B: Backend>(b: &B) {
    on_device(b, 0);
    let mut held = fill(b, "fill device 0");
    let capacity = held.len();
    assert!(capacity >= 1, "device 0 holds no notify at all");
    assert!(
        capacity <= DEFAULT_CAPACITY as usize,
        "device 0 held {capacity} notifies, more than CANN's {DEFAULT_CAPACITY}"
    );
    assert_code(
        b.create_notify(NotifyFlags::DEVICE_USE_ONLY),
        AclError::RT_NO_NOTIFY_RESOURCE,
        "create on a full device, again",
    );
    on_device(b, 1);
    let other = ok(
        b.create_notify(NotifyFlags::DEFAULT),
        "device 1 is not full when device 0 is",
    );
    destroy(other, "destroy on device 1");
    on_device(b, 0);
    destroy(held.pop().expect("one notify"), "destroy one");
    held.push(ok(
        b.create_notify(NotifyFlags::DEFAULT),
        "create into the freed slot",
    ));
    assert_code(
        b.create_notify(NotifyFlags::DEFAULT),
        AclError::RT_NO_NOTIFY_RESOURCE,
        "full again",
    );
    let s = stream(b, "create_stream");
    let last = held.last().expect("one notify");
    ok(last.record(&s), "record on the reused slot");
    ok(last.wait_and_reset(&s, 5), "wait on the reused slot");
    sync_ok(&s, "the reused slot works");
    drop(s);
    destroy_all(held, "destroy");
    finish(b, &[0, 1]);
}

// ---------------------------------------------------------------------------------------------
// R12 — Unsupported environments
// ---------------------------------------------------------------------------------------------

/// R12: in a virtualization instance export, import and set-import-pid fail with 207000 (R15:
/// before bad arguments and state), while a local notify still works.
///
/// **Requires a backend built in virtualization mode** (the simulator with `virtualized(true)`
/// or `ASCEND_NOTIFY_SIM_VIRTUAL=1`); not part of [`single_checks`].
pub fn r12_virtualized<B: Backend>(b: &B) {
    assert_code(
        b.import_notify(&junk_key(), ImportFlags::DEFAULT),
        AclError::RT_CONTEXT_NULL,
        "import without a context (context before virtualization)",
    );
    on_device(b, 0);
    let a = create(b, "create works");
    let s = stream(b, "create_stream");
    ok(a.record(&s), "record works");
    ok(a.wait_and_reset(&s, 5), "wait works");
    sync_ok(&s, "a local notify works");
    for flags in [ExportFlags::DEFAULT, ExportFlags::DISABLE_PID_VALIDATION] {
        assert_code(
            a.export(flags),
            AclError::RT_FEATURE_NOT_SUPPORT,
            &format!("export with {flags:?}"),
        );
    }
    assert_code(
        a.set_import_pids(&fake_pids(1_000_000, 1)),
        AclError::RT_FEATURE_NOT_SUPPORT,
        "set_import_pids (virtualization before the not-exported state)",
    );
    assert_code(
        a.set_import_pids(&[]),
        AclError::RT_FEATURE_NOT_SUPPORT,
        "set_import_pids with an empty list (virtualization before the count)",
    );
    for flags in [ImportFlags::DEFAULT, ImportFlags::ENABLE_PEER_ACCESS] {
        assert_code(
            b.import_notify(&junk_key(), flags),
            AclError::RT_FEATURE_NOT_SUPPORT,
            "import (virtualization before the key format)",
        );
    }
    drop(s);
    destroy(a, "destroy");
    finish(b, &[0]);
}

// ---------------------------------------------------------------------------------------------
// R13 — Contexts
// ---------------------------------------------------------------------------------------------

/// R13: create, import, stream creation and enqueue need a current device (107002); a stream is
/// bound to the device current at its creation and fails elsewhere with 107003; device ids
/// outside `0..count` fail with 107001.
pub fn r13_contexts<B: Backend>(b: &B) {
    let count = ok(b.device_count(), "device_count");
    assert!(
        count >= 2,
        "the suite needs 2 devices, the backend has {count}"
    );
    let count = count as i32;
    let no_ctx = AclError::RT_CONTEXT_NULL;
    assert_code(b.current_device(), no_ctx, "current_device at the start");
    assert_code(
        b.create_notify(NotifyFlags::DEFAULT),
        no_ctx,
        "create without a device",
    );
    assert_code(b.create_stream(), no_ctx, "create_stream without a device");
    assert_code(
        b.default_stream(),
        no_ctx,
        "default_stream without a device",
    );
    assert_code(
        b.import_notify(&junk_key(), ImportFlags::DEFAULT),
        no_ctx,
        "import without a device",
    );
    for bad in [count, count + 7, -1] {
        assert_code(
            b.set_device(DeviceId(bad)),
            AclError::RT_INVALID_DEVICEID,
            &format!("set_device({bad})"),
        );
        assert_code(
            b.reset_device(DeviceId(bad)),
            AclError::RT_INVALID_DEVICEID,
            &format!("reset_device({bad})"),
        );
    }
    assert_code(
        b.current_device(),
        no_ctx,
        "a refused set_device sets nothing",
    );

    on_device(b, 0);
    assert_eq!(ok(b.current_device(), "current_device"), DeviceId(0));
    let s0 = stream(b, "stream on device 0");
    assert_eq!(s0.device(), DeviceId(0), "stream bound to device 0");
    let n0 = create(b, "notify on device 0");
    on_device(b, 1);
    assert_eq!(ok(b.current_device(), "current_device"), DeviceId(1));
    assert_code(
        n0.record(&s0),
        AclError::RT_STREAM_CONTEXT,
        "record on device 0's stream while device 1 is current",
    );
    assert_code(
        n0.wait_and_reset(&s0, 1),
        AclError::RT_STREAM_CONTEXT,
        "wait on device 0's stream while device 1 is current",
    );
    let s1 = stream(b, "stream on device 1");
    assert_eq!(s1.device(), DeviceId(1), "stream bound to device 1");
    on_device(b, 0);
    ok(n0.record(&s0), "record on device 0's stream under device 0");
    ok(
        n0.wait_and_reset(&s0, 5),
        "wait on device 0's stream under device 0",
    );
    sync_ok(&s0, "device 0's stream works under device 0");

    ok(b.reset_device(DeviceId(1)), "reset device 1");
    assert_eq!(
        ok(b.current_device(), "current_device"),
        DeviceId(0),
        "resetting a device that is not current keeps the current one"
    );
    ok(b.reset_device(DeviceId(0)), "reset device 0");
    assert_code(b.current_device(), no_ctx, "no current device after reset");
    assert_code(n0.record(&s0), no_ctx, "record without a device");
    assert_code(n0.wait_and_reset(&s0, 1), no_ctx, "wait without a device");
    assert_code(
        b.create_notify(NotifyFlags::DEFAULT),
        no_ctx,
        "create after reset",
    );

    // The reset may have released the device's resources: drop without asserting.
    on_device(b, 0);
    drop((s0, s1));
    drop(n0);
    finish(b, &[0]);
}

// ---------------------------------------------------------------------------------------------
// R14 — No harm from others
// ---------------------------------------------------------------------------------------------

/// R14: failing calls change nothing: after a series of refused calls on and around a notify,
/// its flag is still clear, its export mode and id unchanged, and it still works.
pub fn r14_failed_calls_change_nothing<B: Backend>(b: &B) {
    on_device(b, 0);
    let a = create(b, "create");
    let id = ok(a.id(), "id");
    let key = ok(a.export(ExportFlags::DEFAULT), "export");
    let p = fake_pids(4_000_000, 70);
    ok(a.set_import_pids(&p[..1]), "whitelist one pid");
    on_device(b, 1);
    let s1 = stream(b, "stream on device 1");
    assert_code(
        a.wait_and_reset(&s1, 1),
        AclError::RT_PARAM_INVALID,
        "wait on device 1",
    );
    on_device(b, 0);
    let s = stream(b, "create_stream");
    assert_code(
        a.record(&s1),
        AclError::RT_STREAM_CONTEXT,
        "record on device 1's stream",
    );
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
        a.set_import_pids(&[]),
        AclError::RT_PARAM_INVALID,
        "empty whitelist call",
    );
    assert_code(
        a.set_import_pids(&p[1..70]),
        AclError::RT_PARAM_INVALID,
        "whitelist overflow",
    );
    assert_code(
        b.import_notify(&key, ImportFlags::DEFAULT),
        AclError::RT_INTERNAL_ERROR,
        "import own",
    );
    assert_code(
        b.import_notify(&junk_key(), ImportFlags::DEFAULT),
        AclError::RT_PARAM_INVALID,
        "import junk",
    );
    for variant in mutations(&key) {
        assert_code_in(
            b.import_notify(&variant, ImportFlags::DEFAULT),
            &[AclError::RT_PARAM_INVALID, AclError::RT_DRV_INTERNAL_ERROR],
            "import of a changed key",
        );
    }
    assert_code(
        b.batch_reset(&[]),
        AclError::RT_PARAM_INVALID,
        "empty batch_reset",
    );

    ok(a.wait_and_reset(&s, 1), "wait");
    assert_code(
        s.synchronize(),
        AclError::RT_WAIT_TIMEOUT,
        "no refused call set the flag",
    );
    assert_eq!(ok(a.id(), "id"), id, "the id changed");
    ok(
        a.set_import_pids(&p[1..64]),
        "still a DEFAULT export with 1 pid: 63 more fit",
    );
    ok(a.record(&s), "record");
    ok(a.wait_and_reset(&s, 5), "wait");
    sync_ok(&s, "the notify still works");
    drop((s, s1));
    destroy(a, "destroy");
    finish(b, &[0, 1]);
}

/// R14: a peer's bad input and its abrupt death neither set, free nor change a notify it was
/// allowed to import: the creator's flag stays clear, its id and export state stay, and it
/// works afterwards.
pub fn r14_peer_bad_input_and_death_harm_nothing<B: Backend>(b: &B, spawner: &dyn Spawner) {
    on_device(b, 0);
    let a = create(b, "create");
    let id = ok(a.id(), "id");
    let key = ok(a.export(ExportFlags::DEFAULT), "export");
    let s = stream(b, "create_stream");
    let mut peer = Remote::spawn(spawner, "misbehaving importer");
    peer.ok("dev 0");
    let pid = peer.pid();
    ok(a.set_import_pids(&[pid]), "whitelist the peer");
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
    peer.err("export 0", AclError::RT_NO_PERMISSION);
    peer.err("export 2", AclError::RT_NO_PERMISSION);
    peer.err(&setpids_line(&[pid]), AclError::RT_NO_PERMISSION);
    peer.err("setpids", AclError::RT_PARAM_INVALID);
    peer.err("wait 1", AclError::RT_PARAM_INVALID);
    peer.ok("dev 1");
    peer.err("record 0", AclError::RT_STREAM_CONTEXT);
    peer.err("wait 1 0", AclError::RT_STREAM_CONTEXT);
    peer.ok("dev 0");
    peer.ok("destroy");
    peer.ok(&good);
    peer.abort();

    ok(a.wait_and_reset(&s, 1), "wait after the peer died");
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
    ok(
        a.set_import_pids(&fake_pids(1_000_000, 2)),
        "still a DEFAULT export",
    );
    ok(a.record(&s), "record");
    ok(a.wait_and_reset(&s, 5), "wait");
    sync_ok(&s, "the notify still works");
    drop(s);
    destroy(a, "destroy");
    finish(b, &[0]);
}

// ---------------------------------------------------------------------------------------------
// R15 — Order of checks
// ---------------------------------------------------------------------------------------------

/// R15: when two things are wrong, the earlier check decides: context before key format,
/// device id and flags; stream device before the R4 state; argument count before permission;
/// "already held" before "not whitelisted" and "no peer access"; context before capacity.
///
/// Combinations with NULL pointers, bad handles or unknown flag bits cannot be built in Rust;
/// "revoked before already held" and the importer's combinations are in
/// [`r15_order_of_checks_across_processes`].
pub fn r15_order_of_checks<B: Backend>(b: &B) {
    let count = ok(b.device_count(), "device_count") as i32;
    let no_ctx = AclError::RT_CONTEXT_NULL;
    // No context beats a malformed key, a bad device id and bad flags.
    assert_code(
        b.import_notify(&junk_key(), ImportFlags::ENABLE_PEER_ACCESS),
        no_ctx,
        "import of a malformed key without a context",
    );
    assert_code(
        b.enable_peer_access(DeviceId(count), 0),
        no_ctx,
        "enable_peer_access to a bad device without a context",
    );
    assert_code(
        b.enable_peer_access(DeviceId(1), 1),
        no_ctx,
        "enable_peer_access with bad flags without a context",
    );

    // Stream of another device (107003) beats "wait on another device" (107000).
    on_device(b, 0);
    let s0 = stream(b, "stream on device 0");
    let f = create(b, "f on device 0");
    let kf = ok(f.export(ExportFlags::DISABLE_PID_VALIDATION), "export f");
    on_device(b, 1);
    let n1 = create(b, "notify on device 1");
    assert_code(
        n1.wait_and_reset(&s0, 1),
        AclError::RT_STREAM_CONTEXT,
        "wait on device 0's stream, for a notify of device 1, under device 1",
    );

    // A bad count (107000) beats the DISABLE permission (207006).
    ok(
        n1.export(ExportFlags::DISABLE_PID_VALIDATION),
        "export n1 with DISABLE",
    );
    assert_code(
        n1.set_import_pids(&[]),
        AclError::RT_PARAM_INVALID,
        "empty whitelist call on a DISABLE export",
    );

    // Already held (507000) beats not whitelisted (507899).
    let e = create(b, "e on device 1");
    let ke = ok(
        e.export(ExportFlags::DEFAULT),
        "export e, whitelist left empty",
    );
    assert_code(
        b.import_notify(&ke, ImportFlags::DEFAULT),
        AclError::RT_INTERNAL_ERROR,
        "import own notify that is not whitelisted",
    );
    // Already held (507000) beats no peer access (507899): f is on device 0, device 1 is
    // current. (Whether this process enabled 1 → 0 earlier does not change the answer.)
    assert_code(
        b.import_notify(&kf, ImportFlags::DEFAULT),
        AclError::RT_INTERNAL_ERROR,
        "import own notify of another device without the peer-access flag",
    );

    // No context (107002) beats a full device (207009).
    on_device(b, 0);
    let fillers = fill(b, "fill device 0");
    ok(b.reset_device(DeviceId(1)), "reset device 1");
    ok(b.reset_device(DeviceId(0)), "reset device 0");
    assert_code(
        b.create_notify(NotifyFlags::DEFAULT),
        no_ctx,
        "create without a context while device 0 is full",
    );

    // The resets may have released the devices' resources: drop without asserting.
    on_device(b, 0);
    drop(fillers);
    drop(s0);
    drop((f, n1, e));
    finish(b, &[0]);
}

/// R15 across processes, in an importer: a bad count (107000) beats permission (207006);
/// permission (207006) beats "exported twice" (507000); the stream's device (107003) and no
/// context (107002) beat the non-creator wait (107000); no context beats "already held"; and a
/// revoked key (507899) beats "already held" (507000).
pub fn r15_order_of_checks_across_processes<B: Backend>(b: &B, spawner: &dyn Spawner) {
    on_device(b, 0);
    let a = create(b, "create");
    let key = ok(a.export(ExportFlags::DISABLE_PID_VALIDATION), "export");
    let line = import_line(ImportFlags::DEFAULT, &key);
    let mut peer = Remote::spawn(spawner, "importer");
    peer.ok("dev 1");
    peer.ok("dev 0");
    peer.ok(&line);
    peer.err("setpids", AclError::RT_PARAM_INVALID);
    peer.err("export 0", AclError::RT_NO_PERMISSION);
    peer.err("wait 1 1", AclError::RT_STREAM_CONTEXT);
    peer.err(&line, AclError::RT_INTERNAL_ERROR);
    peer.ok("undev 0");
    peer.err("wait 1 0", AclError::RT_CONTEXT_NULL);
    peer.err("record 0", AclError::RT_CONTEXT_NULL);
    peer.err(&line, AclError::RT_CONTEXT_NULL);
    peer.ok("dev 0");
    destroy(a, "creator destroys: the key is revoked");
    peer.err(&line, AclError::RT_DRV_INTERNAL_ERROR);
    peer.ok("record");
    peer.ok("sync");
    peer.exit();
    finish(b, &[0]);
}
