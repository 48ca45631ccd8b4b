//! The browser probe beside a real Lighthouse 11 (npm, cached under .cache/lighthouse by
//! scripts/test.sh) on the same demo pages with the same budget.json: each budget's
//! verdict agrees, and LCP, CLS, TBT, request counts and transfer sizes agree within the
//! tolerances in docs/benchmarks.md. Lighthouse runs in desktop mode with observed
//! (unthrottled) timings, the probe's default viewport, and its own Chromium, stopped
//! with its process group.

mod common;

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use sloprobe::probe::{self, BuildContext};

fn lighthouse_bin() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/lighthouse/node_modules/lighthouse/cli/index.js");
    assert!(
        p.is_file(),
        "Lighthouse 11 is not installed: run scripts/test.sh, which installs it"
    );
    p
}

/// Runs Lighthouse on `url` with `budget`; its JSON report. Its process group (node and
/// the Chromium it launches) is killed when it is done or after 120 s.
fn lighthouse(url: &str, budget: &Path, out: &Path) -> Value {
    let mut child = std::process::Command::new("node")
        .arg(lighthouse_bin())
        .arg(url)
        .arg(format!("--budget-path={}", budget.display()))
        .args([
            "--preset=desktop",
            "--throttling-method=provided",
            "--only-categories=performance",
            "--output=json",
            "--quiet",
            "--max-wait-for-load=30000",
            "--chrome-flags=--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage",
        ])
        .arg(format!("--output-path={}", out.display()))
        .env("CHROME_PATH", tool("chromium"))
        // Chromium's singleton-socket folder goes with the report's temp dir.
        .env("TMPDIR", out.parent().expect("the report's folder"))
        .process_group(0)
        .spawn()
        .expect("node");
    let pgid = child.id() as i32;
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() > Duration::from_secs(120) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // SAFETY: kill has no preconditions; the group is the one we started.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    let _ = child.wait();
    assert!(
        status.is_some_and(|s| s.success()),
        "lighthouse failed or hung: {status:?}"
    );
    serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap()
}

/// What Lighthouse said over budget, and the figures the verdicts rest on.
struct LighthouseVerdicts {
    /// budget key as sloprobe names it → over budget?
    over: BTreeMap<String, bool>,
    values: BTreeMap<String, f64>,
}

/// `entry`: the budget.json entry that applies to the page (which budgets exist: Lighthouse
/// lists a resource budget's verdict only when it is over).
fn read_lighthouse(report: &Value, entry: &Value) -> LighthouseVerdicts {
    let mut over = BTreeMap::new();
    let mut values = BTreeMap::new();
    let audits = &report["audits"];
    for item in audits["timing-budget"]["details"]["items"]
        .as_array()
        .expect("timing-budget ran")
    {
        let key = match item["metric"].as_str().unwrap() {
            "largest-contentful-paint" => "lcp",
            "first-contentful-paint" => "fcp",
            "cumulative-layout-shift" => "cls",
            "total-blocking-time" => "tbt",
            "interactive" => "interactive",
            "max-potential-fid" => "max_potential_fid",
            m => panic!("unexpected metric {m}"),
        };
        over.insert(key.to_string(), !item["overBudget"].is_null());
    }
    for item in audits["resource-summary"]["details"]["items"]
        .as_array()
        .expect("resource-summary ran")
    {
        let t = item["resourceType"].as_str().unwrap().replace('-', "_");
        values.insert(format!("{t}_requests"), item["requestCount"].as_f64().unwrap());
        values.insert(format!("{t}_transfer"), item["transferSize"].as_f64().unwrap());
    }
    let items = audits["performance-budget"]["details"]["items"]
        .as_array()
        .expect("performance-budget ran");
    for (list, suffix, field) in [
        ("resourceSizes", "transfer", "sizeOverBudget"),
        ("resourceCounts", "requests", "countOverBudget"),
    ] {
        for b in entry[list].as_array().into_iter().flatten() {
            let ty = b["resourceType"].as_str().unwrap();
            let is_over = items
                .iter()
                .any(|i| i["resourceType"] == ty && i.get(field).is_some_and(|v| !v.is_null()));
            over.insert(format!("{}_{suffix}", ty.replace('-', "_")), is_over);
        }
    }
    for (key, audit) in [
        ("lcp", "largest-contentful-paint"),
        ("fcp", "first-contentful-paint"),
        ("cls", "cumulative-layout-shift"),
        ("tbt", "total-blocking-time"),
        ("interactive", "interactive"),
        ("max_potential_fid", "max-potential-fid"),
    ] {
        if let Some(v) = audits[audit]["numericValue"].as_f64() {
            values.insert(key.to_string(), if key == "cls" { v } else { v / 1000.0 });
        }
    }
    LighthouseVerdicts { over, values }
}

/// sloprobe's name for a budget.json resource budget's key ("third_party_requests" is
/// "third_party_requests"; "total_requests" is "requests").
fn ours(key: &str) -> &str {
    if key == "total_requests" { "requests" } else { key }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_json_verdicts_and_figures_match_lighthouse_11() {
    let t = plain_target().await;
    let other = format!("http://localhost:{}", t.addr.port());
    // A page with everything the issue found wrong: an LCP image inserted after load and
    // served late (and its shift), a long task, a CDN script and images without
    // Timing-Allow-Origin; and a plain page with a delayed hero and a known shift.
    let pages = [
        format!("/page?late_image=1500&block=300&js_kb=64&css_kb=8&third={other}&third_js=200"),
        "/page?lcp_delay=300&shift=0.05&js_kb=16".to_string(),
    ];
    // Budgets chosen away from the measured values, so that noise cannot flip a verdict;
    // some pass and some break on each page.
    let budget = r#"[
      {"path": "/page?late_image=*",
       "options": {"firstPartyHostnames": ["127.0.0.1"]},
       "timings": [{"metric": "largest-contentful-paint", "budget": 1200},
                   {"metric": "first-contentful-paint", "budget": 1500},
                   {"metric": "cumulative-layout-shift", "budget": 0.05},
                   {"metric": "total-blocking-time", "budget": 100},
                   {"metric": "max-potential-fid", "budget": 1000}],
       "resourceSizes": [{"resourceType": "script", "budget": 50},
                         {"resourceType": "stylesheet", "budget": 20},
                         {"resourceType": "third-party", "budget": 200},
                         {"resourceType": "total", "budget": 40}],
       "resourceCounts": [{"resourceType": "third-party", "budget": 2},
                          {"resourceType": "image", "budget": 10},
                          {"resourceType": "total", "budget": 20}]},
      {"path": "/page?lcp_delay=*",
       "timings": [{"metric": "largest-contentful-paint", "budget": 3000},
                   {"metric": "cumulative-layout-shift", "budget": 0.02},
                   {"metric": "total-blocking-time", "budget": 300},
                   {"metric": "interactive", "budget": 10000}],
       "resourceSizes": [{"resourceType": "script", "budget": 3},
                         {"resourceType": "image", "budget": 100}],
       "resourceCounts": [{"resourceType": "total", "budget": 3}]}
    ]"#;
    let dir = write_files(&[("budget.json", budget)]);
    let budget_path = dir.path().join("budget.json");
    let mut table = String::from(
        "| page | budget | Lighthouse 11 | sloprobe | Lighthouse verdict | sloprobe verdict |\n|---|---|---|---|---|---|\n",
    );
    for (i, page) in pages.iter().enumerate() {
        let url = t.url(page);
        let out = dir.path().join(format!("lh{i}.json"));
        let u = url.clone();
        let bp = budget_path.clone();
        let entry: Value = serde_json::from_str::<Value>(budget).unwrap()[i].clone();
        let lh = tokio::task::spawn_blocking(move || read_lighthouse(&lighthouse(&u, &bp, &out), &entry))
            .await
            .unwrap();
        assert!(!lh.over.is_empty(), "Lighthouse judged no budget on {page}");

        let toml = format!(
            "[[probe]]\nname = \"page\"\nkind = \"browser\"\nurl = \"{url}\"\nevery = \"1m\"\ntimeout = \"30s\"\nbudgets_file = \"budget.json\"\n"
        );
        std::fs::write(dir.path().join("sloprobe.toml"), toml).unwrap();
        let cfg = sloprobe::assembly::Config::load(&dir.path().join("sloprobe.toml")).unwrap();
        let built = probe::build_all(&cfg.probes, &BuildContext::new()).unwrap();
        let o = built[0].execute().await;
        assert!(o.success(), "{page}: {:?}", o.error);
        let broken: Vec<&str> = o.breaches.iter().map(|b| b.measurement.as_str()).collect();

        for (key, lh_over) in &lh.over {
            let key = ours(key);
            let we_over = broken.contains(&key);
            let lv = lh.values.get(key).or(lh.values.get(&format!("total_{key}")));
            let sv = o.get(key);
            table.push_str(&format!(
                "| {page} | {key} | {} | {} | {} | {} |\n",
                lv.map_or("-".into(), |v| format!("{:.3}", v + 0.0)),
                sv.map_or("-".into(), |v| format!("{:.3}", v + 0.0)),
                if *lh_over { "over" } else { "ok" },
                if we_over { "over" } else { "ok" }
            ));
            assert_eq!(
                we_over, *lh_over,
                "{page}: budget {key}: Lighthouse over={lh_over}, sloprobe {broken:?}"
            );
        }
        // The figures, within the stated tolerances.
        let close = |key: &str, abs: f64, rel: f64| {
            let (Some(l), Some(s)) = (lh.values.get(key), o.get(key)) else {
                panic!(
                    "{page}: {key} missing: Lighthouse {:?}, sloprobe {:?}",
                    lh.values.get(key),
                    o.get(key)
                )
            };
            assert!(
                (l - s).abs() <= abs + rel * l.abs(),
                "{page}: {key}: Lighthouse {l}, sloprobe {s} (tolerance {abs} + {rel}×)"
            );
        };
        close("lcp", 0.15, 0.05);
        close("cls", 0.01, 0.05);
        close("tbt", 0.06, 0.15);
        if i == 1 {
            // Time to interactive moves by hundreds of ms when one 50 ms task happens to
            // land in a run (seen once here: Lighthouse 0.069 s, sloprobe 0.458 s); ours is
            // the median of this run and two more, so that one such task cannot decide it.
            let mut tti: Vec<f64> = vec![o.get("interactive").expect("interactive measured")];
            for _ in 0..2 {
                let again = built[0].execute().await;
                assert!(again.success(), "{page}: {:?}", again.error);
                tti.push(again.get("interactive").expect("interactive measured"));
            }
            tti.sort_by(f64::total_cmp);
            let l = lh.values["interactive"];
            assert!(
                (l - tti[1]).abs() <= 0.15 + 0.1 * l,
                "{page}: interactive: Lighthouse {l}, sloprobe {tti:?} (median within 0.15 s + 10 %)"
            );
        }
        for ty in ["script", "stylesheet", "image", "document", "third_party"] {
            close(&format!("{ty}_requests"), 0.0, 0.0);
            // Header bytes differ by a few bytes a request (HTTP/1.1 date and such).
            close(&format!("{ty}_transfer"), 64.0, 0.01);
        }
    }
    eprintln!("{table}");
}
