//! The notify-api conformance suite, every rule, against the simulator.
//!
//! One `#[test]` per check, each in a namespace of its own. Multi-process checks spawn real
//! child processes by re-executing this test binary (the `child` entry point below).

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
        const SINGLE: &[&str] = &[$(stringify!($name)),*];
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
        const MULTI: &[&str] = &[$(stringify!($name)),*];
    };
}

single!(
    r1_record_before_wait_not_lost,
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

multi!(
    r1_cross_process_record_wakes_wait,
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

/// Every check the suite publishes has a test here: a check added to notify-api and not to
/// this file fails this test.
#[test]
fn every_published_check_runs() {
    let single: Vec<&str> = conformance::single_checks::<SimBackend>()
        .iter()
        .map(|(n, _)| *n)
        .collect();
    let multi: Vec<&str> = conformance::multi_checks::<SimBackend>()
        .iter()
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(single, SINGLE);
    assert_eq!(multi, MULTI);
}

/// R12: the virtualization check needs a backend built as a virtualization instance.
#[test]
fn r12_virtualized() {
    let ns = ScopedNamespace::new("r12");
    let backend = ns.builder().virtualized(true).build().expect("attach");
    conformance::r12_virtualized(&backend);
}
