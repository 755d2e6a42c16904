//! The Ascend IPC Notify API over the vendor runtime, `libascendcl.so`, loaded at run time.
//!
//! There is no link-time dependency: this crate builds on any machine, with or without CANN,
//! and finds the library when a backend is built ([`sys`] documents the search). On a machine
//! without an NPU, the `ascendcl-sim` crate builds a `libascendcl.so` with the same symbols over
//! the simulator, and this crate loads it like the real one.
//!
//! # Layers
//! As in cudarc, three layers, each with one job:
//! - [`sys`]: the exact C prototypes of `SEMANTICS.md` §1 as a struct of function pointers
//!   ([`sys::AclLib`]) and the library search. Nothing is checked or interpreted here.
//! - [`result`]: one Rust function per C call. It does the pointer work of that call (out
//!   parameters, the 65-byte key buffer, arrays) and maps the code to
//!   [`notify_api::Result`], taking the reason text from `aclGetRecentErrMsg`. Calls that take a
//!   notify or stream handle are `unsafe fn`, since the runtime may dereference the handle.
//! - the safe layer, at the crate root: [`AscendBackend`], [`AscendStream`] and
//!   [`AscendNotify`] implement the traits of `notify-api` by owning every handle they create,
//!   which is what makes the handle-taking calls of `result` sound: a handle is only passed
//!   while its owner is alive, it is destroyed exactly once (by `destroy` or by the drop, never
//!   both), and the runtime is not finalized while any handle exists.
//!
//! The behaviour of every method is the contract documented on the traits ([`notify_api::Backend`],
//! [`notify_api::Stream`], [`notify_api::Notify`]); this backend adds no rule of its own but
//! passes flags as their raw CANN bits and lets the runtime check them (R15).
//!
//! # Initialization and lifetime
//! [`AscendBuilder::build`] loads the library and calls `aclInit(NULL)`. If the runtime was
//! already initialized by another part of the process (`ACL_ERROR_REPEAT_INITIALIZE`, 100002),
//! that is accepted and `aclFinalize` is left to whoever initialized it. Building a second
//! backend from the same library joins the first one's initialization. `aclFinalize` runs when
//! the last [`AscendBackend`] clone, [`AscendStream`] and [`AscendNotify`] of that
//! initialization is dropped: every one of them holds a reference, because a real `aclrtNotify`
//! is a pointer into the runtime, and using one after `aclFinalize` would be a use-after-free
//! inside the vendor library. The library itself is never unloaded (see [`sys`]).
//!
//! # Threads
//! [`AscendBackend`] is `Send + Sync` (it holds only function pointers and a reference count).
//! [`AscendStream`] and [`AscendNotify`] are `Send + Sync` too: the runtime allows notify and
//! stream handles to be used from any thread once a device is set in that thread, and its calls
//! are thread-safe. What is *not* shared is the current device, which is per thread (R13): a
//! thread that uses a handle must first call [`notify_api::Backend::set_device`], and a stream
//! used under another device than its own fails with 107003.
//! [`notify_api::Stream::synchronize_async`] follows this rule itself: its helper thread sets the
//! stream's device before synchronizing.
//!
//! # A hazard this crate cannot check
//! In the real runtime, `aclrtResetDevice` releases the device's default context and the
//! streams created in it once the device's reference count (one per `aclrtSetDevice`) reaches
//! zero. Streams and notifies of a device must therefore be dropped before the last
//! [`notify_api::Backend::reset_device`] of that device; the simulator has no such release.
//!
//! # Example
//! ```no_run
//! use backend_ascend::AscendBackend;
//! use notify_api::{Backend, DeviceId, Notify, NotifyFlags, Stream};
//!
//! # fn main() -> notify_api::Result<()> {
//! let acl = AscendBackend::builder().build()?;
//! acl.set_device(DeviceId(0))?;
//! let stream = acl.create_stream()?;
//! let notify = acl.create_notify(NotifyFlags::DEFAULT)?;
//! notify.record(&stream)?;
//! notify.wait_and_reset(&stream, 5)?;
//! stream.synchronize()?;
//! # Ok(())
//! # }
//! ```

pub mod result;
pub mod sys;

mod backend;
mod notify;
mod stream;

pub use backend::{AscendBackend, AscendBuilder};
pub use notify::AscendNotify;
pub use stream::AscendStream;

#[cfg(test)]
mod tests {
    use super::*;
    use notify_api::AclError;
    use std::ffi::OsString;
    use std::path::{Path, PathBuf};
    use sys::AclLib;

    /// A fresh path under the temp directory, unique per process and call.
    fn temp_path(name: &str) -> PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        std::env::temp_dir().join(format!(
            "backend-ascend-test-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ))
    }

    fn fake_env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> + use<> {
        let vars: Vec<(String, OsString)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[track_caller]
    fn load_error(result: notify_api::Result<AclLib>) -> notify_api::Error {
        match result {
            Ok(lib) => panic!("expected a load error, loaded {lib:?}"),
            Err(e) => {
                assert_eq!(e.code(), AclError::UNINITIALIZE, "{e}");
                e
            }
        }
    }

    #[test]
    fn every_symbol_of_the_contract_is_resolved() {
        let expected = [
            "aclInit",
            "aclFinalize",
            "aclrtSetDevice",
            "aclrtResetDevice",
            "aclrtGetDevice",
            "aclrtGetDeviceCount",
            "aclrtCreateStream",
            "aclrtDestroyStream",
            "aclrtSynchronizeStream",
            "aclrtSynchronizeStreamWithTimeout",
            "aclrtDeviceCanAccessPeer",
            "aclrtDeviceEnablePeerAccess",
            "aclGetRecentErrMsg",
            "aclrtCreateNotify",
            "aclrtDestroyNotify",
            "aclrtRecordNotify",
            "aclrtWaitAndResetNotify",
            "aclrtGetNotifyId",
            "aclrtNotifyBatchReset",
            "aclrtNotifyGetExportKey",
            "aclrtNotifyImportByKey",
            "aclrtNotifySetImportPid",
            "aclrtDeviceGetBareTgid",
        ];
        assert_eq!(AclLib::SYMBOLS, expected);
    }

    #[test]
    fn missing_explicit_library_names_the_path() {
        let path = temp_path("no-such-libascendcl.so");
        let e = match AscendBackend::builder().library_path(&path).build() {
            Ok(_) => panic!("loaded a library that does not exist"),
            Err(e) => e,
        };
        assert_eq!(e.code(), AclError::UNINITIALIZE);
        assert!(e.reason().contains(&*path.to_string_lossy()), "{e}");
        assert!(e.reason().contains("AscendBuilder::library_path"), "{e}");
        assert!(e.reason().contains("no such file"), "{e}");
    }

    #[test]
    fn explicit_path_wins_over_the_environment() {
        let explicit = temp_path("explicit-libascendcl.so");
        let from_env = temp_path("env-libascendcl.so");
        let env = fake_env(&[(sys::LIBRARY_ENV, from_env.to_str().unwrap())]);
        let e = load_error(AclLib::load_with_env(Some(&explicit), env));
        assert!(e.reason().contains(&*explicit.to_string_lossy()), "{e}");
        assert!(!e.reason().contains(&*from_env.to_string_lossy()), "{e}");
    }

    #[test]
    fn missing_library_from_the_environment_names_the_variable_and_path() {
        let path = temp_path("env-libascendcl.so");
        let env = fake_env(&[
            (sys::LIBRARY_ENV, path.to_str().unwrap()),
            ("ASCEND_HOME_PATH", "/should/not/be/searched"),
        ]);
        let e = load_error(AclLib::load_with_env(None, env));
        assert!(e.reason().contains(&*path.to_string_lossy()), "{e}");
        assert!(e.reason().contains("$ASCEND_NOTIFY_ACL_LIB"), "{e}");
        assert!(!e.reason().contains("/should/not/be/searched"), "{e}");
    }

    #[test]
    fn convention_search_lists_every_place_in_order() {
        let home = temp_path("home");
        let toolkit = temp_path("toolkit");
        let ld1 = temp_path("ld1");
        let ld2 = temp_path("ld2");
        let ld = std::env::join_paths([&ld1, &ld2]).unwrap();
        let env = fake_env(&[
            (sys::LIBRARY_ENV, ""),
            ("ASCEND_HOME_PATH", home.to_str().unwrap()),
            ("ASCEND_TOOLKIT_HOME", toolkit.to_str().unwrap()),
            ("LD_LIBRARY_PATH", ld.to_str().unwrap()),
        ]);
        let e = load_error(AclLib::load_with_env(None, env));
        let reason = e.reason();
        let places = [
            home.join("lib64/libascendcl.so"),
            toolkit.join("lib64/libascendcl.so"),
            ld1.join("libascendcl.so"),
            ld2.join("libascendcl.so"),
        ];
        let mut last = 0;
        for place in &places {
            let at = reason
                .find(&*place.to_string_lossy())
                .unwrap_or_else(|| panic!("{} missing from {reason}", place.display()));
            assert!(at >= last, "out of order: {reason}");
            last = at;
        }
        // The default install is last; it may exist on a CANN machine, so only check it is named
        // when it was not loaded.
        if !Path::new(sys::DEFAULT_INSTALL_PATH).exists() {
            assert!(reason.contains(sys::DEFAULT_INSTALL_PATH), "{reason}");
        }
    }

    #[test]
    fn unset_variables_are_named() {
        if Path::new(sys::DEFAULT_INSTALL_PATH).exists() {
            return; // a CANN machine: the default install may load
        }
        let e = load_error(AclLib::load_with_env(None, fake_env(&[])));
        for var in [
            "$ASCEND_HOME_PATH",
            "$ASCEND_TOOLKIT_HOME",
            "$LD_LIBRARY_PATH",
        ] {
            assert!(e.reason().contains(&format!("{var} is not set")), "{e}");
        }
        assert!(e.reason().contains(sys::DEFAULT_INSTALL_PATH), "{e}");
    }

    #[test]
    fn a_file_that_is_not_a_library_is_an_error_not_a_panic() {
        let path = temp_path("libascendcl.so");
        std::fs::write(&path, "this is a text file, not a shared object\n").unwrap();
        let result = AscendBackend::builder().library_path(&path).build();
        std::fs::remove_file(&path).unwrap();
        let e = match result {
            Ok(_) => panic!("loaded a text file as a library"),
            Err(e) => e,
        };
        assert_eq!(e.code(), AclError::UNINITIALIZE);
        assert!(e.reason().contains(&*path.to_string_lossy()), "{e}");
        assert!(!e.reason().contains("no such file"), "{e}");
    }

    #[test]
    fn a_library_without_the_symbols_is_an_error_naming_the_symbol() {
        // Any shared object that is surely present and is not libascendcl: the C library.
        let Some(libc) = [
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/lib64/libc.so.6",
            "/lib/aarch64-linux-gnu/libc.so.6",
        ]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists()) else {
            return;
        };
        let e = load_error(AclLib::load(Some(libc)));
        assert!(e.reason().contains("symbol aclInit is missing"), "{e}");
        assert!(e.reason().contains(&*libc.to_string_lossy()), "{e}");
    }

    #[test]
    fn handles_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<AscendBackend>();
        assert_send_sync::<AscendStream>();
        assert_send_sync::<AscendNotify>();
        assert_send_sync::<AclLib>();
    }
}
