//! Evidence on failure for HTTP-speaking kinds: `once --artifacts DIR` keeps a folder per
//! failed run named by its run id (the trace id, also in the run's JSON), with the response's
//! status line and headers (credentials redacted) and the first KiB of its body, sanitised;
//! a credential the server echoes back never reaches the files. Passing runs leave nothing.

mod common;

use common::*;

const TOKEN: &str = "tok-artifacts-5f1e9c77";

/// Answers 503 with a Set-Cookie, a long body that echoes the request's Authorization
/// header and carries a control character; `/ok` answers 200.
async fn failing_server() -> String {
    let app = axum::Router::new()
        .route("/ok", axum::routing::get(|| async { "fine" }))
        .fallback(|headers: axum::http::HeaderMap| async move {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let body = format!("upstream down; you sent {auth}\u{1b}[31m\n{}", "x".repeat(5000));
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                [("set-cookie", "sid=abc123; HttpOnly"), ("x-request-id", "r-42")],
                body,
            )
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    base
}

#[tokio::test]
async fn a_failed_http_run_keeps_its_response_head_and_body_start_without_secrets() {
    let base = failing_server().await;
    // SAFETY: only this test reads ARTIFACT_TOKEN.
    unsafe { std::env::set_var("ARTIFACT_TOKEN", TOKEN) };
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[[probe]]\nname = \"down\"\nkind = \"http\"\nurl = \"{base}/api\"\nevery = \"1m\"\n[probe.request]\nbearer = \"env:ARTIFACT_TOKEN\"\n\n[[probe]]\nname = \"up\"\nkind = \"http\"\nurl = \"{base}/ok\"\nevery = \"1m\"\n"
    );
    let (_cfg_dir, probes) = build_probes(&toml);
    let files = sloprobe::once::Files {
        artifacts: Some(dir.path().join("artifacts")),
        ..Default::default()
    };
    let mut out = Vec::new();
    let code = sloprobe::once::run(probes, 1, sloprobe::once::Format::Json, &files, &mut out).await;
    assert_eq!(code, 1);
    let out = String::from_utf8(out).unwrap();
    assert!(!out.contains(TOKEN), "{out}");
    let run: serde_json::Value = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["type"] == "run" && v["probe"] == "down")
        .unwrap();
    let folder = std::path::PathBuf::from(run["artifacts"].as_str().expect("no artifacts path in the run's JSON"));
    let trace_id = run["trace_id"].as_str().unwrap();
    assert!(
        folder
            .file_name()
            .unwrap()
            .to_string_lossy()
            .ends_with(&format!("-down-{trace_id}")),
        "{folder:?}"
    );
    let entries: Vec<String> = std::fs::read_dir(dir.path().join("artifacts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(entries.len(), 1, "only the failed run keeps a folder: {entries:?}");

    let head = std::fs::read_to_string(folder.join("response-head.txt")).unwrap();
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(
        head.contains("set-cookie: <redacted>") && !head.contains("abc123"),
        "{head}"
    );
    assert!(head.contains("x-request-id: r-42"), "{head}");
    let body = std::fs::read_to_string(folder.join("response-body.txt")).unwrap();
    assert!(
        body.starts_with("upstream down; you sent <redacted>\\u{1b}[31m"),
        "{body}"
    );
    assert!(!body.contains(TOKEN) && !body.contains('\u{1b}'), "{body}");
    assert!(body.len() < 1300, "{} bytes of body kept", body.len());
    let json = std::fs::read_to_string(folder.join("run.json")).unwrap();
    assert!(
        json.contains("\"error_type\": \"http_status\"") && !json.contains(TOKEN),
        "{json}"
    );
    for entry in std::fs::read_dir(&folder).unwrap() {
        let text = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!String::from_utf8_lossy(&text).contains(TOKEN));
    }
}

/// The daemon with `[artifacts]`: failed runs leave folders, and `keep` holds as runs go on.
#[tokio::test]
async fn the_daemon_keeps_failed_runs_folders_within_keep() {
    let base = failing_server().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sloprobe.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{}\"\n[artifacts]\ndir = \"kept\"\nkeep = 3\nmax_size = \"2MiB\"\n[[probe]]\nname = \"down\"\nkind = \"http\"\nurl = \"{base}/api\"\nevery = \"200ms\"\ntimeout = \"150ms\"\n",
            free_port()
        ),
    )
    .unwrap();
    let _daemon = start_daemon(&config);
    let kept = dir.path().join("kept");
    let count = || std::fs::read_dir(&kept).map(|d| d.count()).unwrap_or(0);
    let first = eventually(100, std::time::Duration::from_millis(100), || async {
        let folder = std::fs::read_dir(&kept).ok()?.next()?.ok()?.path();
        folder.join("response-head.txt").exists().then_some(folder)
    })
    .await
    .expect("no artifact folder within 10 s");
    assert!(first.join("run.json").exists());
    // Runs every 200 ms for 2 s more: about ten failures, three folders kept.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let n = count();
    assert!((1..=3).contains(&n), "{n} folders kept with keep = 3");
    assert!(!first.exists() || n <= 3);
}
