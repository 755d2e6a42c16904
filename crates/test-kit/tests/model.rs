//! Model-based property test of the simulator across real processes: the C ABI of
//! `libascendcl.so` against the one reference model of `SEMANTICS.md` (`test_kit::model`),
//! step by step.
//!
//! # How it works
//! - `test_kit::model::Model` is the reference: it knows nothing of the simulator. Three
//!   processes P0..P2 (each with incarnations, an `aclInit` session, a current device, its
//!   peer pairs, its handles and streams), the live notifies (device, creator, flag, export
//!   state, whitelist, references per holder) and every key ever exported. Pids, handles and
//!   keys are *symbols*; `test_kit::harness::Symbols` maps them to the real ones.
//! - `proptest-state-machine` generates sequences of [`Step`]s from the model. A step is a
//!   short list of model [`Op`]s (a C call with its arguments as C passes them, or a process
//!   event): one call, or a composite that must run together (a fill, a kill and what follows
//!   it, a wait that must expire). The transitions:
//!   - set-device (a valid or invalid id, R13), reset-device, get-device, enable-peer (R7),
//!     can-access-peer;
//!   - create on the current device (flags 0, 1 or bad bits), and fill (create until the
//!     device is full: every free slot of the model must be creatable, then 207009, R11);
//!   - export with flags 0x0 / 0x2 (R5: creator only, once; 507000 on an imported handle),
//!     and with a short or NULL key buffer;
//!   - set-import-pid with one pid (of a process, now or in an earlier life; 0; the caller's
//!     own; of no process), with none or two (R6: 107000), filling the whitelist to its 15
//!     importers and beyond (507899);
//!   - import with flags 0x0 / 0x2 by an exported key (live, revoked, freed and maybe reused,
//!     held, not whitelisted, on another device without peer access...), a forged key, a key
//!     of another namespace, or a malformed one (R7, in the order of R15);
//!   - record and wait-and-reset on the default stream or a created stream (of this or another
//!     device, R13: 107003), then a synchronize: waits that pass at once, that are refused at
//!     enqueue (R4), waits that stay queued (30 s) until another holder's record releases them
//!     (R1, R2) or a timed synchronize gives up on them (507046), and, rarely, a wait that
//!     expires (1 s, R3: 107019);
//!   - destroy (R8), also of the creator's handle while its wait is queued (the task keeps the
//!     notify alive, and an importer's record still releases it);
//!   - batch reset of 1..3 handles, or of none (R1);
//!   - handles that are destroyed, of an earlier session, of another process (a copied token),
//!     garbage, or NULL (R10: 107017, 100000);
//!   - `aclFinalize` and `aclInit` again (handles of the earlier session are dead), calls
//!     before `aclInit` (100001), `aclInit` twice (100002);
//!   - kill: `SIGKILL` a process (R9), optionally with a fill or an import by another process
//!     before anyone reclaimed the victim, and later a fresh process in its place; a normal
//!     exit without `aclFinalize` (§4: a clean detach at exit); the inspector's explicit
//!     reclamation; and, rarely, a wait whose only other holder dies: it must still expire (R9:
//!     a death never records).
//!   - §5 (M1–M6): malloc (sizes to 9 MiB, every policy, unknown ones; 207001 on the small
//!     device memory of the case), free (of a start, an offset, another process's range, a
//!     freed one), writes and read-backs (H2D, DEFAULT, HOST_TO_BUF_TO_DEVICE; D2H), copies and
//!     sets between two ranges of a process, sync and async on the default stream (the only
//!     way to reach an import), exports (whole range, a page, misaligned, short buffer, bad
//!     flags), whitelists (one pid, two, none, 32, negative, a non-exporter's), imports (mostly
//!     admissible; any key, forged, a notify key, another namespace's, malformed), closes by
//!     importers and exporters (the hazards), and reads of what another process wrote through
//!     an import; every byte read back is compared with the model's, and the registry's
//!     allocations, exports and hazard counts with the model's after every op.
//! - The processes are real: children that re-execute this test binary (`RoleSpawner`, the
//!   one re-exec mechanism) in the role `"driver"` and speak `test_kit::protocol` (one JSON
//!   `Call` per line, run through the C exports, one JSON `Reply` back). The conductor (this
//!   test process) never attaches.
//! - After every op the code must equal the model's, the reply must keep §2's message rules,
//!   and the registry seen through `backend_sim::inspect::inspect` must hold exactly the
//!   model's attached processes and live notifies, each with the same holders, flag, export
//!   state, whitelist and creator (`Symbols::check_registry`; where the registry may lag, R9's
//!   lazy reclamation, either state is accepted). A successful import must name the exporter's
//!   notify id (R7).
//! - At the end of a case every process exits, and the namespace (segment and every file of
//!   it) must be gone (§4, "Cleanup").
//!
//! Each case uses its own namespace of 2 devices × 8 slots, so the capacity limit (R11, 207009)
//! and slot reuse (R5c: an old key never resolves to a later notify in the slot) are reached.
//!
//! The number of cases defaults to 24 (sequences of 1..30 steps); `PROPTEST_CASES` overrides
//! it, `PROPTEST_MAX_SHRINK_ITERS` the shrink budget (default 256). With `MODEL_STATS=1` (and
//! `--nocapture`) each case prints how many ops of each kind agreed on each code (to check
//! coverage), and every op that took over 200 ms. A call that should return but hangs is killed
//! after 10 s (plus the waits the model says it waits for), so that a lost wake-up fails, and
//! shrinks, in seconds.
//!
//! Known limit: pids are compared symbolically; if the kernel gave a replacement process the
//! pid of another process of the same case, the test stops with a message saying so.

use std::collections::BTreeMap;

use backend_sim::testing::{RoleProcess, RoleSpawner, ScopedNamespace, StdioLink, child_role};
use notify_api::conformance::Peer as _;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use proptest::strategy::Union;
use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence};
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};
use test_kit::harness::Symbols;
use test_kit::model::{
    Array, Buf, Config, Export, Hid, KeyArg, MemKeyArg, Mid, Model, Nid, NotifyArg, Op, Origin,
    PidSym, Proc, PtrArg, QueueRef, Sid, StreamArg, Xid,
};
use test_kit::protocol::Child;

/// Modelled processes.
const NPROC: usize = 3;
/// Devices of each case's namespace.
const DEVICES: u32 = 2;
/// Notifies per device of each case's namespace (R11).
const CAPACITY: u32 = 8;
/// Device memory per device of each case's namespace (M1): a few huge-page allocations fill a
/// device, so that 207001 is reached.
const DEVICE_MEMORY: u64 = 8 << 20;
/// The timeout of a wait that stays queued until a record releases it: never reached.
const PENDING_WAIT_S: u32 = 30;
/// The timeout of a wait that must expire (R3): what it costs.
const SHORT_WAIT_S: u32 = 1;
/// Pids no process has (above `pid_max` and the simulator's synthetic bare tgids).
const FOREIGN_PID_BASE: i32 = 0x7fff_0000;
/// A key in the simulator's format whose namespace hash is not ours (R7: 507899).
const OTHER_NAMESPACE_KEY: &[u8] = b"ans1-0123456789abcdef-000000-00000000-fedcba9876543210";
/// A memory key in the simulator's format whose namespace hash is not ours (M5: 507899).
const OTHER_NAMESPACE_MEM_KEY: &[u8] = b"anm1-0123456789abcdef-0000-00000000-fedcba9876543210";
/// A printable key that is not in the simulator's format (R7: 107000).
const MALFORMED_KEY: &[u8] = b"not-a-simulator-key";

fn cfg() -> Config {
    Config {
        devices: DEVICES,
        capacity: CAPACITY,
        processes: NPROC,
        device_memory: DEVICE_MEMORY,
    }
}

/// The contract's configuration, for the fixed sequences (the same as the random ones').
fn contract_cfg() -> Config {
    cfg()
}

// ---------------------------------------------------------------------------------------------
// Steps
// ---------------------------------------------------------------------------------------------

/// One transition: ops that run together, each compared on its own.
#[derive(Clone, Debug)]
struct Step {
    ops: Vec<Op>,
}

/// `ops` and what settles after each (a released wait's synchronize), if the model can
/// predict all of it.
fn complete(s: &Model, ops: Vec<Op>) -> Option<Step> {
    let mut m = s.clone();
    let mut all = Vec::new();
    for op in ops {
        if !pids_known(&m, &op) {
            return None;
        }
        m.try_apply(&op).ok()?;
        all.push(op);
        for settle in m.settle_ops() {
            m.try_apply(&settle).ok()?;
            all.push(settle);
        }
    }
    Some(Step { ops: all })
}

/// Whether every process pid an op names belongs to an incarnation that exists.
fn pids_known(m: &Model, op: &Op) -> bool {
    let Op::SetPid {
        pids: Array::Items(v),
        ..
    } = op
    else {
        return true;
    };
    v.iter().all(|pid| match *pid {
        PidSym::Proc { p, incarnation } => p < NPROC && incarnation <= m.process(p).incarnation,
        PidSym::Raw(_) => true,
    })
}

/// The steps that bring process `p` up: spawn, `aclInit`, a current device, its bare tgid.
fn bring_up(p: Proc, device: i32) -> Vec<Op> {
    vec![
        Op::Spawn { p },
        Op::Init { p },
        Op::SetDevice { p, device },
        Op::BareTgid { p, null: false },
    ]
}

/// The first ops of a case: every process starts on `devices[p]`.
fn start_ops(devices: &[i32]) -> Vec<Op> {
    devices
        .iter()
        .enumerate()
        .flat_map(|(p, &d)| {
            // The initial processes exist already: skip the spawn.
            bring_up(p, d).into_iter().skip(1)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Generation
// ---------------------------------------------------------------------------------------------

/// Processes ready for calls: alive, initialized, with a current device.
fn ready(s: &Model) -> Vec<(Proc, i32)> {
    s.procs()
        .iter()
        .enumerate()
        .filter(|(_, pr)| pr.attached())
        .filter_map(|(p, pr)| Some((p, pr.current?)))
        .collect()
}

fn ipc_flags() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0x0u64), Just(0x2u64)]
}

type Arm = (u32, BoxedStrategy<Vec<Op>>);

fn one(op: Op) -> Vec<Op> {
    vec![op]
}

/// A pid to whitelist: a process now, in an earlier life, 0, or no process.
fn pid_choice(s: &Model) -> BoxedStrategy<PidSym> {
    let mut arms: Vec<(u32, BoxedStrategy<PidSym>)> = vec![
        (
            8,
            (0..NPROC)
                .prop_map({
                    let s = s.clone();
                    move |q| s.pid(q)
                })
                .boxed(),
        ),
        (
            2,
            (0..16i32)
                .prop_map(|k| PidSym::Raw(FOREIGN_PID_BASE + k))
                .boxed(),
        ),
        (1, Just(PidSym::Raw(0)).boxed()),
    ];
    let old: Vec<PidSym> = (0..NPROC)
        .flat_map(|p| {
            (0..s.process(p).incarnation).map(move |incarnation| PidSym::Proc { p, incarnation })
        })
        .collect();
    if !old.is_empty() {
        arms.push((1, select(old).boxed()));
    }
    Union::new_weighted(arms).boxed()
}

fn transitions(s: &Model) -> BoxedStrategy<Step> {
    let mut arms: Vec<Arm> = Vec::new();
    let ready = ready(s);
    let procs: Vec<Proc> = (0..NPROC).collect();

    // Process lives: respawn the dead, init the uninitialized, kill, exit, finalize, reclaim.
    let dead: Vec<Proc> = procs
        .iter()
        .copied()
        .filter(|&p| !s.process(p).alive)
        .collect();
    if !dead.is_empty() {
        arms.push((
            8,
            (select(dead), 0..DEVICES as i32)
                .prop_map(|(p, d)| bring_up(p, d))
                .boxed(),
        ));
    }
    let uninit: Vec<Proc> = procs
        .iter()
        .copied()
        .filter(|&p| s.process(p).alive && s.process(p).session.is_none())
        .collect();
    if !uninit.is_empty() {
        arms.push((
            6,
            (select(uninit.clone()), 0..DEVICES as i32)
                .prop_map(|(p, device)| vec![Op::Init { p }, Op::SetDevice { p, device }])
                .boxed(),
        ));
        // Calls before aclInit (100001).
        arms.push((
            1,
            select(uninit)
                .prop_map(|p| {
                    vec![
                        Op::Create {
                            p,
                            null: false,
                            flags: 0,
                        },
                        Op::SetDevice { p, device: 0 },
                        Op::Finalize { p },
                    ]
                })
                .boxed(),
        ));
    }
    let alive: Vec<Proc> = procs
        .iter()
        .copied()
        .filter(|&p| s.process(p).alive)
        .collect();
    if !alive.is_empty() {
        arms.push((
            2,
            select(alive.clone())
                .prop_map(|p| one(Op::Kill { p }))
                .boxed(),
        ));
        arms.push((
            1,
            select(alive.clone())
                .prop_map(|p| one(Op::Exit { p }))
                .boxed(),
        ));
    }
    arms.push((1, Just(one(Op::Reclaim)).boxed()));

    if !ready.is_empty() {
        ready_arms(s, &ready, &mut arms);
    }
    let st = s.clone();
    Union::new_weighted(arms)
        .prop_filter_map("the model can predict it", move |ops| complete(&st, ops))
        .boxed()
}

/// The live ranges of process `p`: (range, is an import, length).
fn ranges_of(s: &Model, p: Proc) -> Vec<(Mid, bool, u64)> {
    s.live_regions(p)
        .into_iter()
        .map(|m| {
            let r = &s.regions()[&m];
            (m, matches!(r.origin, Origin::Import { .. }), r.len)
        })
        .collect()
}

fn copy(p: Proc, dst: PtrArg, src: PtrArg, count: u64, kind: u32, stream: Option<StreamArg>) -> Op {
    Op::Memcpy {
        p,
        dst,
        dest_max: count,
        src,
        count,
        kind,
        stream,
    }
}

/// §5: allocations, frees, copies and sets (sync, and async on a stream, which is how imports
/// are reached), exports, whitelists, imports and closes, with the bytes moved checked at
/// every read (M5: what one side writes through the runtime, the other reads).
fn memory_arms(s: &Model, rp: &[Proc], arms: &mut Vec<Arm>) {
    let pick = || select(rp.to_vec());
    arms.push((
        5,
        (
            pick(),
            select(vec![
                1u64,
                4096,
                4097,
                64 << 10,
                2 << 20,
                (2 << 20) + 1,
                5 << 20,
                9 << 20,
            ]),
            prop_oneof![6 => Just(2u32), 2 => Just(0u32), 2 => Just(1u32), 1 => Just(6u32),
                        1 => Just(9u32), 1 => Just(0x100u32)],
            prop_oneof![20 => Just(false), 1 => Just(true)],
        )
            .prop_map(|(p, size, policy, null)| {
                one(Op::Malloc {
                    p,
                    null,
                    size,
                    policy,
                })
            })
            .boxed(),
    ));
    arms.push((
        1,
        (pick(), 0..20u32, 0..8u8)
            .prop_map(|(p, attr, nulls)| {
                one(Op::MemInfo {
                    p,
                    attr,
                    null_free: nulls == 1,
                    null_total: nulls == 2,
                })
            })
            .boxed(),
    ));
    // Every live range of a ready process: (p, range, import, len).
    let all: Vec<(Proc, Mid, bool, u64)> = rp
        .iter()
        .flat_map(|&p| {
            ranges_of(s, p)
                .into_iter()
                .map(move |(m, i, l)| (p, m, i, l))
        })
        .collect();
    let allocs: Vec<_> = all.iter().copied().filter(|r| !r.2).collect();
    if !allocs.is_empty() {
        arms.push((
            3,
            select(allocs.clone())
                .prop_map(|(p, m, _, _)| {
                    one(Op::Free {
                        p,
                        ptr: PtrArg::Dev(m, 0),
                    })
                })
                .boxed(),
        ));
        // Write a pattern (H2D, DEFAULT or HOST_TO_BUF_TO_DEVICE), read it back.
        arms.push((
            5,
            (
                select(allocs.clone()),
                0..4096u64,
                1..4096u64,
                any::<u8>(),
                select(vec![1u32, 4, 5]),
            )
                .prop_map(|((p, m, _, len), off, n, seed, kind)| {
                    let off = off % len;
                    let n = n.min(len - off);
                    vec![
                        copy(
                            p,
                            PtrArg::Dev(m, off),
                            PtrArg::Host { seed, len: n },
                            n,
                            kind,
                            None,
                        ),
                        copy(
                            p,
                            PtrArg::Host { seed: 0, len: n },
                            PtrArg::Dev(m, off),
                            n,
                            2,
                            None,
                        ),
                    ]
                })
                .boxed(),
        ));
        // Exports: the whole range, its first page, its second (or past its end); mostly with a
        // whitelist.
        arms.push((
            5,
            (
                select(allocs.clone()),
                0..3u8,
                prop_oneof![3 => Just(0u64), 1 => Just(1u64)],
            )
                .prop_map({
                    let s = s.clone();
                    move |((p, m, _, len), which, flags)| {
                        let page = s.regions()[&m].page;
                        let (off, size) = match which {
                            0 => (0, len),
                            1 => (0, page),
                            _ if len >= 2 * page => (page, page),
                            // No second page: a range one page past the end (M3: 107000). Not
                            // the page after it, which may be the next allocation's first.
                            _ => (0, len + page),
                        };
                        one(Op::MemExport {
                            p,
                            ptr: PtrArg::Dev(m, off),
                            size,
                            buf: Buf::KEY,
                            flags,
                        })
                    }
                })
                .boxed(),
        ));
        // Bad exports (M3: 107000): size 0, misaligned, a short or NULL buffer, bad flags.
        arms.push((
            1,
            (select(allocs.clone()), 0..5u8)
                .prop_map(|((p, m, _, len), k)| {
                    let (off, size, buf, flags) = match k {
                        0 => (0, 0, Buf::KEY, 0),
                        1 => (1, len - 1, Buf::KEY, 0),
                        2 => (0, 100, Buf::KEY, 0),
                        3 => (
                            0,
                            len,
                            Buf {
                                null: false,
                                len: 64,
                            },
                            0,
                        ),
                        _ => (0, len, Buf::KEY, 2),
                    };
                    one(Op::MemExport {
                        p,
                        ptr: PtrArg::Dev(m, off),
                        size,
                        buf,
                        flags,
                    })
                })
                .boxed(),
        ));
    }
    if !all.is_empty() {
        // Sets and copies between two live ranges of one process, sync and async (an import
        // only async, M5); the async forms are followed by their synchronize (settle).
        let pairs: Vec<_> = all
            .iter()
            .flat_map(|&a| all.iter().filter(move |b| b.0 == a.0).map(move |&b| (a, b)))
            .collect();
        arms.push((
            6,
            (
                select(pairs),
                1..4096u64,
                select(vec![3u32, 4, 6, 7]),
                any::<bool>(),
                any::<bool>(),
            )
                .prop_map(|((d, src), n, kind, on_stream, back)| {
                    let n = n.min(d.3).min(src.3);
                    let stream = on_stream.then_some(StreamArg::Default);
                    let mut ops = vec![copy(
                        d.0,
                        PtrArg::Dev(d.1, 0),
                        PtrArg::Dev(src.1, 0),
                        n,
                        kind,
                        stream,
                    )];
                    if back && !d.2 {
                        ops.push(copy(
                            d.0,
                            PtrArg::Host { seed: 0, len: n },
                            PtrArg::Dev(d.1, 0),
                            n,
                            4,
                            None,
                        ));
                    }
                    ops
                })
                .boxed(),
        ));
        arms.push((
            3,
            (
                select(all.clone()),
                0..4096u64,
                1..8192u64,
                any::<i32>(),
                any::<bool>(),
            )
                .prop_map(|((p, m, import, len), off, n, value, sync)| {
                    let off = off % len;
                    let n = n.min(len - off);
                    let stream = (import || !sync).then_some(StreamArg::Default);
                    one(Op::Memset {
                        p,
                        ptr: PtrArg::Dev(m, off),
                        max: n,
                        value,
                        count: n,
                        stream,
                    })
                })
                .boxed(),
        ));
        // Bad pointers and counts (M1/M2: 107000, 100000; a sync copy of an import, M5).
        let s2 = s.clone();
        arms.push((
            2,
            (
                select(all.clone()),
                any::<u64>(),
                0..10u8,
                any::<prop::sample::Index>(),
            )
                .prop_map(move |((p, m, _, len), wild, k, other)| {
                    bad_mem(&s2, p, m, len, wild | 1 << 47, k, other)
                })
                .boxed(),
        ));
    }

    // Whitelists (M4): mostly by the exporter of an open export with a whitelist.
    let exports: Vec<(Xid, Proc, bool)> = s
        .mem_exports()
        .iter()
        .filter(|(_, x)| x.open && rp.contains(&x.exporter) && s.pid(x.exporter) == x.exporter_pid)
        .map(|(&x, e)| (x, e.exporter, e.disable))
        .collect();
    if !exports.is_empty() {
        let pid_sets = prop_oneof![
            10 => pid_choice(s).prop_map(|p| vec![p]),
            2 => (pid_choice(s), pid_choice(s)).prop_map(|(a, b)| vec![a, b]),
            1 => Just(Vec::new()),
            1 => Just((0..32).map(|k| PidSym::Raw(FOREIGN_PID_BASE + k)).collect()),
            1 => Just(vec![PidSym::Raw(-3)]),
        ];
        arms.push((
            6,
            (select(exports.clone()), pid_sets)
                .prop_map(|((x, p, _), pids)| {
                    one(Op::MemSetPid {
                        p,
                        key: MemKeyArg::Known(x),
                        pids: Array::Items(pids),
                    })
                })
                .boxed(),
        ));
        arms.push((
            1,
            (select(exports.clone()), pick())
                .prop_map(|((x, p, _), q)| {
                    vec![
                        Op::MemSetPid {
                            p: q,
                            key: MemKeyArg::Known(x),
                            pids: Array::Items(vec![PidSym::Raw(FOREIGN_PID_BASE)]),
                        },
                        Op::MemSetPid {
                            p,
                            key: MemKeyArg::Known(x),
                            pids: Array::Null { num: 1 },
                        },
                        Op::MemSetPid {
                            p,
                            key: MemKeyArg::Forged(x),
                            pids: Array::Items(vec![PidSym::Raw(FOREIGN_PID_BASE)]),
                        },
                    ]
                })
                .boxed(),
        ));
        // The exporter closes its key (a hazard while imported, M6).
        arms.push((
            2,
            select(exports)
                .prop_map(|(x, p, _)| {
                    one(Op::MemClose {
                        p,
                        key: MemKeyArg::Known(x),
                    })
                })
                .boxed(),
        ));
    }
    // Imports (M5): mostly admissible ones, then any key, forged, a notify's, malformed.
    let keys: Vec<Xid> = s.mem_keys().iter().copied().collect();
    if !keys.is_empty() {
        let admissible: Vec<(Proc, Xid)> = rp
            .iter()
            .flat_map(|&p| keys.iter().map(move |&x| (p, x)))
            .filter(|&(p, x)| {
                s.mem_exports().get(&x).is_some_and(|e| {
                    e.open
                        && e.exporter_pid != s.pid(p)
                        && (e.disable || e.whitelist.contains(&s.pid(p)))
                        && !e
                            .imports
                            .iter()
                            .any(|m| s.regions()[m].owner == p && s.live_regions(p).contains(m))
                })
            })
            .collect();
        if !admissible.is_empty() {
            arms.push((
                10,
                (
                    select(admissible),
                    prop_oneof![3 => Just(0u64), 2 => Just(1u64)],
                )
                    .prop_map(|((p, x), flags)| {
                        one(Op::MemImport {
                            p,
                            null_out: false,
                            key: MemKeyArg::Known(x),
                            flags,
                        })
                    })
                    .boxed(),
            ));
        }
        let notify_key = s.keys().iter().next().copied();
        arms.push((
            3,
            (
                pick(),
                select(keys),
                0..8u8,
                prop_oneof![Just(0u64), Just(1u64)],
            )
                .prop_map(move |(p, x, k, flags)| {
                    let key = match k {
                        0 => MemKeyArg::Forged(x),
                        1 => notify_key.map_or(MemKeyArg::Null, MemKeyArg::Notify),
                        2 => MemKeyArg::Other(MALFORMED_KEY.to_vec()),
                        3 => MemKeyArg::Other(OTHER_NAMESPACE_MEM_KEY.to_vec()),
                        _ => MemKeyArg::Known(x),
                    };
                    if k == 7 {
                        return one(Op::MemClose { p, key });
                    }
                    one(Op::MemImport {
                        p,
                        null_out: k == 6,
                        key,
                        flags,
                    })
                })
                .boxed(),
        ));
    }
    // Importers close their imports; read what the exporter wrote (M5).
    let imports: Vec<(Proc, Mid, Xid, u64)> = all
        .iter()
        .filter(|r| r.2)
        .filter_map(|&(p, m, _, len)| match s.regions()[&m].origin {
            Origin::Import { export, .. } => Some((p, m, export, len)),
            Origin::Alloc => None,
        })
        .collect();
    if !imports.is_empty() {
        arms.push((
            3,
            select(imports.clone())
                .prop_map(|(p, _, x, _)| {
                    one(Op::MemClose {
                        p,
                        key: MemKeyArg::Known(x),
                    })
                })
                .boxed(),
        ));
        let s2 = s.clone();
        arms.push((
            6,
            (select(imports), any::<u8>(), 1..4096u64)
                .prop_map(move |((p, m, _, len), sel, n)| {
                    let n = n.min(len);
                    // Into one of the importer's own allocations, then to the host.
                    let own: Vec<(Mid, u64)> = ranges_of(&s2, p)
                        .into_iter()
                        .filter(|r| !r.1)
                        .map(|r| (r.0, r.2))
                        .collect();
                    let Some(&(a, alen)) = own.get(usize::from(sel) % own.len().max(1)) else {
                        return vec![Op::Malloc {
                            p,
                            null: false,
                            size: n,
                            policy: 2,
                        }];
                    };
                    let n = n.min(alen);
                    vec![
                        copy(
                            p,
                            PtrArg::Dev(a, 0),
                            PtrArg::Dev(m, 0),
                            n,
                            3,
                            Some(StreamArg::Default),
                        ),
                        copy(
                            p,
                            PtrArg::Host { seed: 0, len: n },
                            PtrArg::Dev(a, 0),
                            n,
                            2,
                            None,
                        ),
                    ]
                })
                .boxed(),
        ));
    }
}

/// Memory calls the C ABI must refuse (M1, M2, M5), on range `m` of process `p`.
fn bad_mem(
    s: &Model,
    p: Proc,
    m: Mid,
    len: u64,
    wild: u64,
    k: u8,
    other: prop::sample::Index,
) -> Vec<Op> {
    let foreign: Vec<Mid> = s
        .regions()
        .keys()
        .copied()
        .filter(|&r| s.regions()[&r].owner != p)
        .collect();
    let dead: Vec<Mid> = s
        .regions()
        .keys()
        .copied()
        .filter(|&r| s.is_session_region(p, r) && !s.regions()[&r].live)
        .collect();
    let pick = |v: &[Mid]| (!v.is_empty()).then(|| PtrArg::Dev(*other.get(v), 0));
    let dev = PtrArg::Dev(m, 0);
    let host = |n| PtrArg::Host { seed: 1, len: n };
    match k {
        0 => vec![
            Op::Free {
                p,
                ptr: PtrArg::Dev(m, 1),
            },
            Op::Free {
                p,
                ptr: PtrArg::Null,
            },
        ],
        1 => vec![Op::Free {
            p,
            ptr: pick(&foreign).unwrap_or(PtrArg::Wild(wild)),
        }],
        2 => vec![Op::Free {
            p,
            ptr: pick(&dead).unwrap_or(PtrArg::Wild(wild)),
        }],
        // Out of range, count > destMax, a bad kind, a kind that contradicts the pointers.
        3 => vec![
            copy(p, dev.clone(), host(len + 1), len + 1, 1, None),
            Op::Memcpy {
                p,
                dst: dev.clone(),
                dest_max: 3,
                src: host(4),
                count: 4,
                kind: 1,
                stream: None,
            },
            copy(p, dev.clone(), host(4), 4, 8, None),
            copy(p, dev.clone(), host(4), 4, 2, None),
            copy(p, PtrArg::Null, dev.clone(), 4, 3, None),
        ],
        // Another process's range, a freed one, a wild value where device memory is wanted.
        4 => {
            let mut ops = vec![copy(p, PtrArg::Wild(wild), host(4), 4, 1, None)];
            if let Some(f) = pick(&foreign) {
                ops.push(copy(p, f.clone(), host(4), 4, 1, None));
                ops.push(copy(p, dev.clone(), f, 4, 3, None));
            }
            if let Some(d) = pick(&dead) {
                ops.push(copy(p, host(4), d.clone(), 4, 4, None));
                ops.push(Op::Memset {
                    p,
                    ptr: d,
                    max: 4,
                    value: 1,
                    count: 4,
                    stream: None,
                });
            }
            ops
        }
        5 => vec![
            Op::Memset {
                p,
                ptr: host(4),
                max: 4,
                value: 1,
                count: 4,
                stream: None,
            },
            Op::Memset {
                p,
                ptr: PtrArg::Wild(wild),
                max: 4,
                value: 1,
                count: 4,
                stream: None,
            },
            Op::Memset {
                p,
                ptr: dev.clone(),
                max: len,
                value: 1,
                count: len + 1,
                stream: None,
            },
            copy(p, dev.clone(), host(0), 0, 99, None),
        ],
        // Sync copies of an import (M5: 107000), host copies of one.
        6 => vec![
            copy(p, host(4), dev.clone(), 4, 2, None),
            copy(p, dev.clone(), dev.clone(), 4, 3, None),
            Op::Memset {
                p,
                ptr: dev,
                max: 4,
                value: 1,
                count: 4,
                stream: None,
            },
        ],
        7 => vec![
            Op::Malloc {
                p,
                null: false,
                size: 0,
                policy: 2,
            },
            Op::Malloc {
                p,
                null: false,
                size: 4096,
                policy: 8,
            },
            Op::Malloc {
                p,
                null: false,
                size: 1 << 40,
                policy: 2,
            },
        ],
        8 => vec![
            Op::MemExport {
                p,
                ptr: PtrArg::Null,
                size: 4096,
                buf: Buf::KEY,
                flags: 0,
            },
            Op::MemImport {
                p,
                null_out: false,
                key: MemKeyArg::Null,
                flags: 0,
            },
            Op::MemClose {
                p,
                key: MemKeyArg::Null,
            },
        ],
        _ => vec![
            Op::MemExport {
                p,
                ptr: PtrArg::Wild(wild),
                size: 4096,
                buf: Buf::KEY,
                flags: 0,
            },
            copy(p, dev.clone(), dev, 4, 3, Some(StreamArg::Invalid(wild))),
        ],
    }
}

fn ready_arms(s: &Model, ready: &[(Proc, i32)], arms: &mut Vec<Arm>) {
    let rp: Vec<Proc> = ready.iter().map(|r| r.0).collect();
    memory_arms(s, &rp, arms);
    let pick = || select(rp.clone());
    let cur = |p: Proc| s.process(p).current.expect("ready");

    arms.push((
        6,
        (
            pick(),
            prop_oneof![8 => Just(0u64), 1 => Just(1u64), 1 => any::<u64>()],
        )
            .prop_map(|(p, flags)| {
                one(Op::Create {
                    p,
                    null: false,
                    flags,
                })
            })
            .boxed(),
    ));
    // R11: fill the current device: every free slot, then one more (207009).
    {
        let s = s.clone();
        arms.push((
            1,
            pick()
                .prop_map(move |p| {
                    let free = (CAPACITY as usize).saturating_sub(s.live_on(cur_of(&s, p)));
                    vec![
                        Op::Create {
                            p,
                            null: false,
                            flags: 0,
                        };
                        free + 1
                    ]
                })
                .boxed(),
        ));
    }
    arms.push((
        2,
        (pick(), 0..=DEVICES as i32)
            .prop_map(|(p, device)| one(Op::SetDevice { p, device }))
            .boxed(),
    ));
    arms.push((
        1,
        (
            pick(),
            0..=DEVICES as i32,
            prop_oneof![6 => Just(0u32), 1 => Just(1u32)],
        )
            .prop_map(|(p, peer, flags)| one(Op::EnablePeer { p, peer, flags }))
            .boxed(),
    ));
    arms.push((
        1,
        (pick(), 0..DEVICES as i32, any::<bool>())
            .prop_map(|(p, device, get)| {
                if get {
                    vec![
                        Op::ResetDevice { p, device },
                        Op::GetDevice { p, null: false },
                        Op::SetDevice { p, device },
                    ]
                } else {
                    vec![
                        Op::GetDevice { p, null: false },
                        Op::DeviceCount { p, null: false },
                        Op::CanAccessPeer {
                            p,
                            null: false,
                            device,
                            peer: 1 - device,
                        },
                        Op::BareTgid { p, null: false },
                    ]
                }
            })
            .boxed(),
    ));
    // Streams: create one, destroy one, synchronize one.
    arms.push((
        1,
        pick()
            .prop_map(|p| one(Op::CreateStream { p, null: false }))
            .boxed(),
    ));
    let streams: Vec<(Proc, Sid)> = rp
        .iter()
        .flat_map(|&p| s.live_streams(p).into_iter().map(move |sid| (p, sid)))
        .collect();
    if !streams.is_empty() {
        arms.push((
            1,
            select(streams.clone())
                .prop_map(|(p, sid)| {
                    one(Op::DestroyStream {
                        p,
                        stream: StreamArg::Stream(sid),
                    })
                })
                .boxed(),
        ));
    }
    // Uninitialized handles of every kind, NULL out-pointers, bad arguments (R10, R15).
    {
        let s2 = s.clone();
        arms.push((
            2,
            (pick(), any::<u64>(), 0..8u8)
                .prop_map(move |(p, garbage, kind)| bad_args(&s2, p, garbage, kind))
                .boxed(),
        ));
    }
    arms.push((
        1,
        pick()
            .prop_map(|p| {
                vec![
                    Op::Finalize { p },
                    Op::Create {
                        p,
                        null: false,
                        flags: 0,
                    },
                ]
            })
            .boxed(),
    ));
    arms.push((1, pick().prop_map(|p| one(Op::Init { p })).boxed()));

    // Imports: mostly of a live key by a process that does not hold the notify yet and may
    // import it; also any key ever exported (revoked, freed, held, not whitelisted) and forged
    // ones, of another namespace, malformed.
    let keys: Vec<_> = s.keys().iter().copied().collect();
    let (admissible, refused): (Vec<(Proc, _)>, Vec<(Proc, _)>) = rp
        .iter()
        .flat_map(|&p| keys.iter().map(move |&n| (p, n)))
        .filter(|&(p, n)| {
            s.notifies().get(&n).is_some_and(|nt| {
                matches!(nt.export, Export::Live { .. })
                    && !s.live_handles(p).iter().any(|h| s.handles()[h].notify == n)
            })
        })
        .partition(|&(p, n)| {
            let nt = &s.notifies()[&n];
            matches!(nt.export, Export::Live { disable: true }) || nt.whitelist.contains(&s.pid(p))
        });
    for (w, pairs) in [(10, admissible), (3, refused)] {
        if !pairs.is_empty() {
            arms.push((
                w,
                (select(pairs), ipc_flags())
                    .prop_map(|((p, n), flags)| {
                        one(Op::Import {
                            p,
                            null_out: false,
                            key: KeyArg::Known(n),
                            flags,
                        })
                    })
                    .boxed(),
            ));
        }
    }
    if !keys.is_empty() {
        arms.push((
            3,
            (pick(), select(keys.clone()), ipc_flags())
                .prop_map(|(p, n, flags)| {
                    one(Op::Import {
                        p,
                        null_out: false,
                        key: KeyArg::Known(n),
                        flags,
                    })
                })
                .boxed(),
        ));
        arms.push((
            1,
            (pick(), select(keys), ipc_flags())
                .prop_map(|(p, n, flags)| {
                    one(Op::Import {
                        p,
                        null_out: false,
                        key: KeyArg::Forged(n),
                        flags,
                    })
                })
                .boxed(),
        ));
    }
    arms.push((
        1,
        (
            pick(),
            prop_oneof![
                Just(KeyArg::Other(MALFORMED_KEY.to_vec())),
                Just(KeyArg::Other(OTHER_NAMESPACE_KEY.to_vec())),
                Just(KeyArg::Null),
            ],
            ipc_flags(),
        )
            .prop_map(|(p, key, flags)| {
                one(Op::Import {
                    p,
                    null_out: false,
                    key,
                    flags,
                })
            })
            .boxed(),
    ));

    // Handles of ready processes: (process, handle, its current device).
    let handles: Vec<(Proc, Hid, i32)> = rp
        .iter()
        .flat_map(|&p| s.live_handles(p).into_iter().map(move |h| (p, h, cur(p))))
        .collect();
    if handles.is_empty() {
        return;
    }
    let any_h = || select(handles.clone());
    let notify_of = |h: Hid| &s.notifies()[&s.handles()[&h].notify];
    let matching = |f: &dyn Fn(&test_kit::model::Handle, &test_kit::model::Notify) -> bool| {
        handles
            .iter()
            .copied()
            .filter(|&(_, h, _)| f(&s.handles()[&h], notify_of(h)))
            .collect::<Vec<_>>()
    };
    // A stream of the process: its default stream mostly, a created one of the current device,
    // or one of another device (R13: 107003).
    let stream_for = {
        let s = s.clone();
        move |p: Proc, sel: u8| -> StreamArg {
            let cur = cur_of(&s, p);
            let streams = s.live_streams(p);
            let here: Vec<Sid> = streams
                .iter()
                .copied()
                .filter(|sid| s.streams()[sid].device == cur)
                .collect();
            let there: Vec<Sid> = streams
                .iter()
                .copied()
                .filter(|sid| s.streams()[sid].device != cur)
                .collect();
            match sel % 8 {
                0 if !there.is_empty() => StreamArg::Stream(there[0]),
                1 | 2 if !here.is_empty() => StreamArg::Stream(here[usize::from(sel) % here.len()]),
                _ => StreamArg::Default,
            }
        }
    };

    // Exports: mostly by the creator of a notify not exported yet.
    let exportable = matching(&|hd, n| hd.creator && n.export == Export::None);
    if !exportable.is_empty() {
        arms.push((
            5,
            (select(exportable), ipc_flags())
                .prop_map(|((p, h, _), flags)| {
                    one(Op::Export {
                        p,
                        notify: NotifyArg::Handle(h),
                        buf: Buf::KEY,
                        flags,
                    })
                })
                .boxed(),
        ));
    }
    arms.push((
        1,
        (
            any_h(),
            ipc_flags(),
            prop_oneof![
                Just(Buf::KEY),
                Just(Buf {
                    null: false,
                    len: 64
                }),
                Just(Buf {
                    null: true,
                    len: 65
                })
            ],
        )
            .prop_map(|((p, h, _), flags, buf)| {
                one(Op::Export {
                    p,
                    notify: NotifyArg::Handle(h),
                    buf,
                    flags,
                })
            })
            .boxed(),
    ));

    // Whitelists: mostly by the creator of a notify exported with a whitelist.
    let listable = matching(&|hd, n| hd.creator && n.export == Export::Live { disable: false });
    let pids = prop_oneof![
        12 => pid_choice(s).prop_map(|p| vec![p]),
        1 => Just(Vec::new()),
        1 => (pid_choice(s), pid_choice(s)).prop_map(|(a, b)| vec![a, b]),
    ];
    if !listable.is_empty() {
        arms.push((
            6,
            (select(listable.clone()), pids.clone())
                .prop_map(|((p, h, _), pids)| {
                    one(Op::SetPid {
                        p,
                        notify: NotifyArg::Handle(h),
                        pids: Array::Items(pids),
                    })
                })
                .boxed(),
        ));
        // R6: 16 foreign importers: the 16th is refused.
        arms.push((
            1,
            (select(listable), 0..1000i32)
                .prop_map(|((p, h, _), base)| {
                    (0..16)
                        .map(|k| Op::SetPid {
                            p,
                            notify: NotifyArg::Handle(h),
                            pids: Array::Items(vec![PidSym::Raw(FOREIGN_PID_BASE + base + k)]),
                        })
                        .collect()
                })
                .boxed(),
        ));
    }
    arms.push((
        1,
        (any_h(), pids)
            .prop_map(|((p, h, _), pids)| {
                one(Op::SetPid {
                    p,
                    notify: NotifyArg::Handle(h),
                    pids: Array::Items(pids),
                })
            })
            .boxed(),
    ));

    // Records, then a synchronize of that stream.
    {
        let stream_for = stream_for.clone();
        arms.push((
            5,
            (any_h(), any::<u8>())
                .prop_map(move |((p, h, _), sel)| {
                    let stream = stream_for(p, sel);
                    vec![
                        Op::Record {
                            p,
                            notify: NotifyArg::Handle(h),
                            stream: stream.clone(),
                        },
                        Op::Sync {
                            p,
                            stream,
                            timeout_ms: None,
                        },
                    ]
                })
                .boxed(),
        ));
    }
    arms.push((
        4,
        any_h()
            .prop_map(|(p, h, _)| {
                one(Op::Destroy {
                    p,
                    notify: NotifyArg::Handle(h),
                })
            })
            .boxed(),
    ));

    // Waits that end at once: the flag is set, or they are refused at enqueue (R4, R13).
    let quick = matching(&|hd, n| !hd.creator || n.flag);
    let quick: Vec<_> = quick
        .into_iter()
        .chain(
            handles
                .iter()
                .copied()
                .filter(|&(_, h, cur)| notify_of(h).device != cur),
        )
        .collect();
    if !quick.is_empty() {
        let stream_for = stream_for.clone();
        arms.push((
            5,
            (select(quick), any::<u8>())
                .prop_map(move |((p, h, _), sel)| {
                    let stream = stream_for(p, sel);
                    vec![
                        Op::Wait {
                            p,
                            notify: NotifyArg::Handle(h),
                            stream: stream.clone(),
                            timeout_s: SHORT_WAIT_S,
                        },
                        Op::Sync {
                            p,
                            stream,
                            timeout_ms: None,
                        },
                    ]
                })
                .boxed(),
        ));
    }
    // Waits that block: the creator on its device, the flag clear, no other waiter on it.
    let blockable: Vec<(Proc, Hid, i32)> = handles
        .iter()
        .copied()
        .filter(|&(_, h, cur)| {
            let hd = &s.handles()[&h];
            let n = notify_of(h);
            hd.creator
                && !n.flag
                && n.device == cur
                && !s.blocked_waits().iter().any(|w| w.2 == hd.notify)
        })
        .collect();
    if !blockable.is_empty() {
        // It stays queued (30 s) until a record releases it or a process dies; a timed
        // synchronize gives up on it (507046).
        let stream_for2 = stream_for.clone();
        arms.push((
            4,
            (select(blockable.clone()), any::<u8>(), any::<bool>())
                .prop_map(move |((p, h, _), sel, sync)| {
                    let stream = stream_for2(p, sel);
                    let mut ops = vec![Op::Wait {
                        p,
                        notify: NotifyArg::Handle(h),
                        stream: stream.clone(),
                        timeout_s: PENDING_WAIT_S,
                    }];
                    if sync {
                        ops.push(Op::Sync {
                            p,
                            stream,
                            timeout_ms: Some(50),
                        });
                    }
                    ops
                })
                .boxed(),
        ));
        // R3: a wait that expires (costs 1 s): 107019 at the synchronize, the flag unchanged.
        arms.push((
            1,
            select(blockable.clone())
                .prop_map(|(p, h, _)| {
                    vec![
                        Op::Wait {
                            p,
                            notify: NotifyArg::Handle(h),
                            stream: StreamArg::Default,
                            timeout_s: SHORT_WAIT_S,
                        },
                        Op::Sync {
                            p,
                            stream: StreamArg::Default,
                            timeout_ms: None,
                        },
                    ]
                })
                .boxed(),
        ));
        // R8: the creator's wait is queued, it destroys its handle, another holder's record
        // releases the wait (the queued task kept the notify alive).
        let pairs: Vec<(Proc, Hid, Proc, Hid)> = blockable
            .iter()
            .flat_map(|&(p, h, _)| {
                handles
                    .iter()
                    .filter(move |&&(q, hq, _)| {
                        q != p && s.handles()[&hq].notify == s.handles()[&h].notify
                    })
                    .map(move |&(q, hq, _)| (p, h, q, hq))
            })
            .collect();
        if !pairs.is_empty() {
            arms.push((
                4,
                select(pairs.clone())
                    .prop_map(|(p, h, q, hq)| {
                        vec![
                            Op::Wait {
                                p,
                                notify: NotifyArg::Handle(h),
                                stream: StreamArg::Default,
                                timeout_s: PENDING_WAIT_S,
                            },
                            Op::Destroy {
                                p,
                                notify: NotifyArg::Handle(h),
                            },
                            Op::Record {
                                p: q,
                                notify: NotifyArg::Handle(hq),
                                stream: StreamArg::Default,
                            },
                        ]
                    })
                    .boxed(),
            ));
            // R9: the creator's wait (1 s) is queued and the other holder dies: a death never
            // records, the wait expires (costs 1 s).
            arms.push((
                1,
                (select(pairs), 0..DEVICES as i32)
                    .prop_map(|((p, h, q, _), d)| {
                        let mut ops = vec![
                            Op::Wait {
                                p,
                                notify: NotifyArg::Handle(h),
                                stream: StreamArg::Default,
                                timeout_s: SHORT_WAIT_S,
                            },
                            Op::Kill { p: q },
                        ];
                        ops.extend(bring_up(q, d));
                        ops.push(Op::Sync {
                            p,
                            stream: StreamArg::Default,
                            timeout_ms: None,
                        });
                        ops
                    })
                    .boxed(),
            ));
        }
    }
    // Kill, then a call of another process before anyone reclaimed the victim (R9: a fill
    // reclaims at a full device, an import meets a dead creator).
    {
        let s2 = s.clone();
        arms.push((
            1,
            (select(rp.clone()), any::<u8>())
                .prop_map(move |(victim, sel)| kill_then(&s2, victim, sel))
                .boxed(),
        ));
    }

    // Batch resets of some of a process's handles.
    let per_proc: Vec<(Proc, Vec<Hid>)> = rp
        .iter()
        .map(|&p| (p, s.live_handles(p)))
        .filter(|(_, hs)| !hs.is_empty())
        .collect();
    if !per_proc.is_empty() {
        arms.push((
            2,
            select(per_proc)
                .prop_flat_map(|(p, hs)| {
                    let max = hs.len().min(3);
                    subsequence(hs, 1..=max).prop_map(move |hs| {
                        one(Op::BatchReset {
                            p,
                            notifies: Array::Items(hs.into_iter().map(NotifyArg::Handle).collect()),
                        })
                    })
                })
                .boxed(),
        ));
    }
    // A timed synchronize of a queued wait gives up (507046) and leaves it queued.
    let waits: Vec<Op> = s
        .blocked_waits()
        .into_iter()
        .filter(|w| w.3 == PENDING_WAIT_S)
        .filter_map(|(p, q, _, _)| {
            let stream = match q {
                QueueRef::Created(sid) => StreamArg::Stream(sid),
                QueueRef::Default(_, d) if s.process(p).current == Some(d) => StreamArg::Default,
                QueueRef::Default(..) => return None,
            };
            Some(Op::Sync {
                p,
                stream,
                timeout_ms: Some(0),
            })
        })
        .collect();
    if !waits.is_empty() {
        arms.push((1, select(waits).prop_map(one).boxed()));
    }
}

fn cur_of(s: &Model, p: Proc) -> i32 {
    s.process(p).current.unwrap_or(0)
}

/// Calls with arguments the C ABI must refuse in R15's order.
fn bad_args(s: &Model, p: Proc, garbage: u64, kind: u8) -> Vec<Op> {
    let garbage = garbage | (1 << 63); // never NULL, never a small value
    // Another process's live handle (a copied token), a dead handle of this process.
    let foreign = (0..NPROC)
        .filter(|&q| q != p)
        .flat_map(|q| s.live_handles(q))
        .next();
    let dead = s
        .handles()
        .iter()
        .find(|(_, h)| h.owner == p && !h.live)
        .map(|(&h, _)| h);
    let mine = s.live_handles(p).first().copied();
    let arg = match kind % 4 {
        0 => foreign.map_or(NotifyArg::Invalid(garbage), NotifyArg::Handle),
        1 => dead.map_or(NotifyArg::Null, NotifyArg::Handle),
        2 => NotifyArg::Invalid(garbage),
        _ => NotifyArg::Null,
    };
    let mut ops = vec![
        Op::Record {
            p,
            notify: arg.clone(),
            stream: StreamArg::Default,
        },
        Op::GetId {
            p,
            notify: arg.clone(),
            null: false,
        },
        Op::Destroy {
            p,
            notify: arg.clone(),
        },
    ];
    if kind & 4 != 0 {
        ops.extend([
            Op::Create {
                p,
                null: true,
                flags: 0,
            },
            Op::Sync {
                p,
                stream: StreamArg::Invalid(garbage),
                timeout_ms: None,
            },
            Op::Sync {
                p,
                stream: StreamArg::Default,
                timeout_ms: Some(-2),
            },
            Op::BatchReset {
                p,
                notifies: Array::Null { num: 1 },
            },
            Op::BatchReset {
                p,
                notifies: Array::Items(Vec::new()),
            },
            Op::CreateStream { p, null: true },
        ]);
        if let Some(h) = mine {
            ops.extend([
                Op::Export {
                    p,
                    notify: NotifyArg::Handle(h),
                    buf: Buf::KEY,
                    flags: 0x80,
                },
                Op::SetPid {
                    p,
                    notify: NotifyArg::Handle(h),
                    pids: Array::Null { num: 1 },
                },
                Op::SetPid {
                    p,
                    notify: NotifyArg::Handle(h),
                    pids: Array::Items(vec![PidSym::Raw(-5)]),
                },
                Op::Import {
                    p,
                    null_out: true,
                    key: KeyArg::Other(MALFORMED_KEY.to_vec()),
                    flags: 0,
                },
                Op::Import {
                    p,
                    null_out: false,
                    key: KeyArg::Other(MALFORMED_KEY.to_vec()),
                    flags: 4,
                },
            ]);
        }
    }
    ops
}

/// Kill `victim`, then (maybe) a fill or an import by another ready process, before anyone
/// reclaimed it.
fn kill_then(s: &Model, victim: Proc, sel: u8) -> Vec<Op> {
    let mut ops = vec![Op::Kill { p: victim }];
    let others: Vec<(Proc, i32)> = ready(s).into_iter().filter(|r| r.0 != victim).collect();
    if others.is_empty() || sel.is_multiple_of(3) {
        return ops;
    }
    let (q, cur) = others[usize::from(sel) % others.len()];
    if sel % 3 == 1 {
        let free = (CAPACITY as usize).saturating_sub(s.live_on(cur));
        ops.extend(vec![
            Op::Create {
                p: q,
                null: false,
                flags: 0,
            };
            free + 1
        ]);
    } else if let Some(&n) = s
        .keys()
        .iter()
        .nth(usize::from(sel) % s.keys().len().max(1))
    {
        ops.push(Op::Import {
            p: q,
            null_out: false,
            key: KeyArg::Known(n),
            flags: 2,
        });
    }
    ops
}

/// The reference state machine: the test kit's model.
#[derive(Clone, Debug)]
struct Reference;

impl ReferenceStateMachine for Reference {
    type State = Model;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Model> {
        proptest::collection::vec(0..DEVICES as i32, NPROC)
            .prop_map(|devices| {
                let mut m = Model::new(cfg());
                for op in start_ops(&devices) {
                    m.apply(&op);
                }
                m
            })
            .boxed()
    }

    fn transitions(s: &Model) -> BoxedStrategy<Step> {
        transitions(s)
    }

    /// Shrinking may delete the step that made a handle, a stream or a key: such steps
    /// become unpredictable and are dropped.
    fn preconditions(s: &Model, t: &Step) -> bool {
        let mut m = s.clone();
        t.ops
            .iter()
            .all(|op| pids_known(&m, op) && m.try_apply(op).is_ok())
    }

    fn apply(mut s: Model, t: &Step) -> Model {
        for op in &t.ops {
            s.apply(op);
        }
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
    test_kit::protocol::serve(&mut StdioLink);
}

/// How long a call may take beyond the waits the model says it waits for.
const HANG_LIMIT_S: u64 = 10;

/// Kills a process unless disarmed in time.
struct Watchdog {
    disarm: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<bool>,
}

impl Watchdog {
    fn arm(pid: i32, limit: std::time::Duration) -> Self {
        let (disarm, rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            if rx.recv_timeout(limit) != Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
                return false;
            }
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
            true
        });
        Self { disarm, thread }
    }

    /// Whether it fired.
    fn disarm(self) -> bool {
        let _ = self.disarm.send(());
        self.thread.join().unwrap_or(true)
    }
}

/// The conductor: the driver processes, its own replica of the model, the symbols.
struct Sut {
    procs: Vec<Option<Child<RoleProcess>>>,
    model: Model,
    syms: Symbols,
    spawner: RoleSpawner,
    ns: ScopedNamespace,
    stats: BTreeMap<String, u32>,
    log: Vec<String>,
}

impl std::fmt::Debug for Sut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sut")
            .field("ns", &self.ns.name())
            .finish_non_exhaustive()
    }
}

impl Drop for Sut {
    /// On a failure the drivers are killed (they are ours), then the namespace is removed.
    fn drop(&mut self) {
        for p in self.procs.iter_mut().filter_map(Option::take) {
            let mut p = p;
            p.peer_mut().kill();
            let _ = Box::new(p.into_peer()).wait();
        }
    }
}

impl Sut {
    fn new(ns: ScopedNamespace, cfg: Config) -> Self {
        Sut {
            procs: (0..NPROC).map(|_| None).collect(),
            model: Model::new(cfg),
            syms: Symbols::new(),
            spawner: RoleSpawner::new("child", &ns)
                .with_env(&[(backend_sim::ENV_DEVICE_MEMORY, &DEVICE_MEMORY.to_string())]),
            ns,
            stats: BTreeMap::new(),
            log: Vec::new(),
        }
    }

    fn fail(&self, what: String) -> ! {
        let tail = &self.log[self.log.len().saturating_sub(30)..];
        panic!("{what}\n  after:\n    {}", tail.join("\n    "));
    }

    /// Starts process `p`'s driver and names its pid (R16: in the host PID namespace a bare
    /// tgid is the pid; its own `aclrtDeviceGetBareTgid` checks that again).
    fn spawn(&mut self, p: Proc) {
        let t = std::time::Instant::now();
        let peer = self.spawner.start("driver");
        let child = Child::new(peer);
        if std::env::var_os("MODEL_STATS").is_some() {
            eprintln!("model-spawn {:?}", t.elapsed());
        }
        if let Err(e) = self.syms.bind_pid(self.model.pid(p), child.pid()) {
            self.fail(e);
        }
        self.procs[p] = Some(child);
    }

    /// Runs one op in its process and compares it with the model; then the registry.
    fn exec(&mut self, op: &Op) {
        let expect = match self.model.try_apply(op) {
            Ok(e) => e,
            Err(why) => self.fail(format!("harness: the model cannot predict {op:?}: {why:?}")),
        };
        let started = std::time::Instant::now();
        let line = match op {
            Op::Spawn { p } => {
                self.spawn(*p);
                format!(
                    "P{p}: spawned (pid {})",
                    self.procs[*p].as_ref().expect("spawned").pid()
                )
            }
            Op::Kill { p } => {
                let mut child = self.procs[*p].take().expect("the process runs");
                child.peer_mut().kill();
                let code = Box::new(child.into_peer()).wait();
                assert_ne!(code, 0, "P{p} was killed");
                format!("P{p}: killed")
            }
            Op::Exit { p } => {
                let child = self.procs[*p].take().expect("the process runs");
                let code = Box::new(child.exit()).wait();
                assert_eq!(code, 0, "P{p} exits normally");
                format!("P{p}: exited")
            }
            Op::Reclaim => {
                let r = backend_sim::inspect::reclaim(self.ns.name());
                if let Err(e) = r {
                    self.fail(format!("inspect::reclaim: {e}"));
                }
                "reclaim".to_owned()
            }
            _ => {
                let p = op.proc().expect("a call has a process");
                if !self.syms.can_lower(op) {
                    self.fail(format!("harness: {op:?} names a symbol with no value"));
                }
                let call = self.syms.lower(op).expect("a C call");
                let child = self.procs[p].as_mut().expect("the process runs");
                // A call that should return but hangs is killed, so that the failure (and each
                // step of its shrinking) costs seconds, not the wait's timeout.
                let limit =
                    std::time::Duration::from_secs(u64::from(expect.waits_s) + HANG_LIMIT_S);
                let dog = Watchdog::arm(child.pid(), limit);
                let reply =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| child.call(&call)));
                let fired = dog.disarm();
                let reply = match reply {
                    Ok(reply) => reply,
                    Err(panic) if fired => {
                        let _ = panic;
                        self.procs[p] = None;
                        self.fail(format!(
                            "P{p}: {op:?} did not return within {limit:?} (a hang; the model \
                             expects {})",
                            expect.code
                        ))
                    }
                    Err(panic) => std::panic::resume_unwind(panic),
                };
                let line = format!(
                    "P{p}: {op:?} -> {}{}",
                    reply.code,
                    reply
                        .message
                        .as_deref()
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default()
                );
                self.log.push(line.clone());
                if let Err(e) = self.syms.check(&self.model, op, &expect, &reply) {
                    self.fail(e);
                }
                if let Op::BareTgid { .. } = op {
                    // R16: in the host PID namespace the bare tgid is getpid().
                    let pid = self.procs[p].as_ref().expect("runs").pid();
                    assert_eq!(reply.value, Some(i64::from(pid)), "R16: P{p}'s bare tgid");
                }
                self.log.pop();
                line
            }
        };
        let took = started.elapsed();
        if took > std::time::Duration::from_millis(200) && std::env::var_os("MODEL_STATS").is_some()
        {
            eprintln!("model-slow {took:?}: {line}");
        }
        self.log.push(line);
        *self
            .stats
            .entry(format!("{} {}", op.kind(), expect.code))
            .or_default() += 1;
        let snap = match backend_sim::inspect::inspect(self.ns.name()) {
            Ok(snap) => snap,
            Err(e) => self.fail(format!("inspect: {e}")),
        };
        if let Err(e) = self.syms.check_registry(&self.model, snap.as_ref()) {
            self.fail(e);
        }
    }

    /// Every process exits; the last one out removes the namespace (§4).
    fn finish(&mut self) {
        for p in 0..NPROC {
            if self.model.process(p).alive {
                self.exec(&Op::Exit { p });
            }
        }
        if self.model.namespace_exists() {
            // Only dead processes are left: an attach reclaims them, its exit removes it all.
            self.exec(&Op::Spawn { p: 0 });
            self.exec(&Op::Init { p: 0 });
            self.exec(&Op::Exit { p: 0 });
        }
        let files = backend_sim::namespace_files(self.ns.name());
        if !files.is_empty() {
            self.fail(format!(
                "§4: the last process to detach cleanly removes the namespace; left: {files:?}"
            ));
        }
        if std::env::var_os("MODEL_STATS").is_some() {
            eprintln!("model-case {} ops", self.log.len());
            for (kind, n) in &self.stats {
                eprintln!("model-stat {kind} {n}");
            }
        }
    }
}

impl StateMachineTest for Sut {
    type SystemUnderTest = Sut;
    type Reference = Reference;

    fn init_test(m: &Model) -> Sut {
        // A namespace per case: 2 devices × 8 slots, so R11 is reachable.
        let ns = ScopedNamespace::new("model").with_size(DEVICES, CAPACITY);
        let mut sut = Sut::new(ns, cfg());
        let devices: Vec<i32> = m.procs().iter().map(|p| p.current.expect("set")).collect();
        for p in 0..NPROC {
            sut.spawn(p);
        }
        for op in start_ops(&devices) {
            sut.exec(&op);
        }
        assert_eq!(
            &sut.model, m,
            "the SUT's model replica starts as the reference"
        );
        sut
    }

    fn apply(mut sut: Sut, m: &Model, t: Step) -> Sut {
        for op in &t.ops {
            sut.exec(op);
        }
        assert_eq!(
            &sut.model, m,
            "the SUT's model replica follows the reference"
        );
        sut
    }

    fn teardown(mut sut: Sut, _m: Model) {
        sut.finish();
    }
}

/// 24 cases unless `PROPTEST_CASES` says otherwise; a bounded shrink (each step spawns real
/// processes) unless `PROPTEST_MAX_SHRINK_ITERS` says otherwise.
fn config() -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 24;
    }
    if std::env::var_os("PROPTEST_MAX_SHRINK_ITERS").is_none() {
        c.max_shrink_iters = 256;
    }
    // Regressions go to tests/model.proptest-regressions (tests/ has no lib.rs to look for).
    c.failure_persistence = Some(Box::new(FileFailurePersistence::WithSource(
        "proptest-regressions",
    )));
    c
}

prop_state_machine! {
    #![proptest_config(config())]

    /// R1–R11, R13, R15 against the model, op by op, across three real processes.
    #[test]
    fn simulator_follows_the_model(sequential 1..30 => Sut);
}

// ---------------------------------------------------------------------------------------------
// Fixed sequences through the same conductor
// ---------------------------------------------------------------------------------------------

fn fixed(label: &str, ops: &[Op]) -> Sut {
    let ns = ScopedNamespace::new(label).with_size(DEVICES, CAPACITY);
    let mut sut = Sut::new(ns, contract_cfg());
    for p in 0..NPROC {
        sut.spawn(p);
    }
    for op in start_ops(&[0, 1, 0]) {
        sut.exec(&op);
    }
    for op in ops {
        sut.exec(op);
        for settle in sut.model.settle_ops() {
            sut.exec(&settle);
        }
    }
    sut
}

fn h(n: u32) -> NotifyArg {
    NotifyArg::Handle(Hid(n))
}

/// R8 and R9 in one run: a wait whose creator destroyed its handle is released by an
/// importer's record; a wait whose only other holder is killed expires (a death never
/// records); the killed importer's replacement is not whitelisted (a new incarnation).
#[test]
fn destroy_while_waiting_and_wait_while_peer_dies() {
    use Op::*;
    let mut sut = fixed(
        "fixed-r8-r9",
        &[
            Create {
                p: 0,
                null: false,
                flags: 0,
            },
            Export {
                p: 0,
                notify: h(1),
                buf: Buf::KEY,
                flags: 0,
            },
            SetPid {
                p: 0,
                notify: h(1),
                pids: Array::Items(vec![PidSym::Proc {
                    p: 1,
                    incarnation: 0,
                }]),
            },
            Import {
                p: 1,
                null_out: false,
                key: KeyArg::Known(Nid(1)),
                flags: 2,
            },
            Wait {
                p: 0,
                notify: h(1),
                stream: StreamArg::Default,
                timeout_s: PENDING_WAIT_S,
            },
            Destroy { p: 0, notify: h(1) },
            Record {
                p: 1,
                notify: h(2),
                stream: StreamArg::Default,
            },
            Create {
                p: 0,
                null: false,
                flags: 0,
            },
            Export {
                p: 0,
                notify: h(3),
                buf: Buf::KEY,
                flags: 2,
            },
            Import {
                p: 2,
                null_out: false,
                key: KeyArg::Known(Nid(2)),
                flags: 0,
            },
            Wait {
                p: 0,
                notify: h(3),
                stream: StreamArg::Default,
                timeout_s: SHORT_WAIT_S,
            },
            Kill { p: 2 },
            Spawn { p: 2 },
            Init { p: 2 },
            SetDevice { p: 2, device: 0 },
            BareTgid { p: 2, null: false },
            Sync {
                p: 0,
                stream: StreamArg::Default,
                timeout_ms: None,
            },
            Reclaim,
        ],
    );
    assert!(sut.stats.contains_key("sync 107019"), "{:?}", sut.stats);
    sut.finish();
}

/// The inspector names a notify's creator while it is attached, and not once it is gone
/// (`NotifyInfo::creator`: "None once the creator is gone"): here the creator exits cleanly
/// while an importer holds the notify.
///
/// Fails at 2ccc0b2 (sim bug, also `creator_that_exits_cleanly_is_gone` in the inspector's
/// tests): a clean detach (`registry/slots.rs`, `release_all`) revokes the key but leaves the
/// slot's creator code, and `inspect.rs` falls back to `creator_tgid` for a code that names no
/// attached process, so the departed pid stays named. The model-based test checks only "named
/// while attached" for this reason (`Symbols::check_registry`).
#[test]
fn departed_creator_is_not_named() {
    use Op::*;
    let mut sut = fixed(
        "fixed-creator",
        &[
            Create {
                p: 0,
                null: false,
                flags: 0,
            },
            Export {
                p: 0,
                notify: h(1),
                buf: Buf::KEY,
                flags: 2,
            },
            Import {
                p: 1,
                null_out: false,
                key: KeyArg::Known(Nid(1)),
                flags: 2,
            },
            Exit { p: 0 },
        ],
    );
    let snap = backend_sim::inspect::inspect(sut.ns.name())
        .expect("inspect")
        .expect("the importer keeps the namespace");
    let info = &snap.notifies[0];
    assert_eq!(
        info.exported, "revoked",
        "R8: the creator's departure revokes"
    );
    assert_eq!(
        info.creator, None,
        "the departed creator is still named: {info:?}"
    );
    sut.finish();
}

fn mid(n: u32) -> PtrArg {
    PtrArg::Dev(Mid(n), 0)
}

fn at(n: u32, off: u64) -> PtrArg {
    PtrArg::Dev(Mid(n), off)
}

/// M3-M6 across real processes: P0 (device 0) writes and exports, P1 (device 1) imports with
/// ENABLE_PEER_ACCESS and reads what P0 wrote through a stream copy; P1 writes through the
/// import and P0 reads it; P0 frees while imported (a hazard: served, the memory stays for P1);
/// P2 imports a DISABLE export of another allocation and is killed (its import goes with it);
/// the memory is released when P1 closes.
#[test]
fn ipc_memory_across_processes() {
    use Op::*;
    let h2d = |p, dst, seed, n| copy(p, dst, PtrArg::Host { seed, len: n }, n, 1, None);
    let d2h = |p, src, n| copy(p, PtrArg::Host { seed: 0, len: n }, src, n, 2, None);
    let mut sut = fixed(
        "fixed-ipc-mem",
        &[
            Malloc {
                p: 0,
                null: false,
                size: 8192,
                policy: 2,
            },
            h2d(0, at(1, 4096), 7, 4096),
            MemExport {
                p: 0,
                ptr: at(1, 4096),
                size: 4096,
                buf: Buf::KEY,
                flags: 0,
            },
            MemImport {
                p: 1,
                null_out: false,
                key: MemKeyArg::Known(Xid(1)),
                flags: 0,
            },
            MemSetPid {
                p: 0,
                key: MemKeyArg::Known(Xid(1)),
                pids: Array::Items(vec![PidSym::Proc {
                    p: 1,
                    incarnation: 0,
                }]),
            },
            MemImport {
                p: 1,
                null_out: false,
                key: MemKeyArg::Known(Xid(1)),
                flags: 0,
            },
            MemImport {
                p: 1,
                null_out: false,
                key: MemKeyArg::Known(Xid(1)),
                flags: 1,
            },
            Malloc {
                p: 1,
                null: false,
                size: 4096,
                policy: 2,
            },
            d2h(1, mid(2), 16),
            copy(1, mid(3), mid(2), 4096, 3, Some(StreamArg::Default)),
            d2h(1, mid(3), 4096),
            Memset {
                p: 1,
                ptr: at(2, 100),
                max: 8,
                value: 0x5a,
                count: 8,
                stream: Some(StreamArg::Default),
            },
            d2h(0, at(1, 4096), 256),
            Free { p: 0, ptr: mid(1) },
            copy(1, mid(3), mid(2), 4096, 4, Some(StreamArg::Default)),
            d2h(1, mid(3), 128),
            MemImport {
                p: 2,
                null_out: false,
                key: MemKeyArg::Known(Xid(1)),
                flags: 1,
            },
            Malloc {
                p: 0,
                null: false,
                size: 2 << 20,
                policy: 1,
            },
            MemExport {
                p: 0,
                ptr: mid(4),
                size: 2 << 20,
                buf: Buf::KEY,
                flags: 1,
            },
            MemSetPid {
                p: 0,
                key: MemKeyArg::Known(Xid(2)),
                pids: Array::Items(vec![PidSym::Proc {
                    p: 2,
                    incarnation: 0,
                }]),
            },
            MemImport {
                p: 2,
                null_out: false,
                key: MemKeyArg::Known(Xid(2)),
                flags: 0,
            },
            MemClose {
                p: 0,
                key: MemKeyArg::Known(Xid(2)),
            },
            Kill { p: 2 },
            MemInfo {
                p: 0,
                attr: 0,
                null_free: false,
                null_total: false,
            },
            MemClose {
                p: 1,
                key: MemKeyArg::Known(Xid(1)),
            },
            MemClose {
                p: 1,
                key: MemKeyArg::Known(Xid(1)),
            },
            Memset {
                p: 1,
                ptr: mid(2),
                max: 1,
                value: 0,
                count: 1,
                stream: Some(StreamArg::Default),
            },
            Reclaim,
            MemInfo {
                p: 0,
                attr: 0,
                null_free: false,
                null_total: false,
            },
        ],
    );
    assert_eq!(sut.model.hazards().freed_while_imported, 1);
    assert_eq!(sut.model.hazards().exporter_closed_first, 1);
    assert!(
        sut.stats.contains_key("mem-import 507899"),
        "{:?}",
        sut.stats
    );
    sut.finish();
}

/// M6: "A process never reuses a device address range while it lives, so a freed or closed
/// address stays invalid." Fails (sim bug): after `aclFinalize` and `aclInit` the simulator
/// maps a new device address reservation where the old one was, and hands the first addresses
/// out again (the first allocation of the new session is where the old session's was).
#[test]
fn m6_no_address_reuse_after_reinit() {
    use Op::*;
    let sut = fixed(
        "fixed-m6-reuse",
        &[
            Malloc {
                p: 0,
                null: false,
                size: 4096,
                policy: 2,
            },
            Finalize { p: 0 },
            Init { p: 0 },
            SetDevice { p: 0, device: 0 },
            Malloc {
                p: 0,
                null: false,
                size: 4096,
                policy: 2,
            },
            Free { p: 0, ptr: mid(1) },
        ],
    );
    drop(sut);
}

/// M1: "no room left in the device's `ASCEND_NOTIFY_SIM_DEVICE_MEMORY` ... → 207001". Fails
/// (sim bug): `aclrtMalloc(SIZE_MAX)` overflows rounding the size up to its page size, panics,
/// and answers 507000 ("R14: aclrtMalloc panicked (attempt to add with overflow)").
#[test]
fn m1_malloc_of_size_max_has_no_room() {
    use Op::*;
    let sut = fixed(
        "fixed-m1-max",
        &[Malloc {
            p: 0,
            null: false,
            size: u64::MAX,
            policy: 2,
        }],
    );
    drop(sut);
}

/// M6: "every memory call of another process, an attach, or the inspector reclaims the dead":
/// a whitelist call after a death leaves no dead process in the registry. Fails (sim bug):
/// `aclrtIpcMemSetImportPid` takes the registry lock without reclaiming
/// (`Registry::mem_set_import_pid` has no `reclaim::step`, which the other memory calls have), so
/// the killed process is still in the registry after it.
#[test]
fn m6_set_pid_reclaims_the_dead() {
    use Op::*;
    let sut = fixed(
        "fixed-m6-reclaim",
        &[
            Malloc {
                p: 0,
                null: false,
                size: 4096,
                policy: 2,
            },
            MemExport {
                p: 0,
                ptr: mid(1),
                size: 4096,
                buf: Buf::KEY,
                flags: 0,
            },
            Kill { p: 2 },
            MemSetPid {
                p: 0,
                key: MemKeyArg::Known(Xid(1)),
                pids: Array::Items(vec![PidSym::Proc {
                    p: 1,
                    incarnation: 0,
                }]),
            },
            Kill { p: 1 },
            MemClose {
                p: 0,
                key: MemKeyArg::Known(Xid(1)),
            },
        ],
    );
    assert!(sut.model.unreclaimed().is_empty(), "the model reclaimed");
    drop(sut);
}
