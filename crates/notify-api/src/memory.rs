//! The types of device memory, IPC memory and events (`SEMANTICS.md` §5, §6): allocation
//! policies, flags, device ranges, downloads.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::sync::mpsc;

use crate::{AclError, DeviceId, Error, Result, Rule};

/// `aclrtMemMallocPolicy` (M1): which pages an allocation gets, which sets its alignment and the
/// granularity of IPC exports.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum MallocPolicy {
    /// `ACL_MEM_MALLOC_HUGE_FIRST` (0): 2 MiB pages for 2 MiB and more, else 4 KiB.
    #[default]
    HugeFirst,
    /// `ACL_MEM_MALLOC_HUGE_ONLY` (1): 2 MiB pages.
    HugeOnly,
    /// `ACL_MEM_MALLOC_NORMAL_ONLY` (2): 4 KiB pages.
    NormalOnly,
    /// `ACL_MEM_MALLOC_HUGE_FIRST_P2P` (3).
    HugeFirstP2p,
    /// `ACL_MEM_MALLOC_HUGE_ONLY_P2P` (4).
    HugeOnlyP2p,
    /// `ACL_MEM_MALLOC_NORMAL_ONLY_P2P` (5).
    NormalOnlyP2p,
    /// `ACL_MEM_MALLOC_HUGE1G_ONLY` (6): 1 GiB pages.
    Huge1gOnly,
    /// `ACL_MEM_MALLOC_HUGE1G_ONLY_P2P` (7).
    Huge1gOnlyP2p,
}

impl MallocPolicy {
    /// The CANN value.
    pub const fn bits(self) -> u32 {
        self as u32
    }
}

macro_rules! flag_set {
    ($(#[$($doc:tt)*])* $name:ident, $what:literal, $rule:ident, { $($(#[$($fdoc:tt)*])* const $flag:ident = $value:expr;)* }) => {
        bitflags::bitflags! {
            $(#[$($doc)*])*
            #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
            pub struct $name: u64 {
                $($(#[$($fdoc)*])* const $flag = $value;)*
            }
        }

        impl $name {
            /// The default (no bit set).
            pub const DEFAULT: Self = Self::empty();

            /// Checks raw bits from the C API: an unknown bit is `RT_PARAM_INVALID` (107000).
            ///
            /// # Errors
            /// `RT_PARAM_INVALID` (107000) when a bit outside the CANN values is set.
            pub fn from_raw(bits: u64) -> Result<Self> {
                Self::from_bits(bits).ok_or_else(|| {
                    Error::rule(
                        Rule::$rule,
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

flag_set! {
    /// `aclrtIpcMemGetExportKey` flags (M3).
    MemExportFlags, "IPC memory export", M3, {
        /// `ACL_RT_IPC_MEM_EXPORT_FLAG_DISABLE_PID_VALIDATION` (`0x1`, where notifies use
        /// `0x2`): any process may import, and no whitelist may be set (M4).
        const DISABLE_PID_VALIDATION = 0x1;
    }
}

flag_set! {
    /// `aclrtIpcMemImportByKey` flags (M5).
    MemImportFlags, "IPC memory import", M5, {
        /// `ACL_RT_IPC_MEM_IMPORT_FLAG_ENABLE_PEER_ACCESS` (`0x1`): the import enables peer
        /// access to the memory's device itself.
        const ENABLE_PEER_ACCESS = 0x1;
    }
}

flag_set! {
    /// `aclrtCreateEventWithFlag` flags (E1).
    EventFlags, "event", E1, {
        /// `ACL_EVENT_SYNC`.
        const SYNC = 0x1;
        /// `ACL_EVENT_CAPTURE_STREAM_PROGRESS`.
        const CAPTURE_STREAM_PROGRESS = 0x2;
        /// `ACL_EVENT_TIME_LINE`.
        const TIME_LINE = 0x8;
    }
}

/// `aclrtGetMemInfo`'s answer: a device's free and total bytes (M1).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct MemInfo {
    /// Bytes not allocated by any process of the namespace (on the simulator) or the driver.
    pub free: u64,
    /// The device's memory.
    pub total: u64,
}

/// A range of device memory this process may use: all or part of a buffer it allocated or of
/// an import, borrowed from it.
///
/// A device address is not a host address (M1): nothing reads through it; copies, sets and
/// exports take it and the backend checks it against what it handed out.
#[derive(Copy, Clone, PartialEq, Eq, Hash)]
pub struct DeviceRange<'a> {
    addr: u64,
    len: usize,
    device: DeviceId,
    imported: bool,
    _owner: PhantomData<&'a ()>,
}

impl fmt::Debug for DeviceRange<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DeviceRange({:#x}..+{} on device {}{})",
            self.addr,
            self.len,
            self.device,
            if self.imported { ", imported" } else { "" }
        )
    }
}

impl<'a> DeviceRange<'a> {
    /// A range a backend hands out for memory it owns (`imported` for an import, M5). Other
    /// code has no use for this: a range that names no memory of the backend is refused by it.
    #[doc(hidden)]
    pub fn new(addr: u64, len: usize, device: DeviceId, imported: bool) -> Self {
        Self {
            addr,
            len,
            device,
            imported,
            _owner: PhantomData,
        }
    }

    /// The device address of its first byte.
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The device of the memory.
    pub fn device(&self) -> DeviceId {
        self.device
    }

    /// Whether it is imported memory (M5: only device-to-device copies and sets on a stream).
    pub fn is_imported(&self) -> bool {
        self.imported
    }

    /// The bytes `range` of this range.
    ///
    /// # Errors
    /// `RT_PARAM_INVALID` (107000, M2) when `range` does not lie inside it.
    pub fn slice(&self, range: impl RangeBounds<usize>) -> Result<DeviceRange<'a>> {
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e.saturating_add(1),
            Bound::Excluded(&e) => e,
            Bound::Unbounded => self.len,
        };
        if start > end || end > self.len {
            return Err(Error::rule(
                Rule::M2,
                AclError::RT_PARAM_INVALID,
                format_args!(
                    "bytes {start}..{end} are outside a range of {} bytes",
                    self.len
                ),
            ));
        }
        Ok(Self {
            addr: self.addr + start as u64,
            len: end - start,
            ..*self
        })
    }
}

/// The bytes a stream copies to the host (`Stream::copy_to_host`), once the stream has run the
/// copy.
#[derive(Debug)]
pub struct Download {
    rx: mpsc::Receiver<Vec<u8>>,
}

impl Download {
    /// A download whose bytes arrive through `rx` (for backends).
    #[doc(hidden)]
    pub fn new(rx: mpsc::Receiver<Vec<u8>>) -> Self {
        Self { rx }
    }

    /// Blocks until the stream ran the copy, and returns the bytes.
    ///
    /// # Errors
    /// `RT_INVALID_HANDLE` (107017) when the stream was destroyed by force before it ran the
    /// copy (S1).
    pub fn wait(self) -> Result<Vec<u8>> {
        self.rx.recv().map_err(|_| {
            Error::rule(
                Rule::S1,
                AclError::RT_INVALID_HANDLE,
                "the stream was destroyed before it ran the copy",
            )
        })
    }

    /// The bytes, if the stream has run the copy.
    pub fn try_take(&self) -> Option<Vec<u8>> {
        self.rx.try_recv().ok()
    }
}
