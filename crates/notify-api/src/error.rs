//! The `aclError` table and the error type every call returns.
//!
//! Codes are data, not an enum (the ash pattern): a driver newer than this crate can return a
//! code we never listed, and it must still be a value we can print and compare, never UB.

use std::fmt;

/// A raw `aclError` code, as the C API returns it.
///
/// `#[repr(transparent)]` over `i32`, so it crosses the C ABI unchanged. Every code that
/// `SEMANTICS.md` §2 uses has a named constant; any other value stays representable.
#[repr(transparent)]
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct AclError(i32);

macro_rules! codes {
    ($( $(#[$doc:meta])* $name:ident = $value:literal, $cann:literal, $meaning:literal; )*) => {
        impl AclError {
            $( $(#[$doc])* pub const $name: Self = Self($value); )*

            /// Every code this crate names, in table order (success first).
            pub const ALL: &'static [AclError] = &[$(Self::$name),*];

            /// The CANN macro name of a known code (`"ACL_ERROR_RT_NO_PERMISSION"`), or `None`.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 { $($value => Some($cann),)* _ => None }
            }

            /// What the code means in this contract, or `None` for an unknown code.
            pub const fn meaning(self) -> Option<&'static str> {
                match self.0 { $($value => Some($meaning),)* _ => None }
            }
        }
    };
}

codes! {
    /// `ACL_SUCCESS`.
    SUCCESS = 0, "ACL_SUCCESS", "success";
    /// A NULL pointer argument.
    INVALID_PARAM = 100_000, "ACL_ERROR_INVALID_PARAM", "a NULL pointer argument";
    /// A call before `aclInit` or after `aclFinalize`.
    UNINITIALIZE = 100_001, "ACL_ERROR_UNINITIALIZE", "the runtime is not initialized";
    /// `aclInit` called twice.
    REPEAT_INITIALIZE = 100_002, "ACL_ERROR_REPEAT_INITIALIZE", "the runtime is already initialized";
    /// Unknown flag bit, `len < 65`, `num == 0`, malformed key, wait on the wrong device.
    RT_PARAM_INVALID = 107_000, "ACL_ERROR_RT_PARAM_INVALID", "an invalid argument or state";
    /// A device id outside `0..count`.
    RT_INVALID_DEVICEID = 107_001, "ACL_ERROR_RT_INVALID_DEVICEID", "an invalid device id";
    /// No current device/context in this thread.
    RT_CONTEXT_NULL = 107_002, "ACL_ERROR_RT_CONTEXT_NULL", "no current context in this thread";
    /// A stream of another device used here.
    RT_STREAM_CONTEXT = 107_003, "ACL_ERROR_RT_STREAM_CONTEXT", "the stream belongs to another device";
    /// A destroyed, stale or foreign handle.
    RT_INVALID_HANDLE = 107_017, "ACL_ERROR_RT_INVALID_HANDLE", "an invalid, destroyed or foreign handle";
    /// A notify wait that expired, reported at stream synchronize.
    RT_WAIT_TIMEOUT = 107_019, "ACL_ERROR_RT_WAIT_TIMEOUT", "a notify wait timed out";
    /// IPC notify in a virtualization instance.
    RT_FEATURE_NOT_SUPPORT = 207_000, "ACL_ERROR_RT_FEATURE_NOT_SUPPORT", "not supported in this environment";
    /// A non-creator changing IPC state; a whitelist on a `DISABLE_PID_VALIDATION` export.
    RT_NO_PERMISSION = 207_006, "ACL_ERROR_RT_NO_PERMISSION", "no permission for this operation";
    /// The device's notify table is full.
    RT_NO_NOTIFY_RESOURCE = 207_009, "ACL_ERROR_RT_NO_NOTIFY_RESOURCE", "no notify resource left on the device";
    /// Export twice; import of a notify already held; a corrupted registry.
    RT_INTERNAL_ERROR = 507_000, "ACL_ERROR_RT_INTERNAL_ERROR", "runtime internal error";
    /// `aclrtSynchronizeStreamWithTimeout` gave up.
    RT_STREAM_SYNC_TIMEOUT = 507_046, "ACL_ERROR_RT_STREAM_SYNC_TIMEOUT", "stream synchronize timed out";
    /// An import the driver refuses: not whitelisted, key unknown or revoked, no peer access.
    RT_DRV_INTERNAL_ERROR = 507_899, "ACL_ERROR_RT_DRV_INTERNAL_ERROR", "the driver refused the operation";
}

impl AclError {
    /// Wraps a raw code, known or not.
    pub const fn from_raw(raw: i32) -> Self {
        Self(raw)
    }

    /// The raw `aclError` value.
    pub const fn raw(self) -> i32 {
        self.0
    }

    /// `true` for `ACL_SUCCESS`.
    pub const fn is_success(self) -> bool {
        self.0 == 0
    }

    /// `Ok(())` for success, else an [`Error`] with this code and `reason`.
    pub fn result(self, reason: impl FnOnce() -> String) -> Result<()> {
        if self.is_success() {
            Ok(())
        } else {
            Err(Error::new(self, reason()))
        }
    }
}

impl From<i32> for AclError {
    fn from(raw: i32) -> Self {
        Self(raw)
    }
}

impl From<AclError> for i32 {
    fn from(code: AclError) -> Self {
        code.0
    }
}

impl fmt::Display for AclError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.name(), self.meaning()) {
            (Some(name), Some(meaning)) => write!(f, "{name} ({}): {meaning}", self.0),
            _ => write!(f, "unknown aclError {}", self.0),
        }
    }
}

impl fmt::Debug for AclError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name}({})", self.0),
            None => write!(f, "AclError({})", self.0),
        }
    }
}

/// A failed call: the `aclError` code plus the reason text.
///
/// The reason is what `aclGetRecentErrMsg` returns for the same failure; by the contract it
/// starts with the rule that refused the call (`"R7: pid 4242 is not on the whitelist"`).
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} [{code}]")]
pub struct Error {
    code: AclError,
    reason: String,
}

impl Error {
    /// An error with `code` and `reason`.
    pub fn new(code: AclError, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }

    /// The `aclError` code.
    pub fn code(&self) -> AclError {
        self.code
    }

    /// The reason text (never empty for errors this project makes).
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({:?}, {:?})", self.code, self.reason)
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Builds an [`Error`] with a formatted reason: `err!(RT_PARAM_INVALID, "R5: len {len} < 65")`.
#[macro_export]
macro_rules! err {
    ($code:ident, $($fmt:tt)+) => {
        $crate::Error::new($crate::AclError::$code, format!($($fmt)+))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every constant against the table of SEMANTICS.md §2, value and CANN name.
    #[test]
    fn table_matches_semantics_section_2() {
        let expected: &[(i32, &str)] = &[
            (0, "ACL_SUCCESS"),
            (100000, "ACL_ERROR_INVALID_PARAM"),
            (100001, "ACL_ERROR_UNINITIALIZE"),
            (100002, "ACL_ERROR_REPEAT_INITIALIZE"),
            (107000, "ACL_ERROR_RT_PARAM_INVALID"),
            (107001, "ACL_ERROR_RT_INVALID_DEVICEID"),
            (107002, "ACL_ERROR_RT_CONTEXT_NULL"),
            (107003, "ACL_ERROR_RT_STREAM_CONTEXT"),
            (107017, "ACL_ERROR_RT_INVALID_HANDLE"),
            (107019, "ACL_ERROR_RT_WAIT_TIMEOUT"),
            (207000, "ACL_ERROR_RT_FEATURE_NOT_SUPPORT"),
            (207006, "ACL_ERROR_RT_NO_PERMISSION"),
            (207009, "ACL_ERROR_RT_NO_NOTIFY_RESOURCE"),
            (507000, "ACL_ERROR_RT_INTERNAL_ERROR"),
            (507046, "ACL_ERROR_RT_STREAM_SYNC_TIMEOUT"),
            (507899, "ACL_ERROR_RT_DRV_INTERNAL_ERROR"),
        ];
        assert_eq!(AclError::ALL.len(), expected.len());
        for (code, (raw, name)) in AclError::ALL.iter().zip(expected) {
            assert_eq!(code.raw(), *raw);
            assert_eq!(code.name(), Some(*name));
            assert_eq!(AclError::from_raw(*raw), *code);
        }
        assert_eq!(AclError::RT_NO_PERMISSION.raw(), 207006);
        assert_eq!(AclError::RT_DRV_INTERNAL_ERROR.raw(), 507899);
    }

    #[test]
    fn unknown_codes_stay_values() {
        let code = AclError::from_raw(123_456);
        assert_eq!(code.raw(), 123_456);
        assert_eq!(code.name(), None);
        assert_eq!(code.to_string(), "unknown aclError 123456");
        assert_eq!(i32::from(code), 123_456);
    }

    #[test]
    fn display_gives_name_and_meaning() {
        let text = AclError::RT_NO_PERMISSION.to_string();
        assert!(
            text.starts_with("ACL_ERROR_RT_NO_PERMISSION (207006)"),
            "{text}"
        );
        let e = err!(RT_PARAM_INVALID, "R5: len {} < 65", 3);
        assert_eq!(e.code(), AclError::RT_PARAM_INVALID);
        assert_eq!(e.reason(), "R5: len 3 < 65");
        assert!(e.to_string().contains("107000"));
    }

    #[test]
    fn result_maps_success_and_failure() {
        assert!(AclError::SUCCESS.result(|| unreachable!()).is_ok());
        let e = AclError::RT_WAIT_TIMEOUT
            .result(|| "R3: expired".into())
            .unwrap_err();
        assert_eq!(e.code(), AclError::RT_WAIT_TIMEOUT);
    }
}
