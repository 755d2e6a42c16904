//! Events of one process (E1): what a record completes, what a stream or the host waits for.
//!
//! An event counts the records issued on it (`issued`, at the call) and the records that ran
//! (`completed`, when the stream reaches them). A wait issued after `n` records waits for
//! `completed >= n`: the work recorded *before* the wait call, whatever is recorded later.

use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use notify_api::{Result, err};

#[derive(Debug, Default)]
struct State {
    issued: u64,
    completed: u64,
    /// `issued` when the last reset ran: with nothing issued since, the event is
    /// never-recorded again.
    reset_at: u64,
    /// When the latest completed record ran.
    stamp: Option<Instant>,
}

/// An event's state, shared by its handle and the stream tasks that record or wait on it.
#[derive(Debug)]
pub(crate) struct EventCore {
    state: Mutex<State>,
    changed: Condvar,
    /// Destroyed: waits on it end.
    pub destroyed: AtomicBool,
}

impl EventCore {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::default(),
            changed: Condvar::new(),
            destroyed: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `aclrtRecordEvent` at the call: the sequence number its task completes.
    pub(crate) fn issue(&self) -> u64 {
        let mut st = self.lock();
        st.issued += 1;
        st.issued
    }

    /// The record task `seq` ran: completes it and stamps the time.
    pub(crate) fn complete(&self, seq: u64) {
        let mut st = self.lock();
        st.completed = st.completed.max(seq);
        st.stamp = Some(Instant::now());
        drop(st);
        self.changed.notify_all();
    }

    /// The reset task ran: the event is never-recorded again.
    pub(crate) fn reset(&self) {
        let mut st = self.lock();
        st.reset_at = st.issued;
        st.completed = st.issued;
        st.stamp = None;
        drop(st);
        self.changed.notify_all();
    }

    /// What a wait issued now waits for: `None` for an event never recorded (no wait).
    pub(crate) fn wait_target(&self) -> Option<u64> {
        let st = self.lock();
        (st.issued > st.reset_at).then_some(st.issued)
    }

    /// Waits until record `target` completed, `until` passed, or `abort` is set; `true` if it
    /// completed.
    pub(crate) fn wait(&self, target: u64, until: Option<Instant>, abort: &AtomicBool) -> bool {
        let mut st = self.lock();
        loop {
            if st.completed >= target {
                return true;
            }
            if abort.load(SeqCst) || self.destroyed.load(SeqCst) {
                return false;
            }
            // Bounded sleeps: an abort or a destroy is seen within one.
            let step = Duration::from_millis(50);
            let left = match until {
                None => step,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left.min(step),
                    _ => return false,
                },
            };
            st = self
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Whether record `target` has run (a wait for it would not block).
    pub(crate) fn reached(&self, target: u64) -> bool {
        self.lock().completed >= target
    }

    /// Wakes every waiter (an abort or a destroy).
    pub(crate) fn wake_all(&self) {
        self.changed.notify_all();
    }

    /// `aclrtQueryEventStatus`: whether every record issued so far has run (also `true` for an
    /// event never recorded, as CUDA answers: sim).
    pub(crate) fn complete_now(&self) -> bool {
        let st = self.lock();
        st.completed >= st.issued
    }

    /// `aclrtEventElapsedTime` (E1): milliseconds from `start` to `end`, both complete and
    /// recorded.
    pub(crate) fn elapsed(start: &Self, end: &Self) -> Result<f32> {
        let stamp = |e: &Self, which: &str| {
            let st = e.lock();
            match st.stamp {
                Some(t) if st.completed >= st.issued && st.issued > st.reset_at => Ok(t),
                _ => Err(err!(
                    E1: RT_PARAM_INVALID,
                    "the {which} event is not complete or was never recorded"
                )),
            }
        };
        let (a, b) = (stamp(start, "start")?, stamp(end, "end")?);
        let ms = if b >= a {
            b.duration_since(a).as_secs_f64() * 1e3
        } else {
            -(a.duration_since(b).as_secs_f64() * 1e3)
        };
        Ok(ms as f32)
    }
}
