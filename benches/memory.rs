//! Device memory and IPC memory on the simulator (SEMANTICS.md §5, issue 14), against `memcpy`
//! on the same machine in the same run.
//!
//! - `copy/d2d_import_64mib`: a stream copy of 64 MiB from memory another process exported and
//!   this one imported into a buffer of its own, then a synchronize; against
//!   `copy/memcpy_shared_64mib`, `memcpy` of 64 MiB between two shared mappings (memfds).
//! - `copy/h2d_64mib`, `copy/d2h_64mib`: `aclrtMemcpy` of 64 MiB from host memory into a
//!   device buffer and back; against `copy/memcpy_to_shared_64mib` and
//!   `copy/memcpy_from_shared_64mib`, the same `memcpy` between host memory and a shared
//!   mapping.
//! - `alloc/malloc_free_1mib`: `aclrtMalloc` + `aclrtFree` of 1 MiB (`HUGE_FIRST`).
//! - `ipc/export_import_close`: this process exports a 2 MiB buffer (no pid check), another
//!   imports and closes it, and this one closes the key; the two hand the key over through a
//!   shared page they spin on (about two cache-line transfers of the total).
//!
//! The copy ratios are measured interleaved (see `common`); bandwidth ≥ 0.8 × `memcpy` is a time
//! ratio ≤ 1.25. After criterion, the binary prints the `/dev/shm` footprint of a namespace with
//! 64 GiB of device memory configured per device and nothing allocated.

mod common;

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering::{Acquire, Release};
use std::time::{Duration, Instant};

use backend_sim::role::{RoleProcess, StdioLink, child_role};
use backend_sim::testing::ScopedNamespace;
use backend_sim::{SimBuffer, SimDevice, SimMemImport, SimRuntime, SimStream};
use common::{Group, SharedMap, Timed, env_fd, expect, finish, report, shm_footprint, spawn};
use criterion::Criterion;
use notify_api::prelude::*;
use notify_api::{DeviceId, ExportKey, MallocPolicy, MemExportFlags, MemImportFlags};
use rustix::thread::futex;

const MIB: usize = 1 << 20;
const COPY: usize = 64 * MIB;
const ENV_FD: &str = "MEMORY_BENCH_FD";

fn main() {
    if let Some(role) = child_role() {
        common::child_init();
        match role.as_str() {
            "exporter" => exporter_child(),
            "importer" => importer_child(),
            other => panic!("unknown role {other:?}"),
        }
        return;
    }
    let listing = std::env::args().any(|a| a == "--list" || a == "--help" || a == "-h");
    common::init_affinity();
    let mut c = Criterion::default().configure_from_args();
    copy_benches(&mut c);
    alloc_benches(&mut c);
    ipc_benches(&mut c);
    c.final_summary();
    if !listing {
        footprint();
        common::summary(&["copy", "alloc", "ipc"]);
    }
}

// ---------------------------------------------------------------------------------------------
// copy
// ---------------------------------------------------------------------------------------------

/// A namespace of its own with one device buffer of `len` bytes, and a stream.
struct OneBuffer {
    buffer: SimBuffer,
    stream: SimStream,
    device: SimDevice,
    runtime: SimRuntime,
    ns: ScopedNamespace,
}

impl OneBuffer {
    fn new(label: &str, len: usize) -> Self {
        let ns = ScopedNamespace::new(label);
        let runtime = ns.builder().build().expect("attach");
        let device = runtime.device(DeviceId(0)).expect("device 0");
        let buffer = device.alloc(len, MallocPolicy::HugeFirst).expect("alloc");
        let stream = device.create_stream().expect("stream");
        Self {
            buffer,
            stream,
            device,
            runtime,
            ns,
        }
    }

    fn close(self) {
        let Self {
            buffer,
            stream,
            device,
            runtime,
            ns,
        } = self;
        drop((buffer, stream, device, runtime));
        drop(ns);
    }
}

/// A stream copy from an import of another process's 64 MiB into a buffer of this one.
struct ImportCopy {
    import: SimMemImport,
    local: OneBuffer,
    exporter: RoleProcess,
}

impl ImportCopy {
    fn start() -> Self {
        let local = OneBuffer::new("copy-import", COPY);
        let mut exporter = spawn("exporter", None, &local.ns.env());
        exporter.send(&COPY.to_string());
        let line = exporter.recv();
        let (key, len) = line.split_once(' ').expect("key and length");
        let key: ExportKey = key.parse().expect("a key");
        let len: usize = len.parse().expect("a length");
        let import = local
            .device
            .import_memory(&key, len, MemImportFlags::ENABLE_PEER_ACCESS)
            .expect("import");
        // Touch every page of the local buffer once, outside the timing.
        local
            .stream
            .memset(local.buffer.as_range(), 0)
            .expect("memset");
        local.stream.synchronize().expect("synchronize");
        Self {
            import,
            local,
            exporter,
        }
    }
}

impl Timed for ImportCopy {
    fn timed(&mut self, iters: u64) -> Duration {
        let s = &self.local.stream;
        let start = Instant::now();
        for _ in 0..iters {
            s.copy(self.local.buffer.as_range(), self.import.as_range())
                .expect("copy");
            s.synchronize().expect("synchronize");
        }
        start.elapsed()
    }

    fn stop(self: Box<Self>) {
        let Self {
            import,
            local,
            mut exporter,
        } = *self;
        import.close().expect("close the import");
        exporter.send("stop");
        finish(exporter);
        local.close();
    }
}

/// Allocates, fills and exports `len` bytes for anyone, sends "key len", and holds them until
/// told to stop.
fn exporter_child() {
    let mut link = StdioLink;
    let runtime = SimRuntime::from_env().expect("attach");
    let device = runtime.device(DeviceId(0)).expect("device 0");
    let len: usize = link.recv().parse().expect("a length");
    let buffer = device.alloc(len, MallocPolicy::HugeFirst).expect("alloc");
    let stream = device.create_stream().expect("stream");
    stream.memset(buffer.as_range(), 0x5a).expect("memset");
    stream.synchronize().expect("synchronize");
    let export = buffer
        .export(buffer.as_range(), MemExportFlags::DISABLE_PID_VALIDATION)
        .expect("export");
    link.send(&format!("{} {}", export.key(), export.len()));
    let _ = link.try_recv();
    drop((export, stream, buffer, device, runtime));
}

/// `memcpy` between two shared mappings, or between host memory and one.
struct Memcpy {
    a: SharedMap,
    b: SharedMap,
    host: Vec<u8>,
    how: MemcpyKind,
    _fds: (OwnedFd, OwnedFd),
}

#[derive(Copy, Clone)]
enum MemcpyKind {
    SharedToShared,
    HostToShared,
    SharedToHost,
}

impl Memcpy {
    fn new(how: MemcpyKind) -> Self {
        let (fa, mut a) = SharedMap::create(COPY);
        let (fb, mut b) = SharedMap::create(COPY);
        // Every page touched once, outside the timing, as the device buffers are.
        a.bytes().fill(0x5a);
        b.bytes().fill(0);
        Self {
            a,
            b,
            host: vec![0x33; COPY],
            how,
            _fds: (fa, fb),
        }
    }
}

impl Timed for Memcpy {
    fn timed(&mut self, iters: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..iters {
            match self.how {
                MemcpyKind::SharedToShared => {
                    let src = self.a.bytes().as_ptr();
                    // SAFETY: `a` and `b` are two distinct live mappings of COPY bytes each;
                    // nothing else touches them during the copy.
                    unsafe {
                        std::ptr::copy_nonoverlapping(src, self.b.bytes().as_mut_ptr(), COPY);
                    }
                }
                MemcpyKind::HostToShared => self.b.bytes().copy_from_slice(&self.host),
                MemcpyKind::SharedToHost => self.host.copy_from_slice(self.a.bytes()),
            }
            std::hint::black_box(&self.host);
        }
        start.elapsed()
    }
}

/// `aclrtMemcpy` of 64 MiB between host memory and a device buffer.
struct HostCopy {
    local: OneBuffer,
    host: Vec<u8>,
    to_device: bool,
}

impl Timed for HostCopy {
    fn timed(&mut self, iters: u64) -> Duration {
        let d = &self.local.device;
        let start = Instant::now();
        for _ in 0..iters {
            if self.to_device {
                d.copy_from_host(self.local.buffer.as_range(), &self.host)
                    .expect("copy from host");
            } else {
                d.copy_to_host(&mut self.host, self.local.buffer.as_range())
                    .expect("copy to host");
            }
            std::hint::black_box(&self.host);
        }
        start.elapsed()
    }

    fn stop(self: Box<Self>) {
        self.local.close();
    }
}

fn host_copy(to_device: bool) -> Box<dyn Timed> {
    let local = OneBuffer::new("copy-host", COPY);
    local
        .device
        .copy_from_host(local.buffer.as_range(), &vec![0x5a; COPY])
        .expect("fill");
    Box::new(HostCopy {
        local,
        host: vec![0x33; COPY],
        to_device,
    })
}

fn copy_benches(c: &mut Criterion) {
    let mut g = Group::new("copy").sampling(10, Duration::from_secs(4));
    g.bench("d2d_import_64mib", || Box::new(ImportCopy::start()));
    g.bench("memcpy_shared_64mib", || {
        Box::new(Memcpy::new(MemcpyKind::SharedToShared))
    });
    g.bench("h2d_64mib", || host_copy(true));
    g.bench("memcpy_to_shared_64mib", || {
        Box::new(Memcpy::new(MemcpyKind::HostToShared))
    });
    g.bench("d2h_64mib", || host_copy(false));
    g.bench("memcpy_from_shared_64mib", || {
        Box::new(Memcpy::new(MemcpyKind::SharedToHost))
    });
    g.against("d2d_import_64mib", "memcpy_shared_64mib");
    g.against("h2d_64mib", "memcpy_to_shared_64mib");
    g.against("d2h_64mib", "memcpy_from_shared_64mib");
    g.run(c);
}

// ---------------------------------------------------------------------------------------------
// alloc
// ---------------------------------------------------------------------------------------------

struct MallocFree(OneBuffer);

impl Timed for MallocFree {
    fn timed(&mut self, iters: u64) -> Duration {
        let d = &self.0.device;
        let start = Instant::now();
        for _ in 0..iters {
            let b = d.alloc(MIB, MallocPolicy::HugeFirst).expect("alloc");
            b.free().expect("free");
        }
        start.elapsed()
    }

    fn stop(self: Box<Self>) {
        self.0.close();
    }
}

fn alloc_benches(c: &mut Criterion) {
    let mut g = Group::new("alloc");
    g.bench("malloc_free_1mib", || {
        Box::new(MallocFree(OneBuffer::new("alloc", 4096)))
    });
    g.run(c);
}

// ---------------------------------------------------------------------------------------------
// ipc
// ---------------------------------------------------------------------------------------------

/// The shared page of [`IpcCycle`]: word 0 counts the exports handed over (or says park,
/// resume or stop), word 1 the importer's answers; the key and length follow from byte 512.
const SEQ: usize = 0;
const ACK: usize = 1;
const TEXT: usize = 512;
const RESUME: u32 = u32::MAX - 2;
const PARK: u32 = u32::MAX - 1;
const STOP: u32 = u32::MAX;

struct IpcCycle {
    local: OneBuffer,
    page: SharedMap,
    seq: u32,
    importer: RoleProcess,
}

impl IpcCycle {
    fn start() -> Self {
        let local = OneBuffer::new("ipc", 2 * MIB);
        let (fd, page) = SharedMap::create(4096);
        let env = [
            local.ns.env(),
            vec![(ENV_FD.into(), fd.as_raw_fd().to_string())],
        ]
        .concat();
        let mut importer = spawn("importer", None, &env);
        drop(fd);
        expect(&mut importer, "ready");
        Self {
            local,
            page,
            seq: 0,
            importer,
        }
    }

    fn set(&self, word: usize, v: u32) {
        self.page.word(word).store(v, Release);
        let _ = futex::wake(self.page.word(word), futex::Flags::empty(), 1);
    }
}

impl Timed for IpcCycle {
    fn timed(&mut self, iters: u64) -> Duration {
        // Wake the importer and let it spin before the clock starts.
        self.set(SEQ, RESUME);
        while self.page.word(ACK).load(Acquire) != RESUME {
            std::hint::spin_loop();
        }
        let b = &self.local.buffer;
        let start = Instant::now();
        for _ in 0..iters {
            let export = b
                .export(b.as_range(), MemExportFlags::DISABLE_PID_VALIDATION)
                .expect("export");
            let text = format!("{} {}\0", export.key(), export.len());
            self.page.bytes()[TEXT..TEXT + text.len()].copy_from_slice(text.as_bytes());
            self.seq = self.seq % (RESUME - 1) + 1;
            let seq = self.seq;
            self.page.word(SEQ).store(seq, Release);
            while self.page.word(ACK).load(Acquire) != seq {
                std::hint::spin_loop();
            }
            export.close().expect("close the key");
        }
        let t = start.elapsed();
        // The importer sleeps between batches instead of spinning.
        self.set(SEQ, PARK);
        t
    }

    fn stop(self: Box<Self>) {
        self.set(SEQ, STOP);
        finish(self.importer);
        self.local.close();
    }
}

/// Imports and closes every key the exporter hands over through the shared page.
fn importer_child() {
    let mut page = SharedMap::map(env_fd(ENV_FD), 4096);
    let runtime = SimRuntime::from_env().expect("attach");
    let device = runtime.device(DeviceId(0)).expect("device 0");
    common::exit_with_parent();
    StdioLink.send("ready");
    let mut last = 0;
    loop {
        let seq = page.word(SEQ).load(Acquire);
        if seq == STOP {
            break;
        }
        if seq == PARK || seq == 0 {
            let _ = futex::wait(page.word(SEQ), futex::Flags::empty(), seq, None);
            continue;
        }
        if seq == last {
            std::hint::spin_loop();
            continue;
        }
        last = seq;
        if seq == RESUME {
            page.word(ACK).store(RESUME, Release);
            continue;
        }
        let text = page.bytes()[TEXT..TEXT + 128].to_vec();
        let end = text
            .iter()
            .position(|&b| b == 0)
            .expect("a NUL-terminated line");
        let line = std::str::from_utf8(&text[..end]).expect("UTF-8");
        let (key, len) = line.split_once(' ').expect("key and length");
        let key: ExportKey = key.parse().expect("a key");
        let import = device
            .import_memory(
                &key,
                len.parse().expect("a length"),
                MemImportFlags::DEFAULT,
            )
            .expect("import");
        import.close().expect("close");
        page.word(ACK).store(seq, Release);
    }
    drop((device, runtime));
}

fn ipc_benches(c: &mut Criterion) {
    let mut g = Group::new("ipc");
    g.bench("export_import_close", || Box::new(IpcCycle::start()));
    g.run(c);
}

// ---------------------------------------------------------------------------------------------
// Footprint
// ---------------------------------------------------------------------------------------------

/// `/dev/shm` pages of a namespace with 64 GiB of device memory configured per device (the
/// default) and nothing allocated, with one process attached.
fn footprint() {
    let ns = ScopedNamespace::new("footprint");
    let runtime = ns
        .builder()
        .devices(8)
        .capacity(notify_api::DEFAULT_CAPACITY)
        .device_memory(64 << 30)
        .build()
        .expect("attach");
    let bytes = shm_footprint(ns.name());
    report(format!(
        "footprint: {:.1} KiB of /dev/shm pages for a namespace of 8 devices x 64 GiB of device \
         memory x 8192 notifies, nothing allocated, one process attached (target: <= 1 MiB)",
        bytes as f64 / 1024.0
    ));
    drop(runtime);
    drop(ns);
}
