//! [`AscendEvent`]: an event of this process (`SEMANTICS.md` E1).

use notify_api::Result;

use crate::device::AscendDevice;
use crate::result;
use crate::runtime::Ascend;
use crate::sys::aclrtEvent;

/// An event of the Ascend runtime, made on one device value's context
/// (`aclrtCreateEventWithFlag`, E1).
///
/// It keeps its [`AscendDevice`] alive, and every call binds that device's context first, so it
/// works from any thread. Dropping it calls `aclrtDestroyEvent` and ignores the error;
/// [`notify_api::Event::destroy`] reports it.
#[derive(Debug)]
pub struct AscendEvent {
    // Declared first, dropped first: destroyed while its context is retained.
    handle: result::Event,
    device: AscendDevice,
}

impl AscendEvent {
    pub(crate) fn new(device: AscendDevice, handle: result::Event) -> Self {
        Self { handle, device }
    }

    pub(crate) fn handle(&self) -> &result::Event {
        &self.handle
    }

    /// The raw `aclrtEvent`. It stays valid while `self` lives.
    pub fn as_raw(&self) -> aclrtEvent {
        self.handle.as_raw()
    }
}

impl notify_api::Event for AscendEvent {
    type Backend = Ascend;

    fn device(&self) -> &AscendDevice {
        &self.device
    }

    fn synchronize(&self) -> Result<()> {
        result::synchronize_event(&self.handle)
    }

    fn is_complete(&self) -> Result<bool> {
        result::query_event_status(&self.handle)
    }

    /// `aclrtEventElapsedTime(&ms, start, self)`.
    ///
    /// # Errors
    /// Also `RT_INVALID_HANDLE` (107017, R10) for events of two different loaded libraries.
    fn elapsed_ms(&self, start: &AscendEvent) -> Result<f32> {
        result::event_elapsed_time(&start.handle, &self.handle)
    }

    fn destroy(self) -> Result<()> {
        let Self { handle, device } = self;
        let destroyed = result::destroy_event(handle);
        drop(device);
        destroyed
    }
}
