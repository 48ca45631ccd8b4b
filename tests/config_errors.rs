//! Bad config is rejected at load with the file, line and key in the message.

mod common;

use common::config_error;

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
