//! The built `libascendcl.so` exports every symbol of SEMANTICS.md §1, defined (not imported).

mod common;

use std::process::Command;

/// §1: the notify calls, then the runtime calls the flow needs.
const REQUIRED: &[&str] = &[
    "aclrtCreateNotify",
    "aclrtDestroyNotify",
    "aclrtRecordNotify",
    "aclrtWaitAndResetNotify",
    "aclrtGetNotifyId",
    "aclrtNotifyBatchReset",
    "aclrtNotifyGetExportKey",
    "aclrtNotifyImportByKey",
    "aclrtNotifySetImportPid",
    "aclrtDeviceGetBareTgid",
    "aclInit",
    "aclFinalize",
    "aclrtSetDevice",
    "aclrtResetDevice",
    "aclrtGetDevice",
    "aclrtGetDeviceCount",
    "aclrtCreateStream",
    "aclrtDestroyStream",
    "aclrtSynchronizeStream",
    "aclrtSynchronizeStreamWithTimeout",
    "aclrtDeviceCanAccessPeer",
    "aclrtDeviceEnablePeerAccess",
    "aclGetRecentErrMsg",
];

/// The names of the defined dynamic symbols: `objdump -T`, else `nm -D --defined-only`.
fn defined_dynamic_symbols(lib: &std::path::Path) -> Vec<String> {
    if let Ok(out) = Command::new("objdump").arg("-T").arg(lib).output()
        && out.status.success()
    {
        // "0000000000012345 g    DF .text  0000000000000123  Base        aclInit"
        return String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.contains("*UND*") && l.contains(" DF "))
            .filter_map(|l| l.split_whitespace().last().map(str::to_owned))
            .collect();
    }
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(lib)
        .output()
        .expect("neither objdump nor nm could be run");
    assert!(out.status.success(), "nm failed: {out:?}");
    // "0000000000012345 T aclInit"
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("T"))
        .filter_map(|l| l.split_whitespace().last().map(str::to_owned))
        .collect()
}

#[test]
fn every_section_1_symbol_is_exported() {
    let lib = common::lib_dir().join("libascendcl.so");
    let symbols = defined_dynamic_symbols(&lib);
    let missing: Vec<_> = REQUIRED
        .iter()
        .filter(|name| !symbols.iter().any(|s| s == *name))
        .collect();
    assert!(
        missing.is_empty(),
        "{} does not export {missing:?}; it exports {symbols:?}",
        lib.display()
    );
    // Nothing else of ours leaks out under an `acl` name.
    let extra: Vec<_> = symbols
        .iter()
        .filter(|s| s.starts_with("acl") && !REQUIRED.contains(&s.as_str()))
        .collect();
    assert!(extra.is_empty(), "unexpected exports {extra:?}");
}

/// The header declares exactly the same functions.
#[test]
fn header_declares_every_symbol() {
    let header = std::fs::read_to_string(common::crate_dir().join("include/acl_notify.h"))
        .expect("include/acl_notify.h");
    for name in REQUIRED {
        assert!(
            header.contains(&format!(" {name}(")) || header.contains(&format!("*{name}(")),
            "acl_notify.h does not declare {name}"
        );
    }
    for flag in [
        "#define ACL_SUCCESS 0",
        "#define ACL_NOTIFY_DEFAULT 0x00000000U",
        "#define ACL_NOTIFY_DEVICE_USE_ONLY 0x00000001U",
        "#define ACL_RT_NOTIFY_EXPORT_FLAG_DEFAULT 0x0UL",
        "#define ACL_RT_NOTIFY_EXPORT_FLAG_DISABLE_PID_VALIDATION 0x02UL",
        "#define ACL_RT_NOTIFY_IMPORT_FLAG_DEFAULT 0x0UL",
        "#define ACL_RT_NOTIFY_IMPORT_FLAG_ENABLE_PEER_ACCESS 0x02UL",
    ] {
        assert!(header.contains(flag), "acl_notify.h lacks `{flag}`");
    }
}
