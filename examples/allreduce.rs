//! A ring all-reduce across N processes, one per device, over IPC memory and notifies: the
//! program to copy for collective code on Ascend (HCCL pairs every notify with IPC memory the
//! same way).
//!
//! ```text
//! cargo run --example allreduce -- 4 1000     # 4 processes, 1000 i64 each; checks the sums
//! cargo test --example allreduce              # the property test: random sizes and process counts
//! ```
//!
//! Each rank `r` holds `len` numbers and ends with the element-wise sum over all ranks. The
//! vector is cut into one chunk per rank; a reduce-scatter sends chunk `r - s` to the right
//! neighbour at step `s` (after `N - 1` steps rank `r` holds the total of chunk `r + 1`), and an
//! all-gather passes the totals around the ring. Per rank:
//!
//! - `inbox`: a device buffer its **left** neighbour writes into, through an IPC import (M5);
//! - `full`: a notify it creates and waits on (only a creator may wait, R4); the left neighbour
//!   records it on the same stream, after the copy into `inbox`;
//! - `empty`: a notify it creates for its **right** neighbour's inbox: the right neighbour
//!   records it when it has consumed what was written, so the inbox is never overwritten early.
//!
//! The device kernel that adds two chunks is a host function (H1) that works through copies:
//! on the simulator that is how a kernel is stood in for; on an NPU it would be a kernel launch
//! at the same place in the stream. Whitelists hold bare tgids (R16), never `getpid()`.

use std::collections::BTreeMap;
use std::sync::Arc;

use ascend_notify::backend_sim::role::{RoleProcess, RoleSpawner, StdioLink, child_role};
use ascend_notify::{
    DeviceId, Error, ExportFlags, ExportKey, ImportFlags, MallocPolicy, MemExportFlags,
    MemImportFlags, NotifyFlags, Pid, Result, Runtime, Timeout,
};

/// How long any one wait may take before the run counts as hung.
const WAIT: Timeout = Timeout::secs(20);
/// IPC memory is exported in whole pages (M3).
const PAGE: usize = 4096;

/// One rank's part of the ring: its inbox and notifies, and its neighbours' halves of theirs.
#[derive(Debug)]
pub struct Ring<'a> {
    device: &'a ascend_notify::Device,
    rank: usize,
    world: usize,
    /// Shared with the host functions that read it.
    inbox: Arc<ascend_notify::Buffer>,
    /// The right neighbour's inbox, imported.
    right_inbox: ascend_notify::MemImport,
    /// This rank's `full` (it waits) and the right neighbour's (it records).
    full: &'a ascend_notify::Notify,
    right_full: ascend_notify::Notify,
    /// `empty` of this rank's writes to the right (it waits), and the left's (it records).
    empty: &'a ascend_notify::Notify,
    left_empty: ascend_notify::Notify,
}

/// The chunk `c` of a vector of `len` numbers cut into `world` chunks: (first, count).
pub fn chunk(c: usize, world: usize, len: usize) -> (usize, usize) {
    let per = len.div_ceil(world);
    let first = (c * per).min(len);
    (first, per.min(len - first))
}

impl Ring<'_> {
    /// All-reduces `data` (this rank's `len` numbers on the device) in place, on `stream`.
    pub fn allreduce(
        &self,
        stream: &ascend_notify::Stream,
        data: &Arc<ascend_notify::Buffer>,
    ) -> Result<()> {
        let (w, r) = (self.world, self.rank);
        let len = data.len() / 8;
        // The right neighbour's inbox starts empty.
        stream.record(&self.left_empty)?;
        // Reduce-scatter: add the left's chunk into ours. All-gather: take the left's totals.
        for phase in [Phase::Reduce, Phase::Gather] {
            for s in 0..w - 1 {
                let send = match phase {
                    Phase::Reduce => (r + w - s) % w,
                    Phase::Gather => (r + 1 + w - s) % w,
                };
                let recv = (send + w - 1) % w;
                self.send(stream, data, send, len)?;
                self.receive(stream, data, recv, len, phase)?;
            }
        }
        stream.synchronize()
    }

    /// Copies chunk `c` of `data` into the right neighbour's inbox and tells it so.
    fn send(
        &self,
        stream: &ascend_notify::Stream,
        data: &ascend_notify::Buffer,
        c: usize,
        len: usize,
    ) -> Result<()> {
        let (first, count) = chunk(c, self.world, len);
        stream.wait(self.empty, WAIT)?;
        let src = data.as_range().slice(first * 8..(first + count) * 8)?;
        let dst = self.right_inbox.as_range().slice(..count * 8)?;
        stream.copy(dst, src)?;
        // On the same stream, after the copy: the right neighbour sees the bytes once it sees
        // the record.
        stream.record(&self.right_full)
    }

    /// Waits for the left neighbour's chunk `c` in the inbox, folds it into `data`, and frees
    /// the inbox for the left neighbour's next chunk.
    fn receive(
        &self,
        stream: &ascend_notify::Stream,
        data: &Arc<ascend_notify::Buffer>,
        c: usize,
        len: usize,
        phase: Phase,
    ) -> Result<()> {
        let (first, count) = chunk(c, self.world, len);
        stream.wait(self.full, WAIT)?;
        match phase {
            Phase::Reduce => {
                // The "kernel": data[chunk] += inbox, as a host function working through copies.
                let device = self.device.clone();
                let (inbox, data) = (Arc::clone(&self.inbox), Arc::clone(data));
                stream.launch_host_fn(move || {
                    if let Err(e) =
                        add_chunk(&device, inbox.as_range(), data.as_range(), first, count)
                    {
                        eprintln!("rank kernel failed: {e}");
                    }
                })?;
            }
            Phase::Gather => {
                let dst = data.as_range().slice(first * 8..(first + count) * 8)?;
                stream.copy(dst, self.inbox.as_range().slice(..count * 8)?)?;
            }
        }
        stream.record(&self.left_empty)
    }
}

#[derive(Copy, Clone, Debug)]
enum Phase {
    Reduce,
    Gather,
}

/// `target[first..first + count] += inbox[..count]`, through synchronous copies.
fn add_chunk(
    device: &ascend_notify::Device,
    inbox: ascend_notify::DeviceRange<'_>,
    target: ascend_notify::DeviceRange<'_>,
    first: usize,
    count: usize,
) -> Result<()> {
    if count == 0 {
        return Ok(());
    }
    let mut a = vec![0u8; count * 8];
    let mut b = vec![0u8; count * 8];
    let part = target.slice(first * 8..(first + count) * 8)?;
    device.copy_to_host(&mut a, inbox.slice(..count * 8)?)?;
    device.copy_to_host(&mut b, part)?;
    let sum: Vec<u8> = a
        .chunks_exact(8)
        .zip(b.chunks_exact(8))
        .flat_map(|(x, y)| {
            let x = i64::from_le_bytes(x.try_into().expect("8 bytes"));
            let y = i64::from_le_bytes(y.try_into().expect("8 bytes"));
            x.wrapping_add(y).to_le_bytes()
        })
        .collect();
    device.copy_from_host(part, &sum)
}

/// What rank `rank` of `world` contributes: a deterministic function of the seed, so the
/// launcher can compute the expected sums on the host.
pub fn contribution(seed: u64, rank: usize, len: usize) -> Vec<i64> {
    (0..len)
        .map(|i| {
            let x = seed ^ ((rank as u64) << 32) ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            (x.wrapping_mul(0xbf58_476d_1ce4_e5b9) >> 40) as i64 - (1 << 23)
        })
        .collect()
}

fn bytes_of(v: &[i64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn protocol(what: &str) -> Error {
    Error::new(ascend_notify::AclError::RT_INTERNAL_ERROR, what.to_owned())
}

/// One rank, in its own process: talks to the launcher over `link` (lines).
fn rank_process(link: &mut StdioLink) -> Result<()> {
    let plan = link.recv();
    let nums: Vec<u64> = plan.split(' ').filter_map(|w| w.parse().ok()).collect();
    let [rank, world, len, seed] = nums[..] else {
        return Err(protocol("bad plan"));
    };
    let (rank, world, len) = (rank as usize, world as usize, len as usize);
    let rt = Runtime::builder().build()?;
    let device = rt.device(DeviceId((rank % rt.device_count()? as usize) as i32))?;
    link.send(&format!("tgid {}", device.bare_tgid()?));
    // Every rank's bare tgid, from the launcher: neighbours whitelist each other.
    let tgids: Vec<Pid> = link
        .recv()
        .split(' ')
        .filter_map(|w| w.parse().ok().map(Pid))
        .collect();
    let (left, right) = ((rank + world - 1) % world, (rank + 1) % world);

    let chunk_bytes = (len.div_ceil(world) * 8).max(1);
    let inbox =
        Arc::new(device.alloc(chunk_bytes.next_multiple_of(PAGE), MallocPolicy::NormalOnly)?);
    let inbox_export = inbox.export(inbox.as_range(), MemExportFlags::DEFAULT)?;
    inbox_export.set_import_pids(&[tgids[left]])?;
    let full = device.create_notify(NotifyFlags::DEFAULT)?;
    let full_key = full.export(ExportFlags::DEFAULT)?;
    full.set_import_pid(tgids[left])?;
    let empty = device.create_notify(NotifyFlags::DEFAULT)?;
    let empty_key = empty.export(ExportFlags::DEFAULT)?;
    empty.set_import_pid(tgids[right])?;
    link.send(&format!(
        "keys {} {} {}",
        inbox_export.key(),
        full_key,
        empty_key
    ));
    // The launcher answers with the right neighbour's inbox and full, and the left's empty.
    let keys = link.recv();
    let keys: Vec<ExportKey> = keys.split(' ').map(|k| k.parse()).collect::<Result<_>>()?;
    let [right_inbox, right_full, left_empty] = &keys[..] else {
        return Err(protocol("bad keys"));
    };
    let ring = Ring {
        device: &device,
        rank,
        world,
        inbox: Arc::clone(&inbox),
        // Every rank's inbox has the same length, so this rank's tells it the right one's.
        right_inbox: device.import_memory(
            right_inbox,
            inbox_export.len(),
            MemImportFlags::ENABLE_PEER_ACCESS,
        )?,
        full: &full,
        right_full: device.import_notify(right_full, ImportFlags::ENABLE_PEER_ACCESS)?,
        empty: &empty,
        left_empty: device.import_notify(left_empty, ImportFlags::ENABLE_PEER_ACCESS)?,
    };
    let data = Arc::new(device.alloc((len * 8).max(8), MallocPolicy::HugeFirst)?);
    device.copy_from_host(data.as_range(), &bytes_of(&contribution(seed, rank, len)))?;
    link.send("ready");
    assert_eq!(link.recv(), "go", "the launcher starts every rank at once");
    let stream = device.create_stream()?;
    ring.allreduce(&stream, &data)?;
    let mut out = vec![0u8; len * 8];
    if len > 0 {
        device.copy_to_host(&mut out, data.as_range().slice(..len * 8)?)?;
    }
    let checksum: Vec<String> = out
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")).to_string())
        .collect();
    link.send(&format!("result {}", checksum.join(",")));
    // Nobody leaves before everyone has finished with the others' memory and notifies.
    assert_eq!(link.recv(), "bye");
    drop((ring, inbox_export));
    Ok(())
}

/// Runs a whole all-reduce: `world` ranks of `len` numbers, started with `spawner`. Returns
/// every rank's result.
pub fn run(spawner: &RoleSpawner, world: usize, len: usize, seed: u64) -> Result<Vec<Vec<i64>>> {
    let mut ranks: Vec<RoleProcess> = (0..world).map(|_| spawner.start("rank")).collect();
    for (r, p) in ranks.iter_mut().enumerate() {
        p.send(&format!("{r} {world} {len} {seed}"));
    }
    let tgids: Vec<String> = ranks
        .iter_mut()
        .map(|p| p.recv().trim_start_matches("tgid ").to_owned())
        .collect();
    for p in &mut ranks {
        p.send(&tgids.join(" "));
    }
    let keys: Vec<Vec<String>> = ranks
        .iter_mut()
        .map(|p| {
            p.recv()
                .trim_start_matches("keys ")
                .split(' ')
                .map(str::to_owned)
                .collect()
        })
        .collect();
    for (r, rank) in ranks.iter_mut().enumerate() {
        let (left, right) = ((r + world - 1) % world, (r + 1) % world);
        let line = format!("{} {} {}", keys[right][0], keys[right][1], keys[left][2]);
        rank.send(&line);
    }
    for p in &mut ranks {
        assert_eq!(p.recv(), "ready");
    }
    for p in &mut ranks {
        p.send("go");
    }
    let results: Vec<Vec<i64>> = ranks
        .iter_mut()
        .map(|p| {
            let line = p.recv();
            let nums = line.trim_start_matches("result").trim();
            nums.split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().expect("a number"))
                .collect()
        })
        .collect();
    for p in &mut ranks {
        p.send("bye");
    }
    let codes: BTreeMap<usize, i32> = ranks
        .into_iter()
        .enumerate()
        .map(|(r, p)| (r, p.wait_code()))
        .collect();
    if codes.values().any(|&c| c != 0) {
        return Err(protocol(&format!("a rank failed: exit codes {codes:?}")));
    }
    Ok(results)
}

/// The element-wise sum the ranks must all end with, computed on the host.
pub fn expected(world: usize, len: usize, seed: u64) -> Vec<i64> {
    let mut sum = vec![0i64; len];
    for r in 0..world {
        for (s, x) in sum.iter_mut().zip(contribution(seed, r, len)) {
            *s = s.wrapping_add(x);
        }
    }
    sum
}

fn main() {
    if child_role().as_deref() == Some("rank") {
        if let Err(e) = rank_process(&mut StdioLink) {
            eprintln!("[rank pid {}] failed: {e}", std::process::id());
            std::process::exit(1);
        }
        return;
    }
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let world = args.first().copied().unwrap_or(4);
    let len = args.get(1).copied().unwrap_or(1000);
    let ns = std::env::var("ASCEND_NOTIFY_SIM_NAMESPACE")
        .unwrap_or_else(|_| format!("allreduce-{}", std::process::id()));
    let spawner = RoleSpawner::program()
        .show_stderr()
        .env("ASCEND_NOTIFY_SIM_NAMESPACE", &ns);
    let started = std::time::Instant::now();
    match run(&spawner, world, len, 42) {
        Ok(results) => {
            let want = expected(world, len, 42);
            let ok = results.iter().all(|r| *r == want);
            println!(
                "allreduce: {world} processes x {len} i64 in {:.1} ms: {}",
                started.elapsed().as_secs_f64() * 1e3,
                if ok {
                    "every rank holds the sum computed on the host"
                } else {
                    "MISMATCH"
                }
            );
            let left = ascend_notify::backend_sim::namespace_files(&ns);
            if !ok || !left.is_empty() {
                eprintln!("left in /dev/shm: {left:?}");
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("allreduce failed: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod property {
    use super::*;
    use proptest::prelude::*;

    #[test]
    #[ignore = "entry point of spawned child processes"]
    fn child() {
        if child_role().as_deref() == Some("rank") {
            rank_process(&mut StdioLink).expect("the rank");
        }
    }

    #[test]
    fn chunks_cover_the_vector() {
        for (world, len) in [(1, 0), (2, 1), (3, 10), (4, 4), (5, 3), (7, 100)] {
            let mut covered = 0;
            for c in 0..world {
                let (first, count) = chunk(c, world, len);
                assert_eq!(first, covered.min(len), "{world} {len} chunk {c}");
                covered = first + count;
            }
            assert_eq!(covered, len);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

        /// Every rank ends with the element-wise sum over all ranks, for any size and any
        /// number of processes.
        #[test]
        fn every_rank_holds_the_host_sum(world in 2usize..=5, len in 0usize..3000, seed in any::<u64>()) {
            let ns = format!("t-allreduce-{}-{world}-{len}", std::process::id());
            let spawner = RoleSpawner::inherit("property::child")
                .env("ASCEND_NOTIFY_SIM_NAMESPACE", &ns)
                .env("ASCEND_NOTIFY_BACKEND", "sim");
            let results = run(&spawner, world, len, seed);
            let left = ascend_notify::backend_sim::namespace_files(&ns);
            let _ = ascend_notify::backend_sim::remove_namespace(&ns);
            let results = results.unwrap();
            let want = expected(world, len, seed);
            for (r, got) in results.iter().enumerate() {
                prop_assert_eq!(got, &want, "rank {}", r);
            }
            prop_assert!(left.is_empty(), "left in /dev/shm: {:?}", left);
        }
    }
}
