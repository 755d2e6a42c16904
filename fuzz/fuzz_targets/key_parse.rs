//! Export keys from arbitrary bytes: `ExportKey::from_c_buf`, `FromStr`, and the simulator's key
//! decoding through `aclrtNotifyImportByKey` never panic, agree with R7, and valid keys
//! round-trip. Body: `ascendcl::fuzzing::key_parse`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        // SAFETY: libFuzzer runs `init` once, before the target starts any thread.
        unsafe { ascendcl::fuzzing::use_private_namespace("key") };
    },
    |data: &[u8]| {
        ascendcl::fuzzing::key_parse(data);
    }
);
