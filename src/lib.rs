//! Typed inter-process Notify synchronisation for Huawei Ascend NPUs, with a shared-memory
//! simulator.
//!
//! A notify is a binary flag that one process records and another waits on, on device streams
//! (the Ascend IPC Notify API: `aclrtCreateNotify`, `aclrtNotifyGetExportKey`,
//! `aclrtNotifyImportByKey`, ...). This crate is the facade: [`Runtime`] and its handles run on
//! the backend chosen at run time, and everything of `notify-api` (flags, keys, errors, the
//! traits) is re-exported.
//!
//! # The main path
//! A [`Device`] is a value: every stream and notify is made from one and keeps it alive, and
//! every operation binds its device to the calling thread itself, so any handle works from any
//! thread with no set-up call. Queue verbs live on the stream.
//!
//! ```no_run
//! use ascend_notify::{BackendKind, DeviceId, ExportFlags, NotifyFlags, Pid, Runtime, Timeout};
//!
//! # fn main() -> ascend_notify::Result<()> {
//! let rt = Runtime::builder().backend(BackendKind::Sim).namespace("demo").build()?;
//! let device = rt.device(DeviceId(0))?;
//! let stream = device.create_stream()?;
//! let notify = device.create_notify(NotifyFlags::DEFAULT)?;
//! let key = notify.export(ExportFlags::DEFAULT)?;
//! notify.set_import_pid(Pid(4242))?; // B's `rt.bare_tgid()`, never its getpid()
//! println!("import this in process B: {key}");
//!
//! // In B: let n = device.import_notify(&key, ImportFlags::DEFAULT)?; stream.record(&n)?;
//! stream.wait(&notify, Timeout::secs(30))?;
//! stream.synchronize()?; // reports an expired wait as RT_WAIT_TIMEOUT
//! # Ok(())
//! # }
//! ```
//!
//! # Backends and features
//! - `sim` (default): the shared-memory simulator, `backend-sim`: real processes, any Linux
//!   machine, no NPU. Re-exported as [`backend_sim`].
//! - `ascend`: the vendor runtime, `libascendcl.so` (or `libacl_rt.so`), loaded at run time (no
//!   link-time dependency, so this builds without CANN). Re-exported as [`backend_ascend`].
//! - `testing`: the simulator's test kit (scoped namespaces, child-process roles, proptest
//!   strategies) as [`testing`]. Implies `sim`.
//!
//! The features are additive; [`RuntimeBuilder`] documents how the backend is chosen (no silent
//! fallback to the simulator). Code that knows its backend can use its types directly
//! (`backend_sim::Sim`, `backend_ascend::Ascend`, through the `notify-api` traits) and pay no
//! dynamic dispatch; [`Runtime`] and its handles cost one virtual call per operation. Handles of
//! different backends never mix: recording a simulator notify on an Ascend stream is
//! `RT_INVALID_HANDLE` (107017), never a panic. [`Dyn`] is this facade as a
//! [`Backend`](notify_api::Backend), for generic code.
//!
//! The behaviour of every call is the contract in [`notify_api::spec`], cited rule by rule
//! (R1–R17) in the `# Behavior` sections of the trait methods.

#[cfg(not(any(feature = "sim", feature = "ascend")))]
compile_error!(
    "ascend-notify needs a backend: enable the cargo feature `sim` (the simulator, the default) \
     or `ascend` (the vendor runtime, libascendcl.so), or both"
);

mod builder;
mod erased;
mod handles;

pub use builder::{BACKEND_ENV, RuntimeBuilder};
pub use handles::{Buffer, Device, Dyn, Event, MemExport, MemImport, Notify, Runtime, Stream};

pub use notify_api;
pub use notify_api::{
    AclError, AclFailure, BackendKind, ConfigError, DEFAULT_CAPACITY, DeviceId, DeviceRange,
    Download, EXPORT_KEY_LEN, EXPORT_KEY_MAX_CHARS, Error, EventFlags, ExportFlags, ExportKey,
    ImportFlags, LoadError, MallocPolicy, MemExportFlags, MemImportFlags, MemInfo, NotifyFlags,
    NotifyId, OsError, Pid, Result, Rule, Timeout, WHITELIST_IMPORTERS, err, prelude,
};

#[cfg(feature = "ascend")]
pub use backend_ascend;
#[cfg(feature = "sim")]
pub use backend_sim;

/// The simulator's test kit: scoped namespaces, child-process roles, proptest strategies.
#[cfg(feature = "testing")]
pub use backend_sim::testing;
