//! What both drivers share between the model and the real thing: the [`Symbols`] table that
//! names real tokens, keys, ids and pids by the model's symbols, the lowering of a model
//! [`Op`] into a [`Call`], the comparison of a [`Reply`] with the model's [`Expect`], and the
//! comparison of the registry (`backend_sim::inspect`) with the model.
//!
//! Every check returns `Err(text)` saying what differs, so that the model-based test and the
//! fuzzer report the same way.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use backend_sim::Snapshot;

use crate::call::{Call, Ptr, Reply};
use crate::keys;
use crate::model::{
    Array, Export, Hid, KeyArg, MemKeyArg, Mid, Model, Nid, NotifyArg, Op, Origin, Out, PidSym,
    PtrArg, Sid, StreamArg, Xid,
};

/// What a token is.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Token {
    /// A notify handle.
    Notify(Hid),
    /// A stream.
    Stream(Sid),
}

/// The real values behind the model's symbols, learnt from the replies.
#[derive(Clone, Debug, Default)]
pub struct Symbols {
    notify_tokens: BTreeMap<Hid, u64>,
    stream_tokens: BTreeMap<Sid, u64>,
    tokens: HashMap<u64, Token>,
    keys: BTreeMap<Nid, Vec<u8>>,
    key_order: Vec<Nid>,
    ids: BTreeMap<Nid, u32>,
    pids: BTreeMap<PidSym, i32>,
    /// M1/M5: the address each device range starts at.
    ptrs: BTreeMap<Mid, u64>,
    /// M6: every range each process (incarnation) was given: start, end, range.
    ranges: BTreeMap<PidSym, Vec<(u64, u64, Mid)>>,
    mem_keys: BTreeMap<Xid, Vec<u8>>,
    mem_key_order: Vec<Xid>,
}

impl Symbols {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The token of a handle.
    pub fn notify_token(&self, h: Hid) -> Option<u64> {
        self.notify_tokens.get(&h).copied()
    }

    /// The token of a stream.
    pub fn stream_token(&self, s: Sid) -> Option<u64> {
        self.stream_tokens.get(&s).copied()
    }

    /// The key text (without its NUL) of an exported notify.
    pub fn key(&self, n: Nid) -> Option<&[u8]> {
        self.keys.get(&n).map(Vec::as_slice)
    }

    /// The exported notifies, in the order of their exports.
    pub fn exported(&self) -> &[Nid] {
        &self.key_order
    }

    /// The id of a notify (`aclrtGetNotifyId`).
    pub fn id(&self, n: Nid) -> Option<u32> {
        self.ids.get(&n).copied()
    }

    /// The address a device range starts at.
    pub fn ptr(&self, m: Mid) -> Option<u64> {
        self.ptrs.get(&m).copied()
    }

    /// The key text of an IPC memory export.
    pub fn mem_key(&self, x: Xid) -> Option<&[u8]> {
        self.mem_keys.get(&x).map(Vec::as_slice)
    }

    /// The memory exports, in the order they were made.
    pub fn mem_exported(&self) -> &[Xid] {
        &self.mem_key_order
    }

    /// The model's name for a raw pointer value passed by process `p`: NULL, a byte of a range
    /// the model knows (of `p`'s current session first, then any other), or a wild value.
    pub fn classify_ptr(&self, model: &Model, p: usize, raw: u64) -> PtrArg {
        if raw == 0 {
            return PtrArg::Null;
        }
        let inside = |m: &Mid| {
            let (start, len) = (self.ptrs[m], model.regions()[m].len);
            (start..start.saturating_add(len)).contains(&raw)
        };
        let known: Vec<Mid> = self
            .ptrs
            .keys()
            .copied()
            .filter(|m| model.regions().contains_key(m))
            .collect();
        known
            .iter()
            .find(|m| model.is_session_region(p, **m) && model.regions()[*m].live && inside(m))
            .or_else(|| {
                known
                    .iter()
                    .find(|m| model.is_session_region(p, **m) && inside(m))
            })
            .or_else(|| known.iter().find(|m| inside(m)))
            .map_or(PtrArg::Wild(raw), |&m| PtrArg::Dev(m, raw - self.ptrs[&m]))
    }

    /// The model's name for the key argument of a memory call (these bytes followed by a NUL).
    pub fn classify_mem_key(&self, bytes: Option<&[u8]>) -> MemKeyArg {
        let Some(bytes) = bytes else {
            return MemKeyArg::Null;
        };
        let text = keys::import_text(bytes);
        let is = |k: &Vec<u8>| text.as_deref() == Some(k.as_slice());
        if let Some((&x, _)) = self.mem_keys.iter().find(|(_, k)| is(k)) {
            return MemKeyArg::Known(x);
        }
        if let Some((&n, _)) = self.keys.iter().find(|(_, k)| is(k)) {
            return MemKeyArg::Notify(n);
        }
        MemKeyArg::Other(bytes.to_vec())
    }

    fn ptr_arg(&self, a: &PtrArg) -> Ptr {
        match a {
            PtrArg::Null => Ptr::Addr(0),
            PtrArg::Dev(m, off) => Ptr::Addr(self.ptrs[m].wrapping_add(*off)),
            PtrArg::Host { seed, len } => Ptr::Host {
                seed: *seed,
                len: *len,
            },
            PtrArg::Wild(raw) => Ptr::Addr(*raw),
        }
    }

    fn mem_key_arg(&self, k: &MemKeyArg) -> Option<Vec<u8>> {
        match k {
            MemKeyArg::Null => None,
            MemKeyArg::Known(x) => Some(self.mem_keys[x].clone()),
            MemKeyArg::Forged(x) => Some(forged(&self.mem_keys[x])),
            MemKeyArg::Notify(n) => Some(self.keys[n].clone()),
            MemKeyArg::Other(bytes) => Some(bytes.clone()),
        }
    }

    /// The bare tgid behind a pid symbol.
    pub fn pid(&self, s: PidSym) -> Option<i32> {
        match s {
            PidSym::Raw(x) => Some(x),
            proc => self.pids.get(&proc).copied(),
        }
    }

    /// Names the bare tgid of a process (learnt from a greeting or `aclrtDeviceGetBareTgid`).
    ///
    /// # Errors
    /// If the symbol already has another value, or another process has this value (R16: bare
    /// tgids tell live processes apart; a reused pid would confuse the comparison).
    pub fn bind_pid(&mut self, s: PidSym, value: i32) -> Result<(), String> {
        if let Some(&old) = self.pids.get(&s) {
            return if old == value {
                Ok(())
            } else {
                Err(format!(
                    "R16: the bare tgid of {s:?} was {old}, now {value}"
                ))
            };
        }
        if let Some((other, _)) = self.pids.iter().find(|&(_, &v)| v == value) {
            return Err(format!(
                "the bare tgid {value} of {s:?} is also that of {other:?}: a pid reused within \
                 one run, which the model cannot tell apart"
            ));
        }
        self.pids.insert(s, value);
        Ok(())
    }

    /// The model's name for a raw notify handle value (the canonical form a driver must give
    /// the model, so that a corrupted token that happens to be a real one is that one).
    pub fn classify_notify(&self, raw: u64) -> NotifyArg {
        match (raw, self.tokens.get(&raw)) {
            (0, _) => NotifyArg::Null,
            (_, Some(Token::Notify(h))) => NotifyArg::Handle(*h),
            (_, Some(Token::Stream(s))) => NotifyArg::Stream(*s),
            (_, None) => NotifyArg::Invalid(raw),
        }
    }

    /// The model's name for a raw stream value.
    pub fn classify_stream(&self, raw: u64) -> StreamArg {
        match (raw, self.tokens.get(&raw)) {
            (0, _) => StreamArg::Default,
            (_, Some(Token::Stream(s))) => StreamArg::Stream(*s),
            (_, Some(Token::Notify(h))) => StreamArg::Notify(*h),
            (_, None) => StreamArg::Invalid(raw),
        }
    }

    /// The model's name for a raw pid.
    pub fn classify_pid(&self, raw: i32) -> PidSym {
        self.pids
            .iter()
            .find(|&(_, &v)| v == raw)
            .map_or(PidSym::Raw(raw), |(s, _)| *s)
    }

    /// The model's name for an import key argument (these bytes followed by a NUL).
    pub fn classify_key(&self, bytes: Option<&[u8]>) -> KeyArg {
        let Some(bytes) = bytes else {
            return KeyArg::Null;
        };
        let text = keys::import_text(bytes);
        match self
            .keys
            .iter()
            .find(|(_, k)| text.as_deref() == Some(k.as_slice()))
        {
            Some((&n, _)) => KeyArg::Known(n),
            None => KeyArg::Other(bytes.to_vec()),
        }
    }

    fn n(&self, a: &NotifyArg) -> u64 {
        match a {
            NotifyArg::Null => 0,
            NotifyArg::Handle(h) => self.notify_tokens[h],
            NotifyArg::Stream(s) => self.stream_tokens[s],
            NotifyArg::Invalid(raw) => *raw,
        }
    }

    fn s(&self, a: &StreamArg) -> u64 {
        match a {
            StreamArg::Default => 0,
            StreamArg::Stream(s) => self.stream_tokens[s],
            StreamArg::Notify(h) => self.notify_tokens[h],
            StreamArg::Invalid(raw) => *raw,
        }
    }

    /// Whether every symbol `op` names has a real value (a shrunk sequence may name one whose
    /// maker was removed).
    pub fn can_lower(&self, op: &Op) -> bool {
        let n = |a: &NotifyArg| match a {
            NotifyArg::Handle(h) => self.notify_tokens.contains_key(h),
            NotifyArg::Stream(s) => self.stream_tokens.contains_key(s),
            _ => true,
        };
        let s = |a: &StreamArg| match a {
            StreamArg::Stream(s) => self.stream_tokens.contains_key(s),
            StreamArg::Notify(h) => self.notify_tokens.contains_key(h),
            _ => true,
        };
        match op {
            Op::DestroyStream { stream, .. } | Op::Sync { stream, .. } => s(stream),
            Op::Destroy { notify, .. } | Op::GetId { notify, .. } | Op::Export { notify, .. } => {
                n(notify)
            }
            Op::Record { notify, stream, .. } | Op::Wait { notify, stream, .. } => {
                n(notify) && s(stream)
            }
            Op::BatchReset { notifies, .. } => match notifies {
                Array::Null { .. } => true,
                Array::Items(v) => v.iter().all(n),
            },
            Op::SetPid { notify, pids, .. } => {
                n(notify)
                    && match pids {
                        Array::Null { .. } => true,
                        Array::Items(v) => v.iter().all(|&p| self.pid(p).is_some()),
                    }
            }
            Op::Import {
                key: KeyArg::Known(k) | KeyArg::Forged(k),
                ..
            } => self.keys.contains_key(k),
            Op::Free { ptr, .. } | Op::Memset { ptr, .. } | Op::MemExport { ptr, .. } => {
                self.can_ptr(ptr) && self.can_stream_of(op)
            }
            Op::Memcpy { dst, src, .. } => {
                self.can_ptr(dst) && self.can_ptr(src) && self.can_stream_of(op)
            }
            Op::MemSetPid { key, pids, .. } => {
                self.can_mem_key(key)
                    && match pids {
                        Array::Null { .. } => true,
                        Array::Items(v) => v.iter().all(|&p| self.pid(p).is_some()),
                    }
            }
            Op::MemImport { key, .. } | Op::MemClose { key, .. } => self.can_mem_key(key),
            _ => true,
        }
    }

    fn can_ptr(&self, a: &PtrArg) -> bool {
        match a {
            PtrArg::Dev(m, _) => self.ptrs.contains_key(m),
            _ => true,
        }
    }

    fn can_mem_key(&self, k: &MemKeyArg) -> bool {
        match k {
            MemKeyArg::Known(x) | MemKeyArg::Forged(x) => self.mem_keys.contains_key(x),
            MemKeyArg::Notify(n) => self.keys.contains_key(n),
            _ => true,
        }
    }

    fn can_stream_of(&self, op: &Op) -> bool {
        let stream = match op {
            Op::Memcpy { stream, .. } | Op::Memset { stream, .. } => stream.as_ref(),
            _ => None,
        };
        match stream {
            Some(StreamArg::Stream(s)) => self.stream_tokens.contains_key(s),
            Some(StreamArg::Notify(h)) => self.notify_tokens.contains_key(h),
            _ => true,
        }
    }

    /// The C call of a model step (`None` for what is not a C call: spawn, kill, exit, reclaim).
    ///
    /// # Panics
    /// If the step names a symbol with no real value ([`Symbols::can_lower`]).
    pub fn lower(&self, op: &Op) -> Option<Call> {
        let pid = |p: &PidSym| self.pid(*p).expect("a known pid");
        Some(match op {
            Op::Spawn { .. } | Op::Kill { .. } | Op::Exit { .. } | Op::Reclaim => return None,
            Op::Init { .. } => Call::Init,
            Op::Finalize { .. } => Call::Finalize,
            Op::SetDevice { device, .. } => Call::SetDevice { device: *device },
            Op::ResetDevice { device, .. } => Call::ResetDevice { device: *device },
            Op::GetDevice { null, .. } => Call::GetDevice { null: *null },
            Op::DeviceCount { null, .. } => Call::DeviceCount { null: *null },
            Op::BareTgid { null, .. } => Call::BareTgid { null: *null },
            Op::CanAccessPeer {
                null, device, peer, ..
            } => Call::CanAccessPeer {
                null: *null,
                device: *device,
                peer: *peer,
            },
            Op::EnablePeer { peer, flags, .. } => Call::EnablePeer {
                peer: *peer,
                flags: *flags,
            },
            Op::CreateStream { null, .. } => Call::CreateStream { null: *null },
            Op::DestroyStream { stream, .. } => Call::DestroyStream {
                stream: self.s(stream),
            },
            Op::Sync {
                stream, timeout_ms, ..
            } => Call::Sync {
                stream: self.s(stream),
                timeout_ms: *timeout_ms,
            },
            Op::Create { null, flags, .. } => Call::Create {
                null: *null,
                flags: *flags,
            },
            Op::Destroy { notify, .. } => Call::Destroy {
                notify: self.n(notify),
            },
            Op::Record { notify, stream, .. } => Call::Record {
                notify: self.n(notify),
                stream: self.s(stream),
            },
            Op::Wait {
                notify,
                stream,
                timeout_s,
                ..
            } => Call::Wait {
                notify: self.n(notify),
                stream: self.s(stream),
                timeout_s: *timeout_s,
            },
            Op::GetId { notify, null, .. } => Call::GetId {
                notify: self.n(notify),
                null: *null,
            },
            Op::BatchReset { notifies, .. } => match notifies {
                Array::Null { num } => Call::BatchReset {
                    notifies: None,
                    null_num: *num,
                },
                Array::Items(v) => Call::BatchReset {
                    notifies: Some(v.iter().map(|a| self.n(a)).collect()),
                    null_num: 0,
                },
            },
            Op::Export {
                notify, buf, flags, ..
            } => Call::Export {
                notify: self.n(notify),
                null: buf.null,
                len: buf.len,
                flags: *flags,
            },
            Op::SetPid { notify, pids, .. } => match pids {
                Array::Null { num } => Call::SetPid {
                    notify: self.n(notify),
                    pids: None,
                    null_num: *num,
                },
                Array::Items(v) => Call::SetPid {
                    notify: self.n(notify),
                    pids: Some(v.iter().map(pid).collect()),
                    null_num: 0,
                },
            },
            Op::Import {
                null_out,
                key,
                flags,
                ..
            } => Call::Import {
                null_out: *null_out,
                key: match key {
                    KeyArg::Null => None,
                    KeyArg::Known(n) => Some(self.keys[n].clone()),
                    KeyArg::Forged(n) => Some(forged(&self.keys[n])),
                    KeyArg::Other(bytes) => Some(bytes.clone()),
                },
                flags: *flags,
            },
            Op::Malloc {
                null, size, policy, ..
            } => Call::Malloc {
                null: *null,
                size: *size,
                policy: *policy,
            },
            Op::Free { ptr, .. } => Call::Free {
                ptr: self.ptr_arg(ptr),
            },
            Op::MemInfo {
                attr,
                null_free,
                null_total,
                ..
            } => Call::MemInfo {
                attr: *attr,
                null_free: *null_free,
                null_total: *null_total,
            },
            Op::Memcpy {
                dst,
                dest_max,
                src,
                count,
                kind,
                stream,
                ..
            } => Call::Memcpy {
                dst: self.ptr_arg(dst),
                dest_max: *dest_max,
                src: self.ptr_arg(src),
                count: *count,
                kind: *kind,
                stream: stream.as_ref().map(|s| self.s(s)),
            },
            Op::Memset {
                ptr,
                max,
                value,
                count,
                stream,
                ..
            } => Call::Memset {
                ptr: self.ptr_arg(ptr),
                max: *max,
                value: *value,
                count: *count,
                stream: stream.as_ref().map(|s| self.s(s)),
            },
            Op::MemExport {
                ptr,
                size,
                buf,
                flags,
                ..
            } => Call::MemExport {
                ptr: self.ptr_arg(ptr),
                size: *size,
                null: buf.null,
                len: buf.len,
                flags: *flags,
            },
            Op::MemSetPid { key, pids, .. } => match pids {
                Array::Null { num } => Call::MemSetPid {
                    key: self.mem_key_arg(key),
                    pids: None,
                    null_num: *num,
                },
                Array::Items(v) => Call::MemSetPid {
                    key: self.mem_key_arg(key),
                    pids: Some(v.iter().map(pid).collect()),
                    null_num: 0,
                },
            },
            Op::MemImport {
                null_out,
                key,
                flags,
                ..
            } => Call::MemImport {
                null_out: *null_out,
                key: self.mem_key_arg(key),
                flags: *flags,
            },
            Op::MemClose { key, .. } => Call::MemClose {
                key: self.mem_key_arg(key),
            },
        })
    }

    /// M1, M5, M6: a new device range's address: not NULL, an allocation on a page boundary of
    /// its page size, never overlapping a range its process was given before (freed and
    /// closed ones included), an import never at the exporter's address for the memory.
    fn fresh_range(&mut self, model: &Model, m: Mid, token: Option<u64>) -> Result<(), String> {
        let addr = token.ok_or("succeeded without an address")?;
        if addr == 0 {
            return Err("M1: succeeded with a NULL address".into());
        }
        let r = &model.regions()[&m];
        let owner = PidSym::Proc {
            p: r.owner,
            incarnation: r.incarnation,
        };
        match r.origin {
            Origin::Alloc => {
                if !addr.is_multiple_of(r.page) {
                    return Err(format!(
                        "M1: allocation {addr:#x} does not start on a boundary of its {}-byte \
                         pages",
                        r.page
                    ));
                }
            }
            Origin::Import { alloc, offset, .. } => {
                if let Some(&a) = self.ptrs.get(&alloc)
                    && a.wrapping_add(offset) == addr
                {
                    return Err(format!(
                        "M5: the import is mapped at {addr:#x}, the exporter's address for the \
                         same memory"
                    ));
                }
            }
        }
        let end = addr.saturating_add(r.len);
        let given = self.ranges.entry(owner).or_default();
        if let Some(&(s, e, old)) = given.iter().find(|&&(s, e, _)| addr < e && s < end) {
            return Err(format!(
                "M6: {m:?} at {addr:#x}..{end:#x} reuses addresses {s:#x}..{e:#x} that {old:?} \
                 of the same process had (a process never reuses a device address range while \
                 it lives)"
            ));
        }
        given.push((addr, end, m));
        self.ptrs.insert(m, addr);
        Ok(())
    }

    fn fresh_token(&mut self, what: &str, token: Option<u64>, t: Token) -> Result<(), String> {
        let token = token.ok_or_else(|| format!("{what}: succeeded without a handle"))?;
        if token == 0 {
            return Err(format!("{what}: succeeded with a NULL handle"));
        }
        if let Some(old) = self.tokens.get(&token) {
            return Err(format!(
                "{what}: handed out token {token:#x} again (it was {old:?}; R10: a destroyed \
                 token stays dead)"
            ));
        }
        self.tokens.insert(token, t);
        match t {
            Token::Notify(h) => self.notify_tokens.insert(h, token),
            Token::Stream(s) => self.stream_tokens.insert(s, token),
        };
        Ok(())
    }

    /// Compares what `op` returned with what the model said, and learns the new symbols.
    /// `model` is the state after the step.
    ///
    /// # Errors
    /// What differs.
    pub fn check(
        &mut self,
        model: &Model,
        op: &Op,
        expect: &Expect,
        reply: &Reply,
    ) -> Result<(), String> {
        if let Some(problem) = &reply.problem {
            return Err(problem.clone());
        }
        if reply.code != expect.code {
            return Err(format!(
                "{op:?}: the simulator answered {} ({:?}), the model expects {}",
                reply.code,
                reply.message.as_deref().unwrap_or(""),
                expect.code
            ));
        }
        if reply.code != 0 {
            return Ok(());
        }
        let value = |what: &str| reply.value.ok_or_else(|| format!("{op:?}: no {what}"));
        match &expect.out {
            Out::None => {}
            Out::Notify(h, n) => {
                self.fresh_token(&format!("{op:?}"), reply.token, Token::Notify(*h))?;
                let id = reply
                    .id
                    .ok_or_else(|| format!("{op:?}: aclrtGetNotifyId failed on the new handle"))?;
                self.note_id(model, *n, id)
                    .map_err(|e| format!("{op:?}: {e}"))?;
            }
            Out::Stream(s) => {
                self.fresh_token(&format!("{op:?}"), reply.token, Token::Stream(*s))?;
            }
            Out::Key(n) => {
                let buf = reply
                    .key
                    .as_deref()
                    .ok_or_else(|| format!("{op:?}: no key"))?;
                let text = keys::c_key_text(buf).ok_or_else(|| {
                    format!("R5: the exported key is not NUL-terminated: {buf:?}")
                })?;
                if !keys::valid_key_text(text) || !keys::sim_key_format(text) {
                    return Err(format!(
                        "R5: the exported key {:?} is not a printable sim key",
                        String::from_utf8_lossy(text)
                    ));
                }
                if let Some((other, _)) = self.keys.iter().find(|(_, k)| k.as_slice() == text) {
                    return Err(format!(
                        "R5: the key of {n:?} is the key of {other:?} already"
                    ));
                }
                self.keys.insert(*n, text.to_vec());
                self.key_order.push(*n);
            }
            Out::Device(d) => {
                if value("device")? != i64::from(*d) {
                    return Err(format!(
                        "R13: aclrtGetDevice wrote {:?}, the current device is {d}",
                        reply.value
                    ));
                }
            }
            Out::Count(c) => {
                if value("count")? != i64::from(*c) {
                    return Err(format!("device count {:?}, not {c}", reply.value));
                }
            }
            Out::Pid(s) => {
                let v = value("pid")?;
                let v = i32::try_from(v).map_err(|_| format!("bare tgid {v} is not an i32"))?;
                self.bind_pid(*s, v)?;
            }
            Out::CanAccess(b) => {
                if value("can-access")? != i64::from(*b) {
                    return Err(format!(
                        "aclrtDeviceCanAccessPeer wrote {:?}, not {}",
                        reply.value,
                        i64::from(*b)
                    ));
                }
            }
            Out::Ptr(m) => {
                self.fresh_range(model, *m, reply.token)
                    .map_err(|e| format!("{op:?}: {e}"))?;
            }
            Out::MemKey(x) => {
                let buf = reply
                    .key
                    .as_deref()
                    .ok_or_else(|| format!("{op:?}: no key"))?;
                let text = keys::c_key_text(buf).ok_or_else(|| {
                    format!("M3: the exported key is not NUL-terminated: {buf:?}")
                })?;
                if !keys::valid_key_text(text) || !keys::sim_mem_key_format(text) {
                    return Err(format!(
                        "M3: the exported key {:?} is not a printable sim memory key",
                        String::from_utf8_lossy(text)
                    ));
                }
                let taken = self.mem_keys.values().chain(self.keys.values());
                if taken.into_iter().any(|k| k.as_slice() == text) {
                    return Err(format!(
                        "M3: the key of {x:?} was handed out before: {:?}",
                        String::from_utf8_lossy(text)
                    ));
                }
                self.mem_keys.insert(*x, text.to_vec());
                self.mem_key_order.push(*x);
            }
            Out::MemInfo { free, total } => {
                if reply.mem_info != Some((*free, *total)) {
                    return Err(format!(
                        "M1: aclrtGetMemInfo wrote (free, total) {:?}, the model's ({free}, \
                         {total})",
                        reply.mem_info
                    ));
                }
            }
            Out::Bytes(want) => {
                let have = reply
                    .bytes
                    .as_deref()
                    .ok_or_else(|| format!("{op:?}: no bytes"))?;
                if have != want.as_slice() {
                    let at = have
                        .iter()
                        .zip(want)
                        .position(|(a, b)| a != b)
                        .unwrap_or(have.len().min(want.len()));
                    return Err(format!(
                        "M2/M5: the copy read {} bytes that differ from the model's {} from byte \
                         {at} ({:?} vs {:?}): what one side writes through the runtime, the \
                         other reads",
                        have.len(),
                        want.len(),
                        &have[at..have.len().min(at + 8)],
                        &want[at..want.len().min(at + 8)],
                    ));
                }
            }
            Out::Id(n) => {
                let v = value("id")?;
                if Some(v) != self.ids.get(n).map(|&i| i64::from(i)) {
                    return Err(format!(
                        "the id of {n:?} is {v}, it was {:?} (ids are stable)",
                        self.ids.get(n)
                    ));
                }
            }
        }
        Ok(())
    }

    /// An id: below the capacity, stable, unique among the live notifies of its device, and
    /// the same for an import as for the exporter's handle (R7: the same notify).
    fn note_id(&mut self, model: &Model, n: Nid, id: u32) -> Result<(), String> {
        let cap = model.config().capacity;
        if id >= cap {
            return Err(format!("notify id {id} is not below the capacity {cap}"));
        }
        if let Some(&known) = self.ids.get(&n) {
            return if known == id {
                Ok(())
            } else {
                Err(format!(
                    "R7: the handle names id {id}, but {n:?} has id {known}"
                ))
            };
        }
        let device = model.notifies()[&n].device;
        for (other, nt) in model.notifies() {
            if *other != n && nt.device == device && self.ids.get(other) == Some(&id) {
                return Err(format!(
                    "two live notifies of device {device} share id {id}: {n:?} and {other:?}"
                ));
            }
        }
        self.ids.insert(n, id);
        Ok(())
    }

    /// Compares a snapshot of the registry (`None`: the namespace does not exist) with the
    /// model. Where the registry may lag (R9: a dead process shows, with what it held, until
    /// it is reclaimed), either state is accepted; while a released wait is still finishing
    /// ([`Model::settled`]), flags and references are not compared.
    ///
    /// # Errors
    /// What differs.
    pub fn check_registry(&self, model: &Model, snap: Option<&Snapshot>) -> Result<(), String> {
        let Some(snap) = snap else {
            return if model.namespace_exists() {
                Err("§4: the namespace is gone, but the model has attached processes".into())
            } else {
                Ok(())
            };
        };
        if !model.namespace_exists() {
            return Err(format!(
                "§4: the last process detached cleanly, but the namespace is still there: \
                 {snap:?}"
            ));
        }
        let cfg = model.config();
        if (snap.devices, snap.capacity) != (cfg.devices, cfg.capacity) {
            return Err(format!(
                "the namespace has {} devices x {}, the model {} x {}",
                snap.devices, snap.capacity, cfg.devices, cfg.capacity
            ));
        }
        let tgid = |s: PidSym| self.pid(s).ok_or_else(|| format!("no bare tgid for {s:?}"));
        let dead: BTreeSet<i32> = model
            .unreclaimed()
            .iter()
            .filter_map(|&s| self.pid(s))
            .collect();
        // R9: the attached processes; dead ones only until they are reclaimed.
        let mut attached = BTreeSet::new();
        for (p, pr) in model.procs().iter().enumerate() {
            if pr.attached() {
                attached.insert(tgid(model.pid(p))?);
            }
        }
        let alive: BTreeSet<i32> = snap
            .processes
            .iter()
            .filter(|p| p.alive)
            .map(|p| p.tgid)
            .collect();
        if alive != attached {
            return Err(format!(
                "R9: the attached processes are {alive:?}, the model's {attached:?}"
            ));
        }
        if let Some(p) = snap
            .processes
            .iter()
            .find(|p| !p.alive && !dead.contains(&p.tgid))
        {
            return Err(format!(
                "R9: a dead process {p:?} that the model does not know as dead"
            ));
        }

        let settled = model.settled();
        let mut by_slot: BTreeMap<(u32, u32), Nid> = BTreeMap::new();
        for (&n, nt) in model.notifies() {
            let id = self.ids.get(&n).ok_or_else(|| format!("no id for {n:?}"))?;
            by_slot.insert((nt.device as u32, *id), n);
        }
        let mut seen = BTreeSet::new();
        for info in &snap.notifies {
            let slot = (info.device, info.id);
            let Some(&n) = by_slot.get(&slot) else {
                // R9: a notify freed by deaths the registry has not reclaimed yet.
                let ghost = model.ghosts().iter().any(|(g, gh)| {
                    gh.device as u32 == info.device && self.ids.get(g) == Some(&info.id)
                });
                if settled && (!ghost || !info.holders.iter().all(|h| dead.contains(h))) {
                    return Err(format!(
                        "R8/R9: the registry has a live notify at {slot:?} that the model does \
                         not: {info:?}"
                    ));
                }
                continue;
            };
            seen.insert(n);
            let nt = &model.notifies()[&n];
            let what = format!("{n:?} at {slot:?}");
            if settled {
                let want: BTreeSet<i32> = nt
                    .refs
                    .keys()
                    .map(|&p| tgid(model.pid(p)))
                    .collect::<Result<_, _>>()?;
                let have: BTreeSet<i32> = info.holders.iter().copied().collect();
                if !want.is_subset(&have) || !have.difference(&want).all(|h| dead.contains(h)) {
                    return Err(format!(
                        "R8: the holders of {what} are {have:?}, the model's {want:?}"
                    ));
                }
                if info.flag != nt.flag {
                    return Err(format!(
                        "R1: the flag of {what} is {}, the model's {}",
                        info.flag, nt.flag
                    ));
                }
            }
            let live_name = |live: Option<bool>| match live {
                None => "no",
                Some(false) => "whitelist",
                Some(true) => "any-pid",
            };
            let creator_dead = self.pid(nt.creator).is_some_and(|t| dead.contains(&t));
            let ok = match nt.export {
                Export::None => info.exported == "no",
                Export::Live { disable } => info.exported == live_name(Some(disable)),
                Export::Revoked { by_death, .. } => {
                    info.exported == "revoked"
                        || by_death
                            .is_some_and(|live| creator_dead && info.exported == live_name(live))
                }
            };
            if !ok {
                return Err(format!(
                    "R5/R8: the export state of {what} is {:?}, the model's {:?}",
                    info.exported, nt.export
                ));
            }
            let want: Vec<i32> = nt
                .whitelist
                .iter()
                .map(|&s| tgid(s))
                .collect::<Result<_, _>>()?;
            if info.whitelist != want {
                return Err(format!(
                    "R6: the whitelist of {what} is {:?}, the model's {want:?}",
                    info.whitelist
                ));
            }
            // The creator is named while its session is attached. Once it is gone it must not
            // be, but a creator that detached cleanly stays named (an open sim bug, see
            // `departed_creator_is_not_named` in tests/model.rs, which checks that case on its
            // own), and a dead one until it is reclaimed: here only "named while attached" and
            // "never another pid" are checked.
            let creator = model
                .creator_attached(n)
                .then(|| tgid(nt.creator))
                .transpose()?;
            let gone_named = creator.is_none() && info.creator == self.pid(nt.creator);
            if info.creator != creator && !gone_named {
                return Err(format!(
                    "R9: the creator of {what} is {:?}, the model's {creator:?}",
                    info.creator
                ));
            }
        }
        if settled && let Some(n) = model.notifies().keys().find(|n| !seen.contains(n)) {
            return Err(format!(
                "R8: the model's {n:?} ({:?}) is not in the registry",
                model.notifies()[n]
            ));
        }
        self.check_memory(model, snap, &dead)
    }

    /// §5 in the registry: the device memory of the namespace, every allocation whose bytes are
    /// held (device, size, owner while it owns it, live imports), every export still tracked
    /// (device, range, exporter, open or closed, whitelist, importers), and the hazard counts.
    /// While dead processes are not reclaimed (`dead`), what they held may still show.
    fn check_memory(
        &self,
        model: &Model,
        snap: &Snapshot,
        dead: &BTreeSet<i32>,
    ) -> Result<(), String> {
        let cfg = model.config();
        if snap.device_memory != cfg.device_memory {
            return Err(format!(
                "§4: the namespace has {} bytes of device memory per device, the model {}",
                snap.device_memory, cfg.device_memory
            ));
        }
        let hz = model.hazards();
        let have = (
            snap.hazards.exporter_closed_first,
            snap.hazards.freed_while_imported,
        );
        if have != (hz.exporter_closed_first, hz.freed_while_imported) {
            return Err(format!(
                "M6: the registry counts hazards (exporter closed first, freed while imported) \
                 {have:?}, the model {:?}",
                (hz.exporter_closed_first, hz.freed_while_imported)
            ));
        }
        let tgid = |s: PidSym| self.pid(s).ok_or_else(|| format!("no bare tgid for {s:?}"));
        let lag = !dead.is_empty();
        let is_dead = |t: Option<i32>| t.is_some_and(|t| dead.contains(&t));

        // Allocations.
        let mut want = Vec::new();
        for (&m, mem) in model.memories() {
            let owner = if mem.freed {
                None
            } else {
                Some(tgid(mem.owner)?)
            };
            want.push((m, mem.device as u32, mem.len, owner, mem.imports));
        }
        let mut left: Vec<&backend_sim::inspect::AllocInfo> = snap.allocations.iter().collect();
        let mut missing = Vec::new();
        for w in &want {
            let exact = |a: &&backend_sim::inspect::AllocInfo| {
                (a.device, a.size, a.owner, a.imports) == (w.1, w.2, w.3, w.4)
            };
            match left.iter().position(exact) {
                Some(i) => drop(left.remove(i)),
                None => missing.push(w),
            }
        }
        for w in missing {
            // R9: the registry may still count a dead owner or dead importers.
            let loose = |a: &&backend_sim::inspect::AllocInfo| {
                lag && (a.device, a.size) == (w.1, w.2)
                    && (a.owner == w.3 || is_dead(a.owner))
                    && a.imports >= w.4
            };
            match left.iter().position(loose) {
                Some(i) => drop(left.remove(i)),
                None => {
                    return Err(format!(
                        "M1/M6: the model's allocation {:?} (device {}, {} bytes, owner {:?}, {} \
                         imports) is not in the registry: {:?}",
                        w.0, w.1, w.2, w.3, w.4, snap.allocations
                    ));
                }
            }
        }
        if let Some(a) = left
            .iter()
            .find(|a| !(lag && (a.owner.is_none() || is_dead(a.owner))))
        {
            return Err(format!(
                "M6: the registry holds an allocation the model released or never made: {a:?} \
                 (model: {want:?})"
            ));
        }

        // Exports.
        type WantExport = (
            Xid,
            u32,
            u64,
            u64,
            i32,
            String,
            Vec<i32>,
            BTreeSet<i32>,
            bool,
        );
        let mut want: Vec<WantExport> = Vec::new();
        for (&x, ex) in model.mem_exports() {
            let device = model
                .memories()
                .get(&ex.alloc)
                .map(|m| m.device as u32)
                .ok_or_else(|| format!("harness: {x:?} names a released allocation"))?;
            let open_name = if ex.disable { "any-pid" } else { "whitelist" };
            let state = if ex.open { open_name } else { "closed" };
            let whitelist = ex
                .whitelist
                .iter()
                .map(|&s| tgid(s))
                .collect::<Result<_, _>>()?;
            let importers = ex
                .imports
                .iter()
                .map(|m| {
                    let r = &model.regions()[m];
                    tgid(PidSym::Proc {
                        p: r.owner,
                        incarnation: r.incarnation,
                    })
                })
                .collect::<Result<_, _>>()?;
            want.push((
                x,
                device,
                ex.offset,
                ex.size,
                tgid(ex.exporter_pid)?,
                state.to_owned(),
                whitelist,
                importers,
                ex.closed_by_death == Some(true),
            ));
        }
        let mut left: Vec<&backend_sim::inspect::ExportInfo> = snap.exports.iter().collect();
        let mut missing = Vec::new();
        for w in &want {
            let exact = |e: &&backend_sim::inspect::ExportInfo| {
                let importers: BTreeSet<i32> = e.importers.iter().copied().collect();
                (e.device, e.offset, e.size, e.exporter) == (w.1, w.2, w.3, w.4)
                    && e.state == w.5
                    && e.whitelist == w.6
                    && importers == w.7
            };
            match left.iter().position(exact) {
                Some(i) => drop(left.remove(i)),
                None => missing.push(w),
            }
        }
        for w in missing {
            let loose = |e: &&backend_sim::inspect::ExportInfo| {
                let importers: BTreeSet<i32> = e.importers.iter().copied().collect();
                lag && (e.device, e.offset, e.size, e.exporter) == (w.1, w.2, w.3, w.4)
                    && (e.state == w.5 || (w.8 && dead.contains(&w.4)))
                    && e.whitelist == w.6
                    && w.7.is_subset(&importers)
                    && importers.difference(&w.7).all(|t| dead.contains(t))
            };
            match left.iter().position(loose) {
                Some(i) => drop(left.remove(i)),
                None => {
                    return Err(format!(
                        "M3-M6: the model's export {:?} (device {}, bytes {}..+{}, exporter {}, \
                         {}, whitelist {:?}, importers {:?}) is not in the registry: {:?}",
                        w.0, w.1, w.2, w.3, w.4, w.5, w.6, w.7, snap.exports
                    ));
                }
            }
        }
        if let Some(e) = left.iter().find(|e| {
            !(lag && (dead.contains(&e.exporter) || e.importers.iter().any(|t| dead.contains(t))))
        }) {
            return Err(format!(
                "M6: the registry tracks an export the model does not: {e:?} (model: {want:?})"
            ));
        }
        Ok(())
    }
}

use crate::model::Expect;

/// The same key with another secret: its last hex digit changed (well formed, unknown).
pub fn forged(key: &[u8]) -> Vec<u8> {
    let mut k = key.to_vec();
    if let Some(last) = k.last_mut() {
        *last = if *last == b'0' { b'1' } else { b'0' };
    }
    k
}
