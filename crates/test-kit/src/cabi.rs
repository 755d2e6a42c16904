//! The C-ABI driver: runs a [`Call`] through the exported `extern "C"` functions of
//! `libascendcl.so` (the `ascendcl` rlib, the same symbols), exactly as a C caller would, in
//! this process.
//!
//! Around every call it checks what §2 says of every call, whatever the code: the code is one
//! of §2; after a failure `aclGetRecentErrMsg` is non-NULL, starts with the rule that refused
//! the call, and reading it does not change it; after a success it is unchanged. A breach is
//! reported in [`Reply::problem`].
//!
//! `aclInit` state is process-wide: one process runs one C session at a time.

use std::ffi::{CStr, c_char, c_void};

use ascendcl::*;
use notify_api::{AclError, EXPORT_KEY_LEN};

use crate::call::{Call, Ptr, Reply};
use crate::keys::cites_rule;
use crate::model::memory::{HOST_MAX, host_bytes};

/// The largest key buffer a call allocates (a longer `len` is passed with a NULL buffer only).
pub const MAX_KEY_BUF: usize = 4096;

fn h(raw: u64) -> *mut c_void {
    // A token is an integer in a pointer's clothes: never dereferenced by the library (R10).
    std::ptr::without_provenance_mut(raw as usize)
}

fn raw(handle: *mut c_void) -> u64 {
    handle.addr() as u64
}

fn out<T>(o: Option<&mut T>) -> *mut T {
    o.map_or(std::ptr::null_mut(), |r| r as *mut T)
}

/// `aclGetRecentErrMsg` as (pointer, text).
pub fn err_msg() -> (usize, Option<String>) {
    let p = aclGetRecentErrMsg();
    if p.is_null() {
        return (0, None);
    }
    // SAFETY: the library returns a NUL-terminated string that stays valid until the next
    // failure in this thread; it is copied at once.
    let text = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
    (p.addr(), Some(text))
}

/// Runs `call` in this process and returns what it did.
pub fn run(call: &Call) -> Reply {
    let before = err_msg();
    let mut reply = Reply::default();
    reply.code = invoke(call, &mut reply);
    let after = err_msg();
    let code = reply.code;
    if !AclError::ALL.contains(&AclError::from_raw(code)) {
        reply.problem = Some(format!(
            "{call:?} returned {code}, which is not a code of SEMANTICS.md §2"
        ));
    } else if code == 0 {
        if after != before {
            reply.problem = Some(format!(
                "{call:?} succeeded but changed aclGetRecentErrMsg from {:?} to {:?} (§2)",
                before.1, after.1
            ));
        }
    } else {
        match &after.1 {
            None => {
                reply.problem = Some(format!(
                    "{call:?} failed with {code} but aclGetRecentErrMsg is NULL (§2)"
                ));
            }
            Some(text) if !cites_rule(text) => {
                reply.problem = Some(format!(
                    "{call:?} failed with {code}; its message does not start with a rule: {text:?}"
                ));
            }
            Some(_) if err_msg() != after => {
                reply.problem = Some(format!(
                    "{call:?}: reading aclGetRecentErrMsg changed it (§2)"
                ));
            }
            Some(_) => {}
        }
        reply.message = after.1;
    }
    reply
}

fn invoke(call: &Call, reply: &mut Reply) -> i32 {
    match call {
        Call::Init => aclInit(std::ptr::null()),
        Call::Finalize => aclFinalize(),
        Call::SetDevice { device } => aclrtSetDevice(*device),
        Call::ResetDevice { device } => aclrtResetDevice(*device),
        Call::GetDevice { null } => {
            let mut d = -7;
            // SAFETY: NULL or a live `&mut i32`.
            let rc = unsafe { aclrtGetDevice(out((!null).then_some(&mut d))) };
            if rc == 0 {
                reply.value = Some(d.into());
            }
            rc
        }
        Call::DeviceCount { null } => {
            let mut n = 0u32;
            // SAFETY: NULL or a live `&mut u32`.
            let rc = unsafe { aclrtGetDeviceCount(out((!null).then_some(&mut n))) };
            if rc == 0 {
                reply.value = Some(n.into());
            }
            rc
        }
        Call::BareTgid { null } => {
            let mut p = 0;
            // SAFETY: NULL or a live `&mut i32`.
            let rc = unsafe { aclrtDeviceGetBareTgid(out((!null).then_some(&mut p))) };
            if rc == 0 {
                reply.value = Some(p.into());
            }
            rc
        }
        Call::CanAccessPeer { null, device, peer } => {
            let mut can = -1;
            // SAFETY: NULL or a live `&mut i32`.
            let rc = unsafe {
                aclrtDeviceCanAccessPeer(out((!null).then_some(&mut can)), *device, *peer)
            };
            if rc == 0 {
                reply.value = Some(can.into());
            }
            rc
        }
        Call::EnablePeer { peer, flags } => aclrtDeviceEnablePeerAccess(*peer, *flags),
        Call::CreateStream { null } => {
            let mut s = std::ptr::null_mut();
            // SAFETY: NULL or a live `&mut aclrtStream`.
            let rc = unsafe { aclrtCreateStream(out((!null).then_some(&mut s))) };
            if rc == 0 {
                reply.token = Some(raw(s));
            }
            rc
        }
        Call::DestroyStream { stream } => aclrtDestroyStream(h(*stream)),
        Call::Sync { stream, timeout_ms } => match timeout_ms {
            None => aclrtSynchronizeStream(h(*stream)),
            Some(ms) => aclrtSynchronizeStreamWithTimeout(h(*stream), *ms),
        },
        Call::Create { null, flags } => {
            let mut n = std::ptr::null_mut();
            // SAFETY: NULL or a live `&mut aclrtNotify`.
            let rc = unsafe { aclrtCreateNotify(out((!null).then_some(&mut n)), *flags) };
            if rc == 0 {
                reply.token = Some(raw(n));
                reply.id = notify_id(n);
            }
            rc
        }
        Call::Destroy { notify } => aclrtDestroyNotify(h(*notify)),
        Call::Record { notify, stream } => aclrtRecordNotify(h(*notify), h(*stream)),
        Call::Wait {
            notify,
            stream,
            timeout_s,
        } => aclrtWaitAndResetNotify(h(*notify), h(*stream), *timeout_s),
        Call::GetId { notify, null } => {
            let mut id = u32::MAX;
            // SAFETY: NULL or a live `&mut u32`; the handle is never dereferenced.
            let rc = unsafe { aclrtGetNotifyId(h(*notify), out((!null).then_some(&mut id))) };
            if rc == 0 {
                reply.value = Some(id.into());
            }
            rc
        }
        Call::BatchReset { notifies, null_num } => {
            let handles: Option<Vec<*mut c_void>> =
                notifies.as_ref().map(|v| v.iter().map(|&t| h(t)).collect());
            let (ptr, len) = match &handles {
                Some(v) => (v.as_ptr(), v.len()),
                None => (std::ptr::null(), *null_num),
            };
            // SAFETY: NULL, or `len` readable handles (the library never writes through it).
            unsafe { aclrtNotifyBatchReset(ptr.cast_mut(), len) }
        }
        Call::Export {
            notify,
            null,
            len,
            flags,
        } => {
            if *null {
                // SAFETY: a NULL buffer; the length goes with it.
                return unsafe {
                    aclrtNotifyGetExportKey(h(*notify), std::ptr::null_mut(), *len, *flags)
                };
            }
            assert!(*len <= MAX_KEY_BUF, "harness bug: a {len}-byte key buffer");
            let mut buf = vec![0xeeu8; *len];
            // SAFETY: `len` writable bytes.
            let rc = unsafe {
                aclrtNotifyGetExportKey(
                    h(*notify),
                    buf.as_mut_ptr().cast::<c_char>(),
                    buf.len(),
                    *flags,
                )
            };
            if rc == 0 {
                buf.truncate(EXPORT_KEY_LEN);
                reply.key = Some(buf);
            }
            rc
        }
        Call::SetPid {
            notify,
            pids,
            null_num,
        } => {
            let (ptr, len) = match pids {
                Some(p) => (p.as_ptr(), p.len()),
                None => (std::ptr::null(), *null_num),
            };
            // SAFETY: NULL, or `len` readable pids (the library never writes through it).
            unsafe { aclrtNotifySetImportPid(h(*notify), ptr.cast_mut(), len) }
        }
        Call::Import {
            null_out,
            key,
            flags,
        } => {
            // The bytes, a NUL, and zeros up to past 65 bytes: the library reads at most 65.
            let buf = key.as_ref().map(|k| {
                let mut b = k.clone();
                b.push(0);
                b.resize(b.len().max(EXPORT_KEY_LEN + 1), 0);
                b
            });
            let key_ptr = buf
                .as_ref()
                .map_or(std::ptr::null(), |b| b.as_ptr().cast::<c_char>());
            let mut n = std::ptr::null_mut();
            // SAFETY: NULL or a live `&mut aclrtNotify`; NULL or a NUL-terminated buffer.
            let rc = unsafe {
                aclrtNotifyImportByKey(out((!null_out).then_some(&mut n)), key_ptr, *flags)
            };
            if rc == 0 {
                reply.token = Some(raw(n));
                reply.id = notify_id(n);
            }
            rc
        }
        memory => invoke_memory(memory, reply),
    }
}

/// A pointer argument: its value, and the host buffer behind it if it is one (at least
/// `count` bytes, at most [`HOST_MAX`], so that a copy the model did not expect cannot run past
/// it).
fn ptr_arg(p: &Ptr, count: u64) -> (Option<Vec<u8>>, u64) {
    match p {
        Ptr::Addr(a) => (None, *a),
        Ptr::Host { seed, len } => {
            // At least one byte, so that the buffer has an address of its own (never NULL).
            let n = (*len).max(count.min(HOST_MAX)).max(1);
            let mut buf = host_bytes(*seed, *len as usize);
            buf.resize(n as usize, 0);
            (Some(buf), 0)
        }
    }
}

/// The pointer a [`ptr_arg`] stands for: its host buffer's address, or the value.
fn addr_of(buf: &mut Option<Vec<u8>>, a: u64) -> *mut c_void {
    buf.as_mut()
        .map_or(h(a), |b| b.as_mut_ptr().cast::<c_void>())
}

/// A key argument: the bytes, a NUL, and zeros up to past 65 bytes (the library reads at most
/// 65), or NULL.
fn key_buf(key: Option<&Vec<u8>>) -> Option<Vec<u8>> {
    key.map(|k| {
        let mut b = k.clone();
        b.push(0);
        b.resize(b.len().max(EXPORT_KEY_LEN + 1), 0);
        b
    })
}

fn key_ptr(buf: Option<&Vec<u8>>) -> *const c_char {
    buf.map_or(std::ptr::null(), |b| b.as_ptr().cast::<c_char>())
}

fn invoke_memory(call: &Call, reply: &mut Reply) -> i32 {
    match call {
        Call::Malloc { null, size, policy } => {
            let mut p = std::ptr::null_mut();
            // SAFETY: NULL or a live `&mut *mut c_void`.
            let rc =
                unsafe { aclrtMalloc(out((!null).then_some(&mut p)), *size as usize, *policy) };
            if rc == 0 {
                reply.token = Some(raw(p));
            }
            rc
        }
        Call::Free { ptr } => {
            let (mut buf, a) = ptr_arg(ptr, 0);
            aclrtFree(addr_of(&mut buf, a))
        }
        Call::MemInfo {
            attr,
            null_free,
            null_total,
        } => {
            let (mut free, mut total) = (0usize, 0usize);
            // SAFETY: NULL or live `&mut usize`s.
            let rc = unsafe {
                aclrtGetMemInfo(
                    *attr,
                    out((!null_free).then_some(&mut free)),
                    out((!null_total).then_some(&mut total)),
                )
            };
            if rc == 0 {
                reply.mem_info = Some((free as u64, total as u64));
            }
            rc
        }
        Call::Memcpy {
            dst,
            dest_max,
            src,
            count,
            kind,
            stream,
        } => {
            let (mut dbuf, da) = ptr_arg(dst, *count);
            let (sbuf, sa) = ptr_arg(src, *count);
            let d = addr_of(&mut dbuf, da);
            let s = sbuf
                .as_ref()
                .map_or(h(sa).cast_const(), |b| b.as_ptr().cast::<c_void>());
            let (dm, n) = (*dest_max as usize, *count as usize);
            let rc = match stream {
                // SAFETY: host pointers are buffers of at least `count` bytes (or HOST_MAX, past
                // which the model expects no copy); device pointers are checked by the library.
                None => unsafe { aclrtMemcpy(d, dm, s, n, *kind) },
                // SAFETY: as above; the model expects an accepted async copy only between device
                // pointers, so no host buffer has to outlive this call.
                Some(st) => unsafe { aclrtMemcpyAsync(d, dm, s, n, *kind, h(*st)) },
            };
            if rc == 0
                && let Some(mut b) = dbuf
            {
                b.truncate(n);
                reply.bytes = Some(b);
            }
            rc
        }
        Call::Memset {
            ptr,
            max,
            value,
            count,
            stream,
        } => {
            // A set never writes through a host pointer (M2): a host buffer is still made, so
            // that a simulator that did would not corrupt this process.
            let (mut buf, a) = ptr_arg(ptr, *count);
            let p = addr_of(&mut buf, a);
            let (m, n) = (*max as usize, *count as usize);
            match stream {
                None => aclrtMemset(p, m, *value, n),
                Some(st) => aclrtMemsetAsync(p, m, *value, n, h(*st)),
            }
        }
        Call::MemExport {
            ptr,
            size,
            null,
            len,
            flags,
        } => {
            let (mut host, a) = ptr_arg(ptr, 0);
            let a = addr_of(&mut host, a);
            if *null {
                // SAFETY: a NULL buffer; the length goes with it.
                return unsafe {
                    aclrtIpcMemGetExportKey(a, *size as usize, std::ptr::null_mut(), *len, *flags)
                };
            }
            assert!(*len <= MAX_KEY_BUF, "harness bug: a {len}-byte key buffer");
            let mut buf = vec![0xeeu8; *len];
            // SAFETY: `len` writable bytes.
            let rc = unsafe {
                aclrtIpcMemGetExportKey(
                    a,
                    *size as usize,
                    buf.as_mut_ptr().cast::<c_char>(),
                    buf.len(),
                    *flags,
                )
            };
            if rc == 0 {
                buf.truncate(EXPORT_KEY_LEN);
                reply.key = Some(buf);
            }
            rc
        }
        Call::MemSetPid {
            key,
            pids,
            null_num,
        } => {
            let kb = key_buf(key.as_ref());
            let (ptr, len) = match pids {
                Some(p) => (p.as_ptr(), p.len()),
                None => (std::ptr::null(), *null_num),
            };
            // SAFETY: NULL or a NUL-terminated buffer; NULL or `len` readable pids.
            unsafe { aclrtIpcMemSetImportPid(key_ptr(kb.as_ref()), ptr.cast_mut(), len) }
        }
        Call::MemImport {
            null_out,
            key,
            flags,
        } => {
            let kb = key_buf(key.as_ref());
            let mut p = std::ptr::null_mut();
            // SAFETY: NULL or a live `&mut *mut c_void`; NULL or a NUL-terminated buffer.
            let rc = unsafe {
                aclrtIpcMemImportByKey(
                    out((!null_out).then_some(&mut p)),
                    key_ptr(kb.as_ref()),
                    *flags,
                )
            };
            if rc == 0 {
                reply.token = Some(raw(p));
            }
            rc
        }
        Call::MemClose { key } => {
            let kb = key_buf(key.as_ref());
            // SAFETY: NULL or a NUL-terminated buffer.
            unsafe { aclrtIpcMemClose(key_ptr(kb.as_ref())) }
        }
        other => unreachable!("not a memory call: {other:?}"),
    }
}

/// `aclrtGetNotifyId` of a handle just made (`None` if it fails, which the harness reports).
fn notify_id(n: *mut c_void) -> Option<u32> {
    let mut id = u32::MAX;
    // SAFETY: a live `&mut u32`; the handle is never dereferenced.
    let rc = unsafe { aclrtGetNotifyId(n, &mut id) };
    (rc == 0).then_some(id)
}
