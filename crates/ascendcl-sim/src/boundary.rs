//! The panic boundary every export runs in, and the per-thread error text behind
//! `aclGetRecentErrMsg` (SEMANTICS.md §2).

use std::any::Any;
use std::cell::RefCell;
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use notify_api::{AclError, Error, Result, Rule};

thread_local! {
    /// The reason of the last failing call in this thread. Replaced only by the next failure,
    /// so the pointer `aclGetRecentErrMsg` hands out stays valid until then.
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// Runs one export: `Ok` is `ACL_SUCCESS`; an error returns its code and records its reason for
/// `aclGetRecentErrMsg`; a panic is caught and becomes 507000 (never an unwind into C).
#[inline(always)]
pub(crate) fn boundary(name: &'static str, call: impl FnOnce() -> Result<()>) -> i32 {
    // The `Result` is turned into the code inside the unwinding frame, where it was made: moved
    // out of it whole (it is as large as an `Error`), its copy cost a store-forwarding stall
    // that tripled the cost of a record through the C ABI.
    match catch_unwind(AssertUnwindSafe(|| match call() {
        Ok(()) => AclError::SUCCESS.raw(),
        Err(e) => failed(e),
    })) {
        Ok(code) => code,
        Err(payload) => failed(Error::rule(
            Rule::R14,
            AclError::RT_INTERNAL_ERROR,
            format_args!(
                "{name} panicked ({}); this is a bug in ascendcl-sim, please report it",
                panic_text(payload.as_ref())
            ),
        )),
    }
}

/// Records `e`'s reason for `aclGetRecentErrMsg` and returns its code.
#[cold]
#[inline(never)]
fn failed(e: Error) -> i32 {
    // Every refusal names its rule; the ones that carry none (a bad configuration, an OS failure
    // under the registry) come from the simulator's own setup, §4.
    match e.rule_of() {
        Some(_) => set_last_error(&e.reason()),
        None => set_last_error(&format!("§4: {}", e.reason())),
    }
    e.code().raw()
}

fn panic_text(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "a non-string panic payload"
    }
}

/// Stores `reason` as this thread's last error (a NUL inside it would end the C string early,
/// so it is replaced).
fn set_last_error(reason: &str) {
    let text = CString::new(reason.replace('\0', "\u{fffd}")).unwrap_or_default();
    // During thread teardown the slot may already be gone: then nobody can read it either.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = Some(text));
}

/// This thread's last error text, or NULL if no call failed in this thread yet.
pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR
        .try_with(|slot| {
            slot.borrow()
                .as_ref()
                .map_or(std::ptr::null(), |text| text.as_ptr())
        })
        .unwrap_or(std::ptr::null())
}

/// Reads this thread's last error text (for tests).
#[cfg(test)]
fn last_error() -> Option<String> {
    LAST_ERROR.with(|slot| {
        slot.borrow()
            .as_ref()
            .map(|t| t.to_string_lossy().into_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify_api::err;

    #[test]
    fn success_failure_and_panic() {
        std::thread::spawn(|| {
            assert!(last_error_ptr().is_null(), "no failure yet in this thread");
            assert_eq!(boundary("t", || Ok(())), 0);
            assert!(last_error_ptr().is_null(), "success sets nothing");

            let code = boundary("t", || Err(err!(R5: RT_PARAM_INVALID, "short\0buffer")));
            assert_eq!(code, 107_000);
            assert_eq!(last_error().as_deref(), Some("R5: short\u{fffd}buffer"));
            let ptr = last_error_ptr();
            assert_eq!(boundary("t", || Ok(())), 0);
            assert_eq!(
                last_error_ptr(),
                ptr,
                "success leaves the text and its pointer"
            );

            let code = boundary("aclrtBoom", || panic!("boom {}", 42));
            assert_eq!(code, 507_000);
            let text = last_error().unwrap();
            assert!(
                text.starts_with("R14: aclrtBoom panicked (boom 42)"),
                "{text}"
            );

            let code = boundary("aclrtBoom", || std::panic::panic_any(7u8));
            assert_eq!(code, 507_000);
            assert!(last_error().unwrap().contains("non-string"));
        })
        .join()
        .unwrap();
    }
}
