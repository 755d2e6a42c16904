//! The only code that touches memory a C caller passed: out-parameters, key strings, arrays.
//!
//! Each wrapper is built by an `unsafe` constructor whose contract is the C function's own
//! (a pointer is NULL or valid for what the prototype says, for the duration of the call); the
//! constructor turns NULL into `ACL_ERROR_INVALID_PARAM` (100000), and the methods after it are
//! safe. Reads and writes are unaligned, so a misaligned caller pointer is not UB on our side.
//! Nothing here ever reads a handle: those are tokens (`handles`).

use std::ffi::c_char;

use notify_api::{EXPORT_KEY_LEN, ExportKey, Result, err};

fn null(what: &str) -> notify_api::Error {
    err!(R15: INVALID_PARAM, "the pointer argument `{what}` is NULL")
}

/// An out-parameter `T *`.
#[derive(Debug)]
pub(crate) struct Out<T> {
    ptr: *mut T,
}

impl<T> Out<T> {
    /// # Safety
    /// `ptr` is NULL or valid for writes of one `T` until this call returns.
    pub(crate) unsafe fn new(ptr: *mut T, what: &str) -> Result<Self> {
        if ptr.is_null() {
            return Err(null(what));
        }
        Ok(Self { ptr })
    }

    /// Stores the result; the caller's previous value is simply overwritten (never dropped).
    pub(crate) fn write(self, value: T) {
        // SAFETY: `new` checked non-NULL and its caller promised validity for writes of a `T`
        // for the whole call; `write_unaligned` needs no alignment and drops nothing.
        unsafe { self.ptr.write_unaligned(value) }
    }
}

/// An input array `const T *` of `len` elements.
#[derive(Debug)]
pub(crate) struct ArrayIn<T> {
    ptr: *const T,
    len: usize,
}

impl<T: Copy> ArrayIn<T> {
    /// # Safety
    /// `ptr` is NULL or valid for reads of `len` consecutive `T`s until this call returns.
    pub(crate) unsafe fn new(ptr: *const T, len: usize, what: &str) -> Result<Self> {
        if ptr.is_null() {
            return Err(null(what));
        }
        Ok(Self { ptr, len })
    }

    /// Copies the elements out (`len` was checked to be non-zero by the caller when it must).
    ///
    /// # Errors
    /// `RT_PARAM_INVALID` (107000) for a count no array in memory can have.
    pub(crate) fn read(&self) -> Result<Vec<T>> {
        let max = isize::MAX as usize / size_of::<T>().max(1);
        if self.len > max {
            return Err(
                err!(R15: RT_PARAM_INVALID, "count {} is larger than any array can be",
                    self.len
                ),
            );
        }
        // Grow as we read rather than reserving `len` up front: a lying count then ends at the
        // caller's bad memory, not in a huge allocation on our side.
        let mut out = Vec::new();
        for i in 0..self.len {
            // SAFETY: `new`'s caller promised `len` readable elements; `i < len <= isize::MAX /
            // size_of::<T>()`, so the offset cannot overflow.
            out.push(unsafe { self.ptr.add(i).read_unaligned() });
        }
        Ok(out)
    }
}

/// An input key string `const char *`: NUL-terminated within [`EXPORT_KEY_LEN`] bytes when valid.
#[derive(Debug)]
pub(crate) struct KeyIn {
    ptr: *const c_char,
}

impl KeyIn {
    /// # Safety
    /// `ptr` is NULL or points to a readable C string, or to at least [`EXPORT_KEY_LEN`]
    /// readable bytes, until this call returns.
    pub(crate) unsafe fn new(ptr: *const c_char, what: &str) -> Result<Self> {
        if ptr.is_null() {
            return Err(null(what));
        }
        Ok(Self { ptr })
    }

    /// Reads the key byte by byte, stopping at the NUL or after 65 bytes, whichever comes
    /// first: never a byte beyond the terminator, since the caller's buffer may end there. What
    /// the bytes mean (R7's format checks) is `raw`'s business.
    pub(crate) fn read(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(EXPORT_KEY_LEN);
        for i in 0..EXPORT_KEY_LEN {
            // SAFETY: `new`'s caller promised a readable C string (or 65 readable bytes); we
            // stop at its NUL, so byte `i` is within it.
            let byte = unsafe { self.ptr.add(i).read() } as u8;
            buf.push(byte);
            if byte == 0 {
                break;
            }
        }
        buf
    }
}

/// An output key buffer `char *` of `len` bytes.
#[derive(Debug)]
pub(crate) struct KeyOut {
    ptr: *mut c_char,
    len: usize,
}

impl KeyOut {
    /// # Safety
    /// `ptr` is NULL or valid for writes of `len` bytes until this call returns.
    pub(crate) unsafe fn new(ptr: *mut c_char, len: usize, what: &str) -> Result<Self> {
        if ptr.is_null() {
            return Err(null(what));
        }
        Ok(Self { ptr, len })
    }

    /// The buffer's length, for `raw`'s R5 check.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Writes the key, NUL-terminated and zero-padded, into the first 65 bytes.
    pub(crate) fn write(self, key: &ExportKey) -> Result<()> {
        if self.len < EXPORT_KEY_LEN {
            return Err(err!(
                R5: RT_PARAM_INVALID,
                "key buffer length {} is below the minimum {EXPORT_KEY_LEN}",
                self.len
            ));
        }
        // SAFETY: `new`'s caller promised `len` writable bytes and `len >= EXPORT_KEY_LEN` was
        // just checked, so this slice lies within the caller's buffer; it lives only for this
        // statement and nothing else refers to that memory during the call.
        let buf = unsafe { std::slice::from_raw_parts_mut(self.ptr.cast::<u8>(), EXPORT_KEY_LEN) };
        key.write_c_buf(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code<T: std::fmt::Debug>(r: Result<T>) -> i32 {
        r.unwrap_err().code().raw()
    }

    #[test]
    fn null_pointers_are_invalid_param() {
        // SAFETY: NULL is allowed by every constructor's contract.
        unsafe {
            assert_eq!(code(Out::<i32>::new(std::ptr::null_mut(), "x")), 100_000);
            assert_eq!(code(ArrayIn::<i32>::new(std::ptr::null(), 1, "x")), 100_000);
            assert_eq!(code(KeyIn::new(std::ptr::null(), "key")), 100_000);
            assert_eq!(code(KeyOut::new(std::ptr::null_mut(), 65, "key")), 100_000);
        }
        // SAFETY: as above.
        let e = unsafe { Out::<i32>::new(std::ptr::null_mut(), "deviceId") }.unwrap_err();
        assert!(e.reason().starts_with("R15:"), "{}", e.reason());
        assert!(e.reason().contains("`deviceId`"), "{}", e.reason());
    }

    #[test]
    fn out_writes_unaligned() {
        let mut buf = [0u8; 9];
        // SAFETY: bytes 1..9 of `buf` are valid for one (unaligned) u64 write.
        let out = unsafe { Out::new(buf.as_mut_ptr().add(1).cast::<u64>(), "x") }.unwrap();
        out.write(0x0102_0304_0506_0708);
        assert_eq!(
            u64::from_ne_bytes(buf[1..].try_into().unwrap()),
            0x0102_0304_0506_0708
        );
        assert_eq!(buf[0], 0);
    }

    #[test]
    fn array_in_reads_len_elements_and_refuses_impossible_counts() {
        let pids = [7i32, 8, 9];
        // SAFETY: `pids` holds 2 (and 3) readable elements.
        let two = unsafe { ArrayIn::new(pids.as_ptr(), 2, "pid") }.unwrap();
        assert_eq!(two.read().unwrap(), [7, 8]);
        // SAFETY: zero elements are read.
        let none = unsafe { ArrayIn::new(pids.as_ptr(), 0, "pid") }.unwrap();
        assert!(none.read().unwrap().is_empty());
        // A count no array can have is refused before any element is read.
        // SAFETY: `read` refuses the count without reading.
        let huge = unsafe { ArrayIn::new(pids.as_ptr(), usize::MAX, "pid") }.unwrap();
        assert_eq!(code(huge.read()), 107_000);
    }

    #[test]
    fn key_in_stops_at_the_nul_or_after_65_bytes() {
        let key = b"abc\0def";
        // SAFETY: a NUL-terminated string.
        let k = unsafe { KeyIn::new(key.as_ptr().cast(), "key") }.unwrap();
        assert_eq!(k.read(), b"abc\0");
        let long = [b'a'; 100];
        // SAFETY: 100 readable bytes, more than the 65 read.
        let k = unsafe { KeyIn::new(long.as_ptr().cast(), "key") }.unwrap();
        assert_eq!(k.read(), [b'a'; EXPORT_KEY_LEN]);
    }

    #[test]
    fn key_out_writes_65_bytes_zero_padded_and_nothing_past() {
        let key = ExportKey::new("k3y").unwrap();
        let mut buf = [0xffu8; 80];
        // SAFETY: 80 writable bytes.
        let out = unsafe { KeyOut::new(buf.as_mut_ptr().cast(), buf.len(), "key") }.unwrap();
        assert_eq!(out.len(), 80);
        out.write(&key).unwrap();
        assert_eq!(&buf[..4], b"k3y\0");
        assert!(
            buf[4..EXPORT_KEY_LEN].iter().all(|&b| b == 0),
            "zero-padded"
        );
        assert!(
            buf[EXPORT_KEY_LEN..].iter().all(|&b| b == 0xff),
            "untouched"
        );
        let mut short = [0xffu8; 64];
        // SAFETY: 64 writable bytes.
        let out = unsafe { KeyOut::new(short.as_mut_ptr().cast(), 64, "key") }.unwrap();
        assert_eq!(code(out.write(&key)), 107_000);
        assert!(short.iter().all(|&b| b == 0xff), "nothing written");
    }
}
