//! The typed driver: runs the [`Call`]s that the Rust API can express through
//! `backend_sim`'s typed API (`SimRuntime`, devices as values, stream verbs), as one more
//! modelled process.
//!
//! The typed API has no current device: this driver keeps one (set by [`Call::SetDevice`],
//! which is `Runtime::device`, 107001 for an id outside `0..count`) and makes every device-bound
//! call from that device value, with the default stream of that device for a NULL stream, which
//! is what the C API does with the thread's current device. What the typed API makes impossible
//! by construction (NULL pointers, bad flag bits, short buffers, pid counts other than one,
//! destroyed or foreign handles, a stream of another device, `aclInit`) is not expressible:
//! [`TypedProcess::expressible`] says so and a driver must not run it.
//!
//! Tokens are made up here (they never reach C): [`TOKEN_TAG`] in the high bits and a counter.

use std::collections::BTreeMap;
use std::time::Duration;

use backend_sim::{SimDevice, SimNotify, SimRuntime, SimStream};
use notify_api::Device as _;
use notify_api::{
    DeviceId, EXPORT_KEY_LEN, ExportFlags, ExportKey, ImportFlags, Notify as _, NotifyFlags, Pid,
    Result, Runtime as _, Stream as _, Timeout,
};

use crate::call::{Call, Reply};

/// The high bits of the tokens this driver makes up (C tokens carry a random session tag there).
pub const TOKEN_TAG: u64 = 0x7e57_ed00 << 32;

/// One modelled process that speaks the typed API.
#[derive(Debug)]
pub struct TypedProcess {
    rt: SimRuntime,
    current: Option<i32>,
    devices: BTreeMap<i32, SimDevice>,
    notifies: BTreeMap<u64, SimNotify>,
    streams: BTreeMap<u64, SimStream>,
    next: u64,
}

impl TypedProcess {
    /// A process over this runtime.
    pub fn new(rt: SimRuntime) -> Self {
        Self {
            rt,
            current: None,
            devices: BTreeMap::new(),
            notifies: BTreeMap::new(),
            streams: BTreeMap::new(),
            next: 1,
        }
    }

    /// The runtime.
    pub fn runtime(&self) -> &SimRuntime {
        &self.rt
    }

    fn token(&mut self) -> u64 {
        let t = TOKEN_TAG | self.next;
        self.next += 1;
        t
    }

    fn device(&self) -> Option<&SimDevice> {
        self.devices.get(&self.current?)
    }

    /// A stream argument: the current device's default stream, or a live stream of the
    /// current device.
    fn stream_ok(&self, stream: u64) -> bool {
        match stream {
            0 => self.device().is_some(),
            s => self
                .streams
                .get(&s)
                .is_some_and(|st| Some(st.device().id().0) == self.current),
        }
    }

    /// Whether the typed API can make this call (see the module docs).
    pub fn expressible(&self, call: &Call) -> bool {
        let live = |n: &u64| self.notifies.contains_key(n);
        match call {
            Call::SetDevice { .. } | Call::DeviceCount { null: false } => true,
            Call::BareTgid { null } | Call::CanAccessPeer { null, .. } => !null,
            Call::EnablePeer { flags: 0, .. } | Call::CreateStream { null: false } => {
                self.device().is_some()
            }
            Call::DestroyStream { stream } => self.streams.contains_key(stream),
            Call::Sync { stream, timeout_ms } => {
                (*stream == 0 && self.device().is_some() || self.streams.contains_key(stream))
                    && timeout_ms.is_none_or(|ms| ms >= -1)
            }
            Call::Create { null: false, flags } => {
                self.device().is_some() && NotifyFlags::from_raw(*flags).is_ok()
            }
            Call::Destroy { notify } => live(notify),
            Call::Record { notify, stream } | Call::Wait { notify, stream, .. } => {
                live(notify) && self.stream_ok(*stream)
            }
            Call::GetId {
                notify,
                null: false,
            } => live(notify),
            Call::BatchReset {
                notifies: Some(v), ..
            } => !v.is_empty() && v.iter().all(live),
            Call::Export {
                notify,
                null: false,
                len,
                flags,
            } => live(notify) && *len >= EXPORT_KEY_LEN && ExportFlags::from_raw(*flags).is_ok(),
            Call::SetPid {
                notify,
                pids: Some(p),
                ..
            } => live(notify) && p.len() == 1 && p[0] >= 0,
            Call::Import {
                null_out: false,
                key: Some(k),
                flags,
            } => {
                self.device().is_some()
                    && ImportFlags::from_raw(*flags).is_ok()
                    && key_of(k).is_some()
            }
            _ => false,
        }
    }

    /// Runs an expressible call.
    ///
    /// # Panics
    /// If it is not [`TypedProcess::expressible`] (a harness bug).
    pub fn run(&mut self, call: &Call) -> Reply {
        assert!(
            self.expressible(call),
            "harness bug: the typed API cannot express {call:?}"
        );
        let mut reply = Reply::default();
        let result = self.invoke(call, &mut reply);
        if let Err(e) = result {
            reply = Reply::code(e.code().raw());
            reply.message = Some(e.reason().into_owned());
            if !crate::keys::cites_rule(&e.reason()) {
                reply.problem = Some(format!(
                    "{call:?} failed with {}; its reason does not start with a rule: {:?}",
                    e.code().raw(),
                    e.reason()
                ));
            }
        }
        reply
    }

    /// The current device's default stream.
    fn default_stream(&self) -> Result<SimStream> {
        self.device().expect("checked").default_stream()
    }

    fn invoke(&mut self, call: &Call, reply: &mut Reply) -> Result<()> {
        match call {
            Call::SetDevice { device } => {
                let d = self.rt.device(DeviceId(*device))?;
                self.devices.insert(*device, d);
                self.current = Some(*device);
            }
            Call::DeviceCount { .. } => reply.value = Some(self.rt.device_count()?.into()),
            Call::BareTgid { .. } => reply.value = Some(self.rt.bare_tgid()?.0.into()),
            Call::CanAccessPeer { device, peer, .. } => {
                let can = self
                    .rt
                    .can_access_peer(DeviceId(*device), DeviceId(*peer))?;
                reply.value = Some(i64::from(can));
            }
            Call::EnablePeer { peer, .. } => {
                self.device()
                    .expect("checked")
                    .enable_peer_access(DeviceId(*peer))?;
            }
            Call::CreateStream { .. } => {
                let s = self.device().expect("checked").create_stream()?;
                let t = self.token();
                self.streams.insert(t, s);
                reply.token = Some(t);
            }
            Call::DestroyStream { stream } => {
                self.streams.remove(stream).expect("checked").destroy()?;
            }
            Call::Sync { stream, timeout_ms } => {
                let default;
                let s = match *stream {
                    0 => {
                        default = self.default_stream()?;
                        &default
                    }
                    t => &self.streams[&t],
                };
                match timeout_ms {
                    None => s.synchronize()?,
                    Some(-1) => s.synchronize_timeout(None)?,
                    Some(ms) => {
                        s.synchronize_timeout(Some(Duration::from_millis(*ms as u64)))?;
                    }
                }
            }
            Call::Create { flags, .. } => {
                let flags = NotifyFlags::from_raw(*flags)?;
                let n = self.device().expect("checked").create_notify(flags)?;
                reply.id = n.id().ok().map(|i| i.0);
                let t = self.token();
                self.notifies.insert(t, n);
                reply.token = Some(t);
            }
            Call::Destroy { notify } => {
                self.notifies.remove(notify).expect("checked").destroy()?;
            }
            Call::Record { notify, stream } => {
                let n = &self.notifies[notify];
                match *stream {
                    0 => self.default_stream()?.record(n)?,
                    t => self.streams[&t].record(n)?,
                }
            }
            Call::Wait {
                notify,
                stream,
                timeout_s,
            } => {
                let n = &self.notifies[notify];
                let timeout = Timeout::from_c_secs(*timeout_s);
                match *stream {
                    0 => self.default_stream()?.wait(n, timeout)?,
                    t => self.streams[&t].wait(n, timeout)?,
                }
            }
            Call::GetId { notify, .. } => {
                reply.value = Some(self.notifies[notify].id()?.0.into());
            }
            Call::BatchReset {
                notifies: Some(v), ..
            } => {
                let ns: Vec<&SimNotify> = v.iter().map(|t| &self.notifies[t]).collect();
                self.rt.batch_reset(&ns)?;
            }
            Call::Export { notify, flags, .. } => {
                let key = self.notifies[notify].export(ExportFlags::from_raw(*flags)?)?;
                reply.key = Some(key.to_c_buf().to_vec());
            }
            Call::SetPid {
                notify,
                pids: Some(p),
                ..
            } => {
                self.notifies[notify].set_import_pid(Pid(p[0]))?;
            }
            Call::Import {
                key: Some(k),
                flags,
                ..
            } => {
                let key = key_of(k).expect("checked");
                let flags = ImportFlags::from_raw(*flags)?;
                let n = self.device().expect("checked").import_notify(&key, flags)?;
                reply.id = n.id().ok().map(|i| i.0);
                let t = self.token();
                self.notifies.insert(t, n);
                reply.token = Some(t);
            }
            other => unreachable!("not expressible: {other:?}"),
        }
        Ok(())
    }
}

/// The `ExportKey` a key argument (bytes followed by a NUL) stands for, if it is one.
fn key_of(bytes: &[u8]) -> Option<ExportKey> {
    let mut buf = bytes.to_vec();
    buf.push(0);
    ExportKey::from_c_buf(&buf).ok()
}
