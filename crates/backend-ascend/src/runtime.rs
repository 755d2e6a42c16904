//! The entry point of the typed API: the marker [`Ascend`], [`AscendBuilder`] and
//! [`AscendRuntime`], which owns the `aclInit` session and hands out one [`AscendDevice`] per
//! live device.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use notify_api::{Backend, BackendKind, DeviceId, Pid, Result};

use crate::device::{AscendDevice, DeviceInner};
use crate::event::AscendEvent;
use crate::memory::{AscendBuffer, AscendMemExport, AscendMemImport};
use crate::notify::AscendNotify;
use crate::result::{self, Session};
use crate::stream::AscendStream;
use crate::sys::AclLib;

/// The Ascend backend, as a marker type: names the handle types of the vendor runtime
/// (`libascendcl.so`) for generic code over [`notify_api::Backend`].
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ascend;

impl Backend for Ascend {
    type Runtime = AscendRuntime;
    type Device = AscendDevice;
    type Stream = AscendStream;
    type Notify = AscendNotify;
    type Buffer = AscendBuffer;
    type MemExport = AscendMemExport;
    type MemImport = AscendMemImport;
    type Event = AscendEvent;
}

/// Configuration for [`AscendRuntime`].
#[derive(Clone, Debug, Default)]
pub struct AscendBuilder {
    library_path: Option<PathBuf>,
}

impl AscendBuilder {
    /// A builder with no explicit library path.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads the library from `path` and from nowhere else (see [`crate::sys`] for the search
    /// used without it). A bare file name is handed to the system loader's own search.
    pub fn library_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.library_path = Some(path.into());
        self
    }

    /// Loads the runtime library and initializes it (`aclInit(NULL)`), or joins this process's
    /// live session of the same library.
    ///
    /// # Errors
    /// - [`notify_api::Error::Load`] when the library cannot be used, never an ACL code in
    ///   disguise: `file: None` ([`notify_api::LoadError::not_found`]) when no candidate file
    ///   exists, `file: Some(path)` when one was found but `dlopen` failed or a symbol of the
    ///   manifest is missing. The message names every place looked at and why.
    /// - [`notify_api::Error::Acl`] with `aclInit`'s code when initialization fails (other than
    ///   `REPEAT_INITIALIZE`, which joins the initialization someone else made).
    pub fn build(self) -> Result<AscendRuntime> {
        AscendRuntime::from_library(AclLib::load(self.library_path.as_deref())?)
    }
}

/// The Ascend runtime, `libascendcl.so`, attached to this process: the entry point of the typed
/// API.
///
/// Cheap to clone. Every clone, device and handle made from it shares one session of the
/// library, and `aclFinalize` runs when the last of them is dropped (and only if this process's
/// first session made the `aclInit`: one made by other code is theirs to finalize).
#[derive(Clone)]
pub struct AscendRuntime {
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner {
    session: Arc<Session>,
    /// The live device of each id, so that `device(id)` while one lives returns it (one
    /// `aclrtSetDevice` retain per live device). Entries of dead devices are replaced on the
    /// next `device(id)`.
    devices: Mutex<HashMap<i32, Weak<DeviceInner>>>,
}

impl AscendRuntime {
    /// A builder: `AscendRuntime::builder().library_path(p).build()`.
    pub fn builder() -> AscendBuilder {
        AscendBuilder::default()
    }

    /// `builder().build()`: the library from `ASCEND_NOTIFY_ACL_LIB` or the CANN locations.
    ///
    /// # Errors
    /// As [`AscendBuilder::build`].
    pub fn from_env() -> Result<Self> {
        Self::builder().build()
    }

    /// Initializes the runtime of an already loaded library (`aclInit(NULL)`), or joins this
    /// process's live session of that library.
    ///
    /// # Errors
    /// [`notify_api::Error::Acl`] with `aclInit`'s code (other than `REPEAT_INITIALIZE`, which
    /// is accepted).
    pub fn from_library(lib: AclLib) -> Result<Self> {
        Ok(Self {
            inner: Arc::new(RuntimeInner {
                session: Session::open(lib)?,
                devices: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The loaded library, for calls this crate does not wrap.
    pub fn lib(&self) -> &AclLib {
        self.inner.session.lib()
    }

    /// The file the library was loaded from.
    pub fn library_path(&self) -> &Path {
        self.lib().path()
    }

    pub(crate) fn session(&self) -> &Arc<Session> {
        &self.inner.session
    }
}

impl fmt::Debug for AscendRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AscendRuntime")
            .field("session", &self.inner.session)
            .finish_non_exhaustive()
    }
}

impl notify_api::Runtime for AscendRuntime {
    type Backend = Ascend;

    fn kind(&self) -> BackendKind {
        BackendKind::Ascend
    }

    fn device_count(&self) -> Result<u32> {
        result::get_device_count(self.lib())
    }

    /// The device `id`: the live one if there is one, else `aclrtSetDevice(id)` once (one
    /// retain, which `aclrtResetDevice` releases when the device and every handle made from it
    /// are gone) and its default context.
    ///
    /// Making the retain leaves the calling thread bound to the device's context (that is what
    /// `aclrtSetDevice` does); the binding cache knows it, so the next call here costs nothing.
    fn device(&self, id: DeviceId) -> Result<AscendDevice> {
        // Held across aclrtSetDevice, so that two threads asking for the same device at once
        // get one retain and one value.
        let mut devices = self
            .inner
            .devices
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(live) = devices.get(&id.raw()).and_then(Weak::upgrade) {
            return Ok(AscendDevice::from_inner(live));
        }
        let retain = result::Retain::new(self.session(), id.raw())?;
        let device = AscendDevice::new(self.clone(), id, retain);
        devices.insert(id.raw(), device.downgrade());
        Ok(device)
    }

    fn bare_tgid(&self) -> Result<Pid> {
        result::device_get_bare_tgid(self.lib()).map(Pid)
    }

    fn can_access_peer(&self, device: DeviceId, peer: DeviceId) -> Result<bool> {
        result::device_can_access_peer(self.lib(), device.raw(), peer.raw())
    }

    /// `aclrtNotifyBatchReset` with the first notify's device bound.
    ///
    /// # Errors
    /// Also `RT_INVALID_HANDLE` (107017) for a notify of another loaded library.
    fn batch_reset(&self, notifies: &[&AscendNotify]) -> Result<()> {
        let handles: Vec<&result::Notify> = notifies.iter().map(|n| n.handle()).collect();
        result::notify_batch_reset(self.session(), &handles)
    }
}
