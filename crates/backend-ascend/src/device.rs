//! [`AscendDevice`]: a device as a value (cudarc's `CudaContext`), and where streams, notifies,
//! events, memory and further contexts are made.

use std::fmt;
use std::sync::{Arc, Weak};

use notify_api::{
    DeviceId, DeviceRange, EventFlags, ExportKey, ImportFlags, MallocPolicy, MemImportFlags,
    MemInfo, NotifyFlags, Pid, Result, err,
};

use crate::event::AscendEvent;
use crate::memory::{AscendBuffer, AscendMemImport};
use crate::notify::AscendNotify;
use crate::result::{self, Retain};
use crate::runtime::{Ascend, AscendRuntime};
use crate::stream::AscendStream;
use crate::sys::aclrtContext;

/// A device of the Ascend runtime, as a value: its default context, retained (one
/// `aclrtSetDevice`) for as long as this value, its clones and every stream and notify made from
/// them live; `aclrtResetDevice` releases it after the last of them is gone.
///
/// [`notify_api::Device::create_context`] makes another value of this type for a context of its
/// own on the same device (`aclrtCreateContext`): handles made from it are bound to that context,
/// and `aclrtDestroyContext` runs when it, its clones and every handle made from them are gone.
///
/// Cheap to clone (an `Arc`). Made by [`notify_api::Runtime::device`], which returns the live
/// value of an id while there is one. Every operation on the device or on a handle made from it
/// binds the device's context to the calling thread first (a thread-local compare, and
/// `aclrtSetCurrentContext` only when another context is current there), so any handle works from
/// any thread with no set-up call.
#[derive(Clone)]
pub struct AscendDevice {
    inner: Arc<DeviceInner>,
}

/// What every clone of one device shares.
pub(crate) struct DeviceInner {
    // Declared first, dropped first: the retain (aclrtResetDevice) goes before the runtime's
    // reference to the session (aclFinalize, if it is the last).
    retain: Arc<Retain>,
    runtime: AscendRuntime,
    id: DeviceId,
}

impl AscendDevice {
    pub(crate) fn new(runtime: AscendRuntime, id: DeviceId, retain: Retain) -> Self {
        Self {
            inner: Arc::new(DeviceInner {
                retain: Arc::new(retain),
                runtime,
                id,
            }),
        }
    }

    pub(crate) fn from_inner(inner: Arc<DeviceInner>) -> Self {
        Self { inner }
    }

    pub(crate) fn downgrade(&self) -> Weak<DeviceInner> {
        Arc::downgrade(&self.inner)
    }

    pub(crate) fn retain(&self) -> &Arc<Retain> {
        &self.inner.retain
    }

    /// The raw `aclrtContext` this device stands for (its default context, or the one
    /// `create_context` made). It stays valid while `self` lives.
    pub fn context(&self) -> aclrtContext {
        self.inner.retain.context()
    }

    /// Makes this device's context current in the calling thread now, whatever the binding cache
    /// says.
    ///
    /// Never needed by code that uses only this crate: every operation binds its device itself.
    /// It is for a thread on which foreign code (C code, another library) changed the current
    /// context behind this crate's back, and for calling the C API of [`crate::sys`] directly
    /// with this device current.
    ///
    /// # Errors
    /// `aclrtSetCurrentContext`'s code.
    pub fn bind_to_thread(&self) -> Result<()> {
        self.inner.retain.bind_now()
    }

    /// Whether `self` and `other` are the same device value (one retain), not merely the same id.
    pub fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Whether this value stands for a context made by `create_context` (not the device's
    /// default context).
    pub fn is_created_context(&self) -> bool {
        self.inner.retain.is_created_context()
    }
}

impl fmt::Debug for AscendDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AscendDevice")
            .field("id", &self.inner.id)
            .field("context", &self.inner.retain.context())
            .finish_non_exhaustive()
    }
}

impl notify_api::Device for AscendDevice {
    type Backend = Ascend;

    fn id(&self) -> DeviceId {
        self.inner.id
    }

    fn runtime(&self) -> &AscendRuntime {
        &self.inner.runtime
    }

    fn bare_tgid(&self) -> Result<Pid> {
        result::device_get_bare_tgid(self.inner.runtime.lib()).map(Pid)
    }

    fn create_stream(&self) -> Result<AscendStream> {
        let handle = result::create_stream(self.retain())?;
        Ok(AscendStream::new(self.clone(), handle))
    }

    /// A NULL `aclrtStream` that every call binds to this device's context first, so it is
    /// always this device's default stream, whichever thread uses it. Never destroyed.
    fn default_stream(&self) -> Result<AscendStream> {
        let handle = result::default_stream(self.retain())?;
        Ok(AscendStream::new(self.clone(), handle))
    }

    fn create_notify(&self, flags: NotifyFlags) -> Result<AscendNotify> {
        let handle = result::create_notify(self.retain(), flags.bits())?;
        Ok(AscendNotify::new(self.clone(), handle))
    }

    fn import_notify(&self, key: &ExportKey, flags: ImportFlags) -> Result<AscendNotify> {
        let handle = result::notify_import_by_key(self.retain(), key, flags.bits())?;
        Ok(AscendNotify::new(self.clone(), handle))
    }

    fn enable_peer_access(&self, peer: DeviceId) -> Result<()> {
        // CANN: flags must be 0.
        result::device_enable_peer_access(self.retain(), peer.raw(), 0)
    }

    /// `aclrtCreateContext` on this device: a new value (not the one `Runtime::device` returns)
    /// that holds this device's retain, so the device stays set while the context lives.
    fn create_context(&self) -> Result<AscendDevice> {
        let retain = Retain::create_context(self.retain())?;
        Ok(AscendDevice::new(
            self.inner.runtime.clone(),
            self.inner.id,
            retain,
        ))
    }

    /// `aclrtSynchronizeDevice` with this device's context bound. A host function of one of the
    /// device's streams (made by this crate) that panicked since that stream was last
    /// synchronized is reported here too (507000, H1), once.
    fn synchronize(&self) -> Result<()> {
        result::synchronize_device(self.retain())
    }

    fn alloc(&self, size: usize, policy: MallocPolicy) -> Result<AscendBuffer> {
        let memory = result::malloc(self.retain(), size, policy.bits())?;
        Ok(AscendBuffer::new(self.clone(), memory))
    }

    /// `aclrtGetMemInfo` with `ACL_HBM_MEM`, the NPU's device memory.
    fn mem_info(&self) -> Result<MemInfo> {
        let (free, total) = result::get_mem_info(self.retain())?;
        Ok(MemInfo { free, total })
    }

    /// The C call maps the memory and returns only its address; the backend records `len`
    /// bytes there for its range checks (M2). It cannot check `len` against the export: a
    /// longer one lets copies through that fail on the device, or reach other device memory of
    /// this process (never host memory: copies are runtime calls).
    fn import_memory(
        &self,
        key: &ExportKey,
        len: usize,
        flags: MemImportFlags,
    ) -> Result<AscendMemImport> {
        if len == 0 {
            return Err(err!(M5: RT_PARAM_INVALID, "an import of 0 bytes"));
        }
        let handle = result::ipc_mem_import_by_key(self.retain(), key, flags.bits(), len)?;
        Ok(AscendMemImport::new(self.clone(), handle))
    }

    fn create_event(&self, flags: EventFlags) -> Result<AscendEvent> {
        // The CANN flags are 32 bits wide; EventFlags holds no others.
        let bits = u32::try_from(flags.bits()).map_err(|_| {
            err!(E1: RT_PARAM_INVALID, "event flag bits {:#x} do not fit in 32 bits", flags.bits())
        })?;
        let handle = result::create_event(self.retain(), bits)?;
        Ok(AscendEvent::new(self.clone(), handle))
    }

    /// `aclrtMemcpy`, host to device, with this device's context bound. `dst` is checked
    /// against the memory this backend handed out before the runtime is called (M2).
    fn copy_from_host(&self, dst: DeviceRange<'_>, src: &[u8]) -> Result<()> {
        result::copy_h2d(self.retain(), dst, src)
    }

    /// `aclrtMemcpy`, device to host; `src` is checked as in `copy_from_host`, and so is
    /// `src.len() <= dst.len()`.
    fn copy_to_host(&self, dst: &mut [u8], src: DeviceRange<'_>) -> Result<()> {
        result::copy_d2h(self.retain(), dst, src)
    }

    /// `aclrtMemcpy`, device to device; both ranges are checked as in `copy_from_host`.
    fn copy(&self, dst: DeviceRange<'_>, src: DeviceRange<'_>) -> Result<()> {
        result::copy_d2d(self.retain(), dst, src)
    }

    /// `aclrtMemset`; `dst` is checked as in `copy_from_host`.
    fn memset(&self, dst: DeviceRange<'_>, value: u8) -> Result<()> {
        result::memset(self.retain(), dst, value)
    }
}
