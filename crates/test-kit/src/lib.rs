//! The project's test kit (`publish = false`): the one executable reference model of
//! `SEMANTICS.md`, and what holds the real thing against it.
//!
//! - [`model`]: the reference model. Plain Rust, no OS call: [`model::Model::apply`] takes one
//!   [`model::Op`] (a C call with its arguments as C passes them, or a process event) and
//!   returns the exact code and what changed.
//! - [`keys`]: independent readings of the key rules (R5, R7) and of the sim key format.

pub mod keys;
pub mod model;
