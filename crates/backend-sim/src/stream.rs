//! Stream executors (R2, R3): an in-order task queue per stream.
//!
//! A task runs in whichever thread gets to it first, so that the common cases need no thread
//! hand-off: a record (or a wait whose flag is already set) enqueued on an idle stream runs
//! inline in the caller; a thread that calls `synchronize` runs the queued tasks itself, since it
//! would block anyway. Only when nobody is synchronizing does a lazily started worker thread run
//! them, which is what keeps record/wait asynchronous for the caller (a wait never blocks the
//! enqueueing thread).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use notify_api::{Error, Result, err};

use crate::NotifyRef;
use crate::wake;

pub(crate) enum Task {
    Record(Arc<NotifyRef>),
    /// A wait and its deadline (from the enqueue time; `None` waits forever).
    Wait(Arc<NotifyRef>, Option<Instant>, u32),
}

#[derive(Default)]
struct State {
    queue: VecDeque<Task>,
    /// A thread (worker or synchronizer) is running tasks of this stream.
    busy: bool,
    submitted: u64,
    finished: u64,
    first_error: Option<Error>,
    worker_alive: bool,
    shutdown: bool,
    wakers: Vec<Waker>,
}

pub(crate) struct StreamCore {
    pub device: i32,
    state: Mutex<State>,
    /// Signalled when a task finishes.
    done: Condvar,
    /// Signalled when the worker has something to do.
    work: Condvar,
}

impl std::fmt::Debug for StreamCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamCore")
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

enum Outcome {
    Done(Result<()>),
    /// A synchronize with a timeout gave up on a wait: the task goes back to the queue front.
    Interrupted,
}

impl StreamCore {
    pub(crate) fn new(device: i32) -> Arc<Self> {
        Arc::new(Self {
            device,
            state: Mutex::default(),
            done: Condvar::new(),
            work: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// R2: enqueues a record; on an idle stream it runs inline (no thread, no system call).
    pub(crate) fn record(self: &Arc<Self>, notify: &Arc<NotifyRef>) {
        let mut st = self.lock();
        st.submitted += 1;
        if st.queue.is_empty() && !st.busy {
            wake::record(notify.slot());
            st.finished += 1;
            return;
        }
        st.queue.push_back(Task::Record(notify.clone()));
        self.kick(&mut st);
    }

    /// R2/R3: enqueues a wait; it completes inline only if the flag is already set.
    pub(crate) fn wait(self: &Arc<Self>, notify: &Arc<NotifyRef>, timeout_secs: u32) {
        let deadline = (timeout_secs > 0)
            .then(|| Instant::now() + Duration::from_secs(u64::from(timeout_secs)));
        let mut st = self.lock();
        st.submitted += 1;
        if st.queue.is_empty() && !st.busy && wake::try_consume(notify.slot()) {
            st.finished += 1;
            return;
        }
        st.queue
            .push_back(Task::Wait(notify.clone(), deadline, timeout_secs));
        self.kick(&mut st);
    }

    /// Makes sure somebody will run the queue even if nobody synchronizes.
    fn kick(self: &Arc<Self>, st: &mut State) {
        if st.worker_alive {
            self.work.notify_one();
            return;
        }
        let core = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name(format!("ascend-sim-stream-d{}", self.device))
            .spawn(move || core.worker());
        // Without a worker the queue still runs at the next synchronize.
        st.worker_alive = spawned.is_ok();
    }

    fn worker(self: Arc<Self>) {
        let mut st = self.lock();
        loop {
            if !st.busy && !st.queue.is_empty() {
                st = self.run(st, None).0;
                continue;
            }
            if st.shutdown && st.queue.is_empty() && !st.busy {
                st.worker_alive = false;
                return;
            }
            st = self.work.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Runs queued tasks in order. With `stop`, returns once `finished` reaches the target, and
    /// gives up on a wait at the synchronize deadline (returning `true`).
    fn run<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        stop: Option<(u64, Option<Instant>)>,
    ) -> (MutexGuard<'a, State>, bool) {
        st.busy = true;
        let mut interrupted = false;
        loop {
            if stop.is_some_and(|(target, _)| st.finished >= target) {
                break;
            }
            let Some(task) = st.queue.pop_front() else {
                break;
            };
            drop(st);
            let outcome = match &task {
                Task::Record(n) => {
                    wake::record(n.slot());
                    Outcome::Done(Ok(()))
                }
                Task::Wait(n, deadline, secs) => {
                    let sync_deadline = stop.and_then(|(_, d)| d);
                    let until = match (*deadline, sync_deadline) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    if wake::wait(n.slot(), until) {
                        Outcome::Done(Ok(()))
                    } else if deadline.is_some_and(|d| Instant::now() >= d) {
                        Outcome::Done(Err(err!(
                            RT_WAIT_TIMEOUT,
                            "R3: the wait on notify {} timed out after {secs} s",
                            n.slot_ref().index
                        )))
                    } else {
                        Outcome::Interrupted
                    }
                }
            };
            match outcome {
                Outcome::Done(result) => {
                    // Dropping a task's reference may free the slot (R8): not under our lock.
                    drop(task);
                    st = self.lock();
                    st.finished += 1;
                    if let Err(e) = result
                        && st.first_error.is_none()
                    {
                        st.first_error = Some(e);
                    }
                    for w in st.wakers.drain(..) {
                        w.wake();
                    }
                    self.done.notify_all();
                }
                Outcome::Interrupted => {
                    st = self.lock();
                    st.queue.push_front(task);
                    interrupted = true;
                    break;
                }
            }
        }
        st.busy = false;
        if !st.queue.is_empty() {
            self.done.notify_all();
            if st.worker_alive {
                self.work.notify_one();
            }
        }
        (st, interrupted)
    }

    /// R2: waits for every task enqueued before this call and reports the first failure.
    pub(crate) fn synchronize(self: &Arc<Self>, deadline: Option<Instant>) -> Result<()> {
        let mut st = self.lock();
        let target = st.submitted;
        loop {
            if st.finished >= target {
                return st.first_error.take().map_or(Ok(()), Err);
            }
            if !st.busy && !st.queue.is_empty() {
                let (guard, interrupted) = self.run(st, Some((target, deadline)));
                st = guard;
                if interrupted {
                    if !st.worker_alive {
                        self.kick(&mut st);
                    }
                    return Err(sync_timeout());
                }
                continue;
            }
            st = match deadline {
                None => self.done.wait(st).unwrap_or_else(PoisonError::into_inner),
                Some(d) => {
                    let Some(left) = d
                        .checked_duration_since(Instant::now())
                        .filter(|l| !l.is_zero())
                    else {
                        return Err(sync_timeout());
                    };
                    self.done
                        .wait_timeout(st, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }

    /// R2: the async form of `synchronize`.
    pub(crate) fn synchronize_async(self: &Arc<Self>) -> SyncFuture {
        SyncFuture {
            core: Arc::clone(self),
            target: None,
        }
    }

    /// The owner is gone: the worker finishes what is queued, then exits.
    pub(crate) fn shutdown(&self) {
        let mut st = self.lock();
        st.shutdown = true;
        self.work.notify_all();
    }
}

fn sync_timeout() -> Error {
    err!(
        RT_STREAM_SYNC_TIMEOUT,
        "R2: stream synchronize gave up; its tasks stay queued and keep running"
    )
}

/// The future of [`StreamCore::synchronize_async`]: completes when the worker has run every task
/// enqueued before the first poll.
#[derive(Debug)]
pub(crate) struct SyncFuture {
    core: Arc<StreamCore>,
    target: Option<u64>,
}

impl Future for SyncFuture {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let core = Arc::clone(&self.core);
        let mut st = core.lock();
        let target = *self.target.get_or_insert(st.submitted);
        if st.finished >= target {
            return Poll::Ready(st.first_error.take().map_or(Ok(()), Err));
        }
        st.wakers.push(cx.waker().clone());
        if !st.busy && !st.queue.is_empty() {
            core.kick(&mut st);
        }
        Poll::Pending
    }
}
