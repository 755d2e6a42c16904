//! How a downstream crate property-tests its own multi-process code with the simulator.
//!
//! The code under test is a two-process hand-off (`producer` and `consumer` below): each round
//! the producer signals `ready`, and must not signal again before the consumer acknowledges on
//! `ack` — a notify is a binary flag, so two records before one wait merge into one (R1) and a
//! round would be lost. The property: for any number of rounds and any pacing, every round is
//! delivered exactly once, nobody hangs, and nothing is left in the registry.
//!
//! It is built as a test (`[[example]] test = true` in Cargo.toml), so `cargo test --features
//! testing --example downstream_proptest` runs it; the producer runs in a real child process,
//! started by re-executing this test binary with `RoleSpawner`.

use ascend_notify::prelude::*;
#[cfg(test)]
use ascend_notify::{
    BackendKind, DeviceId, Dyn, ExportFlags, ExportKey, ImportFlags, NotifyFlags, Runtime,
    testing::{RoleSpawner, ScopedNamespace, StdioLink, child_role},
};
use ascend_notify::{Result, Timeout, notify_api::Backend};

/// How long any single wait may take before the run counts as hung.
const WAIT: Timeout = Timeout::secs(2);

/// The consumer: waits on `ready` (it created it: only a creator may wait, R4), and runs
/// `rounds` rounds of wait(ready) → record(ack). Generic over the backend, as downstream code
/// is: it runs on the simulator in tests and on the NPU in production.
pub fn consumer<B: Backend>(
    device: &B::Device,
    ready: &B::Notify,
    ack: &B::Notify,
    rounds: u32,
    work_us: u64,
) -> Result<u32> {
    let stream = device.create_stream()?;
    let mut delivered = 0;
    for _ in 0..rounds {
        // The consumer's own work between rounds: a producer that does not wait for `ack`
        // outruns it, and its records merge (R1).
        std::thread::sleep(std::time::Duration::from_micros(work_us));
        stream.wait(ready, WAIT)?;
        if stream.synchronize().is_err() {
            // A lost round: report how many arrived instead of hanging the property.
            return Ok(delivered);
        }
        delivered += 1;
        stream.record(ack)?;
    }
    stream.synchronize()?;
    Ok(delivered)
}

/// The producer: each round records `ready`, then waits for `ack` before the next one.
pub fn producer<B: Backend>(
    device: &B::Device,
    ready: &B::Notify,
    ack: &B::Notify,
    rounds: u32,
    pause_us: u64,
) -> Result<()> {
    let stream = device.create_stream()?;
    for _ in 0..rounds {
        stream.record(ready)?;
        std::thread::sleep(std::time::Duration::from_micros(pause_us));
        stream.wait(ack, WAIT)?;
        stream.synchronize()?;
    }
    Ok(())
}

/// The child's side: attach, create `ack`, trade keys with the parent, produce.
#[cfg(test)]
fn producer_role() -> Result<()> {
    let mut link = StdioLink;
    let rt = Runtime::builder().backend(BackendKind::Sim).build()?;
    let device = rt.device(DeviceId(1))?;
    let ack = device.create_notify(NotifyFlags::DEFAULT)?;
    link.send(ack.export(ExportFlags::DISABLE_PID_VALIDATION)?.as_str());
    let ready_key: ExportKey = link.recv().parse()?;
    let ready = device.import_notify(&ready_key, ImportFlags::ENABLE_PEER_ACCESS)?;
    let plan = link.recv();
    let (rounds, pause_us) = plan.split_once(' ').expect("rounds and pause");
    producer::<Dyn>(
        &device,
        &ready,
        &ack,
        rounds.parse().unwrap(),
        pause_us.parse().unwrap(),
    )?;
    link.send("done");
    // Hold on to `ack` until the consumer has consumed its last record.
    let _ = link.recv();
    Ok(())
}

fn main() {
    println!("run me as a test: cargo test --features testing --example downstream_proptest");
}

#[test]
#[ignore = "entry point of spawned child processes"]
fn child() {
    if let Some(role) = child_role() {
        assert_eq!(role, "producer");
        producer_role().expect("the producer role");
    }
}

#[cfg(test)]
mod property {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

        /// Every round is delivered exactly once, for any round count and pacing.
        #[test]
        fn every_round_is_delivered_once(rounds in 1u32..12, pause_us in 0u64..300, work_us in 0u64..300) {
            let ns = ScopedNamespace::new("downstream");
            // Tests name the simulator explicitly: with the `ascend` feature also on, the
            // automatic choice would take any libascendcl.so it can load.
            let rt = Runtime::builder()
                .backend(BackendKind::Sim)
                .namespace(ns.name())
                .build()
                .unwrap();
            let device = rt.device(DeviceId(0)).unwrap();
            let ready = device.create_notify(NotifyFlags::DEFAULT).unwrap();
            let ready_key = ready.export(ExportFlags::DISABLE_PID_VALIDATION).unwrap();

            let mut peer = RoleSpawner::new("child", &ns).start("producer");
            let ack_key: ExportKey = peer.recv().parse().unwrap();
            let ack = device.import_notify(&ack_key, ImportFlags::ENABLE_PEER_ACCESS).unwrap();
            peer.send(ready_key.as_str());
            peer.send(&format!("{rounds} {pause_us}"));

            let delivered = consumer::<Dyn>(&device, &ready, &ack, rounds, work_us).unwrap();
            prop_assert_eq!(delivered, rounds);
            prop_assert_eq!(peer.recv(), "done");
            peer.send("bye");
            prop_assert_eq!(peer.wait_code(), 0);

            drop((ready, ack));
            let snap = ascend_notify::backend_sim::inspect::inspect(ns.name()).unwrap().unwrap();
            prop_assert!(snap.notifies.is_empty(), "left behind: {:?}", snap.notifies);
        }
    }
}
