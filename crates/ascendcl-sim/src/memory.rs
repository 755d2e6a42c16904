//! The C symbols of `SEMANTICS.md` §5: device memory, copies and sets, IPC memory.
//!
//! Device pointers are addresses of the simulator's device address space, passed to
//! `backend_sim::raw` as they are (it tells device pointers from host pointers, M2); keys are
//! read from the caller's C string as bytes (at most 65, never past the NUL).

#![allow(non_snake_case)]

use std::ffi::{c_char, c_void};

use acl_abi::types::*;
use backend_sim::raw::{self, Cx};
use notify_api::{Result, err};

use crate::boundary::boundary;
use crate::cache;
use crate::ptr::{ArrayIn, KeyIn, KeyOut, Out};
use crate::runtime;

/// M1/M2: a NULL pointer argument is 100000.
fn not_null(ptr: *const c_void, what: &str) -> Result<usize> {
    if ptr.is_null() {
        return Err(err!(R15: INVALID_PARAM, "the pointer argument `{what}` is NULL"));
    }
    Ok(ptr.addr())
}

/// `aclError aclrtMalloc(void **devPtr, size_t size, aclrtMemMallocPolicy policy);` (M1)
///
/// # Safety
/// `devPtr` is NULL or valid for writing one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtMalloc(
    devPtr: *mut *mut c_void,
    size: usize,
    policy: aclrtMemMallocPolicy,
) -> aclError {
    boundary("aclrtMalloc", || {
        let rt = runtime::get()?;
        // SAFETY: this function's contract: NULL or valid for one write.
        let out = unsafe { Out::new(devPtr, "devPtr") }?;
        let addr = raw::malloc(&rt.session, Cx::Current, size, policy)?;
        out.write(std::ptr::with_exposed_provenance_mut(addr as usize));
        Ok(())
    })
}

/// `aclError aclrtFree(void *devPtr);` (M6: waits for this process's queued tasks first)
#[unsafe(no_mangle)]
pub extern "C" fn aclrtFree(devPtr: *mut c_void) -> aclError {
    boundary("aclrtFree", || {
        let rt = runtime::get()?;
        let ptr = not_null(devPtr, "devPtr")?;
        raw::free(&rt.session, ptr)
    })
}

/// `aclError aclrtMallocHost(void **hostPtr, size_t size);` (M1: ordinary host memory)
///
/// # Safety
/// `hostPtr` is NULL or valid for writing one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtMallocHost(hostPtr: *mut *mut c_void, size: usize) -> aclError {
    boundary("aclrtMallocHost", || {
        let rt = runtime::get()?;
        // SAFETY: this function's contract: NULL or valid for one write.
        let out = unsafe { Out::new(hostPtr, "hostPtr") }?;
        let addr = raw::malloc_host(&rt.session, size)?;
        out.write(std::ptr::with_exposed_provenance_mut(addr));
        Ok(())
    })
}

/// `aclError aclrtFreeHost(void *hostPtr);` (M1)
#[unsafe(no_mangle)]
pub extern "C" fn aclrtFreeHost(hostPtr: *mut c_void) -> aclError {
    boundary("aclrtFreeHost", || {
        let rt = runtime::get()?;
        let ptr = not_null(hostPtr, "hostPtr")?;
        raw::free_host(&rt.session, ptr)
    })
}

/// `aclError aclrtMemcpy(void *dst, size_t destMax, const void *src, size_t count,
/// aclrtMemcpyKind kind);` — completes before it returns (M2).
///
/// # Safety
/// Host pointers among `dst` and `src` are valid for `count` bytes (written, read), as for C
/// `memcpy`; device pointers are checked.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtMemcpy(
    dst: *mut c_void,
    destMax: usize,
    src: *const c_void,
    count: usize,
    kind: aclrtMemcpyKind,
) -> aclError {
    boundary("aclrtMemcpy", || {
        let rt = runtime::get()?;
        let (dst, src) = (not_null(dst, "dst")?, not_null(src, "src")?);
        // SAFETY: this function's contract: host pointers valid for `count` bytes.
        unsafe { raw::memcpy(&rt.session, Cx::Current, dst, destMax, src, count, kind) }
    })
}

/// `aclError aclrtMemcpyAsync(void *dst, size_t destMax, const void *src, size_t count,
/// aclrtMemcpyKind kind, aclrtStream stream);` — a stream task (M2).
///
/// # Safety
/// As [`aclrtMemcpy`], and host memory stays valid until the stream has run the copy.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtMemcpyAsync(
    dst: *mut c_void,
    destMax: usize,
    src: *const c_void,
    count: usize,
    kind: aclrtMemcpyKind,
    stream: aclrtStream,
) -> aclError {
    boundary("aclrtMemcpyAsync", || {
        let (dst, src) = (dst.addr(), src.addr());
        cache::with(|hot| {
            if dst == 0 || src == 0 {
                return Err(err!(R15: INVALID_PARAM, "a pointer argument of the copy is NULL"));
            }
            let session = &hot.rt.session;
            let stream = hot.stream_arg(stream);
            // SAFETY: this function's contract: host pointers valid until the copy ran.
            unsafe {
                raw::memcpy_async(session, Cx::Current, dst, destMax, src, count, kind, stream)
            }
        })
    })
}

/// `aclError aclrtMemset(void *devPtr, size_t maxCount, int32_t value, size_t count);` (M2)
#[unsafe(no_mangle)]
pub extern "C" fn aclrtMemset(
    devPtr: *mut c_void,
    maxCount: usize,
    value: i32,
    count: usize,
) -> aclError {
    boundary("aclrtMemset", || {
        let rt = runtime::get()?;
        let ptr = not_null(devPtr, "devPtr")?;
        raw::memset(&rt.session, Cx::Current, ptr, maxCount, value, count)
    })
}

/// `aclError aclrtMemsetAsync(void *devPtr, size_t maxCount, int32_t value, size_t count,
/// aclrtStream stream);` (M2)
#[unsafe(no_mangle)]
pub extern "C" fn aclrtMemsetAsync(
    devPtr: *mut c_void,
    maxCount: usize,
    value: i32,
    count: usize,
    stream: aclrtStream,
) -> aclError {
    boundary("aclrtMemsetAsync", || {
        let ptr = devPtr.addr();
        cache::with(|hot| {
            if ptr == 0 {
                return Err(err!(R15: INVALID_PARAM, "the pointer argument `devPtr` is NULL"));
            }
            let session = &hot.rt.session;
            let stream = hot.stream_arg(stream);
            raw::memset_async(session, Cx::Current, ptr, maxCount, value, count, stream)
        })
    })
}

/// `aclError aclrtGetMemInfo(aclrtMemAttr attr, size_t *free, size_t *total);` — the current
/// device's free and total bytes (M1; the same for every `attr`, sim).
///
/// # Safety
/// `free` and `total` are NULL or valid for writing one `size_t` each.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtGetMemInfo(
    attr: aclrtMemAttr,
    free: *mut usize,
    total: *mut usize,
) -> aclError {
    boundary("aclrtGetMemInfo", || {
        let rt = runtime::get()?;
        // SAFETY: this function's contract: NULL or valid for one write each.
        let (free, total) = unsafe { (Out::new(free, "free")?, Out::new(total, "total")?) };
        let (f, t) = raw::get_mem_info(&rt.session, Cx::Current, attr)?;
        free.write(f as usize);
        total.write(t as usize);
        Ok(())
    })
}

/// `aclError aclrtIpcMemGetExportKey(void *devPtr, size_t size, char *key, size_t len,
/// uint64_t flags);` (M3)
///
/// # Safety
/// `key` is NULL or valid for writing `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtIpcMemGetExportKey(
    devPtr: *mut c_void,
    size: usize,
    key: *mut c_char,
    len: usize,
    flags: u64,
) -> aclError {
    boundary("aclrtIpcMemGetExportKey", || {
        let rt = runtime::get()?;
        let ptr = not_null(devPtr, "devPtr")?;
        // SAFETY: this function's contract: NULL or valid for writing `len` bytes.
        let out = unsafe { KeyOut::new(key, len, "key") }?;
        let exported = raw::ipc_export(&rt.session, Cx::Current, ptr, size, flags, out.len())?;
        out.write(&exported)
    })
}

/// `aclError aclrtIpcMemSetImportPid(const char *key, int32_t *pid, size_t num);` (M4: 1 to
/// 31 bare tgids per call, cumulative)
///
/// # Safety
/// `key` is NULL or a readable C string; `pid` is NULL or valid for reading `num` `int32_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtIpcMemSetImportPid(
    key: *const c_char,
    pid: *mut i32,
    num: usize,
) -> aclError {
    boundary("aclrtIpcMemSetImportPid", || {
        let rt = runtime::get()?;
        // SAFETY: this function's contract: NULL or a readable C string.
        let key = unsafe { KeyIn::new(key, "key") }?;
        // SAFETY: this function's contract: NULL or valid for reading `num` pids.
        let pids = unsafe { ArrayIn::new(pid.cast_const(), num, "pid") }?;
        // A count `raw` refuses is not read.
        let read = if (1..=31).contains(&num) {
            pids.read()?
        } else {
            Vec::new()
        };
        raw::ipc_set_import_pid(&rt.session, &key.read(), num, &read)
    })
}

/// `aclError aclrtIpcMemImportByKey(void **devPtr, const char *key, uint64_t flags);` (M5)
///
/// # Safety
/// `devPtr` is NULL or valid for writing one pointer; `key` is NULL or a readable C string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtIpcMemImportByKey(
    devPtr: *mut *mut c_void,
    key: *const c_char,
    flags: u64,
) -> aclError {
    boundary("aclrtIpcMemImportByKey", || {
        let rt = runtime::get()?;
        // SAFETY: this function's contract: NULL or valid for one write.
        let out = unsafe { Out::new(devPtr, "devPtr") }?;
        // SAFETY: this function's contract: NULL or a readable C string.
        let key = unsafe { KeyIn::new(key, "key") }?;
        let addr = raw::ipc_import(&rt.session, Cx::Current, &key.read(), flags)?;
        out.write(std::ptr::with_exposed_provenance_mut(addr as usize));
        Ok(())
    })
}

/// `aclError aclrtIpcMemClose(const char *key);` — an importer unmaps, the exporter revokes
/// (M6).
///
/// # Safety
/// `key` is NULL or a readable C string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtIpcMemClose(key: *const c_char) -> aclError {
    boundary("aclrtIpcMemClose", || {
        let rt = runtime::get()?;
        // SAFETY: this function's contract: NULL or a readable C string.
        let key = unsafe { KeyIn::new(key, "key") }?;
        raw::ipc_close(&rt.session, &key.read())
    })
}
