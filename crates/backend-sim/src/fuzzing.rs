//! Fuzz target bodies (feature `testing`): the code behind `fuzz/fuzz_targets/registry_attach.rs`,
//! kept here so that the checked-in corpus replays as an ordinary `cargo test`
//! (`tests/fuzz_corpus_replay.rs`). Not a stable API.
//!
//! # `registry_attach`
//! R14 and SEMANTICS.md §4: a process that finds a registry with a wrong magic, version or a
//! corrupted header refuses to attach with 507000; every index, length and count read from shared
//! memory is bounds-checked. The body writes a registry segment whose bytes come from the input
//! into `/dev/shm/ascend-notify.<ns>` for a namespace of its own, attaches to it, and if that
//! works runs a few operations (create until full, export, whitelist, import of forged keys,
//! record/wait, batch reset, destroy, a second attach) and the inspector. Attach and inspect
//! must return `Ok` or a 507000 error, every other call a code of §2, nothing may panic, and
//! the whole input must finish within [`HANG_LIMIT`] (a hang is reported as a panic). The
//! namespace is removed afterwards.
//!
//! Input format (all of it is optional: missing bytes read as zero):
//! - byte 0, bit 0: `0` = *structured*, `1` = *raw*; bit 1: skip the operations.
//! - structured: byte 1 → devices `1 + b % 4`, byte 2 → capacity `1 + b % 16`, a valid header
//!   and zeroed slots for that layout; bytes 3–4 choose the segment size (exact, shorter,
//!   longer, or tiny); byte 5 the number of patches (at most 64), each
//!   `[target, index, off_lo, off_hi, op, value…]`: `target % 4`
//!   is the header / proc slot `index` / notify slot `index` / an absolute offset (`index << 16 |
//!   off`), `op & 3` the width (1, 2, 4 or 8 bytes, little-endian), `op & 4` XOR instead of store.
//! - raw: bytes 1–2 (LE) × 64 = the minimum segment size, then the segment's bytes, zero-padded.
//!   The `ns_hash` header field is XOR-ed with the namespace's hash, so all-zero bytes there mean
//!   "the right namespace" whatever the (per-process) namespace is called.
//! - operations read their arguments (forged key fields, pids) from the bytes after that.

use std::mem::offset_of;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use notify_api::{
    AclError, Backend, DeviceId, ExportFlags, ExportKey, ImportFlags, Notify, NotifyFlags, Pid,
    Result, Stream,
};

use crate::layout::{Header, Layout, MAGIC, MAX_PROCS, NotifySlot, ProcSlot, STATE_READY, VERSION};
use crate::registry::{SimKey, SlotRef, ns_hash};
use crate::{SimBackend, inspect, remove_namespace, shm};

/// How long one input may take before it counts as a hang.
pub const HANG_LIMIT: Duration = Duration::from_secs(5);

/// The largest segment an input can ask for.
const MAX_SEGMENT: usize = 4 << 20;

/// The most patches one input applies.
const MAX_PATCHES: usize = 64;

/// A cursor over the fuzz input; reads past the end give zeros.
#[derive(Debug)]
pub(crate) struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Bytes<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    pub(crate) fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos = self.pos.saturating_add(1);
        b
    }

    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub(crate) fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    pub(crate) fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    /// The rest of the input.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let rest = self.data.get(self.pos..).unwrap_or(&[]);
        self.pos = self.data.len();
        rest
    }
}

/// Removes the namespace when dropped, on every path out of the body.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = remove_namespace(&self.0);
    }
}

/// A namespace of this call's own: per process and per call, so parallel callers never meet.
fn fresh_namespace() -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    format!(
        "fz-reg-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// What an input did, for the replay test's sanity checks.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The registry was accepted and the operations ran.
    Attached,
    /// The attach was refused with 507000.
    Refused,
}

/// The `registry_attach` fuzz target (see the module docs). Panics on a violated invariant.
pub fn registry_attach(data: &[u8]) -> Outcome {
    let ns = fresh_namespace();
    let _cleanup = Cleanup(ns.clone());
    let _ = remove_namespace(&ns);

    let mut input = Bytes::new(data);
    let mode = input.u8();
    let image = if mode & 1 == 0 {
        structured_image(&mut input, &ns)
    } else {
        raw_image(&mut input, &ns)
    };
    if skip_known() && known_hang(&image) {
        return Outcome::Refused;
    }
    write_segment(&ns, &image);
    let run_ops = mode & 2 == 0;
    let args = input.rest().to_vec();

    // The attach runs in a thread of its own so that a hang becomes a report, not a stuck run.
    let (tx, rx) = mpsc::channel();
    let worker_ns = ns.clone();
    let worker = std::thread::Builder::new()
        .name("fuzz-registry-attach".into())
        .spawn(move || {
            let outcome = std::panic::catch_unwind(|| attach_and_use(&worker_ns, run_ops, &args));
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
            // Unlinking the segment lets a looping attach find no namespace (or a fresh one) and
            // return, so the thread does not spin for the rest of the process.
            let _ = remove_namespace(&ns);
            let finished = rx.recv_timeout(HANG_LIMIT).is_ok();
            let _ = remove_namespace(&ns);
            panic!(
                "R14: attaching to (or inspecting) this registry did not return within {:?} \
                 (a hang; it returned {} once the segment was unlinked). A corrupted registry must \
                 be refused with 507000.",
                HANG_LIMIT,
                if finished { "only" } else { "not even" }
            );
        }
    }
}

/// `ASCEND_NOTIFY_FUZZ_SKIP_KNOWN=1`: skip inputs that reproduce a finding already reported
/// (docs/FUZZING.md), so a long run can look past it. Off by default, and never in the replay.
pub const ENV_SKIP_KNOWN: &str = "ASCEND_NOTIFY_FUZZ_SKIP_KNOWN";

fn skip_known() -> bool {
    std::env::var_os(ENV_SKIP_KNOWN).is_some_and(|v| v == "1")
}

/// Finding F1 (docs/FUZZING.md): a segment whose header `state` field reads `STATE_REMOVED`
/// (2) while the segment is still linked makes `Registry::open` retry forever (attach and the
/// inspector both hang) instead of refusing it with 507000.
pub fn known_hang(image: &[u8]) -> bool {
    let at = offset_of!(Header, state);
    image.len() >= size_of::<Header>()
        && image.get(at..at + 4) == Some(&crate::layout::STATE_REMOVED.to_le_bytes()[..])
}

/// Attaches, uses, inspects: the part that must neither panic nor hang.
fn attach_and_use(ns: &str, run_ops: bool, args: &[u8]) -> Outcome {
    let attached = SimBackend::builder()
        .namespace(ns)
        .devices(2)
        .capacity(4)
        .build();
    match attached {
        Ok(backend) => {
            if run_ops {
                operations(&backend, ns, &mut Bytes::new(args));
            }
            check_inspect(ns);
            drop(backend);
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
            Outcome::Refused
        }
    }
}

fn check_inspect(ns: &str) {
    match inspect(ns) {
        Ok(_) => {}
        Err(e) => assert_eq!(
            e.code(),
            AclError::RT_INTERNAL_ERROR,
            "R14: the inspector must return Ok or 507000, got {e}"
        ),
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

fn operations(backend: &SimBackend, ns: &str, args: &mut Bytes<'_>) {
    let devices = backend.device_count().expect("device_count never fails");
    let mut held = Vec::new();
    for device in 0..devices.min(4) {
        let r = backend.set_device(DeviceId(device as i32));
        known("set_device", &r);
        if r.is_err() {
            continue;
        }
        // Create until the device is full (or something refuses), at most a few.
        for _ in 0..(2 + args.u8() % 18) {
            let r = backend.create_notify(NotifyFlags::empty());
            known("create_notify", &r);
            match r {
                Ok(n) => held.push(n),
                Err(_) => break,
            }
        }
    }
    let _ = backend.set_device(DeviceId(0));
    let stream = backend.default_stream();
    known("default_stream", &stream);
    let pid = backend.bare_tgid().expect("bare_tgid never fails");
    let mut keys: Vec<ExportKey> = Vec::new();
    for n in &held {
        let flags = if args.u8() & 1 == 0 {
            ExportFlags::empty()
        } else {
            ExportFlags::DISABLE_PID_VALIDATION
        };
        let key = n.export(flags);
        known("export", &key);
        if let Ok(key) = key {
            let r = n.set_import_pids(&[pid, Pid(i32::from(args.u16()) + 1)]);
            known("set_import_pids", &r);
            keys.push(key);
        }
        if let Ok(s) = &stream
            && n.device().0 == 0
        {
            known("record", &n.record(s));
            known("wait_and_reset", &n.wait_and_reset(s, 1));
            known(
                "synchronize",
                &s.synchronize_timeout(Some(Duration::from_secs(2))),
            );
        }
    }
    // Our own keys: already held (507000) or refused otherwise; never a panic.
    for key in &keys {
        known(
            "import own key",
            &backend.import_notify(key, ImportFlags::empty()),
        );
    }
    // Forged keys naming slots of this namespace, as the input chooses: they reach the slot
    // checks of the import with whatever the patches left in those slots.
    let mut imported = Vec::new();
    for _ in 0..(args.u8() % 4) {
        let key = SimKey {
            ns_hash: ns_hash(ns),
            slot: SlotRef {
                device: u32::from(args.u8() % 8),
                index: u32::from(args.u16()),
                generation: args.u32(),
            },
            secret: args.u64(),
        }
        .encode();
        let flags = if args.u8() & 1 == 0 {
            ImportFlags::empty()
        } else {
            ImportFlags::ENABLE_PEER_ACCESS
        };
        let r = backend.import_notify(&key, flags);
        known("import forged key", &r);
        if let Ok(n) = r {
            if let Ok(s) = &stream {
                known("record imported", &n.record(s));
            }
            imported.push(n);
        }
    }
    let all: Vec<_> = held.iter().chain(&imported).collect();
    if !all.is_empty() {
        known("batch_reset", &backend.batch_reset(&all));
    }
    // A second attach of this process (another runtime instance) while the first is live.
    if args.u8() & 1 == 1 {
        let second = SimBackend::builder().namespace(ns).build();
        known("second attach", &second);
        if let Ok(second) = second {
            let _ = second.set_device(DeviceId(0));
            known("second create", &second.create_notify(NotifyFlags::empty()));
        }
    }
    check_inspect(ns);
    for n in imported.into_iter().chain(held) {
        known("destroy", &n.destroy());
    }
    if let Ok(s) = stream {
        known(
            "synchronize at end",
            &s.synchronize_timeout(Some(Duration::from_secs(2))),
        );
    }
}

/// A valid registry for a small layout, then patched.
fn structured_image(input: &mut Bytes<'_>, ns: &str) -> Vec<u8> {
    let devices = 1 + u32::from(input.u8() % 4);
    let capacity = 1 + u32::from(input.u8() % 16);
    let layout = Layout::new(devices, capacity);
    let exact = layout.total_size as usize;
    let size_mode = input.u8();
    let amount = usize::from(input.u8());
    let size = match size_mode % 4 {
        0 => exact,
        1 => exact.saturating_sub(amount * 64 + 1).max(1),
        2 => exact + amount * 64,
        _ => amount * 16 + 1,
    };
    let mut image = vec![0u8; exact.max(size)];
    write_header(&mut image, &layout, ns_hash(ns));
    let patches = usize::from(input.u8()) % (MAX_PATCHES + 1);
    for _ in 0..patches {
        let target = input.u8();
        let index = usize::from(input.u8());
        let off = usize::from(input.u16());
        let op = input.u8();
        let base = match target % 4 {
            0 => off % size_of::<Header>(),
            1 => {
                layout.procs_offset as usize
                    + (index % MAX_PROCS) * size_of::<ProcSlot>()
                    + off % size_of::<ProcSlot>()
            }
            2 => {
                let slots = (devices * capacity) as usize;
                layout.notifies_offset as usize
                    + (index % slots) * size_of::<NotifySlot>()
                    + off % size_of::<NotifySlot>()
            }
            _ => (index << 16) | off,
        };
        let width = 1usize << (op & 3);
        let mut value = [0u8; 8];
        for b in value.iter_mut().take(width) {
            *b = input.u8();
        }
        for (i, v) in value.iter().take(width).enumerate() {
            if let Some(byte) = image.get_mut(base + i) {
                if op & 4 == 0 {
                    *byte = *v;
                } else {
                    *byte ^= *v;
                }
            }
        }
    }
    image.truncate(size);
    image
}

/// The input's own bytes, zero-padded to the size it asks for.
fn raw_image(input: &mut Bytes<'_>, ns: &str) -> Vec<u8> {
    let min = usize::from(input.u16()) * 64;
    let content = input.rest();
    let mut image = content[..content.len().min(MAX_SEGMENT)].to_vec();
    if image.len() < min {
        image.resize(min, 0);
    }
    if image.is_empty() {
        // An empty segment is a creator that has not sized it yet: attach waits for it (§4),
        // which is correct but slow. Fuzz the one-byte segment instead.
        image.push(0);
    }
    let at = offset_of!(Header, ns_hash);
    if let Some(field) = image.get_mut(at..at + 8) {
        let hash = u64::from_le_bytes(field.try_into().expect("8 bytes")) ^ ns_hash(ns);
        field.copy_from_slice(&hash.to_le_bytes());
    }
    image
}

/// What `registry::init_header` writes, as bytes (layout version [`VERSION`]).
fn write_header(image: &mut [u8], layout: &Layout, hash: u64) {
    let mut put = |at: usize, bytes: &[u8]| image[at..at + bytes.len()].copy_from_slice(bytes);
    put(offset_of!(Header, magic), &MAGIC.to_le_bytes());
    put(offset_of!(Header, version), &VERSION.to_le_bytes());
    put(
        offset_of!(Header, header_size),
        &(size_of::<Header>() as u32).to_le_bytes(),
    );
    put(offset_of!(Header, state), &STATE_READY.to_le_bytes());
    put(offset_of!(Header, devices), &layout.devices.to_le_bytes());
    put(offset_of!(Header, capacity), &layout.capacity.to_le_bytes());
    put(
        offset_of!(Header, max_procs),
        &(MAX_PROCS as u32).to_le_bytes(),
    );
    put(
        offset_of!(Header, proc_size),
        &(size_of::<ProcSlot>() as u32).to_le_bytes(),
    );
    put(
        offset_of!(Header, notify_size),
        &(size_of::<NotifySlot>() as u32).to_le_bytes(),
    );
    put(
        offset_of!(Header, total_size),
        &layout.total_size.to_le_bytes(),
    );
    put(offset_of!(Header, ns_hash), &hash.to_le_bytes());
    put(
        offset_of!(Header, procs_offset),
        &layout.procs_offset.to_le_bytes(),
    );
    put(
        offset_of!(Header, notifies_offset),
        &layout.notifies_offset.to_le_bytes(),
    );
}

/// Creates the namespace's segment with exactly `image` in it (mode 0600, as `shm_open` would).
fn write_segment(ns: &str, image: &[u8]) {
    use std::io::Write;
    let path = format!("{}/{}", shm::SHM_DIR, shm::segment_name(ns));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .unwrap_or_else(|e| panic!("harness: creating {path}: {e}"));
    file.write_all(image)
        .unwrap_or_else(|e| panic!("harness: writing {path}: {e}"));
}

/// One patch of a structured input: `(target, index, offset, op, value)`.
type Patch = (u8, u8, usize, u8, u64);

/// A structured input: layout, size mode, patches, then the operations' arguments.
fn structured(d: u8, c: u8, size: [u8; 2], patches: &[Patch], args: &[u8]) -> Vec<u8> {
    let mut v = vec![0, d, c, size[0], size[1], patches.len() as u8];
    for &(target, index, off, op, value) in patches {
        v.extend_from_slice(&[target, index]);
        v.extend_from_slice(&(off as u16).to_le_bytes());
        v.push(op);
        v.extend_from_slice(&value.to_le_bytes()[..1 << (op & 3)]);
    }
    v.extend_from_slice(args);
    v
}

/// Seeds for the corpus: one input per interesting shape (`fuzz/corpus/registry_attach`).
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    let mut add = |name: &str, bytes: Vec<u8>| seeds.push((name.to_owned(), bytes));
    let args = [
        3u8, 5, 1, 0x34, 0x12, 2, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1,
    ];
    // Structured, valid, each size mode, with and without operations.
    for (d, c) in [(0u8, 0u8), (1, 3), (3, 15)] {
        for size_mode in 0u8..4 {
            add(
                &format!("valid-d{d}-c{c}-size{size_mode}"),
                structured(d, c, [size_mode, 3], &[], &args),
            );
        }
    }
    let mut no_ops = structured(1, 3, [0, 0], &[], &[]);
    no_ops[0] = 2;
    add("valid-no-ops", no_ops);
    // One corrupted header field each (a 4-byte store into the header).
    let h = |field: usize, value: u64| structured(1, 3, [0, 0], &[(0, 0, field, 2, value)], &args);
    add("bad-magic", h(offset_of!(Header, magic), 0x4141_4141));
    add("bad-version", h(offset_of!(Header, version), 2));
    add("bad-header-size", h(offset_of!(Header, header_size), 7));
    add("state-creating", h(offset_of!(Header, state), 0));
    add("state-garbage", h(offset_of!(Header, state), 9));
    add("devices-zero", h(offset_of!(Header, devices), 0));
    add("devices-huge", h(offset_of!(Header, devices), 1000));
    add("capacity-huge", h(offset_of!(Header, capacity), 0x1_0000));
    add("max-procs", h(offset_of!(Header, max_procs), 1));
    add("proc-size", h(offset_of!(Header, proc_size), 8));
    add("notify-size", h(offset_of!(Header, notify_size), 8));
    add("total-size", h(offset_of!(Header, total_size), 1));
    add("ns-hash", h(offset_of!(Header, ns_hash), 1));
    add("procs-offset", h(offset_of!(Header, procs_offset), 64));
    add(
        "notifies-offset",
        h(offset_of!(Header, notifies_offset), 64),
    );
    add("free-hint", h(offset_of!(Header, free_hint), 0xffff_fff0));
    add("high-water", h(offset_of!(Header, high_water), 0xffff_ffff));
    // Slot contents: a live slot held by a dead process, exported, with a huge whitelist.
    let state = offset_of!(NotifySlot, state);
    let holders = offset_of!(NotifySlot, holders);
    let export = offset_of!(NotifySlot, export);
    let wl_len = offset_of!(NotifySlot, whitelist_len);
    let live: [Patch; 3] = [
        (2, 0, state, 2, 1),
        (2, 0, holders, 3, 1 << 63),
        (1, 0, 0, 2, 1),
    ];
    add(
        "live-slot-dead-holder",
        structured(0, 3, [0, 0], &live, &args),
    );
    let mut exported = live.to_vec();
    exported.push((2, 0, export, 2, 1));
    exported.push((2, 0, wl_len, 2, 0xffff_ffff));
    add(
        "exported-huge-whitelist",
        structured(0, 3, [0, 0], &exported, &args),
    );
    add(
        "whitelist-len",
        structured(0, 3, [0, 0], &[(2, 0, wl_len, 2, 65)], &args),
    );
    add(
        "creator-proc",
        structured(
            0,
            3,
            [0, 0],
            &[(2, 1, offset_of!(NotifySlot, creator_proc), 2, 127)],
            &args,
        ),
    );
    // Raw: nothing, a byte, a header's worth of zeros, a page of 0xff, a copy of a valid header.
    add("raw-empty", vec![1]);
    add("raw-one", vec![1, 0, 0, 0x41]);
    add("raw-zero-page", vec![1, 64, 0]);
    add("raw-ff", [vec![1, 0, 0], vec![0xff; 700]].concat());
    let layout = Layout::new(1, 1);
    let mut header = vec![0u8; size_of::<Header>()];
    write_header(&mut header, &layout, 0);
    let pages = (layout.total_size / 64) as u16;
    add(
        "raw-valid-header",
        [vec![1], pages.to_le_bytes().to_vec(), header.clone()].concat(),
    );
    add("raw-valid-header-short", [vec![1, 0, 0], header].concat());
    seeds
}

/// `fuzz/corpus/<target>/` of this workspace.
pub fn corpus_dir(target: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

/// Every file of a fuzz target's checked-in corpus (`fuzz/corpus/<target>/` of this workspace),
/// sorted by name, for the replay tests; panics if the directory is missing or empty, so a
/// replay can never pass by reading nothing.
pub fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the corpus directory {} is missing: {e}", dir.display()));
    let mut files: Vec<(String, Vec<u8>)> = entries
        .map(|e| e.expect("reading the corpus directory").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).expect("reading a corpus file");
            (
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                bytes,
            )
        })
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "the corpus directory {} is empty",
        dir.display()
    );
    files
}

/// The message of a caught panic, for replay reports.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a non-string panic".into())
}
