//! `once --report` and `once --junit` on the shipped demo probes (every kind, one budget
//! broken on purpose): the HTML report loaded in real headless Chromium (every probe's
//! section there, no console message, a screenshot that is a PNG), and the JUnit file
//! validated by xmllint against the JUnit schema Jenkins reads.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn report_and_junit_of_the_demo_probes() {
    let port = free_port();
    let probes = std::fs::read_to_string(root().join("probes/demo.toml"))
        .unwrap()
        .replace("9465", &port.to_string());
    let parsed: toml::Table = toml::from_str(&probes).unwrap();
    let names: Vec<String> = parsed["probe"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.len() >= 6, "{names:?}");
    let config = format!("[demo]\nlisten = \"127.0.0.1:{port}\"\n\n{probes}");
    let dir = write_files(&[("sloprobe.toml", &config)]);
    let (html, xml) = (dir.path().join("report.html"), dir.path().join("results.xml"));
    let out = Command::new(bin())
        .args(["once", "--runs", "3", "-c"])
        .arg(dir.path().join("sloprobe.toml"))
        .arg("--report")
        .arg(&html)
        .arg("--junit")
        .arg(&xml)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // demo-slow-page breaks its ttfb budget on purpose.
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // JUnit: valid against the schema, a failure for the broken budget.
    let lint = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(root().join("tests/fixtures/junit-10.xsd"))
        .arg(&xml)
        .output()
        .expect("xmllint (libxml2-utils) is installed by scripts/test.sh");
    assert!(lint.status.success(), "{}", String::from_utf8_lossy(&lint.stderr));
    let junit = std::fs::read_to_string(&xml).unwrap();
    for name in &names {
        assert!(
            junit.contains(&format!("<testsuite name=\"{name}\"")),
            "{name} missing:\n{junit}"
        );
    }
    assert!(
        junit.contains("name=\"budget ttfb ≤ 500.000ms per run\"") && junit.contains("<failure type=\"budget\""),
        "{junit}"
    );

    // HTML: self-contained, every probe's section, the browser's screenshot inline.
    let page = std::fs::read_to_string(&html).unwrap();
    for loads in ["<script", "src=\"http", "href=\"http", "url(", "@import"] {
        assert!(!page.contains(loads), "the report must load nothing ({loads})");
    }
    assert!(
        page.contains("data:image/png;base64,"),
        "no screenshot of the browser probe"
    );
    for class in ["strip", "waterfall", "chunks", "steps"] {
        assert!(page.contains(&format!("class=\"{class}\"")), "no {class} chart");
    }

    // Real Chromium: what it rendered, what it logged, a screenshot.
    let shot = dir.path().join("report.png");
    let profile = tempfile::tempdir().unwrap();
    let chromium = |extra: &[&str]| {
        // Bounded: a Chromium that never exits must fail the test, not hang CI.
        let mut c = Command::new("timeout");
        c.args(["--kill-after=5", "60", "chromium"])
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--enable-logging=stderr",
                "--v=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(format!("file://{}", html.display()));
        c.output().unwrap()
    };
    let dom = chromium(&["--dump-dom"]);
    assert!(dom.status.success(), "chromium --dump-dom: {:?}", dom.status);
    let rendered = String::from_utf8_lossy(&dom.stdout);
    let log = String::from_utf8_lossy(&dom.stderr);
    for name in &names {
        assert!(
            rendered.contains(&format!("data-probe=\"{name}\"")),
            "{name}'s section not rendered"
        );
    }
    assert!(
        !log.contains("CONSOLE") && !log.contains("Uncaught"),
        "console output:\n{log}"
    );
    let taken = chromium(&["--window-size=1000,2000", &format!("--screenshot={}", shot.display())]);
    assert!(taken.status.success(), "{}", String::from_utf8_lossy(&taken.stderr));
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
}
