//! Fuzz target bodies: the code behind `fuzz/fuzz_targets/{key_parse,c_abi_sequence}.rs`, kept
//! here so that the checked-in corpus replays as an ordinary `cargo test`
//! (`tests/fuzz_corpus_replay.rs`). Not a stable API. See docs/FUZZING.md.
//!
//! Both bodies drive the exported C functions exactly as a C caller would, through the
//! `extern "C"` symbols of [`crate::exports`], and check the contract of SEMANTICS.md after
//! every call: the code is one of §2, a failure leaves a non-NULL `aclGetRecentErrMsg` that
//! starts with the rule (`"R7: ..."`), a success leaves it unchanged, and, where the harness's
//! model of the process knows the answer, the exact code (R1–R15 in R15 order).
//!
//! `aclInit` state is process-wide. [`key_parse`] initializes the runtime once per process and
//! keeps it; [`c_abi_sequence`] initializes and finalizes it around every input. Do not mix the
//! two in one process. Both attach to the namespace that `ASCEND_NOTIFY_SIM_NAMESPACE` names,
//! and refuse to run without one (they would otherwise use the per-user default namespace):
//! a fuzz target calls [`use_private_namespace`] first; the replay test starts a child process
//! with a `ScopedNamespace`'s environment.

#![allow(clippy::too_many_lines)]

use std::collections::{BTreeSet, HashSet};
use std::ffi::{CStr, c_char, c_void};
use std::sync::OnceLock;

use backend_sim::{ENV_CAPACITY, ENV_DEVICES, ENV_NAMESPACE, SimBackend, SimNotify};
use notify_api::{
    AclError, Backend, DeviceId, EXPORT_KEY_LEN, ExportFlags, ExportKey, ImportFlags, Notify,
    NotifyFlags, Pid,
};

use crate::exports::*;

// ---------------------------------------------------------------------------------------------
// Setup
// ---------------------------------------------------------------------------------------------

/// Devices of the namespace [`use_private_namespace`] configures.
pub const FUZZ_DEVICES: u32 = 4;
/// Notifies per device of that namespace: small, so that inputs reach R11 (207009).
pub const FUZZ_CAPACITY: u32 = 8;

/// Points `ASCEND_NOTIFY_SIM_*` at a namespace of this process's own
/// (`fz-<label>-<pid>`, [`FUZZ_DEVICES`] × [`FUZZ_CAPACITY`]).
///
/// # Safety
/// Changes the environment: no other thread may read or write it concurrently (call it first
/// thing in a fuzz target's `init`, before any thread exists).
pub unsafe fn use_private_namespace(label: &str) {
    let ns = format!("fz-{label}-{}", std::process::id());
    // SAFETY: the caller guarantees no concurrent access to the environment.
    unsafe {
        std::env::set_var(ENV_NAMESPACE, &ns);
        std::env::set_var(ENV_DEVICES, FUZZ_DEVICES.to_string());
        std::env::set_var(ENV_CAPACITY, FUZZ_CAPACITY.to_string());
    }
    let _ = backend_sim::remove_namespace(&ns);
}

fn namespace() -> String {
    std::env::var(ENV_NAMESPACE).unwrap_or_else(|_| {
        panic!(
            "harness: {ENV_NAMESPACE} is not set; call ascendcl::fuzzing::use_private_namespace \
             first (the fuzz bodies never run in the default namespace)"
        )
    })
}

// ---------------------------------------------------------------------------------------------
// Input cursor and the C calls
// ---------------------------------------------------------------------------------------------

/// A cursor over the fuzz input; reads past the end give zeros.
#[derive(Debug)]
struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Bytes<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos = self.pos.saturating_add(1);
        b
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.u8()).collect()
    }
}

/// A handle with an arbitrary value (the shim never dereferences it, R10).
fn h(raw: u64) -> *mut c_void {
    std::ptr::without_provenance_mut(raw as usize)
}

fn raw(handle: *mut c_void) -> u64 {
    handle.addr() as u64
}

/// Safe wrappers: `None` passes NULL, slices pass their own length, so every call keeps the C
/// contract (the caller's side of it) by construction.
mod c {
    use super::*;

    fn out<T>(o: Option<&mut T>) -> *mut T {
        o.map_or(std::ptr::null_mut(), |r| r as *mut T)
    }

    pub(super) fn create_notify(n: Option<&mut aclrtNotify>, flag: u64) -> i32 {
        // SAFETY: NULL or a live `&mut aclrtNotify`.
        unsafe { aclrtCreateNotify(out(n), flag) }
    }

    pub(super) fn create_stream(s: Option<&mut aclrtStream>) -> i32 {
        // SAFETY: NULL or a live `&mut aclrtStream`.
        unsafe { aclrtCreateStream(out(s)) }
    }

    pub(super) fn get_device(d: Option<&mut i32>) -> i32 {
        // SAFETY: NULL or a live `&mut i32`.
        unsafe { aclrtGetDevice(out(d)) }
    }

    pub(super) fn device_count(n: Option<&mut u32>) -> i32 {
        // SAFETY: NULL or a live `&mut u32`.
        unsafe { aclrtGetDeviceCount(out(n)) }
    }

    pub(super) fn bare_tgid(p: Option<&mut i32>) -> i32 {
        // SAFETY: NULL or a live `&mut i32`.
        unsafe { aclrtDeviceGetBareTgid(out(p)) }
    }

    pub(super) fn can_access_peer(c: Option<&mut i32>, dev: i32, peer: i32) -> i32 {
        // SAFETY: NULL or a live `&mut i32`.
        unsafe { aclrtDeviceCanAccessPeer(out(c), dev, peer) }
    }

    pub(super) fn notify_id(n: aclrtNotify, id: Option<&mut u32>) -> i32 {
        // SAFETY: NULL or a live `&mut u32`; the handle is never dereferenced.
        unsafe { aclrtGetNotifyId(n, out(id)) }
    }

    /// Exports into `buf` (its length is `len`), or into NULL with length `null_len`.
    pub(super) fn export(
        n: aclrtNotify,
        buf: Option<&mut [u8]>,
        null_len: usize,
        flags: u64,
    ) -> i32 {
        let (ptr, len) = match buf {
            Some(b) => (b.as_mut_ptr().cast::<c_char>(), b.len()),
            None => (std::ptr::null_mut(), null_len),
        };
        // SAFETY: NULL or `len` writable bytes.
        unsafe { aclrtNotifyGetExportKey(n, ptr, len, flags) }
    }

    /// Imports from `key`, which holds a NUL (the harness always appends one).
    pub(super) fn import(n: Option<&mut aclrtNotify>, key: Option<&[u8]>, flags: u64) -> i32 {
        let key = key.map_or(std::ptr::null(), |k| {
            assert!(k.contains(&0), "harness bug: unterminated key");
            k.as_ptr().cast::<c_char>()
        });
        // SAFETY: NULL or a live `&mut aclrtNotify`; NULL or a NUL-terminated buffer.
        unsafe { aclrtNotifyImportByKey(out(n), key, flags) }
    }

    /// `pids` NULL with count `null_num`, or a real array with its own length.
    pub(super) fn set_pids(n: aclrtNotify, pids: Option<&[i32]>, null_num: usize) -> i32 {
        let (ptr, len) = pids.map_or((std::ptr::null(), null_num), |p| (p.as_ptr(), p.len()));
        // SAFETY: NULL or `len` readable pids (the shim never writes through it).
        unsafe { aclrtNotifySetImportPid(n, ptr.cast_mut(), len) }
    }

    /// `hs` NULL with count `null_num`, or a real array with its own length.
    pub(super) fn batch_reset(hs: Option<&[aclrtNotify]>, null_num: usize) -> i32 {
        let (ptr, len) = hs.map_or((std::ptr::null(), null_num), |h| (h.as_ptr(), h.len()));
        // SAFETY: NULL or `len` readable handles (the shim never writes through it).
        unsafe { aclrtNotifyBatchReset(ptr.cast_mut(), len) }
    }

    /// `aclGetRecentErrMsg` as (pointer, text).
    pub(super) fn err_msg() -> (usize, Option<String>) {
        let p = aclGetRecentErrMsg();
        if p.is_null() {
            return (0, None);
        }
        // SAFETY: the shim returns a NUL-terminated string that stays valid until the next
        // failure in this thread; we copy it at once.
        let text = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
        (p.addr(), Some(text))
    }
}

/// Whether `text` starts with a rule: `R<digits>:`.
fn cites_rule(text: &str) -> bool {
    let Some(rest) = text.strip_prefix('R') else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && rest[digits..].starts_with(':')
}

/// `ASCEND_NOTIFY_FUZZ_TRACE=1`: print every call and its code on stderr (to read an input).
pub const ENV_TRACE: &str = "ASCEND_NOTIFY_FUZZ_TRACE";

fn trace() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os(ENV_TRACE).is_some_and(|v| v == "1"))
}

fn note(what: std::fmt::Arguments<'_>) {
    if trace() {
        eprintln!("  {what}");
    }
}

/// Runs one C call and checks what every call must satisfy; `want` is the exact code when the
/// model knows it.
fn check(what: &str, want: Option<i32>, call: impl FnOnce() -> i32) -> i32 {
    let before = c::err_msg();
    let rc = call();
    let after = c::err_msg();
    if trace() {
        eprintln!("  {what} -> {rc}");
    }
    assert!(
        AclError::ALL.contains(&AclError::from_raw(rc)),
        "{what}: returned {rc}, which is not a code of SEMANTICS.md §2"
    );
    if rc == 0 {
        assert_eq!(
            after, before,
            "{what}: a success changed aclGetRecentErrMsg (SEMANTICS.md §2)"
        );
    } else {
        let text = after.1.as_deref().unwrap_or_else(|| {
            panic!("{what}: failed with {rc} but aclGetRecentErrMsg is NULL (SEMANTICS.md §2)")
        });
        assert!(
            cites_rule(text),
            "{what}: failed with {rc}; its message does not start with a rule: {text:?}"
        );
        assert_eq!(
            c::err_msg(),
            after,
            "{what}: reading the message changed it"
        );
    }
    if let Some(want) = want {
        assert_eq!(
            rc, want,
            "{what}: returned {rc}, the contract says {want} [message: {:?}]",
            after.1
        );
    }
    rc
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

/// The C string a key buffer holds as the shim reads it: the bytes before the first NUL within
/// 65 bytes, or `None` if there is no NUL there.
fn c_key_text(buf: &[u8]) -> Option<&[u8]> {
    let window = &buf[..buf.len().min(EXPORT_KEY_LEN)];
    window
        .iter()
        .position(|&b| b == 0)
        .map(|nul| &window[..nul])
}

/// R7, independently of `ExportKey`: 1..=64 printable ASCII characters.
fn valid_key_text(text: &[u8]) -> bool {
    (1..=64).contains(&text.len()) && text.iter().all(|b| (0x20..=0x7e).contains(b))
}

/// The simulator's key format, independently of `SimKey::decode`:
/// `ans1-<16 hex>-<6 hex>-<8 hex>-<16 hex>`, lowercase hex.
fn sim_key_format(text: &[u8]) -> bool {
    let Some(rest) = text.strip_prefix(b"ans1-") else {
        return false;
    };
    let parts: Vec<&[u8]> = rest.split(|&b| b == b'-').collect();
    parts.len() == 4
        && parts.iter().zip([16, 6, 8, 16]).all(|(p, n)| {
            p.len() == n
                && p.iter()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        })
}

/// The key-parsing oracle shared by both targets: the code an import of `buf` gets before key
/// resolution (`Some(107000)` for a malformed key), or `None` when the key is well formed and
/// resolution decides.
fn key_format_code(buf: &[u8]) -> Option<i32> {
    match c_key_text(buf) {
        Some(text) if valid_key_text(text) && sim_key_format(text) => None,
        _ => Some(107_000),
    }
}

struct KeySession {
    /// The key of a notify this process created and holds (importing it again is 507000).
    own_key: Vec<u8>,
}

static KEY_SESSION: OnceLock<KeySession> = OnceLock::new();

fn key_session() -> &'static KeySession {
    KEY_SESSION.get_or_init(|| {
        namespace();
        check("aclInit", Some(0), || aclInit(std::ptr::null()));
        check("aclrtSetDevice(0)", Some(0), || aclrtSetDevice(0));
        let mut n = std::ptr::null_mut();
        check("create", Some(0), || c::create_notify(Some(&mut n), 0));
        let mut key = [0u8; EXPORT_KEY_LEN];
        check("export", Some(0), || c::export(n, Some(&mut key), 0, 0));
        // The runtime stays initialized for the rest of the process; the namespace goes with
        // the process (clean detach at exit, SEMANTICS.md §4).
        KeySession {
            own_key: key.to_vec(),
        }
    })
}

/// The `key_parse` fuzz target: `ExportKey::from_c_buf`, `FromStr` and the C import's key
/// decoding must never panic, agree with an independent reading of R7 and the simulator's key
/// format, and valid keys must round-trip.
///
/// The input is used three ways: as a C key buffer for `ExportKey::from_c_buf`, as text for
/// `FromStr` (when it is UTF-8), and as a key for `aclrtNotifyImportByKey`, both on its own and
/// as `(position, byte)` edits of a real key this process exported.
pub fn key_parse(data: &[u8]) {
    // --- notify-api: from_c_buf against the oracle, and round trips ------------------------
    let parsed = ExportKey::from_c_buf(data);
    let expect_ok = c_key_text(data).is_some_and(valid_key_text);
    assert_eq!(
        parsed.is_ok(),
        expect_ok,
        "ExportKey::from_c_buf({data:?}) = {parsed:?}, R7 says {}",
        if expect_ok { "valid" } else { "invalid" }
    );
    match &parsed {
        Ok(key) => round_trip(key, c_key_text(data).expect("valid keys have a NUL")),
        Err(e) => {
            assert_eq!(e.code(), AclError::RT_PARAM_INVALID, "{e}");
            assert!(cites_rule(e.reason()), "{e}");
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let parsed: Result<ExportKey, _> = text.parse();
        assert_eq!(
            parsed.is_ok(),
            valid_key_text(text.as_bytes()),
            "{text:?}.parse::<ExportKey>() = {parsed:?}"
        );
        if let Ok(key) = parsed {
            round_trip(&key, text.as_bytes());
        }
    }

    // --- the simulator: the input as a key, and edits of a real key ------------------------
    let session = key_session();
    check("aclrtSetDevice(0)", Some(0), || aclrtSetDevice(0));
    let mut as_key = data.to_vec();
    as_key.push(0);
    import_key_check(&as_key, session);
    let mut edited = session.own_key.clone();
    edited.push(0);
    for pair in data.chunks_exact(2).take(8) {
        let pos = usize::from(pair[0]) % EXPORT_KEY_LEN;
        edited[pos] = pair[1];
    }
    import_key_check(&edited, session);
    // Flags first (R15): a bad flag wins over any key.
    let bad_flag = 1u64 << (data.first().copied().unwrap_or(0) % 64);
    if bad_flag != 0x2 {
        let mut out = std::ptr::null_mut();
        check("import(bad flag)", Some(107_000), || {
            c::import(Some(&mut out), Some(&as_key), bad_flag)
        });
    }
}

fn round_trip(key: &ExportKey, text: &[u8]) {
    assert_eq!(
        key.as_str().as_bytes(),
        text,
        "the key is the text before the NUL"
    );
    let buf = key.to_c_buf();
    assert_eq!(
        ExportKey::from_c_buf(&buf).as_ref(),
        Ok(key),
        "C buffer round trip"
    );
    assert_eq!(
        key.to_string().parse::<ExportKey>().as_ref(),
        Ok(key),
        "Display/FromStr round trip"
    );
    let mut big = [0xa5u8; EXPORT_KEY_LEN + 7];
    key.write_c_buf(&mut big)
        .expect("a 72-byte buffer is enough");
    assert_eq!(
        ExportKey::from_c_buf(&big).as_ref(),
        Ok(key),
        "write_c_buf round trip"
    );
    let mut short = [0x5au8; EXPORT_KEY_LEN - 1];
    let e = key
        .write_c_buf(&mut short)
        .expect_err("R5: 64 bytes are too few");
    assert_eq!(e.code(), AclError::RT_PARAM_INVALID);
    assert!(short.iter().all(|&b| b == 0x5a), "nothing written on error");
}

fn import_key_check(key: &[u8], session: &KeySession) {
    let want = key_format_code(key).unwrap_or_else(|| {
        if c_key_text(key) == c_key_text(&session.own_key) {
            507_000 // R7: this process already holds it
        } else {
            507_899 // R7: well formed, but unknown, of another namespace, or the wrong secret
        }
    });
    for flags in [0, 2] {
        let mut out = std::ptr::null_mut();
        check(&format!("import({key:?}, {flags})"), Some(want), || {
            c::import(Some(&mut out), Some(key), flags)
        });
    }
}

/// Seeds for `fuzz/corpus/key_parse`.
pub fn key_parse_seeds() -> Vec<(String, Vec<u8>)> {
    let mut s: Vec<(String, Vec<u8>)> = Vec::new();
    let mut add = |name: &str, bytes: &[u8]| s.push((name.to_owned(), bytes.to_vec()));
    add("empty", b"");
    add("nul", b"\0");
    add("one", b"a\0");
    add("no-nul", b"abc");
    add("max", &[b"k".repeat(64), vec![0]].concat());
    add("too-long", &[b"k".repeat(65), vec![0]].concat());
    add("nul-at-65", &[b"k".repeat(65), vec![0]].concat()[..66]);
    add("late-nul", &[b"k".repeat(70), vec![0]].concat());
    add("tab", b"tab\there\0");
    add("del", b"del\x7f\0");
    add("utf8", "caf\u{e9}\0".as_bytes());
    add("high", b"\xff\xfe\0");
    add("printable", b" ~!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}\0");
    add("prefix-only", b"ans1-\0");
    let good = b"ans1-0123456789abcdef-00000a-00000001-fedcba9876543210";
    add("sim-format", &[&good[..], b"\0"].concat());
    add("sim-format-no-nul", good);
    add(
        "sim-format-upper",
        b"ans1-0123456789ABCDEF-00000a-00000001-fedcba9876543210\0",
    );
    add(
        "sim-format-short-part",
        b"ans1-0123456789abcdef-0000a-00000001-fedcba9876543210\0",
    );
    add(
        "sim-format-extra-part",
        b"ans1-0123456789abcdef-00000a-00000001-fedcba98-76543210\0",
    );
    add(
        "sim-format-device-ff",
        b"ans1-0123456789abcdef-ff0000-00000001-fedcba9876543210\0",
    );
    add(
        "sim-format-plus",
        b"ans1-+123456789abcdef-00000a-00000001-fedcba9876543210\0",
    );
    add(
        "ans2",
        b"ans2-0123456789abcdef-00000a-00000001-fedcba9876543210\0",
    );
    // (position, byte) edits of the real key: flip a secret digit, a namespace digit, the
    // generation, cut it short, break the prefix.
    add("edit-secret", &[53, b'0', 52, b'1']);
    add("edit-ns", &[5, b'f']);
    add("edit-generation", &[36, b'9']);
    add("edit-cut", &[30, 0]);
    add("edit-prefix", &[0, b'A']);
    add("edit-dash", &[21, b'x']);
    add("edit-extend", &[54, b'a', 55, 0]);
    s
}

// ---------------------------------------------------------------------------------------------
// c_abi_sequence
// ---------------------------------------------------------------------------------------------

/// The most operations one input runs.
const MAX_OPS: usize = 160;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Export {
    None,
    Live {
        disable: bool,
        whitelist: BTreeSet<i32>,
    },
    Revoked,
}

/// One notify (a registry slot at one generation) as the model sees it.
#[derive(Debug)]
struct Ident {
    device: i32,
    /// Created by the C side (else by the peer).
    c_created: bool,
    /// The C side holds a live handle to it.
    c_live: bool,
    /// The peer holds a handle to it (its creator's or an import).
    peer_holds: bool,
    export: Export,
    /// R1: the flag, exact because no stream ever has a task left queued between operations.
    flag: bool,
    id: Option<u32>,
}

impl Ident {
    /// R8: the slot lives while anyone holds a reference.
    fn alive(&self) -> bool {
        self.c_live || self.peer_holds
    }
}

/// A notify token the C side was given.
#[derive(Debug)]
struct NotifyTok {
    token: u64,
    live: bool,
    creator: bool,
    ident: usize,
}

#[derive(Debug)]
struct StreamTok {
    token: u64,
    live: bool,
    device: i32,
}

/// What a handle argument turned out to be.
#[derive(Copy, Clone, Debug)]
enum Arg {
    Null,
    /// A live notify token: index into `Model::notifies`.
    Notify(usize),
    /// A live stream token: index into `Model::streams`.
    Stream(usize),
    /// Anything else: destroyed, of an earlier session, corrupted, garbage, the wrong kind.
    Invalid,
}

struct PeerHeld {
    notify: SimNotify,
    ident: usize,
}

struct Model {
    ns: String,
    pid: i32,
    devices: i32,
    capacity: usize,
    initialized: bool,
    current: Option<i32>,
    /// (current device, peer device) pairs the C side enabled (R7), per session.
    peers: HashSet<(i32, i32)>,
    idents: Vec<Ident>,
    notifies: Vec<NotifyTok>,
    streams: Vec<StreamTok>,
    /// Every token ever handed out in this input: a new one must never repeat one (R10).
    seen: HashSet<u64>,
    /// Keys exported so far (text, ident).
    keys: Vec<(Vec<u8>, usize)>,
    peer: SimBackend,
    peer_held: Vec<PeerHeld>,
}

impl Model {
    fn live_on(&self, device: i32) -> usize {
        self.idents
            .iter()
            .filter(|i| i.alive() && i.device == device)
            .count()
    }

    fn classify(&self, handle: *mut c_void) -> Arg {
        if handle.is_null() {
            return Arg::Null;
        }
        let token = raw(handle);
        if let Some(i) = self
            .notifies
            .iter()
            .position(|n| n.live && n.token == token)
        {
            return Arg::Notify(i);
        }
        if let Some(i) = self.streams.iter().position(|s| s.live && s.token == token) {
            return Arg::Stream(i);
        }
        Arg::Invalid
    }

    fn new_token(&mut self, what: &str, handle: *mut c_void) -> u64 {
        let token = raw(handle);
        assert!(!handle.is_null(), "{what}: success returned a NULL handle");
        assert!(
            self.seen.insert(token),
            "{what}: handed out token {token:#x} twice (R10: a destroyed token stays dead)"
        );
        token
    }

    /// Picks a notify handle argument: `[kind, index]`, plus 8 bytes for garbage.
    fn pick_notify(&self, input: &mut Bytes<'_>) -> *mut c_void {
        let kind = input.u8();
        let index = usize::from(input.u8());
        match kind % 16 {
            0 => std::ptr::null_mut(),
            1 => h(input.u64()),
            2 => match self.notifies.len() {
                0 => h(0xdead_beef),
                n => h(self.notifies[index % n].token ^ (1 << (input.u8() % 64))),
            },
            3 => match self.streams.len() {
                0 => h(0x1),
                n => h(self.streams[index % n].token),
            },
            _ => match self.notifies.len() {
                0 => std::ptr::null_mut(),
                n => {
                    // Prefer live handles 3 times out of 4.
                    let live: Vec<_> = self.notifies.iter().filter(|t| t.live).collect();
                    if kind & 0x30 != 0 && !live.is_empty() {
                        h(live[index % live.len()].token)
                    } else {
                        h(self.notifies[index % n].token)
                    }
                }
            },
        }
    }

    /// Picks a stream argument: NULL (the default stream) half the time.
    fn pick_stream(&self, input: &mut Bytes<'_>) -> *mut c_void {
        let kind = input.u8();
        let index = usize::from(input.u8());
        match kind % 8 {
            0..=3 => std::ptr::null_mut(),
            4 => h(input.u64()),
            5 => match self.streams.len() {
                0 => h(0x2),
                n => h(self.streams[index % n].token ^ (1 << (input.u8() % 64))),
            },
            6 => match self.notifies.len() {
                0 => std::ptr::null_mut(),
                n => h(self.notifies[index % n].token),
            },
            _ => match self.streams.len() {
                0 => std::ptr::null_mut(),
                n => h(self.streams[index % n].token),
            },
        }
    }

    /// The stream a (classified) stream argument resolves to: its device, or the error code.
    fn stream_device(&self, arg: Arg) -> Result<i32, i32> {
        match arg {
            Arg::Null => self.current.ok_or(107_002),
            Arg::Stream(i) => Ok(self.streams[i].device),
            _ => Err(107_017),
        }
    }

    /// R15 for record and wait, up to the enqueue: `Ok((notify index, current device))`.
    fn enqueue_code(&self, n: Arg, s: Arg) -> Result<(usize, i32), i32> {
        if !self.initialized {
            return Err(100_001);
        }
        if matches!(n, Arg::Null) {
            return Err(100_000);
        }
        let current = self.current.ok_or(107_002)?;
        let Arg::Notify(ni) = n else {
            return Err(107_017);
        };
        let device = self.stream_device(s)?;
        if device != current {
            return Err(107_003);
        }
        Ok((ni, current))
    }

    /// R7: the code an import of the C string `text` gets once its format is known good, for the
    /// C side (`by_peer == false`) or the peer.
    fn resolve_import(&self, text: &[u8], enable_peer: bool, by_peer: bool) -> Result<usize, i32> {
        let Some(&(_, ident)) = self.keys.iter().find(|(k, _)| k.as_slice() == text) else {
            return Err(507_899);
        };
        let i = &self.idents[ident];
        if !i.alive() {
            return Err(507_899);
        }
        let Export::Live { disable, whitelist } = &i.export else {
            return Err(507_899);
        };
        let held = if by_peer { i.peer_holds } else { i.c_live };
        if held {
            return Err(507_000);
        }
        if !disable && !whitelist.contains(&self.pid) {
            return Err(507_899);
        }
        if !by_peer {
            let current = self.current.expect("checked before");
            if !enable_peer && i.device != current && !self.peers.contains(&(current, i.device)) {
                return Err(507_899);
            }
        }
        Ok(ident)
    }
}

fn pick_device(b: u8) -> i32 {
    if b & 0x80 == 0 {
        i32::from(b % 8)
    } else {
        [-1, i32::MIN, i32::MAX, 64, 65_535, -2][usize::from(b) % 6]
    }
}

/// The `c_abi_sequence` fuzz target: a sequence of C calls decoded from the input, with handles
/// that are real, destroyed, corrupted, of the wrong kind, from an earlier session, or NULL, and
/// arbitrary lengths, flags, pid lists and keys. A second runtime in the same namespace (the
/// *peer*, through the Rust API) creates, exports, imports and records notifies, so the C side
/// can import successfully and meet the rules of R5–R8 from both sides.
///
/// Each input starts with `aclInit` and ends with `aclFinalize` (the namespace must be gone
/// afterwards, §4). No call ever blocks for long: a wait is enqueued only when the model knows
/// its flag is set or it must be refused, or as the *blocked wait* step (wait, synchronize with
/// a 0 ms timeout → 507046, record from another stream, synchronize → 0).
pub fn c_abi_sequence(data: &[u8]) {
    let ns = namespace();
    check("aclInit", Some(0), || aclInit(std::ptr::null()));
    let peer = SimBackend::builder()
        .namespace(&ns)
        .build()
        .expect("harness: the peer attaches");
    let mut count = 0u32;
    check("device count", Some(0), || {
        c::device_count(Some(&mut count))
    });
    let mut m = Model {
        ns,
        pid: std::process::id() as i32,
        devices: count as i32,
        capacity: peer.capacity() as usize,
        initialized: true,
        current: None,
        peers: HashSet::new(),
        idents: Vec::new(),
        notifies: Vec::new(),
        streams: Vec::new(),
        seen: HashSet::new(),
        keys: Vec::new(),
        peer,
        peer_held: Vec::new(),
    };
    let mut input = Bytes::new(data);
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        step(&mut m, &mut input);
    }
    if m.initialized {
        check("aclFinalize at the end", Some(0), || aclFinalize());
    }
    let ns = m.ns.clone();
    drop(m);
    assert!(
        !backend_sim::namespace_exists(&ns),
        "SEMANTICS.md §4: the last process out (aclFinalize, then the peer's drop) removes the \
         namespace {ns}"
    );
}

/// Ops, by the first byte of each step (modulo the count).
const OPS: u8 = 27;

fn step(m: &mut Model, input: &mut Bytes<'_>) {
    let op = input.u8() % OPS;
    let init = m.initialized;
    // The code for calls whose first checks are "initialized, then NULL".
    let gate = |null: bool| -> Option<i32> {
        if !init {
            Some(100_001)
        } else if null {
            Some(100_000)
        } else {
            None
        }
    };
    match op {
        // aclInit
        0 => {
            let want = if init { 100_002 } else { 0 };
            check("aclInit", Some(want), || aclInit(std::ptr::null()));
            if !init {
                m.initialized = true;
                m.current = None;
                m.peers.clear();
            }
        }
        // aclFinalize
        1 => {
            let want = if init { 0 } else { 100_001 };
            check("aclFinalize", Some(want), || aclFinalize());
            if init {
                finalize_model(m);
            }
        }
        // aclrtSetDevice / aclrtResetDevice
        2 | 3 => {
            let d = pick_device(input.u8());
            let valid = (0..m.devices).contains(&d);
            let want = gate(false).unwrap_or(if valid { 0 } else { 107_001 });
            if op == 2 {
                check(&format!("set device {d}"), Some(want), || aclrtSetDevice(d));
                if want == 0 {
                    m.current = Some(d);
                }
            } else {
                check(&format!("reset device {d}"), Some(want), || {
                    aclrtResetDevice(d)
                });
                if want == 0 && m.current == Some(d) {
                    m.current = None;
                }
            }
        }
        // aclrtGetDevice
        4 => {
            let null = input.u8().is_multiple_of(8);
            let want = gate(null).unwrap_or(if m.current.is_some() { 0 } else { 107_002 });
            let mut d = -7;
            check("get device", Some(want), || {
                c::get_device((!null).then_some(&mut d))
            });
            if want == 0 {
                assert_eq!(Some(d), m.current, "R13: aclrtGetDevice");
            }
        }
        // aclrtGetDeviceCount / aclrtDeviceGetBareTgid
        5 | 21 => {
            let null = input.u8().is_multiple_of(8);
            let want = gate(null).unwrap_or(0);
            if op == 5 {
                let mut n = 0;
                check("device count", Some(want), || {
                    c::device_count((!null).then_some(&mut n))
                });
                if want == 0 {
                    assert_eq!(n as i32, m.devices);
                }
            } else {
                let mut p = 0;
                check("bare tgid", Some(want), || {
                    c::bare_tgid((!null).then_some(&mut p))
                });
                if want == 0 {
                    assert_eq!(p, m.pid, "R6: the sim's bare tgid is the pid");
                }
            }
        }
        // aclrtCreateNotify
        6 => {
            let null = input.u8().is_multiple_of(8);
            let flag = match input.u8() % 6 {
                0 | 1 => 0,
                2 | 3 => 1,
                4 => 2,
                _ => input.u64(),
            };
            let want = gate(null).unwrap_or_else(|| match m.current {
                None => 107_002,
                Some(_) if flag > 1 => 107_000,
                Some(d) if m.live_on(d) >= m.capacity => 207_009,
                Some(_) => 0,
            });
            let mut n = std::ptr::null_mut();
            check(
                &format!("create notify(flag {flag:#x})"),
                Some(want),
                || c::create_notify((!null).then_some(&mut n), flag),
            );
            if want == 0 {
                let token = m.new_token("create notify", n);
                m.idents.push(Ident {
                    device: m.current.expect("created on the current device"),
                    c_created: true,
                    c_live: true,
                    peer_holds: false,
                    export: Export::None,
                    flag: false,
                    id: None,
                });
                m.notifies.push(NotifyTok {
                    token,
                    live: true,
                    creator: true,
                    ident: m.idents.len() - 1,
                });
            }
        }
        // aclrtDestroyNotify
        7 => {
            let n = m.pick_notify(input);
            let arg = m.classify(n);
            let want = gate(matches!(arg, Arg::Null)).unwrap_or(match arg {
                Arg::Notify(_) => 0,
                _ => 107_017,
            });
            check("destroy notify", Some(want), || aclrtDestroyNotify(n));
            if let (0, Arg::Notify(i)) = (want, arg) {
                destroy_c_handle(m, i);
            }
        }
        // aclrtRecordNotify
        8 => {
            let n = m.pick_notify(input);
            let s = m.pick_stream(input);
            let (na, sa) = (m.classify(n), m.classify(s));
            let want = m.enqueue_code(na, sa);
            check("record", Some(want.err().unwrap_or(0)), || {
                aclrtRecordNotify(n, s)
            });
            if let Ok((ni, _)) = want {
                let ident = m.notifies[ni].ident;
                m.idents[ident].flag = true;
            }
        }
        // aclrtWaitAndResetNotify
        9 => {
            let n = m.pick_notify(input);
            let s = m.pick_stream(input);
            let mode = input.u8();
            let timeout = match mode % 4 {
                0 => 1,
                1 => 0,
                2 => u32::MAX,
                _ => input.u32(),
            };
            let (na, sa) = (m.classify(n), m.classify(s));
            let want = m.enqueue_code(na, sa).and_then(|(ni, current)| {
                let t = &m.notifies[ni];
                if !t.creator || m.idents[t.ident].device != current {
                    Err(107_000) // R4
                } else {
                    Ok(t.ident)
                }
            });
            match want {
                Err(code) => {
                    check("wait (refused)", Some(code), || {
                        aclrtWaitAndResetNotify(n, s, timeout)
                    });
                }
                Ok(ident) if m.idents[ident].flag => {
                    // The flag is set: the wait completes at once, whatever the timeout.
                    check(&format!("wait(timeout {timeout})"), Some(0), || {
                        aclrtWaitAndResetNotify(n, s, timeout)
                    });
                    m.idents[ident].flag = false;
                    check("synchronize after wait", Some(0), || {
                        aclrtSynchronizeStream(s)
                    });
                }
                Ok(ident) if mode & 0x80 != 0 => blocked_wait(m, n, s, ident),
                Ok(_) => {} // it would block: skipped
            }
        }
        // aclrtGetNotifyId
        10 => {
            let n = m.pick_notify(input);
            let null = input.u8().is_multiple_of(8);
            let arg = m.classify(n);
            let want = gate(matches!(arg, Arg::Null) || null).unwrap_or(match arg {
                Arg::Notify(_) => 0,
                _ => 107_017,
            });
            let mut id = u32::MAX;
            check("notify id", Some(want), || {
                c::notify_id(n, (!null).then_some(&mut id))
            });
            if let (0, Arg::Notify(i)) = (want, arg) {
                let ident = m.notifies[i].ident;
                note_id(m, ident, id);
            }
        }
        // aclrtNotifyBatchReset
        11 => {
            let mode = input.u8();
            let len = usize::from(input.u8() % 6);
            let handles: Vec<_> = (0..len).map(|_| m.pick_notify(input)).collect();
            let args: Vec<_> = handles.iter().map(|&x| m.classify(x)).collect();
            let (array, null_num) = match mode % 8 {
                0 => (None, usize::from(input.u8())),
                _ => (Some(&handles[..]), 0),
            };
            let want = gate(array.is_none()).unwrap_or_else(|| {
                if handles.is_empty() {
                    107_000
                } else if args.iter().any(|a| matches!(a, Arg::Null)) {
                    100_000
                } else if args.iter().any(|a| !matches!(a, Arg::Notify(_))) {
                    107_017
                } else {
                    0
                }
            });
            check(&format!("batch reset({len})"), Some(want), || {
                c::batch_reset(array, null_num)
            });
            if want == 0 {
                for a in args {
                    if let Arg::Notify(i) = a {
                        let ident = m.notifies[i].ident;
                        m.idents[ident].flag = false;
                    }
                }
            }
        }
        // aclrtNotifyGetExportKey
        12 => {
            let n = m.pick_notify(input);
            let len_sel = input.u8();
            let flags = match input.u8() % 5 {
                0 | 1 => 0,
                2 | 3 => 2,
                _ => input.u64(),
            };
            let null = len_sel.is_multiple_of(16);
            let len = match len_sel % 4 {
                0 => EXPORT_KEY_LEN,
                1 => usize::from(input.u8() % 80),
                2 => 200,
                _ => EXPORT_KEY_LEN + usize::from(input.u8() % 4),
            };
            let arg = m.classify(n);
            let want = gate(matches!(arg, Arg::Null) || null).unwrap_or_else(|| {
                let Arg::Notify(i) = arg else { return 107_017 };
                let t = &m.notifies[i];
                if (flags != 0 && flags != 2) || len < EXPORT_KEY_LEN {
                    107_000 // R5: flag bits, then the length: the same code
                } else if !t.creator {
                    207_006
                } else if m.idents[t.ident].export != Export::None {
                    507_000
                } else {
                    0
                }
            });
            let mut buf = vec![0xeeu8; len];
            check(
                &format!("export(len {len}, flags {flags:#x})"),
                Some(want),
                || c::export(n, (!null).then_some(&mut buf[..]), len, flags),
            );
            if let (0, Arg::Notify(i)) = (want, arg) {
                let text = c_key_text(&buf).unwrap_or_else(|| {
                    panic!("R5: the exported key is not NUL-terminated: {buf:?}")
                });
                assert!(
                    valid_key_text(text) && sim_key_format(text),
                    "R5: the exported key {text:?} is not a printable sim key"
                );
                assert!(
                    m.keys.iter().all(|(k, _)| k.as_slice() != text),
                    "R5: two exports gave the same key"
                );
                let ident = m.notifies[i].ident;
                m.keys.push((text.to_vec(), ident));
                m.idents[ident].export = Export::Live {
                    disable: flags == 2,
                    whitelist: BTreeSet::new(),
                };
            }
        }
        // aclrtNotifySetImportPid
        13 => {
            let n = m.pick_notify(input);
            let mode = input.u8();
            let count = usize::from(input.u8() % 72);
            let pids: Vec<i32> = (0..count)
                .map(|_| match input.u8() % 8 {
                    0..=2 => m.pid,
                    3 => 0,
                    4 => -1 - i32::from(input.u8()),
                    5 => i32::MAX,
                    _ => 1 + i32::from(input.u8()) + 256 * i32::from(input.u8() % 4),
                })
                .collect();
            let (array, null_num) = match mode % 8 {
                0 => (None, usize::from(input.u8())),
                _ => (Some(&pids[..]), 0),
            };
            let arg = m.classify(n);
            let want = gate(matches!(arg, Arg::Null) || array.is_none()).unwrap_or_else(|| {
                let Arg::Notify(i) = arg else { return 107_017 };
                let t = &m.notifies[i];
                if pids.is_empty() || pids.iter().any(|&p| p <= 0) {
                    return 107_000;
                }
                if !t.creator {
                    return 207_006;
                }
                match &m.idents[t.ident].export {
                    Export::Live { disable: true, .. } => 207_006,
                    Export::Live { whitelist, .. } => {
                        let added: BTreeSet<i32> = pids
                            .iter()
                            .copied()
                            .filter(|p| !whitelist.contains(p))
                            .collect();
                        if whitelist.len() + added.len() > notify_api::WHITELIST_MAX {
                            107_000
                        } else {
                            0
                        }
                    }
                    _ => 107_000,
                }
            });
            check(&format!("set import pids({count})"), Some(want), || {
                c::set_pids(n, array, null_num)
            });
            if let (0, Arg::Notify(i)) = (want, arg) {
                let ident = m.notifies[i].ident;
                if let Export::Live { whitelist, .. } = &mut m.idents[ident].export {
                    whitelist.extend(pids);
                }
            }
        }
        // aclrtNotifyImportByKey
        14 => {
            let null_out = input.u8().is_multiple_of(16);
            let key = pick_key(m, input);
            let flags = match input.u8() % 5 {
                0 | 1 => 0,
                2 | 3 => 2,
                _ => input.u64(),
            };
            let want = gate(null_out || key.is_none()).map(Err).unwrap_or_else(|| {
                let key = key.as_deref().expect("checked");
                if m.current.is_none() {
                    Err(107_002)
                } else if flags != 0 && flags != 2 {
                    Err(107_000)
                } else if let Some(code) = key_format_code(key) {
                    Err(code)
                } else {
                    let text = c_key_text(key).expect("well formed");
                    m.resolve_import(text, flags == 2, false)
                }
            });
            let mut out = std::ptr::null_mut();
            check("import", Some(want.err().unwrap_or(0)), || {
                c::import((!null_out).then_some(&mut out), key.as_deref(), flags)
            });
            if let Ok(ident) = want {
                let token = m.new_token("import", out);
                let current = m.current.expect("checked");
                let device = m.idents[ident].device;
                if flags == 2 && device != current {
                    m.peers.insert((current, device));
                }
                m.idents[ident].c_live = true;
                m.notifies.push(NotifyTok {
                    token,
                    live: true,
                    creator: false,
                    ident,
                });
            }
        }
        // aclrtDeviceEnablePeerAccess
        15 => {
            let d = pick_device(input.u8());
            let flags = if input.u8().is_multiple_of(4) {
                input.u32()
            } else {
                0
            };
            let want = gate(false).unwrap_or_else(|| match m.current {
                None => 107_002,
                Some(_) if flags != 0 => 107_000,
                Some(_) if !(0..m.devices).contains(&d) => 107_001,
                Some(c) if c == d => 107_000,
                Some(_) => 0,
            });
            check(&format!("enable peer access {d}"), Some(want), || {
                aclrtDeviceEnablePeerAccess(d, flags)
            });
            if want == 0 {
                m.peers.insert((m.current.expect("checked"), d));
            }
        }
        // aclrtDeviceCanAccessPeer
        16 => {
            let null = input.u8().is_multiple_of(8);
            let (a, b) = (pick_device(input.u8()), pick_device(input.u8()));
            let valid = |d: i32| (0..m.devices).contains(&d);
            let want = gate(null).unwrap_or(if !valid(a) || !valid(b) {
                107_001
            } else if a == b {
                107_000
            } else {
                0
            });
            let mut can = -1;
            check("can access peer", Some(want), || {
                c::can_access_peer((!null).then_some(&mut can), a, b)
            });
            if want == 0 {
                assert_eq!(can, 1, "sim: distinct valid devices can access each other");
            }
        }
        // aclrtCreateStream
        17 => {
            let null = input.u8().is_multiple_of(8);
            let want = gate(null).unwrap_or(if m.current.is_some() { 0 } else { 107_002 });
            let mut s = std::ptr::null_mut();
            check("create stream", Some(want), || {
                c::create_stream((!null).then_some(&mut s))
            });
            if want == 0 {
                let token = m.new_token("create stream", s);
                let device = m.current.expect("checked");
                m.streams.push(StreamTok {
                    token,
                    live: true,
                    device,
                });
            }
        }
        // aclrtDestroyStream
        18 => {
            let s = m.pick_stream(input);
            let arg = m.classify(s);
            let want = gate(matches!(arg, Arg::Null)).unwrap_or(match arg {
                Arg::Stream(_) => 0,
                _ => 107_017,
            });
            check("destroy stream", Some(want), || aclrtDestroyStream(s));
            if let (0, Arg::Stream(i)) = (want, arg) {
                m.streams[i].live = false;
            }
        }
        // aclrtSynchronizeStream / aclrtSynchronizeStreamWithTimeout
        19 | 20 => {
            let s = m.pick_stream(input);
            let ms = match input.u8() % 6 {
                0 | 1 => -1,
                2 => 0,
                3 => -2,
                4 => i32::MIN,
                _ => input.u32() as i32,
            };
            let arg = m.classify(s);
            let want = gate(false).unwrap_or_else(|| match m.stream_device(arg) {
                Err(code) => code,
                Ok(_) if op == 20 && ms < -1 => 107_000,
                Ok(_) => 0,
            });
            if op == 19 {
                check("synchronize", Some(want), || aclrtSynchronizeStream(s));
            } else {
                check(&format!("synchronize({ms} ms)"), Some(want), || {
                    aclrtSynchronizeStreamWithTimeout(s, ms)
                });
            }
        }
        // The peer creates (and maybe exports and whitelists us)
        22 => {
            let d = i32::from(input.u8()) % m.devices;
            let export = input.u8();
            let ok = m.peer.set_device(DeviceId(d));
            assert!(ok.is_ok(), "peer set_device: {ok:?}");
            let created = m.peer.create_notify(NotifyFlags::empty());
            if m.live_on(d) >= m.capacity {
                let e = created.expect_err("R11: the device is full");
                assert_eq!(e.code(), AclError::RT_NO_NOTIFY_RESOURCE, "{e}");
                return;
            }
            let notify = created.expect("peer create");
            m.idents.push(Ident {
                device: d,
                c_created: false,
                c_live: false,
                peer_holds: true,
                export: Export::None,
                flag: false,
                id: None,
            });
            let ident = m.idents.len() - 1;
            note_id(m, ident, notify.id().expect("id").raw());
            if !export.is_multiple_of(4) {
                let disable = export % 4 == 3;
                let flags = if disable {
                    ExportFlags::DISABLE_PID_VALIDATION
                } else {
                    ExportFlags::empty()
                };
                let key = notify.export(flags).expect("peer export");
                let mut whitelist = BTreeSet::new();
                if export % 4 == 1 {
                    notify
                        .set_import_pids(&[Pid(m.pid)])
                        .expect("peer set_import_pids");
                    whitelist.insert(m.pid);
                }
                m.idents[ident].export = Export::Live { disable, whitelist };
                m.keys.push((key.as_str().as_bytes().to_vec(), ident));
            }
            note(format_args!(
                "peer: created notify {ident} on device {d}, export mode {}",
                export % 4
            ));
            m.peer_held.push(PeerHeld { notify, ident });
        }
        // The peer destroys one of its handles
        23 => {
            if m.peer_held.is_empty() {
                return;
            }
            let i = usize::from(input.u8()) % m.peer_held.len();
            let held = m.peer_held.remove(i);
            held.notify.destroy().expect("peer destroy");
            note(format_args!(
                "peer: destroyed its handle of notify {}",
                held.ident
            ));
            let ident = &mut m.idents[held.ident];
            ident.peer_holds = false;
            if !ident.c_created {
                ident.export = Export::Revoked; // R8: the creator's destroy revokes the key
            }
        }
        // The peer imports an exported key (with ENABLE_PEER_ACCESS)
        24 => {
            if m.keys.is_empty() {
                return;
            }
            let i = usize::from(input.u8()) % m.keys.len();
            let text = m.keys[i].0.clone();
            let want = m.resolve_import(&text, true, true);
            let key = ExportKey::new(String::from_utf8(text).expect("ASCII")).expect("a key");
            m.peer.set_device(DeviceId(0)).expect("peer set_device");
            let got = m.peer.import_notify(&key, ImportFlags::ENABLE_PEER_ACCESS);
            note(format_args!(
                "peer: import -> {:?}",
                got.as_ref().map(|_| ()).map_err(|e| e.code())
            ));
            match (want, got) {
                (Ok(ident), Ok(notify)) => {
                    m.idents[ident].peer_holds = true;
                    m.peer_held.push(PeerHeld { notify, ident });
                }
                (Err(code), Err(e)) => assert_eq!(e.code().raw(), code, "peer import: {e}"),
                (want, got) => panic!("peer import: expected {want:?}, got {got:?}"),
            }
        }
        // The peer records one of its handles on its default stream
        25 => {
            if m.peer_held.is_empty() {
                return;
            }
            let i = usize::from(input.u8()) % m.peer_held.len();
            let held = &m.peer_held[i];
            let d = m.idents[held.ident].device;
            m.peer.set_device(DeviceId(d)).expect("peer set_device");
            let s = m.peer.default_stream().expect("peer default stream");
            held.notify.record(&s).expect("peer record");
            note(format_args!("peer: recorded notify {}", held.ident));
            m.idents[held.ident].flag = true;
        }
        // aclGetRecentErrMsg on its own: never changes anything
        _ => {
            let a = c::err_msg();
            assert_eq!(c::err_msg(), a);
        }
    }
}

/// The key argument of an import: NULL, raw bytes, a known key, or a known key edited.
fn pick_key(m: &Model, input: &mut Bytes<'_>) -> Option<Vec<u8>> {
    let sel = input.u8();
    let known = |i: u8| -> Option<Vec<u8>> {
        (!m.keys.is_empty()).then(|| m.keys[usize::from(i) % m.keys.len()].0.clone())
    };
    let mut key = match sel % 8 {
        0 => return None,
        1 | 2 => {
            let len = usize::from(input.u8() % 80);
            input.take(len)
        }
        3 | 4 => {
            let mut k = known(input.u8()).unwrap_or_default();
            let pos = usize::from(input.u8()) % EXPORT_KEY_LEN;
            let byte = input.u8();
            if k.len() <= pos {
                k.resize(pos + 1, b'0');
            }
            k[pos] = byte;
            k
        }
        _ => known(input.u8()).unwrap_or_default(),
    };
    key.push(0);
    Some(key)
}

/// Records the id of `ident` (R10/`aclrtGetNotifyId`): stable, below the capacity, and unique
/// among the live notifies of its device.
fn note_id(m: &mut Model, ident: usize, id: u32) {
    assert!(
        (id as usize) < m.capacity,
        "notify id {id} is not below the capacity"
    );
    if let Some(known) = m.idents[ident].id {
        assert_eq!(known, id, "the id of a notify changed");
        return;
    }
    let device = m.idents[ident].device;
    for (j, other) in m.idents.iter().enumerate() {
        if j != ident && other.alive() && other.device == device {
            assert_ne!(
                other.id,
                Some(id),
                "two live notifies of device {device} share id {id}"
            );
        }
    }
    m.idents[ident].id = Some(id);
}

/// The C side's handle `i` was destroyed (by `aclrtDestroyNotify` or `aclFinalize`).
fn destroy_c_handle(m: &mut Model, i: usize) {
    let t = &mut m.notifies[i];
    t.live = false;
    let ident = &mut m.idents[t.ident];
    ident.c_live = false;
    if t.creator {
        ident.export = Export::Revoked; // R8
    }
}

fn finalize_model(m: &mut Model) {
    m.initialized = false;
    m.current = None;
    m.peers.clear();
    for i in 0..m.notifies.len() {
        if m.notifies[i].live {
            destroy_c_handle(m, i);
        }
    }
    for s in &mut m.streams {
        s.live = false;
    }
}

/// A wait that has to block: enqueue it, see a 0 ms synchronize give up (507046), record the
/// notify from another stream, and synchronize: the wait must complete (R1–R3, the cross-thread
/// wake). With a 1 s wait timeout, a lost wake-up shows up as 107019, not as a hang.
fn blocked_wait(m: &mut Model, n: *mut c_void, s: *mut c_void, ident: usize) {
    check("wait (blocks)", Some(0), || {
        aclrtWaitAndResetNotify(n, s, 1)
    });
    check("synchronize(0 ms) gives up", Some(507_046), || {
        aclrtSynchronizeStreamWithTimeout(s, 0)
    });
    let mut other = std::ptr::null_mut();
    check("create a stream to record on", Some(0), || {
        c::create_stream(Some(&mut other))
    });
    let token = m.new_token("create stream", other);
    m.streams.push(StreamTok {
        token,
        live: false,
        device: m.current.expect("the wait had a context"),
    });
    check("record from the other stream", Some(0), || {
        aclrtRecordNotify(n, other)
    });
    check("the other stream is idle", Some(0), || {
        aclrtSynchronizeStream(other)
    });
    check("destroy the other stream", Some(0), || {
        aclrtDestroyStream(other)
    });
    check("synchronize: the wait completed", Some(0), || {
        aclrtSynchronizeStreamWithTimeout(s, 5_000)
    });
    m.idents[ident].flag = false;
}

/// Encodes one step for the seeds: the opcode, then its argument bytes.
fn op(code: u8, args: &[u8]) -> Vec<u8> {
    [&[code][..], args].concat()
}

/// Seeds for `fuzz/corpus/c_abi_sequence`: the flows of SEMANTICS.md, one per file.
pub fn c_abi_sequence_seeds() -> Vec<(String, Vec<u8>)> {
    // Handle selectors: [kind, index]; kind 0x14 = live handle `index`, 4 = any tracked
    // handle `index`, 0 = NULL, 1 = garbage (8 more bytes), 2 = corrupted (1 more byte).
    const LIVE: u8 = 0x14;
    let set0 = op(2, &[0]);
    let set1 = op(2, &[1]);
    let create = op(6, &[1, 0]);
    let create_full = op(6, &[1, 0]);
    let export = |i: u8, flags: u8| op(12, &[LIVE, i, 4, flags]);
    let mut s: Vec<(String, Vec<u8>)> = Vec::new();
    let mut add = |name: &str, steps: &[Vec<u8>]| s.push((name.to_owned(), steps.concat()));
    add(
        "uninit-calls",
        &[
            op(1, &[]),
            set0.clone(),
            create.clone(),
            op(7, &[1, 0, 1, 2, 3, 4, 5, 6, 7, 8]),
            op(0, &[]),
            op(0, &[]),
        ],
    );
    add(
        "devices",
        &[
            op(2, &[9]),
            op(2, &[0x80]),
            op(4, &[1]),
            set1.clone(),
            op(4, &[1]),
            op(3, &[1]),
            op(4, &[1]),
            op(5, &[1]),
            op(5, &[0]),
            op(21, &[1]),
        ],
    );
    add(
        "create-destroy",
        &[
            set0.clone(),
            create.clone(),
            op(10, &[LIVE, 0, 1]),
            op(7, &[LIVE, 0]),
            op(7, &[4, 0]),
            op(10, &[4, 0, 1]),
        ],
    );
    add(
        "create-flags",
        &[
            set0.clone(),
            op(6, &[1, 2]),
            op(6, &[1, 4]),
            op(6, &[1, 5, 0, 0, 0, 0, 0, 0, 0, 0x80]),
            op(6, &[0, 0]),
        ],
    );
    add(
        "capacity",
        &[
            &[set0.clone()][..],
            &vec![create_full.clone(); 9],
            &[op(7, &[LIVE, 3]), create.clone()],
        ]
        .concat(),
    );
    add(
        "record-wait",
        &[
            set0.clone(),
            create.clone(),
            op(8, &[LIVE, 0, 0, 0]),
            op(9, &[LIVE, 0, 0, 0, 0]),
            op(19, &[0, 0, 0]),
        ],
    );
    add(
        "record-wait-stream",
        &[
            set0.clone(),
            create.clone(),
            op(17, &[1]),
            op(8, &[LIVE, 0, 7, 0]),
            op(9, &[LIVE, 0, 7, 0, 1]),
            op(20, &[7, 0, 2]),
            op(18, &[7, 0]),
        ],
    );
    add(
        "blocked-wait",
        &[set0.clone(), create.clone(), op(9, &[LIVE, 0, 0, 0, 0x80])],
    );
    add(
        "blocked-wait-stream",
        &[
            set0.clone(),
            create.clone(),
            op(17, &[1]),
            op(9, &[LIVE, 0, 7, 0, 0x80]),
        ],
    );
    add(
        "wait-big-timeout",
        &[
            set0.clone(),
            create.clone(),
            op(8, &[LIVE, 0, 0, 0]),
            op(9, &[LIVE, 0, 0, 0, 2]),
        ],
    );
    add(
        "wrong-device-stream",
        &[
            set0.clone(),
            create.clone(),
            op(17, &[1]),
            set1.clone(),
            op(8, &[LIVE, 0, 7, 0]),
            op(9, &[LIVE, 0, 0, 0, 0]),
            op(19, &[7, 0, 0]),
        ],
    );
    add(
        "garbage-handles",
        &[
            set0.clone(),
            create.clone(),
            op(8, &[1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0]),
            op(8, &[2, 0, 5, 0, 0]),
            op(8, &[3, 0, 0, 0]),
            op(10, &[2, 0, 31, 1]),
            op(7, &[2, 0, 63]),
        ],
    );
    add(
        "stream-as-notify",
        &[
            set0.clone(),
            op(17, &[1]),
            op(7, &[3, 0]),
            op(18, &[6, 0]),
            op(19, &[4, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0]),
        ],
    );
    add(
        "batch-reset",
        &[
            set0.clone(),
            create.clone(),
            create.clone(),
            op(8, &[LIVE, 0, 0, 0]),
            op(11, &[1, 2, LIVE, 0, LIVE, 1]),
            op(11, &[0, 0, 3]),
            op(11, &[1, 0]),
            op(11, &[1, 2, LIVE, 0, 0, 0]),
            op(11, &[1, 2, LIVE, 0, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8]),
            op(9, &[LIVE, 0, 0, 0, 0x80]),
        ],
    );
    add(
        "export-args",
        &[
            set0.clone(),
            create.clone(),
            op(12, &[LIVE, 0, 0, 0]),
            op(12, &[LIVE, 0, 1, 0, 64]),
            op(12, &[LIVE, 0, 2, 4, 3, 0, 0, 0, 0, 0, 0, 0]),
            export(0, 0),
            export(0, 2),
        ],
    );
    add(
        "export-pids",
        &[
            set0.clone(),
            create.clone(),
            op(13, &[LIVE, 0, 1, 1, 0]),
            export(0, 0),
            op(13, &[LIVE, 0, 1, 0]),
            op(13, &[LIVE, 0, 0, 0, 5]),
            op(13, &[LIVE, 0, 1, 3, 0, 3, 4, 9]),
            op(13, &[LIVE, 0, 1, 2, 0, 6, 1, 1]),
        ],
    );
    add(
        "whitelist-overflow",
        &[
            set0.clone(),
            create.clone(),
            export(0, 0),
            op(
                13,
                &[
                    LIVE, 0, 1, 65, 6, 1, 0, 6, 2, 0, 6, 3, 0, 6, 4, 0, 6, 5, 0, 6, 6, 0, 6, 7, 0,
                    6, 8, 0, 6, 9, 0, 6, 10, 0, 6, 11, 0, 6, 12, 0, 6, 13, 0, 6, 14, 0, 6, 15, 0,
                    6, 16, 0, 6, 17, 0, 6, 18, 0, 6, 19, 0, 6, 20, 0, 6, 21, 0, 6, 22, 0, 6, 23, 0,
                    6, 24, 0, 6, 25, 0, 6, 26, 0, 6, 27, 0, 6, 28, 0, 6, 29, 0, 6, 30, 0, 6, 31, 0,
                    6, 32, 0, 6, 33, 0, 6, 34, 0, 6, 35, 0, 6, 36, 0, 6, 37, 0, 6, 38, 0, 6, 39, 0,
                    6, 40, 0, 6, 41, 0, 6, 42, 0, 6, 43, 0, 6, 44, 0, 6, 45, 0, 6, 46, 0, 6, 47, 0,
                    6, 48, 0, 6, 49, 0, 6, 50, 0, 6, 51, 0, 6, 52, 0, 6, 53, 0, 6, 54, 0, 6, 55, 0,
                    6, 56, 0, 6, 57, 0, 6, 58, 0, 6, 59, 0, 6, 60, 0, 6, 61, 0, 6, 62, 0, 6, 63, 0,
                    6, 64, 0, 6, 65, 0,
                ],
            ),
        ],
    );
    add(
        "export-disable-pids",
        &[
            set0.clone(),
            create.clone(),
            export(0, 2),
            op(13, &[LIVE, 0, 1, 1, 0]),
        ],
    );
    add(
        "import-own",
        &[
            set0.clone(),
            create.clone(),
            export(0, 2),
            op(14, &[1, 5, 0, 0]),
            op(14, &[1, 0, 0]),
            op(14, &[0, 5, 0, 0]),
        ],
    );
    add(
        "import-raw",
        &[
            set0.clone(),
            op(14, &[1, 1, 3, b'a', b'b', b'c', 0]),
            op(14, &[1, 2, 54, b'a', b'n', b's', b'1', b'-', 0]),
            op(
                14,
                &[
                    1, 1, 70, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41,
                    0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41,
                    0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41,
                    0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41,
                    0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41,
                    0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0,
                ],
            ),
        ],
    );
    add(
        "peer-flow",
        &[
            op(22, &[1, 1]),
            set0.clone(),
            op(14, &[1, 5, 0, 0]),
            op(14, &[1, 5, 0, 2]),
            op(14, &[1, 5, 0, 2]),
            op(8, &[LIVE, 0, 0, 0]),
            op(9, &[LIVE, 0, 0, 0, 0]),
            op(12, &[LIVE, 0, 0, 0]),
            op(13, &[LIVE, 0, 1, 1, 0]),
            op(25, &[0]),
            op(11, &[1, 1, LIVE, 0]),
            op(7, &[LIVE, 0]),
            op(14, &[1, 5, 0, 2]),
            op(23, &[0]),
            op(8, &[LIVE, 1, 0, 0]),
            op(7, &[LIVE, 1]),
            op(14, &[1, 5, 0, 2]),
        ],
    );
    add(
        "peer-not-whitelisted",
        &[op(22, &[0, 2]), set0.clone(), op(14, &[1, 5, 0, 0])],
    );
    add(
        "peer-disable",
        &[
            op(22, &[2, 3]),
            set1.clone(),
            op(14, &[1, 5, 0, 0]),
            op(15, &[2, 0]),
            op(15, &[1, 0]),
            op(15, &[2, 1, 1, 0, 0, 0]),
            op(15, &[0x80, 0]),
            op(14, &[1, 5, 0, 0]),
            op(16, &[1, 0, 1]),
            op(16, &[1, 1, 1]),
            op(16, &[1, 9, 1]),
            op(16, &[0, 0, 1]),
        ],
    );
    add(
        "peer-edited-key",
        &[
            op(22, &[1, 3]),
            set1.clone(),
            op(14, &[1, 3, 0, 60, b'0', 2]),
            op(14, &[1, 3, 0, 10, b'x', 2]),
            op(14, &[1, 3, 0, 53, 0, 2]),
            op(14, &[1, 3, 0, 54, b'a', 2]),
        ],
    );
    add(
        "peer-imports-ours",
        &[
            set0.clone(),
            create.clone(),
            export(0, 0),
            op(24, &[0]),
            op(13, &[LIVE, 0, 1, 1, 0]),
            op(24, &[0]),
            op(24, &[0]),
            op(25, &[0]),
            op(9, &[LIVE, 0, 0, 0, 0]),
            op(7, &[LIVE, 0]),
            op(24, &[0]),
            op(23, &[0]),
        ],
    );
    add(
        "peer-capacity",
        &[
            &vec![op(22, &[0, 0]); 8][..],
            &[
                set0.clone(),
                create.clone(),
                op(23, &[3]),
                create.clone(),
                op(22, &[0, 0]),
            ],
        ]
        .concat(),
    );
    add(
        "finalize-reinit",
        &[
            set0.clone(),
            create.clone(),
            op(17, &[1]),
            export(0, 2),
            op(1, &[]),
            op(10, &[4, 0, 1]),
            op(0, &[]),
            op(7, &[4, 0]),
            op(19, &[7, 0, 0]),
            set0.clone(),
            op(14, &[1, 5, 0, 0]),
            create.clone(),
            op(10, &[4, 0, 1]),
            op(10, &[LIVE, 0, 1]),
        ],
    );
    add(
        "finalize-with-peer-import",
        &[
            set0.clone(),
            create.clone(),
            export(0, 2),
            op(24, &[0]),
            op(1, &[]),
            op(0, &[]),
            set0.clone(),
            op(14, &[1, 5, 0, 0]),
            op(25, &[0]),
        ],
    );
    add(
        "sync-timeouts",
        &[
            set0.clone(),
            op(20, &[0, 0, 3]),
            op(20, &[0, 0, 4]),
            op(20, &[0, 0, 5, 0xff, 0xff, 0xff, 0x7f]),
            op(20, &[0, 0, 2]),
            op(19, &[4, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0]),
            op(3, &[0]),
            op(19, &[0, 0, 0]),
        ],
    );
    add(
        "errmsg",
        &[op(26, &[]), set0.clone(), op(2, &[9]), op(26, &[])],
    );
    s
}
