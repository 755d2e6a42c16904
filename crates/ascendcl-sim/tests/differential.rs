//! Differential test (issue 5): the notify-api conformance suite against `backend-ascend`
//! loaded on the simulated `libascendcl.so` this crate builds.
//!
//! The same checks run against `backend-sim` directly in `crates/backend-sim/tests/
//! conformance.rs`; since every check asserts exact codes and effects, both passing means the
//! FFI path gives the same codes and effects as the simulator itself.
//!
//! One `#[test]` per check, generated from the suite's own list (`for_each_check!`). The C
//! library keeps one runtime per process (`aclInit`), attached to the namespace in
//! `ASCEND_NOTIFY_SIM_NAMESPACE`, so each check runs in a child process of its own: the
//! `#[test]` re-executes this binary with the check's name, a fresh namespace and the library's
//! path. Peers of multi-process checks are re-executions too, started by that child.
//!
//! The library is the simulator, so every capability of the suite is available; the check that
//! needs a virtualization instance (R12) gets one by `ASCEND_NOTIFY_SIM_VIRTUAL=1` in the child
//! that runs it (the library reads it at `aclInit`), every other check a plain process.

mod common;

use backend_ascend::sys::LIBRARY_ENV;
use backend_ascend::{Ascend, AscendRuntime};
use backend_sim::ENV_VIRTUAL;
use backend_sim::testing::{RoleSpawner, ScopedNamespace, StdioLink, child_role};
use notify_api::conformance::{self, Capability};

/// The simulator underneath supports every capability the suite asks for.
const HAVE: &[Capability] = Capability::ALL;

/// The role prefix of the child that runs one check.
const CHECK: &str = "check:";

/// Runs in the re-executed children: `check:<name>` runs one check on the FFI backend, any
/// other role is a conformance peer (attached to the same library and namespace).
#[test]
#[ignore = "entry point of spawned child processes"]
fn child() {
    let Some(role) = child_role() else { return };
    let rt = AscendRuntime::from_env()
        .expect("load the simulated libascendcl.so named by ASCEND_NOTIFY_ACL_LIB and aclInit");
    let Some(name) = role.strip_prefix(CHECK) else {
        conformance::run_role::<Ascend>(&rt, &role, &mut StdioLink);
        return;
    };
    let check = conformance::check::<Ascend>(name).expect("a listed check");
    // Peers get this process's environment (namespace, library), but never a virtualization
    // instance: only the process that runs the check is one (R12 is per process).
    let peers = RoleSpawner::inherit("child").env(ENV_VIRTUAL, "0");
    check.run(&rt, &peers);
    drop(rt);
    println!("check {name}: passed");
}

fn run(name: &str) {
    let check = conformance::check::<Ascend>(name).expect("a listed check");
    if let Some(why) = check.skip_reason(HAVE) {
        println!("skipped: {why}");
        return;
    }
    let ns = ScopedNamespace::new(name);
    let lib = common::lib_dir().join("libascendcl.so");
    let virtualized = if check.needs(Capability::Virtualized) {
        "1"
    } else {
        "0"
    };
    RoleSpawner::new("child", &ns)
        .env(LIBRARY_ENV, lib.to_str().expect("a UTF-8 path"))
        .env(ENV_VIRTUAL, virtualized)
        .run(&format!("{CHECK}{name}"))
        .assert_passed(
            &format!("{name} through the C ABI"),
            &format!("check {name}: passed"),
        );
    // Every process detached: the last one out removed the namespace (§4 "Cleanup").
    let left = backend_sim::namespace_files(ns.name());
    assert!(left.is_empty(), "{name} left in /dev/shm: {left:?}");
}

macro_rules! conformance_tests {
    ($($name:ident : $kind:ident [$($cap:ident),*]),* $(,)?) => {
        $( #[test] fn $name() { run(stringify!($name)); } )*
    };
}

notify_api::for_each_check!(conformance_tests);
