//! The typed API of the simulator: [`Sim`] and its handle types, each method a call into
//! [`crate::raw`] with arguments that are valid by construction.
//!
//! A [`SimDevice`] is a context value (R13, C1): the streams and notifies made from it keep it,
//! and every call passes it explicitly ([`raw::Cx::Explicit`]), so no thread ever needs a current
//! device and any handle works from any thread.

use std::sync::Arc;
use std::time::Duration;

use notify_api::{
    Backend, BackendKind, DeviceId, DeviceRange, Download, EventFlags, ExportFlags, ExportKey,
    ImportFlags, MallocPolicy, MemExportFlags, MemImportFlags, MemInfo, NotifyFlags, NotifyId, Pid,
    Result, Timeout, err,
};

use crate::SimBuilder;
use crate::raw::{self, Context, Cx, EventHandle, NotifyHandle, Session, StreamArg, StreamHandle};

/// `ACL_MEMCPY_HOST_TO_DEVICE`, `_DEVICE_TO_HOST`, `_DEVICE_TO_DEVICE`: the typed API knows
/// the kind of every copy from its argument types.
const H2D: u32 = 1;
const D2H: u32 = 2;
const D2D: u32 = 3;

/// The simulator, as a [`Backend`] marker type.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Sim;

impl Backend for Sim {
    type Runtime = SimRuntime;
    type Device = SimDevice;
    type Stream = SimStream;
    type Notify = SimNotify;
    type Buffer = SimBuffer;
    type MemExport = SimMemExport;
    type MemImport = SimMemImport;
    type Event = SimEvent;
}

/// This process attached to a simulator namespace. Cheap to clone; the process detaches when
/// the last clone and the last handle made from it are dropped, and the last process to detach
/// removes the namespace (§4).
#[derive(Clone, Debug)]
pub struct SimRuntime {
    session: Arc<Session>,
}

impl SimRuntime {
    /// A builder; see [`SimBuilder`].
    pub fn builder() -> SimBuilder {
        SimBuilder::default()
    }

    /// Attaches with the configuration from the environment.
    ///
    /// # Errors
    /// As [`SimBuilder::build`].
    pub fn from_env() -> Result<Self> {
        Self::builder().build()
    }

    pub(crate) fn from_session(session: Arc<Session>) -> Self {
        Self { session }
    }

    /// The session `raw` works on.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// The namespace this runtime is attached to.
    pub fn namespace(&self) -> &str {
        self.session.namespace()
    }

    /// Notifies per device in this namespace (R11).
    pub fn capacity(&self) -> u32 {
        self.session.capacity()
    }

    /// Whether this process is configured as a virtualization instance (R12).
    pub fn is_virtualized(&self) -> bool {
        self.session.is_virtualized()
    }
}

impl notify_api::Runtime for SimRuntime {
    type Backend = Sim;

    fn kind(&self) -> BackendKind {
        BackendKind::Sim
    }

    fn device_count(&self) -> Result<u32> {
        raw::device_count(&self.session)
    }

    fn device(&self, id: DeviceId) -> Result<SimDevice> {
        let ctx = raw::device_context(&self.session, id.0)?;
        Ok(SimDevice {
            rt: self.clone(),
            ctx,
        })
    }

    fn bare_tgid(&self) -> Result<Pid> {
        raw::bare_tgid(&self.session).map(Pid)
    }

    fn can_access_peer(&self, device: DeviceId, peer: DeviceId) -> Result<bool> {
        raw::can_access_peer(&self.session, device.0, peer.0)
    }

    fn batch_reset(&self, notifies: &[&SimNotify]) -> Result<()> {
        let handles: Vec<Result<&NotifyHandle>> = notifies.iter().map(|n| Ok(&n.handle)).collect();
        raw::batch_reset(&self.session, &handles)
    }
}

/// A device of the simulator: one of its contexts, as a value (C1). Cheap to clone.
#[derive(Clone, Debug)]
pub struct SimDevice {
    rt: SimRuntime,
    ctx: Arc<Context>,
}

impl SimDevice {
    fn s(&self) -> &Arc<Session> {
        &self.rt.session
    }

    fn cx(&self) -> Cx<'_> {
        Cx::Explicit(&self.ctx)
    }

    /// The context this value stands for.
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }
}

impl notify_api::Device for SimDevice {
    type Backend = Sim;

    fn id(&self) -> DeviceId {
        DeviceId(self.ctx.device())
    }

    fn runtime(&self) -> &SimRuntime {
        &self.rt
    }

    fn bare_tgid(&self) -> Result<Pid> {
        raw::bare_tgid(self.s()).map(Pid)
    }

    fn create_stream(&self) -> Result<SimStream> {
        Ok(SimStream {
            handle: raw::create_stream(self.s(), self.cx())?,
            device: self.clone(),
        })
    }

    fn default_stream(&self) -> Result<SimStream> {
        Ok(SimStream {
            handle: raw::default_stream(self.s(), &self.ctx)?,
            device: self.clone(),
        })
    }

    fn create_notify(&self, flags: NotifyFlags) -> Result<SimNotify> {
        Ok(SimNotify {
            handle: raw::create_notify(self.s(), self.cx(), flags.bits())?,
            device: self.clone(),
        })
    }

    fn import_notify(&self, key: &ExportKey, flags: ImportFlags) -> Result<SimNotify> {
        Ok(SimNotify {
            handle: raw::import(self.s(), self.cx(), &key.to_c_buf(), flags.bits())?,
            device: self.clone(),
        })
    }

    fn enable_peer_access(&self, peer: DeviceId) -> Result<()> {
        raw::enable_peer_access(self.s(), self.cx(), peer.0, 0)
    }

    fn create_context(&self) -> Result<SimDevice> {
        Ok(SimDevice {
            rt: self.rt.clone(),
            ctx: raw::new_context(self.s(), self.ctx.device())?,
        })
    }

    fn synchronize(&self) -> Result<()> {
        raw::synchronize_device(self.s(), self.cx())
    }

    fn alloc(&self, size: usize, policy: MallocPolicy) -> Result<SimBuffer> {
        let addr = raw::malloc(self.s(), self.cx(), size, policy.bits())?;
        Ok(SimBuffer {
            device: self.clone(),
            addr,
            len: size,
            freed: false,
        })
    }

    fn mem_info(&self) -> Result<MemInfo> {
        let (free, total) = raw::get_mem_info(self.s(), self.cx(), 0)?;
        Ok(MemInfo { free, total })
    }

    fn import_memory(
        &self,
        key: &ExportKey,
        len: usize,
        flags: MemImportFlags,
    ) -> Result<SimMemImport> {
        if len == 0 {
            return Err(err!(M5: RT_PARAM_INVALID, "an import of 0 bytes"));
        }
        let addr = raw::ipc_import(self.s(), self.cx(), &key.to_c_buf(), flags.bits())?;
        let (mapped, device, _) =
            raw::mem_region(self.s(), addr).unwrap_or((0, self.ctx.device(), true));
        let import = SimMemImport {
            device: self.clone(),
            key: key.clone(),
            addr,
            len,
            mem_device: DeviceId(device),
            closed: false,
        };
        if len as u64 > mapped {
            // Dropping the import closes it again.
            drop(import);
            return Err(err!(
                M5: RT_PARAM_INVALID,
                "the key exports {mapped} bytes, not {len} (the exporter's length must come with                  the key)"
            ));
        }
        Ok(import)
    }

    fn create_event(&self, flags: EventFlags) -> Result<SimEvent> {
        Ok(SimEvent {
            handle: raw::create_event(self.s(), self.cx(), flags.bits() as u32)?,
            device: self.clone(),
        })
    }

    fn copy_from_host(&self, dst: DeviceRange<'_>, src: &[u8]) -> Result<()> {
        let src_addr = src.as_ptr().addr();
        // SAFETY: `src` is a live slice of `src.len()` bytes for the whole (synchronous) call.
        unsafe {
            raw::memcpy(
                self.s(),
                self.cx(),
                dst.addr() as usize,
                dst.len(),
                src_addr,
                src.len(),
                H2D,
            )
        }
    }

    fn copy_to_host(&self, dst: &mut [u8], src: DeviceRange<'_>) -> Result<()> {
        if dst.len() < src.len() {
            return Err(notify_api::err!(
                M2: RT_PARAM_INVALID,
                "count {} is larger than destMax {}",
                src.len(),
                dst.len()
            ));
        }
        let dst_addr = dst.as_mut_ptr().addr();
        // SAFETY: `dst` is a live, exclusive slice of at least `src.len()` bytes for the whole
        // (synchronous) call.
        unsafe {
            raw::memcpy(
                self.s(),
                self.cx(),
                dst_addr,
                dst.len(),
                src.addr() as usize,
                src.len(),
                D2H,
            )
        }
    }

    fn copy(&self, dst: DeviceRange<'_>, src: DeviceRange<'_>) -> Result<()> {
        // SAFETY: both are device ranges, which `raw` checks; no host memory is involved (a
        // range naming none of this process's device memory is refused).
        unsafe {
            raw::memcpy(
                self.s(),
                self.cx(),
                dst.addr() as usize,
                dst.len(),
                src.addr() as usize,
                src.len(),
                D2D,
            )
        }
    }

    fn memset(&self, dst: DeviceRange<'_>, value: u8) -> Result<()> {
        raw::memset(
            self.s(),
            self.cx(),
            dst.addr() as usize,
            dst.len(),
            i32::from(value),
            dst.len(),
        )
    }
}

/// Device memory of the simulator (M1); dropping it frees it (M6).
#[derive(Debug)]
pub struct SimBuffer {
    device: SimDevice,
    addr: u64,
    len: usize,
    freed: bool,
}

impl notify_api::Buffer for SimBuffer {
    type Backend = Sim;

    fn device(&self) -> &SimDevice {
        &self.device
    }

    fn len(&self) -> usize {
        self.len
    }

    fn as_range(&self) -> DeviceRange<'_> {
        DeviceRange::new(
            self.addr,
            self.len,
            DeviceId(self.device.ctx.device()),
            false,
        )
    }

    fn export(&self, range: DeviceRange<'_>, flags: MemExportFlags) -> Result<SimMemExport> {
        let key = raw::ipc_export(
            self.device.s(),
            self.device.cx(),
            range.addr() as usize,
            range.len(),
            flags.bits(),
            notify_api::EXPORT_KEY_LEN,
        )?;
        Ok(SimMemExport {
            device: self.device.clone(),
            key,
            len: range.len(),
            closed: false,
        })
    }

    fn free(mut self) -> Result<()> {
        self.freed = true;
        raw::free(self.device.s(), self.addr as usize)
    }
}

impl Drop for SimBuffer {
    fn drop(&mut self) {
        if !self.freed {
            let _ = raw::free(self.device.s(), self.addr as usize);
        }
    }
}

/// An IPC export of simulator memory (M3, M4); dropping it closes the key (M6).
#[derive(Debug)]
pub struct SimMemExport {
    device: SimDevice,
    key: ExportKey,
    len: usize,
    closed: bool,
}

impl notify_api::MemExport for SimMemExport {
    type Backend = Sim;

    fn key(&self) -> &ExportKey {
        &self.key
    }

    fn len(&self) -> usize {
        self.len
    }

    fn set_import_pids(&self, pids: &[Pid]) -> Result<()> {
        let raw_pids: Vec<i32> = pids.iter().map(|p| p.0).take(31).collect();
        raw::ipc_set_import_pid(self.device.s(), &self.key.to_c_buf(), pids.len(), &raw_pids)
    }

    fn close(mut self) -> Result<()> {
        self.closed = true;
        raw::ipc_close(self.device.s(), &self.key.to_c_buf())
    }
}

impl Drop for SimMemExport {
    fn drop(&mut self) {
        if !self.closed {
            let _ = raw::ipc_close(self.device.s(), &self.key.to_c_buf());
        }
    }
}

/// Another process's simulator memory, imported (M5); dropping it closes it (M6).
#[derive(Debug)]
pub struct SimMemImport {
    device: SimDevice,
    key: ExportKey,
    addr: u64,
    len: usize,
    mem_device: DeviceId,
    closed: bool,
}

impl notify_api::MemImport for SimMemImport {
    type Backend = Sim;

    fn device(&self) -> &SimDevice {
        &self.device
    }

    fn len(&self) -> usize {
        self.len
    }

    fn as_range(&self) -> DeviceRange<'_> {
        DeviceRange::new(self.addr, self.len, self.mem_device, true)
    }

    fn close(mut self) -> Result<()> {
        self.closed = true;
        raw::ipc_close(self.device.s(), &self.key.to_c_buf())
    }
}

impl Drop for SimMemImport {
    fn drop(&mut self) {
        if !self.closed {
            let _ = raw::ipc_close(self.device.s(), &self.key.to_c_buf());
        }
    }
}

/// An event of the simulator (E1).
#[derive(Debug)]
pub struct SimEvent {
    device: SimDevice,
    handle: EventHandle,
}

impl notify_api::Event for SimEvent {
    type Backend = Sim;

    fn device(&self) -> &SimDevice {
        &self.device
    }

    fn synchronize(&self) -> Result<()> {
        raw::synchronize_event(self.device.s(), Ok(&self.handle))
    }

    fn is_complete(&self) -> Result<bool> {
        raw::query_event(self.device.s(), Ok(&self.handle))
    }

    fn elapsed_ms(&self, start: &SimEvent) -> Result<f32> {
        raw::event_elapsed(self.device.s(), Ok(&start.handle), Ok(&self.handle))
    }

    fn destroy(self) -> Result<()> {
        let Self { device, handle } = self;
        raw::destroy_event(device.s(), handle)
    }
}

/// A stream of the simulator: an in-order executor (R2).
#[derive(Debug)]
pub struct SimStream {
    device: SimDevice,
    handle: StreamHandle,
}

impl SimStream {
    /// The raw handle.
    pub fn handle(&self) -> &StreamHandle {
        &self.handle
    }

    #[inline]
    fn arg(&self) -> StreamArg<'_> {
        StreamArg::Handle(Ok(&self.handle))
    }
}

#[async_trait::async_trait]
impl notify_api::Stream for SimStream {
    type Backend = Sim;

    fn device(&self) -> &SimDevice {
        &self.device
    }

    #[inline]
    fn record(&self, notify: &SimNotify) -> Result<()> {
        raw::record(
            self.device.s(),
            self.device.cx(),
            Ok(&notify.handle),
            self.arg(),
        )
    }

    fn wait(&self, notify: &SimNotify, timeout: impl Into<Timeout>) -> Result<()> {
        raw::wait(
            self.device.s(),
            self.device.cx(),
            Ok(&notify.handle),
            self.arg(),
            timeout.into().as_c_secs(),
        )
    }

    fn synchronize(&self) -> Result<()> {
        raw::synchronize(self.device.s(), self.device.cx(), self.arg(), None)
    }

    fn synchronize_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        let ms = timeout.map_or(-1, |t| i32::try_from(t.as_millis()).unwrap_or(i32::MAX));
        raw::synchronize(self.device.s(), self.device.cx(), self.arg(), Some(ms))
    }

    async fn synchronize_async(&self) -> Result<()> {
        raw::synchronize_async(self.device.s(), &self.handle)?.await
    }

    fn is_complete(&self) -> Result<bool> {
        raw::stream_query(self.device.s(), self.device.cx(), self.arg())
    }

    fn copy(&self, dst: DeviceRange<'_>, src: DeviceRange<'_>) -> Result<()> {
        // SAFETY: both are device ranges, which `raw` checks; no host memory is involved.
        unsafe {
            raw::memcpy_async(
                self.device.s(),
                self.device.cx(),
                dst.addr() as usize,
                dst.len(),
                src.addr() as usize,
                src.len(),
                D2D,
                self.arg(),
            )
        }
    }

    fn copy_from_host(
        &self,
        dst: DeviceRange<'_>,
        src: impl AsRef<[u8]> + Send + 'static,
    ) -> Result<()> {
        raw::copy_from_host_async(
            self.device.s(),
            self.device.cx(),
            dst.addr(),
            dst.len(),
            Box::new(src),
            self.arg(),
        )
    }

    fn copy_to_host(&self, src: DeviceRange<'_>) -> Result<Download> {
        raw::copy_to_host_async(
            self.device.s(),
            self.device.cx(),
            src.addr(),
            src.len(),
            self.arg(),
        )
    }

    fn memset(&self, dst: DeviceRange<'_>, value: u8) -> Result<()> {
        raw::memset_async(
            self.device.s(),
            self.device.cx(),
            dst.addr() as usize,
            dst.len(),
            i32::from(value),
            dst.len(),
            self.arg(),
        )
    }

    fn launch_host_fn(&self, f: impl FnOnce() + Send + 'static) -> Result<()> {
        raw::launch_host_fn(self.device.s(), self.device.cx(), self.arg(), f)
    }

    fn record_event(&self, event: &SimEvent) -> Result<()> {
        raw::record_event(
            self.device.s(),
            self.device.cx(),
            Ok(&event.handle),
            self.arg(),
        )
    }

    fn wait_event(&self, event: &SimEvent) -> Result<()> {
        raw::stream_wait_event(
            self.device.s(),
            self.device.cx(),
            self.arg(),
            Ok(&event.handle),
        )
    }

    fn reset_event(&self, event: &SimEvent) -> Result<()> {
        raw::reset_event(
            self.device.s(),
            self.device.cx(),
            Ok(&event.handle),
            self.arg(),
        )
    }

    fn destroy(self) -> Result<()> {
        let Self { device, handle } = self;
        raw::destroy_stream(device.s(), handle)
    }
}

/// A handle to a notify held by this process (R8).
#[derive(Debug)]
pub struct SimNotify {
    device: SimDevice,
    handle: NotifyHandle,
}

impl SimNotify {
    /// Whether this process created the notify.
    pub fn is_creator(&self) -> bool {
        self.handle.is_creator()
    }

    /// The device the notify lives on (the creator's; an importer's handle was made from
    /// [`notify_api::Notify::device`]).
    pub fn notify_device(&self) -> DeviceId {
        DeviceId(self.handle.device())
    }

    /// The raw handle.
    pub fn handle(&self) -> &NotifyHandle {
        &self.handle
    }
}

impl notify_api::Notify for SimNotify {
    type Backend = Sim;

    fn device(&self) -> &SimDevice {
        &self.device
    }

    fn id(&self) -> Result<NotifyId> {
        raw::notify_id(self.device.s(), Ok(&self.handle)).map(NotifyId)
    }

    fn export(&self, flags: ExportFlags) -> Result<ExportKey> {
        raw::export(
            self.device.s(),
            Ok(&self.handle),
            flags.bits(),
            notify_api::EXPORT_KEY_LEN,
        )
    }

    fn set_import_pid(&self, pid: Pid) -> Result<()> {
        raw::set_import_pid(self.device.s(), Ok(&self.handle), 1, pid.0)
    }

    fn destroy(self) -> Result<()> {
        let Self { device, handle } = self;
        raw::destroy_notify(device.s(), handle)
    }
}

// Every public handle is `Send + Sync`, and the compiler checks it.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<SimRuntime>();
    send_sync::<SimDevice>();
    send_sync::<SimStream>();
    send_sync::<SimNotify>();
    send_sync::<SimBuffer>();
    send_sync::<SimMemExport>();
    send_sync::<SimMemImport>();
    send_sync::<SimEvent>();
    send_sync::<Session>();
    send_sync::<NotifyHandle>();
    send_sync::<StreamHandle>();
};

#[cfg(test)]
mod tests {
    use super::*;
    use notify_api::AclError;
    use notify_api::prelude::*;

    fn runtime(label: &str) -> (SimRuntime, String) {
        let ns = format!("t-unit-{label}-{}", std::process::id());
        let rt = SimBuilder::default()
            .namespace(&ns)
            .devices(2)
            .capacity(8)
            .processes(8)
            .build()
            .expect("attach");
        (rt, ns)
    }

    /// R1, R3: records merge, a record before the wait is not lost, an expired wait is 107019;
    /// the last process out removes the namespace.
    #[test]
    fn flag_and_cleanup() {
        let (rt, ns) = runtime("flag");
        let dev = rt.device(DeviceId(0)).unwrap();
        let n = dev.create_notify(NotifyFlags::DEFAULT).unwrap();
        let s = dev.create_stream().unwrap();
        s.record(&n).unwrap();
        s.record(&n).unwrap();
        s.wait(&n, Timeout::secs(1)).unwrap();
        s.synchronize().unwrap();
        s.wait(&n, Timeout::secs(1)).unwrap();
        assert_eq!(
            s.synchronize().unwrap_err().code(),
            AclError::RT_WAIT_TIMEOUT
        );
        // Any thread, no set-up.
        std::thread::scope(|t| {
            t.spawn(|| s.record(&n).unwrap());
        });
        s.wait(&n, Timeout::secs(5)).unwrap();
        s.synchronize().unwrap();
        let key = n.export(ExportFlags::DEFAULT).unwrap();
        assert_eq!(
            dev.import_notify(&key, ImportFlags::DEFAULT)
                .unwrap_err()
                .code(),
            AclError::RT_INTERNAL_ERROR,
            "R7: a notify this process holds"
        );
        assert_eq!(
            rt.device(DeviceId(2)).unwrap_err().code(),
            AclError::RT_INVALID_DEVICEID
        );
        drop((n, s, dev, rt));
        assert!(
            !crate::namespace_exists(&ns),
            "the last process out removes it"
        );
        assert!(crate::namespace_files(&ns).is_empty());
    }

    /// R6: one pid per call, pid 0 and the creator's own ignored, 15 importers.
    #[test]
    fn whitelist_rules() {
        let (rt, _ns) = runtime("wl");
        let dev = rt.device(DeviceId(1)).unwrap();
        let n = dev.create_notify(NotifyFlags::DEFAULT).unwrap();
        assert_eq!(
            n.set_import_pid(Pid(7)).unwrap_err().code(),
            AclError::RT_PARAM_INVALID
        );
        n.export(ExportFlags::DEFAULT).unwrap();
        n.set_import_pid(Pid(0)).unwrap();
        n.set_import_pid(rt.bare_tgid().unwrap()).unwrap();
        for pid in 100..115 {
            n.set_import_pid(Pid(pid)).unwrap();
        }
        n.set_import_pid(Pid(100)).unwrap();
        assert_eq!(
            n.set_import_pid(Pid(115)).unwrap_err().code(),
            AclError::RT_DRV_INTERNAL_ERROR
        );
        assert_eq!(
            n.set_import_pid(Pid(-1)).unwrap_err().code(),
            AclError::RT_PARAM_INVALID
        );
        let d = dev.create_notify(NotifyFlags::DEFAULT).unwrap();
        d.export(ExportFlags::DISABLE_PID_VALIDATION).unwrap();
        assert_eq!(
            d.set_import_pid(Pid(5)).unwrap_err().code(),
            AclError::RT_NO_PERMISSION
        );
    }
}
