//! The shared-memory simulator of the Ascend runtime's IPC Notify.
//!
//! It reproduces the contract of `SEMANTICS.md` ([`notify_api::spec`]) across real OS processes
//! that share nothing but files in `/dev/shm` per namespace, so multi-process NPU
//! synchronisation can be tested on any Linux machine. The pieces:
//!
//! - [`raw`]: every operation once, at the level of the C call's arguments, with every check of
//!   R15 in order. Both APIs stand on it: the typed one below and `ascendcl-sim`'s C ABI;
//! - [`Sim`] and its handles ([`SimRuntime`], [`SimDevice`], [`SimStream`], [`SimNotify`]): the
//!   `notify-api` traits over `raw`;
//! - `registry`: the shared segment, by concern (segment, process table, slots, policy,
//!   reclamation); `wake`: the flag protocol (R1, §4 "Waking"); `stream`: in-order executors
//!   (R2, R3); `fork`: what a forked child may touch (R17);
//! - [`inspect`]: what the inspector reads; [`testing`] (feature `testing`): the test kit.
//!
//! Configuration comes from [`SimBuilder`], else the `ASCEND_NOTIFY_SIM_*` variables.

mod clock;
mod config;
mod event;
mod exit;
mod fork;
pub mod inspect;
mod memory;
pub mod raw;
mod registry;
pub mod role;
mod shm;
mod stream;
pub mod trace;
mod typed;
mod wake;

#[cfg(feature = "testing")]
pub mod testing;

pub use config::{
    DEFAULT_DEVICE_MEMORY, DEFAULT_DEVICES, DEFAULT_PROCESSES, ENV_BARE_TGID, ENV_CAPACITY,
    ENV_DEVICE_MEMORY, ENV_DEVICES, ENV_NAMESPACE, ENV_PROCESSES, ENV_START_OFFSET, ENV_STRICT,
    ENV_VIRTUAL, SimBuilder, default_namespace,
};
pub use inspect::{NotifyInfo, ProcessInfo, Snapshot};
pub use registry::{BareTgidMode, check_namespace};
pub use trace::ENV_TRACE;
pub use typed::{
    Sim, SimBuffer, SimDevice, SimEvent, SimMemExport, SimMemImport, SimNotify, SimRuntime,
    SimStream,
};

use notify_api::{Result, err};

/// Removes a namespace: its segment and every file of it in `/dev/shm`. Processes still
/// attached keep their mapping but no longer share it with newcomers. `Ok(false)` if it did not
/// exist.
///
/// # Errors
/// `Error::Config` (107000) for a bad name; `RT_INTERNAL_ERROR` for an OS failure.
pub fn remove_namespace(namespace: &str) -> Result<bool> {
    check_namespace(namespace)?;
    let existed = shm::unlink_segment(namespace)?;
    let files = shm::remove_namespace_files(namespace);
    Ok(existed || files > 0)
}

/// Whether a namespace's segment exists.
pub fn namespace_exists(namespace: &str) -> bool {
    std::path::Path::new(shm::SHM_DIR)
        .join(shm::segment_name(namespace))
        .exists()
}

/// The files of a namespace in `/dev/shm` (segment, lock files, memory objects), for tests and
/// operators that check nothing is left behind (§4 "Cleanup").
pub fn namespace_files(namespace: &str) -> Vec<String> {
    shm::namespace_files(namespace)
}

pub(crate) fn random_u64() -> Result<u64> {
    getrandom::u64().map_err(|e| err!(RT_INTERNAL_ERROR, "no OS randomness: {e}"))
}
