//! Stream executors (R2, R3): an in-order task queue per stream.
//!
//! A task runs in whichever thread gets to it first, so that the common cases need no thread
//! hand-off: a record (or a wait whose flag is already set) enqueued on an idle stream runs
//! inline in the caller; a thread that calls `synchronize` runs the queued tasks itself, since it
//! would block anyway. A lazily started worker thread runs what nobody else claims, which keeps
//! record/wait asynchronous for the caller (a wait never blocks the enqueueing thread).
//!
//! Waking that worker on every enqueue would cost a system call on the hot path, only for the
//! synchronizing thread to claim the task a microsecond later. So a task gets a short grace
//! period: while the stream is active the worker ticks every [`GRACE`] and claims tasks nobody
//! claimed within it; after [`LINGER`] without activity it sleeps until it is woken (one system
//! call, on the first enqueue after a quiet spell). A wait's timeout still counts from its
//! enqueue (R3), so the grace period never lengthens it.
//!
//! The worker measures all of this in its own ticks, by comparing counters between one look at
//! the state and the next, rather than with timestamps taken by the callers: reading the clock
//! costs about 30 ns in a virtual machine, and an enqueue and a run each took one, on the
//! critical path of every round trip. A task nobody claims is run after one to two [`GRACE`]s.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{Acquire, Release};
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

/// How long a queued task may wait for a synchronizing thread before the worker claims it.
pub(crate) const GRACE: Duration = Duration::from_millis(1);
/// How long the worker keeps ticking after the stream's last activity.
pub(crate) const LINGER: Duration = Duration::from_millis(20);
/// [`LINGER`] in worker looks at the state, which come [`GRACE`] apart while it ticks.
const LINGER_LOOKS: u32 = (LINGER.as_micros() / GRACE.as_micros()) as u32;
/// The longest tick while another thread runs the queue: a waiter blocked for a second must
/// cost next to no CPU (SEMANTICS §4), so the tick backs off to this.
pub(crate) const MAX_TICK: Duration = Duration::from_millis(50);

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
enum Worker {
    /// Not started (or exited).
    #[default]
    None,
    /// Running tasks, or about to look at the queue.
    Awake,
    /// Sleeping with a timeout of at most `GRACE`: it will look at the queue by itself.
    Ticking,
    /// Sleeping until notified.
    Asleep,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Task>,
    /// A thread (worker or synchronizer) is running tasks of this stream.
    busy: bool,
    submitted: u64,
    finished: u64,
    first_error: Option<Error>,
    worker: Worker,
    /// The worker must run the queue now (async synchronize, a synchronize that gave up).
    urgent: bool,
    shutdown: bool,
    /// Counts the runs started. The worker compares it between its looks: a queue that waited
    /// at two looks with no run in between was claimable, and unclaimed, for a whole tick (only
    /// a run takes tasks off the queue); a run still going after several looks is a long wait,
    /// which makes the worker tick ever more rarely.
    runs: u64,
    /// Threads blocked in `done.wait`: `notify_all` is a system call, skipped when zero.
    sync_waiters: u32,
    wakers: Vec<Waker>,
}

/// What the worker saw at its previous look at the state.
#[derive(Debug, Default)]
struct Seen {
    /// `State::runs`, if the queue's head was claimable then.
    claimable: Option<u64>,
    /// `State::submitted`, and how many looks in a row found it unchanged.
    submitted: u64,
    quiet: u32,
    /// `State::runs`, if a run was going then, and at how many looks in a row that run was.
    run: Option<u64>,
    busy_looks: u32,
}

pub(crate) struct StreamCore {
    pub device: i32,
    /// `queue.is_empty() && !busy`, published on every change under the lock, so that a record
    /// on an idle stream (the common case) runs without taking the lock at all.
    idle: AtomicBool,
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
            idle: AtomicBool::new(true),
            state: Mutex::default(),
            done: Condvar::new(),
            work: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// R2: enqueues a record; on an idle stream it runs inline (no thread, no system call).
    #[inline]
    pub(crate) fn record(self: &Arc<Self>, notify: &Arc<NotifyRef>) {
        // Nothing queued ahead of it: a record that races with another thread's enqueue is
        // ordered before it, as if it had been enqueued first; within one thread the Acquire
        // load sees every enqueue the thread made.
        if self.idle.load(Acquire) {
            wake::record(notify.slot());
            return;
        }
        self.record_queued(notify);
    }

    /// The rest of [`record`](Self::record), out of line: the stream had (or has) work queued.
    #[inline(never)]
    fn record_queued(self: &Arc<Self>, notify: &Arc<NotifyRef>) {
        let mut st = self.lock();
        st.submitted += 1;
        if st.queue.is_empty() && !st.busy {
            wake::record(notify.slot());
            st.finished += 1;
            return;
        }
        self.push(&mut st, Task::Record(notify.clone()));
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
        self.push(&mut st, Task::Wait(notify.clone(), deadline, timeout_secs));
    }

    fn push(self: &Arc<Self>, st: &mut State, task: Task) {
        st.queue.push_back(task);
        self.idle.store(false, Release);
        self.kick(st, false);
    }

    /// Makes sure somebody will run the queue even if nobody synchronizes: now if `urgent`,
    /// else within the grace period.
    fn kick(self: &Arc<Self>, st: &mut State, urgent: bool) {
        st.urgent |= urgent;
        match st.worker {
            Worker::None => {
                let core = Arc::clone(self);
                let spawned = std::thread::Builder::new()
                    .name(format!("ascend-sim-stream-d{}", self.device))
                    .spawn(move || core.worker());
                // Without a worker the queue still runs at the next synchronize.
                if spawned.is_ok() {
                    st.worker = Worker::Awake;
                }
            }
            Worker::Asleep => self.work.notify_one(),
            Worker::Ticking if urgent => self.work.notify_one(),
            Worker::Ticking | Worker::Awake => {}
        }
    }

    fn worker(self: Arc<Self>) {
        let mut seen = Seen::default();
        let mut st = self.lock();
        loop {
            st.worker = Worker::Awake;
            if !st.busy && !st.queue.is_empty() {
                // Claimable at the previous look already, a tick (at least GRACE) ago.
                if st.urgent || st.shutdown || seen.claimable == Some(st.runs) {
                    st.urgent = false;
                    seen.claimable = None;
                    st = self.run(st, None).0;
                    continue;
                }
                seen.claimable = Some(st.runs);
                st.worker = Worker::Ticking;
                st = self.tick(st, GRACE);
                continue;
            }
            seen.claimable = None;
            if st.shutdown && st.queue.is_empty() && !st.busy {
                st.worker = Worker::None;
                return;
            }
            if st.submitted == seen.submitted {
                seen.quiet = seen.quiet.saturating_add(1);
            } else {
                seen.submitted = st.submitted;
                seen.quiet = 0;
            }
            let active = seen.quiet < LINGER_LOOKS;
            if st.busy {
                // Back off while one long wait runs elsewhere (the same run at every look,
                // doubling the tick up to MAX_TICK); stay quick while runs are short.
                if seen.run == Some(st.runs) {
                    seen.busy_looks = seen.busy_looks.saturating_add(1);
                } else {
                    seen.run = Some(st.runs);
                    seen.busy_looks = 0;
                }
                let tick = GRACE
                    .saturating_mul(1 << seen.busy_looks.min(8))
                    .min(MAX_TICK);
                st.worker = Worker::Ticking;
                st = self.tick(st, tick);
            } else if active {
                st.worker = Worker::Ticking;
                st = self.tick(st, GRACE);
            } else {
                st.worker = Worker::Asleep;
                st = self.work.wait(st).unwrap_or_else(PoisonError::into_inner);
            }
        }
    }

    fn tick<'a>(&'a self, st: MutexGuard<'a, State>, timeout: Duration) -> MutexGuard<'a, State> {
        self.work
            .wait_timeout(st, timeout)
            .unwrap_or_else(PoisonError::into_inner)
            .0
    }

    /// Runs queued tasks in order. With `stop`, returns once `finished` reaches the target, and
    /// gives up on a wait at the synchronize deadline (returning `true`).
    fn run<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        stop: Option<(u64, Option<Instant>)>,
    ) -> (MutexGuard<'a, State>, bool) {
        st.busy = true;
        self.idle.store(false, Release);
        st.runs += 1;
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
                    if st.sync_waiters > 0 {
                        self.done.notify_all();
                    }
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
        self.idle.store(st.queue.is_empty(), Release);
        if !st.queue.is_empty() {
            // What is left is claimable again: by a synchronizer, else the worker after GRACE,
            // which may be in a long tick or asleep, so wake it.
            if st.sync_waiters > 0 {
                self.done.notify_all();
            }
            if matches!(st.worker, Worker::Ticking | Worker::Asleep) {
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
                    // R2: the remaining tasks keep running without us.
                    self.kick(&mut st, true);
                    return Err(sync_timeout());
                }
                continue;
            }
            let left = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Err(sync_timeout()),
                },
            };
            st.sync_waiters += 1;
            st = match left {
                None => self.done.wait(st).unwrap_or_else(PoisonError::into_inner),
                Some(left) => {
                    self.done
                        .wait_timeout(st, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
            st.sync_waiters -= 1;
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
            core.kick(&mut st, true);
        }
        Poll::Pending
    }
}
