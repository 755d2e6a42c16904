//! The Ascend IPC Notify API: one set of traits, two backends.
//!
//! This crate holds what every backend shares and nothing that touches the OS: the `aclError`
//! table ([`AclError`], [`Error`]), the CANN flag values ([`NotifyFlags`], [`ExportFlags`],
//! [`ImportFlags`]), validated export keys ([`ExportKey`]), id newtypes, and the traits
//! [`Backend`], [`Stream`] and [`Notify`]. The behaviour they promise is the contract in
//! `SEMANTICS.md`; every method cites its rules (R1–R15) in a `# Behavior` section, and the
//! `conformance` feature publishes one test function per rule that any backend can run.
//!
//! # Why associated types, not trait objects
//! A backend is chosen once per process and every handle it hands out belongs to it: a notify of
//! the simulator can never be recorded on a stream of the real runtime. With associated types
//! (the wgpu-hal `Api` pattern) that is a type error instead of a run-time check, generic code
//! pays no dynamic dispatch on the record/wait hot path, and each backend keeps its own handle
//! representation (a shared-memory slot, a raw `aclrtNotify`). The facade crate `ascend-notify`
//! still lets a program pick the backend at run time: it implements the same traits once more
//! over an enum of the two backends, so user code is written once against [`Backend`].
//!
//! Only [`Stream::synchronize_async`] uses `async-trait`, so that the future is nameable and the
//! trait stays usable behind `dyn` where a user needs that.
//!
//! # Flow
//! Process A (device 0): [`Backend::create_notify`] → [`Notify::export`] →
//! [`Notify::set_import_pids`] with B's bare tgid → [`Notify::wait_and_reset`] → drop.
//! Process B (device 1): [`Backend::bare_tgid`] → [`Backend::import_notify`] →
//! [`Notify::record`] → drop. The notify is released when both have dropped it (R8).

#![forbid(unsafe_code)]

mod backend;
mod error;
mod flags;
mod key;
mod types;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use backend::{Backend, BackendKind, Notify, Stream};
pub use error::{AclError, Error, Result};
pub use flags::{ExportFlags, ImportFlags, NotifyFlags};
pub use key::{EXPORT_KEY_LEN, EXPORT_KEY_MAX_CHARS, ExportKey};
pub use types::{DeviceId, NotifyId, Pid};

/// The most pids one whitelist holds (R6, a simulator bound).
pub const WHITELIST_MAX: usize = 64;

/// The default number of live notifies per device (R11, CANN A2/A3).
pub const DEFAULT_CAPACITY: u32 = 8192;
