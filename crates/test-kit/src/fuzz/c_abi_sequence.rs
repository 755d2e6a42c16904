//! The `c_abi_sequence` fuzz target: a sequence of C calls decoded from the input, each
//! checked against the one model.
//!
//! Two modelled processes live in this process: P0 speaks the C ABI (this process's `aclInit`
//! session), P1, the *peer*, is a second attach through the typed API with a bare tgid of its
//! own (`BareTgidMode::Remap`, R16), so that P0 can whitelist it and be whitelisted by it. The
//! model is the model-based test's, restricted to what one OS process can do: no death, no
//! spawn. Every step goes through [`Local::run`]: the model's exact code, the §2 message rules,
//! new tokens never repeating, ids stable and unique, keys printable and unique; after every
//! step the registry must match the model (`backend_sim::inspect`); after the last one, P0
//! finalizes, P1 detaches, and the namespace must be gone (§4).
//!
//! # Input format
//! Steps of `[opcode % 27, arguments…]` (docs/FUZZING.md lists them). A handle argument is NULL,
//! 64 arbitrary bits, a real token with one bit flipped, a token of the other kind, or a real
//! token (live, destroyed, or of an earlier session); whatever value it ends up as, the model
//! is told what it is ([`Symbols::classify_notify`]). No call blocks: a wait is run when the
//! model says it completes at once or is refused, or as the *blocked wait* step (a wait with a
//! 1 s timeout, a synchronize with 0 ms that gives up with 507046, a record from a new stream,
//! a synchronize with 5 s that must return 0), so a lost wake-up shows up as 107019 rather
//! than as a hang.

use crate::harness::Symbols;
use crate::local::Local;
use crate::model::{
    Array, Buf, Config, Effect, Expect, KEY_BUF_MIN, KeyArg, MemKeyArg, Mid, NotifyArg, Op, Out,
    PidSym, Proc, PtrArg, StreamArg,
};

use super::{Bytes, FUZZ_CAPACITY, FUZZ_DEVICES, namespace, trace};

/// The C process.
const C: Proc = 0;
/// The typed peer.
const PEER: Proc = 1;
/// The most steps one input runs.
const MAX_OPS: usize = 160;
/// Opcodes, by the first byte of each step (modulo the count).
const OPS: u8 = 27;
/// First bytes that start a memory step (§5) instead: byte values that decoded as opcode 26
/// (the no-op `aclGetRecentErrMsg`) and that no input of the corpus used as an opcode when the
/// memory steps were added, so that every old input decodes to the same calls.
pub const MEM_ESCAPES: [u8; 5] = [80, 107, 134, 161, 215];
/// Memory steps, by the byte after the escape (modulo the count).
const MEM_OPS: u8 = 14;

/// The `c_abi_sequence` fuzz target (see the module docs). Panics on any difference from the
/// model.
pub fn c_abi_sequence(data: &[u8]) {
    let ns = namespace();
    let cfg = Config {
        devices: FUZZ_DEVICES,
        capacity: FUZZ_CAPACITY,
        processes: 2,
        device_memory: super::FUZZ_DEVICE_MEMORY,
    };
    let mut w = Local::new(&ns, cfg, C, trace());
    must(&mut w, &Op::Init { p: C });
    must(&mut w, &Op::BareTgid { p: C, null: false });
    w.attach_typed(PEER).unwrap_or_else(|e| panic!("{e}"));
    let mut input = Bytes::new(data);
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        step(&mut w, &mut input);
        w.check_registry().unwrap_or_else(|e| panic!("{e}"));
    }
    if w.model.process(C).session.is_some() {
        must(&mut w, &Op::Finalize { p: C });
    }
    w.detach_typed(PEER).unwrap_or_else(|e| panic!("{e}"));
    w.check_registry().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !backend_sim::namespace_exists(&ns),
        "SEMANTICS.md §4: the last process out (aclFinalize, then the peer's drop) removes the \
         namespace {ns}"
    );
}

/// Runs a step the model must be able to predict.
fn must(w: &mut Local, op: &Op) -> Expect {
    match w.run(op) {
        Ok(Ok(e)) => e,
        Ok(Err(skip)) => panic!("{}", w.report(format!("harness: {op:?} skipped: {skip:?}"))),
        Err(e) => panic!("{e}"),
    }
}

/// Runs a step if it can be predicted and expressed.
fn run(w: &mut Local, op: &Op) -> Option<Expect> {
    match w.run(op) {
        Ok(Ok(e)) => Some(e),
        Ok(Err(_)) => None,
        Err(e) => panic!("{e}"),
    }
}

/// A handle with an arbitrary value, or a real token.
fn c_notify_tokens(w: &Local) -> Vec<(u64, bool)> {
    w.model
        .handles()
        .iter()
        .filter(|(_, h)| h.owner == C)
        .filter_map(|(&h, _)| Some((w.syms.notify_token(h)?, w.model.is_live_handle(C, h))))
        .collect()
}

fn c_stream_tokens(w: &Local) -> Vec<u64> {
    w.model
        .streams()
        .iter()
        .filter(|(_, s)| s.owner == C)
        .filter_map(|(&s, _)| w.syms.stream_token(s))
        .collect()
}

/// A notify handle argument: `[kind, index]`, plus 8 bytes for garbage or 1 for a bit flip.
fn pick_notify(w: &Local, input: &mut Bytes<'_>) -> NotifyArg {
    let kind = input.u8();
    let index = usize::from(input.u8());
    let notifies = c_notify_tokens(w);
    let streams = c_stream_tokens(w);
    let raw = match kind % 16 {
        0 => 0,
        1 => input.u64(),
        2 => match notifies.len() {
            0 => 0xdead_beef,
            n => notifies[index % n].0 ^ (1 << (input.u8() % 64)),
        },
        3 => match streams.len() {
            0 => 0x1,
            n => streams[index % n],
        },
        _ => match notifies.len() {
            0 => 0,
            n => {
                // Prefer live handles 3 times out of 4.
                let live: Vec<u64> = notifies.iter().filter(|t| t.1).map(|t| t.0).collect();
                if kind & 0x30 != 0 && !live.is_empty() {
                    live[index % live.len()]
                } else {
                    notifies[index % n].0
                }
            }
        },
    };
    w.syms.classify_notify(raw)
}

/// A stream argument: NULL (the default stream) half the time.
fn pick_stream(w: &Local, input: &mut Bytes<'_>) -> StreamArg {
    let kind = input.u8();
    let index = usize::from(input.u8());
    let notifies = c_notify_tokens(w);
    let streams = c_stream_tokens(w);
    let raw = match kind % 8 {
        0..=3 => 0,
        4 => input.u64(),
        5 => match streams.len() {
            0 => 0x2,
            n => streams[index % n] ^ (1 << (input.u8() % 64)),
        },
        6 => match notifies.len() {
            0 => 0,
            n => notifies[index % n].0,
        },
        _ => match streams.len() {
            0 => 0,
            n => streams[index % n],
        },
    };
    w.syms.classify_stream(raw)
}

fn pick_device(b: u8) -> i32 {
    if b & 0x80 == 0 {
        i32::from(b % 8)
    } else {
        [-1, i32::MIN, i32::MAX, 64, 65_535, -2][usize::from(b) % 6]
    }
}

fn ipc_flags(input: &mut Bytes<'_>) -> u64 {
    match input.u8() % 5 {
        0 | 1 => 0,
        2 | 3 => 2,
        _ => input.u64(),
    }
}

fn tgid(w: &Local, p: Proc) -> i32 {
    w.syms.pid(w.model.pid(p)).expect("bound at attach")
}

fn step(w: &mut Local, input: &mut Bytes<'_>) {
    let first = input.u8();
    if MEM_ESCAPES.contains(&first) {
        mem_step(w, input);
        return;
    }
    let op = first % OPS;
    let p = C;
    match op {
        0 => {
            run(w, &Op::Init { p });
        }
        1 => {
            run(w, &Op::Finalize { p });
        }
        2 | 3 => {
            let device = pick_device(input.u8());
            if op == 2 {
                run(w, &Op::SetDevice { p, device });
            } else {
                run(w, &Op::ResetDevice { p, device });
            }
        }
        4 => {
            let null = input.u8().is_multiple_of(8);
            run(w, &Op::GetDevice { p, null });
        }
        5 | 21 => {
            let null = input.u8().is_multiple_of(8);
            if op == 5 {
                run(w, &Op::DeviceCount { p, null });
            } else {
                run(w, &Op::BareTgid { p, null });
            }
        }
        6 => {
            let null = input.u8().is_multiple_of(8);
            let flags = match input.u8() % 6 {
                0 | 1 => 0,
                2 | 3 => 1,
                4 => 2,
                _ => input.u64(),
            };
            run(w, &Op::Create { p, null, flags });
        }
        7 => {
            let notify = pick_notify(w, input);
            run(w, &Op::Destroy { p, notify });
        }
        8 => {
            let notify = pick_notify(w, input);
            let stream = pick_stream(w, input);
            run(w, &Op::Record { p, notify, stream });
        }
        9 => wait(w, input),
        10 => {
            let notify = pick_notify(w, input);
            let null = input.u8().is_multiple_of(8);
            run(w, &Op::GetId { p, notify, null });
        }
        11 => {
            let mode = input.u8();
            let len = usize::from(input.u8() % 6);
            let handles: Vec<NotifyArg> = (0..len).map(|_| pick_notify(w, input)).collect();
            let notifies = match mode % 8 {
                0 => Array::Null {
                    num: usize::from(input.u8()),
                },
                _ => Array::Items(handles),
            };
            run(w, &Op::BatchReset { p, notifies });
        }
        12 => {
            let notify = pick_notify(w, input);
            let len_sel = input.u8();
            let flags = ipc_flags(input);
            let null = len_sel.is_multiple_of(16);
            let len = match len_sel % 4 {
                0 => KEY_BUF_MIN,
                1 => usize::from(input.u8() % 80),
                2 => 200,
                _ => KEY_BUF_MIN + usize::from(input.u8() % 4),
            };
            let buf = Buf { null, len };
            run(
                w,
                &Op::Export {
                    p,
                    notify,
                    buf,
                    flags,
                },
            );
        }
        13 => {
            let notify = pick_notify(w, input);
            let mode = input.u8();
            let count = usize::from(input.u8() % 72);
            let pids: Vec<PidSym> = (0..count)
                .map(|_| {
                    let raw = match input.u8() % 8 {
                        0 | 1 => tgid(w, C),
                        2 => tgid(w, PEER),
                        3 => 0,
                        4 => -1 - i32::from(input.u8()),
                        5 => i32::MAX,
                        _ => 1 + i32::from(input.u8()) + 256 * i32::from(input.u8() % 4),
                    };
                    w.syms.classify_pid(raw)
                })
                .collect();
            let pids = match mode % 8 {
                0 => Array::Null {
                    num: usize::from(input.u8()),
                },
                _ => Array::Items(pids),
            };
            run(w, &Op::SetPid { p, notify, pids });
        }
        14 => {
            let null_out = input.u8().is_multiple_of(16);
            let key = pick_key(&w.syms, input);
            let flags = ipc_flags(input);
            let key = w.syms.classify_key(key.as_deref());
            run(
                w,
                &Op::Import {
                    p,
                    null_out,
                    key,
                    flags,
                },
            );
        }
        15 => {
            let peer = pick_device(input.u8());
            let flags = if input.u8().is_multiple_of(4) {
                input.u32()
            } else {
                0
            };
            run(w, &Op::EnablePeer { p, peer, flags });
        }
        16 => {
            let null = input.u8().is_multiple_of(8);
            let (device, peer) = (pick_device(input.u8()), pick_device(input.u8()));
            run(
                w,
                &Op::CanAccessPeer {
                    p,
                    null,
                    device,
                    peer,
                },
            );
        }
        17 => {
            let null = input.u8().is_multiple_of(8);
            run(w, &Op::CreateStream { p, null });
        }
        18 => {
            let stream = pick_stream(w, input);
            run(w, &Op::DestroyStream { p, stream });
        }
        19 | 20 => {
            let stream = pick_stream(w, input);
            let ms = match input.u8() % 6 {
                0 | 1 => -1,
                2 => 0,
                3 => -2,
                4 => i32::MIN,
                _ => input.u32() as i32,
            };
            let timeout_ms = (op == 20).then_some(ms);
            run(
                w,
                &Op::Sync {
                    p,
                    stream,
                    timeout_ms,
                },
            );
        }
        // The peer creates on a device, and maybe exports and whitelists P0.
        22 => {
            let device = i32::from(input.u8()) % FUZZ_DEVICES as i32;
            let export = input.u8();
            run(w, &Op::SetDevice { p: PEER, device });
            let created = run(
                w,
                &Op::Create {
                    p: PEER,
                    null: false,
                    flags: 0,
                },
            );
            let Some(Expect {
                out: Out::Notify(h, _),
                ..
            }) = created
            else {
                return;
            };
            let notify = NotifyArg::Handle(h);
            if !export.is_multiple_of(4) {
                let flags = if export % 4 == 3 { 2 } else { 0 };
                run(
                    w,
                    &Op::Export {
                        p: PEER,
                        notify: notify.clone(),
                        buf: Buf::KEY,
                        flags,
                    },
                );
                if export % 4 == 1 {
                    let pids = Array::Items(vec![w.model.pid(C)]);
                    run(
                        w,
                        &Op::SetPid {
                            p: PEER,
                            notify,
                            pids,
                        },
                    );
                }
            }
        }
        // The peer destroys one of its handles.
        23 => {
            let held = w.model.live_handles(PEER);
            if held.is_empty() {
                return;
            }
            let h = held[usize::from(input.u8()) % held.len()];
            run(
                w,
                &Op::Destroy {
                    p: PEER,
                    notify: NotifyArg::Handle(h),
                },
            );
        }
        // The peer imports an exported key on device 0, with ENABLE_PEER_ACCESS.
        24 => {
            let keys = w.syms.exported().to_vec();
            if keys.is_empty() {
                return;
            }
            let n = keys[usize::from(input.u8()) % keys.len()];
            run(w, &Op::SetDevice { p: PEER, device: 0 });
            run(
                w,
                &Op::Import {
                    p: PEER,
                    null_out: false,
                    key: KeyArg::Known(n),
                    flags: 2,
                },
            );
        }
        // The peer records one of its handles on the default stream of the notify's device.
        25 => {
            let held = w.model.live_handles(PEER);
            if held.is_empty() {
                return;
            }
            let h = held[usize::from(input.u8()) % held.len()];
            let n = w.model.handles()[&h].notify;
            let device = w.model.notifies()[&n].device;
            run(w, &Op::SetDevice { p: PEER, device });
            run(
                w,
                &Op::Record {
                    p: PEER,
                    notify: NotifyArg::Handle(h),
                    stream: StreamArg::Default,
                },
            );
        }
        // aclGetRecentErrMsg on its own: never changes anything.
        _ => {
            let a = crate::cabi::err_msg();
            assert_eq!(crate::cabi::err_msg(), a, "reading the message changed it");
        }
    }
}

/// Every device range of P0 with a known address: (range, live in the current session).
fn c_regions(w: &Local) -> Vec<(Mid, bool)> {
    w.model
        .regions()
        .iter()
        .filter(|(m, r)| r.owner == C && w.syms.ptr(**m).is_some())
        .map(|(&m, r)| (m, r.live && w.model.is_session_region(C, m)))
        .collect()
}

/// A pointer argument: `[kind, index, offset…]`; a host buffer of `count` bytes for kind 1.
fn pick_ptr(w: &Local, input: &mut Bytes<'_>, count: u64) -> PtrArg {
    let kind = input.u8();
    let index = usize::from(input.u8());
    let regions = c_regions(w);
    let live: Vec<Mid> = regions.iter().filter(|r| r.1).map(|r| r.0).collect();
    let any: Vec<Mid> = w
        .model
        .regions()
        .keys()
        .copied()
        .filter(|m| w.syms.ptr(*m).is_some())
        .collect();
    let base = |m: Mid| w.syms.ptr(m).expect("known");
    let raw = match kind % 8 {
        0 => 0,
        1 => {
            return PtrArg::Host {
                seed: input.u8(),
                len: count,
            };
        }
        2 => input.u64() | 1 << 47,
        3 if !live.is_empty() => base(live[index % live.len()]) + u64::from(input.u16()),
        7 if !any.is_empty() => base(any[index % any.len()]) + u64::from(input.u8()) * 4096,
        _ if !live.is_empty() => {
            let m = live[index % live.len()];
            // The start mostly, else a page or a byte in.
            base(m)
                + match kind >> 4 {
                    0..=9 => 0,
                    10..=12 => 4096 * u64::from(input.u8() % 4),
                    _ => u64::from(input.u8()),
                }
        }
        _ => 0x7e57_0000_1000 + u64::from(input.u8()),
    };
    w.syms.classify_ptr(&w.model, C, raw)
}

/// A byte count: of a live range mostly, or small, a page, large, or arbitrary.
fn pick_count(w: &Local, input: &mut Bytes<'_>) -> u64 {
    let sel = input.u8();
    let live: Vec<Mid> = c_regions(w).iter().filter(|r| r.1).map(|r| r.0).collect();
    match sel % 8 {
        0 | 1 => 1 + u64::from(input.u8()),
        2 => 4096,
        3 if !live.is_empty() => w.model.regions()[&live[usize::from(sel) % live.len()]].len,
        4 => 0,
        5 => u64::from(input.u32()) % (10 << 20),
        6 => 2 << 20,
        _ => 1 + u64::from(input.u16()),
    }
}

/// A memory key: NULL, raw bytes, a known memory key (maybe edited), a notify key.
fn pick_mem_key(w: &Local, input: &mut Bytes<'_>) -> MemKeyArg {
    let sel = input.u8();
    let keys = w.syms.mem_exported();
    let known = |i: u8| -> Option<Vec<u8>> {
        (!keys.is_empty()).then(|| {
            w.syms
                .mem_key(keys[usize::from(i) % keys.len()])
                .expect("exported")
                .to_vec()
        })
    };
    let bytes = match sel % 8 {
        0 => None,
        1 => {
            let len = usize::from(input.u8() % 80);
            Some(input.take(len))
        }
        2 => {
            let mut k = known(input.u8()).unwrap_or_default();
            let pos = usize::from(input.u8()) % KEY_BUF_MIN;
            let byte = input.u8();
            if k.len() <= pos {
                k.resize(pos + 1, b'0');
            }
            k[pos] = byte;
            Some(k)
        }
        3 => {
            let notify = w.syms.exported();
            let i = usize::from(input.u8());
            Some(
                notify
                    .get(i % notify.len().max(1))
                    .and_then(|&n| w.syms.key(n))
                    .map_or(b"anm1-".to_vec(), <[u8]>::to_vec),
            )
        }
        _ => Some(known(input.u8()).unwrap_or_default()),
    };
    w.syms.classify_mem_key(bytes.as_deref())
}

/// A memory step (§5) of P0: `[escape, opcode % 14, arguments…]`.
fn mem_step(w: &mut Local, input: &mut Bytes<'_>) {
    let p = C;
    let op = input.u8() % MEM_OPS;
    match op {
        0 | 13 => {
            let null = input.u8().is_multiple_of(32);
            let size = match input.u8() % 10 {
                0 => 1,
                1 => 4096,
                2 => 4097,
                3 => 2 << 20,
                4 => (2 << 20) + 1,
                5 => 8 << 20,
                6 => 9 << 20,
                7 => input.u64(),
                8 => u64::MAX,
                _ => 1 + u64::from(input.u16()),
            };
            let policy = match input.u8() % 8 {
                0..=4 => u32::from(input.u8() % 8),
                5 => 8 + u32::from(input.u8()),
                6 => 0x100 | u32::from(input.u8() % 8),
                _ => input.u32(),
            };
            run(
                w,
                &Op::Malloc {
                    p,
                    null,
                    size,
                    policy,
                },
            );
        }
        1 => {
            let ptr = pick_ptr(w, input, 0);
            run(w, &Op::Free { p, ptr });
        }
        2 => {
            let nulls = input.u8();
            let attr = if nulls & 0x80 != 0 {
                input.u32()
            } else {
                u32::from(nulls % 20)
            };
            run(
                w,
                &Op::MemInfo {
                    p,
                    attr,
                    null_free: nulls & 0x60 == 0x20,
                    null_total: nulls & 0x60 == 0x40,
                },
            );
        }
        3 | 4 | 12 => {
            let count = pick_count(w, input);
            let dst = pick_ptr(w, input, count);
            let src = pick_ptr(w, input, count);
            let sel = input.u8();
            let kind = match sel % 16 {
                0..=7 => u32::from(sel % 8),
                8..=11 => 4,
                12 => 3,
                13 => 1,
                14 => 2,
                _ => input.u32(),
            };
            let dest_max = if sel & 0x80 != 0 {
                count.saturating_sub(1)
            } else {
                count
            };
            let stream = (op == 4).then(|| pick_stream(w, input));
            run(
                w,
                &Op::Memcpy {
                    p,
                    dst,
                    dest_max,
                    src,
                    count,
                    kind,
                    stream,
                },
            );
        }
        5 | 6 => {
            let count = pick_count(w, input);
            let ptr = pick_ptr(w, input, count);
            let sel = input.u8();
            let value = if sel & 1 == 0 {
                i32::from(sel)
            } else {
                input.u32() as i32
            };
            let max = if sel & 0x80 != 0 {
                count.saturating_sub(1)
            } else {
                count
            };
            let stream = (op == 6).then(|| pick_stream(w, input));
            run(
                w,
                &Op::Memset {
                    p,
                    ptr,
                    max,
                    value,
                    count,
                    stream,
                },
            );
        }
        7 => {
            let ptr = pick_ptr(w, input, 0);
            let sel = input.u8();
            let size = match sel % 8 {
                0..=2 => 4096 * u64::from(1 + input.u8() % 4),
                3 => 2 << 20,
                4 => 0,
                5 => 1 + u64::from(input.u16()),
                _ => match ptr {
                    PtrArg::Dev(m, off) => w.model.regions()[&m].len.saturating_sub(off),
                    _ => 4096,
                },
            };
            let len_sel = input.u8();
            let buf = Buf {
                null: len_sel.is_multiple_of(32),
                len: match len_sel % 4 {
                    1 => usize::from(input.u8() % 80),
                    2 => 200,
                    _ => KEY_BUF_MIN,
                },
            };
            let flags = match input.u8() % 5 {
                0 | 1 => 0,
                2 | 3 => 1,
                _ => input.u64(),
            };
            run(
                w,
                &Op::MemExport {
                    p,
                    ptr,
                    size,
                    buf,
                    flags,
                },
            );
        }
        8 => {
            let key = pick_mem_key(w, input);
            let mode = input.u8();
            let count = usize::from(input.u8() % 40);
            let pids: Vec<PidSym> = (0..count)
                .map(|_| {
                    let raw = match input.u8() % 8 {
                        0 | 1 => tgid(w, C),
                        2 => tgid(w, PEER),
                        3 => 0,
                        4 => -1 - i32::from(input.u8()),
                        _ => 1 + i32::from(input.u8()) + 256 * i32::from(input.u8() % 4),
                    };
                    w.syms.classify_pid(raw)
                })
                .collect();
            let pids = if mode.is_multiple_of(8) {
                Array::Null {
                    num: usize::from(input.u8()),
                }
            } else {
                Array::Items(pids)
            };
            run(w, &Op::MemSetPid { p, key, pids });
        }
        9 => {
            let null_out = input.u8().is_multiple_of(32);
            let key = pick_mem_key(w, input);
            let flags = match input.u8() % 5 {
                0 | 1 => 0,
                2 | 3 => 1,
                _ => input.u64(),
            };
            run(
                w,
                &Op::MemImport {
                    p,
                    null_out,
                    key,
                    flags,
                },
            );
        }
        10 => {
            let key = pick_mem_key(w, input);
            run(w, &Op::MemClose { p, key });
        }
        // Write a pattern into a live range and read it back (M2).
        _ => {
            let live: Vec<Mid> = c_regions(w).iter().filter(|r| r.1).map(|r| r.0).collect();
            if live.is_empty() {
                return;
            }
            let m = live[usize::from(input.u8()) % live.len()];
            let len = w.model.regions()[&m].len;
            let count = (1 + u64::from(input.u16())).min(len);
            let seed = input.u8();
            let dev = PtrArg::Dev(m, 0);
            for (dst, src, kind) in [
                (dev.clone(), PtrArg::Host { seed, len: count }, 1),
                (
                    PtrArg::Host {
                        seed: 0,
                        len: count,
                    },
                    dev,
                    4,
                ),
            ] {
                run(
                    w,
                    &Op::Memcpy {
                        p,
                        dst,
                        dest_max: count,
                        src,
                        count,
                        kind,
                        stream: None,
                    },
                );
            }
        }
    }
}

/// `aclrtWaitAndResetNotify`: run when the model says it completes at once (then a
/// synchronize) or is refused; a wait that would block is skipped, or with bit 7 of its mode
/// byte, run as the blocked-wait step.
fn wait(w: &mut Local, input: &mut Bytes<'_>) {
    let notify = pick_notify(w, input);
    let stream = pick_stream(w, input);
    let mode = input.u8();
    let timeout_s = match mode % 4 {
        0 => 1,
        1 => 0,
        2 => u32::MAX,
        _ => input.u32(),
    };
    let op = Op::Wait {
        p: C,
        notify: notify.clone(),
        stream: stream.clone(),
        timeout_s,
    };
    let Ok(e) = w.model.predict(&op) else {
        return;
    };
    if !e
        .effects
        .iter()
        .any(|f| matches!(f, Effect::WaitBlocked(_)))
    {
        let done = run(w, &op);
        if done.is_some_and(|e| e.code == 0) {
            run(
                w,
                &Op::Sync {
                    p: C,
                    stream,
                    timeout_ms: None,
                },
            );
        }
        return;
    }
    if mode & 0x80 == 0 {
        return;
    }
    blocked_wait(w, notify, stream);
}

/// A wait that has to block: enqueue it (1 s), see a 0 ms synchronize give up (507046), record
/// the notify from a new stream, and synchronize (5 s): the wait must have completed (R1–R3,
/// the cross-thread wake). With the 1 s wait timeout a lost wake-up shows up as 107019, not as
/// a hang.
fn blocked_wait(w: &mut Local, notify: NotifyArg, stream: StreamArg) {
    let p = C;
    let sure = |w: &mut Local, op: Op, code: i32, what: &str| -> Expect {
        let e = match w.run_exact(&op) {
            Ok(Ok(e)) => e,
            Ok(Err(skip)) => panic!(
                "{}",
                w.report(format!("harness: blocked wait: {op:?} skipped: {skip:?}"))
            ),
            Err(e) => panic!("{e}"),
        };
        assert_eq!(e.code, code, "harness: blocked wait: the model's {what}");
        e
    };
    sure(
        w,
        Op::Wait {
            p,
            notify: notify.clone(),
            stream: stream.clone(),
            timeout_s: 1,
        },
        0,
        "wait",
    );
    sure(
        w,
        Op::Sync {
            p,
            stream: stream.clone(),
            timeout_ms: Some(0),
        },
        507_046,
        "synchronize gives up",
    );
    let e = sure(w, Op::CreateStream { p, null: false }, 0, "stream");
    let Out::Stream(other) = e.out else {
        unreachable!("a created stream")
    };
    sure(
        w,
        Op::Record {
            p,
            notify,
            stream: StreamArg::Stream(other),
        },
        0,
        "record",
    );
    sure(
        w,
        Op::Sync {
            p,
            stream,
            timeout_ms: Some(5_000),
        },
        0,
        "synchronize: the wait completed",
    );
    sure(
        w,
        Op::Sync {
            p,
            stream: StreamArg::Stream(other),
            timeout_ms: None,
        },
        0,
        "the other stream is idle",
    );
    sure(
        w,
        Op::DestroyStream {
            p,
            stream: StreamArg::Stream(other),
        },
        0,
        "destroy the other stream",
    );
}

/// The key argument of an import: NULL, raw bytes, a known key, or a known key edited.
fn pick_key(syms: &Symbols, input: &mut Bytes<'_>) -> Option<Vec<u8>> {
    let sel = input.u8();
    let keys = syms.exported();
    let known = |i: u8| -> Option<Vec<u8>> {
        (!keys.is_empty()).then(|| {
            syms.key(keys[usize::from(i) % keys.len()])
                .expect("exported")
                .to_vec()
        })
    };
    Some(match sel % 8 {
        0 => return None,
        1 | 2 => {
            let len = usize::from(input.u8() % 80);
            input.take(len)
        }
        3 | 4 => {
            let mut k = known(input.u8()).unwrap_or_default();
            let pos = usize::from(input.u8()) % KEY_BUF_MIN;
            let byte = input.u8();
            if k.len() <= pos {
                k.resize(pos + 1, b'0');
            }
            k[pos] = byte;
            k
        }
        _ => known(input.u8()).unwrap_or_default(),
    })
}

/// Encodes one step for the seeds: the opcode, then its argument bytes.
fn op(code: u8, args: &[u8]) -> Vec<u8> {
    [&[code][..], args].concat()
}

/// Seeds for `fuzz/corpus/c_abi_sequence`: the flows of SEMANTICS.md, one per file.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    // Handle selectors: [kind, index]; kind 0x14 = live handle `index`, 4 = any handle of P0
    // `index`, 0 = NULL, 1 = garbage (8 more bytes), 2 = corrupted (1 more byte).
    const LIVE: u8 = 0x14;
    let set0 = op(2, &[0]);
    let set1 = op(2, &[1]);
    let create = op(6, &[1, 0]);
    let export = |i: u8, flags: u8| op(12, &[LIVE, i, 4, flags]);
    // set-pid of one pid: [handle, mode 1, count 1, selector…]
    let set_pid = |i: u8, sel: &[u8]| op(13, &[&[LIVE, i, 1, 1][..], sel].concat());
    let mut s: Vec<(String, Vec<u8>)> = Vec::new();
    let mut add = |name: &str, steps: &[Vec<u8>]| s.push((name.to_owned(), steps.concat()));
    add(
        "uninit-calls",
        &[
            op(1, &[]),
            set0.clone(),
            create.clone(),
            op(7, &[1, 0, 1, 2, 3, 4, 5, 6, 7, 8]),
            op(0, &[]),
            op(0, &[]),
        ],
    );
    add(
        "devices",
        &[
            op(2, &[9]),
            op(2, &[0x80]),
            op(4, &[1]),
            set1.clone(),
            op(4, &[1]),
            op(3, &[1]),
            op(4, &[1]),
            op(5, &[1]),
            op(5, &[0]),
            op(21, &[1]),
        ],
    );
    add(
        "create-destroy",
        &[
            set0.clone(),
            create.clone(),
            op(10, &[LIVE, 0, 1]),
            op(7, &[LIVE, 0]),
            op(7, &[4, 0]),
            op(10, &[4, 0, 1]),
        ],
    );
    add(
        "create-flags",
        &[
            set0.clone(),
            op(6, &[1, 2]),
            op(6, &[1, 4]),
            op(6, &[1, 5, 0, 0, 0, 0, 0, 0, 0, 0x80]),
            op(6, &[0, 0]),
        ],
    );
    add(
        "capacity",
        &[
            &[set0.clone()][..],
            &vec![create.clone(); 9],
            &[op(7, &[LIVE, 3]), create.clone()],
        ]
        .concat(),
    );
    add(
        "record-wait",
        &[
            set0.clone(),
            create.clone(),
            op(8, &[LIVE, 0, 0, 0]),
            op(9, &[LIVE, 0, 0, 0, 0]),
            op(19, &[0, 0, 0]),
        ],
    );
    add(
        "record-wait-stream",
        &[
            set0.clone(),
            create.clone(),
            op(17, &[1]),
            op(8, &[LIVE, 0, 7, 0]),
            op(9, &[LIVE, 0, 7, 0, 1]),
            op(20, &[7, 0, 2]),
            op(18, &[7, 0]),
        ],
    );
    add(
        "blocked-wait",
        &[set0.clone(), create.clone(), op(9, &[LIVE, 0, 0, 0, 0x80])],
    );
    add(
        "blocked-wait-stream",
        &[
            set0.clone(),
            create.clone(),
            op(17, &[1]),
            op(9, &[LIVE, 0, 7, 0, 0x80]),
        ],
    );
    add(
        "wait-big-timeout",
        &[
            set0.clone(),
            create.clone(),
            op(8, &[LIVE, 0, 0, 0]),
            op(9, &[LIVE, 0, 0, 0, 2]),
        ],
    );
    add(
        "wrong-device-stream",
        &[
            set0.clone(),
            create.clone(),
            op(17, &[1]),
            set1.clone(),
            op(8, &[LIVE, 0, 7, 0]),
            op(9, &[LIVE, 0, 0, 0, 0]),
            op(19, &[7, 0, 0]),
        ],
    );
    add(
        "garbage-handles",
        &[
            set0.clone(),
            create.clone(),
            op(8, &[1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0]),
            op(8, &[2, 0, 5, 0, 0]),
            op(8, &[3, 0, 0, 0]),
            op(10, &[2, 0, 31, 1]),
            op(7, &[2, 0, 63]),
        ],
    );
    add(
        "stream-as-notify",
        &[
            set0.clone(),
            op(17, &[1]),
            op(7, &[3, 0]),
            op(18, &[6, 0]),
            op(19, &[4, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0]),
        ],
    );
    add(
        "batch-reset",
        &[
            set0.clone(),
            create.clone(),
            create.clone(),
            op(8, &[LIVE, 0, 0, 0]),
            op(11, &[1, 2, LIVE, 0, LIVE, 1]),
            op(11, &[0, 0, 3]),
            op(11, &[1, 0]),
            op(11, &[1, 2, LIVE, 0, 0, 0]),
            op(11, &[1, 2, LIVE, 0, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8]),
            op(9, &[LIVE, 0, 0, 0, 0x80]),
        ],
    );
    add(
        "export-args",
        &[
            set0.clone(),
            create.clone(),
            op(12, &[LIVE, 0, 0, 0]),
            op(12, &[LIVE, 0, 1, 0, 64]),
            op(12, &[LIVE, 0, 2, 4, 3, 0, 0, 0, 0, 0, 0, 0]),
            export(0, 0),
            export(0, 2),
        ],
    );
    // R6: NULL array, count 0, count 2, before export, own pid and pid 0 (ignored), negative.
    add(
        "export-pids",
        &[
            set0.clone(),
            create.clone(),
            set_pid(0, &[6, 9, 0]),
            export(0, 0),
            op(13, &[LIVE, 0, 1, 0]),
            op(13, &[LIVE, 0, 0, 0, 5]),
            op(13, &[LIVE, 0, 1, 2, 6, 3, 0, 6, 4, 0]),
            set_pid(0, &[0]),
            set_pid(0, &[3]),
            set_pid(0, &[4, 7]),
            set_pid(0, &[5]),
        ],
    );
    // R6: 15 importers, then the 16th fails; a pid already present is refreshed.
    let mut overflow = vec![set0.clone(), create.clone(), export(0, 0)];
    for k in 1..=16u8 {
        overflow.push(set_pid(0, &[6, k, 0]));
    }
    overflow.push(set_pid(0, &[6, 1, 0]));
    add("whitelist-overflow", &overflow);
    add(
        "export-disable-pids",
        &[set0.clone(), create.clone(), export(0, 2), set_pid(0, &[2])],
    );
    add(
        "import-own",
        &[
            set0.clone(),
            create.clone(),
            export(0, 2),
            op(14, &[1, 5, 0, 0]),
            op(14, &[1, 0, 0]),
            op(14, &[0, 5, 0, 0]),
        ],
    );
    add(
        "import-raw",
        &[
            set0.clone(),
            op(14, &[1, 1, 3, b'a', b'b', b'c', 0]),
            op(14, &[1, 2, 54, b'a', b'n', b's', b'1', b'-', 0]),
            op(14, &[&[1, 1, 70][..], &[0x41; 72], &[0]].concat()),
        ],
    );
    add(
        "peer-flow",
        &[
            op(22, &[1, 1]),
            set0.clone(),
            op(14, &[1, 5, 0, 0]),
            op(14, &[1, 5, 0, 2]),
            op(14, &[1, 5, 0, 2]),
            op(8, &[LIVE, 0, 0, 0]),
            op(9, &[LIVE, 0, 0, 0, 0]),
            op(12, &[LIVE, 0, 0, 0]),
            set_pid(0, &[0]),
            op(25, &[0]),
            op(11, &[1, 1, LIVE, 0]),
            op(7, &[LIVE, 0]),
            op(14, &[1, 5, 0, 2]),
            op(23, &[0]),
            op(8, &[LIVE, 1, 0, 0]),
            op(7, &[LIVE, 1]),
            op(14, &[1, 5, 0, 2]),
        ],
    );
    add(
        "peer-not-whitelisted",
        &[op(22, &[0, 2]), set0.clone(), op(14, &[1, 5, 0, 0])],
    );
    add(
        "peer-disable",
        &[
            op(22, &[2, 3]),
            set1.clone(),
            op(14, &[1, 5, 0, 0]),
            op(15, &[2, 0]),
            op(15, &[1, 0]),
            op(15, &[2, 1, 1, 0, 0, 0]),
            op(15, &[0x80, 0]),
            op(14, &[1, 5, 0, 0]),
            op(16, &[1, 0, 1]),
            op(16, &[1, 1, 1]),
            op(16, &[1, 9, 1]),
            op(16, &[0, 0, 1]),
        ],
    );
    add(
        "peer-edited-key",
        &[
            op(22, &[1, 3]),
            set1.clone(),
            op(14, &[1, 3, 0, 60, b'0', 2]),
            op(14, &[1, 3, 0, 10, b'x', 2]),
            op(14, &[1, 3, 0, 53, 0, 2]),
            op(14, &[1, 3, 0, 54, b'a', 2]),
        ],
    );
    // P0 exports with a whitelist; the peer is refused until P0 whitelists it (selector 2),
    // then imports, records; P0's wait passes; P0's destroy revokes (the peer's import fails,
    // its handle still records).
    add(
        "peer-imports-ours",
        &[
            set0.clone(),
            create.clone(),
            export(0, 0),
            op(24, &[0]),
            set_pid(0, &[2]),
            op(24, &[0]),
            op(24, &[0]),
            op(25, &[0]),
            op(9, &[LIVE, 0, 0, 0, 0]),
            op(7, &[LIVE, 0]),
            op(24, &[0]),
            op(25, &[0]),
            op(23, &[0]),
        ],
    );
    // A blocked wait that the peer's record would release is not run (the peer records only
    // from its own steps); the blocked-wait step then records from P0.
    add(
        "peer-blocked-wait",
        &[
            set0.clone(),
            create.clone(),
            export(0, 2),
            op(24, &[0]),
            op(9, &[LIVE, 0, 0, 0, 0x80]),
            op(25, &[0]),
            op(9, &[LIVE, 0, 0, 0, 0]),
        ],
    );
    add(
        "peer-capacity",
        &[
            &vec![op(22, &[0, 0]); 8][..],
            &[
                set0.clone(),
                create.clone(),
                op(23, &[3]),
                create.clone(),
                op(22, &[0, 0]),
            ],
        ]
        .concat(),
    );
    add(
        "finalize-reinit",
        &[
            set0.clone(),
            create.clone(),
            op(17, &[1]),
            export(0, 2),
            op(1, &[]),
            op(10, &[4, 0, 1]),
            op(0, &[]),
            op(7, &[4, 0]),
            op(19, &[7, 0, 0]),
            set0.clone(),
            op(14, &[1, 5, 0, 0]),
            create.clone(),
            op(10, &[4, 0, 1]),
            op(10, &[LIVE, 0, 1]),
        ],
    );
    add(
        "finalize-with-peer-import",
        &[
            set0.clone(),
            create.clone(),
            export(0, 2),
            op(24, &[0]),
            op(1, &[]),
            op(0, &[]),
            set0.clone(),
            op(14, &[1, 5, 0, 0]),
            op(25, &[0]),
        ],
    );
    add(
        "sync-timeouts",
        &[
            set0.clone(),
            op(20, &[0, 0, 3]),
            op(20, &[0, 0, 4]),
            op(20, &[0, 0, 5, 0xff, 0xff, 0xff, 0x7f]),
            op(20, &[0, 0, 2]),
            op(19, &[4, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0]),
            op(3, &[0]),
            op(19, &[0, 0, 0]),
        ],
    );
    add(
        "errmsg",
        &[op(26, &[]), set0.clone(), op(2, &[9]), op(26, &[])],
    );
    mem_seeds(&mut add);
    s
}

/// The memory steps' seeds (§5): `[escape, opcode, arguments…]`.
fn mem_seeds(add: &mut impl FnMut(&str, &[Vec<u8>])) {
    let m = |code: u8, args: &[u8]| op(MEM_ESCAPES[4], &[&[code][..], args].concat());
    let set0 = op(2, &[0]);
    let set1 = op(2, &[1]);
    // Pointers: [4, i] the start of live range i; [0xa4, i, k] k pages in; [0xd4, i, b] b
    // bytes in; [7, i, k] any range i, k pages in; [1, i, seed] a host buffer; [0, 0] NULL.
    let malloc_4k = m(0, &[1, 1, 0, 2]);
    add(
        "mem-malloc",
        &[
            malloc_4k.clone(),
            set0.clone(),
            m(2, &[1]),
            m(0, &[0, 1, 0, 2]),
            m(0, &[1, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]),
            m(0, &[1, 0, 5, 0]),
            m(0, &[1, 0, 0, 2]),
            m(0, &[1, 2, 0, 2]),
            m(0, &[1, 3, 0, 0]),
            m(0, &[1, 0, 0, 1]),
            m(0, &[1, 0, 0, 6]),
            m(0, &[1, 5, 0, 2]),
            m(0, &[1, 0, 6, 2]),
            m(2, &[0x80, 0xff, 0xff, 0xff, 0xff]),
            m(2, &[0x21]),
            m(2, &[0x41]),
            m(1, &[4, 0]),
            m(1, &[7, 0, 0]),
            m(1, &[0, 0]),
            m(1, &[0xd4, 0, 1]),
            m(1, &[2, 0, 1, 2, 3, 4, 5, 6, 7, 8]),
        ],
    );
    let huge = m(0, &[1, 3, 0, 1]);
    add(
        "mem-fill",
        &[
            &[set0.clone()][..],
            &vec![huge.clone(); 5],
            &[m(2, &[1]), m(1, &[4, 0]), huge.clone(), m(2, &[1])],
        ]
        .concat(),
    );
    add(
        "mem-copy-readback",
        &[
            set0.clone(),
            m(0, &[1, 2, 0, 2]),
            m(11, &[0, 0x00, 0x10, 7]),
            m(3, &[2, 0xa4, 0, 1, 4, 0, 3]),
            m(3, &[2, 1, 0, 0, 0xa4, 0, 1, 2]),
            m(5, &[0, 9, 0xd4, 0, 3, 0x42]),
            m(3, &[0, 15, 1, 0, 0, 4, 0, 4]),
            m(5, &[0, 3, 4, 0, 0x01, 0xff, 0x01, 0, 0]),
            m(3, &[0, 3, 1, 0, 0, 4, 0, 2]),
            m(3, &[0, 3, 4, 0, 1, 0, 9, 4]),
            m(3, &[0, 3, 1, 0, 0, 1, 0, 9, 0]),
        ],
    );
    add(
        "mem-copy-args",
        &[
            set0.clone(),
            malloc_4k.clone(),
            m(3, &[0, 3, 0, 0, 4, 0, 3]),
            m(3, &[0, 3, 4, 0, 1, 0, 5, 0x81]),
            m(3, &[0, 3, 4, 0, 1, 0, 5, 0x0f, 9, 0, 0, 0]),
            m(3, &[0, 3, 4, 0, 1, 0, 5, 2]),
            m(3, &[0, 3, 2, 0, 1, 2, 3, 4, 5, 6, 7, 8, 1, 0, 5, 1]),
            m(3, &[5, 0x00, 0x20, 0, 0, 4, 0, 1, 0, 5, 1]),
            m(3, &[4, 4, 0, 4, 0, 9]),
            m(5, &[0, 3, 1, 0, 5, 2]),
            m(5, &[0, 3, 2, 0, 1, 2, 3, 4, 5, 6, 7, 8, 2]),
            m(4, &[0, 3, 4, 0, 1, 0, 5, 1, 0, 0]),
            m(4, &[0, 3, 4, 0, 4, 0, 3, 4, 0, 1, 2, 3, 4, 5, 6, 7, 8]),
            set1.clone(),
            m(3, &[0, 3, 1, 0, 0, 4, 0, 2]),
            m(5, &[0, 3, 4, 0, 2]),
            op(15, &[0, 1]),
            m(3, &[0, 3, 1, 0, 0, 4, 0, 2]),
            m(5, &[0, 3, 4, 0, 2]),
        ],
    );
    let mut many = vec![4, 0, 1, 32];
    for k in 0..32u8 {
        many.extend([5, k, 1]);
    }
    add(
        "mem-export-whitelist",
        &[
            set0.clone(),
            m(0, &[1, 9, 0xff, 0x2f, 0, 2]),
            m(7, &[4, 0, 4, 0, 0]),
            m(7, &[4, 0, 0, 1, 0, 0]),
            m(7, &[0xa4, 0, 1, 0, 0, 0, 0]),
            m(7, &[0xd4, 0, 1, 0, 0, 0, 0]),
            m(7, &[0xa4, 0, 2, 0, 0, 1, 10, 0]),
            m(7, &[0xa4, 0, 2, 0, 0, 0, 4, 8, 0, 0, 0, 0, 0, 0, 0]),
            m(7, &[0, 0, 0, 0, 0, 0]),
            m(7, &[0xa4, 0, 2, 0, 0, 0, 2]),
            m(8, &[4, 0, 1, 1, 2]),
            m(8, &[4, 0, 1, 2, 0, 3]),
            m(8, &[4, 0, 1, 0]),
            m(8, &[4, 0, 0, 1]),
            m(8, &[4, 1, 1, 1, 2]),
            m(8, &many),
            m(8, &[4, 0, 1, 1, 4, 0]),
            m(8, &[3, 0, 1, 1, 2]),
            m(8, &[0, 1, 1, 2]),
            m(8, &[2, 0, 10, b'f', 1, 1, 2]),
        ],
    );
    add(
        "mem-import-close",
        &[
            set0.clone(),
            m(0, &[1, 9, 0xff, 0x2f, 0, 2]),
            m(7, &[4, 0, 0, 1, 0, 0]),
            m(9, &[1, 4, 0, 0]),
            m(9, &[1, 4, 0, 4, 2, 0, 0, 0, 0, 0, 0, 0]),
            m(9, &[0, 4, 0, 0]),
            m(9, &[1, 2, 0, 51, b'g', 0]),
            m(9, &[1, 2, 0, 10, b'f', 0]),
            m(9, &[1, 0, 0]),
            m(9, &[1, 1, 5, b'a', b'n', b'm', b'1', b'-', 0]),
            create_export_notify(),
            m(9, &[1, 3, 0, 0]),
            m(10, &[2, 0, 51, b'z']),
            m(10, &[0]),
            m(10, &[3, 0]),
            m(10, &[4, 0]),
            m(10, &[4, 0]),
            m(7, &[4, 0, 0, 1, 0, 2]),
            m(1, &[4, 0]),
            m(9, &[1, 4, 1, 0]),
            m(10, &[4, 1]),
        ],
    );
    add(
        "mem-finalize-reinit",
        &[
            set0.clone(),
            malloc_4k.clone(),
            m(7, &[4, 0, 0, 0, 0, 0]),
            op(1, &[]),
            m(1, &[7, 0, 0]),
            op(0, &[]),
            set0.clone(),
            m(1, &[7, 0, 0]),
            m(10, &[4, 0]),
            m(3, &[0, 3, 7, 0, 0, 1, 0, 5, 1]),
            malloc_4k.clone(),
            m(11, &[0, 0, 0x10, 3]),
            m(2, &[1]),
        ],
    );
    add(
        "mem-async",
        &[
            set0.clone(),
            m(0, &[1, 2, 0, 2]),
            m(6, &[2, 4, 0, 0x10, 0, 0]),
            m(4, &[2, 0xa4, 0, 1, 4, 0, 3, 0, 0]),
            m(3, &[2, 1, 0, 0, 0xa4, 0, 1, 2]),
            op(17, &[1]),
            m(6, &[0, 7, 4, 0, 0x20, 7, 0]),
            m(3, &[0, 7, 1, 0, 0, 4, 0, 2]),
            set1.clone(),
            m(6, &[0, 7, 4, 0, 0x20, 7, 0]),
            m(6, &[0, 7, 4, 0, 0x20, 0, 0]),
        ],
    );
}

/// Finding M1-MAX (docs/FUZZING.md): `aclrtMalloc` of `SIZE_MAX` bytes panics in the simulator
/// (rounding up to the page size overflows) and answers 507000; M1 says a device with no room
/// for the allocation answers 207001. `fuzz/corpus/c_abi_sequence/crash-m1-malloc-size-max`.
pub fn m1_size_max_input() -> Vec<u8> {
    [op(2, &[0]), op(MEM_ESCAPES[4], &[0, 1, 8, 0, 2])].concat()
}

/// A notify created and exported (flags 0x2) on the current device, for the memory seeds
/// that pass a notify key where a memory key belongs (M3).
fn create_export_notify() -> Vec<u8> {
    [op(6, &[1, 0]), op(12, &[0x14, 0, 4, 2])].concat()
}
