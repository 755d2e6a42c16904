//! `ascend-notify-sim waits` across real processes (SEMANTICS §4 "Diagnosis"): every wait
//! queued or running, and whether a live holder other than the waiter can still record it;
//! `status` and `list` with IPC memory and the hazards of §5.

use std::process::Command;
use std::time::{Duration, Instant};

use backend_sim::SimRuntime;
use backend_sim::testing::{RoleSpawner, ScopedNamespace, StdioLink, child_role};
use notify_api::prelude::*;
use notify_api::{
    DeviceId, ExportFlags, ExportKey, ImportFlags, MallocPolicy, MemExportFlags, MemImportFlags,
    NotifyFlags, Pid, Timeout,
};
use serde_json::{Value, json};

/// Runs the inspector and returns its stdout; panics, showing its stderr, if it failed.
fn inspector(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ascend-notify-sim"))
        .args(args)
        .output()
        .expect("running ascend-notify-sim");
    assert!(
        out.status.success(),
        "ascend-notify-sim {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn json_of(args: &[&str]) -> Value {
    let out = inspector(args);
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("{args:?}: not one JSON object ({e}): {out}"))
}

fn waits(ns: &str) -> Vec<Value> {
    let v = json_of(&["waits", "--namespace", ns, "--json"]);
    assert_eq!(v["exists"], true, "{v}");
    v["waits"].as_array().expect("a waits array").clone()
}

/// Polls `waits --json` until `pred` holds of the list (a worker picks a wait up, a dead
/// process's lock is dropped) or 10 s have passed.
fn waits_until(ns: &str, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let w = waits(ns);
        if pred(&w) {
            return w;
        }
        assert!(
            Instant::now() < deadline,
            "waited 10 s for {what}; last: {w:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "entry point of spawned child processes"]
fn child() {
    let Some(role) = child_role() else { return };
    let mut link = StdioLink;
    let rt = SimRuntime::from_env().unwrap();
    match role.as_str() {
        // Imports a notify and holds it until told to go (or killed).
        "holder" => {
            let device = rt.device(DeviceId(1)).unwrap();
            link.send(&rt.bare_tgid().unwrap().0.to_string());
            let key: ExportKey = link.recv().parse().unwrap();
            let n = device
                .import_notify(&key, ImportFlags::ENABLE_PEER_ACCESS)
                .unwrap();
            link.send("imported");
            assert_eq!(link.recv(), "go");
            drop(n);
        }
        // Imports memory and holds it until told to go.
        "mem-importer" => {
            let device = rt.device(DeviceId(0)).unwrap();
            link.send(&rt.bare_tgid().unwrap().0.to_string());
            let key: ExportKey = link.recv().parse().unwrap();
            let m = device
                .import_memory(&key, 4096, MemImportFlags::DEFAULT)
                .unwrap();
            link.send("imported");
            assert_eq!(link.recv(), "go");
            drop(m);
        }
        other => panic!("unknown role {other}"),
    }
    println!("{role}: all passed");
}

/// §4 "Diagnosis": a wait whose notify another live process holds is releasable; once that
/// process is SIGKILLed (and not reclaimed), nothing but the timeout can end it, and the
/// inspector says so in JSON and in words.
#[test]
fn a_wait_is_releasable_until_its_only_other_holder_is_killed() {
    let ns = ScopedNamespace::new("waits-kill");
    let rt = ns.builder().build().unwrap();
    let me = rt.bare_tgid().unwrap().0;
    let device = rt.device(DeviceId(0)).unwrap();
    let n = device.create_notify(NotifyFlags::DEFAULT).unwrap();
    let id = n.id().unwrap().0;
    let key = n.export(ExportFlags::DEFAULT).unwrap();
    let mut holder = RoleSpawner::new("child", &ns).start("holder");
    let pid: i32 = holder.recv().parse().unwrap();
    n.set_import_pid(Pid(pid)).unwrap();
    holder.send(key.as_str());
    assert_eq!(holder.recv(), "imported");

    assert!(waits(ns.name()).is_empty(), "nothing waits yet");
    let stream = device.create_stream().unwrap();
    stream.wait(&n, Timeout::secs(30)).unwrap();

    let w = waits_until(ns.name(), "the wait to run", |w| {
        w.len() == 1 && w[0]["running"] == true
    });
    let w = &w[0];
    assert_eq!(w["pid"], me, "{w}");
    assert_eq!(w["device"], 0, "{w}");
    assert!(w["stream"].is_u64(), "{w}");
    assert_eq!(w["notify_device"], 0, "{w}");
    assert_eq!(w["notify_id"], id, "{w}");
    assert_eq!(w["creator"], me, "{w}");
    assert_eq!(w["timeout_s"], 30, "{w}");
    assert!(w["waited_ms"].as_u64().unwrap() < 30_000, "{w}");
    assert_eq!(w["state"], "running", "{w}");
    assert_eq!(w["releasable"], true, "{w}");
    assert_eq!(w["releasers"], json!([pid]), "{w}");
    assert_eq!(w["ends"], "record", "{w}");
    let text = inspector(&["waits", "--namespace", ns.name()]);
    assert!(
        text.contains(&format!(
            "pid {me} (device 0, stream {}) waits on notify 0:{id} (creator {me}): running",
            w["stream"]
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("releasable: live process {pid} can record it")),
        "{text}"
    );

    holder.kill();
    let (status, _) = holder.finish();
    assert!(!status.success(), "the holder was killed");
    let w = waits_until(ns.name(), "the verdict to change", |w| {
        w.len() == 1 && w[0]["releasable"] == false
    });
    let w = &w[0];
    assert_eq!(
        w["dead_holders"],
        json!([pid]),
        "the dead holder is not reclaimed: {w}"
    );
    assert_eq!(w["releasers"], json!([]), "{w}");
    assert_eq!(w["ends"], "timeout", "{w}");
    let text = inspector(&["waits", "--namespace", ns.name()]);
    assert!(
        text.contains("NOT releasable: no live process other than the waiter holds the notify"),
        "{text}"
    );
    assert!(
        text.contains(&format!("dead, not yet reclaimed: {pid}")),
        "{text}"
    );
    assert!(
        text.contains("will only end by its timeout (30 s)"),
        "{text}"
    );
    let status = json_of(&["status", "--namespace", ns.name(), "--json"]);
    assert_eq!(status["waits"], 1, "{status}");
    assert_eq!(status["unreleasable_waits"], 1, "{status}");
    assert_eq!(status["dead_pids"], json!([pid]), "{status}");

    // Reclaiming the dead changes nothing for the verdict: the holder is gone for good.
    inspector(&["reclaim", "--namespace", ns.name()]);
    let w = waits(ns.name());
    assert_eq!((w.len(), &w[0]["releasable"]), (1, &json!(false)), "{w:?}");
    assert_eq!(w[0]["dead_holders"], json!([]), "{w:?}");

    // The waiter itself can still record it, from another stream: then nothing waits.
    let other = device.create_stream().unwrap();
    other.record(&n).unwrap();
    stream.synchronize().unwrap();
    assert!(waits(ns.name()).is_empty(), "the wait ended");
}

/// A wait without a timeout that nobody else can record will never end; a wait queued behind
/// it is listed as queued.
#[test]
fn an_unreleasable_wait_without_timeout_never_ends() {
    let ns = ScopedNamespace::new("waits-never");
    let rt = ns.builder().build().unwrap();
    let device = rt.device(DeviceId(2)).unwrap();
    let first = device.create_notify(NotifyFlags::DEFAULT).unwrap();
    let second = device.create_notify(NotifyFlags::DEFAULT).unwrap();
    let stream = device.create_stream().unwrap();
    stream.wait(&first, Timeout::FOREVER).unwrap();
    stream.wait(&second, Timeout::secs(5)).unwrap();

    let w = waits_until(ns.name(), "the first wait to run", |w| {
        w.iter().any(|w| w["running"] == true)
    });
    assert_eq!(w.len(), 2, "{w:?}");
    let (run, queued) = if w[0]["running"] == true {
        (&w[0], &w[1])
    } else {
        (&w[1], &w[0])
    };
    assert_eq!(run["notify_id"], first.id().unwrap().0);
    assert_eq!(run["timeout_s"], 0);
    assert_eq!(run["releasable"], false);
    assert_eq!(run["ends"], "never");
    assert_eq!(run["remaining_ms"], Value::Null);
    assert_eq!(run["notify_device"], 2);
    assert_eq!(queued["state"], "queued");
    assert_eq!(queued["ends"], "timeout");
    assert_eq!(queued["stream"], run["stream"]);
    let text = inspector(&["waits", "--namespace", ns.name()]);
    assert!(
        text.contains("2 waits queued or running, 2 that nothing can release"),
        "{text}"
    );
    assert!(text.contains("it will never end"), "{text}");
    assert!(text.contains(": queued for "), "{text}");
    assert!(
        text.contains("will only end by its timeout (5 s)"),
        "{text}"
    );

    let other = device.create_stream().unwrap();
    other.record(&first).unwrap();
    other.record(&second).unwrap();
    stream.synchronize().unwrap();
    assert!(waits(ns.name()).is_empty());
    let text = inspector(&["waits", "--namespace", ns.name()]);
    assert!(text.contains("no waits queued or running"), "{text}");
}

/// `waits` on a namespace that does not exist says so, exits 0 and creates nothing.
#[test]
fn waits_of_a_missing_namespace() {
    let ns = ScopedNamespace::new("waits-missing");
    let v = json_of(&["waits", "--namespace", ns.name(), "--json"]);
    assert_eq!(
        v,
        json!({"namespace": ns.name(), "exists": false, "waits": [], "unlisted": 0})
    );
    assert!(!backend_sim::namespace_exists(ns.name()));
}

/// §5 M6 hazards across processes: `list` shows the allocation and the export with its
/// whitelist and importer; closing the key and freeing the memory while it is imported are
/// counted by kind, with the process that did it, in `status`.
#[test]
fn memory_and_hazards_in_list_and_status() {
    let ns = ScopedNamespace::new("waits-hazards");
    let rt = ns.builder().build().unwrap();
    let me = rt.bare_tgid().unwrap().0;
    let device = rt.device(DeviceId(0)).unwrap();
    let buffer = device.alloc(4096, MallocPolicy::NormalOnly).unwrap();
    let export = buffer
        .export(buffer.as_range(), MemExportFlags::DEFAULT)
        .unwrap();
    let mut importer = RoleSpawner::new("child", &ns).start("mem-importer");
    let pid: i32 = importer.recv().parse().unwrap();
    export.set_import_pids(&[Pid(pid)]).unwrap();
    importer.send(export.key().as_str());
    assert_eq!(importer.recv(), "imported");

    let status = json_of(&["status", "--namespace", ns.name(), "--json"]);
    assert_eq!(status["hazards"]["total"], 0, "{status}");
    assert_eq!(
        (&status["allocations"], &status["exports"]),
        (&json!(1), &json!(1))
    );
    let text = inspector(&["list", "--namespace", ns.name()]);
    assert!(
        text.contains(&format!(
            "allocation device 0: 4096 bytes, owner {me}, 1 imports"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "export device 0 offset 0 size 4096: exporter {me}, whitelist, whitelist [{pid}], importers [{pid}]"
        )),
        "{text}"
    );
    let lines: Vec<Value> = inspector(&["list", "--namespace", ns.name(), "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let export_line = lines
        .iter()
        .find(|l| l["type"] == "export")
        .expect("an export line");
    assert_eq!(export_line["importers"], json!([pid]));
    assert_eq!(export_line["whitelist"], json!([pid]));
    assert!(
        lines
            .iter()
            .any(|l| l["type"] == "allocation" && l["owner"] == me)
    );

    export.close().unwrap();
    buffer.free().unwrap();
    let status = json_of(&["status", "--namespace", ns.name(), "--json"]);
    let h = &status["hazards"];
    assert_eq!(h["total"], 2, "{status}");
    assert_eq!(h["counts"]["exporter-closed-first"], 1, "{status}");
    assert_eq!(h["counts"]["freed-while-imported"], 1, "{status}");
    assert_eq!(h["pids"]["exporter-closed-first"], json!([me]), "{status}");
    assert_eq!(h["pids"]["freed-while-imported"], json!([me]), "{status}");
    let text = inspector(&["status", "--namespace", ns.name()]);
    assert!(text.contains("hazards (SEMANTICS §5): 2 seen"), "{text}");
    assert!(
        text.contains(&format!("1 exporter-closed-first (pid {me})")),
        "{text}"
    );
    assert!(
        text.contains(&format!("1 freed-while-imported (pid {me})")),
        "{text}"
    );
    let text = inspector(&["list", "--namespace", ns.name()]);
    assert!(
        text.contains("owner gone (freed or dead; kept for its importers), 1 imports"),
        "{text}"
    );

    importer.send("go");
    let (status, err) = importer.finish();
    assert!(status.success(), "{err}");
}

/// §4 "Diagnosis": a process's wait board lists 32 waits; the inspector counts the ones beyond
/// it instead of dropping them silently, and the count goes back to 0 as they end.
#[test]
fn waits_beyond_the_board_are_counted() {
    let ns = ScopedNamespace::new("waits-board-full");
    let rt = ns.builder().build().unwrap();
    let device = rt.device(DeviceId(0)).unwrap();
    let stream = device.create_stream().unwrap();
    let notifies: Vec<_> = (0..40)
        .map(|_| device.create_notify(NotifyFlags::DEFAULT).unwrap())
        .collect();
    for n in &notifies {
        stream.wait(n, Timeout::secs(30)).unwrap();
    }
    let v = json_of(&["waits", "--namespace", ns.name(), "--json"]);
    assert_eq!(v["waits"].as_array().unwrap().len(), 32, "{v}");
    assert_eq!(v["unlisted"], 8, "{v}");
    let text = inspector(&["waits", "--namespace", ns.name()]);
    assert!(
        text.contains("8 more that the processes' wait boards"),
        "{text}"
    );
    // Recorded from another stream: one behind the waits would never run.
    let recorder = device.create_stream().unwrap();
    for n in &notifies {
        recorder.record(n).unwrap();
    }
    stream.synchronize().unwrap();
    let v = json_of(&["waits", "--namespace", ns.name(), "--json"]);
    assert_eq!(v["waits"], json!([]), "{v}");
    assert_eq!(v["unlisted"], 0, "{v}");
}
