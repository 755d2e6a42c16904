//! `aclrtLaunchHostFunc` with a Rust closure: the trampoline, and the panic flags that make a
//! panicking host function fail its stream's next synchronize (H1).

use std::cell::Cell;
use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use notify_api::{Result, err};

use super::{BOUND, Retain, Stream, check, unbind_thread};

/// Whether a host function of one stream panicked since that stream (or its device) was last
/// synchronized (H1). One per owned stream, one per context for its default stream.
#[derive(Debug)]
pub(crate) struct PanicFlag {
    device: i32,
    panicked: AtomicBool,
}

impl PanicFlag {
    fn set(&self) {
        self.panicked.store(true, Ordering::SeqCst);
    }

    /// Takes the flag: `true` once after a panic.
    fn take(&self) -> bool {
        self.panicked.swap(false, Ordering::SeqCst)
    }

    /// `Err(507000)` once after a panic, else `Ok`.
    pub(crate) fn report(&self) -> Result<()> {
        if self.take() {
            return Err(panicked());
        }
        Ok(())
    }
}

#[cold]
fn panicked() -> notify_api::Error {
    err!(H1: RT_INTERNAL_ERROR, "a host function of this stream panicked")
}

/// Every panic flag of a session, so that `aclrtSynchronizeDevice` can report those of its
/// device's streams.
#[derive(Debug, Default)]
pub(crate) struct Panics {
    flags: Mutex<Vec<Weak<PanicFlag>>>,
}

impl Panics {
    /// A new flag for a stream of `device`, registered here. Flags of dropped streams are pruned
    /// on the way, so the list does not grow with the streams a program ever made.
    pub(crate) fn register(&self, device: i32) -> Arc<PanicFlag> {
        let flag = Arc::new(PanicFlag {
            device,
            panicked: AtomicBool::new(false),
        });
        let mut flags = self.flags.lock().unwrap_or_else(PoisonError::into_inner);
        flags.retain(|f| f.strong_count() > 0);
        flags.push(Arc::downgrade(&flag));
        flag
    }

    /// Takes the flags of every stream of `device`: `Err(507000)` if any was set.
    pub(crate) fn report_device(&self, device: i32) -> Result<()> {
        let flags = self.flags.lock().unwrap_or_else(PoisonError::into_inner);
        let mut any = false;
        for flag in flags.iter().filter_map(Weak::upgrade) {
            if flag.device == device {
                any |= flag.take();
            }
        }
        if any {
            return Err(err!(
                H1: RT_INTERNAL_ERROR,
                "a host function of a stream of device {device} panicked"
            ));
        }
        Ok(())
    }
}

thread_local! {
    /// How many host functions of this crate the calling thread is running (nested calls are
    /// possible only through foreign code, but counted all the same). Const-initialized, no
    /// destructor: usable while other thread-locals are torn down.
    static IN_HOST_FN: Cell<u32> = const { Cell::new(0) };
}

/// Whether the calling thread is running a host function launched by [`launch_host_func`].
///
/// Such a thread must not wait for its own stream (H1): a release of device memory from there
/// ([`super::free`], [`super::ipc_mem_close_import`]) hands its synchronize-then-free to a
/// helper thread instead.
pub fn in_host_fn() -> bool {
    IN_HOST_FN.try_with(Cell::get).unwrap_or(0) > 0
}

/// What the trampoline gets as `args`: the closure, where to report a panic, and the stream's
/// context to leave current.
struct HostCall {
    f: Box<dyn FnOnce() + Send + 'static>,
    panics: Arc<PanicFlag>,
    /// The stream's context, weakly: a queued host function does not keep a device retained
    /// (if it never runs, nothing leaks beyond the call itself).
    retain: Weak<Retain>,
}

/// The one `aclrtHostFunc` of this crate: `args` is a `Box<HostCall>` from [`launch_host_func`],
/// which this call takes back, runs and drops. Nothing unwinds out of it.
unsafe extern "C" fn trampoline(args: *mut c_void) {
    if args.is_null() {
        return;
    }
    // SAFETY: `args` is the pointer `launch_host_func` made with `Box::into_raw` and gave to
    // the runtime, which calls the host function once per launch (H1); the box is taken back
    // exactly here, so it is neither used nor freed elsewhere.
    let call = unsafe { Box::from_raw(args.cast::<HostCall>()) };
    // Nothing below may unwind into C: the closure runs under `catch_unwind`, and so does the
    // bookkeeping around it (which does not panic, but the guarantee should not depend on it).
    let outcome = catch_unwind(AssertUnwindSafe(move || run(*call)));
    if let Err(payload) = outcome {
        // Dropping a panic payload may panic again; leak it rather than unwind.
        std::mem::forget(payload);
    }
}

fn run(call: HostCall) {
    let HostCall { f, panics, retain } = call;
    let _ = IN_HOST_FN.try_with(|depth| depth.set(depth.get() + 1));
    // The runtime made the stream's context current on this thread (M2); the binding cache of
    // this thread knows nothing of that, so the closure's first call binds explicitly.
    unbind_thread();
    if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
        panics.set();
        if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
            std::mem::forget(again);
        }
    }
    // If the closure bound another context, leave the stream's current again, as the runtime
    // left it, and forget the binding either way: the next host function on this runtime
    // thread may be another stream's.
    if BOUND.try_with(Cell::get).unwrap_or(0) != 0
        && let Some(retain) = retain.upgrade()
    {
        let _ = retain.bind_now();
    }
    unbind_thread();
    let _ = IN_HOST_FN.try_with(|depth| depth.set(depth.get().saturating_sub(1)));
}

/// `aclrtLaunchHostFunc(stream, trampoline, args)` with the stream's context bound: `f` runs on a
/// runtime thread when the stream reaches it (H1).
///
/// `f` is boxed with the stream's panic flag and handed to the runtime as `args`; the trampoline
/// takes ownership back, runs `f` under `catch_unwind` and drops it there. A panic sets the
/// stream's flag: its next synchronize (or its device's) fails with 507000. If the launch fails,
/// `f` is dropped here without running; if the runtime never runs the task (a stream torn
/// down by force), the box and `f` are leaked, never freed twice.
///
/// # Errors
/// The runtime's code.
pub fn launch_host_func(stream: &Stream, f: Box<dyn FnOnce() + Send + 'static>) -> Result<()> {
    stream.retain.bind()?;
    let call = Box::into_raw(Box::new(HostCall {
        f,
        panics: Arc::clone(&stream.panics),
        retain: Arc::downgrade(&stream.retain),
    }));
    // SAFETY: `stream.raw` is NULL (the bound context's default stream) or a live stream made
    // under `stream.retain` (as in `synchronize_stream`); `trampoline` has the `aclrtHostFunc`
    // signature and accepts exactly the `args` made here, which stay valid until it takes them.
    let code = unsafe {
        (stream.retain.lib().aclrtLaunchHostFunc)(stream.raw, Some(trampoline), call.cast())
    };
    if let Err(e) = check(stream.retain.lib(), code, "aclrtLaunchHostFunc") {
        // SAFETY: the runtime refused the launch, so it enqueued nothing and will never call the
        // trampoline with `call` (a failing call changes nothing, §2): the box is still ours.
        drop(unsafe { Box::from_raw(call) });
        return Err(e);
    }
    Ok(())
}
