//! The notify-api conformance suite, every rule, against the simulator.
//!
//! One `#[test]` per check, generated from the suite's own list (`for_each_*_check!`), each in
//! a namespace of its own. Multi-process checks spawn real child processes by re-executing this
//! test binary (the `child` entry point below).

use backend_sim::SimBackend;
use backend_sim::testing::{RoleSpawner, ScopedNamespace, StdioLink, child_role};
use notify_api::conformance;

#[test]
#[ignore = "entry point of spawned child processes"]
fn child() {
    let Some(role) = child_role() else { return };
    let backend = SimBackend::from_env().expect("the child attaches to the parent's namespace");
    conformance::run_role(&backend, &role, &mut StdioLink);
}

fn backend(ns: &ScopedNamespace) -> SimBackend {
    ns.builder().build().expect("attach")
}

macro_rules! single {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let ns = ScopedNamespace::new(stringify!($name));
                conformance::$name(&backend(&ns));
            }
        )*
    };
}

macro_rules! multi {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let ns = ScopedNamespace::new(stringify!($name));
                let spawner = RoleSpawner::new("child", &ns);
                conformance::$name(&backend(&ns), &spawner);
            }
        )*
    };
}

notify_api::for_each_single_check!(single);

notify_api::for_each_multi_check!(multi);

/// R12: the virtualization check needs a backend built as a virtualization instance.
#[test]
fn r12_virtualized() {
    let ns = ScopedNamespace::new("r12");
    let backend = ns.builder().virtualized(true).build().expect("attach");
    conformance::r12_virtualized(&backend);
}
