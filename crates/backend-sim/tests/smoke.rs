//! First-light checks of the simulator, single- and multi-process.

use backend_sim::SimBackend;
use backend_sim::testing::{RoleSpawner, ScopedNamespace, StdioLink, child_role};
use notify_api::conformance::{Peer, PeerLink};
use notify_api::*;

#[test]
#[ignore = "entry point of spawned child processes"]
fn child() {
    let Some(role) = child_role() else { return };
    let b = SimBackend::from_env().unwrap();
    let mut link = StdioLink;
    match role.as_str() {
        "importer" => {
            b.set_device(DeviceId(1)).unwrap();
            link.send(&format!("pid {}", b.bare_tgid().unwrap()));
            let key: ExportKey = link.recv().parse().unwrap();
            let n = b
                .import_notify(&key, ImportFlags::ENABLE_PEER_ACCESS)
                .unwrap();
            let s = b.create_stream().unwrap();
            n.record(&s).unwrap();
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
    a.set_device(DeviceId(0)).unwrap();
    let n = a.create_notify(NotifyFlags::DEFAULT).unwrap();
    let key = n.export(ExportFlags::DEFAULT).unwrap();
    let mut peer = RoleSpawner::new("child", &ns).start("importer");
    let pid: i32 = peer.recv().strip_prefix("pid ").unwrap().parse().unwrap();
    assert_eq!(pid, peer.pid().0);
    n.set_import_pids(&[Pid(pid)]).unwrap();
    peer.send(key.as_str());
    let s = a.create_stream().unwrap();
    n.wait_and_reset(&s, 10).unwrap();
    s.synchronize().unwrap();
    assert_eq!(peer.recv(), "recorded");
    assert_eq!(Box::new(peer).wait(), 0);
    let snap = backend_sim::inspect(ns.name()).unwrap().unwrap();
    assert_eq!(snap.processes, vec![std::process::id() as i32]);
    assert_eq!(snap.notifies.len(), 1);
    drop(n);
    drop(s);
    drop(a);
    assert!(
        !backend_sim::namespace_exists(ns.name()),
        "the last process out removes the namespace"
    );
}

/// R1: records merge; a record before the wait is not lost.
#[test]
fn single_process_flag() {
    let ns = ScopedNamespace::new("flag");
    let b = ns.builder().build().unwrap();
    b.set_device(DeviceId(0)).unwrap();
    let n = b.create_notify(NotifyFlags::DEFAULT).unwrap();
    let s = b.create_stream().unwrap();
    n.record(&s).unwrap();
    n.record(&s).unwrap();
    n.wait_and_reset(&s, 1).unwrap();
    s.synchronize().unwrap();
    n.wait_and_reset(&s, 1).unwrap();
    let e = s.synchronize().unwrap_err();
    assert_eq!(e.code(), AclError::RT_WAIT_TIMEOUT, "{e}");
}
