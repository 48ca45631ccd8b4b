//! Lighthouse's budget.json as browser-probe budgets, read as Lighthouse 11 reads it, so
//! existing budgets come over as they are (Lighthouse 12 dropped the format; it is ours to
//! keep working):
//! - the entry is the last whose `path` matches the page's path and query (robots.txt
//!   style: a prefix, one `*`, `$` at the end);
//! - `timings` in milliseconds (CLS unitless): every metric Lighthouse 11 accepts, measured,
//!   or refused with the reason where sloprobe cannot measure it;
//! - `resourceSizes` in KiB judge transfer sizes (headers included), as Lighthouse does;
//!   `resourceCounts` judge requests;
//! - `options.firstPartyHostnames` decides what is third party.
//!
//! Beyond Lighthouse: `time-to-first-byte` (or `server-response-time`) is accepted.

use serde::Deserialize;

use crate::budget::Threshold;
use crate::outcome::Measure;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Entry {
    path: Option<String>,
    #[serde(default)]
    timings: Vec<Timing>,
    #[serde(default)]
    resource_sizes: Vec<Resource>,
    #[serde(default)]
    resource_counts: Vec<Resource>,
    options: Option<Options>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Options {
    first_party_hostnames: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Timing {
    metric: String,
    budget: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Resource {
    resource_type: String,
    budget: f64,
}

/// What budget.json says about one page.
#[derive(Debug, Default)]
pub struct PageBudgets {
    pub thresholds: Vec<Threshold>,
    /// `options.firstPartyHostnames` of the matching entry, as host patterns this probe
    /// understands (Lighthouse's "*.example.com" also means example.com itself).
    pub first_party: Option<Vec<String>>,
}

/// The budgets budget.json sets for the page at `path_and_query` ("/shop?page=2").
pub fn thresholds(json: &[u8], path_and_query: &str, measures: &[&'static Measure]) -> Result<PageBudgets, String> {
    let entries: Vec<Entry> = serde_json::from_slice(json).map_err(|e| format!("not a Lighthouse budget.json: {e}"))?;
    for (i, e) in entries.iter().enumerate() {
        if let Some(p) = &e.path {
            check_path(p).map_err(|why| format!("budget {i}: path {p:?}: {why}"))?;
        }
        for h in e
            .options
            .iter()
            .filter_map(|o| o.first_party_hostnames.as_ref())
            .flatten()
        {
            let bad = h.is_empty()
                || h.contains(['/', ':'])
                || (h.contains('*') && (!h.starts_with("*.") || h.rfind('*') != Some(0)));
            if bad {
                return Err(format!("budget {i}: {h:?} is not a valid hostname"));
            }
        }
    }
    let Some(entry) = entries
        .iter()
        .rev()
        .find(|e| path_matches(e.path.as_deref().unwrap_or("/"), path_and_query))
    else {
        return Ok(PageBudgets::default());
    };
    let mut out = Vec::new();
    let mut push = |key: &str, value: f64, what: &str| -> Result<(), String> {
        if !value.is_finite() || value < 0.0 {
            return Err(format!("{what}: budget must be a number of at least 0"));
        }
        let m = measures
            .iter()
            .find(|m| m.key == key)
            .ok_or_else(|| format!("{what} has no browser measurement"))?;
        out.retain(|t: &Threshold| t.key != m.key);
        out.push(Threshold {
            key: m.key,
            unit: m.unit,
            value,
        });
        Ok(())
    };
    for t in &entry.timings {
        let (key, scale) = match t.metric.as_str() {
            "first-contentful-paint" => ("fcp", 0.001),
            "largest-contentful-paint" => ("lcp", 0.001),
            "cumulative-layout-shift" => ("cls", 1.0),
            "total-blocking-time" => ("tbt", 0.001),
            "interactive" => ("interactive", 0.001),
            "max-potential-fid" => ("max_potential_fid", 0.001),
            "time-to-first-byte" | "server-response-time" => ("ttfb", 0.001),
            "speed-index" => {
                return Err("timing \"speed-index\" needs a filmstrip of screenshots, which browser probes do not record; budget largest-contentful-paint instead".into());
            }
            "first-meaningful-paint" => {
                return Err("timing \"first-meaningful-paint\": Chromium no longer reports it (Lighthouse 11 leaves it unmeasured and never judges it); budget largest-contentful-paint instead".into());
            }
            other => {
                return Err(format!(
                    "timing {other:?} is not a Lighthouse 11 metric (first-contentful-paint, largest-contentful-paint, cumulative-layout-shift, total-blocking-time, interactive, max-potential-fid; and time-to-first-byte)"
                ));
            }
        };
        push(key, t.budget * scale, &format!("timing {:?}", t.metric))?;
    }
    for (list, unit, suffix, scale) in [
        (&entry.resource_sizes, "resourceSizes", "transfer", 1024.0),
        (&entry.resource_counts, "resourceCounts", "requests", 1.0),
    ] {
        for r in list {
            let key = match (r.resource_type.as_str(), suffix) {
                ("total", "requests") => "requests".to_string(),
                ("total", s) => format!("total_{s}"),
                ("third-party", s) => format!("third_party_{s}"),
                (t, s) if super::page::TYPES.contains(&t) => format!("{t}_{s}"),
                (t, _) => return Err(format!("{unit}: unknown resourceType {t:?}")),
            };
            push(&key, r.budget * scale, &format!("{unit} {:?}", r.resource_type))?;
        }
    }
    let first_party = entry
        .options
        .as_ref()
        .and_then(|o| o.first_party_hostnames.as_ref())
        .map(|hosts| {
            hosts
                .iter()
                .flat_map(|h| match h.strip_prefix("*.") {
                    Some(domain) => vec![domain.to_ascii_lowercase(), h.to_ascii_lowercase()],
                    None => vec![h.to_ascii_lowercase()],
                })
                .collect()
        });
    Ok(PageBudgets {
        thresholds: out,
        first_party,
    })
}

/// Lighthouse's checks of a path: starts with "/", one `*` at most, `$` only at the end.
fn check_path(p: &str) -> Result<(), &'static str> {
    if !p.starts_with('/') {
        return Err("a path starts with '/'");
    }
    if p.matches('*').count() > 1 {
        return Err("a path has at most one '*'");
    }
    if p.matches('$').count() > 1 || (p.contains('$') && !p.ends_with('$')) {
        return Err("'$' may only end a path");
    }
    Ok(())
}

/// Lighthouse's path patterns (robots.txt style), matched against path and query.
fn path_matches(pattern: &str, url_path: &str) -> bool {
    match (pattern.split_once('*'), pattern.strip_suffix('$')) {
        (None, None) => url_path.starts_with(pattern),
        (None, Some(exact)) => url_path == exact,
        (Some((before, after)), None) => {
            url_path.starts_with(before) && url_path.get(before.len()..).is_some_and(|rest| rest.contains(after))
        }
        (Some((before, after)), Some(_)) => {
            let after = after.strip_suffix('$').unwrap_or(after);
            url_path.starts_with(before) && url_path.get(before.len()..).is_some_and(|rest| rest.ends_with(after))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::catalog::MEASURES;
    use super::*;

    fn measures() -> Vec<&'static Measure> {
        MEASURES.iter().collect()
    }

    #[test]
    fn lighthouse_budget_json_becomes_thresholds() {
        let json = br#"[
          {"path": "/*", "resourceSizes": [{"resourceType": "script", "budget": 300}]},
          {"path": "/dashboard", "timings": [{"metric": "largest-contentful-paint", "budget": 2500},
                                             {"metric": "cumulative-layout-shift", "budget": 0.1}],
           "resourceSizes": [{"resourceType": "script", "budget": 180}, {"resourceType": "third-party", "budget": 200}],
           "resourceCounts": [{"resourceType": "total", "budget": 60}]}
        ]"#;
        let t = thresholds(json, "/dashboard", &measures()).unwrap().thresholds;
        let get = |k: &str| t.iter().find(|t| t.key == k).map(|t| t.value);
        assert_eq!(get("lcp"), Some(2.5));
        assert_eq!(get("cls"), Some(0.1));
        // Sizes are transfer sizes, as Lighthouse judges them.
        assert_eq!(get("script_transfer"), Some(180.0 * 1024.0));
        assert_eq!(get("third_party_transfer"), Some(200.0 * 1024.0));
        assert_eq!(get("requests"), Some(60.0));
        // Another page gets the catch-all entry.
        let t = thresholds(json, "/orders", &measures()).unwrap().thresholds;
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].value, 300.0 * 1024.0);
    }

    #[test]
    fn lighthouse_11_timings_query_strings_and_first_party_hosts() {
        let json = br#"[
          {"path": "/", "timings": [{"metric": "interactive", "budget": 3000}, {"metric": "max-potential-fid", "budget": 100}]},
          {"path": "/search?q=*", "options": {"firstPartyHostnames": ["*.example.com", "cdn.example.net"]},
           "resourceCounts": [{"resourceType": "third-party", "budget": 2}]}
        ]"#;
        let home = thresholds(json, "/", &measures()).unwrap();
        let keys: Vec<_> = home.thresholds.iter().map(|t| (t.key, t.value)).collect();
        assert_eq!(keys, [("interactive", 3.0), ("max_potential_fid", 0.1)]);
        assert!(home.first_party.is_none());
        // The query string decides, as in Lighthouse.
        let search = thresholds(json, "/search?q=shoes", &measures()).unwrap();
        assert_eq!(search.thresholds[0].key, "third_party_requests");
        assert_eq!(
            search.first_party.unwrap(),
            ["example.com", "*.example.com", "cdn.example.net"]
        );
        assert!(thresholds(json, "/search", &measures()).unwrap().first_party.is_none());
        // Lighthouse 11's other timings are refused with the reason.
        for (metric, why) in [("speed-index", "screenshots"), ("first-meaningful-paint", "no longer")] {
            let file = format!(r#"[{{"timings": [{{"metric": "{metric}", "budget": 1}}]}}]"#);
            let e = thresholds(file.as_bytes(), "/", &measures()).unwrap_err();
            assert!(e.contains(metric) && e.contains(why), "{e}");
        }
        // What Lighthouse 11 rejects is rejected.
        for bad in [
            r#"[{"path": "shop"}]"#,
            r#"[{"path": "/a*b*c"}]"#,
            r#"[{"path": "/a$b"}]"#,
            r#"[{"options": {"firstPartyHostnames": ["a.com/x"]}}]"#,
            r#"[{"timings": [{"metric": "interactive", "budget": 1, "tolerance": 100}]}]"#,
            r#"[{"budgets": []}]"#,
        ] {
            assert!(thresholds(bad.as_bytes(), "/", &measures()).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        assert!(thresholds(b"{", "/", &measures()).unwrap_err().contains("budget.json"));
        let e = thresholds(
            br#"[{"timings": [{"metric": "first-input-delay", "budget": 1}]}]"#,
            "/",
            &measures(),
        )
        .unwrap_err();
        assert!(e.contains("first-input-delay"), "{e}");
        let e = thresholds(
            br#"[{"resourceSizes": [{"resourceType": "wasm", "budget": 1}]}]"#,
            "/",
            &measures(),
        )
        .unwrap_err();
        assert!(e.contains("wasm"), "{e}");
    }

    #[test]
    fn path_patterns() {
        assert!(path_matches("/", "/anything"));
        assert!(path_matches("/shop/*", "/shop/a/b"));
        assert!(path_matches("/*.html$", "/a/b.html"));
        assert!(!path_matches("/*.html$", "/a/b.html/x"));
        assert!(path_matches("/dashboard$", "/dashboard"));
        assert!(!path_matches("/dashboard$", "/dashboard/x"));
        assert!(!path_matches("/dashboard$", "/dashboard?tab=1"));
        assert!(path_matches("/dashboard", "/dashboard?tab=1"));
        assert!(path_matches("/*?tab=1$", "/dashboard?tab=1"));
        assert!(!path_matches("/shop", "/cart"));
    }
}
