//! The keys of `kind = "browser"` (besides the shared ones); `mod.rs` builds the probe
//! from them.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use super::catalog::ScriptUnit;
use crate::config::{Dur, SecretText, Spanned};

/// The keys of `kind = "browser"` (besides the shared ones).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BrowserProbeSettings {
    /// http:// or https:// page to load.
    pub url: Spanned<String>,
    /// "cold": a fresh profile, nothing cached (default); "warm": load once, then measure a
    /// second load in the same profile.
    #[serde(default)]
    pub cache: CacheMode,
    /// Window and layout viewport, "WIDTHxHEIGHT" (default "1350x940"): CLS depends on it.
    pub viewport: Option<Spanned<String>>,
    /// "none" (default), "4g" or "3g": network emulation through chromedriver's CDP
    /// passthrough, with Lighthouse's throttling figures (docs/config.md).
    #[serde(default)]
    pub throttle: Throttle,
    /// Hosts counted as first party ("cdn.example.com", "*.example.com"); default: the
    /// page's own host.
    #[serde(default)]
    pub first_party_hosts: Vec<String>,
    /// How long the page must be quiet (no request in flight, no long task) after the
    /// load event before the metrics are read (default "1s"; docs/config.md).
    pub settle: Option<Spanned<Dur>>,
    /// The longest the settle waits for quiet after the load event (default "10s", within
    /// the run's timeout); a page still busy then is read as it is, marked `not_quiet`.
    pub settle_max: Option<Spanned<Dur>>,
    /// A JavaScript file (a function body, may return a Promise) returning {name: number};
    /// names declared in `script_metrics` are recorded.
    pub metrics_script: Option<Spanned<String>>,
    /// The numbers `metrics_script` returns, name → unit: "ms" (recorded in seconds),
    /// "bytes" or "count". Budgets can name them.
    #[serde(default)]
    pub script_metrics: BTreeMap<String, Spanned<ScriptUnit>>,
    /// A Lighthouse budget.json whose timings, resourceSizes and resourceCounts become
    /// budgets of this probe (keys in [probe.budget] win).
    pub budgets_file: Option<Spanned<String>>,
    /// Accept any TLS certificate (targets you control only).
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Which of the page's requests carry the run's `traceparent`: "first_party"
    /// (default; the `first_party_hosts`) or "all". `trace_context = false` sends none.
    #[serde(default)]
    pub trace_requests: TraceRequests,
    /// Steps: set a cookie before the measured load, or wait for an element after it.
    #[serde(default, rename = "step")]
    pub steps: Vec<StepConfig>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, serde::Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TraceRequests {
    #[default]
    FirstParty,
    All,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, serde::Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    #[default]
    Cold,
    Warm,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, serde::Serialize, JsonSchema, PartialEq, Eq)]
pub enum Throttle {
    #[default]
    #[serde(rename = "none")]
    None,
    #[serde(rename = "4g")]
    Slow4g,
    #[serde(rename = "3g")]
    Regular3g,
}

impl Throttle {
    /// (latency ms, download and upload bytes/s): Lighthouse's mobileSlow4G and
    /// mobileRegular3G, with its DevTools-throttling adjustments (latency × 3.75,
    /// throughput × 0.9).
    pub fn conditions(self) -> Option<(f64, f64, f64)> {
        let kbps = |k: f64| k * 1024.0 / 8.0;
        match self {
            Throttle::None => None,
            Throttle::Slow4g => Some((150.0 * 3.75, kbps(1.6 * 1024.0 * 0.9), kbps(750.0 * 0.9))),
            Throttle::Regular3g => Some((300.0 * 3.75, kbps(700.0 * 0.9), kbps(700.0 * 0.9))),
        }
    }
}

/// `[[probe.step]]`: one action, wait, assertion or mark of a journey, run in order after
/// the page at `url` has loaded and settled (docs/config.md, Browser journeys).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepConfig {
    /// The step's name: its timing's `step` label and budget key (1-32 of a-z A-Z 0-9 _;
    /// default "<action>_<n>", n counting from 1).
    pub name: Option<Spanned<String>>,
    /// The most this step may take (default: what is left of the run's timeout).
    pub timeout: Option<Spanned<Dur>>,
    /// A cookie for the page's URL, set before the measured load.
    pub set_cookie: Option<Spanned<CookieConfig>>,
    /// Navigate to this URL (absolute, or relative to `url`); the new page gets its own
    /// TTFB, FCP, LCP, CLS and bytes as "<step>.lcp" and so on.
    pub goto: Option<Spanned<String>>,
    /// Click the first element matching this CSS selector (a real pointer event).
    pub click: Option<Spanned<String>>,
    /// Type `value` into the first element matching this CSS selector (real key events).
    #[serde(rename = "type")]
    pub type_into: Option<Spanned<String>>,
    /// Press one key in the focused element: "Enter", "Tab", "Escape", "Backspace",
    /// "Space", "ArrowUp"/"ArrowDown"/"ArrowLeft"/"ArrowRight", or one character.
    pub press: Option<Spanned<String>>,
    /// Choose the <option> whose value is `value` in the <select> matching this selector.
    pub select: Option<Spanned<String>>,
    /// The text for `type`, the option for `select`, or what `assert_attribute`'s
    /// attribute must contain; for `type`, "env:NAME" or "file:PATH" is a secret, never shown.
    pub value: Option<Spanned<SecretText>>,
    /// Wait until an element matches this CSS selector.
    pub wait_for: Option<Spanned<String>>,
    /// Wait until the page's visible text contains this.
    pub wait_for_text: Option<Spanned<String>>,
    /// Wait until the page's URL contains this.
    pub wait_for_url: Option<Spanned<String>>,
    /// Wait until no request has been in flight for this long (network idle).
    pub wait_for_idle: Option<Spanned<Dur>>,
    /// Fail the run unless the page's visible text (or `selector`'s) contains this.
    pub assert_text: Option<Spanned<String>>,
    /// Fail the run unless the page's URL contains this.
    pub assert_url: Option<Spanned<String>>,
    /// Fail the run unless `selector`'s attribute of this name contains `value`.
    pub assert_attribute: Option<Spanned<String>>,
    /// The element `assert_text` and `assert_attribute` look at.
    pub selector: Option<Spanned<String>>,
    /// Record a named timing: from the start of the last action step (or `from`) to the
    /// frame where the wait before this mark was met. Budgetable by its name.
    pub mark: Option<Spanned<String>>,
    /// Wait for the first video frame presented by the <video> matching this selector and
    /// record it as "<step>" from the start of the last action step (or `from`).
    pub first_frame: Option<Spanned<String>>,
    /// For `mark` and `first_frame`: the step whose start the timing is taken from.
    pub from: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CookieConfig {
    pub name: String,
    /// The value; "env:NAME" or "file:PATH" is a secret and never logged.
    pub value: SecretText,
}
