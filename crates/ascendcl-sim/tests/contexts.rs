//! The clauses of the contract that only the C ABI can express, moved here from the notify-api
//! conformance suite when devices became values.
//!
//! The typed API binds every operation to its own device, takes one pid per set-pid call and no
//! peer-access flags, so these assertions cannot be made through it any more: R13's per-thread
//! current context (107002 without one, 107003 for a stream of another context,
//! `aclrtSetDevice`/`aclrtResetDevice` of a bad id, `aclrtGetDevice`), R6's `num == 0` and
//! `num > 1` (107000: the driver takes exactly one pid per call), `flags != 0` of
//! `aclrtDeviceEnablePeerAccess`, and the R15 orderings that involve any of them. Each row names
//! the check of the old suite it comes from (`crates/notify-api/src/conformance/rules.rs` at
//! commit 3897dfb, with its line numbers); rows whose expected code changed with the revised
//! contract say so with `Contract:`.
//!
//! As in `bad_inputs.rs`, the exports are called in process (linked as the rlib) through small
//! safe wrappers, and each scenario runs in a child process of its own (a role of this test
//! binary) whose environment names its namespace: `aclInit` state is process-wide, and no test
//! sets a variable in a running process. The `creator` role starts an `importer` grandchild, a
//! second real process, for the importer-side rows.
//!
//! The `created` and `destroyed` roles add C1's created contexts (`aclrtCreateContext` and the
//! calls around it), which the typed API never makes.

mod common;

use std::ffi::{c_char, c_void};

use ascendcl::*;
use backend_sim::testing::{RoleSpawner, ScopedNamespace, StdioLink, child_role};
use backend_sim::{ENV_NAMESPACE, ENV_VIRTUAL};
use notify_api::conformance::Peer;

const SUCCESS: i32 = 0;
const INVALID_PARAM: i32 = 100_000;
const UNINITIALIZE: i32 = 100_001;
const PARAM_INVALID: i32 = 107_000;
const INVALID_DEVICEID: i32 = 107_001;
const CONTEXT_NULL: i32 = 107_002;
const STREAM_CONTEXT: i32 = 107_003;
const INVALID_HANDLE: i32 = 107_017;
const FEATURE_NOT_SUPPORT: i32 = 207_000;
const NO_PERMISSION: i32 = 207_006;
const WAIT_TIMEOUT: i32 = 107_019;
const NO_NOTIFY_RESOURCE: i32 = 207_009;
const INTERNAL_ERROR: i32 = 507_000;
const DRV_INTERNAL_ERROR: i32 = 507_899;

/// A C handle (`aclrtNotify`, `aclrtStream`): `void *`.
type Handle = *mut c_void;

const NULL: Handle = std::ptr::null_mut();

/// Safe wrappers over the exports: out-parameters are `&mut`, inputs are slices that carry
/// their own length, so every call keeps the C contract by construction. Every call sits in an
/// `unsafe` block whether or not the export is declared `unsafe` (hence the `allow`).
#[allow(unused_unsafe)]
mod c {
    use super::*;
    use std::ffi::CStr;

    pub fn init() -> i32 {
        // SAFETY: NULL is an allowed config path.
        unsafe { aclInit(std::ptr::null()) }
    }

    pub fn finalize() -> i32 {
        // SAFETY: no arguments.
        unsafe { aclFinalize() }
    }

    pub fn set_device(d: i32) -> i32 {
        // SAFETY: a plain integer argument.
        unsafe { aclrtSetDevice(d) }
    }

    pub fn reset_device(d: i32) -> i32 {
        // SAFETY: a plain integer argument.
        unsafe { aclrtResetDevice(d) }
    }

    pub fn get_device(d: &mut i32) -> i32 {
        // SAFETY: a live `&mut i32`.
        unsafe { aclrtGetDevice(d) }
    }

    pub fn device_count(n: &mut u32) -> i32 {
        // SAFETY: a live `&mut u32`.
        unsafe { aclrtGetDeviceCount(n) }
    }

    pub fn bare_tgid(p: &mut i32) -> i32 {
        // SAFETY: a live `&mut i32`.
        unsafe { aclrtDeviceGetBareTgid(p) }
    }

    pub fn create_notify(n: &mut Handle, flag: u64) -> i32 {
        // SAFETY: a live `&mut` to a `void *`.
        unsafe { aclrtCreateNotify(n, flag) }
    }

    pub fn destroy_notify(n: Handle) -> i32 {
        // SAFETY: the shim validates the token and never dereferences it.
        unsafe { aclrtDestroyNotify(n) }
    }

    pub fn create_stream(s: &mut Handle) -> i32 {
        // SAFETY: a live `&mut` to a `void *`.
        unsafe { aclrtCreateStream(s) }
    }

    pub fn sync(s: Handle) -> i32 {
        // SAFETY: NULL (the default stream) or a token the shim validates.
        unsafe { aclrtSynchronizeStream(s) }
    }

    pub fn record(n: Handle, s: Handle) -> i32 {
        // SAFETY: tokens the shim validates; NULL `s` is the default stream.
        unsafe { aclrtRecordNotify(n, s) }
    }

    pub fn wait(n: Handle, s: Handle, secs: u32) -> i32 {
        // SAFETY: tokens the shim validates; NULL `s` is the default stream.
        unsafe { aclrtWaitAndResetNotify(n, s, secs) }
    }

    /// Exports into `key` (its length is `len`).
    pub fn export(n: Handle, key: &mut [u8], flags: u64) -> i32 {
        // SAFETY: `key.len()` writable bytes.
        unsafe { aclrtNotifyGetExportKey(n, key.as_mut_ptr().cast::<c_char>(), key.len(), flags) }
    }

    /// Imports from `key`, which must hold a NUL.
    pub fn import(n: &mut Handle, key: &[u8], flags: u64) -> i32 {
        assert!(key.contains(&0), "test bug: an unterminated key");
        // SAFETY: a live `&mut` to a `void *`; a NUL-terminated key.
        unsafe { aclrtNotifyImportByKey(n, key.as_ptr().cast::<c_char>(), flags) }
    }

    /// `aclrtNotifySetImportPid(n, pids, pids.len())`; an empty slice passes a valid pointer
    /// with `num == 0`.
    pub fn set_pids(n: Handle, pids: &[i32]) -> i32 {
        let mut spare = 0i32;
        let ptr = if pids.is_empty() {
            &raw mut spare
        } else {
            pids.as_ptr().cast_mut()
        };
        // SAFETY: `pids.len()` readable pids (the shim never writes through the pointer).
        unsafe { aclrtNotifySetImportPid(n, ptr, pids.len()) }
    }

    pub fn create_context(ctx: Option<&mut Handle>, device: i32) -> i32 {
        let ptr = ctx.map_or(std::ptr::null_mut(), |c| c as *mut Handle);
        // SAFETY: NULL or a live `&mut` to a `void *`.
        unsafe { aclrtCreateContext(ptr, device) }
    }

    pub fn destroy_context(ctx: Handle) -> i32 {
        // SAFETY: a token the shim validates.
        unsafe { aclrtDestroyContext(ctx) }
    }

    pub fn set_context(ctx: Handle) -> i32 {
        // SAFETY: a token the shim validates.
        unsafe { aclrtSetCurrentContext(ctx) }
    }

    pub fn get_context(ctx: &mut Handle) -> i32 {
        // SAFETY: a live `&mut` to a `void *`.
        unsafe { aclrtGetCurrentContext(ctx) }
    }

    pub fn destroy_stream(s: Handle) -> i32 {
        // SAFETY: a token the shim validates.
        unsafe { aclrtDestroyStream(s) }
    }

    pub fn sync_timeout(s: Handle, ms: i32) -> i32 {
        // SAFETY: NULL (the default stream) or a token the shim validates.
        unsafe { aclrtSynchronizeStreamWithTimeout(s, ms) }
    }

    pub fn enable_peer(peer: i32, flags: u32) -> i32 {
        // SAFETY: plain integer arguments.
        unsafe { aclrtDeviceEnablePeerAccess(peer, flags) }
    }

    /// This thread's `aclGetRecentErrMsg` text.
    pub fn err_msg() -> Option<String> {
        // SAFETY: no arguments.
        let p = unsafe { aclGetRecentErrMsg() };
        if p.is_null() {
            return None;
        }
        // SAFETY: the shim returns a NUL-terminated string that stays valid until the next
        // failure in this thread; we copy it at once.
        Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }
}

/// Whether `text` starts with a rule as `SEMANTICS.md` writes it and `notify_api::Rule` lists
/// it (`R7:`, `C1:`, `§4:`), then a colon.
fn cites_rule(text: &str) -> bool {
    text.split_once(':')
        .is_some_and(|(label, _)| notify_api::Rule::ALL.iter().any(|r| r.as_str() == label))
}

/// Runs rows and collects every mismatch, so one run reports all of them.
#[derive(Default)]
struct Rows {
    count: usize,
    failures: Vec<String>,
}

impl Rows {
    /// `call` must return `want`; after a failure the thread's error text must cite a rule.
    fn row(&mut self, name: &str, want: i32, call: impl FnOnce() -> i32) {
        self.count += 1;
        let got = call();
        let msg = c::err_msg().unwrap_or_default();
        let mut problems = Vec::new();
        if got != want {
            problems.push(format!("returned {got}, expected {want}"));
        }
        if want != SUCCESS && !cites_rule(&msg) {
            problems.push(format!("message does not start with a rule: {msg:?}"));
        }
        if problems.is_empty() {
            println!("ok    {name}: {got}");
        } else {
            println!("FAIL  {name}: {}", problems.join("; "));
            self.failures
                .push(format!("{name}: {} [{msg}]", problems.join("; ")));
        }
    }

    fn ok(&mut self, name: &str, call: impl FnOnce() -> i32) {
        self.row(name, SUCCESS, call);
    }

    /// A fact about values the calls returned.
    fn expect(&mut self, name: &str, holds: bool, detail: impl std::fmt::Display) {
        self.count += 1;
        if holds {
            println!("ok    {name}");
        } else {
            println!("FAIL  {name}: {detail}");
            self.failures.push(format!("{name}: {detail}"));
        }
    }

    fn merge(&mut self, other: Rows) {
        self.count += other.count;
        self.failures.extend(other.failures);
    }

    fn finish(self, what: &str) {
        assert!(
            self.failures.is_empty(),
            "{what}: {} of {} rows failed:\n{}",
            self.failures.len(),
            self.count,
            self.failures.join("\n")
        );
        println!("{what}: all {} rows passed", self.count);
    }
}

/// Lower-case hex of `bytes`, for keys on the line protocol.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The inverse of [`hex`], NUL-terminated.
fn unhex(text: &str) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect();
    bytes.push(0);
    bytes
}

/// The key in a 65-byte export buffer, without its NUL.
fn key_text(buf: &[u8; 65]) -> &[u8] {
    let nul = buf.iter().position(|&b| b == 0).expect("NUL-terminated");
    &buf[..nul]
}

#[test]
#[ignore = "entry point of spawned child processes"]
fn child() {
    let Some(role) = child_role() else { return };
    match role.as_str() {
        "contexts" => contexts(),
        "whitelist" => whitelist(),
        "virtual" => virtual_instance(),
        "creator" => creator(),
        "importer" => importer(),
        "created" => created_contexts(),
        "destroyed" => destroyed_context_streams(),
        other => panic!("unknown role {other}"),
    }
}

/// Runs `role` in a child process attached to a fresh namespace (with `env`), checks that all
/// its rows passed and that it left nothing in /dev/shm.
fn run_rows(role: &str, env: &[(&str, &str)]) {
    let ns = ScopedNamespace::new(&format!("ctx-{role}"));
    let mut spawner = RoleSpawner::new("child", &ns);
    for (k, v) in env {
        spawner = spawner.env(k, v);
    }
    spawner
        .run(role)
        .assert_passed(&format!("the {role} role"), &format!("{role}: all"));
    let left = common::shm_leftovers(ns.name());
    assert!(left.is_empty(), "left in /dev/shm: {left:?}");
}

/// R13, R7, R15: one process's per-thread context.
#[test]
fn contexts_of_a_thread() {
    run_rows("contexts", &[]);
}

/// R6, R15: pid counts per call.
#[test]
fn whitelist_counts() {
    run_rows("whitelist", &[]);
}

/// R12, R15: the context and virtualization steps around the count.
#[test]
fn virtualization_instance_contexts() {
    run_rows("virtual", &[(ENV_VIRTUAL, "1")]);
}

/// R13, R6, R15 in an importer: contexts and counts of a process that did not create.
#[test]
fn importer_contexts_and_counts() {
    run_rows("creator", &[]);
}

/// C1 and R13 with created contexts: `aclrtCreateContext`, `aclrtSetCurrentContext`,
/// `aclrtGetCurrentContext`, `aclrtDestroyContext`, and streams bound to a context rather than
/// to a device.
#[test]
fn created_contexts_of_a_thread() {
    run_rows("created", &[]);
}

/// C1 with R10: a context's streams are destroyed with it, so every later use of one is 107017.
///
/// Fails today (library bug): a record on such a stream is 107017, but `aclrtSynchronizeStream`,
/// `aclrtSynchronizeStreamWithTimeout` and `aclrtDestroyStream` of it succeed, because
/// `backend_sim::raw::sync_core` and `raw::destroy_stream` never look at the stream's context
/// (`crates/backend-sim/src/raw.rs`); `enqueue_stream` does (`wrong_context`).
#[test]
fn streams_die_with_their_context() {
    run_rows("destroyed", &[]);
}

/// C1: contexts made with `aclrtCreateContext`, against the default ones of `aclrtSetDevice`.
fn created_contexts() {
    let mut t = Rows::default();
    let (mut def, mut again, mut ctx, mut ctx1, mut cur) = (NULL, NULL, NULL, NULL, NULL);
    let (mut s, mut n, mut other) = (NULL, NULL, NULL);
    let mut dev = -1;
    t.ok("aclInit", c::init);
    t.row(
        "get current context without one (C1, R13)",
        CONTEXT_NULL,
        || c::get_context(&mut cur),
    );
    t.ok("set device 0", || c::set_device(0));
    t.ok("get current context: device 0's default", || {
        c::get_context(&mut def)
    });
    t.ok("get it again", || c::get_context(&mut again));
    t.expect(
        "one context reads as one token (C1)",
        def == again && !def.is_null(),
        format!("{def:?} {again:?}"),
    );
    t.row("destroy the default context (C1)", PARAM_INVALID, || {
        c::destroy_context(def)
    });
    t.row(
        "create a context on device 99 (R13)",
        INVALID_DEVICEID,
        || c::create_context(Some(&mut ctx), 99),
    );
    t.row(
        "create a context into NULL (R15: NULL first)",
        INVALID_PARAM,
        || c::create_context(None, 99),
    );
    t.ok("create a context on device 0", || {
        c::create_context(Some(&mut ctx), 0)
    });
    t.ok("get current context", || c::get_context(&mut cur));
    t.expect(
        "the created context is current (C1)",
        cur == ctx && ctx != def,
        format!("current {cur:?}, created {ctx:?}, default {def:?}"),
    );
    t.ok("get device", || c::get_device(&mut dev));
    t.expect("the created context is on device 0", dev == 0, dev);
    t.ok("create stream s under the created context", || {
        c::create_stream(&mut s)
    });
    t.ok("create n", || c::create_notify(&mut n, 0));
    t.ok("record(n, s) under its context", || c::record(n, s));
    t.ok("set device 0: the default context again", || {
        c::set_device(0)
    });
    t.ok("get current context", || c::get_context(&mut cur));
    t.expect(
        "the default context is current",
        cur == def,
        format!("{cur:?}"),
    );
    t.row(
        "record(n, s of the created context) under the default context of the same device (C1)",
        STREAM_CONTEXT,
        || c::record(n, s),
    );
    t.row(
        "wait(n, s of the created context) under the default context (C1)",
        STREAM_CONTEXT,
        || c::wait(n, s, 1),
    );
    t.ok(
        "synchronize s from another context of the process (C1)",
        || c::sync(s),
    );
    t.ok("set the created context current", || c::set_context(ctx));
    t.ok("wait(n, s): the record above set the flag", || {
        c::wait(n, s, 1)
    });
    t.ok("synchronize s", || c::sync(s));
    t.row("a context token as a notify (R10)", INVALID_HANDLE, || {
        c::record(ctx, NULL)
    });
    t.row("a notify token as a context (R10)", INVALID_HANDLE, || {
        c::set_context(n)
    });
    t.row("set current context NULL (R10)", INVALID_PARAM, || {
        c::set_context(NULL)
    });
    t.row("destroy context NULL (R10)", INVALID_PARAM, || {
        c::destroy_context(NULL)
    });
    t.ok("destroy the created context, current", || {
        c::destroy_context(ctx)
    });
    t.row(
        "no current context after destroying it (C1, R13)",
        CONTEXT_NULL,
        || c::get_context(&mut cur),
    );
    t.row(
        "set the destroyed context current (R10)",
        INVALID_HANDLE,
        || c::set_context(ctx),
    );
    t.row("destroy it twice (R10)", INVALID_HANDLE, || {
        c::destroy_context(ctx)
    });
    t.ok("set device 0", || c::set_device(0));
    t.row(
        "record(n, s of the destroyed context) (C1)",
        INVALID_HANDLE,
        || c::record(n, s),
    );
    t.ok("record(n) on the default stream", || c::record(n, NULL));
    t.ok("create a context on device 1", || {
        c::create_context(Some(&mut ctx1), 1)
    });
    t.ok("get device", || c::get_device(&mut dev));
    t.expect("device 1 is current", dev == 1, dev);
    t.row(
        "wait(n of device 0) on the created context's default stream of device 1 (R4)",
        PARAM_INVALID,
        || c::wait(n, NULL, 1),
    );
    t.ok("create a notify on device 1", || {
        c::create_notify(&mut other, 0)
    });
    t.ok(
        "record it on the default stream of the created context",
        || c::record(other, NULL),
    );
    t.ok("wait on it there", || c::wait(other, NULL, 1));
    t.ok(
        "synchronize the default stream of the created context",
        || c::sync(NULL),
    );
    t.ok("reset device 1", || c::reset_device(1));
    t.row(
        "no current context: it was on device 1 (R13)",
        CONTEXT_NULL,
        || c::get_device(&mut dev),
    );
    t.ok("the created context still exists: set it current", || {
        c::set_context(ctx1)
    });
    t.ok("get device", || c::get_device(&mut dev));
    t.expect("device 1 is current again", dev == 1, dev);
    t.ok("destroy the notify of device 1", || {
        c::destroy_notify(other)
    });
    t.ok("destroy the context of device 1", || {
        c::destroy_context(ctx1)
    });
    t.ok("set device 0", || c::set_device(0));
    t.ok("wait(n, the default stream): the record above", || {
        c::wait(n, NULL, 1)
    });
    t.ok("synchronize", || c::sync(NULL));
    t.ok("destroy n", || c::destroy_notify(n));
    t.ok("aclFinalize", c::finalize);
    t.row(
        "get current context after aclFinalize",
        UNINITIALIZE,
        || c::get_context(&mut cur),
    );
    t.finish("created");
}

/// C1: "`aclrtDestroyContext` destroys a created context (its streams and events with it)", so
/// its streams are destroyed handles (R10: 107017) for every call, as they are for a record.
fn destroyed_context_streams() {
    let mut t = Rows::default();
    let (mut ctx, mut s, mut n) = (NULL, NULL, NULL);
    t.ok("aclInit", c::init);
    t.ok("create a context on device 0", || {
        c::create_context(Some(&mut ctx), 0)
    });
    t.ok("create stream s under it", || c::create_stream(&mut s));
    t.ok("create n", || c::create_notify(&mut n, 0));
    t.ok("destroy the context", || c::destroy_context(ctx));
    t.ok("set device 0", || c::set_device(0));
    t.row(
        "record(n, s of the destroyed context)",
        INVALID_HANDLE,
        || c::record(n, s),
    );
    t.row(
        "wait(n, s of the destroyed context)",
        INVALID_HANDLE,
        || c::wait(n, s, 1),
    );
    t.row(
        "synchronize s of the destroyed context",
        INVALID_HANDLE,
        || c::sync(s),
    );
    t.row(
        "synchronize s of the destroyed context, with a timeout",
        INVALID_HANDLE,
        || c::sync_timeout(s, 100),
    );
    t.row("destroy s of the destroyed context", INVALID_HANDLE, || {
        c::destroy_stream(s)
    });
    t.ok("destroy n", || c::destroy_notify(n));
    t.ok("aclFinalize", c::finalize);
    t.finish("destroyed");
}

/// The old suite's `r13_contexts` and `finish`, with the context rows of `r7_peer_access_calls`,
/// `r14_failed_calls_change_nothing` and `r15_order_of_checks`. The sequence of set and reset
/// calls is the old checks' own: set 0, set 1, set 0, reset 1, reset 0.
fn contexts() {
    let mut t = Rows::default();
    let mut dev = -1;
    let mut count = 0u32;
    let (mut n, mut s) = (NULL, NULL);
    t.ok("aclInit", c::init);
    t.ok("device count", || c::device_count(&mut count));
    let count = count as i32;
    t.expect(
        "the suite needs 2 devices (r13_contexts, 1976-1980)",
        count >= 2,
        count,
    );

    // --- no current device -------------------------------------------------------------------
    t.row(
        "get device at the start (r13_contexts, 1983)",
        CONTEXT_NULL,
        || c::get_device(&mut dev),
    );
    t.row(
        "create without a device (r13_contexts, 1984-1988)",
        CONTEXT_NULL,
        || c::create_notify(&mut n, 0),
    );
    t.row(
        "create stream without a device (r13_contexts, 1989)",
        CONTEXT_NULL,
        || c::create_stream(&mut s),
    );
    t.row(
        "the default stream without a device (r13_contexts, 1990-1994)",
        CONTEXT_NULL,
        || c::sync(NULL),
    );
    t.row(
        "import without a device (r13_contexts, 1995-1999)",
        CONTEXT_NULL,
        || c::import(&mut n, b"not-a-key\0", 0),
    );
    for bad in [count, count + 7, -1] {
        t.row(
            &format!("set device {bad} (r13_contexts, 2000-2011)"),
            INVALID_DEVICEID,
            || c::set_device(bad),
        );
        t.row(
            &format!("reset device {bad} (r13_contexts, 2000-2011)"),
            INVALID_DEVICEID,
            || c::reset_device(bad),
        );
    }
    t.row(
        "get device: a refused set device sets nothing (r13_contexts, 2012-2016)",
        CONTEXT_NULL,
        || c::get_device(&mut dev),
    );
    t.row(
        "enable peer access without a device (r7_peer_access_calls, 1456-1459)",
        CONTEXT_NULL,
        || c::enable_peer(1, 0),
    );
    t.row(
        "import(malformed key, ENABLE_PEER_ACCESS) without a device: the context first \
         (r15_order_of_checks, 2235-2239)",
        CONTEXT_NULL,
        || c::import(&mut n, b"not-a-key\0", 0x2),
    );
    t.row(
        "enable peer access to a bad device without a device: the context first \
         (r15_order_of_checks, 2240-2244)",
        CONTEXT_NULL,
        || c::enable_peer(count, 0),
    );
    t.row(
        "enable peer access with flags 1 without a device: the context first \
         (r15_order_of_checks, 2245-2249)",
        CONTEXT_NULL,
        || c::enable_peer(1, 1),
    );

    // --- device 0 ------------------------------------------------------------------------------
    let (mut s0, mut n0) = (NULL, NULL);
    t.ok("set device 0", || c::set_device(0));
    t.ok("get device", || c::get_device(&mut dev));
    t.expect("device 0 is current (r13_contexts, 2019)", dev == 0, dev);
    t.ok("create stream s0 on device 0", || c::create_stream(&mut s0));
    t.ok("create n0 on device 0", || c::create_notify(&mut n0, 0));
    t.row(
        "enable peer access with flags 1 (r7_peer_access_calls, 1467-1471)",
        PARAM_INVALID,
        || c::enable_peer(1, 1),
    );

    // --- device 1: streams of another context --------------------------------------------------
    let (mut s1, mut n1) = (NULL, NULL);
    t.ok("set device 1", || c::set_device(1));
    t.ok("get device", || c::get_device(&mut dev));
    t.expect("device 1 is current (r13_contexts, 2024)", dev == 1, dev);
    t.row(
        "record(n0, s0 of device 0) under device 1 (r13_contexts, 2025-2029)",
        STREAM_CONTEXT,
        || c::record(n0, s0),
    );
    t.row(
        "wait(n0, s0 of device 0) under device 1 (r13_contexts, 2030-2034)",
        STREAM_CONTEXT,
        || c::wait(n0, s0, 1),
    );
    t.ok("create stream s1 on device 1", || c::create_stream(&mut s1));
    t.ok("create n1 on device 1", || c::create_notify(&mut n1, 0));
    t.row(
        "wait(n1 of device 1, s0 of device 0) under device 1: the stream's context (107003) \
         before R4's wait on another device (107000) (r15_order_of_checks, 2251-2262)",
        STREAM_CONTEXT,
        || c::wait(n1, s0, 1),
    );

    // --- device 0 again ------------------------------------------------------------------------
    t.ok("set device 0 again", || c::set_device(0));
    t.row(
        "record(n0, s1 of device 1) under device 0 (r14_failed_calls_change_nothing, 2090-2094)",
        STREAM_CONTEXT,
        || c::record(n0, s1),
    );
    t.ok("record(n0, s0) under device 0 (r13_contexts, 2038)", || {
        c::record(n0, s0)
    });
    t.ok(
        "wait(n0, s0) under device 0 (r13_contexts, 2039-2042)",
        || c::wait(n0, s0, 5),
    );
    t.ok(
        "device 0's stream works under device 0 (r13_contexts, 2043)",
        || c::sync(s0),
    );
    t.ok(
        "wait(n0, s0): the refused record under device 0 set nothing",
        || c::wait(n0, s0, 1),
    );
    t.row("synchronize s0: the wait expired", WAIT_TIMEOUT, || {
        c::sync(s0)
    });
    let mut fillers = Vec::new();
    loop {
        let mut f = NULL;
        let rc = c::create_notify(&mut f, 0);
        if rc != SUCCESS {
            t.row(
                &format!("fill device 0: create #{}", fillers.len() + 1),
                NO_NOTIFY_RESOURCE,
                || rc,
            );
            break;
        }
        fillers.push(f);
        if fillers.len() > 9000 {
            t.expect("device 0 becomes full", false, "9000 creates");
            break;
        }
    }

    // --- resets ----------------------------------------------------------------------------------
    t.ok("reset device 1", || c::reset_device(1));
    t.ok("get device", || c::get_device(&mut dev));
    t.expect(
        "resetting a device that is not current keeps the current one (r13_contexts, 2045-2050)",
        dev == 0,
        dev,
    );
    t.ok("reset device 0", || c::reset_device(0));
    t.row(
        "no current device after resetting every device used (r13_contexts, 2051-2052; \
         finish, 228-238)",
        CONTEXT_NULL,
        || c::get_device(&mut dev),
    );
    t.row(
        "record without a device (r13_contexts, 2053)",
        CONTEXT_NULL,
        || c::record(n0, s0),
    );
    t.row(
        "wait without a device (r13_contexts, 2054)",
        CONTEXT_NULL,
        || c::wait(n0, s0, 1),
    );
    t.row(
        "create after reset (r13_contexts, 2055-2059); no context (107002) before a full \
         device (207009) (r15_order_of_checks, 2295-2303)",
        CONTEXT_NULL,
        || c::create_notify(&mut n, 0),
    );
    // aclFinalize releases whatever the resets left.
    t.ok("aclFinalize", c::finalize);
    t.finish("contexts");
}

/// R6's counts per call: `num == 0` and (revised) `num > 1` are 107000 and add nothing; from
/// `r6_whitelist_before_export`, `r6_whitelist_cap_64_all_or_nothing`,
/// `r6_whitelist_cumulative_and_idempotent`, `r14_failed_calls_change_nothing` and
/// `r15_order_of_checks`.
fn whitelist() {
    let mut t = Rows::default();
    let (mut a, mut b, mut d) = (NULL, NULL, NULL);
    let mut key = [0u8; 65];
    t.ok("aclInit", c::init);
    t.ok("set device 0", || c::set_device(0));
    t.ok("create a", || c::create_notify(&mut a, 0));
    t.ok("create b", || c::create_notify(&mut b, 0));
    t.row(
        "set pid(b, 2 pids) before export (r6_whitelist_before_export, 1170-1174)",
        PARAM_INVALID,
        || c::set_pids(b, &[1_000_000, 1_000_001]),
    );
    t.ok("export a with flag 0x0", || c::export(a, &mut key, 0));
    t.row(
        "set pid(num 0) (r6_whitelist_before_export, 1177-1181)",
        PARAM_INVALID,
        || c::set_pids(a, &[]),
    );
    // Contract: R6 was revised: the driver takes exactly one pid per call, so two pids in one
    // call are 107000 (r6_whitelist_before_export, 1176, expected success).
    t.row(
        "set pid(2 pids) after export (r6_whitelist_before_export, 1176)",
        PARAM_INVALID,
        || c::set_pids(a, &[1_000_000, 1_000_001]),
    );
    let sixty_five: Vec<i32> = (2_000_000..2_000_065).collect();
    t.row(
        "set pid(65 pids in one call) (r6_whitelist_cap_64_all_or_nothing, 1214-1218)",
        PARAM_INVALID,
        || c::set_pids(a, &sixty_five),
    );
    // Contract: one pid per call (r6_whitelist_cumulative_and_idempotent, 1256-1259, expected
    // success).
    t.row(
        "set pid(p0, p0, p1 in one call) (r6_whitelist_cumulative_and_idempotent, 1256-1259)",
        PARAM_INVALID,
        || c::set_pids(a, &[3_000_000, 3_000_000, 3_000_001]),
    );
    t.row(
        "set pid(num 0) (r14_failed_calls_change_nothing, 2105-2109)",
        PARAM_INVALID,
        || c::set_pids(a, &[]),
    );
    let sixty_nine: Vec<i32> = (4_000_001..4_000_070).collect();
    t.row(
        "set pid(69 pids in one call) (r14_failed_calls_change_nothing, 2110-2114)",
        PARAM_INVALID,
        || c::set_pids(a, &sixty_nine),
    );
    // Nothing of the refused calls was added: 15 other pids fit, and a refused one is a 16th.
    for p in 5_000_000..5_000_015 {
        t.ok(&format!("set pid({p}): one of 15 importers"), || {
            c::set_pids(a, &[p])
        });
    }
    t.row(
        "set pid(1000000): the refused calls added nothing, so it is a 16th",
        DRV_INTERNAL_ERROR,
        || c::set_pids(a, &[1_000_000]),
    );
    t.ok("create d", || c::create_notify(&mut d, 0));
    t.ok("export d with DISABLE_PID_VALIDATION", || {
        c::export(d, &mut key, 0x2)
    });
    t.row(
        "set pid(num 0) on a DISABLE export: the count (107000) before the permission (207006) \
         (r15_order_of_checks, 2264-2273)",
        PARAM_INVALID,
        || c::set_pids(d, &[]),
    );
    t.row(
        "set pid(2 pids) on a DISABLE export: the count before the permission",
        PARAM_INVALID,
        || c::set_pids(d, &[1, 2]),
    );
    t.row("set pid(1 pid) on a DISABLE export", NO_PERMISSION, || {
        c::set_pids(d, &[1_000_000])
    });
    for (name, h) in [("a", a), ("b", b), ("d", d)] {
        t.ok(&format!("destroy {name}"), || c::destroy_notify(h));
    }
    t.ok("reset device 0", || c::reset_device(0));
    t.ok("aclFinalize", c::finalize);
    t.finish("whitelist");
}

/// `r12_virtualized`'s C rows, in a process configured as a virtualization instance.
fn virtual_instance() {
    let mut t = Rows::default();
    let (mut n, mut a) = (NULL, NULL);
    t.ok("aclInit", c::init);
    t.row(
        "import without a context: the context (107002) before virtualization \
         (r12_virtualized, 1928-1932)",
        CONTEXT_NULL,
        || c::import(&mut n, b"not-a-key\0", 0),
    );
    t.ok("set device 0", || c::set_device(0));
    t.ok("create (local notifies work)", || {
        c::create_notify(&mut a, 0)
    });
    t.row(
        "set pid(num 0): virtualization (207000) before the count (r12_virtualized, 1951-1955)",
        FEATURE_NOT_SUPPORT,
        || c::set_pids(a, &[]),
    );
    t.row(
        "set pid(2 pids): virtualization before the count",
        FEATURE_NOT_SUPPORT,
        || c::set_pids(a, &[1, 2]),
    );
    t.ok("destroy", || c::destroy_notify(a));
    t.ok("reset device 0", || c::reset_device(0));
    t.ok("aclFinalize", c::finalize);
    t.finish("virtual");
}

/// The creator of the importer-side scenario: exports `n` with DISABLE_PID_VALIDATION and `m`
/// with flag 0x0 (whitelisting the importer), and lets the `importer` grandchild run its rows.
fn creator() {
    let mut t = Rows::default();
    let (mut n, mut m) = (NULL, NULL);
    let (mut kn, mut km) = ([0u8; 65], [0u8; 65]);
    t.ok("aclInit", c::init);
    t.ok("set device 0", || c::set_device(0));
    t.ok("create n", || c::create_notify(&mut n, 0));
    t.ok("create m", || c::create_notify(&mut m, 0));
    t.ok("export n with DISABLE_PID_VALIDATION", || {
        c::export(n, &mut kn, 0x2)
    });
    t.ok("export m with flag 0x0", || c::export(m, &mut km, 0));

    let ns_name = std::env::var(ENV_NAMESPACE).expect("the namespace is in the environment");
    let placeholder = ScopedNamespace::new("unused");
    let mut peer = RoleSpawner::new("child", &placeholder)
        .env(ENV_NAMESPACE, &ns_name)
        .start("importer");
    let pid: i32 = peer
        .recv()
        .strip_prefix("pid ")
        .expect("pid line")
        .parse()
        .expect("a pid");
    t.ok("whitelist the importer on m", || c::set_pids(m, &[pid]));
    peer.send(&format!(
        "keys {} {}",
        hex(key_text(&kn)),
        hex(key_text(&km))
    ));
    assert_eq!(peer.recv(), "done", "the importer ran its rows");
    peer.send("bye");
    t.expect(
        "the importer's rows passed",
        Box::new(peer).wait() == 0,
        "see its output",
    );
    drop(placeholder);
    t.ok("destroy n", || c::destroy_notify(n));
    t.ok("destroy m", || c::destroy_notify(m));
    t.ok("aclFinalize", c::finalize);
    t.finish("creator");
}

/// The importer's rows: from `r6_whitelist_only_by_creator`,
/// `r14_peer_bad_input_and_death_harm_nothing` and `r15_order_of_checks_across_processes`. The
/// main thread's set and reset calls are those of the old check: set 1, set 0, reset 0.
fn importer() {
    let mut link = StdioLink;
    let mut t = Rows::default();
    let (mut s0, mut s1, mut n, mut m, mut spare) = (NULL, NULL, NULL, NULL, NULL);
    let mut tgid = 0;
    t.ok("importer: aclInit", c::init);
    t.ok("importer: set device 1", || c::set_device(1));
    t.ok("importer: stream s1 on device 1", || {
        c::create_stream(&mut s1)
    });
    t.ok("importer: set device 0", || c::set_device(0));
    t.ok("importer: stream s0 on device 0", || {
        c::create_stream(&mut s0)
    });
    t.ok("importer: bare tgid", || c::bare_tgid(&mut tgid));
    link.send(&format!("pid {tgid}"));
    let line = link.recv();
    let mut keys = line
        .strip_prefix("keys ")
        .expect("keys line")
        .split(' ')
        .map(unhex);
    let (kn, km) = (keys.next().expect("key n"), keys.next().expect("key m"));
    t.ok("importer: import n (DISABLE_PID_VALIDATION)", || {
        c::import(&mut n, &kn, 0)
    });
    t.ok("importer: import m (whitelisted)", || {
        c::import(&mut m, &km, 0)
    });

    // --- counts before permission ----------------------------------------------------------------
    t.row(
        "importer: set pid(n, num 0): the count (107000) before the permission \
         (r15_order_of_checks_across_processes, 2326; r14_peer_bad_input_and_death_harm_nothing, 2186)",
        PARAM_INVALID,
        || c::set_pids(n, &[]),
    );
    t.row(
        "importer: set pid(m, num 0): the count before \"not the creator\"",
        PARAM_INVALID,
        || c::set_pids(m, &[]),
    );
    // Contract: R6 was revised: one pid per call, and the count is a bad argument, checked
    // before permission (r6_whitelist_only_by_creator, 1329-1332, expected 207006).
    t.row(
        "importer: set pid(m, 3 pids) (r6_whitelist_only_by_creator, 1329-1332)",
        PARAM_INVALID,
        || c::set_pids(m, &[1_000_000, 1_000_001, 1_000_002]),
    );
    t.row(
        "importer: set pid(m, 1 pid): not the creator",
        DRV_INTERNAL_ERROR,
        || c::set_pids(m, &[1_000_000]),
    );
    t.row(
        "importer: set pid(n, 1 pid): the DISABLE export's permission first",
        NO_PERMISSION,
        || c::set_pids(n, &[1_000_000]),
    );

    // --- a stream of another context -----------------------------------------------------------
    t.row(
        "importer: wait(n, s1 of device 1) under device 0: the stream's context (107003) before \
         R4's non-creator wait (107000) (r15_order_of_checks_across_processes, 2328)",
        STREAM_CONTEXT,
        || c::wait(n, s1, 1),
    );
    t.row(
        "importer: wait(n, the default stream of device 0): R4, not the creator",
        PARAM_INVALID,
        || c::wait(n, NULL, 1),
    );
    t.row(
        "importer: import n again: already held (r15_order_of_checks_across_processes, 2329)",
        INTERNAL_ERROR,
        || c::import(&mut spare, &kn, 0),
    );
    // Another thread of this process, with device 1 current: the streams of device 0.
    let (n_token, s0_token) = (n.addr(), s0.addr());
    let other = std::thread::spawn(move || {
        let n: Handle = std::ptr::without_provenance_mut(n_token);
        let s0: Handle = std::ptr::without_provenance_mut(s0_token);
        let mut t = Rows::default();
        t.ok("importer thread: set device 1", || c::set_device(1));
        t.row(
            "importer thread: record(n, s0 of device 0) under device 1 \
             (r14_peer_bad_input_and_death_harm_nothing, 2189)",
            STREAM_CONTEXT,
            || c::record(n, s0),
        );
        t.row(
            "importer thread: wait(n, s0 of device 0) under device 1 \
             (r14_peer_bad_input_and_death_harm_nothing, 2190)",
            STREAM_CONTEXT,
            || c::wait(n, s0, 1),
        );
        t
    });
    t.merge(other.join().expect("the thread's rows ran"));

    // --- no context ------------------------------------------------------------------------------
    t.ok("importer: reset device 0", || c::reset_device(0));
    t.row(
        "importer: wait without a context (r15_order_of_checks_across_processes, 2331)",
        CONTEXT_NULL,
        || c::wait(n, s0, 1),
    );
    t.row(
        "importer: record without a context (r15_order_of_checks_across_processes, 2332)",
        CONTEXT_NULL,
        || c::record(n, s0),
    );
    t.row(
        "importer: import n without a context: the context before \"already held\" \
         (r15_order_of_checks_across_processes, 2333)",
        CONTEXT_NULL,
        || c::import(&mut spare, &kn, 0),
    );
    // aclFinalize releases the imports and streams.
    t.ok("importer: aclFinalize", c::finalize);
    link.send("done");
    assert_eq!(link.recv(), "bye");
    t.finish("importer");
}
