//! The facade's handle types: [`Runtime`], [`Device`], [`Stream`], [`Notify`] over whichever
//! backend [`crate::RuntimeBuilder`] chose, and [`Dyn`], the backend marker that names them.
//!
//! Every method is also a method of the `notify-api` trait of the same name (whose docs hold
//! the `# Behavior` and `# Errors` sections); the inherent ones exist so that no trait needs to
//! be imported for the main path.

use std::sync::Arc;
use std::time::Duration;

use notify_api::{
    BackendKind, DeviceId, ExportFlags, ExportKey, ImportFlags, NotifyFlags, NotifyId, Pid, Result,
    Timeout,
};

use crate::RuntimeBuilder;
use crate::erased::{DynDevice, DynNotify, DynRuntime, DynStream};

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

#[async_trait::async_trait]
impl notify_api::Stream for Stream {
    type Backend = Dyn;

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
};
