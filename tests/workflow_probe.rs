//! The workflow probe against the demo pipeline (init → part URLs → PUT parts → finalize →
//! poll until ready → delete) with injected timings and faults: step and interval times
//! bracket the injected ones, parts are counted, failures are classified at their step,
//! cleanup runs whatever happened, and secrets stay out of everything reported.

mod common;

use common::*;
use sloprobe::outcome::Outcome;

/// Poll granularity in these tests.
const POLL: f64 = 0.05;
/// Scheduling and loopback slack on top of the injected times.
const SLACK: f64 = 0.030;

/// The spec's pipeline against target `t`, with query `q` on init, and `extra` keys.
fn pipeline(t: &Target, q: &str, timeout: &str, extra: &str) -> String {
    let base = t.url("/pipeline/recordings");
    format!(
        r#"[[probe]]
name = "pipeline"
kind = "workflow"
every = "1m"
timeout = "{timeout}"
{extra}
[[probe.step]]
name = "init"
method = "POST"
url = "{base}?{q}"
[probe.step.extract]
id = {{ pointer = "/id" }}
part_urls = {{ pointer = "/part_urls" }}
[[probe.step]]
name = "upload"
url = "{base}/unused"
[probe.step.upload]
urls = "part_urls"
part_size = "1MiB"
concurrency = 2
[[probe.step]]
name = "finalize"
method = "POST"
url = "{base}/${{id}}/finalize"
status = [202]
[[probe.step]]
name = "wait"
url = "{base}/${{id}}"
[probe.step.poll]
interval = "50ms"
pointer = "/status"
until = ["ready"]
fail_if = ["failed"]
states = ["transcribing", "docifying"]
[[probe.step]]
name = "cleanup"
always = true
method = "DELETE"
url = "{base}/${{id}}"
timeout = "2s"
[[probe.interval]]
name = "finalize_to_transcribed"
from = "finalize.end"
to = "wait.docifying"
[[probe.interval]]
name = "transcribed_to_ready"
from = "wait.docifying"
to = "wait.ready"
"#
    )
}

async fn stats(t: &Target) -> serde_json::Value {
    let (status, body) = http_get(&t.url("/pipeline/stats")).await.expect("stats");
    assert_eq!(status, 200);
    serde_json::from_str(&body).unwrap()
}

fn within(o: &Outcome, key: &str, injected: f64, granularity: f64) {
    let v = m(o, key);
    assert!(
        v >= injected - 0.002 && v <= injected + granularity + SLACK,
        "{key} = {v}, injected {injected} (+ {granularity} poll granularity)"
    );
}

#[tokio::test]
async fn the_spec_pipeline_times_each_stage_against_the_injected_ones() {
    let t = plain_target().await;
    let o = run_probe(&pipeline(&t, "parts=4&queue=100&transcribe=600&docify=300", "20s", "")).await;
    assert!(o.success(), "{:?} {:?}", o.error, o.steps);
    // transcribing is first seen once queued ends, docifying once transcription ends.
    within(&o, "wait.transcribing", 0.100, POLL);
    within(&o, "wait.docifying", 0.700, POLL);
    within(&o, "wait.ready", 1.000, POLL);
    // Intervals between marks: from finalize's end (the job's clock starts there).
    within(&o, "finalize_to_transcribed", 0.700, POLL);
    within(&o, "transcribed_to_ready", 0.300, 2.0 * POLL);
    assert_eq!(m(&o, "upload.parts_ok"), 4.0);
    assert_eq!(m(&o, "upload.parts_failed"), 0.0);
    assert!(m(&o, "upload.throughput") > 1e6);
    assert_eq!(o.samples_of("upload.part").count(), 4);
    // Every request's phases and TTFB, per step.
    assert_eq!(o.samples_of("init.ttfb").count(), 1);
    assert!(o.samples_of("wait.ttfb").count() >= 20);
    assert!(o.samples_of("upload.connect").count() >= 4);
    // End to end: the main steps, without cleanup.
    let journey = m(&o, "journey");
    assert!(journey >= m(&o, "wait") && journey < m(&o, "total"), "{journey}");
    let names: Vec<&str> = o.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["init", "upload", "finalize", "wait", "cleanup"]);
    assert_eq!(o.steps[4].status, Some(204));
    let s = stats(&t).await;
    assert_eq!(s["deleted"], 1);
    assert_eq!(s["open"], 0);
    assert_eq!(s["parts_ok"], 4);
}

#[tokio::test]
async fn throttled_parts_are_retried_honouring_retry_after_and_counted_apart() {
    let t = plain_target().await;
    // Each part's first two tries: 429 then 503, both with Retry-After: 1.
    let o = run_probe(&pipeline(
        &t,
        "parts=3&throttle=1&unavailable=1&retry_after=1",
        "20s",
        "",
    ))
    .await;
    assert!(o.success(), "{:?}", o.error);
    assert_eq!(m(&o, "upload.parts_ok"), 0.0);
    assert_eq!(m(&o, "upload.parts_retried"), 3.0);
    assert_eq!(m(&o, "upload.retries_throttled"), 6.0);
    assert_eq!(m(&o, "upload.retries_error"), 0.0);
    // Two Retry-After waits of 1 s each, parts two at a time: at least 2 s, and the
    // third part waits its own 2 s after the first pair.
    let upload = m(&o, "upload");
    assert!((2.0..5.0).contains(&upload), "upload {upload}");
}

#[tokio::test]
async fn a_429_storm_fails_the_parts_within_the_deadline_and_cleanup_still_runs() {
    let t = plain_target().await;
    let o = run_probe(
        &pipeline(&t, "parts=3&throttle=1000", "20s", "")
            .replace("concurrency = 2", "concurrency = 2\nmax_attempts = 3"),
    )
    .await;
    assert_eq!(error_type(&o), "rate_limited", "{:?}", o.error);
    assert_eq!(m(&o, "upload.parts_failed"), 3.0);
    assert_eq!(m(&o, "upload.retries_throttled"), 9.0);
    assert_eq!(
        o.details
            .iter()
            .find(|(k, _)| *k == "failed_step")
            .map(|(_, v)| v.as_str()),
        Some("upload")
    );
    assert!(o.get("journey").is_none(), "a failed run has no journey time");
    assert_eq!(stats(&t).await["deleted"], 1);
}

#[tokio::test]
async fn a_failed_job_is_an_upstream_error_at_the_poll_step() {
    let t = plain_target().await;
    let o = run_probe(&pipeline(&t, "parts=1&transcribe=100&fail=1", "20s", "")).await;
    assert_eq!(error_type(&o), "upstream_error", "{:?}", o.error);
    assert!(o.error.as_ref().unwrap().message.contains("/status = failed"));
    assert!(o.get("wait.transcribing").is_some());
    assert_eq!(stats(&t).await["deleted"], 1);
}

#[tokio::test]
async fn a_job_that_never_finishes_times_out_at_its_deadline_with_its_states_kept() {
    let t = plain_target().await;
    let toml = pipeline(&t, "parts=1&never=1", "20s", "").replace(
        "name = \"wait\"\n",
        "name = \"wait\"\ndeadline = \"1s\"\ntimeout = \"500ms\"\n",
    );
    let started = std::time::Instant::now();
    let o = run_probe(&toml).await;
    assert_eq!(error_type(&o), "timeout", "{:?}", o.error);
    assert!(
        o.error.as_ref().unwrap().message.contains("last state: transcribing"),
        "{:?}",
        o.error
    );
    assert!(m(&o, "wait.transcribing") < 0.1);
    assert!(o.get("wait.ready").is_none());
    let wait = o.steps.iter().find(|s| s.name == "wait").unwrap();
    assert!((0.95..1.2).contains(&wait.duration), "{}", wait.duration);
    assert!(started.elapsed().as_secs_f64() < 3.0);
    assert_eq!(stats(&t).await["deleted"], 1);
}

#[tokio::test]
async fn an_extraction_that_does_not_match_fails_its_step_and_skips_cleanup_it_needs() {
    let t = plain_target().await;
    let toml = pipeline(&t, "parts=1", "20s", "").replace("pointer = \"/id\"", "pointer = \"/recording_id\"");
    let o = run_probe(&toml).await;
    assert_eq!(error_type(&o), "extraction_failed", "{:?}", o.error);
    assert!(o.error.as_ref().unwrap().message.contains("/recording_id"));
    let cleanup = o.steps.iter().find(|s| s.name == "cleanup").unwrap();
    assert!(
        cleanup.notes[0].contains("${id} was never extracted"),
        "{:?}",
        cleanup.notes
    );
}

#[tokio::test]
async fn secrets_stay_out_of_errors_details_and_steps() {
    let t = plain_target().await;
    let secret = "wf-secret-token-4242";
    let dir = write_files(&[("token", secret)]);
    let toml = format!(
        r#"[[probe]]
name = "secretive"
kind = "workflow"
every = "1m"
timeout = "5s"
[probe.vars]
token = "file:{}"
[[probe.step]]
name = "login"
url = "{}"
headers = {{ Authorization = "Bearer ${{token}}" }}
"#,
        path_str(&dir.path().join("token")),
        // A 404 whose URL carries the secret: the error and the step report quote it.
        t.url("/status/404?x=1&t=${token}")
    );
    let o = run_probe(&toml).await;
    assert_eq!(error_type(&o), "http_status");
    let everything = format!(
        "{:?} {:?} {:?} {}",
        o.error,
        o.details,
        o.steps,
        sloprobe::once::run_json(&o, 1)
    );
    assert!(!everything.contains(secret), "{everything}");
}

#[test]
fn bad_workflows_fail_at_load_with_file_line_and_key() {
    let cases = [
        (
            "url = \"http://127.0.0.1:1/${nope}\"",
            "key `probe.step.url`: unknown variable ${nope}",
        ),
        (
            "url = \"http://127.0.0.1:1/${later}\"",
            "is extracted by step \"second\", which runs after",
        ),
    ];
    for (url, want) in cases {
        let toml = format!(
            "[[probe]]\nname = \"w\"\nkind = \"workflow\"\nevery = \"1m\"\ntimeout = \"30s\"\n[[probe.step]]\nname = \"first\"\n{url}\n[[probe.step]]\nname = \"second\"\nurl = \"http://127.0.0.1:1/\"\n[probe.step.extract]\nlater = {{ pointer = \"/x\" }}\n"
        );
        let e = config_error(&[("sloprobe.toml", &toml)]);
        assert!(e.contains(want) && e.contains("sloprobe.toml:8:"), "{e}");
    }
    let base = "[[probe]]\nname = \"w\"\nkind = \"workflow\"\nevery = \"1m\"\ntimeout = \"30s\"\n[[probe.step]]\nname = \"s\"\nurl = \"http://127.0.0.1:1/${part}\"\n";
    let e = config_error(&[(
        "sloprobe.toml",
        &format!("{base}[probe.step.upload]\nparts = 10000\npart_size = \"5GiB\"\n"),
    )]);
    assert!(
        e.contains("probe.step.upload.parts") && e.contains("parts × part_size"),
        "{e}"
    );
    let e = config_error(&[(
        "sloprobe.toml",
        &format!("{base}timeout = \"10s\"\ndeadline = \"5s\"\n[probe.step.upload]\nparts = 2\npart_size = \"1MB\"\n"),
    )]);
    assert!(
        e.contains("sloprobe.toml:10:") && e.contains("shorter than the step's request timeout"),
        "{e}"
    );
    let e = config_error(&[(
        "sloprobe.toml",
        &(base
            .replace("timeout = \"30s\"", "timeout = \"2s\"")
            .replace("${part}", "x")
            + "deadline = \"1m\"\ntimeout = \"1s\"\n[probe.step.poll]\ninterval = \"1s\"\nuntil_status = [200]\n"),
    )]);
    assert!(
        e.contains("probe.step.deadline") && e.contains("raise `timeout`"),
        "{e}"
    );
}

/// The pipeline config docs/config.md shows, with its SLOs.
fn documented_pipeline() -> String {
    let docs =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/config.md")).unwrap();
    let start = docs
        .find("The spec's recording pipeline, with its SLOs:")
        .expect("docs example");
    let block = &docs[start..];
    let block = &block[block.find("```toml\n").unwrap() + 8..];
    block[..block.find("```").unwrap()].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_pipeline_and_its_slos_run_against_the_demo_target() {
    let t = plain_target().await;
    let base = t.url("/pipeline/recordings");
    // The demo's job: 100 ms queued, 300 ms transcribing, 200 ms building the document;
    // every part's first try is throttled. Polls every 50 ms instead of 5 s.
    let config = documented_pipeline()
        .replace(
            "url = \"https://api.example.com/recordings\"\n",
            &format!("url = \"{base}?parts=10&queue=100&transcribe=300&docify=200&throttle=1\"\n"),
        )
        .replace("https://api.example.com/recordings", &base)
        .replace("https://api.example.com/unused", &t.url("/unused"))
        .replace("interval = \"5s\"", "interval = \"50ms\"");
    assert!(!config.contains("example.com"), "{config}");
    let dir = write_files(&[("sloprobe.toml", &config)]);
    let path = dir.path().join("sloprobe.toml");
    let run = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(bin())
                .args(["once", "--format", "json", "-c"])
                .arg(&path)
                .env("RECORDINGS_TOKEN", "rec-token-0123456789")
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(!stdout.contains("rec-token-0123456789"));
    let first: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    let ms = &first["measurements"];
    assert_eq!(ms["upload.parts_retried"], 10.0, "{ms}");
    assert_eq!(ms["upload.retries_throttled"], 10.0);
    let transcribed = ms["finalize_to_transcribed"].as_f64().unwrap();
    assert!((0.398..0.400 + POLL + SLACK).contains(&transcribed), "{transcribed}");
    let ready = ms["transcribed_to_ready"].as_f64().unwrap();
    assert!((0.198..0.200 + 2.0 * POLL + SLACK).contains(&ready), "{ready}");
    assert_eq!(first["steps"].as_array().unwrap().len(), 5);
    assert_eq!(stats(&t).await["deleted"], 1);

    // Its SLOs become rules: part success counts parts, the rest count runs by threshold.
    let out = std::process::Command::new(bin())
        .args(["slo", "rules", "-c"])
        .arg(&path)
        .env("RECORDINGS_TOKEN", "rec-token-0123456789")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rules = String::from_utf8(out.stdout).unwrap();
    assert!(
        rules.contains("probe_workflow_parts_total{probe_name=~\"^(recording-pipeline)$\",outcome=\"failed\"}"),
        "{rules}"
    );
    assert!(
        rules.contains("measurement=\"finalize_to_transcribed\",threshold=\"360\""),
        "{rules}"
    );
    assert!(rules.contains("measurement=\"journey\",threshold=\"600\""), "{rules}");
}

#[tokio::test]
async fn a_file_is_uploaded_in_slices_with_a_shorter_last_part() {
    let t = plain_target().await;
    let size = 2 * 1024 * 1024 + 12_345;
    let dir = write_files(&[("recording.bin", &"r".repeat(size))]);
    let base = t.url("/pipeline/recordings");
    let toml = format!(
        r#"[[probe]]
name = "file-upload"
kind = "workflow"
every = "1m"
timeout = "10s"
[[probe.step]]
name = "init"
method = "POST"
url = "{base}?parts=3"
[probe.step.extract]
id = {{ pointer = "/id" }}
[[probe.step]]
name = "upload"
url = "{base}/${{id}}/parts/${{part}}"
[probe.step.upload]
file = "{}"
part_size = "1MiB"
"#,
        path_str(&dir.path().join("recording.bin"))
    );
    let o = run_probe(&toml).await;
    assert!(o.success(), "{:?}", o.error);
    assert_eq!(m(&o, "upload.parts_ok"), 3.0);
    let s = stats(&t).await;
    assert_eq!(s["parts_ok"], 3);
    assert_eq!(s["bytes"], size as u64);
}
