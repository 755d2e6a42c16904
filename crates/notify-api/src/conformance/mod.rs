//! The backend-generic conformance suite: one public function per rule of `SEMANTICS.md` §3,
//! §5 and §6 (or several), run against every backend.
//!
//! Like object_store's shared integration tests, each check takes a runtime, drives it, and
//! panics (via `assert!`) when a code or an effect differs from the contract. Checks are generic
//! over the backend marker and take its runtime: `conformance::r1_records_merge::<Sim>(&rt)`.
//! Each check gets the devices it needs itself (`rt.device(DeviceId(n))`), destroys every notify
//! and stream it made, and leaves the runtime as it found it.
//!
//! # The list and the capabilities
//! [`for_each_check!`](crate::for_each_check) is the one list of checks: each entry names the
//! check, whether it needs a second process ([`Kind`]) and the [`Capability`]s it needs.
//! [`checks`] builds the same list as values ([`Check`]), and [`Check::skip_reason`] says why a
//! check cannot run with the capabilities a caller has, so that a backend (or the real CANN)
//! runs exactly what it supports and every skipped check says why (the OpenDAL pattern).
//!
//! A backend's test file generates one `#[test]` per entry and runs it through one function:
//!
//! ```ignore
//! // tests/conformance.rs of a backend `Sim`, with its own `ScopedNamespace` and `RoleSpawner`
//! // (the ipc-channel pattern: peers re-execute this test binary and run `child` below).
//! use notify_api::conformance::{self, Capability};
//!
//! /// What this backend can do: everything the simulator supports.
//! const HAVE: &[Capability] = &[
//!     Capability::MultiProcess,
//!     Capability::Virtualized,
//!     Capability::ProcessDeath,
//!     Capability::StartTimeHook,
//!     Capability::Memory,
//!     Capability::StreamTasks,
//!     Capability::ServedHazards,
//!     Capability::StrictHazards,
//! ];
//!
//! fn run(name: &str) {
//!     let check = conformance::check::<Sim>(name).expect("a listed check");
//!     if let Some(why) = check.skip_reason(HAVE) {
//!         println!("skipped: {why}");
//!         return;
//!     }
//!     let ns = ScopedNamespace::new(name);
//!     // R12: the check that needs it gets a runtime configured as a virtualization instance,
//!     // every other check a plain one.
//!     // M1: a small device memory (see "Device memory" below).
//!     let rt = attach(&ns, check.needs(Capability::Virtualized), 1 << 30 | 64 << 20);
//!     check.run(&rt, &RoleSpawner::new("child", &ns));
//! }
//!
//! macro_rules! conformance_tests {
//!     ($($name:ident : $kind:ident [$($cap:ident),*]),* $(,)?) => {
//!         $( #[test] fn $name() { run(stringify!($name)); } )*
//!     };
//! }
//! notify_api::for_each_check!(conformance_tests);
//!
//! /// The entry point of spawned peers (see [`Spawner`]).
//! #[test]
//! #[ignore = "entry point of spawned child processes"]
//! fn child() {
//!     let Some(role) = child_role() else { return };
//!     let rt = attach_from_env(); // the parent's namespace, from the environment
//!     conformance::run_role::<Sim>(&rt, &role, &mut StdioLink);
//! }
//! ```
//!
//! `crates/notify-api/tests/conformance_model.rs` runs the whole list this way against an
//! in-memory model of the contract (with threads for peers), so the suite is exercised even
//! where no backend builds.
//!
//! # Processes
//! Checks that need a second process take a [`Spawner`] that the caller provides: the spawned
//! process attaches to the same backend configuration (same simulator namespace, same library)
//! and calls [`run_role`] with the role name it was given ([`ROLE_REMOTE`] or [`ROLE_IMPORTER`]).
//! The two sides talk over a line protocol ([`Peer`] on the parent side, [`PeerLink`] on the
//! child side; the commands are documented at [`ROLE_REMOTE`]), so the suite itself makes no
//! OS call.
//!
//! Each check expects a fresh runtime with at least 2 devices and a capacity of at least 16
//! notifies per device, configured as a virtualization instance exactly when the check needs
//! [`Capability::Virtualized`]. Peers are plain processes (never virtualization instances, never
//! in strict mode) unless a check starts one with the variable of its capability
//! ([`ENV_START_OFFSET`], [`ENV_STRICT`]).
//!
//! # Device memory
//! The checks of §5 and §6 ([`Capability::Memory`], [`Capability::StreamTasks`]) live in
//! `memory.rs` and `tasks.rs`; their functions are listed here beside the notify checks. Those
//! that need [`Capability::Memory`] expect every device to have **at least 16 MiB** of memory
//! free at the start of the check, and nothing else allocating on devices 0 and 1 while it
//! runs (they compare `mem_info().free` before and after). There is no upper bound: the checks
//! that fill a device do it in eighths of its total, never byte by byte. The 1 GiB page of
//! `HUGE1G_ONLY` is checked for alignment when at least 1 GiB is free, and must fail with
//! 207001 otherwise. The simulator's runner configures 1 GiB + 64 MiB per device
//! (`ASCEND_NOTIFY_SIM_DEVICE_MEMORY`, sparse), so that every branch runs and filling a device
//! stays cheap.
//!
//! The hazards of M6 (freeing memory, or closing its export, while another process imports it)
//! are unsupported on CANN ("否则可能导致异常"): the checks that rely on the simulator serving
//! them need [`Capability::ServedHazards`], and those of its strict mode
//! [`Capability::StrictHazards`]. Every other memory check keeps to the supported order:
//! importers close before the exporter closes and frees.
//!
//! # What the typed API cannot express
//! Some clauses of the contract concern C arguments or C state that the typed API makes
//! impossible by construction: NULL pointers (100000), unknown flag bits, `len < 65` for the key
//! buffer, `num == 0` and `num > 1` pids per set-pid call (R6), `flags != 0` for peer access,
//! handles that are destroyed, stale or foreign (107017, R8/R10, because `destroy` consumes the
//! handle), `aclInit`/`aclFinalize` (100001/100002), and the per-thread current context of R13
//! (107002 "no current context", 107003 "stream of another context", `aclrtSetDevice` and
//! `aclrtResetDevice` of a bad id). Flag bits and key buffers are checked by
//! [`crate::ExportFlags::from_raw`] and friends and [`crate::ExportKey::write_c_buf`], whose unit
//! tests live beside them; the rest is tested at the C ABI by `ascendcl-sim`
//! (`tests/bad_inputs.rs`, and `tests/contexts.rs` for the assertions this suite held before
//! devices became values). A key "from another namespace" (R7) needs a second namespace and is
//! left to the simulator's own tests.
//!
//! Of §5 and §6 the same holds for: NULL pointers (100000) of every memory, event, context and
//! host-function call; 107002 without a current device (`aclrtMalloc`, the export, the import);
//! an unknown `aclrtMemMallocPolicy`, `aclrtMemcpyKind` or `aclrtMemAttr`, and a kind that
//! contradicts where the pointers are (M2); `memset`'s `int32_t` value converted to a byte; a host
//! pointer passed where a device pointer is expected and the fault of a host load or store
//! through a device pointer (M1); `aclrtFree` of an address that is not the start of a live
//! allocation, of a freed one twice, and of an imported address (M1, M6: the typed `free`
//! consumes its buffer, and an import has none); `aclrtMallocHost`/`aclrtFreeHost`; export
//! `len < 65` and flags outside {0x0, 0x1}, import flags outside {0x0, 0x1} (M3, M5); a
//! set-import-pid call with a malformed, unknown or closed key, or outside the exporting process
//! (M4: a typed export is the exporter's own and closing consumes it), and in a virtualization
//! instance (R12); event flag bits outside SYNC | CAPTURE_STREAM_PROGRESS | TIME_LINE and
//! `ACL_EVENT_IPC` (E1); a host function's C calls finding its stream's context current, and a
//! host function synchronizing its own stream through `aclrtSynchronizeStream` (H1: the typed
//! closure does it through an `Arc` of the stream); `aclrtSetCurrentContext`,
//! `aclrtGetCurrentContext`, `aclrtDestroyContext` (C1), enqueueing under another context than
//! the handle's (107003); `aclrtDestroyStreamForce`, `aclrtResetDeviceForce` and
//! `aclrtGetRunMode` (S1). What the simulator alone can observe (hazards counted for the
//! inspector, no byte of a killed process's memory left in `/dev/shm`) is left to its own tests.

mod memory;
mod roles;
mod rules;
mod support;
mod tasks;

pub use memory::*;
pub use roles::{ROLE_IMPORTER, ROLE_REMOTE, run_role};
pub use rules::*;
pub use tasks::*;

use std::fmt;

use crate::{AclError, Backend, Pid, Result};

/// The environment variable of the simulator's hidden start-time hook (R7's pid-reuse guard):
/// a process started with it set to `N` counts as started `N` seconds later than it really was.
/// Checks that need [`Capability::StartTimeHook`] pass it to a peer with
/// [`Spawner::spawn_with_env`].
pub const ENV_START_OFFSET: &str = "ASCEND_NOTIFY_SIM_START_OFFSET_S";

/// The environment variable of the simulator's strict mode (§4, M6): a process started with it
/// set to `1` refuses the hazards of M6 (507899, nothing changes). Checks that need
/// [`Capability::StrictHazards`] pass it to a peer with [`Spawner::spawn_with_env`].
pub const ENV_STRICT: &str = "ASCEND_NOTIFY_SIM_STRICT";

/// The simulator's bare-tgid mode variable and the value that makes a process's bare tgid differ
/// from its OS pid (R16). Memory whitelist checks start their importers with it: a backend that
/// ignores it loses nothing, and on the simulator a whitelist of OS pids instead of bare tgids
/// then fails as it would in a container.
pub const ENV_BARE_TGID_REMAP: (&str, &str) = ("ASCEND_NOTIFY_SIM_BARE_TGID", "remap");

/// The parent's end of a spawned peer process.
pub trait Peer {
    /// The peer's OS pid.
    fn pid(&self) -> Pid;
    /// Sends one line (no `\n` inside) to the peer.
    fn send(&mut self, line: &str);
    /// Receives the next line from the peer; panics (with the peer's stderr) if it exited.
    fn recv(&mut self) -> String;
    /// Waits for the peer to exit and returns its exit code (`-1` when killed by a signal).
    fn wait(self: Box<Self>) -> i32;
}

/// Starts peer processes for multi-process checks.
pub trait Spawner {
    /// Starts a new process that attaches to the same backend configuration and runs
    /// [`run_role`] with `role`, with `env` added to (or replacing) its environment variables.
    fn spawn_with_env(&self, role: &str, env: &[(&str, &str)]) -> Box<dyn Peer>;

    /// [`Spawner::spawn_with_env`] with no extra variables.
    fn spawn(&self, role: &str) -> Box<dyn Peer> {
        self.spawn_with_env(role, &[])
    }
}

/// The child's end of the line protocol.
pub trait PeerLink {
    /// Sends one line to the parent.
    fn send(&mut self, line: &str);
    /// Receives the next line from the parent; panics if the parent went away.
    fn recv(&mut self) -> String;
}

/// What a check needs beyond one plain runtime with 2 devices.
#[non_exhaustive]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    /// Real peer processes from a [`Spawner`] that attach to the same backend configuration.
    MultiProcess,
    /// A runtime configured as a virtualization instance (R12). A check that needs it must be
    /// given such a runtime, and every other check a plain one.
    Virtualized,
    /// A peer may die abruptly (the `abort` command: no destructor runs) and the backend
    /// reclaims what it held (R9).
    ProcessDeath,
    /// The backend honours [`ENV_START_OFFSET`] in a spawned peer, so that R7's guard against a
    /// reused pid (an importer that started after its whitelist entry was set) can be tested.
    StartTimeHook,
    /// Device memory and IPC memory (§5, M1–M6): allocations, copies and sets, exports, imports
    /// and their lifetime. A check that needs it expects the device memory described in the
    /// module docs ("Device memory").
    Memory,
    /// Host functions, events, created contexts, stream queries and device synchronization
    /// (§6: H1, E1, C1, S1).
    StreamTasks,
    /// The hazards of M6 are served, as the simulator serves them without
    /// `ASCEND_NOTIFY_SIM_STRICT`: memory freed, or an export closed, while another process
    /// imports it stays valid for the importers (sim: CANN documents both as unsupported).
    ServedHazards,
    /// The backend honours [`ENV_STRICT`] in a spawned peer: that peer's hazards of M6 fail
    /// with 507899 and change nothing (the simulator's strict mode).
    StrictHazards,
}

impl Capability {
    /// Every capability.
    pub const ALL: &'static [Capability] = &[
        Capability::MultiProcess,
        Capability::Virtualized,
        Capability::ProcessDeath,
        Capability::StartTimeHook,
        Capability::Memory,
        Capability::StreamTasks,
        Capability::ServedHazards,
        Capability::StrictHazards,
    ];

    /// What having the capability means, for skip messages.
    pub const fn meaning(self) -> &'static str {
        match self {
            Capability::MultiProcess => "a second process that attaches to the same backend",
            Capability::Virtualized => "a runtime configured as a virtualization instance (R12)",
            Capability::ProcessDeath => {
                "a peer that aborts without running destructors, reclaimed by the backend (R9)"
            }
            Capability::StartTimeHook => {
                "the simulator's start-time hook ASCEND_NOTIFY_SIM_START_OFFSET_S (R7)"
            }
            Capability::Memory => "device memory and IPC memory (M1-M6)",
            Capability::StreamTasks => {
                "host functions, events, created contexts, stream and device calls (H1, E1, C1, S1)"
            }
            Capability::ServedHazards => {
                "the M6 hazards served: memory freed or closed by its exporter while imported \
                 stays valid for the importers (sim)"
            }
            Capability::StrictHazards => {
                "the simulator's strict mode ASCEND_NOTIFY_SIM_STRICT=1 in a spawned peer (M6)"
            }
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Whether a check runs in one process or needs peers.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// One process: a [`SingleCheck`].
    Single,
    /// Peers from a [`Spawner`]: a [`MultiCheck`].
    Multi,
}

/// A check that needs one process.
pub type SingleCheck<B> = fn(&<B as Backend>::Runtime);
/// A check that needs peer processes.
pub type MultiCheck<B> = fn(&<B as Backend>::Runtime, &dyn Spawner);

/// The function of a [`Check`].
pub enum CheckFn<B: Backend> {
    /// A one-process check.
    Single(SingleCheck<B>),
    /// A check with peers.
    Multi(MultiCheck<B>),
}

impl<B: Backend> Clone for CheckFn<B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B: Backend> Copy for CheckFn<B> {}

/// One entry of the suite: its name, what it needs, and its function.
pub struct Check<B: Backend> {
    /// The function's name (`"r1_records_merge"`).
    pub name: &'static str,
    /// Every capability it needs (a [`Kind::Multi`] check always needs
    /// [`Capability::MultiProcess`]).
    pub needs: &'static [Capability],
    /// The check itself.
    pub run: CheckFn<B>,
}

impl<B: Backend> Clone for Check<B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B: Backend> Copy for Check<B> {}

impl<B: Backend> fmt::Debug for Check<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Check")
            .field("name", &self.name)
            .field("kind", &self.kind())
            .field("needs", &self.needs)
            .finish()
    }
}

impl<B: Backend> fmt::Debug for CheckFn<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CheckFn::Single(_) => "Single(..)",
            CheckFn::Multi(_) => "Multi(..)",
        })
    }
}

impl<B: Backend> Check<B> {
    /// One process or several.
    pub fn kind(&self) -> Kind {
        match self.run {
            CheckFn::Single(_) => Kind::Single,
            CheckFn::Multi(_) => Kind::Multi,
        }
    }

    /// Whether the check needs `cap`.
    pub fn needs(&self, cap: Capability) -> bool {
        self.needs.contains(&cap)
    }

    /// The capabilities it needs that `have` lacks.
    pub fn missing(&self, have: &[Capability]) -> Vec<Capability> {
        self.needs
            .iter()
            .copied()
            .filter(|c| !have.contains(c))
            .collect()
    }

    /// Why the check cannot run with `have`, or `None` when it can.
    pub fn skip_reason(&self, have: &[Capability]) -> Option<String> {
        let missing = self.missing(have);
        if missing.is_empty() {
            return None;
        }
        let what: Vec<String> = missing
            .iter()
            .map(|c| format!("{c} ({})", c.meaning()))
            .collect();
        Some(format!("{} needs {}", self.name, what.join(", ")))
    }

    /// Runs the check; a [`Kind::Single`] check ignores `spawner`.
    pub fn run(&self, rt: &B::Runtime, spawner: &dyn Spawner) {
        match self.run {
            CheckFn::Single(f) => f(rt),
            CheckFn::Multi(f) => f(rt, spawner),
        }
    }
}

/// Every check of the suite, in the order of [`for_each_check!`](crate::for_each_check).
pub fn checks<B: Backend>() -> Vec<Check<B>> {
    macro_rules! to_checks {
        ($($name:ident : $kind:ident [$($cap:ident),*]),* $(,)?) => {
            vec![$(Check {
                name: stringify!($name),
                needs: &[$(Capability::$cap),*],
                run: CheckFn::$kind($name::<B>),
            }),*]
        };
    }
    crate::for_each_check!(to_checks)
}

/// The check called `name`, if there is one.
pub fn check<B: Backend>(name: &str) -> Option<Check<B>> {
    checks::<B>().into_iter().find(|c| c.name == name)
}

/// Every one-process check that needs no capability, with its name: what any backend runs.
pub fn single_checks<B: Backend>() -> Vec<(&'static str, SingleCheck<B>)> {
    checks::<B>()
        .into_iter()
        .filter_map(|c| match c.run {
            CheckFn::Single(f) if c.needs.is_empty() => Some((c.name, f)),
            _ => None,
        })
        .collect()
}

/// Every check with peers whose capabilities are all in `have` (which should hold
/// [`Capability::MultiProcess`]), with its name.
pub fn multi_checks<B: Backend>(have: &[Capability]) -> Vec<(&'static str, MultiCheck<B>)> {
    checks::<B>()
        .into_iter()
        .filter_map(|c| match c.run {
            CheckFn::Multi(f) if c.missing(have).is_empty() => Some((c.name, f)),
            _ => None,
        })
        .collect()
}

/// Asserts that `result` failed with `code` and a non-empty reason; when the backend names the
/// refusing rule, the reason must start with it (`SEMANTICS.md` §2: `"R7: ..."`).
#[track_caller]
pub fn assert_code<T>(result: Result<T>, code: AclError, what: &str) {
    match result {
        Ok(_) => panic!("{what}: expected {code}, got success"),
        Err(e) => {
            assert_eq!(e.code(), code, "{what}: wrong code, reason: {}", e.reason());
            assert!(!e.reason().is_empty(), "{what}: empty reason text");
            if let Some(rule) = e.rule_of() {
                assert!(
                    e.reason().starts_with(&format!("{rule}:")),
                    "{what}: the reason does not start with its rule {rule}: {}",
                    e.reason()
                );
            }
        }
    }
}

/// Unwraps `result` with a message that names the step.
#[track_caller]
pub fn ok<T>(result: Result<T>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected error {e}"),
    }
}

#[cfg(test)]
mod tests;
