//! Differential test (issue 5): the notify-api conformance suite against `backend-ascend`
//! loaded on the simulated `libascendcl.so` this crate builds.
//!
//! The same checks run against `backend-sim` directly in `crates/backend-sim/tests/
//! conformance.rs`; since every check asserts exact codes and effects, both passing means the
//! FFI path gives the same codes and effects as the simulator itself.
//!
//! The C library keeps one runtime per process (`aclInit`), attached to the namespace in
//! `ASCEND_NOTIFY_SIM_NAMESPACE`. So each check runs in a process of its own: the `#[test]`
//! re-executes this binary with the check's name, a fresh namespace and the library's path.

use std::path::PathBuf;

use backend_ascend::AscendBackend;
use backend_sim::testing::{RoleSpawner, ScopedNamespace, StdioLink, child_role};
use notify_api::conformance;

/// The `libascendcl.so` built with this test: `target/<profile>/libascendcl.so`.
fn shim_path() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let lib = dir.join("libascendcl.so");
    assert!(
        lib.exists(),
        "{} is missing: build ascendcl-sim first",
        lib.display()
    );
    lib
}

fn backend() -> AscendBackend {
    AscendBackend::from_env()
        .expect("load the simulated libascendcl.so named by ASCEND_NOTIFY_ACL_LIB")
}

/// Runs in the re-executed children: `check:<name>` runs one check on the FFI backend, any
/// other role is a conformance peer.
#[test]
#[ignore = "entry point of spawned child processes"]
fn child() {
    let Some(role) = child_role() else { return };
    let backend = backend();
    if let Some(name) = role.strip_prefix("check:") {
        let spawner = RoleSpawner::inherit("child");
        if let Some((_, check)) = conformance::single_checks::<AscendBackend>()
            .into_iter()
            .find(|(n, _)| *n == name)
        {
            check(&backend);
        } else if let Some((_, check)) = conformance::multi_checks::<AscendBackend>()
            .into_iter()
            .find(|(n, _)| *n == name)
        {
            check(&backend, &spawner);
        } else {
            panic!("no conformance check named {name}");
        }
        println!("check {name}: passed");
        return;
    }
    conformance::run_role(&backend, &role, &mut StdioLink);
}

fn run_check(name: &str) {
    let ns = ScopedNamespace::new(name);
    RoleSpawner::new("child", &ns)
        .env(
            "ASCEND_NOTIFY_ACL_LIB",
            shim_path().to_str().expect("utf-8 path"),
        )
        .run(&format!("check:{name}"))
        .assert_passed(
            &format!("{name} through the C ABI"),
            &format!("check {name}: passed"),
        );
}

/// One `#[test]` per check, from the suite's own list (`for_each_*_check!`).
macro_rules! checks {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_check(stringify!($name));
            }
        )*
    };
}

notify_api::for_each_single_check!(checks);
notify_api::for_each_multi_check!(checks);
