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
    Backend, Buffer, Device, DeviceId, DeviceRange, ExportFlags, ExportKey, ImportFlags,
    MallocPolicy, MemExport, MemExportFlags, MemImport, MemImportFlags, Notify, NotifyFlags, Pid,
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
/// | `alloc <size> <policy> [<dev>]` | `device(dev).alloc(size, policy)`, the policy as its CANN value 0..=7; kept as buffer `b<n>` | `ok <n> <addr>` |
/// | `free <n>` | `free` of buffer `b<n>` (gone from the table whatever the answer) | `ok` |
/// | `meminfo [<dev>]` | `device(dev).mem_info()` | `ok <free> <total>` |
/// | `memexport <n> <offset> <len> <flags>` | `export` of bytes `offset..offset + len` of buffer `b<n>` (flags as decimal bits); kept as export `<e>` | `ok <e> <hexkey>` |
/// | `mempids <e> <pid>...` | `set_import_pids` of export `<e>` with every pid given | `ok` |
/// | `memclose <e>` | `close` of export `<e>` (gone from the table whatever the answer) | `ok` |
/// | `memimport <flags> <hexkey> <len> [<dev>]` | `device(dev).import_memory` of `len` bytes (flags as decimal bits); kept as import `i<n>` | `ok <n> <addr> <len>` |
/// | `impclose <n>` | `close` of import `i<n>` | `ok` |
/// | `write <ref> <offset> <hexbytes>` | writes the bytes at `offset` of `<ref>` through the runtime: a buffer `b<n>` with `copy_from_host`, an import `i<n>` with a stream copy from a staging buffer, synchronized | `ok` |
/// | `read <ref> <offset> <len>` | reads `len` bytes at `offset` of `<ref>` likewise (an import through a stream copy to a staging buffer) | `ok <hexbytes>` |
/// | `fill <ref> <offset> <len> <byte>` | `memset` on the stream of `<ref>`'s device, synchronized | `ok` |
/// | `readat <addr> <len> [<dev>]` | `device(dev).copy_to_host` of `len` bytes at a device address this process keeps, not a range it holds (M6: after a refused free) | `ok <hexbytes>` |
/// | `exit` | drops every handle, stream and device, returns normally | `ok` |
/// | `abort` | forgets every handle, stream and device, answers, then aborts the process | `ok` |
///
/// Memory commands name buffers `b<n>` and imports `i<n>` by the number their `alloc` or
/// `memimport` answered, exports by the number `memexport` answered; bytes travel as lower-case
/// hex. `exit` drops imports, exports and buffers before the streams and devices.
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

/// Lower-case hex of `bytes`.
pub(super) fn hex_of_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The inverse of [`hex_of_bytes`]; `None` for odd lengths or non-hex digits.
pub(super) fn bytes_of_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `aclrtMemMallocPolicy` value `bits` (0..=7) as a [`MallocPolicy`].
pub(super) fn policy_of(bits: u32) -> Option<MallocPolicy> {
    Some(match bits {
        0 => MallocPolicy::HugeFirst,
        1 => MallocPolicy::HugeOnly,
        2 => MallocPolicy::NormalOnly,
        3 => MallocPolicy::HugeFirstP2p,
        4 => MallocPolicy::HugeOnlyP2p,
        5 => MallocPolicy::NormalOnlyP2p,
        6 => MallocPolicy::Huge1gOnly,
        7 => MallocPolicy::Huge1gOnlyP2p,
        _ => return None,
    })
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
    /// Buffers by the number `alloc` answered (`None` once freed).
    buffers: Vec<Option<B::Buffer>>,
    /// Exports by the number `memexport` answered (`None` once closed).
    exports: Vec<Option<B::MemExport>>,
    /// Imports by the number `memimport` answered (`None` once closed).
    imports: Vec<Option<B::MemImport>>,
}

/// What a memory command's `<ref>` names.
enum MemRef {
    Buffer(usize),
    Import(usize),
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

    fn buffer(&self, n: usize, line: &str) -> &B::Buffer {
        self.buffers
            .get(n)
            .and_then(Option::as_ref)
            .unwrap_or_else(|| panic!("role: {line:?}: no buffer b{n}"))
    }

    fn import(&self, n: usize, line: &str) -> &B::MemImport {
        self.imports
            .get(n)
            .and_then(Option::as_ref)
            .unwrap_or_else(|| panic!("role: {line:?}: no import i{n}"))
    }

    fn mem_ref(word: &str, line: &str) -> MemRef {
        if let Some(n) = word.strip_prefix('b') {
            MemRef::Buffer(parse(n, line))
        } else if let Some(n) = word.strip_prefix('i') {
            MemRef::Import(parse(n, line))
        } else {
            panic!("role: {line:?}: {word:?} names no buffer (b<n>) or import (i<n>)")
        }
    }

    /// The stream of device `d` (got with `dev` before: every buffer and import was made from
    /// such a device).
    fn stream_of(&self, d: DeviceId, line: &str) -> &B::Stream {
        &self
            .devices
            .get(&d.0)
            .unwrap_or_else(|| panic!("role: {line:?}: no `dev {}` before", d.0))
            .1
    }

    /// The bytes `offset..offset + len` of `r`, with its device.
    fn range_of(
        &self,
        r: &MemRef,
        offset: usize,
        len: usize,
        line: &str,
    ) -> crate::Result<(DeviceRange<'_>, B::Device)> {
        match *r {
            MemRef::Buffer(n) => {
                let b = self.buffer(n, line);
                Ok((
                    b.as_range().slice(offset..offset + len)?,
                    b.device().clone(),
                ))
            }
            MemRef::Import(n) => {
                let i = self.import(n, line);
                Ok((
                    i.as_range().slice(offset..offset + len)?,
                    i.device().clone(),
                ))
            }
        }
    }

    /// `write <ref> <offset> <hex>`: a buffer directly, an import through a staging buffer and
    /// a stream copy (M5: imports take only device-to-device copies on a stream).
    fn write(&self, r: &MemRef, offset: usize, bytes: &[u8], line: &str) -> crate::Result<()> {
        let (range, device) = self.range_of(r, offset, bytes.len(), line)?;
        match r {
            MemRef::Buffer(_) => device.copy_from_host(range, bytes),
            MemRef::Import(_) => {
                let stream = self.stream_of(device.id(), line);
                let staging = device.alloc(bytes.len(), MallocPolicy::NormalOnly)?;
                device.copy_from_host(staging.as_range(), bytes)?;
                stream.copy(range, staging.as_range())?;
                stream.synchronize()?;
                staging.free()
            }
        }
    }

    /// `read <ref> <offset> <len>`, the other way.
    fn read(&self, r: &MemRef, offset: usize, len: usize, line: &str) -> crate::Result<Vec<u8>> {
        let (range, device) = self.range_of(r, offset, len, line)?;
        let mut bytes = vec![0u8; len];
        match r {
            MemRef::Buffer(_) => device.copy_to_host(&mut bytes, range)?,
            MemRef::Import(_) => {
                let stream = self.stream_of(device.id(), line);
                let staging = device.alloc(len, MallocPolicy::NormalOnly)?;
                stream.copy(staging.as_range(), range)?;
                stream.synchronize()?;
                device.copy_to_host(&mut bytes, staging.as_range())?;
                staging.free()?;
            }
        }
        Ok(bytes)
    }

    /// `fill <ref> <offset> <len> <byte>`: a set on a stream, synchronized.
    fn fill(
        &self,
        r: &MemRef,
        offset: usize,
        len: usize,
        value: u8,
        line: &str,
    ) -> crate::Result<()> {
        let (range, device) = self.range_of(r, offset, len, line)?;
        let stream = self.stream_of(device.id(), line);
        stream.memset(range, value)?;
        stream.synchronize()
    }

    /// The memory commands; `None` for a command that is not one.
    fn run_memory(&mut self, command: &str, args: &[&str], line: &str) -> Option<String> {
        let reply = match (command, args) {
            ("alloc", [size, policy, rest @ ..]) if rest.len() <= 1 => {
                let policy = policy_of(parse(policy, line))
                    .unwrap_or_else(|| panic!("role: bad policy in {line:?}"));
                match self
                    .device(rest.first(), line)
                    .alloc(parse(size, line), policy)
                {
                    Ok(b) => {
                        let addr = b.as_range().addr();
                        self.buffers.push(Some(b));
                        format!("ok {} {addr}", self.buffers.len() - 1)
                    }
                    Err(e) => err_line(&e),
                }
            }
            ("free", [n]) => {
                let n: usize = parse(n, line);
                let b = self
                    .buffers
                    .get_mut(n)
                    .and_then(Option::take)
                    .unwrap_or_else(|| panic!("role: {line:?}: no buffer b{n}"));
                done(b.free())
            }
            ("meminfo", [] | [_]) => answer(self.device(args.first(), line).mem_info(), |m| {
                Some(format!("{} {}", m.free, m.total))
            }),
            ("memexport", [n, offset, len, flags]) => {
                let flags = MemExportFlags::from_raw(parse(flags, line))
                    .unwrap_or_else(|e| panic!("role: bad export flags in {line:?}: {e}"));
                let (offset, len): (usize, usize) = (parse(offset, line), parse(len, line));
                let b = self.buffer(parse(n, line), line);
                let exported = b
                    .as_range()
                    .slice(offset..offset + len)
                    .and_then(|r| b.export(r, flags));
                match exported {
                    Ok(e) => {
                        let hex = hex_encode(e.key().as_str());
                        self.exports.push(Some(e));
                        format!("ok {} {hex}", self.exports.len() - 1)
                    }
                    Err(e) => err_line(&e),
                }
            }
            ("mempids", [n, pids @ ..]) => {
                let n: usize = parse(n, line);
                let pids: Vec<Pid> = pids.iter().map(|p| Pid(parse(p, line))).collect();
                let e = self
                    .exports
                    .get(n)
                    .and_then(Option::as_ref)
                    .unwrap_or_else(|| panic!("role: {line:?}: no export {n}"));
                done(e.set_import_pids(&pids))
            }
            ("memclose", [n]) => {
                let n: usize = parse(n, line);
                let e = self
                    .exports
                    .get_mut(n)
                    .and_then(Option::take)
                    .unwrap_or_else(|| panic!("role: {line:?}: no export {n}"));
                done(e.close())
            }
            ("memimport", [flags, hex, len, rest @ ..]) if rest.len() <= 1 => {
                let flags = MemImportFlags::from_raw(parse(flags, line))
                    .unwrap_or_else(|e| panic!("role: bad import flags in {line:?}: {e}"));
                match self.device(rest.first(), line).import_memory(
                    &key_from_hex(hex),
                    parse(len, line),
                    flags,
                ) {
                    Ok(i) => {
                        let (addr, len) = (i.as_range().addr(), i.len());
                        self.imports.push(Some(i));
                        format!("ok {} {addr} {len}", self.imports.len() - 1)
                    }
                    Err(e) => err_line(&e),
                }
            }
            ("impclose", [n]) => {
                let n: usize = parse(n, line);
                let i = self
                    .imports
                    .get_mut(n)
                    .and_then(Option::take)
                    .unwrap_or_else(|| panic!("role: {line:?}: no import i{n}"));
                done(i.close())
            }
            ("write", [r, offset, hex]) => {
                let bytes =
                    bytes_of_hex(hex).unwrap_or_else(|| panic!("role: {line:?}: bad hex bytes"));
                done(self.write(&Self::mem_ref(r, line), parse(offset, line), &bytes, line))
            }
            ("read", [r, offset, len]) => answer(
                self.read(
                    &Self::mem_ref(r, line),
                    parse(offset, line),
                    parse(len, line),
                    line,
                ),
                |bytes| Some(hex_of_bytes(&bytes)),
            ),
            ("fill", [r, offset, len, value]) => done(self.fill(
                &Self::mem_ref(r, line),
                parse(offset, line),
                parse(len, line),
                parse(value, line),
                line,
            )),
            ("readat", [addr, len, rest @ ..]) if rest.len() <= 1 => {
                let device = self.device(rest.first(), line);
                let len: usize = parse(len, line);
                // A kept address, not a range this process holds: what a C program does with a
                // pointer after a call that failed (M6: a refused free changes nothing).
                let range = DeviceRange::new(parse(addr, line), len, device.id(), false);
                let mut bytes = vec![0u8; len];
                answer(device.copy_to_host(&mut bytes, range), |()| {
                    Some(hex_of_bytes(&bytes))
                })
            }
            _ => return None,
        };
        Some(reply)
    }

    /// Drops (`forget == false`) or forgets every import, export and buffer, in that order.
    fn release_memory(&mut self, forget: bool) {
        let imports = std::mem::take(&mut self.imports);
        let exports = std::mem::take(&mut self.exports);
        let buffers = std::mem::take(&mut self.buffers);
        if forget {
            std::mem::forget((imports, exports, buffers));
        } else {
            drop(imports);
            drop(exports);
            drop(buffers);
        }
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
                self.release_memory(false);
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
                self.release_memory(true);
                for n in self.notifies.drain(..) {
                    std::mem::forget(n);
                }
                for slot in std::mem::take(&mut self.devices).into_values() {
                    std::mem::forget(slot);
                }
                return ("ok".to_owned(), Next::Abort);
            }
            _ => match self.run_memory(command, &args, line) {
                Some(reply) => reply,
                None => panic!("role: unknown command {line:?}"),
            },
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
        buffers: Vec::new(),
        exports: Vec::new(),
        imports: Vec::new(),
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
