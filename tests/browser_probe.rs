//! The browser probe in real headless Chromium (Debian's chromium + chromium-driver, which
//! scripts/test.sh installs) against the demo page, whose vitals and bytes are known:
//! an LCP image delayed by D ms, a layout shift of a known score, gzipped JS/CSS of known
//! encoded size, cross-origin images with and without Timing-Allow-Origin, a page that
//! never finishes loading, a script error, and chromedriver killed mid-run. Browser tests
//! take turns: two cores do not run two Chromiums well.

mod common;

use std::time::Duration;

use common::*;
use sloprobe::assembly::Config;
use sloprobe::probe::{self, BuildContext, BuiltProbe};

static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn page_probe(url: &str, extra: &str) -> String {
    format!(
        "[[probe]]\nname = \"page\"\nkind = \"browser\"\nurl = \"{url}\"\nevery = \"1m\"\ntimeout = \"15s\"\nsettle = \"400ms\"\n{extra}\n"
    )
}

fn build(files: &[(&str, &str)], ctx: &BuildContext) -> (tempfile::TempDir, Vec<BuiltProbe>) {
    let dir = write_files(files);
    let cfg = Config::load(&dir.path().join(files[0].0)).unwrap_or_else(|e| panic!("config: {e}"));
    let probes = probe::build_all(&cfg.probes, ctx).unwrap_or_else(|e| panic!("build: {e}"));
    (dir, probes)
}

/// Builds with the file's own `[browser]` settings, as the daemon does.
fn build_with_browser(toml: &str) -> (tempfile::TempDir, Vec<BuiltProbe>, BuildContext) {
    let dir = write_files(&[("sloprobe.toml", toml)]);
    let cfg = Config::load(&dir.path().join("sloprobe.toml")).unwrap_or_else(|e| panic!("config: {e}"));
    let ctx = BuildContext::with_browser(cfg.browser.clone());
    let probes = probe::build_all(&cfg.probes, &ctx).unwrap_or_else(|e| panic!("build: {e}"));
    (dir, probes, ctx)
}

async fn run_once(toml: &str) -> sloprobe::outcome::Outcome {
    let ctx = BuildContext::new();
    let (_dir, probes) = build(&[("sloprobe.toml", toml)], &ctx);
    probes[0].execute().await
}

/// Encoded size of a demo asset, fetched the way the browser gets it (gzip).
async fn encoded_len(t: &Target, path: &str) -> f64 {
    let url = t.url(path);
    let stream = tokio::net::TcpStream::connect(t.addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(url)
        .header("accept-encoding", "gzip")
        .header("host", t.addr.to_string())
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    use http_body_util::BodyExt as _;
    resp.into_body().collect().await.unwrap().to_bytes().len() as f64
}

/// Chromium processes this test process started, directly or not: descendants by parent
/// pid. The test process is made a child subreaper, so a browser orphaned by a killed
/// `once` or chromedriver is re-parented here, not to init, and still counts; a Chromium
/// anything else on the host runs never does.
fn chromium_processes() -> Vec<i32> {
    static SUBREAPER: std::sync::Once = std::sync::Once::new();
    // SAFETY: prctl(2) with PR_SET_CHILD_SUBREAPER only sets a flag on this process.
    SUBREAPER.call_once(|| unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    });
    let me = std::process::id() as i32;
    let parent = |pid: i32| -> Option<i32> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        s[s.rfind(')')? + 2..].split_whitespace().nth(1)?.parse().ok()
    };
    sloprobe::probe::browser::driver::chromium_processes()
        .into_iter()
        .filter(|&pid| {
            let mut p = pid;
            for _ in 0..64 {
                match parent(p) {
                    Some(pp) if pp == me => return true,
                    Some(pp) if pp > 1 => p = pp,
                    _ => return false,
                }
            }
            false
        })
        .collect()
}

fn leftover(before: &[i32]) -> Vec<i32> {
    chromium_processes()
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect()
}

async fn no_leftovers(before: &[i32]) {
    // Killed processes take a moment to go.
    let left = eventually(50, Duration::from_millis(100), || async {
        let l = leftover(before);
        l.is_empty().then_some(())
    })
    .await;
    assert!(left.is_some(), "Chromium processes left behind: {:?}", leftover(before));
}

#[tokio::test]
async fn lcp_follows_the_delayed_image_and_cls_the_known_shift() {
    let _turn = TURN.lock().await;
    let t = plain_target().await;
    for (delay, shift) in [(300u64, 0.05), (900, 0.2)] {
        let o = run_once(&page_probe(
            &t.url(&format!("/page?lcp_delay={delay}&shift={shift}")),
            "",
        ))
        .await;
        assert!(o.success(), "{:?}", o.error);
        let lcp = m(&o, "lcp");
        let d = delay as f64 / 1000.0;
        assert!(lcp >= d && lcp < d + 0.5, "lcp {lcp} for an image delayed {d}s");
        let cls = m(&o, "cls");
        assert!((cls - shift).abs() <= 0.01, "cls {cls} for a shift of {shift}");
        assert!(m(&o, "fcp") <= lcp && m(&o, "ttfb") <= m(&o, "fcp"));
        assert!(m(&o, "load") >= d, "load waits for the image");
        let el = o
            .details
            .iter()
            .find(|(k, _)| *k == "lcp_element")
            .map(|(_, v)| v.as_str());
        assert_eq!(el, Some("img#hero"));
        assert!(m(&o, "memory") > 10e6, "PSS of the run's Chromium");
    }
}

#[tokio::test]
async fn script_and_stylesheet_bytes_are_exact_and_budgets_break_when_over() {
    let _turn = TURN.lock().await;
    let t = plain_target().await;
    let js = encoded_len(&t, "/page/app.js?kb=64").await;
    let css = encoded_len(&t, "/page/app.css?kb=16").await;
    assert!(js > 1000.0 && js < 64.0 * 1024.0, "gzipped js {js}");
    let o = run_once(&page_probe(
        &t.url("/page?js_kb=64&css_kb=16"),
        &format!(
            "[probe.budget]\nscript_bytes = {}\nstylesheet_bytes = {css}\n",
            js as u64 - 1
        ),
    ))
    .await;
    assert!(o.success(), "{:?}", o.error);
    assert_eq!(m(&o, "script_bytes"), js);
    assert_eq!(m(&o, "script_first_party_bytes"), js);
    assert_eq!(m(&o, "stylesheet_bytes"), css);
    assert_eq!(m(&o, "script_requests"), 1.0);
    assert_eq!(m(&o, "js_errors"), 0.0);
    // Over budget by one byte breaks it; exactly at budget does not.
    let broken: Vec<&str> = o.breaches.iter().map(|b| b.measurement.as_str()).collect();
    assert_eq!(broken, ["script_bytes"]);
}

#[tokio::test]
async fn cross_origin_bytes_are_measured_without_timing_allow_origin() {
    let _turn = TURN.lock().await;
    let t = plain_target().await;
    // Same server, other origin: localhost is not 127.0.0.1 to the browser.
    let other = format!("http://localhost:{}", t.addr.port());
    let image = encoded_len(&t, "/page/hero.svg?tao=1&w=10").await;
    let script = encoded_len(&t, "/page/app.js?kb=200").await;
    // A "CDN" script (200 KiB, ~75 KB gzipped) without Timing-Allow-Origin against a 50 KiB script budget:
    // Resource Timing reads its size as 0; DevTools knows it.
    let o = run_once(&page_probe(
        &t.url(&format!("/page?third={other}&third_js=200")),
        "[probe.budget]\nscript_bytes = \"50KiB\"\n",
    ))
    .await;
    assert!(o.success(), "{:?}", o.error);
    assert_eq!(m(&o, "image_third_party_requests"), 2.0);
    assert_eq!(m(&o, "unmeasured_requests"), 0.0, "DevTools reports every response");
    assert_eq!(
        m(&o, "image_third_party_bytes"),
        2.0 * image,
        "with and without TAO alike"
    );
    assert_eq!(m(&o, "script_third_party_bytes"), script);
    assert!(
        m(&o, "script_third_party_transfer") > script,
        "transfer counts the headers"
    );
    assert!(
        script > 50.0 * 1024.0 && script < 200.0 * 1024.0,
        "gzipped script {script}"
    );
    let broken: Vec<&str> = o.breaches.iter().map(|b| b.measurement.as_str()).collect();
    assert_eq!(broken, ["script_bytes"], "the CDN script breaks the script budget");
    assert_eq!(m(&o, "third_party_requests"), 3.0);
    assert_eq!(m(&o, "image_first_party_requests"), 1.0);
    // Declared first party, the other origin moves over.
    let o = run_once(&page_probe(
        &t.url(&format!("/page?third={other}")),
        "first_party_hosts = [\"127.0.0.1\", \"localhost\"]",
    ))
    .await;
    assert_eq!(m(&o, "third_party_requests"), 0.0);
    assert_eq!(m(&o, "image_first_party_requests"), 3.0);
}

/// An image inserted 300 ms after load and served 2 s late, above the content without
/// reserved space: a fixed sleep after load read the h1 as LCP and missed the shift; the
/// settle waits for the network and main thread to be quiet, so the image is the LCP and
/// its shift counts. A budget on time to interactive makes it wait 5 s of quiet.
#[tokio::test]
async fn the_settle_waits_for_late_images_and_their_shifts() {
    let _turn = TURN.lock().await;
    let t = plain_target().await;
    let o = run_once(&page_probe(
        &t.url("/page?late_image=2000"),
        "[probe.budget]\nlcp = \"2s\"\ninteractive = \"30s\"\nmax_potential_fid = \"1s\"\n",
    ))
    .await;
    assert!(o.success(), "{:?}", o.error);
    let lcp = m(&o, "lcp");
    assert!((2.3..3.5).contains(&lcp), "lcp {lcp} on the late image");
    let el = o
        .details
        .iter()
        .find(|(k, _)| *k == "lcp_element")
        .map(|(_, v)| v.as_str());
    assert_eq!(el, Some("img#late"));
    assert!(m(&o, "cls") > 0.1, "the late image's shift: cls {}", m(&o, "cls"));
    assert_eq!(m(&o, "image_requests"), 2.0);
    assert_eq!(m(&o, "unmeasured_requests"), 0.0);
    let broken: Vec<&str> = o.breaches.iter().map(|b| b.measurement.as_str()).collect();
    assert_eq!(broken, ["lcp"]);
    // Time to interactive was measured (a 5 s quiet window was waited for).
    let tti = m(&o, "interactive");
    assert!(tti >= m(&o, "dom_content_loaded") && tti < 3.0, "interactive {tti}");
    assert!(m(&o, "max_potential_fid") <= 0.05 + 1e-9);
    assert!(!o.details.iter().any(|(k, _)| *k == "not_quiet"), "{:?}", o.details);

    // A page that never goes quiet is read at settle_max, and says why.
    let o = run_once(&page_probe(
        &t.url("/page?late_image=5000"),
        "settle_max = \"1s\"\n[probe.budget]\nimage_bytes = \"1MiB\"\n",
    ))
    .await;
    assert!(o.success(), "{:?}", o.error);
    let why = o
        .details
        .iter()
        .find(|(k, _)| *k == "not_quiet")
        .map(|(_, v)| v.clone());
    assert!(
        why.as_deref().is_some_and(|w| w.contains("1 request(s) in flight")),
        "{why:?}"
    );
    // The image still loading has no size yet: unmeasured, and its budget fails.
    assert_eq!(m(&o, "unmeasured_requests"), 1.0);
    assert!(o.get("image_bytes").is_none());
    let b = o
        .breaches
        .iter()
        .find(|b| b.measurement == "image_bytes")
        .expect("unmeasured breaks");
    assert_eq!(b.value, None);
}

#[tokio::test]
async fn a_page_that_never_loads_is_a_timeout_that_keeps_what_it_measured() {
    let _turn = TURN.lock().await;
    let t = plain_target().await;
    let toml = page_probe(&t.url("/page?hang=1"), "").replace("timeout = \"15s\"", "timeout = \"4s\"");
    // A hang past the 4 s timeout would trip this (five times over, so a slow host
    // does not); how close to the timeout the run ends is bench/hostile.py's to measure.
    let o = tokio::time::timeout(Duration::from_secs(20), run_once(&toml))
        .await
        .expect("the run hung past its timeout");
    assert_eq!(error_type(&o), "timeout", "{:?}", o.error);
    assert!(m(&o, "fcp") > 0.0, "paint happened before the hang");
    assert!(o.get("load").is_none(), "no load event");
}

#[tokio::test]
async fn a_script_error_is_counted_not_fatal() {
    let _turn = TURN.lock().await;
    let t = plain_target().await;
    let o = run_once(&page_probe(&t.url("/page?error=1"), "[probe.budget]\njs_errors = 0")).await;
    assert!(o.success(), "{:?}", o.error);
    assert_eq!(m(&o, "js_errors"), 1.0);
    let first = o
        .details
        .iter()
        .find(|(k, _)| *k == "first_js_error")
        .map(|(_, v)| v.clone());
    assert!(first.unwrap_or_default().contains("TypeError"));
    assert_eq!(o.breaches.len(), 1);
}

#[tokio::test]
async fn failed_navigations_are_classified() {
    let _turn = TURN.lock().await;
    let t = plain_target().await;
    let o = run_once(&page_probe(&format!("http://127.0.0.1:{}/", refused_port()), "")).await;
    assert_eq!(error_type(&o), "connect_refused", "{:?}", o.error);
    let o = run_once(&page_probe(&t.url("/status/503"), "")).await;
    assert_eq!(error_type(&o), "http_status", "{:?}", o.error);
    assert_eq!(o.label("http.response.status_code"), Some("503"));
}

#[tokio::test]
async fn metrics_script_numbers_are_recorded_and_budgeted() {
    let _turn = TURN.lock().await;
    let t = plain_target().await;
    let script = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/scripts/video-first-frame.js"
    ))
    .unwrap();
    let toml = page_probe(
        &t.url("/page?video=1"),
        "metrics_script = \"first-frame.js\"\nscript_metrics = { first_frame = \"ms\" }\n[probe.budget]\nfirst_frame = \"0s\"",
    );
    let ctx = BuildContext::new();
    let (_dir, probes) = build(&[("sloprobe.toml", &toml), ("first-frame.js", &script)], &ctx);
    let o = probes[0].execute().await;
    assert!(o.success(), "{:?}", o.error);
    let ff = m(&o, "first_frame");
    assert!(ff > 0.0 && ff < 2.0, "first frame {ff}s");
    assert!(o.breaches.iter().any(|b| b.measurement == "first_frame"));
    // What is no number never passes: a string, Infinity or a negative fails the run; a
    // missing or NaN (null in JSON) value is unmeasured, and its budget breaks.
    for (returns, expect) in [
        ("{ first_frame: '12' }", Some("assertion_failed")),
        ("{ first_frame: -1 }", Some("assertion_failed")),
        ("{ first_frame: NaN }", None),
        ("{}", None),
    ] {
        let (_dir, probes) = build(
            &[
                (
                    "sloprobe.toml",
                    &toml.replace("first_frame = \"0s\"", "first_frame = \"10s\""),
                ),
                ("first-frame.js", &format!("return {returns};")),
            ],
            &ctx,
        );
        let o = probes[0].execute().await;
        match expect {
            Some(kind) => assert_eq!(error_type(&o), kind, "{returns}: {:?}", o.error),
            None => {
                assert!(o.success(), "{returns}: {:?}", o.error);
                let b = o.breaches.iter().find(|b| b.measurement == "first_frame");
                assert!(b.is_some_and(|b| b.value.is_none()), "{returns}: {:?}", o.breaches);
            }
        }
    }
}

#[tokio::test]
async fn chromedriver_killed_mid_run_then_the_next_run_works_and_nothing_is_left() {
    let _turn = TURN.lock().await;
    let before = chromium_processes();
    let t = plain_target().await;
    let ctx = BuildContext::new();
    let (_dir, probes) = build(
        &[("sloprobe.toml", &page_probe(&t.url("/page?lcp_delay=3000"), ""))],
        &ctx,
    );
    let p = &probes[0];
    let browsers = ctx.browsers();
    let killer = tokio::spawn(async move {
        let pid = eventually(100, Duration::from_millis(50), || {
            let b = browsers.clone();
            async move { b.driver_pid().await }
        })
        .await
        .expect("chromedriver started");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // SAFETY: kill(2) on the chromedriver this test's probe started.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    });
    let o = p.execute().await;
    killer.await.unwrap();
    assert!(!o.success(), "a run whose chromedriver died cannot pass");
    assert!(["browser_error", "timeout"].contains(&error_type(&o)), "{:?}", o.error);
    let fast = page_probe(&t.url("/page"), "");
    let (_dir2, again) = build(&[("sloprobe.toml", &fast)], &ctx);
    let o = again[0].execute().await;
    assert!(o.success(), "after a restart: {:?}", o.error);
    drop((probes, again, ctx));
    no_leftovers(&before).await;
}

/// 100 runs mixing every page above, a timeout every fifth run and a chromedriver kill
/// in the middle: afterwards no Chromium or chromedriver process is left.
#[tokio::test]
async fn a_hundred_mixed_runs_leave_no_process_behind() {
    let _turn = TURN.lock().await;
    let before = chromium_processes();
    let t = plain_target().await;
    let other = format!("http://localhost:{}", t.addr.port());
    let pages = [
        format!("/page?lcp_delay=100&shift=0.1&js_kb=8&css_kb=4&third={other}"),
        "/page?error=1".to_string(),
        "/page?hang=1".to_string(),
        "/page?video=1".to_string(),
        "/status/500".to_string(),
    ];
    let mut toml = String::new();
    for (i, path) in pages.iter().enumerate() {
        toml.push_str(
            &page_probe(&t.url(path), "settle = \"100ms\"")
                .replace("name = \"page\"", &format!("name = \"page{i}\""))
                .replace("settle = \"400ms\"\n", "")
                .replace("timeout = \"15s\"", "timeout = \"3s\""),
        );
    }
    let ctx = BuildContext::new();
    let (_dir, probes) = build(&[("sloprobe.toml", &toml)], &ctx);
    let (mut ok, mut failed) = (0, 0);
    for run in 0..100 {
        if run == 50
            && let Some(pid) = ctx.browsers().driver_pid().await
        {
            // SAFETY: kill(2) on this test's own chromedriver.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        let o = probes[run % probes.len()].execute().await;
        if o.success() { ok += 1 } else { failed += 1 }
    }
    // The hanging and 500 pages fail, by design; the other three pages pass.
    assert!(ok >= 55 && failed >= 40, "ok {ok}, failed {failed}");
    drop((probes, ctx));
    no_leftovers(&before).await;
}

/// SIGTERM to the daemon in the middle of a browser run: the daemon exits and takes
/// chromedriver and every Chromium process with it. Those processes never saw the
/// daemon's environment.
#[tokio::test]
async fn sigterm_mid_run_leaves_no_process_behind() {
    let _turn = TURN.lock().await;
    let before = chromium_processes();
    let t = plain_target().await;
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:{}\"\n{}",
        free_port(),
        page_probe(&t.url("/page?hang=1"), "")
            .replace("every = \"1m\"", "every = \"4s\"")
            .replace("timeout = \"15s\"", "timeout = \"3500ms\"")
    );
    let dir = write_files(&[("sloprobe.toml", &toml)]);
    // A secret in the daemon's environment (as env:NAME secrets are) must not reach the
    // browser's processes.
    const SECRET: &str = "sloprobe-env-secret-5b7e";
    let mut daemon = Child(
        std::process::Command::new(bin())
            .args(["run", "-c"])
            .arg(dir.path().join("sloprobe.toml"))
            .env("SLOPROBE_LOG", "warn")
            .env("FM_DB_PASSWORD", SECRET)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let running = eventually(150, Duration::from_millis(100), || async {
        let l = leftover(&before);
        (l.len() > 2).then_some(l)
    })
    .await;
    let running = running.expect("no browser started by the daemon");
    for pid in &running {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&environ).contains(SECRET),
            "process {pid} inherited the daemon's secret"
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // SAFETY: kill(2) on the daemon this test started.
    unsafe { libc::kill(daemon.0.id() as i32, libc::SIGTERM) };
    let exited = eventually(100, Duration::from_millis(100), || {
        let status = daemon.0.try_wait().ok().flatten();
        async move { status }
    })
    .await;
    assert!(exited.is_some(), "daemon did not stop within 10s of SIGTERM");
    no_leftovers(&before).await;
}

/// `once` killed with SIGKILL in the middle of a browser run (nothing of it can clean
/// up): chromedriver's guard notices, kills every Chromium under the dead process's
/// profiles, removes them, and ends. Likewise for SIGTERM.
#[tokio::test]
async fn once_killed_mid_run_leaves_no_process_or_profile_behind() {
    let _turn = TURN.lock().await;
    let t = plain_target().await;
    for (signal, guarded) in [(libc::SIGKILL, true), (libc::SIGTERM, true), (libc::SIGKILL, false)] {
        let before = chromium_processes();
        let dir = write_files(&[("sloprobe.toml", &page_probe(&t.url("/page?hang=1"), ""))]);
        let mut command = std::process::Command::new(bin());
        if !guarded {
            command.env("SLOPROBE_NO_BROWSER_GUARD", "1");
        }
        let mut once = Child(
            command
                .args(["once", "-c"])
                .arg(dir.path().join("sloprobe.toml"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        let pid = once.0.id();
        let running = eventually(150, Duration::from_millis(100), || async {
            let l = leftover(&before);
            (l.len() > 2).then_some(l)
        })
        .await;
        assert!(running.is_some(), "no browser started by once");
        tokio::time::sleep(Duration::from_millis(500)).await;
        // SAFETY: kill(2) on the process this test started.
        unsafe { libc::kill(pid as i32, signal) };
        let _ = once.0.wait();
        if !guarded {
            // Without the guard, what a SIGKILL leaves behind: the reason for the guard.
            tokio::time::sleep(Duration::from_millis(1000)).await;
            let left = leftover(&before);
            assert!(
                !left.is_empty(),
                "an unguarded chromedriver should have outlived SIGKILL"
            );
            for p in left {
                // SAFETY: kill(2) on the leftovers this test made.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            let _ = std::process::Command::new("pkill")
                .args(["-KILL", "-f", "chromedriver --port"])
                .status();
            for e in std::fs::read_dir(std::env::temp_dir()).unwrap().flatten() {
                if e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("sloprobe-browser-{pid}-"))
                {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
            continue;
        }
        no_leftovers(&before).await;
        let prefix = format!("sloprobe-browser-{pid}-");
        let gone = eventually(50, Duration::from_millis(100), || {
            let left: Vec<String> = std::fs::read_dir(std::env::temp_dir())
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.starts_with(&prefix))
                .collect();
            async move { left.is_empty().then_some(()) }
        })
        .await;
        assert!(
            gone.is_some(),
            "signal {signal}: profiles of {pid} left in the temp dir"
        );
    }
}

#[tokio::test]
async fn steps_set_a_secret_cookie_before_the_load_and_wait_for_elements_after_it() {
    let _turn = TURN.lock().await;
    let t = plain_target().await;
    // SAFETY: only this test reads BR_SESSION.
    unsafe { std::env::set_var("BR_SESSION", "cookie-value-31") };
    let script = "return { cookie_len: document.cookie.length };";
    let toml = page_probe(
        &t.url("/page"),
        "metrics_script = \"cookie.js\"\nscript_metrics = { cookie_len = \"count\" }\n[[probe.step]]\nset_cookie = { name = \"session\", value = \"env:BR_SESSION\" }\n[[probe.step]]\nwait_for = \"#hero\"",
    );
    let ctx = BuildContext::new();
    let (_dir, probes) = build(&[("sloprobe.toml", &toml), ("cookie.js", script)], &ctx);
    let o = probes[0].execute().await;
    assert!(o.success(), "{:?}", o.error);
    assert_eq!(m(&o, "cookie_len"), "session=cookie-value-31".len() as f64);
    let out = format!("{:?} {}", o, sloprobe::once::run_json(&o, 1));
    assert!(!out.contains("cookie-value-31"), "the cookie's value leaked: {out}");
    // A page that echoes its cookie into an error, with a forged log line after it: the
    // error is one line, and the secret is not in it.
    let leaky = "throw new Error('leak ' + document.cookie + '\\n2026-12-05T00:00:00Z INFO forged');";
    let (_dir, probes) = build(&[("sloprobe.toml", &toml), ("cookie.js", leaky)], &ctx);
    let o = probes[0].execute().await;
    assert_eq!(error_type(&o), "assertion_failed", "{:?}", o.error);
    let message = &o.error.as_ref().unwrap().message;
    assert!(message.contains("leak session=<redacted>"), "{message}");
    assert!(
        !message.contains('\n') && !message.contains("cookie-value-31"),
        "{message}"
    );
    let o = run_once(&page_probe(
        &t.url("/page"),
        "[[probe.step]]\nwait_for = \"#not-there\"",
    ))
    .await;
    assert_eq!(error_type(&o), "assertion_failed", "{:?}", o.error);
}

#[tokio::test]
async fn the_memory_floor_and_the_browser_slots_are_kept() {
    let _turn = TURN.lock().await;
    let t = plain_target().await;
    let (_d, probes, _ctx) = build_with_browser(&format!(
        "[browser]\nmin_free_memory = \"1000TiB\"\n{}",
        page_probe(&t.url("/page"), "")
    ));
    let o = probes[0].execute().await;
    assert_eq!(error_type(&o), "insufficient_memory", "{:?}", o.error);
    // One slot, two runs at once: the second waits; past its timeout it is skipped, not run.
    let slow = page_probe(&t.url("/page?hang=1"), "").replace("timeout = \"15s\"", "timeout = \"6s\"");
    let (_d, probes, _ctx) = build_with_browser(&format!(
        "[browser]\nmax_concurrent_browsers = 1\n{slow}{}",
        slow.replace("name = \"page\"", "name = \"second\"")
            .replace("timeout = \"6s\"", "timeout = \"3s\"")
    ));
    let (a, b) = tokio::join!(probes[0].execute(), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        probes[1].execute().await
    });
    assert_eq!(error_type(&a), "timeout", "{:?}", a.error);
    assert_eq!(b.skipped, Some("browser_busy"), "{:?}", b.error);
}

/// Without Chromium on the host the daemon leaves browser probes unscheduled, says why,
/// and runs the rest.
#[tokio::test]
async fn without_chromium_the_daemon_skips_browser_probes_with_a_log_line() {
    let t = plain_target().await;
    let port = free_port();
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n{}[[probe]]\nname = \"plain\"\nkind = \"http\"\nurl = \"{}\"\nevery = \"1s\"\n",
        page_probe(&t.url("/page"), ""),
        t.url("/")
    );
    let dir = write_files(&[("sloprobe.toml", &toml)]);
    let log = dir.path().join("stderr");
    let _daemon = Child(
        std::process::Command::new(bin())
            .args(["run", "-c"])
            .arg(dir.path().join("sloprobe.toml"))
            .env("PATH", "/nonexistent")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    let ran = eventually(60, Duration::from_millis(100), || {
        let metrics = metrics.clone();
        async move {
            let (_, body) = http_get(&metrics).await?;
            body.contains("probe_runs_total{").then_some(body)
        }
    })
    .await
    .expect("the http probe ran");
    // It has no run series, only the one that says it is not scheduled.
    for line in ran.lines().filter(|l| l.contains("probe_name=\"page\"")) {
        assert!(
            line.starts_with("probe_scheduled{") && line.ends_with(" 0"),
            "the browser probe must not run: {line}"
        );
    }
    assert!(ran.contains("probe_scheduled{"), "{ran}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("probe not scheduled") && text.contains("neither Chromium nor chromedriver found"),
        "{text}"
    );
}

/// `cache = "warm"` measures a second load in the same context (cached assets cost no
/// transfer); `throttle = "4g"` slows the page down by Lighthouse's figures.
#[tokio::test]
async fn warm_cache_and_throttling_change_what_is_measured() {
    let _turn = TURN.lock().await;
    let t = plain_target().await;
    let url = t.url("/page?js_kb=64&css_kb=8");
    let cold = run_once(&page_probe(&url, "")).await;
    assert!(cold.success(), "{:?}", cold.error);
    assert!(m(&cold, "script_first_party_transfer") > m(&cold, "script_bytes"));
    let warm = run_once(&page_probe(&url, "cache = \"warm\"")).await;
    assert!(warm.success(), "{:?}", warm.error);
    assert_eq!(
        m(&warm, "script_first_party_transfer"),
        0.0,
        "the script came from cache"
    );
    assert_eq!(
        m(&warm, "script_bytes"),
        m(&cold, "script_bytes"),
        "its size is still known"
    );
    let slow = run_once(&page_probe(&url, "throttle = \"4g\"")).await;
    assert!(slow.success(), "{:?}", slow.error);
    // DevTools' emulation holds back the render-blocking script and stylesheet (latency
    // and 1.47 Mbit/s); it does not move the document's responseStart here.
    assert!(
        m(&slow, "fcp") > m(&cold, "fcp") + 0.5,
        "fcp {} vs {}",
        m(&slow, "fcp"),
        m(&cold, "fcp")
    );
}

/// A page the browser probe loads on the daemon's own host tries to reload the daemon the
/// ways a page can (a no-cors POST, a form-like text/plain POST, a POST with the custom
/// header): every one is refused, the page's script provably ran, and the daemon's reload
/// counter stays empty.
#[tokio::test]
async fn a_probed_page_cannot_reload_the_daemon() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    let _turn = TURN.lock().await;
    let before = chromium_processes();
    let port = free_port();
    let done = Arc::new(AtomicU32::new(0));
    let page = format!(
        r#"<!doctype html><html><body><h1>hostile</h1><script>
const reload = "http://127.0.0.1:{port}/-/reload";
Promise.allSettled([
  fetch(reload, {{method: "POST", mode: "no-cors"}}),
  fetch(reload, {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}}, body: "x"}}),
  fetch(reload, {{method: "POST", headers: {{"X-Sloprobe-Reload": "1"}}}}),
]).then(() => fetch("/done", {{method: "POST"}}));
</script></body></html>"#
    );
    let seen = done.clone();
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::get(move || async move { axum::response::Html(page) }),
        )
        .route(
            "/done",
            axum::routing::post(move || async move {
                seen.fetch_add(1, Ordering::SeqCst);
                "ok"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page_port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let dir = write_files(&[(
        "sloprobe.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[[probe]]\nname = \"hostile\"\nkind = \"browser\"\nurl = \"http://127.0.0.1:{page_port}/\"\nevery = \"4s\"\ntimeout = \"3s\"\nsettle = \"1s\"\n"
        ),
    )]);
    let mut daemon = start_daemon(&dir.path().join("sloprobe.toml"));
    let ran = eventually(100, Duration::from_millis(200), || {
        let done = done.clone();
        async move { (done.load(Ordering::SeqCst) >= 2).then_some(()) }
    })
    .await;
    assert!(ran.is_some(), "the page's script never ran twice");
    let (_, text) = http_get(&format!("http://127.0.0.1:{port}/metrics")).await.unwrap();
    assert!(
        sample(&text, "sloprobe_config_reloads_total", &[]).is_none(),
        "the page reloaded the daemon:\n{}",
        text.lines()
            .filter(|l| l.contains("reload"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // SIGTERM, not the kill on drop: the daemon stops its chromedriver and Chromium.
    // SAFETY: kill(2) on the daemon this test started.
    unsafe { libc::kill(daemon.0.id() as i32, libc::SIGTERM) };
    let exited = eventually(100, Duration::from_millis(100), || {
        let status = daemon.0.try_wait().ok().flatten();
        async move { status }
    })
    .await;
    assert!(exited.is_some(), "daemon did not stop within 10s of SIGTERM");
    server.abort();
    no_leftovers(&before).await;
}

/// Chromium calls Google on launch (sign-in, component and extension updates, network
/// time) even with `--disable-background-networking`. Through a logging proxy: a bare
/// Chromium's calls are seen (so the proxy would see ours), and two probe runs make none.
/// The binary run is the one behind Debian's launcher script, not the script.
#[tokio::test]
async fn chromium_makes_no_background_requests() {
    let _turn = TURN.lock().await;
    let proxy = tokio::task::spawn_blocking(|| common::hostile::start(common::hostile::recorder, true))
        .await
        .unwrap();
    let proxy_arg = format!("--proxy-server=http://127.0.0.1:{}", proxy.port);
    let target = plain_target().await;
    let toml = format!(
        "[browser]\nargs = [\"{proxy_arg}\"]\n{}",
        page_probe(&target.url("/page?lcp_delay=3000"), "")
    );
    let (dir, probes, _ctx) = build_with_browser(&toml);
    let cfg = Config::load(&dir.path().join("sloprobe.toml")).unwrap();
    let bin = cfg.browser.chromium.clone().expect("a Chromium binary");
    let head = std::fs::read(&bin).unwrap();
    assert!(!head.starts_with(b"#!"), "{} is a launcher script", bin.display());

    // The proxy sees a bare Chromium's background calls within 3 s.
    let profile = tempfile::tempdir().unwrap();
    let mut bare = std::process::Command::new(&bin);
    bare.args(["--headless=new", "--no-sandbox", &proxy_arg])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        // Its singleton socket folder goes with the profile, not into the system temp dir.
        .env("TMPDIR", profile.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut bare, 0);
    let mut child = bare.spawn().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // SAFETY: kill(2) on the process group we just started.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let _ = child.wait();
    let seen = common::hostile::recorded(proxy.port);
    assert!(
        !seen.is_empty(),
        "the proxy saw nothing from a bare Chromium: the check below would prove nothing"
    );

    let before = seen.len();
    for _ in 0..2 {
        let o = probes[0].execute().await;
        assert!(o.success(), "{:?}", o.error);
        assert!(m(&o, "lcp") >= 3.0, "the run lasted past the image");
    }
    let ours: Vec<String> = common::hostile::recorded(proxy.port)
        .into_iter()
        .skip(before)
        .map(|h| h.lines().next().unwrap_or_default().to_string())
        .collect();
    assert!(
        ours.is_empty(),
        "background requests from the probe's Chromium: {ours:?}"
    );
}

/// A renderer that dies mid-load (out of memory, a crash, killed) is a `browser_error`
/// saying so, reported when it happens: 0.1.0 waited out the timeout and called it one.
#[tokio::test]
async fn a_crashed_renderer_is_reported_at_once() {
    let _turn = TURN.lock().await;
    let target = plain_target().await;
    let before = chromium_processes();
    let toml = page_probe(&target.url("/page?lcp_delay=6000"), "").replace("timeout = \"15s\"", "timeout = \"12s\"");
    let (_dir, probes, _ctx) = build_with_browser(&toml);
    let killer = tokio::spawn(async move {
        // Once the page is loading, kill every renderer this test's Chromium has.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mut killed = 0;
        for pid in chromium_processes().into_iter().filter(|p| !before.contains(p)) {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains("--type=renderer") {
                // SAFETY: kill(2) on a renderer this test's browser started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                killed += 1;
            }
        }
        killed
    });
    let o = probes[0].execute().await;
    assert!(killer.await.unwrap() > 0, "no renderer found to kill");
    eprintln!("crashed renderer: {:?} after {:.2}s", o.error, m(&o, "total"));
    assert_eq!(error_type(&o), "browser_error", "{:?}", o.error);
    assert!(o.error.as_ref().unwrap().message.contains("crash"), "{:?}", o.error);
    assert!(m(&o, "total") < 4.0, "reported after {:.2}s", m(&o, "total"));
    // The next run gets a working browser.
    let fine = build_with_browser(&page_probe(&target.url("/page"), "")).1[0]
        .execute()
        .await;
    assert!(fine.success(), "{:?}", fine.error);
}

/// The timeout bounds the run: a run cut off at 3 s reports at most that (plus timer
/// slack), whatever cutting it off then costs (closing the tab, killing the browser, /proc
/// scans). 0.1.0 counted the cleanup (900 ms runs took 1.26 s). A 5 s main-thread task
/// right after load holds the settle's script, so the run's own deadline cannot end it:
/// the timeout does, and the run is dropped mid-command.
#[tokio::test]
async fn the_timeout_bounds_the_run_not_its_cleanup() {
    let _turn = TURN.lock().await;
    let t = plain_target().await;
    let toml = page_probe(&t.url("/page?block=5000"), "")
        .replace("timeout = \"15s\"", "timeout = \"3s\"")
        .replace("settle = \"400ms\"", "settle = \"300ms\"");
    let (_dir, probes, _ctx) = build_with_browser(&toml);
    for _ in 0..3 {
        let o = probes[0].execute().await;
        assert_eq!(error_type(&o), "timeout", "{:?}", o.error);
        let total = m(&o, "total");
        eprintln!("cut-off run: total {total:.3}s");
        assert!(total <= 3.03, "total {total:.3}s against a 3 s timeout");
    }
}

/// Chromium's and chromedriver's own temp folders (`org.chromium.Chromium.*`) stay under
/// sloprobe's profiles and go with them: none is left in the temp dir after runs, a
/// chromedriver kill and the end.
#[tokio::test]
async fn no_chromium_temp_folders_are_left_behind() {
    let _turn = TURN.lock().await;
    let theirs = || -> std::collections::BTreeSet<String> {
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("org.chromium.Chromium."))
            .collect()
    };
    let before = theirs();
    let t = plain_target().await;
    let ctx = BuildContext::new();
    let (_dir, probes) = build(&[("sloprobe.toml", &page_probe(&t.url("/page"), ""))], &ctx);
    for run in 0..3 {
        if run == 1
            && let Some(pid) = ctx.browsers().driver_pid().await
        {
            // SAFETY: kill(2) on this test's own chromedriver.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        let o = probes[0].execute().await;
        assert!(run == 1 || o.success(), "{:?}", o.error);
    }
    drop((probes, ctx));
    let left = eventually(50, Duration::from_millis(100), || async {
        let new: Vec<String> = theirs().difference(&before).cloned().collect();
        new.is_empty().then_some(())
    })
    .await;
    let new: Vec<String> = theirs().difference(&before).cloned().collect();
    assert!(left.is_some(), "left in the temp dir: {new:?}");
}
