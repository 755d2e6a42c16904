//! The Ascend IPC Notify API: one set of traits, every backend.
//!
//! This crate holds what every backend shares and nothing that touches the OS: the `aclError`
//! table and the error type ([`AclError`], [`Error`], [`Rule`]), the CANN flag values
//! ([`NotifyFlags`], [`ExportFlags`], [`ImportFlags`]), validated export keys ([`ExportKey`]),
//! wait timeouts ([`Timeout`]), id newtypes, and the traits: a marker [`Backend`] per
//! implementation that names its handle types, and [`Runtime`], [`Device`], [`Stream`],
//! [`Notify`]. The behaviour they promise is the contract of [`spec`] (`SEMANTICS.md`, vendored
//! here so the rules travel with the crate); every method cites its rules in a `# Behavior`
//! section, and the `conformance` feature publishes one check per rule that any backend runs.
//!
//! # Why marker types and associated types
//! A backend is chosen once per process and every handle it hands out belongs to it: a notify of
//! the simulator can never be recorded on a stream of the real runtime. With one marker type per
//! backend that names its handle types (the wgpu-hal `Api` pattern), mixing them is a type error
//! instead of a run-time check, generic code pays no dynamic dispatch on the record/wait hot
//! path, and each backend keeps its own handle representation (a shared-memory slot, a raw
//! `aclrtNotify`). The facade crate `ascend-notify` adds one type-erased backend over these
//! traits for programs that pick their backend at run time.
//!
//! Only [`Stream::synchronize_async`] uses `async-trait`, so that its future is nameable.
//!
//! # Flow
//! Process A (device 0): [`Runtime::device`] → [`Device::create_notify`] → [`Notify::export`] →
//! [`Notify::set_import_pid`] with B's bare tgid → [`Stream::wait`] → drop.
//! Process B (device 1): [`Runtime::bare_tgid`] → [`Device::import_notify`] →
//! [`Stream::record`] → drop. The notify is released when both have dropped it (R8).

#![forbid(unsafe_code)]

mod api;
mod error;
mod flags;
mod key;
mod memory;
mod timeout;
mod types;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use api::{
    Backend, BackendKind, Buffer, Device, Event, MemExport, MemImport, Notify, Runtime, Stream,
};
pub use error::{AclError, AclFailure, ConfigError, Error, LoadError, OsError, Result, Rule};
pub use flags::{ExportFlags, ImportFlags, NotifyFlags};
pub use key::{EXPORT_KEY_LEN, EXPORT_KEY_MAX_CHARS, ExportKey};
pub use memory::{
    DeviceRange, Download, EventFlags, MallocPolicy, MemExportFlags, MemImportFlags, MemInfo,
};
pub use timeout::Timeout;
pub use types::{DeviceId, NotifyId, Pid};

/// The traits, for their methods: `use notify_api::prelude::*;`.
pub mod prelude {
    pub use crate::api::{
        Buffer as _, Device as _, Event as _, MemExport as _, MemImport as _, Notify as _,
        Runtime as _, Stream as _,
    };
}

/// Importer entries a notify's whitelist holds: 16 entries, the creator's being the first
/// (R6, the CANN driver).
pub const WHITELIST_IMPORTERS: usize = 15;

/// The default number of live notifies per device (R11, CANN A2/A3).
pub const DEFAULT_CAPACITY: u32 = 8192;

/// The contract: `SEMANTICS.md`, the C prototypes and values, error codes, the rules R1–R17
/// (notify), M1–M6 (memory), H1, E1, C1, S1 and the simulator's configuration, exactly as the
/// project's tests and both backends follow it. Rule numbers cited anywhere in these docs
/// (`R7`, `M5`) refer to this text.
#[allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]
#[doc = include_str!("../SEMANTICS.md")]
pub mod spec {}

#[cfg(test)]
mod tests {
    /// The vendored contract is the project's: a change to `shared/spec/SEMANTICS.md` must be
    /// copied here (`cp ../shared/spec/SEMANTICS.md crates/notify-api/`), or the docs lie.
    #[test]
    fn vendored_spec_matches_the_shared_one() {
        let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let shared = here.join("../../../shared/spec/SEMANTICS.md");
        let Ok(upstream) = std::fs::read_to_string(&shared) else {
            println!(
                "skipped: {} does not exist here (a checkout without the steering repo)",
                shared.display()
            );
            return;
        };
        let vendored = include_str!("../SEMANTICS.md");
        assert!(
            vendored == upstream,
            "crates/notify-api/SEMANTICS.md differs from {}: copy it over",
            shared.display()
        );
    }
}
