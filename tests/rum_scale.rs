//! Three RUM collectors behind a real nginx (Debian) hashing on the page-view id the
//! snippet puts in each beacon URL (`pv`), as docs/rum.md configures it. A client replays
//! the snippet's beacons (its URL parameters and bodies, three beacons a page view: early
//! vitals, then LCP and CLS at the first hide, then CLS again and INP at the second):
//! - with all three up, the page views and each vital's count summed over the three
//!   equal what was sent, exactly, and every beacon of a page view reached one collector;
//! - when one collector is killed between the second and third beacons, the rest count
//!   exactly what was sent less what the dead one held (its page views and the vitals
//!   they had sent it), never a value twice: the moved page views' resent CLS is dropped
//!   and counted as `unseen_resend`, their new INP recorded, the page views counted as
//!   adopted.

mod common;

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use common::server::Server;
use common::*;

const VIEWS: usize = 150;

fn collector_config(metrics: u16, rum: u16) -> String {
    format!(
        r#"location = "field"
[server]
listen = "127.0.0.1:{metrics}"

[rum]
listen = "127.0.0.1:{rum}"
allowed_origins = ["http://shop.test"]
flush_after = "300ms"
page_view_window = "4s"
trusted_proxies = ["127.0.0.1"]
rate = 5000.0
burst = 5000.0
"#
    )
}

fn start_collector(dir: &std::path::Path, i: usize) -> (Child, u16, u16) {
    let (mport, rport) = (free_port(), free_port());
    let path = dir.join(format!("collector{i}.toml"));
    std::fs::write(&path, collector_config(mport, rport)).unwrap();
    let child = Child(
        std::process::Command::new(bin())
            .args(["run", "-c"])
            .arg(&path)
            .env("SLOPROBE_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    (child, mport, rport)
}

/// nginx as docs/rum.md has it: `hash $arg_pv consistent` over the collectors; the
/// header naming the upstream is for this test only.
fn nginx_conf(dir: &std::path::Path, port: u16, upstreams: &[u16]) -> String {
    let d = dir.display();
    let servers: String = upstreams
        .iter()
        .map(|p| format!("    server 127.0.0.1:{p} max_fails=1 fail_timeout=30s;\n"))
        .collect();
    format!(
        "daemon off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/nginx-error.log;
events {{}}
http {{
  access_log off; client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  upstream rum_collectors {{
    hash $arg_pv consistent;
{servers}  }}
  server {{
    listen 127.0.0.1:{port};
    location /rum {{
      proxy_pass http://rum_collectors;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_next_upstream error timeout;
      add_header X-Upstream $upstream_addr always;
    }}
  }}
}}
"
    )
}

/// One beacon through nginx from the view's own client address: the status and the
/// upstream(s) that answered.
fn send(port: u16, view: usize, index: usize, reports: &str) -> (u16, String) {
    let body = format!("[{reports}]");
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST /rum?pv=pv-{view}&b={index} HTTP/1.1\r\nHost: shop.test\r\nOrigin: http://shop.test\r\nX-Forwarded-For: 10.0.{}.{}\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        view / 250,
        view % 250 + 1,
        body.len()
    );
    tcp.write_all(head.as_bytes()).unwrap();
    tcp.write_all(body.as_bytes()).unwrap();
    let mut text = String::new();
    let _ = tcp.read_to_string(&mut text);
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let upstream = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("X-Upstream: ")
                .or_else(|| l.strip_prefix("x-upstream: "))
        })
        .unwrap_or_default()
        .trim()
        .to_string();
    (status, upstream)
}

fn report(view: usize, name: &str, value: f64, resent: bool) -> String {
    let resent = if resent { r#","resent":true"# } else { "" };
    format!(
        r#"{{"name":"{name}","value":{value},"delta":{value},"id":"v5-{view}-{name}","navigationType":"navigate","url":"http://shop.test/orders/{view}","pageId":"pv-{view}"{resent}}}"#
    )
}

/// The three beacons of one page view, as the snippet sends them.
fn beacon(view: usize, index: usize) -> String {
    match index {
        0 => [report(view, "TTFB", 80.0, false), report(view, "FCP", 400.0, false)].join(","),
        1 => [report(view, "LCP", 900.0, false), report(view, "CLS", 0.05, false)].join(","),
        _ => [report(view, "CLS", 0.08, true), report(view, "INP", 120.0, false)].join(","),
    }
}

fn sum(text: &str, name: &str, must: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && must.iter().all(|m| l.contains(m)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[derive(Debug, Default, PartialEq)]
struct Counts {
    page_views: f64,
    adopted: f64,
    unseen_resends: f64,
    vitals: [f64; 5],
}

async fn counts(metrics_ports: &[u16]) -> Counts {
    let mut c = Counts::default();
    for port in metrics_ports {
        let text = http_get(&format!("http://127.0.0.1:{port}/metrics"))
            .await
            .map(|(_, t)| t)
            .unwrap_or_default();
        c.page_views += sum(&text, "rum_page_views_total", &[]);
        c.adopted += sum(&text, "rum_page_views_adopted_total", &[]);
        c.unseen_resends += sum(&text, "rum_vitals_total", &["reason=\"unseen_resend\""]);
        for (i, name) in ["ttfb_seconds", "fcp_seconds", "lcp_seconds", "cls", "inp_seconds"]
            .iter()
            .enumerate()
        {
            c.vitals[i] += sum(&text, &format!("browser_web_vital_{name}_count"), &[]);
        }
    }
    c
}

/// Waits until the collectors' totals equal `want` (they flush after their windows);
/// returns the last totals seen.
async fn settle(metrics_ports: &[u16], want: &Counts) -> Counts {
    let mut last = Counts::default();
    for _ in 0..100 {
        last = counts(metrics_ports).await;
        if last == *want {
            // Stable: nothing more arrives after another window.
            tokio::time::sleep(Duration::from_secs(5)).await;
            return counts(metrics_ports).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    last
}

#[tokio::test]
async fn three_collectors_behind_nginx_count_each_page_view_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut collectors: Vec<(Child, u16, u16)> = (0..3).map(|i| start_collector(dir.path(), i)).collect();
    for (_, mport, _) in &collectors {
        let up = eventually(100, Duration::from_millis(100), || async {
            http_get(&format!("http://127.0.0.1:{mport}/healthz")).await
        })
        .await;
        assert!(up.is_some(), "a collector never listened");
    }
    let rum_ports: Vec<u16> = collectors.iter().map(|c| c.2).collect();
    let metrics_ports: Vec<u16> = collectors.iter().map(|c| c.1).collect();
    let port = free_port();
    let ndir = tempfile::tempdir().unwrap();
    std::fs::write(
        ndir.path().join("nginx.conf"),
        nginx_conf(ndir.path(), port, &rum_ports),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(tool("nginx"));
    cmd.arg("-c")
        .arg(ndir.path().join("nginx.conf"))
        .arg("-p")
        .arg(ndir.path());
    let _nginx = Server::start(cmd, port, ndir, "nginx").await;

    // Round 1: all three up. Every beacon of a view reaches the collector its first did.
    let mut owner: HashMap<usize, String> = HashMap::new();
    for index in 0..3 {
        for view in 0..VIEWS {
            let (status, upstream) = send(port, view, index, &beacon(view, index));
            assert_eq!(status, 204, "beacon {index} of view {view} via {upstream}");
            let first = owner.entry(view).or_insert_with(|| upstream.clone());
            assert_eq!(*first, upstream, "view {view}: beacon {index} went elsewhere");
        }
    }
    let per_collector: Vec<usize> = rum_ports
        .iter()
        .map(|p| owner.values().filter(|u| u.ends_with(&format!(":{p}"))).count())
        .collect();
    assert!(
        per_collector.iter().all(|n| *n > 0),
        "hashing spread: {per_collector:?}"
    );
    let n = VIEWS as f64;
    let want = Counts {
        page_views: n,
        adopted: 0.0,
        unseen_resends: 0.0,
        vitals: [n; 5],
    };
    let got = settle(&metrics_ports, &want).await;
    assert_eq!(
        got, want,
        "exact totals over three collectors ({per_collector:?} views each)"
    );
    eprintln!("round 1: {per_collector:?} page views per collector; totals {got:?}");

    // Round 2: new page views; the first collector is killed between their second and
    // third beacons.
    let base = VIEWS;
    let mut owner: HashMap<usize, String> = HashMap::new();
    for index in 0..2 {
        for view in base..base + VIEWS {
            let (status, upstream) = send(port, view, index, &beacon(view, index));
            assert_eq!(status, 204);
            owner.entry(view).or_insert(upstream);
        }
    }
    let victim = rum_ports[0];
    let held = owner.values().filter(|u| u.ends_with(&format!(":{victim}"))).count();
    assert!(held > 0, "the killed collector owned no page view");
    let (mut child, _, _) = collectors.remove(0);
    let _ = child.0.kill();
    let _ = child.0.wait();
    for view in base..base + VIEWS {
        let (status, upstream) = send(port, view, 2, &beacon(view, 2));
        assert_eq!(status, 204, "view {view} after the kill, via {upstream}");
        assert!(
            !upstream.ends_with(&format!(":{victim}")) || upstream.contains(','),
            "{upstream}"
        );
    }
    let survivors: Vec<u16> = metrics_ports[1..].to_vec();
    // Round 1's page views on the survivors, each with its five vitals.
    let before = per_collector[1..].iter().sum::<usize>() as f64;
    let (n, h) = (VIEWS as f64, held as f64);
    let kept = n - h;
    // What the dead collector held is lost: its page views (counted nowhere) with the
    // TTFB, FCP, LCP and CLS they had sent it. Their INP (first sent after the kill) is
    // recorded by the collector they moved to, which counts them as adopted and drops
    // their resent CLS (the value the dead one held) rather than count CLS twice.
    let want = Counts {
        page_views: before + kept,
        adopted: h,
        unseen_resends: h,
        vitals: [before + kept, before + kept, before + kept, before + kept, before + n],
    };
    let got = settle(&survivors, &want).await;
    assert_eq!(got, want, "after killing the owner of {held} of {VIEWS} page views");
    eprintln!("round 2: the killed collector owned {held} of {VIEWS} page views; survivors' totals {got:?}");
}
