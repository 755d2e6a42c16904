//! R17: what a process forked from an attached one may and may not touch.
//!
//! A child of `fork` starts with a copy of its parent's memory, including locks that other
//! threads of the parent held at that moment (a stream's queue, the registry's process-local
//! mutex) and will never release in the child, and with the parent's open file descriptions,
//! among them the parent's liveness lock (R9): while the child keeps it open, the parent's death
//! would go unnoticed.
//!
//! So a `pthread_atfork` child handler does two things, both async-signal-safe: it bumps the
//! fork [`generation`], and it closes the descriptors registered with [`inherit_guard`]. Every
//! session remembers the generation it was made in; a call through one made in another
//! generation is refused (100001 until the child attaches itself, 107017 after), and its drop
//! leaks instead of touching what the parent shares. Process-global state that holds a lock
//! lives in a [`PerProcess`] cell, which hands each generation a fresh value, so the child never
//! waits on a lock another thread held at the fork.

use std::os::fd::RawFd;
use std::sync::Once;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, SeqCst};
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU64};

static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Descriptors the child must not keep: at most this many sessions' worth at once.
const MAX_INHERITED: usize = 64;
static INHERITED: [AtomicI32; MAX_INHERITED] = [const { AtomicI32::new(-1) }; MAX_INHERITED];

/// How many forks separate this process from the one that first loaded this library: `0` in
/// it, one more in each forked child.
#[inline]
pub fn generation() -> u64 {
    GENERATION.load(Acquire)
}

extern "C" fn in_child() {
    GENERATION.fetch_add(1, SeqCst);
    for slot in &INHERITED {
        let fd = slot.swap(-1, Relaxed);
        if fd >= 0 {
            // SAFETY: `close` is async-signal-safe; the descriptor was registered by a session
            // of the parent, which the child never uses again (its generation is stale), so
            // nothing in the child reads it or closes it a second time.
            unsafe {
                libc::close(fd);
            }
        }
    }
}

/// Installs the child handler (once per process).
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers a plain `extern "C"` function that never unwinds and only touches
        // atomics and `close`; `pthread_atfork` has no other preconditions.
        unsafe {
            libc::pthread_atfork(None, None, Some(in_child));
        }
    });
}

/// A descriptor to close in a forked child; unregisters itself on drop (in the process that
/// registered it).
#[derive(Debug)]
pub(crate) struct InheritGuard {
    slot: Option<usize>,
    generation: u64,
}

/// Registers `fd` to be closed in a forked child. With more than [`MAX_INHERITED`] sessions
/// alive at once the rest are not registered: a child then keeps them open, which delays only
/// the detection of the parent's death until the child exits.
pub(crate) fn inherit_guard(fd: RawFd) -> InheritGuard {
    install();
    let slot = INHERITED
        .iter()
        .position(|s| s.compare_exchange(-1, fd, AcqRel, Relaxed).is_ok());
    InheritGuard {
        slot,
        generation: generation(),
    }
}

impl Drop for InheritGuard {
    fn drop(&mut self) {
        if let Some(i) = self.slot
            && self.generation == generation()
        {
            INHERITED[i].store(-1, Relaxed);
        }
    }
}

/// A process-global value that each fork generation gets afresh (see the module docs).
///
/// Values of older generations are leaked, never dropped: their locks may be held by threads
/// that do not exist in this process.
pub struct PerProcess<T: 'static> {
    cell: AtomicPtr<Generational<T>>,
    init: fn() -> T,
}

struct Generational<T> {
    generation: u64,
    value: T,
}

impl<T: 'static> std::fmt::Debug for PerProcess<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerProcess").finish_non_exhaustive()
    }
}

impl<T: Send + Sync + 'static> PerProcess<T> {
    /// A cell whose value each generation makes with `init`.
    pub const fn new(init: fn() -> T) -> Self {
        Self {
            cell: AtomicPtr::new(std::ptr::null_mut()),
            init,
        }
    }

    /// This generation's value.
    pub fn get(&'static self) -> &'static T {
        let now = generation();
        loop {
            let current = self.cell.load(Acquire);
            // SAFETY: a non-null pointer in `cell` came from `Box::into_raw` below and is never
            // freed (older generations leak), so it is valid for `'static`.
            if let Some(g) = unsafe { current.as_ref() }
                && g.generation == now
            {
                return &g.value;
            }
            let fresh = Box::into_raw(Box::new(Generational {
                generation: now,
                value: (self.init)(),
            }));
            match self.cell.compare_exchange(current, fresh, AcqRel, Acquire) {
                // SAFETY: `fresh` is ours and now published; it is never freed.
                Ok(_) => return unsafe { &(*fresh).value },
                Err(_) => {
                    // SAFETY: `fresh` was never published; we still own it.
                    drop(unsafe { Box::from_raw(fresh) });
                }
            }
        }
    }
}
