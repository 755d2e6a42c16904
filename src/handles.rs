//! The facade's handle types: [`Runtime`], [`Device`], [`Stream`], [`Notify`] over whichever
//! backend [`crate::RuntimeBuilder`] chose, and [`Dyn`], the backend marker that names them.
//!
//! Every method is also a method of the `notify-api` trait of the same name (whose docs hold
//! the `# Behavior` and `# Errors` sections); the inherent ones exist so that no trait needs to
//! be imported for the main path.

use std::sync::Arc;
use std::time::Duration;

use notify_api::{
    BackendKind, DeviceId, DeviceRange, Download, EventFlags, ExportFlags, ExportKey, ImportFlags,
    MallocPolicy, MemExportFlags, MemImportFlags, MemInfo, NotifyFlags, NotifyId, Pid, Result,
    Timeout,
};

use crate::RuntimeBuilder;
use crate::erased::{
    DynBuffer, DynDevice, DynEvent, DynExport, DynImport, DynNotify, DynRuntime, DynStream,
};

/// The facade's backend: whichever one the builder chose at run time, as a `notify-api`
/// [`Backend`](notify_api::Backend). Generic code written over `B: Backend` runs on it
/// unchanged, and the conformance suite runs against it as against the backends themselves.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Dyn;

impl notify_api::Backend for Dyn {
    type Runtime = Runtime;
    type Device = Device;
    type Stream = Stream;
    type Notify = Notify;
    type Buffer = Buffer;
    type MemExport = MemExport;
    type MemImport = MemImport;
    type Event = Event;
}

/// This process attached to a backend. Cheap to clone; the process detaches when the last
/// clone and every handle made from it are gone.
#[derive(Clone, Debug)]
pub struct Runtime {
    inner: Arc<dyn DynRuntime>,
}

impl Runtime {
    /// A builder: which backend, and its options.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::new()
    }

    /// A runtime chosen by the environment alone (`ASCEND_NOTIFY_BACKEND`, else automatic).
    ///
    /// # Errors
    /// As [`RuntimeBuilder::build`].
    pub fn from_env() -> Result<Self> {
        RuntimeBuilder::new().build()
    }

    pub(crate) fn wrap(inner: impl notify_api::Runtime) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The backend's own runtime type (`backend_sim::SimRuntime`,
    /// `backend_ascend::AscendRuntime`), if it is `T`.
    pub fn downcast_ref<T: notify_api::Runtime>(&self) -> Option<&T> {
        self.inner.as_any().downcast_ref()
    }

    /// Which implementation this is.
    pub fn kind(&self) -> BackendKind {
        self.inner.kind()
    }

    /// The number of devices ([`notify_api::Runtime::device_count`]).
    pub fn device_count(&self) -> Result<u32> {
        self.inner.device_count()
    }

    /// Device `id` as a value ([`notify_api::Runtime::device`]).
    pub fn device(&self, id: DeviceId) -> Result<Device> {
        Ok(Device {
            inner: Arc::from(self.inner.device(id)?),
            rt: self.clone(),
        })
    }

    /// This process's bare tgid ([`notify_api::Runtime::bare_tgid`], R16).
    pub fn bare_tgid(&self) -> Result<Pid> {
        self.inner.bare_tgid()
    }

    /// Whether `device` can access `peer` ([`notify_api::Runtime::can_access_peer`]).
    pub fn can_access_peer(&self, device: DeviceId, peer: DeviceId) -> Result<bool> {
        self.inner.can_access_peer(device, peer)
    }

    /// Clears the flags of `notifies` now ([`notify_api::Runtime::batch_reset`], R1).
    pub fn batch_reset(&self, notifies: &[&Notify]) -> Result<()> {
        let erased: Vec<&dyn DynNotify> = notifies.iter().map(|n| &*n.inner).collect();
        self.inner.batch_reset(&erased)
    }
}

/// A device, as a value ([`notify_api::Device`]). Cheap to clone.
#[derive(Clone, Debug)]
pub struct Device {
    inner: Arc<dyn DynDevice>,
    rt: Runtime,
}

impl Device {
    /// The backend's own device type, if it is `T`.
    pub fn downcast_ref<T: notify_api::Device>(&self) -> Option<&T> {
        self.inner.as_any().downcast_ref()
    }

    /// The device's ordinal.
    pub fn id(&self) -> DeviceId {
        self.inner.id()
    }

    /// The runtime this device belongs to.
    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }

    /// This process's bare tgid ([`notify_api::Device::bare_tgid`], R16).
    pub fn bare_tgid(&self) -> Result<Pid> {
        self.inner.bare_tgid()
    }

    /// Creates a stream on this device ([`notify_api::Device::create_stream`]).
    pub fn create_stream(&self) -> Result<Stream> {
        Ok(Stream {
            inner: self.inner.create_stream()?,
            device: self.clone(),
        })
    }

    /// This device's default stream ([`notify_api::Device::default_stream`]).
    pub fn default_stream(&self) -> Result<Stream> {
        Ok(Stream {
            inner: self.inner.default_stream()?,
            device: self.clone(),
        })
    }

    /// Creates a notify on this device ([`notify_api::Device::create_notify`]).
    pub fn create_notify(&self, flags: NotifyFlags) -> Result<Notify> {
        Ok(Notify {
            inner: self.inner.create_notify(flags)?,
            device: self.clone(),
        })
    }

    /// Imports another process's notify ([`notify_api::Device::import_notify`], R7).
    pub fn import_notify(&self, key: &ExportKey, flags: ImportFlags) -> Result<Notify> {
        Ok(Notify {
            inner: self.inner.import_notify(key, flags)?,
            device: self.clone(),
        })
    }

    /// Enables access from this device to `peer` ([`notify_api::Device::enable_peer_access`]).
    pub fn enable_peer_access(&self, peer: DeviceId) -> Result<()> {
        self.inner.enable_peer_access(peer)
    }

    /// Another context on this device, as a device value ([`notify_api::Device::create_context`],
    /// C1).
    pub fn create_context(&self) -> Result<Device> {
        Ok(Device {
            inner: Arc::from(self.inner.create_context()?),
            rt: self.rt.clone(),
        })
    }

    /// Waits for every stream of this device ([`notify_api::Device::synchronize`], S1).
    pub fn synchronize(&self) -> Result<()> {
        self.inner.synchronize()
    }

    /// Allocates device memory ([`notify_api::Device::alloc`], M1).
    pub fn alloc(&self, size: usize, policy: MallocPolicy) -> Result<Buffer> {
        Ok(Buffer {
            inner: self.inner.alloc(size, policy)?,
            device: self.clone(),
        })
    }

    /// This device's free and total memory ([`notify_api::Device::mem_info`], M1).
    pub fn mem_info(&self) -> Result<MemInfo> {
        self.inner.mem_info()
    }

    /// Imports `len` bytes of another process's memory
    /// ([`notify_api::Device::import_memory`], M5).
    pub fn import_memory(
        &self,
        key: &ExportKey,
        len: usize,
        flags: MemImportFlags,
    ) -> Result<MemImport> {
        Ok(MemImport {
            inner: self.inner.import_memory(key, len, flags)?,
            device: self.clone(),
        })
    }

    /// Creates an event ([`notify_api::Device::create_event`], E1).
    pub fn create_event(&self, flags: EventFlags) -> Result<Event> {
        Ok(Event {
            inner: self.inner.create_event(flags)?,
            device: self.clone(),
        })
    }

    /// Copies host bytes to device memory now ([`notify_api::Device::copy_from_host`], M2).
    pub fn copy_from_host(&self, dst: DeviceRange<'_>, src: &[u8]) -> Result<()> {
        self.inner.copy_from_host(dst, src)
    }

    /// Copies device memory to host bytes now ([`notify_api::Device::copy_to_host`], M2).
    pub fn copy_to_host(&self, dst: &mut [u8], src: DeviceRange<'_>) -> Result<()> {
        self.inner.copy_to_host(dst, src)
    }

    /// Copies device memory now ([`notify_api::Device::copy`], M2).
    pub fn copy(&self, dst: DeviceRange<'_>, src: DeviceRange<'_>) -> Result<()> {
        self.inner.copy(dst, src)
    }

    /// Sets device memory now ([`notify_api::Device::memset`], M2).
    pub fn memset(&self, dst: DeviceRange<'_>, value: u8) -> Result<()> {
        self.inner.memset(dst, value)
    }
}

/// Device memory this process allocated ([`notify_api::Buffer`]); dropping it frees it.
#[derive(Debug)]
pub struct Buffer {
    inner: Box<dyn DynBuffer>,
    device: Device,
}

impl Buffer {
    /// The device it was allocated on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether it is empty (never).
    pub fn is_empty(&self) -> bool {
        self.inner.len() == 0
    }

    /// The whole buffer as a range ([`notify_api::Buffer::as_range`]).
    pub fn as_range(&self) -> DeviceRange<'_> {
        self.inner.as_range()
    }

    /// Exports `range` to other processes ([`notify_api::Buffer::export`], M3).
    pub fn export(&self, range: DeviceRange<'_>, flags: MemExportFlags) -> Result<MemExport> {
        Ok(MemExport {
            inner: self.inner.export(range, flags)?,
        })
    }

    /// Frees the buffer ([`notify_api::Buffer::free`], M6).
    pub fn free(self) -> Result<()> {
        self.inner.free()
    }
}

/// An IPC export of device memory ([`notify_api::MemExport`]); dropping it closes the key.
#[derive(Debug)]
pub struct MemExport {
    inner: Box<dyn DynExport>,
}

impl MemExport {
    /// The key to give importers.
    pub fn key(&self) -> &ExportKey {
        self.inner.key()
    }

    /// The exported range's length, which importers need with the key.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether the exported range is empty (never, M3).
    pub fn is_empty(&self) -> bool {
        self.inner.len() == 0
    }

    /// Whitelists importers ([`notify_api::MemExport::set_import_pids`], M4).
    pub fn set_import_pids(&self, pids: &[Pid]) -> Result<()> {
        self.inner.set_import_pids(pids)
    }

    /// Closes the key ([`notify_api::MemExport::close`], M6).
    pub fn close(self) -> Result<()> {
        self.inner.close()
    }
}

/// Another process's memory, imported ([`notify_api::MemImport`]); dropping it closes it.
#[derive(Debug)]
pub struct MemImport {
    inner: Box<dyn DynImport>,
    device: Device,
}

impl MemImport {
    /// The device that was current when it was imported.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether it is empty (never).
    pub fn is_empty(&self) -> bool {
        self.inner.len() == 0
    }

    /// The imported memory as a range ([`notify_api::MemImport::as_range`], M5).
    pub fn as_range(&self) -> DeviceRange<'_> {
        self.inner.as_range()
    }

    /// Closes the import ([`notify_api::MemImport::close`], M6).
    pub fn close(self) -> Result<()> {
        self.inner.close()
    }
}

/// An event ([`notify_api::Event`], E1); dropping it destroys it.
#[derive(Debug)]
pub struct Event {
    inner: Box<dyn DynEvent>,
    device: Device,
}

impl Event {
    /// The device it belongs to.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Blocks until the work recorded on it ran ([`notify_api::Event::synchronize`]).
    pub fn synchronize(&self) -> Result<()> {
        self.inner.synchronize()
    }

    /// Whether every record on it ran ([`notify_api::Event::is_complete`]).
    pub fn is_complete(&self) -> Result<bool> {
        self.inner.is_complete()
    }

    /// Milliseconds from `start` to this event ([`notify_api::Event::elapsed_ms`]).
    pub fn elapsed_ms(&self, start: &Event) -> Result<f32> {
        self.inner.elapsed_ms(&*start.inner)
    }

    /// Destroys the event ([`notify_api::Event::destroy`]).
    pub fn destroy(self) -> Result<()> {
        self.inner.destroy()
    }
}

/// A stream ([`notify_api::Stream`]): every enqueue is one of its methods.
#[derive(Debug)]
pub struct Stream {
    inner: Box<dyn DynStream>,
    device: Device,
}

impl Stream {
    /// The backend's own stream type, if it is `T`.
    pub fn downcast_ref<T: notify_api::Stream>(&self) -> Option<&T> {
        self.inner.as_any().downcast_ref()
    }

    /// The device the stream belongs to.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Enqueues a record of `notify` ([`notify_api::Stream::record`]).
    #[inline]
    pub fn record(&self, notify: &Notify) -> Result<()> {
        self.inner.record(&*notify.inner)
    }

    /// Enqueues a wait on `notify` ([`notify_api::Stream::wait`]).
    pub fn wait(&self, notify: &Notify, timeout: impl Into<Timeout>) -> Result<()> {
        self.inner.wait(&*notify.inner, timeout.into())
    }

    /// Waits for every task enqueued before ([`notify_api::Stream::synchronize`]).
    pub fn synchronize(&self) -> Result<()> {
        self.inner.synchronize()
    }

    /// [`Stream::synchronize`] that gives up ([`notify_api::Stream::synchronize_timeout`]).
    pub fn synchronize_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        self.inner.synchronize_timeout(timeout)
    }

    /// [`Stream::synchronize`] as a future ([`notify_api::Stream::synchronize_async`]).
    pub async fn synchronize_async(&self) -> Result<()> {
        self.inner.synchronize_async().await
    }

    /// Destroys the stream after its tasks finish ([`notify_api::Stream::destroy`]).
    pub fn destroy(self) -> Result<()> {
        self.inner.destroy()
    }

    /// Whether nothing is queued or running ([`notify_api::Stream::is_complete`], S1).
    pub fn is_complete(&self) -> Result<bool> {
        self.inner.is_complete()
    }

    /// Enqueues a device-to-device copy ([`notify_api::Stream::copy`], M2).
    pub fn copy(&self, dst: DeviceRange<'_>, src: DeviceRange<'_>) -> Result<()> {
        self.inner.copy(dst, src)
    }

    /// Enqueues a host-to-device copy of bytes the stream keeps until it ran
    /// ([`notify_api::Stream::copy_from_host`], M2).
    pub fn copy_from_host(
        &self,
        dst: DeviceRange<'_>,
        src: impl AsRef<[u8]> + Send + 'static,
    ) -> Result<()> {
        self.inner.copy_from_host(dst, Box::new(src))
    }

    /// Enqueues a device-to-host copy ([`notify_api::Stream::copy_to_host`], M2).
    pub fn copy_to_host(&self, src: DeviceRange<'_>) -> Result<Download> {
        self.inner.copy_to_host(src)
    }

    /// Enqueues a set ([`notify_api::Stream::memset`], M2).
    pub fn memset(&self, dst: DeviceRange<'_>, value: u8) -> Result<()> {
        self.inner.memset(dst, value)
    }

    /// Enqueues a host function ([`notify_api::Stream::launch_host_fn`], H1).
    pub fn launch_host_fn(&self, f: impl FnOnce() + Send + 'static) -> Result<()> {
        self.inner.launch_host_fn(Box::new(f))
    }

    /// Enqueues a record of `event` ([`notify_api::Stream::record_event`], E1).
    pub fn record_event(&self, event: &Event) -> Result<()> {
        self.inner.record_event(&*event.inner)
    }

    /// Makes the stream wait for `event` ([`notify_api::Stream::wait_event`], E1).
    pub fn wait_event(&self, event: &Event) -> Result<()> {
        self.inner.wait_event(&*event.inner)
    }

    /// Enqueues a reset of `event` ([`notify_api::Stream::reset_event`], E1).
    pub fn reset_event(&self, event: &Event) -> Result<()> {
        self.inner.reset_event(&*event.inner)
    }
}

/// A notify handle ([`notify_api::Notify`]).
#[derive(Debug)]
pub struct Notify {
    inner: Box<dyn DynNotify>,
    device: Device,
}

impl Notify {
    /// The backend's own notify type, if it is `T`.
    pub fn downcast_ref<T: notify_api::Notify>(&self) -> Option<&T> {
        self.inner.as_any().downcast_ref()
    }

    /// The device this handle was made from.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The notify's id ([`notify_api::Notify::id`]).
    pub fn id(&self) -> Result<NotifyId> {
        self.inner.id()
    }

    /// Exports the notify ([`notify_api::Notify::export`], R5).
    pub fn export(&self, flags: ExportFlags) -> Result<ExportKey> {
        self.inner.export(flags)
    }

    /// Whitelists one importer ([`notify_api::Notify::set_import_pid`], R6).
    pub fn set_import_pid(&self, pid: Pid) -> Result<()> {
        self.inner.set_import_pid(pid)
    }

    /// Destroys this handle ([`notify_api::Notify::destroy`], R8).
    pub fn destroy(self) -> Result<()> {
        self.inner.destroy()
    }
}

impl notify_api::Runtime for Runtime {
    type Backend = Dyn;

    fn kind(&self) -> BackendKind {
        Runtime::kind(self)
    }

    fn device_count(&self) -> Result<u32> {
        Runtime::device_count(self)
    }

    fn device(&self, id: DeviceId) -> Result<Device> {
        Runtime::device(self, id)
    }

    fn bare_tgid(&self) -> Result<Pid> {
        Runtime::bare_tgid(self)
    }

    fn can_access_peer(&self, device: DeviceId, peer: DeviceId) -> Result<bool> {
        Runtime::can_access_peer(self, device, peer)
    }

    fn batch_reset(&self, notifies: &[&Notify]) -> Result<()> {
        Runtime::batch_reset(self, notifies)
    }
}

impl notify_api::Device for Device {
    type Backend = Dyn;

    fn create_context(&self) -> Result<Device> {
        Device::create_context(self)
    }

    fn synchronize(&self) -> Result<()> {
        Device::synchronize(self)
    }

    fn alloc(&self, size: usize, policy: MallocPolicy) -> Result<Buffer> {
        Device::alloc(self, size, policy)
    }

    fn mem_info(&self) -> Result<MemInfo> {
        Device::mem_info(self)
    }

    fn import_memory(
        &self,
        key: &ExportKey,
        len: usize,
        flags: MemImportFlags,
    ) -> Result<MemImport> {
        Device::import_memory(self, key, len, flags)
    }

    fn create_event(&self, flags: EventFlags) -> Result<Event> {
        Device::create_event(self, flags)
    }

    fn copy_from_host(&self, dst: DeviceRange<'_>, src: &[u8]) -> Result<()> {
        Device::copy_from_host(self, dst, src)
    }

    fn copy_to_host(&self, dst: &mut [u8], src: DeviceRange<'_>) -> Result<()> {
        Device::copy_to_host(self, dst, src)
    }

    fn copy(&self, dst: DeviceRange<'_>, src: DeviceRange<'_>) -> Result<()> {
        Device::copy(self, dst, src)
    }

    fn memset(&self, dst: DeviceRange<'_>, value: u8) -> Result<()> {
        Device::memset(self, dst, value)
    }

    fn id(&self) -> DeviceId {
        Device::id(self)
    }

    fn runtime(&self) -> &Runtime {
        Device::runtime(self)
    }

    fn bare_tgid(&self) -> Result<Pid> {
        Device::bare_tgid(self)
    }

    fn create_stream(&self) -> Result<Stream> {
        Device::create_stream(self)
    }

    fn default_stream(&self) -> Result<Stream> {
        Device::default_stream(self)
    }

    fn create_notify(&self, flags: NotifyFlags) -> Result<Notify> {
        Device::create_notify(self, flags)
    }

    fn import_notify(&self, key: &ExportKey, flags: ImportFlags) -> Result<Notify> {
        Device::import_notify(self, key, flags)
    }

    fn enable_peer_access(&self, peer: DeviceId) -> Result<()> {
        Device::enable_peer_access(self, peer)
    }
}

impl notify_api::Buffer for Buffer {
    type Backend = Dyn;

    fn device(&self) -> &Device {
        Buffer::device(self)
    }

    fn len(&self) -> usize {
        Buffer::len(self)
    }

    fn as_range(&self) -> DeviceRange<'_> {
        Buffer::as_range(self)
    }

    fn export(&self, range: DeviceRange<'_>, flags: MemExportFlags) -> Result<MemExport> {
        Buffer::export(self, range, flags)
    }

    fn free(self) -> Result<()> {
        Buffer::free(self)
    }
}

impl notify_api::MemExport for MemExport {
    type Backend = Dyn;

    fn key(&self) -> &ExportKey {
        MemExport::key(self)
    }

    fn len(&self) -> usize {
        MemExport::len(self)
    }

    fn set_import_pids(&self, pids: &[Pid]) -> Result<()> {
        MemExport::set_import_pids(self, pids)
    }

    fn close(self) -> Result<()> {
        MemExport::close(self)
    }
}

impl notify_api::MemImport for MemImport {
    type Backend = Dyn;

    fn device(&self) -> &Device {
        MemImport::device(self)
    }

    fn len(&self) -> usize {
        MemImport::len(self)
    }

    fn as_range(&self) -> DeviceRange<'_> {
        MemImport::as_range(self)
    }

    fn close(self) -> Result<()> {
        MemImport::close(self)
    }
}

impl notify_api::Event for Event {
    type Backend = Dyn;

    fn device(&self) -> &Device {
        Event::device(self)
    }

    fn synchronize(&self) -> Result<()> {
        Event::synchronize(self)
    }

    fn is_complete(&self) -> Result<bool> {
        Event::is_complete(self)
    }

    fn elapsed_ms(&self, start: &Event) -> Result<f32> {
        Event::elapsed_ms(self, start)
    }

    fn destroy(self) -> Result<()> {
        Event::destroy(self)
    }
}

#[async_trait::async_trait]
impl notify_api::Stream for Stream {
    type Backend = Dyn;

    fn is_complete(&self) -> Result<bool> {
        Stream::is_complete(self)
    }

    fn copy(&self, dst: DeviceRange<'_>, src: DeviceRange<'_>) -> Result<()> {
        Stream::copy(self, dst, src)
    }

    fn copy_from_host(
        &self,
        dst: DeviceRange<'_>,
        src: impl AsRef<[u8]> + Send + 'static,
    ) -> Result<()> {
        Stream::copy_from_host(self, dst, src)
    }

    fn copy_to_host(&self, src: DeviceRange<'_>) -> Result<Download> {
        Stream::copy_to_host(self, src)
    }

    fn memset(&self, dst: DeviceRange<'_>, value: u8) -> Result<()> {
        Stream::memset(self, dst, value)
    }

    fn launch_host_fn(&self, f: impl FnOnce() + Send + 'static) -> Result<()> {
        Stream::launch_host_fn(self, f)
    }

    fn record_event(&self, event: &Event) -> Result<()> {
        Stream::record_event(self, event)
    }

    fn wait_event(&self, event: &Event) -> Result<()> {
        Stream::wait_event(self, event)
    }

    fn reset_event(&self, event: &Event) -> Result<()> {
        Stream::reset_event(self, event)
    }

    fn device(&self) -> &Device {
        Stream::device(self)
    }

    #[inline]
    fn record(&self, notify: &Notify) -> Result<()> {
        Stream::record(self, notify)
    }

    fn wait(&self, notify: &Notify, timeout: impl Into<Timeout>) -> Result<()> {
        Stream::wait(self, notify, timeout)
    }

    fn synchronize(&self) -> Result<()> {
        Stream::synchronize(self)
    }

    fn synchronize_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        Stream::synchronize_timeout(self, timeout)
    }

    async fn synchronize_async(&self) -> Result<()> {
        Stream::synchronize_async(self).await
    }

    fn destroy(self) -> Result<()> {
        Stream::destroy(self)
    }
}

impl notify_api::Notify for Notify {
    type Backend = Dyn;

    fn device(&self) -> &Device {
        Notify::device(self)
    }

    fn id(&self) -> Result<NotifyId> {
        Notify::id(self)
    }

    fn export(&self, flags: ExportFlags) -> Result<ExportKey> {
        Notify::export(self, flags)
    }

    fn set_import_pid(&self, pid: Pid) -> Result<()> {
        Notify::set_import_pid(self, pid)
    }

    fn destroy(self) -> Result<()> {
        Notify::destroy(self)
    }
}

// Every public handle is `Send + Sync`, and the compiler checks it.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Runtime>();
    send_sync::<Device>();
    send_sync::<Stream>();
    send_sync::<Notify>();
    send_sync::<Buffer>();
    send_sync::<MemExport>();
    send_sync::<MemImport>();
    send_sync::<Event>();
};
