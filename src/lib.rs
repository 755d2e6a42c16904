//! Typed inter-process Notify synchronisation for Huawei Ascend NPUs, with a shared-memory
//! simulator.
//!
//! A notify is a binary flag that one process records and another waits on, on device streams
//! (the Ascend IPC Notify API: `aclrtCreateNotify`, `aclrtNotifyGetExportKey`,
//! `aclrtNotifyImportByKey`, ...). This crate is the facade: it re-exports the API of
//! `notify-api` (the traits [`Backend`], [`Stream`], [`Notify`], flags, keys and the
//! [`AclError`] table) and adds [`Runtime`], which implements those traits over the backend
//! chosen at run time.
//!
//! # Backends and features
//! - `sim` (default): the shared-memory simulator, `backend-sim`: real processes, any Linux
//!   machine, no NPU. Re-exported as [`backend_sim`].
//! - `ascend`: the vendor runtime, `libascendcl.so`, loaded at run time (no link-time
//!   dependency, so this builds without CANN). Re-exported as [`backend_ascend`].
//! - `testing`: the simulator's test kit (scoped namespaces, child-process roles, proptest
//!   strategies) as [`testing`]. Implies `sim`.
//!
//! The features are additive. With both backends compiled in, [`RuntimeBuilder::build`] picks
//! one: the backend named with [`RuntimeBuilder::backend`], else the one `ASCEND_NOTIFY_BACKEND`
//! names (`sim` or `ascend`), else the first that works: `ascend` when `libascendcl.so` loads,
//! otherwise `sim`. `--no-default-features --features ascend` builds without the simulator.
//! Asking for a backend that is not compiled in is `RT_FEATURE_NOT_SUPPORT` (207000).
//!
//! Code that knows its backend can use it directly (`backend_sim::SimBackend`,
//! `backend_ascend::AscendBackend`) and pay no dispatch at all; [`Runtime`] costs one `match` per
//! call. Handles of different backends never mix: recording a simulator notify on an Ascend
//! stream is `RT_INVALID_HANDLE` (107017), never a panic.
//!
//! The behaviour of every call is the contract in `SEMANTICS.md`, cited rule by rule (R1–R15)
//! in the `# Behavior` sections of the trait methods.
//!
//! # Example
//! Process A creates a notify, exports it for process B, and waits for B's record:
//! ```no_run
//! use ascend_notify::{Backend, DeviceId, ExportFlags, Notify, NotifyFlags, Pid, Runtime, Stream};
//!
//! # fn main() -> ascend_notify::Result<()> {
//! let rt = Runtime::builder().namespace("demo").build()?;
//! rt.set_device(DeviceId(0))?;
//! let stream = rt.create_stream()?;
//! let notify = rt.create_notify(NotifyFlags::DEFAULT)?;
//! let key = notify.export(ExportFlags::DEFAULT)?;
//! notify.set_import_pids(&[Pid(4242)])?; // B's `rt.bare_tgid()`
//! println!("import this in process B: {key}");
//!
//! // In B: rt.import_notify(&key, ImportFlags::DEFAULT)?.record(&b_stream)?;
//! notify.wait_and_reset(&stream, 30)?; // seconds; 0 waits forever
//! stream.synchronize()?; // reports an expired wait as RT_WAIT_TIMEOUT
//! # Ok(())
//! # }
//! ```

mod builder;
mod runtime;

pub use builder::{BACKEND_ENV, RuntimeBuilder};
pub use runtime::{Runtime, RuntimeNotify, RuntimeStream};

pub use notify_api;
pub use notify_api::{
    AclError, Backend, BackendKind, DEFAULT_CAPACITY, DeviceId, EXPORT_KEY_LEN,
    EXPORT_KEY_MAX_CHARS, Error, ExportFlags, ExportKey, ImportFlags, Notify, NotifyFlags,
    NotifyId, Pid, Result, Stream, WHITELIST_MAX, err,
};

#[cfg(feature = "ascend")]
pub use backend_ascend;
#[cfg(feature = "sim")]
pub use backend_sim;

/// The simulator's test kit: scoped namespaces, child-process roles, proptest strategies.
#[cfg(feature = "testing")]
pub use backend_sim::testing;
