//! A kit for testing multi-process code against the simulator (feature `testing`).
//!
//! - [`ScopedNamespace`]: a namespace of one's own that is removed on drop, so tests never leak
//!   shared-memory segments and never see each other's notifies.
//! - [`RoleSpawner`]: runs a named *role* in a child process by re-executing the current test
//!   binary (the ipc-channel pattern). The child is a real process with its own pid, file locks
//!   and mappings; threads cannot stand in for that. Its role entry point is an `#[ignore]`d test
//!   that calls [`child_role`].
//! - [`strategies`]: proptest strategies for keys, flags and pids.
//!
//! ```no_run
//! use backend_sim::testing::{ScopedNamespace, RoleSpawner, child_role};
//!
//! #[test]
//! #[ignore = "entry point of spawned child processes"]
//! fn child() {
//!     if let Some(role) = child_role() {
//!         // match on `role`, attach with SimRuntime::from_env(), do the work...
//!         println!("{role}: all passed");
//!     }
//! }
//!
//! #[test]
//! fn two_processes() {
//!     let ns = ScopedNamespace::new("two-proc");
//!     RoleSpawner::new("child", &ns)
//!         .run("importer")
//!         .assert_passed("the importer role", "importer: all passed");
//! }
//! ```

use std::sync::atomic::{AtomicU32, Ordering};

use notify_api::Pid;
use notify_api::conformance::{Peer, PeerLink, Spawner};

use crate::{ENV_CAPACITY, ENV_DEVICES, ENV_NAMESPACE, SimBuilder, remove_namespace};

pub use crate::namespace_files;
pub use crate::role::{ENV_ROLE, RoleOutput, RoleProcess, RoleSpawner, StdioLink, child_role};

/// A namespace unique to this test and process, removed (segment and lock files) on drop.
#[derive(Debug)]
pub struct ScopedNamespace {
    name: String,
    devices: u32,
    capacity: u32,
}

impl ScopedNamespace {
    /// A fresh namespace whose name starts with `label` (sanitised), with 4 devices and 64 notifies
    /// per device, small enough that capacity tests are cheap.
    pub fn new(label: &str) -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let label: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .take(32)
            .collect();
        let name = format!(
            "t-{label}-{}-{}-{:04x}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            crate::random_u64().unwrap_or(0) & 0xffff
        );
        Self {
            name,
            devices: 4,
            capacity: 64,
        }
    }

    /// Sets the devices and capacity used if this process creates the namespace.
    pub fn with_size(mut self, devices: u32, capacity: u32) -> Self {
        self.devices = devices;
        self.capacity = capacity;
        self
    }

    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A builder attached to this namespace.
    pub fn builder(&self) -> SimBuilder {
        SimBuilder::default()
            .namespace(&self.name)
            .devices(self.devices)
            .capacity(self.capacity)
    }

    /// The variables a child process needs to attach to the same namespace.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (ENV_NAMESPACE.into(), self.name.clone()),
            (ENV_DEVICES.into(), self.devices.to_string()),
            (ENV_CAPACITY.into(), self.capacity.to_string()),
        ]
    }
}

impl Drop for ScopedNamespace {
    fn drop(&mut self) {
        let _ = remove_namespace(&self.name);
    }
}

impl RoleSpawner {
    /// Children run the test named `entry` (its full path, e.g. `"child"` or `"roles::child"`)
    /// attached to `ns`.
    pub fn new(entry: &str, ns: &ScopedNamespace) -> Self {
        let mut spawner = Self::inherit(entry);
        spawner.env = ns.env();
        spawner
    }
}

impl Spawner for RoleSpawner {
    fn spawn_with_env(&self, role: &str, env: &[(&str, &str)]) -> Box<dyn Peer> {
        Box::new(self.with_env(env).start(role))
    }
}

impl Peer for RoleProcess {
    fn pid(&self) -> Pid {
        RoleProcess::pid(self)
    }

    fn send(&mut self, line: &str) {
        RoleProcess::send(self, line);
    }

    fn recv(&mut self) -> String {
        RoleProcess::recv(self)
    }

    fn wait(self: Box<Self>) -> i32 {
        (*self).wait_code()
    }
}

impl PeerLink for StdioLink {
    fn send(&mut self, line: &str) {
        StdioLink::send(self, line);
    }

    fn recv(&mut self) -> String {
        StdioLink::recv(self)
    }
}

/// Reads simulated device memory from a test, bypassing every rule of the runtime (imported
/// memory included): the test kit's window on what a program wrote. Never use it in production
/// code: on an NPU there is no such thing.
///
/// # Errors
/// `RT_PARAM_INVALID` (107000) when `range` is not inside one live allocation or import of this
/// process.
pub fn read_device(
    rt: &crate::SimRuntime,
    range: notify_api::DeviceRange<'_>,
) -> notify_api::Result<Vec<u8>> {
    let (region, off) = rt
        .session()
        .space()
        .resolve(range.addr() as usize, range.len())?;
    let mut out = vec![0u8; range.len()];
    let place = crate::memory::Place::Device(region, off);
    let host = crate::memory::Place::Host(out.as_mut_ptr().addr());
    // SAFETY: `out` is a live, exclusive buffer of `range.len()` bytes for the call, and the
    // device place was resolved for that length.
    unsafe { crate::memory::copy(&host, &place, range.len()) };
    Ok(out)
}

/// Writes simulated device memory from a test, bypassing every rule of the runtime: the test
/// kit's way to set up what a program reads. See [`read_device`].
///
/// # Errors
/// As [`read_device`]; `RT_PARAM_INVALID` when `bytes` is longer than `range`.
pub fn write_device(
    rt: &crate::SimRuntime,
    range: notify_api::DeviceRange<'_>,
    bytes: &[u8],
) -> notify_api::Result<()> {
    if bytes.len() > range.len() {
        return Err(notify_api::err!(
            M2: RT_PARAM_INVALID,
            "{} bytes do not fit a range of {}",
            bytes.len(),
            range.len()
        ));
    }
    let (region, off) = rt
        .session()
        .space()
        .resolve(range.addr() as usize, bytes.len())?;
    let place = crate::memory::Place::Device(region, off);
    let host = crate::memory::Place::Host(bytes.as_ptr().addr());
    // SAFETY: `bytes` is a live buffer of its length for the call; the device place was
    // resolved for that length.
    unsafe { crate::memory::copy(&place, &host, bytes.len()) };
    Ok(())
}

/// proptest strategies for the API's inputs.
pub mod strategies {
    use notify_api::{ExportKey, Pid};
    use proptest::prelude::*;

    /// Valid export keys: 1..=64 printable ASCII characters.
    pub fn export_key() -> impl Strategy<Value = ExportKey> {
        "[ -~]{1,64}".prop_map(|s| ExportKey::new(s).expect("the regex only makes valid keys"))
    }

    /// Arbitrary byte strings, mostly invalid as keys.
    pub fn key_bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..80)
    }

    /// Raw export or import flag bits: the valid values and anything else.
    pub fn raw_ipc_flags() -> impl Strategy<Value = u64> {
        prop_oneof![Just(0x0u64), Just(0x2u64), any::<u64>()]
    }

    /// Raw create flag bits: the valid values and anything else.
    pub fn raw_create_flags() -> impl Strategy<Value = u64> {
        prop_oneof![Just(0x0u64), Just(0x1u64), any::<u64>()]
    }

    /// Plausible pids (positive).
    pub fn pid() -> impl Strategy<Value = Pid> {
        (1..=4_194_304i32).prop_map(Pid)
    }

    /// Pid lists of 0..=20 entries, to cross the whitelist bound of 15 (R6).
    pub fn pids() -> impl Strategy<Value = Vec<Pid>> {
        proptest::collection::vec(pid(), 0..=20)
    }
}
