//! A registry segment whose bytes come from the input (a real registry, corrupted): attach must
//! succeed or be refused with 507000, never panic, hang or read out of bounds (R14). Body:
//! `test_kit::fuzz::registry_attach`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    test_kit::fuzz::registry_attach(data);
});
