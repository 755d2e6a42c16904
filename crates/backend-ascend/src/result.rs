//! `result`: each C call of [`crate::sys`] as a Rust function returning [`Result`].
//!
//! This layer does the pointer work of one call (out-parameters, the 65-byte key buffer, the pid
//! and handle arrays) and maps its code with [`check`]: `ACL_SUCCESS` is `Ok`, anything else is an
//! [`Error`] carrying the code and, as its reason, the text `aclGetRecentErrMsg` gives for the
//! failure (`SEMANTICS.md` §2). It owns nothing: handles go in and come out raw.
//!
//! Calls that take only plain values are safe functions. Calls that take a notify or stream
//! handle are `unsafe fn`: the C runtime may dereference the handle, so it must be live (made by
//! the same library, not destroyed, the runtime not finalized). The safe layer at the crate root
//! is what guarantees that, by owning every handle it creates.

use std::ffi::{CStr, c_char};
use std::ptr;
use std::time::Duration;

use notify_api::{AclError, EXPORT_KEY_LEN, Error, ExportKey, Result, err};

use crate::sys::{ACL_SUCCESS, AclLib, aclError, aclrtNotify, aclrtStream};

/// Maps the code `call` returned to a `Result`.
///
/// On failure the reason is this thread's `aclGetRecentErrMsg()`, read at once (before any other
/// call can replace it); when that is NULL or empty, a generic text that names `call` and the
/// code.
///
/// Inlined so that a success costs one compare at the call site; reading the message is out of
/// line (every hot call goes through here, `record` among them).
#[inline]
pub fn check(lib: &AclLib, code: aclError, call: &str) -> Result<()> {
    if code == ACL_SUCCESS {
        return Ok(());
    }
    Err(failure(lib, code, call))
}

#[cold]
#[inline(never)]
fn failure(lib: &AclLib, code: aclError, call: &str) -> Error {
    error_for(code, recent_err_msg(lib), call)
}

/// The error for a failed `call`, given the message text the runtime left (if any).
pub(crate) fn error_for(code: aclError, message: Option<String>, call: &str) -> Error {
    let code = AclError::from_raw(code);
    let reason = match message {
        Some(text) if !text.trim().is_empty() => text.trim_end().to_owned(),
        _ => format!("{call} failed with {code}; aclGetRecentErrMsg gave no text"),
    };
    Error::new(code, reason)
}

/// `aclGetRecentErrMsg()`: this thread's last error text, copied, or `None` for NULL.
pub fn recent_err_msg(lib: &AclLib) -> Option<String> {
    // SAFETY: no arguments; the C contract returns NULL or a NUL-terminated string.
    let text: *const c_char = unsafe { (lib.aclGetRecentErrMsg)() };
    if text.is_null() {
        return None;
    }
    // SAFETY: non-NULL, so a NUL-terminated string owned by the runtime and valid until the next
    // ACL call on this thread; it is copied here before any such call.
    let text = unsafe { CStr::from_ptr(text) };
    Some(text.to_string_lossy().into_owned())
}

/// What `aclInit` found.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Init {
    /// This call initialized the runtime; whoever made it should call `aclFinalize`.
    Initialized,
    /// The runtime was already initialized by another part of the process
    /// (`ACL_ERROR_REPEAT_INITIALIZE`, 100002); it is usable, and not ours to finalize.
    AlreadyInitialized,
}

/// `aclInit(NULL)`.
///
/// # Errors
/// Any code but success and `REPEAT_INITIALIZE` (which is [`Init::AlreadyInitialized`]).
pub fn init(lib: &AclLib) -> Result<Init> {
    // SAFETY: a NULL config path is allowed (SEMANTICS.md §1).
    let code = unsafe { (lib.aclInit)(ptr::null()) };
    if code == AclError::REPEAT_INITIALIZE.raw() {
        return Ok(Init::AlreadyInitialized);
    }
    check(lib, code, "aclInit").map(|()| Init::Initialized)
}

/// `aclFinalize()`.
///
/// # Safety
/// Every notify and stream handle of this library becomes dangling: none may be used (or
/// destroyed) afterwards.
///
/// # Errors
/// The runtime's code.
pub unsafe fn finalize(lib: &AclLib) -> Result<()> {
    // SAFETY: no arguments; the caller guarantees no handle outlives this call.
    let code = unsafe { (lib.aclFinalize)() };
    check(lib, code, "aclFinalize")
}

/// `aclrtSetDevice(device)`.
///
/// # Errors
/// The runtime's code (107001 for a bad id).
pub fn set_device(lib: &AclLib, device: i32) -> Result<()> {
    // SAFETY: plain value argument.
    let code = unsafe { (lib.aclrtSetDevice)(device) };
    check(lib, code, "aclrtSetDevice")
}

/// `aclrtResetDevice(device)`.
///
/// The real runtime releases the device's default context and the streams created in it when
/// its reference count reaches zero; see the crate docs.
///
/// # Errors
/// The runtime's code (107001 for a bad id).
pub fn reset_device(lib: &AclLib, device: i32) -> Result<()> {
    // SAFETY: plain value argument.
    let code = unsafe { (lib.aclrtResetDevice)(device) };
    check(lib, code, "aclrtResetDevice")
}

/// `aclrtGetDevice(&id)`.
///
/// # Errors
/// The runtime's code (107002 with no current device).
pub fn get_device(lib: &AclLib) -> Result<i32> {
    let mut device = -1;
    // SAFETY: the out-pointer is a live local.
    let code = unsafe { (lib.aclrtGetDevice)(&mut device) };
    check(lib, code, "aclrtGetDevice").map(|()| device)
}

/// `aclrtGetDeviceCount(&count)`.
///
/// # Errors
/// The runtime's code.
pub fn get_device_count(lib: &AclLib) -> Result<u32> {
    let mut count = 0;
    // SAFETY: the out-pointer is a live local.
    let code = unsafe { (lib.aclrtGetDeviceCount)(&mut count) };
    check(lib, code, "aclrtGetDeviceCount").map(|()| count)
}

/// `aclrtDeviceCanAccessPeer(&can, device, peer)`.
///
/// # Errors
/// The runtime's code.
pub fn device_can_access_peer(lib: &AclLib, device: i32, peer: i32) -> Result<bool> {
    let mut can = 0;
    // SAFETY: the out-pointer is a live local; the rest are plain values.
    let code = unsafe { (lib.aclrtDeviceCanAccessPeer)(&mut can, device, peer) };
    check(lib, code, "aclrtDeviceCanAccessPeer").map(|()| can != 0)
}

/// `aclrtDeviceEnablePeerAccess(peer, flags)`.
///
/// # Errors
/// The runtime's code.
pub fn device_enable_peer_access(lib: &AclLib, peer: i32, flags: u32) -> Result<()> {
    // SAFETY: plain value arguments.
    let code = unsafe { (lib.aclrtDeviceEnablePeerAccess)(peer, flags) };
    check(lib, code, "aclrtDeviceEnablePeerAccess")
}

/// `aclrtDeviceGetBareTgid(&pid)`.
///
/// # Errors
/// The runtime's code.
pub fn device_get_bare_tgid(lib: &AclLib) -> Result<i32> {
    let mut pid = 0;
    // SAFETY: the out-pointer is a live local.
    let code = unsafe { (lib.aclrtDeviceGetBareTgid)(&mut pid) };
    check(lib, code, "aclrtDeviceGetBareTgid").map(|()| pid)
}

/// `aclrtCreateStream(&stream)`: a new stream on the current device, never NULL.
///
/// # Errors
/// The runtime's code (107002 with no current device); `RT_INTERNAL_ERROR` (507000) if the
/// runtime reports success but returns NULL, which would otherwise mean the default stream.
pub fn create_stream(lib: &AclLib) -> Result<aclrtStream> {
    let mut stream: aclrtStream = ptr::null_mut();
    // SAFETY: the out-pointer is a live local.
    let code = unsafe { (lib.aclrtCreateStream)(&mut stream) };
    check(lib, code, "aclrtCreateStream")?;
    if stream.is_null() {
        return Err(err!(
            RT_INTERNAL_ERROR,
            "aclrtCreateStream reported success but returned a NULL stream"
        ));
    }
    Ok(stream)
}

/// `aclrtDestroyStream(stream)`.
///
/// # Safety
/// `stream` is a live stream of this library, not NULL, and is not used after this call.
///
/// # Errors
/// The runtime's code.
pub unsafe fn destroy_stream(lib: &AclLib, stream: aclrtStream) -> Result<()> {
    // SAFETY: the caller guarantees `stream` is live and unused afterwards.
    let code = unsafe { (lib.aclrtDestroyStream)(stream) };
    check(lib, code, "aclrtDestroyStream")
}

/// `aclrtSynchronizeStream(stream)`.
///
/// # Safety
/// `stream` is NULL (the default stream) or a live stream of this library.
///
/// # Errors
/// The first failure among the tasks it waited for (107019 for an expired wait).
pub unsafe fn synchronize_stream(lib: &AclLib, stream: aclrtStream) -> Result<()> {
    // SAFETY: the caller guarantees `stream` is NULL or live.
    let code = unsafe { (lib.aclrtSynchronizeStream)(stream) };
    check(lib, code, "aclrtSynchronizeStream")
}

/// The C timeout of `aclrtSynchronizeStreamWithTimeout`: `None` is `-1` (forever); a duration is
/// in milliseconds, rounded **up** so that the call never gives up earlier than asked (a nonzero
/// duration below 1 ms is 1 ms), and saturated at `i32::MAX` (about 24.8 days).
pub fn timeout_ms(timeout: Option<Duration>) -> i32 {
    let Some(timeout) = timeout else { return -1 };
    let ms = timeout.as_millis() + u128::from(timeout.subsec_nanos() % 1_000_000 != 0);
    i32::try_from(ms).unwrap_or(i32::MAX)
}

/// `aclrtSynchronizeStreamWithTimeout(stream, timeout_ms(timeout))`.
///
/// # Safety
/// `stream` is NULL (the default stream) or a live stream of this library.
///
/// # Errors
/// `RT_STREAM_SYNC_TIMEOUT` (507046) on giving up; otherwise as [`synchronize_stream`].
pub unsafe fn synchronize_stream_with_timeout(
    lib: &AclLib,
    stream: aclrtStream,
    timeout: Option<Duration>,
) -> Result<()> {
    // SAFETY: the caller guarantees `stream` is NULL or live.
    let code = unsafe { (lib.aclrtSynchronizeStreamWithTimeout)(stream, timeout_ms(timeout)) };
    check(lib, code, "aclrtSynchronizeStreamWithTimeout")
}

/// `aclrtCreateNotify(&notify, flags)`: a new notify on the current device, never NULL.
///
/// # Errors
/// The runtime's code; `RT_INTERNAL_ERROR` (507000) for a NULL handle reported as success.
pub fn create_notify(lib: &AclLib, flags: u64) -> Result<aclrtNotify> {
    let mut notify: aclrtNotify = ptr::null_mut();
    // SAFETY: the out-pointer is a live local.
    let code = unsafe { (lib.aclrtCreateNotify)(&mut notify, flags) };
    check(lib, code, "aclrtCreateNotify")?;
    non_null_notify(notify, "aclrtCreateNotify")
}

/// `aclrtNotifyImportByKey(&notify, key, flags)`: a new handle, never NULL.
///
/// # Errors
/// The runtime's code; `RT_INTERNAL_ERROR` (507000) for a NULL handle reported as success.
pub fn notify_import_by_key(lib: &AclLib, key: &ExportKey, flags: u64) -> Result<aclrtNotify> {
    let buf = key.to_c_buf();
    let mut notify: aclrtNotify = ptr::null_mut();
    // SAFETY: the out-pointer is a live local; `buf` is a live 65-byte NUL-terminated buffer.
    let code =
        unsafe { (lib.aclrtNotifyImportByKey)(&mut notify, buf.as_ptr().cast::<c_char>(), flags) };
    check(lib, code, "aclrtNotifyImportByKey")?;
    non_null_notify(notify, "aclrtNotifyImportByKey")
}

fn non_null_notify(notify: aclrtNotify, call: &str) -> Result<aclrtNotify> {
    if notify.is_null() {
        return Err(err!(
            RT_INTERNAL_ERROR,
            "{call} reported success but returned a NULL notify"
        ));
    }
    Ok(notify)
}

/// `aclrtDestroyNotify(notify)`.
///
/// # Safety
/// `notify` is a live notify handle of this library and is not used after this call.
///
/// # Errors
/// The runtime's code.
pub unsafe fn destroy_notify(lib: &AclLib, notify: aclrtNotify) -> Result<()> {
    // SAFETY: the caller guarantees `notify` is live and unused afterwards.
    let code = unsafe { (lib.aclrtDestroyNotify)(notify) };
    check(lib, code, "aclrtDestroyNotify")
}

/// `aclrtRecordNotify(notify, stream)`.
///
/// # Safety
/// `notify` is a live notify handle of this library; `stream` is NULL or a live stream of it.
///
/// # Errors
/// The runtime's code.
#[inline]
pub unsafe fn record_notify(lib: &AclLib, notify: aclrtNotify, stream: aclrtStream) -> Result<()> {
    // SAFETY: the caller guarantees both handles.
    let code = unsafe { (lib.aclrtRecordNotify)(notify, stream) };
    check(lib, code, "aclrtRecordNotify")
}

/// `aclrtWaitAndResetNotify(notify, stream, timeout_secs)`.
///
/// # Safety
/// As [`record_notify`].
///
/// # Errors
/// The runtime's code.
pub unsafe fn wait_and_reset_notify(
    lib: &AclLib,
    notify: aclrtNotify,
    stream: aclrtStream,
    timeout_secs: u32,
) -> Result<()> {
    // SAFETY: the caller guarantees both handles.
    let code = unsafe { (lib.aclrtWaitAndResetNotify)(notify, stream, timeout_secs) };
    check(lib, code, "aclrtWaitAndResetNotify")
}

/// `aclrtGetNotifyId(notify, &id)`.
///
/// # Safety
/// `notify` is a live notify handle of this library.
///
/// # Errors
/// The runtime's code.
pub unsafe fn get_notify_id(lib: &AclLib, notify: aclrtNotify) -> Result<u32> {
    let mut id = 0;
    // SAFETY: the caller guarantees the handle; the out-pointer is a live local.
    let code = unsafe { (lib.aclrtGetNotifyId)(notify, &mut id) };
    check(lib, code, "aclrtGetNotifyId").map(|()| id)
}

/// `aclrtNotifyBatchReset(notifies, len)`.
///
/// An empty slice still reaches the C call, with a non-NULL dangling pointer and `num == 0`, so
/// that the runtime itself reports it (107000, R1).
///
/// # Safety
/// Every element is a live notify handle of this library.
///
/// # Errors
/// The runtime's code.
pub unsafe fn notify_batch_reset(lib: &AclLib, notifies: &[aclrtNotify]) -> Result<()> {
    // The C prototype takes a non-const array; give it a copy we own.
    let mut array = notifies.to_vec();
    // SAFETY: `array` is live for `array.len()` elements (a non-NULL dangling pointer when
    // empty, which C only sees together with `num == 0`); the caller guarantees the handles.
    let code = unsafe { (lib.aclrtNotifyBatchReset)(array.as_mut_ptr(), array.len()) };
    check(lib, code, "aclrtNotifyBatchReset")
}

/// `aclrtNotifyGetExportKey(notify, buf, 65, flags)`, parsed with [`ExportKey::from_c_buf`].
///
/// # Safety
/// `notify` is a live notify handle of this library.
///
/// # Errors
/// The runtime's code; `RT_PARAM_INVALID` (107000) if the runtime wrote something that is not a
/// key (no NUL within 65 bytes, a non-printable byte).
pub unsafe fn notify_get_export_key(
    lib: &AclLib,
    notify: aclrtNotify,
    flags: u64,
) -> Result<ExportKey> {
    let mut buf = [0u8; EXPORT_KEY_LEN];
    // SAFETY: the caller guarantees the handle; `buf` is a live, writable buffer of the length
    // passed.
    let code = unsafe {
        (lib.aclrtNotifyGetExportKey)(notify, buf.as_mut_ptr().cast::<c_char>(), buf.len(), flags)
    };
    check(lib, code, "aclrtNotifyGetExportKey")?;
    ExportKey::from_c_buf(&buf)
}

/// `aclrtNotifySetImportPid(notify, pids, len)`.
///
/// An empty slice still reaches the C call, with a non-NULL dangling pointer and `num == 0`, so
/// that the runtime itself reports it (107000, R6).
///
/// # Safety
/// `notify` is a live notify handle of this library.
///
/// # Errors
/// The runtime's code.
pub unsafe fn notify_set_import_pid(lib: &AclLib, notify: aclrtNotify, pids: &[i32]) -> Result<()> {
    // The C prototype takes a non-const array; give it a copy we own.
    let mut array = pids.to_vec();
    // SAFETY: the caller guarantees the handle; `array` is live for `array.len()` elements (a
    // non-NULL dangling pointer when empty, which C only sees together with `num == 0`).
    let code = unsafe { (lib.aclrtNotifySetImportPid)(notify, array.as_mut_ptr(), array.len()) };
    check(lib, code, "aclrtNotifySetImportPid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_is_the_runtime_text_or_names_the_call() {
        let e = error_for(
            107_000,
            Some("R5: len 3 < 65\n".into()),
            "aclrtNotifyGetExportKey",
        );
        assert_eq!(e.code(), AclError::RT_PARAM_INVALID);
        assert_eq!(e.reason(), "R5: len 3 < 65");

        for message in [None, Some(String::new()), Some("  \n".into())] {
            let e = error_for(507_899, message, "aclrtNotifyImportByKey");
            assert_eq!(e.code(), AclError::RT_DRV_INTERNAL_ERROR);
            assert!(e.reason().contains("aclrtNotifyImportByKey"), "{e}");
            assert!(e.reason().contains("507899"), "{e}");
        }

        // A code no table knows is still a value.
        let e = error_for(999_999, None, "aclInit");
        assert_eq!(e.code().raw(), 999_999);
        assert!(e.reason().contains("aclInit"));
    }

    #[test]
    fn timeouts_round_up_and_saturate() {
        assert_eq!(timeout_ms(None), -1);
        assert_eq!(timeout_ms(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_ms(Some(Duration::from_nanos(1))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_micros(1500))), 2);
        assert_eq!(timeout_ms(Some(Duration::from_millis(250))), 250);
        assert_eq!(timeout_ms(Some(Duration::from_secs(3))), 3000);
        assert_eq!(
            timeout_ms(Some(Duration::from_millis(i32::MAX as u64))),
            i32::MAX
        );
        assert_eq!(timeout_ms(Some(Duration::from_secs(u64::MAX))), i32::MAX);
    }
}
