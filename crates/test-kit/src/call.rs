//! One C call with concrete arguments ([`Call`]) and what it returned ([`Reply`]): what a
//! driver runs, in this process ([`crate::cabi::run`], [`crate::typed::TypedProcess`]) or in a
//! child process ([`crate::protocol`]), after `crate::harness` has turned a model
//! [`Op`](crate::model::Op) into real tokens, keys and pids.
//!
//! Handles are the raw 64-bit values of the tokens (`0` is NULL); arrays and buffers are
//! `None` for NULL. Both types serialize to one JSON object (one line of the protocol).

use serde::{Deserialize, Serialize};

/// A pointer argument of a memory call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ptr {
    /// This value (`0` is NULL): a device address, or any other.
    Addr(u64),
    /// A host buffer of `len` bytes made for the call, holding
    /// [`host_bytes`](crate::model::memory::host_bytes)`(seed, len)`.
    Host {
        /// What it holds.
        seed: u8,
        /// Its length.
        len: u64,
    },
}

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
    Malloc {
        null: bool,
        size: u64,
        policy: u32,
    },
    Free {
        ptr: Ptr,
    },
    MemInfo {
        attr: u32,
        null_free: bool,
        null_total: bool,
    },
    /// `stream: None` is `aclrtMemcpy`, else `aclrtMemcpyAsync` on that stream.
    Memcpy {
        dst: Ptr,
        dest_max: u64,
        src: Ptr,
        count: u64,
        kind: u32,
        stream: Option<u64>,
    },
    /// `stream: None` is `aclrtMemset`, else `aclrtMemsetAsync` on that stream.
    Memset {
        ptr: Ptr,
        max: u64,
        value: i32,
        count: u64,
        stream: Option<u64>,
    },
    /// A key buffer of `len` bytes, or NULL with `len`.
    MemExport {
        ptr: Ptr,
        size: u64,
        null: bool,
        len: usize,
        flags: u64,
    },
    /// `key` as for [`Call::Import`]; `pids` `None`: a NULL array with count `null_num`.
    MemSetPid {
        key: Option<Vec<u8>>,
        pids: Option<Vec<i32>>,
        null_num: usize,
    },
    MemImport {
        null_out: bool,
        key: Option<Vec<u8>>,
        flags: u64,
    },
    MemClose {
        key: Option<Vec<u8>>,
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
    /// What a copy wrote into its host destination buffer (its first `count` bytes).
    pub bytes: Option<Vec<u8>>,
    /// `aclrtGetMemInfo`: (free, total).
    pub mem_info: Option<(u64, u64)>,
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
