//! Flag types with the CANN values (SEMANTICS.md §1).
//!
//! Raw bits from C are checked, never truncated: an unknown bit is `RT_PARAM_INVALID` (107000,
//! R15's "bad argument" step), because silently dropping it would hide a caller's mistake.

use crate::{AclError, Error, Result, Rule};

macro_rules! checked_flags {
    ($(#[$($doc:tt)*])* $name:ident, $what:literal, { $($(#[$($fdoc:tt)*])* const $flag:ident = $value:expr;)* }) => {
        bitflags::bitflags! {
            $(#[$($doc)*])*
            #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
            pub struct $name: u64 {
                $($(#[$($fdoc)*])* const $flag = $value;)*
            }
        }

        impl $name {
            /// The default (no bit set), the CANN `*_DEFAULT` value `0x0`.
            pub const DEFAULT: Self = Self::empty();

            /// Checks raw bits from the C API.
            ///
            /// # Behavior
            /// - R15: flag bits are checked in the "bad argument" step; an unknown bit is
            ///   refused, never dropped.
            ///
            /// # Errors
            /// `RT_PARAM_INVALID` (107000) when a bit outside the CANN values is set.
            pub fn from_raw(bits: u64) -> Result<Self> {
                Self::from_bits(bits).ok_or_else(|| {
                    Error::rule(
                        Rule::R15,
                        AclError::RT_PARAM_INVALID,
                        format_args!(
                            "unknown {} flag bits {:#x} (allowed: {:#x})",
                            $what,
                            bits & !Self::all().bits(),
                            Self::all().bits()
                        ),
                    )
                })
            }
        }
    };
}

checked_flags! {
    /// `aclrtCreateNotify` flags.
    NotifyFlags, "create", {
        /// `ACL_NOTIFY_DEVICE_USE_ONLY` (`0x1`).
        const DEVICE_USE_ONLY = 0x1;
    }
}

checked_flags! {
    /// `aclrtNotifyGetExportKey` flags.
    ExportFlags, "export", {
        /// `ACL_RT_NOTIFY_EXPORT_FLAG_DISABLE_PID_VALIDATION` (`0x2`): any process may import,
        /// and no whitelist may be set (R6).
        const DISABLE_PID_VALIDATION = 0x2;
    }
}

checked_flags! {
    /// `aclrtNotifyImportByKey` flags.
    ImportFlags, "import", {
        /// `ACL_RT_NOTIFY_IMPORT_FLAG_ENABLE_PEER_ACCESS` (`0x2`): the import enables peer
        /// access to the notify's device itself (R7).
        const ENABLE_PEER_ACCESS = 0x2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cann_values() {
        assert_eq!(NotifyFlags::DEFAULT.bits(), 0x0);
        assert_eq!(NotifyFlags::DEVICE_USE_ONLY.bits(), 0x1);
        assert_eq!(ExportFlags::DEFAULT.bits(), 0x0);
        assert_eq!(ExportFlags::DISABLE_PID_VALIDATION.bits(), 0x2);
        assert_eq!(ImportFlags::DEFAULT.bits(), 0x0);
        assert_eq!(ImportFlags::ENABLE_PEER_ACCESS.bits(), 0x2);
    }

    #[test]
    fn known_bits_round_trip() {
        for bits in [0x0, 0x2] {
            assert_eq!(ExportFlags::from_raw(bits).unwrap().bits(), bits);
            assert_eq!(ImportFlags::from_raw(bits).unwrap().bits(), bits);
        }
        for bits in [0x0, 0x1] {
            assert_eq!(NotifyFlags::from_raw(bits).unwrap().bits(), bits);
        }
    }

    #[test]
    fn unknown_bits_are_errors_not_truncated() {
        for bits in [0x1, 0x4, 0x3, 0x8000_0000_0000_0000, u64::MAX] {
            let e = ExportFlags::from_raw(bits).unwrap_err();
            assert_eq!(e.code(), AclError::RT_PARAM_INVALID, "export {bits:#x}");
            assert_eq!(
                ImportFlags::from_raw(bits).unwrap_err().code(),
                AclError::RT_PARAM_INVALID
            );
        }
        for bits in [0x2, 0x3, 0x10, u64::MAX] {
            assert_eq!(
                NotifyFlags::from_raw(bits).unwrap_err().code(),
                AclError::RT_PARAM_INVALID
            );
        }
    }
}
