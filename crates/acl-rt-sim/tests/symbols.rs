//! `libacl_rt.so` exports exactly the ACL symbols of `libascendcl.so`: every function of the
//! ABI manifest (SEMANTICS.md §1, §5, §6), defined, and nothing else under an `acl` name.

use std::path::Path;
use std::process::Command;

/// `target/<profile>`, holding both libraries as `cargo build` makes them (built here when
/// missing or stale: `cargo test` does not build a cdylib-only package's library).
fn lib_dir() -> &'static Path {
    test_kit::libs::sim_lib_dir()
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
    assert_eq!(
        acl_exports(&dir.join("libacl_rt.so")),
        acl_exports(&ascendcl)
    );
}
