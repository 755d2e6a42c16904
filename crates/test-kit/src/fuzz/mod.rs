//! The bodies of the cargo-fuzz targets in `fuzz/` (docs/FUZZING.md), as library functions so
//! that the checked-in corpus replays as ordinary tests (`tests/fuzz_corpus_replay.rs`).
//!
//! - [`key_parse`]: export keys from arbitrary bytes, against [`crate::keys`]' independent
//!   reading of R7 and the sim key format, and the model's code for an import of them;
//! - [`c_abi_sequence`]: sequences of C calls decoded from the input, each checked against the
//!   one model ([`crate::model`]) through [`crate::harness`], with a second attach in this
//!   process as a second modelled process;
//! - [`registry_attach`]: a registry segment whose bytes come from the input (R14, §4).
//!
//! `aclInit` state is process-wide: [`key_parse`] keeps one session for the process,
//! [`c_abi_sequence`] initializes and finalizes around every input. Do not mix the two in one
//! process. Both attach to the namespace `ASCEND_NOTIFY_SIM_NAMESPACE` names and refuse to run
//! without one: a fuzz target calls [`use_private_namespace`] first; the replay test starts a
//! child process with a `ScopedNamespace`'s environment.

use std::path::Path;
use std::sync::OnceLock;

pub mod c_abi_sequence;
pub mod key_parse;
pub mod registry_attach;

pub use c_abi_sequence::c_abi_sequence;
pub use key_parse::key_parse;
pub use registry_attach::registry_attach;

use backend_sim::{ENV_CAPACITY, ENV_DEVICE_MEMORY, ENV_DEVICES, ENV_NAMESPACE};

/// Devices of the namespace [`use_private_namespace`] configures.
pub const FUZZ_DEVICES: u32 = 4;
/// Notifies per device of that namespace: small, so that inputs reach R11 (207009).
pub const FUZZ_CAPACITY: u32 = 8;

/// Device memory per device of that namespace (M1): four huge-page allocations fill a device,
/// so that inputs reach 207001.
pub const FUZZ_DEVICE_MEMORY: u64 = 8 << 20;

/// `ASCEND_NOTIFY_FUZZ_TRACE=1`: print every step, its code and the model's, on stderr.
pub const ENV_TRACE: &str = "ASCEND_NOTIFY_FUZZ_TRACE";

/// Points `ASCEND_NOTIFY_SIM_*` at a namespace of this process's own (`fz-<label>-<pid>`,
/// [`FUZZ_DEVICES`] × [`FUZZ_CAPACITY`], [`FUZZ_DEVICE_MEMORY`]) and removes any leftover of
/// it.
///
/// # Safety
/// Changes the environment: no other thread may read or write it concurrently (call it first
/// thing in a fuzz target's `init`, before any thread exists).
pub unsafe fn use_private_namespace(label: &str) {
    let ns = format!("fz-{label}-{}", std::process::id());
    // SAFETY: the caller guarantees no concurrent access to the environment.
    unsafe {
        std::env::set_var(ENV_NAMESPACE, &ns);
        std::env::set_var(ENV_DEVICES, FUZZ_DEVICES.to_string());
        std::env::set_var(ENV_CAPACITY, FUZZ_CAPACITY.to_string());
        std::env::set_var(ENV_DEVICE_MEMORY, FUZZ_DEVICE_MEMORY.to_string());
    }
    let _ = backend_sim::remove_namespace(&ns);
}

/// The namespace the C bodies attach to.
///
/// # Panics
/// If `ASCEND_NOTIFY_SIM_NAMESPACE` is not set (they never run in the default namespace).
pub(crate) fn namespace() -> String {
    std::env::var(ENV_NAMESPACE).unwrap_or_else(|_| {
        panic!(
            "harness: {ENV_NAMESPACE} is not set; call test_kit::fuzz::use_private_namespace \
             first (the fuzz bodies never run in the default namespace)"
        )
    })
}

pub(crate) fn trace() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os(ENV_TRACE).is_some_and(|v| v == "1"))
}

/// A cursor over the fuzz input; reads past the end give zeros, so every input is valid and
/// truncation only drops the tail.
#[derive(Debug)]
pub struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Bytes<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The next byte.
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos = self.pos.saturating_add(1);
        b
    }

    /// The next 2 bytes, little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// The next 4 bytes, little-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// The next 8 bytes, little-endian.
    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.u8()).collect()
    }

    /// The rest of the input.
    pub fn rest(&mut self) -> &'a [u8] {
        let rest = self.data.get(self.pos..).unwrap_or(&[]);
        self.pos = self.data.len();
        rest
    }
}

/// Every file of a corpus directory, sorted by name.
///
/// # Panics
/// If the directory is missing or empty, so that a replay can never pass by reading nothing.
pub fn read_corpus(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("the corpus directory {} is missing: {e}", dir.display()));
    let mut files: Vec<(String, Vec<u8>)> = entries
        .map(|e| e.expect("reading the corpus directory").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).expect("reading a corpus file");
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            (name.into_owned(), bytes)
        })
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "the corpus directory {} is empty",
        dir.display()
    );
    files
}

/// Writes `seeds` into `dir` as `seed-<name>`, replacing the `seed-*` files there.
///
/// # Panics
/// On an I/O error.
pub fn write_seeds(dir: &Path, seeds: &[(String, Vec<u8>)]) {
    std::fs::create_dir_all(dir).expect("creating the corpus directory");
    for entry in std::fs::read_dir(dir).expect("reading the corpus directory") {
        let path = entry.expect("a directory entry").path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
        {
            std::fs::remove_file(&path).expect("removing an old seed");
        }
    }
    for (name, bytes) in seeds {
        std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("writing a seed");
    }
}

/// The message of a caught panic, for replay reports.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a non-string panic".into())
}
