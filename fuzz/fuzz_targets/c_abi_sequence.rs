//! Sequences of ACL C calls with real, destroyed, corrupted and NULL handles, arbitrary lengths,
//! flags, pid lists and keys: no crash, only codes of SEMANTICS.md §2, the exact code where the
//! model knows it, and a message after every failure. Body: `ascendcl::fuzzing::c_abi_sequence`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        // SAFETY: libFuzzer runs `init` once, before the target starts any thread.
        unsafe { ascendcl::fuzzing::use_private_namespace("cabi") };
    },
    |data: &[u8]| {
        ascendcl::fuzzing::c_abi_sequence(data);
    }
);
