//! Export keys from arbitrary bytes: `ExportKey::from_c_buf`, `FromStr`, and the simulator's key
//! decoding through `aclrtNotifyImportByKey` never panic, agree with an independent reading of
//! R7 and the model's code, and valid keys round-trip. Body: `test_kit::fuzz::key_parse`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        // SAFETY: libFuzzer runs `init` once, before the target starts any thread.
        unsafe { test_kit::fuzz::use_private_namespace("key") };
    },
    |data: &[u8]| {
        test_kit::fuzz::key_parse(data);
    }
);
