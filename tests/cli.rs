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

/// Runs the binary with `args` from the repository root (where the README's commands run).
fn at_repo_root(args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::io::Read as _;
    use std::process::Stdio;
    for args in [
        &["schema"][..],
        &["completions", "bash"],
        &["man"],
        &["slo", "dashboard", "-c", "config/sloprobe.toml"],
        &["slo", "rules", "-c", "config/sloprobe.toml"],
        &["check", "-c", "config/sloprobe.toml"],
    ] {
        let mut child = Command::new(bin())
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // `| head -c 1`: read one byte, then close the pipe.
        let mut out = child.stdout.take().unwrap();
        let mut one = [0u8; 1];
        out.read_exact(&mut one).unwrap();
        drop(out);
        let status = child.wait().unwrap();
        let mut err = String::new();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert_eq!(status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panic"), "{args:?}: {err}");
    }
}

#[test]
fn config_errors_that_help() {
    let dir = write_files(&[
        (
            "typo.toml",
            "[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9/\"\ntimout = \"5s\"\nevery = \"30s\"\n",
        ),
        ("top.toml", "probes = 1\n"),
        (
            "url.toml",
            "[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"http//user:s3cret@exa mple.com/?k=s3cret\"\nevery = \"30s\"\n",
        ),
        (
            "every.toml",
            "[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9/\"\nevery = 30\n",
        ),
        (
            "long.toml",
            "[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9/\"\nevery = \"1min\"\ntimeout = \"30 sec\"\n",
        ),
    ]);
    let check = |file: &str| {
        let out = Command::new(bin())
            .args(["check", "-c"])
            .arg(dir.path().join(file))
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, e) = check("typo.toml");
    assert_eq!(code, Some(2));
    assert!(
        e.contains("did you mean `timeout`?") && e.contains("`every`") && e.contains("`url`"),
        "{e}"
    );
    let (_, e) = check("top.toml");
    assert!(e.contains("did you mean `probe`?"), "{e}");
    let (_, e) = check("url.toml");
    assert!(
        e.contains("http//redacted@exa mple.com/?k=redacted") && !e.contains("s3cret"),
        "{e}"
    );
    let (_, e) = check("every.toml");
    assert!(e.contains("a duration needs a unit") && e.contains("\"30s\""), "{e}");
    let (code, _) = check("long.toml");
    assert_eq!(
        code,
        Some(0),
        "the long duration forms docs/config.md lists are accepted"
    );
    // No config: say how to give one.
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .arg("check")
        .current_dir(empty.path())
        .env_remove("SLOPROBE_CONFIG")
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(e.contains("-c FILE") && e.contains("SLOPROBE_CONFIG"), "{e}");
}

#[test]
fn check_shows_config_names_and_tidy_paths() {
    let out = at_repo_root(&["check", "-c", "config/sloprobe.toml"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("format: openai-chat") && text.contains("cache: cold") && text.contains("throttle: none"),
        "{text}"
    );
    assert!(text.contains("file=probes/demo.toml") && !text.contains(".."), "{text}");
    for internal in ["OpenAiChat", "Cold", "None", "30days"] {
        assert!(!text.contains(internal), "{internal} in:\n{text}");
    }
}

#[test]
fn readme_error_example_is_what_check_prints() {
    let readme = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let shown = readme
        .lines()
        .find(|l| l.starts_with("config error: probes/app.toml:"))
        .expect("README's error example");
    // The README's probe file, with the typo on line 7.
    let start = readme.find("```toml\n[[probe]]\nname = \"app-shell\"").unwrap() + 8;
    let file = &readme[start..start + readme[start..].find("```").unwrap()];
    let typo = file.replacen("[probe.expect]\nstatus", "[probe.expect]\nstatuss", 1);
    let dir = write_files(&[("probes/app.toml", &typo)]);
    let out = Command::new(bin())
        .args(["check", "-c", "probes/app.toml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(e.trim(), shown.trim());
}

#[test]
fn the_shipped_bundle_example_runs() {
    let out = at_repo_root(&["bundle", "-c", "config/bundle.example.toml"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("probe-scripts /injected") && text.contains("2 files") && text.contains("ok, "),
        "{text}"
    );
}

#[test]
fn the_demo_target_stops_cleanly_on_sigterm() {
    let port = free_port();
    let mut child = Child(
        Command::new(bin())
            .args(["target", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let up = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(up, "the target never listened");
    // SAFETY: kill(2) on the child this test started.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    let status = child.0.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(
        err.contains("demo target stopped") && err.contains("terminated"),
        "{err}"
    );
}
