//! [`AscendDevice`]: a device as a value (cudarc's `CudaContext`), and where streams and
//! notifies are made.

use std::fmt;
use std::sync::{Arc, Weak};

use notify_api::{DeviceId, ExportKey, ImportFlags, NotifyFlags, Pid, Result};

use crate::notify::AscendNotify;
use crate::result::{self, Retain};
use crate::runtime::{Ascend, AscendRuntime};
use crate::stream::AscendStream;
use crate::sys::aclrtContext;

/// A device of the Ascend runtime, as a value: its default context, retained (one
/// `aclrtSetDevice`) for as long as this value, its clones and every stream and notify made from
/// them live; `aclrtResetDevice` releases it after the last of them is gone.
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

    /// The raw `aclrtContext` this device stands for (its default context). It stays valid while
    /// `self` lives.
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
}
