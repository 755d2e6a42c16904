//! Device memory and IPC memory in the registry (M1, M3–M6): the allocation table with its
//! per-device accounting, and the export table with whitelists and importers.
//!
//! The bytes themselves live in one `/dev/shm` object per allocation,
//! `ascend-notify.<ns>.mem<index>-<generation>`, which this module names and removes; mapping
//! it is the process-local side's business (`crate::memory`).

use std::sync::atomic::Ordering::Relaxed;

use notify_api::{ExportKey, Result, Rule, err};

use super::layout::*;
use super::procs::Holder;
use super::{Guard, Registry, corrupted, reclaim};
use crate::shm;

/// `ACL_RT_IPC_MEM_EXPORT_FLAG_DISABLE_PID_VALIDATION`.
pub(crate) const MEM_DISABLE_PID_VALIDATION: u32 = 0x1;

/// Memory keys start with this; notify keys with another prefix, so one never resolves as the
/// other (M3).
pub(crate) const MEM_KEY_PREFIX: &str = "anm1-";

/// An allocation: table index and the generation it had.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct AllocRef {
    pub index: u32,
    pub generation: u32,
}

/// An export: table index and the generation it had.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ExportRef {
    pub index: u32,
    pub generation: u32,
}

/// The decoded form of a simulator memory key (M3):
/// `anm1-<ns hash>-<export index>-<generation>-<secret>`, the secret last.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct MemKey {
    pub ns_hash: u64,
    pub export: ExportRef,
    pub secret: u64,
}

impl MemKey {
    pub(crate) fn encode(&self) -> ExportKey {
        let text = format!(
            "{MEM_KEY_PREFIX}{:016x}-{:04x}-{:08x}-{:016x}",
            self.ns_hash, self.export.index, self.export.generation, self.secret
        );
        ExportKey::new(text).expect("a memory key is 52 printable characters")
    }

    /// M3: a key not in this format (a notify key among them) is 107000.
    pub(crate) fn decode(key: &ExportKey) -> Result<Self> {
        let bad = || {
            err!(
                M3: RT_PARAM_INVALID,
                "{:?} is not a simulator IPC memory key",
                key.as_str()
            )
        };
        let rest = key.as_str().strip_prefix(MEM_KEY_PREFIX).ok_or_else(bad)?;
        let parts: Vec<&str> = rest.split('-').collect();
        let lens = [16, 4, 8, 16];
        if parts.len() != 4
            || parts.iter().zip(lens).any(|(p, n)| {
                p.len() != n
                    || !p
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            })
        {
            return Err(bad());
        }
        let hex = |s: &str| u64::from_str_radix(s, 16).map_err(|_| bad());
        Ok(Self {
            ns_hash: hex(parts[0])?,
            export: ExportRef {
                index: hex(parts[1])? as u32,
                generation: hex(parts[2])? as u32,
            },
            secret: hex(parts[3])?,
        })
    }
}

/// The `/dev/shm` name (without the leading `/`) of an allocation's bytes.
pub(crate) fn object_name(ns: &str, a: AllocRef) -> String {
    format!(
        "{}mem{}-{:08x}",
        shm::file_prefix(ns),
        a.index,
        a.generation
    )
}

/// What an import needs to map the memory.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Imported {
    pub export: ExportRef,
    pub alloc: AllocRef,
    pub device: u32,
    pub offset: u64,
    pub size: u64,
    pub owner_addr: u64,
}

/// How a free or close went.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Hazard {
    /// Nothing unsupported happened.
    None,
    /// An unsupported usage was served and counted (§5 hazards).
    Counted(u32),
}

impl Registry {
    /// Allocation `a`, if it is still the one named (R14: out-of-range indices are `None`).
    pub(crate) fn live_alloc(&self, a: AllocRef) -> Option<&AllocSlot> {
        if a.index >= ALLOC_SLOTS {
            return None;
        }
        let s = self.alloc_slot(a.index);
        (s.state.load(Relaxed) != ALLOC_FREE && s.generation.load(Relaxed) == a.generation)
            .then_some(s)
    }

    fn live_export(&self, e: ExportRef) -> Option<&ExportSlot> {
        if e.index >= EXPORT_SLOTS {
            return None;
        }
        let s = self.export_slot(e.index);
        (s.state.load(Relaxed) != EXPORT_SLOT_FREE && s.generation.load(Relaxed) == e.generation)
            .then_some(s)
    }

    /// M1: takes `size` bytes (already rounded up to `page_size`) of `device`'s memory. A device
    /// without room is reclaimed (R9) before it is reported full.
    pub(crate) fn mem_alloc(&self, device: u32, size: u64, page_size: u64) -> Result<AllocRef> {
        let mut g = self.lock()?;
        reclaim::step(&mut g);
        let total = self.device_memory();
        let used = &self.header().mem_used[device as usize];
        if used.load(Relaxed).saturating_add(size) > total {
            reclaim::sweep(&mut g);
        }
        let in_use = used.load(Relaxed);
        if in_use.saturating_add(size) > total {
            return Err(err!(
                M1: RT_MEMORY_ALLOCATION,
                "device {device} has {} of {total} bytes free; {size} were asked for",
                total.saturating_sub(in_use)
            ));
        }
        let index = free_entry(
            &g,
            |i| self.alloc_slot(i).state.load(Relaxed) == ALLOC_FREE,
            ALLOC_SLOTS,
            &self.header().alloc_hint,
        )
        .ok_or_else(|| {
            err!(
                M1: RT_MEMORY_ALLOCATION,
                "the namespace already tracks {ALLOC_SLOTS} allocations (a simulator bound)"
            )
        })?;
        let s = self.alloc_slot(index);
        let generation = s.generation.load(Relaxed);
        s.owner.store(self.my_code(), Relaxed);
        s.device.store(device, Relaxed);
        s.size.store(size, Relaxed);
        s.page_size.store(page_size, Relaxed);
        s.owner_addr.store(0, Relaxed);
        s.imports.store(0, Relaxed);
        s.state.store(ALLOC_LIVE, Relaxed);
        used.fetch_add(size, Relaxed);
        bump(&self.header().alloc_high_water, index);
        self.header().alloc_hint.store(index + 1, Relaxed);
        Ok(AllocRef { index, generation })
    }

    /// Records the owner's device address of `a` (M5 keeps imports away from it).
    ///
    /// Without the lock, so only while nothing but the allocating call can reach `a` (before
    /// its region is in this process's address space): no other thread can free it, and no
    /// process can import it before the export that takes the lock after this store (and so
    /// publishes it).
    pub(crate) fn mem_set_owner_addr(&self, a: AllocRef, addr: u64) {
        if let Some(s) = self.live_alloc(a) {
            s.owner_addr.store(addr, Relaxed);
        }
    }

    /// M6: frees allocation `a` of this process. While it is imported that is a hazard: served
    /// (the memory stays for its importers), or with `strict` refused with 507899.
    pub(crate) fn mem_free(&self, a: AllocRef, strict: bool) -> Result<Hazard> {
        let mut g = self.lock()?;
        reclaim::step(&mut g);
        let s = self
            .live_alloc(a)
            .filter(|s| s.state.load(Relaxed) == ALLOC_LIVE)
            .ok_or_else(|| {
                corrupted(self.namespace(), "an allocation this process owns vanished")
            })?;
        let imported = s.imports.load(Relaxed) > 0;
        if imported && strict {
            return Err(err!(
                M6: RT_DRV_INTERNAL_ERROR,
                "this allocation is still imported by another process; freeing it first is \
                 unsupported (ASCEND_NOTIFY_SIM_STRICT=1)"
            ));
        }
        revoke_exports_of(&mut g, a);
        g.orphan_or_release(a);
        if imported {
            g.hazard(HAZARD_FREED_WHILE_IMPORTED);
            return Ok(Hazard::Counted(HAZARD_FREED_WHILE_IMPORTED));
        }
        Ok(Hazard::None)
    }

    /// M3: exports `size` bytes at `offset` of allocation `a` (page-aligned: the caller
    /// checked). A range that overlaps a live export of the allocation is 507899.
    pub(crate) fn mem_export(
        &self,
        a: AllocRef,
        offset: u64,
        size: u64,
        flags: u32,
    ) -> Result<ExportKey> {
        let mut g = self.lock()?;
        reclaim::step(&mut g);
        self.live_alloc(a)
            .filter(|s| s.state.load(Relaxed) == ALLOC_LIVE)
            .ok_or_else(|| {
                corrupted(self.namespace(), "an allocation this process owns vanished")
            })?;
        let high = self
            .header()
            .export_high_water
            .load(Relaxed)
            .min(EXPORT_SLOTS);
        for i in 0..high {
            let e = self.export_slot(i);
            if e.state.load(Relaxed) == EXPORT_SLOT_LIVE
                && e.alloc.load(Relaxed) == a.index
                && e.alloc_generation.load(Relaxed) == a.generation
            {
                let (o, n) = (e.offset.load(Relaxed), e.size.load(Relaxed));
                if offset < o.saturating_add(n) && o < offset.saturating_add(size) {
                    return Err(err!(
                        M3: RT_DRV_INTERNAL_ERROR,
                        "bytes {offset}..{} overlap an export of this allocation that is still \
                         open (bytes {o}..{}); close it first",
                        offset + size,
                        o + n
                    ));
                }
            }
        }
        let index = free_entry(
            &g,
            |i| self.export_slot(i).state.load(Relaxed) == EXPORT_SLOT_FREE,
            EXPORT_SLOTS,
            &self.header().export_hint,
        )
        .ok_or_else(|| {
            err!(
                M3: RT_DRV_INTERNAL_ERROR,
                "the namespace already tracks {EXPORT_SLOTS} IPC memory exports (a simulator \
                 bound)"
            )
        })?;
        let e = self.export_slot(index);
        let generation = e.generation.load(Relaxed);
        let secret = crate::random_u64()?;
        e.alloc.store(a.index, Relaxed);
        e.alloc_generation.store(a.generation, Relaxed);
        e.offset.store(offset, Relaxed);
        e.size.store(size, Relaxed);
        e.flags.store(flags, Relaxed);
        e.whitelist_len.store(0, Relaxed);
        e.secret.store(secret, Relaxed);
        e.exporter.store(self.my_code(), Relaxed);
        e.exporter_tgid.store(self.tgid(), Relaxed);
        for h in &e.importers {
            h.store(0, Relaxed);
        }
        e.state.store(EXPORT_SLOT_LIVE, Relaxed);
        bump(&self.header().export_high_water, index);
        self.header().export_hint.store(index + 1, Relaxed);
        let _ = &mut g;
        Ok(MemKey {
            ns_hash: self.hash(),
            export: ExportRef { index, generation },
            secret,
        }
        .encode())
    }

    /// M4: adds `pids` (at most 31, `raw` checked) to the whitelist of the export `key` names.
    pub(crate) fn mem_set_import_pid(&self, key: &MemKey, pids: &[i32]) -> Result<()> {
        let mut g = self.lock()?;
        reclaim::step(&mut g);
        let e = resolve(&mut g, key, Rule::M4)?;
        let s = self.export_slot(e.index);
        if s.exporter.load(Relaxed) != self.my_code() {
            return Err(err!(
                M4: RT_DRV_INTERNAL_ERROR,
                "only the exporting process may set the whitelist of this memory"
            ));
        }
        if s.flags.load(Relaxed) & MEM_DISABLE_PID_VALIDATION != 0 {
            return Err(err!(
                M4: RT_NO_PERMISSION,
                "this memory was exported with DISABLE_PID_VALIDATION; it has no whitelist"
            ));
        }
        let me = self.tgid();
        let wanted: Vec<i32> = pids
            .iter()
            .copied()
            .filter(|&p| p != 0 && p != me)
            .collect();
        if wanted.is_empty() {
            return Err(err!(
                M4: RT_DRV_INTERNAL_ERROR,
                "every pid of the call was 0 or the exporter's own, which the driver ignores: \
                 nothing was whitelisted"
            ));
        }
        let len = (s.whitelist_len.load(Relaxed) as usize).min(MEM_IMPORTERS);
        let now = shm::boot_ns();
        let mut add = Vec::new();
        for pid in wanted {
            match s.whitelist[..len]
                .iter()
                .find(|w| w.tgid.load(Relaxed) == pid)
            {
                Some(w) => w.set_ns.store(now, Relaxed),
                None if !add.contains(&pid) => add.push(pid),
                None => {}
            }
        }
        if len + add.len() > MEM_IMPORTERS {
            return Err(err!(
                M4: RT_DRV_INTERNAL_ERROR,
                "the whitelist would hold {} pids, more than {MEM_IMPORTERS}",
                len + add.len()
            ));
        }
        for (i, pid) in add.iter().enumerate() {
            s.whitelist[len + i].tgid.store(*pid, Relaxed);
            s.whitelist[len + i].set_ns.store(now, Relaxed);
        }
        s.whitelist_len.store((len + add.len()) as u32, Relaxed);
        Ok(())
    }

    /// M5: resolves `key` for an import by this process. `held` says whether this process
    /// already imported that export; `peer_ok` whether it may use memory of a device without the
    /// import enabling peer access.
    pub(crate) fn mem_import(
        &self,
        key: &MemKey,
        held: impl FnOnce(ExportRef) -> bool,
        peer_ok: impl FnOnce(u32) -> bool,
    ) -> Result<Imported> {
        let mut g = self.lock()?;
        reclaim::step(&mut g);
        let e = resolve(&mut g, key, Rule::M5)?;
        let s = self.export_slot(e.index);
        let me = self.me().expect("only attached processes import");
        if s.exporter.load(Relaxed) == me.code || held(e) {
            return Err(err!(
                M5: RT_DRV_INTERNAL_ERROR,
                "this process exported or already imported this memory"
            ));
        }
        if s.flags.load(Relaxed) & MEM_DISABLE_PID_VALIDATION == 0 {
            let len = (s.whitelist_len.load(Relaxed) as usize).min(MEM_IMPORTERS);
            let Some(w) = s.whitelist[..len]
                .iter()
                .find(|w| w.tgid.load(Relaxed) == me.tgid)
            else {
                return Err(err!(
                    M5: RT_DRV_INTERNAL_ERROR,
                    "pid {} is not on the whitelist of this memory",
                    me.tgid
                ));
            };
            if me.start_ns > w.set_ns.load(Relaxed) {
                return Err(err!(
                    M5: RT_DRV_INTERNAL_ERROR,
                    "pid {} was whitelisted before this process started: the driver's guard \
                     against a reused pid refuses it",
                    me.tgid
                ));
            }
        }
        let a = AllocRef {
            index: s.alloc.load(Relaxed),
            generation: s.alloc_generation.load(Relaxed),
        };
        let alloc = self
            .live_alloc(a)
            .ok_or_else(|| corrupted(self.namespace(), "an export names a freed allocation"))?;
        let device = alloc.device.load(Relaxed);
        if !peer_ok(device) {
            return Err(err!(
                M5: RT_DRV_INTERNAL_ERROR,
                "peer access to device {device} is not enabled (enable it, or import with \
                 ENABLE_PEER_ACCESS)"
            ));
        }
        let slot = s
            .importers
            .iter()
            .find(|h| h.load(Relaxed) == 0)
            .or_else(|| {
                prune_importers(&mut g, e);
                s.importers.iter().find(|h| h.load(Relaxed) == 0)
            });
        let Some(slot) = slot else {
            return Err(err!(
                M5: RT_DRV_INTERNAL_ERROR,
                "{} processes already import this memory (a simulator bound)",
                MEM_IMPORTERS + 1
            ));
        };
        slot.store(me.code, Relaxed);
        alloc.imports.fetch_add(1, Relaxed);
        Ok(Imported {
            export: e,
            alloc: a,
            device,
            offset: s.offset.load(Relaxed),
            size: s.size.load(Relaxed),
            owner_addr: alloc.owner_addr.load(Relaxed),
        })
    }

    /// M6: this process closes its import of `e`; the last import of a freed allocation
    /// releases it.
    pub(crate) fn mem_close_import(&self, e: ExportRef, a: AllocRef) {
        let Ok(mut g) = self.lock() else { return };
        reclaim::step(&mut g);
        let me = self.my_code();
        if let Some(s) = self.live_export(e) {
            for h in &s.importers {
                if h.compare_exchange(me, 0, Relaxed, Relaxed).is_ok()
                    && let Some(alloc) = self.live_alloc(a)
                {
                    let _ = alloc
                        .imports
                        .fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(1)));
                }
            }
            g.free_export_if_done(e);
        }
        g.orphan_or_release_if_done(a);
    }

    /// M6: the exporter closes key `key`: later imports fail (507899), existing ones keep
    /// working. Closing while imports remain is a hazard: served, or with `strict` refused.
    pub(crate) fn mem_close_export(&self, key: &MemKey, strict: bool) -> Result<Hazard> {
        let mut g = self.lock()?;
        reclaim::step(&mut g);
        let e = resolve(&mut g, key, Rule::M6)?;
        let s = self.export_slot(e.index);
        if s.exporter.load(Relaxed) != self.my_code() {
            return Err(err!(
                M6: RT_DRV_INTERNAL_ERROR,
                "this process neither exported nor imported this memory"
            ));
        }
        prune_importers(&mut g, e);
        let imported = s.importers.iter().any(|h| h.load(Relaxed) != 0);
        if imported && strict {
            return Err(err!(
                M6: RT_DRV_INTERNAL_ERROR,
                "importers still hold this memory; the exporter closing first is unsupported \
                 (ASCEND_NOTIFY_SIM_STRICT=1)"
            ));
        }
        s.state.store(EXPORT_SLOT_REVOKED, Relaxed);
        g.free_export_if_done(e);
        if imported {
            g.hazard(HAZARD_EXPORTER_CLOSED_FIRST);
            return Ok(Hazard::Counted(HAZARD_EXPORTER_CLOSED_FIRST));
        }
        Ok(Hazard::None)
    }

    /// `aclrtGetMemInfo`: (free, total) bytes of `device` (sim: the same for every attribute).
    pub(crate) fn mem_info(&self, device: u32) -> (u64, u64) {
        // M6: a memory call reclaims the dead, whose memory this would still count.
        if super::deaths::someone_died(self)
            && let Ok(mut g) = self.lock()
        {
            reclaim::step(&mut g);
        }
        let total = self.device_memory();
        let used = self.header().mem_used[device as usize].load(Relaxed);
        (total.saturating_sub(used), total)
    }
}

/// The first free entry of a table, from its hint.
fn free_entry(
    g: &Guard<'_>,
    free: impl Fn(u32) -> bool,
    len: u32,
    hint: &std::sync::atomic::AtomicU32,
) -> Option<u32> {
    let _ = g;
    let start = hint.load(Relaxed) % len;
    (0..len).map(|i| (start + i) % len).find(|&i| free(i))
}

fn bump(high_water: &std::sync::atomic::AtomicU32, index: u32) {
    if high_water.load(Relaxed) <= index {
        high_water.store(index + 1, Relaxed);
    }
}

fn unknown(rule: Rule) -> notify_api::Error {
    notify_api::Error::rule(
        rule,
        notify_api::AclError::RT_DRV_INTERNAL_ERROR,
        format_args!(
            "the memory key is unknown or was closed (freeing exported memory closes its keys)"
        ),
    )
}

/// M4/M5/M6 (`rule`: the calling operation's): the live export a well-formed key names, or
/// 507899. An export whose exporter died is closed (R9).
fn resolve(g: &mut Guard<'_>, key: &MemKey, rule: Rule) -> Result<ExportRef> {
    let reg = g.reg;
    if key.ns_hash != reg.hash() {
        return Err(notify_api::Error::rule(
            rule,
            notify_api::AclError::RT_DRV_INTERNAL_ERROR,
            format_args!(
                "the memory key belongs to another namespace than {:?}",
                reg.namespace()
            ),
        ));
    }
    let e = key.export;
    let s = reg.live_export(e).ok_or_else(|| unknown(rule))?;
    if s.state.load(Relaxed) != EXPORT_SLOT_LIVE || s.secret.load(Relaxed) != key.secret {
        return Err(unknown(rule));
    }
    if let Holder::Dead(p) = g.holder(s.exporter.load(Relaxed)) {
        reclaim::reclaim_proc(g, p);
        return Err(unknown(rule));
    }
    Ok(e)
}

/// Clears the importer entries of processes that are gone, reclaiming those that died.
fn prune_importers(g: &mut Guard<'_>, e: ExportRef) {
    for i in 0..=MEM_IMPORTERS {
        let Some(s) = g.reg.live_export(e) else {
            return;
        };
        let code = s.importers[i].load(Relaxed);
        match g.holder(code) {
            Holder::Alive => {}
            Holder::Gone => {
                if code != 0 {
                    s.importers[i].store(0, Relaxed);
                }
            }
            Holder::Dead(p) => reclaim::reclaim_proc(g, p),
        }
    }
}

/// Revokes every export of allocation `a` (its owner freed it or died).
fn revoke_exports_of(g: &mut Guard<'_>, a: AllocRef) {
    let reg = g.reg;
    let high = reg
        .header()
        .export_high_water
        .load(Relaxed)
        .min(EXPORT_SLOTS);
    for i in 0..high {
        let s = reg.export_slot(i);
        if s.state.load(Relaxed) != EXPORT_SLOT_FREE
            && s.alloc.load(Relaxed) == a.index
            && s.alloc_generation.load(Relaxed) == a.generation
        {
            s.state.store(EXPORT_SLOT_REVOKED, Relaxed);
            g.free_export_if_done(ExportRef {
                index: i,
                generation: s.generation.load(Relaxed),
            });
        }
    }
}

impl Guard<'_> {
    /// Counts a §5 hazard of this process.
    pub(crate) fn hazard(&self, kind: u32) {
        let hdr = self.reg.header();
        if let Some(c) = hdr.hazards.get(kind as usize) {
            c.fetch_add(1, Relaxed);
        }
        let seq = hdr.hazard_seq.fetch_add(1, Relaxed);
        let entry = (u64::from(self.reg.tgid() as u32) << 32) | u64::from(kind);
        hdr.hazard_log[(seq as usize) % HAZARD_LOG].store(entry, Relaxed);
    }

    /// A revoked export with no importer left is freed.
    pub(crate) fn free_export_if_done(&self, e: ExportRef) {
        let Some(s) = self.reg.live_export(e) else {
            return;
        };
        if s.state.load(Relaxed) == EXPORT_SLOT_REVOKED
            && s.importers.iter().all(|h| h.load(Relaxed) == 0)
        {
            s.state.store(EXPORT_SLOT_FREE, Relaxed);
            s.generation
                .store(s.generation.load(Relaxed).wrapping_add(1), Relaxed);
            s.secret.store(0, Relaxed);
            s.whitelist_len.store(0, Relaxed);
            let hint = &self.reg.header().export_hint;
            if hint.load(Relaxed) > e.index {
                hint.store(e.index, Relaxed);
            }
        }
    }

    /// The owner is done with `a` (freed it, or died): with imports left it stays for them
    /// (orphaned), else it is released.
    pub(crate) fn orphan_or_release(&self, a: AllocRef) {
        let Some(s) = self.reg.live_alloc(a) else {
            return;
        };
        // No new import can reach it once its owner is done: its name can go now; importers
        // keep their mappings.
        let _ = shm::unlink_object(&object_name(self.reg.namespace(), a));
        s.state.store(ALLOC_ORPHANED, Relaxed);
        self.orphan_or_release_if_done(a);
    }

    /// An orphaned allocation with no import left is released: its bytes go back to the
    /// device (M6).
    pub(crate) fn orphan_or_release_if_done(&self, a: AllocRef) {
        let Some(s) = self.reg.live_alloc(a) else {
            return;
        };
        if s.state.load(Relaxed) != ALLOC_ORPHANED || s.imports.load(Relaxed) > 0 {
            return;
        }
        let device = s.device.load(Relaxed) as usize;
        if let Some(used) = self.reg.header().mem_used.get(device) {
            let size = s.size.load(Relaxed);
            let _ = used.fetch_update(Relaxed, Relaxed, |u| Some(u.saturating_sub(size)));
        }
        s.state.store(ALLOC_FREE, Relaxed);
        s.generation
            .store(s.generation.load(Relaxed).wrapping_add(1), Relaxed);
        let hint = &self.reg.header().alloc_hint;
        if hint.load(Relaxed) > a.index {
            hint.store(a.index, Relaxed);
        }
    }
}

/// R9/M6: drops the allocations, exports and imports of the dead processes whose holder codes
/// are `codes` (their table slots are already freed).
pub(crate) fn reclaim_dead(g: &mut Guard<'_>, codes: &[u32]) {
    let reg = g.reg;
    let exports = reg
        .header()
        .export_high_water
        .load(Relaxed)
        .min(EXPORT_SLOTS);
    for i in 0..exports {
        let s = reg.export_slot(i);
        if s.state.load(Relaxed) == EXPORT_SLOT_FREE {
            continue;
        }
        let a = AllocRef {
            index: s.alloc.load(Relaxed),
            generation: s.alloc_generation.load(Relaxed),
        };
        for h in &s.importers {
            let code = h.load(Relaxed);
            if code != 0 && codes.contains(&code) {
                h.store(0, Relaxed);
                if let Some(alloc) = reg.live_alloc(a) {
                    let _ = alloc
                        .imports
                        .fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(1)));
                }
            }
        }
        if codes.contains(&s.exporter.load(Relaxed)) {
            s.state.store(EXPORT_SLOT_REVOKED, Relaxed);
        }
        g.free_export_if_done(ExportRef {
            index: i,
            generation: s.generation.load(Relaxed),
        });
    }
    let allocs = reg.header().alloc_high_water.load(Relaxed).min(ALLOC_SLOTS);
    for i in 0..allocs {
        let s = reg.alloc_slot(i);
        let state = s.state.load(Relaxed);
        if state == ALLOC_FREE {
            continue;
        }
        let a = AllocRef {
            index: i,
            generation: s.generation.load(Relaxed),
        };
        if state == ALLOC_LIVE && codes.contains(&s.owner.load(Relaxed)) {
            revoke_exports_of(g, a);
            g.orphan_or_release(a);
        } else {
            g.orphan_or_release_if_done(a);
        }
    }
}
