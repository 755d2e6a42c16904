//! Small newtypes that keep pids, device ids and notify ids from being mixed up.

use std::fmt;

macro_rules! newtype {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[repr(transparent)]
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub $inner);

        impl $name {
            /// The raw value, as the C API passes it.
            pub const fn raw(self) -> $inner {
                self.0
            }
        }

        impl From<$inner> for $name {
            fn from(raw: $inner) -> Self {
                Self(raw)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

newtype! {
    /// A bare tgid: the process id as the driver sees it (`aclrtDeviceGetBareTgid`, R6).
    ///
    /// Whitelists hold these, never a pid the caller found some other way: in a container or
    /// a VM the two can differ.
    Pid(i32)
}

newtype! {
    /// A device ordinal, `0..device_count` (R13).
    DeviceId(i32)
}

newtype! {
    /// The id `aclrtGetNotifyId` reports: unique among the live notifies of one device.
    NotifyId(u32)
}
