//! Helpers shared by several integration tests of this crate (each test file that needs them
//! says `mod common;`): the inspector binary, and a copy of the registry's byte layout.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// The inspector binary, `ascend-notify-sim`, which lives in the `ascend-notify-sim` package:
/// Cargo gives this package's tests no `CARGO_BIN_EXE_` for it, so look next to the test
/// binary (`target/<profile>/deps/<test>` → `target/<profile>/ascend-notify-sim`). It is there
/// when the tests run as `cargo test -p backend-sim -p ascend-notify-sim` (Cargo builds every
/// binary before it runs any test), or after `cargo build -p ascend-notify-sim`.
pub fn inspector_bin() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("ascend-notify-sim");
    bin.is_file().then_some(bin)
}

/// Runs the inspector binary with `args`; `None` (after saying so on stderr, with `skipped:`)
/// when it is not built.
pub fn inspector(args: &[&str]) -> Option<Output> {
    let Some(bin) = inspector_bin() else {
        eprintln!(
            "skipped: the inspector binary check ({args:?}): ascend-notify-sim is not built next \
             to this test; run `cargo test -p backend-sim -p ascend-notify-sim`"
        );
        return None;
    };
    Some(
        Command::new(bin)
            .args(args)
            .output()
            .expect("running ascend-notify-sim"),
    )
}

/// A copy of the byte layout of `crates/backend-sim/src/registry/layout.rs` (layout `VERSION`
/// 2), which is private to the crate. Tests that poke the segment check the header they find
/// against it first, so a layout change makes them fail loudly rather than poke the wrong bytes.
pub mod lay {
    /// `layout::MAGIC`: `b"ASCNTFY2"` as a little-endian `u64`.
    pub const MAGIC: u64 = u64::from_le_bytes(*b"ASCNTFY2");
    pub const VERSION: u32 = 2;
    pub const STATE_READY: u32 = 1;
    /// `layout::STATE_REMOVED`.
    pub const STATE_REMOVED: u32 = 2;

    // `Header` (`#[repr(C, align(64))]`): field offsets.
    pub const H_MAGIC: u64 = 0; // u64
    pub const H_VERSION: u64 = 8; // u32
    pub const H_HEADER_SIZE: u64 = 12; // u32
    pub const H_STATE: u64 = 16; // u32
    pub const H_DEVICES: u64 = 20; // u32
    pub const H_CAPACITY: u64 = 24; // u32
    pub const H_MAX_PROCS: u64 = 28; // u32
    pub const H_PROC_SIZE: u64 = 32; // u32
    pub const H_NOTIFY_SIZE: u64 = 36; // u32 (then 4 bytes of padding)
    pub const H_TOTAL_SIZE: u64 = 40; // u64
    pub const H_NS_HASH: u64 = 48; // u64
    pub const H_PROCS_OFFSET: u64 = 56; // u64
    pub const H_NOTIFIES_OFFSET: u64 = 64; // u64
    pub const H_DEVICE_MEMORY: u64 = 72; // u64
    pub const H_PID_NS: u64 = 80; // u64
    pub const H_ATTACH_SEQ: u64 = 88; // u64
    pub const H_PROC_HINT: u64 = 96; // u32
    pub const H_PROC_HIGH_WATER: u64 = 100; // u32
    pub const H_SWEEP_CURSOR: u64 = 104; // u32 (then a reserved u32)
    pub const H_FREE_HINT: u64 = 112; // [u32; 64]
    pub const H_HIGH_WATER: u64 = H_FREE_HINT + 4 * 64; // [u32; 64]
    pub const H_MEM_USED: u64 = H_HIGH_WATER + 4 * 64; // [u64; 64]
    pub const H_ALLOCS_OFFSET: u64 = H_MEM_USED + 8 * 64; // u64
    pub const H_EXPORTS_OFFSET: u64 = H_ALLOCS_OFFSET + 8; // u64
    /// Then the allocation / export hints and high-water marks (4 x u32), the hazard counters
    /// ([u64; 2]), the hazard log ([u64; 32]) and its sequence (u64).
    pub const H_HAZARD_SEQ: u64 = H_EXPORTS_OFFSET + 8 + 16 + 16 + 8 * 32;
    /// Then the wait boards' offset (u64), the death semaphores' id, count and tag (3 x u32):
    /// 1468 bytes of fields.
    pub const H_WAITS_OFFSET: u64 = H_HAZARD_SEQ + 8;
    /// `size_of::<Header>()`: the fields, rounded up to the 64-byte alignment.
    pub const HEADER_SIZE: u64 = (H_WAITS_OFFSET + 8 + 12).next_multiple_of(64);

    // `ProcSlot`: 64 bytes.
    pub const PROC_SIZE: u64 = 64;
    pub const P_STATE: u64 = 0; // u32
    pub const P_GENERATION: u64 = 4; // u32
    pub const P_OS_PID: u64 = 8; // i32
    pub const P_BARE_TGID: u64 = 12; // i32
    pub const P_NONCE: u64 = 16; // u64
    pub const P_START_NS: u64 = 24; // u64
    pub const P_PID_NS: u64 = 32; // u64

    // `NotifySlot`: 448 bytes.
    pub const NOTIFY_SIZE: u64 = 448;
    pub const N_FLAG: u64 = 0; // u32
    pub const N_WAITERS: u64 = 4; // u32
    pub const N_STATE: u64 = 64; // u32
    pub const N_GENERATION: u64 = 68; // u32
    /// The creator's holder code (`(generation & 0xffff) << 16 | (process slot + 1)`).
    pub const N_CREATOR: u64 = 72; // u32
    pub const N_CREATOR_TGID: u64 = 76; // i32
    pub const N_EXPORT: u64 = 84; // u32
    pub const N_WHITELIST_LEN: u64 = 92; // u32
    /// Holder codes of the processes holding a reference, `0` empty.
    pub const N_HOLDERS: u64 = 128; // [u32; 16]
    pub const HOLDERS: u64 = 16;
    /// Whitelist entries: `{ tgid: i32, _: u32, set_ns: u64 }`.
    pub const N_WHITELIST: u64 = 192; // [{i32, u32, u64}; 15]

    /// `AllocSlot`: 64 bytes; `ExportSlot`: 704 bytes.
    pub const ALLOC_SIZE: u64 = 64;
    pub const ALLOC_SLOTS: u64 = 16384;
    pub const EXPORT_SIZE: u64 = 704;
    pub const EXPORT_SLOTS: u64 = 4096;

    /// `Layout::new`: the proc table follows the header.
    pub const PROCS_OFFSET: u64 = HEADER_SIZE.next_multiple_of(64);

    /// `Layout::new`: the notify slots start on the page after the proc table.
    pub const fn notifies_offset(max_procs: u32) -> u64 {
        (PROCS_OFFSET + max_procs as u64 * PROC_SIZE).next_multiple_of(4096)
    }

    /// `Layout::new(devices, capacity, max_procs).allocs_offset`.
    pub const fn allocs_offset(devices: u32, capacity: u32, max_procs: u32) -> u64 {
        (notifies_offset(max_procs) + devices as u64 * capacity as u64 * NOTIFY_SIZE)
            .next_multiple_of(4096)
    }

    /// `Layout::new(devices, capacity, max_procs).exports_offset`.
    pub const fn exports_offset(devices: u32, capacity: u32, max_procs: u32) -> u64 {
        (allocs_offset(devices, capacity, max_procs) + ALLOC_SLOTS * ALLOC_SIZE)
            .next_multiple_of(4096)
    }

    /// `WaitEntry`: 48 bytes, 32 per process.
    pub const WAIT_SIZE: u64 = 48;
    pub const WAITS_PER_PROC: u64 = 32;

    /// `Layout::new(devices, capacity, max_procs).waits_offset`.
    pub const fn waits_offset(devices: u32, capacity: u32, max_procs: u32) -> u64 {
        (exports_offset(devices, capacity, max_procs) + EXPORT_SLOTS * EXPORT_SIZE)
            .next_multiple_of(4096)
    }

    /// `Layout::new(devices, capacity, max_procs).total_size`.
    pub const fn total_size(devices: u32, capacity: u32, max_procs: u32) -> u64 {
        waits_offset(devices, capacity, max_procs) + max_procs as u64 * WAITS_PER_PROC * WAIT_SIZE
    }

    /// `layout::holder_code`.
    pub const fn holder_code(slot: u32, generation: u32) -> u32 {
        ((generation & 0xffff) << 16) | (slot + 1)
    }
}

/// Reads `N` bytes of namespace `ns`'s segment at `off`, behind the simulator's back.
pub fn read_segment<const N: usize>(ns: &str, off: u64) -> [u8; N] {
    use std::os::unix::fs::FileExt;
    let path = format!("/dev/shm/ascend-notify.{ns}");
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
    let mut b = [0; N];
    file.read_exact_at(&mut b, off)
        .unwrap_or_else(|e| panic!("reading {path} at {off}: {e}"));
    b
}

/// Where notify `id` of `device` lives in namespace `ns`'s segment, from its own header (whose
/// magic and version are checked against [`lay`]).
pub fn slot_offset(ns: &str, device: u32, id: u32) -> u64 {
    let magic = u64::from_le_bytes(read_segment(ns, lay::H_MAGIC));
    let version = u32::from_le_bytes(read_segment(ns, lay::H_VERSION));
    assert_eq!(
        (magic, version),
        (lay::MAGIC, lay::VERSION),
        "the layout copy in tests/common is stale; update `lay`"
    );
    let capacity = u32::from_le_bytes(read_segment(ns, lay::H_CAPACITY));
    let notifies = u64::from_le_bytes(read_segment(ns, lay::H_NOTIFIES_OFFSET));
    notifies + (u64::from(device) * u64::from(capacity) + u64::from(id)) * lay::NOTIFY_SIZE
}

/// A notify's `waiters` count, read straight from the segment.
pub fn read_waiters(ns: &str, device: u32, id: u32) -> u32 {
    u32::from_le_bytes(read_segment(
        ns,
        slot_offset(ns, device, id) + lay::N_WAITERS,
    ))
}

/// A child process that speaks the test kit's line protocol (`StdioLink` on its side: lines
/// tagged `@@ ` on stdout, the parent's lines on stdin), started with any command in front of
/// the re-executed test binary (`unshare ...`), and whose every read has a deadline, so that a
/// hung child fails the test instead of hanging it.
pub struct Proc {
    pub role: String,
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

/// How long a child may take to send its next line.
pub const LINE_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

impl Proc {
    /// Starts `wrapper... <this test binary> --exact <entry> --ignored ...` playing `role`, with
    /// `env` added to this process's environment.
    pub fn start(wrapper: &[&str], entry: &str, role: &str, env: &[(String, String)]) -> Self {
        use std::io::{BufRead, Read};
        use std::process::Stdio;
        let exe = std::env::current_exe().expect("the test binary knows its own path");
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        cmd.args([
            "--exact",
            entry,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(backend_sim::testing::ENV_ROLE, role)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {wrapper:?} {}: {e}", exe.display()));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(msg) = line.strip_prefix("@@ ")
                    && tx.send(msg.trim_end().to_owned()).is_err()
                {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().expect("piped stderr");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        });
        Self {
            role: role.to_owned(),
            child,
            stdin,
            lines,
            stderr: Some(stderr),
        }
    }

    /// The pid of the process started (the wrapper's, if there is one).
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends one line.
    pub fn send(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("stdin is open until finish");
        if writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .is_err()
        {
            let err = self.kill_and_stderr();
            panic!(
                "role {:?} went away before reading {line:?}; its stderr:\n{err}",
                self.role
            );
        }
    }

    /// The next protocol line, within [`LINE_LIMIT`].
    pub fn recv(&mut self) -> String {
        match self.lines.recv_timeout(LINE_LIMIT) {
            Ok(line) => line,
            Err(e) => {
                let err = self.kill_and_stderr();
                panic!(
                    "role {:?} sent no line ({e}: it exited, or hung for {LINE_LIMIT:?}); its \
                     stderr:\n{err}",
                    self.role
                );
            }
        }
    }

    /// Sends `line` and returns the answer.
    pub fn ask(&mut self, line: &str) -> String {
        self.send(line);
        self.recv()
    }

    fn kill_and_stderr(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Closes its stdin and waits for it (at most [`LINE_LIMIT`], then kills it); its status
    /// and stderr.
    pub fn finish(mut self) -> (std::process::ExitStatus, String) {
        drop(self.stdin.take());
        let t = std::time::Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("waiting for the child") {
                break status;
            }
            if t.elapsed() > LINE_LIMIT {
                let _ = self.child.kill();
                break self.child.wait().expect("waiting for the killed child");
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        (status, stderr)
    }

    /// Kills it with `SIGKILL`.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // A test that fails half way must not leave its children running.
        if self.stderr.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The pids of the direct children of process `pid` (from `/proc/*/stat`).
pub fn children_of(pid: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().into_string().ok()?.parse::<i32>().ok())
        .filter(|&p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|stat| {
                    let rest = &stat[stat.rfind(')')? + 1..];
                    rest.split_whitespace().nth(1)?.parse::<i32>().ok()
                })
                == Some(pid)
        })
        .collect()
}
