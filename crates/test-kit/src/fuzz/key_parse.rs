//! The `key_parse` fuzz target: export keys from arbitrary bytes.
//!
//! The input is used three ways: as a C key buffer for `ExportKey::from_c_buf`, as text for
//! `FromStr` (when it is UTF-8), and as the key of an `aclrtNotifyImportByKey`, both on its own
//! and as `(position, byte)` edits of a real key this process exported. The first two must
//! agree with [`crate::keys`]' independent reading of R7 and round-trip; every import gets the
//! code the model gives ([`crate::model`], through [`crate::local::Local`]): 107000 for a
//! malformed key, 507000 for this process's own notify, 507899 for a well-formed unknown one.

use std::sync::{Mutex, OnceLock, PoisonError};

use notify_api::{AclError, EXPORT_KEY_LEN, ExportKey};

use crate::keys::{c_key_text, cites_rule, valid_key_text};
use crate::local::Local;
use crate::model::{Buf, Config, NotifyArg, Op, Out};

use super::{FUZZ_CAPACITY, FUZZ_DEVICES, namespace, trace};

struct Session {
    world: Local,
    /// The key buffer (65 bytes) of the notify this process created and holds.
    own_key: Vec<u8>,
}

static SESSION: OnceLock<Mutex<Session>> = OnceLock::new();

fn session() -> &'static Mutex<Session> {
    SESSION.get_or_init(|| {
        let ns = namespace();
        let cfg = Config {
            devices: FUZZ_DEVICES,
            capacity: FUZZ_CAPACITY,
            processes: 1,
            device_memory: super::FUZZ_DEVICE_MEMORY,
        };
        let mut world = Local::new(&ns, cfg, 0, trace());
        let mut run = |op: Op| {
            world
                .run(&op)
                .unwrap_or_else(|e| panic!("key_parse set-up: {e}"))
                .unwrap_or_else(|skip| panic!("key_parse set-up: {op:?} skipped: {skip:?}"))
        };
        run(Op::Init { p: 0 });
        run(Op::BareTgid { p: 0, null: false });
        run(Op::SetDevice { p: 0, device: 0 });
        let Out::Notify(h, n) = run(Op::Create {
            p: 0,
            null: false,
            flags: 0,
        })
        .out
        else {
            panic!("key_parse set-up: no notify")
        };
        run(Op::Export {
            p: 0,
            notify: NotifyArg::Handle(h),
            buf: Buf::KEY,
            flags: 0,
        });
        // The key buffer as the export wrote it: the text, then zeros up to 65 bytes.
        let mut own_key = world.syms.key(n).expect("exported").to_vec();
        own_key.resize(EXPORT_KEY_LEN, 0);
        // The runtime stays initialized for the rest of the process; the namespace goes with
        // the process (a clean detach at exit, §4).
        Mutex::new(Session { world, own_key })
    })
}

/// The `key_parse` fuzz target (see the module docs). Panics on a violated invariant.
pub fn key_parse(data: &[u8]) {
    // --- notify-api: from_c_buf against the oracle, and round trips ------------------------
    let parsed = ExportKey::from_c_buf(data);
    let expect_ok = c_key_text(data).is_some_and(valid_key_text);
    assert_eq!(
        parsed.is_ok(),
        expect_ok,
        "ExportKey::from_c_buf({data:?}) = {parsed:?}, R7 says {}",
        if expect_ok { "valid" } else { "invalid" }
    );
    match &parsed {
        Ok(key) => round_trip(key, c_key_text(data).expect("valid keys have a NUL")),
        Err(e) => {
            assert_eq!(e.code(), AclError::RT_PARAM_INVALID, "{e}");
            assert!(cites_rule(&e.reason()), "{e}");
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let parsed: Result<ExportKey, _> = text.parse();
        assert_eq!(
            parsed.is_ok(),
            valid_key_text(text.as_bytes()),
            "{text:?}.parse::<ExportKey>() = {parsed:?}"
        );
        if let Ok(key) = parsed {
            round_trip(&key, text.as_bytes());
        }
    }

    // --- the simulator: the input as a key, and edits of a real key ------------------------
    let mut s = session().lock().unwrap_or_else(PoisonError::into_inner);
    import(&mut s.world, data);
    let mut edited = s.own_key.clone();
    for pair in data.chunks_exact(2).take(8) {
        let pos = usize::from(pair[0]) % EXPORT_KEY_LEN;
        edited[pos] = pair[1];
    }
    import(&mut s.world, &edited);
    // Flags first (R15): a bad flag wins over any key.
    let bad_flag = 1u64 << (data.first().copied().unwrap_or(0) % 64);
    if bad_flag != 0x2 {
        let op = Op::Import {
            p: 0,
            null_out: false,
            key: s.world.syms.classify_key(Some(data)),
            flags: bad_flag,
        };
        let e = run(&mut s.world, &op);
        assert_eq!(e, 107_000, "R15: a bad import flag comes before the key");
    }
}

/// Imports `key` (followed by a NUL) with both valid flags; the model decides the code.
fn import(world: &mut Local, key: &[u8]) {
    for flags in [0, 2] {
        let op = Op::Import {
            p: 0,
            null_out: false,
            key: world.syms.classify_key(Some(key)),
            flags,
        };
        let code = run(world, &op);
        assert_ne!(code, 0, "key_parse: an import of {key:?} succeeded");
    }
}

fn run(world: &mut Local, op: &Op) -> i32 {
    // An import never succeeds here (the only notify is our own), so the model's state stays
    // the same from input to input: `predict` would do, `run` also compares.
    match world.run(op) {
        Ok(Ok(e)) => e.code,
        Ok(Err(skip)) => panic!("key_parse: {op:?} skipped: {skip:?}"),
        Err(e) => panic!("{e}"),
    }
}

fn round_trip(key: &ExportKey, text: &[u8]) {
    assert_eq!(
        key.as_str().as_bytes(),
        text,
        "the key is the text before the NUL"
    );
    let buf = key.to_c_buf();
    assert_eq!(
        ExportKey::from_c_buf(&buf).as_ref(),
        Ok(key),
        "C buffer round trip"
    );
    assert_eq!(
        key.to_string().parse::<ExportKey>().as_ref(),
        Ok(key),
        "Display/FromStr round trip"
    );
    let mut big = [0xa5u8; EXPORT_KEY_LEN + 7];
    key.write_c_buf(&mut big)
        .expect("a 72-byte buffer is enough");
    assert_eq!(
        ExportKey::from_c_buf(&big).as_ref(),
        Ok(key),
        "write_c_buf round trip"
    );
    let mut short = [0x5au8; EXPORT_KEY_LEN - 1];
    let e = key
        .write_c_buf(&mut short)
        .expect_err("R5: 64 bytes are too few");
    assert_eq!(e.code(), AclError::RT_PARAM_INVALID);
    assert!(short.iter().all(|&b| b == 0x5a), "nothing written on error");
}

/// Seeds for `fuzz/corpus/key_parse`.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut s: Vec<(String, Vec<u8>)> = Vec::new();
    let mut add = |name: &str, bytes: &[u8]| s.push((name.to_owned(), bytes.to_vec()));
    add("empty", b"");
    add("nul", b"\0");
    add("one", b"a\0");
    add("no-nul", b"abc");
    add("max", &[b"k".repeat(64), vec![0]].concat());
    add("too-long", &[b"k".repeat(65), vec![0]].concat());
    add("nul-at-65", &[b"k".repeat(65), vec![0]].concat()[..66]);
    add("late-nul", &[b"k".repeat(70), vec![0]].concat());
    add("tab", b"tab\there\0");
    add("del", b"del\x7f\0");
    add("utf8", "caf\u{e9}\0".as_bytes());
    add("high", b"\xff\xfe\0");
    add("printable", b" ~!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}\0");
    add("prefix-only", b"ans1-\0");
    let good = b"ans1-0123456789abcdef-00000a-00000001-fedcba9876543210";
    add("sim-format", &[&good[..], b"\0"].concat());
    add("sim-format-no-nul", good);
    add(
        "sim-format-upper",
        b"ans1-0123456789ABCDEF-00000a-00000001-fedcba9876543210\0",
    );
    add(
        "sim-format-short-part",
        b"ans1-0123456789abcdef-0000a-00000001-fedcba9876543210\0",
    );
    add(
        "sim-format-extra-part",
        b"ans1-0123456789abcdef-00000a-00000001-fedcba98-76543210\0",
    );
    add(
        "sim-format-device-ff",
        b"ans1-0123456789abcdef-ff0000-00000001-fedcba9876543210\0",
    );
    add(
        "sim-format-plus",
        b"ans1-+123456789abcdef-00000a-00000001-fedcba9876543210\0",
    );
    add(
        "ans2",
        b"ans2-0123456789abcdef-00000a-00000001-fedcba9876543210\0",
    );
    // (position, byte) edits of the real key: flip a secret digit, a namespace digit, the
    // generation, cut it short, break the prefix.
    add("edit-secret", &[53, b'0', 52, b'1']);
    add("edit-ns", &[5, b'f']);
    add("edit-generation", &[36, b'9']);
    add("edit-cut", &[30, 0]);
    add("edit-prefix", &[0, b'A']);
    add("edit-dash", &[21, b'x']);
    add("edit-extend", &[54, b'a', 55, 0]);
    s
}
