//! The `registry_attach` fuzz target: a registry segment whose bytes come from the input.
//!
//! R14 and SEMANTICS.md §4: a process that finds a registry with a wrong magic, version or a
//! corrupted header refuses to attach with 507000; every index, length and count read from
//! shared memory is bounds-checked. The body writes a segment into
//! `/dev/shm/ascend-notify.<ns>` (the name §4 gives it) for a namespace of this process's own,
//! attaches to it with `SimBuilder`, and if that works runs a few operations (create until full,
//! export, whitelist, import of forged keys, record/wait, batch reset, destroy, a second attach)
//! and the inspector. Attach and inspect must return `Ok` or a 507000 error, every other call a
//! code of §2, nothing may panic, and the whole input must finish within [`HANG_LIMIT`] (a hang
//! is reported as a panic). The namespace is removed afterwards.
//!
//! # No white-box access
//! The body knows nothing of the registry's layout. Its images are **templates**: the bytes of
//! a real registry, read from `/dev/shm` while throwaway attaches of this process hold it (so
//! its processes are dead when the image is written back, as after a crash), for 1–4
//! devices × 1–16 notifies, either *fresh* (one attach, nothing else) or *busy* (notifies
//! created on every device, exported with either flag, whitelisted, one flag set, one imported by
//! a second attach). The input then corrupts a template, and names what it corrupts by the
//! template's own content: the non-zero 32-bit words of a real registry are its fields with
//! meaning (magic, version, sizes, offsets, state, process slots, notify slots).
//!
//! # Input format
//! Missing bytes read as zero.
//! - byte 0: bit 0 `0` = *structured*, `1` = *raw*; bit 1: skip the operations; bit 2: the busy
//!   template (else the fresh one).
//! - bytes 1, 2: devices `1 + b % 4`, capacity `1 + b % 16`.
//! - bytes 3, 4: the segment size: `b3 % 4` = exact, shorter by `b4 * 64 + 1`, longer by
//!   `b4 * 64`, or `b4 * 16 + 1` bytes.
//! - structured: byte 5, the number of patches (at most 64), each `[target, index (2 bytes),
//!   off, op, value…]`: `target % 4` = the `index`-th non-zero word of the template, the 64-byte
//!   line of that word plus `off % 64`, the absolute offset `index << 8 | off`, or the first page
//!   plus `off + 256 * (index % 16)`; `op & 3` the width (1, 2, 4 or 8 bytes, little-endian),
//!   `op & 4` XOR instead of store. The bytes after the patches are the operations' arguments.
//! - raw: the rest of the input is XOR-ed into the image from its first byte (all zeros: the
//!   template as it is).

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use backend_sim::{BareTgidMode, SimBuilder, SimNotify, SimRuntime};
use notify_api::{
    AclError, Device as _, DeviceId, ExportFlags, ExportKey, ImportFlags, Notify as _, NotifyFlags,
    Pid, Result, Runtime as _, Stream as _, Timeout,
};

use super::Bytes;

/// How long one input may take before it counts as a hang.
pub const HANG_LIMIT: Duration = Duration::from_secs(5);

/// The most patches one input applies.
const MAX_PATCHES: usize = 64;

/// The process table of the templates (small, so images stay small).
const TEMPLATE_PROCESSES: u32 = 4;

/// Page size of the sparse images.
const PAGE: usize = 4096;

/// What an input did, for the replay test's checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The registry was accepted (and the operations ran unless skipped).
    Attached,
    /// The attach was refused with 507000, for this reason.
    Refused(String),
}

/// A segment image, sparse: only the non-zero pages are stored.
#[derive(Clone, Debug)]
struct Image {
    len: usize,
    pages: BTreeMap<usize, Box<[u8; PAGE]>>,
}

impl Image {
    fn from_bytes(bytes: &[u8]) -> Self {
        let mut pages = BTreeMap::new();
        for (i, chunk) in bytes.chunks(PAGE).enumerate() {
            if chunk.iter().any(|&b| b != 0) {
                let mut page = Box::new([0u8; PAGE]);
                page[..chunk.len()].copy_from_slice(chunk);
                pages.insert(i, page);
            }
        }
        Self {
            len: bytes.len(),
            pages,
        }
    }

    fn get(&self, at: usize) -> u8 {
        if at >= self.len {
            return 0;
        }
        self.pages.get(&(at / PAGE)).map_or(0, |p| p[at % PAGE])
    }

    fn set(&mut self, at: usize, b: u8) {
        if at >= self.len {
            return;
        }
        let page = self
            .pages
            .entry(at / PAGE)
            .or_insert_with(|| Box::new([0u8; PAGE]));
        page[at % PAGE] = b;
    }

    fn resize(&mut self, len: usize) {
        self.len = len;
        let last = len.div_ceil(PAGE);
        self.pages.retain(|&i, _| i < last);
        if let Some(page) = self.pages.get_mut(&(len / PAGE)) {
            page[len % PAGE..].fill(0);
        }
    }

    /// Offsets of the non-zero aligned 32-bit words, in order.
    fn fields(&self) -> Vec<usize> {
        let mut out = Vec::new();
        for (&i, page) in &self.pages {
            for (w, word) in page.chunks(4).enumerate() {
                let at = i * PAGE + w * 4;
                if at < self.len && word.iter().any(|&b| b != 0) {
                    out.push(at);
                }
            }
        }
        out
    }

    /// Creates the segment file with exactly these bytes (mode 0600, as `shm_open` would).
    fn write(&self, path: &str) {
        use std::io::{Seek, SeekFrom, Write};
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .unwrap_or_else(|e| panic!("harness: creating {path}: {e}"));
        file.set_len(self.len as u64)
            .unwrap_or_else(|e| panic!("harness: sizing {path}: {e}"));
        for (&i, page) in &self.pages {
            let start = i * PAGE;
            let end = (start + PAGE).min(self.len);
            file.seek(SeekFrom::Start(start as u64))
                .and_then(|_| file.write_all(&page[..end - start]))
                .unwrap_or_else(|e| panic!("harness: writing {path}: {e}"));
        }
    }
}

/// A real registry's bytes and what the body learnt about it.
#[derive(Debug)]
struct Template {
    image: Image,
    fields: Vec<usize>,
}

/// Per process: the namespace, the templates built in it, a key of it (for forged keys).
struct State {
    ns: String,
    templates: HashMap<(u32, u32, bool), Arc<Template>>,
    /// `ans1-<namespace hash>-`: the start of every notify key of the namespace.
    key_prefix: Option<String>,
}

static STATE: OnceLock<Mutex<State>> = OnceLock::new();

fn state() -> &'static Mutex<State> {
    STATE.get_or_init(|| {
        Mutex::new(State {
            ns: format!("fz-reg-{}", std::process::id()),
            templates: HashMap::new(),
            key_prefix: None,
        })
    })
}

fn segment_path(ns: &str) -> String {
    format!("/dev/shm/ascend-notify.{ns}")
}

/// Removes the namespace when dropped, on every path out of the body.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = backend_sim::remove_namespace(&self.0);
    }
}

fn attach(ns: &str, devices: u32, capacity: u32) -> SimRuntime {
    SimBuilder::default()
        .namespace(ns)
        .devices(devices)
        .capacity(capacity)
        .processes(TEMPLATE_PROCESSES)
        .build()
        .unwrap_or_else(|e| panic!("harness: attaching a template namespace: {e}"))
}

/// Builds the template for (`devices`, `capacity`, `busy`) in namespace `ns` (which must not
/// exist), and learns the namespace's key prefix on the way.
fn build_template(st: &mut State, devices: u32, capacity: u32, busy: bool) -> Arc<Template> {
    let ns = st.ns.clone();
    let _ = backend_sim::remove_namespace(&ns);
    let rt = attach(&ns, devices, capacity);
    let mut held: Vec<SimNotify> = Vec::new();
    let mut second = None;
    if st.key_prefix.is_none() || busy {
        let dev = rt.device(DeviceId(0)).expect("device 0");
        let n = dev.create_notify(NotifyFlags::DEFAULT).expect("create");
        let key = n.export(ExportFlags::DEFAULT).expect("export");
        st.key_prefix = Some(key.as_str()[..22].to_owned());
        if busy {
            held.push(n);
        } else {
            n.destroy().expect("destroy");
        }
    }
    if busy {
        let other = SimBuilder::default()
            .namespace(&ns)
            .bare_tgid(BareTgidMode::Remap)
            .build()
            .expect("a second attach");
        let pid = other.bare_tgid().expect("bare tgid");
        for d in 0..devices as i32 {
            let dev = rt.device(DeviceId(d)).expect("device");
            while held.len() < (d as usize + 1) * 2 && held.len() < (capacity * devices) as usize {
                match dev.create_notify(NotifyFlags::DEFAULT) {
                    Ok(n) => held.push(n),
                    Err(_) => break,
                }
            }
        }
        let mut keys = Vec::new();
        for (i, n) in held.iter().enumerate().skip(1) {
            let flags = if i % 2 == 0 {
                ExportFlags::DEFAULT
            } else {
                ExportFlags::DISABLE_PID_VALIDATION
            };
            if let Ok(k) = n.export(flags) {
                if i % 2 == 0 {
                    let _ = n.set_import_pid(pid);
                }
                keys.push(k);
            }
        }
        if let Some(n) = held.first() {
            let s = n.device().default_stream().expect("stream");
            let _ = s.record(n);
        }
        let dev = other.device(DeviceId(0)).expect("device 0");
        let imported: Vec<SimNotify> = keys
            .iter()
            .filter_map(|k| dev.import_notify(k, ImportFlags::ENABLE_PEER_ACCESS).ok())
            .collect();
        second = Some((other, imported));
    }
    let bytes = std::fs::read(segment_path(&ns))
        .unwrap_or_else(|e| panic!("harness: reading the template segment: {e}"));
    // The bytes are those of a live registry; dropping detaches cleanly (the last one out
    // removes the namespace), but the copy keeps its processes, which look dead once their
    // lock files are gone.
    drop(held);
    drop(second);
    drop(rt);
    let _ = backend_sim::remove_namespace(&ns);
    let image = Image::from_bytes(&bytes);
    let fields = image.fields();
    Arc::new(Template { image, fields })
}

/// The `registry_attach` fuzz target (see the module docs). Panics on a violated invariant.
pub fn registry_attach(data: &[u8]) -> Outcome {
    let mut st = state().lock().unwrap_or_else(PoisonError::into_inner);
    let ns = st.ns.clone();
    let _cleanup = Cleanup(ns.clone());
    let _ = backend_sim::remove_namespace(&ns);

    let mut input = Bytes::new(data);
    let mode = input.u8();
    let devices = 1 + u32::from(input.u8() % 4);
    let capacity = 1 + u32::from(input.u8() % 16);
    let busy = mode & 4 != 0;
    let template = match st.templates.get(&(devices, capacity, busy)) {
        Some(t) => Arc::clone(t),
        None => {
            let t = build_template(&mut st, devices, capacity, busy);
            st.templates
                .insert((devices, capacity, busy), Arc::clone(&t));
            t
        }
    };
    let key_prefix = st
        .key_prefix
        .clone()
        .expect("learnt with the first template");
    let image = corrupt(&template, mode, &mut input);
    image.write(&segment_path(&ns));
    let run_ops = mode & 2 == 0;
    let args = input.rest().to_vec();

    // The attach runs in a thread of its own so that a hang becomes a report, not a stuck run.
    let (tx, rx) = mpsc::channel();
    let worker_ns = ns.clone();
    let worker = std::thread::Builder::new()
        .name("fuzz-registry-attach".into())
        .spawn(move || {
            let outcome = std::panic::catch_unwind(|| {
                attach_and_use(&worker_ns, run_ops, &args, &key_prefix)
            });
            let _ = tx.send(outcome);
        })
        .expect("spawning the attach thread");
    match rx.recv_timeout(HANG_LIMIT) {
        Ok(Ok(outcome)) => {
            let _ = worker.join();
            outcome
        }
        Ok(Err(panic)) => {
            let _ = worker.join();
            std::panic::resume_unwind(panic);
        }
        Err(_) => {
            // Unlinking the segment lets a looping attach find no namespace (or a fresh one)
            // and return, so the thread does not spin for the rest of the process.
            let _ = backend_sim::remove_namespace(&ns);
            let finished = rx.recv_timeout(HANG_LIMIT).is_ok();
            let _ = backend_sim::remove_namespace(&ns);
            panic!(
                "R14: attaching to (or inspecting) this registry did not return within \
                 {HANG_LIMIT:?} (a hang; it returned {} once the segment was unlinked). A \
                 corrupted registry must be refused with 507000.",
                if finished { "only" } else { "not even" }
            );
        }
    }
}

/// The template, resized and corrupted as the input says.
fn corrupt(t: &Template, mode: u8, input: &mut Bytes<'_>) -> Image {
    let mut image = t.image.clone();
    let exact = image.len;
    let size_mode = input.u8();
    let amount = usize::from(input.u8());
    let size = match size_mode % 4 {
        0 => exact,
        1 => exact.saturating_sub(amount * 64 + 1).max(1),
        2 => exact + amount * 64,
        _ => amount * 16 + 1,
    };
    image.resize(size);
    if mode & 1 == 1 {
        for (at, b) in input.rest().iter().enumerate().take(size) {
            image.set(at, image.get(at) ^ b);
        }
        return image;
    }
    let patches = usize::from(input.u8()) % (MAX_PATCHES + 1);
    let fields = &t.fields;
    for _ in 0..patches {
        let target = input.u8();
        let index = usize::from(input.u16());
        let off = usize::from(input.u8());
        let op = input.u8();
        let field = |i: usize| fields.get(i % fields.len().max(1)).copied().unwrap_or(0);
        let base = match target % 4 {
            0 => field(index),
            1 => (field(index) & !63) + off % 64,
            2 => (index << 8) | off,
            _ => off + 256 * (index % 16),
        };
        let width = 1usize << (op & 3);
        for i in 0..width {
            let v = input.u8();
            let at = base + i;
            image.set(at, if op & 4 == 0 { v } else { image.get(at) ^ v });
        }
    }
    image
}

/// Attaches, uses, inspects: the part that must neither panic nor hang.
fn attach_and_use(ns: &str, run_ops: bool, args: &[u8], key_prefix: &str) -> Outcome {
    let attached = SimBuilder::default()
        .namespace(ns)
        .devices(2)
        .capacity(4)
        .build();
    match attached {
        Ok(rt) => {
            if run_ops {
                operations(&rt, ns, &mut Bytes::new(args), key_prefix);
            }
            check_inspect(ns);
            drop(rt);
            Outcome::Attached
        }
        Err(e) => {
            assert_eq!(
                e.code(),
                AclError::RT_INTERNAL_ERROR,
                "R14: a refused attach must be 507000, got {e}"
            );
            assert!(!e.reason().is_empty(), "a refused attach says why");
            check_inspect(ns);
            Outcome::Refused(e.reason().into_owned())
        }
    }
}

fn check_inspect(ns: &str) {
    if let Err(e) = backend_sim::inspect::inspect(ns) {
        assert_eq!(
            e.code(),
            AclError::RT_INTERNAL_ERROR,
            "R14: the inspector must return Ok or 507000, got {e}"
        );
    }
}

/// Every result must carry a code of SEMANTICS.md §2.
fn known<T>(what: &str, r: &Result<T>) {
    if let Err(e) = r {
        assert!(
            AclError::ALL.contains(&e.code()) && !e.code().is_success(),
            "{what}: returned a code outside SEMANTICS.md §2: {e}"
        );
    }
}

fn operations(rt: &SimRuntime, ns: &str, args: &mut Bytes<'_>, key_prefix: &str) {
    let devices = rt.device_count().expect("device_count never fails");
    let mut held = Vec::new();
    for d in 0..devices.min(4) {
        let dev = rt.device(DeviceId(d as i32));
        known("device", &dev);
        let Ok(dev) = dev else { continue };
        // Create until the device is full (or something refuses), at most a few.
        for _ in 0..(2 + args.u8() % 18) {
            let r = dev.create_notify(NotifyFlags::DEFAULT);
            known("create_notify", &r);
            match r {
                Ok(n) => held.push(n),
                Err(_) => break,
            }
        }
    }
    let dev0 = rt.device(DeviceId(0));
    known("device 0", &dev0);
    let stream = dev0.as_ref().ok().map(|d| d.create_stream());
    if let Some(s) = &stream {
        known("create_stream", s);
    }
    let stream = stream.and_then(|s| s.ok());
    let pid = rt.bare_tgid().expect("bare_tgid never fails");
    let mut keys: Vec<ExportKey> = Vec::new();
    for n in &held {
        let flags = if args.u8() & 1 == 0 {
            ExportFlags::DEFAULT
        } else {
            ExportFlags::DISABLE_PID_VALIDATION
        };
        let key = n.export(flags);
        known("export", &key);
        if let Ok(key) = key {
            known("set_import_pid (own)", &n.set_import_pid(pid));
            let other = Pid(i32::from(args.u16()) + 1);
            known("set_import_pid", &n.set_import_pid(other));
            keys.push(key);
        }
        if let Some(s) = &stream
            && n.device().id().0 == 0
        {
            known("record", &s.record(n));
            known("wait", &s.wait(n, Timeout::secs(1)));
            known(
                "synchronize",
                &s.synchronize_timeout(Some(Duration::from_secs(2))),
            );
        }
    }
    if let Ok(dev0) = &dev0 {
        // Our own keys: already held (507000) or refused otherwise; never a panic.
        for key in &keys {
            known(
                "import own key",
                &dev0.import_notify(key, ImportFlags::DEFAULT),
            );
        }
    }
    // Forged keys of this namespace naming slots as the input chooses: they reach the slot
    // checks of the import with whatever the corruption left in those slots.
    let mut imported = Vec::new();
    if let Ok(dev0) = &dev0 {
        for _ in 0..(args.u8() % 4) {
            let text = format!(
                "{key_prefix}{:02x}{:04x}-{:08x}-{:016x}",
                args.u8() % 8,
                args.u16(),
                args.u32(),
                args.u64()
            );
            let key = ExportKey::new(text).expect("a printable 54-character key");
            let flags = if args.u8() & 1 == 0 {
                ImportFlags::DEFAULT
            } else {
                ImportFlags::ENABLE_PEER_ACCESS
            };
            let r = dev0.import_notify(&key, flags);
            known("import forged key", &r);
            if let Ok(n) = r {
                if let Some(s) = &stream {
                    known("record imported", &s.record(&n));
                }
                imported.push(n);
            }
        }
    }
    let all: Vec<&SimNotify> = held.iter().chain(&imported).collect();
    if !all.is_empty() {
        known("batch_reset", &rt.batch_reset(&all));
    }
    // A second attach of this process (another runtime) while the first is live.
    if args.u8() & 1 == 1 {
        let second = SimBuilder::default().namespace(ns).build();
        known("second attach", &second);
        if let Ok(second) = second
            && let Ok(d) = second.device(DeviceId(0))
        {
            known("second create", &d.create_notify(NotifyFlags::DEFAULT));
        }
    }
    check_inspect(ns);
    for n in imported.into_iter().chain(held) {
        known("destroy", &n.destroy());
    }
    if let Some(s) = stream {
        known(
            "synchronize at end",
            &s.synchronize_timeout(Some(Duration::from_secs(2))),
        );
    }
}

/// One patch of a structured input: `(target, index, off, op, value)`.
type Patch = (u8, u16, u8, u8, u64);

/// A structured input: mode, layout, size, patches, then the operations' arguments.
fn structured(mode: u8, d: u8, c: u8, size: [u8; 2], patches: &[Patch], args: &[u8]) -> Vec<u8> {
    let mut v = vec![mode & !1, d, c, size[0], size[1], patches.len() as u8];
    for &(target, index, off, op, value) in patches {
        v.push(target);
        v.extend_from_slice(&index.to_le_bytes());
        v.extend_from_slice(&[off, op]);
        v.extend_from_slice(&value.to_le_bytes()[..1 << (op & 3)]);
    }
    v.extend_from_slice(args);
    v
}

/// A raw input: mode, layout, size, then the bytes XOR-ed into the template.
fn raw(mode: u8, d: u8, c: u8, size: [u8; 2], xor: &[u8]) -> Vec<u8> {
    [&[mode | 1, d, c, size[0], size[1]][..], xor].concat()
}

/// The byte offset of the header's `state` word in layout version 2 (magic: 8 bytes, version,
/// header size, state): the one piece of layout the seeds name, for the regression input of
/// finding F1. The replay test checks that this input is still refused as "marked removed", so
/// a layout change that moves the field fails there instead of passing silently.
pub const F1_STATE_OFFSET: u16 = 16;

/// The regression input of finding F1 (docs/FUZZING.md): the fresh 1×1 template whose header
/// `state` reads 2 (`STATE_REMOVED`) while the segment is linked.
pub fn f1_input() -> Vec<u8> {
    structured(2, 0, 0, [0, 0], &[(2, 0, F1_STATE_OFFSET as u8, 2, 2)], &[])
}

/// Seeds for `fuzz/corpus/registry_attach`: one input per interesting shape.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    let mut add = |name: &str, bytes: Vec<u8>| seeds.push((name.to_owned(), bytes));
    let args = [
        3u8, 5, 1, 0x34, 0x12, 2, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1,
    ];
    // Valid templates, each size mode, fresh and busy.
    for (d, c) in [(0u8, 0u8), (1, 3), (3, 15)] {
        for busy in [0u8, 4] {
            for size_mode in 0u8..4 {
                add(
                    &format!(
                        "valid-d{d}-c{c}-{}-size{size_mode}",
                        if busy == 4 { "busy" } else { "fresh" }
                    ),
                    structured(busy, d, c, [size_mode, 3], &[], &args),
                );
            }
        }
    }
    add("valid-no-ops", structured(2, 1, 3, [0, 0], &[], &[]));
    // Each of the first 40 fields of the busy 2x4 template, zeroed, and set to all ones.
    for i in 0..40u16 {
        add(
            &format!("field-{i:02}-zero"),
            structured(4, 1, 3, [0, 0], &[(0, i, 0, 2, 0)], &args),
        );
        add(
            &format!("field-{i:02}-ones"),
            structured(4, 1, 3, [0, 0], &[(0, i, 0, 2, 0xffff_ffff)], &args),
        );
    }
    // The lines around the fields of process and notify slots, scribbled on.
    for i in [40u16, 48, 56, 64, 72, 80] {
        add(
            &format!("line-{i:02}-xor"),
            structured(4, 1, 3, [0, 0], &[(1, i, 8, 6, 0xffff_ffff)], &args),
        );
    }
    // Raw: the template as it is, flipped bits, 0xff over the header, tiny segments.
    add("raw-template", raw(0, 1, 3, [0, 0], &[]));
    add("raw-busy-template", raw(4, 1, 3, [0, 0], &[]));
    add(
        "raw-one-bit",
        raw(0, 1, 3, [0, 0], &[0, 0, 0, 0, 0, 0, 0, 1]),
    );
    add("raw-ff", raw(4, 1, 3, [0, 0], &[0xff; 700]));
    add("raw-tiny", raw(0, 0, 0, [3, 0], &[]));
    add("raw-header-only", raw(0, 0, 0, [3, 40], &[]));
    add("raw-short", raw(0, 0, 0, [1, 1], &[]));
    seeds
}
