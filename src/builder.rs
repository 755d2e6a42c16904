//! [`RuntimeBuilder`]: which backend, and its options.

use std::ffi::OsStr;
use std::path::PathBuf;

use notify_api::{BackendKind, Error, Result, err};

use crate::Runtime;

/// The environment variable that picks the backend when the builder does not:
/// `sim` or `ascend`.
pub const BACKEND_ENV: &str = "ASCEND_NOTIFY_BACKEND";

/// Configuration for a [`Runtime`].
///
/// The backend is, in this order: the one named with [`RuntimeBuilder::backend`]; else the one
/// `ASCEND_NOTIFY_BACKEND` names (`sim` or `ascend`; empty counts as unset); else the first that
/// works: `ascend` when `libascendcl.so` can be loaded, otherwise `sim`.
///
/// In that last, automatic, case the fallback to the simulator happens only when the library
/// cannot be found or loaded; a library that loads but whose `aclInit` fails is reported as an
/// error, since a program on an NPU machine must not silently run on the simulator.
///
/// Options of a backend that is not chosen (or not compiled in) are ignored.
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
    virtualized: Option<bool>,
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

    /// Simulator: whether this process runs in a virtualization instance (R12).
    pub fn virtualized(mut self, virtualized: bool) -> Self {
        self.sim.virtualized = Some(virtualized);
        self
    }

    /// Ascend: load `libascendcl.so` from this path and nowhere else (else
    /// `ASCEND_NOTIFY_ACL_LIB`, else the CANN locations).
    pub fn library_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.library_path = Some(path.into());
        self
    }

    /// Chooses the backend (see the type's docs) and attaches to it.
    ///
    /// # Errors
    /// - `RT_PARAM_INVALID` (107000) when `ASCEND_NOTIFY_BACKEND` is neither `sim` nor `ascend`
    ///   (and the builder named no backend);
    /// - `RT_FEATURE_NOT_SUPPORT` (207000) when the chosen backend's cargo feature is not
    ///   compiled in;
    /// - otherwise the chosen backend's own error (for `ascend`, `ACL_ERROR_UNINITIALIZE`
    ///   (100001) when the library cannot be loaded).
    pub fn build(self) -> Result<Runtime> {
        let env = std::env::var_os(BACKEND_ENV);
        match choose(self.backend, env.as_deref())? {
            Choice::Kind(kind, source) => {
                ensure_compiled(kind, source)?;
                match kind {
                    BackendKind::Sim => self.build_sim(),
                    BackendKind::Ascend => self.build_ascend(),
                }
            }
            Choice::Auto => self.build_auto(),
        }
    }

    fn build_auto(self) -> Result<Runtime> {
        #[cfg(feature = "ascend")]
        let ascend_missing = {
            use backend_ascend::{AscendBackend, sys::AclLib};
            match AclLib::load(self.library_path.as_deref()) {
                Ok(lib) => return AscendBackend::from_library(lib).map(Runtime::from),
                Err(not_loaded) => Some(not_loaded),
            }
        };
        #[cfg(not(feature = "ascend"))]
        let ascend_missing = None;
        self.fallback(ascend_missing)
    }

    /// The automatic choice once `ascend` did not load: the simulator.
    #[cfg(feature = "sim")]
    fn fallback(self, _ascend_missing: Option<Error>) -> Result<Runtime> {
        self.build_sim()
    }

    /// The automatic choice once `ascend` did not load: nothing else is compiled in.
    #[cfg(not(feature = "sim"))]
    fn fallback(self, ascend_missing: Option<Error>) -> Result<Runtime> {
        Err(ascend_missing.unwrap_or_else(|| {
            err!(
                RT_FEATURE_NOT_SUPPORT,
                "ascend-notify was built without any backend: enable cargo feature `sim` or \
                 `ascend`"
            )
        }))
    }

    #[cfg(feature = "sim")]
    fn build_sim(self) -> Result<Runtime> {
        let options = self.sim;
        let mut sim = backend_sim::SimBackend::builder();
        if let Some(namespace) = options.namespace {
            sim = sim.namespace(namespace);
        }
        if let Some(devices) = options.devices {
            sim = sim.devices(devices);
        }
        if let Some(capacity) = options.capacity {
            sim = sim.capacity(capacity);
        }
        if let Some(virtualized) = options.virtualized {
            sim = sim.virtualized(virtualized);
        }
        sim.build().map(Runtime::from)
    }

    #[cfg(not(feature = "sim"))]
    fn build_sim(self) -> Result<Runtime> {
        Err(not_compiled(BackendKind::Sim, Source::Builder))
    }

    #[cfg(feature = "ascend")]
    fn build_ascend(self) -> Result<Runtime> {
        let mut acl = backend_ascend::AscendBackend::builder();
        if let Some(path) = self.library_path {
            acl = acl.library_path(path);
        }
        acl.build().map(Runtime::from)
    }

    #[cfg(not(feature = "ascend"))]
    fn build_ascend(self) -> Result<Runtime> {
        Err(not_compiled(BackendKind::Ascend, Source::Builder))
    }
}

/// Who asked for a backend, for error texts.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    Builder,
    Env,
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
        return Err(err!(
            RT_PARAM_INVALID,
            "{BACKEND_ENV}={value:?} is not valid UTF-8: expected \"sim\" or \"ascend\""
        ));
    };
    match text.parse::<BackendKind>() {
        Ok(kind) => Ok(Choice::Kind(kind, Source::Env)),
        Err(e) => Err(Error::new(
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
    err!(
        RT_FEATURE_NOT_SUPPORT,
        "backend \"{kind}\" was requested {by}, but ascend-notify was built without its cargo \
         feature `{kind}`"
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
