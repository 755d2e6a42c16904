//! The child-process side of the multi-process checks.
//!
//! A spawned process calls [`run_role`] with the role name the parent gave it. Two roles exist:
//!
//! - `"remote"` ([`ROLE_REMOTE`]): a command interpreter. The parent sends one command per line
//!   and the child answers each with exactly one line, `ok`, `ok <value>` or
//!   `err <code> <reason>`. Every assertion is made by the parent, so an *expected* failure
//!   (for example an import refused with 507899) is an answer, never a panic in the child.
//! - `"importer"` ([`ROLE_IMPORTER`]): the documented flow of process B (crate docs, "Flow"), as
//!   a fixed script: get device 1 and a stream on it, send `pid <bare tgid>`, receive
//!   `key <hex>`, import with `ENABLE_PEER_ACCESS` on device 1 and answer, receive `go`, record
//!   and synchronize and answer, receive `done`, destroy and answer.
//!
//! Keys travel hex-encoded (`hex` of the key's ASCII bytes): a key may contain spaces, and a
//! line transport must not be trusted to keep leading or trailing blanks.
//!
//! The commands of the remote role are documented at [`ROLE_REMOTE`], the importer's script at
//! [`ROLE_IMPORTER`].

use std::collections::BTreeMap;

use super::PeerLink;
use crate::{
    Backend, Device, DeviceId, ExportFlags, ExportKey, ImportFlags, Notify, NotifyFlags, Pid,
    Runtime, Stream, Timeout,
};

/// The command-interpreter role: one command per line, one answer line each (`ok`,
/// `ok <value>` or `err <code> <reason>`).
///
/// Devices are values (`rt.device(n)`), kept in a map with one stream each. `dev <n>` gets
/// device `n` (once) and its stream, and makes it the *default device*; `[<dev>]` is optional
/// where shown and defaults to it. A command naming a device that no `dev` got is a protocol
/// error (the role panics). Handle commands act on the most recently created or imported
/// notify.
///
/// | command | does | answer |
/// |---|---|---|
/// | `dev <n>` | `rt.device(n)` (kept) and a stream on it, if not yet got; makes `n` the default | `ok` |
/// | `pid` | `rt.bare_tgid()` | `ok <pid>` |
/// | `peer <n> [<dev>]` | `device(dev).enable_peer_access(n)` | `ok` |
/// | `create [<dev>]` | `device(dev).create_notify(DEFAULT)` | `ok` |
/// | `import <flags> <hexkey> [<dev>]` | `device(dev).import_notify` (flags as decimal bits) | `ok` |
/// | `export <flags>` | `last.export` (flags as decimal bits) | `ok <hexkey>` |
/// | `setpid <pid>` | `last.set_import_pid(pid)` | `ok` |
/// | `record [<dev>]` | `stream(dev).record(last)` | `ok` |
/// | `wait <secs> [<dev>]` | `stream(dev).wait(last, secs)`, `0` = forever as in C (the enqueue result) | `ok` |
/// | `sync [<dev>]` | `stream(dev).synchronize()` | `ok` |
/// | `reset` | `rt.batch_reset(&[last])` | `ok` |
/// | `id` | `last.id()` | `ok <id>` |
/// | `ndev` | `last.device().id()`: the device the handle was made from | `ok <n>` |
/// | `destroy` | `destroy` of the last handle | `ok` |
/// | `forget` | `std::mem::forget` of every notify handle: references stay held | `ok` |
/// | `exit` | drops every handle, stream and device, returns normally | `ok` |
/// | `abort` | forgets every handle, stream and device, answers, then aborts the process | `ok` |
///
/// `abort` ends the process without running any cleanup, the nearest this OS-free crate gets to
/// `SIGKILL`: it panics while a guard's destructor panics again, which Rust turns into an abort
/// (`SIGABRT`). No destructor of a handle, a stream, a device or the runtime runs.
pub const ROLE_REMOTE: &str = "remote";

/// The documented importer flow (process B), as a fixed script on device 1: get device 1 and a
/// stream on it, send `pid <bare tgid>`, receive `key <hex>`, import with `ENABLE_PEER_ACCESS`
/// and answer, receive `go`, record and synchronize and answer, receive `done`, destroy and
/// answer. A failing step is answered with its `err` line and ends the role.
pub const ROLE_IMPORTER: &str = "importer";

/// Runs the named role in a spawned process. Panics (so the child exits non-zero) when the role
/// is unknown or a step of the protocol fails.
pub fn run_role<B: Backend>(rt: &B::Runtime, role: &str, link: &mut dyn PeerLink) {
    match role {
        ROLE_REMOTE => remote::<B>(rt, link),
        ROLE_IMPORTER => importer::<B>(rt, link),
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

/// `ok` or the error line.
fn done(result: crate::Result<()>) -> String {
    answer(result, |()| None)
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
    rt: &'a B::Runtime,
    /// Every device got with `dev`, with its stream.
    devices: BTreeMap<i32, (B::Device, B::Stream)>,
    /// The device commands use by default (the last successful `dev`).
    default: Option<i32>,
    /// Held handles; commands act on the last one.
    notifies: Vec<B::Notify>,
}

impl<B: Backend> Remote<'_, B> {
    /// The device and stream named by the optional `<dev>` word, or the default ones.
    fn slot(&self, word: Option<&&str>, line: &str) -> &(B::Device, B::Stream) {
        let n = match word {
            Some(w) => parse::<i32>(w, line),
            None => self
                .default
                .unwrap_or_else(|| panic!("role: {line:?} before any successful `dev`")),
        };
        self.devices
            .get(&n)
            .unwrap_or_else(|| panic!("role: {line:?}: no `dev {n}` before"))
    }

    fn device(&self, word: Option<&&str>, line: &str) -> &B::Device {
        &self.slot(word, line).0
    }

    fn stream(&self, word: Option<&&str>, line: &str) -> &B::Stream {
        &self.slot(word, line).1
    }

    fn last(&self, line: &str) -> &B::Notify {
        self.notifies
            .last()
            .unwrap_or_else(|| panic!("role: {line:?} without a notify"))
    }

    /// Keeps `result`'s handle as the last one.
    fn push(&mut self, result: crate::Result<B::Notify>) -> String {
        match result {
            Ok(n) => {
                self.notifies.push(n);
                "ok".to_owned()
            }
            Err(e) => err_line(&e),
        }
    }

    /// `dev <n>`: gets device `n` and a stream on it, once, and makes it the default.
    fn get_device(&mut self, n: i32) -> String {
        if !self.devices.contains_key(&n) {
            let got = self
                .rt
                .device(DeviceId(n))
                .and_then(|d| d.create_stream().map(|s| (d, s)));
            match got {
                Ok(slot) => {
                    self.devices.insert(n, slot);
                }
                Err(e) => return err_line(&e),
            }
        }
        self.default = Some(n);
        "ok".to_owned()
    }

    fn run(&mut self, line: &str) -> (String, Next) {
        let mut words = line.split(' ');
        let command = words.next().unwrap_or("");
        let args: Vec<&str> = words.collect();
        let reply = match (command, args.as_slice()) {
            ("dev", [n]) => self.get_device(parse(n, line)),
            ("pid", []) => answer(self.rt.bare_tgid(), |p| Some(p.raw().to_string())),
            ("peer", [n, rest @ ..]) if rest.len() <= 1 => done(
                self.device(rest.first(), line)
                    .enable_peer_access(DeviceId(parse(n, line))),
            ),
            ("create", [] | [_]) => {
                let created = self
                    .device(args.first(), line)
                    .create_notify(NotifyFlags::DEFAULT);
                self.push(created)
            }
            ("import", [flags, hex, rest @ ..]) if rest.len() <= 1 => {
                let flags = ImportFlags::from_raw(parse(flags, line))
                    .unwrap_or_else(|e| panic!("role: bad import flags in {line:?}: {e}"));
                let imported = self
                    .device(rest.first(), line)
                    .import_notify(&key_from_hex(hex), flags);
                self.push(imported)
            }
            ("export", [flags]) => {
                let flags = ExportFlags::from_raw(parse(flags, line))
                    .unwrap_or_else(|e| panic!("role: bad export flags in {line:?}: {e}"));
                answer(self.last(line).export(flags), |k| {
                    Some(hex_encode(k.as_str()))
                })
            }
            ("setpid", [pid]) => done(self.last(line).set_import_pid(Pid(parse(pid, line)))),
            ("record", [] | [_]) => done(self.stream(args.first(), line).record(self.last(line))),
            ("wait", [secs, rest @ ..]) if rest.len() <= 1 => {
                let timeout = Timeout::from_c_secs(parse(secs, line));
                done(
                    self.stream(rest.first(), line)
                        .wait(self.last(line), timeout),
                )
            }
            ("sync", [] | [_]) => done(self.stream(args.first(), line).synchronize()),
            ("reset", []) => done(self.rt.batch_reset(&[self.last(line)])),
            ("id", []) => answer(self.last(line).id(), |id| Some(id.raw().to_string())),
            ("ndev", []) => format!("ok {}", self.last(line).device().id().raw()),
            ("destroy", []) => {
                let n = self
                    .notifies
                    .pop()
                    .unwrap_or_else(|| panic!("role: {line:?} without a notify"));
                done(n.destroy())
            }
            ("forget", []) => {
                for n in self.notifies.drain(..) {
                    std::mem::forget(n);
                }
                "ok".to_owned()
            }
            ("exit", []) => {
                // Handles first, then streams, then the devices they keep alive.
                while let Some(n) = self.notifies.pop() {
                    drop(n);
                }
                for (_, (d, s)) in std::mem::take(&mut self.devices) {
                    drop(s);
                    drop(d);
                }
                return ("ok".to_owned(), Next::Exit);
            }
            ("abort", []) => {
                for n in self.notifies.drain(..) {
                    std::mem::forget(n);
                }
                for slot in std::mem::take(&mut self.devices).into_values() {
                    std::mem::forget(slot);
                }
                return ("ok".to_owned(), Next::Abort);
            }
            _ => panic!("role: unknown command {line:?}"),
        };
        (reply, Next::Continue)
    }
}

/// The `"remote"` role: answers commands until `exit` or `abort`.
fn remote<B: Backend>(rt: &B::Runtime, link: &mut dyn PeerLink) {
    let mut state = Remote::<B> {
        rt,
        devices: BTreeMap::new(),
        default: None,
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

/// Sends the error line of `result`'s error and returns `None`, or returns the value.
fn step<T>(link: &mut dyn PeerLink, result: crate::Result<T>) -> Option<T> {
    result.map_err(|e| link.send(&err_line(&e))).ok()
}

/// The `"importer"` role: process B of the documented flow, on device 1.
fn importer<B: Backend>(rt: &B::Runtime, link: &mut dyn PeerLink) {
    let Some(device) = step(link, rt.device(DeviceId(1))) else {
        return;
    };
    let Some(stream) = step(link, device.create_stream()) else {
        return;
    };
    let Some(pid) = step(link, device.bare_tgid()) else {
        return;
    };
    link.send(&format!("pid {}", pid.raw()));
    let line = trim(link.recv());
    let hex = line
        .strip_prefix("key ")
        .unwrap_or_else(|| panic!("importer: expected `key <hex>`, got {line:?}"));
    let imported = device.import_notify(&key_from_hex(hex), ImportFlags::ENABLE_PEER_ACCESS);
    let Some(notify) = step(link, imported) else {
        return;
    };
    link.send("ok");
    let line = trim(link.recv());
    assert_eq!(line, "go", "importer: expected `go`");
    link.send(&done(
        stream.record(&notify).and_then(|()| stream.synchronize()),
    ));
    let line = trim(link.recv());
    assert_eq!(line, "done", "importer: expected `done`");
    link.send(&done(notify.destroy()));
    drop(stream);
    drop(device);
}
