//! sloprobe: synthetic probes and RUM collection judged against performance budgets,
//! exported as OpenTelemetry metrics.
//!
//! Data flow: `config` → `schedule` → `probe` (over `net`) → `outcome` → `budget` →
//! `telemetry`; `rum` (the RUM collector) feeds the same telemetry. `daemon` wires them for `run`, `once` for the CI gate, `check` prints the plan.

/// The git revision this binary was built from (`unknown` outside a checkout).
pub const REVISION: &str = env!("SLOPROBE_REVISION");
/// The UTC date of the build.
pub const BUILD_DATE: &str = env!("SLOPROBE_BUILD_DATE");

pub mod artifacts;
pub mod assembly;
pub mod budget;
pub mod bundle;
pub mod check;
pub mod config;
pub mod control;
pub mod daemon;
pub mod demo;
pub mod fleet;
pub mod import;
pub mod multi_target;
pub mod net;
pub mod once;
pub mod outcome;
pub mod precise_timer;
pub mod probe;
pub mod redact;
pub mod rum;
pub mod runlog;
pub mod schedule;
pub mod server;
pub mod slo;
pub mod systemd;
pub mod telemetry;
pub mod trace;
pub mod web_security;
