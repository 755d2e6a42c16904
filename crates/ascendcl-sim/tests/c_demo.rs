//! The C sample `examples/c/ipc_notify_demo.c`, compiled with the system `cc` against the built
//! `libascendcl.so` and run as two real processes (A starts B itself), natively and under
//! valgrind.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use backend_sim::testing::ScopedNamespace;
use common::TempDir;

/// Compiles the demo into `dir`, warnings as errors, linked to `target/<profile>`.
fn build_demo(dir: &Path) -> PathBuf {
    let lib_dir = common::lib_dir();
    let crate_dir = common::crate_dir();
    let exe = dir.join("ipc_notify_demo");
    let out = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-g", "-I"])
        .arg(crate_dir.join("include"))
        .arg(crate_dir.join("examples/c/ipc_notify_demo.c"))
        .arg("-o")
        .arg(&exe)
        .arg(format!("-L{}", lib_dir.display()))
        .arg("-lascendcl")
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .output()
        .expect("running the system C compiler `cc`");
    assert!(
        out.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// Runs `cmd` (process A, which starts B) in `ns`, with a deadline; returns (exit code, output).
fn run_flow(mut cmd: Command, ns: &ScopedNamespace, dir: &Path, limit: Duration) -> (i32, String) {
    let stdout = dir.join("stdout.txt");
    let stderr = dir.join("stderr.txt");
    let mut child = cmd
        .envs(ns.env())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("starting the demo");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the demo did not finish within {limit:?}; output so far:\n{}{}",
                std::fs::read_to_string(&stdout).unwrap_or_default(),
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = format!(
        "--- stdout\n{}--- stderr\n{}",
        std::fs::read_to_string(&stdout).unwrap_or_default(),
        std::fs::read_to_string(&stderr).unwrap_or_default()
    );
    (status.code().unwrap_or(-1), text)
}

fn check_flow(code: i32, output: &str, ns: &ScopedNamespace) {
    assert_eq!(code, 0, "the demo failed:\n{output}");
    for line in [
        "[A pid",
        "aclrtNotifySetImportPid(notify, &b_tgid, 1): ok",
        "[B pid",
        "aclrtNotifyImportByKey(&notify, key, ACL_RT_NOTIFY_IMPORT_FLAG_ENABLE_PEER_ACCESS): ok",
        "aclrtRecordNotify(notify, NULL): ok",
        "B exited with status 0",
        "aclFinalize(): ok",
    ] {
        assert!(output.contains(line), "missing {line:?} in:\n{output}");
    }
    // B's and A's aclFinalize detached both; the last one out removed the namespace.
    let left = common::shm_leftovers(ns.name());
    assert!(left.is_empty(), "left in /dev/shm: {left:?}\n{output}");
    assert!(!backend_sim::namespace_exists(ns.name()));
}

#[test]
fn c_demo_two_processes() {
    let dir = TempDir::new("demo");
    let exe = build_demo(dir.path());
    let ns = ScopedNamespace::new("c-demo");
    let (code, output) = run_flow(Command::new(&exe), &ns, dir.path(), Duration::from_secs(60));
    check_flow(code, &output, &ns);
}

/// The C demo under valgrind (A and B): any memory error in either, or in the library under
/// them, fails the run. The simulator reads its clocks through libc so that valgrind, which does
/// not map the vDSO as the kernel does, can run it.
#[test]
#[ignore = "slow (about a minute): valgrind; run with --ignored"]
fn c_demo_under_valgrind() {
    let dir = TempDir::new("demo-vg");
    let exe = build_demo(dir.path());
    let ns = ScopedNamespace::new("c-demo-vg");
    let mut cmd = Command::new("valgrind");
    // B runs under valgrind too (A checks B's exit status).
    cmd.args([
        "-q",
        "--error-exitcode=1",
        "--leak-check=no",
        "--trace-children=yes",
    ])
    .arg(&exe);
    let (code, output) = run_flow(cmd, &ns, dir.path(), Duration::from_secs(300));
    // `--error-exitcode=1`: any memory error valgrind finds in A or B (and in the shim under
    // them) fails the run.
    check_flow(code, &output, &ns);
}
