//! The simulated C libraries, built as users get them, for the tests that load them.
//!
//! `cargo test` builds `ascendcl-sim` with the test features of its dev-dependencies unified
//! in, into `deps/`, and never refreshes `target/<profile>/libascendcl.so`, where `cargo build
//! -p ascendcl-sim` puts the library users link. So the tests that load the library
//! (`ascendcl-sim`'s, `backend-ascend`'s end-to-end ones, the facade's conformance run) ask for
//! it here: when it is missing or older than a source file it is built from, this runs that
//! `cargo build` (with the `cargo` running the tests, whose lock serialises concurrent test
//! binaries), once per process. No test skips for want of the library.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::SystemTime;

/// The crates the two libraries are built from.
const SOURCES: &[&str] = &[
    "ascendcl-sim",
    "acl-rt-sim",
    "backend-sim",
    "notify-api",
    "acl-abi",
];

/// `target/<profile>` of the running test binary (which lives in its `deps/`), holding an
/// up-to-date `libascendcl.so` and `libacl_rt.so`.
///
/// # Panics
/// If the build fails: the tests that need the libraries cannot run.
pub fn sim_lib_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test binary knows its path");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test binary lives in target/<profile>/deps")
            .to_path_buf();
        let libs = ["libascendcl.so", "libacl_rt.so"].map(|l| dir.join(l));
        if libs.iter().any(|l| stale(l)) {
            let profile = match dir.file_name().and_then(|n| n.to_str()) {
                Some("debug") | None => "dev".to_owned(),
                Some(name) => name.to_owned(),
            };
            let status = std::process::Command::new(cargo())
                .args(["build", "--quiet", "--profile", &profile])
                .args(["-p", "ascendcl-sim", "-p", "acl-rt-sim"])
                .arg("--manifest-path")
                .arg(workspace().join("Cargo.toml"))
                .stdin(std::process::Stdio::null())
                .status()
                .expect("running cargo to build libascendcl.so");
            assert!(status.success(), "building libascendcl.so failed: {status}");
            for l in &libs {
                assert!(!stale(l), "{} is still stale after a build", l.display());
            }
        }
        dir
    })
}

/// `target/<profile>/libascendcl.so`, up to date.
pub fn libascendcl() -> PathBuf {
    sim_lib_dir().join("libascendcl.so")
}

/// The `cargo` running the tests, else the one on the `PATH`.
fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Whether `lib` is missing or older than a source file it is built from.
fn stale(lib: &Path) -> bool {
    let Ok(built) = std::fs::metadata(lib).and_then(|m| m.modified()) else {
        return true;
    };
    newest_source().is_some_and(|changed| changed > built)
}

/// When a source file of the libraries last changed.
fn newest_source() -> Option<SystemTime> {
    fn walk(dir: &Path, newest: &mut Option<SystemTime>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, newest);
            } else if path.extension().is_some_and(|e| e == "rs" || e == "toml")
                && let Ok(changed) = entry.metadata().and_then(|m| m.modified())
                && newest.is_none_or(|t| changed > t)
            {
                *newest = Some(changed);
            }
        }
    }
    let mut newest = None;
    for krate in SOURCES {
        walk(&workspace().join("crates").join(krate), &mut newest);
    }
    newest
}
