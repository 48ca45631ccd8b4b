//! The assistant probe against local streaming servers in every wire format, with
//! injected first-token delay and inter-token gaps: TTFT must bracket the delay and token
//! counts must be exact; every fault must give its error type.

mod common;

use common::*;

const SLACK: f64 = 0.025;

fn probe(url: &str, format: &str, extra: &str) -> String {
    format!(
        "[[probe]]\nname = \"a\"\nkind = \"assistant\"\nurl = \"{url}\"\nformat = \"{format}\"\nevery = \"30s\"\ntimeout = \"5s\"\nbody = '{{\"model\":\"demo-model\",\"stream\":true}}'\n{extra}\n"
    )
}

#[tokio::test]
async fn ttft_and_token_counts_in_every_format() {
    let t = plain_target().await;
    for format in [
        "openai-chat",
        "openai-responses",
        "anthropic-messages",
        "sse",
        "chunked",
    ] {
        let url = t.url(&format!("/llm/{format}?first=150&gap=20&tokens=10"));
        let (_d, probes) = build_probes(&probe(&url, format, ""));
        let o = probes[0].execute().await;
        assert!(o.success(), "{format}: {:?}", o.error);
        let ttft = m(&o, "ttft");
        assert!((0.150..0.150 + SLACK).contains(&ttft), "{format}: ttft {ttft}");
        let source = if matches!(format, "sse" | "chunked") {
            // No usage in the stream: no token count is made up; the events are counted apart.
            assert_eq!(o.get("output_tokens"), None, "{format}");
            "counted"
        } else {
            assert_eq!(m(&o, "output_tokens"), 10.0, "{format}");
            "usage"
        };
        assert_eq!(m(&o, "output_events"), 10.0, "{format}");
        assert_eq!(o.label("probe.token.source"), Some(source), "{format}");
        let first_chunk = m(&o, "first_chunk");
        if matches!(format, "sse" | "chunked") {
            assert_eq!(first_chunk, ttft, "{format}");
        } else {
            // Role-only / created / message_start events come at once and are not output.
            assert!(first_chunk < 0.05, "{format}: first_chunk {first_chunk}");
        }
        let gaps: Vec<f64> = o.samples_of("gap").map(|s| s.value).collect();
        assert_eq!(gaps.len(), 9, "{format}");
        for g in &gaps {
            assert!((0.010..0.030).contains(g), "{format}: gap {g}");
        }
        let tpot = m(&o, "tpot");
        assert!((0.018..0.024).contains(&tpot), "{format}: tpot {tpot}");
        let e2e = m(&o, "e2e");
        // Last token at 330 ms; vendor formats send their closing events at 350 ms.
        assert!((0.330..0.350 + SLACK).contains(&e2e), "{format}: e2e {e2e}");
        assert_eq!(m(&o, "goodput"), 1.0);
        assert_eq!(o.label("gen_ai.request.model"), Some("demo-model"));
    }
}

#[tokio::test]
async fn reasoning_first_is_measured_apart() {
    let t = plain_target().await;
    for format in ["openai-chat", "anthropic-messages", "openai-responses"] {
        let url = t.url(&format!("/llm/{format}?first=150&gap=10&tokens=3&reasoning=60"));
        let o = run_probe(&probe(&url, format, "")).await;
        assert!(o.success(), "{format}: {:?}", o.error);
        let r = m(&o, "ttft_reasoning");
        assert!((0.060..0.060 + SLACK).contains(&r), "{format}: ttft_reasoning {r}");
        let ttft = m(&o, "ttft");
        assert!((0.150..0.150 + SLACK).contains(&ttft), "{format}: ttft {ttft}");
    }
}

#[tokio::test]
async fn pings_and_crlf_on_the_wire() {
    let t = plain_target().await;
    for format in ["openai-chat", "anthropic-messages", "sse"] {
        let url = t.url(&format!("/llm/{format}?first=80&gap=5&tokens=4&ping=1&crlf=1"));
        let o = run_probe(&probe(&url, format, "")).await;
        assert!(o.success(), "{format}: {:?}", o.error);
        assert_eq!(m(&o, "output_events"), 4.0);
        assert!((0.080..0.080 + SLACK).contains(&m(&o, "ttft")), "{format}");
    }
}

#[tokio::test]
async fn faults_are_classified() {
    let t = plain_target().await;
    let cases = [
        ("openai-chat", "status=429", "", "rate_limited"),
        ("openai-chat", "status=503", "", "http_status"),
        ("openai-chat", "no_content=1", "", "no_content"),
        ("openai-chat", "nonstream=1", "", "not_streamed"),
        ("openai-responses", "nonstream=1", "", "not_streamed"),
        ("anthropic-messages", "nonstream=1", "", "not_streamed"),
        ("anthropic-messages", "no_content=1", "", "no_content"),
        ("openai-chat", "error_after=3", "", "upstream_error"),
        ("anthropic-messages", "error_after=3", "", "upstream_error"),
        ("openai-responses", "error_after=3", "", "upstream_error"),
        ("openai-chat", "malformed=1", "", "protocol_error"),
        ("anthropic-messages", "malformed=1", "", "protocol_error"),
        (
            "openai-chat",
            "stall_after=2",
            "stall_timeout = \"300ms\"",
            "stream_stalled",
        ),
        (
            "chunked",
            "stall_after=2",
            "stall_timeout = \"300ms\"",
            "stream_stalled",
        ),
        ("openai-chat", "stall_after=2", "timeout = \"600ms\"", "timeout"),
        (
            "openai-chat",
            "",
            "[probe.expect]\nheader_present = [\"x-missing\"]",
            "assertion_failed",
        ),
    ];
    for (format, query, extra, want) in cases {
        let url = t.url(&format!("/llm/{format}?first=50&gap=10&tokens=5&{query}"));
        let mut cfg = probe(&url, format, extra);
        if extra.starts_with("timeout") {
            cfg = cfg.replace("timeout = \"5s\"\n", "");
        }
        let o = run_probe(&cfg).await;
        assert_eq!(error_type(&o), want, "{format} {query}: {:?}", o.error);
        if want == "stream_stalled" || want == "upstream_error" {
            // What arrived before the fault is kept.
            assert!(m(&o, "ttft") >= 0.050, "{format} {query}");
        }
        if want == "rate_limited" {
            assert_eq!(o.retry_after, Some(std::time::Duration::from_secs(2)));
        }
    }
}

/// Streams captured from real servers (LiteLLM's bridges, fakellm), replayed byte for
/// byte: each must pass with the server's own usage.
#[test]
fn captured_streams_from_real_servers() {
    let server = hostile::start(hostile::captured_stream, true);
    let cases = [
        // (file, format, output tokens, input tokens)
        ("litellm-responses-bridge.sse", "openai-responses", 19.0, Some(1.0)),
        ("litellm-anthropic-bridge.sse", "anthropic-messages", 20.0, Some(8.0)),
        ("litellm-chat-tool-call.sse", "openai-chat", 39.0, Some(8.0)),
        ("litellm-chat-usage.sse", "openai-chat", 20.0, Some(8.0)),
        ("fakellm-anthropic.sse", "anthropic-messages", 19.0, Some(1.0)),
        ("litellm-chat-from-anthropic.sse", "openai-chat", 19.0, Some(1.0)),
    ];
    for (file, format, output, input) in cases {
        let url = format!("http://127.0.0.1:{}/{file}", server.port);
        let o = hostile::runtime().block_on(run_probe(&probe(&url, format, "")));
        assert!(o.success(), "{file}: {:?}", o.error);
        assert_eq!(o.label("probe.token.source"), Some("usage"), "{file}");
        assert_eq!(m(&o, "output_tokens"), output, "{file}");
        assert_eq!(o.get("input_tokens"), input, "{file}");
    }
    // LiteLLM's mock answering `stream: true` with one JSON message.
    let url = format!(
        "http://127.0.0.1:{}/litellm-mock-messages-not-streamed.json",
        server.port
    );
    let o = hostile::runtime().block_on(run_probe(&probe(&url, "anthropic-messages", "")));
    assert_eq!(error_type(&o), "not_streamed", "{:?}", o.error);
    assert!(o.error.unwrap().message.contains("a whole Anthropic message"));
}

#[tokio::test]
async fn tool_call_ttft_is_the_first_arguments_not_the_name() {
    let t = plain_target().await;
    let url = t.url("/llm/openai-chat?first=150&gap=10&tokens=4&tool=1");
    let o = run_probe(&probe(&url, "openai-chat", "")).await;
    assert!(o.success(), "{:?}", o.error);
    // The name chunk comes at 0 ms, the first arguments at 150 ms.
    let ttft = m(&o, "ttft");
    assert!((0.150..0.150 + SLACK).contains(&ttft), "ttft {ttft}");
    assert!(m(&o, "first_chunk") < 0.05);
}

#[tokio::test]
async fn rate_limited_probe_backs_off_until_retry_after() {
    let t = plain_target().await;
    let url = t.url("/llm/openai-chat?status=429");
    let (_d, probes) = build_probes(&probe(&url, "openai-chat", ""));
    assert!(probes[0].backoff_remaining().is_none());
    let o = probes[0].execute().await;
    assert_eq!(error_type(&o), "rate_limited");
    let left = probes[0].backoff_remaining().expect("backoff set");
    assert!(left > std::time::Duration::from_millis(1500) && left <= std::time::Duration::from_secs(2));
}

#[tokio::test]
async fn goodput_needs_both_budgets() {
    let t = plain_target().await;
    let url = t.url("/llm/openai-chat?first=100&gap=20&tokens=5");
    let o = run_probe(&probe(
        &url,
        "openai-chat",
        "[probe.budget]\nttft = \"1s\"\ntpot = \"100ms\"",
    ))
    .await;
    assert!(o.passed());
    assert_eq!(m(&o, "goodput"), 1.0);
    let o = run_probe(&probe(
        &url,
        "openai-chat",
        "[probe.budget]\nttft = \"1s\"\ntpot = \"5ms\"",
    ))
    .await;
    assert!(o.success() && !o.passed());
    assert_eq!(m(&o, "goodput"), 0.0);
}

#[test]
fn config_checks() {
    let base = "[[probe]]\nname = \"a\"\nkind = \"assistant\"\nurl = \"http://127.0.0.1:1/v1/chat/completions\"\nevery = \"30s\"\n";
    let msg = config_error(&[("sloprobe.toml", base)]);
    assert!(msg.contains("`probe.format`"), "{msg}");
    let msg = config_error(&[("sloprobe.toml", &format!("{base}format = \"grpc\"\n"))]);
    assert!(
        msg.contains("sloprobe.toml:6:") && msg.contains("unknown format"),
        "{msg}"
    );
    let msg = config_error(&[(
        "sloprobe.toml",
        &format!("{base}format = \"openai-chat\"\nbody = '{{not json'\n"),
    )]);
    assert!(
        msg.contains("sloprobe.toml:7:") && msg.contains("not valid JSON"),
        "{msg}"
    );
    let msg = config_error(&[(
        "sloprobe.toml",
        &format!("{base}format = \"sse\"\nfollow_redirects = 2\n"),
    )]);
    assert!(
        msg.contains("sloprobe.toml:7:") && msg.contains("`probe.follow_redirects`"),
        "{msg}"
    );
    let msg = config_error(&[(
        "sloprobe.toml",
        &format!("{base}format = \"sse\"\nstall_timeout = \"1m\"\n"),
    )]);
    assert!(msg.contains("`probe.stall_timeout`"), "{msg}");
}

#[tokio::test]
async fn exported_with_genai_names_and_exact_thresholds() {
    let t = plain_target().await;
    let url = t.url("/llm/anthropic-messages?first=40&gap=5&tokens=10");
    let (_d, probes) = build_probes(&probe(
        &url,
        "anthropic-messages",
        "[probe.budget]\nttft = \"1.7s\"\ntpot = \"40ms\"",
    ));
    let plan = sloprobe::daemon::telemetry_plan(&probes, &[]);
    let telemetry = sloprobe::telemetry::Telemetry::new("lab", plan, None).unwrap();
    let o = probes[0].execute().await;
    assert!(o.success(), "{:?}", o.error);
    telemetry.record(&o);
    let mut text = String::new();
    telemetry.prometheus_text(&mut |c| text.push_str(&c)).unwrap();
    let has = |needle: &str| assert!(text.contains(needle), "missing {needle} in\n{text}");
    // The semantic conventions' instruments are histograms with their advised edges (a
    // stream past 10 s still lands in a bucket); probe breakdowns are count and sum.
    has("# TYPE gen_ai_client_operation_duration_seconds histogram");
    has("gen_ai_client_operation_duration_seconds_bucket{");
    has("le=\"81.92\"");
    has("le=\"67108864\"");
    has("# TYPE probe_assistant_ttft_seconds histogram");
    has("# TYPE gen_ai_client_operation_time_to_first_chunk_seconds histogram");
    has("# TYPE gen_ai_client_operation_time_per_output_chunk_seconds histogram");
    has("# TYPE gen_ai_client_token_usage histogram");
    has("# TYPE probe_assistant_tpot_seconds summary");
    has("gen_ai_token_type=\"output\"");
    has("gen_ai_token_type=\"input\"");
    has("gen_ai_provider_name=\"anthropic\"");
    has("probe_token_source=\"usage\"");
    // Every inter-chunk gap is counted: 10 tokens, 9 gaps.
    let port = url::Url::parse(&url).unwrap().port().unwrap();
    has(&format!(
        "gen_ai_client_operation_time_per_output_chunk_seconds_count{{gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"anthropic\",gen_ai_request_model=\"demo-model\",otel_scope_name=\"sloprobe\",otel_scope_version=\"0.1.0\",probe_kind=\"assistant\",probe_location=\"lab\",probe_name=\"a\",server_address=\"127.0.0.1\",server_port=\"{port}\"}} 9",
    ));
    has("probe_assistant_goodput_total{");
    // Budget thresholds are exact counters of this probe, not bucket edges.
    has(
        "probe_threshold_runs_total{measurement=\"ttft\",otel_scope_name=\"sloprobe\",otel_scope_version=\"0.1.0\",probe_kind=\"assistant\",probe_location=\"lab\",probe_name=\"a\",threshold=\"1.7\",verdict=\"good\"} 1",
    );
    has(
        "probe_threshold_runs_total{measurement=\"tpot\",otel_scope_name=\"sloprobe\",otel_scope_version=\"0.1.0\",probe_kind=\"assistant\",probe_location=\"lab\",probe_name=\"a\",threshold=\"0.04\",verdict=\"good\"} 1",
    );
    assert!(!text.contains("le=\"1.7\""), "a budget leaked into the bucket edges");
}

/// A failed call is still a GenAI operation: its duration is recorded with error.type.
#[tokio::test]
async fn failed_calls_record_the_operation_duration() {
    let t = plain_target().await;
    let url = t.url("/llm/openai-chat?status=500");
    let (_d, probes) = build_probes(&probe(&url, "openai-chat", ""));
    let telemetry =
        sloprobe::telemetry::Telemetry::new("lab", sloprobe::daemon::telemetry_plan(&probes, &[]), None).unwrap();
    let o = probes[0].execute().await;
    assert_eq!(error_type(&o), "http_status");
    telemetry.record(&o);
    let mut text = String::new();
    telemetry.prometheus_text(&mut |c| text.push_str(&c)).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("gen_ai_client_operation_duration_seconds_count{"))
        .unwrap_or_else(|| panic!("no operation duration for a failed call:\n{text}"));
    assert!(
        line.contains("error_type=\"http_status\"") && line.contains("http_response_status_code=\"500\""),
        "{line}"
    );
}
