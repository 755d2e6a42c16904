//! What the simulator's calls cost as a namespace grows (SEMANTICS.md §4 "Scale", issue 15),
//! against the same calls in a small namespace, measured interleaved in the same run.
//!
//! - `import/attached_2`, `import/attached_1000`: one import + destroy of a notify another
//!   process exported, with 2 or 1,000 processes attached to the namespace (the others idle,
//!   each holding a notify of its own).
//! - `attach/attached_2`, `attach/attached_1000`: attaching (building a runtime) and detaching
//!   (dropping it), with 2 or 1,000 processes already attached.
//! - `create/attached_2`, `create/attached_1000`: one create + destroy.
//! - `import/live_1`, `import/live_8191`: one import + destroy when the device holds 1 or 8,191
//!   live notifies.
//! - `mesh/n8`, `mesh/n32`, `mesh/n128`: N processes (spread over the 8 devices) that each
//!   import, then destroy, the notify every other one made for it, timed from the go to the
//!   last one done; reported against N·(N−1) × `import/attached_2`. Each ordered pair has its
//!   notify, whitelisted for its importer (R7 admits at most 15 importers per notify, so one
//!   notify imported by 127 processes would be refused; real collectives keep one per link).
//!
//! After criterion, the binary prints the `/dev/shm` footprint of a fresh namespace with the
//! defaults, one process attached and then 1,024.

mod common;

use std::cell::OnceCell;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Release};
use std::time::{Duration, Instant};

use backend_sim::role::{RoleProcess, StdioLink, child_role};
use backend_sim::testing::ScopedNamespace;
use backend_sim::{SimBuilder, SimDevice, SimRuntime};
use common::{Group, SharedMap, Timed, env_fd, expect, finish, report, shm_footprint, spawn};
use criterion::Criterion;
use notify_api::prelude::*;
use notify_api::{DeviceId, ExportFlags, ExportKey, ImportFlags, NotifyFlags, Pid};
use rustix::thread::futex;

const ENV_COUNT: &str = "SCALE_BENCH_COUNT";
const ENV_FD: &str = "SCALE_BENCH_FD";
const ENV_DEVICE: &str = "SCALE_BENCH_DEVICE";
/// R11's default capacity, so that 8,191 live notifies fit on one device.
const CAPACITY: u32 = notify_api::DEFAULT_CAPACITY;
const DEVICES: u32 = 8;

fn main() {
    if let Some(role) = child_role() {
        common::child_init();
        match role.as_str() {
            "idle" => idle_child(),
            "holder" => holder_child(),
            "mesh" => mesh_child(),
            other => panic!("unknown role {other:?}"),
        }
        return;
    }
    let listing = std::env::args().any(|a| a == "--list" || a == "--help" || a == "-h");
    common::init_affinity();
    common::raise_fd_limit();
    let mut c = Criterion::default().configure_from_args();
    crowd_benches(&mut c);
    live_benches(&mut c);
    mesh_benches(&mut c);
    c.final_summary();
    if !listing {
        footprints();
        common::summary(&["import", "attach", "create", "mesh"]);
    }
}

fn namespace(label: &str) -> ScopedNamespace {
    ScopedNamespace::new(label).with_size(DEVICES, CAPACITY)
}

// ---------------------------------------------------------------------------------------------
// A crowd: a namespace with N attached processes
// ---------------------------------------------------------------------------------------------

/// This process and `n - 1` children attached to one namespace; the first child holds a notify
/// exported for anyone, every child a notify of its own.
struct Crowd {
    children: Vec<RoleProcess>,
    key: ExportKey,
    device: SimDevice,
    runtime: SimRuntime,
    ns: ScopedNamespace,
}

impl Crowd {
    fn start(n: usize) -> Self {
        let ns = namespace(&format!("crowd{n}"));
        let runtime = ns.builder().build().expect("attach");
        let device = runtime.device(DeviceId(1)).expect("device 1");
        let mut children = Vec::with_capacity(n - 1);
        let mut key = None;
        for i in 0..n - 1 {
            let mut child = spawn("idle", None, &ns.env());
            let line = child.recv();
            if i == 0 {
                key = Some(line.parse().expect("a key"));
            }
            children.push(child);
        }
        Self {
            children,
            key: key.expect("at least one child"),
            device,
            runtime,
            ns,
        }
    }

    /// Adds children until `n` processes are attached in all.
    fn grow(&mut self, n: usize) {
        while self.children.len() + 1 < n {
            let mut child = spawn("idle", None, &self.ns.env());
            let _ = child.recv();
            self.children.push(child);
        }
    }

    fn stop(self) {
        let Self {
            children,
            device,
            runtime,
            ns,
            ..
        } = self;
        for mut c in children.into_iter().rev() {
            c.send("stop");
            finish(c);
        }
        drop((device, runtime));
        drop(ns);
    }
}

/// Attaches, creates a notify (exported for anyone), sends its key, and stays until told to
/// stop (or the parent goes away).
fn idle_child() {
    let mut link = StdioLink;
    let runtime = SimRuntime::from_env().expect("attach");
    let device = runtime.device(DeviceId(0)).expect("device 0");
    let n = device.create_notify(NotifyFlags::DEFAULT).expect("create");
    let key = n
        .export(ExportFlags::DISABLE_PID_VALIDATION)
        .expect("export");
    link.send(key.as_str());
    let _ = link.try_recv();
    drop((n, device, runtime));
}

#[derive(Copy, Clone)]
enum CrowdOp {
    Import,
    Attach,
    Create,
}

/// A crowd started when a bench first needs it and shared by the three groups.
type SharedCrowd = Rc<OnceCell<Crowd>>;

struct CrowdBench {
    crowd: SharedCrowd,
    n: usize,
    op: CrowdOp,
}

impl Timed for CrowdBench {
    fn timed(&mut self, iters: u64) -> Duration {
        let c = self.crowd.get_or_init(|| Crowd::start(self.n));
        let start = Instant::now();
        for _ in 0..iters {
            match self.op {
                CrowdOp::Import => {
                    let n = c
                        .device
                        .import_notify(&c.key, ImportFlags::ENABLE_PEER_ACCESS)
                        .expect("import");
                    n.destroy().expect("destroy");
                }
                CrowdOp::Attach => {
                    let rt = SimBuilder::default()
                        .namespace(c.ns.name())
                        .build()
                        .expect("attach");
                    drop(rt);
                }
                CrowdOp::Create => {
                    let n = c
                        .device
                        .create_notify(NotifyFlags::DEFAULT)
                        .expect("create");
                    n.destroy().expect("destroy");
                }
            }
        }
        start.elapsed()
    }
}

fn crowd_benches(c: &mut Criterion) {
    let crowds: [SharedCrowd; 2] = Default::default();
    for (group, op) in [
        ("import", CrowdOp::Import),
        ("attach", CrowdOp::Attach),
        ("create", CrowdOp::Create),
    ] {
        let mut g = Group::new(group).sampling(20, Duration::from_secs(3));
        for (n, crowd) in [2usize, 1000].into_iter().zip(&crowds) {
            let crowd = Rc::clone(crowd);
            g.bench(&format!("attached_{n}"), move || {
                Box::new(CrowdBench { crowd, n, op })
            });
        }
        g.against("attached_1000", "attached_2");
        g.run(c);
    }
    for crowd in crowds {
        let Some(mut crowd) = Rc::into_inner(crowd).and_then(OnceCell::into_inner) else {
            continue;
        };
        if crowd.children.len() + 1 >= 1000 {
            // Grown to 1,024: the footprint the summary reports.
            crowd.grow(1024);
            let bytes = shm_footprint(crowd.ns.name());
            report(format!(
                "footprint_1024: {:.1} KiB of /dev/shm pages with 1,024 processes attached \
                 ({DEVICES} devices x {CAPACITY} notifies, defaults otherwise)",
                bytes as f64 / 1024.0
            ));
        }
        crowd.stop();
    }
}

// ---------------------------------------------------------------------------------------------
// import with 1 or 8191 live notifies
// ---------------------------------------------------------------------------------------------

struct Live {
    holder: RoleProcess,
    key: ExportKey,
    device: SimDevice,
    runtime: SimRuntime,
    ns: ScopedNamespace,
}

impl Live {
    fn start(live: u32) -> Self {
        let ns = namespace("import-live");
        let runtime = ns.builder().build().expect("attach");
        let device = runtime.device(DeviceId(1)).expect("device 1");
        let env = [ns.env(), vec![(ENV_COUNT.into(), live.to_string())]].concat();
        let mut holder = spawn("holder", None, &env);
        let key: ExportKey = holder.recv().parse().expect("a key");
        let snap = backend_sim::inspect::inspect(ns.name())
            .expect("inspect")
            .expect("the namespace exists");
        assert_eq!(snap.notifies.len(), live as usize, "live notifies");
        Self {
            holder,
            key,
            device,
            runtime,
            ns,
        }
    }
}

impl Timed for Live {
    fn timed(&mut self, iters: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..iters {
            let n = self
                .device
                .import_notify(&self.key, ImportFlags::ENABLE_PEER_ACCESS)
                .expect("import");
            n.destroy().expect("destroy");
        }
        start.elapsed()
    }

    fn stop(self: Box<Self>) {
        let Self {
            mut holder,
            device,
            runtime,
            ns,
            ..
        } = *self;
        holder.send("stop");
        finish(holder);
        drop((device, runtime));
        drop(ns);
    }
}

/// Creates `ENV_COUNT` notifies on device 0, exports the first, sends its key, and holds them.
fn holder_child() {
    let mut link = StdioLink;
    let count: u32 = std::env::var(ENV_COUNT)
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("the count");
    let runtime = SimRuntime::from_env().expect("attach");
    let device = runtime.device(DeviceId(0)).expect("device 0");
    let notifies: Vec<_> = (0..count)
        .map(|_| device.create_notify(NotifyFlags::DEFAULT).expect("create"))
        .collect();
    let key = notifies[0]
        .export(ExportFlags::DISABLE_PID_VALIDATION)
        .expect("export");
    link.send(key.as_str());
    let _ = link.try_recv();
    drop((notifies, device, runtime));
}

fn live_benches(c: &mut Criterion) {
    let mut g = Group::new("import");
    g.bench("live_1", || Box::new(Live::start(1)));
    g.bench("live_8191", || Box::new(Live::start(CAPACITY - 1)));
    g.against("live_8191", "live_1");
    g.run(c);
}

// ---------------------------------------------------------------------------------------------
// mesh
// ---------------------------------------------------------------------------------------------

/// The shared page of a mesh: word 0 is the round (a child starts one when it changes; `STOP`
/// ends it), word 1 counts the children done with the current round.
const ROUND: usize = 0;
const DONE: usize = 1;
const STOP: u32 = u32::MAX;

struct Mesh {
    n: u32,
    page: SharedMap,
    round: u32,
    children: Vec<RoleProcess>,
    ns: ScopedNamespace,
}

impl Mesh {
    fn start(n: usize) -> Self {
        let ns = namespace(&format!("mesh{n}"));
        // This process creates the namespace (with the bench's capacity) and leaves it to them.
        let creator = ns.builder().build().expect("attach");
        let (fd, page): (OwnedFd, SharedMap) = SharedMap::create(4096);
        let mut children: Vec<RoleProcess> = (0..n)
            .map(|i| {
                let env = [
                    ns.env(),
                    vec![
                        (ENV_FD.into(), fd.as_raw_fd().to_string()),
                        (ENV_DEVICE.into(), (i as u32 % DEVICES).to_string()),
                    ],
                ]
                .concat();
                spawn("mesh", None, &env)
            })
            .collect();
        drop(fd);
        drop(creator);
        // Every child's bare tgid, to everyone: each whitelists its importers (R6).
        let tgids: Vec<String> = children.iter_mut().map(|c| c.recv()).collect();
        let all = tgids.join(" ");
        for c in &mut children {
            c.send(&all);
        }
        // Child i's keys, one per other child j in order; child j imports the one made for it.
        let keys: Vec<Vec<String>> = children
            .iter_mut()
            .map(|c| c.recv().split(' ').map(str::to_owned).collect())
            .collect();
        for (j, c) in children.iter_mut().enumerate() {
            let mine: Vec<&str> = (0..n)
                .filter(|&i| i != j)
                .map(|i| keys[i][if j < i { j } else { j - 1 }].as_str())
                .collect();
            c.send(&mine.join(" "));
        }
        for c in &mut children {
            expect(c, "ready");
        }
        Self {
            n: n as u32,
            page,
            round: 0,
            children,
            ns,
        }
    }
}

impl Timed for Mesh {
    fn timed(&mut self, iters: u64) -> Duration {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            self.round += 1;
            self.page.word(DONE).store(0, Release);
            let start = Instant::now();
            self.page.word(ROUND).store(self.round, Release);
            let _ = futex::wake(
                self.page.word(ROUND),
                futex::Flags::empty(),
                i32::MAX as u32,
            );
            loop {
                let done = self.page.word(DONE).load(Acquire);
                if done == self.n {
                    break;
                }
                let _ = futex::wait(self.page.word(DONE), futex::Flags::empty(), done, None);
            }
            total += start.elapsed();
        }
        total
    }

    fn stop(self: Box<Self>) {
        let Self {
            page, children, ns, ..
        } = *self;
        page.word(ROUND).store(STOP, Release);
        let _ = futex::wake(page.word(ROUND), futex::Flags::empty(), i32::MAX as u32);
        for c in children {
            finish(c);
        }
        drop(ns);
    }
}

/// One process of a mesh: creates one notify per other process, whitelisted for it; then, each
/// round, imports the one every other process made for it and destroys them again.
fn mesh_child() {
    let mut link = StdioLink;
    let page = SharedMap::map(env_fd(ENV_FD), 4096);
    let device_id: i32 = std::env::var(ENV_DEVICE)
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("the device");
    let runtime = SimRuntime::from_env().expect("attach");
    let device = runtime.device(DeviceId(device_id)).expect("device");
    let me = device.bare_tgid().expect("bare tgid");
    link.send(&me.to_string());
    let tgids: Vec<Pid> = link
        .recv()
        .split(' ')
        .map(|t| Pid(t.parse().expect("a tgid")))
        .collect();
    let mut mine = Vec::new();
    let mut keys = Vec::new();
    for &peer in tgids.iter().filter(|&&t| t != me) {
        let n = device.create_notify(NotifyFlags::DEFAULT).expect("create");
        let key = n.export(ExportFlags::DEFAULT).expect("export");
        n.set_import_pid(peer).expect("whitelist");
        keys.push(key.as_str().to_owned());
        mine.push(n);
    }
    link.send(&keys.join(" "));
    let theirs: Vec<ExportKey> = link
        .recv()
        .split(' ')
        .map(|k| k.parse().expect("a key"))
        .collect();
    common::exit_with_parent();
    link.send("ready");
    let mut round = 0;
    loop {
        let now = page.word(ROUND).load(Acquire);
        if now == STOP {
            break;
        }
        if now == round {
            let _ = futex::wait(page.word(ROUND), futex::Flags::empty(), now, None);
            continue;
        }
        round = now;
        let imported: Vec<_> = theirs
            .iter()
            .map(|k| {
                device
                    .import_notify(k, ImportFlags::ENABLE_PEER_ACCESS)
                    .expect("import")
            })
            .collect();
        for n in imported {
            n.destroy().expect("destroy");
        }
        page.word(DONE).fetch_add(1, AcqRel);
        let _ = futex::wake(page.word(DONE), futex::Flags::empty(), 1);
    }
    drop((mine, device, runtime));
}

fn mesh_benches(c: &mut Criterion) {
    let mut g = Group::new("mesh").sampling(10, Duration::from_secs(5));
    for n in [8usize, 32, 128] {
        g.bench(&format!("n{n}"), move || Box::new(Mesh::start(n)));
    }
    g.run(c);
}

// ---------------------------------------------------------------------------------------------
// Footprint
// ---------------------------------------------------------------------------------------------

fn footprints() {
    let ns = ScopedNamespace::new("footprint-default");
    let runtime = SimBuilder::default()
        .namespace(ns.name())
        .build()
        .expect("attach");
    let bytes = shm_footprint(ns.name());
    report(format!(
        "footprint_fresh: {:.1} KiB of /dev/shm pages for a fresh namespace with the defaults \
         (8 devices x 8192 notifies, 1024 process slots, 64 GiB per device), one process \
         attached",
        bytes as f64 / 1024.0
    ));
    drop(runtime);
    drop(ns);
}
