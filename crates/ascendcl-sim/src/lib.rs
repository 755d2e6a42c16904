//! `libascendcl.so` for machines without an NPU: the ACL C symbols of `SEMANTICS.md` §1, §5 and
//! §6, implemented over the shared-memory simulator (`backend-sim`).
//!
//! A C program written against the CANN headers (the tree in `include/`, `acl/acl.h` and the
//! headers it includes, generated from `acl-abi`'s manifest; the older `include/acl_notify.h`
//! too) links against this library instead of the vendor's and runs the IPC Notify and IPC
//! memory flows across real processes on any Linux machine.
//!
//! # Layers (the zlib-rs / rustls-ffi pattern)
//! - [`exports`], `memory`, `events`: one `extern "C"` function per symbol, each a thin
//!   translation over `backend_sim::raw`, which owns every rule. Each is a panic boundary (`boundary`):
//!   a panic becomes `ACL_ERROR_RT_INTERNAL_ERROR` (507000) with a reason, never an unwind into C,
//!   and every failure sets the text that `aclGetRecentErrMsg` returns in the calling thread.
//! - `ptr`: the only code that reads or writes memory the caller passed (out-parameters, key
//!   strings, arrays). Everything else is safe Rust.
//! - `handles`: R10 — an `aclrtNotify`/`aclrtStream` given to C is an opaque token, never a
//!   pointer: it is looked up in a per-process table and never dereferenced, so any value a
//!   caller passes is either a live handle of this process or `ACL_ERROR_RT_INVALID_HANDLE`.
//! - `runtime`: the process-wide state between `aclInit` and `aclFinalize`.
//! - `cache`: the fast path of the hot calls (record, wait, synchronize): a per-thread cache of
//!   the session and of the last handles used, which destroy and finalize empty before they
//!   return.
//!
//! # Order of checks (R15)
//! An export checks only what C alone can see, which R15 checks first: not initialized (100001)
//! and NULL pointers (100000). It hands handle lookups to `raw` as results, and `raw` checks the
//! rest in R15's order: no context (107002) → invalid handle (107017) → stream of another
//! device (107003) → virtualization (207000) → bad argument (107000/107001) → permission, state,
//! import resolution and capacity.
//!
//! # Configuration
//! `aclInit` attaches as `SimBuilder::attach` does from the environment: the
//! `ASCEND_NOTIFY_SIM_*` variables choose
//! the namespace, its size and whether this process is a virtualization instance. The
//! `configPath` argument is accepted and ignored (sim).

#[cfg(not(target_pointer_width = "64"))]
compile_error!("ascendcl-sim encodes handles as 64-bit tokens and needs 64-bit pointers");

mod abi;
mod boundary;
mod cache;
pub mod events;
pub mod exports;
mod handles;
pub mod memory;
mod ptr;
mod runtime;

pub use events::*;
pub use exports::*;
pub use memory::*;
