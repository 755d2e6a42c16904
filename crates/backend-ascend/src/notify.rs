//! [`AscendNotify`]: one notify handle of this process (created or imported).

use notify_api::{ExportFlags, ExportKey, NotifyId, Pid, Result};

use crate::device::AscendDevice;
use crate::result;
use crate::runtime::Ascend;
use crate::sys::aclrtNotify;

/// A notify handle of the Ascend runtime: one `aclrtNotify` this process created or imported,
/// holding one reference (R8).
///
/// It keeps the [`AscendDevice`] it was made from alive, and every call binds that device to the
/// calling thread first, so it works from any thread. Dropping it calls `aclrtDestroyNotify` and
/// ignores the error; [`notify_api::Notify::destroy`] reports it.
#[derive(Debug)]
pub struct AscendNotify {
    // Declared first, dropped first: destroyed while its device is retained.
    handle: result::Notify,
    device: AscendDevice,
}

impl AscendNotify {
    pub(crate) fn new(device: AscendDevice, handle: result::Notify) -> Self {
        Self { handle, device }
    }

    pub(crate) fn handle(&self) -> &result::Notify {
        &self.handle
    }

    /// The raw `aclrtNotify`. It stays valid while `self` lives.
    pub fn as_raw(&self) -> aclrtNotify {
        self.handle.as_raw()
    }
}

impl notify_api::Notify for AscendNotify {
    type Backend = Ascend;

    fn device(&self) -> &AscendDevice {
        &self.device
    }

    fn id(&self) -> Result<NotifyId> {
        result::get_notify_id(&self.handle).map(NotifyId)
    }

    fn export(&self, flags: ExportFlags) -> Result<ExportKey> {
        result::notify_get_export_key(&self.handle, flags.bits())
    }

    /// `aclrtNotifySetImportPid` with exactly one pid (`num = 1`), as the driver takes it (R6).
    fn set_import_pid(&self, pid: Pid) -> Result<()> {
        result::notify_set_import_pid(&self.handle, pid.raw())
    }

    fn destroy(self) -> Result<()> {
        result::destroy_notify(self.handle)
    }
}
