//! The seed's two-process IPC Notify flow, step by step, as two real processes.
//!
//! `cargo run --example demo` starts process A (device 0), which starts process B (device 1):
//!
//! - A: create a notify → export its key (pid whitelist enforced) → whitelist B's bare tgid →
//!   wait-and-reset on a stream → synchronize → destroy.
//! - B: get its bare tgid → import the key → record on a stream → synchronize → destroy.
//!
//! The notify is released only when both have destroyed it (R8). The demo runs in a namespace of
//! its own and leaves nothing in `/dev/shm`. With `--features ascend` and
//! `ASCEND_NOTIFY_BACKEND=ascend`, the same code runs through the C ABI of `libascendcl.so`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitCode, Stdio};

use ascend_notify::{
    AclError, Backend, DeviceId, Error, ExportFlags, ExportKey, ImportFlags, Notify, NotifyFlags,
    Pid, Result, Runtime, Stream,
};

const ROLE: &str = "ASCEND_NOTIFY_DEMO_ROLE";
const NAMESPACE: &str = "ASCEND_NOTIFY_SIM_NAMESPACE";

fn main() -> ExitCode {
    let outcome = match std::env::var(ROLE).as_deref() {
        Ok("a") => process_a(),
        Ok("b") => process_b(),
        _ => return launcher(),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("[pid {}] failed: {e}", std::process::id());
            ExitCode::FAILURE
        }
    }
}

/// Starts process A in a namespace of its own, and checks that nothing is left behind.
fn launcher() -> ExitCode {
    let ns = std::env::var(NAMESPACE).unwrap_or_else(|_| format!("demo-{}", std::process::id()));
    let exe = std::env::current_exe().expect("the demo knows its own path");
    let status = Command::new(exe)
        .env(ROLE, "a")
        .env(NAMESPACE, &ns)
        .status()
        .expect("starting process A");
    let leftovers: Vec<String> = std::fs::read_dir("/dev/shm")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|name| name.starts_with(&format!("ascend-notify.{ns}")))
                .collect()
        })
        .unwrap_or_default();
    if !leftovers.is_empty() {
        eprintln!("left in /dev/shm: {leftovers:?}");
        return ExitCode::FAILURE;
    }
    if status.success() {
        println!("demo: both processes finished; nothing left in /dev/shm");
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Prints one step of the flow with this process's pid and the call's result.
fn step<T>(who: &str, what: &str, result: Result<T>) -> Result<T> {
    let pid = std::process::id();
    let line = match &result {
        Ok(_) => format!("[{who} pid {pid}] {what}: ok"),
        Err(e) => format!("[{who} pid {pid}] {what}: FAILED {e}"),
    };
    // B's stdout carries the conversation with A, so B reports on stderr (same terminal).
    if who == "B" {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
    result
}

fn process_a() -> Result<()> {
    let rt = step("A", "attach runtime", Runtime::builder().build())?;
    println!("[A pid {}] backend: {}", std::process::id(), rt.kind());
    step("A", "aclrtSetDevice(0)", rt.set_device(DeviceId(0)))?;
    let notify = step(
        "A",
        "aclrtCreateNotify",
        rt.create_notify(NotifyFlags::DEFAULT),
    )?;
    let key = step(
        "A",
        "aclrtNotifyGetExportKey(flags=0x0)",
        notify.export(ExportFlags::DEFAULT),
    )?;
    println!("[A pid {}] key: {key}", std::process::id());

    let exe = std::env::current_exe().expect("the demo knows its own path");
    let mut b = Command::new(exe)
        .env(ROLE, "b")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting process B");
    let to_b = b.stdin.take().expect("piped");
    let from_b = BufReader::new(b.stdout.take().expect("piped"));
    // Whatever happens on A's side, B is waited for (and, on failure, not left running).
    let outcome = converse_with_b(&rt, &notify, &key, to_b, from_b);
    if outcome.is_err() {
        let _ = b.kill();
    }
    let status = b.wait().expect("waiting for B");
    println!(
        "[A pid {}] process B exited with {status}",
        std::process::id()
    );
    let stream = outcome?;
    step("A", "aclrtDestroyStream", stream.destroy())?;
    step("A", "aclrtDestroyNotify", notify.destroy())?;
    drop(rt);
    println!("[A pid {}] aclFinalize: detached", std::process::id());
    if status.success() {
        Ok(())
    } else {
        Err(Error::new(AclError::RT_INTERNAL_ERROR, "B failed"))
    }
}

/// A's half of the flow once B runs: whitelist B, enqueue the wait, hand B the key, synchronize.
fn converse_with_b(
    rt: &Runtime,
    notify: &<Runtime as Backend>::Notify,
    key: &ExportKey,
    mut to_b: impl Write,
    mut from_b: impl BufRead,
) -> Result<<Runtime as Backend>::Stream> {
    let mut line = String::new();
    // B reports its bare tgid first.
    let b_pid = loop {
        line.clear();
        if from_b.read_line(&mut line).unwrap_or(0) == 0 {
            return Err(Error::new(AclError::RT_INTERNAL_ERROR, "B exited early"));
        }
        if let Some(pid) = line.trim().strip_prefix("bare-tgid ") {
            break Pid(pid.parse().expect("B sends a number"));
        }
    };
    step(
        "A",
        &format!("aclrtNotifySetImportPid([{b_pid}])"),
        notify.set_import_pids(&[b_pid]),
    )?;
    let stream = step("A", "aclrtCreateStream", rt.create_stream())?;
    step(
        "A",
        "aclrtWaitAndResetNotify(timeout=10 s)",
        notify.wait_and_reset(&stream, 10),
    )?;
    writeln!(to_b, "{key}").expect("sending the key to B");
    step(
        "A",
        "aclrtSynchronizeStream (returns once B has recorded)",
        stream.synchronize(),
    )?;
    Ok(stream)
}

fn process_b() -> Result<()> {
    let rt = step("B", "attach runtime", Runtime::builder().build())?;
    step("B", "aclrtSetDevice(1)", rt.set_device(DeviceId(1)))?;
    let pid = step("B", "aclrtDeviceGetBareTgid", rt.bare_tgid())?;
    println!("bare-tgid {pid}");
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .expect("reading the key from A");
    let key: ExportKey = line.trim().parse()?;
    let notify = step(
        "B",
        "aclrtNotifyImportByKey(flags=ENABLE_PEER_ACCESS)",
        rt.import_notify(&key, ImportFlags::ENABLE_PEER_ACCESS),
    )?;
    let stream = step("B", "aclrtCreateStream", rt.create_stream())?;
    step("B", "aclrtRecordNotify", notify.record(&stream))?;
    step("B", "aclrtSynchronizeStream", stream.synchronize())?;
    step("B", "aclrtDestroyStream", stream.destroy())?;
    step("B", "aclrtDestroyNotify", notify.destroy())?;
    drop(rt);
    eprintln!("[B pid {}] aclFinalize: detached", std::process::id());
    std::io::stdout().flush().ok();
    Ok(())
}
