//! What the bench binaries share: CPU placement, child processes (the one role mechanism of
//! `backend_sim::role`), ratios measured interleaved with their floors, and the summary.
//!
//! # Interleaved ratios
//! A target such as "≤ 5 × the spin floor" compares two measurements, and on a shared machine
//! whose host moves vCPUs between cores, a floor measured a minute earlier may not be the floor
//! the measured id ran on. So every ratio target is measured *interleaved*: each criterion sample
//! of the measured id is paired with a sample of its floor, with the same iteration count, taken
//! right before or after it (the order alternates), in the same placement. The summary reports
//! the median of those per-sample ratios and writes them to
//! `target/criterion/interleaved.json`, which `benches/report.py` reads.

#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU32;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use backend_sim::role::{RoleProcess, RoleSpawner, StdioLink};
use backend_sim::testing::ScopedNamespace;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use rustix::thread::CpuSet;

/// The CPU a child pins itself to.
pub const ENV_CPU: &str = "BENCH_CPU";
/// The `libascendcl.so` an `ffi_*` child loads.
pub const ENV_LIB: &str = "BENCH_ACL_LIB";

// ---------------------------------------------------------------------------------------------
// CPU placement
// ---------------------------------------------------------------------------------------------

fn original_affinity() -> &'static CpuSet {
    static ORIG: OnceLock<CpuSet> = OnceLock::new();
    ORIG.get_or_init(|| rustix::thread::sched_getaffinity(None).expect("sched_getaffinity"))
}

/// Remembers the CPUs this process may use, before anything pins it.
pub fn init_affinity() {
    original_affinity();
}

pub fn allowed_cpus() -> Vec<usize> {
    let set = original_affinity();
    (0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect()
}

/// Pins the calling thread (threads it starts later inherit the mask).
pub fn pin(cpu: Option<usize>) {
    if let Some(cpu) = cpu {
        let mut set = CpuSet::new();
        set.set(cpu);
        rustix::thread::sched_setaffinity(None, &set).expect("sched_setaffinity");
    }
}

pub fn unpin(cpu: Option<usize>) {
    if cpu.is_some() {
        rustix::thread::sched_setaffinity(None, original_affinity()).expect("sched_setaffinity");
    }
}

/// Where the bench process and its child run.
#[derive(Copy, Clone, Debug)]
pub struct Placement {
    pub parent: Option<usize>,
    pub child: Option<usize>,
}

/// The two processes on two different CPUs (when there are two).
pub fn cross_cpu() -> Placement {
    let cpus = allowed_cpus();
    if cpus.len() >= 2 {
        Placement {
            parent: Some(cpus[0]),
            child: Some(cpus[1]),
        }
    } else {
        unpinned()
    }
}

/// Both on the first allowed CPU.
pub fn same_cpu() -> Placement {
    let cpu = allowed_cpus().first().copied();
    Placement {
        parent: cpu,
        child: cpu,
    }
}

/// Wherever the scheduler puts them.
pub fn unpinned() -> Placement {
    Placement {
        parent: None,
        child: None,
    }
}

/// Runs `f` pinned to `cpu`.
pub fn pinned<T>(cpu: Option<usize>, f: impl FnOnce() -> T) -> T {
    pin(cpu);
    let out = f();
    unpin(cpu);
    out
}

// ---------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------

/// Starts `role` (this bench binary re-executed), pinned to `cpu`, with `env`.
pub fn spawn(role: &str, cpu: Option<usize>, env: &[(String, String)]) -> RoleProcess {
    let mut spawner = RoleSpawner::program().show_stderr();
    for (k, v) in env {
        spawner = spawner.env(k, v);
    }
    if let Some(cpu) = cpu {
        spawner = spawner.env(ENV_CPU, &cpu.to_string());
    }
    spawner.start(role)
}

/// Receives `want` from `child`, or panics with what it said instead.
pub fn expect(child: &mut RoleProcess, want: &str) {
    let got = child.recv();
    assert_eq!(got, want, "a child said {got:?}");
}

/// Waits for a child that was told to stop, and checks that it exited successfully.
pub fn finish(child: RoleProcess) {
    let (status, _) = child.wait_exit();
    assert!(status.success(), "a child failed: {status}");
}

/// In a child: pins it as its parent asked.
pub fn child_init() {
    let cpu = std::env::var(ENV_CPU).ok().and_then(|v| v.parse().ok());
    pin(cpu);
}

/// In a child: exits once the parent is gone (stdin closed), so that nothing is left spinning.
/// For children that read nothing more from their parent.
pub fn exit_with_parent() {
    std::thread::spawn(|| {
        let mut link = StdioLink;
        while link.try_recv().is_some() {}
        std::process::exit(3);
    });
}

/// In a child: answers `run N` with the nanoseconds `work(N)` took, until `stop`; exits the
/// process if the parent goes away.
pub fn serve_timed(link: &mut StdioLink, mut work: impl FnMut(u64)) {
    loop {
        let Some(line) = link.try_recv() else {
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
        link.send(&start.elapsed().as_nanos().to_string());
    }
}

/// Asks a [`serve_timed`] child for `iters` rounds and returns the time it measured.
pub fn timed_in(child: &mut RoleProcess, iters: u64) -> Duration {
    child.send(&format!("run {iters}"));
    let ns: u64 = child.recv().parse().expect("nanoseconds from the child");
    Duration::from_nanos(ns)
}

/// Lets this process hold a pipe pair to every child of a thousand-process setup.
pub fn raise_fd_limit() {
    let lim = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    if let Some(max) = lim.maximum {
        let _ = rustix::process::setrlimit(
            rustix::process::Resource::Nofile,
            rustix::process::Rlimit {
                current: Some(max),
                maximum: Some(max),
            },
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The C ABI (`ffi_*` ids)
// ---------------------------------------------------------------------------------------------

/// `target/<profile>/libascendcl.so`, built (or found up to date) once per bench run: `cargo
/// bench` builds the root package's dependencies as rlibs only, never the workspace's cdylib.
pub fn ffi_library() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(test_kit::libs::libascendcl)
}

/// The environment of an `ffi_*` child: its namespace (read by `aclInit`) and the library.
pub fn ffi_env(ns: &ScopedNamespace) -> Vec<(String, String)> {
    let lib = ffi_library()
        .to_str()
        .expect("a UTF-8 target path")
        .to_owned();
    [ns.env(), vec![(ENV_LIB.into(), lib)]].concat()
}

// ---------------------------------------------------------------------------------------------
// Shared pages, futexes
// ---------------------------------------------------------------------------------------------

/// Bytes mapped shared from a memfd that child processes inherit.
pub struct SharedMap {
    ptr: *mut std::ffi::c_void,
    len: usize,
}

impl SharedMap {
    /// A fresh memfd of `len` bytes (without CLOEXEC: children inherit it) and its mapping.
    pub fn create(len: usize) -> (OwnedFd, Self) {
        let fd = rustix::fs::memfd_create("ascend-notify-bench", rustix::fs::MemfdFlags::empty())
            .expect("memfd_create");
        rustix::fs::ftruncate(&fd, len as u64).expect("ftruncate");
        let map = Self::map(fd.as_fd(), len);
        (fd, map)
    }

    pub fn map(fd: BorrowedFd<'_>, len: usize) -> Self {
        // SAFETY: a fresh shared mapping of a descriptor at least `len` bytes long; nothing
        // else in this process refers to the memory it returns.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
                fd,
                0,
            )
        }
        .expect("mmap");
        Self { ptr, len }
    }

    /// The `i`-th cache-line-padded word of the mapping.
    pub fn word(&self, i: usize) -> &AtomicU32 {
        assert!((i + 1) * 128 <= self.len);
        // SAFETY: in bounds (checked above), aligned (page + 128 * i), zero-initialised (a valid
        // `AtomicU32`), mapped for the life of `self`, and only ever accessed atomically.
        unsafe { &*self.ptr.cast::<u8>().add(i * 128).cast::<AtomicU32>() }
    }

    /// The mapping as bytes, for the memcpy floors. The caller is the only one that touches
    /// these bytes while the slice lives (the floors map memfds of their own).
    pub fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: `len` bytes mapped readable and writable for the life of `self`; the
        // exclusive borrow of `self` keeps this the only slice of them in this process.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        // SAFETY: `ptr` is our own mapping of `len` bytes and no reference into it outlives
        // `self`.
        let _ = unsafe { rustix::mm::munmap(self.ptr, self.len) };
    }
}

/// A descriptor number a child got from its parent through the environment.
pub fn env_fd(name: &str) -> BorrowedFd<'static> {
    let raw: i32 = std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} not set"));
    // SAFETY: the parent passed this descriptor without CLOEXEC; it stays open for the life of
    // the process (nothing closes it).
    unsafe { BorrowedFd::borrow_raw(raw) }
}

// ---------------------------------------------------------------------------------------------
// Groups of subjects, with interleaved floors
// ---------------------------------------------------------------------------------------------

/// Something timed: `iters` iterations, and how long they took.
pub trait Timed {
    fn timed(&mut self, iters: u64) -> Duration;
    /// Stops its child processes and cleans up.
    fn stop(self: Box<Self>) {}
}

type Make = Box<dyn FnOnce() -> Box<dyn Timed>>;

struct Subject {
    id: String,
    /// Run as a criterion benchmark of its own (else it is only a floor here).
    bench: bool,
    make: Option<Make>,
    live: Option<Box<dyn Timed>>,
}

impl Subject {
    fn get(&mut self) -> &mut dyn Timed {
        if self.live.is_none() {
            let make = self.make.take().expect("made once");
            let mut t = make();
            // A few rounds, so that lazily started threads and pages exist.
            t.timed(10);
            self.live = Some(t);
        }
        self.live.as_deref_mut().expect("made above")
    }
}

/// Per-sample ratios, by "`id` / `floor`".
fn ratio_samples() -> &'static Mutex<BTreeMap<String, Vec<f64>>> {
    static R: OnceLock<Mutex<BTreeMap<String, Vec<f64>>>> = OnceLock::new();
    R.get_or_init(Mutex::default)
}

/// Ids that ran in this invocation (for the summary).
fn ran() -> &'static Mutex<BTreeSet<String>> {
    static RAN: OnceLock<Mutex<BTreeSet<String>>> = OnceLock::new();
    RAN.get_or_init(Mutex::default)
}

fn mark_ran(id: &str) {
    ran()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id.to_owned());
}

/// The subjects of one criterion group, and the floors each is interleaved with.
pub struct Group {
    name: String,
    subjects: Vec<RefCell<Subject>>,
    floors: Vec<(String, String)>,
    sample_size: usize,
    measurement: Duration,
}

impl Group {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            subjects: Vec::new(),
            floors: Vec::new(),
            sample_size: 20,
            measurement: Duration::from_secs(3),
        }
    }

    /// Fewer, longer samples (criterion's minimum is 10).
    pub fn sampling(mut self, samples: usize, measurement: Duration) -> Self {
        self.sample_size = samples;
        self.measurement = measurement;
        self
    }

    fn full(&self, id: &str) -> String {
        if id.contains('/') {
            id.to_owned()
        } else {
            format!("{}/{id}", self.name)
        }
    }

    /// A criterion benchmark `id` of this group, set up by `make` when it first runs.
    pub fn bench(&mut self, id: &str, make: impl FnOnce() -> Box<dyn Timed> + 'static) {
        self.add(id, true, Box::new(make));
    }

    /// A floor that is measured only interleaved with the ids it bounds (its own criterion id,
    /// if any, is in another group): `id` is its full id.
    pub fn floor_only(&mut self, id: &str, make: impl FnOnce() -> Box<dyn Timed> + 'static) {
        self.add(id, false, Box::new(make));
    }

    fn add(&mut self, id: &str, bench: bool, make: Make) {
        self.subjects.push(RefCell::new(Subject {
            id: self.full(id),
            bench,
            make: Some(make),
            live: None,
        }));
    }

    /// Interleaves every sample of `id` with one of `floor` (both of this group).
    pub fn against(&mut self, id: &str, floor: &str) {
        self.floors.push((self.full(id), self.full(floor)));
    }

    fn index(&self, id: &str) -> usize {
        self.subjects
            .iter()
            .position(|s| s.borrow().id == id)
            .unwrap_or_else(|| panic!("no subject {id}"))
    }

    pub fn run(self, c: &mut Criterion) {
        let mut g: BenchmarkGroup<'_, WallTime> = c.benchmark_group(&self.name);
        if std::env::var_os("BENCH_QUICK").is_some() {
            // A smoke run: every id once, briefly (numbers not worth keeping).
            g.sample_size(10)
                .measurement_time(Duration::from_millis(300))
                .warm_up_time(Duration::from_millis(100));
        } else {
            g.sample_size(self.sample_size)
                .measurement_time(self.measurement)
                .warm_up_time(Duration::from_secs(1));
        }
        // Each subject is stopped once the last bench that uses it (as itself or as a floor) is
        // done: an idle pair left running (a child that polls) would disturb the next ones.
        let last_use: Vec<usize> = (0..self.subjects.len())
            .map(|j| {
                let id = self.subjects[j].borrow().id.clone();
                self.subjects
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| {
                        let c = c.borrow();
                        c.bench
                            && (c.id == id
                                || self.floors.iter().any(|(a, f)| *a == c.id && *f == id))
                    })
                    .map(|(i, _)| i)
                    .max()
                    .unwrap_or(j)
            })
            .collect();
        for (i, cell) in self.subjects.iter().enumerate() {
            let (id, bench) = {
                let s = cell.borrow();
                (s.id.clone(), s.bench)
            };
            if !bench {
                continue;
            }
            let floors: Vec<usize> = self
                .floors
                .iter()
                .filter(|(a, _)| *a == id)
                .map(|(_, f)| self.index(f))
                .collect();
            let short = id.rsplit('/').next().unwrap_or(&id).to_owned();
            let mut flip = false;
            g.bench_function(short, |b| {
                mark_ran(&id);
                // Started here, not in the routine: criterion's warm-up counts the routine's
                // wall time, so a setup inside it (children spawned, a stale libascendcl.so
                // rebuilt) would make it pick a few iterations per sample, each starting cold.
                self.subjects[i].borrow_mut().get();
                for &f in &floors {
                    self.subjects[f].borrow_mut().get();
                }
                b.iter_custom(|iters| {
                    let mut me = self.subjects[i].borrow_mut();
                    let t = me.get();
                    if floors.is_empty() {
                        return t.timed(iters);
                    }
                    flip = !flip;
                    let mut own = Duration::ZERO;
                    for &f in &floors {
                        let mut floor = self.subjects[f].borrow_mut();
                        let floor_id = floor.id.clone();
                        let (a, fl) = if flip {
                            let a = me.get().timed(iters);
                            (a, floor.get().timed(iters))
                        } else {
                            let fl = floor.get().timed(iters);
                            (me.get().timed(iters), fl)
                        };
                        own += a;
                        if !fl.is_zero() {
                            ratio_samples()
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .entry(format!("{id} / {floor_id}"))
                                .or_default()
                                .push(a.as_secs_f64() / fl.as_secs_f64());
                        }
                    }
                    own / floors.len() as u32
                });
            });
            for (j, &last) in last_use.iter().enumerate() {
                if last == i
                    && let Some(t) = self.subjects[j].borrow_mut().live.take()
                {
                    t.stop();
                }
            }
        }
        g.finish();
        for cell in self.subjects.into_iter().rev() {
            if let Some(t) = cell.into_inner().live.take() {
                t.stop();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reports: one-off measurements printed beside criterion's
// ---------------------------------------------------------------------------------------------

fn reports() -> &'static Mutex<Vec<String>> {
    static R: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    R.get_or_init(Mutex::default)
}

/// Prints `line` now and again in the summary.
pub fn report(line: String) {
    println!("{line}");
    reports()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(line);
}

/// Bytes of `/dev/shm` pages the namespace's files hold (allocated blocks, not their sizes).
pub fn shm_footprint(namespace: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    backend_sim::namespace_files(namespace)
        .iter()
        .filter_map(|f| std::fs::metadata(Path::new("/dev/shm").join(f)).ok())
        .map(|m| m.blocks() * 512)
        .sum()
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
pub fn median(group_id: &str) -> Option<f64> {
    let path = criterion_home()
        .join(group_id)
        .join("new")
        .join("estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["median"]["point_estimate"].as_f64()
}

fn median_of(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Merges this run's interleaved samples into `interleaved.json` (ratios of ids not run now
/// stay as they were).
fn save_interleaved() -> BTreeMap<String, Vec<f64>> {
    let path = criterion_home().join("interleaved.json");
    let mut all: BTreeMap<String, Vec<f64>> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let now = ratio_samples()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    for (k, v) in &now {
        all.insert(k.clone(), v.clone());
    }
    let _ = std::fs::create_dir_all(criterion_home());
    let _ = std::fs::write(
        &path,
        serde_json::to_string_pretty(&all).expect("ratios serialise"),
    );
    now
}

/// The targets of `benches/targets.json`.
struct Targets {
    ids: Vec<String>,
    /// (numerator, denominator, operator, bound).
    ratios: Vec<(String, String, String, f64)>,
    /// (id, operator, bound in ns).
    absolute_ns: Vec<(String, String, f64)>,
    /// (id, per-unit id, units): `id` against `units` × `per-unit id`.
    scaled: Vec<(String, String, f64)>,
}

fn targets() -> Targets {
    let v: serde_json::Value =
        serde_json::from_str(include_str!("../targets.json")).expect("benches/targets.json");
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
        scaled: list("scaled")
            .iter()
            .map(|a| (text(&a[0]), text(&a[1]), num(&a[2])))
            .collect(),
    }
}

fn meets(value: f64, op: &str, bound: f64) -> bool {
    match op {
        "<=" => value <= bound,
        "<" => value < bound,
        ">=" => value >= bound,
        _ => value > bound,
    }
}

pub fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.3} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.3} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

/// Prints the medians of the ids of `groups`, and the targets whose ids are among them.
pub fn summary(groups: &[&str]) {
    let interleaved = save_interleaved();
    let ran = ran().lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mine = |id: &str| groups.iter().any(|g| id.starts_with(&format!("{g}/")));
    let t = targets();
    println!();
    println!("summary (criterion medians; `(old)` = not run in this invocation)");
    println!("{:<40} {:>14}", "id", "median");
    for id in t.ids.iter().filter(|id| mine(id)) {
        let stale = if ran.contains(id.as_str()) {
            ""
        } else {
            " (old)"
        };
        match median(id) {
            Some(m) => println!("{id:<40} {:>14}{stale}", fmt_ns(m)),
            None => println!("{id:<40} {:>14}", "-"),
        }
    }
    println!();
    println!(
        "{:<66} {:>8}  {:<7} verdict   (i = interleaved samples, m = medians)",
        "ratio", "value", "target"
    );
    for (num, den, op, bound) in t.ratios.iter().filter(|r| mine(&r.0)) {
        let name = format!("{num} / {den}");
        let target = format!("{op} {bound}");
        let (value, how) = match median_of(interleaved.get(&name).cloned().unwrap_or_default()) {
            Some(r) => (Some(r), "i"),
            None => match (median(num), median(den)) {
                (Some(a), Some(b)) if b > 0.0 => (Some(a / b), "m"),
                _ => (None, "-"),
            },
        };
        match value {
            Some(r) => println!(
                "{name:<66} {r:>8.3}  {target:<7} {} ({how})",
                if meets(r, op, *bound) {
                    "met"
                } else {
                    "MISSED"
                }
            ),
            None => println!("{name:<66} {:>8}  {target:<7} -", "-"),
        }
    }
    for (id, op, bound) in t.absolute_ns.iter().filter(|a| mine(&a.0)) {
        let name = format!("{id} (ns)");
        let target = format!("{op} {bound}");
        match median(id) {
            Some(m) => println!(
                "{name:<66} {:>8}  {target:<7} {}",
                format!("{m:.1}"),
                if meets(m, op, *bound) {
                    "met"
                } else {
                    "MISSED"
                }
            ),
            None => println!("{name:<66} {:>8}  {target:<7} -", "-"),
        }
    }
    for (id, unit, units) in t.scaled.iter().filter(|a| mine(&a.0)) {
        let name = format!("{id} / ({units} × {unit})");
        match (median(id), median(unit)) {
            (Some(a), Some(b)) if b > 0.0 => {
                println!("{name:<66} {:>8.3}", a / (units * b));
            }
            _ => println!("{name:<66} {:>8}", "-"),
        }
    }
    let reports = reports().lock().unwrap_or_else(|e| e.into_inner()).clone();
    if !reports.is_empty() {
        println!();
        for line in reports {
            println!("{line}");
        }
    }
}
