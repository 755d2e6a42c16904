//! [`Runtime`], [`RuntimeStream`], [`RuntimeNotify`]: the traits of `notify-api` once more, over
//! whichever backend was chosen at run time.

// With no backend compiled in, every method body is unreachable and ignores its arguments.
#![cfg_attr(
    not(any(feature = "sim", feature = "ascend")),
    allow(unused_variables, dead_code)
)]

use std::time::Duration;

use notify_api::{
    Backend, BackendKind, DeviceId, Error, ExportFlags, ExportKey, ImportFlags, NotifyFlags,
    NotifyId, Pid, Result, err,
};

#[cfg(feature = "ascend")]
use backend_ascend::{AscendBackend, AscendNotify, AscendStream};
#[cfg(feature = "sim")]
use backend_sim::{SimBackend, SimNotify, SimStream};

use crate::builder::RuntimeBuilder;

/// One backend value per compiled-in backend. With no backend compiled in, the enum has only
/// an uninhabited variant, so that the crate still builds (and every method is unreachable).
macro_rules! backend_enum {
    ($(#[$doc:meta])* $name:ident { sim: $sim:ty, ascend: $ascend:ty $(,)? } $(derive($($derive:ident),*))?) => {
        $(#[$doc])*
        #[derive(Debug $($(, $derive)*)?)]
        enum $name {
            #[cfg(feature = "sim")]
            Sim($sim),
            #[cfg(feature = "ascend")]
            Ascend($ascend),
            #[cfg(not(any(feature = "sim", feature = "ascend")))]
            #[allow(dead_code)]
            Void(std::convert::Infallible),
        }
    };
}

/// Runs `$body` with `$inner` bound to the backend value, whichever it is.
macro_rules! dispatch {
    ($enum:ident, $value:expr, |$inner:ident| $body:expr) => {
        match $value {
            #[cfg(feature = "sim")]
            $enum::Sim($inner) => $body,
            #[cfg(feature = "ascend")]
            $enum::Ascend($inner) => $body,
            #[cfg(not(any(feature = "sim", feature = "ascend")))]
            $enum::Void(never) => absurd(never),
        }
    };
}

/// Runs `$body` with two values of the same backend; values of different backends are
/// [`mismatch`]ed.
macro_rules! dispatch_pair {
    ($enum_a:ident, $a:expr, $enum_b:ident, $b:expr, |$x:ident, $y:ident| $body:expr, $what:expr) => {
        match ($a, $b) {
            #[cfg(feature = "sim")]
            ($enum_a::Sim($x), $enum_b::Sim($y)) => $body,
            #[cfg(feature = "ascend")]
            ($enum_a::Ascend($x), $enum_b::Ascend($y)) => $body,
            #[cfg(all(feature = "sim", feature = "ascend"))]
            (a, b) => Err(mismatch($what, a.kind(), b.kind())),
            #[cfg(not(any(feature = "sim", feature = "ascend")))]
            ($enum_a::Void(never), _) => absurd(never),
        }
    };
}

backend_enum! {
    /// The backend inside a [`Runtime`].
    Inner { sim: SimBackend, ascend: AscendBackend } derive(Clone)
}

backend_enum! {
    /// The stream inside a [`RuntimeStream`].
    StreamInner { sim: SimStream, ascend: AscendStream }
}

backend_enum! {
    /// The notify inside a [`RuntimeNotify`].
    NotifyInner { sim: SimNotify, ascend: AscendNotify }
}

macro_rules! kind_of {
    ($enum:ident) => {
        impl $enum {
            /// Which backend this value belongs to.
            #[allow(dead_code)] // unused in some feature combinations
            fn kind(&self) -> BackendKind {
                match self {
                    #[cfg(feature = "sim")]
                    Self::Sim(_) => BackendKind::Sim,
                    #[cfg(feature = "ascend")]
                    Self::Ascend(_) => BackendKind::Ascend,
                    #[cfg(not(any(feature = "sim", feature = "ascend")))]
                    Self::Void(never) => absurd(never),
                }
            }
        }
    };
}

/// The no-backend build's uninhabited value, by value or by reference.
#[cfg(not(any(feature = "sim", feature = "ascend")))]
fn absurd<T>(never: impl std::borrow::Borrow<std::convert::Infallible>) -> T {
    match *never.borrow() {}
}

kind_of!(Inner);
kind_of!(StreamInner);
kind_of!(NotifyInner);

/// The error for handles of two different backends used together (R10: a foreign handle).
fn mismatch(what: &str, a: BackendKind, b: BackendKind) -> Error {
    err!(
        RT_INVALID_HANDLE,
        "R10: {what}: a handle of the {a} backend used with one of the {b} backend"
    )
}

/// A runtime on the backend chosen when it was built: the simulator or `libascendcl.so`.
///
/// It implements [`Backend`] by passing every call to that backend; streams and notifies it
/// makes are [`RuntimeStream`] and [`RuntimeNotify`]. Cheap to clone (every backend is).
#[derive(Clone, Debug)]
pub struct Runtime {
    inner: Inner,
}

/// A stream of a [`Runtime`]: a stream of the runtime's backend.
#[derive(Debug)]
pub struct RuntimeStream {
    inner: StreamInner,
}

/// A notify handle of a [`Runtime`]: a notify of the runtime's backend.
#[derive(Debug)]
pub struct RuntimeNotify {
    inner: NotifyInner,
}

impl Runtime {
    /// A builder: choose the backend and its options.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// `builder().build()`: the backend `ASCEND_NOTIFY_BACKEND` names, else the first that
    /// works, each configured from its own environment variables.
    ///
    /// # Errors
    /// As [`RuntimeBuilder::build`].
    pub fn from_env() -> Result<Self> {
        Self::builder().build()
    }

    /// The simulator inside, if that is the chosen backend.
    #[cfg(feature = "sim")]
    pub fn as_sim(&self) -> Option<&SimBackend> {
        match &self.inner {
            Inner::Sim(sim) => Some(sim),
            #[cfg(feature = "ascend")]
            Inner::Ascend(_) => None,
        }
    }

    /// The Ascend runtime inside, if that is the chosen backend.
    #[cfg(feature = "ascend")]
    pub fn as_ascend(&self) -> Option<&AscendBackend> {
        match &self.inner {
            Inner::Ascend(acl) => Some(acl),
            #[cfg(feature = "sim")]
            Inner::Sim(_) => None,
        }
    }
}

impl RuntimeStream {
    /// The simulator stream inside, if that is the backend.
    #[cfg(feature = "sim")]
    pub fn as_sim(&self) -> Option<&SimStream> {
        match &self.inner {
            StreamInner::Sim(sim) => Some(sim),
            #[cfg(feature = "ascend")]
            StreamInner::Ascend(_) => None,
        }
    }

    /// The Ascend stream inside, if that is the backend.
    #[cfg(feature = "ascend")]
    pub fn as_ascend(&self) -> Option<&AscendStream> {
        match &self.inner {
            StreamInner::Ascend(acl) => Some(acl),
            #[cfg(feature = "sim")]
            StreamInner::Sim(_) => None,
        }
    }
}

impl RuntimeNotify {
    /// The simulator notify inside, if that is the backend.
    #[cfg(feature = "sim")]
    pub fn as_sim(&self) -> Option<&SimNotify> {
        match &self.inner {
            NotifyInner::Sim(sim) => Some(sim),
            #[cfg(feature = "ascend")]
            NotifyInner::Ascend(_) => None,
        }
    }

    /// The Ascend notify inside, if that is the backend.
    #[cfg(feature = "ascend")]
    pub fn as_ascend(&self) -> Option<&AscendNotify> {
        match &self.inner {
            NotifyInner::Ascend(acl) => Some(acl),
            #[cfg(feature = "sim")]
            NotifyInner::Sim(_) => None,
        }
    }
}

macro_rules! from_backend {
    ($feature:literal, $variant:ident: $($from:ty => $to:ident / $inner:ident),*) => {
        $(
            #[cfg(feature = $feature)]
            impl From<$from> for $to {
                fn from(value: $from) -> Self {
                    Self { inner: $inner::$variant(value) }
                }
            }
        )*
    };
}

from_backend!("sim", Sim:
    SimBackend => Runtime / Inner,
    SimStream => RuntimeStream / StreamInner,
    SimNotify => RuntimeNotify / NotifyInner);
from_backend!("ascend", Ascend:
    AscendBackend => Runtime / Inner,
    AscendStream => RuntimeStream / StreamInner,
    AscendNotify => RuntimeNotify / NotifyInner);

/// The notifies of `notifies` as values of one backend, picked by `pick`; a notify of another
/// backend is a [`mismatch`].
#[cfg(any(feature = "sim", feature = "ascend"))]
fn same_backend<'a, T>(
    notifies: &[&'a RuntimeNotify],
    kind: BackendKind,
    pick: impl Fn(&'a RuntimeNotify) -> Option<&'a T>,
) -> Result<Vec<&'a T>> {
    notifies
        .iter()
        .map(|notify| {
            pick(notify).ok_or_else(|| mismatch("batch_reset", notify.inner.kind(), kind))
        })
        .collect()
}

impl Backend for Runtime {
    type Stream = RuntimeStream;
    type Notify = RuntimeNotify;

    fn kind(&self) -> BackendKind {
        dispatch!(Inner, &self.inner, |b| b.kind())
    }

    fn device_count(&self) -> Result<u32> {
        dispatch!(Inner, &self.inner, |b| b.device_count())
    }

    fn set_device(&self, device: DeviceId) -> Result<()> {
        dispatch!(Inner, &self.inner, |b| b.set_device(device))
    }

    fn reset_device(&self, device: DeviceId) -> Result<()> {
        dispatch!(Inner, &self.inner, |b| b.reset_device(device))
    }

    fn current_device(&self) -> Result<DeviceId> {
        dispatch!(Inner, &self.inner, |b| b.current_device())
    }

    fn bare_tgid(&self) -> Result<Pid> {
        dispatch!(Inner, &self.inner, |b| b.bare_tgid())
    }

    fn can_access_peer(&self, device: DeviceId, peer: DeviceId) -> Result<bool> {
        dispatch!(Inner, &self.inner, |b| b.can_access_peer(device, peer))
    }

    fn enable_peer_access(&self, peer: DeviceId, flags: u32) -> Result<()> {
        dispatch!(Inner, &self.inner, |b| b.enable_peer_access(peer, flags))
    }

    fn create_stream(&self) -> Result<RuntimeStream> {
        dispatch!(Inner, &self.inner, |b| b
            .create_stream()
            .map(RuntimeStream::from))
    }

    fn default_stream(&self) -> Result<RuntimeStream> {
        dispatch!(Inner, &self.inner, |b| b
            .default_stream()
            .map(RuntimeStream::from))
    }

    fn create_notify(&self, flags: NotifyFlags) -> Result<RuntimeNotify> {
        dispatch!(Inner, &self.inner, |b| b
            .create_notify(flags)
            .map(RuntimeNotify::from))
    }

    fn import_notify(&self, key: &ExportKey, flags: ImportFlags) -> Result<RuntimeNotify> {
        dispatch!(Inner, &self.inner, |b| b
            .import_notify(key, flags)
            .map(RuntimeNotify::from))
    }

    /// As [`Backend::batch_reset`]; a notify of another backend than this runtime's is
    /// `RT_INVALID_HANDLE` (107017) and then no flag is cleared.
    fn batch_reset(&self, notifies: &[&RuntimeNotify]) -> Result<()> {
        match &self.inner {
            #[cfg(feature = "sim")]
            Inner::Sim(b) => {
                b.batch_reset(&same_backend(notifies, BackendKind::Sim, |n| n.as_sim())?)
            }
            #[cfg(feature = "ascend")]
            Inner::Ascend(b) => b.batch_reset(&same_backend(notifies, BackendKind::Ascend, |n| {
                n.as_ascend()
            })?),
            #[cfg(not(any(feature = "sim", feature = "ascend")))]
            Inner::Void(never) => {
                let _ = notifies;
                absurd(never)
            }
        }
    }
}

#[async_trait::async_trait]
impl notify_api::Stream for RuntimeStream {
    type Backend = Runtime;

    fn device(&self) -> DeviceId {
        dispatch!(StreamInner, &self.inner, |s| s.device())
    }

    fn synchronize(&self) -> Result<()> {
        dispatch!(StreamInner, &self.inner, |s| s.synchronize())
    }

    fn synchronize_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        dispatch!(StreamInner, &self.inner, |s| s.synchronize_timeout(timeout))
    }

    async fn synchronize_async(&self) -> Result<()> {
        dispatch!(StreamInner, &self.inner, |s| s.synchronize_async().await)
    }

    fn destroy(self) -> Result<()> {
        dispatch!(StreamInner, self.inner, |s| s.destroy())
    }
}

impl notify_api::Notify for RuntimeNotify {
    type Backend = Runtime;

    fn id(&self) -> Result<NotifyId> {
        dispatch!(NotifyInner, &self.inner, |n| n.id())
    }

    fn export(&self, flags: ExportFlags) -> Result<ExportKey> {
        dispatch!(NotifyInner, &self.inner, |n| n.export(flags))
    }

    fn set_import_pids(&self, pids: &[Pid]) -> Result<()> {
        dispatch!(NotifyInner, &self.inner, |n| n.set_import_pids(pids))
    }

    /// As [`notify_api::Notify::record`]; a stream of another backend than this notify's is
    /// `RT_INVALID_HANDLE` (107017).
    fn record(&self, stream: &RuntimeStream) -> Result<()> {
        dispatch_pair!(
            NotifyInner,
            &self.inner,
            StreamInner,
            &stream.inner,
            |n, s| n.record(s),
            "record"
        )
    }

    /// As [`notify_api::Notify::wait_and_reset`]; a stream of another backend than this
    /// notify's is `RT_INVALID_HANDLE` (107017).
    fn wait_and_reset(&self, stream: &RuntimeStream, timeout_secs: u32) -> Result<()> {
        dispatch_pair!(
            NotifyInner,
            &self.inner,
            StreamInner,
            &stream.inner,
            |n, s| n.wait_and_reset(s, timeout_secs),
            "wait_and_reset"
        )
    }

    fn destroy(self) -> Result<()> {
        dispatch!(NotifyInner, self.inner, |n| n.destroy())
    }
}
