//! scripts/install.sh into a temporary root (DESTDIR, PREFIX): every file in its place, the
//! unit pointing at the installed binary, and the installed example config valid.

mod common;

use std::process::Command;

use common::*;

#[test]
fn install_into_a_temp_root() {
    let root = tempfile::tempdir().unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install.sh");
    let out = Command::new("bash")
        .arg(&script)
        .env("DESTDIR", root.path())
        .env("PREFIX", "/usr/local")
        .env("BIN", bin())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let r = root.path();
    for f in [
        "usr/local/bin/sloprobe",
        "usr/local/lib/systemd/system/sloprobe.service",
        "usr/local/lib/sysusers.d/sloprobe.conf",
        "usr/local/lib/tmpfiles.d/sloprobe.conf",
        "usr/local/share/sloprobe/sloprobe.schema.json",
        "usr/local/share/bash-completion/completions/sloprobe",
        "usr/local/share/zsh/site-functions/_sloprobe",
        "usr/local/share/fish/vendor_completions.d/sloprobe.fish",
        "usr/local/share/man/man1/sloprobe.1",
        "etc/sloprobe/sloprobe.toml",
    ] {
        let p = r.join(f);
        assert!(
            p.is_file() && std::fs::metadata(&p).unwrap().len() > 0,
            "{f} missing or empty"
        );
    }
    assert!(r.join("etc/sloprobe/probes.d").is_dir());
    let unit = std::fs::read_to_string(r.join("usr/local/lib/systemd/system/sloprobe.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/sloprobe run -c /etc/sloprobe/sloprobe.toml"),
        "{unit}"
    );
    // The example config is valid as installed.
    let check = Command::new(r.join("usr/local/bin/sloprobe"))
        .args(["check", "-c"])
        .arg(r.join("etc/sloprobe/sloprobe.toml"))
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    // A second install keeps the operator's config.
    std::fs::write(r.join("etc/sloprobe/sloprobe.toml"), "# mine\n").unwrap();
    let again = Command::new("bash")
        .arg(&script)
        .env("DESTDIR", r)
        .env("PREFIX", "/usr/local")
        .env("BIN", bin())
        .status()
        .unwrap();
    assert!(again.success());
    assert_eq!(
        std::fs::read_to_string(r.join("etc/sloprobe/sloprobe.toml")).unwrap(),
        "# mine\n"
    );
}
