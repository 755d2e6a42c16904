//! What the checks share: handle helpers, key helpers, a minimal executor for
//! `synchronize_async`, and the parent's side of a `"remote"` peer.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use super::roles::{ROLE_REMOTE, bytes_of_hex, hex_decode, hex_encode, hex_of_bytes};
use super::{Peer, Spawner, assert_code, ok};
use crate::{
    AclError, Backend, Buffer, Device, DeviceId, DeviceRange, ExportFlags, ExportKey, ImportFlags,
    MallocPolicy, MemExport, MemExportFlags, MemImportFlags, MemInfo, Notify, NotifyFlags, Pid,
    Result, Runtime, Stream,
};

/// The device type of runtime `R`.
pub(super) type DeviceOf<R> = <<R as Runtime>::Backend as Backend>::Device;
/// The notify type of device `D`.
pub(super) type NotifyOf<D> = <<D as Device>::Backend as Backend>::Notify;
/// The stream type of device `D`.
pub(super) type StreamOf<D> = <<D as Device>::Backend as Backend>::Stream;

/// The buffer type of device `D`.
pub(super) type BufferOf<D> = <<D as Device>::Backend as Backend>::Buffer;
/// The event type of device `D`.
pub(super) type EventOf<D> = <<D as Device>::Backend as Backend>::Event;

/// 4 KiB, the page of `NORMAL_ONLY` (M1).
pub(super) const KIB4: usize = 4 << 10;
/// 2 MiB, the page of `HUGE_ONLY` (M1).
pub(super) const MIB2: usize = 2 << 20;
/// 1 GiB, the page of `HUGE1G_ONLY` (M1).
pub(super) const GIB1: usize = 1 << 30;

/// The most creates a capacity probe makes before it gives up (above CANN's 8192).
const FILL_LIMIT: usize = 9000;
/// How long "still running" probes wait before they conclude a stream is busy.
pub(super) const SHORT: Duration = Duration::from_millis(300);
/// An upper bound for anything that should be quick (an enqueue, a first poll).
pub(super) const QUICK: Duration = Duration::from_secs(2);

/// Device `n` of `rt`.
#[track_caller]
pub(super) fn dev<R: Runtime>(rt: &R, n: i32) -> DeviceOf<R> {
    ok(rt.device(DeviceId(n)), &format!("device {n}"))
}

/// Devices 0 and 1 of `rt`.
#[track_caller]
pub(super) fn two_devices<R: Runtime>(rt: &R) -> (DeviceOf<R>, DeviceOf<R>) {
    (dev(rt, 0), dev(rt, 1))
}

/// The set-up of most checks with peers: a notify created on device 0 and exported with
/// `flags`, its key, and a stream on device 0 for the creator's waits.
#[track_caller]
pub(super) fn exported_on_device_0<R: Runtime>(rt: &R, flags: ExportFlags) -> Exported<R> {
    let d0 = dev(rt, 0);
    let a = create(&d0, "create");
    let key = ok(a.export(flags), "export");
    let s = stream(&d0, "create_stream");
    (a, key, s)
}

/// What [`exported_on_device_0`] makes.
pub(super) type Exported<R> = (NotifyOf<DeviceOf<R>>, ExportKey, StreamOf<DeviceOf<R>>);

/// A notify with default flags on `d`.
#[track_caller]
pub(super) fn create<D: Device>(d: &D, what: &str) -> NotifyOf<D> {
    ok(d.create_notify(NotifyFlags::DEFAULT), what)
}

/// A new stream on `d`.
#[track_caller]
pub(super) fn stream<D: Device>(d: &D, what: &str) -> StreamOf<D> {
    ok(d.create_stream(), what)
}

#[track_caller]
pub(super) fn destroy<N: Notify>(notify: N, what: &str) {
    ok(notify.destroy(), what);
}

#[track_caller]
pub(super) fn destroy_all<N: Notify>(notifies: Vec<N>, what: &str) {
    for n in notifies {
        ok(n.destroy(), what);
    }
}

#[track_caller]
pub(super) fn sync_ok<S: Stream>(s: &S, what: &str) {
    ok(s.synchronize(), what);
}

/// Asserts that `s` still has unfinished work: `synchronize_timeout` gives up with 507046.
#[track_caller]
pub(super) fn assert_busy<S: Stream>(s: &S, what: &str) {
    assert_code(
        s.synchronize_timeout(Some(SHORT)),
        AclError::RT_STREAM_SYNC_TIMEOUT,
        what,
    );
}

/// Asserts that `result` failed with one of `codes`.
#[track_caller]
pub(super) fn assert_code_in<T>(result: Result<T>, codes: &[AclError], what: &str) {
    match result {
        Ok(_) => panic!("{what}: expected one of {codes:?}, got success"),
        Err(e) => {
            assert!(
                codes.contains(&e.code()),
                "{what}: expected one of {codes:?}, got {:?}: {}",
                e.code(),
                e.reason()
            );
            assert!(!e.reason().is_empty(), "{what}: empty reason text");
        }
    }
}

/// Creates notifies on `d` until it reports 207009 and returns them.
#[track_caller]
pub(super) fn fill<D: Device>(d: &D, what: &str) -> Vec<NotifyOf<D>> {
    let mut held = Vec::new();
    loop {
        match d.create_notify(NotifyFlags::DEFAULT) {
            Ok(n) => held.push(n),
            Err(e) if e.code() == AclError::RT_NO_NOTIFY_RESOURCE => return held,
            Err(e) => panic!("{what}: create #{} failed with {e}", held.len() + 1),
        }
        assert!(
            held.len() < FILL_LIMIT,
            "{what}: {FILL_LIMIT} creates on one device never reported 207009"
        );
    }
}

/// R8/R11: fills `d`, lets the creator destroy `a`, and checks that a create on the full device
/// then succeeds (no other holder kept the slot); destroys everything it made.
#[track_caller]
pub(super) fn creator_destroy_frees_slot<D: Device>(d: &D, a: NotifyOf<D>, what: &str) {
    let fillers = fill(d, "fill the device");
    destroy(a, "creator destroys");
    let again = ok(d.create_notify(NotifyFlags::DEFAULT), what);
    destroy(again, "destroy");
    destroy_all(fillers, "destroy fillers");
}

/// A valid `ExportKey` that no backend produces.
pub(super) fn junk_key() -> ExportKey {
    ExportKey::new("not-a-key").expect("\"not-a-key\" is a valid ExportKey")
}

/// Distinct, positive pids that no test process has (whitelists do not check existence).
pub(super) fn fake_pids(from: i32, count: usize) -> Vec<Pid> {
    (0..count).map(|i| Pid(from + i as i32)).collect()
}

/// Whitelists each of `pids` on `n`, one call per pid (R6: the driver takes one pid per call).
#[track_caller]
pub(super) fn whitelist<N: Notify>(n: &N, pids: &[Pid], what: &str) {
    for (i, &p) in pids.iter().enumerate() {
        ok(n.set_import_pid(p), &format!("{what}: pid #{i} ({p})"));
    }
}

/// Copies of `key` with one letter or digit changed each (to another of the same class).
pub(super) fn mutations(key: &ExportKey) -> Vec<ExportKey> {
    let text = key.as_str().as_bytes();
    (0..text.len())
        .filter_map(|i| {
            let c = text[i];
            let m = match c {
                b'0'..=b'9' => b'0' + (c - b'0' + 1) % 10,
                b'a'..=b'z' => b'a' + (c - b'a' + 1) % 26,
                b'A'..=b'Z' => b'A' + (c - b'A' + 1) % 26,
                _ => return None,
            };
            let mut bytes = text.to_vec();
            bytes[i] = m;
            ExportKey::new(String::from_utf8(bytes).ok()?).ok()
        })
        .collect()
}

/// Checks the R5 key shape directly (beyond what `ExportKey` guarantees by construction).
#[track_caller]
pub(super) fn assert_key_shape(key: &ExportKey, what: &str) {
    let text = key.as_str();
    assert!(
        (1..=crate::EXPORT_KEY_MAX_CHARS).contains(&text.len()),
        "{what}: key {key:?} has {} characters",
        text.len()
    );
    assert!(
        text.bytes().all(|c| (0x20..=0x7e).contains(&c)),
        "{what}: key {key:?} is not printable ASCII"
    );
    let buf = key.to_c_buf();
    assert_eq!(buf[text.len()], 0, "{what}: key not NUL-terminated");
    assert_eq!(
        ExportKey::from_c_buf(&buf).as_ref(),
        Ok(key),
        "{what}: C round trip"
    );
}

/// `size` bytes of `d` under `policy`.
#[track_caller]
pub(super) fn alloc<D: Device>(
    d: &D,
    size: usize,
    policy: MallocPolicy,
    what: &str,
) -> BufferOf<D> {
    ok(d.alloc(size, policy), what)
}

/// The free bytes of `d` now.
#[track_caller]
pub(super) fn free_bytes<D: Device>(d: &D, what: &str) -> u64 {
    ok(d.mem_info(), what).free
}

/// `d`'s memory information.
#[track_caller]
pub(super) fn mem_info<D: Device>(d: &D, what: &str) -> MemInfo {
    ok(d.mem_info(), what)
}

/// `len` bytes that differ from their neighbours and from another `seed`'s.
pub(super) fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u8)
                .wrapping_mul(31)
                .wrapping_add(seed)
                .wrapping_add((i >> 8) as u8)
        })
        .collect()
}

/// Writes `bytes` at the start of `range` with the synchronous host-to-device copy.
#[track_caller]
pub(super) fn put<D: Device>(d: &D, range: DeviceRange<'_>, bytes: &[u8], what: &str) {
    ok(d.copy_from_host(range, bytes), what);
}

/// The bytes of `range`, with the synchronous device-to-host copy.
#[track_caller]
pub(super) fn get<D: Device>(d: &D, range: DeviceRange<'_>, what: &str) -> Vec<u8> {
    let mut bytes = vec![0u8; range.len()];
    ok(d.copy_to_host(&mut bytes, range), what);
    bytes
}

/// The bytes of `range` (imported memory among others) read the only way M5 allows for an
/// import: a device-to-device copy on `s` into a staging buffer of `s`'s device, then to the
/// host.
#[track_caller]
pub(super) fn get_via_stream<S: Stream>(s: &S, range: DeviceRange<'_>, what: &str) -> Vec<u8> {
    let d = s.device();
    let staging = alloc(d, range.len(), MallocPolicy::NormalOnly, what);
    ok(s.copy(staging.as_range(), range), what);
    let download = ok(s.copy_to_host(staging.as_range()), what);
    let bytes = ok(download.wait(), what);
    ok(s.synchronize(), what);
    ok(staging.free(), what);
    bytes
}

/// Writes `bytes` at the start of `range` (imported memory among others) the M5 way: a staging
/// buffer and a device-to-device copy on `s`, synchronized.
#[track_caller]
pub(super) fn put_via_stream<S: Stream>(s: &S, range: DeviceRange<'_>, bytes: &[u8], what: &str) {
    let d = s.device();
    let staging = alloc(d, bytes.len(), MallocPolicy::NormalOnly, what);
    ok(d.copy_from_host(staging.as_range(), bytes), what);
    ok(s.copy(range, staging.as_range()), what);
    ok(s.synchronize(), what);
    ok(staging.free(), what);
}

/// A device range at an address the suite kept, not one a live buffer or import lends: what a
/// C program holds after a free or close (M6), or a forged range past an allocation's end (M2).
/// The backend must refuse it if it names none of its live memory.
pub(super) fn kept_range(
    addr: u64,
    len: usize,
    device: DeviceId,
    imported: bool,
) -> DeviceRange<'static> {
    DeviceRange::new(addr, len, device, imported)
}

/// A notify that holds a stream at a wait until it is opened: the suite's way to keep a stream
/// busy for a while, on any backend (R1: one record releases one wait). The wait has a timeout
/// of 5 s, so a check that forgets to open its gate fails instead of hanging.
pub(super) struct Gate<D: Device> {
    notify: NotifyOf<D>,
    opener: StreamOf<D>,
}

impl<D: Device> Gate<D> {
    /// A gate on `d`; it holds streams of `d` only (R4: waits on the notify's device).
    #[track_caller]
    pub(super) fn new(d: &D) -> Self {
        Self {
            notify: create(d, "create the gate's notify"),
            opener: stream(d, "create the gate's stream"),
        }
    }

    /// Enqueues a wait on the gate on `s`: `s` runs nothing after it until [`Gate::open`].
    #[track_caller]
    pub(super) fn hold(&self, s: &StreamOf<D>) {
        ok(
            s.wait(&self.notify, crate::Timeout::secs(5)),
            "the gate's wait",
        );
    }

    /// Releases the one wait the gate holds.
    #[track_caller]
    pub(super) fn open(&self) {
        ok(self.opener.record(&self.notify), "open the gate");
        ok(self.opener.synchronize(), "open the gate");
    }

    /// Destroys the gate's notify.
    #[track_caller]
    pub(super) fn finish(self) {
        let Self { notify, opener } = self;
        drop(opener);
        ok(notify.destroy(), "destroy the gate's notify");
    }
}

/// A waker that unparks the polling thread and remembers that it was called.
struct ThreadWake {
    thread: std::thread::Thread,
    woken: AtomicBool,
}

impl Wake for ThreadWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// A minimal executor for one future on the current thread (std only: `Wake` + park).
pub(super) struct Poller {
    wake: Arc<ThreadWake>,
    waker: Waker,
}

impl Poller {
    pub(super) fn new() -> Self {
        let wake = Arc::new(ThreadWake {
            thread: std::thread::current(),
            woken: AtomicBool::new(false),
        });
        let waker = Waker::from(wake.clone());
        Self { wake, waker }
    }

    pub(super) fn poll<F: Future + ?Sized>(&self, fut: Pin<&mut F>) -> Poll<F::Output> {
        fut.poll(&mut Context::from_waker(&self.waker))
    }

    /// Polls `fut` until it is ready, re-polling only when it wakes the task. `None` when it
    /// is not ready within `limit` (including a future that never wakes its task).
    pub(super) fn block_on<F: Future + ?Sized>(
        &self,
        mut fut: Pin<&mut F>,
        limit: Duration,
    ) -> Option<F::Output> {
        let deadline = Instant::now() + limit;
        loop {
            if let Poll::Ready(v) = self.poll(fut.as_mut()) {
                return Some(v);
            }
            while !self.wake.woken.swap(false, Ordering::SeqCst) {
                let now = Instant::now();
                if now >= deadline {
                    return None;
                }
                std::thread::park_timeout(deadline - now);
            }
        }
    }
}

/// The parent's side of a `"remote"` peer (see `roles.rs` for the commands).
pub(super) struct Remote {
    peer: Option<Box<dyn Peer>>,
    label: String,
}

/// A failed remote command: the code and the reason the peer reported.
type RemoteErr = (AclError, String);

impl Remote {
    pub(super) fn spawn(spawner: &dyn Spawner, label: &str) -> Self {
        Self::spawn_with_env(spawner, label, &[])
    }

    pub(super) fn spawn_with_env(spawner: &dyn Spawner, label: &str, env: &[(&str, &str)]) -> Self {
        Self {
            peer: Some(spawner.spawn_with_env(ROLE_REMOTE, env)),
            label: label.to_owned(),
        }
    }

    /// A peer that has already run `dev <n>`.
    #[track_caller]
    pub(super) fn on_device(spawner: &dyn Spawner, label: &str, n: i32) -> Self {
        let mut peer = Self::spawn(spawner, label);
        peer.ok(&format!("dev {n}"));
        peer
    }

    fn peer(&mut self) -> &mut dyn Peer {
        self.peer.as_deref_mut().expect("peer already waited for")
    }

    fn call(&mut self, line: &str) -> std::result::Result<String, RemoteErr> {
        self.peer().send(line);
        let reply = self.peer().recv();
        let reply = reply.trim_end_matches(['\n', '\r']);
        if reply == "ok" {
            return Ok(String::new());
        }
        if let Some(value) = reply.strip_prefix("ok ") {
            return Ok(value.to_owned());
        }
        if let Some(rest) = reply.strip_prefix("err ") {
            let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
            if let Ok(code) = code.parse::<i32>() {
                return Err((AclError::from_raw(code), reason.to_owned()));
            }
        }
        panic!("{}: `{line}`: unexpected answer {reply:?}", self.label)
    }

    /// Runs `line`: the value of `ok <value>`, or the code and reason of `err`.
    pub(super) fn try_call(&mut self, line: &str) -> std::result::Result<String, RemoteErr> {
        self.call(line)
    }

    /// Runs `line` and expects success; returns the value of `ok <value>`.
    #[track_caller]
    pub(super) fn ok(&mut self, line: &str) -> String {
        match self.call(line) {
            Ok(v) => v,
            Err((code, reason)) => {
                panic!(
                    "{}: `{line}`: unexpected error {code}: {reason}",
                    self.label
                )
            }
        }
    }

    /// Runs `line` and expects it to fail with `code` and a non-empty reason.
    #[track_caller]
    pub(super) fn err(&mut self, line: &str, code: AclError) {
        match self.call(line) {
            Ok(_) => panic!("{}: `{line}`: expected {code}, got success", self.label),
            Err((got, reason)) => {
                assert_eq!(
                    got, code,
                    "{}: `{line}`: wrong code, reason: {reason}",
                    self.label
                );
                assert!(
                    !reason.is_empty(),
                    "{}: `{line}`: empty reason text",
                    self.label
                );
            }
        }
    }

    /// Runs `line` and expects it to fail with one of `codes`.
    #[track_caller]
    pub(super) fn err_in(&mut self, line: &str, codes: &[AclError]) {
        match self.call(line) {
            Ok(_) => panic!(
                "{}: `{line}`: expected one of {codes:?}, got success",
                self.label
            ),
            Err((got, reason)) => assert!(
                codes.contains(&got),
                "{}: `{line}`: expected one of {codes:?}, got {got:?}: {reason}",
                self.label
            ),
        }
    }

    /// The peer's bare tgid (`pid` command).
    #[track_caller]
    pub(super) fn pid(&mut self) -> Pid {
        let text = self.ok("pid");
        Pid(text
            .parse()
            .unwrap_or_else(|_| panic!("{}: bad pid {text:?}", self.label)))
    }

    /// The key of the peer's last notify, exported with `flags` (`export` command).
    #[track_caller]
    pub(super) fn export(&mut self, flags: ExportFlags) -> ExportKey {
        let hex = self.ok(&format!("export {}", flags.bits()));
        let text = hex_decode(&hex)
            .unwrap_or_else(|| panic!("{}: the key {hex:?} is not hex", self.label));
        ExportKey::new(text)
            .unwrap_or_else(|e| panic!("{}: the peer's key is invalid: {e}", self.label))
    }

    /// The peer's OS pid (not its bare tgid: [`Remote::pid`]).
    pub(super) fn os_pid(&self) -> Pid {
        self.peer.as_deref().expect("peer already waited for").pid()
    }

    /// `alloc <size> <policy>` on the peer's default device: the buffer's number and address.
    #[track_caller]
    pub(super) fn alloc(&mut self, size: usize, policy: MallocPolicy) -> (usize, u64) {
        let v = self.ok(&format!("alloc {size} {}", policy.bits()));
        let mut words = v.split(' ').map(|w| w.parse::<u64>().ok());
        match (words.next().flatten(), words.next().flatten()) {
            (Some(n), Some(addr)) => (n as usize, addr),
            _ => panic!("{}: bad alloc answer {v:?}", self.label),
        }
    }

    /// `memexport`: the export's number and its key.
    #[track_caller]
    pub(super) fn mem_export(
        &mut self,
        buffer: usize,
        offset: usize,
        len: usize,
        flags: MemExportFlags,
    ) -> (usize, ExportKey) {
        let v = self.ok(&format!(
            "memexport {buffer} {offset} {len} {}",
            flags.bits()
        ));
        let (n, hex) = v
            .split_once(' ')
            .unwrap_or_else(|| panic!("{}: bad memexport answer {v:?}", self.label));
        let text =
            hex_decode(hex).unwrap_or_else(|| panic!("{}: the key {hex:?} is not hex", self.label));
        let key = ExportKey::new(text)
            .unwrap_or_else(|e| panic!("{}: the peer's key is invalid: {e}", self.label));
        let n = n
            .parse()
            .unwrap_or_else(|_| panic!("{}: bad memexport answer {v:?}", self.label));
        note_export_len(&key, len);
        (n, key)
    }

    /// `memimport` on the peer's default device: the import's number, address and length.
    #[track_caller]
    pub(super) fn mem_import(
        &mut self,
        flags: MemImportFlags,
        key: &ExportKey,
    ) -> (usize, u64, usize) {
        let v = self.ok(&mem_import_line(flags, key));
        let w: Vec<u64> = v.split(' ').filter_map(|w| w.parse().ok()).collect();
        match w.as_slice() {
            [n, addr, len] => (*n as usize, *addr, *len as usize),
            _ => panic!("{}: bad memimport answer {v:?}", self.label),
        }
    }

    /// `read <r> <offset> <len>`: the bytes.
    #[track_caller]
    pub(super) fn read(&mut self, r: &str, offset: usize, len: usize) -> Vec<u8> {
        let hex = self.ok(&format!("read {r} {offset} {len}"));
        bytes_of_hex(&hex).unwrap_or_else(|| panic!("{}: bad hex {hex:?}", self.label))
    }

    /// `write <r> <offset> <hex>`.
    #[track_caller]
    pub(super) fn write(&mut self, r: &str, offset: usize, bytes: &[u8]) {
        self.ok(&format!("write {r} {offset} {}", hex_of_bytes(bytes)));
    }

    /// `meminfo` of the peer's default device.
    #[track_caller]
    pub(super) fn mem_info(&mut self) -> MemInfo {
        let v = self.ok("meminfo");
        let w: Vec<u64> = v.split(' ').filter_map(|w| w.parse().ok()).collect();
        match w.as_slice() {
            [free, total] => MemInfo {
                free: *free,
                total: *total,
            },
            _ => panic!("{}: bad meminfo answer {v:?}", self.label),
        }
    }

    /// Ends the peer cleanly (`exit`) and asserts it exited with code 0.
    #[track_caller]
    pub(super) fn exit(mut self) {
        self.ok("exit");
        let code = self.peer.take().expect("peer").wait();
        assert_eq!(code, 0, "{}: the peer exited with {code}", self.label);
    }

    /// Makes the peer abort while holding its references and asserts that it died.
    #[track_caller]
    pub(super) fn abort(mut self) {
        self.ok("abort");
        let code = self.peer.take().expect("peer").wait();
        assert_ne!(code, 0, "{}: an aborted peer exited with 0", self.label);
    }
}

/// The `import` command for `key` with `flags`, on the peer's default device.
pub(super) fn import_line(flags: ImportFlags, key: &ExportKey) -> String {
    format!("import {} {}", flags.bits(), hex_encode(key.as_str()))
}

/// The `setpid` command for one pid.
pub(super) fn setpid_line(pid: Pid) -> String {
    format!("setpid {}", pid.raw())
}

/// The lengths of the memory exports the suite made or was told of, by key: an importer needs
/// the length with the key (the C call returns only an address), as a real program sends it.
fn export_lens() -> &'static Mutex<HashMap<String, usize>> {
    static LENS: OnceLock<Mutex<HashMap<String, usize>>> = OnceLock::new();
    LENS.get_or_init(Mutex::default)
}

pub(super) fn note_export_len(key: &ExportKey, len: usize) {
    export_lens()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(key.as_str().to_owned(), len);
}

/// The length of `key`'s export, as its exporter would send it. A key the suite never saw
/// exported (malformed, mutated, a notify's) gets one page: its import is refused before the
/// length matters.
pub(super) fn key_len(key: &ExportKey) -> usize {
    export_lens()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(key.as_str())
        .copied()
        .unwrap_or(4096)
}

/// [`ok`] for an export of this process, noting its length for importers.
#[track_caller]
pub(super) fn exported<E: MemExport>(result: Result<E>, what: &str) -> E {
    let e = ok(result, what);
    note_export_len(e.key(), e.len());
    e
}

/// The `memimport` command for `key` with `flags` (and the export's length), on the peer's
/// default device.
pub(super) fn mem_import_line(flags: MemImportFlags, key: &ExportKey) -> String {
    format!(
        "memimport {} {} {}",
        flags.bits(),
        hex_encode(key.as_str()),
        key_len(key)
    )
}
