//! Independent readings of the key rules: R5/R7 (a C key is 1–64 printable ASCII characters
//! before a NUL within 65 bytes) and the simulator's notify key format
//! (`ans1-<16 hex>-<6 hex>-<8 hex>-<16 hex>`, lowercase), written from `SEMANTICS.md` and
//! docs/FUZZING.md rather than from the code that implements them, so that the two can be
//! compared.

use notify_api::EXPORT_KEY_LEN;

/// The prefix of the simulator's notify keys.
pub const SIM_PREFIX: &[u8] = b"ans1-";

/// The C string a key buffer holds as the C layer reads it: the bytes before the first NUL
/// within 65 bytes, or `None` if there is no NUL there.
pub fn c_key_text(buf: &[u8]) -> Option<&[u8]> {
    let window = &buf[..buf.len().min(EXPORT_KEY_LEN)];
    window
        .iter()
        .position(|&b| b == 0)
        .map(|nul| &window[..nul])
}

/// R7: 1..=64 printable ASCII characters.
pub fn valid_key_text(text: &[u8]) -> bool {
    (1..=64).contains(&text.len()) && text.iter().all(|b| (0x20..=0x7e).contains(b))
}

/// The simulator's notify key format: `ans1-<16 hex>-<6 hex>-<8 hex>-<16 hex>`, lowercase hex.
pub fn sim_key_format(text: &[u8]) -> bool {
    let Some(rest) = text.strip_prefix(SIM_PREFIX) else {
        return false;
    };
    let parts: Vec<&[u8]> = rest.split(|&b| b == b'-').collect();
    parts.len() == 4
        && parts.iter().zip([16, 6, 8, 16]).all(|(p, n)| {
            p.len() == n
                && p.iter()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        })
}

/// The prefix of the simulator's IPC memory keys (M3: told apart from notify keys).
pub const SIM_MEM_PREFIX: &[u8] = b"anm1-";

/// The simulator's IPC memory key format (M3): `anm1-<16 hex>-<4 hex>-<8 hex>-<16 hex>`,
/// lowercase hex (namespace hash, export index, generation, secret).
pub fn sim_mem_key_format(text: &[u8]) -> bool {
    let Some(rest) = text.strip_prefix(SIM_MEM_PREFIX) else {
        return false;
    };
    let parts: Vec<&[u8]> = rest.split(|&b| b == b'-').collect();
    parts.len() == 4
        && parts.iter().zip([16, 4, 8, 16]).all(|(p, n)| {
            p.len() == n
                && p.iter()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        })
}

/// The code a memory call (M4–M6) gets from the format of the key `bytes` (followed by a NUL)
/// alone: `Some(107000)` when it is malformed or not a memory key (a notify key among them,
/// M3), `None` when it is well formed and resolution decides.
pub fn mem_format_code(bytes: &[u8]) -> Option<i32> {
    match import_text(bytes) {
        Some(text) if valid_key_text(&text) && sim_mem_key_format(&text) => None,
        _ => Some(notify_api::AclError::RT_PARAM_INVALID.raw()),
    }
}

/// The C string an import reads from `bytes` followed by a NUL (the buffer an import key
/// argument stands for, [`crate::model::KeyArg::Other`]).
pub fn import_text(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut buf = bytes.to_vec();
    buf.push(0);
    c_key_text(&buf).map(<[u8]>::to_vec)
}

/// The code an import of `bytes` (followed by a NUL) gets from the key's format alone:
/// `Some(107000)` when it is malformed (R7), `None` when it is well formed and resolution
/// decides.
pub fn format_code(bytes: &[u8]) -> Option<i32> {
    match import_text(bytes) {
        Some(text) if valid_key_text(&text) && sim_key_format(&text) => None,
        _ => Some(notify_api::AclError::RT_PARAM_INVALID.raw()),
    }
}

/// Whether `text` starts with a rule of `SEMANTICS.md`, `"R7: "`, `"§4: "` (what every error
/// text starts with, §2).
pub fn cites_rule(text: &str) -> bool {
    notify_api::Rule::ALL.iter().any(|r| {
        text.strip_prefix(r.as_str())
            .is_some_and(|rest| rest.starts_with(": "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oracles() {
        assert_eq!(c_key_text(b"abc\0def"), Some(&b"abc"[..]));
        assert_eq!(c_key_text(b"abc"), None);
        assert!(valid_key_text(b"a"));
        assert!(!valid_key_text(b""));
        assert!(!valid_key_text(&[b'k'; 65]));
        assert!(sim_key_format(
            b"ans1-0123456789abcdef-00000a-00000001-fedcba9876543210"
        ));
        assert!(!sim_key_format(
            b"ans1-0123456789ABCDEF-00000a-00000001-fedcba9876543210"
        ));
        assert_eq!(format_code(b"abc"), Some(107_000));
        assert_eq!(
            format_code(b"ans1-0123456789abcdef-00000a-00000001-fedcba9876543210"),
            None
        );
        let mem = b"anm1-0123456789abcdef-000a-00000001-fedcba9876543210";
        assert!(sim_mem_key_format(mem) && !sim_key_format(mem));
        assert_eq!(mem_format_code(mem), None);
        assert_eq!(
            mem_format_code(b"ans1-0123456789abcdef-00000a-00000001-fedcba9876543210"),
            Some(107_000),
            "M3: a notify key is no memory key"
        );
        assert!(cites_rule("R7: not whitelisted"));
        assert!(cites_rule("R15: NULL"));
        assert!(!cites_rule("no rule here"));
    }
}
