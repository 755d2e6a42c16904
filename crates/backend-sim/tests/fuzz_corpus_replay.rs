//! Replays the checked-in corpus of the `registry_attach` fuzz target
//! (`fuzz/corpus/registry_attach/`, see docs/FUZZING.md) through the same body the fuzzer runs,
//! `backend_sim::fuzzing::registry_attach`: every input must attach or be refused with 507000,
//! never panic or hang (R14).

use backend_sim::fuzzing::{self, corpus, corpus_dir, panic_text};

#[test]
fn fuzz_corpus_replay() {
    let files = corpus("registry_attach");
    let mut failures = Vec::new();
    let (mut attached, mut refused) = (0, 0);
    for (name, bytes) in &files {
        match std::panic::catch_unwind(|| fuzzing::registry_attach(bytes)) {
            Ok(fuzzing::Outcome::Attached) => attached += 1,
            Ok(fuzzing::Outcome::Refused) => refused += 1,
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
        "replayed {} inputs of fuzz/corpus/registry_attach: {attached} attached, {refused} refused",
        files.len()
    );
    assert!(
        attached > 0 && refused > 0,
        "the corpus should reach both sides of the header check"
    );
}

/// Writes the hand-made seeds into the corpus directory (run once; the files are checked in).
#[test]
#[ignore = "regenerates fuzz/corpus/registry_attach/seed-*"]
fn write_fuzz_seeds() {
    let dir = corpus_dir("registry_attach");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in fuzzing::seeds() {
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    }
}
