//! `ascend-notify-sim`: inspect, reclaim and remove simulator namespaces.
//!
//! It never creates a namespace and never attaches to one, so it never counts itself. Reading
//! changes nothing; dead processes are reclaimed (R9) only by `reclaim`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ascend-notify-sim",
    version,
    about = "Inspect and remove ascend-notify simulator namespaces"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Live processes and notifies per device.
    Status {
        /// The namespace (default: $ASCEND_NOTIFY_SIM_NAMESPACE, else the per-user default).
        #[arg(long)]
        namespace: Option<String>,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Every live notify: device, id, creator, holders, export state, whitelist.
    List {
        /// The namespace (default: $ASCEND_NOTIFY_SIM_NAMESPACE, else the per-user default).
        #[arg(long)]
        namespace: Option<String>,
        /// JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Reclaims every dead process of a namespace (R9) and says how many there were.
    Reclaim {
        /// The namespace (default: $ASCEND_NOTIFY_SIM_NAMESPACE, else the per-user default).
        #[arg(long)]
        namespace: Option<String>,
    },
    /// Removes a namespace's segment and lock files.
    Remove {
        /// The namespace to remove.
        #[arg(long)]
        namespace: String,
    },
}

fn namespace(ns: Option<String>) -> String {
    ns.or_else(|| std::env::var(backend_sim::ENV_NAMESPACE).ok())
        .unwrap_or_else(backend_sim::default_namespace)
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ascend-notify-sim: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> notify_api::Result<()> {
    match cli.command {
        Cmd::Status {
            namespace: ns,
            json,
        } => {
            let ns = namespace(ns);
            let snap = backend_sim::inspect::inspect(&ns)?;
            let exists = snap.is_some();
            let snap = snap.unwrap_or_default();
            let mut per_device = vec![0u32; snap.devices as usize];
            for n in &snap.notifies {
                if let Some(c) = per_device.get_mut(n.device as usize) {
                    *c += 1;
                }
            }
            let alive: Vec<i32> = snap
                .processes
                .iter()
                .filter(|p| p.alive)
                .map(|p| p.tgid)
                .collect();
            let dead: Vec<i32> = snap
                .processes
                .iter()
                .filter(|p| !p.alive)
                .map(|p| p.tgid)
                .collect();
            if json {
                let value = serde_json::json!({
                    "namespace": ns,
                    "exists": exists,
                    "processes": alive.len(),
                    "dead_processes": dead.len(),
                    "notifies": snap.notifies.len(),
                    "devices": snap.devices,
                    "capacity": snap.capacity,
                    "max_processes": snap.max_processes,
                    "pids": alive,
                    "dead_pids": dead,
                    "notifies_per_device": per_device,
                });
                println!("{value}");
            } else if !exists {
                println!("namespace {ns}: does not exist");
            } else {
                println!(
                    "namespace {ns}: {} live processes {alive:?}, {} notifies ({} devices x {} slots)",
                    alive.len(),
                    snap.notifies.len(),
                    snap.devices,
                    snap.capacity
                );
                if !dead.is_empty() {
                    println!(
                        "  {} dead processes not reclaimed yet {dead:?} (run `reclaim`)",
                        dead.len()
                    );
                }
                for (device, count) in per_device.iter().enumerate().filter(|(_, c)| **c > 0) {
                    println!("  device {device}: {count} notifies");
                }
            }
        }
        Cmd::List {
            namespace: ns,
            json,
        } => {
            let ns = namespace(ns);
            let snap = backend_sim::inspect::inspect(&ns)?.unwrap_or_default();
            for n in &snap.notifies {
                if json {
                    println!("{}", serde_json::to_string(n).unwrap_or_default());
                } else {
                    let creator = n
                        .creator
                        .map_or_else(|| "gone".to_owned(), |p| p.to_string());
                    println!(
                        "device {} id {}: creator {creator}, holders {:?}, exported {}, whitelist {:?}, flag {}",
                        n.device,
                        n.id,
                        n.holders,
                        n.exported,
                        n.whitelist,
                        u8::from(n.flag)
                    );
                }
            }
        }
        Cmd::Reclaim { namespace: ns } => {
            let ns = namespace(ns);
            match backend_sim::inspect::reclaim(&ns)? {
                Some(n) => println!("namespace {ns}: reclaimed {n} dead processes"),
                None => println!("namespace {ns}: does not exist"),
            }
        }
        Cmd::Remove { namespace: ns } => {
            let existed = backend_sim::remove_namespace(&ns)?;
            println!(
                "namespace {ns}: {}",
                if existed { "removed" } else { "did not exist" }
            );
        }
    }
    Ok(())
}
