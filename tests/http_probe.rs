//! The HTTP probe against local targets with injected timings and faults: each phase
//! must bracket the injected time, each fault must give its error type.

mod common;

use common::*;

/// Slack for scheduler noise on a shared 2-core machine; the benchmark in
/// docs/benchmarks.md measures the real accuracy against curl.
const SLACK: f64 = 0.025;

fn probe(url: &str, extra: &str) -> String {
    format!("[[probe]]\nname = \"t\"\nkind = \"http\"\nurl = \"{url}\"\nevery = \"30s\"\ntimeout = \"5s\"\n{extra}\n")
}

#[tokio::test]
async fn wait_brackets_injected_header_delay() {
    let t = plain_target().await;
    let o = run_probe(&probe(&t.url("/delay/200"), "")).await;
    assert!(o.success(), "{:?}", o.error);
    let wait = m(&o, "wait");
    assert!((0.200..0.200 + SLACK).contains(&wait), "wait {wait}");
    let ttfb = m(&o, "ttfb");
    assert!((0.200..0.200 + SLACK).contains(&ttfb), "ttfb {ttfb}");
    // Phases are disjoint and add up to the whole run.
    let sum: f64 = ["dns", "connect", "tls", "send", "wait", "transfer"]
        .iter()
        .map(|k| m(&o, k))
        .sum();
    let total = m(&o, "total");
    assert!(sum <= total + 1e-6 && total - sum < 0.005, "sum {sum} total {total}");
    assert!(ttfb < total);
    assert_eq!(o.label("http.response.status_code"), Some("200"));
    assert_eq!(o.label("network.protocol.version"), Some("1.1"));
    assert_eq!(o.label("probe.connection"), Some("fresh"));
}

#[tokio::test]
async fn transfer_brackets_trickled_body() {
    let t = plain_target().await;
    // Headers after 50 ms, then 5 chunks 40 ms apart: 160 ms of transfer.
    let o = run_probe(&probe(&t.url("/trickle?delay=50&chunks=5&interval=40&size=100"), "")).await;
    assert!(o.success(), "{:?}", o.error);
    let transfer = m(&o, "transfer");
    assert!((0.160..0.160 + SLACK).contains(&transfer), "transfer {transfer}");
    let wait = m(&o, "wait");
    assert!((0.050..0.050 + SLACK).contains(&wait), "wait {wait}");
    assert_eq!(m(&o, "body_bytes"), 500.0);
}

#[tokio::test]
async fn body_that_never_ends_is_cut_by_the_timeout() {
    let t = plain_target().await;
    let cfg = probe(&t.url("/endless?interval=20&size=10"), "").replace("timeout = \"5s\"", "timeout = \"400ms\"");
    let o = run_probe(&cfg).await;
    assert_eq!(error_type(&o), "timeout");
    let total = m(&o, "total");
    assert!((0.400..0.400 + SLACK).contains(&total), "total {total}");
    // The phases before the cut survive.
    assert!(m(&o, "ttfb") < 0.1);
}

#[tokio::test]
async fn endless_large_body_is_cut_at_max_body() {
    let t = plain_target().await;
    let o = run_probe(&probe(
        &t.url("/endless?interval=0&size=65536"),
        "[probe.expect]\nmax_body = \"1MiB\"",
    ))
    .await;
    assert_eq!(error_type(&o), "body_too_large");
}

#[tokio::test]
async fn refused_port_and_unresolvable_name_are_classified() {
    let port = refused_port();
    let o = run_probe(&probe(&format!("http://127.0.0.1:{port}/"), "")).await;
    assert_eq!(error_type(&o), "connect_refused");
    let o = run_probe(&probe("http://no-such-host.invalid/", "")).await;
    assert_eq!(error_type(&o), "dns_nxdomain");
    assert!(o.get("dns").is_some());
}

#[tokio::test]
async fn statuses_and_assertions() {
    let t = plain_target().await;
    let o = run_probe(&probe(&t.url("/status/429"), "")).await;
    assert_eq!(error_type(&o), "rate_limited");
    assert!(o.error.as_ref().unwrap().message.contains("Retry-After: 1"));
    assert_eq!(o.retry_after, Some(std::time::Duration::from_secs(1)));
    let o = run_probe(&probe(&t.url("/status/503"), "")).await;
    assert_eq!(error_type(&o), "http_status");
    let o = run_probe(&probe(&t.url("/status/503"), "[probe.expect]\nstatus = [503]")).await;
    assert!(o.success());
    let o = run_probe(&probe(
        &t.url("/"),
        "[probe.expect]\nheader_present = [\"x-request-id\"]\nbody_regex = \"ok\"",
    ))
    .await;
    assert!(o.success(), "{:?}", o.error);
    let o = run_probe(&probe(&t.url("/"), "[probe.expect]\nheader_present = [\"x-missing\"]")).await;
    assert_eq!(error_type(&o), "assertion_failed");
    let o = run_probe(&probe(&t.url("/"), "[probe.expect]\nbody_regex = \"^nope$\"")).await;
    assert_eq!(error_type(&o), "assertion_failed");
}

#[tokio::test]
async fn redirects_off_by_default_and_summed_when_followed() {
    let t = plain_target().await;
    let o = run_probe(&probe(&t.url("/redirect/3"), "")).await;
    assert_eq!(error_type(&o), "http_status");
    assert_eq!(o.label("http.response.status_code"), Some("302"));

    let o = run_probe(&probe(&t.url("/redirect/3"), "follow_redirects = 5")).await;
    assert!(o.success(), "{:?}", o.error);
    assert_eq!(m(&o, "redirects"), 3.0);
    // Four fresh connections: each hop paid a connect, summed into one phase.
    let total = m(&o, "total");
    let sum: f64 = ["dns", "connect", "tls", "send", "wait", "transfer"]
        .iter()
        .map(|k| m(&o, k))
        .sum();
    assert!(sum <= total + 1e-6 && total - sum < 0.01, "sum {sum} total {total}");

    // Past the limit is its own error type, not "unexpected status 302".
    let o = run_probe(&probe(&t.url("/redirect/3"), "follow_redirects = 1")).await;
    assert_eq!(error_type(&o), "redirect_limit");
    assert_eq!(m(&o, "redirects"), 1.0);
}

#[tokio::test]
async fn tls_with_private_ca_measures_handshake_and_expiry() {
    let pki = pki(false);
    let t = tls_target(&pki).await;
    let dir = write_files(&[("ca.pem", &pki.ca_pem)]);
    let ca = dir.path().join("ca.pem");
    let extra = format!("[probe.tls]\nca_file = \"{}\"", ca.display());
    let o = run_probe(&probe(&t.https_url("/delay/100"), &extra)).await;
    assert!(o.success(), "{:?}", o.error);
    assert!(m(&o, "tls") > 0.0);
    assert_eq!(m(&o, "cert_expiry") as i64, pki.leaf_not_after);
    // ALPN picks h2; the wait still brackets the injected delay.
    assert_eq!(o.label("network.protocol.version"), Some("2"));
    let wait = m(&o, "wait");
    assert!((0.100..0.100 + SLACK).contains(&wait), "wait {wait}");

    let o = run_probe(&probe(
        &t.https_url("/delay/100"),
        &format!("http_version = \"1.1\"\n{extra}"),
    ))
    .await;
    assert!(o.success(), "{:?}", o.error);
    assert_eq!(o.label("network.protocol.version"), Some("1.1"));
    let wait = m(&o, "wait");
    assert!((0.100..0.100 + SLACK).contains(&wait), "wait {wait}");

    // Without the CA the chain is untrusted; skip-verify accepts it only when asked.
    let o = run_probe(&probe(&t.https_url("/"), "")).await;
    assert_eq!(error_type(&o), "tls_cert_invalid");
    let o = run_probe(&probe(&t.https_url("/"), "[probe.tls]\ninsecure_skip_verify = true")).await;
    assert!(o.success(), "{:?}", o.error);
}

#[tokio::test]
async fn expired_certificate_is_its_own_error() {
    let pki = pki(true);
    let t = tls_target(&pki).await;
    let dir = write_files(&[("ca.pem", &pki.ca_pem)]);
    let extra = format!("[probe.tls]\nca_file = \"{}\"", dir.path().join("ca.pem").display());
    let o = run_probe(&probe(&t.https_url("/"), &extra)).await;
    assert_eq!(error_type(&o), "tls_cert_expired");
    assert!(o.error.as_ref().unwrap().message.contains("expired"));
}

#[tokio::test]
async fn reuse_mode_labels_warm_runs_apart() {
    let t = plain_target().await;
    let (_d, probes) = build_probes(&probe(&t.url("/"), "connection = \"reuse\""));
    let first = probes[0].execute().await;
    let second = probes[0].execute().await;
    assert!(first.success() && second.success());
    assert_eq!(first.label("probe.connection"), Some("new"));
    assert_eq!(second.label("probe.connection"), Some("reused"));
    assert!(m(&first, "connect") > 0.0);
    assert_eq!(m(&second, "connect"), 0.0);
}

#[tokio::test]
async fn generated_upload_body_is_sent_whole() {
    let t = plain_target().await;
    let o = run_probe(&probe(
        &t.url("/upload"),
        "[probe.request]\nmethod = \"PUT\"\nbody_size = \"10MiB\"\n[probe.expect]\nbody_regex = \"^10485760$\"",
    ))
    .await;
    assert!(o.success(), "{:?}", o.error);
    assert!(m(&o, "send") > 0.0);
}

#[tokio::test]
async fn per_run_budget_breach_is_recorded() {
    let t = plain_target().await;
    let o = run_probe(&probe(
        &t.url("/delay/60"),
        "[probe.budget]\nttfb = \"50ms\"\ntotal = \"2s\"",
    ))
    .await;
    assert!(o.success());
    assert!(!o.passed());
    assert_eq!(o.breaches.len(), 1);
    assert_eq!(o.breaches[0].measurement, "ttfb");
    assert_eq!(o.breaches[0].threshold, 0.05);
}
