//! A kit for testing multi-process code against the simulator (feature `testing`).
//!
//! - [`ScopedNamespace`]: a namespace of one's own that is removed on drop, so tests never leak
//!   shared-memory segments and never see each other's notifies.
//! - [`RoleSpawner`]: runs a named *role* in a child process by re-executing the current test
//!   binary (the ipc-channel pattern). The child is a real process with its own pid, file locks
//!   and mappings; threads cannot stand in for that. Its role entry point is an `#[ignore]`d test
//!   that calls [`child_role`].
//! - [`strategies`]: proptest strategies for keys, flags and pids.
//!
//! ```no_run
//! use backend_sim::testing::{ScopedNamespace, RoleSpawner, child_role};
//!
//! #[test]
//! #[ignore = "entry point of spawned child processes"]
//! fn child() {
//!     if let Some(role) = child_role() {
//!         // match on `role`, attach with SimRuntime::from_env(), do the work...
//!         println!("{role}: all passed");
//!     }
//! }
//!
//! #[test]
//! fn two_processes() {
//!     let ns = ScopedNamespace::new("two-proc");
//!     RoleSpawner::new("child", &ns)
//!         .run("importer")
//!         .assert_passed("the importer role", "importer: all passed");
//! }
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;

use notify_api::Pid;
use notify_api::conformance::{Peer, PeerLink, Spawner};

use crate::{ENV_CAPACITY, ENV_DEVICES, ENV_NAMESPACE, SimBuilder, remove_namespace};

pub use crate::namespace_files;

/// The variable that tells a re-executed test binary which role to play.
pub const ENV_ROLE: &str = "ASCEND_NOTIFY_TEST_ROLE";

/// Protocol lines start with this, so they stand out from the test harness's own output.
const LINE_TAG: &str = "@@ ";

/// A namespace unique to this test and process, removed (segment and lock files) on drop.
#[derive(Debug)]
pub struct ScopedNamespace {
    name: String,
    devices: u32,
    capacity: u32,
}

impl ScopedNamespace {
    /// A fresh namespace whose name starts with `label` (sanitised), with 4 devices and 64 notifies
    /// per device, small enough that capacity tests are cheap.
    pub fn new(label: &str) -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let label: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .take(32)
            .collect();
        let name = format!(
            "t-{label}-{}-{}-{:04x}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            crate::random_u64().unwrap_or(0) & 0xffff
        );
        Self {
            name,
            devices: 4,
            capacity: 64,
        }
    }

    /// Sets the devices and capacity used if this process creates the namespace.
    pub fn with_size(mut self, devices: u32, capacity: u32) -> Self {
        self.devices = devices;
        self.capacity = capacity;
        self
    }

    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A builder attached to this namespace.
    pub fn builder(&self) -> SimBuilder {
        SimBuilder::default()
            .namespace(&self.name)
            .devices(self.devices)
            .capacity(self.capacity)
    }

    /// The variables a child process needs to attach to the same namespace.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (ENV_NAMESPACE.into(), self.name.clone()),
            (ENV_DEVICES.into(), self.devices.to_string()),
            (ENV_CAPACITY.into(), self.capacity.to_string()),
        ]
    }
}

impl Drop for ScopedNamespace {
    fn drop(&mut self) {
        let _ = remove_namespace(&self.name);
    }
}

/// The role this process was started to play, if it is a child started by [`RoleSpawner`].
pub fn child_role() -> Option<String> {
    std::env::var(ENV_ROLE).ok()
}

/// Starts roles in child processes: the current test binary, re-executed so that it runs only
/// the `#[ignore]`d test `entry` with [`ENV_ROLE`] set.
#[derive(Clone, Debug)]
pub struct RoleSpawner {
    entry: String,
    env: Vec<(String, String)>,
}

/// What a finished role left behind.
#[derive(Debug)]
pub struct RoleOutput {
    /// The child's exit status.
    pub status: ExitStatus,
    /// Everything it printed on stdout.
    pub stdout: String,
    /// Everything it printed on stderr.
    pub stderr: String,
}

impl RoleOutput {
    /// Panics, showing everything the child printed, unless it exited successfully *and*
    /// printed `marker`: a role's last line, which proves it ran to its end (a role name that
    /// matches no test also exits successfully, having run nothing). `what` names the run in
    /// the message.
    #[track_caller]
    pub fn assert_passed(&self, what: &str, marker: &str) {
        assert!(
            self.status.success() && self.stdout.contains(marker),
            "{what} failed ({}; expected {marker:?} on stdout):\n--- stdout\n{}\n--- stderr\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
    }
}

impl RoleSpawner {
    /// Children run the test named `entry` (its full path, e.g. `"child"` or `"roles::child"`)
    /// attached to `ns`.
    pub fn new(entry: &str, ns: &ScopedNamespace) -> Self {
        Self {
            entry: entry.to_owned(),
            env: ns.env(),
        }
    }

    /// Children run the test named `entry` with this process's environment only: for a child
    /// that spawns peers of its own in the namespace it was given.
    pub fn inherit(entry: &str) -> Self {
        Self {
            entry: entry.to_owned(),
            env: Vec::new(),
        }
    }

    /// Adds a variable to every child's environment.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The same spawner with more variables in every child's environment.
    pub fn with_env(&self, vars: &[(&str, &str)]) -> Self {
        let mut spawner = self.clone();
        for (k, v) in vars {
            spawner = spawner.env(k, v);
        }
        spawner
    }

    fn command(&self, role: &str) -> Command {
        let exe = std::env::current_exe().expect("the test binary knows its own path");
        let mut cmd = Command::new(exe);
        cmd.args([
            "--exact",
            &self.entry,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(ENV_ROLE, role)
        .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Starts `role` with piped stdio, for a line conversation.
    pub fn start(&self, role: &str) -> RoleProcess {
        let mut child = self
            .command(role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("re-executing the test binary");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut stderr = child.stderr.take().expect("piped stderr");
        // Drain stderr on the side so a chatty child can never block on a full pipe.
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        RoleProcess {
            role: role.to_owned(),
            child,
            stdin,
            stdout,
            stderr: Some(stderr),
        }
    }

    /// Runs `role` to completion with no conversation, returning its exit status and output.
    pub fn run(&self, role: &str) -> RoleOutput {
        let out = self
            .command(role)
            .stdin(Stdio::null())
            .output()
            .expect("re-executing the test binary");
        RoleOutput {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Spawner for RoleSpawner {
    fn spawn_with_env(&self, role: &str, env: &[(&str, &str)]) -> Box<dyn Peer> {
        Box::new(self.with_env(env).start(role))
    }
}

/// A running role: the parent's end of the conversation.
#[derive(Debug)]
pub struct RoleProcess {
    role: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    stderr: Option<JoinHandle<String>>,
}

impl RoleProcess {
    /// Kills the child with `SIGKILL` (it gets no chance to clean up: R9 must).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
    }

    /// Waits for the child and returns its status and stderr.
    pub fn finish(mut self) -> (ExitStatus, String) {
        drop(self.stdin.take());
        let status = self.child.wait().expect("waiting for the child");
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        (status, stderr)
    }

    fn stderr_now(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Peer for RoleProcess {
    fn pid(&self) -> Pid {
        Pid(self.child.id() as i32)
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open until finish");
        if writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .is_err()
        {
            let err = self.stderr_now();
            panic!(
                "role {:?} went away before reading {line:?}; its stderr:\n{err}",
                self.role
            );
        }
    }

    fn recv(&mut self) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            match self.stdout.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    let err = self.stderr_now();
                    panic!(
                        "role {:?} exited before sending a line; its stderr:\n{err}",
                        self.role
                    );
                }
                Ok(_) => {
                    if let Some(msg) = line.strip_prefix(LINE_TAG) {
                        return msg.trim_end().to_owned();
                    }
                }
            }
        }
    }

    fn wait(self: Box<Self>) -> i32 {
        let role = self.role.clone();
        let (status, stderr) = (*self).finish();
        if !status.success() && !stderr.is_empty() {
            eprintln!("role {role:?} stderr:\n{stderr}");
        }
        status.code().unwrap_or(-1)
    }
}

/// The child's end: protocol lines on stdout (tagged), the parent's lines on stdin.
#[derive(Debug, Default)]
pub struct StdioLink;

impl PeerLink for StdioLink {
    fn send(&mut self, line: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{LINE_TAG}{line}");
        let _ = out.flush();
    }

    fn recv(&mut self) -> String {
        let mut line = String::new();
        match std::io::stdin().lock().read_line(&mut line) {
            Ok(n) if n > 0 => line.trim_end().to_owned(),
            _ => panic!("the parent went away"),
        }
    }
}

/// proptest strategies for the API's inputs.
pub mod strategies {
    use notify_api::{ExportKey, Pid};
    use proptest::prelude::*;

    /// Valid export keys: 1..=64 printable ASCII characters.
    pub fn export_key() -> impl Strategy<Value = ExportKey> {
        "[ -~]{1,64}".prop_map(|s| ExportKey::new(s).expect("the regex only makes valid keys"))
    }

    /// Arbitrary byte strings, mostly invalid as keys.
    pub fn key_bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..80)
    }

    /// Raw export or import flag bits: the valid values and anything else.
    pub fn raw_ipc_flags() -> impl Strategy<Value = u64> {
        prop_oneof![Just(0x0u64), Just(0x2u64), any::<u64>()]
    }

    /// Raw create flag bits: the valid values and anything else.
    pub fn raw_create_flags() -> impl Strategy<Value = u64> {
        prop_oneof![Just(0x0u64), Just(0x1u64), any::<u64>()]
    }

    /// Plausible pids (positive).
    pub fn pid() -> impl Strategy<Value = Pid> {
        (1..=4_194_304i32).prop_map(Pid)
    }

    /// Pid lists of 0..=20 entries, to cross the whitelist bound of 15 (R6).
    pub fn pids() -> impl Strategy<Value = Vec<Pid>> {
        proptest::collection::vec(pid(), 0..=20)
    }
}
