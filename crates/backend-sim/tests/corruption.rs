//! R14 and SEMANTICS.md §4: a damaged registry is refused or its damage contained.
//!
//! Every test here writes bytes straight into a live registry segment
//! (`/dev/shm/ascend-notify.<ns>`, opened with `std::fs`) at offsets taken from the simulator's
//! layout, and then shows that the simulator refuses the damaged registry with 507000 (and a
//! message saying how to remove it) or contains the damage: no panic, no UB, no out-of-bounds
//! access, no hang, and the notifies that other processes hold keep recording and waiting as the
//! contract says.
//!
//! The common fixture ([`Fixture`]) is a namespace of its own, this test process attached with a
//! notify on device 0, and a second real process (role `"holder"`) attached with a notify on
//! device 1; each imports the other's notify. [`Fixture::check_contained`] exercises all of that
//! across the two processes, before and after the damage.
//!
//! Cases that a simulator bug makes fail are `#[ignore]`d with the reason `sim bug: ...`; each
//! keeps the assertion the contract asks for.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use backend_sim::testing::{RoleProcess, RoleSpawner, ScopedNamespace, StdioLink, child_role};
use backend_sim::{SimDevice, SimNotify, SimRuntime, SimStream, inspect};
use notify_api::prelude::*;
use notify_api::{
    AclError, DeviceId, ExportFlags, ExportKey, ImportFlags, NotifyFlags, Pid, Result, Timeout,
};
use proptest::prelude::*;

mod common;
/// The byte layout (`VERSION` 2), copied in `tests/common`: `Seg::open` checks it against
/// every fresh registry.
use common::lay;

/// The test namespaces' size (what `ScopedNamespace::new` uses), and the process table they
/// are created with (the default, 1024, would only make the segment larger).
const DEVICES: u32 = 4;
const CAPACITY: u32 = 64;
const MAX_PROCS: u32 = 128;

/// The segment's size and offsets for this configuration.
const TOTAL_SIZE: u64 = lay::total_size(DEVICES, CAPACITY, MAX_PROCS);
const NOTIFIES_OFFSET: u64 = lay::notifies_offset(MAX_PROCS);
const ALLOCS_OFFSET: u64 = lay::allocs_offset(DEVICES, CAPACITY, MAX_PROCS);
const EXPORTS_OFFSET: u64 = lay::exports_offset(DEVICES, CAPACITY, MAX_PROCS);

/// A builder for `ns` that creates it with [`MAX_PROCS`] process slots.
fn builder(ns: &ScopedNamespace) -> backend_sim::SimBuilder {
    ns.builder().processes(MAX_PROCS)
}

/// Children in `ns` (entry `child`), which create it, if they are first, with [`MAX_PROCS`]
/// process slots too.
fn spawner(ns: &ScopedNamespace) -> RoleSpawner {
    RoleSpawner::new("child", ns).env(backend_sim::ENV_PROCESSES, &MAX_PROCS.to_string())
}

/// How long an attach may take before we call it a hang. A healthy refusal is immediate (the
/// size-0 case waits for the simulator's 3 s attach patience).
const ATTACH_LIMIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// The segment, opened behind the simulator's back.

/// The registry segment of a namespace, opened read-write with `std::fs`.
struct Seg {
    file: File,
}

impl Seg {
    /// Opens the segment of `ns` and checks that its header matches [`lay`] (`tests/common`).
    fn open(ns: &ScopedNamespace) -> Self {
        let path = format!("/dev/shm/ascend-notify.{}", ns.name());
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("opening {path}: {e}"));
        let seg = Self { file };
        let expect = [
            (lay::H_MAGIC, lay::MAGIC, "magic"),
            (lay::H_PROCS_OFFSET, lay::PROCS_OFFSET, "procs_offset"),
            (lay::H_NOTIFIES_OFFSET, NOTIFIES_OFFSET, "notifies_offset"),
            (lay::H_ALLOCS_OFFSET, ALLOCS_OFFSET, "allocs_offset"),
            (lay::H_EXPORTS_OFFSET, EXPORTS_OFFSET, "exports_offset"),
            (lay::H_TOTAL_SIZE, TOTAL_SIZE, "total_size"),
        ];
        for (off, want, what) in expect {
            assert_eq!(
                seg.u64(off),
                want,
                "the layout copy in tests/common is stale ({what}); update `lay`"
            );
        }
        let expect32 = [
            (lay::H_VERSION, lay::VERSION, "version"),
            (lay::H_HEADER_SIZE, lay::HEADER_SIZE as u32, "header_size"),
            (lay::H_STATE, lay::STATE_READY, "state"),
            (lay::H_DEVICES, DEVICES, "devices"),
            (lay::H_CAPACITY, CAPACITY, "capacity"),
            (lay::H_MAX_PROCS, MAX_PROCS, "max_procs"),
            (lay::H_PROC_SIZE, lay::PROC_SIZE as u32, "proc_size"),
            (lay::H_NOTIFY_SIZE, lay::NOTIFY_SIZE as u32, "notify_size"),
        ];
        for (off, want, what) in expect32 {
            assert_eq!(
                seg.u32(off),
                want,
                "the layout copy in tests/common is stale ({what}); update `lay`"
            );
        }
        assert_eq!(seg.len(), TOTAL_SIZE);
        seg
    }

    fn read(&self, off: u64, buf: &mut [u8]) {
        self.file
            .read_exact_at(buf, off)
            .expect("reading the segment");
    }

    fn write(&self, off: u64, bytes: &[u8]) {
        self.file
            .write_all_at(bytes, off)
            .expect("writing the segment");
    }

    fn u32(&self, off: u64) -> u32 {
        let mut b = [0; 4];
        self.read(off, &mut b);
        u32::from_le_bytes(b)
    }

    fn u64(&self, off: u64) -> u64 {
        let mut b = [0; 8];
        self.read(off, &mut b);
        u64::from_le_bytes(b)
    }

    fn put_u32(&self, off: u64, v: u32) {
        self.write(off, &v.to_le_bytes());
    }

    fn put_u64(&self, off: u64, v: u64) {
        self.write(off, &v.to_le_bytes());
    }

    fn len(&self) -> u64 {
        self.file.metadata().expect("fstat").len()
    }

    fn truncate(&self, len: u64) {
        self.file.set_len(len).expect("ftruncate");
    }

    /// The byte offset of notify `id` of `device`.
    fn slot(device: u32, id: u32) -> u64 {
        NOTIFIES_OFFSET + u64::from(device * CAPACITY + id) * lay::NOTIFY_SIZE
    }

    fn proc(index: u32) -> u64 {
        let index = u64::from(index);
        lay::PROCS_OFFSET + index * lay::PROC_SIZE
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// Attaches to `ns` in a helper thread; `None` if it did not return within `limit` (a hang: the
/// thread is left behind).
fn attach_within(ns: &ScopedNamespace, limit: Duration) -> Option<Result<SimRuntime>> {
    let builder = builder(ns);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(builder.build());
    });
    rx.recv_timeout(limit).ok()
}

/// Attaches to `ns`, failing the test if that hangs.
#[track_caller]
fn attach(ns: &ScopedNamespace, case: &str) -> Result<SimRuntime> {
    attach_within(ns, ATTACH_LIMIT)
        .unwrap_or_else(|| panic!("{case}: attaching hung for {ATTACH_LIMIT:?}"))
}

/// §4/R14: the refusal is 507000 and tells the operator how to remove the registry.
#[track_caller]
fn assert_refused<T: std::fmt::Debug>(res: Result<T>, ns: &ScopedNamespace, case: &str) {
    match res {
        Ok(v) => panic!("{case}: a corrupted registry was accepted: {v:?}"),
        Err(e) => {
            assert_eq!(e.code(), AclError::RT_INTERNAL_ERROR, "{case}: {e}");
            let hint = format!("ascend-notify-sim remove --namespace {}", ns.name());
            assert!(
                e.reason().contains(&hint),
                "{case}: the message should say how to remove the registry ({hint:?}): {e}"
            );
        }
    }
}

#[track_caller]
fn assert_code<T: std::fmt::Debug>(res: Result<T>, code: AclError, what: &str) {
    match res {
        Ok(v) => panic!("{what}: expected {code}, got Ok({v:?})"),
        Err(e) => assert_eq!(e.code(), code, "{what}: {e}"),
    }
}

fn fmt_result(r: Result<()>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(e) => format!("err {} {}", e.code().raw(), e.reason()),
    }
}

/// Runs the inspector binary; returns (exit success, stdout, stderr), or `None` when it is not
/// built (`common::inspector` says so; `crates/inspector/tests` checks its refusal of a
/// corrupted registry whatever this package's tests find).
fn inspector(ns: &ScopedNamespace, args: &[&str]) -> Option<(bool, String, String)> {
    let mut argv = args.to_vec();
    argv.extend(["--namespace", ns.name()]);
    let out = common::inspector(&argv)?;
    Some((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// The inspector binary on a corrupted registry: a clean failure naming the remedy.
#[track_caller]
fn assert_inspector_refuses(ns: &ScopedNamespace, case: &str) {
    let Some((ok, _, stderr)) = inspector(ns, &["status", "--json"]) else {
        return;
    };
    assert!(!ok, "{case}: the inspector accepted a corrupted registry");
    assert!(
        stderr.contains("507000") || stderr.contains("R14"),
        "{case}: inspector stderr: {stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "ascend-notify-sim remove --namespace {}",
            ns.name()
        )),
        "{case}: inspector stderr should name the remedy: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{case}: {stderr}");
}

/// The inspector binary must not crash, whatever it reports.
#[track_caller]
fn assert_inspector_survives(ns: &ScopedNamespace, case: &str) {
    for args in [&["status", "--json"][..], &["list", "--json"][..]] {
        let Some((ok, _, stderr)) = inspector(ns, args) else {
            return;
        };
        assert!(ok, "{case}: inspector {args:?} failed: {stderr}");
        assert!(!stderr.contains("panicked"), "{case}: {stderr}");
    }
}

// ---------------------------------------------------------------------------------------------
// The second process.

#[test]
#[ignore = "entry point of spawned child processes"]
fn child() {
    let Some(role) = child_role() else { return };
    let mut link = StdioLink;
    match role.as_str() {
        "holder" => holder(&mut link),
        other => panic!("unknown role {other}"),
    }
}

/// Attaches, creates a notify on device 1 and exports it (any pid), then serves commands:
/// `cycle` (record and wait on its own notify), `wait <secs>` (wait on its own notify),
/// `import <key>` (answers `ok <index>`), `record <index>` (record an imported notify),
/// `quit`. Every command answers `ok` or `err <code> <reason>`.
fn holder(link: &mut StdioLink) {
    let rt = SimRuntime::from_env().expect("holder attaches");
    let dev = rt.device(DeviceId(1)).unwrap();
    let s = dev.create_stream().unwrap();
    let own = dev.create_notify(NotifyFlags::DEFAULT).unwrap();
    let key = own.export(ExportFlags::DISABLE_PID_VALIDATION).unwrap();
    link.send(&format!("key {key}"));
    link.send(&format!(
        "id {} {}",
        own.notify_device().0,
        own.id().unwrap().0
    ));
    let mut imported: Vec<SimNotify> = Vec::new();
    loop {
        let line = link.recv();
        let (cmd, arg) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let reply = match cmd {
            "cycle" => fmt_result(
                s.record(&own)
                    .and_then(|()| s.wait(&own, Timeout::secs(2)))
                    .and_then(|()| s.synchronize()),
            ),
            "wait" => fmt_result(
                s.wait(&own, Timeout::secs(arg.parse().unwrap()))
                    .and_then(|()| s.synchronize()),
            ),
            "import" => {
                let key: ExportKey = arg.parse().unwrap();
                match dev.import_notify(&key, ImportFlags::ENABLE_PEER_ACCESS) {
                    Ok(n) => {
                        imported.push(n);
                        format!("ok {}", imported.len() - 1)
                    }
                    Err(e) => fmt_result(Err(e)),
                }
            }
            "record" => {
                let n = &imported[arg.parse::<usize>().unwrap()];
                fmt_result(s.record(n).and_then(|()| s.synchronize()))
            }
            "quit" => break,
            other => panic!("unknown command {other}"),
        };
        link.send(&reply);
    }
}

// ---------------------------------------------------------------------------------------------
// The fixture.

/// Two attached processes, each holding its own notify and an import of the other's.
struct Fixture {
    peer: RoleProcess,
    /// This process's notify, on device 0, exported to any pid; the holder imported it.
    own: SimNotify,
    /// The holder's notify (device 1), imported here.
    peer_n: SimNotify,
    /// Device and id of the holder's notify.
    peer_id: (u32, u32),
    s: SimStream,
    /// Device 0 of this process's runtime.
    d0: SimDevice,
    rt: SimRuntime,
    seg: Seg,
    ns: ScopedNamespace,
}

impl Fixture {
    fn new(label: &str) -> Self {
        let ns = ScopedNamespace::new(label).with_size(DEVICES, CAPACITY);
        let rt = builder(&ns)
            .build()
            .expect("first attach creates the namespace");
        let d0 = rt.device(DeviceId(0)).unwrap();
        let s = d0.create_stream().unwrap();
        let own = d0.create_notify(NotifyFlags::DEFAULT).unwrap();
        let own_key = own.export(ExportFlags::DISABLE_PID_VALIDATION).unwrap();
        let mut peer = spawner(&ns).start("holder");
        let peer_key: ExportKey = peer
            .recv()
            .strip_prefix("key ")
            .expect("key line")
            .parse()
            .unwrap();
        let id_line = peer.recv();
        let mut it = id_line
            .strip_prefix("id ")
            .expect("id line")
            .split(' ')
            .map(|v| v.parse::<u32>().unwrap());
        let peer_id = (it.next().unwrap(), it.next().unwrap());
        let peer_n = d0
            .import_notify(&peer_key, ImportFlags::ENABLE_PEER_ACCESS)
            .unwrap();
        peer.send(&format!("import {own_key}"));
        assert_eq!(peer.recv(), "ok 0", "the holder imports our notify");
        let seg = Seg::open(&ns);
        let mut f = Self {
            peer,
            own,
            peer_n,
            peer_id,
            s,
            d0,
            rt,
            seg,
            ns,
        };
        f.check_contained("before the damage");
        f
    }

    fn own_id(&self) -> (u32, u32) {
        (self.own.notify_device().0 as u32, self.own.id().unwrap().0)
    }

    fn ask(&mut self, line: &str) -> String {
        self.peer.send(line);
        self.peer.recv()
    }

    /// R1/R2/R4/R8/R14: both processes' notifies still record and wait correctly, across the
    /// processes, and the attached processes can still create, export and import.
    #[track_caller]
    fn check_contained(&mut self, when: &str) {
        // Our own notify, locally: a record before the wait is not lost (R1).
        self.s.record(&self.own).unwrap();
        self.s.wait(&self.own, Timeout::secs(2)).unwrap();
        self.s
            .synchronize()
            .unwrap_or_else(|e| panic!("{when}: local record/wait: {e}"));
        // The holder records our notify while our wait is pending: it must wake us.
        self.s.wait(&self.own, Timeout::secs(5)).unwrap();
        let t = Instant::now();
        let r = self.ask("record 0");
        assert_eq!(r, "ok", "{when}: the holder records our notify");
        self.s
            .synchronize()
            .unwrap_or_else(|e| panic!("{when}: wait released by the holder: {e}"));
        assert!(
            t.elapsed() < Duration::from_secs(4),
            "{when}: the wake-up took {:?}",
            t.elapsed()
        );
        // We record the holder's notify; its wait passes (R1: the record is not lost).
        self.s.record(&self.peer_n).unwrap();
        self.s.synchronize().unwrap();
        let r = self.ask("wait 5");
        assert_eq!(
            r, "ok",
            "{when}: the holder waits on its notify we recorded"
        );
        // The holder's own notify, in the holder.
        let r = self.ask("cycle");
        assert_eq!(r, "ok", "{when}: the holder's own record/wait");
        // Fresh registry work by the attached processes.
        let n = self
            .d0
            .create_notify(NotifyFlags::DEFAULT)
            .unwrap_or_else(|e| panic!("{when}: create: {e}"));
        let key = n
            .export(ExportFlags::DISABLE_PID_VALIDATION)
            .unwrap_or_else(|e| panic!("{when}: export: {e}"));
        self.s.wait(&n, Timeout::secs(5)).unwrap();
        let r = self.ask(&format!("import {key}"));
        let index = r
            .strip_prefix("ok ")
            .unwrap_or_else(|| panic!("{when}: the holder imports a fresh notify: {r}"))
            .to_owned();
        let r = self.ask(&format!("record {index}"));
        assert_eq!(r, "ok", "{when}: the holder records the fresh notify");
        self.s
            .synchronize()
            .unwrap_or_else(|e| panic!("{when}: wait on the fresh notify: {e}"));
        n.destroy().unwrap();
    }

    /// The holder quits, we detach; the last process out removes the namespace even though the
    /// registry is damaged.
    fn finish(mut self) {
        self.peer.send("quit");
        let (status, stderr) = self.peer.finish();
        assert!(status.success(), "the holder failed: {stderr}");
        let name = self.ns.name().to_owned();
        drop(self.own);
        drop(self.peer_n);
        drop(self.s);
        drop(self.d0);
        drop(self.rt);
        assert!(
            !backend_sim::namespace_exists(&name),
            "the last process out removes even a damaged namespace"
        );
        assert!(
            backend_sim::namespace_files(&name).is_empty(),
            "files left behind: {:?}",
            backend_sim::namespace_files(&name)
        );
        drop(self.ns);
    }
}

// ---------------------------------------------------------------------------------------------
// Header damage: a new attach is refused with 507000; attached processes carry on.

/// §4: a wrong magic refuses the attach (and the inspector) with 507000 and the remedy.
#[test]
fn wrong_magic_refuses_attach() {
    let mut f = Fixture::new("magic");
    let original = f.seg.u64(lay::H_MAGIC);
    for bad in [
        0,
        !lay::MAGIC,
        lay::MAGIC ^ 1,
        // The magic of layout version 1 (a registry of an older build), and of a newer one.
        u64::from_le_bytes(*b"ASCNTFY1"),
        u64::from_le_bytes(*b"ASCNTFY3"),
    ] {
        f.seg.put_u64(lay::H_MAGIC, bad);
        let case = format!("magic {bad:#x}");
        assert_refused(attach(&f.ns, &case), &f.ns, &case);
        assert_refused(inspect::inspect(f.ns.name()), &f.ns, &case);
        assert_inspector_refuses(&f.ns, &case);
        f.check_contained(&case);
    }
    f.seg.put_u64(lay::H_MAGIC, original);
    attach(&f.ns, "magic restored").expect("a restored header attaches again");
    f.finish();
}

/// §4: a layout version this build does not read refuses the attach with 507000.
#[test]
fn wrong_version_refuses_attach() {
    let mut f = Fixture::new("version");
    // 1: the previous layout (this build reads 2); 3: a newer one.
    for bad in [0, 1, 3, lay::VERSION + 1000, u32::MAX] {
        f.seg.put_u32(lay::H_VERSION, bad);
        let case = format!("version {bad}");
        let res = attach(&f.ns, &case);
        if let Err(e) = &res {
            assert!(e.reason().contains("version"), "{case}: {e}");
        }
        assert_refused(res, &f.ns, &case);
        assert_refused(inspect::inspect(f.ns.name()), &f.ns, &case);
        f.check_contained(&case);
    }
    f.seg.put_u32(lay::H_VERSION, lay::VERSION);
    attach(&f.ns, "version restored").expect("a restored header attaches again");
    f.finish();
}

/// R14: devices, capacity, process count, sizes, offsets and the namespace hash, each
/// scribbled alone (and coherent lies: a larger layout than the segment holds), refuse the
/// attach with 507000.
///
/// Every case runs; the accepted ones are reported together at the end. Fails at 2ccc0b2 (sim
/// bug) for "capacity 63": `Layout::new(4, 63, 128)` has the same offsets and total size as
/// `(4, 64, 128)` (the notify table's end is rounded up to a page before the allocation table,
/// and 4 x 448 bytes fit in the slack), so `registry/segment.rs` `validate_header` finds every
/// field consistent and the newcomer attaches with 63 slots per device while the others use 64:
/// its slot `(1, 0)` is their `(0, 63)`, and its records land in another process's notify.
/// Layout v1 caught it (its total size followed the capacity exactly). Fix: store something
/// that pins the configuration and that a one-field scribble cannot keep consistent (the exact
/// notify table size `devices * capacity * notify_size`, or a checksum of the configuration
/// fields written at creation), and check it in `validate_header`.
#[test]
fn scribbled_header_fields_refuse_attach() {
    use lay::*;
    enum V {
        U32(u64, u32),
        U64(u64, u64),
    }
    let big = total_size(DEVICES, 2 * CAPACITY, MAX_PROCS);
    // A coherent header for another configuration: every derived field follows it.
    let coherent = |devices: u32, capacity: u32, procs: u32| {
        vec![
            V::U32(H_DEVICES, devices),
            V::U32(H_CAPACITY, capacity),
            V::U32(H_MAX_PROCS, procs),
            V::U64(H_NOTIFIES_OFFSET, notifies_offset(procs)),
            V::U64(H_ALLOCS_OFFSET, allocs_offset(devices, capacity, procs)),
            V::U64(H_EXPORTS_OFFSET, exports_offset(devices, capacity, procs)),
            V::U64(H_TOTAL_SIZE, total_size(devices, capacity, procs)),
        ]
    };
    let cases: Vec<(&str, Vec<V>)> = vec![
        ("devices 0", vec![V::U32(H_DEVICES, 0)]),
        ("devices 65", vec![V::U32(H_DEVICES, 65)]),
        ("devices max", vec![V::U32(H_DEVICES, u32::MAX)]),
        (
            "devices 3 (in range, mismatched)",
            vec![V::U32(H_DEVICES, 3)],
        ),
        (
            "devices 64 (in range, mismatched)",
            vec![V::U32(H_DEVICES, 64)],
        ),
        ("capacity 0", vec![V::U32(H_CAPACITY, 0)]),
        ("capacity 0x10000", vec![V::U32(H_CAPACITY, 0x1_0000)]),
        ("capacity 63", vec![V::U32(H_CAPACITY, CAPACITY - 1)]),
        ("capacity 0xffff", vec![V::U32(H_CAPACITY, 0xffff)]),
        ("header_size 0", vec![V::U32(H_HEADER_SIZE, 0)]),
        (
            "header_size +1",
            vec![V::U32(H_HEADER_SIZE, HEADER_SIZE as u32 + 1)],
        ),
        ("max_procs 64", vec![V::U32(H_MAX_PROCS, 64)]),
        ("max_procs 0", vec![V::U32(H_MAX_PROCS, 0)]),
        ("max_procs 0xffff", vec![V::U32(H_MAX_PROCS, 0xffff)]),
        ("max_procs max", vec![V::U32(H_MAX_PROCS, u32::MAX)]),
        ("proc_size 0", vec![V::U32(H_PROC_SIZE, 0)]),
        ("notify_size 1", vec![V::U32(H_NOTIFY_SIZE, 1)]),
        ("total_size +1", vec![V::U64(H_TOTAL_SIZE, TOTAL_SIZE + 1)]),
        ("total_size 0", vec![V::U64(H_TOTAL_SIZE, 0)]),
        ("total_size max", vec![V::U64(H_TOTAL_SIZE, u64::MAX)]),
        ("ns_hash", vec![V::U64(H_NS_HASH, 0x0123_4567_89ab_cdef)]),
        ("procs_offset 0", vec![V::U64(H_PROCS_OFFSET, 0)]),
        ("procs_offset max", vec![V::U64(H_PROCS_OFFSET, u64::MAX)]),
        ("notifies_offset 0", vec![V::U64(H_NOTIFIES_OFFSET, 0)]),
        (
            "notifies_offset max",
            vec![V::U64(H_NOTIFIES_OFFSET, u64::MAX - 63)],
        ),
        ("allocs_offset 0", vec![V::U64(H_ALLOCS_OFFSET, 0)]),
        (
            "allocs_offset past the end",
            vec![V::U64(H_ALLOCS_OFFSET, TOTAL_SIZE)],
        ),
        (
            "exports_offset + 4096",
            vec![V::U64(H_EXPORTS_OFFSET, EXPORTS_OFFSET + 4096)],
        ),
        (
            "exports_offset max",
            vec![V::U64(H_EXPORTS_OFFSET, u64::MAX)],
        ),
        (
            "a coherent header twice the segment's size",
            vec![
                V::U32(H_CAPACITY, 2 * CAPACITY),
                V::U64(
                    H_ALLOCS_OFFSET,
                    allocs_offset(DEVICES, 2 * CAPACITY, MAX_PROCS),
                ),
                V::U64(
                    H_EXPORTS_OFFSET,
                    exports_offset(DEVICES, 2 * CAPACITY, MAX_PROCS),
                ),
                V::U64(H_TOTAL_SIZE, big),
            ],
        ),
        (
            "a coherent header of 64 x 0xffff slots",
            coherent(64, 0xffff, MAX_PROCS),
        ),
        (
            "a coherent header of 0xfffe processes",
            coherent(DEVICES, CAPACITY, 0xfffe),
        ),
    ];
    // One namespace (and holder process) per case.
    let mut accepted = Vec::new();
    for (case, writes) in cases {
        let mut f = Fixture::new("field");
        let mut header = vec![0u8; HEADER_SIZE as usize];
        f.seg.read(0, &mut header);
        for w in &writes {
            match *w {
                V::U32(off, v) => f.seg.put_u32(off, v),
                V::U64(off, v) => f.seg.put_u64(off, v),
            }
        }
        match attach(&f.ns, case) {
            Ok(rt) => {
                accepted.push(format!(
                    "{case}: attach accepted ({} devices x {} slots)",
                    rt.device_count().unwrap_or(0),
                    rt.capacity()
                ));
                drop(rt);
            }
            Err(e) => assert_refused(Err::<(), _>(e), &f.ns, case),
        }
        match inspect::inspect(f.ns.name()) {
            Ok(snap) => accepted.push(format!(
                "{case}: inspect accepted ({:?})",
                snap.map(|s| (s.devices, s.capacity))
            )),
            Err(e) => assert_refused(Err::<(), _>(e), &f.ns, case),
        }
        f.check_contained(case);
        f.seg.write(0, &header);
        let again = attach(&f.ns, case).unwrap_or_else(|e| panic!("{case}, restored: {e}"));
        drop(again);
        f.finish();
    }
    assert!(
        accepted.is_empty(),
        "corrupted registries were accepted:\n{}",
        accepted.join("\n")
    );
}

/// §4: a header whose state says "not initialised" (or garbage) refuses the attach.
#[test]
fn bad_header_state_refuses_attach() {
    let mut f = Fixture::new("state");
    for bad in [0, 3, 0xdead_beef, u32::MAX] {
        f.seg.put_u32(lay::H_STATE, bad);
        let case = format!("state {bad:#x}");
        assert_refused(attach(&f.ns, &case), &f.ns, &case);
        assert_refused(inspect::inspect(f.ns.name()), &f.ns, &case);
        f.check_contained(&case);
    }
    f.seg.put_u32(lay::H_STATE, lay::STATE_READY);
    f.finish();
}

/// R14: a segment that still exists but whose state says "removed" (a scribble, or a last
/// process that was killed between marking the segment removed and unlinking it) must be
/// refused, not retried for ever.
/// (Found by this test: attach used to retry such a segment for ever.)
#[test]
fn removed_state_on_a_linked_segment_does_not_hang_attach() {
    let mut f = Fixture::new("removed");
    f.seg.put_u32(lay::H_STATE, lay::STATE_REMOVED);
    let case = "state REMOVED, segment still linked";
    // The contract's answer: 507000, within the attach patience. A hang leaves its thread
    // spinning in this test process.
    let res = attach_within(&f.ns, ATTACH_LIMIT)
        .unwrap_or_else(|| panic!("{case}: attach hung (spinning) for {ATTACH_LIMIT:?}"));
    assert_refused(res, &f.ns, case);
    f.check_contained(case);
    f.seg.put_u32(lay::H_STATE, lay::STATE_READY);
    f.finish();
}

/// R14: a segment truncated below what its header describes refuses the attach with 507000
/// (mapping only what exists: no SIGBUS), while the attached processes, whose pages still
/// exist, carry on.
#[test]
fn truncated_segment_refuses_attach() {
    let mut f = Fixture::new("trunc");
    let full = f.seg.len();
    // Cut one byte, then the wait boards of every process slot from the 64th on (whole pages,
    // the segment's last bytes). The processes here use the first few slots, and nothing
    // reaches the boards of slots nobody holds.
    let boards = lay::waits_offset(DEVICES, CAPACITY, MAX_PROCS);
    let kept = (boards + 64 * lay::WAITS_PER_PROC * lay::WAIT_SIZE).next_multiple_of(4096);
    for len in [full - 1, kept] {
        f.seg.truncate(len);
        let case = format!("truncated to {len} of {full} bytes");
        let res = attach(&f.ns, &case);
        if let Err(e) = &res {
            assert!(e.reason().contains("bytes"), "{case}: {e}");
        }
        assert_refused(res, &f.ns, &case);
        assert_refused(inspect::inspect(f.ns.name()), &f.ns, &case);
        assert_inspector_refuses(&f.ns, &case);
        f.check_contained(&case);
    }
    f.seg.truncate(full);
    attach(&f.ns, "size restored").expect("a restored segment attaches again");
    f.finish();
}

/// R14: a segment truncated below its header (or to nothing) refuses the attach with 507000,
/// not SIGBUS. Only the holder process is attached, and it is killed afterwards: an attached
/// process whose pages were cut away cannot be expected to survive (see the report).
#[test]
fn segment_truncated_below_header_refuses_attach() {
    let ns = ScopedNamespace::new("trunc-hdr").with_size(DEVICES, CAPACITY);
    let mut peer = spawner(&ns).start("holder");
    assert!(peer.recv().starts_with("key "));
    assert!(peer.recv().starts_with("id "));
    let seg = Seg::open(&ns);
    for len in [lay::HEADER_SIZE + 8, lay::HEADER_SIZE] {
        seg.truncate(len);
        let case = format!("truncated to {len} bytes");
        assert_refused(attach(&ns, &case), &ns, &case);
        assert_refused(inspect::inspect(ns.name()), &ns, &case);
    }
    for len in [lay::HEADER_SIZE - 1, 100, 1] {
        seg.truncate(len);
        let case = format!("truncated to {len} bytes");
        assert_refused(attach(&ns, &case), &ns, &case);
        assert_refused(inspect::inspect(ns.name()), &ns, &case);
    }
    // Size 0 looks like a segment whose creator has not sized it yet: the attach waits for the
    // simulator's patience (3 s), then refuses.
    seg.truncate(0);
    let t = Instant::now();
    assert_refused(attach(&ns, "truncated to 0"), &ns, "truncated to 0 bytes");
    assert!(t.elapsed() < ATTACH_LIMIT);
    peer.kill();
    let _ = peer.finish();
    drop(ns);
}

/// §4: the refusal of a segment smaller than a header says how to remove it, like every other
/// refusal of a corrupted registry.
#[test]
fn truncated_below_header_message_names_the_remedy() {
    let ns = ScopedNamespace::new("trunc-msg").with_size(DEVICES, CAPACITY);
    let mut peer = spawner(&ns).start("holder");
    assert!(peer.recv().starts_with("key "));
    assert!(peer.recv().starts_with("id "));
    Seg::open(&ns).truncate(100);
    assert_refused(
        attach(&ns, "truncated to 100"),
        &ns,
        "truncated to 100 bytes",
    );
    peer.kill();
    let _ = peer.finish();
}

/// R9/§4: what a creator SIGKILLed between sizing the segment and writing its header leaves
/// behind (a zeroed segment of full size) is not mapped as a registry. While no process holds a
/// lock of the namespace, nothing can be lost, so an attach replaces it with a fresh registry
/// (the namespace heals instead of staying unusable); the inspector, which never creates a
/// namespace, refuses it. One whose header was written but whose state never became ready is
/// refused with 507000 and the remedy.
#[test]
fn zeroed_segment_refuses_attach() {
    let ns = ScopedNamespace::new("zeroed").with_size(DEVICES, CAPACITY);
    let path = format!("/dev/shm/ascend-notify.{}", ns.name());
    let make_zeroed = || {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .expect("creating a fake segment");
        file.set_len(TOTAL_SIZE).unwrap();
        file
    };
    drop(make_zeroed());
    assert_refused(inspect::inspect(ns.name()), &ns, "a zeroed segment");
    assert_inspector_refuses(&ns, "a zeroed segment");
    {
        let rt =
            attach(&ns, "zeroed, nobody attached").expect("a dead creator's segment is replaced");
        let n = rt
            .device(DeviceId(0))
            .unwrap()
            .create_notify(NotifyFlags::DEFAULT)
            .expect("the fresh registry works");
        drop(n);
    }
    assert!(
        !backend_sim::namespace_exists(ns.name()),
        "the last process out removed it"
    );
    let file = make_zeroed();
    // Initialised up to (not including) the state: magic, version, sizes, offsets.
    let seg = Seg { file };
    seg.put_u64(lay::H_MAGIC, lay::MAGIC);
    seg.put_u32(lay::H_VERSION, lay::VERSION);
    seg.put_u32(lay::H_HEADER_SIZE, lay::HEADER_SIZE as u32);
    seg.put_u32(lay::H_DEVICES, DEVICES);
    seg.put_u32(lay::H_CAPACITY, CAPACITY);
    seg.put_u32(lay::H_MAX_PROCS, MAX_PROCS);
    seg.put_u32(lay::H_PROC_SIZE, lay::PROC_SIZE as u32);
    seg.put_u32(lay::H_NOTIFY_SIZE, lay::NOTIFY_SIZE as u32);
    seg.put_u64(lay::H_TOTAL_SIZE, TOTAL_SIZE);
    seg.put_u64(lay::H_PROCS_OFFSET, lay::PROCS_OFFSET);
    seg.put_u64(lay::H_NOTIFIES_OFFSET, NOTIFIES_OFFSET);
    seg.put_u64(lay::H_ALLOCS_OFFSET, ALLOCS_OFFSET);
    seg.put_u64(lay::H_EXPORTS_OFFSET, EXPORTS_OFFSET);
    let res = attach(&ns, "state 0");
    if let Err(e) = &res {
        assert!(e.reason().contains("creator died"), "{e}");
    }
    assert_refused(res, &ns, "a segment whose state never became ready");
    assert!(backend_sim::remove_namespace(ns.name()).unwrap());
    // Once removed, the namespace is usable again.
    let rt = attach(&ns, "after remove").expect("a removed namespace is created afresh");
    drop(rt);
    assert!(backend_sim::namespace_files(ns.name()).is_empty());
}

/// R14: a process that attached before the header was scribbled keeps working on its own
/// notifies and with its peers (it uses the layout it validated at attach), while newcomers
/// and the inspector are refused.
#[test]
fn attached_processes_keep_working_after_header_scribbled() {
    let mut f = Fixture::new("scribble");
    // Garbage over every header byte: magic, version, sizes, offsets, hints, high-water marks.
    let garbage: Vec<u8> = (0..lay::HEADER_SIZE)
        .map(|i| (i as u8).wrapping_mul(167) ^ 0xa5)
        .collect();
    f.seg.write(0, &garbage);
    assert_refused(attach(&f.ns, "scribbled"), &f.ns, "scribbled header");
    assert_refused(inspect::inspect(f.ns.name()), &f.ns, "scribbled header");
    assert_inspector_refuses(&f.ns, "scribbled header");
    for round in 0..3 {
        f.check_contained(&format!("scribbled header, round {round}"));
    }
    // More creates than the device's slots would allow if the scribbled hints were trusted.
    let extra: Vec<SimNotify> = (0..8)
        .map(|_| f.d0.create_notify(NotifyFlags::DEFAULT).unwrap())
        .collect();
    let mut ids: Vec<u32> = extra.iter().map(|n| n.id().unwrap().0).collect();
    ids.push(f.own_id().1);
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        9,
        "creates under a scribbled header reused a live slot"
    );
    assert!(ids.iter().all(|&i| i < CAPACITY));
    for n in &extra {
        f.s.record(n).unwrap();
        f.s.wait(n, Timeout::secs(1)).unwrap();
    }
    f.s.synchronize().unwrap();
    drop(extra);
    f.finish();
}

// ---------------------------------------------------------------------------------------------
// Slot damage: the damaged notify fails cleanly, the others are unaffected.

/// R6/R7/R14: a whitelist length of 1000 (or u32::MAX) in one slot makes the import of that
/// notify fail cleanly with 507000; other notifies are unaffected.
#[test]
fn huge_whitelist_len_fails_import_cleanly() {
    let mut f = Fixture::new("wl");
    let peer_pid = f.peer.pid();
    // Two whitelisted notifies on device 0.
    let n1 = f.d0.create_notify(NotifyFlags::DEFAULT).unwrap();
    let k1 = n1.export(ExportFlags::DEFAULT).unwrap();
    n1.set_import_pid(peer_pid).unwrap();
    let n2 = f.d0.create_notify(NotifyFlags::DEFAULT).unwrap();
    let k2 = n2.export(ExportFlags::DEFAULT).unwrap();
    n2.set_import_pid(peer_pid).unwrap();
    let n3 = f.d0.create_notify(NotifyFlags::DEFAULT).unwrap();
    let k3 = n3.export(ExportFlags::DEFAULT).unwrap();
    n3.set_import_pid(peer_pid).unwrap();
    let wl = |n: &SimNotify| Seg::slot(0, n.id().unwrap().0) + lay::N_WHITELIST_LEN;
    f.seg.put_u32(wl(&n1), 1000);
    f.seg.put_u32(wl(&n3), u32::MAX);

    for (k, what) in [(&k1, "1000"), (&k3, "u32::MAX")] {
        let r = f.ask(&format!("import {k}"));
        assert!(
            r.starts_with("err 507000 "),
            "whitelist_len {what}: the import must fail with 507000: {r}"
        );
        assert!(r.contains("R14"), "{r}");
    }
    // R6: the creator cannot extend a corrupted whitelist either.
    assert_code(
        n1.set_import_pid(Pid(1)),
        AclError::RT_INTERNAL_ERROR,
        "set_import_pid on a corrupted whitelist",
    );
    // The undamaged notify imports and works across the processes.
    let r = f.ask(&format!("import {k2}"));
    let index = r.strip_prefix("ok ").expect("undamaged import").to_owned();
    f.s.wait(&n2, Timeout::secs(5)).unwrap();
    assert_eq!(f.ask(&format!("record {index}")), "ok");
    f.s.synchronize().unwrap();
    // The damaged notify itself still records and waits locally (its flag is intact).
    f.s.record(&n1).unwrap();
    f.s.wait(&n1, Timeout::secs(1)).unwrap();
    f.s.synchronize().unwrap();
    // The inspector clamps what it shows.
    let snap = inspect::inspect(f.ns.name()).unwrap().unwrap();
    let info = snap
        .notifies
        .iter()
        .find(|i| i.device == 0 && i.id == n1.id().unwrap().0)
        .expect("n1 is listed");
    assert!(info.whitelist.len() <= 64);
    assert_inspector_survives(&f.ns, "huge whitelist_len");
    f.check_contained("huge whitelist_len");
    drop((n1, n2, n3));
    f.finish();
}

/// §4 "Waking"/R14: a corrupted `waiters` count never hangs a waiter past its timeout, never
/// loses a record, and never panics.
#[test]
fn corrupted_waiters_count_does_not_hang() {
    let mut f = Fixture::new("waiters");
    let (d, id) = f.own_id();
    let waiters = Seg::slot(d, id) + lay::N_WAITERS;
    // A huge count on an idle notify: records make a needless wake-up call, nothing else.
    for bad in [u32::MAX, 1 << 31, 7] {
        f.seg.put_u32(waiters, bad);
        f.check_contained(&format!("waiters = {bad:#x}"));
    }
    f.seg.put_u32(waiters, 0);

    // The count cleared under a sleeping waiter: the holder's record then makes no wake-up call,
    // but the waiter re-checks the flag at its deadline: the wait passes (R1: the record is not
    // lost) no later than its timeout.
    f.s.wait(&f.own, Timeout::secs(2)).unwrap();
    let t = Instant::now();
    wait_until_asleep(&f.seg, waiters);
    f.seg.put_u32(waiters, 0);
    assert_eq!(f.ask("record 0"), "ok");
    f.s.synchronize()
        .expect("the record is not lost by a cleared waiters count");
    assert!(
        t.elapsed() < Duration::from_secs(2 + 2),
        "the wait outlived its timeout: {:?}",
        t.elapsed()
    );
    // The waiter's own decrement wrapped the cleared count; everything still works.
    f.check_contained("after a waiter left a wrapped count");
    f.seg.put_u32(waiters, 0);
    f.check_contained("waiters reset");
    f.finish();
}

/// Polls until a waiter counts itself in `waiters` (it sleeps right after), or 5 s.
fn wait_until_asleep(seg: &Seg, waiters: u64) {
    let t = Instant::now();
    while seg.u32(waiters) == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the waiter never slept"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    // Let it get from the increment into the futex.
    std::thread::sleep(Duration::from_millis(50));
}

/// §4 "Waking"/R14: a waiter with no timeout (R3: 0 waits for ever) must still be released by a
/// record when the `waiters` count was corrupted to 0 while it slept.
/// (Found by this test: each futex sleep is now bounded, and a waiter whose count was cleared
/// counts itself again.)
#[test]
fn corrupted_waiters_count_does_not_hang_an_untimed_wait() {
    let mut f = Fixture::new("waiters-forever");
    let (d, id) = f.own_id();
    let waiters = Seg::slot(d, id) + lay::N_WAITERS;
    f.s.wait(&f.own, Timeout::FOREVER).unwrap();
    wait_until_asleep(&f.seg, waiters);
    f.seg.put_u32(waiters, 0);
    assert_eq!(f.ask("record 0"), "ok");
    let res = f.s.synchronize_timeout(Some(Duration::from_secs(3)));
    if res.is_err() {
        // Unstick the sleeper so the rest of the test can clean up: restore the count and
        // record again.
        f.seg.put_u32(waiters, 1);
        assert_eq!(f.ask("record 0"), "ok");
        let _ = f.s.synchronize_timeout(Some(Duration::from_secs(3)));
    }
    res.expect("a record after the count was cleared must release the untimed wait");
    f.finish();
}

/// R11/R14: scribbled free-slot hints and high-water marks never make a create hand out a live
/// slot, never hang, never panic; notifies keep working.
#[test]
fn corrupted_free_hint_and_high_water_are_contained() {
    let mut f = Fixture::new("hints");
    let hint = |d: u32| lay::H_FREE_HINT + 4 * u64::from(d);
    let hw = |d: u32| lay::H_HIGH_WATER + 4 * u64::from(d);
    let live_ids = |f: &Fixture, d: u32| -> Vec<u32> {
        let snap = inspect::inspect(f.ns.name()).unwrap().unwrap();
        snap.notifies
            .iter()
            .filter(|n| n.device == d)
            .map(|n| n.id)
            .collect()
    };
    let (_, own_id) = f.own_id();
    let cases: [(u32, u32, &str); 5] = [
        (u32::MAX, u32::MAX, "both u32::MAX"),
        (own_id, 0, "hint at a live slot, high-water 0"),
        (CAPACITY, CAPACITY + 1, "just past the end"),
        (0x8000_0000, 1, "huge hint, high-water 1"),
        (own_id, own_id, "hint at a live slot, high-water at it"),
    ];
    let mut held: Vec<SimNotify> = Vec::new();
    for (h, w, case) in cases {
        let before = live_ids(&f, 0);
        for d in 0..DEVICES {
            f.seg.put_u32(hint(d), h);
            f.seg.put_u32(hw(d), w);
        }
        for _ in 0..4 {
            let n =
                f.d0.create_notify(NotifyFlags::DEFAULT)
                    .unwrap_or_else(|e| panic!("{case}: create: {e}"));
            let id = n.id().unwrap().0;
            assert!(id < CAPACITY, "{case}: id {id} out of range");
            assert!(
                !before.contains(&id) && !held.iter().any(|m| m.id().unwrap().0 == id),
                "{case}: create handed out live slot {id}"
            );
            f.s.record(&n).unwrap();
            f.s.wait(&n, Timeout::secs(1)).unwrap();
            f.s.synchronize().unwrap();
            held.push(n);
        }
        assert_inspector_survives(&f.ns, case);
        f.check_contained(case);
        // Free some, so later cases search around holes.
        if held.len() > 6 {
            held.drain(..3);
        }
    }
    // A full device still reports 207009 (and reclaims nothing live) under a bad hint.
    for d in 0..DEVICES {
        f.seg.put_u32(hint(d), u32::MAX - 1);
        f.seg.put_u32(hw(d), 0);
    }
    let d2 = f.rt.device(DeviceId(2)).unwrap();
    let mut fill = Vec::new();
    loop {
        match d2.create_notify(NotifyFlags::DEFAULT) {
            Ok(n) => fill.push(n),
            Err(e) => {
                assert_eq!(e.code(), AclError::RT_NO_NOTIFY_RESOURCE, "{e}");
                break;
            }
        }
        assert!(
            fill.len() <= CAPACITY as usize,
            "device 2 exceeded its capacity"
        );
    }
    assert_eq!(fill.len(), CAPACITY as usize);
    drop(fill);
    drop(d2);
    drop(held);
    f.check_contained("after filling a device");
    f.finish();
}

/// R9/R14: a dead process's references are reclaimed even if a high-water mark was lowered
/// below its notify.
///
/// Known limitation, kept as a failing check: `reclaim_proc` and `snapshot` scan each device
/// only up to its `high_water` mark, so that a reclaim never touches (and makes the kernel
/// allocate) the pages of slots never used. With the mark scribbled lower, the dead holder's
/// notify is never reclaimed: one slot leaks, contained (nothing else is harmed). Scanning the
/// whole capacity would fix it at the price of materialising the whole segment.
#[test]
#[ignore = "known limitation: a lowered high-water mark hides a dead holder's notify from reclamation"]
fn lowered_high_water_does_not_hide_dead_holders() {
    let ns = ScopedNamespace::new("hw-dead").with_size(DEVICES, CAPACITY);
    let rt = builder(&ns).build().unwrap();
    let d1 = rt.device(DeviceId(1)).unwrap();
    let mut peer = spawner(&ns).start("holder");
    assert!(peer.recv().starts_with("key "));
    let peer_pid = peer.pid().0;
    assert_eq!(
        peer.recv(),
        "id 1 0",
        "the holder's notify is slot 0 of device 1"
    );
    let seg = Seg::open(&ns);
    seg.put_u32(lay::H_HIGH_WATER + 4, 0);
    peer.kill();
    let _ = peer.finish();
    // Reclamation (the inspector's `reclaim`: reading alone no longer reclaims), then creates
    // that raise the mark past slot 0 again.
    let _ = inspect::reclaim(ns.name()).unwrap();
    let n = d1.create_notify(NotifyFlags::DEFAULT).unwrap();
    let snap = inspect::inspect(ns.name()).unwrap().unwrap();
    assert_eq!(tgids(&snap), vec![std::process::id() as i32]);
    for info in &snap.notifies {
        assert!(
            !info.holders.contains(&peer_pid),
            "the dead holder {peer_pid} still holds notify {}:{}: {info:?}",
            info.device,
            info.id
        );
    }
    assert_eq!(snap.notifies.len(), 1, "only our notify is live: {snap:?}");
    drop(n);
    drop((d1, rt));
}

/// The bare tgids of every process a snapshot lists (alive or dead), sorted.
fn tgids(snap: &inspect::Snapshot) -> Vec<i32> {
    let mut v: Vec<i32> = snap.processes.iter().map(|p| p.tgid).collect();
    v.sort_unstable();
    v
}

/// R9/R14: garbage holder codes and an out-of-range creator code never make the inspector or
/// reclamation panic, and other notifies are unaffected.
///
/// Layout v2 keeps a notify's holders as up to 16 holder codes (process slot and generation)
/// instead of v1's bitmask of process slots, and the creator as a holder code instead of a
/// process index: the garbage written is all-ones holder codes and a creator code far out of
/// range.
#[test]
fn garbage_holders_and_creator_do_not_panic() {
    let mut f = Fixture::new("holders");
    let (pd, pi) = f.peer_id;
    let extra = f.d0.create_notify(NotifyFlags::DEFAULT).unwrap();
    let extra_slot = Seg::slot(0, extra.id().unwrap().0);
    // Every holder entry of the holder's notify all ones; a creator far out of range on ours.
    for i in 0..lay::HOLDERS {
        f.seg
            .put_u32(Seg::slot(pd, pi) + lay::N_HOLDERS + 4 * i, u32::MAX);
    }
    f.seg.put_u32(extra_slot + lay::N_CREATOR, 0xdead_beef);
    let snap = inspect::inspect(f.ns.name()).expect("inspect").unwrap();
    let peer_info = snap
        .notifies
        .iter()
        .find(|i| (i.device, i.id) == (pd, pi))
        .expect("the holder's notify is listed");
    // Changed with the layout: v1 listed every process slot (every bit set). An all-ones code
    // names process slot 0xfffe, beyond the table: no holder is listed, and none that is not
    // an attached process.
    let attached = tgids(&snap);
    assert!(
        peer_info.holders.iter().all(|h| attached.contains(h)),
        "garbage holder codes listed as processes: {peer_info:?} (attached {attached:?})"
    );
    assert!(peer_info.holders.is_empty(), "{peer_info:?}");
    let extra_info = snap
        .notifies
        .iter()
        .find(|i| (i.device, i.id) == (0, extra.id().unwrap().0))
        .expect("our extra notify is listed");
    // Checked at the end, so that the rest of the test runs whatever it says.
    let extra_creator = extra_info.creator;
    assert_inspector_survives(&f.ns, "garbage holders");
    // The creator's own IPC calls on the damaged notify never panic. (Changed with the new
    // registry: v1 refused them, because the registry no longer named this process as the
    // creator; v2 takes creatorship from the handle, so the export may also succeed.) Its
    // flag still works.
    match extra.export(ExportFlags::DEFAULT) {
        Ok(_) => {}
        Err(e) => assert_eq!(e.code(), AclError::RT_INTERNAL_ERROR, "{e}"),
    }
    f.s.record(&extra).unwrap();
    f.s.wait(&extra, Timeout::secs(1)).unwrap();
    f.s.synchronize().unwrap();
    f.check_contained("garbage holders");
    drop(extra);
    // Reclamation of a dead holder walks the garbage codes without panicking.
    let Fixture {
        mut peer,
        own,
        peer_n,
        s,
        d0,
        rt,
        ns,
        ..
    } = f;
    let peer_pid = peer.pid().0;
    peer.kill();
    let _ = peer.finish();
    // Reading no longer reclaims: the inspector's `reclaim` does.
    assert_eq!(
        inspect::reclaim(ns.name()).expect("reclaiming"),
        Some(1),
        "the dead holder is reclaimed"
    );
    let snap = inspect::inspect(ns.name()).expect("inspect").unwrap();
    assert!(!tgids(&snap).contains(&peer_pid));
    assert_eq!(tgids(&snap), vec![std::process::id() as i32]);
    assert_inspector_survives(&ns, "garbage holders, holder dead");
    // Our notifies still work.
    s.record(&own).unwrap();
    s.wait(&own, Timeout::secs(1)).unwrap();
    s.synchronize().unwrap();
    s.record(&peer_n).unwrap();
    s.synchronize().unwrap();
    drop((own, peer_n, s, d0, rt));
    assert!(!backend_sim::namespace_exists(ns.name()));
    assert!(backend_sim::namespace_files(ns.name()).is_empty());
    drop(ns);
    // At 2ccc0b2 this fails (sim bug): `inspect.rs` lines 147-148 fall back to the slot's
    // `creator_tgid` for a creator code that names no attached process (see
    // `crates/inspector/tests/inspector.rs`, `creator_that_exits_cleanly_is_gone`).
    assert_eq!(
        extra_creator, None,
        "an out-of-range creator code is shown as gone"
    );
}

/// R9/R14: forged "live" entries in the process table (no lock file behind them) are reclaimed
/// as dead, not trusted, and do not keep newcomers out; a damaged slot state or generation
/// makes the creator's IPC calls fail cleanly.
///
/// Fails at 2ccc0b2 (sim bug): the newcomer's attach is refused with "its process table is
/// full". `registry/procs.rs` `free_slot` looks for a free entry among all `max_procs` slots,
/// but `reclaim::sweep` (which `register` runs when none is free, and the inspector's
/// `reclaim`) only probes the slots below the header's `proc_high_water`: forged entries above
/// the mark are never reclaimed, and a process table whose free entries were scribbled "live"
/// refuses every attach for ever. Fix: let `free_slot` treat an entry at or above
/// `proc_high_water` as free (no attach ever used it, so "live" there is a scribble), or let
/// the sweep in `register` probe every slot.
#[test]
fn forged_proc_entries_and_slot_state_are_contained() {
    let mut f = Fixture::new("procs");
    let me = std::process::id() as i32;
    let peer = f.peer.pid().0;
    // Forge every free proc slot as live (pid 1, random nonce); keep the two real ones.
    let mut forged = 0;
    for i in 0..MAX_PROCS {
        let base = Seg::proc(i);
        if f.seg.u32(base + lay::P_STATE) == 1 {
            continue;
        }
        f.seg.put_u32(base + lay::P_STATE, 1);
        f.seg.put_u32(base + lay::P_OS_PID, 1);
        f.seg.put_u32(base + lay::P_BARE_TGID, 1);
        f.seg
            .put_u64(base + lay::P_NONCE, 0x5eed_0000 + u64::from(i));
        forged += 1;
    }
    assert_eq!(forged, MAX_PROCS - 2);
    // Reading no longer reclaims: the inspector's `reclaim` does.
    inspect::reclaim(f.ns.name()).expect("reclaiming");
    let snap = inspect::inspect(f.ns.name()).unwrap().unwrap();
    let mut want = vec![me, peer];
    want.sort_unstable();
    assert_eq!(tgids(&snap), want, "forged entries are reclaimed as dead");
    // Checked at the end, so that the rest of the test runs whatever it says.
    let newcomer = attach(&f.ns, "forged procs");
    let newcomer = newcomer.map(drop).map_err(|e| e.to_string());
    f.check_contained("forged proc entries");

    // A held slot marked free, and another with a bumped generation, under their creator.
    let a = f.d0.create_notify(NotifyFlags::DEFAULT).unwrap();
    let b = f.d0.create_notify(NotifyFlags::DEFAULT).unwrap();
    let kb = b.export(ExportFlags::DISABLE_PID_VALIDATION).unwrap();
    let sa = Seg::slot(0, a.id().unwrap().0);
    let sb = Seg::slot(0, b.id().unwrap().0);
    f.seg.put_u32(sa + lay::N_STATE, 0);
    let g = f.seg.u32(sb + lay::N_GENERATION);
    f.seg.put_u32(sb + lay::N_GENERATION, g.wrapping_add(1));
    assert_code(
        a.export(ExportFlags::DEFAULT),
        AclError::RT_INTERNAL_ERROR,
        "export of a slot freed under its creator",
    );
    // The key names the old generation: unknown (R7).
    let r = f.ask(&format!("import {kb}"));
    assert!(r.starts_with("err 507899 "), "{r}");
    assert_code(
        b.set_import_pid(Pid(1)),
        AclError::RT_INTERNAL_ERROR,
        "set_import_pid on a slot whose generation changed",
    );
    assert_inspector_survives(&f.ns, "slot state/generation");
    drop((a, b));
    f.check_contained("slot state/generation");
    f.finish();
    newcomer
        .unwrap_or_else(|e| panic!("an attach finds a free proc slot among forged entries: {e}"));
}

// ---------------------------------------------------------------------------------------------
// Fuzz-like: random bytes anywhere in the header.

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// R14: after any writes into the header, attaching gives Ok (and a working runtime) or
    /// 507000 with the remedy; never a panic or a hang. The inspector likewise.
    #[test]
    fn header_fuzz_attach_is_ok_or_507000(
        writes in proptest::collection::vec(
            (0..lay::HEADER_SIZE, proptest::collection::vec(any::<u8>(), 1..9)),
            1..4,
        )
    ) {
        let ns = ScopedNamespace::new("fuzz").with_size(DEVICES, CAPACITY);
        let a = builder(&ns).build().unwrap();
        let d0 = a.device(DeviceId(0)).unwrap();
        let s = d0.create_stream().unwrap();
        let n = d0.create_notify(NotifyFlags::DEFAULT).unwrap();
        let seg = Seg::open(&ns);
        for (off, bytes) in &writes {
            let len = bytes.len().min((lay::HEADER_SIZE - off) as usize);
            seg.write(*off, &bytes[..len]);
        }
        match attach_within(&ns, ATTACH_LIMIT) {
            None => panic!("attach hung after writes {writes:?}"),
            Some(Ok(b)) => {
                let d1 = b.device(DeviceId(1)).unwrap();
                let s2 = d1.create_stream().unwrap();
                let m = d1.create_notify(NotifyFlags::DEFAULT).unwrap();
                s2.record(&m).unwrap();
                s2.wait(&m, Timeout::secs(1)).unwrap();
                s2.synchronize().unwrap();
            }
            Some(Err(e)) => {
                prop_assert_eq!(e.code(), AclError::RT_INTERNAL_ERROR, "{}", e);
                let hint = format!("ascend-notify-sim remove --namespace {}", ns.name());
                prop_assert!(e.reason().contains(&hint), "{}", e);
            }
        }
        match inspect::inspect(ns.name()) {
            Ok(_) => {}
            Err(e) => prop_assert_eq!(e.code(), AclError::RT_INTERNAL_ERROR, "{}", e),
        }
        // The attached runtime is unaffected.
        s.record(&n).unwrap();
        s.wait(&n, Timeout::secs(1)).unwrap();
        s.synchronize().unwrap();
        drop((n, s, d0, a));
        prop_assert!(
            backend_sim::namespace_files(ns.name()).is_empty(),
            "files left behind: {:?}",
            backend_sim::namespace_files(ns.name())
        );
    }
}
