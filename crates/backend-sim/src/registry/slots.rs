//! Notify slots: allocation (R11), the references processes hold (R8), and freeing.
//!
//! A slot lists the processes holding it by holder code (process slot and generation), at most
//! 16 of them (the creator and the 15 importers a whitelist admits, R6). This process counts its
//! own references in `Local::refs`; its holder code stays in the slot while that count is
//! non-zero. A slot is freed once none of its holders is alive.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;

use notify_api::{Result, err};

use super::layout::*;
use super::procs::Holder;
use super::{Guard, LocalRef, Registry, reclaim};

/// Where a notify lives: device, slot index, and the generation the slot had when we took it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct SlotRef {
    pub device: u32,
    pub index: u32,
    pub generation: u32,
}

/// One reference this process holds on a notify (R8). The user's handle owns one, and every
/// task enqueued with it clones the `Arc`, so a slot is never freed under a pending task.
#[derive(Debug)]
pub(crate) struct NotifyRef {
    reg: Arc<Registry>,
    slot: SlotRef,
    /// The reference was already dropped together with the handle.
    released: AtomicBool,
}

impl NotifyRef {
    pub(crate) fn new(reg: Arc<Registry>, slot: SlotRef) -> Self {
        Self {
            reg,
            slot,
            released: AtomicBool::new(false),
        }
    }

    #[inline]
    pub(crate) fn slot(&self) -> &NotifySlot {
        self.reg.slot(self.slot.device, self.slot.index)
    }

    pub(crate) fn slot_ref(&self) -> SlotRef {
        self.slot
    }

    pub(crate) fn registry(&self) -> &Arc<Registry> {
        &self.reg
    }

    /// The handle's destroy released this reference already (see `Registry::handle_destroyed`).
    pub(crate) fn mark_released(&self) {
        self.released.store(true, Relaxed);
    }
}

impl Drop for NotifyRef {
    fn drop(&mut self) {
        if !*self.released.get_mut() && self.reg.is_own() {
            self.reg.release(self.slot);
        }
    }
}

impl Registry {
    /// The live slot `r` names, or `None` if it was freed or reused (or scribbled over).
    pub(crate) fn live(&self, r: SlotRef) -> Option<&NotifySlot> {
        if r.device >= self.devices() || r.index >= self.capacity() {
            return None;
        }
        let s = self.slot(r.device, r.index);
        (s.state.load(Relaxed) == SLOT_LIVE && s.generation.load(Relaxed) == r.generation)
            .then_some(s)
    }

    /// One past the highest slot ever used on `device`.
    pub(crate) fn high_water(&self, device: u32) -> u32 {
        self.header().high_water[device as usize]
            .load(Relaxed)
            .min(self.capacity())
    }

    /// R11: creates a notify on `device` (in range: the caller checked). A full device is
    /// reclaimed (R9) before it is reported full.
    pub(crate) fn create(&self, device: u32, flags: u32) -> Result<SlotRef> {
        let mut g = self.lock()?;
        reclaim::step(&mut g);
        let index = match free_index(&g, device) {
            Some(i) => i,
            None => {
                reclaim::sweep(&mut g);
                free_index(&g, device).ok_or_else(|| {
                    err!(
                        R11: RT_NO_NOTIFY_RESOURCE,
                        "device {device} already holds {} live notifies",
                        self.capacity()
                    )
                })?
            }
        };
        let me = self.my_code();
        let s = self.slot(device, index);
        s.flag.store(0, Relaxed);
        s.waiters.store(0, Relaxed);
        s.recorder_cpu.store(0, Relaxed);
        s.creator.store(me, Relaxed);
        s.creator_tgid.store(self.tgid(), Relaxed);
        s.create_flags.store(flags, Relaxed);
        s.export.store(EXPORT_NONE, Relaxed);
        s.export_flags.store(0, Relaxed);
        s.whitelist_len.store(0, Relaxed);
        s.secret.store(0, Relaxed);
        for (i, h) in s.holders.iter().enumerate() {
            h.store(if i == 0 { me } else { 0 }, Relaxed);
        }
        s.state.store(SLOT_LIVE, Relaxed);
        let hdr = self.header();
        hdr.free_hint[device as usize].store((index + 1) % self.capacity(), Relaxed);
        let hw = &hdr.high_water[device as usize];
        if hw.load(Relaxed).min(self.capacity()) <= index {
            hw.store(index + 1, Relaxed);
        }
        let slot = SlotRef {
            device,
            index,
            generation: s.generation.load(Relaxed),
        };
        g.local.refs.insert(
            (device, index),
            LocalRef {
                generation: slot.generation,
                count: 1,
                handle_live: true,
            },
        );
        Ok(slot)
    }

    /// R8: the user's handle to `r` is gone; if we created it, its key is revoked. With
    /// `last_ref` (no task holds the notify) the reference is dropped in the same critical
    /// section.
    pub(crate) fn handle_destroyed(&self, r: SlotRef, creator: bool, last_ref: bool) {
        let Ok(mut g) = self.lock() else { return };
        reclaim::step(&mut g);
        if creator && let Some(s) = self.live(r) {
            s.export.store(EXPORT_REVOKED, Relaxed);
        }
        if last_ref {
            g.release_locked(r);
            return;
        }
        if let Some(l) = g
            .local
            .refs
            .get_mut(&(r.device, r.index))
            .filter(|l| l.generation == r.generation)
        {
            l.handle_live = false;
        }
    }

    /// R8: one of this process's `NotifyRef`s to `r` is gone; the last one drops our holder
    /// code, and the slot is freed once no holder is alive.
    pub(crate) fn release(&self, r: SlotRef) {
        let Ok(mut g) = self.lock() else { return };
        g.release_locked(r);
    }
}

/// The first free slot of `device`, from its hint.
fn free_index(g: &Guard<'_>, device: u32) -> Option<u32> {
    let reg = g.reg;
    let cap = reg.capacity();
    let hint = reg.header().free_hint[device as usize].load(Relaxed) % cap;
    (0..cap)
        .map(|i| (hint + i) % cap)
        .find(|&i| reg.slot(device, i).state.load(Relaxed) != SLOT_LIVE)
}

impl Guard<'_> {
    /// `Registry::release` with the lock held.
    pub(crate) fn release_locked(&mut self, r: SlotRef) {
        let key = (r.device, r.index);
        let Some(l) = self
            .local
            .refs
            .get_mut(&key)
            .filter(|l| l.generation == r.generation)
        else {
            return;
        };
        l.count = l.count.saturating_sub(1);
        if l.count > 0 {
            return;
        }
        self.local.refs.remove(&key);
        if self.reg.live(r).is_some() {
            let me = self.reg.my_code();
            self.drop_holder(r, me);
            self.free_if_unheld(r);
        }
    }

    /// Adds `code` to the holders of `r` (a no-op if it is there). Dead and departed holders
    /// make room first; `false` if 16 live processes already hold it.
    pub(crate) fn add_holder(&mut self, r: SlotRef, code: u32) -> bool {
        for _ in 0..2 {
            let Some(s) = self.reg.live(r) else {
                return false;
            };
            if s.holders.iter().any(|h| h.load(Relaxed) == code) {
                return true;
            }
            if let Some(free) = s.holders.iter().find(|h| h.load(Relaxed) == 0) {
                free.store(code, Relaxed);
                return true;
            }
            self.prune_holders(r);
        }
        false
    }

    /// Removes `code` from the holders of `r`.
    pub(crate) fn drop_holder(&self, r: SlotRef, code: u32) {
        if let Some(s) = self.reg.live(r) {
            for h in &s.holders {
                let _ = h.compare_exchange(code, 0, Relaxed, Relaxed);
            }
        }
    }

    /// Clears the entries of processes that are gone, and reclaims those that died (R9).
    fn prune_holders(&mut self, r: SlotRef) {
        for i in 0..HOLDERS {
            let Some(s) = self.reg.live(r) else { return };
            let code = s.holders[i].load(Relaxed);
            match self.holder(code) {
                Holder::Alive => {}
                Holder::Gone => s.holders[i].store(0, Relaxed),
                Holder::Dead(p) => reclaim::reclaim_proc(self, p),
            }
        }
    }

    /// R8/R9: frees `r` once none of its holders is alive, probing only its own holders.
    pub(crate) fn free_if_unheld(&mut self, r: SlotRef) {
        self.prune_holders(r);
        if let Some(s) = self.reg.live(r)
            && s.holders.iter().all(|h| h.load(Relaxed) == 0)
        {
            self.free_slot(r.device, r.index);
        }
    }

    /// Returns slot `device`/`index` to the free pool: a new generation, so keys and handles of
    /// the old notify never resolve to the next one (R5c).
    pub(crate) fn free_slot(&self, device: u32, index: u32) {
        let reg = self.reg;
        let s = reg.slot(device, index);
        s.state.store(SLOT_FREE, Relaxed);
        for h in &s.holders {
            h.store(0, Relaxed);
        }
        s.generation
            .store(s.generation.load(Relaxed).wrapping_add(1), Relaxed);
        s.creator.store(0, Relaxed);
        s.export.store(EXPORT_NONE, Relaxed);
        s.whitelist_len.store(0, Relaxed);
        s.secret.store(0, Relaxed);
        s.flag.store(0, Relaxed);
        s.waiters.store(0, Relaxed);
        let hint = &reg.header().free_hint[device as usize];
        if hint.load(Relaxed) > index {
            hint.store(index, Relaxed);
        }
    }
}

/// Drops every reference this process still holds (a clean detach, §4).
pub(crate) fn release_all(g: &mut Guard<'_>) {
    let me = g.reg.my_code();
    let refs: Vec<SlotRef> = g
        .local
        .refs
        .drain()
        .map(|((device, index), l)| SlotRef {
            device,
            index,
            generation: l.generation,
        })
        .collect();
    for r in refs {
        if let Some(s) = g.reg.live(r) {
            if s.creator.load(Relaxed) == me {
                s.export.store(EXPORT_REVOKED, Relaxed);
            }
            g.drop_holder(r, me);
            g.free_if_unheld(r);
        }
    }
}
