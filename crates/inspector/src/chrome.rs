//! A [`Timeline`] as a Chrome trace event file (`{"traceEvents": [...]}`), which Perfetto and
//! `chrome://tracing` open.
//!
//! - one process per bare tgid, named `pid <tgid>` (`M` `process_name`);
//! - one thread per stream, named `stream <id> (device <d>)`; its tid is the stream's number,
//!   which is unique in its process (`M` `thread_name`);
//! - one complete event (`X`) per task that started, from its first start to its end, in µs
//!   since the earliest line of the directory; its name is the task's kind and its `args` say
//!   the rest (task number, notify, record ids, bytes, error, time queued, whether it never
//!   ended);
//! - one flow (`s` then `f` with `bp: "e"`, same `id`, name `release`) from each record to the
//!   wait it released, bound to the record's slice near its end and to the wait's slice near
//!   its end.

use serde_json::{Map, Value, json};

use crate::timeline::{Timeline, record_label};

/// The flow events' category and name.
pub const FLOW_CAT: &str = "notify";
/// The flow events' name.
pub const FLOW_NAME: &str = "release";

/// Renders `t` as Chrome trace event JSON.
pub fn render(t: &Timeline) -> Value {
    let us = |ns: u64| (ns - t.origin_ns) as f64 / 1000.0;
    let mut events = Vec::new();
    for (i, pid) in t.pids().into_iter().enumerate() {
        events.push(json!({
            "ph": "M", "name": "process_name", "pid": pid, "tid": 0,
            "args": {"name": format!("pid {pid}")},
        }));
        events.push(json!({
            "ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0,
            "args": {"sort_index": i},
        }));
    }
    let mut queued = 0usize;
    for (ti, track) in t.tracks.iter().enumerate() {
        events.push(json!({
            "ph": "M", "name": "thread_name", "pid": track.pid, "tid": track.stream,
            "args": {"name": format!("stream {} (device {})", track.stream, track.device)},
        }));
        events.push(json!({
            "ph": "M", "name": "thread_sort_index", "pid": track.pid, "tid": track.stream,
            "args": {"sort_index": track.stream},
        }));
        for r in t.refs(ti) {
            let task = t.task(r);
            let Some((start, end)) = t.span(r) else {
                queued += 1;
                continue;
            };
            let mut args = Map::new();
            args.insert("task".into(), task.task.into());
            args.insert("device".into(), track.device.into());
            if let Some((d, id)) = task.notify {
                args.insert("notify".into(), format!("{d}:{id}").into());
            }
            if let Some(id) = task.record {
                args.insert("record".into(), record_label(id).into());
            }
            if let Some(id) = task.released_by {
                args.insert("released_by".into(), record_label(id).into());
            }
            if let Some(b) = task.bytes {
                args.insert("bytes".into(), b.into());
            }
            if let Some(e) = task.error {
                args.insert("error".into(), e.into());
            }
            if let (Some(q), Some(s)) = (task.enqueue_ns, task.start_ns) {
                args.insert(
                    "queued_us".into(),
                    (s.saturating_sub(q) as f64 / 1000.0).into(),
                );
            }
            if task.is_open() {
                args.insert("unfinished".into(), true.into());
            }
            events.push(json!({
                "ph": "X", "cat": "stream", "name": task.kind,
                "pid": track.pid, "tid": track.stream,
                "ts": us(start), "dur": (end - start) as f64 / 1000.0,
                "args": args,
            }));
        }
    }
    for (k, rel) in t.releases.iter().enumerate() {
        let (Some(from), Some(to)) = (t.anchor(rel.record), t.anchor(rel.wait)) else {
            continue;
        };
        let (rt, wt) = (&t.tracks[rel.record.track], &t.tracks[rel.wait.track]);
        let id = k + 1;
        events.push(json!({
            "ph": "s", "cat": FLOW_CAT, "name": FLOW_NAME, "id": id,
            "pid": rt.pid, "tid": rt.stream, "ts": us(from),
        }));
        events.push(json!({
            "ph": "f", "bp": "e", "cat": FLOW_CAT, "name": FLOW_NAME, "id": id,
            "pid": wt.pid, "tid": wt.stream, "ts": us(to),
        }));
    }
    json!({
        "traceEvents": events,
        "displayTimeUnit": "ns",
        "otherData": {
            "generator": "ascend-notify-sim trace",
            "origin_ns": t.origin_ns,
            "processes": t.pids().len(),
            "streams": t.tracks.len(),
            "releases": t.releases.len(),
            "unmatched_releases": t.unmatched.len(),
            "never_started": queued,
            "skipped_lines": t.skipped.len(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Timeline {
        let rec = (10u64 << 32) | 1;
        let a = format!(
            "{{\"ev\":\"start\",\"ns\":5000,\"pid\":10,\"stream\":1,\"device\":0,\"task\":1,\"kind\":\"record\",\"notify\":[0,1]}}\n\
             {{\"ev\":\"end\",\"ns\":5400,\"pid\":10,\"stream\":1,\"device\":0,\"task\":1,\"kind\":\"record\",\"notify\":[0,1],\"record\":{rec}}}\n"
        );
        let b = format!(
            "{{\"ev\":\"enqueue\",\"ns\":1000,\"pid\":20,\"stream\":3,\"device\":1,\"task\":1,\"kind\":\"wait\",\"notify\":[0,1]}}\n\
             {{\"ev\":\"start\",\"ns\":2000,\"pid\":20,\"stream\":3,\"device\":1,\"task\":1,\"kind\":\"wait\",\"notify\":[0,1]}}\n\
             {{\"ev\":\"end\",\"ns\":6000,\"pid\":20,\"stream\":3,\"device\":1,\"task\":1,\"kind\":\"wait\",\"notify\":[0,1],\"released_by\":{rec}}}\n\
             {{\"ev\":\"enqueue\",\"ns\":6500,\"pid\":20,\"stream\":3,\"device\":1,\"task\":2,\"kind\":\"copy\"}}\n"
        );
        Timeline::from_sources([("a", a), ("b", b)])
    }

    fn of<'a>(v: &'a Value, ph: &str) -> Vec<&'a Value> {
        v["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["ph"] == ph)
            .collect()
    }

    #[test]
    fn metadata_names_processes_and_streams() {
        let v = render(&sample());
        let m = of(&v, "M");
        let names: Vec<(&str, &str)> = m
            .iter()
            .filter(|e| e["name"] == "process_name" || e["name"] == "thread_name")
            .map(|e| {
                (
                    e["name"].as_str().unwrap(),
                    e["args"]["name"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("process_name", "pid 10"),
                ("process_name", "pid 20"),
                ("thread_name", "stream 1 (device 0)"),
                ("thread_name", "stream 3 (device 1)"),
            ]
        );
    }

    #[test]
    fn complete_events_are_relative_microseconds() {
        let v = render(&sample());
        let x = of(&v, "X");
        assert_eq!(x.len(), 2, "the copy never started: {x:?}");
        let wait = x.iter().find(|e| e["name"] == "wait").unwrap();
        assert_eq!(wait["ts"], 1.0);
        assert_eq!(wait["dur"], 4.0);
        assert_eq!(
            (wait["pid"].as_i64(), wait["tid"].as_i64()),
            (Some(20), Some(3))
        );
        assert_eq!(wait["args"]["released_by"], "10#1");
        assert_eq!(wait["args"]["queued_us"], 1.0);
        assert_eq!(wait["args"]["notify"], "0:1");
        let rec = x.iter().find(|e| e["name"] == "record").unwrap();
        assert_eq!(rec["ts"], 4.0);
        assert_eq!(rec["args"]["record"], "10#1");
        assert_eq!(v["otherData"]["never_started"], 1);
    }

    #[test]
    fn a_flow_goes_from_the_record_to_the_wait() {
        let v = render(&sample());
        let (s, f) = (of(&v, "s"), of(&v, "f"));
        assert_eq!((s.len(), f.len()), (1, 1));
        assert_eq!(s[0]["id"], f[0]["id"]);
        assert_eq!(f[0]["bp"], "e");
        assert_eq!(
            (s[0]["pid"].as_i64(), s[0]["tid"].as_i64()),
            (Some(10), Some(1))
        );
        assert_eq!(
            (f[0]["pid"].as_i64(), f[0]["tid"].as_i64()),
            (Some(20), Some(3))
        );
        // Inside each slice, 1 ns before its end.
        assert_eq!(s[0]["ts"], 4.399);
        assert_eq!(f[0]["ts"], 4.999);
    }
}
