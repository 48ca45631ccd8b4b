//! The binary as users and CI call it: exit codes, JSON lines, redaction.

mod common;

use std::process::Command;

use common::*;

fn once(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .args(["once", "-c"])
        .arg(dir.join("sloprobe.toml"))
        .args(args)
        .env("SLOPROBE_TEST_TOKEN", "s3cr3t-value-do-not-print")
        .output()
        .unwrap()
}

fn cfg(url: &str, extra: &str) -> String {
    format!("[[probe]]\nname = \"p\"\nkind = \"http\"\nurl = \"{url}\"\nevery = \"30s\"\ntimeout = \"5s\"\n{extra}\n")
}

#[tokio::test]
async fn once_json_lines_and_exit_codes() {
    let t = plain_target().await;
    let dir = write_files(&[(
        "sloprobe.toml",
        &cfg(&t.url("/delay/20"), "[probe.budget]\nttfb = \"2s\""),
    )]);
    let out = tokio::task::spawn_blocking({
        let d = dir.path().to_path_buf();
        move || once(&d, &["--runs", "3", "--format", "json"])
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let runs: Vec<&serde_json::Value> = lines.iter().filter(|l| l["type"] == "run").collect();
    assert_eq!(runs.len(), 3);
    for (i, r) in runs.iter().enumerate() {
        assert_eq!(r["probe"], "p");
        assert_eq!(r["kind"], "http");
        assert_eq!(r["run"], i as u64 + 1);
        assert_eq!(r["success"], true);
        assert!(r["error_type"].is_null());
        for k in ["dns", "connect", "tls", "send", "wait", "transfer", "ttfb", "total"] {
            assert!(r["measurements"][k].is_f64(), "{k} missing in {r}");
        }
        assert!(r["measurements"]["wait"].as_f64().unwrap() >= 0.020, "{r}");
    }
    let summary = lines.iter().find(|l| l["type"] == "summary").unwrap();
    assert_eq!(summary["runs"], 3);
    assert!(summary["stats"]["ttfb"]["p95"].as_f64().unwrap() >= 0.020);

    // A broken per-run budget fails the gate with exit 1.
    std::fs::write(
        dir.path().join("sloprobe.toml"),
        cfg(&t.url("/delay/20"), "[probe.budget]\nttfb = \"5ms\""),
    )
    .unwrap();
    let d = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || once(&d, &[])).await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("budget broken: ttfb") && text.contains("FAIL"), "{text}");
    // The verdict names the probe and the budget it broke.
    assert!(text.contains("FAIL: p (ttfb > 5.000ms)"), "{text}");

    // A broken percentile budget fails it too, even when each run is within per-run budgets.
    std::fs::write(
        dir.path().join("sloprobe.toml"),
        cfg(
            &t.url("/delay/20"),
            "[probe.budget]\nttfb = \"2s\"\n[probe.budget.p95]\nttfb = \"10ms\"",
        ),
    )
    .unwrap();
    let d = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || once(&d, &["--runs", "2", "--format", "json"]))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"passed\":false"), "{text}");

    // A failed run fails the gate.
    std::fs::write(dir.path().join("sloprobe.toml"), cfg(&t.url("/status/500"), "")).unwrap();
    let d = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || once(&d, &["--format", "json"]))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"error_type\":\"http_status\""));
}

#[test]
fn config_error_exits_2_and_unknown_probe_too() {
    let dir = write_files(&[("sloprobe.toml", &cfg("http://127.0.0.1:1/", "bogus = 1"))]);
    let out = once(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sloprobe.toml:7:") && err.contains("`bogus`"), "{err}");

    let dir = write_files(&[("sloprobe.toml", &cfg("http://127.0.0.1:1/", ""))]);
    let out = once(dir.path(), &["--probe", "nope"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn check_prints_plan_without_secret_values() {
    let extra = "[probe.request]\nbearer = \"env:SLOPROBE_TEST_TOKEN\"\n[probe.request.headers]\nx-api-key = \"env:SLOPROBE_TEST_TOKEN\"\nx-literal = \"literal-value-here\"";
    let dir = write_files(&[("sloprobe.toml", &cfg("http://user:pw@127.0.0.1:1/x?token=abc", extra))]);
    let out = Command::new(bin())
        .args(["check", "-c"])
        .arg(dir.path().join("sloprobe.toml"))
        .env("SLOPROBE_TEST_TOKEN", "s3cr3t-value-do-not-print")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("env:SLOPROBE_TEST_TOKEN <redacted>"), "{text}");
    assert!(text.contains("next runs:"), "{text}");
    for leaked in ["s3cr3t-value-do-not-print", "literal-value-here", ":pw@", "token=abc"] {
        assert!(!text.contains(leaked), "{leaked} leaked into: {text}");
    }
}

/// More browser slots than the host's cores carry, or more browser work than the slots
/// run, is a warning from `check` (exit 0); one browser probe a minute is not.
#[test]
fn check_warns_when_the_host_cannot_carry_the_browsers() {
    let cores = std::thread::available_parallelism().unwrap().get();
    let mut toml = format!("[browser]\nmax_concurrent_browsers = {}\n", (cores + 1).min(64));
    for i in 0..20 {
        toml.push_str(&format!(
            "[[probe]]\nname = \"b{i}\"\nkind = \"browser\"\nurl = \"http://127.0.0.1:9/\"\nevery = \"30s\"\ntimeout = \"20s\"\n"
        ));
    }
    let check = |toml: &str| {
        let dir = write_files(&[("sloprobe.toml", toml)]);
        let out = Command::new(bin())
            .args(["check", "-c"])
            .arg(dir.path().join("sloprobe.toml"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = check(&toml);
    assert!(text.contains(&format!("this host carries {cores} at once")), "{text}");
    assert!(text.contains("20 browser probe(s) may ask for"), "{text}");
    let one = "[[probe]]\nname = \"b\"\nkind = \"browser\"\nurl = \"http://127.0.0.1:9/\"\nevery = \"1m\"\ntimeout = \"20s\"\n";
    let text = check(one);
    assert!(!text.contains("warning"), "{text}");
}

#[tokio::test]
async fn secrets_never_reach_once_output() {
    let t = plain_target().await;
    let dir = write_files(&[(
        "sloprobe.toml",
        &cfg(
            &t.url("/status/401"),
            "[probe.request]\nbearer = \"env:SLOPROBE_TEST_TOKEN\"",
        ),
    )]);
    let d = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || once(&d, &["--format", "json"]))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("s3cr3t-value-do-not-print"), "{all}");
}

/// The gate checks the whole config like `check` and `run` do: a bad [[slo]] is exit 2,
/// never a pass.
#[test]
fn once_rejects_a_bad_slo_and_an_empty_config() {
    let slo = "\n[[slo]]\nname = \"s\"\nprobes = [\"p\"]\nsli = \"success\"\nobjective = 1.5\n";
    let dir = write_files(&[("sloprobe.toml", &format!("{}{slo}", cfg("http://127.0.0.1:1/", "")))]);
    let out = once(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`slo.objective`"));
    let dir = write_files(&[("sloprobe.toml", "# nothing here\n")]);
    let out = once(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("PASS"));
    // A mistyped command line is a usage error (64), not a config error (2).
    let out = once(dir.path(), &["--runs", "0"]);
    assert_eq!(out.status.code(), Some(64));
    let out = once(dir.path(), &["--runz", "3"]);
    assert_eq!(out.status.code(), Some(64));
    let v = Command::new(bin()).arg("--version").output().unwrap();
    assert_eq!(v.status.code(), Some(0));
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(
        text.contains(env!("CARGO_PKG_VERSION")) && text.contains(", built "),
        "{text}"
    );
}

#[test]
fn completions_and_man_page() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(bin()).args(["completions", shell]).output().unwrap();
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("once"),
            "{shell}"
        );
    }
    let out = Command::new(bin()).arg("man").output().unwrap();
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && page.contains(".TH sloprobe 1") && page.contains("bundle"),
        "{page}"
    );
}
