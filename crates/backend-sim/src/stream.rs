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
//! A worker that has just run urgent tasks spins for [`SPIN`] before it ticks, on one padded
//! line: an urgent task (a host function, a copy, an event task) enqueued in that window reaches
//! it without a system call. A host function enqueued on the idle stream is handed over in that
//! line itself (the signal and the function, kept in place, see [`HostFn`]), so that the worker
//! starts it without taking the stream's lock and with one cache line moved between the two
//! threads; the other urgent tasks are queued, and the signal makes the worker look. A worker
//! that ran only records and waits (the notify ping-pong, where the synchronizing thread runs
//! every task) never spins.
//!
//! The worker measures all of this in its own ticks, by comparing counters between one look at
//! the state and the next, rather than with timestamps taken by the callers: reading the clock
//! costs about 30 ns in a virtual machine, and an enqueue and a run each took one, on the
//! critical path of every round trip. A task nobody claims is run after one to two [`GRACE`]s.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use crossbeam_utils::CachePadded;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use notify_api::{Error, Result, err};

use crate::event::EventCore;
use crate::fork;
use crate::memory::{self, Place};
use crate::registry::NotifyRef;
use crate::trace::{self, Detail};
use crate::wake;

mod host_fn;

/// A host function (H1), already wrapped to run with its stream's context current.
pub(crate) use host_fn::HostFn;

pub(crate) enum Task {
    /// Does nothing (tests).
    #[cfg(test)]
    Nop,
    Record(Arc<NotifyRef>),
    /// A wait, with its deadline (from the enqueue time; `None` waits forever).
    Wait(WaitTask),
    /// M2: a copy of `len` bytes; `then` (which may own the host memory) runs after it.
    Copy {
        dst: Place,
        src: Place,
        len: usize,
        then: Option<HostFn>,
    },
    /// M2: a set of `len` bytes to `value`.
    Set {
        dst: Place,
        value: u8,
        len: usize,
    },
    /// H1: taken when it runs.
    HostFn(Option<HostFn>),
    /// E1: completes record `seq` of the event.
    EventRecord(Arc<EventCore>, u64),
    /// E1: waits for record `target` of the event.
    EventWait(Arc<EventCore>, u64),
    /// E1: returns the event to never-recorded.
    EventReset(Arc<EventCore>),
}

/// A queued notify wait (R3), and its entry on this process's wait board (§4 "Diagnosis"),
/// which it frees when it is done or dropped.
pub(crate) struct WaitTask {
    notify: Arc<NotifyRef>,
    deadline: Option<Instant>,
    secs: u32,
    board: Option<u32>,
}

impl Drop for WaitTask {
    fn drop(&mut self) {
        if let Some(i) = self.board.take() {
            self.notify.registry().board_done(i);
        }
    }
}

impl Task {
    /// Tasks other than notify records and waits run as soon as they are queued (the worker is
    /// woken at once): nothing else would make a program that never synchronizes see them run.
    fn urgent(&self) -> bool {
        !matches!(self, Task::Record(_) | Task::Wait(..))
    }

    /// An event task that completes at once, whoever runs it: on an idle stream the enqueuing
    /// call runs it.
    fn runs_at_once(&self) -> bool {
        match self {
            Task::EventRecord(..) | Task::EventReset(_) => true,
            Task::EventWait(e, target) => e.reached(*target),
            _ => false,
        }
    }

    /// The task's kind, as traces name it.
    fn kind(&self) -> &'static str {
        match self {
            #[cfg(test)]
            Task::Nop => "nop",
            Task::Record(_) => "record",
            Task::Wait(_) => "wait",
            Task::Copy { .. } => "copy",
            Task::Set { .. } => "set",
            Task::HostFn(_) => "host_fn",
            Task::EventRecord(..) => "event_record",
            Task::EventWait(..) => "event_wait",
            Task::EventReset(_) => "event_reset",
        }
    }

    /// What a trace says about it before it runs.
    fn detail(&self) -> Detail {
        let notify = |n: &NotifyRef| {
            let r = n.slot_ref();
            Some((r.device, r.index))
        };
        match self {
            Task::Record(n) => Detail {
                notify: notify(n),
                ..Detail::default()
            },
            Task::Wait(w) => Detail {
                notify: notify(&w.notify),
                ..Detail::default()
            },
            Task::Copy { len, .. } | Task::Set { len, .. } => Detail {
                bytes: Some(*len),
                ..Detail::default()
            },
            _ => Detail::default(),
        }
    }
}

/// Numbers the streams of this process, for the wait board and traces.
static NEXT_STREAM: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

thread_local! {
    /// The stream whose host function this thread is running (H1), as an address.
    static IN_HOST_FN: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// The trace id of the last record this thread ran (traced runs only).
    static STAMPED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How long a queued task may wait for a synchronizing thread before the worker claims it.
pub(crate) const GRACE: Duration = Duration::from_millis(1);
/// How long a worker that just ran urgent tasks spins, looking for the next one, before it ticks.
/// Bounded, so that a stream fed one host function per millisecond costs at most 5% of a CPU,
/// and an idle stream nothing.
pub(crate) const SPIN: Duration = Duration::from_micros(50);
/// How long the worker keeps ticking after the stream's last activity.
pub(crate) const LINGER: Duration = Duration::from_millis(20);
/// [`LINGER`] in worker looks at the state, which come [`GRACE`] apart while it ticks.
const LINGER_LOOKS: u32 = (LINGER.as_micros() / GRACE.as_micros()) as u32;
/// The longest tick while another thread runs the queue: a waiter blocked for a second must
/// cost next to no CPU (SEMANTICS §4), so the tick backs off to this.
pub(crate) const MAX_TICK: Duration = Duration::from_millis(50);

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
enum Worker {
    /// Not started (or exited).
    #[default]
    None,
    /// Running tasks, or about to look at the queue.
    Awake,
    /// Spinning, without the lock, on [`Handoff::signal`].
    Spinning,
    /// Sleeping with a timeout of at most `GRACE`: it will look at the queue by itself.
    Ticking,
    /// Sleeping until notified.
    Asleep,
}

/// In C order, with what an enqueue touches first: together with the lock word, in the one
/// cache line that the enqueuing thread and the worker pass back and forth.
#[derive(Default)]
#[repr(C)]
struct State {
    worker: Worker,
    /// A thread (worker or synchronizer) is running tasks of this stream.
    busy: bool,
    /// The worker must run the queue now (async synchronize, a synchronize that gave up).
    urgent: bool,
    shutdown: bool,
    /// Threads blocked in `done.wait`: `notify_all` is a system call, skipped when zero.
    sync_waiters: u32,
    submitted: u64,
    /// Counts the runs started. The worker compares it between its looks: a queue that waited
    /// at two looks with no run in between was claimable, and unclaimed, for a whole tick (only
    /// a run takes tasks off the queue); a run still going after several looks is a long wait,
    /// which makes the worker tick ever more rarely.
    runs: u64,
    queue: VecDeque<Task>,
    finished: u64,
    first_error: Option<Error>,

    /// The wakers of pending async synchronizes, one per future (by its id).
    wakers: Vec<(u64, Waker)>,
    next_future: u64,
}

impl State {
    fn shutdown_forced(&self) -> bool {
        self.shutdown && self.queue.is_empty() && !self.busy
    }

    /// Counts a task run by a worker or a synchronizer as finished: its failure is the
    /// stream's first unless one came before (R2), and pending async synchronizes look again.
    #[inline]
    fn count_finished(&mut self, result: Result<()>) {
        self.finished += 1;
        if let Err(e) = result
            && self.first_error.is_none()
        {
            self.first_error = Some(e);
        }
        for (_, w) in self.wakers.drain(..) {
            w.wake();
        }
    }
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
    /// This stream's number in its process.
    pub id: u32,
    /// The flag word a running wait sleeps on, `0` when none does: a forced destroy wakes it
    /// (S1). Set only around the sleep, so the spinning fast path never touches it.
    sleeping_on: std::sync::atomic::AtomicUsize,
    /// The fork generation it was made in (R17): a child never touches its locks.
    generation: u64,
    /// `queue.is_empty() && !busy`, published on every change under the lock, so that a record
    /// on an idle stream (the common case) runs without taking the lock at all.
    idle: AtomicBool,
    state: CachePadded<Mutex<State>>,
    /// S1: destroyed by force: a running wait gives up, queued tasks are dropped.
    abort: AtomicBool,
    /// Signalled when a task finishes.
    done: Condvar,
    /// Signalled when the worker has something to do.
    work: Condvar,
    /// What the spinning worker watches (see the module docs).
    handoff: CachePadded<Handoff>,
}

/// [`Handoff::signal`]: look at the state (a shutdown, an enqueue behind a running task).
const KICK: u8 = 1;
/// [`Handoff::signal`]: a task is in [`Handoff::task`].
const TASK: u8 = 2;

/// The one line the spinning worker reads: the signal, and beside it the task handed over
/// (already counted as submitted, with the stream `busy` on its behalf, so that nobody else runs
/// the queue until it has finished). One line, and no lock in it, because every line the two
/// threads pass between them is a cache miss on the path from the enqueue to the task's start.
#[derive(Default)]
#[repr(C)]
struct Handoff {
    /// `KICK | TASK` bits. Written only with the stream's lock held (so a load and a store make
    /// an update); cleared by the worker when it starts to spin.
    signal: std::sync::atomic::AtomicU8,
    /// Written by an enqueuer that found the worker [`Worker::Spinning`] (under the lock, and it
    /// sets the worker `Awake`, so no second one writes), before it sets `TASK`; taken by the
    /// worker once it has seen `TASK`, before it can spin (and be handed a task) again. Only
    /// host functions are handed over: the one task whose start latency is the point (H1), and
    /// small enough (kept in place, see [`HostFn`]) to share the line with the signal.
    task: std::cell::UnsafeCell<Option<HostFn>>,
}

// SAFETY: `task` has one accessor at a time, handed from the enqueuer to the worker by the
// `TASK` bit (Release/Acquire) and back by the stream's lock (see its docs); it holds a
// `HostFn`, which is `Send`.
unsafe impl Sync for Handoff {}

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
            id: NEXT_STREAM.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            sleeping_on: std::sync::atomic::AtomicUsize::new(0),
            generation: fork::generation(),
            idle: AtomicBool::new(true),
            state: CachePadded::new(Mutex::default()),
            abort: AtomicBool::new(false),
            done: Condvar::new(),
            work: Condvar::new(),
            handoff: CachePadded::new(Handoff::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether this stream was made in this process (not inherited through a fork, R17).
    pub(crate) fn is_own(&self) -> bool {
        self.generation == fork::generation()
    }

    /// R2: enqueues a record; on an idle stream it runs inline (no thread, no system call).
    #[inline]
    pub(crate) fn record(self: &Arc<Self>, notify: &Arc<NotifyRef>) -> Result<()> {
        // Nothing queued ahead of it: a record that races with another thread's enqueue is
        // ordered before it, as if it had been enqueued first; within one thread the Acquire
        // load sees every enqueue the thread made.
        if self.idle.load(Acquire) {
            if trace::on() {
                return self.record_traced(notify);
            }
            wake::record(notify.slot());
            return Ok(());
        }
        self.record_queued(notify)
    }

    /// A record on an idle stream, traced: enqueued, run and ended at once.
    #[cold]
    #[inline(never)]
    fn record_traced(self: &Arc<Self>, notify: &Arc<NotifyRef>) -> Result<()> {
        let mut st = self.lock();
        if !st.queue.is_empty() || st.busy {
            drop(st);
            return self.record_queued(notify);
        }
        st.submitted += 1;
        let n = st.submitted;
        self.run_inline(n, &Task::Record(Arc::clone(notify)));
        st.finished += 1;
        Ok(())
    }

    /// Traces a task that runs in the call that enqueued it (an idle stream), and runs it: a
    /// record, or a wait whose flag is already set (it consumed it already).
    #[cold]
    fn run_inline(&self, n: u64, task: &Task) {
        let mut d = task.detail();
        trace::event("enqueue", self.id, self.device, n, task.kind(), &d);
        trace::event("start", self.id, self.device, n, task.kind(), &d);
        match task {
            Task::Record(notify) => {
                let id = trace::record_id();
                notify
                    .slot()
                    .last_record
                    .store(id, std::sync::atomic::Ordering::Relaxed);
                wake::record(notify.slot());
                d.record = Some(id);
            }
            Task::Wait(w) => d.released_by = released_by(&w.notify),
            _ => {}
        }
        trace::event("end", self.id, self.device, n, task.kind(), &d);
    }

    /// The rest of [`record`](Self::record), out of line: the stream had (or has) work queued.
    #[inline(never)]
    fn record_queued(self: &Arc<Self>, notify: &Arc<NotifyRef>) -> Result<()> {
        let mut st = self.lock();
        if st.queue.is_empty() && !st.busy {
            st.submitted += 1;
            if trace::on() {
                let n = st.submitted;
                self.run_inline(n, &Task::Record(Arc::clone(notify)));
            } else {
                wake::record(notify.slot());
            }
            st.finished += 1;
            return Ok(());
        }
        self.push(&mut st, Task::Record(notify.clone()))
    }

    /// R2/R3: enqueues a wait; it completes inline only if the flag is already set.
    pub(crate) fn wait(self: &Arc<Self>, notify: &Arc<NotifyRef>, timeout_secs: u32) -> Result<()> {
        let deadline = (timeout_secs > 0)
            .then(|| Instant::now() + Duration::from_secs(u64::from(timeout_secs)));
        let mut st = self.lock();
        if st.queue.is_empty() && !st.busy && wake::try_consume(notify.slot()) {
            st.submitted += 1;
            if trace::on() {
                let task = Task::Wait(WaitTask {
                    notify: notify.clone(),
                    deadline,
                    secs: timeout_secs,
                    board: None,
                });
                self.run_inline(st.submitted, &task);
            }
            st.finished += 1;
            return Ok(());
        }
        let board =
            notify
                .registry()
                .board_queue(self.id, self.device, notify.slot_ref(), timeout_secs);
        self.push(
            &mut st,
            Task::Wait(WaitTask {
                notify: notify.clone(),
                deadline,
                secs: timeout_secs,
                board,
            }),
        )
    }

    /// Enqueues a copy, set, host function or event task (M2, H1, E1). On an idle stream, an
    /// event task that cannot block (a record, a reset, a wait for a record that already ran)
    /// runs in the call, as a notify record does: nothing is ahead of it, so running it now is
    /// running it in order.
    pub(crate) fn enqueue(self: &Arc<Self>, task: Task) -> Result<()> {
        let mut st = self.lock();
        if st.queue.is_empty() && !st.busy && task.runs_at_once() {
            if self.abort.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(err!(S1: RT_INVALID_HANDLE, "the stream was destroyed"));
            }
            st.submitted += 1;
            if trace::on() {
                self.run_inline(st.submitted, &task);
            }
            let mut task = task;
            let outcome = self.execute(&mut task, None);
            debug_assert!(matches!(outcome, Outcome::Done(Ok(()))));
            st.finished += 1;
            return Ok(());
        }
        self.push(&mut st, task)
    }

    /// S1: whether nothing is queued or running.
    pub(crate) fn is_complete(&self) -> bool {
        let st = self.lock();
        st.queue.is_empty() && !st.busy
    }

    /// Waits until every task enqueued so far has run, without taking its errors (M6: a free
    /// first waits for the copies that may use the memory). From a host function of this very
    /// stream it returns at once: the tasks behind it cannot run before it returns.
    pub(crate) fn drain(self: &Arc<Self>) {
        if IN_HOST_FN.with(|c| c.get()) == Arc::as_ptr(self).addr() {
            return;
        }
        let mut st = self.lock();
        let target = st.submitted;
        while st.finished < target && !st.shutdown_forced() {
            if !st.busy && !st.queue.is_empty() {
                st = self.run(st, Some((target, None))).0;
                continue;
            }
            st.sync_waiters += 1;
            st = self.done.wait(st).unwrap_or_else(PoisonError::into_inner);
            st.sync_waiters -= 1;
        }
    }

    /// S1 `aclrtDestroyStreamForce`: a task running now finishes (a wait gives up), queued tasks
    /// are dropped, each releasing what it held (R8).
    pub(crate) fn force_shutdown(&self) {
        self.abort.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut st = self.lock();
        st.shutdown = true;
        let dropped: Vec<Task> = st.queue.drain(..).collect();
        st.finished += dropped.len() as u64;
        wake::wake_address(self.sleeping_on.load(std::sync::atomic::Ordering::SeqCst));
        self.idle.store(!st.busy, Release);
        self.signal(&st, KICK);
        self.work.notify_all();
        self.done.notify_all();
        for (_, w) in st.wakers.drain(..) {
            w.wake();
        }
        drop(st);
        drop(dropped);
        // A wake that lands between the waiter's last look at `abort` and its futex call is
        // lost; the waiter clears `sleeping_on` once it has seen the abort, so wake it until
        // then (a few tries at most; its own sleep is capped at a second regardless).
        for _ in 0..1000 {
            let addr = self.sleeping_on.load(std::sync::atomic::Ordering::SeqCst);
            if addr == 0 {
                break;
            }
            wake::wake_address(addr);
            std::thread::sleep(Duration::from_micros(100));
        }
    }

    /// Queues `task`. Fails only when the stream has no worker and none can be started: then
    /// nothing would run the task unless the caller synchronizes, so it is not queued at all.
    fn push(self: &Arc<Self>, st: &mut State, task: Task) -> Result<()> {
        if self.abort.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(err!(S1: RT_INVALID_HANDLE, "the stream was destroyed"));
        }
        let urgent = task.urgent();
        if trace::on() {
            let d = task.detail();
            trace::event(
                "enqueue",
                self.id,
                self.device,
                st.submitted + 1,
                task.kind(),
                &d,
            );
        }
        let task = match task {
            Task::HostFn(Some(f))
                if st.worker == Worker::Spinning && st.queue.is_empty() && !st.busy =>
            {
                st.submitted += 1;
                st.busy = true;
                st.runs += 1;
                st.worker = Worker::Awake;
                // SAFETY: the worker is spinning, so it has taken the previous task and reads
                // this one only once `TASK` is set, below; we hold the lock and set it `Awake`,
                // so no other enqueuer writes here (the `Handoff` protocol).
                unsafe { *self.handoff.task.get() = Some(f) };
                self.signal(st, TASK);
                // After the signal: only the worker's start waits for it.
                self.idle.store(false, Release);
                return Ok(());
            }
            task => task,
        };
        st.queue.push_back(task);
        st.submitted += 1;
        self.idle.store(false, Release);
        if let Err(e) = self.kick(st, urgent) {
            st.queue.pop_back();
            st.submitted -= 1;
            self.idle.store(st.queue.is_empty() && !st.busy, Release);
            return Err(e);
        }
        Ok(())
    }

    /// Makes sure somebody will run the queue even if nobody synchronizes: now if `urgent`,
    /// else within the grace period.
    fn kick(self: &Arc<Self>, st: &mut State, urgent: bool) -> Result<()> {
        st.urgent |= urgent;
        match st.worker {
            Worker::None => {
                let core = Arc::clone(self);
                spawn_worker(format!("ascend-sim-stream-d{}", self.device), move || {
                    core.worker()
                })?;
                st.worker = Worker::Awake;
            }
            Worker::Asleep => self.work.notify_one(),
            Worker::Ticking if urgent => self.work.notify_one(),
            Worker::Spinning if urgent => self.signal(st, KICK),
            Worker::Ticking | Worker::Awake | Worker::Spinning => {}
        }
        Ok(())
    }

    fn worker(self: Arc<Self>) {
        let mut seen = Seen::default();
        let mut ran = false;
        let mut st = self.lock();
        loop {
            st.worker = Worker::Awake;
            if !st.busy && !st.queue.is_empty() {
                // Claimable at the previous look already, a tick (at least GRACE) ago.
                if st.urgent || st.shutdown || seen.claimable == Some(st.runs) {
                    // Only urgent tasks are handed over or signalled, so only they are worth a
                    // spin: a worker that claimed a late wait and then spun would take the CPU
                    // from the thread that synchronizes the next one (the ping-pong, one
                    // process per CPU), and claim that one too.
                    ran = std::mem::take(&mut st.urgent);
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
            if std::mem::take(&mut ran) && st.queue.is_empty() && !st.busy {
                // An urgent enqueue now hands its task over, or signals `KICK`.
                st.worker = Worker::Spinning;
                self.handoff.signal.store(0, Relaxed);
                drop(st);
                self.spin();
                st = if self.handoff.signal.load(Acquire) & TASK != 0 {
                    ran = true;
                    self.run_handoff()
                } else {
                    let st = self.lock();
                    // Handed over after the spin ended, while we took the lock.
                    if self.handoff.signal.load(Acquire) & TASK != 0 {
                        drop(st);
                        ran = true;
                        self.run_handoff()
                    } else {
                        st
                    }
                };
                continue;
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

    /// Sets `bit` in the hand-off signal; `_st` shows the lock is held (see [`Handoff`]).
    fn signal(&self, _st: &State, bit: u8) {
        let signal = &self.handoff.signal;
        signal.store(signal.load(Relaxed) | bit, Release);
    }

    /// Spins for at most [`SPIN`] until a task is handed over or a `KICK` comes.
    fn spin(&self) {
        let start = Instant::now();
        let mut i = 0u32;
        while self.handoff.signal.load(Acquire) == 0 {
            i = i.wrapping_add(1);
            // The clock is read once in a while: a read costs about 30 ns in a virtual machine.
            if i.is_multiple_of(128) && start.elapsed() >= SPIN {
                return;
            }
            std::hint::spin_loop();
        }
    }

    fn tick<'a>(&'a self, st: MutexGuard<'a, State>, timeout: Duration) -> MutexGuard<'a, State> {
        self.work
            .wait_timeout(st, timeout)
            .unwrap_or_else(PoisonError::into_inner)
            .0
    }

    /// Runs the task handed to the spinning worker (the stream is `busy` for it), then takes the
    /// lock to count it finished, as [`StreamCore::run`] does.
    fn run_handoff(&self) -> MutexGuard<'_, State> {
        // SAFETY: called once the worker saw `TASK`, which the enqueuer set after writing the
        // task; nobody writes it again before this worker spins again (the `Handoff` protocol).
        let f = unsafe { (*self.handoff.task.get()).take() };
        let Some(f) = f else {
            return self.lock();
        };
        let mut task = Task::HostFn(Some(f));
        // It was submitted last, behind nothing: its number is `submitted` at the hand-off,
        // which is `finished + 1` since nothing else runs meanwhile.
        let traced = trace::on();
        if traced {
            let n = self.lock().finished + 1;
            trace::event(
                "start",
                self.id,
                self.device,
                n,
                task.kind(),
                &task.detail(),
            );
        }
        let outcome = self.execute(&mut task, None);
        let result = match outcome {
            Outcome::Done(result) => result,
            // Only waits are interrupted, and waits are never handed over.
            Outcome::Interrupted => Ok(()),
        };
        let mut st = {
            let (kind, mut d) = (task.kind(), task.detail());
            if let Err(e) = &result {
                d.error = Some(e.code().raw());
            }
            // Dropping a task's references may free what it held (R8): not under our lock.
            drop(task);
            let st = self.lock();
            if traced {
                trace::event("end", self.id, self.device, st.finished + 1, kind, &d);
            }
            st
        };
        st.count_finished(result);
        st.busy = false;
        self.idle.store(st.queue.is_empty(), Release);
        if st.sync_waiters > 0 {
            self.done.notify_all();
        }
        st
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
            // Tasks run in the order they were enqueued: this is the `finished + 1`-th.
            let n = st.finished + 1;
            drop(st);
            let mut task = task;
            let traced = trace::on();
            if traced {
                trace::event(
                    "start",
                    self.id,
                    self.device,
                    n,
                    task.kind(),
                    &task.detail(),
                );
            }
            let outcome = self.execute(&mut task, stop.and_then(|(_, d)| d));
            if traced {
                let mut d = task.detail();
                match (&task, &outcome) {
                    // The id this thread stamped, not the slot's: another process may have
                    // recorded since.
                    (Task::Record(_), _) => d.record = Some(STAMPED.with(|c| c.get())),
                    (Task::Wait(w), Outcome::Done(Ok(()))) => {
                        d.released_by = released_by(&w.notify);
                    }
                    (_, Outcome::Done(Err(e))) => d.error = Some(e.code().raw()),
                    _ => {}
                }
                if !matches!(outcome, Outcome::Interrupted) {
                    trace::event("end", self.id, self.device, n, task.kind(), &d);
                }
            }
            match outcome {
                Outcome::Done(result) => {
                    // Dropping a task's reference may free the slot (R8): not under our lock.
                    drop(task);
                    st = self.lock();
                    st.count_finished(result);
                    if st.sync_waiters > 0 {
                        self.done.notify_all();
                    }
                }
                Outcome::Interrupted => {
                    st = self.lock();
                    if !self.abort.load(std::sync::atomic::Ordering::SeqCst) {
                        st.queue.push_front(task);
                    } else {
                        st.finished += 1;
                    }
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

    /// Runs one task (without the lock). `sync_deadline` is a giving-up synchronize's.
    fn execute(&self, task: &mut Task, sync_deadline: Option<Instant>) -> Outcome {
        match task {
            #[cfg(test)]
            Task::Nop => Outcome::Done(Ok(())),
            Task::Record(n) => {
                if trace::on() {
                    let id = trace::record_id();
                    n.slot()
                        .last_record
                        .store(id, std::sync::atomic::Ordering::Relaxed);
                    STAMPED.with(|c| c.set(id));
                }
                wake::record(n.slot());
                Outcome::Done(Ok(()))
            }
            Task::Wait(w) => {
                let (n, deadline, secs) = (&w.notify, &w.deadline, &w.secs);
                let until = match (*deadline, sync_deadline) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                if let Some(i) = w.board {
                    n.registry().board_running(i);
                }
                let consumed = wake::wait(n.slot(), until, &self.abort, &self.sleeping_on);
                if consumed {
                    Outcome::Done(Ok(()))
                } else if deadline.is_some_and(|d| Instant::now() >= d) {
                    Outcome::Done(Err(err!(
                        R3: RT_WAIT_TIMEOUT,
                        "the wait on notify {} timed out after {secs} s",
                        n.slot_ref().index
                    )))
                } else {
                    Outcome::Interrupted
                }
            }
            Task::Copy {
                dst,
                src,
                len,
                then,
            } => {
                // SAFETY: a copy task is only made by `raw`, whose callers promise its host
                // places valid until the stream has run it (or hand them to `then`).
                unsafe { memory::copy(dst, src, *len) };
                if let Some(then) = then.take() {
                    then.call();
                }
                Outcome::Done(Ok(()))
            }
            Task::Set { dst, value, len } => {
                memory::set(dst, *value, *len);
                Outcome::Done(Ok(()))
            }
            Task::HostFn(f) => {
                let Some(f) = f.take() else {
                    return Outcome::Done(Ok(()));
                };
                let me = std::ptr::from_ref(self).addr();
                let previous = IN_HOST_FN.with(|c| c.replace(me));
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f.call()));
                IN_HOST_FN.with(|c| c.set(previous));
                Outcome::Done(ran.map_err(
                    |_| err!(H1: RT_INTERNAL_ERROR, "a host function of this stream panicked"),
                ))
            }
            Task::EventRecord(e, seq) => {
                e.complete(*seq);
                Outcome::Done(Ok(()))
            }
            Task::EventWait(e, target) => {
                let reached = e.wait(*target, sync_deadline, &self.abort);
                if reached || e.destroyed.load(std::sync::atomic::Ordering::SeqCst) {
                    Outcome::Done(Ok(()))
                } else {
                    Outcome::Interrupted
                }
            }
            Task::EventReset(e) => {
                e.reset();
                Outcome::Done(Ok(()))
            }
        }
    }

    /// H1: whether the calling thread runs a host function of this stream (which must not
    /// synchronize it).
    pub(crate) fn in_own_host_fn(&self) -> bool {
        IN_HOST_FN.with(|c| c.get()) == std::ptr::from_ref(self).addr()
    }

    /// R2: waits for every task enqueued before this call and reports the first failure.
    pub(crate) fn synchronize(self: &Arc<Self>, deadline: Option<Instant>) -> Result<()> {
        if self.in_own_host_fn() {
            return Err(err!(
                H1: RT_PARAM_INVALID,
                "a host function must not synchronize its own stream (it would wait for itself)"
            ));
        }
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
                    // R2: the remaining tasks keep running without us (if no worker can be
                    // started, the next synchronize runs them).
                    let _ = self.kick(&mut st, true);
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
        let id = {
            let mut st = self.lock();
            st.next_future += 1;
            st.next_future
        };
        SyncFuture {
            core: Arc::clone(self),
            target: None,
            id,
        }
    }

    /// The owner is gone: the worker finishes what is queued, then exits.
    pub(crate) fn shutdown(&self) {
        let mut st = self.lock();
        st.shutdown = true;
        self.signal(&st, KICK);
        self.work.notify_all();
    }
}

fn sync_timeout() -> Error {
    err!(R2: RT_STREAM_SYNC_TIMEOUT, "stream synchronize gave up; its tasks stay queued and keep running"
    )
}

/// The future of [`StreamCore::synchronize_async`]: completes when the tasks enqueued before
/// its first poll have run. It keeps one waker in the stream, replaced only when the executor
/// hands it a different one.
#[derive(Debug)]
pub(crate) struct SyncFuture {
    core: Arc<StreamCore>,
    target: Option<u64>,
    id: u64,
}

impl Future for SyncFuture {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let core = Arc::clone(&self.core);
        let mut st = core.lock();
        let target = *self.target.get_or_insert(st.submitted);
        if st.finished >= target {
            st.wakers.retain(|(id, _)| *id != self.id);
            return Poll::Ready(st.first_error.take().map_or(Ok(()), Err));
        }
        match st.wakers.iter_mut().find(|(id, _)| *id == self.id) {
            Some((_, w)) if w.will_wake(cx.waker()) => {}
            Some((_, w)) => *w = cx.waker().clone(),
            None => st.wakers.push((self.id, cx.waker().clone())),
        }
        if !st.busy && !st.queue.is_empty() && core.kick(&mut st, true).is_err() {
            // No worker can run the queue for us: run it here, as a blocking synchronize does.
            drop(st);
            return Poll::Ready(core.synchronize(None));
        }
        Poll::Pending
    }
}

impl Drop for SyncFuture {
    fn drop(&mut self) {
        if self.core.is_own() {
            let id = self.id;
            self.core.lock().wakers.retain(|(i, _)| *i != id);
        }
    }
}

/// Starts a stream worker thread.
fn spawn_worker(name: String, body: impl FnOnce() + Send + 'static) -> Result<()> {
    #[cfg(test)]
    if tests::FAIL_SPAWN.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(err!(
            R2: RT_INTERNAL_ERROR,
            "could not start the stream's worker thread ({name}): injected failure"
        ));
    }
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(body)
        .map(drop)
        .map_err(|e| {
            err!(
                R2: RT_INTERNAL_ERROR,
                "could not start the stream's worker thread ({name}): {e}; nothing would run \
                 this task unless the stream is synchronized, so it was not enqueued"
            )
        })
}

/// The trace id of the record that released a wait on `notify`, taken from the slot so that
/// the next wait released by an untraced record finds none (no arrow rather than a wrong one).
fn released_by(notify: &NotifyRef) -> Option<u64> {
    Some(
        notify
            .slot()
            .last_record
            .swap(0, std::sync::atomic::Ordering::Relaxed),
    )
    .filter(|&id| id != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::atomic::Ordering::SeqCst;

    /// Makes the next worker spawns fail (tests only).
    pub(super) static FAIL_SPAWN: AtomicBool = AtomicBool::new(false);

    struct CountingWaker(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn blocked_stream() -> Arc<StreamCore> {
        let core = StreamCore::new(0);
        // A busy stream: a run is going on, so a queued task stays queued.
        let mut st = core.lock();
        st.busy = true;
        st.queue.push_back(Task::Nop);
        st.submitted += 1;
        drop(st);
        core
    }

    /// Re-polling a pending future must not pile up wakers in the stream.
    #[test]
    fn a_pending_future_keeps_one_waker() {
        let core = blocked_stream();
        let waker = std::task::Waker::from(Arc::new(CountingWaker(Default::default())));
        let mut cx = Context::from_waker(&waker);
        let mut fut = Box::pin(core.synchronize_async());
        for _ in 0..100 {
            assert!(fut.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(core.lock().wakers.len(), 1, "one waker per future");
        let other = std::task::Waker::from(Arc::new(CountingWaker(Default::default())));
        let mut cx2 = Context::from_waker(&other);
        assert!(fut.as_mut().poll(&mut cx2).is_pending());
        assert_eq!(
            core.lock().wakers.len(),
            1,
            "a new waker replaces the old one"
        );
        drop(fut);
        assert!(
            core.lock().wakers.is_empty(),
            "a dropped future takes its waker along"
        );
        let mut st = core.lock();
        st.queue.clear();
        st.busy = false;
    }

    /// A worker that cannot be started fails the enqueue instead of leaving a task nobody runs.
    #[test]
    fn a_failed_worker_spawn_is_reported() {
        let core = blocked_stream();
        FAIL_SPAWN.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut st = core.lock();
        let before = (st.queue.len(), st.submitted);
        let r = core.push(&mut st, Task::Nop);
        FAIL_SPAWN.store(false, std::sync::atomic::Ordering::SeqCst);
        let e = r.expect_err("the spawn failure must reach the caller");
        assert_eq!(e.code(), notify_api::AclError::RT_INTERNAL_ERROR);
        assert!(e.reason().contains("worker thread"), "{e}");
        assert_eq!(
            (st.queue.len(), st.submitted),
            before,
            "nothing was enqueued"
        );
        st.queue.clear();
        st.busy = false;
    }

    /// The hand-off (H1 host functions to a spinning worker, under the `Handoff` protocol) and
    /// the queue, mixed: two threads enqueue host functions with pauses that land in every
    /// worker state (spinning, ticking, asleep), a third synchronizes at random, and some
    /// functions enqueue another from inside. Every function runs exactly once, and each
    /// thread's in the order it enqueued them (R2).
    #[test]
    fn host_functions_run_once_in_order_through_hand_off_and_queue() {
        use std::sync::atomic::AtomicU64;
        const PER_THREAD: u64 = 20_000;
        let core = StreamCore::new(0);
        let last = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let runs = Arc::new(AtomicU64::new(0));
        let nested = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let syncer = {
            let (core, stop) = (Arc::clone(&core), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(SeqCst) {
                    core.synchronize(None).expect("synchronize");
                    std::thread::sleep(Duration::from_micros(300));
                }
            })
        };
        let producers: Vec<_> = (0..2)
            .map(|t| {
                let (core, last) = (Arc::clone(&core), Arc::clone(&last));
                let (runs, nested) = (Arc::clone(&runs), Arc::clone(&nested));
                std::thread::spawn(move || {
                    let mut x = 0x9E37_79B9_7F4A_7C15_u64 ^ t as u64;
                    for seq in 1..=PER_THREAD {
                        let (last, runs, nested) =
                            (Arc::clone(&last), Arc::clone(&runs), Arc::clone(&nested));
                        let inner = Arc::clone(&core);
                        core.enqueue(Task::HostFn(Some(HostFn::new(move || {
                            let before = last[t].swap(seq, SeqCst);
                            assert_eq!(before, seq - 1, "thread {t}: out of order");
                            runs.fetch_add(1, SeqCst);
                            if seq % 97 == 0 {
                                let n = Arc::clone(&nested);
                                inner
                                    .enqueue(Task::HostFn(Some(HostFn::new(move || {
                                        n.fetch_add(1, SeqCst);
                                    }))))
                                    .expect("enqueue from a host function");
                            }
                        }))))
                        .expect("enqueue");
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        match x % 1000 {
                            // Past the spin: the worker ticks, or sleeps.
                            0..=2 => std::thread::sleep(Duration::from_millis(1 + x % 25)),
                            3..=60 => std::thread::sleep(Duration::from_micros(60)),
                            61..=100 => core.enqueue(Task::Nop).expect("nop"),
                            _ => {
                                for _ in 0..x % 2000 {
                                    std::hint::spin_loop();
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().expect("producer");
        }
        stop.store(true, SeqCst);
        syncer.join().expect("synchronizer");
        core.synchronize(None).expect("synchronize");
        assert_eq!(runs.load(SeqCst), 2 * PER_THREAD);
        assert_eq!(
            (last[0].load(SeqCst), last[1].load(SeqCst)),
            (PER_THREAD, PER_THREAD)
        );
        assert_eq!(nested.load(SeqCst), 2 * (PER_THREAD / 97));
        core.shutdown();
    }
}
