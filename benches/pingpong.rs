//! Wake latency of the simulator across real processes, against the floors and the best existing
//! IPC library (SEMANTICS.md §4 "Waking").
//!
//! - `pingpong/*`: one-way latency of a wake between two processes, measured as half the round
//!   trip of a ping-pong (`iter_custom`: one iteration = one one-way wake).
//!   - `sim_cross_process`, `sim_same_cpu`: through the public API of `backend-sim`;
//!   - `futex_cross_process`, `futex_same_cpu`: a raw shared (non-private) futex on two words of a
//!     shared mapping: the system-call floor;
//!   - `spin_cross_process`: busy-waiting on shared cache lines: the hardware floor;
//!   - `eventfd_cross_process`: two eventfds, blocking `read`/`write`;
//!   - `iceoryx2_event`: the `iceoryx2` event service (ipc);
//!   - `ffi_cross_process`, `ffi_same_cpu`: the same ping-pong as `sim_*`, but through the C ABI:
//!     `backend-ascend` driving the `libascendcl.so` that `ascendcl-sim` builds.
//!
//!   `*_cross_process` pins the two processes to two different CPUs (when there are two),
//!   `*_same_cpu` pins both to the first allowed CPU.
//! - `record/sim_no_waiter`, `record/ffi_no_waiter`: a record that nobody waits for, on an idle
//!   stream (through the Rust API, and through the C ABI); `record/ffi_two_notifies`: the same,
//!   alternating two notifies (as a process that records its peer's and waits on its own).
//! - `import/live_1`, `import/live_8191`: one import + destroy of a notify exported by a helper
//!   process, when the device holds 1 or 8191 live notifies.
//!
//! After criterion, the binary prints the idle cost of a blocked waiter (`idle_cost: X% of a
//! CPU`) and a summary of the medians and ratios (also: `python3 benches/report.py`).
//!
//! Child processes are this binary re-executed with `PINGPONG_ROLE` set; they exit when the
//! parent tells them to, or when their stdin closes (the parent died).
//!
//! # The `ffi_*` ids
//! `aclInit` is process-wide and reads its namespace from `ASCEND_NOTIFY_SIM_NAMESPACE`, so
//! every process that loads the C library is a child started with that variable set: both sides
//! of `pingpong/ffi_*` (the driving side times its rounds itself and reports them to the bench
//! process) and the recorders of `record/ffi_*`. The library is
//! `target/<profile>/libascendcl.so`, next to this binary's `deps/` directory. `cargo bench`
//! does not build it (the root package does not depend on the cdylib), so before the first
//! `ffi_*` id the bench runs `cargo build --profile <profile> -p ascendcl-sim` itself, with the
//! `cargo` that built it (`env!("CARGO")`): a no-op when it is up to date, and never a stale
//! library measured after a change to `ascendcl-sim`.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::Ordering::{Acquire, Release, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use backend_ascend::{AscendBackend, AscendNotify, AscendStream};
use backend_sim::testing::ScopedNamespace;
use backend_sim::{SimBackend, SimNotify, SimStream};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use notify_api::{
    AclError, Backend, DeviceId, ExportFlags, ExportKey, ImportFlags, Notify as _, NotifyFlags,
    Stream as _,
};
use rustix::thread::{CpuSet, futex};

const ENV_ROLE: &str = "PINGPONG_ROLE";
const ENV_CPU: &str = "PINGPONG_CPU";
const ENV_FD: &str = "PINGPONG_FD";
const ENV_FD2: &str = "PINGPONG_FD2";
const ENV_COUNT: &str = "PINGPONG_COUNT";
const ENV_SERVICE: &str = "PINGPONG_SERVICE";
/// The `libascendcl.so` an `ffi_*` child loads.
const ENV_LIB: &str = "PINGPONG_LIB";

/// The value of the ping word (or eventfd increment) that tells a raw child to exit.
const STOP: u32 = u32::MAX;
const STOP_EVENTFD: u64 = 1 << 40;
/// iceoryx2 event id that tells the child to exit (default `event_id_max_value` is 255).
const STOP_EVENT_ID: usize = 7;

/// Device capacity of the namespaces of the import bench (R11's default).
const CAPACITY: u32 = 8192;

// ---------------------------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------------------------

fn main() {
    if let Ok(role) = std::env::var(ENV_ROLE) {
        run_child(&role);
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    let listing = args
        .iter()
        .any(|a| a == "--list" || a == "--help" || a == "-h");
    original_affinity();

    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();

    pingpong_benches(&mut c);
    record_benches(&mut c);
    import_benches(&mut c);
    c.final_summary();

    if !listing {
        idle_cost();
        summary();
    }
}

// ---------------------------------------------------------------------------------------------
// CPU placement
// ---------------------------------------------------------------------------------------------

fn original_affinity() -> &'static CpuSet {
    static ORIG: OnceLock<CpuSet> = OnceLock::new();
    ORIG.get_or_init(|| rustix::thread::sched_getaffinity(None).expect("sched_getaffinity"))
}

fn allowed_cpus() -> Vec<usize> {
    let set = original_affinity();
    (0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect()
}

/// Pins the calling thread (threads it starts later inherit the mask).
fn pin(cpu: Option<usize>) {
    if let Some(cpu) = cpu {
        let mut set = CpuSet::new();
        set.set(cpu);
        rustix::thread::sched_setaffinity(None, &set).expect("sched_setaffinity");
    }
}

fn unpin(cpu: Option<usize>) {
    if cpu.is_some() {
        rustix::thread::sched_setaffinity(None, original_affinity()).expect("sched_setaffinity");
    }
}

/// (parent CPU, child CPU).
#[derive(Copy, Clone, Debug)]
struct Placement {
    parent: Option<usize>,
    child: Option<usize>,
}

fn cross_cpu() -> Placement {
    let cpus = allowed_cpus();
    if cpus.len() >= 2 {
        Placement {
            parent: Some(cpus[0]),
            child: Some(cpus[1]),
        }
    } else {
        Placement {
            parent: None,
            child: None,
        }
    }
}

fn same_cpu() -> Placement {
    let cpu = allowed_cpus().first().copied();
    Placement {
        parent: cpu,
        child: cpu,
    }
}

// ---------------------------------------------------------------------------------------------
// Child processes: spawning and the line protocol
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct ChildProc {
    role: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl ChildProc {
    fn spawn(role: &str, cpu: Option<usize>, env: &[(String, String)]) -> Self {
        let exe = std::env::current_exe().expect("current_exe");
        let mut cmd = Command::new(exe);
        cmd.env(ENV_ROLE, role)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(cpu) = cpu {
            cmd.env(ENV_CPU, cpu.to_string());
        }
        let mut child = cmd.spawn().expect("re-executing the bench binary");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Self {
            role: role.to_owned(),
            child,
            stdin,
            stdout,
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("child {:?} went away: {e}", self.role));
    }

    fn recv(&mut self) -> String {
        let mut line = String::new();
        match self.stdout.read_line(&mut line) {
            Ok(n) if n > 0 => line.trim_end().to_owned(),
            _ => panic!("child {:?} exited before answering", self.role),
        }
    }

    fn expect(&mut self, want: &str) {
        let got = self.recv();
        assert_eq!(got, want, "child {:?} said {got:?}", self.role);
    }

    /// Waits for the child (already told to stop) to exit successfully. Its stdin stays open
    /// until then: a closed stdin means "the parent died" to the child.
    fn finish(mut self) {
        let status = self.child.wait().expect("waiting for the child");
        drop(self.stdin.take());
        assert!(status.success(), "child {:?} failed: {status}", self.role);
    }
}

/// The child's side of the line protocol.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn hear() -> Option<String> {
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(n) if n > 0 => Some(line.trim_end().to_owned()),
        _ => None,
    }
}

/// Exits the child when stdin closes (the parent is gone), so nothing is left spinning.
fn exit_on_stdin_eof() {
    std::thread::spawn(|| {
        while hear().is_some() {}
        std::process::exit(3);
    });
}

fn env_fd(name: &str) -> BorrowedFd<'static> {
    let raw: i32 = std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} not set"));
    // SAFETY: the parent passed this descriptor to us without CLOEXEC; it stays open for the
    // life of the process (nothing closes it).
    unsafe { BorrowedFd::borrow_raw(raw) }
}

fn run_child(role: &str) {
    let cpu = std::env::var(ENV_CPU).ok().and_then(|v| v.parse().ok());
    pin(cpu);
    match role {
        "sim" => echo_child(SimBackend::from_env().expect("child attach")),
        "futex" => raw_child(false),
        "spin" => raw_child(true),
        "eventfd" => eventfd_child(),
        "iceoryx2" => iceoryx2_child(),
        "holder" => holder_child(),
        "idle" => idle_child(),
        "ffi_driver" => ffi_driver_child(),
        "ffi_peer" => echo_child(ffi_backend()),
        "ffi_record" => ffi_record_child(1),
        "ffi_record_two" => ffi_record_child(2),
        other => panic!("unknown role {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The ping-pong driver
// ---------------------------------------------------------------------------------------------

/// The parent's side of one ping-pong pair.
trait PingPong {
    /// One round trip: wake the child, wait for its answer.
    fn round(&mut self);
    /// `iters` round trips, and how long they took.
    fn timed(&mut self, iters: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..iters {
            self.round();
        }
        start.elapsed()
    }
    /// Stops the child and cleans up.
    fn stop(self);
}

/// Ids that ran in this invocation (for the summary).
fn ran() -> &'static Mutex<BTreeSet<String>> {
    static RAN: OnceLock<Mutex<BTreeSet<String>>> = OnceLock::new();
    RAN.get_or_init(Mutex::default)
}

fn mark_ran(group: &str, id: &str) {
    ran()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(format!("{group}/{id}"));
}

fn bench_pingpong<P: PingPong>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    place: Placement,
    setup: impl FnOnce(Option<usize>) -> P,
) {
    let mut setup = Some(setup);
    let mut state: Option<P> = None;
    g.bench_function(id, |b| {
        let p = state.get_or_insert_with(|| {
            mark_ran("pingpong", id);
            pin(place.parent);
            let mut p = (setup.take().expect("set up once"))(place.child);
            // A few rounds so that lazily started threads exist (and inherit the pinning).
            p.timed(100);
            unpin(place.parent);
            p
        });
        b.iter_custom(|iters| {
            pin(place.parent);
            let elapsed = p.timed(iters);
            unpin(place.parent);
            elapsed / 2
        });
    });
    if let Some(p) = state {
        p.stop();
    }
}

fn pingpong_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("pingpong");
    bench_pingpong(&mut g, "sim_cross_process", cross_cpu(), SimPair::start);
    bench_pingpong(&mut g, "futex_cross_process", cross_cpu(), |cpu| {
        RawPair::start(cpu, false)
    });
    bench_pingpong(&mut g, "spin_cross_process", cross_cpu(), |cpu| {
        RawPair::start(cpu, true)
    });
    bench_pingpong(
        &mut g,
        "eventfd_cross_process",
        cross_cpu(),
        EventfdPair::start,
    );
    bench_pingpong(&mut g, "iceoryx2_event", cross_cpu(), IoxPair::start);
    bench_pingpong(&mut g, "sim_same_cpu", same_cpu(), SimPair::start);
    bench_pingpong(&mut g, "futex_same_cpu", same_cpu(), |cpu| {
        RawPair::start(cpu, false)
    });
    bench_pingpong(&mut g, "ffi_cross_process", cross_cpu(), |cpu| {
        FfiPair::start(cross_cpu().parent, cpu)
    });
    bench_pingpong(&mut g, "ffi_same_cpu", same_cpu(), |cpu| {
        FfiPair::start(same_cpu().parent, cpu)
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// sim: through the public API
// ---------------------------------------------------------------------------------------------

/// Process A (the bench process) records `n1` and waits on `n2`; process B (the child) waits on
/// `n1` and records `n2`. Each notify is created by its waiter (R4), exported with
/// `DISABLE_PID_VALIDATION` and imported by the other side with `ENABLE_PEER_ACCESS`.
struct SimPair {
    child: ChildProc,
    stream: SimStream,
    /// Imported: the child waits on it.
    n1: SimNotify,
    /// Created here: we wait on it.
    n2: SimNotify,
    backend: SimBackend,
    ns: ScopedNamespace,
}

impl SimPair {
    fn start(child_cpu: Option<usize>) -> Self {
        let ns = ScopedNamespace::new("pingpong-sim");
        let backend = ns.builder().build().expect("attach");
        backend.set_device(DeviceId(0)).expect("set_device");
        let n2 = backend
            .create_notify(NotifyFlags::DEFAULT)
            .expect("create n2");
        let key2 = n2
            .export(ExportFlags::DISABLE_PID_VALIDATION)
            .expect("export n2");
        let mut child = ChildProc::spawn("sim", child_cpu, &ns.env());
        child.send(key2.as_str());
        let key1: ExportKey = child.recv().parse().expect("key from the child");
        let n1 = backend
            .import_notify(&key1, ImportFlags::ENABLE_PEER_ACCESS)
            .expect("import n1");
        let stream = backend.create_stream().expect("create stream");
        child.expect("ready");
        Self {
            child,
            stream,
            n1,
            n2,
            backend,
            ns,
        }
    }
}

impl PingPong for SimPair {
    #[inline]
    fn round(&mut self) {
        self.n1.record(&self.stream).expect("record n1");
        self.n2.wait_and_reset(&self.stream, 0).expect("wait n2");
        self.stream.synchronize().expect("synchronize");
    }

    fn stop(self) {
        let Self {
            mut child,
            stream,
            n1,
            n2,
            backend,
            ns,
        } = self;
        child.send("stop");
        child.expect("stopping");
        // The child is blocked waiting on n1: one last record lets it see the stop.
        n1.record(&stream).expect("record n1");
        stream.synchronize().expect("synchronize");
        child.finish();
        drop((n1, n2, stream, backend));
        drop(ns);
    }
}

/// The echo side of `pingpong/sim_*` and `pingpong/ffi_*`, on either backend: waits on its
/// own notify and answers on the driver's, until told to stop.
fn echo_child<B: Backend>(b: B) {
    b.set_device(DeviceId(1)).expect("set_device");
    let n1 = b.create_notify(NotifyFlags::DEFAULT).expect("create n1");
    let key1 = n1
        .export(ExportFlags::DISABLE_PID_VALIDATION)
        .expect("export n1");
    let key2: ExportKey = hear().expect("key from the driver").parse().expect("a key");
    say(key1.as_str());
    let n2 = b
        .import_notify(&key2, ImportFlags::ENABLE_PEER_ACCESS)
        .expect("import n2");
    let s = b.create_stream().expect("create stream");
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || match hear().as_deref() {
            Some("stop") => {
                stop.store(true, SeqCst);
                say("stopping");
            }
            _ => std::process::exit(3),
        });
    }
    say("ready");
    loop {
        n1.wait_and_reset(&s, 0).expect("wait n1");
        s.synchronize().expect("synchronize");
        if stop.load(SeqCst) {
            break;
        }
        n2.record(&s).expect("record n2");
    }
    // Handles before the backend; through the C ABI, the last one out calls aclFinalize.
    drop((n2, n1, s, b));
}

// ---------------------------------------------------------------------------------------------
// ffi: the same ping-pong through the C ABI (backend-ascend over ascendcl-sim's libascendcl.so)
// ---------------------------------------------------------------------------------------------

/// `target/<profile>/libascendcl.so`, built (or found up to date) once per bench run.
fn ffi_library() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let exe = std::env::current_exe().expect("current_exe");
        // The bench binary is target/<profile>/deps/pingpong-<hash>.
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the bench binary lives in target/<profile>/deps");
        let profile = match dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev".to_owned(),
            Some(name) => name.to_owned(),
        };
        // `cargo bench` builds the root package's dependencies as rlibs only, never the
        // workspace's cdylib: build it here. Up to date, this is a no-op of well under a second.
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "--profile",
                &profile,
                "-p",
                "ascendcl-sim",
            ])
            .arg("--manifest-path")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
            .stdin(Stdio::null())
            .status()
            .expect("running cargo to build ascendcl-sim");
        assert!(
            status.success(),
            "`cargo build --profile {profile} -p ascendcl-sim` failed: {status}"
        );
        let lib = dir.join("libascendcl.so");
        assert!(
            lib.exists(),
            "{} is missing after building ascendcl-sim (a --target build? build it there with \
             `cargo build --release -p ascendcl-sim`)",
            lib.display()
        );
        lib
    })
}

/// The environment of an `ffi_*` child: its namespace (read by `aclInit`) and the library.
fn ffi_env(ns: &ScopedNamespace) -> Vec<(String, String)> {
    let lib = ffi_library()
        .to_str()
        .expect("a UTF-8 target path")
        .to_owned();
    [ns.env(), vec![(ENV_LIB.into(), lib)]].concat()
}

/// In an `ffi_*` child: loads the library and calls `aclInit` (namespace from the environment).
fn ffi_backend() -> AscendBackend {
    let lib = std::env::var(ENV_LIB).expect("PINGPONG_LIB not set");
    let b = AscendBackend::builder()
        .library_path(lib)
        .build()
        .expect("loading libascendcl.so and aclInit");
    assert_eq!(
        b.kind(),
        notify_api::BackendKind::Ascend,
        "the C ABI, not the Rust API"
    );
    b
}

/// In an `ffi_*` child: answers `run N` with the nanoseconds `work(N)` took, until `stop`.
/// Exits the process if the parent goes away.
fn serve_timed(mut work: impl FnMut(u64)) {
    loop {
        let Some(line) = hear() else {
            std::process::exit(3);
        };
        if line == "stop" {
            return;
        }
        let iters: u64 = line
            .strip_prefix("run ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        let start = Instant::now();
        work(iters);
        say(&start.elapsed().as_nanos().to_string());
    }
}

/// Asks a `serve_timed` child for `iters` rounds and returns the time it measured.
fn timed_in(child: &mut ChildProc, iters: u64) -> Duration {
    child.send(&format!("run {iters}"));
    let ns: u64 = child.recv().parse().expect("nanoseconds from the child");
    Duration::from_nanos(ns)
}

/// The same two notifies as [`SimPair`], but both sides are child processes that go through
/// the C ABI: the driver (on the parent's CPU) records `n1` and waits on `n2`, timing its own
/// rounds; the peer waits on `n1` and records `n2`. The bench process only relays keys and
/// round counts.
struct FfiPair {
    driver: ChildProc,
    peer: ChildProc,
    ns: ScopedNamespace,
}

impl FfiPair {
    fn start(driver_cpu: Option<usize>, peer_cpu: Option<usize>) -> Self {
        let ns = ScopedNamespace::new("pingpong-ffi");
        let env = ffi_env(&ns);
        let mut driver = ChildProc::spawn("ffi_driver", driver_cpu, &env);
        let key2 = driver.recv();
        let mut peer = ChildProc::spawn("ffi_peer", peer_cpu, &env);
        peer.send(&key2);
        let key1 = peer.recv();
        peer.expect("ready");
        driver.send(&key1);
        driver.expect("ready");
        Self { driver, peer, ns }
    }
}

impl PingPong for FfiPair {
    fn round(&mut self) {
        self.timed(1);
    }

    fn timed(&mut self, iters: u64) -> Duration {
        timed_in(&mut self.driver, iters)
    }

    fn stop(self) {
        let Self {
            mut driver,
            mut peer,
            ns,
        } = self;
        peer.send("stop");
        peer.expect("stopping");
        // The driver records n1 once more, which lets the peer see the stop, and exits.
        driver.send("stop");
        driver.finish();
        peer.finish();
        drop(ns);
    }
}

/// One process of an `ffi_*` pair, after the key exchange.
struct FfiSide {
    /// Recorded by this side.
    record: AscendNotify,
    /// Created and waited on by this side.
    wait: AscendNotify,
    stream: AscendStream,
    backend: AscendBackend,
}

impl FfiSide {
    fn round_driver(&self) {
        self.record.record(&self.stream).expect("record");
        self.wait.wait_and_reset(&self.stream, 0).expect("wait");
        self.stream.synchronize().expect("synchronize");
    }

    fn close(self) {
        let Self {
            record,
            wait,
            stream,
            backend,
        } = self;
        // Handles before the backend; the last one out calls aclFinalize.
        drop((record, wait, stream, backend));
    }
}

fn ffi_driver_child() {
    let b = ffi_backend();
    b.set_device(DeviceId(0)).expect("set_device");
    let n2 = b.create_notify(NotifyFlags::DEFAULT).expect("create n2");
    let key2 = n2
        .export(ExportFlags::DISABLE_PID_VALIDATION)
        .expect("export n2");
    say(key2.as_str());
    let key1: ExportKey = hear().expect("key from the peer").parse().expect("a key");
    let n1 = b
        .import_notify(&key1, ImportFlags::ENABLE_PEER_ACCESS)
        .expect("import n1");
    let stream = b.create_stream().expect("create stream");
    let side = FfiSide {
        record: n1,
        wait: n2,
        stream,
        backend: b,
    };
    say("ready");
    serve_timed(|iters| {
        for _ in 0..iters {
            side.round_driver();
        }
    });
    // The peer has seen "stop" and is blocked on n1: one last record releases it.
    side.record.record(&side.stream).expect("record n1");
    side.stream.synchronize().expect("synchronize");
    side.close();
}

// ---------------------------------------------------------------------------------------------
// Raw floors: shared futex and spinning on a shared mapping
// ---------------------------------------------------------------------------------------------

#[repr(C, align(128))]
struct Line(AtomicU32);

#[repr(C)]
struct Words {
    ping: Line,
    pong: Line,
}

/// A page of a memfd mapped shared (the child inherits the descriptor, maps the same page).
struct SharedPage {
    ptr: *mut std::ffi::c_void,
}

const PAGE: usize = 4096;

impl SharedPage {
    fn map(fd: BorrowedFd<'_>) -> Self {
        // SAFETY: a fresh shared mapping of a descriptor that is at least PAGE bytes long; no
        // Rust reference aliases it except through atomics.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                PAGE,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
                fd,
                0,
            )
        }
        .expect("mmap");
        Self { ptr }
    }

    fn words(&self) -> &Words {
        // SAFETY: the page is mapped for the life of `self`, zero-initialised (valid atomics),
        // page-aligned and large enough for `Words`; only atomics access it.
        unsafe { &*self.ptr.cast::<Words>() }
    }
}

impl Drop for SharedPage {
    fn drop(&mut self) {
        // SAFETY: `ptr` is our own mapping of PAGE bytes and no reference to it outlives `self`.
        let _ = unsafe { rustix::mm::munmap(self.ptr, PAGE) };
    }
}

fn memfd_page() -> (OwnedFd, SharedPage) {
    // No CLOEXEC: the child inherits it.
    let fd = rustix::fs::memfd_create("ascend-notify-pingpong", rustix::fs::MemfdFlags::empty())
        .expect("memfd_create");
    rustix::fs::ftruncate(&fd, PAGE as u64).expect("ftruncate");
    let page = SharedPage::map(fd.as_fd());
    (fd, page)
}

struct RawPair {
    child: ChildProc,
    page: SharedPage,
    seq: u32,
    spin: bool,
}

impl RawPair {
    fn start(child_cpu: Option<usize>, spin: bool) -> Self {
        let (fd, page) = memfd_page();
        let mut child = ChildProc::spawn(
            if spin { "spin" } else { "futex" },
            child_cpu,
            &[(ENV_FD.into(), fd.as_raw_fd().to_string())],
        );
        drop(fd);
        child.expect("ready");
        Self {
            child,
            page,
            seq: 0,
            spin,
        }
    }
}

impl PingPong for RawPair {
    #[inline]
    fn round(&mut self) {
        self.seq = self.seq.wrapping_add(1);
        if self.seq == STOP || self.seq == 0 {
            self.seq = 1;
        }
        let seq = self.seq;
        let w = self.page.words();
        w.ping.0.store(seq, Release);
        if self.spin {
            while w.pong.0.load(Acquire) != seq {
                std::hint::spin_loop();
            }
        } else {
            let _ = futex::wake(&w.ping.0, futex::Flags::empty(), 1);
            loop {
                let v = w.pong.0.load(Acquire);
                if v == seq {
                    break;
                }
                let _ = futex::wait(&w.pong.0, futex::Flags::empty(), v, None);
            }
        }
    }

    fn stop(self) {
        let w = self.page.words();
        w.ping.0.store(STOP, Release);
        if !self.spin {
            let _ = futex::wake(&w.ping.0, futex::Flags::empty(), 1);
        }
        self.child.finish();
    }
}

fn raw_child(spin: bool) {
    let page = SharedPage::map(env_fd(ENV_FD));
    let w = page.words();
    exit_on_stdin_eof();
    say("ready");
    let mut last = 0;
    loop {
        let v = w.ping.0.load(Acquire);
        if v == last {
            if spin {
                std::hint::spin_loop();
            } else {
                let _ = futex::wait(&w.ping.0, futex::Flags::empty(), v, None);
            }
            continue;
        }
        if v == STOP {
            break;
        }
        last = v;
        w.pong.0.store(v, Release);
        if !spin {
            let _ = futex::wake(&w.pong.0, futex::Flags::empty(), 1);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// eventfd
// ---------------------------------------------------------------------------------------------

struct EventfdPair {
    child: ChildProc,
    ping: OwnedFd,
    pong: OwnedFd,
}

impl EventfdPair {
    fn start(child_cpu: Option<usize>) -> Self {
        // No CLOEXEC: the child inherits both (later children inherit them too, harmlessly,
        // until this pair is dropped).
        let flags = rustix::event::EventfdFlags::empty();
        let ping = rustix::event::eventfd(0, flags).expect("eventfd");
        let pong = rustix::event::eventfd(0, flags).expect("eventfd");
        let mut child = ChildProc::spawn(
            "eventfd",
            child_cpu,
            &[
                (ENV_FD.into(), ping.as_raw_fd().to_string()),
                (ENV_FD2.into(), pong.as_raw_fd().to_string()),
            ],
        );
        child.expect("ready");
        Self { child, ping, pong }
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

impl PingPong for EventfdPair {
    #[inline]
    fn round(&mut self) {
        efd_write(self.ping.as_fd(), 1);
        efd_read(self.pong.as_fd());
    }

    fn stop(self) {
        efd_write(self.ping.as_fd(), STOP_EVENTFD);
        self.child.finish();
        drop((self.ping, self.pong));
    }
}

fn eventfd_child() {
    let ping = env_fd(ENV_FD);
    let pong = env_fd(ENV_FD2);
    exit_on_stdin_eof();
    say("ready");
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
    child: ChildProc,
    notifier: iox::Notifier<iox::Svc>,
    listener: iox::Listener<iox::Svc>,
    ping_svc: iox::PortFactory<iox::Svc>,
    pong_svc: iox::PortFactory<iox::Svc>,
    node: iox::Node<iox::Svc>,
}

const IOX_SERVICE: &str = "ascend-notify-bench/pingpong";

impl IoxPair {
    fn start(child_cpu: Option<usize>) -> Self {
        let pid = std::process::id();
        let prefix = IOX_SERVICE;
        let node = iox::node(pid);
        let ping_svc = iox::service(&node, &format!("{prefix}/ping"));
        let pong_svc = iox::service(&node, &format!("{prefix}/pong"));
        let listener = pong_svc.listener_builder().create().expect("listener");
        let mut child = ChildProc::spawn(
            "iceoryx2",
            child_cpu,
            &[(ENV_SERVICE.into(), pid.to_string())],
        );
        child.expect("ready");
        // Created after the child's listener exists, so it connects to it.
        let notifier = ping_svc.notifier_builder().create().expect("notifier");
        Self {
            child,
            notifier,
            listener,
            ping_svc,
            pong_svc,
            node,
        }
    }
}

impl PingPong for IoxPair {
    #[inline]
    fn round(&mut self) {
        let n = self.notifier.notify().expect("notify");
        debug_assert_eq!(n, 1);
        iox::wait(&self.listener, STOP_EVENT_ID);
    }

    fn stop(self) {
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
        } = self;
        child.finish();
        drop((notifier, listener, ping_svc, pong_svc, node));
        iox::cleanup(std::process::id());
    }
}

fn iceoryx2_child() {
    let parent: u32 = std::env::var(ENV_SERVICE)
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("parent pid");
    let prefix = IOX_SERVICE;
    let node = iox::node(parent);
    let ping_svc = iox::service(&node, &format!("{prefix}/ping"));
    let pong_svc = iox::service(&node, &format!("{prefix}/pong"));
    let listener = ping_svc.listener_builder().create().expect("listener");
    let notifier = pong_svc.notifier_builder().create().expect("notifier");
    exit_on_stdin_eof();
    say("ready");
    while !iox::wait(&listener, STOP_EVENT_ID) {
        notifier.notify().expect("notify");
    }
    drop((notifier, listener, ping_svc, pong_svc, node));
}

// ---------------------------------------------------------------------------------------------
// record: a record nobody waits for
// ---------------------------------------------------------------------------------------------

fn record_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("record");
    let mut state: Option<(SimNotify, SimStream, SimBackend, ScopedNamespace)> = None;
    g.bench_function("sim_no_waiter", |b| {
        let (n, s, _, _) = state.get_or_insert_with(|| {
            mark_ran("record", "sim_no_waiter");
            let ns = ScopedNamespace::new("record");
            let backend = ns.builder().build().expect("attach");
            backend.set_device(DeviceId(0)).expect("set_device");
            let n = backend.create_notify(NotifyFlags::DEFAULT).expect("create");
            let s = backend.create_stream().expect("stream");
            (n, s, backend, ns)
        });
        b.iter(|| n.record(s).expect("record"));
    });
    if let Some((n, s, backend, ns)) = state {
        s.synchronize().expect("synchronize");
        drop((n, s, backend));
        drop(ns);
    }
    // The same through the C ABI, in a child that loads libascendcl.so and times itself: on one
    // notify, and alternating two (as a process that records its peer's notify and waits on its
    // own does; an iteration is one record).
    for (id, role) in [
        ("ffi_no_waiter", "ffi_record"),
        ("ffi_two_notifies", "ffi_record_two"),
    ] {
        let mut state: Option<(ChildProc, ScopedNamespace)> = None;
        g.bench_function(id, |b| {
            let (child, _) = state.get_or_insert_with(|| {
                mark_ran("record", id);
                let ns = ScopedNamespace::new("record-ffi");
                let mut child = ChildProc::spawn(role, None, &ffi_env(&ns));
                child.expect("ready");
                (child, ns)
            });
            b.iter_custom(|iters| timed_in(child, iters));
        });
        if let Some((mut child, ns)) = state {
            child.send("stop");
            child.finish();
            drop(ns);
        }
    }
    g.finish();
}

/// `ffi_record`/`ffi_record_two`: records on `notifies` notifies in turn.
fn ffi_record_child(notifies: usize) {
    let b = ffi_backend();
    b.set_device(DeviceId(0)).expect("set_device");
    let ns: Vec<_> = (0..notifies)
        .map(|_| b.create_notify(NotifyFlags::DEFAULT).expect("create"))
        .collect();
    let s = b.create_stream().expect("stream");
    say("ready");
    serve_timed(|iters| {
        for n in ns.iter().cycle().take(iters as usize) {
            n.record(&s).expect("record");
        }
    });
    s.synchronize().expect("synchronize");
    drop((ns, s, b));
}

// ---------------------------------------------------------------------------------------------
// import: one import + destroy with 1 or 8191 live notifies on the device
// ---------------------------------------------------------------------------------------------

struct ImportSetup {
    holder: ChildProc,
    key: ExportKey,
    backend: SimBackend,
    ns: ScopedNamespace,
}

impl ImportSetup {
    fn start(live: u32) -> Self {
        let ns = ScopedNamespace::new("import").with_size(4, CAPACITY);
        let backend = ns.builder().build().expect("attach");
        backend.set_device(DeviceId(1)).expect("set_device");
        let mut holder = ChildProc::spawn(
            "holder",
            None,
            &[ns.env(), vec![(ENV_COUNT.into(), live.to_string())]].concat(),
        );
        let key: ExportKey = holder.recv().parse().expect("key from the holder");
        let snap = backend_sim::inspect(ns.name())
            .expect("inspect")
            .expect("namespace exists");
        assert_eq!(snap.notifies.len(), live as usize, "live notifies");
        Self {
            holder,
            key,
            backend,
            ns,
        }
    }

    fn stop(self) {
        let Self {
            mut holder,
            key: _,
            backend,
            ns,
        } = self;
        holder.send("stop");
        holder.finish();
        drop(backend);
        drop(ns);
    }
}

fn import_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("import");
    for (id, live) in [("live_1", 1u32), ("live_8191", CAPACITY - 1)] {
        let mut state: Option<ImportSetup> = None;
        g.bench_function(id, |b| {
            let s = state.get_or_insert_with(|| {
                mark_ran("import", id);
                ImportSetup::start(live)
            });
            b.iter(|| {
                let n = s
                    .backend
                    .import_notify(&s.key, ImportFlags::ENABLE_PEER_ACCESS)
                    .expect("import");
                n.destroy().expect("destroy");
            });
        });
        if let Some(s) = state {
            s.stop();
        }
    }
    g.finish();
}

fn holder_child() {
    let count: u32 = std::env::var(ENV_COUNT)
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("PINGPONG_COUNT");
    let b = SimBackend::from_env().expect("holder attach");
    b.set_device(DeviceId(0)).expect("set_device");
    let notifies: Vec<SimNotify> = (0..count)
        .map(|_| b.create_notify(NotifyFlags::DEFAULT).expect("create"))
        .collect();
    let key = notifies[0]
        .export(ExportFlags::DISABLE_PID_VALIDATION)
        .expect("export");
    say(key.as_str());
    // Stay alive (holding every notify) until told to stop or the parent goes away.
    let _ = hear();
    drop(notifies);
    drop(b);
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
    let b = SimBackend::from_env().expect("attach");
    b.set_device(DeviceId(0)).expect("set_device");
    let n = b.create_notify(NotifyFlags::DEFAULT).expect("create");
    let s = b.create_stream().expect("stream");
    let cpu0 = cpu_time_self();
    let t0 = Instant::now();
    n.wait_and_reset(&s, 1).expect("wait");
    let err = s
        .synchronize()
        .expect_err("nobody records: the wait times out");
    let wall = t0.elapsed();
    let cpu = cpu_time_self() - cpu0;
    assert_eq!(err.code(), AclError::RT_WAIT_TIMEOUT, "{err}");
    say(&format!("{} {}", cpu.as_nanos(), wall.as_nanos()));
    drop((n, s, b));
}

fn idle_cost() {
    let ns = ScopedNamespace::new("idle");
    let mut child = ChildProc::spawn("idle", None, &ns.env());
    let line = child.recv();
    child.finish();
    drop(ns);
    let mut it = line.split(' ').map(|v| v.parse::<u128>().expect("ns"));
    let (cpu, wall) = (it.next().expect("cpu"), it.next().expect("wall"));
    let pct = cpu as f64 / wall as f64 * 100.0;
    println!(
        "idle_cost: {pct:.3}% of a CPU ({:.3} ms of CPU over {:.1} ms blocked on a wait nobody \
         records, timeout 1 s)",
        cpu as f64 / 1e6,
        wall as f64 / 1e6
    );
}

// ---------------------------------------------------------------------------------------------
// Summary
// ---------------------------------------------------------------------------------------------

fn criterion_home() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        PathBuf::from(home)
    } else if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        PathBuf::from(target).join("criterion")
    } else {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/criterion"))
    }
}

/// The median (ns) of `group/id` from criterion's latest estimates.
fn median(group_id: &str) -> Option<f64> {
    let path = criterion_home()
        .join(group_id)
        .join("new")
        .join("estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["median"]["point_estimate"].as_f64()
}

/// The ids the summary lists and the targets it checks, shared with `benches/report.py`.
struct Targets {
    ids: Vec<String>,
    /// (numerator, denominator, operator, bound).
    ratios: Vec<(String, String, String, f64)>,
    /// (id, operator, bound in ns).
    absolute_ns: Vec<(String, String, f64)>,
}

fn targets() -> Targets {
    let v: serde_json::Value =
        serde_json::from_str(include_str!("targets.json")).expect("benches/targets.json is JSON");
    let list = |key: &str| v[key].as_array().cloned().unwrap_or_default();
    let text = |x: &serde_json::Value| x.as_str().expect("a string in targets.json").to_owned();
    let num = |x: &serde_json::Value| x.as_f64().expect("a number in targets.json");
    Targets {
        ids: list("ids").iter().map(text).collect(),
        ratios: list("ratios")
            .iter()
            .map(|r| (text(&r[0]), text(&r[1]), text(&r[2]), num(&r[3])))
            .collect(),
        absolute_ns: list("absolute_ns")
            .iter()
            .map(|a| (text(&a[0]), text(&a[1]), num(&a[2])))
            .collect(),
    }
}

/// `value op bound`, for the operators targets.json uses (`<` and `<=`).
fn meets(value: f64, op: &str, bound: f64) -> bool {
    if op == "<=" {
        value <= bound
    } else {
        value < bound
    }
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.3} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.3} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

fn summary() {
    let ran = ran().lock().unwrap_or_else(|e| e.into_inner()).clone();
    let t = targets();
    println!();
    println!("summary (criterion medians; `(old)` = not run in this invocation)");
    println!("{:<34} {:>14}", "id", "median");
    for id in &t.ids {
        let stale = if ran.contains(id.as_str()) {
            ""
        } else {
            " (old)"
        };
        match median(id) {
            Some(m) => println!("{id:<34} {:>14}{stale}", fmt_ns(m)),
            None => println!("{id:<34} {:>14}", "-"),
        }
    }
    println!();
    println!("{:<62} {:>8}  {:<7} verdict", "ratio", "value", "target");
    for (num, den, op, bound) in &t.ratios {
        let name = format!("{num} / {den}");
        let target = format!("{op} {bound}");
        match (median(num), median(den)) {
            (Some(a), Some(b)) if b > 0.0 => {
                let r = a / b;
                println!(
                    "{name:<62} {r:>8.3}  {target:<7} {}",
                    if meets(r, op, *bound) {
                        "met"
                    } else {
                        "MISSED"
                    }
                );
            }
            _ => println!("{name:<62} {:>8}  {target:<7} -", "-"),
        }
    }
    for (id, op, bound) in &t.absolute_ns {
        let name = format!("{id} (ns)");
        let target = format!("{op} {bound}");
        match median(id) {
            Some(m) => println!(
                "{name:<62} {:>8}  {target:<7} {}",
                format!("{m:.1}"),
                if meets(m, op, *bound) {
                    "met"
                } else {
                    "MISSED"
                }
            ),
            None => println!("{name:<62} {:>8}  {target:<7} -", "-"),
        }
    }
}
