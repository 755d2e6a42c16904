//! [`RuntimeBuilder`]: which backend, and its options.

use std::ffi::OsStr;
use std::path::PathBuf;

use notify_api::{AclError, BackendKind, Error, Result};

use crate::Runtime;

/// The environment variable that picks the backend when the builder does not:
/// `sim` or `ascend`.
pub const BACKEND_ENV: &str = "ASCEND_NOTIFY_BACKEND";

/// Configuration for a [`Runtime`].
///
/// The backend is, in this order:
/// 1. the one named with [`RuntimeBuilder::backend`];
/// 2. else the one `ASCEND_NOTIFY_BACKEND` names (`sim` or `ascend`; empty counts as unset);
/// 3. else automatic: `ascend` when `libascendcl.so` (or `libacl_rt.so`) is found and loads;
///    the simulator only when the library is **not found anywhere** on the search path and the
///    simulator is compiled in. A library that is found but fails to load, or whose `aclInit`
///    fails, is an error naming the file, where it looked and why: a program on an NPU machine
///    with a broken install must not quietly run on the simulator.
///
/// An option of a backend other than the chosen one is an error, not silently ignored (a
/// namespace is a simulator option: the real runtime has none).
#[derive(Clone, Debug, Default)]
pub struct RuntimeBuilder {
    backend: Option<BackendKind>,
    #[cfg_attr(not(feature = "sim"), allow(dead_code))]
    sim: SimOptions,
    #[cfg_attr(not(feature = "ascend"), allow(dead_code))]
    library_path: Option<PathBuf>,
}

#[derive(Clone, Debug, Default)]
#[cfg_attr(not(feature = "sim"), allow(dead_code))]
struct SimOptions {
    namespace: Option<String>,
    devices: Option<u32>,
    capacity: Option<u32>,
    processes: Option<u32>,
    device_memory: Option<u64>,
    virtualized: Option<bool>,
    strict: Option<bool>,
}

impl SimOptions {
    /// The name of the first option that was set, for errors.
    #[cfg_attr(not(feature = "ascend"), allow(dead_code))]
    fn first_set(&self) -> Option<&'static str> {
        [
            ("namespace", self.namespace.is_some()),
            ("devices", self.devices.is_some()),
            ("capacity", self.capacity.is_some()),
            ("processes", self.processes.is_some()),
            ("device_memory", self.device_memory.is_some()),
            ("virtualized", self.virtualized.is_some()),
            ("strict", self.strict.is_some()),
        ]
        .into_iter()
        .find_map(|(name, set)| set.then_some(name))
    }
}

impl RuntimeBuilder {
    /// A builder with nothing chosen.
    pub fn new() -> Self {
        Self::default()
    }

    /// Chooses the backend explicitly; the environment is then not consulted.
    pub fn backend(mut self, kind: BackendKind) -> Self {
        self.backend = Some(kind);
        self
    }

    /// Simulator: the registry namespace (else `ASCEND_NOTIFY_SIM_NAMESPACE`, else a per-user
    /// default).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.sim.namespace = Some(namespace.into());
        self
    }

    /// Simulator: the number of devices, used if this process creates the namespace.
    pub fn devices(mut self, devices: u32) -> Self {
        self.sim.devices = Some(devices);
        self
    }

    /// Simulator: notifies per device, used if this process creates the namespace.
    pub fn capacity(mut self, capacity: u32) -> Self {
        self.sim.capacity = Some(capacity);
        self
    }

    /// Simulator: processes that may be attached at once, used if this process creates the
    /// namespace.
    pub fn processes(mut self, processes: u32) -> Self {
        self.sim.processes = Some(processes);
        self
    }

    /// Simulator: bytes of device memory per device, used if this process creates the
    /// namespace.
    pub fn device_memory(mut self, bytes: u64) -> Self {
        self.sim.device_memory = Some(bytes);
        self
    }

    /// Simulator: whether this process runs in a virtualization instance (R12).
    pub fn virtualized(mut self, virtualized: bool) -> Self {
        self.sim.virtualized = Some(virtualized);
        self
    }

    /// Simulator: whether the hazards of §5 fail instead of being counted.
    pub fn strict(mut self, strict: bool) -> Self {
        self.sim.strict = Some(strict);
        self
    }

    /// Ascend: load the runtime library from this path and nowhere else (else
    /// `ASCEND_NOTIFY_ACL_LIB`, else the CANN locations).
    pub fn library_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.library_path = Some(path.into());
        self
    }

    /// Chooses the backend (see the type's docs) and attaches to it.
    ///
    /// # Errors
    /// - `Error::Config` when `ASCEND_NOTIFY_BACKEND` is neither `sim` nor `ascend` (107000),
    ///   when the chosen backend's cargo feature is not compiled in (207000), or when an option
    ///   of the other backend was given (107000);
    /// - `Error::Load` when the Ascend library was found but cannot be loaded, or (with no
    ///   simulator to choose instead) was not found;
    /// - otherwise the chosen backend's own error.
    pub fn build(self) -> Result<Runtime> {
        let env = std::env::var_os(BACKEND_ENV);
        match choose(self.backend, env.as_deref())? {
            Choice::Kind(kind, source) => {
                ensure_compiled(kind, source)?;
                match kind {
                    BackendKind::Sim => self.build_sim(source),
                    BackendKind::Ascend => self.build_ascend(source),
                }
            }
            Choice::Auto => self.build_auto(),
        }
    }

    fn build_auto(self) -> Result<Runtime> {
        #[cfg(feature = "ascend")]
        let not_found = {
            let mut acl = backend_ascend::AscendRuntime::builder();
            if let Some(path) = &self.library_path {
                acl = acl.library_path(path.clone());
            }
            match acl.build() {
                Ok(rt) => {
                    if let Some(option) = self.sim.first_set() {
                        return Err(unused_option(option, BackendKind::Ascend, "automatically"));
                    }
                    return Ok(Runtime::wrap(rt));
                }
                // Only a library searched for and found nowhere lets the simulator stand in:
                // a path the user named is a request for the real runtime.
                Err(Error::Load(load))
                    if load.not_found()
                        && self.library_path.is_none()
                        && std::env::var_os(backend_ascend::sys::LIBRARY_ENV)
                            .is_none_or(|v| v.is_empty()) =>
                {
                    Some(Error::Load(load))
                }
                Err(e) => return Err(e),
            }
        };
        #[cfg(not(feature = "ascend"))]
        let not_found = None;
        self.fallback(not_found)
    }

    /// The automatic choice once the Ascend library was found nowhere: the simulator.
    #[cfg(feature = "sim")]
    fn fallback(self, _not_found: Option<Error>) -> Result<Runtime> {
        if self.library_path.is_some() {
            return Err(unused_option(
                "library_path",
                BackendKind::Sim,
                "automatically",
            ));
        }
        self.sim_runtime()
    }

    /// The automatic choice once the Ascend library was found nowhere: nothing else is
    /// compiled in.
    #[cfg(not(feature = "sim"))]
    fn fallback(self, not_found: Option<Error>) -> Result<Runtime> {
        Err(not_found.unwrap_or_else(|| {
            Error::config(
                AclError::RT_FEATURE_NOT_SUPPORT,
                "ascend-notify was built without any backend: enable cargo feature `sim` or \
                 `ascend`",
            )
        }))
    }

    #[cfg(feature = "sim")]
    fn build_sim(self, source: Source) -> Result<Runtime> {
        if self.library_path.is_some() {
            return Err(unused_option("library_path", BackendKind::Sim, source.by()));
        }
        self.sim_runtime()
    }

    #[cfg(feature = "sim")]
    fn sim_runtime(self) -> Result<Runtime> {
        let o = self.sim;
        let mut sim = backend_sim::SimRuntime::builder();
        if let Some(namespace) = o.namespace {
            sim = sim.namespace(namespace);
        }
        if let Some(devices) = o.devices {
            sim = sim.devices(devices);
        }
        if let Some(capacity) = o.capacity {
            sim = sim.capacity(capacity);
        }
        if let Some(processes) = o.processes {
            sim = sim.processes(processes);
        }
        if let Some(bytes) = o.device_memory {
            sim = sim.device_memory(bytes);
        }
        if let Some(virtualized) = o.virtualized {
            sim = sim.virtualized(virtualized);
        }
        if let Some(strict) = o.strict {
            sim = sim.strict(strict);
        }
        sim.build().map(Runtime::wrap)
    }

    #[cfg(not(feature = "sim"))]
    fn build_sim(self, source: Source) -> Result<Runtime> {
        Err(not_compiled(BackendKind::Sim, source))
    }

    #[cfg(feature = "ascend")]
    fn build_ascend(self, source: Source) -> Result<Runtime> {
        if let Some(option) = self.sim.first_set() {
            return Err(unused_option(option, BackendKind::Ascend, source.by()));
        }
        let mut acl = backend_ascend::AscendRuntime::builder();
        if let Some(path) = self.library_path {
            acl = acl.library_path(path);
        }
        acl.build().map(Runtime::wrap)
    }

    #[cfg(not(feature = "ascend"))]
    fn build_ascend(self, source: Source) -> Result<Runtime> {
        Err(not_compiled(BackendKind::Ascend, source))
    }
}

/// An option of a backend other than the chosen one.
#[cfg_attr(not(all(feature = "sim", feature = "ascend")), allow(dead_code))]
fn unused_option(option: &str, chosen: BackendKind, how: impl std::fmt::Display) -> Error {
    let owner = match chosen {
        BackendKind::Sim => "the ascend backend's",
        BackendKind::Ascend => "a simulator",
    };
    let hint = match chosen {
        BackendKind::Ascend => {
            " (to run the simulated libascendcl.so in a namespace, set \
             ASCEND_NOTIFY_SIM_NAMESPACE for the process instead)"
        }
        BackendKind::Sim => "",
    };
    Error::config(
        AclError::RT_PARAM_INVALID,
        format!(
            "RuntimeBuilder::{option} is {owner} option, but backend \"{chosen}\" was chosen \
             {how}; it would be ignored{hint}"
        ),
    )
}

/// Who asked for a backend, for error texts.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    Builder,
    Env,
}

impl Source {
    #[cfg_attr(not(any(feature = "sim", feature = "ascend")), allow(dead_code))]
    fn by(self) -> &'static str {
        match self {
            Source::Builder => "by RuntimeBuilder::backend",
            Source::Env => "by ASCEND_NOTIFY_BACKEND",
        }
    }
}

/// The outcome of the choice, before anything is attached.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Choice {
    /// This backend, named by this source.
    Kind(BackendKind, Source),
    /// The first that works.
    Auto,
}

/// The builder's choice first, then the environment's value (`env`), then automatic.
pub(crate) fn choose(explicit: Option<BackendKind>, env: Option<&OsStr>) -> Result<Choice> {
    if let Some(kind) = explicit {
        return Ok(Choice::Kind(kind, Source::Builder));
    }
    let Some(value) = env.filter(|v| !v.is_empty()) else {
        return Ok(Choice::Auto);
    };
    let Some(text) = value.to_str() else {
        return Err(Error::config(
            AclError::RT_PARAM_INVALID,
            format!("{BACKEND_ENV}={value:?} is not valid UTF-8: expected \"sim\" or \"ascend\""),
        ));
    };
    match text.parse::<BackendKind>() {
        Ok(kind) => Ok(Choice::Kind(kind, Source::Env)),
        Err(e) => Err(Error::config(
            e.code(),
            format!("{BACKEND_ENV}: {}", e.reason()),
        )),
    }
}

/// Whether `kind`'s backend is compiled into this build.
pub(crate) const fn compiled(kind: BackendKind) -> bool {
    match kind {
        BackendKind::Sim => cfg!(feature = "sim"),
        BackendKind::Ascend => cfg!(feature = "ascend"),
    }
}

fn ensure_compiled(kind: BackendKind, source: Source) -> Result<()> {
    if compiled(kind) {
        Ok(())
    } else {
        Err(not_compiled(kind, source))
    }
}

fn not_compiled(kind: BackendKind, source: Source) -> Error {
    let by = match source {
        Source::Builder => "by RuntimeBuilder::backend".to_owned(),
        Source::Env => format!("by {BACKEND_ENV}={kind}"),
    };
    Error::config(
        AclError::RT_FEATURE_NOT_SUPPORT,
        format!(
            "backend \"{kind}\" was requested {by}, but ascend-notify was built without its \
             cargo feature `{kind}`"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify_api::AclError;
    use std::ffi::OsString;

    fn env(value: &str) -> OsString {
        OsString::from(value)
    }

    #[test]
    fn the_builder_wins_over_the_environment_even_an_invalid_one() {
        for value in [None, Some(env("ascend")), Some(env("bogus"))] {
            assert_eq!(
                choose(Some(BackendKind::Sim), value.as_deref()).unwrap(),
                Choice::Kind(BackendKind::Sim, Source::Builder)
            );
        }
        assert_eq!(
            choose(Some(BackendKind::Ascend), Some(&env("sim"))).unwrap(),
            Choice::Kind(BackendKind::Ascend, Source::Builder)
        );
    }

    #[test]
    fn the_environment_names_a_backend() {
        assert_eq!(
            choose(None, Some(&env("sim"))).unwrap(),
            Choice::Kind(BackendKind::Sim, Source::Env)
        );
        assert_eq!(
            choose(None, Some(&env("ascend"))).unwrap(),
            Choice::Kind(BackendKind::Ascend, Source::Env)
        );
    }

    #[test]
    fn unset_or_empty_environment_means_automatic() {
        assert_eq!(choose(None, None).unwrap(), Choice::Auto);
        assert_eq!(choose(None, Some(&env(""))).unwrap(), Choice::Auto);
    }

    #[test]
    fn an_unknown_environment_value_is_an_error_naming_the_variable() {
        for value in [
            "bogus",
            "SIM",
            "Ascend",
            " sim",
            "sim ",
            "sim,ascend",
            "auto",
        ] {
            let e = choose(None, Some(&env(value))).unwrap_err();
            assert_eq!(e.code(), AclError::RT_PARAM_INVALID, "{value:?}");
            assert!(e.reason().starts_with(BACKEND_ENV), "{e}");
            assert!(e.reason().contains(&format!("{value:?}")), "{e}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_non_utf8_environment_value_is_an_error() {
        use std::os::unix::ffi::OsStrExt;
        let value = OsStr::from_bytes(b"si\xffm");
        let e = choose(None, Some(value)).unwrap_err();
        assert_eq!(e.code(), AclError::RT_PARAM_INVALID);
        assert!(e.reason().contains(BACKEND_ENV), "{e}");
    }

    #[test]
    fn compiled_backends_follow_the_features() {
        assert_eq!(compiled(BackendKind::Sim), cfg!(feature = "sim"));
        assert_eq!(compiled(BackendKind::Ascend), cfg!(feature = "ascend"));
        for kind in [BackendKind::Sim, BackendKind::Ascend] {
            for source in [Source::Builder, Source::Env] {
                match ensure_compiled(kind, source) {
                    Ok(()) => assert!(compiled(kind)),
                    Err(e) => {
                        assert!(!compiled(kind));
                        assert_eq!(e.code(), AclError::RT_FEATURE_NOT_SUPPORT);
                        assert!(e.reason().contains(&format!("feature `{kind}`")), "{e}");
                        if source == Source::Env {
                            assert!(e.reason().contains(BACKEND_ENV), "{e}");
                        }
                    }
                }
            }
        }
    }

    /// Asking the builder for a backend that is not compiled in fails before anything is loaded
    /// or attached, so this runs without a simulator or a library.
    #[test]
    fn requesting_a_backend_that_is_not_compiled_in_is_feature_not_supported() {
        for kind in [BackendKind::Sim, BackendKind::Ascend] {
            if compiled(kind) {
                continue;
            }
            let e = Runtime::builder().backend(kind).build().unwrap_err();
            assert_eq!(e.code(), AclError::RT_FEATURE_NOT_SUPPORT);
            assert!(e.reason().contains("RuntimeBuilder::backend"), "{e}");
        }
    }
}
