//! The inspector binary, `ascend-notify-sim`: status, list and remove (SEMANTICS §4).

use std::process::Command;

use backend_sim::testing::ScopedNamespace;
use notify_api::{Backend, DeviceId, ExportFlags, Notify, NotifyFlags, Pid};

fn inspector(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ascend-notify-sim"))
        .args(args)
        .output()
        .expect("running ascend-notify-sim");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn status(ns: &str) -> serde_json::Value {
    let (ok, out) = inspector(&["status", "--namespace", ns, "--json"]);
    assert!(ok, "status failed: {out}");
    serde_json::from_str(&out).expect("one JSON object")
}

/// §4: on a namespace that does not exist, `status --json` says so with zero counts, exits 0,
/// and does not create it.
#[test]
fn status_of_a_missing_namespace() {
    let ns = ScopedNamespace::new("insp-missing");
    let json = status(ns.name());
    assert_eq!(json["exists"], false);
    assert_eq!(json["processes"], 0);
    assert_eq!(json["notifies"], 0);
    assert!(
        !backend_sim::namespace_exists(ns.name()),
        "the inspector never creates a namespace"
    );
}

/// §4: the inspector counts live processes and notifies (never itself), lists each notify with
/// its creator, holders, export state and whitelist, and removes a namespace.
#[test]
fn status_list_and_remove() {
    let ns = ScopedNamespace::new("insp-live");
    let b = ns.builder().build().unwrap();
    b.set_device(DeviceId(1)).unwrap();
    let exported = b.create_notify(NotifyFlags::DEFAULT).unwrap();
    exported.export(ExportFlags::DEFAULT).unwrap();
    exported.set_import_pids(&[Pid(4242)]).unwrap();
    let _plain = b.create_notify(NotifyFlags::DEFAULT).unwrap();

    let json = status(ns.name());
    assert_eq!(json["exists"], true);
    assert_eq!(
        json["processes"], 1,
        "only this process; the inspector does not count itself"
    );
    assert_eq!(json["notifies"], 2);
    assert_eq!(json["notifies_per_device"][1], 2);

    let (ok, list) = inspector(&["list", "--namespace", ns.name()]);
    assert!(ok);
    let me = std::process::id();
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(
        list.contains(&format!(
            "creator {me}, holders [{me}], exported whitelist, whitelist [4242]"
        )),
        "{list}"
    );
    assert!(list.contains("exported no"), "{list}");

    let (ok, out) = inspector(&["remove", "--namespace", ns.name()]);
    assert!(ok && out.contains("removed"), "{out}");
    assert!(!backend_sim::namespace_exists(ns.name()));
    assert_eq!(status(ns.name())["exists"], false);
}
