//! `sys`: the raw C surface of `libascendcl.so`, resolved at run time.
//!
//! This layer only names things: the C types and constants (re-exported from `acl-abi`), one
//! function pointer per symbol of the ABI manifest ([`AclLib`], generated from
//! [`acl_abi::for_each_function!`], so no prototype is written here a second time), and the
//! search that finds and loads the library. It checks nothing and interprets no code;
//! [`crate::result`] turns codes into `Result`s and owns the handles.
//!
//! # Finding the library
//! The first configured source decides, and only it is tried, so that a path the user named is
//! never silently replaced by another installation:
//! 1. the explicit path given to [`crate::AscendBuilder::library_path`];
//! 2. else `ASCEND_NOTIFY_ACL_LIB` ([`LIBRARY_ENV`]), when set and not empty;
//! 3. else the CANN conventions: the directories `$ASCEND_HOME_PATH/lib64`,
//!    `$ASCEND_TOOLKIT_HOME/lib64`, each directory of `LD_LIBRARY_PATH`, then
//!    [`DEFAULT_INSTALL_DIR`], and in each of them [`LIBRARY_NAMES`] in order:
//!    `libascendcl.so`, then `libacl_rt.so` (the name newer CANN recommends; same symbols). The
//!    first file that loads and has every symbol wins; a file that exists but cannot be used does
//!    not stop the search (an `LD_LIBRARY_PATH` may well list a directory of another
//!    architecture first, which the system loader would skip too), but it is what the error
//!    reports if nothing better is found.
//!
//! An explicit path without a directory part (`"libascendcl.so"`) is handed to the system loader
//! as is, which then applies its own search (`LD_LIBRARY_PATH`, `ld.so.cache`, ...).
//!
//! # Errors
//! Loading is not a runtime refusal (ash's `LoadingError`): every failure is
//! [`Error::Load`] with a [`LoadError`] that names the file, every place looked at and why each
//! was refused, and carries the loader's own error as `source`:
//! - `file: None` ([`LoadError::not_found`]) when no candidate file exists anywhere, the only
//!   case in which an automatic backend choice may move on to another backend;
//! - `file: Some(path)` when a file was found but `dlopen` failed or a symbol is missing (every
//!   missing symbol is named). A bare file name handed to the system loader counts as found: we
//!   cannot tell whether the loader found it, and a library the user named must not be silently
//!   replaced.
//!
//! Loading never panics.
//!
//! # Unloading
//! A loaded library is never unloaded (no `dlclose`), even when its last user is dropped or a
//! symbol turns out to be missing: the vendor runtime starts threads and registers thread-local
//! and exit-time destructors, and unmapping code those may still run would be undefined
//! behaviour. Loading the same file again is cheap: the system loader hands back the same
//! mapping.

use std::ffi::OsString;
use std::fmt;
use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use acl_abi::consts::*;
pub use acl_abi::types::*;
// The manifest spells its argument types with these names; they must be in scope where
// `for_each_function!` expands.
use std::ffi::{c_char, c_void};

use notify_api::{Error, LoadError, Result};

#[cfg(test)]
pub(crate) mod fake;

/// The file names of the runtime library, in the order each directory is searched:
/// `libascendcl.so`, then `libacl_rt.so` (the name newer CANN recommends, with the same symbols).
pub const LIBRARY_NAMES: [&str; 2] = ["libascendcl.so", "libacl_rt.so"];

/// The classic file name of the runtime library.
pub const LIBRARY_NAME: &str = LIBRARY_NAMES[0];

/// The environment variable that names the library file explicitly.
pub const LIBRARY_ENV: &str = "ASCEND_NOTIFY_ACL_LIB";

/// Where a default CANN toolkit installation puts the library.
pub const DEFAULT_INSTALL_DIR: &str = "/usr/local/Ascend/ascend-toolkit/latest/lib64";

/// Why one symbol could not be resolved.
type Missing = (&'static str, libloading::Error);

macro_rules! acl_lib {
    ($( $(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; )*) => {
        /// Every function of the ABI manifest (`acl_abi`), resolved from one loaded library.
        ///
        /// Each field is the symbol's address typed with its exact C prototype, as the manifest
        /// gives it. Calling one is `unsafe`: the pointers passed must satisfy the C contract.
        /// [`crate::result`] wraps each call the typed API uses with the checks, conversions and
        /// ownership that make it safe.
        ///
        /// An `AclLib` can only be made by loading a library ([`AclLib::load`]), so the pointers
        /// always come from a real library; and that library is never unloaded (module docs), so
        /// they stay valid for the life of the process.
        #[allow(non_snake_case)]
        pub struct AclLib {
            $( $(#[$meta])* pub $name: unsafe extern "C" fn($($arg: $ty),*) -> $ret, )*
            path: PathBuf,
        }

        impl AclLib {
            /// Resolves every symbol from `library`. On failure, every missing symbol with its
            /// loader error, in manifest order.
            #[allow(non_snake_case)]
            fn resolve(
                library: &libloading::Library,
                path: &Path,
            ) -> std::result::Result<Self, Vec<Missing>> {
                let mut missing: Vec<Missing> = Vec::new();
                $(
                    // SAFETY: the symbol is looked up by its C name and typed with its prototype
                    // from the ABI manifest (CANN's, checked against the official headers by
                    // acl-abi's tests), so calling it through this type matches the ABI the
                    // library was built with. The pointer is copied out of the `Symbol` guard: it
                    // stays valid because the library is never unloaded (module docs).
                    let $name = match unsafe {
                        library.get::<unsafe extern "C" fn($($ty),*) -> $ret>(stringify!($name))
                    } {
                        Ok(symbol) => Some(*symbol),
                        Err(e) => {
                            missing.push((stringify!($name), e));
                            None
                        }
                    };
                )*
                match ($($name,)*) {
                    ($(Some($name),)*) => Ok(Self { $($name,)* path: path.to_owned() }),
                    _ => Err(missing),
                }
            }
        }

        #[cfg(test)]
        mod unfaked {
            //! Stand-ins for every export, for tests that fake the runtime: each fails with
            //! `ACL_ERROR_RT_FEATURE_NOT_SUPPORT`, so a call a test did not fake is visible.
            #![allow(non_snake_case, unused_variables)]
            use super::*;

            pub(super) trait Unfaked {
                fn unfaked() -> Self;
            }
            impl Unfaked for aclError {
                fn unfaked() -> Self {
                    ACL_ERROR_RT_FEATURE_NOT_SUPPORT
                }
            }
            impl Unfaked for *const c_char {
                fn unfaked() -> Self {
                    std::ptr::null()
                }
            }
            $( pub(super) extern "C" fn $name($($arg: $ty),*) -> $ret { Unfaked::unfaked() } )*
        }

        #[cfg(test)]
        impl AclLib {
            /// A table whose every function fails (`unfaked`), for tests to override field by
            /// field with fakes. `path` is only a label.
            pub(crate) fn unfaked(path: &str) -> Self {
                Self { $($name: unfaked::$name,)* path: PathBuf::from(path) }
            }
        }
    };
}

acl_abi::for_each_function!(acl_lib);

impl AclLib {
    /// The names of every symbol this table resolves, in manifest order: the manifest's own list.
    pub const SYMBOLS: &'static [&'static str] = acl_abi::SYMBOLS;

    /// Finds and loads the runtime library: `explicit` if given, else `ASCEND_NOTIFY_ACL_LIB`,
    /// else the CANN locations (module docs).
    ///
    /// # Errors
    /// [`Error::Load`]: `file: None` when no candidate exists, `file: Some(_)` when one was found
    /// but could not be loaded or lacks a symbol; the message lists every place looked at.
    pub fn load(explicit: Option<&Path>) -> Result<Self> {
        Self::load_with_env(explicit, |name| std::env::var_os(name))
    }

    /// [`AclLib::load`] with the environment read through `env` (tests use a fake one, since
    /// changing the real environment of a multi-threaded test binary is unsound).
    pub(crate) fn load_with_env(
        explicit: Option<&Path>,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Self> {
        let (candidates, notes) = candidates(explicit, &env);
        let mut tried: Vec<(PathBuf, String)> = Vec::new();
        let mut places: Vec<String> = Vec::new();
        // The first file that exists but could not be used, with the loader's error.
        let mut found: Option<(PathBuf, Option<LoaderError>)> = None;
        for candidate in &candidates {
            let why = match try_open(&candidate.path, candidate.bare) {
                Ok(lib) => return Ok(lib),
                Err(Refusal::Absent) => "no such file".to_owned(),
                Err(Refusal::Unusable { why, source }) => {
                    found.get_or_insert((candidate.path.clone(), source));
                    why
                }
            };
            places.push(format!(
                "{} ({}): {why}",
                candidate.path.display(),
                candidate.source
            ));
            tried.push((candidate.path.clone(), why));
        }
        places.extend(notes);
        let looked = places.join("; ");
        let hint = format!("set {LIBRARY_ENV} or AscendBuilder::library_path to the library file");
        let (file, message, source) = match found {
            None => (
                None,
                format!(
                    "the Ascend runtime library ({}) was not found; looked at: {looked}. To use \
                     it, {hint}",
                    LIBRARY_NAMES.join(" or ")
                ),
                None,
            ),
            Some((file, source)) => (
                Some(file.clone()),
                format!(
                    "{} was found but could not be used; looked at: {looked}. Fix or remove it, \
                     or {hint}",
                    file.display()
                ),
                source,
            ),
        };
        Err(Error::load(LoadError {
            file,
            tried,
            message,
            source,
        }))
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

    let mut dirs: Vec<(PathBuf, String)> = Vec::new();
    let mut notes = Vec::new();
    for var in ["ASCEND_HOME_PATH", "ASCEND_TOOLKIT_HOME"] {
        match env(var).filter(|v| !v.is_empty()) {
            Some(home) => dirs.push((Path::new(&home).join("lib64"), format!("${var}/lib64"))),
            None => notes.push(format!("${var} is not set")),
        }
    }
    match env("LD_LIBRARY_PATH").filter(|v| !v.is_empty()) {
        Some(value) => {
            for dir in std::env::split_paths(&value).filter(|d| !d.as_os_str().is_empty()) {
                dirs.push((dir, "$LD_LIBRARY_PATH".into()));
            }
        }
        None => notes.push("$LD_LIBRARY_PATH is not set".into()),
    }
    dirs.push((
        PathBuf::from(DEFAULT_INSTALL_DIR),
        "default CANN install".into(),
    ));

    let mut out: Vec<Candidate> = Vec::new();
    for (dir, source) in dirs {
        for name in LIBRARY_NAMES {
            let path = dir.join(name);
            if !out.iter().any(|c| c.path == path) {
                out.push(Candidate {
                    path,
                    source: source.clone(),
                    bare: false,
                });
            }
        }
    }
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

/// The loader's own error, as [`LoadError::source`] keeps it.
type LoaderError = Arc<dyn std::error::Error + Send + Sync>;

/// Why one candidate was not used.
enum Refusal {
    /// There is no file at that path.
    Absent,
    /// There is one, but it does not load or lacks symbols.
    Unusable {
        why: String,
        source: Option<LoaderError>,
    },
}

/// Loads one file and resolves every symbol; the error says why not.
fn try_open(path: &Path, bare: bool) -> std::result::Result<AclLib, Refusal> {
    if !bare && !path.exists() {
        return Err(Refusal::Absent);
    }
    // SAFETY: loading a library runs its initialisers. The file is the one the user named
    // (builder or ASCEND_NOTIFY_ACL_LIB) or the CANN runtime at its documented location: code we
    // trust exactly as we would if we linked against it. A file that is not a shared object (a
    // text file, a library for another architecture) makes dlopen fail, which we report.
    let library = match unsafe { libloading::Library::new(path) } {
        Ok(library) => library,
        Err(e) => {
            return Err(Refusal::Unusable {
                why: format!("dlopen failed: {}", error_chain(&e)),
                source: Some(Arc::new(e)),
            });
        }
    };
    // Keep the library mapped whatever happens next (module docs: never unloaded).
    let library = ManuallyDrop::new(library);
    AclLib::resolve(&library, path).map_err(|missing| {
        let names: Vec<&str> = missing.iter().map(|(name, _)| *name).collect();
        let first = missing
            .first()
            .map(|(name, e)| format!("symbol {name} is missing: {}", error_chain(e)))
            .unwrap_or_default();
        let why = format!(
            "{} of the {} symbols of the ACL manifest are missing ({}); first: {first}",
            names.len(),
            AclLib::SYMBOLS.len(),
            names.join(", ")
        );
        // The first loader error is the source; the others say the same of another name.
        let source = missing
            .into_iter()
            .next()
            .map(|(_, e)| Arc::new(e) as LoaderError);
        Refusal::Unusable { why, source }
    })
}
