//! The calls of `SEMANTICS.md` §5 and §6 that this library does not implement yet: each refuses
//! with `ACL_ERROR_RT_FEATURE_NOT_SUPPORT` (207000) and a message, never a crash.

#![allow(non_snake_case, clippy::missing_safety_doc)]

use std::ffi::{c_char, c_void};

use acl_abi::types::*;
use notify_api::err;

use crate::boundary::boundary;

macro_rules! pending {
    ($( fn $name:ident($($arg:ident: $ty:ty),*); )*) => {
        $(
            #[doc = concat!("`", stringify!($name), "`: not simulated yet (207000).")]
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn $name($($arg: $ty),*) -> aclError {
                $( let _ = $arg; )*
                boundary(stringify!($name), || {
                    Err(err!(
                        S1: RT_FEATURE_NOT_SUPPORT,
                        "{} is not simulated yet",
                        stringify!($name)
                    ))
                })
            }
        )*
    };
}

pending! {
    fn aclrtMalloc(devPtr: *mut *mut c_void, size: usize, policy: aclrtMemMallocPolicy);
    fn aclrtFree(devPtr: *mut c_void);
    fn aclrtMallocHost(hostPtr: *mut *mut c_void, size: usize);
    fn aclrtFreeHost(hostPtr: *mut c_void);
    fn aclrtMemcpy(dst: *mut c_void, destMax: usize, src: *const c_void, count: usize, kind: aclrtMemcpyKind);
    fn aclrtMemcpyAsync(dst: *mut c_void, destMax: usize, src: *const c_void, count: usize, kind: aclrtMemcpyKind, stream: aclrtStream);
    fn aclrtMemset(devPtr: *mut c_void, maxCount: usize, value: i32, count: usize);
    fn aclrtMemsetAsync(devPtr: *mut c_void, maxCount: usize, value: i32, count: usize, stream: aclrtStream);
    fn aclrtGetMemInfo(attr: aclrtMemAttr, free: *mut usize, total: *mut usize);
    fn aclrtIpcMemGetExportKey(devPtr: *mut c_void, size: usize, key: *mut c_char, len: usize, flags: u64);
    fn aclrtIpcMemSetImportPid(key: *const c_char, pid: *mut i32, num: usize);
    fn aclrtIpcMemImportByKey(devPtr: *mut *mut c_void, key: *const c_char, flags: u64);
    fn aclrtIpcMemClose(key: *const c_char);
    fn aclrtLaunchHostFunc(stream: aclrtStream, r#fn: aclrtHostFunc, args: *mut c_void);
    fn aclrtCreateEvent(event: *mut aclrtEvent);
    fn aclrtCreateEventWithFlag(event: *mut aclrtEvent, flag: u32);
    fn aclrtDestroyEvent(event: aclrtEvent);
    fn aclrtRecordEvent(event: aclrtEvent, stream: aclrtStream);
    fn aclrtResetEvent(event: aclrtEvent, stream: aclrtStream);
    fn aclrtStreamWaitEvent(stream: aclrtStream, event: aclrtEvent);
    fn aclrtSynchronizeEvent(event: aclrtEvent);
    fn aclrtQueryEventStatus(event: aclrtEvent, status: *mut aclrtEventRecordedStatus);
    fn aclrtEventElapsedTime(ms: *mut f32, startEvent: aclrtEvent, endEvent: aclrtEvent);
    fn aclrtStreamQuery(stream: aclrtStream, status: *mut aclrtStreamStatus);
    fn aclrtDestroyStreamForce(stream: aclrtStream);
    fn aclrtResetDeviceForce(deviceId: i32);
    fn aclrtSynchronizeDevice();
    fn aclrtGetRunMode(runMode: *mut aclrtRunMode);
}
