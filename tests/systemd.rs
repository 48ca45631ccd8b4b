//! The systemd notify protocol for real: the test is systemd's side of `NOTIFY_SOCKET`.
//! READY comes once the listener answers, WATCHDOG pings keep coming while the scheduler
//! advances and stop when it wedges, RELOADING/READY wrap a SIGHUP, STOPPING ends it.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

struct Notify {
    sock: UnixDatagram,
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl Notify {
    fn new() -> Notify {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        Notify { sock, _dir: dir, path }
    }

    /// Messages received within `for_`, each with when it came.
    fn collect(&self, for_: Duration) -> Vec<(Instant, String)> {
        let end = Instant::now() + for_;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < end {
            if let Ok(n) = self.sock.recv(&mut buf) {
                out.push((Instant::now(), String::from_utf8_lossy(&buf[..n]).into_owned()));
            }
        }
        out
    }
}

fn daemon(n: &Notify, port: u16, wedge: bool) -> (tempfile::TempDir, Child) {
    let dir = write_files(&[(
        "sloprobe.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[demo]\nlisten = \"127.0.0.1:{}\"\n\n[[probe]]\nname = \"p\"\nkind = \"http\"\nurl = \"http://127.0.0.1:1/\"\nevery = \"200ms\"\n",
            free_port()
        ),
    )]);
    let mut cmd = Command::new(bin());
    cmd.args(["run", "-c"])
        .arg(dir.path().join("sloprobe.toml"))
        .env("NOTIFY_SOCKET", &n.path)
        .env("WATCHDOG_USEC", "400000")
        .env("SLOPROBE_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if wedge {
        cmd.env("SLOPROBE_TEST_WEDGE_SCHEDULER", "1");
    }
    let child = Child(cmd.spawn().unwrap());
    (dir, child)
}

fn kill(child: &Child, sig: &str) {
    assert!(
        Command::new("kill")
            .args([sig, &child.0.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn ready_watchdog_reload_and_stopping() {
    let n = Notify::new();
    let port = free_port();
    let (_dir, mut child) = daemon(&n, port, false);
    // READY only once the listener answers.
    let mut ready = None;
    for _ in 0..100 {
        let msgs = n.collect(Duration::from_millis(100));
        if let Some((_, m)) = msgs.iter().find(|(_, m)| m.contains("READY=1")) {
            ready = Some(m.clone());
            break;
        }
    }
    let ready = ready.expect("no READY=1");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let health = rt.block_on(http_get(&format!("http://127.0.0.1:{port}/healthz")));
    assert_eq!(health.map(|h| h.0), Some(200), "READY before the listener answered");
    assert!(ready.contains("STATUS=1 probes"), "{ready}");

    // Pings every ~200 ms while probes advance, with a status line.
    let msgs = n.collect(Duration::from_millis(1500));
    let pings = msgs.iter().filter(|(_, m)| m.contains("WATCHDOG=1")).count();
    assert!(pings >= 4, "{pings} watchdog pings in 1.5 s: {msgs:?}");
    assert!(
        msgs.iter().any(|(_, m)| m.contains("STATUS=1 probes, 1 failing")),
        "{msgs:?}"
    );

    // SIGHUP: RELOADING=1 (with MONOTONIC_USEC), then READY=1.
    kill(&child, "-HUP");
    let msgs = n.collect(Duration::from_millis(1500));
    let reloading = msgs
        .iter()
        .position(|(_, m)| m.contains("RELOADING=1") && m.contains("MONOTONIC_USEC="));
    let ready_again = msgs.iter().rposition(|(_, m)| m.contains("READY=1"));
    assert!(
        matches!((reloading, ready_again), (Some(a), Some(b)) if a < b),
        "{msgs:?}"
    );

    kill(&child, "-TERM");
    let msgs = n.collect(Duration::from_millis(1500));
    assert!(msgs.iter().any(|(_, m)| m.contains("STOPPING=1")), "{msgs:?}");
    let _ = child.0.wait();
}

#[test]
fn watchdog_pings_stop_when_the_scheduler_wedges() {
    let n = Notify::new();
    let (_dir, _child) = daemon(&n, free_port(), true);
    let msgs = n.collect(Duration::from_secs(5));
    let first = msgs.iter().find(|(_, m)| m.contains("READY=1")).expect("no READY").0;
    let last_ping = msgs
        .iter()
        .filter(|(_, m)| m.contains("WATCHDOG=1"))
        .map(|(t, _)| *t)
        .max()
        .expect("no ping at all before the wedge");
    // The loop wedges after its first run; within the 2 s grace the pings stop.
    assert!(
        last_ping.duration_since(first) < Duration::from_millis(3000),
        "pings went on: {msgs:?}"
    );
    assert!(
        msgs.iter().any(|(_, m)| m.contains("STATUS=scheduler stalled")),
        "{msgs:?}"
    );
}

/// The shipped unit passes `systemd-analyze verify`, and its offline security exposure stays
/// at the level recorded in docs/operations.md (lower is better; 10 is unprotected).
#[test]
fn shipped_unit_verifies_and_is_hardened() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let unit = std::fs::read_to_string(root.join("systemd/sloprobe.service")).unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("WatchdogSec=") && unit.contains("ExecReload="));
    let dir = tempfile::tempdir().unwrap();
    // verify checks that ExecStart exists: point it at the binary under test.
    let path = dir.path().join("sloprobe.service");
    std::fs::write(&path, unit.replace("/usr/bin/sloprobe", &bin().display().to_string())).unwrap();
    run_ok(Command::new(tool("systemd-analyze")).arg("verify").arg(&path));
    let out = Command::new(tool("systemd-analyze"))
        .args(["security", "--offline=yes"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for sloprobe.service: ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score in:\n{text}"));
    assert!(score <= 1.1, "exposure {score} (docs/operations.md records 1.1)");
    for (file, line) in [
        ("sloprobe.sysusers", "u sloprobe"),
        ("sloprobe.tmpfiles", "d /etc/sloprobe"),
    ] {
        assert!(
            std::fs::read_to_string(root.join("systemd").join(file))
                .unwrap()
                .contains(line)
        );
    }
}

/// What the unit's `ExecReload=` runs: `sloprobe reload` returns once the reload is done
/// (the new probe already scheduled), fails with the reason when the new config is
/// refused, and RELOADING=1 … READY=1 wrap the refused reload too, so a service manager
/// waiting on it is never left hanging.
#[test]
fn reload_command_waits_for_the_reload_and_reports_a_refusal() {
    let n = Notify::new();
    let port = free_port();
    let (dir, _child) = daemon(&n, port, false);
    let config = dir.path().join("sloprobe.toml");
    let ready = (0..100).any(|_| {
        n.collect(Duration::from_millis(100))
            .iter()
            .any(|(_, m)| m.contains("READY=1"))
    });
    assert!(ready, "no READY=1");
    let original = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{original}\n[[probe]]\nname = \"added\"\nkind = \"http\"\nurl = \"http://127.0.0.1:1/\"\nevery = \"1h\"\n"
        ),
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["reload", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("1 kept, 1 started, 0 stopped"), "{said}");
    // Already scheduled when the command returned: no waiting here.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_, metrics) = rt
        .block_on(http_get(&format!("http://127.0.0.1:{port}/metrics")))
        .unwrap();
    assert!(metrics.contains("probe_name=\"added\""), "not scheduled yet");
    n.collect(Duration::from_millis(300));

    std::fs::write(&config, original.replace("every = \"200ms\"", "every = \"soon\"")).unwrap();
    let out = Command::new(bin())
        .args(["reload", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("sloprobe.toml:") && err.contains("every"), "{err}");
    let msgs = n.collect(Duration::from_millis(500));
    let reloading = msgs.iter().position(|(_, m)| m.contains("RELOADING=1"));
    let ready_again = msgs
        .iter()
        .rposition(|(_, m)| m.contains("READY=1") && m.contains("reload failed"));
    assert!(
        matches!((reloading, ready_again), (Some(a), Some(b)) if a < b),
        "{msgs:?}"
    );
    // Nobody listening: a distinct exit code.
    let out = Command::new(bin())
        .args(["reload", "--url"])
        .arg(format!("http://127.0.0.1:{}/-/reload?wait=1", refused_port()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
