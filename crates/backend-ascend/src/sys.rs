//! `sys`: the raw C surface of `libascendcl.so`, resolved at run time.
//!
//! This layer only names things: the C types of `SEMANTICS.md` §1, one function pointer per
//! symbol with its exact prototype ([`AclLib`]), and the search that finds and loads the library.
//! It checks nothing and interprets no code; [`crate::result`] turns codes into `Result`s, and
//! the safe types at the crate root own the handles.
//!
//! # Finding the library
//! The first configured source decides, and only it is tried, so that a path the user named is
//! never silently replaced by another installation:
//! 1. the explicit path given to [`crate::AscendBuilder::library_path`];
//! 2. else `ASCEND_NOTIFY_ACL_LIB` ([`LIBRARY_ENV`]), when set and not empty;
//! 3. else the CANN conventions, in this order, the first file that loads and has every symbol
//!    winning: `$ASCEND_HOME_PATH/lib64/libascendcl.so`, `$ASCEND_TOOLKIT_HOME/lib64/libascendcl.so`,
//!    `<dir>/libascendcl.so` for each directory of `LD_LIBRARY_PATH`, then
//!    [`DEFAULT_INSTALL_PATH`].
//!
//! An explicit path without a directory part (`"libascendcl.so"`) is handed to the system loader
//! as is, which then applies its own search (`LD_LIBRARY_PATH`, `ld.so.cache`, ...).
//!
//! # Errors
//! A library that cannot be found or loaded, or that lacks a symbol of §1, is an [`Error`] with
//! code `ACL_ERROR_UNINITIALIZE` (100001), this crate's choice: the C API has no code for "no
//! runtime at all", and 100001 is what every ACL call reports when the runtime is not
//! initialized, which is the state such a process is in. The reason names every place looked at
//! and why each was refused. Loading never panics.
//!
//! # Unloading
//! A loaded library is never unloaded (no `dlclose`), even when its last user is dropped or a
//! symbol turns out to be missing: the vendor runtime starts threads and registers thread-local
//! and exit-time destructors, and unmapping code those may still run would be undefined
//! behaviour. Loading the same file again is cheap: the system loader hands back the same
//! mapping.

#![allow(non_camel_case_types)]

use std::ffi::{OsString, c_char, c_void};
use std::fmt;
use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};

use notify_api::{AclError, Error, Result};

/// `typedef int aclError;` — `0` ([`ACL_SUCCESS`]) is success.
pub type aclError = i32;
/// `typedef void *aclrtNotify;` — an opaque notify handle.
pub type aclrtNotify = *mut c_void;
/// `typedef void *aclrtStream;` — an opaque stream handle; NULL is the current context's
/// default stream.
pub type aclrtStream = *mut c_void;

/// `ACL_SUCCESS`.
pub const ACL_SUCCESS: aclError = 0;

/// The file name of the runtime library.
pub const LIBRARY_NAME: &str = "libascendcl.so";

/// The environment variable that names the library file explicitly.
pub const LIBRARY_ENV: &str = "ASCEND_NOTIFY_ACL_LIB";

/// Where a default CANN toolkit installation puts the library.
pub const DEFAULT_INSTALL_PATH: &str =
    "/usr/local/Ascend/ascend-toolkit/latest/lib64/libascendcl.so";

macro_rules! acl_lib {
    ($( $(#[$doc:meta])* $name:ident: fn($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty; )*) => {
        /// Every symbol of `SEMANTICS.md` §1, resolved from one loaded `libascendcl.so`.
        ///
        /// Each field is the symbol's address typed with its exact C prototype. Calling one is
        /// `unsafe`: the pointers passed must satisfy the C contract. [`crate::result`] wraps
        /// each call with the checks and conversions that make it safe where that is possible.
        ///
        /// An `AclLib` can only be made by loading a library ([`AclLib::load`]), so the pointers
        /// always come from a real library; and that library is never unloaded (see the module
        /// docs), so they stay valid for the life of the process.
        #[allow(non_snake_case)]
        pub struct AclLib {
            $( $(#[$doc])* pub $name: unsafe extern "C" fn($($ty),*) -> $ret, )*
            path: PathBuf,
            _library: ManuallyDrop<libloading::Library>,
        }

        impl AclLib {
            /// The names of every symbol this struct resolves, in declaration order.
            pub const SYMBOLS: &'static [&'static str] = &[$(stringify!($name)),*];

            /// Resolves every symbol from `library` and takes the library in; the first missing
            /// symbol is the error (and the library stays mapped: module docs).
            #[allow(non_snake_case)]
            fn resolve(
                library: ManuallyDrop<libloading::Library>,
                path: &Path,
            ) -> std::result::Result<Self, String> {
                $(
                    // SAFETY: the symbol is looked up by its C name and typed with the exact
                    // prototype of SEMANTICS.md §1 (the CANN header's), so calling it through
                    // this type matches the ABI the library was built with. The pointer is
                    // copied out of the `Symbol` guard: it stays valid because the library is
                    // never unloaded (module docs).
                    let $name = match unsafe {
                        library.get::<unsafe extern "C" fn($($ty),*) -> $ret>(stringify!($name))
                    } {
                        Ok(symbol) => *symbol,
                        Err(e) => {
                            return Err(format!(
                                "symbol {} is missing: {}",
                                stringify!($name),
                                error_chain(&e)
                            ))
                        }
                    };
                )*
                Ok(Self {
                    $($name,)*
                    path: path.to_owned(),
                    _library: library,
                })
            }
        }
    };
}

acl_lib! {
    /// `aclError aclInit(const char *configPath);` — `NULL` allowed.
    aclInit: fn(configPath: *const c_char) -> aclError;
    /// `aclError aclFinalize(void);`
    aclFinalize: fn() -> aclError;
    /// `aclError aclrtSetDevice(int32_t deviceId);`
    aclrtSetDevice: fn(deviceId: i32) -> aclError;
    /// `aclError aclrtResetDevice(int32_t deviceId);`
    aclrtResetDevice: fn(deviceId: i32) -> aclError;
    /// `aclError aclrtGetDevice(int32_t *deviceId);`
    aclrtGetDevice: fn(deviceId: *mut i32) -> aclError;
    /// `aclError aclrtGetDeviceCount(uint32_t *count);`
    aclrtGetDeviceCount: fn(count: *mut u32) -> aclError;
    /// `aclError aclrtCreateStream(aclrtStream *stream);`
    aclrtCreateStream: fn(stream: *mut aclrtStream) -> aclError;
    /// `aclError aclrtDestroyStream(aclrtStream stream);`
    aclrtDestroyStream: fn(stream: aclrtStream) -> aclError;
    /// `aclError aclrtSynchronizeStream(aclrtStream stream);`
    aclrtSynchronizeStream: fn(stream: aclrtStream) -> aclError;
    /// `aclError aclrtSynchronizeStreamWithTimeout(aclrtStream stream, int32_t timeout);` —
    /// milliseconds, `-1` = forever.
    aclrtSynchronizeStreamWithTimeout: fn(stream: aclrtStream, timeout: i32) -> aclError;
    /// `aclError aclrtDeviceCanAccessPeer(int32_t *canAccessPeer, int32_t deviceId, int32_t peerDeviceId);`
    aclrtDeviceCanAccessPeer: fn(canAccessPeer: *mut i32, deviceId: i32, peerDeviceId: i32) -> aclError;
    /// `aclError aclrtDeviceEnablePeerAccess(int32_t peerDeviceId, uint32_t flags);` — flags
    /// must be 0.
    aclrtDeviceEnablePeerAccess: fn(peerDeviceId: i32, flags: u32) -> aclError;
    /// `const char *aclGetRecentErrMsg(void);` — this thread's last error text, or `NULL`.
    aclGetRecentErrMsg: fn() -> *const c_char;
    /// `aclError aclrtCreateNotify(aclrtNotify *notify, uint64_t flag);`
    aclrtCreateNotify: fn(notify: *mut aclrtNotify, flag: u64) -> aclError;
    /// `aclError aclrtDestroyNotify(aclrtNotify notify);`
    aclrtDestroyNotify: fn(notify: aclrtNotify) -> aclError;
    /// `aclError aclrtRecordNotify(aclrtNotify notify, aclrtStream stream);`
    aclrtRecordNotify: fn(notify: aclrtNotify, stream: aclrtStream) -> aclError;
    /// `aclError aclrtWaitAndResetNotify(aclrtNotify notify, aclrtStream stream, uint32_t timeout);`
    /// — seconds, `0` = forever.
    aclrtWaitAndResetNotify: fn(notify: aclrtNotify, stream: aclrtStream, timeout: u32) -> aclError;
    /// `aclError aclrtGetNotifyId(aclrtNotify notify, uint32_t *notifyId);`
    aclrtGetNotifyId: fn(notify: aclrtNotify, notifyId: *mut u32) -> aclError;
    /// `aclError aclrtNotifyBatchReset(aclrtNotify *notifies, size_t num);`
    aclrtNotifyBatchReset: fn(notifies: *mut aclrtNotify, num: usize) -> aclError;
    /// `aclError aclrtNotifyGetExportKey(aclrtNotify notify, char *key, size_t len, uint64_t flags);`
    aclrtNotifyGetExportKey: fn(notify: aclrtNotify, key: *mut c_char, len: usize, flags: u64) -> aclError;
    /// `aclError aclrtNotifyImportByKey(aclrtNotify *notify, const char *key, uint64_t flags);`
    aclrtNotifyImportByKey: fn(notify: *mut aclrtNotify, key: *const c_char, flags: u64) -> aclError;
    /// `aclError aclrtNotifySetImportPid(aclrtNotify notify, int32_t *pid, size_t num);`
    aclrtNotifySetImportPid: fn(notify: aclrtNotify, pid: *mut i32, num: usize) -> aclError;
    /// `aclError aclrtDeviceGetBareTgid(int32_t *pid);`
    aclrtDeviceGetBareTgid: fn(pid: *mut i32) -> aclError;
}

impl AclLib {
    /// Finds and loads `libascendcl.so`: `explicit` if given, else `ASCEND_NOTIFY_ACL_LIB`, else
    /// the CANN locations (module docs).
    ///
    /// # Errors
    /// `ACL_ERROR_UNINITIALIZE` (100001) when no candidate loads with every symbol; the reason
    /// lists each place looked at and what was wrong there.
    pub fn load(explicit: Option<&Path>) -> Result<Self> {
        Self::load_with_env(explicit, |name| std::env::var_os(name))
    }

    /// [`AclLib::load`] with the environment read through `env` (tests use a fake one, since
    /// changing the real environment of a multi-threaded test binary is unsound).
    pub(crate) fn load_with_env(
        explicit: Option<&Path>,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Self> {
        let (candidates, mut notes) = candidates(explicit, &env);
        for candidate in &candidates {
            match try_open(&candidate.path, candidate.bare) {
                Ok(lib) => return Ok(lib),
                Err(why) => notes.push(format!(
                    "{} ({}): {why}",
                    candidate.path.display(),
                    candidate.source
                )),
            }
        }
        Err(Error::new(
            AclError::UNINITIALIZE,
            format!(
                "{LIBRARY_NAME} could not be loaded (this crate reports a missing runtime as \
                 ACL_ERROR_UNINITIALIZE); looked at: {}. Set {LIBRARY_ENV} or \
                 AscendBuilder::library_path to the library file",
                notes.join("; ")
            ),
        ))
    }

    /// The file this library was loaded from (as given to the loader).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Debug for AclLib {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AclLib")
            .field("path", &self.path)
            .field("symbols", &Self::SYMBOLS.len())
            .finish_non_exhaustive()
    }
}

/// One place to try.
struct Candidate {
    path: PathBuf,
    /// Where the path came from, for the error text.
    source: String,
    /// A bare file name for the system loader's own search: no existence check here.
    bare: bool,
}

/// The places to try, in order, and notes on sources that gave none (an unset variable).
fn candidates(
    explicit: Option<&Path>,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> (Vec<Candidate>, Vec<String>) {
    let bare = |p: &Path| p.parent().is_none_or(|d| d.as_os_str().is_empty());
    if let Some(path) = explicit {
        let candidate = Candidate {
            path: path.to_owned(),
            source: "AscendBuilder::library_path".into(),
            bare: bare(path),
        };
        return (vec![candidate], Vec::new());
    }
    if let Some(value) = env(LIBRARY_ENV).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(value);
        let candidate = Candidate {
            bare: bare(&path),
            path,
            source: format!("${LIBRARY_ENV}"),
        };
        return (vec![candidate], Vec::new());
    }

    let mut out: Vec<Candidate> = Vec::new();
    let mut notes = Vec::new();
    let mut push = |path: PathBuf, source: String| {
        if !out.iter().any(|c| c.path == path) {
            out.push(Candidate {
                path,
                source,
                bare: false,
            });
        }
    };
    for var in ["ASCEND_HOME_PATH", "ASCEND_TOOLKIT_HOME"] {
        match env(var).filter(|v| !v.is_empty()) {
            Some(home) => push(
                Path::new(&home).join("lib64").join(LIBRARY_NAME),
                format!("${var}/lib64"),
            ),
            None => notes.push(format!("${var} is not set")),
        }
    }
    match env("LD_LIBRARY_PATH").filter(|v| !v.is_empty()) {
        Some(dirs) => {
            for dir in std::env::split_paths(&dirs).filter(|d| !d.as_os_str().is_empty()) {
                push(dir.join(LIBRARY_NAME), "$LD_LIBRARY_PATH".into());
            }
        }
        None => notes.push("$LD_LIBRARY_PATH is not set".into()),
    }
    push(
        PathBuf::from(DEFAULT_INSTALL_PATH),
        "default CANN install".into(),
    );
    (out, notes)
}

/// An error and its sources: libloading keeps the `dlerror` text in the source.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Loads one file and resolves every symbol; the error says why not.
fn try_open(path: &Path, bare: bool) -> std::result::Result<AclLib, String> {
    if !bare && !path.exists() {
        return Err("no such file".into());
    }
    // SAFETY: loading a library runs its initialisers. The file is the one the user named
    // (builder or ASCEND_NOTIFY_ACL_LIB) or the CANN runtime at its documented location: code we
    // trust exactly as we would if we linked against it. A file that is not a shared object (a
    // text file, a library for another architecture) makes dlopen fail, which we report.
    let library = unsafe { libloading::Library::new(path) }.map_err(|e| error_chain(&e))?;
    // Keep the library mapped whatever happens next (module docs: never unloaded).
    AclLib::resolve(ManuallyDrop::new(library), path)
}
