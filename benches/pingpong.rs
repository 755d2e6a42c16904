//! Wake latency of the simulator across real processes, against the floors and the best existing
//! IPC library (SEMANTICS.md §4 "Waking"), and the latency of the other stream tasks (§6).
//!
//! - `pingpong/*`: one-way latency of a wake between two processes, measured as half the round
//!   trip of a ping-pong (`iter_custom`: one iteration = one one-way wake).
//!   - `sim_cross_process`, `sim_same_cpu`: through the typed API of `backend-sim`;
//!   - `futex_cross_process`, `futex_same_cpu`: a raw shared futex on two words of a shared
//!     mapping: the system-call floor;
//!   - `spin_cross_process`: busy-waiting on shared cache lines: the hardware floor;
//!   - `eventfd_cross_process`: two eventfds, blocking `read`/`write`;
//!   - `iceoryx2_event`: the `iceoryx2` event service (ipc);
//!   - `ffi_cross_process`, `ffi_same_cpu`: the same ping-pong as `sim_*`, through the C ABI:
//!     `backend-ascend` driving the `libascendcl.so` that `ascendcl-sim` builds.
//!
//!   `*_cross_process` pins the two processes to two different CPUs (when there are two),
//!   `*_same_cpu` both to the first allowed CPU. The ratio targets against the spin and futex
//!   floors are measured interleaved (see `common`): each sample of `sim_cross_process` is paired
//!   with one of `spin_cross_process` taken next to it.
//! - `record/*`: a record that nobody waits for, on an idle stream: through the typed API
//!   (`sim_no_waiter`), through the facade's erased handles (`facade_no_waiter`), through the C
//!   ABI (`ffi_no_waiter`), and alternating two notifies through it (`ffi_two_notifies`).
//! - `stream/*` (issue 14): `host_fn`, a host function's enqueue-to-run latency on an idle
//!   stream; `event_record_wait`, an event recorded on one stream and waited for by another of
//!   the same process, then that stream synchronized; both interleaved with the notify ping-pong
//!   (`stream/pingpong_one_way`, the same as `sim_cross_process` but unpinned, as they are).
//!
//! After criterion, the binary prints the idle cost of a blocked waiter (`idle_cost: X% of a
//! CPU`) and a summary of the medians and ratios (also: `python3 benches/report.py`).
//!
//! Child processes are this binary re-executed through `backend_sim::role`; they exit when the
//! parent tells them to, or when their stdin closes (the parent died). Every process that loads
//! the C library is a child started with `ASCEND_NOTIFY_SIM_NAMESPACE` set, since `aclInit` is
//! process-wide and reads its namespace from there.

mod common;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::{Duration, Instant};

use backend_ascend::{Ascend, AscendRuntime};
use backend_sim::role::{RoleProcess, StdioLink, child_role};
use backend_sim::testing::ScopedNamespace;
use backend_sim::{Sim, SimDevice, SimEvent, SimNotify, SimRuntime, SimStream};
use common::{
    Group, Placement, SharedMap, Timed, cross_cpu, env_fd, expect, ffi_env, finish, pinned, report,
    same_cpu, serve_timed, spawn, timed_in, unpinned,
};
use criterion::Criterion;
use notify_api::prelude::*;
use notify_api::{
    AclError, Backend, DeviceId, EventFlags, ExportFlags, ExportKey, ImportFlags, NotifyFlags,
    Timeout,
};
use rustix::thread::futex;

const ENV_FD: &str = "PINGPONG_FD";
const ENV_FD2: &str = "PINGPONG_FD2";
const ENV_SERVICE: &str = "PINGPONG_SERVICE";

/// The ping word values that tell a raw child to stop, to park (sleep until resumed; a spinning
/// floor that is not being measured must not steal the CPU of the id it is interleaved with),
/// and to resume.
const STOP: u32 = u32::MAX;
const PARK: u32 = u32::MAX - 1;
const RESUME: u32 = u32::MAX - 2;
const STOP_EVENTFD: u64 = 1 << 40;
/// iceoryx2 event id that tells the child to exit (default `event_id_max_value` is 255).
const STOP_EVENT_ID: usize = 7;

fn main() {
    if let Some(role) = child_role() {
        common::child_init();
        run_child(&role);
        return;
    }
    let listing = std::env::args().any(|a| a == "--list" || a == "--help" || a == "-h");
    common::init_affinity();
    let mut c = Criterion::default().configure_from_args();

    pingpong_benches(&mut c);
    record_benches(&mut c);
    stream_benches(&mut c);
    c.final_summary();

    if !listing {
        idle_cost();
        common::summary(&["pingpong", "record", "stream"]);
    }
}

fn run_child(role: &str) {
    match role {
        "sim" => echo_child::<Sim>(SimRuntime::from_env().expect("child attach")),
        "futex" => raw_child(false),
        "spin" => raw_child(true),
        "eventfd" => eventfd_child(),
        "iceoryx2" => iceoryx2_child(),
        "idle" => idle_child(),
        "ffi_driver" => ffi_driver_child(),
        "ffi_peer" => echo_child::<Ascend>(ffi_runtime()),
        "ffi_record" => ffi_record_child(1),
        "ffi_record_two" => ffi_record_child(2),
        other => panic!("unknown role {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// pingpong
// ---------------------------------------------------------------------------------------------

fn pingpong_benches(c: &mut Criterion) {
    let mut g = Group::new("pingpong");
    g.bench("sim_cross_process", || {
        Box::new(SimPair::start(cross_cpu()))
    });
    g.bench("futex_cross_process", || {
        Box::new(RawPair::start(cross_cpu(), false))
    });
    g.bench("spin_cross_process", || {
        Box::new(RawPair::start(cross_cpu(), true))
    });
    g.bench("eventfd_cross_process", || {
        Box::new(EventfdPair::start(cross_cpu()))
    });
    g.bench("iceoryx2_event", || Box::new(IoxPair::start(cross_cpu())));
    g.bench("sim_same_cpu", || Box::new(SimPair::start(same_cpu())));
    g.bench("futex_same_cpu", || {
        Box::new(RawPair::start(same_cpu(), false))
    });
    g.bench("ffi_cross_process", || {
        Box::new(FfiPair::start(cross_cpu()))
    });
    g.bench("ffi_same_cpu", || Box::new(FfiPair::start(same_cpu())));
    g.against("sim_cross_process", "spin_cross_process");
    g.against("sim_same_cpu", "futex_same_cpu");
    g.against("ffi_cross_process", "spin_cross_process");
    g.against("ffi_same_cpu", "futex_same_cpu");
    g.run(c);
}

/// A ping-pong pair: one round trip, wake the child and wait for its answer.
trait Rounds {
    fn place(&self) -> Placement;
    fn round(&mut self);
    /// `iters` one-way wakes, timed with the parent pinned.
    fn one_way(&mut self, iters: u64) -> Duration {
        pinned(self.place().parent, || {
            let start = Instant::now();
            for _ in 0..iters.div_ceil(2) {
                self.round();
            }
            start.elapsed() * iters as u32 / (2 * iters.div_ceil(2)) as u32
        })
    }
}

/// Process A (the bench process) records `n1` and waits on `n2`; process B (the child) waits on
/// `n1` and records `n2`. Each notify is created by its waiter (R4), exported with
/// `DISABLE_PID_VALIDATION` and imported by the other side with `ENABLE_PEER_ACCESS`.
struct SimPair {
    place: Placement,
    child: RoleProcess,
    stream: SimStream,
    /// Imported: the child waits on it.
    n1: SimNotify,
    /// Created here: we wait on it.
    n2: SimNotify,
    device: SimDevice,
    runtime: SimRuntime,
    ns: ScopedNamespace,
}

impl SimPair {
    fn start(place: Placement) -> Self {
        pinned(place.parent, || {
            let ns = ScopedNamespace::new("pingpong-sim");
            let runtime = ns.builder().build().expect("attach");
            let device = runtime.device(DeviceId(0)).expect("device 0");
            let n2 = device
                .create_notify(NotifyFlags::DEFAULT)
                .expect("create n2");
            let key2 = n2
                .export(ExportFlags::DISABLE_PID_VALIDATION)
                .expect("export n2");
            let mut child = spawn("sim", place.child, &ns.env());
            child.send(key2.as_str());
            let key1: ExportKey = child.recv().parse().expect("key from the child");
            let n1 = device
                .import_notify(&key1, ImportFlags::ENABLE_PEER_ACCESS)
                .expect("import n1");
            let stream = device.create_stream().expect("create stream");
            expect(&mut child, "ready");
            Self {
                place,
                child,
                stream,
                n1,
                n2,
                device,
                runtime,
                ns,
            }
        })
    }
}

impl Rounds for SimPair {
    fn place(&self) -> Placement {
        self.place
    }

    #[inline]
    fn round(&mut self) {
        self.stream.record(&self.n1).expect("record n1");
        self.stream
            .wait(&self.n2, Timeout::FOREVER)
            .expect("wait n2");
        self.stream.synchronize().expect("synchronize");
    }
}

impl Timed for SimPair {
    fn timed(&mut self, iters: u64) -> Duration {
        self.one_way(iters)
    }

    fn stop(self: Box<Self>) {
        let Self {
            mut child,
            stream,
            n1,
            n2,
            device,
            runtime,
            ns,
            ..
        } = *self;
        child.send("stop");
        expect(&mut child, "stopping");
        // The child is blocked waiting on n1: one last record lets it see the stop.
        stream.record(&n1).expect("record n1");
        stream.synchronize().expect("synchronize");
        finish(child);
        drop((n1, n2, stream, device, runtime));
        drop(ns);
    }
}

/// The echo side of `pingpong/sim_*` and `pingpong/ffi_*`, on either backend: waits on its
/// own notify and answers on the driver's, until told to stop.
fn echo_child<B: Backend>(rt: B::Runtime) {
    let mut link = StdioLink;
    let device = rt.device(DeviceId(1)).expect("device 1");
    let n1 = device
        .create_notify(NotifyFlags::DEFAULT)
        .expect("create n1");
    let key1 = n1
        .export(ExportFlags::DISABLE_PID_VALIDATION)
        .expect("export n1");
    let key2: ExportKey = link.recv().parse().expect("a key from the driver");
    link.send(key1.as_str());
    let n2 = device
        .import_notify(&key2, ImportFlags::ENABLE_PEER_ACCESS)
        .expect("import n2");
    let s = device.create_stream().expect("create stream");
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut link = StdioLink;
            match link.try_recv().as_deref() {
                Some("stop") => {
                    stop.store(true, SeqCst);
                    link.send("stopping");
                }
                _ => std::process::exit(3),
            }
        });
    }
    link.send("ready");
    loop {
        s.wait(&n1, Timeout::FOREVER).expect("wait n1");
        s.synchronize().expect("synchronize");
        if stop.load(SeqCst) {
            break;
        }
        s.record(&n2).expect("record n2");
    }
    // Handles before the runtime; through the C ABI, the last one out calls aclFinalize.
    drop((n2, n1, s, device, rt));
}

// ---------------------------------------------------------------------------------------------
// ffi: the same ping-pong through the C ABI (backend-ascend over ascendcl-sim's libascendcl.so)
// ---------------------------------------------------------------------------------------------

/// In an `ffi_*` child: loads the library and calls `aclInit` (namespace from the environment).
fn ffi_runtime() -> AscendRuntime {
    let lib = std::env::var(common::ENV_LIB).expect("the library path");
    let rt = AscendRuntime::builder()
        .library_path(lib)
        .build()
        .expect("loading libascendcl.so and aclInit");
    assert_eq!(
        rt.kind(),
        notify_api::BackendKind::Ascend,
        "the C ABI, not the Rust API"
    );
    rt
}

/// The same two notifies as [`SimPair`], but both sides are child processes that go through
/// the C ABI: the driver (on the parent's CPU) records `n1` and waits on `n2`, timing its own
/// rounds; the peer waits on `n1` and records `n2`. The bench process only relays keys and
/// round counts.
struct FfiPair {
    driver: RoleProcess,
    peer: RoleProcess,
    ns: ScopedNamespace,
}

impl FfiPair {
    fn start(place: Placement) -> Self {
        let ns = ScopedNamespace::new("pingpong-ffi");
        let env = ffi_env(&ns);
        let mut driver = spawn("ffi_driver", place.parent, &env);
        let key2 = driver.recv();
        let mut peer = spawn("ffi_peer", place.child, &env);
        peer.send(&key2);
        let key1 = peer.recv();
        expect(&mut peer, "ready");
        driver.send(&key1);
        expect(&mut driver, "ready");
        Self { driver, peer, ns }
    }
}

impl Timed for FfiPair {
    fn timed(&mut self, iters: u64) -> Duration {
        // The driver times round trips: half as many, for `iters` one-way wakes.
        let rounds = iters.div_ceil(2);
        timed_in(&mut self.driver, rounds) * iters as u32 / (2 * rounds) as u32
    }

    fn stop(self: Box<Self>) {
        let Self {
            mut driver,
            mut peer,
            ns,
        } = *self;
        peer.send("stop");
        expect(&mut peer, "stopping");
        // The driver records n1 once more, which lets the peer see the stop, and exits.
        driver.send("stop");
        finish(driver);
        finish(peer);
        drop(ns);
    }
}

fn ffi_driver_child() {
    let mut link = StdioLink;
    let rt = ffi_runtime();
    let device = rt.device(DeviceId(0)).expect("device 0");
    let n2 = device
        .create_notify(NotifyFlags::DEFAULT)
        .expect("create n2");
    let key2 = n2
        .export(ExportFlags::DISABLE_PID_VALIDATION)
        .expect("export n2");
    link.send(key2.as_str());
    let key1: ExportKey = link.recv().parse().expect("a key from the peer");
    let n1 = device
        .import_notify(&key1, ImportFlags::ENABLE_PEER_ACCESS)
        .expect("import n1");
    let stream = device.create_stream().expect("create stream");
    link.send("ready");
    serve_timed(&mut link, |rounds| {
        for _ in 0..rounds {
            stream.record(&n1).expect("record");
            stream.wait(&n2, Timeout::FOREVER).expect("wait");
            stream.synchronize().expect("synchronize");
        }
    });
    // The peer has seen "stop" and is blocked on n1: one last record releases it.
    stream.record(&n1).expect("record n1");
    stream.synchronize().expect("synchronize");
    // Handles before the runtime; the last one out calls aclFinalize.
    drop((n1, n2, stream, device, rt));
}

// ---------------------------------------------------------------------------------------------
// Raw floors: shared futex and spinning on a shared mapping
// ---------------------------------------------------------------------------------------------

struct RawPair {
    place: Placement,
    child: RoleProcess,
    page: SharedMap,
    seq: u32,
    spin: bool,
}

const PAGE: usize = 4096;

impl RawPair {
    fn start(place: Placement, spin: bool) -> Self {
        let (fd, page) = SharedMap::create(PAGE);
        let child = spawn(
            if spin { "spin" } else { "futex" },
            place.child,
            &[(ENV_FD.into(), fd.as_raw_fd().to_string())],
        );
        drop(fd);
        let mut pair = Self {
            place,
            child,
            page,
            seq: 0,
            spin,
        };
        expect(&mut pair.child, "ready");
        if spin {
            pair.park();
        }
        pair
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        if self.seq >= RESUME || self.seq == 0 {
            self.seq = 1;
        }
        self.seq
    }

    /// The spinning child sleeps until [`RawPair::resume`].
    fn park(&mut self) {
        let (ping, pong) = (self.page.word(0), self.page.word(1));
        ping.store(PARK, Release);
        while pong.load(Acquire) != PARK {
            std::hint::spin_loop();
        }
    }

    fn resume(&mut self) {
        let (ping, pong) = (self.page.word(0), self.page.word(1));
        ping.store(RESUME, Release);
        let _ = futex::wake(ping, futex::Flags::empty(), 1);
        while pong.load(Acquire) != RESUME {
            std::hint::spin_loop();
        }
    }
}

impl Rounds for RawPair {
    fn place(&self) -> Placement {
        self.place
    }

    #[inline]
    fn round(&mut self) {
        let seq = self.next_seq();
        let (ping, pong) = (self.page.word(0), self.page.word(1));
        ping.store(seq, Release);
        if self.spin {
            while pong.load(Acquire) != seq {
                std::hint::spin_loop();
            }
        } else {
            let _ = futex::wake(ping, futex::Flags::empty(), 1);
            loop {
                let v = pong.load(Acquire);
                if v == seq {
                    break;
                }
                let _ = futex::wait(pong, futex::Flags::empty(), v, None);
            }
        }
    }
}

impl Timed for RawPair {
    fn timed(&mut self, iters: u64) -> Duration {
        if !self.spin {
            return self.one_way(iters);
        }
        let place = self.place;
        pinned(place.parent, || self.resume());
        let t = self.one_way(iters);
        self.park();
        t
    }

    fn stop(self: Box<Self>) {
        let ping = self.page.word(0);
        ping.store(STOP, Release);
        let _ = futex::wake(ping, futex::Flags::empty(), 1);
        finish(self.child);
    }
}

/// Echoes every new ping value into pong; sleeps while parked.
fn raw_child(spin: bool) {
    let page = SharedMap::map(env_fd(ENV_FD), PAGE);
    let (ping, pong) = (page.word(0), page.word(1));
    common::exit_with_parent();
    StdioLink.send("ready");
    let mut last = 0;
    loop {
        let v = ping.load(Acquire);
        if v == last {
            if spin && v != PARK {
                std::hint::spin_loop();
            } else {
                let _ = futex::wait(ping, futex::Flags::empty(), v, None);
            }
            continue;
        }
        if v == STOP {
            break;
        }
        last = v;
        pong.store(v, Release);
        if !spin {
            let _ = futex::wake(pong, futex::Flags::empty(), 1);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// eventfd
// ---------------------------------------------------------------------------------------------

struct EventfdPair {
    place: Placement,
    child: RoleProcess,
    ping: OwnedFd,
    pong: OwnedFd,
}

impl EventfdPair {
    fn start(place: Placement) -> Self {
        // No CLOEXEC: the child inherits both.
        let flags = rustix::event::EventfdFlags::empty();
        let ping = rustix::event::eventfd(0, flags).expect("eventfd");
        let pong = rustix::event::eventfd(0, flags).expect("eventfd");
        let mut child = spawn(
            "eventfd",
            place.child,
            &[
                (ENV_FD.into(), ping.as_raw_fd().to_string()),
                (ENV_FD2.into(), pong.as_raw_fd().to_string()),
            ],
        );
        expect(&mut child, "ready");
        Self {
            place,
            child,
            ping,
            pong,
        }
    }
}

fn efd_write(fd: BorrowedFd<'_>, v: u64) {
    rustix::io::write(fd, &v.to_ne_bytes()).expect("eventfd write");
}

fn efd_read(fd: BorrowedFd<'_>) -> u64 {
    let mut buf = [0u8; 8];
    loop {
        match rustix::io::read(fd, &mut buf) {
            Ok(8) => return u64::from_ne_bytes(buf),
            Err(rustix::io::Errno::INTR) => continue,
            other => panic!("eventfd read: {other:?}"),
        }
    }
}

impl Rounds for EventfdPair {
    fn place(&self) -> Placement {
        self.place
    }

    #[inline]
    fn round(&mut self) {
        efd_write(self.ping.as_fd(), 1);
        efd_read(self.pong.as_fd());
    }
}

impl Timed for EventfdPair {
    fn timed(&mut self, iters: u64) -> Duration {
        self.one_way(iters)
    }

    fn stop(self: Box<Self>) {
        efd_write(self.ping.as_fd(), STOP_EVENTFD);
        finish(self.child);
    }
}

fn eventfd_child() {
    let ping = env_fd(ENV_FD);
    let pong = env_fd(ENV_FD2);
    common::exit_with_parent();
    StdioLink.send("ready");
    loop {
        if efd_read(ping) >= STOP_EVENTFD {
            break;
        }
        efd_write(pong, 1);
    }
}

// ---------------------------------------------------------------------------------------------
// iceoryx2 event service
// ---------------------------------------------------------------------------------------------

mod iox {
    pub use iceoryx2::port::listener::Listener;
    pub use iceoryx2::port::notifier::Notifier;
    use iceoryx2::prelude::{
        Config, FileName, LogLevel, NodeBuilder, Path, SemanticString, ServiceName,
        SignalHandlingMode, set_log_level,
    };
    pub use iceoryx2::prelude::{EventId, Node, ipc};
    pub use iceoryx2::service::port_factory::event::PortFactory;

    pub type Svc = ipc::Service;

    /// Where one bench run keeps its iceoryx2 files: a private root directory and a private
    /// prefix for the shared-memory names, so that [`cleanup`] can remove everything (iceoryx2
    /// keeps a persistent `*.global_mgmt` segment otherwise).
    pub fn tag(parent_pid: u32) -> (String, String) {
        (
            format!("/tmp/ascend-notify-bench-iox2-{parent_pid}/"),
            format!("ascnbench{parent_pid}_"),
        )
    }

    pub fn node(parent_pid: u32) -> Node<Svc> {
        set_log_level(LogLevel::Error);
        let (root, prefix) = tag(parent_pid);
        let mut cfg = Config::default();
        cfg.global
            .set_root_path(&Path::new(root.as_bytes()).expect("iceoryx2 root path"));
        cfg.global.prefix = FileName::new(prefix.as_bytes()).expect("iceoryx2 prefix");
        NodeBuilder::new()
            .config(&cfg)
            .signal_handling_mode(SignalHandlingMode::Disabled)
            .create::<Svc>()
            .expect("iceoryx2 node")
    }

    /// Removes the root directory and every shared-memory file with our prefix.
    pub fn cleanup(parent_pid: u32) {
        let (root, prefix) = tag(parent_pid);
        let _ = std::fs::remove_dir_all(&root);
        if let Ok(dir) = std::fs::read_dir("/dev/shm") {
            for e in dir.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }

    pub fn service(node: &Node<Svc>, name: &str) -> PortFactory<Svc> {
        let name: ServiceName = name.try_into().expect("service name");
        node.service_builder(&name)
            .event()
            .open_or_create()
            .expect("iceoryx2 event service")
    }

    /// Blocks until at least one event arrives; returns whether the stop event was among them.
    pub fn wait(listener: &Listener<Svc>, stop_id: usize) -> bool {
        let mut got = false;
        let mut stop = false;
        while !got {
            listener
                .blocking_wait(|e| {
                    got = true;
                    if e.id == EventId::new(stop_id) {
                        stop = true;
                    }
                })
                .expect("iceoryx2 blocking_wait");
        }
        stop
    }
}

struct IoxPair {
    place: Placement,
    child: RoleProcess,
    notifier: iox::Notifier<iox::Svc>,
    listener: iox::Listener<iox::Svc>,
    ping_svc: iox::PortFactory<iox::Svc>,
    pong_svc: iox::PortFactory<iox::Svc>,
    node: iox::Node<iox::Svc>,
}

const IOX_SERVICE: &str = "ascend-notify-bench/pingpong";

impl IoxPair {
    fn start(place: Placement) -> Self {
        let pid = std::process::id();
        let node = iox::node(pid);
        let ping_svc = iox::service(&node, &format!("{IOX_SERVICE}/ping"));
        let pong_svc = iox::service(&node, &format!("{IOX_SERVICE}/pong"));
        let listener = pong_svc.listener_builder().create().expect("listener");
        let mut child = spawn(
            "iceoryx2",
            place.child,
            &[(ENV_SERVICE.into(), pid.to_string())],
        );
        expect(&mut child, "ready");
        // Created after the child's listener exists, so it connects to it.
        let notifier = ping_svc.notifier_builder().create().expect("notifier");
        Self {
            place,
            child,
            notifier,
            listener,
            ping_svc,
            pong_svc,
            node,
        }
    }
}

impl Rounds for IoxPair {
    fn place(&self) -> Placement {
        self.place
    }

    #[inline]
    fn round(&mut self) {
        let n = self.notifier.notify().expect("notify");
        debug_assert_eq!(n, 1);
        iox::wait(&self.listener, STOP_EVENT_ID);
    }
}

impl Timed for IoxPair {
    fn timed(&mut self, iters: u64) -> Duration {
        self.one_way(iters)
    }

    fn stop(self: Box<Self>) {
        self.notifier
            .notify_with_custom_event_id(iox::EventId::new(STOP_EVENT_ID))
            .expect("notify stop");
        let Self {
            child,
            notifier,
            listener,
            ping_svc,
            pong_svc,
            node,
            ..
        } = *self;
        finish(child);
        drop((notifier, listener, ping_svc, pong_svc, node));
        iox::cleanup(std::process::id());
    }
}

fn iceoryx2_child() {
    let parent: u32 = std::env::var(ENV_SERVICE)
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("parent pid");
    let node = iox::node(parent);
    let ping_svc = iox::service(&node, &format!("{IOX_SERVICE}/ping"));
    let pong_svc = iox::service(&node, &format!("{IOX_SERVICE}/pong"));
    let listener = ping_svc.listener_builder().create().expect("listener");
    let notifier = pong_svc.notifier_builder().create().expect("notifier");
    common::exit_with_parent();
    StdioLink.send("ready");
    while !iox::wait(&listener, STOP_EVENT_ID) {
        notifier.notify().expect("notify");
    }
    drop((notifier, listener, ping_svc, pong_svc, node));
}

// ---------------------------------------------------------------------------------------------
// record: a record nobody waits for
// ---------------------------------------------------------------------------------------------

/// A bench subject that records on a notify of its own, on an idle stream: the same code over
/// the typed API's handles and over the facade's erased ones.
macro_rules! record_subject {
    ($(#[$doc:meta])* $name:ident, $notify:ty, $stream:ty, $device:ty, $runtime:ty) => {
        $(#[$doc])*
        struct $name {
            notify: $notify,
            stream: $stream,
            device: $device,
            runtime: $runtime,
            ns: ScopedNamespace,
        }

        impl Timed for $name {
            fn timed(&mut self, iters: u64) -> Duration {
                let start = Instant::now();
                for _ in 0..iters {
                    self.stream.record(&self.notify).expect("record");
                }
                start.elapsed()
            }

            fn stop(self: Box<Self>) {
                let Self {
                    notify,
                    stream,
                    device,
                    runtime,
                    ns,
                } = *self;
                stream.synchronize().expect("synchronize");
                drop((notify, stream, device, runtime));
                drop(ns);
            }
        }
    };
}

record_subject!(
    /// Through the typed API.
    SimRecord,
    SimNotify,
    SimStream,
    SimDevice,
    SimRuntime
);
record_subject!(
    /// Through the facade's erased handles (`ascend_notify::Stream` over the simulator).
    FacadeRecord,
    ascend_notify::Notify,
    ascend_notify::Stream,
    ascend_notify::Device,
    ascend_notify::Runtime
);

/// A child that records through the C ABI and times itself.
struct ChildTimed {
    child: RoleProcess,
    ns: ScopedNamespace,
}

impl Timed for ChildTimed {
    fn timed(&mut self, iters: u64) -> Duration {
        timed_in(&mut self.child, iters)
    }

    fn stop(self: Box<Self>) {
        let Self { mut child, ns } = *self;
        child.send("stop");
        finish(child);
        drop(ns);
    }
}

fn record_benches(c: &mut Criterion) {
    let mut g = Group::new("record");
    g.bench("sim_no_waiter", || {
        let ns = ScopedNamespace::new("record");
        let runtime = ns.builder().build().expect("attach");
        let device = runtime.device(DeviceId(0)).expect("device 0");
        let notify = device.create_notify(NotifyFlags::DEFAULT).expect("create");
        let stream = device.create_stream().expect("stream");
        Box::new(SimRecord {
            notify,
            stream,
            device,
            runtime,
            ns,
        })
    });
    g.bench("facade_no_waiter", || {
        let ns = ScopedNamespace::new("record-facade");
        let runtime = ascend_notify::Runtime::builder()
            .backend(notify_api::BackendKind::Sim)
            .namespace(ns.name())
            .devices(4)
            .capacity(64)
            .build()
            .expect("attach");
        let device = runtime.device(DeviceId(0)).expect("device 0");
        let notify = device.create_notify(NotifyFlags::DEFAULT).expect("create");
        let stream = device.create_stream().expect("stream");
        Box::new(FacadeRecord {
            notify,
            stream,
            device,
            runtime,
            ns,
        })
    });
    // Through the C ABI, in a child that loads libascendcl.so and times itself: on one notify,
    // and alternating two (as a process that records its peer's notify and waits on its own
    // does; an iteration is one record).
    for (id, role) in [
        ("ffi_no_waiter", "ffi_record"),
        ("ffi_two_notifies", "ffi_record_two"),
    ] {
        g.bench(id, move || {
            let ns = ScopedNamespace::new("record-ffi");
            let mut child = spawn(role, None, &ffi_env(&ns));
            expect(&mut child, "ready");
            Box::new(ChildTimed { child, ns })
        });
    }
    g.run(c);
}

/// `ffi_record`/`ffi_record_two`: records on `notifies` notifies in turn.
fn ffi_record_child(notifies: usize) {
    let mut link = StdioLink;
    let rt = ffi_runtime();
    let device = rt.device(DeviceId(0)).expect("device 0");
    let ns: Vec<_> = (0..notifies)
        .map(|_| device.create_notify(NotifyFlags::DEFAULT).expect("create"))
        .collect();
    let s = device.create_stream().expect("stream");
    link.send("ready");
    serve_timed(&mut link, |iters| {
        for n in ns.iter().cycle().take(iters as usize) {
            s.record(n).expect("record");
        }
    });
    s.synchronize().expect("synchronize");
    drop((ns, s, device, rt));
}

// ---------------------------------------------------------------------------------------------
// stream: host functions and events (issue 14), against the notify ping-pong
// ---------------------------------------------------------------------------------------------

/// A host function's enqueue-to-run latency: each iteration takes the time, enqueues one on an
/// idle stream, and spins until it has run; the function takes the time when it starts. An
/// iteration counts from the first to the second (one way, as the ping-pong's are), both read
/// from the same clock. Between iterations the stream is let go idle (nothing queued or
/// running), untimed.
struct HostFn {
    stream: SimStream,
    /// When the latest host function started, in ns since `base`; 0 before it ran.
    started: Arc<AtomicU64>,
    base: Instant,
    device: SimDevice,
    runtime: SimRuntime,
    ns: ScopedNamespace,
}

impl Timed for HostFn {
    fn timed(&mut self, iters: u64) -> Duration {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            self.started.store(0, Relaxed);
            let (started, base) = (Arc::clone(&self.started), self.base);
            let enqueued = base.elapsed();
            self.stream
                .launch_host_fn(move || {
                    started.store(base.elapsed().as_nanos() as u64, Release);
                })
                .expect("launch_host_fn");
            let ran = loop {
                let t = self.started.load(Acquire);
                if t != 0 {
                    break t;
                }
                std::hint::spin_loop();
            };
            total += Duration::from_nanos(ran).saturating_sub(enqueued);
            while !self.stream.is_complete().expect("stream query") {
                std::hint::spin_loop();
            }
        }
        total
    }

    fn stop(self: Box<Self>) {
        let Self {
            stream,
            device,
            runtime,
            ns,
            ..
        } = *self;
        stream.synchronize().expect("synchronize");
        drop((stream, device, runtime));
        drop(ns);
    }
}

/// An event recorded on `s1` and waited for by `s2`, then `s2` synchronized.
struct EventCrossStream {
    s1: SimStream,
    s2: SimStream,
    event: SimEvent,
    device: SimDevice,
    runtime: SimRuntime,
    ns: ScopedNamespace,
}

impl Timed for EventCrossStream {
    fn timed(&mut self, iters: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..iters {
            self.s1.record_event(&self.event).expect("record_event");
            self.s2.wait_event(&self.event).expect("wait_event");
            self.s2.synchronize().expect("synchronize");
        }
        start.elapsed()
    }

    fn stop(self: Box<Self>) {
        let Self {
            s1,
            s2,
            event,
            device,
            runtime,
            ns,
        } = *self;
        s1.synchronize().expect("synchronize");
        drop((event, s1, s2, device, runtime));
        drop(ns);
    }
}

fn stream_benches(c: &mut Criterion) {
    let mut g = Group::new("stream");
    g.bench("host_fn", || {
        let ns = ScopedNamespace::new("host-fn");
        let runtime = ns.builder().build().expect("attach");
        let device = runtime.device(DeviceId(0)).expect("device 0");
        let stream = device.create_stream().expect("stream");
        Box::new(HostFn {
            stream,
            started: Arc::new(AtomicU64::new(0)),
            base: Instant::now(),
            device,
            runtime,
            ns,
        })
    });
    g.bench("event_record_wait", || {
        let ns = ScopedNamespace::new("event");
        let runtime = ns.builder().build().expect("attach");
        let device = runtime.device(DeviceId(0)).expect("device 0");
        let s1 = device.create_stream().expect("stream 1");
        let s2 = device.create_stream().expect("stream 2");
        let event = device.create_event(EventFlags::DEFAULT).expect("event");
        Box::new(EventCrossStream {
            s1,
            s2,
            event,
            device,
            runtime,
            ns,
        })
    });
    g.floor_only("pingpong_one_way", || Box::new(SimPair::start(unpinned())));
    g.against("host_fn", "pingpong_one_way");
    g.against("event_record_wait", "pingpong_one_way");
    g.run(c);
}

// ---------------------------------------------------------------------------------------------
// Idle cost of a blocked waiter
// ---------------------------------------------------------------------------------------------

fn cpu_time_self() -> Duration {
    // SAFETY: getrusage writes a whole `rusage` into the zeroed struct we pass.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut ru), 0);
        ru
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn idle_child() {
    let rt = SimRuntime::from_env().expect("attach");
    let device = rt.device(DeviceId(0)).expect("device 0");
    let n = device.create_notify(NotifyFlags::DEFAULT).expect("create");
    let s = device.create_stream().expect("stream");
    let cpu0 = cpu_time_self();
    let t0 = Instant::now();
    s.wait(&n, Timeout::secs(1)).expect("wait");
    let err = s
        .synchronize()
        .expect_err("nobody records: the wait times out");
    let wall = t0.elapsed();
    let cpu = cpu_time_self() - cpu0;
    assert_eq!(err.code(), AclError::RT_WAIT_TIMEOUT, "{err}");
    StdioLink.send(&format!("{} {}", cpu.as_nanos(), wall.as_nanos()));
    drop((n, s, device, rt));
}

fn idle_cost() {
    let ns = ScopedNamespace::new("idle");
    let mut child = spawn("idle", None, &ns.env());
    let line = child.recv();
    finish(child);
    drop(ns);
    let mut it = line.split(' ').map(|v| v.parse::<u128>().expect("ns"));
    let (cpu, wall) = (it.next().expect("cpu"), it.next().expect("wall"));
    let pct = cpu as f64 / wall as f64 * 100.0;
    report(format!(
        "idle_cost: {pct:.3}% of a CPU ({:.3} ms of CPU over {:.1} ms blocked on a wait nobody \
         records, timeout 1 s)",
        cpu as f64 / 1e6,
        wall as f64 / 1e6
    ));
}
