//! The settle: after a page's load event, waiting until it has been quiet (no request in
//! flight, no long task) for a while, so what is read is what a user would have seen.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::network;
use super::session::{error as browser_error, session_lost};
use crate::outcome::ProbeError;

/// How often the settle looks at the page (a WebDriver round trip costs a few ms).
const SETTLE_POLL: Duration = Duration::from_millis(50);

/// Waits after the load event until the page has been quiet for the settle window:
/// no request in flight (DevTools; without it, no new Resource Timing entry) and no
/// long task, for `settle`, and at least `settle` after load. Gives up at
/// `settle_max` after load (or the run's deadline) and says what was still busy.
pub async fn settle(
    settle: Duration,
    settle_max: Duration,
    client: &fantoccini::Client,
    network: Option<&Mutex<network::Log>>,
    deadline: Instant,
) -> Result<Option<String>, ProbeError> {
    const POLL_JS: &str = "const s = window.__sloprobe; \
        return [s ? performance.now() - (s.lastBusy || 0) : 0, performance.getEntriesByType('resource').length];";
    let loaded = Instant::now();
    let ceiling = deadline.min(loaded + settle_max);
    let (mut entries, mut entries_changed) = (0u64, loaded);
    loop {
        // A long task under way holds this script until it ends: it is never missed.
        let (cpu_quiet, count) = match client.execute(POLL_JS, Vec::new()).await {
            Ok(Value::Array(a)) => (
                a.first().and_then(Value::as_f64).unwrap_or(0.0),
                a.get(1).and_then(Value::as_u64).unwrap_or(0),
            ),
            Err(e) if session_lost(&e) => return Err(browser_error("settling", e)),
            _ => (0.0, entries),
        };
        let now = Instant::now();
        if count != entries {
            (entries, entries_changed) = (count, now);
        }
        // A DevTools stream that broke says nothing more: Resource Timing then.
        let (net_quiet, in_flight) = match network.map(|n| n.lock().expect("network log")) {
            Some(log) if log.broken.is_none() => (log.quiet_for(now), log.in_flight()),
            _ => (now - entries_changed, 0),
        };
        let cpu_quiet = Duration::from_secs_f64((cpu_quiet / 1000.0).clamp(0.0, 3600.0));
        if now - loaded >= settle && net_quiet >= settle && cpu_quiet >= settle {
            return Ok(None);
        }
        if now >= ceiling {
            let mut busy = Vec::new();
            if net_quiet < settle {
                busy.push(format!("{in_flight} request(s) in flight"));
            }
            if cpu_quiet < settle {
                busy.push("long tasks".to_string());
            }
            return Ok(Some(format!(
                "not quiet for {} within {} of load: {}",
                humantime::format_duration(settle),
                humantime::format_duration(now - loaded),
                busy.join(", ")
            )));
        }
        tokio::time::sleep_until(ceiling.min(now + SETTLE_POLL).into()).await;
    }
}
