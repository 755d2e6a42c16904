//! Export keys: the "Notify shared name" that `aclrtNotifyGetExportKey` writes (R5) and
//! `aclrtNotifyImportByKey` reads (R7).
//!
//! The C side passes keys as NUL-terminated strings in buffers of at least [`EXPORT_KEY_LEN`]
//! bytes. [`ExportKey`] is the validated Rust form; what a key *means* is the backend's business
//! (the simulator encodes namespace, slot, generation and a random secret in it).

use std::fmt;
use std::str::FromStr;

use crate::{AclError, Error, Result, Rule};

/// The minimum key buffer length in bytes: 64 characters plus the terminating NUL
/// (CANN: "最小长度为65"; no header names it, so we do).
pub const EXPORT_KEY_LEN: usize = 65;

/// The longest key in characters.
pub const EXPORT_KEY_MAX_CHARS: usize = EXPORT_KEY_LEN - 1;

/// A validated export key: 1..=64 printable ASCII characters (`0x20..=0x7e`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExportKey(String);

fn invalid(rule: Rule, message: impl fmt::Display) -> Error {
    Error::rule(rule, AclError::RT_PARAM_INVALID, message)
}

impl ExportKey {
    /// Validates `text` as a key.
    ///
    /// # Behavior
    /// - R5: a key is 1..=64 printable ASCII characters; this is the only check, what the key
    ///   refers to is the backend's business (R7).
    ///
    /// # Errors
    /// `RT_PARAM_INVALID` (107000) when it is empty, longer than 64 characters, or holds a byte
    /// outside printable ASCII (R7: a malformed key).
    pub fn new(text: impl Into<String>) -> Result<Self> {
        let text = text.into();
        if text.is_empty() {
            return Err(invalid(Rule::R7, "the key is empty"));
        }
        if text.len() > EXPORT_KEY_MAX_CHARS {
            return Err(invalid(
                Rule::R7,
                format_args!(
                    "the key has {} bytes, more than {EXPORT_KEY_MAX_CHARS}",
                    text.len()
                ),
            ));
        }
        if let Some(pos) = text.bytes().position(|b| !(0x20..=0x7e).contains(&b)) {
            return Err(invalid(
                Rule::R7,
                format_args!(
                    "the key has a non-printable byte {:#04x} at offset {pos}",
                    text.as_bytes()[pos]
                ),
            ));
        }
        Ok(Self(text))
    }

    /// The key text, without the NUL.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key as the 65-byte, NUL-terminated, zero-padded buffer the C API uses.
    pub fn to_c_buf(&self) -> [u8; EXPORT_KEY_LEN] {
        let mut buf = [0u8; EXPORT_KEY_LEN];
        buf[..self.0.len()].copy_from_slice(self.0.as_bytes());
        buf
    }

    /// Writes the key, NUL-terminated, into a caller's buffer (`aclrtNotifyGetExportKey`).
    ///
    /// # Behavior
    /// - R5: the buffer must hold [`EXPORT_KEY_LEN`] bytes; nothing is written otherwise.
    ///
    /// # Errors
    /// `RT_PARAM_INVALID` (107000) when `buf` is shorter than [`EXPORT_KEY_LEN`] (R5), even if
    /// this particular key would fit: the contract is about the buffer, not the key.
    pub fn write_c_buf(&self, buf: &mut [u8]) -> Result<()> {
        if buf.len() < EXPORT_KEY_LEN {
            return Err(invalid(
                Rule::R5,
                format_args!(
                    "key buffer length {} is below the minimum {EXPORT_KEY_LEN}",
                    buf.len()
                ),
            ));
        }
        buf[..EXPORT_KEY_LEN].copy_from_slice(&self.to_c_buf());
        Ok(())
    }

    /// Reads a key from a C buffer: the bytes up to the first NUL, which must come within the
    /// first [`EXPORT_KEY_LEN`] bytes. Bytes after the NUL are ignored.
    ///
    /// # Behavior
    /// - R7: a key not NUL-terminated within 65 bytes, or not printable, is malformed (107000).
    ///
    /// # Errors
    /// `RT_PARAM_INVALID` (107000) when there is no NUL in the first 65 bytes, or the text before
    /// it is not a valid key (R7).
    pub fn from_c_buf(buf: &[u8]) -> Result<Self> {
        let window = &buf[..buf.len().min(EXPORT_KEY_LEN)];
        let Some(nul) = window.iter().position(|&b| b == 0) else {
            return Err(invalid(
                Rule::R7,
                format_args!("the key is not NUL-terminated within {EXPORT_KEY_LEN} bytes"),
            ));
        };
        // Printable ASCII is valid UTF-8, so a failure here is a malformed key, not a panic.
        let text = std::str::from_utf8(&window[..nul])
            .map_err(|_| invalid(Rule::R7, "the key has a non-printable byte"))?;
        Self::new(text)
    }
}

impl FromStr for ExportKey {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl fmt::Display for ExportKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How many trailing characters `Debug` hides: the simulator's keys end with their 64-bit secret
/// (16 hex digits, R5b), and a key of unknown format is treated the same way.
const REDACTED_TAIL: usize = 16;

impl fmt::Debug for ExportKey {
    /// Shows the key without its secret part, so that logging a key does not hand out the
    /// right to import it: the last 16 characters (at most half the key) become `*`.
    /// [`fmt::Display`] writes the whole key, for passing it on.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = REDACTED_TAIL.min(self.0.len() / 2).max(1);
        let shown = &self.0[..self.0.len() - hidden];
        write!(f, "ExportKey(\"{shown}{}\")", "*".repeat(hidden))
    }
}

impl AsRef<str> for ExportKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_through_c_buffer() {
        for text in [
            "a",
            "ansim1-0123456789abcdef",
            &"k".repeat(64),
            " ~!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}",
        ] {
            let key: ExportKey = text.parse().unwrap();
            let buf = key.to_c_buf();
            assert_eq!(buf.len(), EXPORT_KEY_LEN);
            assert_eq!(buf[text.len()], 0, "NUL-terminated");
            assert!(buf[text.len()..].iter().all(|&b| b == 0), "zero-padded");
            assert_eq!(ExportKey::from_c_buf(&buf).unwrap(), key);
            assert_eq!(key.to_string(), text);

            let mut big = [0xffu8; 100];
            key.write_c_buf(&mut big).unwrap();
            assert_eq!(ExportKey::from_c_buf(&big).unwrap(), key);
        }
    }

    #[test]
    fn every_invalid_form_is_rejected() {
        let too_long = "k".repeat(65);
        let bad: [&[u8]; 7] = [
            b"",
            too_long.as_bytes(),
            b"tab\there",
            b"newline\n",
            b"del\x7f",
            "caf\u{e9}".as_bytes(),
            b"nul\0inside",
        ];
        for text in bad {
            match std::str::from_utf8(text) {
                Ok(s) => assert_eq!(
                    ExportKey::new(s).unwrap_err().code(),
                    AclError::RT_PARAM_INVALID,
                    "{s:?}"
                ),
                Err(_) => unreachable!(),
            }
        }
    }

    #[test]
    fn c_buffer_without_nul_or_with_bad_bytes_is_rejected() {
        let no_nul = [b'a'; EXPORT_KEY_LEN];
        assert_eq!(
            ExportKey::from_c_buf(&no_nul).unwrap_err().code(),
            AclError::RT_PARAM_INVALID
        );
        // A NUL at byte 66 is too late: only the first 65 bytes count.
        let mut late = [b'a'; 80];
        late[66] = 0;
        assert_eq!(
            ExportKey::from_c_buf(&late).unwrap_err().code(),
            AclError::RT_PARAM_INVALID
        );
        assert_eq!(
            ExportKey::from_c_buf(&[0u8; 65]).unwrap_err().code(),
            AclError::RT_PARAM_INVALID
        );
        assert_eq!(
            ExportKey::from_c_buf(b"\xff\xfe\0").unwrap_err().code(),
            AclError::RT_PARAM_INVALID
        );
        assert_eq!(
            ExportKey::from_c_buf(b"").unwrap_err().code(),
            AclError::RT_PARAM_INVALID
        );
        // Short buffers with a NUL are fine on the read side.
        assert_eq!(ExportKey::from_c_buf(b"ok\0").unwrap().as_str(), "ok");
    }

    #[test]
    fn debug_hides_the_secret_tail_and_display_keeps_it() {
        let key = ExportKey::new("ans1-0011223344556677-000001-00000002-deadbeefcafef00d").unwrap();
        let debug = format!("{key:?}");
        assert!(!debug.contains("deadbeefcafef00d"), "{debug}");
        assert!(
            debug.contains("ans1-0011223344556677-000001-00000002-"),
            "{debug}"
        );
        assert!(debug.ends_with("****************\")"), "{debug}");
        assert_eq!(key.to_string(), key.as_str());
        let short = ExportKey::new("ab").unwrap();
        assert_eq!(format!("{short:?}"), "ExportKey(\"a*\")");
        assert!(!format!("{:?}", ExportKey::new("k").unwrap()).contains('k'));
    }

    #[test]
    fn short_output_buffer_is_rejected() {
        let key = ExportKey::new("x").unwrap();
        let mut buf = [0u8; EXPORT_KEY_LEN - 1];
        assert_eq!(
            key.write_c_buf(&mut buf).unwrap_err().code(),
            AclError::RT_PARAM_INVALID
        );
        assert!(buf.iter().all(|&b| b == 0), "nothing written on error");
    }
}
