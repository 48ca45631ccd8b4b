//! End to end with the real web-vitals library (npm, bundled with esbuild from npm, both
//! installed by scripts/test.sh into .cache/rum) in real headless Chromium: the page
//! `sloprobe rum snippet` wires up beacons to the collector on another port, so the
//! browser applies CORS; the LCP read back from /metrics is the page's own, and at least
//! the injected image delay. A page from an origin not allowed is refused by the browser.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use axum::extract::Query;
use axum::http::header;
use axum::response::IntoResponse;
use common::*;
use serde_json::json;

/// Browser tests take turns: two Chromiums on two cores make each other's timings noisy.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn npm_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/rum/node_modules");
    assert!(
        dir.join(".bin/esbuild").exists() && dir.join("web-vitals/package.json").exists(),
        "web-vitals and esbuild are not installed in {}: run scripts/test.sh (it installs them)",
        dir.display()
    );
    dir
}

/// The snippet for `config`, bundled with the real web-vitals into one IIFE script.
fn bundle(config: &std::path::Path, work: &std::path::Path) -> String {
    let out = std::process::Command::new(bin())
        .args(["rum", "snippet", "-c"])
        .arg(config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let entry = work.join("entry.js");
    std::fs::write(&entry, &out.stdout).unwrap();
    let modules = npm_dir();
    let built = std::process::Command::new(modules.join(".bin/esbuild"))
        .arg(&entry)
        .args(["--bundle", "--format=iife", "--log-level=warning"])
        .arg(format!("--outfile={}", work.join("bundle.js").display()))
        .env("NODE_PATH", &modules)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "esbuild: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let js = std::fs::read_to_string(work.join("bundle.js")).unwrap();
    assert!(
        js.contains("largest-contentful-paint"),
        "web-vitals is not in the bundle"
    );
    js
}

#[derive(serde::Deserialize)]
struct Delay {
    d: u64,
}

/// The page: an LCP image delayed by `d` ms, an observer that keeps the page's own LCP,
/// and the bundle. Under /fetch/, sendBeacon is removed, so the snippet falls back to
/// fetch with a JSON body, which the browser preflights.
async fn page_server(listener: tokio::net::TcpListener, bundle: String) -> Target {
    let app = page_app(bundle);
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Target::new(addr, task)
}

/// The same pages over TLS with `config`.
async fn tls_page_server(listener: tokio::net::TcpListener, bundle: String, config: rustls::ServerConfig) -> Target {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let app = page_app(bundle);
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Target::new(addr, task)
}

fn page_app(bundle: String) -> axum::Router {
    let bundle = std::sync::Arc::new(bundle);
    let page = |fetch: bool| {
        move |Query(q): Query<Delay>| async move {
            let setup = if fetch {
                "navigator.sendBeacon = undefined;\
                 const realFetch = window.fetch.bind(window);\
                 window.fetch = (...a) => realFetch(...a).then(r => { window.__sent = r.status; return r; }, e => { window.__sent = 'refused'; throw e; });"
            } else {
                ""
            };
            let html = format!(
                "<!doctype html><html><head><title>rum</title><script>\
                 new PerformanceObserver(l => {{ for (const e of l.getEntries()) window.__lcp = e.startTime; }})\
                 .observe({{type: 'largest-contentful-paint', buffered: true}});{setup}</script>\
                 <script src=\"/bundle.js\"></script></head>\
                 <body><img src=\"/hero.svg?d={}\" width=\"800\" height=\"500\"></body></html>",
                q.d
            );
            ([(header::CONTENT_TYPE, "text/html")], html)
        }
    };
    let js = bundle.clone();
    axum::Router::new()
        .route("/beacon/page", axum::routing::get(page(false)))
        .route("/fetch/page", axum::routing::get(page(true)))
        .route("/blocked/page", axum::routing::get(page(true)))
        .route(
            "/bundle.js",
            axum::routing::get(move || {
                let js = js.clone();
                async move { ([(header::CONTENT_TYPE, "text/javascript")], (*js).clone()).into_response() }
            }),
        )
        .route(
            "/hero.svg",
            axum::routing::get(|Query(q): Query<Delay>| async move {
                tokio::time::sleep(Duration::from_millis(q.d)).await;
                ([(header::CONTENT_TYPE, "image/svg+xml")], tiled_svg())
            }),
        )
}

/// Tiles of varied colour: Chromium ignores near-empty images (under 0.05 bits per
/// pixel) as LCP candidates, so a flat rectangle would never be the LCP.
fn tiled_svg() -> String {
    let mut svg = String::from("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"800\" height=\"500\">");
    let mut x: u32 = 0x9e37_79b9;
    for ty in (0..500).step_by(40) {
        for tx in (0..800).step_by(40) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            svg.push_str(&format!(
                "<rect x=\"{tx}\" y=\"{ty}\" width=\"40\" height=\"40\" fill=\"#{:06x}\"/>",
                x & 0xff_ffff
            ));
        }
    }
    svg + "</svg>"
}

/// chromedriver in its own process group, killed with every Chromium under it on drop.
struct Driver {
    child: tokio::process::Child,
    port: u16,
    /// Its and its Chromium's temp folders, removed with it.
    _tmp: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) on the process group this test started.
            unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
        }
    }
}

async fn browser() -> (Driver, fantoccini::Client) {
    browser_with(&[]).await
}

async fn browser_with(extra: &[String]) -> (Driver, fantoccini::Client) {
    let port = free_port();
    let tmp = tempfile::tempdir().unwrap();
    let child = tokio::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver (scripts/test.sh installs chromium-driver)");
    let driver = Driver { child, port, _tmp: tmp };
    let up = eventually(50, Duration::from_millis(100), || async {
        http_get(&format!("http://127.0.0.1:{port}/status")).await
    })
    .await;
    assert!(up.is_some(), "chromedriver did not start");
    let mut args: Vec<String> = [
        "--headless=new",
        "--disable-gpu",
        "--no-first-run",
        "--disable-dev-shm-usage",
    ]
    .map(String::from)
    .to_vec();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        args.push("--no-sandbox".into());
    }
    args.extend(extra.iter().cloned());
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert("goog:chromeOptions".into(), json!({ "args": args }));
    let client = fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a Chromium session");
    (driver, client)
}

/// Loads a page, waits for its image and LCP, and returns the page's own LCP (ms).
async fn load(client: &fantoccini::Client, url: &str) -> f64 {
    client.goto(url).await.unwrap();
    let lcp = eventually(100, Duration::from_millis(100), || async {
        let v = client
            .execute(
                "const img = document.querySelector('img');\
                 return (img && img.complete && window.__lcp !== undefined) ? window.__lcp : null;",
                vec![],
            )
            .await;
        v.ok()?.as_f64()
    })
    .await
    .unwrap_or_else(|| panic!("{url}: no LCP within 10 s"));
    // Let a late LCP candidate land before the page is left.
    tokio::time::sleep(Duration::from_millis(300)).await;
    client
        .execute("return window.__lcp;", vec![])
        .await
        .unwrap()
        .as_f64()
        .unwrap_or(lcp)
}

fn value(text: &str, name: &str, route: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(&format!("http_route=\"{route}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .reduce(|a, b| a + b)
}

#[tokio::test]
async fn web_vitals_in_chromium_beacon_across_origins_and_match_the_page() {
    let _turn = TURN.lock().await;
    // Pages from two origins: the allowed one's port goes into the config.
    let allowed_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let blocked_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (mport, rport) = (free_port(), free_port());
    let cfg = format!(
        r#"location = "field"
[server]
listen = "127.0.0.1:{mport}"
[rum]
listen = "127.0.0.1:{rport}"
allowed_origins = ["http://{}"]
flush_after = "300ms"
page_view_window = "600ms"
[rum.budget]
lcp = "1s"
"#,
        allowed_listener.local_addr().unwrap()
    );
    let dir = write_files(&[("sloprobe.toml", &cfg)]);
    let js = bundle(&dir.path().join("sloprobe.toml"), dir.path());
    let allowed = page_server(allowed_listener, js.clone()).await;
    let blocked = page_server(blocked_listener, js).await;
    let _daemon = start_daemon(&dir.path().join("sloprobe.toml"));
    let up = eventually(50, Duration::from_millis(100), || async {
        http_get(&format!("http://127.0.0.1:{rport}/healthz")).await
    })
    .await;
    assert!(up.is_some(), "collector never listened");

    let (_driver, client) = browser().await;
    let base = format!("http://{}", allowed.addr);
    let result = async {
        // sendBeacon (text/plain, no preflight), LCP image after 400 ms.
        let beacon_lcp = load(&client, &format!("{base}/beacon/page?d=400")).await;
        client.goto("about:blank").await.unwrap();
        // fetch(keepalive) with JSON: the browser preflights, then posts. 1.2 s: over budget.
        let fetch_lcp = load(&client, &format!("{base}/fetch/page?d=1200")).await;
        client.goto("about:blank").await.unwrap();
        // Another origin: the preflight is refused, and the browser never posts.
        client
            .goto(&format!("http://{}/blocked/page?d=50", blocked.addr))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        client
            .execute("window.dispatchEvent(new Event('pagehide'));", vec![])
            .await
            .unwrap();
        let sent = eventually(50, Duration::from_millis(100), || async {
            let v = client.execute("return window.__sent ?? null;", vec![]).await.ok()?;
            (!v.is_null()).then_some(v)
        })
        .await;
        (beacon_lcp, fetch_lcp, sent)
    }
    .await;
    let _ = client.close().await;
    let (beacon_lcp, fetch_lcp, sent) = result;
    assert_eq!(
        sent,
        Some(json!("refused")),
        "the browser sent a beacon to a collector that refused its origin"
    );

    let text = eventually(50, Duration::from_millis(100), || async {
        let (_, t) = http_get(&format!("http://127.0.0.1:{mport}/metrics")).await?;
        (value(&t, "browser_web_vital_lcp_seconds_count", "/beacon/page").is_some()
            && value(&t, "browser_web_vital_lcp_seconds_count", "/fetch/page").is_some())
        .then_some(t)
    })
    .await
    .expect("the browser's LCP beacons never reached /metrics");

    for (route, page_ms, delay_ms, verdict) in [
        ("/beacon/page", beacon_lcp, 400.0, "good"),
        ("/fetch/page", fetch_lcp, 1200.0, "bad"),
    ] {
        let count = value(&text, "browser_web_vital_lcp_seconds_count", route).unwrap();
        let sum = value(&text, "browser_web_vital_lcp_seconds_sum", route).unwrap();
        assert_eq!(count, 1.0, "{route}: one LCP per page view");
        eprintln!("{route}: page LCP {page_ms:.1} ms, collector {:.1} ms", sum * 1000.0);
        assert!(
            (sum * 1000.0 - page_ms).abs() < 2.0,
            "{route}: collector LCP {} ms, the page's own {page_ms} ms",
            sum * 1000.0
        );
        assert!(
            page_ms >= delay_ms && page_ms < delay_ms + 1000.0,
            "{route}: LCP {page_ms} ms for an image delayed {delay_ms} ms"
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with("browser_web_vital_lcp_seconds_count")
                    && l.contains(&format!("http_route=\"{route}\""))
                    && l.contains(&format!("budget_verdict=\"{verdict}\""))
                    && l.contains("rum_device_class=\"desktop\"")),
            "{route}: no {verdict} verdict"
        );
        assert!(
            value(&text, "browser_web_vital_ttfb_seconds_count", route).is_some(),
            "{route}: no TTFB"
        );
        assert!(
            value(&text, "browser_web_vital_fcp_seconds_count", route).is_some(),
            "{route}: no FCP"
        );
    }
    // The snippet's beacon URLs carried its page-view id and a valid index: each page view
    // is counted once (a beacon arriving after the page view's window would be adopted,
    // not a second page view).
    let text = eventually(150, Duration::from_millis(100), || async {
        let (_, t) = http_get(&format!("http://127.0.0.1:{mport}/metrics")).await?;
        (value(&t, "rum_page_views_total", "/beacon/page") == Some(1.0)
            && value(&t, "rum_page_views_total", "/fetch/page") == Some(1.0))
        .then_some(t)
    })
    .await;
    let Some(text) = text else {
        let (_, t) = http_get(&format!("http://127.0.0.1:{mport}/metrics"))
            .await
            .unwrap_or_default();
        let lines: Vec<&str> = t.lines().filter(|l| l.starts_with("rum_")).collect();
        panic!("the page views were not counted once each:\n{}", lines.join("\n"));
    };
    // The fetch page's two beacons may arrive in either order: still one page view here.
    assert!(
        !text.contains("rum_page_views_adopted_total{"),
        "a page view counted as adopted"
    );
    assert!(!text.contains("reason=\"bad_beacon_index\""));
    assert!(value(&text, "browser_web_vital_lcp_seconds_count", "/blocked/page").is_none());
    assert!(!text.contains("/blocked/page"), "data from a refused origin was stored");
    assert!(
        text.lines()
            .any(|l| l.starts_with("rum_preflights_total") && l.contains("outcome=\"refused\"")),
        "the refused preflight was not counted"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("rum_preflights_total") && l.contains("outcome=\"allowed\"")),
        "the allowed preflight was not counted"
    );
    assert!(!text.contains("user_agent_synthetic_type"));
}

fn faro_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/faro/node_modules");
    assert!(
        dir.join(".bin/esbuild").exists() && dir.join("@grafana/faro-web-sdk/package.json").exists(),
        "@grafana/faro-web-sdk and esbuild are not installed in {}: run scripts/test.sh (it installs them)",
        dir.display()
    );
    dir
}

/// The real Faro Web SDK with its defaults (session tracking, batching, every default
/// instrumentation), pointed at `url`, plus `extra` options, bundled into one script.
fn faro_bundle(url: &str, extra: &str, work: &std::path::Path, name: &str) -> String {
    let entry = work.join(format!("{name}.js"));
    std::fs::write(
        &entry,
        format!(
            "import {{ initializeFaro }} from '@grafana/faro-web-sdk';\n\
             initializeFaro({{ url: {url:?}, app: {{ name: 'shop', version: '1.0.0' }}{extra} }});\n"
        ),
    )
    .unwrap();
    let modules = faro_dir();
    let out = work.join(format!("{name}.bundle.js"));
    let built = std::process::Command::new(modules.join(".bin/esbuild"))
        .arg(&entry)
        .args(["--bundle", "--format=iife", "--log-level=warning"])
        .arg(format!("--outfile={}", out.display()))
        .env("NODE_PATH", &modules)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "esbuild: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    std::fs::read_to_string(out).unwrap()
}

/// A visit with the real Faro SDK as it ships: its fetch transport sends
/// `x-faro-session-id` (and, compressed, `Content-Encoding: gzip`), so the browser
/// preflights; it sends no page id; it reports early vitals first and CLS again at each
/// hide. The page is hidden, shown, shifted and hidden again after longer than
/// `flush_after`: the collector still records one value per vital (CLS's last), one
/// page view, for the default transport, the gzip one and the `/collect/<app-key>` URL.
#[tokio::test]
async fn the_faro_sdk_with_its_defaults_delivers_one_value_per_vital_per_page_view() {
    let _turn = TURN.lock().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let (mport, rport) = (free_port(), free_port());
    let cfg = format!(
        r#"location = "field"
[server]
listen = "127.0.0.1:{mport}"
[rum]
listen = "127.0.0.1:{rport}"
allowed_origins = ["{origin}"]
api_key = "env:SLOPROBE_TEST_FARO_KEY"
flush_after = "300ms"
page_view_window = "4s"
"#
    );
    let dir = write_files(&[("sloprobe.toml", &cfg)]);
    let key = "faro-app-key-1";
    let collect = format!("http://127.0.0.1:{rport}/collect");
    let bundles = [
        (
            "plain",
            faro_bundle(&collect, &format!(", apiKey: {key:?}"), dir.path(), "plain"),
        ),
        (
            "gzip",
            faro_bundle(
                &format!("{collect}/{key}"),
                ", requestCompression: true",
                dir.path(),
                "gzip",
            ),
        ),
    ];
    assert!(bundles[0].1.contains("x-faro-session-id"), "not the real Faro SDK");
    let pages = std::sync::Arc::new(bundles.into_iter().collect::<std::collections::HashMap<_, _>>());
    let app = axum::Router::new()
        .route(
            "/{variant}/page",
            axum::routing::get(|axum::extract::Path(variant): axum::extract::Path<String>| async move {
                let html = format!(
                    "<!doctype html><html><head><title>faro</title><script>\
                     window.__shifts = []; let w = 0, first = 0, last = 0; window.__cls = 0;\
                     new PerformanceObserver(l => {{ for (const e of l.getEntries()) {{ if (e.hadRecentInput) continue;\
                       if (w && e.startTime - last < 1000 && e.startTime - first < 5000) w += e.value; else {{ w = e.value; first = e.startTime; }}\
                       last = e.startTime; window.__cls = Math.max(window.__cls, w); }} }}).observe({{type: 'layout-shift', buffered: true}});\
                     window.shift = (px) => {{ const d = document.createElement('div'); d.style.height = px + 'px';\
                       document.body.insertBefore(d, document.getElementById('content')); }};\
                     window.visibility = (state) => {{ Object.defineProperty(document, 'visibilityState', {{value: state, configurable: true}});\
                       Object.defineProperty(document, 'hidden', {{value: state === 'hidden', configurable: true}});\
                       document.dispatchEvent(new Event('visibilitychange')); }};\
                     </script><script src=\"/{variant}/faro.js\"></script></head>\
                     <body style=\"margin:0\"><div id=\"content\" style=\"min-height:200vh\"><h1>Faro</h1><p>A page.</p></div></body></html>"
                );
                ([(header::CONTENT_TYPE, "text/html")], html)
            }),
        )
        .route(
            "/{variant}/faro.js",
            axum::routing::get(move |axum::extract::Path(variant): axum::extract::Path<String>| {
                let pages = pages.clone();
                async move {
                    let js = pages.get(variant.as_str()).cloned().unwrap_or_default();
                    ([(header::CONTENT_TYPE, "text/javascript")], js).into_response()
                }
            }),
        );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let _site = Target::new("127.0.0.1:0".parse().unwrap(), task);
    let _daemon = Child(
        std::process::Command::new(bin())
            .args(["run", "-c"])
            .arg(dir.path().join("sloprobe.toml"))
            .env("SLOPROBE_LOG", "warn")
            .env("SLOPROBE_TEST_FARO_KEY", key)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let up = eventually(50, Duration::from_millis(100), || async {
        http_get(&format!("http://127.0.0.1:{rport}/healthz")).await
    })
    .await;
    assert!(up.is_some(), "collector never listened");

    // Each variant in a fresh browser, as a new visitor.
    let mut page_cls = Vec::new();
    for variant in ["plain", "gzip"] {
        let (_driver, client) = browser().await;
        let visit = async {
            client.goto(&format!("{origin}/{variant}/page")).await.unwrap();
            // Settle, shift, click, hide: TTFB, FCP, LCP and the first CLS go out. web-vitals
            // finalizes LCP on a trusted event only (a click, a key, a real hide): the click is
            // WebDriver's, a real input; the hides are the page's own visibilitychange.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            client.execute("shift(94); return 0;", vec![]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(600)).await;
            client
                .find(fantoccini::Locator::Css("h1"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            client.execute("visibility('hidden'); return 0;", vec![]).await.unwrap();
            // Longer than flush_after: the first values have been recorded by then.
            tokio::time::sleep(Duration::from_millis(1200)).await;
            client
                .execute("visibility('visible'); return 0;", vec![])
                .await
                .unwrap();
            // A second shift well after the first (a new session window, larger).
            tokio::time::sleep(Duration::from_millis(1200)).await;
            client.execute("shift(282); return 0;", vec![]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            client.execute("visibility('hidden'); return 0;", vec![]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(800)).await;
            client
                .execute("return window.__cls;", vec![])
                .await
                .unwrap()
                .as_f64()
                .unwrap()
        }
        .await;
        page_cls.push((variant, visit));
        let _ = client.close().await;
    }

    let route_of = |variant: &str| format!("/{variant}/page");
    let text = eventually(100, Duration::from_millis(100), || async {
        let (_, t) = http_get(&format!("http://127.0.0.1:{mport}/metrics")).await?;
        ["plain", "gzip"]
            .iter()
            .all(|v| value(&t, "rum_page_views_total", &route_of(v)).is_some())
            .then_some(t)
    })
    .await
    .unwrap_or_else(|| panic!("Faro's page views never reached /metrics"));
    for (variant, cls) in page_cls {
        let route = route_of(variant);
        assert!(cls > 0.25, "{variant}: the page's CLS {cls}");
        assert_eq!(
            value(&text, "rum_page_views_total", &route),
            Some(1.0),
            "{variant}: one page view"
        );
        for vital in ["ttfb", "fcp", "lcp", "cls"] {
            let count = value(&text, &format!("browser_web_vital_{vital}_seconds_count"), &route).or(value(
                &text,
                &format!("browser_web_vital_{vital}_count"),
                &route,
            ));
            let counters: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with("rum_") || l.contains(&route))
                .collect();
            assert_eq!(
                count,
                Some(1.0),
                "{variant}: one {vital} value\n{}",
                counters.join("\n")
            );
        }
        let recorded = value(&text, "browser_web_vital_cls_sum", &route).unwrap();
        assert!(
            (recorded - cls).abs() < 1e-3,
            "{variant}: recorded CLS {recorded}, the page's final {cls}"
        );
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("rum_preflights_total") && l.contains("outcome=\"allowed\"")),
        "Faro's preflights were not counted"
    );
    assert!(!text.contains("reason=\"bad_json\""), "a Faro body was not read");
    assert!(!text.contains(key), "the app key reached /metrics");
}

/// A page served over https beacons to a collector serving https itself (`[rum.tls]`):
/// what every real deployment needs, since a https page may not send to http. Chromium
/// trusts exactly the test certificate (by its public key), nothing else.
#[tokio::test]
async fn an_https_page_beacons_to_an_https_collector() {
    let _turn = TURN.lock().await;
    let pki = tempfile::tempdir().unwrap();
    write_pki(pki.path(), "");
    let p = pki.path().display().to_string();
    let page_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page_port = page_listener.local_addr().unwrap().port();
    let (mport, rport) = (free_port(), free_port());
    let cfg = format!(
        r#"[server]
listen = "127.0.0.1:{mport}"
[rum]
listen = "127.0.0.1:{rport}"
public_url = "https://localhost:{rport}"
allowed_origins = ["https://localhost:{page_port}"]
flush_after = "300ms"
page_view_window = "600ms"
[rum.tls]
cert_file = "{p}/server.pem"
key_file = "{p}/server.key"
"#
    );
    let dir = write_files(&[("sloprobe.toml", &cfg)]);
    let js = bundle(&dir.path().join("sloprobe.toml"), dir.path());
    assert!(
        js.contains(&format!("https://localhost:{rport}")),
        "the snippet does not post to https"
    );
    let cert_pem = std::fs::read(pki.path().join("server.pem")).unwrap();
    let key_pem = std::fs::read(pki.path().join("server.key")).unwrap();
    use rustls::pki_types::pem::PemObject as _;
    let cert = rustls::pki_types::CertificateDer::from_pem_slice(&cert_pem).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(&key_pem).unwrap();
    let server =
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .unwrap();
    let _pages = tls_page_server(page_listener, js, server).await;
    let _daemon = start_daemon(&dir.path().join("sloprobe.toml"));
    let up = eventually(50, Duration::from_millis(100), || async {
        http_get(&format!("http://127.0.0.1:{mport}/readyz")).await
    })
    .await;
    assert!(up.is_some(), "daemon never listened");
    // Trust this one certificate: the SHA-256 of its public key, as Chromium takes it.
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).unwrap();
    let spki = ring::digest::digest(&ring::digest::SHA256, parsed.tbs_certificate.subject_pki.raw);
    use base64::Engine as _;
    let pin = base64::engine::general_purpose::STANDARD.encode(spki.as_ref());
    let (_driver, client) = browser_with(&[format!("--ignore-certificate-errors-spki-list={pin}")]).await;
    let page_lcp = load(&client, &format!("https://localhost:{page_port}/beacon/page?d=300")).await;
    let _ = client.goto("about:blank").await;
    // The browser stays open until the beacon is in: closing it at once can cancel the
    // keepalive request while its TLS handshake is still under way (seen once in a full run).
    let text = eventually(50, Duration::from_millis(100), || async {
        let (_, t) = http_get(&format!("http://127.0.0.1:{mport}/metrics")).await?;
        value(&t, "browser_web_vital_lcp_seconds_count", "/beacon/page").map(|_| t)
    })
    .await;
    let _ = client.close().await;
    let text = text.expect("no LCP beacon reached the collector over TLS");
    let sum = value(&text, "browser_web_vital_lcp_seconds_sum", "/beacon/page").unwrap();
    assert!(
        (sum * 1000.0 - page_lcp).abs() < 2.0,
        "collector {} ms, page {page_lcp} ms",
        sum * 1000.0
    );
}
