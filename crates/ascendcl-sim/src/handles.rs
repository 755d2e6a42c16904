//! R10: the handles C sees are opaque tokens, never pointers.
//!
//! A token is a 64-bit value carried in the `void *` of `aclrtNotify`/`aclrtStream`:
//!
//! ```text
//!  63             32 31  30 29       20 19           0
//! +-----------------+------+-----------+--------------+
//! |  session tag    |  K   | generation|  slot index  |
//! +-----------------+------+-----------+--------------+
//!   32 random bits   2 bits   10 bits       20 bits
//! ```
//!
//! - **tag**: 32 bits of OS randomness drawn at `aclInit` (never 0, never the previous
//!   session's), so a token copied from another process, or kept across
//!   `aclFinalize`/`aclInit`, is recognised as foreign instead of aliasing a local handle.
//!   A non-zero tag also keeps every token non-NULL, and far from any mapped address.
//! - **K**: the kind (notify, stream, context, event), so one kind passed as another is rejected.
//! - **generation**: bumped each time the slot is freed, so a destroyed token stays dead when its
//!   slot is reused (107017, R8/R10). Freed slots are reused first-in first-out, and only once
//!   [`MIN_FREE`] of them are free, so a slot comes back at most once every `MIN_FREE`
//!   allocations and its 10-bit generation wraps only after more than a million handles.
//! - **index**: the slot in this process's table (at most 2^20 live handles per kind).
//!
//! Decoding a token is arithmetic on an integer followed by a bounds-checked table lookup: no
//! value a caller passes is ever dereferenced, so garbage can only produce 107017.
//!
//! Each table also counts its removals ([`Table::generation`]): the per-thread caches of the hot
//! calls (`cache`) remember the count a handle was looked up at, and use the handle again without
//! a lookup only while no handle of the table has been removed or closed since.

use std::collections::VecDeque;
use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use notify_api::{Result, err};

const INDEX_BITS: u32 = 20;
const GEN_BITS: u32 = 10;
const KIND_BITS: u32 = 2;
const KIND_SHIFT: u32 = INDEX_BITS + GEN_BITS;
const TAG_SHIFT: u32 = 32;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;
const GEN_MASK: u64 = (1 << GEN_BITS) - 1;

/// The most live handles of one kind.
const MAX_SLOTS: usize = 1 << INDEX_BITS;

/// Freed slots wait until this many are free before one is reused (see the module docs).
const MIN_FREE: usize = 1024;

/// What a token refers to.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Notify,
    Stream,
    Context,
    Event,
}

impl Kind {
    const fn bit(self) -> u64 {
        match self {
            Self::Notify => 0,
            Self::Stream => 1,
            Self::Context => 2,
            Self::Event => 3,
        }
    }

    const fn from_bit(bit: u64) -> Option<Self> {
        match bit {
            0 => Some(Self::Notify),
            1 => Some(Self::Stream),
            2 => Some(Self::Context),
            3 => Some(Self::Event),
            _ => None,
        }
    }

    const fn name(self) -> &'static str {
        match self {
            Self::Notify => "notify",
            Self::Stream => "stream",
            Self::Context => "context",
            Self::Event => "event",
        }
    }
}

/// The fields of a token.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Token {
    tag: u32,
    kind: u64,
    generation: u16,
    index: u32,
}

impl Token {
    fn encode(self) -> u64 {
        (u64::from(self.tag) << TAG_SHIFT)
            | (self.kind << KIND_SHIFT)
            | ((u64::from(self.generation) & GEN_MASK) << INDEX_BITS)
            | (u64::from(self.index) & INDEX_MASK)
    }

    fn decode(raw: u64) -> Self {
        Self {
            tag: (raw >> TAG_SHIFT) as u32,
            kind: (raw >> KIND_SHIFT) & ((1 << KIND_BITS) - 1),
            generation: ((raw >> INDEX_BITS) & GEN_MASK) as u16,
            index: (raw & INDEX_MASK) as u32,
        }
    }
}

/// The integer a C handle carries (its address bits; nothing is read through it).
pub(crate) fn raw(handle: *mut c_void) -> u64 {
    handle.addr() as u64
}

fn to_handle(token: u64) -> *mut c_void {
    // A token is an integer in a pointer's clothes: no provenance, never dereferenced.
    std::ptr::without_provenance_mut(token as usize)
}

#[derive(Debug)]
struct Slot<T> {
    generation: u16,
    value: Option<Arc<T>>,
}

#[derive(Debug)]
struct Inner<T> {
    slots: Vec<Slot<T>>,
    free: VecDeque<u32>,
    /// Set by `aclFinalize`: nothing may be added any more.
    closed: bool,
}

/// One kind of handle of one `aclInit` session.
///
/// Values are held as `Arc`s: a call that looked a handle up keeps its object alive even if
/// another thread destroys the handle meanwhile (the token is dead at once; the object goes when
/// the last in-flight call drops it).
#[derive(Debug)]
pub(crate) struct Table<T> {
    tag: u32,
    kind: Kind,
    /// Bumped (under `inner`'s lock, `SeqCst`) by every `remove` and by `close`: a value looked
    /// up at generation `g` is still live while the generation is `g` (see `cache`).
    generation: AtomicU64,
    inner: Mutex<Inner<T>>,
}

impl<T> Table<T> {
    pub(crate) fn new(tag: u32, kind: Kind) -> Self {
        Self {
            tag,
            kind,
            generation: AtomicU64::new(0),
            inner: Mutex::new(Inner {
                slots: Vec::new(),
                free: VecDeque::new(),
                closed: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores `value` and returns its new token. On failure `value` is dropped (destroyed).
    pub(crate) fn insert(&self, value: T) -> Result<*mut c_void> {
        let mut inner = self.lock();
        if inner.closed {
            return Err(
                err!(R15: UNINITIALIZE, "aclFinalize ran while this call was in progress; the new {} was released",
                    self.kind.name()
                ),
            );
        }
        let reuse = inner.free.len() >= MIN_FREE || inner.slots.len() >= MAX_SLOTS;
        let index = match inner.free.pop_front() {
            Some(index) if reuse => index,
            popped => {
                if let Some(index) = popped {
                    // Not reused yet: it keeps its place at the head of the queue.
                    inner.free.push_front(index);
                }
                if inner.slots.len() >= MAX_SLOTS {
                    return Err(
                        err!(R10: RT_INTERNAL_ERROR, "this process already holds {MAX_SLOTS} live {} handles",
                            self.kind.name()
                        ),
                    );
                }
                inner.slots.push(Slot {
                    generation: 0,
                    value: None,
                });
                (inner.slots.len() - 1) as u32
            }
        };
        let slot = &mut inner.slots[index as usize];
        slot.value = Some(Arc::new(value));
        Ok(to_handle(
            Token {
                tag: self.tag,
                kind: self.kind.bit(),
                generation: slot.generation,
                index,
            }
            .encode(),
        ))
    }

    /// The object behind `handle` (a live token of this table), or 107017.
    pub(crate) fn get(&self, handle: *mut c_void) -> Result<Arc<T>> {
        self.get_at(handle).map(|(value, _)| value)
    }

    /// As [`Table::get`], with the table's generation at the lookup: the handle stays live at
    /// least as long as [`Table::generation`] still returns it.
    pub(crate) fn get_at(&self, handle: *mut c_void) -> Result<(Arc<T>, u64)> {
        let inner = self.lock();
        let index = self.locate(&inner, handle)?;
        let value = Arc::clone(
            inner.slots[index]
                .value
                .as_ref()
                .expect("locate returns live slots only"),
        );
        // Read under the lock that every bump is made under: no removal lies between the lookup
        // and this value.
        Ok((value, self.generation.load(Ordering::SeqCst)))
    }

    /// How many removals (and closes) this table has seen.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Kills `handle` and returns its object; 107017 if it is not a live token of this table.
    pub(crate) fn remove(&self, handle: *mut c_void) -> Result<Arc<T>> {
        let mut inner = self.lock();
        let index = self.locate(&inner, handle)?;
        let slot = &mut inner.slots[index];
        let value = slot.value.take().expect("locate returns live slots only");
        slot.generation = (slot.generation.wrapping_add(1)) & GEN_MASK as u16;
        inner.free.push_back(index as u32);
        self.generation.fetch_add(1, Ordering::SeqCst);
        Ok(value)
    }

    /// Kills every token whose object satisfies `pred` and returns them with their objects
    /// (S1 `aclrtResetDeviceForce`).
    pub(crate) fn remove_where(&self, pred: impl Fn(&T) -> bool) -> Vec<(*mut c_void, Arc<T>)> {
        let mut inner = self.lock();
        let mut removed = Vec::new();
        for index in 0..inner.slots.len() {
            let slot = &mut inner.slots[index];
            if slot.value.as_deref().is_some_and(&pred) {
                let value = slot.value.take().expect("checked");
                let token = Token {
                    tag: self.tag,
                    kind: self.kind.bit(),
                    generation: slot.generation,
                    index: index as u32,
                }
                .encode();
                slot.generation = (slot.generation.wrapping_add(1)) & GEN_MASK as u16;
                inner.free.push_back(index as u32);
                removed.push((to_handle(token), value));
            }
        }
        if !removed.is_empty() {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        removed
    }

    /// `aclFinalize`: kills every token and returns the objects, and refuses later inserts.
    pub(crate) fn close(&self) -> Vec<Arc<T>> {
        let mut inner = self.lock();
        inner.closed = true;
        inner.free.clear();
        self.generation.fetch_add(1, Ordering::SeqCst);
        let values = inner.slots.iter_mut().filter_map(|s| s.value.take());
        values.collect()
    }

    /// Validates a token: 107017 unless it names a live slot of this table.
    fn locate(&self, inner: &Inner<T>, handle: *mut c_void) -> Result<usize> {
        let raw = raw(handle);
        let what = self.kind.name();
        let token = Token::decode(raw);
        if token.tag != self.tag {
            return Err(
                err!(R10: RT_INVALID_HANDLE, "{raw:#x} is not a {what} handle of this process (unknown, from another \
                     process, or from before the last aclFinalize)"
                ),
            );
        }
        if token.kind != self.kind.bit() {
            return Err(
                err!(R10: RT_INVALID_HANDLE, "{raw:#x} is a {} handle, not a {what} handle",
                    Kind::from_bit(token.kind).map_or("unknown", Kind::name)
                ),
            );
        }
        let index = token.index as usize;
        match inner.slots.get(index) {
            Some(slot) if slot.generation == token.generation && slot.value.is_some() => Ok(index),
            Some(_) => Err(
                err!(R10: RT_INVALID_HANDLE, "{what} handle {raw:#x} was destroyed"
                ),
            ),
            None => Err(
                err!(R10: RT_INVALID_HANDLE, "{raw:#x} is not a {what} handle this process handed out"
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout of the module docs: the kind now takes 2 bits (30..=31, for contexts and
    /// events too) and the generation 10 (20..=29), so the largest generation is 0x3ff (it was
    /// 0x7ff with 11 bits and a 1-bit kind at bit 31).
    #[test]
    fn token_fields_round_trip() {
        let t = Token {
            tag: 0xa5a5_0001,
            kind: 1,
            generation: 0x3ff,
            index: 0xf_ffff,
        };
        assert_eq!(Token::decode(t.encode()), t);
        assert_eq!(t.encode() >> 32, 0xa5a5_0001);
        assert_eq!(
            (t.encode() >> 30) & 0b11,
            1,
            "the kind sits at bits 30..=31"
        );
        assert_eq!(
            (t.encode() >> 20) & 0x3ff,
            0x3ff,
            "the generation at 20..=29"
        );
        for kind in [Kind::Notify, Kind::Stream, Kind::Context, Kind::Event] {
            let t = Token {
                kind: kind.bit(),
                ..t
            };
            assert_eq!(Token::decode(t.encode()), t);
            assert_eq!(Kind::from_bit(Token::decode(t.encode()).kind), Some(kind));
        }
        // A generation wider than its 10 bits wraps instead of spilling into the kind.
        let wide = Token {
            generation: 0x7ff,
            ..t
        };
        assert_eq!(Token::decode(wide.encode()).generation, 0x3ff);
        assert_eq!(Token::decode(wide.encode()).kind, 1);
    }

    #[test]
    fn live_dead_foreign_and_wrong_kind() {
        let notifies: Table<u32> = Table::new(7, Kind::Notify);
        let streams: Table<u32> = Table::new(7, Kind::Stream);
        let other: Table<u32> = Table::new(8, Kind::Notify);
        let contexts: Table<u32> = Table::new(7, Kind::Context);
        let a = notifies.insert(10).unwrap();
        let b = notifies.insert(11).unwrap();
        let s = streams.insert(12).unwrap();
        let x = contexts.insert(13).unwrap();
        assert!(!a.is_null() && a != b);
        assert_eq!(*notifies.get(a).unwrap(), 10);
        assert_eq!(*notifies.get(b).unwrap(), 11);
        let code = |r: Result<Arc<u32>>| r.unwrap_err().code().raw();
        assert_eq!(code(notifies.get(s)), 107_017, "a stream is not a notify");
        assert_eq!(code(streams.get(a)), 107_017, "a notify is not a stream");
        assert_eq!(code(other.get(a)), 107_017, "another tag is foreign");
        assert_eq!(code(notifies.get(x)), 107_017, "a context is not a notify");
        assert_eq!(code(contexts.get(s)), 107_017, "a stream is not a context");
        assert_eq!(*contexts.get(x).unwrap(), 13);
        assert_eq!(code(notifies.get(to_handle(raw(a) + 100))), 107_017);
        assert_eq!(*notifies.remove(a).unwrap(), 10);
        assert_eq!(code(notifies.get(a)), 107_017, "destroyed");
        assert_eq!(code(notifies.remove(a)), 107_017, "destroyed twice");
        assert_eq!(
            *notifies.get(b).unwrap(),
            11,
            "the other handle is untouched"
        );
    }

    #[test]
    fn freed_slots_come_back_late_and_with_a_new_generation() {
        let table: Table<usize> = Table::new(1, Kind::Notify);
        let first = table.insert(0).unwrap();
        table.remove(first).unwrap();
        // Until MIN_FREE slots are free, a new handle takes a new slot.
        let mut live = Vec::new();
        for i in 0..MIN_FREE {
            let h = table.insert(i).unwrap();
            assert_ne!(raw(h) & INDEX_MASK, raw(first) & INDEX_MASK);
            live.push(h);
        }
        for h in live.drain(..MIN_FREE - 1) {
            table.remove(h).unwrap();
        }
        // Now MIN_FREE slots are free: the oldest one (first's) comes back, one generation on.
        let again = table.insert(99).unwrap();
        assert_eq!(raw(again) & INDEX_MASK, raw(first) & INDEX_MASK);
        assert_ne!(again, first);
        assert_eq!(table.get(first).unwrap_err().code().raw(), 107_017);
        assert_eq!(*table.get(again).unwrap(), 99);
    }

    #[test]
    fn removals_and_close_bump_the_generation() {
        let table: Table<u8> = Table::new(5, Kind::Notify);
        let a = table.insert(1).unwrap();
        let b = table.insert(2).unwrap();
        let (_, g) = table.get_at(a).unwrap();
        assert_eq!(g, table.generation(), "inserts and lookups leave it");
        assert!(table.remove(to_handle(raw(a) + 100)).is_err());
        assert_eq!(g, table.generation(), "a failed remove leaves it");
        table.remove(b).unwrap();
        assert_eq!(table.generation(), g + 1);
        table.close();
        assert_eq!(table.generation(), g + 2);
    }

    #[test]
    fn close_kills_everything_and_refuses_inserts() {
        let table: Table<u8> = Table::new(3, Kind::Stream);
        let h = table.insert(1).unwrap();
        assert_eq!(table.close().len(), 1);
        assert_eq!(table.get(h).unwrap_err().code().raw(), 107_017);
        assert_eq!(table.insert(2).unwrap_err().code().raw(), 100_001);
    }
}
