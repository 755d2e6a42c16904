//! Replays the checked-in corpora of the fuzz targets (`fuzz/corpus/<target>/`, see
//! docs/FUZZING.md) through the same bodies the fuzzer runs, `test_kit::fuzz::*`, as ordinary
//! tests: every input must pass, and each corpus must be non-empty.
//!
//! `aclInit` state is process-wide, so the two C corpora run each in a child process of their
//! own (a role of this test binary, re-executed by `RoleSpawner`) whose environment names a
//! `ScopedNamespace` of the fuzzers' size. `registry_attach` attaches without `aclInit` and runs
//! here.

use std::path::PathBuf;

use backend_sim::testing::{RoleSpawner, ScopedNamespace, child_role};
use test_kit::fuzz::{
    self, FUZZ_CAPACITY, FUZZ_DEVICE_MEMORY, FUZZ_DEVICES, panic_text, read_corpus,
};

/// `fuzz/corpus/<target>/` of this repository (a test may name a path of the repository; the
/// libraries may not).
fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

#[test]
#[ignore = "entry point of spawned child processes"]
fn child() {
    let Some(role) = child_role() else { return };
    let body: fn(&[u8]) = match role.as_str() {
        "key_parse" => fuzz::key_parse,
        "c_abi_sequence" => fuzz::c_abi_sequence,
        other => panic!("unknown role {other}"),
    };
    let files = read_corpus(&corpus_dir(&role));
    let mut failures = Vec::new();
    for (name, bytes) in &files {
        if let Err(p) = std::panic::catch_unwind(|| body(bytes)) {
            println!("FAIL  {name}: {}", panic_text(p.as_ref()));
            failures.push(name.clone());
            if role == "c_abi_sequence" {
                // The body initializes and finalizes around each input: end the session a
                // failed input left behind, so that the next input starts clean.
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
    let count = read_corpus(&corpus_dir(target)).len();
    let ns = ScopedNamespace::new(&format!("fuzz-{target}")).with_size(FUZZ_DEVICES, FUZZ_CAPACITY);
    RoleSpawner::new("child", &ns)
        .with_env(&[(
            backend_sim::ENV_DEVICE_MEMORY,
            &FUZZ_DEVICE_MEMORY.to_string(),
        )])
        .run(target)
        .assert_passed(
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

#[test]
fn fuzz_corpus_replay_registry_attach() {
    let files = read_corpus(&corpus_dir("registry_attach"));
    let mut failures = Vec::new();
    let (mut attached, mut refused) = (0, 0);
    let mut reasons = std::collections::BTreeMap::<String, u32>::new();
    for (name, bytes) in &files {
        match std::panic::catch_unwind(|| fuzz::registry_attach(bytes)) {
            Ok(fuzz::registry_attach::Outcome::Attached) => attached += 1,
            Ok(fuzz::registry_attach::Outcome::Refused(why)) => {
                refused += 1;
                let what = why.split(" (").nth(1).unwrap_or(&why).split(')').next();
                *reasons
                    .entry(what.unwrap_or_default().to_owned())
                    .or_default() += 1;
                if name.starts_with("crash-f1") && !why.contains("marked removed") {
                    failures.push(format!(
                        "{name}: refused for another reason than F1's ({why}); the layout \
                         changed: re-derive it from test_kit::fuzz::registry_attach::f1_input"
                    ));
                }
            }
            Err(p) => failures.push(format!("{name}: {}", panic_text(p.as_ref()))),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus inputs failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    println!(
        "replayed {} inputs of fuzz/corpus/registry_attach: {attached} attached, {refused} \
         refused",
        files.len()
    );
    for (why, n) in &reasons {
        println!("  refused {n}x: {why}");
    }
    assert!(
        attached > 0 && refused > 0,
        "the corpus should reach both sides of the header check"
    );
}

/// Finding F1 (docs/FUZZING.md): its regression input is refused as F1's fix says, not hung.
#[test]
fn registry_attach_f1_is_refused() {
    match fuzz::registry_attach(&fuzz::registry_attach::f1_input()) {
        fuzz::registry_attach::Outcome::Refused(why) => {
            assert!(why.contains("marked removed"), "refused for: {why}");
        }
        other => panic!("F1's input attached: {other:?}"),
    }
}

/// Writes the hand-made seeds into the corpus directories (run it after changing a body's
/// input format; the files are checked in), and F1's regression input.
#[test]
#[ignore = "regenerates fuzz/corpus/*/seed-*"]
fn write_fuzz_seeds() {
    fuzz::write_seeds(&corpus_dir("key_parse"), &fuzz::key_parse::seeds());
    let cabi = corpus_dir("c_abi_sequence");
    fuzz::write_seeds(&cabi, &fuzz::c_abi_sequence::seeds());
    std::fs::write(
        cabi.join("crash-m1-malloc-size-max"),
        fuzz::c_abi_sequence::m1_size_max_input(),
    )
    .unwrap();
    let dir = corpus_dir("registry_attach");
    fuzz::write_seeds(&dir, &fuzz::registry_attach::seeds());
    std::fs::write(
        dir.join("crash-f1-state-removed-hang"),
        fuzz::registry_attach::f1_input(),
    )
    .unwrap();
}
