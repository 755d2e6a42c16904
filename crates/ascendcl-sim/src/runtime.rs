//! The process-wide state between `aclInit` and `aclFinalize`.
//!
//! Most calls take the session with [`get`] (a read lock and an `Arc` clone). The hot calls
//! (record, wait, synchronize) go through `cache` instead, which keeps the session in a per-thread
//! cache checked against [`epoch`]; `aclFinalize` empties every such cache before it returns.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use backend_sim::{SimBackend, SimNotify, SimStream};
use notify_api::{Backend, Result, err};

use crate::cache;
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
    /// The value of [`epoch`] while this session is the current one.
    pub(crate) epoch: u64,
}

/// The current session. Calls clone the `Arc` and release the lock at once, so a long call
/// (a synchronize) never blocks `aclFinalize`; the session's objects go when the last call
/// that uses them returns.
static RUNTIME: RwLock<Option<Arc<Runtime>>> = RwLock::new(None);

/// The previous session's tag, so a new session never reuses it.
static LAST_TAG: AtomicU32 = AtomicU32::new(0);

/// Bumped by every `aclInit` and every `aclFinalize` (under the write lock of [`RUNTIME`]): a
/// session cached by a thread is still the current one iff its `epoch` equals this.
static EPOCH: AtomicU64 = AtomicU64::new(0);

/// Serializes `aclInit` and `aclFinalize` (never taken by the other calls), so that a new session
/// never starts while a finalize is still emptying the per-thread caches.
static LIFECYCLE: Mutex<()> = Mutex::new(());

/// The current session's epoch (see [`EPOCH`]).
#[inline]
pub(crate) fn epoch() -> u64 {
    EPOCH.load(Ordering::SeqCst)
}

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
    let _lifecycle = LIFECYCLE.lock().unwrap_or_else(PoisonError::into_inner);
    let mut slot = RUNTIME.write().unwrap_or_else(PoisonError::into_inner);
    if slot.is_some() {
        return Err(err!(
            REPEAT_INITIALIZE,
            "R15: aclInit was already called in this process (call aclFinalize first)"
        ));
    }
    let tag = fresh_tag()?;
    let backend = SimBackend::from_env()?;
    let epoch = EPOCH.fetch_add(1, Ordering::SeqCst) + 1;
    *slot = Some(Arc::new(Runtime {
        notifies: Table::new(tag, Kind::Notify),
        streams: Table::new(tag, Kind::Stream),
        backend,
        epoch,
    }));
    Ok(())
}

/// `aclFinalize`: kills every handle of the session and drops what this process holds; the
/// backend detaches when the last in-flight call (if any) returns.
pub(crate) fn finalize() -> Result<()> {
    let _lifecycle = LIFECYCLE.lock().unwrap_or_else(PoisonError::into_inner);
    let rt = {
        let mut slot = RUNTIME.write().unwrap_or_else(PoisonError::into_inner);
        let rt = slot
            .take()
            .ok_or_else(|| err!(UNINITIALIZE, "R15: aclFinalize without a matching aclInit"))?;
        // From here on no thread takes this session from a cache (its epoch is stale) nor from
        // `RUNTIME` (it is gone).
        EPOCH.fetch_add(1, Ordering::SeqCst);
        rt
    };
    // Empty every thread's cache (waiting for a hot call in progress, which is short: none of
    // them blocks while it holds its cache), so the caches keep nothing of this session alive.
    let cached = cache::purge_all();
    // Notifies first (each destroy revokes or releases its reference, R8), then streams (their
    // workers finish what is queued, R2), then the backend with the `Arc`.
    drop(cached.notifies);
    drop(rt.notifies.close());
    drop(cached.streams);
    drop(rt.streams.close());
    drop(cached.runtimes);
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

impl Runtime {
    /// R13: this thread's current device, or 107002.
    pub(crate) fn current_device(&self) -> Result<i32> {
        self.backend.current_device().map(|d| d.0)
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
