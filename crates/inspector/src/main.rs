//! `ascend-notify-sim`: inspect, reclaim and remove simulator namespaces, and merge their
//! stream traces (SEMANTICS §4 "Diagnosis").
//!
//! It never creates a namespace and never attaches to one, so it never counts itself. Reading
//! changes nothing; dead processes are reclaimed (R9) only by `reclaim`. What it prints is made
//! by the `ascend_notify_sim` library; this file only parses the command line.

use std::error::Error;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use ascend_notify_sim::timeline::Timeline;
use ascend_notify_sim::{chrome, report, svg};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ascend-notify-sim",
    version,
    about = "Inspect and remove ascend-notify simulator namespaces, and merge their traces"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Live processes, notifies per device, waits, memory and the hazards of §5 seen.
    Status {
        /// The namespace (default: $ASCEND_NOTIFY_SIM_NAMESPACE, else the per-user default).
        #[arg(long)]
        namespace: Option<String>,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Every live notify (device, id, creator, holders, export state, whitelist), allocation
    /// and IPC memory export (with its whitelist and importers).
    List {
        /// The namespace (default: $ASCEND_NOTIFY_SIM_NAMESPACE, else the per-user default).
        #[arg(long)]
        namespace: Option<String>,
        /// JSON lines (each with a "type") instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Every wait queued or running now: who waits on which notify, since when, its timeout,
    /// and whether a live holder other than the waiter can still record it.
    Waits {
        /// The namespace (default: $ASCEND_NOTIFY_SIM_NAMESPACE, else the per-user default).
        #[arg(long)]
        namespace: Option<String>,
        /// One JSON object with a "waits" array instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Reclaims every dead process of a namespace (R9) and says how many there were; a namespace
    /// left with no live process is removed (§4 "Cleanup").
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
    /// Merges the trace files of a directory (written with ASCEND_NOTIFY_SIM_TRACE=DIR) into a
    /// Chrome trace event file (Perfetto, chrome://tracing) and/or an SVG timeline.
    Trace {
        /// The directory of trace-*.jsonl files.
        dir: PathBuf,
        /// Where to write the Chrome trace event JSON (`-` for stdout).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
        /// Where to write the timeline as an SVG picture.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
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

fn run(cli: Cli) -> Result<(), Box<dyn Error>> {
    match cli.command {
        Cmd::Status {
            namespace: ns,
            json,
        } => {
            let ns = namespace(ns);
            let snap = backend_sim::inspect::inspect(&ns)?;
            if json {
                println!("{}", report::status_json(&ns, snap.as_ref()));
            } else {
                print!("{}", report::status_text(&ns, snap.as_ref()));
            }
        }
        Cmd::List {
            namespace: ns,
            json,
        } => {
            let ns = namespace(ns);
            let snap = backend_sim::inspect::inspect(&ns)?.unwrap_or_default();
            let lines = if json {
                report::list_json(&snap)
            } else {
                report::list_text(&snap)
            };
            for line in lines {
                println!("{line}");
            }
        }
        Cmd::Waits {
            namespace: ns,
            json,
        } => {
            let ns = namespace(ns);
            let snap = backend_sim::inspect::inspect(&ns)?;
            if json {
                println!("{}", report::waits_json(&ns, snap.as_ref()));
            } else {
                print!("{}", report::waits_text(&ns, snap.as_ref()));
            }
        }
        Cmd::Reclaim { namespace: ns } => {
            let ns = namespace(ns);
            match backend_sim::inspect::reclaim(&ns)? {
                Some(n) if backend_sim::inspect::inspect(&ns)?.is_none() => println!(
                    "namespace {ns}: reclaimed {n} dead processes; none was left alive, so the \
                     namespace was removed"
                ),
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
        Cmd::Trace { dir, output, svg } => trace(&dir, output, svg)?,
    }
    Ok(())
}

fn trace(
    dir: &std::path::Path,
    output: Option<PathBuf>,
    svg_out: Option<PathBuf>,
) -> Result<(), Box<dyn Error>> {
    if output.is_none() && svg_out.is_none() {
        return Err("nothing to write: give -o FILE (or -o - for stdout) and/or --svg FILE".into());
    }
    let t = Timeline::from_dir(dir)?;
    let to_stdout = output.as_deref().is_some_and(|p| p.as_os_str() == "-");
    let mut wrote = Vec::new();
    if let Some(path) = &output {
        let text = serde_json::to_string(&chrome::render(&t))?;
        if to_stdout {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{text}")?;
            out.flush()?;
        } else {
            std::fs::write(path, text + "\n")
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            wrote.push(path.display().to_string());
        }
    }
    if let Some(path) = &svg_out {
        std::fs::write(path, svg::render(&t))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        wrote.push(path.display().to_string());
    }
    let tasks: usize = t.tracks.iter().map(|tr| tr.tasks.len()).sum();
    let summary = format!(
        "merged {} trace files: {} processes, {} streams, {tasks} tasks, {} releases{}",
        t.sources,
        t.pids().len(),
        t.tracks.len(),
        t.releases.len(),
        if wrote.is_empty() {
            String::new()
        } else {
            format!(" -> {}", wrote.join(", "))
        }
    );
    if to_stdout {
        eprintln!("{summary}");
    } else {
        println!("{summary}");
    }
    if !t.unmatched.is_empty() {
        eprintln!(
            "note: {} waits name a releasing record that no trace holds (a process that did not trace, or lost its last lines when killed)",
            t.unmatched.len()
        );
    }
    if let Some(first) = t.skipped.first() {
        eprintln!(
            "note: skipped {} lines that are not trace events (first: {first})",
            t.skipped.len()
        );
    }
    Ok(())
}
