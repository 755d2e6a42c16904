//! The constants of the surface with their official names, values and C spellings: error codes,
//! flag macros and enum variants.
//!
//! Each is declared once, in the table at the bottom of this file, which yields both the Rust
//! `const` and its [`Constant`] entry in [`CONSTANTS`], from which [`crate::header`] renders it.

use crate::header::{ACL_BASE_RT_H, ACL_RT_H, RT_ERROR_CODES_H};
use crate::types::*;

/// How a constant is declared in C.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A variant of the named `typedef enum`.
    EnumVariant(&'static str),
    /// A `#define`; its value carries the C suffix of its type (`U`, `UL`).
    Define,
    /// A `static const int`, as `acl_base_rt.h` declares the `ACL_ERROR_*` codes.
    StaticConstInt,
}

/// One constant, as the header renderer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Constant {
    /// The C (and Rust) name.
    pub name: &'static str,
    /// The value as written in the table, without a C suffix (`0x02`, `507899`).
    pub value: &'static str,
    /// The Rust type of the `const` (`u32`, `u64`, `aclError`, or the enum's name).
    pub rust_type: &'static str,
    /// The header that declares it, relative to the include directory.
    pub header: &'static str,
    /// How C declares it.
    pub kind: Kind,
}

impl Constant {
    /// The value as C writes it: `U` for `uint32_t` macros, `UL` for `uint64_t` ones, as the
    /// official headers do (so that a flag keeps its width in C expressions).
    ///
    /// # Panics
    /// On a `#define` of a Rust type that has no C suffix rule, so that a new one cannot render
    /// with a silently different type.
    pub fn c_value(&self) -> String {
        let suffix = match (self.kind, self.rust_type) {
            (Kind::Define, "u32") => "U",
            (Kind::Define, "u64") => "UL",
            (Kind::Define, "aclError") | (Kind::EnumVariant(_), _) => "",
            (Kind::StaticConstInt, "aclError") => "",
            (kind, ty) => panic!(
                "acl-abi: no C spelling for a {kind:?} of type `{ty}` ({})",
                self.name
            ),
        };
        format!("{}{suffix}", self.value)
    }
}

macro_rules! kind {
    (static_const, $ty:ident) => {
        Kind::StaticConstInt
    };
    (define, $ty:ident) => {
        Kind::Define
    };
    (enum, $ty:ident) => {
        Kind::EnumVariant(stringify!($ty))
    };
}

macro_rules! constants {
    ($( $kind:ident $ty:ident in $header:ident {
        $( $(#[$meta:meta])* $name:ident = $value:literal; )*
    } )*) => {
        $($( $(#[$meta])* pub const $name: $ty = $value; )*)*

        /// Every constant of this module, in header order; an enum's variants are contiguous.
        pub const CONSTANTS: &[Constant] = &[$($(
            Constant {
                name: stringify!($name),
                value: stringify!($value),
                rust_type: stringify!($ty),
                header: $header,
                kind: kind!($kind, $ty),
            },
        )*)*];
    };
}

constants! {
    // SEMANTICS.md §2: acl_base_rt.h declares the ACL_* codes as `static const int`.
    static_const aclError in ACL_BASE_RT_H {
        /// The call succeeded.
        ACL_SUCCESS = 0;
        /// A NULL pointer argument.
        ACL_ERROR_INVALID_PARAM = 100000;
        /// A call before `aclInit` or after `aclFinalize`.
        ACL_ERROR_UNINITIALIZE = 100001;
        /// `aclInit` twice.
        ACL_ERROR_REPEAT_INITIALIZE = 100002;
    }
    // SEMANTICS.md §2: the runtime's codes are macros of error_codes/rt_error_codes.h.
    define aclError in RT_ERROR_CODES_H {
        /// A bad argument: flag bits, length, count, key format.
        ACL_ERROR_RT_PARAM_INVALID = 107000;
        /// A device id outside `0..count`.
        ACL_ERROR_RT_INVALID_DEVICEID = 107001;
        /// No current context in this thread.
        ACL_ERROR_RT_CONTEXT_NULL = 107002;
        /// A stream or event of another context used here.
        ACL_ERROR_RT_STREAM_CONTEXT = 107003;
        /// A destroyed, stale or foreign handle.
        ACL_ERROR_RT_INVALID_HANDLE = 107017;
        /// A notify wait that expired.
        ACL_ERROR_RT_WAIT_TIMEOUT = 107019;
        /// A feature this environment lacks (IPC in a virtualization instance).
        ACL_ERROR_RT_FEATURE_NOT_SUPPORT = 207000;
        /// A device has no room for an allocation.
        ACL_ERROR_RT_MEMORY_ALLOCATION = 207001;
        /// The caller may not change this IPC state.
        ACL_ERROR_RT_NO_PERMISSION = 207006;
        /// The device's notify table is full.
        ACL_ERROR_RT_NO_NOTIFY_RESOURCE = 207009;
        /// A runtime internal error (also: export twice, import of a notify already held).
        ACL_ERROR_RT_INTERNAL_ERROR = 507000;
        /// `aclrtSynchronizeStreamWithTimeout` gave up.
        ACL_ERROR_RT_STREAM_SYNC_TIMEOUT = 507046;
        /// What the driver refuses (an import not whitelisted, an unknown key, ...).
        ACL_ERROR_RT_DRV_INTERNAL_ERROR = 507899;
    }
    define u32 in ACL_RT_H {
        /// `aclrtCreateEventWithFlag`: the event can be synchronized on.
        ACL_EVENT_SYNC = 0x00000001;
        /// `aclrtCreateEventWithFlag`: the event captures stream progress.
        ACL_EVENT_CAPTURE_STREAM_PROGRESS = 0x00000002;
        /// `aclrtCreateEventWithFlag`: the event records a timestamp.
        ACL_EVENT_TIME_LINE = 0x00000008;
        /// `aclrtCreateEventWithFlag`: an IPC event (not simulated).
        ACL_EVENT_IPC = 0x00000040;
        /// `aclrtCreateNotify`: a notify the host may use.
        ACL_NOTIFY_DEFAULT = 0x00000000;
        /// `aclrtCreateNotify`: a notify only the device uses.
        ACL_NOTIFY_DEVICE_USE_ONLY = 0x00000001;
    }
    define u64 in ACL_RT_H {
        /// `aclrtNotifyGetExportKey`: importers must be whitelisted.
        ACL_RT_NOTIFY_EXPORT_FLAG_DEFAULT = 0x0;
        /// `aclrtNotifyGetExportKey`: any process may import.
        ACL_RT_NOTIFY_EXPORT_FLAG_DISABLE_PID_VALIDATION = 0x02;
        /// `aclrtNotifyImportByKey`: cross-device use needs peer access first.
        ACL_RT_NOTIFY_IMPORT_FLAG_DEFAULT = 0x0;
        /// `aclrtNotifyImportByKey`: the import enables peer access itself.
        ACL_RT_NOTIFY_IMPORT_FLAG_ENABLE_PEER_ACCESS = 0x02;
        /// `aclrtIpcMemGetExportKey`: importers must be whitelisted.
        ACL_RT_IPC_MEM_EXPORT_FLAG_DEFAULT = 0x0;
        /// `aclrtIpcMemGetExportKey`: any process may import (0x1 here, 0x2 for notifies).
        ACL_RT_IPC_MEM_EXPORT_FLAG_DISABLE_PID_VALIDATION = 0x1;
        /// `aclrtIpcMemImportByKey`: cross-device use needs peer access first.
        ACL_RT_IPC_MEM_IMPORT_FLAG_DEFAULT = 0x0;
        /// `aclrtIpcMemImportByKey`: the import enables peer access itself.
        ACL_RT_IPC_MEM_IMPORT_FLAG_ENABLE_PEER_ACCESS = 0x1;
    }
    enum aclrtRunMode in ACL_RT_H {
        ACL_DEVICE = 0;
        ACL_HOST = 1;
    }
    enum aclrtEventRecordedStatus in ACL_RT_H {
        ACL_EVENT_RECORDED_STATUS_NOT_READY = 0;
        ACL_EVENT_RECORDED_STATUS_COMPLETE = 1;
    }
    enum aclrtStreamStatus in ACL_RT_H {
        ACL_STREAM_STATUS_COMPLETE = 0;
        ACL_STREAM_STATUS_NOT_READY = 1;
        ACL_STREAM_STATUS_RESERVED = 0xFFFF;
    }
    enum aclrtMemcpyKind in ACL_RT_H {
        ACL_MEMCPY_HOST_TO_HOST = 0;
        ACL_MEMCPY_HOST_TO_DEVICE = 1;
        ACL_MEMCPY_DEVICE_TO_HOST = 2;
        ACL_MEMCPY_DEVICE_TO_DEVICE = 3;
        /// The runtime infers the direction from the pointers.
        ACL_MEMCPY_DEFAULT = 4;
        ACL_MEMCPY_HOST_TO_BUF_TO_DEVICE = 5;
        ACL_MEMCPY_INNER_DEVICE_TO_DEVICE = 6;
        ACL_MEMCPY_INTER_DEVICE_TO_DEVICE = 7;
    }
    enum aclrtMemMallocPolicy in ACL_RT_H {
        ACL_MEM_MALLOC_HUGE_FIRST = 0;
        ACL_MEM_MALLOC_HUGE_ONLY = 1;
        ACL_MEM_MALLOC_NORMAL_ONLY = 2;
        ACL_MEM_MALLOC_HUGE_FIRST_P2P = 3;
        ACL_MEM_MALLOC_HUGE_ONLY_P2P = 4;
        ACL_MEM_MALLOC_NORMAL_ONLY_P2P = 5;
        ACL_MEM_MALLOC_HUGE1G_ONLY = 6;
        ACL_MEM_MALLOC_HUGE1G_ONLY_P2P = 7;
        /// A modifier bit, or-ed into a policy.
        ACL_MEM_TYPE_LOW_BAND_WIDTH = 0x0100;
        /// A modifier bit, or-ed into a policy.
        ACL_MEM_TYPE_HIGH_BAND_WIDTH = 0x1000;
        /// A modifier bit, or-ed into a policy.
        ACL_MEM_ACCESS_USER_SPACE_READONLY = 0x100000;
    }
    enum aclrtMemAttr in ACL_RT_H {
        ACL_DDR_MEM = 0;
        ACL_HBM_MEM = 1;
        ACL_DDR_MEM_HUGE = 2;
        ACL_DDR_MEM_NORMAL = 3;
        ACL_HBM_MEM_HUGE = 4;
        ACL_HBM_MEM_NORMAL = 5;
        ACL_DDR_MEM_P2P_HUGE = 6;
        ACL_DDR_MEM_P2P_NORMAL = 7;
        ACL_HBM_MEM_P2P_HUGE = 8;
        ACL_HBM_MEM_P2P_NORMAL = 9;
        ACL_HBM_MEM_HUGE1G = 10;
        ACL_HBM_MEM_P2P_HUGE1G = 11;
        ACL_MEM_NORMAL = 12;
        ACL_MEM_HUGE = 13;
        ACL_MEM_HUGE1G = 14;
        ACL_MEM_P2P_NORMAL = 15;
        ACL_MEM_P2P_HUGE = 16;
        ACL_MEM_P2P_HUGE1G = 17;
    }
}
