//! [`Timeout`]: how long a notify wait may block (R3).

use std::time::Duration;

/// How long a notify wait may block before it fails with `RT_WAIT_TIMEOUT` (107019, R3).
///
/// The C API takes whole seconds with `0` meaning "forever"; this type keeps "forever" apart
/// from any duration, so a zero that was meant as "don't wait" cannot turn into "wait forever".
/// [`Timeout::as_c_secs`] is the conversion the C layer makes.
///
/// ```
/// use notify_api::Timeout;
/// use std::time::Duration;
/// assert_eq!(Timeout::FOREVER.as_c_secs(), 0);
/// assert_eq!(Timeout::from(Duration::from_millis(1500)).as_c_secs(), 2); // rounded up
/// assert_eq!(Timeout::from(Some(Duration::from_secs(3))), Timeout::secs(3));
/// assert_eq!(Timeout::from(None), Timeout::FOREVER);
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Timeout(Option<Duration>);

impl Timeout {
    /// Wait until the notify is recorded, however long that takes (C: `0`).
    pub const FOREVER: Self = Self(None);

    /// At most `d`.
    pub const fn after(d: Duration) -> Self {
        Self(Some(d))
    }

    /// At most `secs` seconds.
    pub const fn secs(secs: u64) -> Self {
        Self(Some(Duration::from_secs(secs)))
    }

    /// The limit, or `None` for [`Timeout::FOREVER`].
    pub const fn duration(self) -> Option<Duration> {
        self.0
    }

    /// The value of the C API's `timeout` argument (R3): whole seconds, rounded up; `0` for
    /// forever. A duration below one second becomes `1` (the C API cannot say less, and `0`
    /// would mean forever); one beyond `u32::MAX` seconds saturates.
    pub fn as_c_secs(self) -> u32 {
        match self.0 {
            None => 0,
            Some(d) => {
                let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
                u32::try_from(secs.max(1)).unwrap_or(u32::MAX)
            }
        }
    }

    /// The C API's `timeout` argument as a value: `0` is forever (R3).
    pub const fn from_c_secs(secs: u32) -> Self {
        if secs == 0 {
            Self::FOREVER
        } else {
            Self::secs(secs as u64)
        }
    }
}

impl From<Duration> for Timeout {
    fn from(d: Duration) -> Self {
        Self(Some(d))
    }
}

impl From<Option<Duration>> for Timeout {
    fn from(d: Option<Duration>) -> Self {
        Self(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_conversion_rounds_up_and_keeps_forever_apart() {
        assert_eq!(Timeout::FOREVER.as_c_secs(), 0);
        assert_eq!(Timeout::after(Duration::ZERO).as_c_secs(), 1);
        assert_eq!(Timeout::after(Duration::from_nanos(1)).as_c_secs(), 1);
        assert_eq!(Timeout::secs(1).as_c_secs(), 1);
        assert_eq!(Timeout::after(Duration::from_millis(1001)).as_c_secs(), 2);
        assert_eq!(Timeout::secs(u64::MAX).as_c_secs(), u32::MAX);
        assert_eq!(Timeout::from_c_secs(0), Timeout::FOREVER);
        assert_eq!(
            Timeout::from_c_secs(7).duration(),
            Some(Duration::from_secs(7))
        );
        for secs in [1u32, 2, 30, u32::MAX] {
            assert_eq!(Timeout::from_c_secs(secs).as_c_secs(), secs);
        }
    }
}
