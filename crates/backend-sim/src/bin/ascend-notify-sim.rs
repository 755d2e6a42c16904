//! `ascend-notify-sim`: inspect and remove simulator namespaces.
//!
//! It never creates a namespace and never attaches to one, so it never counts itself; running it
//! reclaims the references of dead processes (R9) as a side effect.

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
            let snap = backend_sim::inspect(&ns)?;
            let exists = snap.is_some();
            let snap = snap.unwrap_or_default();
            let mut per_device = vec![0u32; snap.devices as usize];
            for n in &snap.notifies {
                if let Some(c) = per_device.get_mut(n.device as usize) {
                    *c += 1;
                }
            }
            if json {
                let value = serde_json::json!({
                    "namespace": ns,
                    "exists": exists,
                    "processes": snap.processes.len(),
                    "notifies": snap.notifies.len(),
                    "devices": snap.devices,
                    "capacity": snap.capacity,
                    "pids": snap.processes,
                    "notifies_per_device": per_device,
                });
                println!("{value}");
            } else if !exists {
                println!("namespace {ns}: does not exist");
            } else {
                println!(
                    "namespace {ns}: {} live processes {:?}, {} notifies ({} devices x {} slots)",
                    snap.processes.len(),
                    snap.processes,
                    snap.notifies.len(),
                    snap.devices,
                    snap.capacity
                );
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
            let snap = backend_sim::inspect(&ns)?.unwrap_or_default();
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
