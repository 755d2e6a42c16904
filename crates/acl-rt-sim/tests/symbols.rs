//! `libacl_rt.so` exports exactly the ACL symbols of `libascendcl.so`: every function of the
//! ABI manifest (SEMANTICS.md §1, §5, §6), defined, and nothing else under an `acl` name.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `target/<profile>/deps`, where `cargo test` builds this crate's cdylib next to the test
/// binary (fresh: it is this test's own library).
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    exe.parent()
        .expect("the test binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// The defined dynamic symbols whose names start with `acl`: `nm -D --defined-only`.
fn acl_exports(lib: &Path) -> Vec<String> {
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(lib)
        .output()
        .expect("nm could not be run");
    assert!(out.status.success(), "nm {} failed: {out:?}", lib.display());
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("T"))
        .filter_map(|l| l.split_whitespace().last().map(str::to_owned))
        .filter(|s| s.starts_with("acl"))
        .collect();
    names.sort();
    names
}

#[test]
fn libacl_rt_exports_every_manifest_function() {
    let lib = lib_dir().join("libacl_rt.so");
    assert!(lib.exists(), "{} was not built", lib.display());
    let exported = acl_exports(&lib);
    let mut expected: Vec<String> = acl_abi::SYMBOLS.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(
        exported,
        expected,
        "{} exports the wrong set",
        lib.display()
    );
}

#[test]
fn libacl_rt_and_libascendcl_export_the_same_symbols() {
    let dir = lib_dir();
    let ascendcl = dir.join("libascendcl.so");
    if !ascendcl.exists() {
        // cargo builds only this package's dependencies' rlibs for `cargo test -p acl-rt-sim`.
        eprintln!(
            "skipped: {} is not built (run `cargo build -p ascendcl-sim` or test the workspace)",
            ascendcl.display()
        );
        return;
    }
    assert_eq!(
        acl_exports(&dir.join("libacl_rt.so")),
        acl_exports(&ascendcl)
    );
}
