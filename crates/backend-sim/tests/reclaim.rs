//! R9 and §4 "Cleanup" across real processes, beyond the conformance suite: what reclaims a
//! process that was SIGKILLed, when nothing it held is touched again.
//!
//! Reading (the inspector's `inspect`) never reclaims; the explicit step (the inspector's
//! `reclaim`), an attach to a namespace whose processes are all dead, the last clean detach and
//! the calls that meet the dead process do; and an amortised step taken by ordinary calls
//! reaches any other dead process in time.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use backend_sim::testing::{ScopedNamespace, StdioLink, child_role};
use backend_sim::{SimRuntime, inspect};
use notify_api::prelude::*;
use notify_api::{DeviceId, ExportFlags, NotifyFlags};

mod common;
use common::Proc;

#[test]
#[ignore = "entry point of spawned child processes"]
fn child() {
    let Some(role) = child_role() else { return };
    match role.as_str() {
        // Creates a notify on device 0 that nobody else will hold, exports it, says
        // `holding <bare tgid> <id>` and waits to be killed.
        "holder" => {
            let mut link = StdioLink;
            let rt = SimRuntime::from_env().expect("the holder attaches");
            let dev = rt.device(DeviceId(0)).unwrap();
            let n = dev.create_notify(NotifyFlags::DEFAULT).unwrap();
            n.export(ExportFlags::DISABLE_PID_VALIDATION).unwrap();
            link.send(&format!(
                "holding {} {}",
                rt.bare_tgid().unwrap(),
                n.id().unwrap().0
            ));
            let _ = link.recv();
        }
        other => panic!("unknown role {other}"),
    }
}

/// Starts a holder in `ns` and returns it with its bare tgid.
fn holder(ns: &ScopedNamespace) -> (Proc, i32) {
    let mut p = Proc::start(&[], "child", "holder", &ns.env());
    let line = p.recv();
    let tgid = line
        .strip_prefix("holding ")
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("a holding line: {line}"))
        .parse()
        .unwrap();
    (p, tgid)
}

fn kill(mut p: Proc) {
    p.kill();
    let (status, _) = p.finish();
    assert!(!status.success(), "the holder was killed: {status}");
}

/// (alive, dead) bare tgids of a snapshot.
fn procs(ns: &ScopedNamespace) -> (BTreeSet<i32>, BTreeSet<i32>) {
    let snap = inspect::inspect(ns.name()).unwrap().expect("the namespace");
    let pick = |alive: bool| {
        snap.processes
            .iter()
            .filter(|p| p.alive == alive)
            .map(|p| p.tgid)
            .collect()
    };
    (pick(true), pick(false))
}

fn sorted_files(ns: &ScopedNamespace) -> Vec<String> {
    let mut f = backend_sim::namespace_files(ns.name());
    f.sort_unstable();
    f
}

/// §4 ("An attach to a namespace whose processes are all dead reclaims them first"), R9: two
/// holders, the namespace's only processes, are killed; reading leaves them listed as dead;
/// the next attach reclaims both (their notifies freed, their lock files removed) before it
/// counts itself.
#[test]
fn attach_to_an_all_dead_namespace_reclaims_first() {
    let ns = ScopedNamespace::new("reclaim-attach");
    let (a, ta) = holder(&ns);
    let (b, tb) = holder(&ns);
    let files_alive = sorted_files(&ns);
    kill(a);
    kill(b);
    assert_eq!(
        procs(&ns),
        (BTreeSet::new(), BTreeSet::from([ta, tb])),
        "reading never reclaims"
    );
    assert_eq!(sorted_files(&ns), files_alive, "reading removes nothing");
    let snap = inspect::inspect(ns.name()).unwrap().unwrap();
    assert_eq!(snap.notifies.len(), 2, "{snap:?}");

    let rt = ns.builder().build().expect("attach");
    let me = rt.bare_tgid().unwrap().raw();
    assert_eq!(procs(&ns), (BTreeSet::from([me]), BTreeSet::new()));
    let snap = inspect::inspect(ns.name()).unwrap().unwrap();
    assert!(
        snap.notifies.is_empty(),
        "the dead holders' notifies are freed: {snap:?}"
    );
    let files = sorted_files(&ns);
    assert_eq!(
        files.len(),
        files_alive.len() - 1,
        "R9: their two lock files are gone, ours is there: {files:?} (before: {files_alive:?})"
    );
    drop(rt);
    assert!(backend_sim::namespace_files(ns.name()).is_empty());
}

/// §4 "Cleanup": the last live process to detach cleanly reclaims every dead one first and
/// removes the namespace, so nothing is left in `/dev/shm` however many were killed.
#[test]
fn last_clean_detach_leaves_nothing_after_kills() {
    let ns = ScopedNamespace::new("reclaim-last");
    let rt = ns.builder().build().unwrap();
    let holders: Vec<(Proc, i32)> = (0..3).map(|_| holder(&ns)).collect();
    let dead: BTreeSet<i32> = holders.iter().map(|(_, t)| *t).collect();
    for (p, _) in holders {
        kill(p);
    }
    assert_eq!(procs(&ns).1, dead);
    drop(rt);
    assert!(!backend_sim::namespace_exists(ns.name()));
    assert!(
        backend_sim::namespace_files(ns.name()).is_empty(),
        "{:?}",
        backend_sim::namespace_files(ns.name())
    );
}

/// R9: a killed process that held nothing anybody touches again is still reclaimed by the
/// ordinary calls of the others (the amortised step: each call probes at most one more process
/// slot, at most once a millisecond, round robin), within a number of calls bounded by the size
/// of the process table in use, not only by an explicit reclaim.
#[test]
fn unrelated_death_is_reclaimed_by_later_calls() {
    let ns = ScopedNamespace::new("reclaim-step");
    let rt = ns.builder().build().unwrap();
    let dev = rt.device(DeviceId(0)).unwrap();
    let (a, ta) = holder(&ns);
    let (b, tb) = holder(&ns);
    kill(a);
    assert_eq!(procs(&ns).1, BTreeSet::from([ta]));
    let t = Instant::now();
    let mut calls = 0;
    while procs(&ns).1.contains(&ta) {
        // Creates and destroys, a little more than a step interval apart.
        std::thread::sleep(Duration::from_millis(2));
        let n = dev.create_notify(NotifyFlags::DEFAULT).unwrap();
        n.destroy().unwrap();
        calls += 2;
        assert!(
            calls <= 2 * 16,
            "R9: the dead holder {ta} is still not reclaimed after {calls} calls in {:?}",
            t.elapsed()
        );
    }
    let (alive, dead) = procs(&ns);
    assert!(dead.is_empty());
    assert!(
        alive.contains(&tb),
        "the live holder is not taken for the dead one"
    );
    let snap = inspect::inspect(ns.name()).unwrap().unwrap();
    assert_eq!(snap.notifies.len(), 1, "only the live holder's: {snap:?}");
    drop(b);
    drop((dev, rt));
    assert!(backend_sim::namespace_files(ns.name()).is_empty());
}

/// R9 as SEMANTICS.md words it: "Reclamation happens no later than the next create, import,
/// destroy or attach by any live process in the namespace". A holder whose notify nobody else
/// holds is killed; the very next create by another process must have reclaimed it, although
/// that create meets none of the dead holder's notifies (the death count of
/// `registry/deaths.rs` tells it in one call that somebody died).
#[test]
fn next_create_reclaims_an_unrelated_death() {
    let ns = ScopedNamespace::new("reclaim-next");
    let rt = ns.builder().build().unwrap();
    let dev = rt.device(DeviceId(0)).unwrap();
    let holders: Vec<(Proc, i32)> = (0..4).map(|_| holder(&ns)).collect();
    let mut holders = holders.into_iter();
    let (victim, tv) = holders.nth(2).expect("a third holder");
    kill(victim);
    std::thread::sleep(Duration::from_millis(2));
    let n = dev.create_notify(NotifyFlags::DEFAULT).unwrap();
    assert!(
        !procs(&ns).1.contains(&tv),
        "R9: the next create did not reclaim the dead holder {tv}"
    );
    drop(n);
    drop(holders);
}

/// §4 "Cleanup": the namespace's death-count semaphores (named by a file of the namespace in
/// /dev/shm) are removed with its files when the last process detaches, and by an explicit
/// remove of a namespace whose processes were all killed.
#[test]
fn death_semaphores_go_with_the_namespace() {
    let sem_of = |ns: &ScopedNamespace| -> i32 {
        let files = backend_sim::namespace_files(ns.name());
        let name = files
            .iter()
            .find_map(|f| f.rsplit_once(".sem").map(|(_, id)| id.to_owned()))
            .unwrap_or_else(|| panic!("no semaphore file among {files:?}"));
        name.parse().expect("a semaphore id")
    };
    // SAFETY: GETVAL takes no fourth argument and touches no memory of ours.
    let exists = |id: i32| unsafe { libc::semctl(id, 0, libc::GETVAL) } >= 0;

    let ns = ScopedNamespace::new("reclaim-sem");
    let rt = ns.builder().build().unwrap();
    let id = sem_of(&ns);
    assert!(
        exists(id),
        "the namespace's semaphore set {id} exists while it is attached"
    );
    drop(rt);
    assert!(!exists(id), "the last detach removed semaphore set {id}");
    assert!(backend_sim::namespace_files(ns.name()).is_empty());

    let ns = ScopedNamespace::new("reclaim-sem-killed");
    let rt = ns.builder().build().unwrap();
    let (h, _) = holder(&ns);
    let id = sem_of(&ns);
    // This process leaves cleanly, the holder is killed: the namespace stays, named by its
    // files, until somebody removes it.
    drop(rt);
    kill(h);
    assert!(
        exists(id),
        "semaphore set {id} outlives a namespace nobody removed yet"
    );
    assert!(backend_sim::remove_namespace(ns.name()).unwrap());
    assert!(
        !exists(id),
        "removing the namespace removed semaphore set {id}"
    );
}
