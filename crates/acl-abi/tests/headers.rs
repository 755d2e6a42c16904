//! The checked-in headers are the rendered ones.
//!
//! `ACL_ABI_BLESS=1 cargo test -p acl-abi --test headers` rewrites the checked-in headers instead
//! of comparing.

use std::path::{Path, PathBuf};

use acl_abi::header;

const BLESS: &str = "ACL_ABI_BLESS=1 cargo test -p acl-abi --test headers";

fn blessing() -> bool {
    std::env::var_os("ACL_ABI_BLESS").is_some_and(|v| v == "1")
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Where the headers are checked in: `-I crates/ascendcl-sim/include`.
fn include_dir() -> PathBuf {
    manifest_dir().join("../ascendcl-sim/include")
}

/// Writes through a rename, so that a test reading `path` meanwhile sees the old or the new file.
fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// Compares `text` with the file at `path`, or writes it when blessing.
fn check_or_bless(path: &Path, text: &str) -> Result<(), String> {
    if blessing() {
        write(path, text);
        return Ok(());
    }
    match std::fs::read_to_string(path) {
        Ok(old) if old == text => Ok(()),
        Ok(_) => Err(format!("{} is out of date", path.display())),
        Err(e) => Err(format!("{} cannot be read: {e}", path.display())),
    }
}

#[test]
fn checked_in_headers_are_current() {
    let stale: Vec<String> = header::render_all()
        .iter()
        .filter_map(|(path, text)| check_or_bless(&include_dir().join(path), text).err())
        .collect();
    assert!(
        stale.is_empty(),
        "the checked-in headers differ from what acl-abi renders:\n  {}\nrerun with `{BLESS}` \
         to regenerate them, and commit the result",
        stale.join("\n  ")
    );
}
