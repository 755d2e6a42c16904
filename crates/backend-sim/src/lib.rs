//! The shared-memory simulator of Ascend IPC Notify (work in progress: API skeleton).

use notify_api::{
    Backend, BackendKind, DeviceId, ExportFlags, ExportKey, ImportFlags, NotifyFlags, NotifyId, Pid, Result,
};
use std::time::Duration;

/// A process's attachment to a simulator namespace.
#[derive(Clone, Debug)]
pub struct SimBackend {}

/// Configuration for [`SimBackend`]; unset fields come from `ASCEND_NOTIFY_SIM_*`.
#[derive(Clone, Debug, Default)]
pub struct SimBuilder {}

impl SimBuilder {
    /// The registry namespace.
    pub fn namespace(self, _ns: impl Into<String>) -> Self {
        self
    }
    /// Devices, if this process creates the namespace.
    pub fn devices(self, _n: u32) -> Self {
        self
    }
    /// Notifies per device, if this process creates the namespace.
    pub fn capacity(self, _n: u32) -> Self {
        self
    }
    /// Whether this process runs in a virtualization instance (R12).
    pub fn virtualized(self, _v: bool) -> Self {
        self
    }
    /// Attaches.
    pub fn build(self) -> Result<SimBackend> {
        todo!()
    }
}

impl SimBackend {
    /// A builder.
    pub fn builder() -> SimBuilder {
        SimBuilder::default()
    }
    /// `builder().build()`.
    pub fn from_env() -> Result<Self> {
        Self::builder().build()
    }
    /// The namespace.
    pub fn namespace(&self) -> &str {
        todo!()
    }
}

/// Removes a namespace's segment and lock files.
pub fn remove_namespace(_ns: &str) -> Result<bool> {
    todo!()
}

/// A stream.
#[derive(Clone, Debug)]
pub struct SimStream {}
/// A notify handle.
#[derive(Debug)]
pub struct SimNotify {}

impl Backend for SimBackend {
    type Stream = SimStream;
    type Notify = SimNotify;
    fn kind(&self) -> BackendKind {
        BackendKind::Sim
    }
    fn device_count(&self) -> Result<u32> {
        todo!()
    }
    fn set_device(&self, _d: DeviceId) -> Result<()> {
        todo!()
    }
    fn reset_device(&self, _d: DeviceId) -> Result<()> {
        todo!()
    }
    fn current_device(&self) -> Result<DeviceId> {
        todo!()
    }
    fn bare_tgid(&self) -> Result<Pid> {
        todo!()
    }
    fn can_access_peer(&self, _d: DeviceId, _p: DeviceId) -> Result<bool> {
        todo!()
    }
    fn enable_peer_access(&self, _p: DeviceId, _f: u32) -> Result<()> {
        todo!()
    }
    fn create_stream(&self) -> Result<SimStream> {
        todo!()
    }
    fn default_stream(&self) -> Result<SimStream> {
        todo!()
    }
    fn create_notify(&self, _f: NotifyFlags) -> Result<SimNotify> {
        todo!()
    }
    fn import_notify(&self, _k: &ExportKey, _f: ImportFlags) -> Result<SimNotify> {
        todo!()
    }
    fn batch_reset(&self, _n: &[&SimNotify]) -> Result<()> {
        todo!()
    }
}

#[async_trait::async_trait]
impl notify_api::Stream for SimStream {
    type Backend = SimBackend;
    fn device(&self) -> DeviceId {
        todo!()
    }
    fn synchronize(&self) -> Result<()> {
        todo!()
    }
    fn synchronize_timeout(&self, _t: Option<Duration>) -> Result<()> {
        todo!()
    }
    async fn synchronize_async(&self) -> Result<()> {
        todo!()
    }
    fn destroy(self) -> Result<()> {
        todo!()
    }
}

impl notify_api::Notify for SimNotify {
    type Backend = SimBackend;
    fn id(&self) -> Result<NotifyId> {
        todo!()
    }
    fn export(&self, _f: ExportFlags) -> Result<ExportKey> {
        todo!()
    }
    fn set_import_pids(&self, _p: &[Pid]) -> Result<()> {
        todo!()
    }
    fn record(&self, _s: &SimStream) -> Result<()> {
        todo!()
    }
    fn wait_and_reset(&self, _s: &SimStream, _t: u32) -> Result<()> {
        todo!()
    }
    fn destroy(self) -> Result<()> {
        todo!()
    }
}
