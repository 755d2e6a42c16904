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
        return;
    }
    conformance::run_role(&backend, &role, &mut StdioLink);
}

fn run_check(name: &str) {
    let ns = ScopedNamespace::new(name);
    let out = RoleSpawner::new("child", &ns)
        .env(
            "ASCEND_NOTIFY_ACL_LIB",
            shim_path().to_str().expect("utf-8 path"),
        )
        .run(&format!("check:{name}"));
    assert!(
        out.status.success(),
        "{name} failed through the C ABI:\n{}\n{}",
        out.stdout,
        out.stderr
    );
}

macro_rules! checks {
    ($list:ident: $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_check(stringify!($name));
            }
        )*
        const $list: &[&str] = &[$(stringify!($name)),*];
    };
}

checks!(
    SINGLE: r1_record_before_wait_not_lost,
    r1_records_merge,
    r1_one_record_releases_one_wait,
    r1_batch_reset,
    r2_enqueue_is_asynchronous,
    r2_stream_order,
    r2_synchronize_reports_failure_once,
    r2_synchronize_timeout_gives_up_tasks_keep_running,
    r2_synchronize_async,
    r2_enqueue_never_fails_when_busy,
    r2_default_stream,
    r2_destroyed_stream_finishes_tasks,
    r3_wait_timeout_reported_at_sync,
    r3_timeout_leaves_flag_and_stream_goes_on,
    r3_zero_timeout_waits_forever,
    r4_wait_on_other_device_stream,
    r5_export_once,
    r5_key_format,
    r5_key_never_resolves_to_reused_slot,
    r6_whitelist_before_export,
    r6_whitelist_on_disable_export,
    r6_whitelist_cap_64_all_or_nothing,
    r6_whitelist_cumulative_and_idempotent,
    r7_import_malformed_key,
    r7_import_unknown_key,
    r7_import_own_notify,
    r7_peer_access_calls,
    r8_creator_destroy_revokes_key,
    r8_pending_task_keeps_reference,
    r10_notify_ids_unique,
    r11_capacity,
    r13_contexts,
    r14_failed_calls_change_nothing,
    r15_order_of_checks
);
checks!(
    MULTI: r1_cross_process_record_wakes_wait,
    r1_cross_process_records_merge,
    r1_batch_reset_by_importer,
    r4_importer_cannot_wait,
    r5_export_only_by_creator,
    r6_whitelist_by_bare_tgid,
    r6_whitelist_only_by_creator,
    r6_disable_pid_validation_any_process,
    r7_import_not_whitelisted,
    r7_whitelist_checked_at_import,
    r7_peer_access,
    r8_creator_destroy_revokes_key_importers_keep_working,
    r8_slot_freed_after_last_reference,
    r9_exit_holding_reference_is_released,
    r9_killed_holder_is_reclaimed,
    r9_dead_creator_notify_freed_with_last_importer,
    r9_death_never_records,
    r10_importer_sees_creator_id,
    r14_peer_bad_input_and_death_harm_nothing,
    r15_order_of_checks_across_processes
);

/// Every published check has a test here: a check added to notify-api and not here fails.
#[test]
fn every_published_check_runs() {
    let single: Vec<&str> = conformance::single_checks::<AscendBackend>()
        .iter()
        .map(|(n, _)| *n)
        .collect();
    let multi: Vec<&str> = conformance::multi_checks::<AscendBackend>()
        .iter()
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(single, SINGLE);
    assert_eq!(multi, MULTI);
}
