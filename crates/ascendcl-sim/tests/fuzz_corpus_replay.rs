//! Replays the checked-in corpora of the `key_parse` and `c_abi_sequence` fuzz targets
//! (`fuzz/corpus/<target>/`, see docs/FUZZING.md) through the same bodies the fuzzer runs,
//! `ascendcl::fuzzing::{key_parse, c_abi_sequence}`.
//!
//! `aclInit` state is process-wide, so each corpus runs in a child process of its own (a role of
//! this test binary, as in `bad_inputs.rs`) whose environment names a `ScopedNamespace`.

use backend_sim::fuzzing::{corpus, corpus_dir, panic_text};
use backend_sim::testing::{RoleSpawner, ScopedNamespace, child_role};

#[test]
#[ignore = "entry point of spawned child processes"]
fn child() {
    let Some(role) = child_role() else { return };
    let body: fn(&[u8]) = match role.as_str() {
        "key_parse" => ascendcl::fuzzing::key_parse,
        "c_abi_sequence" => ascendcl::fuzzing::c_abi_sequence,
        other => panic!("unknown role {other}"),
    };
    let files = corpus(&role);
    let mut failures = Vec::new();
    for (name, bytes) in &files {
        if let Err(p) = std::panic::catch_unwind(|| body(bytes)) {
            println!("FAIL  {name}: {}", panic_text(p.as_ref()));
            failures.push(name.clone());
            if role == "c_abi_sequence" {
                // The body initializes and finalizes around each input: end the session a
                // failed input left behind, so the next input starts clean.
                let _ = ascendcl::aclFinalize();
            }
        }
    }
    println!("replayed {} inputs of fuzz/corpus/{role}", files.len());
    assert!(
        failures.is_empty(),
        "{} of {} inputs failed: {failures:?}",
        failures.len(),
        files.len()
    );
    println!("{role}: all passed");
}

fn replay(target: &str) {
    // Fail here, in the parent, if the corpus is missing or empty.
    let count = corpus(target).len();
    let ns = ScopedNamespace::new(&format!("fuzz-{target}")).with_size(
        ascendcl::fuzzing::FUZZ_DEVICES,
        ascendcl::fuzzing::FUZZ_CAPACITY,
    );
    RoleSpawner::new("child", &ns).run(target).assert_passed(
        &format!("replaying fuzz/corpus/{target} ({count} files)"),
        &format!("{target}: all passed"),
    );
    println!("replayed {count} inputs of fuzz/corpus/{target}");
}

#[test]
fn fuzz_corpus_replay_key_parse() {
    replay("key_parse");
}

#[test]
fn fuzz_corpus_replay_c_abi_sequence() {
    replay("c_abi_sequence");
}

/// Writes the hand-made seeds into the corpus directories (run once; the files are checked in).
#[test]
#[ignore = "regenerates fuzz/corpus/{key_parse,c_abi_sequence}/seed-*"]
fn write_fuzz_seeds() {
    for (target, seeds) in [
        ("key_parse", ascendcl::fuzzing::key_parse_seeds()),
        ("c_abi_sequence", ascendcl::fuzzing::c_abi_sequence_seeds()),
    ] {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in seeds {
            std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
        }
    }
}
