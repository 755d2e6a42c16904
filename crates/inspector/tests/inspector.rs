//! The inspector binary, `ascend-notify-sim`: status, list, reclaim and remove (SEMANTICS §4,
//! R9).
//!
//! Reading never changes anything: a process that died shows as dead (`dead_processes`,
//! `dead_pids`) until `reclaim` runs, and only `reclaim` frees what it held.

use std::process::Command;

use backend_sim::SimRuntime;
use backend_sim::testing::{RoleSpawner, ScopedNamespace, StdioLink, child_role};
use notify_api::conformance::Peer;
use notify_api::prelude::*;
use notify_api::{DeviceId, ExportFlags, ExportKey, ImportFlags, NotifyFlags, Pid, Timeout};

fn inspector(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ascend-notify-sim"))
        .args(args)
        .output()
        .expect("running ascend-notify-sim");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn status(ns: &str) -> serde_json::Value {
    let (ok, out, err) = inspector(&["status", "--namespace", ns, "--json"]);
    assert!(ok, "status failed: {out}{err}");
    serde_json::from_str(&out).expect("one JSON object")
}

fn list(ns: &str) -> String {
    let (ok, out, err) = inspector(&["list", "--namespace", ns]);
    assert!(ok, "list failed: {out}{err}");
    out
}

fn sorted_files(ns: &str) -> Vec<String> {
    let mut files = backend_sim::namespace_files(ns);
    files.sort_unstable();
    files
}

fn pids(v: &serde_json::Value) -> Vec<i64> {
    let mut p: Vec<i64> = v
        .as_array()
        .unwrap_or_else(|| panic!("a pid array: {v}"))
        .iter()
        .map(|p| p.as_i64().expect("a pid"))
        .collect();
    p.sort_unstable();
    p
}

#[test]
#[ignore = "entry point of spawned child processes"]
fn child() {
    let Some(role) = child_role() else { return };
    let rt = SimRuntime::from_env().expect("the child attaches");
    let mut link = StdioLink;
    match role.as_str() {
        // Creates a notify on device 2, exports it to any pid, announces `key <key>` and
        // `tgid <bare tgid>`, then waits for a line (it is killed, or told to quit).
        "holder" => {
            let dev = rt.device(DeviceId(2)).unwrap();
            let n = dev.create_notify(NotifyFlags::DEFAULT).unwrap();
            let key = n.export(ExportFlags::DISABLE_PID_VALIDATION).unwrap();
            link.send(&format!("key {key}"));
            link.send(&format!("tgid {}", rt.bare_tgid().unwrap()));
            let _ = link.recv();
            drop(n);
            link.send("holder: done");
        }
        other => panic!("unknown role {other}"),
    }
}

/// §4: on a namespace that does not exist, `status --json` says so with zero counts, exits 0,
/// and does not create it.
#[test]
fn status_of_a_missing_namespace() {
    let ns = ScopedNamespace::new("insp-missing");
    let json = status(ns.name());
    assert_eq!(json["exists"], false);
    assert_eq!(json["processes"], 0);
    assert_eq!(json["dead_processes"], 0);
    assert_eq!(json["notifies"], 0);
    assert_eq!(json["max_processes"], 0);
    assert_eq!(pids(&json["pids"]), Vec::<i64>::new());
    assert_eq!(pids(&json["dead_pids"]), Vec::<i64>::new());
    let (ok, out, err) = inspector(&["reclaim", "--namespace", ns.name()]);
    assert!(ok && out.contains("does not exist"), "{out}{err}");
    let (ok, out, err) = inspector(&["list", "--namespace", ns.name()]);
    assert!(ok && out.is_empty(), "{out}{err}");
    assert!(
        !backend_sim::namespace_exists(ns.name()),
        "the inspector never creates a namespace"
    );
    assert!(backend_sim::namespace_files(ns.name()).is_empty());
}

/// §4: the inspector counts live processes and notifies (never itself), lists each notify with
/// its creator, holders, export state and whitelist, and removes a namespace.
#[test]
fn status_list_and_remove() {
    let ns = ScopedNamespace::new("insp-live");
    let rt = ns.builder().processes(16).build().unwrap();
    let dev = rt.device(DeviceId(1)).unwrap();
    let exported = dev.create_notify(NotifyFlags::DEFAULT).unwrap();
    exported.export(ExportFlags::DEFAULT).unwrap();
    exported.set_import_pid(Pid(4242)).unwrap();
    let _plain = dev.create_notify(NotifyFlags::DEFAULT).unwrap();

    let json = status(ns.name());
    assert_eq!(json["exists"], true);
    assert_eq!(
        json["processes"], 1,
        "only this process; the inspector does not count itself"
    );
    assert_eq!(json["dead_processes"], 0);
    assert_eq!(json["notifies"], 2);
    assert_eq!(json["notifies_per_device"][1], 2);
    assert_eq!(json["max_processes"], 16);
    assert_eq!(json["devices"], 4);
    assert_eq!(json["capacity"], 64);
    let me = std::process::id();
    assert_eq!(pids(&json["pids"]), vec![i64::from(me)]);

    let list = list(ns.name());
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(
        list.contains(&format!(
            "creator {me}, holders [{me}], exported whitelist, whitelist [4242]"
        )),
        "{list}"
    );
    assert!(list.contains("exported no"), "{list}");

    // JSON lines: one object per notify, with the same facts.
    let (ok, out, err) = inspector(&["list", "--namespace", ns.name(), "--json"]);
    assert!(ok, "{err}");
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    let row = rows
        .iter()
        .find(|r| r["exported"] == "whitelist")
        .unwrap_or_else(|| panic!("the exported notify: {out}"));
    assert_eq!(row["device"], 1);
    assert_eq!(row["creator"], me);
    assert_eq!(row["whitelist"], serde_json::json!([4242]));

    let (ok, out, _) = inspector(&["remove", "--namespace", ns.name()]);
    assert!(ok && out.contains("removed"), "{out}");
    assert!(!backend_sim::namespace_exists(ns.name()));
    assert!(backend_sim::namespace_files(ns.name()).is_empty());
    assert_eq!(status(ns.name())["exists"], false);
}

/// R9, §4: reading never reclaims. A SIGKILLed child shows as dead in `status` (every time it
/// is read) and its notify stays listed with it as creator and holder, until `reclaim` frees
/// what it held and removes its lock file; the importer's notify keeps working throughout.
#[test]
fn killed_child_shows_dead_until_reclaim() {
    let ns = ScopedNamespace::new("insp-dead");
    let rt = ns.builder().build().unwrap();
    let dev = rt.device(DeviceId(2)).unwrap();
    let s = dev.create_stream().unwrap();
    let mut peer = RoleSpawner::new("child", &ns).start("holder");
    let key: ExportKey = peer.recv().strip_prefix("key ").unwrap().parse().unwrap();
    let tgid: i64 = peer.recv().strip_prefix("tgid ").unwrap().parse().unwrap();
    let n = dev.import_notify(&key, ImportFlags::DEFAULT).unwrap();
    let me = i64::from(std::process::id());

    let json = status(ns.name());
    assert_eq!(json["processes"], 2, "{json}");
    assert_eq!(json["dead_processes"], 0, "{json}");
    assert_eq!(pids(&json["pids"]), {
        let mut v = vec![me, tgid];
        v.sort_unstable();
        v
    });
    let files_alive = sorted_files(ns.name());

    peer.kill();
    let _ = peer.finish();

    for read in 0..2 {
        let json = status(ns.name());
        assert_eq!(json["processes"], 1, "read {read}: {json}");
        assert_eq!(json["dead_processes"], 1, "read {read}: {json}");
        assert_eq!(pids(&json["pids"]), vec![me], "read {read}: {json}");
        assert_eq!(pids(&json["dead_pids"]), vec![tgid], "read {read}: {json}");
        assert_eq!(json["notifies"], 1, "read {read}: {json}");
        let list = list(ns.name());
        assert!(
            list.contains(&format!("creator {tgid},")),
            "read {read}: the dead creator is not reclaimed by reading: {list}"
        );
        assert!(
            list.contains("exported any-pid"),
            "read {read}: not revoked yet: {list}"
        );
        assert_eq!(
            sorted_files(ns.name()),
            files_alive,
            "read {read}: reading removed a file"
        );
    }
    // R9: a death never records, and the importer's record still works.
    s.record(&n).unwrap();
    s.synchronize().unwrap();

    let (ok, out, err) = inspector(&["reclaim", "--namespace", ns.name()]);
    assert!(ok, "{err}");
    assert!(out.contains("reclaimed 1 dead processes"), "{out}");
    let json = status(ns.name());
    assert_eq!(json["processes"], 1, "{json}");
    assert_eq!(json["dead_processes"], 0, "{json}");
    assert_eq!(pids(&json["dead_pids"]), Vec::<i64>::new());
    assert_eq!(json["notifies"], 1, "this process still holds it: {json}");
    let list = list(ns.name());
    assert!(
        list.contains(&format!("creator gone, holders [{me}], exported revoked")),
        "R8/R9: the dead creator's key is revoked; the importer still holds it: {list}"
    );
    let files = backend_sim::namespace_files(ns.name());
    assert_eq!(
        files.len() + 1,
        files_alive.len(),
        "R9: the reclaimer removes the dead process's lock file: {files:?} vs {files_alive:?}"
    );
    let (ok, out, _) = inspector(&["reclaim", "--namespace", ns.name()]);
    assert!(ok && out.contains("reclaimed 0 dead processes"), "{out}");

    s.record(&n).unwrap();
    s.synchronize().unwrap();
    drop((n, s, dev, rt));
    assert!(!backend_sim::namespace_exists(ns.name()));
    assert!(backend_sim::namespace_files(ns.name()).is_empty());
}

/// §4 "Cleanup": when the only process of a namespace was SIGKILLed, nobody detaches to remove
/// it; `reclaim` reclaims the dead one and, with no live process left, removes every file of
/// the namespace (segment, lock and liveness files, the death count's name).
#[test]
fn reclaim_removes_a_namespace_left_with_no_live_process() {
    let ns = ScopedNamespace::new("insp-orphan");
    let mut peer = RoleSpawner::new("child", &ns).start("holder");
    let _key = peer.recv();
    let tgid: i64 = peer.recv().strip_prefix("tgid ").unwrap().parse().unwrap();
    peer.kill();
    let _ = peer.finish();

    let json = status(ns.name());
    assert_eq!(json["processes"], 0, "{json}");
    assert_eq!(pids(&json["dead_pids"]), vec![tgid], "{json}");
    assert!(
        !backend_sim::namespace_files(ns.name()).is_empty(),
        "a killed last process leaves its namespace until someone reclaims it"
    );

    let (ok, out, err) = inspector(&["reclaim", "--namespace", ns.name()]);
    assert!(ok, "{err}");
    assert!(
        out.contains("reclaimed 1 dead processes") && out.contains("removed"),
        "{out}"
    );
    assert!(!backend_sim::namespace_exists(ns.name()));
    assert_eq!(
        backend_sim::namespace_files(ns.name()),
        Vec::<String>::new(),
        "§4: nothing of the namespace is left"
    );
    assert_eq!(status(ns.name())["exists"], false);
}

/// R9/§4 with a child that exits cleanly: it leaves no dead process behind and nothing to
/// reclaim; the notify it created stays listed for its importer, and the inspector no longer
/// names the departed creator (`NotifyInfo::creator`: "None once the creator is gone"), as it
/// does not name a killed creator once reclaimed (`killed_child_shows_dead_until_reclaim`).
///
/// Fails at 2ccc0b2 (sim bug): neither a destroy nor a clean detach clears the slot's
/// `creator` code (only reclaiming a dead creator does), and `crates/backend-sim/src/inspect.rs`
/// lines 147-148 fall back to `creator_tgid` for any non-zero code that names no attached
/// process, so the departed pid stays listed as creator for as long as an importer holds the
/// notify. Dropping that fallback (`creator: tgid_of(creator)`) fixes it; `chaos.rs` then
/// passes too.
#[test]
fn creator_that_exits_cleanly_is_gone() {
    let ns = ScopedNamespace::new("insp-exit");
    let rt = ns.builder().build().unwrap();
    let dev = rt.device(DeviceId(2)).unwrap();
    let s = dev.create_stream().unwrap();
    let mut peer = RoleSpawner::new("child", &ns).start("holder");
    let key: ExportKey = peer.recv().strip_prefix("key ").unwrap().parse().unwrap();
    let tgid: i64 = peer.recv().strip_prefix("tgid ").unwrap().parse().unwrap();
    let n = dev.import_notify(&key, ImportFlags::DEFAULT).unwrap();
    peer.send("quit");
    assert_eq!(peer.recv(), "holder: done");
    assert_eq!(Box::new(peer).wait(), 0);

    let json = status(ns.name());
    assert_eq!(json["processes"], 1, "{json}");
    assert_eq!(
        json["dead_processes"], 0,
        "a clean exit is not a death: {json}"
    );
    assert_eq!(json["notifies"], 1, "{json}");
    let (ok, out, _) = inspector(&["reclaim", "--namespace", ns.name()]);
    assert!(ok && out.contains("reclaimed 0 dead processes"), "{out}");
    let me = std::process::id();
    let list = list(ns.name());
    assert!(
        list.contains(&format!("holders [{me}], exported revoked")),
        "R8: the creator's departure revoked the key; we still hold the notify: {list}"
    );
    assert!(
        !list.contains(&format!("creator {tgid},")),
        "the departed creator {tgid} is still named as creator: {list}"
    );
    s.record(&n).unwrap();
    s.synchronize().unwrap();
    drop((n, s, dev, rt));
    assert!(backend_sim::namespace_files(ns.name()).is_empty());
}

/// §4/R14: on a corrupted registry `status` and `list` fail (exit status 1) with 507000 and the
/// remedy, without panicking; `remove` still removes it.
#[test]
fn corrupted_registry_is_refused_and_removable() {
    use std::os::unix::fs::FileExt;
    let ns = ScopedNamespace::new("insp-corrupt");
    let rt = ns.builder().build().unwrap();
    let dev = rt.device(DeviceId(0)).unwrap();
    let n = dev.create_notify(NotifyFlags::DEFAULT).unwrap();
    let path = format!("/dev/shm/ascend-notify.{}", ns.name());
    let seg = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("the segment");
    // The magic, the registry's first 8 bytes.
    seg.write_all_at(&[0xff; 8], 0).unwrap();
    for args in [&["status", "--json"][..], &["list"][..], &["reclaim"][..]] {
        let mut argv = args.to_vec();
        argv.extend(["--namespace", ns.name()]);
        let (ok, _, err) = inspector(&argv);
        assert!(!ok, "{args:?} accepted a corrupted registry");
        assert!(
            err.contains("507000") || err.contains("R14"),
            "{args:?}: {err}"
        );
        assert!(
            err.contains(&format!(
                "ascend-notify-sim remove --namespace {}",
                ns.name()
            )),
            "{args:?}: the message should name the remedy: {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    // The attached process carries on with what it validated at attach.
    let s = dev.create_stream().unwrap();
    s.record(&n).unwrap();
    s.wait(&n, Timeout::secs(1)).unwrap();
    s.synchronize().unwrap();
    let (ok, out, err) = inspector(&["remove", "--namespace", ns.name()]);
    assert!(ok && out.contains("removed"), "{out}{err}");
    assert!(!backend_sim::namespace_exists(ns.name()));
    drop((n, s, dev, rt));
    assert!(backend_sim::namespace_files(ns.name()).is_empty());
}
