//! R17 across real processes, with the typed API: a process forked from an attached one.
//!
//! The test process starts a child (role `"forker"`, this binary re-executed) that attaches,
//! creates notifies, exports one (whitelisting the test process), and keeps its streams busy: a
//! wait enqueued on a notify nobody records yet (run by the stream's worker thread), and a
//! thread that records another notify and synchronizes in a loop. Then it calls `fork()`. The
//! forked grandchild:
//!
//! 1. uses every inherited value (runtime, device, streams, notifies): each call fails with
//!    100001 (`ACL_ERROR_UNINITIALIZE`), the grandchild being attached to nothing;
//! 2. builds its own runtime: the inherited values then fail with 107017 (`INVALID_HANDLE`),
//!    and its own runtime works, with its own bare tgid; it waits there until the test process
//!    has inspected the namespace;
//! 3. drops the inherited values (or not) and exits.
//!
//! It reports each check over a pipe; it never prints, never returns into the test harness
//! (`_exit`/`exit` only), and `alarm(30)` bounds its life, so it cannot hang. The child relays
//! the reports, bounds every read with a deadline and kills a grandchild that overstays. The
//! test process then checks that nothing the grandchild did changed what the child holds: the
//! child's notifies are still listed with the child as their only holder and creator, its
//! pending wait is released by the test process's import of its export, its other notify still
//! records and waits, and nothing of the grandchild is left in the namespace.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::FromRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use backend_sim::testing::{ScopedNamespace, StdioLink, child_role};
use backend_sim::{SimDevice, SimNotify, SimRuntime, SimStream, inspect};
use notify_api::prelude::*;
use notify_api::{
    AclError, DeviceId, ExportFlags, ExportKey, ImportFlags, NotifyFlags, Pid, Result, Timeout,
};

mod common;
use common::Proc;

/// `FORK_TEST_MODE`: `drop` (the grandchild drops every inherited value before it exits),
/// `keep` (it exits with them alive, through `exit` and the runtime's exit handler), or
/// `orphan` (it never attaches, and outlives the child, which the test process kills).
const ENV_MODE: &str = "FORK_TEST_MODE";

/// `FORK_TEST_RELEASE`: in `orphan` mode, a file whose creation ends the grandchild.
const ENV_RELEASE: &str = "FORK_TEST_RELEASE";

/// How long the child waits for the grandchild's next report, or for it to exit.
const GRANDCHILD_LIMIT: Duration = Duration::from_secs(20);

/// The check the typed API fails at 2ccc0b2 (`Runtime::device_count` of an inherited runtime):
/// left out of the two scenario tests, asserted by `fork_inherited_device_count_is_refused`.
const DEVICE_COUNT: &str = "rt.device_count";

// ---------------------------------------------------------------------------------------------
// The child and the grandchild.

#[test]
#[ignore = "entry point of spawned child processes"]
fn child() {
    let Some(role) = child_role() else { return };
    match role.as_str() {
        "forker" => forker(),
        other => panic!("unknown role {other}"),
    }
}

/// What the child holds when it forks.
struct Inherited {
    rt: SimRuntime,
    dev: SimDevice,
    /// Runs the pending wait.
    s: SimStream,
    /// The recorder thread's stream (its lock may be held at the fork).
    s2: Arc<SimStream>,
    /// For the grandchild to destroy.
    s3: Option<SimStream>,
    /// Exported (whitelist: the test process), waited on, recorded by nobody until the test
    /// process imports it.
    pending: SimNotify,
    key: ExportKey,
    /// Recorded in a loop by the recorder thread.
    busy: Arc<SimNotify>,
    /// For the grandchild to destroy before and after it attaches.
    spare1: Option<SimNotify>,
    spare2: Option<SimNotify>,
}

/// Serves the test process: `ready <tgid> <key> <ids...>`, `whitelist <pid>`, `fork` (then the
/// grandchild's reports as `gc <line>` and `gc-exit <status>`), `sync` (`released` once the
/// pending wait passed), `cycle` (record and wait on `busy`), `quit`.
fn forker() {
    let mode = std::env::var(ENV_MODE).unwrap_or_else(|_| "drop".into());
    let mut link = StdioLink;
    let rt = SimRuntime::from_env().expect("the child attaches");
    let dev = rt.device(DeviceId(0)).unwrap();
    let pending = dev.create_notify(NotifyFlags::DEFAULT).unwrap();
    let key = pending.export(ExportFlags::DEFAULT).unwrap();
    let inh = Inherited {
        s: dev.create_stream().unwrap(),
        s2: Arc::new(dev.create_stream().unwrap()),
        s3: Some(dev.create_stream().unwrap()),
        busy: Arc::new(dev.create_notify(NotifyFlags::DEFAULT).unwrap()),
        spare1: Some(dev.create_notify(NotifyFlags::DEFAULT).unwrap()),
        spare2: Some(dev.create_notify(NotifyFlags::DEFAULT).unwrap()),
        pending,
        key,
        dev,
        rt,
    };
    let tgid = inh.rt.bare_tgid().unwrap();
    let id = |n: &SimNotify| n.id().unwrap().0;
    link.send(&format!(
        "ready {tgid} {} {} {} {} {}",
        inh.key,
        id(&inh.pending),
        id(&inh.busy),
        id(inh.spare1.as_ref().unwrap()),
        id(inh.spare2.as_ref().unwrap()),
    ));
    let line = link.recv();
    let pid: i32 = line.strip_prefix("whitelist ").unwrap().parse().unwrap();
    inh.pending.set_import_pid(Pid(pid)).unwrap();
    link.send("ok");

    // The streams at work: a wait nobody releases yet, run by the stream's worker thread...
    inh.s.wait(&inh.pending, Timeout::secs(60)).unwrap();
    // ... and a thread recording and synchronizing in a loop.
    let stop = Arc::new(AtomicBool::new(false));
    let recorder = {
        let (s2, busy, stop) = (inh.s2.clone(), inh.busy.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                s2.record(&busy).unwrap();
                s2.synchronize().unwrap();
                n += 1;
            }
            n
        })
    };
    // Let the worker take the wait and the recorder get going.
    std::thread::sleep(Duration::from_millis(50));

    assert_eq!(link.recv(), "fork");
    let (from_gc, to_c) = pipe();
    let (from_c, to_gc) = pipe();
    // SAFETY: `fork` has no preconditions; the grandchild below only runs `grandchild`, which
    // never returns (it ends in `exit`/`_exit`).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
    if pid == 0 {
        drop((from_gc, to_gc));
        grandchild(inh, &mode, tgid, to_c, from_c);
    }
    drop((to_c, from_c));
    relay(&mut link, pid, from_gc, to_gc);

    stop.store(true, Ordering::Relaxed);
    let records = recorder.join().expect("the recorder thread");
    assert!(records > 0, "the recorder never recorded");
    loop {
        let line = link.recv();
        match line.as_str() {
            "sync" => {
                let r = inh.s.synchronize_timeout(Some(Duration::from_secs(20)));
                link.send(&r.map_or_else(|e| format!("err {e}"), |()| "released".into()));
            }
            "cycle" => {
                let r = inh
                    .s2
                    .record(&inh.busy)
                    .and_then(|()| inh.s2.wait(&inh.busy, Timeout::secs(5)))
                    .and_then(|()| inh.s2.synchronize());
                link.send(&r.map_or_else(|e| format!("err {e}"), |()| "ok".into()));
            }
            "quit" => break,
            other => panic!("unknown command {other}"),
        }
    }
    drop(inh);
    link.send("forker: done");
}

/// A pipe: (read end, write end).
fn pipe() -> (File, File) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors `pipe` writes.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    // SAFETY: both descriptors were just opened by `pipe` and are owned by nobody else.
    unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) }
}

/// The child's side while the grandchild runs: relays its report lines as `gc <line>`, passes
/// the test process's `go` on, then reaps it (killing it past [`GRANDCHILD_LIMIT`]) and reports
/// `gc-exit <code>` or `gc-exit signal <n>` (or `gc-hung ...`).
fn relay(link: &mut StdioLink, pid: i32, from_gc: File, mut to_gc: File) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(from_gc).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    loop {
        match rx.recv_timeout(GRANDCHILD_LIMIT) {
            Ok(line) => {
                let attached = line.starts_with("attached ");
                link.send(&format!("gc {line}"));
                if attached {
                    let go = link.recv();
                    assert_eq!(go, "go");
                    let _ = writeln!(to_gc, "go");
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                link.send(&format!(
                    "gc-hung: no report for {GRANDCHILD_LIMIT:?}; killing it"
                ));
                // SAFETY: `pid` is our own child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                break;
            }
        }
    }
    let t = Instant::now();
    let mut status = 0;
    loop {
        // SAFETY: `pid` is our own child; `status` is ours to write.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break;
        }
        assert!(r == 0, "waitpid: {}", std::io::Error::last_os_error());
        if t.elapsed() > GRANDCHILD_LIMIT {
            link.send(&format!(
                "gc-hung: still running {GRANDCHILD_LIMIT:?} after its last report; killing it"
            ));
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if libc::WIFEXITED(status) {
        link.send(&format!("gc-exit {}", libc::WEXITSTATUS(status)));
    } else {
        link.send(&format!("gc-exit signal {}", libc::WTERMSIG(status)));
    }
}

/// The grandchild's reports.
struct Report {
    out: File,
}

impl Report {
    fn line(&mut self, line: &str) {
        let _ = writeln!(self.out, "{line}");
    }

    /// `ok <what>` if `r` failed with `code`, else `bad <what>: ...`.
    fn expect<T: Debug>(&mut self, what: &str, r: Result<T>, code: AclError) {
        match r {
            Err(e) if e.code() == code => self.line(&format!("ok {what}")),
            Err(e) => self.line(&format!(
                "bad {what}: expected {}, got {} ({})",
                code.raw(),
                e.code().raw(),
                e.reason()
            )),
            Ok(v) => self.line(&format!(
                "bad {what}: expected {}, got Ok({v:?})",
                code.raw()
            )),
        }
    }

    /// `ok <what>` if `r` succeeded, else `bad <what>: ...`.
    fn ok<T>(&mut self, what: &str, r: Result<T>) -> Option<T> {
        match r {
            Ok(v) => {
                self.line(&format!("ok {what}"));
                Some(v)
            }
            Err(e) => {
                self.line(&format!("bad {what}: {e}"));
                None
            }
        }
    }

    /// `ok <what>` if `cond`, else `bad <what>: <detail>`.
    fn check(&mut self, what: &str, cond: bool, detail: impl FnOnce() -> String) {
        if cond {
            self.line(&format!("ok {what}"));
        } else {
            self.line(&format!("bad {what}: {}", detail()));
        }
    }
}

/// Every call on an inherited value, each expected to fail with `code`; `phase` names them.
fn use_inherited(r: &mut Report, inh: &Inherited, phase: &str, code: AclError) {
    let w = |what: &str| format!("{phase}: {what}");
    r.expect(&w("rt.bare_tgid"), inh.rt.bare_tgid(), code);
    r.expect(&w("rt.device"), inh.rt.device(DeviceId(0)), code);
    r.expect(
        &w("rt.can_access_peer"),
        inh.rt.can_access_peer(DeviceId(0), DeviceId(1)),
        code,
    );
    r.expect(
        &w("rt.batch_reset"),
        inh.rt.batch_reset(&[&*inh.busy, &inh.pending]),
        code,
    );
    r.expect(&w("dev.bare_tgid"), inh.dev.bare_tgid(), code);
    r.expect(&w("dev.create_stream"), inh.dev.create_stream(), code);
    r.expect(&w("dev.default_stream"), inh.dev.default_stream(), code);
    r.expect(
        &w("dev.create_notify"),
        inh.dev.create_notify(NotifyFlags::DEFAULT),
        code,
    );
    r.expect(
        &w("dev.import_notify"),
        inh.dev.import_notify(&inh.key, ImportFlags::DEFAULT),
        code,
    );
    r.expect(
        &w("dev.enable_peer_access"),
        inh.dev.enable_peer_access(DeviceId(1)),
        code,
    );
    r.expect(&w("s.record"), inh.s.record(&inh.pending), code);
    r.expect(
        &w("s.wait"),
        inh.s.wait(&inh.pending, Timeout::secs(1)),
        code,
    );
    r.expect(&w("s.synchronize"), inh.s.synchronize(), code);
    r.expect(
        &w("s.synchronize_timeout"),
        inh.s.synchronize_timeout(Some(Duration::from_secs(1))),
        code,
    );
    r.expect(&w("s2.record"), inh.s2.record(&inh.busy), code);
    r.expect(&w("s2.synchronize"), inh.s2.synchronize(), code);
    r.expect(&w("pending.id"), inh.pending.id(), code);
    r.expect(
        &w("pending.export"),
        inh.pending.export(ExportFlags::DEFAULT),
        code,
    );
    r.expect(
        &w("pending.set_import_pid"),
        inh.pending.set_import_pid(Pid(4242)),
        code,
    );
    r.expect(&w(DEVICE_COUNT), inh.rt.device_count(), code);
}

/// The forked grandchild: see the module docs. Never returns.
fn grandchild(mut inh: Inherited, mode: &str, parent_tgid: Pid, out: File, from_c: File) -> ! {
    // SAFETY: `alarm` only arms a timer; its default action ends this process, our bound on
    // a hang.
    unsafe { libc::alarm(30) };
    // It reports over its pipe only: its copies of the child's stdio would keep the test
    // process's pipes from the child open after the child's death.
    let null = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .expect("/dev/null");
    for fd in 0..3 {
        // SAFETY: `dup2` onto the standard descriptors, from a descriptor we own.
        unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd) };
    }
    drop(null);
    let mut r = Report { out };
    let body = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // 1. Not attached: 100001 everywhere.
        use_inherited(&mut r, &inh, "forked", AclError::UNINITIALIZE);
        let spare1 = inh.spare1.take().expect("spare1");
        r.expect(
            "forked: spare1.destroy",
            spare1.destroy(),
            AclError::UNINITIALIZE,
        );
        if mode == "orphan" {
            // Holding every inherited value (and so every descriptor it inherited, but for
            // those the fork handler closed) until the test process, which has killed the
            // child meanwhile, creates the release file.
            r.line(&format!("waiting {}", std::process::id()));
            drop(from_c);
            let release = std::env::var(ENV_RELEASE).unwrap_or_default();
            let t = Instant::now();
            while !std::path::Path::new(&release).exists() && t.elapsed() < GRANDCHILD_LIMIT {
                std::thread::sleep(Duration::from_millis(5));
            }
            std::mem::forget(inh);
            return;
        }

        // 2. Attached itself: inherited values are foreign (107017); its own runtime works.
        let Some(own) = r.ok("attach", SimRuntime::from_env()) else {
            return;
        };
        use_inherited(&mut r, &inh, "attached", AclError::RT_INVALID_HANDLE);
        let spare2 = inh.spare2.take().expect("spare2");
        r.expect(
            "attached: spare2.destroy",
            spare2.destroy(),
            AclError::RT_INVALID_HANDLE,
        );
        let s3 = inh.s3.take().expect("s3");
        r.expect(
            "attached: s3.destroy",
            s3.destroy(),
            AclError::RT_INVALID_HANDLE,
        );
        let me = std::process::id() as i32;
        let Some(tgid) = r.ok("own.bare_tgid", own.bare_tgid()) else {
            return;
        };
        r.check("own bare tgid is getpid()", tgid == Pid(me), || {
            format!("{tgid} != {me}")
        });
        r.check(
            "own bare tgid is not the parent's",
            tgid != parent_tgid,
            || format!("{tgid}"),
        );
        let Some(dev) = r.ok("own.device", own.device(DeviceId(0))) else {
            return;
        };
        let Some(s) = r.ok("own.create_stream", dev.create_stream()) else {
            return;
        };
        let Some(n) = r.ok("own.create_notify", dev.create_notify(NotifyFlags::DEFAULT)) else {
            return;
        };
        r.ok(
            "own record, wait, synchronize",
            s.record(&n)
                .and_then(|()| s.wait(&n, Timeout::secs(5)))
                .and_then(|()| s.synchronize()),
        );
        r.ok("own export", n.export(ExportFlags::DISABLE_PID_VALIDATION));
        // R7: the parent whitelisted only the test process.
        r.expect(
            "own import of the parent's export",
            dev.import_notify(&inh.key, ImportFlags::DEFAULT),
            AclError::RT_DRV_INTERNAL_ERROR,
        );
        let id = n.id().map_or(u32::MAX, |i| i.0);
        r.line(&format!("attached {} {me} {id}", tgid.raw()));
        let mut go = String::new();
        let _ = BufReader::new(from_c).read_line(&mut go);
        r.check("go", go.trim() == "go", || format!("{go:?}"));

        // 3. Leave.
        if mode == "drop" {
            drop(inh);
            drop((n, s, dev, own));
            r.line("dropped");
        } else {
            // Everything stays alive; `exit` runs the runtime's exit handler.
            std::mem::forget((inh, n, s, dev));
            r.line("exiting with everything alive");
            std::mem::forget(own);
        }
    }));
    if let Err(panic) = body {
        let what = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        r.line(&format!("bad the grandchild panicked: {what}"));
    }
    r.line("end");
    drop(r);
    std::process::exit(0)
}

// ---------------------------------------------------------------------------------------------
// The test process.

/// What a forker announced.
struct Ready {
    tgid: i32,
    key: ExportKey,
    pending: u32,
    /// busy, spare1, spare2.
    others: [u32; 3],
}

fn notify_info(snap: &inspect::Snapshot, id: u32) -> Option<&inspect::NotifyInfo> {
    snap.notifies.iter().find(|i| i.device == 0 && i.id == id)
}

/// R17: the child's notifies are listed with the child as creator and as their only holder
/// (besides the test process for the pending one, once imported).
#[track_caller]
fn assert_child_holds(snap: &inspect::Snapshot, c: &Ready, extra_holder: Option<i32>, when: &str) {
    for id in std::iter::once(c.pending).chain(c.others) {
        let info = notify_info(snap, id)
            .unwrap_or_else(|| panic!("{when}: the child's notify {id} is gone: {snap:?}"));
        assert_eq!(info.creator, Some(c.tgid), "{when}: {info:?}");
        let mut want = BTreeSet::from([c.tgid]);
        if id == c.pending
            && let Some(h) = extra_holder
        {
            want.insert(h);
        }
        let holders: BTreeSet<i32> = info.holders.iter().copied().collect();
        assert_eq!(holders, want, "{when}: holders of {id}: {info:?}");
    }
    let pending = notify_info(snap, c.pending).expect("listed");
    assert_eq!(pending.exported, "whitelist", "{when}: {pending:?}");
}

/// Runs the scenario (see the module docs) with the grandchild in `mode`; returns the
/// grandchild's failed [`DEVICE_COUNT`] checks, and asserts everything else.
fn run(mode: &str) -> Vec<String> {
    let ns = ScopedNamespace::new(&format!("fork-{mode}"));
    let rt = ns.builder().build().unwrap();
    let dev = rt.device(DeviceId(0)).unwrap();
    let s = dev.create_stream().unwrap();
    let me = rt.bare_tgid().unwrap().raw();

    let mut env = ns.env();
    env.push((ENV_MODE.into(), mode.into()));
    let mut c = Proc::start(&[], "child", "forker", &env);
    let line = c.recv();
    let w: Vec<&str> = line
        .strip_prefix("ready ")
        .unwrap_or_else(|| panic!("a ready line: {line}"))
        .split(' ')
        .collect();
    let ready = Ready {
        tgid: w[0].parse().unwrap(),
        key: w[1].parse().unwrap(),
        pending: w[2].parse().unwrap(),
        others: [
            w[3].parse().unwrap(),
            w[4].parse().unwrap(),
            w[5].parse().unwrap(),
        ],
    };
    assert_eq!(c.ask(&format!("whitelist {me}")), "ok");

    c.send("fork");
    let mut oks = Vec::new();
    let mut bads = Vec::new();
    let mut gc_tgid = None;
    let exit = loop {
        let line = c.recv();
        if let Some(rest) = line.strip_prefix("gc ok ") {
            oks.push(rest.to_owned());
        } else if let Some(rest) = line.strip_prefix("gc bad ") {
            bads.push(rest.to_owned());
        } else if let Some(rest) = line.strip_prefix("gc attached ") {
            let v: Vec<i64> = rest.split(' ').map(|x| x.parse().unwrap()).collect();
            let (tgid, pid, own_id) = (v[0] as i32, v[1] as i32, v[2] as u32);
            gc_tgid = Some((tgid, pid));
            // While the grandchild is attached: it is a process of its own, the child's
            // holdings are untouched.
            let snap = inspect::inspect(ns.name()).unwrap().unwrap();
            let alive: BTreeSet<i32> = snap
                .processes
                .iter()
                .filter(|p| p.alive)
                .map(|p| p.tgid)
                .collect();
            assert_eq!(
                alive,
                BTreeSet::from([me, ready.tgid, tgid]),
                "the test process, the child and the grandchild: {snap:?}"
            );
            assert!(snap.processes.iter().all(|p| p.alive), "{snap:?}");
            assert_child_holds(&snap, &ready, None, "grandchild attached");
            let own = notify_info(&snap, own_id)
                .unwrap_or_else(|| panic!("the grandchild's notify {own_id}: {snap:?}"));
            assert_eq!(own.creator, Some(tgid), "{own:?}");
            c.send("go");
        } else if line.starts_with("gc waiting ") {
            panic!("the grandchild of mode {mode} waits for the child's death: {line}");
        } else if line.starts_with("gc-hung") {
            panic!("R17: the grandchild hung: {line}");
        } else if let Some(status) = line.strip_prefix("gc-exit ") {
            break status.to_owned();
        } else if line.starts_with("gc ") {
            // "end", "dropped", ...
        } else {
            panic!("unexpected line from the child: {line}");
        }
    };
    assert_eq!(
        exit, "0",
        "the grandchild's exit (ok: {oks:?}, bad: {bads:?})"
    );
    let (gc_tgid, gc_pid) = gc_tgid
        .unwrap_or_else(|| panic!("the grandchild never attached (ok: {oks:?}, bad: {bads:?})"));
    assert_eq!(gc_tgid, gc_pid, "R16: a host-namespace process's bare tgid");
    assert_ne!(gc_tgid, ready.tgid, "R17: its own bare tgid");
    // Checked last, so that everything else is checked whatever it says.
    let device_count_bads: Vec<String> = bads
        .iter()
        .filter(|b| b.contains(DEVICE_COUNT))
        .cloned()
        .collect();
    let other_bads: Vec<&String> = bads.iter().filter(|b| !b.contains(DEVICE_COUNT)).collect();
    assert!(
        other_bads.is_empty(),
        "R17 violations in the grandchild:\n{}",
        other_bads
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(oks.len() > 40, "the grandchild ran its checks: {oks:?}");
    eprintln!("grandchild ({mode}): {} checks passed", oks.len());

    // After the grandchild left: nothing of it remains, and the child holds what it held.
    let snap = inspect::inspect(ns.name()).unwrap().unwrap();
    let procs: BTreeSet<(i32, bool)> = snap.processes.iter().map(|p| (p.tgid, p.alive)).collect();
    assert_eq!(
        procs,
        BTreeSet::from([(me, true), (ready.tgid, true)]),
        "the grandchild detached at its exit, and nobody is dead: {snap:?}"
    );
    assert_child_holds(&snap, &ready, None, "grandchild gone");
    assert_eq!(
        snap.notifies.len(),
        4,
        "the child's four notifies, nothing of the grandchild: {snap:?}"
    );

    // The child's export still imports, and our record releases its pending wait, which its
    // stream's worker ran through the fork.
    let n = dev
        .import_notify(&ready.key, ImportFlags::DEFAULT)
        .expect("R17: the child's export still imports");
    let snap = inspect::inspect(ns.name()).unwrap().unwrap();
    assert_child_holds(&snap, &ready, Some(me), "imported");
    s.record(&n).unwrap();
    s.synchronize().unwrap();
    assert_eq!(c.ask("sync"), "released", "the child's pending wait");
    assert_eq!(c.ask("cycle"), "ok", "the child's recorded notify");
    c.send("quit");
    assert_eq!(c.recv(), "forker: done");
    let (status, stderr) = c.finish();
    assert!(status.success(), "the child: {status}\n{stderr}");
    drop((n, s, dev, rt));
    assert!(
        backend_sim::namespace_files(ns.name()).is_empty(),
        "{:?}",
        backend_sim::namespace_files(ns.name())
    );

    device_count_bads
}

/// R17: the grandchild drops every inherited value (and its own runtime) before it exits.
#[test]
fn fork_grandchild_drops_what_it_inherited() {
    run("drop");
}

/// R17: the grandchild exits with every inherited value still alive (`exit`, with the
/// runtime's exit handler, and no destructor).
#[test]
fn fork_grandchild_exits_holding_what_it_inherited() {
    run("keep");
}

/// R17 ("its ACL calls fail with 100001 until it calls aclInit itself"; "no handle inherited
/// from the parent works in it (107017)"): `Runtime::device_count` (`aclrtGetDeviceCount`) of
/// the inherited runtime fails like every other call.
///
/// Fails at 2ccc0b2 (sim bug): `impl notify_api::Runtime for SimRuntime` in
/// `crates/backend-sim/src/typed.rs` answers `Ok(self.session.device_count())` without the
/// session's fork check, so a forked process reads its parent's registry header through the
/// inherited mapping and gets `Ok(4)`. Fix: check first, as `raw::bare_tgid` does (e.g. a
/// `raw::device_count(s)` that runs `s.check()?`).
#[test]
fn fork_inherited_device_count_is_refused() {
    let bads = run("drop");
    assert!(
        bads.is_empty(),
        "R17: the inherited runtime's device_count: {bads:?}"
    );
}

/// R9 with R17: a forked grandchild that never attaches keeps a copy of every descriptor the
/// child had, but the fork handler closed the child's lock files in it, so the child's death
/// is not hidden: killed while the grandchild lives on, the child shows as dead and is
/// reclaimed (its notifies, held by nobody else, freed), and nothing of the grandchild is in
/// the namespace.
#[test]
fn fork_grandchild_does_not_hide_the_parents_death() {
    let ns = ScopedNamespace::new("fork-orphan");
    let rt = ns.builder().build().unwrap();
    let me = rt.bare_tgid().unwrap().raw();
    let release = std::env::temp_dir().join(format!("{}.release", ns.name()));
    let _ = std::fs::remove_file(&release);
    let mut env = ns.env();
    env.push((ENV_MODE.into(), "orphan".into()));
    env.push((ENV_RELEASE.into(), release.display().to_string()));
    let mut c = Proc::start(&[], "child", "forker", &env);
    let line = c.recv();
    let c_tgid: i32 = line
        .strip_prefix("ready ")
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("a ready line: {line}"))
        .parse()
        .unwrap();
    assert_eq!(c.ask(&format!("whitelist {me}")), "ok");
    c.send("fork");
    let mut bads = Vec::new();
    let gc_pid: i32 = loop {
        let line = c.recv();
        if let Some(rest) = line.strip_prefix("gc bad ") {
            if !rest.contains(DEVICE_COUNT) {
                bads.push(rest.to_owned());
            }
        } else if let Some(pid) = line.strip_prefix("gc waiting ") {
            break pid.parse().unwrap();
        } else if !line.starts_with("gc ok ") {
            panic!("unexpected line from the child: {line}");
        }
    };
    assert!(
        bads.is_empty(),
        "R17 violations in the grandchild: {bads:?}"
    );
    let snap = inspect::inspect(ns.name()).unwrap().unwrap();
    assert_eq!(snap.notifies.len(), 4, "{snap:?}");

    c.kill();
    let _ = c.finish();
    let state = |pid: i32| -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat[stat.rfind(')')? + 1..].trim_start().chars().next()
    };
    assert!(
        state(gc_pid).is_some_and(|s| s != 'Z'),
        "the grandchild {gc_pid} outlives the child"
    );
    let snap = inspect::inspect(ns.name()).unwrap().unwrap();
    let procs: BTreeSet<(i32, bool)> = snap.processes.iter().map(|p| (p.tgid, p.alive)).collect();
    assert_eq!(
        procs,
        BTreeSet::from([(me, true), (c_tgid, false)]),
        "R9/R17: the killed child is dead although its grandchild lives: {snap:?}"
    );
    assert_eq!(inspect::reclaim(ns.name()).unwrap(), Some(1));
    let snap = inspect::inspect(ns.name()).unwrap().unwrap();
    assert_eq!(snap.processes.len(), 1, "{snap:?}");
    assert!(
        snap.notifies.is_empty(),
        "R9: the dead child's notifies, held by nobody else, are freed: {snap:?}"
    );
    // The grandchild ends once released (it is bounded by `alarm` anyway).
    std::fs::write(&release, b"").unwrap();
    let t = Instant::now();
    while state(gc_pid).is_some_and(|s| s != 'Z') {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the grandchild {gc_pid} hangs"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = std::fs::remove_file(&release);
    drop(rt);
    assert!(
        backend_sim::namespace_files(ns.name()).is_empty(),
        "{:?}",
        backend_sim::namespace_files(ns.name())
    );
}
