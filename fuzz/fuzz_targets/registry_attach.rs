//! A registry segment whose bytes come from the input: attach must succeed or be refused with
//! 507000, never panic, hang or read out of bounds (R14). Body: `backend_sim::fuzzing`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    backend_sim::fuzzing::registry_attach(data);
});
