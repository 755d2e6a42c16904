//! Device memory, copies and sets, IPC memory (M1–M6), at the C level of their arguments.

use std::sync::Arc;

use notify_api::{EXPORT_KEY_LEN, ExportKey, Result, err};

use super::{Cx, Session, StreamArg, enqueue_stream, need, with_cx};
use crate::memory::{self, Mapping, Origin, Place, Region, page_size};
use crate::registry::memory::{Hazard, MemKey, object_name};
use crate::stream::{HostFn, Task};

/// `aclrtMemcpyKind` values (acl-abi's manifest holds the names).
const H2H: u32 = 0;
const H2D: u32 = 1;
const D2H: u32 = 2;
const D2D: u32 = 3;
const DEFAULT: u32 = 4;
const H2BUF2D: u32 = 5;
const INNER_D2D: u32 = 6;
const INTER_D2D: u32 = 7;

/// `aclrtMemAttr` has 18 values (0..=17); the simulator answers the same for each (M1).
const MEM_ATTRS: u32 = 18;

/// `aclrtMalloc` (M1): context → `size` and policy → room on the device.
pub fn malloc(s: &Arc<Session>, cx: Cx<'_>, size: usize, policy: u32) -> Result<u64> {
    s.check()?;
    let device = with_cx(s, cx, |ctx| need(ctx).map(|c| c.device))?;
    if size == 0 {
        return Err(err!(M1: RT_PARAM_INVALID, "an allocation of 0 bytes"));
    }
    let page = page_size(policy, size as u64)
        .ok_or_else(|| err!(M1: RT_PARAM_INVALID, "{policy:#x} is not an aclrtMemMallocPolicy"))?;
    let len = (size as u64)
        .checked_next_multiple_of(page)
        .ok_or_else(|| {
            err!(
                M1: RT_MEMORY_ALLOCATION,
                "{size} bytes do not fit in device {device}'s memory"
            )
        })?;
    let a = s.reg.mem_alloc(device as u32, len, page)?;
    let object = object_name(s.namespace(), a);
    // The owner's address is recorded before the region is in `space`: until then nothing but
    // this call can reach `a` (a device reset frees what `space` holds), so the store needs no
    // lock (see `Registry::mem_set_owner_addr`).
    let mapped = crate::shm::create_object(&object, len).and_then(|fd| {
        s.space.map(Mapping {
            object: &object,
            offset: 0,
            len,
            device,
            page_size: page,
            origin: Origin::Own(a),
            avoid: None,
            fd: Some(&fd),
            placed: Some(&|addr| s.reg.mem_set_owner_addr(a, addr)),
        })
    });
    match mapped {
        Ok(region) => Ok(region.addr),
        Err(e) => {
            let _ = s.reg.mem_free(a, false);
            Err(e)
        }
    }
}

/// `aclrtFree` (M6): the start of a live allocation of this process; first waits for every task
/// this process queued.
pub fn free(s: &Session, ptr: usize) -> Result<()> {
    s.check()?;
    let region = s
        .space
        .region_at(ptr as u64)
        .filter(|r| !r.is_import())
        .ok_or_else(|| {
            if s.space.region_at(ptr as u64).is_some() {
                err!(
                    M6: RT_PARAM_INVALID,
                    "{ptr:#x} is imported memory; close it with aclrtIpcMemClose"
                )
            } else {
                err!(
                    M1: RT_PARAM_INVALID,
                    "{ptr:#x} is not the start of a live allocation of this process"
                )
            }
        })?;
    let Origin::Own(a) = region.origin else {
        unreachable!("filtered above")
    };
    s.drain_all();
    s.reg.mem_free(a, s.strict)?;
    s.space.remove(region.addr);
    Ok(())
}

/// `aclrtMallocHost` (M1).
pub fn malloc_host(s: &Session, size: usize) -> Result<usize> {
    s.check()?;
    if size == 0 {
        return Err(err!(M1: RT_PARAM_INVALID, "a host allocation of 0 bytes"));
    }
    s.space.malloc_host(size)
}

/// `aclrtFreeHost` (M1).
pub fn free_host(s: &Session, ptr: usize) -> Result<()> {
    s.check()?;
    s.space.free_host(ptr)
}

/// A copy or set's pointer, resolved: host memory, or `len` bytes of one live region.
fn place(s: &Session, ptr: usize, len: usize) -> Result<Place> {
    if s.space.is_device(ptr) {
        let (region, off) = s.space.resolve(ptr, len)?;
        Ok(Place::Device(region, off))
    } else {
        Ok(Place::Host(ptr))
    }
}

/// M2: the checks of a copy after `count <= destMax` and `count > 0`: kind, ranges, imported
/// memory, peer access. `on_stream` for the async form.
fn copy_places(
    s: &Session,
    device: i32,
    dst: usize,
    src: usize,
    count: usize,
    kind: u32,
    on_stream: bool,
) -> Result<(Place, Place)> {
    if kind > INTER_D2D {
        return Err(err!(M2: RT_PARAM_INVALID, "{kind} is not an aclrtMemcpyKind"));
    }
    let (dst_dev, src_dev) = (s.space.is_device(dst), s.space.is_device(src));
    let expected = match kind {
        H2H => Some((false, false)),
        H2D | H2BUF2D => Some((true, false)),
        D2H => Some((false, true)),
        D2D | INNER_D2D | INTER_D2D => Some((true, true)),
        _ => None, // DEFAULT infers it
    };
    debug_assert!(kind != DEFAULT || expected.is_none());
    if let Some((want_dst, want_src)) = expected
        && (want_dst, want_src) != (dst_dev, src_dev)
    {
        let name = |dev: bool| if dev { "device" } else { "host" };
        return Err(err!(
            M2: RT_PARAM_INVALID,
            "copy kind {kind} does not match where the pointers are (destination in {} memory, \
             source in {} memory)",
            name(dst_dev),
            name(src_dev)
        ));
    }
    let (dst, src) = (place(s, dst, count)?, place(s, src, count)?);
    check_regions(
        s,
        device,
        [dst.region(), src.region()],
        dst_dev && src_dev,
        on_stream,
    )?;
    Ok((dst, src))
}

/// M2/M5: imported memory takes only device-to-device copies and sets on a stream; a region of
/// another device needs peer access from the calling context's device.
fn check_regions(
    s: &Session,
    device: i32,
    regions: [Option<&Arc<Region>>; 2],
    device_to_device: bool,
    on_stream: bool,
) -> Result<()> {
    for r in regions.into_iter().flatten() {
        if r.is_import() && !(device_to_device && on_stream) {
            return Err(err!(
                M5: RT_PARAM_INVALID,
                "imported memory takes only device-to-device copies and sets enqueued on a \
                 stream (no host copies, nothing synchronous)"
            ));
        }
        if r.device != device && !s.peer_enabled(device, r.device) {
            return Err(err!(
                M2: RT_PARAM_INVALID,
                "the copy touches memory of device {}; enable peer access to it from device \
                 {device} first",
                r.device
            ));
        }
    }
    Ok(())
}

fn check_count(count: usize, dest_max: usize) -> Result<()> {
    if count > dest_max {
        return Err(err!(
            M2: RT_PARAM_INVALID,
            "count {count} is larger than destMax {dest_max}"
        ));
    }
    Ok(())
}

/// `aclrtMemcpy` (M2): completes before it returns.
///
/// # Safety
/// A host pointer among `dst` and `src` (any address outside this process's device addresses)
/// is valid for `count` bytes, written or read, for the duration of the call, as for C
/// `memcpy`. Device pointers need no promise: they are checked.
pub unsafe fn memcpy(
    s: &Session,
    cx: Cx<'_>,
    dst: usize,
    dest_max: usize,
    src: usize,
    count: usize,
    kind: u32,
) -> Result<()> {
    s.check()?;
    let device = with_cx(s, cx, |ctx| need(ctx).map(|c| c.device))?;
    check_count(count, dest_max)?;
    if count == 0 {
        return Ok(());
    }
    let (dst, src) = copy_places(s, device, dst, src, count, kind, false)?;
    // SAFETY: host places are this function's contract.
    unsafe { memory::copy(&dst, &src, count) };
    Ok(())
}

/// `aclrtMemcpyAsync` (M2): a stream task; wrong arguments fail here, never later.
///
/// # Safety
/// As [`memcpy`], and host memory stays valid until the stream has run the copy.
#[allow(clippy::too_many_arguments)]
pub unsafe fn memcpy_async(
    s: &Session,
    cx: Cx<'_>,
    dst: usize,
    dest_max: usize,
    src: usize,
    count: usize,
    kind: u32,
    stream: StreamArg<'_>,
) -> Result<()> {
    s.check()?;
    with_cx(s, cx, |ctx| {
        let ctx = need(ctx)?;
        let (ctx, core) = enqueue_stream(s, ctx, &stream)?;
        check_count(count, dest_max)?;
        if count == 0 {
            return Ok(());
        }
        let (dst, src) = copy_places(s, ctx.device, dst, src, count, kind, true)?;
        core.enqueue(Task::Copy {
            dst,
            src,
            len: count,
            then: None,
        })
    })
}

/// A host-to-device copy of `src` as a stream task that owns `src` until it ran (the typed
/// API's `Stream::copy_from_host`).
pub fn copy_from_host_async(
    s: &Session,
    cx: Cx<'_>,
    dst: u64,
    dest_max: usize,
    src: Box<dyn AsRef<[u8]> + Send + 'static>,
    stream: StreamArg<'_>,
) -> Result<()> {
    s.check()?;
    with_cx(s, cx, |ctx| {
        let ctx = need(ctx)?;
        let (ctx, core) = enqueue_stream(s, ctx, &stream)?;
        let (ptr, count) = {
            let bytes = (*src).as_ref();
            (bytes.as_ptr().addr(), bytes.len())
        };
        check_count(count, dest_max)?;
        if count == 0 {
            return Ok(());
        }
        let (dst, src_place) = copy_places(s, ctx.device, dst as usize, ptr, count, H2D, true)?;
        core.enqueue(Task::Copy {
            dst,
            src: src_place,
            len: count,
            // The bytes live in `src`'s heap allocation, which moving the box does not move.
            then: Some(HostFn::new(move || drop(src))),
        })
    })
}

/// A device-to-host copy of `len` bytes as a stream task; the bytes come out of the returned
/// download once it ran (the typed API's `Stream::copy_to_host`).
pub fn copy_to_host_async(
    s: &Session,
    cx: Cx<'_>,
    src: u64,
    len: usize,
    stream: StreamArg<'_>,
) -> Result<notify_api::Download> {
    s.check()?;
    with_cx(s, cx, |ctx| {
        let ctx = need(ctx)?;
        let (ctx, core) = enqueue_stream(s, ctx, &stream)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let mut bytes = vec![0u8; len];
        if len == 0 {
            let _ = tx.send(bytes);
            return Ok(notify_api::Download::new(rx));
        }
        let ptr = bytes.as_mut_ptr().addr();
        let (dst, src) = copy_places(s, ctx.device, ptr, src as usize, len, D2H, true)?;
        core.enqueue(Task::Copy {
            dst,
            src,
            len,
            then: Some(HostFn::new(move || {
                let _ = tx.send(bytes);
            })),
        })?;
        Ok(notify_api::Download::new(rx))
    })
}

/// What this process knows of device address `addr`: the length, device and kind of the
/// allocation or import that starts there.
pub fn mem_region(s: &Session, addr: u64) -> Option<(u64, i32, bool)> {
    s.space
        .region_at(addr)
        .map(|r| (r.len, r.device, r.is_import()))
}

/// M2: the place a set writes, checked.
fn set_place(s: &Session, device: i32, ptr: usize, count: usize, on_stream: bool) -> Result<Place> {
    if !s.space.is_device(ptr) {
        return Err(err!(
            M2: RT_PARAM_INVALID,
            "{ptr:#x} is not device memory of this process"
        ));
    }
    let dst = place(s, ptr, count)?;
    check_regions(s, device, [dst.region(), None], true, on_stream)?;
    Ok(dst)
}

/// `aclrtMemset` (M2): `value` converted to a byte, as C `memset` does.
pub fn memset(
    s: &Session,
    cx: Cx<'_>,
    ptr: usize,
    max_count: usize,
    value: i32,
    count: usize,
) -> Result<()> {
    s.check()?;
    let device = with_cx(s, cx, |ctx| need(ctx).map(|c| c.device))?;
    check_count(count, max_count)?;
    if count == 0 {
        return Ok(());
    }
    let dst = set_place(s, device, ptr, count, false)?;
    memory::set(&dst, value as u8, count);
    Ok(())
}

/// `aclrtMemsetAsync` (M2).
pub fn memset_async(
    s: &Session,
    cx: Cx<'_>,
    ptr: usize,
    max_count: usize,
    value: i32,
    count: usize,
    stream: StreamArg<'_>,
) -> Result<()> {
    s.check()?;
    with_cx(s, cx, |ctx| {
        let ctx = need(ctx)?;
        let (ctx, core) = enqueue_stream(s, ctx, &stream)?;
        check_count(count, max_count)?;
        if count == 0 {
            return Ok(());
        }
        let dst = set_place(s, ctx.device, ptr, count, true)?;
        core.enqueue(Task::Set {
            dst,
            value: value as u8,
            len: count,
        })
    })
}

/// `aclrtGetMemInfo` (M1): the current device's free and total bytes, for every `attr` (sim).
pub fn get_mem_info(s: &Session, cx: Cx<'_>, attr: u32) -> Result<(u64, u64)> {
    s.check()?;
    let device = with_cx(s, cx, |ctx| need(ctx).map(|c| c.device))?;
    if attr >= MEM_ATTRS {
        return Err(err!(M1: RT_PARAM_INVALID, "{attr} is not an aclrtMemAttr"));
    }
    Ok(s.reg.mem_info(device as u32))
}

/// `aclrtIpcMemGetExportKey` (M3): context → virtualization → `size`, `len`, flags → the range
/// (inside one allocation of this process, page-aligned) → overlap with a live export.
pub fn ipc_export(
    s: &Session,
    cx: Cx<'_>,
    ptr: usize,
    size: usize,
    flags: u64,
    buf_len: usize,
) -> Result<ExportKey> {
    s.check()?;
    with_cx(s, cx, |ctx| need(ctx).map(|_| ()))?;
    s.check_virtual("exporting IPC memory")?;
    if size == 0 {
        return Err(err!(M3: RT_PARAM_INVALID, "an export of 0 bytes"));
    }
    if buf_len < EXPORT_KEY_LEN {
        return Err(err!(
            M3: RT_PARAM_INVALID,
            "key buffer length {buf_len} is below the minimum {EXPORT_KEY_LEN}"
        ));
    }
    if flags & !0x1 != 0 {
        return Err(err!(
            M3: RT_PARAM_INVALID,
            "unknown IPC memory export flag bits {:#x} (allowed: 0x1)",
            flags & !0x1
        ));
    }
    let (region, off) = s
        .space
        .resolve(ptr, size)
        .ok()
        .filter(|(r, _)| !r.is_import())
        .ok_or_else(|| {
            err!(
                M3: RT_PARAM_INVALID,
                "bytes {ptr:#x}..+{size} are not inside one live allocation of this process"
            )
        })?;
    if !off.is_multiple_of(region.page_size) || !(size as u64).is_multiple_of(region.page_size) {
        return Err(err!(
            M3: RT_PARAM_INVALID,
            "IPC rejects ranges not aligned to the allocation's page size ({} bytes): offset \
             {off}, size {size}",
            region.page_size
        ));
    }
    let Origin::Own(a) = region.origin else {
        unreachable!("filtered above")
    };
    s.reg.mem_export(a, off, size as u64, flags as u32)
}

/// A memory key from the bytes of the caller's C string (M3–M5: 107000 when malformed).
fn mem_key(key: &[u8]) -> Result<MemKey> {
    MemKey::decode(&ExportKey::from_c_buf(key)?)
}

/// `aclrtIpcMemSetImportPid` (M4): `num` (1..=31) → virtualization → key format → the
/// registry's checks. `pids` are the array's first `min(num, 31)` elements.
pub fn ipc_set_import_pid(s: &Session, key: &[u8], num: usize, pids: &[i32]) -> Result<()> {
    s.check()?;
    s.check_virtual("setting an IPC memory whitelist")?;
    if num == 0 || num > 31 {
        return Err(err!(
            M4: RT_PARAM_INVALID,
            "num is {num}: the driver takes 1 to 31 pids per call"
        ));
    }
    if let Some(bad) = pids.iter().find(|&&p| p < 0) {
        return Err(err!(M4: RT_PARAM_INVALID, "{bad} is not a process id"));
    }
    let key = mem_key(key)?;
    s.reg.mem_set_import_pid(&key, pids)
}

/// `aclrtIpcMemImportByKey` (M5): context → virtualization → flags → key format → the
/// registry's resolution → a mapping at a fresh address, never the exporter's.
pub fn ipc_import(s: &Session, cx: Cx<'_>, key: &[u8], flags: u64) -> Result<u64> {
    s.check()?;
    let current = with_cx(s, cx, |ctx| need(ctx).map(|c| c.device))?;
    s.check_virtual("importing IPC memory")?;
    if flags & !0x1 != 0 {
        return Err(err!(
            M5: RT_PARAM_INVALID,
            "unknown IPC memory import flag bits {:#x} (allowed: 0x1)",
            flags & !0x1
        ));
    }
    let text = ExportKey::from_c_buf(key)?;
    let parsed = MemKey::decode(&text)?;
    let enable = flags & 0x1 != 0;
    let imported = s.reg.mem_import(
        &parsed,
        |e| s.space.imports(e),
        |device| enable || s.peer_enabled(current, device as i32),
    )?;
    let page = s.reg.live_alloc(imported.alloc).map_or(4096, |a| {
        a.page_size.load(std::sync::atomic::Ordering::Relaxed)
    });
    let origin = Origin::Import {
        export: imported.export,
        alloc: imported.alloc,
        key: text.as_str().to_owned(),
    };
    let avoid = (imported.owner_addr != 0).then(|| imported.owner_addr + imported.offset);
    match s.space.map(Mapping {
        object: &object_name(s.namespace(), imported.alloc),
        offset: imported.offset,
        len: imported.size,
        device: imported.device as i32,
        page_size: page,
        origin,
        avoid,
        fd: None,
        placed: None,
    }) {
        Ok(region) => {
            if enable && imported.device as i32 != current {
                s.enable_peer(current, imported.device as i32);
            }
            Ok(region.addr)
        }
        Err(e) => {
            s.reg.mem_close_import(imported.export, imported.alloc);
            Err(e)
        }
    }
}

/// `aclrtIpcMemClose` (M6): in an importer unmaps its import; in the exporter revokes the key.
/// First waits for every task this process queued.
pub fn ipc_close(s: &Session, key: &[u8]) -> Result<()> {
    s.check()?;
    let text = ExportKey::from_c_buf(key)?;
    let parsed = MemKey::decode(&text)?;
    s.drain_all();
    if let Some(region) = s.space.import_of(text.as_str()) {
        if let Origin::Import { export, alloc, .. } = &region.origin {
            s.space.remove(region.addr);
            s.reg.mem_close_import(*export, *alloc);
        }
        return Ok(());
    }
    match s.reg.mem_close_export(&parsed, s.strict)? {
        Hazard::None | Hazard::Counted(_) => Ok(()),
    }
}
