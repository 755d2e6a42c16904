//! §4 "Attach and detach": a process also detaches cleanly at normal exit, even if it never
//! dropped its runtime (a `static`, `std::process::exit`, a C program that skips
//! `aclFinalize`).

use std::sync::{Arc, Mutex, Once, PoisonError, Weak};

use crate::fork::PerProcess;
use crate::registry::Registry;

/// Registries this process is attached to. Per fork generation (R17): a child's exit must not
/// detach its parent, nor wait on this list's lock if a parent thread held it at the fork.
static ATTACHED: PerProcess<Mutex<Vec<Weak<Registry>>>> = PerProcess::new(Mutex::default);

/// Detaches `reg` at normal exit if it is still attached then.
pub(crate) fn detach_at_exit(reg: &Arc<Registry>) {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // SAFETY: `atexit` stores a plain function pointer; the handler is `extern "C"`, never
        // unwinds (it catches panics), and only touches data that lives for the whole program.
        unsafe {
            libc::atexit(detach_all_at_exit);
        }
    });
    let mut list = ATTACHED
        .get()
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    list.retain(|w| w.strong_count() > 0);
    list.push(Arc::downgrade(reg));
}

extern "C" fn detach_all_at_exit() {
    let _ = std::panic::catch_unwind(|| {
        let list = std::mem::take(
            &mut *ATTACHED
                .get()
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for reg in list.iter().filter_map(Weak::upgrade) {
            reg.detach();
        }
        crate::trace::flush();
    });
}
