//! One way to run a *role* in a child process, for tests, benches and the demo alike: the
//! current program re-executed with [`ENV_ROLE`] naming the role (the ipc-channel pattern). The
//! child is a real process with its own pid, file locks and mappings; threads cannot stand in
//! for that.
//!
//! - In a test binary, the child runs one `#[ignore]`d test ([`RoleSpawner::inherit`], or
//!   `testing::RoleSpawner::new` with a namespace) that dispatches on [`child_role`].
//! - In a program (a demo, a bench), the child is the program itself ([`RoleSpawner::program`]),
//!   whose `main` dispatches on [`child_role`] first.
//!
//! Parent and child talk in lines: the child's protocol lines on its stdout carry a tag, so
//! they stand out from anything else it prints ([`StdioLink`], [`RoleProcess::recv`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;

/// The variable that tells a re-executed program which role to play.
pub const ENV_ROLE: &str = "ASCEND_NOTIFY_TEST_ROLE";

/// Protocol lines start with this, so they stand out from the child's other output.
const LINE_TAG: &str = "@@ ";

/// The role this process was started to play, if it is a child started by [`RoleSpawner`].
pub fn child_role() -> Option<String> {
    std::env::var(ENV_ROLE).ok()
}

/// Starts roles in child processes: the current test binary, re-executed so that it runs only
/// the `#[ignore]`d test `entry` with [`ENV_ROLE`] set.
#[derive(Clone, Debug)]
pub struct RoleSpawner {
    /// The `#[ignore]`d test to run, or `None` for a plain re-exec of the program.
    entry: Option<String>,
    pub(crate) env: Vec<(String, String)>,
    show_stderr: bool,
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
    /// of this test binary, with this process's environment (plus [`RoleSpawner::env`]).
    pub fn inherit(entry: &str) -> Self {
        Self {
            entry: Some(entry.to_owned()),
            env: Vec::new(),
            show_stderr: false,
        }
    }

    /// Children are this program re-executed with no arguments (a demo, a bench): it must call
    /// [`child_role`] first thing in `main`.
    pub fn program() -> Self {
        Self {
            entry: None,
            env: Vec::new(),
            show_stderr: false,
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
        let exe = std::env::current_exe().expect("the program knows its own path");
        let mut cmd = Command::new(exe);
        if let Some(entry) = &self.entry {
            cmd.args([
                "--exact",
                entry,
                "--ignored",
                "--nocapture",
                "--test-threads=1",
                "-q",
            ]);
        }
        cmd.env(ENV_ROLE, role)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Starts `role` with piped stdio, for a line conversation. Its stderr is collected (and
    /// shown if it fails), or, with [`RoleSpawner::show_stderr`], goes to this process's.
    pub fn start(&self, role: &str) -> RoleProcess {
        let mut child = self
            .command(role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if self.show_stderr {
                Stdio::inherit()
            } else {
                Stdio::piped()
            })
            .spawn()
            .expect("re-executing the program");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        // Drained on the side so a chatty child can never block on a full pipe.
        let stderr = child.stderr.take().map(|mut stderr| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = stderr.read_to_string(&mut text);
                text
            })
        });
        RoleProcess {
            role: role.to_owned(),
            child,
            stdin,
            stdout,
            stderr,
        }
    }

    /// The child's stderr goes to this process's stderr instead of being collected.
    pub fn show_stderr(mut self) -> Self {
        self.show_stderr = true;
        self
    }

    /// Runs `role` to completion with this process's stdio (a launcher that only waits).
    pub fn run_inherited(&self, role: &str) -> ExitStatus {
        self.command(role)
            .status()
            .expect("re-executing the program")
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

    /// Waits for the child to exit on its own, its stdin still open (a child that exits once its
    /// parent goes away would take a closed stdin for that), then returns its status and
    /// stderr.
    pub fn wait_exit(mut self) -> (ExitStatus, String) {
        let status = self.child.wait().expect("waiting for the child");
        drop(self.stdin.take());
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        (status, stderr)
    }

    /// Closes the child's stdin, waits for it, and returns its status and stderr.
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

impl RoleProcess {
    /// The child's OS pid (its `getpid()`; its bare tgid may differ, R16).
    pub fn pid(&self) -> notify_api::Pid {
        notify_api::Pid(self.child.id() as i32)
    }

    /// Sends one line to the child; panics, with its stderr, if it went away.
    pub fn send(&mut self, line: &str) {
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

    /// Receives the child's next protocol line; panics, with its stderr, if it exited.
    pub fn recv(&mut self) -> String {
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

    /// Waits for the child to exit and returns its exit code (`-1` when killed by a signal),
    /// printing its stderr if it failed.
    pub fn wait_code(self) -> i32 {
        let role = self.role.clone();
        let (status, stderr) = self.finish();
        if !status.success() && !stderr.is_empty() {
            eprintln!("role {role:?} stderr:\n{stderr}");
        }
        status.code().unwrap_or(-1)
    }
}

/// The child's end: protocol lines on stdout (tagged), the parent's lines on stdin.
#[derive(Debug, Default)]
pub struct StdioLink;

impl StdioLink {
    /// Sends one protocol line to the parent.
    pub fn send(&mut self, line: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{LINE_TAG}{line}");
        let _ = out.flush();
    }

    /// Receives the parent's next line; panics if the parent went away.
    pub fn recv(&mut self) -> String {
        self.try_recv()
            .unwrap_or_else(|| panic!("the parent went away"))
    }

    /// Receives the parent's next line, or `None` once the parent went away (its end of stdin
    /// closed): a child that must not outlive its parent exits then.
    pub fn try_recv(&mut self) -> Option<String> {
        let mut line = String::new();
        match std::io::stdin().lock().read_line(&mut line) {
            Ok(n) if n > 0 => Some(line.trim_end().to_owned()),
            _ => None,
        }
    }
}
