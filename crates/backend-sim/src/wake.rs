//! The flag protocol (R1, SEMANTICS.md §4 "Waking"): record, consume, and the adaptive wait.
//!
//! The flag is one `u32` in shared memory, `0` clear and `1` set. A waiter that has to sleep
//! first counts itself in `waiters`, then sleeps on the flag with a *shared* futex; a recorder
//! sets the flag and makes the `futex_wake` system call only when that count is non-zero. Both
//! sides use `SeqCst`, which is what rules out a lost wake-up: in the single total order either
//! the waiter's increment comes before the recorder's load of `waiters` (and the recorder wakes
//! it), or the recorder's store of the flag comes before the waiter's compare-exchange (and the
//! waiter sees the flag set). `futex_wait` re-checks the flag in the kernel, so a wake that
//! arrives between the check and the sleep is not lost either.
//!
//! Before sleeping, a waiter spins for a few microseconds. If the last recorder ran on the
//! waiter's own CPU, spinning would only delay the recorder it is waiting for, so it yields the
//! CPU for that time instead.

use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::thread::futex;

use crate::registry::layout::NotifySlot;

/// The longest single futex sleep. A record always wakes a counted sleeper at once; the cap
/// only bounds how long a corrupted `waiters` count (R14) can delay a wake-up, at the price of
/// one wake-up a second for a waiter blocked longer.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// How long a waiter spins before it sleeps.
const SPIN_BUDGET: Duration = Duration::from_micros(20);

/// The CPU this thread runs on, plus one (`0` stays "unknown").
///
/// glibc answers `sched_getcpu` from the rseq area the kernel keeps up to date (about a
/// nanosecond); rustix's version asks the vDSO, an order of magnitude slower, and this sits on
/// the record hot path.
#[inline]
fn cpu_tag() -> u32 {
    // SAFETY: `sched_getcpu` takes no arguments and touches no caller memory.
    let cpu = unsafe { libc::sched_getcpu() };
    u32::try_from(cpu).map_or(0, |c| c.wrapping_add(1))
}

/// R1: sets the flag; wakes sleepers only if there are any (no system call otherwise).
#[inline]
pub(crate) fn record(slot: &NotifySlot) {
    // A plain store, not load-then-store: the line is the one the waiter polls, and a load
    // would pull it over in shared state first, only for the flag store to pull it again.
    slot.recorder_cpu.store(cpu_tag(), Relaxed);
    slot.flag.store(1, SeqCst);
    if slot.waiters.load(SeqCst) != 0 {
        let _ = futex::wake(&slot.flag, futex::Flags::empty(), i32::MAX as u32);
    }
}

/// R1: clears a set flag in one atomic step; `true` if this call consumed it.
#[inline]
pub(crate) fn try_consume(slot: &NotifySlot) -> bool {
    slot.flag.compare_exchange(1, 0, SeqCst, Relaxed).is_ok()
}

/// R1: clears the flag now (batch reset).
pub(crate) fn reset(slot: &NotifySlot) {
    slot.flag.store(0, SeqCst);
}

/// Wakes every sleeper on the flag word at `addr` without setting it (a forced stream destroy,
/// S1): they re-check and see their abort. `0` is no word.
pub(crate) fn wake_address(addr: usize) {
    if addr == 0 {
        return;
    }
    // SAFETY: `FUTEX_WAKE` neither reads nor writes the word: the kernel only looks up who
    // sleeps on that address. A stale address (the wait ended meanwhile) at worst wakes an
    // unrelated sleeper spuriously, which every futex waiter tolerates (it re-checks), or fails
    // with EFAULT; no Rust reference to the word is made here.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            addr as *const u32,
            libc::FUTEX_WAKE,
            i32::MAX,
        );
    }
}

/// Waits until the flag is set and consumes it, until `deadline`, or until `abort` is set.
/// `true` if consumed. While it sleeps, `sleeping_on` holds the flag's address, so that an
/// abort can wake it.
pub(crate) fn wait(
    slot: &NotifySlot,
    deadline: Option<Instant>,
    abort: &AtomicBool,
    sleeping_on: &std::sync::atomic::AtomicUsize,
) -> bool {
    if try_consume(slot) {
        return true;
    }
    if slot.recorder_cpu.load(Relaxed) != cpu_tag() {
        // The recorder runs elsewhere: spin on the cache line, reading the clock only once the
        // flag has not come within the first 64 spins (a peer that answers quickly).
        let mut start = None;
        let mut spins = 0u32;
        loop {
            std::hint::spin_loop();
            if slot.flag.load(Relaxed) == 1 && try_consume(slot) {
                return true;
            }
            spins += 1;
            if spins.is_multiple_of(64)
                && start.get_or_insert_with(Instant::now).elapsed() >= SPIN_BUDGET
            {
                break;
            }
        }
    } else {
        // The recorder shares our CPU: spinning would only keep it from running. Yield to it
        // instead; if it records meanwhile, neither side makes a futex call.
        let start = Instant::now();
        loop {
            rustix::thread::sched_yield();
            if try_consume(slot) {
                return true;
            }
            if start.elapsed() >= SPIN_BUDGET {
                break;
            }
        }
    }
    // About to sleep, maybe for good (a hang, then a kill): the trace so far is on disk.
    if crate::trace::on() {
        crate::trace::flush();
    }
    slot.waiters.fetch_add(1, SeqCst);
    sleeping_on.store(std::ptr::from_ref(&slot.flag).addr(), SeqCst);
    let consumed = loop {
        if try_consume(slot) {
            break true;
        }
        // SeqCst, against the aborter's store of `abort` and load of `sleeping_on`: either we
        // see the abort here, or it sees our address and wakes us (again, until we leave).
        if abort.load(SeqCst) {
            break false;
        }
        let left = match deadline {
            None => MAX_SLEEP,
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => left.min(MAX_SLEEP),
                _ => break false,
            },
        };
        let ts = futex::Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        if slot.waiters.load(Relaxed) == 0 {
            // Someone scribbled our count away (R14): count ourselves again, or no record
            // would ever wake us.
            slot.waiters.fetch_add(1, SeqCst);
        }
        match futex::wait(&slot.flag, futex::Flags::empty(), 0, Some(&ts)) {
            // Woken, value changed, interrupted, or timed out: re-check the flag and the deadline.
            Ok(()) | Err(Errno::AGAIN | Errno::INTR | Errno::TIMEDOUT) => {}
            // Anything else means the futex word is unusable; fall back to a polite yield rather
            // than spinning hot, and keep honouring the deadline.
            Err(_) => std::thread::yield_now(),
        }
    };
    sleeping_on.store(0, SeqCst);
    // Saturating: a count scribbled to zero must not wrap to "4 billion waiters".
    let _ = slot
        .waiters
        .fetch_update(SeqCst, SeqCst, |w| Some(w.saturating_sub(1)));
    consumed
}
