//! [`SimBuilder`]: the simulator's configuration, from the builder first, then the environment
//! (`ASCEND_NOTIFY_SIM_*`, SEMANTICS.md §4), then the defaults.

use std::sync::Arc;

use notify_api::{AclError, DEFAULT_CAPACITY, Error, Result};

use crate::raw::Session;
use crate::registry::{BareTgidMode, Config, Registry};

/// `ASCEND_NOTIFY_SIM_NAMESPACE`: the namespace when the builder names none.
pub const ENV_NAMESPACE: &str = "ASCEND_NOTIFY_SIM_NAMESPACE";
/// `ASCEND_NOTIFY_SIM_DEVICES`: devices of a namespace this process creates (default 8).
pub const ENV_DEVICES: &str = "ASCEND_NOTIFY_SIM_DEVICES";
/// `ASCEND_NOTIFY_SIM_CAPACITY`: notifies per device of a namespace this process creates
/// (default 8192).
pub const ENV_CAPACITY: &str = "ASCEND_NOTIFY_SIM_CAPACITY";
/// `ASCEND_NOTIFY_SIM_PROCESSES`: processes that may be attached at once, for a namespace this
/// process creates (default 1024).
pub const ENV_PROCESSES: &str = "ASCEND_NOTIFY_SIM_PROCESSES";
/// `ASCEND_NOTIFY_SIM_DEVICE_MEMORY`: bytes of device memory per device, for a namespace this
/// process creates (default 64 GiB).
pub const ENV_DEVICE_MEMORY: &str = "ASCEND_NOTIFY_SIM_DEVICE_MEMORY";
/// `ASCEND_NOTIFY_SIM_VIRTUAL=1`: this process runs in a virtualization instance (R12).
pub const ENV_VIRTUAL: &str = "ASCEND_NOTIFY_SIM_VIRTUAL";
/// `ASCEND_NOTIFY_SIM_STRICT=1`: the hazards of §5 fail instead of being counted.
pub const ENV_STRICT: &str = "ASCEND_NOTIFY_SIM_STRICT";
/// `ASCEND_NOTIFY_SIM_BARE_TGID=remap`: this process's bare tgid is not its `getpid()` even in
/// the host PID namespace (R16).
pub const ENV_BARE_TGID: &str = "ASCEND_NOTIFY_SIM_BARE_TGID";
/// `ASCEND_NOTIFY_SIM_START_OFFSET_S=<seconds>`, a test hook: this process's start time counts
/// as that many seconds later than it was, to test R7's pid-reuse guard (real pids cannot be
/// chosen). Not for production use.
#[doc(hidden)]
pub const ENV_START_OFFSET: &str = "ASCEND_NOTIFY_SIM_START_OFFSET_S";

/// Default devices per namespace.
pub const DEFAULT_DEVICES: u32 = 8;
/// Default processes per namespace (§4).
pub const DEFAULT_PROCESSES: u32 = 1024;
/// Default device memory per device: 64 GiB, the HBM of an A2 (§4).
pub const DEFAULT_DEVICE_MEMORY: u64 = 64 << 30;

/// The namespace used when neither the builder nor the environment names one: per user, so two
/// users of one machine never share a registry.
pub fn default_namespace() -> String {
    format!("user-{}", rustix::process::getuid().as_raw())
}

/// Configuration for the simulator. Unset fields come from the environment, then defaults.
///
/// `devices`, `capacity`, `processes` and `device_memory` matter only to the process that
/// creates the namespace: they are stored in the registry header, and later processes use the
/// header's values. The others describe this process.
#[derive(Clone, Debug, Default)]
pub struct SimBuilder {
    namespace: Option<String>,
    devices: Option<u32>,
    capacity: Option<u32>,
    processes: Option<u32>,
    device_memory: Option<u64>,
    virtualized: Option<bool>,
    strict: Option<bool>,
    bare_tgid: Option<BareTgidMode>,
}

fn env_num<T: std::str::FromStr>(name: &str) -> Result<Option<T>> {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().map(Some).map_err(|_| {
            Error::config(
                AclError::RT_PARAM_INVALID,
                format!("{name}={v:?} is not a number"),
            )
        }),
        Err(_) => Ok(None),
    }
}

fn env_flag(name: &str) -> Result<Option<bool>> {
    match std::env::var(name).as_deref().map(str::trim) {
        Err(_) | Ok("") => Ok(None),
        Ok("1") => Ok(Some(true)),
        Ok("0") => Ok(Some(false)),
        Ok(other) => Err(Error::config(
            AclError::RT_PARAM_INVALID,
            format!("{name}={other:?}: expected 1 or 0"),
        )),
    }
}

impl SimBuilder {
    /// The registry namespace (1–64 characters of `[A-Za-z0-9._-]`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Devices, if this process creates the namespace (1..=64).
    pub fn devices(mut self, devices: u32) -> Self {
        self.devices = Some(devices);
        self
    }

    /// Notifies per device, if this process creates the namespace (1..=65535; R11).
    pub fn capacity(mut self, capacity: u32) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// Processes that may be attached at once, if this process creates the namespace (§4).
    pub fn processes(mut self, processes: u32) -> Self {
        self.processes = Some(processes);
        self
    }

    /// Bytes of device memory per device, if this process creates the namespace (§4, M1).
    pub fn device_memory(mut self, bytes: u64) -> Self {
        self.device_memory = Some(bytes);
        self
    }

    /// Whether this process runs in a virtualization instance (R12).
    pub fn virtualized(mut self, virtualized: bool) -> Self {
        self.virtualized = Some(virtualized);
        self
    }

    /// Whether the hazards of §5 fail instead of being counted.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = Some(strict);
        self
    }

    /// How this process's bare tgid is chosen (R16).
    pub fn bare_tgid(mut self, mode: BareTgidMode) -> Self {
        self.bare_tgid = Some(mode);
        self
    }

    /// Attaches this process, creating the namespace if needed: the session `raw` works on.
    ///
    /// # Errors
    /// `Error::Config` (107000) for a bad namespace name or configuration value;
    /// `RT_INTERNAL_ERROR` (507000) for a registry with a wrong magic, version or layout (the
    /// message says how to remove it), a full process table, or an OS failure.
    pub fn attach(self) -> Result<Arc<Session>> {
        let namespace = match self.namespace {
            Some(ns) => ns,
            None => std::env::var(ENV_NAMESPACE).unwrap_or_else(|_| default_namespace()),
        };
        let cfg = Config {
            namespace,
            devices: self
                .devices
                .map_or_else(|| env_num(ENV_DEVICES), |d| Ok(Some(d)))?
                .unwrap_or(DEFAULT_DEVICES),
            capacity: self
                .capacity
                .map_or_else(|| env_num(ENV_CAPACITY), |c| Ok(Some(c)))?
                .unwrap_or(DEFAULT_CAPACITY),
            processes: self
                .processes
                .map_or_else(|| env_num(ENV_PROCESSES), |p| Ok(Some(p)))?
                .unwrap_or(DEFAULT_PROCESSES),
            device_memory: self
                .device_memory
                .map_or_else(|| env_num(ENV_DEVICE_MEMORY), |m| Ok(Some(m)))?
                .unwrap_or(DEFAULT_DEVICE_MEMORY),
        };
        let virtualized = self
            .virtualized
            .map_or_else(|| env_flag(ENV_VIRTUAL), |v| Ok(Some(v)))?
            .unwrap_or(false);
        let strict = self
            .strict
            .map_or_else(|| env_flag(ENV_STRICT), |v| Ok(Some(v)))?
            .unwrap_or(false);
        let bare_tgid = match self.bare_tgid {
            Some(mode) => mode,
            None => match std::env::var(ENV_BARE_TGID).as_deref().map(str::trim) {
                Err(_) | Ok("") | Ok("auto") => BareTgidMode::Auto,
                Ok("remap") => BareTgidMode::Remap,
                Ok(other) => {
                    return Err(Error::config(
                        AclError::RT_PARAM_INVALID,
                        format!("{ENV_BARE_TGID}={other:?}: expected \"remap\" or \"auto\""),
                    ));
                }
            },
        };
        let offset = env_num::<i64>(ENV_START_OFFSET)?.unwrap_or(0);
        let reg = Registry::attach(&cfg, bare_tgid, offset)?;
        Ok(Session::new(reg, virtualized, strict))
    }

    /// Attaches this process: the typed runtime.
    ///
    /// # Errors
    /// As [`SimBuilder::attach`].
    pub fn build(self) -> Result<crate::SimRuntime> {
        self.attach().map(crate::SimRuntime::from_session)
    }
}
