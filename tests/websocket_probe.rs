//! The websocket probe against local servers with injected delays and faults: each
//! measurement brackets its injected delay, each fault gives its own error type.

mod common;

use common::*;

const SLACK: f64 = 0.025;

fn probe(url: &str, extra: &str) -> String {
    format!(
        "[[probe]]\nname = \"w\"\nkind = \"websocket\"\nurl = \"{url}\"\nevery = \"30s\"\ntimeout = \"5s\"\n{extra}\n"
    )
}

fn ws_url(t: &Target, query: &str) -> String {
    format!("ws://{}/ws?{query}", t.addr)
}

fn samples(o: &sloprobe::outcome::Outcome, key: &str) -> Vec<f64> {
    o.samples_of(key).map(|s| s.value).collect()
}

#[tokio::test]
async fn ping_rtt_brackets_the_injected_pong_delay() {
    let t = plain_target().await;
    let o = run_probe(&probe(
        &ws_url(&t, "pong_delay=30"),
        "pings = 5\nping_interval = \"50ms\"",
    ))
    .await;
    assert!(o.success(), "{:?}", o.error);
    let rtts = samples(&o, "ping_rtt");
    assert_eq!(rtts.len(), 5);
    for r in &rtts {
        assert!((0.030..0.030 + SLACK).contains(r), "rtt {r}");
    }
    assert_eq!(m(&o, "ping_loss"), 0.0);
    assert!(m(&o, "ping_jitter") < SLACK);
    for k in ["dns", "connect", "tls", "upgrade", "open", "close"] {
        assert!(o.get(k).is_some(), "{k} missing");
    }
    assert!(m(&o, "upgrade") < m(&o, "open"));
}

#[tokio::test]
async fn message_subscribe_and_push_bracket_their_delays() {
    let t = plain_target().await;
    let steps = r#"
[[probe.step]]
send = '{"type":"ping","id":7}'
expect = { pointer = "/id", equals = 7 }
timeout = "2s"
[[probe.step]]
send = '{"type":"subscribe","topic":"orders"}'
expect = { pointer = "/type", equals = "subscribed" }
measure = "subscribe"
[[probe.step]]
expect_push = { pointer = "/type", equals = "order" }
measure = "push_wait"
timeout = "3s"
[[probe.step]]
send = 'hello'
expect = { regex = "^hel+o$" }
measure = "echo_custom"
[probe.budget]
message_rtt = "1s"
subscribe = "1s"
echo_custom = "10ms"
"#;
    let o = run_probe(&probe(
        &ws_url(&t, "reply_delay=40&subscribe_delay=60&push_after=80"),
        steps,
    ))
    .await;
    assert!(o.success(), "{:?}", o.error);
    let rtt = m(&o, "message_rtt");
    assert!((0.040..0.040 + SLACK).contains(&rtt), "message_rtt {rtt}");
    let sub = m(&o, "subscribe");
    assert!((0.060..0.060 + SLACK).contains(&sub), "subscribe {sub}");
    let push = m(&o, "push_wait");
    assert!((0.080..0.080 + SLACK).contains(&push), "push_wait {push}");
    let echo = m(&o, "echo_custom");
    assert!((0.040..0.040 + SLACK).contains(&echo), "echo {echo}");
    // A named step is budgetable like any measurement: 40 ms > 10 ms.
    assert!(
        o.breaches.iter().any(|b| b.measurement == "echo_custom"),
        "{:?}",
        o.breaches
    );
}

#[tokio::test]
async fn every_other_pong_dropped_is_half_lost() {
    let t = plain_target().await;
    let o = run_probe(&probe(
        &ws_url(&t, "drop_pongs=1"),
        "pings = 6\nping_interval = \"20ms\"\npong_timeout = \"150ms\"",
    ))
    .await;
    assert!(o.success(), "{:?}", o.error);
    assert_eq!(m(&o, "ping_loss"), 0.5);
    assert_eq!(samples(&o, "ping_rtt").len(), 3);
}

#[tokio::test]
async fn faults_are_classified() {
    let t = plain_target().await;
    let step = "[[probe.step]]\nsend = 'x'\nexpect = { regex = \"x\" }\n";
    let o = run_probe(&probe(&ws_url(&t, "close=1011"), step)).await;
    assert_eq!(error_type(&o), "connection_closed", "{:?}", o.error);
    assert_eq!(o.label("websocket.close.code"), Some("1011"));
    assert!(o.error.as_ref().unwrap().message.contains("1011"));

    let o = run_probe(&probe(&ws_url(&t, "refuse=403"), "")).await;
    assert_eq!(error_type(&o), "http_status");
    assert_eq!(o.label("http.response.status_code"), Some("403"));

    let o = run_probe(&probe(&ws_url(&t, "big=16777216"), step)).await;
    assert_eq!(error_type(&o), "message_too_large", "{:?}", o.error);

    // No reply that matches: a timeout naming the step; other messages are skipped.
    let o = run_probe(&probe(
        &ws_url(&t, ""),
        "[[probe.step]]\nsend = 'abc'\nexpect = { regex = \"never\" }\ntimeout = \"200ms\"",
    ))
    .await;
    assert_eq!(error_type(&o), "timeout");
    assert!(
        o.error.as_ref().unwrap().message.contains("step 1 (message_rtt)"),
        "{:?}",
        o.error
    );
    assert_eq!(m(&o, "skipped_messages"), 1.0);

    // Raw servers that finish the upgrade by hand (they live on their own runtime).
    let start = |h: common::hostile::Handler| tokio::task::spawn_blocking(move || common::hostile::start(h, true));
    let garbage = start(common::hostile::ws_garbage).await.unwrap();
    let o = run_probe(&probe(&format!("ws://127.0.0.1:{}/", garbage.port), step)).await;
    assert_eq!(error_type(&o), "protocol_error", "{:?}", o.error);

    let utf8 = start(common::hostile::ws_bad_utf8).await.unwrap();
    let o = run_probe(&probe(&format!("ws://127.0.0.1:{}/", utf8.port), step)).await;
    assert_eq!(error_type(&o), "protocol_error", "{:?}", o.error);
    assert!(o.error.as_ref().unwrap().message.contains("UTF-8"), "{:?}", o.error);
}

#[tokio::test]
async fn wss_with_a_private_ca_and_reconnect() {
    let pki = pki(false);
    let t = tls_target(&pki).await;
    let dir = write_files(&[("ca.pem", &pki.ca_pem)]);
    let url = format!("wss://localhost:{}/ws?reply_delay=5", t.addr.port());
    let extra = format!(
        "reconnect = true\nsubprotocols = [\"graphql-transport-ws\"]\norigin = \"https://localhost\"\n[probe.tls]\nca_file = \"{}\"\n[[probe.step]]\nsend = 'x'\nexpect = {{ regex = \"x\" }}\n",
        dir.path().join("ca.pem").display()
    );
    let o = run_probe(&probe(&url, &extra)).await;
    assert!(o.success(), "{:?}", o.error);
    assert!(m(&o, "tls") > 0.0);
    assert!(m(&o, "reconnect") > 0.0 && m(&o, "reconnect") < 1.0);
    assert!(o.get("cert_expiry").is_none() || m(&o, "cert_expiry") > 0.0);
}

#[test]
fn config_checks() {
    let base = "[[probe]]\nname = \"w\"\nkind = \"websocket\"\nevery = \"30s\"\n";
    let msg = config_error(&[("sloprobe.toml", &format!("{base}url = \"http://x/\"\n"))]);
    assert!(msg.contains("`probe.url`") && msg.contains("ws://"), "{msg}");
    let msg = config_error(&[(
        "sloprobe.toml",
        &format!("{base}url = \"ws://x/\"\n[[probe.step]]\nexpect_push = {{ equals = 1 }}\n"),
    )]);
    assert!(msg.contains("`probe.step.expect_push`"), "{msg}");
    let msg = config_error(&[(
        "sloprobe.toml",
        &format!("{base}url = \"ws://x/\"\n[[probe.step]]\nsend = 'a'\nbogus = 1\n"),
    )]);
    assert!(
        msg.contains("sloprobe.toml:8:") && msg.contains("`probe.step.bogus`"),
        "{msg}"
    );
    let msg = config_error(&[(
        "sloprobe.toml",
        &format!("{base}url = \"ws://x/\"\n[probe.request]\nbody = 'a'\n"),
    )]);
    assert!(msg.contains("`probe.request.body`"), "{msg}");
}

/// The resident memory of this process, KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or(0)
}

/// A server that floods pings and never reads: the probe's pongs cannot be sent. Its
/// write buffer is capped, so the run ends classified within its timeout, and memory stays
/// bounded (0.1.0 grew 289 MB in a 5 s run).
#[tokio::test]
async fn a_ping_flood_that_never_reads_costs_bounded_memory() {
    let flood = tokio::task::spawn_blocking(|| common::hostile::start(common::hostile::ws_ping_flood, true))
        .await
        .unwrap();
    let before = rss_kib();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak.fetch_max(rss_kib(), std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        })
    };
    let started = std::time::Instant::now();
    let o = run_probe(&probe(
        &format!("ws://127.0.0.1:{}/", flood.port),
        "pings = 40\nping_interval = \"100ms\"\npong_timeout = \"100ms\"",
    ))
    .await;
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.join().unwrap();
    let grew = peak.load(std::sync::atomic::Ordering::Relaxed).saturating_sub(before);
    eprintln!(
        "ping flood: {:?} after {took:?}, RSS grew {grew} KiB",
        o.error.as_ref().map(|e| e.kind)
    );
    assert!(!o.success(), "a peer that never reads our pongs is no success");
    assert!(took < std::time::Duration::from_secs(6), "the run took {took:?}");
    assert!(grew < 64 * 1024, "RSS grew {grew} KiB");
}
