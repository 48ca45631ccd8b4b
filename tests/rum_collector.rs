//! The RUM collector as deployed (`sloprobe run` with `[rum]` and no probes): beacons
//! become per-route vitals on /metrics, deduped and judged; hostile input is refused,
//! counted by reason and never stored; a 10,000-URL flood keeps the route labels bounded.

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use common::*;

const ORIGIN: &str = "http://127.0.0.1:18080";

fn config(metrics: u16, rum: u16, extra: &str) -> String {
    format!(
        r#"location = "field"
[server]
listen = "127.0.0.1:{metrics}"

[rum]
listen = "127.0.0.1:{rum}"
allowed_origins = ["{ORIGIN}"]
flush_after = "300ms"
page_view_window = "600ms"
max_routes = 50
max_batch = 20
{extra}
[[rum.route]]
pattern = "/orders/:id"
[rum.budget]
lcp = "2.5s"
cls = 0.1

[[slo]]
name = "orders-lcp"
routes = ["/orders/:id"]
sli = "lcp"
threshold = "1s"
objective = 0.75
window = "28d"
"#
    )
}

/// One raw HTTP/1.1 request; returns the status and the response head.
fn post(port: u16, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes()).unwrap();
    if body.len() > 64 * 1024 {
        // A body over the cap is refused from its Content-Length: read that answer
        // before sending a byte of it (a close with unread data would reset it away).
        return read_response(&mut tcp);
    }
    let _ = tcp.write_all(body);
    read_response(&mut tcp)
}

fn read_response(tcp: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = tcp.read(&mut chunk) {
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

fn beacon(port: u16, body: &str) -> u16 {
    post(
        port,
        "/rum",
        &[
            ("Origin", ORIGIN),
            ("Content-Type", "text/plain;charset=UTF-8"),
            (
                "User-Agent",
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/120.0 Mobile Safari/537.36",
            ),
        ],
        body.as_bytes(),
    )
    .0
}

async fn metrics(port: u16) -> String {
    http_get(&format!("http://127.0.0.1:{port}/metrics"))
        .await
        .map(|(_, t)| t)
        .unwrap_or_default()
}

fn sum(text: &str, name: &str, must: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && must.iter().all(|m| l.contains(m)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn start(extra: &str) -> (tempfile::TempDir, Child, u16, u16) {
    let (mport, rport) = (free_port(), free_port());
    let dir = write_files(&[("sloprobe.toml", &config(mport, rport, extra))]);
    let child = Child(
        std::process::Command::new(bin())
            .args(["run", "-c"])
            .arg(dir.path().join("sloprobe.toml"))
            .env("SLOPROBE_LOG", "warn")
            .env("SLOPROBE_TEST_RUM_KEY", "k3y-for-tests")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let up = eventually(50, Duration::from_millis(100), || async {
        http_get(&format!("http://127.0.0.1:{rport}/healthz")).await
    })
    .await;
    assert!(up.is_some(), "collector never listened");
    (dir, child, mport, rport)
}

#[tokio::test]
async fn beacons_become_route_vitals_deduped_and_judged() {
    let (_dir, _child, mport, rport) = start("").await;
    // A page view on /orders/42: LCP reported at 800 ms, then again (same id) at 1.6 s;
    // CLS once. A second page view on /orders/7 with LCP 0.9 s, from fetch (JSON).
    let first = r#"[{"name":"LCP","value":800,"rating":"good","delta":800,"id":"v5-1-a","navigationType":"navigate","url":"https://shop.example/orders/42?session=secret","pageId":"pv1"},
                    {"name":"CLS","value":0.25,"delta":0.25,"id":"v5-1-b","navigationType":"navigate","url":"https://shop.example/orders/42","pageId":"pv1"}]"#;
    assert_eq!(beacon(rport, first), 204);
    let again = r#"{"name":"LCP","value":1600,"delta":800,"id":"v5-1-a","navigationType":"navigate","url":"https://shop.example/orders/42","pageId":"pv1"}"#;
    assert_eq!(beacon(rport, again), 204);
    let (status, _) = post(
        rport,
        "/rum",
        &[("Origin", ORIGIN), ("Content-Type", "application/json")],
        br#"{"name":"LCP","value":900,"id":"v5-2-a","navigationType":"reload","url":"https://shop.example/orders/7","pageId":"pv2"}"#,
    );
    assert_eq!(status, 204);
    // A Faro payload for /cart, its URL from meta.page.
    let faro = r#"{"meta":{"page":{"url":"https://shop.example/cart","id":"pv3"}},"logs":[{"message":"x"}],
        "measurements":[{"type":"web-vitals","values":{"inp":180,"delta":180},"context":{"id":"v4-9","navigation_type":"back_forward"}}]}"#;
    let (status, _) = post(rport, "/collect", &[("Origin", ORIGIN)], faro.as_bytes());
    assert_eq!(status, 202);
    // No url: the Referer names the page.
    let (status, _) = post(
        rport,
        "/rum",
        &[("Referer", "https://shop.example/help")],
        br#"{"name":"TTFB","value":120,"id":"v5-3"}"#,
    );
    assert_eq!(status, 204);

    let text = eventually(40, Duration::from_millis(100), || async {
        let t = metrics(mport).await;
        (sum(&t, "rum_page_views_total", &[]) >= 3.0 && t.contains("http_route=\"/help\"")).then_some(t)
    })
    .await
    .expect("page views were not flushed");

    let lcp = |route: &str| {
        (
            sum(&text, "browser_web_vital_lcp_seconds_count", &[route]),
            sum(&text, "browser_web_vital_lcp_seconds_sum", &[route]),
        )
    };
    // One LCP per page view, the final value: 1.6 s, not 0.8 + 1.6.
    assert_eq!(lcp("http_route=\"/orders/:id\""), (2.0, 2.5));
    assert_eq!(
        sum(
            &text,
            "browser_web_vital_lcp_seconds_count",
            &[
                "browser_web_vital_rating=\"good\"",
                "budget_verdict=\"good\"",
                "rum_device_class=\"mobile\"",
                "browser_web_vital_navigation_type=\"navigate\""
            ]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        sum(
            &text,
            "browser_web_vital_lcp_seconds_count",
            &[
                "rum_device_class=\"desktop\"",
                "browser_web_vital_navigation_type=\"reload\""
            ]
        ),
        1.0
    );
    // CLS 0.25 is "needs-improvement" by web-vitals and over the 0.1 budget.
    assert_eq!(
        sum(
            &text,
            "browser_web_vital_cls_count",
            &[
                "browser_web_vital_rating=\"needs-improvement\"",
                "budget_verdict=\"bad\""
            ]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &text,
            "browser_web_vital_inp_seconds_count",
            &[
                "http_route=\"/cart\"",
                "browser_web_vital_navigation_type=\"back-forward\""
            ]
        ),
        1.0
    );
    assert_eq!(
        sum(&text, "browser_web_vital_ttfb_seconds_count", &["http_route=\"/help\""]),
        1.0
    );
    // Exact counters for the budget (2.5 s) and the SLO threshold (1 s), per route.
    let t = |thr: &str, verdict: &str| {
        sum(
            &text,
            "rum_threshold_page_views_total",
            &[
                "measurement=\"lcp\"",
                &format!("threshold=\"{thr}\""),
                &format!("verdict=\"{verdict}\""),
                "http_route=\"/orders/:id\"",
            ],
        )
    };
    assert_eq!(
        (t("2.5", "good"), t("2.5", "bad"), t("1", "good"), t("1", "bad")),
        (2.0, 0.0, 1.0, 1.0)
    );
    // Coverage: of 3 page views with ids, 2 reported LCP.
    let cov = sum(&text, "rum_coverage_ratio", &["browser_web_vital_name=\"lcp\""]);
    assert!((cov - 2.0 / 3.0).abs() < 1e-9, "lcp coverage {cov}");
    // Field data is not synthetic, and no raw URL, query, id or agent is a label.
    for forbidden in [
        "user_agent_synthetic_type",
        "secret",
        "v5-1-a",
        "pv1",
        "Pixel",
        "shop.example",
        "orders/42",
    ] {
        assert!(!text.contains(forbidden), "{forbidden} in /metrics");
    }
    assert_eq!(sum(&text, "rum_beacons_total", &["outcome=\"accepted\""]), 5.0);
}

#[tokio::test]
async fn hostile_beacons_are_refused_counted_and_never_stored() {
    let (_dir, mut child, mport, rport) =
        start("api_key = \"env:SLOPROBE_TEST_RUM_KEY\"\nrate = 400\nburst = 400\nper_client_rate = 200\n").await;
    let key = ("X-API-Key", "k3y-for-tests");
    let ok = |body: &str| post(rport, "/rum", &[("Origin", ORIGIN), key], body.as_bytes()).0;

    assert_eq!(
        ok("{\"name\":\"LCP\",\"value\":1200,\"id\":\"good-1\",\"url\":\"/a\"}"),
        204
    );
    let cases: &[(&str, u16, &str)] = &[
        ("{not json", 400, "bad_json"),
        ("", 400, "bad_json"),
        ("\"just a string\"", 400, "bad_json"),
        ("{\"name\":\"LCP\",\"value\":\"1200\"}", 400, "wrong_type"),
        ("{\"name\":5,\"value\":1}", 400, "wrong_type"),
        ("{\"name\":\"LCP\",\"value\":NaN}", 400, "bad_json"),
        ("{\"name\":\"LCP\",\"value\":1e308}", 400, "out_of_range"),
        ("{\"name\":\"LCP\",\"value\":-1}", 400, "out_of_range"),
        ("{\"name\":\"LCP\",\"value\":7200000}", 400, "out_of_range"),
        ("{\"name\":\"CLS\",\"value\":10.5}", 400, "out_of_range"),
        ("{\"name\":\"FOO\",\"value\":1}", 400, "unknown_name"),
        ("{\"value\":1}", 400, "missing_field"),
    ];
    for (body, status, _) in cases {
        assert_eq!(ok(body), *status, "{body}");
    }
    let batch = format!("[{}]", vec!["{\"name\":\"LCP\",\"value\":1}"; 21].join(","));
    assert_eq!(ok(&batch), 413, "over max_batch");
    // The snippet's URL parameters: a sample rate outside (0, 1], a beacon index that is
    // not a count, and a resend mark that is not a boolean.
    let good = "{\"name\":\"LCP\",\"value\":1200,\"id\":\"q-1\",\"url\":\"/a\"}";
    for (path, reason) in [
        ("/rum?pv=x&b=0&sr=0", "bad_sample_rate"),
        ("/rum?pv=x&b=0&sr=1.5", "bad_sample_rate"),
        ("/rum?pv=x&b=0&sr=NaN", "bad_sample_rate"),
        ("/rum?pv=x&b=-1", "bad_beacon_index"),
        ("/rum?pv=x&b=1e3", "bad_beacon_index"),
    ] {
        let (status, _) = post(rport, path, &[("Origin", ORIGIN), key], good.as_bytes());
        assert_eq!(status, 400, "{path} ({reason})");
    }
    assert_eq!(
        ok("{\"name\":\"LCP\",\"value\":1,\"id\":\"r-1\",\"resent\":\"yes\"}"),
        400,
        "resent must be a boolean"
    );
    // 1 MiB: over the 64 KiB cap, refused from Content-Length before it is read.
    let big = vec![b' '; 1 << 20];
    assert_eq!(post(rport, "/rum", &[("Origin", ORIGIN), key], &big).0, 413);
    // 100 MiB announced, chunked, without Content-Length: refused once 64 KiB arrived.
    {
        let mut tcp = TcpStream::connect(("127.0.0.1", rport)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        tcp.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        let head = format!(
            "POST /rum HTTP/1.1\r\nHost: x\r\nX-API-Key: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
            key.1
        );
        tcp.write_all(head.as_bytes()).unwrap();
        let chunk = vec![b'a'; 64 * 1024];
        let mut sent = 0usize;
        // At most 100 MiB; the server answers and closes long before.
        while sent < 100 << 20 {
            let frame = format!("{:x}\r\n", chunk.len());
            if tcp.write_all(frame.as_bytes()).is_err()
                || tcp.write_all(&chunk).is_err()
                || tcp.write_all(b"\r\n").is_err()
            {
                break;
            }
            sent += chunk.len();
            if sent >= 4 << 20 {
                break;
            }
        }
        // 413, or a reset when the close after it beat the read; counted either way.
        let (status, _) = read_response(&mut tcp);
        assert!(matches!(status, 413 | 0), "chunked flood after {sent} bytes: {status}");
    }
    // Faro's own cap is 5 MiB: 6 MiB is refused.
    let huge_faro = format!("{{\"logs\":[\"{}\"]}}", "x".repeat(6 << 20));
    assert_eq!(post(rport, "/collect", &[key], huge_faro.as_bytes()).0, 413);
    // A page from another origin, and a wrong or missing key.
    assert_eq!(
        post(
            rport,
            "/rum",
            &[("Origin", "https://evil.example"), key],
            b"{\"name\":\"LCP\",\"value\":1}"
        )
        .0,
        403
    );
    assert_eq!(
        post(
            rport,
            "/rum",
            &[("Origin", ORIGIN), ("X-API-Key", "k3y-for-testS")],
            b"{\"name\":\"LCP\",\"value\":1}"
        )
        .0,
        401
    );
    assert_eq!(
        post(rport, "/rum", &[("Origin", ORIGIN)], b"{\"name\":\"LCP\",\"value\":1}").0,
        401
    );
    assert_eq!(
        post(
            rport,
            "/rum?api_key=k3y-for-tests",
            &[("Origin", ORIGIN)],
            b"{\"name\":\"LCP\",\"value\":1300,\"id\":\"good-2\",\"url\":\"/a\"}"
        )
        .0,
        204,
        "the key in the query (sendBeacon cannot set headers)"
    );
    // A preflight from another origin is refused; an allowed one is answered.
    let (status, head) = options(rport, "https://evil.example");
    assert_eq!(status, 403);
    assert!(!head.to_ascii_lowercase().contains("access-control-allow-origin"));
    let (status, head) = options(rport, ORIGIN);
    assert_eq!(status, 204);
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains(&format!("access-control-allow-origin: {ORIGIN}")),
        "{head}"
    );
    assert!(lower.contains("access-control-allow-credentials: true"));
    assert!(lower.contains("idempotency-key"));

    // A flood from one client: 429 with Retry-After, while the daemon keeps serving.
    let mut limited = None;
    for _ in 0..600 {
        let (status, head) = post(rport, "/rum", &[("Origin", ORIGIN), key], b"{}");
        if status == 429 {
            limited = Some(head);
            break;
        }
    }
    let head = limited
        .expect("a 600-request burst was never rate limited")
        .to_ascii_lowercase();
    assert!(head.contains("retry-after: "), "{head}");
    assert!(head.contains("access-control-expose-headers: retry-after"), "{head}");

    let text = eventually(30, Duration::from_millis(100), || async {
        let t = metrics(mport).await;
        (sum(&t, "browser_web_vital_lcp_seconds_count", &[]) >= 2.0).then_some(t)
    })
    .await
    .expect("the good beacons were not recorded");
    // Only the two good beacons were stored.
    assert_eq!(sum(&text, "browser_web_vital_lcp_seconds_count", &[]), 2.0);
    assert_eq!(sum(&text, "browser_web_vital_lcp_seconds_sum", &[]), 2.5);
    assert!(sum(&text, "rum_beacons_total", &["reason=\"body_too_large\""]) >= 3.0);
    for reason in [
        "bad_json",
        "too_many_metrics",
        "origin",
        "api_key",
        "rate_limited",
        "no_valid_metrics",
        "bad_sample_rate",
        "bad_beacon_index",
    ] {
        assert!(
            sum(&text, "rum_beacons_total", &[&format!("reason=\"{reason}\"")]) >= 1.0,
            "no rejection counted for {reason}"
        );
    }
    for reason in ["wrong_type", "out_of_range", "unknown_name", "missing_field"] {
        assert!(
            sum(&text, "rum_vitals_total", &[&format!("reason=\"{reason}\"")]) >= 1.0,
            "no metric rejection counted for {reason}"
        );
    }
    assert!(!text.contains("k3y-for-tests"), "the api key leaked into /metrics");
    assert!(child.0.try_wait().unwrap().is_none(), "collector died");
}

fn options(port: u16, origin: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let req = format!(
        "OPTIONS /rum HTTP/1.1\r\nHost: x\r\nOrigin: {origin}\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).unwrap();
    read_response(&mut tcp)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// 10,000 distinct URLs, each with its own ids: route labels stay at `max_routes` plus
/// "other", pending reports stay bounded, and memory does not follow the URL count.
#[tokio::test]
async fn a_flood_of_distinct_urls_keeps_routes_bounded() {
    let (_dir, child, mport, rport) = start("rate = 100000\nburst = 100000\nper_client_rate = 100000\n").await;
    let pid = child.0.id();
    // Warm up: the first beacons allocate the instruments.
    for i in 0..200 {
        let body = format!("{{\"name\":\"LCP\",\"value\":{i},\"id\":\"w{i}\",\"url\":\"/warm\",\"pageId\":\"w{i}\"}}");
        assert_eq!(beacon(rport, &body), 204);
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let before = rss_kib(pid);
    let batch = 20;
    for i in (0..10_000).step_by(batch) {
        let items: Vec<String> = (i..i + batch)
            .map(|j| {
                // A distinct word per URL, so each normalises to its own route.
                format!(
                    "{{\"name\":\"LCP\",\"value\":{},\"id\":\"f{j}\",\"url\":\"https://x.example/shop/{}?q={j}\",\"pageId\":\"p{j}\"}}",
                    j % 3000,
                    word(j)
                )
            })
            .collect();
        assert_eq!(beacon(rport, &format!("[{}]", items.join(","))), 204);
    }
    let text = eventually(40, Duration::from_millis(100), || async {
        let t = metrics(mport).await;
        (sum(&t, "rum_page_views_total", &[]) >= 10_200.0).then_some(t)
    })
    .await
    .expect("flood not flushed");
    let after = rss_kib(pid);
    let routes: std::collections::HashSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("browser_web_vital_lcp_seconds_count"))
        .filter_map(|l| l.split("http_route=\"").nth(1)?.split('"').next())
        .collect();
    assert!(routes.contains("other"), "nothing folded into other");
    assert!(routes.len() <= 51, "{} route labels for max_routes = 50", routes.len());
    assert_eq!(sum(&text, "rum_routes", &[]), 50.0);
    assert_eq!(sum(&text, "browser_web_vital_lcp_seconds_count", &[]), 10_200.0);
    // A leak check, not a benchmark (docs/benchmarks.md has the figure): 10,000 URLs
    // stored as labels or pending entries would be tens of MB.
    let grown = after.saturating_sub(before);
    eprintln!("RSS {before} KiB → {after} KiB (+{grown} KiB) after 10,000 distinct URLs");
    assert!(grown < 16 * 1024, "RSS grew {grown} KiB");
}

/// 0 → "a", 25 → "z", 26 → "ba": a letters-only word per number.
fn word(mut n: usize) -> String {
    let mut w = Vec::new();
    loop {
        w.push(b'a' + (n % 26) as u8);
        n /= 26;
        if n == 0 {
            break;
        }
    }
    w.reverse();
    String::from_utf8(w).unwrap()
}

/// A body trickled in never completes: the collector answers 408 after its 10 s body
/// deadline instead of holding the connection, and counts it.
#[tokio::test]
async fn a_trickled_body_is_cut_off() {
    let (_dir, _child, mport, rport) = start("").await;
    let (status, sent) = tokio::task::spawn_blocking(move || {
        let mut tcp = TcpStream::connect(("127.0.0.1", rport)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let head =
            format!("POST /rum HTTP/1.1\r\nHost: x\r\nOrigin: {ORIGIN}\r\nContent-Length: 100\r\n\r\n{{\"name\"");
        tcp.write_all(head.as_bytes()).unwrap();
        // One byte every 2 s: never idle long enough for the idle timeout, and 16 s in
        // all, past the 10 s body deadline.
        let mut sent = 0;
        for _ in 0..8 {
            std::thread::sleep(Duration::from_secs(2));
            if tcp.write_all(b" ").is_err() {
                break;
            }
            sent += 1;
        }
        (read_response(&mut tcp).0, sent)
    })
    .await
    .unwrap();
    assert_eq!(status, 408);
    // The collector closed the connection before the trickle was done, not after it.
    assert!(sent < 8, "the whole trickle was accepted ({sent} bytes)");
    let text = metrics(mport).await;
    assert_eq!(sum(&text, "rum_beacons_total", &["reason=\"body_timeout\""]), 1.0);
}

/// Slow bodies are admitted against `max_inflight_bytes` before they are read: a gzip
/// body reserves its inflated size too, so with room for two 4 MiB bodies, one slow gzip
/// body leaves none, and a second body held open at the same time gets 503 with
/// Retry-After (counted as `memory_budget`); once the first is done the next fits.
#[tokio::test]
async fn slow_bodies_cannot_exceed_the_inflight_memory_budget() {
    let (_dir, _child, mport, rport) = start("max_faro_body = \"4MiB\"\nmax_inflight_bytes = \"8MiB\"\n").await;
    let declared = 4 * 1024 * 1024;
    let open_slow = move |gzip: bool| {
        let mut tcp = TcpStream::connect(("127.0.0.1", rport)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let encoding = if gzip { "Content-Encoding: gzip\r\n" } else { "" };
        let head = format!(
            "POST /collect HTTP/1.1\r\nHost: x\r\nOrigin: {ORIGIN}\r\n{encoding}Content-Length: {declared}\r\n\r\n\x1f"
        );
        tcp.write_all(head.as_bytes()).unwrap();
        tcp
    };
    // The first holds its 4 + 4 MiB reservation while it trickles.
    let first = tokio::task::spawn_blocking(move || open_slow(true)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, head) = tokio::task::spawn_blocking(move || {
        let mut second = open_slow(false);
        read_response(&mut second)
    })
    .await
    .unwrap();
    assert_eq!(status, 503, "{head}");
    assert!(head.to_ascii_lowercase().contains("retry-after: 1"), "{head}");
    drop(first);
    // The reservation is returned with the connection; a normal beacon then fits.
    let ok = eventually(50, Duration::from_millis(100), || async move {
        let s = tokio::task::spawn_blocking(move || {
            beacon(
                rport,
                r#"{"name":"LCP","value":900,"id":"v5-mem","navigationType":"navigate"}"#,
            )
        })
        .await
        .ok()?;
        (s == 204).then_some(())
    })
    .await;
    assert!(ok.is_some(), "the budget was not given back");
    let text = metrics(mport).await;
    // The second slow body's refusal (beacons retried while the first connection's close
    // was still on its way may be refused too, on /rum).
    assert_eq!(
        sum(
            &text,
            "rum_beacons_total",
            &["endpoint=\"/collect\"", "reason=\"memory_budget\""]
        ),
        1.0,
        "{text}"
    );
}

/// Two Origin headers, or one that is not text, are not an allowed origin; a wrong key
/// is refused before the rate limit, so it cannot spend the budget of valid senders.
#[tokio::test]
async fn odd_origins_and_wrong_keys_are_refused_first() {
    let (_dir, _child, mport, rport) = start("api_key = \"env:SLOPROBE_TEST_RUM_KEY\"\nrate = 1\nburst = 2\n").await;
    let body = br#"{"name":"LCP","value":900,"id":"v5-o","navigationType":"navigate"}"#;
    let two = tokio::task::spawn_blocking(move || {
        post(
            rport,
            "/rum?api_key=k3y-for-tests",
            &[("Origin", ORIGIN), ("Origin", "http://evil.example")],
            body,
        )
        .0
    })
    .await
    .unwrap();
    assert_eq!(two, 403);
    let binary = tokio::task::spawn_blocking(move || {
        let mut tcp = TcpStream::connect(("127.0.0.1", rport)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut req =
            b"POST /rum?api_key=k3y-for-tests HTTP/1.1\r\nHost: x\r\nOrigin: http://127.0.0.1:18080\xff\r\n".to_vec();
        req.extend_from_slice(format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()).as_bytes());
        req.extend_from_slice(body);
        tcp.write_all(&req).unwrap();
        read_response(&mut tcp).0
    })
    .await
    .unwrap();
    assert_eq!(binary, 403);
    // Many wrong keys: all 401, and the rate budget (burst 2) is still there for the key.
    for _ in 0..10 {
        let s = tokio::task::spawn_blocking(move || post(rport, "/rum?api_key=wrong", &[("Origin", ORIGIN)], body).0)
            .await
            .unwrap();
        assert_eq!(s, 401);
    }
    let s =
        tokio::task::spawn_blocking(move || post(rport, "/rum?api_key=k3y-for-tests", &[("Origin", ORIGIN)], body).0)
            .await
            .unwrap();
    assert_eq!(s, 204, "wrong keys spent the rate budget");
    let text = metrics(mport).await;
    assert_eq!(
        sum(&text, "rum_beacons_total", &["reason=\"rate_limited\""]),
        0.0,
        "{text}"
    );
}

/// `[rum.tls]`: the collector serves HTTPS only (a page on https may only beacon to
/// https); curl, trusting the test CA, gets a beacon in, and plain HTTP gets nothing.
#[tokio::test]
async fn the_collector_serves_beacons_over_tls() {
    let pki = tempfile::tempdir().unwrap();
    write_pki(pki.path(), "");
    let p = pki.path().display().to_string();
    let (mport, rport) = (free_port(), free_port());
    let tls = format!("[rum.tls]\ncert_file = \"{p}/server.pem\"\nkey_file = \"{p}/server.key\"\n");
    let dir = write_files(&[("sloprobe.toml", &config(mport, rport, &tls))]);
    let _child = Child(
        std::process::Command::new(bin())
            .args(["run", "-c"])
            .arg(dir.path().join("sloprobe.toml"))
            .env("SLOPROBE_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let curl = |args: &[&str]| {
        let out = std::process::Command::new(tool("curl"))
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "5",
                "--cacert",
            ])
            .arg(format!("{p}/ca.pem"))
            .args(["--resolve", &format!("localhost:{rport}:127.0.0.1")])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let healthz = format!("https://localhost:{rport}/healthz");
    let up = eventually(50, Duration::from_millis(100), || {
        let code = curl(&[&healthz]);
        async move { (code == "200").then_some(()) }
    })
    .await;
    assert!(up.is_some(), "the collector never answered over TLS");
    let body = r#"{"name":"LCP","value":900,"rating":"good","delta":900,"id":"v5-tls-1","navigationType":"navigate","url":"/orders/7"}"#;
    let code = curl(&[
        "-H",
        &format!("Origin: {ORIGIN}"),
        "-H",
        "Content-Type: text/plain;charset=UTF-8",
        "--data",
        body,
        &format!("https://localhost:{rport}/rum"),
    ]);
    assert_eq!(code, "204", "beacon over TLS");
    assert!(
        http_get(&format!("http://127.0.0.1:{rport}/healthz")).await.is_none(),
        "plain HTTP answered"
    );
    let seen = eventually(50, Duration::from_millis(100), || async {
        let text = metrics(mport).await;
        (sum(
            &text,
            "rum_beacons_total",
            &["outcome=\"accepted\"", "endpoint=\"/rum\""],
        ) >= 1.0)
            .then_some(())
    })
    .await;
    assert!(
        seen.is_some(),
        "the beacon never reached the metrics:\n{}",
        metrics(mport).await
    );
}
