//! The safe stream: [`AscendStream`] and the future of its asynchronous synchronize.

use std::future::Future;
use std::pin::Pin;
use std::ptr;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use notify_api::{DeviceId, Result, err};

use crate::backend::{AscendBackend, Session};
use crate::result;
use crate::sys::aclrtStream;

/// A stream of the Ascend runtime: an owned `aclrtStream`, or the default stream of a device
/// (a NULL `aclrtStream`, which is never destroyed).
///
/// `Send` and `Sync`; see the crate docs.
#[derive(Debug)]
pub struct AscendStream {
    /// Shared with the helper threads of [`notify_api::Stream::synchronize_async`], so that a
    /// stream is destroyed only when no helper uses it any more.
    inner: Arc<StreamInner>,
}

#[derive(Debug)]
struct StreamInner {
    session: Arc<Session>,
    /// NULL for a default stream.
    raw: aclrtStream,
    device: DeviceId,
    /// Whether `aclrtDestroyStream` is ours to call (false for a default stream, and after an
    /// explicit destroy).
    owned: bool,
}

// SAFETY: the handle is an opaque token of the runtime, not memory this process reads. The
// runtime lets a stream be used from any thread once a device is set in that thread (the current
// device is per thread; using the stream under another device is the reported error 107003, not
// UB), and its calls are thread-safe. The handle is destroyed exactly once, by the last owner.
unsafe impl Send for StreamInner {}
// SAFETY: as for `Send`; every method takes `&self` and only passes the handle to thread-safe
// runtime calls.
unsafe impl Sync for StreamInner {}

impl StreamInner {
    /// Destroys an owned stream once; later calls and the drop do nothing.
    fn destroy_once(&mut self) -> Result<()> {
        if !self.owned {
            return Ok(());
        }
        self.owned = false;
        // SAFETY: `raw` is a non-NULL stream this session created (only owned streams get
        // here), not yet destroyed (`owned` was still set), and nobody else can use it: this is
        // the last reference (`&mut` through the last `Arc`, or the drop). The session is alive.
        unsafe { result::destroy_stream(&self.session.lib, self.raw) }
    }

    fn synchronize(&self) -> Result<()> {
        // SAFETY: `raw` is NULL (the default stream) or a stream of this session not yet
        // destroyed: destroying needs the last reference, and `&self` is one.
        unsafe { result::synchronize_stream(&self.session.lib, self.raw) }
    }
}

impl Drop for StreamInner {
    fn drop(&mut self) {
        let _ = self.destroy_once();
    }
}

impl AscendStream {
    /// `aclrtCreateStream` on the current device, recording that device (`aclrtGetDevice`).
    pub(crate) fn create(session: &Arc<Session>) -> Result<Self> {
        let raw = result::create_stream(&session.lib)?;
        let mut inner = StreamInner {
            session: Arc::clone(session),
            raw,
            device: DeviceId(-1),
            owned: true,
        };
        // If this fails, dropping `inner` destroys the new stream.
        inner.device = DeviceId(result::get_device(&session.lib)?);
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The current device's default stream: a NULL handle, never destroyed.
    pub(crate) fn default_of_current(session: &Arc<Session>) -> Result<Self> {
        let device = DeviceId(result::get_device(&session.lib)?);
        Ok(Self {
            inner: Arc::new(StreamInner {
                session: Arc::clone(session),
                raw: ptr::null_mut(),
                device,
                owned: false,
            }),
        })
    }

    /// The raw `aclrtStream` (NULL for a default stream). It stays valid while `self` lives.
    pub fn as_raw(&self) -> aclrtStream {
        self.inner.raw
    }

    /// Whether this is a default stream (a NULL handle).
    pub fn is_default(&self) -> bool {
        self.inner.raw.is_null()
    }

    pub(crate) fn session(&self) -> &Arc<Session> {
        &self.inner.session
    }

    /// Starts `synchronize` on a helper thread and returns the future of its result.
    fn spawn_synchronize(&self) -> Result<SyncFuture> {
        let slot = Arc::new(SyncSlot::default());
        let done = Arc::clone(&slot);
        let inner = Arc::clone(&self.inner);
        std::thread::Builder::new()
            .name("ascend-notify-sync".into())
            .spawn(move || {
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let session = Arc::clone(&inner.session);
                    let device = inner.device.raw();
                    // The current device is per thread: this helper must set the stream's own.
                    result::set_device(&session.lib, device)?;
                    let synced = inner.synchronize();
                    // Let go of the stream before leaving the device: if its owner dropped it
                    // meanwhile, this destroys it here, with the device still set.
                    drop(inner);
                    // Balance the set_device above (the runtime counts them per device).
                    let _ = result::reset_device(&session.lib, device);
                    synced
                }));
                done.complete(outcome.unwrap_or_else(|_| {
                    Err(err!(
                        RT_INTERNAL_ERROR,
                        "the synchronize_async helper thread panicked"
                    ))
                }));
            })
            .map_err(|e| {
                err!(
                    RT_INTERNAL_ERROR,
                    "synchronize_async could not start its helper thread: {e}"
                )
            })?;
        Ok(SyncFuture { slot })
    }
}

#[async_trait::async_trait]
impl notify_api::Stream for AscendStream {
    type Backend = AscendBackend;

    fn device(&self) -> DeviceId {
        self.inner.device
    }

    fn synchronize(&self) -> Result<()> {
        self.inner.synchronize()
    }

    fn synchronize_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        // SAFETY: as in `StreamInner::synchronize`: NULL or a live stream of this session.
        unsafe {
            result::synchronize_stream_with_timeout(
                &self.inner.session.lib,
                self.inner.raw,
                timeout,
            )
        }
    }

    /// Runs `aclrtSynchronizeStream` on a helper `std::thread` (which sets the stream's device,
    /// synchronizes, and resets the device again) and completes when it returns. Dropping the
    /// future does not stop the helper; the stream is destroyed only after the helper is done
    /// with it.
    async fn synchronize_async(&self) -> Result<()> {
        self.spawn_synchronize()?.await
    }

    /// Destroys an owned stream and reports the error; a default stream is left alone. If an
    /// abandoned `synchronize_async` helper still uses the stream, the helper destroys it when
    /// it is done and this returns `Ok(())`.
    fn destroy(self) -> Result<()> {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => inner.destroy_once(),
            Err(_still_shared) => Ok(()),
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
