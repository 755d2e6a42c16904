//! The notify-api conformance suite against the facade (issue 11): every check through
//! `ascend_notify::Runtime` and its erased handles (`Dyn`), over the simulator (`sim::*`) and
//! over `ascend` on the simulated `libascendcl.so` (`ascend::*`), as the backends themselves run
//! it (`crates/backend-sim/tests/conformance.rs`, `crates/ascendcl-sim/tests/differential.rs`).
//!
//! The checks assert exact codes and effects, so the facade passing them on both backends means
//! the erased layer changes nothing. Every process picks its backend the way users do:
//! `ASCEND_NOTIFY_BACKEND` (and, for `ascend`, `ASCEND_NOTIFY_ACL_LIB`). The C library keeps one
//! runtime per process (`aclInit`), so each `ascend` check runs in a child process of its own;
//! peers of multi-process checks are re-executions of this binary too.

#![cfg(all(feature = "sim", feature = "ascend"))]

use ascend_notify::backend_ascend::sys::LIBRARY_ENV as ACL_LIB_ENV;
use ascend_notify::backend_sim::testing::{RoleSpawner, ScopedNamespace, StdioLink, child_role};
use ascend_notify::backend_sim::{ENV_DEVICE_MEMORY, ENV_VIRTUAL};
use ascend_notify::{BACKEND_ENV, BackendKind, Dyn, Runtime};
use notify_api::conformance::{self, Capability};

/// The simulator underneath supports every capability the suite asks for.
const HAVE: &[Capability] = Capability::ALL;

/// Device memory per device, as the simulator's own run sets it (1 GiB pages fit; sparse).
const DEVICE_MEMORY: u64 = (1 << 30) + (64 << 20);

/// The role prefix of the child that runs one `ascend` check.
const CHECK: &str = "check:";

/// Every child: `check:<name>` runs one check; any other role is a conformance peer. The
/// backend comes from the environment, as in any program built on the facade.
#[test]
#[ignore = "entry point of spawned child processes"]
fn child() {
    let Some(role) = child_role() else { return };
    let rt = Runtime::builder()
        .build()
        .expect("the backend the environment names");
    let Some(name) = role.strip_prefix(CHECK) else {
        conformance::run_role::<Dyn>(&rt, &role, &mut StdioLink);
        return;
    };
    let check = conformance::check::<Dyn>(name).expect("a listed check");
    // Peers get this process's environment, but never a virtualization instance (R12 is per
    // process).
    let peers = RoleSpawner::inherit("child").env(ENV_VIRTUAL, "0");
    check.run(&rt, &peers);
    drop(rt);
    println!("check {name}: passed");
}

fn run_sim(name: &str) {
    let check = conformance::check::<Dyn>(name).expect("a listed check");
    if let Some(why) = check.skip_reason(HAVE) {
        println!("skipped: {why}");
        return;
    }
    let ns = ScopedNamespace::new(name);
    let rt = Runtime::builder()
        .backend(BackendKind::Sim)
        .namespace(ns.name())
        .devices(4)
        .capacity(64)
        .device_memory(DEVICE_MEMORY)
        .virtualized(check.needs(Capability::Virtualized))
        .build()
        .expect("attach");
    assert_eq!(rt.kind(), BackendKind::Sim);
    let peers = RoleSpawner::new("child", &ns).env(BACKEND_ENV, "sim");
    check.run(&rt, &peers);
}

fn run_ascend(name: &str) {
    let check = conformance::check::<Dyn>(name).expect("a listed check");
    if let Some(why) = check.skip_reason(HAVE) {
        println!("skipped: {why}");
        return;
    }
    let ns = ScopedNamespace::new(name);
    let lib = test_kit::libs::libascendcl();
    let virtualized = if check.needs(Capability::Virtualized) {
        "1"
    } else {
        "0"
    };
    RoleSpawner::new("child", &ns)
        .env(BACKEND_ENV, "ascend")
        .env(ACL_LIB_ENV, lib.to_str().expect("a UTF-8 path"))
        .env(ENV_DEVICE_MEMORY, &DEVICE_MEMORY.to_string())
        .env(ENV_VIRTUAL, virtualized)
        .run(&format!("{CHECK}{name}"))
        .assert_passed(
            &format!("{name} through the facade over the C ABI"),
            &format!("check {name}: passed"),
        );
    let left = ascend_notify::backend_sim::namespace_files(ns.name());
    assert!(left.is_empty(), "{name} left in /dev/shm: {left:?}");
}

macro_rules! conformance_tests {
    ($($name:ident : $kind:ident [$($cap:ident),*]),* $(,)?) => {
        mod sim {
            $( #[test] fn $name() { super::run_sim(stringify!($name)); } )*
        }
        mod ascend {
            $( #[test] fn $name() { super::run_ascend(stringify!($name)); } )*
        }
    };
}

notify_api::for_each_check!(conformance_tests);
