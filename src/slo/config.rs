//! `[[slo]]` as written in the daemon file or probe files; `slo::resolve` checks it
//! against the probes and the RUM routes.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::{Dur, Spanned, ThresholdSchema};

/// A `[[slo]]` table as written (daemon file or probe files).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSlo {
    /// Unique SLO name (A-Z a-z 0-9 - _ .).
    pub name: Spanned<String>,
    /// The probes whose runs count toward this SLO.
    pub probes: Option<Spanned<Vec<String>>>,
    /// Instead of probes: RUM routes whose real page views count ("*" = every route).
    pub routes: Option<Spanned<Vec<String>>>,
    /// `success`, or a measurement (`ttfb`, `ttft`, ...) judged against `threshold`; with
    /// `routes`, a vital (`lcp`, `inp`, `cls`, ...).
    pub sli: Spanned<String>,
    /// For a measurement SLI: the good/bad line; defaults to the probes' per-run budget.
    #[schemars(with = "Option<ThresholdSchema>")]
    pub threshold: Option<Spanned<toml::Value>>,
    /// The target share of good runs, between 0 and 1 (e.g. 0.999).
    pub objective: Spanned<f64>,
    /// The SLO period (default 30d).
    #[serde(default = "default_slo_window")]
    pub window: Spanned<Dur>,
    /// Error types left out of a success SLI, e.g. `["rate_limited"]`.
    #[serde(default)]
    pub exclude_errors: Vec<Spanned<String>>,
    /// Labels on every rule and alert of this SLO, e.g. `{ team = "search" }` (routing).
    #[serde(default)]
    pub labels: BTreeMap<String, Spanned<String>>,
    /// Alert annotations, e.g. `{ runbook_url = "https://…", summary = "…" }`.
    #[serde(default)]
    pub annotations: BTreeMap<String, Spanned<String>>,
    /// The `severity` label of the two alert tiers (default "page" and "ticket").
    #[serde(default)]
    pub severity: SloSeverity,
    /// Page only when at least this many locations burn at once (multi-location quorum).
    pub min_locations: Option<Spanned<u32>>,
    /// Sloth's `service` label (`sloth_service`); default "sloprobe".
    pub service: Option<Spanned<String>>,
    /// "occurrences" (default: good runs or page views / all) or "timeslices" (good
    /// slices / all slices with data, OpenSLO's Timeslices: "bad minutes").
    pub budgeting: Option<Spanned<String>>,
    /// With timeslices: the slice length (default "1m").
    pub slice: Option<Spanned<Dur>>,
    /// With timeslices: the share of good events a slice needs to be good (OpenSLO's
    /// timeSliceTarget). For a measurement SLI, p95 ≤ threshold is `slice_target = 0.95`.
    pub slice_target: Option<Spanned<f64>>,
    /// Page only when the page window holds at least this many bad events (runs, page
    /// views or slices). Default: 2 when one bad event alone would cross a page threshold
    /// (a 1-minute probe at 99.9 %), else 1 (docs/slo.md).
    pub min_bad_events: Option<Spanned<u32>>,
}

/// A `[[error_budget]]`: a time-based budget shared by several time-slice SLOs. A slice
/// is in breach when any listed SLO's slice is bad; the budget is the breach time allowed
/// per period (e.g. 28,800 s a month), the freeze gate `sloprobe slo status` enforces.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawErrorBudget {
    /// Unique name (A-Z a-z 0-9 - _ .).
    pub name: Spanned<String>,
    /// The time-slice SLOs that spend it (all with the same `slice`).
    pub slos: Spanned<Vec<String>>,
    /// Breach time allowed per period, e.g. "28800s" or "8h".
    pub budget: Spanned<Dur>,
    /// The rolling period (default 30d).
    #[serde(default = "default_slo_window")]
    pub period: Spanned<Dur>,
    /// Labels on its rules and alerts, e.g. `{ team = "platform" }`.
    #[serde(default)]
    pub labels: BTreeMap<String, Spanned<String>>,
    /// Alert annotations, e.g. `{ runbook_url = "https://…" }`.
    #[serde(default)]
    pub annotations: BTreeMap<String, Spanned<String>>,
    /// The `severity` of its alerts (default "ticket").
    #[serde(default = "default_ticket")]
    pub severity: String,
}

/// `[slo.severity]`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SloSeverity {
    /// Severity of the fast-burn alert (default "page").
    #[serde(default = "default_page")]
    pub page: String,
    /// Severity of the slow-burn and no-data alerts (default "ticket").
    #[serde(default = "default_ticket")]
    pub ticket: String,
}

impl Default for SloSeverity {
    fn default() -> Self {
        SloSeverity {
            page: default_page(),
            ticket: default_ticket(),
        }
    }
}

fn default_page() -> String {
    "page".into()
}

fn default_ticket() -> String {
    "ticket".into()
}

fn default_slo_window() -> Spanned<Dur> {
    Spanned::new(0..0, Dur(Duration::from_secs(30 * 24 * 3600)))
}
