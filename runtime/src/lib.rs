//! `symbiont-runtime`: runs an agent inside a sandbox chosen by risk, with no ambient authority.
//! Every operation that leaves the sandbox arrives at the agent's [`broker`], which identifies the
//! agent by its connection, asks the policy engine, appends a signed audit entry and only then
//! acts on the host, within the allowed scope.
//!
//! It must never act before the audit entry for the act is durable, never fall back to weaker
//! isolation than the one chosen, never let an agent name itself (identity comes from the
//! connection), and never leave a container, socket or temporary directory behind.

pub mod auditor;
mod beneath;
pub mod broker;
pub mod bus;
pub mod config;
pub mod decision;
pub mod image;
pub mod leftovers;
pub mod lifecycle;
pub mod local;
mod locks;
pub mod parked;
pub mod pool;
pub mod retention;
pub mod risk;
pub mod runtime;
pub mod sandbox;
pub mod schedule;
pub mod scheduler;
mod util;

pub use crate::{
    auditor::Auditor,
    beneath::Workspace,
    config::{AgentConfig, Language, Limits, Tier},
    lifecycle::State,
    runtime::{AgentRuntime, RunError, RunReport},
    sandbox::{Output, OutputStream},
};
