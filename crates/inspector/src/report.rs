//! What `status`, `list` and `waits` print, from a [`Snapshot`] (SEMANTICS §4 "Diagnosis").
//!
//! Each report takes `None` for a namespace that does not exist: the inspector never creates
//! one, and says so with zero counts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use backend_sim::inspect::{Hazards, Snapshot, WaitInfo};
use serde_json::{Value, json};

use crate::duration;

/// The hazard kinds of §5 (M6), as the snapshot names them, with what each means.
pub const HAZARD_KINDS: [(&str, &str); 2] = [
    (
        "exporter-closed-first",
        "an exporter closed its key while importers still held the memory",
    ),
    (
        "freed-while-imported",
        "exported memory was freed while another process imported it",
    ),
];

fn hazard_count(h: &Hazards, kind: &str) -> u64 {
    match kind {
        "exporter-closed-first" => h.exporter_closed_first,
        "freed-while-imported" => h.freed_while_imported,
        _ => 0,
    }
}

/// The processes (bare tgids) that caused each kind of hazard, among the latest ones the
/// namespace remembers, in the order first seen.
pub fn hazard_pids(h: &Hazards) -> BTreeMap<&'static str, Vec<i32>> {
    let mut by_kind: BTreeMap<&'static str, Vec<i32>> = BTreeMap::new();
    for (kind, _) in HAZARD_KINDS {
        by_kind.insert(kind, Vec::new());
    }
    for &(pid, kind) in &h.recent {
        let pids = by_kind.entry(kind).or_default();
        if !pids.contains(&pid) {
            pids.push(pid);
        }
    }
    by_kind
}

/// The hazards as JSON: `total`, `counts` and `pids` by kind (every kind present, zero or
/// empty when unseen), and `recent` (`{pid, kind}`, oldest first).
pub fn hazards_json(h: &Hazards) -> Value {
    let counts: serde_json::Map<String, Value> = HAZARD_KINDS
        .iter()
        .map(|(k, _)| ((*k).to_owned(), hazard_count(h, k).into()))
        .collect();
    json!({
        "total": h.exporter_closed_first + h.freed_while_imported,
        "counts": counts,
        "pids": hazard_pids(h),
        "recent": h.recent.iter().map(|(pid, kind)| json!({"pid": pid, "kind": kind})).collect::<Vec<_>>(),
    })
}

fn pid_list(pids: &[i32]) -> String {
    pids.iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The hazards as text lines (no indentation): one summary line, then one per kind seen.
pub fn hazards_text(h: &Hazards) -> Vec<String> {
    let total = h.exporter_closed_first + h.freed_while_imported;
    if total == 0 {
        return vec!["hazards (SEMANTICS §5): none seen".to_owned()];
    }
    let pids = hazard_pids(h);
    let mut lines = vec![format!("hazards (SEMANTICS §5): {total} seen")];
    for (kind, meaning) in HAZARD_KINDS {
        let n = hazard_count(h, kind);
        if n == 0 {
            continue;
        }
        let who = match pids.get(kind).map(Vec::as_slice) {
            Some([]) | None => "processes no longer in the log".to_owned(),
            Some([one]) => format!("pid {one}"),
            Some(many) => format!("pids {}", pid_list(many)),
        };
        lines.push(format!("  {n} {kind} ({who}): {meaning}"));
    }
    lines
}

/// How a wait can end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ends {
    /// A live process other than the waiter holds the notify and can record it.
    OnRecord,
    /// Nobody else can record it: only its timeout ends it.
    ByTimeout,
    /// Nobody else can record it and it has no timeout (0, R3).
    Never,
}

impl Ends {
    /// `record`, `timeout` or `never`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OnRecord => "record",
            Self::ByTimeout => "timeout",
            Self::Never => "never",
        }
    }
}

/// A wait, with what the rest of the snapshot says about who can release it.
#[derive(Clone, Debug)]
pub struct WaitView<'a> {
    /// The wait as the snapshot lists it.
    pub wait: &'a WaitInfo,
    /// Every process holding the notify (bare tgids), the waiter included.
    pub holders: Vec<i32>,
    /// Live holders other than the waiter: who can still record it.
    pub releasers: Vec<i32>,
    /// Holders whose process died and was not reclaimed yet.
    pub dead_holders: Vec<i32>,
    /// How it can end (from the snapshot's `releasable` verdict and its timeout).
    pub ends: Ends,
    /// With a timeout: how long until it expires, in ms.
    pub remaining_ms: Option<u64>,
}

/// Each wait of `snap` with its holders and how it can end, ordered by process, device and
/// stream.
pub fn wait_views(snap: &Snapshot) -> Vec<WaitView<'_>> {
    let alive = |tgid: i32| {
        snap.processes
            .iter()
            .find(|p| p.tgid == tgid)
            .map(|p| p.alive)
    };
    let mut views: Vec<WaitView<'_>> = snap
        .waits
        .iter()
        .map(|w| {
            let mut holders: Vec<i32> = snap
                .notifies
                .iter()
                .find(|n| n.device == w.notify_device && n.id == w.notify_id)
                .map(|n| n.holders.clone())
                .unwrap_or_default();
            holders.dedup();
            let releasers = holders
                .iter()
                .copied()
                .filter(|&h| h != w.pid && alive(h) == Some(true))
                .collect();
            let dead_holders = holders
                .iter()
                .copied()
                .filter(|&h| alive(h) == Some(false))
                .collect();
            let ends = if w.releasable {
                Ends::OnRecord
            } else if w.timeout_s == 0 {
                Ends::Never
            } else {
                Ends::ByTimeout
            };
            WaitView {
                wait: w,
                holders,
                releasers,
                dead_holders,
                ends,
                remaining_ms: (w.timeout_s > 0)
                    .then(|| (u64::from(w.timeout_s) * 1000).saturating_sub(w.waited_ms)),
            }
        })
        .collect();
    views.sort_by_key(|v| (v.wait.pid, v.wait.device, v.wait.stream, v.wait.waited_ms));
    views
}

/// `waits --json`: `{"namespace", "exists", "waits": [...]}`, each wait with the snapshot's
/// fields (`pid`, `device`, `stream`, `notify_device`, `notify_id`, `creator`, `waited_ms`,
/// `timeout_s`, `running`, `releasable`) and `state`, `holders`, `releasers`, `dead_holders`,
/// `ends` and `remaining_ms`.
pub fn waits_json(ns: &str, snap: Option<&Snapshot>) -> Value {
    let waits: Vec<Value> = snap.map_or_else(Vec::new, |snap| {
        wait_views(snap)
            .iter()
            .map(|v| {
                let w = v.wait;
                json!({
                    "pid": w.pid,
                    "device": w.device,
                    "stream": w.stream,
                    "notify_device": w.notify_device,
                    "notify_id": w.notify_id,
                    "creator": w.creator,
                    "waited_ms": w.waited_ms,
                    "timeout_s": w.timeout_s,
                    "running": w.running,
                    "state": if w.running { "running" } else { "queued" },
                    "releasable": w.releasable,
                    "holders": v.holders,
                    "releasers": v.releasers,
                    "dead_holders": v.dead_holders,
                    "ends": v.ends.as_str(),
                    "remaining_ms": v.remaining_ms,
                })
            })
            .collect()
    });
    json!({
        "namespace": ns,
        "exists": snap.is_some(),
        "waits": waits,
        "unlisted": snap.map_or(0, |s| s.waits_unlisted),
    })
}

fn ms(ms: u64) -> String {
    duration(ms as f64 * 1e6)
}

/// `waits` as text: one line per wait and one saying who can release it, or that nothing can
/// ("it will only end by its timeout (N s)", or "it will never end").
pub fn waits_text(ns: &str, snap: Option<&Snapshot>) -> String {
    let Some(snap) = snap else {
        return format!("namespace {ns}: does not exist\n");
    };
    let views = wait_views(snap);
    let mut out = String::new();
    if views.is_empty() {
        let _ = writeln!(out, "namespace {ns}: no waits queued or running");
        return out;
    }
    let stuck = views.iter().filter(|v| v.ends != Ends::OnRecord).count();
    let _ = write!(
        out,
        "namespace {ns}: {} wait{} queued or running",
        views.len(),
        if views.len() == 1 { "" } else { "s" }
    );
    if stuck > 0 {
        let _ = write!(out, ", {stuck} that nothing can release");
    }
    if snap.waits_unlisted > 0 {
        let _ = write!(
            out,
            ", and {} more that the processes' wait boards (32 each) cannot list",
            snap.waits_unlisted
        );
    }
    out.push('\n');
    for v in &views {
        let w = v.wait;
        let creator = w
            .creator
            .map_or_else(|| "creator gone".to_owned(), |c| format!("creator {c}"));
        let timeout = if w.timeout_s == 0 {
            "no timeout".to_owned()
        } else {
            format!("timeout {} s", w.timeout_s)
        };
        let _ = writeln!(
            out,
            "  pid {} (device {}, stream {}) waits on notify {}:{} ({creator}): {} for {}, {timeout}",
            w.pid,
            w.device,
            w.stream,
            w.notify_device,
            w.notify_id,
            if w.running { "running" } else { "queued" },
            ms(w.waited_ms),
        );
        match v.ends {
            Ends::OnRecord => {
                let by = match v.releasers.as_slice() {
                    [] => "another live holder".to_owned(),
                    [one] => format!("live process {one}"),
                    many => format!("live processes {}", pid_list(many)),
                };
                let _ = writeln!(out, "    releasable: {by} can record it");
            }
            Ends::ByTimeout | Ends::Never => {
                let mut why = "no live process other than the waiter holds the notify".to_owned();
                if !v.dead_holders.is_empty() {
                    let _ = write!(
                        why,
                        " (dead, not yet reclaimed: {})",
                        pid_list(&v.dead_holders)
                    );
                }
                let end = if v.ends == Ends::Never {
                    "it will never end (timeout 0 waits forever)".to_owned()
                } else {
                    format!(
                        "it will only end by its timeout ({} s), in about {}",
                        w.timeout_s,
                        ms(v.remaining_ms.unwrap_or(0))
                    )
                };
                let _ = writeln!(out, "    NOT releasable: {why}; {end}");
            }
        }
    }
    out
}

/// `status --json`.
pub fn status_json(ns: &str, snap: Option<&Snapshot>) -> Value {
    let exists = snap.is_some();
    let empty = Snapshot::default();
    let snap = snap.unwrap_or(&empty);
    let c = Counts::of(snap);
    json!({
        "namespace": ns,
        "exists": exists,
        "processes": c.alive.len(),
        "dead_processes": c.dead.len(),
        "notifies": snap.notifies.len(),
        "devices": snap.devices,
        "capacity": snap.capacity,
        "max_processes": snap.max_processes,
        "pids": c.alive,
        "dead_pids": c.dead,
        "notifies_per_device": c.per_device,
        "waits": snap.waits.len(),
        "unreleasable_waits": snap.waits.iter().filter(|w| !w.releasable).count(),
        "allocations": snap.allocations.len(),
        "exports": snap.exports.len(),
        "hazards": hazards_json(&snap.hazards),
    })
}

struct Counts {
    alive: Vec<i32>,
    dead: Vec<i32>,
    per_device: Vec<u32>,
}

impl Counts {
    fn of(snap: &Snapshot) -> Self {
        let mut per_device = vec![0u32; snap.devices as usize];
        for n in &snap.notifies {
            if let Some(c) = per_device.get_mut(n.device as usize) {
                *c += 1;
            }
        }
        let pick = |alive: bool| {
            snap.processes
                .iter()
                .filter(|p| p.alive == alive)
                .map(|p| p.tgid)
                .collect()
        };
        Self {
            alive: pick(true),
            dead: pick(false),
            per_device,
        }
    }
}

/// `status` as text.
pub fn status_text(ns: &str, snap: Option<&Snapshot>) -> String {
    let Some(snap) = snap else {
        return format!("namespace {ns}: does not exist\n");
    };
    let c = Counts::of(snap);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "namespace {ns}: {} live processes {:?}, {} notifies ({} devices x {} slots)",
        c.alive.len(),
        c.alive,
        snap.notifies.len(),
        snap.devices,
        snap.capacity
    );
    if !c.dead.is_empty() {
        let _ = writeln!(
            out,
            "  {} dead processes not reclaimed yet {:?} (run `reclaim`)",
            c.dead.len(),
            c.dead
        );
    }
    for (device, count) in c.per_device.iter().enumerate().filter(|(_, c)| **c > 0) {
        let _ = writeln!(out, "  device {device}: {count} notifies");
    }
    if !snap.waits.is_empty() {
        let stuck = snap.waits.iter().filter(|w| !w.releasable).count();
        let _ = write!(out, "  {} waits queued or running", snap.waits.len());
        if stuck > 0 {
            let _ = write!(out, ", {stuck} that nothing can release");
        }
        let _ = writeln!(out, " (see `waits`)");
    }
    if !snap.allocations.is_empty() || !snap.exports.is_empty() {
        let _ = writeln!(
            out,
            "  memory: {} allocations, {} IPC exports (see `list`)",
            snap.allocations.len(),
            snap.exports.len()
        );
    }
    for line in hazards_text(&snap.hazards) {
        let _ = writeln!(out, "  {line}");
    }
    out
}

/// `list` as text: one line per notify, allocation and IPC memory export.
pub fn list_text(snap: &Snapshot) -> Vec<String> {
    let mut lines = Vec::new();
    for n in &snap.notifies {
        let creator = n
            .creator
            .map_or_else(|| "gone".to_owned(), |p| p.to_string());
        lines.push(format!(
            "notify device {} id {}: creator {creator}, holders {:?}, exported {}, whitelist {:?}, flag {}",
            n.device,
            n.id,
            n.holders,
            n.exported,
            n.whitelist,
            u8::from(n.flag)
        ));
    }
    for a in &snap.allocations {
        let owner = a.owner.map_or_else(
            || "gone (freed or dead; kept for its importers)".to_owned(),
            |p| p.to_string(),
        );
        lines.push(format!(
            "allocation device {}: {} bytes, owner {owner}, {} imports",
            a.device, a.size, a.imports
        ));
    }
    for e in &snap.exports {
        lines.push(format!(
            "export device {} offset {} size {}: exporter {}, {}, whitelist {:?}, importers {:?}",
            e.device, e.offset, e.size, e.exporter, e.state, e.whitelist, e.importers
        ));
    }
    lines
}

/// `list --json`: one JSON object per line, each with `"type"`: `notify` (the snapshot's
/// notify fields), `allocation` (`device`, `size`, `owner`, `imports`) or `export` (`device`,
/// `offset`, `size`, `exporter`, `state`, `whitelist`, `importers`).
pub fn list_json(snap: &Snapshot) -> Vec<String> {
    fn typed(kind: &str, v: Result<Value, serde_json::Error>) -> String {
        let mut v = v.unwrap_or_else(|e| json!({"error": e.to_string()}));
        if let Some(o) = v.as_object_mut() {
            o.insert("type".into(), kind.into());
        }
        v.to_string()
    }
    let mut lines: Vec<String> = snap
        .notifies
        .iter()
        .map(|n| typed("notify", serde_json::to_value(n)))
        .collect();
    lines.extend(
        snap.allocations
            .iter()
            .map(|a| typed("allocation", serde_json::to_value(a))),
    );
    lines.extend(
        snap.exports
            .iter()
            .map(|e| typed("export", serde_json::to_value(e))),
    );
    lines
}

#[cfg(test)]
mod tests {
    use backend_sim::inspect::{AllocInfo, ExportInfo, NotifyInfo, ProcessInfo};

    use super::*;

    fn process(tgid: i32, alive: bool) -> ProcessInfo {
        ProcessInfo {
            slot: 0,
            tgid,
            os_pid: tgid,
            alive,
        }
    }

    fn wait(pid: i32, id: u32, timeout_s: u32, releasable: bool) -> WaitInfo {
        WaitInfo {
            pid,
            device: 0,
            stream: 3,
            notify_device: 0,
            notify_id: id,
            creator: Some(pid),
            waited_ms: 1_500,
            timeout_s,
            running: true,
            releasable,
        }
    }

    fn notify(id: u32, holders: Vec<i32>) -> NotifyInfo {
        NotifyInfo {
            device: 0,
            id,
            creator: Some(100),
            holders,
            exported: "whitelist",
            whitelist: vec![200],
            flag: false,
        }
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            devices: 2,
            capacity: 8,
            processes: vec![process(100, true), process(200, true), process(300, false)],
            notifies: vec![
                notify(0, vec![100, 200]),
                notify(1, vec![100, 300]),
                notify(2, vec![100]),
            ],
            waits: vec![
                wait(100, 1, 30, false),
                wait(100, 0, 30, true),
                wait(100, 2, 0, false),
            ],
            ..Snapshot::default()
        }
    }

    #[test]
    fn waits_say_who_can_release_them() {
        let snap = snapshot();
        let v = waits_json("ns", Some(&snap));
        assert_eq!(v["exists"], true);
        let waits = v["waits"].as_array().unwrap();
        assert_eq!(waits.len(), 3);
        let by_id = |id: u32| waits.iter().find(|w| w["notify_id"] == id).unwrap();
        let ok = by_id(0);
        assert_eq!(ok["releasable"], true);
        assert_eq!(ok["releasers"], json!([200]));
        assert_eq!(ok["ends"], "record");
        assert_eq!(ok["remaining_ms"], 28_500);
        for key in [
            "pid",
            "device",
            "stream",
            "notify_device",
            "notify_id",
            "creator",
            "waited_ms",
            "timeout_s",
        ] {
            assert!(ok.get(key).is_some(), "{key} in {ok}");
        }
        let dead = by_id(1);
        assert_eq!(dead["releasable"], false);
        assert_eq!(dead["dead_holders"], json!([300]));
        assert_eq!(dead["ends"], "timeout");
        let never = by_id(2);
        assert_eq!(never["ends"], "never");
        assert_eq!(never["remaining_ms"], Value::Null);

        let text = waits_text("ns", Some(&snap));
        assert!(
            text.starts_with("namespace ns: 3 waits queued or running, 2 that nothing"),
            "{text}"
        );
        assert!(
            text.contains("releasable: live process 200 can record it"),
            "{text}"
        );
        assert!(
            text.contains("(dead, not yet reclaimed: 300); it will only end by its timeout (30 s), in about 28.5 s"),
            "{text}"
        );
        assert!(text.contains("it will never end"), "{text}");
    }

    #[test]
    fn a_missing_namespace_has_no_waits() {
        let v = waits_json("ns", None);
        assert_eq!(
            v,
            json!({"namespace": "ns", "exists": false, "waits": [], "unlisted": 0})
        );
        assert_eq!(waits_text("ns", None), "namespace ns: does not exist\n");
        assert!(waits_text("ns", Some(&Snapshot::default())).contains("no waits"));
    }

    #[test]
    fn hazards_by_kind_and_process() {
        let h = Hazards {
            exporter_closed_first: 1,
            freed_while_imported: 3,
            recent: vec![
                (7, "freed-while-imported"),
                (8, "exporter-closed-first"),
                (7, "freed-while-imported"),
                (9, "freed-while-imported"),
            ],
        };
        let v = hazards_json(&h);
        assert_eq!(v["total"], 4);
        assert_eq!(v["counts"]["freed-while-imported"], 3);
        assert_eq!(v["counts"]["exporter-closed-first"], 1);
        assert_eq!(v["pids"]["freed-while-imported"], json!([7, 9]));
        assert_eq!(
            v["recent"][1],
            json!({"pid": 8, "kind": "exporter-closed-first"})
        );
        let text = hazards_text(&h).join("\n");
        assert!(text.contains("4 seen"), "{text}");
        assert!(
            text.contains("3 freed-while-imported (pids 7, 9)"),
            "{text}"
        );
        assert!(text.contains("1 exporter-closed-first (pid 8)"), "{text}");
        let none = hazards_json(&Hazards::default());
        assert_eq!(none["total"], 0);
        assert_eq!(none["counts"]["exporter-closed-first"], 0);
        assert_eq!(
            hazards_text(&Hazards::default()),
            ["hazards (SEMANTICS §5): none seen"]
        );
    }

    #[test]
    fn status_counts_waits_memory_and_hazards() {
        let mut snap = snapshot();
        snap.allocations.push(AllocInfo {
            device: 1,
            size: 4096,
            owner: None,
            imports: 1,
        });
        let v = status_json("ns", Some(&snap));
        assert_eq!(v["processes"], 2);
        assert_eq!(v["dead_processes"], 1);
        assert_eq!(v["waits"], 3);
        assert_eq!(v["unreleasable_waits"], 2);
        assert_eq!(v["allocations"], 1);
        assert_eq!(v["hazards"]["total"], 0);
        let text = status_text("ns", Some(&snap));
        assert!(
            text.contains("3 waits queued or running, 2 that nothing can release"),
            "{text}"
        );
        assert!(
            text.contains("memory: 1 allocations, 0 IPC exports"),
            "{text}"
        );
        let missing = status_json("ns", None);
        assert_eq!(
            (missing["exists"].clone(), missing["processes"].clone()),
            (json!(false), json!(0))
        );
    }

    #[test]
    fn list_shows_memory_beside_notifies() {
        let mut snap = snapshot();
        snap.allocations.push(AllocInfo {
            device: 1,
            size: 4096,
            owner: Some(100),
            imports: 1,
        });
        snap.exports.push(ExportInfo {
            device: 1,
            offset: 0,
            size: 4096,
            exporter: 100,
            state: "whitelist",
            whitelist: vec![200],
            importers: vec![200],
        });
        let text = list_text(&snap);
        assert_eq!(text.len(), 5);
        assert!(text[0].starts_with("notify device 0 id 0: creator 100, holders [100, 200]"));
        assert_eq!(
            text[3],
            "allocation device 1: 4096 bytes, owner 100, 1 imports"
        );
        assert_eq!(
            text[4],
            "export device 1 offset 0 size 4096: exporter 100, whitelist, whitelist [200], importers [200]"
        );
        let json: Vec<Value> = list_json(&snap)
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(json.len(), 5);
        assert_eq!(json[0]["type"], "notify");
        assert_eq!(json[3]["type"], "allocation");
        assert_eq!(json[4]["type"], "export");
        assert_eq!(json[4]["importers"], json!([200]));
    }
}
