//! Bad config is rejected at load with the file, line and key in the message.

mod common;

use common::{config_error, write_files};

const OK_PROBE: &str = "[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://127.0.0.1:1/\"\nevery = \"30s\"\n";

fn assert_points(msg: &str, file: &str, line: usize, key: &str) {
    assert!(
        msg.contains(&format!("{file}:{line}:")),
        "expected {file}:{line} in: {msg}"
    );
    assert!(msg.contains(&format!("`{key}`")), "expected key `{key}` in: {msg}");
}

#[test]
fn unknown_key_in_probe_table() {
    let text = format!("{OK_PROBE}[probe.expect]\nstatuss = [200]\n");
    let msg = config_error(&[("sloprobe.toml", &text)]);
    assert_points(&msg, "sloprobe.toml", 7, "probe.expect.statuss");
    assert!(msg.contains("unknown field"), "{msg}");
}

#[test]
fn unknown_top_level_key() {
    let msg = config_error(&[("sloprobe.toml", "locaton = \"x\"\n")]);
    assert_points(&msg, "sloprobe.toml", 1, "locaton");
}

#[test]
fn duplicate_names_across_files_name_both() {
    let daemon = "include = [\"probes/*.toml\"]\n";
    let first = OK_PROBE;
    let second = format!("# another file\n\n{OK_PROBE}");
    let msg = config_error(&[
        ("sloprobe.toml", daemon),
        ("probes/a.toml", first),
        ("probes/b.toml", &second),
    ]);
    assert_points(&msg, "b.toml", 4, "probe.name");
    assert!(
        msg.contains("duplicate probe name") && msg.contains("a.toml:2"),
        "{msg}"
    );
}

#[test]
fn bad_cron() {
    let text = OK_PROBE.replace("every = \"30s\"", "cron = \"*/5 * *\"");
    let msg = config_error(&[("sloprobe.toml", &text)]);
    assert_points(&msg, "sloprobe.toml", 5, "probe.cron");
    let text = OK_PROBE.replace("every = \"30s\"", "cron = \"99 * * * *\"");
    let msg = config_error(&[("sloprobe.toml", &text)]);
    assert_points(&msg, "sloprobe.toml", 5, "probe.cron");
}

#[test]
fn timeout_not_below_interval() {
    let text = format!("{OK_PROBE}timeout = \"30s\"\n");
    let msg = config_error(&[("sloprobe.toml", &text)]);
    assert_points(&msg, "sloprobe.toml", 6, "probe.timeout");
    assert!(msg.contains("shorter than the interval"), "{msg}");
}

#[test]
fn missing_secret_names_the_variable_not_a_value() {
    let text = format!("{OK_PROBE}[probe.request]\nbearer = \"env:SLOPROBE_TEST_UNSET_TOKEN\"\n");
    let msg = config_error(&[("sloprobe.toml", &text)]);
    assert_points(&msg, "sloprobe.toml", 7, "probe.request.bearer");
    assert!(msg.contains("SLOPROBE_TEST_UNSET_TOKEN is not set"), "{msg}");
    let text = format!("{OK_PROBE}[probe.request]\nbearer = \"sk-literal\"\n");
    let msg = config_error(&[("sloprobe.toml", &text)]);
    assert!(!msg.contains("sk-literal"), "literal secret echoed: {msg}");
}

#[test]
fn bad_duration_size_kind_budget() {
    let text = OK_PROBE.replace("every = \"30s\"", "every = \"1000years\"");
    assert_points(
        &config_error(&[("sloprobe.toml", &text)]),
        "sloprobe.toml",
        5,
        "probe.every",
    );
    let text = OK_PROBE.replace("\"30s\"", "\"30 fortnights\"");
    assert_points(
        &config_error(&[("sloprobe.toml", &text)]),
        "sloprobe.toml",
        5,
        "probe.every",
    );
    let text = format!("{OK_PROBE}[probe.expect]\nmax_body = \"lots\"\n");
    assert_points(
        &config_error(&[("sloprobe.toml", &text)]),
        "sloprobe.toml",
        7,
        "probe.expect.max_body",
    );
    let text = OK_PROBE.replace("kind = \"http\"", "kind = \"gopher\"");
    assert_points(
        &config_error(&[("sloprobe.toml", &text)]),
        "sloprobe.toml",
        3,
        "probe.kind",
    );
    let text = format!("{OK_PROBE}[probe.budget]\nttbf = \"500ms\"\n");
    let msg = config_error(&[("sloprobe.toml", &text)]);
    assert_points(&msg, "sloprobe.toml", 7, "probe.budget.ttbf");
    assert!(msg.contains("ttfb"), "should list known measurements: {msg}");
    let text = format!("{OK_PROBE}[probe.budget]\nttfb = 500\n");
    assert_points(
        &config_error(&[("sloprobe.toml", &text)]),
        "sloprobe.toml",
        7,
        "probe.budget.ttfb",
    );
}

#[test]
fn missing_schedule_and_missing_include() {
    let text = OK_PROBE.replace("every = \"30s\"\n", "");
    assert_points(
        &config_error(&[("sloprobe.toml", &text)]),
        "sloprobe.toml",
        2,
        "probe.every",
    );
    let msg = config_error(&[("sloprobe.toml", "include = [\"nope.toml\"]\n")]);
    assert_points(&msg, "sloprobe.toml", 1, "include");
}

#[test]
fn syntax_error_points_at_line() {
    let text = format!("{OK_PROBE}timeout = \"5s\n");
    let msg = config_error(&[("sloprobe.toml", &text)]);
    assert!(msg.contains("sloprobe.toml:6:"), "{msg}");
}

#[test]
fn bad_otlp_settings_point_at_their_line() {
    let text = "[export.otlp]\nprotocol = \"thrift\"\n";
    let msg = config_error(&[("sloprobe.toml", text)]);
    assert!(
        msg.contains("sloprobe.toml:2:") && msg.contains("`export.otlp.protocol`"),
        "{msg}"
    );
    let text = "[export.otlp]\nheaders = { \"bad header\" = \"x\" }\n";
    let msg = config_error(&[("sloprobe.toml", text)]);
    assert!(
        msg.contains("sloprobe.toml:2:") && msg.contains("invalid header name"),
        "{msg}"
    );
    let text = "[export.otlp]\nheaders = { \"x-key\" = \"env:SLOPROBE_TEST_UNSET_OTLP\" }\n";
    let msg = config_error(&[("sloprobe.toml", text)]);
    assert!(msg.contains("SLOPROBE_TEST_UNSET_OTLP is not set"), "{msg}");
}

/// A bad key at every nesting level of every kind names its file, line and key path.
#[test]
fn bad_key_at_every_level_of_every_kind() {
    let heads = [
        (
            "http",
            "[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://127.0.0.1:1/\"\nevery = \"30s\"\n",
        ),
        (
            "assistant",
            "[[probe]]\nname = \"a\"\nkind = \"assistant\"\nformat = \"sse\"\nurl = \"http://127.0.0.1:1/\"\nevery = \"30s\"\n",
        ),
    ];
    for (kind, head) in heads {
        let first = head.lines().count() + 1;
        let cases: Vec<(String, usize, &str)> = vec![
            ("bogus = 1\n".into(), first, "probe.bogus"),
            ("[probe.request]\nbogus = 1\n".into(), first + 1, "probe.request.bogus"),
            (
                "[probe.request.headers]\nx-a = 1\n".into(),
                first + 1,
                "probe.request.headers.x-a",
            ),
            ("[probe.expect]\nbogus = 1\n".into(), first + 1, "probe.expect.bogus"),
            (
                "[probe.expect]\nstatus = \"200\"\n".into(),
                first + 1,
                "probe.expect.status",
            ),
            ("[probe.tls]\nbogus = 1\n".into(), first + 1, "probe.tls.bogus"),
            (
                "[probe.tls]\ninsecure_skip_verify = \"yes\"\n".into(),
                first + 1,
                "probe.tls.insecure_skip_verify",
            ),
            (
                "[probe.budget]\nbogus = \"1s\"\n".into(),
                first + 1,
                "probe.budget.bogus",
            ),
            (
                "[probe.budget.p95]\nbogus = \"1s\"\n".into(),
                first,
                "probe.budget.p95.bogus",
            ),
            ("timeout = 5\n".into(), first, "probe.timeout"),
            ("http_version = \"3\"\n".into(), first, "probe.http_version"),
        ];
        for (tail, line, key) in cases {
            let msg = config_error(&[("sloprobe.toml", &format!("{head}{tail}"))]);
            assert_points(&msg, "sloprobe.toml", line, key);
            if tail.starts_with("bogus") || tail.contains("\nbogus = 1") {
                assert!(msg.contains(&format!("for kind \"{kind}\"")), "{kind}: {msg}");
            }
        }
    }
    // Keys of one kind are unknown to the other, at their own line.
    let http = heads[0].1;
    let msg = config_error(&[("sloprobe.toml", &format!("{http}stall_timeout = \"1s\"\n"))]);
    assert_points(&msg, "sloprobe.toml", 6, "probe.stall_timeout");
    assert!(msg.contains("unknown field `stall_timeout` for kind \"http\""), "{msg}");
    let assistant = heads[1].1;
    let msg = config_error(&[(
        "sloprobe.toml",
        &format!("{assistant}[probe.expect]\nbody_regex = \"x\"\n"),
    )]);
    assert_points(&msg, "sloprobe.toml", 8, "probe.expect.body_regex");
    let msg = config_error(&[("sloprobe.toml", &format!("{assistant}connection = \"reuse\"\n"))]);
    assert_points(&msg, "sloprobe.toml", 7, "probe.connection");
    // A missing required key of the kind points at the probe.
    let msg = config_error(&[("sloprobe.toml", &http.replace("url = \"http://127.0.0.1:1/\"\n", ""))]);
    assert_points(&msg, "sloprobe.toml", 2, "probe.url");
}

/// An include glob that matches a dangling link, a FIFO or a directory is an error at the
/// `include` line, never a probe file skipped in silence.
#[test]
fn include_matches_that_are_not_files_are_errors() {
    let daemon = "location = \"l\"\ninclude = [\"probes/*.toml\"]\n";
    let probe = "[[probe]]\nname = \"p\"\nkind = \"http\"\nurl = \"http://127.0.0.1:1/\"\nevery = \"30s\"\n";
    let setup = |make: &dyn Fn(&std::path::Path)| {
        let dir = write_files(&[("sloprobe.toml", daemon), ("probes/a.toml", probe)]);
        make(&dir.path().join("probes"));
        let err = sloprobe::assembly::Config::load(&dir.path().join("sloprobe.toml")).unwrap_err();
        (dir, err.to_string())
    };
    let (_d, msg) = setup(&|p| std::os::unix::fs::symlink(p.join("gone.toml"), p.join("b.toml")).unwrap());
    assert!(
        msg.contains("b.toml") && msg.contains("symbolic link to nothing"),
        "{msg}"
    );
    assert_points(&msg, "sloprobe.toml", 2, "include");
    let (_d, msg) = setup(&|p| {
        let path = std::ffi::CString::new(p.join("c.toml").to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    });
    assert!(msg.contains("c.toml") && msg.contains("not a regular file"), "{msg}");
    let (_d, msg) = setup(&|p| std::fs::create_dir(p.join("d.toml")).unwrap());
    assert!(msg.contains("d.toml") && msg.contains("is a directory"), "{msg}");
}
