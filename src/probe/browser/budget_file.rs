//! Lighthouse's budget.json as browser-probe budgets, so existing budgets come over as
//! they are: `timings` (milliseconds; CLS unitless), `resourceSizes` (KiB, as Lighthouse
//! counts them) and `resourceCounts`, per resource type. Of several entries whose `path`
//! matches the page, the last one wins, as in Lighthouse.

use serde::Deserialize;

use crate::budget::Threshold;
use crate::outcome::Measure;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    path: Option<String>,
    #[serde(default)]
    timings: Vec<Timing>,
    #[serde(default)]
    resource_sizes: Vec<Resource>,
    #[serde(default)]
    resource_counts: Vec<Resource>,
    #[allow(dead_code)]
    options: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Timing {
    metric: String,
    budget: f64,
    #[allow(dead_code)]
    tolerance: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Resource {
    resource_type: String,
    budget: f64,
}

/// The thresholds budget.json sets for a page at `path`.
pub fn thresholds(json: &[u8], path: &str, measures: &[&'static Measure]) -> Result<Vec<Threshold>, String> {
    let entries: Vec<Entry> = serde_json::from_slice(json).map_err(|e| format!("not a Lighthouse budget.json: {e}"))?;
    let Some(entry) = entries
        .iter()
        .rev()
        .find(|e| e.path.as_deref().is_none_or(|p| path_matches(p, path)))
    else {
        return Ok(Vec::new());
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
            "time-to-first-byte" | "server-response-time" => ("ttfb", 0.001),
            other => {
                return Err(format!(
                    "timing {other:?} is not measured by browser probes (they measure first-contentful-paint, largest-contentful-paint, cumulative-layout-shift, total-blocking-time, time-to-first-byte)"
                ));
            }
        };
        push(key, t.budget * scale, &format!("timing {:?}", t.metric))?;
    }
    for (list, unit, suffix, scale) in [
        (&entry.resource_sizes, "resourceSizes", "bytes", 1024.0),
        (&entry.resource_counts, "resourceCounts", "requests", 1.0),
    ] {
        for r in list {
            let key = match (r.resource_type.as_str(), suffix) {
                ("total", "requests") => "requests".to_string(),
                ("total", _) => "total_bytes".to_string(),
                ("third-party", s) => format!("third_party_{s}"),
                (t, s) if super::page::TYPES.contains(&t) => format!("{t}_{s}"),
                (t, _) => return Err(format!("{unit}: unknown resourceType {t:?}")),
            };
            push(&key, r.budget * scale, &format!("{unit} {:?}", r.resource_type))?;
        }
    }
    Ok(out)
}

/// Lighthouse's path patterns: a prefix, `*` for any run of characters, `$` at the end
/// to anchor.
fn path_matches(pattern: &str, path: &str) -> bool {
    let (pattern, anchored) = match pattern.strip_suffix('$') {
        Some(p) => (p, true),
        None => (pattern, false),
    };
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = path;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else { return false };
            rest = r;
        } else if i == parts.len() - 1 && anchored {
            return rest.ends_with(part);
        } else {
            let Some(at) = rest.find(part) else { return false };
            rest = &rest[at + part.len()..];
        }
    }
    !anchored || rest.is_empty() || parts.len() > 1 && parts.last() == Some(&"")
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
        let t = thresholds(json, "/dashboard", &measures()).unwrap();
        let get = |k: &str| t.iter().find(|t| t.key == k).map(|t| t.value);
        assert_eq!(get("lcp"), Some(2.5));
        assert_eq!(get("cls"), Some(0.1));
        assert_eq!(get("script_bytes"), Some(180.0 * 1024.0));
        assert_eq!(get("third_party_bytes"), Some(200.0 * 1024.0));
        assert_eq!(get("requests"), Some(60.0));
        // Another page gets the catch-all entry.
        let t = thresholds(json, "/orders", &measures()).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].value, 300.0 * 1024.0);
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        assert!(thresholds(b"{", "/", &measures()).unwrap_err().contains("budget.json"));
        let e = thresholds(
            br#"[{"timings": [{"metric": "speed-index", "budget": 1}]}]"#,
            "/",
            &measures(),
        )
        .unwrap_err();
        assert!(e.contains("speed-index"), "{e}");
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
        assert!(!path_matches("/shop", "/cart"));
    }
}
