//! The fast path of the hot calls (`aclrtRecordNotify`, `aclrtWaitAndResetNotify`,
//! `aclrtSynchronizeStream[WithTimeout]`): a per-thread cache of the session and of the last
//! [`WAYS`] notify and stream handles used.
//!
//! Without it, each of those calls takes the global session lock and clones its `Arc`, then
//! locks each handle table and clones the handle's `Arc` (a dozen atomic read-modify-writes).
//! With it, a call that uses the same handles as the previous call of its thread takes one
//! uncontended lock (its own cache's) and reads three counters.
//!
//! A cache resolves tokens only; what a token's absence means (107017) and where that stands
//! among the other checks (R15) is `backend_sim::raw`'s business, so a lookup passes its
//! `Result` on.
//!
//! # What makes a cached value usable
//! - **The session**: its `epoch` equals [`runtime::epoch`], which `aclInit` and `aclFinalize`
//!   bump. Otherwise the call takes the session from `runtime::get` (100001 if there is none),
//!   and forgets everything else it had cached.
//! - **A handle**: the token is the one passed, and the table's generation (bumped by every
//!   `remove` and by `close`, `handles::Table::generation`) is still the one read at the lookup
//!   that filled the cache. Any destroy in the table since then makes the entry miss, so the
//!   token is validated by the table again (R10: a destroyed, foreign or garbage token is 107017,
//!   whether or not this thread used it before, and whichever thread destroyed it).
//! - **Everything, after a fork** (R17): a cache made in another fork generation is forgotten
//!   whole (never dropped: it holds the parent's handles) and registered anew.
//!
//! # Why a cache never keeps a destroyed object alive
//! A cached handle holds a strong `Arc`, and R8 wants a destroy to release the notify at once
//! (the creator's destroy revokes the key), not whenever the caching thread calls again. So:
//! - a hot call holds its thread's cache lock from before its lookups until after it is done
//!   with the objects; it never blocks meanwhile (record and wait only enqueue; synchronize takes
//!   its own clone of the stream and blocks only after releasing the lock);
//! - `aclrtDestroyNotify`/`aclrtDestroyStream` remove the token from the table (bumping the
//!   generation), then [`forget_notify`]/[`forget_stream`] take it out of every thread's cache,
//!   locking a cache only when one of its hints says it may hold that token, and only then drop the
//!   table's `Arc`. Taking the lock waits for a hot call in progress with that handle (where the
//!   `Arc` clone of the slow path would have deferred the release until that call returns), so
//!   when the destroy returns the notify is released (unless a non-cached call, e.g.
//!   `aclrtGetNotifyId`, is in progress with it in another thread, as before);
//! - a call that misses publishes the token in the hint of the way it fills *before* it looks
//!   the token up in the table (and an entry is only ever stored under its own token's hint).
//!   If that lookup finds the handle, it took the table's lock before the destroy's removal
//!   did, so the hint store happens-before the destroyer's read of the hint, which therefore
//!   sees it (or a later value of the owner's, written once the entry is gone) and waits for the
//!   call. If the lookup comes after the removal, it fails (107017) and nothing is cached;
//! - as a second line of defence, a call re-reads the generation at its end and drops any entry
//!   whose table changed since its lookup, under its lock (a destroyer waiting for the lock must
//!   find the reference gone);
//! - `aclFinalize` bumps the epoch, then empties every cache ([`purge_all`]) before it closes
//!   the tables and drops the session, so after it returns no cache holds anything of it (the
//!   backend detaches as before, R9 and §4 "Attach and detach").
//!
//! The caches of all threads are listed (weakly) in [`CACHES`]; a thread's cache goes with the
//! thread. Nothing here is `unsafe`.

use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use backend_sim::raw::fork::{self, PerProcess};
use backend_sim::raw::{NotifyHandle, StreamArg, StreamHandle};
use notify_api::Result;

use crate::handles::{Table, raw};
use crate::runtime::{self, Runtime};

/// How many handles of each kind a thread keeps. Two notifies cover the usual exchange, where a
/// thread waits on its own notify and records its peer's (with one entry, every call of a
/// ping-pong missed); two streams, a thread that sends on one stream and receives on another.
const WAYS: usize = 2;

/// One thread's cache.
#[derive(Debug, Default)]
struct ThreadCache {
    /// The token of each entry of `State::notifies` (0 when empty, never a token), readable
    /// without the lock so that a destroy locks only the caches that may hold its handle.
    /// Written under the lock.
    notify_hints: Hints,
    /// The same for `State::streams`.
    stream_hints: Hints,
    /// The fork generation this cache was registered in (R17).
    generation: AtomicU64,
    state: Mutex<State>,
}

type Hints = [AtomicU64; WAYS];

#[derive(Debug, Default)]
struct State {
    runtime: Option<Arc<Runtime>>,
    notifies: Ways<NotifyHandle>,
    streams: Ways<StreamHandle>,
}

/// The entries of one kind of handle, way `i` announced by hint `i`.
#[derive(Debug)]
struct Ways<T> {
    entries: [Option<Entry<T>>; WAYS],
    /// The way of the last hit or fill; a fill replaces the least recently used way.
    recent: usize,
}

impl<T> Default for Ways<T> {
    fn default() -> Self {
        Self {
            entries: std::array::from_fn(|_| None),
            recent: 0,
        }
    }
}

impl<T> Ways<T> {
    /// Whether any entry is `token`'s (live or stale).
    #[cfg(test)]
    fn holds(&self, token: u64) -> bool {
        self.entries.iter().flatten().any(|e| e.token == token)
    }
}

fn clear(hints: &Hints) {
    for hint in hints {
        hint.store(0, SeqCst);
    }
}

/// A handle that was live at `generation` of its table.
#[derive(Debug)]
struct Entry<T> {
    token: u64,
    generation: u64,
    value: Arc<T>,
}

/// Every thread's cache, so that destroy and finalize can reach them (per fork generation).
static CACHES: PerProcess<Mutex<Vec<Weak<ThreadCache>>>> = PerProcess::new(Mutex::default);

thread_local! {
    static LOCAL: Arc<ThreadCache> = register(Arc::new(ThreadCache::default()));
}

fn register(cache: Arc<ThreadCache>) -> Arc<ThreadCache> {
    cache.generation.store(fork::generation(), SeqCst);
    let mut all = CACHES.get().lock().unwrap_or_else(PoisonError::into_inner);
    all.retain(|c| c.strong_count() > 0);
    all.push(Arc::downgrade(&cache));
    cache
}

/// R17: this thread's cache came through a fork: forget what it holds (the parent's handles,
/// never to be dropped here) and list it in this generation.
#[cold]
#[inline(never)]
fn adopt_after_fork(cache: &Arc<ThreadCache>) {
    let mut state = cache.state.lock().unwrap_or_else(PoisonError::into_inner);
    std::mem::forget(std::mem::take(&mut *state));
    clear(&cache.notify_hints);
    clear(&cache.stream_hints);
    drop(state);
    register(Arc::clone(cache));
}

/// The caches of the live threads.
fn all_caches() -> Vec<Arc<ThreadCache>> {
    CACHES
        .get()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter_map(Weak::upgrade)
        .collect()
}

impl ThreadCache {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| {
            // A hot call panicked with the lock held (the boundary turned it into 507000). Every
            // field is replaced whole, so the state is consistent; start over anyway.
            let mut state = poisoned.into_inner();
            *state = State::default();
            clear(&self.notify_hints);
            clear(&self.stream_hints);
            self.state.clear_poison();
            state
        })
    }
}

/// The objects of one hot call, valid while it holds its thread's cache lock.
#[derive(Debug)]
pub(crate) struct Hot<'a> {
    /// The current session.
    pub(crate) rt: &'a Runtime,
    notify: Cached<'a, NotifyHandle>,
    stream: Cached<'a, StreamHandle>,
}

/// The handle entries of one kind in the cache.
#[derive(Debug)]
struct Cached<'a, T> {
    ways: &'a mut Ways<T>,
    hints: &'a Hints,
}

impl<'a, T> Cached<'a, T> {
    /// The object behind `handle`: a cached one if it is still valid (see the module docs),
    /// else `table`'s (107017 unless live), which is then cached.
    #[inline(always)]
    fn get(self, table: &Table<T>, handle: *mut c_void) -> Result<&'a Arc<T>> {
        let token = raw(handle);
        let generation = table.generation();
        // The most recent way first: a thread that repeats a call hits it at once.
        match (0..WAYS)
            .map(|k| (self.ways.recent + k) % WAYS)
            .find(|&way| {
                self.ways.entries[way]
                    .as_ref()
                    .is_some_and(|e| e.token == token && e.generation == generation)
            }) {
            Some(way) => {
                self.ways.recent = way;
                Ok(&self.ways.entries[way].as_ref().expect("a hit").value)
            }
            None => self.fill(table, handle),
        }
    }

    #[cold]
    #[inline(never)]
    fn fill(self, table: &Table<T>, handle: *mut c_void) -> Result<&'a Arc<T>> {
        let token = raw(handle);
        // An empty way if there is one, else the least recently used.
        let way = (0..WAYS)
            .find(|&way| self.ways.entries[way].is_none())
            .unwrap_or((self.ways.recent + 1) % WAYS);
        self.ways.recent = way;
        let entry = &mut self.ways.entries[way];
        // The previous entry goes first, so a hint never names a token other than its entry's
        // while there is one (a destroy of the old token then finds nothing to miss).
        let previous = entry.take();
        // Announced before the lookup (see the module docs): if the lookup comes before a
        // removal of `token`, the table's lock orders this store before the destroyer's load.
        self.hints[way].store(token, SeqCst);
        drop(previous);
        let (value, generation) = table.get_at(handle)?;
        let entry = entry.insert(Entry {
            token,
            generation,
            value,
        });
        Ok(&entry.value)
    }
}

impl<'a> Hot<'a> {
    /// The notify (non-NULL: the caller checked) and stream arguments of a record or wait, as
    /// lookups for `raw` to check in R15 order.
    #[inline(always)]
    pub(crate) fn enqueue_args(
        self,
        notify: *mut c_void,
        stream: *mut c_void,
    ) -> (Result<&'a NotifyHandle>, StreamArg<'a>) {
        let Self {
            rt,
            notify: notify_slot,
            stream: stream_slot,
        } = self;
        let n = notify_slot.get(&rt.notifies, notify).map(|n| &**n);
        let s = if stream.is_null() {
            StreamArg::Default
        } else {
            StreamArg::Handle(stream_slot.get(&rt.streams, stream).map(|s| &**s))
        };
        (n, s)
    }

    /// The stream argument of an enqueue, as a lookup for `raw`.
    #[inline(always)]
    pub(crate) fn stream_arg(self, stream: *mut c_void) -> StreamArg<'a> {
        if stream.is_null() {
            StreamArg::Default
        } else {
            StreamArg::Handle(self.stream.get(&self.rt.streams, stream).map(|s| &**s))
        }
    }
}

/// Runs one hot call with this thread's cache locked: the session first (100001 without one),
/// then `call`. The lock is held until `call` returns, so `call` must not block.
#[inline(always)]
pub(crate) fn with<R>(call: impl FnOnce(Hot<'_>) -> Result<R>) -> Result<R> {
    let mut call = Some(call);
    match LOCAL.try_with(|cache: &Arc<ThreadCache>| run(cache, call.take().expect("runs once"))) {
        Ok(result) => result,
        // This thread is exiting and its cache is gone: use one for this call only (nobody can
        // see it, and it is dropped before the call returns).
        Err(_) => run_uncached(call.take().expect("not run")),
    }
}

#[cold]
#[inline(never)]
fn run_uncached<R>(call: impl FnOnce(Hot<'_>) -> Result<R>) -> Result<R> {
    let cache = Arc::new(ThreadCache::default());
    cache.generation.store(fork::generation(), SeqCst);
    run(&cache, call)
}

#[inline(always)]
fn run<R>(cache: &Arc<ThreadCache>, call: impl FnOnce(Hot<'_>) -> Result<R>) -> Result<R> {
    if cache.generation.load(SeqCst) != fork::generation() {
        adopt_after_fork(cache);
    }
    let mut state = cache.lock();
    let epoch = runtime::epoch();
    if state.runtime.as_ref().is_none_or(|rt| rt.epoch != epoch) {
        refresh(cache, &mut state)?;
    }
    let State {
        runtime,
        notifies,
        streams,
    } = &mut *state;
    let rt = runtime.as_deref().expect("set above");
    let result = call(Hot {
        rt,
        notify: Cached {
            ways: notifies,
            hints: &cache.notify_hints,
        },
        stream: Cached {
            ways: streams,
            hints: &cache.stream_hints,
        },
    });
    // Drop entries whose table changed since they were looked up (their handle may be the one
    // destroyed). Under the lock: a destroyer waiting for it must find the reference gone, not
    // still held by this thread, or its `Arc::into_inner` fails and the release happens here,
    // after the destroy returned.
    drop_if_stale(notifies, &cache.notify_hints, &rt.notifies);
    drop_if_stale(streams, &cache.stream_hints, &rt.streams);
    drop(state);
    result
}

/// The cache holds no session, or an ended one: takes the current one (100001 without one), and
/// forgets everything else (nothing cached belongs to the new session).
#[cold]
#[inline(never)]
fn refresh(cache: &ThreadCache, state: &mut State) -> Result<()> {
    // Dropping the old state under the lock is harmless; it is hardly ever a last reference,
    // since a stale session is still held by the finalize that is about to empty this cache.
    *state = State::default();
    clear(&cache.notify_hints);
    clear(&cache.stream_hints);
    // If a finalize takes this session right after, it empties this cache once this call
    // releases the lock.
    state.runtime = Some(runtime::get()?);
    Ok(())
}

#[inline(always)]
fn drop_if_stale<T>(ways: &mut Ways<T>, hints: &Hints, table: &Table<T>) {
    let generation = table.generation();
    for (entry, hint) in ways.entries.iter_mut().zip(hints) {
        if entry.as_ref().is_some_and(|e| e.generation != generation) {
            *entry = None;
            hint.store(0, SeqCst);
        }
    }
}

/// After `aclrtDestroyNotify` removed `handle` from the table: takes it out of every thread's
/// cache (waiting for a hot call in progress with it) and drops those references.
pub(crate) fn forget_notify(handle: *mut c_void) {
    forget(raw(handle), |c| &c.notify_hints, |s| &mut s.notifies);
}

/// As [`forget_notify`], for `aclrtDestroyStream`.
pub(crate) fn forget_stream(handle: *mut c_void) {
    forget(raw(handle), |c| &c.stream_hints, |s| &mut s.streams);
}

fn forget<T>(token: u64, hints: fn(&ThreadCache) -> &Hints, ways: fn(&mut State) -> &mut Ways<T>) {
    let caches = all_caches();
    let mut taken = Vec::new();
    for cache in &caches {
        // The table's generation was bumped (SeqCst) before these loads.
        if !hints(cache).iter().any(|h| h.load(SeqCst) == token) {
            continue;
        }
        let mut state = cache.lock();
        for (entry, hint) in ways(&mut state).entries.iter_mut().zip(hints(cache)) {
            if entry.as_ref().is_some_and(|e| e.token == token) {
                taken.extend(entry.take());
                hint.store(0, SeqCst);
            }
        }
    }
    // Dropped with no cache locked.
    drop(taken);
    drop(caches);
}

/// What [`purge_all`] took out of the caches, to be dropped in order by `aclFinalize`.
#[derive(Debug, Default)]
pub(crate) struct Purged {
    pub(crate) notifies: Vec<Arc<NotifyHandle>>,
    pub(crate) streams: Vec<Arc<StreamHandle>>,
    pub(crate) runtimes: Vec<Arc<Runtime>>,
}

/// `aclFinalize`, after it bumped the epoch: empties every thread's cache (waiting for a hot call
/// in progress) and returns what they held.
pub(crate) fn purge_all() -> Purged {
    let caches = all_caches();
    let mut purged = Purged::default();
    for cache in &caches {
        let mut state = cache.lock();
        let State {
            runtime,
            notifies,
            streams,
        } = std::mem::take(&mut *state);
        clear(&cache.notify_hints);
        clear(&cache.stream_hints);
        drop(state);
        purged
            .notifies
            .extend(notifies.entries.into_iter().flatten().map(|e| e.value));
        purged
            .streams
            .extend(streams.entries.into_iter().flatten().map(|e| e.value));
        purged.runtimes.extend(runtime);
    }
    purged
}

#[cfg(test)]
mod tests {
    use std::ffi::c_void;
    use std::sync::{Arc, mpsc};

    use backend_sim::testing::{RoleSpawner, ScopedNamespace, child_role};

    use super::{Hot, ThreadCache, all_caches, run};
    use crate::exports::*;

    const SUCCESS: i32 = 0;
    const UNINITIALIZE: i32 = 100_001;
    const CONTEXT_NULL: i32 = 107_002;
    const INVALID_HANDLE: i32 = 107_017;
    const DRV_INTERNAL_ERROR: i32 = 507_899;

    #[test]
    #[ignore = "entry point of the spawned child process"]
    fn child() {
        match child_role().as_deref() {
            Some("invalidation") => invalidation(),
            Some("destroy_under_fire") => destroy_under_fire(),
            _ => {}
        }
    }

    /// A thread that caches handles and then sits idle must not keep a destroyed handle, nor a
    /// finalized session, alive or usable.
    #[test]
    fn cached_handles_never_outlive_a_destroy_or_a_finalize() {
        let ns = ScopedNamespace::new("shim-cache");
        RoleSpawner::new("cache::tests::child", &ns)
            .run("invalidation")
            .assert_passed("the invalidation role", "invalidation: all passed");
        assert!(!backend_sim::namespace_exists(ns.name()));
    }

    /// R8 with the caches: when `aclrtDestroyNotify` returns, the notify is released (its key
    /// revoked) even while other threads keep recording with that very handle.
    #[test]
    fn destroy_releases_at_once_under_concurrent_records() {
        let ns = ScopedNamespace::new("shim-cache-fire");
        RoleSpawner::new("cache::tests::child", &ns)
            .run("destroy_under_fire")
            .assert_passed(
                "the destroy_under_fire role",
                "destroy_under_fire: all passed",
            );
        assert!(!backend_sim::namespace_exists(ns.name()));
    }

    fn h(token: u64) -> *mut c_void {
        std::ptr::without_provenance_mut(token as usize)
    }

    fn create_notify() -> u64 {
        let mut n = std::ptr::null_mut();
        // SAFETY: `n` is valid for one write.
        assert_eq!(unsafe { aclrtCreateNotify(&mut n, 0) }, SUCCESS);
        n.addr() as u64
    }

    fn create_stream() -> u64 {
        let mut s = std::ptr::null_mut();
        // SAFETY: `s` is valid for one write.
        assert_eq!(unsafe { aclrtCreateStream(&mut s) }, SUCCESS);
        s.addr() as u64
    }

    fn export(n: u64) -> [u8; 65] {
        let mut key = [0u8; 65];
        // SAFETY: `key` is valid for writing 65 bytes.
        let rc = unsafe { aclrtNotifyGetExportKey(h(n), key.as_mut_ptr().cast(), 65, 0x2) };
        assert_eq!(rc, SUCCESS);
        key
    }

    fn import(key: &[u8; 65]) -> i32 {
        let mut n = std::ptr::null_mut();
        // SAFETY: `n` is valid for one write; `key` is NUL-terminated within its 65 bytes.
        unsafe { aclrtNotifyImportByKey(&mut n, key.as_ptr().cast(), 0x2) }
    }

    fn live_notifies() -> usize {
        let ns = std::env::var(backend_sim::ENV_NAMESPACE).expect("run by RoleSpawner");
        backend_sim::inspect::inspect(&ns)
            .expect("inspect")
            .map_or(0, |s| s.notifies.len())
    }

    /// Whether any thread's cache holds `token` (as a notify or a stream).
    fn cached_anywhere(token: u64) -> bool {
        all_caches().iter().any(|c| {
            let st = c.lock();
            st.notifies.holds(token) || st.streams.holds(token)
        })
    }

    /// A record through `cache` (which need not be registered), as `aclrtRecordNotify` does:
    /// the cache resolves the tokens, `raw::record` checks the lookups in R15 order.
    fn record_via(cache: &Arc<ThreadCache>, n: u64, s: u64) -> i32 {
        let rc = run(cache, |hot: Hot<'_>| {
            let session = &hot.rt.session;
            let (n, s) = hot.enqueue_args(h(n), h(s));
            backend_sim::raw::record(session, backend_sim::raw::Cx::Current, n, s)
        });
        rc.map_or_else(|e| e.code().raw(), |()| SUCCESS)
    }

    /// What the helper thread is asked to do; it answers with the return code.
    enum Ask {
        SetDevice,
        Record(u64, u64),
        Sync(u64),
        Exit,
    }

    fn destroy_under_fire() {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
        use std::sync::{Arc, Mutex};

        assert_eq!(aclInit(std::ptr::null()), SUCCESS);
        assert_eq!(aclrtSetDevice(0), SUCCESS);
        let current = Arc::new(AtomicU64::new(create_notify()));
        let stop = Arc::new(AtomicBool::new(false));
        let codes = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
        let users: Vec<_> = (0..3)
            .map(|i| {
                let (current, stop, codes) = (current.clone(), stop.clone(), codes.clone());
                std::thread::spawn(move || {
                    assert_eq!(aclrtSetDevice(0), SUCCESS);
                    let s = if i == 0 { 0 } else { create_stream() };
                    let mut seen = std::collections::BTreeSet::new();
                    let mut k = 0u32;
                    while !stop.load(SeqCst) {
                        seen.insert(aclrtRecordNotify(h(current.load(SeqCst)), h(s)));
                        k += 1;
                        if k.is_multiple_of(64) {
                            seen.insert(aclrtSynchronizeStream(h(s)));
                        }
                    }
                    codes.lock().unwrap().extend(seen);
                })
            })
            .collect();
        for _ in 0..300 {
            let n = create_notify();
            let key = export(n);
            current.store(n, SeqCst);
            std::thread::sleep(std::time::Duration::from_micros(20));
            assert_eq!(aclrtDestroyNotify(h(n)), SUCCESS);
            // 507000 ("already held") here would mean a thread still held the handle.
            assert_eq!(
                import(&key),
                DRV_INTERNAL_ERROR,
                "released when destroy returned"
            );
        }
        stop.store(true, SeqCst);
        for u in users {
            u.join().expect("a user thread panicked");
        }
        let codes = codes.lock().unwrap().clone();
        assert!(
            codes.is_subset(&[SUCCESS, INVALID_HANDLE].into()),
            "unexpected codes {codes:?}"
        );
        assert_eq!(aclrtDestroyNotify(h(current.load(SeqCst))), INVALID_HANDLE);
        assert_eq!(aclFinalize(), SUCCESS);
        println!("destroy_under_fire: all passed ({codes:?})");
    }

    fn invalidation() {
        let (ask, asked) = mpsc::channel::<Ask>();
        let (answer, answers) = mpsc::channel::<i32>();
        let helper = std::thread::spawn(move || {
            while let Ok(a) = asked.recv() {
                let rc = match a {
                    Ask::SetDevice => aclrtSetDevice(0),
                    Ask::Record(n, s) => aclrtRecordNotify(h(n), h(s)),
                    Ask::Sync(s) => aclrtSynchronizeStream(h(s)),
                    Ask::Exit => break,
                };
                answer.send(rc).expect("main is listening");
            }
        });
        let helper_does = |a: Ask| {
            ask.send(a).expect("helper is alive");
            answers.recv().expect("helper answers")
        };

        assert_eq!(aclInit(std::ptr::null()), SUCCESS);
        assert_eq!(aclrtSetDevice(0), SUCCESS);
        assert_eq!(helper_does(Ask::SetDevice), SUCCESS);
        let other = create_notify();
        let n = create_notify();
        let key = export(n);
        let s = create_stream();
        assert_eq!(live_notifies(), 2);

        // The helper caches the session, other and n (one way each), s and its default stream.
        assert_eq!(helper_does(Ask::Record(other, s)), SUCCESS);
        assert_eq!(helper_does(Ask::Record(n, s)), SUCCESS);
        assert_eq!(helper_does(Ask::Record(n, 0)), SUCCESS);
        assert_eq!(helper_does(Ask::Sync(s)), SUCCESS);
        assert_eq!(helper_does(Ask::Sync(0)), SUCCESS);

        assert!(cached_anywhere(other) && cached_anywhere(n));

        // Destroying the notify in the least recent way takes it out of the cache; the entry of
        // n goes stale (a miss, not a failure).
        assert_eq!(aclrtDestroyNotify(h(other)), SUCCESS);
        assert!(
            !cached_anywhere(other),
            "the destroy emptied the helper's other way"
        );
        assert_eq!(helper_does(Ask::Record(n, s)), SUCCESS);

        // Destroying n while the idle helper caches it: released at once (R8: the key is
        // revoked and the slot freed), and dead for the helper too (R10).
        assert!(cached_anywhere(n));
        assert_eq!(aclrtDestroyNotify(h(n)), SUCCESS);
        assert!(
            !cached_anywhere(n),
            "the destroy emptied the helper's cache"
        );
        assert_eq!(live_notifies(), 0, "no cache kept the destroyed notify");
        assert_eq!(import(&key), DRV_INTERNAL_ERROR, "the key is revoked");
        assert_eq!(helper_does(Ask::Record(n, s)), INVALID_HANDLE);
        assert_eq!(helper_does(Ask::Record(n, 0)), INVALID_HANDLE);
        assert_eq!(aclrtDestroyNotify(h(n)), INVALID_HANDLE);

        // The same for a stream.
        let n2 = create_notify();
        assert_eq!(helper_does(Ask::Record(n2, s)), SUCCESS);
        assert!(cached_anywhere(s));
        assert_eq!(aclrtDestroyStream(h(s)), SUCCESS);
        assert!(
            !cached_anywhere(s),
            "the destroy emptied the helper's cache"
        );
        assert_eq!(helper_does(Ask::Record(n2, s)), INVALID_HANDLE);
        assert_eq!(helper_does(Ask::Sync(s)), INVALID_HANDLE);
        assert_eq!(helper_does(Ask::Record(n2, 0)), SUCCESS);

        // Finalize while the idle helper caches the session, n2 and a default stream: the
        // process detaches at once (the last one out removes the namespace).
        let ns = std::env::var(backend_sim::ENV_NAMESPACE).expect("run by RoleSpawner");
        assert_eq!(aclFinalize(), SUCCESS);
        assert!(
            !backend_sim::namespace_exists(&ns),
            "no cache kept the session attached"
        );
        assert_eq!(helper_does(Ask::Record(n2, 0)), UNINITIALIZE);
        assert_eq!(helper_does(Ask::Sync(0)), UNINITIALIZE);

        // A new session: the old tokens stay dead, new ones work, from the helper too.
        assert_eq!(aclInit(std::ptr::null()), SUCCESS);
        assert_eq!(helper_does(Ask::Record(n2, 0)), CONTEXT_NULL);
        assert_eq!(helper_does(Ask::SetDevice), SUCCESS);
        assert_eq!(helper_does(Ask::Record(n2, 0)), INVALID_HANDLE);
        assert_eq!(aclrtSetDevice(0), SUCCESS);
        let n3 = create_notify();
        let s3 = create_stream();
        assert_eq!(helper_does(Ask::Record(n3, s3)), SUCCESS);
        assert_eq!(helper_does(Ask::Sync(s3)), SUCCESS);
        assert_eq!(helper_does(Ask::Record(n2, s3)), INVALID_HANDLE);

        // The window the hints close: a cache the destroyer did not see (here: one that is not
        // registered at all) still never serves the destroyed handle, and lets go of it at the
        // end of the next call.
        // (Not forked: its generation, 0, is this process's, so `run` does not register it.)
        let unseen = Arc::new(ThreadCache::default());
        let before = live_notifies();
        let n4 = create_notify();
        assert_eq!(record_via(&unseen, n4, s3), SUCCESS);
        assert_eq!(aclrtDestroyNotify(h(n4)), SUCCESS);
        assert_eq!(
            live_notifies(),
            before + 1,
            "the unseen cache still holds it"
        );
        assert_eq!(record_via(&unseen, n4, s3), INVALID_HANDLE);
        assert!(
            !unseen.lock().notifies.holds(n4),
            "dropped at the end of the call"
        );
        assert_eq!(live_notifies(), before, "released with the entry");
        // A destroy of an unrelated handle makes the entry miss, not fail.
        let n5 = create_notify();
        let n6 = create_notify();
        assert_eq!(record_via(&unseen, n5, s3), SUCCESS);
        assert_eq!(aclrtDestroyNotify(h(n6)), SUCCESS);
        assert_eq!(record_via(&unseen, n5, s3), SUCCESS);
        drop(unseen);

        assert_eq!(aclFinalize(), SUCCESS);
        assert!(!backend_sim::namespace_exists(&ns));

        ask.send(Ask::Exit).expect("helper is alive");
        helper.join().expect("the helper did not panic");
        println!("invalidation: all passed");
    }
}
