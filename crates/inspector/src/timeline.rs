//! The merge of a directory of `ASCEND_NOTIFY_SIM_TRACE` files into one timeline (§4
//! "Diagnosis"): every process's streams side by side, and which record released which wait.
//!
//! Each process writes JSON lines of its own (`backend_sim::trace`): `{"ev": "enqueue" |
//! "start" | "end", "ns", "pid", "stream", "device", "task", "kind", …}`, where `task` numbers
//! the tasks of one stream and `ns` is `CLOCK_MONOTONIC`, shared by every process of the
//! machine. A task is the lines with the same `(pid, stream, task)`: it runs from its *first*
//! `start` (a synchronize that gave up and a later run both write one) to its `end`. A wait's end
//! names the record that released it (`released_by`), which a record's lines carry as `record`:
//! that pair, across processes, is a [`Release`].
//!
//! Everything here is pure: [`Timeline::from_sources`] takes texts, and only
//! [`Timeline::from_dir`] reads files. The renderers ([`crate::chrome`], [`crate::svg`]) take a
//! [`Timeline`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

use serde_json::Value;

/// One task of one stream, from the lines that name it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Task {
    /// Its number on its stream (the n-th enqueued, from 1).
    pub task: u64,
    /// `record`, `wait`, `copy`, `set`, `host_fn`, `event_record`, `event_wait`, …
    pub kind: String,
    /// When it was enqueued.
    pub enqueue_ns: Option<u64>,
    /// When it first started.
    pub start_ns: Option<u64>,
    /// When it ended.
    pub end_ns: Option<u64>,
    /// The notify it records or waits on: (device, id).
    pub notify: Option<(u32, u32)>,
    /// A record's id (`(bare tgid << 32) | n`).
    pub record: Option<u64>,
    /// On a wait: the id of the record that released it.
    pub released_by: Option<u64>,
    /// A copy's or set's bytes.
    pub bytes: Option<u64>,
    /// The error code it ended with (a wait's timeout).
    pub error: Option<i64>,
}

impl Task {
    /// Whether it started and never ended (its process was killed, or it still ran when the
    /// process flushed its trace for the last time).
    pub fn is_open(&self) -> bool {
        self.start_ns.is_some() && self.end_ns.is_none()
    }
}

/// One stream of one process, its tasks in the order they were enqueued.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Track {
    /// The process's bare tgid.
    pub pid: i32,
    /// The stream's number in its process.
    pub stream: u32,
    /// The stream's device.
    pub device: i32,
    /// Its tasks, by task number.
    pub tasks: Vec<Task>,
}

/// A task of the timeline: `tracks[track].tasks[task]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskRef {
    /// Index into [`Timeline::tracks`].
    pub track: usize,
    /// Index into that track's tasks.
    pub task: usize,
}

/// A record and the wait it released (possibly in another process).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Release {
    /// The record's id.
    pub id: u64,
    /// The record task.
    pub record: TaskRef,
    /// The wait task.
    pub wait: TaskRef,
}

/// A line that could not be read, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The file (or source name) and line number, from 1.
    pub source: String,
    /// Its line number.
    pub line: usize,
    /// What was wrong with it.
    pub reason: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.source, self.line, self.reason)
    }
}

/// Every traced stream of every process, with the releases between them.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// One per (pid, stream), ordered by pid then stream.
    pub tracks: Vec<Track>,
    /// Every wait whose releasing record is in the timeline, ordered by the wait's end.
    pub releases: Vec<Release>,
    /// Waits that name a releasing record that no trace holds (it ran in a process that did
    /// not trace, or its line was lost when its process was killed).
    pub unmatched: Vec<TaskRef>,
    /// The earliest timestamp of any line: time 0 of the renderings.
    pub origin_ns: u64,
    /// The latest timestamp of any line.
    pub last_ns: u64,
    /// Each process's latest timestamp: where its open tasks are drawn to.
    pub process_last_ns: BTreeMap<i32, u64>,
    /// Lines that were not trace events (a truncated last line of a killed process, …).
    pub skipped: Vec<Skipped>,
    /// How many trace files (sources) were read.
    pub sources: usize,
}

/// Why a directory could not be merged.
#[derive(Debug)]
pub enum DirError {
    /// The directory could not be listed.
    Read(std::path::PathBuf, std::io::Error),
    /// It holds no `trace-*.jsonl` file.
    Empty(std::path::PathBuf),
}

impl fmt::Display for DirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read(dir, e) => write!(f, "cannot read {}: {e}", dir.display()),
            Self::Empty(dir) => write!(
                f,
                "{} holds no trace-*.jsonl file (was ASCEND_NOTIFY_SIM_TRACE set to it?)",
                dir.display()
            ),
        }
    }
}

impl std::error::Error for DirError {}

/// One parsed line.
#[derive(Debug)]
struct Line {
    ev: Phase,
    ns: u64,
    pid: i32,
    stream: u32,
    device: i32,
    task: u64,
    kind: String,
    notify: Option<(u32, u32)>,
    record: Option<u64>,
    released_by: Option<u64>,
    bytes: Option<u64>,
    error: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Enqueue,
    Start,
    End,
}

fn parse_line(text: &str) -> Result<Line, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let obj = v.as_object().ok_or("not a JSON object")?;
    let u64_of = |k: &str| -> Result<u64, String> {
        obj.get(k)
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("no unsigned integer {k:?}"))
    };
    let opt_u64 = |k: &str| -> Result<Option<u64>, String> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => x
                .as_u64()
                .map(Some)
                .ok_or_else(|| format!("{k:?} is not an unsigned integer")),
        }
    };
    let i32_of = |k: &str| -> Result<i32, String> {
        obj.get(k)
            .and_then(Value::as_i64)
            .and_then(|x| i32::try_from(x).ok())
            .ok_or_else(|| format!("no 32-bit integer {k:?}"))
    };
    let ev = match obj.get("ev").and_then(Value::as_str) {
        Some("enqueue") => Phase::Enqueue,
        Some("start") => Phase::Start,
        Some("end") => Phase::End,
        Some(other) => return Err(format!("unknown ev {other:?}")),
        None => return Err("no \"ev\"".into()),
    };
    let notify = match obj.get("notify") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) if a.len() == 2 => {
            let part = |x: &Value| x.as_u64().and_then(|x| u32::try_from(x).ok());
            match (part(&a[0]), part(&a[1])) {
                (Some(d), Some(i)) => Some((d, i)),
                _ => return Err("\"notify\" is not [device, id]".into()),
            }
        }
        Some(_) => return Err("\"notify\" is not [device, id]".into()),
    };
    let error = match obj.get("error") {
        None | Some(Value::Null) => None,
        Some(x) => Some(x.as_i64().ok_or("\"error\" is not an integer")?),
    };
    Ok(Line {
        ev,
        ns: u64_of("ns")?,
        pid: i32_of("pid")?,
        stream: u32::try_from(u64_of("stream")?).map_err(|_| "\"stream\" is too large")?,
        device: i32_of("device")?,
        task: u64_of("task")?,
        kind: obj
            .get("kind")
            .and_then(Value::as_str)
            .ok_or("no string \"kind\"")?
            .to_owned(),
        notify,
        record: opt_u64("record")?,
        released_by: opt_u64("released_by")?.filter(|&r| r != 0),
        bytes: opt_u64("bytes")?,
        error,
    })
}

impl Timeline {
    /// Merges every `trace-*.jsonl` file of `dir` (the files of `ASCEND_NOTIFY_SIM_TRACE`).
    ///
    /// # Errors
    /// The directory cannot be listed, or holds no trace file. A file that cannot be read is
    /// recorded in [`Timeline::skipped`], as a malformed line is.
    pub fn from_dir(dir: &Path) -> Result<Self, DirError> {
        let entries = std::fs::read_dir(dir).map_err(|e| DirError::Read(dir.to_owned(), e))?;
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("trace-") && n.ends_with(".jsonl"))
            })
            .collect();
        if paths.is_empty() {
            return Err(DirError::Empty(dir.to_owned()));
        }
        paths.sort();
        let mut unreadable = Vec::new();
        let sources: Vec<(String, String)> = paths
            .iter()
            .filter_map(|p| {
                let name = p.display().to_string();
                // A killed process may have left half a line, even half a UTF-8 character.
                match std::fs::read(p) {
                    Ok(bytes) => Some((name, String::from_utf8_lossy(&bytes).into_owned())),
                    Err(e) => {
                        unreadable.push(Skipped {
                            source: name,
                            line: 0,
                            reason: format!("cannot read: {e}"),
                        });
                        None
                    }
                }
            })
            .collect();
        let mut t = Self::from_sources(sources);
        t.skipped.splice(0..0, unreadable);
        Ok(t)
    }

    /// Merges trace texts, each `(name, text)`: the name only labels skipped lines.
    pub fn from_sources<I, N, T>(sources: I) -> Self
    where
        I: IntoIterator<Item = (N, T)>,
        N: Into<String>,
        T: AsRef<str>,
    {
        let mut t = Self::default();
        // (pid, stream) → (device, task number → task)
        let mut tracks: BTreeMap<(i32, u32), (i32, BTreeMap<u64, Task>)> = BTreeMap::new();
        let mut origin = u64::MAX;
        for (name, text) in sources {
            t.sources += 1;
            let name = name.into();
            for (i, raw) in text.as_ref().lines().enumerate() {
                if raw.trim().is_empty() {
                    continue;
                }
                let line = match parse_line(raw) {
                    Ok(line) => line,
                    Err(reason) => {
                        t.skipped.push(Skipped {
                            source: name.clone(),
                            line: i + 1,
                            reason,
                        });
                        continue;
                    }
                };
                origin = origin.min(line.ns);
                t.last_ns = t.last_ns.max(line.ns);
                let last = t.process_last_ns.entry(line.pid).or_default();
                *last = (*last).max(line.ns);
                let (_, tasks) = tracks
                    .entry((line.pid, line.stream))
                    .or_insert_with(|| (line.device, BTreeMap::new()));
                let task = tasks.entry(line.task).or_insert_with(|| Task {
                    task: line.task,
                    kind: line.kind.clone(),
                    ..Task::default()
                });
                let first =
                    |slot: &mut Option<u64>| *slot = Some(slot.map_or(line.ns, |s| s.min(line.ns)));
                match line.ev {
                    Phase::Enqueue => first(&mut task.enqueue_ns),
                    Phase::Start => first(&mut task.start_ns),
                    Phase::End => {
                        task.end_ns = Some(task.end_ns.map_or(line.ns, |e| e.max(line.ns)))
                    }
                }
                task.notify = task.notify.or(line.notify);
                task.record = line.record.or(task.record);
                task.released_by = line.released_by.or(task.released_by);
                task.bytes = task.bytes.or(line.bytes);
                task.error = line.error.or(task.error);
            }
        }
        t.origin_ns = if origin == u64::MAX { 0 } else { origin };
        t.tracks = tracks
            .into_iter()
            .map(|((pid, stream), (device, tasks))| Track {
                pid,
                stream,
                device,
                tasks: tasks.into_values().collect(),
            })
            .collect();
        t.link();
        t
    }

    /// Pairs each ended wait that names its releasing record with that record.
    fn link(&mut self) {
        let mut records: HashMap<u64, TaskRef> = HashMap::new();
        for (ti, track) in self.tracks.iter().enumerate() {
            for (ki, task) in track.tasks.iter().enumerate() {
                if let (Some(id), Some(_)) = (task.record, task.end_ns) {
                    records.entry(id).or_insert(TaskRef {
                        track: ti,
                        task: ki,
                    });
                }
            }
        }
        for (ti, track) in self.tracks.iter().enumerate() {
            for (ki, task) in track.tasks.iter().enumerate() {
                let (Some(id), Some(_)) = (task.released_by, task.end_ns) else {
                    continue;
                };
                let wait = TaskRef {
                    track: ti,
                    task: ki,
                };
                match records.get(&id) {
                    Some(&record) => self.releases.push(Release { id, record, wait }),
                    None => self.unmatched.push(wait),
                }
            }
        }
        let end = |r: &TaskRef| self.tracks[r.track].tasks[r.task].end_ns;
        let mut releases = std::mem::take(&mut self.releases);
        releases.sort_by_key(|r| (end(&r.wait), r.wait));
        self.releases = releases;
    }

    /// The task a reference names.
    pub fn task(&self, r: TaskRef) -> &Task {
        &self.tracks[r.track].tasks[r.task]
    }

    /// The distinct processes, in track order.
    pub fn pids(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = self.tracks.iter().map(|t| t.pid).collect();
        pids.dedup();
        pids
    }

    /// Where a task is drawn, in ns since the epoch of `CLOCK_MONOTONIC`: from its first start
    /// (else its enqueue) to its end, or, open, to its process's last timestamp. A task that
    /// took no measurable time is given 1 ns, unless that would reach the next task of its
    /// stream, so that viewers can bind arrows to it. `None` for a task that never started
    /// and never ended (still queued).
    pub fn span(&self, r: TaskRef) -> Option<(u64, u64)> {
        let track = &self.tracks[r.track];
        let task = &track.tasks[r.task];
        let start = task.start_ns.or(task.end_ns.and(task.enqueue_ns))?;
        let end = task.end_ns.unwrap_or_else(|| {
            self.process_last_ns
                .get(&track.pid)
                .copied()
                .unwrap_or(start)
        });
        let end = end.max(start);
        if end > start {
            return Some((start, end));
        }
        let next = track.tasks[r.task + 1..]
            .iter()
            .find_map(|t| t.start_ns.or(t.end_ns));
        Some((
            start,
            if next.is_some_and(|n| n <= start) {
                end
            } else {
                start + 1
            },
        ))
    }

    /// A time inside a task's span, as close to its end as the span allows: where an arrow is
    /// bound to it.
    pub fn anchor(&self, r: TaskRef) -> Option<u64> {
        self.span(r).map(|(s, e)| e - (e - s).min(1))
    }

    /// Every task reference of a track, in order.
    pub fn refs(&self, track: usize) -> impl Iterator<Item = TaskRef> + '_ {
        (0..self.tracks[track].tasks.len()).map(move |task| TaskRef { track, task })
    }
}

/// Formats a record id as `<tgid>#<n>`: short, and exact in viewers whose numbers are doubles.
pub fn record_label(id: u64) -> String {
    format!("{}#{}", id >> 32, id & 0xffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(
        ev: &str,
        ns: u64,
        pid: i32,
        stream: u32,
        task: u64,
        kind: &str,
        extra: &str,
    ) -> String {
        format!(
            "{{\"ev\":\"{ev}\",\"ns\":{ns},\"pid\":{pid},\"stream\":{stream},\"device\":0,\
             \"task\":{task},\"kind\":\"{kind}\"{extra}}}"
        )
    }

    /// Process 10 records notify 0:1 on stream 1; process 20 waits on it on stream 2.
    fn two_processes() -> Vec<(String, String)> {
        let rec = (10u64 << 32) | 1;
        let a = [
            line("enqueue", 1_000, 10, 1, 1, "record", ",\"notify\":[0,1]"),
            line("start", 5_000, 10, 1, 1, "record", ",\"notify\":[0,1]"),
            line(
                "end",
                5_400,
                10,
                1,
                1,
                "record",
                &format!(",\"notify\":[0,1],\"record\":{rec}"),
            ),
        ]
        .join("\n");
        let b = [
            line("enqueue", 2_000, 20, 2, 1, "wait", ",\"notify\":[0,1]"),
            line("start", 2_100, 20, 2, 1, "wait", ",\"notify\":[0,1]"),
            line(
                "end",
                6_000,
                20,
                2,
                1,
                "wait",
                &format!(",\"notify\":[0,1],\"released_by\":{rec}"),
            ),
            line("enqueue", 6_100, 20, 2, 2, "copy", ",\"bytes\":64"),
            line("start", 6_200, 20, 2, 2, "copy", ",\"bytes\":64"),
        ]
        .join("\n");
        vec![("a".into(), a), ("b".into(), b)]
    }

    #[test]
    fn merges_tasks_tracks_and_releases() {
        let t = Timeline::from_sources(two_processes());
        assert_eq!(t.sources, 2);
        assert!(t.skipped.is_empty(), "{:?}", t.skipped);
        assert_eq!(t.origin_ns, 1_000);
        assert_eq!(t.last_ns, 6_200);
        assert_eq!(t.tracks.len(), 2);
        assert_eq!((t.tracks[0].pid, t.tracks[0].stream), (10, 1));
        assert_eq!((t.tracks[1].pid, t.tracks[1].stream), (20, 2));
        let rec = &t.tracks[0].tasks[0];
        assert_eq!(rec.kind, "record");
        assert_eq!(
            (rec.enqueue_ns, rec.start_ns, rec.end_ns),
            (Some(1_000), Some(5_000), Some(5_400))
        );
        assert_eq!(rec.notify, Some((0, 1)));
        assert_eq!(t.releases.len(), 1);
        let r = t.releases[0];
        assert_eq!(r.record, TaskRef { track: 0, task: 0 });
        assert_eq!(r.wait, TaskRef { track: 1, task: 0 });
        assert!(t.unmatched.is_empty());
        assert_eq!(record_label(r.id), "10#1");
        // The copy never ended: open, drawn to its process's last line.
        let copy = TaskRef { track: 1, task: 1 };
        assert!(t.task(copy).is_open());
        assert_eq!(t.task(copy).bytes, Some(64));
        assert_eq!(t.span(copy), Some((6_200, 6_201)));
        assert_eq!(t.span(TaskRef { track: 1, task: 0 }), Some((2_100, 6_000)));
        assert_eq!(t.anchor(TaskRef { track: 1, task: 0 }), Some(5_999));
    }

    #[test]
    fn the_first_start_counts_and_bad_lines_are_skipped() {
        let text = [
            line("enqueue", 100, 7, 1, 1, "wait", ""),
            line("start", 200, 7, 1, 1, "wait", ""),
            "not json".to_owned(),
            line("start", 900, 7, 1, 1, "wait", ""),
            line("end", 1_000, 7, 1, 1, "wait", ",\"error\":507011"),
            "{\"ev\":\"end\",\"ns\":5".to_owned(),
        ]
        .join("\n");
        let t = Timeline::from_sources([("f", text)]);
        assert_eq!(t.skipped.len(), 2);
        assert_eq!(t.skipped[0].line, 3);
        assert_eq!(t.skipped[1].line, 6);
        assert!(t.skipped[0].to_string().starts_with("f:3: not JSON"));
        let w = &t.tracks[0].tasks[0];
        assert_eq!(
            (w.start_ns, w.end_ns, w.error),
            (Some(200), Some(1_000), Some(507_011))
        );
        assert!(t.releases.is_empty() && t.unmatched.is_empty());
    }

    #[test]
    fn a_release_whose_record_is_not_traced_is_unmatched() {
        let text = [
            line("start", 1, 7, 1, 1, "wait", ""),
            line("end", 2, 7, 1, 1, "wait", ",\"released_by\":99"),
        ]
        .join("\n");
        let t = Timeline::from_sources([("f", text)]);
        assert!(t.releases.is_empty());
        assert_eq!(t.unmatched, vec![TaskRef { track: 0, task: 0 }]);
    }

    #[test]
    fn zero_length_tasks_get_a_nanosecond_unless_it_would_overlap() {
        let text = [
            line("start", 10, 7, 1, 1, "record", ""),
            line("end", 10, 7, 1, 1, "record", ""),
            line("start", 10, 7, 1, 2, "record", ""),
            line("end", 10, 7, 1, 2, "record", ""),
            line("start", 11, 7, 1, 3, "record", ""),
            line("end", 11, 7, 1, 3, "record", ""),
            line("enqueue", 12, 7, 1, 4, "wait", ""),
        ]
        .join("\n");
        let t = Timeline::from_sources([("f", text)]);
        let span = |task| t.span(TaskRef { track: 0, task });
        assert_eq!(span(0), Some((10, 10)), "the next task starts at once");
        assert_eq!(span(1), Some((10, 11)), "it may touch the next one");
        assert_eq!(span(2), Some((11, 12)));
        assert_eq!(span(3), None, "still queued");
    }

    #[test]
    fn an_empty_directory_is_an_error() {
        let dir = std::env::temp_dir().join(format!("insp-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = Timeline::from_dir(&dir).unwrap_err();
        assert!(matches!(e, DirError::Empty(_)), "{e}");
        std::fs::remove_dir(&dir).unwrap();
        assert!(matches!(
            Timeline::from_dir(&dir).unwrap_err(),
            DirError::Read(..)
        ));
    }
}
