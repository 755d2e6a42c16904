//! What R5–R7 allow: export, the whitelist, import. These are the checks of R15 that need the
//! shared state (permission, state, import resolution); `raw` has run the earlier ones.

use std::sync::atomic::Ordering::Relaxed;

use notify_api::{ExportKey, Result, err};

use super::layout::*;
use super::procs::Holder;
use super::{Guard, LocalRef, Registry, SlotRef, corrupted, reclaim};
use crate::shm;

/// `ACL_RT_NOTIFY_EXPORT_FLAG_DISABLE_PID_VALIDATION`.
const DISABLE_PID_VALIDATION: u32 = 0x2;

/// The decoded form of a simulator notify key (R5):
/// `ans1-<ns hash>-<device><slot>-<generation>-<secret>`, the secret last (so that `Debug` of
/// an [`ExportKey`] hides it).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct SimKey {
    pub ns_hash: u64,
    pub slot: SlotRef,
    pub secret: u64,
}

/// Notify keys start with this; memory keys with another prefix, so one never resolves as the
/// other (M3).
pub(crate) const NOTIFY_KEY_PREFIX: &str = "ans1-";

impl SimKey {
    pub(crate) fn encode(&self) -> ExportKey {
        let s = self.slot;
        let text = format!(
            "{NOTIFY_KEY_PREFIX}{:016x}-{:02x}{:04x}-{:08x}-{:016x}",
            self.ns_hash, s.device, s.index, s.generation, self.secret
        );
        ExportKey::new(text).expect("a sim key is 54 printable characters")
    }

    /// R7: a key not in this format is 107000.
    pub(crate) fn decode(key: &ExportKey) -> Result<Self> {
        let bad = || {
            err!(
                R7: RT_PARAM_INVALID,
                "{:?} is not a simulator notify key",
                key.as_str()
            )
        };
        let rest = key
            .as_str()
            .strip_prefix(NOTIFY_KEY_PREFIX)
            .ok_or_else(bad)?;
        let parts: Vec<&str> = rest.split('-').collect();
        let lens = [16, 6, 8, 16];
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
            slot: SlotRef {
                device: hex(&parts[1][..2])? as u32,
                index: hex(&parts[1][2..])? as u32,
                generation: hex(parts[2])? as u32,
            },
            secret: hex(parts[3])?,
        })
    }
}

impl Registry {
    /// R5: exports `r`, the notify of a handle of this process (`creator` says whether this
    /// process created it).
    pub(crate) fn export(&self, r: SlotRef, creator: bool, flags: u32) -> Result<ExportKey> {
        let _g = self.lock()?;
        let s = self.live(r).ok_or_else(|| {
            corrupted(
                self.namespace(),
                "a slot this process holds was freed under it",
            )
        })?;
        if !creator {
            return Err(err!(
                R5: RT_INTERNAL_ERROR,
                "notify {} is an imported handle: the runtime refuses to export a notify that \
                 is already an IPC notify",
                r.index
            ));
        }
        if s.export.load(Relaxed) != EXPORT_NONE {
            return Err(err!(
                R5: RT_INTERNAL_ERROR,
                "notify {} on device {} was already exported",
                r.index,
                r.device
            ));
        }
        let secret = crate::random_u64()?;
        s.secret.store(secret, Relaxed);
        s.export_flags.store(flags, Relaxed);
        s.export.store(EXPORT_LIVE, Relaxed);
        Ok(SimKey {
            ns_hash: self.hash(),
            slot: r,
            secret,
        }
        .encode())
    }

    /// R6: adds bare tgid `pid` (`>= 0`: `raw` checked) to the whitelist of `r`.
    pub(crate) fn set_import_pid(&self, r: SlotRef, creator: bool, pid: i32) -> Result<()> {
        let _g = self.lock()?;
        let s = self.live(r).ok_or_else(|| {
            corrupted(
                self.namespace(),
                "a slot this process holds was freed under it",
            )
        })?;
        let export = s.export.load(Relaxed);
        if export != EXPORT_NONE && s.export_flags.load(Relaxed) & DISABLE_PID_VALIDATION != 0 {
            return Err(err!(
                R6: RT_NO_PERMISSION,
                "notify {} was exported with DISABLE_PID_VALIDATION; it has no whitelist",
                r.index
            ));
        }
        if !creator {
            return Err(err!(
                R6: RT_DRV_INTERNAL_ERROR,
                "only the creating process may set the whitelist of notify {} (the driver \
                 answers EINVAL)",
                r.index
            ));
        }
        if export == EXPORT_NONE {
            return Err(err!(
                R6: RT_PARAM_INVALID,
                "notify {} must be exported before its whitelist is set",
                r.index
            ));
        }
        if pid == 0 || pid == s.creator_tgid.load(Relaxed) {
            // The driver ignores both: the creator's entry is the whitelist's first.
            return Ok(());
        }
        let now = shm::boot_ns();
        let len = whitelist_len(self, s)?;
        if let Some(entry) = s.whitelist[..len]
            .iter()
            .find(|e| e.tgid.load(Relaxed) == pid)
        {
            // R7: refreshing an entry moves its time, for the pid-reuse guard.
            entry.set_ns.store(now, Relaxed);
            return Ok(());
        }
        if len >= WHITELIST {
            return Err(err!(
                R6: RT_DRV_INTERNAL_ERROR,
                "the whitelist of notify {} is full: it holds {WHITELIST} importers besides the \
                 creator",
                r.index
            ));
        }
        s.whitelist[len].tgid.store(pid, Relaxed);
        s.whitelist[len].set_ns.store(now, Relaxed);
        s.whitelist_len.store(len as u32 + 1, Relaxed);
        Ok(())
    }

    /// R7: resolves `key` and takes a reference for this process. `peer_ok` says whether this
    /// process may use a notify on the given device without the import enabling peer access.
    pub(crate) fn import(
        &self,
        key: &SimKey,
        peer_ok: impl FnOnce(u32) -> bool,
    ) -> Result<SlotRef> {
        let mut g = self.lock()?;
        reclaim::step(&mut g);
        let r = resolve(&mut g, key)?;
        let s = self.live(r).ok_or_else(unknown)?;
        let held = g
            .local
            .refs
            .get(&(r.device, r.index))
            .filter(|l| l.generation == r.generation);
        if held.is_some_and(|l| l.handle_live) {
            return Err(err!(
                R7: RT_INTERNAL_ERROR,
                "this process already holds notify {} of device {}",
                r.index,
                r.device
            ));
        }
        let me = self.me().expect("only attached processes import");
        let len = whitelist_len(self, s)?;
        let entry = s.whitelist[..len]
            .iter()
            .find(|e| e.tgid.load(Relaxed) == me.tgid);
        let disabled = s.export_flags.load(Relaxed) & DISABLE_PID_VALIDATION != 0;
        if !disabled {
            let Some(entry) = entry else {
                return Err(err!(
                    R7: RT_DRV_INTERNAL_ERROR,
                    "pid {} is not on the whitelist of this notify",
                    me.tgid
                ));
            };
            if me.start_ns > entry.set_ns.load(Relaxed) {
                return Err(err!(
                    R7: RT_DRV_INTERNAL_ERROR,
                    "pid {} was whitelisted before this process started: the driver's guard \
                     against a reused pid refuses it",
                    me.tgid
                ));
            }
        } else if entry.is_none() && len >= WHITELIST {
            return Err(err!(
                R7: RT_DRV_INTERNAL_ERROR,
                "{WHITELIST} processes besides the creator have imported notify {} already: its \
                 whitelist is full",
                r.index
            ));
        }
        if !peer_ok(r.device) {
            return Err(err!(
                R7: RT_DRV_INTERNAL_ERROR,
                "peer access to device {} is not enabled (enable it, or import with \
                 ENABLE_PEER_ACCESS)",
                r.device
            ));
        }
        if !g.add_holder(r, me.code) {
            return Err(err!(
                R7: RT_DRV_INTERNAL_ERROR,
                "16 live processes already hold notify {}",
                r.index
            ));
        }
        if disabled && entry.is_none() {
            // R7: with DISABLE_PID_VALIDATION the import whitelists its importer itself.
            s.whitelist[len].tgid.store(me.tgid, Relaxed);
            s.whitelist[len].set_ns.store(shm::boot_ns(), Relaxed);
            s.whitelist_len.store(len as u32 + 1, Relaxed);
        }
        match g.local.refs.get_mut(&(r.device, r.index)) {
            Some(l) if l.generation == r.generation => {
                l.count += 1;
                l.handle_live = true;
            }
            _ => {
                g.local.refs.insert(
                    (r.device, r.index),
                    LocalRef {
                        generation: r.generation,
                        count: 1,
                        handle_live: true,
                    },
                );
            }
        }
        Ok(r)
    }
}

fn unknown() -> notify_api::Error {
    err!(R7: RT_DRV_INTERNAL_ERROR, "the key is unknown or was revoked")
}

/// R7: the live, exported slot a well-formed key names, or 507899. A key whose creator died is
/// revoked (R9: the death destroyed the creator's handle).
fn resolve(g: &mut Guard<'_>, key: &SimKey) -> Result<SlotRef> {
    let reg = g.reg;
    if key.ns_hash != reg.hash() {
        return Err(err!(
            R7: RT_DRV_INTERNAL_ERROR,
            "the key belongs to another namespace than {:?}",
            reg.namespace()
        ));
    }
    let r = key.slot;
    let s = reg.live(r).ok_or_else(unknown)?;
    if s.export.load(Relaxed) != EXPORT_LIVE || s.secret.load(Relaxed) != key.secret {
        return Err(unknown());
    }
    if let Holder::Dead(p) = g.holder(s.creator.load(Relaxed)) {
        reclaim::reclaim_proc(g, p);
        return Err(unknown());
    }
    Ok(r)
}

/// The whitelist's length, checked (R14).
fn whitelist_len(reg: &Registry, s: &NotifySlot) -> Result<usize> {
    let len = s.whitelist_len.load(Relaxed) as usize;
    if len > WHITELIST {
        return Err(corrupted(reg.namespace(), "whitelist length out of range"));
    }
    Ok(len)
}
