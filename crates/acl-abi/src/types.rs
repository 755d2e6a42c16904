//! The C typedefs of the surface, named exactly as in C.
//!
//! Bring them into scope with `use acl_abi::types::*;` (together with
//! `std::ffi::{c_char, c_void}`) before expanding [`crate::for_each_function!`]: the manifest
//! spells its argument types with these names.

#![allow(non_camel_case_types)]

use std::ffi::{c_int, c_void};

use crate::header::{ACL_BASE_RT_H, ACL_RT_H};

/// A C `typedef` (other than an enum) as the header renderer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Typedef {
    /// The C (and Rust) name.
    pub name: &'static str,
    /// The Rust type, as written in the table; [`crate::header`] spells it in C.
    pub rust: &'static str,
    /// The header that declares it, relative to the include directory.
    pub header: &'static str,
}

macro_rules! typedefs {
    ($( $header:ident { $( $(#[$meta:meta])* $name:ident = $ty:ty; )* } )*) => {
        $($( $(#[$meta])* pub type $name = $ty; )*)*

        /// Every typedef of this module except the enums, in header order.
        pub const TYPEDEFS: &[Typedef] = &[
            $($( Typedef { name: stringify!($name), rust: stringify!($ty), header: $header }, )*)*
        ];
    };
}

// A C enum is an `int`-sized value that may hold any bit pattern (modifier bits are or-ed into
// aclrtMemMallocPolicy), so it is a plain integer here, as bindgen does for enums without
// negative values: a Rust `enum` would make an unknown value from the runtime undefined behaviour.
macro_rules! enums {
    ($( $(#[$meta:meta])* $name:ident; )*) => {
        $( $(#[$meta])* pub type $name = u32; )*

        /// The names of the enum typedefs, in header order; their variants are in [`crate::consts`].
        pub const ENUMS: &[&str] = &[$(stringify!($name)),*];
    };
}

typedefs! {
    ACL_BASE_RT_H {
        /// An opaque stream handle; NULL means the current context's default stream.
        aclrtStream = *mut c_void;
        /// An opaque event handle.
        aclrtEvent = *mut c_void;
        /// An opaque context handle.
        aclrtContext = *mut c_void;
        /// An opaque notify handle.
        aclrtNotify = *mut c_void;
        /// The result of every call: `ACL_SUCCESS` (0) or an error code. C `int`.
        aclError = c_int;
    }
    ACL_RT_H {
        /// A host function that `aclrtLaunchHostFunc` runs on a stream.
        aclrtHostFunc = Option<unsafe extern "C" fn(args: *mut c_void)>;
    }
}

enums! {
    /// Where the program runs (`ACL_DEVICE`, `ACL_HOST`).
    aclrtRunMode;
    /// The state `aclrtQueryEventStatus` reports.
    aclrtEventRecordedStatus;
    /// The state `aclrtStreamQuery` reports.
    aclrtStreamStatus;
    /// The direction of a copy (`ACL_MEMCPY_*`).
    aclrtMemcpyKind;
    /// How `aclrtMalloc` chooses pages (`ACL_MEM_MALLOC_*`, plus `ACL_MEM_TYPE_*` modifier bits).
    aclrtMemMallocPolicy;
    /// The memory kind `aclrtGetMemInfo` reports on.
    aclrtMemAttr;
}
