//! Model-based property test of the simulator across real processes (`SEMANTICS.md` R1–R11,
//! with the check order of R15).
//!
//! # How it works
//! - [`Model`] is a reference model of the contract in plain Rust; it knows nothing of the
//!   simulator. It tracks three processes P0..P2 (each with an incarnation number, a current
//!   device, its enabled peer pairs and its handles), the live notifies (device, creator, flag,
//!   export flags, revocation, whitelist, holders with their reference counts) and every key
//!   that was ever exported. Pids and keys are *symbols* in the model ("P1 in its incarnation
//!   2", "the key of notify 5"); the conductor maps them to the real ones.
//! - `proptest-state-machine` generates random sequences of [`T`] transitions from the model;
//!   applying one to the model yields the expected result ([`Expect`]). The transitions:
//!   - set-device (a valid or invalid id, R13) and enable-peer (R7);
//!   - create on the current device, and fill (create until the device is full: every free
//!     slot of the model must be creatable, then 207009, R11);
//!   - export with flags 0x0 / 0x2 (R5: creator only, once);
//!   - set-import-pid with 1..3 pids of the processes or of no process, sometimes an empty
//!     list, sometimes 20..40 foreign pids to reach the bound of 64 (R6);
//!   - import with flags 0x0 / 0x2 by an exported key (live, revoked, freed and maybe reused,
//!     held, not whitelisted, on another device without peer access...), a forged key, a key of
//!     another namespace, or a malformed one (R7, in the order of R15);
//!   - record and wait-and-reset (timeout 1 s), each followed by a synchronize, on the stream of
//!     the current device or of the other one (R1–R4, R13). Waits are only generated when the
//!     model says they end at once (they pass, or are refused at enqueue), except for a rare
//!     kind that may time out and so costs a second (R3);
//!   - batch reset of 1..3 handles, or of none (R1);
//!   - destroy (R8), and destroy-while-waiting: the creator enqueues a wait and destroys its
//!     handle; the pending task must keep the slot alive (checked mid-step) until an importer's
//!     record releases it (R8);
//!   - kill: `SIGKILL` a process and start a fresh replacement in its place (R9), optionally
//!     with a fill or an import by another process *before* anyone reclaimed the victim (R9: the
//!     call must reclaim it first); and, rarely, wait-while-peer-dies: the creator's pending wait
//!     must still expire when the only other holder is killed (R9: a death never records).
//! - [`Sut`], the conductor (this test process), runs each transition in a **real child
//!   process**: the test binary re-executed by [`RoleSpawner`] in the role `"driver"`, which
//!   attaches with `SimBackend::from_env()`, reads one command per line on stdin and answers
//!   with the result code (plus the notify's device and id, or the key). Handles are named by
//!   small integers that the model assigns. The conductor never attaches itself.
//! - After every step the code must equal the model's, and the registry seen through
//!   [`backend_sim::inspect`] must hold exactly the model's live processes (one lock file each,
//!   R9) and live notifies, each with the same device, holders, flag, export state, whitelist
//!   and creator. A successful import must name the exporter's (device, id).
//! - At the end of a case every driver quits cleanly and the namespace (segment and lock files)
//!   must be gone (§4, "Cleanup").
//!
//! Each case uses its own namespace of 2 devices × 8 slots, so the capacity limit (R11, 207009)
//! and slot reuse (R5c: an old key never resolves to a later notify in the slot) are reached.
//!
//! The number of cases defaults to 16 (sequences of 1..30 transitions); `PROPTEST_CASES`
//! overrides it, `PROPTEST_MAX_SHRINK_ITERS` the shrink budget (default 512). With
//! `MODEL_STATS=1` (and `--nocapture`) each step prints its kind and agreed code, to check
//! coverage.
//!
//! Known limit: a whitelisted pid is compared symbolically; if the kernel gave a replacement
//! process the pid of a killed one within one case, the test stops with a message saying so.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use backend_sim::testing::{RoleProcess, RoleSpawner, ScopedNamespace, StdioLink, child_role};
use backend_sim::{SimBackend, SimNotify, SimStream};
use notify_api::conformance::{Peer, PeerLink};
use notify_api::{
    AclError, Backend as _, DeviceId, ExportFlags, ExportKey, ImportFlags, Notify as _,
    NotifyFlags, Pid, Stream as _,
};
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use proptest::strategy::Union;
use proptest::test_runner::{Config, FileFailurePersistence};
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};

/// Modelled processes.
const NPROC: usize = 3;
/// Devices of each case's namespace.
const DEVICES: i32 = 2;
/// Notifies per device of each case's namespace (R11).
const CAPACITY: usize = 8;
/// The wait timeout, in seconds (R3: 0 would wait forever).
const WAIT_SECS: u32 = 1;
/// The timeout of a wait that another process releases: never reached.
const PENDING_WAIT_SECS: u32 = 30;
/// Pids above the kernel's largest `pid_max` (2^22) can never name a live process.
const FOREIGN_PID_BASE: i32 = (1 << 22) + 1;
/// A key in the simulator's format whose namespace hash is not ours (R7: 507899).
const OTHER_NAMESPACE_KEY: &str = "ans1-0123456789abcdef-000000-00000000-fedcba9876543210";
/// A printable key that is not in the simulator's format (R7: 107000).
const MALFORMED_KEY: &str = "not-a-simulator-key";

const OK: i32 = AclError::SUCCESS.raw();
const PARAM_INVALID: i32 = AclError::RT_PARAM_INVALID.raw();
const INVALID_DEVICEID: i32 = AclError::RT_INVALID_DEVICEID.raw();
const STREAM_CONTEXT: i32 = AclError::RT_STREAM_CONTEXT.raw();
const WAIT_TIMEOUT: i32 = AclError::RT_WAIT_TIMEOUT.raw();
const NO_PERMISSION: i32 = AclError::RT_NO_PERMISSION.raw();
const NO_RESOURCE: i32 = AclError::RT_NO_NOTIFY_RESOURCE.raw();
const INTERNAL: i32 = AclError::RT_INTERNAL_ERROR.raw();
const DRV_REFUSED: i32 = AclError::RT_DRV_INTERNAL_ERROR.raw();

const DISABLE_PID_VALIDATION: u64 = ExportFlags::DISABLE_PID_VALIDATION.bits();
const ENABLE_PEER_ACCESS: u64 = ImportFlags::ENABLE_PEER_ACCESS.bits();

/// A handle name in the protocol (global across processes, never reused).
type Hid = u32;
/// A notify of the model (never reused, unlike the simulator's slots).
type Nid = u32;
/// A process and the (model) notify whose key it would import.
type ProcKey = (usize, Nid);

// ---------------------------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------------------------

/// A pid as the model knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PidSym {
    /// The bare tgid of process `p` in its incarnation `incarnation`.
    Proc { p: usize, incarnation: u32 },
    /// `FOREIGN_PID_BASE + k`: no process at all.
    Foreign(u8),
}

/// A pid as a transition names it: resolved against the state when it is applied.
#[derive(Clone, Copy, Debug)]
enum PidChoice {
    /// Whatever process `p` is at that moment.
    Proc(usize),
    /// A pid no process has.
    Foreign(u8),
}

/// The key an import uses.
#[derive(Clone, Copy, Debug)]
enum KeyRef {
    /// The key that the export of notify `Nid` returned.
    Exported(Nid),
    /// That key with a different secret: well formed but unknown.
    Forged(Nid),
    /// Well formed, but of another namespace.
    OtherNamespace,
    /// Not in the simulator's format.
    Malformed,
}

#[derive(Clone, Debug)]
struct MHandle {
    notify: Nid,
    /// The creator's handle (from create), not an import.
    creator: bool,
}

#[derive(Clone, Debug)]
struct MProc {
    /// Bumped by each kill: a replacement is a new process with a new pid.
    incarnation: u32,
    /// R13: the current device of the driver's thread.
    device: i32,
    /// R7: (current device → peer device) pairs this process enabled.
    peers: BTreeSet<(i32, i32)>,
    handles: BTreeMap<Hid, MHandle>,
}

impl MProc {
    fn new(incarnation: u32, device: i32) -> Self {
        Self {
            incarnation,
            device,
            peers: BTreeSet::new(),
            handles: BTreeMap::new(),
        }
    }
}

/// A live notify. It leaves the model when its last reference is gone (R8, R9).
#[derive(Clone, Debug)]
struct MNotify {
    device: i32,
    /// Process index and incarnation of the creator.
    creator: (usize, u32),
    /// R1: a binary flag.
    flag: bool,
    /// R5: the export flags, once exported.
    export: Option<u64>,
    /// R8: the creator's handle is gone (destroyed, or its process died): the key is dead.
    revoked: bool,
    /// R6: in insertion order, without duplicates.
    whitelist: Vec<PidSym>,
    /// R8: references per holding process. Each process holds at most one handle (R7) and
    /// every task completes before the next step, so each count is 1.
    holders: BTreeMap<usize, u32>,
}

/// What the model says a transition returns.
#[derive(Clone, Debug, Default)]
struct Expect {
    code: i32,
    /// A successful create: the new handle and notify.
    created: Option<(Hid, Nid)>,
    /// A successful import: the new handle and the notify it refers to.
    imported: Option<(Hid, Nid)>,
    /// A successful export.
    exported: Option<Nid>,
    /// The notifies a fill creates before the device is full.
    filled: Vec<(Hid, Nid)>,
}

impl Expect {
    fn code(code: i32) -> Self {
        Self {
            code,
            ..Self::default()
        }
    }
}

#[derive(Clone, Debug)]
struct Model {
    procs: Vec<MProc>,
    notifies: BTreeMap<Nid, MNotify>,
    /// Every notify that was ever exported, live or not: their keys stay usable as inputs.
    keys: Vec<Nid>,
    next_handle: Hid,
    next_notify: Nid,
    /// The result of the last transition applied.
    expect: Expect,
}

/// One step, run in process `p`.
#[derive(Clone, Debug)]
enum T {
    /// `set_device(device)`; `device` may be out of range.
    SetDevice { p: usize, device: i32 },
    /// `enable_peer_access(peer, 0)`; `peer` may be out of range or the current device.
    EnablePeer { p: usize, peer: i32 },
    /// `create_notify` on the current device.
    Create { p: usize },
    /// `create_notify` on the current device until it is full: the model's free slots must all
    /// be creatable, and one more create must fail with 207009 (R11).
    Fill { p: usize },
    /// `export(flags)`, flags 0x0 or 0x2.
    Export { p: usize, h: Hid, flags: u64 },
    /// `set_import_pids(pids)`; the list may be empty, or long.
    SetPids {
        p: usize,
        h: Hid,
        pids: Vec<PidChoice>,
    },
    /// `import_notify(key, flags)` on the current device, flags 0x0 or 0x2.
    Import { p: usize, key: KeyRef, flags: u64 },
    /// Record on the stream of device `stream`, then synchronize it.
    Record { p: usize, h: Hid, stream: i32 },
    /// Wait (1 s) on the stream of device `stream`, then synchronize it. Unless
    /// `may_time_out`, only generated when the model says it will not time out.
    Wait {
        p: usize,
        h: Hid,
        stream: i32,
        may_time_out: bool,
    },
    /// `batch_reset` of some of `p`'s handles (or none: 107000).
    BatchReset { p: usize, hs: Vec<Hid> },
    /// `destroy` of a handle.
    Destroy { p: usize, h: Hid },
    /// R8: the creator `p` enqueues a wait on its notify (flag clear) and destroys its handle
    /// while the wait is pending; the conductor checks that the task still holds a reference,
    /// then importer `q` records with its handle `hq`, and `p`'s synchronize must report that the
    /// wait passed.
    DestroyWhileWaiting { p: usize, h: Hid, q: usize, hq: Hid },
    /// R9: the creator `p` enqueues a wait (1 s) on its notify (flag clear), then the other
    /// holder `q` is killed and replaced on `device`: a death never records, so `p`'s
    /// synchronize must report the timeout (107019). Costs WAIT_SECS, hence rare.
    WaitWhilePeerDies {
        p: usize,
        h: Hid,
        q: usize,
        hq: Hid,
        device: i32,
    },
    /// `SIGKILL` process `p`, then start a fresh process in its place on `device`. With
    /// `then`, another process first runs a `Fill` or an `Import` while nobody has reclaimed
    /// the dead process yet (R9: that call must reclaim it first).
    Kill {
        p: usize,
        device: i32,
        then: Option<Box<T>>,
    },
}

impl T {
    fn proc(&self) -> usize {
        match *self {
            T::SetDevice { p, .. }
            | T::EnablePeer { p, .. }
            | T::Create { p }
            | T::Fill { p }
            | T::Export { p, .. }
            | T::SetPids { p, .. }
            | T::Import { p, .. }
            | T::Record { p, .. }
            | T::Wait { p, .. }
            | T::BatchReset { p, .. }
            | T::Destroy { p, .. }
            | T::DestroyWhileWaiting { p, .. }
            | T::WaitWhilePeerDies { p, .. }
            | T::Kill { p, .. } => p,
        }
    }

    /// The same `Fill` or `Import` run by process `q`.
    fn in_proc(self, q: usize) -> T {
        match self {
            T::Fill { .. } => T::Fill { p: q },
            T::Import { key, flags, .. } => T::Import { p: q, key, flags },
            other => other,
        }
    }
}

impl Model {
    fn me(&self, p: usize) -> PidSym {
        PidSym::Proc {
            p,
            incarnation: self.procs[p].incarnation,
        }
    }

    fn resolve(&self, pid: PidChoice) -> PidSym {
        match pid {
            PidChoice::Proc(p) => self.me(p),
            PidChoice::Foreign(k) => PidSym::Foreign(k),
        }
    }

    fn handle(&self, p: usize, h: Hid) -> &MHandle {
        &self.procs[p].handles[&h]
    }

    fn notify_of(&mut self, p: usize, h: Hid) -> &mut MNotify {
        let nid = self.handle(p, h).notify;
        self.notifies.get_mut(&nid).expect("a held notify is live")
    }

    /// Whether `DestroyWhileWaiting` applies: `h` is `p`'s creator handle of a notify on `p`'s
    /// current device whose flag is clear, and `hq` is another process's handle to it.
    fn can_destroy_while_waiting(&self, p: usize, h: Hid, q: usize, hq: Hid) -> bool {
        let (Some(hd), Some(qd)) = (
            self.procs[p].handles.get(&h),
            self.procs[q].handles.get(&hq),
        ) else {
            return false;
        };
        let n = &self.notifies[&hd.notify];
        p != q
            && hd.creator
            && qd.notify == hd.notify
            && n.device == self.procs[p].device
            && !n.flag
    }

    /// R8: process `p` drops its reference; the last one frees the notify (and its slot).
    fn drop_holder(&mut self, p: usize, nid: Nid) {
        let n = self.notifies.get_mut(&nid).expect("a held notify is live");
        n.holders.remove(&p);
        if n.holders.is_empty() {
            self.notifies.remove(&nid);
        }
    }

    /// Applies `t` and returns what the simulator must answer.
    fn step(&mut self, t: &T) -> Expect {
        match *t {
            T::SetDevice { p, device } => {
                // R13: a device id outside 0..count.
                if !(0..DEVICES).contains(&device) {
                    return Expect::code(INVALID_DEVICEID);
                }
                self.procs[p].device = device;
                Expect::code(OK)
            }
            T::EnablePeer { p, peer } => {
                // R15: device id (107001) is a bad argument, before R7's "to itself" (107000).
                if !(0..DEVICES).contains(&peer) {
                    return Expect::code(INVALID_DEVICEID);
                }
                let cur = self.procs[p].device;
                if peer == cur {
                    // R7: enabling peer access to the current device itself.
                    return Expect::code(PARAM_INVALID);
                }
                // R7: per process and per pair; enabling again is a no-op.
                self.procs[p].peers.insert((cur, peer));
                Expect::code(OK)
            }
            T::Create { p } => {
                let cur = self.procs[p].device;
                // R11: at most CAPACITY live notifies per device; freed slots are reusable (the
                // model holds only live notifies, R8/R9 removed the rest).
                let live = self.notifies.values().filter(|n| n.device == cur).count();
                if live >= CAPACITY {
                    return Expect::code(NO_RESOURCE);
                }
                let (h, nid) = (self.next_handle, self.next_notify);
                self.next_handle += 1;
                self.next_notify += 1;
                // R1: the flag starts clear. R8: the creator's handle holds one reference.
                self.notifies.insert(
                    nid,
                    MNotify {
                        device: cur,
                        creator: (p, self.procs[p].incarnation),
                        flag: false,
                        export: None,
                        revoked: false,
                        whitelist: Vec::new(),
                        holders: BTreeMap::from([(p, 1)]),
                    },
                );
                self.procs[p].handles.insert(
                    h,
                    MHandle {
                        notify: nid,
                        creator: true,
                    },
                );
                Expect {
                    created: Some((h, nid)),
                    ..Expect::code(OK)
                }
            }
            T::Fill { p } => {
                let cur = self.procs[p].device;
                let live = self.notifies.values().filter(|n| n.device == cur).count();
                let filled = (live..CAPACITY)
                    .map(|_| {
                        let e = self.step(&T::Create { p });
                        e.created.expect("a free slot")
                    })
                    .collect();
                // R11: the create after the last free slot fails, and changes nothing.
                Expect {
                    filled,
                    ..Expect::code(NO_RESOURCE)
                }
            }
            T::Export { p, h, flags } => {
                // R5: only in the creating process (207006), once (507000).
                let hd = self.handle(p, h).clone();
                if !hd.creator {
                    return Expect::code(NO_PERMISSION);
                }
                let n = self.notify_of(p, h);
                if n.export.is_some() {
                    return Expect::code(INTERNAL);
                }
                n.export = Some(flags);
                self.keys.push(hd.notify);
                Expect {
                    exported: Some(hd.notify),
                    ..Expect::code(OK)
                }
            }
            T::SetPids { p, h, ref pids } => {
                // R6/R15: an empty list is a bad argument (107000) before any permission check.
                if pids.is_empty() {
                    return Expect::code(PARAM_INVALID);
                }
                // R6: only the creating process (207006).
                if !self.handle(p, h).creator {
                    return Expect::code(NO_PERMISSION);
                }
                let syms: Vec<PidSym> = pids.iter().map(|&c| self.resolve(c)).collect();
                let n = self.notify_of(p, h);
                match n.export {
                    // R6/R15: a whitelist on a DISABLE_PID_VALIDATION export is a permission
                    // error (207006), checked before the state.
                    Some(f) if f & DISABLE_PID_VALIDATION != 0 => Expect::code(NO_PERMISSION),
                    // R6: set-pid before export (107000).
                    None => Expect::code(PARAM_INVALID),
                    Some(_) => {
                        // R6: cumulative, a pid already present is a no-op, at most 64 pids and
                        // a call that would exceed that adds none.
                        let mut added: Vec<PidSym> = Vec::new();
                        for s in syms {
                            if !n.whitelist.contains(&s) && !added.contains(&s) {
                                added.push(s);
                            }
                        }
                        if n.whitelist.len() + added.len() > notify_api::WHITELIST_MAX {
                            return Expect::code(PARAM_INVALID);
                        }
                        n.whitelist.extend(added);
                        Expect::code(OK)
                    }
                }
            }
            T::Import { p, key, flags } => {
                let nid = match key {
                    // R7: a key not in the backend's format (107000).
                    KeyRef::Malformed => return Expect::code(PARAM_INVALID),
                    // R7: unknown or of another namespace (507899).
                    KeyRef::Forged(_) | KeyRef::OtherNamespace => {
                        return Expect::code(DRV_REFUSED);
                    }
                    KeyRef::Exported(nid) => nid,
                };
                let me = self.me(p);
                let cur = self.procs[p].device;
                // R7, R5c: a key whose notify is freed (its slot maybe reused) is unknown;
                // R8: a key whose creator handle is gone is revoked (507899).
                let Some(n) = self.notifies.get_mut(&nid) else {
                    return Expect::code(DRV_REFUSED);
                };
                if n.revoked {
                    return Expect::code(DRV_REFUSED);
                }
                // R7: one handle per notify and process: importing own or held (507000).
                if n.holders.contains_key(&p) {
                    return Expect::code(INTERNAL);
                }
                // R7: with export flag 0x0 the caller must be whitelisted now (507899).
                if n.export.is_some_and(|f| f & DISABLE_PID_VALIDATION == 0)
                    && !n.whitelist.contains(&me)
                {
                    return Expect::code(DRV_REFUSED);
                }
                // R7: import flag 0x0 on another device needs enabled peer access (507899).
                let enable = flags & ENABLE_PEER_ACCESS != 0;
                if !enable && n.device != cur && !self.procs[p].peers.contains(&(cur, n.device)) {
                    return Expect::code(DRV_REFUSED);
                }
                // R8: a new handle, one more reference.
                n.holders.insert(p, 1);
                let device = n.device;
                let h = self.next_handle;
                self.next_handle += 1;
                self.procs[p].handles.insert(
                    h,
                    MHandle {
                        notify: nid,
                        creator: false,
                    },
                );
                // R7: flag 0x2 enables peer access (current → notify's device) for the
                // process, as aclrtDeviceEnablePeerAccess would.
                if enable && device != cur {
                    self.procs[p].peers.insert((cur, device));
                }
                Expect {
                    imported: Some((h, nid)),
                    ..Expect::code(OK)
                }
            }
            T::Record { p, h, stream } => {
                // R13: a stream of another device (107003).
                if stream != self.procs[p].device {
                    return Expect::code(STREAM_CONTEXT);
                }
                // R4: any holder may record, on any device; R8: even after the creator's
                // destroy or death. R1: records merge into one set flag.
                self.notify_of(p, h).flag = true;
                Expect::code(OK)
            }
            T::Wait { p, h, stream, .. } => {
                let cur = self.procs[p].device;
                // R15: the stream's device (107003) before R4's state checks.
                if stream != cur {
                    return Expect::code(STREAM_CONTEXT);
                }
                // R4: only the creator (107000), on the notify's device (107000).
                if !self.handle(p, h).creator {
                    return Expect::code(PARAM_INVALID);
                }
                let n = self.notify_of(p, h);
                if n.device != cur {
                    return Expect::code(PARAM_INVALID);
                }
                if n.flag {
                    // R1: completes and resets the flag in one step.
                    n.flag = false;
                    Expect::code(OK)
                } else {
                    // R3: expires, reported at synchronize, the flag stays as it was.
                    Expect::code(WAIT_TIMEOUT)
                }
            }
            T::BatchReset { p, ref hs } => {
                // R1: num == 0 (107000); any holder may clear the flags.
                if hs.is_empty() {
                    return Expect::code(PARAM_INVALID);
                }
                for &h in hs {
                    self.notify_of(p, h).flag = false;
                }
                Expect::code(OK)
            }
            T::Destroy { p, h } => {
                let hd = self.procs[p]
                    .handles
                    .remove(&h)
                    .expect("preconditions hold");
                // R8: the creator's destroy revokes the key; importers keep the notify.
                if hd.creator {
                    self.notifies.get_mut(&hd.notify).expect("held").revoked = true;
                }
                self.drop_holder(p, hd.notify);
                Expect::code(OK)
            }
            T::WaitWhilePeerDies { q, device, .. } => {
                // R9: q's references are reclaimed, and nothing records: the flag stays clear
                // and the wait expires (R3).
                self.step(&T::Kill {
                    p: q,
                    device,
                    then: None,
                });
                Expect::code(WAIT_TIMEOUT)
            }
            T::DestroyWhileWaiting { p, h, .. } => {
                let hd = self.procs[p]
                    .handles
                    .remove(&h)
                    .expect("preconditions hold");
                let n = self.notifies.get_mut(&hd.notify).expect("held");
                // R8: the creator's destroy revokes the key at once; the pending wait keeps its
                // own reference (checked by the conductor mid-step); q's record releases the
                // wait, which resets the flag (R1) and then drops that reference.
                n.revoked = true;
                n.flag = false;
                self.drop_holder(p, hd.notify);
                Expect::code(OK)
            }
            T::Kill {
                p,
                device,
                ref then,
            } => {
                let me = (p, self.procs[p].incarnation);
                // R9: a dead creator has lost its handle: its keys are revoked (R8).
                for n in self.notifies.values_mut() {
                    if n.creator == me {
                        n.revoked = true;
                    }
                }
                // R9: the dead process's references are reclaimed; last ones free notifies.
                let held: Vec<Nid> = self.procs[p].handles.values().map(|h| h.notify).collect();
                for nid in held {
                    self.drop_holder(p, nid);
                }
                self.procs[p] = MProc::new(self.procs[p].incarnation + 1, device);
                // The replacement starts only after `then`, which runs in another process.
                match then {
                    Some(then) => self.step(then),
                    None => Expect::code(OK),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Generation
// ---------------------------------------------------------------------------------------------

fn pid_choice() -> impl Strategy<Value = PidChoice> {
    prop_oneof![
        4 => (0..NPROC).prop_map(PidChoice::Proc),
        1 => (0..3u8).prop_map(PidChoice::Foreign),
    ]
}

/// What runs right after a kill, before anyone reclaimed the victim: nothing, a fill, or an
/// import by an exported key. Its process is relative to the victim (see `T::in_proc`).
fn then_after_kill(s: &Model) -> BoxedStrategy<Option<T>> {
    let mut arms: Vec<(u32, BoxedStrategy<Option<T>>)> = vec![
        (3, Just(None).boxed()),
        (
            1,
            (0..NPROC - 1).prop_map(|q| Some(T::Fill { p: q })).boxed(),
        ),
    ];
    if !s.keys.is_empty() {
        arms.push((
            1,
            (0..NPROC - 1, select(s.keys.clone()), ipc_flags())
                .prop_map(|(q, nid, flags)| {
                    Some(T::Import {
                        p: q,
                        key: KeyRef::Exported(nid),
                        flags,
                    })
                })
                .boxed(),
        ));
    }
    Union::new_weighted(arms).boxed()
}

fn ipc_flags() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0x0u64), Just(0x2u64)]
}

impl ReferenceStateMachine for Model {
    type State = Model;
    type Transition = T;

    fn init_state() -> BoxedStrategy<Model> {
        proptest::collection::vec(0..DEVICES, NPROC)
            .prop_map(|devices| Model {
                procs: devices.into_iter().map(|d| MProc::new(0, d)).collect(),
                notifies: BTreeMap::new(),
                keys: Vec::new(),
                next_handle: 1,
                next_notify: 1,
                expect: Expect::default(),
            })
            .boxed()
    }

    fn transitions(s: &Model) -> BoxedStrategy<T> {
        let procs = || 0..NPROC;
        let mut arms: Vec<(u32, BoxedStrategy<T>)> = vec![
            (6, procs().prop_map(|p| T::Create { p }).boxed()),
            // R11: fill the device to its capacity.
            (1, procs().prop_map(|p| T::Fill { p }).boxed()),
            (
                2,
                (procs(), 0..=DEVICES)
                    .prop_map(|(p, device)| T::SetDevice { p, device })
                    .boxed(),
            ),
            (
                1,
                (procs(), 0..=DEVICES)
                    .prop_map(|(p, peer)| T::EnablePeer { p, peer })
                    .boxed(),
            ),
            (
                2,
                (procs(), 0..DEVICES, then_after_kill(s))
                    .prop_map(|(p, device, then)| T::Kill {
                        p,
                        device,
                        // `then` runs in another process than the victim.
                        then: then.map(|t| {
                            let q = (p + t.proc() + 1) % NPROC;
                            Box::new(t.in_proc(q))
                        }),
                    })
                    .boxed(),
            ),
            (
                1,
                procs()
                    .prop_map(|p| T::BatchReset { p, hs: Vec::new() })
                    .boxed(),
            ),
            (
                1,
                (
                    procs(),
                    prop_oneof![Just(KeyRef::Malformed), Just(KeyRef::OtherNamespace)],
                    ipc_flags(),
                )
                    .prop_map(|(p, key, flags)| T::Import { p, key, flags })
                    .boxed(),
            ),
        ];

        // Imports: mostly of a live key by a process that does not hold the notify yet and
        // may import it (whitelisted or DISABLE_PID_VALIDATION); also any key ever exported
        // (revoked, freed, held, not whitelisted) and forged ones.
        let (admissible, refused): (Vec<ProcKey>, Vec<ProcKey>) = (0..NPROC)
            .flat_map(|p| s.keys.iter().map(move |&nid| (p, nid)))
            .filter(|&(p, nid)| {
                s.notifies
                    .get(&nid)
                    .is_some_and(|n| !n.revoked && !n.holders.contains_key(&p))
            })
            .partition(|&(p, nid)| {
                let n = &s.notifies[&nid];
                n.export.is_some_and(|f| f & DISABLE_PID_VALIDATION != 0)
                    || n.whitelist.contains(&s.me(p))
            });
        for (weight, pairs) in [(10, admissible), (3, refused)] {
            if !pairs.is_empty() {
                arms.push((
                    weight,
                    (select(pairs), ipc_flags())
                        .prop_map(|((p, nid), flags)| T::Import {
                            p,
                            key: KeyRef::Exported(nid),
                            flags,
                        })
                        .boxed(),
                ));
            }
        }
        // R5c: keys of freed notifies, whose slots a later create may have reused.
        let stale: Vec<Nid> = s
            .keys
            .iter()
            .copied()
            .filter(|nid| !s.notifies.contains_key(nid))
            .collect();
        if !stale.is_empty() {
            arms.push((
                3,
                (procs(), select(stale), ipc_flags())
                    .prop_map(|(p, nid, flags)| T::Import {
                        p,
                        key: KeyRef::Exported(nid),
                        flags,
                    })
                    .boxed(),
            ));
        }
        if !s.keys.is_empty() {
            let keys = || select(s.keys.clone());
            arms.push((
                3,
                (procs(), keys(), ipc_flags())
                    .prop_map(|(p, nid, flags)| T::Import {
                        p,
                        key: KeyRef::Exported(nid),
                        flags,
                    })
                    .boxed(),
            ));
            arms.push((
                1,
                (procs(), keys(), ipc_flags())
                    .prop_map(|(p, nid, flags)| T::Import {
                        p,
                        key: KeyRef::Forged(nid),
                        flags,
                    })
                    .boxed(),
            ));
        }

        // (process, handle, its current device)
        let handles: Vec<(usize, Hid, i32)> = s
            .procs
            .iter()
            .enumerate()
            .flat_map(|(p, pr)| pr.handles.keys().map(move |&h| (p, h, pr.device)))
            .collect();
        if handles.is_empty() {
            return Union::new_weighted(arms).boxed();
        }
        let any = || select(handles.clone());
        let matching = |f: &dyn Fn(&MHandle, &MNotify) -> bool| -> Vec<(usize, Hid, i32)> {
            handles
                .iter()
                .copied()
                .filter(|&(p, h, _)| {
                    let hd = s.handle(p, h);
                    f(hd, &s.notifies[&hd.notify])
                })
                .collect()
        };
        // The stream of the current device, sometimes the other one (R13: 107003).
        let stream = || prop_oneof![6 => Just(false), 1 => Just(true)];
        let pick = |cur: i32, other: bool| if other { 1 - cur } else { cur };

        // Exports: mostly by the creator of a notify not exported yet.
        let exportable = matching(&|hd, n| hd.creator && n.export.is_none());
        if !exportable.is_empty() {
            arms.push((
                5,
                (select(exportable), ipc_flags())
                    .prop_map(|((p, h, _), flags)| T::Export { p, h, flags })
                    .boxed(),
            ));
        }
        arms.push((
            1,
            (any(), ipc_flags())
                .prop_map(|((p, h, _), flags)| T::Export { p, h, flags })
                .boxed(),
        ));

        // Whitelists: mostly by the creator of a notify exported with a whitelist.
        let pids = || {
            prop_oneof![
                1 => Just(Vec::new()),
                12 => proptest::collection::vec(pid_choice(), 1..=3),
                // R6: bulk lists of foreign pids, so that the bound of 64 is reached.
                1 => proptest::collection::vec((0..200u8).prop_map(PidChoice::Foreign), 20..=40),
            ]
        };
        let listable = matching(&|hd, n| {
            hd.creator && n.export.is_some_and(|f| f & DISABLE_PID_VALIDATION == 0)
        });
        if !listable.is_empty() {
            arms.push((
                6,
                (select(listable), pids())
                    .prop_map(|((p, h, _), pids)| T::SetPids { p, h, pids })
                    .boxed(),
            ));
        }
        arms.push((
            1,
            (any(), pids())
                .prop_map(|((p, h, _), pids)| T::SetPids { p, h, pids })
                .boxed(),
        ));

        arms.push((
            5,
            (any(), stream())
                .prop_map(move |((p, h, cur), other)| T::Record {
                    p,
                    h,
                    stream: pick(cur, other),
                })
                .boxed(),
        ));
        arms.push((4, any().prop_map(|(p, h, _)| T::Destroy { p, h }).boxed()));

        // Waits that the model says end at once: passes, or refusals at enqueue (R4).
        let quick = handles
            .iter()
            .copied()
            .filter(|&(p, h, cur)| {
                let hd = s.handle(p, h);
                let n = &s.notifies[&hd.notify];
                !hd.creator || n.device != cur || n.flag
            })
            .collect::<Vec<_>>();
        if !quick.is_empty() {
            arms.push((
                6,
                (select(quick), stream())
                    .prop_map(move |((p, h, cur), other)| T::Wait {
                        p,
                        h,
                        stream: pick(cur, other),
                        may_time_out: false,
                    })
                    .boxed(),
            ));
        }
        // Rarely, a wait that may time out: it costs WAIT_SECS (R3).
        arms.push((
            1,
            any()
                .prop_map(|(p, h, cur)| T::Wait {
                    p,
                    h,
                    stream: cur,
                    may_time_out: true,
                })
                .boxed(),
        ));

        let pending: Vec<(usize, Hid, usize, Hid)> = handles
            .iter()
            .flat_map(|&(p, h, _)| handles.iter().map(move |&(q, hq, _)| (p, h, q, hq)))
            .filter(|&(p, h, q, hq)| s.can_destroy_while_waiting(p, h, q, hq))
            .collect();
        if !pending.is_empty() {
            arms.push((
                6,
                select(pending.clone())
                    .prop_map(|(p, h, q, hq)| T::DestroyWhileWaiting { p, h, q, hq })
                    .boxed(),
            ));
            arms.push((
                1,
                (select(pending), 0..DEVICES)
                    .prop_map(|((p, h, q, hq), device)| T::WaitWhilePeerDies {
                        p,
                        h,
                        q,
                        hq,
                        device,
                    })
                    .boxed(),
            ));
        }

        let per_proc: Vec<(usize, Vec<Hid>)> = s
            .procs
            .iter()
            .enumerate()
            .filter(|(_, pr)| !pr.handles.is_empty())
            .map(|(p, pr)| (p, pr.handles.keys().copied().collect()))
            .collect();
        arms.push((
            2,
            select(per_proc)
                .prop_flat_map(|(p, hs)| {
                    let max = hs.len().min(3);
                    subsequence(hs, 1..=max).prop_map(move |hs| T::BatchReset { p, hs })
                })
                .boxed(),
        ));
        Union::new_weighted(arms).boxed()
    }

    /// Shrinking may delete the step that made a handle or a key: such steps become invalid.
    fn preconditions(s: &Model, t: &T) -> bool {
        let held = |p: usize, h: &Hid| s.procs[p].handles.contains_key(h);
        match t {
            T::SetDevice { .. }
            | T::EnablePeer { .. }
            | T::Create { .. }
            | T::Fill { .. }
            | T::Kill { then: None, .. } => true,
            T::Kill {
                p,
                device,
                then: Some(then),
            } => {
                let mut after = s.clone();
                after.step(&T::Kill {
                    p: *p,
                    device: *device,
                    then: None,
                });
                then.proc() != *p
                    && matches!(**then, T::Fill { .. } | T::Import { .. })
                    && Self::preconditions(&after, then)
            }
            T::Export { p, h, .. }
            | T::SetPids { p, h, .. }
            | T::Record { p, h, .. }
            | T::Destroy { p, h } => held(*p, h),
            T::Wait {
                p, h, may_time_out, ..
            } => held(*p, h) && (*may_time_out || s.clone().step(t).code != WAIT_TIMEOUT),
            T::BatchReset { p, hs } => hs.iter().all(|h| held(*p, h)),
            T::DestroyWhileWaiting { p, h, q, hq } | T::WaitWhilePeerDies { p, h, q, hq, .. } => {
                s.can_destroy_while_waiting(*p, *h, *q, *hq)
            }
            T::Import { key, .. } => match key {
                KeyRef::Exported(nid) | KeyRef::Forged(nid) => s.keys.contains(nid),
                KeyRef::OtherNamespace | KeyRef::Malformed => true,
            },
        }
    }

    fn apply(mut s: Model, t: &T) -> Model {
        s.expect = s.step(t);
        s
    }
}

// ---------------------------------------------------------------------------------------------
// The system under test: real driver processes, and the conductor
// ---------------------------------------------------------------------------------------------

/// Entry point of the driver processes (re-executed test binary).
#[test]
#[ignore = "entry point of spawned child processes"]
fn child() {
    let Some(role) = child_role() else { return };
    assert_eq!(role, "driver", "unknown role {role:?}");
    driver();
}

/// `"0 <payload>"` on success, `"<code> <reason>"` on failure.
fn reply<V>(r: notify_api::Result<V>, ok: impl FnOnce(V) -> String) -> String {
    match r {
        Ok(v) => format!("0 {}", ok(v)),
        Err(e) => format!("{} {}", e.code().raw(), e.reason()),
    }
}

fn num<N: std::str::FromStr>(word: Option<&str>) -> N {
    let word = word.expect("a number in the command");
    word.parse()
        .unwrap_or_else(|_| panic!("not a number: {word:?}"))
}

fn list<N: std::str::FromStr>(word: Option<&str>) -> Vec<N> {
    match word.expect("a list in the command") {
        "-" => Vec::new(),
        w => w.split(',').map(|x| num(Some(x))).collect(),
    }
}

fn described(n: &SimNotify) -> String {
    let id = n.id().map_or(u32::MAX, |i| i.0);
    format!("{} {id}", n.device().0)
}

/// The driver: one `SimBackend`, one stream per device, handles named by the conductor.
///
/// Commands (one per line; the answer is `0 <payload>` or `<code> <reason>`, `-1`/`-2` for
/// protocol trouble): `setdev D`, `peer D`, `create H`, `fill H,H|-` (create each, then one
/// more: `<code of that one> ... | dev:id,dev:id`), `export H FLAGS`, `setpids H P,P|-`,
/// `import H FLAGS KEY`, `record H STREAM_DEVICE` and `wait H STREAM_DEVICE` (each followed
/// by a synchronize), `waitpending H STREAM_DEVICE SECS` (no synchronize), `waitdestroy H
/// STREAM_DEVICE SECS` (wait, then destroy, no synchronize), `sync STREAM_DEVICE`,
/// `reset H,H|-`, `destroy H`, `quit` (answered `bye` once everything is dropped).
fn driver() {
    let b = SimBackend::from_env().expect("attaching the driver");
    let devices = b.device_count().expect("device count") as i32;
    let streams: Vec<SimStream> = (0..devices)
        .map(|d| {
            b.set_device(DeviceId(d)).expect("set_device");
            b.create_stream().expect("create_stream")
        })
        .collect();
    b.set_device(DeviceId(0)).expect("set_device");
    let mut handles: HashMap<Hid, SimNotify> = HashMap::new();
    let mut link = StdioLink;
    link.send(&format!("pid {}", b.bare_tgid().expect("bare tgid")));
    loop {
        let line = link.recv();
        let mut w = line.splitn(4, ' ');
        let cmd = w.next().unwrap_or_default();
        if cmd == "quit" {
            break;
        }
        let out = match cmd {
            "setdev" => reply(b.set_device(DeviceId(num(w.next()))), |()| String::new()),
            "peer" => reply(b.enable_peer_access(DeviceId(num(w.next())), 0), |()| {
                String::new()
            }),
            "create" => {
                let h: Hid = num(w.next());
                reply(b.create_notify(NotifyFlags::DEFAULT), |n| {
                    let d = described(&n);
                    handles.insert(h, n);
                    d
                })
            }
            "fill" => {
                let hs: Vec<Hid> = list(w.next());
                let mut slots = Vec::new();
                let mut failed = None;
                for (i, &h) in hs.iter().enumerate() {
                    match b.create_notify(NotifyFlags::DEFAULT) {
                        Ok(n) => {
                            slots.push(described(&n).replace(' ', ":"));
                            handles.insert(h, n);
                        }
                        Err(e) => {
                            failed = Some(format!("-2 create #{i} of {} failed: {e}", hs.len()));
                            break;
                        }
                    }
                }
                // One more create: the device should now be full (a success is dropped).
                failed.unwrap_or_else(|| {
                    let extra = reply(b.create_notify(NotifyFlags::DEFAULT), |n| described(&n));
                    format!("{extra} | {}", join(slots))
                })
            }
            "import" => {
                let h: Hid = num(w.next());
                let flags = num(w.next());
                let key = w.next().unwrap_or_default();
                let r = ImportFlags::from_raw(flags).and_then(|flags| {
                    let key = ExportKey::new(key)?;
                    b.import_notify(&key, flags)
                });
                reply(r, |n| {
                    let d = described(&n);
                    handles.insert(h, n);
                    d
                })
            }
            "reset" => {
                let hs: Vec<Hid> = list(w.next());
                match hs
                    .iter()
                    .map(|h| handles.get(h))
                    .collect::<Option<Vec<_>>>()
                {
                    Some(ns) => reply(b.batch_reset(&ns), |()| String::new()),
                    None => format!("-1 protocol: unknown handle in {hs:?}"),
                }
            }
            "sync" => reply(streams[num::<usize>(w.next())].synchronize(), |()| {
                String::new()
            }),
            "waitpending" => {
                // Enqueue a wait, no synchronize.
                let h: Hid = num(w.next());
                let stream = &streams[num::<usize>(w.next())];
                let secs: u32 = num(w.next());
                match handles.get(&h) {
                    None => format!("-1 protocol: unknown handle {h}"),
                    Some(n) => reply(n.wait_and_reset(stream, secs), |()| String::new()),
                }
            }
            "waitdestroy" => {
                // Enqueue a wait (no synchronize), then destroy the handle at once (R8).
                let h: Hid = num(w.next());
                let stream = &streams[num::<usize>(w.next())];
                let secs: u32 = num(w.next());
                match handles.remove(&h) {
                    None => format!("-1 protocol: unknown handle {h}"),
                    Some(n) => reply(
                        n.wait_and_reset(stream, secs).and_then(|()| n.destroy()),
                        |()| String::new(),
                    ),
                }
            }
            "export" | "setpids" | "record" | "wait" | "destroy" => {
                let h: Hid = num(w.next());
                let Some(n) = handles.get(&h) else {
                    link.send(&format!("-1 protocol: unknown handle {h}"));
                    continue;
                };
                match cmd {
                    "export" => reply(
                        ExportFlags::from_raw(num(w.next())).and_then(|f| n.export(f)),
                        |k| k.to_string(),
                    ),
                    "setpids" => {
                        let pids: Vec<Pid> = list(w.next()).into_iter().map(Pid).collect();
                        reply(n.set_import_pids(&pids), |()| String::new())
                    }
                    "record" | "wait" => {
                        let s = &streams[num::<usize>(w.next())];
                        let enqueued = if cmd == "record" {
                            n.record(s)
                        } else {
                            n.wait_and_reset(s, WAIT_SECS)
                        };
                        // R2: the task's outcome shows at synchronize.
                        reply(enqueued.and_then(|()| s.synchronize()), |()| String::new())
                    }
                    _ => {
                        let n = handles.remove(&h).expect("looked up above");
                        reply(n.destroy(), |()| String::new())
                    }
                }
            }
            other => format!("-1 protocol: unknown command {other:?}"),
        };
        link.send(&out);
    }
    drop(handles);
    drop(streams);
    drop(b);
    link.send("bye");
}

/// The conductor's view: the driver processes and what the real pids, slots and keys are.
struct Sut {
    procs: Vec<Option<RoleProcess>>,
    /// Pid of every (process, incarnation) so far.
    pids: HashMap<(usize, u32), i32>,
    /// Model notify → (device, id) in the registry.
    slots: HashMap<Nid, (u32, u32)>,
    /// Model notify → its key.
    keys: HashMap<Nid, String>,
    spawner: RoleSpawner,
    ns: ScopedNamespace,
}

impl std::fmt::Debug for Sut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sut")
            .field("ns", &self.ns.name())
            .field("pids", &self.pids)
            .finish_non_exhaustive()
    }
}

impl Drop for Sut {
    /// On a failure the drivers are killed (they are ours), then the namespace is removed.
    fn drop(&mut self) {
        for p in self.procs.iter_mut().filter_map(Option::take) {
            let mut p = p;
            p.kill();
            let _ = p.finish();
        }
    }
}

impl Sut {
    /// Starts process `p` in incarnation `incarnation` on `device`.
    fn spawn(&mut self, p: usize, incarnation: u32, device: i32) {
        let mut r = self.spawner.start("driver");
        let line = r.recv();
        let pid: i32 = line
            .strip_prefix("pid ")
            .and_then(|x| x.parse().ok())
            .unwrap_or_else(|| panic!("driver greeting {line:?}"));
        // R6: the simulator's bare tgid is the OS pid.
        assert_eq!(pid, r.pid().0, "R6: bare tgid of P{p}");
        assert!(
            !self.pids.values().any(|&old| old == pid),
            "pid {pid} reused within one case: the model cannot tell the processes apart"
        );
        self.pids.insert((p, incarnation), pid);
        self.procs[p] = Some(r);
        let (code, msg) = self.call(p, &format!("setdev {device}"));
        assert_eq!(code, OK, "set_device({device}) in P{p}: {msg}");
    }

    fn call(&mut self, p: usize, cmd: &str) -> (i32, String) {
        let r = self.procs[p].as_mut().expect("the process runs");
        r.send(cmd);
        let line = r.recv();
        let (code, rest) = line.split_once(' ').unwrap_or((&line, ""));
        let code = code
            .parse()
            .unwrap_or_else(|_| panic!("P{p}: bad reply {line:?} to {cmd:?}"));
        (code, rest.to_owned())
    }

    fn pid(&self, s: PidSym) -> i32 {
        match s {
            PidSym::Proc { p, incarnation } => self.pids[&(p, incarnation)],
            PidSym::Foreign(k) => FOREIGN_PID_BASE + i32::from(k),
        }
    }

    fn current_pid(&self, m: &Model, p: usize) -> i32 {
        self.pid(m.me(p))
    }

    fn key_text(&self, key: KeyRef) -> String {
        match key {
            KeyRef::Exported(nid) => self.keys[&nid].clone(),
            KeyRef::Forged(nid) => {
                // The same key with another secret (its last hex digit changed).
                let mut k = self.keys[&nid].clone();
                let last = k.pop().expect("keys are not empty");
                k.push(if last == '0' { '1' } else { '0' });
                k
            }
            KeyRef::OtherNamespace => OTHER_NAMESPACE_KEY.to_owned(),
            KeyRef::Malformed => MALFORMED_KEY.to_owned(),
        }
    }

    fn parse_slot(payload: &str) -> (u32, u32) {
        let mut w = payload.split(' ');
        (num(w.next()), num(w.next()))
    }
}

/// The liveness lock files of a namespace: they live beside its segment in `/dev/shm`, named
/// after it (R9; the simulator names them `ascend-notify.<ns>.proc<slot>-<nonce>`).
fn lock_files(ns: &str) -> Vec<String> {
    let prefix = format!("ascend-notify.{ns}.");
    std::fs::read_dir("/dev/shm")
        .expect("/dev/shm")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with(&prefix))
        .collect()
}

fn join<N: ToString>(xs: impl IntoIterator<Item = N>) -> String {
    let v: Vec<String> = xs.into_iter().map(|x| x.to_string()).collect();
    if v.is_empty() {
        "-".into()
    } else {
        v.join(",")
    }
}

impl Sut {
    /// Runs `t` in its process and compares the answer with `exp`. `m` is the model after
    /// the step: it gives the incarnations, devices and notifies the step made.
    fn exec(&mut self, m: &Model, t: &T, exp: &Expect) {
        let p = t.proc();
        let new_handle = exp.created.or(exp.imported).map_or(0, |(h, _)| h);
        let cmd = match t {
            T::SetDevice { device, .. } => format!("setdev {device}"),
            T::EnablePeer { peer, .. } => format!("peer {peer}"),
            T::Create { .. } => format!("create {new_handle}"),
            T::Fill { .. } => format!("fill {}", join(exp.filled.iter().map(|&(h, _)| h))),
            T::Export { h, flags, .. } => format!("export {h} {flags}"),
            T::SetPids { h, pids, .. } => {
                // `m` is the state after the step, but a step never changes a pid it reads.
                let pids = pids.iter().map(|&c| match c {
                    PidChoice::Proc(q) => self.current_pid(m, q),
                    PidChoice::Foreign(k) => self.pid(PidSym::Foreign(k)),
                });
                format!("setpids {h} {}", join(pids))
            }
            T::Import { key, flags, .. } => {
                format!("import {new_handle} {flags} {}", self.key_text(*key))
            }
            T::Record { h, stream, .. } => format!("record {h} {stream}"),
            T::Wait { h, stream, .. } => format!("wait {h} {stream}"),
            T::BatchReset { hs, .. } => format!("reset {}", join(hs.iter())),
            T::Destroy { h, .. } => format!("destroy {h}"),
            &T::WaitWhilePeerDies {
                p, h, q, device, ..
            } => {
                let cur = m.procs[p].device;
                let (code, msg) = self.call(p, &format!("waitpending {h} {cur} {WAIT_SECS}"));
                assert_eq!(code, OK, "P{p}: {t:?}: enqueueing the wait: {msg}");
                let mut victim = self.procs[q].take().expect("the process runs");
                victim.kill();
                let _ = victim.finish();
                self.spawn(q, m.procs[q].incarnation, device);
                // R9: a death never records; R3: the wait expires, reported at synchronize.
                let (code, msg) = self.call(p, &format!("sync {cur}"));
                assert_eq!(code, exp.code, "P{p}: {t:?}: {msg}");
                return;
            }
            &T::DestroyWhileWaiting { p, h, q, hq } => {
                let nid = m.procs[q].handles[&hq].notify;
                let slot = self.slots[&nid];
                let cur = m.procs[p].device;
                let (code, msg) =
                    self.call(p, &format!("waitdestroy {h} {cur} {PENDING_WAIT_SECS}"));
                assert_eq!(code, OK, "P{p}: {t:?}: wait, then destroy: {msg}");
                // R8: the handle is gone, the key revoked, but the pending wait still holds a
                // reference: the slot is not freed under it.
                let snap = backend_sim::inspect(self.ns.name())
                    .expect("inspect")
                    .expect("the namespace exists");
                let info = snap
                    .notifies
                    .iter()
                    .find(|n| (n.device, n.id) == slot)
                    .unwrap_or_else(|| {
                        panic!("R8: {t:?}: notify {nid} freed under a pending wait")
                    });
                assert_eq!(
                    info.exported, "revoked",
                    "R8: {t:?}: the creator's destroy revokes"
                );
                let pid = self.current_pid(m, p);
                assert!(
                    info.holders.contains(&pid),
                    "R8: {t:?}: the pending wait of P{p} (pid {pid}) holds a reference: {info:?}"
                );
                // R4: an importer's record releases the creator's wait (R1).
                let qcur = m.procs[q].device;
                let (code, msg) = self.call(q, &format!("record {hq} {qcur}"));
                assert_eq!(code, OK, "P{q}: record after {t:?}: {msg}");
                let (code, msg) = self.call(p, &format!("sync {cur}"));
                assert_eq!(code, OK, "P{p}: {t:?}: the pending wait must pass: {msg}");
                return;
            }
            T::Kill { device, then, .. } => {
                // R9: SIGKILL, no clean-up by the victim.
                let mut victim = self.procs[p].take().expect("the process runs");
                victim.kill();
                let (status, _) = victim.finish();
                assert!(!status.success(), "P{p} was killed");
                // R9: the next create or import by a live process reclaims the dead one first.
                if let Some(then) = then {
                    self.exec(m, then, exp);
                }
                // A fresh process in its place.
                self.spawn(p, m.procs[p].incarnation, *device);
                return;
            }
        };
        let (code, payload) = self.call(p, &cmd);
        assert_eq!(
            code, exp.code,
            "P{p}: {t:?} → {cmd:?}: the simulator answered {code} {payload:?}, the model expects {}",
            exp.code
        );
        if let T::Fill { .. } = t {
            // `<code> <reason> | dev:id,dev:id,...`: the slots of the creates that succeeded.
            let slots = payload.rsplit_once(" | ").map_or("-", |(_, s)| s);
            let slots: Vec<&str> = if slots == "-" {
                Vec::new()
            } else {
                slots.split(',').collect()
            };
            assert_eq!(slots.len(), exp.filled.len(), "R11: {payload}");
            for (&(_, nid), slot) in exp.filled.iter().zip(slots) {
                let slot = Sut::parse_slot(&slot.replace(':', " "));
                assert_eq!(
                    slot.0 as i32, m.notifies[&nid].device,
                    "R13: created on the current device"
                );
                self.slots.insert(nid, slot);
            }
            return;
        }
        if code != OK {
            return;
        }
        if let Some((_, nid)) = exp.created {
            let slot = Sut::parse_slot(&payload);
            assert_eq!(
                slot.0 as i32, m.notifies[&nid].device,
                "R13: created on the current device"
            );
            self.slots.insert(nid, slot);
        }
        if let Some((_, nid)) = exp.imported {
            // R7: the import refers to the same notify (device and id) as the exporter's.
            assert_eq!(Sut::parse_slot(&payload), self.slots[&nid], "R7: {t:?}");
        }
        if let Some(nid) = exp.exported {
            // R5: at most 64 printable characters.
            let key = ExportKey::new(payload.clone()).expect("R5: a valid key");
            self.keys.insert(nid, key.to_string());
        }
    }
}

impl StateMachineTest for Sut {
    type SystemUnderTest = Sut;
    type Reference = Model;

    fn init_test(m: &Model) -> Sut {
        // A namespace per case: 2 devices × 8 slots, so R11 is reachable.
        let ns = ScopedNamespace::new("model").with_size(DEVICES as u32, CAPACITY as u32);
        let mut sut = Sut {
            procs: (0..NPROC).map(|_| None).collect(),
            pids: HashMap::new(),
            slots: HashMap::new(),
            keys: HashMap::new(),
            spawner: RoleSpawner::new("child", &ns),
            ns,
        };
        for (p, pr) in m.procs.iter().enumerate() {
            sut.spawn(p, pr.incarnation, pr.device);
        }
        sut
    }

    fn apply(mut sut: Sut, m: &Model, t: T) -> Sut {
        sut.exec(m, &t, &m.expect);
        if std::env::var_os("MODEL_STATS").is_some() {
            // Coverage: the kind of each step and the code both sides agreed on.
            let kind = format!("{t:?}");
            let kind = kind.split([' ', '{']).next().unwrap_or_default();
            eprintln!("model-stat {kind} {}", m.expect.code);
        }
        sut
    }

    /// The registry must hold exactly the model's processes and live notifies.
    fn check_invariants(sut: &Sut, m: &Model) {
        let snap = backend_sim::inspect(sut.ns.name())
            .expect("inspect")
            .expect("the namespace exists while its processes live");
        assert_eq!(
            (snap.devices, snap.capacity),
            (DEVICES as u32, CAPACITY as u32)
        );
        // R9: the killed processes are reclaimed, the live ones stay attached.
        let mut attached = snap.processes.clone();
        attached.sort_unstable();
        let mut want: Vec<i32> = (0..NPROC).map(|p| sut.current_pid(m, p)).collect();
        want.sort_unstable();
        assert_eq!(attached, want, "R9: the attached processes");
        // R9: whoever reclaims a dead process removes its lock file: one per live process.
        let locks = lock_files(sut.ns.name());
        assert_eq!(locks.len(), NPROC, "R9: lock files {locks:?}");

        // R8/R9/R11: exactly the notifies that still have a reference are live.
        let mut want_slots: Vec<(u32, u32)> = m.notifies.keys().map(|n| sut.slots[n]).collect();
        want_slots.sort_unstable();
        let mut live: Vec<(u32, u32)> = snap.notifies.iter().map(|n| (n.device, n.id)).collect();
        live.sort_unstable();
        assert_eq!(
            live, want_slots,
            "R8/R9: live notifies (device, id); model: {m:#?}"
        );

        let by_slot: HashMap<(u32, u32), _> = snap
            .notifies
            .iter()
            .map(|n| ((n.device, n.id), n))
            .collect();
        for (nid, n) in &m.notifies {
            let info = by_slot[&sut.slots[nid]];
            let what = format!("notify {nid} at {:?}", sut.slots[nid]);
            // R8: one holder per process holding a reference.
            let mut holders = info.holders.clone();
            holders.sort_unstable();
            let mut want: Vec<i32> = n.holders.keys().map(|&p| sut.current_pid(m, p)).collect();
            want.sort_unstable();
            assert_eq!(holders, want, "R8: holders of {what}");
            assert_eq!(
                n.holders.values().sum::<u32>() as usize,
                n.holders.len(),
                "model: one reference per holder"
            );
            // R1: the flag.
            assert_eq!(info.flag, n.flag, "R1: flag of {what}");
            // R5/R8: export state.
            let exported = match (n.revoked, n.export) {
                (true, _) => "revoked",
                (false, None) => "no",
                (false, Some(f)) if f & DISABLE_PID_VALIDATION != 0 => "any-pid",
                (false, Some(_)) => "whitelist",
            };
            assert_eq!(info.exported, exported, "R5/R8: export state of {what}");
            // R6: the whitelist of a live export, in insertion order.
            if exported == "whitelist" {
                let want: Vec<i32> = n.whitelist.iter().map(|&s| sut.pid(s)).collect();
                assert_eq!(info.whitelist, want, "R6: whitelist of {what}");
            }
            // R9: the creator while its process lives.
            let (cp, ci) = n.creator;
            let creator = (m.procs[cp].incarnation == ci).then(|| sut.pids[&(cp, ci)]);
            assert_eq!(info.creator, creator, "R9: creator of {what}");
        }
    }

    /// Every driver quits cleanly; the last one out removes the namespace (§4).
    fn teardown(mut sut: Sut, _m: Model) {
        for p in 0..NPROC {
            let mut r = sut.procs[p].take().expect("the process runs");
            r.send("quit");
            assert_eq!(r.recv(), "bye", "P{p} quits");
            let (status, stderr) = r.finish();
            assert!(status.success(), "P{p} exited with {status}: {stderr}");
        }
        assert!(
            !backend_sim::namespace_exists(sut.ns.name()) && lock_files(sut.ns.name()).is_empty(),
            "§4: the last process to detach cleanly removes the namespace"
        );
    }
}

/// 16 cases unless `PROPTEST_CASES` says otherwise; a bounded shrink (each step spawns real
/// processes) unless `PROPTEST_MAX_SHRINK_ITERS` says otherwise.
fn config() -> Config {
    let mut c = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 16;
    }
    if std::env::var_os("PROPTEST_MAX_SHRINK_ITERS").is_none() {
        c.max_shrink_iters = 512;
    }
    // Regressions go to tests/model.proptest-regressions (tests/ has no lib.rs to look for).
    c.failure_persistence = Some(Box::new(FileFailurePersistence::WithSource(
        "proptest-regressions",
    )));
    c
}

prop_state_machine! {
    #![proptest_config(config())]

    /// R1–R11 against the model, step by step, across three real processes.
    #[test]
    fn simulator_follows_the_model(sequential 1..30 => Sut);
}
