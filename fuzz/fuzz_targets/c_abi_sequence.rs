//! Sequences of ACL C calls with real, destroyed, corrupted and NULL handles, arbitrary lengths,
//! flags, pid lists and keys, and a second (typed) attach in the same namespace: every code is
//! the one the model of the contract gives, and the registry matches the model after every
//! step. Body: `test_kit::fuzz::c_abi_sequence`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        // SAFETY: libFuzzer runs `init` once, before the target starts any thread.
        unsafe { test_kit::fuzz::use_private_namespace("cabi") };
    },
    |data: &[u8]| {
        test_kit::fuzz::c_abi_sequence(data);
    }
);
