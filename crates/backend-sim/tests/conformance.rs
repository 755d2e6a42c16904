//! The notify-api conformance suite, every check, against the simulator.
//!
//! One `#[test]` per check, generated from the suite's own list (`for_each_check!`), each in a
//! namespace of its own. Multi-process checks spawn real child processes by re-executing this
//! test binary (the `child` entry point below).

use backend_sim::testing::{RoleSpawner, ScopedNamespace, StdioLink, child_role};
use backend_sim::{Sim, SimRuntime};
use notify_api::conformance::{self, Capability};

/// The simulator supports every capability the suite asks for.
const HAVE: &[Capability] = Capability::ALL;

/// Device memory per device (`ASCEND_NOTIFY_SIM_DEVICE_MEMORY`), fixed by the namespace's
/// creator: small, so that filling a device is cheap, and above 1 GiB, so that the 1 GiB page
/// of `HUGE1G_ONLY` fits (M1; the suite needs at least 16 MiB). Pages are backed only when
/// touched, so this costs nothing.
const DEVICE_MEMORY: u64 = (1 << 30) + (64 << 20);

#[test]
#[ignore = "entry point of spawned child processes"]
fn child() {
    let Some(role) = child_role() else { return };
    let rt = SimRuntime::from_env().expect("the child attaches to the parent's namespace");
    conformance::run_role::<Sim>(&rt, &role, &mut StdioLink);
}

fn run(name: &str) {
    let check = conformance::check::<Sim>(name).expect("a listed check");
    if let Some(why) = check.skip_reason(HAVE) {
        println!("skipped: {why}");
        return;
    }
    let ns = ScopedNamespace::new(name);
    // R12: the check that needs it gets a virtualization instance, every other a plain one.
    let rt = ns
        .builder()
        .virtualized(check.needs(Capability::Virtualized))
        .device_memory(DEVICE_MEMORY)
        .build()
        .expect("attach");
    check.run(&rt, &RoleSpawner::new("child", &ns));
}

macro_rules! conformance_tests {
    ($($name:ident : $kind:ident [$($cap:ident),*]),* $(,)?) => {
        $( #[test] fn $name() { run(stringify!($name)); } )*
    };
}

notify_api::for_each_check!(conformance_tests);
