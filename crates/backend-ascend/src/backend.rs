//! The safe backend: [`AscendBuilder`], [`AscendBackend`], and the session that owns
//! `aclInit`/`aclFinalize`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use notify_api::{
    Backend, BackendKind, DeviceId, ExportKey, ImportFlags, NotifyFlags, Pid, Result, err,
};

use crate::notify::AscendNotify;
use crate::result::{self, Init};
use crate::stream::AscendStream;
use crate::sys::AclLib;

/// One initialization of one loaded library, shared by every backend clone, stream and notify
/// made from it.
///
/// Dropping the last reference calls `aclFinalize` if this session made the `aclInit` (or took
/// that duty over from an earlier session of the same library, see [`Session::open`]).
pub(crate) struct Session {
    pub(crate) lib: AclLib,
    /// Whether `aclFinalize` is ours to call.
    owns_init: AtomicBool,
}

/// The live session of each loaded library, keyed by the address of its `aclInit`: the same
/// file loaded twice is the same mapping, hence the same address, whatever path named it.
static SESSIONS: Mutex<Vec<(usize, Weak<Session>)>> = Mutex::new(Vec::new());

fn library_key(lib: &AclLib) -> usize {
    lib.aclInit as usize
}

impl Session {
    /// The session of `lib`'s library: the live one if there is one, else a new one that calls
    /// `aclInit(NULL)`.
    ///
    /// `ACL_ERROR_REPEAT_INITIALIZE` from `aclInit` means another part of the process (C code,
    /// another crate) initialized the runtime: that is fine, and then `aclFinalize` is theirs to
    /// call, not ours. The one other way to get it is a session of ours whose last reference is
    /// being dropped right now; its drop then hands the finalize duty to the new session instead
    /// of finalizing under it.
    fn open(lib: AclLib) -> Result<Arc<Self>> {
        let key = library_key(&lib);
        let mut sessions = SESSIONS.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(live) = sessions
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, weak)| weak.upgrade())
        {
            return Ok(live);
        }
        let owns = match result::init(&lib)? {
            Init::Initialized => true,
            Init::AlreadyInitialized => false,
        };
        let session = Arc::new(Self {
            lib,
            owns_init: AtomicBool::new(owns),
        });
        sessions.retain(|(k, _)| *k != key);
        sessions.push((key, Arc::downgrade(&session)));
        Ok(session)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let key = library_key(&self.lib);
        let mut sessions = SESSIONS.lock().unwrap_or_else(PoisonError::into_inner);
        let newer = sessions
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, weak)| weak.upgrade());
        let owns = self.owns_init.load(Ordering::Acquire);
        match newer {
            // A newer session of the same library opened while this one was dying; it found
            // the runtime still initialized, so finalizing is now its duty.
            Some(newer) => {
                if owns {
                    newer.owns_init.store(true, Ordering::Release);
                }
                // Unlock before letting go of `newer`: if its owners dropped it meanwhile, this
                // is its last reference and its own drop takes the lock.
                drop(sessions);
                drop(newer);
            }
            None => {
                sessions.retain(|(k, _)| *k != key);
                if owns {
                    // SAFETY: this is the last reference to the session, and every backend
                    // clone, stream and notify holds one: no handle of this library made by
                    // this crate is left to use. The lock is held, so no new session can call
                    // aclInit until this finalize is done.
                    let _ = unsafe { result::finalize(&self.lib) };
                }
            }
        }
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("library", &self.lib.path())
            .field("owns_init", &self.owns_init.load(Ordering::Relaxed))
            .finish()
    }
}

/// Configuration for [`AscendBackend`].
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

    /// Loads `libascendcl.so` and initializes the runtime (`aclInit(NULL)`).
    ///
    /// # Errors
    /// `ACL_ERROR_UNINITIALIZE` (100001) when the library cannot be found or lacks a symbol,
    /// with every place looked at in the reason; otherwise `aclInit`'s own error.
    pub fn build(self) -> Result<AscendBackend> {
        AscendBackend::from_library(AclLib::load(self.library_path.as_deref())?)
    }
}

/// The Ascend runtime, `libascendcl.so`, attached to this process.
///
/// Cheap to clone: every clone (and every stream and notify made from it) shares one session,
/// and `aclFinalize` runs when the last of them is dropped. See the crate docs for threads.
#[derive(Clone, Debug)]
pub struct AscendBackend {
    session: Arc<Session>,
}

impl AscendBackend {
    /// A builder: `AscendBackend::builder().library_path(p).build()`.
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

    /// Initializes the runtime of an already loaded library (`aclInit(NULL)`), or joins the
    /// live session of that library if this process has one.
    ///
    /// # Errors
    /// `aclInit`'s error (other than `REPEAT_INITIALIZE`, which is accepted).
    pub fn from_library(lib: AclLib) -> Result<Self> {
        Ok(Self {
            session: Session::open(lib)?,
        })
    }

    /// The loaded library, for calls this crate does not wrap.
    pub fn lib(&self) -> &AclLib {
        &self.session.lib
    }

    /// The file the library was loaded from.
    pub fn library_path(&self) -> &Path {
        self.session.lib.path()
    }
}

/// The error for a handle of another library (another session) used here (R10).
#[cold]
pub(crate) fn foreign_handle(what: &str) -> notify_api::Error {
    err!(
        RT_INVALID_HANDLE,
        "R10: the {what} belongs to another loaded libascendcl.so"
    )
}

impl Backend for AscendBackend {
    type Stream = AscendStream;
    type Notify = AscendNotify;

    fn kind(&self) -> BackendKind {
        BackendKind::Ascend
    }

    fn device_count(&self) -> Result<u32> {
        result::get_device_count(self.lib())
    }

    fn set_device(&self, device: DeviceId) -> Result<()> {
        result::set_device(self.lib(), device.raw())
    }

    fn reset_device(&self, device: DeviceId) -> Result<()> {
        result::reset_device(self.lib(), device.raw())
    }

    fn current_device(&self) -> Result<DeviceId> {
        result::get_device(self.lib()).map(DeviceId)
    }

    fn bare_tgid(&self) -> Result<Pid> {
        result::device_get_bare_tgid(self.lib()).map(Pid)
    }

    fn can_access_peer(&self, device: DeviceId, peer: DeviceId) -> Result<bool> {
        result::device_can_access_peer(self.lib(), device.raw(), peer.raw())
    }

    fn enable_peer_access(&self, peer: DeviceId, flags: u32) -> Result<()> {
        result::device_enable_peer_access(self.lib(), peer.raw(), flags)
    }

    fn create_stream(&self) -> Result<AscendStream> {
        AscendStream::create(&self.session)
    }

    fn default_stream(&self) -> Result<AscendStream> {
        AscendStream::default_of_current(&self.session)
    }

    fn create_notify(&self, flags: NotifyFlags) -> Result<AscendNotify> {
        let raw = result::create_notify(self.lib(), flags.bits())?;
        Ok(AscendNotify::from_owned(&self.session, raw))
    }

    fn import_notify(&self, key: &ExportKey, flags: ImportFlags) -> Result<AscendNotify> {
        let raw = result::notify_import_by_key(self.lib(), key, flags.bits())?;
        Ok(AscendNotify::from_owned(&self.session, raw))
    }

    fn batch_reset(&self, notifies: &[&AscendNotify]) -> Result<()> {
        let mut raws = Vec::with_capacity(notifies.len());
        for notify in notifies {
            if !Arc::ptr_eq(notify.session(), &self.session) {
                return Err(foreign_handle("notify"));
            }
            raws.push(notify.as_raw());
        }
        // SAFETY: each handle is owned by a live `AscendNotify` of this session (checked just
        // above), which is borrowed for the whole call, so none is destroyed meanwhile, and the
        // session (hence the runtime) is alive.
        unsafe { result::notify_batch_reset(self.lib(), &raws) }
    }
}
