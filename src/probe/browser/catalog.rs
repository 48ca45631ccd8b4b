//! The browser probe's measurement catalog: web vitals, page events, and requests and
//! bytes per resource type and party; `script_metrics` names add entries at load.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use schemars::JsonSchema;
use serde::Deserialize;

use crate::outcome::{Instrument, Measure, Unit};

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ScriptUnit {
    Ms,
    Bytes,
    Count,
}

const SYNTHETIC: &[(&str, &str)] = &[("user_agent.synthetic.type", "test")];

macro_rules! vital {
    ($key:literal, $unit:expr) => {
        crate::outcome::web_vital($key, concat!("browser.web_vital.", $key), $unit, SYNTHETIC, &[])
    };
}

macro_rules! res {
    ($t:literal, $party:literal, $what:literal, $metric:literal, $unit:expr, $desc:expr) => {
        Measure {
            key: concat!($t, "_", $party, "_party_", $what),
            metric: $metric,
            unit: $unit,
            instrument: Instrument::Gauge,
            description: $desc,
            fixed: &[("type", $t), ("party", $party)],
            labels: &[],
        }
    };
}

macro_rules! page_total {
    ($key:expr, $t:literal, $metric:literal, $unit:expr, $desc:expr) => {
        Measure {
            key: $key,
            metric: $metric,
            unit: $unit,
            instrument: Instrument::Gauge,
            description: $desc,
            fixed: &[("type", $t)],
            labels: &[],
        }
    };
}

const SIZE_DESC: &str = "Encoded (compressed) body bytes of the last run's resources, by type and party, as DevTools reported them; absent when a request's size is unknown (probe.browser.resource.unmeasured).";

const TRANSFER_DESC: &str = "Bytes on the wire (headers included, 0 from cache) of the last run's resources, by type and party: what Lighthouse's resourceSizes budgets judge.";

const REQUESTS_DESC: &str = "Requests of the last run, by resource type and party (favicon excluded).";

const PAGE_SIZE_DESC: &str = "Encoded body bytes of the last run by type, all parties; type=\"total\" and type=\"third_party\" sum over types. What `*_bytes` budgets judge; absent when a request's size is unknown.";

const PAGE_TRANSFER_DESC: &str = "Bytes on the wire (headers included, 0 from cache) of the last run by type, all parties; type=\"total\" and type=\"third_party\" sum over types. What `*_transfer` budgets and budget.json's resourceSizes judge.";

const PAGE_REQUESTS_DESC: &str =
    "Requests of the last run by type, all parties; type=\"total\" and type=\"third_party\" sum over types.";

macro_rules! catalog {
    ($($t:literal),*) => {
        &[
            vital!("ttfb", Unit::Seconds),
            vital!("fcp", Unit::Seconds),
            vital!("lcp", Unit::Seconds),
            vital!("cls", Unit::Score),
            vital!("inp", Unit::Seconds),
            Measure {
                key: "dom_content_loaded",
                metric: "probe.browser.page.event",
                unit: Unit::Seconds,
                instrument: Instrument::Mean,
                description: "Navigation start to a page event (DOMContentLoaded, load). Count and sum only: the mean.",
                fixed: &[("event", "dom_content_loaded")],
                labels: &[],
            },
            Measure {
                key: "load",
                metric: "probe.browser.page.event",
                unit: Unit::Seconds,
                instrument: Instrument::Mean,
                description: "Navigation start to a page event (DOMContentLoaded, load). Count and sum only: the mean.",
                fixed: &[("event", "load")],
                labels: &[],
            },
            Measure {
                key: "tbt",
                metric: "probe.browser.total_blocking_time",
                unit: Unit::Seconds,
                instrument: Instrument::Histogram,
                description: "Total blocking time: the part over 50 ms of every long task between FCP and time to interactive (or the end of the settle, when no interactive window was seen), as Lighthouse.",
                fixed: &[],
                labels: &[],
            },
            Measure {
                key: "interactive",
                metric: "probe.browser.interactive",
                unit: Unit::Seconds,
                instrument: Instrument::Histogram,
                description: "Time to interactive, Lighthouse's observed algorithm: the start of the first 5 s window after FCP with no long task and at most two requests in flight. Unmeasured unless the settle saw such a window (a budget on it makes the settle wait 5 s of quiet).",
                fixed: &[],
                labels: &[],
            },
            Measure {
                key: "max_potential_fid",
                metric: "probe.browser.max_potential_fid",
                unit: Unit::Seconds,
                instrument: Instrument::Histogram,
                description: "The longest main-thread task after FCP (Lighthouse's max potential FID); 50 ms, an upper bound, when no task reached 50 ms.",
                fixed: &[],
                labels: &[],
            },
            Measure {
                key: "js_errors",
                metric: "probe.browser.js_errors",
                unit: Unit::Count,
                instrument: Instrument::Gauge,
                description: "Uncaught script errors and unhandled rejections in the last run's page.",
                fixed: &[],
                labels: &[],
            },
            Measure {
                key: "memory",
                metric: "probe.browser.memory",
                unit: Unit::Bytes,
                instrument: Instrument::Gauge,
                description: "Proportional set size of all of the run's Chromium processes after the page settled (local chromedriver only).",
                fixed: &[],
                labels: &[],
            },
            Measure {
                key: "browser_start",
                metric: "probe.browser.start.duration",
                unit: Unit::Seconds,
                instrument: Instrument::Mean,
                description: "Run start to a tab ready for the page: waiting for a browser slot, the memory floor, the chromedriver health check, and a browser launch when none was ready.",
                fixed: &[],
                labels: &[],
            },
            Measure {
                key: "unmeasured_requests",
                metric: "probe.browser.resource.unmeasured",
                unit: Unit::Count,
                instrument: Instrument::Gauge,
                description: "Requests of the last run whose size the browser could not report (still loading when the page was read, beyond the request cap, or, without DevTools, cross-origin without Timing-Allow-Origin): counted as requests; the byte totals they belong to are then absent, never short.",
                fixed: &[],
                labels: &[],
            },
            page_total!("total_bytes", "total", "probe.browser.page.size", Unit::Bytes, PAGE_SIZE_DESC),
            page_total!("third_party_bytes", "third_party", "probe.browser.page.size", Unit::Bytes, PAGE_SIZE_DESC),
            page_total!("requests", "total", "probe.browser.page.requests", Unit::Count, PAGE_REQUESTS_DESC),
            page_total!("third_party_requests", "third_party", "probe.browser.page.requests", Unit::Count, PAGE_REQUESTS_DESC),
            page_total!("total_transfer", "total", "probe.browser.page.transfer_size", Unit::Bytes, PAGE_TRANSFER_DESC),
            page_total!("third_party_transfer", "third_party", "probe.browser.page.transfer_size", Unit::Bytes, PAGE_TRANSFER_DESC),
            $(
                page_total!(concat!($t, "_bytes"), $t, "probe.browser.page.size", Unit::Bytes, PAGE_SIZE_DESC),
                page_total!(concat!($t, "_requests"), $t, "probe.browser.page.requests", Unit::Count, PAGE_REQUESTS_DESC),
                page_total!(concat!($t, "_transfer"), $t, "probe.browser.page.transfer_size", Unit::Bytes, PAGE_TRANSFER_DESC),
                res!($t, "first", "bytes", "probe.browser.resource.size", Unit::Bytes, SIZE_DESC),
                res!($t, "first", "transfer", "probe.browser.resource.transfer_size", Unit::Bytes, TRANSFER_DESC),
                res!($t, "first", "requests", "probe.browser.resource.requests", Unit::Count, REQUESTS_DESC),
                res!($t, "third", "bytes", "probe.browser.resource.size", Unit::Bytes, SIZE_DESC),
                res!($t, "third", "transfer", "probe.browser.resource.transfer_size", Unit::Bytes, TRANSFER_DESC),
                res!($t, "third", "requests", "probe.browser.resource.requests", Unit::Count, REQUESTS_DESC),
            )*
        ]
    };
}

pub const MEASURES: &[Measure] = catalog!("document", "script", "stylesheet", "image", "font", "media", "other");

/// The catalog key for a name built at run time (`script_third_party_bytes`).
pub fn key(name: &str) -> Option<&'static str> {
    MEASURES.iter().find(|m| m.key == name).map(|m| m.key)
}

/// A `script_metrics` name's catalog entry, made once per distinct (name, unit).
pub fn script_measure(name: &str, unit: ScriptUnit) -> &'static Measure {
    static MADE: OnceLock<Mutex<BTreeMap<(String, u8), &'static Measure>>> = OnceLock::new();
    let mut made = MADE.get_or_init(Mutex::default).lock().expect("script measures");
    made.entry((name.to_string(), unit as u8)).or_insert_with(|| {
        let key: &'static str = Box::leak(name.to_string().into_boxed_str());
        let fixed: &'static [(&'static str, &'static str)] = Box::leak(Box::new([("name", key)]));
        let (metric, unit, instrument, description) = match unit {
            ScriptUnit::Ms => (
                "probe.browser.script.duration",
                Unit::Seconds,
                Instrument::Histogram,
                "A time returned by the probe's metrics_script (milliseconds there, seconds here), by name.",
            ),
            ScriptUnit::Bytes => (
                "probe.browser.script.size",
                Unit::Bytes,
                Instrument::Gauge,
                "A size returned by the probe's metrics_script, by name.",
            ),
            ScriptUnit::Count => (
                "probe.browser.script.value",
                Unit::Count,
                Instrument::Gauge,
                "A number returned by the probe's metrics_script, by name.",
            ),
        };
        Box::leak(Box::new(Measure {
            key,
            metric,
            unit,
            instrument,
            description,
            fixed,
            labels: &[],
        }))
    })
}
