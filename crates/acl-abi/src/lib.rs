//! The one description of the ACL C surface this project uses (`SEMANTICS.md` §1, §2, §5, §6):
//! the typedefs, constants and function prototypes of `libascendcl.so`, with their official CANN
//! names, types and values.
//!
//! Everything else is derived from it rather than written again:
//! - [`for_each_function!`] hands the prototypes to a callback macro, from which
//!   `backend-ascend` builds its `dlopen` function table and `ascendcl-sim` checks the
//!   signatures of its exports;
//! - [`SYMBOLS`] and [`FUNCTIONS`] list the functions for symbol tests;
//! - [`types`] and [`consts`] are the C names in Rust;
//! - [`header`] renders the C headers in the official CANN layout (`acl/acl.h`, ...), checked in
//!   at `crates/ascendcl-sim/include/` and compared with this crate by its tests.
//!
//! **Adding a symbol** is one edit: its prototype in `src/manifest.rs` (or a constant in
//! `src/consts.rs`), then `ACL_ABI_BLESS=1 cargo test -p acl-abi --test headers` to regenerate
//! the checked-in headers.
//!
//! The crate has no dependencies, no `unsafe` and no OS calls: it is data.

#![forbid(unsafe_code)]

pub mod consts;
pub mod header;
mod manifest;
pub mod types;

/// One function of the surface, as the header renderer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Function {
    /// The C symbol name.
    pub name: &'static str,
    /// The header that declares it, relative to the include directory.
    pub header: &'static str,
    /// What it does, in one line.
    pub doc: &'static str,
    /// The arguments as `(name, Rust type)`, in order.
    pub args: &'static [(&'static str, &'static str)],
    /// The Rust return type.
    pub ret: &'static str,
}

impl Function {
    /// The C prototype, without `ACL_FUNC_VISIBILITY` and `;`, e.g.
    /// `aclError aclrtCreateNotify(aclrtNotify *notify, uint64_t flag)`.
    ///
    /// # Panics
    /// On a Rust type that [`header`] cannot spell in C.
    pub fn prototype(&self) -> String {
        header::prototype(self)
    }
}

macro_rules! symbols {
    ($( $(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; )*) => {
        &[$(stringify!($name)),*]
    };
}

/// Every function name of the surface, in manifest order.
pub const SYMBOLS: &[&str] = for_each_function!(symbols);

macro_rules! function_table {
    ($( #[doc = $doc:literal] fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; )*) => {
        &[$(
            Function {
                name: stringify!($name),
                header: header::ACL_RT_H,
                doc: $doc,
                args: &[$((stringify!($arg), stringify!($ty))),*],
                ret: stringify!($ret),
            },
        )*]
    };
}

/// Every function of the surface, in manifest order. All are declared in `acl/acl_rt.h`, as in
/// CANN 1.17 (which moved `aclInit` and friends there from `acl.h`).
pub const FUNCTIONS: &[Function] = for_each_function!(function_table);

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::ffi::{c_char, c_void};

    use super::*;
    use crate::consts::{CONSTANTS, Kind};
    use crate::types::*;

    /// What a stand-in export returns.
    trait Zero {
        fn zero() -> Self;
    }
    impl Zero for aclError {
        fn zero() -> Self {
            0
        }
    }
    impl Zero for *const c_char {
        fn zero() -> Self {
            std::ptr::null()
        }
    }

    /// Stand-ins for a library's exports, as `ascendcl-sim` defines them.
    mod exports {
        use super::*;

        macro_rules! stubs {
            ($( $(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; )*) => {
                $(
                    #[allow(non_snake_case, unused_variables)]
                    pub extern "C" fn $name($($arg: $ty),*) -> $ret {
                        Zero::zero()
                    }
                )*
            };
        }
        for_each_function!(stubs);
    }

    // The loader's shape: a struct with one typed function pointer per symbol.
    macro_rules! fn_table {
        ($( $(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; )*) => {
            #[allow(non_snake_case)]
            struct AclLib {
                $( $(#[$meta])* $name: unsafe extern "C" fn($($arg: $ty),*) -> $ret, )*
            }

            fn from_exports() -> AclLib {
                AclLib { $( $name: exports::$name, )* }
            }

            fn names_in_table(lib: &AclLib) -> Vec<&'static str> {
                let mut names = Vec::new();
                $( let _ = lib.$name; names.push(stringify!($name)); )*
                names
            }
        };
    }
    for_each_function!(fn_table);

    // The exporter's shape: a signature check per symbol, a compile error on any drift.
    macro_rules! check_exports {
        ($( $(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; )*) => {
            $( const _: unsafe extern "C" fn($($ty),*) -> $ret = exports::$name; )*
        };
    }
    for_each_function!(check_exports);

    #[test]
    fn function_table_callback_fills_every_symbol() {
        assert_eq!(names_in_table(&from_exports()), SYMBOLS);
    }

    #[test]
    fn symbols_are_unique_and_match_the_function_table() {
        let unique: HashSet<_> = SYMBOLS.iter().collect();
        assert_eq!(
            unique.len(),
            SYMBOLS.len(),
            "duplicate symbol in the manifest"
        );
        let names: Vec<_> = FUNCTIONS.iter().map(|f| f.name).collect();
        assert_eq!(names, SYMBOLS);
        // SEMANTICS.md: 23 calls in §1, 13 in §5, 19 in §6.
        assert_eq!(SYMBOLS.len(), 23 + 13 + 19);
        assert_eq!(SYMBOLS[0], "aclrtCreateNotify");
        assert_eq!(SYMBOLS[10], "aclInit");
        assert_eq!(SYMBOLS[23], "aclrtMalloc");
        assert_eq!(SYMBOLS[36], "aclrtLaunchHostFunc");
    }

    #[test]
    fn prototypes_render_as_in_cann() {
        let proto = |name| {
            FUNCTIONS
                .iter()
                .find(|f| f.name == name)
                .unwrap()
                .prototype()
        };
        assert_eq!(
            proto("aclrtCreateNotify"),
            "aclError aclrtCreateNotify(aclrtNotify *notify, uint64_t flag)"
        );
        assert_eq!(
            proto("aclGetRecentErrMsg"),
            "const char *aclGetRecentErrMsg(void)"
        );
        assert_eq!(
            proto("aclrtMalloc"),
            "aclError aclrtMalloc(void **devPtr, size_t size, aclrtMemMallocPolicy policy)"
        );
        assert_eq!(
            proto("aclrtLaunchHostFunc"),
            "aclError aclrtLaunchHostFunc(aclrtStream stream, aclrtHostFunc fn, void *args)"
        );
        assert_eq!(
            proto("aclrtEventElapsedTime"),
            "aclError aclrtEventElapsedTime(float *ms, aclrtEvent startEvent, aclrtEvent endEvent)"
        );
    }

    #[test]
    fn values_are_the_official_ones() {
        use crate::consts::*;
        assert_eq!(ACL_MEMCPY_DEVICE_TO_DEVICE, 3);
        assert_eq!(ACL_RT_IPC_MEM_EXPORT_FLAG_DISABLE_PID_VALIDATION, 0x1);
        assert_eq!(ACL_RT_NOTIFY_EXPORT_FLAG_DISABLE_PID_VALIDATION, 0x2);
        assert_eq!(ACL_EVENT_IPC, 0x40);
        assert_eq!(ACL_ERROR_RT_DRV_INTERNAL_ERROR, 507_899);
        assert_eq!(ACL_STREAM_STATUS_RESERVED, 0xFFFF);
    }

    #[test]
    fn enums_are_contiguous_and_match_the_types() {
        let mut seen: Vec<&str> = Vec::new();
        for c in CONSTANTS {
            if let Kind::EnumVariant(of) = c.kind {
                if seen.last() != Some(&of) {
                    assert!(!seen.contains(&of), "the variants of {of} are split");
                    seen.push(of);
                }
                assert_eq!(c.rust_type, of);
            }
        }
        assert_eq!(seen, ENUMS);
    }

    /// Whether `text` holds `name` as a whole C identifier.
    fn mentions(text: &str, name: &str) -> bool {
        let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
        text.match_indices(name).any(|(at, _)| {
            !text[..at].ends_with(ident) && !text[at + name.len()..].starts_with(ident)
        })
    }

    /// Whether a line of `text` declares `name` (rather than using it).
    fn declares(text: &str, name: &str) -> bool {
        text.lines().any(|line| {
            line.starts_with(&format!("#define {name} "))
                || line.starts_with(&format!("static const int {name} = "))
                || line.starts_with(&format!("    {name} = "))
                || (line.starts_with("typedef ") && mentions(line, name))
                || (line.starts_with("ACL_FUNC_VISIBILITY ") && line.contains(&format!("{name}(")))
        })
    }

    #[test]
    fn every_name_is_declared_in_exactly_one_header() {
        let headers = header::render_all();
        let in_headers = |test: &dyn Fn(&str) -> bool| -> Vec<&str> {
            headers
                .iter()
                .filter(|(_, text)| test(text))
                .map(|(path, _)| *path)
                .collect()
        };
        let values = CONSTANTS
            .iter()
            .map(|c| (c.name, c.header))
            .chain(FUNCTIONS.iter().map(|f| (f.name, f.header)));
        let types = TYPEDEFS
            .iter()
            .map(|t| (t.name, t.header))
            .chain(ENUMS.iter().map(|e| (*e, header::ACL_RT_H)));
        let mut all = HashSet::new();
        for (name, home) in values.clone().chain(types) {
            assert!(all.insert(name), "{name} is in the tables twice");
            let found = in_headers(&|text| declares(text, name));
            assert_eq!(found, [home], "{name} must be declared in {home} only");
        }
        // Nothing uses a constant or a function, so nothing else may even mention one.
        for (name, home) in values {
            assert_eq!(in_headers(&|text| mentions(text, name)), [home], "{name}");
        }
    }

    #[test]
    fn unknown_rust_types_are_rejected() {
        for bad in [
            "*mut u8",
            "String",
            "*const *const c_char",
            "Option<fn()>",
            "bool",
        ] {
            let caught = std::panic::catch_unwind(|| header::c_decl(bad, "x"));
            assert!(caught.is_err(), "`{bad}` rendered as {:?}", caught.unwrap());
        }
        let f = Function {
            name: "f",
            header: header::ACL_RT_H,
            doc: "",
            args: &[("x", "*mut Foo")],
            ret: "aclError",
        };
        assert!(std::panic::catch_unwind(|| f.prototype()).is_err());
    }

    #[test]
    fn c_declarators() {
        let cases = [
            ("*mut aclrtNotify", "notify", "aclrtNotify *notify"),
            ("*const c_char", "key", "const char *key"),
            ("*mut *mut c_void", "devPtr", "void **devPtr"),
            ("usize", "num", "size_t num"),
            ("u64", "flags", "uint64_t flags"),
            ("i32", "deviceId", "int32_t deviceId"),
            ("*mut f32", "ms", "float *ms"),
            ("c_int", "aclError", "int aclError"),
            ("*mut c_void", "", "void *"),
            (
                "Option<unsafe extern \"C\" fn(args: *mut c_void)>",
                "aclrtHostFunc",
                "void (*aclrtHostFunc)(void *args)",
            ),
        ];
        for (rust, name, c) in cases {
            assert_eq!(header::c_decl(rust, name), c, "{rust}");
        }
        // The pretty-printer's spacing is not part of the type.
        assert_eq!(header::c_decl("* mut * mut c_void", "p"), "void **p");
    }
}
