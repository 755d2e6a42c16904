//! [`AscendBuffer`], [`AscendMemExport`], [`AscendMemImport`]: device memory and IPC memory
//! (`SEMANTICS.md` §5) over the owners of [`crate::result`].

use notify_api::{DeviceRange, ExportKey, MemExportFlags, Pid, Result, err};

use crate::device::AscendDevice;
use crate::result;
use crate::runtime::Ascend;

/// Device memory this process allocated (`aclrtMalloc`, M1).
///
/// It keeps its [`AscendDevice`] alive. Every range of it, and every range anyone builds, is
/// checked against the memory this backend handed out before the runtime is given the address
/// (M2). Dropping it frees it: the range is withdrawn first (no new call can use it), then every
/// device whose streams were given a task on it is synchronized (`aclrtSynchronizeDevice`), and
/// only then `aclrtFree` runs (M6), so no queued copy outlives the memory. Dropped from a host
/// function, which must not wait for its own stream (H1), the free happens on a helper thread
/// once the streams are done.
#[derive(Debug)]
pub struct AscendBuffer {
    // Declared first, dropped first: freed while its device is retained (the owner holds the
    // retain too; this keeps the value `device()` returns).
    memory: result::DeviceMemory,
    device: AscendDevice,
}

impl AscendBuffer {
    pub(crate) fn new(device: AscendDevice, memory: result::DeviceMemory) -> Self {
        Self { memory, device }
    }

    /// The device address of its first byte (never dereferenced by this process: M1).
    pub fn addr(&self) -> u64 {
        self.memory.addr()
    }
}

impl notify_api::Buffer for AscendBuffer {
    type Backend = Ascend;

    fn device(&self) -> &AscendDevice {
        &self.device
    }

    fn len(&self) -> usize {
        self.memory.len()
    }

    fn as_range(&self) -> DeviceRange<'_> {
        self.memory.range()
    }

    /// `aclrtIpcMemGetExportKey` for `range`, which must lie inside this buffer (checked before
    /// the runtime is called).
    ///
    /// # Errors
    /// Also `RT_PARAM_INVALID` (107000, M3) for a range outside this buffer.
    fn export(&self, range: DeviceRange<'_>, flags: MemExportFlags) -> Result<AscendMemExport> {
        let (start, len) = (self.memory.addr(), self.memory.len() as u64);
        let inside = range.addr() >= start
            && range
                .addr()
                .checked_add(range.len() as u64)
                .is_some_and(|end| end <= start + len);
        if !inside {
            return Err(err!(
                M3: RT_PARAM_INVALID,
                "{range:?} is not inside this buffer ({start:#x}..+{len})"
            ));
        }
        let handle = result::ipc_mem_get_export_key(self.memory.retain(), range, flags.bits())?;
        Ok(AscendMemExport {
            handle,
            len: range.len(),
            device: self.device.clone(),
        })
    }

    fn free(self) -> Result<()> {
        let Self { memory, device } = self;
        let freed = result::free(memory);
        drop(device);
        freed
    }
}

/// An IPC export of a range of an [`AscendBuffer`] (M3, M4): the key and the exporter's handle
/// on it. Dropping it closes the key (`aclrtIpcMemClose`: later imports fail, existing ones keep
/// working, M6) and ignores the error; [`notify_api::MemExport::close`] reports it.
#[derive(Debug)]
pub struct AscendMemExport {
    handle: result::MemExport,
    len: usize,
    device: AscendDevice,
}

impl AscendMemExport {
    /// The device of the exported memory.
    pub fn device(&self) -> &AscendDevice {
        &self.device
    }
}

impl notify_api::MemExport for AscendMemExport {
    type Backend = Ascend;

    fn key(&self) -> &ExportKey {
        self.handle.key()
    }

    fn len(&self) -> usize {
        self.len
    }

    /// `aclrtIpcMemSetImportPid` with every pid of `pids` in one call; the runtime checks the
    /// count (1 to 31, M4).
    fn set_import_pids(&self, pids: &[Pid]) -> Result<()> {
        let raw: Vec<i32> = pids.iter().map(|p| p.raw()).collect();
        result::ipc_mem_set_import_pid(&self.handle, &raw)
    }

    fn close(self) -> Result<()> {
        result::ipc_mem_close_export(self.handle)
    }
}

/// Another process's memory, imported ([`notify_api::Device::import_memory`], M5).
///
/// It keeps the [`AscendDevice`] it was imported with alive. Its range takes only
/// device-to-device copies and sets on a stream (M5; anything else is refused before the runtime
/// is called). Dropping it closes it as an [`AscendBuffer`] is freed: withdrawn, its devices
/// synchronized, then `aclrtIpcMemClose` (M6).
#[derive(Debug)]
pub struct AscendMemImport {
    handle: result::MemImport,
    device: AscendDevice,
}

impl AscendMemImport {
    pub(crate) fn new(device: AscendDevice, handle: result::MemImport) -> Self {
        Self { handle, device }
    }

    /// The key it was imported with.
    pub fn key(&self) -> &ExportKey {
        self.handle.key()
    }

    /// The device address it is mapped at in this process (never the exporter's, M5).
    pub fn addr(&self) -> u64 {
        self.handle.addr()
    }
}

impl notify_api::MemImport for AscendMemImport {
    type Backend = Ascend;

    fn device(&self) -> &AscendDevice {
        &self.device
    }

    /// The length given to [`notify_api::Device::import_memory`].
    fn len(&self) -> usize {
        self.handle.len()
    }

    /// The import as a range; its device is the one it was imported with (the C API does not
    /// say which device the exporter allocated it on).
    fn as_range(&self) -> DeviceRange<'_> {
        self.handle.range()
    }

    fn close(self) -> Result<()> {
        let Self { handle, device } = self;
        let closed = result::ipc_mem_close_import(handle);
        drop(device);
        closed
    }
}
