//! The contract, once: every operation of the simulator at the C level of its arguments.
//!
//! Each function here takes what the C call takes — raw flag bits, buffer lengths, the bytes of
//! a key, a pid array, "the calling thread's current context" ([`Cx::Current`]) — and runs the
//! checks of R15 in their order, exactly once:
//!
//! 1. the caller (the C layer) has checked what only it can see, which R15 also checks first:
//!    not initialized (100001) and NULL pointers (100000). It resolves tokens to handles and
//!    passes the *result* of that lookup (`Result<&Handle>`), so that an invalid handle (107017)
//!    is reported here, after the context (107002);
//! 2. here: the fork guard (R17), the context (107002), the handles (107017), the stream's
//!    context (107003), virtualization (207000), arguments (107000, 107001);
//! 3. the registry, under its lock: permission, state, import resolution, capacity.
//!
//! The typed API ([`crate::SimRuntime`] and the rest) calls the same functions with arguments
//! that are valid by construction: [`Cx::Explicit`] instead of the thread's context, typed flags
//! as their bits. So `ascendcl-sim` and the Rust API cannot disagree about a rule.
//!
//! # Contexts (R13, C1)
//! A [`Context`] belongs to one device; each device has a default context per session, made
//! when it is first used. The C API's "current context" is per thread ([`set_device`],
//! [`set_current_context`]); streams are bound to the context current at their creation.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use notify_api::{
    EXPORT_KEY_LEN, Error, ExportFlags, ExportKey, ImportFlags, NotifyFlags, Result, err,
};

use crate::registry::policy::SimKey;
use crate::registry::{NotifyRef, Registry, SlotRef};
use crate::stream::StreamCore;
use crate::wake;

mod event;
mod memory;

pub use event::*;
pub use memory::*;

/// Fork generations (R17), for the C layer's own process-global state.
pub mod fork {
    pub use crate::fork::{PerProcess, generation, install};
}

// ---------------------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------------------

/// One attach of this process to a namespace (`aclInit`, or building a runtime).
#[derive(Debug)]
pub struct Session {
    id: u64,
    /// The fork generation it was attached in (R17).
    generation: u64,
    reg: Arc<Registry>,
    virtualized: bool,
    strict: bool,
    /// R7: (context device, peer device) pairs this process enabled.
    peers: Mutex<HashSet<(i32, i32)>>,
    /// C1: each device's default context, made at its first use.
    defaults: Mutex<HashMap<i32, Arc<Context>>>,
    /// Every stream of this session, by device (M6 waits for their tasks; S1 synchronizes a
    /// device's).
    streams: Mutex<Vec<(i32, std::sync::Weak<StreamCore>)>>,
    /// This process's device addresses and host allocations (M1).
    space: crate::memory::Space,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Sessions attached in this fork generation (R17: before the first, an inherited handle is
/// 100001; after, 107017).
static ATTACHED: fork::PerProcess<AtomicU64> = fork::PerProcess::new(|| AtomicU64::new(0));

impl Session {
    pub(crate) fn new(reg: Registry, virtualized: bool, strict: bool) -> Arc<Self> {
        fork::install();
        let reg = Arc::new(reg);
        crate::exit::detach_at_exit(&reg);
        crate::trace::start(reg.tgid());
        ATTACHED.get().fetch_add(1, Relaxed);
        Arc::new(Self {
            id: NEXT_ID.fetch_add(1, Relaxed),
            generation: fork::generation(),
            reg,
            virtualized,
            strict,
            peers: Mutex::default(),
            defaults: Mutex::default(),
            streams: Mutex::default(),
            space: crate::memory::Space::default(),
        })
    }

    /// This process's device addresses (the test kit's accessors read through it).
    #[cfg(feature = "testing")]
    pub(crate) fn space(&self) -> &crate::memory::Space {
        &self.space
    }

    /// A new stream core on `device`, tracked by the session.
    fn new_core(&self, device: i32) -> Arc<StreamCore> {
        let core = StreamCore::new(device);
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        streams.retain(|(_, w)| w.strong_count() > 0);
        streams.push((device, Arc::downgrade(&core)));
        core
    }

    /// The live streams of this session, of `device` or of all devices.
    fn cores(&self, device: Option<i32>) -> Vec<Arc<StreamCore>> {
        self.streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(d, _)| device.is_none_or(|want| *d == want))
            .filter_map(|(_, w)| w.upgrade())
            .collect()
    }

    /// M6: waits for every task this process queued.
    fn drain_all(&self) {
        for core in self.cores(None) {
            core.drain();
        }
    }

    /// S1: releases every allocation and import of this process on `device`.
    fn release_memory_of(&self, device: i32) {
        for core in self.cores(None) {
            core.drain();
        }
        for region in self.space.drain_device(device) {
            match &region.origin {
                crate::memory::Origin::Own(a) => {
                    let _ = self.reg.mem_free(*a, false);
                }
                crate::memory::Origin::Import { export, alloc, .. } => {
                    self.reg.mem_close_import(*export, *alloc);
                }
            }
        }
    }

    /// The namespace this session is attached to.
    pub fn namespace(&self) -> &str {
        self.reg.namespace()
    }

    /// Devices in the namespace (`aclrtGetDeviceCount`).
    pub fn device_count(&self) -> u32 {
        self.reg.devices()
    }

    /// Notifies per device (R11).
    pub fn capacity(&self) -> u32 {
        self.reg.capacity()
    }

    /// Processes the namespace admits at once (§4).
    pub fn max_processes(&self) -> u32 {
        self.reg.max_procs()
    }

    /// Device memory per device, in bytes (§4, M1).
    pub fn device_memory(&self) -> u64 {
        self.reg.device_memory()
    }

    /// Whether this process is configured as a virtualization instance (R12).
    pub fn is_virtualized(&self) -> bool {
        self.virtualized
    }

    /// Whether the hazards of §5 fail (`ASCEND_NOTIFY_SIM_STRICT=1`).
    pub fn is_strict(&self) -> bool {
        self.strict
    }

    /// R17: refuses a session inherited through a fork.
    #[inline]
    fn check(&self) -> Result<()> {
        if self.generation != fork::generation() {
            return Err(forked());
        }
        Ok(())
    }

    /// R13: `device` in `0..count`, or 107001.
    pub(crate) fn check_device(&self, device: i32) -> Result<u32> {
        let count = self.reg.devices();
        u32::try_from(device)
            .ok()
            .filter(|&d| d < count)
            .ok_or_else(|| err!(R13: RT_INVALID_DEVICEID, "device {device} is outside 0..{count}"))
    }

    fn check_virtual(&self, what: &str) -> Result<()> {
        if self.virtualized {
            return Err(err!(
                R12: RT_FEATURE_NOT_SUPPORT,
                "{what} is not supported in a virtualization instance"
            ));
        }
        Ok(())
    }

    fn peer_enabled(&self, from: i32, to: i32) -> bool {
        from == to
            || self
                .peers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(&(from, to))
    }

    fn enable_peer(&self, from: i32, to: i32) {
        self.peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((from, to));
    }

    /// The default context of `device` (in range).
    fn default_context(self: &Arc<Self>, device: i32) -> Arc<Context> {
        let mut defaults = self.defaults.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            defaults
                .entry(device)
                .or_insert_with(|| Context::new(self, device, true)),
        )
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.generation != fork::generation() {
            // R17: the parent's; leak it rather than touch what it shares.
            std::mem::forget(std::mem::take(
                &mut *self.defaults.lock().unwrap_or_else(PoisonError::into_inner),
            ));
            return;
        }
        for ctx in self
            .defaults
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
        {
            ctx.shutdown();
        }
        let _ = CURRENT.try_with(|c| c.borrow_mut().retain(|e| e.session != self.id));
    }
}

#[cold]
fn forked() -> Error {
    if ATTACHED.get().load(Relaxed) > 0 {
        err!(
            R17: RT_INVALID_HANDLE,
            "this handle was inherited through fork; it belongs to the parent process"
        )
    } else {
        err!(
            R17: UNINITIALIZE,
            "this process was forked from the one that attached; attach it itself (aclInit) first"
        )
    }
}

#[cold]
fn foreign(what: &str) -> Error {
    err!(R10: RT_INVALID_HANDLE, "the {what} belongs to another runtime instance")
}

// ---------------------------------------------------------------------------------------------
// Contexts
// ---------------------------------------------------------------------------------------------

/// A context: one device, the streams created under it, its default stream (C1).
#[derive(Debug)]
pub struct Context {
    id: u64,
    session: u64,
    device: i32,
    default: bool,
    destroyed: AtomicBool,
    default_stream: OnceLock<Arc<StreamCore>>,
}

static NEXT_CONTEXT: AtomicU64 = AtomicU64::new(1);

impl Context {
    fn new(session: &Session, device: i32, default: bool) -> Arc<Self> {
        Arc::new(Self {
            id: NEXT_CONTEXT.fetch_add(1, Relaxed),
            session: session.id,
            device,
            default,
            destroyed: AtomicBool::new(false),
            default_stream: OnceLock::new(),
        })
    }

    /// The device this context is on.
    pub fn device(&self) -> i32 {
        self.device
    }

    /// Whether this is its device's default context (C1).
    pub fn is_default(&self) -> bool {
        self.default
    }

    /// A number unique among the contexts of this process.
    pub fn id(&self) -> u64 {
        self.id
    }

    fn default_core(&self, s: &Session) -> &Arc<StreamCore> {
        self.default_stream.get_or_init(|| s.new_core(self.device))
    }

    fn shutdown(&self) {
        if let Some(core) = self.default_stream.get() {
            core.shutdown();
        }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        if let Some(core) = self.default_stream.get()
            && core.is_own()
        {
            core.shutdown();
        }
    }
}

/// Which context a call works in.
#[derive(Copy, Clone, Debug)]
pub enum Cx<'a> {
    /// The calling thread's current context (the C API, R13).
    Current,
    /// This one (the typed API: a device value binds itself).
    Explicit(&'a Arc<Context>),
}

struct Current {
    session: u64,
    generation: u64,
    ctx: Arc<Context>,
}

thread_local! {
    /// R13: the current context of this thread, per session. A short list, not a map: a
    /// thread rarely uses more than one session, and this lookup is on every C-ABI enqueue.
    static CURRENT: RefCell<Vec<Current>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with `cx` resolved: the explicit context, or the thread's current one (`None` when
/// the thread has none).
#[inline]
fn with_cx<R>(s: &Session, cx: Cx<'_>, f: impl FnOnce(Option<&Arc<Context>>) -> R) -> R {
    match cx {
        Cx::Explicit(ctx) => f(Some(ctx)),
        Cx::Current => with_current(s, f),
    }
}

/// Runs `f` with this thread's current context of `s`, borrowed (no reference count is
/// touched: this is on every C-ABI enqueue). `f` must not change the thread's context.
#[inline]
fn with_current<R>(s: &Session, f: impl FnOnce(Option<&Arc<Context>>) -> R) -> R {
    let generation = fork::generation();
    let mut f = Some(f);
    let result = CURRENT.try_with(|c| {
        if c.borrow().iter().any(|e| e.generation != generation) {
            forget_inherited(&mut c.borrow_mut(), generation);
        }
        let c = c.borrow();
        let ctx = c.iter().find(|e| e.session == s.id).map(|e| &e.ctx);
        (f.take().expect("runs once"))(ctx)
    });
    match result {
        Ok(r) => r,
        // The thread is being torn down: it has no context any more.
        Err(_) => (f.take().expect("not run"))(None),
    }
}

/// R17: entries inherited from the parent are forgotten, never dropped.
#[cold]
fn forget_inherited(c: &mut Vec<Current>, generation: u64) {
    let (keep, stale): (Vec<_>, Vec<_>) = std::mem::take(c)
        .into_iter()
        .partition(|e| e.generation == generation);
    std::mem::forget(stale);
    *c = keep;
}

/// R13: the context, or 107002.
#[inline]
fn need(ctx: Option<&Arc<Context>>) -> Result<&Arc<Context>> {
    ctx.ok_or_else(no_context)
}

#[cold]
fn no_context() -> Error {
    err!(
        R13: RT_CONTEXT_NULL,
        "no current context in this thread; call aclrtSetDevice or aclrtSetCurrentContext first"
    )
}

fn set_current(s: &Session, ctx: Option<Arc<Context>>) {
    let generation = fork::generation();
    let _ = CURRENT.try_with(|c| {
        let mut c = c.borrow_mut();
        forget_inherited(&mut c, generation);
        c.retain(|e| e.session != s.id || e.generation != generation);
        if let Some(ctx) = ctx {
            c.push(Current {
                session: s.id,
                generation,
                ctx,
            });
        }
    });
}

/// `aclrtGetDeviceCount`: the namespace's device count (§4), for a session of this process
/// (R17).
pub fn device_count(s: &Session) -> Result<u32> {
    s.check()?;
    Ok(s.device_count())
}

/// R13: 107001 unless `device` is in `0..count`.
pub fn check_device(s: &Session, device: i32) -> Result<()> {
    s.check()?;
    s.check_device(device).map(drop)
}

/// `aclrtSetDevice`: makes `device`'s default context current in this thread (R13, C1).
pub fn set_device(s: &Arc<Session>, device: i32) -> Result<()> {
    s.check()?;
    s.check_device(device)?;
    let ctx = s.default_context(device);
    set_current(s, Some(ctx));
    Ok(())
}

/// `aclrtResetDevice`: if this thread's current context is on `device`, the thread has none
/// afterwards (R13). The device's resources stay with the session (sim).
pub fn reset_device(s: &Session, device: i32) -> Result<()> {
    s.check()?;
    s.check_device(device)?;
    let generation = fork::generation();
    let _ = CURRENT.try_with(|c| {
        c.borrow_mut().retain(|e| {
            !(e.session == s.id && e.generation == generation && e.ctx.device == device)
        });
    });
    Ok(())
}

/// `aclrtGetDevice`: the device of this thread's current context (R13).
pub fn get_device(s: &Session) -> Result<i32> {
    s.check()?;
    with_current(s, |ctx| need(ctx).map(|c| c.device))
}

/// The default context of `device`, for the typed API's `Runtime::device` (R13: 107001 for an
/// id outside `0..count`).
pub fn device_context(s: &Arc<Session>, device: i32) -> Result<Arc<Context>> {
    s.check()?;
    s.check_device(device)?;
    Ok(s.default_context(device))
}

/// `aclrtCreateContext`: a new context on `device`, made current in this thread (C1).
pub fn create_context(s: &Arc<Session>, device: i32) -> Result<Arc<Context>> {
    s.check()?;
    s.check_device(device)?;
    let ctx = Context::new(s, device, false);
    set_current(s, Some(Arc::clone(&ctx)));
    Ok(ctx)
}

/// A new context on `device` for the typed API: not made current anywhere, destroyed when its
/// last `Arc` goes (C1).
pub fn new_context(s: &Arc<Session>, device: i32) -> Result<Arc<Context>> {
    s.check()?;
    s.check_device(device)?;
    Ok(Context::new(s, device, false))
}

/// `aclrtDestroyContext`: destroys a created context; the default one cannot be (C1).
pub fn destroy_context(s: &Session, ctx: Result<&Arc<Context>>) -> Result<()> {
    s.check()?;
    let ctx = ctx?;
    check_context(s, ctx)?;
    if ctx.default {
        return Err(err!(
            C1: RT_PARAM_INVALID,
            "the default context of device {} cannot be destroyed",
            ctx.device
        ));
    }
    ctx.destroyed.store(true, SeqCst);
    ctx.shutdown();
    let generation = fork::generation();
    let _ = CURRENT.try_with(|c| {
        c.borrow_mut()
            .retain(|e| !(e.session == s.id && e.generation == generation && e.ctx.id == ctx.id));
    });
    Ok(())
}

/// `aclrtSetCurrentContext` (C1).
pub fn set_current_context(s: &Session, ctx: Result<&Arc<Context>>) -> Result<()> {
    s.check()?;
    let ctx = ctx?;
    check_context(s, ctx)?;
    set_current(s, Some(Arc::clone(ctx)));
    Ok(())
}

/// `aclrtGetCurrentContext` (C1): 107002 when the thread has none.
pub fn get_current_context(s: &Session) -> Result<Arc<Context>> {
    s.check()?;
    with_current(s, |ctx| need(ctx).cloned())
}

/// R10, C1: a context of this session that was not destroyed.
fn check_context(s: &Session, ctx: &Context) -> Result<()> {
    if ctx.session != s.id {
        return Err(foreign("context"));
    }
    if ctx.destroyed.load(SeqCst) {
        return Err(err!(C1: RT_INVALID_HANDLE, "the context was destroyed"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Devices
// ---------------------------------------------------------------------------------------------

/// `aclrtDeviceGetBareTgid`: this process's bare tgid (R16).
pub fn bare_tgid(s: &Session) -> Result<i32> {
    s.check()?;
    Ok(s.reg.tgid())
}

/// `aclrtDeviceCanAccessPeer` (R7; sim: any two distinct valid devices can).
pub fn can_access_peer(s: &Session, device: i32, peer: i32) -> Result<bool> {
    s.check()?;
    s.check_device(device)?;
    s.check_device(peer)?;
    if device == peer {
        return Err(err!(R7: RT_PARAM_INVALID, "a device cannot be its own peer ({device})"));
    }
    Ok(true)
}

/// `aclrtDeviceEnablePeerAccess`: from the context's device to `peer`, for this process (R7).
/// Order: context → flags → device id → the pair.
pub fn enable_peer_access(s: &Session, cx: Cx<'_>, peer: i32, flags: u32) -> Result<()> {
    s.check()?;
    let current = with_cx(s, cx, |ctx| need(ctx).map(|c| c.device))?;
    if flags != 0 {
        return Err(err!(R7: RT_PARAM_INVALID, "peer access flags must be 0, not {flags:#x}"));
    }
    s.check_device(peer)?;
    if peer == current {
        return Err(err!(
            R7: RT_PARAM_INVALID,
            "device {current} cannot enable peer access to itself"
        ));
    }
    s.enable_peer(current, peer);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------

/// A stream: an in-order executor bound to the context it was created in (R2, R13).
#[derive(Debug)]
pub struct StreamHandle {
    session: u64,
    ctx: Arc<Context>,
    core: Arc<StreamCore>,
    /// A default stream is never destroyed through a handle.
    owned: bool,
}

impl StreamHandle {
    /// The device of the stream's context.
    pub fn device(&self) -> i32 {
        self.ctx.device
    }

    /// The context the stream is bound to.
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// Whether this is a context's default stream.
    pub fn is_default(&self) -> bool {
        !self.owned
    }

    /// S1: destroys the stream's queue at once (a running wait is abandoned, queued tasks are
    /// dropped); the handle itself stays until dropped.
    pub fn force_shutdown(&self) {
        if self.core.is_own() {
            self.core.force_shutdown();
        }
    }
}

impl Drop for StreamHandle {
    fn drop(&mut self) {
        if self.owned && self.core.is_own() {
            self.core.shutdown();
        }
    }
}

/// A stream argument as C passes it: NULL (the current context's default stream), or a handle
/// lookup's result.
#[derive(Debug)]
pub enum StreamArg<'a> {
    /// NULL: the default stream of the context current in the call.
    Default,
    /// A handle, or why the caller could not resolve it (107017).
    Handle(Result<&'a StreamHandle>),
}

/// The stream a call enqueues on, with the R15 checks up to 107003.
#[inline]
fn enqueue_stream<'a>(
    s: &Session,
    ctx: &'a Arc<Context>,
    stream: &StreamArg<'a>,
) -> Result<(&'a Context, &'a Arc<StreamCore>)> {
    match stream {
        StreamArg::Default => Ok((ctx, ctx.default_core(s))),
        StreamArg::Handle(h) => {
            let h = got(h)?;
            if h.session != s.id {
                return Err(foreign("stream"));
            }
            if !Arc::ptr_eq(&h.ctx, ctx) {
                return Err(wrong_context(h, ctx));
            }
            Ok((ctx, &h.core))
        }
    }
}

/// A handle lookup, by reference. A `Result` as large as an [`Error`] that is moved (into a
/// closure, into a callee) is copied with wide loads over the narrow stores that wrote it, a
/// store-forwarding stall that doubled the cost of a record; the error is cloned on the cold
/// path only.
#[inline(always)]
fn got<'a, T>(r: &Result<&'a T>) -> Result<&'a T> {
    match r {
        Ok(v) => Ok(*v),
        Err(e) => Err(e.clone()),
    }
}

#[cold]
fn wrong_context(stream: &StreamHandle, ctx: &Context) -> Error {
    if stream.ctx.destroyed.load(SeqCst) {
        return err!(C1: RT_INVALID_HANDLE, "the stream's context was destroyed");
    }
    if stream.ctx.device != ctx.device {
        err!(
            R13: RT_STREAM_CONTEXT,
            "the stream belongs to device {}, the current device is {}",
            stream.ctx.device,
            ctx.device
        )
    } else {
        err!(
            C1: RT_STREAM_CONTEXT,
            "the stream belongs to another context of device {}",
            ctx.device
        )
    }
}

/// `aclrtCreateStream`: a stream bound to the context (R13).
pub fn create_stream(s: &Arc<Session>, cx: Cx<'_>) -> Result<StreamHandle> {
    s.check()?;
    with_cx(s, cx, |ctx| {
        let ctx = need(ctx)?;
        check_context(s, ctx)?;
        Ok(StreamHandle {
            session: s.id,
            core: s.new_core(ctx.device),
            ctx: Arc::clone(ctx),
            owned: true,
        })
    })
}

/// The context's default stream, as a handle that does not destroy it (the typed API).
pub fn default_stream(s: &Session, ctx: &Arc<Context>) -> Result<StreamHandle> {
    s.check()?;
    check_context(s, ctx)?;
    Ok(StreamHandle {
        session: s.id,
        core: Arc::clone(ctx.default_core(s)),
        ctx: Arc::clone(ctx),
        owned: false,
    })
}

/// `aclrtDestroyStream`: the handle is gone; tasks already enqueued still run (R2).
pub fn destroy_stream(s: &Session, stream: StreamHandle) -> Result<()> {
    s.check()?;
    // C1: destroying a context destroyed its streams; the handle is released all the same.
    let dead = stream.ctx.destroyed.load(SeqCst);
    drop(stream);
    if dead {
        return Err(err!(C1: RT_INVALID_HANDLE, "the stream's context was destroyed"));
    }
    Ok(())
}

/// `aclrtSynchronizeStream` and `aclrtSynchronizeStreamWithTimeout` (`timeout_ms` `None` for
/// the first; `-1` is forever): waits for every task enqueued before this call and reports
/// their first failure (R2). Works from any context of the process (C1); NULL is the current
/// context's default stream.
pub fn synchronize(
    s: &Session,
    cx: Cx<'_>,
    stream: StreamArg<'_>,
    timeout_ms: Option<i32>,
) -> Result<()> {
    s.check()?;
    let core = sync_core(s, cx, &stream)?;
    core.synchronize(sync_deadline(timeout_ms)?)
}

/// [`synchronize`] in two steps, for a caller that resolves its handles under a lock it must
/// not hold while blocking (the C layer's per-thread cache): every check runs here, in the
/// same order; [`Synchronize::run`] blocks. The prepared synchronize holds only the stream's
/// core, which is all the blocking part touches: a destroy of the handle meanwhile (R8: its
/// tasks still run) or an `aclFinalize` does not pull anything from under it.
///
/// # Errors
/// As [`synchronize`], short of what its tasks report.
pub fn prepare_synchronize(
    s: &Session,
    cx: Cx<'_>,
    stream: StreamArg<'_>,
    timeout_ms: Option<i32>,
) -> Result<Synchronize> {
    s.check()?;
    let core = sync_core(s, cx, &stream)?.into_owned();
    Ok(Synchronize {
        core,
        deadline: sync_deadline(timeout_ms)?,
    })
}

/// A synchronize whose checks have passed ([`prepare_synchronize`]).
#[must_use = "a prepared synchronize waits only when run"]
#[derive(Debug)]
pub struct Synchronize {
    core: Arc<StreamCore>,
    deadline: Option<Instant>,
}

impl Synchronize {
    /// Waits for every task enqueued before [`prepare_synchronize`] and reports their first
    /// failure (R2).
    ///
    /// # Errors
    /// The first task failure, or 507046 when the deadline passed first.
    pub fn run(self) -> Result<()> {
        self.core.synchronize(self.deadline)
    }
}

/// R2: a synchronize timeout in milliseconds (`-1` or `None`: forever) as a deadline.
fn sync_deadline(timeout_ms: Option<i32>) -> Result<Option<Instant>> {
    match timeout_ms {
        None | Some(-1) => Ok(None),
        Some(ms) if ms >= 0 => Ok(Some(Instant::now() + Duration::from_millis(ms as u64))),
        Some(ms) => Err(err!(
            R2: RT_PARAM_INVALID,
            "synchronize timeout {ms} ms is invalid (use -1 to wait forever, or >= 0)"
        )),
    }
}

/// The stream a synchronize or query concerns: the caller's handle's own core, borrowed (a
/// reference count taken and dropped on every synchronize was measurable), or the default
/// stream's, which lives in the context and is cloned out of its lock.
fn sync_core<'a>(
    s: &Session,
    cx: Cx<'_>,
    stream: &StreamArg<'a>,
) -> Result<std::borrow::Cow<'a, Arc<StreamCore>>> {
    use std::borrow::Cow;
    match stream {
        StreamArg::Default => with_cx(s, cx, |ctx| {
            Ok(Cow::Owned(Arc::clone(need(ctx)?.default_core(s))))
        }),
        StreamArg::Handle(h) => {
            let h = got(h)?;
            if h.session != s.id {
                return Err(foreign("stream"));
            }
            if h.ctx.destroyed.load(SeqCst) {
                return Err(err!(C1: RT_INVALID_HANDLE, "the stream's context was destroyed"));
            }
            Ok(Cow::Borrowed(&h.core))
        }
    }
}

/// The async form of [`synchronize`] for the typed API.
pub fn synchronize_async(
    s: &Session,
    stream: &StreamHandle,
) -> Result<impl std::future::Future<Output = Result<()>> + Send + 'static> {
    s.check()?;
    Ok(stream.core.synchronize_async())
}

// ---------------------------------------------------------------------------------------------
// Notifies
// ---------------------------------------------------------------------------------------------

/// A notify handle of this process: one reference (R8).
#[derive(Debug)]
pub struct NotifyHandle {
    session: Arc<Session>,
    inner: Arc<NotifyRef>,
    creator: bool,
    alive: AtomicBool,
}

impl NotifyHandle {
    fn new(session: &Arc<Session>, slot: SlotRef, creator: bool) -> Self {
        Self {
            session: Arc::clone(session),
            inner: Arc::new(NotifyRef::new(Arc::clone(&session.reg), slot)),
            creator,
            alive: AtomicBool::new(true),
        }
    }

    /// The device the notify lives on.
    pub fn device(&self) -> i32 {
        self.inner.slot_ref().device as i32
    }

    /// The notify's id (`aclrtGetNotifyId`).
    pub fn id(&self) -> u32 {
        self.inner.slot_ref().index
    }

    /// Whether this process created the notify.
    pub fn is_creator(&self) -> bool {
        self.creator
    }

    #[inline]
    fn check(&self, s: &Session) -> Result<()> {
        if self.session.id != s.id {
            return Err(foreign("notify"));
        }
        Ok(())
    }

    fn release(&self) {
        if !self.alive.swap(false, SeqCst) || !self.session.reg.is_own() {
            return;
        }
        // With no task holding a clone, drop the reference in the same critical section
        // instead of taking the registry lock twice.
        let last = Arc::strong_count(&self.inner) == 1;
        self.session
            .reg
            .handle_destroyed(self.inner.slot_ref(), self.creator, last);
        if last {
            self.inner.mark_released();
        }
    }
}

impl Drop for NotifyHandle {
    fn drop(&mut self) {
        self.release();
    }
}

/// `aclrtCreateNotify`: context → flag bits → capacity (R11, R15).
pub fn create_notify(s: &Arc<Session>, cx: Cx<'_>, flag: u64) -> Result<NotifyHandle> {
    s.check()?;
    let device = with_cx(s, cx, |ctx| need(ctx).map(|c| c.device))?;
    let flags = NotifyFlags::from_raw(flag)?;
    let slot = s.reg.create(device as u32, flags.bits() as u32)?;
    Ok(NotifyHandle::new(s, slot, true))
}

/// `aclrtDestroyNotify`: the handle is dead at once; enqueued tasks keep their reference; the
/// creator's destroy revokes the key (R8).
pub fn destroy_notify(s: &Session, notify: NotifyHandle) -> Result<()> {
    s.check()?;
    notify.check(s)?;
    notify.release();
    Ok(())
}

/// `aclrtRecordNotify`: context → handles → stream context (R1, R2, R4, R13, R15).
#[inline]
pub fn record(
    s: &Session,
    cx: Cx<'_>,
    notify: Result<&NotifyHandle>,
    stream: StreamArg<'_>,
) -> Result<()> {
    s.check()?;
    with_cx(s, cx, |ctx| {
        let ctx = need(ctx)?;
        let notify = got(&notify)?;
        notify.check(s)?;
        let (_, core) = enqueue_stream(s, ctx, &stream)?;
        core.record(&notify.inner)
    })
}

/// `aclrtWaitAndResetNotify`: context → handles → stream context → R4 (107000).
pub fn wait(
    s: &Session,
    cx: Cx<'_>,
    notify: Result<&NotifyHandle>,
    stream: StreamArg<'_>,
    timeout_s: u32,
) -> Result<()> {
    s.check()?;
    with_cx(s, cx, |ctx| {
        let ctx = need(ctx)?;
        let notify = got(&notify)?;
        notify.check(s)?;
        let (ctx, core) = enqueue_stream(s, ctx, &stream)?;
        if !notify.creator {
            return Err(err!(
                R4: RT_PARAM_INVALID,
                "only the creating process may wait on this notify"
            ));
        }
        let device = notify.device();
        if device != ctx.device {
            return Err(err!(
                R4: RT_PARAM_INVALID,
                "the notify lives on device {device}; a wait on device {} is rejected",
                ctx.device
            ));
        }
        core.wait(&notify.inner, timeout_s)
    })
}

/// `aclrtGetNotifyId` (R10).
pub fn notify_id(s: &Session, notify: Result<&NotifyHandle>) -> Result<u32> {
    s.check()?;
    let notify = notify?;
    notify.check(s)?;
    Ok(notify.id())
}

/// `aclrtNotifyBatchReset`: `num == 0` (107000) → every handle valid (107017) → all flags
/// cleared (R1). `notifies[i]` failures name their index.
pub fn batch_reset(s: &Session, notifies: &[Result<&NotifyHandle>]) -> Result<()> {
    s.check()?;
    if notifies.is_empty() {
        return Err(err!(R1: RT_PARAM_INVALID, "batch reset of zero notifies"));
    }
    let mut held = Vec::with_capacity(notifies.len());
    for (i, n) in notifies.iter().enumerate() {
        let n = n
            .as_ref()
            .map_err(|e| e.clone().with_context(format_args!("notifies[{i}]")))?;
        n.check(s)
            .map_err(|e| e.with_context(format_args!("notifies[{i}]")))?;
        held.push(*n);
    }
    for n in held {
        wake::reset(n.inner.slot());
    }
    Ok(())
}

/// `aclrtNotifyGetExportKey`: handle → virtualization → flag bits → `len` → state (R5, R15).
pub fn export(
    s: &Session,
    notify: Result<&NotifyHandle>,
    flags: u64,
    buf_len: usize,
) -> Result<ExportKey> {
    s.check()?;
    let notify = notify?;
    notify.check(s)?;
    s.check_virtual("exporting an IPC notify")?;
    let flags = ExportFlags::from_raw(flags)?;
    if buf_len < EXPORT_KEY_LEN {
        return Err(err!(
            R5: RT_PARAM_INVALID,
            "key buffer length {buf_len} is below the minimum {EXPORT_KEY_LEN}"
        ));
    }
    s.reg
        .export(notify.inner.slot_ref(), notify.creator, flags.bits() as u32)
}

/// `aclrtNotifyImportByKey`: context → virtualization → flag bits → key format → the
/// registry's import resolution (R7, R15). `key` is what the caller's C string holds: its bytes
/// up to and including the NUL, or the first 65 bytes when there is none.
pub fn import(s: &Arc<Session>, cx: Cx<'_>, key: &[u8], flags: u64) -> Result<NotifyHandle> {
    s.check()?;
    let current = with_cx(s, cx, |ctx| need(ctx).map(|c| c.device))?;
    s.check_virtual("importing an IPC notify")?;
    let flags = ImportFlags::from_raw(flags)?;
    let key = SimKey::decode(&ExportKey::from_c_buf(key)?)?;
    let enable = flags.contains(ImportFlags::ENABLE_PEER_ACCESS);
    let peer_ok = |device: u32| enable || s.peer_enabled(current, device as i32);
    let slot = s.reg.import(&key, peer_ok)?;
    if enable && slot.device as i32 != current {
        s.enable_peer(current, slot.device as i32);
    }
    Ok(NotifyHandle::new(s, slot, false))
}

/// `aclrtNotifySetImportPid`: handle → virtualization → `num` and the pid's value → the
/// registry's permission and state checks (R6, R15). `pid` is the array's only element when
/// `num == 1` (the driver takes exactly one pid per call, so no other count is read).
pub fn set_import_pid(
    s: &Session,
    notify: Result<&NotifyHandle>,
    num: usize,
    pid: i32,
) -> Result<()> {
    s.check()?;
    let notify = notify?;
    notify.check(s)?;
    s.check_virtual("setting an import whitelist")?;
    match num {
        0 => return Err(err!(R6: RT_PARAM_INVALID, "the pid list is empty (num == 0)")),
        1 => {}
        more => {
            return Err(err!(
                R6: RT_PARAM_INVALID,
                "num is {more}: the driver takes exactly one pid per call"
            ));
        }
    }
    if pid < 0 {
        return Err(err!(R6: RT_PARAM_INVALID, "{pid} is not a process id"));
    }
    s.reg
        .set_import_pid(notify.inner.slot_ref(), notify.creator, pid)
}
