//! Browser journeys in real headless Chromium against the demo app, whose delays are
//! known: sign in with a secret password (never in any output), the dashboard's first
//! content after a slow API call, a click whose handler blocks for a known time (lab INP,
//! checked against the real web-vitals `onINP` in the same page and run), the player's
//! first frame after a slow segment, and a failing assertion. Browser tests take turns.

mod common;

use std::time::Duration;

use common::*;
use sloprobe::probe::{self, BuildContext};

static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Serves the real web-vitals IIFE build (npm, installed by scripts/test.sh) on loopback.
async fn web_vitals_origin() -> (String, tokio::task::JoinHandle<()>) {
    let file = std::path::Path::new(".cache/rum/node_modules/web-vitals/dist/web-vitals.iife.js");
    let script = std::fs::read(file)
        .unwrap_or_else(|e| panic!("{}: {e}: run scripts/test.sh (it installs web-vitals)", file.display()));
    let app = axum::Router::new().route(
        "/web-vitals.iife.js",
        axum::routing::get(move || {
            let script = script.clone();
            async move { ([("content-type", "text/javascript")], script) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (origin, task)
}

fn journey_probe(url: &str, steps: &str) -> String {
    format!(
        "[[probe]]\nname = \"journey\"\nkind = \"browser\"\nurl = \"{url}\"\nevery = \"1m\"\ntimeout = \"30s\"\nsettle = \"300ms\"\n{steps}\n"
    )
}

const PASSWORD: &str = "correct-horse-battery-31";

const LOGIN_STEPS: &str = r##"metrics_script = "wv.js"
script_metrics = { wv_inp = "ms" }
[probe.budget]
dashboard_first_content = "5s"
inp = "2s"
"sign_in.lcp" = "5s"
[[probe.step]]
type = "#user"
value = "alice"
[[probe.step]]
type = "#password"
value = "env:JOURNEY_PASSWORD"
[[probe.step]]
name = "sign_in"
click = "#sign-in"
timeout = "10s"
[[probe.step]]
name = "stats"
wait_for = "#stats .card"
[[probe.step]]
mark = "dashboard_first_content"
[[probe.step]]
name = "recalculate"
click = "#recalculate"
[[probe.step]]
wait_for_text = "Recalculated"
[[probe.step]]
assert_url = "/app/dashboard"
"##;

#[tokio::test]
async fn login_to_dashboard_times_each_step_and_lab_inp_equals_web_vitals() {
    let _turn = TURN.lock().await;
    let t = plain_target().await;
    let (wv, _wv_task) = web_vitals_origin().await;
    // SAFETY: only this test reads JOURNEY_PASSWORD.
    unsafe { std::env::set_var("JOURNEY_PASSWORD", PASSWORD) };
    let (api_delay, handler) = (600u64, 200u64);
    let url = t.url(&format!("/app/login?api_delay={api_delay}&handler={handler}&wv={wv}"));
    let toml = journey_probe(&url, LOGIN_STEPS);
    let dir = write_files(&[
        ("sloprobe.toml", &toml),
        ("wv.js", "return { wv_inp: window.__wvInp };"),
    ]);
    let cfg = sloprobe::assembly::Config::load(&dir.path().join("sloprobe.toml")).unwrap();
    let probes = probe::build_all(&cfg.probes, &BuildContext::new()).unwrap();
    let o = probes[0].execute().await;
    assert!(o.success(), "{:?} {:?}", o.error, o.steps);
    let names: Vec<&str> = o.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "type_1",
            "type_2",
            "sign_in",
            "stats",
            "dashboard_first_content",
            "recalculate",
            "wait_for_text_7",
            "assert_url_8"
        ]
    );
    // The card renders after the API's delay, which starts once the dashboard has loaded.
    let first_content = m(&o, "dashboard_first_content");
    assert!(
        first_content >= api_delay as f64 / 1000.0 && first_content < api_delay as f64 / 1000.0 + 1.5,
        "dashboard_first_content {first_content}"
    );
    assert!(
        m(&o, "stats") >= api_delay as f64 / 1000.0 - 0.3,
        "stats {}",
        m(&o, "stats")
    );
    // The sign-in led to the dashboard: its own vitals and bytes, apart from the login page's.
    for key in [
        "sign_in.ttfb",
        "sign_in.fcp",
        "sign_in.lcp",
        "sign_in.total_bytes",
        "sign_in.requests",
    ] {
        assert!(o.get(key).is_some(), "{key} unmeasured: {:?}", o.measurements);
    }
    assert!(m(&o, "sign_in.requests") >= 2.0, "the dashboard and its API call");
    // Nothing is given to a step that did not navigate.
    assert!(
        o.get("recalculate.ttfb").is_none(),
        "the dashboard was given to the wrong step"
    );
    assert!(o.get("lcp").is_some() && o.get("total_bytes").is_some());
    // Lab INP: at least the handler's block (Event Timing rounds to 8 ms), at most one
    // frame or two more; and exactly what the page's own web-vitals onINP reported.
    let inp = m(&o, "inp");
    assert!(
        inp >= handler as f64 / 1000.0 && inp <= handler as f64 / 1000.0 + 0.1,
        "inp {inp}"
    );
    assert_eq!(inp, m(&o, "wv_inp"), "sloprobe's INP and web-vitals' onINP differ");
    assert_eq!(m(&o, "recalculate.interaction"), inp);
    assert!(o.breaches.is_empty(), "{:?}", o.breaches);
    // The password never leaves the browser: not in the outcome, the JSON, the plan.
    let out = format!("{o:?} {}", sloprobe::once::run_json(&o, 1));
    assert!(!out.contains(PASSWORD), "the password leaked: {out}");
    let plan = sloprobe(&["check"], &dir.path().join("sloprobe.toml"));
    assert!(!plan.contains(PASSWORD), "{plan}");
    assert!(
        plan.contains("type secret env:JOURNEY_PASSWORD <redacted>")
            || plan.contains("secret env:JOURNEY_PASSWORD <redacted>"),
        "{plan}"
    );

    // An empty password: the sign-in leads to a 401 page, and the run fails at that step.
    let failing = LOGIN_STEPS
        .replace("env:JOURNEY_PASSWORD", "")
        .replace("metrics_script = \"wv.js\"\nscript_metrics = { wv_inp = \"ms\" }\n", "");
    let o = run_probe(&journey_probe(&t.url("/app/login?api_delay=0"), &failing)).await;
    assert_eq!(error_type(&o), "http_status", "{:?}", o.error);
    let message = &o.error.as_ref().unwrap().message;
    assert!(
        message.starts_with("step sign_in:") && message.contains("401"),
        "{message}"
    );
}

#[tokio::test]
async fn a_failing_assertion_names_its_step_and_a_missing_element_fails_at_the_step_timeout() {
    let _turn = TURN.lock().await;
    let t = plain_target().await;
    let steps = r##"[[probe.step]]
assert_text = "Welcome back"
"##;
    let o = run_probe(&journey_probe(&t.url("/app/login"), steps)).await;
    assert_eq!(error_type(&o), "assertion_failed", "{:?}", o.error);
    let message = &o.error.as_ref().unwrap().message;
    assert!(message.starts_with("step assert_text_1:"), "{message}");
    assert!(o.steps.last().is_some_and(|s| s.error.is_some()));
    // The login page's own figures were still read.
    assert!(o.get("lcp").is_some());

    let steps = r##"[[probe.step]]
click = "#no-such-button"
timeout = "1500ms"
"##;
    let started = std::time::Instant::now();
    let o = run_probe(&journey_probe(&t.url("/app/login"), steps)).await;
    assert_eq!(error_type(&o), "assertion_failed", "{:?}", o.error);
    assert!(
        o.error.as_ref().unwrap().message.contains("no element matches"),
        "{:?}",
        o.error
    );
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
}

#[tokio::test]
async fn the_player_flow_times_click_to_first_frame() {
    let _turn = TURN.lock().await;
    let t = plain_target().await;
    let delay = 500u64;
    let steps = r##"[[probe.step]]
name = "play"
click = "#play"
[[probe.step]]
name = "player_first_frame"
first_frame = "#player"
timeout = "10s"
"##;
    let o = run_probe(&journey_probe(
        &t.url(&format!("/app/player?segment_delay={delay}")),
        steps,
    ))
    .await;
    assert!(o.success(), "{:?} {:?}", o.error, o.steps);
    let first_frame = m(&o, "player_first_frame");
    assert!(
        first_frame >= delay as f64 / 1000.0 && first_frame < delay as f64 / 1000.0 + 1.5,
        "first frame {first_frame}"
    );
}

/// PNG width and height from its IHDR chunk (after the 8-byte signature).
fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&png[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&png[16..20]), be(&png[20..24]))
}

#[tokio::test]
async fn a_failing_step_leaves_a_screenshot_console_and_requests_and_the_cap_holds() {
    let _turn = TURN.lock().await;
    let t = plain_target().await;
    sloprobe::outcome::capture_evidence(true);
    // SAFETY: only this test reads EVIDENCE_PASSWORD.
    unsafe { std::env::set_var("EVIDENCE_PASSWORD", "evidence-pass-8842") };
    let steps = r##"viewport = "800x600"
[[probe.step]]
type = "#password"
value = "env:EVIDENCE_PASSWORD"
[[probe.step]]
name = "welcome"
assert_text = "Welcome back"
"##;
    let o = run_probe(&journey_probe(&t.url("/app/login"), steps)).await;
    assert_eq!(error_type(&o), "assertion_failed", "{:?}", o.error);
    let dir = tempfile::tempdir().unwrap();
    let settings = sloprobe::artifacts::ArtifactSettings {
        dir: dir.path().to_path_buf(),
        max_size: 4 * 1024 * 1024,
        keep: 20,
    };
    let store = sloprobe::artifacts::Store::open(settings).unwrap();
    let folder = store
        .write(&o, &sloprobe::once::run_json(&o, 1))
        .unwrap()
        .expect("a failed run keeps artifacts");
    assert!(folder.to_string_lossy().ends_with(&o.run_id()));
    let png = std::fs::read(folder.join("screenshot.png")).unwrap();
    assert_eq!(png_size(&png), (800, 600));
    let console = std::fs::read_to_string(folder.join("console.txt")).unwrap();
    assert!(console.contains("warn: sign-in page ready"), "{console}");
    assert!(console.contains("url: http://127.0.0.1:"), "{console}");
    let requests = std::fs::read_to_string(folder.join("requests.txt")).unwrap();
    assert!(!requests.is_empty());
    for entry in std::fs::read_dir(&folder).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("evidence-pass-8842"));
    }
    // A thousand more failures with this run's real screenshot: both caps hold throughout.
    for _ in 0..1000 {
        let mut again = o.clone();
        again.trace = sloprobe::trace::TraceContext::new(false);
        store.write(&again, &serde_json::json!({})).unwrap();
        let (runs, bytes) = store.usage();
        assert!(runs <= 20 && bytes <= 4 * 1024 * 1024, "{runs} runs, {bytes} bytes");
    }
    let on_disk: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|f| f.unwrap().metadata().unwrap().len())
        .sum();
    assert!(on_disk <= 4 * 1024 * 1024, "{on_disk} bytes on disk");
    assert!(std::fs::read_dir(dir.path()).unwrap().count() <= 20);
}

/// A hostile page rewrites what sloprobe reads back: 200,000 fake interactions and a
/// console of 100 strings of 1 MiB. The journey still ends in time, INP comes from at most
/// 1,000 of them, and the evidence keeps 50 console lines of at most 300 characters.
#[tokio::test]
async fn a_page_that_forges_what_sloprobe_reads_cannot_make_it_read_much() {
    let _turn = TURN.lock().await;
    sloprobe::outcome::capture_evidence(true);
    let page = "<!doctype html><title>h</title><button id=b>b</button><script>
document.getElementById('b').addEventListener('click', () => {
  const fake = {}; for (let i = 1; i <= 200000; i++) fake[i] = [performance.timeOrigin, 5000];
  const big = 'x'.repeat(1 << 20); const c = []; for (let i = 0; i < 100; i++) c.push(big);
  window.__sloprobe = { interactions: fake, console: c };
});
</script>";
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || async move { ([("content-type", "text/html")], page) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let steps = "[[probe.step]]\nclick = \"#b\"\n[[probe.step]]\nassert_text = \"never there\"\n";
    let started = std::time::Instant::now();
    let o = run_probe(&journey_probe(&url, steps)).await;
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    assert_eq!(error_type(&o), "assertion_failed", "{:?}", o.error);
    let console = o
        .evidence
        .iter()
        .find(|(n, _)| *n == "console.txt")
        .expect("console evidence");
    let text = String::from_utf8_lossy(&console.1);
    assert!(text.lines().count() <= 52, "{} lines", text.lines().count());
    assert!(text.len() < 50 * 400, "{} bytes of console kept", text.len());
    // Forged interactions count at most 1,000: INP is their 5 s, or the real click's.
    if let Some(inp) = o.get("inp") {
        assert!(inp <= 5.0, "{inp}");
    }
}

/// A submit the page handles itself (`preventDefault` in its own listener) leaves the step
/// on its page; a click whose handler calls `location.assign` leads to the next page, which
/// that step gets.
#[tokio::test]
async fn a_cancelled_submit_stays_and_a_scripted_navigation_is_followed() {
    let _turn = TURN.lock().await;
    let form = "<!doctype html><title>f</title><form action=/next method=post><button id=save>Save</button></form>
<button id=go>Go</button><p id=out></p><script>
addEventListener('submit', (e) => { e.preventDefault(); setTimeout(() => { document.getElementById('out').textContent = 'Saved'; }, 50); });
document.getElementById('go').addEventListener('click', () => location.assign('/next'));
</script>";
    let next = "<!doctype html><title>n</title><h1>Next page</h1>";
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::get(move || async move { ([("content-type", "text/html")], form) }),
        )
        .route(
            "/next",
            axum::routing::any(move || async move { ([("content-type", "text/html")], next) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let steps = r##"[[probe.step]]
name = "save"
click = "#save"
[[probe.step]]
wait_for_text = "Saved"
[[probe.step]]
name = "go"
click = "#go"
[[probe.step]]
assert_text = "Next page"
"##;
    let started = std::time::Instant::now();
    let o = run_probe(&journey_probe(&url, steps)).await;
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    assert!(o.success(), "{:?} {:?}", o.error, o.steps);
    let notes = |name: &str| o.steps.iter().find(|s| s.name == name).unwrap().notes.join(" ");
    assert!(!notes("save").contains("loaded"), "{}", notes("save"));
    assert!(o.get("save.ttfb").is_none(), "the cancelled submit was given a page");
    assert!(
        notes("go").contains("loaded") && notes("go").contains("/next"),
        "{}",
        notes("go")
    );
    assert!(o.get("go.ttfb").is_some(), "{:?}", o.measurements);
}
