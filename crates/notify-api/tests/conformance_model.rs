//! The conformance suite against an in-memory model of the contract.
//!
//! No backend of the workspace is needed: [`Model`] keeps the registry of `SEMANTICS.md` §4
//! (devices, notify slots with flag, generation, creator, whitelist and holders) in one mutex,
//! runs each stream on a thread of its own, and stands in for peer processes with threads that
//! attach as processes of their own (each with its own bare tgid and start time). So the suite
//! itself is exercised on every `cargo test -p notify-api --features conformance`, and this
//! file shows how a backend's test file runs it: one `#[test]` per entry of
//! `for_each_check!`, each check skipped with its reason when the backend lacks a capability.
//!
//! What the model cannot do is [`Capability::ProcessDeath`]: its peers are threads, and a peer
//! that aborts would take the test process with it. Nor does it model §5 and §6: it has no
//! device memory, host functions, events or created contexts ([`Capability::Memory`],
//! [`Capability::StreamTasks`], and the hazard modes [`Capability::ServedHazards`],
//! [`Capability::StrictHazards`]). Those checks are skipped here, each with its reason.

#![cfg(feature = "conformance")]

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, mpsc};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use notify_api::conformance::{self, Capability, ENV_START_OFFSET, Peer, PeerLink, Spawner};
use notify_api::{
    Backend, BackendKind, DeviceId, Error, ExportFlags, ExportKey, ImportFlags, NotifyFlags,
    NotifyId, Pid, Result, Timeout, WHITELIST_IMPORTERS, err,
};

const DEVICES: usize = 4;
const CAPACITY: usize = 64;

/// What the model supports: notifies (§3) only, and everything of them but abrupt death.
const HAVE: &[Capability] = &[
    Capability::MultiProcess,
    Capability::Virtualized,
    Capability::StartTimeHook,
];

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

fn run(name: &str) {
    let check = conformance::check::<Model>(name).expect("a listed check");
    if let Some(why) = check.skip_reason(HAVE) {
        println!("skipped: {why}");
        return;
    }
    let world = World::new();
    let rt = Rt::attach(&world, None, check.needs(Capability::Virtualized));
    check.run(
        &rt,
        &Threads {
            world: world.clone(),
        },
    );
}

macro_rules! conformance_tests {
    ($($name:ident : $kind:ident [$($cap:ident),*]),* $(,)?) => {
        $( #[test] fn $name() { run(stringify!($name)); } )*
    };
}

notify_api::for_each_check!(conformance_tests);

// ---------------------------------------------------------------------------------------------
// The registry
// ---------------------------------------------------------------------------------------------

/// Where a notify lives: device, slot, generation.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Addr {
    dev: usize,
    idx: usize,
    generation: u64,
}

#[derive(Debug)]
struct Slot {
    generation: u64,
    secret: u64,
    flag: bool,
    creator: Pid,
    export: Option<ExportFlags>,
    revoked: bool,
    whitelist: Vec<(Pid, Instant)>,
    /// Handles per process.
    holders: HashMap<Pid, usize>,
    /// Enqueued tasks that have not run yet.
    tasks: usize,
}

#[derive(Debug)]
struct State {
    slots: Vec<Vec<Option<Slot>>>,
    generations: Vec<Vec<u64>>,
    next_pid: i32,
}

impl State {
    fn slot(&mut self, a: Addr) -> &mut Slot {
        match &mut self.slots[a.dev][a.idx] {
            Some(s) if s.generation == a.generation => s,
            _ => panic!("model bug: {a:?} is gone while referenced"),
        }
    }

    /// Frees the slot when nothing refers to it any more.
    fn collect(&mut self, a: Addr) {
        let s = self.slot(a);
        if s.holders.is_empty() && s.tasks == 0 {
            self.slots[a.dev][a.idx] = None;
        }
    }

    /// Drops one handle of `pid` (and revokes the key when `pid` created the notify).
    fn drop_handle(&mut self, a: Addr, pid: Pid) {
        let s = self.slot(a);
        match s.holders.get_mut(&pid) {
            Some(1) => {
                s.holders.remove(&pid);
            }
            Some(n) => *n -= 1,
            None => panic!("model bug: {pid} does not hold {a:?}"),
        }
        if s.creator == pid {
            s.revoked = true;
        }
        self.collect(a);
    }

    fn drop_task(&mut self, a: Addr) {
        self.slot(a).tasks -= 1;
        self.collect(a);
    }
}

#[derive(Debug)]
struct World {
    state: Mutex<State>,
    /// Signalled whenever a flag is set.
    flags: Condvar,
    secrets: RandomState,
    counter: AtomicU64,
}

impl World {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                slots: (0..DEVICES)
                    .map(|_| (0..CAPACITY).map(|_| None).collect())
                    .collect(),
                generations: vec![vec![0; CAPACITY]; DEVICES],
                next_pid: 10_001,
            }),
            flags: Condvar::new(),
            secrets: RandomState::new(),
            counter: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("the model's lock")
    }

    fn secret(&self) -> u64 {
        let mut h = self.secrets.build_hasher();
        h.write_u64(self.counter.fetch_add(1, Ordering::Relaxed));
        h.finish()
    }
}

fn key_of(a: Addr, secret: u64) -> ExportKey {
    ExportKey::new(format!(
        "model1-{}-{}-{}-{secret:016x}",
        a.dev, a.idx, a.generation
    ))
    .expect("a valid key")
}

fn parse_key(key: &ExportKey) -> Result<(Addr, u64)> {
    let bad = || err!(R7: RT_PARAM_INVALID, "{key:?} is not a key of the model");
    let rest = key.as_str().strip_prefix("model1-").ok_or_else(bad)?;
    let parts: Vec<&str> = rest.split('-').collect();
    let [dev, idx, generation, secret] = parts.as_slice() else {
        return Err(bad());
    };
    let addr = Addr {
        dev: dev.parse().map_err(|_| bad())?,
        idx: idx.parse().map_err(|_| bad())?,
        generation: generation.parse().map_err(|_| bad())?,
    };
    if secret.len() != 16 {
        return Err(bad());
    }
    let secret = u64::from_str_radix(secret, 16).map_err(|_| bad())?;
    Ok((addr, secret))
}

// ---------------------------------------------------------------------------------------------
// Processes, devices
// ---------------------------------------------------------------------------------------------

#[derive(Copy, Clone, Debug)]
struct Model;

impl Backend for Model {
    type Runtime = Rt;
    type Device = Dev;
    type Stream = Str;
    type Notify = Ntf;
    type Buffer = NoMemory;
    type MemExport = NoMemory;
    type MemImport = NoMemory;
    type Event = NoMemory;
}

/// The model covers notifies only (§3): memory and events (§5, §6) are refused.
#[derive(Debug)]
enum NoMemory {}

fn no_memory<T>() -> Result<T> {
    Err(notify_api::err!(
        S1: RT_FEATURE_NOT_SUPPORT,
        "the notify model has no device memory or events"
    ))
}

impl notify_api::Buffer for NoMemory {
    type Backend = Model;
    fn device(&self) -> &Dev {
        match *self {}
    }
    fn len(&self) -> usize {
        match *self {}
    }
    fn as_range(&self) -> notify_api::DeviceRange<'_> {
        match *self {}
    }
    fn export(
        &self,
        _: notify_api::DeviceRange<'_>,
        _: notify_api::MemExportFlags,
    ) -> Result<NoMemory> {
        match *self {}
    }
    fn free(self) -> Result<()> {
        match self {}
    }
}

impl notify_api::MemExport for NoMemory {
    type Backend = Model;
    fn key(&self) -> &notify_api::ExportKey {
        match *self {}
    }
    fn len(&self) -> usize {
        match *self {}
    }
    fn set_import_pids(&self, _: &[Pid]) -> Result<()> {
        match *self {}
    }
    fn close(self) -> Result<()> {
        match self {}
    }
}

impl notify_api::MemImport for NoMemory {
    type Backend = Model;
    fn device(&self) -> &Dev {
        match *self {}
    }
    fn len(&self) -> usize {
        match *self {}
    }
    fn as_range(&self) -> notify_api::DeviceRange<'_> {
        match *self {}
    }
    fn close(self) -> Result<()> {
        match self {}
    }
}

impl notify_api::Event for NoMemory {
    type Backend = Model;
    fn device(&self) -> &Dev {
        match *self {}
    }
    fn synchronize(&self) -> Result<()> {
        match *self {}
    }
    fn is_complete(&self) -> Result<bool> {
        match *self {}
    }
    fn elapsed_ms(&self, _: &NoMemory) -> Result<f32> {
        match *self {}
    }
    fn destroy(self) -> Result<()> {
        match self {}
    }
}

#[derive(Debug)]
struct Proc {
    world: Arc<World>,
    pid: Pid,
    start: Instant,
    virtualized: bool,
    peers: Mutex<HashSet<(i32, i32)>>,
    defaults: Mutex<HashMap<i32, Arc<Core>>>,
}

#[derive(Clone, Debug)]
struct Rt(Arc<Proc>);

impl Rt {
    fn attach(world: &Arc<World>, start_offset: Option<u64>, virtualized: bool) -> Self {
        let pid = {
            let mut st = world.lock();
            st.next_pid += 1;
            Pid(st.next_pid)
        };
        let start = Instant::now() + Duration::from_secs(start_offset.unwrap_or(0));
        Self(Arc::new(Proc {
            world: world.clone(),
            pid,
            start,
            virtualized,
            peers: Mutex::new(HashSet::new()),
            defaults: Mutex::new(HashMap::new()),
        }))
    }

    /// R9: the process is gone; every reference it held is dropped.
    fn detach(&self) {
        let pid = self.0.pid;
        let mut st = self.0.world.lock();
        for dev in 0..DEVICES {
            for idx in 0..CAPACITY {
                let Some(s) = &mut st.slots[dev][idx] else {
                    continue;
                };
                let addr = Addr {
                    dev,
                    idx,
                    generation: s.generation,
                };
                if s.creator == pid {
                    s.revoked = true;
                }
                if s.holders.remove(&pid).is_some() {
                    st.collect(addr);
                }
            }
        }
    }

    fn check_device(id: DeviceId) -> Result<usize> {
        usize::try_from(id.0)
            .ok()
            .filter(|&d| d < DEVICES)
            .ok_or_else(|| err!(R13: RT_INVALID_DEVICEID, "device {id} is not in 0..{DEVICES}"))
    }
}

impl notify_api::Runtime for Rt {
    type Backend = Model;

    fn kind(&self) -> BackendKind {
        BackendKind::Sim
    }

    fn device_count(&self) -> Result<u32> {
        Ok(DEVICES as u32)
    }

    fn device(&self, id: DeviceId) -> Result<Dev> {
        Self::check_device(id)?;
        Ok(Dev {
            rt: self.clone(),
            id,
        })
    }

    fn bare_tgid(&self) -> Result<Pid> {
        Ok(self.0.pid)
    }

    fn can_access_peer(&self, device: DeviceId, peer: DeviceId) -> Result<bool> {
        Self::check_device(device)?;
        Self::check_device(peer)?;
        if device == peer {
            return Err(err!(R7: RT_PARAM_INVALID, "a device and itself are not peers"));
        }
        Ok(true)
    }

    fn batch_reset(&self, notifies: &[&Ntf]) -> Result<()> {
        if notifies.is_empty() {
            return Err(err!(R1: RT_PARAM_INVALID, "num is 0"));
        }
        let mut st = self.0.world.lock();
        for n in notifies {
            st.slot(n.addr).flag = false;
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
struct Dev {
    rt: Rt,
    id: DeviceId,
}

impl Dev {
    fn proc(&self) -> &Proc {
        &self.rt.0
    }

    fn index(&self) -> usize {
        self.id.0 as usize
    }
}

impl notify_api::Device for Dev {
    type Backend = Model;

    fn create_context(&self) -> Result<Dev> {
        no_memory()
    }
    fn synchronize(&self) -> Result<()> {
        no_memory()
    }
    fn alloc(&self, _: usize, _: notify_api::MallocPolicy) -> Result<NoMemory> {
        no_memory()
    }
    fn mem_info(&self) -> Result<notify_api::MemInfo> {
        no_memory()
    }
    fn import_memory(
        &self,
        _: &notify_api::ExportKey,
        _: usize,
        _: notify_api::MemImportFlags,
    ) -> Result<NoMemory> {
        no_memory()
    }
    fn create_event(&self, _: notify_api::EventFlags) -> Result<NoMemory> {
        no_memory()
    }
    fn copy_from_host(&self, _: notify_api::DeviceRange<'_>, _: &[u8]) -> Result<()> {
        no_memory()
    }
    fn copy_to_host(&self, _: &mut [u8], _: notify_api::DeviceRange<'_>) -> Result<()> {
        no_memory()
    }
    fn copy(&self, _: notify_api::DeviceRange<'_>, _: notify_api::DeviceRange<'_>) -> Result<()> {
        no_memory()
    }
    fn memset(&self, _: notify_api::DeviceRange<'_>, _: u8) -> Result<()> {
        no_memory()
    }

    fn id(&self) -> DeviceId {
        self.id
    }

    fn runtime(&self) -> &Rt {
        &self.rt
    }

    fn bare_tgid(&self) -> Result<Pid> {
        Ok(self.proc().pid)
    }

    fn create_stream(&self) -> Result<Str> {
        Ok(Str {
            dev: self.clone(),
            core: Core::start(self.proc().world.clone()),
            default: false,
        })
    }

    fn default_stream(&self) -> Result<Str> {
        let mut defaults = self.proc().defaults.lock().expect("defaults");
        let core = defaults
            .entry(self.id.0)
            .or_insert_with(|| Core::start(self.proc().world.clone()))
            .clone();
        Ok(Str {
            dev: self.clone(),
            core,
            default: true,
        })
    }

    fn create_notify(&self, _flags: NotifyFlags) -> Result<Ntf> {
        let world = &self.proc().world;
        let secret = world.secret();
        let mut st = world.lock();
        let dev = self.index();
        let Some(idx) = st.slots[dev].iter().position(Option::is_none) else {
            return Err(err!(R11: RT_NO_NOTIFY_RESOURCE, "device {dev} holds {CAPACITY} notifies"));
        };
        st.generations[dev][idx] += 1;
        let generation = st.generations[dev][idx];
        st.slots[dev][idx] = Some(Slot {
            generation,
            secret,
            flag: false,
            creator: self.proc().pid,
            export: None,
            revoked: false,
            whitelist: Vec::new(),
            holders: HashMap::from([(self.proc().pid, 1)]),
            tasks: 0,
        });
        Ok(Ntf::new(
            self.clone(),
            Addr {
                dev,
                idx,
                generation,
            },
        ))
    }

    fn import_notify(&self, key: &ExportKey, flags: ImportFlags) -> Result<Ntf> {
        let p = self.proc();
        if p.virtualized {
            return Err(err!(R12: RT_FEATURE_NOT_SUPPORT, "no IPC in a virtualization instance"));
        }
        let (addr, secret) = parse_key(key)?;
        let mut st = p.world.lock();
        let unknown = || err!(R7: RT_DRV_INTERNAL_ERROR, "the key is unknown or revoked");
        let live = addr.dev < DEVICES
            && addr.idx < CAPACITY
            && matches!(&st.slots[addr.dev][addr.idx],
                Some(s) if s.generation == addr.generation && s.secret == secret
                    && !s.revoked && s.export.is_some());
        if !live {
            return Err(unknown());
        }
        let s = st.slot(addr);
        if s.holders.contains_key(&p.pid) {
            return Err(err!(R7: RT_INTERNAL_ERROR, "this process already holds the notify"));
        }
        let listed = s.whitelist.iter().find(|(pid, _)| *pid == p.pid).copied();
        if s.export == Some(ExportFlags::DEFAULT) {
            match listed {
                None => {
                    return Err(
                        err!(R7: RT_DRV_INTERNAL_ERROR, "pid {} is not on the whitelist", p.pid),
                    );
                }
                Some((_, at)) if p.start > at => {
                    return Err(
                        err!(R7: RT_DRV_INTERNAL_ERROR, "pid {} started after its entry was set", p.pid),
                    );
                }
                Some(_) => {}
            }
        } else if listed.is_none() && s.whitelist.len() >= WHITELIST_IMPORTERS {
            return Err(err!(R7: RT_DRV_INTERNAL_ERROR, "the whitelist is full"));
        }
        let pair = (self.id.0, addr.dev as i32);
        if pair.0 != pair.1 {
            let mut peers = p.peers.lock().expect("peers");
            if flags.contains(ImportFlags::ENABLE_PEER_ACCESS) {
                peers.insert(pair);
            } else if !peers.contains(&pair) {
                return Err(
                    err!(R7: RT_DRV_INTERNAL_ERROR, "no peer access {} -> {}", pair.0, pair.1),
                );
            }
        }
        if listed.is_none() {
            s.whitelist.push((p.pid, Instant::now()));
        }
        s.holders.insert(p.pid, 1);
        Ok(Ntf::new(self.clone(), addr))
    }

    fn enable_peer_access(&self, peer: DeviceId) -> Result<()> {
        Rt::check_device(peer)?;
        if peer == self.id {
            return Err(err!(R7: RT_PARAM_INVALID, "peer access to the device itself"));
        }
        self.proc()
            .peers
            .lock()
            .expect("peers")
            .insert((self.id.0, peer.0));
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Notifies
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Ntf {
    dev: Dev,
    addr: Addr,
    released: AtomicBool,
}

impl Ntf {
    fn new(dev: Dev, addr: Addr) -> Self {
        Self {
            dev,
            addr,
            released: AtomicBool::new(false),
        }
    }

    fn release(&self) {
        if !self.released.swap(true, Ordering::SeqCst) {
            let p = self.dev.proc();
            p.world.lock().drop_handle(self.addr, p.pid);
        }
    }
}

impl Drop for Ntf {
    fn drop(&mut self) {
        self.release();
    }
}

impl notify_api::Notify for Ntf {
    type Backend = Model;

    fn device(&self) -> &Dev {
        &self.dev
    }

    fn id(&self) -> Result<NotifyId> {
        Ok(NotifyId(self.addr.idx as u32))
    }

    fn export(&self, flags: ExportFlags) -> Result<ExportKey> {
        let p = self.dev.proc();
        if p.virtualized {
            return Err(err!(R12: RT_FEATURE_NOT_SUPPORT, "no IPC in a virtualization instance"));
        }
        let mut st = p.world.lock();
        let s = st.slot(self.addr);
        if s.creator != p.pid {
            return Err(err!(R5: RT_INTERNAL_ERROR, "an imported handle is already an IPC notify"));
        }
        if s.export.is_some() {
            return Err(err!(R5: RT_INTERNAL_ERROR, "exported twice"));
        }
        s.export = Some(flags);
        Ok(key_of(self.addr, s.secret))
    }

    fn set_import_pid(&self, pid: Pid) -> Result<()> {
        let p = self.dev.proc();
        if p.virtualized {
            return Err(err!(R12: RT_FEATURE_NOT_SUPPORT, "no IPC in a virtualization instance"));
        }
        if pid.0 < 0 {
            return Err(err!(R6: RT_PARAM_INVALID, "pid {pid} is negative"));
        }
        let mut st = p.world.lock();
        let s = st.slot(self.addr);
        if s.export == Some(ExportFlags::DISABLE_PID_VALIDATION) {
            return Err(err!(R6: RT_NO_PERMISSION, "the export disabled pid validation"));
        }
        if s.creator != p.pid {
            return Err(err!(R6: RT_DRV_INTERNAL_ERROR, "only the creator sets the whitelist"));
        }
        if s.export.is_none() {
            return Err(err!(R6: RT_PARAM_INVALID, "the notify is not exported"));
        }
        if pid.0 == 0 || pid == p.pid {
            return Ok(());
        }
        let now = Instant::now();
        if let Some(entry) = s.whitelist.iter_mut().find(|(q, _)| *q == pid) {
            entry.1 = now;
        } else if s.whitelist.len() >= WHITELIST_IMPORTERS {
            return Err(err!(R6: RT_DRV_INTERNAL_ERROR, "the whitelist is full"));
        } else {
            s.whitelist.push((pid, now));
        }
        Ok(())
    }

    fn destroy(self) -> Result<()> {
        self.release();
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
enum Task {
    Record(Addr),
    Wait(Addr, Option<Duration>),
}

#[derive(Debug, Default)]
struct Progress {
    enqueued: u64,
    done: u64,
    failure: Option<Error>,
    wakers: Vec<Waker>,
}

/// A stream's queue and worker, shared by every handle of a default stream.
#[derive(Debug)]
struct Core {
    tx: Mutex<Option<mpsc::Sender<Task>>>,
    progress: Mutex<Progress>,
    cv: Condvar,
}

impl Core {
    fn start(world: Arc<World>) -> Arc<Self> {
        let (tx, rx) = mpsc::channel::<Task>();
        let core = Arc::new(Self {
            tx: Mutex::new(Some(tx)),
            progress: Mutex::new(Progress::default()),
            cv: Condvar::new(),
        });
        let worker = core.clone();
        std::thread::spawn(move || {
            for task in rx {
                let result = run_task(&world, task);
                let mut p = worker.progress.lock().expect("progress");
                p.done += 1;
                if let Err(e) = result {
                    p.failure.get_or_insert(e);
                }
                for w in p.wakers.drain(..) {
                    w.wake();
                }
                worker.cv.notify_all();
            }
        });
        core
    }

    fn enqueue(&self, task: Task) {
        let mut p = self.progress.lock().expect("progress");
        p.enqueued += 1;
        self.tx
            .lock()
            .expect("tx")
            .as_ref()
            .expect("a live stream")
            .send(task)
            .expect("the worker runs");
    }

    fn sync(&self, limit: Option<Duration>) -> Result<()> {
        let deadline = limit.map(|d| Instant::now() + d);
        let mut p = self.progress.lock().expect("progress");
        let target = p.enqueued;
        while p.done < target {
            p = match deadline {
                None => self.cv.wait(p).expect("progress"),
                Some(at) => {
                    let now = Instant::now();
                    if now >= at {
                        return Err(err!(R2: RT_STREAM_SYNC_TIMEOUT, "gave up after {limit:?}"));
                    }
                    self.cv.wait_timeout(p, at - now).expect("progress").0
                }
            };
        }
        p.failure.take().map_or(Ok(()), Err)
    }
}

fn run_task(world: &World, task: Task) -> Result<()> {
    let mut st = world.lock();
    let (addr, result) = match task {
        Task::Record(a) => {
            st.slot(a).flag = true;
            world.flags.notify_all();
            (a, Ok(()))
        }
        Task::Wait(a, limit) => {
            let deadline = limit.map(|d| Instant::now() + d);
            let result = loop {
                let s = st.slot(a);
                if s.flag {
                    s.flag = false;
                    break Ok(());
                }
                st = match deadline {
                    None => world.flags.wait(st).expect("flags"),
                    Some(at) => {
                        let now = Instant::now();
                        if now >= at {
                            break Err(err!(R3: RT_WAIT_TIMEOUT, "the wait timed out"));
                        }
                        world.flags.wait_timeout(st, at - now).expect("flags").0
                    }
                };
            };
            (a, result)
        }
    };
    st.drop_task(addr);
    result
}

#[derive(Debug)]
struct Str {
    dev: Dev,
    core: Arc<Core>,
    default: bool,
}

impl Str {
    fn enqueue(&self, task: Task, addr: Addr) {
        self.dev.proc().world.lock().slot(addr).tasks += 1;
        self.core.enqueue(task);
    }
}

impl Drop for Str {
    fn drop(&mut self) {
        if !self.default {
            self.core.tx.lock().expect("tx").take();
        }
    }
}

/// `synchronize_async`: ready once the worker has run every task enqueued before it.
struct SyncFuture {
    core: Arc<Core>,
    target: u64,
}

impl Future for SyncFuture {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let mut p = self.core.progress.lock().expect("progress");
        if p.done >= self.target {
            return Poll::Ready(p.failure.take().map_or(Ok(()), Err));
        }
        p.wakers.push(cx.waker().clone());
        Poll::Pending
    }
}

#[async_trait::async_trait]
impl notify_api::Stream for Str {
    type Backend = Model;

    fn is_complete(&self) -> Result<bool> {
        no_memory()
    }
    fn copy(&self, _: notify_api::DeviceRange<'_>, _: notify_api::DeviceRange<'_>) -> Result<()> {
        no_memory()
    }
    fn copy_from_host(
        &self,
        _: notify_api::DeviceRange<'_>,
        _: impl AsRef<[u8]> + Send + 'static,
    ) -> Result<()> {
        no_memory()
    }
    fn copy_to_host(&self, _: notify_api::DeviceRange<'_>) -> Result<notify_api::Download> {
        no_memory()
    }
    fn memset(&self, _: notify_api::DeviceRange<'_>, _: u8) -> Result<()> {
        no_memory()
    }
    fn launch_host_fn(&self, _: impl FnOnce() + Send + 'static) -> Result<()> {
        no_memory()
    }
    fn record_event(&self, event: &NoMemory) -> Result<()> {
        match *event {}
    }
    fn wait_event(&self, event: &NoMemory) -> Result<()> {
        match *event {}
    }
    fn reset_event(&self, event: &NoMemory) -> Result<()> {
        match *event {}
    }

    fn device(&self) -> &Dev {
        &self.dev
    }

    fn record(&self, notify: &Ntf) -> Result<()> {
        self.enqueue(Task::Record(notify.addr), notify.addr);
        Ok(())
    }

    fn wait(&self, notify: &Ntf, timeout: impl Into<Timeout>) -> Result<()> {
        let creator = self.dev.proc().world.lock().slot(notify.addr).creator;
        if creator != self.dev.proc().pid {
            return Err(err!(R4: RT_PARAM_INVALID, "only the creator may wait"));
        }
        if notify.addr.dev != self.dev.index() {
            return Err(err!(R4: RT_PARAM_INVALID, "a wait on another device's stream"));
        }
        let secs = timeout.into().as_c_secs();
        let limit = (secs != 0).then(|| Duration::from_secs(u64::from(secs)));
        self.enqueue(Task::Wait(notify.addr, limit), notify.addr);
        Ok(())
    }

    fn synchronize(&self) -> Result<()> {
        self.core.sync(None)
    }

    fn synchronize_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        self.core.sync(timeout)
    }

    async fn synchronize_async(&self) -> Result<()> {
        let target = self.core.progress.lock().expect("progress").enqueued;
        SyncFuture {
            core: self.core.clone(),
            target,
        }
        .await
    }

    fn destroy(self) -> Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Peers: threads that attach as processes of their own
// ---------------------------------------------------------------------------------------------

struct Threads {
    world: Arc<World>,
}

impl Spawner for Threads {
    fn spawn_with_env(&self, role: &str, env: &[(&str, &str)]) -> Box<dyn Peer> {
        let offset = env
            .iter()
            .find(|(k, _)| *k == ENV_START_OFFSET)
            .map(|(_, v)| v.parse::<u64>().expect("a number of seconds"));
        let rt = Rt::attach(&self.world, offset, false);
        let pid = rt.0.pid;
        let (to_child, from_parent) = mpsc::channel::<String>();
        let (to_parent, from_child) = mpsc::channel::<String>();
        let role = role.to_owned();
        let thread = std::thread::spawn(move || {
            let mut link = Link {
                tx: to_parent,
                rx: from_parent,
            };
            conformance::run_role::<Model>(&rt, &role, &mut link);
            rt.detach();
        });
        Box::new(ThreadPeer {
            pid,
            tx: Some(to_child),
            rx: from_child,
            thread: Some(thread),
        })
    }
}

struct Link {
    tx: mpsc::Sender<String>,
    rx: mpsc::Receiver<String>,
}

impl PeerLink for Link {
    fn send(&mut self, line: &str) {
        let _ = self.tx.send(line.to_owned());
    }

    fn recv(&mut self) -> String {
        self.rx.recv().expect("the parent went away")
    }
}

struct ThreadPeer {
    pid: Pid,
    tx: Option<mpsc::Sender<String>>,
    rx: mpsc::Receiver<String>,
    thread: Option<JoinHandle<()>>,
}

impl Peer for ThreadPeer {
    fn pid(&self) -> Pid {
        self.pid
    }

    fn send(&mut self, line: &str) {
        let sent = self.tx.as_ref().map(|tx| tx.send(line.to_owned()));
        assert!(
            matches!(sent, Some(Ok(()))),
            "the peer went away before {line:?}"
        );
    }

    fn recv(&mut self) -> String {
        self.rx
            .recv()
            .unwrap_or_else(|_| panic!("the peer exited before sending a line"))
    }

    fn wait(mut self: Box<Self>) -> i32 {
        self.tx.take();
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(())) => 0,
            _ => 101,
        }
    }
}
