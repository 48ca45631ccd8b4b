//! `sloprobe slo status --prometheus URL`: the freeze gate. Reads what the generated rules
//! record (`sloprobe slo rules`) from a running Prometheus over its HTTP API and prints,
//! per SLO and per shared error budget, the objective, what is spent and left, and the
//! burn rate. Exit 0: every budget has room; 1: a budget is spent; 2: Prometheus could not
//! answer, a rule is missing, or a figure has no evidence yet (an empty period is never a
//! pass). The request goes over the daemon's own timed HTTP path, with the body capped.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{self, HeaderName, HeaderValue};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};

use super::{Budgeting, ErrorBudget, Slo, num, prom_duration};
use crate::config::Secret;
use crate::net::{self, http as nethttp};
use crate::outcome::Recorder;

/// A query answer larger than this is refused (a status query returns a few series).
const MAX_ANSWER: usize = 8 * 1024 * 1024;

/// How `slo status` reaches Prometheus.
pub struct Target {
    pub url: url::Url,
    /// The `Authorization` header value, kept secret.
    pub authorization: Option<Secret>,
    pub timeout: Duration,
    pub ca_file: Option<std::path::PathBuf>,
}

/// What one figure read.
#[derive(Debug, Clone, PartialEq)]
enum Figure {
    Value(f64),
    /// The rules are loaded but the window holds no event yet.
    NoEvidence,
}

/// Where the gate stands for one SLO or budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    Within,
    Unknown,
    Spent,
}

impl Verdict {
    fn word(self) -> &'static str {
        match self {
            Verdict::Within => "ok",
            Verdict::Unknown => "unknown",
            Verdict::Spent => "SPENT",
        }
    }
}

struct Client {
    target: Target,
    tls: Arc<rustls::ClientConfig>,
    resolver: net::Resolver,
}

impl Client {
    /// One instant query; the series it returns as (labels, value).
    async fn query(&self, promql: &str) -> Result<Vec<(Value, f64)>, String> {
        let mut url = self.target.url.clone();
        let path = format!("{}/api/v1/query", url.path().trim_end_matches('/'));
        url.set_path(&path);
        url.query_pairs_mut().clear().append_pair("query", promql);
        let exchange = async {
            let mut rec = Recorder::new(Instant::now());
            let mut conn = nethttp::open(&self.resolver, &mut rec, &url, &self.tls, None, nethttp::Version::Http1)
                .await
                .map_err(|e| e.message)?;
            let mut headers = vec![(header::ACCEPT, HeaderValue::from_static("application/json"))];
            if let Some(a) = &self.target.authorization {
                let mut v =
                    HeaderValue::from_str(a.expose()).map_err(|_| "the credential is not a valid header value")?;
                v.set_sensitive(true);
                headers.push((HeaderName::from_static("authorization"), v));
            }
            let req = nethttp::build_request(
                &url,
                &http::Method::GET,
                &headers,
                &nethttp::BodySpec::Empty,
                conn.is_h2(),
                false,
            )
            .map_err(|e| e.message)?;
            let (resp, _) = conn.exchange(&mut rec, req).await.map_err(|e| e.message)?;
            let status = resp.status();
            let mut body = resp.into_body();
            let mut bytes = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| format!("reading the answer: {e}"))?;
                if let Some(data) = frame.data_ref() {
                    if bytes.len() + data.len() > MAX_ANSWER {
                        return Err(format!("the answer is over {} MiB", MAX_ANSWER >> 20));
                    }
                    bytes.extend_from_slice(data);
                }
            }
            Ok::<_, String>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(self.target.timeout, exchange)
            .await
            .map_err(|_| format!("no answer within {}", humantime::format_duration(self.target.timeout)))??;
        let v: Value =
            serde_json::from_slice(&bytes).map_err(|_| format!("HTTP {status}: not a Prometheus API answer"))?;
        if v["status"] != "success" {
            // Server text on one line, bounded, control characters escaped.
            let why: String = v["error"]
                .as_str()
                .unwrap_or("no reason given")
                .chars()
                .take(200)
                .collect();
            return Err(format!("HTTP {status}: {}", crate::redact::text(&why).escape_debug()));
        }
        let result = v["data"]["result"].as_array().ok_or("the answer has no result list")?;
        Ok(result
            .iter()
            .filter_map(|r| {
                let value: f64 = r["value"][1].as_str()?.parse().ok()?;
                Some((r["metric"].clone(), value))
            })
            .collect())
    }

    /// The highest value of `promql` over its series (the worst location), or no evidence.
    async fn figure(&self, promql: &str) -> Result<Figure, String> {
        let worst = self
            .query(promql)
            .await?
            .into_iter()
            .map(|(_, v)| v)
            .filter(|v| !v.is_nan())
            .reduce(f64::max);
        Ok(worst.map_or(Figure::NoEvidence, Figure::Value))
    }

    async fn require(&self, promql: &str, what: &str) -> Result<(), String> {
        if self.query(promql).await?.is_empty() {
            return Err(format!(
                "no {what} in Prometheus: load the rules of `sloprobe slo rules` (and check the scrape)"
            ));
        }
        Ok(())
    }
}

fn pct(v: f64) -> String {
    format!("{}%", num((v * 100.0 * 100.0).round() / 100.0))
}

fn shown(f: &Figure, format: impl Fn(f64) -> String) -> String {
    match f {
        Figure::Value(v) => format(*v),
        Figure::NoEvidence => "no data".to_string(),
    }
}

fn as_json(f: &Figure) -> Value {
    match f {
        Figure::Value(v) => json!(v),
        Figure::NoEvidence => Value::Null,
    }
}

/// Reads every SLO and error budget and writes the report; returns the exit code.
pub async fn run(slos: &[Slo], budgets: &[ErrorBudget], target: Target, as_json_lines: bool, out: &mut String) -> i32 {
    let tls = match net::tls::client_config(target.ca_file.as_deref(), false, &[b"http/1.1"]) {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(out, "error: TLS setup: {e}");
            return 2;
        }
    };
    let client = Client {
        target,
        tls,
        resolver: net::dns::system_resolver(),
    };
    let mut worst = Verdict::Within;
    let mut slo_rows = Vec::new();
    let mut table = String::new();
    if !slos.is_empty() {
        let _ = writeln!(
            table,
            "{:<28} {:>10} {:>6} {:>12} {:>12} {:>10} {:>10}  status",
            "SLO", "objective", "period", "error ratio", "budget used", "left", "burn now"
        );
    }
    for slo in slos {
        let id = format!("sloth_id=\"{}-{}\"", slo.service, slo.name);
        let period = prom_duration(slo.window);
        let read = async {
            client
                .require(
                    &format!("slo:objective:ratio{{{id}}}"),
                    &format!("rules for SLO {:?}", slo.name),
                )
                .await?;
            // The worst location decides: each location has the whole budget.
            let ratio = client
                .figure(&format!("slo:sli_error:ratio_rate{period}{{{id}}}"))
                .await?;
            let burn = client.figure(&format!("slo:current_burn_rate:ratio{{{id}}}")).await?;
            Ok::<_, String>((ratio, burn))
        };
        let (verdict, ratio, burn, error) = match read.await {
            Ok((ratio, burn)) => {
                let verdict = match ratio {
                    Figure::Value(r) if r >= slo.budget() => Verdict::Spent,
                    Figure::Value(_) => Verdict::Within,
                    Figure::NoEvidence => Verdict::Unknown,
                };
                (verdict, ratio, burn, None)
            }
            Err(e) => (Verdict::Unknown, Figure::NoEvidence, Figure::NoEvidence, Some(e)),
        };
        worst = worst.max(verdict);
        let used = match ratio {
            Figure::Value(r) => Figure::Value(r / slo.budget()),
            Figure::NoEvidence => Figure::NoEvidence,
        };
        let left = match used {
            Figure::Value(u) => Figure::Value(1.0 - u),
            Figure::NoEvidence => Figure::NoEvidence,
        };
        let _ = writeln!(
            table,
            "{:<28} {:>10} {:>6} {:>12} {:>12} {:>10} {:>10}  {}{}",
            slo.name,
            pct(slo.objective),
            period,
            shown(&ratio, pct),
            shown(&used, pct),
            shown(&left, pct),
            shown(&burn, |b| format!("{}×", num((b * 100.0).round() / 100.0))),
            verdict.word(),
            error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default()
        );
        slo_rows.push(json!({
            "type": "slo",
            "slo": slo.name,
            "objective": slo.objective,
            "period": period,
            "budgeting": match slo.budgeting { Budgeting::Occurrences => "occurrences", Budgeting::Timeslices { .. } => "timeslices" },
            "error_ratio": as_json(&ratio),
            "budget_used": as_json(&used),
            "budget_left": as_json(&left),
            "burn_rate": as_json(&burn),
            "status": verdict.word().to_lowercase(),
            "error": error,
        }));
    }
    let mut budget_rows = Vec::new();
    if !budgets.is_empty() {
        let _ = writeln!(
            table,
            "\n{:<28} {:>10} {:>6} {:>12} {:>12} {:>10}  status",
            "error budget", "budget", "period", "spent", "left", "burn 1d"
        );
    }
    for b in budgets {
        let sel = format!("error_budget=\"{}\"", b.name);
        let read = async {
            client
                .require(
                    &format!("slo:error_budget:seconds{{{sel}}}"),
                    &format!("rules for error budget {:?}", b.name),
                )
                .await?;
            let spent = client
                .figure(&format!("slo:error_budget_spent:seconds{{{sel}}}"))
                .await?;
            let burn = client
                .figure(&format!("slo:error_budget_burn_rate:ratio_rate1d{{{sel}}}"))
                .await?;
            let by_slo = client
                .query(&format!("slo:error_budget_spent_by_slo:seconds{{{sel}}}"))
                .await?;
            Ok::<_, String>((spent, burn, by_slo))
        };
        let budget_s = b.budget.as_secs_f64();
        let (verdict, spent, burn, by_slo, error) = match read.await {
            Ok((spent, burn, by_slo)) => {
                let verdict = match spent {
                    Figure::Value(s) if s >= budget_s => Verdict::Spent,
                    Figure::Value(_) => Verdict::Within,
                    Figure::NoEvidence => Verdict::Unknown,
                };
                (verdict, spent, burn, by_slo, None)
            }
            Err(e) => (
                Verdict::Unknown,
                Figure::NoEvidence,
                Figure::NoEvidence,
                Vec::new(),
                Some(e),
            ),
        };
        worst = worst.max(verdict);
        let left = match spent {
            Figure::Value(s) => Figure::Value(budget_s - s),
            Figure::NoEvidence => Figure::NoEvidence,
        };
        let secs = |v: f64| format!("{}s", num(v.round()));
        let _ = writeln!(
            table,
            "{:<28} {:>10} {:>6} {:>12} {:>12} {:>10}  {}{}",
            b.name,
            secs(budget_s),
            prom_duration(b.period),
            shown(&spent, secs),
            shown(&left, secs),
            shown(&burn, |v| format!("{}×", num((v * 100.0).round() / 100.0))),
            verdict.word(),
            error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default()
        );
        let mut spent_by = serde_json::Map::new();
        for (labels, v) in &by_slo {
            if let Some(slo) = labels["slo"].as_str() {
                spent_by.insert(slo.to_string(), json!(v));
            }
        }
        if !spent_by.is_empty() {
            let parts: Vec<String> = spent_by
                .iter()
                .map(|(k, v)| format!("{k} {}", secs(v.as_f64().unwrap_or(0.0))))
                .collect();
            let _ = writeln!(table, "{:<28} spent by: {}", "", parts.join(", "));
        }
        budget_rows.push(json!({
            "type": "error_budget",
            "error_budget": b.name,
            "budget_seconds": budget_s,
            "period": prom_duration(b.period),
            "spent_seconds": as_json(&spent),
            "left_seconds": as_json(&left),
            "burn_rate_1d": as_json(&burn),
            "spent_by_slo": spent_by,
            "status": verdict.word().to_lowercase(),
            "error": error,
        }));
    }
    let code = match worst {
        Verdict::Within => 0,
        Verdict::Spent => 1,
        Verdict::Unknown => 2,
    };
    if as_json_lines {
        for row in slo_rows.iter().chain(&budget_rows) {
            let _ = writeln!(out, "{row}");
        }
        let _ = writeln!(
            out,
            "{}",
            json!({"type": "summary", "status": worst.word().to_lowercase(), "exit": code})
        );
    } else {
        out.push_str(&table);
        let _ = writeln!(
            out,
            "\n{}",
            match worst {
                Verdict::Within => "within budget",
                Verdict::Spent => "a budget is spent: freeze",
                Verdict::Unknown => "cannot judge: see the rows marked unknown",
            }
        );
    }
    code
}
