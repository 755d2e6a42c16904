//! The two-process demo, end to end: on the simulator directly, and (with the `ascend` feature)
//! through the FFI path, with `backend-ascend` loading the simulated `libascendcl.so`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `target/<profile>`, from this test binary's path (`target/<profile>/deps/demo-…`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .to_path_buf()
}

/// Runs the demo example (built by `cargo test` with the package's features) in a namespace of
/// its own and checks it succeeded, walked through both processes, and left nothing behind.
fn run_demo(envs: &[(&str, &str)], expect_backend: &str) {
    let demo = target_dir().join("examples").join("demo");
    assert!(
        demo.exists(),
        "{} is missing: cargo test builds the examples",
        demo.display()
    );
    let ns = format!("t-demo-{}-{expect_backend}", std::process::id());
    let out = Command::new(&demo)
        .env("ASCEND_NOTIFY_SIM_NAMESPACE", &ns)
        .envs(envs.iter().copied())
        .output()
        .expect("running the demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed\n{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("backend: {expect_backend}")),
        "{stdout}"
    );
    for step in [
        "aclrtMalloc(4 KiB): ok",
        "aclrtIpcMemGetExportKey(flags=0x0): ok",
        "aclrtNotifyGetExportKey(flags=0x0): ok",
        "aclrtNotifySetImportPid",
        "aclrtIpcMemSetImportPid",
        "aclrtWaitAndResetNotify(timeout=10 s): ok",
        "read from its buffer: \"hello from process B, through IPC memory\"",
    ] {
        assert!(stdout.contains(step), "A never did {step}:\n{stdout}");
    }
    for step in [
        "aclrtDeviceGetBareTgid: ok",
        "aclrtNotifyImportByKey(flags=ENABLE_PEER_ACCESS): ok",
        "aclrtIpcMemImportByKey(flags=ENABLE_PEER_ACCESS): ok",
        "aclrtMemcpyAsync(device to device, into A's buffer): ok",
        "aclrtRecordNotify (same stream, after the copy): ok",
    ] {
        assert!(stderr.contains(step), "B never did {step}:\n{stderr}");
    }
    assert!(stdout.contains("nothing left in /dev/shm"), "{stdout}");
    let leaked = std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .any(|name| name.starts_with(&format!("ascend-notify.{ns}")));
    assert!(!leaked, "the demo left {ns} in /dev/shm");
}

/// Issue 4: `cargo run --example demo` on the default backend.
#[cfg(feature = "sim")]
#[test]
fn demo_on_the_simulator() {
    run_demo(&[("ASCEND_NOTIFY_BACKEND", "sim")], "sim");
}

/// Issue 5: the same demo through the C ABI (`backend-ascend` → simulated `libascendcl.so`).
#[cfg(feature = "ascend")]
#[test]
fn demo_through_the_c_abi() {
    let lib = target_dir().join("libascendcl.so");
    if !lib.exists() {
        // `cargo test` of the root package alone does not build the workspace's cdylib.
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "ascendcl-sim"])
            .args(if target_dir().ends_with("release") {
                &["--release"][..]
            } else {
                &[][..]
            })
            .status()
            .expect("running cargo build -p ascendcl-sim");
        assert!(status.success(), "building libascendcl.so failed");
    }
    let lib = lib.to_str().expect("utf-8 path").to_owned();
    run_demo(
        &[
            ("ASCEND_NOTIFY_BACKEND", "ascend"),
            ("ASCEND_NOTIFY_ACL_LIB", &lib),
        ],
        "ascend",
    );
}
