//! The Ascend IPC Notify API over the vendor runtime, `libascendcl.so`, loaded at run time.
//!
//! There is no link-time dependency: this crate builds on any machine, with or without CANN,
//! and finds the library when a runtime is built ([`sys`] documents the search). On a machine
//! without an NPU, the `ascendcl-sim` crate builds a `libascendcl.so` with the same symbols over
//! the simulator, and this crate loads it like the real one.
//!
//! # Layers
//! As in cudarc, three layers, each with one job:
//! - [`sys`]: the function table [`sys::AclLib`], generated from the ABI manifest of `acl-abi`
//!   (every prototype once, there), and the library search. Nothing is checked or interpreted.
//! - [`result`]: one Rust function per C call this crate uses. It does the pointer work of that
//!   call and maps the code to [`notify_api::Result`], taking the reason text from
//!   `aclGetRecentErrMsg`. Handle-taking calls take owners ([`result::Stream`],
//!   [`result::Notify`], [`result::Event`], [`result::DeviceMemory`], [`result::MemImport`],
//!   [`result::MemExport`], [`result::Retain`], [`result::Session`]) whose existence proves the
//!   handle is live, so they are safe; all of this crate's `unsafe` is in `sys` and `result`.
//! - the typed API, at the crate root: the marker [`Ascend`] and [`AscendRuntime`],
//!   [`AscendDevice`], [`AscendStream`], [`AscendNotify`], [`AscendEvent`], [`AscendBuffer`],
//!   [`AscendMemExport`], [`AscendMemImport`], which implement the traits of `notify-api`.
//!   Their behaviour is the contract documented on those traits ([`notify_api::Runtime`],
//!   [`notify_api::Device`], [`notify_api::Stream`], [`notify_api::Notify`],
//!   [`notify_api::Event`], [`notify_api::Buffer`], [`notify_api::MemExport`],
//!   [`notify_api::MemImport`]); this backend passes flags as their raw CANN bits and lets the
//!   runtime check them (R15). The one rule it adds is for soundness: a device range is checked
//!   against the memory this backend handed out before the runtime sees its address (below).
//!
//! # Device memory
//! A [`notify_api::DeviceRange`] is a plain value that anyone can build, so the backend does
//! not trust it: each [`result::Session`] keeps a registry of the live allocations and imports
//! it made (start → length, imported, device), and every copy, set and export first checks
//! that its ranges lie inside one of them, refusing anything else with `RT_PARAM_INVALID`
//! (107000, M2) before the runtime is called; imported memory is refused where M5 forbids it.
//! Host slices of synchronous copies are borrowed for the call (and a download's length is
//! checked against the slice). An asynchronous host-to-device copy keeps its bytes until a host
//! function enqueued after it drops them; a download's buffer is sent to its
//! [`notify_api::Download`] by a host function after the copy; when that host function cannot
//! be enqueued, the bytes are leaked rather than freed under the pending copy. Freeing a
//! buffer (or closing an import) withdraws its range, then synchronizes every device whose
//! streams were given a task on it, then calls `aclrtFree` (M6).
//!
//! The C API does not tell an importer how long imported memory is: the exporter sends the
//! length with the key, and [`notify_api::Device::import_memory`] takes it.
//!
//! # Host functions
//! [`notify_api::Stream::launch_host_fn`] boxes the closure and passes it as `args` to one
//! `extern "C"` trampoline, which takes ownership back and runs it under `catch_unwind`: a panic
//! never unwinds into the runtime, and fails the stream's next synchronize with 507000 (H1).
//!
//! # The device is a value
//! [`notify_api::Runtime::device`] calls `aclrtSetDevice(id)` once (one retain), reads the
//! thread's context (`aclrtGetCurrentContext`: the device's default context, C1) and keeps both.
//! While that device value, a clone or any handle made from it lives, `rt.device(id)` returns the
//! same value (one retain per live device); when the last is gone, `aclrtResetDevice(id)`
//! releases it. Streams, notifies, events and memory hold their device, so nothing safe can
//! release a device, or finalize the runtime, under a live handle.
//! [`notify_api::Device::create_context`] makes another device value for a context of its own
//! (`aclrtCreateContext`), which holds the device's retain and is destroyed
//! (`aclrtDestroyContext`) when it and every handle made from it are gone.
//!
//! Every operation binds its device to the calling thread first: a thread-local holds the unique
//! id of the device retain bound last, and `aclrtSetCurrentContext` is called only when it
//! differs (the id, not the context pointer, because the runtime may reuse a pointer after a
//! reset). So any handle works from any thread with no set-up call, and the per-thread calls of
//! the C API (`aclrtSetDevice`, `aclrtResetDevice`, `aclrtGetDevice`, `aclrtSetCurrentContext`)
//! stay in [`result`], at the C level. Code that changes a thread's context behind this crate's
//! back (its own C calls) can rebind with [`AscendDevice::bind_to_thread`].
//!
//! # Initialization and lifetime
//! [`AscendBuilder::build`] loads the library and calls `aclInit(NULL)`. If the runtime was
//! already initialized by another part of the process (`ACL_ERROR_REPEAT_INITIALIZE`, 100002),
//! that is accepted and `aclFinalize` is left to whoever initialized it. Building a second
//! runtime from the same library joins the first one's initialization. `aclFinalize` runs when
//! the last runtime clone, device, stream and notify of that initialization is dropped. The
//! library itself is never unloaded (see [`sys`]).
//!
//! # Threads
//! Every public handle type is `Send + Sync` (checked at compile time below): the runtime's
//! calls are thread-safe, and the only per-thread state, the current context, is bound by each
//! call. [`notify_api::Stream::synchronize_async`] runs the blocking synchronize on a helper
//! thread, which binds the stream's device itself.
//!
//! # Example
//! ```no_run
//! use backend_ascend::AscendRuntime;
//! use notify_api::prelude::*;
//! use notify_api::{DeviceId, NotifyFlags, Timeout};
//!
//! # fn main() -> notify_api::Result<()> {
//! let rt = AscendRuntime::builder().build()?;
//! let device = rt.device(DeviceId(0))?;
//! let stream = device.create_stream()?;
//! let notify = device.create_notify(NotifyFlags::DEFAULT)?;
//! stream.record(&notify)?;
//! stream.wait(&notify, Timeout::secs(5))?;
//! std::thread::spawn(move || stream.synchronize()) // no set-up on this thread
//!     .join()
//!     .expect("synchronize thread")?;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod result;
pub mod sys;

mod device;
mod event;
mod memory;
mod notify;
mod runtime;
mod stream;

#[cfg(test)]
mod memory_tests;
#[cfg(test)]
mod typed_tests;

pub use device::AscendDevice;
pub use event::AscendEvent;
pub use memory::{AscendBuffer, AscendMemExport, AscendMemImport};
pub use notify::AscendNotify;
pub use runtime::{Ascend, AscendBuilder, AscendRuntime};
pub use stream::AscendStream;

// Every public handle type may be moved to and shared with other threads (the traits require
// it; this says so where a missing impl would be found first).
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Ascend>();
    send_sync::<AscendBuilder>();
    send_sync::<AscendRuntime>();
    send_sync::<AscendDevice>();
    send_sync::<AscendStream>();
    send_sync::<AscendNotify>();
    send_sync::<AscendBuffer>();
    send_sync::<AscendMemExport>();
    send_sync::<AscendMemImport>();
    send_sync::<AscendEvent>();
    send_sync::<sys::AclLib>();
    send_sync::<result::Session>();
    send_sync::<result::Retain>();
    send_sync::<result::Stream>();
    send_sync::<result::Notify>();
    send_sync::<result::Event>();
    send_sync::<result::DeviceMemory>();
    send_sync::<result::MemExport>();
    send_sync::<result::MemImport>();
};

#[cfg(test)]
mod tests {
    use super::*;
    use notify_api::{AclError, Error, LoadError};
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

    /// The load error of `result`, checked to be `Error::Load` (never an ACL code in disguise).
    #[track_caller]
    fn load_error<T: std::fmt::Debug>(result: notify_api::Result<T>) -> LoadError {
        match result {
            Ok(lib) => panic!("expected a load error, loaded {lib:?}"),
            Err(Error::Load(load)) => {
                assert!(!load.message.is_empty());
                *load
            }
            Err(other) => panic!("expected Error::Load, got {other:?}"),
        }
    }

    /// Whether the default CANN install holds a library (then the search may succeed).
    fn cann_installed() -> bool {
        sys::LIBRARY_NAMES
            .iter()
            .any(|name| Path::new(sys::DEFAULT_INSTALL_DIR).join(name).exists())
    }

    #[test]
    fn the_table_is_the_manifest() {
        assert_eq!(AclLib::SYMBOLS, acl_abi::SYMBOLS);
        assert_eq!(AclLib::SYMBOLS.len(), 55);
        for name in [
            "aclInit",
            "aclrtSetDevice",
            "aclrtGetCurrentContext",
            "aclrtSetCurrentContext",
            "aclrtNotifySetImportPid",
            "aclGetRecentErrMsg",
        ] {
            assert!(AclLib::SYMBOLS.contains(&name), "{name}");
        }
    }

    #[test]
    fn missing_explicit_library_names_the_path() {
        let path = temp_path("no-such-libascendcl.so");
        let e = match AscendRuntime::builder().library_path(&path).build() {
            Ok(_) => panic!("loaded a library that does not exist"),
            Err(e) => e,
        };
        // Loading never reached the runtime; the C layer reports it as "no runtime".
        assert_eq!(e.code(), AclError::UNINITIALIZE);
        let load = load_error::<()>(Err(e));
        assert!(load.not_found(), "{load:?}");
        assert_eq!(load.tried, [(path.clone(), "no such file".to_owned())]);
        assert!(load.message.contains(&*path.to_string_lossy()), "{load:?}");
        assert!(load.message.contains("AscendBuilder::library_path"));
        assert!(load.message.contains("no such file"), "{load:?}");
        assert!(load.source.is_none());
    }

    #[test]
    fn explicit_path_wins_over_the_environment() {
        let explicit = temp_path("explicit-libascendcl.so");
        let from_env = temp_path("env-libascendcl.so");
        let env = fake_env(&[(sys::LIBRARY_ENV, from_env.to_str().unwrap())]);
        let load = load_error(AclLib::load_with_env(Some(&explicit), env));
        assert!(load.message.contains(&*explicit.to_string_lossy()));
        assert!(!load.message.contains(&*from_env.to_string_lossy()));
        assert_eq!(load.tried.len(), 1);
    }

    #[test]
    fn missing_library_from_the_environment_names_the_variable_and_path() {
        let path = temp_path("env-libascendcl.so");
        let env = fake_env(&[
            (sys::LIBRARY_ENV, path.to_str().unwrap()),
            ("ASCEND_HOME_PATH", "/should/not/be/searched"),
        ]);
        let load = load_error(AclLib::load_with_env(None, env));
        assert!(load.not_found());
        assert!(load.message.contains(&*path.to_string_lossy()));
        assert!(load.message.contains("$ASCEND_NOTIFY_ACL_LIB"));
        assert!(!load.message.contains("/should/not/be/searched"));
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
        if cann_installed() {
            return; // a CANN machine: the default install may load
        }
        let load = load_error(AclLib::load_with_env(None, env));
        assert!(load.not_found(), "{load:?}");
        // In each directory, the classic name first, then the one newer CANN recommends.
        let mut places = Vec::new();
        for dir in [
            home.join("lib64"),
            toolkit.join("lib64"),
            ld1,
            ld2,
            PathBuf::from(sys::DEFAULT_INSTALL_DIR),
        ] {
            places.push(dir.join("libascendcl.so"));
            places.push(dir.join("libacl_rt.so"));
        }
        let tried: Vec<&PathBuf> = load.tried.iter().map(|(path, _)| path).collect();
        assert_eq!(tried, places.iter().collect::<Vec<_>>());
        let mut last = 0;
        for place in &places {
            let at = load
                .message
                .find(&*place.to_string_lossy())
                .unwrap_or_else(|| panic!("{} missing from {}", place.display(), load.message));
            assert!(at >= last, "out of order: {}", load.message);
            last = at;
        }
    }

    #[test]
    fn unset_variables_are_named() {
        if cann_installed() {
            return; // a CANN machine: the default install may load
        }
        let load = load_error(AclLib::load_with_env(None, fake_env(&[])));
        assert!(load.not_found());
        for var in [
            "$ASCEND_HOME_PATH",
            "$ASCEND_TOOLKIT_HOME",
            "$LD_LIBRARY_PATH",
        ] {
            assert!(
                load.message.contains(&format!("{var} is not set")),
                "{}",
                load.message
            );
        }
        assert!(load.message.contains(sys::DEFAULT_INSTALL_DIR));
    }

    #[test]
    fn the_newer_library_name_is_found_in_a_directory() {
        if cann_installed() {
            return;
        }
        // A directory with only `libacl_rt.so`: it is found (and here fails to load).
        let dir = temp_path("acl-rt-dir");
        std::fs::create_dir(&dir).unwrap();
        let file = dir.join("libacl_rt.so");
        std::fs::write(&file, "not a shared object\n").unwrap();
        let env = fake_env(&[("LD_LIBRARY_PATH", dir.to_str().unwrap())]);
        let result = AclLib::load_with_env(None, env);
        std::fs::remove_file(&file).unwrap();
        std::fs::remove_dir(&dir).unwrap();
        let load = load_error(result);
        assert_eq!(load.file.as_deref(), Some(file.as_path()), "{load:?}");
        assert!(!load.not_found());
    }

    #[test]
    fn a_file_that_is_not_a_library_is_found_but_unusable() {
        let path = temp_path("libascendcl.so");
        std::fs::write(&path, "this is a text file, not a shared object\n").unwrap();
        let result = AscendRuntime::builder().library_path(&path).build();
        std::fs::remove_file(&path).unwrap();
        let load = load_error(result);
        // Found: an automatic backend choice must not move on to another backend.
        assert_eq!(load.file.as_deref(), Some(path.as_path()));
        assert!(!load.not_found());
        assert!(load.message.contains(&*path.to_string_lossy()), "{load:?}");
        assert!(load.message.contains("dlopen failed"), "{load:?}");
        assert!(!load.message.contains("no such file"), "{load:?}");
        // The loader's own error is kept, and is what `source()` gives.
        assert!(load.source.is_some());
        use std::error::Error as _;
        assert!(Error::load(load).source().is_some());
    }

    #[test]
    fn a_library_without_the_symbols_names_every_missing_symbol() {
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
        let load = load_error(AclLib::load(Some(libc)));
        assert_eq!(load.file.as_deref(), Some(libc));
        assert!(load.message.contains(&*libc.to_string_lossy()), "{load:?}");
        let (_, why) = &load.tried[0];
        assert!(why.contains("55 of the 55 symbols"), "{why}");
        assert!(why.contains("symbol aclrtCreateNotify is missing"), "{why}");
        for name in AclLib::SYMBOLS {
            assert!(why.contains(name), "{name} not named in {why}");
        }
        assert!(load.source.is_some());
    }

    #[test]
    fn a_broken_file_does_not_stop_the_search_but_is_what_is_reported() {
        if cann_installed() {
            return;
        }
        let broken = temp_path("broken");
        let empty = temp_path("empty");
        std::fs::create_dir(&broken).unwrap();
        let file = broken.join("libascendcl.so");
        std::fs::write(&file, "not a shared object\n").unwrap();
        let ld = std::env::join_paths([&broken, &empty]).unwrap();
        let result =
            AclLib::load_with_env(None, fake_env(&[("LD_LIBRARY_PATH", ld.to_str().unwrap())]));
        std::fs::remove_file(&file).unwrap();
        std::fs::remove_dir(&broken).unwrap();
        let load = load_error(result);
        assert_eq!(load.file.as_deref(), Some(file.as_path()));
        // Every later place was still looked at.
        assert!(
            load.tried
                .iter()
                .any(|(p, _)| p == &empty.join("libacl_rt.so"))
        );
        assert!(
            load.tried
                .iter()
                .any(|(p, _)| p.starts_with(sys::DEFAULT_INSTALL_DIR))
        );
    }
}
