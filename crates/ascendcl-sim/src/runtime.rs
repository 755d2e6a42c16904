//! The process-wide state between `aclInit` and `aclFinalize`.
//!
//! Most calls take the session with [`get`] (a read lock and an `Arc` clone). The hot calls
//! (record, wait, synchronize) go through `cache` instead, which keeps the session in a per-thread
//! cache checked against [`epoch`]; `aclFinalize` empties every such cache before it returns.
//!
//! R17: all of it is per fork generation (`PerProcess`), so a forked child starts with no
//! session (100001 until its own `aclInit`) and never touches a lock a parent thread held at the
//! fork; the parent's session is leaked in the child, never dropped.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use backend_sim::SimBuilder;
use backend_sim::raw::fork::PerProcess;
use backend_sim::raw::{Context, EventHandle, NotifyHandle, Session, StreamHandle};
use notify_api::{Result, err};

use crate::cache;
use crate::handles::{Kind, Table};

/// One `aclInit` session: the attached simulator and the handles C holds.
///
/// Field order is drop order: handles go before the session, so the process detaches (and the
/// last process out removes the namespace) once they are released.
#[derive(Debug)]
pub(crate) struct Runtime {
    pub(crate) notifies: Table<NotifyHandle>,
    pub(crate) streams: Table<StreamHandle>,
    pub(crate) events: Table<EventHandle>,
    pub(crate) contexts: Table<Arc<Context>>,
    /// The token of each context handed to C, so one context always reads as one token.
    context_tokens: Mutex<HashMap<u64, usize>>,
    pub(crate) session: Arc<Session>,
    /// The value of [`epoch`] while this session is the current one.
    pub(crate) epoch: u64,
}

/// The process-global state of this library, per fork generation.
#[derive(Default)]
struct Globals {
    /// The current session. Calls clone the `Arc` and release the lock at once, so a long call
    /// (a synchronize) never blocks `aclFinalize`; the session's objects go when the last call
    /// that uses them returns.
    runtime: RwLock<Option<Arc<Runtime>>>,
    /// Serializes `aclInit` and `aclFinalize` (never taken by the other calls), so that a new
    /// session never starts while a finalize is still emptying the per-thread caches.
    lifecycle: Mutex<()>,
}

static GLOBALS: PerProcess<Globals> = PerProcess::new(Globals::default);

/// The previous session's tag, so a new session never reuses it.
static LAST_TAG: AtomicU32 = AtomicU32::new(0);

/// Bumped by every `aclInit` and every `aclFinalize` (under the write lock of the runtime): a
/// session cached by a thread is still the current one iff its `epoch` equals this.
static EPOCH: AtomicU64 = AtomicU64::new(0);

/// The current session's epoch (see [`EPOCH`]).
#[inline]
pub(crate) fn epoch() -> u64 {
    EPOCH.load(Ordering::SeqCst)
}

#[cold]
fn uninitialized() -> notify_api::Error {
    err!(
        R15: UNINITIALIZE,
        "the runtime is not initialized (call aclInit first; aclFinalize ends it)"
    )
}

/// The current session, or 100001 (R15: the first check of every call).
pub(crate) fn get() -> Result<Arc<Runtime>> {
    GLOBALS
        .get()
        .runtime
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
        .ok_or_else(uninitialized)
}

/// `aclInit`: attaches this process to the simulator namespace named by the environment.
pub(crate) fn init() -> Result<()> {
    let globals = GLOBALS.get();
    let _lifecycle = globals
        .lifecycle
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let mut slot = globals
        .runtime
        .write()
        .unwrap_or_else(PoisonError::into_inner);
    if slot.is_some() {
        return Err(err!(
            R15: REPEAT_INITIALIZE,
            "aclInit was already called in this process (call aclFinalize first)"
        ));
    }
    let tag = fresh_tag()?;
    let session = SimBuilder::default().attach()?;
    let epoch = EPOCH.fetch_add(1, Ordering::SeqCst) + 1;
    *slot = Some(Arc::new(Runtime {
        notifies: Table::new(tag, Kind::Notify),
        streams: Table::new(tag, Kind::Stream),
        events: Table::new(tag, Kind::Event),
        contexts: Table::new(tag, Kind::Context),
        context_tokens: Mutex::default(),
        session,
        epoch,
    }));
    Ok(())
}

/// `aclFinalize`: kills every handle of the session and drops what this process holds; the
/// session detaches when the last in-flight call (if any) returns.
pub(crate) fn finalize() -> Result<()> {
    let globals = GLOBALS.get();
    let _lifecycle = globals
        .lifecycle
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let rt = {
        let mut slot = globals
            .runtime
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let rt = slot
            .take()
            .ok_or_else(|| err!(R15: UNINITIALIZE, "aclFinalize without a matching aclInit"))?;
        // From here on no thread takes this session from a cache (its epoch is stale) nor from
        // the runtime slot (it is gone).
        EPOCH.fetch_add(1, Ordering::SeqCst);
        rt
    };
    // Empty every thread's cache (waiting for a hot call in progress, which is short: none of
    // them blocks while it holds its cache), so the caches keep nothing of this session alive.
    let cached = cache::purge_all();
    // Notifies first (each destroy revokes or releases its reference, R8), then streams (their
    // workers finish what is queued, R2), then the session with the `Arc`.
    drop(cached.notifies);
    drop(rt.notifies.close());
    drop(cached.streams);
    drop(rt.streams.close());
    drop(rt.events.close());
    drop(rt.contexts.close());
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
    /// The C handle of `ctx`: the same token every time for the same context.
    pub(crate) fn context_token(&self, ctx: Arc<Context>) -> Result<*mut c_void> {
        let mut tokens = self
            .context_tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(&token) = tokens.get(&ctx.id()) {
            let handle = std::ptr::without_provenance_mut(token);
            if self.contexts.get(handle).is_ok() {
                return Ok(handle);
            }
        }
        let id = ctx.id();
        let handle = self.contexts.insert(ctx)?;
        tokens.insert(id, handle.addr());
        Ok(handle)
    }

    /// Forgets the token of a destroyed context.
    pub(crate) fn forget_context(&self, ctx: &Context) {
        self.context_tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&ctx.id());
    }
}

/// `raw`'s view of a handle lookup: the handle, or why the token is not one (107017).
pub(crate) fn lookup<T>(looked_up: &Result<Arc<T>>) -> Result<&T> {
    looked_up.as_deref().map_err(Clone::clone)
}
