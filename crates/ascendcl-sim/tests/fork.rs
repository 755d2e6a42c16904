//! R17 at the C ABI: a child forked from an attached process is not attached.
//!
//! The `forker` role (a child process of this test binary, run by `RoleSpawner`) calls
//! `aclInit`, gets stream worker threads busy — a wait enqueued and blocked on a notify nobody
//! records, and a thread that records and waits in a loop — and then forks with `libc::fork`
//! while they run. In the forked child:
//! - every ACL call fails with 100001 until the child's own `aclInit`;
//! - after it, every handle inherited from the parent is 107017, the child has a bare tgid of
//!   its own (not the parent's), and it can create, export, whitelist, record and wait on
//!   notifies of its own;
//! - nothing it does changes what the parent holds: after the child is gone, the parent's
//!   notifies still work (the blocked wait is released by a record, the recording thread never
//!   saw a failure), their whitelists and export states are what they were, and the inspector
//!   (`backend_sim::inspect::inspect`) shows them as before.
//!
//! Two more children cover the exits: one that exits (running the `atexit` handlers it
//! inherited) without ever calling `aclInit`, and one that attaches and exits without
//! `aclFinalize`; neither may detach or disturb the parent.
//!
//! No child may hang: each forked child is waited for with a deadline and killed (failing the
//! test) if it misses it, and carries an `alarm` of its own as a backstop; the `forker` role
//! has one too. The forked child reports through a pipe with `write(2)`, never through the
//! standard streams, whose locks another thread of the parent may have held at the fork.

use std::ffi::{CStr, c_char, c_void};
use std::time::{Duration, Instant};

use ascendcl::*;
use backend_sim::testing::{RoleSpawner, ScopedNamespace, child_role};
use backend_sim::{ENV_BARE_TGID, ENV_NAMESPACE};

const SUCCESS: i32 = 0;
const UNINITIALIZE: i32 = 100_001;
const REPEAT_INITIALIZE: i32 = 100_002;
const INVALID_HANDLE: i32 = 107_017;
const DRV_INTERNAL_ERROR: i32 = 507_899;

/// How long a forked child may take before it counts as hung.
const CHILD_DEADLINE: Duration = Duration::from_secs(30);
/// The forked child's own backstop (`alarm`), in seconds.
const CHILD_ALARM_S: u32 = 45;
/// How many times each kind of child is forked.
const FORK_ROUNDS: usize = 8;
/// The `forker` role's backstop, in seconds.
const FORKER_ALARM_S: u32 = 120;

/// A C handle (`aclrtNotify`, `aclrtStream`).
type Handle = *mut c_void;

const NULL: Handle = std::ptr::null_mut();

/// Safe wrappers over the exports (out-parameters as `&mut`, inputs as slices).
mod c {
    use super::*;

    pub fn create_notify(n: &mut Handle) -> i32 {
        // SAFETY: a live `&mut` to a `void *`.
        unsafe { aclrtCreateNotify(n, 0) }
    }

    pub fn create_stream(s: &mut Handle) -> i32 {
        // SAFETY: a live `&mut` to a `void *`.
        unsafe { aclrtCreateStream(s) }
    }

    pub fn device_count(n: &mut u32) -> i32 {
        // SAFETY: a live `&mut u32`.
        unsafe { aclrtGetDeviceCount(n) }
    }

    pub fn get_device(d: &mut i32) -> i32 {
        // SAFETY: a live `&mut i32`.
        unsafe { aclrtGetDevice(d) }
    }

    pub fn bare_tgid(p: &mut i32) -> i32 {
        // SAFETY: a live `&mut i32`.
        unsafe { aclrtDeviceGetBareTgid(p) }
    }

    pub fn notify_id(n: Handle, id: &mut u32) -> i32 {
        // SAFETY: a live `&mut u32`; the handle is a token, never dereferenced.
        unsafe { aclrtGetNotifyId(n, id) }
    }

    /// Exports into a 65-byte buffer and returns the key (NUL included) on success.
    pub fn export(n: Handle, flags: u64) -> (i32, Vec<u8>) {
        let mut buf = [0u8; 65];
        // SAFETY: 65 writable bytes.
        let rc =
            unsafe { aclrtNotifyGetExportKey(n, buf.as_mut_ptr().cast::<c_char>(), 65, flags) };
        let nul = buf.iter().position(|&b| b == 0).unwrap_or(64);
        (rc, buf[..=nul].to_vec())
    }

    pub fn import(n: &mut Handle, key: &[u8], flags: u64) -> i32 {
        assert!(key.contains(&0), "test bug: an unterminated key");
        // SAFETY: a live `&mut` to a `void *`; a NUL-terminated key.
        unsafe { aclrtNotifyImportByKey(n, key.as_ptr().cast::<c_char>(), flags) }
    }

    pub fn set_pid(n: Handle, pid: i32) -> i32 {
        let mut pid = pid;
        // SAFETY: one readable pid.
        unsafe { aclrtNotifySetImportPid(n, &mut pid, 1) }
    }

    pub fn batch_reset(hs: &[Handle]) -> i32 {
        // SAFETY: `hs.len()` readable handles (never written through).
        unsafe { aclrtNotifyBatchReset(hs.as_ptr().cast_mut(), hs.len()) }
    }

    /// This thread's `aclGetRecentErrMsg` text.
    pub fn err_msg() -> Option<String> {
        let p = aclGetRecentErrMsg();
        if p.is_null() {
            return None;
        }
        // SAFETY: a NUL-terminated string that stays valid until the next failure in this
        // thread; copied at once.
        Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }
}

/// Whether `text` starts with a rule as `SEMANTICS.md` writes it and `notify_api::Rule` lists
/// it (`R7:`, `C1:`, `§4:`), then a colon.
fn cites_rule(text: &str) -> bool {
    text.split_once(':')
        .is_some_and(|(label, _)| notify_api::Rule::ALL.iter().any(|r| r.as_str() == label))
}

/// Rows that collect their failures instead of panicking (a forked child reports them through a
/// pipe).
#[derive(Default)]
struct Rows {
    count: usize,
    failures: Vec<String>,
}

impl Rows {
    /// `got` must be `want`; after a failure the error text must cite a rule.
    fn row(&mut self, name: &str, want: i32, got: i32) {
        self.count += 1;
        let mut problems = Vec::new();
        if got != want {
            problems.push(format!("returned {got}, expected {want}"));
        }
        if want != SUCCESS {
            let msg = c::err_msg().unwrap_or_default();
            if !cites_rule(&msg) {
                problems.push(format!("message does not start with a rule: {msg:?}"));
            }
        }
        if !problems.is_empty() {
            self.failures
                .push(format!("{name}: {}", problems.join("; ")));
        }
    }

    fn expect(&mut self, name: &str, holds: bool, detail: impl std::fmt::Display) {
        self.count += 1;
        if !holds {
            self.failures.push(format!("{name}: {detail}"));
        }
    }

    fn report(&self, what: &str) -> String {
        if self.failures.is_empty() {
            format!("{what}: all {} rows passed\n", self.count)
        } else {
            format!(
                "{what}: {} of {} rows failed:\n{}\n",
                self.failures.len(),
                self.count,
                self.failures.join("\n")
            )
        }
    }
}

/// What the parent holds, as the forked child knows it (copied by the fork).
#[derive(Clone, Copy)]
struct Inherited {
    /// The parent's bare tgid.
    tgid: i32,
    /// The notify a wait is blocked on, its stream, and the recording thread's notify and
    /// stream.
    waited: Handle,
    wait_stream: Handle,
    recorded: Handle,
    record_stream: Handle,
    /// Exported with flag 0x0, one fake pid whitelisted.
    exported: Handle,
}

/// The notify `id` of device 0 in `ns`, as the inspector shows it (`Debug` text: every field).
fn seen(ns: &str, id: u32) -> String {
    backend_sim::inspect::inspect(ns)
        .expect("inspect")
        .expect("the namespace exists")
        .notifies
        .iter()
        .find(|n| n.device == 0 && n.id == id)
        .map_or_else(|| "gone".to_owned(), |n| format!("{n:?}"))
}

/// The live processes of `ns` as (bare tgid, alive).
fn processes(ns: &str) -> Vec<(i32, bool)> {
    backend_sim::inspect::inspect(ns)
        .expect("inspect")
        .expect("the namespace exists")
        .processes
        .iter()
        .map(|p| (p.tgid, p.alive))
        .collect()
}

#[test]
#[ignore = "entry point of spawned child processes"]
fn child() {
    let Some(role) = child_role() else { return };
    match role.as_str() {
        "forker" => forker(),
        other => panic!("unknown role {other}"),
    }
}

fn run_forker(label: &str, env: &[(&str, &str)]) {
    let ns = ScopedNamespace::new(label);
    RoleSpawner::new("child", &ns)
        .with_env(env)
        .run("forker")
        .assert_passed("the forker role", "forker: all passed");
    let left = backend_sim::namespace_files(ns.name());
    assert!(left.is_empty(), "left in /dev/shm: {left:?}");
}

/// R17, with the bare tgid of the host namespace (`getpid()`).
#[test]
fn forked_child_is_not_attached_and_changes_nothing_of_the_parent() {
    run_forker("fork", &[]);
}

/// R17 and R16: the same with synthetic bare tgids (`ASCEND_NOTIFY_SIM_BARE_TGID=remap`), so that
/// "its own bare tgid" cannot come from `getpid()` alone.
#[test]
fn forked_child_gets_its_own_remapped_bare_tgid() {
    run_forker("fork-remap", &[(ENV_BARE_TGID, "remap")]);
}

/// How a forked child ends.
#[derive(Clone, Copy, Debug)]
enum Exit {
    /// The whole R17 scenario, then `aclFinalize` and a normal exit.
    Full,
    /// The 100001 rows only, then a normal exit (the inherited `atexit` handlers run) without
    /// ever calling `aclInit`.
    NeverAttached,
    /// `aclInit`, a notify of its own, then a normal exit without `aclFinalize` (its own
    /// session detaches at exit, the parent's must not).
    WithoutFinalize,
}

fn forker() {
    // SAFETY: `alarm` has no preconditions; SIGALRM's default action ends this role if it hangs.
    unsafe { libc::alarm(FORKER_ALARM_S) };
    let ns = std::env::var(ENV_NAMESPACE).expect("run by RoleSpawner");
    let remap = std::env::var(ENV_BARE_TGID).is_ok_and(|v| v == "remap");
    let mut t = Rows::default();

    assert_eq!(aclInit(std::ptr::null()), SUCCESS);
    assert_eq!(aclrtSetDevice(0), SUCCESS);
    let mut tgid = 0;
    assert_eq!(c::bare_tgid(&mut tgid), SUCCESS);
    if !remap {
        assert_eq!(tgid, std::process::id() as i32, "R16: the host namespace");
    } else {
        assert_ne!(tgid, std::process::id() as i32, "R16: remap");
    }

    // A wait blocked on a notify nobody records (timeout 0: forever; released at the end).
    let (mut waited, mut wait_stream) = (NULL, NULL);
    assert_eq!(c::create_notify(&mut waited), SUCCESS);
    assert_eq!(c::create_stream(&mut wait_stream), SUCCESS);
    assert_eq!(aclrtWaitAndResetNotify(waited, wait_stream, 0), SUCCESS);
    assert_eq!(
        aclrtSynchronizeStreamWithTimeout(wait_stream, 50),
        507_046,
        "the wait is blocked"
    );

    // The notify a thread records and waits on in a loop, on a stream of its own.
    let (mut recorded, mut record_stream) = (NULL, NULL);
    assert_eq!(c::create_notify(&mut recorded), SUCCESS);
    assert_eq!(c::create_stream(&mut record_stream), SUCCESS);

    // Exported with flag 0x0, a fake importer whitelisted; and one exported with DISABLE.
    let mut exported = NULL;
    assert_eq!(c::create_notify(&mut exported), SUCCESS);
    let (rc, key) = c::export(exported, 0);
    assert_eq!(rc, SUCCESS);
    assert_eq!(c::set_pid(exported, 1_000_000), SUCCESS);
    let mut open = NULL;
    assert_eq!(c::create_notify(&mut open), SUCCESS);
    let (rc, open_key) = c::export(open, 0x2);
    assert_eq!(rc, SUCCESS);

    let ids: Vec<u32> = [waited, recorded, exported, open]
        .iter()
        .map(|&n| {
            let mut id = 0;
            assert_eq!(c::notify_id(n, &mut id), SUCCESS);
            id
        })
        .collect();
    // Watched through the inspector: every notify but the recorded one, whose flag changes all
    // the time.
    let watched = [ids[0], ids[2], ids[3]];
    let before: Vec<String> = watched.iter().map(|&id| seen(&ns, id)).collect();
    assert!(before[1].contains("whitelist: [1000000]"), "{}", before[1]);
    assert!(
        before[1].contains("exported: \"whitelist\""),
        "{}",
        before[1]
    );
    assert!(before[2].contains("exported: \"any-pid\""), "{}", before[2]);

    let inherited = Inherited {
        tgid,
        waited,
        wait_stream,
        recorded,
        record_stream,
        exported,
    };

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let recorder = {
        let stop = stop.clone();
        let (n, s) = (recorded.addr(), record_stream.addr());
        std::thread::spawn(move || {
            let n: Handle = std::ptr::without_provenance_mut(n);
            let s: Handle = std::ptr::without_provenance_mut(s);
            let mut codes = std::collections::BTreeSet::new();
            let mut rounds = 0u64;
            codes.insert(aclrtSetDevice(0));
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                codes.insert(aclrtRecordNotify(n, s));
                codes.insert(aclrtWaitAndResetNotify(n, s, 5));
                rounds += 1;
                if rounds.is_multiple_of(16) {
                    codes.insert(aclrtSynchronizeStream(s));
                }
            }
            codes.insert(aclrtSynchronizeStream(s));
            (codes, rounds)
        })
    };
    std::thread::sleep(Duration::from_millis(50));

    // Several rounds, so that some fork lands while the recording thread is inside a call
    // (holding its stream's or its cache's lock).
    let rounds = [Exit::Full, Exit::NeverAttached, Exit::WithoutFinalize].repeat(FORK_ROUNDS);
    for exit in rounds {
        let report = fork_and_wait(exit, &inherited, &key, &ns);
        print!("{report}");
        t.expect(
            &format!("the {exit:?} child passed"),
            report.starts_with(&format!("{exit:?} child: all ")) && report.contains("rows passed"),
            &report,
        );

        // Nothing of the parent changed.
        let now: Vec<String> = watched.iter().map(|&id| seen(&ns, id)).collect();
        t.expect(
            &format!(
                "after the {exit:?} child, the inspector shows the parent's notifies as before"
            ),
            now == before,
            format!("{before:#?} -> {now:#?}"),
        );
        let procs = processes(&ns);
        t.expect(
            &format!("after the {exit:?} child, the parent is the only process, alive"),
            procs == [(tgid, true)],
            format!("{procs:?}"),
        );
        let mut again = 0;
        t.row(
            &format!("after the {exit:?} child: the parent's bare tgid"),
            SUCCESS,
            c::bare_tgid(&mut again),
        );
        t.expect("it is unchanged", again == tgid, again);
        let mut dev = -1;
        t.row(
            "the parent's thread keeps its device",
            SUCCESS,
            c::get_device(&mut dev),
        );
        t.expect("device 0", dev == 0, dev);
    }

    // The parent's notifies still work: the blocked wait is released by a record, the recording
    // thread saw no failure, the whitelist and export state are the parent's to change.
    t.row(
        "the wait is still blocked",
        507_046,
        aclrtSynchronizeStreamWithTimeout(wait_stream, 50),
    );
    t.row(
        "record the waited notify on the default stream",
        SUCCESS,
        aclrtRecordNotify(waited, NULL),
    );
    t.row(
        "the blocked wait completed",
        SUCCESS,
        aclrtSynchronizeStreamWithTimeout(wait_stream, 10_000),
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (codes, rounds) = recorder.join().expect("the recording thread");
    t.expect(
        "the recording thread never failed across the forks",
        codes.iter().all(|&c| c == SUCCESS),
        format!("{codes:?}"),
    );
    t.expect("the recording thread made progress", rounds > 0, rounds);
    t.row(
        "the parent still sets pids on its export",
        SUCCESS,
        c::set_pid(exported, 1_000_001),
    );
    t.expect(
        "and its whitelist is its own",
        seen(&ns, ids[2]).contains("whitelist: [1000000, 1000001]"),
        seen(&ns, ids[2]),
    );
    let mut spare = NULL;
    t.row(
        "the parent's export key is still live: its own import is 'already held'",
        507_000,
        c::import(&mut spare, &key, 0),
    );
    // The DISABLE export's key still resolves (its own import: 'already held', not 'revoked').
    t.row(
        "the parent's DISABLE key is still live",
        507_000,
        c::import(&mut spare, &open_key, 0),
    );
    for (name, n) in [
        ("waited", waited),
        ("recorded", recorded),
        ("exported", exported),
        ("open", open),
    ] {
        t.row(&format!("destroy {name}"), SUCCESS, aclrtDestroyNotify(n));
    }
    t.row(
        "destroy the wait stream",
        SUCCESS,
        aclrtDestroyStream(wait_stream),
    );
    t.row(
        "destroy the record stream",
        SUCCESS,
        aclrtDestroyStream(record_stream),
    );
    t.row("aclFinalize", SUCCESS, aclFinalize());
    t.expect(
        "the last process out removed the namespace",
        !backend_sim::namespace_exists(&ns),
        &ns,
    );
    let report = t.report("forker");
    print!("{report}");
    assert!(t.failures.is_empty(), "{report}");
    println!("forker: all passed");
}

/// Forks a child that runs `exit`'s scenario, waits for it with [`CHILD_DEADLINE`] (killing it
/// if it misses it) and returns its report, with its exit status.
fn fork_and_wait(exit: Exit, inherited: &Inherited, key: &[u8], ns: &str) -> String {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let [read_fd, write_fd] = fds;
    // SAFETY: the child only runs `forked` and ends with `_exit` or `exit`; R17 is what this
    // tests: the library must cope with the locks other threads held at the fork.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: the child's own descriptor, and an `alarm` (no preconditions).
        unsafe {
            libc::close(read_fd);
            libc::alarm(CHILD_ALARM_S);
        }
        let report = std::panic::catch_unwind(|| forked(exit, inherited, key, ns))
            .unwrap_or_else(|_| format!("{exit:?} child: panicked (see stderr)\n"));
        write_all(write_fd, report.as_bytes());
        // SAFETY: the child's own descriptor.
        unsafe { libc::close(write_fd) };
        // A normal exit: the atexit handlers inherited from the parent run, and must leave the
        // parent alone (R17).
        std::process::exit(0);
    }
    // SAFETY: the parent's copy of the child's end.
    unsafe { libc::close(write_fd) };
    let reader = std::thread::spawn(move || read_all(read_fd));
    let started = Instant::now();
    let mut status = 0;
    let hung = loop {
        // SAFETY: `pid` is our child; `status` is writable.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break false;
        }
        assert_eq!(r, 0, "waitpid failed");
        if started.elapsed() > CHILD_DEADLINE {
            // SAFETY: our own child, not yet reaped.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            break true;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let report = reader.join().expect("reading the child's report");
    if hung {
        return format!(
            "{exit:?} child: HUNG (killed after {CHILD_DEADLINE:?}); it said:\n{report}"
        );
    }
    let exited = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    if !exited {
        return format!("{exit:?} child: exit status {status:#x}; it said:\n{report}");
    }
    report
}

fn write_all(fd: i32, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is readable for its length.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

fn read_all(fd: i32) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
    // SAFETY: our own descriptor.
    unsafe { libc::close(fd) };
    String::from_utf8_lossy(&out).into_owned()
}

/// The forked child: R17's rows. Returns its report.
fn forked(exit: Exit, p: &Inherited, key: &[u8], ns: &str) -> String {
    let mut t = Rows::default();
    let what = format!("{exit:?} child");
    let me = std::process::id() as i32;
    let all_inherited = [
        p.waited,
        p.wait_stream,
        p.recorded,
        p.record_stream,
        p.exported,
    ];

    // --- not attached: every call is 100001 ---------------------------------------------------
    let (mut n, mut s) = (NULL, NULL);
    let (mut count, mut dev, mut tgid, mut id) = (0u32, -1, 0, 0u32);
    t.row("set device", UNINITIALIZE, aclrtSetDevice(0));
    t.row("reset device", UNINITIALIZE, aclrtResetDevice(0));
    t.row(
        "get device (the parent's thread had device 0)",
        UNINITIALIZE,
        c::get_device(&mut dev),
    );
    t.row("device count", UNINITIALIZE, c::device_count(&mut count));
    t.row("bare tgid", UNINITIALIZE, c::bare_tgid(&mut tgid));
    t.row("create notify", UNINITIALIZE, c::create_notify(&mut n));
    t.row("create stream", UNINITIALIZE, c::create_stream(&mut s));
    t.row(
        "record(the parent's notify, its stream)",
        UNINITIALIZE,
        aclrtRecordNotify(p.recorded, p.record_stream),
    );
    t.row(
        "record(the parent's notify, the default stream)",
        UNINITIALIZE,
        aclrtRecordNotify(p.waited, NULL),
    );
    t.row(
        "wait(the parent's notify)",
        UNINITIALIZE,
        aclrtWaitAndResetNotify(p.waited, p.wait_stream, 1),
    );
    t.row(
        "synchronize(the parent's blocked stream)",
        UNINITIALIZE,
        aclrtSynchronizeStream(p.wait_stream),
    );
    t.row(
        "synchronize with timeout(the parent's stream)",
        UNINITIALIZE,
        aclrtSynchronizeStreamWithTimeout(p.record_stream, 10),
    );
    t.row(
        "notify id(the parent's notify)",
        UNINITIALIZE,
        c::notify_id(p.exported, &mut id),
    );
    t.row(
        "export(the parent's exported notify)",
        UNINITIALIZE,
        c::export(p.exported, 0).0,
    );
    t.row(
        "set pid(the parent's export, this pid)",
        UNINITIALIZE,
        c::set_pid(p.exported, me),
    );
    t.row(
        "import(the parent's key)",
        UNINITIALIZE,
        c::import(&mut n, key, 0),
    );
    t.row(
        "batch reset([the parent's notify])",
        UNINITIALIZE,
        c::batch_reset(&[p.recorded]),
    );
    t.row(
        "destroy(the parent's notify)",
        UNINITIALIZE,
        aclrtDestroyNotify(p.exported),
    );
    t.row(
        "destroy stream(the parent's stream)",
        UNINITIALIZE,
        aclrtDestroyStream(p.wait_stream),
    );
    t.row(
        "enable peer access",
        UNINITIALIZE,
        aclrtDeviceEnablePeerAccess(1, 0),
    );
    t.row("aclFinalize", UNINITIALIZE, aclFinalize());
    if let Exit::NeverAttached = exit {
        return t.report(&what);
    }

    // --- attached on its own ------------------------------------------------------------------
    t.row("aclInit", SUCCESS, aclInit(std::ptr::null()));
    t.row(
        "aclInit twice",
        REPEAT_INITIALIZE,
        aclInit(std::ptr::null()),
    );
    t.row("bare tgid", SUCCESS, c::bare_tgid(&mut tgid));
    t.expect(
        "its own bare tgid, not the parent's (R16, R17)",
        tgid != p.tgid && tgid > 0,
        format!("child {tgid}, parent {}", p.tgid),
    );
    let remap = std::env::var(ENV_BARE_TGID).is_ok_and(|v| v == "remap");
    t.expect(
        "in the host namespace it is getpid(), remapped it is not (R16)",
        (tgid == me) != remap,
        format!("bare tgid {tgid}, getpid {me}, remap {remap}"),
    );
    t.row(
        "no current device in a new session",
        107_002,
        c::get_device(&mut dev),
    );
    t.row("set device 0", SUCCESS, aclrtSetDevice(0));
    let procs = processes(ns);
    t.expect(
        "the inspector shows the parent and this child, alive, by their bare tgids",
        procs.len() == 2 && procs.contains(&(p.tgid, true)) && procs.contains(&(tgid, true)),
        format!("{procs:?}"),
    );

    // Inherited handles are dead here (R10, R17), and touching them changes nothing.
    for (i, &h) in all_inherited.iter().enumerate() {
        t.row(
            &format!("notify id(inherited handle #{i})"),
            INVALID_HANDLE,
            c::notify_id(h, &mut id),
        );
    }
    t.row(
        "record(the parent's notify, its stream)",
        INVALID_HANDLE,
        aclrtRecordNotify(p.recorded, p.record_stream),
    );
    t.row(
        "record(the parent's waited notify, the default stream)",
        INVALID_HANDLE,
        aclrtRecordNotify(p.waited, NULL),
    );
    t.row(
        "wait(the parent's notify, the default stream)",
        INVALID_HANDLE,
        aclrtWaitAndResetNotify(p.waited, NULL, 1),
    );
    t.row(
        "synchronize(the parent's blocked stream)",
        INVALID_HANDLE,
        aclrtSynchronizeStream(p.wait_stream),
    );
    t.row(
        "synchronize with timeout(the parent's stream)",
        INVALID_HANDLE,
        aclrtSynchronizeStreamWithTimeout(p.record_stream, 10),
    );
    t.row(
        "export(the parent's exported notify)",
        INVALID_HANDLE,
        c::export(p.exported, 0).0,
    );
    t.row(
        "set pid(the parent's export, this child)",
        INVALID_HANDLE,
        c::set_pid(p.exported, tgid),
    );
    t.row(
        "batch reset([the parent's notify])",
        INVALID_HANDLE,
        c::batch_reset(&[p.recorded]),
    );
    t.row(
        "destroy(the parent's notify)",
        INVALID_HANDLE,
        aclrtDestroyNotify(p.exported),
    );
    t.row(
        "destroy stream(the parent's stream)",
        INVALID_HANDLE,
        aclrtDestroyStream(p.wait_stream),
    );
    // The parent whitelisted a fake pid only: this child is a process like any other (R7).
    t.row(
        "import(the parent's key): not whitelisted",
        DRV_INTERNAL_ERROR,
        c::import(&mut n, key, 0),
    );

    // --- notifies of its own --------------------------------------------------------------------
    let (mut mine, mut stream) = (NULL, NULL);
    t.row("create a notify", SUCCESS, c::create_notify(&mut mine));
    t.row("create a stream", SUCCESS, c::create_stream(&mut stream));
    t.expect(
        "its tokens are not the parent's",
        !all_inherited.contains(&mine) && !all_inherited.contains(&stream),
        "a token repeats",
    );
    if let Exit::WithoutFinalize = exit {
        t.row("record it", SUCCESS, aclrtRecordNotify(mine, stream));
        // Ends without aclFinalize: this session detaches at exit, the parent's stays.
        return t.report(&what);
    }
    let (rc, my_key) = c::export(mine, 0);
    t.row("export it", SUCCESS, rc);
    t.row(
        "whitelist the parent on it",
        SUCCESS,
        c::set_pid(mine, p.tgid),
    );
    t.row("record it", SUCCESS, aclrtRecordNotify(mine, stream));
    t.row(
        "wait on it",
        SUCCESS,
        aclrtWaitAndResetNotify(mine, stream, 5),
    );
    t.row("synchronize", SUCCESS, aclrtSynchronizeStream(stream));
    t.row(
        "record it on the default stream",
        SUCCESS,
        aclrtRecordNotify(mine, NULL),
    );
    t.row(
        "synchronize the default stream",
        SUCCESS,
        aclrtSynchronizeStream(NULL),
    );
    t.row("wait again: the record was not lost", SUCCESS, {
        aclrtWaitAndResetNotify(mine, stream, 5)
    });
    t.row("synchronize", SUCCESS, aclrtSynchronizeStream(stream));
    t.row(
        "its own key: already held",
        507_000,
        c::import(&mut n, &my_key, 0),
    );
    t.row("destroy it", SUCCESS, aclrtDestroyNotify(mine));
    t.row("destroy its stream", SUCCESS, aclrtDestroyStream(stream));
    t.row("reset device 0", SUCCESS, aclrtResetDevice(0));
    t.row("aclFinalize", SUCCESS, aclFinalize());
    t.row(
        "after aclFinalize: 100001 again",
        UNINITIALIZE,
        c::device_count(&mut count),
    );
    t.report(&what)
}
