//! The clocks the simulator reads, in nanoseconds.
//!
//! Through libc rather than rustix: rustix reads the vDSO itself, and valgrind does not map the
//! vDSO the way the kernel does, so a C program run under valgrind would crash in the first
//! call that looks at a clock. glibc's `clock_gettime` uses the vDSO too, where it can.

fn read(clock: libc::clockid_t) -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(clock, &mut t) };
    debug_assert_eq!(rc, 0, "every clock read here exists on Linux");
    (t.tv_sec as u64).saturating_mul(1_000_000_000) + t.tv_nsec as u64
}

/// `CLOCK_MONOTONIC`.
pub(crate) fn monotonic_ns() -> u64 {
    read(libc::CLOCK_MONOTONIC)
}

/// `CLOCK_MONOTONIC_COARSE`: a few ns, exact to a few ms.
pub(crate) fn monotonic_coarse_ns() -> u64 {
    read(libc::CLOCK_MONOTONIC_COARSE)
}

/// `CLOCK_BOOTTIME`: the clock process start times count in (R7).
pub(crate) fn boottime_ns() -> u64 {
    read(libc::CLOCK_BOOTTIME)
}
