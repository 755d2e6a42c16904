//! The function manifest: every C function of the surface, once.

/// Expands the callback macro `$callback` with every function of the ACL surface.
///
/// `acl_abi::for_each_function!(my_macro)` expands to
///
/// ```text
/// my_macro! {
///     #[doc = "..."]
///     fn aclrtCreateNotify(notify: *mut aclrtNotify, flag: u64) -> aclError;
///     ...
/// }
/// ```
///
/// so a callback matches
/// `$( $(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; )*`.
/// The order is that of `SEMANTICS.md`: the §1 notify calls, the §1 runtime calls, §5, §6.
/// Prototypes are CANN's exactly, with the official argument names (`fn` is `r#fn`); types are
/// spelled with the names of [`crate::types`] and `std::ffi::{c_char, c_void}`, which must be in
/// scope where the callback expands. Every function returns something (`-> aclError` or
/// `-> *const c_char`); a function without arguments has an empty list.
///
/// Functions and their arguments keep their C names, so items generated from them want
/// `#[allow(non_snake_case)]`.
///
/// # Examples
///
/// A table of function pointers, as a `dlopen` loader needs:
///
/// ```
/// use acl_abi::types::*;
/// use std::ffi::{c_char, c_void};
///
/// macro_rules! fn_table {
///     ($( $(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; )*) => {
///         #[allow(non_snake_case)]
///         pub struct AclLib {
///             $( $(#[$meta])* pub $name: unsafe extern "C" fn($($arg: $ty),*) -> $ret, )*
///         }
///     };
/// }
/// acl_abi::for_each_function!(fn_table);
/// ```
///
/// Signature checks of a library that exports the functions (here a stand-in module generated
/// by a third callback): a prototype that drifts from the manifest is a compile error.
///
/// ```
/// use acl_abi::types::*;
/// use std::ffi::{c_char, c_void};
///
/// mod exports {
///     use acl_abi::types::*;
///     use std::ffi::{c_char, c_void};
///
///     pub trait Zero { fn zero() -> Self; }
///     impl Zero for aclError { fn zero() -> Self { 0 } }
///     impl Zero for *const c_char { fn zero() -> Self { std::ptr::null() } }
///
///     macro_rules! stubs {
///         ($( $(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; )*) => {
///             $(
///                 #[allow(non_snake_case, unused_variables)]
///                 pub extern "C" fn $name($($arg: $ty),*) -> $ret { Zero::zero() }
///             )*
///         };
///     }
///     acl_abi::for_each_function!(stubs);
/// }
///
/// macro_rules! check_exports {
///     ($( $(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; )*) => {
///         $( const _: unsafe extern "C" fn($($ty),*) -> $ret = exports::$name; )*
///     };
/// }
/// acl_abi::for_each_function!(check_exports);
/// ```
#[macro_export]
macro_rules! for_each_function {
    ($callback:ident) => {
        $callback! {
            // §1: notify calls.
            #[doc = "Creates a notify on the current device; `flag` is an `ACL_NOTIFY_*` value."]
            fn aclrtCreateNotify(notify: *mut aclrtNotify, flag: u64) -> aclError;
            #[doc = "Drops this handle's reference; the creator's destroy also revokes the key (R8)."]
            fn aclrtDestroyNotify(notify: aclrtNotify) -> aclError;
            #[doc = "Enqueues on `stream` a task that sets the notify (R1, R2)."]
            fn aclrtRecordNotify(notify: aclrtNotify, stream: aclrtStream) -> aclError;
            #[doc = "Enqueues on `stream` a wait that resets the notify; `timeout` in s, 0 = forever (R3)."]
            fn aclrtWaitAndResetNotify(
                notify: aclrtNotify,
                stream: aclrtStream,
                timeout: u32
            ) -> aclError;
            #[doc = "Writes the notify's id on its device."]
            fn aclrtGetNotifyId(notify: aclrtNotify, notifyId: *mut u32) -> aclError;
            #[doc = "Clears the flags of `num` notifies now, from the host (R1)."]
            fn aclrtNotifyBatchReset(notifies: *mut aclrtNotify, num: usize) -> aclError;
            #[doc = "Exports a notify this process created: writes its key, `len` >= 65 (R5)."]
            fn aclrtNotifyGetExportKey(
                notify: aclrtNotify,
                key: *mut c_char,
                len: usize,
                flags: u64
            ) -> aclError;
            #[doc = "Opens an exported notify in this process by its key (R7)."]
            fn aclrtNotifyImportByKey(
                notify: *mut aclrtNotify,
                key: *const c_char,
                flags: u64
            ) -> aclError;
            #[doc = "Adds a bare tgid to an exported notify's whitelist (R6)."]
            fn aclrtNotifySetImportPid(notify: aclrtNotify, pid: *mut i32, num: usize) -> aclError;
            #[doc = "Writes this process's pid as the driver sees it (R16)."]
            fn aclrtDeviceGetBareTgid(pid: *mut i32) -> aclError;

            // §1: runtime calls.
            #[doc = "Initialises ACL in this process; `configPath` may be NULL."]
            fn aclInit(configPath: *const c_char) -> aclError;
            #[doc = "Releases ACL in this process."]
            fn aclFinalize() -> aclError;
            #[doc = "Makes the device's default context current in this thread (C1)."]
            fn aclrtSetDevice(deviceId: i32) -> aclError;
            #[doc = "Releases this process's use of the device."]
            fn aclrtResetDevice(deviceId: i32) -> aclError;
            #[doc = "Writes the device of this thread's current context."]
            fn aclrtGetDevice(deviceId: *mut i32) -> aclError;
            #[doc = "Writes the number of devices."]
            fn aclrtGetDeviceCount(count: *mut u32) -> aclError;
            #[doc = "Creates a stream in the current context (R13)."]
            fn aclrtCreateStream(stream: *mut aclrtStream) -> aclError;
            #[doc = "Destroys a stream."]
            fn aclrtDestroyStream(stream: aclrtStream) -> aclError;
            #[doc = "Waits for the tasks enqueued on `stream` and reports their first failure (R2)."]
            fn aclrtSynchronizeStream(stream: aclrtStream) -> aclError;
            #[doc = "As aclrtSynchronizeStream, giving up after `timeout` ms (-1 = forever) (R2)."]
            fn aclrtSynchronizeStreamWithTimeout(stream: aclrtStream, timeout: i32) -> aclError;
            #[doc = "Writes 1 when `deviceId` can access the memory of `peerDeviceId`, else 0."]
            fn aclrtDeviceCanAccessPeer(
                canAccessPeer: *mut i32,
                deviceId: i32,
                peerDeviceId: i32
            ) -> aclError;
            #[doc = "Enables access from the current device to `peerDeviceId`; `flags` must be 0 (R7)."]
            fn aclrtDeviceEnablePeerAccess(peerDeviceId: i32, flags: u32) -> aclError;
            #[doc = "This thread's last error text, or NULL (SEMANTICS.md section 2)."]
            fn aclGetRecentErrMsg() -> *const c_char;

            // §5: device memory and IPC memory.
            #[doc = "Allocates device memory on the current device (M1)."]
            fn aclrtMalloc(
                devPtr: *mut *mut c_void,
                size: usize,
                policy: aclrtMemMallocPolicy
            ) -> aclError;
            #[doc = "Frees device memory, after this process's queued tasks (M1, M6)."]
            fn aclrtFree(devPtr: *mut c_void) -> aclError;
            #[doc = "Allocates host memory (M1)."]
            fn aclrtMallocHost(hostPtr: *mut *mut c_void, size: usize) -> aclError;
            #[doc = "Frees memory from aclrtMallocHost (M1)."]
            fn aclrtFreeHost(hostPtr: *mut c_void) -> aclError;
            #[doc = "Copies `count` bytes and returns when done (M2)."]
            fn aclrtMemcpy(
                dst: *mut c_void,
                destMax: usize,
                src: *const c_void,
                count: usize,
                kind: aclrtMemcpyKind
            ) -> aclError;
            #[doc = "Enqueues a copy of `count` bytes on `stream` (M2)."]
            fn aclrtMemcpyAsync(
                dst: *mut c_void,
                destMax: usize,
                src: *const c_void,
                count: usize,
                kind: aclrtMemcpyKind,
                stream: aclrtStream
            ) -> aclError;
            #[doc = "Sets `count` bytes to `value` and returns when done (M2)."]
            fn aclrtMemset(
                devPtr: *mut c_void,
                maxCount: usize,
                value: i32,
                count: usize
            ) -> aclError;
            #[doc = "Enqueues a set of `count` bytes on `stream` (M2)."]
            fn aclrtMemsetAsync(
                devPtr: *mut c_void,
                maxCount: usize,
                value: i32,
                count: usize,
                stream: aclrtStream
            ) -> aclError;
            #[doc = "Writes the current device's free and total bytes (M1)."]
            fn aclrtGetMemInfo(attr: aclrtMemAttr, free: *mut usize, total: *mut usize) -> aclError;
            #[doc = "Exports a page-aligned range of device memory: writes its key (M3)."]
            fn aclrtIpcMemGetExportKey(
                devPtr: *mut c_void,
                size: usize,
                key: *mut c_char,
                len: usize,
                flags: u64
            ) -> aclError;
            #[doc = "Adds bare tgids to an exported range's whitelist (M4)."]
            fn aclrtIpcMemSetImportPid(key: *const c_char, pid: *mut i32, num: usize) -> aclError;
            #[doc = "Maps exported device memory into this process (M5)."]
            fn aclrtIpcMemImportByKey(
                devPtr: *mut *mut c_void,
                key: *const c_char,
                flags: u64
            ) -> aclError;
            #[doc = "Unmaps an import, or revokes the key of an export (M6)."]
            fn aclrtIpcMemClose(key: *const c_char) -> aclError;

            // §6: host functions, events, contexts, stream and device calls.
            #[doc = "Enqueues on `stream` a call of `fn(args)` on a runtime thread (H1)."]
            fn aclrtLaunchHostFunc(
                stream: aclrtStream,
                r#fn: aclrtHostFunc,
                args: *mut c_void
            ) -> aclError;
            #[doc = "Creates an event in the current context (E1)."]
            fn aclrtCreateEvent(event: *mut aclrtEvent) -> aclError;
            #[doc = "Creates an event with `ACL_EVENT_*` flags (E1)."]
            fn aclrtCreateEventWithFlag(event: *mut aclrtEvent, flag: u32) -> aclError;
            #[doc = "Destroys an event (E1)."]
            fn aclrtDestroyEvent(event: aclrtEvent) -> aclError;
            #[doc = "Enqueues on `stream` a task that completes the event and stamps its time (E1)."]
            fn aclrtRecordEvent(event: aclrtEvent, stream: aclrtStream) -> aclError;
            #[doc = "Enqueues on `stream` a task that returns the event to never-recorded (E1)."]
            fn aclrtResetEvent(event: aclrtEvent, stream: aclrtStream) -> aclError;
            #[doc = "Makes `stream` wait for the work recorded before the event (E1)."]
            fn aclrtStreamWaitEvent(stream: aclrtStream, event: aclrtEvent) -> aclError;
            #[doc = "Blocks until the event completes (E1)."]
            fn aclrtSynchronizeEvent(event: aclrtEvent) -> aclError;
            #[doc = "Writes whether the event has completed (E1)."]
            fn aclrtQueryEventStatus(
                event: aclrtEvent,
                status: *mut aclrtEventRecordedStatus
            ) -> aclError;
            #[doc = "Writes the milliseconds between two completed events (E1)."]
            fn aclrtEventElapsedTime(
                ms: *mut f32,
                startEvent: aclrtEvent,
                endEvent: aclrtEvent
            ) -> aclError;
            #[doc = "Creates a context on `deviceId` and makes it current in this thread (C1)."]
            fn aclrtCreateContext(context: *mut aclrtContext, deviceId: i32) -> aclError;
            #[doc = "Destroys a created context with its streams and events (C1)."]
            fn aclrtDestroyContext(context: aclrtContext) -> aclError;
            #[doc = "Makes `context` current in this thread (C1)."]
            fn aclrtSetCurrentContext(context: aclrtContext) -> aclError;
            #[doc = "Writes this thread's current context (C1)."]
            fn aclrtGetCurrentContext(context: *mut aclrtContext) -> aclError;
            #[doc = "Writes whether `stream` has nothing queued or running (S1)."]
            fn aclrtStreamQuery(stream: aclrtStream, status: *mut aclrtStreamStatus) -> aclError;
            #[doc = "Destroys `stream` at once, dropping its queued tasks (S1)."]
            fn aclrtDestroyStreamForce(stream: aclrtStream) -> aclError;
            #[doc = "Releases everything this process holds on the device (S1)."]
            fn aclrtResetDeviceForce(deviceId: i32) -> aclError;
            #[doc = "Waits for every stream of the current device (S1)."]
            fn aclrtSynchronizeDevice() -> aclError;
            #[doc = "Writes where the program runs; the simulator answers ACL_HOST (S1)."]
            fn aclrtGetRunMode(runMode: *mut aclrtRunMode) -> aclError;
        }
    };
}
