//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `target/<profile>`, with a `libascendcl.so` (and `libacl_rt.so`) built from the sources as
/// they are now: the libraries users get from `cargo build -p ascendcl-sim -p acl-rt-sim`.
///
/// `cargo test` builds these crates with the test features of their dev-dependencies unified
/// in, into `deps/`, and never refreshes `target/<profile>`: so when the library there is
/// missing or older than a source file it is built from, this runs that `cargo build` (with the
/// `cargo` running the tests; its lock serialises concurrent test binaries), once per process.
pub fn lib_dir() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("the test binary knows its path");
            let dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("the test binary lives in target/<profile>/deps")
                .to_path_buf();
            let lib = dir.join("libascendcl.so");
            if stale(&lib) {
                let profile = match dir.file_name().and_then(|n| n.to_str()) {
                    Some("debug") | None => "dev".to_owned(),
                    Some(name) => name.to_owned(),
                };
                let status = std::process::Command::new(env!("CARGO"))
                    .args(["build", "--quiet", "--profile", &profile])
                    .args(["-p", "ascendcl-sim", "-p", "acl-rt-sim"])
                    .arg("--manifest-path")
                    .arg(crate_dir().join("../../Cargo.toml"))
                    .stdin(std::process::Stdio::null())
                    .status()
                    .expect("running cargo to build libascendcl.so");
                assert!(status.success(), "building libascendcl.so failed: {status}");
                assert!(
                    !stale(&lib),
                    "{} is still stale after a build",
                    lib.display()
                );
            }
            dir
        })
        .clone()
}

/// Whether `lib` is missing or older than a source file it is built from.
fn stale(lib: &Path) -> bool {
    let Ok(built) = std::fs::metadata(lib).and_then(|m| m.modified()) else {
        return true;
    };
    newest_source().is_some_and(|(_, changed)| changed > built)
}

/// The most recently changed source file of the crates `libascendcl.so` is built from.
fn newest_source() -> Option<(PathBuf, std::time::SystemTime)> {
    fn walk(dir: &Path, newest: &mut Option<(PathBuf, std::time::SystemTime)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, newest);
            } else if path.extension().is_some_and(|e| e == "rs")
                && let Ok(changed) = entry.metadata().and_then(|m| m.modified())
                && newest.as_ref().is_none_or(|(_, t)| changed > *t)
            {
                *newest = Some((path, changed));
            }
        }
    }
    let crate_dir = crate_dir();
    let crates = crate_dir.parent()?;
    let mut newest = None;
    for krate in ["ascendcl-sim", "backend-sim", "notify-api", "acl-abi"] {
        walk(&crates.join(krate).join("src"), &mut newest);
    }
    newest
}

/// This crate's directory.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A directory of our own under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ascendcl-sim-{label}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating a temp dir");
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The entries of /dev/shm that belong to namespace `ns` (its segment and lock files).
pub fn shm_leftovers(ns: &str) -> Vec<String> {
    let prefix = format!("ascend-notify.{ns}");
    std::fs::read_dir("/dev/shm")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n == &prefix || n.starts_with(&format!("{prefix}.")))
                .collect()
        })
        .unwrap_or_default()
}
