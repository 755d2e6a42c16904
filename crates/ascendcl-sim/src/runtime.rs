//! The process-wide state between `aclInit` and `aclFinalize`.

use std::ffi::c_void;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use backend_sim::{SimBackend, SimNotify, SimStream};
use notify_api::{Backend, Result, Stream, err};

use crate::handles::{Kind, Table};

/// One `aclInit` session: the attached simulator and the handles C holds.
///
/// Field order is drop order: handles go before the backend, so the process detaches (and the
/// last process out removes the namespace) once they are released.
#[derive(Debug)]
pub(crate) struct Runtime {
    pub(crate) notifies: Table<SimNotify>,
    pub(crate) streams: Table<SimStream>,
    pub(crate) backend: SimBackend,
}

/// The current session. Calls clone the `Arc` and release the lock at once, so a long call
/// (a synchronize) never blocks `aclFinalize`; the session's objects go when the last call
/// that uses them returns.
static RUNTIME: RwLock<Option<Arc<Runtime>>> = RwLock::new(None);

/// The previous session's tag, so a new session never reuses it.
static LAST_TAG: AtomicU32 = AtomicU32::new(0);

/// The current session, or 100001 (R15: the first check of every call).
pub(crate) fn get() -> Result<Arc<Runtime>> {
    RUNTIME
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
        .ok_or_else(|| {
            err!(
                UNINITIALIZE,
                "R15: the runtime is not initialized (call aclInit first; aclFinalize ends it)"
            )
        })
}

/// `aclInit`: attaches this process to the simulator namespace named by the environment.
pub(crate) fn init() -> Result<()> {
    let mut slot = RUNTIME.write().unwrap_or_else(PoisonError::into_inner);
    if slot.is_some() {
        return Err(err!(
            REPEAT_INITIALIZE,
            "R15: aclInit was already called in this process (call aclFinalize first)"
        ));
    }
    let tag = fresh_tag()?;
    let backend = SimBackend::from_env()?;
    *slot = Some(Arc::new(Runtime {
        notifies: Table::new(tag, Kind::Notify),
        streams: Table::new(tag, Kind::Stream),
        backend,
    }));
    Ok(())
}

/// `aclFinalize`: kills every handle of the session and drops what this process holds; the
/// backend detaches when the last in-flight call (if any) returns.
pub(crate) fn finalize() -> Result<()> {
    let rt = RUNTIME
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .ok_or_else(|| err!(UNINITIALIZE, "R15: aclFinalize without a matching aclInit"))?;
    // Notifies first (each destroy revokes or releases its reference, R8), then streams (their
    // workers finish what is queued, R2), then the backend with the `Arc`.
    drop(rt.notifies.close());
    drop(rt.streams.close());
    drop(rt);
    Ok(())
}

/// 32 random bits, never 0 (so no token is NULL) and never the previous session's tag.
fn fresh_tag() -> Result<u32> {
    let previous = LAST_TAG.load(Ordering::Relaxed);
    loop {
        let tag = getrandom::u32().map_err(|e| err!(RT_INTERNAL_ERROR, "no OS randomness: {e}"))?;
        if tag != 0 && tag != previous {
            LAST_TAG.store(tag, Ordering::Relaxed);
            return Ok(tag);
        }
    }
}

/// A stream argument resolved: a handle of the table, or the device's default stream (NULL).
#[derive(Debug)]
pub(crate) enum StreamArg {
    Handle(Arc<SimStream>),
    Default(SimStream),
}

impl std::ops::Deref for StreamArg {
    type Target = SimStream;

    fn deref(&self) -> &SimStream {
        match self {
            Self::Handle(s) => s,
            Self::Default(s) => s,
        }
    }
}

impl Runtime {
    /// R13: this thread's current device, or 107002.
    pub(crate) fn current_device(&self) -> Result<i32> {
        self.backend.current_device().map(|d| d.0)
    }

    /// A stream handle, or for NULL the current device's default stream (107002 without one).
    pub(crate) fn stream(&self, stream: *mut c_void) -> Result<StreamArg> {
        if stream.is_null() {
            self.backend.default_stream().map(StreamArg::Default)
        } else {
            self.streams.get(stream).map(StreamArg::Handle)
        }
    }

    /// R13: an enqueue must use a stream of the current device (107003).
    pub(crate) fn check_stream_device(&self, stream: &SimStream, current: i32) -> Result<()> {
        let device = stream.device().0;
        if device != current {
            return Err(err!(
                RT_STREAM_CONTEXT,
                "R13: the stream belongs to device {device}, the current device is {current}"
            ));
        }
        Ok(())
    }

    /// R12: IPC calls are refused in a virtualization instance (207000).
    pub(crate) fn check_virtual(&self, what: &str) -> Result<()> {
        if self.backend.is_virtualized() {
            return Err(err!(
                RT_FEATURE_NOT_SUPPORT,
                "R12: {what} is not supported in a virtualization instance"
            ));
        }
        Ok(())
    }
}
