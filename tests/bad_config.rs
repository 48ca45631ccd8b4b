//! The bad-config corpus: every file under tests/bad_config/ must be rejected by the full
//! load (`check`, `run`, `once` and `slo` all use it) with the message its header gives:
//!
//! ```text
//! # expect: <text the message must contain>
//! # at: <line> [<key>]     (0: no position, e.g. a file-level problem)
//! # hidden: <text that must not appear, e.g. a secret value>
//! ```

use std::path::Path;

fn header<'a>(text: &'a str, field: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# ")?.strip_prefix(field)?.strip_prefix(": "))
        .collect()
}

#[test]
fn every_bad_config_is_rejected_with_its_message() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_config");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "corpus went missing: {}", files.len());
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let msg = match sloprobe::daemon::load(file) {
            Ok(_) => {
                failures.push(format!("{name}: accepted"));
                continue;
            }
            Err(e) => e.to_string(),
        };
        let expect = header(&text, "expect");
        assert!(!expect.is_empty(), "{name} has no `# expect:` line");
        for e in expect {
            if !msg.contains(e) {
                failures.push(format!("{name}: {msg:?} does not contain {e:?}"));
            }
        }
        for at in header(&text, "at") {
            let mut parts = at.split_whitespace();
            let line: usize = parts.next().unwrap().parse().unwrap();
            if line > 0 && !msg.contains(&format!("{name}:{line}:")) {
                failures.push(format!("{name}: {msg:?} does not point at line {line}"));
            }
            if line == 0 && !msg.starts_with(&format!("{}: ", file.display())) {
                failures.push(format!("{name}: {msg:?} should name the file without a line"));
            }
            if let Some(key) = parts.next()
                && !msg.contains(&format!("`{key}`"))
            {
                failures.push(format!("{name}: {msg:?} does not name key `{key}`"));
            }
        }
        for hidden in header(&text, "hidden") {
            if msg.contains(hidden) {
                failures.push(format!("{name}: {msg:?} echoes {hidden:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
