//! The stored form of a host function (H1): a `FnOnce() + Send` kept in place when it is small.
//!
//! A boxed closure is allocated by the enqueuing thread and read and freed by the thread that
//! runs it, so every host function moved two more cache lines between the two threads (the
//! allocation, written on one side and read on the other, and the allocator's free list), on
//! the path from its enqueue to its start. Kept in place, a small closure travels in the line
//! that hands the task over (see `Handoff`); a larger one is boxed, and its box kept in place.

use std::mem::{ManuallyDrop, MaybeUninit};

/// The room for a closure kept in place: five words, which with the two function pointers make
/// the whole value 56 bytes, so that it fits beside the hand-off signal in one cache line.
type Buf = MaybeUninit<[usize; 5]>;

/// A host function, run once by [`HostFn::call`] or dropped unrun.
pub(crate) struct HostFn {
    /// Moves the closure out of `buf` and calls it.
    call: unsafe fn(&mut Buf),
    /// Drops the closure in `buf` in place.
    drop: unsafe fn(&mut Buf),
    /// The closure, of the type `call` and `drop` were instantiated with.
    buf: Buf,
}

// SAFETY: `buf` holds a closure that is `Send` (the only kind `new` accepts); the two function
// pointers are plain code.
unsafe impl Send for HostFn {}

impl HostFn {
    pub(crate) fn new<F: FnOnce() + Send + 'static>(f: F) -> Self {
        if fits::<F>() {
            Self::in_place(f)
        } else {
            let boxed = Box::new(f);
            // A `Box<F>` is one word, so it always fits.
            Self::in_place(boxed)
        }
    }

    /// Keeps `f` in `buf`; `F` must fit (a `Box` always does).
    fn in_place<F: FnOnce() + Send + 'static>(f: F) -> Self {
        assert!(fits::<F>(), "a closure kept in place must fit");
        let mut buf = Buf::uninit();
        // SAFETY: `F` fits in `buf` in size and alignment (asserted above); `buf` is ours.
        unsafe { buf.as_mut_ptr().cast::<F>().write(f) };
        Self {
            call: call_in_place::<F>,
            drop: drop_in_place::<F>,
            buf,
        }
    }

    /// Runs the function. If it panics, the closure was already moved out, and the unwinding
    /// drops it; `self` is never dropped as well.
    pub(crate) fn call(self) {
        let mut me = ManuallyDrop::new(self);
        // SAFETY: `buf` holds the `F` that `call` was instantiated with, written by `in_place`
        // and not yet moved out: this is the one call, and `me` is never dropped.
        unsafe { (me.call)(&mut me.buf) }
    }
}

impl Drop for HostFn {
    fn drop(&mut self) {
        // SAFETY: not called (`call` takes `self` into a `ManuallyDrop`), so `buf` still holds
        // the `F` that `drop` was instantiated with.
        unsafe { (self.drop)(&mut self.buf) }
    }
}

const fn fits<F>() -> bool {
    size_of::<F>() <= size_of::<Buf>() && align_of::<F>() <= align_of::<Buf>()
}

/// # Safety
/// `buf` holds an `F` that is moved out here, and never read or dropped again.
unsafe fn call_in_place<F: FnOnce()>(buf: &mut Buf) {
    // SAFETY: the caller's promise.
    let f = unsafe { buf.as_mut_ptr().cast::<F>().read() };
    f();
}

/// # Safety
/// `buf` holds an `F`, never read or dropped again.
unsafe fn drop_in_place<F>(buf: &mut Buf) {
    // SAFETY: the caller's promise.
    unsafe { buf.as_mut_ptr().cast::<F>().drop_in_place() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    /// Counts its drops, so a test sees each closure dropped exactly once.
    struct Counted(Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    #[test]
    fn the_value_fits_in_a_line_with_the_signal() {
        assert_eq!(size_of::<Option<HostFn>>(), 56);
    }

    #[test]
    fn small_and_large_closures_run_once_and_drop_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let runs = Arc::new(AtomicUsize::new(0));
        let small = Counted(Arc::clone(&drops));
        let large = (Counted(Arc::clone(&drops)), [7u64; 16]);
        assert!(fits::<Counted>() && !fits::<(Counted, [u64; 16])>());
        let (r1, r2) = (Arc::clone(&runs), Arc::clone(&runs));
        HostFn::new(move || {
            let _keep = &small;
            r1.fetch_add(1, SeqCst);
        })
        .call();
        HostFn::new(move || {
            let large = &large;
            assert_eq!(
                large.1.iter().sum::<u64>(),
                7 * 16,
                "the boxed capture arrives whole"
            );
            r2.fetch_add(1, SeqCst);
        })
        .call();
        assert_eq!((runs.load(SeqCst), drops.load(SeqCst)), (2, 2));
    }

    #[test]
    fn an_unrun_function_drops_its_captures() {
        let drops = Arc::new(AtomicUsize::new(0));
        let small = Counted(Arc::clone(&drops));
        let large = (Counted(Arc::clone(&drops)), [0u8; 100]);
        drop(HostFn::new(move || drop(small)));
        drop(HostFn::new(move || drop(large)));
        assert_eq!(drops.load(SeqCst), 2);
    }

    #[test]
    fn a_panicking_function_drops_its_captures_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let small = Counted(Arc::clone(&drops));
        let f = HostFn::new(move || {
            let _keep = &small;
            panic!("host function panics");
        });
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f.call()));
        assert!(r.is_err());
        assert_eq!(drops.load(SeqCst), 1);
    }
}
