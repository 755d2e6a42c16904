//! `ASCEND_NOTIFY_SIM_TRACE=DIR` (§4 "Diagnosis"): every stream task of this process, with
//! timestamps, to a file of its own in `DIR`.
//!
//! One JSON object per line: `{"ev":"enqueue"|"start"|"end", "ns":…, "pid":…, "stream":…,
//! "device":…, "task":…, "kind":…, …}`, where `task` is the task's number on its stream (the
//! n-th enqueued) and `ns` is `CLOCK_MONOTONIC`, which every process of the machine shares. A
//! record carries its `record` id (`(bare tgid << 32) | n`) and stamps it into the notify's
//! slot; the wait it releases reads it back as `released_by`, which is how the merged timeline
//! draws an arrow from one to the other across processes.
//!
//! Writes are buffered and flushed at detach and at a clean exit, so a killed process loses at
//! most its last unflushed buffer, and never anyone else's file. With tracing off, the only
//! cost on the record path is one relaxed load of a static.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Mutex, PoisonError};

use crate::fork::PerProcess;

/// `ASCEND_NOTIFY_SIM_TRACE`: the directory trace files go to.
pub const ENV_TRACE: &str = "ASCEND_NOTIFY_SIM_TRACE";

static ON: AtomicBool = AtomicBool::new(false);
static RECORDS: AtomicU64 = AtomicU64::new(0);
static TRACER: PerProcess<Mutex<Option<Tracer>>> = PerProcess::new(|| Mutex::new(None));

struct Tracer {
    out: BufWriter<File>,
    tgid: i32,
}

/// Whether this process traces.
#[inline(always)]
pub(crate) fn on() -> bool {
    ON.load(Relaxed)
}

/// Starts tracing to `ASCEND_NOTIFY_SIM_TRACE` if it names a directory (once per process; a
/// failure to open the file is reported on stderr and tracing stays off).
pub(crate) fn start(tgid: i32) {
    let Some(dir) = std::env::var_os(ENV_TRACE).filter(|d| !d.is_empty()) else {
        return;
    };
    let mut slot = TRACER.get().lock().unwrap_or_else(PoisonError::into_inner);
    if slot.is_some() {
        return;
    }
    let path = std::path::Path::new(&dir).join(format!(
        "trace-{tgid}-{}-{:08x}.jsonl",
        std::process::id(),
        crate::random_u64().unwrap_or(0) as u32
    ));
    let file = std::fs::create_dir_all(&dir).and_then(|()| File::create(&path));
    match file {
        Ok(file) => {
            *slot = Some(Tracer {
                out: BufWriter::with_capacity(64 << 10, file),
                tgid,
            });
            ON.store(true, Relaxed);
        }
        Err(e) => eprintln!(
            "ascend-notify: {ENV_TRACE}: cannot write {}: {e}",
            path.display()
        ),
    }
}

/// Writes the buffered events out (detach, exit).
pub(crate) fn flush() {
    if !on() {
        return;
    }
    if let Some(t) = TRACER
        .get()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_mut()
    {
        let _ = t.out.flush();
    }
}

fn now_ns() -> u64 {
    crate::clock::monotonic_ns()
}

/// A new record id of this process (`(tgid << 32) | n`).
pub(crate) fn record_id() -> u64 {
    let n = RECORDS.fetch_add(1, Relaxed) + 1;
    let tgid = TRACER
        .get()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .map_or(0, |t| t.tgid);
    (u64::from(tgid as u32) << 32) | (n & 0xffff_ffff)
}

/// What a trace line says about a task, beyond its phase.
#[derive(Clone, Debug, Default)]
pub(crate) struct Detail {
    /// The notify it records or waits on: (device, id).
    pub notify: Option<(u32, u32)>,
    /// A record's id.
    pub record: Option<u64>,
    /// The record that released a wait.
    pub released_by: Option<u64>,
    /// A copy's or set's bytes.
    pub bytes: Option<usize>,
    /// A failure (a timeout).
    pub error: Option<i32>,
}

/// Writes one event.
pub(crate) fn event(ev: &str, stream: u32, device: i32, task: u64, kind: &str, d: &Detail) {
    let ns = now_ns();
    let mut slot = TRACER.get().lock().unwrap_or_else(PoisonError::into_inner);
    let Some(t) = slot.as_mut() else { return };
    let mut line = format!(
        "{{\"ev\":\"{ev}\",\"ns\":{ns},\"pid\":{},\"stream\":{stream},\"device\":{device},\
         \"task\":{task},\"kind\":\"{kind}\"",
        t.tgid
    );
    if let Some((dev, id)) = d.notify {
        line.push_str(&format!(",\"notify\":[{dev},{id}]"));
    }
    if let Some(r) = d.record {
        line.push_str(&format!(",\"record\":{r}"));
    }
    if let Some(r) = d.released_by.filter(|&r| r != 0) {
        line.push_str(&format!(",\"released_by\":{r}"));
    }
    if let Some(b) = d.bytes {
        line.push_str(&format!(",\"bytes\":{b}"));
    }
    if let Some(c) = d.error {
        line.push_str(&format!(",\"error\":{c}"));
    }
    line.push_str("}\n");
    let _ = t.out.write_all(line.as_bytes());
}
