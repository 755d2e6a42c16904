//! The safe notify handle: [`AscendNotify`].

use std::ptr;
use std::sync::Arc;

use notify_api::{ExportFlags, ExportKey, NotifyId, Pid, Result};

use crate::backend::{AscendBackend, Session, foreign_handle};
use crate::result;
use crate::stream::AscendStream;
use crate::sys::aclrtNotify;

/// A notify handle of the Ascend runtime: one `aclrtNotify` this process created or imported,
/// holding one reference (R8).
///
/// Dropping it calls `aclrtDestroyNotify` and ignores the error; [`notify_api::Notify::destroy`]
/// reports it. `Send` and `Sync`; see the crate docs.
#[derive(Debug)]
pub struct AscendNotify {
    session: Arc<Session>,
    /// Never NULL while the handle is alive; set to NULL once destroyed.
    raw: aclrtNotify,
}

// SAFETY: the handle is an opaque token of the runtime, not memory this process reads. The
// runtime lets a notify be used from any thread once a device is set in that thread (the current
// device is per thread; a wrong device is a reported error, not UB), and its calls are
// thread-safe. The handle is destroyed exactly once: by `destroy(self)` or by the drop.
unsafe impl Send for AscendNotify {}
// SAFETY: as for `Send`; every `&self` method only passes the handle to thread-safe runtime
// calls.
unsafe impl Sync for AscendNotify {}

impl AscendNotify {
    /// Takes ownership of a handle that `aclrtCreateNotify` or `aclrtNotifyImportByKey` of this
    /// session just returned.
    pub(crate) fn from_owned(session: &Arc<Session>, raw: aclrtNotify) -> Self {
        Self {
            session: Arc::clone(session),
            raw,
        }
    }

    /// The raw `aclrtNotify`. It stays valid while `self` lives.
    pub fn as_raw(&self) -> aclrtNotify {
        self.raw
    }

    pub(crate) fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// Destroys the handle once; NULL afterwards, so the drop does nothing.
    fn destroy_once(&mut self) -> Result<()> {
        let raw = std::mem::replace(&mut self.raw, ptr::null_mut());
        if raw.is_null() {
            return Ok(());
        }
        // SAFETY: `raw` came from create/import of this session, has not been destroyed (it was
        // still stored), and cannot be used again (it is NULL in `self` now and `&mut self`
        // excludes other users). The session is alive.
        unsafe { result::destroy_notify(&self.session.lib, raw) }
    }

    /// Checks that `stream` comes from the same library as this notify.
    #[inline]
    fn same_session(&self, stream: &AscendStream) -> Result<()> {
        if Arc::ptr_eq(&self.session, stream.session()) {
            Ok(())
        } else {
            Err(foreign_handle("stream"))
        }
    }
}

impl Drop for AscendNotify {
    fn drop(&mut self) {
        let _ = self.destroy_once();
    }
}

impl notify_api::Notify for AscendNotify {
    type Backend = AscendBackend;

    fn id(&self) -> Result<NotifyId> {
        // SAFETY: `raw` is live while `self` is (destroying needs `self` by value or its drop).
        unsafe { result::get_notify_id(&self.session.lib, self.raw) }.map(NotifyId)
    }

    fn export(&self, flags: ExportFlags) -> Result<ExportKey> {
        // SAFETY: `raw` is live while `self` is.
        unsafe { result::notify_get_export_key(&self.session.lib, self.raw, flags.bits()) }
    }

    fn set_import_pids(&self, pids: &[Pid]) -> Result<()> {
        let pids: Vec<i32> = pids.iter().map(|pid| pid.raw()).collect();
        // SAFETY: `raw` is live while `self` is.
        unsafe { result::notify_set_import_pid(&self.session.lib, self.raw, &pids) }
    }

    #[inline]
    fn record(&self, stream: &AscendStream) -> Result<()> {
        self.same_session(stream)?;
        // SAFETY: `raw` is live while `self` is; the stream is NULL or live while it is
        // borrowed, and belongs to the same library (checked above).
        unsafe { result::record_notify(&self.session.lib, self.raw, stream.as_raw()) }
    }

    fn wait_and_reset(&self, stream: &AscendStream, timeout_secs: u32) -> Result<()> {
        self.same_session(stream)?;
        // SAFETY: as in `record`.
        unsafe {
            result::wait_and_reset_notify(
                &self.session.lib,
                self.raw,
                stream.as_raw(),
                timeout_secs,
            )
        }
    }

    fn destroy(mut self) -> Result<()> {
        self.destroy_once()
    }
}
