//! The backend-generic conformance suite: one public function per rule of `SEMANTICS.md` §3.
//!
//! Like object_store's shared integration tests, each function takes a backend, drives it, and
//! panics (via `assert!`) when a code or an effect differs from the contract. Every backend's
//! test suite calls all of them; see [`single_checks`] and [`multi_checks`].
//!
//! Rules that need a second process take a [`Spawner`] that the caller provides: the spawned
//! process attaches to the same backend configuration (same simulator namespace, same library)
//! and calls [`run_role`] with the role name it was given. The two sides talk over a line
//! protocol ([`Peer`] on the parent side, [`PeerLink`] on the child side), so the suite itself
//! makes no OS calls.
//!
//! Each function expects a fresh backend with at least 2 devices, a capacity of at least 16, no
//! virtualization, and no current device on the calling thread; it leaves the calling thread
//! with no notify or stream alive.

mod roles;
mod rules;

pub use roles::run_role;
pub use rules::*;

use crate::{AclError, Backend, Pid, Result};

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

/// Starts peer processes for multi-process rules.
pub trait Spawner {
    /// Starts a new process that attaches to the same backend configuration and runs
    /// [`run_role`] with `role`.
    fn spawn(&self, role: &str) -> Box<dyn Peer>;
}

/// The child's end of the line protocol.
pub trait PeerLink {
    /// Sends one line to the parent.
    fn send(&mut self, line: &str);
    /// Receives the next line from the parent; panics if the parent went away.
    fn recv(&mut self) -> String;
}

/// A rule check that needs one process.
pub type SingleCheck<B> = fn(&B);
/// A rule check that needs a second process.
pub type MultiCheck<B> = fn(&B, &dyn Spawner);

/// Asserts that `result` failed with `code`, and that the reason text is not empty.
#[track_caller]
pub fn assert_code<T>(result: Result<T>, code: AclError, what: &str) {
    match result {
        Ok(_) => panic!("{what}: expected {code}, got success"),
        Err(e) => {
            assert_eq!(e.code(), code, "{what}: wrong code, reason: {}", e.reason());
            assert!(!e.reason().is_empty(), "{what}: empty reason text");
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

/// Sets device 0 current on this thread (most checks start there).
#[track_caller]
pub fn on_device<B: Backend>(backend: &B, device: i32) {
    ok(backend.set_device(crate::DeviceId(device)), "set_device");
}
