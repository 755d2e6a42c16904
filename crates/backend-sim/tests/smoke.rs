//! First-light checks of the simulator, single- and multi-process.

use backend_sim::testing::{RoleSpawner, ScopedNamespace, StdioLink, child_role};
use backend_sim::{SimRuntime, inspect};
use notify_api::conformance::Peer;
use notify_api::prelude::*;
use notify_api::{AclError, DeviceId, ExportFlags, ExportKey, ImportFlags, NotifyFlags, Timeout};

#[test]
#[ignore = "entry point of spawned child processes"]
fn child() {
    let Some(role) = child_role() else { return };
    let rt = SimRuntime::from_env().unwrap();
    let mut link = StdioLink;
    match role.as_str() {
        "importer" => {
            let dev = rt.device(DeviceId(1)).unwrap();
            link.send(&format!("pid {}", rt.bare_tgid().unwrap()));
            let key: ExportKey = link.recv().parse().unwrap();
            let n = dev
                .import_notify(&key, ImportFlags::ENABLE_PEER_ACCESS)
                .unwrap();
            let s = dev.create_stream().unwrap();
            s.record(&n).unwrap();
            s.synchronize().unwrap();
            link.send("recorded");
        }
        other => panic!("unknown role {other}"),
    }
}

/// R1, R2, R6, R7: the seed's A/B flow across two real processes.
#[test]
fn two_process_flow() {
    let ns = ScopedNamespace::new("smoke");
    let a = ns.builder().build().unwrap();
    let dev = a.device(DeviceId(0)).unwrap();
    let n = dev.create_notify(NotifyFlags::DEFAULT).unwrap();
    let key = n.export(ExportFlags::DEFAULT).unwrap();
    let mut peer = RoleSpawner::new("child", &ns).start("importer");
    let pid: i32 = peer.recv().strip_prefix("pid ").unwrap().parse().unwrap();
    // R16: in the host PID namespace, without `ASCEND_NOTIFY_SIM_BARE_TGID=remap`, the bare
    // tgid is `getpid()`.
    assert_eq!(pid, peer.pid().0);
    n.set_import_pid(notify_api::Pid(pid)).unwrap();
    peer.send(key.as_str());
    let s = dev.create_stream().unwrap();
    s.wait(&n, Timeout::secs(10)).unwrap();
    s.synchronize().unwrap();
    assert_eq!(peer.recv(), "recorded");
    assert_eq!(Box::new(peer).wait(), 0);
    let snap = inspect::inspect(ns.name()).unwrap().unwrap();
    let procs: Vec<(i32, bool)> = snap.processes.iter().map(|p| (p.tgid, p.alive)).collect();
    assert_eq!(procs, vec![(std::process::id() as i32, true)]);
    assert_eq!(snap.notifies.len(), 1);
    drop(n);
    drop(s);
    drop(dev);
    drop(a);
    assert!(
        !backend_sim::namespace_exists(ns.name()),
        "the last process out removes the namespace"
    );
    assert!(backend_sim::namespace_files(ns.name()).is_empty());
}

/// R1: records merge; a record before the wait is not lost.
#[test]
fn single_process_flag() {
    let ns = ScopedNamespace::new("flag");
    let rt = ns.builder().build().unwrap();
    let dev = rt.device(DeviceId(0)).unwrap();
    let n = dev.create_notify(NotifyFlags::DEFAULT).unwrap();
    let s = dev.create_stream().unwrap();
    s.record(&n).unwrap();
    s.record(&n).unwrap();
    s.wait(&n, Timeout::secs(1)).unwrap();
    s.synchronize().unwrap();
    s.wait(&n, Timeout::secs(1)).unwrap();
    let e = s.synchronize().unwrap_err();
    assert_eq!(e.code(), AclError::RT_WAIT_TIMEOUT, "{e}");
    drop((n, s, dev, rt));
    assert!(backend_sim::namespace_files(ns.name()).is_empty());
}
