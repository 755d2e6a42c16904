//! R16 across real processes: bare tgids, not `getpid()`, are what whitelists and the inspector
//! hold.
//!
//! - `remap_*`: `ASCEND_NOTIFY_SIM_BARE_TGID=remap` gives a child a bare tgid other than its
//!   `getpid()`, as in a VM or a container: whitelisting its `getpid()` does not let it import
//!   (507899), whitelisting its bare tgid does, and the inspector lists it by bare tgid.
//! - `pid_namespaces_*`: children started with `unshare --pid --fork --mount-proc`, each pid 1
//!   in a PID namespace of its own, sharing `/dev/shm` with this process (the container case).
//!   They need root and a working `unshare`; where they cannot run they print `skipped: <why>`
//!   and return.
//!
//! Children are this test binary re-executed (entry `child`), speaking the test kit's line
//! protocol; every line they owe has a deadline (`common::Proc`).

use std::collections::BTreeSet;

use backend_sim::testing::{ScopedNamespace, StdioLink, child_role};
use backend_sim::{SimNotify, SimRuntime, inspect};
use notify_api::prelude::*;
use notify_api::{
    AclError, DeviceId, ExportFlags, ExportKey, ImportFlags, NotifyFlags, Pid, Timeout,
};

mod common;
use common::Proc;

// ---------------------------------------------------------------------------------------------
// The child.

#[test]
#[ignore = "entry point of spawned child processes"]
fn child() {
    let Some(role) = child_role() else { return };
    match role.as_str() {
        "importer" => importer(),
        other => panic!("unknown role {other}"),
    }
}

/// Attaches and announces `ids <getpid> <bare tgid> <pid namespace inode>`, then serves:
/// `import <key>` (keeps the notify; answers `ok` or `err <code> <reason>`), `record <i>`
/// (records the `i`-th import and synchronizes), `quit`.
fn importer() {
    let mut link = StdioLink;
    let rt = SimRuntime::from_env().expect("the importer attaches");
    let dev = rt.device(DeviceId(0)).unwrap();
    let s = dev.create_stream().unwrap();
    let tgid = rt.bare_tgid().unwrap();
    assert_eq!(dev.bare_tgid().unwrap(), tgid, "R16: one value per process");
    link.send(&format!(
        "ids {} {} {}",
        std::process::id(),
        tgid,
        pid_namespace()
    ));
    let mut held: Vec<SimNotify> = Vec::new();
    loop {
        let line = link.recv();
        let (cmd, arg) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let reply = match cmd {
            "import" => {
                let key: ExportKey = arg.parse().unwrap();
                match dev.import_notify(&key, ImportFlags::DEFAULT) {
                    Ok(n) => {
                        held.push(n);
                        "ok".to_owned()
                    }
                    Err(e) => format!("err {} {}", e.code().raw(), e.reason()),
                }
            }
            "record" => {
                let n = &held[arg.parse::<usize>().unwrap()];
                match s.record(n).and_then(|()| s.synchronize()) {
                    Ok(()) => "ok".to_owned(),
                    Err(e) => format!("err {} {}", e.code().raw(), e.reason()),
                }
            }
            "quit" => break,
            other => panic!("unknown command {other}"),
        };
        link.send(&reply);
    }
    drop(held);
    link.send("importer: done");
}

/// The inode of this process's PID namespace.
fn pid_namespace() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid").map_or(0, |m| m.ino())
}

// ---------------------------------------------------------------------------------------------
// The parent's side.

/// What a child announced.
#[derive(Debug, Clone, Copy)]
struct Ids {
    pid: i32,
    tgid: i32,
    pid_ns: u64,
}

fn ids(p: &mut Proc) -> Ids {
    let line = p.recv();
    let mut it = line
        .strip_prefix("ids ")
        .unwrap_or_else(|| panic!("an ids line: {line}"))
        .split(' ');
    let mut next = || it.next().expect("three ids").to_owned();
    Ids {
        pid: next().parse().unwrap(),
        tgid: next().parse().unwrap(),
        pid_ns: next().parse().unwrap(),
    }
}

/// A notify of ours on device 0, exported with the whitelist enforced.
fn exported(dev: &backend_sim::SimDevice) -> (SimNotify, ExportKey) {
    let n = dev.create_notify(NotifyFlags::DEFAULT).unwrap();
    let key = n.export(ExportFlags::DEFAULT).unwrap();
    (n, key)
}

/// R7, R16: the child cannot import while only its `getpid()` is whitelisted (507899), and can
/// once its bare tgid is; its record then releases our wait.
#[track_caller]
fn whitelist_by_bare_tgid(child: &mut Proc, ids: Ids, dev: &backend_sim::SimDevice) -> SimNotify {
    let (n, key) = exported(dev);
    n.set_import_pid(Pid(ids.pid)).unwrap();
    let r = child.ask(&format!("import {key}"));
    assert!(
        r.starts_with("err 507899 ") && r.contains(&format!("pid {}", ids.tgid)),
        "R7/R16: whitelisting getpid() {} must not admit bare tgid {}: {r}",
        ids.pid,
        ids.tgid
    );
    n.set_import_pid(Pid(ids.tgid)).unwrap();
    assert_eq!(
        child.ask(&format!("import {key}")),
        "ok",
        "R7/R16: whitelisting the bare tgid {} admits the child",
        ids.tgid
    );
    n
}

/// The bare tgids of the processes `snap` lists as alive, and of those it lists as dead.
fn alive_and_dead(snap: &inspect::Snapshot) -> (BTreeSet<i32>, BTreeSet<i32>) {
    let alive = snap
        .processes
        .iter()
        .filter(|p| p.alive)
        .map(|p| p.tgid)
        .collect();
    let dead = snap
        .processes
        .iter()
        .filter(|p| !p.alive)
        .map(|p| p.tgid)
        .collect();
    (alive, dead)
}

#[track_caller]
fn quit(mut child: Proc) {
    child.send("quit");
    assert_eq!(child.recv(), "importer: done");
    let (status, stderr) = child.finish();
    assert!(status.success(), "the child failed: {status}\n{stderr}");
}

// ---------------------------------------------------------------------------------------------
// R16 (a): ASCEND_NOTIFY_SIM_BARE_TGID=remap.

/// R16: with `ASCEND_NOTIFY_SIM_BARE_TGID=remap` a child in the host PID namespace gets a bare
/// tgid other than its `getpid()`; its `getpid()` on the whitelist does not let it import
/// (507899), its bare tgid does; the inspector lists it by bare tgid (and shows its `getpid()`
/// only as `os_pid`). This process, without the variable, has `getpid()` as its bare tgid.
#[test]
fn remap_whitelists_and_inspector_use_the_bare_tgid() {
    let ns = ScopedNamespace::new("tgid-remap");
    let rt = ns.builder().build().unwrap();
    let dev = rt.device(DeviceId(0)).unwrap();
    let s = dev.create_stream().unwrap();
    let me = std::process::id() as i32;
    assert_eq!(
        rt.bare_tgid().unwrap(),
        Pid(me),
        "R16: the host's bare tgid"
    );

    let mut env = ns.env();
    env.push((backend_sim::ENV_BARE_TGID.into(), "remap".into()));
    let mut child = Proc::start(&[], "child", "importer", &env);
    let ids = ids(&mut child);
    assert_eq!(ids.pid, child.pid(), "the child's own getpid()");
    assert_eq!(ids.pid_ns, pid_namespace(), "the host PID namespace");
    assert_ne!(
        ids.tgid, ids.pid,
        "R16: remap gives a bare tgid other than getpid()"
    );
    assert!(ids.tgid > 0, "{ids:?}");

    let n = whitelist_by_bare_tgid(&mut child, ids, &dev);
    s.wait(&n, Timeout::secs(10)).unwrap();
    assert_eq!(child.ask("record 0"), "ok");
    s.synchronize().expect("the remapped importer's record");

    let snap = inspect::inspect(ns.name()).unwrap().unwrap();
    let listed = snap
        .processes
        .iter()
        .find(|p| p.tgid == ids.tgid)
        .unwrap_or_else(|| panic!("the child is listed by its bare tgid: {snap:?}"));
    assert_eq!(listed.os_pid, ids.pid, "{snap:?}");
    assert!(listed.alive, "{snap:?}");
    assert!(
        !snap.processes.iter().any(|p| p.tgid == ids.pid),
        "no process is listed under the child's getpid(): {snap:?}"
    );
    let info = snap
        .notifies
        .iter()
        .find(|i| i.id == n.id().unwrap().0 && i.device == 0)
        .expect("our notify is listed");
    let holders: BTreeSet<i32> = info.holders.iter().copied().collect();
    assert_eq!(holders, BTreeSet::from([me, ids.tgid]), "{info:?}");
    assert_eq!(info.creator, Some(me), "{info:?}");
    assert!(
        info.whitelist.contains(&ids.tgid),
        "the whitelist holds the bare tgid: {info:?}"
    );

    quit(child);
    drop((n, s, dev, rt));
    assert!(
        backend_sim::namespace_files(ns.name()).is_empty(),
        "{:?}",
        backend_sim::namespace_files(ns.name())
    );
}

// ---------------------------------------------------------------------------------------------
// R16 (b): PID namespaces.

/// Why the PID-namespace tests cannot run here, if they cannot.
fn pid_namespaces_unavailable() -> Option<String> {
    // SAFETY: `geteuid` takes no arguments and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Some(format!(
            "not root (euid {euid}): unshare --pid needs CAP_SYS_ADMIN"
        ));
    }
    match std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "--kill-child", "true"])
        .output()
    {
        Err(e) => Some(format!("cannot run unshare: {e}")),
        Ok(out) if !out.status.success() => Some(format!(
            "`unshare --pid --fork --mount-proc --kill-child true` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(_) => None,
    }
}

/// `unshare` in front of the re-executed test binary: a new PID namespace (and a mount
/// namespace with its own `/proc`; `/dev/shm` stays shared), the child pid 1 in it, killed if
/// `unshare` dies.
const UNSHARE: &[&str] = &["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"];

/// The host pid of the contained child: the one child of its `unshare`.
fn host_pid(p: &Proc) -> i32 {
    let kids = common::children_of(p.pid());
    assert_eq!(kids.len(), 1, "unshare {} has one child: {kids:?}", p.pid());
    kids[0]
}

/// R16, R9 in containers: two children, each pid 1 in a PID namespace of its own, get
/// different bare tgids, neither equal to its `getpid()`; a container child's `getpid()` on the
/// whitelist does not let it import, its bare tgid does; the inspector tells them apart. When
/// one is SIGKILLed, what it held is reclaimed without touching the other: the survivor stays
/// listed as alive, its import keeps working (its record releases our wait), and the dead one's
/// reference to our notify is gone.
#[test]
fn pid_namespaces_two_pid_1_children_are_never_confused() {
    if let Some(why) = pid_namespaces_unavailable() {
        println!("skipped: {why}");
        return;
    }
    let ns = ScopedNamespace::new("tgid-pidns");
    let rt = ns.builder().build().unwrap();
    let dev = rt.device(DeviceId(0)).unwrap();
    let s = dev.create_stream().unwrap();
    let me = std::process::id() as i32;

    let mut a = Proc::start(UNSHARE, "child", "importer", &ns.env());
    let mut b = Proc::start(UNSHARE, "child", "importer", &ns.env());
    let (ia, ib) = (ids(&mut a), ids(&mut b));
    for (name, i) in [("a", ia), ("b", ib)] {
        assert_eq!(
            i.pid, 1,
            "container {name} is pid 1 in its namespace: {i:?}"
        );
        assert_ne!(
            i.pid_ns,
            pid_namespace(),
            "container {name} has a PID namespace of its own"
        );
        assert_ne!(
            i.tgid, i.pid,
            "R16: container {name}'s bare tgid is not its getpid()"
        );
        assert_ne!(i.tgid, me, "{i:?}");
        assert!(i.tgid > 0, "{i:?}");
    }
    assert_ne!(ia.pid_ns, ib.pid_ns, "two namespaces");
    assert_ne!(ia.tgid, ib.tgid, "R16: two pid 1s, two bare tgids");

    // R7/R16: each imports a notify of ours only once its bare tgid is whitelisted.
    let na = whitelist_by_bare_tgid(&mut a, ia, &dev);
    let nb = whitelist_by_bare_tgid(&mut b, ib, &dev);
    for (p, n, name) in [(&mut a, &na, "a"), (&mut b, &nb, "b")] {
        s.wait(n, Timeout::secs(10)).unwrap();
        assert_eq!(p.ask("record 0"), "ok", "container {name} records");
        s.synchronize()
            .unwrap_or_else(|e| panic!("container {name}'s record: {e}"));
    }

    let snap = inspect::inspect(ns.name()).unwrap().unwrap();
    let (alive, dead) = alive_and_dead(&snap);
    assert_eq!(alive, BTreeSet::from([me, ia.tgid, ib.tgid]), "{snap:?}");
    assert!(dead.is_empty(), "{snap:?}");
    let os_pids: Vec<i32> = snap
        .processes
        .iter()
        .filter(|p| p.tgid != me)
        .map(|p| p.os_pid)
        .collect();
    assert_eq!(
        os_pids,
        vec![1, 1],
        "both are pid 1 to themselves: {snap:?}"
    );
    let holders = |snap: &inspect::Snapshot, n: &SimNotify| -> BTreeSet<i32> {
        snap.notifies
            .iter()
            .find(|i| i.device == 0 && i.id == n.id().unwrap().0)
            .map(|i| i.holders.iter().copied().collect())
            .unwrap_or_default()
    };
    assert_eq!(holders(&snap, &na), BTreeSet::from([me, ia.tgid]));
    assert_eq!(holders(&snap, &nb), BTreeSet::from([me, ib.tgid]));

    // SIGKILL container a's pid 1 (its host pid): the kernel ends its namespace.
    let host_a = host_pid(&a);
    assert_ne!(host_a, host_pid(&b));
    // SAFETY: `kill` takes plain integers; `host_a` is a child of our own `unshare` child.
    assert_eq!(unsafe { libc::kill(host_a, libc::SIGKILL) }, 0);
    let (status, _) = a.finish();
    assert!(!status.success(), "container a was killed: {status}");

    // Reading does not reclaim: a is dead, b alive, both still listed apart.
    let snap = inspect::inspect(ns.name()).unwrap().unwrap();
    let (alive, dead) = alive_and_dead(&snap);
    assert_eq!(alive, BTreeSet::from([me, ib.tgid]), "{snap:?}");
    assert_eq!(dead, BTreeSet::from([ia.tgid]), "{snap:?}");

    // R9: reclaimed (here by the inspector's `reclaim`), a's reference is gone and b's is not.
    assert_eq!(inspect::reclaim(ns.name()).unwrap(), Some(1));
    let snap = inspect::inspect(ns.name()).unwrap().unwrap();
    let (alive, dead) = alive_and_dead(&snap);
    assert_eq!(alive, BTreeSet::from([me, ib.tgid]), "{snap:?}");
    assert!(dead.is_empty(), "{snap:?}");
    assert_eq!(holders(&snap, &na), BTreeSet::from([me]), "{snap:?}");
    assert_eq!(
        holders(&snap, &nb),
        BTreeSet::from([me, ib.tgid]),
        "{snap:?}"
    );

    // b's notify keeps working across the processes; a's death recorded nothing (R9).
    s.wait(&nb, Timeout::secs(10)).unwrap();
    assert_eq!(
        b.ask("record 0"),
        "ok",
        "the survivor records after a's death"
    );
    s.synchronize().expect("the survivor's record");
    s.wait(&na, Timeout::secs(1)).unwrap();
    assert_eq!(
        s.synchronize().unwrap_err().code(),
        AclError::RT_WAIT_TIMEOUT,
        "R9: a death never records"
    );
    // Our own destroy of a's notify meets nobody dead; b is untouched.
    na.destroy().unwrap();
    let snap = inspect::inspect(ns.name()).unwrap().unwrap();
    assert_eq!(alive_and_dead(&snap).0, BTreeSet::from([me, ib.tgid]));

    quit(b);
    drop((nb, s, dev, rt));
    assert!(
        backend_sim::namespace_files(ns.name()).is_empty(),
        "{:?}",
        backend_sim::namespace_files(ns.name())
    );
}

/// R9, R16: a container child killed while holding a reference is reclaimed by the calls that
/// meet it, not only by the inspector: our destroy of the notify it held (its last other
/// holder) reclaims it and frees the slot, and the other container child, also pid 1, is not
/// taken for it.
#[test]
fn pid_namespaces_killed_child_is_reclaimed_by_a_destroy() {
    if let Some(why) = pid_namespaces_unavailable() {
        println!("skipped: {why}");
        return;
    }
    let ns = ScopedNamespace::new("tgid-pidns-destroy");
    let rt = ns.builder().build().unwrap();
    let dev = rt.device(DeviceId(0)).unwrap();
    let me = std::process::id() as i32;
    let mut a = Proc::start(UNSHARE, "child", "importer", &ns.env());
    let mut b = Proc::start(UNSHARE, "child", "importer", &ns.env());
    let (ia, ib) = (ids(&mut a), ids(&mut b));
    let na = whitelist_by_bare_tgid(&mut a, ia, &dev);
    let nb = whitelist_by_bare_tgid(&mut b, ib, &dev);
    let id_a = na.id().unwrap().0;

    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(host_pid(&a), libc::SIGKILL) }, 0);
    let _ = a.finish();
    na.destroy().unwrap();
    let snap = inspect::inspect(ns.name()).unwrap().unwrap();
    let (alive, dead) = alive_and_dead(&snap);
    assert_eq!(alive, BTreeSet::from([me, ib.tgid]), "{snap:?}");
    assert!(
        dead.is_empty(),
        "R9: the destroy met the dead holder and reclaimed it: {snap:?}"
    );
    assert!(
        !snap.notifies.iter().any(|i| i.device == 0 && i.id == id_a),
        "R8: its slot is free once no live holder is left: {snap:?}"
    );
    let s = dev.create_stream().unwrap();
    s.wait(&nb, Timeout::secs(10)).unwrap();
    assert_eq!(b.ask("record 0"), "ok");
    s.synchronize().expect("the other container's record");
    quit(b);
    drop((nb, s, dev, rt));
    assert!(backend_sim::namespace_files(ns.name()).is_empty());
}
