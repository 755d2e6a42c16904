//! The type-erased layer, written once for every backend: object-safe mirrors of the
//! `notify-api` traits, implemented for any type that implements the real ones (wgpu's
//! `dynamic` module pattern).
//!
//! A handle of one backend given to another (a simulator notify recorded on a stream of the
//! real runtime) is caught here by a failed downcast and reported as a foreign handle (R10:
//! 107017), never a panic.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use notify_api::{
    Backend, BackendKind, DeviceId, DeviceRange, Download, EventFlags, ExportFlags, ExportKey,
    ImportFlags, MallocPolicy, MemExportFlags, MemImportFlags, MemInfo, NotifyFlags, NotifyId, Pid,
    Result, Timeout, err,
};

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The handle type of another backend was passed (R10).
#[cold]
fn foreign(what: &str) -> notify_api::Error {
    err!(
        R10: RT_INVALID_HANDLE,
        "the {what} belongs to another backend than the one it is used with"
    )
}

fn downcast<'a, T: 'static>(value: &'a dyn Any, what: &str) -> Result<&'a T> {
    value.downcast_ref::<T>().ok_or_else(|| foreign(what))
}

pub(crate) trait DynRuntime: Send + Sync + fmt::Debug + 'static {
    fn kind(&self) -> BackendKind;
    fn device_count(&self) -> Result<u32>;
    fn device(&self, id: DeviceId) -> Result<Box<dyn DynDevice>>;
    fn bare_tgid(&self) -> Result<Pid>;
    fn can_access_peer(&self, device: DeviceId, peer: DeviceId) -> Result<bool>;
    fn batch_reset(&self, notifies: &[&dyn DynNotify]) -> Result<()>;
    fn as_any(&self) -> &dyn Any;
}

pub(crate) trait DynDevice: Send + Sync + fmt::Debug + 'static {
    fn id(&self) -> DeviceId;
    fn bare_tgid(&self) -> Result<Pid>;
    fn create_stream(&self) -> Result<Box<dyn DynStream>>;
    fn default_stream(&self) -> Result<Box<dyn DynStream>>;
    fn create_notify(&self, flags: NotifyFlags) -> Result<Box<dyn DynNotify>>;
    fn import_notify(&self, key: &ExportKey, flags: ImportFlags) -> Result<Box<dyn DynNotify>>;
    fn enable_peer_access(&self, peer: DeviceId) -> Result<()>;
    fn create_context(&self) -> Result<Box<dyn DynDevice>>;
    fn synchronize(&self) -> Result<()>;
    fn alloc(&self, size: usize, policy: MallocPolicy) -> Result<Box<dyn DynBuffer>>;
    fn mem_info(&self) -> Result<MemInfo>;
    fn import_memory(
        &self,
        key: &ExportKey,
        len: usize,
        flags: MemImportFlags,
    ) -> Result<Box<dyn DynImport>>;
    fn create_event(&self, flags: EventFlags) -> Result<Box<dyn DynEvent>>;
    fn copy_from_host(&self, dst: DeviceRange<'_>, src: &[u8]) -> Result<()>;
    fn copy_to_host(&self, dst: &mut [u8], src: DeviceRange<'_>) -> Result<()>;
    fn copy(&self, dst: DeviceRange<'_>, src: DeviceRange<'_>) -> Result<()>;
    fn memset(&self, dst: DeviceRange<'_>, value: u8) -> Result<()>;
    fn as_any(&self) -> &dyn Any;
}

pub(crate) type HostFn = Box<dyn FnOnce() + Send + 'static>;
pub(crate) type HostBytes = Box<dyn AsRef<[u8]> + Send + 'static>;

pub(crate) trait DynBuffer: Send + Sync + fmt::Debug + 'static {
    fn len(&self) -> usize;
    fn as_range(&self) -> DeviceRange<'_>;
    fn export(&self, range: DeviceRange<'_>, flags: MemExportFlags) -> Result<Box<dyn DynExport>>;
    fn free(self: Box<Self>) -> Result<()>;
}

pub(crate) trait DynExport: Send + Sync + fmt::Debug + 'static {
    fn key(&self) -> &ExportKey;
    fn len(&self) -> usize;
    fn set_import_pids(&self, pids: &[Pid]) -> Result<()>;
    fn close(self: Box<Self>) -> Result<()>;
}

pub(crate) trait DynImport: Send + Sync + fmt::Debug + 'static {
    fn len(&self) -> usize;
    fn as_range(&self) -> DeviceRange<'_>;
    fn close(self: Box<Self>) -> Result<()>;
}

pub(crate) trait DynEvent: Send + Sync + fmt::Debug + 'static {
    fn synchronize(&self) -> Result<()>;
    fn is_complete(&self) -> Result<bool>;
    fn elapsed_ms(&self, start: &dyn DynEvent) -> Result<f32>;
    fn destroy(self: Box<Self>) -> Result<()>;
    fn as_any(&self) -> &dyn Any;
}

pub(crate) trait DynStream: Send + Sync + fmt::Debug + 'static {
    fn record(&self, notify: &dyn DynNotify) -> Result<()>;
    fn wait(&self, notify: &dyn DynNotify, timeout: Timeout) -> Result<()>;
    fn synchronize(&self) -> Result<()>;
    fn synchronize_timeout(&self, timeout: Option<Duration>) -> Result<()>;
    fn synchronize_async(&self) -> BoxFuture<'_, Result<()>>;
    fn destroy(self: Box<Self>) -> Result<()>;
    fn is_complete(&self) -> Result<bool>;
    fn copy(&self, dst: DeviceRange<'_>, src: DeviceRange<'_>) -> Result<()>;
    fn copy_from_host(&self, dst: DeviceRange<'_>, src: HostBytes) -> Result<()>;
    fn copy_to_host(&self, src: DeviceRange<'_>) -> Result<Download>;
    fn memset(&self, dst: DeviceRange<'_>, value: u8) -> Result<()>;
    fn launch_host_fn(&self, f: HostFn) -> Result<()>;
    fn record_event(&self, event: &dyn DynEvent) -> Result<()>;
    fn wait_event(&self, event: &dyn DynEvent) -> Result<()>;
    fn reset_event(&self, event: &dyn DynEvent) -> Result<()>;
    fn as_any(&self) -> &dyn Any;
}

pub(crate) trait DynNotify: Send + Sync + fmt::Debug + 'static {
    fn id(&self) -> Result<NotifyId>;
    fn export(&self, flags: ExportFlags) -> Result<ExportKey>;
    fn set_import_pid(&self, pid: Pid) -> Result<()>;
    fn destroy(self: Box<Self>) -> Result<()>;
    fn as_any(&self) -> &dyn Any;
}

type NotifyOf<T> = <<T as notify_api::Stream>::Backend as Backend>::Notify;
type EventOf<T> = <<T as notify_api::Stream>::Backend as Backend>::Event;

/// Bytes behind a box, as `AsRef<[u8]>` (the box itself is only `AsRef` through its contents).
struct Bytes(HostBytes);

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        (*self.0).as_ref()
    }
}

impl<R: notify_api::Runtime> DynRuntime for R {
    fn kind(&self) -> BackendKind {
        notify_api::Runtime::kind(self)
    }

    fn device_count(&self) -> Result<u32> {
        notify_api::Runtime::device_count(self)
    }

    fn device(&self, id: DeviceId) -> Result<Box<dyn DynDevice>> {
        Ok(Box::new(notify_api::Runtime::device(self, id)?))
    }

    fn bare_tgid(&self) -> Result<Pid> {
        notify_api::Runtime::bare_tgid(self)
    }

    fn can_access_peer(&self, device: DeviceId, peer: DeviceId) -> Result<bool> {
        notify_api::Runtime::can_access_peer(self, device, peer)
    }

    fn batch_reset(&self, notifies: &[&dyn DynNotify]) -> Result<()> {
        let typed = notifies
            .iter()
            .map(|n| downcast::<<R::Backend as Backend>::Notify>(n.as_any(), "notify"))
            .collect::<Result<Vec<_>>>()?;
        notify_api::Runtime::batch_reset(self, &typed)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl<D: notify_api::Device> DynDevice for D {
    fn id(&self) -> DeviceId {
        notify_api::Device::id(self)
    }

    fn bare_tgid(&self) -> Result<Pid> {
        notify_api::Device::bare_tgid(self)
    }

    fn create_stream(&self) -> Result<Box<dyn DynStream>> {
        Ok(Box::new(notify_api::Device::create_stream(self)?))
    }

    fn default_stream(&self) -> Result<Box<dyn DynStream>> {
        Ok(Box::new(notify_api::Device::default_stream(self)?))
    }

    fn create_notify(&self, flags: NotifyFlags) -> Result<Box<dyn DynNotify>> {
        Ok(Box::new(notify_api::Device::create_notify(self, flags)?))
    }

    fn import_notify(&self, key: &ExportKey, flags: ImportFlags) -> Result<Box<dyn DynNotify>> {
        Ok(Box::new(notify_api::Device::import_notify(
            self, key, flags,
        )?))
    }

    fn enable_peer_access(&self, peer: DeviceId) -> Result<()> {
        notify_api::Device::enable_peer_access(self, peer)
    }

    fn create_context(&self) -> Result<Box<dyn DynDevice>> {
        Ok(Box::new(notify_api::Device::create_context(self)?))
    }

    fn synchronize(&self) -> Result<()> {
        notify_api::Device::synchronize(self)
    }

    fn alloc(&self, size: usize, policy: MallocPolicy) -> Result<Box<dyn DynBuffer>> {
        Ok(Box::new(notify_api::Device::alloc(self, size, policy)?))
    }

    fn mem_info(&self) -> Result<MemInfo> {
        notify_api::Device::mem_info(self)
    }

    fn import_memory(
        &self,
        key: &ExportKey,
        len: usize,
        flags: MemImportFlags,
    ) -> Result<Box<dyn DynImport>> {
        Ok(Box::new(notify_api::Device::import_memory(
            self, key, len, flags,
        )?))
    }

    fn create_event(&self, flags: EventFlags) -> Result<Box<dyn DynEvent>> {
        Ok(Box::new(notify_api::Device::create_event(self, flags)?))
    }

    fn copy_from_host(&self, dst: DeviceRange<'_>, src: &[u8]) -> Result<()> {
        notify_api::Device::copy_from_host(self, dst, src)
    }

    fn copy_to_host(&self, dst: &mut [u8], src: DeviceRange<'_>) -> Result<()> {
        notify_api::Device::copy_to_host(self, dst, src)
    }

    fn copy(&self, dst: DeviceRange<'_>, src: DeviceRange<'_>) -> Result<()> {
        notify_api::Device::copy(self, dst, src)
    }

    fn memset(&self, dst: DeviceRange<'_>, value: u8) -> Result<()> {
        notify_api::Device::memset(self, dst, value)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl<T: notify_api::Buffer> DynBuffer for T {
    fn len(&self) -> usize {
        notify_api::Buffer::len(self)
    }

    fn as_range(&self) -> DeviceRange<'_> {
        notify_api::Buffer::as_range(self)
    }

    fn export(&self, range: DeviceRange<'_>, flags: MemExportFlags) -> Result<Box<dyn DynExport>> {
        Ok(Box::new(notify_api::Buffer::export(self, range, flags)?))
    }

    fn free(self: Box<Self>) -> Result<()> {
        notify_api::Buffer::free(*self)
    }
}

impl<T: notify_api::MemExport> DynExport for T {
    fn key(&self) -> &ExportKey {
        notify_api::MemExport::key(self)
    }

    fn len(&self) -> usize {
        notify_api::MemExport::len(self)
    }

    fn set_import_pids(&self, pids: &[Pid]) -> Result<()> {
        notify_api::MemExport::set_import_pids(self, pids)
    }

    fn close(self: Box<Self>) -> Result<()> {
        notify_api::MemExport::close(*self)
    }
}

impl<T: notify_api::MemImport> DynImport for T {
    fn len(&self) -> usize {
        notify_api::MemImport::len(self)
    }

    fn as_range(&self) -> DeviceRange<'_> {
        notify_api::MemImport::as_range(self)
    }

    fn close(self: Box<Self>) -> Result<()> {
        notify_api::MemImport::close(*self)
    }
}

impl<T: notify_api::Event> DynEvent for T {
    fn synchronize(&self) -> Result<()> {
        notify_api::Event::synchronize(self)
    }

    fn is_complete(&self) -> Result<bool> {
        notify_api::Event::is_complete(self)
    }

    fn elapsed_ms(&self, start: &dyn DynEvent) -> Result<f32> {
        let start = downcast::<T>(start.as_any(), "event")?;
        notify_api::Event::elapsed_ms(self, start)
    }

    fn destroy(self: Box<Self>) -> Result<()> {
        notify_api::Event::destroy(*self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl<S: notify_api::Stream> DynStream for S {
    #[inline]
    fn record(&self, notify: &dyn DynNotify) -> Result<()> {
        let notify = downcast::<NotifyOf<S>>(notify.as_any(), "notify")?;
        notify_api::Stream::record(self, notify)
    }

    fn wait(&self, notify: &dyn DynNotify, timeout: Timeout) -> Result<()> {
        let notify = downcast::<NotifyOf<S>>(notify.as_any(), "notify")?;
        notify_api::Stream::wait(self, notify, timeout)
    }

    fn synchronize(&self) -> Result<()> {
        notify_api::Stream::synchronize(self)
    }

    fn synchronize_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        notify_api::Stream::synchronize_timeout(self, timeout)
    }

    fn synchronize_async(&self) -> BoxFuture<'_, Result<()>> {
        notify_api::Stream::synchronize_async(self)
    }

    fn destroy(self: Box<Self>) -> Result<()> {
        notify_api::Stream::destroy(*self)
    }

    fn is_complete(&self) -> Result<bool> {
        notify_api::Stream::is_complete(self)
    }

    fn copy(&self, dst: DeviceRange<'_>, src: DeviceRange<'_>) -> Result<()> {
        notify_api::Stream::copy(self, dst, src)
    }

    fn copy_from_host(&self, dst: DeviceRange<'_>, src: HostBytes) -> Result<()> {
        notify_api::Stream::copy_from_host(self, dst, Bytes(src))
    }

    fn copy_to_host(&self, src: DeviceRange<'_>) -> Result<Download> {
        notify_api::Stream::copy_to_host(self, src)
    }

    fn memset(&self, dst: DeviceRange<'_>, value: u8) -> Result<()> {
        notify_api::Stream::memset(self, dst, value)
    }

    fn launch_host_fn(&self, f: HostFn) -> Result<()> {
        notify_api::Stream::launch_host_fn(self, f)
    }

    fn record_event(&self, event: &dyn DynEvent) -> Result<()> {
        let event = downcast::<EventOf<S>>(event.as_any(), "event")?;
        notify_api::Stream::record_event(self, event)
    }

    fn wait_event(&self, event: &dyn DynEvent) -> Result<()> {
        let event = downcast::<EventOf<S>>(event.as_any(), "event")?;
        notify_api::Stream::wait_event(self, event)
    }

    fn reset_event(&self, event: &dyn DynEvent) -> Result<()> {
        let event = downcast::<EventOf<S>>(event.as_any(), "event")?;
        notify_api::Stream::reset_event(self, event)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl<N: notify_api::Notify> DynNotify for N {
    fn id(&self) -> Result<NotifyId> {
        notify_api::Notify::id(self)
    }

    fn export(&self, flags: ExportFlags) -> Result<ExportKey> {
        notify_api::Notify::export(self, flags)
    }

    fn set_import_pid(&self, pid: Pid) -> Result<()> {
        notify_api::Notify::set_import_pid(self, pid)
    }

    fn destroy(self: Box<Self>) -> Result<()> {
        notify_api::Notify::destroy(*self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
