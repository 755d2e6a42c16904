//! The line protocol between a conductor and a child process that runs C calls for it (the
//! model-based test's processes).
//!
//! The conversation, over [`notify_api::conformance::PeerLink`] (in a child started by
//! `backend_sim::testing::RoleSpawner`, that is `StdioLink`: tagged lines on stdout, plain
//! lines on stdin):
//!
//! | from | line | meaning |
//! |---|---|---|
//! | child | `hello <pid>` | started; its `getpid()` |
//! | conductor | `call <json>` | run this [`Call`] through the C exports ([`crate::cabi::run`]) |
//! | child | `reply <json>` | its [`Reply`] |
//! | conductor | `exit` | return normally, without `aclFinalize` (the runtime detaches at exit, §4) |
//! | child | `bye` | about to return |
//!
//! A process death is the conductor's business (`SIGKILL`). Every assertion is the
//! conductor's: an expected failure is a reply, never a panic in the child.

use notify_api::conformance::{Peer, PeerLink};

use crate::call::{Call, Reply};

/// The child's side: greets, then runs calls until `exit`.
///
/// # Panics
/// On a line that is not of the protocol (a conductor bug).
pub fn serve(link: &mut dyn PeerLink) {
    link.send(&format!("hello {}", std::process::id()));
    loop {
        let line = link.recv();
        let line = line.trim_end();
        if line == "exit" {
            link.send("bye");
            return;
        }
        let json = line
            .strip_prefix("call ")
            .unwrap_or_else(|| panic!("protocol: expected `call <json>` or `exit`, got {line:?}"));
        let call: Call = serde_json::from_str(json)
            .unwrap_or_else(|e| panic!("protocol: bad call {json:?}: {e}"));
        let reply = crate::cabi::run(&call);
        link.send(&format!(
            "reply {}",
            serde_json::to_string(&reply).expect("a reply serializes")
        ));
    }
}

/// The conductor's side of one child.
pub struct Child<P: Peer> {
    peer: P,
    pid: i32,
}

impl<P: Peer> std::fmt::Debug for Child<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Child").field("pid", &self.pid).finish()
    }
}

impl<P: Peer> Child<P> {
    /// Waits for the child's greeting.
    ///
    /// # Panics
    /// If the first line is not `hello <pid>`, or the pid is not the child's.
    pub fn new(mut peer: P) -> Self {
        let line = peer.recv();
        let pid: i32 = line
            .strip_prefix("hello ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("protocol: expected `hello <pid>`, got {line:?}"));
        assert_eq!(
            pid,
            peer.pid().0,
            "protocol: the greeting names another pid"
        );
        Self { peer, pid }
    }

    /// The child's OS pid.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The underlying peer.
    pub fn peer_mut(&mut self) -> &mut P {
        &mut self.peer
    }

    /// Runs one call in the child.
    ///
    /// # Panics
    /// If the answer is not a reply (the child died or broke the protocol).
    pub fn call(&mut self, call: &Call) -> Reply {
        self.peer.send(&format!(
            "call {}",
            serde_json::to_string(call).expect("a call serializes")
        ));
        let line = self.peer.recv();
        let json = line
            .strip_prefix("reply ")
            .unwrap_or_else(|| panic!("protocol: expected `reply <json>`, got {line:?}"));
        serde_json::from_str(json).unwrap_or_else(|e| panic!("protocol: bad reply {json:?}: {e}"))
    }

    /// The underlying peer, without a goodbye (for a child that was killed).
    pub fn into_peer(self) -> P {
        self.peer
    }

    /// Asks the child to return normally and waits for its goodbye; returns the peer, for the
    /// caller to wait for its exit.
    ///
    /// # Panics
    /// If the child does not say `bye`.
    pub fn exit(mut self) -> P {
        self.peer.send("exit");
        let line = self.peer.recv();
        assert_eq!(line, "bye", "protocol: expected `bye`");
        self.peer
    }
}
