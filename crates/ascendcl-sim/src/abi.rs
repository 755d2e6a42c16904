//! Every export has exactly the type the ABI manifest gives its symbol (`acl-abi`), which is
//! also the type `backend-ascend` calls it through: a `u32` where the prototype says
//! `uint64_t`, or a missing export, does not compile.

#![allow(non_snake_case)]

use std::ffi::{c_char, c_void};

use acl_abi::types::*;

macro_rules! check_exports {
    ($( $(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; )*) => {
        $( const _: unsafe extern "C" fn($($ty),*) -> $ret = crate::$name; )*
    };
}

acl_abi::for_each_function!(check_exports);

// Keep the imports used even when the manifest spells no type with one of them.
const _: Option<(*const c_char, *mut c_void, aclError)> = None;
