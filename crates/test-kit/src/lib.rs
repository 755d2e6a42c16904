//! The project's test kit (`publish = false`): the one executable reference model of
//! `SEMANTICS.md`, the drivers that hold the real thing against it, and the fuzz bodies.
//!
//! - [`model`]: the reference model. Plain Rust, no OS call: [`model::Model::apply`] takes one
//!   [`model::Op`] (a C call with its arguments as C passes them, or a process event) and
//!   returns the exact code and what changed.
//! - [`call`], [`cabi`], [`typed`]: a C call with concrete arguments, and the two ways to run
//!   it: through the `extern "C"` exports of `libascendcl.so` (the `ascendcl` rlib), or through
//!   `backend_sim`'s typed API for what that API can express.
//! - [`keys`]: independent readings of the key rules (R5, R7) and of the sim key format.
//! - [`libs`]: `libascendcl.so` and `libacl_rt.so` as `cargo build` makes them, for the tests
//!   that load the C library.
//! - [`harness`]: the symbols table (model names ↔ real tokens, keys, ids, pids), the lowering
//!   of an `Op` into a `Call`, the comparison of a reply with the model, and of the registry
//!   (`backend_sim::inspect`) with the model. Both drivers below use it.
//! - [`local`]: the modelled processes that live in this OS process (one C session, typed
//!   attaches), and the one loop that runs a step through the model and its driver.
//! - [`protocol`]: the line protocol of a child process that runs calls for a conductor (one
//!   JSON `Call` per line in, one JSON `Reply` per line out).
//! - [`fuzz`]: the bodies of the cargo-fuzz targets of `fuzz/` (`key_parse`, `c_abi_sequence`,
//!   `registry_attach`) and their seeds, as library functions so that the checked-in corpus
//!   replays as ordinary tests.
//!
//! The model-based property test (`tests/model.rs`) runs [`model`] against real processes,
//! children that re-execute the test binary (`backend_sim::testing::RoleSpawner`) and speak
//! [`protocol`]; the fuzzer `c_abi_sequence` runs it against this process's C exports and a
//! second, typed attach. Neither has a model of its own.

pub mod cabi;
pub mod call;
pub mod fuzz;
pub mod harness;
pub mod keys;
pub mod libs;
pub mod local;
pub mod model;
pub mod protocol;
pub mod typed;
