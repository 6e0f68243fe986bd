//! The agent runtime against real sandboxes: dockerd (Tier 1), gVisor's runsc (Tier 2), and the
//! Firecracker API contract (Tier 3); and the inter-agent bus and scheduler, in process.

mod bus;
mod concurrent;
mod crash;
mod files;
mod firecracker;
mod geography;
mod image;
mod isolation;
mod limits;
mod retention;
pub(crate) mod sandbox;
mod schedules;
mod sdk;
mod secrets;
pub(crate) mod service;
mod signals;
mod talk;
mod tier3_image;
