//! One C call with concrete arguments ([`Call`]) and what it returned ([`Reply`]): what a
//! driver runs, in this process ([`crate::cabi::run`], [`crate::typed::TypedProcess`]) or in a
//! child process ([`crate::protocol`]), after `crate::harness` has turned a model
//! [`Op`](crate::model::Op) into real tokens, keys and pids.
//!
//! Handles are the raw 64-bit values of the tokens (`0` is NULL); arrays and buffers are
//! `None` for NULL. Both types serialize to one JSON object (one line of the protocol).

use serde::{Deserialize, Serialize};

/// One C call, with the arguments exactly as C passes them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum Call {
    Init,
    Finalize,
    SetDevice {
        device: i32,
    },
    ResetDevice {
        device: i32,
    },
    GetDevice {
        null: bool,
    },
    DeviceCount {
        null: bool,
    },
    BareTgid {
        null: bool,
    },
    CanAccessPeer {
        null: bool,
        device: i32,
        peer: i32,
    },
    EnablePeer {
        peer: i32,
        flags: u32,
    },
    CreateStream {
        null: bool,
    },
    DestroyStream {
        stream: u64,
    },
    /// `timeout_ms: None` is `aclrtSynchronizeStream`.
    Sync {
        stream: u64,
        timeout_ms: Option<i32>,
    },
    Create {
        null: bool,
        flags: u64,
    },
    Destroy {
        notify: u64,
    },
    Record {
        notify: u64,
        stream: u64,
    },
    Wait {
        notify: u64,
        stream: u64,
        timeout_s: u32,
    },
    GetId {
        notify: u64,
        null: bool,
    },
    /// `None`: a NULL array with count `null_num`.
    BatchReset {
        notifies: Option<Vec<u64>>,
        null_num: usize,
    },
    /// A key buffer of `len` bytes, or NULL with `len`.
    Export {
        notify: u64,
        null: bool,
        len: usize,
        flags: u64,
    },
    /// `None`: a NULL array with count `null_num`.
    SetPid {
        notify: u64,
        pids: Option<Vec<i32>>,
        null_num: usize,
    },
    /// `key`: these bytes followed by a NUL (and zeros), or NULL.
    Import {
        null_out: bool,
        key: Option<Vec<u8>>,
        flags: u64,
    },
}

/// What a call returned.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The code.
    pub code: i32,
    /// A new handle (create, import, create stream).
    pub token: Option<u64>,
    /// The id of a new notify handle (`aclrtGetNotifyId` right after create or import).
    pub id: Option<u32>,
    /// A value written through an out-pointer: device, count, pid, can-access, notify id.
    pub value: Option<i64>,
    /// The first bytes (at most 65) of an export's key buffer.
    pub key: Option<Vec<u8>>,
    /// `aclGetRecentErrMsg` after a failure.
    pub message: Option<String>,
    /// A rule of §2 that the call itself broke, whatever its code (a code outside §2, a
    /// missing or unchanged message, a message that names no rule).
    pub problem: Option<String>,
}

impl Reply {
    /// A reply with just a code.
    pub fn code(code: i32) -> Self {
        Self {
            code,
            ..Self::default()
        }
    }
}
