//! The `aclError` table, the rules that refuse calls, and the error type every call returns.
//!
//! Codes are data, not an enum (the ash pattern): a driver newer than this crate can return a
//! code we never listed, and it must still be a value we can print and compare, never UB.
//!
//! [`Error`] keeps apart what a program must handle differently: a runtime that refused a call
//! ([`Error::Acl`], with its code and the rule of `SEMANTICS.md` that refused it), a backend that
//! could not be loaded ([`Error::Load`]), configuration that makes no sense ([`Error::Config`])
//! and a failed OS call ([`Error::Os`]). Every variant still has the [`Error::code`] the C layer
//! returns for it, so the C ABI and the Rust API report the same numbers.

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

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
    RT_STREAM_CONTEXT = 107_003, "ACL_ERROR_RT_STREAM_CONTEXT", "the stream belongs to another context";
    /// A destroyed, stale or foreign handle.
    RT_INVALID_HANDLE = 107_017, "ACL_ERROR_RT_INVALID_HANDLE", "an invalid, destroyed or foreign handle";
    /// A notify wait that expired, reported at stream synchronize.
    RT_WAIT_TIMEOUT = 107_019, "ACL_ERROR_RT_WAIT_TIMEOUT", "a notify wait timed out";
    /// IPC in a virtualization instance; IPC events.
    RT_FEATURE_NOT_SUPPORT = 207_000, "ACL_ERROR_RT_FEATURE_NOT_SUPPORT", "not supported in this environment";
    /// A device has no room for an allocation.
    RT_MEMORY_ALLOCATION = 207_001, "ACL_ERROR_RT_MEMORY_ALLOCATION", "out of device memory";
    /// A whitelist on a `DISABLE_PID_VALIDATION` export.
    RT_NO_PERMISSION = 207_006, "ACL_ERROR_RT_NO_PERMISSION", "no permission for this operation";
    /// The device's notify table is full.
    RT_NO_NOTIFY_RESOURCE = 207_009, "ACL_ERROR_RT_NO_NOTIFY_RESOURCE", "no notify resource left on the device";
    /// Export twice or of an imported handle; import of a notify already held; a corrupted
    /// registry; a full process table.
    RT_INTERNAL_ERROR = 507_000, "ACL_ERROR_RT_INTERNAL_ERROR", "runtime internal error";
    /// `aclrtSynchronizeStreamWithTimeout` gave up.
    RT_STREAM_SYNC_TIMEOUT = 507_046, "ACL_ERROR_RT_STREAM_SYNC_TIMEOUT", "stream synchronize timed out";
    /// What the driver refuses: an import not whitelisted, a key unknown or revoked, no peer
    /// access, a whitelist full or set by a non-creator.
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

/// A rule of `SEMANTICS.md`: R1–R17 (notify), M1–M6 (memory), H1, E1, C1, S1, and `Sim` for
/// the simulator's own section (§4: registry, configuration, scale).
#[non_exhaustive]
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum Rule {
    R1,
    R2,
    R3,
    R4,
    R5,
    R6,
    R7,
    R8,
    R9,
    R10,
    R11,
    R12,
    R13,
    R14,
    R15,
    R16,
    R17,
    M1,
    M2,
    M3,
    M4,
    M5,
    M6,
    H1,
    E1,
    C1,
    S1,
    /// §4, the simulator itself.
    Sim,
}

impl Rule {
    /// Every rule, in the order of `SEMANTICS.md`.
    pub const ALL: &'static [Rule] = &[
        Rule::R1,
        Rule::R2,
        Rule::R3,
        Rule::R4,
        Rule::R5,
        Rule::R6,
        Rule::R7,
        Rule::R8,
        Rule::R9,
        Rule::R10,
        Rule::R11,
        Rule::R12,
        Rule::R13,
        Rule::R14,
        Rule::R15,
        Rule::R16,
        Rule::R17,
        Rule::M1,
        Rule::M2,
        Rule::M3,
        Rule::M4,
        Rule::M5,
        Rule::M6,
        Rule::H1,
        Rule::E1,
        Rule::C1,
        Rule::S1,
        Rule::Sim,
    ];

    /// The rule's label as `SEMANTICS.md` writes it: `"R7"`, `"M5"`, `"§4"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Rule::R1 => "R1",
            Rule::R2 => "R2",
            Rule::R3 => "R3",
            Rule::R4 => "R4",
            Rule::R5 => "R5",
            Rule::R6 => "R6",
            Rule::R7 => "R7",
            Rule::R8 => "R8",
            Rule::R9 => "R9",
            Rule::R10 => "R10",
            Rule::R11 => "R11",
            Rule::R12 => "R12",
            Rule::R13 => "R13",
            Rule::R14 => "R14",
            Rule::R15 => "R15",
            Rule::R16 => "R16",
            Rule::R17 => "R17",
            Rule::M1 => "M1",
            Rule::M2 => "M2",
            Rule::M3 => "M3",
            Rule::M4 => "M4",
            Rule::M5 => "M5",
            Rule::M6 => "M6",
            Rule::H1 => "H1",
            Rule::E1 => "E1",
            Rule::C1 => "C1",
            Rule::S1 => "S1",
            Rule::Sim => "§4",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A backend library that could not be used: not found, not loadable, or missing a symbol.
///
/// This is never a runtime refusal: the runtime was never reached. [`LoadError::tried`] lists
/// every place that was looked at and why it was refused.
#[derive(Clone, Debug)]
pub struct LoadError {
    /// The file that was found but could not be used, if one was.
    pub file: Option<PathBuf>,
    /// Every place looked at, with the reason it was not used.
    pub tried: Vec<(PathBuf, String)>,
    /// What went wrong, in one sentence that names the file or the search.
    pub message: String,
    /// The loader's own error, if there was one.
    pub source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl LoadError {
    /// Whether the library was not found anywhere (as opposed to found but unusable): the only
    /// case in which an automatic backend choice may move on to another backend.
    pub fn not_found(&self) -> bool {
        self.file.is_none()
    }
}

/// Configuration that cannot work: an invalid builder option or environment value, an option
/// the chosen backend does not use, or a backend that is not compiled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The code the C layer returns for it (107000 for a bad value, 207000 for a feature that
    /// is not compiled in).
    pub code: AclError,
    /// What is wrong, naming the option or variable.
    pub message: String,
}

/// A failed call.
///
/// [`Error::code`] is what the C layer returns for the same failure, [`Error::rule_of`] the rule
/// that refused it, [`Error::reason`] the text `aclGetRecentErrMsg` gives (it starts with the
/// rule: `"R7: pid 4242 is not on the whitelist of this notify"`).
///
/// Every variant holds a box, so that an `Error` is two words and a `Result` of a reference is
/// passed in registers: the hot paths return one on every call.
#[non_exhaustive]
#[derive(Clone)]
pub enum Error {
    /// The runtime refused the call.
    Acl(Box<AclFailure>),
    /// A backend library could not be found, loaded or resolved.
    Load(Box<LoadError>),
    /// The configuration cannot work.
    Config(Box<ConfigError>),
    /// An operating-system call failed.
    Os(Box<OsError>),
}

/// A runtime refusal ([`Error::Acl`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclFailure {
    /// The `aclError` code.
    pub code: AclError,
    /// The rule that refused it, when the backend knows (the real runtime does not say).
    pub rule: Option<Rule>,
    /// The whole reason text, rule prefix included.
    pub reason: Cow<'static, str>,
}

/// An operating-system call that failed ([`Error::Os`]).
#[derive(Clone, Debug)]
pub struct OsError {
    /// What was being done, naming the file or object.
    pub context: String,
    /// The OS error.
    pub source: Arc<std::io::Error>,
}

impl Error {
    /// A runtime refusal with `code`, no rule, and `reason`.
    pub fn new(code: AclError, reason: impl Into<Cow<'static, str>>) -> Self {
        Self::Acl(Box::new(AclFailure {
            code,
            rule: None,
            reason: reason.into(),
        }))
    }

    /// A runtime refusal by `rule`; the reason text becomes `"<rule>: <message>"`.
    pub fn rule(rule: Rule, code: AclError, message: impl fmt::Display) -> Self {
        Self::Acl(Box::new(AclFailure {
            code,
            rule: Some(rule),
            reason: Cow::Owned(format!("{rule}: {message}")),
        }))
    }

    /// A configuration error with the C layer's `code`.
    pub fn config(code: AclError, message: impl Into<String>) -> Self {
        Self::Config(Box::new(ConfigError {
            code,
            message: message.into(),
        }))
    }

    /// An OS error while doing `context`.
    pub fn os(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Os(Box::new(OsError {
            context: context.into(),
            source: Arc::new(source),
        }))
    }

    /// A library that could not be used.
    pub fn load(load: LoadError) -> Self {
        Self::Load(Box::new(load))
    }

    /// The `aclError` the C layer returns for this failure: the runtime's own code; for a
    /// library that cannot be loaded `ACL_ERROR_UNINITIALIZE` (100001, the state such a process
    /// is in: no runtime); for configuration the code it carries; for an OS failure
    /// `ACL_ERROR_RT_INTERNAL_ERROR` (507000).
    pub fn code(&self) -> AclError {
        match self {
            Self::Acl(a) => a.code,
            Self::Load(_) => AclError::UNINITIALIZE,
            Self::Config(c) => c.code,
            Self::Os(_) => AclError::RT_INTERNAL_ERROR,
        }
    }

    /// The rule that refused the call, as data.
    pub fn rule_of(&self) -> Option<Rule> {
        match self {
            Self::Acl(a) => a.rule,
            _ => None,
        }
    }

    /// The reason text: for a refusal, what `aclGetRecentErrMsg` returns for it.
    pub fn reason(&self) -> Cow<'_, str> {
        match self {
            Self::Acl(a) => Cow::Borrowed(&a.reason),
            Self::Load(l) => Cow::Borrowed(&l.message),
            Self::Config(c) => Cow::Borrowed(&c.message),
            Self::Os(o) => Cow::Owned(format!("{}: {}", o.context, o.source)),
        }
    }

    /// The same error with `more` appended to its reason (used to say which array element or
    /// argument a refusal was about).
    pub fn with_context(self, more: impl fmt::Display) -> Self {
        match self {
            Self::Acl(mut a) => {
                a.reason = Cow::Owned(format!("{} ({more})", a.reason));
                Self::Acl(a)
            }
            Self::Config(mut c) => {
                c.message = format!("{} ({more})", c.message);
                Self::Config(c)
            }
            other => other,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Acl(a) => write!(f, "{} [{}]", a.reason, a.code),
            Self::Load(l) => write!(f, "{} [{}]", l.message, AclError::UNINITIALIZE),
            Self::Config(c) => write!(f, "{} [{}]", c.message, c.code),
            Self::Os(o) => {
                write!(
                    f,
                    "{}: {} [{}]",
                    o.context,
                    o.source,
                    AclError::RT_INTERNAL_ERROR
                )
            }
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Acl(a) => f
                .debug_struct("Acl")
                .field("code", &a.code)
                .field("rule", &a.rule)
                .field("reason", &a.reason)
                .finish(),
            Self::Load(l) => f.debug_tuple("Load").field(l).finish(),
            Self::Config(c) => f.debug_tuple("Config").field(c).finish(),
            Self::Os(o) => f
                .debug_struct("Os")
                .field("context", &o.context)
                .field("source", &o.source)
                .finish(),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Load(l) => l
                .source
                .as_deref()
                .map(|e| e as &(dyn std::error::Error + 'static)),
            Self::Os(o) => Some(&*o.source),
            _ => None,
        }
    }
}

impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        self.code() == other.code()
            && self.rule_of() == other.rule_of()
            && self.reason() == other.reason()
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Builds an [`Error::Acl`] with a formatted reason.
///
/// With a rule, `err!(R7: RT_DRV_INTERNAL_ERROR, "pid {pid} is not whitelisted")` gives the rule
/// as data and the reason `"R7: pid ... is not whitelisted"`; without one,
/// `err!(RT_INTERNAL_ERROR, "...")`.
#[macro_export]
macro_rules! err {
    ($rule:ident : $code:ident, $($fmt:tt)+) => {
        $crate::Error::rule($crate::Rule::$rule, $crate::AclError::$code, format_args!($($fmt)+))
    };
    ($code:ident, $($fmt:tt)+) => {
        $crate::Error::new($crate::AclError::$code, format!($($fmt)+))
    };
}

// Two words: a `Result<&T>` fits in two registers.
const _: () = assert!(size_of::<Error>() == 16);

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
            (207001, "ACL_ERROR_RT_MEMORY_ALLOCATION"),
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
        let e = err!(R5: RT_PARAM_INVALID, "len {} < 65", 3);
        assert_eq!(e.code(), AclError::RT_PARAM_INVALID);
        assert_eq!(e.rule_of(), Some(Rule::R5));
        assert_eq!(e.reason(), "R5: len 3 < 65");
        assert!(e.to_string().contains("107000"));
        let plain = err!(RT_INTERNAL_ERROR, "no rule {}", 1);
        assert_eq!(plain.rule_of(), None);
        assert_eq!(plain.reason(), "no rule 1");
    }

    #[test]
    fn every_variant_has_a_code_and_the_right_source() {
        use std::error::Error as _;
        let load = Error::load(LoadError {
            file: None,
            tried: vec![],
            message: "libascendcl.so was not found".into(),
            source: None,
        });
        assert_eq!(load.code(), AclError::UNINITIALIZE);
        assert!(load.source().is_none());
        let cfg = Error::config(AclError::RT_FEATURE_NOT_SUPPORT, "feature `sim` is off");
        assert_eq!(cfg.code(), AclError::RT_FEATURE_NOT_SUPPORT);
        assert_eq!(cfg.reason(), "feature `sim` is off");
        let os = Error::os("opening /dev/shm/x", std::io::Error::from_raw_os_error(2));
        assert_eq!(os.code(), AclError::RT_INTERNAL_ERROR);
        assert!(os.source().is_some(), "an OS error keeps its cause");
        assert!(os.reason().starts_with("opening /dev/shm/x: "));
        let acl = err!(R7: RT_DRV_INTERNAL_ERROR, "x");
        assert!(acl.source().is_none());
        assert_eq!(acl.clone(), acl);
        assert_eq!(
            acl.with_context("notifies[2]").reason(),
            "R7: x (notifies[2])"
        );
    }

    #[test]
    fn rule_labels_are_unique() {
        let labels: std::collections::BTreeSet<_> = Rule::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels.len(), Rule::ALL.len());
        assert_eq!(Rule::Sim.to_string(), "§4");
    }
}
