//! The modelled processes that live in this OS process: one C process (this process's
//! `aclInit` session, through [`crate::cabi`]) and any number of typed ones (further attaches
//! through [`crate::typed`], each with a bare tgid of its own: `BareTgidMode::Remap`, R16).
//!
//! [`Local::run`] is the one loop both in-process drivers use: ask the model, lower the step,
//! run it through the process's driver, compare, and settle what it released.

use std::collections::BTreeMap;

use backend_sim::{BareTgidMode, SimBuilder};

use crate::harness::Symbols;
use crate::model::{Config, Expect, Model, Op, Proc, Unpredictable};
use crate::typed::TypedProcess;

/// Why a step was not run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    /// The model cannot predict it.
    Unpredictable(Unpredictable),
    /// Its driver cannot express it (the typed API, or a process event in this process).
    NotExpressible,
}

/// The modelled processes of this OS process (see the module docs).
#[derive(Debug)]
pub struct Local {
    /// The model.
    pub model: Model,
    /// What its symbols are here.
    pub syms: Symbols,
    ns: String,
    c_proc: Proc,
    typed: BTreeMap<Proc, TypedProcess>,
    /// The last steps, for reports.
    log: Vec<String>,
    trace: bool,
    /// How many steps of each kind ran, with which code.
    pub stats: BTreeMap<(&'static str, i32), u64>,
}

/// How many steps a report shows.
const LOG_TAIL: usize = 24;

impl Local {
    /// A world of `cfg.processes` processes in namespace `ns`, of which `c_proc` speaks the C
    /// ABI; none is initialized yet.
    pub fn new(ns: &str, cfg: Config, c_proc: Proc, trace: bool) -> Self {
        Self {
            model: Model::new(cfg),
            syms: Symbols::new(),
            ns: ns.to_owned(),
            c_proc,
            typed: BTreeMap::new(),
            log: Vec::new(),
            trace,
            stats: BTreeMap::new(),
        }
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// Attaches process `p` through the typed API (the model's `Init`), with a bare tgid of
    /// its own, and learns that tgid.
    ///
    /// # Errors
    /// If the attach or the model disagree.
    pub fn attach_typed(&mut self, p: Proc) -> Result<(), String> {
        let rt = SimBuilder::default()
            .namespace(&self.ns)
            .bare_tgid(BareTgidMode::Remap)
            .build()
            .map_err(|e| format!("attaching typed process {p}: {e}"))?;
        let e = self.model.apply(&Op::Init { p });
        assert_eq!(e.code, 0, "the model refuses to initialize process {p}");
        self.typed.insert(p, TypedProcess::new(rt));
        match self.run(&Op::BareTgid { p, null: false })? {
            Ok(_) => Ok(()),
            Err(skip) => Err(format!("typed process {p}: its bare tgid: {skip:?}")),
        }
    }

    /// Detaches typed process `p` (its runtime is dropped: the model's `Finalize`).
    ///
    /// # Errors
    /// If the model cannot predict the detach.
    pub fn detach_typed(&mut self, p: Proc) -> Result<(), String> {
        self.model
            .try_apply(&Op::Finalize { p })
            .map_err(|why| format!("detaching typed process {p}: {why:?}"))?;
        drop(self.typed.remove(&p));
        self.log.push(format!("P{p}: detach (drop the runtime)"));
        Ok(())
    }

    /// The typed process `p`.
    pub fn typed(&self, p: Proc) -> Option<&TypedProcess> {
        self.typed.get(&p)
    }

    /// Runs `op` if the model can predict it and its driver can express it; then runs what
    /// settles the model (the synchronize of a stream whose wait it released).
    ///
    /// # Errors
    /// What differs between the model and the real thing, with the last steps.
    pub fn run(&mut self, op: &Op) -> Result<Result<Expect, Skip>, String> {
        let r = self.run_one(op)?;
        if r.is_ok() {
            for settle in self.model.settle_ops() {
                match self.run_one(&settle)? {
                    Ok(_) => {}
                    Err(why) => {
                        return Err(
                            self.report(format!("harness: cannot settle with {settle:?}: {why:?}"))
                        );
                    }
                }
            }
        }
        Ok(r)
    }

    /// Runs `op` as [`Local::run`] does, but settles nothing after it.
    ///
    /// # Errors
    /// As [`Local::run`].
    pub fn run_exact(&mut self, op: &Op) -> Result<Result<Expect, Skip>, String> {
        self.run_one(op)
    }

    fn run_one(&mut self, op: &Op) -> Result<Result<Expect, Skip>, String> {
        let Some(p) = op.proc() else {
            return Ok(Err(Skip::NotExpressible));
        };
        if !self.syms.can_lower(op) {
            return Ok(Err(Skip::NotExpressible));
        }
        let mut next = self.model.clone();
        let expect = match next.try_apply(op) {
            Ok(e) => e,
            Err(why) => return Ok(Err(Skip::Unpredictable(why))),
        };
        let Some(call) = self.syms.lower(op) else {
            return Ok(Err(Skip::NotExpressible));
        };
        let reply = if p == self.c_proc {
            crate::cabi::run(&call)
        } else {
            let Some(t) = self.typed.get_mut(&p) else {
                return Ok(Err(Skip::NotExpressible));
            };
            if !t.expressible(&call) {
                return Ok(Err(Skip::NotExpressible));
            }
            t.run(&call)
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
        if self.trace {
            eprintln!("  {line}");
        }
        self.log.push(line);
        if self.log.len() > 4 * LOG_TAIL {
            self.log.drain(..self.log.len() - LOG_TAIL);
        }
        self.model = next;
        *self.stats.entry((op.kind(), expect.code)).or_default() += 1;
        self.syms
            .check(&self.model, op, &expect, &reply)
            .map_err(|e| self.report(e))?;
        Ok(Ok(expect))
    }

    /// Compares the registry with the model.
    ///
    /// # Errors
    /// What differs, with the last steps.
    pub fn check_registry(&self) -> Result<(), String> {
        let snap = backend_sim::inspect::inspect(&self.ns)
            .map_err(|e| self.report(format!("inspecting {}: {e}", self.ns)))?;
        self.syms
            .check_registry(&self.model, snap.as_ref())
            .map_err(|e| self.report(e))
    }

    /// `what`, with the last steps that led to it.
    pub fn report(&self, what: String) -> String {
        let tail = &self.log[self.log.len().saturating_sub(LOG_TAIL)..];
        format!("{what}\n  after:\n    {}", tail.join("\n    "))
    }
}
