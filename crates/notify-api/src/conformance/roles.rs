//! The child-process side of the multi-process checks.
//!
//! A spawned process calls [`run_role`] with the role name the parent gave it. Two roles exist:
//!
//! - `"remote"` ([`ROLE_REMOTE`]): a command interpreter. The parent sends one command per line
//!   and the child answers each with exactly one line, `ok`, `ok <value>` or
//!   `err <code> <reason>`. Every assertion is made by the parent, so an *expected* failure
//!   (for example an import refused with 507899) is an answer, never a panic in the child.
//! - `"importer"` ([`ROLE_IMPORTER`]): the documented flow of process B (crate docs, "Flow"), as
//!   a fixed script: set device 1, send `pid <bare tgid>`, receive `key <hex>`, import with
//!   `ENABLE_PEER_ACCESS` and answer, receive `go`, record and synchronize and answer, receive
//!   `done`, destroy and answer.
//!
//! Keys travel hex-encoded (`hex` of the key's ASCII bytes): a key may contain spaces, and a
//! line transport must not be trusted to keep leading or trailing blanks.
//!
//! # Commands of the remote role
//! Streams are kept per device; `<dev>` is optional where shown and defaults to the device of
//! the last successful `dev` (even after `undev`, so that an enqueue without a context can be
//! tried). Handle commands act on the most recently created or imported notify.
//!
//! | command | does | answer |
//! |---|---|---|
//! | `dev <n>` | `set_device(n)`, then creates this device's stream if missing | `ok` |
//! | `undev <n>` | `reset_device(n)` (streams are kept) | `ok` |
//! | `pid` | `bare_tgid()` | `ok <pid>` |
//! | `peer <n>` | `enable_peer_access(n, 0)` | `ok` |
//! | `create` | `create_notify(DEFAULT)` | `ok` |
//! | `import <flags> <hexkey>` | `import_notify` (flags as decimal bits) | `ok` |
//! | `export <flags>` | `export` | `ok <hexkey>` |
//! | `setpids [<pid> ...]` | `set_import_pids` (an empty list is allowed) | `ok` |
//! | `record [<dev>]` | `record` | `ok` |
//! | `wait <secs> [<dev>]` | `wait_and_reset` (the enqueue result) | `ok` |
//! | `sync [<dev>]` | `synchronize` | `ok` |
//! | `reset` | `batch_reset(&[last])` | `ok` |
//! | `id` | `id()` | `ok <id>` |
//! | `destroy` | `destroy` of the last handle | `ok` |
//! | `forget` | `std::mem::forget` of every notify handle: references stay held | `ok` |
//! | `exit` | drops everything, resets the devices it set, returns normally | `ok` |
//! | `abort` | forgets every handle and stream, answers, then aborts the process | `ok` |
//!
//! `abort` ends the process without running any cleanup, the nearest this OS-free crate gets to
//! `SIGKILL`: it panics while a guard's destructor panics again, which Rust turns into an abort
//! (`SIGABRT`). No destructor of a handle, a stream or the runtime runs.

use super::PeerLink;
use crate::{Backend, DeviceId, ExportFlags, ExportKey, ImportFlags, Notify, Pid, Stream};

/// The command-interpreter role.
pub(super) const ROLE_REMOTE: &str = "remote";
/// The documented importer flow (process B).
pub(super) const ROLE_IMPORTER: &str = "importer";

/// Runs the named role in a spawned process. Panics (so the child exits non-zero) when the role
/// is unknown or a step fails.
pub fn run_role<B: Backend>(backend: &B, role: &str, link: &mut dyn PeerLink) {
    match role {
        ROLE_REMOTE => remote(backend, link),
        ROLE_IMPORTER => importer(backend, link),
        other => panic!("unknown conformance role {other:?}"),
    }
}

/// Lower-case hex of `text`'s bytes.
pub(super) fn hex_encode(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The inverse of [`hex_encode`]; `None` for odd lengths, non-hex digits or non-UTF-8.
pub(super) fn hex_decode(hex: &str) -> Option<String> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

/// Decodes a hex key sent by the parent (a protocol error is a bug of the suite: panic).
fn key_from_hex(hex: &str) -> ExportKey {
    let text = hex_decode(hex).unwrap_or_else(|| panic!("role: bad hex key {hex:?}"));
    ExportKey::new(text).unwrap_or_else(|e| panic!("role: the parent sent an invalid key: {e}"))
}

/// Strips the line terminator a transport may leave.
fn trim(line: String) -> String {
    line.trim_end_matches(['\n', '\r']).to_owned()
}

/// `err <code> <reason>`, with the reason kept on one line.
fn err_line(e: &crate::Error) -> String {
    let reason: String = e
        .reason()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("err {} {reason}", e.code().raw())
}

/// The answer line for `result`, `ok` or `ok <value>` on success.
fn answer<T>(result: crate::Result<T>, value: impl FnOnce(T) -> Option<String>) -> String {
    match result {
        Ok(v) => match value(v) {
            Some(text) => format!("ok {text}"),
            None => "ok".to_owned(),
        },
        Err(e) => err_line(&e),
    }
}

fn parse<T: std::str::FromStr>(word: &str, line: &str) -> T {
    word.parse()
        .unwrap_or_else(|_| panic!("role: cannot parse {word:?} in command {line:?}"))
}

/// What the command loop does next.
enum Next {
    Continue,
    Exit,
    Abort,
}

/// The state of the remote role.
struct Remote<'a, B: Backend> {
    backend: &'a B,
    /// One stream per device, created at the first `dev` of that device.
    streams: Vec<(i32, B::Stream)>,
    /// The device whose stream commands use by default (the last successful `dev`).
    stream_device: Option<i32>,
    /// Every device this process set, to reset at `exit`.
    devices: Vec<i32>,
    /// Held handles; commands act on the last one.
    notifies: Vec<B::Notify>,
}

impl<B: Backend> Remote<'_, B> {
    fn stream(&self, device: Option<&str>, line: &str) -> &B::Stream {
        let device = match device {
            Some(word) => parse::<i32>(word, line),
            None => self
                .stream_device
                .unwrap_or_else(|| panic!("role: {line:?} before any successful `dev`")),
        };
        self.streams
            .iter()
            .find(|(d, _)| *d == device)
            .map(|(_, s)| s)
            .unwrap_or_else(|| panic!("role: {line:?}: no stream for device {device}"))
    }

    fn last(&self, line: &str) -> &B::Notify {
        self.notifies
            .last()
            .unwrap_or_else(|| panic!("role: {line:?} without a notify"))
    }

    fn run(&mut self, line: &str) -> (String, Next) {
        let mut words = line.split(' ');
        let command = words.next().unwrap_or("");
        let args: Vec<&str> = words.collect();
        let reply = match (command, args.as_slice()) {
            ("dev", [n]) => {
                let n: i32 = parse(n, line);
                match self.backend.set_device(DeviceId(n)) {
                    Err(e) => err_line(&e),
                    Ok(()) => {
                        if !self.devices.contains(&n) {
                            self.devices.push(n);
                        }
                        if self.streams.iter().any(|(d, _)| *d == n) {
                            self.stream_device = Some(n);
                            "ok".to_owned()
                        } else {
                            match self.backend.create_stream() {
                                Ok(s) => {
                                    self.streams.push((n, s));
                                    self.stream_device = Some(n);
                                    "ok".to_owned()
                                }
                                Err(e) => err_line(&e),
                            }
                        }
                    }
                }
            }
            ("undev", [n]) => answer(self.backend.reset_device(DeviceId(parse(n, line))), |()| {
                None
            }),
            ("pid", []) => answer(self.backend.bare_tgid(), |p| Some(p.raw().to_string())),
            ("peer", [n]) => answer(
                self.backend.enable_peer_access(DeviceId(parse(n, line)), 0),
                |()| None,
            ),
            ("create", []) => match self.backend.create_notify(crate::NotifyFlags::DEFAULT) {
                Ok(n) => {
                    self.notifies.push(n);
                    "ok".to_owned()
                }
                Err(e) => err_line(&e),
            },
            ("import", [flags, hex]) => {
                let flags = ImportFlags::from_raw(parse(flags, line))
                    .unwrap_or_else(|e| panic!("role: bad import flags in {line:?}: {e}"));
                match self.backend.import_notify(&key_from_hex(hex), flags) {
                    Ok(n) => {
                        self.notifies.push(n);
                        "ok".to_owned()
                    }
                    Err(e) => err_line(&e),
                }
            }
            ("export", [flags]) => {
                let flags = ExportFlags::from_raw(parse(flags, line))
                    .unwrap_or_else(|e| panic!("role: bad export flags in {line:?}: {e}"));
                answer(self.last(line).export(flags), |k| {
                    Some(hex_encode(k.as_str()))
                })
            }
            ("setpids", pids) => {
                let pids: Vec<Pid> = pids.iter().map(|p| Pid(parse(p, line))).collect();
                answer(self.last(line).set_import_pids(&pids), |()| None)
            }
            ("record", [] | [_]) => {
                let stream = self.stream(args.first().copied(), line);
                answer(self.last(line).record(stream), |()| None)
            }
            ("wait", [secs, rest @ ..]) if rest.len() <= 1 => {
                let stream = self.stream(rest.first().copied(), line);
                answer(
                    self.last(line).wait_and_reset(stream, parse(secs, line)),
                    |()| None,
                )
            }
            ("sync", [] | [_]) => answer(
                self.stream(args.first().copied(), line).synchronize(),
                |()| None,
            ),
            ("reset", []) => answer(self.backend.batch_reset(&[self.last(line)]), |()| None),
            ("id", []) => answer(self.last(line).id(), |id| Some(id.raw().to_string())),
            ("destroy", []) => {
                let n = self
                    .notifies
                    .pop()
                    .unwrap_or_else(|| panic!("role: {line:?} without a notify"));
                answer(n.destroy(), |()| None)
            }
            ("forget", []) => {
                for n in self.notifies.drain(..) {
                    std::mem::forget(n);
                }
                "ok".to_owned()
            }
            ("exit", []) => {
                while let Some(n) = self.notifies.pop() {
                    drop(n);
                }
                while let Some((_, s)) = self.streams.pop() {
                    drop(s);
                }
                for d in self.devices.drain(..) {
                    let _ = self.backend.reset_device(DeviceId(d));
                }
                return ("ok".to_owned(), Next::Exit);
            }
            ("abort", []) => {
                for n in self.notifies.drain(..) {
                    std::mem::forget(n);
                }
                for (_, s) in self.streams.drain(..) {
                    std::mem::forget(s);
                }
                return ("ok".to_owned(), Next::Abort);
            }
            _ => panic!("role: unknown command {line:?}"),
        };
        (reply, Next::Continue)
    }
}

/// The `"remote"` role: answers commands until `exit` or `abort`.
fn remote<B: Backend>(backend: &B, link: &mut dyn PeerLink) {
    let mut state = Remote {
        backend,
        streams: Vec::new(),
        stream_device: None,
        devices: Vec::new(),
        notifies: Vec::new(),
    };
    loop {
        let line = trim(link.recv());
        let (reply, next) = state.run(&line);
        link.send(&reply);
        match next {
            Next::Continue => {}
            Next::Exit => return,
            Next::Abort => die(),
        }
    }
}

/// Ends the process at once, without running destructors (see the module docs).
fn die() -> ! {
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("conformance role: second panic while unwinding, so the process aborts");
        }
    }
    let _bomb = Bomb;
    panic!("conformance role: dying on purpose while holding references (R9)");
}

/// The `"importer"` role: process B of the documented flow.
fn importer<B: Backend>(backend: &B, link: &mut dyn PeerLink) {
    if let Err(e) = backend.set_device(DeviceId(1)) {
        link.send(&err_line(&e));
        return;
    }
    let stream = match backend.create_stream() {
        Ok(s) => s,
        Err(e) => {
            link.send(&err_line(&e));
            return;
        }
    };
    match backend.bare_tgid() {
        Ok(pid) => link.send(&format!("pid {}", pid.raw())),
        Err(e) => {
            link.send(&err_line(&e));
            return;
        }
    }
    let line = trim(link.recv());
    let hex = line
        .strip_prefix("key ")
        .unwrap_or_else(|| panic!("importer: expected `key <hex>`, got {line:?}"));
    let notify = match backend.import_notify(&key_from_hex(hex), ImportFlags::ENABLE_PEER_ACCESS) {
        Ok(n) => {
            link.send("ok");
            n
        }
        Err(e) => {
            link.send(&err_line(&e));
            return;
        }
    };
    let line = trim(link.recv());
    assert_eq!(line, "go", "importer: expected `go`");
    let recorded = notify.record(&stream).and_then(|()| stream.synchronize());
    link.send(&answer(recorded, |()| None));
    let line = trim(link.recv());
    assert_eq!(line, "done", "importer: expected `done`");
    link.send(&answer(notify.destroy(), |()| None));
    drop(stream);
    let _ = backend.reset_device(DeviceId(1));
}
