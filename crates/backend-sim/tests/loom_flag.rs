//! A loom model of the record/wait flag protocol of `src/wake.rs` (SEMANTICS.md R1, R3 and §4
//! "Waking"): no lost wake-up, no double release, and a timed-out wait leaves the flag alone.
//!
//! Compiled only with `--cfg loom`; see docs/RELIABILITY.md:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p backend-sim --test loom_flag --release
//! ```
//!
//! # What is modelled, and how
//!
//! Modelled on `wake.rs` and `StreamCore::force_shutdown` as they are now (`wake::wait` takes
//! an `abort: &AtomicBool`, set by a forced stream destroy, S1, and publishes the word it sleeps
//! on in `sleeping_on`); when either changes, change this with it.
//!
//! * **The protocol** is re-implemented over loom atomics step for step as `wake.rs` has it:
//!   `record` stores `flag = 1` (SeqCst), then loads `waiters` (SeqCst) and calls `futex_wake`
//!   only if it is non-zero; `wait` tries the compare-exchange `1 → 0` (SeqCst / Relaxed), then
//!   runs its pre-sleep phase, then `waiters += 1` and `sleeping_on = flag` (SeqCst) and loops {
//!   compare-exchange; abort check (`abort`, SeqCst); deadline check; R14 recount (`waiters ==
//!   0`, Relaxed → `waiters += 1`); `futex_wait(flag, 0, timeout)` }, and finally `sleeping_on =
//!   0` and `waiters -= 1` (SeqCst `fetch_update`, saturating). A forced destroy
//!   (`StreamCore::force_shutdown`) stores `abort = true` (SeqCst) and then, while
//!   `sleeping_on` is set, calls `wake::wake_address` on it (a `futex_wake` that does not touch
//!   the flag) and sleeps a little.
//!   The pre-sleep phase is bounded by time, so any number of rounds (zero included) is a
//!   possible run; `recorder_cpu` only chooses its kind. The models run it as [`PreSleep`]:
//!   none, one spin round (a relaxed load, then the compare-exchange if it saw 1), or one yield
//!   round (the compare-exchange). `recorder_cpu` itself (a Relaxed hint) is not modelled.
//! * **The futex** is a loom `Mutex<()>` + `Condvar` per flag word (the kernel's hash bucket).
//!   `futex_wait` takes the bucket lock, issues the full barrier the kernel issues before it
//!   reads the word (barrier (A) of `futex_q_lock`), reads the word, returns `EAGAIN` if it is
//!   not the expected value, and otherwise sleeps on the condvar, which releases the lock in the
//!   same step; `futex_wake` takes the bucket lock and wakes all sleepers. The compare and the
//!   sleep are therefore atomic with respect to `futex_wake`, as in the kernel.
//! * **`MAX_SLEEP`** (each futex sleep is capped at 1 s, so that a corrupted `waiters` count
//!   delays a wake-up by at most a second) is left out on purpose: with it a lost wake-up would
//!   be a 1 s stall instead of a hang. A wait without deadline sleeps here until it is woken,
//!   so the models check that no wake-up relies on the cap. Model 5 (the abort) runs both ways:
//!   with the cap modelled (a capped sleep may end at any moment: the sleeper yields and
//!   returns as if the cap expired) and without it.
//! * **Timeouts**: loom has no clock (`Condvar::wait_timeout` never times out), so a deadline is
//!   an `AtomicBool` that a *timer thread* sets at a point loom chooses, like the kernel's timer:
//!   it sets the flag, then takes the bucket lock and wakes the sleepers. Loom explores every
//!   point at which the deadline can pass: before the first check, between the check and the
//!   sleep, during the sleep, together with the record. `Instant::now() >= deadline` in the code
//!   is a load of that flag; `futex_wait` returns `ETIMEDOUT` without sleeping once the deadline
//!   has passed. The timer wakes every sleeper on the word, not only its own; a sleeper woken
//!   early re-checks and sleeps again, as the code does for any early return (`EINTR`), so this
//!   only adds behaviours.
//! * **SeqCst**: loom treats SeqCst *accesses* as AcqRel (loom README, "Known limitations",
//!   tokio-rs/loom#180): it would let both sides of the store-buffering pattern read the old
//!   value, which C++20 forbids for SeqCst accesses (single total order S) and which is the
//!   whole point of the protocol's orderings. (Without the fences below, loom reports exactly
//!   that false lost wake-up in model 1.) Loom does implement `fence(SeqCst)`, so every SeqCst
//!   access below is bracketed by `fence(SeqCst)` (`Slot::sc`), which restores the single total
//!   order of the SeqCst accesses. Loom's fence is somewhat stronger than C++'s (it also joins
//!   happens-before); the only other accesses it can affect here are the Relaxed spin load and
//!   the Relaxed R14 load, which no wake-up depends on. A compare-exchange that fails is a
//!   Relaxed load in the code; loom gives every read-modify-write the newest value anyway.
//!
//! # The models
//!
//! 1. one record, one wait without deadline: the wait always completes, the flag ends 0.
//! 2. two records, one wait: the wait consumes once; the flag ends 0 (the records merged) or 1
//!    (one came after the consume), both reachable; wait + drain never consume more than twice.
//! 3. two waiters (two streams of the creator) with deadlines, one record: never both consume.
//!    (a) deadline long enough (it passes after somebody consumed): exactly one consumes, the
//!    other times out, the flag ends 0. (b) deadline at any moment: at most one consumes, and
//!    `consumed + flag == 1` (the record is consumed or still there).
//! 4. a wait that times out leaves the flag as it was (R3): (a) no record: times out, flag 0;
//!    (b) a concurrent record: timed out → flag 1, consumed → flag 0. `waiters` ends 0 always.
//! 5. a forced destroy (S1) ends a wait without deadline: (a) no record: the wait returns
//!    unconsumed, flag 0; (b) a concurrent record: aborted → flag 1 (the record stays for the
//!    next wait), consumed → flag 0. `waiters` ends 0. Both with the 1 s cap; and (c) without it:
//!    the abort is never lost, because the aborter wakes until the waiter has left. (A single
//!    wake can land between the waiter's `abort` check and its sleep, when nobody sleeps yet:
//!    `broken_single_abort_wake_is_lost` shows loom finds that.)
//!
//! Each broken variant below must make loom fail (`#[should_panic]`), which shows the models
//! can see the bug they are about. A lost wake-up shows as loom's "deadlock" panic (every thread
//! blocked). The shared state is held in `std::sync::Arc`, not loom's: loom's `Arc` calls into
//! the runtime when dropped, and dropping it while unwinding from that panic aborts the test
//! process instead of letting `#[should_panic]` see the panic.

#![allow(unexpected_cfgs)]
#![cfg(loom)]

use std::sync::Arc;
use std::sync::atomic::AtomicUsize as StdAtomicUsize;
use std::sync::atomic::Ordering::{self, Relaxed, SeqCst};

use loom::sync::atomic::{AtomicBool, AtomicU32, fence};
use loom::sync::{Condvar, Mutex};
use loom::thread;

/// Preemption bound when `LOOM_MAX_PREEMPTIONS` is not set; it keeps the whole file at about a
/// minute of CPU. Models 1, 4 and the no-re-check check are also exhaustive without a bound
/// (`LOOM_MAX_PREEMPTIONS=255`) within seconds, model 2 within minutes; model 3 at bound 4
/// takes over ten minutes each.
const DEFAULT_PREEMPTIONS: usize = 3;

/// The protocol checked: the real one, or one of the deliberately broken ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    /// `wake.rs` as written.
    Faithful,
    /// The waiter checks the flag, counts itself, and goes straight to `futex_wait` without the
    /// re-check in between. Not a bug: `futex_wait` compares the word itself.
    NoRecheck,
    /// BROKEN: the recorder reads `waiters` before it sets the flag.
    RecordReadsWaitersFirst,
    /// BROKEN: the waiter sleeps first and counts itself in `waiters` only after it wakes.
    WaiterCountsAfterSleep,
    /// BROKEN: `NoRecheck`, with a sleep that does not compare the word (an event, not a futex).
    NoRecheckBlindSleep,
    /// BROKEN: every access Relaxed (and so no SeqCst fences).
    AllRelaxed,
    /// BROKEN: consume as a load then a store, instead of one compare-exchange.
    SplitConsume,
    /// BROKEN: the forced destroy wakes the running wait once, not until it has left.
    AbortWakesOnce,
}

/// The pre-sleep phase of `wake::wait` (one round of it, or none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PreSleep {
    /// The budget ran out at once (or the phase is skipped).
    None,
    /// The recorder runs on another CPU: `flag.load(Relaxed) == 1 && try_consume()`.
    Spin,
    /// The recorder shares the waiter's CPU: `sched_yield(); try_consume()`.
    Yield,
}

/// Every pre-sleep phase.
const PRE_SLEEP: [PreSleep; 3] = [PreSleep::None, PreSleep::Spin, PreSleep::Yield];

/// What `futex_wait` returned (the code treats all three alike: re-check).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FutexWait {
    Woken,
    Again,
    TimedOut,
}

/// A deadline that a timer thread passes (`Instant::now() >= deadline` once set).
type Deadline = Arc<AtomicBool>;

/// `NotifySlot`'s hot fields, plus the kernel's futex bucket for `flag`.
struct Slot {
    flag: AtomicU32,
    waiters: AtomicU32,
    bucket: Mutex<()>,
    sleepers: Condvar,
    variant: Variant,
    /// `StreamCore::abort`: set by a forced destroy (S1).
    abort: AtomicBool,
    /// `StreamCore::sleeping_on`: whether the wait is in its sleeping loop.
    sleeping_on: AtomicBool,
    /// Whether a futex sleep is capped (`MAX_SLEEP`): then it may end at any moment.
    capped: bool,
}

impl Slot {
    fn new(variant: Variant, flag: u32) -> Self {
        Self {
            flag: AtomicU32::new(flag),
            waiters: AtomicU32::new(0),
            bucket: Mutex::new(()),
            sleepers: Condvar::new(),
            variant,
            abort: AtomicBool::new(false),
            sleeping_on: AtomicBool::new(false),
            capped: false,
        }
    }

    /// A slot whose futex sleeps are capped (`MAX_SLEEP`), for model 5.
    fn capped(variant: Variant, flag: u32) -> Self {
        Self {
            capped: true,
            ..Self::new(variant, flag)
        }
    }

    /// The ordering of an access that `wake.rs` makes SeqCst.
    fn seq_cst(&self) -> Ordering {
        if self.variant == Variant::AllRelaxed {
            Relaxed
        } else {
            SeqCst
        }
    }

    /// Brackets a SeqCst access (see the module docs: loom's SeqCst accesses are only AcqRel).
    fn sc(&self) {
        if self.variant != Variant::AllRelaxed {
            fence(SeqCst);
        }
    }

    fn store_flag_set(&self) {
        self.sc();
        self.flag.store(1, self.seq_cst());
        self.sc();
    }

    fn load_waiters(&self) -> u32 {
        self.sc();
        let n = self.waiters.load(self.seq_cst());
        self.sc();
        n
    }

    fn add_waiter(&self) {
        self.sc();
        self.waiters.fetch_add(1, self.seq_cst());
        self.sc();
    }

    /// `wake.rs` decrements with a saturating `fetch_update`, so that a count scribbled to 0
    /// (R14) does not wrap.
    fn remove_waiter(&self) {
        self.sc();
        let _ = self
            .waiters
            .fetch_update(self.seq_cst(), self.seq_cst(), |w| {
                Some(w.saturating_sub(1))
            });
        self.sc();
    }

    /// The R14 guard before each sleep: a waiter that finds `waiters == 0` (Relaxed) although
    /// it counted itself assumes the count was scribbled away and counts itself again. Without
    /// corruption it never fires; if it did, `waiters` would not return to 0 and the models'
    /// final `waiters == 0` would fail.
    fn recount_if_lost(&self) {
        if self.waiters.load(Relaxed) == 0 {
            self.add_waiter();
        }
    }

    // --- the kernel --------------------------------------------------------------------------

    /// `futex(FUTEX_WAIT, flag, expected, timeout)`; `compare: false` is a sleep that does not
    /// look at the word (only for the broken `NoRecheckBlindSleep`).
    fn futex_wait(&self, expected: u32, deadline: Option<&Deadline>, compare: bool) -> FutexWait {
        let guard = self.bucket.lock().unwrap();
        // The kernel's full barrier between queueing the waiter and reading the word.
        fence(SeqCst);
        if compare && self.flag.load(Relaxed) != expected {
            return FutexWait::Again;
        }
        if deadline.is_some_and(|d| d.load(SeqCst)) {
            return FutexWait::TimedOut;
        }
        if self.capped {
            // `MAX_SLEEP`: the sleep ends when woken or when the cap expires, which from the
            // protocol's point of view is any moment; loom's `yield_now` lets the other threads
            // run first, so the waiter's re-check loop is not a busy loop for loom.
            drop(guard);
            thread::yield_now();
            return FutexWait::TimedOut;
        }
        let _guard = self.sleepers.wait(guard).unwrap();
        if deadline.is_some_and(|d| d.load(SeqCst)) {
            FutexWait::TimedOut
        } else {
            FutexWait::Woken
        }
    }

    /// `futex(FUTEX_WAKE, flag, i32::MAX)` (`wake::record`'s wake, and `wake::wake_all`).
    fn futex_wake(&self) {
        let _guard = self.bucket.lock().unwrap();
        self.sleepers.notify_all();
    }

    /// The kernel's timer for `deadline`: the deadline passes, the sleeper is woken.
    fn expire(&self, deadline: &Deadline) {
        deadline.store(true, SeqCst);
        let _guard = self.bucket.lock().unwrap();
        self.sleepers.notify_all();
    }

    // --- stream.rs ---------------------------------------------------------------------------

    /// `StreamCore::force_shutdown`'s part of the protocol: `abort = true` (SeqCst), then a
    /// wake of the running wait's flag for as long as it is in its sleeping loop.
    fn force_shutdown(&self) {
        self.sc();
        self.abort.store(true, SeqCst);
        self.sc();
        if self.variant == Variant::AbortWakesOnce {
            self.futex_wake();
            return;
        }
        loop {
            self.sc();
            let sleeping = self.sleeping_on.load(SeqCst);
            self.sc();
            if !sleeping {
                return;
            }
            self.futex_wake();
            // The real loop sleeps 100 µs between wakes.
            thread::yield_now();
        }
    }

    // --- wake.rs -----------------------------------------------------------------------------

    /// `wake::record`.
    fn record(&self) {
        if self.variant == Variant::RecordReadsWaitersFirst {
            let waiters = self.load_waiters();
            self.store_flag_set();
            if waiters != 0 {
                self.futex_wake();
            }
            return;
        }
        self.store_flag_set();
        if self.load_waiters() != 0 {
            self.futex_wake();
        }
    }

    /// `wake::try_consume`.
    fn try_consume(&self) -> bool {
        if self.variant == Variant::SplitConsume {
            self.sc();
            let set = self.flag.load(SeqCst) == 1;
            self.sc();
            if set {
                self.sc();
                self.flag.store(0, SeqCst);
                self.sc();
            }
            return set;
        }
        self.sc();
        let consumed = self
            .flag
            .compare_exchange(1, 0, self.seq_cst(), Relaxed)
            .is_ok();
        if consumed {
            self.sc();
        }
        consumed
    }

    /// `wake::wait`: `deadline` `None` waits forever.
    fn wait(&self, deadline: Option<&Deadline>, pre: PreSleep) -> bool {
        let expired = || deadline.is_some_and(|d| d.load(SeqCst));
        if self.try_consume() {
            return true;
        }
        match pre {
            PreSleep::None => {}
            PreSleep::Spin => {
                if self.flag.load(Relaxed) == 1 && self.try_consume() {
                    return true;
                }
            }
            PreSleep::Yield => {
                // `sched_yield` is only a scheduling hint, and loom explores every schedule
                // anyway (loom's own `yield_now` would instead prune the ones where the
                // waiter goes on first).
                if self.try_consume() {
                    return true;
                }
            }
        }
        let consumed = match self.variant {
            Variant::Faithful
            | Variant::RecordReadsWaitersFirst
            | Variant::AllRelaxed
            | Variant::SplitConsume
            | Variant::AbortWakesOnce => {
                self.add_waiter();
                self.sc();
                self.sleeping_on.store(true, SeqCst);
                self.sc();
                let consumed = loop {
                    if self.try_consume() {
                        break true;
                    }
                    self.sc();
                    let abort = self.abort.load(SeqCst);
                    self.sc();
                    if abort {
                        break false;
                    }
                    if expired() {
                        break false;
                    }
                    self.recount_if_lost();
                    let _ = self.futex_wait(0, deadline, true);
                };
                self.sc();
                self.sleeping_on.store(false, SeqCst);
                self.sc();
                consumed
            }
            Variant::NoRecheck | Variant::NoRecheckBlindSleep => {
                let compare = self.variant == Variant::NoRecheck;
                self.add_waiter();
                loop {
                    if self.abort.load(Relaxed) || expired() {
                        break false;
                    }
                    self.recount_if_lost();
                    let _ = self.futex_wait(0, deadline, compare);
                    if self.try_consume() {
                        break true;
                    }
                }
            }
            // (No R14 recount here: it would count the waiter before it sleeps, i.e. fix it.)
            Variant::WaiterCountsAfterSleep => loop {
                if self.abort.load(Relaxed) || expired() {
                    break false;
                }
                let _ = self.futex_wait(0, deadline, true);
                self.add_waiter();
                let consumed = self.try_consume();
                self.remove_waiter();
                if consumed {
                    return true;
                }
            },
        };
        if self.variant != Variant::WaiterCountsAfterSleep {
            self.remove_waiter();
        }
        consumed
    }

    /// Final state, read after every thread was joined.
    fn settled(&self) -> (u32, u32) {
        (self.flag.load(SeqCst), self.waiters.load(SeqCst))
    }
}

/// Runs `model` exhaustively (within the preemption bound) and reports how many executions
/// loom explored (shown with `--nocapture`).
fn check(model: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(DEFAULT_PREEMPTIONS);
    }
    let executions = Arc::new(StdAtomicUsize::new(0));
    let counted = executions.clone();
    builder.check(move || {
        counted.fetch_add(1, Relaxed);
        model();
    });
    eprintln!(
        "loom: {} executions (preemption bound {:?})",
        executions.load(Relaxed),
        builder.preemption_bound
    );
}

// --- 1. one record, one wait --------------------------------------------------------------

fn one_record_one_wait(variant: Variant, pre: PreSleep) {
    check(move || {
        let slot = Arc::new(Slot::new(variant, 0));
        let waiter = {
            let slot = slot.clone();
            thread::spawn(move || slot.wait(None, pre))
        };
        slot.record();
        // A lost wake-up leaves the waiter asleep forever: loom reports it as a deadlock here.
        assert!(
            waiter.join().unwrap(),
            "a wait without deadline returned unconsumed"
        );
        assert_eq!(
            slot.settled(),
            (0, 0),
            "(flag, waiters) after one record and one wait"
        );
    });
}

/// Model 1: the waiter always completes (no lost wake-up) and the flag ends 0.
#[test]
fn m1_one_record_one_wait_never_loses_the_wake_up() {
    for pre in PRE_SLEEP {
        one_record_one_wait(Variant::Faithful, pre);
    }
}

// --- 2. two records, one wait -------------------------------------------------------------

/// Model 2: the wait consumes exactly once; records merge (R1); no double release.
#[test]
fn m2_two_records_one_wait_consume_once() {
    static FLAG_0: StdAtomicUsize = StdAtomicUsize::new(0);
    static FLAG_1: StdAtomicUsize = StdAtomicUsize::new(0);
    for pre in PRE_SLEEP {
        check(move || {
            let slot = Arc::new(Slot::new(Variant::Faithful, 0));
            let recorders: Vec<_> = (0..2)
                .map(|_| {
                    let slot = slot.clone();
                    thread::spawn(move || slot.record())
                })
                .collect();
            assert!(
                slot.wait(None, pre),
                "a wait after two records did not consume"
            );
            for r in recorders {
                r.join().unwrap();
            }
            let (flag, waiters) = slot.settled();
            assert_eq!(waiters, 0, "waiters after the wait");
            // flag 0: both records came before the consume and merged into one release.
            // flag 1: one record came after it and is still pending for the next wait.
            match flag {
                0 => FLAG_0.fetch_add(1, Relaxed),
                1 => FLAG_1.fetch_add(1, Relaxed),
                other => panic!("flag is {other}, not a binary flag"),
            };
            // Drain what is left: one wait plus the drain never consume more than two records.
            let total = 1 + usize::from(slot.try_consume());
            assert!(total <= 2, "double release: {total} consumes for 2 records");
            assert_eq!(total, 1 + flag as usize);
        });
    }
    assert!(
        FLAG_0.load(Relaxed) > 0,
        "merged records (flag 0) never explored"
    );
    assert!(
        FLAG_1.load(Relaxed) > 0,
        "a record after the consume (flag 1) never explored"
    );
}

// --- 3. two waiters, one record -----------------------------------------------------------

/// Two waiters with deadlines and one record. `long_deadline`: the deadlines pass only after a
/// waiter consumed (model 3a); otherwise at any moment (model 3b). Returns nothing; asserts.
fn two_waiters_one_record(variant: Variant, pre: PreSleep, long_deadline: bool) {
    static BOTH_TIMED_OUT: StdAtomicUsize = StdAtomicUsize::new(0);
    check(move || {
        let slot = Arc::new(Slot::new(variant, 0));
        let deadlines: [Deadline; 2] = [
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        ];
        // Set by a waiter that consumed, for the long-deadline timer.
        let done = Arc::new((Mutex::new(false), Condvar::new()));
        let waiters: Vec<_> = deadlines
            .iter()
            .map(|deadline| {
                let (slot, deadline, done) = (slot.clone(), deadline.clone(), done.clone());
                thread::spawn(move || {
                    let consumed = slot.wait(Some(&deadline), pre);
                    if consumed {
                        *done.0.lock().unwrap() = true;
                        done.1.notify_all();
                    }
                    consumed
                })
            })
            .collect();
        let timer = {
            let (slot, deadlines, done) = (slot.clone(), deadlines.clone(), done.clone());
            thread::spawn(move || {
                if long_deadline {
                    let mut consumed = done.0.lock().unwrap();
                    while !*consumed {
                        consumed = done.1.wait(consumed).unwrap();
                    }
                }
                // One timer for both: the waiters are symmetric, so A-then-B covers B-then-A.
                for deadline in &deadlines {
                    slot.expire(deadline);
                }
            })
        };
        slot.record();
        let consumed = waiters
            .into_iter()
            .map(|w| w.join().unwrap())
            .filter(|&c| c)
            .count();
        timer.join().unwrap();
        let (flag, waiter_count) = slot.settled();
        assert!(
            consumed <= 1,
            "double release: one record consumed by {consumed} waits"
        );
        assert_eq!(waiter_count, 0, "waiters after both waits returned");
        // R1 + R3: the record is consumed exactly once or is still in the flag.
        assert_eq!(
            consumed + flag as usize,
            1,
            "consumed {consumed}, flag {flag}"
        );
        if long_deadline {
            assert_eq!(
                consumed, 1,
                "nobody consumed the record before the deadline"
            );
        } else if consumed == 0 {
            BOTH_TIMED_OUT.fetch_add(1, Relaxed);
        }
    });
    if !long_deadline && variant == Variant::Faithful {
        assert!(
            BOTH_TIMED_OUT.load(Relaxed) > 0,
            "both waits timing out never explored"
        );
    }
}

/// Model 3a: with a deadline that passes after somebody consumed, exactly one waiter consumes,
/// the other times out, never both.
#[test]
fn m3a_two_waiters_one_record_exactly_one_consumes() {
    for pre in PRE_SLEEP {
        two_waiters_one_record(Variant::Faithful, pre, true);
    }
}

/// Model 3b: with deadlines at any moment, at most one consumes and the record is never lost.
#[test]
fn m3b_two_waiters_one_record_any_deadline() {
    for pre in PRE_SLEEP {
        two_waiters_one_record(Variant::Faithful, pre, false);
    }
}

// --- 4. a wait that times out -------------------------------------------------------------

/// Model 4a: no record; the wait times out, the flag stays 0, `waiters` returns to 0.
#[test]
fn m4a_timed_out_wait_leaves_clear_flag_clear() {
    for pre in PRE_SLEEP {
        check(move || {
            let slot = Arc::new(Slot::new(Variant::Faithful, 0));
            let deadline: Deadline = Arc::new(AtomicBool::new(false));
            let timer = {
                let (slot, deadline) = (slot.clone(), deadline.clone());
                thread::spawn(move || slot.expire(&deadline))
            };
            assert!(
                !slot.wait(Some(&deadline), pre),
                "consumed a flag nobody set"
            );
            timer.join().unwrap();
            assert_eq!(
                slot.settled(),
                (0, 0),
                "(flag, waiters) after a timed-out wait"
            );
        });
    }
}

/// Model 4b: a record concurrent with a wait whose deadline passes at any moment: timed out →
/// the flag is still set (R3); consumed → clear. `waiters` returns to 0 either way.
#[test]
fn m4b_timed_out_wait_leaves_a_record_in_place() {
    static TIMED_OUT: StdAtomicUsize = StdAtomicUsize::new(0);
    static CONSUMED: StdAtomicUsize = StdAtomicUsize::new(0);
    for pre in PRE_SLEEP {
        check(move || {
            let slot = Arc::new(Slot::new(Variant::Faithful, 0));
            let deadline: Deadline = Arc::new(AtomicBool::new(false));
            let timer = {
                let (slot, deadline) = (slot.clone(), deadline.clone());
                thread::spawn(move || slot.expire(&deadline))
            };
            let waiter = {
                let (slot, deadline) = (slot.clone(), deadline.clone());
                thread::spawn(move || slot.wait(Some(&deadline), pre))
            };
            slot.record();
            let consumed = waiter.join().unwrap();
            timer.join().unwrap();
            let (flag, waiters) = slot.settled();
            assert_eq!(waiters, 0, "waiters after the wait returned");
            if consumed {
                CONSUMED.fetch_add(1, Relaxed);
                assert_eq!(flag, 0, "flag after a consuming wait");
            } else {
                TIMED_OUT.fetch_add(1, Relaxed);
                assert_eq!(flag, 1, "a timed-out wait changed the flag (R3)");
            }
        });
    }
    assert!(
        TIMED_OUT.load(Relaxed) > 0,
        "a timed-out wait never explored"
    );
    assert!(
        CONSUMED.load(Relaxed) > 0,
        "a consuming wait never explored"
    );
}

// --- 5. a forced destroy ends a wait -----------------------------------------------------

/// A wait without deadline and a forced destroy (and, with `record`, a concurrent record).
fn abort_ends_the_wait(slot: fn() -> Slot, pre: PreSleep, record: bool) {
    static ABORTED: StdAtomicUsize = StdAtomicUsize::new(0);
    static CONSUMED: StdAtomicUsize = StdAtomicUsize::new(0);
    check(move || {
        let slot = Arc::new(slot());
        let waiter = {
            let slot = slot.clone();
            thread::spawn(move || slot.wait(None, pre))
        };
        let recorder = record.then(|| {
            let slot = slot.clone();
            thread::spawn(move || slot.record())
        });
        slot.force_shutdown();
        // A lost abort leaves the waiter asleep forever: loom reports a deadlock here.
        let consumed = waiter.join().unwrap();
        if let Some(r) = recorder {
            r.join().unwrap();
        }
        let (flag, waiters) = slot.settled();
        assert_eq!(waiters, 0, "waiters after an aborted wait");
        if consumed {
            assert!(record, "an aborted wait consumed a flag nobody set");
            CONSUMED.fetch_add(1, Relaxed);
            assert_eq!(flag, 0, "flag after a consuming wait");
        } else {
            ABORTED.fetch_add(1, Relaxed);
            // S1 + R1: abandoning the wait does not touch the flag: a record stays set.
            assert_eq!(flag, u32::from(record), "an aborted wait changed the flag");
        }
    });
    assert!(ABORTED.load(Relaxed) > 0, "an aborted wait never explored");
    if record {
        assert!(
            CONSUMED.load(Relaxed) > 0,
            "a wait that consumed before the abort never explored"
        );
    }
}

/// Model 5a: with the 1 s sleep cap, a forced destroy always ends a wait without deadline; the
/// flag stays clear.
#[test]
fn m5a_forced_destroy_ends_a_wait() {
    for pre in PRE_SLEEP {
        abort_ends_the_wait(|| Slot::capped(Variant::Faithful, 0), pre, false);
    }
}

/// Model 5b: a forced destroy concurrent with a record: the wait consumed it (flag 0), or was
/// abandoned and left it set (flag 1).
#[test]
fn m5b_forced_destroy_leaves_a_record_in_place() {
    for pre in PRE_SLEEP {
        abort_ends_the_wait(|| Slot::capped(Variant::Faithful, 0), pre, true);
    }
}

/// Model 5c: without the sleep cap, a forced destroy still ends a wait without deadline: the
/// aborter wakes until the waiter has left its sleeping loop, so no wake-up relies on the cap.
#[test]
fn m5c_abort_does_not_rely_on_the_sleep_cap() {
    abort_ends_the_wait(|| Slot::new(Variant::Faithful, 0), PreSleep::None, false);
}

/// One wake is not enough: the waiter reads `abort == false`, the aborter sets it and wakes
/// nobody (nobody sleeps yet), the waiter then sleeps on a flag that is still 0.
#[test]
#[should_panic(expected = "deadlock")]
fn broken_single_abort_wake_is_lost() {
    abort_ends_the_wait(
        || Slot::new(Variant::AbortWakesOnce, 0),
        PreSleep::None,
        false,
    );
}

// --- the brief's "no re-check" variant: safe, because futex_wait compares -----------------

/// Checking the flag, counting oneself and then sleeping without a re-check loses nothing: the
/// kernel compares the word under the bucket lock. The re-check in `wake.rs` saves a system
/// call, not a wake-up. (Compare `broken_no_recheck_with_blind_sleep_loses_the_wake_up`.)
#[test]
fn no_recheck_is_saved_by_the_futex_compare() {
    for pre in PRE_SLEEP {
        one_record_one_wait(Variant::NoRecheck, pre);
    }
}

// --- broken variants: loom must find each bug ---------------------------------------------

/// The recorder reads `waiters` (0), the waiter counts itself and sleeps (flag still 0), the
/// recorder sets the flag and skips the wake: the waiter sleeps forever.
#[test]
#[should_panic(expected = "deadlock")]
fn broken_record_reading_waiters_first_loses_the_wake_up() {
    one_record_one_wait(Variant::RecordReadsWaitersFirst, PreSleep::None);
}

/// The waiter sleeps (flag 0) before counting itself: the recorder sees `waiters == 0`.
#[test]
#[should_panic(expected = "deadlock")]
fn broken_waiter_counting_after_sleep_loses_the_wake_up() {
    one_record_one_wait(Variant::WaiterCountsAfterSleep, PreSleep::None);
}

/// Without the re-check *and* without the kernel's compare, a record between the check and
/// the count is never seen.
#[test]
#[should_panic(expected = "deadlock")]
fn broken_no_recheck_with_blind_sleep_loses_the_wake_up() {
    one_record_one_wait(Variant::NoRecheckBlindSleep, PreSleep::None);
}

/// Relaxed orderings allow store buffering: the recorder reads `waiters == 0` while the waiter
/// reads `flag == 0` in `futex_wait`.
#[test]
#[should_panic(expected = "deadlock")]
fn broken_relaxed_orderings_lose_the_wake_up() {
    one_record_one_wait(Variant::AllRelaxed, PreSleep::None);
}

/// Two waiters both see the flag set before either clears it: one record, two releases.
#[test]
#[should_panic(expected = "double release")]
fn broken_split_consume_releases_twice() {
    two_waiters_one_record(Variant::SplitConsume, PreSleep::None, true);
}
