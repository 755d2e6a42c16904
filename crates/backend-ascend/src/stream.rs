//! [`AscendStream`]: the queue verbs (record, wait, copies, sets, host functions, events,
//! synchronize) and the future of its asynchronous synchronize.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use notify_api::{DeviceRange, Download, Result, Timeout, err};

use crate::device::AscendDevice;
use crate::event::AscendEvent;
use crate::notify::AscendNotify;
use crate::result;
use crate::runtime::Ascend;
use crate::sys::aclrtStream;

/// A stream of the Ascend runtime: an owned `aclrtStream` on one device, or that device's
/// default stream (a NULL `aclrtStream`, which is never destroyed).
///
/// It keeps its [`AscendDevice`] alive, and every call binds that device to the calling thread
/// first, so it works from any thread. Dropping it destroys it (after its tasks finish, as
/// `aclrtDestroyStream` does) and ignores the error; [`notify_api::Stream::destroy`] reports it.
#[derive(Debug)]
pub struct AscendStream {
    /// Shared with the helper threads of [`notify_api::Stream::synchronize_async`], so that the
    /// stream outlives every helper that uses it.
    inner: Arc<StreamInner>,
}

#[derive(Debug)]
struct StreamInner {
    // Declared first, dropped first: the stream is destroyed while its device is retained
    // (the handle holds the retain too; this keeps the value `device()` returns).
    handle: result::Stream,
    device: AscendDevice,
    /// The helpers that still hold a reference to this inner.
    helpers: Arc<Helpers>,
}

/// How many `synchronize_async` helpers still use a stream, so that `destroy` can wait for
/// them. Kept apart from the stream (its own `Arc`), so that a helper can signal after it has
/// let go of its reference to the stream.
#[derive(Debug, Default)]
struct Helpers {
    running: Mutex<usize>,
    done: Condvar,
}

impl Helpers {
    fn start(&self) {
        *self.running.lock().unwrap_or_else(PoisonError::into_inner) += 1;
    }

    fn finish(&self) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        *running = running.saturating_sub(1);
        self.done.notify_all();
    }

    /// Blocks until every helper has let go of the stream.
    fn wait_idle(&self) {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let _idle = self
            .done
            .wait_while(running, |running| *running > 0)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

impl AscendStream {
    pub(crate) fn new(device: AscendDevice, handle: result::Stream) -> Self {
        Self {
            inner: Arc::new(StreamInner {
                handle,
                device,
                helpers: Arc::default(),
            }),
        }
    }

    /// The raw `aclrtStream` (NULL for a default stream). It stays valid while `self` lives;
    /// NULL means the default stream of whatever context is current, so bind the device first
    /// ([`AscendDevice::bind_to_thread`]) before passing it to C yourself.
    pub fn as_raw(&self) -> aclrtStream {
        self.inner.handle.as_raw()
    }

    /// Whether this is a default stream (a NULL handle).
    pub fn is_default(&self) -> bool {
        self.inner.handle.is_default()
    }

    /// Starts `synchronize` on a helper thread and returns the future of its result.
    fn spawn_synchronize(&self) -> Result<SyncFuture> {
        let slot = Arc::new(SyncSlot::default());
        let done = Arc::clone(&slot);
        let inner = Arc::clone(&self.inner);
        let helpers = Arc::clone(&self.inner.helpers);
        // Counted here, before the helper exists, so that a `destroy` after this call (the
        // future dropped before it completed) always sees it.
        helpers.start();
        let spawned = std::thread::Builder::new()
            .name("ascend-notify-sync".into())
            .spawn({
                let helpers = Arc::clone(&helpers);
                move || {
                    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        // Binds the stream's device to this helper thread itself.
                        let synced = result::synchronize_stream(&inner.handle);
                        // Let go of the stream before saying so: if its owner dropped it
                        // meanwhile, this destroys it here; if it is destroying it, it waits for
                        // the `finish` below and then owns the stream alone.
                        drop(inner);
                        synced
                    }));
                    helpers.finish();
                    done.complete(outcome.unwrap_or_else(|_| {
                        Err(err!(
                            RT_INTERNAL_ERROR,
                            "the synchronize_async helper thread panicked"
                        ))
                    }));
                }
            });
        if let Err(e) = spawned {
            helpers.finish();
            return Err(err!(
                RT_INTERNAL_ERROR,
                "synchronize_async could not start its helper thread: {e}"
            ));
        }
        Ok(SyncFuture { slot })
    }
}

#[async_trait::async_trait]
impl notify_api::Stream for AscendStream {
    type Backend = Ascend;

    fn device(&self) -> &AscendDevice {
        &self.inner.device
    }

    #[inline]
    fn record(&self, notify: &AscendNotify) -> Result<()> {
        result::record_notify(notify.handle(), &self.inner.handle)
    }

    fn wait(&self, notify: &AscendNotify, timeout: impl Into<Timeout>) -> Result<()> {
        result::wait_and_reset_notify(
            notify.handle(),
            &self.inner.handle,
            timeout.into().as_c_secs(),
        )
    }

    fn synchronize(&self) -> Result<()> {
        result::synchronize_stream(&self.inner.handle)
    }

    fn synchronize_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        result::synchronize_stream_with_timeout(&self.inner.handle, timeout)
    }

    /// Runs `aclrtSynchronizeStream` on a helper `std::thread` (which binds the stream's device
    /// and synchronizes) and completes when it returns. Dropping the future does not stop the
    /// helper; the stream is destroyed only after the helper is done with it.
    async fn synchronize_async(&self) -> Result<()> {
        self.spawn_synchronize()?.await
    }

    fn is_complete(&self) -> Result<bool> {
        result::stream_query(&self.inner.handle)
    }

    /// `aclrtMemcpyAsync`, device to device. Both ranges are checked against the memory this
    /// backend handed out (allocations and imports) before the runtime is called (M2).
    fn copy(&self, dst: DeviceRange<'_>, src: DeviceRange<'_>) -> Result<()> {
        result::copy_d2d_async(&self.inner.handle, dst, src)
    }

    /// `aclrtMemcpyAsync`, host to device, then a host function that drops `src`: the stream
    /// owns the bytes until the copy ran. If that host function cannot be enqueued, the error is
    /// returned, the copy still runs, and `src` is leaked rather than freed under it.
    fn copy_from_host(
        &self,
        dst: DeviceRange<'_>,
        src: impl AsRef<[u8]> + Send + 'static,
    ) -> Result<()> {
        result::copy_h2d_async(&self.inner.handle, dst, src)
    }

    /// `aclrtMemcpyAsync`, device to host, into a new buffer, then a host function that sends the
    /// buffer to the returned [`Download`]. If that host function cannot be enqueued, the error
    /// is returned and the buffer is leaked rather than freed under the pending copy.
    fn copy_to_host(&self, src: DeviceRange<'_>) -> Result<Download> {
        result::copy_d2h_async(&self.inner.handle, src).map(Download::new)
    }

    /// `aclrtMemsetAsync`; `dst` is checked as in `copy`.
    fn memset(&self, dst: DeviceRange<'_>, value: u8) -> Result<()> {
        result::memset_async(&self.inner.handle, dst, value)
    }

    /// `aclrtLaunchHostFunc` with a trampoline that runs `f` under `catch_unwind`, so a panic
    /// never unwinds into the runtime: it fails this stream's next synchronize (or its device's)
    /// with 507000 instead. If the launch fails, `f` is dropped without running.
    fn launch_host_fn(&self, f: impl FnOnce() + Send + 'static) -> Result<()> {
        result::launch_host_func(&self.inner.handle, Box::new(f))
    }

    /// `aclrtRecordEvent`.
    ///
    /// # Errors
    /// Also `RT_INVALID_HANDLE` (107017, R10) for an event of another loaded library.
    fn record_event(&self, event: &AscendEvent) -> Result<()> {
        result::record_event(event.handle(), &self.inner.handle)
    }

    /// `aclrtStreamWaitEvent`.
    ///
    /// # Errors
    /// Also `RT_INVALID_HANDLE` (107017, R10) for an event of another loaded library.
    fn wait_event(&self, event: &AscendEvent) -> Result<()> {
        result::stream_wait_event(&self.inner.handle, event.handle())
    }

    /// `aclrtResetEvent`.
    ///
    /// # Errors
    /// Also `RT_INVALID_HANDLE` (107017, R10) for an event of another loaded library.
    fn reset_event(&self, event: &AscendEvent) -> Result<()> {
        result::reset_event(event.handle(), &self.inner.handle)
    }

    /// Destroys an owned stream and reports the error; a default stream is left alone (the
    /// runtime owns it: `Ok(())`, documented on the trait).
    ///
    /// If the future of a `synchronize_async` was dropped before it completed, its helper thread
    /// still synchronizes this stream; `destroy` waits for it to finish (it would wait for the
    /// same tasks anyway) and then destroys the stream itself, so the result is always that of
    /// `aclrtDestroyStream`.
    fn destroy(self) -> Result<()> {
        let helpers = Arc::clone(&self.inner.helpers);
        helpers.wait_idle();
        match Arc::try_unwrap(self.inner) {
            Ok(inner) => result::destroy_stream(inner.handle),
            // Not reachable: `AscendStream` is not `Clone`, and every helper drops its reference
            // before it reports itself finished. Should it happen, say so rather than claim a
            // destroy that did not happen; the last reference destroys the stream on its drop.
            Err(_still_shared) => Err(err!(
                RT_INTERNAL_ERROR,
                "the stream is still used by a synchronize_async helper; it will be destroyed \
                 when that helper lets go of it"
            )),
        }
    }
}

/// Where the helper thread leaves the result and the future finds it.
#[derive(Default)]
struct SyncSlot {
    state: Mutex<SyncState>,
}

#[derive(Default)]
struct SyncState {
    result: Option<Result<()>>,
    waker: Option<Waker>,
}

impl SyncSlot {
    fn complete(&self, result: Result<()>) {
        let waker = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.result = Some(result);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The future of one `synchronize_async`: ready when the helper thread has stored the result.
struct SyncFuture {
    slot: Arc<SyncSlot>,
}

impl Future for SyncFuture {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let mut state = self
            .slot
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(result) = state.result.take() {
            return Poll::Ready(result);
        }
        // Keep the waker we have unless the task moved: cloning one on every poll would cost an
        // allocation or a reference count each time, for nothing.
        match &mut state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify_api::AclError;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn future_is_pending_until_completed_and_wakes_once() {
        let slot = Arc::new(SyncSlot::default());
        let mut future = SyncFuture {
            slot: Arc::clone(&slot),
        };
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&counter));
        let mut cx = Context::from_waker(&waker);

        assert!(Pin::new(&mut future).poll(&mut cx).is_pending());
        assert!(Pin::new(&mut future).poll(&mut cx).is_pending());
        assert_eq!(counter.0.load(Ordering::SeqCst), 0);

        slot.complete(Err(err!(RT_WAIT_TIMEOUT, "R3: expired")));
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        match Pin::new(&mut future).poll(&mut cx) {
            Poll::Ready(Err(e)) => assert_eq!(e.code(), AclError::RT_WAIT_TIMEOUT),
            other => panic!("expected the stored error, got {other:?}"),
        }
    }

    #[test]
    fn polling_again_with_the_same_waker_keeps_the_stored_one() {
        let slot = Arc::new(SyncSlot::default());
        let mut future = SyncFuture {
            slot: Arc::clone(&slot),
        };
        let first = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&first));
        let mut cx = Context::from_waker(&waker);
        // `first` is held by the test, by `waker`, and then by the one clone the future keeps.
        for _ in 0..5 {
            assert!(Pin::new(&mut future).poll(&mut cx).is_pending());
            assert_eq!(Arc::strong_count(&first), 3, "a new waker was stored");
        }

        // A poll from another task replaces it: the old clone is let go, the new one is woken.
        let second = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let other = Waker::from(Arc::clone(&second));
        assert!(
            Pin::new(&mut future)
                .poll(&mut Context::from_waker(&other))
                .is_pending()
        );
        assert_eq!(Arc::strong_count(&first), 2);
        slot.complete(Ok(()));
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn completion_from_another_thread_before_the_first_poll() {
        let slot = Arc::new(SyncSlot::default());
        let done = Arc::clone(&slot);
        std::thread::spawn(move || done.complete(Ok(())))
            .join()
            .unwrap();
        let mut future = SyncFuture { slot };
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(
            Pin::new(&mut future).poll(&mut cx),
            Poll::Ready(Ok(()))
        ));
    }
}
