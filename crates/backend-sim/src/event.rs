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
    /// Threads blocked in [`EventCore::wait`]: a record or reset with none makes no system
    /// call (std's `Condvar::notify_all` always makes one).
    waiters: u32,
}

/// An event's state, shared by its handle and the stream tasks that record or wait on it.
#[derive(Debug)]
pub(crate) struct EventCore {
    state: Mutex<State>,
    changed: Condvar,
    /// Destroyed: waits on it end.
    pub destroyed: AtomicBool,
    /// How many times [`EventCore::notify`] woke waiters.
    #[cfg(test)]
    notified: std::sync::atomic::AtomicU32,
}

impl EventCore {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::default(),
            changed: Condvar::new(),
            destroyed: AtomicBool::new(false),
            #[cfg(test)]
            notified: std::sync::atomic::AtomicU32::new(0),
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
        self.notify(st);
    }

    /// Wakes the waiters, if any, once `st` is released.
    fn notify(&self, st: MutexGuard<'_, State>) {
        let waiters = st.waiters;
        drop(st);
        if waiters > 0 {
            #[cfg(test)]
            self.notified.fetch_add(1, SeqCst);
            self.changed.notify_all();
        }
    }

    /// The reset task ran: the event is never-recorded again.
    pub(crate) fn reset(&self) {
        let mut st = self.lock();
        st.reset_at = st.issued;
        st.completed = st.issued;
        st.stamp = None;
        self.notify(st);
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
            // Counted under the lock: a record that completes `target` sees the count.
            st.waiters += 1;
            st = self
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            st.waiters -= 1;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// E1: a record nobody waits for wakes nobody (no system call); one that a thread waits
    /// for wakes it, and the wait ends completed.
    #[test]
    fn a_record_notifies_only_when_a_thread_waits() {
        let core = Arc::new(EventCore::new());
        let first = core.issue();
        core.complete(first);
        assert!(core.reached(first));
        assert_eq!(core.notified.load(SeqCst), 0, "nobody waited");

        let target = core.issue();
        let waiter = {
            let core = Arc::clone(&core);
            std::thread::spawn(move || core.wait(target, None, &AtomicBool::new(false)))
        };
        while core.lock().waiters == 0 {
            std::thread::yield_now();
        }
        core.complete(target);
        assert!(
            waiter.join().expect("the waiter"),
            "the wait saw its record"
        );
        assert_eq!(core.notified.load(SeqCst), 1, "the waiter was woken");
        assert_eq!(core.lock().waiters, 0, "the waiter counted itself out");

        core.reset();
        assert_eq!(core.notified.load(SeqCst), 1, "a reset with nobody waiting");
    }
}
