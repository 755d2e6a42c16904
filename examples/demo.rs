//! The CANN IPC flow, step by step, as two real processes: B writes into A's device buffer
//! through IPC memory and records a notify on the same stream; A waits, then reads the bytes.
//!
//! `cargo run --example demo` starts process A (device 0), which starts process B (device 1):
//!
//! - A: allocate a device buffer → export it (pid whitelist enforced) → create a notify →
//!   export its key → whitelist B's bare tgid on both → wait on a stream → synchronize → read the
//!   buffer → close and destroy.
//! - B: get its bare tgid → import the buffer and the notify → on a second thread, copy its
//!   message into A's buffer and record the notify, on one stream → synchronize → close and
//!   destroy.
//!
//! The memory and the notify are released only when both have let go of them (M6, R8). The demo
//! runs in a namespace of its own and leaves nothing in `/dev/shm`. With `--features ascend` and
//! `ASCEND_NOTIFY_BACKEND=ascend`, the same code runs through the C ABI of `libascendcl.so`.

use std::process::ExitCode;

use ascend_notify::backend_sim::role::{RoleProcess, RoleSpawner, StdioLink, child_role};
use ascend_notify::{
    DeviceId, Error, ExportFlags, ExportKey, ImportFlags, MallocPolicy, MemExportFlags,
    MemImportFlags, NotifyFlags, Pid, Result, Runtime, Timeout,
};

const NAMESPACE: &str = "ASCEND_NOTIFY_SIM_NAMESPACE";
/// What B writes into A's buffer.
const MESSAGE: &[u8] = b"hello from process B, through IPC memory";
/// The buffer A shares: one 4 KiB page (IPC exports whole pages, M3).
const BUFFER: usize = 4096;

fn main() -> ExitCode {
    let outcome = match child_role().as_deref() {
        Some("a") => process_a(),
        Some("b") => process_b(),
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
    let out = RoleSpawner::program()
        .env(NAMESPACE, &ns)
        .run_inherited("a");
    let leftovers = ascend_notify::backend_sim::namespace_files(&ns);
    if !leftovers.is_empty() {
        eprintln!("left in /dev/shm: {leftovers:?}");
        return ExitCode::FAILURE;
    }
    if out.success() {
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
    let rt = step("A", "aclInit", Runtime::builder().build())?;
    println!("[A pid {}] backend: {}", std::process::id(), rt.kind());
    let device = step("A", "aclrtSetDevice(0)", rt.device(DeviceId(0)))?;
    let buffer = step(
        "A",
        "aclrtMalloc(4 KiB)",
        device.alloc(BUFFER, MallocPolicy::NormalOnly),
    )?;
    let export = step(
        "A",
        "aclrtIpcMemGetExportKey(flags=0x0)",
        buffer.export(buffer.as_range(), MemExportFlags::DEFAULT),
    )?;
    let notify = step(
        "A",
        "aclrtCreateNotify",
        device.create_notify(NotifyFlags::DEFAULT),
    )?;
    let key = step(
        "A",
        "aclrtNotifyGetExportKey(flags=0x0)",
        notify.export(ExportFlags::DEFAULT),
    )?;

    let mut b = RoleSpawner::program().show_stderr().start("b");
    // B reports its bare tgid first; whatever happens next, B is waited for.
    let outcome = (|| {
        let b_pid = Pid(b.recv().parse().expect("B sends its bare tgid"));
        step(
            "A",
            &format!("aclrtNotifySetImportPid({b_pid})"),
            notify.set_import_pid(b_pid),
        )?;
        step(
            "A",
            &format!("aclrtIpcMemSetImportPid({b_pid})"),
            export.set_import_pids(&[b_pid]),
        )?;
        let stream = step("A", "aclrtCreateStream", device.create_stream())?;
        step(
            "A",
            "aclrtWaitAndResetNotify(timeout=10 s)",
            stream.wait(&notify, Timeout::secs(10)),
        )?;
        b.send(key.as_str());
        // The C import returns only an address: the length travels with the key.
        b.send(&format!("{} {}", export.key(), export.len()));
        step(
            "A",
            "aclrtSynchronizeStream (returns once B has recorded)",
            stream.synchronize(),
        )?;
        let mut bytes = vec![0u8; MESSAGE.len()];
        step(
            "A",
            "aclrtMemcpy(device to host)",
            device.copy_to_host(&mut bytes, buffer.as_range().slice(..MESSAGE.len())?),
        )?;
        println!(
            "[A pid {}] read from its buffer: {:?}",
            std::process::id(),
            String::from_utf8_lossy(&bytes)
        );
        if bytes != MESSAGE {
            return Err(Error::new(
                ascend_notify::AclError::RT_INTERNAL_ERROR,
                "the buffer does not hold B's message",
            ));
        }
        b.send("done");
        step("A", "aclrtDestroyStream", stream.destroy())
    })();
    let code = finish(b, outcome.is_err());
    outcome?;
    step("A", "aclrtIpcMemClose", export.close())?;
    step("A", "aclrtFree", buffer.free())?;
    step("A", "aclrtDestroyNotify", notify.destroy())?;
    drop((device, rt));
    println!("[A pid {}] aclFinalize: detached", std::process::id());
    if code == 0 {
        Ok(())
    } else {
        Err(Error::new(
            ascend_notify::AclError::RT_INTERNAL_ERROR,
            "process B failed",
        ))
    }
}

fn protocol(what: &str) -> Error {
    Error::new(ascend_notify::AclError::RT_INTERNAL_ERROR, what.to_owned())
}

/// Waits for B (killing it first if A failed) and returns its exit code.
fn finish(mut b: RoleProcess, kill: bool) -> i32 {
    if kill {
        b.kill();
    }
    let code = b.wait_code();
    println!(
        "[A pid {}] process B exited with {code}",
        std::process::id()
    );
    code
}

fn process_b() -> Result<()> {
    let mut link = StdioLink;
    let rt = step("B", "aclInit", Runtime::builder().build())?;
    let device = step("B", "aclrtSetDevice(1)", rt.device(DeviceId(1)))?;
    let pid = step("B", "aclrtDeviceGetBareTgid", device.bare_tgid())?;
    link.send(&pid.to_string());
    let notify_key: ExportKey = link.recv().parse()?;
    let memory = link.recv();
    let (memory_key, memory_len) = memory
        .split_once(' ')
        .ok_or_else(|| protocol("bad memory key line"))?;
    let memory_key: ExportKey = memory_key.parse()?;
    let memory_len: usize = memory_len
        .parse()
        .map_err(|_| protocol("bad memory length"))?;
    let notify = step(
        "B",
        "aclrtNotifyImportByKey(flags=ENABLE_PEER_ACCESS)",
        device.import_notify(&notify_key, ImportFlags::ENABLE_PEER_ACCESS),
    )?;
    let a_buffer = step(
        "B",
        "aclrtIpcMemImportByKey(flags=ENABLE_PEER_ACCESS)",
        device.import_memory(&memory_key, memory_len, MemImportFlags::ENABLE_PEER_ACCESS),
    )?;
    // Imported memory takes only device-to-device copies on a stream (M5): the message goes
    // to a buffer of B's own first.
    let staging = step(
        "B",
        "aclrtMalloc(staging)",
        device.alloc(MESSAGE.len(), MallocPolicy::NormalOnly),
    )?;
    step(
        "B",
        "aclrtMemcpy(host to device)",
        device.copy_from_host(staging.as_range(), MESSAGE),
    )?;
    let stream = step("B", "aclrtCreateStream", device.create_stream())?;
    // Handles are Send + Sync and bind their device themselves: a second thread copies and
    // records with no set-up call of its own.
    let recorded = std::thread::scope(|scope| {
        scope
            .spawn(|| -> Result<()> {
                step(
                    "B",
                    "aclrtMemcpyAsync(device to device, into A's buffer)",
                    stream.copy(
                        a_buffer.as_range().slice(..MESSAGE.len())?,
                        staging.as_range(),
                    ),
                )?;
                step(
                    "B",
                    "aclrtRecordNotify (same stream, after the copy)",
                    stream.record(&notify),
                )?;
                step("B", "aclrtSynchronizeStream", stream.synchronize())
            })
            .join()
            .expect("the recording thread does not panic")
    });
    recorded?;
    let done = link.recv();
    assert_eq!(done, "done", "A says when it has read the buffer");
    step("B", "aclrtDestroyStream", stream.destroy())?;
    step("B", "aclrtIpcMemClose", a_buffer.close())?;
    step("B", "aclrtFree(staging)", staging.free())?;
    step("B", "aclrtDestroyNotify", notify.destroy())?;
    drop((device, rt));
    eprintln!("[B pid {}] aclFinalize: detached", std::process::id());
    Ok(())
}
