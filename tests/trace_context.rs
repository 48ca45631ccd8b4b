//! W3C trace context: a target that records every `traceparent` it receives shows that
//! each request of a run (redirect hops, workflow steps, the websocket upgrade, the
//! assistant's call) carries the run's trace id, which is also the run's id in `once`
//! JSON; `trace_context = false` sends none.

mod common;

use std::sync::{Arc, Mutex};

use common::*;

type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// An HTTP server that records (path, traceparent) of every request: `/hop` redirects to
/// `/final`, everything else answers 200 with a small JSON body.
async fn recording_server() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let log = log.clone();
        async move {
            let tp = req
                .headers()
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let path = req.uri().path().to_string();
            log.lock().unwrap().push((path.clone(), tp));
            if path == "/hop" {
                return axum::response::Response::builder()
                    .status(302)
                    .header("location", "/final")
                    .body(axum::body::Body::empty())
                    .unwrap();
            }
            axum::response::Response::builder()
                .header("content-type", "application/json")
                .body(axum::body::Body::from(r#"{"id":"42","state":"done"}"#))
                .unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, seen)
}

#[allow(clippy::result_large_err)] // tungstenite's callback signature
/// A websocket server that records the upgrade request's `traceparent`, then echoes.
async fn recording_ws_server() -> (String, Arc<Mutex<Vec<Option<String>>>>) {
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let log = seen.clone();
    tokio::spawn(async move {
        for _ in 0..16 {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let callback =
                    |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                     resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
                        let tp = req
                            .headers()
                            .get("traceparent")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string);
                        log.lock().unwrap().push(tp);
                        Ok(resp)
                    };
                if let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await {
                    use futures_util::{SinkExt as _, StreamExt as _};
                    while let Some(Ok(m)) = ws.next().await {
                        if m.is_close() || ws.send(m).await.is_err() {
                            break;
                        }
                    }
                }
            });
        }
    });
    (url, seen)
}

fn trace_ids(seen: &[(String, Option<String>)]) -> Vec<String> {
    seen.iter()
        .map(|(path, tp)| {
            let tp = tp
                .as_deref()
                .unwrap_or_else(|| panic!("{path} came without traceparent"));
            let parts: Vec<&str> = tp.split('-').collect();
            assert_eq!(parts.len(), 4, "{tp}");
            assert_eq!((parts[0], parts[3]), ("00", "01"), "{tp}");
            parts[1].to_string()
        })
        .collect()
}

#[tokio::test]
async fn every_request_of_a_run_carries_the_runs_trace_id() {
    let (base, seen) = recording_server().await;

    // http: a redirect, two requests, one trace; the next run gets another.
    let toml = format!(
        "[[probe]]\nname = \"h\"\nkind = \"http\"\nurl = \"{base}/hop\"\nevery = \"1m\"\nfollow_redirects = 2\n"
    );
    let a = run_probe(&toml).await;
    assert!(a.success(), "{:?}", a.error);
    let first: Vec<(String, Option<String>)> = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(
        first.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
        ["/hop", "/final"]
    );
    let ids = trace_ids(&first);
    assert!(ids.iter().all(|id| *id == a.run_id()), "{ids:?} vs {}", a.run_id());
    let json = sloprobe::once::run_json(&a, 1);
    assert_eq!(json["trace_id"], a.run_id());
    let b = run_probe(&toml).await;
    let second = trace_ids(&std::mem::take(&mut *seen.lock().unwrap()));
    assert!(second.iter().all(|id| *id == b.run_id()));
    assert_ne!(a.run_id(), b.run_id());

    // workflow: every step's request.
    let toml = format!(
        "[[probe]]\nname = \"wf\"\nkind = \"workflow\"\nevery = \"1m\"\ntimeout = \"5s\"\n[[probe.step]]\nname = \"create\"\nmethod = \"POST\"\nurl = \"{base}/jobs\"\n[probe.step.extract]\nid = {{ pointer = \"/id\" }}\n[[probe.step]]\nname = \"read\"\nurl = \"{base}/jobs/${{id}}\"\n"
    );
    let w = run_probe(&toml).await;
    assert!(w.success(), "{:?}", w.error);
    let steps = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert!(trace_ids(&steps).iter().all(|id| *id == w.run_id()));

    // Turned off: no header at all.
    let toml = format!(
        "[[probe]]\nname = \"quiet\"\nkind = \"http\"\nurl = \"{base}/final\"\nevery = \"1m\"\ntrace_context = false\n"
    );
    assert!(run_probe(&toml).await.success());
    let quiet = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(quiet.len(), 1);
    assert_eq!(quiet[0].1, None, "trace_context = false still sent traceparent");
}

#[tokio::test]
async fn the_websocket_upgrade_carries_the_runs_trace_id() {
    let (url, seen) = recording_ws_server().await;
    let toml =
        format!("[[probe]]\nname = \"w\"\nkind = \"websocket\"\nurl = \"{url}\"\nevery = \"30s\"\ntimeout = \"5s\"\n");
    let o = run_probe(&toml).await;
    assert!(o.success(), "{:?}", o.error);
    let got = seen.lock().unwrap().clone();
    assert!(!got.is_empty());
    for tp in got {
        let tp = tp.expect("the upgrade came without traceparent");
        assert_eq!(tp.split('-').nth(1), Some(o.run_id().as_str()), "{tp}");
    }
}

/// The daemon under a real Prometheus with exemplar storage: Prometheus negotiates
/// OpenMetrics, stores the exemplars, and the trace id it returns for the TTFB histogram
/// is one the target received in `traceparent`: from a slow bucket to the backend's trace.
#[tokio::test]
async fn prometheus_stores_the_runs_trace_id_as_an_exemplar() {
    let (base, seen) = recording_server().await;
    let dir = tempfile::tempdir().unwrap();
    let listen = free_port();
    let config = dir.path().join("sloprobe.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{listen}\"\n[[probe]]\nname = \"api\"\nkind = \"http\"\nurl = \"{base}/final\"\nevery = \"1s\"\n[probe.budget]\nttfb = \"1s\"\n"
        ),
    )
    .unwrap();
    let _daemon = start_daemon(&config);
    let prom_cfg = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: sloprobe\n    static_configs:\n      - targets: ['127.0.0.1:{listen}']\n"
    );
    let (_prom, prom_port) = start_prometheus_with(dir.path(), &prom_cfg, &["--enable-feature=exemplar-storage"]);
    let query = format!(
        "http://127.0.0.1:{prom_port}/api/v1/query_exemplars?query=probe_http_ttfb_seconds_bucket&start={}&end={}",
        chrono::Utc::now().timestamp() - 60,
        chrono::Utc::now().timestamp() + 600
    );
    let trace_ids = eventually(60, std::time::Duration::from_millis(500), || {
        let query = query.clone();
        async move {
            let (status, body) = http_get(&query).await?;
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            let ids: Vec<String> = v["data"]
                .as_array()?
                .iter()
                .flat_map(|series| series["exemplars"].as_array().cloned().unwrap_or_default())
                .filter_map(|e| e["labels"]["trace_id"].as_str().map(str::to_string))
                .collect();
            (status == 200 && !ids.is_empty()).then_some(ids)
        }
    })
    .await
    .expect("no exemplar in Prometheus within 30 s");
    let sent: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(_, tp)| tp.as_deref()?.split('-').nth(1).map(str::to_string))
        .collect();
    for id in &trace_ids {
        assert_eq!(id.len(), 32, "{id}");
        assert!(
            sent.contains(id),
            "exemplar trace id {id} never reached the target ({} sent)",
            sent.len()
        );
    }
}

/// A page server that records (path, traceparent): `/` is a page that loads an image from
/// `third` (another host: third party) and fetches `/api`.
async fn recording_page(third: &str) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let third = third.to_string();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let (log, third) = (log.clone(), third.clone());
        async move {
            let tp = req.headers().get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_string);
            let path = req.uri().path().to_string();
            log.lock().unwrap().push((path.clone(), tp));
            let (ct, body) = match path.as_str() {
                "/" => (
                    "text/html",
                    format!(
                        "<!doctype html><title>t</title><h1>traced</h1><img src=\"{third}/third.svg\" width=10 height=10><script>fetch('/api')</script>"
                    ),
                ),
                p if p.ends_with(".svg") => (
                    "image/svg+xml",
                    "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\"><rect width=\"10\" height=\"10\" fill=\"#246\"/></svg>".to_string(),
                ),
                _ => ("application/json", "{}".to_string()),
            };
            ([("content-type", ct)], body)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, seen)
}

/// The browser probe in real Chromium: the page's first-party requests (the document and
/// its fetch) carry the run's trace id, the third-party image does not; with
/// `trace_requests = "all"` it does too.
#[tokio::test]
async fn the_browser_adds_traceparent_to_first_party_requests_only() {
    let (third_base, third_seen) = recording_server().await;
    // The same server under another host name: third party for a page on 127.0.0.1.
    let third = third_base.replace("127.0.0.1", "localhost");
    let (base, seen) = recording_page(&third).await;
    for mode in ["first_party", "all"] {
        let toml = format!(
            "[[probe]]\nname = \"page\"\nkind = \"browser\"\nurl = \"{base}/\"\nevery = \"1m\"\ntimeout = \"20s\"\nsettle = \"300ms\"\ntrace_requests = \"{mode}\"\n"
        );
        let o = run_probe(&toml).await;
        assert!(o.success(), "{:?}", o.error);
        let first = std::mem::take(&mut *seen.lock().unwrap());
        let paths: Vec<&str> = first.iter().map(|(p, _)| p.as_str()).collect();
        assert!(paths.contains(&"/") && paths.contains(&"/api"), "{paths:?}");
        for (path, tp) in first.iter().filter(|(p, _)| p != "/favicon.ico") {
            let tp = tp
                .as_deref()
                .unwrap_or_else(|| panic!("{path} came without traceparent ({mode})"));
            assert_eq!(tp.split('-').nth(1), Some(o.run_id().as_str()), "{path}: {tp}");
        }
        let third = std::mem::take(&mut *third_seen.lock().unwrap());
        assert!(third.iter().any(|(p, _)| p == "/third.svg"), "{third:?}");
        for (path, tp) in third {
            match mode {
                "first_party" => assert_eq!(tp, None, "third-party {path} got traceparent"),
                _ => assert!(
                    tp.is_some_and(|t| t.contains(&o.run_id())),
                    "{path} without the run's traceparent"
                ),
            }
        }
    }
}
