//! `ascend-notify-sim trace` on the traces of real processes (SEMANTICS §4 "Diagnosis"): two
//! processes ping-pong with `ASCEND_NOTIFY_SIM_TRACE` set; the merged Chrome trace has one
//! thread track per stream, tasks of one stream that do not overlap, and a flow arrow from each
//! record to the wait it released (across processes); the SVG is well-formed XML with one lane
//! per stream.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use backend_sim::testing::{RoleSpawner, ScopedNamespace, StdioLink, child_role};
use backend_sim::{ENV_TRACE, SimRuntime};
use notify_api::prelude::*;
use notify_api::{
    DeviceId, ExportFlags, ExportKey, ImportFlags, MallocPolicy, NotifyFlags, Pid, Timeout,
};
use serde_json::Value;

/// Rounds of the ping-pong: each has one record and one wait in each process.
const ROUNDS: usize = 6;

#[test]
#[ignore = "entry point of spawned child processes"]
fn child() {
    let Some(role) = child_role() else { return };
    let mut link = StdioLink;
    let rt = SimRuntime::from_env().unwrap();
    // "ping" (device 0) records ping and waits for pong; "pong" (device 1) the other way round.
    // Each creates the notify it waits on (only the creator may wait, R4) and imports the other.
    let device = rt
        .device(DeviceId(if role == "ping" { 0 } else { 1 }))
        .unwrap();
    link.send(&rt.bare_tgid().unwrap().0.to_string());
    let peer: i32 = link.recv().parse().unwrap();
    let mine = device.create_notify(NotifyFlags::DEFAULT).unwrap();
    let key = mine.export(ExportFlags::DEFAULT).unwrap();
    mine.set_import_pid(Pid(peer)).unwrap();
    link.send(key.as_str());
    let theirs_key: ExportKey = link.recv().parse().unwrap();
    let theirs = device
        .import_notify(&theirs_key, ImportFlags::ENABLE_PEER_ACCESS)
        .unwrap();
    let stream = device.create_stream().unwrap();
    match role.as_str() {
        "ping" => {
            // A second stream with other kinds of tasks, for the picture.
            let side = device.create_stream().unwrap();
            let buffer = device.alloc(4096, MallocPolicy::NormalOnly).unwrap();
            side.memset(buffer.as_range(), 7).unwrap();
            side.launch_host_fn(|| std::thread::sleep(std::time::Duration::from_millis(1)))
                .unwrap();
            for _ in 0..ROUNDS {
                stream.record(&theirs).unwrap();
                stream.wait(&mine, Timeout::secs(20)).unwrap();
            }
            side.synchronize().unwrap();
            stream.synchronize().unwrap();
            drop(buffer);
        }
        "pong" => {
            for _ in 0..ROUNDS {
                stream.wait(&mine, Timeout::secs(20)).unwrap();
                stream.record(&theirs).unwrap();
            }
            stream.synchronize().unwrap();
        }
        other => panic!("unknown role {other}"),
    }
    link.send("done");
    println!("{role}: all passed");
}

/// What one traced ping-pong left: the raw lines, the merged JSON and the SVG.
struct Run {
    lines: Vec<Value>,
    chrome: Value,
    svg: String,
    pids: [i64; 2],
}

fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "insp-{label}-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn inspector(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ascend-notify-sim"))
        .args(args)
        .output()
        .expect("running ascend-notify-sim")
}

fn read_lines(dir: &Path) -> Vec<Value> {
    let mut lines = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("trace-") && name.ends_with(".jsonl") {
            for l in std::fs::read_to_string(&path).unwrap().lines() {
                lines.push(serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: {e}: {l}")));
            }
        }
    }
    lines
}

/// Runs the ping-pong once for every test of this file, and merges its traces.
fn run() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        let ns = ScopedNamespace::new("trace");
        let traces = temp_dir("traces");
        let spawner = RoleSpawner::new("child", &ns).env(ENV_TRACE, traces.to_str().unwrap());
        let mut ping = spawner.start("ping");
        let mut pong = spawner.start("pong");
        let (a, b) = (ping.recv(), pong.recv());
        ping.send(&b);
        pong.send(&a);
        let (ka, kb) = (ping.recv(), pong.recv());
        ping.send(&kb);
        pong.send(&ka);
        assert_eq!(ping.recv(), "done");
        assert_eq!(pong.recv(), "done");
        for (who, p) in [("ping", ping), ("pong", pong)] {
            let (status, err) = p.finish();
            assert!(status.success(), "{who} failed: {err}");
        }
        let files = std::fs::read_dir(&traces).unwrap().count();
        assert_eq!(files, 2, "one trace file per process");

        let out = temp_dir("merged");
        let json = out.join("trace.json");
        let svg = out.join("timeline.svg");
        let o = inspector(&[
            "trace",
            traces.to_str().unwrap(),
            "-o",
            json.to_str().unwrap(),
            "--svg",
            svg.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let summary = String::from_utf8_lossy(&o.stdout);
        assert!(
            summary.contains("merged 2 trace files: 2 processes"),
            "{summary}"
        );
        let run = Run {
            lines: read_lines(&traces),
            chrome: serde_json::from_str(&std::fs::read_to_string(&json).unwrap())
                .expect("the merged trace is JSON"),
            svg: std::fs::read_to_string(&svg).unwrap(),
            pids: [a.parse().unwrap(), b.parse().unwrap()],
        };
        std::fs::remove_dir_all(&traces).unwrap();
        std::fs::remove_dir_all(&out).unwrap();
        run
    })
}

/// The (pid, stream) pairs of the raw lines.
fn streams(run: &Run) -> BTreeSet<(i64, i64)> {
    run.lines
        .iter()
        .map(|l| (l["pid"].as_i64().unwrap(), l["stream"].as_i64().unwrap()))
        .collect()
}

fn events<'a>(run: &'a Run, ph: &str) -> Vec<&'a Value> {
    run.chrome["traceEvents"]
        .as_array()
        .expect("traceEvents")
        .iter()
        .filter(|e| e["ph"] == ph)
        .collect()
}

fn track(e: &Value) -> (i64, i64) {
    (e["pid"].as_i64().unwrap(), e["tid"].as_i64().unwrap())
}

fn f64_of(e: &Value, k: &str) -> f64 {
    e[k].as_f64()
        .unwrap_or_else(|| panic!("no number {k} in {e}"))
}

/// The complete event of `track` whose span holds `ts`.
fn enclosing<'a>(x: &[&'a Value], on: (i64, i64), ts: f64) -> Option<&'a Value> {
    const EPS: f64 = 1e-6;
    x.iter().copied().find(|e| {
        track(e) == on
            && f64_of(e, "ts") <= ts + EPS
            && ts <= f64_of(e, "ts") + f64_of(e, "dur") + EPS
    })
}

#[test]
fn one_process_track_per_tgid_and_one_thread_track_per_stream() {
    let run = run();
    let m = events(run, "M");
    let procs: BTreeMap<i64, &str> = m
        .iter()
        .filter(|e| e["name"] == "process_name")
        .map(|e| {
            (
                e["pid"].as_i64().unwrap(),
                e["args"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(procs.len(), 2, "{procs:?}");
    for pid in run.pids {
        assert_eq!(
            procs.get(&pid).copied(),
            Some(format!("pid {pid}").as_str())
        );
    }
    let threads: Vec<&&Value> = m.iter().filter(|e| e["name"] == "thread_name").collect();
    let tracks: BTreeSet<(i64, i64)> = threads.iter().map(|e| track(e)).collect();
    assert_eq!(threads.len(), tracks.len(), "one name per track");
    assert_eq!(tracks, streams(run), "one thread track per traced stream");
    assert!(
        tracks.len() >= 3,
        "ping has two streams, pong one: {tracks:?}"
    );
    for e in &threads {
        let name = e["args"]["name"].as_str().unwrap();
        assert!(
            name.starts_with(&format!("stream {} (device ", e["tid"])),
            "{name}"
        );
    }
    let kinds: BTreeSet<&str> = events(run, "X")
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for k in ["record", "wait", "set", "host_fn"] {
        assert!(kinds.contains(k), "{k} in {kinds:?}");
    }
}

#[test]
fn tasks_of_one_stream_do_not_overlap() {
    let run = run();
    let mut by_track: BTreeMap<(i64, i64), Vec<(f64, f64)>> = BTreeMap::new();
    for e in events(run, "X") {
        let (ts, dur) = (f64_of(e, "ts"), f64_of(e, "dur"));
        assert!(ts >= 0.0 && dur >= 0.0, "{e}");
        by_track.entry(track(e)).or_default().push((ts, ts + dur));
    }
    let tasks: usize = by_track.values().map(Vec::len).sum();
    let ended = run.lines.iter().filter(|l| l["ev"] == "end").count();
    assert_eq!(
        tasks, ended,
        "one complete event per task, and every task ended"
    );
    for (t, mut spans) in by_track {
        spans.sort_by(|a, b| a.0.total_cmp(&b.0));
        for w in spans.windows(2) {
            assert!(
                w[0].1 <= w[1].0 + 1e-6,
                "{t:?}: {:?} overlaps {:?}",
                w[0],
                w[1]
            );
        }
    }
}

#[test]
fn every_released_wait_has_an_arrow_from_its_record() {
    let run = run();
    let x = events(run, "X");
    let (s, f) = (events(run, "s"), events(run, "f"));
    let released: Vec<&&Value> = x
        .iter()
        .filter(|e| e["name"] == "wait" && e["args"]["released_by"].is_string())
        .collect();
    assert_eq!(
        released.len(),
        2 * ROUNDS,
        "every wait of both processes was released"
    );
    let raw = run
        .lines
        .iter()
        .filter(|l| l["ev"] == "end" && l["released_by"].is_u64())
        .count();
    assert_eq!(raw, released.len());
    assert_eq!((s.len(), f.len()), (released.len(), released.len()));
    for wait in released {
        let on = track(wait);
        let end = f
            .iter()
            .find(|e| {
                track(e) == on
                    && enclosing(&x, on, f64_of(e, "ts")).is_some_and(|w| std::ptr::eq(w, *wait))
            })
            .unwrap_or_else(|| panic!("no flow ends on {wait}"));
        assert_eq!(end["bp"], "e", "{end}");
        let start = s
            .iter()
            .find(|e| e["id"] == end["id"])
            .unwrap_or_else(|| panic!("no flow starts for {end}"));
        assert_eq!((&start["cat"], &start["name"]), (&end["cat"], &end["name"]));
        let record = enclosing(&x, track(start), f64_of(start, "ts"))
            .unwrap_or_else(|| panic!("{start} is bound to no task"));
        assert_eq!(record["name"], "record", "{record}");
        assert_eq!(record["args"]["record"], wait["args"]["released_by"]);
        assert_ne!(track(start).0, on.0, "each release crossed processes here");
        // The arrow leaves the record near its end.
        let rec_end = f64_of(record, "ts") + f64_of(record, "dur");
        assert!(
            rec_end - f64_of(start, "ts") <= 0.001 + 1e-6,
            "{start} / {record}"
        );
    }
}

#[test]
fn the_svg_is_xml_with_one_lane_per_stream() {
    let run = run();
    let doc = roxmltree::Document::parse(&run.svg).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    let class = |n: &roxmltree::Node<'_, '_>, c: &str| n.attribute("class") == Some(c);
    let lanes: Vec<_> = root
        .descendants()
        .filter(|n| n.has_tag_name("g") && class(n, "lane"))
        .collect();
    let on_lanes: BTreeSet<(i64, i64)> = lanes
        .iter()
        .map(|n| {
            (
                n.attribute("data-pid").unwrap().parse().unwrap(),
                n.attribute("data-stream").unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(lanes.len(), on_lanes.len());
    assert_eq!(on_lanes, streams(run), "one lane per stream");
    for lane in &lanes {
        let label: String = lane
            .descendants()
            .filter(|n| n.has_tag_name("text") && class(n, "lane-label"))
            .flat_map(|n| n.text())
            .collect();
        assert_eq!(
            label,
            format!(
                "pid {} · stream {} (device {})",
                lane.attribute("data-pid").unwrap(),
                lane.attribute("data-stream").unwrap(),
                lane.attribute("data-device").unwrap()
            )
        );
    }
    let tasks = root
        .descendants()
        .filter(|n| n.has_tag_name("rect") && class(n, "task"))
        .count();
    assert_eq!(tasks, events(run, "X").len(), "a box per task");
    let arrows: Vec<_> = root
        .descendants()
        .filter(|n| n.has_tag_name("path") && class(n, "release"))
        .collect();
    assert_eq!(arrows.len(), 2 * ROUNDS, "an arrow per release");
    assert!(
        arrows
            .iter()
            .all(|a| a.attribute("marker-end") == Some("url(#arrowhead)"))
    );
    assert!(
        root.descendants()
            .any(|n| n.has_tag_name("marker") && n.attribute("id") == Some("arrowhead"))
    );
    assert!(
        root.descendants()
            .any(|n| n.has_tag_name("g") && class(&n, "axis")),
        "a time axis"
    );
}

/// A killed process's truncated last line is skipped with a note; `-o -` writes to stdout.
#[test]
fn a_truncated_trace_still_merges_to_stdout() {
    let dir = temp_dir("truncated");
    std::fs::write(
        dir.join("trace-7-7-00000000.jsonl"),
        "{\"ev\":\"enqueue\",\"ns\":10,\"pid\":7,\"stream\":1,\"device\":0,\"task\":1,\"kind\":\"wait\",\"notify\":[0,3]}\n\
         {\"ev\":\"start\",\"ns\":20,\"pid\":7,\"stream\":1,\"device\":0,\"task\":1,\"kind\":\"wait\",\"notify\":[0,3]}\n\
         {\"ev\":\"end\",\"ns\":3",
    )
    .unwrap();
    let o = inspector(&["trace", dir.to_str().unwrap(), "-o", "-"]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    let x: Vec<&Value> = v["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ph"] == "X")
        .collect();
    assert_eq!(x.len(), 1);
    assert_eq!(x[0]["args"]["unfinished"], true, "the wait never ended");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("skipped 1 lines"), "{err}");
    assert!(err.contains("merged 1 trace files"), "{err}");
}

/// Without an output, or on a directory without traces, it fails and says why.
#[test]
fn trace_refuses_what_it_cannot_do() {
    let dir = temp_dir("empty");
    let o = inspector(&["trace", dir.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("nothing to write"));
    let o = inspector(&["trace", dir.to_str().unwrap(), "-o", "-"]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("holds no trace-*.jsonl file"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
